/**
 * The Mamba-1 selective-SSM mixer (Gu & Dao 2023, §3, Fig. 3 right, Algorithm 2), as HF
 * `MambaMixer.slow_forward` computes it; with the optional RMSNorms on Δ', B and C that FalconMamba
 * (weight-less) and Jamba (learnable) add after the x_proj split.
 *
 *   [xs | z]      = in_proj(h)                         (b, L, 2D)
 *   u             = silu(conv1d_causal(xs))            (b, L, D)   depthwise, width K
 *   [Δ' | B | C]  = x_proj(u)                          (b, L, R+2N)   (then the optional norms)
 *   Δ             = softplus(dt_proj(Δ'))              (b, L, D)   bias added before the softplus
 *   h_t           = exp(Δ_t A) h_{t−1} + Δ_t B_t u_t   A = −exp(A_log) (D, N); ZOH for A, Euler for B
 *   y_t           = C_t h_t + D u_t;  y ← y · silu(z)
 *   out           = out_proj(y)                        (b, L, H)
 */
import type { Backend, Mamba1StepArgs, StackMixerArgs } from '../backend/backend.js';
import { needsGrad } from '../autograd/tape.js';
import * as ops from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Derived } from './derived.js';
import { fusedDecode, observeDelta, sizeOf, type Mixer, type MixerContext } from './mixer.js';

export interface Mamba1Weights {
  inProj: Tensor; // [2D, H]
  inProjBias: Tensor | null;
  conv: Tensor; // [D, K]
  convBias: Tensor | null;
  xProj: Tensor; // [R+2N, D]
  dtProj: Tensor; // [D, R]
  dtBias: Tensor; // [D]
  A: Derived; // [D, N] = −exp(A_log), from the parameter A_log
  D: Tensor; // [D]
  outProj: Tensor; // [H, D]
  outProjBias: Tensor | null;
  /** RMSNorms on Δ' (R), B (N), C (N) after the x_proj split; a null weight = parameter-free */
  innerNorms?: { dt: Tensor | null; B: Tensor | null; C: Tensor | null; eps: number };
}

export interface ScanOptions {
  algorithm: 'sequential' | 'chunked';
  chunkSize: number;
}

export class Mamba1Mixer implements Mixer {
  readonly timeTensors = [] as const;
  readonly D: number;
  readonly N: number;
  readonly R: number;
  readonly K: number;

  constructor(private readonly w: Mamba1Weights, private readonly backend: Backend, private readonly scan: ScanOptions) {
    [this.D, this.N] = w.A.shape;
    this.R = w.dtProj.shape[1];
    this.K = w.conv.shape[1];
  }

  get parameterCount(): number {
    const w = this.w;
    const n = w.innerNorms;
    return sizeOf(w.inProj, w.inProjBias, w.conv, w.convBias, w.xProj, w.dtProj, w.dtBias, w.A, w.D, w.outProj, w.outProjBias, n?.dt, n?.B, n?.C);
  }

  initState(batch: number): Record<string, Tensor> {
    return { conv: this.backend.zeros([batch, this.D, this.K]), ssm: this.backend.zeros([batch, this.D, this.N]) };
  }

  stackLayer(ctx: MixerContext): StackMixerArgs | null {
    const { w } = this;
    const st = ctx.state;
    if (!st || ctx.onDelta || !this.backend.decodeStack) return null;
    if (needsGrad(w.inProj, w.inProjBias, w.outProj, w.outProjBias)) return null;
    return { kind: 'mamba1', args: { ...this.stepArgs(st), inProj: w.inProj, inProjBias: w.inProjBias, outProj: w.outProj, outProjBias: w.outProjBias } };
  }

  /** a one-token step's own arguments (Mamba1StepArgs but its input, next and onDelta): the fused decode's and the stack's */
  private stepArgs(st: Record<string, Tensor>): Omit<Mamba1StepArgs, 'xz' | 'next' | 'onDelta'> {
    const { w } = this;
    return {
      conv: w.conv, convBias: w.convBias, convState: st.conv, xProj: w.xProj, dtProj: w.dtProj, dtBias: w.dtBias,
      A: w.A.get(), D: w.D, ssmState: st.ssm, innerNorms: w.innerNorms,
    };
  }

  async forward(h: Tensor, ctx: MixerContext): Promise<Tensor> {
    const { w, D, N, R } = this;
    const L = h.shape[1];
    const st = ctx.state;
    const fused = L === 1 && st && this.backend.mamba1Step && (!ctx.onDelta || this.backend.stepDelta);
    const be = this.backend;
    // decode: in_proj, the step and out_proj in one backend call where it has one, else the step (and out_proj) in one
    const r = fusedDecode(ctx, 'mamba1', be.name, !!fused, h, w, (onDelta) => ({ ...this.stepArgs(st!), next: w.outProj, onDelta }), {
      layer: be.mamba1Layer && ((a) => be.mamba1Layer!(a)),
      stepOut: be.mamba1StepOut && ((a, xz) => be.mamba1StepOut!({ ...a, xz }, w.outProj, w.outProjBias)),
      step: (a, xz) => be.mamba1Step!({ ...a, xz }),
    }, () => ops.linear(h, w.inProj, w.inProjBias)); // (b, L, 2D)
    if ('out' in r) return r.out;
    const xz = r.proj;
    const [xs, z] = ops.split(xz, [D, D]); // (b, L, D) each
    const u = ops.causalConv1d({ x: xs, weight: w.conv, bias: w.convBias, state: st?.conv ?? null, activation: 'silu' }); // (b, L, D)
    let [dtLow, B, C] = ops.split(ops.linear(u, w.xProj), [R, N, N]); // (b, L, R), (b, L, N), (b, L, N)
    if (w.innerNorms) {
      const n = w.innerNorms;
      dtLow = ops.rmsNorm(dtLow, n.dt, n.eps);
      B = ops.rmsNorm(B, n.B, n.eps);
      C = ops.rmsNorm(C, n.C, n.eps);
    }
    const delta = ops.linear(dtLow, w.dtProj); // (b, L, D); dt bias + softplus inside the scan
    if (ctx.onDelta) ctx.onDelta('mamba1', observeDelta(delta, w.dtBias, [-Infinity, Infinity]));
    const y = ops.selectiveScan({
      u, delta, A: w.A.get(), B, C, D: w.D, z, deltaBias: w.dtBias, deltaSoftplus: true,
      state: st?.ssm ?? null,
      algorithm: L > 1 ? this.scan.algorithm : 'sequential',
      chunkSize: this.scan.chunkSize,
    }); // (b, L, D)
    return ops.linear(y, w.outProj, w.outProjBias); // (b, L, H)
  }
}
