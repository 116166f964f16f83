/**
 * Hugging Face parity checks for one fixture, shared by every architecture's test file: logits and every
 * hidden state, token-by-token recurrent decode vs the reference logits, and cached greedy decode
 * (generate.scores and generate.tokens).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel, type LoadOptions } from '../../src/index.js';
import { hfFixture, loadReference, maxAbsDiff } from '../helpers.js';

export const TOL = 1e-4;

export interface ParityCase {
  /** folder under test/fixtures/hf */
  model: string;
  /** folder holding reference.safetensors (default: model) */
  ref?: string;
  /** option sets for the full-forward check (e.g. each scan algorithm) */
  variants?: Array<{ label: string; opts: LoadOptions }>;
  /** options for the token-by-token check (e.g. clampDecodeDt) */
  stepOpts?: LoadOptions;
}

export function parityTests(c: ParityCase): void {
  describe(`HF parity: ${c.model}`, () => {
    const ref = loadReference(hfFixture(c.ref ?? c.model));
    for (const v of c.variants ?? [{ label: 'default', opts: {} }]) {
      it(`logits and hidden states within ${TOL} (${v.label})`, async () => {
        const model = await loadModel(hfFixture(c.model), v.opts);
        const ids = ref.ids('input_ids');
        const out = await model.forward(ids, { outputHiddenStates: true });
        assert.deepEqual(out.logits.shape, ref.shape('logits'));
        const dl = maxAbsDiff(out.logits.data, ref.f32('logits'));
        assert.ok(dl <= TOL, `max |Δlogit| = ${dl}`);
        const names = ref.file.names().filter((n) => n.startsWith('hidden_states.')).sort((a, b) => Number(a.split('.')[1]) - Number(b.split('.')[1]));
        // the bf16 reference holds logits only; every other one holds all hidden states
        if (names.length > 0) assert.equal(out.hiddenStates!.length, names.length);
        else assert.match(c.model, /bf16/);
        names.forEach((n, i) => {
          assert.deepEqual(out.hiddenStates![i].shape, ref.shape(n));
          const d = maxAbsDiff(out.hiddenStates![i].data, ref.f32(n));
          assert.ok(d <= TOL, `${n}: max |Δ| = ${d}`);
        });
      });
    }

    it('token-by-token recurrent decode equals the reference logits at every position', async () => {
      const model = await loadModel(hfFixture(c.model), c.stepOpts ?? {});
      const ids = ref.ids('input_ids');
      const logits = ref.f32('logits');
      const [b, L, V] = ref.shape('logits');
      const state = model.createState(b);
      for (let t = 0; t < L; t++) {
        const step = await model.lm.advance(ids.map((r) => [r[t]]), state);
        for (let r = 0; r < b; r++) {
          const d = maxAbsDiff(step.data.subarray(r * V, (r + 1) * V), logits.subarray((r * L + t) * V, (r * L + t + 1) * V));
          assert.ok(d <= TOL, `row ${r} position ${t}: max |Δlogit| = ${d}`);
        }
      }
      assert.deepEqual(state.seqLen, new Array(b).fill(L));
    });

    // the bf16 reference holds input_ids and logits only
    if (!ref.file.has('generate.prompt')) return;
    it('cached greedy decode reproduces generate.scores and generate.tokens', async () => {
      const model = await loadModel(hfFixture(c.model));
      const prompt = ref.ids('generate.prompt');
      const want = ref.ids('generate.tokens')[0];
      const scores = ref.f32('generate.scores');
      const [, steps, V] = ref.shape('generate.scores');
      const got: Float32Array[] = [];
      // record the logits each decode step sees by wrapping advance()
      const lm = model.lm;
      const advance = lm.advance.bind(lm);
      lm.advance = async (ids, state) => {
        const l = await advance(ids, state);
        got.push(l.data.slice(0, V));
        return l;
      };
      const res = await model.generate(prompt, { maxNewTokens: steps, stopTokens: [] });
      assert.deepEqual(res.tokens[0], want);
      for (let s = 0; s < steps; s++) {
        const d = maxAbsDiff(got[s], scores.subarray(s * V, (s + 1) * V));
        assert.ok(d <= TOL, `step ${s}: max |Δscore| = ${d}`);
      }
      assert.deepEqual(ref.ids('generate.tokens_nocache')[0], want);
    });
  });
}
