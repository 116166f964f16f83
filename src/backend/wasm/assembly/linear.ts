// Linear layers: y[M, N] = x[M, K] · W[N, K]ᵀ (+ bias[N]), computing output columns [n0, n1) of every row.
//
// x, y, bias: f32, row-major; bias = 0 means none. All pointers are byte offsets into the shared memory (the module
// allocates nothing); columns outside [n0, n1) are never written, so workers can split N into disjoint slices with
// arbitrary bounds. Weight formats:
//   linear_f32   W f32 [N, K]
//   linear_bf16  W bf16 bits [N, K] (f32 = bits << 16)
//   linear_f16   W IEEE binary16 [N, K] (finite values; subnormals and signed zeros are converted exactly)
//   linear_q8    qs int8 [N, K] and scales f32 [N, K/32]: w[j, k] = qs[j, k] · scales[j, k >> 5]; K % 32 == 0;
//                x comes quantized the same way (quantize_rows_q8) and the products are integer (linear_q8.ts)
//   quantize_q8  f32 → q8 (linear_q8.ts)
//
// Strategy
//   M = 1 (decode): a matrix-vector product, bound by streaming W once. f32: one row at a time, read strictly
//     sequentially (gemvF32Seq; bf16 likewise, gemvBf16Seq). f16/q8: four W rows at a time (x loaded once per group;
//     f16: one f32x4 accumulator each, lanes reduced at the end); meanwhile the next group of rows is "touched" (see
//     touchPart, linear_common.ts) so that its cache lines and TLB entries are already on their way.
//   M > 1 (prefill, batched decode): register tiles over a panel of 4 W rows that stays in L1 while a chunk of
//     ~256 KiB of x rows (L2) passes over it: f32 2 x-rows × 4 W-rows; bf16/f16/q8 4 x-rows × 2 W-rows, so that each
//     converted weight vector serves 4 rows of x.
//   f16: a cheap conversion, exact for normal numbers, and a per-step check for halves with exponent 0 (subnormals,
//     zeros: ~0.1-1 % of real weights) that sends just that step down the exact (slower) conversion.
//   V8 gives wasm SIMD the 16 xmm registers of x64, constants included; the tiles keep 8 accumulators, as more
//   spill. (No FMA: relaxed SIMD is not enabled.)
//
// The f32/bf16/f16 kernels share one generic implementation; its type parameter W only selects the weight format at
// compile time: f32 → f32, u16 → bf16, i16 → IEEE binary16.

import { gather, madd } from './simd';
import { bfHi, bfLo, f16AllNormal2, f16AllNormal4, f16Hi, f16HiX, f16Lo, f16LoX, isF16, w4, wHi, wHiX, wLo, wLoX, wScalar } from './weights';
import { hsum, hsum4, pfChunk, sinkTouches, store1, store2, store4, touchPart } from './linear_common';

// ---------------------------------------------------------------------------------------------------------------
// weight conversion: weights.ts

/**
 * Exact f16 dot products of x[k..k+8) (at xp) with 4 W rows (at p0, stride rowB) → [row0, row1, row2, row3].
 * The rare slow path of dot1x4<f16>, deliberately not inlined: it keeps the hot loop small (no spills).
 */
function f16Step1x4X(xp: usize, p0: usize, rowB: usize): v128 {
  const x0 = v128.load(xp), x1 = v128.load(xp, 16);
  const r0 = v128.load(p0), r1 = v128.load(p0 + rowB), r2 = v128.load(p0 + 2 * rowB), r3 = v128.load(p0 + 3 * rowB);
  return hsum4(f32x4.add(f32x4.mul(x0, f16LoX(r0)), f32x4.mul(x1, f16HiX(r0))),
               f32x4.add(f32x4.mul(x0, f16LoX(r1)), f32x4.mul(x1, f16HiX(r1))),
               f32x4.add(f32x4.mul(x0, f16LoX(r2)), f32x4.mul(x1, f16HiX(r2))),
               f32x4.add(f32x4.mul(x0, f16LoX(r3)), f32x4.mul(x1, f16HiX(r3))));
}

// ---------------------------------------------------------------------------------------------------------------
// f32 / bf16 / f16

/**
 * 1 row of x × 4 rows of W (w0 = the first, rowB = bytes per W row) → the 4 dot products. pf ≠ 0: touches the
 * 4 · rowB bytes at pf meanwhile.
 */
