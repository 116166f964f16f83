/**
 * One CPU benchmark for every architecture at ~130M parameters: Mamba-1, Mamba-2, a Bamba-style hybrid
 * and a same-size Llama Transformer (`PRESETS` in src/models/random.ts), with seeded random weights made
 * on the spot (`RandomTensorSource`: no checkpoint, no network).
 *
 *   npm run bench                                                   # full run, rewrites BENCHMARKS.md
 *   node --expose-gc dist/bench/models.bench.js --quick --no-write  # CI smoke run (well under 2 minutes)
 *   node --expose-gc dist/bench/models.bench.js --json --no-write   # machine-readable result on stdout
 *
 * Options:
 *   --quick          1 repetition, no warm-up (a short JIT warm-up instead), prompts 16 and 64, long
 *                    context 128, 8 decode steps, no load-from-disk measurement; numbers are noisy
 *   --presets a,b    which presets, in this order (default: the ~130M ones of PRESETS)
 *   --no-write       do not touch BENCHMARKS.md
 *   --json           print the result as JSON on stdout instead of tables (progress goes to stderr)
 *   --reps N         timed repetitions per measurement (default 3, quick 1); medians are reported
 *   --warmup N       untimed warm-up runs before them (default 1, quick 0)
 *   --long N         the long context of the long-context decode measurement (default 1024, quick 128)
 *   --chunk-size N   chunk size of the chunked prefill (default: the model's, 64 for Mamba-1, 256 for Mamba-2)
 *   --load/--no-load also time `loadModel` on a safetensors checkpoint of the same weights (default: on,
 *                    off with --quick); writes ~0.5 GB to a temporary folder per preset, deleted afterwards
 *
 * The parent process runs each preset in its own child process (`--child PRESET --json`), so the peak
 * RSS (`process.resourceUsage().maxRSS`) is that model's alone; the child prints one JSON line, the parent
 * renders the tables and writes BENCHMARKS.md. The load measurement runs in a second child
 * (`--child-load PRESET --json`) so writing and re-reading the checkpoint does not count towards it.
 */
import { trainingBench } from './train.bench.js';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../src/generate/rng.js';
import { writeSafetensorsAtomic, type TensorEntry, type WritableTensor } from '../src/io/safetensors.js';
import type { TensorSource } from '../src/io/weights.js';
import { loadModel } from '../src/model.js';
import type { CausalLM } from '../src/models/model.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel, type ModelOptions } from '../src/models/registry.js';
import { resolveBackend } from '../src/model.js';
import { prefillSupport, type PrefillSupport } from '../src/backend/backend.js';
import { ModelState } from '../src/models/state.js';
import type { HostTensor } from '../src/tensor/tensor.js';
import {
  collect,
  commandLine,
  fmtMiB,
  fmtMs,
  gitCommit,
  loadLine,
  machineInfo,
  machineLine,
  markdownTable,
  msList,
  repoRoot,
  textTable,
  timed,
  writeMarkedSection,
  type MachineInfo,
  type Table,
  type Timed,
} from './report.js';

const SEED = 130;
const THIS_FILE = fileURLToPath(import.meta.url);

// ------------------------------------------------------------------------------------------------
// Options and plan

interface Options {
  quick: boolean;
  write: boolean;
  json: boolean;
  reps: number;
  warmup: number;
  long: number;
  chunkSize: number | undefined;
  load: boolean;
  presets: string[];
  /** backend of the measured models: cpu (TypeScript reference) or wasm */
  backend: 'cpu' | 'wasm';
  threads: number | undefined;
  dtype: 'f32' | 'f16' | 'bf16' | 'q8';
  /** internal: measure this preset and print one JSON line */
  child: string | undefined;
  /** internal: time loadModel for this preset and print one JSON line */
  childLoad: string | undefined;
}

const USAGE = `usage: node --expose-gc dist/bench/models.bench.js [--quick] [--presets a,b] [--no-write] [--json]
         [--reps N] [--warmup N] [--long N] [--chunk-size N] [--load | --no-load]
         [--backend cpu|wasm] [--threads N] [--dtype f32|f16|bf16|q8]
presets: ${Object.keys(PRESETS).join(', ')}
`;

