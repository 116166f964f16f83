/**
 * Next-token selection for generation, following Hugging Face transformers' processor/warper
 * order: repetition penalty → temperature → top-k → top-p → min-p → sample (or argmax when greedy).
 *
 * A `Sampler` works on one row of logits at a time and reuses scratch buffers sized to the
 * vocabulary, so a generation step allocates nothing vocab-sized. Top-k uses partial selection
 * (quickselect, O(V)); top-p sorts only the surviving candidates.
 */

import { Rng } from './rng.js';
import { MambaTsError } from '../errors.js';

export interface SamplingOptions {
  /** Softmax temperature, finite and >= 0. Default 1. 0 means greedy. */
  temperature?: number;
  /**
   * Sample from the distribution (true) or take the argmax after the repetition penalty (false).
   * Default false, as in HF (`do_sample=False`); the warpers (temperature, top-k/p, min-p) only
   * apply when sampling.
   */
  doSample?: boolean;
  /** Keep only the k highest logits (all ties with the k-th value are kept, as HF). 0/undefined = off. */
  topK?: number;
  /** Nucleus sampling: keep the smallest top set whose probability reaches topP. In (0, 1]; 1/undefined = off. */
  topP?: number;
  /** Drop tokens whose probability is < minP * maxProbability (HF MinPLogitsWarper). In [0, 1]; 0/undefined = off. */
  minP?: number;
  /** HF/CTRL repetition penalty, > 0; 1/undefined = off. For each distinct id in the history: logit < 0 ? logit * p : logit / p. */
  repetitionPenalty?: number;
  /** Seed for the Rng (safe integer). Default: a random seed (see `Sampler.seed`). */
  seed?: number;
}

export class SamplingError extends MambaTsError {}

/**
 * Top-p boundary tolerance: a token is dropped when the probability mass of the tokens ranked
 * strictly above it is >= topP - TOP_P_EPS. Mathematically this is HF's rule (keep tokens until the
 * cumulative probability exceeds top_p, including the token that crosses it; a token at which the
 * mass ranked above it equals top_p exactly is dropped); the tolerance keeps exact boundaries
 * deterministic despite float32 rounding of the logits.
 */
export const TOP_P_EPS = 1e-6;

/**
 * Index of the first maximum of `x`. NaN is treated as -Infinity. Throws SamplingError when `x` is
 * empty or every entry is NaN/-Infinity.
 */
export function argmax(x: ArrayLike<number>): number {
  let best = -1;
  let bestVal = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v > bestVal) {
      // NaN and -Infinity never pass this test
      bestVal = v;
      best = i;
    }
  }
  if (best < 0) {
    throw new SamplingError(`argmax: no finite or +Infinity value among ${x.length} entries (all NaN/-Infinity)`);
  }
  return best;
}

interface ResolvedOptions {
  temperature: number;
  doSample: boolean;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
}

function checkNumber(name: string, v: unknown, ok: (x: number) => boolean, range: string): number {
  if (typeof v !== 'number' || Number.isNaN(v) || !ok(v)) {
    throw new SamplingError(`invalid ${name}: ${String(v)} (allowed: ${range})`);
  }
  return v;
}

function resolveOptions(opts: SamplingOptions): ResolvedOptions & { seed: number | undefined } {
  const temperature =
    opts.temperature === undefined
      ? 1
      : checkNumber('temperature', opts.temperature, (x) => Number.isFinite(x) && x >= 0, 'a finite number >= 0; 0 = greedy');
  if (opts.doSample !== undefined && typeof opts.doSample !== 'boolean') {
    throw new SamplingError(`invalid doSample: ${String(opts.doSample)} (allowed: true or false)`);
  }
  const topK =
    opts.topK === undefined
      ? 0
      : checkNumber('topK', opts.topK, (x) => Number.isSafeInteger(x) && x >= 0, 'an integer >= 0; 0 = off');
  const topP =
    opts.topP === undefined ? 1 : checkNumber('topP', opts.topP, (x) => x > 0 && x <= 1, '(0, 1]; 1 = off');
  const minP =
    opts.minP === undefined ? 0 : checkNumber('minP', opts.minP, (x) => x >= 0 && x <= 1, '[0, 1]; 0 = off');
  const repetitionPenalty =
    opts.repetitionPenalty === undefined
      ? 1
      : checkNumber(
          'repetitionPenalty',
          opts.repetitionPenalty,
          (x) => Number.isFinite(x) && x > 0,
          'a finite number > 0; 1 = off',
        );
  const seed =
    opts.seed === undefined
      ? undefined
      : checkNumber('seed', opts.seed, (x) => Number.isSafeInteger(x), 'a safe integer');
  return {
    temperature,
    doSample: (opts.doSample ?? false) && temperature !== 0,
    topK,
    topP,
    minP,
    repetitionPenalty,
    seed,
  };
}

