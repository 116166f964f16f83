/**
 * Causal multi-head / grouped-query attention (Vaswani et al. 2017; GQA, Ainslie et al. 2023) with
 * rotary position embedding on all or part of each head (RoPE, Su et al. 2021; Bamba rotates half),
 * or none (Jamba: NoPE), as HF's Llama/Bamba/Jamba/Granite attention computes it.
 *
 *   q = W_q h, k = W_k h, v = W_v h              (b, L, heads, hd)
 *   q, k ← rope(q, k, positions)                 positions continue from what each sequence has read
 *   o = softmax(q kᵀ · scale + causal mask) v     KV heads shared by Hq/Hkv query heads
 *   out = W_o o
 * With a state, keys/values go to a KV cache that grows (doubling) as sequences lengthen, stored in f32 or (the
 * `kvCache` option) bf16/f16, written round-to-nearest-even.
 */
import type { Backend, StackMixerArgs, SublayerResidual } from '../backend/backend.js';
import * as ops from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import type { KvCacheDType } from '../tensor/dtype.js';
import { needsGrad } from '../autograd/tape.js';
import { sizeOf, type Mixer, type MixerContext } from './mixer.js';

export interface AttentionWeights {
  q: Tensor; // [Hq·hd, H]
  k: Tensor; // [Hkv·hd, H]
  v: Tensor; // [Hkv·hd, H]
  o: Tensor; // [H, Hq·hd]
  qBias: Tensor | null;
  kBias: Tensor | null;
  vBias: Tensor | null;
  oBias: Tensor | null;
}

export interface AttentionOptions {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** null: no positional encoding */
  rope: { rotaryDim: number; theta: number } | null;
  /** softmax scale; default 1/√hd */
  scale?: number;
}

const INITIAL_CACHE = 64;

export class Attention implements Mixer {
  readonly timeTensors = ['k', 'v'] as const;

  constructor(private readonly w: AttentionWeights, readonly opts: AttentionOptions, private readonly backend: Backend) {}

  get parameterCount(): number {
    const w = this.w;
    return sizeOf(w.q, w.k, w.v, w.o, w.qBias, w.kBias, w.vBias, w.oBias);
  }

  /** the KV cache in the `kvCache` format (default f32); its growth (padTime) and the attention op keep it */
  initState(batch: number, opts?: { kvCache?: KvCacheDType }): Record<string, Tensor> {
    const o = this.opts;
    const shape = [batch, INITIAL_CACHE, o.nKvHeads, o.headDim];
    return { k: this.backend.zeros(shape, opts?.kvCache ?? 'f32'), v: this.backend.zeros(shape, opts?.kvCache ?? 'f32') };
  }

  reserve(state: Record<string, Tensor>, need: number): void {
    const T = state.k.shape[1];
    if (need <= T) return;
    const cap = Math.max(need, 2 * T);
    const [oldK, oldV] = [state.k, state.v];
    state.k = ops.padTime(oldK, cap);
    state.v = ops.padTime(oldV, cap);
    // the state owns its caches (no scope frees them): the outgrown pair goes now, not when the collector finds it
    oldK.dispose();
    oldV.dispose();
  }

  /** prefill (L ≥ 2): the sublayer with its norm and residual in one backend call where it has one (ops.attentionPrefill) */
  async forwardResidual(x: Tensor, r: SublayerResidual, ctx: MixerContext): Promise<Tensor | null> {
    return x.shape[1] > 1 ? this.prefill(x, ctx, r) : null;
  }

  /** ops.attentionPrefill of h (with r: h is the residual stream, see SublayerResidual), the caches grown first */
  private prefill(h: Tensor, ctx: MixerContext, r: SublayerResidual | undefined): Tensor | null {
    const { w, opts: o } = this;
    const [b, L] = h.shape;
    const past = ctx.state ? ctx.pastLen : new Array<number>(b).fill(0);
    if (ctx.state) this.reserve(ctx.state, Math.max(...past) + L);
    return ops.attentionPrefill({
      h, q: [w.q, w.qBias], k: [w.k, w.kBias], v: [w.v, w.vBias], o: [w.o, w.oBias],
      nHeads: o.nHeads, nKvHeads: o.nKvHeads, headDim: o.headDim, rope: o.rope, cacheK: ctx.state ? ctx.state.k : null,
      cacheV: ctx.state ? ctx.state.v : null, pastLen: past, scale: o.scale ?? 1 / Math.sqrt(o.headDim), ...(r ? { residual: r } : {}),
    });
  }

