/**
 * Differentiable `cross_entropy` on WebGPU (reference semantics: `softmaxCrossEntropy` of src/autograd/ops.ts):
 * loss = mean over the scored rows (target ≠ ignoreIndex) of −log softmax(logits)[target], a scalar tensor.
 * Nothing is read back: the op returns [loss, correct], `correct` being a scalar tensor with the number of scored
 * rows whose argmax (the first one on ties) is the target, and no `info` (the op layer counts the scored rows on
 * the host, from the targets). Kernels in ../kernels/grad_loss.ts: per-row log-sum-exp (kept for the backward),
 * then a deterministic reduction to the loss. Backward: dlogits = (softmax − onehot)·g/count on scored rows, 0 on
 * the others; a gradient reaching the `correct` output is ignored (it is a count, piecewise constant).
 */
import type { DiffOp } from '../../backend.js';
import { OpError } from '../../../errors.js';
import { CE_GRAD, CE_LOSS, CE_ROWS } from '../kernels/grad_loss.js';
import type { GpuImpl } from './context.js';
import { need } from './util.js';

export const LOSS: Partial<Record<DiffOp, GpuImpl>> = {
  cross_entropy: (c, [logits], a) => {
    const x = need(logits, 'cross_entropy', 'logits');
    const targets = a.targets!;
    const ignore = a.ignoreIndex ?? -100;
    const V = x.shape[x.shape.length - 1];
    const M = x.size / V;
    if (targets.length !== M) throw new OpError(`cross_entropy (webgpu, differentiable): ${targets.length} targets for ${M} rows of logits [${x.shape.join(', ')}]`);
    if (V > 1 << 24) throw new OpError(`cross_entropy (webgpu, differentiable): ${V} classes; at most ${1 << 24} (targets travel as float32)`);
    // the targets as floats, −1 on rows not scored
    const tg = new Float32Array(M);
    let count = 0;
    for (let m = 0; m < M; m++) {
      const t = targets[m];
      if (t === ignore) {
        tg[m] = -1;
        continue;
      }
      if (!(Number.isInteger(t) && t >= 0 && t < V)) throw new OpError(`cross_entropy: target ${t} at row ${m} is out of range [0, ${V}) (use ${ignore} to skip a row)`);
      tg[m] = t;
      count++;
    }
    const inv = c.f2u(count > 0 ? 1 / count : 0);
    const simple = c.be.kernels === 'simple';
    const variant = simple ? 's' : '';
    const lse = c.out([M], 'cross_entropy log-sum-exp');
    const aux = c.scratch(2 * M, 'cross_entropy nll and hits');
    const loss = c.out([], 'cross_entropy loss');
    const correct = c.out([], 'cross_entropy correct');
    c.run(CE_ROWS, [c.st(x), c.upload(tg), c.st(lse), aux], [M, V], simple ? c.grid(Math.ceil(M / 64)) : c.grid(M), variant);
    c.run(CE_LOSS, [aux, c.st(loss), c.st(correct)], [M, inv], [1, 1, 1], variant);
    c.done(aux);
    return {
      outputs: [loss, correct],
      backward: ([g]) => {
        if (!g || count === 0) return [null];
        const dx = c.out(x.shape, 'cross_entropy grad');
        c.run(CE_GRAD, [c.st(x), c.upload(tg), c.st(lse), c.st(g), c.st(dx)], [M * V, V, inv], c.threads(M * V));
        return [dx];
      },
    };
  },
};