// @ts-ignore: decorator
@inline function dot1x4<W>(x: usize, w0: usize, rowB: usize, K: i32, pf: usize): v128 {
  const ES: usize = sizeof<W>();
  const w1 = w0 + rowB, w2 = w1 + rowB, w3 = w2 + rowB;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let ex = f32x4.splat(0); // f16: the steps that needed the exact conversion, [row0, row1, row2, row3]
  let junk: u32 = 0;
  let k: usize = 0;
  const K8 = <usize>(K & ~7), K4 = <usize>(K & ~3);
  for (; k < K8; k += 8) {
    const xp = x + (k << 2), o = k * ES;
    const p0 = w0 + o, p1 = w1 + o, p2 = w2 + o, p3 = w3 + o;
    const r0 = v128.load(p0), r1 = v128.load(p1), r2 = v128.load(p2), r3 = v128.load(p3);
    if (pf) {
      // this step consumes 32 · ES bytes of the group: touch as many of the next group
      junk ^= load<u32>(pf + (o << 2));
      if (ES == 4) junk ^= load<u32>(pf + (o << 2), 64);
    }
    if (isF16<W>()) {
      if (!f16AllNormal4(r0, r1, r2, r3)) {
        ex = f32x4.add(ex, f16Step1x4X(xp, p0, rowB));
        continue;
      }
    }
    const x0 = v128.load(xp), x1 = v128.load(xp, 16);
    a0 = f32x4.add(a0, f32x4.add(f32x4.mul(x0, wLo<W>(r0)), f32x4.mul(x1, wHi<W>(r0, p0))));
    a1 = f32x4.add(a1, f32x4.add(f32x4.mul(x0, wLo<W>(r1)), f32x4.mul(x1, wHi<W>(r1, p1))));
    a2 = f32x4.add(a2, f32x4.add(f32x4.mul(x0, wLo<W>(r2)), f32x4.mul(x1, wHi<W>(r2, p2))));
    a3 = f32x4.add(a3, f32x4.add(f32x4.mul(x0, wLo<W>(r3)), f32x4.mul(x1, wHi<W>(r3, p3))));
  }
  if (pf) sinkTouches(junk);
  if (k < K4) {
    const x0 = v128.load(x + (k << 2)), o = k * ES;
    a0 = f32x4.add(a0, f32x4.mul(x0, w4<W>(w0 + o)));
    a1 = f32x4.add(a1, f32x4.mul(x0, w4<W>(w1 + o)));
    a2 = f32x4.add(a2, f32x4.mul(x0, w4<W>(w2 + o)));
    a3 = f32x4.add(a3, f32x4.mul(x0, w4<W>(w3 + o)));
    k += 4;
  }
  let r = hsum4(a0, a1, a2, a3);
  if (isF16<W>()) r = f32x4.add(r, ex);
  for (; k < <usize>K; k++) {
    const o = k * ES;
    let t = f32x4.splat(wScalar<W>(w0 + o));
    t = f32x4.replace_lane(t, 1, wScalar<W>(w1 + o));
    t = f32x4.replace_lane(t, 2, wScalar<W>(w2 + o));
    t = f32x4.replace_lane(t, 3, wScalar<W>(w3 + o));
    r = f32x4.add(r, f32x4.mul(f32x4.splat(load<f32>(x + (k << 2))), t));
  }
  return r;
}

/** 1 row of x × 1 row of W (exact) */
// @ts-ignore: decorator
@inline function dot1x1<W>(x: usize, w0: usize, K: i32): f32 {
  const ES: usize = sizeof<W>();
  let a0 = f32x4.splat(0), b0 = f32x4.splat(0);
  let k: usize = 0;
  const K8 = <usize>(K & ~7), K4 = <usize>(K & ~3);
  for (; k < K8; k += 8) {
    const xp = x + (k << 2), p = w0 + k * ES;
    const r = v128.load(p);
    a0 = f32x4.add(a0, f32x4.mul(v128.load(xp), wLoX<W>(r)));
    b0 = f32x4.add(b0, f32x4.mul(v128.load(xp, 16), wHiX<W>(r, p)));
  }
  if (k < K4) {
    a0 = f32x4.add(a0, f32x4.mul(v128.load(x + (k << 2)), w4<W>(w0 + k * ES)));
    k += 4;
  }
  let r = hsum(f32x4.add(a0, b0));
  for (; k < <usize>K; k++) r += load<f32>(x + (k << 2)) * wScalar<W>(w0 + k * ES);
  return r;
}

