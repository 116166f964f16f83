/**
 * Training jobs: a task (text, the synthetic tasks of synthetic-jobs.ts, sequential Fashion-MNIST), a model for it
 * (job-model.ts: a fresh one of any architecture, or a checkpoint), the batches of each step and the evaluation.
 * The arguments are job-args.ts, the named setups of `mamba-ts train --preset` presets.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { backward, withGrad } from '../autograd/tape.js';
import * as ops from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { corpusSummary, loadFashionMnist, loadTextCorpus, PixelBatcher, splitCorpus, WindowSampler, type ImageDataset, type TextCorpusOptions } from './data.js';
import { loadCheckpoint } from './checkpoint.js';
import { countParameters, TrainableLM, type TrainableModel } from './lm.js';
import { S4dClassifier } from './s4d-classifier.js';
import { TrainError, type StepResult, type TrainHooks } from './trainer.js';
import { byteLevelTokenizerJson } from './byte-tokenizer.js';
import { DEFAULT_ARGS, TASKS, type Job, type JobArgs, type JobEnv } from './job-args.js';
import { describeModel, freshModel, lmStep, loadTrainableLM, lossNumbers, ssmLrScale } from './job-model.js';
import { syntheticJob } from './synthetic-jobs.js';
import { JARGON_FILE } from './presets.js';

export { TrainableLM };
export * from './job-args.js';
export { PRESETS } from './presets.js';
export { describeModel, freshModel, lmStep, loadTrainableLM, lossNumbers } from './job-model.js';


/**
 * @param model an existing model (a loaded checkpoint) instead of a fresh one
 * @param env where the job's model is built (a language model on WebGPU trains there)
 */
export function buildJob(a: JobArgs, model?: TrainableModel, env: JobEnv = {}): Job {
  switch (a.task) {
    case 'text':
      return textJob(a, model as TrainableLM | undefined, env);
    case 'selective-copying':
    case 'induction-heads':
    case 'mqar':
    case 'copy':
      return syntheticJob(a, model as TrainableLM | undefined, env);
    case 'fmnist':
      return fmnistJob(a, model as S4dClassifier | undefined, env);
    default:
      throw new TrainError(`unknown task "${String(a.task)}"; expected one of ${TASKS.join(', ')}`);
  }
}

function textJob(a: JobArgs, given: TrainableLM | undefined, env: JobEnv): Job {
  const root = a.data ?? packageSources();
  if (!fs.existsSync(root)) {
    const hint = root === JARGON_FILE ? ' (the lm-* presets train on the Jargon File: install it with `apt-get install dict-jargon`, or give --data another text)' : '';
    throw new TrainError(`--data ${root}: no such file or folder${hint}`);
  }
  // fine-tuning a checkpoint that has a tokenizer: its tokens; otherwise raw UTF-8 bytes (vocab 256)
  const tokFile = a.from && fs.existsSync(path.join(a.from, 'tokenizer.json')) ? path.join(a.from, 'tokenizer.json') : null;
  const tok = tokFile ? Tokenizer.fromFile(tokFile) : null;
  const corpusOpts: TextCorpusOptions = { ...(a.dataExt ? { extensions: a.dataExt } : {}), ...(a.dataLimit !== undefined ? { maxTotalBytes: a.dataLimit } : {}) };
  const corpus = loadTextCorpus(root, tok ? { ...corpusOpts, encode: (t) => tok.encode(t), vocabSize: tok.vocabSize } : corpusOpts);
  const split = splitCorpus(corpus, { valFraction: 0.1 });
  const train = new WindowSampler(split.train, { batch: a.batch, seqLen: a.seqLen, seed: a.seed, label: 'train split' });
  const val = split.val.length > a.seqLen + 1 ? new WindowSampler(split.val, { batch: a.batch, seqLen: a.seqLen, seed: a.seed, label: 'validation split' }) : null;
  const model: TrainableLM = given ?? (a.from ? loadTrainableLM(a.from, env) : freshModel(a, 256, env));
  if (model.vocabSize < corpus.vocabSize) throw new TrainError(`--from ${a.from}: vocab_size ${model.vocabSize} is smaller than the ${corpus.vocabSize} tokens of the ${tok ? 'tokenizer' : 'byte-level text task'}`);
  const hooks: TrainHooks = {
    microStep: (step, micro, scale) => lmStep(model, train.batch(step * a.accum + micro), scale),
    async evaluate(): Promise<Record<string, number>> {
      if (!val) return {};
      let nll = 0;
      let n = 0;
      let correct = 0;
      for (const bt of val.evalBatches(a.evalBatches === 0 ? Infinity : a.evalBatches)) {
        const r = await model.loss(bt.inputs, bt.targets, bt.batch, bt.seqLen);
        const v = await lossNumbers(r);
        nll += v.loss * r.count;
        n += r.count;
        correct += v.correct;
      }
      return { val_loss: nll / n, val_ppl: Math.exp(nll / n), val_bits_per_byte: nll / n / Math.LN2, val_acc: correct / n };
    },
  };
  return {
    model,
    hooks,
    trainOptions: {},
    describe: `text (${tok ? 'tokenizer.json of --from' : 'byte-level'}; train ${split.train.length} tokens, val ${split.val.length}); ${describeModel(model, a)}`,
    tokenizerJson: tokFile ? fs.readFileSync(tokFile, 'utf8') : byteLevelTokenizerJson(),
    dataSummary: corpusSummary(corpus),
    name: `text from ${path.basename(path.resolve(root))}`,
  };
}


