/**
 * bench/q8-tiles.ts (webgpu.bench `--q8-tiles`): the prefill with each q8 tile load of the tiled GEMM, interleaved on
 * one model — each mode timed `reps` times, its logits equal to the first mode's, the backend's mode restored.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { prefillByQ8Tiles } from '../../bench/q8-tiles.js';
import { loadModel } from '../../src/index.js';
import { hfFixture } from '../helpers.js';
import { kernelsOf, webgpuOrReason } from '../backend/webgpu-context.js';

// gemmSmall 'old': a 12-token prompt's products run `gemm`'s tiled GEMM (not the 9–128-row blocked one)
const g = await webgpuOrReason({ kernels: 'tiled', weights: 'q8', gemm: 'tiled', gemmSmall: 'old' });
after(() => {
  if (typeof g !== 'string') g.destroy();
});

describe('bench q8 tiles', () => {
  it('times the prefill with each q8 tile load (interleaved), logits equal, the mode restored', async (t: TestContext) => {
    if (typeof g === 'string') return t.skip(g);
    const m = await loadModel(hfFixture('mamba2-tiny'), { backend: g });
    const ids = Array.from({ length: 12 }, (_, i) => (i * 37 + 11) % 512);
    const { result: rows, variants } = await kernelsOf(g, () => prefillByQ8Tiles(g, m.lm, ids, ['vector', 'scalar'], 2));
    assert.deepEqual(rows.map((r) => r.mode), ['vector', 'scalar']);
    for (const r of rows) {
      assert.equal(r.prefill_ms.length, 2, `${r.mode}: one time per repetition`);
      assert.ok(r.prefill_tok_s > 0 && Number.isFinite(r.prefill_tok_s), `${r.mode}: ${r.prefill_tok_s} tok/s`);
      assert.equal(r.logits_max_rel_diff, 0, `${r.mode}: logits = vector's`);
    }
    const tiles = new Set(variants.filter((v) => v.startsWith('matmul_tiled')));
    assert.ok(tiles.has('matmul_tiled:64qv') && tiles.has('matmul_tiled:64q'), `both tile loads ran: ${[...tiles].join(', ')}`);
    assert.equal(g.q8Tiles, 'vector');
  });
});
