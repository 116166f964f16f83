/**
 * General matrix products for training: C[M, N] (+)= Σ_k A(m, k) · B(k, n) with A and B read through strides, so
 * that one kernel computes the products of a linear layer's backward without transposing anything in memory:
 * dX = dY · W (A = dY, B = W) and dW = dYᵀ · X (A = dY read column-wise, B = X).
 * - `MATMUL_STRIDED` / `MATMUL_STRIDED_128`: 64×64 / 128×128 output tiles from one template (`stridedMatmul`), K
 *   slices staged in workgroup memory; each operand's tile is loaded along whichever of its strides is 1, so loads
 *   coalesce in both orientations.
 * - `MATMUL_STRIDED_SIMPLE`: one thread per output (CPU-emulated adapters).
 * - `ROW_SUM`: one level of a column sum (bias gradients, split-K layers, every op's partial sums).
 * params (both matmuls): M, N, K, sam, sak, sbk, sbn, accumulate, kPer (tiled: k per split-K layer; K for none)
 */
import type { KernelSpec } from '../runtime.js';
import { tiledGemm } from './gemm.js';

/**
 * The tiled strided matmul with T×T output tiles (the shared template of gemm.ts), K in slices of KS; each operand's
 * tile is loaded along its unit stride; workgroup layer z of a split-K grid sums k in [z·kPer, (z+1)·kPer) into its
 * own [M, N] slice of c.
 */
function stridedMatmul(name: string, T: number, KS: number): KernelSpec {
  return {
    name,
    roles: ['a', 'b', 'c'],
    writes: ['c'],
    wgsl: () =>
      tiledGemm({
        T,
        KS,
        head: `let M = pu(PK); let NC = pu(PK + 1u); let K = pu(PK + 2u);
  let sam = pu(PK + 3u); let sak = pu(PK + 4u); let sbk = pu(PK + 5u); let sbn = pu(PK + 6u); let accum = pu(PK + 7u);
  let kPer = pu(PK + 8u);
  let kb = wg.z * kPer; let ke = min(K, kb + kPer);
  let oc = o_c + wg.z * M * NC;`,
        load: `// A tile (${T} rows × ${KS} k): consecutive threads walk k when A is k-contiguous, else rows
      var r = e / ${KS}u; var kk = e % ${KS}u;
      if (sak != 1u) { r = e % ${T}u; kk = e / ${T}u; }
      var av = 0.0;
      if (tm + r < M && k0 + kk < ke) { av = $a[o_a + (tm + r) * sam + (k0 + kk) * sak]; }
      As[kk * TP + r] = av;
      // B tile (${KS} k × ${T} columns): consecutive threads walk columns when B is n-contiguous, else k
      var cn = e % ${T}u; var kq = e / ${T}u;
      if (sbn != 1u) { cn = e / ${KS}u; kq = e % ${KS}u; }
      var bv = 0.0;
      if (tn + cn < NC && k0 + kq < ke) { bv = $b[o_b + (k0 + kq) * sbk + (tn + cn) * sbn]; }
      Bs[kq * TP + cn] = bv;`,
        store: `let o = oc + r * NC + c;
        if (accum != 0u) { $c[o] = $c[o] + v; } else { $c[o] = v; }`,
      }),
  };
}

/** 64×64 tiles, 16-deep K slices (the forward MATMUL's scheme; 8.3 KiB of workgroup memory) */
export const MATMUL_STRIDED = stridedMatmul('matmul_strided', 64, 16);
/**
 * 128×128 tiles, 8×8 outputs per thread, 8-deep K slices (8.3 KiB): twice the multiply-adds per workgroup-memory
 * read of the 64×64 kernel, for products with at least 128 rows and columns.
 */
export const MATMUL_STRIDED_128 = stridedMatmul('matmul_strided_128', 128, 8);

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

/**
 * y[rb, n] = Σ_{m in rows rb·R … rb·R + R − 1} x[m · stride + off + n]: one level of a deterministic column sum
 * (one thread per output; `sumRows` in autograd/reduce.ts repeats it until one row is left).
 */
export const ROW_SUM: KernelSpec = {
  name: 'row_sum',
  roles: ['x', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let N = pu(PK + 1u); let R = pu(PK + 2u); let stride = pu(PK + 3u); let off = pu(PK + 4u);
  let i = lin(wg, nw) * 256u + li;
  let nRB = (M + R - 1u) / R;
  if (i >= nRB * N) { return; }
  let n = i % N; let rb = i / N;
  let m1 = min(M, rb * R + R);
  var s = 0.0;
  for (var m = rb * R; m < m1; m++) { s += $x[o_x + m * stride + off + n]; }
  $y[o_y + i] = s;
}`,
};