export class Sampler {
  readonly vocabSize: number;
  /** The seed actually used (the given one, or a random one when none was given). */
  readonly seed: number;
  /** True when `sample` returns the argmax (doSample false, or temperature 0). */
  readonly greedy: boolean;
  readonly options: Readonly<ResolvedOptions>;

  private readonly rng: Rng;
  /** Processed logits of the current/last call (float64 so temperature scaling cannot overflow). */
  private readonly work: Float64Array;
  /** Unnormalized probabilities exp(v - vmax), indexed by token id; valid for candidates only. */
  private readonly weight: Float64Array;
  /** Candidate token ids; the first `nCand` are the survivors of the last call. */
  private readonly cand: Int32Array;
  private nCand = 0;
  /** 0 = no call yet, 1 = greedy (work is the answer), 2 = sampled (candidates are the survivors). */
  private lastMode: 0 | 1 | 2 = 0;
  private readonly byLogitDesc: (a: number, b: number) => number;

  constructor(vocabSize: number, opts: SamplingOptions = {}) {
    if (!Number.isSafeInteger(vocabSize) || vocabSize <= 0) {
      throw new SamplingError(`invalid vocabSize: ${String(vocabSize)} (allowed: an integer >= 1)`);
    }
    const r = resolveOptions(opts);
    this.vocabSize = vocabSize;
    this.seed = r.seed ?? Math.floor(Math.random() * 4294967296);
    this.greedy = !r.doSample;
    this.options = Object.freeze({
      temperature: r.temperature,
      doSample: r.doSample,
      topK: r.topK,
      topP: r.topP,
      minP: r.minP,
      repetitionPenalty: r.repetitionPenalty,
    });
    this.rng = new Rng(this.seed);
    this.work = new Float64Array(vocabSize);
    this.weight = new Float64Array(vocabSize);
    this.cand = new Int32Array(vocabSize);
    const work = this.work;
    // descending by processed logit, ties by ascending token id (deterministic)
    this.byLogitDesc = (a, b) => {
      const va = work[a];
      const vb = work[b];
      return va > vb ? -1 : va < vb ? 1 : a - b;
    };
  }

