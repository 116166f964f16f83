/**
 * Continuous batching: one loop owns the model. Each iteration it admits waiting requests (up to `maxBatch`
 * running), reads one chunk of one request's prompt (so a long prompt never holds up the others' decoding for
 * more than a chunk), then runs one batched decode step for every request that is generating: one
 * `advance` over a state whose rows are those requests. A request that finishes or is cancelled leaves the
 * batch; one that has read its prompt joins it.
 *
 * Per request: its own sampler (seed), stop tokens and strings, streamed text, optional log-probabilities.
 * Nothing per request lives on the model object. Prompt reading starts from the longest prefix in the
 * prefix cache and leaves snapshots at the positions the request asks for (message ends), every
 * `checkpointEvery` tokens and at the prompt's end; a finished request leaves one after its reply.
 */
import type { Model } from '../api/model.js';
import { Sampler, type SamplingOptions } from '../generate/sampling.js';
import { StopTextFilter } from '../generate/stop.js';
import { ModelState } from '../models/state.js';
import { MambaTsError } from '../errors.js';
import { StreamDecoder } from '../tokenizer/core.js';
import type { HostTensor } from '../tensor/tensor.js';
import type { PrefixCache } from './prefix-cache.js';

/** The queue is full: the caller should retry later (HTTP 429). */
export class QueueFullError extends MambaTsError {}

export interface JobRequest {
  prompt: number[];
  maxTokens: number;
  sampling: SamplingOptions;
  stopTokens: number[];
  stopStrings: string[];
  /** positions (token counts) after which to leave a snapshot in the prefix cache, e.g. message ends */
  snapshotAt?: number[];
  /** log-probabilities: null = none, n = the chosen token's and the n most likely tokens' (n may be 0) */
  logprobs?: number | null;
  signal?: AbortSignal;
  /** each generated token, as it comes */
  onToken?: (ev: JobToken) => void;
}

export interface TokenLogprob {
  token: number;
  logprob: number;
  top: Array<{ token: number; logprob: number }>;
}

export interface JobToken {
  token: number;
  /** newly decodable text (stop strings are never sent; see `TokenEvent.text`) */
  text: string;
  index: number;
  logprob?: TokenLogprob;
  finishReason?: 'stop' | 'length' | 'abort';
}

export interface JobResult {
  generated: number[];
  text: string;
  finishReason: 'stop' | 'length' | 'abort';
  promptTokens: number;
  /** prompt tokens restored from the prefix cache instead of being read */
  cachedTokens: number;
  logprobs: TokenLogprob[];
  seed: number;
  /** ms from submission to the first token */
  ttftMs: number;
}

export interface SchedulerOptions {
  /** requests generating at once (default 16) */
  maxBatch?: number;
  /** requests waiting beyond the running ones before new ones are refused (default 256) */
  maxQueue?: number;
  /** prompt tokens read per iteration (default 256) */
  prefillChunk?: number;
  /** leave a snapshot every N prompt tokens (default 512; 0 = only at the positions a request asks for) */
  checkpointEvery?: number;
  cache?: PrefixCache | null;
  /** told when a step fails (the requests of that step fail, the loop goes on) */
  onError?: (e: unknown) => void;
}

interface Job {
  req: JobRequest;
  sampler: Sampler;
  stop: Set<number>;
  decoder: StreamDecoder | null;
  filter: StopTextFilter;
  history: number[];
  generated: number[];
  logprobs: TokenLogprob[];
  /** prompt tokens read (or restored) so far */
  pos: number;
  cached: number;
  /** the request's own state while it reads its prompt */
  state: ModelState | null;
  /** the next token to feed (sampled, not yet read by the state) */
  pending: number;
  snapshots: number[];
  submitted: number;
  firstToken: number;
  finish: JobResult['finishReason'] | null;
  resolve(r: JobResult): void;
  reject(e: unknown): void;
}

