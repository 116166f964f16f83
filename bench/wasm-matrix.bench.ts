/**
 * The WebAssembly backend's table for issue 5: `mamba-ts bench` (one child process per cell, so peak RSS is
 * that cell's) for mamba-130m and mamba2-130m × weights f32/f16/bf16/q8 × threads 1/2, prefill 512 and
 * decode 128, next to llama.cpp's numbers measured on this machine type (quoted from the issue) and the
 * measured bandwidth ceiling. Writes the `bench:wasm-matrix` section of BENCHMARKS.md.
 *
 * Side by side with llama.cpp: given a llama-bench binary and a folder of GGUF files named
 * `<arch>-130m-<f32|f16|bf16|q8_0>.gguf` (made by you; this repository ships neither), each cell also runs
 * `llama-bench -m FILE -p P -n 0` and `llama-bench -m FILE -p 0 -n G -d P` right after ours, so both are measured in the
 * same sitting, and llama.cpp decodes at the context ours does (after the P-token prompt; `--llama-depth 0`: its tg from
 * an empty context, as before 2026-12-07, which flatters a Transformer: no KV cache to read).
 *
 *   node dist/bench/wasm-matrix.bench.js [--help] [--quick] [--no-write] [--archs mamba,mamba2] [--dtypes f32,q8] [--threads 1,2]
 *        [--llama-bench PATH --llama-models DIR [--llama-depth N]]
 *
 * `--llama-npm DIR` in place of `--llama-bench PATH`: llama.cpp's prebuilt CPU binaries from the npm package
 * node-llama-cpp installed in DIR (not a dependency; bench/llamacpp-npm.ts says how to install it), run through
 * bench/llamacpp-npm.ts with the same arguments; its tok/s is the median of the repetitions.
 */
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { commandUsage, flag, parseCommand, parseNumber, str, type CommandSpec } from '../src/cli/args.js';
import { commandLine, gitCommit, loadLine, machineInfo, machineLine, markdownTable, repoRoot, textTable, writeMarkedSection, type Table } from './report.js';
import { KV_CACHE_FORMATS } from '../src/tensor/dtype.js';
import { llamaRunner, nodeLlamaCppEntry, NODE_LLAMA_CPP_INSTALL, rowTokS } from './llamacpp-npm-lib.js';

const SPEC: CommandSpec = {
  name: 'wasm-matrix',
  prog: 'node dist/bench/wasm-matrix.bench.js',
  synopsis: '[options]',
  summary: 'mamba-ts bench on the wasm backend for each arch × weight format × threads (one process per cell), next to llama.cpp.',
  description: 'Rewrites the bench:wasm-matrix section of BENCHMARKS.md unless --no-write or --quick is given.',
  options: {
    quick: { type: 'boolean', help: 'prompt 64, 8 decode steps, 1 repetition; BENCHMARKS.md is not written' },
    'no-write': { type: 'boolean', help: 'print the table only' },
    archs: { type: 'string', value: 'A,…', help: 'default mamba,mamba2' },
    dtypes: { type: 'string', value: 'D,…', help: 'weight formats (default f32,f16,bf16,q8)' },
    threads: { type: 'string', value: 'N,…', help: 'thread counts (default 1,2)' },
    'llama-bench': { type: 'string', value: 'PATH', help: "llama.cpp's llama-bench binary: run right after each of our cells" },
    'llama-npm': { type: 'string', value: 'DIR', help: "instead of --llama-bench: the folder the npm package node-llama-cpp is installed in\n(its prebuilt llama.cpp, through bench/llamacpp-npm.ts; not a dependency)" },
    'llama-models': { type: 'string', value: 'DIR', help: 'folder of <arch>-130m-<f32|f16|bf16|q8_0>.gguf files' },
    'kv-cache': { type: 'string', value: 'F', help: "our KV cache format for the attention layers (mamba-ts bench --kv-cache): f32 (default), bf16, f16 or q8 — llama.cpp's cache is f16" },
    'llama-depth': { type: 'string', value: 'N', help: 'context llama.cpp decodes at (llama-bench -d): default the prompt length, where ours decodes; 0 = tg from an empty context' },
  },
  examples: ['node dist/bench/wasm-matrix.bench.js --archs mamba2 --dtypes f32,q8 --threads 2 --no-write'],
};
const values = parseCommand(SPEC, process.argv.slice(2));
if (!values) {
  process.stdout.write(commandUsage(SPEC));
  process.exit(0);
}
const opt = (name: string, dflt: string): string => str(values, name) ?? dflt;
const quick = flag(values, 'quick');
const write = !flag(values, 'no-write');
const archs = opt('archs', 'mamba,mamba2').split(',');
const dtypes = opt('dtypes', 'f32,f16,bf16,q8').split(',');
const threadList = opt('threads', '1,2').split(',').map((t) => parseNumber('threads', t, { integer: true, min: 1, expect: 'a positive integer' }, SPEC.name));
const kvCache = opt('kv-cache', 'f32');
if (!(KV_CACHE_FORMATS as readonly string[]).includes(kvCache)) {
  process.stderr.write(`${SPEC.name}: --kv-cache must be one of ${KV_CACHE_FORMATS.join(', ')} (got '${kvCache}')\n`);
  process.exit(2);
}
const prompt = quick ? 64 : 512;
const gen = quick ? 8 : 128;
const reps = quick ? 1 : 3;

