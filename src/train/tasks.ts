/**
 * The Mamba paper's synthetic tasks (reference §6), generated from a seeded `Rng`.
 *
 * Both return a `TaskBatch`: `inputs` [batch, seqLen] token ids and `targets` [batch, seqLen] with
 * `targets[t]` = the token the model's output AT position t must predict (already aligned: no
 * further shift), `IGNORE_INDEX` (−100) where nothing is scored — the convention of
 * `softmaxCrossEntropy(logits, targets, -100)`.
 *
 * Selective Copying (S4 `torch_copying_data(L, M, A, variable=True)`, the Mamba paper's setup with
 * L = 4096, M = 16, A = 16): vocabulary {0 … A−1}, where 0 is the noise (blank) token, A−1 the
 * marker, and 1 … A−2 the data tokens. M data tokens, uniform in 1 … A−2, sit at M sorted random
 * distinct positions among the first L + M slots (the other slots are noise); then M markers
 * follow. seqLen = L + 2M. At the j-th marker the target is the j-th data token (in order); every
 * other position is −100.
 *
 * Induction Heads (safari `generate_induction_head`, induction_len 1, one trigger; the Mamba
 * paper's setup is vocab 16, trained at L = 256): vocabulary {0 … A−1}, where A−1 is the trigger
 * (safari's `copy_prefix`), 0 is reserved (safari's unused `noop`) and 1 … A−2 are the data
 * tokens. L uniform data tokens; the trigger overwrites position p, uniform in [0, L−2), and the
 * token after it (p+1, itself random) is the answer; the trigger is appended once more at position
 * L. seqLen = L + 1. The target at the last position is the answer; with `lossOn: 'all'` (safari's
 * training tensors) every earlier position is also scored with its next token.
 */
import type { Rng } from '../generate/rng.js';
import { randInt } from './random.js';
import { MambaTsError } from '../errors.js';

export const IGNORE_INDEX = -100;

export class TaskError extends MambaTsError {}

export interface TaskBatch {
  /** [batch, seqLen] token ids, row-major */
  inputs: Int32Array;
  /** [batch, seqLen]: the token to predict at each position, or IGNORE_INDEX (−100) */
  targets: Int32Array;
  batch: number;
  seqLen: number;
  vocabSize: number;
}

export function checkInt(task: string, what: string, v: number, min: number): void {
  if (!Number.isSafeInteger(v) || v < min) throw new TaskError(`${task}: ${what} must be an integer >= ${min}, got ${v}`);
}

// ------------------------------------------------------------------------------------------------
// Selective Copying

export interface SelectiveCopyingOptions {
  batch: number;
  /** L: number of noise tokens; the data tokens are scattered among the first L + numTokens positions */
  length: number;
  /** M: data tokens to memorize (paper: 16) */
  numTokens?: number;
  /** A: vocabulary size including the noise (0) and marker (A−1) tokens (paper: 16) */
  vocabSize?: number;
}

/** Token ids of the Selective Copying task for vocabulary size A. */
export function selectiveCopyingTokens(vocabSize = 16): { noise: number; marker: number; firstData: number; lastData: number } {
  return { noise: 0, marker: vocabSize - 1, firstData: 1, lastData: vocabSize - 2 };
}

/** seqLen of a Selective Copying sequence: L + 2M. */
export function selectiveCopyingLength(length: number, numTokens = 16): number {
  return length + 2 * numTokens;
}

export function selectiveCopying(rng: Rng, opts: SelectiveCopyingOptions): TaskBatch {
  const task = 'selective copying';
  const { batch, length: L } = opts;
  const M = opts.numTokens ?? 16;
  const A = opts.vocabSize ?? 16;
  checkInt(task, 'batch', batch, 1);
  checkInt(task, 'length', L, 0);
  checkInt(task, 'numTokens', M, 1);
  checkInt(task, 'vocabSize', A, 3);
  const T = L + 2 * M;
  const slots = L + M;
  const marker = A - 1;
  const inputs = new Int32Array(batch * T); // 0 = noise
  const targets = new Int32Array(batch * T).fill(IGNORE_INDEX);
  const pos = new Int32Array(M);
  for (let b = 0; b < batch; b++) {
    const row = b * T;
    sampleDistinctSorted(rng, slots, M, pos);
    for (let j = 0; j < M; j++) {
      const tok = 1 + randInt(rng, A - 2);
      inputs[row + pos[j]] = tok;
      inputs[row + slots + j] = marker;
      targets[row + slots + j] = tok;
    }
  }
  return { inputs, targets, batch, seqLen: T, vocabSize: A };
}

