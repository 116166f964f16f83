/**
 * AdamW on the GPU (WebGPU): the parameters (`DeviceParam`), their gradients and the moments m, v stay on the device,
 * and a step records kernels only (src/backend/webgpu/kernels/optim.ts) — nothing is read back:
 *
 *   norm   = ‖g‖ over every gradient: per-tensor partial sums of squares, reduced level by level to one value;
 *            with it the clip factor maxNorm / (norm + 1e-6) when that is < 1 (`clipGradNorm`'s), in a small tensor
 *   update = per parameter (per slice of a packed one), in place: `adamwUpdate`'s arithmetic, the gradient times the
 *            clip factor read on the device; the per-step factors (bias corrections, decay, learning rate from the
 *            schedule, the parameter's lrScale and no-decay rule) computed on the host in float64, as there. (The
 *            gradients themselves are left unclipped, where `clipGradNorm` scales them in place.)
 *
 * The step returns the norm as a one-element tensor for the trainer to read when it logs. Checkpoints read the
 * values and moments back asynchronously (`readWeights`, `exportState`) in the format the host AdamW writes, and
 * `importState` uploads them, so a run resumes exactly — also a run saved by the CPU trainer (and the other way).
 * Gradient accumulation over micro-batches is the tape's (it adds each micro-batch's gradients on the device).
 */
import type { WebGpuBackend } from '../backend/webgpu/backend.js';
import { ADAMW, CLIP_FINAL, SUMSQ, SUMSQ_PER_THREAD } from '../backend/webgpu/kernels/optim.js';
import { FILL } from '../backend/webgpu/kernels/elementwise.js';
import { COPY_ROWS } from '../backend/webgpu/kernels/copy.js';
import type { Store } from '../backend/webgpu/runtime.js';
import type { WritableTensor } from '../io/safetensors.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { DeviceParam } from './device-param.js';
import { adamwFactors, adamwHyper, checkLr, checkLrScale, OptimizerError, type AdamWOptions, type Optimizer, type OptimizerState } from './optim.js';

interface Slot {
  param: DeviceParam;
  /** one tensor of the parameter (the whole of it, or a slice of a packed one) at `offset` */
  part: Tensor;
  offset: number;
  m: Tensor;
  v: Tensor;
  decay: boolean;
  lrScale: number;
}

export class DeviceAdamW implements Optimizer {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  stepCount = 0;
  readonly backend: WebGpuBackend;
  private readonly list: DeviceParam[] = [];
  private readonly slots: Slot[] = [];

  constructor(params: readonly DeviceParam[], opts: AdamWOptions = {}) {
    const h = adamwHyper(opts);
    this.lr = h.lr;
    this.beta1 = h.beta1;
    this.beta2 = h.beta2;
    this.eps = h.eps;
    this.weightDecay = h.weightDecay;
    if (params.length === 0) throw new OptimizerError('DeviceAdamW: no parameters');
    this.backend = params[0].backend;
    const names = new Set<string>();
    for (const p of new Set(params)) {
      if (p.backend !== this.backend) throw new OptimizerError(`DeviceAdamW: parameter "${p.name}" is on another backend than "${params[0].name}"`);
      if (typeof p.name !== 'string' || p.name === '') throw new OptimizerError('AdamW: every parameter needs a non-empty name (its checkpoint key)');
      if (names.has(p.name)) throw new OptimizerError(`AdamW: two different parameters are named "${p.name}"; names must be unique`);
      names.add(p.name);
      const lrScale = checkLrScale(h, p.name);
      const decay = !h.noDecay(p.name);
      this.list.push(p);
      for (const { tensor, offset } of p.parts) {
        const m = keep(this.backend.zeros([tensor.size]));
        const v = keep(this.backend.zeros([tensor.size]));
        this.slots.push({ param: p, part: tensor, offset, m, v, decay, lrScale });
      }
    }
  }

  /** The parameters, deduplicated, in the order given. */
  get params(): DeviceParam[] {
    return this.list.slice();
  }

  /** Names of the parameters that get weight decay and of those that do not (for logs). */
  groups(): { decay: string[]; noDecay: string[] } {
    const decay: string[] = [];
    const noDecay: string[] = [];
    for (const p of this.list) (this.isDecayed(p.name) ? decay : noDecay).push(p.name);
    return { decay, noDecay };
  }

