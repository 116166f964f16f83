// Depthwise causal conv1d (Mamba's short convolution), f32, 128-bit SIMD over channels.
//
// Oracle: `causalConv1d` in src/backend/cpu/kernels.ts (same layouts and state convention):
//   x, y: [batch, L, C];  w: [C, K];  bias: [C] or 0;  state: [batch, C, K] or 0 (slot K−1 = newest input)
//   y[t, c] = bias[c] + Σ_k w[c, k] · xpad[t + k],  xpad = (state slots 1…K−1, or zeros) ++ x[·, c]
//   then silu if siluFlag ≠ 0; the state (if given) is overwritten with the last K entries of xpad.
// Each call computes channels [c0, c1) of every batch row, so workers split C. Slices are aligned to 4 by the
// caller and every channel runs the same lane-wise instructions, so any split gives bit-identical results.
//
// K ≤ 4 (every Mamba checkpoint): four channels per v128, the K weights of the group hoisted into registers and the
// last inputs kept in a sliding window of registers, so each step is one load of x_t, K multiply-adds and one store.
// K > 4: a scalar loop with the same arithmetic order.

import { gather, ldc, stc, vsilu } from './simd';

// lanes k < n of v to p + k·stride (bytes)
// @ts-ignore: decorator
@inline function scatter(p: usize, stride: usize, v: v128, n: i32): void {
  v128.store32_lane(p, v, 0);
  if (n > 1) v128.store32_lane(p + stride, v, 1);
  if (n > 2) v128.store32_lane(p + 2 * stride, v, 2);
  if (n > 3) v128.store32_lane(p + 3 * stride, v, 3);
}

export function causal_conv1d(
  x: usize, w: usize, bias: usize, state: usize, y: usize,
  batch: i32, L: i32, C: i32, K: i32, siluFlag: i32, c0: i32, c1: i32,
): void {
  for (let b = 0; b < batch; b++) {
    if (K == 4 && L == 1 && state) {
      // decode: whole rows of state and weights are one v128 each
      let c = c0;
      for (; c + 4 <= c1; c += 4) convStep4(x, w, bias, state, y, b, C, siluFlag, c);
      if (c < c1) convGroup(x, C, w, bias, state, y, C, b, L, C, K, siluFlag, c, c1 - c);
    } else if (K <= 4) {
      for (let c = c0; c < c1; c += 4) convGroup(x, C, w, bias, state, y, C, b, L, C, K, siluFlag, c, min(4, c1 - c));
    } else {
      for (let c = c0; c < c1; c++) convScalar(x, C, w, bias, state, y, C, b, L, C, K, siluFlag, c);
    }
  }
}

/**
 * `causal_conv1d` on rows of x and y with strides of their own (floats per time step: xRow, yRow ≥ C), e.g. the
 * xBC columns of Mamba-2's in_proj output [batch · L, width]. In place (y = x, yRow = xRow) only for K ≤ 4: that
 * path reads each x_t before it writes y_t and keeps the history (and the new state) in registers; the K > 4 loop
 * reads x_{t−j} back from x. The same arithmetic as `causal_conv1d`.
 */
export function causal_conv1d_rows(
  x: usize, xRow: i32, w: usize, bias: usize, state: usize, y: usize, yRow: i32,
  batch: i32, L: i32, C: i32, K: i32, siluFlag: i32, c0: i32, c1: i32,
): void {
  for (let b = 0; b < batch; b++) {
    if (K <= 4) {
      for (let c = c0; c < c1; c += 4) convGroup(x, xRow, w, bias, state, y, yRow, b, L, C, K, siluFlag, c, min(4, c1 - c));
    } else {
      for (let c = c0; c < c1; c++) convScalar(x, xRow, w, bias, state, y, yRow, b, L, C, K, siluFlag, c);
    }
  }
}

// @ts-ignore: decorator
@inline function wcol(w: usize, c: i32, K: i32, k: i32, n: i32): v128 {
  return k < 0 ? f32x4.splat(0) : gather(w + ((<usize>c * K + k) << 2), <usize>K << 2, n);
}

