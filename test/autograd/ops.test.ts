import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/generate/rng.js';
import * as ag from '../../src/autograd/ops.js';
import { backward, noGrad, param } from '../../src/autograd/var.js';
import { gradcheck, rand64 } from './gradcheck.js';

const rng = new Rng(11);
const inp = (name: string, shape: number[], lo = -1, hi = 1) => ({ name, shape, data: rand64(rng, shape, lo, hi) });

function check(name: string, f: Parameters<typeof gradcheck>[0], inputs: Parameters<typeof gradcheck>[1]) {
  test(`gradcheck ${name}`, () => {
    const r = gradcheck(f, inputs, { maxPerInput: 60 });
    assert.ok(r.checked > 0);
    assert.ok(r.worst <= 1, `${name}: ${r.where} (worst ratio ${r.worst})`);
  });
}

check('linear with bias', ([x, w, b]) => ag.linear(x, w, b), [inp('x', [2, 3, 5]), inp('w', [4, 5]), inp('b', [4])]);
check('linear without bias', ([x, w]) => ag.linear(x, w), [inp('x', [7, 3]), inp('w', [2, 3])]);
check('add broadcast', ([a, b]) => ag.add(a, b), [inp('a', [3, 4]), inp('b', [4])]);
check('add same shape', ([a, b]) => ag.add(a, b), [inp('a', [3, 4]), inp('b', [3, 4])]);
check('mul', ([a, b]) => ag.mul(a, b), [inp('a', [5]), inp('b', [5])]);
check('scale', ([a]) => ag.scale(a, -2.5), [inp('a', [5])]);
check('silu', ([a]) => ag.silu(a), [inp('a', [9], -4, 4)]);
check('sigmoid', ([a]) => ag.sigmoid(a), [inp('a', [9], -4, 4)]);
check('softplus', ([a]) => ag.softplus(a), [inp('a', [9], -4, 4)]);
check('exp', ([a]) => ag.exp(a), [inp('a', [9])]);
check('negExp', ([a]) => ag.negExp(a), [inp('a', [9])]);
check('gelu', ([a]) => ag.gelu(a), [inp('a', [9], -3, 3)]);
check('rmsNorm', ([x, w]) => ag.rmsNorm(x, w, 1e-5), [inp('x', [3, 6]), inp('w', [6])]);
check('rmsNorm no weight', ([x]) => ag.rmsNorm(x, null, 1e-5), [inp('x', [3, 6])]);
check('split + concat', ([x]) => {
  const [a, b, c] = ag.split(x, [2, 3, 1]);
  return ag.concatLast([ag.scale(c, 3), a, ag.mul(b, b)]);
}, [inp('x', [4, 6])]);
check('takeRows (repeated rows)', ([x]) => ag.takeRows(x, [2, 0, 2]), [inp('x', [3, 2, 2])]);
check('meanTime', ([x]) => ag.meanTime(x), [inp('x', [2, 3, 4])]);
check('sum', ([x]) => ag.sum(ag.mul(x, x)), [inp('x', [5])]);
check('embedding (repeated ids)', ([t]) => ag.embedding(t, Int32Array.from([1, 3, 1, 0]), [2, 2, 3]), [inp('t', [4, 3])]);
check('softmaxCrossEntropy with ignored rows', ([l]) => ag.softmaxCrossEntropy(l, Int32Array.from([2, -100, 0, 4])).loss, [inp('l', [4, 5], -3, 3)]);

test('cross-entropy value, count and accuracy', () => {
  const l = param('l', Float64Array.from([0, 0, 10, 5, 0, 0]), [2, 3]);
  const r = ag.softmaxCrossEntropy(l, Int32Array.from([2, 1]));
  const nll0 = -(10 - Math.log(2 + Math.exp(10)));
  const nll1 = -(0 - Math.log(Math.exp(5) + 2));
  assert.ok(Math.abs(r.loss.item() - (nll0 + nll1) / 2) < 1e-12);
  assert.equal(r.count, 2);
  assert.equal(r.correct, 1);
});

test('gradients accumulate across uses and backward releases intermediates', () => {
  const x = param('x', Float64Array.from([1, 2]), [2]);
  const y = ag.mul(x, x); // x² twice through the graph
  const z = ag.sum(ag.add(y, y));
  backward(z);
  assert.deepEqual(Array.from(x.grad!), [4, 8]);
  assert.equal(y.grad, null);
});

test('noGrad records no graph; backward on a constant loss is a clear error', () => {
  const x = param('x', Float64Array.from([1, 2]), [2]);
  const y = noGrad(() => ag.sum(x));
  assert.equal(y.requiresGrad, false);
  assert.throws(() => backward(y), /does not depend on any parameter/);
});

test('shape errors name the op and shapes', () => {
  const a = param('a', new Float64Array(6), [2, 3]);
  assert.throws(() => ag.linear(a, param('w', new Float64Array(8), [2, 4])), /linear: input \[2, 3\].*\[2, 4\]/);
  assert.throws(() => ag.add(a, param('b', new Float64Array(2), [2])), /add: shapes \[2, 3\] and \[2\]/);
  assert.throws(() => ag.softmaxCrossEntropy(a, Int32Array.from([0, 5])), /target 5 at row 1/);
});

test('float32 stays float32', () => {
  const x = param('x', Float32Array.from([1, -1]), [2]);
  assert.ok(ag.silu(x).data instanceof Float32Array);
});

test('float32 linear (WebAssembly GEMM path) equals the float64 reference, forward and backward', () => {
  const [M, K, N] = [37, 50, 29]; // odd sizes, above the wasm threshold
  const x64 = rand64(rng, [M, K]);
  const w64 = rand64(rng, [N, K]);
  const b64 = rand64(rng, [N]);
  const g = rand64(rng, [M * N]);
  const run = (mk: (a: Float64Array) => Float32Array | Float64Array) => {
    const x = param('x', mk(x64), [M, K]);
    const w = param('w', mk(w64), [N, K]);
    const b = param('b', mk(b64), [N]);
    const y = ag.linear(x, w, b);
    backward(y, g);
    return { y: y.data, gx: x.grad!, gw: w.grad!, gb: b.grad! };
  };
  const a = run((v) => Float32Array.from(v));
  const r = run((v) => Float64Array.from(v));
  for (const k of ['y', 'gx', 'gw', 'gb'] as const) {
    let worst = 0;
    for (let i = 0; i < r[k].length; i++) worst = Math.max(worst, Math.abs(a[k][i] - r[k][i]) / (1 + Math.abs(r[k][i])));
    assert.ok(worst < 1e-5, `${k}: relative error ${worst}`);
  }
});
