import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { Rng } from '../../src/generate/rng.js';
import { Sampler, SamplingError, argmax, type SamplingOptions } from '../../src/generate/sampling.js';

// ---------- helpers ----------

function f32(xs: number[]): Float32Array {
  return Float32Array.from(xs);
}

/** softmax(x / T) in float64 from the float32-rounded logits the sampler actually sees. */
function softmax(xs: ArrayLike<number>, T = 1): number[] {
  const v = Array.from(xs, (x) => x / T);
  const m = Math.max(...v);
  const e = v.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

function draw(s: Sampler, logits: Float32Array, n: number, history: number[] = []): number[] {
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < n; i++) counts[s.sample(logits, history)]++;
  return counts;
}

function support(counts: number[]): number[] {
  return counts.flatMap((c, i) => (c > 0 ? [i] : []));
}

function finiteSupport(x: Float32Array): number[] {
  return Array.from(x).flatMap((v, i) => (v !== -Infinity ? [i] : []));
}

/** Independent xoshiro128** reference in BigInt arithmetic (known-answer cross-check). */
function xoshiroRef(state: [number, number, number, number], n: number): number[] {
  const M = 0xffffffffn;
  let [s0, s1, s2, s3] = state.map((x) => BigInt(x >>> 0));
  const rotl = (x: bigint, k: bigint) => ((x << k) | (x >> (32n - k))) & M;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(Number((rotl((s1 * 5n) & M, 7n) * 9n) & M));
    const t = (s1 << 9n) & M;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11n);
  }
  return out;
}

// ---------- Rng ----------

