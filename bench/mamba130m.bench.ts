/**
 * Baseline CPU benchmark at the mamba-130m shape (the numbers later kernels — WASM SIMD, WebGPU — must beat).
 *
 *   npm run bench                         # full run, updates BENCHMARKS.md
 *   node --expose-gc dist/bench/mamba130m.bench.js --quick --no-write      # CI smoke run
 *   node --expose-gc dist/bench/mamba130m.bench.js --json                  # machine-readable result on stdout
 *
 * Options:
 *   --quick          fewer repetitions, shorter prompts / generations (smoke test; numbers are noisy)
 *   --no-write       do not touch BENCHMARKS.md
 *   --json           print the result as JSON on stdout instead of the table (progress still goes to stderr)
 *   --reps N         timed repetitions per measurement (default 3, quick 1); one warm-up run precedes them
 *   --chunk-size N   chunk size of the 'chunked' prefill scan (default: the model default, 64)
 *
 * Shape (state-spaces/mamba-130m): d_model 768, 24 layers, d_state 16, expand 2 (d_inner 1536), dt_rank 48,
 * conv 4, vocab 50280, tied embeddings, no in/out-proj bias, conv bias. Weights are random but seeded and
 * scaled like the real initialisation, so activations stay finite; nothing is downloaded.
 *
 * The random checkpoint is written (config.json + model.safetensors) to a temporary folder by a child
 * process (so building it does not count towards this process's peak memory), loaded with the public
 * `loadModel`, and the folder is deleted at the end.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate } from '../src/generate/generate.js';
import { Rng } from '../src/generate/rng.js';
import { writeSafetensorsAtomic, type WritableTensor } from '../src/io/safetensors.js';
import { WeightSource } from '../src/io/weights.js';
import { loadModel } from '../src/model.js';
import { readConfig } from '../src/models/config.js';
import { MambaLM, parseMambaConfig } from '../src/models/mamba.js';

// ------------------------------------------------------------------------------------------------
// Shape and random checkpoint

const SHAPE = {
  dModel: 768,
  nLayer: 24,
  dState: 16,
  expand: 2,
  dInner: 1536,
  dtRank: 48,
  dConv: 4,
  vocab: 50280,
};

const HF_CONFIG = {
  model_type: 'mamba',
  architectures: ['MambaForCausalLM'],
  hidden_size: SHAPE.dModel,
  intermediate_size: SHAPE.dInner,
  state_size: SHAPE.dState,
  num_hidden_layers: SHAPE.nLayer,
  conv_kernel: SHAPE.dConv,
  expand: SHAPE.expand,
  time_step_rank: SHAPE.dtRank,
  vocab_size: SHAPE.vocab,
  use_bias: false,
  use_conv_bias: true,
  hidden_act: 'silu',
  layer_norm_epsilon: 1e-5,
  tie_word_embeddings: true,
  bos_token_id: 0,
  eos_token_id: 0,
  pad_token_id: 0,
};

const SEED = 130;

/** uniform in [-a, a) */
function uniform(rng: Rng, n: number, a: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng.next() * 2 - 1) * a;
  return out;
}

function constant(n: number, v: number): Float32Array {
  return new Float32Array(n).fill(v);
}

