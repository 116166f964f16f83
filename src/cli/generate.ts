/** `mamba-ts generate`: stream a continuation of a prompt. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GenerationError, type GenerateOptions, type GenerateResult, type TokenEvent } from '../generate/generate.js';
import type { KvCacheDType } from '../tensor/dtype.js';
import type { ModelState } from '../models/state.js';
import {
  CliError,
  commandUsage,
  flag,
  parseChoice,
  parseCommand,
  parseIds,
  parseNumber,
  str,
  strs,
  UsageError,
  KV_CACHE_OPTION,
  parseKvCache,
  checkDtype,
  type CommandSpec,
} from './args.js';
import { loadWithProgress, requireModel } from './info.js';
import { DOWNLOAD_OPTION, MODEL_OPTION } from './download.js';
import { formatBytes, formatSeconds, readFileFor, startProgress, writeFileAtomic, type CliIO } from './io.js';

export const DEFAULT_MAX_TOKENS = 64;
export const SCAN_CHOICES = ['sequential', 'chunked'] as const;

export const GENERATE_SPEC: CommandSpec = {
  name: 'generate',
  summary: 'Generate a continuation of a prompt, streaming it to stdout as tokens arrive.',
  synopsis: '--model DIR|org/name (--prompt TEXT | --prompt-file FILE | --ids 1,2,3) [options]',
  description: [
    'Only the generated text goes to stdout (token ids, space-separated, with --ids or for a model',
    'without a tokenizer); a summary line goes to stderr. Decoding is greedy unless --sample is given',
    'or one of --temperature/--top-k/--top-p/--min-p is, which implies sampling.',
  ].join('\n'),
  options: {
    model: MODEL_OPTION,
    download: DOWNLOAD_OPTION,
    prompt: { type: 'string', short: 'p', value: 'TEXT', help: 'prompt text (needs a tokenizer)' },
    'prompt-file': { type: 'string', value: 'FILE', help: "read the prompt text from FILE ('-' = stdin), used as is" },
    ids: { type: 'string', value: 'IDS', help: 'prompt as token ids, e.g. 1,2,3; prints generated ids' },
    'max-tokens': { type: 'string', short: 'n', value: 'N', help: `tokens to generate at most (default ${DEFAULT_MAX_TOKENS})` },
    temperature: { type: 'string', short: 't', value: 'T', help: 'softmax temperature >= 0 (0 = greedy); implies --sample' },
    'top-k': { type: 'string', value: 'K', help: 'keep the K most likely tokens (0 = off); implies --sample' },
    'top-p': { type: 'string', value: 'P', help: 'nucleus sampling, P in (0, 1] (1 = off); implies --sample' },
    'min-p': { type: 'string', value: 'P', help: 'drop tokens below P x the top probability, P in [0, 1]; implies --sample' },
    'repetition-penalty': { type: 'string', value: 'R', help: 'penalise tokens already seen, R > 0 (1 = off)' },
    seed: { type: 'string', value: 'S', help: 'random seed (integer) for reproducible sampling' },
    sample: { type: 'boolean', help: 'sample from the distribution instead of taking the most likely token' },
    stop: {
      type: 'string',
      multiple: true,
      value: 'TEXT',
      help: 'stop when TEXT appears in the output (repeatable; not printed);\nescapes: \\n newline, \\t tab, \\r, \\\\ backslash, \\uXXXX or \\u{X…} a code point',
    },
    'no-eos': { type: 'boolean', help: "do not stop at the model's end-of-sequence token(s)" },
    tokenizer: { type: 'string', value: 'FILE', help: "tokenizer.json (or a folder holding one) instead of the model folder's" },
    'save-state': { type: 'string', value: 'FILE', help: 'save the state after the last token to FILE (to continue later)' },
    'load-state': { type: 'string', value: 'FILE', help: 'continue from a state saved with --save-state; the prompt is read after it' },
    json: {
      type: 'boolean',
      help: [
        'print one JSON object at the end instead of streaming: generated (the new ids),',
        'promptIds, tokens (prompt + generated, as the API result), text, finishReason, stats',
      ].join('\n'),
    },
    scan: { type: 'string', value: 'ALGO', help: `prefill scan algorithm: ${SCAN_CHOICES.join(' or ')}\n(default: the backend's, chunked on cpu and webgpu, sequential on wasm)` },
    backend: { type: 'string', value: 'NAME', help: 'cpu (TypeScript reference, default), wasm (WebAssembly SIMD + threads)\nor webgpu (the GPU, via the webgpu package)' },
    threads: { type: 'string', value: 'N', help: 'wasm threads including the main one (default: all cores)' },
    dtype: { type: 'string', value: 'TYPE', help: 'weight storage: f32 (default), f16, bf16, q8 or q4 (GGUF Q4_K) on wasm; f32, bf16 or q8 on webgpu' },
    'kv-cache': KV_CACHE_OPTION,
  },
  examples: [
    'mamba-ts generate --model ./mamba-130m-hf --prompt "The state space model" --max-tokens 32',
    'mamba-ts generate -m ./mamba-130m-hf -p "Once upon a time" --temperature 0.8 --top-p 0.95 --seed 1 --stop "\\n\\n"',
    'mamba-ts generate -m ./mamba-130m-hf --ids 510,1375,2317 -n 8 --no-eos --save-state chat.state',
  ],
};

/** The validated command line of `generate`, before the model is loaded. */
export interface GenerateArgs {
  model: string;
  prompt: { kind: 'text'; text: string } | { kind: 'file'; file: string } | { kind: 'ids'; ids: number[] };
  maxTokens: number;
  sampling: Pick<GenerateOptions, 'temperature' | 'topK' | 'topP' | 'minP' | 'repetitionPenalty' | 'seed' | 'doSample'>;
  stop: string[];
  noEos: boolean;
  tokenizer?: string;
  saveState?: string;
  loadState?: string;
  json: boolean;
  /** fetch a hub model into the cache first */
  download: boolean;
  scan?: (typeof SCAN_CHOICES)[number];
  backend?: 'cpu' | 'wasm' | 'webgpu';
  threads?: number;
  dtype?: 'f32' | 'f16' | 'bf16' | 'q8' | 'q4';
  kvCache?: KvCacheDType;
}

