/**
 * Data-parallel training on worker threads. The parameters live in one SharedArrayBuffer that the main
 * thread's model and every worker's replica view directly (no copies per step); each worker computes the
 * gradients of its share of the step's micro-batches (micro m goes to worker m mod T) into its own
 * shared gradient region, then — after a barrier on a shared counter, all regions being written — adds up
 * its 1/T slice of every parameter over the regions, in worker order, into the shared sum that becomes the
 * parameters' gradients. (The sum is split among the workers: on the main thread it was a serial part of
 * every step.) The sum order depends only on (accum, threads), so a run — and its resume — is reproducible
 * for a given thread count.
 *
 * Workers rebuild the job from the same arguments; batches are pure functions of (seed, step, micro), so
 * nothing but the step number crosses threads.
 */
import { Worker } from 'node:worker_threads';
import type { Param } from './param.js';
import { TrainError } from './errors.js';
import { type AdamW, type AdamWFactors, adamwUpdate } from './optim.js';

export interface ParallelStepResult {
  loss: number;
  tokens: number;
  count: number;
  correct: number;
  /** global L2 norm of the summed gradients (float64 partial sums of the workers' slices, added in worker order) */
  gradNorm: number;
}

/** one parameter's place in the flat buffers and its AdamW settings */
export interface ParamSlot {
  offset: number;
  size: number;
  decay: boolean;
  lrScale: number;
}

/** messages main → worker; `round` counts the steps given to the workers (1, 2, …): the barrier's generation */
export type ToWorker =
  | { kind: 'step'; step: number; micros: number[]; accum: number; round: number }
  | { kind: 'optim'; m: SharedArrayBuffer; v: SharedArrayBuffer; slots: ParamSlot[] }
  | { kind: 'update'; factors: AdamWFactors; gradScale: number }
  | { kind: 'stop' };
/** messages worker → main */
export type FromWorker =
  | { kind: 'ready' }
  | { kind: 'done'; loss: number; tokens: number; count: number; correct: number; sumsq: number }
  | { kind: 'updated' }
  | { kind: 'error'; message: string };

export interface WorkerSetup {
  /** the job arguments (JSON) the worker rebuilds its replica from */
  args: unknown;
  /** parameter names, in the order of `offsets` */
  names: string[];
  params: SharedArrayBuffer;
  /** this worker's gradient region */
  grads: SharedArrayBuffer;
  /** every worker's gradient region, in worker order */
  allGrads: SharedArrayBuffer[];
  /** the summed gradients (total floats) */
  sum: SharedArrayBuffer;
  /** Int32Array [1]: the barrier counter (workers that finished their micro-batches, over all rounds) */
  barrier: SharedArrayBuffer;
  /** float offsets of each parameter in params/grads */
  offsets: number[];
  index: number;
  threads: number;
}

/** the floats [lo, hi) of the gradient sum that worker `index` of `threads` adds up (whole parameters' floats, 16-aligned) */
export function sumSlice(index: number, threads: number, total: number): [number, number] {
  const chunk = Math.ceil(total / threads / 16) * 16;
  return [Math.min(total, index * chunk), Math.min(total, (index + 1) * chunk)];
}

/**
 * A worker's part of the gradient sum: wait until all `threads` workers of round `round` have written their
 * regions (the barrier counter reaches round·threads), then sum[i] = Σ_w grads_w[i] for i in this worker's slice, in
 * worker order (float32 adds, as a sequential sum would do them).
 */
export function reduceSlice(s: Pick<WorkerSetup, 'allGrads' | 'sum' | 'barrier' | 'index' | 'threads'>, round: number, total: number): number {
  const bar = new Int32Array(s.barrier);
  const target = round * s.threads;
  Atomics.add(bar, 0, 1);
  Atomics.notify(bar, 0);
  for (;;) {
    const v = Atomics.load(bar, 0);
    if (v >= target) break;
    Atomics.wait(bar, 0, v, 100);
  }
  const [lo, hi] = sumSlice(s.index, s.threads, total);
  if (lo >= hi) return 0;
  const out = new Float32Array(s.sum, lo * 4, hi - lo);
  out.fill(0);
  for (const buf of s.allGrads) {
    const src = new Float32Array(buf, lo * 4, hi - lo);
    for (let j = 0; j < out.length; j++) out[j] += src[j];
  }
  let sq = 0;
  for (let j = 0; j < out.length; j++) sq += out[j] * out[j];
  return sq;
}

