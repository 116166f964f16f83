/**
 * Optimizer pieces for training: AdamW, gradient clipping by global L2 norm, gradient accumulation,
 * zeroing, and optimizer state as named Float32Arrays for checkpoints.
 *
 * AdamW is PyTorch's `torch.optim.AdamW` (decoupled weight decay, Loshchilov & Hutter), per element,
 * at optimizer step t = 1, 2, …, with g the gradient, η the learning rate (times the parameter's
 * `lrScale`) and λ the weight decay (0 for no-decay parameters):
 *
 *     p ← p − η·λ·p                                  (decoupled decay, applied first)
 *     m ← β1·m + (1 − β1)·g
 *     v ← β2·v + (1 − β2)·g²
 *     p ← p − (η / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
 *
 * The arithmetic is done in float64 and stored in the parameter's array type (float32 for training,
 * float64 for checks); the moments m and v are kept in the same array type as the parameter.
 * A parameter whose `grad` is null at a step is left untouched (as PyTorch does); the step count t
 * is one count for the whole optimizer (PyTorch keeps one per parameter: the two differ only for
 * parameters that sometimes get no gradient).
 */
import type { FloatArray, Param } from './param.js';
import type { Tensor } from '../tensor/tensor.js';
import { MambaTsError } from '../errors.js';

export class OptimizerError extends MambaTsError {}

/**
 * The no-weight-decay rule, after the official Mamba code and recipe. True (no decay) for:
 *
 * - the SSM parameters the official modules mark `_no_weight_decay`: `A_log` and `D` (Mamba-1 and
 *   Mamba-2 mixers), `dt_bias` (Mamba-2); and Mamba-1's `dt_proj.bias` (covered by the bias rule);
 * - every bias (a name whose last part is `bias`: `dt_proj.bias`, `conv1d.bias`, Linear biases);
 * - every normalization weight: any name part containing `norm` (`norm`, `norm_f`, `mixer.norm`
 *   (gated RMSNorm), `input_layernorm`, `post_attention_layernorm`, `pre_ff_layernorm`,
 *   `dt_layernorm`/`b_layernorm`/`c_layernorm`, `q_norm`, …) or a part `ln_*`;
 * - the S4/S4D kernel parameters that the S4 code registers with weight decay 0: a last part
 *   `log_dt`, `A_real`, `inv_A_real`, `log_A_real`, `A_imag`;
 * - embeddings (a part `embeddings`, `embedding`, `embed_tokens` or `wte`) only when
 *   `opts.embeddings` is true. By default embeddings ARE decayed, as in the GPT-style recipe the
 *   Mamba paper follows (decay every matrix, no decay on biases and norms).
 *
 * Everything else (in/out/x projections, `dt_proj.weight`, conv weights, attention and MLP
 * matrices, `lm_head.weight`) is decayed.
 */
export function defaultNoDecay(name: string, opts: { embeddings?: boolean } = {}): boolean {
  const parts = name.split('.');
  const last = parts[parts.length - 1];
  if (last === 'A_log' || last === 'D' || last === 'dt_bias') return true;
  if (last === 'bias') return true;
  if (last === 'log_dt' || last === 'A_real' || last === 'inv_A_real' || last === 'log_A_real' || last === 'A_imag') return true;
  for (const p of parts) {
    if (/norm/i.test(p) || /^ln(_|$)/.test(p)) return true;
  }
  if (opts.embeddings) {
    for (const p of parts) if (p === 'embeddings' || p === 'embedding' || p === 'embed_tokens' || p === 'wte') return true;
  }
  return false;
}

/** The Mamba paper's training recipe (App. E.2, GPT-3 style): AdamW β = (0.9, 0.95), weight decay 0.1, clip 1.0. */
export const MAMBA_RECIPE = Object.freeze({ betas: [0.9, 0.95] as const, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 1.0 });

