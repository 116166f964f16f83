/** Shared by the CLI tests: run the compiled CLI as a child process, and a small tokenizer for the tiny model. */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIXTURES, ROOT } from '../helpers.js';

/** the compiled CLI: dist/test/cli → dist/src/cli/main.js */
export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run the CLI as a child process (stdin given or closed, stdout/stderr piped). */
export function cli(args: string[], opts: { input?: string; onStdout?: (chunk: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<Result> {
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
