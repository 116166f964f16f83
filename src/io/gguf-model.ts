/**
 * A GGUF file as a model (browser-safe, no I/O): `GgufWeights` yields the Hugging Face tensors the model
 * code asks for (llama.cpp's transforms undone, dequantized to float32), `ggufModelParts` the config,
 * weights and tokenizer `assembleModel` builds a Model from; `encodeModelGguf` writes a checkpoint as
 * llama.cpp's converter would (metadata, tensor names and transforms, F32/F16/BF16/Q8_0).
 */
import type { ModelParts } from '../api/model.js';
import type { StoredMatrix } from '../backend/backend.js';
import type { RawConfig } from '../models/config.js';
import { Tokenizer } from '../tokenizer/core.js';
import { ggufTensors, hfToGgufTensors, type HfSource, type HfTensor } from './gguf-arch.js';
import { ggufConfig, ggufMetadata } from './gguf-config.js';
import { GgufError, encodeGguf, gv, type GgufFile, type GgufMetadataOut, type GgufTensorOut } from './gguf-format.js';
import { GGML, quantize } from './gguf-quants.js';
import { ggufTokenizerJson, ggufTokenizerMetadata } from './gguf-tokenizer.js';
import type { TensorEntry } from './safetensors-format.js';
import type { TensorSource } from './tensor-source.js';

export class GgufWeights implements TensorSource {
  readonly files: string[];
  private cache: { name: string; data: Float32Array } | null = null;
  private readonly map: Map<string, HfTensor>;

  constructor(readonly file: GgufFile, family: string, nLayers: number, ctx: Parameters<typeof ggufTensors>[3]) {
    this.files = [file.path];
    this.map = ggufTensors(file, family, nLayers, ctx, (n) => this.read(n));
  }

  /** one dequantized GGUF tensor is kept (stacked experts are sliced from it one by one) */
  private read(name: string): Float32Array {
    if (this.cache?.name !== name) this.cache = { name, data: this.file.float32(name) };
    return this.cache.data;
  }

  names(): string[] {
    return [...this.map.keys()];
  }

  has(name: string): boolean {
    return this.map.has(name);
  }

  entry(name: string): TensorEntry {
    const t = this.tensor(name);
    const n = t.shape.reduce((a, b) => a * b, 1);
    return { name, dtype: 'F32', shape: t.shape, byteOffset: 0, byteLength: n * 4, file: `${this.file.path} (${t.from})` };
  }

  float32(name: string): Float32Array {
    return this.tensor(name).get();
  }

  negExp(name: string): Float32Array | undefined {
    return this.map.get(name)?.negExp?.();
  }

  stored(name: string): StoredMatrix | undefined {
    const g = this.map.get(name)?.direct;
    return g === undefined ? undefined : { type: this.file.tensor(g).type, bytes: this.file.bytes(g), label: `${this.file.path}: tensor "${g}"` };
  }

  private tensor(name: string): HfTensor {
    const t = this.map.get(name);
    if (!t) throw new GgufError(`tensor "${name}" not found in ${this.file.path} (no GGUF tensor maps to it)`);
    return t;
  }
}

/** The parts of a model stored as one GGUF file; `tokenizer: false` skips the tokenizer.ggml.* keys. */
export function ggufModelParts(g: GgufFile, opts: { tokenizer?: boolean } = {}): ModelParts {
  const imported = ggufConfig(g);
  const weights = new GgufWeights(g, imported.family, imported.nLayers, imported.ctx);
  let tokenizer: Tokenizer | null = null;
  if (opts.tokenizer !== false) {
    const tok = ggufTokenizerJson(g);
    if (tok) tokenizer = Tokenizer.fromJSON(tok.json, tok.config, `${g.path} (tokenizer.ggml.*)`);
  }
  return { config: imported.config, configLabel: `${g.path} (metadata)`, weights, tokenizer, generationConfig: null, location: g.path };
}

/**
 * The `weights` load option a GGUF file implies on the wasm backend when none is given: a Q8_0 file keeps its
 * matrices in the wasm q8 format (the same 32-value int8 blocks; the quanta are requantized exactly); a file with
 * Q4_K matrices (Q4_K_M, Q4_K_S) keeps them in the wasm q4 format (the same blocks, repacked) and its other
 * quantized matrices as q8 (see WasmBackendOptions.weights). `weights: 'f32'` dequantizes instead.
 */
