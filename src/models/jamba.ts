/**
 * Jamba (AI21 Labs; Lieber et al. 2024, "Jamba: A Hybrid Transformer-Mamba Language Model"), numerically as
 * Hugging Face `JambaForCausalLM` computes it.
 *
 * Glossary (code ↔ HF config):
 *   H    model width                 hiddenSize     hidden_size
 *   D    Mamba inner width (E·H)     mambaInner     mamba_expand · hidden_size   (NOT intermediate_size)
 *   N    SSM state size              stateSize      mamba_d_state
 *   R    rank of Δ                   dtRank         mamba_dt_rank ("auto" = ⌈H/16⌉)
 *   K    conv width                  convKernel     mamba_d_conv
 *   I    MLP / expert width          ffnSize        intermediate_size
 *   Hq   query heads                 nHeads         num_attention_heads
 *   Hkv  key/value heads             nKvHeads       num_key_value_heads
 *   hd   head dim                    headDim        head_dim (default H / Hq)
 *   E    experts, k experts per token numExperts, topK  num_experts, num_experts_per_tok
 *
 * Layer i (HF JambaAttentionDecoderLayer / JambaMambaDecoderLayer), every RMSNorm with eps rms_norm_eps:
 *   x ← x + Mixer_i(RMSNorm_in(x))        Mixer_i = attention if i mod attn_layer_period = attn_layer_offset,
 *                                                    else the Mamba-1 mixer
 *   x ← x + FFN_i(RMSNorm_preff(x))       FFN_i = MoE (E experts) if i mod expert_layer_period = expert_layer_offset
 *                                                 and E > 1, else one SwiGLU MLP
 * Mamba-1 mixer as in `mamba.ts`, plus learnable RMSNorms on Δ' (R), B (N), C (N) after the x_proj split
 * (`dt_layernorm`, `b_layernorm`, `c_layernorm`), applied before dt_proj.
 * Attention: causal GQA without any positional encoding (NoPE), scale 1/√hd, no biases.
 * MoE: p = softmax(router(x)) over all E experts, the k largest kept with NO renormalisation;
 *   out = Σ p_e · MLP_e(x).
 * Head: logits = lm_head(RMSNorm_final(x)); lm_head untied unless tie_word_embeddings.
 * output_hidden_states: the embedding, the outputs of layers 0…n−2, then the final-normed output.
 *
 * `sliding_window` is ignored, as HF's eager/SDPA attention ignores it.
 */
import { cpu } from '../backend/cpu/index.js';
import { prefillOptions } from '../api/load-options.js';
import type { WeightSource } from '../io/weights.js';
import type { Mixer } from '../nn/mixer.js';
import { GatedMLP } from '../nn/mlp.js';
import { MoE } from '../nn/moe.js';
import type { Tensor } from '../tensor/tensor.js';
import { ConfigFields, type RawConfig } from './config.js';
import { DecoderLM, type Sublayer } from './decoder.js';
import { ModelError } from './errors.js';
import { WeightLoader } from './loader.js';
import { loadMamba1Mixer, type MambaOptions } from './mamba.js';
import { loadAttention, loadGatedMLP } from './blocks.js';

export interface JambaConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  /** 'attention' or 'mamba' per layer (HF `layers_block_type`) */
  layerTypes: Array<'attention' | 'mamba'>;
  /** experts of each layer's feed-forward (HF `layers_num_experts`); 1 = a dense MLP */
  layerExperts: number[];
  ffnSize: number;
  numExperts: number;
  topK: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  mambaInner: number;
  stateSize: number;
  convKernel: number;
  dtRank: number;
  /** biases of in_proj / out_proj (mamba_proj_bias) */
  mambaProjBias: boolean;
  mambaConvBias: boolean;
  normEps: number;
  tieEmbeddings: boolean;
  eosTokenIds: number[];
}

