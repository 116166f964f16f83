/**
 * bench/models.bench.ts, in a child process: measure one preset (`measurePreset`: build, prefill with the backend's
 * default algorithm and the other one, decode at a short and a long context and batched, state sizes, memory) or
 * time `loadModel` on a checkpoint of its weights (`measureLoad`).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { PrefillSupport } from '../../src/backend/backend.js';
import { Rng } from '../../src/generate/rng.js';
import { writeSafetensorsAtomic, type TensorEntry, type WritableTensor } from '../../src/io/safetensors.js';
import type { TensorSource } from '../../src/io/weights.js';
import { loadModel, resolveBackend } from '../../src/api/load.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { PRESETS, RandomTensorSource } from '../../src/models/random.js';
import { buildModel, type ModelOptions } from '../../src/models/registry.js';
import { ModelState } from '../../src/models/state.js';
import type { HostTensor } from '../../src/tensor/tensor.js';
import { prefillSupport } from '../../src/backend/backend.js';
import { collect, fmtMiB, fmtMs, timed } from '../report.js';
import { makePlan, type Options } from './options.js';
import type { DecodeRow, LoadResult, MemSample, PrefillRow, PresetResult, StateSize } from './results.js';

const SEED = 130;

// ------------------------------------------------------------------------------------------------
// Prefill algorithms per architecture

export interface Algorithm {
  name: string;
  options: ModelOptions;
}

/**
 * The model's default prefill on the backend (`main`: the first algorithm of `Backend.prefill`; CPU: chunked scan /
 * chunked SSD) and, for SSMs, the other algorithm it is compared with (Mamba-1: chunked ↔ sequential scan; Mamba-2
 * and its hybrids: chunked ↔ the token-by-token recurrence). Attention-only models have one prefill. `chunkSize`
 * goes to the chunked one.
 */
export function algorithmsFor(modelType: string, chunkSize: number | undefined, support: PrefillSupport): { main: Algorithm; reference: Algorithm | null } {
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
// One preset

export function log(msg: string): void {
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

export async function measurePreset(preset: string, o: Options): Promise<PresetResult> {
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
export async function measureLoad(preset: string, o: Options): Promise<LoadResult> {
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