/** 2 rows of x (x0, x0 + xrowB) × 4 rows of W → y rows (y0, y0 + yrowB), columns j..j+3. Used for f32. */
// @ts-ignore: decorator
@inline function tile2x4<W>(x0: usize, xrowB: usize, w0: usize, rowB: usize, K: i32,
                             y0: usize, yrowB: usize, bias: usize, j: i32): void {
  const ES: usize = sizeof<W>();
  const x1 = x0 + xrowB;
  const w1 = w0 + rowB, w2 = w1 + rowB, w3 = w2 + rowB;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  let k: usize = 0;
  const K4 = <usize>(K & ~3);
  for (; k < K4; k += 4) {
    const o = k * ES;
    const v0 = w4<W>(w0 + o), v1 = w4<W>(w1 + o), v2 = w4<W>(w2 + o), v3 = w4<W>(w3 + o);
    const xa = v128.load(x0 + (k << 2));
    a0 = f32x4.add(a0, f32x4.mul(xa, v0));
    a1 = f32x4.add(a1, f32x4.mul(xa, v1));
    a2 = f32x4.add(a2, f32x4.mul(xa, v2));
    a3 = f32x4.add(a3, f32x4.mul(xa, v3));
    const xb = v128.load(x1 + (k << 2));
    b0 = f32x4.add(b0, f32x4.mul(xb, v0));
    b1 = f32x4.add(b1, f32x4.mul(xb, v1));
    b2 = f32x4.add(b2, f32x4.mul(xb, v2));
    b3 = f32x4.add(b3, f32x4.mul(xb, v3));
  }
  let ra = hsum4(a0, a1, a2, a3), rb = hsum4(b0, b1, b2, b3);
  for (; k < <usize>K; k++) {
    const o = k * ES;
    let t = f32x4.splat(wScalar<W>(w0 + o));
    t = f32x4.replace_lane(t, 1, wScalar<W>(w1 + o));
    t = f32x4.replace_lane(t, 2, wScalar<W>(w2 + o));
    t = f32x4.replace_lane(t, 3, wScalar<W>(w3 + o));
    ra = f32x4.add(ra, f32x4.mul(f32x4.splat(load<f32>(x0 + (k << 2))), t));
    rb = f32x4.add(rb, f32x4.mul(f32x4.splat(load<f32>(x1 + (k << 2))), t));
  }
  store4(y0, bias, j, ra);
  store4(y0 + yrowB, bias, j, rb);
}

/**
 * 4 rows of x × 2 rows of W → y rows i..i+3 (y0, stride yrowB), columns j, j+1. Each converted weight vector
 * serves 4 rows of x. Used for bf16 and f16.
 */
