/**
 * Sampling on the GPU (`sampleRows`, kernels/sample.ts) against the CPU sampler's definition: the Philox stream
 * bit for bit, frequencies of many draws from known logits (chi-square), never a token outside what the CPU
 * sampler keeps (top-k / top-p / min-p / penalty), ties, seeds; and generate() on the GPU, greedy and sampled,
 * pipelined: the returned state is the state after exactly the returned tokens.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/index.js';
import { Sampler, type SamplingOptions } from '../../src/generate/sampling.js';
import { philox4x32, philoxRows } from '../../src/generate/rng.js';
import type { SampleRowsArgs } from '../../src/backend/backend.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { hfFixture, maxAbsDiff } from '../helpers.js';
import { webgpuOrReason } from './webgpu-context.js';

const gpu = await webgpuOrReason();
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});

it('philox4x32-10 known answers (Random123 kat_vectors)', () => {
  const hex = (a: number[]) => a.map((x) => x.toString(16).padStart(8, '0')).join(' ');
  assert.equal(hex(philox4x32([0, 0, 0, 0], [0, 0])), '6627e8d5 e169c58d bc57ac4c 9b00dbd8');
  const f = 0xffffffff;
  assert.equal(hex(philox4x32([f, f, f, f], [f, f])), '408f276d 41c83b0e a20bc7c6 6d5451fd');
  assert.equal(hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])), 'd16cfe09 94fdcceb 5001e420 24126ea1');
});

type Opts = Required<Omit<SamplingOptions, 'seed' | 'doSample'>>;
const full = (o: Partial<Opts>): Opts => ({ temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, ...o });

/** draw once per row on the GPU: rows × the same logits, row r with seed seeds[r] and counter counters[r] */
async function draw(logits: Float32Array, o: Opts, seeds: number[], counters: number[], seen: number[] = []) {
  if (typeof gpu === 'string') throw new Error(gpu);
  const V = logits.length, rows = seeds.length;
  const x = new Float32Array(rows * V);
  for (let r = 0; r < rows; r++) x.set(logits, r * V);
  const pres = new Float32Array(rows * V);
  for (let r = 0; r < rows; r++) for (const t of seen) pres[r * V + t] = 1;
  const args: SampleRowsArgs = { ...o, rng: gpu.fromHost(philoxRows(seeds, counters), [rows, 8]), presence: o.repetitionPenalty !== 1 ? gpu.fromHost(pres, [rows, V]) : null };
  const lt = gpu.fromHost(x, [rows, V]);
  const ids = await gpu.sampleRows(lt, args);
  const rng = await args.rng.data();
  const presence = args.presence ? await args.presence.data() : null;
  lt.dispose();
  args.rng.dispose();
  args.presence?.dispose();
  return { ids, rng, presence };
}

/** the CPU sampler's kept tokens and their probabilities for these logits */
function reference(logits: Float32Array, o: Opts, seen: number[] = []): Float64Array {
  const s = new Sampler(logits.length, { ...o, doSample: true, seed: 1 });
  s.sample(logits, seen);
  const proc = s.lastProcessed();
  let m = -Infinity;
  for (const v of proc) m = Math.max(m, v);
  const p = new Float64Array(logits.length);
  let z = 0;
  proc.forEach((v, i) => (z += p[i] = v === -Infinity ? 0 : Math.exp(v - m)));
  return p.map((v) => v / z);
}

