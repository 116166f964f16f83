/** The model of a training job: a fresh one of the chosen architecture or a loaded checkpoint, and its training step. */
import * as path from 'node:path';
import { backward, withGrad } from '../autograd/tape.js';
import { readConfig } from '../models/config-file.js';
import { resolveModelPathSync } from '../io/hub.js';
import type { MambaConfig } from '../models/mamba.js';
import { ModelError } from '../models/errors.js';
import { architectureNames, resolveModelType } from '../models/registry.js';
import type * as ops from '../tensor/ops.js';
import { UntrainableModelError } from './errors.js';
import type { JobArgs, JobEnv } from './job-args.js';
import { countParameters, TrainableLM, type TrainBackendOptions } from './lm.js';
import { TrainError, type StepResult } from './trainer.js';

/**
 * Load a checkpoint folder (HF or state-spaces layout, any architecture mamba-ts loads; or a hub name `org/name`
 * from the Hugging Face cache) as a trainable LM; a model_type mamba-ts does not know is an
 * `UntrainableModelError` naming it and the trainable ones.
 */
export function loadTrainableLM(spec: string, opts: TrainBackendOptions = {}): TrainableLM {
  const dir = resolveModelPathSync(spec);
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

export function mambaConfig(a: JobArgs, vocab: number): MambaConfig {
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
export function ssmLrScale(lr: number): (name: string) => number {
  return (name) => (/s4d\.(log_dt|log_A_real|A_imag)$/.test(name) ? Math.min(1, 1e-3 / lr) : 1);
}

/**
 * A fresh language model of `a.arch` with the job's sizes and the task's vocabulary (Mamba: also the S4D ablation),
 * built where `env` says; a size that does not fit the architecture is a `TrainError` naming the flags.
 */
export function freshModel(a: JobArgs, vocab: number, env: JobEnv): TrainableLM {
  if (a.arch === 'mamba') return TrainableLM.init(mambaConfig(a, vocab), { seed: a.seed, mixer: a.mixer, s4dInit: a.s4dInit, ...env });
  if (a.mixer !== 's6') throw new TrainError(`--mixer ${a.mixer} is an ablation of the Mamba block (--arch mamba), not of --arch ${a.arch}`);
  try {
    return TrainableLM.fresh(a.arch, {
      vocabSize: vocab, hiddenSize: a.hidden, numLayers: a.layers, stateSize: a.state, expand: a.expand, attnEvery: a.attnEvery,
      ...(a.heads !== undefined ? { heads: a.heads } : {}),
      ...(a.headDim !== undefined ? { headDim: a.headDim } : {}),
      ...(a.intermediate !== undefined ? { intermediateSize: a.intermediate } : {}),
      ...(a.ropeTheta !== undefined ? { ropeTheta: a.ropeTheta } : {}),
    }, { seed: a.seed, ...env });
  } catch (e) {
    if (e instanceof ModelError) throw new TrainError(`--arch ${e.message}`);
    throw e;
  }
}

/** one line naming the model's architecture, size and parameter count (the first line of a run's log) */
export function describeModel(model: TrainableLM, a: Pick<JobArgs, 'mixer' | 's4dInit'>): string {
  const c = model.configJson() as Record<string, unknown>;
  const L = model.numLayers;
  const H = c.hidden_size ?? c.d_model;
  let what: string;
  switch (model.modelType) {
    case 'mamba':
      what = `Mamba ${L}×${H}, N=${c.state_size}, ${a.mixer === 's4d' || (c.mamba_ts as { mixer?: string } | undefined)?.mixer === 's4d' ? `LTI S4D (${a.s4dInit}) layers` : 'S6 (selective) layers'}`;
      break;
    case 'mamba2':
      what = `Mamba-2 ${L}×${H}, N=${c.state_size}, ${c.num_heads} heads of ${c.head_dim}`;
      break;
    case 'llama':
      what = `Llama ${L}×${H}, ${c.num_attention_heads} heads, MLP ${c.intermediate_size}, RoPE θ=${c.rope_theta ?? 10000}`;
      break;
    case 'bamba':
      what = `hybrid (Bamba) ${L}×${H}: attention at layers ${JSON.stringify(c.attn_layer_indices)}, Mamba-2 N=${c.mamba_d_state} elsewhere, MLP ${c.intermediate_size}`;
      break;
    default:
      what = `${model.modelType} ${L} layers`;
  }
  const n = countParameters(model);
  return `${what}; ${n.toLocaleString('en-US')} parameters (${(n - embeddingParameters(model)).toLocaleString('en-US')} without the embedding)`;
}

/** values of the token embedding (and of an untied lm_head): what an equal-size comparison leaves out */
export function embeddingParameters(model: TrainableLM): number {
  let n = 0;
  const names = model.onDevice ? model.deviceParams!.keys() : model.params.keys();
  for (const name of names) {
    if (!/(embed_tokens|embeddings?|lm_head)\.weight$/.test(name)) continue;
    n += model.onDevice ? model.deviceParams!.get(name)!.size : model.params.get(name)!.data.length;
  }
  return n;
}
