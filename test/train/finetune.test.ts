/**
 * Fine-tuning every architecture mamba-ts loads, through the one model definition (the inference model with the
 * autograd tape): its forward equals the HF logits; its gradient equals a finite-difference directional
 * derivative of the loss; a few training steps later the saved folder (same names, same config.json text) loads
 * back through `loadModel` with the trained model's logits.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backward, withGrad } from '../../src/autograd/tape.js';
import { loadModel } from '../../src/api/load.js';
import { buildJob, DEFAULT_ARGS, evaluateCheckpoint, loadTrainableLM, type JobArgs } from '../../src/train/jobs.js';
import { TrainableLM } from '../../src/train/lm.js';
import { train, TrainError } from '../../src/train/trainer.js';
import { UntrainableModelError } from '../../src/train/errors.js';
import { Rng } from '../../src/generate/rng.js';
import { hfFixture, loadReference, maxAbsDiff } from '../helpers.js';

const TMP_PREFIX = `mamba-ts-finetune-${process.pid}-`;
function tmp(t: TestContext, name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${name}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function run(args: Partial<JobArgs>, out: string, threads = 1) {
  const a: JobArgs = { ...DEFAULT_ARGS, evalEvery: 1000, saveEvery: 1000, ...args };
  const job = buildJob(a);
  return { model: job.model as TrainableLM, ...await train(job.model, job.hooks, { steps: a.steps, lr: a.lr, warmup: a.warmup, weightDecay: a.weightDecay, accum: a.accum, outDir: out, args: { ...a }, threads, ...job.trainOptions }) };
}

async function logits(model: TrainableLM, ids: number[][]): Promise<Float32Array> {
  return Float32Array.from((await model.lm.logitsTensor(ids)).dataSync());
}

/** next-token batch from the fixture's input ids: inputs = ids, targets = ids shifted by one (last: ignored) */
function batch(ids: number[][]) {
  const [b, L] = [ids.length, ids[0].length];
  const inputs = Int32Array.from(ids.flat());
  const targets = Int32Array.from({ length: b * L }, (_, i) => (i % L === L - 1 ? -100 : inputs[i + 1]));
  return { inputs, targets, b, L };
}

const FIXTURES = ['mamba-tiny', 'falcon-mamba-tiny', 'mamba2-tiny', 'mamba2-groups', 'jamba-tiny', 'bamba-tiny', 'granite-hybrid-tiny', 'nemotron-h-tiny', 'llama-tiny'];

for (const name of FIXTURES) {
  test(`${name}: trainable forward = HF logits, gradient = finite differences, fine-tuned folder reloads with the same logits`, async (t) => {
    const dir = hfFixture(name);
    const ref = loadReference(dir);
    const ids = ref.ids('input_ids');
    const model = TrainableLM.fromPretrained(dir);
    const d0 = maxAbsDiff(await logits(model, ids), ref.f32('logits'));
    assert.ok(d0 <= 1e-4, `trainable forward vs HF logits: max |Δ| = ${d0}`);

    // gradient: Σ grad·v against central differences of the loss along a random direction v
    const { inputs, targets, b, L } = batch(ids);
    const ce = await withGrad(() => model.loss(inputs, targets, b, L));
    backward(ce.loss);
    const all = [...model.params.values()];
    for (const p of all) assert.ok(p.grad, `parameter ${p.name} got a gradient`);
    const base = all.map((p) => Float32Array.from(p.data));
    const check = async (params: typeof all): Promise<{ smooth: boolean; analytic: number; numeric: number }> => {
      const rng = new Rng(7);
      const dirs = params.map((p) => Float32Array.from({ length: p.data.length }, () => rng.next() * 2 - 1));
      let analytic = 0;
      params.forEach((p, k) => {
        const g = p.grad!;
        for (let i = 0; i < g.length; i++) analytic += g[i] * dirs[k][i];
      });
      const lossAt = async (eps: number): Promise<number> => {
        params.forEach((p) => {
          const k = all.indexOf(p);
          for (let i = 0; i < p.data.length; i++) p.data[i] = base[k][i] + eps * dirs[params.indexOf(p)][i];
          p.markUpdated();
        });
        return (await model.loss(inputs, targets, b, L)).loss.dataSync()[0];
      };
      const fd = async (eps: number) => ((await lossAt(eps)) - (await lossAt(-eps))) / (2 * eps);
      const numeric = await fd(2e-3);
      const half = await fd(1e-3);
      await lossAt(0);
      return { smooth: Math.abs(numeric - half) <= 1e-2 * Math.max(1e-2, Math.abs(numeric)), analytic, numeric };
    };
    let gc = await check(all);
    if (!gc.smooth) {
      // the loss jumps along v: a mixture of experts switched experts for some token (a discrete choice). Check
      // along the parameters after the last routing decision instead: the last layer's experts, the final norm
      // and an untied head (the router's and the combine's gradients are checked by themselves in moe.test.ts).
      assert.ok(/moe|jamba|granite/i.test(name), `${name}: the loss is not smooth along the random direction`);
      const last = Math.max(...all.map((p) => Number(/layers\.(\d+)\./.exec(p.name)?.[1] ?? -1)));
      const after = all.filter((p) => (p.name.includes(`layers.${last}.`) && /experts|input_linear|output_linear|shared_mlp/.test(p.name)) || (!p.name.includes('layers.') && !/embed/.test(p.name)));
      gc = await check(after);
      assert.ok(gc.smooth, `${name}: the loss is not smooth along the last layer's experts either`);
    }
    assert.ok(Math.abs(gc.numeric - gc.analytic) <= 2e-2 * Math.max(1e-3, Math.abs(gc.analytic)), `directional derivative: tape ${gc.analytic}, finite differences ${gc.numeric}`);

    // a few steps of fine-tuning, saved and reloaded
    const data = tmp(t, 'data');
    fs.writeFileSync(path.join(data, 'x.md'), 'selective state spaces, attention and experts. '.repeat(30));
    const out = tmp(t, 'out');
    const r = await run({ task: 'text', data, from: dir, steps: 2, batch: 2, seqLen: 12, lr: 5e-3, warmup: 1 }, out);
    assert.equal(r.history.loss.length, 2);
    assert.ok(r.history.loss.every(Number.isFinite));
    assert.equal(fs.readFileSync(path.join(out, 'config.json'), 'utf8'), fs.readFileSync(path.join(dir, 'config.json'), 'utf8'), 'config.json is written as the source had it');
    const tuned = loadTrainableLM(out);
    const l1 = await logits(tuned, ids);
    assert.deepEqual(Array.from(l1), Array.from(await logits(r.model, ids)), 'the reloaded checkpoint is the trained model, exactly');
    assert.ok(maxAbsDiff(l1, ref.f32('logits')) > 1e-5, 'the weights changed');
    const inf = await loadModel(out);
    const d1 = maxAbsDiff((await inf.forward(ids)).logits.data, l1);
    assert.ok(d1 <= 1e-4, `inference path vs trainable forward on the saved checkpoint: ${d1}`);
    const metrics = await evaluateCheckpoint(out);
    assert.ok(Number.isFinite(metrics.val_loss));
    assert.equal(metrics.val_loss, r.finalMetrics.val_loss, "evaluating the saved checkpoint gives the run's final validation loss");
  });
}

