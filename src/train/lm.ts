/**
 * A language model for training: the inference model itself (`src/models`, any architecture mamba-ts loads) with
 * its checkpoint tensors as trainable parameters. Its forward is the inference forward; inside `withGrad` the tape
 * records it (`src/autograd/tape.ts`) and `backward` fills the parameters' gradients. Parameters keep the names
 * and shapes of the checkpoint they came from, so a saved folder is a checkpoint of the same architecture, loaded
 * by `loadModel` (and by HF transformers, for the HF architectures) exactly like the original.
 *
 * Training runs on the CPU backend by default: its differentiable ops are the autograd kernels of `src/autograd`
 * (recompute-from-checkpoint scans), with the matrix products, the selective scan and the causal conv1d on wasm SIMD
 * kernels for float32 (the TypeScript implementations, float64 accumulation, run float64 gradient checks).
 *
 * On a WebGPU backend (`{ backend }`) the model is built on the GPU (float32 weights, each in one buffer) and its
 * parameters stay there (`deviceParams`, src/train/device-param.ts): the forward and backward record GPU kernels,
 * and the trainer's optimizer updates the weights in place (src/train/device-optim.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../backend/backend.js';
import { cpu } from '../backend/cpu/index.js';
import { WebGpuBackend } from '../backend/webgpu/backend.js';
import type { TensorEntry } from '../io/safetensors.js';
import type { TensorSource } from '../io/tensor-source.js';
import { WeightSource } from '../io/weights.js';
import { readConfig } from '../models/config-file.js';
import { DecoderLM } from '../models/decoder.js';
import { freshConfig, type FreshArch, type FreshDims, initMambaWeights, InitTensorSource, mambaConfigJson } from '../models/init.js';
import { stringifyConfigJson } from '../models/config-json.js';
import { type MambaConfig, MambaLM } from '../models/mamba.js';
import { architectureNames, buildModel, resolveModelType } from '../models/registry.js';
import { initS4dMixers } from '../nn/s4d.js';
import type { S4dInitKind } from '../ssm/s4.js';
import * as ops from '../tensor/ops.js';
import { TrainError, UntrainableModelError } from './errors.js';
import { DeviceParam } from './device-param.js';
import { type Param, TensorParam } from './param.js';

/** What the trainer needs from a model. */
export interface TrainableModel {
  /** trainable parameters, named and shaped as in the checkpoint (saved as they are), on the host */
  readonly params: ReadonlyMap<string, Param>;
  /**
   * the parameters when they live on a GPU (WebGPU) instead: then the trainer trains there and `params` is not used
   * (a TrainableLM on webgpu throws when asked for it)
   */
  readonly deviceParams?: ReadonlyMap<string, DeviceParam> | null;
  /** config.json contents */
  configJson(): Record<string, unknown>;
  /** config.json exactly as written, when the model keeps its source's text (integers stay integers, floats floats) */
  configText?(): string;
}

/** number of trainable values of a model */
export function countParameters(model: TrainableModel): number {
  let n = 0;
  if (model.deviceParams) for (const v of model.deviceParams.values()) n += v.size;
  else for (const v of model.params.values()) n += v.data.length;
  return n;
}

/** where a model trains: `{ backend }` (default the CPU backend; WebGPU: float32 weights) */
export interface TrainBackendOptions {
  backend?: Backend;
}

/** the backend a TrainableLM is built on, refused early when it cannot train */
function trainBackend(opts: TrainBackendOptions): Backend {
  const be = opts.backend ?? cpu;
  if (be instanceof WebGpuBackend && be.weights !== 'f32') {
    throw new TrainError(`${be.name} stores weight matrices as ${be.weights}; training needs float32 weights (create the backend with weights: 'f32')`);
  }
  if (!be.differentiable) throw new TrainError(`the ${be.name} backend cannot train (it has no differentiable ops); use cpu or webgpu`);
  return be;
}

export type MixerKind = 's6' | 's4d';

export interface InitOptions {
  seed?: number;
  /** 's4d': the LTI ablation (S4D layer in place of S6) */
  mixer?: MixerKind;
  /** S4D initialization of A when mixer = 's4d' (default 'lin') */
  s4dInit?: S4dInitKind;
}

export class TrainableLM implements TrainableModel {
  private readonly hostParams: ReadonlyMap<string, TensorParam> | null = null;
  /** the parameters on the GPU when the model was built on WebGPU (else null) */
  readonly deviceParams: ReadonlyMap<string, DeviceParam> | null = null;

  private constructor(
    readonly lm: DecoderLM,
    private readonly config: Record<string, unknown>,
    private readonly text: string | null,
  ) {
    if (lm.backend instanceof WebGpuBackend) {
      const params = new Map<string, DeviceParam>();
      for (const [name, e] of lm.parameters) params.set(name, new DeviceParam(e));
      this.deviceParams = params;
    } else {
      const params = new Map<string, TensorParam>();
      for (const [name, e] of lm.parameters) params.set(name, new TensorParam(e));
      this.hostParams = params;
    }
  }

