/**
 * IBM Granite 4.0-H (`model_type: "granitemoehybrid"`), numerically as HF `GraniteMoeHybridForCausalLM`:
 * a Mamba-2 / attention hybrid with a shared SwiGLU MLP (plus, optionally, a top-k mixture of experts)
 * after every mixer, and the muP multipliers of the Granite family.
 *
 * Glossary (code ↔ HF config):
 *   H   model width                hiddenSize     hidden_size
 *   I   Mamba inner width (nh·P)   inner          mamba_expand · hidden_size
 *   nh  Mamba heads                nHeads         mamba_n_heads
 *   P   Mamba head dim             headDim        mamba_d_head ("auto" = I / nh)
 *   G   B/C groups                 nGroups        mamba_n_groups
 *   N   SSM state size             dState         mamba_d_state
 *   K   conv width                 convKernel     mamba_d_conv
 *   Hq  attention heads            attnHeads      num_attention_heads   (head dim hd = H / Hq)
 *   Hkv KV heads                   kvHeads        num_key_value_heads
 *   E   routed experts             numExperts     num_local_experts (0: shared MLP only)
 *   k   experts per token          topK           num_experts_per_tok
 *   Ie  expert width               expertSize     intermediate_size
 *   Is  shared MLP width           sharedSize     shared_intermediate_size
 *
 *   x  = embed(ids) · embedding_multiplier
 *   per layer i (layer_types[i]: "mamba"/"linear_attention" or "attention"/"full_attention"):
 *     x ← x + residual_multiplier · mixer(RMSNorm(x))     mixer: Bamba's Mamba-2 mixer (HF semantics, full-width
 *                                                          gated norm) or GQA attention with softmax scale
 *                                                          attention_multiplier, RoPE over the whole head when
 *                                                          position_embedding_type = "rope", else none (NoPE)
 *     x ← x + residual_multiplier · (MoE(h) + shared_mlp(h)),  h = RMSNorm(x)
 *        MoE: router logits → top-k → softmax over those k; expert e = down_e(silu(gate_e h) · up_e h)
 *        shared_mlp: output_linear(silu(first half) · second half of input_linear(h))
 *   logits = lm_head(RMSNorm_f(x)) / logits_scaling
 *
 * Checkpoint: model.embed_tokens, model.layers.i.{input_layernorm, mamba.* | self_attn.{q,k,v,o}_proj,
 * post_attention_layernorm, shared_mlp.{input,output}_linear, block_sparse_moe.{router.layer, input_linear,
 * output_linear}}, model.norm, lm_head. Experts are packed: input_linear [E, 2·Ie, H] (gate rows, then up rows),
 * output_linear [E, H, Ie]; they are split here into per-expert views without copying.
 */
import type { Backend } from '../backend/backend.js';
import { cpu } from '../backend/cpu/index.js';
import type { WeightSource } from '../io/weights.js';
import { Attention } from '../nn/attention.js';
import type { Mamba2Dims } from '../nn/mamba2.js';
import type { Mixer } from '../nn/mixer.js';
import { GatedMLP } from '../nn/mlp.js';
import { MoE, SumOf } from '../nn/moe.js';
import type { Tensor } from '../tensor/tensor.js';
import { ConfigFields, type RawConfig } from './config.js';
import { DecoderLM, type Sublayer } from './decoder.js';
import { ModelError } from './errors.js';
import { WeightLoader } from './loader.js';
import { loadMamba2Mixer, mamba2MixerOptions, type Mamba2Options } from './mamba2.js';

export type GraniteLayerType = 'mamba' | 'attention';

export interface GraniteHybridConfig extends Mamba2Dims {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  layerTypes: GraniteLayerType[];
  normEps: number;
  // Mamba-2 layers
  chunkSize: number;
  useBias: boolean;
  useConvBias: boolean;
  dtLimit: [number, number];
  // attention layers
  attnHeads: number;
  kvHeads: number;
  attnHeadDim: number;
  attentionBias: boolean;
  /** RoPE base; null = NoPE */
  ropeTheta: number | null;
  // feed-forward
  numExperts: number;
  topK: number;
  expertSize: number;
  sharedSize: number;
  // muP multipliers
  embeddingMultiplier: number;
  residualMultiplier: number;
  attentionMultiplier: number;
  logitsScaling: number;
  tieEmbeddings: boolean;
  eosTokenIds: number[];
}

const LAYER_TYPES: Record<string, GraniteLayerType> = {
  mamba: 'mamba',
  linear_attention: 'mamba', // transformers ≥ 5.13 writes the legacy names this way
  attention: 'attention',
  full_attention: 'attention',
};

