/**
 * Autoregressive generation over any `CausalLM`: prefill, then one-token recurrent decode steps, for a
 * batch of prompts of any lengths, with sampling, stop conditions and streaming.
 *
 * Prompts of different lengths are prefilled separately (a recurrent model needs no padding) and then
 * decoded together as one batch. A sequence that stops leaves the batch; its final state is kept.
 * The returned state has consumed every returned token (prompt + generated), so passing it back as
 * `state` with the next user turn continues the conversation without re-reading anything.
 */
import type { CausalLM, DeltaObserver } from '../models/causal-lm.js';
import { ModelState } from '../models/state.js';
import type { HostTensor } from '../tensor/tensor.js';
import { Sampler, SamplingError, type SamplingOptions } from './sampling.js';
import type { Tokenizer } from '../tokenizer/core.js';
import { StreamDecoder } from '../tokenizer/core.js';
import { StopTextFilter } from './stop.js';
import { canDecodeOnDevice, pipelinedDecode } from './device-decode.js';
import { MambaTsError } from '../errors.js';

export class GenerationError extends MambaTsError {}

export interface GenerateOptions extends SamplingOptions {
  /** tokens to generate per sequence at most (default 64) */
  maxNewTokens?: number;
  /** ids that end a sequence (default: the model's eos ids). The stop token is kept in the output. */
  stopTokens?: number[];
  /** texts that end a sequence once they appear in its generated text (needs a tokenizer) */
  stopStrings?: string[];
  /** continue from this state (one row per prompt); the prompt is read after what the state has seen */
  state?: ModelState;
  /** called for every generated token, as it is produced */
  onToken?: (ev: TokenEvent) => void;
  /** stop early (checked before the prefill and between tokens); sequences end with finishReason "abort" */
  signal?: AbortSignal;
  /** receive Δ (the selection step) of every Mamba layer for the prompt and each generated token of this call */
  onDelta?: DeltaObserver;
  /**
   * WebGPU: decode in chunks of steps queued on the device, the next chunk queued before the current one is read
   * (default true). false: the earlier path — greedy in chunks of 32 with one chunk on the device at a time.
   */
  pipeline?: boolean;
  /**
   * WebGPU: sampled tokens drawn on the device (Backend.sampleRows, Philox per row), so that sampled decoding is
   * pipelined like greedy decoding. Default false: drawn on the host from logits read back every step, which an
   * H100 ran faster at a 50k vocabulary (BENCHMARKS.md, issue 11: the device sampler's top-p bisection costs more
   * than the read-back it saves).
   */
  deviceSampling?: boolean;
}

