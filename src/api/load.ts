/**
 * The public entry point: `loadModel(dir)` reads a model folder (config.json, *.safetensors or a sharded
 * index, optional tokenizer.json) and returns a `Model` that can run a forward pass, generate (with
 * streaming), and save/restore per-sequence state.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightSource } from '../io/weights.js';
import { ggufModelParts, ggufWasmWeights, isGgufPath, openGguf } from '../io/gguf.js';
import { readConfig, readJsonFile } from '../models/config-file.js';
import { ModelError } from '../models/errors.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import type { Backend } from '../backend/backend.js';
import { cpu } from '../backend/cpu/index.js';
import { WasmBackend } from '../backend/wasm/index.js';
import type { WeightDType } from '../tensor/dtype.js';
import { assembleModel, checkTokenizerFits, type Model } from './model.js';
import { isBoolean, validateBackendOptions, validateLoadOptions, webgpuWeights, type CommonLoadOptions, type OptionCheck } from './load-options.js';
import { resolveModelPath } from '../io/hub.js';

// the Model class and the assembly shared with the browser loaders live in model-core.ts (no I/O)
export { Model, assembleModel, type ModelGenerateOptions, type ModelParts, type PromptInput } from './model.js';

/**
 * `loadModel`'s options. Every one is checked before anything is read (`validateLoadOptions`, load-options.ts,
 * shared with the browser loader): a bad value or an unknown key is a `LoadOptionError` listing what is valid.
 */
export interface LoadOptions extends CommonLoadOptions {
  /** tokenizer.json (or a folder holding one) to use instead of the model folder's; `false` = none */
  tokenizer?: string | false;
  /**
   * 'cpu' (plain TypeScript, the reference; default), 'wasm' (WebAssembly SIMD + threads), 'webgpu' (the GPU
   * through the `webgpu` package, float32 weights), or a Backend instance (to share one between models).
   */
  backend?: 'cpu' | 'wasm' | 'webgpu' | Backend;
  /** wasm: threads including the calling one, an integer >= 1 (default: available cores) */
  threads?: number;
  /** storage of weight matrices, chosen at load time: 'f32' (default), 'f16', 'bf16', 'q8' or 'q4' (GGUF Q4_K kept as is) on wasm; 'f32', 'bf16' or 'q8' on webgpu */
  weights?: WeightDType;
  /**
   * a hub name (`org/name[@rev]`) not in the Hugging Face cache, or behind its branch: fetch it into the cache
   * first (HF_ENDPOINT, HF_TOKEN). Default false: hub names resolve from the cache only, never the network.
   */
  download?: boolean;
}

/** the options only `loadModel` takes (the browser loader has its own) */
const NODE_OPTIONS: { [K in Exclude<keyof LoadOptions, keyof CommonLoadOptions>]-?: OptionCheck } = {
  tokenizer: (v, fail) => {
    if (v !== false && (typeof v !== 'string' || v.length === 0)) fail('a path to a tokenizer.json (or a folder holding one), or false');
  },
  download: isBoolean,
};

/** The backend a load option names ('webgpu' needs `resolveBackendAsync`: a device is requested asynchronously). */
export function resolveBackend(opts: Pick<LoadOptions, 'backend' | 'threads' | 'weights'>): Backend {
  validateBackendOptions(opts, 'resolveBackend');
  const b = opts.backend ?? 'cpu';
  if (typeof b !== 'string') return b;
  if (b === 'wasm') return new WasmBackend({ threads: opts.threads, weights: opts.weights });
  if (b === 'webgpu') throw new ModelError('backend "webgpu" is created asynchronously: use resolveBackendAsync (loadModel does)');
  return cpu;
}

/** The backend a load option names, including 'webgpu' (imported on demand; no adapter → ModelError). */
export async function resolveBackendAsync(opts: Pick<LoadOptions, 'backend' | 'threads' | 'weights'>): Promise<Backend> {
  if (opts.backend !== 'webgpu') return resolveBackend(opts);
  validateBackendOptions(opts, 'resolveBackendAsync');
  const { createWebGpuBackend, WebGpuUnavailableError } = await import('../backend/webgpu/index.js');
  try {
    return await createWebGpuBackend({ weights: webgpuWeights(opts.weights) });
  } catch (e) {
    throw e instanceof WebGpuUnavailableError ? new ModelError(e.message) : e;
  }
}

/**
 * Load a model folder as published on the Hugging Face hub (or in state-spaces naming), or a hub name
 * `org/name[@rev]` from the Hugging Face cache (`download: true` fetches it there first). A local path that
 * exists always wins over a hub name. A GGUF file (`*.gguf`, local or a hub `org/name/file.gguf`) gives config, weights
 * and tokenizer at once.
 */
export async function loadModel(spec: string, opts: LoadOptions = {}): Promise<Model> {
  validateLoadOptions(opts, NODE_OPTIONS, 'loadModel');
  const dir = await resolveModelPath(spec, { download: opts.download === true });
  if (isGgufPath(dir) || (/\.gguf$/i.test(dir) && !fs.existsSync(dir))) {
    // one GGUF file: config, weights (dequantized) and tokenizer all come from it
    const g = openGguf(dir);
    const parts = ggufModelParts(g, { tokenizer: opts.tokenizer === undefined });
    if (typeof opts.tokenizer === 'string') parts.tokenizer = Tokenizer.fromFile(opts.tokenizer);
    const q8 = ggufWasmWeights(g, opts.backend, opts.weights);
    const o = q8 ? { ...opts, weights: q8 } : opts;
    return assembleModel(parts, { ...o, backend: await resolveBackendAsync(o) });
  }
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
