/**
 * Explicit GPU memory (issue 12): scopes free WebGPU blocks when they end, the runtime counts device memory
 * (`stats()`), a prefill's activations do not grow with the number of layers, recorded decode graphs keep
 * their blocks reserved after scopes freed them, and concurrent forwards on one model do not free each other's
 * tensors (a freed block is reused at once, so a wrong free would show in the logits).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/index.js';
import { buildModel } from '../../src/models/registry.js';
import { RandomTensorSource } from '../../src/models/random.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import type { GpuGraph } from '../../src/backend/webgpu/runtime.js';
import * as ops from '../../src/tensor/ops.js';
import { scope, scopeContextKind, useScopeContext } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { hfFixture, maxAbsDiff } from '../helpers.js';
import { webgpuOrReason } from './webgpu-context.js';
import { WebGpuBackend } from '../../src/backend/webgpu/backend.js';
import { nullGpuDevice } from '../../bench/null-gpu.js';

const gpu = await webgpuOrReason();
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});
const initialKind = scopeContextKind();

describe('webgpu memory', () => {
  it('stats(): device bytes and the high-water mark follow allocations; a scope gives its blocks back', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const rt = gpu.rt;
    await gpu.sync();
    const s0 = rt.stats();
    rt.resetPeak();
    const x = gpu.fromHost(new Float32Array(1 << 16).fill(1), [256, 256]);
    const s1 = rt.stats();
    assert.ok(s1.liveBytes - s0.liveBytes >= (1 << 18), 'the input holds a block');
    let inner: Tensor[] = [];
    const y = scope(() => {
      const a = ops.scale(x, 2), b = ops.add(a, x), c = ops.rmsNorm(b, null, 1e-5);
      inner = [a, b, c];
      return ops.scale(c, 3);
    });
    const s2 = rt.stats();
    assert.ok(inner.every((u) => u.isDisposed) && !y.isDisposed);
    assert.equal(s2.liveBytes - s1.liveBytes, 1 << 18, 'only the result is still held');
    assert.ok(s2.peakLiveBytes - s1.liveBytes >= 3 * (1 << 18), 'the intermediates were live at the same time at some point');
    assert.ok(s2.peakDeviceBytes >= s2.deviceBytes && s2.deviceBytes >= s2.poolBytes && s2.poolBytes >= s2.liveBytes + s2.freeBytes);
    const want = Float32Array.from(await x.data(), (v) => v * 3 * 3 / Math.sqrt(9 + 1e-5));
    assert.ok(maxAbsDiff(await y.data(), want) < 1e-5);
    // the freed blocks are reused: the same work again creates no buffer
    const n0 = rt.stats().buffersCreated;
    const y2 = scope(() => ops.scale(ops.add(ops.scale(x, 2), x), 3));
    assert.equal(rt.stats().buffersCreated, n0);
    const l = rt.stats().liveBytes;
    y.dispose();
    y2.dispose();
    assert.equal(rt.stats().liveBytes, l - 2 * (1 << 18), 'activation blocks go back at once');
    x.dispose();
    assert.equal(rt.stats().liveBytes, l - 2 * (1 << 18), 'a constant block waits for the submit of the work recorded with it');
    await gpu.sync();
    assert.ok(rt.stats().liveBytes <= l - 3 * (1 << 18));
  });

  it('a forward frees every tensor it made; weights and state survive and give the same logits again', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const lm = (await loadModel(hfFixture('mamba2-tiny'), { backend: gpu })).lm;
    const state = lm.createState(1);
    const prompt = [[5, 4, 3, 2, 1, 9, 8, 7, 6, 5, 4, 3]];
    await gpu.sync();
    const live0 = gpu.rt.stats().liveBytes;
    const first = await lm.forward(prompt);
    assert.ok(gpu.rt.stats().liveBytes <= live0, `${gpu.rt.stats().liveBytes - live0} bytes still held after a forward`);
    await lm.advance(prompt, state);
    assert.ok(state.layers.every((l) => Object.values(l).every((u) => !u.isDisposed)));
    assert.equal(maxAbsDiff((await lm.forward(prompt)).logits.data, first.logits.data), 0, 'weights intact');
  });

  it('a prefill\'s activations do not grow with the number of layers (each layer\'s are freed when it is recorded)', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const peak = async (layers: number, type: 'mamba' | 'mamba2') => {
      const config = type === 'mamba'
        ? { model_type: 'mamba', hidden_size: 64, num_hidden_layers: layers, state_size: 16, expand: 2, conv_kernel: 4, time_step_rank: 4, vocab_size: 128, tie_word_embeddings: true }
        : { model_type: 'mamba2', hidden_size: 64, num_hidden_layers: layers, state_size: 16, num_heads: 4, head_dim: 32, n_groups: 1, expand: 2, conv_kernel: 4, chunk_size: 32, vocab_size: 128, tie_word_embeddings: true };
      const lm = buildModel(config, `random ${type}`, new RandomTensorSource(3), { backend: gpu });
      const s = lm.createState(1);
      await gpu.sync();
      const before = gpu.rt.stats().liveBytes;
      gpu.rt.resetPeak();
      await lm.advance([Array.from({ length: 256 }, (_, i) => (i * 37) % 128)], s);
      return gpu.rt.stats().peakLiveBytes - before;
    };
    for (const type of ['mamba', 'mamba2'] as const) {
      const [one, six] = [await peak(1, type), await peak(6, type)];
      t.diagnostic(`${type}: prefill of 256 tokens holds at most ${one} bytes of activations with 1 layer, ${six} with 6`);
      assert.ok(six < 1.5 * one, `${type}: 6 layers ${six} bytes vs 1 layer ${one}`);
    }
  });

  it('a recorded decode step keeps its blocks after scopes freed them: tensors allocated later are not overwritten by replays', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const lm: CausalLM = (await loadModel(hfFixture('mamba-tiny'), { backend: gpu })).lm;
    const [a, ref] = [lm.createState(1), lm.createState(1)];
    await lm.advance([[1, 2, 3]], a);
    await lm.advance([[1, 2, 3]], ref);
    const own = a.layers.flatMap((l) => Object.values(l));
    const { result, graph } = await gpu.captureStep(async () => (await lm.forward([[7]], { state: a, logitsToKeep: 1 })).logits.data, own);
    assert.ok(graph, 'the step was recorded');
    assert.equal(maxAbsDiff(result, (await lm.forward([[7]], { state: ref, logitsToKeep: 1 })).logits.data), 0);
    // every size the graph binds, allocated twice and zeroed: released graph blocks would be handed out here
    const sizes = new Set((graph as unknown as GpuGraph).steps.flatMap((s) => s.roles.map((r) => r.len)));
    const probes = [...sizes].flatMap((n) => [gpu.zeros([n]), gpu.zeros([n])]);
    for (const tok of [8, 9, 10]) {
      const got = await gpu.replayStep(graph!, [tok]);
      const want = (await lm.forward([[tok]], { state: ref, logitsToKeep: 1 })).logits.data;
      assert.equal(maxAbsDiff(got!, want), 0, `replayed step ${tok}`);
    }
    for (const p of probes) assert.ok((await p.data()).every((v) => v === 0), `a tensor of ${p.size} floats was written by a replay`);
  });

  it('disposing a state gives back what its recorded decode step reserved, at once (not when the collector runs)', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    for (const name of ['bamba-tiny', 'mamba-tiny']) {
      const lm: CausalLM = (await loadModel(hfFixture(name), { backend: gpu })).lm;
      const ref = lm.createState(1);
      await lm.advance([[1, 2, 3, 4]], ref);
      const want = await lm.greedyChain!([[5]], ref, 4);
      await gpu.sync();
      const live0: number = gpu.rt.stats().liveBytes;
      const s = lm.createState(1);
      await lm.advance([[1, 2, 3, 4]], s);
      const got = await lm.greedyChain!([[5]], s, 4); // records the step (it pins the state's blocks), then replays it
      assert.deepEqual(got, want, `${name}: same tokens`);
      await gpu.sync();
      assert.ok(gpu.rt.stats().liveBytes > live0, `${name}: the state and its recorded step hold blocks`);
      s.dispose();
      await gpu.sync();
      assert.equal(gpu.rt.stats().liveBytes, live0, `${name}: every block of the state and of its recorded step is back`);
      // the other state's recorded step still replays, and a disposed state's step never does
      assert.deepEqual(await lm.greedyChain!([[5]], lm.createState(1), 1).then((r) => r?.length), 1);
      ref.dispose();
    }
  });

  for (const kind of ['synchronous', 'async-local-storage'] as const) {
    it(`two concurrent forwards on one model (${kind}) equal sequential ones`, async (t) => {
      if (typeof gpu === 'string') return t.skip(gpu);
      useScopeContext(kind);
      try {
        for (const name of ['mamba-tiny', 'jamba-tiny']) {
          const lm = (await loadModel(hfFixture(name), { backend: gpu })).lm;
          const p1 = [Array.from({ length: 20 }, (_, i) => (i * 5 + 1) % 60)], p2 = [[9, 8, 7, 6, 5, 4, 3, 2, 1], [3, 1, 4, 1, 5, 9, 2, 6, 5]];
          const [s1, s2, r1, r2] = [lm.createState(1), lm.createState(2), lm.createState(1), lm.createState(2)];
          const seq = [await lm.forward(p1, { state: r1 }), await lm.forward(p2, { state: r2 }), await lm.forward(p1)];
          const con = await Promise.all([lm.forward(p1, { state: s1 }), lm.forward(p2, { state: s2 }), lm.forward(p1)]);
          con.forEach((c, i) => assert.ok(maxAbsDiff(c.logits.data, seq[i].logits.data) <= 1e-6, `${name}: forward ${i} differs by ${maxAbsDiff(c.logits.data, seq[i].logits.data)}`));
          const [d1, d2] = await Promise.all([lm.advance([[4]], s1), lm.advance([[5], [6]], s2)]);
          assert.ok(maxAbsDiff(d1.data, (await lm.advance([[4]], r1)).data) <= 1e-6, `${name}: step after, sequence 1`);
          assert.ok(maxAbsDiff(d2.data, (await lm.advance([[5], [6]], r2)).data) <= 1e-6, `${name}: step after, sequence 2`);
        }
      } finally {
        useScopeContext(initialKind);
      }
    });
  }
});

// allocations do not depend on results: on a device that executes nothing (bench/null-gpu.ts) these run without
// a GPU, in CI too, with the kernel choices of GPUs ('tiled') and of CPU-emulated adapters ('simple')
describe('webgpu memory, on a device that runs nothing', () => {
  const config = (type: 'mamba' | 'mamba2', layers: number) => type === 'mamba'
    ? { model_type: 'mamba', hidden_size: 128, num_hidden_layers: layers, state_size: 16, expand: 2, conv_kernel: 4, time_step_rank: 8, vocab_size: 256, tie_word_embeddings: true }
    : { model_type: 'mamba2', hidden_size: 128, num_hidden_layers: layers, state_size: 64, num_heads: 4, head_dim: 64, n_groups: 1, expand: 2, conv_kernel: 4, chunk_size: 64, vocab_size: 256, tie_word_embeddings: true };
  for (const kernels of ['tiled', 'simple'] as const) {
    it(`a 1024-token prefill holds the activations of about one layer, whatever the depth, and frees them all (${kernels} kernels)`, async () => {
      for (const type of ['mamba', 'mamba2'] as const) {
        const peaks: number[] = [];
        for (const layers of [1, 8]) {
          const be = new WebGpuBackend(nullGpuDevice(), 'null', { kernels, subgroupMaxSize: 32 });
          const lm = buildModel(config(type, layers), type, new RandomTensorSource(1), { backend: be });
          const s = lm.createState(1);
          const before = be.rt.stats();
          be.rt.resetPeak();
          await lm.advance([Array.from({ length: 1024 }, (_, i) => (i * 31) % 256)], s);
          const after = be.rt.stats();
          peaks.push(after.peakLiveBytes - before.liveBytes);
          assert.equal(after.liveBytes, before.liveBytes, `${type}, ${layers} layers: every block of the prefill is back in its pool`);
          be.destroy();
        }
        assert.ok(peaks[1] < 1.2 * peaks[0], `${type}: 8 layers hold ${peaks[1]} bytes at most, 1 layer ${peaks[0]}`);
      }
    });
  }
});

describe('webgpu memory: trim', () => {
  it('trim() gives free dedicated buffers back to the device and keeps live ones and chunks', () => {
    const be = new WebGpuBackend(nullGpuDevice(), 'null', { subgroupMaxSize: 32 });
    const big = (be.rt.chunkBytes / 4) * 0.75; // floats: over half a chunk → a dedicated buffer
    const small = be.zeros([1024]);
    const a = be.zeros([big]), b = be.zeros([big]);
    const s1 = be.rt.stats();
    a.dispose();
    const s2 = be.rt.stats();
    assert.equal(s2.deviceBytes, s1.deviceBytes, 'a released block stays in its pool');
    assert.ok(s2.freeBytes >= big * 4);
    const freed = be.rt.trim();
    const s3 = be.rt.stats();
    assert.ok(freed >= big * 4, `gave back ${freed} bytes`);
    assert.equal(s3.deviceBytes, s2.deviceBytes - freed);
    assert.equal(s3.freeBytes, s2.freeBytes - freed, 'only the free dedicated block went');
    assert.equal(be.rt.trim(), 0, 'nothing left to give back');
    assert.ok(!b.isDisposed && !small.isDisposed);
    b.dispose();
    small.dispose();
    assert.ok(be.rt.trim() >= big * 4, 'the second one goes once it is free');
    be.destroy();
  });
});
