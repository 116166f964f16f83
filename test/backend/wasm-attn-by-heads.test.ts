/**
 * WasmBackendOptions.attnDecodeBy (session 34): 'heads' gives each thread of a decode step's attention half whole KV
 * heads (one split of the keys per row, S = 1) where 'keys' (default) splits the keys past ATTN_MIN_SPLIT. With 'heads'
 * every head is computed as one thread computes it (the products are the same bits for any split of their rows, and a
 * head's attention with S = 1 runs the same loop over its keys), so 2 and 3 threads give the 1-thread logits to the
 * bit; 'keys' splits (counted) and differs from them by its log-sum-exp merge (within 1e-5 relative).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/index.js';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import { hfFixture, relErr, stepLogits, watchTeam } from '../helpers.js';

describe("wasm decode attention divided by KV heads (attnDecodeBy 'heads')", () => {
  it('llama-tiny past 128 positions, 2 and 3 threads, f32 and f16 caches: the 1-thread logits to the bit; keys split otherwise', async () => {
    const ids = Array.from({ length: 140 }, (_, i) => (i * 37 + 11) % 512);
    for (const kvCache of ['f32', 'f16'] as const) {
      const one = await loadModel(hfFixture('llama-tiny'), { backend: 'wasm', threads: 1, kvCache });
      const want = await stepLogits(one.lm, ids, 125, 6);
      for (const threads of [2, 3]) {
        // (llama-tiny: 2 KV heads; 3 threads do not divide them, so 'heads' falls back to splitting the keys there)
        const model = await loadModel(hfFixture('llama-tiny'), { backend: 'wasm', threads, kvCache });
        const lm = model.lm;
        const be = lm.backend as unknown as WasmBackend;
        be.attnDecodeBy = 'heads';
        const rt = be.runtime;
        let splits = 0;
        const restore = watchTeam(rt, (k, args) => {
          if (k === 'decode_stack' && new Float64Array(rt.memory.buffer, args[0], 32)[20] > 1) splits++;
        });
        try {
          const what = `${kvCache} cache, ${threads} threads`;
          const got = await stepLogits(lm, ids, 125, 6);
          if (threads === 2) {
            assert.equal(splits, 0, `${what}: no key split with 'heads'`);
            for (let i = 0; i < want.length; i++) assert.deepEqual(got[i], want[i], `${what}, call ${i}: logits differ from 1 thread`);
          } else assert.ok(splits > 0, `${what}: 3 threads do not divide 2 KV heads: the keys split`);
          be.attnDecodeBy = 'keys';
          splits = 0;
          const keys = await stepLogits(lm, ids, 125, 6);
          assert.ok(splits > 0, `${what}: 'keys' splits the keys`);
          for (let i = 0; i < want.length; i++) assert.ok(relErr(keys[i], want[i]) <= 1e-5, `${what}, call ${i}: 'keys' vs 1 thread ${relErr(keys[i], want[i])}`);
        } finally {
          restore();
          be.attnDecodeBy = 'keys';
        }
      }
    }
  });

  it("defaults to 'keys'; MAMBA_TS_WASM_ATTN_BY and the option select 'heads'; a bad value is an error naming the option", () => {
    const saved = process.env.MAMBA_TS_WASM_ATTN_BY;
    try {
      delete process.env.MAMBA_TS_WASM_ATTN_BY;
      assert.equal(new WasmBackend({ threads: 1 }).attnDecodeBy, 'keys');
      assert.equal(new WasmBackend({ threads: 1, attnDecodeBy: 'heads' }).attnDecodeBy, 'heads');
      process.env.MAMBA_TS_WASM_ATTN_BY = 'heads';
      assert.equal(new WasmBackend({ threads: 1 }).attnDecodeBy, 'heads');
      assert.throws(() => new WasmBackend({ threads: 1, attnDecodeBy: 'rows' as never }), /attnDecodeBy/);
    } finally {
      if (saved === undefined) delete process.env.MAMBA_TS_WASM_ATTN_BY;
      else process.env.MAMBA_TS_WASM_ATTN_BY = saved;
    }
  });
});
