/**
 * Float64 finite-difference gradient checks of the fused ops (src/autograd/fused.ts), on small odd shapes, with
 * and without their optional inputs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/generate/rng.js';
import * as F from '../../src/autograd/fused.js';
import { gradcheck, rand64 } from './gradcheck.js';

const rng = new Rng(23);
type Input = { name: string; data: Float64Array; shape: number[] };
const inp = (name: string, shape: number[], lo = -1, hi = 1): Input => ({ name, shape, data: rand64(rng, shape, lo, hi) });

/** worst ratios, printed at the end (the report quotes them) */
const worst: Array<[string, number]> = [];

function check(name: string, f: Parameters<typeof gradcheck>[0], inputs: Input[], maxPerInput = 40): void {
  test(`gradcheck ${name}`, () => {
    const r = gradcheck(f, inputs, { maxPerInput });
    worst.push([name, r.worst]);
    assert.ok(r.checked > 0);
    assert.ok(r.worst <= 1, `${name}: ${r.where} (worst ratio ${r.worst})`);
  });
}

// ---- causal conv1d
check('causalConv1d with bias (K > L)', ([x, w, b]) => F.causalConv1d(x, w, b), [inp('x', [2, 3, 5]), inp('w', [5, 4]), inp('b', [5])]);
check('causalConv1d without bias', ([x, w]) => F.causalConv1d(x, w, null), [inp('x', [2, 7, 3]), inp('w', [3, 4])]);

// ---- selective scan (L = 7 not a multiple of chunkSize 3)
const b = 2, L = 7, Dm = 3, N = 4;
const scanInputs = (): Input[] => [
  inp('u', [b, L, Dm]),
  inp('delta', [b, L, Dm], -2, 1),
  inp('A', [Dm, N], -1.5, -0.2),
  inp('B', [b, L, N]),
  inp('C', [b, L, N]),
  inp('D', [Dm]),
  inp('z', [b, L, Dm], -2, 2),
  inp('deltaBias', [Dm], -0.5, 0.5),
];
check('selectiveScan full (D, z, deltaBias, softplus), chunk 3', ([u, delta, A, B, C, D, z, deltaBias]) =>
  F.selectiveScan({ u, delta, A, B, C, D, z, deltaBias, deltaSoftplus: true, chunkSize: 3 }), scanInputs());
check('selectiveScan bare (no D/z/bias, no softplus), chunk 2', ([u, delta, A, B, C]) =>
  F.selectiveScan({ u, delta, A, B, C, D: null, z: null, deltaBias: null, deltaSoftplus: false, chunkSize: 2 }),
  [inp('u', [b, L, Dm]), inp('delta', [b, L, Dm], 0.05, 1), inp('A', [Dm, N], -1.5, -0.2), inp('B', [b, L, N]), inp('C', [b, L, N])]);
check('selectiveScan D only, default chunk', ([u, delta, A, B, C, D]) =>
  F.selectiveScan({ u, delta, A, B, C, D, z: null, deltaBias: null, deltaSoftplus: true }), scanInputs().slice(0, 6));

// ---- SSD: nh = 4 heads, G = 2 groups (2 heads per group), hd = 3, N = 3, L = 7, chunk 3
const nh = 4, hd = 3, G = 2, Ns = 3;
const ssdInputs = (): Input[] => [
  inp('x', [b, L, nh, hd]),
  inp('dt', [b, L, nh], -3, 1.5),
  inp('A', [nh], -1.5, -0.2),
  inp('B', [b, L, G, Ns]),
  inp('C', [b, L, G, Ns]),
  inp('D', [nh]),
  inp('dtBias', [nh], -0.5, 0.5),
];
const clampedInputs = ssdInputs();
test('the clamped ssd gradcheck has Δ values below, inside and above the limits', () => {
  const [, dt, , , , , bias] = clampedInputs;
  const counts = [0, 0, 0];
  dt.data.forEach((v, i) => {
    const s = Math.log1p(Math.exp(v + bias.data[i % nh]));
    counts[s < 0.1 ? 0 : s > 1.2 ? 2 : 1]++;
  });
  assert.ok(counts.every((c) => c > 0), `below/inside/above: ${counts.join('/')}`);
});
check('ssd full (D, dtBias), dt clamped to [0.1, 1.2] (some values hit both limits), chunk 3', ([x, dt, A, B, C, D, dtBias]) =>
  F.ssd({ x, dt, A, B, C, D, dtBias, dtLimit: [0.1, 1.2], chunkSize: 3 }), clampedInputs);
check('ssd no D/bias, no clamp, chunk 2', ([x, dt, A, B, C]) =>
  F.ssd({ x, dt, A, B, C, D: null, dtBias: null, dtLimit: [0, Infinity], chunkSize: 2 }), ssdInputs().slice(0, 5));
