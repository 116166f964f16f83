/**
 * Session 34's f16 KV cache conversion in decode attention (WasmBackendOptions.f16KvDecode): 'shift' (default: 8
 * halves → x · 2^-112 by a shift, a shift and a mask, multiplied by 2^112 for the keys, the 2^112 folded into each key's
 * weight p for the values) against 'widen' (the conversion before). Both convert exactly and p · 2^112 · x · 2^-112
 * rounds as p · x, so every output must be the same bits (deepEqual), in every loop shape.
 *
 * Covered: the op on caches holding normal halves, subnormal ones (|x| < 2^-14: f32 denormals after the shift), ±0
 * and large ones (up to ~2^15), head dims 64 / 40 / 16 / 13 (8-value groups, 4-lane tails), GQA 1, 2 and 3, contexts
 * across the 32-key blocks, 1, 2 and 3 threads, 'pipe', 'regs', 'rows', 'heads4'; and the llama-tiny and bamba-tiny
 * fixtures decoding with f16 caches through the one-call decode (a 125-token prompt, then 6 steps: at 2 threads the
 * keys split in two), f32 and q8 weights, 1–3 threads: logits the same bits. Mutation tried: the values' p not
 * multiplied by 2^112 (every values pass fails the op cases; the fixtures' logits differ).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/index.js';
import { WasmBackend, type AttnDecode } from '../../src/backend/wasm/index.js';
import * as ops from '../../src/tensor/ops.js';
import { hfFixture, randomArray, stepLogits, watchTeam } from '../helpers.js';

const backends = [1, 2, 3].map((threads) => new WasmBackend({ threads }));

interface Shape { Hq: number; Hkv: number; hd: number }
const SHAPES: Shape[] = [{ Hq: 4, Hkv: 4, hd: 64 }, { Hq: 6, Hkv: 6, hd: 40 }, { Hq: 4, Hkv: 2, hd: 16 }, { Hq: 3, Hkv: 1, hd: 16 }, { Hq: 5, Hkv: 5, hd: 13 }];
const CONTEXTS: Array<[number, number]> = [[1, 33], [64, 65], [240, 200]];

/** values of every f16 kind: normal, subnormal (|x| < 2^-14), ±0 (x · 2^-40 rounds to zero), large */
function mixed(n: number, seed: number): Float32Array {
  const a = randomArray(n, seed);
  const f = [1, 3e-5, 2e-12, 1, 2e4, 1e-6, -0, 0.01];
  for (let i = 0; i < n; i++) a[i] = f[i % 8] === -0 ? (i % 16 < 8 ? -0 : 0) : a[i] * f[i % 8];
  return a;
}

function decode(be: WasmBackend, s: Shape, ctx: [number, number], seed: number): Float32Array {
  const b = 2, cap = 256, rowKV = s.Hkv * s.hd;
  const t = (a: Float32Array, shape: number[]) => be.fromHost(a, shape);
  const cshape = [b, cap, s.Hkv, s.hd];
  // (keys: small enough that scores stay in range with the large halves; values: every kind)
  const y = ops.attention({
    q: t(randomArray(b * s.Hq * s.hd, seed, 0.5), [b, 1, s.Hq, s.hd]),
    k: t(mixed(b * rowKV, seed + 1).map((x) => x * 1e-3), [b, 1, s.Hkv, s.hd]),
    v: t(mixed(b * rowKV, seed + 2), [b, 1, s.Hkv, s.hd]),
    cacheK: be.fromHost(mixed(b * cap * rowKV, seed + 3).map((x) => x * 1e-3), cshape, { kvCache: 'f16' }),
    cacheV: be.fromHost(mixed(b * cap * rowKV, seed + 4), cshape, { kvCache: 'f16' }),
    pastLen: ctx.map((n) => n - 1), scale: 1 / Math.sqrt(s.hd),
  });
  return be.readSync(y).slice();
}