// @ts-ignore: decorator
@inline function tile4x2<W>(x0: usize, xrowB: usize, w0: usize, rowB: usize, K: i32,
                             y0: usize, yrowB: usize, bias: usize, j: i32): void {
  const ES: usize = sizeof<W>();
  const x1 = x0 + xrowB, x2 = x1 + xrowB, x3 = x2 + xrowB;
  const w1 = w0 + rowB;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  let k: usize = 0;
  if (isF16<W>()) {
    // f16 converts 8 at a time (cheaper per weight than 4-wide; bf16 is faster 4-wide, below)
    const K8 = <usize>(K & ~7);
    for (; k < K8; k += 8) {
      const o = k * ES;
      const r0 = v128.load(w0 + o), r1 = v128.load(w1 + o);
      let u0: v128, u1: v128, v0: v128, v1: v128;
      if (f16AllNormal2(r0, r1)) {
        u0 = f16Lo(r0); u1 = f16Lo(r1); v0 = f16Hi(r0); v1 = f16Hi(r1);
      } else {
        u0 = f16LoX(r0); u1 = f16LoX(r1); v0 = f16HiX(r0); v1 = f16HiX(r1);
      }
      const kx = k << 2;
      let t = v128.load(x0 + kx);
      a0 = f32x4.add(a0, f32x4.mul(t, u0)); b0 = f32x4.add(b0, f32x4.mul(t, u1));
      t = v128.load(x1 + kx);
      a1 = f32x4.add(a1, f32x4.mul(t, u0)); b1 = f32x4.add(b1, f32x4.mul(t, u1));
      t = v128.load(x2 + kx);
      a2 = f32x4.add(a2, f32x4.mul(t, u0)); b2 = f32x4.add(b2, f32x4.mul(t, u1));
      t = v128.load(x3 + kx);
      a3 = f32x4.add(a3, f32x4.mul(t, u0)); b3 = f32x4.add(b3, f32x4.mul(t, u1));
      t = v128.load(x0 + kx, 16);
      a0 = f32x4.add(a0, f32x4.mul(t, v0)); b0 = f32x4.add(b0, f32x4.mul(t, v1));
      t = v128.load(x1 + kx, 16);
      a1 = f32x4.add(a1, f32x4.mul(t, v0)); b1 = f32x4.add(b1, f32x4.mul(t, v1));
      t = v128.load(x2 + kx, 16);
      a2 = f32x4.add(a2, f32x4.mul(t, v0)); b2 = f32x4.add(b2, f32x4.mul(t, v1));
      t = v128.load(x3 + kx, 16);
      a3 = f32x4.add(a3, f32x4.mul(t, v0)); b3 = f32x4.add(b3, f32x4.mul(t, v1));
    }
  }
  const K4 = <usize>(K & ~3);
  for (; k < K4; k += 4) {
    const o = k * ES, kx = k << 2;
    const u0 = w4<W>(w0 + o), u1 = w4<W>(w1 + o);
    let t = v128.load(x0 + kx);
    a0 = f32x4.add(a0, f32x4.mul(t, u0)); b0 = f32x4.add(b0, f32x4.mul(t, u1));
    t = v128.load(x1 + kx);
    a1 = f32x4.add(a1, f32x4.mul(t, u0)); b1 = f32x4.add(b1, f32x4.mul(t, u1));
    t = v128.load(x2 + kx);
    a2 = f32x4.add(a2, f32x4.mul(t, u0)); b2 = f32x4.add(b2, f32x4.mul(t, u1));
    t = v128.load(x3 + kx);
    a3 = f32x4.add(a3, f32x4.mul(t, u0)); b3 = f32x4.add(b3, f32x4.mul(t, u1));
  }
  // lanes: [row0·w0, row0·w1, row1·w0, row1·w1], [row2·w0, row2·w1, row3·w0, row3·w1]
  let r01 = hsum4(a0, b0, a1, b1), r23 = hsum4(a2, b2, a3, b3);
  for (; k < <usize>K; k++) {
    const o = k * ES, kx = k << 2;
    const ww = f32x4.replace_lane(f32x4.splat(wScalar<W>(w0 + o)), 1, wScalar<W>(w1 + o));
    const wv = v128.shuffle<f32>(ww, ww, 0, 1, 0, 1);
    const x01 = f32x4.replace_lane(f32x4.splat(load<f32>(x0 + kx)), 2, load<f32>(x1 + kx));
    const x23 = f32x4.replace_lane(f32x4.splat(load<f32>(x2 + kx)), 2, load<f32>(x3 + kx));
    r01 = f32x4.add(r01, f32x4.mul(v128.shuffle<f32>(x01, x01, 0, 0, 2, 2), wv));
    r23 = f32x4.add(r23, f32x4.mul(v128.shuffle<f32>(x23, x23, 0, 0, 2, 2), wv));
  }
  store2(y0, bias, j, r01);
  store2(y0 + yrowB, bias, j, v128.shuffle<f32>(r01, r01, 2, 3, 2, 3));
  store2(y0 + 2 * yrowB, bias, j, r23);
  store2(y0 + 3 * yrowB, bias, j, v128.shuffle<f32>(r23, r23, 2, 3, 2, 3));
}

/** x rows [i0, i1) × the panel of 4 W rows at wj → y columns j..j+3; touches the next panel (pf ≠ 0) meanwhile */
// @ts-ignore: decorator
@inline function panel4<W>(x: usize, xrowB: usize, wj: usize, rowB: usize, K: i32, y: usize, yrowB: usize,
                           bias: usize, j: i32, i0: i32, i1: i32, pf: usize): void {
  let i = i0;
  const panelB = rowB << 2;
  if (isFloat<W>()) {
    const chunk = pfChunk(panelB, (i1 - i0) >> 1);
    for (; i + 2 <= i1; i += 2) {
      if (pf) touchPart(pf, panelB, chunk, (i - i0) >> 1);
      tile2x4<W>(x + <usize>i * xrowB, xrowB, wj, rowB, K, y + <usize>i * yrowB, yrowB, bias, j);
    }
  } else {
    const chunk = pfChunk(panelB, (i1 - i0) >> 2);
    for (; i + 4 <= i1; i += 4) {
      if (pf) touchPart(pf, panelB, chunk, (i - i0) >> 2);
      const xi = x + <usize>i * xrowB, yi = y + <usize>i * yrowB;
      tile4x2<W>(xi, xrowB, wj, rowB, K, yi, yrowB, bias, j);
      tile4x2<W>(xi, xrowB, wj + 2 * rowB, rowB, K, yi, yrowB, bias, j + 2);
    }
  }
  // rows left over (all of them when M < tile height: then the first one streams the panel and touches the next)
  for (; i < i1; i++) {
    const v = dot1x4<W>(x + <usize>i * xrowB, wj, rowB, K, i == i0 ? pf : 0);
    store4(y + <usize>i * yrowB, bias, j, v);
  }
}

