// Products of many activation rows (prefill, M ≥ 8) with a packed weight matrix (bf16, f16, q8): each thread
// unpacks its rows of W into f32, one panel of PANEL rows at a time, and runs the f32 GEMM on that panel. A weight
// is then converted once per call instead of once per group of x rows, and the product runs at f32 GEMM speed.
// The unpacked values are exact (bf16 and f16 are subsets of f32; q8: q · scale as one f32 multiply), so the
// result is the f32 GEMM on exactly the weights the packed matrix stands for.
//
// A team kernel (team.ts): thread t of T takes columns [n0, n1) of y (aligned to 4) and uses its own panel buffer
// at scratch + t · PANEL · K · 4. fmt: 1 bf16, 2 f16, 3 q8 (w: int8 [N, K], scales f32 [N, K/32]).

import { linear_f32 } from './linear';
import { q8x32, w4, wScalar } from './weights';
import { sliceHi, sliceLo } from './team';

const PANEL = 32;

/** rows [j0, j1) of the packed matrix as f32 at dst ([j1 − j0, K], row-major) */
function unpackRows(fmt: i32, w: usize, scales: usize, K: i32, j0: i32, j1: i32, dst: usize): void {
  const n = <usize>(j1 - j0) * <usize>K;
  const first = <usize>j0 * <usize>K; // index of the first element
  if (fmt == 1) unpack16<u16>(w + (first << 1), n, dst);
  else if (fmt == 2) unpack16<i16>(w + (first << 1), n, dst);
  else {
    // q8: blocks of 32 along K (K % 32 == 0), one scale each
    const src = w + first;
    const sc = scales + ((first >> 5) << 2);
    for (let i: usize = 0; i < n; i += 32) q8x32(src + i, f32x4.splat(load<f32>(sc + ((i >> 5) << 2))), dst + (i << 2));
  }
}

/** n 16-bit weights at src (W = u16: bf16, i16: IEEE binary16) as f32 at dst, with the exact conversions of weights.ts */
// @ts-ignore: decorator
@inline function unpack16<W>(src: usize, n: usize, dst: usize): void {
  let i: usize = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + (i << 2), w4<W>(src + (i << 1)));
  for (; i < n; i++) store<f32>(dst + (i << 2), wScalar<W>(src + (i << 1)));
}

export function linear_panels(
  x: usize, w: usize, scales: usize, fmt: i32, bias: usize, y: usize, M: i32, K: i32, N: i32, scratch: usize, t: i32, T: i32,
): void {
  const n0 = sliceLo(t, T, N, 4), n1 = sliceHi(t, T, N, 4);
  const rowB = <usize>K << 2;
  const panel = scratch + <usize>t * PANEL * rowB;
  for (let j0 = n0; j0 < n1; j0 += PANEL) {
    const j1 = min(n1, j0 + PANEL);
    unpackRows(fmt, w, scales, K, j0, j1, panel);
    // the panel holds rows j0… of W: point the f32 kernel at where row 0 would be (addresses wrap modulo 2^32)
    linear_f32(x, panel - <usize>j0 * rowB, bias, y, M, K, N, j0, j1);
  }
}
