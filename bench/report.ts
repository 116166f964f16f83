/**
 * Shared helpers of the benchmark scripts: timing statistics, GC between repetitions, where and on what
 * a run happened (machine, Node, commit, exact command, load average), tables (markdown and plain text)
 * and the atomic rewrite of one marked section of BENCHMARKS.md.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

// ------------------------------------------------------------------------------------------------
// Timing

/** Milliseconds of the timed repetitions (warm-up excluded) and their median. */
export interface Timed {
  ms: number[];
  medianMs: number;
}

/** CPU time of the process, all threads (ms) */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Interleaved A/B timing of synchronous work: one warm-up call of `run` per variant, then `reps` rounds over them, the
 * order reversed every other round (so drift falls on each variant alike); each call's wall and CPU ms (all threads)
 * pushed to `wall` / `cpu` under `key(v)` (lists made where missing). `between` runs after each round (e.g. to evict caches).
 */
export function interleaved<V>(
  variants: readonly V[],
  reps: number,
  run: (v: V) => void,
  out: { wall: Map<string, number[]>; cpu: Map<string, number[]> },
  key: (v: V) => string = String,
  between?: () => void,
): void {
  for (const v of variants) {
    for (const m of [out.wall, out.cpu]) if (!m.has(key(v))) m.set(key(v), []);
    run(v);
  }
  for (let r = 0; r < reps; r++) {
    for (const v of r % 2 ? [...variants].reverse() : variants) {
      const c0 = cpuMs(), t0 = performance.now();
      run(v);
      const t1 = performance.now(), c1 = cpuMs();
      out.wall.get(key(v))!.push(t1 - t0);
      out.cpu.get(key(v))!.push(c1 - c0);
    }
    between?.();
  }
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function timed(ms: number[]): Timed {
  return { ms, medianMs: median(ms) };
}

const gc: (() => void) | undefined = (globalThis as { gc?: () => void }).gc;

/** true when the process runs with `--expose-gc` */
export const hasGc = gc !== undefined;

/**
 * Full GC, outside any timing. Large ArrayBuffers are released only after a few GC cycles separated by
 * turns of the event loop (V8 frees backing stores off-thread), so yield between cycles.
 */
export async function collect(): Promise<void> {
  if (!gc) return;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ------------------------------------------------------------------------------------------------
// Where the run happened

export interface MachineInfo {
  cpu: string;
  cores: number;
  totalMemory: number;
  platform: string;
  release: string;
  arch: string;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() || 'unknown CPU',
    cores: cpus.length,
    totalMemory: os.totalmem(),
    platform: os.platform(),
    release: os.release(),
    arch: os.arch(),
  };
}

export function machineLine(m: MachineInfo): string {
  return `${m.cpu}, ${m.cores} cores, ${(m.totalMemory / 1024 ** 3).toFixed(1)} GiB, ${m.platform} ${m.release} (${m.arch})`;
}

/** os.loadavg() (1, 5, 15 min) as "a / b / c" */
export const loadLine = (l: readonly number[]): string => l.map((x) => x.toFixed(2)).join(' / ');

/** Repository root, for a script compiled to dist/bench/ (pass `import.meta.url`). */
export function repoRoot(moduleUrl: string): string {
  return path.resolve(path.dirname(fileURLToPath(moduleUrl)), '..', '..');
}

/** Short commit hash, with a note when tracked files differ from it; 'unknown' outside a git checkout. */
export function gitCommit(root: string): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    let dirty = '';
    try {
      const st = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
      if (st) dirty = ' (with uncommitted changes)';
    } catch {
      /* ignore */
    }
    return sha + dirty;
  } catch {
    return 'unknown';
  }
}

/**
 * The command that started this run, as the user typed it: `npm run <script> -- args (= what npm ran)`
 * under `npm run <script>`, else `node <flags> <script> <args>`.
 */
export function commandLine(moduleUrl: string, npmScript: string, npmPrefix: string): string {
  const root = repoRoot(moduleUrl);
  const file = fileURLToPath(moduleUrl);
  const script = path.relative(root, file) || file;
  // (an argument with a space, e.g. --llama-args=-fa 0, quoted so that the line can be pasted into a shell)
  const args = process.argv.slice(2).map((a) => (/\s/.test(a) ? `'${a}'` : a));
  const direct = ['node', ...process.execArgv, script, ...args].join(' ');
  if (process.env.npm_lifecycle_event === npmScript) {
    return `npm run ${npmScript}${args.length ? ` -- ${args.join(' ')}` : ''}  (= ${npmPrefix}${direct})`;
  }
  return direct;
}

// ------------------------------------------------------------------------------------------------
// Formatting

export type Align = 'l' | 'r';

export interface Table {
  head: string[];
  rows: string[][];
  align: Align[];
}

/** GitHub markdown table (pipes in cells are escaped) */
export function markdownTable(t: Table): string {
  const esc = (c: string): string => c.replace(/\|/g, '\\|');
  const lines = [`| ${t.head.map(esc).join(' | ')} |`, `|${t.align.map((a) => (a === 'r' ? '---:' : ':---')).join('|')}|`];
  for (const r of t.rows) lines.push(`| ${r.map(esc).join(' | ')} |`);
  return lines.join('\n');
}

/** Plain-text table with aligned columns (for the terminal); markdown backticks are dropped. */
export function textTable(t: Table): string {
  const plain = (c: string): string => c.replace(/`/g, '');
  const head = t.head.map(plain);
  const rows = t.rows.map((r) => r.map(plain));
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]): string =>
    r
      .map((c, i) => (t.align[i] === 'r' ? (c ?? '').padStart(w[i]) : (c ?? '').padEnd(w[i])))
      .join('  ')
      .trimEnd();
  return [fmt(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(fmt)].join('\n');
}

export const MiB = 1024 * 1024;
/** 1,234.5 (one decimal, thousands separated); '—' for null/undefined */
export const fmt1 = (x: number | null | undefined): string => (x === null || x === undefined ? '—' : x.toLocaleString('en-US', { maximumFractionDigits: 1, minimumFractionDigits: 1 }));
export const fmtMiB = (b: number): string => `${(b / MiB).toFixed(1)} MiB`;
export const fmtMs = (ms: number): string => (ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(0)} ms`);
export const msList = (t: Timed): string => t.ms.map((m) => m.toFixed(0)).join(', ');

// ------------------------------------------------------------------------------------------------
// BENCHMARKS.md

/**
 * Replace the text between `start` and `end` (markers included) in `file` with `section`, atomically
 * (write a temporary file next to it, then rename). When the markers are missing the block is appended
 * under `fallbackHeading`; when the file is missing it is created from `headerIfNew`. Returns the path.
 */
export function writeMarkedSection(
  file: string,
  start: string,
  end: string,
  section: string,
  opts: { headerIfNew: string; fallbackHeading: string },
): string {
  const block = `${start}\n${section.replace(/\s*$/, '')}\n${end}`;
  let text: string;
  if (fs.existsSync(file)) {
    const old = fs.readFileSync(file, 'utf8');
    const a = old.indexOf(start);
    const b = old.indexOf(end, a + start.length);
    if (a >= 0 && b > a) text = old.slice(0, a) + block + old.slice(b + end.length);
    else text = `${old.replace(/\s*$/, '')}\n\n${opts.fallbackHeading}\n\n${block}\n`;
  } else {
    text = `${opts.headerIfNew.replace(/\s*$/, '')}\n\n${opts.fallbackHeading}\n\n${block}\n`;
  }
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  return file;
}
