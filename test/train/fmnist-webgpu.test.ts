/**
 * The S4D sequential Fashion-MNIST classifier on the GPU (WebGPU; SwiftShader where there is no GPU): one model
 * definition on the op layer trains on cpu and webgpu with the same initial weights and the same numbers — loss
 * curves within 1e-4, the same test accuracy —, reads back only when it logs, resumes across backends, and
 * `mamba-ts train --preset fmnist-legs --backend webgpu` runs end to end. Real images: Debian's
 * dataset-fashion-mnist (skipped where it is not installed, unless MAMBA_TS_REQUIRE_FMNIST=1).
 * Sizes are tiny (the sequences are the real 784 pixels): SwiftShader emulates the GPU on the CPU.
 */
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Backend } from '../../src/backend/backend.js';
import { cpu } from '../../src/backend/cpu/index.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/backend.js';
import { backward, withGrad } from '../../src/autograd/tape.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { fashionMnistFiles } from '../../src/train/data.js';
import { buildJob, DEFAULT_ARGS, evaluateCheckpoint, type JobArgs } from '../../src/train/jobs.js';
import { S4dClassifier } from '../../src/train/s4d-classifier.js';
import { train, type TrainOptions } from '../../src/train/trainer.js';
import { run as cli } from '../../src/cli/main.js';
import { Rng } from '../../src/generate/rng.js';
import { webgpuOrReason } from '../backend/webgpu-context.js';

const gpu = await webgpuOrReason({ weights: 'f32' });
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});

/** the GPU and the data, or skip the test saying which is missing */
function needGpuAndData(t: TestContext): WebGpuBackend | null {
  if (!fs.existsSync(fashionMnistFiles('train').images)) {
    if (process.env.MAMBA_TS_REQUIRE_FMNIST === '1') assert.fail(`Fashion-MNIST files are missing (${fashionMnistFiles('train').images}); install dataset-fashion-mnist`);
    t.skip('dataset-fashion-mnist is not installed');
    return null;
  }
  if (typeof gpu === 'string') {
    t.skip(gpu);
    return null;
  }
  return gpu;
}