/**
 * A worker's part of the optimizer step: the AdamW update (after clipping by `gradScale`) of the floats of its
 * gradient-sum slice, parameter by parameter, on the shared parameters, gradient sum and moments.
 */
export function updateSlice(index: number, threads: number, bufs: { params: SharedArrayBuffer; sum: SharedArrayBuffer; m: SharedArrayBuffer; v: SharedArrayBuffer }, slots: readonly ParamSlot[], f: AdamWFactors, gradScale: number): void {
  const p = new Float32Array(bufs.params);
  const g = new Float32Array(bufs.sum);
  const m = new Float32Array(bufs.m);
  const v = new Float32Array(bufs.v);
  const [lo, hi] = sumSlice(index, threads, p.length);
  for (const sl of slots) {
    const a = Math.max(lo, sl.offset);
    const b = Math.min(hi, sl.offset + sl.size);
    if (a < b) adamwUpdate(p, g, m, v, a, b, f, sl.lrScale, sl.decay, gradScale);
  }
}

/** Move every parameter's data into one SharedArrayBuffer (values kept); returns its layout. */
export function shareParameters(params: ReadonlyMap<string, Param>): { buffer: SharedArrayBuffer; names: string[]; offsets: number[]; total: number } {
  const names = [...params.keys()];
  const offsets: number[] = [];
  let total = 0;
  for (const n of names) {
    offsets.push(total);
    total += params.get(n)!.data.length;
  }
  const buffer = new SharedArrayBuffer(total * 4);
  names.forEach((n, i) => {
    const p = params.get(n)!;
    if (!(p.data instanceof Float32Array)) throw new TrainError(`parallel training needs float32 parameters; "${n}" is not`);
    const view = new Float32Array(buffer, offsets[i] * 4, p.data.length);
    view.set(p.data);
    p.data = view;
  });
  return { buffer, names, offsets, total };
}

export class ParallelGradients {
  private readonly workers: Worker[] = [];
  private readonly grads: SharedArrayBuffer[] = [];
  private round = 0;
  private optimizer: AdamW | null = null;

  private constructor(
    private readonly params: ReadonlyMap<string, Param>,
    private readonly names: string[],
    private readonly offsets: number[],
    private readonly sum: SharedArrayBuffer,
  ) {}

  /** Start `threads` workers, each building its replica with `args` (see `train-worker.ts`). */
  static async start(params: ReadonlyMap<string, Param>, args: unknown, threads: number): Promise<ParallelGradients> {
    const { buffer, names, offsets, total } = shareParameters(params);
    const pg = new ParallelGradients(params, names, offsets, new SharedArrayBuffer(total * 4));
    const barrier = new SharedArrayBuffer(4);
    const url = new URL('./train-worker.js', import.meta.url);
    const ready: Array<Promise<void>> = [];
    for (let i = 0; i < threads; i++) pg.grads.push(new SharedArrayBuffer(total * 4));
    for (let i = 0; i < threads; i++) {
      const setup: WorkerSetup = { args, names, params: buffer, grads: pg.grads[i], allGrads: pg.grads, sum: pg.sum, barrier, offsets, index: i, threads };
      const w = new Worker(url, { workerData: setup });
      pg.workers.push(w);
      ready.push(
        new Promise((resolve, reject) => {
          w.once('message', (m: FromWorker) => (m.kind === 'ready' ? resolve() : reject(new TrainError(`training worker ${i}: ${m.kind === 'error' ? m.message : 'bad start'}`))));
          w.once('error', reject);
        }),
      );
    }
    await Promise.all(ready);
    return pg;
  }

  get threads(): number {
    return this.workers.length;
  }

