// Linear layers with q4 weights (GGUF Q4_K, repacked): y[M, N] = x[M, K] · W[N, K]ᵀ (+ bias[N]), columns [n0, n1)
// of every row, with x quantized first by linear_q8.ts's quantize_rows_q8 (13-bit integers per block of 32) and its
// block sums taken by q8_block_sums.
//
// ---------------------------------------------------------------------------------------------------------------
// q4: ggml's Q4_K super-blocks of 256 weights (8 blocks of 32; per block a 6-bit scale sc and a 6-bit min m; per
// super-block f16 d and dmin), w[j, k] = d · sc · q − dmin · m with q in [0, 15], repacked into three arrays:
//   qs  u8 [N, K/2]    16 bytes per block of 32; u16 word l (l = 0..7) of a block holds
//                      q[2l] | q[2l+1] << 4 | q[16+2l] << 8 | q[17+2l] << 12
//                      (so that the four nibbles of the 8 words line up with quantize_rows_q8's four i16x8 of a
//                      block: even k 0-14, odd k 1-15, even k 16-30, odd k 17-31);
//   sm  u8 [⌈N/4⌉, K/32, 8]   per group of 4 rows and block: sc of rows 0-3, then m of rows 0-3 (unpacked from
//                             Q4_K's 12 bytes; a last group of fewer rows is padded);
//   dd  f32 [⌈N/4⌉, K/256, 8] per group of 4 rows and super-block: d of rows 0-3, then dmin of rows 0-3 (the f16
//                             values, exact).
// (Grouped by 4 rows so that the M = 1 kernel loads a block's 4 scales and 4 mins with one 8-byte load.)
// 0.59375 bytes per weight (Q4_K itself: 0.5625; q8: 1.125).
//
// Per block b of a W row and an x row (xq, xs from quantize_rows_q8, Σxq from q8_block_sums):
//   S = Σ q · xq (exact in i32: 32 · 15 · 4095 < 2^21), then, in f32 in block order,
//   acc += ((d · sc) · S − (dmin · m) · Σxq) · xs
// d · sc and dmin · m are exact (11 × 6 bits); S and Σxq are exact integers. The result is the dot product of the
// dequantized weights with the quantized x, up to f32 rounding: only the activations' quantization differs from
// the dequantized f32 product. Every code path does these f32 steps in this order (the 4-row group of M = 1 as
// lanes, the 1-row tail as scalars), so a value depends only on its W row and its x row.
//
// Widening: a v128 of a block (8 u16 words) gives its four i16x8 of weights with and/shift: w & 15, (w >> 4) & 15,
// (w >> 8) & 15, w >> 12; 4 dot_i16x8_s against the x block. The partial sums go through wasm globals, as in
// linear_q8.ts (so that V8 finishes one dot product before the next instead of interleaving them and spilling).
//   M = 1 (decode): 1 x row × 4 W rows, lanes = W rows; the next 4 rows are touched meanwhile.
//   M > 1: for each panel of 4 W rows (in L1), every x row of a chunk (~256 KiB of quantized x) → 1 x row × 4 rows.

import { pfChunk, sinkTouches, store1, store4, touchPart } from './linear_common';

let t0: v128 = i32x4.splat(0), t1: v128 = i32x4.splat(0), t2: v128 = i32x4.splat(0), t3: v128 = i32x4.splat(0);

/** one block: 16 bytes of nibbles at qp · the x block (x0..x3) → 4 partial i32 sums of S */
// @ts-ignore: decorator
@inline function q4bdot(qp: usize, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const w = v128.load(qp);
  const m = i16x8.splat(15);
  return i32x4.add(i32x4.add(i32x4.dot_i16x8_s(v128.and(w, m), x0), i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(w, 4), m), x1)),
                   i32x4.add(i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(w, 8), m), x2), i32x4.dot_i16x8_s(i16x8.shr_u(w, 12), x3)));
}

