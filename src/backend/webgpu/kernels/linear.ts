/**
 * y[M, N] = x[M, K] · wᵀ (+ bias), w [N, K] row-major (both operands K-contiguous).
 * - `MATVEC` (M ≤ 8: decode): a workgroup computes 4 output columns; 64 threads stride over K per
 *   column (coalesced rows of w), then a tree reduction. Bandwidth-bound: w is read once.
 * - `MATMUL` (prefill): 64×64 output tiles, 16-deep K slices staged in workgroup memory, 4×4 outputs per
 *   thread strided by 16 (conflict-free workgroup reads, coalesced writes).
 * A weight split into row blocks is multiplied block by block: `n0` is the block's first output column,
 * `nb` its rows, `N` the row stride of y.
 * params: M, K, N, n0, nb, hasBias
 */
import type { KernelSpec } from '../runtime.js';

/**
 * `wv(i)`: element i of the weight matrix, for variant '' (float32) or 'b' (bf16, two to a u32: the role is
 * bound as array<u32>). Shared with the row gather of embedding tables.
 */
export function weightReader(variant: string, role = 'w'): string {
  return variant === 'b'
    ? /* wgsl */ `fn wv(i: u32) -> f32 { let u = $${role}[o_${role} + (i >> 1u)]; return bitcast<f32>(select(u << 16u, u & 0xffff0000u, (i & 1u) == 1u)); }`
    : /* wgsl */ `fn wv(i: u32) -> f32 { return $${role}[o_${role} + i]; }`;
}
export const bf16Types = (role: string) => (variant: string): Record<string, string> => (variant === 'b' ? { [role]: 'u32' } : {});

export const MATVEC: KernelSpec = {
  name: 'matvec',
  roles: ['x', 'w', 'bias', 'y'],
  writes: ['y'],
  // variant: rows of x rounded up to 1, 2, 4 or 8
  wgsl: (mm) => /* wgsl */ `
const MM: u32 = ${Number(mm)}u;
var<workgroup> red: array<f32, ${256 * Number(mm)}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let K = pu(PK + 1u); let N = pu(PK + 2u); let n0 = pu(PK + 3u); let nb = pu(PK + 4u); let hasB = pu(PK + 5u);
  let g = li / 64u; let lane = li % 64u;
  let j = lin(wg, nw) * 4u + g;
  var acc: array<f32, MM>;
  if (j < nb) {
    let wr = o_w + j * K;
    for (var k = lane; k < K; k += 64u) {
      let wv = $w[wr + k];
      for (var m = 0u; m < MM; m++) {
        if (m < M) { acc[m] += wv * $x[o_x + m * K + k]; }
      }
    }
  }
  for (var m = 0u; m < MM; m++) { red[m * 256u + li] = acc[m]; }
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var m = 0u; m < MM; m++) { red[m * 256u + li] += red[m * 256u + li + s]; }
    }
    workgroupBarrier();
  }
  if (lane == 0u && j < nb) {
    var b = 0.0;
    if (hasB != 0u) { b = $bias[o_bias + j]; }
    for (var m = 0u; m < M; m++) { $y[o_y + m * N + n0 + j] = red[m * 256u + li] + b; }
  }
}`,
};

/**
 * The matvec on devices with subgroups: one output column per subgroup (lanes stride over K, then
 * subgroupAdd), no workgroup barriers at all. Subgroups are assumed to be runs of consecutive invocation
 * indices (true of every driver seen); the host launches enough workgroups for the largest subgroup size.
 */
