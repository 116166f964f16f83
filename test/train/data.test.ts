/**
 * Text corpus (walking, filtering, tokenization, splits, window sampling) and Fashion-MNIST (IDX
 * parsing of synthetic and corrupt files, the real Debian files, the pixel batcher).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  DataError,
  FASHION_MNIST_MEAN,
  FASHION_MNIST_STD,
  IDX_IMAGES_MAGIC,
  IDX_LABELS_MAGIC,
  PixelBatcher,
  WindowSampler,
  byteDecode,
  corpusSummary,
  fashionMnistFiles,
  imageDatasetFromIdx,
  loadFashionMnist,
  loadTextCorpus,
  parseIdx,
  readIdxFile,
  splitCorpus,
} from '../../src/train/data.js';

const made: string[] = [];
/** a temporary folder, removed after the file's tests (even when one fails) */
function tmpdir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-data-'));
  made.push(dir);
  return dir;
}
after(() => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

function put(root: string, rel: string, content: string | Uint8Array): void {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
}

function makeTree(): string {
  const root = tmpdir();
  put(root, 'a.ts', 'export const a = 1;\n');
  put(root, 'b.md', '# Title — ünïcode\n');
  put(root, 'sub/c.py', 'print("hi")\n');
  put(root, 'node_modules/pkg/x.js', 'module.exports = 1;\n');
  put(root, 'dist/y.js', 'compiled();\n');
  put(root, '.git/z.txt', 'git internals\n');
  put(root, '.hidden.md', 'hidden\n');
  put(root, 'nul.txt', new Uint8Array([104, 105, 0, 106]));
  put(root, 'latin1.txt', new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x0a])); // "café" in Latin-1: not UTF-8
  put(root, 'image.png', new Uint8Array([0x89, 0x50, 0x4e, 0x47]));
  put(root, 'big.txt', 'x'.repeat(5000));
  put(root, 'empty.txt', '');
  return root;
}

test('text corpus: takes every UTF-8 text file whatever its extension; skips node_modules/dist/.git/hidden, binaries and empty files', () => {
  const root = makeTree();
  const c = loadTextCorpus(root);
  assert.deepEqual(c.files.map((f) => f.path), ['a.ts', 'b.md', 'big.txt', 'sub/c.py']);
  assert.deepEqual(c.skipped, { extension: 0, binary: 3, empty: 1, unreadable: 0, overBudget: 0 });
  assert.deepEqual(c.skippedExamples.binary, ['image.png', 'latin1.txt', 'nul.txt']);
  assert.equal(c.vocabSize, 256);
  const b = c.files[1];
  assert.equal(byteDecode(b.tokens), '# Title — ünïcode\n');
  assert.equal(b.tokens.length, Buffer.byteLength('# Title — ünïcode\n'), 'byte-level: one token per UTF-8 byte');
  assert.equal(c.totalTokens, c.files.reduce((s, f) => s + f.tokens.length, 0));
  assert.equal(c.totalBytes, c.files.reduce((s, f) => s + f.bytes, 0));
  assert.equal(
    corpusSummary(c),
    `data: 4 files, ${c.totalBytes} bytes (${(c.totalBytes / 1024).toFixed(2)} KiB) from ${root}; skipped 4: 3 binary (image.png, latin1.txt, nul.txt), 1 empty (empty.txt)`,
  );
  // an extension filter (with or without the dot) and a tokenizer function
  const words = loadTextCorpus(root, { extensions: ['MD', '.py'], encode: (t) => [...t].map((ch) => (ch === ' ' ? 1 : 2)), vocabSize: 3 });
  assert.deepEqual(words.files.map((f) => f.path), ['b.md', 'sub/c.py']);
  assert.ok(words.files[0].tokens.every((t) => t === 1 || t === 2));
  assert.equal(words.skipped.extension, 6);
  assert.match(corpusSummary(words), /^data: 2 files, \d+ bytes \(.*\), \d+ tokens from .*; skipped 6: 6 not matching --data-ext \.md,\.py \(a\.ts, big\.txt, empty\.txt, …\)$/);
  assert.throws(() => loadTextCorpus(root, { encode: () => [5], vocabSize: 3 }), /encode produced token id 5/);
  // a file root is taken whatever its extension (or the filter)
  assert.equal(loadTextCorpus(path.join(root, 'sub', 'c.py'), { extensions: ['.md'] }).files.length, 1);
  fs.rmSync(root, { recursive: true });
});