/** M distinct integers from [0, n), sorted ascending, into `out` (Floyd's algorithm). */
function sampleDistinctSorted(rng: Rng, n: number, m: number, out: Int32Array): void {
  const chosen = new Set<number>();
  for (let j = n - m; j < n; j++) {
    const t = randInt(rng, j + 1);
    chosen.add(chosen.has(t) ? j : t);
  }
  let i = 0;
  for (const v of chosen) out[i++] = v;
  out.subarray(0, m).sort();
}

// ------------------------------------------------------------------------------------------------
// Induction Heads

export interface InductionHeadsOptions {
  batch: number;
  /** L: random tokens before the final trigger (paper: trained at 256); seqLen = L + 1 */
  length: number;
  /** A: vocabulary size including the trigger (A−1) and the reserved 0 (paper: 16) */
  vocabSize?: number;
  /** 'last' (default): only the final position is scored; 'all': also next-token targets before it */
  lossOn?: 'last' | 'all';
}

/** Token ids of the Induction Heads task for vocabulary size A. */
export function inductionHeadsTokens(vocabSize = 16): { trigger: number; reserved: number; firstData: number; lastData: number } {
  return { trigger: vocabSize - 1, reserved: 0, firstData: 1, lastData: vocabSize - 2 };
}

export function inductionHeads(rng: Rng, opts: InductionHeadsOptions): TaskBatch {
  const task = 'induction heads';
  const { batch, length: L } = opts;
  const A = opts.vocabSize ?? 16;
  const lossOn = opts.lossOn ?? 'last';
  checkInt(task, 'batch', batch, 1);
  checkInt(task, 'length', L, 3);
  checkInt(task, 'vocabSize', A, 3);
  if (lossOn !== 'last' && lossOn !== 'all') throw new TaskError(`${task}: lossOn must be "last" or "all", got ${JSON.stringify(lossOn)}`);
  const T = L + 1;
  const trigger = A - 1;
  const inputs = new Int32Array(batch * T);
  const targets = new Int32Array(batch * T).fill(IGNORE_INDEX);
  for (let b = 0; b < batch; b++) {
    const row = b * T;
    for (let t = 0; t < L; t++) inputs[row + t] = 1 + randInt(rng, A - 2);
    const p = randInt(rng, L - 2);
    inputs[row + p] = trigger;
    inputs[row + L] = trigger;
    targets[row + L] = inputs[row + p + 1];
    if (lossOn === 'all') for (let t = 0; t < L; t++) targets[row + t] = inputs[row + t + 1];
  }
  return { inputs, targets, batch, seqLen: T, vocabSize: A };
}

// ------------------------------------------------------------------------------------------------
// Scoring

/**
 * Accuracy over the scored positions (targets ≠ −100): `logits` [batch·seqLen, vocab] (argmax per
 * position, first index on ties) or `predictions` [batch·seqLen] token ids.
 */
export function scoredAccuracy(
  targets: Int32Array,
  out: { logits: ArrayLike<number>; vocabSize: number } | { predictions: ArrayLike<number> },
): { correct: number; total: number; accuracy: number } {
  let correct = 0;
  let total = 0;
  const n = targets.length;
  if ('predictions' in out) {
    if (out.predictions.length !== n) throw new TaskError(`scoredAccuracy: predictions has ${out.predictions.length} values, targets ${n}`);
  } else if (out.logits.length !== n * out.vocabSize) {
    throw new TaskError(`scoredAccuracy: logits has ${out.logits.length} values, expected targets (${n}) × vocabSize (${out.vocabSize})`);
  }
  for (let i = 0; i < n; i++) {
    const y = targets[i];
    if (y === IGNORE_INDEX) continue;
    total++;
    let pred: number;
    if ('predictions' in out) pred = out.predictions[i];
    else {
      const V = out.vocabSize;
      const base = i * V;
      pred = 0;
      let best = out.logits[base];
      for (let v = 1; v < V; v++) {
        const x = out.logits[base + v];
        if (x > best) {
          best = x;
          pred = v;
        }
      }
    }
    if (pred === y) correct++;
  }
  return { correct, total, accuracy: total === 0 ? NaN : correct / total };
}
