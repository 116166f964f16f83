/**
 * y[M, N] = x[M, K] · wᵀ (+ bias), w [N, K] row-major (both operands K-contiguous).
 * - decode (M ≤ 8): `MATVEC_V` in matvec.ts (vector or scalar weight loads, fused norm/residual/conv window),
 *   `MATVEC_SGV` in matvec_sg.ts (the same fusions, rows owned by subgroups: decodeKernels 'v2'),
 *   and here `MATVEC_SG`, the barrier-free subgroup matvec that CPU-emulated adapters prefer;
 * - `MATMUL` (prefill): 64×64 output tiles, 16-deep K slices staged in workgroup memory, 4×4 outputs per
 *   thread strided by 16 (conflict-free workgroup reads, coalesced writes).
 * A weight split into row blocks is multiplied block by block: `n0` is the block's first output column,
 * `nb` its rows, `N` the row stride of y.
 * params: M, K, N, n0, nb, hasBias
 */
import type { KernelSpec } from '../runtime.js';
import { halfReader } from './half.js';
import { q8Scalar } from './q8.js';

/**
 * `wv(i)`: element i of the weight matrix, for variant '' (float32), 'b' (bf16, two to a u32) or 'q' (q8
 * superblocks, q8.ts); the packed formats bind the role as array<u32>. Shared with the row gather of embedding tables.
 */
export function weightReader(variant: string, role = 'w'): string {
  if (variant === 'q') return q8Scalar(role);
  return halfReader(variant === 'b' ? 'b' : '', role, 'wv');
}
/** the role's element type for `weightReader`'s variant ('b', 'q': u32 words) */
export const packedTypes = (role: string) => (variant: string): Record<string, string> => (variant === 'b' || variant === 'q' ? { [role]: 'u32' } : {});
/** the weight format suffix of a variant key ending in 'b' (bf16) or 'q' (q8); '' for float32 */
export const packedSuffix = (v: string): '' | 'b' | 'q' => (v.endsWith('b') ? 'b' : v.endsWith('q') ? 'q' : '');

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
  types: packedTypes('w'),
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
  types: packedTypes('w'),
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
