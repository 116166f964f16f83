/** A data-parallel training worker (see `parallel.ts`): a replica of the job whose parameters are views of the shared buffer. */
import { parentPort, workerData } from 'node:worker_threads';
import { buildJob, type JobArgs } from './jobs.js';
import { type FromWorker, reduceSlice, type ToWorker, type WorkerSetup } from './parallel.js';

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
  port.on('message', async (m: ToWorker) => {
    if (m.kind === 'stop') {
      port.close();
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
      reduceSlice(setup, m.round, total);
      port.postMessage({ kind: 'done', loss, tokens, count, correct } satisfies FromWorker);
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
