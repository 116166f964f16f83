/**
 * Fashion-MNIST from Debian's `dataset-fashion-mnist` package
 * (`/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`): an IDX parser
 * (gzip detected by its magic bytes), `loadFashionMnist` → images as float32 in [0, 1] (or standardized),
 * labels, and `PixelBatcher`, a seeded, epoch-shuffled batch source for sequential pixel-by-pixel
 * classification (inputs [b, rows·cols, 1]).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { DataError } from './data-error.js';
import { permutation, subRng } from './random.js';

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
