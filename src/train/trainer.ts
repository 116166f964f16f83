/**
 * The training loop: for each optimizer step, `accum` micro-batches (forward, backward with the loss
 * scaled by 1/accum), global-norm clipping, AdamW at the scheduled learning rate; periodic evaluation,
 * atomic checkpoints (HF-format weights + optimizer state + trainer state) and loss/accuracy curves.
 *
 * Data order is a pure function of (seed, step, micro-batch): the batch of step s is the same whether
 * the run was interrupted or not, so `resume` reproduces the uninterrupted loss curve exactly.
 *
 * A model whose parameters live on a GPU (`TrainableModel.deviceParams`, WebGPU) trains there: AdamW, clipping and
 * gradient accumulation run on the device (src/train/device-optim.ts), micro-steps return their loss (and count of
 * correct predictions) as device scalars that are summed there, and nothing is read back until the numbers are
 * logged — every `logEvery` steps, and before each evaluation and checkpoint — so the GPU runs one step while the
 * next is recorded. The history holds every step's numbers all the same.
 */
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import type { TrainableModel } from './lm.js';
import { AdamW, clipGradNorm, zeroGrad, type AdamWOptions } from './optim.js';
import { DeviceAdamW, readScalars } from './device-optim.js';
import * as ops from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { curvesSvg } from './curves.js';
import { ParallelGradients } from './parallel.js';
import { TrainError } from './errors.js';

export { TrainError };
import { makeSchedule, type ScheduleKind } from './schedule.js';

export interface StepResult {
  /** the micro-batch's loss (before scaling): a number, or a scalar tensor on the model's device (read when logged) */
  loss: number | Tensor;
  /** tokens (or samples) processed, for throughput */
  tokens: number;
  /** scored predictions and how many were right (accuracy), when meaningful; `correct` a number or, like `loss`, a device scalar */
  count?: number;
  correct?: number | Tensor;
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
  /** something the user should know that is not an error (e.g. a resume without optimizer moments) */
  onNotice?(message: string): void;
  /**
   * read the logged numbers (loss, gradient norm, accuracy) every this many steps (default: 1 on the host, 10 for
   * a model on a GPU, where a read waits for the device); `onStep` is called for those steps then. Evaluations and
   * checkpoints read them too. The history has every step either way.
   */
  logEvery?: number;
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
  const device = model.deviceParams ?? null;
  const threads = opts.threads ?? 1;
  if (device && threads > 1) throw new TrainError(`train: data-parallel worker threads (threads ${threads}) train on the CPU; a model on a GPU trains there with threads 1`);
  const logEvery = opts.logEvery ?? (device ? 10 : 1);
  if (!Number.isInteger(logEvery) || logEvery < 1) throw new TrainError(`train: logEvery must be a positive integer, got ${logEvery}`);
  const params = device ? [] : [...model.params.values()];
  const adamOpts: AdamWOptions = {
    lr: opts.lr,
    betas: opts.betas ?? [0.9, 0.95],
    weightDecay: opts.weightDecay ?? 0.1,
    ...(opts.noDecay ? { noDecay: opts.noDecay } : {}),
    ...(opts.lrScale ? { lrScale: opts.lrScale } : {}),
  };
  const dev = device ? new DeviceAdamW([...device.values()], adamOpts) : null;
  const opt = dev ?? new AdamW(params, adamOpts);
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
    const checked = (name: string, size: number): Float32Array => {
      const t = ck.weights[name];
      if (!t) throw new TrainError(`resume: ${opts.outDir}/model.safetensors has no tensor "${name}"`);
      if (t.data.length !== size) throw new TrainError(`resume: tensor "${name}" has ${t.data.length} values in the checkpoint, the model has ${size}`);
      return t.data;
    };
    if (device) for (const [name, p] of device) p.write(checked(name, p.size));
    else
      for (const [name, p] of model.params) {
        p.data.set(checked(name, p.data.length));
        p.markUpdated?.();
      }
    // weights shipped without their AdamW moments (e.g. to save space) still resume: the moments and the bias
    // correction restart from zero, the step and the learning-rate schedule continue — said, because the run is no
    // longer the one an uninterrupted run would have been
    if (ck.optimizer) opt.importState(ck.optimizer);
    else opts.onNotice?.(`resume: ${opts.outDir} has no optimizer.safetensors: the AdamW moments restart from zero (the weights, step and schedule continue)`);
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