test('text corpus: any size, read in pieces; the tokens are those of the whole file, and a tokenizer sees whole lines', () => {
  const root = tmpdir();
  // 2.8 MB, multi-byte characters falling across the piece boundaries
  const line = 'état — λx. x ✓ 🐍 the state space model\n';
  const text = line.repeat(Math.ceil(2.8e6 / Buffer.byteLength(line)));
  put(root, 'notes.log', text);
  const bytes = fs.readFileSync(path.join(root, 'notes.log'));
  const c = loadTextCorpus(root, { chunkBytes: 4093, sniffBytes: 1001 });
  assert.equal(c.files.length, 1);
  assert.equal(c.totalBytes, bytes.length);
  assert.ok(Buffer.from(Uint8Array.from(c.files[0].tokens)).equals(bytes), 'byte-level tokens = the file');

  const pieces: string[] = [];
  const codePoints = (t: string): number[] => {
    pieces.push(t);
    return [...t].map((ch) => ch.codePointAt(0)! % 1000);
  };
  const enc = loadTextCorpus(root, { chunkBytes: 4096, encode: codePoints, vocabSize: 1000 });
  assert.deepEqual(Array.from(enc.files[0].tokens), [...text].map((ch) => ch.codePointAt(0)! % 1000), 'encoded piece by piece = encoded whole');
  assert.ok(pieces.length > 100, `${pieces.length} pieces: never one string of the whole file`);
  assert.ok(pieces.every((p) => p.endsWith('\n') && p.length <= 2 * 4096), 'each piece ends at a line break');
  fs.rmSync(root, { recursive: true });
});

test('text corpus: reading stops at the byte budget (at a character boundary) and says so', () => {
  const root = tmpdir();
  put(root, 'a.txt', 'a'.repeat(6000));
  put(root, 'b.txt', 'é'.repeat(3000)); // 6000 bytes
  put(root, 'c.txt', 'c'.repeat(10));
  const c = loadTextCorpus(root, { maxTotalBytes: 9001, chunkBytes: 1024 });
  assert.deepEqual(c.files.map((f) => [f.path, f.bytes]), [['a.txt', 6000], ['b.txt', 3000]], '3001 bytes would cut an é in two');
  assert.equal(byteDecode(c.files[1].tokens), 'é'.repeat(1500));
  assert.equal(c.truncated, 'b.txt');
  assert.equal(c.skipped.overBudget, 1);
  assert.match(corpusSummary(c), /^data: 2 files, 9000 bytes \(8\.79 KiB\) from .*; stopped at --data-limit 8\.79 KiB: b\.txt read in part, 1 more file not read$/);
  fs.rmSync(root, { recursive: true });
});

test('text corpus: binary means a NUL or invalid UTF-8 in the first bytes; a character cut by the sniff window is not', () => {
  const root = tmpdir();
  put(root, 'accents.txt', 'é'.repeat(100)); // 2-byte characters, sniffed over an odd number of bytes
  put(root, 'late-nul.txt', Buffer.concat([Buffer.from('x'.repeat(300)), Buffer.from([0]), Buffer.from('y')]));
  put(root, 'early-nul.txt', Buffer.concat([Buffer.from('x'.repeat(10)), Buffer.from([0])]));
  put(root, 'pdf.pdf', Buffer.concat([Buffer.from('%PDF-1.4\n%'), Buffer.from([0xe2, 0xe3, 0xcf, 0xd3]), Buffer.from('\n')]));
  put(root, 'cut.txt', Buffer.from([0x61, 0xc3])); // a whole file ending inside a character
  const c = loadTextCorpus(root, { sniffBytes: 101 });
  assert.deepEqual(c.files.map((f) => f.path), ['accents.txt', 'late-nul.txt']);
  assert.deepEqual(c.skippedExamples.binary, ['cut.txt', 'early-nul.txt', 'pdf.pdf']);
  fs.rmSync(root, { recursive: true });
});

test('text corpus: a folder without usable text gives an error that says what was found', () => {
  const root = tmpdir();
  put(root, 'image.png', new Uint8Array([0x89, 0x50, 0x4e, 0x47]));
  put(root, 'data.txt', new Uint8Array([0, 0, 0]));
  put(root, 'notes.md', 'words\n');
  put(root, 'node_modules/a.js', 'x');
  assert.throws(
    () => loadTextCorpus(root, { extensions: ['.txt', '.png'] }),
    (e: unknown) => e instanceof DataError && e.message.includes(root) && /no usable text/.test(e.message) && /1 not matching --data-ext \.txt,\.png \(notes\.md\)/.test(e.message) && /2 binary \(data\.txt, image\.png\)/.test(e.message),
  );
  assert.throws(() => loadTextCorpus(path.join(root, 'missing')), /cannot read .*missing: no such file or folder/);
  fs.rmSync(root, { recursive: true });
});

