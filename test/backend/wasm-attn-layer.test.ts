/**
 * The wasm backend's `attentionDecode` (assembly/attn_layer.ts, session 30): a decode step's attention half — q/k/v
 * products, RoPE, the KV cache append, attention over the cache, o_proj — as one team call. It must give the bits of
 * the op sequence (linearMany, rope, attention, linear) for every weight and KV cache format, 1–3 threads, 1/2/5 rows,
 * GQA, full/partial/no rotary, and leave the caches holding the same bits; models decode the same logits with it on
 * and off, and it declines what it does not take.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import * as ops from '../../src/tensor/ops.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { AttentionDecodeArgs } from '../../src/backend/backend.js';
import type { KvCacheDType } from '../../src/tensor/dtype.js';
import { loadModel } from '../../src/index.js';
import { hfFixture, loadReference, stepLogits } from '../helpers.js';

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

/** the op sequence the fused call replaces (Attention.forward's) */
function reference(a: AttentionDecodeArgs): Tensor {
  const [b] = a.h.shape;
  const [qh, kh, vh] = ops.linearMany(a.h, [a.q, a.k, a.v]);
  let q = ops.reshape(qh, [b, 1, a.nHeads, a.headDim]);
  let k = ops.reshape(kh, [b, 1, a.nKvHeads, a.headDim]);
  const v = ops.reshape(vh, [b, 1, a.nKvHeads, a.headDim]);
  if (a.rope) {
    const pos = Int32Array.from(a.pastLen);
    q = ops.rope(q, pos, a.rope.rotaryDim, a.rope.theta);
    k = ops.rope(k, pos, a.rope.rotaryDim, a.rope.theta);
  }
  const o = ops.attention({ q, k, v, cacheK: a.cacheK, cacheV: a.cacheV, pastLen: a.pastLen, scale: a.scale });
  return ops.linear(ops.reshape(o, [b, a.nHeads * a.headDim]), a.o[0], a.o[1]);
}

const cacheBits = (t: Tensor): Uint8Array => {
  const s = t.storage as Float32Array;
  return new Uint8Array(s.buffer, s.byteOffset, s.byteLength).slice();
};

