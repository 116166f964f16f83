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
import { repoRoot } from './report.js';
import { anchorTable, speedTables, type Anchor, type Result } from './webgpu-tables.js';

const HELP = `npm run bench:webgpu -- [options]      (or node dist/bench/webgpu-suite.js [options])

  --out DIR         where the tables and the plot go (default bench-results)
  --table "ARGS"    arguments of the speed table (dist/bench/webgpu.bench.js; default
                    "--presets mamba-130m,mamba2-130m,hybrid-130m,llama-130m --prompt 2048 --gen 128 --reps 3 --batch 1,8,32,64")
  --sizes S,…       also the larger shapes (370m, 790m, 1.4b, 2.8b: mamba-S and mamba2-S), prefill and decode
  --sizes-args "ARGS"  their arguments (default "--prompt 2048 --gen 64 --reps 2 --no-profile")
  --anchors SRC     with --sizes: the official kernels at the same shapes in the same run
                    (python3 scripts/anchors/official_shapes.py SRC, SRC = a mamba_ssm source snapshot folder;
                    --python CMD, default python3), ratios in sizes.md, their numbers in sizes.json
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

function anchors(src: string, sizes: string[], dtypes: string[], prompt: string): Anchor[] {
  const script = path.join(repoRoot(import.meta.url), 'scripts', 'anchors', 'official_shapes.py');
  const [py, ...pyArgs] = words(arg('python', 'python3'));
  const cmd = [...pyArgs, script, src, '--sizes', sizes.join(','), '--dtypes', dtypes.join(','), '--prompt', prompt];
  process.stderr.write(`== official kernels at the same shapes: ${py} ${cmd.join(' ')}\n`);
  const r = spawnSync(py, cmd, { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
  const text = r.stdout?.toString() ?? '';
  process.stderr.write(text.split('\n').filter((l) => !l.startsWith('JSON ')).join('\n') + '\n');
  if (r.status !== 0) {
    process.stderr.write(`official_shapes.py FAILED (exit ${r.status}${r.error ? `, ${r.error.message}` : ''})\n`);
    failed = true;
  }
  return text.split('\n').filter((l) => l.startsWith('JSON ')).map((l) => JSON.parse(l.slice(5)) as Anchor);
}

/** run webgpu.bench.js with --json, write NAME.json and NAME.md */
function table(name: string, title: string, args: string[], extra?: (rs: Result[]) => { json: Record<string, unknown>; md: string }): void {
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
  const more = extra?.(rs);
  const md = `## ${title}\n\nCommand: node dist/bench/webgpu.bench.js ${args.join(' ')}  \nAdapter: ${rs[0]?.backend ?? '?'}; ${new Date().toISOString()}\n\n${speedTables(rs)}\n${more ? `\n${more.md}\n` : ''}`;
  writeFileAtomic(path.join(out, `${name}.json`), enc.encode(JSON.stringify(more ? { webgpu: rs, ...more.json } : rs, null, 1) + '\n'), `${title} results`);
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
  const sizeArgs = words(arg('sizes-args', '--prompt 2048 --gen 64 --reps 2 --no-profile'));
  const src = arg('anchors', '');
  const wi = sizeArgs.indexOf('--weights');
  const dtypes = (wi >= 0 ? sizeArgs[wi + 1] : 'f32').split(',').map((w) => (w === 'bf16' ? 'bf16' : 'fp32'));
  table('sizes', `WebGPU prefill and decode at the larger shapes (${sizes.join(', ')})`, ['--presets', presets.join(','), ...sizeArgs], src
    ? (rs) => {
        const pi = sizeArgs.indexOf('--prompt');
        const an = anchors(src, sizes, dtypes, pi >= 0 ? sizeArgs[pi + 1] : '2048');
        return { json: { official: an }, md: `Beside the official kernels at the same shapes (same run):\n\n${anchorTable(rs, an)}` };
      }
    : undefined);
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
