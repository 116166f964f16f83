/**
 * Text for training, from local files. `loadTextCorpus(root)` walks a folder (or reads one file) and
 * takes every file whose content is UTF-8 text, whatever its name: a file is binary, and skipped, when
 * its first `sniffBytes` hold a NUL byte or are not valid UTF-8. `extensions` narrows the walk to some
 * extensions (`--data-ext`). `node_modules`, `dist`, `.git` and other hidden entries are never entered.
 *
 * Files are read in pieces of `chunkBytes`, never whole: byte-level tokens (the UTF-8 bytes, vocab 256)
 * are the bytes themselves; with an `encode` function (e.g. a tokenizer.json's) the decoded text is
 * encoded a piece at a time, each piece ending at a line break, so no token straddles two pieces unless a
 * line is longer than a few pieces. Reading stops at `maxTotalBytes`: the file that reaches it is taken
 * in part (cut at a character boundary), later files are not read. A gzip file (`.gz`, dictd's `.dict.dz`) is
 * read as the text inside it (decompressed whole, within the byte budget). `corpusSummary` says, in one line,
 * what was used and what was skipped, and why.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { DataError } from './data-error.js';
import { formatBytes } from '../format.js';

export const DEFAULT_SKIP_DIRS: readonly string[] = ['node_modules', 'dist', '.git'];
/** reading stops after this many bytes unless told otherwise (tokens take 4 bytes each in memory) */
export const DEFAULT_MAX_TOTAL_BYTES = 64 << 20;

export interface TextCorpusOptions {
  /**
   * take only files with these extensions (with or without the dot, any case), e.g. ['.md', '.ts'];
   * default: every file whose content is text. A root that is a file is taken whatever its extension.
   */
  extensions?: readonly string[] | null;
  /** directory names never entered (default `DEFAULT_SKIP_DIRS`) */
  skipDirs?: readonly string[];
  /** also skip files and folders whose name starts with '.' (default true) */
  skipHidden?: boolean;
  /** stop reading once this many bytes were taken (default `DEFAULT_MAX_TOTAL_BYTES`) */
  maxTotalBytes?: number;
  /** bytes read at a time (default 1 MiB) */
  chunkBytes?: number;
  /** a file whose first this-many bytes (at most chunkBytes) hold a NUL or invalid UTF-8 is binary (default 64 KiB) */
  sniffBytes?: number;
  /** text → token ids; default: byte-level (the UTF-8 bytes, vocab 256) */
  encode?: (text: string) => ArrayLike<number>;
  /** vocabulary size of `encode` (ids are checked against it); default 256 when byte-level */
  vocabSize?: number;
}

export interface TextFile {
  /** path relative to the corpus root ('' … the root itself when it is a file) */
  path: string;
  /** bytes read (less than the file's size when the byte budget cut it) */
  bytes: number;
  tokens: Int32Array;
}

/** why a file was left out: 'extension' (not in `extensions`), 'overBudget' (not read: the byte budget was spent) */
export type SkipReason = 'extension' | 'binary' | 'empty' | 'unreadable' | 'overBudget';
const SKIP_REASONS: readonly SkipReason[] = ['extension', 'binary', 'empty', 'unreadable', 'overBudget'];
/** how many file names `TextCorpus.skippedExamples` keeps per reason */
const EXAMPLES = 3;

export interface TextCorpus {
  root: string;
  files: TextFile[];
  vocabSize: number;
  totalTokens: number;
  totalBytes: number;
  /** files left out, by reason */
  skipped: Record<SkipReason, number>;
  /** the first few of them (paths relative to the root) */
  skippedExamples: Record<SkipReason, string[]>;
  /** the file the byte budget cut, if any */
  truncated: string | null;
  /** the byte budget (`maxTotalBytes`) */
  maxTotalBytes: number;
  /** the extension filter (normalised: '.md'), null when none */
  extensions: string[] | null;
  /** tokens are the UTF-8 bytes */
  byteLevel: boolean;
}

