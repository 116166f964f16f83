// Variants of the f32 matrix-vector product (M = 1, y = W · x, W [N, K] row-major with rows `rowB` bytes apart), for
// bench/matvec-stream.bench.ts only: which loop shape streams W from DRAM at the memory's rate (issue 18). The decode
// kernel itself is linear_f32 (linear.ts); the bench runs it too, as variant 0.
//
// mv_f32(variant, x, w, y, K, rowB, pf, N, split, lo, hi):
//   split 0: rows [lo, hi) (the runtime splits N between the threads, aligned to 4)
//   split T > 0: lo = this thread's index t of T (the runtime calls it over [0, T) with align 1): the columns (k) are
//            split instead, each thread computes all N rows over its k-range into its own partial y (y + t·4N); the
//            partials are not summed (a bench of the read only)
// K a multiple of 32 for every variant (768, 1536 at 130m).

import { gemv_f32_mode, linear_f32, set_gemv_f32_mode } from './linear';

let sink: u32 = 0;

/** variant 1-4: one row, A accumulators (A = 1: one chain of 4 adds per 16 floats), 16 floats per iteration */
// @ts-ignore: decorator
@inline function row1(x: usize, p: usize, K: i32, A: i32): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  for (let k = 0; k < K; k += 16) {
    const o = <usize>k * 4;
    const m0 = f32x4.mul(v128.load(p + o), v128.load(x + o));
    const m1 = f32x4.mul(v128.load(p + o, 16), v128.load(x + o, 16));
    const m2 = f32x4.mul(v128.load(p + o, 32), v128.load(x + o, 32));
    const m3 = f32x4.mul(v128.load(p + o, 48), v128.load(x + o, 48));
    if (A == 1) {
      a0 = f32x4.add(f32x4.add(f32x4.add(f32x4.add(a0, m0), m1), m2), m3);
    } else if (A == 2) {
      a0 = f32x4.add(f32x4.add(a0, m0), m2);
      a1 = f32x4.add(f32x4.add(a1, m1), m3);
    } else {
      a0 = f32x4.add(a0, m0); a1 = f32x4.add(a1, m1); a2 = f32x4.add(a2, m2); a3 = f32x4.add(a3, m3);
    }
  }
  const t = f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3));
  return f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1) + f32x4.extract_lane(t, 2) + f32x4.extract_lane(t, 3);
}

/** variant 4: one row, 8 accumulators, 32 floats (two lines) per iteration */
// @ts-ignore: decorator
@inline function row1x8(x: usize, p: usize, K: i32): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  for (let k = 0; k < K; k += 32) {
    const o = <usize>k * 4;
    a0 = f32x4.add(a0, f32x4.mul(v128.load(p + o), v128.load(x + o)));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(p + o, 16), v128.load(x + o, 16)));
    a2 = f32x4.add(a2, f32x4.mul(v128.load(p + o, 32), v128.load(x + o, 32)));
    a3 = f32x4.add(a3, f32x4.mul(v128.load(p + o, 48), v128.load(x + o, 48)));
    b0 = f32x4.add(b0, f32x4.mul(v128.load(p + o, 64), v128.load(x + o, 64)));
    b1 = f32x4.add(b1, f32x4.mul(v128.load(p + o, 80), v128.load(x + o, 80)));
    b2 = f32x4.add(b2, f32x4.mul(v128.load(p + o, 96), v128.load(x + o, 96)));
    b3 = f32x4.add(b3, f32x4.mul(v128.load(p + o, 112), v128.load(x + o, 112)));
  }
  const t = f32x4.add(f32x4.add(f32x4.add(a0, b0), f32x4.add(a1, b1)), f32x4.add(f32x4.add(a2, b2), f32x4.add(a3, b3)));
  return f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1) + f32x4.extract_lane(t, 2) + f32x4.extract_lane(t, 3);
}

/** variant 5: two rows at once (x loaded once for both), 2 accumulators each */
// @ts-ignore: decorator
@inline function rows2(x: usize, p: usize, rowB: usize, K: i32, y: usize): void {
  const q = p + rowB;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), b0 = f32x4.splat(0), b1 = f32x4.splat(0);
  for (let k = 0; k < K; k += 8) {
    const o = <usize>k * 4;
    const x0 = v128.load(x + o), x1 = v128.load(x + o, 16);
    a0 = f32x4.add(a0, f32x4.mul(v128.load(p + o), x0));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(p + o, 16), x1));
    b0 = f32x4.add(b0, f32x4.mul(v128.load(q + o), x0));
    b1 = f32x4.add(b1, f32x4.mul(v128.load(q + o, 16), x1));
  }
  const s = f32x4.add(a0, a1), t = f32x4.add(b0, b1);
  store<f32>(y, f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3));
  store<f32>(y, f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1) + f32x4.extract_lane(t, 2) + f32x4.extract_lane(t, 3), 4);
}