export interface TokenEvent {
  /** which prompt of the batch */
  sequence: number;
  token: number;
  /** 0-based index among this sequence's generated tokens */
  index: number;
  /**
   * newly decodable text: '' without a tokenizer, while a multi-byte character is incomplete, or while
   * the text could still turn into a stop string (stop strings themselves are never sent). The texts of a
   * sequence's events add up to its `result.text`.
   */
  text: string;
  /** set on the sequence's last event */
  finishReason?: FinishReason;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface GenerateResult {
  /** the new ids per sequence, without the prompt (the stop token included, as HF does); the CLI's --json `generated` */
  generated: number[][];
  /**
   * prompt + generated, per sequence: what HF `generate` returns (its `sequences`); the CLI's --json `tokens`.
   * With a `state` given, the prompt is this call's, not what the state had read before.
   */
  tokens: number[][];
  /** decoded generated text per sequence (special tokens skipped, cut before a stop string), when a tokenizer is present */
  text?: string[];
  finishReason: FinishReason[];
  /** the sampling seed of each sequence (drawn at random when none was given), to repeat a run */
  seeds: number[];
  /** state after every token in `tokens` */
  state: ModelState;
  /**
   * decodeStepMs: the part of decodeMs spent in the model's decode steps (its `advance` / `advanceArgmax` calls); the
   * rest is sampling, streaming callbacks and the event-loop turns between tokens (and WebGPU's chained greedy chunks;
   * NaN where decode runs queued ahead on the device)
   */
  stats: { promptTokens: number; generatedTokens: number; prefillMs: number; decodeMs: number; decodeStepMs: number; decodeTokensPerSecond: number };
}

function row(logits: HostTensor, i: number): Float32Array {
  const V = logits.shape[logits.shape.length - 1];
  return logits.data.subarray(i * V, (i + 1) * V);
}

export async function* generateStream(
  model: CausalLM,
  prompts: number[][],
  opts: GenerateOptions = {},
  tokenizer: Tokenizer | null = null,
): AsyncGenerator<TokenEvent, GenerateResult> {
  const maxNew = opts.maxNewTokens ?? 64;
  if (!Number.isInteger(maxNew) || maxNew < 1) throw new GenerationError(`maxNewTokens must be a positive integer, got ${opts.maxNewTokens}`);
  if (!Array.isArray(prompts) || prompts.length === 0) throw new GenerationError('generate: no prompts given');
  prompts.forEach((p, i) => {
    if (!Array.isArray(p) || p.length === 0) throw new GenerationError(`generate: prompt ${i} is empty; a prompt needs at least one token`);
    p.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= model.vocabSize) {
        throw new GenerationError(`generate: prompt ${i}, position ${t}: token id ${id} is out of range; expected an integer in [0, ${model.vocabSize})`);
      }
    });
  });
  const stopTokens = new Set(opts.stopTokens ?? model.eosTokenIds);
  const stopStrings = (opts.stopStrings ?? []).filter((s) => s.length > 0);
  if (stopStrings.length > 0 && !tokenizer) throw new GenerationError('stopStrings need a tokenizer (none was loaded)');
  if (opts.state && opts.state.batch !== prompts.length) {
    throw new GenerationError(`the given state holds ${opts.state.batch} sequences but ${prompts.length} prompts were given`);
  }
  const n = prompts.length;
  const samplers = prompts.map((_, i) => new Sampler(model.vocabSize, { ...opts, seed: opts.seed === undefined ? undefined : opts.seed + i }));
  const decoders = tokenizer ? prompts.map(() => new StreamDecoder(tokenizer, { skipSpecialTokens: true })) : null;
  const filters = prompts.map(() => new StopTextFilter(stopStrings));
  const history = prompts.map((p) => [...p]);
  const generated: number[][] = prompts.map(() => []);
  const finish: (FinishReason | null)[] = prompts.map(() => null);
  const finalStates: (ModelState | null)[] = prompts.map(() => null);
  const observe = opts.onDelta ? { onDelta: opts.onDelta } : undefined; // this call's Δ observer, given to each step

  // ---- prefill ----
  const t0 = performance.now();
  if (opts.signal?.aborted) throw new GenerationError('generation was aborted before it started');
  let state: ModelState;
  let logits: HostTensor;
  const sameLength = prompts.every((p) => p.length === prompts[0].length);
  if (opts.state || sameLength) {
    state = opts.state ? opts.state.clone() : model.createState(n);
    logits = await model.advance(prompts, state, observe);
  } else {
    const parts = await Promise.all(
      prompts.map(async (p) => {
        const s = model.createState(1);
        return { s, l: await model.advance([p], s, observe) };
      }),
    );
    state = ModelState.concat(parts.map((p) => p.s));
    for (const p of parts) p.s.dispose();
    const V = model.vocabSize;
    const data = new Float32Array(n * V);
    parts.forEach((p, i) => data.set(p.l.data, i * V));
    logits = { shape: [n, V], data };
  }
  const t1 = performance.now();

  // ---- decode ----
  /** record token `tok` of sequence i, decide whether it ends the sequence, and make its event */
  const emit = (i: number, tok: number): TokenEvent => {
    history[i].push(tok);
    generated[i].push(tok);
    let text = decoders ? filters[i].push(decoders[i].push(tok)) : '';
    if (stopTokens.has(tok) || filters[i].stopped) finish[i] = 'stop';
    else if (generated[i].length >= maxNew) finish[i] = 'length';
    else if (opts.signal?.aborted) finish[i] = 'abort';
    if (finish[i] && decoders) text += filters[i].push(decoders[i].flush()) + filters[i].flush();
    const ev: TokenEvent = { sequence: i, token: tok, index: generated[i].length - 1, text };
    if (finish[i]) ev.finishReason = finish[i] as FinishReason;
    opts.onToken?.(ev);
    return ev;
  };
  /** ms in the model's decode steps; NaN where they run queued ahead on the device (not separable) */
  let stepMs = NaN;
  // WebGPU: chunks of steps queued ahead on the device, greedy or sampled there (device-decode.ts)
  const sampled = samplers.every((s) => !s.greedy);
  const uniform = samplers.every((s) => s.greedy === samplers[0].greedy);
  if (opts.pipeline !== false && !observe && uniform && (sampled ? opts.deviceSampling === true : samplers[0].options.repetitionPenalty === 1) && canDecodeOnDevice(model, sampled)) {
    const o = samplers[0].options;
    const seeds = samplers.map((s) => s.seed);
    yield* pipelinedDecode({
      model,
      state,
      active: [...Array(n).keys()],
      first: samplers.map((s, i) => s.sample(row(logits, i), history[i])),
      maxNew,
      generated,
      finish,
      finalStates,
      emit,
      sampling: (rows) =>
        sampled
          ? { temperature: o.temperature, topK: o.topK, topP: o.topP, minP: o.minP, repetitionPenalty: o.repetitionPenalty, seeds: rows.map((i) => seeds[i]), counters: rows.map((i) => generated[i].length), history: o.repetitionPenalty !== 1 ? rows.map((i) => history[i]) : undefined }
          : null,
      nextTask,
    });
  } else {
    // greedy without a repetition penalty: the backend may take the argmax where the logits are (WebGPU),
    // so a step reads back one token per sequence; `picked` then replaces the logits
    const onDevice = !!model.advanceArgmax && samplers.every((s) => s.greedy && s.options.repetitionPenalty === 1);
    let picked: Int32Array | null = null;
    // chunked greedy decoding on the device (model.greedyChain): picks computed ahead, the state before the chunk
    // and the chunk's first input (to redo exactly the consumed feeds when a row finishes inside the chunk)
    let ahead: Int32Array[] = [];
    let chunkStart: ModelState | null = null;
    let chunkFirst: number[][] | null = null;
    let chunkFeeds = 0;
    let active = [...Array(n).keys()]; // sequence index of each state row
    stepMs = 0;
    while (active.length > 0) {
      const next: number[] = [];
      for (let j = 0; j < active.length; j++) {
        const i = active[j];
        if (picked && picked[j] < 0) throw new SamplingError(`argmax: no finite or +Infinity value among ${model.vocabSize} entries (all NaN/-Infinity)`);
        const tok = picked ? picked[j] : samplers[i].sample(row(logits, j), history[i]);
        next.push(tok);
        yield emit(i, tok);
      }
      // feed the sampled tokens: continuing rows get their next logits, finished rows' states absorb their last token
      picked = null;
      if (onDevice && ahead.length > 0 && active.every((i) => !finish[i])) {
        picked = ahead.shift()!; // the device already fed `next` (its own argmax) in the chunk
        chunkFeeds++;
      } else if (onDevice && ahead.length > 0) {
        // a row finished inside a chunk: the state read tokens beyond it; redo the chunk's feeds up to here
        state.dispose();
        state = chunkStart!;
        chunkStart = null;
        chunkFeeds++;
        // (non-null: chunks start only where greedyChain runs on the device)
        picked = (await model.greedyChain!(chunkFirst!, state, chunkFeeds))![chunkFeeds - 1];
        ahead = [];
      } else if (onDevice && !observe && model.greedyChain && model.chainsOnDevice && !active.some((i) => finish[i])) {
        // greedy steps in chunks on the device: the argmax of each step feeds the next without a read-back
        const k = Math.min(CHUNK, ...active.map((i) => maxNew - generated[i].length));
        if (k > 1) {
          chunkStart?.dispose(); // the previous chunk's copy, not needed (no row stopped inside that chunk)
          chunkStart = state.clone();
          chunkFirst = next.map((t) => [t]);
          const chain = await model.greedyChain(chunkFirst, state, k);
          if (chain) {
            picked = chain[0];
            ahead = chain.slice(1);
            chunkFeeds = 1;
          }
        }
      }
      const tStep = performance.now();
      if (!picked && onDevice) picked = await model.advanceArgmax!(next.map((t) => [t]), state, observe);
      if (!picked) logits = await model.advance(next.map((t) => [t]), state, observe);
      stepMs += performance.now() - tStep;
      const keep: number[] = [];
      active.forEach((i, j) => {
        if (finish[i]) finalStates[i] = state.select([j]);
        else keep.push(j);
      });
      if (keep.length < active.length && keep.length > 0) {
        const all = state;
        state = state.select(keep);
        all.dispose();
        if (picked) {
          picked = Int32Array.from(keep, (j) => picked![j]);
        } else {
          const V = model.vocabSize;
          const data = new Float32Array(keep.length * V);
          keep.forEach((j, k) => data.set(row(logits, j), k * V));
          logits = { shape: [keep.length, V], data };
        }
      }
      active = keep.map((j) => active[j]);
      // let timers, I/O and signals in between tokens (CPU kernels never give the event loop a turn)
      await nextTask();
    }
    chunkStart?.dispose();
    state.dispose(); // every row's final state was copied out (finalStates)
  }
  const t2 = performance.now();

  const total = generated.reduce((a, g) => a + g.length, 0);
  const decodeSeconds = (t2 - t1) / 1000;
  return {
    generated,
    tokens: history,
    text: tokenizer ? filters.map((f) => f.output) : undefined,
    finishReason: finish.map((f) => f ?? 'length'),
    seeds: samplers.map((s) => s.seed),
    state: concatFinal(finalStates as ModelState[]),
    stats: {
      promptTokens: prompts.reduce((a, p) => a + p.length, 0),
      generatedTokens: total,
      prefillMs: t1 - t0,
      decodeMs: t2 - t1,
      decodeStepMs: stepMs,
      decodeTokensPerSecond: decodeSeconds > 0 ? total / decodeSeconds : 0,
    },
  };
}

/** the rows' final states as one state (copies; the parts are freed) */
function concatFinal(parts: ModelState[]): ModelState {
  const all = ModelState.concat(parts);
  for (const p of parts) p.dispose();
  return all;
}

/** greedy steps per on-device chunk (one read-back each) */
const CHUNK = 32;

/**
 * Resolve after the event loop has had a turn: setImmediate on Node; in browsers a MessageChannel task
 * (setTimeout(0) is clamped to 4 ms there, which would cap decode speed).
 */
function nextTask(): Promise<void> {
  const { setImmediate } = globalThis as { setImmediate?: (f: () => void) => unknown };
  if (setImmediate) return new Promise((resolve) => setImmediate(resolve));
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    const port = ch.port1 as unknown as { onmessage: (() => void) | null; close(): void }; // the DOM MessagePort
    port.onmessage = () => {
      port.close();
      resolve();
    };
    ch.port2.postMessage(null);
  });
}

/** Run `generateStream` to the end. */
export async function generate(model: CausalLM, prompts: number[][], opts: GenerateOptions = {}, tokenizer: Tokenizer | null = null): Promise<GenerateResult> {
  const it = generateStream(model, prompts, opts, tokenizer);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
  }
}