export interface AdamWOptions {
  /** learning rate (default 1e-3); can be changed between steps (`opt.lr = …`) or passed to `step(lr)` */
  lr?: number;
  /** (β1, β2), default (0.9, 0.999) as PyTorch; the Mamba recipe uses (0.9, 0.95) */
  betas?: readonly [number, number];
  /** default 1e-8 */
  eps?: number;
  /** decoupled weight decay λ for decayed parameters (default 0.01 as PyTorch; the Mamba recipe uses 0.1) */
  weightDecay?: number;
  /** true = this parameter gets no weight decay (default `defaultNoDecay`) */
  noDecay?: (name: string) => boolean;
  /** per-parameter learning-rate multiplier (default 1 for all), e.g. a lower LR for SSM parameters as S4 does */
  lrScale?: (name: string) => number;
}

/** Optimizer state as named float32 tensors, ready to be written as safetensors. */
export interface OptimizerState {
  /** 'adamw' */
  kind: string;
  /** optimizer steps taken */
  step: number;
  /** hyperparameters at export time (lr, beta1, beta2, eps, weight_decay) */
  hyper: Record<string, number>;
  /** `${param}.exp_avg` and `${param}.exp_avg_sq` for every parameter */
  tensors: Record<string, { shape: number[]; data: Float32Array }>;
}

interface Slot {
  param: Param;
  m: FloatArray;
  v: FloatArray;
  decay: boolean;
  lrScale: number;
}

/** The factors of one AdamW step (`AdamW.beginStep`). */
export interface AdamWFactors {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1 − β1^t */
  bc1: number;
  /** √(1 − β2^t) */
  sqrtBc2: number;
}

/**
 * The AdamW update of elements [lo, hi) of one parameter, its gradient first multiplied by `gradScale` (clipping;
 * 1: none, the gradient is left as it is): m ← β1 m + (1 − β1) g, v ← β2 v + (1 − β2) g²,
 * p ← p (1 − lr·λ) − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε), with lr = f.lr · lrScale and λ = 0 when the
 * parameter is not decayed. The one implementation of the update (`AdamW.step` and the data-parallel workers).
 */
export function adamwUpdate(p: FloatArray, g: FloatArray, m: FloatArray, v: FloatArray, lo: number, hi: number, f: AdamWFactors, lrScale: number, decay: boolean, gradScale: number): void {
  const b1 = f.beta1;
  const b2 = f.beta2;
  const sqrtBc2 = f.sqrtBc2;
  const eps = f.eps;
  const lrP = f.lr * lrScale;
  const decayFactor = decay ? 1 - lrP * f.weightDecay : 1;
  const stepSize = lrP / f.bc1;
  if (gradScale !== 1) for (let i = lo; i < hi; i++) g[i] *= gradScale;
  for (let i = lo; i < hi; i++) {
    const gi = g[i];
    const mi = b1 * m[i] + (1 - b1) * gi;
    const vi = b2 * v[i] + (1 - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decayFactor - (stepSize * mi) / (Math.sqrt(vi) / sqrtBc2 + eps);
  }
}

function checkNumber(what: string, v: number, lo: number, hi: number, hiOpen = false): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || (hiOpen ? v >= hi : v > hi)) {
    throw new OptimizerError(`AdamW: ${what} must be a finite number in [${lo}, ${hi}${hiOpen ? ')' : ']'}, got ${v}`);
  }
}

/** AdamW's hyperparameters with the defaults filled in, checked (errors name the option) */
export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  noDecay: (name: string) => boolean;
  lrScale: (name: string) => number;
}

/** `AdamWOptions` with PyTorch's defaults, checked; `lrScale(name)` is checked per parameter by the caller (`checkLrScale`) */
export function adamwHyper(opts: AdamWOptions): AdamWHyper {
  const lr = opts.lr ?? 1e-3;
  const [beta1, beta2] = opts.betas ?? [0.9, 0.999];
  const eps = opts.eps ?? 1e-8;
  const weightDecay = opts.weightDecay ?? 0.01;
  checkNumber('lr', lr, 0, Infinity);
  checkNumber('betas[0]', beta1, 0, 1, true);
  checkNumber('betas[1]', beta2, 0, 1, true);
  checkNumber('eps', eps, 0, Infinity);
  checkNumber('weightDecay', weightDecay, 0, Infinity);
  return { lr, beta1, beta2, eps, weightDecay, noDecay: opts.noDecay ?? ((n: string) => defaultNoDecay(n)), lrScale: opts.lrScale ?? (() => 1) };
}

