/**
 * Differentiable `linear` on WebGPU: y = x·Wᵀ + b over the last dim. Backward: dX = dY·W, dW = dYᵀ·X (both
 * through the strided matmul, no transposes in memory), db = Σ_rows dY.
 */
import type { Tensor } from '../../../tensor/tensor.js';
import type { DiffOp } from '../../backend.js';
import { COLSUM, MATMUL_STRIDED, MATMUL_STRIDED_SIMPLE } from '../kernels/matmul_grad.js';
import type { GpuCtx, GpuImpl } from './context.js';
import { need } from './util.js';

/** operand of `matmul`: a store read as A(m, k) = s[m·rowStride + k·colStride] */
export interface Operand {
  t: Tensor;
  rowStride: number;
  colStride: number;
}

/** c[M, N] (+)= A[M, K] · B[K, N], A and B read through strides */
export function matmul(c: GpuCtx, a: Operand, b: Operand, out: Tensor, M: number, N: number, K: number, accumulate = false): void {
  const params = [M, N, K, a.rowStride, a.colStride, b.rowStride, b.colStride, accumulate ? 1 : 0];
  const roles = [c.st(a.t), c.st(b.t), c.st(out)];
  if (c.be.kernels === 'simple') {
    c.run(MATMUL_STRIDED_SIMPLE, roles, params, c.threads(M * N));
    return;
  }
  const gx = Math.ceil(N / 64), gy = Math.ceil(M / 64);
  if (gx > c.rt.maxWorkgroupsPerDim || gy > c.rt.maxWorkgroupsPerDim) throw new Error(`webgpu matmul: [${M}, ${K}] × [${K}, ${N}] needs more workgroups than the adapter allows`);
  c.run(MATMUL_STRIDED, roles, params, [gx, gy, 1]);
}

/** y[N] = Σ_m x[m, n] */
export function colsum(c: GpuCtx, x: Tensor, M: number, N: number): Tensor {
  const y = c.out([N], 'column sums');
  c.run(COLSUM, [c.st(x), c.st(y)], [M, N], c.threads(N));
  return y;
}

export const LINEAR: Partial<Record<DiffOp, GpuImpl>> = {
  linear: (c, [xIn, wIn, bias]) => {
    const x = need(xIn, 'linear', 'x'), w = need(wIn, 'linear', 'w');
    const K = x.shape[x.shape.length - 1];
    const N = w.shape[0];
    const M = x.size / K;
    const x2 = c.tensor(c.st(x), [M, K], x);
    const y = c.be.linear(x2, w, bias);
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