  isDecayed(name: string): boolean {
    const s = this.slots.find((x) => x.param.name === name);
    if (!s) throw new OptimizerError(`AdamW: no parameter named "${name}"`);
    return s.decay;
  }

  /** drop the gradients (`setToNull`, the trainer's way: disposed) or fill them with zeros on the device */
  zeroGrad(opts: { setToNull?: boolean } = {}): void {
    if (opts.setToNull) {
      for (const p of this.list) p.dropGrad();
      return;
    }
    const c = this.backend.gradCtx;
    for (const s of this.slots) {
      const g = s.part.grad;
      if (g) c.run(FILL, [c.st(g)], [g.size, c.f2u(0)], c.threads(g.size));
    }
  }

  /**
   * Record the global L2 norm of the gradients (null ones count as zero) and the clip factor for `maxNorm` (1 when
   * `maxNorm` is null or the norm is not above it): a tensor [2] = [norm, factor] on the device.
   */
  gradNorm(maxNorm: number | null = null): Tensor {
    if (maxNorm !== null && (!(maxNorm > 0) || !Number.isFinite(maxNorm))) throw new OptimizerError(`clipGradNorm: maxNorm must be a positive finite number, got ${maxNorm}`);
    const c = this.backend.gradCtx;
    const grads = this.slots.map((s) => s.part.grad).filter((g): g is Tensor => g !== null);
    const per = SUMSQ_PER_THREAD;
    const total = grads.reduce((n, g) => n + Math.ceil(g.size / per), 0);
    let cur: Store | null = null;
    let count = 0;
    if (total > 0) {
      cur = c.scratch(total, 'gradient norm partial sums');
      for (const g of grads) {
        const T = Math.ceil(g.size / per);
        if (T > 0) c.run(SUMSQ, [c.st(g), cur.view(count, T)], [g.size, T, 1], c.threads(T));
        count += T;
      }
      while (count > per) {
        const T = Math.ceil(count / per);
        const next: Store = c.scratch(T, 'gradient norm partial sums');
        c.run(SUMSQ, [cur, next], [count, T, 0], c.threads(T));
        c.done(cur);
        cur = next;
        count = T;
      }
    }
    const out = c.out([2], 'gradient norm');
    c.run(CLIP_FINAL, [cur ?? c.opt(null), c.st(out)], [count, c.f2u(maxNorm ?? 0), maxNorm === null ? 0 : 1], [1, 1, 1]);
    if (cur) c.done(cur);
    return out;
  }

  /** One AdamW update of every parameter that has a gradient, unclipped. `lr` overrides (and sets) `this.lr`. */
  step(lr?: number): void {
    this.update(lr ?? this.lr, null);
  }

  /** `clipGradNorm` then `step(lr)`, on the device: returns the norm before clipping as a tensor [1] (read it when logging) */
  clipAndStep(lr: number, maxNorm: number): Tensor {
    const stats = this.gradNorm(maxNorm);
    this.update(lr, stats);
    const c = this.backend.gradCtx;
    const norm = c.tensor(c.st(stats).view(0, 1), [1], stats);
    stats.dispose(); // the view keeps the storage
    return norm;
  }

  private update(lr: number, clip: Tensor | null): void {
    this.lr = checkLr(lr);
    const f = adamwFactors(this, this.lr, ++this.stepCount);
    const c = this.backend.gradCtx;
    const clipStore = clip ? c.st(clip) : c.opt(null);
    for (const s of this.slots) {
      const g = s.part.grad;
      if (!g) continue;
      const lrP = f.lr * s.lrScale;
      const decay = s.decay ? 1 - lrP * f.weightDecay : 1;
      const params = [g.size, f.beta1, 1 - f.beta1, f.beta2, 1 - f.beta2, decay, lrP / f.bc1, f.sqrtBc2, f.eps].map((x, i) => (i === 0 ? x : c.f2u(x)));
      c.run(ADAMW, [c.st(s.part), c.st(g), c.st(s.m), c.st(s.v), clipStore], [...params, clip ? 1 : 0], c.threads(g.size));
    }
    for (const p of this.list) p.markUpdated();
  }