/** variant 6: four rows at once, 2 accumulators each (8 in all) */
// @ts-ignore: decorator
@inline function rows4(x: usize, p: usize, rowB: usize, K: i32, y: usize): void {
  const p1 = p + rowB, p2 = p1 + rowB, p3 = p2 + rowB;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), b0 = f32x4.splat(0), b1 = f32x4.splat(0);
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), d0 = f32x4.splat(0), d1 = f32x4.splat(0);
  for (let k = 0; k < K; k += 8) {
    const o = <usize>k * 4;
    const x0 = v128.load(x + o), x1 = v128.load(x + o, 16);
    a0 = f32x4.add(a0, f32x4.mul(v128.load(p + o), x0));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(p + o, 16), x1));
    b0 = f32x4.add(b0, f32x4.mul(v128.load(p1 + o), x0));
    b1 = f32x4.add(b1, f32x4.mul(v128.load(p1 + o, 16), x1));
    c0 = f32x4.add(c0, f32x4.mul(v128.load(p2 + o), x0));
    c1 = f32x4.add(c1, f32x4.mul(v128.load(p2 + o, 16), x1));
    d0 = f32x4.add(d0, f32x4.mul(v128.load(p3 + o), x0));
    d1 = f32x4.add(d1, f32x4.mul(v128.load(p3 + o, 16), x1));
  }
  v128.store(y, hsum4v(f32x4.add(a0, a1), f32x4.add(b0, b1), f32x4.add(c0, c1), f32x4.add(d0, d1)));
}

/** variant 7: eight rows at once, one accumulator each */
// @ts-ignore: decorator
@inline function rows8(x: usize, p: usize, rowB: usize, K: i32, y: usize): void {
  const p1 = p + rowB, p2 = p1 + rowB, p3 = p2 + rowB, p4 = p3 + rowB, p5 = p4 + rowB, p6 = p5 + rowB, p7 = p6 + rowB;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
  for (let k = 0; k < K; k += 4) {
    const o = <usize>k * 4;
    const x0 = v128.load(x + o);
    a0 = f32x4.add(a0, f32x4.mul(v128.load(p + o), x0));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(p1 + o), x0));
    a2 = f32x4.add(a2, f32x4.mul(v128.load(p2 + o), x0));
    a3 = f32x4.add(a3, f32x4.mul(v128.load(p3 + o), x0));
    a4 = f32x4.add(a4, f32x4.mul(v128.load(p4 + o), x0));
    a5 = f32x4.add(a5, f32x4.mul(v128.load(p5 + o), x0));
    a6 = f32x4.add(a6, f32x4.mul(v128.load(p6 + o), x0));
    a7 = f32x4.add(a7, f32x4.mul(v128.load(p7 + o), x0));
  }
  v128.store(y, hsum4v(a0, a1, a2, a3));
  v128.store(y, hsum4v(a4, a5, a6, a7), 16);
}

// @ts-ignore: decorator
@inline function hsum4v(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

/** variant 8: one row, 4 accumulators, touching one word per 64-byte line `pf` bytes ahead of the read */
// @ts-ignore: decorator
@inline function row1Touch(x: usize, p: usize, K: i32, pf: usize): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let junk: u32 = 0;
  for (let k = 0; k < K; k += 16) {
    const o = <usize>k * 4;
    junk ^= load<u32>(p + o + pf);
    a0 = f32x4.add(a0, f32x4.mul(v128.load(p + o), v128.load(x + o)));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(p + o, 16), v128.load(x + o, 16)));
    a2 = f32x4.add(a2, f32x4.mul(v128.load(p + o, 32), v128.load(x + o, 32)));
    a3 = f32x4.add(a3, f32x4.mul(v128.load(p + o, 48), v128.load(x + o, 48)));
  }
  sink ^= junk;
  const t = f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3));
  return f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1) + f32x4.extract_lane(t, 2) + f32x4.extract_lane(t, 3);
}

/** variant 9: no multiply, no x: the rows summed (stream_sum's loop, row by row) — the read alone, for comparison */
// @ts-ignore: decorator
@inline function rowSum(p: usize, K: i32): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  for (let k = 0; k < K; k += 16) {
    const o = <usize>k * 4;
    a0 = f32x4.add(a0, v128.load(p + o)); a1 = f32x4.add(a1, v128.load(p + o, 16));
    a2 = f32x4.add(a2, v128.load(p + o, 32)); a3 = f32x4.add(a3, v128.load(p + o, 48));
  }
  const t = f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3));
  return f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1) + f32x4.extract_lane(t, 2) + f32x4.extract_lane(t, 3);
}

/**
 * variant 10: W stored 4 rows interleaved ("column-blocked": for each group of 4 rows, 8 floats of row 0, 8 of row
 * 1, 8 of row 2, 8 of row 3, then the next 8 columns): one sequential stream, x loaded once per 4 rows.
 * `w` points at that layout (N/4 groups of 4·K floats); rowB is ignored.
 */
