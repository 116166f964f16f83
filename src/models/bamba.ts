/**
 * Bamba (IBM), numerically as HF `BambaForCausalLM`: a decoder whose layers are Mamba-2 mixers except at
 * `attn_layer_indices`, where they are GQA attention with RoPE on half of each head; every layer also has
 * a SwiGLU MLP:
 *   x ← x + (Mamba2Mixer | Attention)(RMSNorm(x))      input_layernorm
 *   x ← x + MLP(RMSNorm(x))                            pre_ff_layernorm
 *   logits = lm_head(RMSNorm(x))                        final_layernorm
 * The state holds conv + SSM state for Mamba layers and a KV cache for attention layers.
 */
import { cpu } from '../backend/cpu/index.js';
import type { WeightSource } from '../io/weights.js';
import type { Mixer } from '../nn/mixer.js';
import { loadAttention, loadGatedMLP, parseHeads, parseRope } from './blocks.js';
import { ConfigFields, type RawConfig } from './config.js';
import { DecoderLM, type Sublayer } from './decoder.js';
import { ModelError } from './errors.js';
import { WeightLoader } from './loader.js';
import { loadMamba2Mixer, mamba2MixerOptions, type Mamba2Options } from './mamba2.js';
import type { Mamba2Dims } from '../nn/mamba2.js';

export interface BambaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  /** per layer */
  layerTypes: Array<'mamba' | 'attention'>;
  attention: { nHeads: number; nKvHeads: number; headDim: number; rope: { rotaryDim: number; theta: number } };
  mamba: Mamba2Dims & { chunkSize: number; useBias: boolean; useConvBias: boolean; dtLimit: [number, number] };
  normEps: number;
  tieEmbeddings: boolean;
  eosTokenIds: number[];
}

export function parseBambaConfig(raw: RawConfig, file = 'config.json'): BambaConfig {
  const f = new ConfigFields(raw, file);
  f.requireSilu();
  const H = f.int('hidden_size');
  const n = f.int('num_hidden_layers');
  const attnIdx = raw.attn_layer_indices ?? [];
  if (!Array.isArray(attnIdx) || !attnIdx.every((i) => Number.isInteger(i) && i >= 0 && i < n)) {
    throw new ModelError(`${file}: field "attn_layer_indices" is ${JSON.stringify(attnIdx)}; expected layer indices in [0, ${n})`);
  }
  const heads = parseHeads(f, H);
  const inner = Math.floor(f.num('mamba_expand', 2, (x) => x > 0, 'a positive number') * H);
  const nHeads = f.int('mamba_n_heads', 128);
  const headDim = raw.mamba_d_head === 'auto' || !f.has('mamba_d_head') ? inner / nHeads : f.int('mamba_d_head');
  if (nHeads * headDim !== inner) {
    throw new ModelError(`${file}: mamba_n_heads × mamba_d_head = ${nHeads} × ${headDim} = ${nHeads * headDim}, but mamba_expand × hidden_size = ${inner}`);
  }
  const nGroups = f.int('mamba_n_groups', 1);
  if (nHeads % nGroups !== 0) throw new ModelError(`${file}: mamba_n_heads ${nHeads} is not a multiple of mamba_n_groups ${nGroups}`);
  if (f.bool('attention_bias', false) || f.bool('mlp_bias', false)) throw new ModelError(`${file}: attention_bias / mlp_bias are not supported for Bamba (HF hard-codes them off)`);
  return {
    vocabSize: f.int('vocab_size'),
    hiddenSize: H,
    intermediateSize: f.int('intermediate_size'),
    numLayers: n,
    layerTypes: Array.from({ length: n }, (_, i) => ((attnIdx as number[]).includes(i) ? 'attention' : 'mamba')),
    attention: { ...heads, rope: parseRope(f, heads.headDim, { theta: 10000, partial: 0.5 }) },
    mamba: {
      inner, nHeads, headDim, nGroups,
      dState: f.int('mamba_d_state', 256),
      convKernel: f.int('mamba_d_conv', 4),
      chunkSize: f.int('mamba_chunk_size', 256),
      useBias: f.bool('mamba_proj_bias', false),
      useConvBias: f.bool('mamba_conv_bias', true),
      dtLimit: f.range('time_step_limit', [0, Infinity]),
    },
    normEps: f.num('rms_norm_eps', 1e-5, (x) => x > 0, 'a positive number'),
    tieEmbeddings: f.bool('tie_word_embeddings', false),
    eosTokenIds: f.ids('eos_token_id'),
  };
}

export class BambaLM extends DecoderLM {
  constructor(readonly config: BambaConfig, weights: WeightSource, opts: Mamba2Options = {}) {
    const c = config;
    const backend = opts.backend ?? cpu;
    const { hiddenSize: H, vocabSize: V, intermediateSize: I } = c;
    const m = c.mamba;
    const w = new WeightLoader(weights, backend,
      `hidden_size=${H}, mamba_n_heads=${m.nHeads}, mamba_d_head=${m.headDim}, mamba_n_groups=${m.nGroups}, mamba_d_state=${m.dState}, ` +
        `num_attention_heads=${c.attention.nHeads}, num_key_value_heads=${c.attention.nKvHeads}, intermediate_size=${I}, vocab_size=${V}`);
    const mixerOpts = mamba2MixerOptions({ ...m, normEps: c.normEps }, opts, 'full');
    const embed = w.matrix('model.embed_tokens.weight', [V, H]);
    const blocks: Sublayer[][] = c.layerTypes.map((type, i) => {
      const p = `model.layers.${i}.`;
      const mixer: Mixer = type === 'attention'
        ? loadAttention(w, `${p}self_attn.`, H, c.attention, { qkv: false, o: false })
        : loadMamba2Mixer(w, `${p}mamba.`, { ...m, hiddenSize: H }, mixerOpts);
      return [
        { norm: w.get(`${p}input_layernorm.weight`, [H]), mixer },
        { norm: w.get(`${p}pre_ff_layernorm.weight`, [H]), mixer: loadGatedMLP(w, `${p}feed_forward.`, H, I, false) },
      ];
    });
    super({
      params: w.params,
      modelType: 'bamba',
      fingerprint: `bamba:H${H}:I${I}:${c.layerTypes.map((t) => (t === 'attention' ? 'A' : 'M')).join('')}:nh${m.nHeads}:P${m.headDim}:G${m.nGroups}:N${m.dState}:h${c.attention.nHeads}:kv${c.attention.nKvHeads}:V${V}`,
      backend,
      vocabSize: V,
      eosTokenIds: c.eosTokenIds,
      embed,
      blocks,
      normEps: c.normEps,
      finalNorm: w.get('model.final_layernorm.weight', [H]),
      lmHead: c.tieEmbeddings ? embed : w.matrix('lm_head.weight', [V, H]),
      hiddenStates: 'embeddings-first',
      summary: {
        architecture: 'Bamba (Mamba-2 + attention hybrid)',
        hidden_size: H,
        num_layers: c.numLayers,
        layer_types: c.layerTypes.join(','),
        mamba_heads: m.nHeads,
        mamba_head_dim: m.headDim,
        mamba_groups: m.nGroups,
        state_size: m.dState,
        attention_heads: `${c.attention.nHeads} (${c.attention.nKvHeads} KV), rotary ${c.attention.rope.rotaryDim}/${c.attention.headDim}`,
        intermediate_size: I,
        vocab_size: V,
      },
    });
  }
}
