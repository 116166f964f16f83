/**
 * An S4D sequence classifier (the S4D paper's minimal model) for pixel-by-pixel image classification:
 *   h = encoder(u)                                       [b, L, 1] → [b, L, H]
 *   per layer:  y = S4D(rmsnorm(h))  (kernel K = Vandermonde(Δ, A, C), y = K ∗ x + D·x)
 *               y = GLU(W · gelu(y));  h ← h + y
 *   logits = decoder(mean_t rmsnorm(h))
 * A is diagonal complex, initialised by one of the S4D rules (HiPPO-derived LegS, Lin, Inv, Real) or at
 * random for the HiPPO-vs-random ablation. Training runs the convolution mode; `recurrent` inference is in
 * `src/ssm/s4.ts` (tested equal there).
 *
 * One definition on the op layer (`src/tensor/ops.ts`), so the same model trains on every backend that records
 * DiffOps: on the CPU (default) its ops run the host autograd kernels of `src/autograd` (the convolution by FFT,
 * float32 matrix products on wasm SIMD) and the parameters are host arrays (`TensorParam`, data-parallel threads
 * share them); on WebGPU the parameters stay on the GPU (`DeviceParam`) and the ops record GPU kernels (the
 * convolution computed directly, `src/backend/webgpu/autograd/s4d.ts`). Same init, same numbers on both (seeded).
 */
import type { Backend } from '../backend/backend.js';
import { cpu } from '../backend/cpu/index.js';
import { WebGpuBackend } from '../backend/webgpu/backend.js';
import { Rng } from '../generate/rng.js';
import type { ParamEntry } from '../models/loader.js';
import type { S4dInitKind } from '../ssm/s4.js';
import { s4dParams } from '../nn/s4d.js';
import * as ops from '../tensor/ops.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { DeviceParam } from './device-param.js';
import { TrainError } from './errors.js';
import type { TrainableModel } from './lm.js';
import { TensorParam } from './param.js';

export interface S4dClassifierConfig {
  inputDim: number;
  numClasses: number;
  hiddenSize: number;
  /** state size N (N/2 complex modes per channel) */
  stateSize: number;
  numLayers: number;
  init: S4dInitKind;
  normEps: number;
}

export type HostTensors = Record<string, { data: Float32Array; shape: readonly number[] }>;

/** the weight matrices [out, in] (used only by `linear`): uploaded as matrices */
const MATRIX = /(^|\.)(encoder|out|decoder)\.weight$/;

export class S4dClassifier implements TrainableModel {
  private readonly entries = new Map<string, ParamEntry>();
  private readonly hostParams: ReadonlyMap<string, TensorParam> | null = null;
  /** the parameters when the model lives on a GPU (WebGPU), else null */
  readonly deviceParams: ReadonlyMap<string, DeviceParam> | null = null;
  readonly backend: Backend;

  /** `tensors`: every parameter by checkpoint name (copied); `opts.backend`: where it lives and trains (default cpu) */
  constructor(
    readonly config: S4dClassifierConfig,
    tensors: HostTensors,
    opts: { backend?: Backend } = {},
  ) {
    const be = opts.backend ?? cpu;
    if (be instanceof WebGpuBackend && be.weights !== 'f32') {
      throw new TrainError(`${be.name} stores weight matrices as ${be.weights}; training needs float32 weights (create the backend with weights: 'f32')`);
    }
    if (!be.differentiable) throw new TrainError(`the ${be.name} backend cannot train (it has no differentiable ops); use cpu or webgpu`);
    this.backend = be;
    const shapes = expectedShapes(config);
    for (const [name, shape] of shapes) {
      const t = tensors[name];
      if (!t) throw new TrainError(`S4dClassifier: tensor "${name}" is missing`);
      const n = shape.reduce((a, b) => a * b, 1);
      if (t.data.length !== n || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new TrainError(`S4dClassifier: tensor "${name}" has shape [${t.shape.join(', ')}] (${t.data.length} values), expected [${shape.join(', ')}]`);
      }
      const tensor = be.fromHost(Float32Array.from(t.data), shape, MATRIX.test(name) ? { matrix: true } : undefined);
      this.entries.set(name, { name, shape: [...shape], parts: [{ tensor, offset: 0 }] });
    }
    for (const name of Object.keys(tensors)) if (!shapes.has(name)) throw new TrainError(`S4dClassifier: unexpected tensor "${name}" (not a parameter of this ${config.numLayers}-layer model)`);
    if (be instanceof WebGpuBackend) this.deviceParams = new Map([...this.entries].map(([n, e]) => [n, new DeviceParam(e)]));
    else this.hostParams = new Map([...this.entries].map(([n, e]) => [n, new TensorParam(e)]));
  }

