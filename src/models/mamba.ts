/**
 * Mamba-1 language model (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State
 * Spaces", §3, Fig. 3, Algorithm 2), numerically as Hugging Face `MambaForCausalLM` computes it.
 *
 * Glossary (paper ↔ code ↔ HF config ↔ state-spaces config):
 *   b batch · L sequence length
 *   H  model width        hiddenSize     hidden_size         d_model
 *   D  inner width (E·H)  innerSize      intermediate_size   expand·d_model
 *   N  SSM state size     stateSize      state_size          ssm_cfg.d_state
 *   R  rank of Δ          dtRank         time_step_rank      ssm_cfg.dt_rank ("auto" = ⌈H/16⌉)
 *   K  conv width         convKernel     conv_kernel         ssm_cfg.d_conv
 *
 * Block (pre-norm residual; HF MambaBlock — the official Add→Norm→Mixer chaining is the same arithmetic):
 *   x ← x + Mixer(RMSNorm(x))
 * Mixer:
 *   [xs | z]      = in_proj(h)                         (b, L, 2D)
 *   u             = silu(conv1d_causal(xs))            (b, L, D)   depthwise, width K
 *   [Δ' | B | C]  = x_proj(u)                          (b, L, R+2N)
 *   Δ             = softplus(dt_proj(Δ'))              (b, L, D)   bias added before the softplus
 *   A             = −exp(A_log)                        (D, N)
 *   h_t           = exp(Δ_t A) h_{t−1} + Δ_t B_t u_t   ZOH for A, Euler for B (as HF / official)
 *   y_t           = C_t h_t + D u_t;  y ← y · silu(z)
 *   out           = out_proj(y)                        (b, L, H)
 * Head: logits = lm_head(RMSNorm_f(x)), lm_head tied to the embedding unless the config says otherwise.
 *
 * FalconMamba (`model_type: "falcon_mamba"`) is this model with parameter-free RMSNorms on Δ', B and C
 * after the x_proj split (eps `mixer_rms_eps`), see `src/nn/mamba1.ts`.
 */
import type { Backend } from '../backend/backend.js';
import { cpu } from '../backend/cpu/index.js';
import { prefillOptions } from '../api/load-options.js';
import type { WeightSource } from '../io/weights.js';
import { Mamba1Mixer, type Mamba1Weights, type ScanOptions } from '../nn/mamba1.js';
import { S4dMixer, s4dModes } from '../nn/s4d.js';
import { ConfigFields, type RawConfig } from './config.js';
import { DecoderLM } from './decoder.js';
import { ModelError } from './errors.js';
import { WeightLoader } from './loader.js';

export interface MambaConfig {
  /** which naming the config.json used */
  source: 'hf' | 'state-spaces';
  vocabSize: number;
  hiddenSize: number;
  innerSize: number;
  stateSize: number;
  numLayers: number;
  convKernel: number;
  dtRank: number;
  useBias: boolean;
  useConvBias: boolean;
  normEps: number;
  tieEmbeddings: boolean;
  eosTokenIds: number[];
  /** FalconMamba: eps of the weight-less RMSNorms on Δ', B, C; absent for plain Mamba */
  mixerRmsEps?: number;
  /**
   * 's4d': mamba-ts's LTI ablation (an S4D layer in place of S6, `src/nn/s4d.ts`; config.json
   * `"mamba_ts": {"mixer": "s4d"}`, not loadable by HF transformers). Default 's6'.
   */
  mixer?: 's6' | 's4d';
}

