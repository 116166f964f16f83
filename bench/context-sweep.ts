/**
 * Decode speed and memory against context length (the seed's claim, issue 11): for each model × context C ×
 * batch B, the state is brought to C positions, N greedy decode steps are timed, and the runtime's memory
 * counters are read. A Mamba state has the same size at any C; a Transformer's KV cache grows with C, and so
 * does the attention work of each step.
 *
 * How a state reaches C positions (`fill`, said in every row):
 * - 'prefill': a real prefill of C tokens for one sequence, in chunks, its state then copied into the B rows;
 * - 'direct': the KV caches are written directly — random keys/values at positions 0 … C−1 (the same block in
 *   every row and layer) and the positions set to C — since the time of a decode step does not depend on the
 *   values. Constant-size state tensors (a hybrid's SSM state) stay zero.
 * Default ('auto'): prefill for models without a KV cache, direct for the others.
 *
 * The decode path is what the model offers: `greedyChain` (steps queued on the device, one read-back) where
 * `chainsOnDevice`, else `advanceArgmax` (one step per call, its token read back). Each point checks its
 * tokens: all B rows start from the same state and token, so every row must pick the same tokens, and row 0's
 * first tokens must equal those of one-step-at-a-time decoding (`advanceArgmax`) from a copy of its state.
 *
 * KV caches are stored in the model's `kvCache` format (f32, bf16 or f16; `SweepOptions.kvCaches` runs a model with
 * KV caches once per format, named e.g. "llama-130m (bf16 KV)"); the bytes per sequence count the stored bytes.
 *
 * A point that cannot fit is a row saying "out of memory", not a gap: before allocating, the bytes it needs
 * (what the runtime holds now + B × the state at its capacity) are compared with `budgetBytes` and each state
 * tensor with the adapter's largest binding; an allocation that fails anyway is caught the same way.
 */
import type { WebGpuBackend } from '../src/backend/webgpu/index.js';
import type { CausalLM } from '../src/models/causal-lm.js';
import { ModelState } from '../src/models/state.js';
import { buildModel } from '../src/models/registry.js';
import { RandomTensorSource } from '../src/models/random.js';
import type { RawConfig } from '../src/models/config.js';
import * as ops from '../src/tensor/ops.js';
import { keep } from '../src/tensor/scope.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { lineChartSvg, type ChartOptions, type Mark, type Series } from '../src/train/plot.js';
import { fmt1, markdownTable, MiB } from './report.js';
import { lcgNoise } from './kv-fill.js';
import { DTYPE_BYTES, type KvCacheDType } from '../src/tensor/dtype.js';

export type Fill = 'auto' | 'prefill' | 'direct';
export type DecodePath = 'greedyChain' | 'advanceArgmax' | 'advance';

export interface SweepPoint {
  model: string;
  /** who measured it when not this library (e.g. 'llama.cpp'): its series is dashed, in the model's colour */
  engine?: string;
  context: number;
  batch: number;
  /** 'planned': checked against the budget and the bindings, its KV cache allocated, not run (`planOnly`) */
  status: 'ok' | 'oom' | 'failed' | 'planned';
  /** why a point did not run */
  reason?: string;
  /** how the state reached the context */
  fill: string;
  path?: DecodePath;
  /** timed decode steps */
  steps?: number;
  ms_per_step?: number;
  /** tokens per second over the whole batch */
  tok_s?: number;
  /** the format of the model's KV caches (models with KV caches only) */
  kv_cache?: KvCacheDType;
  /** bytes of state one sequence holds at this context (KV cache positions in use, or the SSM state) */
  state_bytes_per_seq: number;
  /** bytes the state's tensors hold per sequence (a KV cache's capacity included) */
  state_alloc_bytes_per_seq?: number;
  /** GPU buffers the runtime holds after the point */
  device_bytes?: number;
  /** pool blocks in use at most during the point (weights, state, scratch) */
  peak_live_bytes?: number;
  /** what the point was predicted to need on the device */
  needed_bytes: number;
  /** the tokens' check ('ok' or what differed) */
  check?: string;
  /**
   * blocks of sequences each KV cache tensor of the batch is stored in (WebGPU: a tensor over one buffer binding is
   * split by sequences, WebGpuBackend.kvSplit; 1: one buffer)
   */
  kv_blocks?: number;
}