/** channels [c, c + n), n ≤ 4, K ≤ 4 */
function convGroup(
  x: usize, xRow: i32, w: usize, bias: usize, state: usize, y: usize, yRow: i32,
  b: i32, L: i32, C: i32, K: i32, siluFlag: i32, c: i32, n: i32,
): void {
  // weight of x_{t−j} is w[K−1−j]
  const w0 = wcol(w, c, K, K - 1, n), w1 = wcol(w, c, K, K - 2, n), w2 = wcol(w, c, K, K - 3, n), w3 = wcol(w, c, K, K - 4, n);
  const bv = bias ? ldc(bias + (<usize>c << 2), n) : f32x4.splat(0);
  // history x_{−j} = state slot K − j (j = 1…K−1); zero beyond
  const sp = state + ((<usize>b * C + c) * K << 2);
  const ss = <usize>K << 2;
  const zero = f32x4.splat(0);
  let m1 = zero, m2 = zero, m3 = zero, m4 = zero;
  if (state) {
    if (K >= 2) m1 = gather(sp + ((<usize>K - 1) << 2), ss, n);
    if (K >= 3) m2 = gather(sp + ((<usize>K - 2) << 2), ss, n);
    if (K >= 4) m3 = gather(sp + ((<usize>K - 3) << 2), ss, n);
  }
  const xStride = <usize>xRow << 2, yStride = <usize>yRow << 2;
  let xp = x + ((<usize>b * L * xRow + c) << 2);
  let yp = y + ((<usize>b * L * yRow + c) << 2);
  for (let t = 0; t < L; t++) {
    const xt = ldc(xp, n);
    let s = f32x4.add(bv, f32x4.mul(w0, xt));
    s = f32x4.add(s, f32x4.mul(w1, m1));
    s = f32x4.add(s, f32x4.mul(w2, m2));
    s = f32x4.add(s, f32x4.mul(w3, m3));
    stc(yp, siluFlag ? vsilu(s) : s, n);
    m4 = m3;
    m3 = m2;
    m2 = m1;
    m1 = xt;
    xp += xStride;
    yp += yStride;
  }
  if (state) {
    // slot k ← xpad time L − K + k: slot K−1 = m1 (x_{L−1}), K−2 = m2, …
    scatter(sp + ((<usize>K - 1) << 2), ss, m1, n);
    if (K >= 2) scatter(sp + ((<usize>K - 2) << 2), ss, m2, n);
    if (K >= 3) scatter(sp + ((<usize>K - 3) << 2), ss, m3, n);
    if (K >= 4) scatter(sp, ss, m4, n);
  }
}

/** columns of the 4×4 matrix whose rows are a, b, c, d (row i = 4 floats): column k has lane i = row i's lane k */
// @ts-ignore: decorator
@inline function col(a: v128, b: v128, c: v128, d: v128, k: i32): v128 {
  // (k is a constant where this is inlined)
  const ab = k < 2 ? v128.shuffle<f32>(a, b, 0, 4, 1, 5) : v128.shuffle<f32>(a, b, 2, 6, 3, 7);
  const cd = k < 2 ? v128.shuffle<f32>(c, d, 0, 4, 1, 5) : v128.shuffle<f32>(c, d, 2, 6, 3, 7);
  return (k & 1) == 0 ? v128.shuffle<f32>(ab, cd, 0, 1, 4, 5) : v128.shuffle<f32>(ab, cd, 2, 3, 6, 7);
}

/**
 * One step (L = 1) of channels [c, c + 4) with K = 4 and a state: each channel's weights and state are one v128
 * row; the rows of the 4 channels are transposed so that the products and sums are convGroup's, in its order (same
 * bits), and each new state row is the old one shifted by one slot with x appended.
 */