  // the steps done but not logged yet: their numbers (device scalars among them) are read together
  const unlogged: Logged[] = [];
  const flushLog = async (): Promise<void> => {
    if (unlogged.length === 0) return;
    const batch = unlogged.splice(0);
    const onDevice: Tensor[] = [];
    for (const e of batch) for (const x of [e.loss, e.correct, e.norm]) if (x.dev) onDevice.push(x.dev);
    const read = dev ? await readScalars(dev.backend, onDevice) : await Promise.all(onDevice.map(async (t) => (await t.data())[0]));
    let k = 0;
    const value = (x: Sum): number => x.host + (x.dev ? read[k++] : 0);
    for (const e of batch) {
      const loss = value(e.loss);
      const correct = value(e.correct);
      const gradNorm = value(e.norm);
      if (!Number.isFinite(loss)) throw new TrainError(`train: loss became ${loss} at step ${e.step + 1}; lower the learning rate (--lr) or check the data`);
      history.step.push(e.step + 1);
      history.loss.push(loss);
      history.lr.push(e.lr);
      history.grad_norm.push(gradNorm);
      const accuracy = e.count > 0 ? correct / e.count : NaN;
      history.accuracy.push(accuracy);
      history.train_seconds += e.seconds;
      history.tokens += e.tokens;
      opts.onStep?.({ step: e.step + 1, steps: opts.steps, loss, lr: e.lr, gradNorm, tokens: e.tokens, seconds: e.seconds, ...(e.count > 0 ? { accuracy } : {}) });
    }
  };

  const save = async (step: number, metrics: Record<string, number>, why: SaveReason): Promise<void> => {
    if (!opts.outDir) return;
    await flushLog();
    const weights = dev ? await dev.readWeights() : [...model.params.values()];
    const optimizer = await opt.exportState();
    saveCheckpoint(opts.outDir, {
      weights,
      config: model.configJson(),
      ...(model.configText ? { configText: model.configText() } : {}),
      optimizer,
      trainerState: { step, history, args: opts.args ?? {}, metrics, saved_at: new Date().toISOString() },
      extraFiles: { ...opts.extraFiles, 'curves.svg': new TextEncoder().encode(curvesSvg(history, opts.title ?? 'training')) },
    });
    opts.onSave?.(step, why);
  };

