/**
 * Session 33's decode attention loop shapes (src/backend/wasm/assembly/attention.ts, WasmBackendOptions.attnDecode):
 * 'pipe' (the default: 'rows' software-pipelined across blocks of 32 keys; 'regs' under GQA) and 'regs' (each query
 * head's values' accumulator in registers across a block) against 'rows' (the default before) and a float64 reference.
 *
 * Bounds: 'pipe' and 'regs' perform, per output value, the same multiply-adds in the same order as 'rows' (the scores
 * by the same dot loop, each block's fold before its values, the values key by key) and only change which loop visits
 * which value when: the outputs must be the same bits (deepEqual) — except on 16-bit caches under GQA, where 'rows'
 * runs heads4's code (another summation order: within 1e-6, |v| ≤ 1, as wasm-attention.test bounds rows vs heads4)
 * and 'pipe' runs the 'regs' code (deepEqual to 'regs'). Against float64 (an f32 cache, whose values the
 * kernel reads exactly): every score is an f32 dot of hd terms and every output a softmax-weighted sum of n values
 * with |v| ≤ 1, so the f32 error is below ~(hd + n) · 2⁻²⁴ · max|v| ≈ 2.2e-5 for hd ≤ 128, n ≤ 240 — the test allows
 * 2e-5 (what it measures is ~1e-7).
 *
 * Covered: head dims 128 / 64 / 40 / 16 / 13 (32-value register groups, 8-value groups, a 4-lane tail), GQA 1, 2, 3 and
 * 5 (fixtures: llama-tiny / bamba-tiny 4/2 × 16, bamba-variant 3/1 × 16, nemotron-h-tiny 4/2 × 128), contexts on both
 * sides of the 32-key block (1, 31, 32, 33, 64, 65, 200, 240: whole, partial and single-key blocks, and the pipeline's
 * first/last block), two rows with different contexts, 1, 2 and 3 threads (2 and 3 split a row's keys at positions
 * that are not multiples of 32), f32 / bf16 / f16 / q8 caches (q8: 'pipe' pipelines the in-place q8 loops where G = 1;
 * 'regs' runs the 'rows' code there). Mutations tried: the pipeline's last value row of a block skipped (f32/16-bit
 * and q8 separately): 3 and 1 of the 4 cache cases fail.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WasmBackend, type AttnDecode } from '../../src/backend/wasm/index.js';
import type { Backend } from '../../src/backend/backend.js';
import * as ops from '../../src/tensor/ops.js';
import type { KvCacheDType } from '../../src/tensor/dtype.js';
import { maxAbsDiff, randomArray } from '../helpers.js';

const backends = [1, 2, 3].map((threads) => new WasmBackend({ threads }));

interface Shape { Hq: number; Hkv: number; hd: number }
const SHAPES: Shape[] = [
  { Hq: 4, Hkv: 4, hd: 64 }, { Hq: 6, Hkv: 6, hd: 40 }, { Hq: 4, Hkv: 2, hd: 16 }, { Hq: 3, Hkv: 1, hd: 16 },
  { Hq: 4, Hkv: 2, hd: 128 }, { Hq: 5, Hkv: 1, hd: 13 }, { Hq: 6, Hkv: 2, hd: 64 },
];
/** pairs of contexts (keys per row, the new position included): across the 32-key blocks */
const CONTEXTS: Array<[number, number]> = [[1, 33], [31, 32], [64, 65], [240, 200]];

/** decode attention of one query per row over caches of `ctx[r]` keys per row (the new key written at ctx[r] − 1) */
function decode(be: Backend, s: Shape, ctx: [number, number], kv: KvCacheDType, seed: number): Float32Array {
  const b = 2, cap = 256, rowKV = s.Hkv * s.hd;
  const t = (a: Float32Array, shape: number[]) => be.fromHost(a, shape);
  const cshape = [b, cap, s.Hkv, s.hd];
  const y = ops.attention({
    q: t(randomArray(b * s.Hq * s.hd, seed, 2), [b, 1, s.Hq, s.hd]),
    k: t(randomArray(b * rowKV, seed + 1, 2), [b, 1, s.Hkv, s.hd]),
    v: t(randomArray(b * rowKV, seed + 2), [b, 1, s.Hkv, s.hd]),
    cacheK: be.fromHost(randomArray(b * cap * rowKV, seed + 3, 2), cshape, { kvCache: kv }),
    cacheV: be.fromHost(randomArray(b * cap * rowKV, seed + 4), cshape, { kvCache: kv }),
    pastLen: ctx.map((n) => n - 1), scale: 1 / Math.sqrt(s.hd),
  });
  return be.readSync(y).slice();
}

