/**
 * Synthetic tasks: structure (the answer is recoverable from the input by a hand-written solver),
 * counts, scored positions only where they should be, seeding; plus the seeding helpers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/generate/rng.js';
import { deriveSeed, permutation, randInt, rngFromState, rngState, subRng } from '../../src/train/random.js';
import {
  IGNORE_INDEX,
  TaskError,
  inductionHeads,
  inductionHeadsTokens,
  scoredAccuracy,
  selectiveCopying,
  selectiveCopyingLength,
  selectiveCopyingTokens,
} from '../../src/train/tasks.js';

/** Reads the data tokens (non-noise, non-marker) in order and answers them at the markers. */
function solveSelectiveCopying(inputs: Int32Array, B: number, T: number, A: number): Int32Array {
  const pred = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const queue: number[] = [];
    for (let t = 0; t < T; t++) {
      const x = inputs[b * T + t];
      if (x === A - 1) pred[b * T + t] = queue.shift() ?? -1;
      else if (x !== 0) queue.push(x);
    }
  }
  return pred;
}

/** Finds the first trigger and answers the token after it at the last position. */
function solveInduction(inputs: Int32Array, B: number, T: number, A: number): Int32Array {
  const pred = new Int32Array(B * T).fill(-1);
  for (let b = 0; b < B; b++) {
    const row = inputs.subarray(b * T, (b + 1) * T);
    pred[b * T + T - 1] = row[row.indexOf(A - 1) + 1];
  }
  return pred;
}

test('selective copying: layout, counts and targets (paper sizes: M = 16, A = 16)', () => {
  const B = 32;
  const L = 256;
  const M = 16;
  const A = 16;
  const { noise, marker, firstData, lastData } = selectiveCopyingTokens(A);
  assert.deepEqual([noise, marker, firstData, lastData], [0, 15, 1, 14]);
  const r = selectiveCopying(new Rng(7), { batch: B, length: L });
  const T = selectiveCopyingLength(L, M);
  assert.equal(r.seqLen, T);
  assert.equal(T, L + 2 * M);
  assert.equal(r.inputs.length, B * T);
  assert.equal(r.targets.length, B * T);
  assert.equal(r.vocabSize, A);
  let minPos = Infinity;
  let maxPos = -Infinity;
  const seen = new Set<number>();
  for (let b = 0; b < B; b++) {
    const x = r.inputs.subarray(b * T, (b + 1) * T);
    const y = r.targets.subarray(b * T, (b + 1) * T);
    const dataPos: number[] = [];
    for (let t = 0; t < L + M; t++) {
      assert.notEqual(x[t], marker, 'no marker before the answer region');
      if (x[t] !== noise) {
        assert.ok(x[t] >= firstData && x[t] <= lastData, `data token ${x[t]}`);
        dataPos.push(t);
        seen.add(x[t]);
      }
      assert.equal(y[t], IGNORE_INDEX, 'nothing scored before the markers');
    }
    assert.equal(dataPos.length, M, `row ${b}: exactly M data tokens`);
    minPos = Math.min(minPos, dataPos[0]);
    maxPos = Math.max(maxPos, dataPos[M - 1]);
    for (let j = 0; j < M; j++) {
      assert.equal(x[L + M + j], marker);
      assert.equal(y[L + M + j], x[dataPos[j]], `row ${b}: target ${j} is data token ${j} in order`);
    }
  }
  assert.ok(minPos < 20 && maxPos > L + M - 20, `positions spread over the whole range (${minPos}…${maxPos})`);
  assert.equal(seen.size, 14, 'every data token value occurs');
  const acc = scoredAccuracy(r.targets, { predictions: solveSelectiveCopying(r.inputs, B, T, A) });
  assert.deepEqual(acc, { correct: B * M, total: B * M, accuracy: 1 });
});

