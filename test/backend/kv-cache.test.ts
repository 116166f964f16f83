/**
 * KV caches in bf16 / f16 / q8 (the `kvCache` option), op level: the cache tensors (zeros, padTime, takeRows, concatRows,
 * scatterAddRows keep the format; reads decode it), and the attention op on a 16-bit cache — the CPU reference
 * (converts on read) and the wasm kernels (read the 16-bit cache natively) on 1–3 threads, GQA, ragged pastLen,
 * prefill on a cached prefix and decode:
 *  - the wasm kernels equal the CPU reference on the same 16-bit cache to f32 rounding (both read the stored values),
 *    and write the same bits into the cache;
 *  - against an f32 cache, the difference stays under a bound derived from the format's rounding (see `bound`), and
 *    is not zero (the cache really holds 16-bit values).
 * q8 (blocks of 32 values along a position's kv_heads × head_dim, an f32 scale each) the same way, on shapes with
 * head dims 16 (a block spans two heads: the kernels' value-by-value path), 32 and 64 (whole blocks, SIMD): its
 * rounding is absolute, ≤ max|block| / 254 per value, which `bound` takes with u = 1/254.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend, roundToKv } from '../../src/backend/cpu/index.js';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import type { Backend } from '../../src/backend/backend.js';
import * as ops from '../../src/tensor/ops.js';
import { roundToHalf, type KvCacheDType } from '../../src/tensor/dtype.js';
import { LoadOptionError } from '../../src/api/load-options.js';
import { maxAbsDiff, randomArray, type AttentionDims } from '../helpers.js';

const cpu = new CpuBackend();
const wasm = [1, 2, 3].map((threads) => new WasmBackend({ threads }));
/** q8 decode through scratch (the older way; what head dims not a multiple of 32 always run) */
const wasmQ8Scratch = new WasmBackend({ threads: 2, q8KvDecode: 'scratch' });

/** unit roundoff of round-to-nearest-even: half the spacing of the significand (bf16: 8 bits, f16: 11 bits) */
const UNIT: Record<'bf16' | 'f16', number> = { bf16: 2 ** -8, f16: 2 ** -11 };

interface Case extends AttentionDims {
  /** positions already in the cache per row */
  past: number[];
  cap: number;
  /** every 5th key/value one of ±0 and values that are subnormal in f16 (and tiny in bf16) */
  tiny?: boolean;
}

const TINY = [0, -0, 1e-6, -3e-7, 5e-8, -6e-5, 2 ** -24, -(2 ** -20)];

/** q8 cases: kv_heads × head_dim a multiple of 32 */
const Q8_CASES: Case[] = [
  { b: 1, L: 1, Hq: 4, Hkv: 4, hd: 64, past: [0], cap: 64 },
  { b: 2, L: 1, Hq: 8, Hkv: 2, hd: 32, past: [700, 31], cap: 768 }, // decode, GQA 4, ragged
  { b: 1, L: 1, Hq: 2, Hkv: 1, hd: 64, past: [1500], cap: 1536 }, // one KV head: keys split among threads
  { b: 1, L: 1, Hq: 4, Hkv: 2, hd: 16, past: [300], cap: 320, tiny: true }, // decode, hd 16 (a block holds both heads), zeros
  { b: 2, L: 37, Hq: 4, Hkv: 2, hd: 16, past: [100, 3], cap: 160 }, // prefill on a cached prefix, ragged, hd 16
  { b: 1, L: 130, Hq: 6, Hkv: 2, hd: 32, past: [0], cap: 192 }, // prefill from empty, G = 3
  { b: 1, L: 20, Hq: 6, Hkv: 3, hd: 32, past: [90], cap: 128, tiny: true }, // prefill on a prefix, zeros
];

