/**
 * Training data from local files.
 *
 * (a) Text: `loadTextCorpus(root)` walks a folder (or reads one file), keeps text files by
 * extension, skips `node_modules`, `dist`, `.git` (and other hidden entries), files over a size
 * limit and binary files (a NUL byte, or not valid UTF-8), and tokenizes each file: byte-level
 * (UTF-8 bytes, vocab 256) by default, or with an `encode` function (e.g. a tokenizer.json's).
 * `splitCorpus` makes a train/val split, by tail fraction or by whole files; `WindowSampler` draws
 * seeded random windows of seqLen + 1 tokens → inputs [b, L] / targets [b, L] (targets = inputs
 * shifted by one), batch k being a function of (seed, k) only, so a resumed run sees the same data.
 *
 * (b) Fashion-MNIST from Debian's `dataset-fashion-mnist` package
 * (`/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`): an IDX
 * parser (gzip detected by its magic bytes), `loadFashionMnist` → images as float32 in [0, 1] (or
 * standardized), labels, and `PixelBatcher`, a seeded, epoch-shuffled batch source for sequential
 * pixel-by-pixel classification (inputs [b, rows·cols, 1]).
 *
 * Every error is a `DataError` that names the file or folder and what was expected.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { deriveSeed, permutation, randInt, subRng } from './random.js';
import { Rng } from '../generate/rng.js';

export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}

// ================================================================================================
// (a) text

export const DEFAULT_TEXT_EXTENSIONS: readonly string[] = ['.ts', '.js', '.md', '.json', '.txt', '.py'];
export const DEFAULT_SKIP_DIRS: readonly string[] = ['node_modules', 'dist', '.git'];

export interface TextCorpusOptions {
  /** file extensions to take, with the dot (default `DEFAULT_TEXT_EXTENSIONS`); a root that is a file is taken whatever its extension */
  extensions?: readonly string[];
  /** directory names never entered (default `DEFAULT_SKIP_DIRS`) */
  skipDirs?: readonly string[];
  /** also skip files and folders whose name starts with '.' (default true) */
  skipHidden?: boolean;
  /** larger files are skipped (default 1 MiB: lock files, fixtures) */
  maxFileBytes?: number;
  /** stop collecting once this many bytes were taken (default 64 MiB) */
  maxTotalBytes?: number;
  /** text → token ids; default: byte-level (the UTF-8 bytes, vocab 256) */
  encode?: (text: string) => ArrayLike<number>;
  /** vocabulary size of `encode` (ids are checked against it); default 256 when byte-level */
  vocabSize?: number;
}

export interface TextFile {
  /** path relative to the corpus root ('' … the root itself when it is a file) */
  path: string;
  bytes: number;
  tokens: Int32Array;
}

export interface TextCorpus {
  root: string;
  files: TextFile[];
  vocabSize: number;
  totalTokens: number;
  totalBytes: number;
  /** what was left out, by reason (counts) */
  skipped: { extension: number; binary: number; tooLarge: number; empty: number; overBudget: number; unreadable: number };
}

/** UTF-8 bytes as tokens (vocab 256). */
export function byteEncode(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** Inverse of `byteEncode` (invalid sequences become U+FFFD). */
export function byteDecode(ids: ArrayLike<number>): string {
  return new TextDecoder().decode(Uint8Array.from(ids as ArrayLike<number>));
}

function isBinary(buf: Uint8Array): boolean {
  if (buf.indexOf(0) !== -1) return true;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(buf);
    return false;
  } catch {
    return true;
  }
}

