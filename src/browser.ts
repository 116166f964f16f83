/// <reference types="@webgpu/types" />
/**
 * mamba-ts for browsers (`mamba-ts/browser`): the models, generation, tokenizers and backends of the Node
 * entry, with model folders read from picked files, URLs or memory instead of a file system. Nothing here
 * imports a Node module.
 *
 *     import { loadModelFrom, urlFolder } from 'mamba-ts/browser';
 *     const model = await loadModelFrom(urlFolder('https://example.org/mamba-130m-hf/'), { backend: 'wasm' });
 *     for await (const e of model.stream('The state space model', { maxNewTokens: 32 })) out.append(e.text);
 *
 *     // one GGUF file: a URL, a hub name (org/name[@revision]/file.gguf), a picked File / Blob, or bytes
 *     const gguf = await loadGgufFrom('https://example.org/mamba-130m.Q8_0.gguf', { backend: 'wasm' });
 *     const fromHub = await loadGgufFrom('org/mamba-130m-GGUF/mamba-130m.Q8_0.gguf', { backend: 'wasm', onProgress });
 *
 *     // from the Hugging Face hub, kept in the browser's Cache API for the next (offline) visit
 *     const hub = await loadModelFrom(await hubFolder('state-spaces/mamba-130m-hf', { onProgress }), { backend: 'wasm' });
 *
 * The wasm backend fetches dist/wasm/kernels.wasm (or `wasmKernelsUrl`); it runs on worker threads when
 * the page is cross-origin isolated (COOP/COEP headers) and the model runs in a Web Worker, else on one
 * thread. The webgpu backend uses `navigator.gpu`. Run models in a worker anyway: a forward pass blocks the
 * thread it runs on (CPU and wasm).
 */
import type { Backend } from './backend/backend.js';
import { cpu } from './backend/cpu/index.js';
import { WasmBackend } from './backend/wasm/index.js';
import { loadWasmKernels } from './backend/wasm/platform.browser.js';
import { createWebGpuBackend, WebGpuUnavailableError } from './backend/webgpu/index.js';
import { assembleModel, type Model } from './api/model.js';
import { fetchFile, fileSource, memorySource, readBody, readModelParts, type FileLike, type ModelFolder, type ReadProgress } from './io/model-folder.js';
import { GgufFile } from './io/gguf-format.js';
import { ggufModelParts, ggufWasmWeights } from './io/gguf-model.js';
import { hubFolder, type HubFolderOptions } from './io/hub-browser.js';
import { parseHubRef } from './io/hub-names.js';
import type { ByteSource } from './io/safetensors-format.js';
import { ModelError } from './models/errors.js';
import type { WeightDType } from './tensor/dtype.js';
import { isFunction, validateBackendOptions, validateLoadOptions, webgpuWeights, type BackendName, type CommonLoadOptions, type OptionCheck } from './api/load-options.js';

export { Model, assembleModel, checkTokenizerFits, type ModelGenerateOptions, type ModelParts, type PromptInput } from './api/model.js';
export type { CausalLM, DeltaEvent, DeltaObserver, ForwardOptions, ForwardOutput } from './models/causal-lm.js';
export { ModelState } from './models/state.js';
export { MambaTsError, OpError, ShapeError, BackendMismatchError } from './errors.js';
export { ModelError } from './models/errors.js';
export { buildModel, supportedModelTypes } from './models/registry.js';
export { parseConfigJson, parseJsonObject } from './models/config.js';
export { generate, generateStream, GenerationError, type GenerateOptions, type GenerateResult, type TokenEvent, type FinishReason } from './generate/generate.js';
export { Sampler, SamplingError, argmax, type SamplingOptions } from './generate/sampling.js';
export { Rng } from './generate/rng.js';
export { Tokenizer, StreamDecoder, TokenizerError } from './tokenizer/core.js';
export { SafetensorsFile, SafetensorsError, encodeSafetensors, type ByteSource } from './io/safetensors-format.js';
export { SafetensorsWeights, type TensorSource } from './io/tensor-source.js';
export { filesFolder, memoryFolder, urlFolder, readModelParts, readWeights, type FileLike, type ModelFolder, type ReadProgress } from './io/model-folder.js';
export { GgufFile, GgufError } from './io/gguf-format.js';
export { hubFolder, HUB_CACHE_NAME, type HubFolderOptions, type CacheLike } from './io/hub-browser.js';
export { parseHubRef, type HubRef } from './io/hub-names.js';
export { Tensor, type HostTensor } from './tensor/tensor.js';
export { PREFILL_SUPPORT, UnsupportedAlgorithmError, type Backend, type PrefillSupport } from './backend/backend.js';
export { Scope, scope, scopeAsync, keep, unscoped } from './tensor/scope.js';
export { CpuBackend, cpu } from './backend/cpu/index.js';
export { WasmBackend, type WasmBackendOptions } from './backend/wasm/index.js';
export { WasmMemoryError } from './backend/wasm/runtime.js';
export { loadWasmKernels, wasmThreadsAvailable } from './backend/wasm/platform.browser.js';
export { WebGpuBackend, WebGpuUnavailableError, createWebGpuBackend, type CreateWebGpuOptions } from './backend/webgpu/index.js';
export type { WeightDType } from './tensor/dtype.js';
export { LoadOptionError } from './api/load-options.js';
export type { BackendName } from './api/load-options.js';