// @ts-ignore: decorator
@inline function convStep4(x: usize, w: usize, bias: usize, state: usize, y: usize, b: i32, C: i32, siluFlag: i32, c: i32): void {
  const wp = w + ((<usize>c * 4) << 2);
  const sp = state + ((<usize>b * C + c) * 4 << 2);
  const wa = v128.load(wp), wb = v128.load(wp, 16), wc = v128.load(wp, 32), wd = v128.load(wp, 48);
  const sa = v128.load(sp), sb = v128.load(sp, 16), sc = v128.load(sp, 32), sd = v128.load(sp, 48);
  const off = (<usize>b * C + c) << 2;
  const xt = v128.load(x + off);
  const bv = bias ? v128.load(bias + (<usize>c << 2)) : f32x4.splat(0);
  // convGroup's w0..w3 = weights of x_t, x_{t−1} (slot 3), x_{t−2} (slot 2), x_{t−3} (slot 1)
  let s = f32x4.add(bv, f32x4.mul(col(wa, wb, wc, wd, 3), xt));
  s = f32x4.add(s, f32x4.mul(col(wa, wb, wc, wd, 2), col(sa, sb, sc, sd, 3)));
  s = f32x4.add(s, f32x4.mul(col(wa, wb, wc, wd, 1), col(sa, sb, sc, sd, 2)));
  s = f32x4.add(s, f32x4.mul(col(wa, wb, wc, wd, 0), col(sa, sb, sc, sd, 1)));
  v128.store(y + off, siluFlag ? vsilu(s) : s);
  v128.store(sp, v128.shuffle<f32>(sa, xt, 1, 2, 3, 4));
  v128.store(sp, v128.shuffle<f32>(sb, xt, 1, 2, 3, 5), 16);
  v128.store(sp, v128.shuffle<f32>(sc, xt, 1, 2, 3, 6), 32);
  v128.store(sp, v128.shuffle<f32>(sd, xt, 1, 2, 3, 7), 48);
}

/** one channel, any K (K > 4) */
function convScalar(
  x: usize, xRow: i32, w: usize, bias: usize, state: usize, y: usize, yRow: i32,
  b: i32, L: i32, C: i32, K: i32, siluFlag: i32, c: i32,
): void {
  const sp = state + ((<usize>b * C + c) * K << 2);
  const wp = w + ((<usize>c * K) << 2);
  const bv: f32 = bias ? load<f32>(bias + (<usize>c << 2)) : 0;
  const xb = x + ((<usize>b * L * xRow + c) << 2);
  const rowStride = <usize>xRow << 2;
  for (let t = 0; t < L; t++) {
    let s = bv;
    // same order as the SIMD path: newest input first
    for (let j = 0; j < K; j++) {
      const i = t - j; // time of the input
      let v: f32 = 0;
      if (i >= 0) v = load<f32>(xb + <usize>i * rowStride);
      else if (state && K + i >= 1) v = load<f32>(sp + (<usize>(K + i) << 2));
      s += load<f32>(wp + (<usize>(K - 1 - j) << 2)) * v;
    }
    store<f32>(y + ((<usize>(b * L + t) * yRow + c) << 2), siluFlag ? f32x4.extract_lane(vsilu(f32x4.splat(s)), 0) : s);
  }
  if (state) {
    // slot k ← time L − K + k, ascending k: a slot read from the old state (time < 0 → slot K + time > k) is
    // never one written before it
    for (let k = 0; k < K; k++) {
      const i = L - K + k;
      const v = i >= 0 ? load<f32>(xb + <usize>i * rowStride) : load<f32>(sp + (<usize>(K + i) << 2));
      store<f32>(sp + (<usize>k << 2), v);
    }
  }
}

/**
 * Prefill, K ≤ 4, in place or not: `causal_conv1d_rows` (with SiLU when siluFlag ≠ 0) walking time outermost, so that
 * each step reads and writes the channel slice [c0, c1) of one row contiguously (the channel-group loop above walks
 * each group of 4 channels down all L rows: one 16-byte piece per cache line per step). The inputs of the last 4 steps
 * stay in `ring` ([4][C] floats: x_t in ring row t mod 4, written after x_{t−4} is read from it), the weights are
 * read transposed from `wT` ([4][C], tap j = the weight of x_{t−j}, zeros for j ≥ K); this call writes both for its
 * channels, so threads given disjoint channel slices share them. The same products and sums in the same order as
 * convGroup (the same bits), the same state.
 */
