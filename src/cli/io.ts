/** Where the CLI writes, its TTY-only progress line, atomic file writes and number formatting. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CliError } from './args.js';

export interface OutStream {
  write(chunk: string): unknown;
  /** progress/spinner output is only drawn on a terminal */
  isTTY?: boolean;
}

export interface CliIO {
  stdout: OutStream;
  stderr: OutStream;
  /** aborting it stops a running generation (as SIGINT does in the bin) */
  signal?: AbortSignal;
  /** install a SIGINT handler around generation (the bin does; in-process callers usually do not) */
  handleSigint?: boolean;
}

export interface Progress {
  /** clear the line (idempotent) */
  done(): void;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * A spinner line `⠋ <label> 1.2s` on `stream`, redrawn every 100 ms, cleared by `done()`. Nothing at all
 * is written unless the stream is a TTY, so piped/redirected output stays clean. (Synchronous work
 * blocks the redraw; the line still tells what is happening.)
 */
export function startProgress(stream: OutStream, label: string): Progress {
  if (!stream.isTTY) return { done() {} };
  const t0 = performance.now();
  let frame = 0;
  let active = true;
  const draw = (): void => {
    stream.write(`\r\x1b[K${FRAMES[frame++ % FRAMES.length]} ${label} ${((performance.now() - t0) / 1000).toFixed(1)}s`);
  };
  draw();
  const timer = setInterval(draw, 100);
  timer.unref?.();
  return {
    done() {
      if (!active) return;
      active = false;
      clearInterval(timer);
      stream.write('\r\x1b[K');
    },
  };
}

/** Write `data` to `file` atomically: a temporary file in the same folder, then rename over the target. */
export function writeFileAtomic(file: string, data: Uint8Array, what: string): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`);
  try {
    fs.writeFileSync(tmp, data, { flag: 'wx' });
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* the temporary file was never created, or is already gone */
    }
    throw new CliError(`cannot write ${what} ${file}: ${systemMessage(e)}`);
  }
}

/** Read a whole file, turning fs errors into a CliError that names the option and the path. */
export function readFileFor(file: string, what: string): Buffer {
  try {
    return file === '-' ? fs.readFileSync(0) : fs.readFileSync(file);
  } catch (e) {
    throw new CliError(`cannot read ${what} ${file}: ${systemMessage(e)}`);
  }
}

/** "no such file or directory" rather than "ENOENT: no such file or directory, open 'x'". */
export function systemMessage(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (typeof err?.code === 'string' && typeof err.message === 'string') {
    const m = /^[A-Z]+: (.*?)(, \w+ '.*')?$/.exec(err.message);
    return m ? `${m[1]} (${err.code})` : err.message;
  }
  return String((e as Error)?.message ?? e);
}

export { formatBytes } from '../format.js';

export function formatSeconds(ms: number): string {
  const s = ms / 1000;
  return s < 1 ? s.toFixed(3) : s.toFixed(2);
}
