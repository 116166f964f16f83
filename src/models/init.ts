/**
 * Fresh Mamba-1 weights, initialised as HF `MambaPreTrainedModel._init_weights` / the official
 * `Mamba.__init__` do (reference §1.7), from a seeded generator so a run can be repeated:
 *   embedding ~ N(0, initializer_range);  Linear weights ~ U(±1/√fan_in) (PyTorch default, kaiming a=√5);
 *   A_log = log(1..N) per channel (S4D-Real);  D = 1;  conv ~ U(±1/√K), bias 0;
 *   dt_proj.weight ~ U(±R^-½);  dt_proj.bias = softplus⁻¹(dt), dt log-uniform in [dt_min, dt_max], floored.
 * Returns checkpoint tensors under the HF names, ready for `writeSafetensorsAtomic`.
 */
import { Rng } from '../generate/rng.js';
import type { WritableTensor } from '../io/safetensors.js';
import type { MambaConfig } from './mamba.js';

export interface InitOptions {
  seed?: number;
  initializerRange?: number;
  dtMin?: number;
  dtMax?: number;
  dtFloor?: number;
}

export function initMambaWeights(c: MambaConfig, opts: InitOptions = {}): Record<string, WritableTensor> {
  const rng = new Rng(opts.seed ?? 0);
  const { hiddenSize: H, innerSize: D, stateSize: N, dtRank: R, convKernel: K, vocabSize: V } = c;
  const uniform = (n: number, bound: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (rng.next() * 2 - 1) * bound;
    return a;
  };
  const normal = (n: number, std: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = std * Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
    return a;
  };
  const f32 = (shape: number[], data: Float32Array): WritableTensor => ({ dtype: 'F32', shape, data });
  const t: Record<string, WritableTensor> = {};
  t['backbone.embeddings.weight'] = f32([V, H], normal(V * H, opts.initializerRange ?? 0.1));
  const [dtMin, dtMax, floor] = [opts.dtMin ?? 0.001, opts.dtMax ?? 0.1, opts.dtFloor ?? 1e-4];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `backbone.layers.${i}.`;
    const m = `${p}mixer.`;
    t[`${p}norm.weight`] = f32([H], new Float32Array(H).fill(1));
    t[`${m}in_proj.weight`] = f32([2 * D, H], uniform(2 * D * H, 1 / Math.sqrt(H)));
    if (c.useBias) t[`${m}in_proj.bias`] = f32([2 * D], new Float32Array(2 * D));
    t[`${m}conv1d.weight`] = f32([D, 1, K], uniform(D * K, 1 / Math.sqrt(K)));
    if (c.useConvBias) t[`${m}conv1d.bias`] = f32([D], new Float32Array(D));
    t[`${m}x_proj.weight`] = f32([R + 2 * N, D], uniform((R + 2 * N) * D, 1 / Math.sqrt(D)));
    t[`${m}dt_proj.weight`] = f32([D, R], uniform(D * R, R ** -0.5));
    const dtBias = new Float32Array(D);
    for (let d = 0; d < D; d++) {
      const dt = Math.max(floor, Math.exp(rng.next() * (Math.log(dtMax) - Math.log(dtMin)) + Math.log(dtMin)));
      dtBias[d] = dt + Math.log(-Math.expm1(-dt)); // softplus⁻¹(dt)
    }
    t[`${m}dt_proj.bias`] = f32([D], dtBias);
    const Alog = new Float32Array(D * N);
    for (let d = 0; d < D; d++) for (let n = 0; n < N; n++) Alog[d * N + n] = Math.log(n + 1);
    t[`${m}A_log`] = f32([D, N], Alog);
    t[`${m}D`] = f32([D], new Float32Array(D).fill(1));
    t[`${m}out_proj.weight`] = f32([H, D], uniform(H * D, 1 / Math.sqrt(D)));
    if (c.useBias) t[`${m}out_proj.bias`] = f32([H], new Float32Array(H));
  }
  t['backbone.norm_f.weight'] = f32([H], new Float32Array(H).fill(1));
  if (!c.tieEmbeddings) t['lm_head.weight'] = f32([V, H], normal(V * H, opts.initializerRange ?? 0.1));
  return t;
}

/** The HF config.json for a Mamba config (what `save_pretrained` would write). */
export function mambaConfigJson(c: MambaConfig): Record<string, unknown> {
  return {
    architectures: ['MambaForCausalLM'],
    model_type: 'mamba',
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.innerSize,
    state_size: c.stateSize,
    num_hidden_layers: c.numLayers,
    conv_kernel: c.convKernel,
    expand: c.innerSize / c.hiddenSize,
    time_step_rank: c.dtRank,
    use_bias: c.useBias,
    use_conv_bias: c.useConvBias,
    layer_norm_epsilon: c.normEps,
    tie_word_embeddings: c.tieEmbeddings,
    hidden_act: 'silu',
    residual_in_fp32: true,
    eos_token_id: c.eosTokenIds.length === 1 ? c.eosTokenIds[0] : c.eosTokenIds,
    bos_token_id: 0,
    pad_token_id: 0,
    ...(c.mixer === 's4d' ? { mamba_ts: { mixer: 's4d', note: 'LTI S4D layer in place of S6 (ablation); not loadable by HF transformers' } } : {}),
  };
}