// @ts-ignore: decorator
@inline function linearT<W>(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (n1 <= n0 || M <= 0) return;
  const ES: usize = sizeof<W>();
  const rowB = <usize>K * ES;
  const xrowB = <usize>K << 2, yrowB = <usize>N << 2;
  if (M == 1) {
    let j = n0;
    for (; j + 4 <= n1; j += 4) {
      const wj = w + <usize>j * rowB;
      store4(y, bias, j, dot1x4<W>(x, wj, rowB, K, j + 8 <= n1 ? wj + 4 * rowB : wj));
    }
    for (; j < n1; j++) store1(y, bias, j, dot1x1<W>(x, w + <usize>j * rowB, K));
    return;
  }
  gemmT<W>(x, xrowB, w, rowB, bias, y, yrowB, M, K, n0, n1);
}

/** y[:, n0:n1] = x · Wᵀ (+ bias) for M > 1 with the rows of x, W and y `xrowB`, `rowB`, `yrowB` bytes apart */
// @ts-ignore: decorator
@inline function gemmT<W>(x: usize, xrowB: usize, w: usize, rowB: usize, bias: usize, y: usize, yrowB: usize,
                          M: i32, K: i32, n0: i32, n1: i32): void {
  // rows of x per pass over a panel: that chunk of x stays within ~256 KiB (L2)
  const MC = max(((64 * 1024) / max(K, 1)) & ~3, 4);
  for (let i0 = 0; i0 < M; i0 += MC) {
    const i1 = min(M, i0 + MC);
    let j = n0;
    for (; j + 4 <= n1; j += 4) {
      const wj = w + <usize>j * rowB;
      panel4<W>(x, xrowB, wj, rowB, K, y, yrowB, bias, j, i0, i1, j + 8 <= n1 ? wj + 4 * rowB : 0);
    }
    for (; j < n1; j++) {
      const wj = w + <usize>j * rowB;
      for (let i = i0; i < i1; i++) store1(y + <usize>i * yrowB, bias, j, dot1x1<W>(x + <usize>i * xrowB, wj, K));
    }
  }
}

/** y[:, n0:n1] = x · Wᵀ (+ bias); W f32 [N, K]. */
export function linear_f32(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (M == 1) gemvF32Seq(x, w, bias, y, M, K, N, n0, n1);
  else if (M <= GEMV_FEW_MAX && (K & 15) == 0 && gemvF32Mode == 0) gemvF32Few(x, w, bias, y, M, K, N, n0, n1);
  else linearT<f32>(x, w, bias, y, M, K, N, n0, n1);
}

// f32 matrix-vector product (M = 1) reading W strictly sequentially: one row at a time with 4 accumulators over k
// (x stays in L1). With K a multiple of 16 the rows go by fours: each row's 4 partial vectors are summed as below, then
// the 4 rows' lanes are summed together after a 4×4 transpose, in the same order (lane 0 + 1, + 2, + 3), so each y is
// the same bits as the one-row loop's, at a quarter of its horizontal adds (which dominate for short rows: dt_proj,
// K = 48).
//
// Every row goes through the same copy of the row loop (gemvRowF32 inlined once, in a loop over the group's 4 rows):
// the same load instructions then walk W from its first byte to its last without a jump. The kernel before (mode 1,
// gemvF32Rows4: the row loop inlined four times, one copy per row of a group) read the same addresses in the same
// order, but each copy got every 4th row and jumped 3 rows after each: from DRAM it streamed 14-15 GB per CPU-second on
// one thread against this loop's 29-31 and the bandwidth probe's 31-34 (issue 18; bench/matvec-stream.bench.ts, where
// two copies with rows alternating are as slow: what prefetchers that learn one stream per load instruction would do).
// Same bits either way.

/** which f32 matrix-vector kernel linear_f32 runs for M = 1: 0 gemvF32Seq (default), 1 gemvF32Rows4 (the one before) */
let gemvF32Mode: i32 = 0;

/** team kernel: every thread's instance selects its f32 matrix-vector kernel (see gemvF32Mode) */
export function set_gemv_f32_mode(mode: i32, t: i32, T: i32): void {
  gemvF32Mode = mode;
}

/** this instance's gemvF32Mode */
export function gemv_f32_mode(): i32 {
  return gemvF32Mode;
}