/** a parameter's learning-rate multiplier, checked */
export function checkLrScale(h: AdamWHyper, name: string): number {
  const scale = h.lrScale(name);
  checkNumber(`lrScale("${name}")`, scale, 0, Infinity);
  return scale;
}

/** the factors of AdamW step t at learning rate `lr` */
export function adamwFactors(h: Pick<AdamWHyper, 'beta1' | 'beta2' | 'eps' | 'weightDecay'>, lr: number, t: number): AdamWFactors {
  return { lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay, bc1: 1 - Math.pow(h.beta1, t), sqrtBc2: Math.sqrt(1 - Math.pow(h.beta2, t)) };
}

/** the learning rate a step passes (`step(lr)`), checked */
export function checkLr(lr: number): number {
  checkNumber('lr', lr, 0, Infinity);
  return lr;
}

/**
 * What the training loop (src/train/trainer.ts) needs from an optimizer: `AdamW` over host arrays, `DeviceAdamW`
 * (src/train/device-optim.ts) over GPU tensors.
 */
export interface Optimizer {
  /** optimizer steps taken */
  readonly stepCount: number;
  lr: number;
  /** zero the gradients (fill with 0), or drop them (`setToNull`: the trainer, before a step's micro-batches) */
  zeroGrad(opts?: { setToNull?: boolean }): void;
  /**
   * One step at learning rate `lr`, the gradients first clipped to global L2 norm `maxNorm`; returns the norm
   * before clipping — a number, or on a device a scalar tensor there (read it when logging: nothing waits).
   */
  clipAndStep(lr: number, maxNorm: number): number | Tensor;
  /** the moments as named float32 tensors, the step count and hyperparameters (read back from a device) */
  exportState(): OptimizerState | Promise<OptimizerState>;
  /** restore `exportState()` output (errors name the tensor at fault) */
  importState(state: OptimizerState, label?: string): void;
}

function newLike(a: FloatArray, n: number): FloatArray {
  return a instanceof Float64Array ? new Float64Array(n) : new Float32Array(n);
}

export class AdamW implements Optimizer {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** optimizer steps taken (t of the last step) */
  stepCount = 0;
  private readonly slots: Slot[] = [];

  constructor(params: readonly Param[], opts: AdamWOptions = {}) {
    const h = adamwHyper(opts);
    this.lr = h.lr;
    this.beta1 = h.beta1;
    this.beta2 = h.beta2;
    this.eps = h.eps;
    this.weightDecay = h.weightDecay;
    const noDecay = h.noDecay;
    const seen = new Set<Param>();
    const names = new Set<string>();
    for (const p of params) {
      if (seen.has(p)) continue; // a tied parameter listed twice
      seen.add(p);
      if (typeof p.name !== 'string' || p.name === '') throw new OptimizerError('AdamW: every parameter needs a non-empty name (its checkpoint key)');
      if (names.has(p.name)) throw new OptimizerError(`AdamW: two different parameters are named "${p.name}"; names must be unique`);
      names.add(p.name);
      if (p.grad !== null && p.grad.length !== p.data.length) {
        throw new OptimizerError(`AdamW: parameter "${p.name}": grad has ${p.grad.length} values, data has ${p.data.length}`);
      }
      const scale = checkLrScale(h, p.name);
      this.slots.push({ param: p, m: newLike(p.data, p.data.length), v: newLike(p.data, p.data.length), decay: !noDecay(p.name), lrScale: scale });
    }
  }

  /** The parameters, deduplicated, in the order given. */
  get params(): Param[] {
    return this.slots.map((s) => s.param);
  }

  /** Names of the parameters that get weight decay and of those that do not (for logs). */
  groups(): { decay: string[]; noDecay: string[] } {
    const decay: string[] = [];
    const noDecay: string[] = [];
    for (const s of this.slots) (s.decay ? decay : noDecay).push(s.param.name);
    return { decay, noDecay };
  }

  /** Whether `name` is weight-decayed by this optimizer. */
  isDecayed(name: string): boolean {
    const s = this.slots.find((x) => x.param.name === name);
    if (!s) throw new OptimizerError(`AdamW: no parameter named "${name}"`);
    return s.decay;
  }

