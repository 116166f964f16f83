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
 */
import type { Backend } from '../backend/backend.js';
import { cpu } from '../backend/cpu/index.js';
import type { WeightSource } from '../io/weights.js';
import * as ops from '../tensor/ops.js';
import type { HostTensor, Tensor } from '../tensor/tensor.js';
import { ConfigFields, type RawConfig } from './config.js';
import { ModelError } from './errors.js';
import type { CausalLM, ForwardOptions, ForwardOutput } from './model.js';
import { ModelState } from './state.js';

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
}

/** Parse an HF (`model_type: "mamba"`) or state-spaces (`d_model`/`n_layer`/`ssm_cfg`) config.json. */
export function parseMambaConfig(raw: RawConfig, file = 'config.json'): MambaConfig {
  const f = new ConfigFields(raw, file);
  const act = f.str('hidden_act', 'silu');
  if (act !== 'silu') throw new ModelError(`${file}: field "hidden_act" is "${act}"; only "silu" is supported`);
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
  return {
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
  };
}

interface MixerWeights {
  inProj: Tensor; // [2D, H]
  inProjBias: Tensor | null;
  conv: Tensor; // [D, K]
  convBias: Tensor | null;
  xProj: Tensor; // [R+2N, D]
  dtProj: Tensor; // [D, R]
  dtBias: Tensor; // [D]
  A: Tensor; // [D, N] = −exp(A_log)
  D: Tensor; // [D]
  outProj: Tensor; // [H, D]
  outProjBias: Tensor | null;
}

interface LayerWeights {
  norm: Tensor;
  mixer: MixerWeights;
}

export interface MambaOptions {
  backend?: Backend;
  /** prefill scan algorithm; decode (one token) is always sequential */
  scan?: { algorithm?: 'sequential' | 'chunked'; chunkSize?: number };
}

export class MambaLM implements CausalLM {
  readonly modelType = 'mamba';
  readonly backend: Backend;
  readonly scanAlgorithm: 'sequential' | 'chunked';
  readonly scanChunkSize: number;
  private readonly embed: Tensor;
  private readonly layers: LayerWeights[];
  private readonly normF: Tensor;
  private readonly lmHead: Tensor;

  constructor(readonly config: MambaConfig, weights: WeightSource, opts: MambaOptions = {}) {
    this.backend = opts.backend ?? cpu;
    this.scanAlgorithm = opts.scan?.algorithm ?? 'chunked';
    this.scanChunkSize = opts.scan?.chunkSize ?? 64;
    const c = config;
    const { hiddenSize: H, innerSize: D, stateSize: N, dtRank: R, convKernel: K, vocabSize: V } = c;
    const w = new WeightLoader(weights, this.backend, c);
    const prefix = weights.has('backbone.embeddings.weight') || weights.has('backbone.embedding.weight') ? 'backbone.' : '';
    const embName = weights.has(`${prefix}embeddings.weight`) ? `${prefix}embeddings.weight` : `${prefix}embedding.weight`;
    this.embed = w.get(embName, [V, H]);
    this.layers = [];
    for (let i = 0; i < c.numLayers; i++) {
      const p = `${prefix}layers.${i}.`;
      const m = `${p}mixer.`;
      const Alog = w.host(`${m}A_log`, [D, N]);
      const A = new Float32Array(Alog.length);
      for (let j = 0; j < A.length; j++) A[j] = -Math.exp(Alog[j]);
      this.layers.push({
        norm: w.get(`${p}norm.weight`, [H]),
        mixer: {
          inProj: w.get(`${m}in_proj.weight`, [2 * D, H]),
          inProjBias: c.useBias ? w.get(`${m}in_proj.bias`, [2 * D]) : null,
          conv: w.get(`${m}conv1d.weight`, [D, 1, K], [D, K]),
          convBias: c.useConvBias ? w.get(`${m}conv1d.bias`, [D]) : null,
          xProj: w.get(`${m}x_proj.weight`, [R + 2 * N, D]),
          dtProj: w.get(`${m}dt_proj.weight`, [D, R]),
          dtBias: w.get(`${m}dt_proj.bias`, [D]),
          A: this.backend.fromHost(A, [D, N]),
          D: w.get(`${m}D`, [D]),
          outProj: w.get(`${m}out_proj.weight`, [H, D]),
          outProjBias: c.useBias ? w.get(`${m}out_proj.bias`, [H]) : null,
        },
      });
    }
    this.normF = w.get(`${prefix}norm_f.weight`, [H]);
    this.lmHead = c.tieEmbeddings ? this.embed : w.get('lm_head.weight', [V, H]);
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }
  get numLayers(): number {
    return this.config.numLayers;
  }
  get eosTokenIds(): number[] {
    return this.config.eosTokenIds;
  }