/** Parse an HF (`model_type: "mamba"`) or state-spaces (`d_model`/`n_layer`/`ssm_cfg`) config.json. */
export function parseMambaConfig(raw: RawConfig, file = 'config.json'): MambaConfig {
  const f = new ConfigFields(raw, file);
  f.requireSilu();
  if (f.has('d_model') && !f.has('hidden_size')) {
    // state-spaces/mamba MambaConfig (mamba_ssm/models/config_mamba.py)
    const ssm = f.sub('ssm_cfg');
    const layer = ssm.str('layer', 'Mamba1');
    if (layer !== 'Mamba1') throw new ModelError(`${file}: ssm_cfg.layer "${layer}" is not supported by the Mamba-1 model`);
    const attn = raw.attn_layer_idx;
    if (Array.isArray(attn) && attn.length > 0) throw new ModelError(`${file}: attention layers (attn_layer_idx) are not supported by the Mamba-1 model`);
    if (f.int('d_intermediate', 0, 0) > 0) throw new ModelError(`${file}: d_intermediate > 0 (MLP blocks) is not supported by the Mamba-1 model`);
    if (!f.bool('rms_norm', true)) throw new ModelError(`${file}: rms_norm=false (LayerNorm) is not supported`);
    const H = f.int('d_model');
    const mult = f.int('pad_vocab_size_multiple', 8);
    const v = f.int('vocab_size', 50277);
    const dtRank = ssm.has('dt_rank') && ssm.raw.dt_rank !== 'auto' ? ssm.int('dt_rank') : Math.ceil(H / 16);
    return {
      source: 'state-spaces',
      vocabSize: v % mult === 0 ? v : v + mult - (v % mult),
      hiddenSize: H,
      innerSize: Math.floor(ssm.num('expand', 2, (x) => x > 0, 'a positive number') * H),
      stateSize: ssm.int('d_state', 16),
      numLayers: f.int('n_layer'),
      convKernel: ssm.int('d_conv', 4),
      dtRank,
      useBias: ssm.bool('bias', false),
      useConvBias: ssm.bool('conv_bias', true),
      normEps: f.num('norm_epsilon', 1e-5, (x) => x > 0, 'a positive number'),
      tieEmbeddings: f.bool('tie_embeddings', true),
      eosTokenIds: f.has('eos_token_id') ? f.ids('eos_token_id') : [0],
    };
  }
  const H = f.int('hidden_size');
  const expand = f.num('expand', 2, (x) => x > 0, 'a positive number');
  const ext = raw.mamba_ts as { mixer?: unknown } | undefined;
  if (ext?.mixer !== undefined && ext.mixer !== 's6' && ext.mixer !== 's4d') throw new ModelError(`${file}: mamba_ts.mixer must be "s6" or "s4d", got ${JSON.stringify(ext.mixer)}`);
  return {
    ...(ext?.mixer === 's4d' ? { mixer: 's4d' as const } : {}),
    source: 'hf',
    vocabSize: f.int('vocab_size'),
    hiddenSize: H,
    innerSize: f.int('intermediate_size', Math.floor(expand * H)),
    stateSize: f.int('state_size', 16),
    numLayers: f.int('num_hidden_layers'),
    convKernel: f.int('conv_kernel', 4),
    dtRank: f.has('time_step_rank') && raw.time_step_rank !== 'auto' ? f.int('time_step_rank') : Math.ceil(H / 16),
    useBias: f.bool('use_bias', true),
    useConvBias: f.bool('use_conv_bias', true),
    normEps: f.num('layer_norm_epsilon', 1e-5, (x) => x > 0, 'a positive number'),
    tieEmbeddings: f.bool('tie_word_embeddings', true),
    eosTokenIds: f.ids('eos_token_id'),
    ...(raw.model_type === 'falcon_mamba' ? { mixerRmsEps: f.num('mixer_rms_eps', 1e-6, (x) => x > 0, 'a positive number') } : {}),
  };
}

/** Load the Mamba-1 mixer under `p` (shared with Jamba, which adds learnable Δ/B/C norms). */
export function loadMamba1Mixer(
  w: WeightLoader, p: string,
  c: Pick<MambaConfig, 'hiddenSize' | 'innerSize' | 'stateSize' | 'dtRank' | 'convKernel' | 'useBias' | 'useConvBias'>,
  scan: ScanOptions, innerNorms?: Mamba1Weights['innerNorms'],
): Mamba1Mixer {
  const { hiddenSize: H, innerSize: D, stateSize: N, dtRank: R, convKernel: K } = c;
  return new Mamba1Mixer({
    inProj: w.matrix(`${p}in_proj.weight`, [2 * D, H]),
    inProjBias: w.maybe(c.useBias, `${p}in_proj.bias`, [2 * D]),
    conv: w.get(`${p}conv1d.weight`, [D, 1, K], [D, K]),
    convBias: w.maybe(c.useConvBias, `${p}conv1d.bias`, [D]),
    // x_proj and dt_proj produce Δ, B, C: kept float32 whatever the weight format (as llama.cpp's quantizer keeps
    // ssm_x / ssm_dt; they are ~4% of the weights)
    xProj: w.matrix(`${p}x_proj.weight`, [R + 2 * N, D], { float32: true }),
    dtProj: w.matrix(`${p}dt_proj.weight`, [D, R], { float32: true }),
    dtBias: w.get(`${p}dt_proj.bias`, [D]),
    A: w.negExp(`${p}A_log`, [D, N]),
    D: w.get(`${p}D`, [D]),
    outProj: w.matrix(`${p}out_proj.weight`, [H, D]),
    outProjBias: w.maybe(c.useBias, `${p}out_proj.bias`, [H]),
    ...(innerNorms ? { innerNorms } : {}),
  }, w.backend, scan);
}

