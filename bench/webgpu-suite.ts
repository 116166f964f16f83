/**
 * `npm run bench:webgpu`: the WebGPU benchmarks of issue 11 in one command, their tables and plot written to a
 * folder (--out, default bench-results/, git-ignored):
 *   webgpu.json / webgpu.md    prefill and decode at the 130M shapes, batched decode (bench/webgpu.bench.ts)
 *   sizes.json / sizes.md      the same at the larger --size shapes, when --sizes is given
 *   context.json / .md / .svg  decode speed and memory vs context, Mamba-2 vs Llama (bench/webgpu-context.bench.ts)
 * Each part runs in its own process (its own GPU device), so one part's pools do not count in another's memory.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../src/cli/io.js';
import { markdownTable } from './report.js';

const HELP = `npm run bench:webgpu -- [options]      (or node dist/bench/webgpu-suite.js [options])

  --out DIR         where the tables and the plot go (default bench-results)
  --table "ARGS"    arguments of the speed table (dist/bench/webgpu.bench.js; default
                    "--presets mamba-130m,mamba2-130m,hybrid-130m,llama-130m --prompt 2048 --gen 128 --reps 3 --batch 1,8,32,64")
  --sizes S,…       also the larger shapes (370m, 790m, 1.4b, 2.8b: mamba-S and mamba2-S), prefill and decode
  --sizes-args "ARGS"  their arguments (default "--prompt 2048 --gen 64 --reps 2 --no-profile")
  --context "ARGS"  arguments of the context sweep (dist/bench/webgpu-context.bench.js --help)
  --skip-table, --skip-context   leave a part out
`;
const argv = process.argv.slice(2);
function arg(name: string, dflt: string): string {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  if (argv[i + 1] === undefined) throw new Error(`--${name} needs a value`);
  return argv[i + 1];
}
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(HELP);
  process.exit(0);
}
const out = arg('out', 'bench-results');
fs.mkdirSync(out, { recursive: true });
const here = path.dirname(fileURLToPath(import.meta.url));
const words = (s: string): string[] => s.split(/\s+/).filter((w) => w);
const enc = new TextEncoder();
const written: string[] = [];
let failed = false;

interface Batched { batch: number; tok_s: number; ms_per_step: number; chained_tok_s: number }
interface Result {
  preset: string; weights: string; backend: string; weight_mib: number; prompt: number;
  prefill_tok_s: number; decode_tok_s: number; chained_tok_s: number | null; generate_tok_s: number;
  host_us_per_token: number; dispatches_per_token: number; batched: Batched[];
}
const f1 = (x: number | null | undefined): string => (x === null || x === undefined ? '—' : x.toLocaleString('en-US', { maximumFractionDigits: 1, minimumFractionDigits: 1 }));

/** the speed table and the batched-decode table of webgpu.bench.js's JSON */
function speedTables(rs: Result[]): string {
  const main = markdownTable({
    head: ['model', 'weights', 'weights MiB', 'prefill tok/s', 'decode sync tok/s', 'decode greedyChain tok/s', 'generate() tok/s', 'host µs/token', 'dispatches/token'],
    align: ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    rows: rs.map((r) => [r.preset, r.weights, f1(r.weight_mib), f1(r.prefill_tok_s), f1(r.decode_tok_s), f1(r.chained_tok_s), f1(r.generate_tok_s), f1(r.host_us_per_token), String(r.dispatches_per_token)]),
  });
  const batches = [...new Set(rs.flatMap((r) => r.batched.map((b) => b.batch)))].sort((a, b) => a - b);
  if (batches.length === 0) return main;
  const batched = markdownTable({
    head: ['batch', ...rs.map((r) => `${r.preset} ${r.weights} (sync / greedyChain)`)],
    align: ['r', ...rs.map(() => 'r' as const)],
    rows: batches.map((B) => [String(B), ...rs.map((r) => {
      const b = r.batched.find((x) => x.batch === B);
      return b ? `${f1(b.tok_s)} / ${f1(b.chained_tok_s)}` : '—';
    })]),
  });
  return `${main}\n\nBatched greedy decode, total tok/s over the batch:\n\n${batched}`;
}

/** run webgpu.bench.js with --json, write NAME.json and NAME.md */
function table(name: string, title: string, args: string[]): void {
  const cmd = [path.join(here, 'webgpu.bench.js'), ...args, '--json'];
  process.stderr.write(`== ${title}: node ${cmd.join(' ')}\n`);
  const r = spawnSync(process.execPath, cmd, { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28 });
  const lines = (r.stdout?.toString() ?? '').trim().split('\n');
  let rs: Result[] | null = null;
  try {
    rs = JSON.parse(lines[lines.length - 1]) as Result[];
  } catch {
    /* reported below */
  }
  if (r.status !== 0 || !rs) {
    process.stderr.write(`${title} FAILED (exit ${r.status}${r.error ? `, ${r.error.message}` : ''}); its output:\n${lines.join('\n')}\n`);
    failed = true;
    return;
  }
  const md = `## ${title}\n\nCommand: node dist/bench/webgpu.bench.js ${args.join(' ')}  \nAdapter: ${rs[0]?.backend ?? '?'}; ${new Date().toISOString()}\n\n${speedTables(rs)}\n`;
  writeFileAtomic(path.join(out, `${name}.json`), enc.encode(JSON.stringify(rs, null, 1) + '\n'), `${title} results`);
  writeFileAtomic(path.join(out, `${name}.md`), enc.encode(md), `${title} table`);
  written.push(path.join(out, `${name}.json`), path.join(out, `${name}.md`));
  console.log(md);
}

if (!argv.includes('--skip-table')) {
  table('webgpu', 'WebGPU prefill and decode (130M shapes)', words(arg('table', '--presets mamba-130m,mamba2-130m,hybrid-130m,llama-130m --prompt 2048 --gen 128 --reps 3 --batch 1,8,32,64')));
}
const sizes = arg('sizes', '').split(',').filter((s) => s);
if (sizes.length) {
  const presets = sizes.flatMap((s) => [`mamba-${s}`, `mamba2-${s}`]);
  table('sizes', `WebGPU prefill and decode at the larger shapes (${sizes.join(', ')})`, ['--presets', presets.join(','), ...words(arg('sizes-args', '--prompt 2048 --gen 64 --reps 2 --no-profile'))]);
}
if (!argv.includes('--skip-context')) {
  const cmd = [path.join(here, 'webgpu-context.bench.js'), '--out', out, ...words(arg('context', ''))];
  process.stderr.write(`== context sweep: node ${cmd.join(' ')}\n`);
  const r = spawnSync(process.execPath, cmd, { stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`context sweep FAILED or a check failed (exit ${r.status})\n`);
    failed = true;
  }
  for (const f of ['context.json', 'context.md', 'context.svg']) if (fs.existsSync(path.join(out, f))) written.push(path.join(out, f));
}
console.log(`\nwrote ${written.join(', ') || 'nothing'}`);
if (failed) process.exitCode = 1;
