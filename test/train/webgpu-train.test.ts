/**
 * Training on the GPU (WebGPU): parameters, gradients and AdamW moments resident on the device.
 *
 * - the device optimizer against the host one: AdamW (= `adamwUpdate`), global-norm clipping (= `clipGradNorm`),
 *   packed parameters, state export/import — on random data, no model needed;
 * - the tape on the device: gradients accumulated over micro-batches, intermediate gradients and (with
 *   `free`) the graph disposed at once, so GPU memory does not grow from step to step;
 * - the trainer end to end on a small network of the ops WebGPU differentiates today (embedding, linear, silu, mul,
 *   add, mean_time): the same loss curve as on the CPU, and `--resume` exact (webgpu alone and cpu → webgpu);
 * - model level (a tiny Mamba, the nine HF fixtures, `mamba-ts train --backend webgpu`): the same gradients and
 *   loss curve as on the CPU, exact resume. These need the WebGPU backward kernels of every op of the model; one
 *   that WebGPU does not differentiate ends the test as TODO naming it (its typed "no differentiable X yet"
 *   error) — or fails, with MAMBA_TS_REQUIRE_WEBGPU=1.
 */
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Backend } from '../../src/backend/backend.js';
import { cpu } from '../../src/backend/cpu/index.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/backend.js';
import { sizeClass } from '../../src/backend/webgpu/memory.js';
import { backward, withGrad } from '../../src/autograd/tape.js';
import { OpError } from '../../src/errors.js';
import { Rng } from '../../src/generate/rng.js';
import type { ParamEntry } from '../../src/models/loader.js';
import * as ops from '../../src/tensor/ops.js';
import { scope } from '../../src/tensor/scope.js';
import { Derived, Lazy } from '../../src/nn/derived.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { DeviceAdamW } from '../../src/train/device-optim.js';
import { DeviceParam } from '../../src/train/device-param.js';
import { buildJob, DEFAULT_ARGS, lmStep, type JobArgs } from '../../src/train/jobs.js';
import { TrainableLM, type TrainableModel } from '../../src/train/lm.js';
import { AdamW, clipGradNorm, gradNorm, type OptimizerState } from '../../src/train/optim.js';
import { type Param, TensorParam } from '../../src/train/param.js';
import { train, type TrainOptions } from '../../src/train/trainer.js';
import { run as cli } from '../../src/cli/main.js';
import { hfFixture } from '../helpers.js';
import { webgpuOrReason } from '../backend/webgpu-context.js';

const gpu = await webgpuOrReason();
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});

/** the GPU, or skip the test with the reason there is none */
function needGpu(t: TestContext): WebGpuBackend | null {
  if (typeof gpu === 'string') {
    t.skip(gpu);
    return null;
  }
  return gpu;
}

const TINY_MAMBA = {
  source: 'hf' as const, vocabSize: 16, hiddenSize: 16, innerSize: 32, stateSize: 4, numLayers: 2, convKernel: 4, dtRank: 1,
  useBias: false, useConvBias: true, normEps: 1e-5, tieEmbeddings: true, eosTokenIds: [0],
};

const TMP_PREFIX = `mamba-ts-webgpu-train-${process.pid}-`;
function tmp(t: TestContext, name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${name}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function random(n: number, rng: Rng, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
}

/** ‖a − b‖∞ / ‖b‖∞ (NaNs must sit at the same places) */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths');
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(b[i])) {
      assert.ok(Number.isNaN(a[i]), `element ${i}: ${a[i]}, expected NaN`);
      continue;
    }
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return m === 0 ? d : d / m;
}

// ---- a small network of the ops WebGPU differentiates now -------------------------------------------------------

/**
 * A regression network: y = (E1 + E2)ᵀ-heads of silu(fc(embed[ids])) with a packed two-expert head, loss = mean
 * squared error — built of embedding, linear, activation, add, mul, reshape, mean_time, scale. The same code on
 * any backend: host parameters (`TensorParam`) on the CPU, device parameters on WebGPU.
 */
class TinyNet implements TrainableModel {
  static readonly V = 11;
  static readonly D = 12;
  static readonly H = 20;
  static readonly O = 6;
  readonly entries = new Map<string, ParamEntry>();
  private readonly host: Map<string, Param> | null;
  readonly deviceParams: Map<string, DeviceParam> | null;
  private readonly ones: Tensor;