/** The S4D ablation mixer under `p` (see `src/nn/s4d.ts`). */
function loadS4dMixer(w: WeightLoader, p: string, c: MambaConfig): S4dMixer {
  const { hiddenSize: H, innerSize: D, stateSize: N, convKernel: K } = c;
  const M = s4dModes(N);
  return new S4dMixer({
    inProj: w.matrix(`${p}in_proj.weight`, [2 * D, H]),
    inProjBias: w.maybe(c.useBias, `${p}in_proj.bias`, [2 * D]),
    conv: w.get(`${p}conv1d.weight`, [D, 1, K], [D, K]),
    convBias: w.maybe(c.useConvBias, `${p}conv1d.bias`, [D]),
    logDt: w.get(`${p}s4d.log_dt`, [D]),
    logAReal: w.get(`${p}s4d.log_A_real`, [D, M]),
    AImag: w.get(`${p}s4d.A_imag`, [D, M]),
    C: w.get(`${p}s4d.C`, [D, M, 2]),
    D: w.get(`${p}D`, [D]),
    outProj: w.matrix(`${p}out_proj.weight`, [H, D]),
    outProjBias: w.maybe(c.useBias, `${p}out_proj.bias`, [H]),
  });
}

export interface MambaOptions {
  backend?: Backend;
  /** prefill scan algorithm (default: the backend's, `Backend.prefill`); decode (one token) is always sequential */
  scan?: { algorithm?: 'sequential' | 'chunked'; chunkSize?: number };
}

export class MambaLM extends DecoderLM {
  constructor(readonly config: MambaConfig, weights: WeightSource, opts: MambaOptions = {}) {
    const c = config;
    const backend = opts.backend ?? cpu;
    const scan = prefillOptions(backend, 'scan', opts.scan, 64);
    const { hiddenSize: H, innerSize: D, stateSize: N, dtRank: R, convKernel: K, vocabSize: V } = c;
    const w = new WeightLoader(weights, backend,
      `hidden_size=${H}, intermediate_size=${D}, state_size=${N}, time_step_rank=${R}, conv_kernel=${K}, vocab_size=${V}`);
    const prefix = w.has('backbone.embeddings.weight') || w.has('backbone.embedding.weight') ? 'backbone.' : '';
    const embed = w.matrix(w.pick(`${prefix}embeddings.weight`, `${prefix}embedding.weight`), [V, H]);
    const blocks = Array.from({ length: c.numLayers }, (_, i) => {
      const m = `${prefix}layers.${i}.mixer.`;
      if (c.mixer === 's4d') return [{ norm: w.get(`${prefix}layers.${i}.norm.weight`, [H]), mixer: loadS4dMixer(w, m, c) }];
      const mixer = loadMamba1Mixer(w, m, c, scan, c.mixerRmsEps !== undefined ? { dt: null, B: null, C: null, eps: c.mixerRmsEps } : undefined);
      return [{ norm: w.get(`${prefix}layers.${i}.norm.weight`, [H]), mixer }];
    });
    const falcon = c.mixerRmsEps !== undefined;
    const s4d = c.mixer === 's4d';
    super({
      params: w.params,
      modelType: falcon ? 'falcon_mamba' : 'mamba',
      fingerprint: `${falcon ? 'falcon_mamba' : s4d ? 'mamba-s4d' : 'mamba'}:H${H}:D${D}:N${N}:K${K}:R${R}:L${c.numLayers}:V${V}`,
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
        architecture: falcon ? 'FalconMamba (Mamba-1 with B/C/Δ RMS normalisation)' : s4d ? 'Mamba block with an LTI S4D layer (ablation)' : 'Mamba-1 (selective SSM)',
        config_naming: c.source,
        hidden_size: H,
        intermediate_size: D,
        state_size: N,
        time_step_rank: R,
        conv_kernel: K,
        num_layers: c.numLayers,
        vocab_size: V,
        tied_embeddings: c.tieEmbeddings,
        prefill_scan: scan.algorithm,
        prefill_chunk_size: scan.chunkSize,
      },
    });
  }

  get scanAlgorithm(): string {
    return String(this.spec.summary.prefill_scan);
  }
  get scanChunkSize(): number {
    return Number(this.spec.summary.prefill_chunk_size);
  }
}
