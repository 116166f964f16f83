/**
 * AdamW against a float64 hand computation, the no-decay rule, clipping, accumulation, state
 * export/import, and convergence on a quadratic.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AdamW,
  OptimizerError,
  accumulateGradients,
  accumulateGradientsAsync,
  clipGradNorm,
  defaultNoDecay,
  gradNorm,
  zeroGrad,
} from '../../src/train/optim.js';
import type { Param } from '../../src/train/param.js';

function mk(name: string, values: number[], f64 = false): Param {
  const data = f64 ? Float64Array.from(values) : Float32Array.from(values);
  return { name, data, grad: null, shape: [values.length] };
}

/** Textbook Adam(W) in float64: decoupled decay, bias-corrected moments. */
function reference(p0: number[], grads: number[][], o: { lr: number; b1: number; b2: number; eps: number; wd: number }): number[] {
  const p = p0.slice();
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  grads.forEach((g, k) => {
    const t = k + 1;
    for (let i = 0; i < p.length; i++) {
      p[i] = p[i] - o.lr * o.wd * p[i];
      m[i] = o.b1 * m[i] + (1 - o.b1) * g[i];
      v[i] = o.b2 * v[i] + (1 - o.b2) * g[i] * g[i];
      const mhat = m[i] / (1 - Math.pow(o.b1, t));
      const vhat = v[i] / (1 - Math.pow(o.b2, t));
      p[i] = p[i] - (o.lr * mhat) / (Math.sqrt(vhat) + o.eps);
    }
  });
  return p;
}

const HP = { lr: 0.01, b1: 0.9, b2: 0.95, eps: 1e-8, wd: 0.1 };
const P0 = [0.5, -1.25, 2.0, 0.0];
const G = [
  [0.1, -0.2, 0.3, 1e-3],
  [-0.4, 0.05, 0.3, -2.0],
];

function runTwo(name: string, f64: boolean): Param {
  const p = mk(name, P0, f64);
  const opt = new AdamW([p], { lr: HP.lr, betas: [HP.b1, HP.b2], eps: HP.eps, weightDecay: HP.wd });
  for (const g of G) {
    p.grad = f64 ? Float64Array.from(g) : Float32Array.from(g);
    opt.step();
  }
  assert.equal(opt.stepCount, 2);
  return p;
}

test('AdamW: two steps match the float64 hand computation (decayed parameter)', () => {
  const want = reference(P0, G, HP);
  const p64 = runTwo('backbone.layers.0.mixer.in_proj.weight', true);
  for (let i = 0; i < P0.length; i++) assert.ok(Math.abs(p64.data[i] - want[i]) < 1e-12, `f64 [${i}]: ${p64.data[i]} vs ${want[i]}`);
  const p32 = runTwo('backbone.layers.0.mixer.in_proj.weight', false);
  for (let i = 0; i < P0.length; i++) assert.ok(Math.abs(p32.data[i] - want[i]) < 2e-6, `f32 [${i}]: ${p32.data[i]} vs ${want[i]}`);
  // and the decay really acted: without it the result differs by far more than the tolerance
  const noWd = reference(P0, G, { ...HP, wd: 0 });
  assert.ok(Math.abs(noWd[2] - want[2]) > 1e-4);
});

test('AdamW: no-decay parameters (A_log, D, dt_proj.bias, norms) follow the wd = 0 reference', () => {
  const want = reference(P0, G, { ...HP, wd: 0 });
  for (const name of ['backbone.layers.3.mixer.A_log', 'backbone.layers.0.mixer.D', 'backbone.layers.0.mixer.dt_proj.bias', 'backbone.norm_f.weight', 'backbone.layers.1.norm.weight']) {
    const p = runTwo(name, true);
    for (let i = 0; i < P0.length; i++) assert.ok(Math.abs(p.data[i] - want[i]) < 1e-12, `${name} [${i}]: ${p.data[i]} vs ${want[i]}`);
  }
});

test('AdamW: with a zero gradient, decay alone scales by exactly (1 − lr·wd); no-decay parameters stay put', () => {
  const w = mk('backbone.layers.0.mixer.out_proj.weight', [1, -2, 3], true);
  const d = mk('backbone.layers.0.mixer.D', [1, -2, 3], true);
  const opt = new AdamW([w, d], { lr: 0.1, weightDecay: 0.5 });
  w.grad = new Float64Array(3);
  d.grad = new Float64Array(3);
  opt.step();
  assert.deepEqual([...w.data], [1, -2, 3].map((x) => x * (1 - 0.05)));
  assert.deepEqual([...d.data], [1, -2, 3]);
  assert.deepEqual(opt.groups(), { decay: ['backbone.layers.0.mixer.out_proj.weight'], noDecay: ['backbone.layers.0.mixer.D'] });
});

