// Causal grouped-query attention, f32, 128-bit SIMD, as team kernels (team.ts). Oracle: `attention` in
// src/backend/cpu/kernels.ts (softmax(q kᵀ · scale + causal mask) v; query head h reads KV head ⌊h / G⌋, G = Hq / Hkv).
//
// Layouts (byte offsets; f32): q, out [b, L, Hq, hd]; keys/values K, V [b, cap, Hkv, hd] (the KV cache with the new
// positions already written, or the new k/v themselves with cap = L); past: i32 [b], the positions before the
// first query of each row (query t of row r sits at position past[r] + t and reads keys 0 … past[r] + t).
// Softmax is online (running max m, sum l, rescaled accumulator; Milakov & Gimelshein 2018, FlashAttention): no
// score matrix larger than one tile exists.
//
//   attention_decode   one query per row (L = 1). Work items: (row, split of the keys); each item streams its keys'
//                      rows (all KV heads) block by block, reads each head's keys and values once for all G query
//                      heads of the group, and leaves a partial (acc, m, l) per query head; after a barrier the
//                      splits of each (row, query head) are merged by their log-sum-exp. Loop shape 'rows' (default,
//                      session 28): within a block, K then V are walked position by position, head after head, by one
//                      copy of the dot / axpy loop, so every load instruction streams the cache start to end (the
//                      old 'heads4' shape — per head, 4 key rows per step, each load instruction jumping 4 rows and
//                      between heads — ran at half the memory rate; BENCHMARKS.md, issue 18 attention decode).
//                      Session 33: 'pipe' (default) runs 'rows' software-pipelined across blocks (block b + 1's
//                      scores and block b's values in one loop per key row: K and V streamed side by side), and under
//                      GQA 'regs' ('rows' with each query head's values' accumulator in registers across a block);
//                      both the same bits as 'rows' where it runs its own code (16-bit GQA: 'rows' runs heads4).
//   attention_prefill  flash-style tiles: items (row, KV head, query tile of BQ positions) taken from a shared
//                      counter, longest first. The tile's rows are the G heads × BQ positions (so a K/V tile is
//                      packed once for the whole group); S = Q Kᵀ and O += P V run on linear_f32's GEMM tiles
//                      (linear.ts) on packed K and transposed V tiles.
//
// KV cache formats (fmt): 0 f32; 1 bf16, 2 f16 (u16 per value, the layouts above with 2-byte elements), converted to
// f32 exactly (weights.ts's conversions) as they are read: decode reads keys and values straight from the cache (the
// block code is generic over the element type W: f32, u16 = bf16, i16 = f16); prefill converts the K/V tile it packs
// anyway. The cache streams half the bytes.
// fmt 3: q8 (src/backend/wasm/q8.ts): a position's row of Hkv · hd values (a multiple of 32) in blocks of 32, each
// [f32 scale, 32 × int8] = 36 bytes; with hd a multiple of 32 every block lies in one head (along the head dim), with
// hd = 8 or 16 a block holds 32 / hd heads. Decode (hd a multiple of 32) reads the blocks in place (decodeBlockQ8:
// int8 widened in registers, scores q · (q8 · scale), values (p · scale) · q8); fmt 4, the same cache read another
// way (any such hd; the JS side picks it for hd not a multiple of 32, or when asked): each block of ≤ DBK keys of a
// head dequantized into per-thread scratch and the f32 block code run on it (in L1). Prefill converts the tiles it
// packs. The cache streams 1.125 bytes per value.

import { gemm_nt_f32_fma, linear_f32 } from './linear';
import { ldz, madd, stc, vexp } from './simd';
import { sliceHi, sliceLo, teamBarrier } from './team';
import { hsum, hsum4, pfChunk, touchPart } from './linear_common';
import { bfHi, bfLo, f16HiRaw, f16LoRaw, q8x32, w4, wScalar } from './weights';

/** keys per block of the decode kernel */
const DBK: i32 = 32;
/** bytes of a q8 cache block (f32 scale, 32 int8) */
const Q8B: usize = 36;

/** byte offset of value index e (q8: of its block; e a multiple of 32 there) in a cache of format fmt */
// @ts-ignore: decorator
@inline function kvByte(fmt: i32, e: usize): usize {
  if (fmt == 3) return (e >> 5) * Q8B;
  return fmt ? e << 1 : e << 2;
}

// @ts-ignore: decorator
@inline function f4(p: usize, i: i32): usize {
  return p + (<usize>i << 2);
}

/**
 * 4 f16 values at p as f32x4: exponent and mantissa moved into place (<< 13) and scaled by 2^112 in one multiply
 * (exact: normal halves become normal floats, subnormal ones — f32 denormals before the multiply, rare in a KV cache —
 * too), the sign put back. Half the operations of weights.ts's f16LoX, which avoids denormals at any cost. Finite
 * halves only: ±inf (an f16 cache's overflow, |x| > 65504) reads as ±65536.
 */
// @ts-ignore: decorator
@inline function f16x4(p: usize): v128 {
  return f16i32(v128.load16x4_u(p));
}

/** f16 lanes of an i32x4 (each < 2^16) as f32x4 (see f16x4) */
// @ts-ignore: decorator
@inline function f16i32(h: v128): v128 {
  const mag = f32x4.mul(i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13), f32x4.splat(5.192296858534828e33));
  return v128.or(mag, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

/** 2^112: f16LoRaw / f16HiRaw's values times this are the f16 values (exactly) */
const F16_RAW_SCALE: f32 = 5.192296858534828e33;

// f16 decode reads (session 34, WasmBackendOptions.f16KvDecode): W = i16 converts 8 halves loaded at once with
// f16LoRaw / f16HiRaw (weights.ts: a shift, a shift and a mask for the 8, then one interleave per 4 → x · 2^-112) and
// the values' passes fold the 2^112 into their weight p (axpyW, axpyG, acc32W, acc8W: p · 2^112 once per key instead
// of a multiply per 4 values); W = i32 marks the conversion of before ('widen': each 4 widened to i32, masked,
// shifted, multiplied by 2^112, the sign masked, shifted and put back: twice the operations). Both exact: the same
// f32 values, the same products (p · 2^112 · x · 2^-112 rounds as p · x: p ≤ 1, no overflow or underflow of the
// factor), the same bits.

/** W marks an f16 cache (i16: the 'shift' conversion, i32: the 'widen' one of before) */
// @ts-ignore: decorator
@inline function isF16W<W>(): bool {
  return isInteger<W>() && isSigned<W>();
}
/** W is the 'shift' f16 conversion (the values' passes fold 2^112 into p) */
// @ts-ignore: decorator
@inline function rawF16<W>(): bool {
  return isF16W<W>() && sizeof<W>() == 2;
}

// 16-bit cache values 0-3 / 4-7 of raw = 8 values loaded at once (W: u16 = bf16, i16 / i32 = f16) as f32x4
// @ts-ignore: decorator
@inline function lo8<W>(raw: v128): v128 {
  if (rawF16<W>()) return f32x4.mul(f16LoRaw(raw), f32x4.splat(F16_RAW_SCALE));
  if (isSigned<W>()) return f16i32(i32x4.extend_low_i16x8_u(raw));
  return bfLo(raw);
}
// @ts-ignore: decorator
@inline function hi8<W>(raw: v128): v128 {
  if (rawF16<W>()) return f32x4.mul(f16HiRaw(raw), f32x4.splat(F16_RAW_SCALE));
  if (isSigned<W>()) return f16i32(i32x4.extend_high_i16x8_u(raw));
  return bfHi(raw);
}
/** lo8 / hi8 for a values' pass: for the 'shift' f16 conversion x · 2^-112 (the caller's p carries the 2^112) */
// @ts-ignore: decorator
@inline function lo8v<W>(raw: v128): v128 {
  if (rawF16<W>()) return f16LoRaw(raw);
  return lo8<W>(raw);
}
// @ts-ignore: decorator
@inline function hi8v<W>(raw: v128): v128 {
  if (rawF16<W>()) return f16HiRaw(raw);
  return hi8<W>(raw);
}
/** a values' pass's weight p (splat) for lo8v / hi8v: p · 2^112 for the 'shift' f16 conversion (exact), else p */
// @ts-ignore: decorator
@inline function pv8<W>(pv: v128): v128 {
  if (rawF16<W>()) return f32x4.mul(pv, f32x4.splat(F16_RAW_SCALE));
  return pv;
}

/** 4 cache values at element i of p (W: f32, u16 = bf16, i16 = f16) as f32x4 */
// @ts-ignore: decorator
@inline function ldW<W>(p: usize, i: i32): v128 {
  if (isFloat<W>()) return v128.load(p + (<usize>i << 2));
  if (isInteger<W>() && isSigned<W>()) return f16x4(p + (<usize>i << 1));
  return w4<W>(p + (<usize>i << 1));
}

/** lanes [0, c) of ldW, zeros in the others */
// @ts-ignore: decorator
@inline function ldzW<W>(p: usize, i: i32, c: i32): v128 {
  if (isFloat<W>()) return ldz(p + (<usize>i << 2), c);
  if (c >= 4) return w4<W>(p + (<usize>i << 1));
  const e = p + (<usize>i << 1);
  let v = f32x4.splat(0);
  v = f32x4.replace_lane(v, 0, wScalar<W>(e));
  if (c > 1) v = f32x4.replace_lane(v, 1, wScalar<W>(e + 2));
  if (c > 2) v = f32x4.replace_lane(v, 2, wScalar<W>(e + 4));
  return v;
}

/** dot(a, b) over n values, a f32, b of the cache's type W (any n; tails with zero lanes) */
// @ts-ignore: decorator
@inline function dotW<W>(a: usize, b: usize, n: i32): f32 {
  if (isFloat<W>()) return dot(a, b, n);
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
  let k = 0;
  for (; k + 8 <= n; k += 8) {
    a0 = f32x4.add(a0, f32x4.mul(v128.load(f4(a, k)), ldW<W>(b, k)));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(f4(a, k + 4)), ldW<W>(b, k + 4)));
  }
  for (; k < n; k += 4) {
    const c = min(4, n - k);
    a0 = f32x4.add(a0, f32x4.mul(ldz(f4(a, k), c), ldzW<W>(b, k, c)));
  }
  return hsum(f32x4.add(a0, a1));
}

/** [dot(a, b0), …, dot(a, b3)] over n values for the 4 rows b0 = b, b + rowB, … of the cache's type W (any n) */
// @ts-ignore: decorator
@inline function dot4W<W>(a: usize, b: usize, rowB: usize, n: i32): v128 {
  if (isFloat<W>()) return dot4(a, b, rowB, n);
  const b1 = b + rowB, b2 = b1 + rowB, b3 = b2 + rowB;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let k = 0;
  // eight values of each row per load, widened in registers
  for (; k + 8 <= n; k += 8) {
    const x0 = v128.load(f4(a, k)), x1 = v128.load(f4(a, k + 4));
    const o = <usize>k << 1;
    const r0 = v128.load(b + o), r1 = v128.load(b1 + o), r2 = v128.load(b2 + o), r3 = v128.load(b3 + o);
    a0 = f32x4.add(a0, f32x4.add(f32x4.mul(x0, lo8<W>(r0)), f32x4.mul(x1, hi8<W>(r0))));
    a1 = f32x4.add(a1, f32x4.add(f32x4.mul(x0, lo8<W>(r1)), f32x4.mul(x1, hi8<W>(r1))));
    a2 = f32x4.add(a2, f32x4.add(f32x4.mul(x0, lo8<W>(r2)), f32x4.mul(x1, hi8<W>(r2))));
    a3 = f32x4.add(a3, f32x4.add(f32x4.mul(x0, lo8<W>(r3)), f32x4.mul(x1, hi8<W>(r3))));
  }
  for (; k + 4 <= n; k += 4) {
    const x = v128.load(f4(a, k));
    a0 = f32x4.add(a0, f32x4.mul(x, ldW<W>(b, k)));
    a1 = f32x4.add(a1, f32x4.mul(x, ldW<W>(b1, k)));
    a2 = f32x4.add(a2, f32x4.mul(x, ldW<W>(b2, k)));
    a3 = f32x4.add(a3, f32x4.mul(x, ldW<W>(b3, k)));
  }
  if (k < n) {
    const c = n - k;
    const x = ldz(f4(a, k), c);
    a0 = f32x4.add(a0, f32x4.mul(x, ldzW<W>(b, k, c)));
    a1 = f32x4.add(a1, f32x4.mul(x, ldzW<W>(b1, k, c)));
    a2 = f32x4.add(a2, f32x4.mul(x, ldzW<W>(b2, k, c)));
    a3 = f32x4.add(a3, f32x4.mul(x, ldzW<W>(b3, k, c)));
  }
  return hsum4(a0, a1, a2, a3);
}

