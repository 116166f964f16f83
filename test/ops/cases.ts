/**
 * The op layer's test cases, one table shared by every backend: each forward primitive (`OpName`) and each op the
 * autograd tape records (`DiffOp`) has cases here — random inputs of given shapes (odd sizes, absent optional
 * inputs, in-place states), run through the front-end ops of src/tensor/ops.ts. `conformance.test.ts` runs them on
 * every backend against the CPU reference, and their gradients against finite differences (and, for a backend
 * other than the CPU's, against the CPU's gradients). The tables are typed `Record<OpName | DiffOp, …>`: an op
 * added to the interface does not compile until it has cases.
 */
import type { Backend, DiffOp, OpName } from '../../src/backend/backend.js';
import * as ops from '../../src/tensor/ops.js';
import type { Tensor } from '../../src/tensor/tensor.js';

export interface InputSpec {
  shape: number[];
  /** values ~ U(lo, hi) (default −1, 1) */
  lo?: number;
  hi?: number;
  /** uploaded as a weight matrix (`fromHost(…, { matrix: true })`) */
  matrix?: boolean;
  /** not differentiated (indices-like inputs, recurrent states) */
  noGrad?: boolean;
}

export interface OpCase {
  label: string;
  inputs: InputSpec[];
  /** the op on tensors of one backend; every returned tensor is compared (states updated in place included) */
  run(xs: Tensor[], backend: Backend): Tensor[];
  /** max |Δ| allowed against the CPU backend (default 2e-5) */
  tol?: number;
  /** the prefill algorithm the case asks for: a backend whose `prefill` does not list it must refuse */
  algorithm?: { op: 'scan' | 'ssd'; name: string };
}

const ids = Int32Array.from([3, 0, 10, 4, 4]);
const positions = (b: number, L: number, past: number[] = [0, 0]): Int32Array => Int32Array.from({ length: b * L }, (_, i) => past[Math.floor(i / L)] + (i % L));
const act = (kind: Parameters<typeof ops.activation>[1]): OpCase => ({ label: kind, inputs: [{ shape: [3, 7], lo: -3, hi: 3 }], run: ([x]) => [ops.activation(x, kind)] });

/** Mamba-1 scan inputs [b, L, D], A [D, N] negative */
const scanInputs = (b: number, L: number, D: number, N: number): InputSpec[] => [
  { shape: [b, L, D] }, { shape: [b, L, D], lo: -2, hi: 1 }, { shape: [D, N], lo: -2, hi: -0.1 }, { shape: [b, L, N] }, { shape: [b, L, N] },
  { shape: [D] }, { shape: [b, L, D] }, { shape: [D], lo: -1, hi: 0.5 },
];
/** Mamba-2 SSD inputs: x [b, L, nh, hd], dt [b, L, nh], A [nh] negative, B/C [b, L, G, N], D [nh], dt bias [nh] */
const ssdInputs = (b: number, L: number, nh: number, hd: number, G: number, N: number): InputSpec[] => [
  { shape: [b, L, nh, hd] }, { shape: [b, L, nh], lo: -2, hi: 1 }, { shape: [nh], lo: -2, hi: -0.2 }, { shape: [b, L, G, N] }, { shape: [b, L, G, N] },
  { shape: [nh] }, { shape: [nh], lo: -1, hi: 0.5 },
];

