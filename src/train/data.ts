/**
 * Training data from local files — one import for the loaders:
 *
 *   text-corpus.ts     text files → token streams (byte-level or a tokenizer), what was used and skipped
 *   token-windows.ts   train/val splits and seeded windows of seqLen + 1 tokens
 *   fashion-mnist.ts   IDX files, Fashion-MNIST and the pixel batcher of sequential classification
 *
 * Every error is a `DataError` that names the file or folder and what was expected.
 */
export { DataError } from './data-error.js';
export * from './text-corpus.js';
export * from './token-windows.js';
export * from './fashion-mnist.js';
