/**
 * Shared by the CLI tests: run the CLI in this process (`run(argv, io)`, what most tests need) or as a child
 * process (only for what needs one: signals, the process's own exit code, the bin file, stdin), and a small
 * tokenizer for the tiny model.
 */
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/cli/main.js';
import { FIXTURES, ROOT } from '../helpers.js';

/** the compiled CLI: dist/test/cli → dist/src/cli/main.js */
export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** what a CLI run could leave behind in this process */
function globalState(): string {
  const listeners = (['SIGINT', 'SIGTERM', 'exit', 'uncaughtException'] as const).map((e) => `${e}:${process.listenerCount(e)}`);
  return JSON.stringify({ cwd: process.cwd(), exitCode: process.exitCode ?? null, listeners });
}

/**
 * Run the CLI in this process (`run(argv, io)` of src/cli/main.ts) with string-collecting streams — as the bin
 * does, minus the process: no SIGINT handler, stdout and stderr are not terminals unless `stderrTTY`. Fails when
 * the run left global state behind (working folder, process.exitCode, signal or exit listeners).
 */
export async function runCli(args: string[], opts: { stderrTTY?: boolean; signal?: AbortSignal } = {}): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const before = globalState();
  const code = await run(args, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s), isTTY: opts.stderrTTY ?? false },
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  assert.equal(globalState(), before, `mamba-ts ${args.join(' ')} left global state behind`);
  return { code, signal: null, stdout, stderr };
}

/** Run the CLI as a child process (stdin given or closed, stdout/stderr piped). */
export function spawnCli(args: string[], opts: { input?: string; onStdout?: (chunk: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (c: string) => {
      stdout += c;
      opts.onStdout?.(c, child);
    });
    child.stderr.on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

/** Write a 512-token tokenizer derived from the BPE fixture (the tiny model's vocabulary size) into `dir`. */
export function writeSmallTokenizer(dir: string): string {
  const bpe = path.join(FIXTURES, 'tokenizer-bpe', 'tokenizer.json');
  const tk = JSON.parse(fs.readFileSync(bpe, 'utf8')) as { model: { vocab: Record<string, number>; merges: [string, string][] } };
  const vocab = Object.fromEntries(Object.entries(tk.model.vocab).filter(([, id]) => id < 512));
  tk.model.vocab = vocab;
  tk.model.merges = tk.model.merges.filter(([a, b]) => a in vocab && b in vocab && a + b in vocab);
  const file = path.join(dir, 'tokenizer.json');
  fs.writeFileSync(file, JSON.stringify(tk));
  return file;
}
