/** A data-parallel training worker (see `parallel.ts`): a replica of the job whose parameters are views of the shared buffer. */
import { parentPort, workerData } from 'node:worker_threads';
import { buildJob, type JobArgs } from './jobs.js';
import { type FromWorker, type ParamSlot, reduceSlice, type ToWorker, updateSlice, type WorkerSetup } from './parallel.js';

const setup = workerData as WorkerSetup;
const port = parentPort!;
try {
  const job = buildJob(setup.args as JobArgs);
  const params = setup.names.map((n, i) => {
    const p = job.model.params.get(n);
    if (!p) throw new Error(`the replica has no parameter "${n}"`);
    p.data = new Float32Array(setup.params, setup.offsets[i] * 4, p.data.length);
    return { p, g: new Float32Array(setup.grads, setup.offsets[i] * 4, p.data.length) };
  });
  const total = setup.grads.byteLength / 4;
  let optim: { m: SharedArrayBuffer; v: SharedArrayBuffer; slots: ParamSlot[] } | null = null;
  port.on('message', async (m: ToWorker) => {
    if (m.kind === 'stop') {
      port.close();
      return;
    }
    if (m.kind === 'optim') {
      optim = m;
      return;
    }
    if (m.kind === 'update') {
      try {
        if (!optim) throw new Error('update before the optimizer state was shared');
        updateSlice(setup.index, setup.threads, { params: setup.params, sum: setup.sum, m: optim.m, v: optim.v }, optim.slots, m.factors, m.gradScale);
        port.postMessage({ kind: 'updated' } satisfies FromWorker);
      } catch (e) {
        port.postMessage({ kind: 'error', message: e instanceof Error ? e.message : String(e) } satisfies FromWorker);
      }
      return;
    }
    let arrived = false;
    try {
      for (const { p } of params) p.grad = null;
      let loss = 0;
      let tokens = 0;
      let count = 0;
      let correct = 0;
      for (const micro of m.micros) {
        const r = await job.hooks.microStep(m.step, micro, 1 / m.accum);
        if (typeof r.loss !== 'number' || typeof r.correct === 'object') throw new Error('data-parallel workers train host models: a micro-step returned device tensors');
        loss += r.loss / m.accum;
        tokens += r.tokens;
        count += r.count ?? 0;
        correct += r.correct ?? 0;
      }
      for (const { p, g } of params) {
        if (p.grad) g.set(p.grad);
        else g.fill(0);
      }
      arrived = true;
      const sumsq = reduceSlice(setup, m.round, total);
      port.postMessage({ kind: 'done', loss, tokens, count, correct, sumsq } satisfies FromWorker);
    } catch (e) {
      // still arrive at the barrier (the other workers wait there); the step fails on the main thread
      if (!arrived) reduceSlice(setup, m.round, 0);
      port.postMessage({ kind: 'error', message: e instanceof Error ? e.message : String(e) } satisfies FromWorker);
    }
  });
  port.postMessage({ kind: 'ready' } satisfies FromWorker);
} catch (e) {
  port.postMessage({ kind: 'error', message: e instanceof Error ? e.message : String(e) } satisfies FromWorker);
}