  /** fresh parameters from `seed`: the same values whatever the backend */
  static init(config: S4dClassifierConfig, seed = 0, opts: { backend?: Backend } = {}): S4dClassifier {
    return new S4dClassifier(config, initTensors(config, seed), opts);
  }

  /** the parameters as host arrays (a model on the CPU; one on a GPU has `deviceParams` instead) */
  get params(): ReadonlyMap<string, TensorParam> {
    if (!this.hostParams) throw new TrainError(`this S4D classifier lives on ${this.backend.name}: its parameters stay on the GPU (deviceParams)`);
    return this.hostParams;
  }

  /** whether the parameters live on a GPU */
  get onDevice(): boolean {
    return this.deviceParams !== null;
  }

  private p(name: string): Tensor {
    const e = this.entries.get(name);
    if (!e) throw new TrainError(`S4dClassifier: no parameter "${name}"`);
    return e.parts[0].tensor;
  }

  /** inputs [b, L, inputDim] → class logits [b, numClasses] (recorded inside `withGrad`) */
  forward(u: Tensor): Tensor {
    const c = this.config;
    const [, L] = u.shape;
    const H = c.hiddenSize;
    let h = ops.linear(u, this.p('encoder.weight'), this.p('encoder.bias'));
    for (let i = 0; i < c.numLayers; i++) {
      const p = `layers.${i}.`;
      const x = ops.rmsNorm(h, this.p(`${p}norm.weight`), c.normEps);
      const K = ops.s4dKernel(this.p(`${p}s4d.log_dt`), this.p(`${p}s4d.log_A_real`), this.p(`${p}s4d.A_imag`), this.p(`${p}s4d.C`), L);
      const y = ops.activation(ops.fftConv(x, K, this.p(`${p}s4d.D`)), 'gelu_tanh');
      const [a, g] = ops.split(ops.linear(y, this.p(`${p}out.weight`), this.p(`${p}out.bias`)), [H, H]);
      h = ops.add(h, ops.mul(a, ops.activation(g, 'sigmoid')));
    }
    const pooled = ops.meanTime(ops.rmsNorm(h, this.p('norm_f.weight'), c.normEps));
    return ops.linear(pooled, this.p('decoder.weight'), this.p('decoder.bias'));
  }

  /** a batch of b sequences (`inputs` [b·L·inputDim] row-major) as a tensor [b, L, inputDim] on the model's backend */
  input(inputs: Float32Array, b: number): Tensor {
    const I = this.config.inputDim;
    if (!(Number.isInteger(b) && b >= 1) || inputs.length === 0 || inputs.length % (b * I) !== 0) {
      throw new TrainError(`S4dClassifier.input: ${inputs.length} values do not make a batch of ${b} sequences of ${I}-dim steps`);
    }
    return this.backend.fromHost(Float32Array.from(inputs), [b, inputs.length / (b * I), I]);
  }

  /**
   * Mean cross-entropy of the batch `u` [b, L, inputDim] (from `input`) against `labels` [b], with the count of right
   * argmaxes (on a GPU: in `correctTensor`, read when needed). Recorded inside `withGrad`. The intermediate tensors
   * are freed (recorded ones by the tape's backward); the caller disposes the loss, `correctTensor`, and `u` — after
   * the backward, which reads it.
   */
  loss(u: Tensor, labels: Int32Array): ops.CrossEntropy {
    if (u.shape.length !== 3 || u.shape[0] !== labels.length) throw new TrainError(`S4dClassifier.loss: ${labels.length} labels for inputs [${u.shape.join(', ')}]`);
    for (const y of labels) if (!(Number.isInteger(y) && y >= 0 && y < this.config.numClasses)) throw new TrainError(`S4dClassifier.loss: label ${y} is outside [0, ${this.config.numClasses})`);
    return scope(() => ops.softmaxCrossEntropy(this.forward(u), labels));
  }