  /** One AdamW update of every parameter that has a gradient. `lr` overrides (and sets) `this.lr`. */
  step(lr?: number): void {
    if (lr !== undefined) {
      checkNumber('lr', lr, 0, Infinity);
      this.lr = lr;
    }
    const f = this.beginStep();
    for (const s of this.slots) {
      const g = s.param.grad;
      if (g === null) continue;
      const p = s.param.data;
      if (g.length !== p.length) throw new OptimizerError(`AdamW.step: parameter "${s.param.name}": grad has ${g.length} values, data has ${p.length}`);
      adamwUpdate(p, g, s.m, s.v, 0, p.length, f, s.lrScale, s.decay, 1);
    }
  }

  /**
   * Count a step and return its factors, for updates applied elsewhere with `adamwUpdate` (the data-parallel
   * workers, src/train/parallel.ts); `lr` overrides (and sets) `this.lr`.
   */
  beginStep(lr?: number): AdamWFactors {
    if (lr !== undefined) {
      checkNumber('lr', lr, 0, Infinity);
      this.lr = lr;
    }
    return adamwFactors(this, this.lr, ++this.stepCount);
  }

  /**
   * Move every parameter's moments to the arrays `place` gives (values kept; null: leave them), e.g. views of shared
   * memory that worker threads update; returns each parameter's weight-decay flag and learning-rate multiplier.
   */
  relocateMoments(place: (p: Param) => { m: Float32Array; v: Float32Array } | null): Map<Param, { decay: boolean; lrScale: number }> {
    const info = new Map<Param, { decay: boolean; lrScale: number }>();
    for (const s of this.slots) {
      const to = place(s.param);
      if (to) {
        to.m.set(s.m);
        to.v.set(s.v);
        s.m = to.m;
        s.v = to.v;
      }
      info.set(s.param, { decay: s.decay, lrScale: s.lrScale });
    }
    return info;
  }

  /** Zero every gradient (see `zeroGrad`); the trainer drops them (`setToNull`). */
  zeroGrad(opts: { setToNull?: boolean } = {}): void {
    zeroGrad(this.params, opts);
  }

  /** `clipGradNorm` then `step(lr)` (Optimizer): returns the norm before clipping */
  clipAndStep(lr: number, maxNorm: number): number {
    const norm = clipGradNorm(this.params, maxNorm);
    this.step(lr);
    return norm;
  }

  /** The moments as named float32 tensors (`${name}.exp_avg`, `${name}.exp_avg_sq`), the step count and hyperparameters. */
  exportState(): OptimizerState {
    const tensors: OptimizerState['tensors'] = {};
    for (const s of this.slots) {
      const shape = [...s.param.shape];
      tensors[`${s.param.name}.exp_avg`] = { shape, data: Float32Array.from(s.m) };
      tensors[`${s.param.name}.exp_avg_sq`] = { shape: shape.slice(), data: Float32Array.from(s.v) };
    }
    return {
      kind: 'adamw',
      step: this.stepCount,
      hyper: { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weight_decay: this.weightDecay },
      tensors,
    };
  }

  /**
   * Restore moments and step count from `exportState()` output (e.g. read back from a checkpoint).
   * Every parameter must have both tensors with its element count, and no tensor may be left over;
   * errors name the tensor. The learning rate is restored from `hyper.lr` when present (the
   * schedule normally sets it again anyway); betas/eps/weight decay stay as constructed.
   */
  importState(state: OptimizerState, label = 'optimizer state'): void {
    if (state.kind !== 'adamw') throw new OptimizerError(`${label}: kind is "${state.kind}", expected "adamw"`);
    if (!Number.isSafeInteger(state.step) || state.step < 0) {
      throw new OptimizerError(`${label}: step must be a non-negative integer, got ${state.step}`);
    }
    const used = new Set<string>();
    const loaded: [Slot, Float32Array, Float32Array][] = [];
    for (const s of this.slots) {
      const pair: Float32Array[] = [];
      for (const suffix of ['exp_avg', 'exp_avg_sq']) {
        const key = `${s.param.name}.${suffix}`;
        const t = state.tensors[key];
        if (!t) throw new OptimizerError(`${label}: missing tensor "${key}" for parameter "${s.param.name}"`);
        if (!(t.data instanceof Float32Array)) throw new OptimizerError(`${label}: tensor "${key}": expected a Float32Array`);
        if (t.data.length !== s.param.data.length) {
          throw new OptimizerError(
            `${label}: tensor "${key}" has ${t.data.length} values, parameter "${s.param.name}" has ${s.param.data.length} (shape [${s.param.shape.join(', ')}])`,
          );
        }
        used.add(key);
        pair.push(t.data);
      }
      loaded.push([s, pair[0], pair[1]]);
    }
    const extra = Object.keys(state.tensors).filter((k) => !used.has(k));
    if (extra.length > 0) {
      throw new OptimizerError(
        `${label}: ${extra.length} tensor(s) match no parameter of this model, e.g. "${extra[0]}" (was the state saved for a different model?)`,
      );
    }
    for (const [s, m, v] of loaded) {
      s.m.set(m);
      s.v.set(v);
    }
    this.stepCount = state.step;
    const lr = state.hyper?.['lr'];
    if (typeof lr === 'number' && Number.isFinite(lr) && lr >= 0) this.lr = lr;
  }
}