/** Parse an HF `model_type: "jamba"` config.json (defaults as HF's JambaConfig). */
export function parseJambaConfig(raw: RawConfig, file = 'config.json'): JambaConfig {
  const f = new ConfigFields(raw, file);
  const fail = (msg: string): never => {
    throw new ModelError(`${file}: ${msg}`);
  };
  f.requireSilu();

  const H = f.int('hidden_size');
  const numLayers = f.int('num_hidden_layers');

  const period = (p: string, o: string, dp: number, dO: number): [number, number] => {
    const P = f.int(p, dp);
    const O = f.int(o, dO, 0);
    if (O >= P) fail(`field "${o}" is ${O}; expected an integer in [0, ${P - 1}] (smaller than "${p}" = ${P})`);
    return [P, O];
  };
  const [attnPeriod, attnOffset] = period('attn_layer_period', 'attn_layer_offset', 8, 4);
  const [expertPeriod, expertOffset] = period('expert_layer_period', 'expert_layer_offset', 2, 1);
  const numExperts = f.int('num_experts', 16);
  const topK = f.int('num_experts_per_tok', 2);
  const layerTypes = Array.from({ length: numLayers }, (_, i) => (i % attnPeriod === attnOffset ? 'attention' as const : 'mamba' as const));
  const layerExperts = Array.from({ length: numLayers }, (_, i) => (i % expertPeriod === expertOffset ? numExperts : 1));
  if (layerExperts.some((e) => e > 1) && topK > numExperts) {
    fail(`field "num_experts_per_tok" is ${topK}; expected an integer in [1, ${numExperts}] (at most "num_experts")`);
  }

  const nHeads = f.int('num_attention_heads');
  // HF: a missing field means 8, an explicit null means num_attention_heads (no GQA)
  const nKvHeads = raw.num_key_value_heads === null ? nHeads : f.int('num_key_value_heads', 8);
  if (nHeads % nKvHeads !== 0) {
    fail(`field "num_key_value_heads" is ${nKvHeads}; expected a divisor of "num_attention_heads" = ${nHeads}`);
  }
  let headDim: number;
  if (f.has('head_dim')) headDim = f.int('head_dim');
  else {
    if (H % nHeads !== 0) fail(`field "num_attention_heads" is ${nHeads}; expected a divisor of "hidden_size" = ${H} (or an explicit "head_dim")`);
    headDim = H / nHeads;
  }

  const expand = f.int('mamba_expand', 2);
  const dtRaw = raw.mamba_dt_rank;
  const dtRank = dtRaw === undefined || dtRaw === null || dtRaw === 'auto' ? Math.ceil(H / 16) : f.int('mamba_dt_rank');

  return {
    vocabSize: f.int('vocab_size'),
    hiddenSize: H,
    numLayers,
    layerTypes,
    layerExperts,
    ffnSize: f.int('intermediate_size'),
    numExperts,
    topK,
    nHeads,
    nKvHeads,
    headDim,
    mambaInner: expand * H,
    stateSize: f.int('mamba_d_state', 16),
    convKernel: f.int('mamba_d_conv', 4),
    dtRank,
    mambaProjBias: f.bool('mamba_proj_bias', false),
    mambaConvBias: f.bool('mamba_conv_bias', true),
    normEps: f.num('rms_norm_eps', 1e-6, (x) => x > 0, 'a positive number'),
    tieEmbeddings: f.bool('tie_word_embeddings', false),
    eosTokenIds: f.has('eos_token_id') ? f.ids('eos_token_id') : [2],
  };
}

export type JambaOptions = MambaOptions;