  /** the parameters as host arrays (a model on the CPU backends; one on a GPU has `deviceParams` instead) */
  get params(): ReadonlyMap<string, TensorParam> {
    if (!this.hostParams) {
      throw new TrainError(`this ${this.modelType} model lives on ${this.lm.backend.name}: its parameters stay on the GPU (deviceParams; read one with \`await p.read()\`)`);
    }
    return this.hostParams;
  }

  /** the backend the model runs on */
  get backend(): Backend {
    return this.lm.backend;
  }
  /** whether the parameters live on a GPU (`deviceParams`) */
  get onDevice(): boolean {
    return this.deviceParams !== null;
  }

  get modelType(): string {
    return this.lm.modelType;
  }
  get vocabSize(): number {
    return this.lm.vocabSize;
  }
  get numLayers(): number {
    return this.lm.numLayers;
  }

  /**
   * Start from a checkpoint folder of any architecture mamba-ts loads (f32/bf16/f16 weights, sharded or not), on the
   * CPU backend or `opts.backend` (WebGPU: the weights are uploaded as float32).
   */
  static fromPretrained(dir: string, opts: TrainBackendOptions = {}): TrainableLM {
    const backend = trainBackend(opts);
    const file = path.join(dir, 'config.json');
    const raw = readConfig(dir);
    const type = resolveModelType(raw, file);
    const lm = buildModel(raw, file, WeightSource.openDir(dir), { backend });
    if (!(lm instanceof DecoderLM)) throw new UntrainableModelError(dir, type, architectureNames());
    return new TrainableLM(lm, raw, fs.readFileSync(file, 'utf8'));
  }

  /**
   * Fresh Mamba weights (HF-style init), or the S4D ablation with S4D parameters in place of the S6 ones; the same
   * values on every backend (`opts.backend`, default cpu).
   */
  static init(config: MambaConfig, opts: InitOptions & TrainBackendOptions = {}): TrainableLM {
    const backend = trainBackend(opts);
    const seed = opts.seed ?? 0;
    const c: MambaConfig = { ...config, ...(opts.mixer === 's4d' ? { mixer: 's4d' as const } : {}) };
    const t: Record<string, { data: Float32Array; shape: readonly number[] }> = {};
    for (const [k, v] of Object.entries(initMambaWeights(c, { seed }))) t[k] = { data: v.data as Float32Array, shape: v.shape };
    if (c.mixer === 's4d') Object.assign(t, initS4dMixers(c, opts.s4dInit ?? 'lin', seed));
    return new TrainableLM(new MambaLM(c, new MemoryTensors(t), { backend }), mambaConfigJson(c), null);
  }

  /**
   * A fresh model of another architecture (Mamba-2, Llama, the Bamba-style hybrid) of the given size, initialised as
   * HF initialises it (src/models/init.ts), on the CPU backend or `opts.backend`; its config.json is the HF one.
   */
  static fresh(arch: FreshArch, dims: FreshDims, opts: { seed?: number } & TrainBackendOptions = {}): TrainableLM {
    const backend = trainBackend(opts);
    const raw = freshConfig(arch, dims);
    const file = `(fresh ${arch} config)`;
    const lm = buildModel(raw, file, new InitTensorSource(raw, opts.seed ?? 0), { backend });
    if (!(lm instanceof DecoderLM)) throw new UntrainableModelError(file, String(raw.model_type), architectureNames());
    return new TrainableLM(lm, raw, null);
  }

  /**
   * Mean cross-entropy of next-token targets for inputs [b·L] (row-major), with the scored count and how many
   * argmaxes were right (on a GPU: `correct` is NaN and `correctTensor` holds it, read it when needed). Recorded for
   * `backward` when called inside `withGrad`. The logits are scored in row blocks that fit the backend's largest
   * tensor (`DecoderLM.lossTensor`); outside `withGrad` they are freed when this returns, and the caller disposes
   * the loss (and `correctTensor`) when done with them.
   */
  async loss(inputs: Int32Array, targets: Int32Array, b: number, L: number): Promise<ops.CrossEntropy> {
    if (inputs.length !== b * L) throw new TrainError(`loss: ${inputs.length} input ids for a ${b}×${L} batch`);
    const rows = Array.from({ length: b }, (_, r) => Array.from(inputs.subarray(r * L, (r + 1) * L)));
    return this.lm.lossTensor(rows, targets);
  }

  configJson(): Record<string, unknown> {
    return this.config;
  }

  configText(): string {
    return this.text ?? stringifyConfigJson(this.config);
  }
}

/** Tensors in memory as a TensorSource (fresh weights). */
class MemoryTensors implements TensorSource {
  readonly files: readonly string[] = [];
  constructor(private readonly t: Record<string, { data: Float32Array; shape: readonly number[] }>) {}
  has(name: string): boolean {
    return name in this.t;
  }
  entry(name: string): TensorEntry {
    const e = this.t[name];
    if (!e) throw new TrainError(`fresh weights have no tensor "${name}"`);
    return { name, dtype: 'F32', shape: [...e.shape], byteOffset: 0, byteLength: e.data.length * 4, file: '(fresh weights)' };
  }
  float32(name: string): Float32Array {
    return this.t[name].data;
  }
}
