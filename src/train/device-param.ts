/**
 * A model's checkpoint tensor as a training parameter that stays on the GPU (WebGPU): its value is the model's own
 * tensor — the optimizer updates it in place (src/train/device-optim.ts) — and its gradient is that tensor's `.grad`,
 * which the autograd tape accumulates on the device. Nothing is read back while training: values are read (and
 * written, on `--resume`) only for checkpoints, asynchronously.
 *
 * A packed checkpoint tensor (experts stored together) is held by the model as slices, each its own GPU tensor with
 * its own gradient: one parameter of several parts, assembled at its offsets when read.
 */
import { WebGpuBackend } from '../backend/webgpu/backend.js';
import type { Store } from '../backend/webgpu/runtime.js';
import type { ParamEntry } from '../models/loader.js';
import type { Tensor } from '../tensor/tensor.js';
import { TrainError } from './errors.js';
import { shapeSize } from './param.js';

export interface DevicePart {
  tensor: Tensor;
  /** float offset in the checkpoint tensor */
  offset: number;
}

export class DeviceParam {
  /** tells a device parameter from a host one (`Param`) */
  readonly onDevice = true;
  readonly backend: WebGpuBackend;

  constructor(private readonly entry: ParamEntry) {
    const parts = entry.parts;
    if (parts.length === 0) throw new TrainError(`parameter "${entry.name}": the model holds no tensor of it`);
    const be = parts[0].tensor.backend;
    if (!(be instanceof WebGpuBackend)) throw new TrainError(`parameter "${entry.name}" is on the ${be.name} backend; a device parameter lives on webgpu (host backends train with TensorParam)`);
    this.backend = be;
    let covered = 0;
    for (const { tensor, offset } of parts) {
      if (tensor.backend !== be) throw new TrainError(`parameter "${entry.name}": its slices are on different backends`);
      const s = tensor.storage as Store;
      if (s.blocks) {
        throw new TrainError(
          `parameter "${entry.name}" [${tensor.shape.join(', ')}] is split into row blocks on ${be.name} (it is larger than the adapter's largest buffer binding, ${be.rt.maxBinding} bytes); training needs every parameter in one buffer`,
        );
      }
      if (tensor.dtype !== 'f32' || s.fmt !== 'f32') {
        throw new TrainError(`parameter "${entry.name}" is stored as ${s.fmt !== 'f32' ? s.fmt : tensor.dtype} on ${be.name}; training needs float32 weights (create the backend with weights: 'f32')`);
      }
      if (offset < 0 || offset + tensor.size > this.size) throw new TrainError(`parameter "${entry.name}": a slice at ${offset} of ${tensor.size} values lies outside its ${this.size}`);
      covered += tensor.size;
      tensor.requiresGrad = true;
    }
    if (covered !== this.size && !entry.packed) throw new TrainError(`parameter "${entry.name}": its slices hold ${covered} of its ${this.size} values`);
  }

  /** A parameter of one tensor (named as in the checkpoint). */
  static of(name: string, tensor: Tensor): DeviceParam {
    return new DeviceParam({ name, shape: [...tensor.shape], parts: [{ tensor, offset: 0 }] });
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
  /** the GPU tensors holding it (one, or the slices of a packed tensor) and where they lie in it */
  get parts(): readonly DevicePart[] {
    return this.entry.parts;
  }
  get tensors(): Tensor[] {
    return this.entry.parts.map((p) => p.tensor);
  }
  /** whether a gradient has reached it since the last `zeroGrad` */
  get hasGrad(): boolean {
    return this.entry.parts.some((p) => p.tensor.grad !== null);
  }

  /** its values, read back from the GPU (a packed tensor assembled from its slices) */
  async read(): Promise<Float32Array> {
    const parts = this.entry.parts;
    const values = await Promise.all(parts.map((p) => p.tensor.data()));
    if (parts.length === 1 && values[0].length === this.size) return values[0];
    const out = this.entry.packed ? Float32Array.from(this.entry.packed) : new Float32Array(this.size);
    parts.forEach((p, k) => out.set(values[k], p.offset));
    return out;
  }

  /** its gradient read back (null before any backward reached it; slices without one read as zeros) */
  async readGrad(): Promise<Float32Array | null> {
    const parts = this.entry.parts;
    if (!this.hasGrad) return null;
    const values = await Promise.all(parts.map((p) => (p.tensor.grad ? p.tensor.grad.data() : Promise.resolve(new Float32Array(p.tensor.size)))));
    if (parts.length === 1 && values[0].length === this.size) return values[0];
    const out = new Float32Array(this.size);
    parts.forEach((p, k) => out.set(values[k], p.offset));
    return out;
  }

  /** overwrite its values on the GPU (resume), after the work recorded so far */
  write(values: Float32Array): void {
    if (values.length !== this.size) throw new TrainError(`parameter "${this.name}": ${values.length} values for shape [${this.shape.join(', ')}]`);
    for (const p of this.entry.parts) this.backend.write(p.tensor, values.subarray(p.offset, p.offset + p.tensor.size));
    this.entry.packed?.set(values);
    this.markUpdated();
  }

  /** drop the gradients (disposed: their GPU memory is reused at once) */
  dropGrad(): void {
    for (const p of this.entry.parts) {
      p.tensor.grad?.dispose();
      p.tensor.grad = null;
    }
  }

  /** the values changed in place: derived weights (A = −exp(A_log)) recompute */
  markUpdated(): void {
    for (const p of this.entry.parts) p.tensor.version++;
  }
}

export function isDeviceParam(p: unknown): p is DeviceParam {
  return p instanceof DeviceParam;
}
