/**
 * The recall tasks' generators (src/train/recall-tasks.ts): MQAR as Zoology's `multiquery_ar` lays it out (keys and
 * values from disjoint vocabulary halves, each key queried once after the pairs, the gap law), and the copying task
 * (BOS string COPY string, targets the next token and EOS). Invariants checked on many seeded rows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/generate/rng.js';
import { copySeqLen, copyStrings, copyTokens, mqar, mqarTokens } from '../../src/train/recall-tasks.js';
import { IGNORE_INDEX, TaskError } from '../../src/train/tasks.js';

test('mqar: K pairs k v from disjoint halves (distinct keys, distinct values), then each key queried once at 2K + 2·gap with its value as the target', () => {
  const V = 64, T = 48, K = 6;
  const bt = mqar(new Rng(1), { batch: 200, seqLen: T, numKv: K, vocabSize: V });
  assert.equal(bt.inputs.length, 200 * T);
  assert.equal(bt.seqLen, T);
  const { firstKey, lastKey, firstValue, lastValue } = mqarTokens(V);
  assert.deepEqual([firstKey, lastKey, firstValue, lastValue], [1, 31, 32, 63]);
  for (let b = 0; b < bt.batch; b++) {
    const x = bt.inputs.subarray(b * T, (b + 1) * T);
    const y = bt.targets.subarray(b * T, (b + 1) * T);
    const kv = new Map<number, number>();
    for (let j = 0; j < K; j++) {
      const k = x[2 * j], v = x[2 * j + 1];
      assert.ok(k >= firstKey && k <= lastKey, `row ${b}: key ${k}`);
      assert.ok(v >= firstValue && v <= lastValue, `row ${b}: value ${v}`);
      assert.ok(!kv.has(k), `row ${b}: key ${k} twice`);
      kv.set(k, v);
      assert.equal(y[2 * j], IGNORE_INDEX);
      assert.equal(y[2 * j + 1], IGNORE_INDEX);
    }
    assert.equal(new Set(kv.values()).size, K, `row ${b}: values distinct`);
    const queried = new Set<number>();
    for (let t = 2 * K; t < T; t++) {
      if (y[t] === IGNORE_INDEX) continue;
      assert.equal((t - 2 * K) % 2, 0, `row ${b}: query at odd offset ${t}`);
      assert.ok(kv.has(x[t]), `row ${b}: query ${x[t]} at ${t} is not a key of the context`);
      assert.equal(y[t], kv.get(x[t]), `row ${b}: target at ${t} is the key's value`);
      assert.ok(!queried.has(x[t]), `row ${b}: key ${x[t]} queried twice`);
      queried.add(x[t]);
    }
    assert.equal(queried.size, K, `row ${b}: every key queried once`);
    for (const v of x) assert.ok(v >= 0 && v < V);
  }
});

test('mqar: the other positions are uniform noise over the whole vocabulary (Zoology random_non_queries)', () => {
  const V = 32, T = 64, K = 2;
  const bt = mqar(new Rng(2), { batch: 400, seqLen: T, numKv: K, vocabSize: V });
  const counts = new Float64Array(V);
  let n = 0;
  for (let i = 0; i < bt.inputs.length; i++) {
    const t = i % T;
    if (t < 2 * K || bt.targets[i] !== IGNORE_INDEX) continue;
    counts[bt.inputs[i]]++;
    n++;
  }
  // each token near n / V (a chi-square with V − 1 = 31 degrees of freedom stays below 70 but for 1e-4 of seeds)
  const chi2 = counts.reduce((s, c) => s + (c - n / V) ** 2 / (n / V), 0);
  assert.ok(chi2 < 70, `chi-square ${chi2.toFixed(1)} of the noise tokens`);
});

test('mqar: query gaps follow P(g) ∝ (g+1)^(a−1) — the first key\'s gap, a = 0.01 (short gaps likely) and a = 1 (uniform)', () => {
  const T = 40, K = 1;
  const space = (T - 2 * K) / 2; // 19 gaps
  for (const a of [0.01, 1]) {
    const rows = 8000;
    const bt = mqar(new Rng(3), { batch: rows, seqLen: T, numKv: K, vocabSize: 64, powerA: a });
    const hist = new Float64Array(space);
    for (let b = 0; b < rows; b++) {
      for (let t = 2 * K; t < T; t++) if (bt.targets[b * T + t] !== IGNORE_INDEX) hist[(t - 2 * K) / 2]++;
    }
    const w = Array.from({ length: space }, (_, g) => a * (g + 1) ** (a - 1));
    const sum = w.reduce((s, x) => s + x, 0);
    for (let g = 0; g < space; g++) {
      const p = w[g] / sum;
      const sd = Math.sqrt(rows * p * (1 - p));
      assert.ok(Math.abs(hist[g] - rows * p) <= 5 * sd + 1, `a=${a}, gap ${g}: ${hist[g]} draws, expected ${(rows * p).toFixed(0)} ± ${sd.toFixed(0)}`);
    }
  }
});

test('mqar: seeded (same seed, same batch; another, another) and bad settings are TaskErrors naming the bound', () => {
  const o = { batch: 3, seqLen: 32, numKv: 4, vocabSize: 100 };
  assert.deepEqual(mqar(new Rng(5), o).inputs, mqar(new Rng(5), o).inputs);
  assert.notDeepEqual(mqar(new Rng(5), o).inputs, mqar(new Rng(6), o).inputs);
  assert.throws(() => mqar(new Rng(0), { ...o, seqLen: 33 }), (e: unknown) => e instanceof TaskError && /must be even, got 33/.test(e.message));
  assert.throws(() => mqar(new Rng(0), { ...o, numKv: 9 }), (e: unknown) => e instanceof TaskError && /4 × --num-kv \(36\) must be <= the sequence length 32/.test(e.message));
  assert.throws(() => mqar(new Rng(0), { ...o, numKv: 4, vocabSize: 9 }), (e: unknown) => e instanceof TaskError && /at least 10, got 9/.test(e.message));
  assert.throws(() => mqar(new Rng(0), { ...o, powerA: 0 }), (e: unknown) => e instanceof TaskError && /powerA must be > 0/.test(e.message));
});

test('copy: BOS s COPY s, targets the next token of the copy and EOS at its end (n + 1 scored), data tokens 1 … A−3', () => {
  const A = 10, n = 7;
  const bt = copyStrings(new Rng(4), { batch: 50, length: n, vocabSize: A });
  const T = copySeqLen(n);
  assert.equal(T, 16);
  assert.equal(bt.seqLen, T);
  const { bos, copy, eos } = copyTokens(A);
  assert.deepEqual([bos, copy, eos], [0, 8, 9]);
  const seen = new Set<number>();
  for (let b = 0; b < bt.batch; b++) {
    const x: number[] = Array.from(bt.inputs.subarray(b * T, (b + 1) * T));
    const y: number[] = Array.from(bt.targets.subarray(b * T, (b + 1) * T));
    const s = x.slice(1, n + 1);
    assert.equal(x[0], bos);
    assert.equal(x[n + 1], copy);
    assert.deepEqual(x.slice(n + 2), s, 'the second half repeats the string');
    for (const v of s) {
      assert.ok(v >= 1 && v <= A - 3, `data token ${v}`);
      seen.add(v);
    }
    assert.deepEqual(y.slice(0, n + 1), new Array(n + 1).fill(IGNORE_INDEX), 'nothing scored before COPY');
    assert.deepEqual(y.slice(n + 1), [...s, eos]);
  }
  assert.equal(seen.size, A - 3, 'every data token appears');
  assert.throws(() => copyStrings(new Rng(0), { batch: 1, length: 0 }), (e: unknown) => e instanceof TaskError && /length must be an integer >= 1/.test(e.message));
  assert.throws(() => copyStrings(new Rng(0), { batch: 1, length: 3, vocabSize: 3 }), (e: unknown) => e instanceof TaskError && /vocabSize must be an integer >= 4/.test(e.message));
});

test('copy with minLength: each row\'s length uniform in [minLength, n], its copy followed by EOS, then unscored EOS padding', () => {
  const A = 12, n = 9, min = 2;
  const bt = copyStrings(new Rng(8), { batch: 600, length: n, vocabSize: A, minLength: min });
  const T = copySeqLen(n);
  const { bos, copy, eos } = copyTokens(A);
  const lengths = new Array(n + 1).fill(0);
  for (let b = 0; b < bt.batch; b++) {
    const x: number[] = Array.from(bt.inputs.subarray(b * T, (b + 1) * T));
    const y: number[] = Array.from(bt.targets.subarray(b * T, (b + 1) * T));
    const m = x.indexOf(copy) - 1;
    assert.ok(m >= min && m <= n, `row ${b}: length ${m}`);
    lengths[m]++;
    const s = x.slice(1, m + 1);
    assert.equal(x[0], bos);
    assert.deepEqual(x.slice(m + 2, 2 * m + 2), s);
    assert.deepEqual(x.slice(2 * m + 2), new Array(T - 2 * m - 2).fill(eos), 'padding');
    assert.deepEqual(y.slice(m + 1, 2 * m + 2), [...s, eos]);
    assert.equal(y.filter((v) => v !== IGNORE_INDEX).length, m + 1, 'only the copy and its EOS are scored');
  }
  for (let m = min; m <= n; m++) assert.ok(lengths[m] > 600 / (n - min + 1) / 2, `length ${m} drawn ${lengths[m]} times of 600`);
  assert.throws(() => copyStrings(new Rng(0), { batch: 1, length: 3, minLength: 4 }), (e: unknown) => e instanceof TaskError && /minLength 4 is more than length 3/.test(e.message));
});