  let lastMetrics: Record<string, number> = {};
  const runEval = async (step: number): Promise<void> => {
    if (!hooks.evaluate) return;
    await flushLog();
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

  const pg = threads > 1 ? await ParallelGradients.start(model.params, opts.args, Math.min(threads, accum)) : null;
  if (pg) pg.attachOptimizer(opt as AdamW);
  // device: the step submitted before this one (at most two steps are queued on the GPU)
  let inFlight: Promise<void> | null = null;
  try {
  let tokensThisRun = 0;
  let secondsThisRun = 0;
  const began = performance.now();
  let stopped: TrainResult['stopped'] = 'done';
  let at = start;
  for (let step = start; step < opts.steps; step++) {
    const t0 = performance.now();
    if (dev) dev.zeroGrad({ setToNull: true });
    else zeroGrad(params, { setToNull: true });
    const loss = new Sum();
    const correct = new Sum();
    let tokens = 0;
    let count = 0;
    let summedNorm = NaN;
    if (pg) {
      let l: number, c: number;
      ({ loss: l, tokens, count, correct: c, gradNorm: summedNorm } = await pg.step(step, accum));
      loss.host = l;
      correct.host = c;
    } else
      for (let m = 0; m < accum; m++) {
        const r = await hooks.microStep(step, m, 1 / accum);
        loss.add(r.loss, accum);
        tokens += r.tokens;
        count += r.count ?? 0;
        if (r.correct !== undefined) correct.add(r.correct);
      }
    // a loss known on the host is checked before the update (a device loss when it is logged)
    if (!loss.dev && !Number.isFinite(loss.host)) throw new TrainError(`train: loss became ${loss.host} at step ${step + 1}; lower the learning rate (--lr) or check the data`);
    const lr = sched.at(step);
    const norm = new Sum();
    if (pg) {
      // the workers clip and update their slices of the parameters
      norm.host = summedNorm;
      await pg.update(lr, summedNorm, opts.maxGradNorm ?? 1.0);
    } else if (dev) {
      norm.add(dev.clipAndStep(lr, opts.maxGradNorm ?? 1.0));
      // submit the step; wait for the one before it (the GPU works on this one while the next is recorded)
      const done = dev.backend.submit();
      if (inFlight) await inFlight;
      inFlight = done;
    } else {
      norm.host = clipGradNorm(params, opts.maxGradNorm ?? 1.0);
      (opt as AdamW).step(lr);
    }
    for (const p of params) p.markUpdated?.();
    const seconds = (performance.now() - t0) / 1000;
    secondsThisRun += seconds;
    tokensThisRun += tokens;
    unlogged.push({ step, lr, tokens, count, seconds, loss, correct, norm });
    at = step + 1;
    // let signal handlers (and timers) run: the steps themselves never return to the event loop
    await new Promise<void>((resolve) => setImmediate(resolve));
    const done = step + 1 === opts.steps;
    if (done || (step + 1) % logEvery === 0) await flushLog();
    if (!done && opts.signal?.aborted) {
      await save(step + 1, lastMetrics, 'interrupted');
      stopped = 'interrupted';
      break;
    }
    const evalNow = done || (opts.evalEvery !== undefined && (step + 1) % opts.evalEvery === 0);
    if (evalNow) await runEval(step + 1);
    const outOfTime = !done && opts.timeLimitSeconds !== undefined && (performance.now() - began) / 1000 >= opts.timeLimitSeconds;
    if (done || outOfTime || (opts.saveEvery !== undefined && (step + 1) % opts.saveEvery === 0)) await save(step + 1, lastMetrics, done ? 'final' : outOfTime ? 'time-limit' : 'periodic');
    if (outOfTime) {
      stopped = 'time-limit';
      break;
    }
  }
  await flushLog();
  if (start >= opts.steps && hooks.evaluate) await runEval(start);
  return { completed: stopped === 'done', stopped, step: at, history, finalMetrics: lastMetrics, tokensPerSecond: secondsThisRun > 0 ? tokensThisRun / secondsThisRun : 0 };
  } finally {
    await pg?.close();
    if (inFlight) await inFlight.catch(() => {});
    for (const e of unlogged) for (const x of [e.loss, e.correct, e.norm]) x.dev?.dispose();
    dev?.dispose();
  }
}

/** a step's number: summed on the host, on the device, or both (read when logged) */
class Sum {
  host = 0;
  dev: Tensor | null = null;
  /** += x / div (a device tensor is consumed: disposed once added) */
  add(x: number | Tensor, div = 1): void {
    if (typeof x === 'number') {
      this.host += x / div;
      return;
    }
    const scaled = ops.scale(x, 1 / div);
    if (scaled !== x) x.dispose();
    if (!this.dev) this.dev = scaled;
    else {
      const sum = ops.add(this.dev, scaled);
      this.dev.dispose();
      scaled.dispose();
      this.dev = sum;
    }
  }
}

/** a step whose numbers are not logged yet */
interface Logged {
  step: number;
  lr: number;
  tokens: number;
  count: number;
  seconds: number;
  loss: Sum;
  correct: Sum;
  norm: Sum;
}