  get fingerprint(): string {
    const c = this.config;
    return `mamba:H${c.hiddenSize}:D${c.innerSize}:N${c.stateSize}:K${c.convKernel}:R${c.dtRank}:L${c.numLayers}:V${c.vocabSize}`;
  }

  createState(batch: number): ModelState {
    if (!Number.isInteger(batch) || batch < 1) throw new ModelError(`createState: batch must be a positive integer, got ${batch}`);
    const { innerSize: D, stateSize: N, convKernel: K } = this.config;
    const layers = this.layers.map(() => ({
      conv: this.backend.zeros([batch, D, K]),
      ssm: this.backend.zeros([batch, D, N]),
    }));
    return new ModelState(this.fingerprint, layers, batch, new Array(batch).fill(0));
  }

  /** The selective SSM mixer (Fig. 3, right). h: (b, L, H) → (b, L, H) */
  private mixer(m: MixerWeights, h: Tensor, st: Record<string, Tensor> | null, L: number): Tensor {
    const { innerSize: D, stateSize: N, dtRank: R } = this.config;
    const [xs, z] = ops.split(ops.linear(h, m.inProj, m.inProjBias), [D, D]); // (b, L, D) each
    const u = ops.causalConv1d({ x: xs, weight: m.conv, bias: m.convBias, state: st?.conv ?? null, activation: 'silu' }); // (b, L, D)
    const [dtLow, B, C] = ops.split(ops.linear(u, m.xProj), [R, N, N]); // (b, L, R), (b, L, N), (b, L, N)
    const delta = ops.linear(dtLow, m.dtProj); // (b, L, D); dt bias + softplus inside the scan
    const y = ops.selectiveScan({
      u, delta, A: m.A, B, C, D: m.D, z, deltaBias: m.dtBias, deltaSoftplus: true,
      state: st?.ssm ?? null,
      algorithm: L > 1 ? this.scanAlgorithm : 'sequential',
      chunkSize: this.scanChunkSize,
    }); // (b, L, D)
    return ops.linear(y, m.outProj, m.outProjBias); // (b, L, H)
  }

  /** Embedding → blocks → norm_f. Returns the final-normed hidden states and, if asked, every layer's output. */
  private run(ids: number[][], state: ModelState | null, collect: boolean): { last: Tensor; hidden: Tensor[] } {
    const b = ids.length;
    const L = ids[0].length;
    const flat = Int32Array.from(ids.flat());
    let x = ops.embedding(this.embed, flat, [b, L, this.config.hiddenSize]); // (b, L, H)
    const hidden: Tensor[] = [];
    this.layers.forEach((layer, i) => {
      const h = ops.rmsNorm(x, layer.norm, this.config.normEps);
      x = ops.add(x, this.mixer(layer.mixer, h, state ? state.layers[i] : null, L));
      if (collect) hidden.push(x);
    });
    const last = ops.rmsNorm(x, this.normF, this.config.normEps);
    if (collect) hidden.push(last); // HF MambaModel: layer outputs 1..n, then the final-normed output
    if (state) for (let r = 0; r < b; r++) state.seqLen[r] += L;
    return { last, hidden };
  }

  async forward(ids: number[][], opts: ForwardOptions = {}): Promise<ForwardOutput> {
    this.checkIds(ids, 'input');
    if (opts.state) this.checkState(opts.state, ids.length);
    const L = ids[0].length;
    const keep = Math.min(L, opts.logitsToKeep ?? L);
    if (!Number.isInteger(keep) || keep < 1) throw new ModelError(`forward: logitsToKeep must be a positive integer, got ${opts.logitsToKeep}`);
    const { last, hidden } = this.run(ids, opts.state ?? null, !!opts.outputHiddenStates);
    const b = ids.length;
    const H = this.config.hiddenSize;
    const tail = keep === L ? last : ops.reshape(ops.takeRows(ops.reshape(last, [b * L, H]), lastPositions(b, L, keep)), [b, keep, H]);
    const logits = ops.linear(tail, this.lmHead);
    const out: ForwardOutput = { logits: { shape: [b, keep, this.vocabSize], data: await logits.data() } };
    if (opts.outputHiddenStates) out.hiddenStates = await Promise.all(hidden.map(async (t) => ({ shape: [...t.shape], data: await t.data() })));
    return out;
  }

