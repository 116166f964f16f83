/**
 * Mamba-2 language model (Dao & Gu 2024, "Transformers are SSMs: Generalized Models and Efficient
 * Algorithms Through Structured State Space Duality"), numerically as HF `Mamba2ForCausalLM`.
 *
 * Glossary (paper ↔ code ↔ HF config ↔ state-spaces ssm_cfg):
 *   H   model width            hiddenSize   hidden_size        d_model
 *   I   inner width (= nh·P)   inner        expand·hidden      expand·d_model
 *   nh  heads                  nHeads       num_heads          d_inner / headdim
 *   P   head dim               headDim      head_dim           headdim
 *   G   B/C groups             nGroups      n_groups           ngroups
 *   N   state size             dState       state_size         d_state
 *   Q   SSD chunk length       chunkSize    chunk_size         chunk_size
 *
 * Block: x ← x + Mamba2Mixer(RMSNorm(x)) (src/nn/mamba2.ts); head: lm_head(RMSNorm_f(x)).
 * The gated RMSNorm normalises the full width I in HF; the official kernels normalise per group of I/G.
 * HF-named checkpoints get HF's, state-spaces-named ones the official; `normGroups` overrides.
 */
import type { Backend } from '../backend/backend.js';
import { cpu } from '../backend/cpu/index.js';
import { prefillOptions } from '../api/load-options.js';
import type { WeightSource } from '../io/weights.js';
import { Mamba2Mixer, type Mamba2Dims, type Mamba2Options as Mamba2MixerOptions } from '../nn/mamba2.js';
import { ConfigFields, type RawConfig } from './config.js';
import { DecoderLM } from './decoder.js';
import { ModelError } from './errors.js';
import { WeightLoader } from './loader.js';

export interface Mamba2Config extends Mamba2Dims {
  source: 'hf' | 'state-spaces';
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  chunkSize: number;
  useBias: boolean;
  useConvBias: boolean;
  normEps: number;
  dtLimit: [number, number];
  tieEmbeddings: boolean;
  eosTokenIds: number[];
}

export function parseMamba2Config(raw: RawConfig, file = 'config.json'): Mamba2Config {
  const f = new ConfigFields(raw, file);
  if (f.has('d_model') && !f.has('hidden_size')) {
    const ssm = f.sub('ssm_cfg');
    const H = f.int('d_model');
    const inner = Math.floor(ssm.num('expand', 2, (x) => x > 0, 'a positive number') * H);
    const headDim = ssm.int('headdim', 64);
    if (ssm.has('d_ssm') && ssm.raw.d_ssm !== inner) throw new ModelError(`${file}: ssm_cfg.d_ssm ${ssm.raw.d_ssm} ≠ d_inner ${inner} (the MLP split) is not supported`);
    if (ssm.bool('D_has_hdim', false)) throw new ModelError(`${file}: ssm_cfg.D_has_hdim=true is not supported`);
    if (!ssm.bool('rmsnorm', true) || ssm.bool('norm_before_gate', false)) throw new ModelError(`${file}: only ssm_cfg.rmsnorm=true with norm_before_gate=false is supported`);
    if (inner % headDim !== 0) throw new ModelError(`${file}: d_inner ${inner} (expand × d_model) is not a multiple of ssm_cfg.headdim ${headDim}`);
    const mult = f.int('pad_vocab_size_multiple', 16);
    const v = f.int('vocab_size', 50277);
    return {
      source: 'state-spaces',
      vocabSize: v % mult === 0 ? v : v + mult - (v % mult),
      hiddenSize: H,
      inner,
      nHeads: inner / headDim,
      headDim,
      nGroups: ssm.int('ngroups', 1),
      dState: ssm.int('d_state', 128),
      convKernel: ssm.int('d_conv', 4),
      numLayers: f.int('n_layer'),
      chunkSize: ssm.int('chunk_size', 256),
      useBias: ssm.bool('bias', false),
      useConvBias: ssm.bool('conv_bias', true),
      normEps: f.num('norm_epsilon', 1e-5, (x) => x > 0, 'a positive number'),
      dtLimit: ssm.range('dt_limit', [0, Infinity]),
      tieEmbeddings: f.bool('tie_embeddings', true),
      eosTokenIds: f.has('eos_token_id') ? f.ids('eos_token_id') : [0],
    };
  }
  const H = f.int('hidden_size');
  const inner = Math.floor(f.num('expand', 2, (x) => x > 0, 'a positive number') * H);
  const nHeads = f.int('num_heads');
  const headDim = f.int('head_dim', 64);
  if (nHeads * headDim !== inner) {
    throw new ModelError(`${file}: num_heads × head_dim = ${nHeads} × ${headDim} = ${nHeads * headDim}, but expand × hidden_size = ${inner}; expected num_heads = ${inner / headDim}`);
  }
  const nGroups = f.int('n_groups', 1);
  if (nHeads % nGroups !== 0) throw new ModelError(`${file}: num_heads ${nHeads} is not a multiple of n_groups ${nGroups}`);
  return {
    source: 'hf',
    vocabSize: f.int('vocab_size'),
    hiddenSize: H,
    inner,
    nHeads,
    headDim,
    nGroups,
    dState: f.int('state_size', 128),
    convKernel: f.int('conv_kernel', 4),
    numLayers: f.int('num_hidden_layers'),
    chunkSize: f.int('chunk_size', 256),
    useBias: f.bool('use_bias', false),
    useConvBias: f.bool('use_conv_bias', true),
    normEps: f.num('layer_norm_epsilon', 1e-5, (x) => x > 0, 'a positive number'),
    dtLimit: f.range('time_step_limit', [0, Infinity]),
    tieEmbeddings: f.bool('tie_word_embeddings', false),
    eosTokenIds: f.ids('eos_token_id'),
  };
}

