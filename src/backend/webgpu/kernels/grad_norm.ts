/**
 * Backward kernels of RMSNorm and gated RMSNorm (training). With v the normalised values (v = x for `rms_norm`,
 * v = x·silu(z) for `rms_norm_gated`, per group of gs channels), r = 1/√(mean v² + eps) and y = w·v·r:
 *   gv_k = r·w_k·g_k − (r³/gs)·v_k·Σ_j w_j g_j v_j,   dx = gv (plain) or gv·z·σ(z), dz = gv·x·σ(z)(1 + z(1 − σ(z)))
 *   dw_k = Σ_rows g_k·v_k·r
 * - `NORM_GRAD`: one workgroup per (row, group): both sums by a tree reduction in workgroup memory, then dx (dz);
 *   also writes r per (row, group) for the weight gradient.
 * - `NORM_DW_PART`: one thread per (block of R rows, channel): the block's partial of dw (fixed order); the
 *   partials are summed over blocks by the column-sum kernel afterwards — deterministic, no atomics.
 * Variant: 'plain' or 'gated'.
 */
import type { KernelSpec } from '../runtime.js';

/** v at index o (variant-specific WGSL expression) */
const V = (variant: string): string => (variant === 'gated' ? '$x[o_x + o] * silu($z[o_z + o])' : '$x[o_x + o]');

/** params: M, W, gs, eps, hasW. Roles: x, z (gated), w (dummy when absent), g, dx, dz (gated), rstd [M·W/gs] */
export const NORM_GRAD: KernelSpec = {
  name: 'norm_grad',
  roles: ['x', 'z', 'w', 'g', 'dx', 'dz', 'rstd'],
  writes: ['dx', 'dz', 'rstd'],
  wgsl: (variant) => /* wgsl */ `
var<workgroup> r1: array<f32, 256>;
var<workgroup> r2: array<f32, 256>;
fn sig(v: f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let W = pu(PK + 1u); let gs = pu(PK + 2u); let eps = pf(PK + 3u); let hasW = pu(PK + 4u) != 0u;
  let nG = W / gs;
  let item = lin(wg, nw);
  if (item >= M * nG) { return; }
  let row = item / nG; let w0 = (item % nG) * gs;
  let base = row * W + w0;
  var ss = 0.0; var dot = 0.0;
  for (var k = li; k < gs; k += 256u) {
    let o = base + k;
    let v = ${V(variant)};
    var wk = 1.0;
    if (hasW) { wk = $w[o_w + w0 + k]; }
    ss += v * v;
    dot += wk * $g[o_g + o] * v;
  }
  r1[li] = ss; r2[li] = dot;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) { r1[li] += r1[li + s]; r2[li] += r2[li + s]; }
    workgroupBarrier();
  }
  let r = 1.0 / sqrt(r1[0] / f32(gs) + eps);
  let cc = r * r * r * r2[0] / f32(gs);
  for (var k = li; k < gs; k += 256u) {
    let o = base + k;
    var wk = 1.0;
    if (hasW) { wk = $w[o_w + w0 + k]; }
    let v = ${V(variant)};
    let gv = r * wk * $g[o_g + o] - cc * v;
    ${
      variant === 'gated'
        ? `let zv = $z[o_z + o]; let sz = sig(zv);
    $dx[o_dx + o] = gv * zv * sz;
    $dz[o_dz + o] = gv * $x[o_x + o] * sz * (1.0 + zv * (1.0 - sz));`
        : `$dx[o_dx + o] = gv;`
    }
  }
  if (li == 0u) { $rstd[o_rstd + item] = r; }
}`,
};

/** params: M, W, gs, R (rows per block), nBlk. Roles: x, z (gated), g, rstd, part [nBlk, W] */
export const NORM_DW_PART: KernelSpec = {
  name: 'norm_dw_part',
  roles: ['x', 'z', 'g', 'rstd', 'part'],
  writes: ['part'],
  wgsl: (variant) => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let W = pu(PK + 1u); let gs = pu(PK + 2u); let R = pu(PK + 3u); let nBlk = pu(PK + 4u);
  let i = lin(wg, nw) * 256u + li;
  if (i >= nBlk * W) { return; }
  let col = i % W; let blk = i / W;
  let nG = W / gs; let gi = col / gs;
  var acc = 0.0;
  for (var row = blk * R; row < min(M, blk * R + R); row++) {
    let o = row * W + col;
    let v = ${V(variant)};
    acc += $g[o_g + o] * v * $rstd[o_rstd + row * nG + gi];
  }
  $part[o_part + i] = acc;
}`,
};
