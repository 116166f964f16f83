/**
 * Text for training, from local files: `loadTextCorpus(root)` walks a folder (or reads one file), keeps
 * text files by extension, skips `node_modules`, `dist`, `.git` (and other hidden entries), files over a
 * size limit and binary files (a NUL byte, or not valid UTF-8), and tokenizes each file: byte-level (UTF-8
 * bytes, vocab 256) by default, or with an `encode` function (e.g. a tokenizer.json's).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataError } from './data-error.js';
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
