/**
 * The WebAssembly linear kernels (wasm/assembly/linear.ts and linear_q8.ts, built into dist/wasm/kernels.wasm) against a
 * float64 JS reference of the same (dequantized) weights: y[:, n0:n1] = x · Wᵀ (+ bias) for f32, bf16, f16 and q8
 * weights on odd shapes and slices (empty, single-column, unaligned); columns outside the slice stay untouched;
 * f16 → f32 conversion is exact for every finite half (subnormals and signed zeros included) in every code path;
 * quantize_q8 round-trips within half a step. q8 multiplies activations quantized by quantize_rows_q8 (13 bits per
 * block of 32; checked exactly): the result is the float64 product of those quantized activations within f32 rounding
 * of the block sums, within the quantization error bound of the unquantized product, and the same bits for any
 * split of N and any number of rows.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { allocBytes, f32At, i16At, i8At, instantiateKernels, put, resetArena } from './wasm-arena.js';

// ---- the module, on the shared test arena

interface Kernels {
  linear_f32(x: number, w: number, bias: number, y: number, M: number, K: number, N: number, n0: number, n1: number): void;
  linear_bf16(x: number, w: number, bias: number, y: number, M: number, K: number, N: number, n0: number, n1: number): void;
  linear_f16(x: number, w: number, bias: number, y: number, M: number, K: number, N: number, n0: number, n1: number): void;
  linear_q8(
    xq: number, xs: number, qs: number, scales: number, bias: number, y: number, M: number, K: number, N: number, n0: number, n1: number,
  ): void;
  quantize_q8(w: number, qs: number, scales: number, N: number, K: number, n0: number, n1: number): void;
  quantize_rows_q8(x: number, xq: number, xs: number, M: number, K: number, m0: number, m1: number): void;
  set_gemv_f32_mode(mode: number, t: number, T: number): void;
  gemv_f32_mode(): number;
  set_gemv_q8_mode(mode: number, t: number, T: number): void;
  gemv_q8_mode(): number;
}

const kernels = instantiateKernels<Kernels>();

// ---- deterministic randomness

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function uniform(n: number, r: () => number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale;
  return a;
}

// ---- weight formats

const cvtU32 = new Uint32Array(1);
const cvtF32 = new Float32Array(cvtU32.buffer);

function bf16ToNumber(h: number): number {
  cvtU32[0] = h << 16;
  return cvtF32[0];
}

function f32ToBf16(v: number): number {
  cvtF32[0] = v;
  return cvtU32[0] >>> 16; // truncation is fine: any bf16 will do
}

/** IEEE binary16 bits → value (finite inputs) */
function f16ToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  return e === 0 ? s * m * 2 ** -24 : s * (1024 + m) * 2 ** (e - 25);
}

/** random finite f16 bits; withSubnormals: about 1 in 8 is a subnormal or a (signed) zero */
function randomF16(n: number, r: () => number, withSubnormals: boolean): Uint16Array {
  const a = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const sign = r() < 0.5 ? 0x8000 : 0;
    const m = Math.floor(r() * 1024);
    let e: number;
    if (withSubnormals && r() < 0.125) e = 0;
    else e = 1 + Math.floor(r() * 15); // 2^-14 .. 2^0 (weights are small)
    a[i] = sign | (e << 10) | (r() < 0.02 && e === 0 ? 0 : m);
  }
  return a;
}

type Format = 'f32' | 'bf16' | 'f16' | 'q8';

/** x in wasm memory: f32 at xo; for q8 also as quantize_rows_q8 left it (xq, xs) */
interface XIn {
  xo: number;
  xq: number;
  xs: number;
}

interface Weights {
  /** dequantized W [N, K] as float64 */
  ref: Float64Array;
  /** uploads W and returns a call computing columns [n0, n1) */
  upload(): (x: XIn, bias: number, y: number, M: number, n0: number, n1: number) => void;
}

