/**
 * The pure parts of bench/llamacpp-npm.ts (tested in test/bench/llamacpp-npm-lib.test.ts): the subset of
 * `llama-bench`'s command line that our benches pass (`-m -p -n -d -t -r -o -fa`), the tests it stands for, the rows
 * `llama-bench -o json` writes (the fields our benches read, and a median next to its mean), and where an
 * installed `node-llama-cpp` package's entry file is. No llama.cpp here.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

export interface LlamaBenchOptions {
  model: string;
  /** -p: prompt lengths (a pp test each, when > 0) */
  prompts: number[];
  /** -n: decode lengths (a tg test each, when > 0) */
  gens: number[];
  /** -d: depths (context before each test, not timed) */
  depths: number[];
  /** -t */
  threads: number[];
  /** -r */
  reps: number;
  /** -o */
  output: 'json' | 'md';
  /** -fa: flash attention on, off or llama.cpp's auto (default) */
  flashAttn: 'on' | 'off' | 'auto';
  /** --api: raw = the addon's llama_decode as llama-bench (default); sequence = node-llama-cpp's public controlledEvaluate */
  api: 'raw' | 'sequence';
  /** --npm: the folder node-llama-cpp is installed in (its node_modules/node-llama-cpp) */
  npmDir?: string;
}

const listOf = (flagName: string, raw: string | undefined, min: number): number[] => {
  if (raw === undefined || raw === '') throw new Error(`llamacpp-npm: ${flagName} needs a value (a number or a comma-separated list)`);
  return raw.split(',').map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < min) throw new Error(`llamacpp-npm: ${flagName} "${s}" is not an integer >= ${min}`);
    return n;
  });
};

/**
 * llama-bench's arguments as our benches use them; its defaults where one is not given (-p 512, -n 128, -d 0,
 * -r 5, -o md; threads: `defaultThreads`). Anything else is an error naming the argument, so that a bench does not
 * silently measure something other than it asked for.
 */
export function parseLlamaBenchArgs(argv: readonly string[], defaultThreads = 2): LlamaBenchOptions {
  const o: Partial<LlamaBenchOptions> & { prompts: number[]; gens: number[]; depths: number[]; threads: number[] } = {
    prompts: [512], gens: [128], depths: [0], threads: [defaultThreads], reps: 5, output: 'md', flashAttn: 'auto', api: 'raw',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`llamacpp-npm: ${a} needs a value`);
      return x;
    };
    switch (a) {
      case '-m': case '--model': o.model = val(); break;
      case '-p': case '--n-prompt': o.prompts = listOf(a, val(), 0); break;
      case '-n': case '--n-gen': o.gens = listOf(a, val(), 0); break;
      case '-d': case '--n-depth': o.depths = listOf(a, val(), 0); break;
      case '-t': case '--threads': o.threads = listOf(a, val(), 1); break;
      case '-r': case '--repetitions': o.reps = listOf(a, val(), 1)[0]; break;
      case '-o': case '--output': {
        const f = val();
        if (f !== 'json' && f !== 'md') throw new Error(`llamacpp-npm: -o "${f}": expected json or md`);
        o.output = f;
        break;
      }
      case '-fa': case '--flash-attn': {
        const f = val();
        const m: Record<string, 'on' | 'off' | 'auto'> = { 0: 'off', off: 'off', 1: 'on', on: 'on', auto: 'auto', '-1': 'auto' };
        if (!m[f]) throw new Error(`llamacpp-npm: ${a} "${f}": expected 0, 1, on, off or auto`);
        o.flashAttn = m[f];
        break;
      }
      case '--api': {
        const f = val();
        if (f !== 'raw' && f !== 'sequence') throw new Error(`llamacpp-npm: --api "${f}": expected raw or sequence`);
        o.api = f;
        break;
      }
      case '--npm': o.npmDir = val(); break;
      default:
        throw new Error(`llamacpp-npm: unsupported argument "${a}" (this stand-in for llama-bench takes -m, -p, -n, -d, -t, -r, -o, -fa, --api and --npm DIR)`);
    }
  }
  if (!o.model) throw new Error('llamacpp-npm: -m FILE (a GGUF model) is required');
  return o as LlamaBenchOptions;
}

export interface BenchTest { n_prompt: number; n_gen: number; n_depth: number; n_threads: number }

/** the tests llama-bench runs for these options, in its order: pp for each -p > 0, then tg for each -n > 0, at each depth and thread count */
export function benchTests(o: LlamaBenchOptions): BenchTest[] {
  const out: BenchTest[] = [];
  for (const t of o.threads) {
    for (const d of o.depths) {
      for (const p of o.prompts) if (p > 0) out.push({ n_prompt: p, n_gen: 0, n_depth: d, n_threads: t });
      for (const n of o.gens) if (n > 0) out.push({ n_prompt: 0, n_gen: n, n_depth: d, n_threads: t });
    }
  }
  return out;
}

