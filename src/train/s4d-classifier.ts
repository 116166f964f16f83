/**
 * An S4D sequence classifier (the S4D paper's minimal model) for pixel-by-pixel image classification:
 *   h = encoder(u)                                       [b, L, 1] → [b, L, H]
 *   per layer:  y = S4D(rmsnorm(h))  (kernel K = Vandermonde(Δ, A, C), y = K ∗ x + D·x by FFT)
 *               y = GLU(W · gelu(y));  h ← h + y
 *   logits = decoder(mean_t rmsnorm(h))
 * A is diagonal complex, initialised by one of the S4D rules (HiPPO-derived LegS, Lin, Inv, Real) or at
 * random for the HiPPO-vs-random ablation. Training runs the convolution mode; `recurrent` inference is in
 * `src/ssm/s4.ts` (tested equal there).
 */
import * as ag from '../autograd/ops.js';
import * as fused from '../autograd/fused.js';
import { param, type Var } from '../autograd/var.js';
import { Rng } from '../generate/rng.js';
import type { S4dInitKind } from '../ssm/s4.js';
import { s4dParams } from '../nn/s4d.js';
import type { TrainableModel } from './lm.js';

export interface S4dClassifierConfig {
  inputDim: number;
  numClasses: number;
  hiddenSize: number;
  /** state size N (N/2 complex modes per channel) */
  stateSize: number;
  numLayers: number;
  init: S4dInitKind;
  normEps: number;
}

export class S4dClassifier implements TrainableModel {
  readonly params = new Map<string, Var>();

  constructor(
    readonly config: S4dClassifierConfig,
    tensors: Record<string, { data: Float32Array; shape: readonly number[] }>,
  ) {
    for (const [name, t] of Object.entries(tensors)) this.params.set(name, param(name, Float32Array.from(t.data), [...t.shape]));
    for (const name of expectedNames(config)) if (!this.params.has(name)) throw new Error(`S4dClassifier: tensor "${name}" is missing`);
  }

  static init(config: S4dClassifierConfig, seed = 0): S4dClassifier {
    const rng = new Rng(seed);
    const { inputDim: I, numClasses: K, hiddenSize: H, stateSize: N, numLayers } = config;
    const M = Math.max(1, Math.floor(N / 2));
    const uniform = (n: number, bound: number): Float32Array => {
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) a[i] = (rng.next() * 2 - 1) * bound;
      return a;
    };
    const t: Record<string, { data: Float32Array; shape: number[] }> = {};
    t['encoder.weight'] = { data: uniform(H * I, 1 / Math.sqrt(I)), shape: [H, I] };
    t['encoder.bias'] = { data: uniform(H, 1 / Math.sqrt(I)), shape: [H] };
    for (let i = 0; i < numLayers; i++) {
      const p = `layers.${i}.`;
      t[`${p}norm.weight`] = { data: new Float32Array(H).fill(1), shape: [H] };
      const s = s4dParams(H, M, config.init, rng);
      t[`${p}s4d.log_dt`] = { data: s.logDt, shape: [H] };
      t[`${p}s4d.log_A_real`] = { data: s.logAReal, shape: [H, M] };
      t[`${p}s4d.A_imag`] = { data: s.AImag, shape: [H, M] };
      t[`${p}s4d.C`] = { data: s.C, shape: [H, M, 2] };
      const D = new Float32Array(H);
      for (let h = 0; h < H; h++) D[h] = Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
      t[`${p}s4d.D`] = { data: D, shape: [H] };
      t[`${p}out.weight`] = { data: uniform(2 * H * H, 1 / Math.sqrt(H)), shape: [2 * H, H] };
      t[`${p}out.bias`] = { data: uniform(2 * H, 1 / Math.sqrt(H)), shape: [2 * H] };
    }
    t['norm_f.weight'] = { data: new Float32Array(H).fill(1), shape: [H] };
    t['decoder.weight'] = { data: uniform(K * H, 1 / Math.sqrt(H)), shape: [K, H] };
    t['decoder.bias'] = { data: uniform(K, 1 / Math.sqrt(H)), shape: [K] };
    return new S4dClassifier(config, t);
  }

  private p(name: string): Var {
    const v = this.params.get(name);
    if (!v) throw new Error(`S4dClassifier: no parameter "${name}"`);
    return v;
  }

  /** inputs [b, L, inputDim] → class logits [b, numClasses] */
  forward(u: Var): Var {
    const c = this.config;
    const [, L] = u.shape;
    const H = c.hiddenSize;
    let h = ag.linear(u, this.p('encoder.weight'), this.p('encoder.bias'));
    for (let i = 0; i < c.numLayers; i++) {
      const p = `layers.${i}.`;
      const x = ag.rmsNorm(h, this.p(`${p}norm.weight`), c.normEps);
      const K = fused.s4dKernel(this.p(`${p}s4d.log_dt`), this.p(`${p}s4d.log_A_real`), this.p(`${p}s4d.A_imag`), this.p(`${p}s4d.C`), L);
      const y = ag.gelu(fused.fftConv(x, K, this.p(`${p}s4d.D`)));
      const [a, g] = ag.split(ag.linear(y, this.p(`${p}out.weight`), this.p(`${p}out.bias`)), [H, H]);
      h = ag.add(h, ag.mul(a, ag.sigmoid(g)));
    }
    const pooled = ag.meanTime(ag.rmsNorm(h, this.p('norm_f.weight'), c.normEps));
    return ag.linear(pooled, this.p('decoder.weight'), this.p('decoder.bias'));
  }

  configJson(): Record<string, unknown> {
    const c = this.config;
    return {
      model_type: 'mamba_ts_s4d_classifier',
      input_dim: c.inputDim,
      num_classes: c.numClasses,
      hidden_size: c.hiddenSize,
      state_size: c.stateSize,
      num_layers: c.numLayers,
      s4d_init: c.init,
      norm_eps: c.normEps,
    };
  }

  static fromConfigJson(j: Record<string, unknown>, tensors: Record<string, { data: Float32Array; shape: readonly number[] }>): S4dClassifier {
    const num = (k: string): number => {
      const v = j[k];
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`config.json: field "${k}" must be a number, got ${JSON.stringify(v)}`);
      return v;
    };
    const cfg: S4dClassifierConfig = {
      inputDim: num('input_dim'),
      numClasses: num('num_classes'),
      hiddenSize: num('hidden_size'),
      stateSize: num('state_size'),
      numLayers: num('num_layers'),
      init: String(j.s4d_init ?? 'lin') as S4dInitKind,
      normEps: num('norm_eps'),
    };
    return new S4dClassifier(cfg, tensors);
  }
}

function expectedNames(c: S4dClassifierConfig): string[] {
  const names = ['encoder.weight', 'encoder.bias', 'norm_f.weight', 'decoder.weight', 'decoder.bias'];
  for (let i = 0; i < c.numLayers; i++) {
    for (const leaf of ['norm.weight', 's4d.log_dt', 's4d.log_A_real', 's4d.A_imag', 's4d.C', 's4d.D', 'out.weight', 'out.bias']) names.push(`layers.${i}.${leaf}`);
  }
  return names;
}
