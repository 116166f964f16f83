/**
 * NVIDIA Nemotron-H (NVIDIA 2025, "Nemotron-H: A Family of Accurate and Efficient Hybrid Mamba-Transformer
 * Models"), numerically as HF `NemotronHForCausalLM` (transformers 5.x).
 *
 * Every layer holds exactly ONE mixer behind one pre-norm and one residual add:
 *   x ← x + Mixer_i(RMSNorm_i(x))        backbone.layers.i.{norm, mixer.*}
 * with Mixer_i chosen by `layers_block_type[i]` (older configs: the `hybrid_override_pattern` string):
 *   "linear_attention" / "mamba" / 'M'   Mamba-2 mixer; inner width mamba_num_heads · mamba_head_dim (not
 *                                        expand · hidden), gated RMSNorm per group of I/G (HF's
 *                                        Zamba2RMSNormGated); Δ ← max(Δ, time_step_min) in prefill but not
 *                                        in one-token cached decode, as HF 5.17's torch path (see below)
 *   "full_attention" / "attention" / '*' GQA attention with no positional encoding (NoPE), head_dim from the
 *                                        config (may differ from hidden/heads), no biases
 *   "mlp" / '-'                          down(act(up(x))), act = mlp_hidden_act (relu² by default)
 *   "moe" / 'E'                          sigmoid-routed mixture of experts: not supported yet
 * Head: logits = lm_head(RMSNorm_f(x)) (backbone.norm_f). Hidden states follow HF's decoder convention:
 * the embedding, the outputs of layers 1…n−1, then the final-normed output.
 *
 * Δ clamp, measured against the fixture (transformers 5.17, CPU): the full forward floors Δ at time_step_min
 * (0.001; time_step_limit is not read), while cached generation's one-token steps apply no floor — a floored
 * decode is off the fixture's generate.scores by up to 4e-6, an unfloored one by 3e-7. So by default cached decode
 * differs slightly from a re-forward, as in HF; `clampDecodeDt: true` floors decode too (decode = re-forward).
 * HF's CUDA kernels and later HF versions clamp to time_step_limit instead.
 */
import type { Activation, Backend } from '../backend/backend.js';
import { cpu } from '../backend/cpu/index.js';
import type { WeightSource } from '../io/weights.js';
import type { Mamba2Dims } from '../nn/mamba2.js';
import type { Mixer } from '../nn/mixer.js';
import { PlainMLP } from '../nn/mlp.js';
import { loadAttention } from './blocks.js';
import { ConfigFields, type RawConfig } from './config.js';
import { DecoderLM, type Sublayer } from './decoder.js';
import { ModelError } from './errors.js';
import { WeightLoader } from './loader.js';
import { loadMamba2Mixer, mamba2MixerOptions, type Mamba2Options } from './mamba2.js';

export type NemotronHLayerType = 'mamba' | 'attention' | 'mlp';

export interface NemotronHConfig {
  vocabSize: number;
  hiddenSize: number;
  layerTypes: NemotronHLayerType[];
  /** Mamba-2 layers */
  mamba: Mamba2Dims & { hiddenSize: number; useBias: boolean; useConvBias: boolean };
  chunkSize: number;
  /** the Δ clamp of prefill: [time_step_min, ∞) as HF's torch path */
  dtLimit: [number, number];
  /** time_step_limit as configured (HF's CUDA kernels clamp to it instead; informational here) */
  timeStepLimit: [number, number];
  /** attention layers */
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** MLP layers */
  intermediateSize: number;
  mlpActivation: Activation;
  mlpBias: boolean;
  normEps: number;
  tieEmbeddings: boolean;
  eosTokenIds: number[];
}

/** layer type names (current, legacy, pattern letter) → what runs */
const LAYER_NAMES: Record<string, NemotronHLayerType | 'moe'> = {
  linear_attention: 'mamba',
  mamba: 'mamba',
  full_attention: 'attention',
  attention: 'attention',
  mlp: 'mlp',
  moe: 'moe',
};
const PATTERN_LETTERS: Record<string, NemotronHLayerType | 'moe'> = { M: 'mamba', '*': 'attention', '-': 'mlp', E: 'moe' };

/** HF `mlp_hidden_act` (ACT2FN names) → backend activation */
const MLP_ACTIVATIONS: Record<string, Activation> = { relu2: 'relu2', relu: 'relu', silu: 'silu', swish: 'silu', gelu_pytorch_tanh: 'gelu_tanh' };

