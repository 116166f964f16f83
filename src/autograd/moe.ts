/**
 * Differentiable mixture-of-experts pieces: the routing weights of the chosen experts as a function of the router
 * logits (so the router learns), and the weighted scatter-add that combines expert outputs. Which experts a row
 * goes to is decided by the caller (a discrete choice: no gradient).
 */
import { ShapeError } from '../errors.js';
import * as ag from './ops.js';
import { accumulateOwned, result, type Var, zerosLike } from './var.js';

/**
 * Mixture-of-experts routing weights [M, k] from router logits [M, E] and the experts chosen per row
 * (`experts`, M·k, decided by the caller): 'softmax-topk' = softmax over all E, then picked (Jamba);
 * 'topk-softmax' = softmax over the k picked logits (Granite).
 */
export function routeWeights(logits: Var, experts: Int32Array, k: number, routing: string): Var {
  const E = logits.shape[logits.shape.length - 1];
  const M = logits.size / E;
  const gather = (x: Var): Var => {
    const rows: number[] = [];
    for (let m = 0; m < M; m++) for (let j = 0; j < k; j++) rows.push(m * E + experts[m * k + j]);
    return ag.reshape(ag.takeRows(ag.reshape(x, [M * E, 1]), rows), [M, k]);
  };
  return routing === 'softmax-topk' ? gather(softmaxRows(logits, M, E)) : softmaxRows(gather(logits), M, k);
}

/** softmax over the last dim of x [M, W] (one node: dx = y ⊙ (g − Σ g·y)) */
function softmaxRows(x: Var, M: number, W: number): Var {
  const xd = x.data;
  const y = zerosLike(xd, M * W);
  for (let m = 0; m < M; m++) {
    const o = m * W;
    let mx = -Infinity;
    for (let j = 0; j < W; j++) mx = Math.max(mx, xd[o + j]);
    let sum = 0;
    for (let j = 0; j < W; j++) sum += (y[o + j] = Math.exp(xd[o + j] - mx));
    for (let j = 0; j < W; j++) y[o + j] /= sum;
  }
  return result('softmax', y, [M, W], [x], (g) => {
    const gx = zerosLike(xd, M * W);
    for (let m = 0; m < M; m++) {
      const o = m * W;
      let dot = 0;
      for (let j = 0; j < W; j++) dot += g[o + j] * y[o + j];
      for (let j = 0; j < W; j++) gx[o + j] = y[o + j] * (g[o + j] - dot);
    }
    accumulateOwned(x, gx);
  });
}

/** out [count, H]: out[rows[i]] += w[i] · src[i] (out-of-place scatter-add; MoE's combine) */
export function scatterRows(src: Var, w: Var, rows: Int32Array, count: number): Var {
  const H = src.shape[src.shape.length - 1];
  const n = rows.length;
  if (src.size !== n * H || w.size !== n) throw new ShapeError(`scatter_rows: src ${src.shape} and weights ${w.shape} do not match ${n} rows`);
  const sd = src.data;
  const wd = w.data;
  const out = zerosLike(sd, count * H);
  for (let i = 0; i < n; i++) {
    const so = i * H;
    const oo = rows[i] * H;
    for (let h = 0; h < H; h++) out[oo + h] += wd[i] * sd[so + h];
  }
  return result('scatter_rows', out, [count, H], [src, w], (g) => {
    if (src.requiresGrad) {
      const gs = zerosLike(sd, n * H);
      for (let i = 0; i < n; i++) for (let h = 0; h < H; h++) gs[i * H + h] = wd[i] * g[rows[i] * H + h];
      accumulateOwned(src, gs);
    }
    if (w.requiresGrad) {
      const gw = zerosLike(wd, n);
      for (let i = 0; i < n; i++) {
        let acc = 0;
        for (let h = 0; h < H; h++) acc += g[rows[i] * H + h] * sd[i * H + h];
        gw[i] = acc;
      }
      accumulateOwned(w, gw);
    }
  });
}

