import type { Tensor } from '../../../tensor/tensor.js';
import { OpError } from '../../../errors.js';

/** a required input of a differentiable op */
export function need(t: Tensor | null, op: string, name: string): Tensor {
  if (!t) throw new OpError(`${op} (webgpu, differentiable): input ${name} is missing`);
  return t;
}