/** dot(a, b) over n floats (any n; tails loaded with zero lanes) */
// @ts-ignore: decorator
@inline function dot(a: usize, b: usize, n: i32): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let k = 0;
  for (; k + 16 <= n; k += 16) {
    const o = <usize>k << 2;
    a0 = f32x4.add(a0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(a + o, 16), v128.load(b + o, 16)));
    a2 = f32x4.add(a2, f32x4.mul(v128.load(a + o, 32), v128.load(b + o, 32)));
    a3 = f32x4.add(a3, f32x4.mul(v128.load(a + o, 48), v128.load(b + o, 48)));
  }
  for (; k < n; k += 4) {
    const c = min(4, n - k);
    a0 = f32x4.add(a0, f32x4.mul(ldz(f4(a, k), c), ldz(f4(b, k), c)));
  }
  return hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
}

/** [dot(a, b0), …, dot(a, b3)] over n floats for the 4 rows b0 = b, b + rowB, … (any n) */
// @ts-ignore: decorator
@inline function dot4(a: usize, b: usize, rowB: usize, n: i32): v128 {
  const b1 = b + rowB, b2 = b1 + rowB, b3 = b2 + rowB;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let k = 0;
  for (; k + 4 <= n; k += 4) {
    const o = <usize>k << 2;
    const x = v128.load(a + o);
    a0 = f32x4.add(a0, f32x4.mul(x, v128.load(b + o)));
    a1 = f32x4.add(a1, f32x4.mul(x, v128.load(b1 + o)));
    a2 = f32x4.add(a2, f32x4.mul(x, v128.load(b2 + o)));
    a3 = f32x4.add(a3, f32x4.mul(x, v128.load(b3 + o)));
  }
  if (k < n) {
    const c = n - k;
    const o = <usize>k << 2;
    const x = ldz(a + o, c);
    a0 = f32x4.add(a0, f32x4.mul(x, ldz(b + o, c)));
    a1 = f32x4.add(a1, f32x4.mul(x, ldz(b1 + o, c)));
    a2 = f32x4.add(a2, f32x4.mul(x, ldz(b2 + o, c)));
    a3 = f32x4.add(a3, f32x4.mul(x, ldz(b3 + o, c)));
  }
  return hsum4(a0, a1, a2, a3);
}

/** max of p[0, n) (n ≥ 1) */
function rowMax(p: usize, n: i32): f32 {
  let m = f32x4.splat(-Infinity);
  let k = 0;
  for (; k + 4 <= n; k += 4) m = f32x4.max(m, v128.load(f4(p, k)));
  let r = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
  for (; k < n; k++) r = max(r, load<f32>(f4(p, k)));
  return r;
}

/** p[j] ← exp(p[j] − m) for j < n, 0 for n ≤ j < total; returns Σ p */
function expRow(p: usize, n: i32, total: i32, m: f32): f32 {
  const mv = f32x4.splat(m);
  let s = f32x4.splat(0);
  let k = 0;
  for (; k + 4 <= n; k += 4) {
    const e = vexp(f32x4.sub(v128.load(f4(p, k)), mv));
    v128.store(f4(p, k), e);
    s = f32x4.add(s, e);
  }
  let r = hsum(s);
  for (; k < n; k++) {
    const e = f32x4.extract_lane(vexp(f32x4.splat(load<f32>(f4(p, k)) - m)), 0);
    store<f32>(f4(p, k), e);
    r += e;
  }
  for (; k < total; k++) store<f32>(f4(p, k), 0);
  return r;
}

/** a[0, n) ← a · c */
function scaleRow(a: usize, n: i32, c: f32): void {
  const cv = f32x4.splat(c);
  for (let k = 0; k < n; k += 4) {
    const w = min(4, n - k);
    stc(f4(a, k), f32x4.mul(ldz(f4(a, k), w), cv), w);
  }
}

/**
 * The online softmax's step for one block of scores p[0, n) (total ≥ n slots): m' = max(m, max p); p[j] ← exp(p[j] − m'),
 * 0 for n ≤ j < total; at mp m ← m', at lp l ← l · e^(m − m') + Σ p; acc[0, hd) ← acc · e^(m − m') (the factor is 0 on
 * the first block, m = −∞; 1 leaves acc as it is)
 */
// @ts-ignore: decorator
@inline function foldScores(p: usize, n: i32, total: i32, mp: usize, lp: usize, acc: usize, hd: i32): void {
  const m = load<f32>(mp);
  const mNew = max(m, rowMax(p, n));
  const corr = Mathf.exp(m - mNew);
  const sum = expRow(p, n, total, mNew);
  store<f32>(mp, mNew);
  store<f32>(lp, load<f32>(lp) * corr + sum);
  if (corr != 1) scaleRow(acc, hd, corr);
}

/** rows × hd values of a 16-bit cache (fmt 1 bf16, 2 f16; rows strideB bytes apart from src) as f32 rows [rows, hd] at dst */
function unpackKV(fmt: i32, src: usize, strideB: usize, rows: i32, hd: i32, dst: usize): void {
  if (fmt == 1) unpackKVRows<u16>(src, strideB, rows, hd, dst);
  else unpackKVRows<i16>(src, strideB, rows, hd, dst);
}

/**
 * values [e0, e0 + n) of `rows` q8 cache rows (src: the first row's blocks, rows strideB bytes apart) as f32 rows
 * [rows, n] at dst: whole blocks (e0, n multiples of 32) with SIMD, other ranges (a head inside a block) value by
 * value; both q · scale as one f32 multiply.
 */
function unpackQ8Rows(src: usize, e0: i32, strideB: usize, rows: i32, n: i32, dst: usize): void {
  const whole = ((e0 | n) & 31) == 0;
  for (let j = 0; j < rows; j++) {
    const s = src + <usize>j * strideB;
    const d = dst + ((<usize>j * n) << 2);
    if (whole) {
      for (let c = 0; c < n >> 5; c++) {
        const blk = s + <usize>((e0 >> 5) + c) * Q8B;
        q8x32(blk + 4, v128.load32_splat(blk), d + (<usize>c << 7));
      }
    } else {
      for (let i = 0; i < n; i++) {
        const e = e0 + i;
        const blk = s + <usize>(e >> 5) * Q8B;
        store<f32>(f4(d, i), <f32>load<i8>(blk + 4 + <usize>(e & 31)) * load<f32>(blk));
      }
    }
  }
}