const CASES: Case[] = [
  { b: 1, L: 1, Hq: 4, Hkv: 4, hd: 64, past: [0], cap: 64 },
  { b: 2, L: 1, Hq: 8, Hkv: 2, hd: 13, past: [700, 31], cap: 768 }, // decode, GQA 4, ragged, SIMD tail
  { b: 1, L: 1, Hq: 2, Hkv: 1, hd: 64, past: [1500], cap: 1536 }, // one KV head: keys split among threads
  { b: 2, L: 37, Hq: 4, Hkv: 2, hd: 16, past: [100, 3], cap: 160 }, // prefill on a cached prefix, ragged
  { b: 1, L: 130, Hq: 6, Hkv: 2, hd: 7, past: [0], cap: 192 }, // prefill from empty, G = 3
  { b: 1, L: 1, Hq: 4, Hkv: 2, hd: 16, past: [300], cap: 320, tiny: true }, // zeros and f16 subnormals, decode
  { b: 1, L: 20, Hq: 4, Hkv: 2, hd: 16, past: [90], cap: 128, tiny: true }, // … and prefill
];

function name(c: Case): string {
  return `b=${c.b} L=${c.L} Hq=${c.Hq} Hkv=${c.Hkv} hd=${c.hd} past=[${c.past}]${c.tiny ? ' with zeros and f16 subnormals' : ''}`;
}

interface Data {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  /** the cache's positions before the call (random past keys/values; zero beyond each row's past) */
  ck: Float32Array;
  cv: Float32Array;
}

function makeData(c: Case, seed: number): Data {
  const rowKV = c.Hkv * c.hd;
  const ck = randomArray(c.b * c.cap * rowKV, seed + 3, 2), cv = randomArray(c.b * c.cap * rowKV, seed + 4);
  for (let r = 0; r < c.b; r++) {
    ck.fill(0, (r * c.cap + c.past[r]) * rowKV, (r + 1) * c.cap * rowKV);
    cv.fill(0, (r * c.cap + c.past[r]) * rowKV, (r + 1) * c.cap * rowKV);
  }
  const d = {
    q: randomArray(c.b * c.L * c.Hq * c.hd, seed, 2),
    k: randomArray(c.b * c.L * rowKV, seed + 1, 2),
    v: randomArray(c.b * c.L * rowKV, seed + 2),
    ck, cv,
  };
  if (c.tiny) {
    for (const a of [d.k, d.v]) for (let i = 0; i < a.length; i += 5) a[i] = TINY[Math.floor(i / 5) % TINY.length];
    for (const a of [ck, cv]) {
      for (let r = 0; r < c.b; r++) for (let i = r * c.cap * rowKV; i < (r * c.cap + c.past[r]) * rowKV; i += 5) a[i] = TINY[Math.floor(i / 5) % TINY.length];
    }
  }
  return d;
}

/** attention with a cache of format `kv` made by the backend (fromHost), the output and the cache read back */
function run(be: Backend, c: Case, d: Data, kv: KvCacheDType): { y: Float32Array; ck: Float32Array; cv: Float32Array; dtype: string } {
  const t = (a: Float32Array, shape: number[]) => be.fromHost(a.slice(), shape);
  const cshape = [c.b, c.cap, c.Hkv, c.hd];
  const cacheK = be.fromHost(d.ck.slice(), cshape, { kvCache: kv }), cacheV = be.fromHost(d.cv.slice(), cshape, { kvCache: kv });
  const y = ops.attention({
    q: t(d.q, [c.b, c.L, c.Hq, c.hd]), k: t(d.k, [c.b, c.L, c.Hkv, c.hd]), v: t(d.v, [c.b, c.L, c.Hkv, c.hd]),
    cacheK, cacheV, pastLen: c.past, scale: 1 / Math.sqrt(c.hd),
  });
  return { y: be.readSync(y), ck: be.readSync(cacheK), cv: be.readSync(cacheV), dtype: cacheK.dtype };
}

