// Linear layers: y[M, N] = x[M, K] · W[N, K]ᵀ (+ bias[N]), computing output columns [n0, n1) of every row.
//
// x, y, bias: f32, row-major; bias = 0 means none. All pointers are byte offsets into the shared memory (the module
// allocates nothing); columns outside [n0, n1) are never written, so workers can split N into disjoint slices with
// arbitrary bounds. Weight formats:
//   linear_f32   W f32 [N, K]
//   linear_bf16  W bf16 bits [N, K] (f32 = bits << 16)
//   linear_f16   W IEEE binary16 [N, K] (finite values; subnormals and signed zeros are converted exactly)
//   linear_q8    qs int8 [N, K] and scales f32 [N, K/32]: w[j, k] = qs[j, k] · scales[j, k >> 5]; K % 32 == 0;
//                x comes quantized the same way (quantize_rows_q8) and the products are integer (see the q8 section)
//   quantize_q8  f32 → q8
//
// Strategy
//   M = 1 (decode): a matrix-vector product, bound by streaming W once. f32: one row at a time, read strictly
//     sequentially (gemvF32Seq; bf16 likewise, gemvBf16Seq). f16/q8: four W rows at a time (x loaded once per group;
//     f16: one f32x4 accumulator each, lanes reduced at the end); meanwhile the next group of rows is "touched" (see
//     touchPart) so that its cache lines and TLB entries are already on their way.
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

import { gather } from './simd';
import { bfHi, bfLo, f16AllNormal2, f16AllNormal4, f16Hi, f16HiX, f16Lo, f16LoX, isF16, w4, wHi, wHiX, wLo, wLoX, wScalar } from './weights';

// ---------------------------------------------------------------------------------------------------------------
// per-instance state (wasm globals: each worker thread has its own instance)

/** where the words loaded by the cache-line touches go, so that they are not optimized away */
let pfSink: u32 = 0;

// Software prefetch: wasm has no prefetch instruction, but a plain load of one word per 64-byte line of the data
// needed next gets those lines (and their TLB entries: wasm memory sits on 4 KiB pages) moving while the current
// data is computed on. For M = 1 this is worth 1.3-1.6x.

/** loads one word of each 64-byte line of part `step` (of `chunk` bytes) of [p, p + total) */
// @ts-ignore: decorator
@inline function touchPart(p: usize, total: usize, chunk: usize, step: i32): void {
  const o0 = <usize>step * chunk;
  const o1 = min(o0 + chunk, total);
  let junk: u32 = 0;
  for (let o = o0; o < o1; o += 64) junk ^= load<u32>(p + o);
  pfSink ^= junk;
}

/** bytes per part when touching `total` bytes in `nsteps` parts (whole lines) */
// @ts-ignore: decorator
@inline function pfChunk(total: usize, nsteps: i32): usize {
  return ((total / <usize>max(nsteps, 1)) + 63) & ~63;
}

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
// reductions / stores

/** horizontal sum of one f32x4 */
// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  const s = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

/** [hsum(a), hsum(b), hsum(c), hsum(d)] */
// @ts-ignore: decorator
@inline function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

/** y[j..j+3] = v (+ bias[j..j+3]); y points at the row */
// @ts-ignore: decorator
@inline function store4(y: usize, bias: usize, j: i32, v: v128): void {
  if (bias) v = f32x4.add(v, v128.load(bias + (<usize>j << 2)));
  v128.store(y + (<usize>j << 2), v);
}

/** y[j], y[j+1] = lanes 0, 1 of v (+ bias) */
// @ts-ignore: decorator
@inline function store2(y: usize, bias: usize, j: i32, v: v128): void {
  if (bias) v = f32x4.add(v, v128.load64_zero(bias + (<usize>j << 2)));
  v128.store64_lane(y + (<usize>j << 2), v, 0);
}

/** y[j] = v (+ bias[j]) */
// @ts-ignore: decorator
@inline function store1(y: usize, bias: usize, j: i32, v: f32): void {
  if (bias) v += load<f32>(bias + (<usize>j << 2));
  store<f32>(y + (<usize>j << 2), v);
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
  if (pf) pfSink ^= junk;
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
  else linearT<f32>(x, w, bias, y, M, K, N, n0, n1);
}

// f32 matrix-vector product (M = 1) reading W strictly sequentially: one row at a time with 4 accumulators over k
// (x stays in L1). On weights that come from DRAM this streams at the memory's full rate (measured 25.7 GB/s on
// one thread vs 15.9 for four rows at once, which splits the read into four interleaved streams).
function gemvF32Seq(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
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
//   M = 1 (decode): 1 x row × 4 W rows (the x block is loaded once for the 4), lanes = W rows; the next group of
//     rows is touched meanwhile (as for f16). ~22 GB/s of weights on one thread, as fast from L3 as from DRAM:
//     compute-bound, though not far from the memory's rate (gemvF32Seq's 25.7).
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
 * 1 quantized x row (xq, its block scales xs) × 4 rows of q8 W (q0: first row of qs, s0: its first scale) → the 4
 * dot products. pfq ≠ 0: touches the next 4 rows (qs at pfq, scales at pfs) meanwhile.
 */
// @ts-ignore: decorator
@inline function q8dot1x4(xq: usize, xs: usize, q0: usize, s0: usize, K: i32, pfq: usize, pfs: usize): v128 {
  const qrowB = <usize>K, srowB = <usize>K >> 3;
  const q1 = q0 + qrowB, q2 = q1 + qrowB, q3 = q2 + qrowB;
  let acc = f32x4.splat(0);
  let junk: u32 = 0;
  const nb = <usize>K >> 5;
  for (let b: usize = 0; b < nb; b++) {
    const xp = xq + (b << 6), k = b << 5, so = b << 2;
    if (pfq) {
      // this block consumes 4 · 32 bytes of qs and 4 · 4 of scales: touch as many of the next group
      junk ^= load<u32>(pfq + (k << 2)) ^ load<u32>(pfq + (k << 2), 64) ^ load<u32>(pfs + (so << 2));
    }
    const x0 = v128.load(xp), x1 = v128.load(xp, 16), x2 = v128.load(xp, 32), x3 = v128.load(xp, 48);
    t0 = q8bdotW(q0 + k, x0, x1, x2, x3);
    t1 = q8bdotW(q1 + k, x0, x1, x2, x3);
    t2 = q8bdotW(q2 + k, x0, x1, x2, x3);
    t3 = q8bdotW(q3 + k, x0, x1, x2, x3);
    const S = hsum4s(t0, t1, t2, t3);
    const sc = f32x4.mul(gather(s0 + so, srowB, 4), v128.load32_splat(xs + so));
    acc = f32x4.add(acc, f32x4.mul(S, sc));
  }
  if (pfq) pfSink ^= junk;
  return f32x4.mul(acc, f32x4.splat(Q8_UNSCALE));
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