export interface Mamba2Options {
  backend?: Backend;
  /** prefill SSD algorithm (default: the backend's, `Backend.prefill`); one-token decode always runs the recurrence */
  ssd?: { algorithm?: 'chunked' | 'quadratic' | 'recurrent'; chunkSize?: number };
  /** gated-norm grouping: 'full' (HF) or 'group' (official kernels); default by checkpoint naming */
  normGroups?: 'full' | 'group';
  /** clamp Δ to time_step_limit in decode steps too (HF does not; see src/nn/mamba2.ts) */
  clampDecodeDt?: boolean;
}

/**
 * The Mamba-2 mixer options of a model: its config values plus the load options (SSD algorithm and chunk, gated-norm
 * grouping with the architecture's default, Δ clamping in decode).
 */
export function mamba2MixerOptions(
  c: { inner: number; nGroups: number; chunkSize: number; normEps: number; dtLimit: [number, number] },
  opts: Mamba2Options, defaultNorm: 'full' | 'group',
): Mamba2MixerOptions {
  return {
    normEps: c.normEps,
    normGroupSize: (opts.normGroups ?? defaultNorm) === 'group' ? c.inner / c.nGroups : c.inner,
    dtLimit: c.dtLimit,
    ...prefillOptions(opts.backend ?? cpu, 'ssd', opts.ssd, c.chunkSize),
    clampDecodeDt: opts.clampDecodeDt ?? false,
  };
}

/** Load the Mamba-2 mixer of one layer (shared with the hybrids that use it: Bamba, Granite, NemotronH). */
export function loadMamba2Mixer(
  w: WeightLoader, p: string, c: Mamba2Dims & { hiddenSize: number; useBias: boolean; useConvBias: boolean },
  opts: Mamba2MixerOptions,
): Mamba2Mixer {
  const { hiddenSize: H, inner: I, nHeads: nh, nGroups: G, dState: N, convKernel: K } = c;
  const convDim = I + 2 * G * N;
  return new Mamba2Mixer({
    inProj: w.matrix(`${p}in_proj.weight`, [I + convDim + nh, H]),
    inProjBias: w.maybe(c.useBias, `${p}in_proj.bias`, [I + convDim + nh]),
    conv: w.get(`${p}conv1d.weight`, [convDim, 1, K], [convDim, K]),
    convBias: w.maybe(c.useConvBias, `${p}conv1d.bias`, [convDim]),
    dtBias: w.get(`${p}dt_bias`, [nh]),
    A: w.negExp(`${p}A_log`, [nh]),
    D: w.get(`${p}D`, [nh]),
    norm: w.get(`${p}norm.weight`, [I]),
    outProj: w.matrix(`${p}out_proj.weight`, [H, I]),
    outProjBias: w.maybe(c.useBias, `${p}out_proj.bias`, [H]),
  }, c, opts, w.backend);
}

export class Mamba2LM extends DecoderLM {
  constructor(readonly config: Mamba2Config, weights: WeightSource, opts: Mamba2Options = {}) {
    const c = config;
    const backend = opts.backend ?? cpu;
    const { hiddenSize: H, vocabSize: V } = c;
    const w = new WeightLoader(weights, backend,
      `hidden_size=${H}, num_heads=${c.nHeads}, head_dim=${c.headDim}, n_groups=${c.nGroups}, state_size=${c.dState}, conv_kernel=${c.convKernel}, vocab_size=${V}`);
    const prefix = w.has('backbone.embeddings.weight') || w.has('backbone.embedding.weight') ? 'backbone.' : '';
    const embed = w.matrix(w.pick(`${prefix}embeddings.weight`, `${prefix}embedding.weight`), [V, H]);
    const mixerOpts = mamba2MixerOptions(c, opts, c.source === 'state-spaces' ? 'group' : 'full');
    const blocks = Array.from({ length: c.numLayers }, (_, i) => [
      { norm: w.get(`${prefix}layers.${i}.norm.weight`, [H]), mixer: loadMamba2Mixer(w, `${prefix}layers.${i}.mixer.`, c, mixerOpts) },
    ]);
    super({
      params: w.params,
      modelType: 'mamba2',
      fingerprint: `mamba2:H${H}:nh${c.nHeads}:P${c.headDim}:G${c.nGroups}:N${c.dState}:K${c.convKernel}:L${c.numLayers}:V${V}`,
      backend,
      vocabSize: V,
      eosTokenIds: c.eosTokenIds,
      embed,
      blocks,
      normEps: c.normEps,
      finalNorm: w.get(`${prefix}norm_f.weight`, [H]),
      lmHead: c.tieEmbeddings ? embed : w.matrix('lm_head.weight', [V, H]),
      hiddenStates: 'layer-outputs',
      summary: {
        architecture: 'Mamba-2 (SSD)',
        config_naming: c.source,
        hidden_size: H,
        num_heads: c.nHeads,
        head_dim: c.headDim,
        n_groups: c.nGroups,
        state_size: c.dState,
        conv_kernel: c.convKernel,
        chunk_size: mixerOpts.chunkSize,
        num_layers: c.numLayers,
        vocab_size: V,
        tied_embeddings: c.tieEmbeddings,
        gated_norm: mixerOpts.normGroupSize === c.inner ? 'full width' : 'per group',
        prefill_ssd: mixerOpts.algorithm,
      },
    });
  }
}