  constructor(readonly be: Backend, seed: number) {
    const rng = new Rng(seed);
    const { V, D, H, O } = TinyNet;
    const gpuBe = be !== cpu;
    const add = (name: string, shape: number[], scale: number, matrix = false) => {
      const data = random(shape.reduce((a, b) => a * b, 1), rng, scale);
      this.entries.set(name, { name, shape, parts: [{ tensor: be.fromHost(data, shape, matrix ? { matrix: true } : undefined), offset: 0 }] });
    };
    add('embed.weight', [V, D], 1, true);
    add('fc.weight', [H, D], 0.5, true);
    add('fc.bias', [H], 0.1);
    const packed = random(2 * O * H, rng, 0.3);
    const experts: ParamEntry = { name: 'head.experts', shape: [2, O, H], parts: [], packed };
    for (let e = 0; e < 2; e++) {
      const v = packed.subarray(e * O * H, (e + 1) * O * H);
      experts.parts.push({ tensor: be.fromHost(gpuBe ? Float32Array.from(v) : v, [O, H], { matrix: true }), offset: e * O * H });
    }
    this.entries.set(experts.name, experts);
    add('head.bias', [O], 0.1);
    this.ones = be.fromHost(new Float32Array(O).fill(1), [1, O], { matrix: true });
    if (gpuBe) {
      this.host = null;
      this.deviceParams = new Map([...this.entries].map(([n, e]) => [n, new DeviceParam(e)]));
    } else {
      this.deviceParams = null;
      this.host = new Map([...this.entries].map(([n, e]) => [n, new TensorParam(e)]));
    }
  }

  get params(): ReadonlyMap<string, Param> {
    if (!this.host) throw new Error('device model');
    return this.host;
  }
  get onDevice(): boolean {
    return this.deviceParams !== null;
  }
  configJson(): Record<string, unknown> {
    return { model_type: 'tiny_net' };
  }

  private w(name: string, part = 0): Tensor {
    return this.entries.get(name)!.parts[part].tensor;
  }

  /** mean squared error of a batch (ids [N], targets [N, O]) */
  loss(ids: Int32Array, negTargets: Tensor): Tensor {
    const N = ids.length;
    const x = ops.embedding(this.w('embed.weight'), ids, [N, TinyNet.D]);
    const h = ops.activation(ops.linear(x, this.w('fc.weight'), this.w('fc.bias')), 'silu');
    const y = ops.add(ops.linear(h, this.w('head.experts', 0)), ops.linear(h, this.w('head.experts', 1), this.w('head.bias')));
    const d = ops.add(y, negTargets);
    const per = ops.linear(ops.mul(d, d), this.ones); // [N, 1]
    return ops.scale(ops.meanTime(ops.reshape(per, [1, N, 1])), 1 / TinyNet.O);
  }
}

/** batch k of the regression data: N ids and −targets (a fixed smooth function of the id plus noise) */
function batchAt(be: Backend, k: number, N = 10): { ids: Int32Array; neg: Tensor } {
  const rng = new Rng(1000 + k);
  const ids = Int32Array.from({ length: N }, () => Math.floor(rng.next() * TinyNet.V));
  const neg = new Float32Array(N * TinyNet.O);
  for (let i = 0; i < N; i++) for (let o = 0; o < TinyNet.O; o++) neg[i * TinyNet.O + o] = -(Math.sin(ids[i] * (o + 1) * 0.7) + 0.1 * (rng.next() - 0.5));
  return { ids, neg: be.fromHost(neg, [N, TinyNet.O]) };
}

async function trainNet(net: TinyNet, over: Partial<TrainOptions> & { steps: number }) {
  const accum = over.accum ?? 2;
  return train(
    net,
    {
      async microStep(step, micro, scale) {
        const bt = batchAt(net.be, step * accum + micro);
        const loss = withGrad(() => net.loss(bt.ids, bt.neg));
        backward(loss, scale, { free: true, keep: [loss] });
        bt.neg.dispose();
        return { loss: net.onDevice ? loss : loss.dataSync()[0], tokens: bt.ids.length };
      },
    },
    { lr: 2e-2, warmup: 2, weightDecay: 0.1, maxGradNorm: 0.5, accum, ...over },
  );
}

async function netValues(net: TinyNet): Promise<Record<string, Float32Array>> {
  const out: Record<string, Float32Array> = {};
  if (net.deviceParams) for (const [n, p] of net.deviceParams) out[n] = await p.read();
  else for (const [n, p] of net.params) out[n] = Float32Array.from(p.data);
  return out;
}

// ---- the tape on the device (first: no garbage of earlier tests for the collector to free meanwhile) -----------

test('the tape frees on the device: intermediate gradients as they pass, and with `free` the whole graph — only the parameters\' gradients and the kept loss stay', async (t) => {
  const be = needGpu(t);
  if (!be) return;
  const net = new TinyNet(be, 8);
  const bt = batchAt(be, 0);
  await be.sync();
  const before = be.rt.stats().liveBytes;
  const loss = withGrad(() => net.loss(bt.ids, bt.neg));
  backward(loss, 1, { free: true, keep: [loss] });
  await be.sync(); // constants released during the step go back at the next submit
  const grads = [...net.entries.values()].flatMap((e) => e.parts.map((p) => sizeClass(p.tensor.grad!.size * 4)));
  const expected = grads.reduce((a, b) => a + b, 0) + sizeClass(loss.size * 4);
  assert.equal(be.rt.stats().liveBytes - before, expected, 'GPU memory held after backward = gradients + loss');
  assert.throws(() => backward(loss), (e: unknown) => e instanceof OpError && /freed by an earlier backward/.test(e.message));
  loss.dispose();
  for (const p of net.deviceParams!.values()) p.dropGrad();
  await be.sync();
  assert.equal(be.rt.stats().liveBytes, before, 'nothing else is left');
});

