/**
 * WebGPU training of attention, rope and cross-entropy against the CPU's tape, with both kernel sets ('tiled':
 * the flash-style kernels GPUs run; 'simple': the barrier-free ones of CPU-emulated adapters) on shapes the shared
 * conformance cases do not reach: several 64-row query/key blocks with ragged tails, query-head groups, head dims
 * that are not a multiple of the 16-channel slices, 64 (V staged 16 rows at a time), one above the tiled kernels'
 * limit (the barrier-free kernels run instead); rope on part of the head at
 * offset positions; cross-entropy over more classes than a workgroup has threads, argmax ties, all rows ignored.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../../src/backend/backend.js';
import { cpu } from '../../src/backend/cpu/index.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { backward, withGrad } from '../../src/autograd/tape.js';
import * as ops from '../../src/tensor/ops.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { randomArray } from '../helpers.js';
import { webgpuOrReason } from './webgpu-context.js';

const tiled = await webgpuOrReason({ kernels: 'tiled' });
const simple = typeof tiled === 'string' ? tiled : await webgpuOrReason({ kernels: 'simple' });
after(() => {
  if (typeof tiled !== 'string') tiled.destroy();
  if (typeof simple !== 'string') simple.destroy();
});

interface Case {
  label: string;
  shapes: number[][];
  /** the op; the outputs the objective Σ seed·out is taken over */
  run(xs: Tensor[]): Tensor[];
  /** extra values to compare (not differentiated) */
  extra?(xs: Tensor[]): Promise<number[]>;
  data?: (i: number, n: number) => Float32Array;
}

/** outputs and the gradients of Σ seed·out, on one backend */
async function grads(be: Backend, c: Case, data: Float32Array[], seeds: Float32Array[]): Promise<{ outs: Float32Array[]; grads: Float32Array[] }> {
  const xs = c.shapes.map((s, i) => be.fromHost(data[i].slice(), s));
  xs.forEach((x) => (x.requiresGrad = true));
  const outs = withGrad(() => c.run(xs));
  const values = await Promise.all(outs.map((o) => o.data()));
  outs.forEach((o, k) => backward(o, seeds[k]));
  return { outs: values, grads: await Promise.all(xs.map((x) => (x.grad ? x.grad.data() : Promise.resolve(new Float32Array(x.size))))) };
}

function close(got: Float32Array, want: Float32Array, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: size`);
  const scale = Math.max(1e-6, ...Array.from(want, Math.abs));
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / scale);
  assert.ok(worst <= tol, `${what}: max |Δ| / max |ref| = ${worst} > ${tol}`);
}

function check(c: Case): void {
  for (const [name, be] of [['tiled', tiled], ['simple', simple]] as const) {
    it(`${c.label} (${name} kernels)`, async (t: TestContext) => {
      if (typeof be === 'string') return t.skip(be);
      const data = c.shapes.map((s, i) => {
        const n = s.reduce((a, b) => a * b, 1);
        return c.data ? c.data(i, n) : randomArray(n, 1000 + 17 * i + c.label.length, 1);
      });
      const outSizes = c.run(c.shapes.map((s, i) => cpu.fromHost(data[i].slice(), s))).map((o) => o.size);
      const seeds = outSizes.map((n, k) => randomArray(n, 77 + k, 1));
      const want = await grads(cpu, c, data, seeds);
      const got = await grads(be as WebGpuBackend, c, data, seeds);
      got.outs.forEach((o, k) => close(o, want.outs[k], 2e-5, `output ${k}`));
      got.grads.forEach((g, i) => close(g, want.grads[i], 1e-4, `gradient of input ${i}`));
      if (c.extra) {
        const e = await c.extra(c.shapes.map((s, i) => (be as WebGpuBackend).fromHost(data[i].slice(), s)));
        assert.deepEqual(e, await c.extra(c.shapes.map((s, i) => cpu.fromHost(data[i].slice(), s))));
      }
    });
  }
}

const attention = (b: number, L: number, Hq: number, Hkv: number, hd: number, scale = 1 / Math.sqrt(hd)): Case => ({
  label: `attention b ${b}, L ${L}, ${Hq} query heads on ${Hkv}, head dim ${hd}`,
  shapes: [[b, L, Hq, hd], [b, L, Hkv, hd], [b, L, Hkv, hd]],
  run: ([q, k, v]) => [ops.attention({ q, k, v, cacheK: null, cacheV: null, pastLen: new Array<number>(b).fill(0), scale })],
});

const positions = (b: number, L: number, past: number[]): Int32Array => Int32Array.from({ length: b * L }, (_, i) => past[Math.floor(i / L)] + (i % L));

/** logits with ties for the max: row r's classes r % 3 and V − 1 − (r % 5) share the row's largest value */
function tiedLogits(M: number, V: number): (i: number, n: number) => Float32Array {
  return () => {
    const x = randomArray(M * V, 4242, 2);
    for (let r = 0; r < M; r++) {
      x[r * V + (r % 3)] = 5;
      x[r * V + V - 1 - (r % 5)] = 5;
    }
    return x;
  };
}

const crossEntropy = (label: string, shape: number[], targets: number[], data?: Case['data']): Case => ({
  label,
  shapes: [shape],
  data,
  run: ([l]) => [ops.softmaxCrossEntropy(l, Int32Array.from(targets)).loss],
  extra: async ([l]) => {
    const r = ops.softmaxCrossEntropy(l, Int32Array.from(targets));
    const correct = r.correctTensor ? (await r.correctTensor.data())[0] : r.correct;
    return [r.count, correct, (await r.loss.data())[0] === 0 ? 0 : 1];
  },
});

describe('webgpu training: attention, rope, cross-entropy = the cpu tape', () => {
  check(attention(2, 5, 4, 2, 6));
  check(attention(1, 70, 3, 1, 8));
  check(attention(2, 130, 4, 2, 40, 0.2));
  check(attention(1, 65, 2, 2, 64));
  check(attention(1, 9, 2, 1, 520));
  check({
    label: 'rope on 6 of 10 channels, offset positions',
    shapes: [[2, 70, 3, 10]],
    run: ([x]) => [ops.rope(x, positions(2, 70, [3, 1000]), 6, 10000)],
  });
  check(crossEntropy('cross-entropy, 7 rows of 300 classes, argmax ties', [7, 300], [0, 298, 2, 3, -100, 296, 1], tiedLogits(7, 300)));
  check(crossEntropy('cross-entropy, [2, 5, 1000], ignored rows', [2, 5, 1000], [5, -100, 999, 0, -100, -100, 17, 500, 3, 3]));
  check(crossEntropy('cross-entropy, every row ignored', [3, 40], [-100, -100, -100]));
});