function gemvF32Seq(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (gemvF32Mode == 1) {
    gemvF32Rows4(x, w, bias, y, M, K, N, n0, n1);
    return;
  }
  const rowB = <usize>K * 4;
  if ((K & 15) == 0) {
    for (; n0 + 4 <= n1; n0 += 4) {
      let p = w + <usize>n0 * rowB;
      let t0 = f32x4.splat(0), t1 = f32x4.splat(0), t2 = f32x4.splat(0), t3 = f32x4.splat(0);
      for (let r = 0; r < 4; r++) {
        // (a loop, not four inlined copies: see above)
        const t = gemvRowF32(x, p, K);
        t0 = t1; t1 = t2; t2 = t3; t3 = t;
        p += rowB;
      }
      store4(y, bias, n0, sum4x4(t0, t1, t2, t3));
    }
  }
  gemvF32Tail(x, w, bias, y, K, n0, n1);
}

/** [lane sum of t0, of t1, of t2, of t3], each summed lane 0 + 1, + 2, + 3 (as gemvF32Tail's scalar sum) */
// @ts-ignore: decorator
@inline function sum4x4(t0: v128, t1: v128, t2: v128, t3: v128): v128 {
  const lo01 = v128.shuffle<f32>(t0, t1, 0, 4, 1, 5), hi01 = v128.shuffle<f32>(t0, t1, 2, 6, 3, 7);
  const lo23 = v128.shuffle<f32>(t2, t3, 0, 4, 1, 5), hi23 = v128.shuffle<f32>(t2, t3, 2, 6, 3, 7);
  let s = f32x4.add(v128.shuffle<f32>(lo01, lo23, 0, 1, 4, 5), v128.shuffle<f32>(lo01, lo23, 2, 3, 6, 7));
  s = f32x4.add(s, v128.shuffle<f32>(hi01, hi23, 0, 1, 4, 5));
  return f32x4.add(s, v128.shuffle<f32>(hi01, hi23, 2, 3, 6, 7));
}

/** rows [n0, n1) one at a time (any K) */
function gemvF32Tail(x: usize, w: usize, bias: usize, y: usize, K: i32, n0: i32, n1: i32): void {
  const rowB = <usize>K * 4;
  for (let j = n0; j < n1; j++) {
    const p = w + <usize>j * rowB;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let k = 0;
    for (; k + 16 <= K; k += 16) {
      const o = <usize>k * 4;
      a0 = f32x4.add(a0, f32x4.mul(v128.load(p + o), v128.load(x + o)));
      a1 = f32x4.add(a1, f32x4.mul(v128.load(p + o, 16), v128.load(x + o, 16)));
      a2 = f32x4.add(a2, f32x4.mul(v128.load(p + o, 32), v128.load(x + o, 32)));
      a3 = f32x4.add(a3, f32x4.mul(v128.load(p + o, 48), v128.load(x + o, 48)));
    }
    const t = f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3));
    let s: f32 = f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1) + f32x4.extract_lane(t, 2) + f32x4.extract_lane(t, 3);
    for (; k < K; k++) s += load<f32>(p + <usize>k * 4) * load<f32>(x + <usize>k * 4);
    if (bias) s += load<f32>(bias + <usize>j * 4);
    store<f32>(y + <usize>j * 4, s);
  }
}

/**
 * the most rows of x that gemvF32Few takes; more go to the 2×4 tiles, which need half the loads per multiply-add
 * (measured from DRAM, GB of W per CPU-second, gemvF32Few vs tiles: M = 2 23-24 vs 17.5-19; M = 3 and 4 mixed,
 * 8-18 vs 11-16: load-bound, as each further pair of x rows re-reads the W row)
 */
const GEMV_FEW_MAX: i32 = 2;

/**
 * M = 2…GEMV_FEW_MAX rows of x (batched decode), K a multiple of 16: each W row is streamed once, by one loop, against
 * the x rows two at a time (8 accumulators); a further pair or odd row would re-read the W row from L1.
 * Like gemvF32Seq, one copy of the streaming loop reads all of W in order: the 2×4 tiles (linearT, and mode 1) read
 * 4 rows interleaved and ran at 17.5-19 GB per CPU-second from DRAM for M = 2 (bench/matvec-stream.bench.ts rows:M).
 * Every y is the same bits as gemvF32Seq's for that row of x alone (the same partial sums in the same order).
 */
