/**
 * Training jobs: a task (text, the Mamba paper's synthetic tasks, sequential Fashion-MNIST), a model for it,
 * the batches of each step and the evaluation — and the named presets that `mamba-ts train --preset` offers.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { backward, withGrad } from '../autograd/tape.js';
import type { Backend } from '../backend/backend.js';
import type { MambaConfig } from '../models/mamba.js';
import type { S4dInitKind } from '../ssm/s4.js';
import { corpusSummary, loadFashionMnist, loadTextCorpus, PixelBatcher, splitCorpus, WindowSampler, type ImageDataset, type TextCorpusOptions } from './data.js';
import { loadCheckpoint } from './checkpoint.js';
import { readConfig } from '../models/config-file.js';
import { resolveModelType } from '../models/registry.js';
import { countParameters, type MixerKind, TrainableLM, type TrainableModel, type TrainBackendOptions } from './lm.js';
import * as ops from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { architectureNames } from '../models/registry.js';
import { subRng } from './random.js';
import { S4dClassifier } from './s4d-classifier.js';
import { inductionHeads, selectiveCopying } from './tasks.js';
import { TrainError, type StepResult, type TrainHooks, type TrainOptions } from './trainer.js';
import { UntrainableModelError } from './errors.js';
import { byteLevelTokenizerJson } from './byte-tokenizer.js';

export type TaskName = 'text' | 'selective-copying' | 'induction-heads' | 'fmnist';
export const TASKS: readonly TaskName[] = ['text', 'selective-copying', 'induction-heads', 'fmnist'];

export interface JobArgs {
  task: TaskName;
  steps: number;
  batch: number;
  /** sequence length (text window, synthetic task length L) */
  seqLen: number;
  lr: number;
  warmup: number;
  weightDecay: number;
  accum: number;
  seed: number;
  /** model */
  hidden: number;
  layers: number;
  state: number;
  expand: number;
  mixer: MixerKind;
  s4dInit: S4dInitKind;
  /** text: folder or file */
  data?: string;
  /** text: take only files with these extensions ('.md'); default every text file */
  dataExt?: string[];
  /** text: stop reading after this many bytes (default DEFAULT_MAX_TOTAL_BYTES) */
  dataLimit?: number;
  /** start from this HF Mamba checkpoint (fine-tuning) */
  from?: string;
  /** synthetic tasks: vocabulary size and data tokens */
  vocab: number;
  numTokens: number;
  /** induction heads: lengths evaluated after training */
  evalLengths: number[];
  /** evaluation batches / samples */
  evalBatches: number;
  /** Fashion-MNIST: training examples used (0 = all 60000) and test examples evaluated (0 = all 10000) */
  trainLimit: number;
  testLimit: number;
  evalEvery: number;
  saveEvery: number;
}

export const DEFAULT_ARGS: JobArgs = {
  task: 'text',
  steps: 200,
  batch: 8,
  seqLen: 128,
  lr: 2e-3,
  warmup: 20,
  weightDecay: 0.1,
  accum: 1,
  seed: 0,
  hidden: 64,
  layers: 2,
  state: 16,
  expand: 2,
  mixer: 's6',
  s4dInit: 'lin',
  vocab: 16,
  numTokens: 16,
  evalLengths: [],
  evalBatches: 4,
  trainLimit: 0,
  testLimit: 0,
  evalEvery: 50,
  saveEvery: 100,
};