test('splits: tail fraction and whole files (seeded, disjoint)', () => {
  const root = tmpdir();
  for (let i = 0; i < 10; i++) put(root, `f${i}.txt`, `${String(i).repeat(100)}\n`);
  const c = loadTextCorpus(root);
  const tail = splitCorpus(c, { valFraction: 0.1 });
  assert.equal(tail.by, 'tail');
  assert.equal(tail.train.length + tail.val.length, c.totalTokens);
  assert.equal(tail.val.length, Math.floor(c.totalTokens * 0.1));
  assert.equal(byteDecode(tail.val), '9'.repeat(100) + '\n', 'the tail is the last file here');
  assert.deepEqual(tail.valFiles, ['f9.txt']);
  const sep = splitCorpus(c, { valFraction: 0, separator: [0] });
  assert.equal(sep.train.length, c.totalTokens + 9, 'one separator between files');
  assert.equal(sep.val.length, 0);

  const byFile = splitCorpus(c, { valFraction: 0.2, by: 'file', seed: 3 });
  assert.equal(byFile.by, 'file');
  assert.equal(byFile.valFiles.length, 2);
  assert.equal(byFile.trainFiles.length, 8);
  assert.deepEqual([...byFile.trainFiles, ...byFile.valFiles].sort(), c.files.map((f) => f.path));
  assert.deepEqual(splitCorpus(c, { valFraction: 0.2, by: 'file', seed: 3 }).valFiles, byFile.valFiles, 'seeded');
  const others = new Set<string>();
  for (let s = 0; s < 8; s++) others.add(splitCorpus(c, { valFraction: 0.2, by: 'file', seed: s }).valFiles.join());
  assert.ok(others.size > 1, 'different seeds choose different files');
  assert.throws(() => splitCorpus(c, { valFraction: 1 }), /valFraction/);
  fs.rmSync(root, { recursive: true });
});

test('WindowSampler: windows of seqLen + 1 from the stream, seeded by (seed, k), full coverage; eval batches', () => {
  const n = 200;
  const tokens = Int32Array.from({ length: n }, (_, i) => i);
  const L = 16;
  const s = new WindowSampler(tokens, { batch: 8, seqLen: L, seed: 5 });
  let minStart = Infinity;
  let maxStart = -Infinity;
  for (let k = 0; k < 100; k++) {
    const b = s.batch(k);
    assert.equal(b.inputs.length, 8 * L);
    for (let r = 0; r < 8; r++) {
      const start = b.inputs[r * L];
      minStart = Math.min(minStart, start);
      maxStart = Math.max(maxStart, start);
      for (let t = 0; t < L; t++) {
        assert.equal(b.inputs[r * L + t], start + t, 'contiguous window');
        assert.equal(b.targets[r * L + t], start + t + 1, 'targets are inputs shifted by one');
      }
    }
  }
  assert.equal(minStart, 0);
  assert.equal(maxStart, n - L - 1, 'the last possible window is drawn');
  assert.deepEqual(new WindowSampler(tokens, { batch: 8, seqLen: L, seed: 5 }).batch(42), s.batch(42), 'same (seed, k), same batch');
  assert.notDeepEqual(s.batch(43).inputs, s.batch(42).inputs);
  assert.notDeepEqual(new WindowSampler(tokens, { batch: 8, seqLen: L, seed: 6 }).batch(42).inputs, s.batch(42).inputs);

  const ev = [...s.evalBatches()];
  assert.equal(s.evalWindows, Math.floor((n - 1) / L));
  assert.deepEqual(ev.map((b) => b.batch), [8, 4]);
  const starts = ev.flatMap((b) => Array.from({ length: b.batch }, (_, r) => b.inputs[r * L]));
  assert.deepEqual(starts, Array.from({ length: 12 }, (_, i) => i * L), 'non-overlapping, in order');
  assert.equal([...s.evalBatches(1)].length, 1);
  assert.throws(() => new WindowSampler(new Int32Array(10), { batch: 1, seqLen: 10, label: 'val split' }), /val split.*10 tokens, need at least seqLen \+ 1 = 11/);
});

// ------------------------------------------------------------------------------------------------
// IDX / Fashion-MNIST

function idx(magic: number, dims: number[], data: number[] | Uint8Array): Uint8Array {
  const head = new Uint8Array(4 + 4 * dims.length);
  const dv = new DataView(head.buffer);
  dv.setUint32(0, magic, false);
  dims.forEach((d, i) => dv.setUint32(4 + 4 * i, d, false));
  const out = new Uint8Array(head.length + data.length);
  out.set(head);
  out.set(data, head.length);
  return out;
}

