// Linear layers with q8 weights (the format of linear.ts's list): y[M, N] = x[M, K] · W[N, K]ᵀ (+ bias[N]), columns
// [n0, n1) of every row, with x quantized first (quantize_rows_q8); and quantize_q8, f32 weights → q8.

import { gather } from './simd';
import { pfChunk, sinkTouches, store1, store4, touchPart } from './linear_common';

// ---------------------------------------------------------------------------------------------------------------
// q8: int8 weights in blocks of 32 along K, one f32 scale per block: w[j, k] = qs[j, k] · scales[j, k >> 5].
//
// Integer dot products, as llama.cpp does for Q8_0, with the activations quantized to 13 bits instead of 8: the rows
// of x are first quantized per block of 32 (quantize_rows_q8: xs = max|x| / 4095, xq = round(x / xs)); then each
// block's Σ qs · xq is computed exactly with i32x4.dot_i16x8_s (pmaddwd: 8 i16 products summed in pairs into i32),
// made an f32 once (exactly) and multiplied by scale · xs:
//   y[i, j] = 2^-8 · Σ_b S[i, j, b] · (scales[j, b] · xs[i, b])   (S = 256 · the block's integer dot product)
// summed in f32 in block order, in every code path alike (the tiles for M > 1, M = 1, the tails). So a value depends
// only on its W row and its x row: the same bits however N (or M) is split.
// Why 13 bits: it is the most for which a block's sum stays exact in f32 (32 · 128 · 4095 < 2^24), and fewer cost
// accuracy that shows. max |Δlogit| / max |logit| of the q8 mamba2-tiny test fixture (bound 0.03): f32 activations
// 0.0300, 8 bits (Q8_0's) 0.0538, 12 bits 0.0308, 13 bits 0.0296 (RMS error +0.05 %; at 13-16 bits the max moves
// by a few 1e-4 either way, e.g. 16 bits 0.0300).
//
// Widening the weights costs one instruction per 8: a v128 of 16 int8 weights, read as i16x8, holds the even-k
// weights in the low bytes of its lanes and the odd-k weights in the high bytes; i16x8.shl(q, 8) is 256 · q_even and
// q & 0xFF00 is 256 · q_odd. The activations are stored to match (quantize_rows_q8), per block of 32 as 4 i16x8:
//   [xq k = 0, 2, …, 14;  xq k = 1, 3, …, 15;  xq k = 16, 18, …, 30;  xq k = 17, 19, …, 31]
// Every product is 256 · q · xq, |·| ≤ 256 · 128 · 4095 < 2^27: a lane of i32 partial sums (8 products) and the sum
// of two lanes (16) fit in i32, the sum of all four (a whole block) might not; so the last step of the block sum is
// done in f32, where the two halves are exact (multiples of 2^8 below 2^24 · 2^8) and so is their sum
// (|S| ≤ 256 · 32 · 128 · 4095 < 2^24 · 2^8). The 2^-8 is applied to the final sums (exact).
//
// Per block of 32 weights and row of x: 2 instructions per 16 weights to widen them, 4 dot_i16x8_s, 3 i32 adds;
// the reduction, conversion and scaling are shared by 4 dot products: their 4 partial sums are reduced together
// (hsum4s) into one f32x4 of block sums, scaled as one vector:
//   M = 1 (decode): 1 x row × 4 W rows (the x block is loaded once for the 4), lanes = W rows, the 4 rows one from
//     each quarter of the thread's rows so that each load instruction of W streams its quarter (gemvQ8Mode below;
//     'rows4', the kernel before, took 4 adjacent rows and touched the next group meanwhile). ~25 GB of weights per
//     CPU-second on one thread from DRAM as from L3: compute-bound (bench/matvec-stream.bench.ts; gemvF32Seq streams
//     ~30 from DRAM).
//   M > 1: 4 x rows × 2 W rows (the widened weights serve 4 x rows, the x rows 2 W rows), lanes = x rows, over a
//     panel of 4 W rows that stays in L1 while a chunk of ~256 KiB of quantized x rows (L2) passes over it.

// The partial block sums of the dot products of a block step (t: W row 0, u: W row 1 of a tile), kept in wasm
// globals (per instance, i.e. per thread): writing a global is a side effect, which makes V8 (TurboFan) finish each
// dot product before it starts the next. In locals it computes them all interleaved, all the widened weight vectors
// first, and spills (1.15-1.25x slower).
let t0: v128 = i32x4.splat(0), t1: v128 = i32x4.splat(0), t2: v128 = i32x4.splat(0), t3: v128 = i32x4.splat(0);
let u0: v128 = i32x4.splat(0), u1: v128 = i32x4.splat(0), u2: v128 = i32x4.splat(0), u3: v128 = i32x4.splat(0);

/** the largest |xq| of quantize_rows_q8 (13 bits) */
const X_QMAX: f32 = 4095;
const Q8_UNSCALE: f32 = 0.00390625; // 2^-8

/** 16 int8 weights → the even-k ones · 256 as i16x8 */
// @ts-ignore: decorator
@inline function q8even(q: v128): v128 {
  return i16x8.shl(q, 8);
}
/** 16 int8 weights → the odd-k ones · 256 as i16x8 */
// @ts-ignore: decorator
@inline function q8odd(q: v128): v128 {
  return v128.and(q, i16x8.splat(<i16>0xFF00));
}

/**
 * [Σ lanes of a, of b, of c, of d] for the i32 partial block sums a..d, as f32 (exact): lanes 0 + 2 and 1 + 3 in
 * i32, then the two halves in f32 (see above)
 */
