/**
 * `mamba-ts serve` as a library: an OpenAI-compatible HTTP server (node:http, no framework) over one model.
 *
 *   GET  /v1/models, /v1/models/{id}       the served model
 *   POST /v1/completions                   text (or token ids) in, text out; `stream: true` = server-sent events
 *   POST /v1/chat/completions              messages through the model's chat template
 *   POST /tokenize, /detokenize            vLLM's shapes
 *   GET  /health                           200 once the model is loaded (no key needed)
 *   GET  /metrics                          Prometheus text
 *
 * Every bad request gets a 4xx with `{error: {message, type, param, code}}`; bodies are size-limited; with an
 * API key, requests without `Authorization: Bearer KEY` get 401; a full queue gets 429 with Retry-After; a
 * client that goes away cancels its request.
 */
import * as http from 'node:http';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Model } from '../api/model.js';
import { MambaTsError } from '../errors.js';
import { ChatTemplate } from './chat-template.js';
import { Metrics } from './metrics.js';
import { ApiError, parseChat, parseCompletion, readGenerationDefaults, requireObject, type ParsedRequest, type ServerContext } from './openai.js';
import { PrefixCache } from './prefix-cache.js';
import { QueueFullError, Scheduler, type JobResult, type JobToken, type TokenLogprob } from './scheduler.js';

export interface ServeOptions {
  model: Model;
  /** the model id clients name (default: the model folder's name) */
  modelName?: string;
  /** default 127.0.0.1 */
  host?: string;
  /** default 8080; 0 = any free port */
  port?: number;
  /** require `Authorization: Bearer <apiKey>` */
  apiKey?: string;
  /** requests generating at once (default 16) */
  maxBatch?: number;
  /** requests waiting beyond those before 429 (default 256) */
  maxQueue?: number;
  /** prompt tokens read per scheduler iteration (default 256) */
  prefillChunk?: number;
  /** prefix-cache memory budget in MiB (default 512; 0 = no cache unless cacheDir) */
  cacheMb?: number;
  /** a snapshot every N prompt tokens (default 512; 0 = message ends only) */
  checkpointEvery?: number;
  /** disk tier of the prefix cache */
  cacheDir?: string;
  /** disk tier budget in MiB (default 4096) */
  cacheDiskMb?: number;
  /** request body limit in bytes (default 8 MiB) */
  maxBodyBytes?: number;
  /** the largest max_tokens a request may ask (default 32768) */
  maxTokensLimit?: number;
  /** a line per request and per internal error (default: none) */
  log?: (line: string) => void;
}

export interface MambaServer {
  readonly http: http.Server;
  readonly scheduler: Scheduler;
  readonly cache: PrefixCache | null;
  readonly metrics: Metrics;
  /** start listening (resolves with the base URL, e.g. http://127.0.0.1:8080) */
  listen(): Promise<string>;
  /** the base URL once listening */
  readonly url: string;
  /** stop accepting connections, end the running requests, wait for snapshot writes */
  close(): Promise<void>;
}

const ROUTES = ['/v1/models', '/v1/completions', '/v1/chat/completions', '/tokenize', '/detokenize', '/health', '/metrics'];

