/**
 * The WebAssembly attention kernels (src/backend/wasm/assembly/attention.ts: the split-KV decode kernel and the
 * flash-style prefill tiles) through WasmBackend.attention, against the TypeScript reference (CpuBackend.attention,
 * float64 softmax): head_dim with and without a SIMD tail, GQA ratios 1/2/4, L = 1 and L = 1000, caches with past
 * positions (different per row), a cache in wasm memory (read in place) and one on the JS heap (copied in), on 1 and
 * 2 threads. The new k/v land in the cache exactly as the reference writes them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/index.js';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { Backend } from '../../src/backend/backend.js';
import * as ops from '../../src/tensor/ops.js';
import { maxAbsDiff, randomArray } from '../helpers.js';

const cpu = new CpuBackend();
const wasm = { 1: new WasmBackend({ threads: 1 }), 2: new WasmBackend({ threads: 2 }) };

interface Case {
  b: number;
  L: number;
  Hq: number;
  Hkv: number;
  hd: number;
  /** positions already in the cache per row; null: no cache */
  past: number[] | null;
  /** cache length (≥ past + L) */
  cap?: number;
}

interface Data {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  cacheK: Float32Array | null;
  cacheV: Float32Array | null;
}

function makeData(c: Case, seed: number): Data {
  const rows = c.b * c.L;
  const cap = c.cap ?? (c.past ? Math.max(...c.past) + c.L : 0);
  const cacheK = c.past ? randomArray(c.b * cap * c.Hkv * c.hd, seed + 3, 2) : null;
  const cacheV = c.past ? randomArray(c.b * cap * c.Hkv * c.hd, seed + 4) : null;
  return {
    q: randomArray(rows * c.Hq * c.hd, seed, 2),
    k: randomArray(rows * c.Hkv * c.hd, seed + 1, 2),
    v: randomArray(rows * c.Hkv * c.hd, seed + 2),
    cacheK,
    cacheV,
  };
}

/** runs attention on `be`; residentCache: the cache made by the backend's zeros (wasm memory) rather than a JS array */
function run(be: Backend, c: Case, d: Data, residentCache: boolean): { y: Float32Array; cacheK: Float32Array | null; cacheV: Float32Array | null } {
  const t = (a: Float32Array, shape: number[]) => be.fromHost(a.slice(), shape);
  const cap = c.cap ?? (c.past ? Math.max(...c.past) + c.L : 0);
  const cshape = [c.b, cap, c.Hkv, c.hd];
  const cache = (a: Float32Array | null): Tensor | null => {
    if (!a) return null;
    if (!residentCache) return new Tensor(be, a.slice(), cshape);
    const z = be.zeros(cshape);
    (z.storage as Float32Array).set(a);
    return z;
  };
  const cacheK = cache(d.cacheK), cacheV = cache(d.cacheV);
  const y = ops.attention({
    q: t(d.q, [c.b, c.L, c.Hq, c.hd]), k: t(d.k, [c.b, c.L, c.Hkv, c.hd]), v: t(d.v, [c.b, c.L, c.Hkv, c.hd]),
    cacheK, cacheV, pastLen: c.past ?? new Array(c.b).fill(0), scale: 1 / Math.sqrt(c.hd),
  });
  return {
    y: be.readSync(y),
    cacheK: cacheK ? be.readSync(cacheK).slice() : null,
    cacheV: cacheV ? be.readSync(cacheV).slice() : null,
  };
}

function name(c: Case): string {
  return `b=${c.b} L=${c.L} Hq=${c.Hq} Hkv=${c.Hkv} hd=${c.hd} past=${c.past ? `[${c.past}]` : 'none'}`;
}

const CASES: Case[] = [
  // decode (one query per row)
  { b: 1, L: 1, Hq: 4, Hkv: 4, hd: 64, past: [0] },
  { b: 1, L: 1, Hq: 4, Hkv: 2, hd: 13, past: [200] },
  { b: 2, L: 1, Hq: 8, Hkv: 2, hd: 7, past: [999, 30], cap: 1100 },
  { b: 1, L: 1, Hq: 2, Hkv: 1, hd: 64, past: [1500] }, // one KV head: the keys are split among threads
  { b: 1, L: 1, Hq: 3, Hkv: 3, hd: 5, past: null },
  // prefill
  { b: 1, L: 1000, Hq: 4, Hkv: 4, hd: 16, past: null },
  { b: 1, L: 1000, Hq: 4, Hkv: 1, hd: 13, past: null },
  { b: 2, L: 70, Hq: 8, Hkv: 4, hd: 64, past: null },
  { b: 2, L: 37, Hq: 4, Hkv: 1, hd: 7, past: [100, 3], cap: 140 }, // a prompt continued on a cache
  { b: 1, L: 2, Hq: 2, Hkv: 1, hd: 9, past: [63] },
];