describe('Rng', () => {
  it('xoshiro128** matches the reference sequence for state {1,2,3,4}', () => {
    const r = Rng.fromState(1, 2, 3, 4);
    const got = Array.from({ length: 6 }, () => r.nextU32());
    // first outputs published for the reference implementation
    assert.deepEqual(got.slice(0, 4), [11520, 0, 5927040, 70819200]);
    assert.deepEqual(got, xoshiroRef([1, 2, 3, 4], 6));
  });

  it('matches the BigInt reference over a long run from arbitrary states', () => {
    const state: [number, number, number, number] = [0xdeadbeef, 0x12345678, 0x9abcdef0, 0x0badf00d];
    const r = Rng.fromState(...state);
    const got = Array.from({ length: 1000 }, () => r.nextU32());
    assert.deepEqual(got, xoshiroRef(state, 1000));
  });

  it('next() lies in [0,1) with mean ~0.5 and variance ~1/12', () => {
    const r = new Rng(12345);
    const N = 100_000;
    let sum = 0;
    let sq = 0;
    let min = 1;
    let max = 0;
    for (let i = 0; i < N; i++) {
      const x = r.next();
      assert.ok(x >= 0 && x < 1, `out of range: ${x}`);
      sum += x;
      sq += x * x;
      min = Math.min(min, x);
      max = Math.max(max, x);
    }
    const mean = sum / N;
    assert.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean}`);
    assert.ok(Math.abs(sq / N - mean * mean - 1 / 12) < 0.005, 'variance');
    assert.ok(min < 0.001 && max > 0.999, 'covers the interval');
  });

  it('nextU32 returns unsigned 32-bit integers using the high bit', () => {
    const r = new Rng(7);
    let high = 0;
    for (let i = 0; i < 1000; i++) {
      const u = r.nextU32();
      assert.ok(Number.isInteger(u) && u >= 0 && u <= 0xffffffff);
      if (u >= 0x80000000) high++;
    }
    assert.ok(high > 400 && high < 600, `high-bit count ${high}`);
  });

  it('is deterministic per seed; distinct seeds (incl. negative and > 2^32) give distinct streams', () => {
    const seq = (seed: number) => {
      const r = new Rng(seed);
      return Array.from({ length: 8 }, () => r.nextU32());
    };
    assert.deepEqual(seq(42), seq(42));
    const seeds = [0, 1, 2, 42, -1, 2 ** 32, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER];
    const streams = new Set(seeds.map((s) => seq(s).join(',')));
    assert.equal(streams.size, seeds.length);
  });

  it('rejects non-integer seeds', () => {
    assert.throws(() => new Rng(1.5), RangeError);
    assert.throws(() => new Rng(NaN), RangeError);
  });
});

// ---------- argmax ----------

describe('argmax', () => {
  it('returns the index of the maximum', () => {
    assert.equal(argmax([1, 5, 3]), 1);
    assert.equal(argmax(f32([-3, -1, -2])), 1);
    assert.equal(argmax([7]), 0);
  });

  it('returns the first index on ties', () => {
    assert.equal(argmax([1, 4, 2, 4, 4]), 1);
    assert.equal(argmax([0, 0, 0]), 0);
  });

  it('treats NaN as -Infinity', () => {
    assert.equal(argmax([NaN, 1, 2]), 2);
    assert.equal(argmax([NaN, -Infinity, -5]), 2);
    assert.equal(argmax(f32([3, NaN, 4, NaN])), 2);
    assert.equal(argmax([NaN, Infinity, 1]), 1);
  });

  it('throws SamplingError when nothing is selectable', () => {
    assert.throws(() => argmax([NaN, NaN]), SamplingError);
    assert.throws(() => argmax([-Infinity, NaN, -Infinity]), SamplingError);
    assert.throws(() => argmax([]), SamplingError);
  });
});

// ---------- repetition penalty / greedy ----------

describe('repetition penalty', () => {
  const logits = f32([2.0, -1.0, 0.5, -3.0, 1.5, 0.0]);
  const history = [0, 1, 1, 3, 0, 5, 3, 3]; // 0,1,3 repeated; 2 and 4 absent

  it('applies logit<0 ? logit*p : logit/p once per distinct id', () => {
    const p = 1.5;
    const s = new Sampler(6, { repetitionPenalty: p });
    s.sample(logits, history);
    const expected = [2.0 / p, -1.0 * p, 0.5, -3.0 * p, 1.5, 0.0].map(Math.fround);
    assert.deepEqual(Array.from(s.lastProcessed()), expected);
    // sanity: applying it per occurrence would give different numbers
    assert.notEqual(expected[0], Math.fround(2.0 / p / p));
    assert.notEqual(expected[3], Math.fround(-3.0 * p ** 3));
  });

  it('a penalty < 1 rewards repeated tokens', () => {
    const s = new Sampler(6, { repetitionPenalty: 0.5 });
    s.sample(logits, [4, 1]);
    assert.deepEqual(Array.from(s.lastProcessed()), [2.0, -0.5, 0.5, -3.0, 3.0, 0.0]);
  });

  it('does not modify the input logits', () => {
    const copy = logits.slice();
    const s = new Sampler(6, { repetitionPenalty: 3, doSample: true, topK: 2, seed: 1 });
    s.sample(logits, history);
    assert.deepEqual(logits, copy);
  });

  it('rejects history ids outside the vocabulary', () => {
    const s = new Sampler(6, { repetitionPenalty: 1.2 });
    assert.throws(() => s.sample(logits, [6]), SamplingError);
    assert.throws(() => s.sample(logits, [-1]), SamplingError);
    assert.throws(() => s.sample(logits, [1.5]), SamplingError);
  });
});

describe('greedy', () => {
  const logits = f32([2.0, -1.0, 0.5, -3.0, 1.5, 0.0]);

  it('is the default (doSample false) and returns the argmax', () => {
    const s = new Sampler(6);
    assert.equal(s.greedy, true);
    assert.equal(s.sample(logits, []), 0);
  });

  it('equals the argmax of the penalized logits', () => {
    const p = 3;
    const s = new Sampler(6, { repetitionPenalty: p });
    const tok = s.sample(logits, [0]);
    const penalized = Array.from(logits, (x, i) => (i === 0 ? (x < 0 ? x * p : x / p) : x));
    assert.equal(tok, argmax(penalized));
    assert.equal(tok, 4); // 2/3 < 1.5: the penalty changed the winner
    assert.notEqual(tok, argmax(logits));
  });

  it('temperature 0 is greedy even with doSample, and doSample=false ignores warpers', () => {
    const a = new Sampler(6, { doSample: true, temperature: 0, seed: 3 });
    const b = new Sampler(6, { doSample: false, temperature: 5, topK: 3, seed: 3 });
    assert.equal(a.greedy, true);
    assert.equal(b.greedy, true);
    for (let i = 0; i < 50; i++) {
      assert.equal(a.sample(logits, []), 0);
      assert.equal(b.sample(logits, []), 0);
    }
    // greedy mode shows the (unwarped) logits
    assert.deepEqual(b.lastProcessed(), logits);
  });

  it('picks the first of tied maxima, skips NaN, and throws when nothing is selectable', () => {
    const s = new Sampler(4);
    assert.equal(s.sample(f32([1, 3, 3, 2]), []), 1);
    assert.equal(s.sample(f32([NaN, 0, -Infinity, 0.5]), []), 3);
    assert.throws(() => s.sample(f32([NaN, -Infinity, NaN, -Infinity]), []), SamplingError);
  });
});

// ---------- warpers ----------

describe('top-k', () => {
  const logits = f32([0.3, 2.0, -1.0, 1.8, 0.5, 1.9, -0.2, 1.0, 0.9, -3.0]);

  it('only the k largest can ever be sampled (2000 draws)', () => {
    const s = new Sampler(10, { doSample: true, topK: 3, seed: 11 });
    const counts = draw(s, logits, 2000);
    assert.deepEqual(support(counts), [1, 3, 5]);
    assert.deepEqual(finiteSupport(s.lastProcessed()), [1, 3, 5]);
    // renormalized among the three
    const p = softmax([2.0, 1.8, 1.9].map(Math.fround));
    assert.ok(Math.abs(counts[1] / 2000 - p[0]) < 0.05);
  });

  it('works with a large vocabulary (partial selection) and agrees with a full sort', () => {
    const V = 5000;
    const r = new Rng(99);
    const big = new Float32Array(V);
    for (let i = 0; i < V; i++) big[i] = (r.next() - 0.5) * 20;
    for (const k of [1, 2, 17, 256, 4999]) {
      const s = new Sampler(V, { doSample: true, topK: k, seed: k });
      s.sample(big, []);
      const expected = Array.from(big.keys())
        .sort((a, b) => big[b] - big[a])
        .slice(0, k)
        .sort((a, b) => a - b);
      assert.deepEqual(finiteSupport(s.lastProcessed()), expected, `k=${k}`);
    }
  });

  it('keeps all ties with the k-th value (HF: remove scores < kth)', () => {
    const s = new Sampler(5, { doSample: true, topK: 2, seed: 1 });
    s.sample(f32([3, 2, 0, 2, 1]), []);
    assert.deepEqual(finiteSupport(s.lastProcessed()), [0, 1, 3]);
  });

  it('topK >= vocab (or >= finite count) filters nothing', () => {
    const s = new Sampler(10, { doSample: true, topK: 50, seed: 5 });
    s.sample(logits, []);
    assert.equal(finiteSupport(s.lastProcessed()).length, 10);
    const t = new Sampler(4, { doSample: true, topK: 3, seed: 5 });
    const counts = draw(t, f32([0, -Infinity, 0, -Infinity]), 500);
    assert.deepEqual(support(counts), [0, 2]);
  });

  it('topK 1 always returns the argmax', () => {
    const s = new Sampler(10, { doSample: true, topK: 1, seed: 8 });
    assert.deepEqual(support(draw(s, logits, 300)), [1]);
  });
});

describe('top-p', () => {
  // probabilities 0.5, 0.3, 0.15, 0.05 in a shuffled order
  const probs = [0.15, 0.5, 0.05, 0.3];
  const logits = f32(probs.map(Math.log));

  function kept(topP: number, l: Float32Array = logits): number[] {
    const s = new Sampler(l.length, { doSample: true, topP, seed: 2 });
    s.sample(l, []);
    return finiteSupport(s.lastProcessed());
  }

  it('includes the token that crosses the threshold (HF convention)', () => {
    assert.deepEqual(kept(0.8), [1, 3]); // 0.5 + 0.3 reaches 0.8 exactly: the 0.15 token is dropped
    assert.deepEqual(kept(0.79), [1, 3]);
    assert.deepEqual(kept(0.81), [0, 1, 3]); // 0.8 < 0.81 so the 0.15 token crosses and is kept
    assert.deepEqual(kept(0.55), [1, 3]);
    assert.deepEqual(kept(0.5), [1]);
    assert.deepEqual(kept(0.96), [0, 1, 2, 3]);
  });

  it('exact boundary: a token whose higher-ranked mass equals topP is dropped', () => {
    // four equal logits: probabilities are exactly 0.25, so cumulative sums are exact.
    // HF: ascending cumsum 0.25, 0.5, 0.75, 1; remove where cumsum <= 1 - topP.
    const eq = f32([0, 0, 0, 0]);
    assert.equal(kept(0.5, eq).length, 2);
    assert.equal(kept(0.75, eq).length, 3);
    assert.equal(kept(0.501, eq).length, 3);
    assert.deepEqual(kept(0.25, eq), [0]); // ties broken by lowest token id
  });

  it('float32 rounding of the logits does not flip the boundary token', () => {
    // probabilities 0.4, 0.35, 0.25 from float32 logits: the top token's computed mass is
    // 0.4 - 1.1e-8, i.e. just below topP = 0.4; mathematically it reaches 0.4, so only it is kept.
    const l = f32([0.35, 0.4, 0.25].map(Math.log));
    assert.deepEqual(kept(0.4, l), [1]);
    assert.deepEqual(kept(0.41, l), [0, 1]);
  });

  it('large vocabulary (partial selection before the sort) agrees with a full-sort reference', () => {
    const V = 6000;
    const r = new Rng(5);
    for (const scale of [1, 4, 12]) {
      for (const quantize of [false, true]) {
        const l = new Float32Array(V);
        for (let i = 0; i < V; i++) {
          const x = (r.next() - 0.5) * 2 * scale;
          l[i] = quantize ? Math.round(x * 2) / 2 : x; // quantized -> many ties
        }
        const p = softmax(l);
        const order = Array.from(l.keys()).sort((a, b) => l[b] - l[a] || a - b);
        for (const topP of [0.05, 0.5, 0.9, 0.999]) {
          const expected: number[] = [];
          let above = 0;
          for (const id of order) {
            if (expected.length > 0 && above >= topP - 1e-6) break;
            expected.push(id);
            above += p[id];
          }
          expected.sort((a, b) => a - b);
          assert.deepEqual(kept(topP, l), expected, `scale=${scale} quantize=${quantize} topP=${topP}`);
        }
      }
    }
  });

  it('always keeps at least one token', () => {
    assert.deepEqual(kept(1e-9), [1]);
    assert.deepEqual(kept(0.2), [1]);
  });

  it('sampled support matches the nucleus (2000 draws)', () => {
    const s = new Sampler(4, { doSample: true, topP: 0.8, seed: 21 });
    const counts = draw(s, logits, 2000);
    assert.deepEqual(support(counts), [1, 3]);
    assert.ok(Math.abs(counts[1] / 2000 - 0.5 / 0.8) < 0.05);
  });

  it('is applied after top-k, on the renormalized top-k distribution', () => {
    // top-k 2 leaves {0.5, 0.3} -> renormalized {0.625, 0.375}; topP 0.6 keeps only the first
    const s = new Sampler(4, { doSample: true, topK: 2, topP: 0.6, seed: 4 });
    s.sample(logits, []);
    assert.deepEqual(finiteSupport(s.lastProcessed()), [1]);
    // without top-k, 0.5 < 0.6 so the 0.3 token is kept as well
    assert.deepEqual(kept(0.6), [1, 3]);
  });

  it('ignores -Infinity entries', () => {
    const l = f32([Math.log(0.6), -Infinity, Math.log(0.4), -Infinity]);
    assert.deepEqual(kept(0.99, l), [0, 2]);
  });
});

describe('min-p', () => {
  // weights relative to the max: 1, e^-1=.37, e^-2=.135, e^-3=.050, e^-4=.018
  const logits = f32([-2, 0, -4, -1, -3]);

  it('drops tokens with p < minP * pmax (2000 draws)', () => {
    const s = new Sampler(5, { doSample: true, minP: 0.1, seed: 6 });
    const counts = draw(s, logits, 2000);
    // threshold 0.1 * pmax: kept ids 1 (w=1), 3 (w=.368), 0 (w=.135); dropped 4 (.050), 2 (.018)
    assert.deepEqual(support(counts), [0, 1, 3]);
    assert.deepEqual(finiteSupport(s.lastProcessed()), [0, 1, 3]);
  });

  it('threshold moves with minP', () => {
    const keptFor = (minP: number) => {
      const s = new Sampler(5, { doSample: true, minP, seed: 6 });
      s.sample(logits, []);
      return finiteSupport(s.lastProcessed());
    };
    assert.deepEqual(keptFor(0.4), [1]); // only w=1 >= 0.4 (e^-1 = 0.368)
    assert.deepEqual(keptFor(0.3), [1, 3]);
    assert.deepEqual(keptFor(0.04), [0, 1, 3, 4]);
    assert.deepEqual(keptFor(0.01), [0, 1, 2, 3, 4]);
  });

  it('keeps at least the top token, including ties at minP = 1', () => {
    const s = new Sampler(4, { doSample: true, minP: 1, seed: 1 });
    assert.deepEqual(support(draw(s, f32([1, 5, 5, 4.999]), 500)), [1, 2]);
  });

  it('is applied after temperature', () => {
    // T = 2 halves the gaps: weights e^{-d/2}; minP 0.3 keeps d <= 2.4 -> ids 1 (d=0), 3 (1), 0 (2)
    const s = new Sampler(5, { doSample: true, temperature: 2, minP: 0.3, seed: 6 });
    s.sample(logits, []);
    assert.deepEqual(finiteSupport(s.lastProcessed()), [0, 1, 3]);
  });
});

describe('temperature', () => {
  const logits = f32([1.0, 0.5, 0.0, -0.5, -1.5]);
  const N = 20_000;

  for (const T of [0.5, 2]) {
    it(`empirical frequencies match softmax(logits/${T}) over ${N} draws`, () => {
      const s = new Sampler(5, { doSample: true, temperature: T, seed: 1000 + T * 10 });
      const freq = draw(s, logits, N).map((c) => c / N);
      const expected = softmax(logits, T);
      const maxDiff = Math.max(...freq.map((f, i) => Math.abs(f - expected[i])));
      assert.ok(maxDiff < 0.02, `max |freq - p| = ${maxDiff}`);
      // the check is discriminating: the T=1 distribution is far from the T-scaled one
      const plain = softmax(logits, 1);
      assert.ok(Math.max(...plain.map((p, i) => Math.abs(p - expected[i]))) > 0.06);
      // processed logits are logits / T
      assert.deepEqual(s.lastProcessed(), f32(Array.from(logits, (x) => x / T)));
    });
  }

  it('temperature 1 samples softmax(logits) and uniform logits sample uniformly', () => {
    const s = new Sampler(5, { doSample: true, seed: 77 });
    const freq = draw(s, logits, N).map((c) => c / N);
    const expected = softmax(logits);
    assert.ok(Math.max(...freq.map((f, i) => Math.abs(f - expected[i]))) < 0.02);
    const u = draw(s, f32([0.25, 0.25, 0.25, 0.25, 0.25]), N).map((c) => c / N);
    assert.ok(Math.max(...u.map((f) => Math.abs(f - 0.2))) < 0.02, `uniform ${u}`);
  });

  it('a tiny temperature (1e-5) behaves like greedy without NaN', () => {
    const l = f32([0.5, 2.0, 1.99, -Infinity, 0]);
    l[4] = -3e38; // huge magnitudes scaled by 1e5 must not produce NaN
    const s = new Sampler(5, { doSample: true, temperature: 1e-5, seed: 9 });
    assert.deepEqual(support(draw(s, l, 1000)), [1]);
    const p = s.lastProcessed();
    assert.ok(Array.from(p).every((v) => !Number.isNaN(v)));
  });

  it('+Infinity logits take all the mass', () => {
    const s = new Sampler(4, { doSample: true, seed: 13 });
    assert.deepEqual(support(draw(s, f32([0, Infinity, 5, Infinity]), 500)), [1, 3]);
  });

  it('never samples -Infinity/NaN entries and throws when all are', () => {
    const s = new Sampler(4, { doSample: true, seed: 13 });
    assert.deepEqual(support(draw(s, f32([-Infinity, 0, NaN, 0]), 500)), [1, 3]);
    assert.throws(() => s.sample(f32([NaN, -Infinity, NaN, -Infinity]), []), SamplingError);
  });
});

// ---------- determinism ----------

describe('seed determinism', () => {
  const logits = f32([0.1, 0.2, 0.3, 0.0, -0.1, 0.25]);
  const opts: SamplingOptions = { doSample: true, temperature: 1.3, topK: 5, topP: 0.95, repetitionPenalty: 1.1 };

  function run(seed: number): number[] {
    const s = new Sampler(6, { ...opts, seed });
    const hist: number[] = [0, 1];
    const out: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t = s.sample(logits, hist);
      hist.push(t);
      out.push(t);
    }
    return out;
  }

  it('same seed gives the same sequence, different seeds differ', () => {
    const a = run(1234);
    assert.deepEqual(run(1234), a);
    assert.notDeepEqual(run(1235), a);
    assert.ok(new Set(a).size > 2, 'the sequence actually varies');
  });

  it('reports the seed; an unseeded sampler picks one that reproduces its stream', () => {
    const s = new Sampler(6, opts);
    assert.ok(Number.isSafeInteger(s.seed));
    const t = new Sampler(6, { ...opts, seed: s.seed });
    for (let i = 0; i < 50; i++) assert.equal(s.sample(logits, []), t.sample(logits, []));
  });
});

// ---------- validation ----------

describe('option validation', () => {
  const bad: Array<[keyof SamplingOptions | 'vocabSize', SamplingOptions, number?]> = [
    ['temperature', { temperature: -0.1 }],
    ['temperature', { temperature: NaN }],
    ['temperature', { temperature: Infinity }],
    ['topP', { topP: 0 }],
    ['topP', { topP: 1.01 }],
    ['topP', { topP: NaN }],
    ['topK', { topK: -1 }],
    ['topK', { topK: 2.5 }],
    ['topK', { topK: NaN }],
    ['minP', { minP: -0.01 }],
    ['minP', { minP: 1.5 }],
    ['minP', { minP: NaN }],
    ['repetitionPenalty', { repetitionPenalty: 0 }],
    ['repetitionPenalty', { repetitionPenalty: -1 }],
    ['repetitionPenalty', { repetitionPenalty: NaN }],
    ['seed', { seed: 1.5 }],
    ['seed', { seed: NaN }],
    ['doSample', { doSample: 'yes' as unknown as boolean }],
    ['temperature', { temperature: '0.7' as unknown as number }],
    ['vocabSize', {}, 0],
    ['vocabSize', {}, 2.5],
  ];

  for (const [name, o, vocab] of bad) {
    it(`rejects ${name} in ${JSON.stringify(o)}${vocab !== undefined ? ` vocab=${vocab}` : ''}`, () => {
      assert.throws(
        () => new Sampler(vocab ?? 8, o),
        (e: unknown) => e instanceof SamplingError && e.message.includes(name),
      );
    });
  }

  it('accepts boundary values', () => {
    assert.doesNotThrow(() => new Sampler(8, { temperature: 0, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1 }));
    assert.doesNotThrow(() => new Sampler(8, { topP: 1e-9, minP: 1, topK: 1000, seed: -5 }));
  });

  it('error messages name the allowed range', () => {
    assert.throws(() => new Sampler(8, { topP: 2 }), /topP.*\(0, 1\]/);
    assert.throws(() => new Sampler(8, { minP: 2 }), /minP.*\[0, 1\]/);
  });

  it('rejects logits of the wrong length', () => {
    const s = new Sampler(4, { doSample: true, seed: 1 });
    assert.throws(() => s.sample(new Float32Array(5), []), SamplingError);
    assert.throws(() => new Sampler(4).lastProcessed(), SamplingError);
  });
});
