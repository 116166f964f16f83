/**
 * The decode step kernels of decodeKernels 'v2' (devices with one fixed subgroup size; the variant is that size):
 * the same work, roles and parameters as mamba_step.ts's, with the reductions done by `subgroupAdd` instead of
 * workgroup trees, so that a step kernel is a few loads and one or two subgroup sums, not ten barriers.
 * (x_proj: MAMBA1_XPROJ with the subgroup size as its variant: subgroupAdd, one barrier for the partials.)
 * - `MAMBA1_SCAN_SG`: one subgroup per (channel, b), no workgroup memory and no barrier at all: the Δ'/B/C norms
 *   (three subgroup sums), Δ = softplus(dt_proj · Δ' + bias), the state update over the lanes, y = (C · h + D u)
 *   · silu(z) (one more sum).
 * - `MAMBA2_STEP_SG`: one workgroup of 256 per (256 / subgroup size rows of a head, head, b): the conv of the
 *   group's B and C staged once (one barrier), then a subgroup per row: h = exp(Δ A_h) h + Δ x B over the
 *   lanes, y = C · h + D_h x by one subgroup sum; z copied out contiguous.
 */
import type { KernelSpec } from '../runtime.js';
import { CONV, MAMBA1_SCAN, MAMBA2_HEAD, MAMBA2_STEP, STEP_MAX_STATE } from './mamba_step.js';

/** flags and params as MAMBA1_SCAN: flags 1 conv bias, 2 Δ'/B/C norms, 4/8/16 their weights, 32 Δ to dto; Bn, Dm, N, R, Kc, flags, eps */
export const MAMBA1_SCAN_SG: KernelSpec = {
  name: 'mamba1_scan_sg',
  roles: MAMBA1_SCAN.roles,
  writes: MAMBA1_SCAN.writes,
  wgsl: (v) => /* wgsl */ `
${CONV}
const SG: u32 = ${Number(v)}u;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
  init_offsets();
  let Bn = pu(PK); let Dm = pu(PK + 1u); let N = pu(PK + 2u); let R = pu(PK + 3u); let Kc = pu(PK + 4u);
  let flags = pu(PK + 5u); let eps = pf(PK + 6u);
  // one subgroup per (channel d, row b); a subgroup past the end reads the last channel and writes nothing
  let ch = lin(wg, nwg) * (64u / SG) + li / SG;
  let ok = ch < Bn * Dm;
  let c = min(ch, Bn * Dm - 1u);
  let d = c % Dm; let b = c / Dm;
  let J = R + 2u * N;
  let xo = o_xdbl + b * J;
  let normed = (flags & 2u) != 0u;
  var s0 = 0.0; var s1 = 0.0; var s2 = 0.0;
  if (normed) {
    for (var i = lane; i < R; i += SG) { let v = $xdbl[xo + i]; s0 += v * v; }
    for (var i = lane; i < N; i += SG) { let v = $xdbl[xo + R + i]; s1 += v * v; let w = $xdbl[xo + R + N + i]; s2 += w * w; }
  }
  s0 = subgroupAdd(s0); s1 = subgroupAdd(s1); s2 = subgroupAdd(s2);
  var n0 = 1.0; var n1 = 1.0; var n2 = 1.0;
  if (normed) { n0 = inverseSqrt(s0 / f32(R) + eps); n1 = inverseSqrt(s1 / f32(N) + eps); n2 = inverseSqrt(s2 / f32(N) + eps); }
  var pd = 0.0;
  for (var r = lane; r < R; r += SG) {
    var v = $xdbl[xo + r] * n0;
    if ((flags & 4u) != 0u) { v *= $nd[o_nd + r]; }
    pd = fma(v, $dtw[o_dtw + d * R + r], pd);
  }
  let dt = softplus(subgroupAdd(pd) + $dtb[o_dtb + d]);
  let u = conv_u(b, d, Dm, Kc, (flags & 1u) != 0u);
  let du = dt * u;
  let so = o_state + (b * Dm + d) * N;
  var part = 0.0;
  for (var n = lane; n < N; n += SG) {
    var bv = $xdbl[xo + R + n] * n1;
    var cv = $xdbl[xo + R + N + n] * n2;
    if ((flags & 8u) != 0u) { bv *= $nB[o_nB + n]; }
    if ((flags & 16u) != 0u) { cv *= $nC[o_nC + n]; }
    let hv = exp(dt * $A[o_A + d * N + n]) * $state[so + n] + du * bv;
    if (ok) { $state[so + n] = hv; }
    part += hv * cv;
  }
  let yv = subgroupAdd(part);
  if (ok && lane == 0u) {
    $y[o_y + b * Dm + d] = (yv + $D[o_D + d] * u) * silu($xz[o_xz + b * 2u * Dm + Dm + d]);
    if ((flags & 32u) != 0u) { $dto[o_dto + b * Dm + d] = dt; }
  }
}`,
};

/** flags and params as MAMBA2_STEP: flags 1 conv bias, 2 D, 4 Δ bias, 8 Δ to dto; Bn, nh, hd, G, N, I, Kc, flags, lo, hi */
export const MAMBA2_STEP_SG: KernelSpec = {
  name: 'mamba2_step_sg',
  roles: MAMBA2_STEP.roles,
  writes: MAMBA2_STEP.writes,
  wgsl: (v) => /* wgsl */ `
${CONV}
const SG: u32 = ${Number(v)}u;
const PB: u32 = ${256 / Number(v)}u;
var<workgroup> sB: array<f32, ${STEP_MAX_STATE}>;
var<workgroup> sC: array<f32, ${STEP_MAX_STATE}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
  init_offsets();
${MAMBA2_HEAD}
  for (var i = li; i < 2u * N; i += 256u) {
    if (i < N) { sB[i] = conv_u(b, I + grp * N + i, C, Kc, hasCB); }
    else { sC[i - N] = conv_u(b, I + G * N + grp * N + i - N, C, Kc, hasCB); }
  }
  workgroupBarrier();
  var bias = 0.0;
  if ((flags & 4u) != 0u) { bias = $dtb[o_dtb + h]; }
  let row = b * (I + C + nh);
  let dt = clamp(softplus($zx[o_zx + row + I + C + h] + bias), lo, hi);
  if ((flags & 8u) != 0u && pb == 0u && li == 0u) { $dto[o_dto + b * nh + h] = dt; }
  let dA = exp(dt * $A[o_A + h]);
  // one subgroup per row p of the head; a row past the end reads the last one and writes nothing
  let p0 = pb * PB + li / SG;
  let ok = p0 < hd;
  let p = min(p0, hd - 1u);
  let xv = conv_u(b, h * hd + p, C, Kc, hasCB);
  let dx = dt * xv;
  let so = o_state + ((b * nh + h) * hd + p) * N;
  var part = 0.0;
  for (var n = lane; n < N; n += SG) {
    let hv = dA * $state[so + n] + dx * sB[n];
    if (ok) { $state[so + n] = hv; }
    part += hv * sC[n];
  }
  let yv = subgroupAdd(part);
  if (ok && lane == 0u) {
    var out = yv;
    if ((flags & 2u) != 0u) { out += $D[o_D + h] * xv; }
    let o = (b * nh + h) * hd + p;
    $y[o_y + o] = out;
    $zo[o_zo + o] = $zx[o_zx + row + h * hd + p];
  }
}`,
};