const TMP_PREFIX = `mamba-ts-fmnist-webgpu-${process.pid}-`;
function tmp(t: TestContext, name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${name}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** largest |a − b| (same lengths) */
function maxAbs(a: readonly number[], b: readonly number[]): number {
  assert.equal(a.length, b.length, `lengths ${a.length} vs ${b.length}`);
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

/** ‖a − b‖∞ / ‖b‖∞ */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths');
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return m === 0 ? d : d / m;
}

/** a tiny classifier on the real 784-pixel sequences (the gradient test below has 2 layers) */
const ARGS: JobArgs = {
  ...DEFAULT_ARGS, task: 'fmnist', s4dInit: 'legs', trainLimit: 32, testLimit: 20, steps: 4, batch: 2, accum: 1,
  hidden: 4, layers: 1, state: 4, lr: 4e-3, warmup: 1, weightDecay: 0.01, evalEvery: 1000, saveEvery: 1000,
};

async function run(be: Backend, over: Partial<TrainOptions> = {}) {
  const job = buildJob(ARGS, undefined, be === cpu ? {} : { backend: be });
  return train(job.model, job.hooks, { steps: ARGS.steps, lr: ARGS.lr, warmup: ARGS.warmup, weightDecay: ARGS.weightDecay, accum: ARGS.accum, args: { ...ARGS }, ...job.trainOptions, ...over });
}

test('the classifier built on webgpu has the CPU\'s initial weights, and one backward the same gradients (≤ 1e-4 relative)', async (t) => {
  const be = needGpuAndData(t);
  if (!be) return;
  const cfg = { inputDim: 1, numClasses: 10, hiddenSize: 4, stateSize: 4, numLayers: 2, init: 'legs' as const, normEps: 1e-5 };
  const c = S4dClassifier.init(cfg, 3);
  const g = S4dClassifier.init(cfg, 3, { backend: be });
  assert.throws(() => g.params, /lives on webgpu.*deviceParams/);
  assert.equal(g.deviceParams!.size, c.params.size);
  for (const [n, p] of c.params) assert.deepEqual(await g.deviceParams!.get(n)!.read(), p.data, `${n}: the same initial values`);
  const rng = new Rng(5);
  const b = 2;
  const inputs = Float32Array.from({ length: b * 784 }, () => rng.next() * 2 - 1);
  const labels = Int32Array.from([3, 7]);
  const losses: number[] = [];
  for (const m of [c, g]) {
    const u = m.input(inputs, b);
    const r = withGrad(() => m.loss(u, labels));
    backward(r.loss, 1, { free: true, keep: [r.loss] });
    losses.push((await r.loss.data())[0]);
    u.dispose();
  }
  assert.ok(Math.abs(losses[1] - losses[0]) <= 1e-4, `loss ${losses[1]} vs CPU ${losses[0]}`);
  for (const [n, p] of c.params) {
    const e = relErr((await g.deviceParams!.get(n)!.readGrad())!, p.grad!);
    assert.ok(e <= 1e-4, `${n}: gradient differs by ${e}`);
  }
});

test('fmnist trained on webgpu = on cpu: losses within 1e-4, same accuracies and test accuracy; numbers read back only when logged (and the evaluation reads once); GPU memory does not grow', async (t) => {
  const be = needGpuAndData(t);
  if (!be) return;
  const c = await run(cpu);
  let reads = 0;
  const rt = be.rt;
  const read = rt.read;
  rt.read = (s) => {
    reads++;
    return read.call(rt, s);
  };
  let g: Awaited<ReturnType<typeof run>>;
  const live: number[] = [];
  try {
    g = await run(be, { logEvery: 2, onStep: () => void live.push(rt.stats().liveBytes) });
  } finally {
    rt.read = read;
  }
  const d = maxAbs(g.history.loss, c.history.loss);
  assert.ok(d <= 1e-4, `losses ${g.history.loss} vs CPU ${c.history.loss}: ${d}`);
  assert.ok(maxAbs(g.history.grad_norm, c.history.grad_norm) <= 1e-4 * Math.max(...c.history.grad_norm), `gradient norms ${g.history.grad_norm} vs ${c.history.grad_norm}`);
  assert.deepEqual(g.history.accuracy, c.history.accuracy);
  assert.equal(g.finalMetrics.test_acc, c.finalMetrics.test_acc);
  assert.ok(Number.isFinite(c.finalMetrics.test_acc));
  // 4 steps logged every 2: two reads; the evaluation (20 images in 3 batches of 8) adds its counts on the GPU: one
  assert.equal(reads, 3, `GPU reads: ${reads}`);
  // GPU memory in use when steps 2 and 4 are logged: the same (the inputs, the graph and the gradients of a step are freed)
  assert.equal(live.length, 4);
  assert.ok(live[3] <= live[1], `GPU memory in use after steps 1–4: ${live.join(', ')}`);
  t.diagnostic(`losses cpu ${c.history.loss.map((x) => x.toFixed(6)).join(', ')}; webgpu differs by at most ${d.toExponential(2)}`);
});

test('--resume switches backends: a CPU run resumed on webgpu (and a webgpu run resumed on the CPU) continues the CPU curve within 1e-4', async (t) => {
  const be = needGpuAndData(t);
  if (!be) return;
  const full = await run(cpu);
  for (const [from, to] of [[cpu, be], [be, cpu]] as const) {
    const dir = tmp(t, 'switch');
    const ac = new AbortController();
    const first = await run(from, { outDir: dir, logEvery: 1, signal: ac.signal, onStep: (s) => s.step === 2 && ac.abort() });
    assert.equal(first.stopped, 'interrupted');
    assert.equal(loadCheckpoint(dir).trainerState.step, 2);
    const r = await run(to, { outDir: dir, resume: true });
    assert.equal(r.history.loss.length, ARGS.steps);
    const d = maxAbs(r.history.loss, full.history.loss);
    assert.ok(d <= 1e-4, `${from.name} → ${to.name}: losses ${r.history.loss} vs ${full.history.loss}`);
    assert.equal(r.finalMetrics.test_acc, full.finalMetrics.test_acc);
  }
});

test('mamba-ts train --preset fmnist-legs --backend webgpu runs end to end: the checkpoint files, its test accuracy = mamba-ts eval of the checkpoint on the CPU, and --resume', async (t) => {
  if (!needGpuAndData(t)) return;
  const out = tmp(t, 'cli');
  const io = (lines: string[]) => ({ stdout: { write: (s: string) => (lines.push(s), true) }, stderr: { write: (s: string) => (lines.push(s), true) }, handleSigint: false });
  const flags = ['--preset', 'fmnist-legs', '--backend', 'webgpu', '--hidden', '4', '--layers', '1', '--state', '4', '--batch', '2', '--accum', '1', '--train-limit', '16', '--test-limit', '8', '--out', out, '--json'];
  const lines: string[] = [];
  let code = await cli(['train', ...flags, '--steps', '2'], io(lines) as never);
  assert.equal(code, 0, lines.join(''));
  for (const f of ['model.safetensors', 'config.json', 'optimizer.safetensors', 'trainer_state.json', 'curves.svg']) assert.ok(fs.existsSync(path.join(out, f)), f);
  const summary = JSON.parse(lines.join('').trim().split('\n').pop()!) as Record<string, number>;
  assert.ok(summary.gpu_peak_bytes > 0, JSON.stringify(summary));
  const ck = loadCheckpoint(out);
  assert.equal(ck.config.model_type, 'mamba_ts_s4d_classifier');
  assert.equal((ck.trainerState.args as Record<string, unknown>).backend, 'webgpu');
  assert.deepEqual(await evaluateCheckpoint(out), { test_acc: summary.test_acc });
  lines.length = 0;
  code = await cli(['train', ...flags, '--steps', '3', '--resume'], io(lines) as never);
  assert.equal(code, 0, lines.join(''));
  assert.equal(loadCheckpoint(out).trainerState.step, 3);
});

test('bad classifier input is refused naming the tensor or the value: a missing, misshapen or unknown tensor, labels out of range, a ragged batch', () => {
  const cfg = { inputDim: 1, numClasses: 10, hiddenSize: 4, stateSize: 4, numLayers: 1, init: 'lin' as const, normEps: 1e-5 };
  const ok = S4dClassifier.init(cfg, 1);
  const tensors = () => Object.fromEntries([...ok.params].map(([n, p]) => [n, { data: Float32Array.from(p.data), shape: [...p.shape] }]));
  const missing = tensors();
  delete missing['layers.0.s4d.C'];
  assert.throws(() => new S4dClassifier(cfg, missing), /tensor "layers\.0\.s4d\.C" is missing/);
  const bad = tensors();
  bad['decoder.weight'] = { data: new Float32Array(40), shape: [4, 10] };
  assert.throws(() => new S4dClassifier(cfg, bad), /tensor "decoder\.weight" has shape \[4, 10\] \(40 values\), expected \[10, 4\]/);
  assert.throws(() => new S4dClassifier(cfg, { ...tensors(), 'layers.1.norm.weight': { data: new Float32Array(4), shape: [4] } }), /unexpected tensor "layers\.1\.norm\.weight"/);
  assert.throws(() => ok.input(new Float32Array(7), 2), /7 values do not make a batch of 2 sequences/);
  const u = ok.input(new Float32Array(2 * 784), 2);
  assert.deepEqual(u.shape, [2, 784, 1]);
  assert.throws(() => ok.loss(u, Int32Array.from([1, 10])), /label 10 is outside \[0, 10\)/);
  assert.throws(() => ok.loss(u, Int32Array.from([1])), /1 labels for inputs \[2, 784, 1\]/);
});

test('no temporary folder is left behind', () => {
  assert.deepEqual(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(TMP_PREFIX)), []);
});