function parseLayerTypes(f: ConfigFields): NemotronHLayerType[] {
  const file = f.file;
  let kinds: Array<NemotronHLayerType | 'moe'>;
  // as HF: layers_block_type wins; hybrid_override_pattern is the older spelling
  if (f.has('layers_block_type')) {
    const v = f.raw.layers_block_type;
    const want = `a non-empty list of layer types, each one of ${Object.keys(LAYER_NAMES).map((k) => `"${k}"`).join(', ')}`;
    if (!Array.isArray(v) || v.length === 0) throw new ModelError(`${file}: field "layers_block_type" is ${JSON.stringify(v)}; expected ${want}`);
    kinds = v.map((t, i) => {
      const k = typeof t === 'string' ? LAYER_NAMES[t] : undefined;
      if (!k) throw new ModelError(`${file}: field "layers_block_type"[${i}] is ${JSON.stringify(t)}; expected one of ${Object.keys(LAYER_NAMES).map((n) => `"${n}"`).join(', ')}`);
      return k;
    });
  } else if (f.has('hybrid_override_pattern')) {
    const p = f.raw.hybrid_override_pattern;
    const want = `a non-empty string of layer letters: "M" (Mamba-2), "*" (attention), "-" (MLP), "E" (MoE)`;
    if (typeof p !== 'string' || p.length === 0) throw new ModelError(`${file}: field "hybrid_override_pattern" is ${JSON.stringify(p)}; expected ${want}`);
    kinds = [...p].map((ch, i) => {
      const k = PATTERN_LETTERS[ch];
      if (!k) throw new ModelError(`${file}: field "hybrid_override_pattern" has ${JSON.stringify(ch)} at position ${i}; expected ${want}`);
      return k;
    });
  } else {
    throw new ModelError(`${file}: neither field "layers_block_type" nor "hybrid_override_pattern" is given; expected the list of layer types`);
  }
  const moe = kinds.indexOf('moe');
  if (moe >= 0) {
    throw new ModelError(`${file}: layer ${moe} is a mixture-of-experts ("moe") layer; Nemotron-H MoE layers are not supported yet (supported: Mamba-2, attention, MLP)`);
  }
  return kinds as NemotronHLayerType[];
}

export function parseNemotronHConfig(raw: RawConfig, file = 'config.json'): NemotronHConfig {
  const f = new ConfigFields(raw, file);
  // HF accepts these older key names (NemotronHConfig.__post_init__); the current name wins when both are given
  const key = (name: string, legacy: string): string => (!f.has(name) && f.has(legacy) ? legacy : name);
  const layerTypes = parseLayerTypes(f);
  const H = f.int('hidden_size');

  const mambaAct = f.str('mamba_hidden_act', 'silu');
  if (mambaAct !== 'silu' && mambaAct !== 'swish') throw new ModelError(`${file}: field "mamba_hidden_act" is "${mambaAct}"; only "silu" is supported`);
  const nHeadsM = f.int('mamba_num_heads', 128);
  const headDimM = f.int('mamba_head_dim', 64);
  const nGroups = f.int(key('n_groups', 'mamba_n_groups'), 8);
  if (nHeadsM % nGroups !== 0) throw new ModelError(`${file}: field "mamba_num_heads" ${nHeadsM} is not a multiple of n_groups ${nGroups}`);

  const actName = f.str('mlp_hidden_act', 'relu2');
  const mlpActivation = MLP_ACTIVATIONS[actName];
  if (!mlpActivation) throw new ModelError(`${file}: field "mlp_hidden_act" is "${actName}"; expected one of ${Object.keys(MLP_ACTIVATIONS).map((n) => `"${n}"`).join(', ')}`);

  const hasAttention = layerTypes.includes('attention');
  // HF's config defaults (num_key_value_heads 8, head_dim 128), not hidden/heads: NemotronH's head_dim is its own
  const heads = hasAttention
    ? { nHeads: f.int('num_attention_heads'), nKvHeads: f.int('num_key_value_heads', 8), headDim: f.int('head_dim', 128) }
    : { nHeads: 0, nKvHeads: 0, headDim: 0 };
  if (heads.nHeads % heads.nKvHeads !== 0) {
    throw new ModelError(`${file}: field "num_attention_heads" ${heads.nHeads} is not a multiple of num_key_value_heads ${heads.nKvHeads}`);
  }
  const hasMlp = layerTypes.includes('mlp');
  return {
    vocabSize: f.int('vocab_size'),
    hiddenSize: H,
    layerTypes,
    mamba: {
      hiddenSize: H,
      inner: nHeadsM * headDimM,
      nHeads: nHeadsM,
      headDim: headDimM,
      nGroups,
      dState: f.int('ssm_state_size', 128),
      convKernel: f.int(key('conv_kernel', 'mamba_d_conv'), 4),
      useBias: f.bool('use_bias', false),
      useConvBias: f.bool(key('use_conv_bias', 'mamba_conv_bias'), true),
    },
    chunkSize: f.int(key('chunk_size', 'mamba_chunk_size'), 128),
    // HF 5.17's torch prefill floors Δ at time_step_min (`clamp(dt, time_step_min)`, upper bound commented out) and
    // does not read time_step_limit (only its CUDA kernels do); the fixture's logits and hidden states agree
    dtLimit: [f.num(key('time_step_min', 'mamba_dt_min'), 0.001, (x) => x >= 0, 'a non-negative number'), Infinity],
    timeStepLimit: f.range(key('time_step_limit', 'mamba_dt_limit'), [0, Infinity]),
    ...heads,
    intermediateSize: hasMlp ? f.int('intermediate_size') : 0,
    mlpActivation,
    mlpBias: f.bool('mlp_bias', false),
    normEps: f.num('layer_norm_epsilon', 1e-5, (x) => x > 0, 'a positive number'),
    tieEmbeddings: f.bool('tie_word_embeddings', false),
    eosTokenIds: f.ids('eos_token_id'),
  };
}