export function loadTextCorpus(root: string, opts: TextCorpusOptions = {}): TextCorpus {
  const extensions = (opts.extensions ?? DEFAULT_TEXT_EXTENSIONS).map((e) => e.toLowerCase());
  const skipDirs = new Set(opts.skipDirs ?? DEFAULT_SKIP_DIRS);
  const skipHidden = opts.skipHidden ?? true;
  const maxFileBytes = opts.maxFileBytes ?? 1 << 20;
  const maxTotalBytes = opts.maxTotalBytes ?? 64 << 20;
  const encode = opts.encode ?? byteEncode;
  const vocabSize = opts.vocabSize ?? (opts.encode ? undefined : 256);
  if (vocabSize !== undefined && (!Number.isSafeInteger(vocabSize) || vocabSize < 1)) {
    throw new DataError(`text corpus: vocabSize must be a positive integer, got ${vocabSize}`);
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(root);
  } catch (e) {
    throw new DataError(`text corpus: cannot read ${root}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or folder' : (e as Error).message}`);
  }
  const skipped = { extension: 0, binary: 0, tooLarge: 0, empty: 0, overBudget: 0, unreadable: 0 };
  const files: TextFile[] = [];
  let totalBytes = 0;
  let totalTokens = 0;
  let maxId = -1;

  const take = (abs: string, rel: string, size: number): void => {
    if (size > maxFileBytes) {
      skipped.tooLarge++;
      return;
    }
    if (size === 0) {
      skipped.empty++;
      return;
    }
    if (totalBytes + size > maxTotalBytes) {
      skipped.overBudget++;
      return;
    }
    let buf: Buffer;
    try {
      buf = fs.readFileSync(abs);
    } catch {
      skipped.unreadable++;
      return;
    }
    if (isBinary(buf)) {
      skipped.binary++;
      return;
    }
    const raw = opts.encode ? encode(buf.toString('utf8')) : buf;
    const tokens = Int32Array.from(raw as ArrayLike<number>);
    if (tokens.length === 0) {
      skipped.empty++;
      return;
    }
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      if (t < 0 || (vocabSize !== undefined && t >= vocabSize)) {
        throw new DataError(`text corpus: ${abs}: encode produced token id ${t} at ${i}, expected 0 … ${vocabSize === undefined ? '' : vocabSize - 1}`);
      }
      if (t > maxId) maxId = t;
    }
    files.push({ path: rel, bytes: size, tokens });
    totalBytes += size;
    totalTokens += tokens.length;
  };

  if (st.isFile()) {
    take(root, '', st.size);
  } else if (st.isDirectory()) {
    const walk = (dir: string, rel: string): void => {
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        skipped.unreadable++;
        return;
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const ent of entries) {
        if (skipHidden && ent.name.startsWith('.')) continue;
        const abs = path.join(dir, ent.name);
        const r = rel === '' ? ent.name : `${rel}/${ent.name}`;
        if (ent.isDirectory()) {
          if (!skipDirs.has(ent.name)) walk(abs, r);
          continue;
        }
        let isFile = ent.isFile();
        let size = -1;
        if (ent.isSymbolicLink()) {
          // follow links to files only (links to folders could loop)
          try {
            const s = fs.statSync(abs);
            isFile = s.isFile();
            size = s.size;
          } catch {
            continue;
          }
        }
        if (!isFile) continue;
        if (!extensions.includes(path.extname(ent.name).toLowerCase())) {
          skipped.extension++;
          continue;
        }
        if (size < 0) {
          try {
            size = fs.statSync(abs).size;
          } catch {
            skipped.unreadable++;
            continue;
          }
        }
        take(abs, r, size);
      }
    };
    walk(root, '');
  } else {
    throw new DataError(`text corpus: ${root} is neither a file nor a folder`);
  }

  if (files.length === 0) {
    const why = Object.entries(skipped)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${n} ${k === 'extension' ? `with another extension` : k}`)
      .join(', ');
    throw new DataError(
      `text corpus: no usable text in ${root}: expected UTF-8 text files with extension ${extensions.join(' ')} ` +
        `(skipping ${[...skipDirs].join(', ')}${skipHidden ? ', hidden entries' : ''}; at most ${maxFileBytes} bytes each); ` +
        `found ${why || 'no files at all'}`,
    );
  }
  return { root, files, vocabSize: vocabSize ?? maxId + 1, totalTokens, totalBytes, skipped };
}

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

// ================================================================================================
// (b) Fashion-MNIST (IDX files)

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_CLASSES: readonly string[] = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];
/** mean and standard deviation of the training pixels scaled to [0, 1] */
export const FASHION_MNIST_MEAN = 0.286;
export const FASHION_MNIST_STD = 0.353;

/** IDX magic numbers: unsigned-byte data with 3 dims (images) and 1 dim (labels). */
export const IDX_IMAGES_MAGIC = 2051;
export const IDX_LABELS_MAGIC = 2049;

export interface IdxArray {
  magic: number;
  dims: number[];
  /** unsigned bytes, row-major */
  data: Uint8Array;
}

/**
 * Parse an IDX file (gzipped or not: detected by the 1f 8b magic). Only the unsigned-byte type
 * (0x08) is supported. `expectMagic` (2051 images, 2049 labels) is checked when given; the data
 * length must match the dims exactly. `label` names the file in errors.
 */
export function parseIdx(bytes: Uint8Array, label: string, expectMagic?: number): IdxArray {
  let buf = bytes;
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch (e) {
      throw new DataError(`${label}: gzip data is corrupt or truncated: ${(e as Error).message}`);
    }
  }
  if (buf.length < 4) throw new DataError(`${label}: IDX file too short (${buf.length} bytes): expected at least a 4-byte magic number`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = dv.getUint32(0, false);
  if (expectMagic !== undefined && magic !== expectMagic) {
    throw new DataError(`${label}: IDX magic number is ${magic}, expected ${expectMagic} (${expectMagic === IDX_IMAGES_MAGIC ? 'images' : expectMagic === IDX_LABELS_MAGIC ? 'labels' : 'IDX'})`);
  }
  if (buf[0] !== 0 || buf[1] !== 0) throw new DataError(`${label}: not an IDX file: magic ${magic} should start with two zero bytes`);
  if (buf[2] !== 0x08) throw new DataError(`${label}: IDX data type 0x${buf[2].toString(16)} is not supported: expected 0x08 (unsigned byte)`);
  const ndims = buf[3];
  if (ndims < 1) throw new DataError(`${label}: IDX header declares 0 dimensions`);
  const headerLen = 4 + 4 * ndims;
  if (buf.length < headerLen) throw new DataError(`${label}: IDX header truncated: ${ndims} dims need ${headerLen} bytes, file has ${buf.length}`);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < ndims; i++) {
    const d = dv.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  const have = buf.length - headerLen;
  if (have !== count) {
    throw new DataError(
      `${label}: IDX dims [${dims.join(', ')}] need ${count} data bytes, file has ${have} (${have < count ? 'truncated' : 'trailing bytes'})`,
    );
  }
  return { magic, dims, data: new Uint8Array(buf.buffer, buf.byteOffset + headerLen, count) };
}

export function readIdxFile(file: string, expectMagic?: number): IdxArray {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataError(`${file}: cannot read IDX file: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  return parseIdx(bytes, file, expectMagic);
}

