/**
 * What a sublayer of a decoder block is: a function of the normed hidden states that may carry
 * per-sequence state between calls (Mamba: conv window + SSM state; attention: KV cache; MLP: none).
 */
import type { Tensor } from '../tensor/tensor.js';

export interface MixerContext {
  /** tokens each sequence has consumed before this call (positions start there) */
  pastLen: readonly number[];
  /** this layer's state tensors, updated in place (or replaced, for a growing KV cache); null = no cache */
  state: Record<string, Tensor> | null;
}

export interface Mixer {
  /** fresh state tensors for `batch` sequences ({} when the mixer keeps none) */
  initState(batch: number): Record<string, Tensor>;
  /** names of state tensors whose dim 1 is time */
  readonly timeTensors: readonly string[];
  /** h: (b, L, H) → (b, L, H) */
  forward(h: Tensor, ctx: MixerContext): Promise<Tensor>;
  /** parameters, for `describe()` */
  readonly parameterCount: number;
}

export function sizeOf(...ts: Array<Tensor | null | undefined>): number {
  return ts.reduce((a, t) => a + (t ? t.size : 0), 0);
}
