/**
 * A weight computed from a parameter, e.g. Mamba's A = −exp(A_log): inference reads the value computed once
 * (at load), training computes it from the parameter on every forward so that the tape records the path to it,
 * and after the parameter changed (an optimizer step bumps its `version`) the value is computed again.
 */
import { needsGrad } from '../autograd/tape.js';
import type { Tensor } from '../tensor/tensor.js';

export class Derived {
  private version: number;

  constructor(
    readonly source: Tensor,
    private readonly f: (source: Tensor) => Tensor,
    private value: Tensor = f(source),
  ) {
    this.version = source.version;
  }

  get(): Tensor {
    if (needsGrad(this.source)) return this.f(this.source);
    if (this.version !== this.source.version) {
      this.value = this.f(this.source);
      this.version = this.source.version;
    }
    return this.value;
  }

  get size(): number {
    return this.source.size;
  }
}