// @ts-ignore: decorator
@inline function unpackKVRows<W>(src: usize, strideB: usize, rows: i32, hd: i32, dst: usize): void {
  for (let j = 0; j < rows; j++) {
    const s = src + <usize>j * strideB;
    const d = dst + ((<usize>j * hd) << 2);
    let i = 0;
    for (; i + 8 <= hd; i += 8) {
      const raw = v128.load(s + (<usize>i << 1));
      v128.store(f4(d, i), lo8<W>(raw));
      v128.store(f4(d, i + 4), hi8<W>(raw));
    }
    for (; i < hd; i += 4) stc(f4(d, i), ldzW<W>(s, i, min(4, hd - i)), min(4, hd - i));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// decode

/**
 * One block of a decode item: keys [j0, j0 + bk) of one KV head (rows at k0/v0, stride rowB bytes; values of type W,
 * see the top) for the G query heads at qp (hd apart), folded into their running partials at part (per head: acc
 * [hd], m, l; headB bytes apart). sc: scratch of G · DBK floats.
 */
// @ts-ignore: decorator
@inline function decodeBlock<W>(qp: usize, k0: usize, v0: usize, rowB: usize, j0: i32, bk: i32, G: i32, hd: i32, scale: f32, sc: usize, part: usize, headB: usize): void {
  const ps = headB;
  // scores of the block, scaled: sc[i · DBK + jj]
  let jj = 0;
  for (; jj + 4 <= bk; jj += 4) {
    const kp = k0 + <usize>(j0 + jj) * rowB;
    for (let i = 0; i < G; i++) v128.store(f4(sc, i * DBK + jj), f32x4.mul(dot4W<W>(qp + ((<usize>i * hd) << 2), kp, rowB, hd), f32x4.splat(scale)));
  }
  for (; jj < bk; jj++) {
    const kp = k0 + <usize>(j0 + jj) * rowB;
    for (let i = 0; i < G; i++) store<f32>(f4(sc, i * DBK + jj), dotW<W>(qp + ((<usize>i * hd) << 2), kp, hd) * scale);
  }
  for (let i = 0; i < G; i++) {
    const si = f4(sc, i * DBK);
    const pi = part + <usize>i * ps;
    foldScores(si, bk, bk, f4(pi, hd), f4(pi, hd + 1), pi, hd);
    // acc += Σ_j p_j v_j, four keys at a time
    let jj = 0;
    for (; jj + 4 <= bk; jj += 4) {
      const p0 = f32x4.splat(load<f32>(f4(si, jj))), p1 = f32x4.splat(load<f32>(f4(si, jj + 1)));
      const p2 = f32x4.splat(load<f32>(f4(si, jj + 2))), p3 = f32x4.splat(load<f32>(f4(si, jj + 3)));
      const va = v0 + <usize>(j0 + jj) * rowB;
      const vb = va + rowB, vc = vb + rowB, vd = vc + rowB;
      let d0 = 0;
      if (!isFloat<W>()) {
        // eight values of each row per load, widened in registers
        for (; d0 + 8 <= hd; d0 += 8) {
          const o = <usize>d0 << 2, ov = <usize>d0 << 1;
          const ra = v128.load(va + ov), rb = v128.load(vb + ov), rc = v128.load(vc + ov), rd = v128.load(vd + ov);
          const lo = f32x4.add(f32x4.add(f32x4.mul(p0, lo8<W>(ra)), f32x4.mul(p1, lo8<W>(rb))), f32x4.add(f32x4.mul(p2, lo8<W>(rc)), f32x4.mul(p3, lo8<W>(rd))));
          const hi = f32x4.add(f32x4.add(f32x4.mul(p0, hi8<W>(ra)), f32x4.mul(p1, hi8<W>(rb))), f32x4.add(f32x4.mul(p2, hi8<W>(rc)), f32x4.mul(p3, hi8<W>(rd))));
          v128.store(pi + o, f32x4.add(v128.load(pi + o), lo));
          v128.store(pi + o, f32x4.add(v128.load(pi + o, 16), hi), 16);
        }
      }
      for (let d = d0; d < hd; d += 4) {
        const c = min(4, hd - d);
        const o = <usize>d << 2;
        let a = ldz(pi + o, c);
        a = f32x4.add(a, f32x4.add(f32x4.add(f32x4.mul(p0, ldzW<W>(va, d, c)), f32x4.mul(p1, ldzW<W>(vb, d, c))),
                                   f32x4.add(f32x4.mul(p2, ldzW<W>(vc, d, c)), f32x4.mul(p3, ldzW<W>(vd, d, c)))));
        stc(pi + o, a, c);
      }
    }
    for (; jj < bk; jj++) {
      const p = f32x4.splat(load<f32>(f4(si, jj)));
      const va = v0 + <usize>(j0 + jj) * rowB;
      for (let d = 0; d < hd; d += 4) {
        const c = min(4, hd - d);
        const o = <usize>d << 2;
        stc(pi + o, f32x4.add(ldz(pi + o, c), f32x4.mul(p, ldzW<W>(va, d, c))), c);
      }
    }
  }
}

/**
 * decodeBlock over all KV heads at once, walking the cache position by position ('rows', the default shape): for each
 * key row j of the block, head after head, the G scores of the head (dotW: one copy of the dot loop, so that its
 * loads stream the rows of K start to end); then per query head the online-softmax fold; then for each row j, head
 * after head, acc_h += p_h[j] · v_j,h (one copy of the axpy loop streaming V). k0/v0: the row's first position (head
 * 0); qp: the row's Hq query heads; part: query head 0's partial (heads headB bytes apart); sc: Hq · DBK floats.
 */
// @ts-ignore: decorator
@inline function decodeBlockRows<W>(fmt: i32, qp: usize, k0: usize, v0: usize, rowB: usize, j0: i32, bk: i32, Hkv: i32, G: i32, hd: i32, scale: f32, sc: usize, part: usize, headB: usize): void {
  const Hq = Hkv * G;
  const headKV = kvByte(fmt, <usize>hd); // bytes of one head's slice of a cache row
  scoreRows<W>(qp, k0, rowB, j0, bk, Hkv, G, hd, scale, sc, headKV);
  foldHeads(sc, bk, Hq, part, headB, hd);
  for (let jj = 0; jj < bk; jj++) valueRow<W>(v0 + <usize>(j0 + jj) * rowB, f4(sc, jj), Hkv, G, hd, part, headB, headKV);
}

/** the 'rows' values' pass for one key row at vp (every KV head's slice, headKV bytes apart): acc_h += p_h · v_h, p_h at sc + h · DBK floats */
// @ts-ignore: decorator
@inline function valueRow<W>(vp: usize, sc: usize, Hkv: i32, G: i32, hd: i32, part: usize, headB: usize, headKV: usize): void {
  for (let g = 0; g < Hkv; g++) {
    if (G == 1) axpyW<W>(part + <usize>g * headB, load<f32>(f4(sc, g * DBK)), vp, hd);
    else axpyG<W>(part + <usize>(g * G) * headB, headB, f4(sc, g * G * DBK), DBK << 2, G, vp, hd);
    vp += headKV;
  }
}

/**
 * The keys [s0, s1) of one decode item in the 'pipe' shape (session 33): 'rows' software-pipelined across blocks, so
 * that K and V stream side by side. Block b's scores are computed and folded first; then, key row by key row, the
 * scores of block b + 1's row jj (K, every head) and the values of block b's row jj (V, every head; acc_h += p_h · v)
 * in the same loop iteration, then block b + 1's fold. Per lane the same operations in the same order as 'rows' (each
 * block's fold rescales the accumulator after the previous block's values and before its own; the scores' 4-head
 * reduction is hsum's): the same bits. sc:
 * 2 · Hq · DBK floats (two blocks' scores). fmt 3 (q8 read in place): the q8 score and value loops of 'rows'
 * (scoreRowsQ8 / valueRowQ8; qh, ql, qs the split queries), W unused.
 */
// @ts-ignore: decorator
@inline function decodeKeysPipe<W>(fmt: i32, qp: usize, qh: usize, ql: usize, qs: usize, k0: usize, v0: usize, rowB: usize, s0: i32, s1: i32, Hkv: i32, G: i32, hd: i32, scale: f32, sc: usize, part: usize, headB: usize): void {
  const Hq = Hkv * G;
  const headKV = kvByte(fmt, <usize>hd);
  if (s1 <= s0) return; // (an empty split: the partial stays m = −∞, l = 0, as 'rows' leaves it)
  let cur = sc, nxt = sc + ((<usize>Hq * DBK) << 2);
  let bk = min(DBK, s1 - s0);
  if (fmt == 3) scoreRowsQ8(qh, ql, qs, k0, rowB, s0, bk, Hkv, G, hd, scale, cur);
  else scoreRows<W>(qp, k0, rowB, s0, bk, Hkv, G, hd, scale, cur, headKV, true);
  foldHeads(cur, bk, Hq, part, headB, hd);
  for (let j0 = s0; j0 < s1; j0 += DBK) {
    const nbk = max(0, min(DBK, s1 - j0 - bk));
    const nj0 = j0 + bk;
    let jj = 0;
    for (; jj < min(bk, nbk); jj++) {
      const vp = v0 + <usize>(j0 + jj) * rowB;
      if (fmt == 3) {
        scoreRowsQ8(qh, ql, qs, k0, rowB, nj0 + jj, 1, Hkv, G, hd, scale, f4(nxt, jj));
        valueRowQ8(vp, f4(cur, jj), Hkv, G, hd >> 5, part, headB);
      } else {
        scoreRows<W>(qp, k0, rowB, nj0 + jj, 1, Hkv, G, hd, scale, f4(nxt, jj), headKV, true);
        valueRow<W>(vp, f4(cur, jj), Hkv, G, hd, part, headB, headKV);
      }
    }
    for (; jj < bk; jj++) {
      const vp = v0 + <usize>(j0 + jj) * rowB;
      if (fmt == 3) valueRowQ8(vp, f4(cur, jj), Hkv, G, hd >> 5, part, headB);
      else valueRow<W>(vp, f4(cur, jj), Hkv, G, hd, part, headB, headKV);
    }
    if (nbk > 0) foldHeads(nxt, nbk, Hq, part, headB, hd);
    const t = cur; cur = nxt; nxt = t;
    bk = nbk;
  }
}

/**
 * decodeBlockRows with the values' pass in registers ('regs', session 33): the scores as 'rows' (K walked position by
 * position, one copy of the dot loop), the online-softmax fold, then per query head its accumulator held in locals
 * (32 values = 8 v128 at a time: acc32W, a function of its own so that V8 keeps them in xmm registers) while the
 * block's bk keys of its KV head are walked in order: one load of V per 4 values and no load or store of the
 * accumulator per key ('rows' loads and stores it for every key). V is walked head by head, each head's slice of the
 * block's rows rowB bytes apart: from DRAM that order costs more than the accumulator's traffic saves where G = 1
 * (llama: BENCHMARKS.md, session 33), and less under GQA (each V slice serves G query heads). Per lane the same
 * multiply-adds in the same key order as 'rows': the same bits.
 */
// @ts-ignore: decorator
@inline function decodeBlockRegs<W>(fmt: i32, qp: usize, k0: usize, v0: usize, rowB: usize, j0: i32, bk: i32, Hkv: i32, G: i32, hd: i32, scale: f32, sc: usize, part: usize, headB: usize): void {
  const Hq = Hkv * G;
  const headKV = kvByte(fmt, <usize>hd);
  scoreRows<W>(qp, k0, rowB, j0, bk, Hkv, G, hd, scale, sc, headKV);
  foldHeads(sc, bk, Hq, part, headB, hd);
  let vp = v0 + <usize>j0 * rowB;
  for (let g = 0; g < Hkv; g++) {
    for (let i = 0; i < G; i++) {
      const h = g * G + i;
      accHeadW<W>(part + <usize>h * headB, f4(sc, h * DBK), vp, rowB, bk, hd);
    }
    vp += headKV;
  }
}

/**
 * the 'rows' scores' pass: sc[h · DBK + jj] = scale · q_h · k_(j0 + jj), KV head after KV head of each key row in turn;
 * h4 ('pipe'): with G = 1, 4 heads' dot products reduced by one hsum4 (the same lane sums as hsum: the same bits;
 * session 33: 1–5 % less CPU per call on f16, 0–3 % on f32)
 */
// @ts-ignore: decorator
@inline function scoreRows<W>(qp: usize, k0: usize, rowB: usize, j0: i32, bk: i32, Hkv: i32, G: i32, hd: i32, scale: f32, sc: usize, headKV: usize, h4: bool = false): void {
  const qhB = <usize>hd << 2;
  for (let jj = 0; jj < bk; jj++) {
    let kp = k0 + <usize>(j0 + jj) * rowB;
    let g = 0;
    if (h4 && G == 1) {
      // 4 heads' dots reduced together (hsum4 adds each head's lanes as hsum does: the same bits)
      for (; g + 4 <= Hkv; g += 4) {
        const d0 = dotRowVecW<W>(qp + <usize>g * qhB, kp, hd), d1 = dotRowVecW<W>(qp + <usize>(g + 1) * qhB, kp + headKV, hd);
        const d2 = dotRowVecW<W>(qp + <usize>(g + 2) * qhB, kp + 2 * headKV, hd), d3 = dotRowVecW<W>(qp + <usize>(g + 3) * qhB, kp + 3 * headKV, hd);
        const d = f32x4.mul(hsum4(d0, d1, d2, d3), f32x4.splat(scale));
        store<f32>(f4(sc, g * DBK + jj), f32x4.extract_lane(d, 0));
        store<f32>(f4(sc, (g + 1) * DBK + jj), f32x4.extract_lane(d, 1));
        store<f32>(f4(sc, (g + 2) * DBK + jj), f32x4.extract_lane(d, 2));
        store<f32>(f4(sc, (g + 3) * DBK + jj), f32x4.extract_lane(d, 3));
        kp += 4 * headKV;
      }
    }
    for (; g < Hkv; g++) {
      if (G == 1) store<f32>(f4(sc, g * DBK + jj), dotRowW<W>(qp + <usize>g * qhB, kp, hd) * scale);
      else {
        // GQA: the head's keys loaded (and widened) once for up to 4 of its query heads at a time
        for (let i = 0; i < G; i += 4) {
          const h = g * G + i, n = min(4, G - i);
          const d = f32x4.mul(dotG4<W>(qp + <usize>h * qhB, qhB, n, kp, hd), f32x4.splat(scale));
          store<f32>(f4(sc, h * DBK + jj), f32x4.extract_lane(d, 0));
          if (n > 1) store<f32>(f4(sc, (h + 1) * DBK + jj), f32x4.extract_lane(d, 1));
          if (n > 2) store<f32>(f4(sc, (h + 2) * DBK + jj), f32x4.extract_lane(d, 2));
          if (n > 3) store<f32>(f4(sc, (h + 3) * DBK + jj), f32x4.extract_lane(d, 3));
        }
      }
      kp += headKV;
    }
  }
}

/**
 * acc[0, hd) += Σ_jj p[jj] · v_jj[0, hd) for jj < bk, key jj's values at v + jj · rowB (type W), keys in order: 32
 * values at a time with the accumulator in 8 locals, then 8, then 4 (lanes [0, c) of the last)
 */
// @ts-ignore: decorator
@inline function accHeadW<W>(acc: usize, p: usize, v: usize, rowB: usize, bk: i32, hd: i32): void {
  const eB: usize = isFloat<W>() ? 4 : 2;
  let d = 0;
  // (two call sites of acc32W: binaryen inlines a function with one caller, and inlined into decodeItem V8 spills
  // its 8 accumulators to the stack on every key; as a function of its own they stay in registers)
  if (hd >= 32) {
    acc32W<W>(acc, p, v, rowB, bk);
    for (d = 32; d + 32 <= hd; d += 32) acc32W<W>(f4(acc, d), p, v + <usize>d * eB, rowB, bk);
  }
  for (; d + 8 <= hd; d += 8) acc8W<W>(f4(acc, d), p, v + <usize>d * eB, rowB, bk);
  for (; d < hd; d += 4) {
    const c = min(4, hd - d);
    const a = f4(acc, d), vd = v + <usize>d * eB;
    let a0 = ldz(a, c);
    for (let jj = 0; jj < bk; jj++) a0 = madd(v128.load32_splat(f4(p, jj)), ldzW<W>(vd + <usize>jj * rowB, 0, c), a0);
    stc(a, a0, c);
  }
}

/** acc[0, 32) += Σ_jj p[jj] · v_jj[0, 32) (see accHeadW): the accumulator in 8 locals across the keys */
function acc32W<W>(acc: usize, p: usize, v: usize, rowB: usize, bk: i32): void {
  let a0 = v128.load(acc), a1 = v128.load(acc, 16), a2 = v128.load(acc, 32), a3 = v128.load(acc, 48);
  let a4 = v128.load(acc, 64), a5 = v128.load(acc, 80), a6 = v128.load(acc, 96), a7 = v128.load(acc, 112);
  let vp = v;
  for (let jj = 0; jj < bk; jj++) {
    const pv = v128.load32_splat(f4(p, jj));
    if (isFloat<W>()) {
      a0 = madd(pv, v128.load(vp), a0);
      a1 = madd(pv, v128.load(vp, 16), a1);
      a2 = madd(pv, v128.load(vp, 32), a2);
      a3 = madd(pv, v128.load(vp, 48), a3);
      a4 = madd(pv, v128.load(vp, 64), a4);
      a5 = madd(pv, v128.load(vp, 80), a5);
      a6 = madd(pv, v128.load(vp, 96), a6);
      a7 = madd(pv, v128.load(vp, 112), a7);
    } else {
      const r0 = v128.load(vp), r1 = v128.load(vp, 16), r2 = v128.load(vp, 32), r3 = v128.load(vp, 48);
      const pw = pv8<W>(pv);
      a0 = madd(pw, lo8v<W>(r0), a0);
      a1 = madd(pw, hi8v<W>(r0), a1);
      a2 = madd(pw, lo8v<W>(r1), a2);
      a3 = madd(pw, hi8v<W>(r1), a3);
      a4 = madd(pw, lo8v<W>(r2), a4);
      a5 = madd(pw, hi8v<W>(r2), a5);
      a6 = madd(pw, lo8v<W>(r3), a6);
      a7 = madd(pw, hi8v<W>(r3), a7);
    }
    vp += rowB;
  }
  v128.store(acc, a0); v128.store(acc, a1, 16); v128.store(acc, a2, 32); v128.store(acc, a3, 48);
  v128.store(acc, a4, 64); v128.store(acc, a5, 80); v128.store(acc, a6, 96); v128.store(acc, a7, 112);
}

/** acc[0, 8) += Σ_jj p[jj] · v_jj[0, 8) (see accHeadW) */
function acc8W<W>(acc: usize, p: usize, v: usize, rowB: usize, bk: i32): void {
  let a0 = v128.load(acc), a1 = v128.load(acc, 16);
  let vp = v;
  for (let jj = 0; jj < bk; jj++) {
    const pv = v128.load32_splat(f4(p, jj));
    if (isFloat<W>()) {
      a0 = madd(pv, v128.load(vp), a0);
      a1 = madd(pv, v128.load(vp, 16), a1);
    } else {
      const r = v128.load(vp);
      const pw = pv8<W>(pv);
      a0 = madd(pw, lo8v<W>(r), a0);
      a1 = madd(pw, hi8v<W>(r), a1);
    }
    vp += rowB;
  }
  v128.store(acc, a0); v128.store(acc, a1, 16);
}

/**
 * The 'rows' block kernels' softmax step: each of the Hq query heads folds its bk scores (sc + h · DBK floats) into its
 * online-softmax partial (part + h · headB: acc[hd], max, sum), which rescales the values accumulated so far.
 */
// @ts-ignore: decorator
@inline function foldHeads(sc: usize, bk: i32, Hq: i32, part: usize, headB: usize, hd: i32): void {
  for (let h = 0; h < Hq; h++) {
    const pi = part + <usize>h * headB;
    foldScores(f4(sc, h * DBK), bk, bk, f4(pi, hd), f4(pi, hd + 1), pi, hd);
  }
}

/**
 * dot(a, b) over n values, a f32, b of the cache's type W (any n), for the 'rows' shape: multiply-adds (fused in the
 * relaxed build), 4 accumulators over 16 values (f32) or 2 over 8 loaded at once (16-bit)
 */
// @ts-ignore: decorator
@inline function dotRowW<W>(a: usize, b: usize, n: i32): f32 {
  return hsum(dotRowVecW<W>(a, b, n));
}

/** dotRowW before its horizontal sum: (a0 + a1) + (a2 + a3) of its 4 accumulators */
// @ts-ignore: decorator
@inline function dotRowVecW<W>(a: usize, b: usize, n: i32): v128 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let k = 0;
  if (isFloat<W>()) {
    for (; k + 16 <= n; k += 16) {
      const o = <usize>k << 2;
      a0 = madd(v128.load(a + o), v128.load(b + o), a0);
      a1 = madd(v128.load(a + o, 16), v128.load(b + o, 16), a1);
      a2 = madd(v128.load(a + o, 32), v128.load(b + o, 32), a2);
      a3 = madd(v128.load(a + o, 48), v128.load(b + o, 48), a3);
    }
  } else {
    for (; k + 16 <= n; k += 16) {
      const o = <usize>k << 2, ob = <usize>k << 1;
      const r0 = v128.load(b + ob), r1 = v128.load(b + ob, 16);
      a0 = madd(v128.load(a + o), lo8<W>(r0), a0);
      a1 = madd(v128.load(a + o, 16), hi8<W>(r0), a1);
      a2 = madd(v128.load(a + o, 32), lo8<W>(r1), a2);
      a3 = madd(v128.load(a + o, 48), hi8<W>(r1), a3);
    }
  }
  for (; k < n; k += 4) {
    const c = min(4, n - k);
    a0 = madd(ldz(f4(a, k), c), ldzW<W>(b, k, c), a0);
  }
  return f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3));
}