/** Parse and validate `generate`'s options (no file or model access). `null` = help was asked for. */
export function parseGenerateArgs(argv: string[]): GenerateArgs | null {
  const C = 'generate';
  const v = parseCommand(GENERATE_SPEC, argv);
  if (v === null) return null;
  const model = requireModel(v, C);
  const sources = (['prompt', 'prompt-file', 'ids'] as const).filter((k) => v[k] !== undefined);
  if (sources.length === 0) throw new UsageError('generate: missing prompt: give --prompt TEXT, --prompt-file FILE or --ids 1,2,3', C);
  if (sources.length > 1) throw new UsageError(`generate: give only one of --prompt, --prompt-file, --ids (got ${sources.map((s) => `--${s}`).join(', ')})`, C);
  let prompt: GenerateArgs['prompt'];
  if (sources[0] === 'ids') prompt = { kind: 'ids', ids: parseIds('ids', str(v, 'ids')!, C) };
  else if (sources[0] === 'prompt') prompt = { kind: 'text', text: str(v, 'prompt')! };
  else prompt = { kind: 'file', file: str(v, 'prompt-file')! };

  const num = (name: string, rule: Parameters<typeof parseNumber>[2]): number | undefined => {
    const raw = str(v, name);
    return raw === undefined ? undefined : parseNumber(name, raw, rule, C);
  };
  const maxTokens = num('max-tokens', { integer: true, min: 1, expect: 'a positive integer' }) ?? DEFAULT_MAX_TOKENS;
  const temperature = num('temperature', { min: 0, expect: 'a number >= 0 (0 = greedy)' });
  const topK = num('top-k', { integer: true, min: 0, expect: 'an integer >= 0 (0 = off)' });
  const topP = num('top-p', { min: 0, minOpen: true, max: 1, expect: 'a number in (0, 1]' });
  const minP = num('min-p', { min: 0, max: 1, expect: 'a number in [0, 1]' });
  const repetitionPenalty = num('repetition-penalty', { min: 0, minOpen: true, expect: 'a number > 0 (1 = off)' });
  const seed = num('seed', { integer: true, expect: 'an integer' });
  const doSample = flag(v, 'sample') || [temperature, topK, topP, minP].some((x) => x !== undefined);
  const scanRaw = str(v, 'scan');
  const stop = strs(v, 'stop').map((s) => unescapeText('stop', s, C));
  if (stop.some((s) => s.length === 0)) throw new UsageError('--stop: expected a non-empty text', C);
  const a: GenerateArgs = {
    model,
    prompt,
    maxTokens,
    sampling: { doSample, temperature, topK, topP, minP, repetitionPenalty, seed },
    stop,
    noEos: flag(v, 'no-eos'),
    json: flag(v, 'json'),
    download: flag(v, 'download'),
  };
  const tokenizer = str(v, 'tokenizer');
  if (tokenizer !== undefined) a.tokenizer = tokenizer;
  const saveState = str(v, 'save-state');
  if (saveState !== undefined) a.saveState = saveState;
  const loadState = str(v, 'load-state');
  if (loadState !== undefined) a.loadState = loadState;
  if (scanRaw !== undefined) a.scan = parseChoice('scan', scanRaw, SCAN_CHOICES, C);
  const backendRaw = str(v, 'backend');
  if (backendRaw !== undefined) a.backend = parseChoice('backend', backendRaw, ['cpu', 'wasm', 'webgpu'] as const, C);
  const threadsRaw = str(v, 'threads');
  if (threadsRaw !== undefined) a.threads = parseNumber('threads', threadsRaw, { integer: true, min: 1, expect: 'an integer >= 1' }, C);
  const dtypeRaw = str(v, 'dtype');
  if (dtypeRaw !== undefined) a.dtype = parseChoice('dtype', dtypeRaw, ['f32', 'f16', 'bf16', 'q8', 'q4'] as const, C);
  if (a.threads !== undefined && a.backend !== 'wasm') throw new UsageError('--threads needs --backend wasm', C);
  const kvCache = parseKvCache(v, a.backend ?? 'cpu', C);
  if (kvCache !== undefined) a.kvCache = kvCache;
  checkDtype(a.dtype, a.backend ?? 'cpu', C);
  return a;
}

