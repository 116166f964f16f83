/**
 * A weight computed from a parameter, e.g. Mamba's A = −exp(A_log): inference reads the value computed once
 * (at load), training computes it from the parameter on every forward so that the tape records the path to it,
 * and after the parameter changed (an optimizer step bumps its `version`) the value is computed again.
 *
 * The parameter itself reaches the backend only when something asks for it (training, saving): inference keeps
 * just the derived value there.
 */
import { needsGrad } from '../autograd/tape.js';
import { keep, unscoped } from '../tensor/scope.js';
import type { Shape, Tensor } from '../tensor/tensor.js';

/** a tensor made on first use */
export class Lazy {
  private t: Tensor | null = null;
  constructor(private readonly make: () => Tensor) {}
  get loaded(): boolean {
    return this.t !== null;
  }
  get(): Tensor {
    return (this.t ??= this.make());
  }
}

export class Derived {
  private version = 0;

  constructor(
    readonly source: Lazy,
    private readonly f: (source: Tensor) => Tensor,
    private value: Tensor,
  ) {}

  get(): Tensor {
    if (!this.source.loaded) return this.value; // nobody has touched the parameter: unchanged
    const s = this.source.get();
    if (needsGrad(s)) return this.f(s);
    if (this.version !== s.version) {
      // the cached value outlives the forward that asks for it first: no scope of that forward may dispose it
      const old = this.value;
      this.value = keep(unscoped(() => this.f(s)));
      this.version = s.version;
      old.dispose();
    }
    return this.value;
  }

  get shape(): Shape {
    return this.value.shape;
  }
  get size(): number {
    return this.value.size;
  }
}