/** 5 images of 2×3 with pixel = 10·i + j, labels i % 10 … */
function synthetic(): { images: Uint8Array; labels: Uint8Array } {
  const px: number[] = [];
  for (let i = 0; i < 5; i++) for (let j = 0; j < 6; j++) px.push(i * 50 + j);
  return { images: idx(IDX_IMAGES_MAGIC, [5, 2, 3], px), labels: idx(IDX_LABELS_MAGIC, [5], [3, 1, 4, 1, 5]) };
}

test('IDX parser: synthetic files, plain and gzipped; Fashion-MNIST loader on a synthetic folder', () => {
  const { images, labels } = synthetic();
  const a = parseIdx(images, 'mem', IDX_IMAGES_MAGIC);
  assert.deepEqual(a.dims, [5, 2, 3]);
  assert.equal(a.data[7], 51);
  assert.deepEqual(parseIdx(gzipSync(images), 'mem.gz', IDX_IMAGES_MAGIC), a);

  const dir = tmpdir();
  const f = fashionMnistFiles('train', dir);
  fs.writeFileSync(f.images, gzipSync(images));
  fs.writeFileSync(f.labels, gzipSync(labels));
  const ds = loadFashionMnist('train', { dir });
  assert.deepEqual([ds.n, ds.rows, ds.cols], [5, 2, 3]);
  assert.deepEqual([...ds.labels], [3, 1, 4, 1, 5]);
  assert.ok(Math.abs(ds.images[7] - 51 / 255) < 1e-7);
  assert.ok(ds.images.every((v) => v >= 0 && v <= 1));
  const std = loadFashionMnist('train', { dir, normalize: 'standard' });
  assert.ok(Math.abs(std.images[7] - (51 / 255 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD) < 1e-6);
  const first = loadFashionMnist('train', { dir, limit: 2 });
  assert.deepEqual([first.n, ...first.labels], [2, 3, 1]);
  const sub = loadFashionMnist('train', { dir, limit: 3, subsetSeed: 1 });
  assert.equal(sub.n, 3);
  for (let i = 0; i < 3; i++) {
    const src = Math.round(sub.images[i * 6] * 255) / 50; // which original image
    assert.equal(sub.labels[i], [3, 1, 4, 1, 5][src], 'image and label stay together');
  }
  assert.deepEqual(loadFashionMnist('train', { dir, limit: 3, subsetSeed: 1 }), sub, 'seeded subset');
  assert.throws(() => loadFashionMnist('test', { dir }), (e: unknown) => e instanceof DataError && e.message.includes('t10k-images-idx3-ubyte.gz') && /no such file/.test(e.message));
  fs.rmSync(dir, { recursive: true });
});

test('IDX parser: corrupt files give errors naming the file and the problem', () => {
  const { images, labels } = synthetic();
  const err = (bytes: Uint8Array, magic: number | undefined, re: RegExp) =>
    assert.throws(() => parseIdx(bytes, 'some/file.gz', magic), (e: unknown) => e instanceof DataError && e.message.startsWith('some/file.gz: ') && re.test(e.message), re.source);
  err(labels, IDX_IMAGES_MAGIC, /magic number is 2049, expected 2051 \(images\)/);
  err(images.subarray(0, images.length - 1), IDX_IMAGES_MAGIC, /need 30 data bytes, file has 29 \(truncated\)/);
  err(new Uint8Array([...images, 0]), IDX_IMAGES_MAGIC, /trailing bytes/);
  err(images.subarray(0, 10), IDX_IMAGES_MAGIC, /header truncated/);
  err(new Uint8Array([0, 0]), undefined, /too short/);
  err(idx(0x00000d01, [1], [0, 0, 0, 0]), undefined, /data type 0xd is not supported/);
  err(new Uint8Array([0x12, 0x34, 8, 1, 0, 0, 0, 0]), undefined, /should start with two zero bytes/);
  const gz = gzipSync(images);
  err(gz.subarray(0, gz.length - 10), IDX_IMAGES_MAGIC, /gzip data is corrupt or truncated/);

  const img = parseIdx(images, 'img', IDX_IMAGES_MAGIC);
  assert.throws(() => imageDatasetFromIdx(img, parseIdx(idx(IDX_LABELS_MAGIC, [4], [1, 2, 3, 4]), 'lab'), 'img', 'lab'), /lab: 4 labels, but img has 5 images/);
  assert.throws(() => imageDatasetFromIdx(img, parseIdx(idx(IDX_LABELS_MAGIC, [5], [1, 2, 3, 4, 10]), 'lab'), 'img', 'lab'), /lab: label 4 is 10, expected 0 … 9/);
  assert.throws(() => imageDatasetFromIdx(parseIdx(labels, 'x'), parseIdx(labels, 'y'), 'x', 'y'), /x: expected 3 dims/);
  assert.throws(() => readIdxFile('/nonexistent/file.gz'), /\/nonexistent\/file\.gz: cannot read IDX file: no such file/);
});

test('PixelBatcher: [b, 784, 1] batches, each epoch a seeded permutation, batchAt(k) reproducible', () => {
  const n = 10;
  const P = 4;
  const ds = { images: Float32Array.from({ length: n * P }, (_, i) => Math.floor(i / P)), labels: Uint8Array.from({ length: n }, (_, i) => i % 10), n, rows: 2, cols: 2, numClasses: 10 };
  const pb = new PixelBatcher(ds, { batch: 3, seed: 1 });
  assert.equal(pb.batchesPerEpoch, 3, 'drops the incomplete batch when shuffling');
  const epochs: number[][] = [];
  for (let e = 0; e < 3; e++) {
    const seen: number[] = [];
    for (const b of pb.epoch(e)) {
      assert.equal(b.inputs.length, 3 * P);
      assert.equal(b.seqLen, P);
      for (let r = 0; r < b.batch; r++) {
        const i = b.indices[r];
        assert.equal(b.inputs[r * P], i, 'the pixels of example i');
        assert.equal(b.labels[r], ds.labels[i]);
        seen.push(i);
      }
    }
    assert.equal(new Set(seen).size, 9, 'no example twice in an epoch');
    epochs.push(seen);
  }
  assert.notDeepEqual(epochs[0], epochs[1]);
  assert.deepEqual(new PixelBatcher(ds, { batch: 3, seed: 1 }).batchAt(4), pb.batchAt(4));
  const ordered = new PixelBatcher(ds, { batch: 4, shuffle: false });
  assert.equal(ordered.batchesPerEpoch, 3);
  assert.deepEqual([...ordered.batchAt(2).indices], [8, 9]);
  assert.throws(() => new PixelBatcher(ds, { batch: 11 }), /make no full batch/);
});

test('Fashion-MNIST: the real Debian files (dataset-fashion-mnist)', (t) => {
  const f = fashionMnistFiles('test');
  const all = [f.images, f.labels, fashionMnistFiles('train').images, fashionMnistFiles('train').labels];
  const missing = all.filter((p) => !fs.existsSync(p));
  if (missing.length > 0) {
    if (process.env['MAMBA_TS_REQUIRE_FMNIST'] === '1') assert.fail(`MAMBA_TS_REQUIRE_FMNIST=1 but missing: ${missing.join(', ')} (apt-get install dataset-fashion-mnist)`);
    t.skip(`Fashion-MNIST not installed (missing ${missing[0]}); apt-get install dataset-fashion-mnist, or set MAMBA_TS_FMNIST_DIR`);
    return;
  }
  const test10k = loadFashionMnist('test');
  assert.deepEqual([test10k.n, test10k.rows, test10k.cols], [10000, 28, 28]);
  assert.equal(test10k.images.length, 10000 * 784);
  const perClass = new Array(10).fill(0);
  for (const l of test10k.labels) perClass[l]++;
  assert.deepEqual(perClass, new Array(10).fill(1000), 'the test set is balanced: 1000 per class');
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of test10k.images) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  assert.deepEqual([lo, hi], [0, 1]);

  // training pixels: 60000 × 28 × 28; their statistics are the normalization constants
  const raw = readIdxFile(fashionMnistFiles('train').images, IDX_IMAGES_MAGIC);
  assert.deepEqual(raw.dims, [60000, 28, 28]);
  let s = 0;
  let s2 = 0;
  for (const v of raw.data) {
    s += v / 255;
    s2 += (v / 255) ** 2;
  }
  const mean = s / raw.data.length;
  const std = Math.sqrt(s2 / raw.data.length - mean * mean);
  assert.ok(Math.abs(mean - FASHION_MNIST_MEAN) < 1e-3, `mean ${mean}`);
  assert.ok(Math.abs(std - FASHION_MNIST_STD) < 1e-3, `std ${std}`);
  const some = loadFashionMnist('train', { limit: 256, subsetSeed: 0 });
  assert.equal(some.n, 256);
  const batch = new PixelBatcher(some, { batch: 32, seed: 0 }).batchAt(0);
  assert.equal(batch.inputs.length, 32 * 784);
  assert.equal(batch.seqLen, 784);
});
