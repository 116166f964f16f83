/**
 * GGUF's tokenizer (`tokenizer.ggml.*`) ↔ a Hugging Face tokenizer.json, for GPT-2-style byte-level BPE
 * (`tokenizer.ggml.model` = "gpt2"): tokens by id, `token_type` (1 normal, 3 control, 4 user-defined,
 * 5 unused), merges ("a b"), bos/eos ids. Control and user-defined tokens become added tokens; the
 * converter's "[PADn]" filler tokens (unused) are dropped. The pre-tokenizer regex is chosen by
 * `tokenizer.ggml.pre`; the ones read here are listed in `PRE_TOKENIZERS`. A model without a tokenizer is
 * written as `tokenizer.ggml.model` = "no_vocab" (llama.cpp requires the key and reads that as "no vocabulary").
 */
import { GgufError, gv, type GgufFile, type GgufMetadataOut } from './gguf-format.js';
import { isObject } from '../tokenizer/core.js';

const TOKEN_TYPE = { NORMAL: 1, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5 } as const;

const byteLevel = (useRegex: boolean) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });
const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** tokenizer.ggml.pre → the tokenizer.json pre_tokenizer that splits text the same way */
const PRE_TOKENIZERS: Record<string, () => object> = {
  // byte-level BPE with the GPT-2 regex: GPT-2, and GPT-NeoX-20B's tokenizer (Mamba's), which llama.cpp's converter
  // fingerprints as MPT's or OLMo's; "default" is what our export writes for any other byte-level tokenizer
  'gpt-2': () => byteLevel(true),
  default: () => byteLevel(true),
  mpt: () => byteLevel(true),
  olmo: () => byteLevel(true),
  // StarCoder's (Granite): every digit alone, then the GPT-2 regex
  refact: () => ({ type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel(true)] }),
  starcoder: () => ({ type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel(true)] }),
  'llama-bpe': () => ({ type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: LLAMA3_REGEX }, behavior: 'Isolated', invert: false }, byteLevel(false)] }),
};