test('data-parallel fine-tuning of Granite 4.0-H (experts packed in one tensor, shared by slices): 2 worker threads = 1 thread', async (t) => {
  const data = tmp(t, 'data');
  fs.writeFileSync(path.join(data, 'x.md'), 'experts, shared experts and state spaces. '.repeat(30));
  const args = { task: 'text' as const, data, from: hfFixture('granite-hybrid-tiny'), steps: 2, batch: 2, seqLen: 12, accum: 2, lr: 5e-3, warmup: 1 };
  const one = await run(args, tmp(t, 'one'));
  const two = await run(args, tmp(t, 'two'), 2);
  assert.deepEqual(two.history.loss, one.history.loss);
  const original = TrainableLM.fromPretrained(hfFixture('granite-hybrid-tiny'));
  for (const [name, p] of one.model.params) {
    const q = two.model.params.get(name)!;
    assert.deepEqual(Array.from(q.data), Array.from(p.data), `${name}: the same update on 1 and 2 threads`);
    if (/input_linear/.test(name)) assert.ok(maxAbsDiff(p.data, original.params.get(name)!.data) > 0, `${name} was trained`);
  }
});

test('--from a model_type mamba-ts does not know: an UntrainableModelError naming it', (t) => {
  const dir = tmp(t, 'unknown');
  fs.copyFileSync(path.join(hfFixture('mamba-tiny'), 'config.json'), path.join(dir, 'config.json'));
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, model_type: 'rwkv7' }));
  assert.throws(() => loadTrainableLM(dir), (e: unknown) => e instanceof UntrainableModelError && e instanceof TrainError && e.modelType === 'rwkv7' && /mamba2/.test(e.message));
});

test('the package entry exports fine-tuning: TrainableLM, withGrad, backward (the README example)', async () => {
  const api = await import('../../src/index.js');
  const lm = api.TrainableLM.fromPretrained(hfFixture('mamba2-tiny'));
  const ids = loadReference(hfFixture('mamba2-tiny')).ids('input_ids');
  const { inputs, targets, b, L } = batch(ids);
  const { loss } = await api.withGrad(() => lm.loss(inputs, targets, b, L));
  api.backward(loss);
  const grads = [...lm.params.values()].map((p) => p.grad);
  assert.ok(grads.every((g) => g !== null && g.some((v) => v !== 0)), 'every parameter has a non-zero gradient');
});

test('no temporary folder is left behind', () => {
  assert.deepEqual(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(TMP_PREFIX)), []);
});
