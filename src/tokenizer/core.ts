/**
 * Tokenizer wrapper around `@huggingface/tokenizers` (tokenizers.js), plus a streaming detokenizer. No I/O
 * (browser-safe): `Tokenizer.fromJSON` builds one from parsed JSON; `tokenizer.ts` adds `fromFile` on Node.
 *
 * Semantics follow the Rust `tokenizers` library (what `tokenizer.json` files are authored for):
 *  - `encode` adds special tokens by default (Rust `Tokenizer.encode(text)` default,
 *    `add_special_tokens=True`); for byte-level BPE models (GPT-NeoX / Mamba) the post-processor
 *    adds nothing, so this is a no-op for them.
 *  - `decode` skips special tokens by default (Rust `Tokenizer.decode(ids)` default,
 *    `skip_special_tokens=True`).
 *
 * Differences of tokenizers.js from Rust that this wrapper papers over (workarounds):
 *  - tokenizers.js applies `clean_up_tokenization_spaces` (" ," -> "," etc.) by default when the
 *    config does not mention it, which Rust never does (that is a `transformers` feature). We only
 *    apply it when tokenizer_config.json explicitly sets `clean_up_tokenization_spaces: true`
 *    (what `transformers` would do with that config); otherwise decode is lossless like Rust.
 *  - tokenizers.js throws on `decode([])`; we return "".
 *  - tokenizers.js maps unknown ids to the unk token (or crashes when there is none); Rust silently
 *    drops ids it has no token for. We drop them as Rust does (a model's embedding matrix is often
 *    padded beyond the tokenizer's vocabulary, so sampled ids may be out of range).
 *  - tokenizers.js requires `normalizer`, `pre_tokenizer`, `post_processor`, `decoder` keys and an
 *    `added_tokens` array to be present; a missing one is filled in with null / [] (Rust's defaults).
 */
import { Tokenizer as HFTokenizer } from "@huggingface/tokenizers";
import { MambaTsError } from "../errors.js";

export class TokenizerError extends MambaTsError {}

export const TOKENIZER_FILE = "tokenizer.json";
export const TOKENIZER_CONFIG_FILE = "tokenizer_config.json";

const EOS_FALLBACKS = ["<|endoftext|>", "</s>"];
const BOS_FALLBACKS = ["<s>", "<|startoftext|>", "<|begin_of_text|>"];

type JsonObject = Record<string, unknown>;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `eos_token` etc. in tokenizer_config.json is either a string or a serialized AddedToken. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (isObject(v) && typeof v.content === "string") return v.content;
  return undefined;
}

export class Tokenizer {
  /** Number of ids (max id + 1, added tokens included). */
  readonly vocabSize: number;
  readonly eosTokenId: number | undefined;
  readonly bosTokenId: number | undefined;

  private readonly hf: HFTokenizer;
  private readonly idToTokenArr: (string | undefined)[];
  private readonly tokenToIdMap: Map<string, number>;
  private readonly cleanUp: boolean;