describe("wasm decode attention on an f16 cache: f16KvDecode 'shift' (default) against 'widen' (before)", () => {
  it("the same bits in every loop shape, head dim, GQA, context and thread count; subnormal, zero and large halves", () => {
    let seed = 34000, checked = 0, nonzero = 0;
    for (const s of SHAPES) {
      for (const ctx of CONTEXTS) {
        seed += 10;
        for (const be of backends) {
          for (const shape of ['pipe', 'regs', 'rows', 'heads4'] as AttnDecode[]) {
            const tag = `Hq=${s.Hq} Hkv=${s.Hkv} hd=${s.hd} ctx=[${ctx}] ${be.runtime.threads} thread(s) ${shape}`;
            be.attnDecode = shape;
            try {
              be.f16KvDecode = 'widen';
              const want = decode(be, s, ctx, seed);
              be.f16KvDecode = 'shift';
              const got = decode(be, s, ctx, seed);
              assert.deepEqual(got, want, tag);
              if (want.some((x) => Math.abs(x) > 1e-3)) nonzero++;
            } finally {
              be.attnDecode = 'pipe';
              be.f16KvDecode = 'shift';
            }
            checked++;
          }
        }
      }
    }
    assert.equal(checked, SHAPES.length * CONTEXTS.length * 3 * 4);
    assert.equal(nonzero, checked, 'every output has values (the check compares something)');
  });

  it('llama-tiny and bamba-tiny, f16 caches, one-call decode past 128 positions: the same logits, 1–3 threads, f32 and q8 weights', async () => {
    const ids = Array.from({ length: 140 }, (_, i) => (i * 37 + 11) % 512);
    for (const [name, threads, weights] of [['llama-tiny', 1, 'f32'], ['llama-tiny', 2, 'q8'], ['llama-tiny', 3, 'f32'], ['bamba-tiny', 2, 'f32'], ['bamba-tiny', 3, 'q8']] as const) {
      const model = await loadModel(hfFixture(name), { backend: 'wasm', threads, weights, kvCache: 'f16' });
      const lm = model.lm;
      const be = lm.backend as unknown as WasmBackend;
      let stack = 0;
      const restore = watchTeam(be.runtime, (k) => {
        if (k === 'decode_stack') stack++;
      });
      try {
        be.f16KvDecode = 'widen';
        const want = await stepLogits(lm, ids, 125, 6);
        be.f16KvDecode = 'shift';
        stack = 0;
        const got = await stepLogits(lm, ids, 125, 6);
        const what = `${name}, ${threads} thread(s), ${weights}`;
        assert.equal(stack, 6, `${what}: each step one decode_stack call`);
        for (let i = 0; i < want.length; i++) assert.deepEqual(got[i], want[i], `${what}, call ${i}: logits differ`);
      } finally {
        restore();
        be.f16KvDecode = 'shift';
      }
    }
  });

  it("f16KvDecode defaults to 'shift'; MAMBA_TS_WASM_F16_KV and the option select 'widen'; a bad value is an error naming the option", () => {
    const saved = process.env.MAMBA_TS_WASM_F16_KV;
    try {
      delete process.env.MAMBA_TS_WASM_F16_KV;
      assert.equal(new WasmBackend({ threads: 1 }).f16KvDecode, 'shift');
      assert.equal(new WasmBackend({ threads: 1, f16KvDecode: 'widen' }).f16KvDecode, 'widen');
      process.env.MAMBA_TS_WASM_F16_KV = 'widen';
      assert.equal(new WasmBackend({ threads: 1 }).f16KvDecode, 'widen');
      assert.throws(() => new WasmBackend({ threads: 1, f16KvDecode: 'fast' as never }), /f16KvDecode/);
    } finally {
      if (saved === undefined) delete process.env.MAMBA_TS_WASM_F16_KV;
      else process.env.MAMBA_TS_WASM_F16_KV = saved;
    }
  });
});
