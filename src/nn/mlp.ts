/**
 * Feed-forward sublayers.
 * - GatedMLP (SwiGLU; Llama, Bamba, Jamba, Granite's shared MLP): down(silu(gate(x)) · up(x)).
 * - PlainMLP (NemotronH): down(act(up(x))), act = relu² etc.
 */
import type { Activation, StackMixerArgs, SublayerResidual } from '../backend/backend.js';
import { needsGrad } from '../autograd/tape.js';
import * as ops from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { sizeOf, type Mixer } from './mixer.js';

export interface GatedMLPWeights {
  gate: Tensor; // [I, H]
  up: Tensor; // [I, H]
  down: Tensor; // [H, I]
  gateBias?: Tensor | null;
  upBias?: Tensor | null;
  downBias?: Tensor | null;
}

export class GatedMLP implements Mixer {
  readonly timeTensors = [] as const;
  constructor(readonly w: GatedMLPWeights) {}
  get parameterCount(): number {
    return sizeOf(this.w.gate, this.w.up, this.w.down, this.w.gateBias, this.w.upBias, this.w.downBias);
  }
  initState(): Record<string, Tensor> {
    return {};
  }
  /** synchronous core, shared with the mixture of experts */
  apply(x: Tensor): Tensor {
    const w = this.w;
    return ops.gatedMlp(x, [w.gate, w.gateBias ?? null], [w.up, w.upBias ?? null], [w.down, w.downBias ?? null]);
  }
  async forward(h: Tensor): Promise<Tensor> {
    return this.apply(h);
  }
  /** the one-token decode step for the backend's `decodeStack` (gatedMlp's weights); null where a weight records gradients */
  stackLayer(): StackMixerArgs | null {
    const w = this.w;
    if (needsGrad(w.gate, w.up, w.down, w.gateBias ?? null, w.upBias ?? null, w.downBias ?? null)) return null;
    return { kind: 'gatedMlp', args: { gate: [w.gate, w.gateBias ?? null], up: [w.up, w.upBias ?? null], down: [w.down, w.downBias ?? null] } };
  }
  /** the sublayer with its norm and residual in one backend call where it has one (ops.gatedMlpResidual: wasm prefill) */
  async forwardResidual(x: Tensor, r: SublayerResidual): Promise<Tensor | null> {
    const w = this.w;
    return ops.gatedMlpResidual(x, [w.gate, w.gateBias ?? null], [w.up, w.upBias ?? null], [w.down, w.downBias ?? null], r);
  }
}

export class PlainMLP implements Mixer {
  readonly timeTensors = [] as const;
  constructor(readonly w: { up: Tensor; down: Tensor; upBias?: Tensor | null; downBias?: Tensor | null }, readonly act: Activation) {}
  get parameterCount(): number {
    return sizeOf(this.w.up, this.w.down, this.w.upBias, this.w.downBias);
  }
  initState(): Record<string, Tensor> {
    return {};
  }
  async forward(h: Tensor): Promise<Tensor> {
    const w = this.w;
    return ops.linear(ops.activation(ops.linear(h, w.up, w.upBias ?? null), this.act), w.down, w.downBias ?? null);
  }
  /** the one-token decode step for the backend's `decodeStack` (the weights and the activation); null where a weight records gradients */
  stackLayer(): StackMixerArgs | null {
    const w = this.w;
    if (needsGrad(w.up, w.down, w.upBias ?? null, w.downBias ?? null)) return null;
    return { kind: 'plainMlp', args: { up: [w.up, w.upBias ?? null], down: [w.down, w.downBias ?? null], act: this.act } };
  }
}
