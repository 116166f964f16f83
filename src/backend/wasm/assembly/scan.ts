// Selective scans (Mamba-1 S6 and the Mamba-2 SSD recurrence), f32, 128-bit SIMD.
//
// Oracles: `scanSequential` (src/backend/cpu/selective_scan.ts) and `ssdRecurrent` (src/ssm/ssd.ts); same layouts.
// Every pointer is a byte offset into the shared memory; optional inputs are 0 when absent. Each call computes the
// channels [d0, d1) (Mamba-1) or heads [h0, h1) (Mamba-2) of every batch row: those are independent, so workers
// sharing the memory split the range; any split gives results bit-identical to one call over the whole range (the
// code path depends only on the arguments common to all slices, and each channel/head runs the same instructions
// whatever slice or 4-wide group it falls in).
//
// Two paths per kernel:
// - state present (prefill that carries the state, and decode): the in-place path. The state rows are updated where
//   they lie in `state`, one step at a time, SIMD over n (the state's contiguous axis), four channels (Mamba-1) or
//   four rows p of the head (Mamba-2) per sweep: their Δ, u, z, x, y are 4-lane vectors (one softplus / silu for four
//   channels), B_t and C_t are loaded once for the four, and the four row sums come from one 4×4 transpose-add.
//   Mamba-2 computes exp(Δ A) once per (t, head); Mamba-1 needs one exp per state element.
// - state absent: the module has no memory of its own for h, so a register tile runs over all L steps: 4 lanes =
//   4 channels (Mamba-1) or 4 rows p (Mamba-2), times a block of up to 8 state indices n, one v128 local
//   per n (h starts at 0 and is dropped at the end). B_t[n], C_t[n] are broadcast loads and the sum over n needs no
//   horizontal reduction. When N exceeds the block, y is accumulated over the blocks in place (the last block adds
//   D·u and applies the gate). Tails (fewer than 4 channels/rows, N not a multiple of the block) run the same lane-wise
//   instructions on partial loads/stores.
//   (The tile keeps more values live than x64 has vector registers, so V8 spills; with a state buffer the in-place
//   path is faster: about 20% for Mamba-1, 2.5× for Mamba-2, and far cheaper for short L.)

import { gather, ldc, stc, vexp, vsilu, vsoftplus } from './simd';
import { sinkTouches } from './linear_common';