export interface SchedulerStats {
  waiting: number;
  prefilling: number;
  decoding: number;
}

export class Scheduler {
  readonly maxBatch: number;
  readonly maxQueue: number;
  readonly prefillChunk: number;
  readonly checkpointEvery: number;
  private readonly waiting: Job[] = [];
  private readonly prefilling: Job[] = [];
  /**
   * rows of `batch`, in order; null = a free row (its request left). Rows join and leave without copying the
   * others: a new request takes a free row in place (`ModelState.writeRow`); free rows run along (fed a dummy
   * token) until they outnumber half the live ones, then the batch is compacted (one copy).
   */
  private decoding: Array<Job | null> = [];
  private live = 0;
  private batch: ModelState | null = null;
  private running = false;
  private idle: Promise<void> = Promise.resolve();
  private closed = false;
  /** decode steps run and rows they held, for the metrics */
  steps = 0;
  stepRows = 0;
  /** requests that took a free row in place (no copy of the others) */
  rowsReused = 0;

  constructor(
    readonly model: Model,
    private readonly opts: SchedulerOptions = {},
  ) {
    this.maxBatch = opts.maxBatch ?? 16;
    this.maxQueue = opts.maxQueue ?? 256;
    this.prefillChunk = opts.prefillChunk ?? 256;
    this.checkpointEvery = opts.checkpointEvery ?? 512;
  }

  get stats(): SchedulerStats {
    return { waiting: this.waiting.length, prefilling: this.prefilling.length, decoding: this.live };
  }

  /** Queue a request; resolves when it ends. Throws QueueFullError at once when the queue is full. */
  submit(req: JobRequest): Promise<JobResult> {
    if (this.closed) throw new QueueFullError('the server is shutting down');
    if (this.waiting.length >= this.maxQueue) throw new QueueFullError(`the queue is full (${this.maxQueue} requests waiting)`);
    const model = this.model;
    return new Promise<JobResult>((resolve, reject) => {
      const sampler = new Sampler(model.vocabSize, req.sampling);
      const job: Job = {
        req,
        sampler,
        stop: new Set(req.stopTokens),
        decoder: model.tokenizer ? new StreamDecoder(model.tokenizer, { skipSpecialTokens: true }) : null,
        filter: new StopTextFilter(req.stopStrings),
        history: [...req.prompt],
        generated: [],
        logprobs: [],
        pos: 0,
        cached: 0,
        state: null,
        pending: -1,
        snapshots: [...new Set(req.snapshotAt ?? [])].filter((p) => p > 0 && p <= req.prompt.length).sort((a, b) => a - b),
        submitted: performance.now(),
        firstToken: 0,
        finish: null,
        resolve,
        reject,
      };
      this.waiting.push(job);
      this.kick();
    });
  }

  /** Stop taking requests and wait for the running ones to end. */
  async close(): Promise<void> {
    this.closed = true;
    await this.idle;
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    this.idle = this.loop().finally(() => {
      this.running = false;
    });
  }