export function mean(xs: readonly number[]): number {
  return xs.reduce((s, x) => s + x, 0) / xs.length;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function stddev(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
}

/**
 * One row as `llama-bench -o json` writes it (avg_ts: mean of the repetitions' tok/s, as llama-bench), plus
 * median_ts and, given the process's CPU ns of each repetition (all threads), cpu_ms_per_token (their median ÷ tokens).
 */
export function benchRow(t: BenchTest, samplesNs: readonly number[], info: { model: string; build: string; cpu: string; typeK?: string; typeV?: string; flashAttn?: number | boolean }, cpuNs?: readonly number[]): Record<string, unknown> {
  if (samplesNs.length === 0) throw new Error('llamacpp-npm: no timed repetitions');
  if (cpuNs && cpuNs.length !== samplesNs.length) throw new Error(`llamacpp-npm: ${cpuNs.length} CPU times for ${samplesNs.length} repetitions`);
  const tokens = t.n_prompt + t.n_gen;
  const ts = samplesNs.map((ns) => (tokens * 1e9) / ns);
  return {
    build_commit: info.build,
    cpu_info: info.cpu,
    backends: 'CPU',
    model_filename: info.model,
    n_threads: t.n_threads,
    n_prompt: t.n_prompt,
    n_gen: t.n_gen,
    n_depth: t.n_depth,
    type_k: info.typeK ?? 'f16',
    type_v: info.typeV ?? 'f16',
    flash_attn: info.flashAttn ?? -1,
    samples_ns: samplesNs.map((x) => Math.round(x)),
    samples_ts: ts,
    avg_ns: Math.round(mean(samplesNs)),
    stddev_ns: Math.round(stddev(samplesNs)),
    avg_ts: mean(ts),
    stddev_ts: stddev(ts),
    median_ts: median(ts),
    ...(cpuNs ? { samples_cpu_ns: cpuNs.map((x) => Math.round(x)), cpu_ms_per_token: median(cpuNs) / 1e6 / tokens } : {}),
  };
}

/** a row's test name as llama-bench prints it: pp512, tg128, tg128 @ d512 */
export function testName(t: Pick<BenchTest, 'n_prompt' | 'n_gen' | 'n_depth'>): string {
  const base = t.n_prompt > 0 ? `pp${t.n_prompt}` : `tg${t.n_gen}`;
  return t.n_depth > 0 ? `${base} @ d${t.n_depth}` : base;
}

/**
 * The entry file of node-llama-cpp installed under `dir` (the folder `npm install node-llama-cpp` ran in, or its
 * node_modules/node-llama-cpp), from its package.json's exports; a clear error saying how to install it otherwise.
 */
export function nodeLlamaCppEntry(dir: string, installHint: string): { entry: string; version: string; pkgDir: string } {
  const candidates = [path.join(dir, 'node_modules', 'node-llama-cpp'), dir];
  const pkgDir = candidates.find((c) => existsSync(path.join(c, 'package.json')) && JSON.parse(readFileSync(path.join(c, 'package.json'), 'utf8')).name === 'node-llama-cpp');
  if (!pkgDir) throw new Error(`--llama-npm ${dir}: no node-llama-cpp package there (looked for ${candidates.map((c) => path.join(c, 'package.json')).join(' and ')}); install it outside the repository: ${installHint}`);
  const pkg = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as { version?: string; main?: string; exports?: Record<string, unknown> };
  const dot = pkg.exports?.['.'];
  const rel = typeof dot === 'string' ? dot : (dot as Record<string, string> | undefined)?.import ?? (dot as Record<string, string> | undefined)?.default ?? pkg.main;
  if (!rel) throw new Error(`${pkgDir}/package.json: no "exports" "." or "main" entry`);
  return { entry: path.join(pkgDir, rel), version: pkg.version ?? 'unknown', pkgDir };
}

export const NODE_LLAMA_CPP_INSTALL = 'mkdir -p /tmp/llnpm && cd /tmp/llnpm && npm init -y && npm install node-llama-cpp@3.22.1';

/** how a bench runs llama.cpp: a llama-bench binary, or bench/llamacpp-npm.js (node-llama-cpp's prebuilt llama.cpp) with the same arguments */
export interface LlamaRunner {
  /** executable and the arguments before llama-bench's own */
  file: string;
  prefix: string[];
  /** for the report: how it was run, and whose build */
  label: string;
  npm: boolean;
}

/**
 * The bench options --llama-bench PATH / --llama-npm DIR as one runner (undefined: neither given, llama.cpp is not
 * run). `npmScript` is dist/bench/llamacpp-npm.js, `node` the Node binary to run it with.
 */
export function llamaRunner(bench: string | undefined, npmDir: string | undefined, npmScript: string, node: string): LlamaRunner | undefined {
  if (bench && npmDir) throw new Error('--llama-bench and --llama-npm: give one or the other (a llama-bench binary, or the folder node-llama-cpp is installed in)');
  if (bench) return { file: bench, prefix: [], label: `\`${path.basename(bench)}\``, npm: false };
  if (npmDir) return { file: node, prefix: [npmScript, '--npm', npmDir], label: `\`node dist/bench/llamacpp-npm.js --npm ${npmDir}\`, node-llama-cpp's prebuilt llama.cpp standing in for llama-bench`, npm: true };
  return undefined;
}

/** a llama-bench JSON row's tok/s: the median of the repetitions where the row has one (ours), else llama-bench's mean */
export function rowTokS(r: { avg_ts: number; median_ts?: number }): number {
  return typeof r.median_ts === 'number' ? r.median_ts : r.avg_ts;
}