test('selective copying: seeded, options respected, bad options named', () => {
  const a = selectiveCopying(new Rng(1), { batch: 4, length: 64, numTokens: 4, vocabSize: 8 });
  const b = selectiveCopying(new Rng(1), { batch: 4, length: 64, numTokens: 4, vocabSize: 8 });
  const c = selectiveCopying(new Rng(2), { batch: 4, length: 64, numTokens: 4, vocabSize: 8 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.inputs, c.inputs);
  assert.equal(a.seqLen, 72);
  assert.ok(a.inputs.every((v) => v >= 0 && v < 8));
  assert.equal(a.targets.filter((v) => v !== IGNORE_INDEX).length, 16);
  // length 0: the data tokens fill the first M slots exactly
  const z = selectiveCopying(new Rng(3), { batch: 2, length: 0, numTokens: 3, vocabSize: 16 });
  for (let t = 0; t < 3; t++) assert.ok(z.inputs[t] >= 1 && z.inputs[t] <= 14);
  assert.throws(() => selectiveCopying(new Rng(1), { batch: 0, length: 8 }), (e: unknown) => e instanceof TaskError && /batch/.test((e as Error).message));
  assert.throws(() => selectiveCopying(new Rng(1), { batch: 1, length: 8, vocabSize: 2 }), /vocabSize must be an integer >= 3/);
});

test('induction heads: one trigger + answer, trigger again at the end, only the last position scored', () => {
  const B = 64;
  const L = 256;
  const A = 16;
  const { trigger, reserved } = inductionHeadsTokens(A);
  assert.equal(trigger, 15);
  const r = inductionHeads(new Rng(11), { batch: B, length: L });
  const T = L + 1;
  assert.equal(r.seqLen, T);
  let minP = Infinity;
  let maxP = -Infinity;
  for (let b = 0; b < B; b++) {
    const x = r.inputs.subarray(b * T, (b + 1) * T);
    const y = r.targets.subarray(b * T, (b + 1) * T);
    const triggers: number[] = [];
    for (let t = 0; t < T; t++) if (x[t] === trigger) triggers.push(t);
    assert.equal(triggers.length, 2, `row ${b}: two triggers`);
    const p = triggers[0];
    assert.equal(triggers[1], L);
    assert.ok(p >= 0 && p < L - 2, `trigger position ${p}`);
    minP = Math.min(minP, p);
    maxP = Math.max(maxP, p);
    for (let t = 0; t < L; t++) if (t !== p) assert.ok(x[t] !== reserved && x[t] < trigger, `row ${b} t ${t}: data token`);
    for (let t = 0; t < L; t++) assert.equal(y[t], IGNORE_INDEX);
    assert.equal(y[L], x[p + 1], 'the answer is the token after the first trigger');
  }
  assert.ok(minP < 30 && maxP > L - 40, `trigger positions spread (${minP}…${maxP})`);
  assert.equal(scoredAccuracy(r.targets, { predictions: solveInduction(r.inputs, B, T, A) }).accuracy, 1);
  // and a solver that never answers scores 0
  const wrong = new Int32Array(B * T).fill(-1);
  assert.equal(scoredAccuracy(r.targets, { predictions: wrong }).accuracy, 0);
});

test('induction heads: lossOn "all" scores next tokens too; seeding; errors', () => {
  const r = inductionHeads(new Rng(5), { batch: 3, length: 20, lossOn: 'all' });
  const T = 21;
  for (let b = 0; b < 3; b++) {
    for (let t = 0; t < 20; t++) assert.equal(r.targets[b * T + t], r.inputs[b * T + t + 1]);
    assert.notEqual(r.targets[b * T + 20], IGNORE_INDEX);
  }
  assert.deepEqual(inductionHeads(new Rng(9), { batch: 2, length: 16 }), inductionHeads(new Rng(9), { batch: 2, length: 16 }));
  assert.notDeepEqual(inductionHeads(new Rng(9), { batch: 2, length: 16 }).inputs, inductionHeads(new Rng(10), { batch: 2, length: 16 }).inputs);
  assert.throws(() => inductionHeads(new Rng(1), { batch: 1, length: 2 }), /length must be an integer >= 3/);
  assert.throws(() => inductionHeads(new Rng(1), { batch: 1, length: 8, lossOn: 'some' as 'all' }), /lossOn/);
});

test('scoredAccuracy from logits (argmax) and its length checks', () => {
  const targets = Int32Array.from([IGNORE_INDEX, 2, 0]);
  const logits = Float32Array.from([9, 0, 0, /**/ 0, 1, 5, /**/ 0, 3, 1]);
  assert.deepEqual(scoredAccuracy(targets, { logits, vocabSize: 3 }), { correct: 1, total: 2, accuracy: 0.5 });
  assert.throws(() => scoredAccuracy(targets, { logits, vocabSize: 4 }), /logits has 9 values/);
  assert.ok(Number.isNaN(scoredAccuracy(Int32Array.from([IGNORE_INDEX]), { predictions: [0] }).accuracy));
});

test('random helpers: derived seeds, unbiased randInt, permutations, rng state round trip', () => {
  assert.equal(deriveSeed(1, 2, 3), deriveSeed(1, 2, 3));
  const seeds = new Set<number>();
  for (let s = 0; s < 4; s++) for (let k = 0; k < 250; k++) seeds.add(deriveSeed(s, k));
  assert.equal(seeds.size, 1000, 'no collisions among 1000 (seed, step) pairs');
  assert.notEqual(deriveSeed(1, 2), deriveSeed(2, 1));
  assert.ok([...seeds].every((s) => Number.isSafeInteger(s) && s >= 0));
  assert.throws(() => deriveSeed(1, 0.5), /key 0 must be a safe integer/);

  const rng = new Rng(3);
  const counts = new Array(6).fill(0);
  for (let i = 0; i < 60000; i++) counts[randInt(rng, 6)]++;
  for (const c of counts) assert.ok(Math.abs(c - 10000) < 500, `bucket ${c}`);
  assert.throws(() => randInt(rng, 0), /randInt/);

  const p = permutation(subRng(1, 2), 100);
  assert.deepEqual([...p].sort((a, b) => a - b), [...Array(100).keys()]);
  assert.notDeepEqual([...p], [...Array(100).keys()]);

  const r = new Rng(42);
  for (let i = 0; i < 5; i++) r.nextU32();
  const st = rngState(r);
  const r2 = rngFromState(JSON.parse(JSON.stringify(st)));
  for (let i = 0; i < 10; i++) assert.equal(r2.nextU32(), r.nextU32());
  assert.throws(() => rngFromState([1, 2, 3]), /four uint32/);
});