/**
 * The largest change of an output that rounding every key and value to relative error ≤ u can make: a score
 * s = scale · q·k moves by ≤ u · scale · Σ|q_i k_i| =: δ (≤ δmax over the query's keys); softmax weights then move by
 * Σ_j |Δp_j| ≤ 2δmax (to first order: Δp_j = p_j (Δs_j − Σ p Δs)), and o = Σ p_j v_j by ≤ max|v| · (2δmax + u) (the
 * values' own rounding adds u · max|v|). Taken over all queries with the largest |q|·|k| sums, times 1.5 for the
 * second-order terms and f32 rounding.
 */
function bound(c: Case, d: Data, u: number): number {
  const scale = 1 / Math.sqrt(c.hd);
  const absSum = (a: Float32Array, off: number) => {
    let s = 0;
    for (let i = 0; i < c.hd; i++) s = Math.max(s, Math.abs(a[off + i]));
    return s;
  };
  let qMax = 0, kMax = 0, vMax = 0;
  for (let i = 0; i < d.q.length; i += c.hd) qMax = Math.max(qMax, absSum(d.q, i));
  for (const a of [d.k, d.ck]) for (let i = 0; i < a.length; i += c.hd) kMax = Math.max(kMax, absSum(a, i));
  for (const a of [d.v, d.cv]) for (let i = 0; i < a.length; i++) vMax = Math.max(vMax, Math.abs(a[i]));
  const delta = u * scale * c.hd * qMax * kMax;
  return 1.5 * vMax * (2 * delta + u);
}

describe('KV cache tensors in bf16 / f16', () => {
  for (const be of [cpu, wasm[1]]) {
    for (const kv of ['bf16', 'f16'] as const) {
      it(`${be.name}, ${kv}: zeros, padTime, takeRows, concatRows and scatterAddRows keep the format; reads decode it`, () => {
        const z = be.zeros([2, 4, 1, 3], kv);
        assert.equal(z.dtype, kv);
        assert.deepEqual([...be.readSync(z)], new Array(24).fill(0));
        const vals = randomArray(24, 77, 3);
        const t = be.fromHost(vals.slice(), [2, 4, 1, 3], { kvCache: kv });
        const want = roundToHalf(vals, kv);
        assert.deepEqual(be.readSync(t), want, 'values stored round-to-nearest-even');
        assert.ok(maxAbsDiff(want, vals) > 0, 'the values are rounded');
        const grown = ops.padTime(t, 6);
        assert.equal(grown.dtype, kv);
        const g = be.readSync(grown);
        for (let r = 0; r < 2; r++) {
          assert.deepEqual(g.subarray(r * 18, r * 18 + 12), want.subarray(r * 12, r * 12 + 12), `row ${r} kept`);
          assert.deepEqual([...g.subarray(r * 18 + 12, r * 18 + 18)], new Array(6).fill(0), `row ${r} padded with zeros`);
        }
        const taken = ops.takeRows(t, [1, 0]);
        assert.equal(taken.dtype, kv);
        assert.deepEqual(be.readSync(taken), Float32Array.from([...want.subarray(12), ...want.subarray(0, 12)]));
        const cat = ops.concatRows([t, taken]);
        assert.equal(cat.dtype, kv);
        assert.deepEqual(be.readSync(cat).subarray(0, 24), want);
        assert.throws(() => ops.concatRows([t, be.zeros([2, 4, 1, 3])]), /dtypes differ: .* vs f32/);
        // a row cleared by subtracting itself, then set to another row's values: exactly those values
        ops.scatterAddRows(t, Int32Array.from([0, 1, 2, 3]), ops.takeRows(t, [0]), new Float32Array(4).fill(-1));
        assert.deepEqual([...be.readSync(t).subarray(0, 12)], new Array(12).fill(0));
        ops.scatterAddRows(t, Int32Array.from([0, 1, 2, 3]), ops.takeRows(taken, [0]), new Float32Array(4).fill(1));
        assert.deepEqual(be.readSync(t).subarray(0, 12), want.subarray(12));
      });
    }
  }

  it('a format the backend does not take is a LoadOptionError listing the options', () => {
    assert.throws(() => cpu.zeros([1, 2], 'q4' as KvCacheDType), (e: Error) => e instanceof LoadOptionError && /^cpu\.zeros: option "kvCache" must be one of "f32", "bf16", "f16", "q8", got "q4"$/.test(e.message));
  });
});