/** Tensors of a randomly initialised mamba-130m in Hugging Face naming (seeded, deterministic). */
function randomCheckpoint(seed: number): Record<string, WritableTensor> {
  const { dModel: H, nLayer, dState: N, dInner: D, dtRank: R, dConv: K, vocab: V } = SHAPE;
  const rng = new Rng(seed);
  const t = (shape: number[], data: Float32Array): WritableTensor => ({ dtype: 'F32', shape, data });
  const out: Record<string, WritableTensor> = {};
  // embeddings: std 0.02 (uniform with the same std)
  out['backbone.embeddings.weight'] = t([V, H], uniform(rng, V * H, 0.02 * Math.sqrt(3)));
  const dtMin = 0.001, dtMax = 0.1;
  for (let i = 0; i < nLayer; i++) {
    const p = `backbone.layers.${i}.`;
    out[`${p}norm.weight`] = t([H], constant(H, 1));
    out[`${p}mixer.in_proj.weight`] = t([2 * D, H], uniform(rng, 2 * D * H, 1 / Math.sqrt(H)));
    out[`${p}mixer.conv1d.weight`] = t([D, 1, K], uniform(rng, D * K, 1 / Math.sqrt(K)));
    out[`${p}mixer.conv1d.bias`] = t([D], uniform(rng, D, 1 / Math.sqrt(K)));
    out[`${p}mixer.x_proj.weight`] = t([R + 2 * N, D], uniform(rng, (R + 2 * N) * D, 1 / Math.sqrt(D)));
    out[`${p}mixer.dt_proj.weight`] = t([D, R], uniform(rng, D * R, 1 / Math.sqrt(R)));
    // dt_proj bias = softplus⁻¹(dt), dt log-uniform in [dt_min, dt_max] (as the official init)
    const dtBias = new Float32Array(D);
    for (let d = 0; d < D; d++) {
      const dt = Math.exp(rng.next() * (Math.log(dtMax) - Math.log(dtMin)) + Math.log(dtMin));
      dtBias[d] = dt + Math.log(-Math.expm1(-dt));
    }
    out[`${p}mixer.dt_proj.bias`] = t([D], dtBias);
    const aLog = new Float32Array(D * N);
    for (let d = 0; d < D; d++) for (let n = 0; n < N; n++) aLog[d * N + n] = Math.log(n + 1);
    out[`${p}mixer.A_log`] = t([D, N], aLog);
    out[`${p}mixer.D`] = t([D], constant(D, 1));
    out[`${p}mixer.out_proj.weight`] = t([H, D], uniform(rng, H * D, 1 / Math.sqrt(D)));
  }
  out['backbone.norm_f.weight'] = t([H], constant(H, 1));
  return out;
}

/** Write config.json + model.safetensors into `dir` (runs in a child process; see main). */
function makeCheckpoint(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(HF_CONFIG, null, 2) + '\n');
  writeSafetensorsAtomic(path.join(dir, 'model.safetensors'), randomCheckpoint(SEED), { format: 'pt', note: `mamba-ts bench random init, seed ${SEED}` });
}

// ------------------------------------------------------------------------------------------------
// Measurement helpers