/** llama.cpp on this machine type (issue 5; median of three, -t 2): prefill pp512, decode tg128 */
const LLAMA_CPP: Record<string, Record<string, [number, number]>> = {
  mamba: { f32: [246, 61], f16: [339, 77], q8: [310, 105] },
  mamba2: { f32: [406, 58], f16: [700, 88], q8: [613, 123] },
};

interface Cell {
  arch: string; dtype: string; threads: number;
  prefill_tok_s: number; decode_tok_s: number; peak_rss_mb: number; bandwidth_gb_s: number; decode_ceiling_tok_s: number; weight_mb: number;
  /** the ceiling counted with a recurrent state's bytes read and written (src/cli/bench.ts; absent in older JSON) */
  decode_ceiling_state_tok_s?: number;
  /** llama.cpp measured in the same sitting: [prefill, decode] tok/s (llama-bench: mean of its repetitions; --llama-npm: median) */
  llama?: [number, number];
}

const llamaModels = opt('llama-models', '');
const llama = llamaRunner(str(values, 'llama-bench'), str(values, 'llama-npm'), path.join(path.dirname(fileURLToPath(import.meta.url)), 'llamacpp-npm.js'), process.execPath);
if (llama?.npm) nodeLlamaCppEntry(str(values, 'llama-npm')!, NODE_LLAMA_CPP_INSTALL);
if (!!llama !== !!llamaModels) throw new Error('--llama-models goes with --llama-bench or --llama-npm');
// our decode steps follow the prompt: llama.cpp's tg runs at the same depth (a Transformer's decode reads its KV cache)
const llamaDepth = parseNumber('llama-depth', opt('llama-depth', String(prompt)), { integer: true, min: 0, expect: 'an integer >= 0' }, SPEC.name);
let llamaCommit = '';

/** llama-bench on the GGUF file of this cell, if there is one: [pp tok/s, tg tok/s] */
function runLlama(arch: string, dtype: string, threads: number): [number, number] | undefined {
  if (!llama || !llamaModels) return undefined;
  const file = path.join(llamaModels, `${arch}-130m-${dtype === 'q8' ? 'q8_0' : dtype}.gguf`);
  if (!existsSync(file)) return undefined;
  const bench = (args: string[]) => JSON.parse(execFileSync(llama.file, [...llama.prefix, '-m', file, ...args, '-t', String(threads), '-r', String(reps), '-o', 'json'],
    { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'ignore'] })) as Array<{ n_prompt: number; n_gen: number; avg_ts: number; median_ts?: number; build_commit?: string }>;
  // prefill from an empty context; decode at depth llamaDepth (a second run: -d would apply to the prefill too)
  const rows = llamaDepth > 0
    ? [...bench(['-p', String(prompt), '-n', '0']), ...bench(['-p', '0', '-n', String(gen), '-d', String(llamaDepth)])]
    : bench(['-p', String(prompt), '-n', String(gen)]);
  const pp = rows.find((r) => r.n_prompt > 0 && r.n_gen === 0);
  const tg = rows.find((r) => r.n_gen > 0 && r.n_prompt === 0);
  if (!pp || !tg) throw new Error(`llama-bench on ${file}: no pp/tg rows in its JSON output`);
  llamaCommit ||= rows[0].build_commit ?? '';
  return [rowTokS(pp), rowTokS(tg)];
}

const root = repoRoot(import.meta.url);
const cli = path.join(root, 'dist', 'src', 'cli', 'main.js');
const load0 = os.loadavg();
const cells: Cell[] = [];
for (const arch of archs) {
  for (const dtype of dtypes) {
    for (const threads of threadList) {
      process.stderr.write(`[wasm-matrix] ${arch} ${dtype} threads ${threads} …\n`);
      const out = execFileSync(process.execPath, [cli, 'bench', '--arch', arch, '--backend', 'wasm', '--dtype', dtype, '--threads', String(threads),
        '--prompt', String(prompt), '--gen', String(gen), '--reps', String(reps), '--kv-cache', kvCache, '--json'], { encoding: 'utf8', maxBuffer: 1 << 24 });
      const last = out.trim().split('\n').pop()!;
      cells.push({ arch, dtype, threads, ...(JSON.parse(last) as Omit<Cell, 'arch' | 'dtype' | 'threads'>) });
      const c = cells[cells.length - 1];
      process.stderr.write(`  prefill ${c.prefill_tok_s.toFixed(1)} tok/s, decode ${c.decode_tok_s.toFixed(1)} tok/s, peak RSS ${c.peak_rss_mb.toFixed(0)} MiB\n`);
      c.llama = runLlama(arch, dtype, threads);
      if (c.llama) process.stderr.write(`  llama.cpp: prefill ${c.llama[0].toFixed(1)} tok/s, decode ${c.llama[1].toFixed(1)} tok/s\n`);
    }
  }
}
const load1 = os.loadavg();

