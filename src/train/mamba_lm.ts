/**
 * A trainable Mamba-1 language model on the autograd engine (`src/autograd`). Parameters carry the
 * Hugging Face names and shapes, so a training checkpoint is an HF checkpoint: `loadModel()` (and
 * transformers' `MambaForCausalLM`) read it directly, and fine-tuning starts from any HF Mamba folder.
 *
 * The block follows the paper (and HF `MambaMixer.slow_forward`) line by line:
 *   x, z = in_proj(h)                      expansion ×2, gate branch z
 *   x = silu(conv1d(x))                    causal depthwise convolution over time
 *   Δ', B, C = x_proj(x);  Δ = dt_proj(Δ') selection: step, input and output matrices depend on x
 *   y = S6(x; Δ + b_Δ, A = −exp(A_log), B, C, D)   selective scan (softplus on Δ)
 *   out = out_proj(y · silu(z))
 * and h ← h + out(norm(h)) per layer, then norm_f and the (tied) LM head.
 *
 * For ablations the S6 scan can be replaced by an LTI S4D layer (`mixer: 's4d'`): the same block with
 * a per-channel diagonal SSM whose kernel is input-independent and applied by FFT convolution — the
 * "Mamba architecture with an S4 layer" row of the paper's selective-copying table.
 */
import * as ag from '../autograd/ops.js';
import * as fused from '../autograd/fused.js';
import { param, type Var } from '../autograd/var.js';
import { Rng } from '../generate/rng.js';
import { type TensorSource, WeightSource } from '../io/weights.js';
import { readConfig } from '../models/config-file.js';
import { initMambaWeights, mambaConfigJson } from '../models/init.js';
import { type MambaConfig, parseMambaConfig } from '../models/mamba.js';
import { complexRandn, type S4dInitKind, s4dInit } from '../ssm/s4.js';
import * as path from 'node:path';
import { TrainError } from './errors.js';

export type MixerKind = 's6' | 's4d';

export interface TrainableMambaOptions {
  mixer?: MixerKind;
  /** S4D initialization of A when mixer = 's4d' (default 'lin') */
  s4dInit?: S4dInitKind;
  seed?: number;
  /** scan checkpoint interval for the backward pass */
  scanChunk?: number;
}

/** What the trainer needs from a model. */
export interface TrainableModel {
  /** trainable parameters, named and shaped as in the checkpoint (saved as they are) */
  readonly params: ReadonlyMap<string, Var>;
  /** config.json contents */
  configJson(): Record<string, unknown>;
}

/** number of trainable values of a model */
export function countParameters(model: TrainableModel): number {
  let n = 0;
  for (const v of model.params.values()) n += v.size;
  return n;
}

/** the model's parameter `name` (a missing one is a bug in the model's own code) */
export function modelParam(model: TrainableModel, name: string): Var {
  const v = model.params.get(name);
  if (!v) throw new TrainError(`${model.constructor.name}: no parameter "${name}"`);
  return v;
}

export class TrainableMambaLM implements TrainableModel {
  readonly params = new Map<string, Var>();
  readonly mixer: MixerKind;
  private readonly scanChunk: number;

  /**
   * @param tensors checkpoint tensors by HF name (f32); every name the config needs must be present.
   */
  constructor(
    readonly config: MambaConfig,
    tensors: Record<string, { data: Float32Array; shape: readonly number[] }>,
    opts: TrainableMambaOptions = {},
  ) {
    this.mixer = opts.mixer ?? 's6';
    this.scanChunk = opts.scanChunk ?? 64;
    if (config.mixerRmsEps !== undefined) throw new TrainError('TrainableMambaLM: FalconMamba (mixer RMS norms) is not supported for training yet');
    for (const name of expectedNames(config, this.mixer)) {
      const t = tensors[name];
      if (!t) throw new TrainError(`TrainableMambaLM: tensor "${name}" is missing from the checkpoint`);
      this.params.set(name, param(name, Float32Array.from(t.data), [...t.shape]));
    }
  }

  /** Fresh weights: HF-style Mamba init (S6), or S4D parameters in place of the S6 ones. */
  static init(config: MambaConfig, opts: TrainableMambaOptions = {}): TrainableMambaLM {
    const seed = opts.seed ?? 0;
    const t: Record<string, { data: Float32Array; shape: readonly number[] }> = {};
    for (const [k, v] of Object.entries(initMambaWeights(config, { seed }))) t[k] = { data: v.data as Float32Array, shape: v.shape };
    if ((opts.mixer ?? 's6') === 's4d') Object.assign(t, initS4dMixers(config, opts.s4dInit ?? 'lin', seed));
    return new TrainableMambaLM(config, t, opts);
  }