// @ts-ignore: decorator
@inline function hsum4s(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.convert_i32x4_s(i32x4.add(v128.shuffle<i32>(a, b, 0, 4, 1, 5), v128.shuffle<i32>(a, b, 2, 6, 3, 7)));
  const cd = f32x4.convert_i32x4_s(i32x4.add(v128.shuffle<i32>(c, d, 0, 4, 1, 5), v128.shuffle<i32>(c, d, 2, 6, 3, 7)));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

/** the block sum of one vector of i32 partial sums as f32 (exact; the same steps as one lane of hsum4s) */
// @ts-ignore: decorator
@inline function hsum1s(t: v128): f32 {
  return <f32>(i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 2)) +
         <f32>(i32x4.extract_lane(t, 1) + i32x4.extract_lane(t, 3));
}

/**
 * One block: the widened weights (e0, o0: k 0-15 as 256 · even, odd; e1, o1: k 16-31) · the quantized x block
 * (x0..x3, in the layout above) → 4 partial i32 sums of S.
 */
// @ts-ignore: decorator
@inline function q8bdot(e0: v128, o0: v128, e1: v128, o1: v128, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  return i32x4.add(i32x4.add(i32x4.dot_i16x8_s(e0, x0), i32x4.dot_i16x8_s(o0, x1)),
                   i32x4.add(i32x4.dot_i16x8_s(e1, x2), i32x4.dot_i16x8_s(o1, x3)));
}

/** one block of W row qp (32 int8) · the quantized x block at xp → 4 partial i32 sums of S */
// @ts-ignore: decorator
@inline function q8bdotW(qp: usize, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const qa = v128.load(qp), qb = v128.load(qp, 16);
  return q8bdot(q8even(qa), q8odd(qa), q8even(qb), q8odd(qb), x0, x1, x2, x3);
}

/**
 * 1 quantized x row (xq, its block scales xs) × 4 adjacent rows of q8 W (q0: first row of qs, s0: its first scale) →
 * the 4 dot products (q8dot1x4apart with the rows one row apart). pfq ≠ 0: touches the next 4 rows (qs at pfq, scales
 * at pfs) meanwhile.
 */
// @ts-ignore: decorator
@inline function q8dot1x4(xq: usize, xs: usize, q0: usize, s0: usize, K: i32, pfq: usize, pfs: usize, px: usize = 0, pxLines: usize = 0): v128 {
  return q8dot1x4apart(xq, xs, q0, s0, K, <usize>K, <usize>K >> 3, px, pxLines, pfq, pfs);
}

/** 1 quantized x row × 1 row of q8 W (the same arithmetic as one lane of q8dot1x4) */
// @ts-ignore: decorator
@inline function q8dot1x1(xq: usize, xs: usize, q0: usize, s0: usize, K: i32): f32 {
  let acc: f32 = 0;
  const nb = <usize>K >> 5;
  for (let b: usize = 0; b < nb; b++) {
    const xp = xq + (b << 6), so = b << 2;
    const t = q8bdotW(q0 + (b << 5), v128.load(xp), v128.load(xp, 16), v128.load(xp, 32), v128.load(xp, 48));
    acc += hsum1s(t) * (load<f32>(s0 + so) * load<f32>(xs + so));
  }
  return acc * Q8_UNSCALE;
}

/**
 * 4 blocks of q8 W from qp · the quantized x blocks from xp (4 × 64 bytes) → their 4 block sums S as f32x4 (lanes =
 * blocks; exact, see hsum4s), each times its scale product (scales of W at sp, of x at xsp: lanes = blocks), as f32x4.
 * The block sums go through the globals t0..t3 (see there) or u0..u3.
 */
// @ts-ignore: decorator
@inline function q8blocks4t(qp: usize, xp: usize, sp: usize, xsp: usize): v128 {
  t0 = q8bdotW(qp, v128.load(xp), v128.load(xp, 16), v128.load(xp, 32), v128.load(xp, 48));
  t1 = q8bdotW(qp + 32, v128.load(xp, 64), v128.load(xp, 80), v128.load(xp, 96), v128.load(xp, 112));
  t2 = q8bdotW(qp + 64, v128.load(xp, 128), v128.load(xp, 144), v128.load(xp, 160), v128.load(xp, 176));
  t3 = q8bdotW(qp + 96, v128.load(xp, 192), v128.load(xp, 208), v128.load(xp, 224), v128.load(xp, 240));
  return f32x4.mul(hsum4s(t0, t1, t2, t3), f32x4.mul(v128.load(sp), v128.load(xsp)));
}
/** q8blocks4t through u0..u3 */
// @ts-ignore: decorator
@inline function q8blocks4u(qp: usize, xp: usize, sp: usize, xsp: usize): v128 {
  u0 = q8bdotW(qp, v128.load(xp), v128.load(xp, 16), v128.load(xp, 32), v128.load(xp, 48));
  u1 = q8bdotW(qp + 32, v128.load(xp, 64), v128.load(xp, 80), v128.load(xp, 96), v128.load(xp, 112));
  u2 = q8bdotW(qp + 64, v128.load(xp, 128), v128.load(xp, 144), v128.load(xp, 160), v128.load(xp, 176));
  u3 = q8bdotW(qp + 96, v128.load(xp, 192), v128.load(xp, 208), v128.load(xp, 224), v128.load(xp, 240));
  return f32x4.mul(hsum4s(u0, u1, u2, u3), f32x4.mul(v128.load(sp), v128.load(xsp)));
}