/** Global L2 norm of all gradients (null gradients count as zero), computed in float64. */
export function gradNorm(params: readonly Param[]): number {
  let sq = 0;
  for (const p of uniq(params)) {
    const g = p.grad;
    if (g === null) continue;
    for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
  }
  return Math.sqrt(sq);
}

/**
 * Clip gradients by their global L2 norm, as `torch.nn.utils.clip_grad_norm_`: when the norm
 * exceeds `maxNorm`, every gradient is multiplied by `maxNorm / (norm + 1e-6)`. Returns the norm
 * BEFORE clipping. A non-finite norm (NaN/Inf gradients) leaves the gradients untouched and is
 * returned, so the caller can skip the step.
 */
export function clipGradNorm(params: readonly Param[], maxNorm: number): number {
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) throw new OptimizerError(`clipGradNorm: maxNorm must be a positive finite number, got ${maxNorm}`);
  const norm = gradNorm(params);
  if (!Number.isFinite(norm)) return norm;
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) scaleGrads(params, coef);
  return norm;
}

/** Multiply every (non-null) gradient by `s`. */
export function scaleGrads(params: readonly Param[], s: number): void {
  for (const p of uniq(params)) {
    const g = p.grad;
    if (g === null) continue;
    for (let i = 0; i < g.length; i++) g[i] *= s;
  }
}

/**
 * Reset gradients before the next accumulation: fill them with 0 (default, keeps the buffers), or
 * set them to null (`setToNull`, frees them; the autograd allocates again on first use).
 */
export function zeroGrad(params: readonly Param[], opts: { setToNull?: boolean } = {}): void {
  for (const p of params) {
    if (opts.setToNull) p.grad = null;
    else p.grad?.fill(0);
  }
}

/**
 * Gradient accumulation over `k` micro-batches: zero the gradients, call `micro(i)` for
 * i = 0 … k−1 (each runs forward + backward on one micro-batch and returns its mean loss; backward
 * must ADD into `grad`, as `src/autograd` does), then divide the gradients by k, so they are the
 * gradient of the mean of the k micro-batch losses. Returns that mean loss.
 */
export function accumulateGradients(params: readonly Param[], k: number, micro: (i: number) => number): number {
  checkK(k);
  zeroGrad(params);
  let total = 0;
  for (let i = 0; i < k; i++) total += micro(i);
  if (k > 1) scaleGrads(params, 1 / k);
  return total / k;
}

/** `accumulateGradients` for an async micro-step. */
export async function accumulateGradientsAsync(
  params: readonly Param[],
  k: number,
  micro: (i: number) => number | Promise<number>,
): Promise<number> {
  checkK(k);
  zeroGrad(params);
  let total = 0;
  for (let i = 0; i < k; i++) total += await micro(i);
  if (k > 1) scaleGrads(params, 1 / k);
  return total / k;
}

function checkK(k: number): void {
  if (!Number.isSafeInteger(k) || k < 1) throw new OptimizerError(`gradient accumulation: k (micro-batches) must be an integer >= 1, got ${k}`);
}

function uniq(params: readonly Param[]): Iterable<Param> {
  return params.length < 2 ? params : new Set(params);
}