/**
 * [dot(q0, b), …, dot(q3, b)] over n values (b of the cache's type W, loaded and widened once), query heads q0 = q,
 * q + qStride, … (only the first nq < 4 are real: the other lanes repeat q0 and are ignored); one accumulator per head
 */
// @ts-ignore: decorator
@inline function dotG4<W>(q: usize, qStride: usize, nq: i32, b: usize, n: i32): v128 {
  const q1 = nq > 1 ? q + qStride : q, q2 = nq > 2 ? q + 2 * qStride : q, q3 = nq > 3 ? q + 3 * qStride : q;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let k = 0;
  if (!isFloat<W>()) {
    for (; k + 8 <= n; k += 8) {
      const o = <usize>k << 2;
      const raw = v128.load(b + (<usize>k << 1));
      const lo = lo8<W>(raw), hi = hi8<W>(raw);
      a0 = madd(v128.load(q + o, 16), hi, madd(v128.load(q + o), lo, a0));
      a1 = madd(v128.load(q1 + o, 16), hi, madd(v128.load(q1 + o), lo, a1));
      a2 = madd(v128.load(q2 + o, 16), hi, madd(v128.load(q2 + o), lo, a2));
      a3 = madd(v128.load(q3 + o, 16), hi, madd(v128.load(q3 + o), lo, a3));
    }
  }
  for (; k < n; k += 4) {
    const c = min(4, n - k);
    const o = <usize>k << 2;
    const x = ldzW<W>(b, k, c);
    a0 = madd(ldz(q + o, c), x, a0);
    a1 = madd(ldz(q1 + o, c), x, a1);
    a2 = madd(ldz(q2 + o, c), x, a2);
    a3 = madd(ldz(q3 + o, c), x, a3);
  }
  return hsum4(a0, a1, a2, a3);
}

/**
 * acc_i[0, hd) += p_i · v[0, hd) for the G query heads of one KV head (acc_i = acc + i · accStride; p_i at
 * p + i · pStride), v of the cache's type W loaded and widened once per 8 values
 */
// @ts-ignore: decorator
@inline function axpyG<W>(acc: usize, accStride: usize, p: usize, pStride: i32, G: i32, v: usize, hd: i32): void {
  let d = 0;
  for (; d + 8 <= hd; d += 8) {
    const o = <usize>d << 2;
    let lo: v128, hi: v128;
    if (isFloat<W>()) {
      lo = v128.load(v + o);
      hi = v128.load(v + o, 16);
    } else {
      const raw = v128.load(v + (<usize>d << 1));
      lo = lo8v<W>(raw);
      hi = hi8v<W>(raw);
    }
    for (let i = 0; i < G; i++) {
      const pv = pv8<W>(v128.load32_splat(p + <usize>(i * pStride)));
      const a = acc + <usize>i * accStride + o;
      v128.store(a, madd(pv, lo, v128.load(a)));
      v128.store(a, madd(pv, hi, v128.load(a, 16)), 16);
    }
  }
  for (; d < hd; d += 4) {
    const c = min(4, hd - d);
    const o = <usize>d << 2;
    const x = ldzW<W>(v, d, c);
    for (let i = 0; i < G; i++) {
      const pv = v128.load32_splat(p + <usize>(i * pStride));
      const a = acc + <usize>i * accStride + o;
      stc(a, madd(pv, x, ldz(a, c)), c);
    }
  }
}

/** acc[0, hd) += p · v[0, hd) (v of the cache's type W; any hd; multiply-adds, fused in the relaxed build) */
// @ts-ignore: decorator
@inline function axpyW<W>(acc: usize, p: f32, v: usize, hd: i32): void {
  const pv = f32x4.splat(p);
  let d = 0;
  if (isFloat<W>()) {
    for (; d + 8 <= hd; d += 8) {
      const o = <usize>d << 2;
      v128.store(acc + o, madd(pv, v128.load(v + o), v128.load(acc + o)));
      v128.store(acc + o, madd(pv, v128.load(v + o, 16), v128.load(acc + o, 16)), 16);
    }
  } else {
    const pw = pv8<W>(pv);
    for (; d + 8 <= hd; d += 8) {
      const o = <usize>d << 2;
      const raw = v128.load(v + (<usize>d << 1));
      v128.store(acc + o, madd(pw, lo8v<W>(raw), v128.load(acc + o)));
      v128.store(acc + o, madd(pw, hi8v<W>(raw), v128.load(acc + o, 16)), 16);
    }
  }
  for (; d < hd; d += 4) {
    const c = min(4, hd - d);
    const o = <usize>d << 2;
    stc(acc + o, madd(pv, ldzW<W>(v, d, c), ldz(acc + o, c)), c);
  }
}

/**
 * decodeBlockRows on a q8 cache read in place (hd a multiple of 32): scores dotQ8 per (row, head), values
 * (p · scale) · q8 per block, row after row, head after head (qh, ql, qs: the row's Hq query heads split by splitQ).
 */
// @ts-ignore: decorator
@inline function decodeBlockQ8Rows(qh: usize, ql: usize, qs: usize, k0: usize, v0: usize, rowB: usize, j0: i32, bk: i32, Hkv: i32, G: i32, hd: i32, scale: f32, sc: usize, part: usize, headB: usize): void {
  const Hq = Hkv * G;
  const nb = hd >> 5;
  scoreRowsQ8(qh, ql, qs, k0, rowB, j0, bk, Hkv, G, hd, scale, sc);
  foldHeads(sc, bk, Hq, part, headB, hd);
  for (let jj = 0; jj < bk; jj++) valueRowQ8(v0 + <usize>(j0 + jj) * rowB, f4(sc, jj), Hkv, G, nb, part, headB);
}

/** the q8 'rows' values' pass for one key row at vp (every KV head's nb blocks): acc_h += (p_h · scale) · q8, p_h at sc + h · DBK floats */
// @ts-ignore: decorator
@inline function valueRowQ8(vp: usize, sc: usize, Hkv: i32, G: i32, nb: i32, part: usize, headB: usize): void {
  const headKV = <usize>nb * Q8B;
  for (let g = 0; g < Hkv; g++) {
    for (let i = 0; i < G; i++) {
      const h = g * G + i;
      const p = load<f32>(f4(sc, h * DBK));
      const ac0 = part + <usize>h * headB;
      for (let c = 0; c < nb; c++) {
        const blk = vp + <usize>c * Q8B;
        const sa = f32x4.splat(p * load<f32>(blk));
        const ac = ac0 + (<usize>c << 7);
        for (let u: usize = 0; u < 32; u += 8) {
          const ra = v128.load8x8_s(blk + 4 + u);
          const ap = ac + (u << 2);
          v128.store(ap, madd(sa, q8lo(ra), v128.load(ap)));
          v128.store(ap, madd(sa, q8hi(ra), v128.load(ap, 16)), 16);
        }
      }
    }
    vp += headKV;
  }
}

/** the q8 'rows' scores' pass (decodeBlockQ8Rows): sc[h · DBK + jj] = scale · dotQ8(q_h, k_(j0 + jj)), key row by key row */
// @ts-ignore: decorator
@inline function scoreRowsQ8(qh: usize, ql: usize, qs: usize, k0: usize, rowB: usize, j0: i32, bk: i32, Hkv: i32, G: i32, hd: i32, scale: f32, sc: usize): void {
  const nb = hd >> 5;
  const qhB = <usize>hd << 1;
  const headKV = <usize>nb * Q8B;
  for (let jj = 0; jj < bk; jj++) {
    let kp = k0 + <usize>(j0 + jj) * rowB;
    for (let g = 0; g < Hkv; g++) {
      for (let i = 0; i < G; i++) {
        const h = g * G + i;
        store<f32>(f4(sc, h * DBK + jj), dotQ8(qh + <usize>h * qhB, ql + <usize>h * qhB, qs + (<usize>h << 3), kp, nb) * scale);
      }
      kp += headKV;
    }
  }
}

/** 8 int8 values loaded sign-extended to i16 (v128.load8x8_s): lanes 0-3 / 4-7 as f32x4 (exact) */
// @ts-ignore: decorator
@inline function q8lo(r: v128): v128 {
  return f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(r));
}
// @ts-ignore: decorator
@inline function q8hi(r: v128): v128 {
  return f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(r));
}

/**
 * A query head's hd values q as two int16 rows, q ≈ s1 · (hi + lo / 65536) with s1 = max|q| / 32767 (hi = round(q / s1),
 * lo = round((q − s1 · hi) / s2), s2 = s1 / 65536): q to within s1 / 131072 = max|q| · 2⁻³² (below f32's own rounding
 * of q), so that scores against int8 keys are integer dot products (i32x4.dot_i16x8_s) and still equal the f32
 * products q · (q8 · scale) to f32 rounding. hi, lo at hi/lo (hd i16 each), s1, s2 at sp (f32).
 */