  protected constructor(hf: HFTokenizer, config: JsonObject) {
    this.hf = hf;
    this.tokenToIdMap = hf.get_vocab(true);
    let maxId = -1;
    for (const id of this.tokenToIdMap.values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    this.idToTokenArr = new Array<string | undefined>(this.vocabSize);
    for (const [tok, id] of this.tokenToIdMap) this.idToTokenArr[id] = tok;
    this.cleanUp = config.clean_up_tokenization_spaces === true;

    const added = [...hf.get_added_tokens_decoder().values()];
    const addedId = (names: string[]): number | undefined => {
      for (const n of names) {
        const t = added.find((a) => a.content === n);
        if (t) return t.id;
      }
      return undefined;
    };
    const fromConfig = (key: string): number | undefined => {
      const content = tokenContent(config[key]);
      return content === undefined ? undefined : this.tokenToIdMap.get(content);
    };
    this.eosTokenId = fromConfig("eos_token") ?? addedId(EOS_FALLBACKS);
    this.bosTokenId = fromConfig("bos_token") ?? addedId(BOS_FALLBACKS);
  }

  static fromJSON(tokenizerJson: object, tokenizerConfig?: object, label = "<tokenizer json>"): Tokenizer {
    if (!isObject(tokenizerJson) || !isObject(tokenizerJson.model)) {
      throw new TokenizerError(`${label} is not a ${TOKENIZER_FILE} (expected a JSON object with a "model" object)`);
    }
    const model = tokenizerJson.model;
    if (typeof model.type !== "string" && !isObject(model.vocab) && !Array.isArray(model.vocab)) {
      throw new TokenizerError(`${label} is not a ${TOKENIZER_FILE} ("model" has neither "type" nor "vocab")`);
    }
    if (tokenizerConfig !== undefined && !isObject(tokenizerConfig)) {
      throw new TokenizerError(`tokenizer config for ${label} is not a JSON object`);
    }
    const json: JsonObject = { ...tokenizerJson };
    for (const k of ["normalizer", "pre_tokenizer", "post_processor", "decoder"]) {
      if (!(k in json)) json[k] = null;
    }
    if (json.added_tokens == null) json.added_tokens = [];
    if (!Array.isArray(json.added_tokens)) {
      throw new TokenizerError(`${label} is not a ${TOKENIZER_FILE} ("added_tokens" is not an array)`);
    }
    const config: JsonObject = { ...(tokenizerConfig as JsonObject | undefined) };
    let hf: HFTokenizer;
    try {
      hf = new HFTokenizer(json, config);
    } catch (e) {
      throw new TokenizerError(`cannot build tokenizer from ${label}: ${(e as Error).message}`);
    }
    return new Tokenizer(hf, config);
  }

  /** Text -> ids. `addSpecialTokens` defaults to true (Rust `tokenizers` default). */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    if (text.length === 0) return [];
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  /**
   * Ids -> text. `skipSpecialTokens` defaults to true (Rust `tokenizers` default). Ids without a
   * token are dropped (as Rust does); non-integer or negative ids throw TokenizerError.
   */
  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const known: number[] = [];
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0) throw new TokenizerError(`invalid token id ${id}`);
      if (id < this.vocabSize && this.idToTokenArr[id] !== undefined) known.push(id);
    }
    if (known.length === 0) return "";
    return this.hf.decode(known, {
      skip_special_tokens: opts.skipSpecialTokens ?? true,
      clean_up_tokenization_spaces: this.cleanUp,
    });
  }

  tokenToId(token: string): number | undefined {
    return this.tokenToIdMap.get(token);
  }

  idToToken(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 ? this.idToTokenArr[id] : undefined;
  }

  /** Whether decode applies `clean_up_tokenization_spaces` (only if tokenizer_config.json asks). */
  get cleansUpTokenizationSpaces(): boolean {
    return this.cleanUp;
  }
}

const REPLACEMENT_CHAR = "\uFFFD";

/**
 * Tails of a decoded text after which `clean_up_tokenization_spaces` might still rewrite the text
 * once more tokens arrive (proper prefixes of its patterns " .", " ?", " !", " ,", " ' ", " n't",
 * " 'm", " 's", " 've", " 're"). Only relevant when the tokenizer cleans up.
 */
const CLEANUP_PENDING_TAILS = [" 'v", " 'r", " n'", " '", " n", " "];

/**
 * Incremental detokenizer for streaming. Uses the prefix-offset / read-offset window of HF
 * text-generation-inference: each push decodes only ids[prefixOffset..] (the previously emitted
 * last chunk plus the pending ids), so the cost per token is O(window), not O(total).
 * Text is emitted only when the window decode does not end with U+FFFD (an incomplete UTF-8
 * sequence split across byte-level tokens), so no partial character is ever emitted.
 */
export class StreamDecoder {
  private readonly tokenizer: Tokenizer;
  private readonly skipSpecialTokens: boolean;
  private ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(tokenizer: Tokenizer, opts: { skipSpecialTokens?: boolean } = {}) {
    this.tokenizer = tokenizer;
    this.skipSpecialTokens = opts.skipSpecialTokens ?? true;
  }

  private decodeRange(start: number, end?: number): string {
    return this.tokenizer.decode(this.ids.slice(start, end), { skipSpecialTokens: this.skipSpecialTokens });
  }

  /** Push one id; returns the text newly available (possibly ""). */
  push(id: number): string {
    if (!Number.isInteger(id) || id < 0) throw new TokenizerError(`invalid token id ${id}`);
    this.ids.push(id);
    const prefixText = this.decodeRange(this.prefixOffset, this.readOffset);
    const newText = this.decodeRange(this.prefixOffset);
    if (newText.length <= prefixText.length || newText.endsWith(REPLACEMENT_CHAR)) return "";
    if (!newText.startsWith(prefixText)) return ""; // window start not yet stable; wait
    if (this.tokenizer.cleansUpTokenizationSpaces && CLEANUP_PENDING_TAILS.some((t) => newText.endsWith(t))) {
      return "";
    }
    const out = newText.slice(prefixText.length);
    // Drop ids before the window start: they are no longer needed (keeps memory O(window)).
    this.ids = this.ids.slice(this.readOffset);
    this.prefixOffset = 0;
    this.readOffset = this.ids.length;
    return out;
  }

  /** Remaining text at the end of the stream (may contain U+FFFD if the ids end mid-character). */
  flush(): string {
    const prefixText = this.decodeRange(this.prefixOffset, this.readOffset);
    const newText = this.decodeRange(this.prefixOffset);
    this.ids = [];
    this.prefixOffset = 0;
    this.readOffset = 0;
    return newText.length > prefixText.length ? newText.slice(prefixText.length) : "";
  }
}
