/**
 * WebGPU given tensors of another backend: a CPU state passed to a WebGPU model, or a CPU tensor passed to an op
 * with GPU tensors, is a BackendMismatchError that names the tensor and both backends (it was a TypeError from
 * inside the backend, reading a GPU buffer field of a Float32Array).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BackendMismatchError, cpu, loadModel } from '../../src/index.js';
import * as ops from '../../src/tensor/ops.js';
import { hfFixture } from '../helpers.js';
import { webgpuOrReason } from './webgpu-context.js';

const gpu = await webgpuOrReason();
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});

describe('webgpu: tensors of another backend', () => {
  it('a CPU state passed to a WebGPU model is a BackendMismatchError naming the state tensor (forward, one-token advance, generate)', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const model = await loadModel(hfFixture('mamba-tiny'), { backend: gpu });
    const state = (await loadModel(hfFixture('mamba-tiny'))).createState(1);
    const named = (e: Error) => {
      assert.ok(e instanceof BackendMismatchError, `expected BackendMismatchError, got ${e.name}: ${e.message}`);
      assert.match(e.message, /^state: layers\.0\.conv is on backend cpu, the model on webgpu/);
      return true;
    };
    await assert.rejects(model.forward([[1, 2, 3]], { state }), named);
    await assert.rejects(model.lm.advance([[5]], state), named); // the recorded/replayed one-token step
    await assert.rejects(model.generate([1, 2, 3], { state, maxNewTokens: 2 }), named);
    assert.deepEqual(state.seqLen, [0]);
  });

  it('an op given a CPU tensor next to GPU tensors names the argument and both backends', (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const a = gpu.zeros([2, 3]);
    assert.throws(() => ops.add(a, cpu.zeros([2, 3])), (e: Error) => e instanceof BackendMismatchError && /^add: b is on backend cpu, a on webgpu/.test(e.message));
    a.dispose();
  });
});
