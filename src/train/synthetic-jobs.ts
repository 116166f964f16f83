/**
 * The synthetic-task jobs: the Mamba paper's selective copying and induction heads (tasks.ts), and the recall tasks
 * of the seed's caveat, MQAR and copying (recall-tasks.ts), for a language model of any architecture. Each training
 * micro-batch is drawn from (seed, step, micro) alone, so a resumed run sees the batches an uninterrupted one would;
 * evaluation batches come from a seed no training batch uses.
 */
import type { JobArgs, JobEnv, Job } from './job-args.js';
import { describeModel, freshModel, lmStep, loadTrainableLM, lossNumbers, ssmLrScale } from './job-model.js';
import type { TrainableLM } from './lm.js';
import { subRng } from './random.js';
import { copySeqLen, copyStrings, mqar, mqarProblem } from './recall-tasks.js';
import { IGNORE_INDEX, inductionHeads, selectiveCopying, type TaskBatch } from './tasks.js';
import { TrainError, type TrainHooks } from './trainer.js';

/** the seed offset of evaluation batches */
const EVAL_SEED = 1_000_003;

interface TaskSpec {
  /**
   * a batch of `batch` sequences at task length `length` (the generator's own length: L, T or the string length);
   * `training`: a training batch (copy: strings of every length up to it, with --copy-min-len); `numKv`: mqar's
   * key-value pairs when not the trained number
   */
  make(seed: number, k: number, batch: number, length: number, training?: boolean, numKv?: number): TaskBatch;
  /** the task length trained at */
  length: number;
  /** sequence length of a task length (for batch sizes at long lengths) */
  seqLen(length: number): number;
  name: string;
  what: string;
  /** also report whole sequences right (copy: every token of the string and EOS) */
  perSequence: boolean;
  /** the vocabulary the model needs */
  vocab: number;
}

function taskSpec(a: JobArgs): TaskSpec {
  const rng = (seed: number, k: number) => subRng(seed, k);
  switch (a.task) {
    case 'selective-copying':
      return {
        make: (s, k, batch, length) => selectiveCopying(rng(s, k), { batch, length, numTokens: a.numTokens, vocabSize: a.vocab }),
        length: a.seqLen, seqLen: (l) => l + 2 * a.numTokens, name: 'selective copying', perSequence: false, vocab: a.vocab,
        what: `selective copying (L=${a.seqLen}, ${a.numTokens} tokens, vocab ${a.vocab})`,
      };
    case 'induction-heads':
      return {
        make: (s, k, batch, length) => inductionHeads(rng(s, k), { batch, length, vocabSize: a.vocab }),
        length: a.seqLen, seqLen: (l) => l + 1, name: 'induction heads', perSequence: false, vocab: a.vocab,
        what: `induction heads (L=${a.seqLen}, vocab ${a.vocab})`,
      };
    case 'mqar': {
      const problem = mqarProblem(a.seqLen, a.numKv, a.vocab);
      if (problem) throw new TrainError(`--task mqar: ${problem}`);
      if (a.evalNumKv && a.evalNumKv.length !== a.evalLengths.length) {
        throw new TrainError(`--eval-num-kv gives ${a.evalNumKv.length} numbers for the ${a.evalLengths.length} of --eval-lengths; expected one per length`);
      }
      a.evalLengths.forEach((L, i) => {
        const K = a.evalNumKv?.[i] ?? a.numKv;
        const p = mqarProblem(L, K, a.vocab);
        if (p) throw new TrainError(`--task mqar --eval-lengths ${L}${a.evalNumKv ? ` --eval-num-kv ${K}` : ''}: ${p.replace('--num-kv', a.evalNumKv ? '--eval-num-kv' : '--num-kv')}`);
      });
      return {
        make: (s, k, batch, length, _training, numKv) => mqar(rng(s, k), { batch, seqLen: length, numKv: numKv ?? a.numKv, vocabSize: a.vocab, powerA: a.powerA }),
        length: a.seqLen, seqLen: (l) => l, name: 'MQAR', perSequence: true, vocab: a.vocab,
        what: `MQAR (T=${a.seqLen}, ${a.numKv} key-value pairs, vocab ${a.vocab}, power_a ${a.powerA})`,
      };
    }
    case 'copy': {
      if (a.vocab < 4) throw new TrainError(`--task copy: --vocab must be >= 4 (BOS, COPY, EOS and a data token), got ${a.vocab}`);
      const min = a.copyMinLen ?? a.copyLen;
      if (min > a.copyLen) throw new TrainError(`--task copy: --copy-min-len ${min} is more than --copy-len ${a.copyLen}`);
      return {
        make: (s, k, batch, length, training) => copyStrings(rng(s, k), { batch, length, vocabSize: a.vocab, ...(training ? { minLength: min } : {}) }),
        length: a.copyLen, seqLen: copySeqLen, name: 'copying', perSequence: true, vocab: a.vocab,
        what: `copying strings of ${min === a.copyLen ? a.copyLen : `${min}…${a.copyLen}`} tokens (seqLen ${copySeqLen(a.copyLen)}, ${a.vocab - 3} data tokens; evaluated on strings of ${a.copyLen})`,
      };
    }
    default:
      throw new TrainError(`not a synthetic task: ${a.task}`);
  }
}