// ---- the device optimizer against the host one ------------------------------------------------------------------

interface Spec {
  name: string;
  shape: number[];
  matrix?: boolean;
}

/** names that exercise the no-decay rule (bias, norm, A_log) and a size that takes three reduction levels */
const SPECS: Spec[] = [
  { name: 'layers.0.mixer.in_proj.weight', shape: [24, 16], matrix: true },
  { name: 'layers.0.mixer.in_proj.bias', shape: [24] },
  { name: 'layers.0.mixer.A_log', shape: [8, 4] },
  { name: 'layers.0.norm.weight', shape: [16] },
  { name: 'lm_head.weight', shape: [517, 509], matrix: true },
];

function hostParams(rng: Rng): Param[] {
  return SPECS.map((s) => ({ name: s.name, shape: s.shape, data: random(s.shape.reduce((a, b) => a * b, 1), rng), grad: null }));
}

function deviceParams(be: WebGpuBackend, host: readonly Param[]): DeviceParam[] {
  return host.map((p, k) => DeviceParam.of(p.name, be.fromHost(Float32Array.from(p.data), p.shape, SPECS[k].matrix ? { matrix: true } : undefined)));
}

/** the same gradient on both sides */
function setGrads(be: WebGpuBackend, host: readonly Param[], dev: readonly DeviceParam[], rng: Rng, scale: number, skip = -1): void {
  host.forEach((p, k) => {
    if (k === skip) {
      p.grad = null;
      dev[k].dropGrad();
      return;
    }
    const g = random(p.data.length, rng, scale);
    p.grad = g;
    const t = dev[k].tensors[0];
    t.grad?.dispose();
    t.grad = be.fromHost(Float32Array.from(g), t.shape);
  });
}

const OPTS = { lr: 3e-2, betas: [0.9, 0.95] as const, eps: 1e-8, weightDecay: 0.1, lrScale: (n: string) => (n.endsWith('A_log') ? 0.5 : 1) };

test('DeviceAdamW = AdamW (adamwUpdate) over several steps: values and moments ≤ 1e-6 relative; unclipped, null gradients skipped', async (t) => {
  const be = needGpu(t);
  if (!be) return;
  const rng = new Rng(1);
  const host = hostParams(rng);
  const dev = deviceParams(be, host);
  const ho = new AdamW(host, OPTS);
  const dopt = new DeviceAdamW(dev, OPTS);
  t.after(() => dopt.dispose());
  assert.deepEqual(dopt.groups(), ho.groups());
  const lrs = [3e-2, 1e-2, 2e-2, 5e-3, 3e-2];
  lrs.forEach((lr, k) => {
    setGrads(be, host, dev, rng, 0.5, k === 2 ? 1 : -1); // step 3: one parameter gets no gradient
    ho.step(lr);
    dopt.step(lr);
  });
  assert.equal(dopt.stepCount, ho.stepCount);
  let worst = 0;
  for (let k = 0; k < host.length; k++) {
    const e = relErr(await dev[k].read(), host[k].data);
    worst = Math.max(worst, e);
    assert.ok(e <= 1e-6, `${host[k].name}: values differ by ${e} (relative)`);
  }
  const hs = ho.exportState();
  const ds = await dopt.exportState();
  assert.deepEqual(ds.hyper, hs.hyper);
  assert.equal(ds.step, hs.step);
  assert.deepEqual(Object.keys(ds.tensors).sort(), Object.keys(hs.tensors).sort());
  for (const [key, tt] of Object.entries(hs.tensors)) {
    assert.deepEqual(ds.tensors[key].shape, tt.shape);
    const e = relErr(ds.tensors[key].data, tt.data);
    worst = Math.max(worst, e);
    assert.ok(e <= 1e-6, `${key}: moments differ by ${e}`);
  }
  t.diagnostic(`largest relative difference (‖Δ‖∞ / ‖host‖∞) of values and moments after 5 steps: ${worst.toExponential(2)}`);
});

