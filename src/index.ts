/** mamba-ts public API. */
export { loadModel, Model, type LoadOptions, type PromptInput } from './model.js';
export type { CausalLM, ForwardOptions, ForwardOutput } from './models/model.js';
export { ModelState } from './models/state.js';
export { ModelError } from './models/errors.js';
export { MambaLM, parseMambaConfig, type MambaConfig } from './models/mamba.js';
export { buildModel, supportedModelTypes } from './models/registry.js';
export { generate, generateStream, GenerationError, type GenerateOptions, type GenerateResult, type TokenEvent, type FinishReason } from './generate/generate.js';
export { Sampler, SamplingError, argmax, type SamplingOptions } from './generate/sampling.js';
export { Rng } from './generate/rng.js';
export { Tokenizer, StreamDecoder, TokenizerError } from './tokenizer/tokenizer.js';
export { SafetensorsFile, SafetensorsError, encodeSafetensors, writeSafetensorsAtomic } from './io/safetensors.js';
export { WeightSource } from './io/weights.js';
export { Tensor, type HostTensor } from './tensor/tensor.js';
export type { Backend } from './backend/backend.js';
export { CpuBackend, cpu } from './backend/cpu/index.js';
export { WasmBackend, type WasmBackendOptions } from './backend/wasm/index.js';
export { resolveBackend } from './model.js';
export type { WeightDType } from './tensor/dtype.js';
