/**
 * The WebGPU training kernels of the MoE and S4D ops (route_weights, scatter_rows, s4d_kernel, fft_conv) against
 * the CPU's, on both kernel sets — 'tiled' (what a real GPU runs) and 'simple' (CPU-emulated adapters, what the
 * conformance test gets on SwiftShader) — comparing the forward outputs as well as the tape's gradients (the
 * conformance test compares gradients only), on the shared cases plus shapes that span several workgroup tiles
 * (times past 64 and lags past 128 in fft_conv, several batch groups, long kernels, wide rows) and inputs of which
 * only some are trainable.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, DiffOp } from '../../src/backend/backend.js';
import { cpu } from '../../src/backend/cpu/index.js';
import { backward, withGrad } from '../../src/autograd/tape.js';
import * as ops from '../../src/tensor/ops.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/generate/rng.js';
import { GRADIENT, type OpCase } from '../ops/cases.js';
import { webgpuOrReason } from './webgpu-context.js';

const tiled = await webgpuOrReason({ kernels: 'tiled' });
const simple = typeof tiled === 'string' ? tiled : await webgpuOrReason({ kernels: 'simple' });
after(() => {
  if (typeof tiled !== 'string') tiled.destroy();
  if (typeof simple !== 'string') simple.destroy();
});

const EXTRA: Array<[DiffOp, OpCase]> = [
  ['fft_conv', {
    label: 'u [6, 150, 20], K [20, 150]: several time, lag and channel tiles, batch groups',
    inputs: [{ shape: [6, 150, 20] }, { shape: [20, 150] }, { shape: [20] }],
    run: ([u, k, d]) => [ops.fftConv(u, k, d)],
  }],
  ['fft_conv', {
    label: 'u [1, 131, 3], K [3, 200] (longer than L), one batch group',
    inputs: [{ shape: [1, 131, 3] }, { shape: [3, 200] }, { shape: [3] }],
    run: ([u, k, d]) => [ops.fftConv(u, k, d)],
  }],
  ['fft_conv', {
    label: 'u [5, 100, 4], K [4, 3] (short), only K trainable',
    inputs: [{ shape: [5, 100, 4], noGrad: true }, { shape: [4, 3] }, { shape: [4], noGrad: true }],
    run: ([u, k, d]) => [ops.fftConv(u, k, d)],
  }],
  ['s4d_kernel', {
    label: 'H 3, 4 modes, L 300, C not trainable',
    inputs: [{ shape: [3], lo: -5, hi: -2 }, { shape: [3, 4], lo: -1, hi: 0.5 }, { shape: [3, 4], lo: 0, hi: 10 }, { shape: [3, 4, 2], noGrad: true }],
    run: ([dt, ar, ai, c]) => [ops.s4dKernel(dt, ar, ai, c, 300)],
  }],
  ['scatter_rows', {
    label: '40 rows of 70 into 13, only src trainable',
    inputs: [{ shape: [40, 70] }, { shape: [40], lo: 0, hi: 1, noGrad: true }],
    run: ([src, w]) => [ops.scatterRows(src, w, Int32Array.from({ length: 40 }, (_, i) => (i * 7) % 13), 13)],
  }],
  ['scatter_rows', {
    label: '9 rows of 300 into 4, only the weights trainable',
    inputs: [{ shape: [9, 300], noGrad: true }, { shape: [9], lo: 0, hi: 1 }],
    run: ([src, w]) => [ops.scatterRows(src, w, Int32Array.from([3, 3, 0, 1, 3, 0, 2, 2, 3]), 4)],
  }],
  ['route_weights', {
    label: 'softmax-topk, 300 rows, top-2 of 16',
    inputs: [{ shape: [300, 16], lo: -3, hi: 3 }],
    run: ([l]) => [ops.routeWeights(l, Int32Array.from({ length: 600 }, (_, i) => (i % 2 === 0 ? (i * 5) % 16 : (i * 5 + 3) % 16)), 2, 'softmax-topk')],
  }],
];

const OPS: DiffOp[] = ['route_weights', 'scatter_rows', 's4d_kernel', 'fft_conv'];
const CASES: Array<[DiffOp, OpCase]> = [...OPS.flatMap((op) => GRADIENT[op].map((c): [DiffOp, OpCase] => [op, c])), ...EXTRA];

function inputData(c: OpCase): Float32Array[] {
  let h = 2166136261;
  for (const ch of c.label) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  const rng = new Rng(h);
  return c.inputs.map((s) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const lo = s.lo ?? -1, hi = s.hi ?? 1;
    return Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.next());
  });
}

/** the outputs and the gradients of Σ seed·out with respect to every trainable input */
async function run(be: Backend, c: OpCase, data: Float32Array[], seeds: Float32Array[] | null): Promise<{ outs: Float32Array[]; grads: Array<Float32Array | null> }> {
  const xs: Tensor[] = c.inputs.map((s, i) => be.fromHost(data[i].slice(), s.shape));
  xs.forEach((x, i) => (x.requiresGrad = !c.inputs[i].noGrad));
  const outs = await withGrad(() => c.run(xs, be));
  const values = await Promise.all(outs.map((o) => o.data()));
  if (seeds) outs.forEach((o, k) => backward(o, seeds[k]));
  const grads = await Promise.all(xs.map((x, i) => (c.inputs[i].noGrad ? null : x.grad ? x.grad.data() : Promise.resolve(null))));
  return { outs: values, grads };
}

function relErr(got: Float32Array, want: Float32Array): number {
  assert.equal(got.length, want.length);
  const scale = Math.max(1e-6, ...Array.from(want, Math.abs));
  let worst = 0;
  for (let j = 0; j < got.length; j++) {
    const d = Math.abs(got[j] - want[j]) / scale;
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}

describe('webgpu training kernels of route_weights, scatter_rows, s4d_kernel, fft_conv = cpu', () => {
  for (const [which, be] of [['tiled', tiled], ['simple', simple]] as const) {
    for (const [op, c] of CASES) {
      it(`${op} (${c.label}), ${which} kernels: outputs and gradients`, async (t: TestContext) => {
        if (typeof be === 'string') return t.skip(be);
        const data = inputData(c);
        const rng = new Rng(7);
        const shapes = (await run(cpu, c, data, null)).outs.map((o) => o.length);
        const seeds = shapes.map((n) => Float32Array.from({ length: n }, () => rng.next() * 2 - 1));
        const want = await run(cpu, c, data, seeds);
        const got = await run(be, c, data, seeds);
        want.outs.forEach((w, k) => {
          const e = relErr(got.outs[k], w);
          assert.ok(e <= 1e-4, `output ${k} differs from the cpu's by ${e} (relative to its largest value)`);
        });
        want.grads.forEach((w, i) => {
          if (!w) return;
          const g = got.grads[i];
          assert.ok(g, `no gradient for input ${i}`);
          const e = relErr(g, w);
          assert.ok(e <= 1e-4, `gradient of input ${i} differs from the cpu's by ${e} (relative)`);
        });
      });
    }
  }
});
