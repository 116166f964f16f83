/**
 * Hugging Face parity for every architecture: logits, every hidden state, token-by-token recurrent
 * decode, cached greedy decode (scores and tokens), against fixtures saved by transformers 5.17.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/index.js';
import { hfFixture, loadReference, maxAbsDiff } from '../helpers.js';

const TOL = 1e-4;

const cases: Array<{ model: string; ref: string }> = [
  { model: 'mamba-tiny', ref: 'mamba-tiny' },
  { model: 'mamba-tiny-sharded', ref: 'mamba-tiny' },
  { model: 'mamba-tiny-bf16', ref: 'mamba-tiny-bf16' },
  // made by scripts/fixtures/hf_variants.py: in/out biases, conv 3, state 8, expand 3, dt rank 5, untied head, batch 3
  { model: 'mamba-variant', ref: 'mamba-variant' },
  { model: 'falcon-mamba-tiny', ref: 'falcon-mamba-tiny' },
  { model: 'mamba2-tiny', ref: 'mamba2-tiny' },
  { model: 'mamba2-groups', ref: 'mamba2-groups' },
];

for (const c of cases) {
  describe(`HF parity: ${c.model}`, () => {
    const ref = loadReference(hfFixture(c.ref));
    for (const scan of [
      { algorithm: 'sequential' as const, chunkSize: 64 },
      { algorithm: 'chunked' as const, chunkSize: 8 },
    ]) {
      it(`logits and hidden states within ${TOL} (${scan.algorithm} scan)`, async () => {
        const model = await loadModel(hfFixture(c.model), { scan });
        const ids = ref.ids('input_ids');
        const out = await model.forward(ids, { outputHiddenStates: true });
        assert.deepEqual(out.logits.shape, ref.shape('logits'));
        const dl = maxAbsDiff(out.logits.data, ref.f32('logits'));
        assert.ok(dl <= TOL, `max |Δlogit| = ${dl}`);
        const names = ref.file.names().filter((n) => n.startsWith('hidden_states.')).sort((a, b) => Number(a.split('.')[1]) - Number(b.split('.')[1]));
        // the bf16 reference holds logits only; the f32 ones hold every hidden state
        if (names.length > 0) assert.equal(out.hiddenStates!.length, names.length);
        else assert.equal(c.ref, 'mamba-tiny-bf16');
        names.forEach((n, i) => {
          assert.deepEqual(out.hiddenStates![i].shape, ref.shape(n));
          const d = maxAbsDiff(out.hiddenStates![i].data, ref.f32(n));
          assert.ok(d <= TOL, `${n}: max |Δ| = ${d}`);
        });
      });
    }

    it('token-by-token recurrent decode equals the reference logits at every position', async () => {
      // HF's Mamba-2 decode skips the time_step_limit clamp that its full forward applies; clamping in
      // decode too makes the two agree (for the default limit (0, ∞) nothing changes)
      const model = await loadModel(hfFixture(c.model), { clampDecodeDt: true });
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