function makeWeights(fmt: Format, N: number, K: number, r: () => number, variant: number): Weights {
  const ref = new Float64Array(N * K);
  if (fmt === 'f32') {
    const w = uniform(N * K, r);
    ref.set(w);
    return {
      ref,
      upload: () => {
        const wo = put(w);
        return (x, b, y, M, n0, n1) => kernels.linear_f32(x.xo, wo, b, y, M, K, N, n0, n1);
      },
    };
  }
  if (fmt === 'bf16' || fmt === 'f16') {
    const w = fmt === 'bf16' ? Uint16Array.from(uniform(N * K, r), f32ToBf16) : randomF16(N * K, r, variant % 2 === 1);
    for (let i = 0; i < w.length; i++) ref[i] = fmt === 'bf16' ? bf16ToNumber(w[i]) : f16ToNumber(w[i]);
    return {
      ref,
      upload: () => {
        const wo = put(w);
        const f = fmt === 'bf16' ? kernels.linear_bf16 : kernels.linear_f16;
        return (x, b, y, M, n0, n1) => f(x.xo, wo, b, y, M, K, N, n0, n1);
      },
    };
  }
  // q8
  const nb = K / 32;
  const qs = new Int8Array(N * K);
  for (let i = 0; i < qs.length; i++) qs[i] = Math.round((r() * 2 - 1) * 127);
  const scales = new Float32Array(N * nb);
  for (let i = 0; i < scales.length; i++) scales[i] = r() < 0.05 ? 0 : (0.5 + r()) / 127;
  for (let j = 0; j < N; j++) for (let k = 0; k < K; k++) ref[j * K + k] = qs[j * K + k] * scales[j * nb + (k >> 5)];
  return {
    ref,
    upload: () => {
      const qo = put(qs), so = put(scales);
      return (x, b, y, M, n0, n1) => kernels.linear_q8(x.xq, x.xs, qo, so, b, y, M, K, N, n0, n1);
    },
  };
}

// ---- q8 activations

/** x [M, K] as quantize_rows_q8 stored it (xq: 13-bit integers in its layout; xs: a scale per block of 32) */
interface QuantizedX {
  /** the integers, in k order */
  q: Int16Array;
  s: Float32Array;
  /** q · s, i.e. the x that linear_q8 multiplies */
  deq: Float64Array;
}

/** reads back rows [0, M) of quantize_rows_q8's output; its layout per block: even k 0-14, odd k 1-15, then 16-31 */
function readQuantizedX(xq: number, xs: number, M: number, K: number): QuantizedX {
  const nb = K / 32;
  const raw = i16At(xq, M * K), s = f32At(xs, M * nb).slice();
  const q = new Int16Array(M * K), deq = new Float64Array(M * K);
  for (let i = 0; i < M; i++) {
    for (let b = 0; b < nb; b++) {
      for (let h = 0; h < 2; h++) {
        const at = i * K + b * 32 + h * 16;
        for (let l = 0; l < 8; l++) {
          q[at + 2 * l] = raw[at + l];
          q[at + 2 * l + 1] = raw[at + 8 + l];
        }
      }
      for (let k = b * 32; k < b * 32 + 32; k++) deq[i * K + k] = q[i * K + k] * s[i * nb + b];
    }
  }
  return { q, s, deq };
}

/** x uploaded for a format's kernel: q8 quantizes it with quantize_rows_q8 (`eff` is then the x it multiplies) */
function uploadX(fmt: Format, x: Float32Array, M: number, K: number): { inp: XIn; eff: ArrayLike<number>; qx?: QuantizedX } {
  const xo = put(x);
  if (fmt !== 'q8') return { inp: { xo, xq: 0, xs: 0 }, eff: x };
  const xq = allocBytes(M * K * 2), xs = allocBytes((M * K) / 8);
  kernels.quantize_rows_q8(xo, xq, xs, M, K, 0, M);
  const qx = readQuantizedX(xq, xs, M, K);
  return { inp: { xo, xq, xs }, eff: qx.deq, qx };
}

const U = 2 ** -24; // f32 unit roundoff

/**
 * How far linear_q8 may be from the float64 product of the quantized x and W: it sums K/32 exact block sums, each
 * scaled by one f32 product of two scales (2 roundings), in f32 (≤ K/32 − 1 more), plus the bias (1):
 * (K/32 + 3) · u · (Σ_k |x_k w_k| + |bias|).
 */
function q8RoundingBound(x: ArrayLike<number>, w: Float64Array, bias: Float32Array | null, M: number, K: number, N: number): Float64Array {
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let a = bias ? Math.abs(bias[j]) : 0;
      for (let k = 0; k < K; k++) a += Math.abs(x[i * K + k] * w[j * K + k]);
      out[i * N + j] = (K / 32 + 3) * U * a + 1e-30;
    }
  }
  return out;
}