function splitQ(q: usize, hd: i32, hi: usize, lo: usize, sp: usize): void {
  let m: f32 = 0;
  for (let i = 0; i < hd; i++) m = max(m, abs(load<f32>(f4(q, i))));
  const s1: f32 = m / 32767;
  const s2: f32 = s1 / 65536; // (exact: a power of 2)
  store<f32>(sp, s1);
  store<f32>(sp, s2, 4);
  for (let i = 0; i < hd; i++) {
    const x = <f64>load<f32>(f4(q, i));
    let h: f64 = 0, l: f64 = 0;
    if (s1 > 0) {
      h = Math.round(x / <f64>s1);
      l = min(32767.0, max(-32767.0, Math.round((x - h * <f64>s1) / <f64>s2)));
    }
    store<i16>(hi + (<usize>i << 1), <i16>(<i32>h));
    store<i16>(lo + (<usize>i << 1), <i16>(<i32>l));
  }
}

/** dot(q, b) over nb q8 blocks of one key row, q split by splitQ (hi, lo, sp): per block s1 · Σ hi · q8 + s2 · Σ lo · q8 (i32 sums), times the block's scale */
// @ts-ignore: decorator
@inline function dotQ8(hi: usize, lo: usize, sp: usize, b: usize, nb: i32): f32 {
  const S1 = v128.load32_splat(sp), S2 = v128.load32_splat(sp, 4);
  let a = f32x4.splat(0);
  for (let c = 0; c < nb; c++) {
    const blk = b + <usize>c * Q8B;
    const qo = <usize>c << 6; // (32 i16)
    let h = i32x4.splat(0), l = i32x4.splat(0);
    for (let u: usize = 0; u < 32; u += 8) {
      const r = v128.load8x8_s(blk + 4 + u);
      h = i32x4.add(h, i32x4.dot_i16x8_s(v128.load(hi + qo + (u << 1)), r));
      l = i32x4.add(l, i32x4.dot_i16x8_s(v128.load(lo + qo + (u << 1)), r));
    }
    const f = f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(h), S1), f32x4.mul(f32x4.convert_i32x4_s(l), S2));
    a = f32x4.add(a, f32x4.mul(f, v128.load32_splat(blk)));
  }
  return hsum(a);
}

/** [dot(q, b0), …, dot(q, b3)] for the 4 key rows b0 = b, b + rowB, … over nb q8 blocks (see splitQ, dotQ8) */
// @ts-ignore: decorator
@inline function dot4Q8(hi: usize, lo: usize, sp: usize, b: usize, rowB: usize, nb: i32): v128 {
  const b1 = b + rowB, b2 = b1 + rowB, b3 = b2 + rowB;
  const S1 = v128.load32_splat(sp), S2 = v128.load32_splat(sp, 4);
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  for (let c = 0; c < nb; c++) {
    const o = <usize>c * Q8B;
    const qo = <usize>c << 6;
    let h0 = i32x4.splat(0), h1 = i32x4.splat(0), h2 = i32x4.splat(0), h3 = i32x4.splat(0);
    let l0 = i32x4.splat(0), l1 = i32x4.splat(0), l2 = i32x4.splat(0), l3 = i32x4.splat(0);
    for (let u: usize = 0; u < 32; u += 8) {
      const xh = v128.load(hi + qo + (u << 1)), xl = v128.load(lo + qo + (u << 1));
      const ko = o + 4 + u;
      const r0 = v128.load8x8_s(b + ko), r1 = v128.load8x8_s(b1 + ko), r2 = v128.load8x8_s(b2 + ko), r3 = v128.load8x8_s(b3 + ko);
      h0 = i32x4.add(h0, i32x4.dot_i16x8_s(xh, r0));
      l0 = i32x4.add(l0, i32x4.dot_i16x8_s(xl, r0));
      h1 = i32x4.add(h1, i32x4.dot_i16x8_s(xh, r1));
      l1 = i32x4.add(l1, i32x4.dot_i16x8_s(xl, r1));
      h2 = i32x4.add(h2, i32x4.dot_i16x8_s(xh, r2));
      l2 = i32x4.add(l2, i32x4.dot_i16x8_s(xl, r2));
      h3 = i32x4.add(h3, i32x4.dot_i16x8_s(xh, r3));
      l3 = i32x4.add(l3, i32x4.dot_i16x8_s(xl, r3));
    }
    a0 = f32x4.add(a0, f32x4.mul(f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(h0), S1), f32x4.mul(f32x4.convert_i32x4_s(l0), S2)), v128.load32_splat(b + o)));
    a1 = f32x4.add(a1, f32x4.mul(f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(h1), S1), f32x4.mul(f32x4.convert_i32x4_s(l1), S2)), v128.load32_splat(b1 + o)));
    a2 = f32x4.add(a2, f32x4.mul(f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(h2), S1), f32x4.mul(f32x4.convert_i32x4_s(l2), S2)), v128.load32_splat(b2 + o)));
    a3 = f32x4.add(a3, f32x4.mul(f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(h3), S1), f32x4.mul(f32x4.convert_i32x4_s(l3), S2)), v128.load32_splat(b3 + o)));
  }
  return hsum4(a0, a1, a2, a3);
}

/** acc[0, 8) += sa · qa + sb · qb + sc · qc + sd · qd for 8 int8 values at each of qa … qd */
// @ts-ignore: decorator
@inline function accQ8x8(acc: usize, qa: usize, qb: usize, qc: usize, qd: usize, sa: v128, sb: v128, sc: v128, sd: v128): void {
  const ra = v128.load8x8_s(qa), rb = v128.load8x8_s(qb), rc = v128.load8x8_s(qc), rd = v128.load8x8_s(qd);
  const lo = f32x4.add(f32x4.add(f32x4.mul(sa, q8lo(ra)), f32x4.mul(sb, q8lo(rb))), f32x4.add(f32x4.mul(sc, q8lo(rc)), f32x4.mul(sd, q8lo(rd))));
  const hi = f32x4.add(f32x4.add(f32x4.mul(sa, q8hi(ra)), f32x4.mul(sb, q8hi(rb))), f32x4.add(f32x4.mul(sc, q8hi(rc)), f32x4.mul(sd, q8hi(rd))));
  v128.store(acc, f32x4.add(v128.load(acc), lo));
  v128.store(acc, f32x4.add(v128.load(acc, 16), hi), 16);
}

/**
 * decodeBlock on a q8 cache read in place (hd a multiple of 32; k0/v0: the head's first block at the block's first
 * position; qh, ql, qs: the G query heads split by splitQ): scores Σ_blocks scale · (q · q8) as integer dot products;
 * values accumulated as (p · scale) · q8 per block, four keys at a time.
 */
// @ts-ignore: decorator
@inline function decodeBlockQ8(qh: usize, ql: usize, qs: usize, k0: usize, v0: usize, rowB: usize, j0: i32, bk: i32, G: i32, hd: i32, scale: f32, sc: usize, part: usize, headB: usize): void {
  const nb = hd >> 5;
  const qhB = <usize>hd << 1;
  let jj = 0;
  for (; jj + 4 <= bk; jj += 4) {
    const kp = k0 + <usize>(j0 + jj) * rowB;
    for (let i = 0; i < G; i++) v128.store(f4(sc, i * DBK + jj), f32x4.mul(dot4Q8(qh + <usize>i * qhB, ql + <usize>i * qhB, qs + (<usize>i << 3), kp, rowB, nb), f32x4.splat(scale)));
  }
  for (; jj < bk; jj++) {
    const kp = k0 + <usize>(j0 + jj) * rowB;
    for (let i = 0; i < G; i++) store<f32>(f4(sc, i * DBK + jj), dotQ8(qh + <usize>i * qhB, ql + <usize>i * qhB, qs + (<usize>i << 3), kp, nb) * scale);
  }
  for (let i = 0; i < G; i++) {
    const si = f4(sc, i * DBK);
    const pi = part + <usize>i * headB;
    foldScores(si, bk, bk, f4(pi, hd), f4(pi, hd + 1), pi, hd);
    let jj = 0;
    for (; jj + 4 <= bk; jj += 4) {
      const p0 = load<f32>(f4(si, jj)), p1 = load<f32>(f4(si, jj + 1)), p2 = load<f32>(f4(si, jj + 2)), p3 = load<f32>(f4(si, jj + 3));
      const va = v0 + <usize>(j0 + jj) * rowB;
      const vb = va + rowB, vc = vb + rowB, vd = vc + rowB;
      for (let c = 0; c < nb; c++) {
        const o = <usize>c * Q8B;
        const sa = f32x4.splat(p0 * load<f32>(va + o)), sb = f32x4.splat(p1 * load<f32>(vb + o));
        const sc_ = f32x4.splat(p2 * load<f32>(vc + o)), sd = f32x4.splat(p3 * load<f32>(vd + o));
        const ac = pi + (<usize>c << 7);
        accQ8x8(ac, va + o + 4, vb + o + 4, vc + o + 4, vd + o + 4, sa, sb, sc_, sd);
        accQ8x8(ac + 32, va + o + 12, vb + o + 12, vc + o + 12, vd + o + 12, sa, sb, sc_, sd);
        accQ8x8(ac + 64, va + o + 20, vb + o + 20, vc + o + 20, vd + o + 20, sa, sb, sc_, sd);
        accQ8x8(ac + 96, va + o + 28, vb + o + 28, vc + o + 28, vd + o + 28, sa, sb, sc_, sd);
      }
    }
    for (; jj < bk; jj++) {
      const p = load<f32>(f4(si, jj));
      const va = v0 + <usize>(j0 + jj) * rowB;
      for (let c = 0; c < nb; c++) {
        const o = <usize>c * Q8B;
        const sa = f32x4.splat(p * load<f32>(va + o));
        const ac = pi + (<usize>c << 7);
        for (let h: usize = 0; h < 32; h += 8) {
          const ra = v128.load8x8_s(va + o + 4 + h);
          const ap = ac + (h << 2);
          v128.store(ap, f32x4.add(v128.load(ap), f32x4.mul(sa, q8lo(ra))));
          v128.store(ap, f32x4.add(v128.load(ap, 16), f32x4.mul(sa, q8hi(ra))), 16);
        }
      }
    }
  }
}

/**
 * floats of one decode partial (acc[hd], m, l): padded to a multiple of 16 (a 64-byte cache line; pad = 1, the
 * default), or packed (pad = 0: the layout before session 30, kept for A/B measurements)
 */
// @ts-ignore: decorator
@inline function partFloats(hd: i32, pad: i32): i32 {
  return pad ? (hd + 2 + 15) & ~15 : hd + 2;
}

/** n floats rounded up to whole 64-byte cache lines (pad = 1), or n (pad = 0) */
// @ts-ignore: decorator
@inline function padLine(n: usize, pad: i32): usize {
  return pad ? (n + 15) & ~15 : n;
}

/**
 * The floats of attention_decode's scratch for these arguments (the JS side allocates it; one place for its layout):
 * per thread the scores and format scratch, then the partials [b, Hq, S, partFloats(hd)], each on its own cache lines.
 */
export function attention_decode_scratch(b: i32, Hq: i32, hd: i32, S: i32, T: i32, fmt: i32, pad: i32): i32 {
  return <i32>(<usize>T * perThreadFloats(Hq, hd, fmt, pad) + <usize>b * Hq * S * partFloats(hd, pad));
}

/** attention_decode's scratch floats per thread: 2 · Hq · DBK scores (two blocks' for 'pipe'), then fmt 4 a block's keys and values as f32, fmt 3 the queries split */
// @ts-ignore: decorator
@inline function perThreadFloats(Hq: i32, hd: i32, fmt: i32, pad: i32): usize {
  return padLine(<usize>2 * Hq * DBK + (fmt == 4 ? <usize>2 * hd * DBK : fmt == 3 ? <usize>Hq * (hd + 2) : 0), pad);
}

/** where the partials start in attention_decode's scratch (after the T threads' own scratch) */
// @ts-ignore: decorator
@inline function partsAt(scratch: usize, T: i32, Hq: i32, hd: i32, fmt: i32, pad: i32): usize {
  return scratch + ((<usize>T * perThreadFloats(Hq, hd, fmt, pad)) << 2);
}