export interface BrowserBackendOptions {
  /** wasm: threads including the calling one, an integer >= 1 (default: all cores where threads can run, else 1) */
  threads?: number;
  /** wasm: storage of weight matrices: 'f32' (default), 'f16', 'bf16', 'q8' or 'q4' */
  weights?: WeightDType;
  /** wasm: where kernels.wasm is served (default: next to the library, dist/wasm/kernels.wasm) */
  wasmKernelsUrl?: string | URL;
}

/** A backend by name, ready to use (kernels fetched, worker threads started). */
export async function createBackend(name: BackendName, opts: BrowserBackendOptions = {}): Promise<Backend> {
  validateBackendOptions({ backend: name, threads: opts.threads, weights: opts.weights }, 'createBackend');
  if (name === 'cpu') return cpu;
  if (name === 'wasm') {
    await loadWasmKernels(opts.wasmKernelsUrl);
    const b = new WasmBackend({ threads: opts.threads, weights: opts.weights });
    await b.runtime.ready();
    return b;
  }
  if (name === 'webgpu') {
    const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
    if (!gpu) throw new WebGpuUnavailableError('webgpu: this browser has no WebGPU (navigator.gpu)');
    return createWebGpuBackend({ gpu, weights: webgpuWeights(opts.weights) });
  }
  throw new ModelError(`backend must be "cpu", "wasm" or "webgpu", got ${JSON.stringify(name)}`);
}

/**
 * `loadModelFrom`'s options: checked before anything is read, by the same check as `loadModel`'s
 * (load-options.ts): a bad value or an unknown key is a `LoadOptionError` listing what is valid.
 */
export interface BrowserLoadOptions extends CommonLoadOptions, BrowserBackendOptions {
  /** a backend name (default 'cpu') or a Backend instance */
  backend?: BackendName | Backend;
  /** read tokenizer.json when the folder has one (default true) */
  tokenizer?: boolean;
  /** bytes read so far, per file (downloads, picked files) */
  onProgress?: (p: ReadProgress) => void;
  /** `loadGgufFrom` with a hub name: the hub, token and cache (as `hubFolder`'s options; default the public hub and the Cache API) */
  hub?: Omit<HubFolderOptions, 'onProgress'>;
}

/** the options only `loadModelFrom` takes (`loadModel` has its own) */
const BROWSER_OPTIONS: { [K in Exclude<keyof BrowserLoadOptions, keyof CommonLoadOptions>]-?: OptionCheck } = {
  tokenizer: (v, fail) => {
    if (typeof v !== 'boolean') fail('a boolean (read tokenizer.json when the folder has one)');
  },
  wasmKernelsUrl: (v, fail) => {
    if (typeof v !== 'string' && !(typeof URL !== 'undefined' && v instanceof URL)) fail('a URL (string or URL)');
  },
  onProgress: isFunction,
  hub: (v, fail) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('an object ({ endpoint?, token?, cache? }: where a hub name is fetched from)');
  },
};

