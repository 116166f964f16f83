// A decode step's output projection in the same team call as the step (mamba1_step_out, mamba2_step_out): after the
// step's last phase, a barrier, then y = x · Wᵀ (+ bias) with W's rows split among the threads, as `linear` splits
// them (aligned to 4) — one hand-off per layer for the step and out_proj instead of two, and x (the step's output)
// never leaves wasm memory. Each thread runs the one-matrix decode kernel (linear.ts, linear_q8.ts) on its rows, so
// the result is the same bits as the step's output passed to `linear` (those kernels give the same bits for any split
// of N). q8: each thread quantizes x itself (quantize_rows_q8, into scratch of its own) instead of one thread and a
// second barrier; the quantization is deterministic, so every thread holds the same integers.
//
// The product is described by 10 i32 at `desc` (the JS side writes them; see WasmBackend.stepOutDesc):
//   [fmt (0 f32, 1 bf16, 2 f16, 3 q8), W (q8: its int8 rows), q8 scales or 0, bias or 0, y [M, N], N,
//    q8: scratch for the quantized x, xqStride bytes per thread (≥ 2·M·K + 4·M·K/32),
//    q8 with M = 1: memory to touch meanwhile (linear_q8_touch: a Mamba-2 layer's SSM state, before its step) or 0,
//    its bytes]

import { linear_bf16, linear_f16, linear_f32 } from './linear';
import { linear_q8, linear_q8_touch, quantize_rows_q8 } from './linear_q8';
import { mamba1_step } from './mamba1_step';
import { mamba2_step } from './mamba2_step';
import { silu_mul } from './norm';
import { sliceHi, sliceLo, teamBarrier } from './team';

/** y = x [M, K] · Wᵀ for this thread's rows of W (see above); call after a barrier that made all of x ready */
export function teamProduct(desc: usize, x: usize, M: i32, K: i32, t: i32, T: i32): void {
  const N = load<i32>(desc, 20);
  productRows(desc, x, M, K, sliceLo(t, T, N, 4), sliceHi(t, T, N, 4), t);
}

/** teamProduct's rows n0 … n1 − 1 of W (n0 a multiple of 4) as thread t (its q8 scratch) */
export function productRows(desc: usize, x: usize, M: i32, K: i32, n0: i32, n1: i32, t: i32): void {
  const fmt = load<i32>(desc), w = <usize>load<u32>(desc, 4), scales = <usize>load<u32>(desc, 8);
  const bias = <usize>load<u32>(desc, 12), y = <usize>load<u32>(desc, 16), N = load<i32>(desc, 20);
  if (n0 >= n1) return;
  if (fmt == 3) {
    const xq = <usize>load<u32>(desc, 24) + <usize>t * <usize>load<u32>(desc, 28);
    const xs = xq + ((<usize>M * <usize>K) << 1);
    quantize_rows_q8(x, xq, xs, M, K, 0, M);
    const touch = <usize>load<u32>(desc, 32);
    if (touch && M == 1) linear_q8_touch(xq, xs, w, scales, bias, y, M, K, N, touch, <usize>load<u32>(desc, 36), n0, n1);
    else linear_q8(xq, xs, w, scales, bias, y, M, K, N, n0, n1);
  } else if (fmt == 0) linear_f32(x, w, bias, y, M, K, N, n0, n1);
  else if (fmt == 1) linear_bf16(x, w, bias, y, M, K, N, n0, n1);
  else linear_f16(x, w, bias, y, M, K, N, n0, n1);
}

/** mamba1_step (its arguments, without the out_proj prefetch), then out_proj of its y (`desc`, see above) */
export function mamba1_step_out(
  xz: usize, convW: usize, convB: usize, convState: usize, xProj: usize, dtProj: usize, dtBias: usize, A: usize,
  Dskip: usize, ssmState: usize, y: usize, scratch: usize, counter: usize, deltaOut: usize,
  hasNorms: i32, normDt: usize, normB: usize, normC: usize, eps: f32,
  batch: i32, Dm: i32, K: i32, R: i32, N: i32, desc: usize, t: i32, T: i32,
): void {
  mamba1_step(xz, convW, convB, convState, xProj, dtProj, dtBias, A, Dskip, ssmState, y, scratch, counter, deltaOut,
    hasNorms, normDt, normB, normC, eps, batch, Dm, K, R, N, 0, 0, 0, 0, 0, 0, t, T);
  teamBarrier(counter, hasNorms ? 4 : 3, T); // (mamba1_step passes 2 barriers, 3 with the norms)
  teamProduct(desc, y, batch, Dm, t, T);
}

/** mamba2_step (its arguments, without the out_proj prefetch), then out_proj of its g (`desc`, see above) */
export function mamba2_step_out(
  zxbcdt: usize, dt: usize, convW: usize, convB: usize, convState: usize, A: usize, Dskip: usize, ssmState: usize,
  normW: usize, eps: f32, groupSize: i32, y: usize, scratch: usize, counter: usize,
  batch: i32, nh: i32, hd: i32, G: i32, N: i32, K: i32, desc: usize, t: i32, T: i32,
): void {
  mamba2_step(zxbcdt, dt, convW, convB, convState, A, Dskip, ssmState, normW, eps, groupSize, y, scratch, counter,
    batch, nh, hd, G, N, K, 0, 0, 0, 0, 0, 0, t, T);
  teamBarrier(counter, 3, T); // (mamba2_step passes 2 barriers)
  teamProduct(desc, y, batch, nh * hd, t, T);
}

// The whole decode step of a Mamba layer in one team call (mamba1_layer, mamba2_layer): in_proj (`descIn`, the same
// descriptor as out_proj's; its y is the step's input), a barrier (on the i32 after `counter`, also zeroed), then the
// *_step_out kernel above. One hand-off per layer.