export function parseGraniteHybridConfig(raw: RawConfig, file = 'config.json'): GraniteHybridConfig {
  const f = new ConfigFields(raw, file);
  const positive = (x: number) => x > 0;
  f.requireSilu();
  const H = f.int('hidden_size');
  const numLayers = f.int('num_hidden_layers');

  // layer_types (alias layers_block_type); absent = every layer Mamba
  const ltKey = f.has('layer_types') ? 'layer_types' : f.has('layers_block_type') ? 'layers_block_type' : null;
  let layerTypes: GraniteLayerType[];
  if (ltKey === null) {
    layerTypes = new Array(numLayers).fill('mamba');
  } else {
    const v = raw[ltKey];
    const want = `a list of ${numLayers} entries (num_hidden_layers), each "mamba"/"linear_attention" or "attention"/"full_attention"`;
    if (!Array.isArray(v)) throw new ModelError(`${file}: field "${ltKey}" is ${JSON.stringify(v)}; expected ${want}`);
    if (v.length !== numLayers) throw new ModelError(`${file}: field "${ltKey}" has ${v.length} entries; expected ${want}`);
    layerTypes = v.map((t, i) => {
      const k = typeof t === 'string' ? LAYER_TYPES[t] : undefined;
      if (!k) throw new ModelError(`${file}: field "${ltKey}" entry ${i} is ${JSON.stringify(t)}; expected "mamba"/"linear_attention" or "attention"/"full_attention"`);
      return k;
    });
  }

  // Mamba-2 mixer (Bamba's)
  const expand = f.num('mamba_expand', 2, positive, 'a positive number');
  const inner = Math.floor(expand * H);
  const nHeads = f.int('mamba_n_heads', 128);
  if (inner % nHeads !== 0) {
    throw new ModelError(`${file}: field "mamba_n_heads" is ${nHeads}, which does not divide mamba_expand × hidden_size = ${inner}; expected a divisor of ${inner}`);
  }
  const headDim = raw.mamba_d_head === 'auto' || !f.has('mamba_d_head') ? inner / nHeads : f.int('mamba_d_head');
  if (nHeads * headDim !== inner) {
    throw new ModelError(`${file}: mamba_n_heads × mamba_d_head = ${nHeads} × ${headDim} = ${nHeads * headDim}, but mamba_expand × hidden_size = ${inner}; expected mamba_d_head = ${inner / nHeads} (or "auto")`);
  }
  const nGroups = f.int('mamba_n_groups', 1);
  if (nHeads % nGroups !== 0) throw new ModelError(`${file}: field "mamba_n_heads" ${nHeads} is not a multiple of field "mamba_n_groups" ${nGroups}; expected mamba_n_groups to divide mamba_n_heads`);

  // attention (checked only when some layer is attention, as HF constructs it only there)
  const hasAttention = layerTypes.includes('attention');
  const attnHeads = f.int('num_attention_heads', 32);
  const kvHeads = f.has('num_key_value_heads') ? f.int('num_key_value_heads') : attnHeads;
  if (hasAttention) {
    if (H % attnHeads !== 0) throw new ModelError(`${file}: field "num_attention_heads" is ${attnHeads}, which does not divide hidden_size ${H}; expected a divisor of ${H}`);
    if (attnHeads % kvHeads !== 0) throw new ModelError(`${file}: field "num_attention_heads" ${attnHeads} is not a multiple of field "num_key_value_heads" ${kvHeads}; expected num_key_value_heads to divide num_attention_heads`);
  }
  const pet = raw.position_embedding_type;
  if (pet !== undefined && pet !== null && pet !== 'rope' && pet !== 'nope') {
    throw new ModelError(`${file}: field "position_embedding_type" is ${JSON.stringify(pet)}; expected "rope", "nope" or null`);
  }
  let ropeTheta: number | null = null;
  if (pet === 'rope') {
    // transformers 5 writes rope_parameters {rope_type, rope_theta}; 4.x a top-level rope_theta (+ rope_scaling)
    const rp = f.sub('rope_parameters');
    const type = rp.str('rope_type', 'default');
    if (type !== 'default') throw new ModelError(`${file}: field "rope_parameters.rope_type" is "${type}"; only "default" is supported`);
    const scaling = raw.rope_scaling;
    if (scaling !== undefined && scaling !== null) {
      const t = (scaling as { rope_type?: unknown; type?: unknown }).rope_type ?? (scaling as { type?: unknown }).type;
      if (t !== 'default') throw new ModelError(`${file}: field "rope_scaling" is ${JSON.stringify(scaling)}; only null (or rope_type "default") is supported`);
    }
    const prf = rp.num('partial_rotary_factor', f.num('partial_rotary_factor', 1));
    if (prf !== 1) throw new ModelError(`${file}: field "partial_rotary_factor" is ${prf}; Granite rotates the whole head, expected 1`);
    ropeTheta = rp.has('rope_theta') ? rp.num('rope_theta', undefined, positive, 'a positive number') : f.num('rope_theta', 10000, positive, 'a positive number');
  }

  // feed-forward
  const numExperts = f.int('num_local_experts', 8, 0);
  const topK = numExperts > 0 ? f.int('num_experts_per_tok', 2) : 0;
  if (topK > numExperts) throw new ModelError(`${file}: field "num_experts_per_tok" is ${topK}, more than num_local_experts ${numExperts}; expected at most ${numExperts}`);

  return {
    vocabSize: f.int('vocab_size'),
    hiddenSize: H,
    numLayers,
    layerTypes,
    normEps: f.num('rms_norm_eps', 1e-6, positive, 'a positive number'),
    inner,
    nHeads,
    headDim,
    nGroups,
    dState: f.int('mamba_d_state', 256),
    convKernel: f.int('mamba_d_conv', 4),
    chunkSize: f.int('mamba_chunk_size', 256),
    useBias: f.bool('mamba_proj_bias', false),
    useConvBias: f.bool('mamba_conv_bias', true),
    dtLimit: f.range('time_step_limit', [0, Infinity]),
    attnHeads,
    kvHeads,
    attnHeadDim: H / attnHeads,
    attentionBias: f.bool('attention_bias', false),
    ropeTheta,
    numExperts,
    topK,
    expertSize: numExperts > 0 ? f.int('intermediate_size', 11008) : 0,
    sharedSize: f.int('shared_intermediate_size', 1024),
    embeddingMultiplier: f.num('embedding_multiplier', 1),
    residualMultiplier: f.num('residual_multiplier', 1),
    attentionMultiplier: f.num('attention_multiplier', 1),
    logitsScaling: f.num('logits_scaling', 1, (x) => Number.isFinite(x) && x !== 0, 'a non-zero number'),
    tieEmbeddings: f.bool('tie_word_embeddings', false),
    eosTokenIds: f.ids('eos_token_id'),
  };
}