  async advance(ids: number[][], state: ModelState): Promise<HostTensor> {
    this.checkIds(ids, 'input');
    this.checkState(state, ids.length);
    const out = await this.forward(ids, { state, logitsToKeep: 1 });
    return { shape: [ids.length, this.vocabSize], data: out.logits.data };
  }

  describe(): Record<string, unknown> {
    const c = this.config;
    const { hiddenSize: H, innerSize: D, stateSize: N, dtRank: R, convKernel: K, vocabSize: V } = c;
    const perLayer = H + 2 * D * H + (c.useBias ? 2 * D + H : 0) + D * K + (c.useConvBias ? D : 0) + (R + 2 * N) * D + D * R + D + D * N + D + H * D;
    return {
      architecture: 'Mamba-1 (selective SSM)',
      config_naming: c.source,
      hidden_size: H,
      intermediate_size: D,
      state_size: N,
      time_step_rank: R,
      conv_kernel: K,
      num_layers: c.numLayers,
      vocab_size: V,
      tied_embeddings: c.tieEmbeddings,
      parameters: V * H + c.numLayers * perLayer + H + (c.tieEmbeddings ? 0 : V * H),
      state_bytes_per_sequence: c.numLayers * D * (K + N) * 4,
      backend: this.backend.name,
      prefill_scan: this.scanAlgorithm,
    };
  }

  private checkIds(ids: number[][], where: string): void {
    if (!Array.isArray(ids) || ids.length === 0) throw new ModelError(`${where}: ids must be a non-empty array of token-id rows`);
    const L = Array.isArray(ids[0]) ? ids[0].length : -1;
    ids.forEach((row, r) => {
      if (!Array.isArray(row)) throw new ModelError(`${where}: ids[${r}] is not an array of token ids`);
      if (row.length === 0) throw new ModelError(`${where}: ids[${r}] is empty; every sequence needs at least one token`);
      if (row.length !== L) throw new ModelError(`${where}: rows have different lengths (ids[0] has ${L}, ids[${r}] has ${row.length}); use generate() for prompts of different lengths`);
      row.forEach((id, t) => {
        if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
          throw new ModelError(`${where}: token id ids[${r}][${t}] = ${id} is out of range; expected an integer in [0, ${this.vocabSize})`);
        }
      });
    });
  }

  private checkState(state: ModelState, batch: number): void {
    if (state.fingerprint !== this.fingerprint) throw new ModelError(`state belongs to another model (${state.fingerprint}); this model is ${this.fingerprint}`);
    if (state.batch !== batch) throw new ModelError(`state holds ${state.batch} sequences but ${batch} rows of ids were given`);
  }
}

function lastPositions(b: number, L: number, keep: number): number[] {
  const rows: number[] = [];
  for (let r = 0; r < b; r++) for (let t = L - keep; t < L; t++) rows.push(r * L + t);
  return rows;
}

/** Fetch checkpoint tensors, check their shapes against the config, hand them to the backend. */
class WeightLoader {
  constructor(private readonly src: WeightSource, private readonly backend: Backend, private readonly cfg: MambaConfig) {}

  host(name: string, shape: number[]): Float32Array {
    if (!this.src.has(name)) throw new ModelError(`checkpoint is missing tensor "${name}" (expected shape [${shape.join(', ')}] from config.json)`);
    const e = this.src.entry(name);
    if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i])) {
      const c = this.cfg;
      throw new ModelError(
        `tensor "${name}" in ${e.file} has shape [${e.shape.join(', ')}], but config.json implies [${shape.join(', ')}] ` +
          `(hidden_size=${c.hiddenSize}, intermediate_size=${c.innerSize}, state_size=${c.stateSize}, time_step_rank=${c.dtRank}, conv_kernel=${c.convKernel}, vocab_size=${c.vocabSize})`,
      );
    }
    return this.src.float32(name);
  }

  get(name: string, shape: number[], viewAs?: number[]): Tensor {
    return this.backend.fromHost(this.host(name, shape), viewAs ?? shape);
  }
}