// @ts-ignore: decorator
@inline function packed4(x: usize, g: usize, K: i32, y: usize): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), b0 = f32x4.splat(0), b1 = f32x4.splat(0);
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), d0 = f32x4.splat(0), d1 = f32x4.splat(0);
  for (let k = 0; k < K; k += 8) {
    const o = <usize>k * 4, q = g + (<usize>k << 4);
    const x0 = v128.load(x + o), x1 = v128.load(x + o, 16);
    a0 = f32x4.add(a0, f32x4.mul(v128.load(q), x0));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(q, 16), x1));
    b0 = f32x4.add(b0, f32x4.mul(v128.load(q, 32), x0));
    b1 = f32x4.add(b1, f32x4.mul(v128.load(q, 48), x1));
    c0 = f32x4.add(c0, f32x4.mul(v128.load(q, 64), x0));
    c1 = f32x4.add(c1, f32x4.mul(v128.load(q, 80), x1));
    d0 = f32x4.add(d0, f32x4.mul(v128.load(q, 96), x0));
    d1 = f32x4.add(d1, f32x4.mul(v128.load(q, 112), x1));
  }
  v128.store(y, hsum4v(f32x4.add(a0, a1), f32x4.add(b0, b1), f32x4.add(c0, c1), f32x4.add(d0, d1)));
}

function rowsOf(variant: i32, x: usize, w: usize, y: usize, K: i32, rowB: usize, pf: usize, n0: i32, n1: i32): void {
  if (variant == 0) {
    // the decode kernel (rows exactly K floats apart: rowB must be 4K)
    linear_f32(x, w, 0, y, 1, K, n1, n0, n1);
    return;
  }
  if (variant == 11) {
    // the decode kernel before issue 18's fix (linear.ts, gemvF32Mode 1)
    const mode = gemv_f32_mode();
    set_gemv_f32_mode(1, 0, 1);
    linear_f32(x, w, 0, y, 1, K, n1, n0, n1);
    set_gemv_f32_mode(mode, 0, 1);
    return;
  }
  let j = n0;
  if (variant == 5) { for (; j + 2 <= n1; j += 2) rows2(x, w + <usize>j * rowB, rowB, K, y + (<usize>j << 2)); }
  else if (variant == 6) { for (; j + 4 <= n1; j += 4) rows4(x, w + <usize>j * rowB, rowB, K, y + (<usize>j << 2)); }
  else if (variant == 7) { for (; j + 8 <= n1; j += 8) rows8(x, w + <usize>j * rowB, rowB, K, y + (<usize>j << 2)); }
  else if (variant == 12) {
    // two inlined copies of r1a4's row loop, rows alternating between them (each copy's loads jump a row after each)
    for (; j + 2 <= n1; j += 2) {
      const p = w + <usize>j * rowB;
      const s0 = row1(x, p, K, 4);
      const s1 = row1(x, p + rowB, K, 4);
      store<f32>(y + (<usize>j << 2), s0);
      store<f32>(y + (<usize>j << 2), s1, 4);
    }
  }
  else if (variant == 10) { for (; j + 4 <= n1; j += 4) packed4(x, w + <usize>j * (<usize>K << 2), K, y + (<usize>j << 2)); }
  for (; j < n1; j++) {
    const p = w + <usize>j * rowB;
    let s: f32;
    if (variant == 1) s = row1(x, p, K, 1);
    else if (variant == 2) s = row1(x, p, K, 2);
    else if (variant == 4) s = row1x8(x, p, K);
    else if (variant == 8) s = row1Touch(x, p, K, pf);
    else if (variant == 9) s = rowSum(p, K);
    else s = row1(x, p, K, 4);
    store<f32>(y + (<usize>j << 2), s);
  }
}

export function mv_f32(variant: i32, x: usize, w: usize, y: usize, K: i32, rowB: usize, pf: usize, N: i32, split: i32,
                       lo: i32, hi: i32): void {
  if (split == 0) {
    rowsOf(variant, x, w, y, K, rowB, pf, lo, hi);
    return;
  }
  // split the columns: slice `lo` of `split` slices of K (multiples of 32)
  const t = lo, T = split;
  const chunks = K >> 5;
  const k0 = ((chunks * t) / T) << 5, k1 = ((chunks * (t + 1)) / T) << 5;
  if (k1 <= k0) return;
  const off = <usize>k0 << 2;
  rowsOf(variant == 0 || variant == 11 ? 3 : variant, x + off, w + off, y + <usize>t * (<usize>N << 2), k1 - k0, rowB, pf, 0, N);
}

/** the touches' words, so that they are not optimized away */
export function mv_sink(): u32 {
  return sink;
}