/** chi-square of counts against probabilities p (bins with expected < 5 pooled); throws on a kept-set violation */
function chiSquare(ids: Int32Array, p: Float64Array): { chi2: number; df: number; crit: number } {
  const n = ids.length;
  const counts = new Float64Array(p.length);
  for (const t of ids) {
    assert.ok(t >= 0 && t < p.length, `id ${t} out of range`);
    assert.ok(p[t] > 0, `token ${t} drawn but the CPU sampler drops it`);
    counts[t]++;
  }
  let chi2 = 0, df = -1, poolE = 0, poolO = 0;
  p.forEach((q, i) => {
    const e = q * n;
    if (e === 0) return;
    if (e < 5) {
      poolE += e;
      poolO += counts[i];
      return;
    }
    chi2 += (counts[i] - e) ** 2 / e;
    df++;
  });
  if (poolE > 0) {
    chi2 += (poolO - poolE) ** 2 / poolE;
    df++;
  }
  // Wilson-Hilferty: the chi-square quantile at p = 1e-4 (z = 3.719)
  const crit = df * (1 - 2 / (9 * df) + 3.719 * Math.sqrt(2 / (9 * df))) ** 3;
  return { chi2, df: Math.max(df, 1), crit };
}

function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('webgpu sampling: sampleRows', () => {
  it('draws with the Philox stream of (seed, counter): 256 equal logits pick the top 8 bits of the first word; the counter advances', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const rnd = mulberry(7);
    const seeds = Array.from({ length: 200 }, (_, r) => (r % 3 === 0 ? -1 : 1) * Math.floor(rnd() * 2 ** 52));
    const counters = Array.from({ length: 200 }, () => Math.floor(rnd() * 100000));
    const { ids, rng } = await draw(new Float32Array(256), full({}), seeds, counters);
    for (let r = 0; r < seeds.length; r++) {
      const lo = seeds[r] >>> 0, hi = Math.floor(seeds[r] / 2 ** 32) >>> 0;
      assert.equal(ids[r], philox4x32([counters[r], 0, 0, 0], [lo, hi])[0] >>> 24, `row ${r}`);
      assert.equal(rng[r * 8 + 4], counters[r] + 1);
    }
  });

  const rnd = mulberry(3);
  // (SwiftShader runs a top-p draw in ~0.1 s: a few hundred draws per case)
  const logits = Float32Array.from({ length: 16 }, () => rnd() * 4 - 2);
  logits[7] = logits[8] = logits[9] = 1.5; // ties near the top
  logits[13] = NaN;
  logits[14] = -Infinity;
  const cases: [string, Partial<Opts>, number[]][] = [
    ['temperature 0.8', { temperature: 0.8 }, []],
    ['top-k 5 (ties at the k-th value kept)', { topK: 5 }, []],
    ['top-p 0.6', { topP: 0.6 }, []],
    ['top-k 12 + top-p 0.9 + min-p 0.05, temperature 1.3', { topK: 12, topP: 0.9, minP: 0.05, temperature: 1.3 }, []],
    ['repetition penalty 1.8 + top-p 0.8', { repetitionPenalty: 1.8, topP: 0.8 }, [7, 3, 3, 12, 2]],
  ];
  for (const [name, o, seen] of cases) {
    it(`${name}: frequencies of 400 draws match the CPU sampler's distribution (chi-square), nothing outside its kept set`, async (t) => {
      if (typeof gpu === 'string') return t.skip(gpu);
      const n = 400;
      const { ids, presence } = await draw(logits, full(o), Array.from({ length: n }, (_, r) => 1000 + r), new Array(n).fill(5), seen);
      const p = reference(logits, full(o), seen);
      const { chi2, df, crit } = chiSquare(ids, p);
      t.diagnostic(`chi2 ${chi2.toFixed(1)} on ${df} df (critical ${crit.toFixed(1)} at p = 1e-4); kept ${p.filter((q) => q > 0).length} of ${p.length}`);
      assert.ok(chi2 < crit, `chi2 ${chi2} >= ${crit} (df ${df})`);
      if (presence) for (let r = 0; r < n; r++) assert.equal(presence[r * 16 + ids[r]], 1, 'the drawn id is marked seen');
    });
  }

  it('a wide row (3000 entries, several per thread): top-p over the full vocabulary and top-k with ties keep exactly the CPU sampler\'s set', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const r2 = mulberry(11);
    const wide = Float32Array.from({ length: 3000 }, () => Math.round(r2() * 40) / 10); // many ties
    for (const o of [full({ topP: 0.3 }), full({ topK: 40, topP: 0.95 }), full({ topK: 3 })]) {
      const n = 60;
      const { ids } = await draw(wide, o, Array.from({ length: n }, (_, r) => 77 + r), new Array(n).fill(0));
      const p = reference(wide, o);
      for (const id of ids) assert.ok(p[id] > 0, `${JSON.stringify(o)}: token ${id} outside the kept set`);
      // every kept token of a small set shows up
      const kept = p.reduce((a, q) => a + (q > 0 ? 1 : 0), 0);
      if (kept <= 6) assert.equal(new Set(ids).size, kept, `${JSON.stringify(o)}: ${new Set(ids).size} distinct of ${kept} kept`);
    }
  });

  it('same seed and counter → same token; temperature near 0 → the argmax; a row of NaN/-Infinity → -1', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const a = await draw(logits, full({ topP: 0.9 }), [5, 5, 6, 5], [3, 3, 3, 4]);
    const b = await draw(logits, full({ topP: 0.9 }), [5, 5, 6, 5], [3, 3, 3, 4]);
    assert.deepEqual([...a.ids], [...b.ids]);
    assert.equal(a.ids[0], a.ids[1]);
    const distinct = logits.slice();
    [distinct[7], distinct[8], distinct[9]] = [2, 2.4, 1]; // one largest value (the others are < 2)
    const cold = await draw(distinct, full({ temperature: 1e-3 }), [1, 2, 3, 4, 5], [0, 0, 0, 0, 0]);
    const top = [...distinct].indexOf(Math.max(...[...distinct].filter((v) => !Number.isNaN(v))));
    assert.deepEqual([...cold.ids], [top, top, top, top, top]);
    const none = await draw(Float32Array.from([NaN, -Infinity, NaN]), full({ topK: 2 }), [1], [0]);
    assert.equal(none.ids[0], -1);
  });
});

