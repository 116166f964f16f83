/**
 * The LTI ablation of the Mamba block: the same gated block with S6 replaced by a per-channel diagonal S4D layer
 * whose kernel does not depend on the input (the "Mamba architecture with an S4 layer" row of the Mamba paper's
 * selective-copying table), applied in convolution mode:
 *
 *   [xs | z] = in_proj(h);  u = silu(conv1d_causal(xs))
 *   K        = S4D kernel (ZOH; Δ = exp(log_dt), A_n = −exp(log_A_real) + i·A_imag, C complex), [D, L]
 *   y        = (K ∗ u) + D·u   by FFT;   out = out_proj(y · silu(z))
 *
 * Checkpoint names under the mixer: in_proj, conv1d, s4d.{log_dt, log_A_real, A_imag, C}, D, out_proj.
 * Convolution mode only: no recurrent state (no cached decoding).
 */
import { Rng } from '../generate/rng.js';
import { complexRandn, type S4dInitKind, s4dInit } from '../ssm/s4.js';
import * as ops from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { ModelError } from '../models/errors.js';
import { sizeOf, type Mixer, type MixerContext } from './mixer.js';

export interface S4dMixerWeights {
  inProj: Tensor; // [2D, H]
  inProjBias: Tensor | null;
  conv: Tensor; // [D, K]
  convBias: Tensor | null;
  logDt: Tensor; // [D]
  logAReal: Tensor; // [D, M]
  AImag: Tensor; // [D, M]
  C: Tensor; // [D, M, 2]
  D: Tensor; // [D]
  outProj: Tensor; // [H, D]
  outProjBias: Tensor | null;
}

export class S4dMixer implements Mixer {
  readonly timeTensors = [] as const;
  readonly inner: number;

  constructor(private readonly w: S4dMixerWeights) {
    this.inner = w.logDt.shape[0];
  }

  get parameterCount(): number {
    const w = this.w;
    return sizeOf(w.inProj, w.inProjBias, w.conv, w.convBias, w.logDt, w.logAReal, w.AImag, w.C, w.D, w.outProj, w.outProjBias);
  }

  initState(): Record<string, Tensor> {
    return {};
  }

  async forward(h: Tensor, ctx: MixerContext): Promise<Tensor> {
    if (ctx.state !== null) throw new ModelError('the S4D (LTI) ablation mixer runs in convolution mode only: no recurrent state, so no cached decoding');
    const w = this.w;
    const L = h.shape[1];
    const [xs, z] = ops.split(ops.linear(h, w.inProj, w.inProjBias), [this.inner, this.inner]);
    const u = ops.causalConv1d({ x: xs, weight: w.conv, bias: w.convBias, state: null, activation: 'silu' });
    const K = ops.s4dKernel(w.logDt, w.logAReal, w.AImag, w.C, L);
    const y = ops.mul(ops.fftConv(u, K, w.D), ops.activation(z, 'silu'));
    return ops.linear(y, w.outProj, w.outProjBias);
  }
}

/** complex modes of an S4D layer with state size N (conjugate pairs: N/2) */
export function s4dModes(N: number): number {
  return Math.max(1, Math.floor(N / 2));
}

/**
 * Parameters of H independent diagonal SSMs of M complex modes each: log Δ ~ U(ln dtMin, ln dtMax), A from the
 * chosen S4D init (stored as log(−Re A) and Im A), C ~ complex N(0, ½ per part) — the minimal S4D module's recipe.
 */
export function s4dParams(H: number, M: number, kind: S4dInitKind, rng: Rng, dtMin = 1e-3, dtMax = 1e-1): { logDt: Float32Array; logAReal: Float32Array; AImag: Float32Array; C: Float32Array } {
  const logDt = new Float32Array(H);
  const logAReal = new Float32Array(H * M);
  const AImag = new Float32Array(H * M);
  const C = new Float32Array(H * M * 2);
  // 'real' has N real modes for state size N; here M modes are asked for, so build it with N = M.
  const fixed = kind === 'random' ? null : kind === 'real' ? s4dInit('real', M) : s4dInit(kind, 2 * M);
  for (let h = 0; h < H; h++) {
    logDt[h] = Math.log(dtMin) + rng.next() * (Math.log(dtMax) - Math.log(dtMin));
    const A = fixed ?? s4dInit('random', 2 * M, rng);
    for (let n = 0; n < M; n++) {
      logAReal[h * M + n] = Math.log(-A.re[n]);
      AImag[h * M + n] = A.im[n];
    }
    const c = complexRandn(M, rng);
    for (let n = 0; n < M; n++) {
      C[(h * M + n) * 2] = c.re[n] * Math.SQRT1_2;
      C[(h * M + n) * 2 + 1] = c.im[n] * Math.SQRT1_2;
    }
  }
  return { logDt, logAReal, AImag, C };
}

/** S4D parameters of every layer of a Mamba model (per inner channel), under `backbone.layers.i.mixer.s4d.*` */
export function initS4dMixers(c: { numLayers: number; innerSize: number; stateSize: number }, kind: S4dInitKind, seed: number): Record<string, { data: Float32Array; shape: number[] }> {
  const rng = new Rng(seed + 7919);
  const D = c.innerSize;
  const M = s4dModes(c.stateSize);
  const out: Record<string, { data: Float32Array; shape: number[] }> = {};
  for (let i = 0; i < c.numLayers; i++) {
    const m = `backbone.layers.${i}.mixer.s4d.`;
    const p = s4dParams(D, M, kind, rng);
    out[`${m}log_dt`] = { data: p.logDt, shape: [D] };
    out[`${m}log_A_real`] = { data: p.logAReal, shape: [D, M] };
    out[`${m}A_imag`] = { data: p.AImag, shape: [D, M] };
    out[`${m}C`] = { data: p.C, shape: [D, M, 2] };
  }
  return out;
}
