/**
 * Model-level WebGPU parity on the Hugging Face fixtures: full-forward logits within 1e-3 of the HF
 * reference, the state carried token by token (prefill + recurrent decode) agreeing with the reference
 * logits, and greedy generation giving the same tokens as the CPU reference backend.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/index.js';
import { hfFixture, loadReference, maxAbsDiff } from '../helpers.js';
import { webgpuOrReason } from './webgpu-context.js';

const TOL = 1e-3;
const FIXTURES = [
  'mamba-tiny', 'mamba-variant', 'falcon-mamba-tiny', 'mamba2-tiny', 'mamba2-groups', 'bamba-tiny', 'bamba-variant',
  'jamba-tiny', 'granite-hybrid-tiny', 'nemotron-h-tiny', 'llama-tiny',
];

// HF's decode skips time_step_limit's clamp that its full forward applies (see test/models/parity.test.ts)
const STEP_OPTS: Record<string, { clampDecodeDt: boolean }> = { 'mamba2-groups': { clampDecodeDt: true } };

const gpu = await webgpuOrReason();
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});

describe('webgpu backend: HF parity and greedy decode equal to the CPU backend', () => {
  for (const name of FIXTURES) {
    it(name, async (t) => {
      if (typeof gpu === 'string') return t.skip(gpu);
      const ref = loadReference(hfFixture(name));
      const model = await loadModel(hfFixture(name), { backend: gpu });
      assert.match(model.lm.backend.name, /^webgpu/);
      const ids = ref.ids('input_ids');
      const out = await model.forward(ids);
      const want = ref.f32('logits');
      const d = maxAbsDiff(out.logits.data, want);
      assert.ok(d <= TOL, `forward: max |Δlogit| = ${d}`);

      // prefill the first half, then decode the rest token by token (state on the GPU)
      const [b, L, V] = ref.shape('logits');
      const stepModel = STEP_OPTS[name] ? await loadModel(hfFixture(name), { backend: gpu, ...STEP_OPTS[name] }) : model;
      const state = stepModel.createState(b);
      const half = Math.max(1, Math.floor(L / 2));
      let step = await stepModel.lm.advance(ids.map((r) => r.slice(0, half)), state);
      for (let pos = half - 1; pos < L; pos++) {
        if (pos >= half) step = await stepModel.lm.advance(ids.map((r) => [r[pos]]), state);
        for (let r = 0; r < b; r++) {
          const dd = maxAbsDiff(step.data.subarray(r * V, (r + 1) * V), want.subarray((r * L + pos) * V, (r * L + pos + 1) * V));
          assert.ok(dd <= TOL, `row ${r} position ${pos}: max |Δlogit| = ${dd}`);
        }
      }

      const prompt = ref.ids('generate.prompt');
      const steps = ref.shape('generate.scores')[1];
      const cpuModel = await loadModel(hfFixture(name));
      const opts = { maxNewTokens: steps + 4, stopTokens: [] };
      const [g, c] = [await model.generate(prompt, opts), await cpuModel.generate(prompt, opts)];
      assert.deepEqual(g.tokens, c.tokens, 'greedy tokens equal the CPU backend');
      assert.deepEqual(g.tokens[0].slice(0, ref.ids('generate.tokens')[0].length), ref.ids('generate.tokens')[0]);
    });
  }
});

// the GPU kernels (what a real GPU runs: tiled GEMM, 'rescan' Mamba-1 scan, chunked SSD): a prefill and one step
// after it, on the fixtures of each mixer family (SwiftShader runs these kernels slowly)
const TILED_FIXTURES = ['mamba-tiny', 'falcon-mamba-tiny', 'mamba2-tiny', 'jamba-tiny'];
const tiled = typeof gpu === 'string' ? gpu : await webgpuOrReason({ kernels: 'tiled' });
after(() => {
  if (typeof tiled !== 'string') tiled.destroy();
});

describe('webgpu backend, tiled (GPU) kernels: HF parity of a prefill and of the step after it', () => {
  for (const name of TILED_FIXTURES) {
    it(name, async (t) => {
      if (typeof tiled === 'string') return t.skip(tiled);
      const ref = loadReference(hfFixture(name));
      const model = await loadModel(hfFixture(name), { backend: tiled, ...STEP_OPTS[name] });
      const ids = ref.ids('input_ids');
      const want = ref.f32('logits');
      const [b, L, V] = ref.shape('logits');
      const state = model.createState(b);
      const check = (got: Float32Array, pos: number, what: string) => {
        for (let r = 0; r < b; r++) {
          const dd = maxAbsDiff(got.subarray(r * V, (r + 1) * V), want.subarray((r * L + pos) * V, (r * L + pos + 1) * V));
          assert.ok(dd <= TOL, `${what}, row ${r} position ${pos}: max |Δlogit| = ${dd}`);
        }
      };
      check((await model.lm.advance(ids.map((r) => r.slice(0, L - 1)), state)).data, L - 2, `prefill of ${L - 1}`);
      check((await model.lm.advance(ids.map((r) => [r[L - 1]]), state)).data, L - 1, 'the step after it');
    });
  }
});