describe('wasm attentionDecode (an attention layer\'s decode step in one team call, session 30)', () => {
  // [Hq, Hkv, hd, rotary dims (0: none)]: GQA with head dims 32 (q8 blocks within a head) and 16 (q8 blocks span
  // the two KV heads), full, partial (Bamba: half) and no rotary; MHA
  const shapes = [[4, 2, 32, 32], [4, 2, 16, 8], [2, 2, 32, 0], [6, 2, 16, 16]] as const;
  for (const weights of ['f32', 'bf16', 'f16', 'q8'] as const) {
    for (const threads of [1, 2, 3]) {
      it(`${weights} weights, ${threads} thread(s): the bits of the op sequence, every KV cache format, 1/2/5 rows`, () => {
        const be = new WasmBackend({ threads, weights });
        const r = rng(threads * 31 + weights.length);
        const H = 64;
        const mat = (N: number, K: number) => be.fromHost(Float32Array.from({ length: N * K }, () => r() * 2 - 1), [N, K], { matrix: true });
        const vec = (N: number) => be.fromHost(Float32Array.from({ length: N }, () => r() - 0.5), [N]);
        let n = 0;
        for (const [Hq, Hkv, hd, rd] of shapes) {
          const bias = n++ % 2 === 1;
          const w = {
            q: [mat(Hq * hd, H), bias ? vec(Hq * hd) : null], k: [mat(Hkv * hd, H), bias ? vec(Hkv * hd) : null],
            v: [mat(Hkv * hd, H), bias ? vec(Hkv * hd) : null], o: [mat(H, Hq * hd), bias ? vec(H) : null],
          } as const;
          for (const kv of ['f32', 'bf16', 'f16', 'q8'] as const satisfies readonly KvCacheDType[]) {
            for (const [b, pasts] of [1, 2, 5].flatMap((b) => [[b, [140, 3, 70, 0, 31]], [b, [5, 3, 9, 0, 31]]] as const)) {
              // past lengths that differ per row; one past 128 (2–3 threads split a row's keys), or all short (one
              // split per row: by rows, or with a KV head or more per thread by heads from the products on)
              const cap = 160;
              const past = Array.from({ length: b }, (_, i) => pasts[i]);
              const init = Float32Array.from({ length: b * cap * Hkv * hd }, () => r() * 2 - 1);
              const caches = () => [be.fromHost(init, [b, cap, Hkv, hd], { kvCache: kv }), be.fromHost(init, [b, cap, Hkv, hd], { kvCache: kv })];
              const [k1, v1] = caches(), [k2, v2] = caches();
              for (let step = 0; step < 2; step++) {
                const h = new Tensor(be, Float32Array.from({ length: b * H }, () => r() * 4 - 2), [b, H]);
                const pastLen = past.map((p) => p + step);
                const args = { h, ...w, nHeads: Hq, nKvHeads: Hkv, headDim: hd, rope: rd ? { rotaryDim: rd, theta: 10000 } : null, pastLen, scale: 1 / Math.sqrt(hd) };
                const got = be.attentionDecode({ ...args, cacheK: k1, cacheV: v1 });
                const what = `Hq ${Hq}, Hkv ${Hkv}, hd ${hd}, rotary ${rd}, ${kv} cache, ${b} row(s), pasts ${pastLen}, step ${step}`;
                assert.ok(got, `${what}: handled`);
                const want = reference({ ...args, cacheK: k2, cacheV: v2 });
                assert.deepEqual(got.shape, [b, H]);
                assert.deepEqual(got.storage, want.storage, `${what}: output`);
                assert.deepEqual(cacheBits(k1), cacheBits(k2), `${what}: K cache`);
                assert.deepEqual(cacheBits(v1), cacheBits(v2), `${what}: V cache`);
              }
            }
          }
        }
      });
    }
  }

  it('declines prefill-sized rows, a cache outside wasm memory, q4 weights and attnLayer off (the ops then run)', () => {
    const be = new WasmBackend({ threads: 2, weights: 'q8' });
    const H = 64, hd = 32;
    const m = (N: number, K: number) => be.fromHost(new Float32Array(N * K).fill(0.25), [N, K], { matrix: true });
    const w = { q: [m(64, H), null], k: [m(32, H), null], v: [m(32, H), null], o: [m(H, 64), null] } as const;
    const args = (b: number, cache?: Tensor): AttentionDecodeArgs => ({
      h: new Tensor(be, new Float32Array(b * H).fill(0.5), [b, H]), ...w, nHeads: 2, nKvHeads: 1, headDim: hd,
      rope: { rotaryDim: hd, theta: 10000 }, cacheK: cache ?? be.zeros([b, 8, 1, hd]), cacheV: be.zeros([b, 8, 1, hd]),
      pastLen: new Array<number>(b).fill(2), scale: 0.1,
    });
    assert.ok(be.attentionDecode(args(1)));
    assert.equal(be.attentionDecode(args(9)), null);
    assert.equal(be.attentionDecode(args(1, new Tensor(be, new Float32Array(8 * hd), [1, 8, 1, hd]))), null);
    be.attnLayer = false;
    assert.equal(be.attentionDecode(args(1)), null);
    const q4 = new WasmBackend({ threads: 2, weights: 'q4' });
    const w4 = (N: number, K: number): [Tensor, Tensor | null] => [q4.fromHost(new Float32Array(N * K).fill(0.25), [N, K], { matrix: true }), null];
    assert.equal(q4.attentionDecode({
      h: new Tensor(q4, new Float32Array(256), [1, 256]), q: w4(256, 256), k: w4(256, 256), v: w4(256, 256), o: w4(256, 256),
      nHeads: 4, nKvHeads: 4, headDim: 64, rope: null, cacheK: q4.zeros([1, 8, 4, 64]), cacheV: q4.zeros([1, 8, 4, 64]), pastLen: [0], scale: 0.1,
    }), null);
  });

  it('attnLayer: the option and MAMBA_TS_WASM_ATTN_LAYER set it; a bad value is refused with its name', () => {
    assert.equal(new WasmBackend({ threads: 1 }).attnLayer, true);
    assert.equal(new WasmBackend({ threads: 1, attnLayer: false }).attnLayer, false);
    assert.throws(() => new WasmBackend({ threads: 1, attnLayer: 1 as never }), /option "attnLayer" must be true or false, got 1/);
    const saved = process.env.MAMBA_TS_WASM_ATTN_LAYER;
    try {
      process.env.MAMBA_TS_WASM_ATTN_LAYER = '0';
      assert.equal(new WasmBackend({ threads: 1 }).attnLayer, false);
      process.env.MAMBA_TS_WASM_ATTN_LAYER = 'no';
      assert.throws(() => new WasmBackend({ threads: 1 }), /MAMBA_TS_WASM_ATTN_LAYER must be 0 or 1, got "no"/);
    } finally {
      if (saved === undefined) delete process.env.MAMBA_TS_WASM_ATTN_LAYER;
      else process.env.MAMBA_TS_WASM_ATTN_LAYER = saved;
    }
  });

  const models = [
    ['llama-tiny', 'f32', 'f32'], ['llama-tiny', 'q8', 'q8'], ['bamba-tiny', 'bf16', 'f16'], ['bamba-variant', 'f32', 'bf16'],
    ['jamba-tiny', 'f16', 'f32'], ['granite-hybrid-tiny', 'q8', 'f32'],
  ] as const;
  for (const [name, weights, kvCache] of models) {
    it(`${name}, ${weights} weights, ${kvCache} KV cache: decode logits the same bits with attnLayer on and off, and it ran`, async () => {
      const model = await loadModel(hfFixture(name), { backend: 'wasm', threads: 2, weights, kvCache });
      const be = model.lm.backend as unknown as WasmBackend;
      be.decodeOneCall = false; // (a call per sublayer: the whole step in one call is wasm-backend.test's decodeOneCall describe's)
      let calls = 0;
      const fused = be.attentionDecode.bind(be);
      be.attentionDecode = (a) => {
        const y = fused(a);
        if (y) calls++;
        return y;
      };
      const ids = loadReference(hfFixture(name)).ids('input_ids')[0];
      const run = (on: boolean): Promise<Float32Array[]> => {
        be.attnLayer = on;
        return stepLogits(model.lm, ids, 6, 5);
      };
      const on = await run(true);
      assert.ok(calls > 0, 'attentionDecode ran');
      const count = calls;
      const off = await run(false);
      assert.equal(calls, count, 'off: not run');
      for (let i = 0; i < on.length; i++) assert.deepEqual(on[i], off[i], `step ${i}: logits differ`);
    });
  }
});