export const MATVEC_SG: KernelSpec = {
  name: 'matvec_sg',
  roles: ['x', 'w', 'bias', 'y'],
  writes: ['y'],
  wgsl: (mm) => /* wgsl */ `
const MM: u32 = ${Number(mm)}u;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_size) sgs: u32, @builtin(subgroup_invocation_id) lane: u32) {
  init_offsets();
  let M = pu(PK); let K = pu(PK + 1u); let N = pu(PK + 2u); let n0 = pu(PK + 3u); let nb = pu(PK + 4u); let hasB = pu(PK + 5u);
  let j = lin(wg, nw) * (64u / sgs) + li / sgs;
  var acc: array<f32, MM>;
  if (j < nb) {
    let wr = o_w + j * K;
    for (var k = lane; k < K; k += sgs) {
      let wv = $w[wr + k];
      for (var m = 0u; m < MM; m++) {
        if (m < M) { acc[m] = fma(wv, $x[o_x + m * K + k], acc[m]); }
      }
    }
  }
  var b = 0.0;
  if (hasB != 0u && j < nb) { b = $bias[o_bias + j]; }
  for (var m = 0u; m < MM; m++) {
    let s = subgroupAdd(acc[m]);
    if (lane == 0u && j < nb && m < M) { $y[o_y + m * N + n0 + j] = s + b; }
  }
}`,
};

/**
 * One thread per output, no workgroup memory: for CPU-emulated adapters (SwiftShader, lavapipe), where
 * barriers cost far more than they save.
 */
export const MATMUL_SIMPLE: KernelSpec = {
  name: 'matmul_simple',
  roles: ['x', 'w', 'bias', 'y'],
  writes: ['y'],
  types: bf16Types('w'),
  wgsl: (v) => /* wgsl */ `
${weightReader(v)}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let K = pu(PK + 1u); let N = pu(PK + 2u); let n0 = pu(PK + 3u); let nb = pu(PK + 4u); let hasB = pu(PK + 5u);
  let i = lin(wg, nw) * 256u + li;
  if (i >= M * nb) { return; }
  let m = i / nb; let j = i % nb;
  var acc = 0.0;
  if (hasB != 0u) { acc = $bias[o_bias + j]; }
  let xr = o_x + m * K; let wr = j * K;
  for (var k = 0u; k < K; k++) { acc = fma($x[xr + k], wv(wr + k), acc); }
  $y[o_y + m * N + n0 + j] = acc;
}`,
};

export const MATMUL: KernelSpec = {
  name: 'matmul',
  roles: ['x', 'w', 'bias', 'y'],
  writes: ['y'],
  types: bf16Types('w'),
  wgsl: (v) => /* wgsl */ `
${weightReader(v)}
var<workgroup> As: array<f32, 1040>;
var<workgroup> Bs: array<f32, 1040>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let K = pu(PK + 1u); let N = pu(PK + 2u); let n0 = pu(PK + 3u); let nb = pu(PK + 4u); let hasB = pu(PK + 5u);
  let tm = wg.y * 64u; let tn = wg.x * 64u;
  let tx = li % 16u; let ty = li / 16u;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < K; k0 += 16u) {
    for (var q = 0u; q < 4u; q++) {
      let e = li + 256u * q;
      let r = e / 16u; let kk = e % 16u;
      let gk = k0 + kk;
      var a = 0.0;
      if (tm + r < M && gk < K) { a = $x[o_x + (tm + r) * K + gk]; }
      As[kk * 65u + r] = a;
      var b = 0.0;
      if (tn + r < nb && gk < K) { b = wv((tn + r) * K + gk); }
      Bs[kk * 65u + r] = b;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { av[i] = As[kk * 65u + ty + 16u * i]; }
      for (var j = 0u; j < 4u; j++) { bv[j] = Bs[kk * 65u + tx + 16u * j]; }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  for (var j = 0u; j < 4u; j++) {
    let c = tn + tx + 16u * j;
    if (c >= nb) { continue; }
    var b = 0.0;
    if (hasB != 0u) { b = $bias[o_bias + c]; }
    for (var i = 0u; i < 4u; i++) {
      let r = tm + ty + 16u * i;
      if (r < M) { $y[o_y + r * N + n0 + c] = acc[i][j] + b; }
    }
  }
}`,
};

/**
 * The RMS scales of the decode matvecs' norm prologue: rsv[m · nG + g] = 1/√(mean over group g of row m of
 * (x · silu(z) when gated)² + eps), reduced by the 256 invocations of the workgroup in `red`.
 */
