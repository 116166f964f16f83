/**
 * End-to-end training: loss goes down on every task, resume reproduces an uninterrupted run exactly.
 * Fine-tuning every architecture from its HF fixture: finetune.test.ts.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { byteLevelTokenizerJson } from '../../src/train/byte-tokenizer.js';
import { buildJob, DEFAULT_ARGS, packageSources, type JobArgs } from '../../src/train/jobs.js';
import { train } from '../../src/train/trainer.js';
import { fashionMnistFiles, loadTextCorpus } from '../../src/train/data.js';
import { ROOT } from '../helpers.js';

/** every temporary folder of this file starts with this (the last test checks that none is left) */
const TMP_PREFIX = `mamba-ts-training-${process.pid}-`;
/** a temporary folder, removed when test `t` ends */
function tmp(t: TestContext, name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${name}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;

/** train a job; the result and the trained model */
async function run(args: Partial<JobArgs>, out?: string, resume = false) {
  const a: JobArgs = { ...DEFAULT_ARGS, evalEvery: 1000, saveEvery: 1000, ...args };
  const job = buildJob(a);
  return { model: job.model, ...await train(job.model, job.hooks, { steps: a.steps, lr: a.lr, warmup: a.warmup, weightDecay: a.weightDecay, accum: a.accum, outDir: out, resume, args: { ...a }, ...job.trainOptions, ...(job.tokenizerJson ? { extraFiles: { 'tokenizer.json': new TextEncoder().encode(job.tokenizerJson) } } : {}) }) };
}

test('text: a byte-level Mamba learns a small corpus (loss well below the uniform 5.55 nats)', async (t) => {
  const dir = tmp(t, 'text');
  fs.writeFileSync(path.join(dir, 'a.txt'), 'the state space model remembers and forgets. '.repeat(60));
  const r = await run({ task: 'text', data: dir, steps: 40, batch: 4, seqLen: 32, hidden: 32, layers: 1, lr: 1e-2, warmup: 5 });
  const first = r.history.loss[0];
  const last = mean(r.history.loss.slice(-5));
  assert.ok(first > 4.5, `initial loss ${first} should be near ln 256 = 5.55`);
  assert.ok(last < 2.0, `final loss ${last} should be < 2.0 (from ${first})`);
  assert.ok(r.finalMetrics.val_loss < 2.5, `val loss ${r.finalMetrics.val_loss}`);
});

test('selective copying: loss falls by more than a quarter of its start in a short run', async () => {
  const r = await run({ task: 'selective-copying', seqLen: 24, numTokens: 4, vocab: 8, steps: 60, batch: 8, hidden: 32, layers: 2, lr: 5e-3, warmup: 5, weightDecay: 0 });
  const first = mean(r.history.loss.slice(0, 3));
  const last = mean(r.history.loss.slice(-5));
  assert.ok(last < 0.75 * first, `loss ${first} → ${last}: should end below 3/4 of its start (seed 0 ends near 0.69×)`);
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

test('resume continues with the same loss curve as an uninterrupted run', async (t) => {
  const args: Partial<JobArgs> = { task: 'selective-copying', seqLen: 16, numTokens: 3, vocab: 8, batch: 4, hidden: 16, layers: 1, lr: 3e-3, warmup: 2 };
  const fullDir = tmp(t, 'full');
  const full = await run({ ...args, steps: 6 }, fullDir);
  const again = await run({ ...args, steps: 6 });
  assert.deepEqual(again.history.loss, full.history.loss, 'same seed, same curve');
  // the saved run holds that curve, one entry per step
  const saved = JSON.parse(fs.readFileSync(path.join(fullDir, 'trainer_state.json'), 'utf8')) as { step: number; history: { step: number[]; loss: number[] } };
  assert.equal(saved.step, 6);
  assert.deepEqual(saved.history.step, [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(saved.history.loss, full.history.loss);
  // the run is killed after step 3 (its step-3 checkpoint survives), then resumed
  const out = tmp(t, 'resume');
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
    microStep: (s: number, m: number, scale: number) => {
      if (s >= stop) throw new Error('killed');
      steps++;
      return job.hooks.microStep(s, m, scale);
    },
  };
  await assert.rejects(train(job.model, hooks, { steps: a.steps, lr: a.lr, warmup: a.warmup, weightDecay: a.weightDecay, saveEvery: a.saveEvery, outDir: out, args: { ...a }, ...job.trainOptions }), /killed/);
  assert.equal(steps, stop);
}

test('the byte-level tokenizer.json maps every byte to its id and back', (t) => {
  const dir = tmp(t, 'tok');
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), byteLevelTokenizerJson());
  const tok = Tokenizer.fromFile(dir);
  const text = 'Mamba: h_t = Ā h_{t-1} + B̄ x_t — ✓ 🐍\n\ttabs';
  const ids = tok.encode(text);
  assert.deepEqual(ids, Array.from(new TextEncoder().encode(text)));
  assert.equal(tok.decode(ids), text);
});

test('npm start trains on the package sources: packageSources() is src/, and its corpus holds api/model.ts byte for byte', () => {
  const src = packageSources();
  assert.equal(src, path.join(ROOT, 'src'));
  const corpus = loadTextCorpus(src);
  const model = corpus.files.find((f) => f.path === 'api/model.ts');
  assert.ok(model, `api/model.ts among ${corpus.files.length} files`);
  assert.ok(Buffer.from(Uint8Array.from(model.tokens)).equals(fs.readFileSync(path.join(src, 'api', 'model.ts'))), 'the tokens of api/model.ts are its bytes');
  assert.ok(corpus.files.every((f) => !f.path.startsWith('..') && !path.isAbsolute(f.path)));
  assert.ok(corpus.totalBytes > 100_000, `${corpus.totalBytes} bytes of sources`);
});

// last: the tests above removed their temporary folders
test('no temporary folder is left behind', () => {
  const left = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(TMP_PREFIX));
  assert.deepEqual(left, []);
});