test('defaultNoDecay: the Mamba rule by name', () => {
  const no = [
    'backbone.layers.0.mixer.A_log',
    'backbone.layers.0.mixer.D',
    'backbone.layers.0.mixer.dt_proj.bias',
    'backbone.layers.0.mixer.dt_bias',
    'backbone.layers.0.mixer.conv1d.bias',
    'backbone.layers.0.norm.weight',
    'backbone.norm_f.weight',
    'backbone.layers.0.mixer.norm.weight',
    'model.layers.0.input_layernorm.weight',
    'model.layers.0.mamba.dt_layernorm.weight',
    'layers.0.kernel.log_dt',
  ];
  const yes = [
    'backbone.layers.0.mixer.in_proj.weight',
    'backbone.layers.0.mixer.x_proj.weight',
    'backbone.layers.0.mixer.dt_proj.weight',
    'backbone.layers.0.mixer.conv1d.weight',
    'backbone.layers.0.mixer.out_proj.weight',
    'lm_head.weight',
    'backbone.embeddings.weight',
  ];
  for (const n of no) assert.equal(defaultNoDecay(n), true, n);
  for (const n of yes) assert.equal(defaultNoDecay(n), false, n);
  assert.equal(defaultNoDecay('backbone.embeddings.weight', { embeddings: true }), true);
  assert.equal(defaultNoDecay('model.embed_tokens.weight', { embeddings: true }), true);
});

test('AdamW: parameters without a gradient are untouched; lrScale 0 freezes one', () => {
  const a = mk('a.weight', [1, 2]);
  const b = mk('b.weight', [3, 4]);
  const c = mk('c.weight', [5, 6]);
  const opt = new AdamW([a, b, c], { lr: 0.1, lrScale: (n) => (n === 'c.weight' ? 0 : 1) });
  a.grad = Float32Array.from([1, 1]);
  c.grad = Float32Array.from([1, 1]);
  opt.step();
  assert.deepEqual([...b.data], [3, 4]);
  assert.deepEqual([...c.data], [5, 6]);
  assert.ok(a.data[0] < 1 && a.data[1] < 2);
});

test('AdamW: bad options and duplicate names are rejected with named errors', () => {
  assert.throws(() => new AdamW([mk('x', [1])], { betas: [1, 0.9] }), /betas\[0\]/);
  assert.throws(() => new AdamW([mk('x', [1])], { lr: -1 }), /lr/);
  assert.throws(() => new AdamW([mk('x', [1]), mk('x', [2])]), /two different parameters are named "x"/);
  const p = mk('x', [1]);
  assert.doesNotThrow(() => new AdamW([p, p])); // a tied parameter listed twice
});

test('clipGradNorm: returns the pre-clip norm and scales to maxNorm', () => {
  const a = mk('a', [0, 0]);
  const b = mk('b', [0]);
  a.grad = Float32Array.from([3, 4]);
  b.grad = Float32Array.from([12]);
  assert.equal(gradNorm([a, b]), 13);
  const n = clipGradNorm([a, b], 1);
  assert.equal(n, 13);
  const s = 1 / (13 + 1e-6);
  assert.ok(Math.abs(a.grad[0] - 3 * s) < 1e-7 && Math.abs(a.grad[1] - 4 * s) < 1e-7 && Math.abs(b.grad[0] - 12 * s) < 1e-7);
  assert.ok(Math.abs(gradNorm([a, b]) - 1) < 1e-6);
  // below the threshold: unchanged
  a.grad = Float32Array.from([0.3, 0.4]);
  b.grad = null;
  assert.ok(Math.abs(clipGradNorm([a, b], 1) - 0.5) < 1e-7);
  assert.deepEqual([...a.grad], [Math.fround(0.3), Math.fround(0.4)]);
  // non-finite: reported, gradients untouched
  a.grad = Float32Array.from([NaN, 1]);
  assert.ok(Number.isNaN(clipGradNorm([a], 1)));
  assert.equal(a.grad[1], 1);
  assert.throws(() => clipGradNorm([a], 0), /maxNorm/);
});

