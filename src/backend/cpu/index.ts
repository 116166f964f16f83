/**
 * The CPU backend: storage is a Float32Array, kernels are plain TypeScript (`kernels.ts`,
 * `selective_scan.ts`). Synchronous underneath; `read` still returns a Promise so callers are written
 * for async backends from the start.
 */
import { PREFILL_SUPPORT, type AttentionArgs, type Backend, type CausalConv1dArgs, type DiffAttrs, type DiffOp, type Differentiated, type Elementwise, type PrefillSupport, type SelectiveScanArgs, type SsdArgs } from '../backend.js';
import { Tensor, shapeSize, type Shape } from '../../tensor/tensor.js';
import { attention, causalConv1d, linear, rmsNorm, rmsNormGated, rope } from './kernels.js';
import { scanChunked, scanSequential } from './selective_scan.js';
import { cpuDifferentiable } from './autograd.js';
import { WasmRuntime } from '../wasm/runtime.js';
import { processDt, ssdChunked, ssdQuadratic, ssdRecurrent } from '../../ssm/ssd.js';
import { decodeHalfBits, encodeHalfInto, type KvCacheDType } from '../../tensor/dtype.js';
import { checkKvCache, checkKvCacheShape } from '../../api/load-options.js';
import { decodeQ8Kv, encodeQ8KvInto, q8KvBytes } from '../wasm/q8.js';

function buf(t: Tensor): Float32Array {
  return t.storage as Float32Array;
}

/** the storage of a KV cache: f32 values, the bits of bf16/f16 values, or q8 blocks (bytes, see wasm/q8.ts) */
export type KvArray = Float32Array | Uint16Array | Uint8Array;

/**
 * The storage format of a tensor: 'bf16'/'f16' for a KV cache of 16-bit values (a Uint16Array of bits), 'q8' for a
 * q8 KV cache (a Uint8Array of blocks [f32 scale, 32 × int8] along the head dim, wasm/q8.ts), else 'f32'.
 */
export function kvOf(t: Tensor): KvCacheDType {
  if (t.storage instanceof Uint16Array) return t.dtype as 'bf16' | 'f16';
  if (t.storage instanceof Uint8Array && t.dtype === 'q8') return 'q8';
  return 'f32';
}

/** the values of a KV cache's storage as a new f32 array (f32 storage: the array itself) */
function decodeKv(a: KvArray, kv: KvCacheDType): Float32Array {
  if (kv === 'q8') return decodeQ8Kv(a as Uint8Array);
  if (kv === 'bf16' || kv === 'f16') return decodeHalfBits(a as Uint16Array, kv);
  return a as Float32Array;
}

/** f32 values → a KV cache's storage from value index `offset` in its format (bf16/f16 round-to-nearest-even, q8 per block of 32) */
export function encodeKvInto(src: Float32Array, kv: KvCacheDType, dst: KvArray, offset: number): void {
  if (kv === 'q8') encodeQ8KvInto(src, dst as Uint8Array, offset);
  else if (kv === 'bf16' || kv === 'f16') encodeHalfInto(src, kv, dst as Uint16Array, offset);
  else (dst as Float32Array).set(src, offset);
}

/** f32 values rounded to a KV cache format and back: the values a cache in that format holds (f32: `src` itself) */
export function roundToKv(src: Float32Array, kv: KvCacheDType): Float32Array {
  if (kv === 'f32') return src;
  const a = kvArray(src.length, kv);
  encodeKvInto(src, kv, a, 0);
  return decodeKv(a, kv);
}

/** a zeroed JS array holding `count` values of a KV cache in format kv */
function kvArray(count: number, kv: KvCacheDType): KvArray {
  return kv === 'f32' ? new Float32Array(count) : kv === 'q8' ? new Uint8Array(q8KvBytes(count)) : new Uint16Array(count);
}

