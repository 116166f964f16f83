/**
 * The WebAssembly linear kernels (src/backend/wasm/assembly/linear.ts, built into dist/wasm/kernels.wasm) against a
 * float64 JS reference of the same (dequantized) weights: y[:, n0:n1] = x · Wᵀ (+ bias) for f32, bf16, f16 and q8
 * weights on odd shapes and slices (empty, single-column, unaligned); columns outside the slice stay untouched;
 * f16 → f32 conversion is exact for every finite half (subnormals and signed zeros included) in every code path;
 * quantize_q8 round-trips within half a step.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// ---- the module, on our own shared memory

interface Kernels {
  linear_f32(x: number, w: number, bias: number, y: number, M: number, K: number, N: number, n0: number, n1: number): void;
  linear_bf16(x: number, w: number, bias: number, y: number, M: number, K: number, N: number, n0: number, n1: number): void;
  linear_f16(x: number, w: number, bias: number, y: number, M: number, K: number, N: number, n0: number, n1: number): void;
  linear_q8(
    x: number, qs: number, scales: number, bias: number, y: number, M: number, K: number, N: number, n0: number, n1: number,
  ): void;
  quantize_q8(w: number, qs: number, scales: number, N: number, K: number, n0: number, n1: number): void;
}

const memory = new WebAssembly.Memory({ initial: 64, maximum: 65536, shared: true });
const wasmPath = fileURLToPath(new URL('../../wasm/kernels.wasm', import.meta.url));
const wasmModule = new WebAssembly.Module(readFileSync(wasmPath));
const kernels = new WebAssembly.Instance(wasmModule, { env: { memory, abort() {} } }).exports as unknown as Kernels;

const BASE = 65536; // arrays live above the first 64 KiB
let top = BASE;

/** forget every array */
function resetArena(): void {
  top = BASE;
}

/** room for `bytes` at a 16-byte aligned offset (contents undefined) */
function allocBytes(bytes: number): number {
  const off = top;
  top += Math.ceil(bytes / 16) * 16 + 16;
  const need = Math.ceil(top / 65536);
  const have = memory.buffer.byteLength / 65536;
  if (need > have) memory.grow(need - have);
  return off;
}

const f32At = (off: number, n: number): Float32Array => new Float32Array(memory.buffer, off, n);
const i8At = (off: number, n: number): Int8Array => new Int8Array(memory.buffer, off, n);

/** copies an array into fresh wasm memory; returns its offset */
function put(a: Float32Array | Uint16Array | Int8Array): number {
  const off = allocBytes(a.byteLength);
  new Uint8Array(memory.buffer, off, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return off;
}

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

interface Weights {
  /** dequantized W [N, K] as float64 */
  ref: Float64Array;
  /** uploads W and returns a call computing columns [n0, n1) */
  upload(): (x: number, bias: number, y: number, M: number, n0: number, n1: number) => void;
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
        return (x, b, y, M, n0, n1) => kernels.linear_f32(x, wo, b, y, M, K, N, n0, n1);
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
        return (x, b, y, M, n0, n1) => f(x, wo, b, y, M, K, N, n0, n1);
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
      return (x, b, y, M, n0, n1) => kernels.linear_q8(x, qo, so, b, y, M, K, N, n0, n1);
    },
  };
}

/** float64 y = x · Wᵀ (+ bias) */
function reference(x: Float32Array, w: Float64Array, bias: Float32Array | null, M: number, K: number, N: number): Float64Array {
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

/** runs columns [n0, n1) and checks them against the reference, and that every other column is untouched */
function checkSlice(
  label: string, run: ReturnType<Weights['upload']>, xo: number, bo: number, want: Float64Array,
  M: number, N: number, n0: number, n1: number,
): void {
  const yo = allocBytes(M * N * 4);
  f32At(yo, M * N).fill(SENTINEL);
  run(xo, bo, yo, M, n0, n1);
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
      const err = Math.abs(got - ref) / (1 + Math.abs(ref));
      if (!(err <= worst)) {
        worst = Number.isNaN(err) ? Infinity : err;
        where = `row ${i} col ${j}: got ${got}, want ${ref}`;
      }
    }
  }
  assert.ok(worst <= 1e-4, `${label} [${n0},${n1}): max |Δ|/(1+|ref|) = ${worst} at ${where}`);
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
        const xo = put(x);
        const wantNo = reference(x, wts.ref, null, M, K, N);
        const wantB = reference(x, wts.ref, bias, M, K, N);
        let b = 0;
        for (const [n0, n1] of slices(N, r)) {
          const withBias = (b++ + M) % 2 === 0;
          checkSlice(`${fmt} M=${M} K=${K} N=${N}${withBias ? ' +bias' : ''}`, run, xo, withBias ? bo : 0,
            withBias ? wantB : wantNo, M, N, n0, n1);
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
      const xo = put(x), bo = put(bias);
      const want = reference(x, wts.ref, bias, M, K, N);
      for (const [n0, n1] of [[0, N], [3, 17], [5, 6]] as Array<[number, number]>) {
        checkSlice(`${fmt} M=${M} K=${K} N=${N}`, run, xo, bo, want, M, N, n0, n1);
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
      const xo = put(x), yo = allocBytes(M * N * 4);
      kernels.quantize_q8(wo, qo, so, N, K, 0, N);
      kernels.linear_q8(xo, qo, so, 0, yo, M, K, N, 0, N);
      const deq = new Float64Array(N * K);
      for (let i = 0; i < N * K; i++) deq[i] = q[i] * s[Math.floor(i / 32)];
      const want = reference(x, deq, null, M, K, N);
      const y = f32At(yo, M * N);
      for (let i = 0; i < M * N; i++) assert.ok(Math.abs(y[i] - want[i]) <= 1e-4 * (1 + Math.abs(want[i])), `linear_q8 ${i}`);
    }
  });
});