test('gradient clipping on the device = clipGradNorm: the norm (three reduction levels), the factor, and the clipped update — read back only when asked', async (t) => {
  const be = needGpu(t);
  if (!be) return;
  const rng = new Rng(2);
  const host = hostParams(rng);
  const dev = deviceParams(be, host);
  const ho = new AdamW(host, OPTS);
  const dopt = new DeviceAdamW(dev, OPTS);
  t.after(() => dopt.dispose());
  const norms: Tensor[] = [];
  const want: number[] = [];
  for (const [k, scale] of [0.5, 1e-4, 2, 1e-4].entries()) {
    setGrads(be, host, dev, rng, scale, k === 1 ? 0 : -1);
    want.push(clipGradNorm(host, 1.0));
    ho.step(OPTS.lr);
    norms.push(dopt.clipAndStep(OPTS.lr, 1.0)); // nothing read: four steps recorded
  }
  assert.ok(want[0] > 1 && want[1] < 1, `the data clips at some steps and not at others: ${want}`);
  const got = await Promise.all(norms.map(async (n) => (await n.data())[0]));
  got.forEach((g, k) => assert.ok(Math.abs(g - want[k]) <= 1e-6 * want[k], `step ${k + 1}: norm ${g}, clipGradNorm ${want[k]}`));
  for (let k = 0; k < host.length; k++) {
    const e = relErr(await dev[k].read(), host[k].data);
    assert.ok(e <= 1e-6, `${host[k].name}: clipped updates differ by ${e}`);
  }
  // the [norm, factor] pair itself, and a non-finite norm: factor 1 (the gradients are left as they are, as on the host)
  setGrads(be, host, dev, rng, 3);
  const stats = await dopt.gradNorm(1.0).data();
  const n = gradNorm(host);
  assert.ok(Math.abs(stats[0] - n) <= 1e-6 * n && Math.abs(stats[1] - 1 / (n + 1e-6)) <= 1e-6 / n, `[${stats}] vs norm ${n}`);
  assert.deepEqual(Array.from(await dopt.gradNorm(null).data()).slice(1), [1], 'no maxNorm: factor 1');
  const g = random(16, rng);
  g[3] = Number.POSITIVE_INFINITY;
  dev[3].tensors[0].grad = be.fromHost(g, [16]);
  const inf = await dopt.gradNorm(1.0).data();
  assert.equal(inf[0], Number.POSITIVE_INFINITY);
  assert.equal(inf[1], 1);
  host[3].grad = g;
  assert.equal(clipGradNorm(host, 1.0), Number.POSITIVE_INFINITY);
  dopt.zeroGrad();
  assert.deepEqual(Array.from(await dopt.gradNorm(1.0).data()), [0, 1], 'gradients filled with zeros: norm 0');
  assert.ok(dev.every((p) => p.hasGrad), 'zeroGrad() keeps the tensors');
  dopt.zeroGrad({ setToNull: true });
  assert.ok(dev.every((p) => !p.hasGrad), 'zeroGrad({ setToNull }) drops them');
  assert.deepEqual(Array.from(await dopt.gradNorm(1.0).data()), [0, 1], 'no gradients: norm 0');
});

test('a packed parameter (experts in one checkpoint tensor, one GPU tensor per slice): updated, read, exported and imported as one', async (t) => {
  const be = needGpu(t);
  if (!be) return;
  const rng = new Rng(3);
  const E = 3, R = 8, C = 16;
  const packed = random(E * R * C, rng);
  const hostEntry: ParamEntry = { name: 'layers.0.moe.experts.weight', shape: [E, R, C], parts: [], packed: Float32Array.from(packed) };
  const devEntry: ParamEntry = { name: hostEntry.name, shape: [E, R, C], parts: [], packed: Float32Array.from(packed) };
  for (let e = 0; e < E; e++) {
    const off = e * R * C;
    hostEntry.parts.push({ tensor: cpu.fromHost(hostEntry.packed!.subarray(off, off + R * C), [R, C]), offset: off });
    devEntry.parts.push({ tensor: be.fromHost(packed.slice(off, off + R * C), [R, C], { matrix: true }), offset: off });
  }
  const hp = new TensorParam(hostEntry);
  const dp = new DeviceParam(devEntry);
  const ho = new AdamW([hp], OPTS);
  const dopt = new DeviceAdamW([dp], OPTS);
  t.after(() => dopt.dispose());
  for (let s = 0; s < 3; s++) {
    const g = random(E * R * C, rng, s === 1 ? 5 : 0.3);
    hp.grad = Float32Array.from(g);
    devEntry.parts.forEach((p) => {
      p.tensor.grad?.dispose();
      p.tensor.grad = be.fromHost(g.slice(p.offset, p.offset + R * C), [R, C]);
    });
    if (s === 2) assert.ok(relErr((await dp.readGrad())!, hp.grad!) <= 1e-6, 'packed gradient (read before the host clips it in place)');
    const n = (await dopt.clipAndStep(OPTS.lr, 1.0).data())[0];
    const hn = clipGradNorm([hp], 1.0);
    ho.step(OPTS.lr);
    assert.ok(Math.abs(n - hn) <= 1e-6 * hn, `step ${s + 1}: norm ${n} vs ${hn}`);
  }
  assert.ok(relErr(await dp.read(), hp.data) <= 1e-6, 'packed values');
  const ds = await dopt.exportState();
  const hs = ho.exportState();
  for (const k of Object.keys(hs.tensors)) assert.ok(relErr(ds.tensors[k].data, hs.tensors[k].data) <= 1e-6, k);
  // import the host's state into a fresh device optimizer over the host's values: the next step agrees
  dp.write(Float32Array.from(hp.data));
  const d2 = new DeviceAdamW([dp], OPTS);
  t.after(() => d2.dispose());
  d2.importState(hs);
  assert.equal(d2.stepCount, 3);
  const g = random(E * R * C, rng);
  hp.grad = Float32Array.from(g);
  devEntry.parts.forEach((p) => {
    p.tensor.grad?.dispose();
    p.tensor.grad = be.fromHost(g.slice(p.offset, p.offset + R * C), [R, C]);
  });
  d2.step(OPTS.lr);
  ho.step(OPTS.lr);
  assert.ok(relErr(await dp.read(), hp.data) <= 1e-6, 'after importState');
  // state for another model is refused naming the tensor
  const bad: OptimizerState = { ...hs, tensors: { ...hs.tensors, 'other.exp_avg': hs.tensors[`${hp.name}.exp_avg`] } };
  assert.throws(() => d2.importState(bad), /1 tensor\(s\) match no parameter of this model, e\.g\. "other\.exp_avg"/);
});