/** the values of `t` as f32: its own array (f32 storage) or a decoded copy (a bf16/f16/q8 KV cache) */
function f32Of(t: Tensor): Float32Array {
  return decodeKv(t.storage as KvArray, kvOf(t));
}

function opt(t: Tensor | null): Float32Array | null {
  return t ? buf(t) : null;
}

/**
 * The runtime of the float32 training kernels (GEMM, selective scan, causal conv1d in wasm SIMD) that CPU backends
 * hand to their differentiable ops: one single-threaded runtime per process or worker thread (training is
 * data-parallel across workers), or null where the module cannot be loaded or MAMBA_TS_TRAIN_WASM=js (or the older
 * MAMBA_TS_TRAIN_GEMM=js) asks for the TypeScript implementations.
 */
export function defaultTrainRuntime(): WasmRuntime | null {
  if (trainRt === undefined) {
    const env = typeof process !== 'undefined' ? process.env : {};
    try {
      trainRt = env.MAMBA_TS_TRAIN_WASM === 'js' || env.MAMBA_TS_TRAIN_GEMM === 'js' ? null : WasmRuntime.get(1);
    } catch {
      trainRt = null;
    }
  }
  return trainRt;
}
let trainRt: WasmRuntime | null | undefined;

export interface CpuBackendOptions {
  /**
   * the kernels of its differentiable ops: 'wasm' (default: the wasm SIMD training kernels where they load, see
   * `defaultTrainRuntime`) or 'typescript' (the reference implementations only)
   */
  trainKernels?: 'wasm' | 'typescript';
}

export class CpuBackend implements Backend {
  readonly name: string = 'cpu';
  private readonly trainKernels: 'wasm' | 'typescript';

  constructor(opts: CpuBackendOptions = {}) {
    this.trainKernels = opts.trainKernels ?? 'wasm';
  }

  /** the runtime its differentiable ops run their wasm kernels on (null: TypeScript) */
  get trainRuntime(): WasmRuntime | null {
    return this.trainKernels === 'wasm' ? defaultTrainRuntime() : null;
  }
  /** every prefill algorithm, chunked by default */
  readonly prefill: PrefillSupport = PREFILL_SUPPORT.cpu;

  fromHost(data: Float32Array, shape: Shape, opts?: { kvCache?: KvCacheDType }): Tensor {
    if (data.length !== shapeSize(shape)) throw new Error(`cpu.fromHost: ${data.length} values for shape [${shape.join(', ')}]`);
    const kv = checkKvCache(opts?.kvCache, `${this.name}.fromHost`, this.name);
    if (kv === 'f32') return new Tensor(this, data, [...shape]);
    checkKvCacheShape(kv, shape, `${this.name}.fromHost`);
    const a = this.cacheArray(data.length, kv);
    encodeKvInto(data, kv, a, 0);
    return new Tensor(this, a, [...shape], kv);
  }
  zeros(shape: Shape, kvCache?: KvCacheDType): Tensor {
    const kv = checkKvCache(kvCache, `${this.name}.zeros`, this.name);
    checkKvCacheShape(kv, shape, `${this.name}.zeros`);
    if (kv !== 'f32') return new Tensor(this, this.cacheArray(shapeSize(shape), kv), [...shape], kv);
    return new Tensor(this, new Float32Array(shapeSize(shape)), [...shape]);
  }
  read(t: Tensor): Promise<Float32Array> {
    return Promise.resolve(kvOf(t) !== 'f32' ? f32Of(t) : buf(t).slice());
  }
  /** f32 storage: the array itself; a bf16/f16/q8 KV cache: a decoded copy */
  readSync(t: Tensor): Float32Array {
    return f32Of(t);
  }
  dispose(_t: Tensor): void {
    // garbage-collected
  }