/** [Σ lanes of a, b, c, d] as f32 (exact: |S| < 2^21) */
// @ts-ignore: decorator
@inline function hsum4i(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(v128.shuffle<i32>(a, b, 0, 4, 1, 5), v128.shuffle<i32>(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(v128.shuffle<i32>(c, d, 0, 4, 1, 5), v128.shuffle<i32>(c, d, 2, 6, 3, 7));
  return f32x4.convert_i32x4_s(i32x4.add(v128.shuffle<i32>(ab, cd, 0, 1, 4, 5), v128.shuffle<i32>(ab, cd, 2, 3, 6, 7)));
}

// @ts-ignore: decorator
@inline function hsum1i(t: v128): f32 {
  return <f32>(i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 1) + i32x4.extract_lane(t, 2) + i32x4.extract_lane(t, 3));
}

/**
 * 1 quantized x row (xq, xs, its block sums xb) × the 4 rows of q4 W of a group (row 0's qs at q0; the group's sm
 * at g0, dd at e0) → the 4 dot products. pf ≠ 0: touches the next 4 rows' qs (at pf) meanwhile.
 */
// @ts-ignore: decorator
@inline function q4dot1x4(xq: usize, xs: usize, xb: usize, q0: usize, g0: usize, e0: usize, K: i32, pf: usize): v128 {
  const qrowB = <usize>K >> 1;
  const q1 = q0 + qrowB, q2 = q1 + qrowB, q3 = q2 + qrowB;
  let acc = f32x4.splat(0);
  let junk: u32 = 0;
  const nsb = <usize>K >> 8;
  for (let s: usize = 0; s < nsb; s++) {
    const dv = v128.load(e0 + (s << 5)), mv = v128.load(e0 + (s << 5), 16);
    if (pf) {
      // this super-block consumes 4 · 128 bytes of qs: touch as many of the next group
      const o = pf + (s << 7);
      junk ^= load<u32>(o) ^ load<u32>(o, 64) ^ load<u32>(o + qrowB) ^ load<u32>(o + qrowB, 64) ^
              load<u32>(o + 2 * qrowB) ^ load<u32>(o + 2 * qrowB, 64) ^ load<u32>(o + 3 * qrowB) ^ load<u32>(o + 3 * qrowB, 64);
    }
    for (let bb: usize = 0; bb < 8; bb++) {
      const b = (s << 3) + bb;
      const xp = xq + (b << 6), k = b << 4;
      const x0 = v128.load(xp), x1 = v128.load(xp, 16), x2 = v128.load(xp, 32), x3 = v128.load(xp, 48);
      t0 = q4bdot(q0 + k, x0, x1, x2, x3);
      t1 = q4bdot(q1 + k, x0, x1, x2, x3);
      t2 = q4bdot(q2 + k, x0, x1, x2, x3);
      t3 = q4bdot(q3 + k, x0, x1, x2, x3);
      const S = hsum4i(t0, t1, t2, t3);
      const sm = i16x8.extend_low_i8x16_u(v128.load64_zero(g0 + (b << 3)));
      const dsc = f32x4.mul(dv, f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(sm)));
      const dm = f32x4.mul(mv, f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(sm)));
      const t = f32x4.sub(f32x4.mul(dsc, S), f32x4.mul(dm, v128.load32_splat(xb + (b << 2))));
      acc = f32x4.add(acc, f32x4.mul(t, v128.load32_splat(xs + (b << 2))));
    }
  }
  if (pf) sinkTouches(junk);
  return acc;
}

/** 1 quantized x row × row r (0-3) of a group of q4 W (the same arithmetic as one lane of q4dot1x4) */
// @ts-ignore: decorator
@inline function q4dot1x1(xq: usize, xs: usize, xb: usize, q0: usize, g0: usize, e0: usize, r: usize, K: i32): f32 {
  let acc: f32 = 0;
  const nsb = <usize>K >> 8;
  for (let s: usize = 0; s < nsb; s++) {
    const d = load<f32>(e0 + (s << 5) + (r << 2)), dmin = load<f32>(e0 + (s << 5) + (r << 2), 16);
    for (let bb: usize = 0; bb < 8; bb++) {
      const b = (s << 3) + bb;
      const xp = xq + (b << 6);
      const S = hsum1i(q4bdot(q0 + (b << 4), v128.load(xp), v128.load(xp, 16), v128.load(xp, 32), v128.load(xp, 48)));
      const mp = g0 + (b << 3) + r;
      const dsc = d * <f32>load<u8>(mp), dm = dmin * <f32>load<u8>(mp, 4);
      const t = dsc * S - dm * load<f32>(xb + (b << 2));
      acc += t * load<f32>(xs + (b << 2));
    }
  }
  return acc;
}