test('device parameters refuse what cannot train in place: bf16 weights, matrices split into row blocks', async (t) => {
  const be = needGpu(t);
  if (!be) return;
  const { createWebGpuBackend } = await import('../../src/backend/webgpu/index.js');
  const bf = await createWebGpuBackend({ weights: 'bf16' });
  t.after(() => bf.destroy());
  assert.throws(() => DeviceParam.of('w', bf.fromHost(new Float32Array(64), [8, 8], { matrix: true })), /stored as bf16 .*float32 weights/);
  assert.throws(() => TrainableLM.init(TINY_MAMBA, { backend: bf }), /stores weight matrices as bf16; training needs float32/);
  const small = await createWebGpuBackend({ maxBindingBytes: 1024 });
  t.after(() => small.destroy());
  assert.throws(() => DeviceParam.of('w', small.fromHost(new Float32Array(64 * 8), [64, 8], { matrix: true })), /split into row blocks .*one buffer/);
  assert.throws(() => DeviceParam.of('w', cpu.fromHost(new Float32Array(4), [4])), /on the cpu backend/);
});

test('one backward on the device = on the CPU: every gradient, accumulated over two micro-batches (≤ 1e-5 relative)', async (t) => {
  const be = needGpu(t);
  if (!be) return;
  const nets = [new TinyNet(cpu, 7), new TinyNet(be, 7)];
  const grads: Record<string, Float32Array>[] = [];
  for (const net of nets) {
    for (let m = 0; m < 2; m++) {
      const bt = batchAt(net.be, m);
      const loss = withGrad(() => net.loss(bt.ids, bt.neg));
      backward(loss, 0.5, { free: true, keep: [loss] });
    }
    const g: Record<string, Float32Array> = {};
    if (net.deviceParams) for (const [n, p] of net.deviceParams) g[n] = (await p.readGrad())!;
    else for (const [n, p] of net.params) g[n] = Float32Array.from(p.grad!);
    grads.push(g);
  }
  for (const n of Object.keys(grads[0])) {
    const e = relErr(grads[1][n], grads[0][n]);
    assert.ok(e <= 1e-5, `${n}: gradients differ by ${e}`);
  }
});