describe('KV cache tensors in q8', () => {
  for (const be of [cpu, wasm[1]]) {
    it(`${be.name}: stored as q · scale per block of 32; zeros, padTime, takeRows, concatRows and scatterAddRows keep the format`, () => {
      const shape = [2, 4, 2, 16]; // 32 values per position: one block, spanning both heads
      const z = be.zeros(shape, 'q8');
      assert.equal(z.dtype, 'q8');
      assert.equal((z.storage as Uint8Array).byteLength, (256 / 32) * 36, '36 bytes per block of 32');
      assert.deepEqual([...be.readSync(z)], new Array(256).fill(0));
      const vals = randomArray(256, 77, 3);
      for (let i = 64; i < 96; i++) vals[i] = 0; // a block of zeros: scale 0
      const t = be.fromHost(vals.slice(), shape, { kvCache: 'q8' });
      const want = roundToKv(vals, 'q8');
      assert.deepEqual(be.readSync(t), want, 'the values stored');
      for (let blk = 0; blk < 8; blk++) {
        let amax = 0, err = 0;
        for (let i = blk * 32; i < blk * 32 + 32; i++) amax = Math.max(amax, Math.abs(vals[i]));
        for (let i = blk * 32; i < blk * 32 + 32; i++) err = Math.max(err, Math.abs(want[i] - vals[i]));
        assert.ok(err <= amax / 254 * (1 + 1e-6), `block ${blk}: |Δ| ${err} <= max|v| / 254 = ${amax / 254}`);
        // the largest value of the block is stored as ±127 · scale: itself to f32 rounding
        if (amax > 0) assert.ok(Math.max(...want.subarray(blk * 32, blk * 32 + 32).map(Math.abs)) >= amax * (1 - 1e-6));
      }
      assert.ok(maxAbsDiff(want, vals) > 0, 'the values are rounded');
      const grown = ops.padTime(t, 6);
      assert.equal(grown.dtype, 'q8');
      const g = be.readSync(grown);
      for (let r = 0; r < 2; r++) {
        assert.deepEqual(g.subarray(r * 192, r * 192 + 128), want.subarray(r * 128, r * 128 + 128), `row ${r} kept`);
        assert.deepEqual([...g.subarray(r * 192 + 128, r * 192 + 192)], new Array(64).fill(0), `row ${r} padded with zeros`);
      }
      const taken = ops.takeRows(t, [1, 0]);
      assert.equal(taken.dtype, 'q8');
      assert.deepEqual(be.readSync(taken), Float32Array.from([...want.subarray(128), ...want.subarray(0, 128)]));
      const cat = ops.concatRows([t, taken]);
      assert.equal(cat.dtype, 'q8');
      assert.deepEqual(be.readSync(cat), Float32Array.from([...want, ...want.subarray(128), ...want.subarray(0, 128)]));
      assert.throws(() => ops.concatRows([t, be.zeros(shape, 'bf16')]), /dtypes differ: q8 vs bf16/);
      // rows of 16 values (one head) are half a block: the block is quantized again with the other half
      const half = be.fromHost(vals.slice(0, 64), [2, 1, 2, 16], { kvCache: 'q8' }); // rows of the last dim: one head
      ops.scatterAddRows(half, Int32Array.from([0]), be.fromHost(be.readSync(half).slice(0, 16), [1, 16]), Float32Array.from([-1]));
      const h = be.readSync(half), w2 = roundToKv(Float32Array.from([...new Array(16).fill(0), ...want.subarray(16, 64)]), 'q8');
      assert.deepEqual(h, w2, 'row 0 cleared, its block requantized with row 1 alone');
      assert.deepEqual([...h.subarray(0, 16)], new Array(16).fill(0));
      assert.ok(maxAbsDiff(h.subarray(16, 32), want.subarray(16, 32)) <= Math.max(...vals.subarray(16, 32).map(Math.abs)) / 127, 'row 1 kept to its rounding');
      assert.deepEqual(h.subarray(32), want.subarray(32, 64), 'the other block untouched');
      const flat = be.fromHost(vals.slice(), [8, 32], { kvCache: 'q8' });
      ops.scatterAddRows(flat, Int32Array.from([0]), ops.takeRows(flat, [0]), Float32Array.from([-1]));
      assert.deepEqual([...be.readSync(flat).subarray(0, 32)], new Array(32).fill(0), 'a row minus itself');
      ops.scatterAddRows(flat, Int32Array.from([0]), ops.takeRows(flat, [1]), Float32Array.from([1]));
      assert.deepEqual(be.readSync(flat).subarray(0, 32), want.subarray(32, 64), 'a row set to another (requantized: the same q and scale)');
    });
  }

  it('a head dim that does not fill blocks of 32 is refused, naming the option and the head dim', () => {
    for (const be of [cpu, wasm[1]]) {
      assert.throws(() => be.zeros([1, 4, 3, 12], 'q8'), (e: Error) => e instanceof LoadOptionError &&
        new RegExp(`^${be.name.replace(/[()]/g, '\\$&')}\\.zeros: option "kvCache" 'q8' stores blocks of 32 values along each position's keys, so kv_heads × head_dim must be a multiple of 32; this cache has head dim 12 \\(× 3 kv heads = 36\\): use 'bf16' or 'f16'$`).test(e.message), be.name);
      assert.throws(() => be.fromHost(new Float32Array(48), [1, 1, 1, 48], { kvCache: 'q8' }), /option "kvCache" 'q8' .* head dim 48/);
      assert.equal(be.zeros([1, 4, 2, 16], 'q8').dtype, 'q8', 'head dim 16 with 2 kv heads: whole blocks');
    }
  });
});

