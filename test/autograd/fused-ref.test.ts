/**
 * The fused ops' forward values equal the inference reference kernels in float32 (≤ 1e-5 relative), the selective
 * scan's checkpointed backward does not depend on the chunk size, and the ops' bookkeeping (precision, noGrad,
 * shape errors).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/generate/rng.js';
import * as F from '../../src/autograd/fused.js';
import { backward, noGrad, param, type Var } from '../../src/autograd/var.js';
import { scanSequential } from '../../src/backend/cpu/selective_scan.js';
import * as kernels from '../../src/backend/cpu/kernels.js';
import { processDt, ssdChunked, ssdRecurrent } from '../../src/ssm/ssd.js';
import { s4dKernel as s4dKernelRef, onesB } from '../../src/ssm/s4.js';
import { causalConvDirect, fftInPlace } from '../../src/ssm/fft.js';
import { fft } from '../../src/autograd/fft-plan.js';

const rng = new Rng(5);
function rand32(n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.next();
  return a;
}
const p32 = (name: string, shape: number[], lo = -1, hi = 1): Var => param(name, rand32(shape.reduce((x, y) => x * y, 1), lo, hi), shape);

/** max |a − b| / max |b| */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / (den || 1);
}
function close(name: string, a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5): void {
  const e = relErr(a, b);
  assert.ok(e <= tol, `${name}: relative error ${e} > ${tol}`);
}

test('selectiveScan forward equals cpu scanSequential (float32, with and without D/z/bias)', () => {
  const [b, L, D, N] = [2, 37, 5, 6];
  for (const full of [true, false]) {
    const u = p32('u', [b, L, D]);
    const delta = p32('delta', [b, L, D], -2, 1);
    const A = p32('A', [D, N], -2, -0.1);
    const B = p32('B', [b, L, N]);
    const C = p32('C', [b, L, N]);
    const Dv = full ? p32('D', [D]) : null;
    const z = full ? p32('z', [b, L, D], -3, 3) : null;
    const bias = full ? p32('bias', [D], -0.5, 0.5) : null;
    const y = F.selectiveScan({ u, delta, A, B, C, D: Dv, z, deltaBias: bias, deltaSoftplus: true, chunkSize: 8 });
    assert.ok(y.data instanceof Float32Array);
    const ref = scanSequential({
      batch: b, seqLen: L, dim: D, dState: N,
      u: u.data as Float32Array, delta: delta.data as Float32Array, A: A.data as Float32Array, B: B.data as Float32Array, C: C.data as Float32Array,
      D: (Dv?.data as Float32Array) ?? null, z: (z?.data as Float32Array) ?? null, deltaBias: (bias?.data as Float32Array) ?? null,
      deltaSoftplus: true, state: null,
    });
    close(`selectiveScan (full=${full})`, y.data, ref);
  }
});

test('ssd forward equals src/ssm/ssd.ts (chunked and recurrent), G = 2, dt clamped', () => {
  const [b, L, nh, hd, G, N] = [2, 29, 4, 5, 2, 6];
  const x = p32('x', [b, L, nh, hd]);
  const dt = p32('dt', [b, L, nh], -4, 2);
  const A = p32('A', [nh], -2, -0.1);
  const B = p32('B', [b, L, G, N]);
  const C = p32('C', [b, L, G, N]);
  const D = p32('D', [nh]);
  const dtBias = p32('dtBias', [nh], -0.5, 0.5);
  const limit: [number, number] = [0.05, 1.5];
  const y = F.ssd({ x, dt, A, B, C, D, dtBias, dtLimit: limit, chunkSize: 8 });
  const arrays = {
    batch: b, seqLen: L, nHeads: nh, headDim: hd, nGroups: G, dState: N,
    x: x.data as Float32Array, dt: processDt(dt.data as Float32Array, dtBias.data as Float32Array, nh, limit), A: A.data as Float32Array,
    B: B.data as Float32Array, C: C.data as Float32Array, D: D.data as Float32Array, state: null,
  };
  close('ssd vs ssdChunked', y.data, ssdChunked(arrays, 8));
  close('ssd vs ssdRecurrent', y.data, ssdRecurrent(arrays));
  const y2 = F.ssd({ x, dt, A, B, C, D: null, dtBias: null, dtLimit: [0, Infinity], chunkSize: 64 });
  const arrays2 = { ...arrays, dt: processDt(dt.data as Float32Array, null, nh, [0, Infinity]), D: null };
  close('ssd (no D, no bias, one chunk) vs ssdRecurrent', y2.data, ssdRecurrent(arrays2));
});

