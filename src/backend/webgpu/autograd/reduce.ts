/**
 * Deterministic column sums for the backward kernels: partial sums (per block of rows, per split-K layer, per
 * batch group) added in a fixed order by levels of `ROW_SUM` — no float atomics, the same bits on every run.
 */
import type { Tensor } from '../../../tensor/tensor.js';
import type { Store } from '../runtime.js';
import { ROW_SUM } from '../kernels/matmul_grad.js';
import type { GpuCtx } from './context.js';

/** rows one ROW_SUM thread adds (each level divides the rows by this) */
const ROWS_PER_SUM = 32;

/** where `sumRows` writes: n columns starting at column `col` of the summed rows, into `store` */
export interface ColumnRange {
  store: Store;
  col: number;
  n: number;
}

/**
 * Column sums of x [M, W] (row-major, in a store) in a fixed order: blocks of rows summed into fewer rows until
 * at most ROWS_PER_SUM are left, then each requested column range summed into its output.
 */
export function sumRows(c: GpuCtx, x: Store, M: number, W: number, outs: readonly ColumnRange[]): void {
  const tmp: Store[] = [];
  while (M > ROWS_PER_SUM) {
    const rows = Math.ceil(M / ROWS_PER_SUM);
    const y = c.scratch(rows * W, 'row sums');
    c.run(ROW_SUM, [x, y], [M, W, ROWS_PER_SUM, W, 0], c.threads(rows * W));
    tmp.push(y);
    x = y;
    M = rows;
  }
  for (const o of outs) c.run(ROW_SUM, [x, o.store], [M, o.n, Math.max(1, M), W, o.col], c.threads(o.n));
  c.done(...tmp);
}

/** y[N] = Σ_m x[m, n] of a tensor x [M, N] */
export function colsum(c: GpuCtx, x: Tensor, M: number, N: number): Tensor {
  const y = c.out([N], 'column sums');
  sumRows(c, c.st(x), M, N, [{ store: c.st(y), col: 0, n: N }]);
  return y;
}
