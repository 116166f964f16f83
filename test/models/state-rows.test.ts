/**
 * ModelState.writeRow (a sequence put into one row of a running batch in place, the others untouched; KV caches grown (initial capacity 64) when the sequence is longer) and
 * ModelState.compact (KV caches cut to the positions in use), on a hybrid: SSM states and KV caches of different
 * lengths in one batch.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/api/load.js';
import { ModelState } from '../../src/models/state.js';
import { hfFixture, maxAbsDiff } from '../helpers.js';

describe('ModelState rows', () => {
  it('writeRow puts a sequence into a row in place; the batch then decodes each row as it would alone', async () => {
    const model = await loadModel(hfFixture('bamba-tiny'));
    const lm = model.lm;
    // a batch of two short sequences, and a longer one to put into row 0 (its KV cache outgrows the batch's)
    const a = model.createState(1);
    await lm.advance([[1, 2, 3]], a);
    const b = model.createState(1);
    await lm.advance([[4, 5]], b);
    const batch = ModelState.concat([a, b]);
    const long = model.createState(1);
    const longIds = Array.from({ length: 100 }, (_, i) => (i * 7 + 3) % 500);
    await lm.advance([longIds], long);
    const kvBefore = Object.values(batch.layers[1]).map((t) => t.shape[1]);
    assert.equal(await batch.writeRow(0, long), true);
    assert.deepEqual(batch.seqLen, [100, 2]);
    assert.ok(Object.values(batch.layers[1]).some((t, i) => t.shape[1] > kvBefore[i]), 'the KV caches grew');
    // one step on the batch = one step on each alone
    const step = await lm.advance([[9], [10]], batch);
    const l0 = await lm.advance([[9]], long);
    const l1 = await lm.advance([[10]], b);
    const V = lm.vocabSize;
    assert.ok(maxAbsDiff(step.data.subarray(0, V), l0.data) < 1e-5);
    assert.ok(maxAbsDiff(step.data.subarray(V), l1.data) < 1e-5);
    // a row holding a non-finite value is refused, nothing changed
    const bad = model.createState(2);
    const first = Object.keys(bad.layers[0])[0];
    const bt = bad.layers[0][first];
    const nan = new Float32Array(bt.size).fill(Number.NaN);
    bad.layers[0][first] = bt.backend.fromHost(nan, bt.shape);
    assert.equal(await bad.writeRow(1, a), false);
    assert.deepEqual(bad.seqLen, [0, 0]);
  });

  it('compact cuts KV caches to the positions in use and keeps the values', async () => {
    const model = await loadModel(hfFixture('jamba-tiny'));
    const s = model.createState(1);
    await model.lm.advance([[1, 2, 3, 4, 5]], s);
    const c = await s.compact();
    assert.deepEqual(c.seqLen, [5]);
    for (const [k, t] of Object.entries(c.layers.find((l) => Object.keys(l).some((k) => s.timeTensors.has(k)))!)) {
      if (s.timeTensors.has(k)) assert.equal(t.shape[1], 5, k);
    }
    const x = await model.lm.advance([[6]], s);
    const y = await model.lm.advance([[6]], c);
    assert.ok(maxAbsDiff(x.data, y.data) < 1e-6);
  });
});