/** forward cases of every backend primitive */
export const FORWARD: Record<OpName, OpCase[]> = {
  embedding: [{ label: 'rows of a [11, 6] table', inputs: [{ shape: [11, 6], matrix: true }], run: ([t]) => [ops.embedding(t, ids, [1, 5, 6])] }],
  linear: [
    { label: 'with bias, 3-d input', inputs: [{ shape: [2, 3, 7] }, { shape: [9, 7], matrix: true }, { shape: [9] }], run: ([x, w, b]) => [ops.linear(x, w, b)] },
    { label: 'without bias, one row', inputs: [{ shape: [1, 13] }, { shape: [5, 13], matrix: true }], run: ([x, w]) => [ops.linear(x, w)] },
  ],
  rms_norm: [
    { label: 'weighted', inputs: [{ shape: [4, 10] }, { shape: [10] }], run: ([x, w]) => [ops.rmsNorm(x, w, 1e-5)] },
    { label: 'no weight', inputs: [{ shape: [3, 6] }], run: ([x]) => [ops.rmsNorm(x, null, 1e-6)] },
  ],
  rms_norm_gated: [
    { label: 'full width', inputs: [{ shape: [3, 12] }, { shape: [3, 12] }, { shape: [12] }], run: ([x, z, w]) => [ops.rmsNormGated(x, z, w, 1e-5, 12)] },
    { label: 'groups of 4', inputs: [{ shape: [2, 2, 12] }, { shape: [2, 2, 12] }, { shape: [12] }], run: ([x, z, w]) => [ops.rmsNormGated(x, z, w, 1e-5, 4)] },
  ],
  add: [{ label: 'same shape', inputs: [{ shape: [3, 5] }, { shape: [3, 5] }], run: ([a, b]) => [ops.add(a, b)] }],
  scale: [{ label: '× −1.7', inputs: [{ shape: [3, 5] }], run: ([x]) => [ops.scale(x, -1.7)] }],
  activation: [act('silu'), act('relu'), act('relu2'), act('gelu_tanh'), act('neg_exp'), act('sigmoid')],
  silu_mul: [{ label: 'silu(a)·b', inputs: [{ shape: [4, 6], lo: -3, hi: 3 }, { shape: [4, 6] }], run: ([a, b]) => [ops.siluMul(a, b)] }],
  split: [{ label: '[4, 10] → 3 + 5 + 2', inputs: [{ shape: [2, 2, 10] }], run: ([x]) => ops.split(x, [3, 5, 2]) }],
  causal_conv1d: [
    { label: 'silu, bias', inputs: [{ shape: [2, 7, 5] }, { shape: [5, 4] }, { shape: [5] }], run: ([x, w, b]) => [ops.causalConv1d({ x, weight: w, bias: b, state: null, activation: 'silu' })] },
    { label: 'no activation, no bias', inputs: [{ shape: [1, 3, 6] }, { shape: [6, 3] }], run: ([x, w]) => [ops.causalConv1d({ x, weight: w, bias: null, state: null, activation: 'none' })] },
    {
      label: 'with a state (window read and updated)',
      inputs: [{ shape: [2, 3, 5] }, { shape: [5, 4] }, { shape: [5] }, { shape: [2, 5, 4], noGrad: true }],
      run: ([x, w, b, st]) => [ops.causalConv1d({ x, weight: w, bias: b, state: st, activation: 'silu' }), st],
    },
  ],
  selective_scan: [
    ...(['sequential', 'chunked'] as const).map((algorithm): OpCase => ({
      label: `${algorithm}, gate, skip and Δ bias`,
      algorithm: { op: 'scan', name: algorithm },
      inputs: scanInputs(2, 9, 6, 4),
      run: ([u, delta, A, B, C, D, z, bias]) => [ops.selectiveScan({ u, delta, A, B, C, D, z, deltaBias: bias, deltaSoftplus: true, state: null, algorithm, chunkSize: 4 })],
    })),
    {
      label: 'no gate, no skip, no bias',
      inputs: scanInputs(1, 5, 3, 2).slice(0, 5),
      run: ([u, delta, A, B, C]) => [ops.selectiveScan({ u, delta, A, B, C, D: null, z: null, deltaBias: null, deltaSoftplus: true, state: null, algorithm: 'sequential', chunkSize: 64 })],
    },
    {
      label: 'with a state',
      inputs: [...scanInputs(2, 4, 5, 3), { shape: [2, 5, 3], noGrad: true }],
      run: ([u, delta, A, B, C, D, z, bias, st]) => [ops.selectiveScan({ u, delta, A, B, C, D, z, deltaBias: bias, deltaSoftplus: true, state: st, algorithm: 'sequential', chunkSize: 64 }), st],
    },
  ],
  ssd: [
    ...(['chunked', 'quadratic', 'recurrent'] as const).map((algorithm): OpCase => ({
      label: `${algorithm}, 2 groups, chunk tail`,
      algorithm: { op: 'ssd', name: algorithm },
      inputs: ssdInputs(2, 10, 4, 3, 2, 5),
      run: ([x, dt, A, B, C, D, bias]) => [ops.ssd({ x, dt, A, B, C, D, dtBias: bias, dtLimit: [0, Infinity], state: null, algorithm, chunkSize: 4 })],
      tol: 5e-5,
    })),
    {
      label: 'clamped Δ, no skip',
      inputs: ssdInputs(1, 6, 2, 4, 1, 3).slice(0, 5),
      run: ([x, dt, A, B, C]) => [ops.ssd({ x, dt, A, B, C, D: null, dtBias: null, dtLimit: [0.1, 0.9], state: null, algorithm: 'chunked', chunkSize: 4 })],
    },
    {
      label: 'with a state',
      inputs: [...ssdInputs(2, 3, 4, 3, 2, 5), { shape: [2, 4, 3, 5], noGrad: true }],
      run: ([x, dt, A, B, C, D, bias, st]) => [ops.ssd({ x, dt, A, B, C, D, dtBias: bias, dtLimit: [0, Infinity], state: st, algorithm: 'chunked', chunkSize: 4 }), st],
      tol: 5e-5,
    },
  ],
  rope: [
    { label: 'full rotation', inputs: [{ shape: [2, 5, 3, 8] }], run: ([x]) => [ops.rope(x, positions(2, 5, [0, 7]), 8, 10000)] },
    { label: 'half the head (Bamba)', inputs: [{ shape: [1, 4, 2, 8] }], run: ([x]) => [ops.rope(x, positions(1, 4), 4, 500)] },
  ],
  attention: [
    {
      label: 'GQA (4 query heads on 2), no cache',
      inputs: [{ shape: [2, 5, 4, 6] }, { shape: [2, 5, 2, 6] }, { shape: [2, 5, 2, 6] }],
      run: ([q, k, v]) => [ops.attention({ q, k, v, cacheK: null, cacheV: null, pastLen: [0, 0], scale: 1 / Math.sqrt(6) })],
    },
    {
      label: 'with a KV cache at ragged lengths',
      inputs: [{ shape: [2, 2, 4, 6] }, { shape: [2, 2, 2, 6] }, { shape: [2, 2, 2, 6] }, { shape: [2, 8, 2, 6], noGrad: true }, { shape: [2, 8, 2, 6], noGrad: true }],
      run: ([q, k, v, ck, cv]) => [ops.attention({ q, k, v, cacheK: ck, cacheV: cv, pastLen: [1, 4], scale: 0.3 }), ck, cv],
    },
  ],
  concat_rows: [{ label: '[2, 3] + [1, 3]', inputs: [{ shape: [2, 3] }, { shape: [1, 3] }], run: ([a, b]) => [ops.concatRows([a, b])] }],
  take_rows: [{ label: 'rows 4, 0, 4 of [5, 3]', inputs: [{ shape: [5, 3] }], run: ([x]) => [ops.takeRows(x, [4, 0, 4])] }],
  scatter_add_rows: [
    {
      label: 'in place, a repeated row',
      inputs: [{ shape: [5, 3], noGrad: true }, { shape: [3, 3] }],
      run: ([dst, src]) => {
        ops.scatterAddRows(dst, Int32Array.from([1, 3, 1]), src, Float32Array.from([0.5, -1, 2]));
        return [dst];
      },
    },
  ],
  pad_time: [{ label: '[2, 3, 4] → 6 positions', inputs: [{ shape: [2, 3, 4] }], run: ([x]) => [ops.padTime(x, 6)] }],
};

