/** Fetch checkpoint tensors by name, check their shapes against what config.json implies, hand them to the backend. */
import type { Backend } from '../backend/backend.js';
import type { TensorSource } from '../io/weights.js';
import type { Tensor } from '../tensor/tensor.js';
import { Derived, Lazy } from '../nn/derived.js';
import * as ops from '../tensor/ops.js';
import { ModelError } from './errors.js';

/**
 * A checkpoint tensor as the model holds it: one tensor (perhaps viewed in another shape, e.g. conv1d.weight
 * [C, 1, K] as [C, K]) or several slices of one packed tensor (experts stored together), each at its offset.
 * What training updates and what a checkpoint writes.
 */
export interface ParamEntry {
  name: string;
  /** the checkpoint's shape */
  shape: number[];
  parts: Array<{ tensor: Tensor; offset: number }>;
  /** the whole packed host array the parts view (packed tensors only) */
  packed?: Float32Array;
}

export class WeightLoader {
  /** every checkpoint tensor the model holds, by checkpoint name, in load order */
  readonly params = new Map<string, ParamEntry>();

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
    return this.register(name, shape, this.backend.fromHost(this.host(name, shape), viewAs ?? shape));
  }

  private register(name: string, shape: number[], tensor: Tensor): Tensor {
    if (!this.params.has(name)) this.params.set(name, { name, shape, parts: [{ tensor, offset: 0 }] });
    return tensor;
  }

  /**
   * a weight matrix [out, in] used by `linear` (or an embedding table): the backend picks its storage format,
   * unless `float32` keeps it exact
   */
  matrix(name: string, shape: [number, number], opts?: { float32?: boolean }): Tensor {
    const stored = () => this.src.stored?.(name);
    return this.register(name, shape, this.backend.fromHost(this.host(name, shape), shape, { matrix: true, float32: opts?.float32, stored }));
  }

  /**
   * A packed checkpoint tensor (experts, or gate and up projections, stored together) as host data, whose
   * slices `slice` then hands to the backend.
   */
  packed(name: string, shape: number[]): Float32Array {
    const data = this.host(name, shape);
    if (!this.params.has(name)) this.params.set(name, { name, shape, parts: [], packed: data });
    return data;
  }

  /** the weight matrix at float offset `offset` of the packed tensor `name` (see `packed`) */
  slice(name: string, offset: number, shape: [number, number]): Tensor {
    const e = this.params.get(name);
    if (!e?.packed) throw new ModelError(`slice: "${name}" was not loaded with packed()`);
    const t = this.backend.fromHost(e.packed.subarray(offset, offset + shape[0] * shape[1]), shape, { matrix: true });
    e.parts.push({ tensor: t, offset });
    return t;
  }

  /** a tensor that only some configurations have (biases) */
  maybe(present: boolean, name: string, shape: number[]): Tensor | null {
    return present ? this.get(name, shape) : null;
  }

  /** A = −exp(A_log) of the parameter `name` (A_log): computed once at load, again only when A_log changes */
  negExp(name: string, shape: number[]): Derived {
    const a = this.host(name, shape);
    const stored = this.src.negExp?.(name); // GGUF stores A itself
    const out = stored ? Float32Array.from(stored) : new Float32Array(a.length);
    if (!stored) for (let i = 0; i < a.length; i++) out[i] = -Math.exp(a[i]);
    const host = Float32Array.from(a);
    const source = new Lazy(() => this.backend.fromHost(host, shape));
    if (!this.params.has(name)) this.params.set(name, { name, shape, parts: [{ get tensor() { return source.get(); }, offset: 0 }] });
    return new Derived(source, ops.negExp, this.backend.fromHost(out, shape));
  }
}