/** Mamba-1: in_proj of h [batch, H], then mamba1_step_out on its xz (`xz` = descIn's y) */
export function mamba1_layer(
  h: usize, descIn: usize, H: i32,
  xz: usize, convW: usize, convB: usize, convState: usize, xProj: usize, dtProj: usize, dtBias: usize, A: usize,
  Dskip: usize, ssmState: usize, y: usize, scratch: usize, counter: usize, deltaOut: usize,
  hasNorms: i32, normDt: usize, normB: usize, normC: usize, eps: f32,
  batch: i32, Dm: i32, K: i32, R: i32, N: i32, desc: usize, t: i32, T: i32,
): void {
  teamProduct(descIn, h, batch, H, t, T);
  teamBarrier(counter + 4, 1, T);
  mamba1_step_out(xz, convW, convB, convState, xProj, dtProj, dtBias, A, Dskip, ssmState, y, scratch, counter, deltaOut,
    hasNorms, normDt, normB, normC, eps, batch, Dm, K, R, N, desc, t, T);
}

/**
 * Mamba-2: in_proj of h [batch, H], Δ = clamp(softplus(dt' + dtBias), lo, hi) from its last nh columns into `dt`
 * [batch, nh] (thread 0, while the others start the conv step; the step's first barrier orders it before the SSD),
 * then mamba2_step_out on its zxbcdt (= descIn's y). Δ as the JS side's processDt computes it: in f64 (the sum, then
 * log1p(exp(·)) below 20, the limits), rounded to f32 once. (AssemblyScript's exp and log1p are musl's, V8's
 * fdlibm's: they gave the same f32 Δ on 5·10⁷ inputs tried; the tests compare the two paths to the bit.)
 */
/** Δ of head i from the raw dt at `raw`: clamp(softplus(dt' + dtBias), lo, hi) in f64 as processDt, rounded to f32 once */
// @ts-ignore: decorator
@inline function delta(raw: usize, dtBias: usize, lo: f64, hi: f64, i: i32): f32 {
  let v = <f64>load<f32>(raw + (<usize>i << 2));
  if (dtBias) v += <f64>load<f32>(dtBias + (<usize>i << 2));
  v = v > 20 ? v : Math.log1p(Math.exp(v));
  return <f32>(v < lo ? lo : v > hi ? hi : v);
}

/**
 * Prefill: Δ [M, nh] (dense) of rows [r0, r1) from the raw dt of each row of in_proj's output, `rawRow` floats apart
 * (raw = the row's first dt column), as mamba2_layer and processDt compute it.
 */
export function mamba2_dt_rows(raw: usize, rawRow: i32, dtBias: usize, lo: f64, hi: f64, dt: usize, nh: i32, r0: i32, r1: i32): void {
  for (let r = r0; r < r1; r++) {
    const p = raw + ((<usize>r * <usize>rawRow) << 2);
    for (let i = 0; i < nh; i++) store<f32>(dt + ((<usize>r * <usize>nh + <usize>i) << 2), delta(p, dtBias, lo, hi, i));
  }
}

export function mamba2_layer(
  h: usize, descIn: usize, H: i32, dtBias: usize, lo: f64, hi: f64,
  zxbcdt: usize, dt: usize, convW: usize, convB: usize, convState: usize, A: usize, Dskip: usize, ssmState: usize,
  normW: usize, eps: f32, groupSize: i32, y: usize, scratch: usize, counter: usize,
  batch: i32, nh: i32, hd: i32, G: i32, N: i32, K: i32, desc: usize, t: i32, T: i32,
): void {
  teamProduct(descIn, h, batch, H, t, T);
  teamBarrier(counter + 4, 1, T);
  if (t == 0) {
    const W = nh * hd;
    const width = 2 * W + 2 * G * N + nh;
    for (let b = 0; b < batch; b++) {
      const raw = zxbcdt + ((<usize>(b * width + width - nh)) << 2);
      for (let i = 0; i < nh; i++) store<f32>(dt + ((<usize>(b * nh + i)) << 2), delta(raw, dtBias, lo, hi, i));
    }
  }
  mamba2_step_out(zxbcdt, dt, convW, convB, convState, A, Dskip, ssmState, normW, eps, groupSize, y, scratch, counter,
    batch, nh, hd, G, N, K, desc, t, T);
}

/**
 * A gated MLP's decode (SwiGLU: Llama's, Bamba's): g = x · Wgᵀ and u = x · Wuᵀ (descG, descU; x [M, H]), then
 * a = silu(g) · u into g (each thread the same rows of both products, aligned to 4, so it reads only what it wrote: no
 * barrier), a barrier, then y = a · Wdᵀ (descD, K = I). One hand-off instead of three ops (linearMany, siluMul, linear)
 * and g, u, a never leave wasm memory; the same bits as those ops (the decode kernels give the same bits for any split).
 */
export function gated_mlp(x: usize, M: i32, H: i32, I: i32, descG: usize, descU: usize, descD: usize, counter: usize, t: i32, T: i32): void {
  teamProduct(descG, x, M, H, t, T);
  teamProduct(descU, x, M, H, t, T);
  const g = <usize>load<u32>(descG, 16), u = <usize>load<u32>(descU, 16);
  const n0 = sliceLo(t, T, I, 4), n1 = sliceHi(t, T, I, 4);
  if (n0 < n1) {
    for (let m = 0; m < M; m++) {
      const o = (<usize>m * I) << 2;
      silu_mul(g + o, u + o, g + o, n0, n1);
    }
  }
  teamBarrier(counter, 1, T);
  teamProduct(descD, g, M, I, t, T);
}