describe('wasm attention = CPU reference', () => {
  let seed = 1800;
  for (const c of CASES) {
    it(name(c), () => {
      seed += 10;
      const d = makeData(c, seed);
      const want = run(cpu, c, d, false);
      // prefill: every tile kernel (attnTiles; the default last, so that the backends are left with it)
      for (const tiles of c.L > 1 ? (['dot', 'fma', 'scoresT'] as const) : (['scoresT'] as const)) {
        const results: Float32Array[] = [];
        for (const threads of [1, 2] as const) {
          wasm[threads].attnTiles = tiles;
          for (const resident of c.past ? [true, false] : [true]) {
            const got = run(wasm[threads], c, d, resident);
            const e = maxAbsDiff(got.y, want.y);
            assert.ok(e <= 2e-5, `${tiles} tiles, ${threads} thread(s), resident cache ${resident}: max |Δ| = ${e}`);
            if (want.cacheK) {
              assert.deepEqual(got.cacheK, want.cacheK, 'keys written into the cache');
              assert.deepEqual(got.cacheV, want.cacheV, 'values written into the cache');
            }
            results.push(got.y);
          }
        }
        // prefill tiles are taken in any order but each is computed the same way: the thread count changes nothing
        if (c.L > 1) assert.deepEqual(results[results.length - 1], results[0], `${tiles} tiles: 1 and 2 threads give identical results`);
      }
    });
  }

  for (const kv of ['f32', 'bf16', 'f16'] as const) {
    it(`prefill then decode on a ${kv} cache grown by padTime (the mixer path): the grown cache stays in wasm memory`, () => {
      const [Hq, Hkv, hd, L] = [4, 2, 32, 300];
      const q = randomArray(L * Hq * hd, 5, 2), k = randomArray(L * Hkv * hd, 6, 2), v = randomArray(L * Hkv * hd, 7);
      const results = ([wasm[2], cpu] as Backend[]).map((b) => {
        const ck = ops.padTime(b.zeros([1, 64, Hkv, hd], kv), 512), cv = ops.padTime(b.zeros([1, 64, Hkv, hd], kv), 512);
        assert.equal(ck.dtype, kv);
        const mk = (a: Float32Array, H: number, t0: number, t1: number) => b.fromHost(a.slice(t0 * H * hd, t1 * H * hd), [1, t1 - t0, H, hd]);
        const at = (t0: number, t1: number) => ops.attention({
          q: mk(q, Hq, t0, t1), k: mk(k, Hkv, t0, t1), v: mk(v, Hkv, t0, t1), cacheK: ck, cacheV: cv, pastLen: [t0], scale: 0.2,
        });
        const pre = b.readSync(at(0, L - 1)), step = b.readSync(at(L - 1, L));
        return { pre, step, shared: (ck.storage as Float32Array | Uint16Array).buffer instanceof SharedArrayBuffer };
      });
      assert.ok(results[0].shared, 'the wasm cache lives in the shared wasm memory');
      assert.ok(maxAbsDiff(results[0].pre, results[1].pre) <= 2e-5, 'prefill');
      assert.ok(maxAbsDiff(results[0].step, results[1].step) <= 2e-5, 'decode step');
    });
  }

  // session 28: the decode loop shapes ('rows', the default: the cache walked position by position; 'heads4': the
  // kernel before; each also with session 30's packed partials, bit for bit the padded ones) — the same results to f32 rounding on every cache format, GQA 1/3/4/5 (5: a query group of 4 and
  // one of 1), head dims with a tail, rows with different pasts, 1 and 2 threads, and both near the reference
  for (const kv of ['f32', 'bf16', 'f16', 'q8'] as const) {
    it(`decode loop shapes 'rows' and 'heads4' agree on a ${kv} cache`, () => {
      const shapes = kv === 'q8' ? [[4, 4, 32], [12, 4, 64], [10, 2, 64]] : [[4, 4, 64], [12, 4, 64], [10, 2, 13], [3, 1, 40]];
      let seed = 4100;
      for (const [Hq, Hkv, hd] of shapes) {
        const c = { b: 2, L: 1, Hq, Hkv, hd, cap: 300, past: [299, 170] };
        const rowKV = Hkv * hd;
        const q = randomArray(c.b * Hq * hd, seed++, 2), k = randomArray(c.b * rowKV, seed++, 2), v = randomArray(c.b * rowKV, seed++);
        const ck = randomArray(c.b * c.cap * rowKV, seed++, 2), cv = randomArray(c.b * c.cap * rowKV, seed++);
        const go = (be: Backend) => {
          const t = (a: Float32Array, shape: number[]) => be.fromHost(a.slice(), shape);
          const cshape = [c.b, c.cap, Hkv, hd];
          const y = ops.attention({
            q: t(q, [c.b, 1, Hq, hd]), k: t(k, [c.b, 1, Hkv, hd]), v: t(v, [c.b, 1, Hkv, hd]),
            cacheK: be.fromHost(ck.slice(), cshape, { kvCache: kv }), cacheV: be.fromHost(cv.slice(), cshape, { kvCache: kv }),
            pastLen: c.past, scale: 1 / Math.sqrt(hd),
          });
          return be.readSync(y).slice();
        };
        const want = go(cpu);
        for (const threads of [1, 2] as const) {
          const be = wasm[threads];
          try {
            be.attnDecode = 'heads4';
            const old = go(be);
            be.attnPad = false;
            const oldPacked = go(be);
            be.attnDecode = 'rows';
            const nowPacked = go(be);
            be.attnPad = true;
            const now = go(be);
            const tag = `Hq=${Hq} Hkv=${Hkv} hd=${hd}, ${threads} thread(s)`;
            // session 30: the scratch layout (partials on lines of their own, or packed) moves memory, not arithmetic
            assert.deepEqual(nowPacked, now, `${tag}: rows, packed vs padded partials`);
            assert.deepEqual(oldPacked, old, `${tag}: heads4, packed vs padded partials`);
            // out = Σ p v (Σ p = 1, |v| ≤ 1): rounding differences scale with the values
            assert.ok(maxAbsDiff(now, old) <= 1e-6, `${tag}: rows vs heads4 max |Δ| = ${maxAbsDiff(now, old)}`);
            // (the reference reads the same rounded cache: within the f32 kernels' tolerance)
            assert.ok(maxAbsDiff(now, want) <= 2e-5, `${tag}: rows vs reference max |Δ| = ${maxAbsDiff(now, want)}`);
          } finally {
            be.attnDecode = 'pipe';
            be.attnPad = true;
          }
        }
      }
    });
  }

  it('attnPad: the option and MAMBA_TS_WASM_ATTN_PAD set it; a bad value is refused with its name', () => {
    assert.equal(new WasmBackend({ threads: 1 }).attnPad, true);
    assert.equal(new WasmBackend({ threads: 1, attnPad: false }).attnPad, false);
    assert.throws(() => new WasmBackend({ threads: 1, attnPad: 'no' as never }), /option "attnPad" must be true or false, got "no"/);
    const saved = process.env.MAMBA_TS_WASM_ATTN_PAD;
    try {
      process.env.MAMBA_TS_WASM_ATTN_PAD = '0';
      assert.equal(new WasmBackend({ threads: 1 }).attnPad, false);
      process.env.MAMBA_TS_WASM_ATTN_PAD = 'off';
      assert.throws(() => new WasmBackend({ threads: 1 }), /MAMBA_TS_WASM_ATTN_PAD must be 0 or 1, got "off"/);
    } finally {
      if (saved === undefined) delete process.env.MAMBA_TS_WASM_ATTN_PAD;
      else process.env.MAMBA_TS_WASM_ATTN_PAD = saved;
    }
  });

  it('attnDecode: a bad option or environment value is refused with its name', () => {
    assert.throws(() => new WasmBackend({ threads: 1, attnDecode: 'cols' as never }), /option "attnDecode" must be 'pipe', 'regs', 'rows' or 'heads4', got cols/);
    const saved = process.env.MAMBA_TS_WASM_ATTN_DECODE;
    try {
      process.env.MAMBA_TS_WASM_ATTN_DECODE = 'heads4';
      assert.equal(new WasmBackend({ threads: 1 }).attnDecode, 'heads4');
      process.env.MAMBA_TS_WASM_ATTN_DECODE = 'x';
      assert.throws(() => new WasmBackend({ threads: 1 }), /MAMBA_TS_WASM_ATTN_DECODE must be 'pipe' or 'regs' or 'rows' or 'heads4', got "x"/);
    } finally {
      if (saved === undefined) delete process.env.MAMBA_TS_WASM_ATTN_DECODE;
      else process.env.MAMBA_TS_WASM_ATTN_DECODE = saved;
    }
  });
});
