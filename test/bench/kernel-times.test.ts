/**
 * bench/kernel-times.ts (the benchmarks' per-kernel GPU times, e.g. ssd.bench, the attention check) on this machine's
 * adapter: the kernels a piece of work dispatched, per call, and profiling off again afterwards.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { kernelTimes } from '../../bench/kernel-times.js';
import { randomArray } from '../helpers.js';
import { webgpuOrReason } from '../backend/webgpu-context.js';

const g = await webgpuOrReason({ profile: true });
after(() => {
  if (typeof g !== 'string') g.destroy();
});

describe('bench kernel times', () => {
  it('per-kernel GPU time of reps calls, divided per call; profiling off after', async (t: TestContext) => {
    if (typeof g === 'string') return t.skip(g);
    if (!g.rt.device.features.has('timestamp-query')) return t.skip('no timestamp-query on this adapter');
    const [M, K, N] = [3, 16, 24];
    const x = g.fromHost(randomArray(M * K, 1), [M, K]), w = g.fromHost(randomArray(N * K, 2), [N, K], { matrix: true });
    const a = g.fromHost(randomArray(M * N, 3), [M, N]);
    const reps = 4;
    // each call: a product then an add (two kernels, one dispatch each)
    const p = await kernelTimes(g, () => {
      for (let r = 0; r < reps; r++) g.add(g.linear(x, w, null), a).dispose();
    }, reps);
    assert.equal(p.kernels.length, 2, `kernels: ${p.kernels.map((k) => k.kernel).join(', ')}`);
    for (const k of p.kernels) {
      assert.equal(k.calls, 1, `${k.kernel}: ${k.calls} dispatches per call`);
      assert.ok(k.ms > 0 && Number.isFinite(k.ms), `${k.kernel}: ${k.ms} ms`);
    }
    assert.ok(p.kernels[0].ms >= p.kernels[1].ms, 'slowest first');
    assert.ok(Math.abs(p.gpuMs - p.kernels[0].ms - p.kernels[1].ms) < 1e-9);
    // profiling is off again: later work adds no times
    g.rt.kernelTimes.clear();
    g.add(g.linear(x, w, null), a).dispose();
    await g.sync();
    assert.equal(g.rt.kernelTimes.size, 0);
  });
});