/**
 * A --prompt-file's text: UTF-8 (a byte-order mark is dropped) without NUL bytes. A binary file would
 * otherwise become thousands of U+FFFD tokens; it is refused with the file's name.
 */
function promptFileText(file: string): string {
  const bytes = readFileFor(file, '--prompt-file');
  const name = file === '-' ? '- (stdin)' : file;
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw new CliError(`--prompt-file ${name}: not a text file (a NUL byte at offset ${nul}); give UTF-8 text`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new CliError(`--prompt-file ${name}: not UTF-8 text (invalid UTF-8 at byte offset ${firstInvalidUtf8(bytes)}); convert it to UTF-8 first`);
  }
}

/** byte offset where the first invalid UTF-8 sequence starts (for the message; TextDecoder decides) */
function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length; ) {
    const c = b[i];
    const n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (n < 0 || i + n >= b.length) return i;
    for (let k = 1; k <= n; k++) if ((b[i + k] & 0xc0) !== 0x80) return i;
    // overlong forms, UTF-16 surrogates, code points above U+10FFFF
    const d = b[i + 1];
    if ((c === 0xe0 && d < 0xa0) || (c === 0xed && d > 0x9f) || (c === 0xf0 && d < 0x90) || (c === 0xf4 && d > 0x8f)) return i;
    i += n + 1;
  }
  return b.length;
}

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\' };
const ESCAPE_HELP = 'escapes are \\n, \\t, \\r, \\\\, \\uXXXX and \\u{X…}';

/**
 * A text option with the usual escapes interpreted (`--stop "\n\n"`: a shell passes backslash-n, which
 * would otherwise never match): \n \t \r \\ \uXXXX \u{X…}. Any other backslash is a usage error.
 */
export function unescapeText(option: string, raw: string, command = ''): string {
  const bad = (what: string): never => {
    throw new UsageError(`--${option}: ${what} in '${raw}' (${ESCAPE_HELP}; write \\\\ for a backslash)`, command);
  };
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = raw[i + 1];
    if (e === undefined) bad('a trailing backslash');
    if (e in ESCAPES) {
      out += ESCAPES[e];
      i++;
      continue;
    }
    if (e === 'u') {
      const braced = raw[i + 2] === '{' ? /^\{([0-9a-fA-F]{1,6})\}/.exec(raw.slice(i + 2)) : null;
      const hex = braced ? braced[1] : /^[0-9a-fA-F]{4}/.exec(raw.slice(i + 2))?.[0];
      // what the message quotes: up to the closing brace, or the four characters that should be hex digits
      const seen = raw[i + 2] === '{' ? raw.slice(i + 2, raw.indexOf('}', i + 2) + 1 || raw.length) : raw.slice(i + 2, i + 6);
      const cp = hex === undefined ? NaN : parseInt(hex, 16);
      if (!(cp <= 0x10ffff)) bad(`an invalid escape '\\u${seen}'`);
      out += String.fromCodePoint(cp);
      i += 1 + (braced ? braced[0].length : 4);
      continue;
    }
    bad(`an unknown escape '\\${e}'`);
  }
  return out;
}