test('training on the device = on the CPU: the loss curve and gradient norms (≤ 1e-4 relative), the weights; GPU memory does not grow from step to step', async (t) => {
  const be = needGpu(t);
  if (!be) return;
  const steps = 12;
  const cpuNet = new TinyNet(cpu, 9);
  const c = await trainNet(cpuNet, { steps });
  const live: number[] = [];
  let peak = 0;
  const net = new TinyNet(be, 9);
  await be.sync();
  const base = be.rt.stats().liveBytes; // (what earlier tests left for the collector is counted here too)
  be.rt.resetPeak();
  const g = await trainNet(net, {
    steps,
    logEvery: 1,
    onStep: () => {
      const s = be.rt.stats();
      live.push(s.liveBytes);
      peak = Math.max(peak, s.peakLiveBytes);
    },
  });
  assert.equal(g.history.loss.length, steps);
  assert.ok(c.history.loss[steps - 1] < 0.7 * c.history.loss[0], `the CPU run learns: ${c.history.loss[0]} → ${c.history.loss[steps - 1]}`);
  for (const key of ['loss', 'grad_norm'] as const) {
    const e = relErr(g.history[key], c.history[key]);
    assert.ok(e <= 1e-4, `${key}: ${g.history[key].slice(0, 4)}… vs CPU ${c.history[key].slice(0, 4)}…: ${e}`);
  }
  assert.deepEqual(g.history.lr, c.history.lr);
  const cv = await netValues(cpuNet);
  const gv = await netValues(net);
  for (const n of Object.keys(cv)) assert.ok(relErr(gv[n], cv[n]) <= 1e-4, `${n}: trained weights differ by ${relErr(gv[n], cv[n])}`);
  // never more than after the first step (less when the collector frees what earlier tests dropped)
  assert.ok(live.slice(1).every((x) => x <= live[1]), `GPU memory in use after each step: ${live.join(', ')}`);
  t.diagnostic(`tiny network on ${be.name}: GPU tensor memory above what was in use before the run: at most ${peak - base} bytes during a step, ${live[1] - base} held between steps (moments, gradients)`);
});

test('device runs read back only when logging: logEvery 5 gives the history of logEvery 1, bit for bit', async (t) => {
  const be = needGpu(t);
  if (!be) return;
  const logged: number[] = [];
  const a = await trainNet(new TinyNet(be, 10), { steps: 7, logEvery: 1 });
  const b = await trainNet(new TinyNet(be, 10), { steps: 7, logEvery: 5, onStep: (s) => logged.push(s.step) });
  assert.deepEqual(b.history, { ...a.history, train_seconds: b.history.train_seconds });
  assert.deepEqual(logged, [1, 2, 3, 4, 5, 6, 7], 'onStep still reports every step (in batches)');
});

test('--resume on the device is exact: interrupted at step 3 and resumed = uninterrupted (losses and weights bit for bit); the checkpoint is the host format', async (t) => {
  const be = needGpu(t);
  if (!be) return;
  const steps = 6;
  const fullDir = tmp(t, 'full');
  const full = await trainNet(new TinyNet(be, 11), { steps, outDir: fullDir });
  const dir = tmp(t, 'resumed');
  const ac = new AbortController();
  const first = await trainNet(new TinyNet(be, 11), { steps, outDir: dir, logEvery: 1, signal: ac.signal, onStep: (s) => s.step === 3 && ac.abort() });
  assert.equal(first.stopped, 'interrupted');
  assert.equal(loadCheckpoint(dir).trainerState.step, 3);
  const net = new TinyNet(be, 99); // other initial values: all of them come from the checkpoint
  const rest = await trainNet(net, { steps, outDir: dir, resume: true });
  assert.deepEqual(rest.history.loss, full.history.loss);
  assert.deepEqual(rest.history.grad_norm, full.history.grad_norm);
  const a = loadCheckpoint(dir);
  const b = loadCheckpoint(fullDir);
  for (const [n, w] of Object.entries(b.weights)) assert.deepEqual(a.weights[n].data, w.data, `${n} after resume`);
  for (const [n, w] of Object.entries(b.optimizer!.tensors)) assert.deepEqual(a.optimizer!.tensors[n].data, w.data, `${n} after resume`);
  assert.deepEqual(Object.keys(a.weights).sort(), ['embed.weight', 'fc.bias', 'fc.weight', 'head.bias', 'head.experts']);
  assert.deepEqual(a.weights['head.experts'].shape, [2, TinyNet.O, TinyNet.H]);
});

test('a CPU run resumed on the device (and back) continues the CPU curve (≤ 1e-4 relative)', async (t) => {
  const be = needGpu(t);
  if (!be) return;
  const steps = 6;
  const full = await trainNet(new TinyNet(cpu, 12), { steps });
  for (const [from, to] of [[cpu, be], [be, cpu]] as const) {
    const dir = tmp(t, 'switch');
    const ac = new AbortController();
    await trainNet(new TinyNet(from, 12), { steps, outDir: dir, logEvery: 1, signal: ac.signal, onStep: (s) => s.step === 3 && ac.abort() });
    const r = await trainNet(new TinyNet(to, 12), { steps, outDir: dir, resume: true });
    const e = relErr(r.history.loss, full.history.loss);
    assert.ok(e <= 1e-4, `${from.name} → ${to.name}: losses ${r.history.loss} vs ${full.history.loss}`);
  }
});

test('a leaf\'s gradient outlives a scope around the step that made it (a training step run inside one)', () => {
  const w = cpu.fromHost(Float32Array.from([1, 2, 3]), [3]);
  w.requiresGrad = true;
  scope(() => {
    const y = withGrad(() => ops.scale(w, 2));
    backward(y, 1, { free: true });
  });
  assert.ok(w.grad && !w.grad.isDisposed);
  assert.deepEqual(Array.from(w.grad.dataSync()), [2, 2, 2]);
});

