/**
 * A text corpus as training batches: `splitCorpus` makes a train/val split, by tail fraction or by whole
 * files; `WindowSampler` draws seeded random windows of seqLen + 1 tokens → inputs [b, L] / targets [b, L]
 * (targets = inputs shifted by one), batch k being a function of (seed, k) only, so a resumed run sees the
 * same data.
 */
import { Rng } from '../generate/rng.js';
import { DataError } from './data-error.js';
import { deriveSeed, permutation, randInt, subRng } from './random.js';
import type { TextCorpus, TextFile } from './text-corpus.js';

export interface SplitOptions {
  /** fraction of the tokens for validation (default 0.1); 0 = no validation set */
  valFraction?: number;
  /** 'tail' (default): the last fraction of the concatenated stream; 'file': whole files, chosen by a seeded shuffle */
  by?: 'tail' | 'file';
  /** for `by: 'file'` (default 0) */
  seed?: number;
  /** tokens inserted between files in the concatenated streams (e.g. an EOS id; default none) */
  separator?: readonly number[];
}

export interface CorpusSplit {
  train: Int32Array;
  val: Int32Array;
  trainFiles: string[];
  valFiles: string[];
  /** the method used ('file' falls back to 'tail' with fewer than two files) */
  by: 'tail' | 'file';
}

function concat(files: readonly TextFile[], sep: readonly number[]): Int32Array {
  let n = 0;
  for (let i = 0; i < files.length; i++) n += files[i].tokens.length + (i > 0 ? sep.length : 0);
  const out = new Int32Array(n);
  let o = 0;
  for (let i = 0; i < files.length; i++) {
    if (i > 0) for (const s of sep) out[o++] = s;
    out.set(files[i].tokens, o);
    o += files[i].tokens.length;
  }
  return out;
}

export function splitCorpus(corpus: TextCorpus, opts: SplitOptions = {}): CorpusSplit {
  const frac = opts.valFraction ?? 0.1;
  if (!(frac >= 0 && frac < 1)) throw new DataError(`splitCorpus: valFraction must be in [0, 1), got ${frac}`);
  const sep = opts.separator ?? [];
  let by = opts.by ?? 'tail';
  if (by !== 'tail' && by !== 'file') throw new DataError(`splitCorpus: by must be "tail" or "file", got ${JSON.stringify(by)}`);
  if (by === 'file' && (corpus.files.length < 2 || frac === 0)) by = 'tail';
  if (by === 'tail') {
    const all = concat(corpus.files, sep);
    const nVal = Math.floor(all.length * frac);
    // which files the two parts touch (a file can be in both)
    const cut = all.length - nVal;
    const trainFiles: string[] = [];
    const valFiles: string[] = [];
    let o = 0;
    corpus.files.forEach((f, i) => {
      const begin = o + (i > 0 ? sep.length : 0);
      const end = begin + f.tokens.length;
      if (begin < cut) trainFiles.push(f.path);
      if (end > cut) valFiles.push(f.path);
      o = end;
    });
    return { train: all.subarray(0, cut), val: all.subarray(cut), trainFiles, valFiles, by };
  }
  const order = permutation(new Rng(deriveSeed(opts.seed ?? 0, 0x5e1)), corpus.files.length);
  const want = corpus.totalTokens * frac;
  const val: TextFile[] = [];
  const train: TextFile[] = [];
  let got = 0;
  for (const i of order) {
    const f = corpus.files[i];
    // at least one file on each side
    if ((got < want || val.length === 0) && val.length < corpus.files.length - 1) {
      val.push(f);
      got += f.tokens.length;
    } else train.push(f);
  }
  const byPath = (a: TextFile, b: TextFile) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  train.sort(byPath);
  val.sort(byPath);
  return { train: concat(train, sep), val: concat(val, sep), trainFiles: train.map((f) => f.path), valFiles: val.map((f) => f.path), by };
}

export interface TokenBatch {
  /** [batch, seqLen] */
  inputs: Int32Array;
  /** [batch, seqLen]: the next token of each input position */
  targets: Int32Array;
  batch: number;
  seqLen: number;
}

export interface WindowSamplerOptions {
  batch: number;
  seqLen: number;
  seed?: number;
  /** for messages, e.g. 'train split' */
  label?: string;
}

/**
 * Random windows of seqLen + 1 consecutive tokens. `batch(k)` depends only on (seed, k). Every
 * start in [0, n − seqLen − 1] is equally likely.
 */
export class WindowSampler {
  readonly batchSize: number;
  readonly seqLen: number;
  readonly seed: number;

  constructor(
    readonly tokens: Int32Array,
    opts: WindowSamplerOptions,
  ) {
    const label = opts.label ?? 'token stream';
    if (!Number.isSafeInteger(opts.batch) || opts.batch < 1) throw new DataError(`WindowSampler (${label}): batch must be an integer >= 1, got ${opts.batch}`);
    if (!Number.isSafeInteger(opts.seqLen) || opts.seqLen < 1) throw new DataError(`WindowSampler (${label}): seqLen must be an integer >= 1, got ${opts.seqLen}`);
    if (tokens.length < opts.seqLen + 1) {
      throw new DataError(`WindowSampler (${label}): ${tokens.length} tokens, need at least seqLen + 1 = ${opts.seqLen + 1} (use a shorter seqLen or more text)`);
    }
    this.batchSize = opts.batch;
    this.seqLen = opts.seqLen;
    this.seed = opts.seed ?? 0;
  }

  /** the k-th training batch (k = optimizer step × accumulation + micro-batch, say) */
  batch(k: number): TokenBatch {
    const rng = subRng(this.seed, k);
    const { batchSize: B, seqLen: L, tokens } = this;
    const starts = new Array<number>(B);
    for (let b = 0; b < B; b++) starts[b] = randInt(rng, tokens.length - L);
    return this.gather(starts);
  }

  /** number of non-overlapping evaluation windows: ⌊(n − 1) / seqLen⌋ */
  get evalWindows(): number {
    return Math.floor((this.tokens.length - 1) / this.seqLen);
  }

  /**
   * Deterministic evaluation batches: non-overlapping windows from the start of the stream, in
   * order, `batch` at a time (the last batch may be smaller), at most `maxBatches`.
   */
  *evalBatches(maxBatches = Infinity): Generator<TokenBatch> {
    const total = this.evalWindows;
    let w = 0;
    for (let k = 0; k < maxBatches && w < total; k++) {
      const starts: number[] = [];
      for (let b = 0; b < this.batchSize && w < total; b++, w++) starts.push(w * this.seqLen);
      yield this.gather(starts);
    }
  }

  private gather(starts: readonly number[]): TokenBatch {
    const L = this.seqLen;
    const B = starts.length;
    const inputs = new Int32Array(B * L);
    const targets = new Int32Array(B * L);
    for (let b = 0; b < B; b++) {
      const s = starts[b];
      inputs.set(this.tokens.subarray(s, s + L), b * L);
      targets.set(this.tokens.subarray(s + 1, s + L + 1), b * L);
    }
    return { inputs, targets, batch: B, seqLen: L };
  }
}