/** UTF-8 bytes as tokens (vocab 256). */
export function byteEncode(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** Inverse of `byteEncode` (invalid sequences become U+FFFD). */
export function byteDecode(ids: ArrayLike<number>): string {
  return new TextDecoder().decode(Uint8Array.from(ids as ArrayLike<number>));
}

/** '.MD' / 'md' → '.md'; '' and '.' are refused */
export function normalizeExtension(ext: string): string {
  const e = ext.trim().toLowerCase();
  const dotted = e.startsWith('.') ? e : `.${e}`;
  if (dotted === '.' || /[/\\\s]/.test(dotted)) throw new DataError(`text corpus: "${ext}" is not a file extension (expected e.g. .md or md)`);
  return dotted;
}

/**
 * The decompressed content of an open file that starts with the gzip magic (1f 8b), else null. Decompressed whole,
 * so a file holding more than `budget` bytes is a DataError saying so (rather than an unbounded buffer).
 */
function gunzipped(fd: number, file: string, budget: number): Uint8Array | null {
  const magic = new Uint8Array(2);
  if (fs.readSync(fd, magic, 0, 2, 0) < 2 || magic[0] !== 0x1f || magic[1] !== 0x8b) return null;
  const packed = fs.readFileSync(fd);
  try {
    return zlib.gunzipSync(packed, { maxOutputLength: Math.max(1, budget) });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') throw new DataError(`text corpus: ${file}: a gzip file holding more than the ${formatBytes(budget)} of text still allowed (--data-limit); raise the limit or decompress a part of it`);
    throw new DataError(`text corpus: ${file}: starts like gzip but does not decompress: ${(e as Error).message}`);
  }
}

/** Does `head` (the first bytes of a file) look binary: a NUL byte, or not UTF-8? `whole`: head is the entire file. */
export function looksBinary(head: Uint8Array, whole: boolean): boolean {
  if (head.indexOf(0) !== -1) return true;
  try {
    // streaming unless it is the whole file: a character cut at the end of `head` is not an error
    new TextDecoder('utf-8', { fatal: true }).decode(head, { stream: !whole });
    return false;
  } catch {
    return true;
  }
}

/** A growing Int32Array. */
class TokenBuffer {
  private buf: Int32Array;
  length = 0;
  constructor(capacity: number) {
    this.buf = new Int32Array(Math.max(16, capacity));
  }
  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Int32Array(Math.max(this.length + n, Math.ceil(this.buf.length * 1.5)));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
  push(values: ArrayLike<number>): void {
    this.reserve(values.length);
    this.buf.set(values, this.length);
    this.length += values.length;
  }
  truncate(n: number): void {
    this.length = n;
  }
  /** the tokens, trimmed (a view when nothing is left over) */
  finish(): Int32Array {
    return this.length === this.buf.length ? this.buf : this.buf.slice(0, this.length);
  }
}

interface Candidate {
  abs: string;
  rel: string;
  size: number;
}

/** keep at most `max` bytes of `b`, not ending inside a UTF-8 character */
function cutAtCharBoundary<T extends Uint8Array>(b: T, max: number): T {
  if (b.length <= max) return b;
  let n = max;
  // back up over continuation bytes to the start of the character that crosses the limit
  while (n > 0 && (b[n] & 0xc0) === 0x80) n--;
  return b.subarray(0, n) as T;
}

export function loadTextCorpus(root: string, opts: TextCorpusOptions = {}): TextCorpus {
  const extensions = opts.extensions ? [...new Set(opts.extensions.map(normalizeExtension))] : null;
  if (extensions && extensions.length === 0) throw new DataError('text corpus: the extension filter is empty');
  const skipDirs = new Set(opts.skipDirs ?? DEFAULT_SKIP_DIRS);
  const skipHidden = opts.skipHidden ?? true;
  const maxTotalBytes = opts.maxTotalBytes ?? DEFAULT_MAX_TOTAL_BYTES;
  const chunkBytes = opts.chunkBytes ?? 1 << 20;
  const sniffBytes = opts.sniffBytes ?? 1 << 16;
  for (const [k, v] of [['maxTotalBytes', maxTotalBytes], ['chunkBytes', chunkBytes], ['sniffBytes', sniffBytes]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new DataError(`text corpus: ${k} must be a positive integer, got ${v}`);
  }
  const encode = opts.encode ?? null;
  const vocabSize = opts.vocabSize ?? (encode ? undefined : 256);
  if (vocabSize !== undefined && (!Number.isSafeInteger(vocabSize) || vocabSize < 1)) {
    throw new DataError(`text corpus: vocabSize must be a positive integer, got ${vocabSize}`);
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(root);
  } catch (e) {
    throw new DataError(`text corpus: cannot read ${root}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or folder' : (e as Error).message}`);
  }
  const skipped = Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number>;
  const skippedExamples = Object.fromEntries(SKIP_REASONS.map((r) => [r, [] as string[]])) as Record<SkipReason, string[]>;
  const skip = (reason: SkipReason, rel: string): void => {
    skipped[reason]++;
    if (skippedExamples[reason].length < EXAMPLES) skippedExamples[reason].push(rel === '' ? path.basename(root) : rel);
  };

  // 1. the files to read, in path order
  const candidates: Candidate[] = [];
  if (st.isFile()) {
    candidates.push({ abs: root, rel: '', size: st.size });
  } else if (st.isDirectory()) {
    const walk = (dir: string, rel: string): void => {
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        skip('unreadable', rel === '' ? '.' : `${rel}/`);
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
        if (ent.isSymbolicLink()) {
          // follow links to files only (links to folders could loop)
          try {
            isFile = fs.statSync(abs).isFile();
          } catch {
            continue;
          }
        }
        if (!isFile) continue;
        if (extensions && !extensions.includes(path.extname(ent.name).toLowerCase())) {
          skip('extension', r);
          continue;
        }
        let size: number;
        try {
          size = fs.statSync(abs).size;
        } catch {
          skip('unreadable', r);
          continue;
        }
        candidates.push({ abs, rel: r, size });
      }
    };
    walk(root, '');
  } else {
    throw new DataError(`text corpus: ${root} is neither a file nor a folder`);
  }

  // 2. read them in pieces, into one token buffer
  const expected = candidates.reduce((s, c) => s + c.size, 0);
  const out = new TokenBuffer(encode ? 1 << 16 : Math.min(expected, maxTotalBytes));
  const spans: Array<{ rel: string; bytes: number; start: number; end: number }> = [];
  const chunk = new Uint8Array(chunkBytes);
  const sniff = Math.min(sniffBytes, chunkBytes);
  let totalBytes = 0;
  let truncated: string | null = null;
  /** the budget is spent (a file was cut): later files are not read */
  let exhausted = false;
  let maxId = -1;

  const checkIds = (ids: ArrayLike<number>, abs: string, offset: number): void => {
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i];
      if (!Number.isInteger(t) || t < 0 || (vocabSize !== undefined && t >= vocabSize)) {
        throw new DataError(`text corpus: ${abs}: encode produced token id ${t} at ${offset + i}, expected 0 … ${vocabSize === undefined ? '' : vocabSize - 1}`);
      }
      if (t > maxId) maxId = t;
    }
  };

  for (const c of candidates) {
    if (exhausted || totalBytes >= maxTotalBytes) {
      skip('overBudget', c.rel);
      continue;
    }
    if (c.size === 0) {
      skip('empty', c.rel);
      continue;
    }
    let fd: number;
    try {
      fd = fs.openSync(c.abs, 'r');
    } catch {
      skip('unreadable', c.rel);
      continue;
    }
    const start = out.length;
    let read = 0;
    let result: 'ok' | SkipReason = 'ok';
    const decoder = encode ? new TextDecoder('utf-8') : null;
    let pending = '';
    /** encode the complete lines of `pending` (all of it when `final`) */
    const flushText = (final: boolean): void => {
      if (!encode) return;
      let cut = pending.length;
      if (!final) {
        if (pending.length < chunkBytes) return;
        const nl = pending.lastIndexOf('\n');
        // a line longer than four pieces is cut where it stands (at a space if there is one)
        if (nl >= 0) cut = nl + 1;
        else if (pending.length < 4 * chunkBytes) return;
        else {
          const sp = pending.lastIndexOf(' ');
          if (sp > 0) cut = sp + 1;
        }
      }
      if (cut === 0) return;
      const ids = encode(pending.slice(0, cut));
      checkIds(ids, c.abs, out.length - start);
      out.push(ids);
      pending = pending.slice(cut);
    };
    try {
      // a gzip file (also dictd's .dict.dz) is read as the text inside it
      const inner = gunzipped(fd, c.abs, maxTotalBytes - totalBytes);
      let pos = 0;
      const size = inner ? inner.length : c.size;
      for (;;) {
        let n: number;
        if (inner) {
          n = Math.min(chunk.length, inner.length - pos);
          chunk.set(inner.subarray(pos, pos + n));
          pos += n;
        } else n = fs.readSync(fd, chunk, 0, chunk.length, null);
        if (n === 0) break;
        let bytes = chunk.subarray(0, n);
        if (read === 0 && looksBinary(bytes.subarray(0, sniff), n <= sniff && n === size)) {
          result = 'binary';
          break;
        }
        const room = maxTotalBytes - totalBytes - read;
        if (bytes.length > room) bytes = cutAtCharBoundary(bytes, room);
        read += bytes.length;
        if (decoder) {
          pending += decoder.decode(bytes, { stream: true });
          flushText(false);
        } else out.push(bytes);
        if (bytes.length < n) {
          exhausted = true;
          truncated = c.rel === '' ? path.basename(root) : c.rel;
          break;
        }
      }
      if (result === 'ok' && decoder) {
        pending += decoder.decode();
        flushText(true);
      }
    } catch (e) {
      if (e instanceof DataError) throw e;
      result = 'unreadable';
    } finally {
      fs.closeSync(fd);
    }
    if (result === 'ok' && read === 0 && truncated !== null) {
      truncated = null; // the budget ran out exactly at the start of this file
      result = 'overBudget';
    }
    if (result === 'ok' && out.length === start) result = 'empty';
    if (result !== 'ok') {
      out.truncate(start);
      skip(result, c.rel);
      continue;
    }
    totalBytes += read;
    spans.push({ rel: c.rel, bytes: read, start, end: out.length });
  }

  if (spans.length === 0) {
    const why = describeSkipped({ skipped, skippedExamples, extensions }) || 'no files at all';
    throw new DataError(
      `text corpus: no usable text in ${root}: expected UTF-8 text files${extensions ? ` with extension ${extensions.join(' ')}` : ''} ` +
        `(not entering ${[...skipDirs].join(', ')}${skipHidden ? ', hidden entries' : ''}); found ${why}`,
    );
  }
  const tokens = out.finish();
  const files = spans.map((s) => ({ path: s.rel, bytes: s.bytes, tokens: tokens.subarray(s.start, s.end) }));
  return { root, files, vocabSize: vocabSize ?? maxId + 1, totalTokens: tokens.length, totalBytes, skipped, skippedExamples, truncated, maxTotalBytes, extensions, byteLevel: !encode };
}