function fmnistJob(a: JobArgs, given: S4dClassifier | undefined, env: JobEnv): Job {
  const train = loadFashionMnist('train', { normalize: 'standard', ...(a.trainLimit > 0 ? { limit: a.trainLimit, subsetSeed: a.seed } : {}) });
  const test = loadFashionMnist('test', { normalize: 'standard', ...(a.testLimit > 0 ? { limit: a.testLimit } : {}) });
  const batcher = new PixelBatcher(train, { batch: a.batch, seed: a.seed });
  const model = given ?? S4dClassifier.init({ inputDim: 1, numClasses: train.numClasses, hiddenSize: a.hidden, stateSize: a.state, numLayers: a.layers, init: a.s4dInit, normEps: 1e-5 }, a.seed, env);
  const P = train.rows * train.cols;
  const hooks: TrainHooks = {
    microStep: (step, micro, scale) => classifierStep(model, batcher.batchAt(step * a.accum + micro), scale),
    async evaluate() {
      return { test_acc: await classifierAccuracy(model, test, a.batch * 4) };
    },
  };
  return {
    model,
    hooks,
    trainOptions: { lrScale: ssmLrScale(a.lr) },
    name: 'sequential Fashion-MNIST',
    describe: `sequential Fashion-MNIST (${P} steps; ${train.n} train / ${test.n} test images); S4D classifier ${a.layers}×${a.hidden}, N=${a.state}, A init ${a.s4dInit}, ${countParameters(model)} parameters`,
  };
}

/**
 * one training micro-step of the classifier: the loss of a batch of images, back-propagated × `scale`, the graph
 * freed at once; on a GPU the loss and the count of correct predictions stay there (read when logged)
 */
export function classifierStep(model: S4dClassifier, bt: { inputs: Float32Array; labels: Int32Array; batch: number }, scale: number): StepResult {
  const u = model.input(bt.inputs, bt.batch);
  try {
    const r = withGrad(() => model.loss(u, bt.labels));
    backward(r.loss, scale, { free: true, keep: [r.loss, r.correctTensor] });
    const tokens = u.size;
    if (model.onDevice) return { loss: r.loss, tokens, count: r.count, correct: r.correctTensor ?? r.correct };
    return { loss: r.loss.dataSync()[0], tokens, count: r.count, correct: r.correct };
  } finally {
    u.dispose();
  }
}

/**
 * accuracy of a classifier on a whole image dataset, in order (on a GPU: the counts are added there and read once)
 */
export async function classifierAccuracy(model: S4dClassifier, data: ImageDataset, batch: number): Promise<number> {
  const b = new PixelBatcher(data, { batch, shuffle: false });
  let correct = 0;
  let n = 0;
  let onDevice: Tensor | null = null;
  for (const bt of b.epoch(0)) {
    const u = model.input(bt.inputs, bt.batch);
    // on the CPU backend a recorded forward (never back-propagated: the collector takes its graph) runs the training
    // kernels — float32 products on wasm SIMD —, several times faster here than the backend's TypeScript inference ops
    const r = model.onDevice ? model.loss(u, bt.labels) : withGrad(() => model.loss(u, bt.labels));
    u.dispose();
    r.loss.dispose();
    n += r.count;
    if (!r.correctTensor) correct += r.correct;
    else if (!onDevice) onDevice = r.correctTensor;
    else {
      const sum = ops.add(onDevice, r.correctTensor);
      onDevice.dispose();
      r.correctTensor.dispose();
      onDevice = sum;
    }
  }
  if (onDevice) {
    correct += (await onDevice.data())[0];
    onDevice.dispose();
  }
  return correct / n;
}

/**
 * Evaluate a checkpoint written by `train` on its task: the task and settings come from its
 * trainer_state.json (`args`), `over` replaces some (e.g. longer evaluation lengths).
 */
export async function evaluateCheckpoint(dir: string, over: Partial<JobArgs> = {}, env: JobEnv = {}): Promise<Record<string, number>> {
  const ck = loadCheckpoint(dir);
  const saved = (ck.trainerState.args ?? {}) as Partial<JobArgs>;
  if (typeof saved.task !== 'string') throw new TrainError(`${dir}/trainer_state.json: "args.task" is missing; was this folder written by mamba-ts train?`);
  const a: JobArgs = { ...DEFAULT_ARGS, ...saved, ...over };
  let model: TrainableModel;
  if (ck.config.model_type === 'mamba_ts_s4d_classifier') model = S4dClassifier.fromConfigJson(ck.config, ck.weights, env);
  else model = loadTrainableLM(dir, env);
  const job = buildJob(a, model, env);
  if (!job.hooks.evaluate) return {};
  return job.hooks.evaluate(Math.max(a.steps, ck.trainerState.step));
}

/** The package's own TypeScript sources (…/src next to dist/), the default text to train on; else the current folder. */
export function packageSources(): string {
  const src = fileURLToPath(new URL('../../../src', import.meta.url)); // from dist/src/train/
  return fs.existsSync(src) ? src : process.cwd();
}
