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
import type { GradNode, Tensor } from '../tensor/tensor.js';
import { keep } from '../tensor/scope.js';
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

/** options of `backward` */
export interface BackwardOptions {
  /**
   * free the graph on the way: each recorded op's outputs are disposed as soon as its backward has run (every op
   * that read them has had its backward by then), except the `keep` ones — so device memory (WebGPU) comes back
   * during the backward rather than when the collector finds the graph. (What an op's forward kept besides its
   * outputs is its backend's to free: WebGPU does once the op's backward has run.) The graph cannot be
   * back-propagated again (its ops refuse, naming themselves).
   */
  free?: boolean;
  /** outputs still wanted after a `free` backward (the loss, a count of correct predictions) */
  keep?: readonly (Tensor | null | undefined)[];
}

/**
 * Back-propagate from `loss`: d(objective)/d(loss) is `seed` — a number for every element (1 by default, the loss
 * being a scalar), or one value per element (the objective Σ seedᵢ·lossᵢ). Gradients accumulate into `.grad` of
 * every trainable leaf reached; intermediate gradients are dropped — disposed — as soon as they have been passed on,
 * so on a device backend a backward holds its working set only (with `free`, the forward's activations go too).
 *
 * A leaf's gradient is its own tensor: the first one that reaches it is copied (backward rules may hand one tensor
 * to several inputs); later ones are added into a new tensor and the previous `.grad` is disposed (it must not be
 * held across a backward). Backward rules return fresh tensors, views of them, or the output gradients they were
 * given — never tensors the forward still owns.
 */
export function backward(loss: Tensor, seed: number | Float32Array = 1, opts: BackwardOptions = {}): void {
  if (!loss.requiresGrad) {
    throw new OpError('backward: the loss does not depend on any trainable tensor (compute it inside withGrad(), from parameters made trainable)');
  }
  if (typeof seed !== 'number' && seed.length !== loss.size) throw new OpError(`backward: seed has ${seed.length} values, the loss [${loss.shape.join(', ')}] has ${loss.size}`);
  const g0 = loss.backend.fromHost(typeof seed === 'number' ? new Float32Array(loss.size).fill(seed) : Float32Array.from(seed), loss.shape);
  const root = loss.gradFn;
  if (!root) {
    accumulateLeaf(loss, g0);
    g0.dispose();
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
  // the gradients in flight, each with the number of places holding it (a rule may hand one tensor to several
  // inputs, or pass its output gradient on as it is): disposed when the last one lets go
  const holds = new Map<Tensor, number>();
  const hold = (t: Tensor): void => void holds.set(t, (holds.get(t) ?? 0) + 1);
  const letGo = (t: Tensor): void => {
    const n = (holds.get(t) ?? 1) - 1;
    if (n > 0) holds.set(t, n);
    else {
      holds.delete(t);
      t.dispose();
    }
  };
  const pending = new Map<Node, (Tensor | null)[]>();
  const slot = (node: Node): (Tensor | null)[] => {
    let s = pending.get(node);
    if (!s) pending.set(node, (s = new Array<Tensor | null>(node.outputs).fill(null)));
    return s;
  };
  slot(root.node)[root.index] = g0;
  hold(g0);
  const kept = new Set((opts.keep ?? []).filter((t): t is Tensor => !!t));
  const saved = depth;
  depth = 0; // backward rules call ops; they are not recorded
  try {
    for (let k = order.length - 1; k >= 0; k--) {
      const node = order[k];
      const grads = pending.get(node);
      pending.delete(node);
      if (!grads || grads.every((g) => g === null)) {
        if (opts.free) release(node, kept);
        continue;
      }
      const gin = node.backward(grads);
      if (opts.free) release(node, kept); // its outputs were read by the backwards of their consumers, run before this one
      for (const g of gin) if (g) hold(g);
      for (const g of grads) if (g) letGo(g); // passed on
      node.inputs.forEach((t, i) => {
        const g = gin[i];
        if (!g) return;
        if (t && t.requiresGrad) {
          if (t.gradFn) {
            const s = slot(t.gradFn.node);
            const j = t.gradFn.index;
            const prev = s[j];
            if (prev) {
              const sum = t.backend.add(prev, g);
              hold(sum);
              letGo(prev);
              s[j] = sum;
            } else {
              hold(g);
              s[j] = g;
            }
          } else accumulateLeaf(t, g);
        }
        letGo(g);
      });
    }
  } finally {
    depth = saved;
    for (const t of [...holds.keys()]) t.dispose(); // after an error: what was in flight
  }
}

/** dispose a recorded op's outputs (but the kept ones) after its backward, and refuse further backwards through it */
function release(node: GradNode, kept: ReadonlySet<Tensor>): void {
  const n = node as { -readonly [K in keyof GradNode]: GradNode[K] };
  for (const t of n.results ?? []) if (!kept.has(t)) t.dispose();
  n.results = [];
  n.release?.(); // what the op kept for its backward (WebGPU: activations, chunk checkpoints)
  n.release = undefined;
  const op = n.op;
  n.backward = () => {
    throw new OpError(`backward: the graph through ${op} was freed by an earlier backward({ free: true }); record the forward again`);
  };
}

/**
 * leaf.grad += g (a leaf owns its gradient: the first one is copied, since backward rules may share tensors). The
 * gradient outlives the backward — no scope open around it (a training step run inside one) disposes it.
 */
function accumulateLeaf(leaf: Tensor, g: Tensor): void {
  const prev = leaf.grad;
  leaf.grad = keep(prev ? leaf.backend.add(prev, g) : leaf.backend.scale(g, 1));
  prev?.dispose();
}