export function ggufWasmWeights(g: GgufFile, backend: unknown, weights: unknown): 'q8' | 'q4' | undefined {
  if (backend !== 'wasm' || weights !== undefined) return undefined;
  const ft = g.get('general.file_type');
  if (ft === 14 || ft === 15 || [...g.tensors.values()].some((t) => t.type === GGML.Q4_K)) return 'q4'; // (Q4_K_S, Q4_K_M)
  return ft === FILE_TYPES.q8_0 ? 'q8' : undefined;
}

/** GGUF output types of `mamba-ts export --gguf` */
export const EXPORT_TYPES = { f32: GGML.F32, f16: GGML.F16, bf16: GGML.BF16, q8_0: GGML.Q8_0, q4_k: GGML.Q4_K } as const;
export type ExportType = keyof typeof EXPORT_TYPES;
/** llama_ftype of each (general.file_type) */
const FILE_TYPES: Record<ExportType, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32, q4_k: 14 /* MOSTLY_Q4_K_S */ };

export interface GgufExportInput {
  config: RawConfig;
  configLabel: string;
  weights: TensorSource & { names(): string[] };
  /** tokenizer.json (parsed) and tokenizer_config.json, if any */
  tokenizer?: { json: unknown; config?: unknown; label: string } | null;
  /** general.name */
  name: string;
}

/**
 * The checkpoint as a GGUF file (chunks to write in order), as llama.cpp's convert_hf_to_gguf.py writes it for
 * `type`: matrices in that type (Q8_0 rows not a multiple of 32 fall back to F16, as the converter does; Q4_K
 * rows not a multiple of 256 to Q8_0, then F16),
 * 1-D tensors, norms, biases, A, D, conv and router weights in F32. `onTensor` reports progress.
 */
export function encodeModelGguf(input: GgufExportInput, type: ExportType, onTensor?: (done: number, total: number) => void): Uint8Array[] {
  const plan = ggufMetadata(input.config, input.configLabel);
  const src: HfSource = {
    names: () => input.weights.names(),
    has: (n) => input.weights.has(n),
    shape: (n) => input.weights.entry(n).shape,
    float32: (n) => input.weights.float32(n),
    negExp: (n) => input.weights.negExp?.(n),
  };
  const tensors = hfToGgufTensors(src, plan.family, plan.nLayers, plan.ctx, { tied: plan.tied, denseGranite: plan.denseGranite });
  const embd = tensors.find((t) => t.name === 'token_embd.weight');
  if (!embd) throw new GgufError(`${input.configLabel}: the checkpoint has no token embeddings to export`);
  const metadata: GgufMetadataOut = [
    ['general.architecture', gv.str(plan.arch)],
    ['general.type', gv.str('model')],
    ['general.name', gv.str(input.name)],
    ...plan.metadata,
    ['general.file_type', gv.u32(FILE_TYPES[type])],
    ['general.quantization_version', gv.u32(2)],
  ];
  if (input.tokenizer) metadata.push(...ggufTokenizerMetadata(input.tokenizer.json, input.tokenizer.config, embd.shape[0], input.tokenizer.label, plan.addBos));
  else metadata.push(['tokenizer.ggml.model', gv.str('no_vocab')]);
  const out: GgufTensorOut[] = [];
  tensors.forEach((t, i) => {
    let ggml: number = t.keepF32 ? GGML.F32 : EXPORT_TYPES[type];
    const rowLen = t.shape[t.shape.length - 1];
    if (ggml === GGML.Q4_K && rowLen % 256 !== 0) ggml = GGML.Q8_0; // rows of whole super-blocks only
    if (ggml === GGML.Q8_0 && rowLen % 32 !== 0) ggml = GGML.F16;
    out.push({ name: t.name, shape: t.shape, type: ggml, data: quantize(t.data, ggml) });
    onTensor?.(i + 1, tensors.length);
  });
  return encodeGguf(metadata, out);
}
