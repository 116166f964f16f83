/**
 * WebGPU bf16 weights (`weights: 'bf16'`): matrices packed two to a u32 in the matrix pool, read by the
 * vectorized decode matvec, the tiled and the simple matmul and the embedding gather. Each is checked
 * against the CPU reference on the bf16-rounded weights (so any error in packing, lane order or the
 * shift would show), and whole models against the wasm backend's bf16 weights (the same rounding).
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/index.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { loadModel } from '../../src/index.js';
import { bf16ToF32, f32ToBf16 } from '../../src/tensor/dtype.js';
import { hfFixture, loadReference, maxAbsDiff, randomArray } from '../helpers.js';
import { webgpuOrReason } from './webgpu-context.js';

const tiled = await webgpuOrReason({ kernels: 'tiled', weights: 'bf16' });
const simple = typeof tiled === 'string' ? tiled : await webgpuOrReason({ kernels: 'simple', weights: 'bf16' });
const small = typeof tiled === 'string' ? tiled : await webgpuOrReason({ kernels: 'simple', weights: 'bf16', maxBindingBytes: 8192, maxStorageBuffers: 4, noSubgroups: true });
after(() => {
  for (const g of [tiled, simple, small]) if (typeof g !== 'string') g.destroy();
});

const roundBf16 = (a: Float32Array): Float32Array => a.map((v) => bf16ToF32(f32ToBf16(v)));

function withGpu(name: string, g: WebGpuBackend | string, fn: (g: WebGpuBackend) => Promise<void>): void {
  it(name, async (t: TestContext) => {
    if (typeof g === 'string') return t.skip(g);
    await fn(g);
  });
}

describe('webgpu bf16 weights', () => {
  for (const [which, g] of [['tiled', tiled], ['simple', simple], ['row blocks', small]] as const) {
    withGpu(`linear (${which}): matvec M ≤ 8 and matmul M > 8 equal the CPU on bf16-rounded weights; K % 8 ≠ 0 stays f32`, g, async (g) => {
      let seed = 3;
      for (const [M, K, N] of [[1, 64, 37], [3, 136, 70], [8, 16, 5], [9, 40, 33], [which === 'row blocks' ? 10 : 70, 64, 131], [2, 36, 20]]) {
        const x = randomArray(M * K, seed++), w = randomArray(N * K, seed++), b = randomArray(N, seed++);
        const wg = g.fromHost(w.slice(), [N, K], { matrix: true });
        const packed = K % 8 === 0;
        assert.equal((wg.storage as { fmt: string }).fmt, packed ? 'bf16' : 'f32', `${M}×${K}×${N}: storage format`);
        const want = cpu.linear(cpu.fromHost(x.slice(), [M, K]), cpu.fromHost(packed ? roundBf16(w) : w.slice(), [N, K]), cpu.fromHost(b.slice(), [N]));
        const got = await g.linear(g.fromHost(x.slice(), [M, K]), wg, g.fromHost(b.slice(), [N])).data();
        const d = maxAbsDiff(got, want.dataSync());
        assert.ok(d <= 1e-4, `${which} ${M}×${K}×${N}: max |Δ| = ${d}`);
        // the matrix reads back as its bf16 values
        assert.deepEqual(await wg.data(), packed ? roundBf16(w) : w);
      }
    });
    withGpu(`embedding (${which}): gathers bf16 rows exactly`, g, async (g) => {
      const [V, H] = [50, 40];
      const table = randomArray(V * H, 77);
      const ids = Int32Array.from([0, 49, 7, 7, 31]);
      const got = await g.embedding(g.fromHost(table.slice(), [V, H], { matrix: true }), ids).data();
      const want = cpu.embedding(cpu.fromHost(roundBf16(table), [V, H]), ids).dataSync();
      assert.equal(maxAbsDiff(got, want), 0);
    });
  }

  it('whole models: webgpu bf16 = wasm bf16 (same rounding) within 1e-4 — prefill logits and fused decode steps', async (t) => {
    if (typeof tiled === 'string') return t.skip(tiled);
    for (const name of ['mamba-tiny', 'mamba2-tiny']) {
      const ref = loadReference(hfFixture(name));
      const ids = ref.ids('input_ids');
      const [g, w] = [await loadModel(hfFixture(name), { backend: tiled }), await loadModel(hfFixture(name), { backend: 'wasm', threads: 1, weights: 'bf16' })];
      const [lg, lw] = [(await g.forward(ids)).logits.data, (await w.forward(ids)).logits.data];
      const d = maxAbsDiff(lg, lw);
      assert.ok(d <= 1e-4, `${name}: prefill max |Δlogit| webgpu bf16 vs wasm bf16 = ${d}`);
      assert.ok(maxAbsDiff(lg, ref.f32('logits')) > 1e-6, `${name}: bf16 really used (logits differ from float32)`);
      const [sg, sw] = [g.lm.createState(2), w.lm.createState(2)];
      const prompts = [[1, 2, 3], [4, 5, 6]];
      await g.lm.advance(prompts, sg);
      await w.lm.advance(prompts, sw);
      for (const tok of [7, 11]) {
        const [a, b] = [await g.lm.advance([[tok], [tok + 1]], sg), await w.lm.advance([[tok], [tok + 1]], sw)];
        const ds = maxAbsDiff(a.data, b.data);
        assert.ok(ds <= 1e-4, `${name}: decode step max |Δlogit| = ${ds}`);
      }
    }
  });
});
