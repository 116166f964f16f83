/**
 * Safetensors on Node: `SafetensorsFile.open(path)` (header validated up front, each tensor read from
 * disk when asked for) and `writeSafetensorsAtomic` (temp file in the same folder, fsync, rename over the
 * target, so the target is either the old file or the complete new one). The format itself — layout,
 * validation, in-memory reading (`fromBytes`), `encodeSafetensors` — is in `safetensors-format.ts`
 * (no I/O, browser-safe) and re-exported from here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  SafetensorsError,
  SafetensorsFile as SafetensorsBytes,
  encodeSafetensors,
  type ByteSource,
  type WritableTensor,
} from './safetensors-format.js';

// the format itself (parsing, validation, encoding) lives in safetensors-format.ts, which has no I/O
export * from './safetensors-format.js';

/** Reads ranges of a file into fresh buffers (aligned at offset 0), in pieces below the 2 GiB read limit. */
export function fileSource(filePath: string, size: number): ByteSource {
  return {
    length: size,
    read(offset, length) {
      const out = new Uint8Array(length);
      let fd: number | undefined;
      try {
        fd = fs.openSync(filePath, 'r');
        let done = 0;
        while (done < length) {
          const n = fs.readSync(fd, out, done, Math.min(length - done, 1 << 30), offset + done);
          if (n === 0) throw new SafetensorsError(`${filePath}: file ended early at byte ${offset + done} (was it truncated while open?)`);
          done += n;
        }
      } catch (e) {
        if (e instanceof SafetensorsError) throw e;
        throw new SafetensorsError(`${filePath}: cannot read bytes ${offset}..${offset + length}: ${(e as Error).message}`);
      } finally {
        if (fd !== undefined) fs.closeSync(fd);
      }
      return out;
    },
  };
}

/** A safetensors file or in-memory bytes: `SafetensorsFile.open(path)` reads a file on Node. */
export class SafetensorsFile extends SafetensorsBytes {
  /** Validate the header of `path`; tensor data is read when asked for. */
  static open(filePath: string): SafetensorsFile {
    let size: number;
    try {
      const st = fs.statSync(filePath);
      if (st.isDirectory()) throw new SafetensorsError(`${filePath}: expected a safetensors file, found a directory`);
      size = st.size;
    } catch (e) {
      if (e instanceof SafetensorsError) throw e;
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOENT') throw new SafetensorsError(`safetensors file not found: ${filePath}`);
      throw new SafetensorsError(`${filePath}: cannot read safetensors file: ${err.message}`);
    }
    return new SafetensorsFile(fileSource(filePath, size), filePath);
  }
}

/**
 * Encode and write atomically: a temp file `${path}.tmp-<pid>-<random>` next to the target is
 * written, fsynced and renamed over `path`. On any failure the temp file is removed and `path` is
 * untouched. Encoding errors are raised before anything is written.
 */
export function writeSafetensorsAtomic(
  filePath: string,
  tensors: Record<string, WritableTensor>,
  metadata?: Record<string, string>,
): void {
  const bytes = encodeSafetensors(tensors, metadata);
  writeChunksAtomic(filePath, [bytes], (m) => new SafetensorsError(`${filePath}: failed to write safetensors file: ${m}`));
}

/**
 * Write `chunks` one after the other to `filePath` atomically (temp file next to it, fsync, rename); on
 * failure the temp file is removed, `filePath` is untouched and `fail(message)` is thrown.
 */
export function writeChunksAtomic(filePath: string, chunks: Uint8Array[], fail: (message: string) => Error): void {
  const tmp = `${filePath}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx');
    for (const bytes of chunks) {
      let written = 0;
      while (written < bytes.byteLength) {
        written += fs.writeSync(fd, bytes, written, bytes.byteLength - written);
      }
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, filePath);
  } catch (e) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      /* best effort */
    }
    throw fail((e as Error).message);
  }
  // Make the rename durable (best effort; not supported on every platform).
  try {
    const dfd = fs.openSync(path.dirname(filePath), 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    /* ignore */
  }
}
