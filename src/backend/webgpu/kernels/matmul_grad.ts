/**
 * General matrix products for training: C[M, N] (+)= Σ_k A(m, k) · B(k, n) with A and B read through strides, so
 * that one kernel computes the products of a linear layer's backward without transposing anything in memory:
 * dX = dY · W (A = dY, B = W) and dW = dYᵀ · X (A = dY read column-wise, B = X).
 * - `MATMUL_STRIDED`: 64×64 output tiles, 16-deep K slices staged in workgroup memory, 4×4 outputs per thread
 *   (the forward MATMUL's scheme); each operand's tile is loaded along whichever of its strides is 1, so loads
 *   coalesce in both orientations.
 * - `MATMUL_STRIDED_SIMPLE`: one thread per output (CPU-emulated adapters).
 * - `COLSUM`: y[n] = Σ_m x[m, n] (a bias gradient), one thread per column.
 * params (both matmuls): M, N, K, sam, sak, sbk, sbn, accumulate, kPer (tiled: k per split-K layer; K for none)
 */
import type { KernelSpec } from '../runtime.js';

export const MATMUL_STRIDED: KernelSpec = {
  name: 'matmul_strided',
  roles: ['a', 'b', 'c'],
  writes: ['c'],
  wgsl: () => /* wgsl */ `
var<workgroup> As: array<f32, 1040>;
var<workgroup> Bs: array<f32, 1040>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let N = pu(PK + 1u); let K = pu(PK + 2u);
  let sam = pu(PK + 3u); let sak = pu(PK + 4u); let sbk = pu(PK + 5u); let sbn = pu(PK + 6u); let accum = pu(PK + 7u);
  // split-K: workgroup layer z sums k in [z·kPer, (z+1)·kPer) into its own [M, N] slice of c
  let kPer = pu(PK + 8u);
  let kb = wg.z * kPer; let ke = min(K, kb + kPer);
  let oc = o_c + wg.z * M * N;
  let tm = wg.y * 64u; let tn = wg.x * 64u;
  let tx = li % 16u; let ty = li / 16u;
  var acc: array<array<f32, 4>, 4>;
  for (var i = 0u; i < 4u; i++) { for (var j = 0u; j < 4u; j++) { acc[i][j] = 0.0; } }
  for (var k0 = kb; k0 < ke; k0 += 16u) {
    for (var q = 0u; q < 4u; q++) {
      let e = li + 256u * q;
      // A tile (64 rows × 16 k): consecutive threads walk k when A is k-contiguous, else rows
      var r = e / 16u; var kk = e % 16u;
      if (sak != 1u) { r = e % 64u; kk = e / 64u; }
      var av = 0.0;
      if (tm + r < M && k0 + kk < ke) { av = $a[o_a + (tm + r) * sam + (k0 + kk) * sak]; }
      As[kk * 65u + r] = av;
      // B tile (16 k × 64 columns): consecutive threads walk columns when B is n-contiguous, else k
      var cn = e % 64u; var kq = e / 64u;
      if (sbn != 1u) { cn = e / 16u; kq = e % 16u; }
      var bv = 0.0;
      if (tn + cn < N && k0 + kq < ke) { bv = $b[o_b + (k0 + kq) * sbk + (tn + cn) * sbn]; }
      Bs[kq * 65u + cn] = bv;
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
  for (var i = 0u; i < 4u; i++) {
    let r = tm + ty + 16u * i;
    if (r >= M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let c = tn + tx + 16u * j;
      if (c < N) {
        let o = oc + r * N + c;
        if (accum != 0u) { $c[o] = $c[o] + acc[i][j]; } else { $c[o] = acc[i][j]; }
      }
    }
  }
}`,
};

/**
 * `MATMUL_STRIDED` with 128×128 output tiles (8×8 outputs per thread, strided by 16; 8-deep K slices, 8.3 KiB of
 * workgroup memory): twice the multiply-adds per workgroup-memory read of the 64×64 kernel, for products with at
 * least 128 rows and columns. Same params and split-K layers.
 */