  /**
   * Let the workers take the optimizer steps too: the moments of `opt` move into shared memory laid out like the
   * parameters (values kept, so a resumed state carries over; `opt.exportState` still reads them), and `update`
   * has each worker clip and update the slice of the parameters whose gradients it summed.
   */
  attachOptimizer(opt: AdamW): void {
    const total = this.grads[0].byteLength / 4;
    const m = new SharedArrayBuffer(total * 4);
    const v = new SharedArrayBuffer(total * 4);
    const at = new Map<Param, number>();
    this.names.forEach((n, k) => at.set(this.params.get(n)!, k));
    const info = opt.relocateMoments((p) => {
      const k = at.get(p);
      if (k === undefined) return null;
      const size = p.data.length;
      return { m: new Float32Array(m, this.offsets[k] * 4, size), v: new Float32Array(v, this.offsets[k] * 4, size) };
    });
    const slots: ParamSlot[] = this.names.map((n, k) => {
      const p = this.params.get(n)!;
      const i = info.get(p);
      if (!i) throw new TrainError(`parallel optimizer: parameter "${n}" is not in the optimizer`);
      return { offset: this.offsets[k], size: p.data.length, decay: i.decay, lrScale: i.lrScale };
    });
    for (const w of this.workers) w.postMessage({ kind: 'optim', m, v, slots } satisfies ToWorker);
    this.optimizer = opt;
  }

  /**
   * The optimizer step after `step`: clip the summed gradients to `maxNorm` by the norm `step` returned (as
   * `clipGradNorm`: scaled by maxNorm / (norm + 1e-6) when that is < 1; a non-finite norm leaves them as they are),
   * then AdamW at `lr` — split among the workers (see `attachOptimizer`, which must come first).
   */
  async update(lr: number, gradNorm: number, maxNorm: number): Promise<void> {
    const opt = this.optimizer;
    if (!opt) throw new TrainError('parallel optimizer: attachOptimizer was not called');
    if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) throw new TrainError(`clipGradNorm: maxNorm must be a positive finite number, got ${maxNorm}`);
    const coef = Number.isFinite(gradNorm) ? maxNorm / (gradNorm + 1e-6) : 1;
    const factors = opt.beginStep(lr);
    await Promise.all(this.workers.map((w, i) => this.request(w, i, { kind: 'update', factors, gradScale: coef < 1 ? coef : 1 }, 'updated')));
  }

  /** send `msg` to worker i and resolve with its reply of kind `want` */
  private request<K extends FromWorker['kind']>(w: Worker, i: number, msg: ToWorker, want: K): Promise<Extract<FromWorker, { kind: K }>> {
    return new Promise((resolve, reject) => {
      const onMsg = (m: FromWorker): void => {
        w.off('error', onErr);
        if (m.kind === want) resolve(m as Extract<FromWorker, { kind: K }>);
        else reject(new TrainError(`training worker ${i}: ${m.kind === 'error' ? m.message : 'unexpected message'}`));
      };
      const onErr = (e: Error): void => {
        w.off('message', onMsg);
        reject(e);
      };
      w.once('message', onMsg);
      w.once('error', onErr);
      w.postMessage(msg);
    });
  }

  /**
   * Gradients of step `step` averaged over `accum` micro-batches, written into the parameters' `grad`;
   * returns the mean loss and the counts.
   */
  async step(step: number, accum: number): Promise<ParallelStepResult> {
    const T = this.workers.length;
    const round = ++this.round;
    const results = await Promise.all(
      this.workers.map((w, i) => {
        const micros: number[] = [];
        for (let m = i; m < accum; m += T) micros.push(m);
        return this.request(w, i, { kind: 'step', step, micros, accum, round }, 'done');
      }),
    );
    // the workers have summed their regions into `sum`: the gradients are views of it (valid until the next step)
    this.names.forEach((n, k) => {
      const p = this.params.get(n)!;
      p.grad = new Float32Array(this.sum, this.offsets[k] * 4, p.data.length);
    });
    const r = { loss: 0, tokens: 0, count: 0, correct: 0, gradNorm: 0 };
    let sq = 0;
    for (const x of results) {
      r.loss += x.loss;
      r.tokens += x.tokens;
      r.count += x.count;
      r.correct += x.correct;
      sq += x.sumsq;
    }
    r.gradNorm = Math.sqrt(sq);
    return r;
  }

  async close(): Promise<void> {
    for (const w of this.workers) w.postMessage({ kind: 'stop' } satisfies ToWorker);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
