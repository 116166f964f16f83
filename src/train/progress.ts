/**
 * Training progress line:
 *
 *     [█████████░░░░░░░░░░░]  450/1000  45% | loss 2.3456 | lr 3.0e-4 | 12.3k tok/s | 1m05s < 1m20s
 *
 * (step/total, percent, loss, optional extra fields, throughput, elapsed < ETA). On a terminal the
 * line is redrawn in place (`\r` + clear-to-end), at most every `redrawMs`; otherwise (a pipe, a
 * log file, CI) a plain line is printed every `intervalMs` and at the last step, so logs stay
 * readable. `log()` prints a line (e.g. evaluation results) without breaking the bar.
 */

export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  /** terminal width; lines are cut to it on a TTY */
  columns?: number;
}

export interface ProgressInfo {
  step: number;
  total: number;
  loss?: number;
  /** tokens (or samples) per second */
  rate?: number;
  /** unit of `rate` (default 'tok/s') */
  rateUnit?: string;
  elapsedMs: number;
  /** null when unknown (no step done yet) */
  etaMs?: number | null;
  /** more fields, in order, e.g. { lr: '3.0e-4', acc: '97.5%' } */
  extra?: Record<string, string | number>;
}

/** 950 ms → "0.9s", 65 s → "1m05s", 3725 s → "1h02m", 2 days → "2d00h". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '--';
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.floor(s)}s`;
  const total = Math.floor(s);
  const d = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  const two = (n: number) => String(n).padStart(2, '0');
  if (d > 0) return `${d}d${two(h)}h`;
  if (h > 0) return `${h}h${two(m)}m`;
  return `${m}m${two(sec)}s`;
}

/** 950 → "950", 12345 → "12.3k", 4.2e6 → "4.20M"; small rates keep decimals ("3.47"). */
export function formatRate(x: number): string {
  if (!Number.isFinite(x)) return '--';
  const a = Math.abs(x);
  if (a >= 1e9) return `${(x / 1e9).toFixed(2)}G`;
  if (a >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${(x / 1e3).toFixed(1)}k`;
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/** A loss with 4 decimals (or exponent when tiny/huge), 'nan'/'inf' spelled out. */
export function formatLoss(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(3);
  return x.toFixed(4);
}

/** The progress line for `info` (pure: tested directly). `barWidth` 0 leaves the bar out. */
export function formatProgress(info: ProgressInfo, opts: { barWidth?: number; ascii?: boolean; formatCount?: (n: number) => string } = {}): string {
  const barWidth = opts.barWidth ?? 20;
  const total = Math.max(0, info.total);
  const step = Math.max(0, Math.min(info.step, total));
  const frac = total > 0 ? step / total : 0;
  const parts: string[] = [];
  const count = opts.formatCount ?? String;
  const w = count(total).length;
  let head = `${count(step).padStart(w)}/${count(total)} ${(frac * 100).toFixed(0).padStart(3)}%`;
  if (barWidth > 0) {
    const [full, empty] = opts.ascii ? ['#', '.'] : ['█', '░'];
    const filled = Math.floor(frac * barWidth + 1e-9);
    head = `[${full.repeat(filled)}${empty.repeat(barWidth - filled)}] ${head}`;
  }
  parts.push(head);
  if (info.loss !== undefined) parts.push(`loss ${formatLoss(info.loss)}`);
  for (const [k, v] of Object.entries(info.extra ?? {})) parts.push(`${k} ${v}`);
  if (info.rate !== undefined) parts.push(`${formatRate(info.rate)} ${info.rateUnit ?? 'tok/s'}`);
  const eta = info.etaMs === undefined || info.etaMs === null ? '--' : formatDuration(info.etaMs);
  parts.push(`${formatDuration(info.elapsedMs)} < ${step >= total && total > 0 ? '0.0s' : eta}`);
  return parts.join(' | ');
}

export interface ProgressBarOptions {
  total: number;
  /** steps already done before this run (resume): ETA and throughput count only this run's steps */
  startStep?: number;
  /** non-TTY: print a line at most this often (default 10 s) */
  intervalMs?: number;
  /** TTY: redraw at most this often (default 100 ms) */
  redrawMs?: number;
  /** see `formatProgress` */
  barWidth?: number;
  ascii?: boolean;
  rateUnit?: string;
  /** how step and total are written (default: as integers; downloads write bytes as "12.3 MB") */
  formatCount?: (n: number) => string;
  /** clock, for tests (default performance.now) */
  now?: () => number;
}

export interface ProgressUpdate {
  loss?: number;
  /** tokens (or samples) processed by this step; summed for the rate */
  tokens?: number;
  extra?: Record<string, string | number>;
}

export class ProgressBar {
  private readonly now: () => number;
  private readonly t0: number;
  private readonly startStep: number;
  private tokens = 0;
  private lastDraw = -Infinity;
  private lastLine = '';
  private drawn = false;
  private finished = false;

  constructor(
    private readonly stream: ProgressStream,
    private readonly opts: ProgressBarOptions,
  ) {
    this.now = opts.now ?? (() => performance.now());
    this.t0 = this.now();
    this.startStep = opts.startStep ?? 0;
  }

  /** The current line for `step` (also what `update` prints). */
  line(step: number, u: ProgressUpdate = {}): string {
    const elapsed = this.now() - this.t0;
    const done = step - this.startStep;
    const etaMs = done > 0 ? (elapsed / done) * Math.max(0, this.opts.total - step) : null;
    const info: ProgressInfo = {
      step,
      total: this.opts.total,
      elapsedMs: elapsed,
      etaMs,
      ...(u.loss !== undefined ? { loss: u.loss } : {}),
      ...(u.extra ? { extra: u.extra } : {}),
      ...(this.tokens > 0 && elapsed > 0 ? { rate: (this.tokens / elapsed) * 1000, rateUnit: this.opts.rateUnit ?? 'tok/s' } : {}),
    };
    return formatProgress(info, { barWidth: this.opts.barWidth ?? 20, ascii: this.opts.ascii ?? false, formatCount: this.opts.formatCount });
  }

  /** Report that `step` (1-based count of steps done) finished. */
  update(step: number, u: ProgressUpdate = {}): void {
    this.tokens += u.tokens ?? 0;
    const t = this.now();
    const last = step >= this.opts.total;
    const tty = !!this.stream.isTTY;
    const every = tty ? (this.opts.redrawMs ?? 100) : (this.opts.intervalMs ?? 10_000);
    const first = !this.drawn;
    if (!last && !first && t - this.lastDraw < every) return;
    this.lastDraw = t;
    this.drawn = true;
    let text = this.line(step, u);
    if (tty) {
      const cols = this.stream.columns;
      if (cols && cols > 10 && text.length > cols - 1) text = text.slice(0, cols - 1);
      this.stream.write(`\r\x1b[K${text}`);
      this.lastLine = text;
    } else this.stream.write(`${text}\n`);
  }

  /** Print a line of its own (e.g. eval results); on a TTY the bar is redrawn under it. */
  log(text: string): void {
    if (this.stream.isTTY && this.lastLine) this.stream.write(`\r\x1b[K${text}\n${this.lastLine}`);
    else this.stream.write(`${text}\n`);
  }

  /** End the bar: on a TTY, move to a fresh line (idempotent). */
  done(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.stream.isTTY && this.lastLine) this.stream.write('\n');
  }
}
