/**
 * Sparse mixture of experts (Shazeer et al. 2017; Mixtral-style top-k routing), as Jamba and
 * Granite 4.0-H define it:
 *   logits = router(x)                               (tokens, E)
 *   'softmax-topk' (Jamba):  p = softmax(logits); keep the k largest p, no renormalisation
 *   'topk-softmax' (Granite): keep the k largest logits; p = softmax over those k
 *   out = Σ_{e in top-k} p_e · expert_e(x)
 * Routing is decided on the host (it is data-dependent control flow); expert MLPs run on the backend over
 * the rows routed to them. In training the routing weights are a recorded op of the router logits
 * (`ops.routeWeights`), so the router learns, as in HF.
 */
import { needsGrad } from '../autograd/tape.js';
import * as ops from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { GatedMLP } from './mlp.js';
import { sizeOf, type Mixer } from './mixer.js';

export interface MoEOptions {
  topK: number;
  routing: 'softmax-topk' | 'topk-softmax';
}

export class MoE implements Mixer {
  readonly timeTensors = [] as const;

  constructor(
    private readonly router: Tensor, // [E, H]
    private readonly experts: GatedMLP[],
    private readonly opts: MoEOptions,
  ) {}

  get parameterCount(): number {
    return sizeOf(this.router) + this.experts.reduce((a, e) => a + e.parameterCount, 0);
  }

  initState(): Record<string, Tensor> {
    return {};
  }

  async forward(h: Tensor): Promise<Tensor> {
    const H = h.shape[h.shape.length - 1];
    const M = h.size / H;
    const x = ops.reshape(h, [M, H]);
    const E = this.experts.length;
    const logitsT = ops.linear(x, this.router); // (M, E)
    const logits = await logitsT.data();
    const rows: number[][] = Array.from({ length: E }, () => []);
    const weights: number[][] = Array.from({ length: E }, () => []);
    const slots: number[][] = Array.from({ length: E }, () => []);
    const k = Math.min(this.opts.topK, E);
    const chosen = new Int32Array(M * k);
    for (let m = 0; m < M; m++) {
      const l = logits.subarray(m * E, (m + 1) * E);
      const order = [...l.keys()].sort((a, b) => l[b] - l[a] || a - b).slice(0, k);
      let probs: number[];
      if (this.opts.routing === 'softmax-topk') {
        const max = Math.max(...l);
        let sum = 0;
        for (const v of l) sum += Math.exp(v - max);
        probs = order.map((e) => Math.exp(l[e] - max) / sum);
      } else {
        const max = l[order[0]];
        const ex = order.map((e) => Math.exp(l[e] - max));
        const sum = ex.reduce((a, b) => a + b, 0);
        probs = ex.map((v) => v / sum);
      }
      order.forEach((e, j) => {
        rows[e].push(m);
        weights[e].push(probs[j]);
        slots[e].push(m * k + j);
        chosen[m * k + j] = e;
      });
    }
    if (needsGrad(logitsT, x)) {
      // training: the same routing, with weights that carry the router's gradient
      const w = ops.reshape(ops.routeWeights(logitsT, chosen, k, this.opts.routing), [M * k, 1]);
      let acc: Tensor | null = null;
      for (let e = 0; e < E; e++) {
        if (rows[e].length === 0) continue;
        const y = this.experts[e].apply(ops.takeRows(x, rows[e]));
        const part = ops.scatterRows(y, ops.takeRows(w, slots[e]), Int32Array.from(rows[e]), M);
        acc = acc ? ops.add(acc, part) : part;
      }
      return ops.reshape(acc!, h.shape);
    }
    const out = h.backend.zeros([M, H]);
    for (let e = 0; e < E; e++) {
      if (rows[e].length === 0) continue;
      const y = this.experts[e].apply(ops.takeRows(x, rows[e]));
      ops.scatterAddRows(out, Int32Array.from(rows[e]), y, Float32Array.from(weights[e]));
    }
    return ops.reshape(out, h.shape);
  }
}

/** Several sublayers summed on the same input (Granite: MoE + shared MLP). */
export class SumOf implements Mixer {
  readonly timeTensors = [] as const;
  constructor(private readonly parts: Mixer[]) {}
  get parameterCount(): number {
    return this.parts.reduce((a, p) => a + p.parameterCount, 0);
  }
  initState(): Record<string, Tensor> {
    return {};
  }
  async forward(h: Tensor): Promise<Tensor> {
    let acc: Tensor | null = null;
    for (const p of this.parts) {
      const y = await p.forward(h, { pastLen: [], state: null });
      acc = acc ? ops.add(acc, y) : y;
    }
    return acc as Tensor;
  }
}
