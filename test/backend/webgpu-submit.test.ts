/**
 * `submitEvery` (RuntimeOptions): a long recording is submitted in pieces while it is recorded. The pieces must give
 * the same numbers as one submit (every kernel's inputs recorded before a piece's submit stay valid after it), and
 * recorded decode steps are still one submit each.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/index.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { hfFixture, maxAbsDiff } from '../helpers.js';
import { webgpuOrReason } from './webgpu-context.js';
import { WebGpuBackend } from '../../src/backend/webgpu/backend.js';
import { nullGpuDevice } from '../../bench/null-gpu.js';

const one = await webgpuOrReason({ submitEvery: 0 });
const pieces = typeof one === 'string' ? one : await webgpuOrReason({ submitEvery: 3 });
after(() => {
  for (const g of [one, pieces]) if (typeof g !== 'string') g.destroy();
});

describe('webgpu: submitting a recording in pieces', () => {
  it('gives the logits and greedy tokens of one submit (mamba2, bamba, llama)', async (t) => {
    if (typeof one === 'string') return t.skip(one);
    if (typeof pieces === 'string') return t.skip(pieces);
    for (const name of ['mamba2-tiny', 'bamba-tiny', 'llama-tiny']) {
      const a: CausalLM = (await loadModel(hfFixture(name), { backend: one })).lm;
      const b: CausalLM = (await loadModel(hfFixture(name), { backend: pieces })).lm;
      const ids = [[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4], [2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0, 4, 5, 2, 3, 5, 3]];
      const s0 = pieces.rt.counters.submits;
      const [fa, fb] = [await a.forward(ids), await b.forward(ids)];
      assert.ok(pieces.rt.counters.submits - s0 > 2, `${name}: the forward went in ${pieces.rt.counters.submits - s0} submits`);
      assert.equal(maxAbsDiff(fa.logits.data, fb.logits.data), 0, `${name}: prefill logits`);
      const [sa, sb] = [a.createState(2), b.createState(2)];
      await a.advance(ids, sa);
      await b.advance(ids, sb);
      const want = await a.greedyChain!([[7], [1]], sa, 5);
      assert.deepEqual(await b.greedyChain!([[7], [1]], sb, 5), want, `${name}: greedy tokens`);
      const s1: number = pieces.rt.counters.submits;
      await b.advance([[want![4][0]], [want![4][1]]], sb); // a recorded step: replayed as one submit
      assert.equal(pieces.rt.counters.submits - s1, 1, `${name}: a replayed step is one submit`);
    }
  });
  it('refuses a submitEvery that is not a whole number ≥ 0', () => {
    for (const v of [-1, 2.5]) assert.throws(() => new WebGpuBackend(nullGpuDevice(), 'null', { submitEvery: v }), /webgpu: submitEvery must be a whole number of dispatches ≥ 0 \(0: only at reads\), got /);
  });
});
