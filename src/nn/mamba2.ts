/**
 * The Mamba-2 mixer (Dao & Gu 2024, "Transformers are SSMs", §7 Fig. 6), as HF `Mamba2Mixer.torch_forward`
 * computes it (also Bamba's, Granite 4.0-H's and NemotronH's mamba layers).
 *
 *   [z | xBC | Δ'] = in_proj(h)                      z: (b, L, I), xBC: (b, L, I + 2GN), Δ': (b, L, nh)
 *   xBC            = silu(conv1d_causal(xBC))        depthwise, width K
 *   [x | B | C]    = xBC                             x → (b, L, nh, hd), B, C → (b, L, G, N)
 *   Δ              = clamp(softplus(Δ' + dt_bias), time_step_limit)
 *   h_t            = exp(Δ_t A_h) h_{t−1} + Δ_t x_t ⊗ B_t    per head h, scalar A_h = −exp(A_log_h); head h reads group ⌊h/(nh/G)⌋
 *   y_t            = h_t C_t + D_h x_t              computed by SSD (chunked) in prefill, the recurrence in decode
 *   y              = norm(y · silu(z))              gated RMSNorm (full width in HF; per group in the official kernels)
 *   out            = out_proj(y)
 */
import type { Backend, Mamba2StepArgs, StackMixerArgs, SublayerResidual } from '../backend/backend.js';
import { needsGrad } from '../autograd/tape.js';
import * as ops from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Derived } from './derived.js';
import { fusedDecode, observeDelta, sizeOf, type Mixer, type MixerContext } from './mixer.js';

export interface Mamba2Dims {
  /** I = nh · hd */
  inner: number;
  nHeads: number;
  headDim: number;
  nGroups: number;
  dState: number;
  convKernel: number;
}

export interface Mamba2Weights {
  inProj: Tensor; // [I + (I + 2GN) + nh, H]
  inProjBias: Tensor | null;
  conv: Tensor; // [I + 2GN, K]
  convBias: Tensor | null;
  dtBias: Tensor; // [nh]
  A: Derived; // [nh] = −exp(A_log), from the parameter A_log
  D: Tensor; // [nh]
  norm: Tensor; // [I]
  outProj: Tensor; // [H, I]
  outProjBias: Tensor | null;
}

export interface Mamba2Options {
  normEps: number;
  /** gated-norm group: I (HF) or I/G (official kernels) */
  normGroupSize: number;
  dtLimit: [number, number];
  /**
   * Clamp Δ to `dtLimit` in one-token decode steps too. HF (5.17) and the official `Mamba2.step` do not:
   * they clamp only in prefill, so for a finite time_step_limit cached decode differs from a full
   * forward. false (default) reproduces them; true makes decode equal a re-forward.
   */
  clampDecodeDt?: boolean;
  algorithm: 'chunked' | 'quadratic' | 'recurrent';
  chunkSize: number;
}

export class Mamba2Mixer implements Mixer {
  readonly timeTensors = [] as const;

  constructor(private readonly w: Mamba2Weights, readonly dims: Mamba2Dims, private readonly opts: Mamba2Options, private readonly backend: Backend) {}

  get parameterCount(): number {
    const w = this.w;
    return sizeOf(w.inProj, w.inProjBias, w.conv, w.convBias, w.dtBias, w.A, w.D, w.norm, w.outProj, w.outProjBias);
  }

  get convDim(): number {
    const d = this.dims;
    return d.inner + 2 * d.nGroups * d.dState;
  }

  initState(batch: number): Record<string, Tensor> {
    const d = this.dims;
    return {
      conv: this.backend.zeros([batch, this.convDim, d.convKernel]),
      ssm: this.backend.zeros([batch, d.nHeads, d.headDim, d.dState]),
    };
  }

  /** HF's decode path: a cached single token after a prefill */
  private isDecodeStep(L: number, ctx: MixerContext): boolean {
    return L === 1 && ctx.state !== null && ctx.pastLen.every((p) => p > 0);
  }

  stackLayer(ctx: MixerContext): StackMixerArgs | null {
    const { w } = this;
    const st = ctx.state;
    if (!st || ctx.onDelta || !this.backend.decodeStack) return null;
    if (needsGrad(w.inProj, w.inProjBias, w.outProj, w.outProjBias)) return null;
    return { kind: 'mamba2', args: { ...this.stepArgs(st, this.dtLimitFor(1, ctx)), inProj: w.inProj, inProjBias: w.inProjBias, outProj: w.outProj, outProjBias: w.outProjBias } };
  }

  /** Δ's clamp for L new positions: none for a decode step unless `clampDecodeDt` (as HF's step), else `dtLimit` */
  private dtLimitFor(L: number, ctx: MixerContext): [number, number] {
    return this.isDecodeStep(L, ctx) && !this.opts.clampDecodeDt ? [0, Infinity] : this.opts.dtLimit;
  }