/**
 * y[:, n0:n1] = x · Wᵀ (+ bias) with x quantized by quantize_rows_q8 (xq i16 [M, K], xs f32 [M, K/32]) and its block
 * sums xb f32 [M, K/32] (q8_block_sums); W q4 (qs u8 [N, K/2], sm u8 [⌈N/4⌉, K/32, 8], dd f32 [⌈N/4⌉, K/256, 8]).
 * K must be a multiple of 256; n0 a multiple of 4 (the threads' split: align 4).
 */
export function linear_q4(xq: usize, xs: usize, xb: usize, qs: usize, sm: usize, dd: usize, bias: usize, y: usize,
                          M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (n1 <= n0 || M <= 0) return;
  const qrowB = <usize>K >> 1, mgrpB = <usize>K >> 2, dgrpB = <usize>K >> 3; // sm, dd: bytes per group of 4 rows
  const xqrowB = <usize>K << 1, xsrowB = <usize>K >> 3, yrowB = <usize>N << 2;
  const qpB = qrowB << 2;
  // rows of x per pass over a panel of 4 W rows: that chunk of quantized x stays within ~256 KiB (L2)
  const MC = M == 1 ? 1 : max((128 * 1024) / max(K, 1), 1);
  for (let i0 = 0; i0 < M; i0 += MC) {
    const i1 = min(M, i0 + MC);
    let j = n0;
    for (; j + 4 <= n1; j += 4) {
      const qj = qs + <usize>j * qrowB, mj = sm + <usize>(j >> 2) * mgrpB, dj = dd + <usize>(j >> 2) * dgrpB;
      const more = j + 8 <= n1;
      const chunk = pfChunk(qpB, i1 - i0);
      for (let i = i0; i < i1; i++) {
        // M = 1: the touches ride along in the dot products; M > 1: a part of the next panel per x row
        if (more && M > 1) touchPart(qj + qpB, qpB, chunk, i - i0);
        const pf: usize = more && M == 1 ? qj + qpB : 0;
        const xo = <usize>i * xsrowB;
        store4(y + <usize>i * yrowB, bias, j, q4dot1x4(xq + <usize>i * xqrowB, xs + xo, xb + xo, qj, mj, dj, K, pf));
      }
    }
    for (; j < n1; j++) {
      const qj = qs + <usize>j * qrowB, mj = sm + <usize>(j >> 2) * mgrpB, dj = dd + <usize>(j >> 2) * dgrpB;
      for (let i = i0; i < i1; i++) {
        const xo = <usize>i * xsrowB;
        store1(y + <usize>i * yrowB, bias, j, q4dot1x1(xq + <usize>i * xqrowB, xs + xo, xb + xo, qj, mj, dj, <usize>(j & 3), K));
      }
    }
  }
}

/** xb[i, b] = Σ of the 32 quantized values of block b of x row i (quantize_rows_q8's xq), as f32 (exact), rows [m0, m1) */
export function q8_block_sums(xq: usize, xb: usize, M: i32, K: i32, m0: i32, m1: i32): void {
  const nb = <usize>K >> 5;
  const ones = i16x8.splat(1);
  for (let i = m0; i < m1; i++) {
    for (let b: usize = 0; b < nb; b++) {
      const blk = <usize>i * nb + b;
      const p = xq + (blk << 6);
      const t = i32x4.add(i32x4.add(i32x4.dot_i16x8_s(v128.load(p), ones), i32x4.dot_i16x8_s(v128.load(p, 16), ones)),
                          i32x4.add(i32x4.dot_i16x8_s(v128.load(p, 32), ones), i32x4.dot_i16x8_s(v128.load(p, 48), ones)));
      store<f32>(xb + (blk << 2), hsum1i(t));
    }
  }
}
