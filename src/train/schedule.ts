/**
 * Learning-rate schedules, as a pure function of the optimizer step (0-based: the LR used for the
 * update that is step `step + 1` of the optimizer), so a resumed run gets exactly the same LRs.
 *
 * `cosine` (the Mamba/GPT-3 recipe): linear warmup, then cosine decay from `maxLr` to `minLr`:
 *
 *     step < W:           lr = maxLr · (step + 1) / W               (reaches maxLr at step W − 1)
 *     W ≤ step < T:       lr = minLr + ½ (maxLr − minLr) (1 + cos(π (step − W) / (T − W)))
 *     step ≥ T:           lr = minLr
 *
 * with W = `warmupSteps` and T = `totalSteps`. `linear` decays linearly from maxLr at W to minLr at
 * T instead of along a cosine. `constant`: the same warmup, then `maxLr` for ever.
 */
import { MambaTsError } from '../errors.js';

export type ScheduleKind = 'cosine' | 'linear' | 'constant';

export interface ScheduleOptions {
  kind?: ScheduleKind;
  /** peak learning rate */
  maxLr: number;
  /** final learning rate (cosine/linear); default 0.1 · maxLr. Ignored by `constant`. */
  minLr?: number;
  /** warmup steps (default 0) */
  warmupSteps?: number;
  /** total optimizer steps (required by cosine/linear; must be ≥ warmupSteps) */
  totalSteps?: number;
}

export class ScheduleError extends MambaTsError {}

/** Validated schedule options with defaults filled in. */
export interface Schedule {
  kind: ScheduleKind;
  maxLr: number;
  minLr: number;
  warmupSteps: number;
  totalSteps: number;
  /** the learning rate for 0-based step `step` */
  at(step: number): number;
}

export function makeSchedule(opts: ScheduleOptions): Schedule {
  const kind = opts.kind ?? 'cosine';
  if (kind !== 'cosine' && kind !== 'linear' && kind !== 'constant') {
    throw new ScheduleError(`schedule: kind must be "cosine", "linear" or "constant", got ${JSON.stringify(kind)}`);
  }
  const { maxLr } = opts;
  if (typeof maxLr !== 'number' || !Number.isFinite(maxLr) || maxLr < 0) throw new ScheduleError(`schedule: maxLr must be a finite number >= 0, got ${maxLr}`);
  const minLr = opts.minLr ?? 0.1 * maxLr;
  if (!Number.isFinite(minLr) || minLr < 0 || minLr > maxLr) throw new ScheduleError(`schedule: minLr must be in [0, maxLr=${maxLr}], got ${minLr}`);
  const warmupSteps = opts.warmupSteps ?? 0;
  if (!Number.isSafeInteger(warmupSteps) || warmupSteps < 0) throw new ScheduleError(`schedule: warmupSteps must be an integer >= 0, got ${warmupSteps}`);
  const totalSteps = opts.totalSteps ?? Infinity;
  if (kind !== 'constant') {
    if (opts.totalSteps === undefined) throw new ScheduleError(`schedule: totalSteps is required for a ${kind} schedule`);
    if (!Number.isSafeInteger(totalSteps) || totalSteps < warmupSteps) {
      throw new ScheduleError(`schedule: totalSteps must be an integer >= warmupSteps (${warmupSteps}), got ${totalSteps}`);
    }
  }
  const s: Schedule = {
    kind,
    maxLr,
    minLr,
    warmupSteps,
    totalSteps,
    at: (step: number) => lrAt(s, step),
  };
  return s;
}

/** The learning rate of `sched` at 0-based optimizer step `step` (formulas in the file comment). */
export function lrAt(sched: Omit<Schedule, 'at'>, step: number): number {
  if (!Number.isSafeInteger(step) || step < 0) throw new ScheduleError(`schedule: step must be an integer >= 0, got ${step}`);
  const { kind, maxLr, minLr, warmupSteps: W, totalSteps: T } = sched;
  if (step < W) return (maxLr * (step + 1)) / W;
  if (kind === 'constant') return maxLr;
  if (step >= T) return minLr;
  const progress = (step - W) / (T - W);
  if (kind === 'linear') return maxLr + (minLr - maxLr) * progress;
  return minLr + 0.5 * (maxLr - minLr) * (1 + Math.cos(Math.PI * progress));
}
