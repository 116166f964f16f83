/**
 * The OpenAI API's request fields, checked (every mistake an `ApiError`: a 4xx with an OpenAI-style error body
 * naming the field), and turned into what the scheduler runs: prompt ids, sampling, stops, limits. Response
 * bodies are built in http.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Model } from '../api/model.js';
import type { SamplingOptions } from '../generate/sampling.js';
import { ChatTemplateError, type ChatMessage, type ChatTemplate } from './chat-template.js';
import type { JobRequest } from './scheduler.js';

/** An error the client caused (or a refusal): sent as `{error: {message, type, param, code}}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type = status === 401 ? 'authentication_error' : status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error',
  ) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** generation_config.json's sampling defaults (HF names), used where a request does not say */
export interface GenerationDefaults {
  doSample?: boolean;
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  repetitionPenalty?: number;
  maxNewTokens?: number;
}

/** The sampling defaults of a model folder's generation_config.json (none when there is no such file). */
export function readGenerationDefaults(dir: string): GenerationDefaults {
  const file = path.join(dir, 'generation_config.json');
  if (!fs.existsSync(file)) return {};
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return {}; // loadModel has already read (and vouched for) this file; a later edit does not stop the server
  }
  const num = (k: string): number | undefined => (typeof raw[k] === 'number' && Number.isFinite(raw[k]) ? (raw[k] as number) : undefined);
  const out: GenerationDefaults = {};
  if (typeof raw.do_sample === 'boolean') out.doSample = raw.do_sample;
  const map: Array<[keyof GenerationDefaults, string]> = [
    ['temperature', 'temperature'],
    ['topP', 'top_p'],
    ['topK', 'top_k'],
    ['minP', 'min_p'],
    ['repetitionPenalty', 'repetition_penalty'],
    ['maxNewTokens', 'max_new_tokens'],
  ];
  for (const [to, from] of map) {
    const v = num(from);
    if (v !== undefined) (out as Record<string, number>)[to] = v;
  }
  return out;
}

export interface ServerContext {
  model: Model;
  /** the model id clients name */
  modelName: string;
  chatTemplate: ChatTemplate | null;
  defaults: GenerationDefaults;
  /** the largest max_tokens a request may ask for */
  maxTokensLimit: number;
}

type Body = Record<string, unknown>;

export interface ParsedRequest {
  job: Omit<JobRequest, 'signal' | 'onToken'>;
  stream: boolean;
  includeUsage: boolean;
  /** completions: return the generated ids too (`token_ids`, as vLLM's return_token_ids) */
  returnTokenIds: boolean;
}