/** Build the server (not listening yet: call `listen()`, or use `serve`). */
export function createServer(opts: ServeOptions): MambaServer {
  const { model } = opts;
  const log = opts.log ?? (() => {});
  const cacheMb = opts.cacheMb ?? 512;
  const cache =
    cacheMb > 0 || opts.cacheDir
      ? new PrefixCache(model, {
          maxBytes: cacheMb * 2 ** 20,
          dir: opts.cacheDir,
          maxDiskBytes: (opts.cacheDiskMb ?? 4096) * 2 ** 20,
          onError: (e) => log(`prefix cache: ${(e as Error)?.message ?? e}`),
        })
      : null;
  const scheduler = new Scheduler(model, {
    maxBatch: opts.maxBatch,
    maxQueue: opts.maxQueue,
    prefillChunk: opts.prefillChunk,
    checkpointEvery: opts.checkpointEvery,
    cache,
    onError: (e) => log(`generation failed: ${(e as Error)?.stack ?? e}`),
  });
  const ctx: ServerContext = {
    model,
    modelName: opts.modelName ?? (path.basename(path.resolve(model.dir)) || 'model'),
    chatTemplate: model.dir && !/^[a-z]+:\/\//.test(model.dir) ? ChatTemplate.fromDir(model.dir) : null,
    defaults: readGenerationDefaults(model.dir),
    maxTokensLimit: opts.maxTokensLimit ?? 32768,
  };
  const metrics = new Metrics();
  const created = Math.floor(Date.now() / 1000);
  const maxBody = opts.maxBodyBytes ?? 8 * 2 ** 20;
  const key = opts.apiKey !== undefined ? Buffer.from(`Bearer ${opts.apiKey}`) : null;

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = ROUTES.includes(url.pathname) ? url.pathname : url.pathname.startsWith('/v1/models/') ? '/v1/models/{id}' : 'other';
    const t0 = performance.now();
    res.on('finish', () => {
      metrics.request(route, res.statusCode);
      log(`${req.method} ${url.pathname} ${res.statusCode} ${(performance.now() - t0).toFixed(1)} ms`);
    });
    handle(req, res, url, route).catch((e: unknown) => {
      if (!(e instanceof ApiError)) log(`internal error on ${req.method} ${url.pathname}: ${(e as Error)?.stack ?? e}`);
      const err =
        e instanceof ApiError
          ? e
          : e instanceof MambaTsError
            ? new ApiError(400, e.message)
            : new ApiError(500, `internal error: ${(e as Error)?.message ?? String(e)}`);
      sendError(res, err);
    });
  });
  // a client that vanishes mid-request is an ordinary event, never a crash
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL, route: string): Promise<void> {
    const method = req.method ?? 'GET';
    if (route === '/health') {
      if (method !== 'GET') throw new ApiError(405, `${method} ${url.pathname}: use GET`);
      return sendJson(res, 200, { status: 'ok' });
    }
    if (key) {
      const got = Buffer.from(req.headers.authorization ?? '');
      if (got.length !== key.length || !timingSafeEqual(got, key)) {
        throw new ApiError(401, 'Incorrect or missing API key: send the header "Authorization: Bearer <key>"', null, 'invalid_api_key');
      }
    }
    const wantGet = route === '/v1/models' || route === '/v1/models/{id}' || route === '/metrics';
    if (route === 'other') throw new ApiError(404, `no such endpoint: ${method} ${url.pathname} (endpoints: ${ROUTES.join(', ')})`, null, 'not_found');
    if (wantGet && method !== 'GET') throw new ApiError(405, `${method} ${url.pathname}: use GET`);
    if (!wantGet && method !== 'POST') throw new ApiError(405, `${method} ${url.pathname}: use POST`);
    switch (route) {
      case '/v1/models':
        return sendJson(res, 200, { object: 'list', data: [modelCard()] });
      case '/v1/models/{id}': {
        const id = decodeURIComponent(url.pathname.slice('/v1/models/'.length));
        if (id !== ctx.modelName) throw new ApiError(404, `The model '${id}' does not exist; this server serves '${ctx.modelName}'`, 'model', 'model_not_found');
        return sendJson(res, 200, modelCard());
      }
      case '/metrics': {
        const st = scheduler.stats;
        res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(
          metrics.render({
            queue: st.waiting,
            prefilling: st.prefilling,
            decoding: st.decoding,
            cacheEntries: cache?.size ?? 0,
            cacheBytes: cache?.bytes.memory ?? 0,
            cacheDiskBytes: cache?.bytes.disk ?? 0,
            cacheHits: cache?.hits ?? 0,
            cacheMisses: cache?.misses ?? 0,
            decodeSteps: scheduler.steps,
            decodeRows: scheduler.stepRows,
          }),
        );
        return;
      }
    }
    const body = await readJson(req, res);
    if (route === '/tokenize') return tokenize(res, body);
    if (route === '/detokenize') return detokenize(res, body);
    const chat = route === '/v1/chat/completions';
    const parsed = chat ? parseChat(ctx, body) : parseCompletion(ctx, body);
    return generate(req, res, parsed, chat);
  }

  function modelCard(): Record<string, unknown> {
    return { id: ctx.modelName, object: 'model', created, owned_by: 'mamba-ts' };
  }

  function tokenize(res: http.ServerResponse, body: unknown): void {
    const b = requireObject(body);
    const tok = model.tokenizer;
    if (!tok) throw new ApiError(400, 'this model has no tokenizer');
    let ids: number[];
    if (typeof b.prompt === 'string') ids = tok.encode(b.prompt, { addSpecialTokens: b.add_special_tokens !== false });
    else if (Array.isArray(b.messages)) ids = parseChat(ctx, { messages: b.messages, model: b.model }).job.prompt;
    else throw new ApiError(400, 'give "prompt" (a string) or "messages"', 'prompt');
    sendJson(res, 200, { count: ids.length, tokens: ids });
  }

  function detokenize(res: http.ServerResponse, body: unknown): void {
    const b = requireObject(body);
    const tok = model.tokenizer;
    if (!tok) throw new ApiError(400, 'this model has no tokenizer');
    const ids = b.tokens;
    if (!Array.isArray(ids) || !ids.every((t) => Number.isInteger(t) && t >= 0)) throw new ApiError(400, 'tokens must be a list of token ids', 'tokens');
    sendJson(res, 200, { prompt: tok.decode(ids as number[]) });
  }

  async function generate(req: http.IncomingMessage, res: http.ServerResponse, p: ParsedRequest, chat: boolean): Promise<void> {
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`;
    const now = Math.floor(Date.now() / 1000);
    const object = chat ? (p.stream ? 'chat.completion.chunk' : 'chat.completion') : 'text_completion';
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    req.on('aborted', () => abort.abort());
    let last = 0;
    const tokenText = (t: number): string => model.tokenizer?.decode([t], { skipSpecialTokens: false }) ?? String(t);
    const t0 = performance.now();
    let started = false;
    const onToken = (ev: JobToken): void => {
      const t = performance.now();
      if (ev.index === 0) metrics.ttft.observe((t - t0) / 1000);
      else if (p.stream) metrics.interToken.observe((t - last) / 1000);
      last = t;
      if (!p.stream || res.destroyed) return;
      if (!started) {
        started = true;
        res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
        if (chat) sse(res, { id, object, created: now, model: ctx.modelName, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
      }
      // a token whose text is not decodable yet sends nothing, unless ids were asked for (a model without tokenizer)
      if (ev.text === '' && !ev.finishReason && !ev.logprob && !p.returnTokenIds) return;
      const lp = ev.logprob ? (chat ? chatLogprobs([ev.logprob], tokenText) : completionLogprobs([ev.logprob], tokenText, 0)) : null;
      const choice: Record<string, unknown> = chat
        ? { index: 0, delta: ev.text ? { content: ev.text } : {}, logprobs: lp, finish_reason: ev.finishReason ?? null }
        : { index: 0, text: ev.text, logprobs: lp, finish_reason: ev.finishReason ?? null };
      if (p.returnTokenIds) choice.token_ids = [ev.token];
      sse(res, { id, object, created: now, model: ctx.modelName, choices: [choice] });
    };
    let promise: Promise<JobResult>;
    try {
      promise = scheduler.submit({ ...p.job, signal: abort.signal, onToken });
    } catch (e) {
      if (e instanceof QueueFullError) {
        res.setHeader('Retry-After', '1');
        throw new ApiError(429, `server busy: ${e.message}; retry later`, null, 'queue_full');
      }
      throw e;
    }
    let r: JobResult;
    try {
      r = await promise;
    } catch (e) {
      if (!started) throw e;
      // the stream has begun: the error goes in it
      const err = e instanceof MambaTsError ? new ApiError(400, e.message) : new ApiError(500, `internal error: ${(e as Error)?.message ?? e}`);
      sse(res, err.body());
      res.end('data: [DONE]\n\n');
      return;
    }
    metrics.promptTokens += r.promptTokens;
    metrics.cachedTokens += r.cachedTokens;
    metrics.generatedTokens += r.generated.length;
    metrics.duration.observe((performance.now() - t0) / 1000);
    if (r.finishReason === 'abort' || res.destroyed) return; // the client has gone
    const finish = r.finishReason;
    const usage = {
      prompt_tokens: r.promptTokens,
      completion_tokens: r.generated.length,
      total_tokens: r.promptTokens + r.generated.length,
      prompt_tokens_details: { cached_tokens: r.cachedTokens },
    };
    if (p.stream) {
      if (p.includeUsage) sse(res, { id, object, created: now, model: ctx.modelName, choices: [], usage });
      res.end('data: [DONE]\n\n');
      return;
    }
    const choice: Record<string, unknown> = chat
      ? { index: 0, message: { role: 'assistant', content: r.text }, logprobs: p.job.logprobs != null ? chatLogprobs(r.logprobs, tokenText) : null, finish_reason: finish }
      : { index: 0, text: r.text, logprobs: p.job.logprobs != null ? completionLogprobs(r.logprobs, tokenText, 0) : null, finish_reason: finish };
    if (p.returnTokenIds) choice.token_ids = r.generated;
    sendJson(res, 200, { id, object, created: now, model: ctx.modelName, choices: [choice], usage });
  }

  let url = '';
  return {
    http: server,
    scheduler,
    cache,
    metrics,
    get url() {
      return url;
    },
    listen() {
      return new Promise<string>((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port ?? 8080, opts.host ?? '127.0.0.1', () => {
          server.off('error', reject);
          const a = server.address() as AddressInfo;
          url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
          resolve(url);
        });
      });
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await scheduler.close();
      await closed;
      await cache?.flush();
      cache?.dispose();
    },
  };

  /** the body as JSON, at most maxBody bytes (413 beyond: what was sent is read and dropped, then the connection closes) */
  function readJson(req: http.IncomingMessage, res: http.ServerResponse): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const tooBig = (): ApiError => new ApiError(413, `request body too large (limit ${maxBody} bytes)`, null, 'body_too_large');
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBody) {
        res.setHeader('Connection', 'close');
        drain(req);
        return reject(tooBig());
      }
      const chunks: Buffer[] = [];
      let size = 0;
      let failed = false;
      req.on('data', (c: Buffer) => {
        if (failed) return;
        size += c.length;
        if (size > maxBody) {
          failed = true;
          chunks.length = 0;
          res.setHeader('Connection', 'close');
          drain(req);
          reject(tooBig());
          return;
        }
        chunks.push(c);
      });
      req.on('error', (e) => reject(new ApiError(400, `reading the request failed: ${e.message}`)));
      req.on('end', () => {
        if (failed) return;
        const text = Buffer.concat(chunks).toString('utf8');
        if (text.trim() === '') return reject(new ApiError(400, 'the request body is empty; send a JSON object'));
        try {
          resolve(JSON.parse(text));
        } catch (e) {
          reject(new ApiError(400, `the request body is not valid JSON: ${(e as Error).message}`));
        }
      });
    });
  }

  /** read and drop the rest of a refused body (so the client sees the answer), but not forever */
  function drain(req: http.IncomingMessage): void {
    let dropped = 0;
    req.removeAllListeners('data');
    req.on('data', (c: Buffer) => {
      dropped += c.length;
      if (dropped > 8 * maxBody + 64 * 2 ** 20) req.destroy();
    });
    req.resume();
  }
}

/** `createServer` + `listen`: a running server. */
export async function serve(opts: ServeOptions): Promise<MambaServer> {
  const s = createServer(opts);
  await s.listen();
  return s;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: http.ServerResponse, e: ApiError): void {
  if (res.headersSent) {
    if (!res.writableEnded) res.end();
    return;
  }
  sendJson(res, e.status, e.body());
}

function sse(res: http.ServerResponse, obj: unknown): void {
  if (!res.destroyed) res.write(`data: ${JSON.stringify(obj)}\n\n`);
}

function completionLogprobs(lps: TokenLogprob[], text: (t: number) => string, offset0: number): Record<string, unknown> {
  let offset = offset0;
  const textOffset: number[] = [];
  for (const l of lps) {
    textOffset.push(offset);
    offset += text(l.token).length;
  }
  return {
    tokens: lps.map((l) => text(l.token)),
    token_logprobs: lps.map((l) => l.logprob),
    top_logprobs: lps.map((l) => Object.fromEntries(l.top.map((t) => [text(t.token), t.logprob]))),
    text_offset: textOffset,
  };
}

function chatLogprobs(lps: TokenLogprob[], text: (t: number) => string): Record<string, unknown> {
  const entry = (token: number, logprob: number) => {
    const s = text(token);
    return { token: s, logprob, bytes: [...Buffer.from(s, 'utf8')] };
  };
  return { content: lps.map((l) => ({ ...entry(l.token, l.logprob), top_logprobs: l.top.map((t) => entry(t.token, t.logprob)) })) };
}
