/**
 * Differentiable views, elementwise ops and row gathers on WebGPU: reshape, add, scale, mul, activation,
 * silu_mul, split, mean_time, embedding, take_rows. Forwards are the backend's kernels; backwards record the
 * kernels of `../kernels/grad_basic.ts` (or forward ops: the gradient of `scale` is a `scale`).
 */
import type { Tensor } from '../../../tensor/tensor.js';
import type { Elementwise, DiffOp } from '../../backend.js';
import { BINARY_MAP } from '../kernels/elementwise.js';
import { COPY_ROWS } from '../kernels/copy.js';
import { ACTIVATION_GRAD, MEAN_TIME, MEAN_TIME_GRAD, MUL_GRAD, ROWS_GRAD, SILU_MUL_GRAD } from '../kernels/grad_basic.js';
import type { GpuCtx, GpuImpl } from './context.js';
import { need } from './util.js';

/** the CSR list of a row gather y[i] = x[idx[i]] over R rows of x: off[0..R], then the i's grouped by row */
export function gatherCsr(idx: ArrayLike<number>, R: number): Float32Array {
  const n = idx.length;
  const csr = new Float32Array(R + 1 + n);
  for (let i = 0; i < n; i++) csr[idx[i] + 1]++;
  for (let r = 0; r < R; r++) csr[r + 1] += csr[r];
  const fill = csr.slice(0, R);
  for (let i = 0; i < n; i++) csr[R + 1 + fill[idx[i]]++] = i;
  return csr;
}

/** dx [R, W] of a row gather from g [n, W] */
export function gatherGrad(c: GpuCtx, idx: ArrayLike<number>, g: Tensor, xShape: readonly number[]): Tensor {
  const R = xShape[0];
  const W = g.size / idx.length;
  const dx = c.out(xShape, 'row gather gradient');
  c.run(ROWS_GRAD, [c.upload(gatherCsr(idx, R)), c.st(g), c.st(dx)], [R * W, W, R], c.threads(R * W));
  return dx;
}

const view = (c: GpuCtx, t: Tensor, shape: readonly number[]): Tensor => c.tensor(c.st(t), shape, t);

export const BASIC: Partial<Record<DiffOp, GpuImpl>> = {
  reshape: (c, [x], a) => {
    const xs = need(x, 'reshape', 'x');
    return { outputs: [view(c, xs, a.shape!)], backward: ([g]) => [g ? view(c, g, xs.shape) : null] };
  },

  add: (c, [a, b]) => ({
    outputs: [c.be.add(need(a, 'add', 'a'), need(b, 'add', 'b'))],
    backward: ([g]) => [g, g],
  }),

  scale: (c, [x], a) => ({
    outputs: [c.be.scale(need(x, 'scale', 'x'), a.scalar!)],
    backward: ([g]) => [g ? c.be.scale(g, a.scalar!) : null],
  }),

  mul: (c, [a, b]) => {
    const [x, y] = [need(a, 'mul', 'a'), need(b, 'mul', 'b')];
    const out = c.out(x.shape, 'mul');
    c.run(BINARY_MAP, [c.st(x), c.st(y), c.st(out)], [x.size], c.threads(x.size), 'mul');
    return {
      outputs: [out],
      backward: ([g]) => {
        if (!g) return [null, null];
        const da = x.requiresGrad ? c.out(x.shape, 'mul grad') : null;
        const db = y.requiresGrad ? c.out(y.shape, 'mul grad') : null;
        const flags = (da ? 1 : 0) | (db ? 2 : 0);
        c.run(MUL_GRAD, [c.st(x), c.st(y), c.st(g), c.opt(da), c.opt(db)], [x.size, flags], c.threads(x.size));
        return [da, db];
      },
    };
  },

  activation: (c, [x], a) => {
    const xs = need(x, 'activation', 'x');
    const kind = a.kind as Elementwise;
    return {
      outputs: [c.be.activation(xs, kind)],
      backward: ([g]) => {
        if (!g) return [null];
        const dx = c.out(xs.shape, 'activation grad');
        c.run(ACTIVATION_GRAD, [c.st(xs), c.st(g), c.st(dx)], [xs.size], c.threads(xs.size), kind);
        return [dx];
      },
    };
  },

  silu_mul: (c, [a, b]) => {
    const [x, y] = [need(a, 'silu_mul', 'a'), need(b, 'silu_mul', 'b')];
    return {
      outputs: [c.be.siluMul(x, y)],
      backward: ([g]) => {
        if (!g) return [null, null];
        const da = c.out(x.shape, 'silu_mul grad'), db = c.out(y.shape, 'silu_mul grad');
        c.run(SILU_MUL_GRAD, [c.st(x), c.st(y), c.st(g), c.st(da), c.st(db)], [x.size], c.threads(x.size));
        return [da, db];
      },
    };
  },

  split: (c, [x], a) => {
    const xs = need(x, 'split', 'x');
    const sizes = a.sizes!;
    const W = xs.shape[xs.shape.length - 1];
    const M = xs.size / W;
    return {
      outputs: c.be.split(xs, sizes),
      backward: (grads) => {
        const dx = grads.some((g) => !g) ? c.be.zeros(xs.shape) : c.out(xs.shape, 'split grad');
        let off = 0;
        grads.forEach((g, k) => {
          const s = sizes[k];
          if (g) c.run(COPY_ROWS, [c.st(g), c.st(dx)], [M, s, s, 0, W, off], c.threads(M * s));
          off += s;
        });
        return [dx];
      },
    };
  },

  mean_time: (c, [x]) => {
    const xs = need(x, 'mean_time', 'x');
    const [b, L, H] = xs.shape;
    const y = c.out([b, H], 'mean_time');
    c.run(MEAN_TIME, [c.st(xs), c.st(y)], [b * H, L, H], c.threads(b * H));
    return {
      outputs: [y],
      backward: ([g]) => {
        if (!g) return [null];
        const dx = c.out(xs.shape, 'mean_time grad');
        c.run(MEAN_TIME_GRAD, [c.st(g), c.st(dx)], [xs.size, L, H], c.threads(xs.size));
        return [dx];
      },
    };
  },

  embedding: (c, [t], a) => {
    const table = need(t, 'embedding', 'table');
    const ids = a.ids!;
    return {
      outputs: [view(c, c.be.embedding(table, ids), a.shape!)],
      backward: ([g]) => [g ? gatherGrad(c, ids, g, table.shape) : null],
    };
  },

  take_rows: (c, [x], a) => {
    const xs = need(x, 'take_rows', 'x');
    const rows = a.rows!;
    return {
      outputs: [c.be.takeRows(xs, Array.from(rows))],
      backward: ([g]) => [g ? gatherGrad(c, rows, g, xs.shape) : null],
    };
  },
};
