/**
 * The training loop: for each optimizer step, `accum` micro-batches (forward, backward with the loss
 * scaled by 1/accum), global-norm clipping, AdamW at the scheduled learning rate; periodic evaluation,
 * atomic checkpoints (HF-format weights + optimizer state + trainer state) and loss/accuracy curves.
 *
 * Data order is a pure function of (seed, step, micro-batch): the batch of step s is the same whether
 * the run was interrupted or not, so `resume` reproduces the uninterrupted loss curve exactly.
 */
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import type { TrainableModel } from './lm.js';
import { AdamW, clipGradNorm, zeroGrad } from './optim.js';
import { curvesSvg } from './curves.js';
import { ParallelGradients } from './parallel.js';
import { TrainError } from './errors.js';

export { TrainError };
import { makeSchedule, type ScheduleKind } from './schedule.js';

export interface StepResult {
  /** the micro-batch's loss (before scaling) */
  loss: number;
  /** tokens (or samples) processed, for throughput */
  tokens: number;
  /** scored predictions and how many were right (accuracy), when meaningful */
  count?: number;
  correct?: number;
}

export interface TrainHooks {
  /**
   * build micro-batch `micro` of step `step`, compute its loss and back-propagate `lossScale` × loss (gradients
   * add up over the micro-batches of a step)
   */
  microStep(step: number, micro: number, lossScale: number): StepResult | Promise<StepResult>;
  /** evaluation metrics (e.g. val_loss, val_acc); called every evalEvery steps and at the end */
  evaluate?(step: number): Record<string, number> | Promise<Record<string, number>>;
}

export interface TrainOptions {
  steps: number;
  lr: number;
  minLr?: number;
  warmup?: number;
  schedule?: ScheduleKind;
  weightDecay?: number;
  betas?: readonly [number, number];
  maxGradNorm?: number;
  accum?: number;
  evalEvery?: number;
  saveEvery?: number;
  /** checkpoint folder; nothing is written when absent */
  outDir?: string;
  /** continue from the checkpoint in outDir (its trainer state, optimizer state and weights) */
  resume?: boolean;
  /** recorded in trainer_state.json so a resumed run can refuse a different configuration */
  args?: Record<string, unknown>;
  /** per-parameter LR multiplier (e.g. SSM parameters at a lower LR) */
  lrScale?: (name: string) => number;
  noDecay?: (name: string) => boolean;
  /** called after each step (progress bars) */
  onStep?(info: StepInfo): void;
  /** called after each evaluation */
  onEval?(step: number, metrics: Record<string, number>): void;
  /** extra files for the checkpoint folder (e.g. tokenizer.json) */
  extraFiles?: Record<string, string | Uint8Array>;
  /** title of the curves plot */
  title?: string;
  /**
   * data-parallel worker threads (> 1): each rebuilds the job from `args` (which must then be the job's
   * JobArgs) and computes the gradients of its share of the micro-batches
   */
  threads?: number;
  /** stop after this many seconds (checkpointing there when outDir is set); `--resume` continues */
  timeLimitSeconds?: number;
  /**
   * stop when aborted (Ctrl-C): the step under way is finished and saved (when outDir is set), then
   * `train` returns with `stopped: 'interrupted'`. The loop yields to the event loop after every step,
   * so a signal handler gets to run.
   */
  signal?: AbortSignal;
  /** called after each checkpoint is written: `why` it was saved then */
  onSave?(step: number, why: SaveReason): void;
}

/** 'periodic' (saveEvery), 'final' (the last step), 'time-limit', 'interrupted' (the signal) */
export type SaveReason = 'periodic' | 'final' | 'time-limit' | 'interrupted';

export interface StepInfo {
  step: number;
  steps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  seconds: number;
  accuracy?: number;
}

export interface History {
  step: number[];
  loss: number[];
  lr: number[];
  grad_norm: number[];
  accuracy: number[];
  eval_step: number[];
  eval: Record<string, number[]>;
  /** seconds spent in training steps (sum over the run, including before a resume) */
  train_seconds: number;
  tokens: number;
}