test('causalConv1d forward equals the cpu kernel', () => {
  const [b, L, C, K] = [2, 11, 7, 4];
  const x = p32('x', [b, L, C]);
  const w = p32('w', [C, K]);
  const bias = p32('bias', [C]);
  const ref = kernels.causalConv1d(x.data as Float32Array, w.data as Float32Array, bias.data as Float32Array, null, false, b, L, C, K);
  close('causalConv1d', F.causalConv1d(x, w, bias).data, ref);
  const ref2 = kernels.causalConv1d(x.data as Float32Array, w.data as Float32Array, null, null, false, b, L, C, K);
  close('causalConv1d no bias', F.causalConv1d(x, w, null).data, ref2);
});

test('attention forward equals the cpu kernel (no cache, GQA)', () => {
  const [b, L, Hq, Hkv, hd] = [2, 9, 6, 3, 4];
  const q = p32('q', [b, L, Hq, hd], -2, 2);
  const k = p32('k', [b, L, Hkv, hd], -2, 2);
  const v = p32('v', [b, L, Hkv, hd]);
  const scale = 1 / Math.sqrt(hd);
  const ref = kernels.attention(q.data as Float32Array, k.data as Float32Array, v.data as Float32Array, null, null, [], b, L, Hq, Hkv, hd, L, scale);
  close('attention', F.attention(q, k, v, scale).data, ref);
});

test('rope forward equals the cpu kernel (float32 angle rounding, rotaryDim < hd)', () => {
  const [b, L, H, hd, rd] = [2, 5, 3, 8, 6];
  const x = p32('x', [b, L, H, hd]);
  const pos = Int32Array.from({ length: b * L }, (_, i) => (i * 977) % 4096);
  const ref = kernels.rope(x.data as Float32Array, pos, b * L, H, hd, rd, 10000);
  close('rope', F.rope(x, pos, rd, 10000).data, ref, 1e-6);
});

test('rmsNormGated forward equals the cpu kernel', () => {
  const [M, W, gs] = [5, 12, 4];
  const x = p32('x', [M, W]);
  const z = p32('z', [M, W], -3, 3);
  const w = p32('w', [W]);
  for (const g of [gs, W]) {
    const ref = kernels.rmsNormGated(x.data as Float32Array, z.data as Float32Array, w.data as Float32Array, 1e-5, M, W, g);
    close(`rmsNormGated group ${g}`, F.rmsNormGated(x, z, w, 1e-5, g).data, ref);
  }
});

test('s4dKernel equals src/ssm/s4.ts s4dKernel (zoh and bilinear)', () => {
  const [H, M, L] = [3, 5, 100];
  const logDt = p32('logDt', [H], Math.log(0.001), Math.log(0.1));
  const logAReal = p32('logAReal', [H, M], -1.5, 0.5);
  const AImag = p32('AImag', [H, M], 0, 10);
  const C = p32('C', [H, M, 2]);
  for (const disc of ['zoh', 'bilinear'] as const) {
    const K = F.s4dKernel(logDt, logAReal, AImag, C, L, disc);
    const ref = new Float64Array(H * L);
    for (let h = 0; h < H; h++) {
      const A = { re: new Float64Array(M), im: new Float64Array(M) };
      const Cc = { re: new Float64Array(M), im: new Float64Array(M) };
      for (let n = 0; n < M; n++) {
        A.re[n] = -Math.exp(logAReal.data[h * M + n]);
        A.im[n] = AImag.data[h * M + n];
        Cc.re[n] = C.data[(h * M + n) * 2];
        Cc.im[n] = C.data[(h * M + n) * 2 + 1];
      }
      ref.set(s4dKernelRef(A, onesB(M), Cc, Math.exp(logDt.data[h]), L, disc), h * L);
    }
    close(`s4dKernel ${disc}`, K.data, ref);
  }
});