  /** the parameters' values read back, as the checkpoint's model tensors */
  async readWeights(): Promise<Record<string, WritableTensor>> {
    const values = await Promise.all(this.list.map((p) => p.read()));
    const out: Record<string, WritableTensor> = {};
    this.list.forEach((p, k) => (out[p.name] = { dtype: 'F32', shape: [...p.shape], data: values[k] }));
    return out;
  }

  /** The moments read back as named float32 tensors (`${name}.exp_avg`, `${name}.exp_avg_sq`), as `AdamW.exportState`. */
  async exportState(): Promise<OptimizerState> {
    const read = await Promise.all(this.slots.map((s) => Promise.all([s.m.data(), s.v.data()])));
    const tensors: OptimizerState['tensors'] = {};
    for (const p of this.list) {
      tensors[`${p.name}.exp_avg`] = { shape: [...p.shape], data: new Float32Array(p.size) };
      tensors[`${p.name}.exp_avg_sq`] = { shape: [...p.shape], data: new Float32Array(p.size) };
    }
    this.slots.forEach((s, k) => {
      tensors[`${s.param.name}.exp_avg`].data.set(read[k][0], s.offset);
      tensors[`${s.param.name}.exp_avg_sq`].data.set(read[k][1], s.offset);
    });
    return { kind: 'adamw', step: this.stepCount, hyper: { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weight_decay: this.weightDecay }, tensors };
  }

  /** Restore moments and step count from `exportState()` output (either optimizer's); errors name the tensor. */
  importState(state: OptimizerState, label = 'optimizer state'): void {
    if (state.kind !== 'adamw') throw new OptimizerError(`${label}: kind is "${state.kind}", expected "adamw"`);
    if (!Number.isSafeInteger(state.step) || state.step < 0) throw new OptimizerError(`${label}: step must be a non-negative integer, got ${state.step}`);
    const used = new Set<string>();
    for (const p of this.list) {
      for (const suffix of ['exp_avg', 'exp_avg_sq']) {
        const key = `${p.name}.${suffix}`;
        const t = state.tensors[key];
        if (!t) throw new OptimizerError(`${label}: missing tensor "${key}" for parameter "${p.name}"`);
        if (!(t.data instanceof Float32Array)) throw new OptimizerError(`${label}: tensor "${key}": expected a Float32Array`);
        if (t.data.length !== p.size) throw new OptimizerError(`${label}: tensor "${key}" has ${t.data.length} values, parameter "${p.name}" has ${p.size} (shape [${p.shape.join(', ')}])`);
        used.add(key);
      }
    }
    const extra = Object.keys(state.tensors).filter((k) => !used.has(k));
    if (extra.length > 0) throw new OptimizerError(`${label}: ${extra.length} tensor(s) match no parameter of this model, e.g. "${extra[0]}" (was the state saved for a different model?)`);
    for (const s of this.slots) {
      const n = s.part.size;
      this.backend.write(s.m, state.tensors[`${s.param.name}.exp_avg`].data.subarray(s.offset, s.offset + n));
      this.backend.write(s.v, state.tensors[`${s.param.name}.exp_avg_sq`].data.subarray(s.offset, s.offset + n));
    }
    this.stepCount = state.step;
    const lr = state.hyper?.['lr'];
    if (typeof lr === 'number' && Number.isFinite(lr) && lr >= 0) this.lr = lr;
  }

  /** free the moments' GPU memory (the optimizer cannot step afterwards) */
  dispose(): void {
    for (const s of this.slots) {
      s.m.dispose();
      s.v.dispose();
    }
  }
}

/**
 * Read scalar tensors of one device back with one read (the trainer's logged numbers: losses, norms, counts), and
 * dispose them. Each tensor's first value.
 */
export async function readScalars(be: WebGpuBackend, ts: readonly Tensor[]): Promise<number[]> {
  if (ts.length === 0) return [];
  const c = be.gradCtx;
  const all = c.out([ts.length], 'logged scalars');
  ts.forEach((t, i) => c.run(COPY_ROWS, [c.st(t), c.st(all)], [1, 1, 0, 0, 0, i], [1, 1, 1]));
  for (const t of ts) t.dispose();
  const v = await all.data();
  all.dispose();
  return Array.from(v);
}