  configJson(): Record<string, unknown> {
    const c = this.config;
    return {
      model_type: 'mamba_ts_s4d_classifier',
      input_dim: c.inputDim,
      num_classes: c.numClasses,
      hidden_size: c.hiddenSize,
      state_size: c.stateSize,
      num_layers: c.numLayers,
      s4d_init: c.init,
      norm_eps: c.normEps,
    };
  }

  static fromConfigJson(j: Record<string, unknown>, tensors: HostTensors, opts: { backend?: Backend } = {}): S4dClassifier {
    const num = (k: string): number => {
      const v = j[k];
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new TrainError(`config.json: field "${k}" must be a number, got ${JSON.stringify(v)}`);
      return v;
    };
    const cfg: S4dClassifierConfig = {
      inputDim: num('input_dim'),
      numClasses: num('num_classes'),
      hiddenSize: num('hidden_size'),
      stateSize: num('state_size'),
      numLayers: num('num_layers'),
      init: String(j.s4d_init ?? 'lin') as S4dInitKind,
      normEps: num('norm_eps'),
    };
    return new S4dClassifier(cfg, tensors, opts);
  }
}

/** the S4D paper's init of every parameter, drawn from one seeded stream in a fixed order */
function initTensors(config: S4dClassifierConfig, seed: number): HostTensors {
  const rng = new Rng(seed);
  const { inputDim: I, numClasses: K, hiddenSize: H, stateSize: N, numLayers } = config;
  const M = Math.max(1, Math.floor(N / 2));
  const uniform = (n: number, bound: number): Float32Array => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (rng.next() * 2 - 1) * bound;
    return a;
  };
  const t: HostTensors = {};
  t['encoder.weight'] = { data: uniform(H * I, 1 / Math.sqrt(I)), shape: [H, I] };
  t['encoder.bias'] = { data: uniform(H, 1 / Math.sqrt(I)), shape: [H] };
  for (let i = 0; i < numLayers; i++) {
    const p = `layers.${i}.`;
    t[`${p}norm.weight`] = { data: new Float32Array(H).fill(1), shape: [H] };
    const s = s4dParams(H, M, config.init, rng);
    t[`${p}s4d.log_dt`] = { data: s.logDt, shape: [H] };
    t[`${p}s4d.log_A_real`] = { data: s.logAReal, shape: [H, M] };
    t[`${p}s4d.A_imag`] = { data: s.AImag, shape: [H, M] };
    t[`${p}s4d.C`] = { data: s.C, shape: [H, M, 2] };
    const D = new Float32Array(H);
    for (let h = 0; h < H; h++) D[h] = Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
    t[`${p}s4d.D`] = { data: D, shape: [H] };
    t[`${p}out.weight`] = { data: uniform(2 * H * H, 1 / Math.sqrt(H)), shape: [2 * H, H] };
    t[`${p}out.bias`] = { data: uniform(2 * H, 1 / Math.sqrt(H)), shape: [2 * H] };
  }
  t['norm_f.weight'] = { data: new Float32Array(H).fill(1), shape: [H] };
  t['decoder.weight'] = { data: uniform(K * H, 1 / Math.sqrt(H)), shape: [K, H] };
  t['decoder.bias'] = { data: uniform(K, 1 / Math.sqrt(H)), shape: [K] };
  return t;
}

/** every parameter's checkpoint name and shape */
function expectedShapes(c: S4dClassifierConfig): Map<string, number[]> {
  const { inputDim: I, numClasses: K, hiddenSize: H } = c;
  const M = Math.max(1, Math.floor(c.stateSize / 2));
  const s = new Map<string, number[]>([['encoder.weight', [H, I]], ['encoder.bias', [H]]]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `layers.${i}.`;
    s.set(`${p}norm.weight`, [H]);
    s.set(`${p}s4d.log_dt`, [H]);
    s.set(`${p}s4d.log_A_real`, [H, M]);
    s.set(`${p}s4d.A_imag`, [H, M]);
    s.set(`${p}s4d.C`, [H, M, 2]);
    s.set(`${p}s4d.D`, [H]);
    s.set(`${p}out.weight`, [2 * H, H]);
    s.set(`${p}out.bias`, [2 * H]);
  }
  s.set('norm_f.weight', [H]);
  s.set('decoder.weight', [K, H]);
  s.set('decoder.bias', [K]);
  return s;
}