/** Named setups; flags given on the command line override them. */
export const PRESETS: Record<string, { description: string; args: Partial<JobArgs> }> = {
  'text-tiny': {
    description: 'byte-level Mamba (2 layers, d_model 64) on local text — the README main job',
    args: { task: 'text', hidden: 64, layers: 2, seqLen: 128, batch: 4, accum: 2, steps: 1000, lr: 3e-3, warmup: 30, evalEvery: 100, saveEvery: 250 },
  },
  'text-small': {
    description: 'byte-level Mamba (4 layers, d_model 128) on local text',
    args: { task: 'text', hidden: 128, layers: 4, seqLen: 256, batch: 2, accum: 4, steps: 2000, lr: 2e-3, warmup: 100, evalEvery: 200, saveEvery: 200 },
  },
  'selective-copying': {
    description: 'Mamba paper §4.1.1 at reduced length: L=256, 16 data tokens, vocab 16, 2 layers, D=64, S6, batch 64',
    args: { task: 'selective-copying', seqLen: 256, vocab: 16, numTokens: 16, hidden: 64, layers: 2, batch: 4, accum: 16, steps: 1200, lr: 2e-3, warmup: 50, weightDecay: 0, evalEvery: 100, saveEvery: 100, evalBatches: 4 },
  },
  'selective-copying-s4d': {
    description: 'the same network with an LTI S4D layer in place of S6 (the paper\'s S4 ablation)',
    args: { task: 'selective-copying', mixer: 's4d', s4dInit: 'lin', seqLen: 256, vocab: 16, numTokens: 16, hidden: 64, layers: 2, batch: 4, accum: 16, steps: 1200, lr: 2e-3, warmup: 50, weightDecay: 0, evalEvery: 100, saveEvery: 100, evalBatches: 4 },
  },
  'induction-heads': {
    description: 'Mamba paper §4.1.2: trained at L=256, vocab 16, 2 layers, D=64; batch 32; evaluated up to 16384',
    args: { task: 'induction-heads', seqLen: 256, vocab: 16, hidden: 64, layers: 2, batch: 2, accum: 16, steps: 1500, lr: 1e-3, warmup: 50, weightDecay: 0, evalEvery: 100, saveEvery: 100, evalBatches: 16, evalLengths: [256, 1024, 4096, 16384] },
  },
  'fmnist-legs': {
    description: 'sequential Fashion-MNIST (784 steps), S4D classifier with HiPPO-LegS-derived diagonal A',
    args: { task: 'fmnist', s4dInit: 'legs', hidden: 64, layers: 2, state: 64, batch: 4, accum: 8, steps: 600, lr: 4e-3, warmup: 50, weightDecay: 0.01, evalEvery: 250, saveEvery: 250, testLimit: 2000 },
  },
  'fmnist-random': {
    description: 'the same S4D classifier with random diagonal A (ablation)',
    args: { task: 'fmnist', s4dInit: 'random', hidden: 64, layers: 2, state: 64, batch: 4, accum: 8, steps: 600, lr: 4e-3, warmup: 50, weightDecay: 0.01, evalEvery: 250, saveEvery: 250, testLimit: 2000 },
  },
};

export interface Job {
  model: TrainableModel;
  hooks: TrainHooks;
  /** options for `train()` besides the schedule numbers */
  trainOptions: Partial<TrainOptions>;
  /** one line describing what is trained */
  describe: string;
  /** text: the tokenizer written next to the checkpoint */
  tokenizerJson?: string;
  /** text: one line saying which files were used and which skipped, and why */
  dataSummary?: string;
  /** a short name of what is trained (task, data folder), for titles */
  name: string;
}

export { TrainableLM };

/**
 * Load a checkpoint folder (HF or state-spaces layout, any architecture mamba-ts loads) as a trainable LM; a
 * model_type mamba-ts does not know is an `UntrainableModelError` naming it and the trainable ones.
 */
export function loadTrainableLM(dir: string, opts: TrainBackendOptions = {}): TrainableLM {
  const raw = readConfig(dir);
  const type = resolveModelType(raw, path.join(dir, 'config.json'));
  const names = architectureNames();
  if (!(type in names)) throw new UntrainableModelError(dir, type, names);
  return TrainableLM.fromPretrained(dir, opts);
}

/**
 * one training micro-step of a language model: the loss of a [b, L] batch, back-propagated × `scale`; the graph is
 * freed at once (a GPU gets its memory back). On a GPU the loss and the count of correct predictions stay there as
 * scalars (the trainer sums them there and reads them when it logs).
 */
export async function lmStep(model: TrainableLM, bt: { inputs: Int32Array; targets: Int32Array; batch: number; seqLen: number }, scale: number): Promise<StepResult> {
  const r = await withGrad(() => model.loss(bt.inputs, bt.targets, bt.batch, bt.seqLen));
  backward(r.loss, scale, { free: true, keep: [r.loss, r.correctTensor] });
  const tokens = bt.batch * bt.seqLen;
  if (model.onDevice) return { loss: r.loss, tokens, count: r.count, correct: r.correctTensor ?? r.correct };
  return { loss: r.loss.dataSync()[0], tokens, count: r.count, correct: r.correct };
}

