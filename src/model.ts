/**
 * The public entry point: `loadModel(dir)` reads a model folder (config.json, *.safetensors or a sharded
 * index, optional tokenizer.json) and returns a `Model` that can run a forward pass, generate (with
 * streaming), and save/restore per-sequence state.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightSource } from './io/weights.js';
import { readConfig, readJsonFile } from './models/config-file.js';
import { ModelError } from './models/errors.js';
import type { ModelOptions } from './models/registry.js';
import { Tokenizer } from './tokenizer/tokenizer.js';
import type { Backend } from './backend/backend.js';
import { cpu } from './backend/cpu/index.js';
import { WasmBackend } from './backend/wasm/index.js';
import type { WeightDType } from './tensor/dtype.js';
import { assembleModel, checkTokenizerFits, type Model } from './model-core.js';

// the Model class and the assembly shared with the browser loaders live in model-core.ts (no I/O)
export { Model, assembleModel, type ModelGenerateOptions, type ModelParts, type PromptInput } from './model-core.js';

export interface LoadOptions extends Omit<ModelOptions, 'backend'> {
  /** tokenizer.json (or a folder holding one) to use instead of the model folder's; `false` = none */
  tokenizer?: string | false;
  /**
   * 'cpu' (plain TypeScript, the reference; default), 'wasm' (WebAssembly SIMD + threads), 'webgpu' (the GPU
   * through the `webgpu` package, float32 weights), or a Backend instance (to share one between models).
   */
  backend?: 'cpu' | 'wasm' | 'webgpu' | Backend;
  /** wasm: threads including the calling one (default: available cores) */
  threads?: number;
  /** wasm: storage of weight matrices, chosen at load time (default f32); webgpu: f32 or bf16 */
  weights?: WeightDType;
}

/** The backend a load option names ('webgpu' needs `resolveBackendAsync`: a device is requested asynchronously). */
export function resolveBackend(opts: Pick<LoadOptions, 'backend' | 'threads' | 'weights'>): Backend {
  const b = opts.backend ?? 'cpu';
  if (typeof b !== 'string') return b;
  if (b === 'wasm') return new WasmBackend({ threads: opts.threads, weights: opts.weights });
  if (b === 'webgpu') throw new ModelError('backend "webgpu" is created asynchronously: use resolveBackendAsync (loadModel does)');
  if (b !== 'cpu') throw new ModelError(`backend must be "cpu", "wasm" or "webgpu", got ${JSON.stringify(b)}`);
  if (opts.weights && opts.weights !== 'f32') throw new ModelError(`weights "${opts.weights}" need the wasm backend (the CPU reference backend keeps float32)`);
  return cpu;
}

/** The backend a load option names, including 'webgpu' (imported on demand; no adapter → ModelError). */
export async function resolveBackendAsync(opts: Pick<LoadOptions, 'backend' | 'threads' | 'weights'>): Promise<Backend> {
  if (opts.backend !== 'webgpu') return resolveBackend(opts);
  if (opts.weights && opts.weights !== 'f32' && opts.weights !== 'bf16') {
    throw new ModelError(`weights "${opts.weights}" on the webgpu backend: it stores "f32" or "bf16" (f16 and q8 need the wasm backend)`);
  }
  const { createWebGpuBackend, WebGpuUnavailableError } = await import('./backend/webgpu/index.js');
  try {
    return await createWebGpuBackend({ weights: opts.weights === 'bf16' ? 'bf16' : 'f32' });
  } catch (e) {
    throw e instanceof WebGpuUnavailableError ? new ModelError(e.message) : e;
  }
}

/** Load a model folder as published on the Hugging Face hub (or in state-spaces naming). */
export async function loadModel(dir: string, opts: LoadOptions = {}): Promise<Model> {
  const raw = readConfig(dir);
  const backend = await resolveBackendAsync(opts);
  let tokenizer: Tokenizer | null = null;
  if (typeof opts.tokenizer === 'string') tokenizer = Tokenizer.fromFile(opts.tokenizer);
  else if (opts.tokenizer !== false && Tokenizer.existsIn(dir)) tokenizer = Tokenizer.fromFile(dir);
  // a tokenizer that cannot belong to this model is reported before reading gigabytes of weights
  checkTokenizerFits(raw, tokenizer);
  const weights = WeightSource.openDir(dir);
  const genFile = path.join(dir, 'generation_config.json');
  const generationConfig = fs.existsSync(genFile) ? readJsonFile(genFile, 'generation config') : null;
  return assembleModel(
    { config: raw, configLabel: path.join(dir, 'config.json'), weights, tokenizer, generationConfig, generationConfigLabel: genFile, location: dir },
    { ...opts, backend },
  );
}
