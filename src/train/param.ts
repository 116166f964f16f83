/**
 * What the training utilities need from a trainable parameter. `src/autograd`'s `Var` satisfies it
 * structurally (no import needed either way): a flat value array, a gradient of the same length
 * (null until something flows into it), a shape and a checkpoint name (the HF tensor name, e.g.
 * `backbone.layers.0.mixer.A_log`, which is also what the no-weight-decay rule looks at).
 *
 * Float64 arrays are accepted as well as float32 so the same code runs float64 gradient checks.
 */
import type { ParamEntry } from '../models/loader.js';
import { Tensor } from '../tensor/tensor.js';
import { TrainError } from './errors.js';

export type FloatArray = Float32Array | Float64Array;

export interface Param {
  name: string;
  data: FloatArray;
  grad: FloatArray | null;
  shape: readonly number[];
  /** called after the values were changed in place (optimizer step, resume) */
  markUpdated?(): void;
}

/** Number of elements a shape describes (1 for a scalar `[]`). */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * A model's checkpoint tensor as a training parameter (`Param`) over its backend tensors (host storage: cpu,
 * wasm). `data` and `grad` are the tensors' own arrays, so the optimizer updates the model in place; a packed
 * checkpoint tensor held as slices (experts stored together) is one parameter whose gradient is assembled from
 * the slices' once per step.
 */
export class TensorParam implements Param {
  private gradCache: Float32Array | null = null;

  constructor(private readonly entry: ParamEntry) {
    const [first] = entry.parts;
    if (!first) throw new TrainError(`parameter "${entry.name}": the model holds no tensor of it`);
    for (const { tensor } of entry.parts) {
      if (tensor.dtype !== 'f32' || !(safeRead(tensor) instanceof Float32Array)) {
        throw new TrainError(`parameter "${entry.name}" is stored as ${tensor.dtype} on the ${tensor.backend.name} backend; training needs float32 weights on a CPU backend (load with dtype f32 on cpu or wasm)`);
      }
      tensor.requiresGrad = true;
    }
  }

  get name(): string {
    return this.entry.name;
  }
  get shape(): readonly number[] {
    return this.entry.shape;
  }
  get size(): number {
    return shapeSize(this.entry.shape);
  }
  /** the tensors holding this parameter (one, or the slices of a packed tensor) */
  get tensors(): Tensor[] {
    return this.entry.parts.map((p) => p.tensor);
  }

  private get single(): Tensor | null {
    const [p] = this.entry.parts;
    return !this.entry.packed && this.entry.parts.length === 1 && p.offset === 0 ? p.tensor : null;
  }

  get data(): Float32Array {
    const t = this.single;
    return t ? (t.backend.readSync(t) as Float32Array) : this.entry.packed!;
  }
  /** hold the values in `v` from now on (same length, values already there: data-parallel training shares memory) */
  set data(v: Float32Array) {
    if (v.length !== this.size) throw new TrainError(`parameter "${this.name}": ${v.length} values for shape [${this.shape.join(', ')}]`);
    if (this.entry.packed) this.entry.packed = v;
    for (const p of this.entry.parts) p.tensor.storage = v.subarray(p.offset, p.offset + p.tensor.size);
  }

  get grad(): Float32Array | null {
    const t = this.single;
    if (t) return t.grad ? (t.backend.readSync(t.grad) as Float32Array) : null;
    const parts = this.entry.parts;
    if (parts.every((p) => p.tensor.grad === null)) return null;
    const cached = this.gradCache;
    if (cached && parts.every((p) => p.tensor.grad !== null && (p.tensor.grad.storage as Float32Array).buffer === cached.buffer)) return cached;
    // assemble, then make the slices' gradients views of the assembled array (so in-place scaling reaches them)
    const g = new Float32Array(this.size);
    for (const p of parts) if (p.tensor.grad) g.set(p.tensor.backend.readSync(p.tensor.grad), p.offset);
    for (const p of parts) p.tensor.grad = new Tensor(p.tensor.backend, g.subarray(p.offset, p.offset + p.tensor.size), p.tensor.shape);
    this.gradCache = g;
    return g;
  }
  set grad(v: Float32Array | null) {
    this.gradCache = null;
    for (const p of this.entry.parts) {
      p.tensor.grad = v ? new Tensor(p.tensor.backend, v.subarray(p.offset, p.offset + p.tensor.size), p.tensor.shape) : null;
    }
  }

  /** the values changed in place: derived weights (A = −exp(A_log)) recompute */
  markUpdated(): void {
    for (const p of this.entry.parts) p.tensor.version++;
  }
}

function safeRead(t: Tensor): unknown {
  try {
    return t.backend.readSync(t);
  } catch {
    return null;
  }
}