test('a derived weight (A = −exp(A_log)) recomputed after an optimizer step outlives the forward that asked for it (evaluation after training)', () => {
  const src = cpu.fromHost(Float32Array.from([0, 1, -1]), [3]);
  const source = new Lazy(() => src);
  source.get(); // a parameter that training asked for
  const d = new Derived(source, ops.negExp, cpu.fromHost(Float32Array.from([-1, -Math.E, -1 / Math.E]), [3]));
  src.version++; // an optimizer step
  const first = scope(() => d.get()); // a forward's scope (the value does not escape it)
  assert.equal(first.isDisposed, false, 'the cached value survives the scope');
  assert.equal(scope(() => d.get()), first, 'and is the one used next time');
  src.version++;
  const second = scope(() => d.get());
  assert.notEqual(second, first);
  assert.ok(first.isDisposed, 'the previous value is freed when replaced');
});

// ---- model level: needs the WebGPU backward kernels of the model's ops ------------------------------------------


/**
 * Run a model-level check; an op WebGPU does not differentiate yet ends it as TODO naming the op (the backward
 * kernels land from other branches), unless WebGPU training is required (MAMBA_TS_REQUIRE_WEBGPU=1: then it fails).
 */
async function modelLevel(t: TestContext, fn: (be: WebGpuBackend) => Promise<void>): Promise<void> {
  const be = needGpu(t);
  if (!be) return;
  try {
    await fn(be);
  } catch (e) {
    const m = e instanceof Error ? /has no differentiable (\w+) yet/.exec(e.message) : null;
    if (m && e instanceof OpError && process.env.MAMBA_TS_REQUIRE_WEBGPU !== '1') {
      t.todo(`webgpu has no differentiable ${m[1]} yet (its backward kernel lands with another branch): ${e.message.slice(0, 160)}`);
      return;
    }
    throw e;
  }
}

/** next-token batch of a synthetic task */
function lmBatch(args: Partial<JobArgs>, be: Backend) {
  const job = buildJob({ ...DEFAULT_ARGS, ...args }, undefined, { backend: be });
  return job;
}

test('model level: a tiny Mamba built on webgpu has the CPU\'s initial weights and gradients (≤ 1e-4 relative)', async (t) => {
  await modelLevel(t, async (be) => {
    const c = TrainableLM.init(TINY_MAMBA, { seed: 3 });
    const g = TrainableLM.init(TINY_MAMBA, { seed: 3, backend: be });
    assert.throws(() => g.params, /lives on webgpu.*deviceParams/);
    for (const [n, p] of c.params) assert.deepEqual(await g.deviceParams!.get(n)!.read(), p.data, `${n}: the same initial values`);
    const rng = new Rng(5);
    const b = 2, L = 12;
    const inputs = Int32Array.from({ length: b * L }, () => Math.floor(rng.next() * 16));
    const targets = Int32Array.from({ length: b * L }, (_, i) => (i % L === L - 1 ? -100 : inputs[i + 1]));
    for (const lm of [c, g]) {
      const r = await withGrad(() => lm.loss(inputs, targets, b, L));
      backward(r.loss, 1, { free: true, keep: [r.loss, r.correctTensor] });
    }
    for (const [n, p] of c.params) {
      const e = relErr((await g.deviceParams!.get(n)!.readGrad())!, p.grad!);
      assert.ok(e <= 1e-4, `${n}: gradient differs by ${e}`);
    }
  });
});

test('model level: selective copying trained on webgpu follows the CPU loss curve (≤ 1e-3 relative over 6 steps) and resumes exactly', async (t) => {
  await modelLevel(t, async (be) => {
    const args: Partial<JobArgs> = { task: 'selective-copying', seqLen: 24, numTokens: 4, vocab: 8, hidden: 16, layers: 2, state: 4, batch: 2, accum: 2, steps: 6, lr: 5e-3, warmup: 2, evalEvery: 1000, saveEvery: 1000, evalBatches: 1 };
    const run = async (backend: Backend, out?: string, extra: Partial<TrainOptions> = {}) => {
      const job = lmBatch(args, backend);
      return { job, r: await train(job.model, job.hooks, { steps: 6, lr: 5e-3, warmup: 2, weightDecay: 0, accum: 2, ...job.trainOptions, outDir: out, args: { ...DEFAULT_ARGS, ...args }, ...extra }) };
    };
    const c = await run(cpu);
    let peak = 0;
    const live: number[] = [];
    await be.sync();
    const base = be.rt.stats().liveBytes;
    be.rt.resetPeak();
    const g = await run(be, tmp(t, 'copy'), {
      logEvery: 1,
      onStep: () => {
        const m = be.rt.stats();
        peak = Math.max(peak, m.peakLiveBytes);
        live.push(m.liveBytes);
      },
    });
    const e = relErr(g.r.history.loss, c.r.history.loss);
    assert.ok(e <= 1e-3, `losses ${g.r.history.loss} vs CPU ${c.r.history.loss}`);
    assert.ok(live.slice(1).every((x) => x <= live[1]), `GPU memory in use after each step: ${live.join(', ')}`);
    t.diagnostic(`tiny Mamba (selective copying, batch 2 × L 24) on ${be.name}: GPU tensor memory above what was in use before the run (its weights among it): at most ${peak - base} bytes during a step`);
    const dir = tmp(t, 'copy-resume');
    const ac = new AbortController();
    await run(be, dir, { logEvery: 1, signal: ac.signal, onStep: (s) => s.step === 3 && ac.abort() });
    const rest = await run(be, dir, { resume: true });
    assert.deepEqual(rest.r.history.loss, g.r.history.loss, 'resumed = uninterrupted, bit for bit');
  });
});