/** the loss and the count of correct predictions of an evaluation batch as numbers (read back from a GPU); frees them */
export async function lossNumbers(r: ops.CrossEntropy): Promise<{ loss: number; correct: number }> {
  const [loss, correct] = await Promise.all([r.loss.data(), r.correctTensor ? r.correctTensor.data() : null]);
  r.loss.dispose();
  r.correctTensor?.dispose();
  return { loss: loss[0], correct: correct ? correct[0] : r.correct };
}

/** where a job's model lives (default: the CPU backend) */
export interface JobEnv {
  /** the backend a fresh or loaded language model is built on (WebGPU: trains on the GPU) */
  backend?: Backend;
}

function mambaConfig(a: JobArgs, vocab: number): MambaConfig {
  return {
    source: 'hf',
    vocabSize: vocab,
    hiddenSize: a.hidden,
    innerSize: a.expand * a.hidden,
    stateSize: a.state,
    numLayers: a.layers,
    convKernel: 4,
    dtRank: Math.ceil(a.hidden / 16),
    useBias: false,
    useConvBias: true,
    normEps: 1e-5,
    tieEmbeddings: true,
    eosTokenIds: [0],
  };
}

/** SSM parameters (A, Δ) learn at ≤ 1e-3, as S4/S4D train them */
function ssmLrScale(lr: number): (name: string) => number {
  return (name) => (/s4d\.(log_dt|log_A_real|A_imag)$/.test(name) ? Math.min(1, 1e-3 / lr) : 1);
}

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
      return syntheticJob(a, model as TrainableLM | undefined, env);
    case 'fmnist':
      return fmnistJob(a, model as S4dClassifier | undefined, env);
    default:
      throw new TrainError(`unknown task "${String(a.task)}"; expected one of ${TASKS.join(', ')}`);
  }
}

function textJob(a: JobArgs, given: TrainableLM | undefined, env: JobEnv): Job {
  const root = a.data ?? packageSources();
  if (!fs.existsSync(root)) throw new TrainError(`--data ${root}: no such file or folder`);
  // fine-tuning a checkpoint that has a tokenizer: its tokens; otherwise raw UTF-8 bytes (vocab 256)
  const tokFile = a.from && fs.existsSync(path.join(a.from, 'tokenizer.json')) ? path.join(a.from, 'tokenizer.json') : null;
  const tok = tokFile ? Tokenizer.fromFile(tokFile) : null;
  const corpusOpts: TextCorpusOptions = { ...(a.dataExt ? { extensions: a.dataExt } : {}), ...(a.dataLimit !== undefined ? { maxTotalBytes: a.dataLimit } : {}) };
  const corpus = loadTextCorpus(root, tok ? { ...corpusOpts, encode: (t) => tok.encode(t), vocabSize: tok.vocabSize } : corpusOpts);
  const split = splitCorpus(corpus, { valFraction: 0.1 });
  const train = new WindowSampler(split.train, { batch: a.batch, seqLen: a.seqLen, seed: a.seed, label: 'train split' });
  const val = split.val.length > a.seqLen + 1 ? new WindowSampler(split.val, { batch: a.batch, seqLen: a.seqLen, seed: a.seed, label: 'validation split' }) : null;
  const model: TrainableLM = given ?? (a.from ? loadTrainableLM(a.from, env) : TrainableLM.init(mambaConfig(a, 256), { seed: a.seed, mixer: a.mixer, s4dInit: a.s4dInit, ...env }));
  if (model.vocabSize < corpus.vocabSize) throw new TrainError(`--from ${a.from}: vocab_size ${model.vocabSize} is smaller than the ${corpus.vocabSize} tokens of the ${tok ? 'tokenizer' : 'byte-level text task'}`);
  const hooks: TrainHooks = {
    microStep: (step, micro, scale) => lmStep(model, train.batch(step * a.accum + micro), scale),
    async evaluate(): Promise<Record<string, number>> {
      if (!val) return {};
      let nll = 0;
      let n = 0;
      let correct = 0;
      for (const bt of val.evalBatches(a.evalBatches)) {
        const r = await model.loss(bt.inputs, bt.targets, bt.batch, bt.seqLen);
        const v = await lossNumbers(r);
        nll += v.loss * r.count;
        n += r.count;
        correct += v.correct;
      }
      return { val_loss: nll / n, val_bits_per_byte: nll / n / Math.LN2, val_acc: correct / n };
    },
  };
  return {
    model,
    hooks,
    trainOptions: {},
    describe: `text (${tok ? 'tokenizer.json of --from' : 'byte-level'}; train ${split.train.length} tokens, val ${split.val.length}); ${model.modelType} ${model.numLayers} layers, ${countParameters(model)} parameters`,
    tokenizerJson: tokFile ? fs.readFileSync(tokFile, 'utf8') : byteLevelTokenizerJson(),
    dataSummary: corpusSummary(corpus),
    name: `text from ${path.basename(path.resolve(root))}`,
  };
}

