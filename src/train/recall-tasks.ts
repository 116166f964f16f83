/**
 * The recall tasks of the seed's caveat (Transformers beat SSMs at in-context recall and copying), generated from a
 * seeded `Rng` as `TaskBatch`es (targets aligned with the inputs, −100 where nothing is scored; see tasks.ts).
 *
 * Multi-query associative recall (MQAR; Arora et al. 2023, "Zoology", the generator `multiquery_ar` of
 * HazyResearch/zoology): vocabulary {0 … V−1}; keys come from {1 … V/2−1}, values from {V/2 … V−1} (disjoint halves,
 * V/2 = ⌊V/2⌋). A sequence of T tokens (T even) starts with K distinct keys, each followed by its value (K distinct
 * values): k₁ v₁ k₂ v₂ … (2K tokens). Each key is then queried once: key j is placed at position 2K + 2·gⱼ, where the
 * gaps gⱼ are K distinct draws from {0 … (T − 2K)/2 − 1} with P(g) ∝ (g + 1)^(a − 1) (a = `powerA`, Zoology's 0.01:
 * short gaps are likely; a = 1 is uniform), drawn one after another without replacement. The target AT a query
 * position is the key's value; nothing else is scored. Every other position holds a uniform random token of the
 * whole vocabulary (Zoology's `random_non_queries`: noise that may repeat keys or values). Requires K ≤ V/2 − 1,
 * 4K ≤ T (Zoology's bound) and T even; Zoology also asserts V > T, which the task does not need and we do not.
 *
 * Copying (Jelassi et al. 2024, "Repeat After Me: Transformers are Better than State Space Models at Copying"):
 * vocabulary {0 … A−1} with 0 = BOS, A−2 = COPY (separator), A−1 = EOS and data tokens 1 … A−3. A string s of n
 * uniform data tokens is shown, then COPY, then the model must repeat it and end: inputs = BOS s₁ … sₙ COPY s₁ … sₙ
 * (seqLen 2n + 2); the target at COPY is s₁, at the copy of sᵢ it is sᵢ₊₁, and at the copy of sₙ it is EOS (n + 1
 * scored positions, the rest −100). A string counts as copied when all n + 1 are right. With `minLength` < n each
 * row's string length is uniform in [minLength, n] (training on every length up to n, as the paper does), the row
 * padded after its copy with unscored EOS tokens.
 */
import type { Rng } from '../generate/rng.js';
import { randInt } from './random.js';
import { checkInt, IGNORE_INDEX, type TaskBatch, TaskError } from './tasks.js';

// ------------------------------------------------------------------------------------------------
// MQAR

export interface MqarOptions {
  batch: number;
  /** T: sequence length (even) */
  seqLen: number;
  /** K: key-value pairs (Zoology: 4 … 64) */
  numKv: number;
  /** V: vocabulary size (Zoology: 8192) */
  vocabSize?: number;
  /** a of the gap distribution P(g) ∝ (g+1)^(a−1) (Zoology: 0.01) */
  powerA?: number;
}

/** The token ranges of MQAR for vocabulary size V. */
export function mqarTokens(vocabSize = 8192): { firstKey: number; lastKey: number; firstValue: number; lastValue: number } {
  const half = Math.floor(vocabSize / 2);
  return { firstKey: 1, lastKey: half - 1, firstValue: half, lastValue: vocabSize - 1 };
}

/** what is wrong with MQAR settings, or null (messages name the flags) */
export function mqarProblem(seqLen: number, numKv: number, vocabSize: number): string | null {
  if (seqLen % 2 !== 0) return `the sequence length (--seq-len) must be even, got ${seqLen}`;
  if (4 * numKv > seqLen) return `4 × --num-kv (${4 * numKv}) must be <= the sequence length ${seqLen} (Zoology's bound: room for the pairs and the queries)`;
  const keys = Math.floor(vocabSize / 2) - 1;
  if (numKv > keys) return `--num-kv ${numKv} distinct keys need a vocabulary (--vocab) of at least ${2 * numKv + 2}, got ${vocabSize} (${keys} keys)`;
  return null;
}

