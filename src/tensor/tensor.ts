/**
 * Tensor: a shape, a dtype and backend-owned storage. Model code never touches storage directly;
 * it calls the ops in `src/tensor/ops.ts`, which validate shapes and dispatch to `tensor.backend`.
 *
 * Storage is opaque on purpose: the CPU backend keeps a Float32Array, the coming WebGPU backend keeps
 * a GPUBuffer. Reading values out is therefore async (`await t.data()`); `dataSync()` exists for
 * backends that can answer synchronously (CPU) and throws on the others.
 */
import type { Backend } from '../backend/backend.js';
import type { DType } from './dtype.js';
import { TENSOR, joinLifetime, trackTensor, type Lifetime } from './scope.js';

/** A recorded op (see `src/autograd/tape.ts`): its inputs and how output gradients map to input gradients. */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly (Tensor | null)[];
  /** number of outputs (split has several) */
  readonly outputs: number;
  /** output gradients (null where nothing flowed) → input gradients (null where not needed) */
  backward(grads: readonly (Tensor | null)[]): (Tensor | null)[];
  /** the op's outputs (`backward(…, { free: true })` disposes them once the op's backward has run) */
  results?: Tensor[];
  /** free what the op kept for its backward (called by `backward(…, { free: true })` once the op's backward has run) */
  release?(): void;
}

export type Shape = readonly number[];

export class Tensor {
  private disposed = false;
  /** a trainable leaf (a parameter) or a result computed from one while the tape records (`src/autograd/tape.ts`) */
  requiresGrad = false;
  /** accumulated d(loss)/d(this) of a trainable leaf after `backward`, on the same backend; null until something flows in */
  grad: Tensor | null = null;
  /** the recorded op that produced this tensor (output `index` of it); null for leaves and untracked results */
  gradFn: { node: GradNode; index: number } | null = null;
  /**
   * bumped when the values change in place (an optimizer step), so caches of values derived from this tensor
   * (e.g. A = −exp(A_log)) know to recompute
   */
  version = 0;
  /** shared by the tensors on one storage (see scope.ts): the storage is released when the last one is disposed */
  readonly lifetime: Lifetime;
  constructor(
    readonly backend: Backend,
    /**
     * backend-specific storage (Float32Array on CPU). Replaced only by training code that moves parameters into
     * shared memory (data-parallel workers); never by ops.
     */
    public storage: unknown,
    readonly shape: Shape,
    readonly dtype: DType = 'f32',
    /** the tensor whose storage this one shares (a reshape, a backend's view into part of it): they share a lifetime */
    viewOf?: Tensor,
  ) {
    this.lifetime = joinLifetime(this, viewOf);
    trackTensor(this);
  }

  /** number of elements */
  get size(): number {
    return shapeSize(this.shape);
  }

  /** Copy the values out (async: a GPU backend must map its buffer). */
  data(): Promise<Float32Array> {
    this.checkAlive();
    return this.backend.read(this);
  }

  /** Synchronous read; only backends with host-resident storage support it. */
  dataSync(): Float32Array {
    this.checkAlive();
    return this.backend.readSync(this);
  }

  /**
   * Release backend memory now (GPU; wasm-resident storage); a no-op beyond bookkeeping on CPU. Tensors sharing
   * the storage (reshapes, views) keep it: it is released with the last of them. The tensor must not be used
   * afterwards. Scopes (`scope`, `scopeAsync` in scope.ts) call this for the tensors created inside them.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const l = this.lifetime;
    if (--l.refs === 0) l.root.backend.dispose(l.root);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  private checkAlive(): void {
    if (this.disposed) throw new Error(`tensor [${this.shape.join(', ')}] was used after dispose()`);
  }
}

(Tensor.prototype as unknown as Record<symbol, boolean>)[TENSOR] = true;

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/** A tensor copied to the host: what the public API hands back (logits, hidden states). */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}