function gemvF32Few(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const rowB = <usize>K * 4, yrowB = <usize>N << 2;
  for (let j = n0; j < n1; j++) {
    const p = w + <usize>j * rowB;
    let i = 0;
    for (; i + 2 <= M; i += 2) {
      const xa = x + <usize>i * rowB, xb = xa + rowB;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
      for (let k = 0; k < K; k += 16) {
        const o = <usize>k * 4;
        const w0 = v128.load(p + o), w1 = v128.load(p + o, 16), w2 = v128.load(p + o, 32), w3 = v128.load(p + o, 48);
        a0 = f32x4.add(a0, f32x4.mul(w0, v128.load(xa + o)));
        b0 = f32x4.add(b0, f32x4.mul(w0, v128.load(xb + o)));
        a1 = f32x4.add(a1, f32x4.mul(w1, v128.load(xa + o, 16)));
        b1 = f32x4.add(b1, f32x4.mul(w1, v128.load(xb + o, 16)));
        a2 = f32x4.add(a2, f32x4.mul(w2, v128.load(xa + o, 32)));
        b2 = f32x4.add(b2, f32x4.mul(w2, v128.load(xb + o, 32)));
        a3 = f32x4.add(a3, f32x4.mul(w3, v128.load(xa + o, 48)));
        b3 = f32x4.add(b3, f32x4.mul(w3, v128.load(xb + o, 48)));
      }
      store1(y + <usize>i * yrowB, bias, j, laneSum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3))));
      store1(y + <usize>(i + 1) * yrowB, bias, j, laneSum(f32x4.add(f32x4.add(b0, b1), f32x4.add(b2, b3))));
    }
    if (i < M) store1(y + <usize>i * yrowB, bias, j, laneSum(gemvRowF32(x + <usize>i * rowB, p, K)));
  }
}

/** lane 0 + 1, + 2, + 3 (gemvF32Seq's order) */
// @ts-ignore: decorator
@inline function laneSum(t: v128): f32 {
  return f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1) + f32x4.extract_lane(t, 2) + f32x4.extract_lane(t, 3);
}

/** the f32 matrix-vector kernel before issue 18's fix (mode 1): the row loop inlined once per row of a group of 4 */
function gemvF32Rows4(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const rowB = <usize>K * 4;
  if ((K & 15) == 0) {
    for (; n0 + 4 <= n1; n0 += 4) {
      const p = w + <usize>n0 * rowB;
      const t0 = gemvRowF32(x, p, K), t1 = gemvRowF32(x, p + rowB, K), t2 = gemvRowF32(x, p + 2 * rowB, K), t3 = gemvRowF32(x, p + 3 * rowB, K);
      store4(y, bias, n0, sum4x4(t0, t1, t2, t3));
    }
  }
  gemvF32Tail(x, w, bias, y, K, n0, n1);
}


/**
 * y[M, N] = x[M, K] · W[N, K]ᵀ, f32, with row strides in bytes (xrowB, wrowB, yrowB ≥ 4·K, 4·K, 4·N): the small
 * products of the chunked SSD (ssd_chunked.ts) on the same register tiles as linear_f32.
 */
export function gemm_nt_f32(x: usize, xrowB: usize, w: usize, wrowB: usize, y: usize, yrowB: usize, M: i32, K: i32, N: i32): void {
  if (M <= 0 || N <= 0) return;
  gemmT<f32>(x, xrowB, w, wrowB, 0, y, yrowB, M, K, 0, N);
}

/**
 * gemm_nt_f32 with fused multiply-adds where the module has them (the relaxed build: `madd`; the plain build: a
 * multiply and an add, gemm_nt_f32's bits): the chunked SSD's products (ssd_chunked_rows, mode 1). 2 × 4 tiles of 8
 * accumulators over k in steps of 4 (then the tiles' horizontal sums, as tile2x4); rows and columns left over by
 * gemm_nt_f32's loops.
 */
