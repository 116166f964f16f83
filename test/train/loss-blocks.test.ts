/**
 * DecoderLM.lossTensor: the loss scored in row blocks (when the backend's largest tensor cannot hold [b·L, V]
 * logits) equals the loss over all rows at once — value, correct count and every parameter's gradient.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/index.js';
import type { Backend } from '../../src/backend/backend.js';
import { RandomTensorSource } from '../../src/models/random.js';
import { buildModel } from '../../src/models/registry.js';
import { DecoderLM } from '../../src/models/decoder.js';
import { backward, withGrad } from '../../src/autograd/tape.js';
import * as ops from '../../src/tensor/ops.js';

const CONFIG = { model_type: 'mamba', hidden_size: 8, num_hidden_layers: 2, state_size: 4, expand: 2, conv_kernel: 4, vocab_size: 30, tie_word_embeddings: true };

/** the cpu backend, reporting a largest tensor of `n` elements */
function limited(n: number): Backend {
  return Object.assign(Object.create(Object.getPrototypeOf(cpu)) as Backend, cpu, { maxTensorElements: n });
}

async function run(be: Backend, blocks: boolean): Promise<{ loss: number; correct: number; count: number; grads: Map<string, Float32Array> }> {
  const lm = buildModel(CONFIG, 'test', new RandomTensorSource(3), { backend: be });
  assert.ok(lm instanceof DecoderLM);
  for (const e of lm.parameters.values()) for (const p of e.parts) p.tensor.requiresGrad = true;
  const ids = [[1, 4, 9, 16, 25, 6, 7], [2, 3, 5, 7, 11, 13, 17]];
  const targets = Int32Array.from([4, 9, 16, -100, 6, 7, 1, 3, 5, 7, 11, 13, 17, -100]);
  const ce = await withGrad(async () =>
    blocks ? lm.lossTensor(ids, targets) : ops.softmaxCrossEntropy(ops.reshape(await lm.logitsTensor(ids), [14, 30]), targets),
  );
  backward(ce.loss);
  const grads = new Map<string, Float32Array>();
  for (const [name, e] of lm.parameters) grads.set(name, await e.parts[0].tensor.grad!.data());
  return { loss: (await ce.loss.data())[0], correct: ce.correct, count: ce.count, grads };
}

describe('DecoderLM.lossTensor', () => {
  for (const rowsPerBlock of [14, 5, 3, 1]) {
    it(`blocks of ${rowsPerBlock} rows = all rows at once`, async () => {
      const want = await run(cpu, false);
      const got = await run(limited(rowsPerBlock * 30), true);
      assert.equal(got.count, 12);
      assert.equal(got.correct, want.correct);
      assert.ok(Math.abs(got.loss - want.loss) <= 1e-6 * Math.abs(want.loss), `loss ${got.loss} vs ${want.loss}`);
      for (const [name, g] of want.grads) {
        const h = got.grads.get(name)!;
        const scale = Math.max(1e-6, ...Array.from(g, Math.abs));
        let worst = 0;
        for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i] - h[i]) / scale);
        assert.ok(worst <= 1e-5, `${name}: gradient differs by ${worst} (relative)`);
      }
    });
  }
});