/** What one sequence's state holds: constant-size bytes, and bytes per position of its KV caches. */
export interface StateLayout {
  constBytes: number;
  perPositionBytes: number;
  /** the largest bytes per position (per sequence) of any one time tensor (for the binding limit) */
  maxTensorPerPosition: number;
  /** whether the state has tensors that grow with the context */
  grows: boolean;
}

export function stateLayout(lm: CausalLM): StateLayout {
  const s = lm.createState(1);
  try {
    let constBytes = 0, perPositionBytes = 0, maxTensorPerPosition = 0;
    for (const l of s.layers) {
      for (const [k, t] of Object.entries(l)) {
        if (s.timeTensors.has(k)) {
          const b = (t.size / t.shape[1]) * DTYPE_BYTES[t.dtype]; // (a bf16/f16 KV cache: 2 bytes a value)
          perPositionBytes += b;
          maxTensorPerPosition = Math.max(maxTensorPerPosition, b);
        } else constBytes += t.size * DTYPE_BYTES[t.dtype];
      }
    }
    return { constBytes, perPositionBytes, maxTensorPerPosition, grows: s.timeTensors.size > 0 };
  } finally {
    s.dispose();
  }
}

/** bytes of state per sequence at `context` positions (time tensors counted at the positions in use) */
export function stateBytesInUse(s: ModelState, context: number): number {
  let b = 0;
  for (const l of s.layers) for (const [k, t] of Object.entries(l)) b += (s.timeTensors.has(k) ? (t.size / t.shape[1]) * context : t.size) * DTYPE_BYTES[t.dtype];
  return b / s.batch;
}

export interface PointOptions {
  context: number;
  batch: number;
  steps: number;
  fill: Fill;
  /** device bytes a point may need at most (default: no limit but the binding's) */
  budgetBytes?: number;
  /** prefill chunk (tokens per call), default 2048 */
  chunk?: number;
  /** fewer steps when a step is slow: the timed steps take about this long at most (default 20 s) */
  maxSeconds?: number;
  /** check the point against the budget and the bindings and allocate one of its KV cache tensors, run nothing */
  planOnly?: boolean;
  log?: (s: string) => void;
}

const WARM = 2;
const CHECK = 4;
const FIRST = 1;

const isMemoryError = (m: string): boolean => /memory|binding|maxBufferSize|allocat/i.test(m);

