// Several products of one input in one call: y_i = x · W_iᵀ (+ b_i) for up to 3 matrices of one format (a Transformer
// layer's q/k/v, an MLP's gate/up), their rows taken as one range [0, N0 + N1 + N2) that the threads split — one
// hand-off to the workers instead of one per product, with both threads streaming the rows of every matrix. Each
// matrix's slice of the range runs the one-matrix kernel on it (linear.ts, linear_q8.ts): the same bits as separate
// calls, since those kernels give the same bits for any split of N.

import { linear_bf16, linear_f16, linear_f32 } from './linear';
import { linear_q8 } from './linear_q8';

/** rows [lo, hi) of the joint range, as rows [a, b) of the matrix whose rows start at `start` (a ≥ b: none) */
// @ts-ignore: decorator
@inline function piece(lo: i32, hi: i32, start: i32, N: i32): i64 {
  const a = max(lo, start) - start, b = min(hi, start + N) - start;
  return (<i64>a << 32) | <i64>(<u32>b);
}

/**
 * fmt 0 f32, 1 bf16, 2 f16: y_i [M, N_i] = x [M, K] · W_iᵀ (+ b_i), i < count (≤ 3; unused slots 0), rows [lo, hi) of
 * the joint range of N0 + N1 + N2 rows
 */
export function linear_multi(fmt: i32, x: usize, M: i32, K: i32,
  w0: usize, b0: usize, y0: usize, N0: i32, w1: usize, b1: usize, y1: usize, N1: i32, w2: usize, b2: usize, y2: usize, N2: i32,
  lo: i32, hi: i32): void {
  let start = 0;
  for (let i = 0; i < 3; i++) {
    const w = i == 0 ? w0 : i == 1 ? w1 : w2, b = i == 0 ? b0 : i == 1 ? b1 : b2, y = i == 0 ? y0 : i == 1 ? y1 : y2;
    const N = i == 0 ? N0 : i == 1 ? N1 : N2;
    const p = piece(lo, hi, start, N);
    const a = <i32>(p >> 32), e = <i32>p;
    if (N > 0 && a < e) {
      if (fmt == 0) linear_f32(x, w, b, y, M, K, N, a, e);
      else if (fmt == 1) linear_bf16(x, w, b, y, M, K, N, a, e);
      else linear_f16(x, w, b, y, M, K, N, a, e);
    }
    start += N;
  }
}

/** q8 weights: x quantized once (quantize_rows_q8: xq, xs) for every matrix; qs_i, sc_i its quantized rows and scales */
export function linear_q8_multi(xq: usize, xs: usize, M: i32, K: i32,
  q0: usize, s0: usize, b0: usize, y0: usize, N0: i32, q1: usize, s1: usize, b1: usize, y1: usize, N1: i32,
  q2: usize, s2: usize, b2: usize, y2: usize, N2: i32, lo: i32, hi: i32): void {
  let start = 0;
  for (let i = 0; i < 3; i++) {
    const q = i == 0 ? q0 : i == 1 ? q1 : q2, s = i == 0 ? s0 : i == 1 ? s1 : s2;
    const b = i == 0 ? b0 : i == 1 ? b1 : b2, y = i == 0 ? y0 : i == 1 ? y1 : y2;
    const N = i == 0 ? N0 : i == 1 ? N1 : N2;
    const p = piece(lo, hi, start, N);
    const a = <i32>(p >> 32), e = <i32>p;
    if (N > 0 && a < e) linear_q8(xq, xs, q, s, b, y, M, K, N, a, e);
    start += N;
  }
}
