/**
 * Differentiable `linear` on WebGPU: y = x·Wᵀ + b over the last dim. Backward: dX = dY·W, dW = dYᵀ·X (both
 * through the strided matmul, no transposes in memory), db = Σ_rows dY.
 */
import type { Tensor } from '../../../tensor/tensor.js';
import type { DiffOp } from '../../backend.js';
import { MATMUL_STRIDED, MATMUL_STRIDED_128, MATMUL_STRIDED_SIMPLE } from '../kernels/matmul_grad.js';
import type { GpuCtx, GpuImpl } from './context.js';
import { need } from './util.js';
import { colsum, sumRows } from './reduce.js';

/** operand of `matmul`: a store read as A(m, k) = s[m·rowStride + k·colStride] */
export interface Operand {
  t: Tensor;
  rowStride: number;
  colStride: number;
}

/**
 * c[M, N] (+)= A[M, K] · B[K, N], A and B read through strides. Few output tiles over a long reduction (a weight
 * gradient summed over b·L rows: a [128, 64] dW over 32k rows is 2 tiles) split K into layers of partial products,
 * summed in a fixed order after (deterministic, no atomics).
 */
export function matmul(c: GpuCtx, a: Operand, b: Operand, out: Tensor, M: number, N: number, K: number, accumulate = false): void {
  const roles = [c.st(a.t), c.st(b.t), c.st(out)];
  if (c.be.kernels === 'simple') {
    c.run(MATMUL_STRIDED_SIMPLE, roles, [M, N, K, a.rowStride, a.colStride, b.rowStride, b.colStride, accumulate ? 1 : 0], c.threads(M * N));
    return;
  }
  // 128×128 tiles where the product has the rows and columns for them (and enough of them to fill the GPU)
  const big = M >= 128 && N >= 128 && Math.ceil(M / 128) * Math.ceil(N / 128) >= 66;
  const T = big ? 128 : 64;
  const spec = big ? MATMUL_STRIDED_128 : MATMUL_STRIDED;
  const gx = Math.ceil(N / T), gy = Math.ceil(M / T);
  if (gx > c.rt.maxWorkgroupsPerDim || gy > c.rt.maxWorkgroupsPerDim) throw new Error(`webgpu matmul: [${M}, ${K}] × [${K}, ${N}] needs more workgroups than the adapter allows`);
  const tiles = gx * gy;
  let S = 1;
  if (!accumulate && tiles < 264 && K >= 1024) S = Math.min(Math.ceil(K / 512), Math.ceil(528 / tiles), 64, Math.floor(c.rt.maxBinding / 4 / (M * N)));
  const kPer = S > 1 ? Math.ceil(Math.ceil(K / S) / 16) * 16 : K;
  S = Math.ceil(K / kPer);
  if (S <= 1) {
    c.run(spec, roles, [M, N, K, a.rowStride, a.colStride, b.rowStride, b.colStride, accumulate ? 1 : 0, K], [gx, gy, 1]);
    return;
  }
  const part = c.scratch(S * M * N, 'split-K partial products');
  c.run(spec, [roles[0], roles[1], part], [M, N, K, a.rowStride, a.colStride, b.rowStride, b.colStride, 0, kPer], [gx, gy, S]);
  sumRows(c, part, S, M * N, [{ store: c.st(out), col: 0, n: M * N }]);
  c.done(part);
}

export const LINEAR: Partial<Record<DiffOp, GpuImpl>> = {
  linear: (c, [xIn, wIn, bias]) => {
    const x = need(xIn, 'linear', 'x'), w = need(wIn, 'linear', 'w');
    const K = x.shape[x.shape.length - 1];
    const N = w.shape[0];
    const M = x.size / K;
    const x2 = c.tensor(c.st(x), [M, K], x);
    let y: Tensor;
    const ws = c.st(w);
    if (!bias && c.be.kernels === 'tiled' && M >= 128 && N >= 128 && !ws.blocks && ws.fmt === 'f32') {
      // a training forward is a prefill-sized product: the strided matmul's large tiles (B(k, n) = W[n, k])
      y = c.out([M, N], 'linear output');
      matmul(c, { t: x2, rowStride: K, colStride: 1 }, { t: w, rowStride: 1, colStride: K }, y, M, N, K);
    } else y = c.be.linear(x2, w, bias);
    return {
      outputs: [c.tensor(c.st(y), [...x.shape.slice(0, -1), N], y)],
      backward: ([g]) => {
        if (!g) return [null, null, null];
        let dx: Tensor | null = null, dw: Tensor | null = null, db: Tensor | null = null;
        if (x.requiresGrad) {
          dx = c.out(x.shape, 'linear dX');
          matmul(c, { t: g, rowStride: N, colStride: 1 }, { t: w, rowStride: K, colStride: 1 }, dx, M, K, N);
        }
        if (w.requiresGrad) {
          dw = c.out(w.shape, 'linear dW');
          matmul(c, { t: g, rowStride: 1, colStride: N }, { t: x, rowStride: K, colStride: 1 }, dw, N, K, M);
        }
        if (bias?.requiresGrad) db = colsum(c, g, M, N);
        return [dx, dw, db];
      },
    };
  },
};