  /** Start from an HF (or state-spaces) Mamba checkpoint folder (f32/bf16/f16 weights, sharded or not). */
  static fromPretrained(dir: string, opts: TrainableMambaOptions = {}): TrainableMambaLM {
    const file = path.join(dir, 'config.json');
    const raw = readConfig(dir);
    const config = parseMambaConfig(raw, file);
    const src: TensorSource = WeightSource.openDir(dir);
    const mixer = (raw.mamba_ts as { mixer?: MixerKind } | undefined)?.mixer ?? 's6';
    const names = expectedNames(config, mixer);
    const t: Record<string, { data: Float32Array; shape: readonly number[] }> = {};
    for (const name of names) {
      const stored = config.source === 'state-spaces' ? toStateSpacesName(name) : name;
      if (!src.has(stored)) throw new TrainError(`${dir}: tensor "${stored}" is missing (needed by the ${config.numLayers}-layer Mamba in ${file})`);
      const want = expectedShape(config, mixer, name);
      const e = src.entry(stored);
      if (e.shape.length !== want.length || !e.shape.every((d, i) => d === want[i])) {
        throw new TrainError(`${dir}: tensor "${stored}" has shape [${e.shape.join(', ')}], expected [${want.join(', ')}] from ${file}`);
      }
      t[name] = { data: src.float32(stored), shape: want };
    }
    return new TrainableMambaLM({ ...config, source: 'hf' }, t, { ...opts, mixer });
  }

  private p(name: string): Var {
    return modelParam(this, name);
  }

  /** logits [b, L, V] for token ids [b·L] (row-major) */
  forward(ids: Int32Array, b: number, L: number): Var {
    const c = this.config;
    const H = c.hiddenSize;
    let h = ag.embedding(this.p('backbone.embeddings.weight'), ids, [b, L, H]);
    for (let i = 0; i < c.numLayers; i++) {
      const pre = `backbone.layers.${i}.`;
      const normed = ag.rmsNorm(h, this.p(`${pre}norm.weight`), c.normEps);
      h = ag.add(h, this.mixerForward(`${pre}mixer.`, normed, L));
    }
    const out = ag.rmsNorm(h, this.p('backbone.norm_f.weight'), c.normEps);
    const head = c.tieEmbeddings ? this.p('backbone.embeddings.weight') : this.p('lm_head.weight');
    return ag.linear(out, head);
  }

  private maybe(name: string): Var | null {
    return this.params.get(name) ?? null;
  }

  private mixerForward(m: string, h: Var, L: number): Var {
    const c = this.config;
    const D = c.innerSize;
    const N = c.stateSize;
    const [xIn, z] = ag.split(ag.linear(h, this.p(`${m}in_proj.weight`), this.maybe(`${m}in_proj.bias`)), [D, D]);
    const convW = this.p(`${m}conv1d.weight`);
    const x = ag.silu(fused.causalConv1d(xIn, ag.reshape(convW, [D, c.convKernel]), this.maybe(`${m}conv1d.bias`)));
    let y: Var;
    if (this.mixer === 's6') {
      const [dtLow, B, C] = ag.split(ag.linear(x, this.p(`${m}x_proj.weight`)), [c.dtRank, N, N]);
      const delta = ag.linear(dtLow, this.p(`${m}dt_proj.weight`));
      y = fused.selectiveScan({
        u: x,
        delta,
        A: ag.negExp(this.p(`${m}A_log`)),
        B,
        C,
        D: this.p(`${m}D`),
        z,
        deltaBias: this.p(`${m}dt_proj.bias`),
        deltaSoftplus: true,
        chunkSize: this.scanChunk,
      });
    } else {
      const K = fused.s4dKernel(this.p(`${m}s4d.log_dt`), this.p(`${m}s4d.log_A_real`), this.p(`${m}s4d.A_imag`), this.p(`${m}s4d.C`), L);
      y = ag.mul(fused.fftConv(x, K, this.p(`${m}D`)), ag.silu(z));
    }
    return ag.linear(y, this.p(`${m}out_proj.weight`), this.maybe(`${m}out_proj.bias`));
  }

  configJson(): Record<string, unknown> {
    const j = mambaConfigJson(this.config);
    if (this.mixer === 's4d') j.mamba_ts = { mixer: 's4d', note: 'LTI S4D layer in place of S6 (ablation); not loadable by HF transformers' };
    return j;
  }
}

function expectedNames(c: MambaConfig, mixer: MixerKind): string[] {
  const names = ['backbone.embeddings.weight'];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `backbone.layers.${i}.`;
    const m = `${p}mixer.`;
    names.push(`${p}norm.weight`, `${m}in_proj.weight`, `${m}conv1d.weight`, `${m}D`, `${m}out_proj.weight`);
    if (c.useBias) names.push(`${m}in_proj.bias`, `${m}out_proj.bias`);
    if (c.useConvBias) names.push(`${m}conv1d.bias`);
    if (mixer === 's6') names.push(`${m}x_proj.weight`, `${m}dt_proj.weight`, `${m}dt_proj.bias`, `${m}A_log`);
    else names.push(`${m}s4d.log_dt`, `${m}s4d.log_A_real`, `${m}s4d.A_imag`, `${m}s4d.C`);
  }
  names.push('backbone.norm_f.weight');
  if (!c.tieEmbeddings) names.push('lm_head.weight');
  return names;
}