function isObj(v: unknown): v is Body {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const bad = (msg: string, param: string | null = null): ApiError => new ApiError(400, msg, param);

function optNumber(b: Body, k: string, ok: (x: number) => boolean, expect: string): number | undefined {
  const v = b[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw bad(`${k} must be ${expect}, got ${JSON.stringify(v)}`, k);
  return v;
}

function optBool(b: Body, k: string): boolean | undefined {
  const v = b[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw bad(`${k} must be true or false, got ${JSON.stringify(v)}`, k);
  return v;
}

/** the request body as an object (the HTTP layer has parsed the JSON) */
export function requireObject(body: unknown): Body {
  if (!isObj(body)) throw bad('the request body must be a JSON object');
  return body;
}

function checkModel(ctx: ServerContext, b: Body): void {
  const m = b.model;
  if (m === undefined || m === null) return; // one model is served: naming it is optional
  if (typeof m !== 'string') throw bad(`model must be a string, got ${JSON.stringify(m)}`, 'model');
  if (m !== ctx.modelName) throw new ApiError(404, `The model '${m}' does not exist; this server serves '${ctx.modelName}' (GET /v1/models)`, 'model', 'model_not_found');
}

/** what completions and chat share: limits, sampling, stops, streaming */
function common(ctx: ServerContext, b: Body, maxTokensDefault: number): Omit<ParsedRequest, 'job'> & { job: Omit<ParsedRequest['job'], 'prompt' | 'snapshotAt' | 'logprobs'> } {
  checkModel(ctx, b);
  const n = optNumber(b, 'n', Number.isInteger, 'an integer');
  if (n !== undefined && n !== 1) throw bad('n: only n = 1 is supported (send several requests instead; they are batched)', 'n');
  for (const k of ['frequency_penalty', 'presence_penalty']) {
    const v = optNumber(b, k, () => true, 'a number');
    if (v !== undefined && v !== 0) throw bad(`${k} is not supported (use repetition_penalty)`, k);
  }
  const maxTokens =
    optNumber(b, 'max_completion_tokens', (x) => Number.isInteger(x) && x >= 1, 'a positive integer') ??
    optNumber(b, 'max_tokens', (x) => Number.isInteger(x) && x >= 1, 'a positive integer') ??
    maxTokensDefault;
  if (maxTokens > ctx.maxTokensLimit) throw bad(`max_tokens must be at most ${ctx.maxTokensLimit}, got ${maxTokens}`, 'max_tokens');
  const d = ctx.defaults;
  const temperature = optNumber(b, 'temperature', (x) => x >= 0 && x <= 2, 'a number in [0, 2]');
  const topP = optNumber(b, 'top_p', (x) => x > 0 && x <= 1, 'a number in (0, 1]');
  const topK = optNumber(b, 'top_k', (x) => Number.isInteger(x) && x >= -1, 'an integer >= 0 (0 or -1 = off)');
  const minP = optNumber(b, 'min_p', (x) => x >= 0 && x <= 1, 'a number in [0, 1]');
  const repetitionPenalty = optNumber(b, 'repetition_penalty', (x) => x > 0, 'a number > 0 (1 = off)');
  const seed = optNumber(b, 'seed', Number.isSafeInteger, 'an integer');
  // sampling when the request asks for it (a temperature > 0 or a filter), else as generation_config.json says
  const doSample = temperature !== undefined ? temperature > 0 : [topP, topK, minP].some((x) => x !== undefined) || d.doSample === true;
  const sampling: SamplingOptions = { doSample };
  const set = <K extends keyof SamplingOptions>(k: K, v: SamplingOptions[K] | undefined): void => {
    if (v !== undefined) sampling[k] = v;
  };
  set('temperature', temperature ?? d.temperature);
  set('topP', topP ?? d.topP);
  set('topK', topK === -1 ? 0 : (topK ?? d.topK));
  set('minP', minP ?? d.minP);
  set('repetitionPenalty', repetitionPenalty ?? d.repetitionPenalty);
  set('seed', seed);

  const stopRaw = b.stop;
  let stopStrings: string[] = [];
  if (typeof stopRaw === 'string') stopStrings = [stopRaw];
  else if (Array.isArray(stopRaw) && stopRaw.every((s) => typeof s === 'string')) stopStrings = stopRaw as string[];
  else if (stopRaw !== undefined && stopRaw !== null) throw bad('stop must be a string or a list of strings', 'stop');
  stopStrings = stopStrings.filter((s) => s.length > 0);
  if (stopStrings.length > 0 && !ctx.model.tokenizer) throw bad('stop strings need a tokenizer, and this model has none (use stop_token_ids)', 'stop');
  const stopIds = b.stop_token_ids;
  if (stopIds !== undefined && stopIds !== null && !(Array.isArray(stopIds) && stopIds.every((t) => Number.isInteger(t) && t >= 0))) {
    throw bad('stop_token_ids must be a list of token ids', 'stop_token_ids');
  }
  const ignoreEos = optBool(b, 'ignore_eos') === true;
  const eos = ignoreEos ? [] : [...ctx.model.eosTokenIds, ...(ctx.model.tokenizer?.eosTokenId !== undefined ? [ctx.model.tokenizer.eosTokenId] : [])];
  const stream = optBool(b, 'stream') === true;
  const so = b.stream_options;
  if (so !== undefined && so !== null && !isObj(so)) throw bad('stream_options must be an object', 'stream_options');
  return {
    job: { maxTokens, sampling, stopTokens: [...new Set([...eos, ...((stopIds as number[] | undefined) ?? [])])], stopStrings },
    stream,
    includeUsage: stream && isObj(so) && so.include_usage === true,
    returnTokenIds: optBool(b, 'return_token_ids') === true,
  };
}

function checkIds(ctx: ServerContext, ids: unknown[], param: string): number[] {
  const V = ctx.model.vocabSize;
  ids.forEach((t, i) => {
    if (!Number.isInteger(t) || (t as number) < 0 || (t as number) >= V) throw bad(`${param}[${i}] = ${JSON.stringify(t)} is not a token id in [0, ${V})`, param);
  });
  return ids as number[];
}

/** `POST /v1/completions` */
export function parseCompletion(ctx: ServerContext, body: unknown): ParsedRequest {
  const b = requireObject(body);
  const c = common(ctx, b, ctx.defaults.maxNewTokens ?? 16);
  let p = b.prompt;
  if (p === undefined || p === null) throw bad('prompt is required', 'prompt');
  if (Array.isArray(p) && p.length === 1 && (typeof p[0] === 'string' || Array.isArray(p[0]))) p = p[0];
  let prompt: number[];
  if (typeof p === 'string') {
    if (!ctx.model.tokenizer) throw bad('this model has no tokenizer: give the prompt as token ids', 'prompt');
    prompt = ctx.model.encode(p);
  } else if (Array.isArray(p) && p.every((t) => typeof t === 'number')) prompt = checkIds(ctx, p, 'prompt');
  else if (Array.isArray(p)) throw bad('prompt: one prompt per request (a string or a list of token ids); send several requests to batch', 'prompt');
  else throw bad('prompt must be a string or a list of token ids', 'prompt');
  if (prompt.length === 0) throw bad('prompt is empty (it encodes to no tokens)', 'prompt');
  if (b.echo === true) throw bad('echo is not supported', 'echo');
  if (b.suffix !== undefined && b.suffix !== null) throw bad('suffix is not supported', 'suffix');
  const lp = optNumber(b, 'logprobs', (x) => Number.isInteger(x) && x >= 0 && x <= 20, 'an integer in [0, 20]');
  return { ...c, job: { ...c.job, prompt, logprobs: lp ?? null } };
}

/** `POST /v1/chat/completions` */
export function parseChat(ctx: ServerContext, body: unknown): ParsedRequest {
  const b = requireObject(body);
  const c = common(ctx, b, ctx.defaults.maxNewTokens ?? 256);
  const msgs = b.messages;
  if (!Array.isArray(msgs) || msgs.length === 0) throw bad('messages must be a non-empty list of {role, content}', 'messages');
  const messages: ChatMessage[] = msgs.map((m, i) => {
    if (!isObj(m) || typeof m.role !== 'string') throw bad(`messages[${i}] must be an object with a string "role"`, `messages[${i}]`);
    let content = m.content;
    if (Array.isArray(content)) {
      // content parts: only text ones
      content = content
        .map((part, k) => {
          if (!isObj(part) || part.type !== 'text' || typeof part.text !== 'string') throw bad(`messages[${i}].content[${k}]: only {type: "text", text} parts are supported`, `messages[${i}].content`);
          return part.text;
        })
        .join('');
    }
    if (content === null || content === undefined) content = '';
    if (typeof content !== 'string') throw bad(`messages[${i}].content must be a string or a list of text parts`, `messages[${i}].content`);
    return { ...m, role: m.role, content };
  });
  if (b.tools !== undefined && b.tools !== null && !(Array.isArray(b.tools) && b.tools.length === 0)) throw bad('tools are not supported', 'tools');
  const rf = b.response_format;
  if (isObj(rf) && rf.type !== 'text') throw bad(`response_format ${JSON.stringify(rf.type)} is not supported (only "text")`, 'response_format');
  const tok = ctx.model.tokenizer;
  if (!tok) throw bad('this model has no tokenizer, so it cannot chat (use /v1/completions with token ids)', 'messages');
  if (!ctx.chatTemplate) throw bad("this model has no chat template (tokenizer_config.json has no chat_template): use /v1/completions", 'messages');
  let rendered;
  try {
    rendered = ctx.chatTemplate.encode(tok, messages, true);
  } catch (e) {
    if (e instanceof ChatTemplateError) throw bad(e.message, 'messages');
    throw e;
  }
  if (rendered.ids.length === 0) throw bad('the messages render to an empty prompt', 'messages');
  const wantLp = optBool(b, 'logprobs') === true;
  const top = optNumber(b, 'top_logprobs', (x) => Number.isInteger(x) && x >= 0 && x <= 20, 'an integer in [0, 20]');
  if (top !== undefined && !wantLp) throw bad('top_logprobs needs logprobs: true', 'top_logprobs');
  return { ...c, job: { ...c.job, prompt: rendered.ids, snapshotAt: rendered.messageEnds, logprobs: wantLp ? (top ?? 0) : null } };
}
