// RMSNorm and Mamba-2's gated RMSNorm, f32, 128-bit SIMD. Each call computes rows [m0, m1) of x [M, H], so workers
// split rows; a row's result does not depend on the split.
//
// Oracles: `rmsNorm` and `rmsNormGated` in src/backend/cpu/kernels.ts (HF semantics: the mean of squares in f32,
// y = w · (x · rsqrt(mean + eps))). The sum of squares runs in four f32 lanes, then the lanes are added: within
// a few ulp of the reference's (float64) sum.

import { ldc, stc, vsilu } from './simd';

// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/** y = w · x / sqrt(mean(x²) + eps) per row of H; w = 0 means no weight */
export function rms_norm(x: usize, w: usize, y: usize, H: i32, eps: f32, m0: i32, m1: i32): void {
  for (let m = m0; m < m1; m++) {
    const xp = x + ((<usize>m * H) << 2);
    const yp = y + ((<usize>m * H) << 2);
    let acc = f32x4.splat(0);
    let k = 0;
    for (; k + 4 <= H; k += 4) {
      const v = v128.load(xp + (<usize>k << 2));
      acc = f32x4.add(acc, f32x4.mul(v, v));
    }
    let ss = hsum(acc);
    for (; k < H; k++) {
      const v = load<f32>(xp + (<usize>k << 2));
      ss += v * v;
    }
    const r = f32x4.splat(<f32>1 / Mathf.sqrt(ss / <f32>H + eps));
    for (k = 0; k < H; k += 4) {
      const c = min(4, H - k);
      const o = <usize>k << 2;
      const n = f32x4.mul(ldc(xp + o, c), r);
      stc(yp + o, w ? f32x4.mul(ldc(w + o, c), n) : n, c);
    }
  }
}

/**
 * Gated RMSNorm (norm before gate = false): g = x · silu(z), each group of G channels of a row of W normalised on
 * its own, times w [W]. y may be x.
 */
export function rms_norm_gated(x: usize, z: usize, w: usize, y: usize, W: i32, G: i32, eps: f32, m0: i32, m1: i32): void {
  rms_norm_gated_rows(x, W, z, W, w, y, W, W, G, eps, m0, m1);
}

/**
 * `rms_norm_gated` on rows with strides of their own (floats per row: xRow, zRow, yRow ≥ W), e.g. z read in place
 * from Mamba-2's in_proj output [M, width]. The same arithmetic. y may be x (the same stride).
 */
export function rms_norm_gated_rows(x: usize, xRow: i32, z: usize, zRow: i32, w: usize, y: usize, yRow: i32, W: i32, G: i32, eps: f32, m0: i32, m1: i32): void {
  for (let m = m0; m < m1; m++) {
    for (let g0 = 0; g0 < W; g0 += G) {
      const xp = x + ((<usize>m * xRow + g0) << 2), zp = z + ((<usize>m * zRow + g0) << 2), yp = y + ((<usize>m * yRow + g0) << 2);
      let acc = f32x4.splat(0);
      let tail: f32 = 0;
      for (let k = 0; k < G; k += 4) {
        const c = min(4, G - k);
        const o = <usize>k << 2;
        const g = f32x4.mul(ldc(xp + o, c), vsilu(ldc(zp + o, c)));
        stc(yp + o, g, c);
        if (c === 4) acc = f32x4.add(acc, f32x4.mul(g, g));
        else for (let j = 0; j < c; j++) {
          const v = load<f32>(yp + o + (<usize>j << 2));
          tail += v * v;
        }
      }
      const r = f32x4.splat(<f32>1 / Mathf.sqrt((hsum(acc) + tail) / <f32>G + eps));
      const wp = w + (<usize>g0 << 2);
      for (let k = 0; k < G; k += 4) {
        const c = min(4, G - k);
        const o = <usize>k << 2;
        stc(yp + o, f32x4.mul(ldc(wp + o, c), f32x4.mul(ldc(yp + o, c), r)), c);
      }
    }
  }
}

/**
 * y = silu(a) · b elementwise over [i0, i1) (the gated MLP's SwiGLU; oracle: `siluMul` of src/backend/cpu/index.ts,
 * silu(z) = z / (1 + exp(−z)) with simd.ts's exp: within a few ulp of the reference)
 */
export function silu_mul(a: usize, b: usize, y: usize, i0: i32, i1: i32): void {
  for (let i = i0; i < i1; i += 4) {
    const c = min(4, i1 - i);
    const o = <usize>i << 2;
    stc(y + o, f32x4.mul(vsilu(ldc(a + o, c)), ldc(b + o, c)), c);
  }
}

/**
 * y = a + b, elements [i0, i1) (f32; y may be a or b): a Mamba-2 prefill layer's residual add (`mamba2Prefill` with
 * `residual`), the same bits as the backends' `add` (an f32 sum, rounded once)
 */
export function add_f32(a: usize, b: usize, y: usize, i0: i32, i1: i32): void {
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < i1; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(a + o) + load<f32>(b + o));
  }
}