describe('webgpu generate: pipelined chunks, greedy and sampled on the device', () => {
  /** greedy/sampled tokens → the state after reading them step by step on the same backend */
  async function replayState(lm: CausalLM, prompt: number[], toks: number[]) {
    const s = lm.createState(1);
    await lm.advance([prompt], s);
    for (const tk of toks) await lm.advance([[tk]], s);
    return s;
  }

  // chunks: token 0 from the prompt's logits, 1 from the step that is recorded, then chunks of 4 (tokens 2-5),
  // 8 (6-13), 16 (14-29), … with the next chunk queued behind each. An abort raised while token i-1 is delivered
  // ends the sequence at token i: i = 5 is the last step of a chunk (the copy queued behind it is the base),
  // i = 9 inside one (back to the copy before it, then the returned tokens replayed)
  // llama-tiny and bamba-tiny: KV caches, whose lengths and rotary positions follow the chained and fed steps
  for (const name of ['mamba-tiny', 'mamba2-tiny', 'llama-tiny', 'bamba-tiny']) {
    it(`${name}: greedy pipelined = step by step; a sequence ending inside a chunk computed ahead returns the state after exactly its tokens`, async (t) => {
      if (typeof gpu === 'string') return t.skip(gpu);
      const model = await loadModel(hfFixture(name), { backend: gpu });
      const lm = model.lm;
      const prompt = [5, 6, 7];
      const free = await model.generate([prompt], { maxNewTokens: 24, stopTokens: [] });
      const g = free.generated[0];
      // step by step on the same backend: the same tokens
      const ref = lm.createState(1);
      await lm.advance([prompt], ref);
      let tok = g[0];
      for (let i = 1; i < g.length; i++) {
        tok = (await lm.advanceArgmax!([[tok]], ref))![0];
        assert.equal(tok, g[i], `step ${i}`);
      }
      let submits = 0;
      const orig = lm.submitChain!.bind(lm);
      (lm as { submitChain: typeof orig }).submitChain = (...a: Parameters<typeof orig>) => (submits++, orig(...a));
      const ends: [string, Parameters<typeof model.generate>[1]][] = [5, 9].map((i) => {
        const ctl = new AbortController();
        return [`abort at token ${i}`, { maxNewTokens: 24, stopTokens: [], signal: ctl.signal, onToken: (e: { index: number }) => void (e.index === i - 1 && ctl.abort()) }];
      });
      const fresh = g.findIndex((tk, i) => i >= 3 && !g.slice(0, i).includes(tk));
      if (fresh >= 0) ends.push([`stop token at ${fresh}`, { maxNewTokens: 24, stopTokens: [g[fresh]] }]);
      t.diagnostic(`${name}: ${ends.map((e) => e[0]).join(', ')}`);
      for (const [what, opts] of ends) {
        const res = await model.generate([prompt], opts);
        const n = res.generated[0].length;
        assert.deepEqual(res.generated[0], g.slice(0, n), what);
        assert.ok(n < 24, `${what}: ended early (${n} tokens)`);
        const probe = [[11]];
        const [a, b] = [await lm.advance(probe, res.state), await lm.advance(probe, await replayState(lm, prompt, g.slice(0, n)))];
        assert.ok(maxAbsDiff(a.data, b.data) <= 1e-5, `${what}: one more step after the returned state differs by ${maxAbsDiff(a.data, b.data)}`);
      }
      assert.ok(submits >= 3, `${submits} chains queued`);
    });
  }

  it('sampled generate on the GPU: same seed → same tokens; rows stopping inside chunks; returned states read exactly the returned tokens', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const model = await loadModel(hfFixture('mamba2-tiny'), { backend: gpu });
    const lm = model.lm;
    const prompts = [[5, 6, 7], [8, 9, 10]];
    const opts = { doSample: true, temperature: 0.8, topK: 50, topP: 0.95, seed: 42, maxNewTokens: 16, stopTokens: [] as number[], deviceSampling: true };
    let sampled = 0;
    const orig = lm.advanceSample!.bind(lm);
    (lm as { advanceSample: typeof orig }).advanceSample = (...a: Parameters<typeof orig>) => (sampled++, orig(...a));
    const [a, b] = [await model.generate(prompts, opts), await model.generate(prompts, opts)];
    assert.ok(sampled > 0, 'drawn on the device');
    assert.deepEqual(a.generated, b.generated);
    assert.deepEqual(a.seeds, [42, 43]);
    const c = await model.generate(prompts, { ...opts, seed: 7 });
    assert.notDeepEqual(c.generated, a.generated);
    // row 1 stops on a token first met at index >= 6; row 0 goes on to max tokens
    const g1 = a.generated[1];
    const at = g1.findIndex((tk, i) => i >= 6 && !g1.slice(0, i).includes(tk) && !a.generated[0].slice(0, i + 1).includes(tk));
    if (at < 0) return t.skip('no fresh token to stop on');
    const s = await model.generate(prompts, { ...opts, stopTokens: [g1[at]] });
    assert.deepEqual(s.generated[1], g1.slice(0, at + 1));
    assert.deepEqual(s.finishReason, [s.generated[0].length === 16 ? 'length' : 'stop', 'stop']);
    // the first tokens up to the stop are the same draws (the same seeds and counters)
    assert.deepEqual(s.generated[0].slice(0, at + 1), a.generated[0].slice(0, at + 1));
    for (let r = 0; r < 2; r++) {
      const ref = await replayState(lm, prompts[r], s.generated[r]);
      const row = s.state.select([r]);
      const [x, y] = [await lm.advance([[3]], row), await lm.advance([[3]], ref)];
      assert.ok(maxAbsDiff(x.data, y.data) <= 1e-5, `row ${r}: one more step differs by ${maxAbsDiff(x.data, y.data)}`);
    }
  });
});