/** gradient cases of every op the tape records (states and caches are inference-only: none here) */
export const GRADIENT: Record<DiffOp, OpCase[]> = {
  reshape: [{ label: '[2, 6] as [3, 4]', inputs: [{ shape: [2, 6] }], run: ([x]) => [ops.linear(ops.reshape(x, [3, 4]), x.backend.fromHost(Float32Array.from({ length: 8 }, (_, i) => i / 7 - 0.5), [2, 4]))] }],
  embedding: FORWARD.embedding,
  linear: [
    ...FORWARD.linear,
    // 2,100 rows: a device backend splits dW's long reduction (split-K partial products) and sums the bias gradient in levels
    // dX [1100, 1000]: enough 128×128 tiles for a device backend's large-tile matmul
    { label: 'x [1, 1100, 1000], w [130, 1000]: large tiles', inputs: [{ shape: [1, 1100, 1000] }, { shape: [130, 1000], matrix: true }], run: ([x, w]) => [ops.linear(x, w)], tol: 1e-4 },
    { label: 'x [3, 700, 40], w [70, 40], bias: long reductions', inputs: [{ shape: [3, 700, 40] }, { shape: [70, 40], matrix: true }, { shape: [70] }], run: ([x, w, b]) => [ops.linear(x, w, b)], tol: 5e-5 },
  ],
  rms_norm: [
    ...FORWARD.rms_norm,
    { label: '150 rows (several row blocks), width 300', inputs: [{ shape: [3, 50, 300] }, { shape: [300] }], run: ([x, w]) => [ops.rmsNorm(x, w, 1e-5)] },
  ],
  rms_norm_gated: [
    ...FORWARD.rms_norm_gated,
    {
      label: '130 rows, groups of 96',
      inputs: [{ shape: [130, 288] }, { shape: [130, 288], lo: -3, hi: 3 }, { shape: [288] }],
      run: ([x, z, w]) => [ops.rmsNormGated(x, z, w, 1e-5, 96)],
    },
  ],
  add: FORWARD.add,
  mul: [{ label: 'a·b', inputs: [{ shape: [3, 4] }, { shape: [3, 4] }], run: ([a, b]) => [ops.mul(a, b)] }],
  scale: FORWARD.scale,
  activation: FORWARD.activation.filter((c) => c.label !== 'relu' && c.label !== 'relu2'), // kinks: finite differences straddle them
  silu_mul: FORWARD.silu_mul,
  split: FORWARD.split,
  causal_conv1d: [
    ...FORWARD.causal_conv1d.slice(0, 2),
    // b·L = 2200 rows: the dw/dbias partials of a device backend take several levels of sums
    { label: 'silu, bias, 2 × 1100 steps', inputs: [{ shape: [2, 1100, 3] }, { shape: [3, 4] }, { shape: [3] }], run: ([x, w, b]) => [ops.causalConv1d({ x, weight: w, bias: b, state: null, activation: 'silu' })] },
    { label: 'K 10 > L, silu, no bias', inputs: [{ shape: [3, 7, 3] }, { shape: [3, 10] }], run: ([x, w]) => [ops.causalConv1d({ x, weight: w, bias: null, state: null, activation: 'silu' })] },
  ],
  selective_scan: [
    ...FORWARD.selective_scan.slice(0, 3),
    {
      label: 'batch 3, 13 chunks of 4 (the last one short)',
      inputs: scanInputs(3, 50, 5, 4),
      run: ([u, delta, A, B, C, D, z, bias]) => [ops.selectiveScan({ u, delta, A, B, C, D, z, deltaBias: bias, deltaSoftplus: true, state: null, algorithm: 'chunked', chunkSize: 4 })],
    },
    {
      label: 'chunks of 20 over 45 steps, 40 channels, 18 states, no skip, no gate',
      inputs: ((s) => [...s.slice(0, 5), s[7]])(scanInputs(2, 45, 40, 18)),
      run: ([u, delta, A, B, C, bias]) => [ops.selectiveScan({ u, delta, A, B, C, D: null, z: null, deltaBias: bias, deltaSoftplus: true, state: null, algorithm: 'chunked', chunkSize: 20 })],
      tol: 5e-5,
    },
    {
      label: 'no softplus, chunk longer than the sequence, gate without skip',
      inputs: [{ shape: [2, 7, 3] }, { shape: [2, 7, 3], lo: 0.05, hi: 1 }, { shape: [3, 5], lo: -2, hi: -0.1 }, { shape: [2, 7, 5] }, { shape: [2, 7, 5] }, { shape: [2, 7, 3] }],
      run: ([u, delta, A, B, C, z]) => [ops.selectiveScan({ u, delta, A, B, C, D: null, z, deltaBias: null, deltaSoftplus: false, state: null, algorithm: 'chunked', chunkSize: 64 })],
    },
  ],
  ssd: [
    FORWARD.ssd[0],
    FORWARD.ssd[3],
    {
      label: 'chunk 16: 3 chunks with a tail, batch 2, 3 groups',
      inputs: ssdInputs(2, 37, 6, 5, 3, 7),
      run: ([x, dt, A, B, C, D, bias]) => [ops.ssd({ x, dt, A, B, C, D, dtBias: bias, dtLimit: [0, Infinity], state: null, algorithm: 'chunked', chunkSize: 16 })],
    },
    {
      label: 'chunk 16: clamped Δ over 3 chunks, no skip, no Δ bias',
      inputs: ssdInputs(2, 40, 4, 3, 2, 5).slice(0, 5),
      run: ([x, dt, A, B, C]) => [ops.ssd({ x, dt, A, B, C, D: null, dtBias: null, dtLimit: [0.2, 0.9], state: null, algorithm: 'chunked', chunkSize: 16 })],
    },
    {
      label: 'chunk 32: head dim 70 and state 66 (past one tile), skip without Δ bias',
      inputs: ssdInputs(1, 45, 2, 70, 1, 66).slice(0, 6),
      run: ([x, dt, A, B, C, D]) => [ops.ssd({ x, dt, A, B, C, D, dtBias: null, dtLimit: [0, Infinity], state: null, algorithm: 'chunked', chunkSize: 32 })],
    },
    {
      label: 'chunk 64: 3 chunks, 4 heads on 2 groups, Δ bias without skip',
      inputs: [...ssdInputs(1, 150, 4, 8, 2, 16).slice(0, 5), { shape: [4], lo: -1, hi: 0.5 }],
      run: ([x, dt, A, B, C, bias]) => [ops.ssd({ x, dt, A, B, C, D: null, dtBias: bias, dtLimit: [0, Infinity], state: null, algorithm: 'chunked', chunkSize: 256 })],
    },
  ],
  rope: FORWARD.rope,
  attention: [
    ...FORWARD.attention.slice(0, 1),
    {
      label: 'two 64-row blocks, 3 query heads on 1',
      inputs: [{ shape: [1, 70, 3, 5] }, { shape: [1, 70, 1, 5] }, { shape: [1, 70, 1, 5] }],
      run: ([q, k, v]) => [ops.attention({ q, k, v, cacheK: null, cacheV: null, pastLen: [0], scale: 0.5 })],
    },
  ],
  take_rows: FORWARD.take_rows,
  mean_time: [{ label: '[2, 5, 3] → [2, 3]', inputs: [{ shape: [2, 5, 3] }], run: ([x]) => [ops.meanTime(x)] }],
  s4d_kernel: [
    {
      label: 'H 3, 2 modes, L 7',
      inputs: [{ shape: [3], lo: -4, hi: -2 }, { shape: [3, 2], lo: -1, hi: 0.5 }, { shape: [3, 2], lo: 0, hi: 3 }, { shape: [3, 2, 2] }],
      run: ([dt, ar, ai, c]) => [ops.s4dKernel(dt, ar, ai, c, 7)],
    },
    {
      label: 'H 2, 5 modes, L 70 (|dt·A| on both sides of 1, long powers)',
      inputs: [{ shape: [2], lo: -3, hi: -0.5 }, { shape: [2, 5], lo: -1, hi: 1 }, { shape: [2, 5], lo: 0, hi: 6 }, { shape: [2, 5, 2] }],
      run: ([dt, ar, ai, c]) => [ops.s4dKernel(dt, ar, ai, c, 70)],
    },
  ],
  fft_conv: [
    { label: 'u [2, 6, 3], K [3, 6], skip', inputs: [{ shape: [2, 6, 3] }, { shape: [3, 6] }, { shape: [3] }], run: ([u, k, d]) => [ops.fftConv(u, k, d)] },
    { label: 'u [5, 70, 17], K [17, 40] (shorter), skip', inputs: [{ shape: [5, 70, 17] }, { shape: [17, 40] }, { shape: [17] }], run: ([u, k, d]) => [ops.fftConv(u, k, d)] },
    { label: 'u [3, 9, 2], K [2, 13] (longer), no skip', inputs: [{ shape: [3, 9, 2] }, { shape: [2, 13] }], run: ([u, k]) => [ops.fftConv(u, k, null)] },
  ],
  cross_entropy: [
    {
      label: '4 rows of 5 classes, one ignored',
      inputs: [{ shape: [4, 5], lo: -2, hi: 2 }],
      run: ([l]) => [ops.softmaxCrossEntropy(l, Int32Array.from([2, -100, 0, 4])).loss],
    },
    {
      label: '[2, 3] rows of 300 classes (more than a workgroup), one ignored',
      inputs: [{ shape: [2, 3, 300], lo: -2, hi: 2 }],
      run: ([l]) => [ops.softmaxCrossEntropy(l, Int32Array.from([299, 0, -100, 150, 7, 256])).loss],
    },
  ],
  route_weights: [
    ...(['softmax-topk', 'topk-softmax'] as const).map((routing): OpCase => ({
      label: routing,
      inputs: [{ shape: [3, 4], lo: -2, hi: 2 }],
      run: ([l]) => [ops.routeWeights(l, Int32Array.from([0, 2, 3, 1, 2, 0]), 2, routing)],
    })),
    ...(['softmax-topk', 'topk-softmax'] as const).map((routing): OpCase => ({
      label: `${routing}, top-3 of 7, 3-d logits`,
      inputs: [{ shape: [2, 3, 7], lo: -2, hi: 2 }],
      run: ([l]) => [ops.routeWeights(l, Int32Array.from([6, 0, 3, 1, 2, 5, 4, 6, 0, 2, 3, 1, 5, 4, 6, 0, 1, 2]), 3, routing)],
    })),
    {
      label: 'softmax-topk, top-1',
      inputs: [{ shape: [4, 5], lo: -2, hi: 2 }],
      run: ([l]) => [ops.routeWeights(l, Int32Array.from([4, 0, 2, 2]), 1, 'softmax-topk')],
    },
  ],
  scatter_rows: [
    {
      label: 'expert rows combined into 4 tokens',
      inputs: [{ shape: [5, 3] }, { shape: [5], lo: 0, hi: 1 }],
      run: ([src, w]) => [ops.scatterRows(src, w, Int32Array.from([0, 2, 2, 3, 0]), 4)],
    },
    {
      label: 'wide rows (H 150), repeated and empty rows',
      inputs: [{ shape: [7, 150] }, { shape: [7, 1], lo: 0, hi: 1 }],
      run: ([src, w]) => [ops.scatterRows(src, w, Int32Array.from([5, 1, 5, 0, 5, 1, 3]), 6)],
    },
  ],
};