interface Options {
  quick: boolean;
  write: boolean;
  json: boolean;
  reps: number;
  chunkSize: number | undefined;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { quick: false, write: true, json: false, reps: 0, chunkSize: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${a} needs a positive integer, got ${argv[i]}`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--no-write') o.write = false;
    else if (a === '--json') o.json = true;
    else if (a === '--reps') o.reps = num();
    else if (a === '--chunk-size') o.chunkSize = num();
    else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: node --expose-gc dist/bench/mamba130m.bench.js [--quick] [--no-write] [--json] [--reps N] [--chunk-size N]\n');
      process.exit(0);
    } else throw new Error(`unknown option ${a} (try --help)`);
  }
  if (o.reps === 0) o.reps = o.quick ? 1 : 3;
  return o;
}

const gc: (() => void) | undefined = (globalThis as { gc?: () => void }).gc;
/**
 * Full GC, outside any timing. Large ArrayBuffers are released only after a few GC cycles separated by
 * turns of the event loop (V8 frees backing stores off-thread), so yield between cycles.
 */
async function collect(): Promise<void> {
  if (!gc) return;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const MiB = 1024 * 1024;
const fmtMiB = (b: number): string => `${(b / MiB).toFixed(1)} MiB`;

interface MemSample {
  phase: string;
  rss: number;
  heapUsed: number;
  arrayBuffers: number;
  external: number;
}

class MemoryTracker {
  readonly samples: MemSample[] = [];
  readonly peak = { rss: 0, heapUsed: 0, arrayBuffers: 0, external: 0 };
  /** sample now (call right after a compute phase, before any gc) */
  sample(phase: string, keep = true): void {
    const m = process.memoryUsage();
    const s = { phase, rss: m.rss, heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers, external: m.external };
    this.peak.rss = Math.max(this.peak.rss, s.rss);
    this.peak.heapUsed = Math.max(this.peak.heapUsed, s.heapUsed);
    this.peak.arrayBuffers = Math.max(this.peak.arrayBuffers, s.arrayBuffers);
    this.peak.external = Math.max(this.peak.external, s.external);
    if (keep) this.samples.push(s);
  }
}

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

function randomIds(rng: Rng, n: number): number[] {
  // avoid id 0 (eos) — irrelevant for timing, but keeps prompts "ordinary"
  return Array.from({ length: n }, () => 1 + Math.floor(rng.next() * (SHAPE.vocab - 1)));
}

interface Timed {
  /** per-repetition milliseconds (warm-up excluded) */
  ms: number[];
  medianMs: number;
}

function timed(ms: number[]): Timed {
  return { ms, medianMs: median(ms) };
}

// ------------------------------------------------------------------------------------------------
// Result

interface PrefillRow {
  algorithm: 'sequential' | 'chunked';
  promptLength: number;
  time: Timed;
  tokensPerSecond: number;
}

interface DecodeRow {
  batch: number;
  promptLength: number;
  newTokens: number;
  time: Timed;
  /** total generated tokens per second over the batch */
  tokensPerSecond: number;
  msPerStep: number;
}

interface Result {
  date: string;
  machine: { cpu: string; cores: number; totalMemory: number; platform: string; release: string; arch: string };
  /** os.loadavg() (1, 5, 15 min) at the start and the end: a loaded machine makes the numbers noisy */
  loadAverage: { start: number[]; end: number[] };
  node: string;
  commit: string;
  command: string;
  quick: boolean;
  reps: number;
  warmup: number;
  shape: typeof SHAPE;
  chunkSize: number;
  parameters: number;
  weightBytes: number;
  checkpointFileBytes: number;
  stateBytesPerSequence: number;
  load: { first: number; time: Timed };
  prefill: PrefillRow[];
  /** chunked tok/s ÷ sequential tok/s per prompt length (> 1: chunked faster) */
  chunkedOverSequential: { promptLength: number; ratio: number }[];
  decode: DecodeRow[];
  logitsFinite: boolean;
  memory: { peak: MemoryTracker['peak']; maxRSS: number; samples: MemSample[] };
  totalSeconds: number;
}

// ------------------------------------------------------------------------------------------------
// Main

/** Time `loadModel(dir)`: the first (warm-up) load and `reps` more. The models are dropped. */
async function measureLoad(dir: string, warmup: number, reps: number, mem: MemoryTracker): Promise<{ firstLoad: number; loadMs: number[] }> {
  const loadMs: number[] = [];
  let firstLoad = 0;
  for (let r = 0; r < warmup + reps; r++) {
    await collect();
    const dt = await loadOnce(dir, mem, `after loadModel #${r + 1}`, r === 0);
    if (r === 0) firstLoad = dt;
    else loadMs.push(dt);
    log(`loadModel #${r + 1}: ${dt.toFixed(0)} ms${r < warmup ? ' (warm-up)' : ''}`);
  }
  return { firstLoad, loadMs };
}

/** One timed load; the model is unreachable once this returns (so the next load does not hold two). */
async function loadOnce(dir: string, mem: MemoryTracker, phase: string, keepSample: boolean): Promise<number> {
  const t0 = performance.now();
  const m = await loadModel(dir, { tokenizer: false });
  const dt = performance.now() - t0;
  mem.sample(phase, keepSample);
  if (m.lm.modelType !== 'mamba') throw new Error(`loaded a ${m.lm.modelType} model, expected mamba`);
  return dt;
}