test('fftConv equals the direct causal convolution (+ D·u)', () => {
  const [b, L, H] = [3, 50, 4];
  const u = p32('u', [b, L, H]);
  const K = p32('K', [H, L]);
  const D = p32('D', [H]);
  const y = F.fftConv(u, K, D);
  const ref = new Float64Array(b * L * H);
  for (let r = 0; r < b; r++) {
    for (let h = 0; h < H; h++) {
      const col = Array.from({ length: L }, (_, t) => u.data[(r * L + t) * H + h]);
      const yc = causalConvDirect(col, K.data.subarray(h * L, (h + 1) * L));
      for (let t = 0; t < L; t++) ref[(r * L + t) * H + h] = yc[t] + D.data[h] * col[t];
    }
  }
  close('fftConv', y.data, ref);
});

test('selectiveScan backward: small chunks give the same gradients as one chunk (checkpointing)', () => {
  const [b, L, D, N] = [2, 23, 4, 5];
  const mk = () => {
    const r = new Rng(99);
    const f = (shape: number[], lo = -1, hi = 1) => {
      const n = shape.reduce((x, y) => x * y, 1);
      const a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r.next();
      return param('', a, shape);
    };
    return {
      u: f([b, L, D]), delta: f([b, L, D], -2, 1), A: f([D, N], -2, -0.1), B: f([b, L, N]), C: f([b, L, N]),
      D: f([D]), z: f([b, L, D], -2, 2), deltaBias: f([D], -0.5, 0.5),
    };
  };
  const seed = new Rng(3);
  const gOut = Float64Array.from({ length: b * L * D }, () => seed.next() - 0.5);
  const run = (chunkSize: number) => {
    const v = mk();
    const y = F.selectiveScan({ ...v, deltaSoftplus: true, chunkSize });
    backward(y, gOut);
    return { y: y.data, grads: Object.entries(v).map(([k, p]) => [k, p.grad!] as const) };
  };
  const ref = run(L + 5);
  for (const cs of [1, 4, 7]) {
    const got = run(cs);
    close(`y chunk ${cs}`, got.y, ref.y, 1e-14);
    got.grads.forEach(([k, g], i) => close(`grad ${k} chunk ${cs}`, g, ref.grads[i][1], 1e-12));
  }
});

test('fused ops keep float32 in float32, record nothing under noGrad, and name op and shapes in errors', () => {
  const x = p32('x', [1, 4, 3]);
  const w = p32('w', [3, 2]);
  const y = F.causalConv1d(x, w, null);
  assert.ok(y.data instanceof Float32Array);
  assert.equal(y.requiresGrad, true);
  const y2 = noGrad(() => F.causalConv1d(x, w, null));
  assert.equal(y2.requiresGrad, false);
  assert.equal(y2.backwardFn, null);
  assert.throws(() => F.causalConv1d(x, p32('w', [2, 2]), null), /causal_conv1d: w \[2, 2\] must be \[3, K\]/);
  assert.throws(() => F.attention(p32('q', [1, 2, 3, 2]), p32('k', [1, 2, 2, 2]), p32('v', [1, 2, 2, 2]), 1), /attention: q heads 3/);
  assert.throws(() => F.ssd({ x: p32('x', [1, 2, 3, 2]), dt: p32('dt', [1, 2, 3]), A: p32('A', [3]), B: p32('B', [1, 2, 2, 2]), C: p32('C', [1, 2, 2, 2]), D: null, dtBias: null, dtLimit: [0, Infinity], chunkSize: 4 }), /ssd: nh 3/);
  assert.throws(() => F.selectiveScan({ u: x, delta: p32('d', [1, 4, 2]), A: p32('A', [3, 2]), B: p32('B', [1, 4, 2]), C: p32('C', [1, 4, 2]), D: null, z: null, deltaBias: null, deltaSoftplus: true }), /selective_scan: delta \[1, 4, 2\] must be \[1, 4, 3\]/);
  assert.throws(() => F.rope(p32('x', [1, 2, 1, 4]), Int32Array.from([0, 1]), 3, 10000), /rope: rotaryDim 3/);
  assert.throws(() => F.rmsNormGated(x, x, p32('w', [3]), 1e-5, 2), /rms_norm_gated: groupSize 2/);
  assert.throws(() => F.fftConv(x, p32('K', [2, 4]), null), /fft_conv: K \[2, 4\]/);
});

test('the planned FFT equals src/ssm/fft.ts fftInPlace (forward and inverse)', () => {
  for (const n of [1, 2, 8, 64, 1024]) {
    for (const inverse of [false, true]) {
      const re = Float64Array.from({ length: n }, () => rng.next() - 0.5);
      const im = Float64Array.from({ length: n }, () => rng.next() - 0.5);
      const r2 = re.slice();
      const i2 = im.slice();
      fft(re, im, inverse);
      fftInPlace(r2, i2, inverse);
      close(`fft re n=${n}`, re, r2, 1e-13);
      close(`fft im n=${n}`, im, i2, 1e-13);
    }
  }
});