check('ssd one chunk (chunkSize > L), G = 1', ([x, dt, A, B, C, D]) =>
  F.ssd({ x, dt, A, B, C, D, dtBias: null, dtLimit: [0, Infinity], chunkSize: 16 }),
  [inp('x', [1, 5, 2, 2]), inp('dt', [1, 5, 2], -2, 1), inp('A', [2], -1.5, -0.2), inp('B', [1, 5, 1, 3]), inp('C', [1, 5, 1, 3]), inp('D', [2])]);

check('ssd hd = 6 (two blocks of state rows, the second partial), G = 2, chunk 4', ([x, dt, A, B, C, D]) =>
  F.ssd({ x, dt, A, B, C, D, dtBias: null, dtLimit: [0, Infinity], chunkSize: 4 }),
  [inp('x', [1, 6, 4, 6]), inp('dt', [1, 6, 4], -2, 1), inp('A', [4], -1.5, -0.2), inp('B', [1, 6, 2, 2]), inp('C', [1, 6, 2, 2]), inp('D', [4])]);

// ---- gated RMSNorm
check('rmsNormGated, 2 groups', ([x, z, w]) => F.rmsNormGated(x, z, w, 1e-5, 3), [inp('x', [2, 3, 6]), inp('z', [2, 3, 6], -3, 3), inp('w', [6])]);
check('rmsNormGated, full width', ([x, z, w]) => F.rmsNormGated(x, z, w, 1e-5, 5), [inp('x', [4, 5]), inp('z', [4, 5], -3, 3), inp('w', [5])]);

// ---- attention: GQA Hq = 2·Hkv
check('attention GQA (Hq = 4, Hkv = 2)', ([q, k, v]) => F.attention(q, k, v, 1 / Math.sqrt(3)),
  [inp('q', [2, 5, 4, 3], -2, 2), inp('k', [2, 5, 2, 3], -2, 2), inp('v', [2, 5, 2, 3])]);
check('attention MHA', ([q, k, v]) => F.attention(q, k, v, 0.7), [inp('q', [1, 6, 2, 2], -2, 2), inp('k', [1, 6, 2, 2], -2, 2), inp('v', [1, 6, 2, 2])]);

// ---- rope, rotaryDim < hd
check('rope (rotaryDim 4 of 6)', ([x]) => F.rope(x, Int32Array.from([0, 1, 2, 7, 3, 4]), 4, 10000), [inp('x', [2, 3, 2, 6])]);

// ---- S4D kernel
const H = 3, M = 4, Lk = 9;
const s4Inputs = (): Input[] => [
  inp('logDt', [H], Math.log(0.01), Math.log(0.5)),
  inp('logAReal', [H, M], -1, 0.5),
  inp('AImag', [H, M], 0, 3),
  inp('C', [H, M, 2]),
];
check('s4dKernel zoh', ([a, bb, c, d]) => F.s4dKernel(a, bb, c, d, Lk, 'zoh'), s4Inputs());
check('s4dKernel bilinear', ([a, bb, c, d]) => F.s4dKernel(a, bb, c, d, Lk, 'bilinear'), s4Inputs());
check('s4dKernel zoh, long (re-anchored powers), small dt (series ψ′)', ([a, bb, c, d]) => F.s4dKernel(a, bb, c, d, 70, 'zoh'),
  [inp('logDt', [2], Math.log(0.001), Math.log(0.02)), inp('logAReal', [2, 3], -1, 0.5), inp('AImag', [2, 3], 0, 2), inp('C', [2, 3, 2])]);

// ---- FFT convolution
check('fftConv with D, odd batch', ([u, K, D]) => F.fftConv(u, K, D), [inp('u', [3, 7, 2]), inp('K', [2, 7]), inp('D', [2])]);
check('fftConv no D, short kernel', ([u, K]) => F.fftConv(u, K, null), [inp('u', [2, 6, 3]), inp('K', [3, 4])]);
check('fftConv kernel longer than L', ([u, K]) => F.fftConv(u, K, null), [inp('u', [2, 5, 1]), inp('K', [1, 8])]);

// ---- composition: S4D layer = fftConv(u, s4dKernel(...)) end to end
check('fftConv ∘ s4dKernel', ([u, a, bb, c, d, D]) => F.fftConv(u, F.s4dKernel(a, bb, c, d, 6, 'zoh'), D),
  [inp('u', [2, 6, 2]), inp('logDt', [2], Math.log(0.01), Math.log(0.5)), inp('logAReal', [2, 3], -1, 0.5), inp('AImag', [2, 3], 0, 3), inp('C', [2, 3, 2]), inp('D', [2])]);

test('gradcheck worst ratios (summary)', () => {
  for (const [n, w] of worst) console.log(`  ${w.toExponential(2)}  ${n}`);
});
