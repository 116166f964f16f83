/** The arguments of a training job (`mamba-ts train` flags, presets, trainer_state.json "args") and what a job is. */
import type { S4dInitKind } from '../ssm/s4.js';
import type { Backend } from '../backend/backend.js';
import type { MixerKind, TrainableModel } from './lm.js';
import type { TrainHooks, TrainOptions } from './trainer.js';

export type TaskName = 'text' | 'selective-copying' | 'induction-heads' | 'mqar' | 'copy' | 'fmnist';
export const TASKS: readonly TaskName[] = ['text', 'selective-copying', 'induction-heads', 'mqar', 'copy', 'fmnist'];

/** the architecture of a fresh language model: Mamba-1, Mamba-2, Llama (RoPE Transformer), Bamba-style hybrid */
export type ArchName = 'mamba' | 'mamba2' | 'llama' | 'hybrid';
export const ARCHS: readonly ArchName[] = ['mamba', 'mamba2', 'llama', 'hybrid'];

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
  /** architecture of a fresh model (default mamba) */
  arch: ArchName;
  /** attention heads (llama, hybrid) / Mamba-2 heads (mamba2); default from headDim */
  heads?: number;
  /** head size of attention and Mamba-2 (default 64, or the width when smaller) */
  headDim?: number;
  /** hybrid: one attention layer in N */
  attnEvery: number;
  /** MLP width of llama and the hybrid (default ⌈8/3 · hidden⌉ to a multiple of 8) */
  intermediate?: number;
  /** llama: RoPE base */
  ropeTheta?: number;
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
  /** mqar: key-value pairs per sequence, and a of the query-gap power law */
  numKv: number;
  powerA: number;
  /** copy: tokens of the string to copy (seqLen = 2·copyLen + 2) */
  copyLen: number;
  /** copy: training strings have a length uniform in [copyMinLen, copyLen] (default copyLen: all of copyLen) */
  copyMinLen?: number;
  /** synthetic tasks: lengths evaluated after training (induction heads, mqar: sequence lengths; copy: string lengths) */
  evalLengths: number[];
  /** mqar: key-value pairs at each of evalLengths (default numKv at every length) */
  evalNumKv?: number[];
  /** evaluation batches / samples (text: 0 = the whole held-out tail) */
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
  arch: 'mamba',
  attnEvery: 2,
  numKv: 8,
  powerA: 0.01,
  copyLen: 32,
  vocab: 16,
  numTokens: 16,
  evalLengths: [],
  evalBatches: 4,
  trainLimit: 0,
  testLimit: 0,
  evalEvery: 50,
  saveEvery: 100,
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

/** where a job's model lives (default: the CPU backend) */
export interface JobEnv {
  /** the backend a fresh or loaded language model is built on (WebGPU: trains on the GPU) */
  backend?: Backend;
}