/** Bring a fresh state of `lm` to the context, time its decode steps, read the memory counters. */
export async function runPoint(lm: CausalLM, be: WebGpuBackend, model: string, o: PointOptions): Promise<SweepPoint> {
  const { context: C, batch: B } = o;
  if (!Number.isInteger(C) || C < 1) throw new Error(`context sweep: context ${C} is not a positive integer`);
  if (!Number.isInteger(B) || B < 1) throw new Error(`context sweep: batch ${B} is not a positive integer`);
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new Error(`context sweep: steps ${o.steps} is not a positive integer`);
  const lay = stateLayout(lm);
  const fill = o.fill === 'auto' ? (lay.grows ? 'direct' : 'prefill') : o.fill;
  const fillText = !lay.grows
    ? `prefill ${C} tokens (batch 1, chunks of ${o.chunk ?? 2048})${B > 1 ? `, copied to ${B} rows` : ''}`
    : fill === 'direct'
      ? 'KV cache written directly (random K/V, position set)'
      : `prefill ${C} tokens (batch 1, chunks of ${o.chunk ?? 2048})${B > 1 ? `, copied to ${B} rows` : ''}`;
  // capacity: a direct fill allocates exactly what the steps need; a prefill's caches double as they grow
  const need = C + WARM + o.steps + 1;
  const cap = lay.grows && fill === 'prefill' ? 2 ** Math.ceil(Math.log2(Math.max(64, need))) : need;
  const allocPerSeq = lay.constBytes + lay.perPositionBytes * cap;
  be.rt.trim(); // the previous point's large buffers (KV caches, prefill activations) would count against this one
  const stats0 = be.rt.stats();
  // the batch's state, the copy of row 0 the check decodes from, and (prefill) the batch-1 state it is copied from
  const needed = stats0.deviceBytes + (B + (B > 1 ? 2 : 1)) * allocPerSeq;
  const point: SweepPoint = { model, context: C, batch: B, status: 'ok', fill: fillText, ...(lay.grows ? { kv_cache: lm.kvCache ?? 'f32' } : {}), state_bytes_per_seq: lay.constBytes + lay.perPositionBytes * C, needed_bytes: needed };
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
  if (o.budgetBytes !== undefined && needed > o.budgetBytes) {
    return { ...point, status: 'oom', reason: `out of memory (predicted): needs ${gib(needed)} (weights and buffers held ${gib(stats0.deviceBytes)} + ${B} × ${gib(allocPerSeq)} of state), the budget is ${gib(o.budgetBytes)}` };
  }
  // a KV cache tensor larger than a binding is split into blocks of sequences (WebGpuBackend.kvSplit): only one
  // sequence's cache must fit one binding
  const perSeq = lay.maxTensorPerPosition * cap;
  if (perSeq > be.rt.maxKvBlock) {
    return { ...point, status: 'oom', reason: `out of memory: one sequence's KV cache tensor would hold ${gib(perSeq)}, more than the adapter's largest buffer binding (${gib(be.rt.maxKvBlock)})` };
  }
  if (lay.grows) point.kv_blocks = perSeq * B > be.rt.maxKvBlock ? Math.ceil(B / Math.floor(be.rt.maxKvBlock / perSeq)) : 1;
  if (o.planOnly) return planPoint(lm, be, point, cap, gib);
  if (!lm.advanceArgmax || !be.argmaxRows) throw new Error(`context sweep: ${model} on ${be.name} has no greedy step on the device (advanceArgmax)`);
  const log = o.log ?? (() => {});
  const V = lm.vocabSize;
  let s: ModelState | null = null;
  let ref: ModelState | null = null;
  try {
    s = fill === 'direct' && lay.grows ? directState(lm, be, B, C, cap) : await prefillState(lm, B, C, o.chunk ?? 2048, V);
    // the reference for the check: row 0's first tokens, one step per call, from a copy of its state (made and
    // dropped before the timing, so that the memory read below is the decode's: weights, the state, scratch)
    ref = s.select([0]);
    const want: number[] = [];
    for (let i = 0, next = FIRST; i < CHECK; i++) {
      next = (await lm.advanceArgmax([[next]], ref))![0];
      want.push(next);
      next = Math.max(0, next);
    }
    ref.dispose();
    ref = null;
    await be.sync();
    be.rt.resetPeak();
    const chain = !!(lm.chainsOnDevice && lm.greedyChain);
    const path: DecodePath = chain ? 'greedyChain' : 'advanceArgmax';
    const steps = async (first: number, n: number): Promise<Int32Array[]> => {
      if (chain) return (await lm.greedyChain!(Array.from({ length: B }, () => [first]), s!, n))!;
      const out: Int32Array[] = [];
      let next = first;
      for (let i = 0; i < n; i++) {
        const ids = (await lm.advanceArgmax!(Array.from({ length: B }, () => [next]), s!))!;
        out.push(ids);
        next = Math.max(0, ids[0]);
      }
      return out;
    };
    let t = performance.now();
    const warm = await steps(FIRST, WARM);
    const warmMs = (performance.now() - t) / WARM;
    const n = Math.max(Math.min(4, o.steps), Math.min(o.steps, Math.floor(((o.maxSeconds ?? 20) * 1000) / Math.max(warmMs, 1e-3))));
    if (n < o.steps) log(`  ${model} C=${C} B=${B}: a step takes ${warmMs.toFixed(0)} ms, timing ${n} steps instead of ${o.steps}`);
    t = performance.now();
    const timed = await steps(Math.max(0, warm[WARM - 1][0]), n);
    const ms = (performance.now() - t) / n;
    const stats = be.rt.stats();
    // the check: every row the same tokens; row 0 as one-step decoding from a copy of its state
    const all = [...warm, ...timed];
    const problems: string[] = [];
    const split = all.findIndex((ids) => ids.some((x) => x !== ids[0]));
    if (split >= 0) problems.push(`rows disagree at step ${split} (${Array.from(all[split].slice(0, 4)).join(', ')}…)`);
    const got = all.slice(0, CHECK).map((ids) => ids[0]);
    want.length = got.length;
    if (got.some((x, i) => x !== want[i])) problems.push(`row 0 ${got.join(',')} ≠ one-step decoding ${want.join(',')}`);
    return {
      ...point, path, steps: n, ms_per_step: ms, tok_s: (B * 1000) / ms,
      state_bytes_per_seq: stateBytesInUse(s, C),
      state_alloc_bytes_per_seq: s.byteSize / B,
      device_bytes: stats.deviceBytes, peak_live_bytes: stats.peakLiveBytes,
      check: problems.length ? `MISMATCH: ${problems.join('; ')}` : 'ok',
    };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return { ...point, status: isMemoryError(msg) ? 'oom' : 'failed', reason: isMemoryError(msg) ? `out of memory: ${msg}` : msg };
  } finally {
    s?.dispose();
    ref?.dispose();
    await be.sync().catch(() => {});
  }
}