/** |x · W − xq·xs · W| ≤ Σ_b (xs_b / 2) · Σ_{k in b} |w_k|: the error quantizing the activations may add */
function q8QuantizationBound(qx: QuantizedX, w: Float64Array, M: number, K: number, N: number): Float64Array {
  const nb = K / 32;
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let e = 0;
      for (let b = 0; b < nb; b++) {
        let a = 0;
        for (let k = b * 32; k < b * 32 + 32; k++) a += Math.abs(w[j * K + k]);
        e += (qx.s[i * nb + b] / 2) * a;
      }
      out[i * N + j] = e;
    }
  }
  return out;
}

/** float64 y = x · Wᵀ (+ bias) */
function reference(x: ArrayLike<number>, w: Float64Array, bias: Float32Array | null, M: number, K: number, N: number): Float64Array {
  const y = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = bias ? bias[j] : 0;
      for (let k = 0; k < K; k++) s += x[i * K + k] * w[j * K + k];
      y[i * N + j] = s;
    }
  }
  return y;
}

const SENTINEL = -12345.5;

function assertBitEqual(got: Float32Array, want: Float32Array, what: string): void {
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length), w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < w.length; i++) if (g[i] !== w[i]) assert.fail(`${what}: element ${i} differs: ${got[i]} vs ${want[i]}`);
}

/**
 * runs columns [n0, n1) and checks them against the reference, and that every other column is untouched. The
 * tolerance: |Δ| ≤ bound (per element) where given, else |Δ| / (1 + |ref|) ≤ 1e-4 (reported relative to the bound).
 */
function checkSlice(
  label: string, run: ReturnType<Weights['upload']>, x: XIn, bo: number, want: Float64Array,
  M: number, N: number, n0: number, n1: number, bound?: Float64Array,
): Float32Array {
  const yo = allocBytes(M * N * 4);
  f32At(yo, M * N).fill(SENTINEL);
  run(x, bo, yo, M, n0, n1);
  const y = f32At(yo, M * N);
  let worst = 0, where = '';
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      const got = y[i * N + j];
      if (j < n0 || j >= n1) {
        if (got !== SENTINEL) assert.fail(`${label} [${n0},${n1}): column ${j} of row ${i} outside the slice was written`);
        continue;
      }
      const ref = want[i * N + j];
      const err = bound ? Math.abs(got - ref) / bound[i * N + j] : Math.abs(got - ref) / (1 + Math.abs(ref)) / 1e-4;
      if (!(err <= worst)) {
        worst = Number.isNaN(err) ? Infinity : err;
        where = `row ${i} col ${j}: got ${got}, want ${ref}`;
      }
    }
  }
  assert.ok(worst <= 1, `${label} [${n0},${n1}): max |Δ| is ${worst} × the tolerance at ${where}`);
  return y;
}

/** a few slices of [0, N): whole, empty, single column, random */
function slices(N: number, r: () => number): Array<[number, number]> {
  const out: Array<[number, number]> = [[0, N]];
  const a = Math.floor(r() * (N + 1));
  out.push([a, a]);
  const c = Math.floor(r() * N);
  out.push([c, c + 1]);
  const n0 = Math.floor(r() * N);
  const n1 = n0 + 1 + Math.floor(r() * (N - n0));
  out.push([n0, n1]);
  return out;
}

const MS = [1, 2, 3, 5, 8];
const KS = [1, 3, 4, 31, 32, 64, 100, 768];
const NS = [1, 3, 4, 5, 17, 64, 259];