/** gradients of Σ r·op(inputs) for every input, in the given precision */
function grads(make: (vs: Var[]) => Var, shapes: number[][], ranges: Array<[number, number]>, f32: boolean, seed = 17): Float64Array[] {
  const r = new Rng(seed);
  const vs = shapes.map((sh, i) => {
    const n = sh.reduce((a, b) => a * b, 1);
    const d = f32 ? new Float32Array(n) : new Float64Array(n);
    const [lo, hi] = ranges[i];
    for (let k = 0; k < n; k++) d[k] = lo + (hi - lo) * r.next();
    return param(`in${i}`, d, sh);
  });
  const y = make(vs);
  backward(y, Float64Array.from({ length: y.size }, () => r.next() - 0.5));
  return vs.map((v) => Float64Array.from(v.grad ?? []));
}

test('ssd backward does not depend on the chunk size', () => {
  const shapes = [[2, 13, 4, 5], [2, 13, 4], [4], [2, 13, 2, 3], [2, 13, 2, 3], [4], [4]];
  const ranges: Array<[number, number]> = [[-1, 1], [-3, 1.5], [-1.5, -0.2], [-1, 1], [-1, 1], [-1, 1], [-0.5, 0.5]];
  const run = (chunkSize: number) => grads(([x, dt, A, B, C, D, dtBias]) => F.ssd({ x, dt, A, B, C, D, dtBias, dtLimit: [0.1, 1.2], chunkSize }), shapes, ranges, false);
  const ref = run(64);
  for (const cs of [1, 3, 5]) run(cs).forEach((g, i) => close(`ssd grad ${i} chunk ${cs}`, g, ref[i], 1e-12));
});

test('float32 gradients agree with float64 ones (scan, ssd, conv, attention, s4d + fftConv)', () => {
  const cases: Array<[string, (vs: Var[]) => Var, number[][], Array<[number, number]>]> = [
    ['selectiveScan', ([u, delta, A, B, C, D, z, deltaBias]) => F.selectiveScan({ u, delta, A, B, C, D, z, deltaBias, deltaSoftplus: true, chunkSize: 8 }),
      [[2, 40, 6], [2, 40, 6], [6, 8], [2, 40, 8], [2, 40, 8], [6], [2, 40, 6], [6]],
      [[-1, 1], [-2, 1], [-2, -0.1], [-1, 1], [-1, 1], [-1, 1], [-2, 2], [-0.5, 0.5]]],
    ['ssd', ([x, dt, A, B, C, D, dtBias]) => F.ssd({ x, dt, A, B, C, D, dtBias, dtLimit: [0, Infinity], chunkSize: 8 }),
      [[2, 30, 4, 6], [2, 30, 4], [4], [2, 30, 2, 5], [2, 30, 2, 5], [4], [4]],
      [[-1, 1], [-3, 1], [-1.5, -0.2], [-1, 1], [-1, 1], [-1, 1], [-0.5, 0.5]]],
    ['causalConv1d', ([x, w, b]) => F.causalConv1d(x, w, b), [[2, 20, 5], [5, 4], [5]], [[-1, 1], [-1, 1], [-1, 1]]],
    ['attention', ([q, k, v]) => F.attention(q, k, v, 0.5), [[2, 12, 4, 4], [2, 12, 2, 4], [2, 12, 2, 4]], [[-2, 2], [-2, 2], [-1, 1]]],
    ['fftConv(s4dKernel)', ([u, a, b, c, d]) => F.fftConv(u, F.s4dKernel(a, b, c, d, 50, 'zoh'), null),
      [[2, 50, 3], [3], [3, 4], [3, 4], [3, 4, 2]], [[-1, 1], [Math.log(0.01), Math.log(0.2)], [-1, 0.5], [0, 5], [-1, 1]]],
  ];
  for (const [name, f, shapes, ranges] of cases) {
    const g64 = grads(f, shapes, ranges, false);
    const g32 = grads(f, shapes, ranges, true);
    g32.forEach((g, i) => close(`${name} input ${i}: float32 vs float64 gradient`, g, g64[i], 2e-4));
  }
});