async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--make-checkpoint') {
    makeCheckpoint(argv[1]);
    return;
  }
  const opts = parseArgs(argv);
  const tStart = performance.now();
  const loadAvgStart = os.loadavg();
  if (!gc) log('warning: run with node --expose-gc for stable memory numbers (gc between repetitions)');

  const prefillLengths = opts.quick ? [16, 64] : [64, 256];
  const decodePrompt = 16;
  const decodeNew = opts.quick ? 8 : 32;
  const decodeBatches = [1, 4];
  const warmup = 1;
  const loadReps = opts.quick ? 1 : 3;
  const mem = new MemoryTracker();
  mem.sample('start');

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-bench-'));
  try {
    // -- checkpoint (child process) --
    log(`writing random mamba-130m checkpoint to ${dir} (seed ${SEED}) ...`);
    const tMake = performance.now();
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--make-checkpoint', dir], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (child.status !== 0) throw new Error(`checkpoint writer failed (status ${child.status}${child.signal ? `, signal ${child.signal}` : ''})`);
    const fileBytes = fs.statSync(path.join(dir, 'model.safetensors')).size;
    log(`checkpoint: ${fmtMiB(fileBytes)} in ${((performance.now() - tMake) / 1000).toFixed(1)} s`);

    // -- load (in its own function: a suspended async frame would keep the last loaded model alive) --
    const { firstLoad, loadMs } = await measureLoad(dir, warmup, loadReps, mem);
    await collect();

    // -- the two benchmark models (one per prefill scan algorithm) share one set of weight arrays, so the
    //    memory numbers are those of one model: float32() results are cached across the two constructions --
    const config = parseMambaConfig(readConfig(dir), path.join(dir, 'config.json'));
    const weights = sharedFloat32(WeightSource.openDir(dir));
    const models = {
      sequential: new MambaLM(config, weights, { scan: { algorithm: 'sequential', chunkSize: opts.chunkSize } }),
      chunked: new MambaLM(config, weights, { scan: { algorithm: 'chunked', chunkSize: opts.chunkSize } }),
    };
    const info = models.chunked.describe();
    const parameters = Number(info.parameters);
    const stateBytes = Number(info.state_bytes_per_sequence ?? models.chunked.createState(1).byteSize);
    mem.sample('models built');

    const rng = new Rng(SEED + 1);
    let logitsFinite = true;
    const checkFinite = (data: Float32Array): void => {
      for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) { logitsFinite = false; return; }
    };

    // -- prefill: interleave the algorithms per repetition so drift affects both alike --
    const prefill: PrefillRow[] = [];
    for (const L of prefillLengths) {
      const prompt = randomIds(rng, L);
      const ms: Record<'sequential' | 'chunked', number[]> = { sequential: [], chunked: [] };
      for (let r = 0; r < warmup + opts.reps; r++) {
        for (const alg of ['sequential', 'chunked'] as const) {
          const lm = models[alg];
          await collect();
          const state = lm.createState(1);
          const t0 = performance.now();
          const logits = await lm.advance([prompt], state);
          const dt = performance.now() - t0;
          mem.sample(`prefill L=${L} ${alg}`, r === 0);
          if (r === 0) checkFinite(logits.data);
          if (r >= warmup) ms[alg].push(dt);
          log(`prefill L=${L} ${alg} #${r + 1}: ${dt.toFixed(0)} ms${r < warmup ? ' (warm-up)' : ''}`);
        }
      }
      for (const alg of ['sequential', 'chunked'] as const) {
        const t = timed(ms[alg]);
        prefill.push({ algorithm: alg, promptLength: L, time: t, tokensPerSecond: L / (t.medianMs / 1000) });
      }
    }
    const chunkedOverSequential = prefillLengths.map((L) => {
      const s = prefill.find((p) => p.algorithm === 'sequential' && p.promptLength === L)!;
      const c = prefill.find((p) => p.algorithm === 'chunked' && p.promptLength === L)!;
      return { promptLength: L, ratio: c.tokensPerSecond / s.tokensPerSecond };
    });

    // -- decode (greedy, no stop tokens, so every run generates exactly decodeNew tokens per sequence) --
    const decode: DecodeRow[] = [];
    for (const b of decodeBatches) {
      const prompts = Array.from({ length: b }, () => randomIds(rng, decodePrompt));
      const ms: number[] = [];
      for (let r = 0; r < warmup + opts.reps; r++) {
        await collect();
        const res = await generate(models.chunked, prompts, { maxNewTokens: decodeNew, stopTokens: [], doSample: false });
        mem.sample(`decode batch ${b}`, r === 0);
        if (res.stats.generatedTokens !== b * decodeNew) throw new Error(`decode: expected ${b * decodeNew} tokens, got ${res.stats.generatedTokens}`);
        if (r >= warmup) ms.push(res.stats.decodeMs);
        log(`decode batch ${b} #${r + 1}: ${res.stats.decodeMs.toFixed(0)} ms for ${res.stats.generatedTokens} tokens${r < warmup ? ' (warm-up)' : ''}`);
      }
      const t = timed(ms);
      decode.push({
        batch: b, promptLength: decodePrompt, newTokens: decodeNew, time: t,
        tokensPerSecond: (b * decodeNew) / (t.medianMs / 1000),
        msPerStep: t.medianMs / decodeNew,
      });
    }

    mem.sample('end');
    const cpus = os.cpus();
    const result: Result = {
      date: new Date().toISOString(),
      machine: { cpu: cpus[0]?.model.trim() ?? 'unknown', cores: cpus.length, totalMemory: os.totalmem(), platform: os.platform(), release: os.release(), arch: os.arch() },
      loadAverage: { start: loadAvgStart, end: os.loadavg() },
      node: process.version,
      commit: gitCommit(),
      command: commandLine(),
      quick: opts.quick,
      reps: opts.reps,
      warmup,
      shape: SHAPE,
      chunkSize: models.chunked.scanChunkSize,
      parameters,
      weightBytes: parameters * 4,
      checkpointFileBytes: fileBytes,
      stateBytesPerSequence: stateBytes,
      load: { first: firstLoad, time: timed(loadMs) },
      prefill,
      chunkedOverSequential,
      decode,
      logitsFinite,
      memory: { peak: mem.peak, maxRSS: process.resourceUsage().maxRSS * 1024, samples: mem.samples },
      totalSeconds: (performance.now() - tStart) / 1000,
    };

    const md = renderMarkdown(result);
    if (opts.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    else process.stdout.write(renderText(result));
    if (opts.write) {
      const file = writeBenchmarks(md);
      log(`updated ${file}`);
    }
    if (!logitsFinite) {
      log('error: non-finite logits — the random initialisation is broken');
      process.exitCode = 1;
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A view of `src` whose `float32(name)` returns the same array on every call (the models treat weight
 * arrays as read-only), so two models built from it share their weights. Everything else is delegated.
 */
function sharedFloat32(src: WeightSource): WeightSource {
  const cache = new Map<string, Float32Array>();
  const float32 = (name: string): Float32Array => {
    let a = cache.get(name);
    if (!a) {
      a = src.float32(name);
      cache.set(name, a);
    }
    return a;
  };
  return new Proxy(src, {
    get(target, prop) {
      if (prop === 'float32') return float32;
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

function gitCommit(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot(), stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    let dirty = '';
    try {
      const st = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: repoRoot(), stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
      if (st) dirty = ' (with uncommitted changes)';
    } catch {
      /* ignore */
    }
    return sha + dirty;
  } catch {
    return 'unknown';
  }
}

function commandLine(): string {
  const script = path.relative(repoRoot(), fileURLToPath(import.meta.url)) || fileURLToPath(import.meta.url);
  const direct = ['node', ...process.execArgv, script, ...process.argv.slice(2)].join(' ');
  if (process.env.npm_lifecycle_event === 'bench') {
    const extra = process.argv.slice(2);
    return `npm run bench${extra.length ? ` -- ${extra.join(' ')}` : ''}  (= tsc -p tsconfig.json && ${direct})`;
  }
  return direct;
}

/** repository root: the script runs from dist/bench/ */
function repoRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
}

// ------------------------------------------------------------------------------------------------
// Output

function table(head: string[], rows: string[][], align: ('l' | 'r')[]): string {
  const lines = [`| ${head.join(' | ')} |`, `|${align.map((a) => (a === 'r' ? '---:' : ':---')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

function textTable(head: string[], rows: string[][], align: ('l' | 'r')[]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]): string => r.map((c, i) => (align[i] === 'r' ? c.padStart(w[i]) : c.padEnd(w[i]))).join('  ');
  return [fmt(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(fmt)].join('\n');
}

const f1 = (x: number): string => x.toFixed(1);
const f2 = (x: number): string => x.toFixed(2);
const msList = (t: Timed): string => t.ms.map((m) => m.toFixed(0)).join(', ');

function numbers(r: Result): { head: string[]; rows: string[][]; align: ('l' | 'r')[] } {
  const head = ['measurement', 'value', 'median time', 'runs (ms)'];
  const rows: string[][] = [];
  for (const p of r.prefill) {
    rows.push([`prefill ${p.algorithm}, L=${p.promptLength}, batch 1`, `${f1(p.tokensPerSecond)} tok/s`, `${p.time.medianMs.toFixed(0)} ms`, msList(p.time)]);
  }
  for (const c of r.chunkedOverSequential) {
    rows.push([`prefill chunked ÷ sequential (tok/s), L=${c.promptLength}`, `${f2(c.ratio)}×`, '', '']);
  }
  for (const d of r.decode) {
    rows.push([
      `decode, batch ${d.batch} (${d.newTokens} new after ${d.promptLength}-token prompt)`,
      `${f1(d.tokensPerSecond)} tok/s`,
      `${d.time.medianMs.toFixed(0)} ms (${f1(d.msPerStep)} ms/step)`,
      msList(d.time),
    ]);
  }
  rows.push(['model load (`loadModel`, warm page cache)', `${r.load.time.medianMs.toFixed(0)} ms`, `first: ${r.load.first.toFixed(0)} ms`, msList(r.load.time)]);
  rows.push(['parameters / weight bytes (f32)', `${(r.parameters / 1e6).toFixed(2)} M`, fmtMiB(r.weightBytes), `file ${fmtMiB(r.checkpointFileBytes)}`]);
  rows.push(['state bytes per sequence', `${(r.stateBytesPerSequence / 1024).toFixed(0)} KiB`, '', '']);
  rows.push(['peak RSS (`resourceUsage().maxRSS`)', fmtMiB(r.memory.maxRSS), '', '']);
  rows.push(['peak sampled rss / heapUsed / arrayBuffers', fmtMiB(r.memory.peak.rss), fmtMiB(r.memory.peak.heapUsed), fmtMiB(r.memory.peak.arrayBuffers)]);
  return { head, rows, align: ['l', 'r', 'r', 'l'] };
}

function memoryRows(r: Result): { head: string[]; rows: string[][]; align: ('l' | 'r')[] } {
  return {
    head: ['after phase', 'rss', 'heapUsed', 'arrayBuffers'],
    rows: r.memory.samples.map((s) => [s.phase, fmtMiB(s.rss), fmtMiB(s.heapUsed), fmtMiB(s.arrayBuffers)]),
    align: ['l', 'r', 'r', 'r'],
  };
}

function machineLine(r: Result): string {
  const m = r.machine;
  return `${m.cpu}, ${m.cores} cores, ${(m.totalMemory / 1024 ** 3).toFixed(1)} GiB, ${m.platform} ${m.release} (${m.arch})`;
}

const loadLine = (l: number[]): string => l.map((x) => x.toFixed(2)).join(' / ');

function renderText(r: Result): string {
  const n = numbers(r);
  const m = memoryRows(r);
  return [
    '',
    `mamba-130m shape, CPU backend, random weights — ${r.date}`,
    `machine: ${machineLine(r)}; node ${r.node}; commit ${r.commit}`,
    `load average at start ${loadLine(r.loadAverage.start)}, at end ${loadLine(r.loadAverage.end)}`,
    `reps: ${r.reps} timed (+${r.warmup} warm-up), medians; chunk size ${r.chunkSize}${r.quick ? '; QUICK run' : ''}; logits finite: ${r.logitsFinite}`,
    '',
    textTable(n.head, n.rows, n.align),
    '',
    textTable(m.head, m.rows, m.align),
    '',
    `total runtime: ${r.totalSeconds.toFixed(1)} s`,
    '',
  ].join('\n');
}

function renderMarkdown(r: Result): string {
  const n = numbers(r);
  const m = memoryRows(r);
  const short = r.chunkedOverSequential.filter((c) => c.promptLength <= r.chunkSize).map((c) => c.promptLength);
  return [
    `### mamba-130m, CPU backend — ${r.date}${r.quick ? ' (quick run)' : ''}`,
    '',
    `- date: ${r.date}`,
    `- machine: ${machineLine(r)}`,
    `- load average (1/5/15 min) at start: ${loadLine(r.loadAverage.start)}, at end: ${loadLine(r.loadAverage.end)}`,
    `- node: ${r.node}`,
    `- commit: ${r.commit}`,
    `- command: \`${r.command}\``,
    `- repetitions: ${r.reps} timed + ${r.warmup} warm-up per measurement, median reported; prefill algorithms interleaved per repetition`,
    `- chunked scan chunk size: ${r.chunkSize}${short.length ? ` (prompts of length ≤ chunk size — here ${short.join(', ')} — run the sequential scan in the chunked model too, so their ratio is ~1 by construction)` : ''}`,
    `- logits finite: ${r.logitsFinite ? 'yes' : 'NO'}; total runtime ${r.totalSeconds.toFixed(1)} s`,
    '',
    table(n.head, n.rows, n.align),
    '',
    '<details><summary>memory after each phase (process.memoryUsage)</summary>',
    '',
    table(m.head, m.rows, m.align),
    '',
    '</details>',
  ].join('\n');
}

const START = '<!-- bench:mamba130m:start -->';
const END = '<!-- bench:mamba130m:end -->';

const HEADER = `# Benchmarks

Baseline numbers for mamba-ts on the plain-TypeScript CPU backend. Faster backends (WASM SIMD, WebGPU) are
measured with the same script and must beat these.

## mamba-130m (\`bench/mamba130m.bench.ts\`)

Run it with:

    npm run bench                                   # build, run, rewrite the section below
    node --expose-gc dist/bench/mamba130m.bench.js --quick --no-write   # smoke run (CI), leaves this file alone
    node --expose-gc dist/bench/mamba130m.bench.js --json --no-write    # JSON on stdout

Options: \`--quick\` (1 timed repetition, prompts 16/64, 8 new tokens), \`--no-write\`, \`--json\`,
\`--reps N\`, \`--chunk-size N\`.

What is measured (one process, one run):

- **Model**: the state-spaces/mamba-130m shape — d_model 768, 24 layers, d_state 16, expand 2 (d_inner 1536),
  dt_rank 48, conv 4, vocab 50280, tied embeddings, no in/out bias, conv bias; ≈129 M parameters, f32.
  Weights are random, seeded and scaled like the real init (embeddings std 0.02, linear weights
  U(±1/√fan_in), A_log = log(1..16), D = 1, dt_proj bias = softplus⁻¹(dt), dt log-uniform in
  [0.001, 0.1]); no network. A child process writes the checkpoint (config.json + model.safetensors) to a
  temporary folder, which is deleted at the end.
- **Model load**: \`loadModel(dir)\` on that folder (file in the page cache); median of 3 after 1 warm-up.
- **Prefill** (batch 1, prompt lengths 64 and 256): one \`advance\` call on a fresh state (logits of the last
  position only), for the \`sequential\` and the \`chunked\` prefill scan (two models sharing the same
  weights, interleaved per repetition); tokens/s = prompt length ÷ median time. The ratio chunked ÷
  sequential (> 1: chunked faster) comes from the same run. On one thread the chunked scan does more work;
  its value comes with parallel backends.
- **Decode** (batch 1 and batch 4): \`generate\` with a 16-token prompt and 32 new tokens (greedy, no stop
  tokens); only the decode loop is timed (\`stats.decodeMs\`: 32 single-token \`advance\` steps plus
  sampling). Batch 4 reports total tokens/s over the batch.
- **Memory**: \`process.memoryUsage()\` sampled after every phase (peak of the samples), the process's
  \`resourceUsage().maxRSS\`, the weight bytes (parameters × 4) and the recurrent state per sequence
  (constant in sequence length).
- Each measurement is 3 timed repetitions after 1 warm-up (\`--expose-gc\`: a GC before each repetition,
  outside the timing); the median is reported, and every repetition is listed. Single-threaded: the CPU
  backend uses one core.
- Noise: the numbers are wall-clock times on whatever else the machine is doing; the section records the
  load average at the start and the end of the run. On a busy machine repetitions differ by ±20 % or more,
  so compare backends with runs on the same, quiet machine (the chunked ÷ sequential ratio at a prompt
  length ≤ the chunk size is ~1 by construction and shows the noise level).
- Runtime: a full run takes 5–6 minutes on a 2-core AMD EPYC VM (prefill at L = 256 dominates:
  ~16 s per pass at ~15 tokens/s).
`;

function writeBenchmarks(section: string): string {
  const file = path.join(repoRoot(), 'BENCHMARKS.md');
  const block = `${START}\n${section}\n${END}`;
  let text: string;
  if (fs.existsSync(file)) {
    const old = fs.readFileSync(file, 'utf8');
    const a = old.indexOf(START);
    const b = old.indexOf(END);
    if (a >= 0 && b > a) text = old.slice(0, a) + block + old.slice(b + END.length);
    else text = `${old.replace(/\s*$/, '')}\n\n${block}\n`;
  } else {
    text = `${HEADER}\n## Latest run\n\n${block}\n`;
  }
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  return file;
}

main().catch((e: unknown) => {
  process.stderr.write(`[bench] failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