/** acc + lane 0 + lane 1 + lane 2 + lane 3 of p, in that order (f32) */
// @ts-ignore: decorator
@inline function addLanes(acc: f32, p: v128): f32 {
  acc += f32x4.extract_lane(p, 0);
  acc += f32x4.extract_lane(p, 1);
  acc += f32x4.extract_lane(p, 2);
  return acc + f32x4.extract_lane(p, 3);
}

/**
 * 1 quantized x row × 1 row of q8 W (the same arithmetic as q8dot1x1, so the same bits as one lane of q8dot1x4),
 * 8 blocks per step: each 4 blocks' integer sums reduced together (hsum4s, lanes = blocks), scaled by one vector load
 * of the row's 4 scales times one of x's, then added to the row's sum one lane after another, in block order. One
 * copy of this loop walks the rows of W one after another (gemvQ8Mode 0, 'seq'; and the rows 'quarters' leaves).
 */
// @ts-ignore: decorator
@inline function q8dot1row(xq: usize, xs: usize, q0: usize, s0: usize, K: i32): f32 {
  let acc: f32 = 0;
  const nb = <usize>K >> 5;
  let b: usize = 0;
  for (; b + 8 <= nb; b += 8) {
    const xp = xq + (b << 6), qp = q0 + (b << 5), sp = s0 + (b << 2), xsp = xs + (b << 2);
    const p = q8blocks4t(qp, xp, sp, xsp);
    const r = q8blocks4u(qp + 128, xp + 256, sp + 16, xsp + 16);
    acc = addLanes(addLanes(acc, p), r);
  }
  if (b + 4 <= nb) {
    acc = addLanes(acc, q8blocks4t(q0 + (b << 5), xq + (b << 6), s0 + (b << 2), xs + (b << 2)));
    b += 4;
  }
  for (; b < nb; b++) {
    const xp = xq + (b << 6), so = b << 2;
    const t = q8bdotW(q0 + (b << 5), v128.load(xp), v128.load(xp, 16), v128.load(xp, 32), v128.load(xp, 48));
    acc += hsum1s(t) * (load<f32>(s0 + so) * load<f32>(xs + so));
  }
  return acc * Q8_UNSCALE;
}

/**
 * 1 quantized x row × 4 rows of q8 W that lie Q rows apart (q0, q0 + Q·K, …; scales likewise) → the 4 dot products
 * (lanes = rows; the same arithmetic as q8dot1x4, so the same bits): x loaded once for the 4, and each of the 4 load
 * instructions of W walks its own quarter of the rows start to end as the caller steps q0 by one row. px ≠ 0: touches
 * pxLines 64-byte lines from px meanwhile, one per block (linear_q8_touch); pfq ≠ 0: see q8dot1x4
 */
// @ts-ignore: decorator
@inline function q8dot1x4apart(xq: usize, xs: usize, q0: usize, s0: usize, K: i32, qQ: usize, sQ: usize, px: usize = 0, pxLines: usize = 0, pfq: usize = 0, pfs: usize = 0): v128 {
  const q1 = q0 + qQ, q2 = q1 + qQ, q3 = q2 + qQ;
  let acc = f32x4.splat(0);
  let junk: u32 = 0;
  const nb = <usize>K >> 5;
  for (let b: usize = 0; b < nb; b++) {
    const xp = xq + (b << 6), k = b << 5, so = b << 2;
    if (pfq) {
      // (q8dot1x4) this block consumes 4 · 32 bytes of qs and 4 · 4 of scales: touch as many of the next group
      junk ^= load<u32>(pfq + (k << 2)) ^ load<u32>(pfq + (k << 2), 64) ^ load<u32>(pfs + (so << 2));
    }
    if (px && b < pxLines) junk ^= load<u32>(px + (b << 6));
    const x0 = v128.load(xp), x1 = v128.load(xp, 16), x2 = v128.load(xp, 32), x3 = v128.load(xp, 48);
    t0 = q8bdotW(q0 + k, x0, x1, x2, x3);
    t1 = q8bdotW(q1 + k, x0, x1, x2, x3);
    t2 = q8bdotW(q2 + k, x0, x1, x2, x3);
    t3 = q8bdotW(q3 + k, x0, x1, x2, x3);
    const S = hsum4s(t0, t1, t2, t3);
    const sc = f32x4.mul(gather(s0 + so, sQ, 4), v128.load32_splat(xs + so));
    acc = f32x4.add(acc, f32x4.mul(S, sc));
  }
  if (pfq || px) sinkTouches(junk);
  return f32x4.mul(acc, f32x4.splat(Q8_UNSCALE));
}

/**
 * q8dot1row touching `lines` 64-byte lines from px meanwhile (linear_q8_touch), one before each 4 blocks while any are
 * left, so that each miss overlaps compute (the same bits as q8dot1row)
 */