function parseArgs(argv: string[]): Options {
  const o: Options = {
    quick: false, write: true, json: false, reps: -1, warmup: -1, long: -1, chunkSize: undefined, load: true,
    presets: Object.keys(PRESETS).filter((p) => p.endsWith('-130m')), child: undefined, childLoad: undefined, backend: 'cpu', threads: undefined, dtype: 'f32',
  };
  let loadGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    const int = (min: number): number => {
      const s = value();
      const v = Number(s);
      if (!Number.isInteger(v) || v < min) throw new UsageError(`${a} needs an integer ≥ ${min}, got ${s}`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--no-write') o.write = false;
    else if (a === '--json') o.json = true;
    else if (a === '--reps') o.reps = int(1);
    else if (a === '--warmup') o.warmup = int(0);
    else if (a === '--long') o.long = int(1);
    else if (a === '--chunk-size') o.chunkSize = int(1);
    else if (a === '--load') (o.load = true), (loadGiven = true);
    else if (a === '--no-load') (o.load = false), (loadGiven = true);
    else if (a === '--presets') o.presets = value().split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '--backend') {
      const b = value();
      if (b !== 'cpu' && b !== 'wasm') throw new UsageError(`--backend must be cpu or wasm, got ${b}`);
      o.backend = b;
    } else if (a === '--threads') o.threads = int(1);
    else if (a === '--dtype') {
      const d = value();
      if (!['f32', 'f16', 'bf16', 'q8'].includes(d)) throw new UsageError(`--dtype must be f32, f16, bf16 or q8, got ${d}`);
      o.dtype = d as Options['dtype'];
    } else if (a === '--child') o.child = value();
    else if (a === '--child-load') o.childLoad = value();
    else if (a === '--help' || a === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else throw new UsageError(`unknown option ${a} (try --help)`);
  }
  for (const p of [...o.presets, ...(o.child ? [o.child] : []), ...(o.childLoad ? [o.childLoad] : [])]) {
    if (!(p in PRESETS)) throw new UsageError(`unknown preset "${p}" (known: ${Object.keys(PRESETS).join(', ')})`);
  }
  if (o.presets.length === 0) throw new UsageError('--presets: no preset given');
  if (o.threads !== undefined && o.backend !== 'wasm') throw new UsageError('--threads needs --backend wasm');
  if (o.reps < 0) o.reps = o.quick ? 1 : 3;
  if (o.warmup < 0) o.warmup = o.quick ? 0 : 1;
  if (o.long < 0) o.long = o.quick ? 128 : 1024;
  if (!loadGiven) o.load = !o.quick;
  return o;
}

/** What is measured, derived from the options (the same in parent and children). */
interface Plan {
  reps: number;
  warmup: number;
  prefillLengths: number[];
  /** prompt length before the short-context decode and the batched decode */
  decodePrompt: number;
  decodeSteps: number;
  longContext: number;
  longSteps: number;
  batch: number;
  batchSteps: number;
  chunkSize: number | null;
}

function makePlan(o: Options): Plan {
  return {
    reps: o.reps,
    warmup: o.warmup,
    prefillLengths: o.quick ? [16, 64] : [64, 512],
    decodePrompt: 16,
    decodeSteps: o.quick ? 8 : 32,
    longContext: o.long,
    longSteps: o.quick ? 8 : 16,
    batch: 4,
    batchSteps: o.quick ? 8 : 32,
    chunkSize: o.chunkSize ?? null,
  };
}

/** Arguments that make a child compute the same plan. */
function planArgs(o: Options): string[] {
  const a = ['--reps', String(o.reps), '--warmup', String(o.warmup), '--long', String(o.long)];
  if (o.quick) a.push('--quick');
  if (o.chunkSize !== undefined) a.push('--chunk-size', String(o.chunkSize));
  a.push('--backend', o.backend, '--dtype', o.dtype);
  if (o.threads !== undefined) a.push('--threads', String(o.threads));
  return a;
}

// ------------------------------------------------------------------------------------------------
// Prefill algorithms per architecture

interface Algorithm {
  name: string;
  options: ModelOptions;
}

/**
 * The model's default prefill on the backend (`main`: the first algorithm of `Backend.prefill`; CPU: chunked scan /
 * chunked SSD) and, for SSMs, the other algorithm it is compared with (Mamba-1: chunked ↔ sequential scan; Mamba-2
 * and its hybrids: chunked ↔ the token-by-token recurrence). Attention-only models have one prefill. `chunkSize`
 * goes to the chunked one.
 */
function algorithmsFor(modelType: string, chunkSize: number | undefined, support: PrefillSupport): { main: Algorithm; reference: Algorithm | null } {
  const pair = <A extends string>(main: A, other: A, options: (algorithm: A) => ModelOptions) =>
    ({ main: { name: main, options: options(main) }, reference: { name: other, options: options(other) } });
  if (['mamba', 'falcon_mamba', 'jamba'].includes(modelType)) {
    const main = support.scan[0];
    return pair(main, main === 'chunked' ? 'sequential' : 'chunked', (algorithm) => ({ scan: { algorithm, ...(algorithm === 'chunked' ? { chunkSize } : {}) } }));
  }
  if (['mamba2', 'bamba', 'granitemoehybrid', 'nemotron_h'].includes(modelType)) {
    const main = support.ssd[0];
    return pair(main, main === 'chunked' ? 'recurrent' : 'chunked', (algorithm) => ({ ssd: { algorithm, ...(algorithm === 'chunked' ? { chunkSize } : {}) } }));
  }
  return { main: { name: 'default', options: {} }, reference: null };
}

// ------------------------------------------------------------------------------------------------
// Results

interface PrefillRow {
  algorithm: string;
  promptLength: number;
  time: Timed;
  tokensPerSecond: number;
}

interface DecodeRow {
  batch: number;
  /** tokens already in the state when the timed steps start */
  context: number;
  steps: number;
  time: Timed;
  /** generated tokens per second, summed over the batch */
  tokensPerSecond: number;
  msPerStep: number;
}

interface StateSize {
  context: number;
  /** `state.byteSize` for one sequence: every state tensor × 4 bytes, KV-cache capacity included */
  bytes: number;
  /** the same with KV caches counted only up to the filled positions */
  usedBytes: number;
}

interface MemSample {
  phase: string;
  rss: number;
  heapUsed: number;
  arrayBuffers: number;
}

interface LoadResult {
  checkpointFileBytes: number;
  writeMs: number;
  /** the first `loadModel` (not in `time`) */
  firstMs: number;
  time: Timed;
}

interface PresetResult {
  preset: string;
  modelType: string;
  architecture: string;
  layers: number;
  parameters: number;
  /** parameters × 4 (float32) */
  weightBytes: number;
  algorithms: { main: string; reference: string | null; chunkSize: number | null };
  /** os.loadavg() when this preset's child started */
  loadAverageAtStart: number[];
  /** model construction from the random source (weights generated on the spot) */
  build: Timed;
  prefill: PrefillRow[];
  /** main tok/s ÷ reference tok/s per prompt length (> 1: the default algorithm is faster) */
  prefillRatio: { promptLength: number; ratio: number }[];
  /** how the long context was reached: continue the state of a `from`-token prefill with more tokens (1 run) */
  longContextFill: { from: number; to: number; ms: number; tokensPerSecond: number };
  decode: DecodeRow;
  longDecode: DecodeRow;
  batchDecode: DecodeRow;
  state: { short: StateSize; long: StateSize };
  memory: { rssStart: number; rssAfterBuild: number; maxRSS: number; samples: MemSample[] };
  logitsFinite: boolean;
  seconds: number;
  load?: LoadResult;
}

interface RunResult {
  date: string;
  machine: MachineInfo;
  /** os.loadavg() (1, 5, 15 min) at the start and the end: a loaded machine makes the numbers noisy */
  loadAverage: { start: number[]; end: number[] };
  node: string;
  commit: string;
  command: string;
  quick: boolean;
  plan: Plan;
  presets: PresetResult[];
  failures: { preset: string; error: string }[];
  totalSeconds: number;
}

// ------------------------------------------------------------------------------------------------
// Child: one preset

/** a wrong command line: reported without a stack trace */
class UsageError extends Error {}

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

/**
 * A `RandomTensorSource` whose `float32(name)` returns the same array on every call, so two models
 * built from it (one per prefill algorithm) share their weights; it can also hand them out for writing.
 */
class SharedRandomSource implements TensorSource {
  private readonly cache = new Map<string, Float32Array>();
  private readonly inner: RandomTensorSource;
  constructor(seed: number) {
    this.inner = new RandomTensorSource(seed);
  }
  get files(): readonly string[] {
    return this.inner.files;
  }
  has(name: string): boolean {
    return this.inner.has(name);
  }
  entry(name: string): TensorEntry {
    return this.inner.entry(name);
  }
  shapeFor(name: string, shape: number[]): void {
    this.inner.shapeFor(name, shape);
  }
  float32(name: string): Float32Array {
    let a = this.cache.get(name);
    if (!a) {
      a = this.inner.float32(name);
      this.cache.set(name, a);
    }
    return a;
  }
  /** every tensor handed out so far, in checkpoint form */
  tensors(): Record<string, WritableTensor> {
    const out: Record<string, WritableTensor> = {};
    for (const [name, data] of this.cache) out[name] = { dtype: 'F32', shape: [...this.entry(name).shape], data };
    return out;
  }
}

function randomIds(rng: Rng, vocab: number, n: number): number[] {
  // avoid id 0 (often eos): irrelevant for timing, keeps prompts "ordinary"
  return Array.from({ length: n }, () => 1 + Math.floor(rng.next() * (vocab - 1)));
}

function allFinite(t: HostTensor): boolean {
  for (let i = 0; i < t.data.length; i++) if (!Number.isFinite(t.data[i])) return false;
  return true;
}

/** bytes of one sequence's state, KV caches counted up to the filled positions only */
function usedStateBytes(s: ModelState): number {
  const filled = Math.max(0, ...s.seqLen);
  let n = 0;
  for (const layer of s.layers) {
    for (const [k, t] of Object.entries(layer)) n += s.timeTensors.has(k) ? (t.size / t.shape[1]) * Math.min(filled, t.shape[1]) : t.size;
  }
  return (n * 4) / s.batch;
}

function stateSize(s: ModelState): StateSize {
  return { context: Math.max(...s.seqLen), bytes: s.byteSize / s.batch, usedBytes: usedStateBytes(s) };
}

class Memory {
  readonly samples: MemSample[] = [];
  sample(phase: string): number {
    const m = process.memoryUsage();
    this.samples.push({ phase, rss: m.rss, heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers });
    return m.rss;
  }
}

async function measurePreset(preset: string, o: Options): Promise<PresetResult> {
  const t0 = performance.now();
  const plan = makePlan(o);
  const raw = PRESETS[preset];
  const modelType = String(raw.model_type);
  const backend = resolveBackend({ backend: o.backend, threads: o.threads, weights: o.dtype });
  const algs = algorithmsFor(modelType, o.chunkSize, prefillSupport(backend));
  algs.main.options = { ...algs.main.options, backend };
  if (algs.reference) algs.reference.options = { ...algs.reference.options, backend };
  const runs = plan.warmup + plan.reps;
  const mem = new Memory();
  const loadAverageAtStart = os.loadavg();
  const rssStart = mem.sample('start');
  const say = (msg: string): void => log(`${preset}: ${msg}`);
  let finite = true;
  const check = (t: HostTensor): void => {
    if (!allFinite(t)) finite = false;
  };

  // 1. build (each repetition from a fresh random source; the last model is kept)
  const buildMs: number[] = [];
  let main: CausalLM | undefined;
  let source: SharedRandomSource | undefined;
  for (let r = 0; r < runs; r++) {
    main = undefined;
    source = undefined;
    await collect();
    const s = new SharedRandomSource(SEED);
    const tb = performance.now();
    const m = buildModel(raw, preset, s, algs.main.options);
    const dt = performance.now() - tb;
    if (r >= plan.warmup) buildMs.push(dt);
    say(`build #${r + 1}: ${fmtMs(dt)}${r < plan.warmup ? ' (warm-up)' : ''}`);
    main = m;
    source = s;
  }
  if (!main || !source) throw new Error('no model was built');
  const model: CausalLM = main;
  // the reference-algorithm model shares the weight arrays (not timed)
  const reference = algs.reference ? buildModel(raw, preset, source, algs.reference.options) : null;
  source = undefined;
  const rssAfterBuild = mem.sample('models built');
  const described = model.describe();
  const vocab = model.vocabSize;
  const rng = new Rng(SEED);

  // with no warm-up runs, one short pass through each code path so the first timed run is not JIT time
  if (plan.warmup === 0) {
    for (const m of [model, reference]) {
      if (!m) continue;
      const st = m.createState(1);
      check(await m.advance([randomIds(rng, vocab, 4)], st));
      check(await m.advance([randomIds(rng, vocab, 1)], st));
    }
    const st4 = model.createState(plan.batch);
    check(await model.advance(Array.from({ length: plan.batch }, () => randomIds(rng, vocab, 1)), st4));
    mem.sample('JIT warm-up');
  }

  // 2. prefill, batch 1: one advance on a fresh state; algorithms interleaved (order alternating) per run
  const models: { name: string; m: CausalLM }[] = [{ name: algs.main.name, m: model }];
  if (reference && algs.reference) models.push({ name: algs.reference.name, m: reference });
  const prefill: PrefillRow[] = [];
  const prefillRatio: { promptLength: number; ratio: number }[] = [];
  /** final state of the main algorithm's last run, per prompt length (reused to reach longer contexts) */
  const prefilled = new Map<number, ModelState>();
  for (const L of plan.prefillLengths) {
    const prompt = randomIds(rng, vocab, L);
    const ms = new Map<string, number[]>(models.map((x) => [x.name, []]));
    for (let r = 0; r < runs; r++) {
      const order = r % 2 === 0 ? models : [...models].reverse();
      for (const { name, m } of order) {
        await collect();
        const st = m.createState(1);
        const tp = performance.now();
        const logits = await m.advance([prompt], st);
        const dt = performance.now() - tp;
        check(logits);
        if (r >= plan.warmup) ms.get(name)!.push(dt);
        if (m === model) prefilled.set(L, st);
        say(`prefill L=${L} ${name} #${r + 1}: ${fmtMs(dt)} (${((L / dt) * 1000).toFixed(1)} tok/s)${r < plan.warmup ? ' (warm-up)' : ''}`);
      }
    }
    const rows = models.map(({ name }) => {
      const time = timed(ms.get(name)!);
      return { algorithm: name, promptLength: L, time, tokensPerSecond: (L / time.medianMs) * 1000 };
    });
    prefill.push(...rows);
    if (rows.length === 2) prefillRatio.push({ promptLength: L, ratio: rows[0].tokensPerSecond / rows[1].tokensPerSecond });
    mem.sample(`prefill L=${L}`);
  }

  /** time `steps` single-token advances (batch = state.batch) on a copy of `base`, `runs` times */
  const decode = async (label: string, base: ModelState, steps: number): Promise<DecodeRow> => {
    const b = base.batch;
    const ms: number[] = [];
    for (let r = 0; r < runs; r++) {
      const st = base.clone();
      const tokens = Array.from({ length: steps }, () => Array.from({ length: b }, () => randomIds(rng, vocab, 1)));
      await collect();
      const td = performance.now();
      let logits: HostTensor | undefined;
      for (const ids of tokens) logits = await model.advance(ids, st);
      const dt = performance.now() - td;
      if (logits) check(logits);
      if (r >= plan.warmup) ms.push(dt);
      say(`${label} #${r + 1}: ${fmtMs(dt)} (${((dt / steps)).toFixed(0)} ms/step)${r < plan.warmup ? ' (warm-up)' : ''}`);
    }
    mem.sample(label);
    const time = timed(ms);
    return {
      batch: b,
      context: Math.max(...base.seqLen),
      steps,
      time,
      tokensPerSecond: ((b * steps) / time.medianMs) * 1000,
      msPerStep: time.medianMs / steps,
    };
  };

  // 3. decode, batch 1, after a short prompt (reuses the prefill's state when it has that length)
  let short = prefilled.get(plan.decodePrompt);
  if (!short) {
    short = model.createState(1);
    check(await model.advance([randomIds(rng, vocab, plan.decodePrompt)], short));
  }
  const decodeShort = await decode(`decode b=1 after ${plan.decodePrompt}`, short, plan.decodeSteps);

  // 4. decode, batch 1, at a long context: continue the longest prefilled state that fits (one run)
  const from = Math.max(0, ...[...prefilled.keys()].filter((L) => L <= plan.longContext));
  const long = from > 0 ? prefilled.get(from)!.clone() : model.createState(1);
  prefilled.clear();
  const extra = plan.longContext - from;
  let fillMs = 0;
  if (extra > 0) {
    await collect();
    const tf = performance.now();
    check(await model.advance([randomIds(rng, vocab, extra)], long));
    fillMs = performance.now() - tf;
    say(`context ${from} → ${plan.longContext}: ${fmtMs(fillMs)}`);
  }
  const decodeLong = await decode(`decode b=1 after ${plan.longContext}`, long, plan.longSteps);
  const state = { short: stateSize(short), long: stateSize(long) };

  // 5. batched decode: the short-prompt state, replicated
  const batched = ModelState.concat(Array.from({ length: plan.batch }, () => short!));
  const decodeBatch = await decode(`decode b=${plan.batch} after ${plan.decodePrompt}`, batched, plan.batchSteps);

  mem.sample('end');
  return {
    preset,
    modelType,
    architecture: String(described.architecture ?? modelType),
    layers: model.numLayers,
    parameters: Number(described.parameters),
    weightBytes: Number(described.parameters) * 4,
    algorithms: {
      main: algs.main.name,
      reference: algs.reference?.name ?? null,
      chunkSize: algs.reference ? chunkSizeOf(described, raw, o.chunkSize) : null,
    },
    loadAverageAtStart,
    build: timed(buildMs),
    prefill,
    prefillRatio,
    longContextFill: { from, to: plan.longContext, ms: fillMs, tokensPerSecond: extra > 0 ? (extra / fillMs) * 1000 : NaN },
    decode: decodeShort,
    longDecode: decodeLong,
    batchDecode: decodeBatch,
    state,
    memory: { rssStart, rssAfterBuild, maxRSS: process.resourceUsage().maxRSS * 1024, samples: mem.samples },
    logitsFinite: finite,
    seconds: (performance.now() - t0) / 1000,
  };
}

function chunkSizeOf(described: Record<string, unknown>, raw: Record<string, unknown>, given: number | undefined): number | null {
  for (const v of [given, described.prefill_chunk_size, described.chunk_size, raw.mamba_chunk_size, raw.chunk_size]) {
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  return null;
}

/** Write the preset's random weights as a checkpoint, then time `loadModel` on it (1 first + reps). */
async function measureLoad(preset: string, o: Options): Promise<LoadResult> {
  const raw = PRESETS[preset];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-bench-'));
  try {
    let fileBytes = 0;
    let writeMs = 0;
    {
      const src = new SharedRandomSource(SEED);
      buildModel(raw, preset, src, {}); // asks for every tensor (names and shapes); the model is dropped
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(raw, null, 2) + '\n');
      const tw = performance.now();
      const file = path.join(dir, 'model.safetensors');
      writeSafetensorsAtomic(file, src.tensors(), { format: 'pt', note: `mamba-ts bench random init (${preset}), seed ${SEED}` });
      writeMs = performance.now() - tw;
      fileBytes = fs.statSync(file).size;
      log(`${preset}: checkpoint ${fmtMiB(fileBytes)} written in ${fmtMs(writeMs)}`);
    }
    const ms: number[] = [];
    let firstMs = 0;
    for (let r = 0; r < 1 + o.reps; r++) {
      await collect();
      const dt = await loadOnce(dir);
      if (r === 0) firstMs = dt;
      else ms.push(dt);
      log(`${preset}: loadModel #${r + 1}: ${fmtMs(dt)}${r === 0 ? ' (first)' : ''}`);
    }
    return { checkpointFileBytes: fileBytes, writeMs, firstMs, time: timed(ms) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** One timed load; the model is unreachable once this returns. */
async function loadOnce(dir: string): Promise<number> {
  const t = performance.now();
  const m = await loadModel(dir, { tokenizer: false });
  const dt = performance.now() - t;
  if (!m.lm) throw new Error('loadModel returned no model');
  return dt;
}

// ------------------------------------------------------------------------------------------------
// Parent

function runChild(args: string[]): unknown {
  const r = spawnSync(process.execPath, ['--expose-gc', THIS_FILE, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  const out = r.stdout.toString().trim().split('\n').filter(Boolean);
  if (r.status !== 0 || out.length === 0) {
    throw new Error(`child ${args.join(' ')} failed (status ${r.status}${r.signal ? `, signal ${r.signal}` : ''})`);
  }
  return JSON.parse(out[out.length - 1]);
}

async function parent(o: Options): Promise<void> {
  const tStart = performance.now();
  const date = new Date().toISOString();
  const loadAvgStart = os.loadavg();
  const plan = makePlan(o);
  const results: PresetResult[] = [];
  const failures: { preset: string; error: string }[] = [];
  log(`presets ${o.presets.join(', ')}; ${plan.reps} timed run(s) + ${plan.warmup} warm-up; prefill ${plan.prefillLengths.join('/')}; ` +
    `long context ${plan.longContext}${o.quick ? '; QUICK' : ''}`);
  for (const p of o.presets) {
    const tp = performance.now();
    try {
      const r = runChild(['--child', p, '--json', ...planArgs(o)]) as PresetResult;
      if (o.load) r.load = runChild(['--child-load', p, '--json', ...planArgs(o)]) as LoadResult;
      results.push(r);
      log(`${p}: done in ${((performance.now() - tp) / 1000).toFixed(1)} s (peak RSS ${fmtMiB(r.memory.maxRSS)})`);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      failures.push({ preset: p, error: msg });
      log(`${p}: FAILED: ${msg}`);
    }
  }
  const root = repoRoot(import.meta.url);
  const run: RunResult = {
    date,
    machine: machineInfo(),
    loadAverage: { start: loadAvgStart, end: os.loadavg() },
    node: process.version,
    commit: gitCommit(root),
    command: commandLine(import.meta.url, 'bench', 'tsc -p tsconfig.json && '),
    quick: o.quick,
    plan,
    presets: results,
    failures,
    totalSeconds: (performance.now() - tStart) / 1000,
  };

  if (o.json) process.stdout.write(JSON.stringify(run, null, 2) + '\n');
  else process.stdout.write(renderText(run));

  const bad = results.filter((r) => !r.logitsFinite).map((r) => r.preset);
  if (bad.length) log(`error: non-finite logits (${bad.join(', ')}): the random initialisation is broken`);
  if (failures.length || bad.length) process.exitCode = 1;
  if (o.backend === 'wasm') backendLabel = `WebAssembly backend (${o.dtype} weights, ${o.threads ?? 'all'} threads)`;
  if (o.write) {
    if (failures.length || results.length === 0) log('BENCHMARKS.md left alone: a preset failed');
    else {
      const file = writeMarkedSection(path.join(root, 'BENCHMARKS.md'), ...markers(o), renderMarkdown(run), {
        headerIfNew: HEADER,
        fallbackHeading: `## Latest run: all architectures at ~130M, ${backendLabel}`,
      });
      log(`updated ${file}`);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Rendering: presets as columns

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '—');
const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '—');
const times = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '—');
const tokS = (d: DecodeRow): string => `${f1(d.tokensPerSecond)} (${d.msPerStep.toFixed(0)} ms)`;

function columns(rs: PresetResult[], label: string, cell: (r: PresetResult) => string): string[] {
  return [label, ...rs.map(cell)];
}

function table(rs: PresetResult[], rows: string[][]): Table {
  return { head: ['', ...rs.map((r) => `**${r.preset}**`)], rows, align: ['l', ...rs.map((): 'r' => 'r')] };
}

interface Section {
  title: string;
  table: Table;
}

/** the algorithms of the SSM presets, e.g. "SSMs: chunked" or "Mamba-1: sequential, Mamba-2: recurrent" */
function algorithmNames(rs: PresetResult[], which: 'main' | 'reference'): string {
  const family = (r: PresetResult) => (['mamba', 'falcon_mamba', 'jamba'].includes(r.modelType) ? 'Mamba-1' : 'Mamba-2');
  const byFamily = new Map<string, string>();
  for (const r of rs) {
    const name = r.algorithms.reference === null ? null : r.algorithms[which];
    if (name) byFamily.set(family(r), name);
  }
  const names = new Set(byFamily.values());
  return names.size === 1 ? `SSMs: ${[...names][0]}` : [...byFamily].map(([f, n]) => `${f}: ${n}`).join(', ');
}

function sections(run: RunResult): Section[] {
  const rs = run.presets;
  const p = run.plan;
  const out: Section[] = [];

  const model: string[][] = [
    columns(rs, 'architecture', (r) => r.architecture.replace(/\s*\(.*\)$/, '')),
    columns(rs, 'layers', (r) => String(r.layers)),
    columns(rs, 'parameters', (r) => `${(r.parameters / 1e6).toFixed(1)} M`),
    columns(rs, 'weight bytes (f32)', (r) => fmtMiB(r.weightBytes)),
    columns(rs, 'build from random weights', (r) => fmtMs(r.build.medianMs)),
  ];
  if (rs.some((r) => r.load)) model.push(columns(rs, '`loadModel` from safetensors (warm cache)', (r) => (r.load ? fmtMs(r.load.time.medianMs) : '—')));
  model.push(
    columns(rs, 'peak RSS (own process)', (r) => fmtMiB(r.memory.maxRSS)),
    columns(rs, 'RSS of the bare process', (r) => fmtMiB(r.memory.rssStart)),
    columns(rs, 'prefill: default vs reference', (r) =>
      r.algorithms.reference ? `${r.algorithms.main} (chunk ${r.algorithms.chunkSize}) vs ${r.algorithms.reference}` : 'one algorithm'),
    columns(rs, 'load average (1 min) at start', (r) => f2(r.loadAverageAtStart[0])),
  );
  out.push({ title: 'Model', table: table(rs, model) });

  const prefill: string[][] = [];
  for (const L of p.prefillLengths) {
    const row = (r: PresetResult, which: 'main' | 'reference'): PrefillRow | undefined =>
      r.prefill.find((x) => x.promptLength === L && x.algorithm === r.algorithms[which]);
    prefill.push(columns(rs, `L=${L}, default (${algorithmNames(rs, 'main')})`, (r) => f1(row(r, 'main')?.tokensPerSecond ?? NaN)));
    prefill.push(columns(rs, `L=${L}, reference (${algorithmNames(rs, 'reference')})`, (r) => f1(row(r, 'reference')?.tokensPerSecond ?? NaN)));
    prefill.push(columns(rs, `L=${L}, default ÷ reference`, (r) => times(r.prefillRatio.find((x) => x.promptLength === L)?.ratio ?? NaN)));
  }
  if (rs.some((r) => r.longContextFill.to > r.longContextFill.from)) {
    const f = rs[0].longContextFill;
    const label = f.from > 0 ? `context ${f.from} → ${f.to}, default (1 run, continues the L=${f.from} state)` : `L=${f.to}, default (1 run)`;
    prefill.push(columns(rs, label, (r) => f1(r.longContextFill.tokensPerSecond)));
  }
  out.push({ title: 'Prefill, batch 1 — tokens/s (one `advance` on a fresh state)', table: table(rs, prefill) });

  const dec: string[][] = [
    columns(rs, `batch 1, after ${p.decodePrompt} tokens (${p.decodeSteps} steps)`, (r) => tokS(r.decode)),
    columns(rs, `batch 1, after ${p.longContext} tokens (${p.longSteps} steps)`, (r) => tokS(r.longDecode)),
    columns(rs, `long ÷ short context`, (r) => times(r.longDecode.tokensPerSecond / r.decode.tokensPerSecond)),
    columns(rs, `batch ${p.batch}, after ${p.decodePrompt} tokens (${p.batchSteps} steps), total`, (r) => tokS(r.batchDecode)),
    columns(rs, `batch ${p.batch} ÷ batch 1`, (r) => times(r.batchDecode.tokensPerSecond / r.decode.tokensPerSecond)),
  ];
  out.push({ title: 'Decode — tokens/s (ms per step); single-token `advance` calls', table: table(rs, dec) });

  const st: string[][] = [
    columns(rs, `after ${p.decodePrompt} tokens`, (r) => fmtMiB(r.state.short.bytes)),
    columns(rs, `after ${p.longContext} tokens`, (r) => fmtMiB(r.state.long.bytes)),
    columns(rs, `growth`, (r) => times(r.state.long.bytes / r.state.short.bytes)),
    columns(rs, `in use after ${p.decodePrompt} / ${p.longContext} tokens (KV caches without spare capacity)`, (r) =>
      `${fmtMiB(r.state.short.usedBytes)} / ${fmtMiB(r.state.long.usedBytes)}`),
  ];
  out.push({ title: 'State per sequence (`state.byteSize`)', table: table(rs, st) });
  return out;
}

/** every timed repetition, for judging the noise */
function repetitions(run: RunResult): Table {
  const rs = run.presets;
  const rows: string[][] = [columns(rs, 'build', (r) => msList(r.build))];
  for (const L of run.plan.prefillLengths) {
    for (const which of ['main', 'reference'] as const) {
      rows.push(columns(rs, `prefill L=${L} ${which === 'main' ? 'default' : 'reference'}`, (r) => {
        const x = r.prefill.find((y) => y.promptLength === L && y.algorithm === r.algorithms[which]);
        return x ? msList(x.time) : '—';
      }));
    }
  }
  rows.push(
    columns(rs, 'decode batch 1, short', (r) => msList(r.decode.time)),
    columns(rs, 'decode batch 1, long', (r) => msList(r.longDecode.time)),
    columns(rs, `decode batch ${run.plan.batch}`, (r) => msList(r.batchDecode.time)),
  );
  if (rs.some((r) => r.load)) rows.push(columns(rs, 'loadModel (first; then timed)', (r) => (r.load ? `${r.load.firstMs.toFixed(0)}; ${msList(r.load.time)}` : '—')));
  return table(rs, rows);
}

function runLines(run: RunResult): string[] {
  const p = run.plan;
  return [
    `date: ${run.date}`,
    `machine: ${machineLine(run.machine)}`,
    `node: ${run.node}; commit: ${run.commit}`,
    `command: \`${run.command}\``,
    `load average (1/5/15 min) at start: ${loadLine(run.loadAverage.start)}, at end: ${loadLine(run.loadAverage.end)}`,
    `repetitions: ${p.reps} timed + ${p.warmup} warm-up per measurement, median reported` +
      (p.warmup === 0 ? ' (no warm-up: one short JIT pass per model instead)' : '') + `; total runtime ${run.totalSeconds.toFixed(1)} s`,
    `logits finite: ${run.presets.every((r) => r.logitsFinite) ? 'yes' : 'NO'}` +
      (run.failures.length ? `; FAILED: ${run.failures.map((f) => `${f.preset} (${f.error})`).join('; ')}` : ''),
  ];
}

function renderText(run: RunResult): string {
  const out = ['', `All architectures at ~130M, CPU backend, random weights${run.quick ? ' — QUICK run (noisy)' : ''}`];
  out.push(...runLines(run).map((l) => l.replace(/`/g, '')), '');
  if (run.presets.length) {
    for (const s of sections(run)) out.push(s.title.replace(/`/g, ''), textTable(plainHead(s.table)), '');
    out.push('every timed repetition (ms)', textTable(plainHead(repetitions(run))), '');
  }
  return out.join('\n');
}

function plainHead(t: Table): Table {
  return { ...t, head: t.head.map((h) => h.replace(/\*\*/g, '')) };
}

const howToRead = (batch: number): string => [
  '**How to read**',
  '',
  '- Higher tokens/s is better; CPU backend, one thread. The weights are random, so speed and memory are those of',
  '  real checkpoints of the same shape (output quality is not measured).',
  '- **Decode at a long vs a short context**: an SSM step costs the same whatever the model has read (its state has a',
  '  fixed size), so its long ÷ short ratio stays ≈ 1; attention reads its whole KV cache every step, so its ratio',
  '  falls as the context grows. At this size the weight matmuls still take most of a step, so the gap widens with',
  '  longer contexts (`--long 4096`).',
  '- **State per sequence**: constant for Mamba-1/Mamba-2 (conv window + SSM state: growth 1.00×); grows with the',
  '  context for attention (KV cache, allocated in doubling steps: `byteSize` counts the capacity, the "in use" row',
  '  only the filled positions); a hybrid has a constant SSM part plus the KV caches of its few attention layers.',
  '- **Prefill default ÷ reference** > 1: the backend\'s default algorithm is faster (CPU: chunked; wasm: its own scan',
  '  and recurrence, against the CPU chunked kernels). On one thread the chunked algorithm mostly does extra work',
  '  (its value comes with parallel backends); for Mamba-1 a prompt no longer than the chunk size runs the',
  '  sequential scan anyway, so that ratio is ≈ 1 by construction and shows the noise level.',
  `- **Batch ${batch} ÷ batch 1**: how well one step amortises reading the weights over several sequences.`,
  '- **Peak RSS** is each model\'s own process: Node itself (the "bare process" row), the f32 weights, activations,',
  '  and the states the measurements hold (the batched one and its copy included).',
  '- Compare numbers only between runs on the same quiet machine (see the load averages).',
].join('\n');

/** which backend the parent measured (set from the options before rendering) */
let backendLabel = 'CPU backend (TypeScript reference)';

function renderMarkdown(run: RunResult): string {
  const out = [
    `### All architectures at ~130M, ${backendLabel} — ${run.date}${run.quick ? ' (quick run: noisy)' : ''}`,
    '',
    ...runLines(run).map((l) => `- ${l}`),
    '',
  ];
  for (const s of sections(run)) out.push(`#### ${s.title}`, '', markdownTable(s.table), '');
  out.push(howToRead(run.plan.batch), '');
  out.push('<details><summary>every timed repetition (ms)</summary>', '', markdownTable(repetitions(run)), '', '</details>');
  return out.join('\n');
}

/** one marked section per backend configuration (the CPU reference keeps the original markers) */
function markers(o: Options): [string, string] {
  const tag = o.backend === 'cpu' ? 'models' : `models-wasm-${o.dtype}-t${o.threads ?? 'all'}`;
  return [`<!-- bench:${tag}:start -->`, `<!-- bench:${tag}:end -->`];
}

/** used only when BENCHMARKS.md does not exist; the file's own header is maintained by hand */
const HEADER = `# Benchmarks

CPU numbers for mamba-ts: every architecture at ~130M parameters, written by \`bench/models.bench.ts\`
(\`npm run bench\`; \`--quick --no-write\` for a smoke run, \`--help\` for the options).`;

// ------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.child) {
    const r = await measurePreset(o.child, o);
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  if (o.childLoad) {
    const r = await measureLoad(o.childLoad, o);
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  await parent(o);
  if (!o.json) await trainingBench({ quick: o.quick, write: o.write });
}

main().catch((e: unknown) => {
  if (e instanceof UsageError) {
    process.stderr.write(`[bench] ${e.message}\n${USAGE}`);
    process.exit(2);
  }
  process.stderr.write(`[bench] failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
