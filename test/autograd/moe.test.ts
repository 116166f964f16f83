import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/generate/rng.js';
import { routeWeights, scatterRows } from '../../src/autograd/moe.js';
import { Var } from '../../src/autograd/var.js';
import { gradcheck, rand64 } from './gradcheck.js';

const rng = new Rng(5);
const M = 5, E = 4, k = 2, H = 3;
// two experts per row, distinct
const experts = Int32Array.from({ length: M * k }, (_, i) => (Math.floor(i / k) + (i % k) * 3) % E);

for (const routing of ['softmax-topk', 'topk-softmax']) {
  test(`gradcheck MoE routing weights (${routing})`, () => {
    const r = gradcheck(([l]) => routeWeights(l, experts, k, routing), [{ name: 'logits', shape: [M, E], data: rand64(rng, [M, E], -2, 2) }]);
    assert.ok(r.checked === M * E);
    assert.ok(r.worst <= 1, `${r.where} (worst ratio ${r.worst})`);
  });
}

test('MoE routing weights: softmax over all experts then picked, or over the picked ones', () => {
  const logits = Float64Array.from([0, 1, 2, 3]);
  const pick = Int32Array.from([3, 1]);
  const z = Math.exp(0) + Math.exp(1) + Math.exp(2) + Math.exp(3);
  const all = routeWeights(new Var(logits, [1, 4]), pick, 2, 'softmax-topk').data;
  assert.ok(Math.abs(all[0] - Math.exp(3) / z) < 1e-12 && Math.abs(all[1] - Math.exp(1) / z) < 1e-12);
  const top = routeWeights(new Var(logits, [1, 4]), pick, 2, 'topk-softmax').data;
  assert.ok(Math.abs(top[0] - Math.exp(3) / (Math.exp(3) + Math.exp(1))) < 1e-12 && Math.abs(top[0] + top[1] - 1) < 1e-12);
});

test('gradcheck MoE combine (weighted scatter-add of expert rows)', () => {
  const rows = Int32Array.from([0, 2, 2, 4, 1, 0]);
  const r = gradcheck(([s, w]) => scatterRows(s, w, rows, M), [
    { name: 'src', shape: [rows.length, H], data: rand64(rng, [rows.length, H]) },
    { name: 'weights', shape: [rows.length], data: rand64(rng, [rows.length], 0, 1) },
  ]);
  assert.ok(r.worst <= 1, `${r.where} (worst ratio ${r.worst})`);
});