export function causal_conv1d_timewise(
  x: usize, xRow: i32, w: usize, bias: usize, state: usize, y: usize, yRow: i32, wT: usize, ring: usize,
  batch: i32, L: i32, C: i32, K: i32, siluFlag: i32, c0: i32, c1: i32,
): void {
  const CB = <usize>C << 2;
  for (let c = c0; c < c1; c++) {
    for (let j = 0; j < 4; j++) store<f32>(wT + <usize>j * CB + (<usize>c << 2), j < K ? load<f32>(w + ((<usize>c * K + (K - 1 - j)) << 2)) : 0);
  }
  const w0p = wT, w1p = wT + CB, w2p = wT + 2 * CB, w3p = wT + 3 * CB;
  const ss = <usize>K << 2;
  for (let b = 0; b < batch; b++) {
    // x_{−1}, x_{−2}, x_{−3} (rows 3, 2, 1 of the ring) from the state's slots K−1, K−2, K−3, zeros beyond; x_{−4} = 0
    for (let c = c0; c < c1; c += 4) {
      const n = min(4, c1 - c);
      const sp = state + ((<usize>b * C + c) * K << 2), o = <usize>c << 2;
      const zero = f32x4.splat(0);
      stc(ring + 3 * CB + o, state && K >= 2 ? gather(sp + ((<usize>K - 1) << 2), ss, n) : zero, n);
      stc(ring + 2 * CB + o, state && K >= 3 ? gather(sp + ((<usize>K - 2) << 2), ss, n) : zero, n);
      stc(ring + CB + o, state && K >= 4 ? gather(sp + ((<usize>K - 3) << 2), ss, n) : zero, n);
      stc(ring + o, zero, n);
    }
    for (let t = 0; t < L; t++) {
      const xp = x + ((<usize>(b * L + t) * <usize>xRow) << 2), yp = y + ((<usize>(b * L + t) * <usize>yRow) << 2);
      const r0 = ring + <usize>(t & 3) * CB; // x_{t−4}, then x_t
      const r1 = ring + <usize>((t + 3) & 3) * CB, r2 = ring + <usize>((t + 2) & 3) * CB, r3 = ring + <usize>((t + 1) & 3) * CB;
      let c = c0;
      for (; c + 4 <= c1; c += 4) {
        const o = <usize>c << 2;
        const xt = v128.load(xp + o);
        let s = f32x4.add(bias ? v128.load(bias + o) : f32x4.splat(0), f32x4.mul(v128.load(w0p + o), xt));
        s = f32x4.add(s, f32x4.mul(v128.load(w1p + o), v128.load(r1 + o)));
        s = f32x4.add(s, f32x4.mul(v128.load(w2p + o), v128.load(r2 + o)));
        s = f32x4.add(s, f32x4.mul(v128.load(w3p + o), v128.load(r3 + o)));
        v128.store(r0 + o, xt);
        v128.store(yp + o, siluFlag ? vsilu(s) : s);
      }
      if (c < c1) {
        const n = c1 - c, o = <usize>c << 2;
        const xt = ldc(xp + o, n);
        let s = f32x4.add(bias ? ldc(bias + o, n) : f32x4.splat(0), f32x4.mul(ldc(w0p + o, n), xt));
        s = f32x4.add(s, f32x4.mul(ldc(w1p + o, n), ldc(r1 + o, n)));
        s = f32x4.add(s, f32x4.mul(ldc(w2p + o, n), ldc(r2 + o, n)));
        s = f32x4.add(s, f32x4.mul(ldc(w3p + o, n), ldc(r3 + o, n)));
        stc(r0 + o, xt, n);
        stc(yp + o, siluFlag ? vsilu(s) : s, n);
      }
    }
    if (state) {
      // slot K−1−j ← x_{L−1−j} (ring row (L − 1 − j) mod 4; for L − 1 − j < 0 the old slot it was loaded from)
      for (let c = c0; c < c1; c += 4) {
        const n = min(4, c1 - c);
        const sp = state + ((<usize>b * C + c) * K << 2), o = <usize>c << 2;
        for (let j = 0; j < K; j++) scatter(sp + ((<usize>(K - 1 - j)) << 2), ss, ldc(ring + <usize>((L - 1 - j) & 3) * CB + o, n), n);
      }
    }
  }
}