/**
 * bytes of one (row, query head, split)'s partial, acc[hd], m, l, padded to whole cache lines: the threads write theirs
 * concurrently (every key), and partials sharing a line made the line bounce between the cores (issue 18, session 30)
 */
// @ts-ignore: decorator
@inline function partBytes(hd: i32, pad: i32): usize {
  return <usize>partFloats(hd, pad) << 2;
}

/**
 * Item (row r, split s of S) of attention_decode for KV heads g0 … g1 − 1 (and their query heads): its partials
 * initialised, then its keys block by block ('rows': every head's slice of a cache row in turn; else per KV head)
 */
function decodeItem(
  q: usize, K: usize, V: usize, nKeys: usize, Hq: i32, Hkv: i32, hd: i32, cap: i32, scale: f32, S: i32, fmt: i32,
  shape: i32, pad: i32, scratch: usize, t: i32, T: i32, r: i32, s: i32, g0: i32, g1: i32,
): void {
  // fmt 5: an f16 cache read with the conversion of before session 34 ('widen': W = i32), else as fmt 2
  const widen = fmt == 5;
  if (widen) fmt = 2;
  const G = Hq / Hkv;
  const rowB = kvByte(min(fmt, 3), <usize>(Hkv * hd)); // bytes of one cache position (all KV heads)
  // 'rows': one loop copy walks the cache position by position. Under GQA (G > 1) a 16-bit or q8 cache is compute-bound
  // (widening per value, G query heads per KV head) and the heads4 code, which loads the queries once for 4 keys and
  // updates the accumulators once per 4 keys, measured faster there (attn-stream.bench, hybrid shape): it runs
  // heads4; so does fmt 4 (q8 through scratch).
  // 'regs' (shape 2: the values' accumulators in registers) and 'pipe' (3: the blocks pipelined; 'regs' under GQA) are
  // 'rows' reorganised: the same bits where 'rows' runs its own code; under GQA they run on 16-bit caches too, where
  // 'regs' measured faster than heads4 (session 33: hybrid f16 −12 to −16 %, bf16 −2 to −4 %); on a q8 cache
  // (G = 1) 'regs' runs the 'rows' code, 'pipe' its pipeline; q8 under GQA and fmt 4 run heads4 in every shape.
  const rows = shape == 0 ? fmt == 0 || (G == 1 && fmt != 4) : shape >= 2 && (fmt <= 2 || (G == 1 && fmt == 3));
  // thread t's scratch: 2 · Hq · DBK scores (two blocks: 'pipe'), then (fmt 4) a block's keys and values as f32 [DBK, hd] each, or (fmt 3) the
  // row's query heads split into int16 (splitQ: hi and lo [Hq, hd] each, then s1, s2 per head in 8 bytes)
  const sc = scratch + ((<usize>t * perThreadFloats(Hq, hd, fmt, pad)) << 2);
  const Kf = sc + ((<usize>2 * Hq * DBK) << 2), Vf = Kf + ((<usize>DBK * hd) << 2);
  const Qh = Kf, Ql = Qh + ((<usize>Hq * hd) << 1), Qs = Ql + ((<usize>Hq * hd) << 1);
  const parts = partsAt(scratch, T, Hq, hd, fmt, pad), ps = partBytes(hd, pad);
  const hdB = <usize>hd << 2;
  const headB = <usize>S * ps;
  const n = load<i32>(nKeys + (<usize>r << 2));
  const s0 = <i32>((<i64>n * s) / S), s1 = <i32>((<i64>n * (s + 1)) / S);
  for (let h = g0 * G; h < g1 * G; h++) {
    const pi = parts + (<usize>(r * Hq + h) * S + s) * ps;
    memory.fill(pi, 0, <usize>hd << 2);
    store<f32>(f4(pi, hd), -Infinity);
    store<f32>(f4(pi, hd + 1), 0);
    if (fmt == 3) splitQ(q + ((<usize>(r * Hq + h) * hd) << 2), hd, Qh + ((<usize>h * hd) << 1), Ql + ((<usize>h * hd) << 1), Qs + (<usize>h << 3));
  }
  const rowK = K + <usize>r * cap * rowB, rowV = V + <usize>r * cap * rowB;
  if (rows) {
    // (KV heads g0 … g1 − 1: their query heads, their slice of each cache row, their partials)
    const qp = q + ((<usize>(r * Hq + g0 * G) * hd) << 2);
    const part = parts + (<usize>(r * Hq + g0 * G) * S + s) * ps;
    const ho = kvByte(fmt, <usize>(g0 * hd)), nh = g1 - g0;
    const Qo = <usize>(g0 * G * hd) << 1;
    if (shape == 3 && G == 1) {
      // 'pipe': the blocks pipelined (K and V streamed side by side; q8 in place: fmt 3, the queries split as 'rows')
      const qh = Qh + Qo, ql = Ql + Qo, qs = Qs + (<usize>(g0 * G) << 3);
      if (fmt == 0 || fmt == 3) decodeKeysPipe<f32>(fmt, qp, qh, ql, qs, rowK + ho, rowV + ho, rowB, s0, s1, nh, G, hd, scale, sc, part, headB);
      else if (fmt == 1) decodeKeysPipe<u16>(fmt, qp, qh, ql, qs, rowK + ho, rowV + ho, rowB, s0, s1, nh, G, hd, scale, sc, part, headB);
      else if (widen) decodeKeysPipe<i32>(fmt, qp, qh, ql, qs, rowK + ho, rowV + ho, rowB, s0, s1, nh, G, hd, scale, sc, part, headB);
      else decodeKeysPipe<i16>(fmt, qp, qh, ql, qs, rowK + ho, rowV + ho, rowB, s0, s1, nh, G, hd, scale, sc, part, headB);
      return;
    }
    // 'regs', and 'pipe' under GQA (measured faster there than pipelined 'rows' on f32, than heads4 on 16-bit)
    const regs = shape >= 2 && fmt <= 2;
    for (let j0 = s0; j0 < s1; j0 += DBK) {
      const bk = min(DBK, s1 - j0);
      if (regs) {
        if (fmt == 0) decodeBlockRegs<f32>(fmt, qp, rowK + ho, rowV + ho, rowB, j0, bk, nh, G, hd, scale, sc, part, headB);
        else if (fmt == 1) decodeBlockRegs<u16>(fmt, qp, rowK + ho, rowV + ho, rowB, j0, bk, nh, G, hd, scale, sc, part, headB);
        else if (widen) decodeBlockRegs<i32>(fmt, qp, rowK + ho, rowV + ho, rowB, j0, bk, nh, G, hd, scale, sc, part, headB);
        else decodeBlockRegs<i16>(fmt, qp, rowK + ho, rowV + ho, rowB, j0, bk, nh, G, hd, scale, sc, part, headB);
      } else if (fmt == 0) decodeBlockRows<f32>(fmt, qp, rowK + ho, rowV + ho, rowB, j0, bk, nh, G, hd, scale, sc, part, headB);
      else if (fmt == 1) decodeBlockRows<u16>(fmt, qp, rowK + ho, rowV + ho, rowB, j0, bk, nh, G, hd, scale, sc, part, headB);
      else if (fmt == 2 && widen) decodeBlockRows<i32>(fmt, qp, rowK + ho, rowV + ho, rowB, j0, bk, nh, G, hd, scale, sc, part, headB);
      else if (fmt == 2) decodeBlockRows<i16>(fmt, qp, rowK + ho, rowV + ho, rowB, j0, bk, nh, G, hd, scale, sc, part, headB);
      else decodeBlockQ8Rows(Qh + Qo, Ql + Qo, Qs + (<usize>(g0 * G) << 3), rowK + ho, rowV + ho, rowB, j0, bk, nh, G, hd, scale, sc, part, headB);
    }
    return;
  }
  for (let j0 = s0; j0 < s1; j0 += DBK) {
    const bk = min(DBK, s1 - j0);
    const nbk = min(DBK, s1 - j0 - bk); // the next block
    const pfTotal = <usize>max(nbk, 0) * rowB;
    const pfChunkB = pfChunk(pfTotal, Hkv);
    const pfK = rowK + <usize>(j0 + bk) * rowB, pfV = rowV + <usize>(j0 + bk) * rowB;
    for (let g = g0; g < g1; g++) {
      if (nbk > 0) {
        touchPart(pfK, pfTotal, pfChunkB, g);
        touchPart(pfV, pfTotal, pfChunkB, g);
      }
      const h0 = g * G;
      const qp = q + ((<usize>(r * Hq + h0) * hd) << 2);
      const part = parts + (<usize>(r * Hq + h0) * S + s) * ps;
      const ho: usize = fmt == 4 ? 0 : kvByte(fmt, <usize>g * hd); // (q8 through scratch: the head is found inside the rows)
      if (fmt == 0) decodeBlock<f32>(qp, rowK + ho, rowV + ho, rowB, j0, bk, G, hd, scale, sc, part, headB);
      else if (fmt == 1) decodeBlock<u16>(qp, rowK + ho, rowV + ho, rowB, j0, bk, G, hd, scale, sc, part, headB);
      else if (fmt == 2 && widen) decodeBlock<i32>(qp, rowK + ho, rowV + ho, rowB, j0, bk, G, hd, scale, sc, part, headB);
      else if (fmt == 2) decodeBlock<i16>(qp, rowK + ho, rowV + ho, rowB, j0, bk, G, hd, scale, sc, part, headB);
      else if (fmt == 3) decodeBlockQ8(Qh + ((<usize>h0 * hd) << 1), Ql + ((<usize>h0 * hd) << 1), Qs + (<usize>h0 << 3), rowK + ho, rowV + ho, rowB, j0, bk, G, hd, scale, sc, part, headB);
      else {
        // q8: the block's keys and values of head g as f32 (in L1), then the f32 block code on them
        const o = <usize>j0 * rowB;
        unpackQ8Rows(rowK + o, g * hd, rowB, bk, hd, Kf);
        unpackQ8Rows(rowV + o, g * hd, rowB, bk, hd, Vf);
        decodeBlock<f32>(qp, Kf, Vf, hdB, 0, bk, G, hd, scale, sc, part, headB);
      }
    }
  }
}

/**
 * Attention of one query per row: q, out [b, 1, Hq, hd]; nKeys: i32 [b] (keys 0 … nKeys[r] − 1 of row r, ≥ 1);
 * S splits of each row's keys; fmt: the cache's format (see the top); shape: 0 'rows' (decodeBlockRows /
 * decodeBlockQ8Rows; not fmt 4), 1 'heads4' (decodeBlock per KV head), 2 'regs' (decodeBlockRegs), 3 'pipe'
 * (decodeKeysPipe; decodeBlockRegs under GQA); pad: 1 (default) every thread's scratch and
 * every partial on cache lines of its own, 0 packed (before session 30). scratch: attention_decode_scratch's floats, 64-byte aligned (per thread 2 · Hq · DBK
 * floats, q8: + 2 · DBK · hd, padded to a cache line; then the partials [b, Hq, S, partFloats(hd)]). counter: i32, zeroed (the barrier before the merge; with S = 1 none: each thread merges the rows it computed).
 */
export function attention_decode(
  q: usize, K: usize, V: usize, out: usize, nKeys: usize, b: i32, Hq: i32, Hkv: i32, hd: i32, cap: i32, scale: f32,
  S: i32, scratch: usize, counter: usize, fmt: i32, shape: i32, pad: i32, t: i32, T: i32,
): void {
  const parts = partsAt(scratch, T, Hq, hd, fmt, pad), ps = partBytes(hd, pad);
  // items: (row, split); each reads its keys' whole rows (every KV head) block by block, in order, and touches the
  // next block meanwhile, so that the cache streams sequentially (a head's slice of a row is only hd floats)
  const items = b * S;
  const i1 = sliceHi(t, T, items, 1);
  for (let it = sliceLo(t, T, items, 1); it < i1; it++) {
    decodeItem(q, K, V, nKeys, Hq, Hkv, hd, cap, scale, S, fmt, shape, pad, scratch, t, T, it / S, it % S, 0, Hkv);
  }
  if (S == 1) {
    // one split per row: each thread finishes the rows it computed (it wrote their partials), no barrier
    mergeSplits(parts, ps, 1, hd, out, sliceLo(t, T, items, 1) * Hq, i1 * Hq);
  } else {
    teamBarrier(counter, 1, T);
    mergeSplits(parts, ps, S, hd, out, sliceLo(t, T, b * Hq, 1), sliceHi(t, T, b * Hq, 1));
  }
}