// @ts-ignore: decorator
@inline function q8dot1rowTouch(xq: usize, xs: usize, q0: usize, s0: usize, K: i32, px: usize, lines: usize): f32 {
  let acc: f32 = 0;
  let junk: u32 = 0;
  const pe = px + (lines << 6);
  const nb = <usize>K >> 5;
  let b: usize = 0;
  for (; b + 8 <= nb; b += 8) {
    const xp = xq + (b << 6), qp = q0 + (b << 5), sp = s0 + (b << 2), xsp = xs + (b << 2);
    if (px < pe) { junk ^= load<u32>(px); px += 64; }
    const p = q8blocks4t(qp, xp, sp, xsp);
    if (px < pe) { junk ^= load<u32>(px); px += 64; }
    const r = q8blocks4u(qp + 128, xp + 256, sp + 16, xsp + 16);
    acc = addLanes(addLanes(acc, p), r);
  }
  if (b + 4 <= nb) {
    if (px < pe) { junk ^= load<u32>(px); px += 64; }
    acc = addLanes(acc, q8blocks4t(q0 + (b << 5), xq + (b << 6), s0 + (b << 2), xs + (b << 2)));
    b += 4;
  }
  for (; px < pe; px += 64) junk ^= load<u32>(px); // (K < 128: the rest at once)
  for (; b < nb; b++) {
    const xp = xq + (b << 6), so = b << 2;
    const t = q8bdotW(q0 + (b << 5), v128.load(xp), v128.load(xp, 16), v128.load(xp, 32), v128.load(xp, 48));
    acc += hsum1s(t) * (load<f32>(s0 + so) * load<f32>(xs + so));
  }
  sinkTouches(junk);
  return acc * Q8_UNSCALE;
}

/**
 * 4 quantized x rows (xq0, stride xqrowB; scales xs0, stride xsrowB) × 1 row of q8 W → y rows i..i+3 (y0, stride
 * yrowB), column j. The widened weights serve the 4 rows of x. (For the columns q8tile4x2 leaves.)
 */
// @ts-ignore: decorator
@inline function q8tile4x1(xq0: usize, xqrowB: usize, xs0: usize, xsrowB: usize, q0: usize, s0: usize, K: i32,
                           y0: usize, yrowB: usize, bias: usize, j: i32): void {
  const xq1 = xq0 + xqrowB, xq2 = xq1 + xqrowB, xq3 = xq2 + xqrowB;
  let acc = f32x4.splat(0);
  const nb = <usize>K >> 5;
  for (let b: usize = 0; b < nb; b++) {
    const qp = q0 + (b << 5), xo = b << 6, so = b << 2;
    const qa = v128.load(qp), qb = v128.load(qp, 16);
    const e0 = q8even(qa), o0 = q8odd(qa), e1 = q8even(qb), o1 = q8odd(qb);
    let p = xq0 + xo;
    t0 = q8bdot(e0, o0, e1, o1, v128.load(p), v128.load(p, 16), v128.load(p, 32), v128.load(p, 48));
    p = xq1 + xo;
    t1 = q8bdot(e0, o0, e1, o1, v128.load(p), v128.load(p, 16), v128.load(p, 32), v128.load(p, 48));
    p = xq2 + xo;
    t2 = q8bdot(e0, o0, e1, o1, v128.load(p), v128.load(p, 16), v128.load(p, 32), v128.load(p, 48));
    p = xq3 + xo;
    t3 = q8bdot(e0, o0, e1, o1, v128.load(p), v128.load(p, 16), v128.load(p, 32), v128.load(p, 48));
    const sc = f32x4.mul(v128.load32_splat(s0 + so), gather(xs0 + so, xsrowB, 4));
    acc = f32x4.add(acc, f32x4.mul(hsum4s(t0, t1, t2, t3), sc));
  }
  const r = f32x4.mul(acc, f32x4.splat(Q8_UNSCALE));
  store1(y0, bias, j, f32x4.extract_lane(r, 0));
  store1(y0 + yrowB, bias, j, f32x4.extract_lane(r, 1));
  store1(y0 + 2 * yrowB, bias, j, f32x4.extract_lane(r, 2));
  store1(y0 + 3 * yrowB, bias, j, f32x4.extract_lane(r, 3));
}

/** 4 quantized x rows × 2 rows of q8 W (q0, q0 + K) → y rows i..i+3, columns j, j + 1 (see q8tile4x1) */
// @ts-ignore: decorator
@inline function q8tile4x2(xq0: usize, xqrowB: usize, xs0: usize, xsrowB: usize, q0: usize, s0: usize, K: i32,
                           y0: usize, yrowB: usize, bias: usize, j: i32): void {
  const xq1 = xq0 + xqrowB, xq2 = xq1 + xqrowB, xq3 = xq2 + xqrowB;
  const q1 = q0 + <usize>K, s1 = s0 + (<usize>K >> 3);
  let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0);
  const nb = <usize>K >> 5;
  for (let b: usize = 0; b < nb; b++) {
    const k = b << 5, xo = b << 6, so = b << 2;
    const qa = v128.load(q0 + k), qb = v128.load(q0 + k, 16), ra = v128.load(q1 + k), rb = v128.load(q1 + k, 16);
    const e0 = q8even(qa), o0 = q8odd(qa), e1 = q8even(qb), o1 = q8odd(qb);
    const f0 = q8even(ra), p0 = q8odd(ra), f1 = q8even(rb), p1 = q8odd(rb);
    let p = xq0 + xo;
    let x0 = v128.load(p), x1 = v128.load(p, 16), x2 = v128.load(p, 32), x3 = v128.load(p, 48);
    t0 = q8bdot(e0, o0, e1, o1, x0, x1, x2, x3);
    u0 = q8bdot(f0, p0, f1, p1, x0, x1, x2, x3);
    p = xq1 + xo;
    x0 = v128.load(p); x1 = v128.load(p, 16); x2 = v128.load(p, 32); x3 = v128.load(p, 48);
    t1 = q8bdot(e0, o0, e1, o1, x0, x1, x2, x3);
    u1 = q8bdot(f0, p0, f1, p1, x0, x1, x2, x3);
    p = xq2 + xo;
    x0 = v128.load(p); x1 = v128.load(p, 16); x2 = v128.load(p, 32); x3 = v128.load(p, 48);
    t2 = q8bdot(e0, o0, e1, o1, x0, x1, x2, x3);
    u2 = q8bdot(f0, p0, f1, p1, x0, x1, x2, x3);
    p = xq3 + xo;
    x0 = v128.load(p); x1 = v128.load(p, 16); x2 = v128.load(p, 32); x3 = v128.load(p, 48);
    t3 = q8bdot(e0, o0, e1, o1, x0, x1, x2, x3);
    u3 = q8bdot(f0, p0, f1, p1, x0, x1, x2, x3);
    const xsv = gather(xs0 + so, xsrowB, 4);
    acc0 = f32x4.add(acc0, f32x4.mul(hsum4s(t0, t1, t2, t3), f32x4.mul(v128.load32_splat(s0 + so), xsv)));
    acc1 = f32x4.add(acc1, f32x4.mul(hsum4s(u0, u1, u2, u3), f32x4.mul(v128.load32_splat(s1 + so), xsv)));
  }
  const r0 = f32x4.mul(acc0, f32x4.splat(Q8_UNSCALE)), r1 = f32x4.mul(acc1, f32x4.splat(Q8_UNSCALE));
  store1(y0, bias, j, f32x4.extract_lane(r0, 0));
  store1(y0 + yrowB, bias, j, f32x4.extract_lane(r0, 1));
  store1(y0 + 2 * yrowB, bias, j, f32x4.extract_lane(r0, 2));
  store1(y0 + 3 * yrowB, bias, j, f32x4.extract_lane(r0, 3));
  store1(y0, bias, j + 1, f32x4.extract_lane(r1, 0));
  store1(y0 + yrowB, bias, j + 1, f32x4.extract_lane(r1, 1));
  store1(y0 + 2 * yrowB, bias, j + 1, f32x4.extract_lane(r1, 2));
  store1(y0 + 3 * yrowB, bias, j + 1, f32x4.extract_lane(r1, 3));
}