export class GraniteHybridLM extends DecoderLM {
  constructor(readonly config: GraniteHybridConfig, weights: WeightSource, opts: Mamba2Options = {}) {
    const c = config;
    const backend: Backend = opts.backend ?? cpu;
    const { hiddenSize: H, vocabSize: V } = c;
    const w = new WeightLoader(weights, backend,
      `hidden_size=${H}, mamba_n_heads=${c.nHeads}, mamba_d_head=${c.headDim}, mamba_n_groups=${c.nGroups}, mamba_d_state=${c.dState}, ` +
      `mamba_d_conv=${c.convKernel}, num_attention_heads=${c.attnHeads}, num_key_value_heads=${c.kvHeads}, num_local_experts=${c.numExperts}, ` +
      `intermediate_size=${c.expertSize}, shared_intermediate_size=${c.sharedSize}, vocab_size=${V}`);
    const embed = w.matrix('model.embed_tokens.weight', [V, H]);
    const mixerOpts = mamba2MixerOptions(c, opts, 'full');
    const rm = c.residualMultiplier;

    const loadAttention = (p: string): Attention => {
      const qDim = c.attnHeads * c.attnHeadDim;
      const kvDim = c.kvHeads * c.attnHeadDim;
      const b = c.attentionBias;
      return new Attention({
        q: w.matrix(`${p}q_proj.weight`, [qDim, H]),
        k: w.matrix(`${p}k_proj.weight`, [kvDim, H]),
        v: w.matrix(`${p}v_proj.weight`, [kvDim, H]),
        o: w.matrix(`${p}o_proj.weight`, [H, qDim]),
        qBias: w.maybe(b, `${p}q_proj.bias`, [qDim]),
        kBias: w.maybe(b, `${p}k_proj.bias`, [kvDim]),
        vBias: w.maybe(b, `${p}v_proj.bias`, [kvDim]),
        oBias: w.maybe(b, `${p}o_proj.bias`, [H]),
      }, {
        nHeads: c.attnHeads,
        nKvHeads: c.kvHeads,
        headDim: c.attnHeadDim,
        rope: c.ropeTheta === null ? null : { rotaryDim: c.attnHeadDim, theta: c.ropeTheta },
        scale: c.attentionMultiplier,
      }, backend);
    };

    /** rows [from, from + rows) of the packed checkpoint tensor `name` (row-major, `cols` columns) as a [rows, cols] matrix */
    const view = (name: string, from: number, rows: number, cols: number): Tensor => w.slice(name, from * cols, [rows, cols]);

    const loadFFN = (p: string): Mixer => {
      const S = c.sharedSize;
      const sharedIn = `${p}shared_mlp.input_linear.weight`;
      w.packed(sharedIn, [2 * S, H]);
      const shared = new GatedMLP({
        gate: view(sharedIn, 0, S, H),
        up: view(sharedIn, S, S, H),
        down: w.matrix(`${p}shared_mlp.output_linear.weight`, [H, S]),
      });
      if (c.numExperts === 0) return shared;
      const E = c.numExperts;
      const Ie = c.expertSize;
      const m = `${p}block_sparse_moe.`;
      const inp = `${m}input_linear.weight`;
      const out = `${m}output_linear.weight`;
      w.packed(inp, [E, 2 * Ie, H]);
      w.packed(out, [E, H, Ie]);
      const experts = Array.from({ length: E }, (_, e) => new GatedMLP({
        gate: view(inp, e * 2 * Ie, Ie, H),
        up: view(inp, e * 2 * Ie + Ie, Ie, H),
        down: view(out, e * H, H, Ie),
      }));
      const moe = new MoE(w.matrix(`${m}router.layer.weight`, [E, H]), experts, { topK: c.topK, routing: 'topk-softmax' });
      return new SumOf([moe, shared]);
    };

    const blocks: Sublayer[][] = c.layerTypes.map((type, i) => {
      const p = `model.layers.${i}.`;
      const mixer: Mixer = type === 'mamba' ? loadMamba2Mixer(w, `${p}mamba.`, c, mixerOpts) : loadAttention(`${p}self_attn.`);
      return [
        { norm: w.get(`${p}input_layernorm.weight`, [H]), mixer, residualScale: rm },
        { norm: w.get(`${p}post_attention_layernorm.weight`, [H]), mixer: loadFFN(p), residualScale: rm },
      ];
    });

    const pattern = c.layerTypes.map((t) => (t === 'mamba' ? 'M' : 'A')).join('');
    const nAttn = c.layerTypes.filter((t) => t === 'attention').length;
    super({
      params: w.params,
      modelType: 'granitemoehybrid',
      fingerprint: `granitemoehybrid:H${H}:L${c.numLayers}:${pattern}:nh${c.nHeads}:P${c.headDim}:G${c.nGroups}:N${c.dState}:K${c.convKernel}` +
        `:Hq${c.attnHeads}:Hkv${c.kvHeads}:E${c.numExperts}:k${c.topK}:Ie${c.expertSize}:Is${c.sharedSize}:V${V}`,
      backend,
      vocabSize: V,
      eosTokenIds: c.eosTokenIds,
      embed,
      embedScale: c.embeddingMultiplier,
      blocks,
      normEps: c.normEps,
      finalNorm: w.get('model.norm.weight', [H]),
      lmHead: c.tieEmbeddings ? embed : w.matrix('lm_head.weight', [V, H]),
      logitsDivisor: c.logitsScaling,
      hiddenStates: 'embeddings-first',
      summary: {
        architecture: 'Granite 4.0-H (Mamba-2 + attention hybrid, shared MLP' + (c.numExperts > 0 ? ' + MoE)' : ')'),
        hidden_size: H,
        num_layers: c.numLayers,
        layer_types: pattern,
        mamba_layers: c.numLayers - nAttn,
        attention_layers: nAttn,
        mamba_n_heads: c.nHeads,
        mamba_d_head: c.headDim,
        mamba_n_groups: c.nGroups,
        mamba_d_state: c.dState,
        mamba_d_conv: c.convKernel,
        mamba_chunk_size: mixerOpts.chunkSize,
        num_attention_heads: c.attnHeads,
        num_key_value_heads: c.kvHeads,
        position_embedding: c.ropeTheta === null ? 'none (NoPE)' : `RoPE, theta ${c.ropeTheta}`,
        num_local_experts: c.numExperts,
        num_experts_per_tok: c.topK,
        intermediate_size: c.expertSize,
        shared_intermediate_size: c.sharedSize,
        embedding_multiplier: c.embeddingMultiplier,
        residual_multiplier: c.residualMultiplier,
        attention_multiplier: c.attentionMultiplier,
        logits_scaling: c.logitsScaling,
        vocab_size: V,
        tied_embeddings: c.tieEmbeddings,
        gated_norm: mixerOpts.normGroupSize === c.inner ? 'full width' : 'per group',
        prefill_ssd: mixerOpts.algorithm,
      },
    });
  }
}