for (const name of ['mamba-tiny', 'falcon-mamba-tiny', 'mamba2-tiny', 'mamba2-groups', 'jamba-tiny', 'bamba-tiny', 'granite-hybrid-tiny', 'nemotron-h-tiny', 'llama-tiny']) {
  test(`model level: ${name} fine-tuned on webgpu — every gradient of a step of lmStep = the CPU's (≤ 5e-4 relative: float32 through a whole model)`, async (t) => {
    await modelLevel(t, async (be) => {
      const dir = hfFixture(name);
      const c = TrainableLM.fromPretrained(dir);
      const g = TrainableLM.fromPretrained(dir, { backend: be });
      const rng = new Rng(9);
      const b = 2, L = 8;
      const inputs = Int32Array.from({ length: b * L }, () => 1 + Math.floor(rng.next() * Math.min(60, c.vocabSize - 1)));
      const targets = Int32Array.from({ length: b * L }, (_, i) => (i % L === L - 1 ? -100 : inputs[i + 1]));
      const bt = { inputs, targets, batch: b, seqLen: L };
      const rc = await lmStep(c, bt, 1);
      const rg = await lmStep(g, bt, 1);
      const lossG = (await (rg.loss as Tensor).data())[0];
      assert.ok(Math.abs(lossG - (rc.loss as number)) <= 1e-4 * Math.abs(rc.loss as number), `loss ${lossG} vs CPU ${rc.loss}`);
      let worst = [0, ''] as [number, string];
      for (const [n, p] of c.params) {
        const dg = await g.deviceParams!.get(n)!.readGrad();
        if (p.grad === null) {
          assert.equal(dg, null, `${n}: no gradient on the CPU (an expert no token chose), one on webgpu`);
          continue;
        }
        const e = relErr(dg!, p.grad);
        if (e > worst[0]) worst = [e, n];
        assert.ok(e <= 5e-4, `${n}: gradient differs by ${e}`);
      }
      t.diagnostic(`${name}: largest gradient difference ${worst[0].toExponential(2)} (${worst[1]})`);
    });
  });
}

test('model level: mamba-ts train --backend webgpu writes the same checkpoint files as on cpu, and --resume continues it', async (t) => {
  await modelLevel(t, async () => {
    const out = tmp(t, 'cli');
    const io = (lines: string[]) => ({ stdout: { write: (s: string) => (lines.push(s), true) }, stderr: { write: (s: string) => (lines.push(s), true) }, handleSigint: false });
    const flags = ['--task', 'selective-copying', '--seq-len', '24', '--num-tokens', '4', '--vocab', '8', '--hidden', '16', '--layers', '1', '--state', '4', '--batch', '2', '--accum', '2', '--eval-batches', '1', '--out', out, '--backend', 'webgpu', '--json'];
    const lines: string[] = [];
    let code = await cli(['train', ...flags, '--steps', '3'], io(lines) as never);
    if (code !== 0) {
      const text = lines.join('');
      const m = /has no differentiable (\w+) yet/.exec(text);
      if (m) throw new OpError(text.slice(text.indexOf(m[0]) - 80));
      assert.fail(text);
    }
    for (const f of ['model.safetensors', 'config.json', 'optimizer.safetensors', 'trainer_state.json', 'curves.svg']) assert.ok(fs.existsSync(path.join(out, f)), f);
    const summary = JSON.parse(lines.join('').trim().split('\n').pop()!);
    assert.ok(summary.gpu_peak_bytes > 0 && summary.gpu_peak_tensor_bytes > 0, JSON.stringify(summary));
    code = await cli(['train', ...flags, '--steps', '5', '--resume'], io(lines) as never);
    assert.equal(code, 0, lines.join(''));
    assert.equal(loadCheckpoint(out).trainerState.step, 5);
  });
});

test('no temporary folder is left behind', () => {
  assert.deepEqual(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(TMP_PREFIX)), []);
});
