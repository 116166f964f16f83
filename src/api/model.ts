/**
 * `Model`, what `loadModel` returns (forward, generate with streaming, per-sequence state), and
 * `assembleModel`: the one path from a model's parts — parsed config.json, a tensor source, a tokenizer,
 * generation_config.json — to a Model. `loadModel` (model.ts, Node folders) and the browser loaders
 * (browser.ts: files, URLs, bytes) both end here. No I/O, browser-safe.
 */
import type { Backend } from '../backend/backend.js';
import type { TensorSource } from '../io/tensor-source.js';
import type { RawConfig } from '../models/config.js';
import { ModelError } from '../models/errors.js';
import type { CausalLM, DeltaObserver, ForwardOptions, ForwardOutput } from '../models/causal-lm.js';
import { buildModel, type ModelOptions } from '../models/registry.js';
import { ModelState } from '../models/state.js';
import type { Tokenizer } from '../tokenizer/core.js';
import type { KvCacheDType } from '../tensor/dtype.js';
import { generate, generateStream, type GenerateOptions, type GenerateResult, type TokenEvent } from '../generate/generate.js';

/** `Model.generate` / `Model.stream` options: generation's (Δ observation included: `onDelta`, per call). */
export type ModelGenerateOptions = GenerateOptions;

/** What generation accepts: text (needs a tokenizer) or token ids, one prompt or a batch. */
export type PromptInput = string | string[] | number[] | number[][];

export class Model {
  constructor(
    readonly lm: CausalLM,
    readonly tokenizer: Tokenizer | null,
    /** the folder (or URL, or label) it was loaded from */
    readonly dir: string,
    /** generation defaults from generation_config.json (eos ids) */
    readonly eosTokenIds: number[],
    /** the safetensors files (paths, URLs or names) the weights came from */
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

  /**
   * Generate to the end; `onToken` in the options streams tokens as they come. The result's `tokens` are
   * prompt + new ids (as HF `generate`), `generated` the new ids alone.
   */
  async generate(prompt: PromptInput, opts: ModelGenerateOptions = {}): Promise<GenerateResult> {
    this.checkDelta(opts.onDelta);
    return generate(this.lm, this.toIds(prompt), this.withDefaults(opts), this.tokenizer);
  }

  /** Generate as an async iterator of token events; the iterator's return value is the full result. */
  async *stream(prompt: PromptInput, opts: ModelGenerateOptions = {}): AsyncGenerator<TokenEvent, GenerateResult> {
    this.checkDelta(opts.onDelta);
    return yield* generateStream(this.lm, this.toIds(prompt), this.withDefaults(opts), this.tokenizer);
  }

  /** An empty state for `batch` sequences (pass it to `forward` or `generate`); `kvCache` overrides the model's KV cache format. */
  createState(batch = 1, opts?: { kvCache?: KvCacheDType }): ModelState {
    return this.lm.createState(batch, opts);
  }

  /** Restore a state saved with `state.export()` (checks it belongs to this model). */
  importState(bytes: Uint8Array, label = 'state'): ModelState {
    const template = this.lm.createState(1); // only its layout is read
    try {
      return ModelState.import(bytes, template, this.lm.backend, label);
    } finally {
      template.dispose();
    }
  }

  describe(): Record<string, unknown> {
    return { ...this.lm.describe(), tokenizer: this.tokenizer ? `${this.tokenizer.vocabSize} tokens` : 'none' };
  }

  /** a generation's `onDelta` goes to each of its steps (nothing of the model is changed: calls may run at once) */
  private checkDelta(onDelta: DeltaObserver | undefined): void {
    if (onDelta && !('onDelta' in this.lm)) throw new ModelError(`onDelta: this ${this.lm.modelType} model cannot report Δ`);
  }

  private withDefaults(opts: GenerateOptions): GenerateOptions {
    return opts.stopTokens ? opts : { ...opts, stopTokens: this.eosTokenIds };
  }

  private requireTokenizer(): Tokenizer {
    if (!this.tokenizer) throw new ModelError(`no tokenizer: ${this.dir} has no tokenizer.json (pass token ids, or the tokenizer option / --tokenizer)`);
    return this.tokenizer;
  }
}

/** The parts a model is made of, wherever they were read from. */
export interface ModelParts {
  /** config.json, parsed (`parseConfigJson` / `parseJsonObject`) */
  config: RawConfig;
  /** where config.json came from, named in messages */
  configLabel: string;
  weights: TensorSource;
  tokenizer: Tokenizer | null;
  /** generation_config.json, parsed, if there is one */
  generationConfig?: RawConfig | null;
  generationConfigLabel?: string;
  /** the folder, URL or label the model came from (`Model.dir`) */
  location: string;
}

/**
 * A tokenizer that cannot belong to the model is an error (config vocab_size ≤ the model's: state-spaces
 * configs give it before padding). Loaders call this before reading weights.
 */
export function checkTokenizerFits(config: RawConfig, tokenizer: Tokenizer | null): void {
  const vocab = config.vocab_size;
  if (tokenizer && typeof vocab === 'number' && tokenizer.vocabSize > vocab) {
    throw new ModelError(`tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${vocab}: they do not belong together`);
  }
}

/** Build the model on `opts.backend` (weights are read from the source now) and wrap it. */
export function assembleModel(parts: ModelParts, opts: ModelOptions & { backend: Backend }): Model {
  const { tokenizer } = parts;
  checkTokenizerFits(parts.config, tokenizer);
  const lm = buildModel(parts.config, parts.configLabel, parts.weights, opts);
  let eos = lm.eosTokenIds;
  const g = parts.generationConfig;
  if (g) {
    const v = g.eos_token_id;
    const list = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
    const label = parts.generationConfigLabel ?? 'generation_config.json';
    if (!list.every((x) => Number.isInteger(x) && x >= 0)) throw new ModelError(`${label}: field "eos_token_id" must be a token id or a list of token ids`);
    if (list.length > 0) eos = list as number[];
  }
  if (eos.length === 0 && tokenizer?.eosTokenId !== undefined) eos = [tokenizer.eosTokenId];
  return new Model(lm, tokenizer, parts.location, eos, parts.weights.files);
}
