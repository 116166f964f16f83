/**
 * Reverse-mode automatic differentiation on backend tensors: the tape of the op layer.
 *
 * While the tape records (`withGrad`), every front-end op of `src/tensor/ops.ts` whose inputs include a tensor
 * that requires a gradient (a trainable parameter, or something computed from one) asks its backend to run the
 * op differentiably (`Backend.differentiable`): the backend keeps what the op's backward needs and hands back a
 * `GradNode`. `backward(loss)` walks those nodes in reverse topological order and accumulates `grad` on every
 * trainable leaf. The model code is the inference code: nothing model-specific lives here.
 *
 * Outside `withGrad` nothing is recorded, whatever `requiresGrad` says: inference on a model that is being
 * trained (evaluation, sampling) costs what inference costs. The switch is global, like torch's grad mode; a
 * `withGrad` around an async function records ops that other async work issues meanwhile too — training does
 * not interleave other work with its steps.
 */
import type { Tensor } from '../tensor/tensor.js';
import { OpError } from '../errors.js';

export { type GradNode } from '../tensor/tensor.js';

let depth = 0;

/** Run `fn` with the tape recording (sync or async; restored when it settles). */
export function withGrad<T>(fn: () => T): T {
  depth++;
  let result: T;
  try {
    result = fn();
  } catch (e) {
    depth--;
    throw e;
  }
  if (result instanceof Promise) return result.finally(() => depth--) as T;
  depth--;
  return result;
}

/** the tape records and one of `ts` requires a gradient */
export function needsGrad(...ts: readonly (Tensor | null | undefined)[]): boolean {
  return depth > 0 && ts.some((t) => t?.requiresGrad === true);
}

export function isRecording(): boolean {
  return depth > 0;
}

/**
 * Back-propagate from `loss`: d(objective)/d(loss) is `seed` — a number for every element (1 by default, the loss
 * being a scalar), or one value per element (the objective Σ seedᵢ·lossᵢ). Gradients accumulate into `.grad` of
 * every trainable leaf reached; intermediate gradients are dropped as soon as they have been passed on.
 */
export function backward(loss: Tensor, seed: number | Float32Array = 1): void {
  if (!loss.requiresGrad) {
    throw new OpError('backward: the loss does not depend on any trainable tensor (compute it inside withGrad(), from parameters made trainable)');
  }
  if (typeof seed !== 'number' && seed.length !== loss.size) throw new OpError(`backward: seed has ${seed.length} values, the loss [${loss.shape.join(', ')}] has ${loss.size}`);
  const g0 = loss.backend.fromHost(typeof seed === 'number' ? new Float32Array(loss.size).fill(seed) : Float32Array.from(seed), loss.shape);
  const root = loss.gradFn;
  if (!root) {
    accumulateLeaf(loss, g0);
    return;
  }
  // reverse topological order of the nodes reachable from the loss (iterative: graphs are deep)
  type Node = typeof root.node;
  const order: Node[] = [];
  const seen = new Set<Node>([root.node]);
  const stack: Array<[Node, number]> = [[root.node, 0]];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [node, i] = top;
    if (i < node.inputs.length) {
      top[1]++;
      const parent = node.inputs[i]?.gradFn?.node;
      if (parent && !seen.has(parent)) {
        seen.add(parent);
        stack.push([parent, 0]);
      }
    } else {
      stack.pop();
      order.push(node);
    }
  }
  const pending = new Map<Node, (Tensor | null)[]>();
  const slot = (node: Node): (Tensor | null)[] => {
    let s = pending.get(node);
    if (!s) pending.set(node, (s = new Array<Tensor | null>(node.outputs).fill(null)));
    return s;
  };
  slot(root.node)[root.index] = g0;
  const saved = depth;
  depth = 0; // backward rules call ops; they are not recorded
  try {
    for (let k = order.length - 1; k >= 0; k--) {
      const node = order[k];
      const grads = pending.get(node);
      pending.delete(node);
      if (!grads || grads.every((g) => g === null)) continue;
      const gin = node.backward(grads);
      node.inputs.forEach((t, i) => {
        const g = gin[i];
        if (!t || !g || !t.requiresGrad) return;
        if (t.gradFn) {
          const s = slot(t.gradFn.node);
          const j = t.gradFn.index;
          s[j] = s[j] ? t.backend.add(s[j]!, g) : g;
        } else accumulateLeaf(t, g);
      });
    }
  } finally {
    depth = saved;
  }
}

/** leaf.grad += g (a leaf owns its gradient: the first one is copied, since backward rules may share tensors) */
function accumulateLeaf(leaf: Tensor, g: Tensor): void {
  leaf.grad = leaf.grad ? leaf.backend.add(leaf.grad, g) : leaf.backend.scale(g, 1);
}
