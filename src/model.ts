/**
 * The public entry point: `loadModel(dir)` reads a model folder (config.json, *.safetensors or a sharded
 * index, optional tokenizer.json) and returns a `Model` that can run a forward pass, generate (with
 * streaming), and save/restore per-sequence state.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightSource } from './io/weights.js';
import { readConfig, readJsonFile } from './models/config.js';
import { ModelError } from './models/errors.js';
import type { CausalLM, ForwardOptions, ForwardOutput } from './models/model.js';
import { buildModel, type ModelOptions } from './models/registry.js';
import { ModelState } from './models/state.js';
import { Tokenizer } from './tokenizer/tokenizer.js';
import type { Backend } from './backend/backend.js';
import { cpu } from './backend/cpu/index.js';
import { WasmBackend } from './backend/wasm/index.js';
import type { WeightDType } from './tensor/dtype.js';
import { generate, generateStream, type GenerateOptions, type GenerateResult, type TokenEvent } from './generate/generate.js';

export interface LoadOptions extends Omit<ModelOptions, 'backend'> {
  /** tokenizer.json (or a folder holding one) to use instead of the model folder's; `false` = none */
  tokenizer?: string | false;
  /**
   * 'cpu' (plain TypeScript, the reference; default), 'wasm' (WebAssembly SIMD + threads), or a Backend
   * instance (to share one between models).
   */
  backend?: 'cpu' | 'wasm' | Backend;
  /** wasm: threads including the calling one (default: available cores) */
  threads?: number;
  /** wasm: storage of weight matrices, chosen at load time (default f32) */
  weights?: WeightDType;
}

/** The backend a load option names. */
export function resolveBackend(opts: Pick<LoadOptions, 'backend' | 'threads' | 'weights'>): Backend {
  const b = opts.backend ?? 'cpu';
  if (typeof b !== 'string') return b;
  if (b === 'wasm') return new WasmBackend({ threads: opts.threads, weights: opts.weights });
  if (b !== 'cpu') throw new ModelError(`backend must be "cpu" or "wasm", got ${JSON.stringify(b)}`);
  if (opts.weights && opts.weights !== 'f32') throw new ModelError(`weights "${opts.weights}" need the wasm backend (the CPU reference backend keeps float32)`);
  return cpu;
}

/** What generation accepts: text (needs a tokenizer) or token ids, one prompt or a batch. */
export type PromptInput = string | string[] | number[] | number[][];

export class Model {
  constructor(
    readonly lm: CausalLM,
    readonly tokenizer: Tokenizer | null,
    /** the folder it was loaded from */
    readonly dir: string,
    /** generation defaults from generation_config.json (eos ids) */
    readonly eosTokenIds: number[],
    /** the safetensors files the weights came from */
    readonly files: readonly string[] = [],
  ) {}

  get vocabSize(): number {
    return this.lm.vocabSize;
  }

  /** Logits [batch, seq, vocab] for a rectangular batch of token ids (and hidden states on request). */
  forward(ids: number[][], opts?: ForwardOptions): Promise<ForwardOutput> {
    return this.lm.forward(ids, opts);
  }

  encode(text: string): number[] {
    return this.requireTokenizer().encode(text);
  }

  decode(ids: number[]): string {
    return this.requireTokenizer().decode(ids);
  }

  /** Turn any prompt input into rows of token ids. */
  toIds(prompt: PromptInput): number[][] {
    if (typeof prompt === 'string') return [this.encode(prompt)];
    if (!Array.isArray(prompt) || prompt.length === 0) throw new ModelError('prompt is empty: give text, token ids, or a batch of either');
    if (prompt.every((p) => typeof p === 'string')) return (prompt as string[]).map((p) => this.encode(p));
    if (prompt.every((p) => typeof p === 'number')) return [prompt as number[]];
    if (prompt.every((p) => Array.isArray(p))) return prompt as number[][];
    throw new ModelError('prompt must be a string, an array of strings, an array of token ids, or an array of token-id arrays');
  }

  /** Generate to the end; `onToken` in the options streams tokens as they come. */
  async generate(prompt: PromptInput, opts: GenerateOptions = {}): Promise<GenerateResult> {
    return generate(this.lm, this.toIds(prompt), this.withDefaults(opts), this.tokenizer);
  }

  /** Generate as an async iterator of token events; the iterator's return value is the full result. */
  async *stream(prompt: PromptInput, opts: GenerateOptions = {}): AsyncGenerator<TokenEvent, GenerateResult> {
    return yield* generateStream(this.lm, this.toIds(prompt), this.withDefaults(opts), this.tokenizer);
  }

  /** An empty state for `batch` sequences (pass it to `forward` or `generate`). */
  createState(batch = 1): ModelState {
    return this.lm.createState(batch);
  }

  /** Restore a state saved with `state.export()` (checks it belongs to this model). */
  importState(bytes: Uint8Array, label = 'state'): ModelState {
    return ModelState.import(bytes, this.lm.createState(1), this.lm.backend, label);
  }

  describe(): Record<string, unknown> {
    return { ...this.lm.describe(), tokenizer: this.tokenizer ? `${this.tokenizer.vocabSize} tokens` : 'none' };
  }

  private withDefaults(opts: GenerateOptions): GenerateOptions {
    return opts.stopTokens ? opts : { ...opts, stopTokens: this.eosTokenIds };
  }

  private requireTokenizer(): Tokenizer {
    if (!this.tokenizer) throw new ModelError(`no tokenizer: ${this.dir} has no tokenizer.json (pass token ids, or the tokenizer option / --tokenizer)`);
    return this.tokenizer;
  }
}

/** Load a model folder as published on the Hugging Face hub (or in state-spaces naming). */
export async function loadModel(dir: string, opts: LoadOptions = {}): Promise<Model> {
  const raw = readConfig(dir);
  let tokenizer: Tokenizer | null = null;
  if (typeof opts.tokenizer === 'string') tokenizer = Tokenizer.fromFile(opts.tokenizer);
  else if (opts.tokenizer !== false && Tokenizer.existsIn(dir)) tokenizer = Tokenizer.fromFile(dir);
  // a tokenizer that cannot belong to this model is reported before reading gigabytes of weights
  // (config vocab_size ≤ the model's: state-spaces configs give it before padding)
  const vocab = raw.vocab_size;
  if (tokenizer && typeof vocab === 'number' && tokenizer.vocabSize > vocab) {
    throw new ModelError(`tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${vocab}: they do not belong together`);
  }
  const weights = WeightSource.openDir(dir);
  const lm = buildModel(raw, path.join(dir, 'config.json'), weights, { ...opts, backend: resolveBackend(opts) });
  let eos = lm.eosTokenIds;
  const genFile = path.join(dir, 'generation_config.json');
  if (fs.existsSync(genFile)) {
    const g = readJsonFile(genFile, 'generation config');
    const v = g.eos_token_id;
    const list = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
    if (!list.every((x) => Number.isInteger(x) && x >= 0)) throw new ModelError(`${genFile}: field "eos_token_id" must be a token id or a list of token ids`);
    if (list.length > 0) eos = list as number[];
  }
  if (eos.length === 0 && tokenizer?.eosTokenId !== undefined) eos = [tokenizer.eosTokenId];
  return new Model(lm, tokenizer, dir, eos, weights.files);
}