export interface ImageDataset {
  /** [n, rows·cols] pixels: /255 ('unit', default) or ((x/255) − mean) / std ('standard') */
  images: Float32Array;
  labels: Uint8Array;
  n: number;
  rows: number;
  cols: number;
  numClasses: number;
}

export interface FashionMnistOptions {
  /** folder with the four .gz files (default env MAMBA_TS_FMNIST_DIR, else `FASHION_MNIST_DIR`) */
  dir?: string;
  /** keep only this many examples: the first ones, or a seeded random subset with `subsetSeed` */
  limit?: number;
  subsetSeed?: number;
  /** 'unit' (default): [0, 1]; 'standard': (x − FASHION_MNIST_MEAN) / FASHION_MNIST_STD */
  normalize?: 'unit' | 'standard';
}

/** File paths of a split: `train-…` or `t10k-…` (test). */
export function fashionMnistFiles(split: 'train' | 'test', dir?: string): { images: string; labels: string } {
  const d = dir ?? process.env['MAMBA_TS_FMNIST_DIR'] ?? FASHION_MNIST_DIR;
  const p = split === 'train' ? 'train' : 't10k';
  return { images: path.join(d, `${p}-images-idx3-ubyte.gz`), labels: path.join(d, `${p}-labels-idx1-ubyte.gz`) };
}

export function loadFashionMnist(split: 'train' | 'test', opts: FashionMnistOptions = {}): ImageDataset {
  if (split !== 'train' && split !== 'test') throw new DataError(`loadFashionMnist: split must be "train" or "test", got ${JSON.stringify(split)}`);
  const f = fashionMnistFiles(split, opts.dir);
  const img = readIdxFile(f.images, IDX_IMAGES_MAGIC);
  const lab = readIdxFile(f.labels, IDX_LABELS_MAGIC);
  return imageDatasetFromIdx(img, lab, f.images, f.labels, opts);
}

/** Build an `ImageDataset` from parsed IDX image and label arrays (checks that they agree). */
export function imageDatasetFromIdx(
  img: IdxArray,
  lab: IdxArray,
  imagesLabel: string,
  labelsLabel: string,
  opts: Omit<FashionMnistOptions, 'dir'> = {},
  numClasses = 10,
): ImageDataset {
  if (img.dims.length !== 3) throw new DataError(`${imagesLabel}: expected 3 dims [n, rows, cols], found [${img.dims.join(', ')}]`);
  if (lab.dims.length !== 1) throw new DataError(`${labelsLabel}: expected 1 dim [n], found [${lab.dims.join(', ')}]`);
  const [N, rows, cols] = img.dims;
  if (lab.dims[0] !== N) throw new DataError(`${labelsLabel}: ${lab.dims[0]} labels, but ${imagesLabel} has ${N} images`);
  for (let i = 0; i < N; i++) {
    if (lab.data[i] >= numClasses) throw new DataError(`${labelsLabel}: label ${i} is ${lab.data[i]}, expected 0 … ${numClasses - 1}`);
  }
  let idx: ArrayLike<number> | null = null;
  let n = N;
  if (opts.limit !== undefined) {
    if (!Number.isSafeInteger(opts.limit) || opts.limit < 1) throw new DataError(`image dataset: limit must be an integer >= 1, got ${opts.limit}`);
    n = Math.min(N, opts.limit);
    if (opts.subsetSeed !== undefined) idx = permutation(subRng(opts.subsetSeed, 0x1d5), N).subarray(0, n);
  }
  const normalize = opts.normalize ?? 'unit';
  if (normalize !== 'unit' && normalize !== 'standard') throw new DataError(`image dataset: normalize must be "unit" or "standard", got ${JSON.stringify(normalize)}`);
  const P = rows * cols;
  const images = new Float32Array(n * P);
  const labels = new Uint8Array(n);
  const [mean, std] = normalize === 'standard' ? [FASHION_MNIST_MEAN, FASHION_MNIST_STD] : [0, 1];
  for (let i = 0; i < n; i++) {
    const src = idx ? idx[i] : i;
    labels[i] = lab.data[src];
    const o = src * P;
    for (let j = 0; j < P; j++) images[i * P + j] = (img.data[o + j] / 255 - mean) / std;
  }
  return { images, labels, n, rows, cols, numClasses };
}

