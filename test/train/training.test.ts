/**
 * End-to-end training: loss goes down on every task, resume reproduces an uninterrupted run exactly,
 * fine-tuning starts from an HF fixture whose trainable forward matches the HF logits, and the saved
 * checkpoint loads back through the inference path with the same logits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { noGrad } from '../../src/autograd/var.js';
import { loadModel } from '../../src/model.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { byteLevelTokenizerJson } from '../../src/train/byte_tokenizer.js';
import { buildJob, DEFAULT_ARGS, evaluateCheckpoint, loadTrainableLM, type JobArgs } from '../../src/train/jobs.js';
import { TrainableMamba2LM } from '../../src/train/mamba2_lm.js';
import { TrainableMambaLM } from '../../src/train/mamba_lm.js';
import { train } from '../../src/train/trainer.js';
import { fashionMnistFiles } from '../../src/train/data.js';
import { hfFixture, loadReference, maxAbsDiff, ROOT } from '../helpers.js';

const tmp = (name: string): string => fs.mkdtempSync(path.join(os.tmpdir(), `mamba-ts-${name}-`));
const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;

async function run(args: Partial<JobArgs>, out?: string, resume = false) {
  const a: JobArgs = { ...DEFAULT_ARGS, evalEvery: 1000, saveEvery: 1000, ...args };
  const job = buildJob(a);
  return train(job.model, job.hooks, { steps: a.steps, lr: a.lr, warmup: a.warmup, weightDecay: a.weightDecay, accum: a.accum, outDir: out, resume, args: { ...a }, ...job.trainOptions, ...(job.tokenizerJson ? { extraFiles: { 'tokenizer.json': new TextEncoder().encode(job.tokenizerJson) } } : {}) });
}

test('text: a byte-level Mamba learns a small corpus (loss well below the uniform 5.55 nats)', async () => {
  const dir = tmp('text');
  fs.writeFileSync(path.join(dir, 'a.txt'), 'the state space model remembers and forgets. '.repeat(60));
  const r = await run({ task: 'text', data: dir, steps: 40, batch: 4, seqLen: 32, hidden: 32, layers: 1, lr: 1e-2, warmup: 5 });
  const first = r.history.loss[0];
  const last = mean(r.history.loss.slice(-5));
  assert.ok(first > 4.5, `initial loss ${first} should be near ln 256 = 5.55`);
  assert.ok(last < 2.0, `final loss ${last} should be < 2.0 (from ${first})`);
  assert.ok(r.finalMetrics.val_loss < 2.5, `val loss ${r.finalMetrics.val_loss}`);
});

test('selective copying: loss falls below half of its start in a short run', async () => {
  const r = await run({ task: 'selective-copying', seqLen: 24, numTokens: 4, vocab: 8, steps: 60, batch: 8, hidden: 32, layers: 2, lr: 5e-3, warmup: 5, weightDecay: 0 });
  const first = mean(r.history.loss.slice(0, 3));
  const last = mean(r.history.loss.slice(-5));
  assert.ok(last < 0.75 * first, `loss ${first} → ${last}`);
});

test('induction heads: loss goes down in a short run', async () => {
  const r = await run({ task: 'induction-heads', seqLen: 32, vocab: 8, steps: 60, batch: 16, hidden: 32, layers: 2, lr: 5e-3, warmup: 5, weightDecay: 0 });
  const first = mean(r.history.loss.slice(0, 5));
  const last = mean(r.history.loss.slice(-10));
  assert.ok(first > 1.5, `initial loss ${first} should be near ln 6`);
  assert.ok(last < first - 0.1, `loss ${first} → ${last}`);
});

test('sequential Fashion-MNIST: the S4D classifier trains on real images', async (t) => {
  if (!fs.existsSync(fashionMnistFiles('train').images)) {
    if (process.env.MAMBA_TS_REQUIRE_FMNIST === '1') assert.fail(`Fashion-MNIST files are missing (${fashionMnistFiles('train').images}); install dataset-fashion-mnist`);
    t.skip('dataset-fashion-mnist is not installed');
    return;
  }
  const r = await run({ task: 'fmnist', s4dInit: 'legs', trainLimit: 256, testLimit: 64, steps: 30, batch: 8, hidden: 16, layers: 1, state: 16, lr: 5e-3, warmup: 3, weightDecay: 0 });
  const first = mean(r.history.loss.slice(0, 3));
  const last = mean(r.history.loss.slice(-5));
  assert.ok(first > 1.9, `initial loss ${first} should be near ln 10`);
  assert.ok(last < first - 0.3, `loss ${first} → ${last}`);
});

test('resume continues with the same loss curve as an uninterrupted run', async () => {
  const args: Partial<JobArgs> = { task: 'selective-copying', seqLen: 16, numTokens: 3, vocab: 8, batch: 4, hidden: 16, layers: 1, lr: 3e-3, warmup: 2 };
  const full = await run({ ...args, steps: 6 }, tmp('full'));
  const again = await run({ ...args, steps: 6 });
  assert.deepEqual(again.history.loss, full.history.loss, 'same seed, same curve');
  // the run is killed after step 3 (its step-3 checkpoint survives), then resumed
  const out = tmp('resume');
  await runUntil({ ...args, steps: 6 }, out, 3);
  const resumed = await run({ ...args, steps: 6 }, out, true);
  assert.equal(resumed.history.loss.length, 6);
  assert.deepEqual(resumed.history.loss, full.history.loss, 'resumed curve = uninterrupted curve');
  await assert.rejects(run({ ...args, steps: 6, batch: 5 }, out, true), /--batch is 5 but the checkpoint was trained with 4/);
});

/** train a `steps`-step run but stop (as if killed) after `stop` steps, with a checkpoint there */
async function runUntil(args: Partial<JobArgs>, out: string, stop: number) {
  const a: JobArgs = { ...DEFAULT_ARGS, evalEvery: 1000, ...args, saveEvery: stop };
  const job = buildJob(a);
  let steps = 0;
  const hooks = {
    ...job.hooks,
    microStep: (s: number, m: number) => {
      if (s >= stop) throw new Error('killed');
      steps++;
      return job.hooks.microStep(s, m);
    },
  };
  await assert.rejects(train(job.model, hooks, { steps: a.steps, lr: a.lr, warmup: a.warmup, weightDecay: a.weightDecay, saveEvery: a.saveEvery, outDir: out, args: { ...a }, ...job.trainOptions }), /killed/);
  assert.equal(steps, stop);
}

