/**
 * Weights made up on the spot, for benchmarks and smoke tests at real model sizes without a checkpoint:
 * a `TensorSource` that answers every tensor a model asks for with seeded values of the shape it asks
 * (so it serves every architecture), scaled like an init so activations stay finite:
 * A_log = log(1…N) (S4D-Real), D = 1, norms = 1, dt biases = softplus⁻¹(0.01), biases 0,
 * embeddings N(0, 0.02)-ish, matrices U(±1/√fan_in).
 *
 * Presets give HF configs of the sizes people compare (the published 130M models and same-size peers).
 */
import type { RawConfig } from './config.js';
import { GeneratedTensorSource } from './init.js';

export class RandomTensorSource extends GeneratedTensorSource {
  constructor(seed = 0) {
    super(seed, '(random)');
  }

  float32(name: string): Float32Array {
    const shape = this.entry(name).shape;
    const n = shape.reduce((a, b) => a * b, 1);
    const rng = this.nameRng(name);
    const out = new Float32Array(n);
    const leaf = name.split('.').slice(-2).join('.');
    if (/A_log$/.test(name)) {
      const N = shape.length > 1 ? shape[shape.length - 1] : 1;
      for (let i = 0; i < n; i++) out[i] = Math.log(1 + (shape.length > 1 ? i % N : i % 16));
    } else if (/(^|\.)D$/.test(name) || /norm[^.]*\.weight$/.test(name) || /layernorm\.weight$/.test(name)) {
      out.fill(1);
    } else if (/dt_bias$|dt_proj\.bias$/.test(name)) {
      out.fill(Math.log(Math.expm1(0.01)));
    } else if (/\.bias$/.test(leaf)) {
      // zero
    } else {
      const fanIn = shape.length > 1 ? shape.slice(1).reduce((a, b) => a * b, 1) : shape[0];
      const bound = /embed/.test(name) ? 0.02 * Math.sqrt(3) : 1 / Math.sqrt(fanIn);
      for (let i = 0; i < n; i++) out[i] = (rng.next() * 2 - 1) * bound;
    }
    return out;
  }
}

/** HF configs of standard sizes (random weights: speed and memory only). */
function largerSizes(): Record<string, RawConfig> {
  const out: Record<string, RawConfig> = {};
  for (const [size, H, layers] of [['370m', 1024, 48], ['790m', 1536, 48], ['1.4b', 2048, 48], ['2.8b', 2560, 64]] as const) {
    out[`mamba-${size}`] = {
      model_type: 'mamba', hidden_size: H, num_hidden_layers: layers, state_size: 16, expand: 2, conv_kernel: 4,
      time_step_rank: Math.ceil(H / 16), vocab_size: 50280, use_bias: false, use_conv_bias: true, tie_word_embeddings: true,
    };
    out[`mamba2-${size}`] = {
      model_type: 'mamba2', hidden_size: H, num_hidden_layers: layers, state_size: 128, num_heads: (2 * H) / 64, head_dim: 64,
      n_groups: 1, expand: 2, conv_kernel: 4, chunk_size: 256, vocab_size: 50288, tie_word_embeddings: true,
    };
  }
  return out;
}

export const PRESETS: Record<string, RawConfig> = {
  // state-spaces/mamba-130m-hf
  'mamba-130m': {
    model_type: 'mamba', hidden_size: 768, num_hidden_layers: 24, state_size: 16, expand: 2, conv_kernel: 4,
    time_step_rank: 48, vocab_size: 50280, use_bias: false, use_conv_bias: true, tie_word_embeddings: true,
  },
  // state-spaces/mamba2-130m (HF layout)
  'mamba2-130m': {
    model_type: 'mamba2', hidden_size: 768, num_hidden_layers: 24, state_size: 128, num_heads: 24, head_dim: 64,
    n_groups: 1, expand: 2, conv_kernel: 4, chunk_size: 256, vocab_size: 50288, tie_word_embeddings: true,
  },
  // the larger state-spaces checkpoints (mamba-370m/790m/1.4b/2.8b; mamba2-370m/780m/1.3b/2.7b): same recipe,
  // d_model × layers 1024 × 48, 1536 × 48, 2048 × 48, 2560 × 64
  ...largerSizes(),
  // a Bamba-style hybrid of about the same size: 3 attention layers of 20, SwiGLU MLP 1024 everywhere
  'hybrid-130m': {
    model_type: 'bamba', hidden_size: 768, num_hidden_layers: 20, intermediate_size: 1024, attn_layer_indices: [4, 10, 16],
    num_attention_heads: 12, num_key_value_heads: 4, mamba_n_heads: 24, mamba_d_head: 64, mamba_n_groups: 1,
    mamba_d_state: 128, mamba_d_conv: 4, mamba_expand: 2, mamba_chunk_size: 256, vocab_size: 50288, tie_word_embeddings: true,
  },
  // a same-size Transformer: 12 layers × 768, MHA, SwiGLU 2048 (≈124M with a tied head)
  'llama-130m': {
    model_type: 'llama', hidden_size: 768, num_hidden_layers: 12, intermediate_size: 2048, num_attention_heads: 12,
    num_key_value_heads: 12, vocab_size: 50280, tie_word_embeddings: true, rope_theta: 10000,
  },
};