export function syntheticJob(a: JobArgs, given: TrainableLM | undefined, env: JobEnv): Job {
  const spec = taskSpec(a);
  if (a.evalBatches < 1) throw new TrainError(`--eval-batches must be >= 1 for --task ${a.task} (0, the whole held-out tail, is for text)`);
  if (a.evalNumKv && a.task !== 'mqar') throw new TrainError(`--eval-num-kv is for --task mqar, not ${a.task}`);
  const model: TrainableLM = given ?? (a.from ? loadTrainableLM(a.from, env) : freshModel(a, spec.vocab, env));
  if (model.vocabSize < spec.vocab) throw new TrainError(`--from ${a.from}: vocab_size ${model.vocabSize} is smaller than the task's ${spec.vocab}`);
  /** token accuracy (and, for the recall tasks, the share of sequences with every scored token right) at a length */
  const evalAt = async (length: number, batches: number, numKv?: number): Promise<{ acc: number; seqAcc: number }> => {
    const T = spec.seqLen(length);
    const batch = length === spec.length ? a.batch : Math.max(1, Math.min(a.batch, Math.floor((1 << 16) / T)));
    let c = 0;
    let n = 0;
    let rowsRight = 0;
    let rows = 0;
    for (let k = 0; k < batches; k++) {
      const bt = spec.make(a.seed + EVAL_SEED, k, batch, length, false, numKv);
      if (!spec.perSequence) {
        const r = await model.loss(bt.inputs, bt.targets, bt.batch, bt.seqLen);
        c += (await lossNumbers(r)).correct;
        n += r.count;
        continue;
      }
      // the argmax at every position: a row is right when all its scored tokens are
      const pred = await rowPredictions(model, bt.inputs, bt.batch, T);
      for (let b = 0; b < bt.batch; b++) {
        let right = 0;
        let scored = 0;
        for (let t = b * T; t < (b + 1) * T; t++) {
          const y = bt.targets[t];
          if (y === IGNORE_INDEX) continue;
          scored++;
          if (pred[t] === y) right++;
        }
        c += right;
        n += scored;
        rows++;
        if (right === scored) rowsRight++;
      }
    }
    return { acc: c / n, seqAcc: rows > 0 ? rowsRight / rows : NaN };
  };
  const seqKey = a.task === 'copy' ? 'string_acc' : 'seq_acc';
  const hooks: TrainHooks = {
    microStep: (step, micro, scale) => lmStep(model, spec.make(a.seed, step * a.accum + micro, a.batch, spec.length, true), scale),
    async evaluate(step) {
      const here = await evalAt(spec.length, a.evalBatches);
      const m: Record<string, number> = { val_acc: here.acc };
      if (spec.perSequence) m[`val_${seqKey}`] = here.seqAcc;
      if (step >= a.steps) {
        // mqar with --eval-num-kv: a number of pairs per length (Zoology's test slices), named _L{T}_kv{K}
        const kvs = a.task === 'mqar' ? a.evalNumKv : undefined;
        for (const [i, L] of a.evalLengths.entries()) {
          const K = kvs?.[i];
          if (L === spec.length && (K === undefined || K === a.numKv)) continue;
          const r = await evalAt(L, a.evalBatches, K);
          const at = K === undefined ? `L${L}` : `L${L}_kv${K}`;
          m[`acc_${at}`] = r.acc;
          if (spec.perSequence) m[`${seqKey}_${at}`] = r.seqAcc;
        }
      }
      return m;
    },
  };
  return {
    model,
    hooks,
    trainOptions: { lrScale: ssmLrScale(a.lr) },
    name: spec.name,
    describe: `${spec.what}; ${describeModel(model, a)}`,
  };
}

/** logits held at once when predicting (elements): a block of rows of [T, V] at a time */
const PREDICT_BLOCK = 1 << 24;

/**
 * The model's argmax prediction at every position of inputs [b, T] (row-major), computed in blocks of rows whose
 * logits fit `PREDICT_BLOCK` values: on the GPU reduced there (`argmaxRows`: one number per position comes back),
 * elsewhere read back and reduced on the host (the first index on ties, as the cross-entropy's count).
 */
export async function rowPredictions(model: TrainableLM, inputs: Int32Array, b: number, T: number): Promise<Int32Array> {
  const V = model.vocabSize;
  const out = new Int32Array(b * T);
  const per = Math.max(1, Math.floor(PREDICT_BLOCK / (T * V)));
  const be = model.backend;
  for (let r0 = 0; r0 < b; r0 += per) {
    const r1 = Math.min(b, r0 + per);
    const rows = Array.from({ length: r1 - r0 }, (_, i) => Array.from(inputs.subarray((r0 + i) * T, (r0 + i + 1) * T)));
    const logits = await model.lm.logitsTensor(rows);
    try {
      if (be.argmaxRows) {
        out.set(await be.argmaxRows(logits), r0 * T);
        continue;
      }
      const x = await logits.data();
      for (let p = 0; p < rows.length * T; p++) {
        let best = 0;
        for (let v = 1; v < V; v++) if (x[p * V + v] > x[p * V + best]) best = v;
        out[r0 * T + p] = best;
      }
    } finally {
      logits.dispose();
    }
  }
  return out;
}