// The M = 1 kernel (decode). Mode 2 ('quarters', default): the rows [n0, n1) as 4 quarters, one row of each per step
// (q8dot1x4apart): x is loaded once for 4 rows and widened weights are reduced 4 rows at a time as in the kernel before,
// but each of the 4 load instructions of W walks its own quarter start to end (four sequential streams instead of
// four that jump 3 rows after every row). Mode 0 ('seq'): one row of W at a time through one copy of the row loop
// (q8dot1row; one stream, x reloaded per row, the 4 block sums of a row added in order lane by lane). Mode 1 ('rows4',
// the kernel before issue 18's session 32): 4 adjacent rows at once (q8dot1x4, the next group touched meanwhile).
// One thread, from DRAM (bench/matvec-stream.bench.ts, session 32): ~25 GB of q8 per CPU-second for 'quarters', ~22
// for 'seq', 16-22 for 'rows4'; in L3 all three ~25 (compute-bound). The same bits in every mode (tested).

/** which q8 matrix-vector kernel linear_q8 runs for M = 1: 3 'lean' (default), 2 four quarters, 0 one row at a time, 1 four adjacent rows */
let gemvQ8Mode: i32 = 3;

/** team kernel: every thread's instance selects its q8 matrix-vector kernel (see gemvQ8Mode) */
export function set_gemv_q8_mode(mode: i32, t: i32, T: i32): void {
  gemvQ8Mode = mode;
}

/** this instance's gemvQ8Mode */
export function gemv_q8_mode(): i32 {
  return gemvQ8Mode;
}

/**
 * linear_q8's M = 1 kernel 'quarters': rows [n0, n1) in 4 quarters of Q rows, one W row of each per step
 * (q8dot1x4apart), the rest (< 4) one at a time; touching [ta, tb) meanwhile when tb > ta (linear_q8_touch: an equal
 * share of its lines per step, one per block)
 */
function gemvQ8Quarters(xq: usize, xs: usize, qs: usize, scales: usize, bias: usize, y: usize, K: i32, n0: i32, n1: i32,
                        ta: usize, tb: usize): void {
  const qrowB = <usize>K, srowB = <usize>K >> 3;
  const Q = (n1 - n0) >> 2;
  const qQ = <usize>Q * qrowB, sQ = <usize>Q * srowB;
  const perStep = tb > ta ? ((tb - ta) / 64 + <usize>max(Q, 1) - 1) / <usize>max(Q, 1) : 0;
  let px = ta;
  for (let i = 0; i < Q; i++) {
    const j = n0 + i;
    const nl = px < tb ? min(perStep, (tb - px) / 64) : 0;
    const r = q8dot1x4apart(xq, xs, qs + <usize>j * qrowB, scales + <usize>j * srowB, K, qQ, sQ, nl ? px : 0, nl);
    px += nl << 6;
    store1(y, bias, j, f32x4.extract_lane(r, 0));
    store1(y, bias, j + Q, f32x4.extract_lane(r, 1));
    store1(y, bias, j + 2 * Q, f32x4.extract_lane(r, 2));
    store1(y, bias, j + 3 * Q, f32x4.extract_lane(r, 3));
  }
  for (let j = n0 + 4 * Q; j < n1; j++) {
    const nl = px < tb ? (tb - px) / 64 : 0; // (only when Q = 0: the few rows take the touches)
    store1(y, bias, j, q8dot1rowTouch(xq, xs, qs + <usize>j * qrowB, scales + <usize>j * srowB, K, px, nl));
    px += nl << 6;
  }
}