function expectedShape(c: MambaConfig, mixer: MixerKind, name: string): number[] {
  const { hiddenSize: H, innerSize: D, stateSize: N, dtRank: R, convKernel: K, vocabSize: V } = c;
  const leaf = name.replace(/^backbone\.layers\.\d+\./, '');
  const modes = s4dModes(N);
  const table: Record<string, number[]> = {
    'backbone.embeddings.weight': [V, H],
    'lm_head.weight': [V, H],
    'backbone.norm_f.weight': [H],
    'norm.weight': [H],
    'mixer.in_proj.weight': [2 * D, H],
    'mixer.in_proj.bias': [2 * D],
    'mixer.conv1d.weight': [D, 1, K],
    'mixer.conv1d.bias': [D],
    'mixer.x_proj.weight': [R + 2 * N, D],
    'mixer.dt_proj.weight': [D, R],
    'mixer.dt_proj.bias': [D],
    'mixer.A_log': [D, N],
    'mixer.D': [D],
    'mixer.out_proj.weight': [H, D],
    'mixer.out_proj.bias': [H],
    'mixer.s4d.log_dt': [D],
    'mixer.s4d.log_A_real': [D, modes],
    'mixer.s4d.A_imag': [D, modes],
    'mixer.s4d.C': [D, modes, 2],
  };
  const s = table[leaf] ?? table[name];
  if (!s) throw new TrainError(`no expected shape for ${name} (${mixer})`);
  return s;
}

/** complex modes of an S4D layer with state size N (conjugate pairs: N/2) */
function s4dModes(N: number): number {
  return Math.max(1, Math.floor(N / 2));
}

function toStateSpacesName(name: string): string {
  return name.replace('backbone.embeddings.', 'backbone.embedding.');
}

/**
 * S4D parameters for every layer's SSM (per inner channel): log Δ ~ U(ln 1e-3, ln 1e-1), A from the chosen
 * S4D init (stored as log(−Re A) and Im A), C ~ complex N(0, ½ per part) — the minimal S4D module's recipe.
 */
export function initS4dMixers(c: MambaConfig, kind: S4dInitKind, seed: number): Record<string, { data: Float32Array; shape: number[] }> {
  const rng = new Rng(seed + 7919);
  const D = c.innerSize;
  const M = s4dModes(c.stateSize);
  const out: Record<string, { data: Float32Array; shape: number[] }> = {};
  for (let i = 0; i < c.numLayers; i++) {
    const m = `backbone.layers.${i}.mixer.s4d.`;
    const p = s4dParams(D, M, kind, rng);
    out[`${m}log_dt`] = { data: p.logDt, shape: [D] };
    out[`${m}log_A_real`] = { data: p.logAReal, shape: [D, M] };
    out[`${m}A_imag`] = { data: p.AImag, shape: [D, M] };
    out[`${m}C`] = { data: p.C, shape: [D, M, 2] };
  }
  return out;
}

/** Parameters of H independent diagonal SSMs of M complex modes each, for `fused.s4dKernel`. */
export function s4dParams(H: number, M: number, kind: S4dInitKind, rng: Rng, dtMin = 1e-3, dtMax = 1e-1): { logDt: Float32Array; logAReal: Float32Array; AImag: Float32Array; C: Float32Array } {
  const logDt = new Float32Array(H);
  const logAReal = new Float32Array(H * M);
  const AImag = new Float32Array(H * M);
  const C = new Float32Array(H * M * 2);
  // 'real' has N real modes for state size N; here M modes are asked for, so build it with N = M.
  const fixed = kind === 'random' ? null : kind === 'real' ? s4dInit('real', M) : s4dInit(kind, 2 * M);
  for (let h = 0; h < H; h++) {
    logDt[h] = Math.log(dtMin) + rng.next() * (Math.log(dtMax) - Math.log(dtMin));
    const A = fixed ?? s4dInit('random', 2 * M, rng);
    for (let n = 0; n < M; n++) {
      logAReal[h * M + n] = Math.log(-A.re[n]);
      AImag[h * M + n] = A.im[n];
    }
    const c = complexRandn(M, rng);
    for (let n = 0; n < M; n++) {
      C[(h * M + n) * 2] = c.re[n] * Math.SQRT1_2;
      C[(h * M + n) * 2 + 1] = c.im[n] * Math.SQRT1_2;
    }
  }
  return { logDt, logAReal, AImag, C };
}
