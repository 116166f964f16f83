/**
 * Decoding with the tokens kept on the device (WebGPU), pipelined: chunks of recorded one-token steps are
 * queued on the GPU, each step's pick (the argmax, or a draw on the device: `CausalLM.advanceSample`) fed to
 * the next, and the next chunk is queued — continuing from the last pick on the device — before the host
 * waits for this chunk's picks. The GPU never waits for the host between chunks.
 *
 * Exactness: a chunk is queued after a copy of the state it starts from. When a sequence stops inside a chunk
 * (stop token, stop string, max tokens, abort), the steps computed ahead are dropped: the state goes back to
 * the latest copy at or before the stop and reads exactly the returned tokens again (replayed steps, no
 * read-back), so the returned state is the state after the returned tokens.
 */
import type { CausalLM, DeviceSampling } from '../models/causal-lm.js';
import type { ModelState } from '../models/state.js';
import { SamplingError } from './sampling.js';
import type { FinishReason, TokenEvent } from './generate.js';

/** steps per chunk: a short first chunk (the second token comes early), then longer ones */
const CHUNKS = [4, 8, 16, 32, 64];
/** chunks queued on the device at once */
const DEPTH = 2;

export interface DeviceDecode {
  model: CausalLM;
  /** the rows' state after the prompt (not the first picks) */
  state: ModelState;
  /** sequence index of each state row */
  active: number[];
  /** each row's first generated token (picked on the host from the prefill's logits), not emitted yet */
  first: number[];
  maxNew: number;
  generated: number[][];
  finish: (FinishReason | null)[];
  /** the rows' final states are put here as they finish */
  finalStates: (ModelState | null)[];
  /** record a generated token of sequence i (sets finish[i] when it ends the sequence) and make its event */
  emit(i: number, tok: number): TokenEvent;
  /** how the rows `active` draw on the device; null = greedy (argmax) */
  sampling(active: number[]): DeviceSampling | null;
  /** give the event loop a turn */
  nextTask(): Promise<void>;
}

interface Chunk {
  /** a copy of the state before the chunk's first step (null for a step already read back: nothing ahead to undo) */
  start: ModelState | null;
  /** the ids the chunk's first step reads (null: the previous chunk's last picks, known once it is read) */
  first: number[] | null;
  n: number;
  picks: Promise<Int32Array[]>;
  /** the picks, when already on the host */
  known: Int32Array[] | null;
}

/** whether `pipelinedDecode` can run this model with these samplers */
export function canDecodeOnDevice(model: CausalLM, sampled: boolean): boolean {
  if (!model.chainsOnDevice || !model.submitChain || !model.feedSteps) return false;
  return sampled ? !!model.advanceSample && !!model.backend.sampleRows : !!model.advanceArgmax;
}

export async function* pipelinedDecode(c: DeviceDecode): AsyncGenerator<TokenEvent, void> {
  const model = c.model;
  let state = c.state;
  let active = c.active;
  let inflight: Chunk[] = [{ start: null, first: null, n: 1, picks: Promise.resolve([Int32Array.from(c.first)]), known: [Int32Array.from(c.first)] }];
  let last: number[] = []; // the last picks read (what the next chunk reads first)
  let chunkNo = 0;
  let recorded = false; // whether `state` has its picking step recorded (chains can be queued)
  const pickStep = async (ids: number[]): Promise<Int32Array> => {
    const s = c.sampling(active);
    const col = ids.map((t) => [t]);
    const r = s ? await model.advanceSample!(col, state, s) : await model.advanceArgmax!(col, state);
    if (!r) throw new SamplingError('the device could not take the step');
    recorded = true;
    return r;
  };
  const drop = (chunks: Chunk[]) => {
    for (const ch of chunks) {
      ch.start?.dispose();
      ch.picks.catch(() => {}); // computed ahead and not wanted: its read may still fail after a device loss
    }
  };
  try {
    while (active.length > 0) {
      // keep DEPTH chunks queued, within what the rows may still generate
      let left = Math.min(...active.map((i) => c.maxNew - c.generated[i].length)) - inflight.reduce((a, ch) => a + ch.n, 0);
      while (inflight.length < DEPTH && left > 0) {
        const n = Math.min(left, CHUNKS[Math.min(chunkNo, CHUNKS.length - 1)]);
        const prev = inflight[inflight.length - 1];
        const ids = prev ? (prev.known ? Array.from(prev.known[prev.n - 1]) : null) : last;
        if (!recorded && prev) break; // not recorded for this state yet: read the picks queued so far first
        const start = recorded ? state.clone() : null;
        const picks = start && model.submitChain!(ids && ids.map((t) => [t]), state, n, c.sampling(active));
        if (!picks) {
          start?.dispose();
          if (prev) break;
          const p = await pickStep(ids!); // records the step (one read-back)
          inflight.push({ start: null, first: ids, n: 1, picks: Promise.resolve([p]), known: [p] });
          left -= 1;
          continue;
        }
        inflight.push({ start, first: ids, n, picks, known: null });
        chunkNo++;
        left -= n;
      }
      const ch = inflight.shift()!;
      const P = await ch.picks;
      const first = ch.first ?? last;
      let stop = -1;
      for (let s = 0; s < ch.n && stop < 0; s++) {
        for (let j = 0; j < active.length; j++) {
          if (P[s][j] < 0) throw new SamplingError(`no finite or +Infinity logit among ${model.vocabSize} entries (all NaN/-Infinity)`);
          yield c.emit(active[j], P[s][j]);
        }
        if (active.some((i) => c.finish[i])) stop = s;
      }
      last = Array.from(P[ch.n - 1]);
      if (stop < 0) {
        ch.start?.dispose();
        await c.nextTask();
        continue;
      }
      // a row stopped after step `stop`: the state must read first, P[0..stop] and nothing more
      let base: ModelState;
      let feeds: number[][];
      if (stop === ch.n - 1) {
        // the chunk's own steps are all wanted: from the copy after it (or the live state when none is queued)
        const nx = inflight.shift();
        nx?.picks.catch(() => {});
        base = nx ? nx.start! : state;
        feeds = [];
        ch.start?.dispose();
      } else {
        base = ch.start!;
        feeds = [first, ...P.slice(0, stop).map((p) => Array.from(p))];
      }
      drop(inflight);
      inflight = [];
      if (base !== state) {
        state.dispose();
        recorded = false;
      }
      state = base;
      await model.feedSteps!(feeds, state);
      const lastFed = Array.from(P[stop]);
      const keep = active.map((_, j) => j).filter((j) => !c.finish[active[j]]);
      let next: Int32Array | null = null;
      if (keep.length > 0) next = await pickStep(lastFed); // the continuing rows' next pick
      else await model.feedSteps!([lastFed], state);
      active.forEach((i, j) => {
        if (c.finish[i]) c.finalStates[i] = state.select([j]);
      });
      if (keep.length === 0) break;
      const all = state;
      state = state.select(keep);
      all.dispose();
      recorded = false;
      active = keep.map((j) => active[j]);
      const p = Int32Array.from(keep, (j) => next![j]);
      inflight = [{ start: null, first: keep.map((j) => lastFed[j]), n: 1, picks: Promise.resolve([p]), known: [p] }];
      await c.nextTask();
    }
  } finally {
    drop(inflight);
    state.dispose();
  }
}