test('fine-tuning starts from an HF checkpoint: trainable forward = HF logits; the saved result loads back with the same logits', async () => {
  const dir = hfFixture('mamba-tiny');
  const ref = loadReference(dir);
  const ids = ref.ids('input_ids');
  const [b, L] = [ids.length, ids[0].length];
  const model = TrainableMambaLM.fromPretrained(dir);
  const logits = noGrad(() => model.forward(Int32Array.from(ids.flat()), b, L));
  const d0 = maxAbsDiff(logits.data, ref.f32('logits'));
  assert.ok(d0 <= 1e-4, `trainable forward vs HF logits: max |Δ| = ${d0}`);

  const data = tmp('ft-data');
  fs.writeFileSync(path.join(data, 'x.md'), 'fine-tuning a state space model on a few words. '.repeat(30));
  const out = tmp('ft');
  const r = await run({ task: 'text', data, from: dir, steps: 4, batch: 2, seqLen: 16, lr: 1e-3, warmup: 1 }, out);
  assert.equal(r.history.loss.length, 4);
  const tuned = TrainableMambaLM.fromPretrained(out);
  const again = TrainableMambaLM.fromPretrained(out);
  const x = Int32Array.from(ids.flat());
  const l1 = noGrad(() => tuned.forward(x, b, L)).data;
  assert.deepEqual(Array.from(noGrad(() => again.forward(x, b, L)).data), Array.from(l1), 'reloading is exact');
  assert.ok(maxAbsDiff(l1, ref.f32('logits')) > 1e-4, 'the weights did change');
  const inf = await loadModel(out);
  const lf = await inf.forward(ids);
  const d1 = maxAbsDiff(lf.logits.data, l1);
  assert.ok(d1 <= 1e-4, `inference path vs trainable forward on the saved checkpoint: ${d1}`);
  const metrics = await evaluateCheckpoint(out);
  assert.ok(Number.isFinite(metrics.val_loss));
});

test('the byte-level tokenizer.json maps every byte to its id and back', () => {
  const dir = tmp('tok');
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), byteLevelTokenizerJson());
  const tok = Tokenizer.fromFile(dir);
  const text = 'Mamba: h_t = Ā h_{t-1} + B̄ x_t — ✓ 🐍\n\ttabs';
  const ids = tok.encode(text);
  assert.deepEqual(ids, Array.from(new TextEncoder().encode(text)));
  assert.equal(tok.decode(ids), text);
});

test('the package sources are there for npm start', () => {
  assert.ok(fs.existsSync(path.join(ROOT, 'src', 'model.ts')));
});

for (const name of ['mamba2-tiny', 'mamba2-groups']) {
  test(`Mamba-2 fine-tuning (${name}): trainable forward = HF logits; a few steps later the checkpoint loads back with the same logits`, async () => {
    const dir = hfFixture(name);
    const ref = loadReference(dir);
    const ids = ref.ids('input_ids');
    const [b, L] = [ids.length, ids[0].length];
    const x = Int32Array.from(ids.flat());
    const model = TrainableMamba2LM.fromPretrained(dir);
    const d0 = maxAbsDiff(noGrad(() => model.forward(x, b, L)).data, ref.f32('logits'));
    assert.ok(d0 <= 1e-4, `trainable Mamba-2 forward vs HF logits: max |Δ| = ${d0}`);
    const data = tmp('ft2-data');
    fs.writeFileSync(path.join(data, 'x.md'), 'selective state spaces, chunked and dual. '.repeat(30));
    const out = tmp('ft2');
    const r = await run({ task: 'text', data, from: dir, steps: 3, batch: 2, seqLen: 24, lr: 1e-3, warmup: 1 }, out);
    assert.ok(r.history.loss.every(Number.isFinite));
    const tuned = loadTrainableLM(out);
    assert.ok(tuned instanceof TrainableMamba2LM);
    const l1 = noGrad(() => tuned.forward(x, b, L)).data;
    assert.ok(maxAbsDiff(l1, ref.f32('logits')) > 1e-5, 'the weights changed');
    const inf = await loadModel(out);
    const d1 = maxAbsDiff((await inf.forward(ids)).logits.data, l1);
    assert.ok(d1 <= 1e-4, `inference path vs trainable forward on the saved Mamba-2 checkpoint: ${d1}`);
  });
}
