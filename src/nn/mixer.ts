/**
 * What a sublayer of a decoder block is: a function of the normed hidden states that may carry
 * per-sequence state between calls (Mamba: conv window + SSM state; attention: KV cache; MLP: none).
 */
import type { LayerProjections, StackMixerArgs, SublayerResidual } from '../backend/backend.js';
import { needsGrad } from '../autograd/tape.js';
import { processDt } from '../ssm/ssd.js';
import * as ops from '../tensor/ops.js';
import type { HostTensor, Tensor } from '../tensor/tensor.js';
import type { KvCacheDType } from '../tensor/dtype.js';

export interface MixerContext {
  /** tokens each sequence has consumed before this call (positions start there) */
  pastLen: readonly number[];
  /** this layer's state tensors, updated in place (or replaced, for a growing KV cache); null = no cache */
  state: Record<string, Tensor> | null;
  /**
   * Set only while someone observes Δ (`ForwardOptions.onDelta`): a Mamba mixer hands over its Δ (the
   * selection step, after softplus) as a read already started; nothing is computed or read otherwise.
   */
  onDelta?: (kind: 'mamba1' | 'mamba2', delta: Promise<HostTensor>) => void;
}

export interface Mixer {
  /** fresh state tensors for `batch` sequences ({} when the mixer keeps none); `kvCache`: the format of KV caches */
  initState(batch: number, opts?: { kvCache?: KvCacheDType }): Record<string, Tensor>;
  /** names of state tensors whose dim 1 is time */
  readonly timeTensors: readonly string[];
  /** h: (b, L, H) → (b, L, H) */
  forward(h: Tensor, ctx: MixerContext): Promise<Tensor>;
  /**
   * Optional: the whole sublayer x + r.scale · forward(rmsNorm(x, r.norm, r.eps)) in one backend call where the backend
   * takes it (wasm prefill: the residual stream copied in once, no copy per op); null otherwise (the caller then runs
   * the norm, `forward` and the residual add: the same numbers).
   */
  forwardResidual?(x: Tensor, r: SublayerResidual, ctx: MixerContext): Promise<Tensor | null>;
  /** parameters, for `describe()` */
  readonly parameterCount: number;
  /**
   * Optional (mixers with time tensors): grow this layer's time tensors in `state` to hold at least `need`
   * positions (doubling, so that growth is rare); no-op when they do. Replaced tensors are disposed.
   */
  reserve?(state: Record<string, Tensor>, need: number): void;
  /**
   * Optional (Mamba mixers, attention, the gated MLP): this layer's one-token decode step for the backend's `decodeStack` (its arguments but the
   * input), as `forward` would run it on an input of one token per sequence with `ctx`; null where it cannot (no state,
   * Δ observed, a gradient recorded, the backend without decodeStack).
   */
  stackLayer?(ctx: MixerContext): StackMixerArgs | null;
}

/**
 * Δ = clamp(softplus(raw + bias), limit) on the host, [..., C] per channel (Mamba-1) or head (Mamba-2). The
 * reads start now, so the tensors may be released afterwards; on a GPU they go into the queue behind the
 * work that produces them.
 */
export function observeDelta(raw: Tensor, bias: Tensor | null, limit: [number, number]): Promise<HostTensor> {
  const shape = [...raw.shape];
  const reads = Promise.all([raw.data(), bias ? bias.data() : null]);
  return reads.then(([d, b]) => ({ shape, data: processDt(d, b, shape[shape.length - 1], limit) }));
}

/**
 * Δ handed out by a backend's fused decode step (`Mamba1StepArgs.onDelta`) while someone observes it: `onDelta` is
 * the step's argument (undefined when nobody observes), reporting to `ctx.onDelta` what `observeDelta` would;
 * `check()` after a step that ran throws if the backend handed none out.
 */
export function stepDelta(ctx: MixerContext, kind: 'mamba1' | 'mamba2', backend: string): { onDelta?: (delta: Tensor) => void; check(): void } {
  const report = ctx.onDelta;
  if (!report) return { check: () => {} };
  let handed = false;
  return {
    onDelta: (delta) => {
      handed = true;
      const shape = [...delta.shape];
      report(kind, delta.data().then((data) => ({ shape, data })));
    },
    check: () => {
      if (!handed) throw new Error(`${backend}: its fused ${kind} decode step returned no Δ although the backend sets stepDelta (Δ is observed)`);
    },
  };
}

/** a Mamba mixer's in_proj and out_proj */
export type MixerProjections = Omit<LayerProjections, 'h'>;

type OnDelta = ((delta: Tensor) => void) | undefined;

/**
 * A Mamba mixer's decode step through the backend's one-call kernels (each the same numbers as the op sequence; Δ
 * handed to ctx.onDelta while observed, see `stepDelta`), tried in order: `layer` (in_proj, the step, out_proj); in_proj
 * by `inProj()`, then `stepOut` (the step and out_proj); `step`, then out_proj. `fused`: a decode step (L = 1 with a
 * state) on a backend with the one-call step. `layer` and `stepOut` run only when nothing records a gradient of h or
 * the projections (they leave in_proj / out_proj out of a gradient tape). `base(onDelta)`: the step's arguments but
 * its input, which `layer` gets with h and the projections, `stepOut` and `step` with in_proj's result. Returns
 * { out } (the layer's output) or, where no kernel handled the step, { proj }: in_proj's result for the op sequence.
 */
export function fusedDecode<B>(
  ctx: MixerContext, kind: 'mamba1' | 'mamba2', backend: string, fused: boolean, h: Tensor, w: MixerProjections, base: (onDelta: OnDelta) => B,
  kernels: { layer?: (a: B & LayerProjections) => Tensor | null; stepOut?: (a: B, proj: Tensor) => Tensor | null; step: (a: B, proj: Tensor) => Tensor | null },
  inProj: () => Tensor,
): { out: Tensor } | { proj: Tensor } {
  const oneCall = fused && !needsGrad(h, w.inProj, w.inProjBias, w.outProj, w.outProjBias);
  if (oneCall && kernels.layer) {
    const observed = stepDelta(ctx, kind, backend);
    const out = kernels.layer({ ...base(observed.onDelta), h, inProj: w.inProj, inProjBias: w.inProjBias, outProj: w.outProj, outProjBias: w.outProjBias });
    if (out) {
      observed.check();
      return { out };
    }
  }
  const proj = inProj();
  if (fused) {
    const observed = stepDelta(ctx, kind, backend);
    const args = base(observed.onDelta);
    const out = oneCall && kernels.stepOut ? kernels.stepOut(args, proj) : null;
    if (out) {
      observed.check();
      return { out };
    }
    const y = kernels.step(args, proj);
    if (y) {
      observed.check();
      return { out: ops.linear(y, w.outProj, w.outProjBias) };
    }
  }
  return { proj };
}

export function sizeOf(...ts: Array<{ size: number } | null | undefined>): number {
  return ts.reduce((a, t) => a + (t ? t.size : 0), 0);
}