export class JambaLM extends DecoderLM {
  constructor(readonly config: JambaConfig, weights: WeightSource, opts: JambaOptions = {}) {
    const c = config;
    const backend = opts.backend ?? cpu;
    const scan = prefillOptions(backend, 'scan', opts.scan, 64);
    const { hiddenSize: H, mambaInner: D, stateSize: N, dtRank: R, convKernel: K, vocabSize: V, ffnSize: I } = c;
    const { nHeads: Hq, nKvHeads: Hkv, headDim: hd } = c;
    const w = new WeightLoader(weights, backend,
      `hidden_size=${H}, mamba_expand·hidden_size=${D}, mamba_d_state=${N}, mamba_dt_rank=${R}, mamba_d_conv=${K}, ` +
      `intermediate_size=${I}, num_attention_heads=${Hq}, num_key_value_heads=${Hkv}, head_dim=${hd}, num_experts=${c.numExperts}, vocab_size=${V}`);

    const mlp = (p: string): GatedMLP => loadGatedMLP(w, p, H, I, false);
    const experts = (p: string, E: number): GatedMLP[] => {
      // HF ≥ 5 may hold the experts fused: gate_up_proj [E, 2I, H] (gate rows first), down_proj [E, H, I]
      if (!w.has(`${p}experts.0.gate_proj.weight`) && w.has(`${p}experts.gate_up_proj`)) {
        const gu = `${p}experts.gate_up_proj`;
        const dn = `${p}experts.down_proj`;
        w.packed(gu, [E, 2 * I, H]);
        w.packed(dn, [E, H, I]);
        return Array.from({ length: E }, (_, e) => new GatedMLP({
          gate: w.slice(gu, e * 2 * I * H, [I, H]),
          up: w.slice(gu, (e * 2 + 1) * I * H, [I, H]),
          down: w.slice(dn, e * H * I, [H, I]),
        }));
      }
      return Array.from({ length: E }, (_, e) => mlp(`${p}experts.${e}.`));
    };

    const embed = w.matrix('model.embed_tokens.weight', [V, H]);
    const blocks: Sublayer[][] = c.layerTypes.map((type, i) => {
      const p = `model.layers.${i}.`;
      let mixer: Mixer;
      if (type === 'attention') {
        mixer = loadAttention(w, `${p}self_attn.`, H, { nHeads: Hq, nKvHeads: Hkv, headDim: hd, rope: null }, { qkv: false, o: false });
      } else {
        const m = `${p}mamba.`;
        mixer = loadMamba1Mixer(w, m, {
          hiddenSize: H, innerSize: D, stateSize: N, dtRank: R, convKernel: K, useBias: c.mambaProjBias, useConvBias: c.mambaConvBias,
        }, scan, {
          dt: w.get(`${m}dt_layernorm.weight`, [R]),
          B: w.get(`${m}b_layernorm.weight`, [N]),
          C: w.get(`${m}c_layernorm.weight`, [N]),
          eps: c.normEps,
        });
      }
      const E = c.layerExperts[i];
      const ff = `${p}feed_forward.`;
      const ffn: Mixer = E > 1
        ? new MoE(w.matrix(`${ff}router.weight`, [E, H]), experts(ff, E), { topK: c.topK, routing: 'softmax-topk' })
        : mlp(ff);
      return [
        { norm: w.get(`${p}input_layernorm.weight`, [H]), mixer },
        { norm: w.get(`${p}pre_ff_layernorm.weight`, [H]), mixer: ffn },
      ];
    });

    const pattern = c.layerTypes.map((t, i) => (t === 'attention' ? 'A' : 'M') + (c.layerExperts[i] > 1 ? 'e' : '')).join('');
    const finalNorm: Tensor = w.get('model.final_layernorm.weight', [H]);
    super({
      params: w.params,
      modelType: 'jamba',
      fingerprint: `jamba:H${H}:D${D}:N${N}:K${K}:R${R}:I${I}:q${Hq}:kv${Hkv}:hd${hd}:E${c.numExperts}k${c.topK}:${pattern}:V${V}`,
      backend,
      vocabSize: V,
      eosTokenIds: c.eosTokenIds,
      embed,
      blocks,
      normEps: c.normEps,
      finalNorm,
      lmHead: c.tieEmbeddings ? embed : w.matrix('lm_head.weight', [V, H]),
      hiddenStates: 'embeddings-first',
      summary: {
        architecture: 'Jamba (Mamba-1 + NoPE attention hybrid, MoE feed-forward)',
        hidden_size: H,
        num_layers: c.numLayers,
        layers: c.layerTypes.map((t, i) => `${t}${c.layerExperts[i] > 1 ? '+moe' : '+mlp'}`),
        mamba_inner_size: D,
        state_size: N,
        time_step_rank: R,
        conv_kernel: K,
        num_attention_heads: Hq,
        num_key_value_heads: Hkv,
        head_dim: hd,
        intermediate_size: I,
        num_experts: c.numExperts,
        experts_per_token: c.topK,
        vocab_size: V,
        tied_embeddings: c.tieEmbeddings,
        prefill_scan: scan.algorithm,
        prefill_chunk_size: scan.chunkSize,
      },
    });
  }
}