export const NORM_SCALES = /* wgsl */ `
    for (var q = 0u; q < M * nG; q++) {
      let m = q / nG; let g0 = (q % nG) * gs;
      var s = 0.0;
      for (var k = li; k < gs; k += 256u) {
        var v = $x[o_x + m * K + g0 + k];
        if (gated) { v *= silu($z[o_z + m * K + g0 + k]); }
        s += v * v;
      }
      red[li] = s;
      workgroupBarrier();
      for (var st = 128u; st > 0u; st >>= 1u) {
        if (li < st) { red[li] += red[li + st]; }
        workgroupBarrier();
      }
      if (li == 0u) { rsv[q] = inverseSqrt(red[0] / f32(gs) + eps); }
      workgroupBarrier();
    }`;

/**
 * The decode matvec with fusions (M ≤ 8 rows), as `MATVEC` (4 columns per workgroup of 256):
 * - prologue (flags & 2): the input is RMS-normalised on the fly, x̂ = w_n · x / √(mean(x²) + eps), per
 *   group of `gs` channels; with flags & 4 it is the gated norm, x̂ = w_n · n(x · silu(z)) (Mamba-2);
 *   the per-(row, group) scales are reduced in workgroup memory first;
 * - epilogue (flags & 8): y2 = y + res (the residual add), written besides y.
 * flags: 1 bias, 2 norm, 4 gate, 8 residual. params: M, K, N, n0, nb, flags, gs, eps
 */
export const MATVEC_FUSED: KernelSpec = {
  name: 'matvec_fused',
  roles: ['x', 'w', 'bias', 'nw', 'z', 'res', 'y', 'y2'],
  writes: ['y', 'y2'],
  wgsl: (mm) => /* wgsl */ `
const MM: u32 = ${Number(mm)}u;
var<workgroup> red: array<f32, ${256 * Number(mm)}>;
var<workgroup> rsv: array<f32, 64>;
fn xin(m: u32, k: u32, K: u32, gated: bool) -> f32 {
  var v = $x[o_x + m * K + k];
  if (gated) { v *= silu($z[o_z + m * K + k]); }
  return v;
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let K = pu(PK + 1u); let N = pu(PK + 2u); let n0 = pu(PK + 3u); let nb = pu(PK + 4u); let flags = pu(PK + 5u);
  let gs = pu(PK + 6u); let eps = pf(PK + 7u);
  let hasB = (flags & 1u) != 0u; let norm = (flags & 2u) != 0u; let gated = (flags & 4u) != 0u; let hasR = (flags & 8u) != 0u;
  let nG = K / gs;
  if (norm) { ${NORM_SCALES} }
  let g = li / 64u; let lane = li % 64u;
  let j = lin(wg, nw) * 4u + g;
  var acc: array<f32, MM>;
  if (j < nb) {
    let wr = o_w + j * K;
    for (var k = lane; k < K; k += 64u) {
      let wv = $w[wr + k];
      var sc = 1.0;
      if (norm) { sc = $nw[o_nw + k]; }
      for (var m = 0u; m < MM; m++) {
        if (m < M) {
          var v = $x[o_x + m * K + k];
          if (norm) {
            if (gated) { v *= silu($z[o_z + m * K + k]); }
            v *= sc * rsv[m * nG + k / gs];
          }
          acc[m] += wv * v;
        }
      }
    }
  }
  workgroupBarrier();
  for (var m = 0u; m < MM; m++) { red[m * 256u + li] = acc[m]; }
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var m = 0u; m < MM; m++) { red[m * 256u + li] += red[m * 256u + li + s]; }
    }
    workgroupBarrier();
  }
  if (lane == 0u && j < nb) {
    var b = 0.0;
    if (hasB) { b = $bias[o_bias + j]; }
    for (var m = 0u; m < M; m++) {
      let o = m * N + n0 + j;
      let v = red[m * 256u + li] + b;
      $y[o_y + o] = v;
      if (hasR) { $y2[o_y2 + o] = v + $res[o_res + o]; }
    }
  }
}`,
};