export function mqar(rng: Rng, opts: MqarOptions): TaskBatch {
  const task = 'mqar';
  const { batch, seqLen: T, numKv: K } = opts;
  const V = opts.vocabSize ?? 8192;
  const a = opts.powerA ?? 0.01;
  checkInt(task, 'batch', batch, 1);
  checkInt(task, 'seqLen', T, 4);
  checkInt(task, 'numKv', K, 1);
  checkInt(task, 'vocabSize', V, 4);
  if (!(a > 0)) throw new TaskError(`${task}: powerA must be > 0, got ${a}`);
  const problem = mqarProblem(T, K, V);
  if (problem) throw new TaskError(`${task}: ${problem}`);
  const { firstKey, lastKey, firstValue, lastValue } = mqarTokens(V);
  const space = (T - 2 * K) / 2;
  const weights = new Float64Array(space);
  for (let g = 0; g < space; g++) weights[g] = a * (g + 1) ** (a - 1);
  const inputs = new Int32Array(batch * T);
  const targets = new Int32Array(batch * T).fill(IGNORE_INDEX);
  const keys = new Int32Array(K);
  const values = new Int32Array(K);
  const gaps = new Int32Array(K);
  const filled = new Uint8Array(T);
  for (let b = 0; b < batch; b++) {
    const row = b * T;
    sampleDistinct(rng, firstKey, lastKey, keys);
    sampleDistinct(rng, firstValue, lastValue, values);
    weightedDistinct(rng, weights, gaps);
    filled.fill(0);
    for (let j = 0; j < K; j++) {
      inputs[row + 2 * j] = keys[j];
      inputs[row + 2 * j + 1] = values[j];
      filled[2 * j] = filled[2 * j + 1] = 1;
      const q = 2 * K + 2 * gaps[j];
      inputs[row + q] = keys[j];
      targets[row + q] = values[j];
      filled[q] = 1;
    }
    for (let t = 0; t < T; t++) if (!filled[t]) inputs[row + t] = randInt(rng, V);
  }
  return { inputs, targets, batch, seqLen: T, vocabSize: V };
}

/** out.length distinct integers of [lo, hi], in draw order (partial Fisher–Yates over a lazily swapped range) */
function sampleDistinct(rng: Rng, lo: number, hi: number, out: Int32Array): void {
  const n = hi - lo + 1;
  const swapped = new Map<number, number>();
  for (let i = 0; i < out.length; i++) {
    const j = i + randInt(rng, n - i);
    const vj = swapped.get(j) ?? j;
    swapped.set(j, swapped.get(i) ?? i);
    out[i] = lo + vj;
  }
}

/** out.length distinct indices drawn one after another with probability ∝ weights among those not yet drawn */
function weightedDistinct(rng: Rng, weights: Float64Array, out: Int32Array): void {
  const w = Float64Array.from(weights);
  let total = w.reduce((s, x) => s + x, 0);
  for (let i = 0; i < out.length; i++) {
    let r = rng.next() * total;
    let k = -1;
    for (let g = 0; g < w.length; g++) {
      if (w[g] === 0) continue;
      k = g;
      r -= w[g];
      if (r < 0) break;
    }
    out[i] = k;
    total -= w[k];
    w[k] = 0;
  }
}

// ------------------------------------------------------------------------------------------------
// Copying

export interface CopyOptions {
  batch: number;
  /** n: tokens of the string to copy; seqLen = 2n + 2 */
  length: number;
  /**
   * shortest string (default `length`: every string has n tokens): each row's length is uniform in
   * [minLength, length], and a shorter row is padded after its EOS with EOS tokens that nothing scores
   */
  minLength?: number;
  /** A: vocabulary size including BOS (0), COPY (A−2) and EOS (A−1) (default 29: 26 letters as Jelassi et al.) */
  vocabSize?: number;
}

/** Token ids of the copying task for vocabulary size A. */
export function copyTokens(vocabSize = 29): { bos: number; copy: number; eos: number; firstData: number; lastData: number } {
  return { bos: 0, copy: vocabSize - 2, eos: vocabSize - 1, firstData: 1, lastData: vocabSize - 3 };
}

/** seqLen of a copying sequence: 2n + 2 */
export function copySeqLen(length: number): number {
  return 2 * length + 2;
}

export function copyStrings(rng: Rng, opts: CopyOptions): TaskBatch {
  const task = 'copy';
  const { batch, length: n } = opts;
  const A = opts.vocabSize ?? 29;
  checkInt(task, 'batch', batch, 1);
  checkInt(task, 'length', n, 1);
  checkInt(task, 'vocabSize', A, 4);
  const minLength = opts.minLength ?? n;
  checkInt(task, 'minLength', minLength, 1);
  if (minLength > n) throw new TaskError(`${task}: minLength ${minLength} is more than length ${n}`);
  const { bos, copy, eos } = copyTokens(A);
  const T = copySeqLen(n);
  const inputs = new Int32Array(batch * T).fill(eos);
  const targets = new Int32Array(batch * T).fill(IGNORE_INDEX);
  for (let b = 0; b < batch; b++) {
    const row = b * T;
    const m = minLength === n ? n : minLength + randInt(rng, n - minLength + 1);
    inputs[row] = bos;
    for (let i = 1; i <= m; i++) inputs[row + i] = 1 + randInt(rng, A - 3);
    inputs[row + m + 1] = copy;
    for (let i = 1; i <= m; i++) inputs[row + m + 1 + i] = inputs[row + i];
    for (let i = 0; i < m; i++) targets[row + m + 1 + i] = inputs[row + i + 1];
    targets[row + 2 * m + 1] = eos;
  }
  return { inputs, targets, batch, seqLen: T, vocabSize: A };
}