/** y[i] = exp(x[i]) for i in [0, n) (the kernels' vector exp, exported for tests). */
export function exp_f32(x: usize, y: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), vexp(v128.load(x + (<usize>i << 2))));
  if (i < n) {
    const c = n - i;
    const o = <usize>i << 2;
    stc(y + o, vexp(ldc(x + o, c)), c);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Mamba-1

/**
 * Mamba-1 selective scan (S6) for channels [d0, d1) of every batch row; `scanSequential` semantics.
 *   u, delta, z, y: [batch, L, Dm];  B, C: [batch, L, N];  A: [Dm, N];  D, deltaBias: [Dm];  state: [batch, Dm, N]
 *   Δ = delta + deltaBias, softplus'd (threshold 20) if softplusFlag ≠ 0;  h_t = exp(Δ A) h_{t−1} + Δ u_t B_t;
 *   y_t = (C_t · h_t + D u_t) · silu(z_t).  D, z, deltaBias, state may be 0 (absent); state is read as h_0 and
 *   overwritten with h_L (absent: h_0 = 0).
 */
export function selective_scan(
  u: usize, delta: usize, A: usize, B: usize, C: usize, D: usize, z: usize, deltaBias: usize, state: usize, y: usize,
  batch: i32, L: i32, Dm: i32, N: i32, softplusFlag: i32, d0: i32, d1: i32,
): void {
  for (let b = 0; b < batch; b++) {
    let d = d0;
    if (state) {
      for (; d + 4 <= d1; d += 4) m1InPlace(u, delta, A, B, C, D, z, deltaBias, state, y, b, L, Dm, N, softplusFlag, d, 4);
      if (d < d1) m1InPlace(u, delta, A, B, C, D, z, deltaBias, state, y, b, L, Dm, N, softplusFlag, d, d1 - d);
      continue;
    }
    for (; d + 4 <= d1; d += 4) m1Group(u, delta, A, B, C, D, z, deltaBias, y, b, L, Dm, N, softplusFlag, d, 4);
    if (d < d1) m1Group(u, delta, A, B, C, D, z, deltaBias, y, b, L, Dm, N, softplusFlag, d, d1 - d);
  }
}

const M1_NB: i32 = 8; // state indices per tile (8 measured faster than 16 and 4)

// @ts-ignore: decorator
@inline function m1Group(
  u: usize, delta: usize, A: usize, B: usize, C: usize, D: usize, z: usize, deltaBias: usize, y: usize,
  b: i32, L: i32, Dm: i32, N: i32, sp: i32, d: i32, nc: i32,
): void {
  let n0 = 0;
  for (; n0 + M1_NB <= N; n0 += M1_NB) {
    m1Tile(u, delta, A, B, C, D, z, deltaBias, y, b, L, Dm, N, sp, d, nc, n0, M1_NB);
  }
  if (n0 < N || N == 0) m1Tile(u, delta, A, B, C, D, z, deltaBias, y, b, L, Dm, N, sp, d, nc, n0, N - n0);
}

// @ts-ignore: decorator
@inline function m1h(h: v128, a: v128, dt: v128, du: v128, bp: usize): v128 {
  // exp(Δ·A)·h + Δu·B
  return f32x4.add(f32x4.mul(vexp(f32x4.mul(dt, a)), h), f32x4.mul(du, v128.load32_splat(bp)));
}

// channels [d, d + nc) × states [n0, n0 + nb), nb ≤ 8, over all t (state absent: h starts at 0)
// @ts-ignore: decorator
@inline function m1Tile(
  u: usize, delta: usize, A: usize, B: usize, C: usize, D: usize, z: usize, deltaBias: usize, y: usize,
  b: i32, L: i32, Dm: i32, N: i32, sp: i32, d: i32, nc: i32, n0: i32, nb: i32,
): void {
  const Nu = <usize>N;
  const first = n0 == 0;
  const last = n0 + nb >= N;
  const zero = f32x4.splat(0.0);
  // A transposed: a_j lane k = A[d + k, n0 + j]
  const ap = A + ((<usize>d * Nu + <usize>n0) << 2);
  const as = Nu << 2;
  let a0 = zero, a1 = zero, a2 = zero, a3 = zero, a4 = zero, a5 = zero, a6 = zero, a7 = zero;
  if (nb > 0) a0 = gather(ap, as, nc);
  if (nb > 1) a1 = gather(ap + 4, as, nc);
  if (nb > 2) a2 = gather(ap + 8, as, nc);
  if (nb > 3) a3 = gather(ap + 12, as, nc);
  if (nb > 4) a4 = gather(ap + 16, as, nc);
  if (nb > 5) a5 = gather(ap + 20, as, nc);
  if (nb > 6) a6 = gather(ap + 24, as, nc);
  if (nb > 7) a7 = gather(ap + 28, as, nc);
  let h0 = zero, h1 = zero, h2 = zero, h3 = zero, h4 = zero, h5 = zero, h6 = zero, h7 = zero;
  const dOff = <usize>d << 2;
  const bias = deltaBias ? ldc(deltaBias + dOff, nc) : zero;
  const Dv = D ? ldc(D + dOff, nc) : zero;
  const rowStride = <usize>Dm << 2;
  const bcStride = Nu << 2;
  let row = ((<usize>b * <usize>L * <usize>Dm) << 2) + dOff; // byte offset of [b, t, d]
  let bc = ((<usize>b * <usize>L * Nu + <usize>n0) << 2); // byte offset of [b, t, n0]
  for (let t = 0; t < L; t++) {
    let dt = f32x4.add(ldc(delta + row, nc), bias);
    if (sp) dt = vsoftplus(dt);
    const uv = ldc(u + row, nc);
    const du = f32x4.mul(dt, uv);
    const bp = B + bc;
    const cp = C + bc;
    let acc = zero;
    if (nb > 0) { h0 = m1h(h0, a0, dt, du, bp); acc = f32x4.add(acc, f32x4.mul(h0, v128.load32_splat(cp))); }
    if (nb > 1) { h1 = m1h(h1, a1, dt, du, bp + 4); acc = f32x4.add(acc, f32x4.mul(h1, v128.load32_splat(cp + 4))); }
    if (nb > 2) { h2 = m1h(h2, a2, dt, du, bp + 8); acc = f32x4.add(acc, f32x4.mul(h2, v128.load32_splat(cp + 8))); }
    if (nb > 3) { h3 = m1h(h3, a3, dt, du, bp + 12); acc = f32x4.add(acc, f32x4.mul(h3, v128.load32_splat(cp + 12))); }
    if (nb > 4) { h4 = m1h(h4, a4, dt, du, bp + 16); acc = f32x4.add(acc, f32x4.mul(h4, v128.load32_splat(cp + 16))); }
    if (nb > 5) { h5 = m1h(h5, a5, dt, du, bp + 20); acc = f32x4.add(acc, f32x4.mul(h5, v128.load32_splat(cp + 20))); }
    if (nb > 6) { h6 = m1h(h6, a6, dt, du, bp + 24); acc = f32x4.add(acc, f32x4.mul(h6, v128.load32_splat(cp + 24))); }
    if (nb > 7) { h7 = m1h(h7, a7, dt, du, bp + 28); acc = f32x4.add(acc, f32x4.mul(h7, v128.load32_splat(cp + 28))); }
    if (!first) acc = f32x4.add(ldc(y + row, nc), acc);
    if (last) {
      if (D) acc = f32x4.add(acc, f32x4.mul(Dv, uv));
      if (z) acc = f32x4.mul(acc, vsilu(ldc(z + row, nc)));
    }
    stc(y + row, acc, nc);
    row += rowStride;
    bc += bcStride;
  }
}

// lanes [0, c) from p, zeros elsewhere
// @ts-ignore: decorator
@inline function ldz(p: usize, c: i32): v128 {
  let v = f32x4.splat(0.0);
  if (c > 0) v = v128.load32_lane(p, v, 0);
  if (c > 1) v = v128.load32_lane(p, v, 1, 4);
  if (c > 2) v = v128.load32_lane(p, v, 2, 8);
  return v;
}

// one channel's state row, in place: h[n] = exp(Δ A[n]) h[n] + Δu B[n]; returns the 4 partial sums of h[n] C[n]
// @ts-ignore: decorator
@inline function m1Row(hp: usize, ap: usize, bp: usize, cp: usize, dt: v128, du: v128, N: i32): v128 {
  let acc = f32x4.splat(0.0);
  let n = 0;
  for (; n + 4 <= N; n += 4) {
    const o = <usize>n << 2;
    const e = vexp(f32x4.mul(dt, v128.load(ap + o)));
    const hv = f32x4.add(f32x4.mul(e, v128.load(hp + o)), f32x4.mul(du, v128.load(bp + o)));
    v128.store(hp + o, hv);
    acc = f32x4.add(acc, f32x4.mul(hv, v128.load(cp + o)));
  }
  if (n < N) {
    // the last N mod 4 states: zeros in the unused lanes give h = 0 there, adding nothing
    const c = N - n;
    const o = <usize>n << 2;
    const e = vexp(f32x4.mul(dt, ldz(ap + o, c)));
    const hv = f32x4.add(f32x4.mul(e, ldz(hp + o, c)), f32x4.mul(du, ldz(bp + o, c)));
    stc(hp + o, hv, c);
    acc = f32x4.add(acc, f32x4.mul(hv, ldz(cp + o, c)));
  }
  return acc;
}

// The in-place path (state present): channels [d, d + nc), one step at a time, each channel's state row updated where
// it lies, SIMD over n; Δ, u, z and the outputs of the 4 channels stay vectors (one softplus/silu for four).
// @ts-ignore: decorator
@inline function m1InPlace(
  u: usize, delta: usize, A: usize, B: usize, C: usize, D: usize, z: usize, deltaBias: usize, state: usize, y: usize,
  b: i32, L: i32, Dm: i32, N: i32, sp: i32, d: i32, nc: i32,
): void {
  const Nu = <usize>N;
  const rowBytes = Nu << 2;
  const zero = f32x4.splat(0.0);
  const dOff = <usize>d << 2;
  const bias = deltaBias ? ldc(deltaBias + dOff, nc) : zero;
  const Dv = D ? ldc(D + dOff, nc) : zero;
  const h0 = state + (<usize>b * <usize>Dm + <usize>d) * rowBytes;
  const a0 = A + <usize>d * rowBytes;
  const rowStride = <usize>Dm << 2;
  let row = ((<usize>b * <usize>L * <usize>Dm) << 2) + dOff; // byte offset of [b, t, d]
  let bc = (<usize>b * <usize>L * Nu) << 2; // byte offset of [b, t, 0]
  for (let t = 0; t < L; t++) {
    let dt = f32x4.add(ldc(delta + row, nc), bias);
    if (sp) dt = vsoftplus(dt);
    const uv = ldc(u + row, nc);
    const du = f32x4.mul(dt, uv);
    const bp = B + bc;
    const cp = C + bc;
    const s0 = m1Row(h0, a0, bp, cp, v128.shuffle<f32>(dt, dt, 0, 0, 0, 0), v128.shuffle<f32>(du, du, 0, 0, 0, 0), N);
    let s1 = zero, s2 = zero, s3 = zero;
    if (nc > 1) {
      s1 = m1Row(h0 + rowBytes, a0 + rowBytes, bp, cp, v128.shuffle<f32>(dt, dt, 1, 1, 1, 1), v128.shuffle<f32>(du, du, 1, 1, 1, 1), N);
    }
    if (nc > 2) {
      s2 = m1Row(h0 + 2 * rowBytes, a0 + 2 * rowBytes, bp, cp, v128.shuffle<f32>(dt, dt, 2, 2, 2, 2), v128.shuffle<f32>(du, du, 2, 2, 2, 2), N);
    }
    if (nc > 3) {
      s3 = m1Row(h0 + 3 * rowBytes, a0 + 3 * rowBytes, bp, cp, v128.shuffle<f32>(dt, dt, 3, 3, 3, 3), v128.shuffle<f32>(du, du, 3, 3, 3, 3), N);
    }
    // (s0, s1, s2, s3) → (Σs0, Σs1, Σs2, Σs3)
    const s01 = f32x4.add(v128.shuffle<f32>(s0, s1, 0, 4, 1, 5), v128.shuffle<f32>(s0, s1, 2, 6, 3, 7));
    const s23 = f32x4.add(v128.shuffle<f32>(s2, s3, 0, 4, 1, 5), v128.shuffle<f32>(s2, s3, 2, 6, 3, 7));
    let acc = f32x4.add(v128.shuffle<f32>(s01, s23, 0, 1, 4, 5), v128.shuffle<f32>(s01, s23, 2, 3, 6, 7));
    if (D) acc = f32x4.add(acc, f32x4.mul(Dv, uv));
    if (z) acc = f32x4.mul(acc, vsilu(ldc(z + row, nc)));
    stc(y + row, acc, nc);
    row += rowStride;
    bc += rowBytes;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Mamba-2

/**
 * Mamba-2 SSD recurrence for heads [h0, h1) of every batch row; `ssdRecurrent` semantics.
 *   x, y: [batch, L, nh, hd];  dt: [batch, L, nh] (already processed, > 0);  A: [nh];  B, C: [batch, L, G, N]
 *   (head h reads group h / (nh/G));  D: [nh] or 0;  state: [batch, nh, hd, N] or 0, read as h_0 and overwritten
 *   with the final state (absent: h_0 = 0).
 *   h_t = exp(Δ_t A) h_{t−1} + Δ_t x_t ⊗ B_t;  y_t = h_t C_t + D x_t.
 */
export function ssd_scan(
  x: usize, dt: usize, A: usize, B: usize, C: usize, D: usize, state: usize, y: usize,
  batch: i32, L: i32, nh: i32, hd: i32, G: i32, N: i32, h0: i32, h1: i32,
): void {
  const hpg = nh / G;
  const inPlace = state != 0;
  for (let b = 0; b < batch; b++) {
    for (let hh = h0; hh < h1; hh++) {
      const g = hh / hpg;
      if (inPlace) {
        m2InPlace(x, dt, A, B, C, D, state, y, b, L, nh, hd, G, N, hh, g);
        continue;
      }
      let p = 0;
      for (; p + 4 <= hd; p += 4) m2Rows(x, dt, A, B, C, D, y, b, L, nh, hd, G, N, hh, g, p, 4);
      if (p < hd) m2Rows(x, dt, A, B, C, D, y, b, L, nh, hd, G, N, hh, g, p, hd - p);
    }
  }
}

const M2_NB: i32 = 8; // state indices per tile (8 measured faster than 4 and 6)

// @ts-ignore: decorator
@inline function m2Rows(
  x: usize, dt: usize, A: usize, B: usize, C: usize, D: usize, y: usize,
  b: i32, L: i32, nh: i32, hd: i32, G: i32, N: i32, hh: i32, g: i32, p: i32, pc: i32,
): void {
  let n0 = 0;
  for (; n0 + M2_NB <= N; n0 += M2_NB) m2Tile(x, dt, A, B, C, D, y, b, L, nh, hd, G, N, hh, g, p, pc, n0, M2_NB);
  if (n0 < N || N == 0) m2Tile(x, dt, A, B, C, D, y, b, L, nh, hd, G, N, hh, g, p, pc, n0, N - n0);
}

// @ts-ignore: decorator
@inline function m2h(h: v128, dA: v128, dx: v128, bp: usize): v128 {
  return f32x4.add(f32x4.mul(dA, h), f32x4.mul(dx, v128.load32_splat(bp)));
}

// rows [p, p + pc) × states [n0, n0 + nb), nb ≤ 8, of head hh, over all t (state absent: h starts at 0)
// @ts-ignore: decorator
@inline function m2Tile(
  x: usize, dt: usize, A: usize, B: usize, C: usize, D: usize, y: usize,
  b: i32, L: i32, nh: i32, hd: i32, G: i32, N: i32, hh: i32, g: i32, p: i32, pc: i32, n0: i32, nb: i32,
): void {
  const Nu = <usize>N;
  const first = n0 == 0;
  const last = n0 + nb >= N;
  const zero = f32x4.splat(0.0);
  const as = Nu << 2;
  let h0 = zero, h1 = zero, h2 = zero, h3 = zero, h4 = zero, h5 = zero, h6 = zero, h7 = zero;
  const Av = f32x4.splat(load<f32>(A + (<usize>hh << 2)));
  const Dv = D ? f32x4.splat(load<f32>(D + (<usize>hh << 2))) : zero;
  const dtStride = <usize>nh << 2;
  const xStride = (<usize>nh * <usize>hd) << 2;
  const bcStride = (<usize>G * Nu) << 2;
  let dtp = dt + ((<usize>b * <usize>L * <usize>nh + <usize>hh) << 2);
  let xo = (((<usize>b * <usize>L * <usize>nh + <usize>hh) * <usize>hd + <usize>p) << 2);
  let bc = ((((<usize>b * <usize>L) * <usize>G + <usize>g) * Nu + <usize>n0) << 2);
  let eq = zero; // exp(Δ A) for the next (up to) 4 steps, lane 0 first
  let dq = zero; // Δ for the same steps
  for (let t = 0; t < L; t++) {
    if ((t & 3) == 0) {
      // Δ of steps t..t+3 (those < L), one vector exp for the four
      const left = L - t;
      dq = v128.load32_splat(dtp);
      if (left > 1) dq = v128.load32_lane(dtp + dtStride, dq, 1);
      if (left > 2) dq = v128.load32_lane(dtp + 2 * dtStride, dq, 2);
      if (left > 3) dq = v128.load32_lane(dtp + 3 * dtStride, dq, 3);
      eq = vexp(f32x4.mul(dq, Av));
    }
    const dA = v128.shuffle<f32>(eq, eq, 0, 0, 0, 0);
    const dts = v128.shuffle<f32>(dq, dq, 0, 0, 0, 0);
    eq = v128.shuffle<f32>(eq, eq, 1, 2, 3, 0);
    dq = v128.shuffle<f32>(dq, dq, 1, 2, 3, 0);
    const xv = ldc(x + xo, pc);
    const dx = f32x4.mul(dts, xv);
    const bp = B + bc;
    const cp = C + bc;
    let acc = zero;
    if (nb > 0) { h0 = m2h(h0, dA, dx, bp); acc = f32x4.add(acc, f32x4.mul(h0, v128.load32_splat(cp))); }
    if (nb > 1) { h1 = m2h(h1, dA, dx, bp + 4); acc = f32x4.add(acc, f32x4.mul(h1, v128.load32_splat(cp + 4))); }
    if (nb > 2) { h2 = m2h(h2, dA, dx, bp + 8); acc = f32x4.add(acc, f32x4.mul(h2, v128.load32_splat(cp + 8))); }
    if (nb > 3) { h3 = m2h(h3, dA, dx, bp + 12); acc = f32x4.add(acc, f32x4.mul(h3, v128.load32_splat(cp + 12))); }
    if (nb > 4) { h4 = m2h(h4, dA, dx, bp + 16); acc = f32x4.add(acc, f32x4.mul(h4, v128.load32_splat(cp + 16))); }
    if (nb > 5) { h5 = m2h(h5, dA, dx, bp + 20); acc = f32x4.add(acc, f32x4.mul(h5, v128.load32_splat(cp + 20))); }
    if (nb > 6) { h6 = m2h(h6, dA, dx, bp + 24); acc = f32x4.add(acc, f32x4.mul(h6, v128.load32_splat(cp + 24))); }
    if (nb > 7) { h7 = m2h(h7, dA, dx, bp + 28); acc = f32x4.add(acc, f32x4.mul(h7, v128.load32_splat(cp + 28))); }
    const yp = y + xo;
    if (!first) acc = f32x4.add(ldc(yp, pc), acc);
    if (last && D) acc = f32x4.add(acc, f32x4.mul(Dv, xv));
    stc(yp, acc, pc);
    dtp += dtStride;
    xo += xStride;
    bc += bcStride;
  }
}

/**
 * the in-place Mamba-2 step's touching distance (WasmBackendOptions.ssdTouch): 0 none (before session 34), else while
 * it updates 4 rows of a head's state it loads one 64-byte line of the 4 rows this many bytes on, so that those
 * arrive from DRAM meanwhile (each line touched once, before its rows are updated). The same bits either way.
 */
let ssdTouch: i32 = 2048; // (runtime.ts SSD_TOUCH_DEFAULT)

/** team kernel: every thread's instance sets its ssdTouch */
export function set_ssd_touch(bytes: i32, t: i32, T: i32): void {
  ssdTouch = bytes;
}

// The in-place path: the head's state [hd, N] is updated where it lies, one step at a time, SIMD over n; four rows p
// per sweep share the loads of B_t and C_t. Row sums are reduced with a 4×4 transpose-add.
function m2InPlace(
  x: usize, dt: usize, A: usize, B: usize, C: usize, D: usize, state: usize, y: usize,
  b: i32, L: i32, nh: i32, hd: i32, G: i32, N: i32, hh: i32, g: i32,
): void {
  const Nu = <usize>N;
  const N4 = N & ~3;
  const rowBytes = Nu << 2;
  const Ah = load<f32>(A + (<usize>hh << 2));
  const Dh = D ? load<f32>(D + (<usize>hh << 2)) : <f32>0;
  const Dv = f32x4.splat(Dh);
  const sh = state + (((<usize>b * <usize>nh + <usize>hh) * <usize>hd * Nu) << 2);
  const stEnd = state + (((<usize>b + 1) * <usize>nh * <usize>hd * Nu) << 2);
  const ahead: usize = L == 1 ? <usize>ssdTouch : 0; // (decode: one step)
  let junk: u32 = 0;
  for (let t = 0; t < L; t++) {
    const r = <usize>b * <usize>L + <usize>t;
    const dtv = load<f32>(dt + ((r * <usize>nh + <usize>hh) << 2));
    const dtq = f32x4.splat(dtv);
    const dAv = vexp(f32x4.mul(dtq, f32x4.splat(Ah)));
    const dA = f32x4.extract_lane(dAv, 0);
    const xo = ((r * <usize>nh + <usize>hh) * <usize>hd) << 2;
    const bp = B + (((r * <usize>G + <usize>g) * Nu) << 2);
    const cp = C + (((r * <usize>G + <usize>g) * Nu) << 2);
    let p = 0;
    for (; p + 4 <= hd; p += 4) {
      const xv = v128.load(x + xo + (<usize>p << 2));
      const dx = f32x4.mul(dtq, xv);
      const dx0 = v128.shuffle<f32>(dx, dx, 0, 0, 0, 0);
      const dx1 = v128.shuffle<f32>(dx, dx, 1, 1, 1, 1);
      const dx2 = v128.shuffle<f32>(dx, dx, 2, 2, 2, 2);
      const dx3 = v128.shuffle<f32>(dx, dx, 3, 3, 3, 3);
      const h0 = sh + <usize>p * rowBytes;
      const h1 = h0 + rowBytes;
      const h2 = h1 + rowBytes;
      const h3 = h2 + rowBytes;
      let a0 = f32x4.splat(0.0), a1 = f32x4.splat(0.0), a2 = f32x4.splat(0.0), a3 = f32x4.splat(0.0);
      let n = 0;
      // ssdTouch: the 4 rows `ahead` bytes on touched meanwhile, one 64-byte line per 4 states (where they lie within
      // this batch row's state), so that the state streams from DRAM while the core computes
      const tp = ahead && h0 + ahead + 4 * rowBytes <= stEnd ? h0 + ahead : 0;
      if (tp) {
        for (; n < N4; n += 4) {
          const o = <usize>n << 2;
          junk ^= load<u32>(tp + (o << 2));
          const bv = v128.load(bp + o);
          const cv = v128.load(cp + o);
          const v0 = f32x4.add(f32x4.mul(dAv, v128.load(h0 + o)), f32x4.mul(dx0, bv));
          const v1 = f32x4.add(f32x4.mul(dAv, v128.load(h1 + o)), f32x4.mul(dx1, bv));
          const v2 = f32x4.add(f32x4.mul(dAv, v128.load(h2 + o)), f32x4.mul(dx2, bv));
          const v3 = f32x4.add(f32x4.mul(dAv, v128.load(h3 + o)), f32x4.mul(dx3, bv));
          v128.store(h0 + o, v0);
          v128.store(h1 + o, v1);
          v128.store(h2 + o, v2);
          v128.store(h3 + o, v3);
          a0 = f32x4.add(a0, f32x4.mul(v0, cv));
          a1 = f32x4.add(a1, f32x4.mul(v1, cv));
          a2 = f32x4.add(a2, f32x4.mul(v2, cv));
          a3 = f32x4.add(a3, f32x4.mul(v3, cv));
        }
      }
      for (; n < N4; n += 4) {
        const o = <usize>n << 2;
        const bv = v128.load(bp + o);
        const cv = v128.load(cp + o);
        const v0 = f32x4.add(f32x4.mul(dAv, v128.load(h0 + o)), f32x4.mul(dx0, bv));
        const v1 = f32x4.add(f32x4.mul(dAv, v128.load(h1 + o)), f32x4.mul(dx1, bv));
        const v2 = f32x4.add(f32x4.mul(dAv, v128.load(h2 + o)), f32x4.mul(dx2, bv));
        const v3 = f32x4.add(f32x4.mul(dAv, v128.load(h3 + o)), f32x4.mul(dx3, bv));
        v128.store(h0 + o, v0);
        v128.store(h1 + o, v1);
        v128.store(h2 + o, v2);
        v128.store(h3 + o, v3);
        a0 = f32x4.add(a0, f32x4.mul(v0, cv));
        a1 = f32x4.add(a1, f32x4.mul(v1, cv));
        a2 = f32x4.add(a2, f32x4.mul(v2, cv));
        a3 = f32x4.add(a3, f32x4.mul(v3, cv));
      }
      // (a0, a1, a2, a3) → (Σa0, Σa1, Σa2, Σa3)
      const s01 = f32x4.add(v128.shuffle<f32>(a0, a1, 0, 4, 1, 5), v128.shuffle<f32>(a0, a1, 2, 6, 3, 7));
      const s23 = f32x4.add(v128.shuffle<f32>(a2, a3, 0, 4, 1, 5), v128.shuffle<f32>(a2, a3, 2, 6, 3, 7));
      let acc = f32x4.add(v128.shuffle<f32>(s01, s23, 0, 1, 4, 5), v128.shuffle<f32>(s01, s23, 2, 3, 6, 7));
      for (; n < N; n++) {
        const o = <usize>n << 2;
        const bn = load<f32>(bp + o);
        const cn = load<f32>(cp + o);
        const v0 = dA * load<f32>(h0 + o) + f32x4.extract_lane(dx, 0) * bn;
        const v1 = dA * load<f32>(h1 + o) + f32x4.extract_lane(dx, 1) * bn;
        const v2 = dA * load<f32>(h2 + o) + f32x4.extract_lane(dx, 2) * bn;
        const v3 = dA * load<f32>(h3 + o) + f32x4.extract_lane(dx, 3) * bn;
        store<f32>(h0 + o, v0);
        store<f32>(h1 + o, v1);
        store<f32>(h2 + o, v2);
        store<f32>(h3 + o, v3);
        acc = f32x4.add(acc, f32x4.mul(f32x4(v0, v1, v2, v3), f32x4.splat(cn)));
      }
      v128.store(y + xo + (<usize>p << 2), f32x4.add(acc, f32x4.mul(Dv, xv)));
    }
    for (; p < hd; p++) {
      const xv = load<f32>(x + xo + (<usize>p << 2));
      const dx = dtv * xv;
      const dxv = f32x4.splat(dx);
      const hp = sh + <usize>p * rowBytes;
      let acc = f32x4.splat(0.0);
      let n = 0;
      for (; n < N4; n += 4) {
        const o = <usize>n << 2;
        const hv = f32x4.add(f32x4.mul(dAv, v128.load(hp + o)), f32x4.mul(dxv, v128.load(bp + o)));
        v128.store(hp + o, hv);
        acc = f32x4.add(acc, f32x4.mul(hv, v128.load(cp + o)));
      }
      // same reduction order as the 4-row block: ((l0 + l2) + (l1 + l3))
      acc = f32x4.add(acc, v128.shuffle<f32>(acc, acc, 2, 3, 0, 1));
      acc = f32x4.add(acc, v128.shuffle<f32>(acc, acc, 1, 0, 3, 2));
      let s = f32x4.extract_lane(acc, 0);
      for (; n < N; n++) {
        const o = <usize>n << 2;
        const hv = dA * load<f32>(hp + o) + dx * load<f32>(bp + o);
        store<f32>(hp + o, hv);
        s += hv * load<f32>(cp + o);
      }
      store<f32>(y + xo + (<usize>p << 2), s + Dh * xv);
    }
  }
  if (ahead) sinkTouches(junk);
}