// Mode 3 ('lean', session 34): 'quarters' in a loop of its own, written for what V8 makes of it. In 'quarters' (V8's
// code for gemvQ8Quarters, --print-wasm-code) a block step of 4 rows took ~130 instructions for 56 that do the
// arithmetic: the block sums went through the globals t0..t3 (a store and a load each), every row's address and
// every scale's was recomputed with a multiply per block (binaryen folds q0 + i·qQ + k into the loop), the touch
// checks of linear_q8_touch stayed in the loop. Here pointers step by a block (W's by 32 bytes, x's by 64, the scales
// by 4), the rows' offsets qQ, 2·qQ, 3·qQ are loop constants, and the block sums are reduced pairwise as soon as two
// are ready (rows 0 and 1, then 2 and 3: hsum4s's steps in hsum4s's order), in locals; the first pair's is also stored
// to a global (not read back) to keep V8 from computing the 4 rows interleaved. ~98 instructions per block step in
// V8's code (--print-wasm-code, session 34), no spill.
// The same arithmetic in the same order per lane as 'quarters': the same bits.

/**
 * 1 quantized x row × 4 rows of q8 W qQ bytes apart (scales sQ apart) → the 4 dot products (q8dot1x4apart's
 * arithmetic without its touches; a function of its own, so that V8 compiles the loop with all of its registers)
 */
function q8row4lean(xq: usize, xs: usize, q0: usize, s0: usize, nb: usize, qQ: usize, sQ: usize): v128 {
  const q2Q = qQ << 1, q3Q = q2Q + qQ, s2Q = sQ << 1, s3Q = s2Q + sQ;
  let acc = f32x4.splat(0);
  let xp = xq, xsp = xs, sp = s0;
  const end = q0 + (nb << 5);
  for (let p = q0; p < end; p += 32) {
    const x0 = v128.load(xp), x1 = v128.load(xp, 16), x2 = v128.load(xp, 32), x3 = v128.load(xp, 48);
    // (rows 0 and 1's reduced sums also written to a global, never read back: the store orders rows 2 and 3's loads
    // after it, so that V8 does not hoist all 4 rows' loads and widenings together and spill — what 'quarters' used
    // the globals for, with a store and a load per row; one store per block was enough: no spill in V8's loop)
    const a = q8bdotW(p, x0, x1, x2, x3);
    const b = q8bdotW(p + qQ, x0, x1, x2, x3);
    const ab = f32x4.convert_i32x4_s(i32x4.add(v128.shuffle<i32>(a, b, 0, 4, 1, 5), v128.shuffle<i32>(a, b, 2, 6, 3, 7)));
    t0 = ab;
    const c = q8bdotW(p + q2Q, x0, x1, x2, x3);
    const d = q8bdotW(p + q3Q, x0, x1, x2, x3);
    const cd = f32x4.convert_i32x4_s(i32x4.add(v128.shuffle<i32>(c, d, 0, 4, 1, 5), v128.shuffle<i32>(c, d, 2, 6, 3, 7)));
    const S = f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
    let sc = v128.load32_zero(sp);
    sc = v128.load32_lane(sp + sQ, sc, 1);
    sc = v128.load32_lane(sp + s2Q, sc, 2);
    sc = v128.load32_lane(sp + s3Q, sc, 3);
    acc = f32x4.add(acc, f32x4.mul(S, f32x4.mul(sc, v128.load32_splat(xsp))));
    xp += 64;
    xsp += 4;
    sp += 4;
  }
  return f32x4.mul(acc, f32x4.splat(Q8_UNSCALE));
}

/** linear_q8's M = 1 kernel 'lean': rows [n0, n1) in 4 quarters (as gemvQ8Quarters, no touching), q8row4lean per step */
function gemvQ8Lean(xq: usize, xs: usize, qs: usize, scales: usize, bias: usize, y: usize, K: i32, n0: i32, n1: i32): void {
  const qrowB = <usize>K, srowB = <usize>K >> 3;
  const Q = (n1 - n0) >> 2;
  const qQ = <usize>Q * qrowB, sQ = <usize>Q * srowB;
  const nb = <usize>K >> 5;
  for (let i = 0; i < Q; i++) {
    const j = n0 + i;
    const r = q8row4lean(xq, xs, qs + <usize>j * qrowB, scales + <usize>j * srowB, nb, qQ, sQ);
    store1(y, bias, j, f32x4.extract_lane(r, 0));
    store1(y, bias, j + Q, f32x4.extract_lane(r, 1));
    store1(y, bias, j + 2 * Q, f32x4.extract_lane(r, 2));
    store1(y, bias, j + 3 * Q, f32x4.extract_lane(r, 3));
  }
  for (let j = n0 + 4 * Q; j < n1; j++) store1(y, bias, j, q8dot1row(xq, xs, qs + <usize>j * qrowB, scales + <usize>j * srowB, K));
}

/**
 * y[:, n0:n1] = x · Wᵀ (+ bias) with x quantized by quantize_rows_q8 (xq: i16 [M, K] in its layout, xs f32 [M, K/32])
 * and W q8: qs int8 [N, K], scales f32 [N, K/32]. K must be a multiple of 32.
 */