  /**
   * this layer's one-token decode step for the backend's `decodeStack` (attentionDecode's arguments but h and the
   * positions), the caches grown first as `forward` grows them; null without a state, a backend without decodeStack or
   * where a weight records gradients
   */
  stackLayer(ctx: MixerContext): StackMixerArgs | null {
    const { w, opts: o } = this;
    const st = ctx.state;
    if (!st || ctx.onDelta || !this.backend.decodeStack || needsGrad(w.q, w.k, w.v, w.o, w.qBias, w.kBias, w.vBias, w.oBias)) return null;
    this.reserve(st, Math.max(...ctx.pastLen) + 1);
    return {
      kind: 'attention',
      args: {
        q: [w.q, w.qBias], k: [w.k, w.kBias], v: [w.v, w.vBias], o: [w.o, w.oBias], nHeads: o.nHeads, nKvHeads: o.nKvHeads,
        headDim: o.headDim, rope: o.rope, cacheK: st.k, cacheV: st.v, scale: o.scale ?? 1 / Math.sqrt(o.headDim),
      },
    };
  }

  async forward(h: Tensor, ctx: MixerContext): Promise<Tensor> {
    const { w, opts: o } = this;
    const [b, L] = h.shape;
    if (ctx.state && L === 1) {
      // decode: the whole half in one backend call where it has one (wasm: ops.attentionDecode), else the ops below
      this.reserve(ctx.state, Math.max(...ctx.pastLen) + 1);
      const y = ops.attentionDecode({
        h: ops.reshape(h, [b, h.shape[2]]), q: [w.q, w.qBias], k: [w.k, w.kBias], v: [w.v, w.vBias], o: [w.o, w.oBias],
        nHeads: o.nHeads, nKvHeads: o.nKvHeads, headDim: o.headDim, rope: o.rope, cacheK: ctx.state.k, cacheV: ctx.state.v,
        pastLen: ctx.pastLen, scale: o.scale ?? 1 / Math.sqrt(o.headDim),
      });
      if (y) return ops.reshape(y, [b, 1, y.shape[1]]);
    }
    if (L > 1) {
      // prefill: the whole half in one backend call where it has one (wasm: ops.attentionPrefill), else the ops below
      const y = this.prefill(h, ctx, undefined);
      if (y) return y;
    }
    const [qh, kh, vh] = ops.linearMany(h, [[w.q, w.qBias], [w.k, w.kBias], [w.v, w.vBias]]);
    let q = ops.reshape(qh, [b, L, o.nHeads, o.headDim]);
    let k = ops.reshape(kh, [b, L, o.nKvHeads, o.headDim]);
    const v = ops.reshape(vh, [b, L, o.nKvHeads, o.headDim]);
    const past = ctx.state ? ctx.pastLen : new Array(b).fill(0);
    if (o.rope) {
      const pos = new Int32Array(b * L);
      for (let r = 0; r < b; r++) for (let t = 0; t < L; t++) pos[r * L + t] = past[r] + t;
      q = ops.rope(q, pos, o.rope.rotaryDim, o.rope.theta);
      k = ops.rope(k, pos, o.rope.rotaryDim, o.rope.theta);
    }
    let cacheK: Tensor | null = null;
    let cacheV: Tensor | null = null;
    if (ctx.state) {
      this.reserve(ctx.state, Math.max(...past) + L);
      cacheK = ctx.state.k;
      cacheV = ctx.state.v;
    }
    const a = ops.attention({ q, k, v, cacheK, cacheV, pastLen: past, scale: o.scale ?? 1 / Math.sqrt(o.headDim) });
    return ops.linear(ops.reshape(a, [b, L, o.nHeads * o.headDim]), w.o, w.oBias);
  }
}
