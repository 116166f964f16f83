/**
 * Differentiable RMSNorm (`rms_norm`: inputs [x, w | null], attrs { eps }) and gated RMSNorm (`rms_norm_gated`:
 * inputs [x, z, w], attrs { eps, groupSize }: w · rmsnorm(x·silu(z)) per group of groupSize channels) on WebGPU,
 * over the last dim of x. Forwards are the backend's kernels; backwards record `../kernels/grad_norm.ts`: dx (dz)
 * per (row, group) with r = 1/rms recomputed, then dw as per-block partial sums over rows reduced by `colsum`
 * (deterministic: fixed summation order, no atomics).
 */
import type { Tensor } from '../../../tensor/tensor.js';
import type { DiffOp } from '../../backend.js';
import { OpError } from '../../../errors.js';
import { NORM_DW_PART, NORM_GRAD } from '../kernels/grad_norm.js';
import type { GpuCtx, GpuImpl } from './context.js';
import { colsum } from './reduce.js';
import { need } from './util.js';

/** rows per block of the weight gradient's partial sums */
const DW_ROWS = 64;

/**
 * the gradients of y = w · rmsnorm(v) per group of gs channels (v = x, or x·silu(z) when z is given), x [M, W]
 * viewed through its own shape; g has x's shape
 */
function normBackward(c: GpuCtx, x: Tensor, z: Tensor | null, w: Tensor | null, g: Tensor, eps: number, gs: number): [Tensor, Tensor | null, Tensor | null] {
  const W = x.shape[x.shape.length - 1];
  const M = x.size / W;
  const nG = W / gs;
  const variant = z ? 'gated' : 'plain';
  const dx = c.out(x.shape, `${variant} rms_norm dx`);
  const dz = z ? c.out(z.shape, 'gated rms_norm dz') : null;
  const rstd = c.scratch(M * nG, 'rms_norm 1/rms');
  c.run(NORM_GRAD, [c.st(x), c.opt(z), c.opt(w), c.st(g), c.st(dx), c.opt(dz), rstd], [M, W, gs, c.f2u(eps), w ? 1 : 0], c.grid(M * nG), variant);
  let dw: Tensor | null = null;
  if (w?.requiresGrad) {
    const nBlk = Math.ceil(M / DW_ROWS);
    const part = nBlk === 1 ? c.out([W], 'rms_norm dw') : c.out([nBlk, W], 'rms_norm dw partials');
    c.run(NORM_DW_PART, [c.st(x), c.opt(z), c.st(g), rstd, c.st(part)], [M, W, gs, DW_ROWS, nBlk], c.threads(nBlk * W), variant);
    dw = nBlk === 1 ? part : colsum(c, part, nBlk, W);
  }
  c.done(rstd);
  return [dx, dz, dw];
}

export const NORM: Partial<Record<DiffOp, GpuImpl>> = {
  rms_norm: (c, [xIn, w], a) => {
    const x = need(xIn, 'rms_norm', 'x');
    const H = x.shape[x.shape.length - 1];
    const eps = a.eps!;
    const y = c.be.rmsNorm(c.tensor(c.st(x), [x.size / H, H], x), w, eps);
    return {
      outputs: [c.tensor(c.st(y), x.shape, y)],
      backward: ([g]) => {
        if (!g) return [null, null];
        const [dx, , dw] = normBackward(c, x, null, w, g, eps, H);
        return [dx, dw];
      },
    };
  },

  rms_norm_gated: (c, [xIn, zIn, wIn], a) => {
    const op = 'rms_norm_gated';
    const x = need(xIn, op, 'x'), z = need(zIn, op, 'z'), w = need(wIn, op, 'w');
    const W = x.shape[x.shape.length - 1];
    const eps = a.eps!, gs = a.groupSize!;
    if (!(Number.isInteger(gs) && gs >= 1 && W % gs === 0)) throw new OpError(`${op} (webgpu, differentiable): groupSize ${gs} must divide the channel dim ${W}`);
    const M = x.size / W;
    const y = c.be.rmsNormGated(c.tensor(c.st(x), [M, W], x), c.tensor(c.st(z), [M, W], z), w, eps, gs);
    return {
      outputs: [c.tensor(c.st(y), x.shape, y)],
      backward: ([g]) => (g ? normBackward(c, x, z, w, g, eps, gs) : [null, null, null]),
    };
  },
};