  private async loop(): Promise<void> {
    while (this.waiting.length + this.prefilling.length + this.live > 0) {
      this.dropCancelled();
      while (this.waiting.length > 0 && this.prefilling.length + this.live < this.maxBatch) this.prefilling.push(this.waiting.shift()!);
      // prompt reading: up to `prefillChunk` tokens per iteration, first come first served (several short
      // prompts, or one piece of a long one)
      let budget = this.prefillChunk;
      for (let k = 0; k < this.prefilling.length && budget > 0; ) {
        const job = this.prefilling[k];
        try {
          budget -= await this.prefillChunk1(job, budget);
        } catch (e) {
          job.state?.dispose();
          job.state = null;
          this.opts.onError?.(e);
          job.reject(e);
          job.finish = 'abort';
        }
        if (job.finish || job.pos === job.req.prompt.length) this.prefilling.splice(k, 1);
        else k++;
      }
      if (this.live > 0) {
        try {
          await this.decodeStep();
        } catch (e) {
          this.opts.onError?.(e);
          for (const j of this.decoding) j?.reject(e);
          this.decoding = [];
          this.live = 0;
          this.batch?.dispose();
          this.batch = null;
        }
      }
      // timers, sockets and new requests get their turn between steps (CPU kernels never yield by themselves)
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  /** requests whose client went away leave wherever they are */
  private dropCancelled(): void {
    const gone = (j: Job): boolean => j.req.signal?.aborted === true;
    for (const list of [this.waiting, this.prefilling]) {
      for (let i = list.length - 1; i >= 0; i--) {
        if (!gone(list[i])) continue;
        const [j] = list.splice(i, 1);
        j.state?.dispose();
        j.state = null;
        this.end(j, 'abort');
      }
    }
    this.decoding.forEach((j, r) => {
      if (j && gone(j)) {
        this.end(j, 'abort');
        this.leave(r);
      }
    });
    this.compactIfSparse();
  }

  /**
   * read the next chunk (at most `maxTokens`) of a request's prompt; at its end, the first token and a place in
   * the batch. Returns the tokens read.
   */
  private async prefillChunk1(job: Job, maxTokens: number): Promise<number> {
    const prompt = job.req.prompt;
    if (!job.state) {
      // the last prompt token is always read: its logits give the first new token
      const hit = this.opts.cache ? await this.opts.cache.lookup(prompt, prompt.length - 1) : null;
      job.state = hit ? hit.state : this.model.lm.createState(1);
      job.pos = job.cached = hit ? hit.tokens : 0;
    }
    const start = job.pos;
    let end = Math.min(prompt.length, job.pos + maxTokens);
    const every = this.checkpointEvery;
    if (every > 0) end = Math.min(end, (Math.floor(job.pos / every) + 1) * every);
    const next = job.snapshots.find((p) => p > job.pos);
    if (next !== undefined) end = Math.min(end, next);
    const logits = await this.model.lm.advance([prompt.slice(job.pos, end)], job.state);
    job.pos = end;
    const cache = this.opts.cache;
    if (cache && ((every > 0 && end % every === 0) || job.snapshots.includes(end) || end === prompt.length)) {
      const prefix = prompt.slice(0, end);
      if (!cache.has(prefix)) await cache.insert(prefix, job.state);
    }
    if (end < prompt.length) return end - start;
    const state = job.state;
    job.state = null;
    job.firstToken = performance.now();
    if (!this.pick(job, logits, 0)) state.dispose();
    else await this.join(job, state);
    return end - start;
  }

  /** a request that has read its prompt takes a free row of the batch, or a new one */
  private async join(job: Job, state: ModelState): Promise<void> {
    const free = this.decoding.indexOf(null);
    if (free >= 0 && (await this.batch!.writeRow(free, state))) {
      state.dispose();
      this.decoding[free] = job;
      this.live++;
      this.rowsReused++;
      return;
    }
    if (this.batch) {
      const all = ModelState.concat([this.batch, state]);
      this.batch.dispose();
      state.dispose();
      this.batch = all;
    } else this.batch = state;
    this.decoding.push(job);
    this.live++;
  }

  /** row r's request has ended: the row is free (not copied away; it reads dummy tokens until reused) */
  private leave(r: number): void {
    this.decoding[r] = null;
    this.batch!.seqLen[r] = 0;
    this.live--;
  }

  /** too many free rows (or none live): copy the live rows into a new, smaller batch */
  private compactIfSparse(): void {
    const free = this.decoding.length - this.live;
    if (free === 0 || (this.live > 0 && free <= Math.max(1, this.live >> 1))) return;
    const keep: number[] = [];
    this.decoding.forEach((j, r) => j && keep.push(r));
    const old = this.batch!;
    this.batch = keep.length > 0 ? old.select(keep) : null;
    old.dispose();
    this.decoding = keep.map((r) => this.decoding[r]);
  }

  /** feed every generating request its pending token; sample the next ones */
  private async decodeStep(): Promise<void> {
    const rows = this.decoding;
    const batch = this.batch!;
    const logits = await this.model.lm.advance(
      rows.map((j) => [j ? j.pending : 0]),
      batch,
    );
    this.steps++;
    this.stepRows += this.live;
    const ended: number[] = [];
    rows.forEach((j, r) => {
      if (!j) batch.seqLen[r] = 0; // a free row's dummy tokens count for nothing (no KV cache growth)
      else if (!this.pick(j, logits, r)) ended.push(r);
    });
    const cache = this.opts.cache;
    for (const r of ended) {
      // the row has read the prompt and all but the last generated token: a conversation's next turn, which
      // repeats the reply, starts from there
      const j = rows[r]!;
      if (cache && j.finish !== 'abort' && j.generated.length > 1) {
        const row = batch.select([r]);
        const key = j.history.slice(0, -1);
        if (!cache.has(key)) await cache.insert(key, row);
        row.dispose();
      }
      this.leave(r);
    }
    this.compactIfSparse();
  }

  /** sample row `r`'s next token and send it; false when the request has ended */
  private pick(job: Job, logits: HostTensor, r: number): boolean {
    const V = logits.shape[logits.shape.length - 1];
    const row = logits.data.subarray(r * V, (r + 1) * V);
    const tok = job.sampler.sample(row, job.history);
    job.history.push(tok);
    job.generated.push(tok);
    let lp: TokenLogprob | undefined;
    if (job.req.logprobs != null) {
      lp = logprobsOf(row, tok, job.req.logprobs);
      job.logprobs.push(lp);
    }
    let text = job.decoder ? job.filter.push(job.decoder.push(tok)) : '';
    if (job.stop.has(tok) || job.filter.stopped) job.finish = 'stop';
    else if (job.generated.length >= job.req.maxTokens) job.finish = 'length';
    if (job.finish && job.decoder) text += job.filter.push(job.decoder.flush()) + job.filter.flush();
    const ev: JobToken = { token: tok, text, index: job.generated.length - 1 };
    if (lp) ev.logprob = lp;
    if (job.finish) ev.finishReason = job.finish;
    try {
      job.req.onToken?.(ev);
    } catch {
      // a failing listener (a socket that closed) must not stop the others: its signal ends the request
    }
    if (job.finish) {
      this.end(job, job.finish);
      return false;
    }
    job.pending = tok;
    return true;
  }

  private end(job: Job, reason: JobResult['finishReason']): void {
    job.finish = reason;
    job.resolve({
      generated: job.generated,
      text: job.filter.output,
      finishReason: reason,
      promptTokens: job.req.prompt.length,
      cachedTokens: job.cached,
      logprobs: job.logprobs,
      seed: job.sampler.seed,
      ttftMs: job.firstToken > 0 ? job.firstToken - job.submitted : 0,
    });
  }
}

/** log-softmax of `row` at `tok`, and the `top` most likely tokens (ties by lower id) */
export function logprobsOf(row: Float32Array, tok: number, top: number): TokenLogprob {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const logZ = max + Math.log(sum);
  const best: Array<{ token: number; logprob: number }> = [];
  if (top > 0) {
    for (let i = 0; i < row.length; i++) {
      const v = row[i];
      if (best.length === top && v <= best[top - 1].logprob) continue;
      let k = best.length < top ? best.length : top - 1;
      if (best.length < top) best.push({ token: i, logprob: v });
      while (k > 0 && best[k - 1].logprob < v) {
        best[k] = best[k - 1];
        k--;
      }
      best[k] = { token: i, logprob: v };
    }
  }
  return { token: tok, logprob: row[tok] - logZ, top: best.map((b) => ({ token: b.token, logprob: b.logprob - logZ })) };
}