export function gemm_nt_f32_fma(x: usize, xrowB: usize, w: usize, wrowB: usize, y: usize, yrowB: usize, M: i32, K: i32, N: i32): void {
  if (M <= 0 || N <= 0) return;
  const MC = max(((64 * 1024) / max(K, 1)) & ~3, 4);
  const K4 = <usize>(K & ~3);
  for (let i0 = 0; i0 < M; i0 += MC) {
    const i1 = min(M, i0 + MC);
    let j = 0;
    for (; j + 4 <= N; j += 4) {
      const w0 = w + <usize>j * wrowB, w1 = w0 + wrowB, w2 = w1 + wrowB, w3 = w2 + wrowB;
      let i = i0;
      for (; i + 2 <= i1; i += 2) {
        const x0 = x + <usize>i * xrowB, x1 = x0 + xrowB;
        let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
        let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
        let k: usize = 0;
        for (; k < K4; k += 4) {
          const o = k << 2;
          const v0 = v128.load(w0 + o), v1 = v128.load(w1 + o), v2 = v128.load(w2 + o), v3 = v128.load(w3 + o);
          const xa = v128.load(x0 + o);
          a0 = madd(xa, v0, a0); a1 = madd(xa, v1, a1); a2 = madd(xa, v2, a2); a3 = madd(xa, v3, a3);
          const xb = v128.load(x1 + o);
          b0 = madd(xb, v0, b0); b1 = madd(xb, v1, b1); b2 = madd(xb, v2, b2); b3 = madd(xb, v3, b3);
        }
        let ra = hsum4(a0, a1, a2, a3), rb = hsum4(b0, b1, b2, b3);
        for (; k < <usize>K; k++) {
          const o = k << 2;
          let t = f32x4.splat(load<f32>(w0 + o));
          t = f32x4.replace_lane(t, 1, load<f32>(w1 + o));
          t = f32x4.replace_lane(t, 2, load<f32>(w2 + o));
          t = f32x4.replace_lane(t, 3, load<f32>(w3 + o));
          ra = f32x4.add(ra, f32x4.mul(f32x4.splat(load<f32>(x0 + o)), t));
          rb = f32x4.add(rb, f32x4.mul(f32x4.splat(load<f32>(x1 + o)), t));
        }
        store4(y + <usize>i * yrowB, 0, j, ra);
        store4(y + <usize>(i + 1) * yrowB, 0, j, rb);
      }
      for (; i < i1; i++) store4(y + <usize>i * yrowB, 0, j, dot1x4<f32>(x + <usize>i * xrowB, w0, wrowB, K, 0));
    }
    for (; j < N; j++) {
      const wj = w + <usize>j * wrowB;
      for (let i = i0; i < i1; i++) store1(y + <usize>i * yrowB, 0, j, dot1x1<f32>(x + <usize>i * xrowB, wj, K));
    }
  }
}

/** one row's 4 partial sums of gemvF32Seq ((a0 + a1) + (a2 + a3)), K a multiple of 16 */
// @ts-ignore: decorator
@inline function gemvRowF32(x: usize, p: usize, K: i32): v128 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  for (let k = 0; k < K; k += 16) {
    const o = <usize>k * 4;
    a0 = f32x4.add(a0, f32x4.mul(v128.load(p + o), v128.load(x + o)));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(p + o, 16), v128.load(x + o, 16)));
    a2 = f32x4.add(a2, f32x4.mul(v128.load(p + o, 32), v128.load(x + o, 32)));
    a3 = f32x4.add(a3, f32x4.mul(v128.load(p + o, 48), v128.load(x + o, 48)));
  }
  return f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3));
}

/** y[:, n0:n1] = x · Wᵀ (+ bias); W bf16 bits [N, K]. */
export function linear_bf16(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (M == 1) gemvBf16Seq(x, w, bias, y, K, n0, n1);
  else linearT<u16>(x, w, bias, y, M, K, N, n0, n1);
}

// bf16 matrix-vector product (M = 1), W read strictly sequentially one row at a time (see gemvF32Seq).
function gemvBf16Seq(x: usize, w: usize, bias: usize, y: usize, K: i32, n0: i32, n1: i32): void {
  const rowB = <usize>K * 2;
  for (let j = n0; j < n1; j++) {
    const p = w + <usize>j * rowB;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let k = 0;
    for (; k + 16 <= K; k += 16) {
      const r0 = v128.load(p + <usize>k * 2), r1 = v128.load(p + <usize>k * 2, 16);
      const xo = x + <usize>k * 4;
      a0 = f32x4.add(a0, f32x4.mul(bfLo(r0), v128.load(xo)));
      a1 = f32x4.add(a1, f32x4.mul(bfHi(r0), v128.load(xo, 16)));
      a2 = f32x4.add(a2, f32x4.mul(bfLo(r1), v128.load(xo, 32)));
      a3 = f32x4.add(a3, f32x4.mul(bfHi(r1), v128.load(xo, 48)));
    }
    const t = f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3));
    let s: f32 = f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1) + f32x4.extract_lane(t, 2) + f32x4.extract_lane(t, 3);
    for (; k < K; k++) s += reinterpret<f32>(<u32>load<u16>(p + <usize>k * 2) << 16) * load<f32>(x + <usize>k * 4);
    if (bias) s += load<f32>(bias + <usize>j * 4);
    store<f32>(y + <usize>j * 4, s);
  }
}

/** y[:, n0:n1] = x · Wᵀ (+ bias); W IEEE binary16 [N, K] (finite). */
export function linear_f16(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  linearT<i16>(x, w, bias, y, M, K, N, n0, n1);
}
