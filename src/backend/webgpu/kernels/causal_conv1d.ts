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

export const CONV_STEP: KernelSpec = {
  name: 'conv_step',
  roles: ['x', 'w', 'bias', 'state', 'y'],
  writes: ['state', 'y'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  ${PARAMS}
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * C) { return; }
  let c = i % C; let b = i / C;
  let so = o_state + (b * C + c) * K;
  let xin = $x[o_x + b * xS + c];
  var s = 0.0;
  if (hasBias) { s = $bias[o_bias + c]; }
  for (var k = 0u; k + 1u < K; k++) {
    let v = $state[so + k + 1u];
    s += $w[o_w + c * K + k] * v;
    $state[so + k] = v;
  }
  s += $w[o_w + c * K + K - 1u] * xin;
  $state[so + K - 1u] = xin;
  if (act) { s = silu(s); }
  $y[o_y + i] = s;
}`,
};