function syntheticJob(a: JobArgs, given: TrainableLM | undefined, env: JobEnv): Job {
  const copying = a.task === 'selective-copying';
  const make = (seed: number, k: number, batch: number, length: number) => {
    const rng = subRng(seed, k);
    return copying ? selectiveCopying(rng, { batch, length, numTokens: a.numTokens, vocabSize: a.vocab }) : inductionHeads(rng, { batch, length, vocabSize: a.vocab });
  };
  const model: TrainableLM = given ?? (a.from ? loadTrainableLM(a.from, env) : TrainableLM.init(mambaConfig(a, a.vocab), { seed: a.seed, mixer: a.mixer, s4dInit: a.s4dInit, ...env }));
  if (model.vocabSize < a.vocab) throw new TrainError(`--from ${a.from}: vocab_size ${model.vocabSize} is smaller than the task's ${a.vocab}`);
  const evalAt = async (length: number, batches: number): Promise<number> => {
    let c = 0;
    let n = 0;
    for (let k = 0; k < batches; k++) {
      const bt = make(a.seed + 1_000_003, k, copying ? a.batch : Math.max(1, Math.min(a.batch, Math.floor((1 << 16) / length))), length);
      const r = await model.loss(bt.inputs, bt.targets, bt.batch, bt.seqLen);
      c += (await lossNumbers(r)).correct;
      n += r.count;
    }
    return c / n;
  };
  const hooks: TrainHooks = {
    microStep: (step, micro, scale) => lmStep(model, make(a.seed, step * a.accum + micro, a.batch, a.seqLen), scale),
    async evaluate(step) {
      const m: Record<string, number> = { val_acc: await evalAt(a.seqLen, a.evalBatches) };
      if (step >= a.steps) for (const L of a.evalLengths) if (L !== a.seqLen) m[`acc_L${L}`] = await evalAt(L, a.evalBatches);
      return m;
    },
  };
  const what = copying ? `selective copying (L=${a.seqLen}, ${a.numTokens} tokens, vocab ${a.vocab})` : `induction heads (L=${a.seqLen}, vocab ${a.vocab})`;
  return {
    model,
    hooks,
    trainOptions: { lrScale: ssmLrScale(a.lr) },
    name: copying ? 'selective copying' : 'induction heads',
    describe: `${what}; Mamba ${a.layers}×${a.hidden} with ${a.mixer === 's6' ? 'S6 (selective)' : `LTI S4D (${a.s4dInit})`} layers, ${countParameters(model)} parameters`,
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
export async function evaluateCheckpoint(dir: string, over: Partial<JobArgs> = {}): Promise<Record<string, number>> {
  const ck = loadCheckpoint(dir);
  const saved = (ck.trainerState.args ?? {}) as Partial<JobArgs>;
  if (typeof saved.task !== 'string') throw new TrainError(`${dir}/trainer_state.json: "args.task" is missing; was this folder written by mamba-ts train?`);
  const a: JobArgs = { ...DEFAULT_ARGS, ...saved, ...over };
  let model: TrainableModel;
  if (ck.config.model_type === 'mamba_ts_s4d_classifier') model = S4dClassifier.fromConfigJson(ck.config, ck.weights);
  else model = loadTrainableLM(dir);
  const job = buildJob(a, model);
  if (!job.hooks.evaluate) return {};
  return job.hooks.evaluate(Math.max(a.steps, ck.trainerState.step));
}

/** The package's own TypeScript sources (…/src next to dist/), the default text to train on; else the current folder. */
export function packageSources(): string {
  const src = fileURLToPath(new URL('../../../src', import.meta.url)); // from dist/src/train/
  return fs.existsSync(src) ? src : process.cwd();
}
