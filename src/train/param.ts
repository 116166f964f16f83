/**
 * What the training utilities need from a trainable parameter. `src/autograd`'s `Var` satisfies it
 * structurally (no import needed either way): a flat value array, a gradient of the same length
 * (null until something flows into it), a shape and a checkpoint name (the HF tensor name, e.g.
 * `backbone.layers.0.mixer.A_log`, which is also what the no-weight-decay rule looks at).
 *
 * Float64 arrays are accepted as well as float32 so the same code runs float64 gradient checks.
 */
export type FloatArray = Float32Array | Float64Array;

export interface Param {
  name: string;
  data: FloatArray;
  grad: FloatArray | null;
  shape: readonly number[];
}

/** Number of elements a shape describes (1 for a scalar `[]`). */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