  embedding(table: Tensor, ids: Int32Array): Tensor {
    const H = table.shape[1];
    const src = buf(table);
    const out = new Float32Array(ids.length * H);
    for (let i = 0; i < ids.length; i++) out.set(src.subarray(ids[i] * H, ids[i] * H + H), i * H);
    return new Tensor(this, out, [ids.length, H]);
  }
  linear(x: Tensor, w: Tensor, bias: Tensor | null): Tensor {
    const [M, K] = x.shape;
    const N = w.shape[0];
    return new Tensor(this, linear(buf(x), buf(w), opt(bias), M, K, N), [M, N]);
  }
  rmsNorm(x: Tensor, w: Tensor | null, eps: number): Tensor {
    const [M, H] = x.shape;
    return new Tensor(this, rmsNorm(buf(x), opt(w), eps, M, H), [M, H]);
  }
  rmsNormGated(x: Tensor, z: Tensor, w: Tensor, eps: number, groupSize: number): Tensor {
    const [M, W] = x.shape;
    return new Tensor(this, rmsNormGated(buf(x), buf(z), buf(w), eps, M, W, groupSize), [M, W]);
  }
  scale(x: Tensor, s: number): Tensor {
    const src = buf(x);
    const out = new Float32Array(src.length);
    if (s === 1) out.set(src);
    else for (let i = 0; i < src.length; i++) out[i] = src[i] * s;
    return new Tensor(this, out, x.shape);
  }
  activation(x: Tensor, kind: Elementwise): Tensor {
    const f: (v: number) => number =
      kind === 'silu' ? (v) => v / (1 + Math.exp(-v))
      : kind === 'relu' ? (v) => (v > 0 ? v : 0)
      : kind === 'relu2' ? (v) => (v > 0 ? v * v : 0)
      : kind === 'neg_exp' ? (v) => -Math.exp(v)
      : kind === 'sigmoid' ? (v) => 1 / (1 + Math.exp(-v))
      : (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
    return new Tensor(this, buf(x).map(f), x.shape);
  }
  differentiable(op: DiffOp, inputs: readonly (Tensor | null)[], attrs: DiffAttrs): Differentiated {
    return cpuDifferentiable(this, op, inputs, attrs, this.trainRuntime);
  }
  siluMul(a: Tensor, b: Tensor): Tensor {
    const x = buf(a), y = buf(b);
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = Math.fround(x[i] / (1 + Math.exp(-x[i]))) * y[i];
    return new Tensor(this, out, a.shape);
  }
  add(a: Tensor, b: Tensor): Tensor {
    const x = buf(a), y = buf(b);
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i] + y[i];
    return new Tensor(this, out, a.shape);
  }
  split(x: Tensor, sizes: readonly number[]): Tensor[] {
    const W = x.shape[x.shape.length - 1];
    const M = x.size / W;
    const src = buf(x);
    let off = 0;
    return sizes.map((s) => {
      const out = new Float32Array(M * s);
      for (let i = 0; i < M; i++) out.set(src.subarray(i * W + off, i * W + off + s), i * s);
      off += s;
      return new Tensor(this, out, [...x.shape.slice(0, -1), s]);
    });
  }
  causalConv1d(a: CausalConv1dArgs): Tensor {
    const [batch, L, C] = a.x.shape;
    const K = a.weight.shape[1];
    const y = causalConv1d(buf(a.x), buf(a.weight), opt(a.bias), opt(a.state), a.activation === 'silu', batch, L, C, K);
    return new Tensor(this, y, [batch, L, C]);
  }
  selectiveScan(a: SelectiveScanArgs): Tensor {
    const [batch, L, D] = a.u.shape;
    const arrays = {
      batch, seqLen: L, dim: D, dState: a.A.shape[1],
      u: buf(a.u), delta: buf(a.delta), A: buf(a.A), B: buf(a.B), C: buf(a.C),
      D: opt(a.D), z: opt(a.z), deltaBias: opt(a.deltaBias), deltaSoftplus: a.deltaSoftplus, state: opt(a.state),
    };
    const y = a.algorithm === 'chunked' && L > a.chunkSize ? scanChunked(arrays, a.chunkSize) : scanSequential(arrays);
    return new Tensor(this, y, [batch, L, D]);
  }
  ssd(a: SsdArgs): Tensor {
    const [batch, L, nh, hd] = a.x.shape;
    const [, , G, N] = a.B.shape;
    const arrays = {
      batch, seqLen: L, nHeads: nh, headDim: hd, nGroups: G, dState: N,
      x: buf(a.x), dt: processDt(buf(a.dt), opt(a.dtBias), nh, a.dtLimit), A: buf(a.A), B: buf(a.B), C: buf(a.C),
      D: opt(a.D), state: opt(a.state),
    };
    const y = a.algorithm === 'recurrent' || L === 1 ? ssdRecurrent(arrays)
      : a.algorithm === 'quadratic' ? ssdQuadratic(arrays)
      : ssdChunked(arrays, a.chunkSize);
    return new Tensor(this, y, [batch, L, nh, hd]);
  }
  rope(x: Tensor, positions: Int32Array, rotaryDim: number, theta: number): Tensor {
    const [b, L, H, hd] = x.shape;
    return new Tensor(this, rope(buf(x), positions, b * L, H, hd, rotaryDim, theta), x.shape);
  }
  /**
   * A bf16/f16/q8 cache: the new k/v are written in its format (round-to-nearest-even; q8: quantized per block of
   * 32), then the reference kernel runs on the decoded cache, so that every key and value it reads (the new ones
   * too) is the stored one.
   */
  attention(a: AttentionArgs): Tensor {
    const [b, L, Hq, hd] = a.q.shape;
    const Hkv = a.k.shape[2];
    const T = a.cacheK ? a.cacheK.shape[1] : L;
    const fmt = a.cacheK ? kvOf(a.cacheK) : 'f32';
    if (fmt !== 'f32') {
      // (the values as written: k/v rounded as the cache rounds them; rows of whole q8 blocks, so the same blocks)
      writeRowsKv(a.cacheK!.storage as KvArray, buf(a.k), a.pastLen, b, L, T, Hkv * hd, fmt);
      writeRowsKv(a.cacheV!.storage as KvArray, buf(a.v), a.pastLen, b, L, T, Hkv * hd, fmt);
      const k = roundToKv(buf(a.k), fmt), v = roundToKv(buf(a.v), fmt);
      const y = attention(buf(a.q), k, v, f32Of(a.cacheK!), f32Of(a.cacheV!), a.pastLen, b, L, Hq, Hkv, hd, T, a.scale);
      return new Tensor(this, y, [b, L, Hq, hd]);
    }
    const y = attention(buf(a.q), buf(a.k), buf(a.v), opt(a.cacheK), opt(a.cacheV), a.pastLen, b, L, Hq, Hkv, hd, T, a.scale);
    return new Tensor(this, y, [b, L, Hq, hd]);
  }
  /**
   * (a bf16/f16 dst: each changed value is rounded to its format again; q8: the blocks holding changed values are
   * quantized again, after all the rows are added — a row may be part of a block, e.g. one head of 16 values)
   */
  scatterAddRows(dst: Tensor, rows: Int32Array, src: Tensor, weights: Float32Array): void {
    const H = dst.shape[dst.shape.length - 1];
    const s = f32Of(src);
    const kv = kvOf(dst);
    if (kv === 'q8') {
      const blocks = dst.storage as Uint8Array;
      const vals = decodeQ8Kv(blocks);
      const touched = new Set<number>();
      for (let i = 0; i < rows.length; i++) {
        const w = weights[i];
        const so = i * H, dOff = rows[i] * H;
        for (let k = 0; k < H; k++) vals[dOff + k] += w * s[so + k];
        for (let blk = Math.floor(dOff / 32); blk * 32 < dOff + H; blk++) touched.add(blk);
      }
      for (const blk of touched) encodeKvInto(vals.subarray(blk * 32, blk * 32 + 32), kv, blocks, blk * 32);
      return;
    }
    if (kv !== 'f32') {
      const bits = dst.storage as Uint16Array;
      const row = new Float32Array(H);
      for (let i = 0; i < rows.length; i++) {
        const w = weights[i];
        const so = i * H, dOff = rows[i] * H;
        const cur = decodeHalfBits(bits.subarray(dOff, dOff + H), kv);
        for (let k = 0; k < H; k++) row[k] = cur[k] + w * s[so + k];
        encodeHalfInto(row, kv, bits, dOff);
      }
      return;
    }
    const d = buf(dst);
    for (let i = 0; i < rows.length; i++) {
      const w = weights[i];
      const so = i * H, dOff = rows[i] * H;
      for (let k = 0; k < H; k++) d[dOff + k] += w * s[so + k];
    }
  }
  /**
   * the zeroed array of a KV cache (zeros, padTime) of `count` values in its format (bf16/f16: the bits; q8: the
   * blocks' bytes); the wasm backend puts it in wasm memory
   */
  protected cacheArray(count: number, kvCache: KvCacheDType = 'f32'): KvArray {
    return kvArray(count, kvCache);
  }
  /** (keeps the format of a bf16/f16/q8 KV cache: rows of whole blocks are copied as they are) */
  padTime(t: Tensor, newT: number): Tensor {
    const [b, T] = t.shape;
    const src = t.storage as KvArray;
    const out = this.cacheArray((t.size / T) * newT, kvOf(t));
    const inner = src.length / (b * T); // storage elements per position
    for (let r = 0; r < b; r++) out.set(src.subarray(r * T * inner, (r + 1) * T * inner) as Float32Array & Uint16Array & Uint8Array, r * newT * inner);
    return new Tensor(this, out, [b, newT, ...t.shape.slice(2)], t.dtype);
  }
  /** (bf16/f16/q8 KV caches stay in their format; the tensors share one dtype, see ops.concatRows) */
  concatRows(ts: readonly Tensor[]): Tensor {
    const rows = ts.reduce((s, t) => s + t.shape[0], 0);
    const n = ts.reduce((s, t) => s + t.size, 0);
    const out = kvArray(n, kvOf(ts[0]));
    let off = 0;
    for (const t of ts) {
      const a = t.storage as KvArray;
      out.set(a as Float32Array & Uint16Array & Uint8Array, off);
      off += a.length;
    }
    return new Tensor(this, out, [rows, ...ts[0].shape.slice(1)], ts[0].dtype);
  }
  takeRows(t: Tensor, rows: readonly number[]): Tensor {
    const src = t.storage as KvArray;
    const rowSize = src.length / t.shape[0]; // storage elements per row
    const out = kvArray((t.size / t.shape[0]) * rows.length, kvOf(t));
    rows.forEach((r, i) => out.set(src.subarray(r * rowSize, (r + 1) * rowSize) as Float32Array & Uint16Array & Uint8Array, i * rowSize));
    return new Tensor(this, out, [rows.length, ...t.shape.slice(1)], t.dtype);
  }
}

/**
 * k/v [b, L, rowKV] → the cache [b, T, rowKV] in its format at positions pastLen[r] … (bf16/f16 round-to-nearest-even,
 * exact for values already rounded; q8 quantized per block of 32 along the row, rowKV a multiple of 32)
 */
export function writeRowsKv(cache: KvArray, kv: Float32Array, pastLen: readonly number[], b: number, L: number, T: number, rowKV: number, fmt: KvCacheDType): void {
  for (let r = 0; r < b; r++) encodeKvInto(kv.subarray(r * L * rowKV, (r + 1) * L * rowKV), fmt, cache, (r * T + pastLen[r]) * rowKV);
}

export const cpu = new CpuBackend();
