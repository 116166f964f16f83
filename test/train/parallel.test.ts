/**
 * Data-parallel training (src/train/parallel.ts): T worker threads, each computing its micro-batches' gradients and
 * then summing its slice of the gradients over all workers, give the run that one thread gives (same losses, same
 * gradient norms, same parameters, up to float32 rounding of the different accumulation order of the loss).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildJob, DEFAULT_ARGS, type JobArgs } from '../../src/train/jobs.js';
import { train } from '../../src/train/trainer.js';
import { sumSlice } from '../../src/train/parallel.js';

const ARGS: JobArgs = { ...DEFAULT_ARGS, task: 'selective-copying', seqLen: 24, numTokens: 4, vocab: 8, hidden: 16, layers: 2, state: 4, batch: 2, accum: 3, steps: 3, lr: 3e-3, warmup: 0, evalEvery: 1000, saveEvery: 1000 };

async function run(threads: number): Promise<{ loss: number[]; norm: number[]; params: Map<string, Float32Array> }> {
  const job = buildJob(ARGS);
  const r = await train(job.model, { microStep: job.hooks.microStep }, { steps: ARGS.steps, lr: ARGS.lr, warmup: 0, accum: ARGS.accum, threads, args: { ...ARGS } });
  const params = new Map<string, Float32Array>();
  for (const [n, p] of job.model.params) params.set(n, Float32Array.from(p.data));
  return { loss: r.history.loss, norm: r.history.grad_norm, params };
}

test('sumSlice covers [0, total) in disjoint 16-aligned slices', () => {
  for (const [T, total] of [[1, 5], [2, 100], [3, 1000], [4, 17], [3, 2]]) {
    let next = 0;
    for (let i = 0; i < T; i++) {
      const [lo, hi] = sumSlice(i, T, total);
      assert.equal(lo, Math.min(next, total), `T ${T} total ${total} slice ${i}`);
      assert.ok(hi >= lo && (hi === total || hi % 16 === 0));
      next = hi;
    }
    assert.equal(next, total);
  }
});

test('3 worker threads train as 1 thread does (losses, gradient norms, parameters)', async () => {
  const one = await run(1);
  const three = await run(3);
  assert.equal(three.loss.length, ARGS.steps);
  for (let i = 0; i < ARGS.steps; i++) {
    assert.ok(Math.abs(three.loss[i] - one.loss[i]) <= 1e-6 * Math.abs(one.loss[i]), `step ${i + 1} loss ${three.loss[i]} vs ${one.loss[i]}`);
    assert.ok(Math.abs(three.norm[i] - one.norm[i]) <= 1e-5 * one.norm[i], `step ${i + 1} grad norm ${three.norm[i]} vs ${one.norm[i]}`);
  }
  let moved = 0;
  for (const [n, p1] of one.params) {
    const p3 = three.params.get(n)!;
    for (let j = 0; j < p1.length; j++) {
      assert.ok(Math.abs(p3[j] - p1[j]) <= 1e-5 * (1 + Math.abs(p1[j])), `${n}[${j}]: ${p3[j]} vs ${p1[j]}`);
    }
    moved++;
  }
  assert.ok(moved > 0);
});