export interface PixelBatch {
  /** [batch, rows·cols, 1]: one pixel per time step */
  inputs: Float32Array;
  /** [batch] class ids */
  labels: Int32Array;
  /** which examples of the dataset */
  indices: Int32Array;
  batch: number;
  seqLen: number;
}

export interface PixelBatcherOptions {
  batch: number;
  seed?: number;
  /** shuffle each epoch (default true); false = dataset order (evaluation) */
  shuffle?: boolean;
  /** drop the last incomplete batch of each epoch (default: true when shuffling, false otherwise) */
  dropLast?: boolean;
}

/**
 * Batches for sequential pixel classification. Each epoch is a seeded permutation of the dataset
 * (a function of (seed, epoch) only); `batchAt(k)` is the k-th batch counted over all epochs, so
 * training resumes from a step count alone.
 */
export class PixelBatcher {
  readonly batchSize: number;
  readonly batchesPerEpoch: number;
  private readonly seed: number;
  private readonly shuffle: boolean;
  private order: { epoch: number; perm: Int32Array } | null = null;

  constructor(
    readonly data: ImageDataset,
    opts: PixelBatcherOptions,
  ) {
    if (!Number.isSafeInteger(opts.batch) || opts.batch < 1) throw new DataError(`PixelBatcher: batch must be an integer >= 1, got ${opts.batch}`);
    this.batchSize = opts.batch;
    this.seed = opts.seed ?? 0;
    this.shuffle = opts.shuffle ?? true;
    const dropLast = opts.dropLast ?? this.shuffle;
    this.batchesPerEpoch = dropLast ? Math.floor(data.n / opts.batch) : Math.ceil(data.n / opts.batch);
    if (this.batchesPerEpoch === 0) throw new DataError(`PixelBatcher: ${data.n} examples make no full batch of ${opts.batch} (use a smaller batch or dropLast: false)`);
  }

  private perm(epoch: number): Int32Array {
    if (this.order?.epoch !== epoch) {
      let perm: Int32Array;
      if (this.shuffle) perm = permutation(subRng(this.seed, epoch), this.data.n);
      else {
        perm = new Int32Array(this.data.n);
        for (let i = 0; i < perm.length; i++) perm[i] = i;
      }
      this.order = { epoch, perm };
    }
    return this.order.perm;
  }

  /** the k-th batch over all epochs (epoch = ⌊k / batchesPerEpoch⌋) */
  batchAt(k: number): PixelBatch {
    if (!Number.isSafeInteger(k) || k < 0) throw new DataError(`PixelBatcher.batchAt: k must be an integer >= 0, got ${k}`);
    const epoch = Math.floor(k / this.batchesPerEpoch);
    const i = k % this.batchesPerEpoch;
    const perm = this.perm(epoch);
    const idx = perm.subarray(i * this.batchSize, Math.min((i + 1) * this.batchSize, perm.length));
    const P = this.data.rows * this.data.cols;
    const B = idx.length;
    const inputs = new Float32Array(B * P);
    const labels = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      inputs.set(this.data.images.subarray(idx[b] * P, (idx[b] + 1) * P), b * P);
      labels[b] = this.data.labels[idx[b]];
    }
    return { inputs, labels, indices: Int32Array.from(idx), batch: B, seqLen: P };
  }

  /** the batches of one epoch, in order */
  *epoch(e: number): Generator<PixelBatch> {
    for (let i = 0; i < this.batchesPerEpoch; i++) yield this.batchAt(e * this.batchesPerEpoch + i);
  }
}