export interface TrainResult {
  /** false when the time limit or the signal stopped the run early */
  completed: boolean;
  /** why the loop ended: every step done (or none to do), the time limit, the signal */
  stopped: 'done' | 'time-limit' | 'interrupted';
  /** optimizer steps done in all (including before a resume) */
  step: number;
  history: History;
  finalMetrics: Record<string, number>;
  tokensPerSecond: number;
}

function emptyHistory(): History {
  return { step: [], loss: [], lr: [], grad_norm: [], accuracy: [], eval_step: [], eval: {}, train_seconds: 0, tokens: 0 };
}

export async function train(model: TrainableModel, hooks: TrainHooks, opts: TrainOptions): Promise<TrainResult> {
  if (!Number.isInteger(opts.steps) || opts.steps < 1) throw new TrainError(`train: steps must be a positive integer, got ${opts.steps}`);
  const accum = opts.accum ?? 1;
  if (!Number.isInteger(accum) || accum < 1) throw new TrainError(`train: accum must be a positive integer, got ${accum}`);
  const params = [...model.params.values()];
  const opt = new AdamW(params, {
    lr: opts.lr,
    betas: opts.betas ?? [0.9, 0.95],
    weightDecay: opts.weightDecay ?? 0.1,
    ...(opts.noDecay ? { noDecay: opts.noDecay } : {}),
    ...(opts.lrScale ? { lrScale: opts.lrScale } : {}),
  });
  const sched = makeSchedule({
    kind: opts.schedule ?? 'cosine',
    maxLr: opts.lr,
    minLr: opts.minLr ?? opts.lr * 0.1,
    warmupSteps: Math.min(opts.warmup ?? 0, opts.steps),
    totalSteps: opts.steps,
  });
  let history = emptyHistory();
  let start = 0;
  if (opts.resume) {
    if (!opts.outDir) throw new TrainError('train: resume needs the checkpoint folder (outDir)');
    const ck = loadCheckpoint(opts.outDir);
    for (const [name, p] of model.params) {
      const t = ck.weights[name];
      if (!t) throw new TrainError(`resume: ${opts.outDir}/model.safetensors has no tensor "${name}"`);
      if (t.data.length !== p.data.length) throw new TrainError(`resume: tensor "${name}" has ${t.data.length} values in the checkpoint, the model has ${p.data.length}`);
      p.data.set(t.data);
      p.markUpdated?.();
    }
    if (!ck.optimizer) throw new TrainError(`resume: ${opts.outDir} has no optimizer.safetensors (was it saved by a training run?)`);
    opt.importState(ck.optimizer);
    const ts = ck.trainerState as { step?: number; history?: History; args?: Record<string, unknown> };
    if (typeof ts.step !== 'number') throw new TrainError(`resume: ${opts.outDir}/trainer_state.json has no "step"`);
    if (opts.args && ts.args) {
      for (const key of ['task', 'preset', 'seed', 'batch', 'seq_len', 'accum']) {
        if (key in opts.args && key in ts.args && JSON.stringify(opts.args[key]) !== JSON.stringify(ts.args[key])) {
          throw new TrainError(`resume: --${key.replace('_', '-')} is ${JSON.stringify(opts.args[key])} but the checkpoint was trained with ${JSON.stringify(ts.args[key])}`);
        }
      }
    }
    start = ts.step;
    history = ts.history ?? emptyHistory();
  }

  const save = (step: number, metrics: Record<string, number>, why: SaveReason): void => {
    if (!opts.outDir) return;
    saveCheckpoint(opts.outDir, {
      weights: [...model.params.values()],
      config: model.configJson(),
      ...(model.configText ? { configText: model.configText() } : {}),
      optimizer: opt.exportState(),
      trainerState: { step, history, args: opts.args ?? {}, metrics, saved_at: new Date().toISOString() },
      extraFiles: { ...opts.extraFiles, 'curves.svg': new TextEncoder().encode(curvesSvg(history, opts.title ?? 'training')) },
    });
    opts.onSave?.(step, why);
  };

  let lastMetrics: Record<string, number> = {};
  const runEval = async (step: number): Promise<void> => {
    if (!hooks.evaluate) return;
    lastMetrics = await hooks.evaluate(step);
    history.eval_step.push(step);
    for (const [k, v] of Object.entries(lastMetrics)) {
      history.eval[k] ??= [];
      const arr = history.eval[k];
      while (arr.length < history.eval_step.length - 1) arr.push(NaN);
      arr.push(v);
    }
    opts.onEval?.(step, lastMetrics);
  };

  const threads = opts.threads ?? 1;
  const pg = threads > 1 ? await ParallelGradients.start(model.params, opts.args, Math.min(threads, accum)) : null;
  pg?.attachOptimizer(opt);
  try {
  let tokensThisRun = 0;
  let secondsThisRun = 0;
  const began = performance.now();
  let stopped: TrainResult['stopped'] = 'done';
  let at = start;
  for (let step = start; step < opts.steps; step++) {
    const t0 = performance.now();
    zeroGrad(params, { setToNull: true });
    let loss = 0;
    let tokens = 0;
    let count = 0;
    let correct = 0;
    let summedNorm = NaN;
    if (pg) ({ loss, tokens, count, correct, gradNorm: summedNorm } = await pg.step(step, accum));
    else
      for (let m = 0; m < accum; m++) {
        const r = await hooks.microStep(step, m, 1 / accum);
        loss += r.loss / accum;
        tokens += r.tokens;
        count += r.count ?? 0;
        correct += r.correct ?? 0;
      }
    if (!Number.isFinite(loss)) throw new TrainError(`train: loss became ${loss} at step ${step + 1}; lower the learning rate (--lr) or check the data`);
    const lr = sched.at(step);
    let gradNorm: number;
    if (pg) {
      // the workers clip and update their slices of the parameters
      gradNorm = summedNorm;
      await pg.update(lr, gradNorm, opts.maxGradNorm ?? 1.0);
    } else {
      gradNorm = clipGradNorm(params, opts.maxGradNorm ?? 1.0);
      opt.step(lr);
    }
    for (const p of params) p.markUpdated?.();
    const seconds = (performance.now() - t0) / 1000;
    secondsThisRun += seconds;
    tokensThisRun += tokens;
    history.step.push(step + 1);
    history.loss.push(loss);
    history.lr.push(lr);
    history.grad_norm.push(gradNorm);
    const accuracy = count > 0 ? correct / count : NaN;
    history.accuracy.push(accuracy);
    history.train_seconds += seconds;
    history.tokens += tokens;
    opts.onStep?.({ step: step + 1, steps: opts.steps, loss, lr, gradNorm, tokens, seconds, ...(count > 0 ? { accuracy } : {}) });
    at = step + 1;
    // let signal handlers (and timers) run: the steps themselves never return to the event loop
    await new Promise<void>((resolve) => setImmediate(resolve));
    const done = step + 1 === opts.steps;
    if (!done && opts.signal?.aborted) {
      save(step + 1, lastMetrics, 'interrupted');
      stopped = 'interrupted';
      break;
    }
    const evalNow = done || (opts.evalEvery !== undefined && (step + 1) % opts.evalEvery === 0);
    if (evalNow) await runEval(step + 1);
    const outOfTime = !done && opts.timeLimitSeconds !== undefined && (performance.now() - began) / 1000 >= opts.timeLimitSeconds;
    if (done || outOfTime || (opts.saveEvery !== undefined && (step + 1) % opts.saveEvery === 0)) save(step + 1, lastMetrics, done ? 'final' : outOfTime ? 'time-limit' : 'periodic');
    if (outOfTime) {
      stopped = 'time-limit';
      break;
    }
  }
  if (start >= opts.steps && hooks.evaluate) await runEval(start);
  return { completed: stopped === 'done', stopped, step: at, history, finalMetrics: lastMetrics, tokensPerSecond: secondsThisRun > 0 ? tokensThisRun / secondsThisRun : 0 };
  } finally {
    await pg?.close();
  }
}