test('accumulateGradients: averages over k micro-batches (backward adds into grad)', async () => {
  const p = mk('w', [0, 0]);
  p.grad = Float32Array.from([99, 99]); // stale: must be zeroed first
  const micro = [[1, 2], [3, 6], [5, 10]];
  const loss = accumulateGradients([p], 3, (i) => {
    p.grad ??= new Float32Array(2);
    for (let j = 0; j < 2; j++) p.grad[j] += micro[i][j];
    return i + 1;
  });
  assert.equal(loss, 2);
  assert.deepEqual([...p.grad!], [3, 6]);
  const loss2 = await accumulateGradientsAsync([p], 2, async (i) => {
    for (let j = 0; j < 2; j++) p.grad![j] += micro[i][j];
    return 4;
  });
  assert.equal(loss2, 4);
  assert.deepEqual([...p.grad!], [2, 4]);
  assert.throws(() => accumulateGradients([p], 0, () => 0), /k \(micro-batches\)/);
  zeroGrad([p], { setToNull: true });
  assert.equal(p.grad, null);
});

test('AdamW: exported state restores an identical trajectory; bad state gives named errors', () => {
  const grads = (t: number) => Float32Array.from([Math.sin(t), Math.cos(3 * t), 0.5 - t * 0.1]);
  const a = mk('layer.weight', [0.1, 0.2, 0.3]);
  const d = mk('layer.D', [1, 1, 1]);
  const optA = new AdamW([a, d], { lr: 0.05, weightDecay: 0.1 });
  for (let t = 0; t < 3; t++) {
    a.grad = grads(t);
    d.grad = grads(t + 10);
    optA.step();
  }
  const state = optA.exportState();
  assert.equal(state.step, 3);
  assert.deepEqual(Object.keys(state.tensors).sort(), ['layer.D.exp_avg', 'layer.D.exp_avg_sq', 'layer.weight.exp_avg', 'layer.weight.exp_avg_sq']);
  const a2 = mk('layer.weight', [...a.data]);
  const d2 = mk('layer.D', [...d.data]);
  const optB = new AdamW([a2, d2], { lr: 0.05, weightDecay: 0.1 });
  optB.importState(state);
  assert.equal(optB.stepCount, 3);
  for (let t = 3; t < 6; t++) {
    a.grad = grads(t);
    d.grad = grads(t + 10);
    a2.grad = grads(t);
    d2.grad = grads(t + 10);
    optA.step();
    optB.step();
  }
  assert.deepEqual([...a2.data], [...a.data]);
  assert.deepEqual([...d2.data], [...d.data]);

  const missing = { ...state, tensors: { ...state.tensors } };
  delete missing.tensors['layer.D.exp_avg_sq'];
  assert.throws(() => optB.importState(missing), (e: unknown) => e instanceof OptimizerError && /"layer\.D\.exp_avg_sq"/.test((e as Error).message));
  const wrongLen = { ...state, tensors: { ...state.tensors, 'layer.weight.exp_avg': { shape: [2], data: new Float32Array(2) } } };
  assert.throws(() => optB.importState(wrongLen), /"layer\.weight\.exp_avg" has 2 values, parameter "layer\.weight" has 3/);
  const extra = { ...state, tensors: { ...state.tensors, 'other.exp_avg': { shape: [1], data: new Float32Array(1) } } };
  assert.throws(() => optB.importState(extra), /"other\.exp_avg"/);
  assert.throws(() => optB.importState({ ...state, step: -1 }), /step/);
});

test('AdamW converges on an ill-conditioned quadratic', () => {
  // f(p) = Σ a_i (p_i − c_i)²
  const a = [1, 10, 100, 0.5];
  const c = [3, -2, 0.5, 1];
  const p = mk('q.weight', [0, 0, 0, 0]);
  const opt = new AdamW([p], { lr: 0.05, weightDecay: 0 });
  const f = () => a.reduce((s, ai, i) => s + ai * (p.data[i] - c[i]) ** 2, 0);
  const f0 = f();
  for (let t = 0; t < 1500; t++) {
    p.grad = Float32Array.from(a.map((ai, i) => 2 * ai * (p.data[i] - c[i])));
    opt.lr = t < 1000 ? 0.05 : 0.005;
    opt.step();
  }
  assert.ok(f() < 1e-4 * f0, `f ${f()} (from ${f0})`);
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(p.data[i] - c[i]) < 1e-2, `p[${i}] = ${p.data[i]}, want ${c[i]}`);
});