/**
 * attention_decode with one split per row (S = 1) for KV heads g0 … g1 − 1 (and their query heads) of every row,
 * merged into out: thread t's share where a team divides the heads among its threads (attn_layer.ts); no barrier.
 * The same scratch layout as attention_decode (attention_decode_scratch with S = 1) and, per head, the same bits.
 */
export function attention_decode_heads(
  q: usize, K: usize, V: usize, out: usize, nKeys: usize, b: i32, Hq: i32, Hkv: i32, hd: i32, cap: i32, scale: f32,
  scratch: usize, fmt: i32, shape: i32, pad: i32, g0: i32, g1: i32, t: i32, T: i32,
): void {
  const G = Hq / Hkv;
  const parts = partsAt(scratch, T, Hq, hd, fmt, pad), ps = partBytes(hd, pad);
  for (let r = 0; r < b; r++) {
    decodeItem(q, K, V, nKeys, Hq, Hkv, hd, cap, scale, 1, fmt, shape, pad, scratch, t, T, r, 0, g0, g1);
    mergeSplits(parts, ps, 1, hd, out, r * Hq + g0 * G, r * Hq + g1 * G);
  }
}

/** attention_decode's outputs of (row, query head) rh0 … rh1 − 1 from the partials of their S splits (log-sum-exp) */
function mergeSplits(parts: usize, ps: usize, S: i32, hd: i32, out: usize, rh0: i32, rh1: i32): void {
  for (let rh = rh0; rh < rh1; rh++) {
    const p0 = parts + <usize>rh * S * ps;
    let m: f32 = -Infinity;
    for (let s = 0; s < S; s++) m = max(m, load<f32>(f4(p0 + <usize>s * ps, hd)));
    let l: f32 = 0;
    for (let s = 0; s < S; s++) {
      const ps_ = p0 + <usize>s * ps;
      l += load<f32>(f4(ps_, hd + 1)) * Mathf.exp(load<f32>(f4(ps_, hd)) - m);
    }
    const o = out + ((<usize>rh * hd) << 2);
    for (let d = 0; d < hd; d += 4) {
      const c = min(4, hd - d);
      let a = f32x4.splat(0);
      for (let s = 0; s < S; s++) {
        const ps_ = p0 + <usize>s * ps;
        const w = Mathf.exp(load<f32>(f4(ps_, hd)) - m) / l;
        a = f32x4.add(a, f32x4.mul(f32x4.splat(w), ldz(f4(ps_, d), c)));
      }
      stc(f4(o, d), a, c);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// prefill

/** dst [hd, bk] = the bk value rows at v0 (stride rowB)ᵀ */
function packVt(v0: usize, rowB: usize, bk: i32, hd: i32, dst: usize): void {
  const dRow = <usize>bk << 2;
  const bk4 = bk & ~3, hd4 = hd & ~3;
  for (let j = 0; j < bk4; j += 4) {
    const r0 = v0 + <usize>j * rowB;
    for (let d = 0; d < hd4; d += 4) {
      const o = <usize>d << 2;
      const a0 = v128.load(r0 + o), a1 = v128.load(r0 + rowB + o), a2 = v128.load(r0 + 2 * rowB + o), a3 = v128.load(r0 + 3 * rowB + o);
      const t0 = v128.shuffle<f32>(a0, a1, 0, 4, 1, 5);
      const t1 = v128.shuffle<f32>(a2, a3, 0, 4, 1, 5);
      const t2 = v128.shuffle<f32>(a0, a1, 2, 6, 3, 7);
      const t3 = v128.shuffle<f32>(a2, a3, 2, 6, 3, 7);
      const p = dst + <usize>d * dRow + (<usize>j << 2);
      v128.store(p, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
      v128.store(p + dRow, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7));
      v128.store(p + 2 * dRow, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5));
      v128.store(p + 3 * dRow, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7));
    }
    for (let d = hd4; d < hd; d++) {
      for (let jj = j; jj < j + 4; jj++) store<f32>(dst + <usize>d * dRow + (<usize>jj << 2), load<f32>(f4(v0 + <usize>jj * rowB, d)));
    }
  }
  for (let j = bk4; j < bk; j++) {
    for (let d = 0; d < hd; d++) store<f32>(dst + <usize>d * dRow + (<usize>j << 2), load<f32>(f4(v0 + <usize>j * rowB, d)));
  }
}

/**
 * Flash-style causal attention over query tiles: q, out [b, L, Hq, hd]; past: i32 [b]; tiles of BQ positions × G
 * heads against BK keys; fmt: the cache's format (see the top). scratch: per thread tileFloats (see the JS side:
 * Mp·(3hd + BK + 2) + 3·BK·hd, M = G·BQ, Mp = M rounded up to a multiple of 4); counter: two i32, zeroed (the next
 * item). mode: 0 S = QKᵀ and PV on linear_f32's tiles, on a copied K tile and a transposed V tile (the kernel before
 * session 31); 1 the same on gemm_nt_f32_fma's 2×4 tiles (fused multiply-adds in the relaxed build; the plain build:
 * linear_f32's bits); 2 scores transposed (prefillItemT: K and V read in place, the softmax across 4 queries per
 * vector, PV accumulated into O on 4×8 FMA tiles).
 */
export function attention_prefill(
  q: usize, K: usize, V: usize, out: usize, past: usize, b: i32, L: i32, Hq: i32, Hkv: i32, hd: i32, cap: i32, scale: f32,
  BQ: i32, BK: i32, scratch: usize, tileFloats: i32, counter: usize, fmt: i32, mode: i32, t: i32, T: i32,
): void {
  if (mode == 2) {
    prefillT(q, K, V, out, past, b, L, Hq, Hkv, hd, cap, scale, BQ, BK, scratch, tileFloats, counter, fmt, t);
    return;
  }
  const fma = mode;
  const G = Hq / Hkv;
  const Mmax = G * BQ;
  const rowB = kvByte(fmt, <usize>(Hkv * hd));
  const qRowB = <usize>(Hq * hd) << 2;
  const hdB = <usize>hd << 2;
  const base = scratch + ((<usize>t * tileFloats) << 2);
  const Qt = base;
  const Kt = Qt + ((<usize>Mmax * hd) << 2);
  const Vt = Kt + ((<usize>BK * hd) << 2);
  const Sb = Vt + ((<usize>BK * hd) << 2);
  const O = Sb + ((<usize>Mmax * BK) << 2);
  const O2 = O + ((<usize>Mmax * hd) << 2);
  const mA = O2 + ((<usize>Mmax * hd) << 2);
  const lA = mA + (<usize>Mmax << 2);
  const Vf = lA + (<usize>Mmax << 2); // (16-bit caches) the V tile as f32 rows
  const nQt = (L + BQ - 1) / BQ;
  const perTile = b * Hkv;
  const items = nQt * perTile;
  for (;;) {
    const it = atomic.add<i32>(counter, 1);
    if (it >= items) break;
    const qt = nQt - 1 - it / perTile; // the longest tiles first
    const rg = it % perTile;
    const r = rg / Hkv, g = rg % Hkv;
    const t0 = qt * BQ;
    const bq = min(BQ, L - t0);
    const M = G * bq;
    const p0 = load<i32>(past + (<usize>r << 2)) + t0; // position of the tile's first query
    // Q tile (scaled): row i·bq + tt = head g·G + i at position t0 + tt
    for (let i = 0; i < G; i++) {
      for (let tt = 0; tt < bq; tt++) {
        const src = q + <usize>(r * L + t0 + tt) * qRowB + <usize>(g * G + i) * hdB;
        const dst = Qt + <usize>(i * bq + tt) * hdB;
        scaleInto(src, dst, hd, scale);
      }
    }
    for (let m = 0; m < M; m++) {
      store<f32>(f4(mA, m), -Infinity);
      store<f32>(f4(lA, m), 0);
    }
    memory.fill(O, 0, (<usize>M * hd) << 2);
    const kEnd = p0 + bq; // keys 0 … p0 + bq − 1
    const kvBase = (<usize>r * cap * Hkv + g) * hd;
    for (let j0 = 0; j0 < kEnd; j0 += BK) {
      const bk = min(BK, kEnd - j0);
      if (fmt == 3) {
        // q8: head g's values of the tile's positions (rows of whole blocks)
        const o = (<usize>r * cap + j0) * rowB;
        unpackQ8Rows(K + o, g * hd, rowB, bk, hd, Kt);
        unpackQ8Rows(V + o, g * hd, rowB, bk, hd, Vf);
        packVt(Vf, hdB, bk, hd, Vt);
      } else if (fmt == 0) {
        const k0 = K + ((kvBase + <usize>j0 * Hkv * hd) << 2), v0 = V + ((kvBase + <usize>j0 * Hkv * hd) << 2);
        for (let jj = 0; jj < bk; jj++) memory.copy(Kt + <usize>jj * hdB, k0 + <usize>jj * rowB, hdB);
        packVt(v0, rowB, bk, hd, Vt);
      } else {
        const k0 = K + ((kvBase + <usize>j0 * Hkv * hd) << 1), v0 = V + ((kvBase + <usize>j0 * Hkv * hd) << 1);
        unpackKV(fmt, k0, rowB, bk, hd, Kt);
        unpackKV(fmt, v0, rowB, bk, hd, Vf);
        packVt(Vf, hdB, bk, hd, Vt);
      }
      if (fma) gemm_nt_f32_fma(Qt, hdB, Kt, hdB, Sb, <usize>bk << 2, M, hd, bk);
      else linear_f32(Qt, Kt, 0, Sb, M, hd, bk, 0, bk);
      const rowS = <usize>bk << 2;
      for (let i = 0; i < G; i++) {
        for (let tt = 0; tt < bq; tt++) {
          const row = i * bq + tt;
          const sp = Sb + <usize>row * rowS;
          const nv = min(bk, p0 + tt - j0 + 1); // valid keys of this row in the tile
          if (nv <= 0) {
            memory.fill(sp, 0, rowS); // no key of this tile is visible to the row yet: m, l, O unchanged
            continue;
          }
          foldScores(sp, nv, bk, f4(mA, row), f4(lA, row), O + <usize>row * hdB, hd);
        }
      }
      if (fma) gemm_nt_f32_fma(Sb, rowS, Vt, rowS, O2, hdB, M, bk, hd);
      else linear_f32(Sb, Vt, 0, O2, M, bk, hd, 0, hd);
      addInto(O, O2, M * hd);
    }
    // out = O / l
    for (let i = 0; i < G; i++) {
      for (let tt = 0; tt < bq; tt++) {
        const row = i * bq + tt;
        const dst = out + <usize>(r * L + t0 + tt) * qRowB + <usize>(g * G + i) * hdB;
        scaleInto(O + <usize>row * hdB, dst, hd, <f32>1 / load<f32>(f4(lA, row)));
      }
    }
  }
}

/**
 * attention_prefill's mode 2. Per item (row r, KV head g, query tile of bq positions; rows m = i·bq + tt of the tile:
 * query head g·G + i at position p0 + tt, Mp = M rounded up to 4, rows past M zero and never valid): for each tile of
 * bk keys, Sᵀ [bk, Mp] = K_tile · Q_tileᵀ (gemm_nt_f32_fma, K read in place from the cache for fmt 0, else from its f32
 * copy), then the online softmax down Sᵀ's columns four queries per vector (keys past a query's position masked to
 * p = 0), the four rows of O rescaled, and O [Mp, hd] += Pᵀᵀ · V_tile on 4×8 tiles of fused multiply-adds (accTN),
 * V read in place (fmt 0) or from its f32 copy. out = O / l.
 */
function prefillT(
  q: usize, K: usize, V: usize, out: usize, past: usize, b: i32, L: i32, Hq: i32, Hkv: i32, hd: i32, cap: i32, scale: f32,
  BQ: i32, BK: i32, scratch: usize, tileFloats: i32, counter: usize, fmt: i32, t: i32,
): void {
  const G = Hq / Hkv;
  const Mmax = (G * BQ + 3) & ~3;
  const rowB = kvByte(fmt, <usize>(Hkv * hd));
  const qRowB = <usize>(Hq * hd) << 2;
  const hdB = <usize>hd << 2;
  const base = scratch + ((<usize>t * tileFloats) << 2);
  const Qt = base;
  const Kt = Qt + ((<usize>Mmax * hd) << 2);
  const Vf = Kt + ((<usize>BK * hd) << 2);
  const St = Vf + ((<usize>BK * hd) << 2);
  const O = St + ((<usize>Mmax * BK) << 2);
  const mA = O + ((<usize>Mmax * hd) << 2);
  const lA = mA + (<usize>Mmax << 2);
  const pA = lA + (<usize>Mmax << 2); // i32 [Mp]: each row's query position (−1: a padding row)
  const nQt = (L + BQ - 1) / BQ;
  const perTile = b * Hkv;
  const items = nQt * perTile;
  for (;;) {
    const it = atomic.add<i32>(counter, 1);
    if (it >= items) break;
    const qt = nQt - 1 - it / perTile; // the longest tiles first
    const rg = it % perTile;
    const r = rg / Hkv, g = rg % Hkv;
    const t0 = qt * BQ;
    const bq = min(BQ, L - t0);
    const M = G * bq, Mp = (M + 3) & ~3;
    const p0 = load<i32>(past + (<usize>r << 2)) + t0;
    for (let i = 0; i < G; i++) {
      for (let tt = 0; tt < bq; tt++) {
        const src = q + <usize>(r * L + t0 + tt) * qRowB + <usize>(g * G + i) * hdB;
        const m = i * bq + tt;
        scaleInto(src, Qt + <usize>m * hdB, hd, scale);
        store<i32>(pA + (<usize>m << 2), p0 + tt);
      }
    }
    for (let m = 0; m < Mp; m++) {
      store<f32>(f4(mA, m), -Infinity);
      store<f32>(f4(lA, m), 0);
    }
    for (let m = M; m < Mp; m++) store<i32>(pA + (<usize>m << 2), -1);
    if (Mp > M) memory.fill(Qt + <usize>M * hdB, 0, <usize>(Mp - M) * hdB);
    memory.fill(O, 0, (<usize>Mp * hd) << 2);
    const kEnd = p0 + bq;
    const kvBase = (<usize>r * cap * Hkv + g) * hd;
    const sRowB = <usize>Mp << 2;
    for (let j0 = 0; j0 < kEnd; j0 += BK) {
      const bk = min(BK, kEnd - j0);
      let kp: usize, vp: usize, kvRowB: usize;
      if (fmt == 0) {
        kp = K + ((kvBase + <usize>j0 * Hkv * hd) << 2);
        vp = V + ((kvBase + <usize>j0 * Hkv * hd) << 2);
        kvRowB = rowB;
      } else {
        if (fmt == 3) {
          const o = (<usize>r * cap + j0) * rowB;
          unpackQ8Rows(K + o, g * hd, rowB, bk, hd, Kt);
          unpackQ8Rows(V + o, g * hd, rowB, bk, hd, Vf);
        } else {
          unpackKV(fmt, K + ((kvBase + <usize>j0 * Hkv * hd) << 1), rowB, bk, hd, Kt);
          unpackKV(fmt, V + ((kvBase + <usize>j0 * Hkv * hd) << 1), rowB, bk, hd, Vf);
        }
        kp = Kt;
        vp = Vf;
        kvRowB = hdB;
      }
      gemm_nt_f32_fma(kp, kvRowB, Qt, hdB, St, sRowB, bk, hd, Mp);
      // the online softmax, 4 queries per vector: key j0 + j is visible to the query at position p iff j0 + j ≤ p; in
      // a tile below the diagonal (every key before the tile's first position) to all, so nothing is masked there
      // (padding rows then take scores of zeros: their m, l, O are never read)
      const below = j0 + bk <= p0;
      for (let m = 0; m < Mp; m += 4) {
        const pos = v128.load(pA + (<usize>m << 2));
        const rel = i32x4.sub(pos, i32x4.splat(j0)); // key j visible iff j ≤ rel
        let mx = f32x4.splat(-Infinity);
        const col = St + (<usize>m << 2);
        let sum = f32x4.splat(0);
        const mOld = v128.load(f4(mA, m));
        let mNew: v128;
        if (below) {
          // two running maxima (half the dependent chain)
          let mx2 = f32x4.splat(-Infinity);
          let j = 0;
          for (; j + 2 <= bk; j += 2) {
            const pj = col + <usize>j * sRowB;
            mx = f32x4.max(mx, v128.load(pj));
            mx2 = f32x4.max(mx2, v128.load(pj + sRowB));
          }
          if (j < bk) mx = f32x4.max(mx, v128.load(col + <usize>j * sRowB));
          mNew = f32x4.max(mOld, f32x4.max(mx, mx2));
          let sum2 = f32x4.splat(0);
          j = 0;
          for (; j + 2 <= bk; j += 2) {
            const pj = col + <usize>j * sRowB;
            const e = vexp(f32x4.sub(v128.load(pj), mNew)), e2 = vexp(f32x4.sub(v128.load(pj + sRowB), mNew));
            v128.store(pj, e);
            v128.store(pj + sRowB, e2);
            sum = f32x4.add(sum, e);
            sum2 = f32x4.add(sum2, e2);
          }
          if (j < bk) {
            const pj = col + <usize>j * sRowB;
            const e = vexp(f32x4.sub(v128.load(pj), mNew));
            v128.store(pj, e);
            sum = f32x4.add(sum, e);
          }
          sum = f32x4.add(sum, sum2);
        } else {
          for (let j = 0; j < bk; j++) {
            const vis = i32x4.ge_s(rel, i32x4.splat(j));
            mx = f32x4.max(mx, v128.bitselect(v128.load(col + <usize>j * sRowB), f32x4.splat(-Infinity), vis));
          }
          mNew = f32x4.max(mOld, mx);
          for (let j = 0; j < bk; j++) {
            const vis = i32x4.ge_s(rel, i32x4.splat(j));
            const pj = col + <usize>j * sRowB;
            const e = v128.and(vexp(f32x4.sub(v128.load(pj), mNew)), vis);
            v128.store(pj, e);
            sum = f32x4.add(sum, e);
          }
        }
        // rows with no visible key yet keep m = −∞, l = 0 and O = 0 (their p are 0); else the rescale e^(m − m')
        const seen = f32x4.ne(mNew, f32x4.splat(-Infinity));
        const corr = v128.and(vexp(f32x4.sub(mOld, mNew)), seen);
        v128.store(f4(mA, m), mNew);
        v128.store(f4(lA, m), f32x4.add(f32x4.mul(v128.load(f4(lA, m)), corr), sum));
        if (j0 == 0) continue; // (O is still zeros)
        const o = O + <usize>m * hdB;
        const c0 = f32x4.extract_lane(corr, 0), c1 = f32x4.extract_lane(corr, 1), c2 = f32x4.extract_lane(corr, 2), c3 = f32x4.extract_lane(corr, 3);
        if (c0 != 1) scaleRow(o, hd, c0);
        if (c1 != 1 && m + 1 < M) scaleRow(o + hdB, hd, c1);
        if (c2 != 1 && m + 2 < M) scaleRow(o + 2 * hdB, hd, c2);
        if (c3 != 1 && m + 3 < M) scaleRow(o + 3 * hdB, hd, c3);
      }
      accTN(St, sRowB, vp, kvRowB, O, hdB, Mp, bk, hd);
    }
    for (let i = 0; i < G; i++) {
      for (let tt = 0; tt < bq; tt++) {
        const m = i * bq + tt;
        const dst = out + <usize>(r * L + t0 + tt) * qRowB + <usize>(g * G + i) * hdB;
        scaleInto(O + <usize>m * hdB, dst, hd, <f32>1 / load<f32>(f4(lA, m)));
      }
    }
  }
}

/**
 * c[i, n] += Σ_k a[k, i] · b[k, n] for i < M (a multiple of 4), n < N, k < K; rows of a, b, c aBytes, bRowB, cRowB
 * apart. 4 × 8 tiles (8 accumulators; a's 4 values of a k broadcast by shuffles of one load, b's 8 by two loads),
 * then 4 × 4, then one column at a time; every c[i, n] summed in k order onto its value (fused multiply-adds in the
 * relaxed build).
 */
function accTN(a: usize, aRowB: usize, b: usize, bRowB: usize, c: usize, cRowB: usize, M: i32, K: i32, N: i32): void {
  for (let i = 0; i < M; i += 4) {
    const c0 = c + <usize>i * cRowB, c1 = c0 + cRowB, c2 = c1 + cRowB, c3 = c2 + cRowB;
    const ai = a + (<usize>i << 2);
    let n = 0;
    for (; n + 8 <= N; n += 8) {
      const o = <usize>n << 2;
      let y00 = v128.load(c0 + o), y01 = v128.load(c0 + o, 16), y10 = v128.load(c1 + o), y11 = v128.load(c1 + o, 16);
      let y20 = v128.load(c2 + o), y21 = v128.load(c2 + o, 16), y30 = v128.load(c3 + o), y31 = v128.load(c3 + o, 16);
      let ap = ai, bp = b + o;
      for (let k = 0; k < K; k++, ap += aRowB, bp += bRowB) {
        const b0 = v128.load(bp), b1 = v128.load(bp, 16);
        const x = v128.load(ap);
        let s = v128.shuffle<f32>(x, x, 0, 0, 0, 0);
        y00 = madd(s, b0, y00); y01 = madd(s, b1, y01);
        s = v128.shuffle<f32>(x, x, 1, 1, 1, 1);
        y10 = madd(s, b0, y10); y11 = madd(s, b1, y11);
        s = v128.shuffle<f32>(x, x, 2, 2, 2, 2);
        y20 = madd(s, b0, y20); y21 = madd(s, b1, y21);
        s = v128.shuffle<f32>(x, x, 3, 3, 3, 3);
        y30 = madd(s, b0, y30); y31 = madd(s, b1, y31);
      }
      v128.store(c0 + o, y00); v128.store(c0 + o, y01, 16); v128.store(c1 + o, y10); v128.store(c1 + o, y11, 16);
      v128.store(c2 + o, y20); v128.store(c2 + o, y21, 16); v128.store(c3 + o, y30); v128.store(c3 + o, y31, 16);
    }
    for (; n + 4 <= N; n += 4) {
      const o = <usize>n << 2;
      let y0 = v128.load(c0 + o), y1 = v128.load(c1 + o), y2 = v128.load(c2 + o), y3 = v128.load(c3 + o);
      let ap = ai, bp = b + o;
      for (let k = 0; k < K; k++, ap += aRowB, bp += bRowB) {
        const b0 = v128.load(bp);
        const x = v128.load(ap);
        y0 = madd(v128.shuffle<f32>(x, x, 0, 0, 0, 0), b0, y0);
        y1 = madd(v128.shuffle<f32>(x, x, 1, 1, 1, 1), b0, y1);
        y2 = madd(v128.shuffle<f32>(x, x, 2, 2, 2, 2), b0, y2);
        y3 = madd(v128.shuffle<f32>(x, x, 3, 3, 3, 3), b0, y3);
      }
      v128.store(c0 + o, y0); v128.store(c1 + o, y1); v128.store(c2 + o, y2); v128.store(c3 + o, y3);
    }
    for (; n < N; n++) {
      // one column: the 4 rows as the lanes of one vector
      const o = <usize>n << 2;
      let y = f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(load<f32>(c0 + o)), 1, load<f32>(c1 + o)), 2, load<f32>(c2 + o)), 3, load<f32>(c3 + o));
      let ap = ai, bp = b + o;
      for (let k = 0; k < K; k++, ap += aRowB, bp += bRowB) y = madd(v128.load(ap), f32x4.splat(load<f32>(bp)), y);
      store<f32>(c0 + o, f32x4.extract_lane(y, 0)); store<f32>(c1 + o, f32x4.extract_lane(y, 1));
      store<f32>(c2 + o, f32x4.extract_lane(y, 2)); store<f32>(c3 + o, f32x4.extract_lane(y, 3));
    }
  }
}

/** dst[0, n) = src · c */
function scaleInto(src: usize, dst: usize, n: i32, c: f32): void {
  const cv = f32x4.splat(c);
  for (let k = 0; k < n; k += 4) {
    const w = min(4, n - k);
    stc(f4(dst, k), f32x4.mul(ldz(f4(src, k), w), cv), w);
  }
}

/** a[0, n) += b[0, n) */
function addInto(a: usize, b: usize, n: i32): void {
  let k = 0;
  for (; k + 4 <= n; k += 4) v128.store(f4(a, k), f32x4.add(v128.load(f4(a, k)), v128.load(f4(b, k))));
  for (; k < n; k++) store<f32>(f4(a, k), load<f32>(f4(a, k)) + load<f32>(f4(b, k)));
}