/** Load a model folder (picked files, a URL or memory: see `filesFolder`, `urlFolder`, `memoryFolder`). */
export async function loadModelFrom(folder: ModelFolder, opts: BrowserLoadOptions = {}): Promise<Model> {
  validateLoadOptions(opts, BROWSER_OPTIONS, 'loadModelFrom');
  const parts = await readModelParts(folder, { tokenizer: opts.tokenizer, onProgress: opts.onProgress });
  const b = opts.backend ?? 'cpu';
  const backend = typeof b === 'string' ? await createBackend(b, opts) : b;
  return assembleModel(parts, { ...opts, backend });
}

/** Where `loadGgufFrom` reads a GGUF file: a URL, a hub name (`org/name[@revision]/file.gguf`), a picked `File` (or any Blob with a name), or its bytes. */
export type GgufInput = string | URL | FileLike | Uint8Array | ArrayBuffer;

/** A GGUF file's bytes and a label for messages (a URL is downloaded whole; a File is read on demand in a worker). */
async function ggufSource(input: GgufInput, onProgress?: (p: ReadProgress) => void, hub?: BrowserLoadOptions['hub']): Promise<{ source: ByteSource; label: string }> {
  if (input instanceof Uint8Array) return { source: memorySource(input), label: 'memory.gguf' };
  // a hub name: fetched through hubFolder, so it lands in (and on the next visit comes from) the browser's cache
  const hubName = typeof input === 'string' && !/^[a-z][a-z0-9+.-]*:|^[./]/i.test(input) ? input : null;
  const ref = hubName === null ? null : parseHubRef(hubName);
  if (hubName !== null && ref) {
    if (!ref.file || !/\.gguf$/i.test(ref.file)) throw new ModelError(`loadGgufFrom: "${input}" names no .gguf file; a hub GGUF is org/name[@revision]/file.gguf (a model folder by hub name: loadModelFrom(await hubFolder('org/name')))`);
    const folder = await hubFolder(hubName, { ...hub, onProgress });
    const source = await folder.bytes(ref.file, onProgress);
    if (!source) throw new ModelError(`loadGgufFrom: the hub repository ${ref.repo} has no file "${ref.file}"`);
    return { source, label: hubName };
  }
  if (input instanceof ArrayBuffer) return { source: memorySource(new Uint8Array(input)), label: 'memory.gguf' };
  if (typeof input === 'string' || (typeof URL !== 'undefined' && input instanceof URL)) {
    const url = String(input);
    const res = await fetchFile(url);
    if (!res) throw new ModelError(`cannot fetch ${url}: HTTP 404 (no GGUF file there)`);
    const name = url.replace(/[?#].*$/, '').split('/').pop() || url;
    return { source: memorySource(await readBody(res, name, onProgress)), label: url };
  }
  if (input && typeof input === 'object' && typeof (input as FileLike).slice === 'function' && typeof (input as FileLike).size === 'number') {
    const f = input as FileLike;
    const label = f.webkitRelativePath || f.name || 'blob.gguf';
    return { source: await fileSource(f, label, onProgress), label };
  }
  throw new ModelError(`loadGgufFrom: expected a URL, a File / Blob or the bytes (Uint8Array, ArrayBuffer) of a GGUF file, got ${input === null ? 'null' : typeof input}`);
}

/**
 * Load a model stored as one GGUF file (config, weights and tokenizer in it, as `loadModel('x.gguf')` on Node).
 * Takes `loadModelFrom`'s options; `tokenizer: false` skips the tokenizer. On wasm a Q8_0 file keeps its
 * matrices in the q8 format unless `weights` says otherwise.
 */
export async function loadGgufFrom(input: GgufInput, opts: BrowserLoadOptions = {}): Promise<Model> {
  validateLoadOptions(opts, BROWSER_OPTIONS, 'loadGgufFrom');
  const { source, label } = await ggufSource(input, opts.onProgress, opts.hub);
  const g = GgufFile.fromSource(source, label);
  const parts = ggufModelParts(g, { tokenizer: opts.tokenizer });
  const q8 = ggufWasmWeights(g, opts.backend, opts.weights);
  const o = q8 ? { ...opts, weights: q8 } : opts;
  const b = o.backend ?? 'cpu';
  const backend = typeof b === 'string' ? await createBackend(b, o) : b;
  return assembleModel(parts, { ...o, backend });
}