function runShapes(fmt: Format, seed: number): void {
  const r = rng(seed);
  let variant = 0;
  const ks = fmt === 'q8' ? KS.filter((k) => k % 32 === 0) : KS;
  for (const K of ks) {
    for (const N of NS) {
      const wts = makeWeights(fmt, N, K, r, variant++);
      resetArena();
      const run = wts.upload();
      const bias = uniform(N, r);
      const bo = put(bias);
      for (const M of MS) {
        const x = uniform(M * K, r);
        const { inp, eff, qx } = uploadX(fmt, x, M, K);
        const wantNo = reference(eff, wts.ref, null, M, K, N);
        const wantB = reference(eff, wts.ref, bias, M, K, N);
        const boundNo = qx && q8RoundingBound(eff, wts.ref, null, M, K, N);
        const boundB = qx && q8RoundingBound(eff, wts.ref, bias, M, K, N);
        let b = 0;
        for (const [n0, n1] of slices(N, r)) {
          const withBias = (b++ + M) % 2 === 0;
          const label = `${fmt} M=${M} K=${K} N=${N}${withBias ? ' +bias' : ''}`;
          const y = checkSlice(label, run, inp, withBias ? bo : 0, withBias ? wantB : wantNo, M, N, n0, n1,
            withBias ? boundB : boundNo);
          if (qx && n0 === 0 && n1 === N) {
            // and within the activations' quantization error of the unquantized product
            const exact = reference(x, wts.ref, withBias ? bias : null, M, K, N);
            const qb = q8QuantizationBound(qx, wts.ref, M, K, N), rb = withBias ? boundB! : boundNo!;
            for (let e = 0; e < M * N; e++) {
              const d = Math.abs(y[e] - exact[e]);
              assert.ok(d <= qb[e] * (1 + 1e-9) + rb[e], `${label}: |y − x·Wᵀ| = ${d} > ${qb[e]} + ${rb[e]} at ${e}`);
            }
          }
        }
      }
    }
  }
}

describe('wasm linear kernels vs float64 reference', () => {
  it('f32 weights', () => runShapes('f32', 11));
  it('bf16 weights', () => runShapes('bf16', 12));
  it('f16 weights (with and without subnormals/zeros)', () => runShapes('f16', 13));
  it('q8 weights (against the dequantized weights)', () => runShapes('q8', 14));

  it('many rows (row chunking), every format', () => {
    const r = rng(15);
    for (const fmt of ['f32', 'bf16', 'f16', 'q8'] as Format[]) {
      const M = 41, K = 2048, N = 23; // chunks of 32 rows at K = 2048
      const wts = makeWeights(fmt, N, K, r, 1);
      resetArena();
      const run = wts.upload();
      const bias = uniform(N, r);
      const x = uniform(M * K, r);
      const { inp, eff, qx } = uploadX(fmt, x, M, K);
      const bo = put(bias);
      const want = reference(eff, wts.ref, bias, M, K, N);
      const bound = qx && q8RoundingBound(eff, wts.ref, bias, M, K, N);
      for (const [n0, n1] of [[0, N], [3, 17], [5, 6]] as Array<[number, number]>) {
        checkSlice(`${fmt} M=${M} K=${K} N=${N}`, run, inp, bo, want, M, N, n0, n1, bound);
      }
    }
  });
});

describe('wasm linear: f16 conversion', () => {
  it('is exact for every finite half, in the fast and exact paths of every kernel shape', () => {
    // all 63488 finite halves as W [7936, 8]; x rows are one-hot, so y[i, j] = W[j, p_i] exactly
    const halves: number[] = [];
    for (let h = 0; h < 0x10000; h++) if (((h >> 10) & 0x1f) !== 0x1f) halves.push(h);
    const K = 8, N = halves.length / K;
    resetArena();
    const w = Uint16Array.from(halves);
    const wo = put(w);
    // a second copy without any exponent-0 half, so that the fast path runs too
    const wn = Uint16Array.from(halves, (h) => (((h >> 10) & 0x1f) === 0 ? h | 0x0400 : h));
    const wno = put(wn);
    for (const [wOff, ws] of [[wo, w], [wno, wn]] as Array<[number, Uint16Array]>) {
      for (const M of [1, 4, 5]) {
        const x = new Float32Array(M * K);
        const ps = Array.from({ length: M }, (_, i) => (i * 3 + (ws === w ? 0 : 5)) % K);
        ps.forEach((p, i) => (x[i * K + p] = 1));
        const xo = put(x), yo = allocBytes(M * N * 4);
        kernels.linear_f16(xo, wOff, 0, yo, M, K, N, 0, N);
        const y = f32At(yo, M * N);
        for (let i = 0; i < M; i++) {
          for (let j = 0; j < N; j++) {
            const want = f16ToNumber(ws[j * K + ps[i]]);
            const got = y[i * N + j];
            if (got !== want) assert.fail(`M=${M} row ${i} half 0x${ws[j * K + ps[i]].toString(16)}: got ${got}, want ${want}`);
          }
        }
      }
    }
  });

  it('K tails (K % 8 = 4..7 and 1..3) convert exactly', () => {
    resetArena();
    const r = rng(16);
    for (const K of [4, 5, 7, 12, 13, 15]) {
      const N = 9, M = 5;
      const w = randomF16(N * K, r, true);
      const ref = Float64Array.from(w, f16ToNumber);
      const x = uniform(M * K, r);
      const xo = put(x), wo = put(w), yo = allocBytes(M * N * 4);
      kernels.linear_f16(xo, wo, 0, yo, M, K, N, 0, N);
      const want = reference(x, ref, null, M, K, N);
      const y = f32At(yo, M * N);
      for (let i = 0; i < M * N; i++) assert.ok(Math.abs(y[i] - want[i]) <= 1e-6 * (1 + Math.abs(want[i])), `K=${K} ${i}`);
    }
  });
});