/** `planOnly`: one KV cache tensor of the point allocated (zeroed) as a state would hold it, its blocks counted */
async function planPoint(lm: CausalLM, be: WebGpuBackend, point: SweepPoint, cap: number, gib: (b: number) => string): Promise<SweepPoint> {
  const one = lm.createState(1);
  const [k, t] = Object.entries(one.layers.find((l) => Object.keys(l).some((x) => one.timeTensors.has(x))) ?? {}).find(([x]) => one.timeTensors.has(x)) ?? [];
  if (!k || !t) {
    one.dispose();
    return { ...point, status: 'planned', reason: 'no KV cache' };
  }
  const shape = [point.batch, cap, ...t.shape.slice(2)];
  const kv = t.dtype as KvCacheDType;
  one.dispose();
  try {
    const c = be.zeros(shape, kv);
    const blocks = (c.storage as { blocks?: unknown[] | null }).blocks?.length ?? 1;
    c.dispose();
    await be.sync();
    if (blocks !== point.kv_blocks) throw new Error(`the cache [${shape.join(', ')}] took ${blocks} blocks, ${point.kv_blocks} predicted`);
    return { ...point, status: 'planned', reason: `each KV cache [${shape.join(', ')}] (${kv}, ${gib(c.size * DTYPE_BYTES[kv])}) allocated in ${blocks} block(s) of ≤ ${gib(be.rt.maxKvBlock)}; not run` };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return { ...point, status: isMemoryError(msg) ? 'oom' : 'failed', reason: msg };
  }
}

/** one sequence prefilled with C tokens (in chunks), copied into `batch` rows */
async function prefillState(lm: CausalLM, batch: number, C: number, chunk: number, V: number): Promise<ModelState> {
  const one = lm.createState(1);
  for (let p = 0; p < C; p += chunk) {
    const ids = Array.from({ length: Math.min(chunk, C - p) }, (_, i) => ((p + i) * 7919 + 13) % V);
    await lm.advance([ids], one);
  }
  if (batch === 1) return one;
  const s = ModelState.concat(Array.from({ length: batch }, () => one));
  one.dispose();
  return s;
}

/** a state whose KV caches hold random keys/values at positions 0 … C−1 (capacity `cap`), positions set to C */
function directState(lm: CausalLM, be: WebGpuBackend, batch: number, C: number, cap: number): ModelState {
  const s = lm.createState(batch);
  const blocks = new Map<string, Tensor>(); // (one format per state: the model's)
  const rows = new Array<number>(batch).fill(0);
  const noise = lcgNoise(12345); // (one sequence across the row sizes)
  for (const l of s.layers) {
    for (const k of Object.keys(l)) {
      if (!s.timeTensors.has(k)) continue;
      const tail = l[k].shape.slice(2);
      const key = tail.join('x');
      let block = blocks.get(key);
      if (!block) {
        const per = tail.reduce((a, b) => a * b, 1);
        const data = new Float32Array(cap * per);
        // random values where positions are in use, zeros in the spare capacity
        data.set(noise(C * per));
        // (in the cache's format: a bf16/f16 cache holds these values rounded)
        const kv = l[k].dtype as KvCacheDType;
        block = be.fromHost(data, [1, cap, ...tail], { kvCache: kv }); // (f32 too: the batch's copy may be split by sequences)
        blocks.set(key, block);
      }
      const filled = keep(ops.takeRows(block, rows));
      l[k].dispose();
      l[k] = filled;
    }
  }
  for (const b of blocks.values()) b.dispose();
  s.seqLen.fill(C);
  return s;
}

export interface SweepOptions {
  models: { name: string; config: RawConfig }[];
  contexts: number[];
  batches: number[];
  steps: number;
  fill: Fill;
  budgetBytes?: number;
  chunk?: number;
  maxSeconds?: number;
  /** see PointOptions.planOnly */
  planOnly?: boolean;
  /**
   * KV cache formats (default ['f32']): a model with KV caches runs once per format (named "<model> (<format> KV)"
   * but for f32), a model without them once
   */
  kvCaches?: readonly KvCacheDType[];
  /** a fresh backend: one per model and batch, so that one point's pools do not count in another's memory */
  makeBackend: () => Promise<WebGpuBackend>;
  log?: (s: string) => void;
  /** called after each point (progress) */
  onPoint?: (p: SweepPoint) => void;
}

