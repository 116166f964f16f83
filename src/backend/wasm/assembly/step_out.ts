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
import { causal_conv1d } from './conv';
import { ssd_scan } from './scan';
import { rms_norm_gated, silu_mul } from './norm';
import { sliceHi, sliceLo, teamArrive, teamBarrier, teamWait } from './team';

/** q8 (`desc`'s format 3): x [M, K] quantized into this thread's scratch, for `teamRows`; other formats: nothing */
function teamQuantize(desc: usize, x: usize, M: i32, K: i32, t: i32): void {
  if (load<i32>(desc) != 3) return;
  const xq = <usize>load<u32>(desc, 24) + <usize>t * <usize>load<u32>(desc, 28);
  quantize_rows_q8(x, xq, xq + ((<usize>M * <usize>K) << 1), M, K, 0, M);
}

/** rows [n0, n1) of y = x [M, K] · Wᵀ (+ bias) (`desc` as teamProduct's, no touching; q8: after teamQuantize) */
function teamRows(desc: usize, x: usize, M: i32, K: i32, t: i32, n0: i32, n1: i32): void {
  if (n0 >= n1) return;
  const fmt = load<i32>(desc), w = <usize>load<u32>(desc, 4), scales = <usize>load<u32>(desc, 8);
  const bias = <usize>load<u32>(desc, 12), y = <usize>load<u32>(desc, 16), N = load<i32>(desc, 20);
  if (fmt == 3) {
    const xq = <usize>load<u32>(desc, 24) + <usize>t * <usize>load<u32>(desc, 28);
    linear_q8(xq, xq + ((<usize>M * <usize>K) << 1), w, scales, bias, y, M, K, N, n0, n1);
  } else if (fmt == 0) linear_f32(x, w, bias, y, M, K, N, n0, n1);
  else if (fmt == 1) linear_bf16(x, w, bias, y, M, K, N, n0, n1);
  else linear_f16(x, w, bias, y, M, K, N, n0, n1);
}

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

/**
 * A plain MLP's decode (Nemotron-H: down(act(up(x)))), act 1: relu² (v > 0 ? v · v : 0), 2: relu: u = x · Wuᵀ (descU),
 * the activation on each thread's own rows of u (teamProduct's split: no barrier), a barrier, y = act(u) · Wdᵀ (descD,
 * K = I). The same bits as `linear`, the CPU backend's `activation` (f32 · f32 rounded once: relu² exactly as the JS
 * kernel's f64 product rounded to f32) and `linear`.
 */
export function plain_mlp(x: usize, M: i32, H: i32, I: i32, descU: usize, descD: usize, act: i32, counter: usize, t: i32, T: i32): void {
  teamProduct(descU, x, M, H, t, T);
  const u = <usize>load<u32>(descU, 16);
  const n0 = sliceLo(t, T, I, 4), n1 = sliceHi(t, T, I, 4);
  for (let m = 0; m < M; m++) {
    for (let i = n0; i < n1; i++) {
      const p = u + ((<usize>m * I + <usize>i) << 2);
      const v = load<f32>(p);
      store<f32>(p, v > 0 ? (act == 1 ? v * v : v) : 0);
    }
  }
  teamBarrier(counter, 1, T);
  teamProduct(descD, u, M, I, t, T);
}

/**
 * `mamba2_layer` with two barriers instead of four (WasmBackendOptions.m2TwoBarriers): in_proj, a barrier, then each
 * thread on its own heads [h0, h1) at once — their Δ, the conv of their x channels (state updated in place: the
 * threads' channels are disjoint) and of all B/C channels (each thread the whole of B and C, into scratch of its own,
 * on its own copy of their conv state: the other threads read the shared one meanwhile), the SSD step of its heads —
 * a barrier, then each thread the whole gated RMSNorm into scratch of its own (a few µs; in `mamba2_layer` one thread
 * normed while the others waited at a barrier) and its rows of out_proj from that; thread 0 stores its updated B/C
 * conv state back. Every value is computed by the same kernels with the same inputs as in `mamba2_layer` (the conv,
 * the SSD and the norm are the same bits for any split), so the output and the states are the same bits.
 *
 * `priv`: scratch of `privStride` bytes per thread: B/C conv state [batch, 2GN, K], B/C after the conv [batch, 2GN],
 * the normed g [batch, W]. `early` (WasmBackendOptions.m2EarlyBC; batch 1, not with touchState): in_proj's B/C rows first and
 * the barrier after in_proj split in two (see the code), so that a thread late into the call delays the others less.
 */