/** the same attention in float64 from the same f32 inputs (f32 cache) */
function reference(s: Shape, ctx: [number, number], seed: number): Float64Array {
  const b = 2, cap = 256, rowKV = s.Hkv * s.hd, G = s.Hq / s.Hkv;
  const q = randomArray(b * s.Hq * s.hd, seed, 2), k = randomArray(b * rowKV, seed + 1, 2), v = randomArray(b * rowKV, seed + 2);
  const ck = randomArray(b * cap * rowKV, seed + 3, 2), cv = randomArray(b * cap * rowKV, seed + 4);
  const out = new Float64Array(b * s.Hq * s.hd);
  const scale = 1 / Math.sqrt(s.hd);
  for (let r = 0; r < b; r++) {
    const n = ctx[r];
    // the new key and value land at position n − 1
    ck.set(k.subarray(r * rowKV, (r + 1) * rowKV), (r * cap + n - 1) * rowKV);
    cv.set(v.subarray(r * rowKV, (r + 1) * rowKV), (r * cap + n - 1) * rowKV);
    for (let h = 0; h < s.Hq; h++) {
      const g = Math.floor(h / G), qo = (r * s.Hq + h) * s.hd;
      const sc = new Float64Array(n);
      for (let j = 0; j < n; j++) {
        const ko = (r * cap + j) * rowKV + g * s.hd;
        let d = 0;
        for (let i = 0; i < s.hd; i++) d += q[qo + i] * ck[ko + i];
        sc[j] = d * scale;
      }
      const m = Math.max(...sc);
      let l = 0;
      for (let j = 0; j < n; j++) l += (sc[j] = Math.exp(sc[j] - m));
      for (let j = 0; j < n; j++) {
        const vo = (r * cap + j) * rowKV + g * s.hd;
        for (let i = 0; i < s.hd; i++) out[qo + i] += (sc[j] / l) * cv[vo + i];
      }
    }
  }
  return out;
}

describe("wasm decode attention: 'pipe' and 'regs' against 'rows' and float64", () => {
  for (const kv of ['f32', 'bf16', 'f16', 'q8'] as const) {
    it(`${kv} cache: the same bits as 'rows' on 1, 2 and 3 threads${kv === 'f32' ? ', within 2e-5 of float64' : ''}`, () => {
      let seed = 33000;
      let checked = 0;
      for (const s of SHAPES) {
        if (kv === 'q8' && s.hd % 32 !== 0) continue; // (other head dims: the q8 scratch path, the heads4 code in every shape)
        for (const ctx of CONTEXTS) {
          seed += 10;
          const want = kv === 'f32' ? reference(s, ctx, seed) : null;
          for (const be of backends) {
            const tag = `${kv} Hq=${s.Hq} Hkv=${s.Hkv} hd=${s.hd} ctx=[${ctx}] ${be.runtime.threads} thread(s)`;
            const got = new Map<AttnDecode, Float32Array>();
            try {
              for (const shape of ['rows', 'pipe', 'regs'] as const) {
                be.attnDecode = shape;
                got.set(shape, decode(be, s, ctx, kv, seed));
              }
            } finally {
              be.attnDecode = 'pipe';
            }
            if ((kv === 'bf16' || kv === 'f16') && s.Hq !== s.Hkv) {
              // 16-bit under GQA: 'rows' runs heads4's code (another summation order, as in wasm-attention.test's
              // rows-vs-heads4 bound), 'pipe' and 'regs' the 'regs' code
              assert.deepEqual(got.get('pipe'), got.get('regs'), `${tag}: pipe vs regs`);
              const d = maxAbsDiff(got.get('regs')!, got.get('rows')!);
              assert.ok(d <= 1e-6, `${tag}: regs vs rows (heads4 code) max |Δ| = ${d}`);
            } else {
              assert.deepEqual(got.get('pipe'), got.get('rows'), `${tag}: pipe vs rows`);
              assert.deepEqual(got.get('regs'), got.get('rows'), `${tag}: regs vs rows`);
            }
            if (want) {
              const y = got.get('pipe')!;
              let err = 0;
              for (let i = 0; i < y.length; i++) err = Math.max(err, Math.abs(y[i] - want[i]));
              assert.ok(err <= 2e-5, `${tag}: pipe vs float64 max |Δ| = ${err}`);
            }
            checked++;
          }
        }
      }
      assert.ok(checked >= 3 * CONTEXTS.length * 2, `${checked} cases checked`);
    });
  }

  it("attnDecode defaults to 'pipe'; MAMBA_TS_WASM_ATTN_DECODE and the option select the others", () => {
    const saved = process.env.MAMBA_TS_WASM_ATTN_DECODE;
    try {
      delete process.env.MAMBA_TS_WASM_ATTN_DECODE;
      assert.equal(new WasmBackend({ threads: 1 }).attnDecode, 'pipe');
      assert.equal(new WasmBackend({ threads: 1, attnDecode: 'regs' }).attnDecode, 'regs');
      process.env.MAMBA_TS_WASM_ATTN_DECODE = 'rows';
      assert.equal(new WasmBackend({ threads: 1 }).attnDecode, 'rows');
    } finally {
      if (saved === undefined) delete process.env.MAMBA_TS_WASM_ATTN_DECODE;
      else process.env.MAMBA_TS_WASM_ATTN_DECODE = saved;
    }
  });
});