/** every model (× KV cache format) × batch × context (contexts ascending), random weights */
export async function runSweep(o: SweepOptions): Promise<SweepPoint[]> {
  const out: SweepPoint[] = [];
  const contexts = [...o.contexts].sort((a, b) => a - b);
  for (const m of o.models) {
    let grows: boolean | undefined;
    for (const kvCache of o.kvCaches ?? ['f32']) {
      if (grows === false) break; // no KV cache: one run
      for (const B of o.batches) {
        const be = await o.makeBackend();
        try {
          const lm = buildModel(m.config, m.name, new RandomTensorSource(1), { backend: be, kvCache });
          grows ??= stateLayout(lm).grows;
          const name = grows && kvCache !== 'f32' ? `${m.name} (${kvCache} KV)` : m.name;
          await be.sync();
          for (const C of contexts) {
            const p = await runPoint(lm, be, name, { context: C, batch: B, steps: o.steps, fill: o.fill, budgetBytes: o.budgetBytes, chunk: o.chunk, maxSeconds: o.maxSeconds, planOnly: o.planOnly, log: o.log });
            out.push(p);
            o.onPoint?.(p);
          }
        } finally {
          be.destroy();
        }
      }
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Output

const f1 = fmt1;
const f0 = (x: number): string => x.toLocaleString('en-US', { maximumFractionDigits: 0 });
const mib = (b: number | undefined): string => (b === undefined ? '—' : b < 10 * MiB ? (b / MiB).toFixed(2) : f1(b / MiB));
export const contextLabel = (c: number): string => (c >= 1024 && c % 1024 === 0 ? `${c / 1024}k` : String(c));

/** model, context, batch, tok/s, ms/step, state MiB per sequence, device MiB, path, fill, check */
export function sweepTable(points: readonly SweepPoint[]): string {
  return markdownTable({
    head: ['model', 'context', 'batch', 'decode tok/s (total)', 'ms/step', 'state MiB / sequence', 'GPU MiB in use (peak)', 'GPU MiB held', 'decode path', 'state filled by', 'check'],
    align: ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l', 'l', 'l'],
    rows: points.map((p) =>
      p.status === 'ok'
        ? [p.model, contextLabel(p.context), String(p.batch), f1(p.tok_s!), p.ms_per_step!.toFixed(2), mib(p.state_bytes_per_seq), mib(p.peak_live_bytes), mib(p.device_bytes), `${p.path} (${p.steps} steps)`, p.fill, p.check ?? '']
        : [p.model, contextLabel(p.context), String(p.batch), p.status === 'oom' ? '**out of memory**' : p.status === 'planned' ? 'planned (not run)' : '**failed**', '—', mib(p.state_bytes_per_seq), `needs ${mib(p.needed_bytes)}`, '—', '—', p.fill, p.reason ?? ''],
    ),
  });
}

/**
 * per context and batch: the first model against the second (speed a/b, state per sequence b/a); with more models,
 * one table per model after the first (e.g. a Transformer with f32 and with bf16 KV caches)
 */
export function ratioTable(points: readonly SweepPoint[]): string {
  const models = [...new Set(points.map((p) => p.model))];
  return models.slice(1).map((b) => ratioTableOf(points, models[0], b)).join('\n\n');
}

function ratioTableOf(points: readonly SweepPoint[], a: string, b: string): string {
  const keys = [...new Set(points.map((p) => `${p.batch}|${p.context}`))];
  const rows: string[][] = [];
  for (const k of keys) {
    const [B, C] = k.split('|').map(Number);
    const pa = points.find((p) => p.model === a && p.batch === B && p.context === C);
    const pb = points.find((p) => p.model === b && p.batch === B && p.context === C);
    if (!pa || !pb) continue;
    const speed = (p: SweepPoint) => (p.status === 'ok' ? f1(p.tok_s!) : p.status === 'oom' ? 'out of memory' : p.status === 'planned' ? 'planned' : 'failed');
    const ratio = pa.status === 'ok' && pb.status === 'ok' ? `${(pa.tok_s! / pb.tok_s!).toFixed(2)}×` : pa.status === 'ok' && pb.status === 'oom' ? `∞ (${b} out of memory)` : '—';
    rows.push([contextLabel(C), String(B), speed(pa), speed(pb), ratio, mib(pa.state_bytes_per_seq), mib(pb.state_bytes_per_seq), `${(pb.state_bytes_per_seq / pa.state_bytes_per_seq).toFixed(2)}×`]);
  }
  return markdownTable({
    head: ['context', 'batch', `${a} tok/s`, `${b} tok/s`, `speed ${a} / ${b}`, `${a} state MiB/seq`, `${b} state MiB/seq`, `memory ${b} / ${a}`],
    align: ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    rows,
  });
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

/**
 * decode tok/s vs context (log–log) per model (and engine) and batch, state per sequence, and — when the points
 * carry it — GPU memory; OOM points marked. Another engine's series (`engine`) is dashed, in its model's colour.
 */
export function sweepChart(points: readonly SweepPoint[], title = 'Decode speed and memory vs context (WebGPU)'): ChartOptions {
  const models = [...new Set(points.map((p) => p.model))];
  // ours (no engine) first: Array.prototype.sort puts undefined last without asking the comparator
  const others = [...new Set(points.flatMap((p) => (p.engine === undefined ? [] : [p.engine])))].sort();
  const engines: Array<string | undefined> = points.some((p) => p.engine === undefined) ? [undefined, ...others] : others;
  const batches = [...new Set(points.map((p) => p.batch))].sort((a, b) => a - b);
  const contexts = [...new Set(points.map((p) => p.context))].sort((a, b) => a - b);
  const color = (m: string) => COLORS[models.indexOf(m) % COLORS.length];
  const named = (m: string, e: string | undefined) => (e ? `${m} (${e})` : m);
  const withGpu = points.some((p) => p.peak_live_bytes !== undefined);
  const speed: Series[] = [];
  const gpu: Series[] = [];
  const marks: Mark[] = [];
  const gpuMarks: Mark[] = [];
  for (const m of models) {
    for (const e of engines) {
      batches.forEach((B, bi) => {
        const ps = points.filter((p) => p.model === m && p.engine === e && p.batch === B).sort((a, b) => a.context - b.context);
        if (ps.length === 0) return;
        const x = ps.map((p) => p.context);
        const name = `${named(m, e)}, batch ${B}`;
        const dashed = bi > 0 || e !== undefined;
        speed.push({ name, x, y: ps.map((p) => (p.status === 'ok' ? p.tok_s! : NaN)), color: color(m), dashed, markers: true });
        if (withGpu) gpu.push({ name, x, y: ps.map((p) => (p.status === 'ok' && p.peak_live_bytes !== undefined ? p.peak_live_bytes / MiB : NaN)), color: color(m), dashed, markers: true });
        for (const p of ps) {
          if (p.status === 'ok') continue;
          const what = p.status === 'oom' ? 'out of memory' : 'failed';
          marks.push({ x: p.context, label: `${name}: ${what}`, color: color(m) });
          gpuMarks.push({ x: p.context, y: p.needed_bytes / MiB, label: `${name}: ${what} (needs ${f0(p.needed_bytes / 2 ** 30)} GiB)`, color: color(m) });
        }
      });
    }
  }
  const state: Series[] = models.flatMap((m) =>
    engines.flatMap((e) => {
      const ps = [...new Map(points.filter((p) => p.model === m && p.engine === e).map((p) => [p.context, p])).values()].sort((a, b) => a.context - b.context);
      return ps.length ? [{ name: named(m, e), x: ps.map((p) => p.context), y: ps.map((p) => p.state_bytes_per_seq / MiB), color: color(m), dashed: e !== undefined, markers: true }] : [];
    }),
  );
  return {
    title,
    xLabel: 'context (tokens, log scale)',
    xScale: 'log',
    xTicks: contexts.map((c) => ({ at: c, label: contextLabel(c) })),
    panelHeight: 300,
    panels: [
      { title: batches.length > 1 || batches[0] !== 1 ? 'decode tokens/s, total over the batch' : 'decode tokens/s (batch 1)', yLabel: 'tok/s (log)', yScale: 'log', series: speed, marks },
      { title: 'state per sequence (KV cache or SSM state)', yLabel: 'MiB (log)', yScale: 'log', series: state },
      ...(withGpu ? [{ title: 'GPU memory in use at most (weights + states + scratch)', yLabel: 'MiB (log)', yScale: 'log' as const, series: gpu, marks: gpuMarks }] : []),
    ],
  };
}

export const sweepSvg = (points: readonly SweepPoint[], title?: string): string => lineChartSvg(sweepChart(points, title));