export function mamba2_layer_2b(
  h: usize, descIn: usize, H: i32, dtBias: usize, lo: f64, hi: f64,
  zxbcdt: usize, dt: usize, convW: usize, convB: usize, convState: usize, A: usize, Dskip: usize, ssmState: usize,
  normW: usize, eps: f32, groupSize: i32, priv: usize, privStride: usize, scratch: usize, counter: usize,
  batch: i32, nh: i32, hd: i32, G: i32, N: i32, K: i32, desc: usize, early: i32, t: i32, T: i32,
): void {
  const W = nh * hd;
  const GN = G * N;
  const h0 = sliceLo(t, T, nh, 1), h1 = sliceHi(t, T, nh, 1);
  if (early && batch == 1 && !load<u32>(descIn, 32)) {
    // in_proj with a split-phase barrier: this thread's share of the B/C rows (the only rows another thread reads
    // before the second barrier), arrive; then the x and dt rows of its own heads and its share of z; then wait.
    // (One row of x only: the matrix-vector kernels give the same bits for any split of the rows; the kernels for
    // more rows of x group W's rows from the split's start, so other splits than teamProduct's could change bits.)
    teamQuantize(descIn, h, batch, H, t);
    teamRows(descIn, h, batch, H, t, 2 * W + sliceLo(t, T, 2 * GN, 4), 2 * W + sliceHi(t, T, 2 * GN, 4));
    teamArrive(counter, 1, T);
    teamRows(descIn, h, batch, H, t, W + h0 * hd, W + h1 * hd);
    teamRows(descIn, h, batch, H, t, 2 * W + 2 * GN + h0, 2 * W + 2 * GN + h1);
    teamRows(descIn, h, batch, H, t, sliceLo(t, T, W, 4), sliceHi(t, T, W, 4));
    teamWait(counter, 1, T);
  } else {
    teamProduct(descIn, h, batch, H, t, T);
    teamBarrier(counter, 1, T);
  }
  const convDim = W + 2 * GN;
  const width = 2 * W + 2 * GN + nh;
  const rowIn = <usize>width << 2;
  const xbc = scratch; // x channels after the conv [batch, convDim] (B/C columns unused here)
  const ys = xbc + ((<usize>batch * convDim) << 2);
  const my = priv + <usize>t * privStride;
  const bcState = my, bc = bcState + ((<usize>batch * 2 * GN * K) << 2), g = bc + ((<usize>batch * 2 * GN) << 2);
  for (let b = 0; b < batch; b++) {
    const row = zxbcdt + <usize>b * rowIn;
    const raw = row + ((<usize>(width - nh)) << 2);
    for (let i = h0; i < h1; i++) store<f32>(dt + ((<usize>(b * nh + i)) << 2), delta(raw, dtBias, lo, hi, i));
    const cs = convState + ((<usize>b * convDim * K) << 2);
    if (h0 < h1) {
      causal_conv1d(row + (<usize>W << 2), convW, convB, cs, xbc + ((<usize>b * convDim) << 2), 1, 1, convDim, K, 1, h0 * hd, h1 * hd);
    }
    const sb = bcState + ((<usize>b * 2 * GN * K) << 2);
    memory.copy(sb, cs + ((<usize>W * K) << 2), (<usize>2 * GN * K) << 2);
    causal_conv1d(row + ((<usize>2 * W) << 2), convW + ((<usize>W * K) << 2), convB ? convB + (<usize>W << 2) : 0, sb,
      bc + ((<usize>b * 2 * GN) << 2), 1, 1, 2 * GN, K, 1, 0, 2 * GN);
  }
  if (h0 < h1) {
    for (let b = 0; b < batch; b++) {
      const xb = xbc + ((<usize>b * convDim) << 2), bb = bc + ((<usize>b * 2 * GN) << 2);
      ssd_scan(xb, dt + ((<usize>b * nh) << 2), A, bb, bb + (<usize>GN << 2), Dskip,
        ssmState + ((<usize>b * nh * hd * N) << 2), ys + ((<usize>b * W) << 2), 1, 1, nh, hd, G, N, h0, h1);
    }
  }
  teamBarrier(counter, 2, T);
  for (let b = 0; b < batch; b++) {
    rms_norm_gated(ys + ((<usize>b * W) << 2), zxbcdt + <usize>b * rowIn, normW, g + ((<usize>b * W) << 2), W, groupSize, eps, 0, 1);
  }
  if (t == 0) {
    // (every thread's B/C conv state is the same bits; the others are past their last read of the shared one)
    for (let b = 0; b < batch; b++) {
      memory.copy(convState + ((<usize>(b * convDim + W) * K) << 2), bcState + ((<usize>b * 2 * GN * K) << 2), (<usize>2 * GN * K) << 2);
    }
  }
  teamProduct(desc, g, batch, W, t, T);
}
