/** Shared test helpers: fixture paths and comparisons. */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../src/io/safetensors.js';
import type { AttentionArgs, Backend } from '../src/backend/backend.js';
import type { CausalLM } from '../src/models/causal-lm.js';
import type { Tensor } from '../src/tensor/tensor.js';
import type { WasmRuntime } from '../src/backend/wasm/runtime.js';

/** repository root (tests run from dist/test/…) */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');
export const hfFixture = (name: string): string => path.join(FIXTURES, 'hf', name);

/** max |a − b| over max |b| (1 where b is all zero); Infinity when the lengths differ */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0, m = 0;
  for (let i = 0; i < b.length; i++) (e = Math.max(e, Math.abs(a[i] - b[i]))), (m = Math.max(m, Math.abs(b[i])));
  return a.length === b.length ? e / (m || 1) : Infinity;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** a decode's logits per step and its greedy token ids */
export interface DecodeRun {
  logits: ArrayLike<number>[];
  ids: number[];
}

/** two decodes of the same tokens agree: each step's logits within `tol` (max |Δ|), the greedy ids equal; `what` names the case */
export function assertSameDecode(got: DecodeRun, want: DecodeRun, tol: number, what: string): void {
  assert.equal(got.logits.length, want.logits.length, `${what}: decode steps`);
  for (let i = 0; i < want.logits.length; i++) {
    const d = maxAbsDiff(got.logits[i], want.logits[i]);
    assert.ok(d <= tol, `${what} step ${i}: logits differ by ${d} (> ${tol})`);
  }
  assert.deepEqual(got.ids, want.ids, `${what}: greedy ids`);
}

/** the logits of a fresh one-sequence state after the first `prompt` ids, then after each of ids[0 … steps−1] fed one at a time */
export async function stepLogits(lm: CausalLM, ids: readonly number[], prompt: number, steps: number): Promise<Float32Array[]> {
  const s = lm.createState(1);
  const out = [(await lm.advance([ids.slice(0, prompt)], s)).data.slice()];
  for (let t = 0; t < steps; t++) out.push((await lm.advance([[ids[t]]], s)).data.slice());
  return out;
}

export interface Reference {
  file: SafetensorsFile;
  ids(name: string): number[][];
  f32(name: string): Float32Array;
  shape(name: string): number[];
}

export function loadReference(dir: string): Reference {
  const file = SafetensorsFile.open(path.join(dir, 'reference.safetensors'));
  return {
    file,
    ids(name) {
      const [b, l] = file.entry(name).shape;
      const flat = Array.from(file.int32(name));
      return Array.from({ length: b }, (_, i) => flat.slice(i * l, (i + 1) * l));
    },
    f32: (name) => file.float32(name),
    shape: (name) => file.entry(name).shape,
  };
}

/** deterministic pseudo-random floats in [-scale, scale) */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

/** an attention op's sizes: batch, query length, query heads, key/value heads, head dim */
export interface AttentionDims {
  b: number;
  L: number;
  Hq: number;
  Hkv: number;
  hd: number;
}

/**
 * An attention op's arguments on `be` from host arrays (copied): q [b, L, Hq, hd], k/v [b, L, Hkv, hd], and a KV cache
 * [b, T, Hkv, hd] when `ck`/`cv` are given (T = their length / (b·Hkv·hd)); scale 1/√hd.
 */
/**
 * The tensors of attention args as results of an op on their backend (x + 0: the same values), as a model's are,
 * not uploads. WebGPU generates and compiles a kernel per arrangement of its bindings in buffers, and uploads sit in
 * other buffers than op results: with these, small attention cases bind like a model's layers, so on SwiftShader
 * (2-4 s of CPU per flash-kernel compile) they share one pipeline with each other and with the model tests
 * (webgpu-attention.test.ts). Larger results may land in buffers of their own (webgpu-attention-prefill's 200-position
 * cases compiled more pipelines this way, not fewer: it keeps uploads).
 */
export function computedArgs(be: Backend, a: AttentionArgs): AttentionArgs {
  const op = (t: Tensor): Tensor => be.add(t, be.zeros(t.shape));
  return { ...a, q: op(a.q), k: op(a.k), v: op(a.v), cacheK: a.cacheK && op(a.cacheK), cacheV: a.cacheV && op(a.cacheV) };
}

export function attentionArgs(be: Backend, dims: AttentionDims, q: Float32Array, k: Float32Array, v: Float32Array, pastLen: number[], ck: Float32Array | null = null, cv: Float32Array | null = null): AttentionArgs {
  const { b, L, Hq, Hkv, hd } = dims;
  const T = ck ? ck.length / (b * Hkv * hd) : 0;
  return {
    q: be.fromHost(q.slice(), [b, L, Hq, hd]),
    k: be.fromHost(k.slice(), [b, L, Hkv, hd]),
    v: be.fromHost(v.slice(), [b, L, Hkv, hd]),
    cacheK: ck && be.fromHost(ck.slice(), [b, T, Hkv, hd]),
    cacheV: cv && be.fromHost(cv.slice(), [b, T, Hkv, hd]),
    pastLen,
    scale: 1 / Math.sqrt(hd),
  };
}

/**
 * Watch a wasm runtime's team calls: `see(kernel, args, parallel)` sees each one before it runs and may return the
 * `parallel` to run it with (e.g. true: split a kernel below MIN_PARALLEL_WORK anyway); returns the function that
 * puts the runtime's own runTeam back (call it in a `finally`).
 */
export function watchTeam(rt: WasmRuntime, see: (kernel: string, args: number[], parallel: boolean | undefined) => boolean | void): () => void {
  const runTeam = rt.runTeam;
  rt.runTeam = function (k, args, parallel) {
    const p = see(k, args, parallel);
    return runTeam.call(this, k, args, p ?? parallel);
  };
  return () => void (rt.runTeam = runTeam);
}
