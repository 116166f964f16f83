/** Fetch checkpoint tensors by name, check their shapes against what config.json implies, hand them to the backend. */
import type { Backend } from '../backend/backend.js';
import type { TensorSource } from '../io/weights.js';
import type { Tensor } from '../tensor/tensor.js';
import { ModelError } from './errors.js';

export class WeightLoader {
  constructor(
    private readonly src: TensorSource,
    readonly backend: Backend,
    /** the config values the shapes come from, for messages, e.g. "hidden_size=64, state_size=16" */
    private readonly context: string,
  ) {}

  has(name: string): boolean {
    return this.src.has(name);
  }

  /** the first of `names` the checkpoint holds (naming variants), else the first */
  pick(...names: string[]): string {
    return names.find((n) => this.src.has(n)) ?? names[0];
  }

  /** float32 host data of a tensor whose shape must be `shape` */
  host(name: string, shape: number[]): Float32Array {
    (this.src as { shapeFor?: (n: string, s: number[]) => void }).shapeFor?.(name, shape); // generated weights take the expected shape
    if (!this.src.has(name)) throw new ModelError(`checkpoint is missing tensor "${name}" (expected shape [${shape.join(', ')}] from config.json)`);
    const e = this.src.entry(name);
    if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i])) {
      throw new ModelError(`tensor "${name}" in ${e.file} has shape [${e.shape.join(', ')}], but config.json implies [${shape.join(', ')}] (${this.context})`);
    }
    return this.src.float32(name);
  }

  get(name: string, shape: number[], viewAs?: number[]): Tensor {
    return this.backend.fromHost(this.host(name, shape), viewAs ?? shape);
  }

  /**
   * a weight matrix [out, in] used by `linear` (or an embedding table): the backend picks its storage format,
   * unless `float32` keeps it exact
   */
  matrix(name: string, shape: [number, number], opts?: { float32?: boolean }): Tensor {
    return this.backend.fromHost(this.host(name, shape), shape, { matrix: true, float32: opts?.float32 });
  }

  /** a weight matrix from data already in hand (e.g. one expert of a packed tensor) */
  matrixFrom(data: Float32Array, shape: [number, number]): Tensor {
    return this.backend.fromHost(data, shape, { matrix: true });
  }

  /** a tensor that only some configurations have (biases) */
  maybe(present: boolean, name: string, shape: number[]): Tensor | null {
    return present ? this.get(name, shape) : null;
  }

  /** A = −exp(A_log), computed once at load */
  negExp(name: string, shape: number[]): Tensor {
    const a = this.host(name, shape);
    const out = new Float32Array(a.length);
    for (let i = 0; i < a.length; i++) out[i] = -Math.exp(a[i]);
    return this.backend.fromHost(out, shape);
  }
}
