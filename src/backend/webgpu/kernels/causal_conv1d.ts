/**
 * Causal depthwise conv1d over time, x [b, L, C] channel-last, kernel w [C, K], optional window state
 * [b, C, K] (slot K−1 newest). With p the K−1 history values followed by the L inputs of a channel:
 *   y[t, c] = act(bias[c] + Σ_k w[c, k] · p[t + k]),   new state = p[L−1 … L+K−2]
 * - `CONV_OUT`: one thread per output (prefill); reads the old state as history.
 * - `CONV_STATE`: one thread per (b, c) rewrites the window in place, after `CONV_OUT` (slot k is written
 *   only after every read of it: reads are at slots ≥ L + k).
 * - `CONV_STEP`: L = 1 with a state (decode): output and window update in one thread per (b, c).
 * params: B, L, C, K, flags (1 state, 2 bias, 4 silu), xS (row stride of x: C, or wider for a column range of a
 * larger tensor, as `split` leaves in_proj's output)
 */
import type { KernelSpec } from '../runtime.js';

const PARAMS = /* wgsl */ `
  let Bn = pu(PK); let L = pu(PK + 1u); let C = pu(PK + 2u); let K = pu(PK + 3u); let flags = pu(PK + 4u);
  let hasState = (flags & 1u) != 0u; let hasBias = (flags & 2u) != 0u; let act = (flags & 4u) != 0u;
  let xS = pu(PK + 5u);`;

export const CONV_OUT: KernelSpec = {
  name: 'conv_out',
  roles: ['x', 'w', 'bias', 'state', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  ${PARAMS}
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * L * C) { return; }
  let c = i % C; let bt = i / C; let t = bt % L; let b = bt / L;
  var s = 0.0;
  if (hasBias) { s = $bias[o_bias + c]; }
  for (var k = 0u; k < K; k++) {
    let j = t + k; // index into p
    var v = 0.0;
    if (j >= K - 1u) { v = $x[o_x + (b * L + j - (K - 1u)) * xS + c]; }
    else if (hasState) { v = $state[o_state + (b * C + c) * K + j + 1u]; }
    s += $w[o_w + c * K + k] * v;
  }
  if (act) { s = silu(s); }
  $y[o_y + i] = s;
}`,
};

export const CONV_STATE: KernelSpec = {
  name: 'conv_state',
  roles: ['x', 'state'],
  writes: ['state'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  ${PARAMS}
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * C) { return; }
  let c = i % C; let b = i / C;
  let so = o_state + (b * C + c) * K;
  for (var k = 0u; k < K; k++) {
    let j = L - 1u + k; // p index of window slot k
    var v: f32;
    if (j >= K - 1u) { v = $x[o_x + (b * L + j - (K - 1u)) * xS + c]; }
    else { v = $state[so + j + 1u]; }
    $state[so + k] = v;
  }
}`,
};

/**
 * One channel's decode conv step (shared by CONV_STEP and SPLITK_CONV): the window of K − 1 states at `so` shifted by
 * one with `xin` appended, returning s0 + Σ_k w[k]·window[k] (weights at `wo`). Uses the roles `state` and `w`.
 */
const CONV_SHIFT = /* wgsl */ `
fn conv_shift(so: u32, wo: u32, K: u32, xin: f32, s0: f32) -> f32 {
  var s = s0;
  for (var k = 0u; k + 1u < K; k++) {
    let v = $state[so + k + 1u];
    s += $w[wo + k] * v;
    $state[so + k] = v;
  }
  s += $w[wo + K - 1u] * xin;
  $state[so + K - 1u] = xin;
  return s;
}`;

export const CONV_STEP: KernelSpec = {
  name: 'conv_step',
  roles: ['x', 'w', 'bias', 'state', 'y'],
  writes: ['state', 'y'],
  wgsl: () => /* wgsl */ `
${CONV_SHIFT}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  ${PARAMS}
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * C) { return; }
  let c = i % C; let b = i / C;
  var s0 = 0.0;
  if (hasBias) { s0 = $bias[o_bias + c]; }
  var s = conv_shift(o_state + (b * C + c) * K, o_w + c * K, K, $x[o_x + b * xS + c], s0);
  if (act) { s = silu(s); }
  $y[o_y + i] = s;
}`,
};

/**
 * The split-K reduce of a decode batch's in_proj (M rows of N, whole) with the conv step of its columns [c0, c0 + C)
 * in the same thread (batchDecode 'fused2', session 34): y = Σ_s part[s] (+ bias), SPLITK_REDUCE's order; then for a
 * conv column, CONV_STEP on the value just summed — one dispatch instead of two, the same numbers.
 * params: M, N, hasBias, S, c0, C, K, flags (2 conv bias, 4 SiLU)
 */
export const SPLITK_CONV: KernelSpec = {
  name: 'splitk_conv',
  roles: ['p', 'bias', 'y', 'w', 'cbias', 'state', 'cy'],
  writes: ['y', 'state', 'cy'],
  wgsl: () => /* wgsl */ `
${CONV_SHIFT}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let N = pu(PK + 1u); let hasB = pu(PK + 2u); let S = pu(PK + 3u);
  let c0 = pu(PK + 4u); let C = pu(PK + 5u); let K = pu(PK + 6u); let flags = pu(PK + 7u);
  let i = lin(wg, nw) * 256u + li;
  if (i >= M * N) { return; }
  let r = i / N; let c = i % N;
  var s = 0.0;
  if (hasB != 0u) { s = $bias[o_bias + c]; }
  for (var z = 0u; z < S; z++) { s += $p[o_p + z * M * N + i]; }
  $y[o_y + i] = s;
  if (c >= c0 && c < c0 + C) {
    let ch = c - c0;
    var s0 = 0.0;
    if ((flags & 2u) != 0u) { s0 = $cbias[o_cbias + ch]; }
    var v = conv_shift(o_state + (r * C + ch) * K, o_w + ch * K, K, s, s0);
    if ((flags & 4u) != 0u) { v = silu(v); }
    $cy[o_cy + r * C + ch] = v;
  }
}`,
};