export async function generateCommand(argv: string[], io: CliIO): Promise<number> {
  const args = parseGenerateArgs(argv);
  if (args === null) {
    io.stdout.write(commandUsage(GENERATE_SPEC));
    return 0;
  }
  const C = 'generate';

  // everything that can fail without the model fails before the (possibly slow) load
  let promptText: string | null = null;
  const promptOption = args.prompt.kind === 'file' ? `--prompt-file ${args.prompt.file}` : `--${args.prompt.kind === 'ids' ? 'ids' : 'prompt'}`;
  if (args.prompt.kind !== 'ids') {
    promptText = args.prompt.kind === 'text' ? args.prompt.text : promptFileText(args.prompt.file);
    if (promptText.length === 0) throw new UsageError(`${promptOption}: the prompt is empty`, C);
  }
  if (args.saveState !== undefined) {
    const dir = path.dirname(path.resolve(args.saveState));
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new CliError(`cannot write --save-state ${args.saveState}: folder ${dir} does not exist`);
  }
  const stateBytes = args.loadState !== undefined ? readFileFor(args.loadState, '--load-state') : null;

  const model = await loadWithProgress(io, args.model, {
    ...(args.tokenizer !== undefined ? { tokenizer: args.tokenizer } : {}),
    ...(args.scan !== undefined ? { scan: { algorithm: args.scan } } : {}),
    ...(args.backend !== undefined ? { backend: args.backend } : {}),
    ...(args.threads !== undefined ? { threads: args.threads } : {}),
    ...(args.dtype !== undefined ? { weights: args.dtype } : {}),
    ...(args.kvCache !== undefined ? { kvCache: args.kvCache } : {}),
  }, args.download);

  let ids: number[];
  if (args.prompt.kind === 'ids') {
    ids = args.prompt.ids;
    const bad = ids.find((id) => id >= model.vocabSize);
    if (bad !== undefined) throw new UsageError(`--ids: token id ${bad} is out of range for this model (vocabulary ${model.vocabSize}: ids 0..${model.vocabSize - 1})`, C);
  } else {
    if (!model.tokenizer) {
      throw new CliError(`${args.prompt.kind === 'text' ? '--prompt' : '--prompt-file'} needs a tokenizer, and ${args.model} has no tokenizer.json: pass --tokenizer FILE, or give token ids with --ids`);
    }
    ids = model.encode(promptText!);
    if (ids.length === 0) throw new CliError(`${promptOption}: the prompt encodes to no tokens`);
  }
  if (args.stop.length > 0 && !model.tokenizer) {
    throw new CliError(`--stop needs a tokenizer, and ${args.model} has no tokenizer.json (pass --tokenizer FILE)`);
  }
  let state: ModelState | undefined;
  if (stateBytes !== null) {
    state = model.importState(new Uint8Array(stateBytes.buffer, stateBytes.byteOffset, stateBytes.byteLength), args.loadState);
    if (state.batch !== 1) throw new CliError(`--load-state ${args.loadState}: the state holds ${state.batch} sequences; the CLI continues exactly one`);
  }

  // a sampling run always has a known seed, reported in the summary so it can be repeated
  const sampling = { ...args.sampling };
  const sampled = sampling.doSample === true && sampling.temperature !== 0;
  if (sampled && sampling.seed === undefined) sampling.seed = Math.floor(Math.random() * 2 ** 31);

  const idsOut = args.prompt.kind === 'ids' || !model.tokenizer;
  const out = new StreamPrinter(io, idsOut, args.json);
  const abort = new AbortController();
  const onExternalAbort = (): void => abort.abort();
  if (io.signal) {
    if (io.signal.aborted) abort.abort();
    else io.signal.addEventListener('abort', onExternalAbort, { once: true });
  }
  let interrupts = 0;
  const onSigint = (): void => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    abort.abort();
  };
  if (io.handleSigint) process.on('SIGINT', onSigint);
  const prefill = args.json ? { done() {} } : startProgress(io.stderr, `reading the prompt (${ids.length} tokens)`);

  let result: GenerateResult;
  try {
    const it = model.stream(ids, {
      ...sampling,
      maxNewTokens: args.maxTokens,
      ...(args.noEos ? { stopTokens: [] } : {}),
      ...(args.stop.length > 0 ? { stopStrings: args.stop } : {}),
      ...(state ? { state } : {}),
      signal: abort.signal,
    });
    for (;;) {
      let step: IteratorResult<TokenEvent, GenerateResult>;
      try {
        step = await it.next();
      } catch (e) {
        // interrupted before the first token: nothing was generated, nothing to summarise
        if (abort.signal.aborted && e instanceof GenerationError) {
          io.stderr.write('interrupted before generation started\n');
          return 130;
        }
        throw e;
      }
      if (step.done) {
        result = step.value;
        break;
      }
      prefill.done();
      out.token(step.value);
      // The generation loop only awaits already-settled promises on the CPU backend, so it never
      // returns to the event loop by itself: without this, SIGINT (and any timer) would only be
      // handled once generation is over.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  } finally {
    prefill.done();
    if (io.handleSigint) process.off('SIGINT', onSigint);
    io.signal?.removeEventListener('abort', onExternalAbort);
  }
  out.end();

  let saved: { file: string; bytes: number } | null = null;
  if (args.saveState !== undefined) {
    const bytes = await result.state.export();
    writeFileAtomic(args.saveState, bytes, '--save-state');
    saved = { file: args.saveState, bytes: bytes.byteLength };
  }

  const finish = result.finishReason[0];
  const s = result.stats;
  if (args.json) {
    // the token lists mean what GenerateResult's do: generated = the new ids, tokens = prompt + generated
    const obj: Record<string, unknown> = {
      generated: result.generated[0],
      text: result.text ? result.text[0] : null,
      finishReason: finish,
      promptIds: ids,
      tokens: result.tokens[0],
      stats: { ...s, decodeTokensPerSecond: Number.isFinite(s.decodeTokensPerSecond) ? s.decodeTokensPerSecond : null },
    };
    if (sampled) obj.seed = sampling.seed;
    if (state) obj.loadedState = { file: args.loadState, tokensBefore: state.seqLen[0] };
    if (saved) obj.savedState = { file: saved.file, bytes: saved.bytes, tokens: result.state.seqLen[0] };
    io.stdout.write(JSON.stringify(obj) + '\n');
  } else {
    const tps = Number.isFinite(s.decodeTokensPerSecond) ? s.decodeTokensPerSecond.toFixed(1) : 'n/a';
    const extra = [`finish reason: ${finish === 'abort' ? 'abort (interrupted)' : finish}`];
    if (sampled) extra.push(`seed ${sampling.seed}`);
    io.stderr.write(
      `${s.generatedTokens} tokens in ${formatSeconds(s.decodeMs)} s (${tps} tokens/s decode; prefill ${s.promptTokens} tokens in ${s.prefillMs.toFixed(1)} ms); ${extra.join('; ')}\n`,
    );
    if (saved) io.stderr.write(`state saved to ${saved.file} (${formatBytes(saved.bytes)}, ${result.state.seqLen[0]} tokens read)\n`);
  }
  return finish === 'abort' ? 130 : 0;
}

/**
 * Writes generated output to stdout as it streams: ids space-separated, or the events' text (the
 * library already holds back anything that could become a stop string, and never sends one).
 */
class StreamPrinter {
  private count = 0;
  private last = '';

  constructor(
    private readonly io: CliIO,
    private readonly ids: boolean,
    private readonly quiet: boolean,
  ) {}

  token(ev: TokenEvent): void {
    if (this.quiet) return;
    if (this.ids) {
      this.io.stdout.write(`${this.count++ > 0 ? ' ' : ''}${ev.token}`);
      return;
    }
    if (ev.text) {
      this.io.stdout.write(ev.text);
      this.last = ev.text;
    }
  }

  end(): void {
    if (this.quiet) return;
    if (this.ids ? this.count > 0 : this.last !== '' && !this.last.endsWith('\n')) this.io.stdout.write('\n');
  }
}