export class NemotronHLM extends DecoderLM {
  constructor(readonly config: NemotronHConfig, weights: WeightSource, opts: Mamba2Options = {}) {
    const c = config;
    const backend: Backend = opts.backend ?? cpu;
    const { hiddenSize: H, vocabSize: V, mamba: m } = c;
    const w = new WeightLoader(weights, backend,
      `hidden_size=${H}, mamba_num_heads=${m.nHeads}, mamba_head_dim=${m.headDim}, n_groups=${m.nGroups}, ssm_state_size=${m.dState}, ` +
      `conv_kernel=${m.convKernel}, num_attention_heads=${c.nHeads}, num_key_value_heads=${c.nKvHeads}, head_dim=${c.headDim}, ` +
      `intermediate_size=${c.intermediateSize}, vocab_size=${V}`);
    // HF normalises the gated RMSNorm per group of I/G (Zamba2RMSNormGated)
    // HF's cached one-token decode applies no Δ floor (see the header): clampDecodeDt defaults to false
    const mixerOpts = mamba2MixerOptions({ inner: m.inner, nGroups: m.nGroups, chunkSize: c.chunkSize, normEps: c.normEps, dtLimit: c.dtLimit }, opts, 'group');
    const blocks: Sublayer[][] = c.layerTypes.map((type, i) => {
      const p = `backbone.layers.${i}.`;
      let mixer: Mixer;
      if (type === 'mamba') mixer = loadMamba2Mixer(w, `${p}mixer.`, m, mixerOpts);
      else if (type === 'attention') {
        mixer = loadAttention(w, `${p}mixer.`, H, { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, rope: null }, { qkv: false, o: false });
      } else {
        const I = c.intermediateSize;
        mixer = new PlainMLP({
          up: w.matrix(`${p}mixer.up_proj.weight`, [I, H]),
          down: w.matrix(`${p}mixer.down_proj.weight`, [H, I]),
          upBias: w.maybe(c.mlpBias, `${p}mixer.up_proj.bias`, [I]),
          downBias: w.maybe(c.mlpBias, `${p}mixer.down_proj.bias`, [H]),
        }, c.mlpActivation);
      }
      return [{ norm: w.get(`${p}norm.weight`, [H]), mixer }];
    });
    const embed = w.get('backbone.embeddings.weight', [V, H]);
    const pattern = c.layerTypes.map((t) => ({ mamba: 'M', attention: '*', mlp: '-' })[t]).join('');
    super({
      params: w.params,
      modelType: 'nemotron_h',
      fingerprint: `nemotron_h:H${H}:${pattern}:nh${m.nHeads}:P${m.headDim}:G${m.nGroups}:N${m.dState}:K${m.convKernel}` +
        `:q${c.nHeads}:kv${c.nKvHeads}:hd${c.headDim}:I${c.intermediateSize}:V${V}`,
      backend,
      vocabSize: V,
      eosTokenIds: c.eosTokenIds,
      embed,
      blocks,
      normEps: c.normEps,
      finalNorm: w.get('backbone.norm_f.weight', [H]),
      lmHead: c.tieEmbeddings ? embed : w.matrix('lm_head.weight', [V, H]),
      hiddenStates: 'embeddings-first',
      summary: {
        architecture: 'Nemotron-H (Mamba-2 / attention / MLP hybrid)',
        hidden_size: H,
        num_layers: c.layerTypes.length,
        layer_pattern: pattern,
        mamba_layers: c.layerTypes.filter((t) => t === 'mamba').length,
        attention_layers: c.layerTypes.filter((t) => t === 'attention').length,
        mlp_layers: c.layerTypes.filter((t) => t === 'mlp').length,
        mamba_num_heads: m.nHeads,
        mamba_head_dim: m.headDim,
        n_groups: m.nGroups,
        ssm_state_size: m.dState,
        conv_kernel: m.convKernel,
        chunk_size: mixerOpts.chunkSize,
        dt_floor: `${c.dtLimit[0]} (time_step_min) in prefill${mixerOpts.clampDecodeDt ? ' and decode' : ', none in cached decode (as HF)'}`,
        num_attention_heads: c.nHeads,
        num_key_value_heads: c.nKvHeads,
        head_dim: c.headDim,
        positional_encoding: 'none',
        intermediate_size: c.intermediateSize,
        mlp_activation: c.mlpActivation,
        vocab_size: V,
        tied_embeddings: c.tieEmbeddings,
        gated_norm: mixerOpts.normGroupSize === m.inner ? 'full width' : 'per group',
        prefill_ssd: mixerOpts.algorithm,
      },
    });
  }
}