/** tokenizer.json (and a tokenizer_config-like object) from a GGUF file's tokenizer.ggml.* keys; null when it has none */
export function ggufTokenizerJson(g: GgufFile): { json: object; config: object } | null {
  if (!g.has('tokenizer.ggml.model')) return null;
  const model = g.str('tokenizer.ggml.model');
  if (model === 'no_vocab' || model === 'none') return null;
  if (model !== 'gpt2') throw new GgufError(`${g.path}: metadata "tokenizer.ggml.model" is "${model}"; only "gpt2" (byte-level BPE) tokenizers are read (pass tokenizer: false / --tokenizer to load the model without it)`);
  const pre = g.str('tokenizer.ggml.pre', 'default');
  const preTok = PRE_TOKENIZERS[pre];
  if (!preTok) throw new GgufError(`${g.path}: metadata "tokenizer.ggml.pre" is "${pre}", a pre-tokenizer mamba-ts does not know (known: ${Object.keys(PRE_TOKENIZERS).join(', ')}); pass tokenizer: false / --tokenizer to load the model without it`);
  const tokens = strings(g, 'tokenizer.ggml.tokens');
  const types = g.has('tokenizer.ggml.token_type') ? g.get('tokenizer.ggml.token_type') : tokens.map(() => TOKEN_TYPE.NORMAL);
  if (!Array.isArray(types) || types.length !== tokens.length || !types.every((t) => typeof t === 'number')) {
    throw new GgufError(`${g.path}: metadata "tokenizer.ggml.token_type" must be ${tokens.length} integers (one per token)`);
  }
  const merges = g.has('tokenizer.ggml.merges') ? strings(g, 'tokenizer.ggml.merges') : [];
  const vocab: Record<string, number> = {};
  const added: object[] = [];
  tokens.forEach((t, id) => {
    const type = types[id] as number;
    if (type === TOKEN_TYPE.UNUSED && /^\[PAD\d+\]$/.test(t)) return;
    if (!Object.prototype.hasOwnProperty.call(vocab, t)) vocab[t] = id;
    if (type === TOKEN_TYPE.CONTROL || type === TOKEN_TYPE.USER_DEFINED) {
      added.push({ id, content: t, single_word: false, lstrip: false, rstrip: false, normalized: type === TOKEN_TYPE.USER_DEFINED, special: type === TOKEN_TYPE.CONTROL });
    }
  });
  const json: Record<string, unknown> = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: preTok(),
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
  const idToken = (key: string) => {
    if (!g.has(key)) return undefined;
    const id = g.int(key);
    if (id >= tokens.length) throw new GgufError(`${g.path}: metadata "${key}" is ${id}, beyond the ${tokens.length} tokens`);
    return tokens[id];
  };
  const config: Record<string, unknown> = {};
  const bos = idToken('tokenizer.ggml.bos_token_id'), eos = idToken('tokenizer.ggml.eos_token_id');
  if (bos !== undefined) config.bos_token = bos;
  if (eos !== undefined) config.eos_token = eos;
  // BOS prepended by encode as llama.cpp does: tokenizer.ggml.add_bos_token when present, else its default for a
  // "gpt2" (BPE) vocabulary: true only for the Llama-3-style pre-tokenizers (of those read here: "llama-bpe")
  const addBos = g.has('tokenizer.ggml.add_bos_token') ? g.bool('tokenizer.ggml.add_bos_token', false) : pre === 'llama-bpe';
  if (addBos) {
    if (bos === undefined) throw new GgufError(`${g.path}: metadata "tokenizer.ggml.add_bos_token" asks for a BOS token, but "tokenizer.ggml.bos_token_id" is missing`);
    const bosId = g.int('tokenizer.ggml.bos_token_id');
    const bosPiece = { SpecialToken: { id: bos, type_id: 0 } };
    json.post_processor = {
      type: 'TemplateProcessing',
      single: [bosPiece, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [bosPiece, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { [bos]: { id: bos, ids: [bosId], tokens: [bos] } },
    };
  }
  return { json, config };
}

function strings(g: GgufFile, key: string): string[] {
  const v = g.get(key);
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new GgufError(`${g.path}: metadata "${key}" must be an array of strings`);
  return v as string[];
}

/**
 * tokenizer.ggml.* keys for a tokenizer.json (byte-level BPE only), as the converter writes them: the token
 * list padded with "[PADn]" to `vocabRows` (the embedding's rows), types, merges, bos/eos ids.
 */
export function ggufTokenizerMetadata(json: unknown, config: unknown, vocabRows: number, label: string, addBos?: boolean): GgufMetadataOut {
  const model = isObject(json) ? json.model : undefined;
  if (!isObject(model) || model.type !== 'BPE' || !isObject(model.vocab)) throw new GgufError(`${label}: only byte-level BPE tokenizers (model.type "BPE") can be written to GGUF`);
  const tokens: string[] = new Array(vocabRows);
  const types: number[] = new Array(vocabRows).fill(TOKEN_TYPE.NORMAL);
  for (const [t, id] of Object.entries(model.vocab as Record<string, unknown>)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw new GgufError(`${label}: model.vocab["${t}"] is ${JSON.stringify(id)}, expected a token id`);
    if (id >= vocabRows) throw new GgufError(`${label}: token "${t}" has id ${id}, beyond the model's ${vocabRows} embedding rows`);
    tokens[id] = t;
  }
  const addedList = Array.isArray((json as Record<string, unknown>).added_tokens) ? ((json as Record<string, unknown>).added_tokens as unknown[]) : [];
  for (const a of addedList) {
    if (!isObject(a) || typeof a.id !== 'number' || typeof a.content !== 'string') continue;
    if (a.id >= vocabRows) throw new GgufError(`${label}: added token "${a.content}" has id ${a.id}, beyond the model's ${vocabRows} embedding rows`);
    tokens[a.id] = a.content;
    types[a.id] = a.special === true ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED;
  }
  for (let i = 0; i < vocabRows; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TOKEN_TYPE.UNUSED;
    }
  }
  const merges = Array.isArray(model.merges) ? model.merges.map((m) => (Array.isArray(m) ? m.join(' ') : String(m))) : [];
  const pre = isObject(json) && isObject(json.pre_tokenizer) && json.pre_tokenizer.type === 'ByteLevel' && json.pre_tokenizer.use_regex !== false ? 'gpt-2' : 'default';
  const md: GgufMetadataOut = [
    ['tokenizer.ggml.model', gv.str('gpt2')],
    ['tokenizer.ggml.pre', gv.str(pre)],
    ['tokenizer.ggml.tokens', gv.strs(tokens)],
    ['tokenizer.ggml.token_type', gv.i32s(types)],
    ['tokenizer.ggml.merges', gv.strs(merges)],
  ];
  const cfg = isObject(config) ? config : {};
  const idOf = (v: unknown): number | undefined => {
    const content = typeof v === 'string' ? v : isObject(v) && typeof v.content === 'string' ? v.content : undefined;
    const i = content === undefined ? -1 : tokens.indexOf(content);
    return i >= 0 ? i : undefined;
  };
  const bos = idOf(cfg.bos_token) ?? idOf('<|endoftext|>');
  const eos = idOf(cfg.eos_token) ?? idOf('<|endoftext|>');
  if (bos !== undefined) md.push(['tokenizer.ggml.bos_token_id', gv.u32(bos)]);
  if (eos !== undefined) md.push(['tokenizer.ggml.eos_token_id', gv.u32(eos)]);
  const pad = idOf(cfg.pad_token);
  if (pad !== undefined) md.push(['tokenizer.ggml.padding_token_id', gv.u32(pad)]);
  if (addBos !== undefined) md.push(['tokenizer.ggml.add_bos_token', gv.bool(addBos)]);
  return md;
}