export function linear_q8(xq: usize, xs: usize, qs: usize, scales: usize, bias: usize, y: usize,
                          M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (n1 <= n0 || M <= 0) return;
  const qrowB = <usize>K, srowB = <usize>K >> 3; // also the bytes of xs per x row
  const qpB = qrowB << 2, spB = srowB << 2; // a panel of 4 rows
  const xqrowB = <usize>K << 1, yrowB = <usize>N << 2;
  if (M == 1 && gemvQ8Mode == 3) {
    gemvQ8Lean(xq, xs, qs, scales, bias, y, K, n0, n1);
    return;
  }
  if (M == 1 && gemvQ8Mode == 2) {
    gemvQ8Quarters(xq, xs, qs, scales, bias, y, K, n0, n1, 0, 0);
    return;
  }
  if (M == 1 && gemvQ8Mode == 0) {
    for (let j = n0; j < n1; j++) store1(y, bias, j, q8dot1row(xq, xs, qs + <usize>j * qrowB, scales + <usize>j * srowB, K));
    return;
  }
  if (M == 1) {
    let j = n0;
    for (; j + 4 <= n1; j += 4) {
      const qj = qs + <usize>j * qrowB, sj = scales + <usize>j * srowB;
      const more = j + 8 <= n1;
      store4(y, bias, j, q8dot1x4(xq, xs, qj, sj, K, more ? qj + qpB : 0, sj + spB));
    }
    for (; j < n1; j++) store1(y, bias, j, q8dot1x1(xq, xs, qs + <usize>j * qrowB, scales + <usize>j * srowB, K));
    return;
  }
  // rows of x per pass over a panel: that chunk of quantized x stays within ~256 KiB (L2)
  const MC = max(((128 * 1024) / max(K, 1)) & ~3, 4);
  for (let i0 = 0; i0 < M; i0 += MC) {
    const i1 = min(M, i0 + MC);
    let j = n0;
    for (; j + 4 <= n1; j += 4) {
      const qj = qs + <usize>j * qrowB, sj = scales + <usize>j * srowB;
      const more = j + 8 <= n1;
      const qchunk = pfChunk(qpB, (i1 - i0) >> 2), schunk = pfChunk(spB, (i1 - i0) >> 2);
      let i = i0;
      for (; i + 4 <= i1; i += 4) {
        if (more) {
          touchPart(qj + qpB, qpB, qchunk, (i - i0) >> 2);
          touchPart(sj + spB, spB, schunk, (i - i0) >> 2);
        }
        const xqi = xq + <usize>i * xqrowB, xsi = xs + <usize>i * srowB, yi = y + <usize>i * yrowB;
        q8tile4x2(xqi, xqrowB, xsi, srowB, qj, sj, K, yi, yrowB, bias, j);
        q8tile4x2(xqi, xqrowB, xsi, srowB, qj + 2 * qrowB, sj + 2 * srowB, K, yi, yrowB, bias, j + 2);
      }
      for (; i < i1; i++) {
        const pfq: usize = more && i == i0 ? qj + qpB : 0;
        store4(y + <usize>i * yrowB, bias, j,
               q8dot1x4(xq + <usize>i * xqrowB, xs + <usize>i * srowB, qj, sj, K, pfq, sj + spB));
      }
    }
    for (; j < n1; j++) {
      const qj = qs + <usize>j * qrowB, sj = scales + <usize>j * srowB;
      let i = i0;
      for (; i + 4 <= i1; i += 4) {
        q8tile4x1(xq + <usize>i * xqrowB, xqrowB, xs + <usize>i * srowB, srowB, qj, sj, K,
                  y + <usize>i * yrowB, yrowB, bias, j);
      }
      for (; i < i1; i++) {
        store1(y + <usize>i * yrowB, bias, j, q8dot1x1(xq + <usize>i * xqrowB, xs + <usize>i * srowB, qj, sj, K));
      }
    }
  }
}

/**
 * Quantizes rows [m0, m1) of the activations x f32 [M, K] for linear_q8 (xq i16 [M, K], xs f32 [M, K/32]): per block
 * of 32, xs = max|x| / 4095 and xq = round(x / xs) (ties to even), so |xq · xs - x| ≤ xs / 2; a block of zeros gets
 * xs = 0 and xq = 0. xq is stored in the layout described above (64 bytes per block: even k, odd k for k 0-15, then
 * for k 16-31). K must be a multiple of 32. (M is not needed: rows are addressed by m0, m1.)
 */
export function quantize_rows_q8(x: usize, xq: usize, xs: usize, M: i32, K: i32, m0: i32, m1: i32): void {
  const nb = <usize>K >> 5;
  for (let i = m0; i < m1; i++) {
    for (let b: usize = 0; b < nb; b++) {
      const blk = <usize>i * nb + b;
      const xp = x + (blk << 7), qp = xq + (blk << 6);
      const scale: f32 = absmax32(xp) / X_QMAX;
      store<f32>(xs + (blk << 2), scale);
      if (scale == 0) {
        v128.store(qp, i16x8.splat(0));
        v128.store(qp, i16x8.splat(0), 16);
        v128.store(qp, i16x8.splat(0), 32);
        v128.store(qp, i16x8.splat(0), 48);
        continue;
      }
      const s = f32x4.splat(scale);
      for (let h: usize = 0; h < 2; h++) {
        const p = xp + (h << 6); // 16 values
        const lo = i16x8.narrow_i32x4_s(q8round(v128.load(p), s, X_QMAX), q8round(v128.load(p, 16), s, X_QMAX));
        const hi = i16x8.narrow_i32x4_s(q8round(v128.load(p, 32), s, X_QMAX), q8round(v128.load(p, 48), s, X_QMAX));
        v128.store(qp + (h << 5), v128.shuffle<i16>(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14));
        v128.store(qp + (h << 5), v128.shuffle<i16>(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15), 16);
      }
    }
  }
}