describe('attention on a q8 KV cache: wasm kernels = CPU reference (<= 1e-5); vs f32 within the rounding bound', () => {
  let seed = 7100;
  for (const c of Q8_CASES) {
    it(`q8: ${name(c)}`, () => {
      seed += 10;
      const d = makeData(c, seed);
      const exact = run(cpu, c, d, 'f32');
      const want = run(cpu, c, d, 'q8');
      assert.equal(want.dtype, 'q8');
      const rowKV = c.Hkv * c.hd;
      const full = { k: d.ck.slice(), v: d.cv.slice() };
      for (let r = 0; r < c.b; r++) {
        full.k.set(d.k.subarray(r * c.L * rowKV, (r + 1) * c.L * rowKV), (r * c.cap + c.past[r]) * rowKV);
        full.v.set(d.v.subarray(r * c.L * rowKV, (r + 1) * c.L * rowKV), (r * c.cap + c.past[r]) * rowKV);
      }
      assert.deepEqual(want.ck, roundToKv(full.k, 'q8'), 'reference: keys in the cache');
      assert.deepEqual(want.cv, roundToKv(full.v, 'q8'), 'reference: values in the cache');
      const e8 = maxAbsDiff(want.y, exact.y);
      const lim = bound(c, d, 1 / 254);
      assert.ok(e8 > 0 && e8 <= lim, `q8 cache vs f32 cache: max |Δ| = ${e8}, bound ${lim}`);
      for (const be of [...wasm, wasmQ8Scratch]) {
        const got = run(be, c, d, 'q8');
        assert.equal(got.dtype, 'q8');
        const e = maxAbsDiff(got.y, want.y);
        assert.ok(e <= 1e-5, `${be.name}${be === wasmQ8Scratch ? ' (q8 through scratch)' : ''}: max |Δ| against the reference on the same q8 cache = ${e}`);
        assert.deepEqual(got.ck, want.ck, `${be.name}: keys written into the cache`);
        assert.deepEqual(got.cv, want.cv, `${be.name}: values written into the cache`);
      }
    });
  }
});