  /** a one-token step's own arguments (Mamba2StepArgs but its input, next and onDelta): the fused decode's and the stack's */
  private stepArgs(st: Record<string, Tensor>, dtLimit: [number, number]): Omit<Mamba2StepArgs, 'zxbcdt' | 'next' | 'onDelta'> {
    const { w, dims: d, opts } = this;
    return {
      nHeads: d.nHeads, headDim: d.headDim, nGroups: d.nGroups, dState: d.dState, conv: w.conv, convBias: w.convBias,
      convState: st.conv, dtBias: w.dtBias, dtLimit, A: w.A.get(), D: w.D, ssmState: st.ssm, norm: w.norm, normEps: opts.normEps,
      normGroupSize: opts.normGroupSize,
    };
  }

  /**
   * prefill: the whole layer in one backend call where it has one (activations kept there between the ops); with r,
   * h is the residual stream and the call also runs the layer's pre-norm and residual add (SublayerResidual). null
   * where there is none (or it declines)
   */
  private prefill(h: Tensor, ctx: MixerContext, r: SublayerResidual | undefined): Tensor | null {
    const { w, dims: d, opts } = this;
    const be = this.backend;
    const L = h.shape[1];
    if (!(L > 1 && be.mamba2Prefill && !ctx.onDelta)) return null;
    const A = w.A.get();
    if (needsGrad(h, w.inProj, w.inProjBias, w.conv, w.convBias, w.dtBias, A, w.D, w.norm, w.outProj, w.outProjBias)) return null;
    if (r?.norm && (needsGrad(r.norm) || r.norm.shape.length !== 1 || r.norm.shape[0] !== h.shape[2])) return null;
    const st = ctx.state;
    const dtLimit = this.dtLimitFor(L, ctx);
    return be.mamba2Prefill({
      h, inProj: w.inProj, inProjBias: w.inProjBias, outProj: w.outProj, outProjBias: w.outProjBias,
      nHeads: d.nHeads, headDim: d.headDim, nGroups: d.nGroups, dState: d.dState, conv: w.conv, convBias: w.convBias,
      convState: st?.conv ?? null, dtBias: w.dtBias, dtLimit, A, D: w.D, ssmState: st?.ssm ?? null, norm: w.norm,
      normEps: opts.normEps, normGroupSize: opts.normGroupSize, algorithm: opts.algorithm, chunkSize: opts.chunkSize,
      ...(r ? { residual: r } : {}),
    });
  }

  /** prefill: the layer with its pre-norm and residual add in one backend call where it has one (see `prefill`) */
  async forwardResidual(x: Tensor, r: SublayerResidual, ctx: MixerContext): Promise<Tensor | null> {
    return this.prefill(x, ctx, r);
  }

  async forward(h: Tensor, ctx: MixerContext): Promise<Tensor> {
    const { w, dims: d, opts } = this;
    const [b, L] = h.shape;
    const GN = d.nGroups * d.dState;
    const st = ctx.state;
    const dtLimit = this.dtLimitFor(L, ctx);
    const fused = L === 1 && st && this.backend.mamba2Step && (!ctx.onDelta || this.backend.stepDelta);
    const be = this.backend;
    const pre = this.prefill(h, ctx, undefined);
    if (pre) return pre;
    // decode: in_proj, the step and out_proj in one backend call where it has one, else the step (and out_proj) in one
    const r = fusedDecode(ctx, 'mamba2', be.name, !!fused, h, w, (onDelta) => ({ ...this.stepArgs(st!, dtLimit), next: w.outProj, onDelta }), {
      layer: be.mamba2Layer && ((a) => be.mamba2Layer!(a)),
      stepOut: be.mamba2StepOut && ((a, zxbcdt) => be.mamba2StepOut!({ ...a, zxbcdt }, w.outProj, w.outProjBias)),
      step: (a, zxbcdt) => be.mamba2Step!({ ...a, zxbcdt }),
    }, () =>
      // decode: the state is read next (the step), so it may be fetched while in_proj's weights stream (an option)
      L === 1 && st ? ops.linearTouching(h, w.inProj, w.inProjBias, st.ssm) : ops.linear(h, w.inProj, w.inProjBias));
    if ('out' in r) return r.out;
    const zxbcdt = r.proj;
    const [z, xBCraw, dt] = ops.split(zxbcdt, [d.inner, this.convDim, d.nHeads]);
    const xBC = ops.causalConv1d({ x: xBCraw, weight: w.conv, bias: w.convBias, state: st?.conv ?? null, activation: 'silu' });
    const [x, B, C] = ops.split(xBC, [d.inner, GN, GN]);
    if (ctx.onDelta) ctx.onDelta('mamba2', observeDelta(dt, w.dtBias, dtLimit));
    const y = ops.ssd({
      x: ops.reshape(x, [b, L, d.nHeads, d.headDim]),
      dt,
      A: w.A.get(),
      B: ops.reshape(B, [b, L, d.nGroups, d.dState]),
      C: ops.reshape(C, [b, L, d.nGroups, d.dState]),
      D: w.D,
      dtBias: w.dtBias,
      dtLimit,
      state: st?.ssm ?? null,
      algorithm: L > 1 ? opts.algorithm : 'recurrent',
      chunkSize: opts.chunkSize,
    }); // (b, L, nh, hd)
    const g = ops.rmsNormGated(ops.reshape(y, [b, L, d.inner]), z, w.norm, opts.normEps, opts.normGroupSize);
    return ops.linear(g, w.outProj, w.outProjBias);
  }
}