describe('wasm quantize_q8', () => {
  it('round-trips within half a step, scale = max|w| / 127, zero blocks → 0, rows outside the slice untouched', () => {
    const r = rng(17);
    for (const [N, K] of [[1, 32], [7, 64], [13, 768]]) {
      resetArena();
      const w = uniform(N * K, r, 0.1);
      // a block of zeros, a block with one outlier, a block of equal magnitudes
      w.fill(0, 0, 32);
      if (N * K > 64) w[40] = 3.5;
      if (N * K > 96) for (let k = 64; k < 96; k++) w[k] = k % 2 ? 0.25 : -0.25;
      const nb = K / 32;
      const wo = put(w), qo = allocBytes(N * K), so = allocBytes(N * nb * 4);
      i8At(qo, N * K).fill(99);
      f32At(so, N * nb).fill(SENTINEL);
      const n0 = N > 2 ? 1 : 0, n1 = N > 2 ? N - 1 : N;
      kernels.quantize_q8(wo, qo, so, N, K, n0, n1);
      const q = i8At(qo, N * K), s = f32At(so, N * nb);
      for (let j = 0; j < N; j++) {
        for (let b = 0; b < nb; b++) {
          const sc = s[j * nb + b];
          if (j < n0 || j >= n1) {
            assert.equal(sc, SENTINEL, `row ${j} outside the slice: scale written`);
            for (let k = b * 32; k < b * 32 + 32; k++) assert.equal(q[j * K + k], 99, `row ${j} outside: q written`);
            continue;
          }
          let amax = 0;
          for (let k = b * 32; k < b * 32 + 32; k++) amax = Math.max(amax, Math.abs(w[j * K + k]));
          assert.equal(sc, Math.fround(Math.fround(amax) / 127), `row ${j} block ${b}: scale`);
          for (let k = b * 32; k < b * 32 + 32; k++) {
            const qv = q[j * K + k];
            assert.ok(qv >= -127 && qv <= 127, `q in range: ${qv}`);
            if (sc === 0) {
              assert.equal(qv, 0);
              continue;
            }
            const err = Math.abs(qv * sc - w[j * K + k]);
            assert.ok(err <= sc * (0.5 + 1e-5), `row ${j} k ${k}: |q·scale - w| = ${err} > scale/2 = ${sc / 2}`);
          }
        }
      }
      // and the quantized weights through linear_q8 equal the dequantized reference
      const M = 3;
      const x = uniform(M * K, r);
      kernels.quantize_q8(wo, qo, so, N, K, 0, N);
      const { inp, eff } = uploadX('q8', x, M, K);
      const yo = allocBytes(M * N * 4);
      kernels.linear_q8(inp.xq, inp.xs, qo, so, 0, yo, M, K, N, 0, N);
      const deq = new Float64Array(N * K);
      for (let i = 0; i < N * K; i++) deq[i] = q[i] * s[Math.floor(i / 32)];
      const want = reference(eff, deq, null, M, K, N), bound = q8RoundingBound(eff, deq, null, M, K, N);
      const y = f32At(yo, M * N);
      for (let i = 0; i < M * N; i++) assert.ok(Math.abs(y[i] - want[i]) <= bound[i], `linear_q8 ${i}`);
    }
  });
});