  /**
   * Pick the next token from `logits` (length vocabSize; not modified). `history` = all previous
   * token ids of this sequence (prompt + generated), used only by the repetition penalty. NaN logits
   * are treated as -Infinity. Throws SamplingError when no token is selectable (all NaN/-Infinity),
   * on a length mismatch, or (with a repetition penalty) on a history id outside [0, vocabSize).
   */
  sample(logits: Float32Array, history: ArrayLike<number> = []): number {
    const V = this.vocabSize;
    if (logits.length !== V) {
      throw new SamplingError(`logits length ${logits.length} != vocabSize ${V}`);
    }
    const o = this.options;
    const work = this.work;
    for (let i = 0; i < V; i++) {
      const v = logits[i];
      work[i] = v === v ? v : -Infinity;
    }

    // 1. repetition penalty (HF gathers the original scores, so repeated ids count once)
    const p = o.repetitionPenalty;
    if (p !== 1) {
      for (let j = 0; j < history.length; j++) {
        const id = history[j];
        if (!Number.isInteger(id) || id < 0 || id >= V) {
          throw new SamplingError(`history[${j}] = ${id} is not a token id in [0, ${V})`);
        }
        const x = logits[id];
        if (x === x) work[id] = x < 0 ? x * p : x / p;
      }
    }

    if (this.greedy) {
      this.lastMode = 1;
      return argmax(work);
    }
    this.lastMode = 2;

    // 2. temperature; collect the selectable candidates (finite or +Infinity)
    const T = o.temperature;
    const cand = this.cand;
    let n = 0;
    let vmax = -Infinity;
    for (let i = 0; i < V; i++) {
      const v = T === 1 ? work[i] : work[i] / T;
      work[i] = v;
      if (v !== -Infinity) {
        cand[n++] = i;
        if (v > vmax) vmax = v;
      }
    }
    this.nCand = n;
    if (n === 0) {
      throw new SamplingError('sample: every logit is NaN or -Infinity; nothing to sample');
    }

    // 3. top-k (partial selection; keeps every tie with the k-th value, as HF's `scores < kth`)
    if (o.topK > 0 && o.topK < n) {
      n = this.selectTopK(n, o.topK);
    }

    // unnormalized probabilities; +Infinity logits share all the mass equally
    const weight = this.weight;
    const infMax = vmax === Infinity;
    let z = 0;
    for (let j = 0; j < n; j++) {
      const id = cand[j];
      const v = work[id];
      const w = infMax ? (v === Infinity ? 1 : 0) : Math.exp(v - vmax);
      weight[id] = w;
      z += w;
    }

    // 4. top-p: sort the survivors only; keep a token iff the mass ranked above it is < topP
    if (o.topP < 1 && n > 1) {
      const threshold = (o.topP - TOP_P_EPS) * z;
      // The nucleus is usually tiny: select the top 128, 512, ... (with ties) until their mass
      // reaches the threshold, then sort only those. Falls back to sorting all candidates.
      let sortN = n;
      for (let k = 128; 2 * k < n; k *= 4) {
        const c = this.selectTopK(n, k);
        let mass = 0;
        for (let j = 0; j < c; j++) mass += weight[cand[j]];
        if (mass >= threshold) {
          sortN = c;
          break;
        }
      }
      cand.subarray(0, sortN).sort(this.byLogitDesc);
      let above = 0;
      let m = 0;
      while (m < sortN) {
        if (m >= 1 && above >= threshold) break; // min_tokens_to_keep = 1
        above += weight[cand[m]];
        m++;
      }
      n = m;
    }

    // 5. min-p: p_i < minP * p_max  <=>  weight_i < minP (the top token has weight 1 and survives)
    if (o.minP > 0) {
      let m = 0;
      for (let j = 0; j < n; j++) {
        const id = cand[j];
        if (weight[id] >= o.minP) cand[m++] = id;
      }
      n = m;
    }
    this.nCand = n;

    // 6. sample by inverse CDF over the survivors (same summation order for total and walk)
    let total = 0;
    for (let j = 0; j < n; j++) total += weight[cand[j]];
    const r = this.rng.next() * total;
    let acc = 0;
    let lastPositive = cand[0];
    for (let j = 0; j < n; j++) {
      const id = cand[j];
      const w = weight[id];
      if (w > 0) {
        acc += w;
        lastPositive = id;
        if (acc > r) return id;
      }
    }
    return lastPositive; // unreachable barring rounding
  }

  /**
   * The processed logits of the last `sample` call as a new Float32Array: after the repetition
   * penalty and, when sampling, temperature and filters (filtered tokens = -Infinity; NaN inputs
   * show as -Infinity). In greedy mode the warpers are not applied (as HF), so this is the
   * penalized logits. Throws SamplingError before the first call.
   */
  lastProcessed(): Float32Array {
    const out = new Float32Array(this.vocabSize);
    if (this.lastMode === 0) throw new SamplingError('lastProcessed: sample() has not been called yet');
    if (this.lastMode === 1) {
      out.set(this.work);
      return out;
    }
    out.fill(-Infinity);
    for (let j = 0; j < this.nCand; j++) {
      const id = this.cand[j];
      out[id] = this.work[id];
    }
    return out;
  }

  /**
   * Moves the k largest candidates (by work value) into cand[0..k) plus every further candidate
   * tied with the k-th largest; returns the new candidate count. Quickselect (Hoare/Wirth
   * partition, median-of-three pivot), average O(n).
   */
  private selectTopK(n: number, k: number): number {
    const a = this.cand;
    const key = this.work;
    const target = k - 1;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const x0 = key[a[lo]];
      const x1 = key[a[mid]];
      const x2 = key[a[hi]];
      const pivot = x0 > x1 ? (x1 > x2 ? x1 : x0 > x2 ? x2 : x0) : x0 > x2 ? x0 : x1 > x2 ? x2 : x1;
      let i = lo;
      let j = hi;
      do {
        while (key[a[i]] > pivot) i++;
        while (key[a[j]] < pivot) j--;
        if (i <= j) {
          const t = a[i];
          a[i] = a[j];
          a[j] = t;
          i++;
          j--;
        }
      } while (i <= j);
      // now [lo..j] >= pivot, (j..i) == pivot, [i..hi] <= pivot
      if (j < target) lo = i;
      if (target < i) hi = j;
    }
    const kth = key[a[target]];
    let m = k;
    for (let j = k; j < n; j++) {
      const id = a[j];
      if (key[id] >= kth) {
        a[j] = a[m];
        a[m++] = id;
      }
    }
    return m;
  }
}