/** the names of the flags that set the corpus options, for `corpusSummary` */
export interface CorpusFlags {
  extensions: string;
  maxTotalBytes: string;
}
const CLI_FLAGS: CorpusFlags = { extensions: '--data-ext', maxTotalBytes: '--data-limit' };

const examples = (names: string[], count: number): string => ` (${names.join(', ')}${count > names.length ? ', …' : ''})`;

/** "2 binary (a.png, b.bin), 1 empty (c.txt)"; '' when nothing was skipped (files not read for the budget are left out) */
function describeSkipped(c: Pick<TextCorpus, 'skipped' | 'skippedExamples' | 'extensions'>, flags: CorpusFlags = CLI_FLAGS): string {
  const label: Record<Exclude<SkipReason, 'overBudget'>, string> = {
    extension: `not matching ${flags.extensions} ${(c.extensions ?? []).join(',')}`,
    binary: 'binary',
    empty: 'empty',
    unreadable: 'unreadable',
  };
  return (Object.keys(label) as Array<keyof typeof label>)
    .filter((r) => c.skipped[r] > 0)
    .map((r) => `${c.skipped[r]} ${label[r]}${examples(c.skippedExamples[r], c.skipped[r])}`)
    .join(', ');
}

/**
 * One line saying what was used and what was left out, and why:
 *
 *     data: 3 files, 2800064 bytes (2.67 MiB) from ./notes; skipped 1: 1 binary (image.bin)
 */
export function corpusSummary(c: TextCorpus, flags: CorpusFlags = CLI_FLAGS): string {
  const n = c.files.length;
  let line = `data: ${n} file${n === 1 ? '' : 's'}, ${c.totalBytes} bytes (${formatBytes(c.totalBytes)})${c.byteLevel ? '' : `, ${c.totalTokens} tokens`} from ${c.root}`;
  const skippedCount = SKIP_REASONS.filter((r) => r !== 'overBudget').reduce((s, r) => s + c.skipped[r], 0);
  if (skippedCount > 0) line += `; skipped ${skippedCount}: ${describeSkipped(c, flags)}`;
  if (c.truncated !== null || c.skipped.overBudget > 0) {
    const parts = [...(c.truncated !== null ? [`${c.truncated} read in part`] : []), ...(c.skipped.overBudget > 0 ? [`${c.skipped.overBudget} more file${c.skipped.overBudget === 1 ? '' : 's'} not read`] : [])];
    line += `; stopped at ${flags.maxTotalBytes} ${formatBytes(c.maxTotalBytes)}: ${parts.join(', ')}`;
  }
  return line;
}