/** round to nearest, ties to even (f32x4.nearest) */
function roundEven(v: number): number {
  const f = Math.floor(v), d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

describe('wasm quantize_rows_q8 (the activations of linear_q8)', () => {
  it('13-bit values in the kernel layout: xs = max|x| / 4095, xq = round(x / xs), rows outside the slice untouched', () => {
    const r = rng(18);
    for (const [M, K] of [[1, 32], [5, 64], [9, 768]]) {
      resetArena();
      const x = uniform(M * K, r, 3);
      // a block of zeros, one with an outlier, one of equal magnitudes, one of tiny values, one of ties (x / xs = n + ½)
      x.fill(0, 0, 32);
      if (M * K > 64) x[40] = 1000;
      if (M * K > 96) for (let k = 64; k < 96; k++) x[k] = k % 2 ? 0.25 : -0.25;
      if (M * K > 128) for (let k = 96; k < 128; k++) x[k] = (r() - 0.5) * 1e-30;
      if (M * K > 160) for (let k = 128; k < 160; k++) x[k] = k === 128 ? 4095 : (k % 7) + 0.5;
      const nb = K / 32;
      const xo = put(x), xq = allocBytes(M * K * 2), xs = allocBytes(M * nb * 4);
      i16At(xq, M * K).fill(12345);
      f32At(xs, M * nb).fill(SENTINEL);
      const m0 = M > 2 ? 1 : 0, m1 = M > 2 ? M - 1 : M;
      kernels.quantize_rows_q8(xo, xq, xs, M, K, m0, m1);
      const raw = i16At(xq, M * K), { q, s } = readQuantizedX(xq, xs, M, K);
      for (let i = 0; i < M; i++) {
        for (let b = 0; b < nb; b++) {
          const sc = s[i * nb + b];
          if (i < m0 || i >= m1) {
            assert.equal(sc, SENTINEL, `row ${i} outside the slice: scale written`);
            for (let k = b * 32; k < b * 32 + 32; k++) assert.equal(raw[i * K + k], 12345, `row ${i} outside: xq written`);
            continue;
          }
          let amax = 0;
          for (let k = b * 32; k < b * 32 + 32; k++) amax = Math.max(amax, Math.abs(x[i * K + k]));
          assert.equal(sc, Math.fround(amax / 4095), `row ${i} block ${b}: scale`);
          for (let k = b * 32; k < b * 32 + 32; k++) {
            const v = x[i * K + k], qv = q[i * K + k];
            const want = sc === 0 ? 0 : Math.max(-4095, Math.min(4095, roundEven(Math.fround(v / sc))));
            assert.equal(qv, want, `row ${i} k ${k}: xq = ${qv}, want ${want} (x = ${v}, xs = ${sc})`);
            assert.ok(Math.abs(qv * sc - v) <= (sc / 2) * (1 + 1e-6), `row ${i} k ${k}: |xq·xs − x| > xs/2`);
          }
        }
      }
    }
  });
});

describe('wasm linear_q8: integer block sums', () => {
  /** x (M × K) quantized, W (N × K) as int8 + scales, uploaded; returns a call for columns [n0, n1) into y */
  function setup(M: number, K: number, N: number, r: () => number) {
    const wts = makeWeights('q8', N, K, r, 0);
    const run = wts.upload();
    const x = uniform(M * K, r);
    const { inp } = uploadX('q8', x, M, K);
    const bias = uniform(N, r);
    return { run, inp, bo: put(bias) };
  }

  it('the same bits for any split of N among threads and any number of rows (M = 1 path, tiles, tails)', () => {
    const r = rng(19);
    for (const K of [32, 96, 768]) {
      for (const N of [1, 5, 67, 259]) {
        for (const M of [1, 2, 3, 4, 5, 8, 13]) {
          resetArena();
          const { run, inp, bo } = setup(M, K, N, r);
          const whole = allocBytes(M * N * 4);
          run(inp, bo, whole, M, 0, N);
          const want = f32At(whole, M * N).slice();
          // 3 random splits into 2-5 parts at arbitrary (often odd) points
          for (let t = 0; t < 3; t++) {
            const cuts = new Set([0, N]);
            const parts = 1 + Math.floor(r() * 4);
            for (let c = 0; c < parts; c++) cuts.add(Math.floor(r() * (N + 1)));
            const pts = [...cuts].sort((a, b) => a - b);
            const yo = allocBytes(M * N * 4);
            for (let c = 0; c + 1 < pts.length; c++) run(inp, bo, yo, M, pts[c], pts[c + 1]);
            assertBitEqual(f32At(yo, M * N), want, `K=${K} N=${N} M=${M} split at ${pts.join(',')}`);
          }
          // each row alone (M = 1) gives the bits it got in the batch
          for (let i = 0; i < M; i++) {
            const yo = allocBytes(N * 4);
            const row: XIn = { xo: 0, xq: inp.xq + i * K * 2, xs: inp.xs + (i * K) / 8 };
            run(row, bo, yo, 1, 0, N);
            assertBitEqual(f32At(yo, N), want.subarray(i * N, (i + 1) * N), `K=${K} N=${N} M=${M}: row ${i} alone`);
          }
        }
      }
    }
  });

  it('the largest block sums (|q| = 128, |xq| = 4095) are exact', () => {
    // every product ±128 · 4095 with one sign: the largest |S| a block can have (and the largest halves/lanes)
    resetArena();
    const M = 5, K = 256, N = 6, nb = K / 32;
    const x = new Float32Array(M * K);
    for (let i = 0; i < M; i++) for (let k = 0; k < K; k++) x[i * K + k] = (i % 2 ? -1 : 1) * (1 + (k >> 5)) * 0.5;
    const { inp, qx } = uploadX('q8', x, M, K);
    for (const v of qx!.q) assert.equal(Math.abs(v), 4095);
    const qs = new Int8Array(N * K), scales = new Float32Array(N * nb).fill(1 / 128);
    for (let j = 0; j < N; j++) for (let k = 0; k < K; k++) qs[j * K + k] = j % 3 === 0 ? -128 : j % 3 === 1 ? 127 : (k % 2 ? -128 : 127);
    const qo = put(qs), so = put(scales);
    const yo = allocBytes(M * N * 4);
    kernels.linear_q8(inp.xq, inp.xs, qo, so, 0, yo, M, K, N, 0, N);
    const w = new Float64Array(N * K);
    for (let i = 0; i < N * K; i++) w[i] = qs[i] / 128;
    const want = reference(qx!.deq, w, null, M, K, N), bound = q8RoundingBound(qx!.deq, w, null, M, K, N);
    const y = f32At(yo, M * N);
    for (let e = 0; e < M * N; e++) assert.ok(Math.abs(y[e] - want[e]) <= bound[e], `${e}: got ${y[e]}, want ${want[e]}`);
  });
});

describe('wasm linear_f32, M = 1: the decode kernel (gemvF32Seq) and the one before it (rows4)', () => {
  it('give the same bits for any slice of N, K a multiple of 16 or not, with and without bias; both match float64', () => {
    const r = rng(23);
    assert.equal(kernels.gemv_f32_mode(), 0, 'the default is gemvF32Seq (mode 0)');
    try {
      for (const K of [16, 48, 768, 1536, 40, 771]) {
        for (const N of [1, 4, 7, 64, 259]) {
          resetArena();
          const w = uniform(N * K, r), x = uniform(K, r), bias = uniform(N, r);
          const wo = put(w), xo = put(x), bo = put(bias);
          for (const b of [0, bo]) {
            const ys: Float32Array[] = [];
            for (const mode of [0, 1]) {
              kernels.set_gemv_f32_mode(mode, 0, 1);
              const yo = allocBytes(N * 4);
              // a split at an odd point too (threads split N aligned to 4; a kernel must give the same bits for any)
              const cut = Math.min(N, 1 + Math.floor(r() * N));
              kernels.linear_f32(xo, wo, b, yo, 1, K, N, 0, cut);
              kernels.linear_f32(xo, wo, b, yo, 1, K, N, cut, N);
              ys.push(f32At(yo, N).slice());
            }
            assertBitEqual(ys[0], ys[1], `K=${K} N=${N} bias=${b !== 0}: seq vs rows4`);
            const want = reference(x, Float64Array.from(w), b ? bias : null, 1, K, N);
            for (let j = 0; j < N; j++) {
              let mag = Math.abs(b ? bias[j] : 0);
              for (let k = 0; k < K; k++) mag += Math.abs(w[j * K + k] * x[k]);
              assert.ok(Math.abs(ys[0][j] - want[j]) <= 1e-6 * mag + 1e-30, `K=${K} N=${N} row ${j}: ${ys[0][j]} vs ${want[j]}`);
            }
          }
        }
      }
    } finally {
      kernels.set_gemv_f32_mode(0, 0, 1);
    }
  });

  it('M = 2 (batched decode, gemvF32Few): each row the same bits as that row alone (M = 1), any slice of N', () => {
    const r = rng(29);
    for (const K of [16, 48, 768]) {
      for (const N of [1, 5, 64, 131]) {
        for (const M of [2]) {
          resetArena();
          const w = uniform(N * K, r), x = uniform(M * K, r), bias = uniform(N, r);
          const wo = put(w), xo = put(x), bo = put(bias);
          for (const b of [0, bo]) {
            const yo = allocBytes(M * N * 4);
            const cut = Math.floor(r() * (N + 1));
            kernels.linear_f32(xo, wo, b, yo, M, K, N, 0, cut);
            kernels.linear_f32(xo, wo, b, yo, M, K, N, cut, N);
            const got = f32At(yo, M * N).slice();
            for (let i = 0; i < M; i++) {
              const y1 = allocBytes(N * 4);
              kernels.linear_f32(xo + i * K * 4, wo, b, y1, 1, K, N, 0, N);
              assertBitEqual(got.subarray(i * N, (i + 1) * N), f32At(y1, N), `K=${K} N=${N} M=${M} bias=${b !== 0}: row ${i} vs alone`);
            }
          }
        }
      }
    }
  });
});

describe('wasm linear_q8, M = 1: the decode kernels (lean, default since session 34; quarters; seq: one row at a time) and the one before them (rows4)', () => {
  it('give the same bits for any slice of N (quarters with and without leftover rows), K/32 = 1…49 blocks (seq\'s 8-, 4- and 1-block steps), with and without bias, as a row of a 5-row product', () => {
    const r = rng(31);
    assert.equal(kernels.gemv_q8_mode(), 3, 'the default is lean (mode 3)');
    try {
      for (const K of [32, 96, 128, 224, 256, 384, 512, 768, 1536, 1568, 2048]) {
        for (const N of [1, 3, 4, 9, 64, 131]) {
          resetArena();
          const nb = K / 32;
          const qs = new Int8Array(N * K), scales = new Float32Array(N * nb);
          for (let i = 0; i < N * K; i++) qs[i] = Math.floor(r() * 255) - 127;
          for (let i = 0; i < N * nb; i++) scales[i] = r() * 0.02;
          const M = 5;
          const x = uniform(M * K, r, 3), bias = uniform(N, r);
          const xo = put(x), xq = allocBytes(M * K * 2), xs = allocBytes(M * nb * 4);
          kernels.quantize_rows_q8(xo, xq, xs, M, K, 0, M);
          const qo = put(qs), so = put(scales), bo = put(bias);
          for (const b of [0, bo]) {
            const ys: Float32Array[] = [];
            for (const mode of [2, 0, 1, 3]) {
              kernels.set_gemv_q8_mode(mode, 0, 1);
              const yo = allocBytes(N * 4);
              const cut = Math.min(N, 1 + Math.floor(r() * N));
              kernels.linear_q8(xq, xs, qo, so, b, yo, 1, K, N, 0, cut);
              kernels.linear_q8(xq, xs, qo, so, b, yo, 1, K, N, cut, N);
              ys.push(f32At(yo, N).slice());
            }
            assertBitEqual(ys[0], ys[1], `K=${K} N=${N} bias=${b !== 0}: quarters vs seq`);
            assertBitEqual(ys[0], ys[2], `K=${K} N=${N} bias=${b !== 0}: quarters vs rows4`);
            assertBitEqual(ys[3], ys[0], `K=${K} N=${N} bias=${b !== 0}: lean vs quarters`);
            // row 0 of a 5-row product (the tiles of prefill-sized M) is the same bits too
            const y5 = allocBytes(M * N * 4);
            kernels.linear_q8(xq, xs, qo, so, b, y5, M, K, N, 0, N);
            assertBitEqual(ys[0], f32At(y5, N), `K=${K} N=${N} bias=${b !== 0}: quarters vs row 0 of M = ${M}`);
            // and it is the product of the quantized x within the rounding bound
            const qx = readQuantizedX(xq, xs, 1, K);
            const w = new Float64Array(N * K);
            for (let j = 0; j < N; j++) for (let k = 0; k < K; k++) w[j * K + k] = qs[j * K + k] * scales[j * nb + (k >> 5)];
            const want = reference(qx.deq, w, b ? bias : null, 1, K, N), bound = q8RoundingBound(qx.deq, w, b ? bias : null, 1, K, N);
            for (let j = 0; j < N; j++) assert.ok(Math.abs(ys[0][j] - want[j]) <= bound[j], `K=${K} N=${N} row ${j}: ${ys[0][j]} vs ${want[j]}`);
          }
        }
      }
    } finally {
      kernels.set_gemv_q8_mode(3, 0, 1);
    }
  });
});