const f1 = (x: number): string => x.toFixed(1);
const sideBySide = cells.some((c) => c.llama);
const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
const table: Table = {
  head: [
    'model', 'weights', 'threads', `prefill ${prompt} tok/s`, `decode ${gen} tok/s`, 'decode ceiling tok/s', 'of ceiling', 'of ceiling with the state',
    ...(sideBySide ? [`llama.cpp pp${prompt} / tg${gen}${llamaDepth > 0 ? `@d${llamaDepth}` : ''} (same threads, this run)`, 'ours ÷ llama.cpp (prefill / decode)'] : []),
    'llama.cpp pp512 / tg128 (issue, -t 2)', 'peak RSS',
  ],
  rows: cells.map((c) => {
    const l = LLAMA_CPP[c.arch]?.[c.dtype];
    return [
      `${c.arch}-130m`, c.dtype, String(c.threads), f1(c.prefill_tok_s), f1(c.decode_tok_s), f1(c.decode_ceiling_tok_s),
      `${((100 * c.decode_tok_s) / c.decode_ceiling_tok_s).toFixed(0)}%`,
      c.decode_ceiling_state_tok_s && c.decode_ceiling_state_tok_s !== c.decode_ceiling_tok_s ? `${((100 * c.decode_tok_s) / c.decode_ceiling_state_tok_s).toFixed(0)}%` : '—',
      ...(sideBySide ? (c.llama ? [`${f1(c.llama[0])} / ${f1(c.llama[1])}`, `${ratio(c.prefill_tok_s, c.llama[0])} / ${ratio(c.decode_tok_s, c.llama[1])}`] : ['—', '—']) : []),
      l ? `${l[0]} / ${l[1]}` : '—', `${c.peak_rss_mb.toFixed(0)} MiB`,
    ];
  }),
  align: ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', ...(sideBySide ? ['r', 'r'] as const : []), 'r', 'r'],
};
process.stdout.write(textTable(table) + '\n');
if (write && !quick) {
  const bw = cells.map((c) => `${c.threads} thread(s) ${f1(c.bandwidth_gb_s)} GB/s`).filter((v, i, a) => a.indexOf(v) === i).slice(0, 4).join(', ');
  const section = [
    `### WebAssembly backend, batch 1 — ${new Date().toISOString()}`,
    '',
    `- machine: ${machineLine(machineInfo())}; Node ${process.version}; commit ${gitCommit(root)}`,
    `- command: \`${commandLine(import.meta.url, 'bench:wasm', 'npm run build && ')}\` (each cell is \`mamba-ts bench --arch A --backend wasm --dtype D --threads T --prompt ${prompt} --gen ${gen} --reps ${reps} --kv-cache ${kvCache} --json\` in its own process)`,
    `- load average at start / end: ${loadLine(load0)} → ${loadLine(load1)}`,
    `- measured streaming bandwidth (stream_sum kernel over a buffer of the weights' size): ${bw}; decode ceiling = bandwidth ÷ weight bytes; with the state: ÷ (weight bytes + 2 × a Mamba model's state per sequence, read and written each token)`,
    sideBySide
      ? `- llama.cpp side by side${llama?.npm ? ` (run by ${llama.label})` : ''}: \`${llamaDepth > 0 ? `llama-bench -m <arch>-130m-<type>.gguf -p ${prompt} -n 0 -t T -r ${reps}\` and \`llama-bench -m … -p 0 -n ${gen} -d ${llamaDepth} -t T -r ${reps}\` (decode at the context ours decodes at)` : `llama-bench -m <arch>-130m-<type>.gguf -p ${prompt} -n ${gen} -t T -r ${reps}\``} run right after each of our cells (build ${llamaCommit || 'unknown'}, ${llama?.npm ? "node-llama-cpp's prebuilt CPU binaries (ggml loads the variant for this CPU)" : 'CPU build with native flags'}, random-weight GGUF files of the same shapes; its tok/s is the ${llama?.npm ? 'median' : 'mean'} of its repetitions); the issue's quoted numbers are kept for reference`
      : `- llama.cpp numbers: quoted from issue 5 (measured on this machine type on 2026-11-28, -t 2, random weights; its f16 column applies to our f16/bf16 rows)`,
    '',
    markdownTable(table),
  ].join('\n');
  const file = writeMarkedSection(path.join(root, 'BENCHMARKS.md'), '<!-- bench:wasm-matrix:start -->', '<!-- bench:wasm-matrix:end -->', section, {
    headerIfNew: '# Benchmarks\n',
    fallbackHeading: '## WebAssembly backend: f32/f16/bf16/q8 × threads (`bench/wasm-matrix.bench.ts`)',
  });
  process.stderr.write(`updated ${file}\n`);
}
