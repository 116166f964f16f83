/**
 * RMSNorm over rows (one workgroup of 256 per row, or per (row, group) for the gated form):
 * a tree reduction of Σx² in workgroup memory, then y = w · x · rsqrt(mean + eps).
 */
import type { KernelSpec } from '../runtime.js';

const REDUCE = /* wgsl */ `
  red[li] = ss;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }`;

/** params: M, H, eps, hasWeight. Roles: x [M, H], w [H] (dummy when absent), y [M, H] */
export const RMS_NORM: KernelSpec = {
  name: 'rms_norm',
  roles: ['x', 'w', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let row = lin(wg, nw);
  let M = pu(PK); let H = pu(PK + 1u); let eps = pf(PK + 2u); let hasW = pu(PK + 3u);
  if (row >= M) { return; }
  let base = row * H;
  var ss = 0.0;
  for (var k = li; k < H; k += 256u) { let v = $x[o_x + base + k]; ss += v * v; }
  ${REDUCE}
  let r = 1.0 / sqrt(red[0] / f32(H) + eps);
  for (var k = li; k < H; k += 256u) {
    var w = 1.0;
    if (hasW != 0u) { w = $w[o_w + k]; }
    $y[o_y + base + k] = w * ($x[o_x + base + k] * r);
  }
}`,
};

/**
 * Gated RMSNorm (norm before gate = false): v = x · silu(z), normalised per group of G channels, times w.
 * One workgroup per (row, group). params: M, W, G, eps, zS (z's row stride: W, or wider for a piece of in_proj's output)
 */
export const RMS_NORM_GATED: KernelSpec = {
  name: 'rms_norm_gated',
  roles: ['x', 'z', 'w', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let W = pu(PK + 1u); let G = pu(PK + 2u); let eps = pf(PK + 3u); let zS = pu(PK + 4u);
  let nG = W / G;
  let item = lin(wg, nw);
  if (item >= M * nG) { return; }
  let row = item / nG; let g0 = (item % nG) * G;
  let base = row * W + g0;
  var ss = 0.0;
  for (var k = li; k < G; k += 256u) {
    let v = $x[o_x + base + k] * silu($z[o_z + row * zS + g0 + k]);
    ss += v * v;
  }
  ${REDUCE}
  let r = 1.0 / sqrt(red[0] / f32(G) + eps);
  for (var k = li; k < G; k += 256u) {
    let v = $x[o_x + base + k] * silu($z[o_z + row * zS + g0 + k]);
    $y[o_y + base + k] = $w[o_w + g0 + k] * (v * r);
  }
}`,
};

/** the subgroup forms: one row (or row group) per subgroup, Σx² by subgroupAdd, no workgroup barriers */
const SG_HEAD = /* wgsl */ `
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_size) sgs: u32, @builtin(subgroup_invocation_id) lane: u32) {
  init_offsets();
  let item = lin(wg, nw) * (64u / sgs) + li / sgs;`;

export const RMS_NORM_SG: KernelSpec = {
  name: 'rms_norm_sg',
  roles: ['x', 'w', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `${SG_HEAD}
  let M = pu(PK); let H = pu(PK + 1u); let eps = pf(PK + 2u); let hasW = pu(PK + 3u);
  let row = min(item, M - 1u);
  let base = row * H;
  var ss = 0.0;
  for (var k = lane; k < H; k += sgs) { let v = $x[o_x + base + k]; ss += v * v; }
  let r = 1.0 / sqrt(subgroupAdd(ss) / f32(H) + eps);
  if (item >= M) { return; }
  for (var k = lane; k < H; k += sgs) {
    var w = 1.0;
    if (hasW != 0u) { w = $w[o_w + k]; }
    $y[o_y + base + k] = w * ($x[o_x + base + k] * r);
  }
}`,
};

export const RMS_NORM_GATED_SG: KernelSpec = {
  name: 'rms_norm_gated_sg',
  roles: ['x', 'z', 'w', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `${SG_HEAD}
  let M = pu(PK); let W = pu(PK + 1u); let G = pu(PK + 2u); let eps = pf(PK + 3u); let zS = pu(PK + 4u);
  let nG = W / G;
  let it = min(item, M * nG - 1u);
  let row = it / nG; let g0 = (it % nG) * G;
  let base = row * W + g0;
  var ss = 0.0;
  for (var k = lane; k < G; k += sgs) {
    let v = $x[o_x + base + k] * silu($z[o_z + row * zS + g0 + k]);
    ss += v * v;
  }
  let r = 1.0 / sqrt(subgroupAdd(ss) / f32(G) + eps);
  if (item >= M * nG) { return; }
  for (var k = lane; k < G; k += sgs) {
    let v = $x[o_x + base + k] * silu($z[o_z + row * zS + g0 + k]);
    $y[o_y + base + k] = $w[o_w + g0 + k] * (v * r);
  }
}`,
};

/**
 * Gated RMSNorm of wide rows (prefill: many rows of G ≥ 256 channels): one workgroup of 256 per (row, group), each
 * invocation keeping its ⌈G/256⌉ gated values (the variant) in registers, so x and z are read once; Σv² by a tree in
 * workgroup memory. Same params as `RMS_NORM_GATED`.
 */
export const RMS_NORM_GATED_ROWS: KernelSpec = {
  name: 'rms_norm_gated_rows',
  roles: ['x', 'z', 'w', 'y'],
  writes: ['y'],
  wgsl: (per) => /* wgsl */ `
const PER: u32 = ${Number(per)}u;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let W = pu(PK + 1u); let G = pu(PK + 2u); let eps = pf(PK + 3u); let zS = pu(PK + 4u);
  let nG = W / G;
  let item = lin(wg, nw);
  if (item >= M * nG) { return; }
  let row = item / nG; let g0 = (item % nG) * G;
  let base = row * W + g0;
  var v: array<f32, PER>;
  var ss = 0.0;
  for (var i = 0u; i < PER; i++) {
    let k = li + 256u * i;
    var e = 0.0;
    if (k < G) { e = $x[o_x + base + k] * silu($z[o_z + row * zS + g0 + k]); }
    v[i] = e;
    ss += e * e;
  }
  ${REDUCE}
  let r = 1.0 / sqrt(red[0] / f32(G) + eps);
  for (var i = 0u; i < PER; i++) {
    let k = li + 256u * i;
    if (k < G) { $y[o_y + base + k] = $w[o_w + g0 + k] * (v[i] * r); }
  }
}`,
};
