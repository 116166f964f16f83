/**
 * Llama (Touvron et al. 2023), numerically as HF `LlamaForCausalLM`: the Transformer baseline built
 * from the same attention and MLP as the hybrids, so the seed's claims (throughput, memory against
 * context length) can be measured against a same-size Transformer on identical kernels.
 *
 *   x ← x + Attention(RMSNorm(x))      GQA, RoPE on every channel of each head, KV cache
 *   x ← x + MLP(RMSNorm(x))            down(silu(gate(x)) · up(x))
 *   logits = lm_head(RMSNorm(x))
 */
import type { Backend } from '../backend/backend.js';
import { cpu } from '../backend/cpu/index.js';
import type { WeightSource } from '../io/weights.js';
import { loadAttention, loadGatedMLP, parseHeads, parseRope } from './blocks.js';
import { ConfigFields, type RawConfig } from './config.js';
import { DecoderLM } from './decoder.js';
import { WeightLoader } from './loader.js';

export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  rope: { rotaryDim: number; theta: number };
  normEps: number;
  attentionBias: boolean;
  mlpBias: boolean;
  tieEmbeddings: boolean;
  eosTokenIds: number[];
}

export function parseLlamaConfig(raw: RawConfig, file = 'config.json'): LlamaConfig {
  const f = new ConfigFields(raw, file);
  f.requireSilu();
  const H = f.int('hidden_size');
  const heads = parseHeads(f, H);
  return {
    vocabSize: f.int('vocab_size'),
    hiddenSize: H,
    intermediateSize: f.int('intermediate_size'),
    numLayers: f.int('num_hidden_layers'),
    ...heads,
    rope: parseRope(f, heads.headDim, { theta: 10000, partial: 1 }),
    normEps: f.num('rms_norm_eps', 1e-6, (x) => x > 0, 'a positive number'),
    attentionBias: f.bool('attention_bias', false),
    mlpBias: f.bool('mlp_bias', false),
    tieEmbeddings: f.bool('tie_word_embeddings', false),
    eosTokenIds: f.ids('eos_token_id'),
  };
}

export class LlamaLM extends DecoderLM {
  constructor(readonly config: LlamaConfig, weights: WeightSource, opts: { backend?: Backend } = {}) {
    const c = config;
    const backend = opts.backend ?? cpu;
    const { hiddenSize: H, vocabSize: V, intermediateSize: I } = c;
    const w = new WeightLoader(weights, backend,
      `hidden_size=${H}, num_attention_heads=${c.nHeads}, num_key_value_heads=${c.nKvHeads}, head_dim=${c.headDim}, intermediate_size=${I}, vocab_size=${V}`);
    const embed = w.matrix('model.embed_tokens.weight', [V, H]);
    const attn = { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, rope: c.rope };
    const blocks = Array.from({ length: c.numLayers }, (_, i) => {
      const p = `model.layers.${i}.`;
      return [
        { norm: w.get(`${p}input_layernorm.weight`, [H]), mixer: loadAttention(w, `${p}self_attn.`, H, attn, { qkv: c.attentionBias, o: c.attentionBias }) },
        { norm: w.get(`${p}post_attention_layernorm.weight`, [H]), mixer: loadGatedMLP(w, `${p}mlp.`, H, I, c.mlpBias) },
      ];
    });
    super({
      params: w.params,
      modelType: 'llama',
      fingerprint: `llama:H${H}:I${I}:h${c.nHeads}:kv${c.nKvHeads}:d${c.headDim}:L${c.numLayers}:V${V}`,
      backend,
      vocabSize: V,
      eosTokenIds: c.eosTokenIds,
      embed,
      blocks,
      normEps: c.normEps,
      finalNorm: w.get('model.norm.weight', [H]),
      lmHead: c.tieEmbeddings ? embed : w.matrix('lm_head.weight', [V, H]),
      hiddenStates: 'embeddings-first',
      summary: {
        architecture: 'Llama (Transformer baseline)',
        hidden_size: H,
        intermediate_size: I,
        num_attention_heads: c.nHeads,
        num_key_value_heads: c.nKvHeads,
        head_dim: c.headDim,
        rope_theta: c.rope.theta,
        num_layers: c.numLayers,
        vocab_size: V,
        tied_embeddings: c.tieEmbeddings,
      },
    });
  }
}
