/**
 * Data-parallel training (src/train/parallel.ts): T worker threads, each computing its micro-batches' gradients and
 * then summing its slice of the gradients over all workers, give the run that one thread gives (same losses, same
 * gradient norms, same parameters, up to float32 rounding of the different accumulation order of the loss).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildJob, DEFAULT_ARGS, type JobArgs } from '../../src/train/jobs.js';
import { train } from '../../src/train/trainer.js';
import { sumSlice } from '../../src/train/parallel.js';

const ARGS: JobArgs = { ...DEFAULT_ARGS, task: 'selective-copying', seqLen: 24, numTokens: 4, vocab: 8, hidden: 16, layers: 2, state: 4, batch: 2, accum: 3, steps: 3, lr: 3e-3, warmup: 0, evalEvery: 1000, saveEvery: 1000 };

async function run(threads: number, o: { steps?: number; outDir?: string; resume?: boolean } = {}): Promise<{ loss: number[]; norm: number[]; params: Map<string, Float32Array> }> {
  const job = buildJob(ARGS);
  const r = await train(job.model, { microStep: job.hooks.microStep }, {
    steps: o.steps ?? ARGS.steps, lr: ARGS.lr, warmup: 0, schedule: 'constant', accum: ARGS.accum, threads, args: { ...ARGS },
    ...(o.outDir ? { outDir: o.outDir, saveEvery: 1000 } : {}), ...(o.resume ? { resume: true } : {}),
  });
  const params = new Map<string, Float32Array>();
  for (const [n, p] of job.model.params) params.set(n, Float32Array.from(p.data));
  return { loss: r.history.loss, norm: r.history.grad_norm, params };
}

function assertSameRun(a: Awaited<ReturnType<typeof run>>, b: Awaited<ReturnType<typeof run>>, what: string): void {
  assert.equal(a.loss.length, b.loss.length);
  for (let i = 0; i < a.loss.length; i++) {
    assert.ok(Math.abs(a.loss[i] - b.loss[i]) <= 1e-6 * Math.abs(b.loss[i]), `${what}: step ${i + 1} loss ${a.loss[i]} vs ${b.loss[i]}`);
    assert.ok(Math.abs(a.norm[i] - b.norm[i]) <= 1e-5 * b.norm[i], `${what}: step ${i + 1} grad norm ${a.norm[i]} vs ${b.norm[i]}`);
  }
  for (const [n, pb] of b.params) {
    const pa = a.params.get(n)!;
    for (let j = 0; j < pb.length; j++) assert.ok(Math.abs(pa[j] - pb[j]) <= 1e-5 * (1 + Math.abs(pb[j])), `${what}: ${n}[${j}]: ${pa[j]} vs ${pb[j]}`);
  }
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

test('3 worker threads train as 1 thread does (losses, gradient norms (clipped steps included), parameters)', async () => {
  const one = await run(1);
  const three = await run(3);
  assert.equal(three.loss.length, ARGS.steps);
  // the gradients were clipped (norm > 1) in some step, so the workers' clipping is exercised
  assert.ok(one.norm.some((n) => n > 1), `grad norms ${one.norm.join(', ')}`);
  assertSameRun(three, one, '3 threads vs 1');
  // and the parameters moved: the comparison is not between two untouched models
  const init = buildJob(ARGS).model.params;
  let moved = 0;
  for (const [n, p] of one.params) if (p.some((x, j) => x !== init.get(n)!.data[j])) moved++;
  assert.equal(moved, init.size);
});

test('a parallel run saved and resumed (moments in shared memory, exported and imported) continues as one uninterrupted run', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-parallel-'));
  try {
    await run(3, { steps: 2, outDir: dir });
    const resumed = await run(3, { steps: ARGS.steps, outDir: dir, resume: true });
    const whole = await run(1); // (constant learning rate: a run of 2 steps schedules it as one of 3 does)
    assertSameRun(resumed, whole, 'resumed 3 threads vs uninterrupted 1 thread');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a run whose optimizer.safetensors is gone resumes with fresh AdamW moments, and says so', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-nomoments-'));
  try {
    await run(1, { steps: 2, outDir: dir });
    fs.rmSync(path.join(dir, 'optimizer.safetensors'));
    const notices: string[] = [];
    const job = buildJob(ARGS);
    const r = await train(job.model, { microStep: job.hooks.microStep }, {
      steps: ARGS.steps, lr: ARGS.lr, warmup: 0, schedule: 'constant', accum: ARGS.accum, threads: 1, args: { ...ARGS },
      outDir: dir, saveEvery: 1000, resume: true, onNotice: (m) => notices.push(m),
    });
    assert.equal(notices.length, 1);
    assert.match(notices[0], /no optimizer\.safetensors: the AdamW moments restart/);
    // it continued from step 2 (one step trained) and differs from the uninterrupted run only from step 3 on
    assert.equal(r.history.loss.length, ARGS.steps);
    const whole = await run(1);
    for (let i = 0; i < 2; i++) assert.equal(r.history.loss[i], whole.loss[i]);
    assert.ok(Number.isFinite(r.history.loss[2]));
    const moved = [...job.model.params].some(([n, p]) => p.data.some((x, j) => x !== whole.params.get(n)![j]));
    assert.ok(moved, 'fresh moments give another third step than the uninterrupted run');
    assert.ok(fs.existsSync(path.join(dir, 'optimizer.safetensors')), 'the resumed run saved its moments again');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
