/**
 * Differentiable mixture-of-experts pieces on WebGPU (the semantics of `src/autograd/moe.ts`):
 * - route_weights: the routing weights [M, k] of the experts picked per row (attrs.experts, M·k ids) from router
 *   logits [M, E] ('softmax-topk': softmax over all experts, then picked; 'topk-softmax': softmax over the picked);
 *   backward: the softmax Jacobian per row.
 * - scatter_rows: out [count, H] with out[rows[i]] += w[i]·src[i] (MoE's combine); deterministic (a CSR list per
 *   output row, built on the host); backward dsrc[i] = w[i]·g[rows[i]], dw[i] = g[rows[i]]·src[i].
 * Kernels: `../kernels/grad_moe.ts`.
 */
import type { DiffOp } from '../../backend.js';
import { ShapeError } from '../../../errors.js';
import { ROUTE_WEIGHTS, ROUTE_WEIGHTS_GRAD, SCATTER_ROWS, SCATTER_ROWS_GRAD, SCATTER_ROWS_GRAD_SIMPLE } from '../kernels/grad_moe.js';
import type { GpuImpl } from './context.js';
import { gatherCsr } from './basic.js';
import { need } from './util.js';

export const MOE: Partial<Record<DiffOp, GpuImpl>> = {
  route_weights: (c, [l], a) => {
    const logits = need(l, 'route_weights', 'logits');
    const experts = a.experts!;
    const k = a.topK!;
    const routing = a.routing;
    if (routing !== 'softmax-topk' && routing !== 'topk-softmax') throw new ShapeError(`route_weights: unknown routing ${String(routing)} (softmax-topk or topk-softmax)`);
    const E = logits.shape[logits.shape.length - 1];
    const M = logits.size / E;
    if (!(Number.isInteger(k) && k >= 1) || experts.length !== M * k) throw new ShapeError(`route_weights: ${experts.length} expert ids for logits [${logits.shape.join(', ')}] and top-${k}`);
    const mode = routing === 'softmax-topk' ? 0 : 1;
    const w = c.out([M, k], 'route_weights');
    const st = c.out([M, 2], 'route_weights row max and sum');
    const ex = Float32Array.from(experts);
    if (M > 0) c.run(ROUTE_WEIGHTS, [c.st(logits), c.upload(ex), c.st(w), c.st(st)], [M, E, k, mode], c.threads(M));
    return {
      outputs: [w],
      backward: ([g]) => {
        if (!g || !logits.requiresGrad) return [null];
        const dx = c.out(logits.shape, 'route_weights grad');
        if (M > 0) c.run(ROUTE_WEIGHTS_GRAD, [c.st(logits), c.upload(ex), c.st(w), c.st(st), c.st(g), c.st(dx)], [M * E, E, k, mode], c.threads(M * E));
        return [dx];
      },
    };
  },

  scatter_rows: (c, [s, wIn], a) => {
    const src = need(s, 'scatter_rows', 'src'), w = need(wIn, 'scatter_rows', 'weights');
    const rows = a.rows!;
    const count = a.count!;
    const n = rows.length;
    const H = src.shape[src.shape.length - 1];
    if (src.size !== n * H || w.size !== n) throw new ShapeError(`scatter_rows: src [${src.shape.join(', ')}] and weights [${w.shape.join(', ')}] do not match ${n} rows`);
    const y = c.out([count, H], 'scatter_rows');
    if (count * H > 0) c.run(SCATTER_ROWS, [c.upload(gatherCsr(rows, count)), c.st(src), c.st(w), c.st(y)], [count * H, H, count], c.threads(count * H));
    return {
      outputs: [y],
      backward: ([g]) => {
        if (!g) return [null, null];
        const ds = src.requiresGrad ? c.out(src.shape, 'scatter_rows src grad') : null;
        const dw = w.requiresGrad ? c.out(w.shape, 'scatter_rows weights grad') : null;
        const flags = (ds ? 1 : 0) | (dw ? 2 : 0);
        if (flags && n > 0) {
          const roles = [c.upload(Float32Array.from(rows)), c.st(src), c.st(w), c.st(g), c.opt(ds), c.opt(dw)];
          if (c.be.kernels === 'simple') c.run(SCATTER_ROWS_GRAD_SIMPLE, roles, [n, H, flags], c.threads(n));
          else c.run(SCATTER_ROWS_GRAD, roles, [n, H, flags], c.grid(n));
        }
        return [ds, dw];
      },
    };
  },
};