/**
 * Quantizes rows [n0, n1) of the f32 matrix w [N, K] to q8 (qs int8 [N, K], scales f32 [N, K/32]): per block of 32,
 * scale = max|w| / 127 and q = round(w / scale) (ties to even), so |q · scale - w| ≤ scale / 2; a block of zeros gets
 * scale 0 and q = 0. K must be a multiple of 32. (N is not needed: rows are addressed by n0, n1.)
 */
export function quantize_q8(w: usize, qs: usize, scales: usize, N: i32, K: i32, n0: i32, n1: i32): void {
  const nb = <usize>K >> 5;
  for (let j = n0; j < n1; j++) {
    for (let b: usize = 0; b < nb; b++) {
      const blk = <usize>j * nb + b;
      const wp = w + (blk << 7), qp = qs + (blk << 5);
      const scale: f32 = absmax32(wp) / 127;
      store<f32>(scales + (blk << 2), scale);
      if (scale == 0) {
        v128.store(qp, i8x16.splat(0));
        v128.store(qp, i8x16.splat(0), 16);
        continue;
      }
      const s = f32x4.splat(scale);
      for (let h: usize = 0; h < 2; h++) {
        const p = wp + (h << 6); // 16 values
        const lo = i16x8.narrow_i32x4_s(q8round(v128.load(p), s, 127), q8round(v128.load(p, 16), s, 127));
        const hi = i16x8.narrow_i32x4_s(q8round(v128.load(p, 32), s, 127), q8round(v128.load(p, 48), s, 127));
        v128.store(qp + (h << 4), i8x16.narrow_i16x8_s(lo, hi));
      }
    }
  }
}

/** max |v| over the 32 f32 at p */
// @ts-ignore: decorator
@inline function absmax32(p: usize): f32 {
  let m = f32x4.max(f32x4.max(f32x4.max(f32x4.abs(v128.load(p)), f32x4.abs(v128.load(p, 16))),
                              f32x4.max(f32x4.abs(v128.load(p, 32)), f32x4.abs(v128.load(p, 48)))),
                    f32x4.max(f32x4.max(f32x4.abs(v128.load(p, 64)), f32x4.abs(v128.load(p, 80))),
                              f32x4.max(f32x4.abs(v128.load(p, 96)), f32x4.abs(v128.load(p, 112)))));
  m = f32x4.max(m, v128.shuffle<f32>(m, m, 2, 3, 0, 1));
  return max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1));
}

/** round(v / s) clamped to [-qmax, qmax], as i32x4 */
// @ts-ignore: decorator
@inline function q8round(v: v128, s: v128, qmax: f32): v128 {
  const c = f32x4.splat(qmax);
  return i32x4.trunc_sat_f32x4_s(f32x4.max(f32x4.min(f32x4.nearest(f32x4.div(v, s)), c), f32x4.neg(c)));
}

/**
 * linear_q8 for one row of x (M = 1), touching meanwhile what this thread reads next: its share of [touch, touch +
 * touchBytes) (the share of rows [n0, n1) of N: with the threads' row split, about the heads each steps next in a
 * Mamba-2 layer's state), one 64-byte line per block of 32 weights of a group of 4 rows, spread evenly over the
 * groups, so that each miss overlaps compute (a burst of touches stalls the core on them). Same bits as linear_q8.
 */
export function linear_q8_touch(xq: usize, xs: usize, qs: usize, scales: usize, bias: usize, y: usize,
                                M: i32, K: i32, N: i32, touch: usize, touchBytes: usize, n0: i32, n1: i32): void {
  const ta = touch + ((touchBytes * <usize>n0 / <usize>N) & ~63);
  const tb = touch + ((touchBytes * <usize>n1 / <usize>N) & ~63);
  const qrowB = <usize>K, srowB = <usize>K >> 3;
  if (gemvQ8Mode >= 2) {
    // ('lean' touches through the 'quarters' loop: the same bits)
    gemvQ8Quarters(xq, xs, qs, scales, bias, y, K, n0, n1, ta, tb);
    return;
  }
  if (gemvQ8Mode == 0) {
    // one row at a time (as linear_q8): each row's share of the lines touched among its blocks (q8dot1rowTouch)
    const rows = <usize>max(n1 - n0, 1);
    const perRow = ((tb - ta) / 64 + rows - 1) / rows;
    let px = ta;
    for (let j = n0; j < n1; j++) {
      const nl = px < tb ? min(perRow, (tb - px) / 64) : 0;
      store1(y, bias, j, q8dot1rowTouch(xq, xs, qs + <usize>j * qrowB, scales + <usize>j * srowB, K, px, nl));
      px += nl << 6;
    }
    return;
  }
  const qpB = qrowB << 2, spB = srowB << 2;
  const groups = <usize>max((n1 - n0) >> 2, 1);
  const lines = ((tb - ta) / 64 + groups - 1) / groups;
  let px = ta;
  let j = n0;
  for (; j + 4 <= n1; j += 4) {
    const qj = qs + <usize>j * qrowB, sj = scales + <usize>j * srowB;
    const more = j + 8 <= n1;
    const nl = px < tb ? min(lines, (tb - px) / 64) : 0;
    store4(y, bias, j, q8dot1x4(xq, xs, qj, sj, K, more ? qj + qpB : 0, sj + spB, nl ? px : 0, nl));
    px += nl * 64;
  }
  for (; j < n1; j++) store1(y, bias, j, q8dot1x1(xq, xs, qs + <usize>j * qrowB, scales + <usize>j * srowB, K));
}
