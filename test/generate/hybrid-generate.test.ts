/**
 * Generation across model families with different caches: constant-size state (Mamba-2), KV cache
 * (Llama), both (Bamba). Batching ragged prompts, resuming from exported state, prefill-then-decode
 * equal to one prefill, and KV-cache growth past its initial capacity.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { argmax, loadModel } from '../../src/index.js';
import { hfFixture, maxAbsDiff } from '../helpers.js';

for (const name of ['mamba2-tiny', 'bamba-variant', 'llama-tiny']) {
  describe(`generation: ${name}`, async () => {
    const model = await loadModel(hfFixture(name));
    const V = model.vocabSize;
    const P1 = [5, 17, 300, 42, 7, 99, 1, 250, 3];
    const P2 = [200, 3];
    const P3 = Array.from({ length: 23 }, (_, i) => (i * 37 + 11) % V);
    const noStop = { stopTokens: [] as number[] };

    it('prefill of N tokens then token-by-token decode equals one prefill of the whole sequence', async () => {
      const seq = [...P3, ...P1];
      const whole = await model.forward([seq]);
      const state = model.createState(1);
      const head = await model.forward([P3], { state });
      assert.ok(maxAbsDiff(head.logits.data, whole.logits.data.subarray(0, P3.length * V)) <= 1e-4);
      for (let t = 0; t < P1.length; t++) {
        const step = await model.lm.advance([[P1[t]]], state);
        const d = maxAbsDiff(step.data, whole.logits.data.subarray((P3.length + t) * V, (P3.length + t + 1) * V));
        assert.ok(d <= 1e-4, `position ${P3.length + t}: ${d}`);
      }
    });

    it('a batch of prompts of different lengths equals each prompt alone', async () => {
      const batch = await model.generate([P1, P2, P3], { maxNewTokens: 10, ...noStop });
      for (const [i, p] of [P1, P2, P3].entries()) {
        const single = await model.generate(p, { maxNewTokens: 10, ...noStop });
        assert.deepEqual(batch.tokens[i], single.tokens[0], `sequence ${i}`);
      }
    });

    it('resumes from exported state bytes as if the whole text were re-read', async () => {
      const first = await model.generate(P1, { maxNewTokens: 5, ...noStop });
      const restored = model.importState(await first.state.export());
      const cont = await model.generate(P2, { maxNewTokens: 6, ...noStop, state: restored });
      const whole = await model.generate([...first.tokens[0], ...P2], { maxNewTokens: 6, ...noStop });
      assert.deepEqual(cont.generated[0], whole.generated[0]);
    });

    it('decodes past the initial KV capacity exactly like full re-forwards', async () => {
      const res = await model.generate(P3, { maxNewTokens: 50, ...noStop }); // 23 + 50 > 64 positions
      const seq = [...P3];
      const { logits } = await model.forward([[...P3, ...res.generated[0].slice(0, -1)]]);
      for (let t = 0; t < 50; t++) seq.push(argmax(logits.data.subarray((P3.length - 1 + t) * V, (P3.length + t) * V)));
      assert.deepEqual(res.tokens[0], seq);
    });
  });
}