describe('attention on a bf16 / f16 KV cache: wasm kernels = CPU reference; vs f32 within the rounding bound', () => {
  let seed = 4100;
  for (const c of CASES) {
    for (const kv of ['bf16', 'f16'] as const) {
      it(`${kv}: ${name(c)}`, () => {
        seed += 10;
        const d = makeData(c, seed);
        const exact = run(cpu, c, d, 'f32');
        const want = run(cpu, c, d, kv);
        assert.equal(want.dtype, kv);
        // the cache holds the old positions and the new k/v, rounded to the format
        const rowKV = c.Hkv * c.hd;
        const full = { k: d.ck.slice(), v: d.cv.slice() };
        for (let r = 0; r < c.b; r++) {
          full.k.set(d.k.subarray(r * c.L * rowKV, (r + 1) * c.L * rowKV), (r * c.cap + c.past[r]) * rowKV);
          full.v.set(d.v.subarray(r * c.L * rowKV, (r + 1) * c.L * rowKV), (r * c.cap + c.past[r]) * rowKV);
        }
        assert.deepEqual(want.ck, roundToHalf(full.k, kv), 'reference: keys in the cache');
        assert.deepEqual(want.cv, roundToHalf(full.v, kv), 'reference: values in the cache');
        const e16 = maxAbsDiff(want.y, exact.y);
        const lim = bound(c, d, UNIT[kv]);
        assert.ok(e16 > 0 && e16 <= lim, `${kv} cache vs f32 cache: max |Δ| = ${e16}, bound ${lim}`);
        for (const be of wasm) {
          const got = run(be, c, d, kv);
          assert.equal(got.dtype, kv);
          const e = maxAbsDiff(got.y, want.y);
          assert.ok(e <= 2e-5, `${be.name}: max |Δ| against the reference on the same ${kv} cache = ${e}`);
          assert.deepEqual(got.ck, want.ck, `${be.name}: keys written into the cache`);
          assert.deepEqual(got.cv, want.cv, `${be.name}: values written into the cache`);
        }
      });
    }
  }

  it('f16/bf16 zeros and subnormals are read as stored: tiny keys under large queries, tiny values under uniform weights', () => {
    // keys of f16-subnormal size under queries of ~1e4 give scores of order 1, so a key read wrongly moves the softmax;
    // then all-zero keys (uniform weights) and tiny values: the output is their mean, compared relatively
    const c: Case = { b: 1, L: 1, Hq: 2, Hkv: 1, hd: 8, past: [95], cap: 96 };
    const n = c.cap * c.hd;
    const signs = randomArray(n, 9);
    const tinyOf = (i: number) => TINY[i % TINY.length] * (signs[i] < 0 ? -1 : 1) * (1 + (i % 3));
    const keysCase = { q: randomArray(c.Hq * c.hd, 8, 2e4), k: Float32Array.from({ length: c.hd }, (_, i) => tinyOf(i + n)), v: randomArray(c.hd, 10),
      ck: Float32Array.from({ length: n }, (_, i) => tinyOf(i)), cv: randomArray(n, 11) };
    const valuesCase = { q: randomArray(c.Hq * c.hd, 8), k: new Float32Array(c.hd), v: Float32Array.from({ length: c.hd }, (_, i) => tinyOf(i + n)),
      ck: new Float32Array(n), cv: Float32Array.from({ length: n }, (_, i) => tinyOf(i)) };
    for (const kv of ['bf16', 'f16'] as const) {
      for (const [label, d] of [['keys', keysCase], ['values', valuesCase]] as const) {
        const want = run(cpu, c, d, kv);
        const scale = Math.max(...want.y.map(Math.abs));
        assert.ok(scale > 0, `${kv} ${label}: a non-zero output`);
        for (const be of wasm) {
          const got = run(be, c, d, kv);
          const e = maxAbsDiff(got.y, want.y) / scale;
          assert.ok(e <= 1e-5, `${kv} ${label}, ${be.name}: max |Δ| / max |y| = ${e}`);
        }
      }
    }
  });
});