export const MATMUL_STRIDED_128: KernelSpec = {
  name: 'matmul_strided_128',
  roles: ['a', 'b', 'c'],
  writes: ['c'],
  wgsl: () => /* wgsl */ `
var<workgroup> As: array<f32, 1032>;
var<workgroup> Bs: array<f32, 1032>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let N = pu(PK + 1u); let K = pu(PK + 2u);
  let sam = pu(PK + 3u); let sak = pu(PK + 4u); let sbk = pu(PK + 5u); let sbn = pu(PK + 6u); let accum = pu(PK + 7u);
  let kPer = pu(PK + 8u);
  let kb = wg.z * kPer; let ke = min(K, kb + kPer);
  let oc = o_c + wg.z * M * N;
  let tm = wg.y * 128u; let tn = wg.x * 128u;
  let tx = li % 16u; let ty = li / 16u;
  var acc: array<array<f32, 8>, 8>;
  for (var i = 0u; i < 8u; i++) { for (var j = 0u; j < 8u; j++) { acc[i][j] = 0.0; } }
  for (var k0 = kb; k0 < ke; k0 += 8u) {
    for (var q = 0u; q < 4u; q++) {
      let e = li + 256u * q;
      // A tile (128 rows × 8 k), B tile (8 k × 128 columns), each loaded along its unit stride
      var r = e / 8u; var kk = e % 8u;
      if (sak != 1u) { r = e % 128u; kk = e / 128u; }
      var av = 0.0;
      if (tm + r < M && k0 + kk < ke) { av = $a[o_a + (tm + r) * sam + (k0 + kk) * sak]; }
      As[kk * 129u + r] = av;
      var cn = e % 128u; var kq = e / 128u;
      if (sbn != 1u) { cn = e / 8u; kq = e % 8u; }
      var bv = 0.0;
      if (tn + cn < N && k0 + kq < ke) { bv = $b[o_b + (k0 + kq) * sbk + (tn + cn) * sbn]; }
      Bs[kq * 129u + cn] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 8u; kk++) {
      var av: array<f32, 8>;
      var bv: array<f32, 8>;
      for (var i = 0u; i < 8u; i++) { av[i] = As[kk * 129u + ty + 16u * i]; }
      for (var j = 0u; j < 8u; j++) { bv[j] = Bs[kk * 129u + tx + 16u * j]; }
      for (var i = 0u; i < 8u; i++) {
        for (var j = 0u; j < 8u; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 8u; i++) {
    let r = tm + ty + 16u * i;
    if (r >= M) { continue; }
    for (var j = 0u; j < 8u; j++) {
      let c = tn + tx + 16u * j;
      if (c < N) {
        let o = oc + r * N + c;
        if (accum != 0u) { $c[o] = $c[o] + acc[i][j]; } else { $c[o] = acc[i][j]; }
      }
    }
  }
}`,
};

export const MATMUL_STRIDED_SIMPLE: KernelSpec = {
  name: 'matmul_strided_simple',
  roles: ['a', 'b', 'c'],
  writes: ['c'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let N = pu(PK + 1u); let K = pu(PK + 2u);
  let sam = pu(PK + 3u); let sak = pu(PK + 4u); let sbk = pu(PK + 5u); let sbn = pu(PK + 6u); let accum = pu(PK + 7u);
  let i = lin(wg, nw) * 256u + li;
  if (i >= M * N) { return; }
  let m = i / N; let n = i % N;
  var acc = 0.0;
  for (var k = 0u; k < K; k++) { acc = fma($a[o_a + m * sam + k * sak], $b[o_b + k * sbk + n * sbn], acc); }
  if (accum != 0u) { acc += $c[o_c + i]; }
  $c[o_c + i] = acc;
}`,
};

/** y[b, n] = Σ_{m ∈ block b} x[m, n], blocks of R rows (one level of a column sum). params: M, N, R, blocks */
export const COLSUM: KernelSpec = {
  name: 'colsum',
  roles: ['x', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let N = pu(PK + 1u); let R = pu(PK + 2u); let nb = pu(PK + 3u);
  let i = lin(wg, nw) * 256u + li;
  if (i >= nb * N) { return; }
  let b = i / N; let n = i % N;
  let m1 = min(M, (b + 1u) * R);
  var s = 0.0;
  for (var m = b * R; m < m1; m++) { s += $x[o_x + m * N + n]; }
  $y[o_y + i] = s;
}`,
};
