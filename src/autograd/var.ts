/**
 * Reverse-mode automatic differentiation: a `Var` is a value (a flat typed array with a shape) that
 * remembers the op that made it, its inputs, and how to send an output gradient back to them.
 * `backward(loss)` walks the graph in reverse topological order and accumulates `grad` on every
 * Var that requires it (parameters, and everything computed from them).
 *
 * Precision follows the data: ops allocate outputs of the same array type as their first input, so
 * one code path runs float32 training and float64 gradient checks.
 *
 * Memory: intermediate gradients are released as soon as they have been propagated; ops keep only
 * what their backward needs (the fused scan recomputes its states instead of storing them).
 */
import { OpError, ShapeError } from '../errors.js';

export type Arr = Float32Array | Float64Array;
export type Shape = readonly number[];

let gradEnabled = true;

/** Run `fn` without recording the graph (evaluation, generation). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

export class Var {
  /** accumulated gradient (same length and type as `data`), null until something flows in */
  grad: Arr | null = null;

  constructor(
    public data: Arr,
    readonly shape: Shape,
    readonly requiresGrad: boolean = false,
    /** parameter name (checkpoint key) or op name, for messages */
    public name: string = '',
    readonly parents: readonly Var[] = [],
    /** receives d(loss)/d(this) and accumulates into the parents */
    readonly backwardFn: ((g: Arr) => void) | null = null,
  ) {
    if (data.length !== sizeOf(shape)) throw new ShapeError(`Var ${name || ''}: data has ${data.length} values but shape [${shape.join(', ')}] needs ${sizeOf(shape)}`);
  }

  get size(): number {
    return this.data.length;
  }

  /** the value of a one-element Var */
  item(): number {
    if (this.data.length !== 1) throw new ShapeError(`item(): Var [${this.shape.join(', ')}] has ${this.data.length} values, expected 1`);
    return this.data[0];
  }

  zeroGrad(): void {
    this.grad = null;
  }
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`invalid shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

/** A trainable leaf. */
export function param(name: string, data: Arr, shape: Shape): Var {
  return new Var(data, shape, true, name);
}

/** A leaf without gradient (inputs, masks). */
export function constant(data: Arr, shape: Shape, name = ''): Var {
  return new Var(data, shape, false, name);
}

/** zeros of the same array type as `like` */
export function zerosLike(like: Arr, n: number): Arr {
  return like instanceof Float64Array ? new Float64Array(n) : new Float32Array(n);
}

/**
 * Make the output of an op. The graph edge (parents + backward) is recorded only when gradients are
 * enabled and some parent requires a gradient; otherwise the result is a plain constant.
 */
export function result(name: string, data: Arr, shape: Shape, parents: readonly Var[], backwardFn: (g: Arr) => void): Var {
  const needs = gradEnabled && parents.some((p) => p.requiresGrad);
  return needs ? new Var(data, shape, true, name, parents, backwardFn) : new Var(data, shape, false, name);
}

/** grad(v) += g, allocating on first use */
export function accumulate(v: Var, g: ArrayLike<number>): void {
  if (!v.requiresGrad) return;
  if (v.grad === null) {
    v.grad = zerosLike(v.data, v.data.length);
  }
  const dst = v.grad;
  if (g.length !== dst.length) throw new ShapeError(`gradient of ${v.name || 'Var'} [${v.shape.join(', ')}]: got ${g.length} values, expected ${dst.length}`);
  for (let i = 0; i < dst.length; i++) dst[i] += g[i];
}

/**
 * Hand a freshly allocated gradient array to v (no copy when v has none yet). The caller must not
 * reuse `g` afterwards.
 */
export function accumulateOwned(v: Var, g: Arr): void {
  if (!v.requiresGrad) return;
  if (v.grad === null && g.constructor === v.data.constructor && g.length === v.data.length) {
    v.grad = g;
    return;
  }
  accumulate(v, g);
}

/**
 * grad(v)[m·stride + offset + j] += g[m·width + j] for every row m (j < width): a gradient that reaches only a
 * column block of v (the pieces of a split), added without a full-size temporary.
 */
export function accumulateColumns(v: Var, g: Arr, offset: number, width: number, stride: number): void {
  if (!v.requiresGrad) return;
  if (v.grad === null) v.grad = zerosLike(v.data, v.data.length);
  const dst = v.grad;
  const rows = v.data.length / stride;
  if (g.length !== rows * width) throw new ShapeError(`gradient of ${v.name || 'Var'} [${v.shape.join(', ')}]: got ${g.length} values for ${rows} rows of ${width}`);
  for (let m = 0; m < rows; m++) {
    const d = m * stride + offset;
    const o = m * width;
    for (let j = 0; j < width; j++) dst[d + j] += g[o + j];
  }
}

/**
 * Back-propagate from `loss` (a scalar unless `seed` is given: d(objective)/d(loss), same size).
 * Gradients accumulate into `.grad` of every Var that requires one; intermediate (non-leaf) gradients
 * are dropped after use to save memory, leaves keep theirs.
 */
export function backward(loss: Var, seed?: ArrayLike<number>): void {
  if (!loss.requiresGrad) throw new OpError('backward: the loss does not depend on any parameter (nothing requires a gradient)');
  if (!seed && loss.size !== 1) throw new ShapeError(`backward: the loss must be a scalar, got shape [${loss.shape.join(', ')}] (pass a seed gradient for non-scalar outputs)`);
  // iterative DFS topological order (graphs are deep: one node per op per layer per step)
  const order: Var[] = [];
  const seen = new Set<Var>();
  const stack: Array<[Var, number]> = [[loss, 0]];
  seen.add(loss);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [v, i] = top;
    if (i < v.parents.length) {
      top[1]++;
      const p = v.parents[i];
      if (p.requiresGrad && !seen.has(p)) {
        seen.add(p);
        stack.push([p, 0]);
      }
    } else {
      stack.pop();
      order.push(v);
    }
  }
  if (seed && seed.length !== loss.size) throw new ShapeError(`backward: seed has ${seed.length} values, loss has ${loss.size}`);
  if (seed && loss.grad === null && seed.constructor === loss.data.constructor) {
    // a typed seed of the loss's precision is used as it is: backward rules read their output gradient and never
    // write to it or keep it (they hand their inputs fresh arrays), so no copy is needed
    loss.grad = seed as Arr;
  } else {
    const g0 = zerosLike(loss.data, loss.size);
    if (seed) for (let i = 0; i < g0.length; i++) g0[i] = seed[i];
    else g0[0] = 1;
    accumulate(loss, g0);
  }
  for (let k = order.length - 1; k >= 0; k--) {
    const v = order[k];
    if (v.backwardFn === null) continue; // a leaf
    const g = v.grad;
    if (g !== null) v.backwardFn(g);
    v.grad = null; // intermediate: release
  }
}
