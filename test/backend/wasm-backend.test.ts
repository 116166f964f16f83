/**
 * The WebAssembly backend (SIMD kernels on 2 threads) against the Hugging Face fixtures: float32 weights
 * reach the same 1e-4 parity as the TypeScript reference for every architecture; reduced-precision
 * weights (bf16, f16, q8) stay close to float32 and mostly agree on greedy tokens.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel, WasmBackend as WasmBackendClass } from '../../src/index.js';
import { hfFixture, loadReference, maxAbsDiff, stepLogits, watchTeam } from '../helpers.js';
import type { WasmBackend } from '../../src/backend/wasm/index.js';
import type { CausalLM } from '../../src/models/causal-lm.js';

const FIXTURES = ['mamba-tiny', 'mamba-variant', 'falcon-mamba-tiny', 'mamba2-tiny', 'mamba2-groups', 'bamba-variant', 'jamba-tiny', 'granite-hybrid-tiny', 'nemotron-h-tiny', 'llama-tiny'];

/** batched decode of two sequences from `ids`: prefills of 5 tokens, then 4 steps; a copy of each call's logits */
async function batchedLogits(lm: CausalLM, ids: number[]): Promise<Float32Array[]> {
  const s = lm.createState(2);
  const out = [(await lm.advance([ids.slice(0, 5), ids.slice(3, 8)], s)).data.slice()];
  for (let t = 0; t < 4; t++) out.push((await lm.advance([[ids[t]], [ids[t + 1]]], s)).data.slice());
  return out;
}

/** the same for one sequence: a prefill of 5 tokens, then 4 steps (every decode product has one row of x: M = 1) */
async function singleLogits(lm: CausalLM, ids: number[]): Promise<Float32Array[]> {
  const s = lm.createState(1);
  const out = [(await lm.advance([ids.slice(0, 5)], s)).data.slice()];
  for (let t = 0; t < 4; t++) out.push((await lm.advance([[ids[t]]], s)).data.slice());
  return out;
}

/**
 * batchedLogits with a decode option off, then on (`set`), and how often each team kernel ran in each run (`ranOff(k)`,
 * `ranOn(k)`); the runtime's runTeam restored after
 */
async function offThenOn(be: WasmBackend, lm: CausalLM, ids: number[], set: (on: boolean) => void): Promise<{ off: Float32Array[]; on: Float32Array[]; ranOff(kernel: string): number; ranOn(kernel: string): number }> {
  let seen = new Map<string, number>();
  const restore = watchTeam(be.runtime, (k) => {
    seen.set(k, (seen.get(k) ?? 0) + 1);
  });
  try {
    set(false);
    const off = await batchedLogits(lm, ids);
    const seenOff = seen;
    seen = new Map();
    set(true);
    const on = await batchedLogits(lm, ids);
    const seenOn = seen;
    return { off, on, ranOff: (k) => seenOff.get(k) ?? 0, ranOn: (k) => seenOn.get(k) ?? 0 };
  } finally {
    restore();
  }
}

/** the Mamba fixtures of the one-call decode tests, with their kernels' prefix */
const STEP_FIXTURES: Array<[string, 'mamba1' | 'mamba2']> = [
  ['mamba-tiny', 'mamba1'], ['mamba-variant', 'mamba1'], ['falcon-mamba-tiny', 'mamba1'], ['jamba-tiny', 'mamba1'],
  ['mamba2-tiny', 'mamba2'], ['mamba2-groups', 'mamba2'], ['bamba-variant', 'mamba2'], ['nemotron-h-tiny', 'mamba2'],
];
/** threads and weights of the one-call decode tests */
const STEP_RUNS: Array<[number, 'f32' | 'bf16' | 'q8']> = [[1, 'f32'], [2, 'f32'], [3, 'f32'], [2, 'q8'], [3, 'q8'], [2, 'bf16']];

describe('wasm backend, float32 weights: HF parity', () => {
  for (const name of FIXTURES) {
    it(`${name}: logits within 1e-4, cached greedy decode = reference tokens and scores`, async () => {
      const ref = loadReference(hfFixture(name));
      const model = await loadModel(hfFixture(name), { backend: 'wasm', threads: 2 });
      assert.match(model.lm.backend.name, /^wasm\(2 threads, f32/);
      const out = await model.forward(ref.ids('input_ids'));
      const d = maxAbsDiff(out.logits.data, ref.f32('logits'));
      assert.ok(d <= 1e-4, `max |Δlogit| = ${d}`);
      const steps = ref.shape('generate.scores')[1];
      const V = ref.shape('generate.scores')[2];
      const scores = ref.f32('generate.scores');
      // greedy generation steps through advanceArgmax (the LM head and the argmax in one wasm op)
      const lm = model.lm;
      let fused = 0;
      const pick = lm.advanceArgmax!.bind(lm);
      lm.advanceArgmax = async (ids, s, o) => (fused++, pick(ids, s, o));
      const want = ref.ids('generate.tokens')[0];
      const res = await model.generate(ref.ids('generate.prompt'), { maxNewTokens: steps, stopTokens: [] });
      assert.deepEqual(res.tokens[0], want);
      assert.ok(fused >= steps - 1, `${fused} advanceArgmax steps for ${steps} tokens`);
      // the scores of the same steps, read as logits
      const prompt = ref.ids('generate.prompt');
      const st = lm.createState(1);
      let l = await lm.advance(prompt, st);
      for (let s = 0; s < steps; s++) {
        const ds = maxAbsDiff(l.data.subarray(0, V), scores.subarray(s * V, (s + 1) * V));
        assert.ok(ds <= 1e-4, `step ${s}: max |Δscore| = ${ds}`);
        l = await lm.advance([[want[prompt[0].length + s]]], st); // (the tokens start with the prompt)
      }
    });
  }
});

describe('wasm backend, reduced-precision weights', () => {
  // bounds: relative weight error bf16 2^-9, f16 2^-11, q8 ≤ half a step of max|w|/127 per block of 32;
  // the bounds below are on max |Δlogit| relative to the largest |logit| (random-init tiny models)
  for (const [weights, bound] of [['bf16', 0.02], ['f16', 0.005], ['q8', 0.03]] as const) {
    it(`${weights}: logits close to float32, greedy tokens mostly equal (mamba-tiny, mamba2-tiny)`, async () => {
      for (const name of ['mamba-tiny', 'mamba2-tiny']) {
        const ref = loadReference(hfFixture(name));
        const m = await loadModel(hfFixture(name), { backend: 'wasm', threads: 2, weights });
        assert.match(m.lm.backend.name, new RegExp(`${weights} weights`));
        const out = await m.forward(ref.ids('input_ids'));
        const want = ref.f32('logits');
        const scale = Math.max(...Array.from(want, Math.abs));
        const rel = maxAbsDiff(out.logits.data, want) / scale;
        assert.ok(rel > 0, 'reduced precision changes the logits (the format is really used)');
        assert.ok(rel <= bound, `${name}: max |Δlogit| / max |logit| = ${rel}`);
        // argmax agreement over all positions
        const V = ref.shape('logits')[2];
        let agree = 0, total = 0;
        for (let p = 0; p < want.length / V; p++, total++) {
          const a = want.subarray(p * V, (p + 1) * V), b = out.logits.data.subarray(p * V, (p + 1) * V);
          if (a.indexOf(Math.max(...a)) === b.indexOf(Math.max(...b))) agree++;
        }
        assert.ok(agree / total >= 0.9, `${name}: greedy agreement ${agree}/${total}`);
      }
    });
  }
});

describe('wasm backend: the fused Mamba-1 and Mamba-2 decode steps', () => {
  // mamba-variant has conv/in_proj biases; falcon-mamba-tiny the Δ/B/C RMSNorms; jamba-tiny Mamba-1 layers in a hybrid;
  // mamba2-groups 2 groups and Δ limits; bamba-variant a hybrid; nemotron-h-tiny the per-group gated norm
  const cases: Array<[string, 'mamba1Step' | 'mamba2Step']> = [
    ['mamba-tiny', 'mamba1Step'], ['mamba-variant', 'mamba1Step'], ['falcon-mamba-tiny', 'mamba1Step'], ['jamba-tiny', 'mamba1Step'],
    ['mamba2-tiny', 'mamba2Step'], ['mamba2-groups', 'mamba2Step'], ['bamba-variant', 'mamba2Step'], ['nemotron-h-tiny', 'mamba2Step'],
  ];
  for (const [name, method] of cases) {
    for (const threads of [1, 2, 3]) {
      it(`${name}, ${threads} thread(s): batched decode bit-identical to the op sequence, and really fused`, async () => {
        const fused = await loadModel(hfFixture(name), { backend: 'wasm', threads });
        const plain = await loadModel(hfFixture(name), { backend: 'wasm', threads });
        (fused.lm.backend as unknown as WasmBackend).stepOut = false; // (the step alone; with out_proj: the next describe)
        const be = fused.lm.backend as unknown as Record<string, (a: unknown) => unknown>;
        let calls = 0;
        const step = be[method].bind(be);
        be[method] = (a) => {
          const y = step(a);
          if (y) calls++;
          return y;
        };
        (plain.lm.backend as unknown as Record<string, undefined>)[method] = undefined;
        const ids = loadReference(hfFixture(name)).ids('input_ids')[0];
        const a = await batchedLogits(fused.lm, ids), b = await batchedLogits(plain.lm, ids);
        assert.ok(calls > 0, 'the fused step ran');
        for (let i = 0; i < a.length; i++) assert.deepEqual(a[i], b[i], `step ${i}: logits differ`);
      });
    }
  }
});

describe('wasm backend: the decode step and out_proj in one call (stepOut)', () => {
  for (const [name, family] of STEP_FIXTURES) {
    const kernel = `${family}_step_out`;
    for (const [threads, weights] of STEP_RUNS) {
      it(`${name}, ${weights}, ${threads} thread(s): batched decode bit-identical to the step and out_proj as two calls, and really one`, async () => {
        const model = await loadModel(hfFixture(name), { backend: 'wasm', threads, weights });
        const be = model.lm.backend as unknown as WasmBackend;
        try {
          const ids = loadReference(hfFixture(name)).ids('input_ids')[0];
          be.stepIn = false; // (the step and out_proj; with in_proj as well: the next describe)
          const r = await offThenOn(be, model.lm, ids, (on) => void (be.stepOut = on));
          assert.equal(r.ranOff(kernel), 0, 'off: the step and out_proj are two calls');
          assert.ok(r.ranOn(kernel) > 0, `on: ${kernel} ran`);
          assert.equal(r.ranOn(`${family}_step`), 0, 'on: no step without out_proj');
          for (let i = 0; i < r.off.length; i++) assert.deepEqual(r.on[i], r.off[i], `step ${i}: logits differ`);
        } finally {
          be.stepOut = true;
          be.stepIn = true;
        }
      });
    }
  }
});

describe('wasm backend: a Mamba layer\'s whole decode step in one call (stepIn: in_proj, step, out_proj)', () => {
  for (const [name, family] of STEP_FIXTURES) {
    const kernel = family === 'mamba2' ? 'mamba2_layer_2b' : `${family}_layer`; // (m2TwoBarriers on: the next describe)
    for (const [threads, weights] of STEP_RUNS) {
      it(`${name}, ${weights}, ${threads} thread(s): batched decode bit-identical to in_proj as its own call, and really one call`, async () => {
        const model = await loadModel(hfFixture(name), { backend: 'wasm', threads, weights });
        const be = model.lm.backend as unknown as WasmBackend;
        be.decodeOneCall = false; // (a call per layer: the whole step in one call is the decodeOneCall describe's)
        try {
          const ref = loadReference(hfFixture(name));
          const r = await offThenOn(be, model.lm, ref.ids('input_ids')[0], (on) => void (be.stepIn = on));
          assert.equal(r.ranOff(kernel), 0, 'off: in_proj is its own call');
          assert.ok(r.ranOff(`${family}_step_out`) > 0, 'off: the step and out_proj in one call');
          assert.ok(r.ranOn(kernel) > 0, `on: ${kernel} ran`);
          assert.equal(r.ranOn(`${family}_step_out`), 0, 'on: every layer in one call');
          for (let i = 0; i < r.off.length; i++) assert.deepEqual(r.on[i], r.off[i], `step ${i}: logits differ`);
          if (weights === 'f32') {
            // and greedy decode (batch 1, the LM head's argmax fused) gives the reference's tokens
            const want = ref.ids('generate.tokens')[0];
            const res = await model.generate(ref.ids('generate.prompt'), { maxNewTokens: ref.shape('generate.scores')[1], stopTokens: [] });
            assert.deepEqual(res.tokens[0], want);
          }
        } finally {
          be.stepIn = true;
          be.decodeOneCall = true;
        }
      });
    }
  }
});

describe('wasm backend: a Mamba-2 layer\'s one decode call with two barriers (m2TwoBarriers, m2EarlyBC)', () => {
  for (const [name, family] of STEP_FIXTURES) {
    if (family !== 'mamba2') continue;
    for (const [threads, weights] of STEP_RUNS) {
      it(`${name}, ${weights}, ${threads} thread(s): batched decode bit-identical with four barriers, two, and two with in_proj's B/C rows first`, async () => {
        const model = await loadModel(hfFixture(name), { backend: 'wasm', threads, weights });
        const be = model.lm.backend as unknown as WasmBackend;
        const rt = be.runtime;
        // the fixtures' layers are below MIN_PARALLEL_WORK: both kernels made to split among all the threads anyway
        let split = 0, early = 0, late = 0;
        be.decodeOneCall = false; // (a call per layer)
        const restore = watchTeam(rt, (k, args, parallel) => {
          const force = k === 'mamba2_layer' || k === 'mamba2_layer_2b';
          if (force && rt.threads > 1) split++;
          if (k === 'mamba2_layer_2b') {
            if (args[args.length - 1] === 1) early++;
            else late++;
          }
          return force || parallel;
        });
        try {
          const ids = loadReference(hfFixture(name)).ids('input_ids')[0];
          be.m2EarlyBC = true;
          const r = await offThenOn(be, model.lm, ids, (on) => void (be.m2TwoBarriers = on));
          assert.equal(split > 0, threads > 1, 'the layer kernels ran on all the threads');
          assert.ok(r.ranOff('mamba2_layer') > 0, 'off: the four-barrier kernel ran');
          assert.equal(r.ranOff('mamba2_layer_2b'), 0, 'off: not the two-barrier one');
          assert.ok(r.ranOn('mamba2_layer_2b') > 0, 'on: the two-barrier kernel ran');
          assert.equal(r.ranOn('mamba2_layer'), 0, 'on: not the four-barrier one');
          for (let i = 0; i < r.off.length; i++) assert.deepEqual(r.on[i], r.off[i], `step ${i}: logits differ`);
          assert.ok(early > 0 && late === 0, 'm2EarlyBC on: B/C rows first');
          early = 0;
          const e = await offThenOn(be, model.lm, ids, (on) => void (be.m2EarlyBC = on));
          assert.ok(early > 0 && late > 0, 'm2EarlyBC off, then on');
          for (let i = 0; i < e.off.length; i++) {
            assert.deepEqual(e.off[i], r.off[i], `step ${i}: logits differ (m2EarlyBC off)`);
            assert.deepEqual(e.on[i], r.off[i], `step ${i}: logits differ (m2EarlyBC on)`);
          }
          // batch 1 (where m2EarlyBC's path runs: the batch-2 runs above take the plain barrier)
          const one: Float32Array[][] = [];
          for (const [two, earlyBC] of [[false, false], [true, false], [true, true]]) {
            be.m2TwoBarriers = two;
            be.m2EarlyBC = earlyBC;
            one.push(await stepLogits(model.lm, ids, 6, 4));
          }
          for (let i = 0; i < one[0].length; i++) {
            assert.deepEqual(one[1][i], one[0][i], `batch 1, step ${i}: logits differ (two barriers)`);
            assert.deepEqual(one[2][i], one[0][i], `batch 1, step ${i}: logits differ (two barriers, B/C rows first)`);
          }
        } finally {
          restore();
          be.m2TwoBarriers = true;
          be.m2EarlyBC = false;
          be.decodeOneCall = true;
        }
      });
    }
  }
});

describe('wasm backend: the SSM state touched during a Mamba-2 layer\'s q8 in_proj (touchState)', () => {
  for (const name of ['mamba2-tiny', 'nemotron-h-tiny']) {
    for (const threads of [1, 2, 3]) {
      it(`${name}, q8, ${threads} thread(s): the same logits with and without, and the touching kernel ran`, async () => {
        const model = await loadModel(hfFixture(name), { backend: 'wasm', threads, weights: 'q8' });
        const be = model.lm.backend as unknown as WasmBackend;
        const rt = be.runtime;
        const run0 = rt.run, team0 = rt.runTeam;
        let touched = 0, layerTouched = 0;
        be.decodeOneCall = false; // (a call per layer)
        rt.run = function (k, args, n, align, work) {
          if (k === 'linear_q8_touch') {
            touched++;
            assert.ok(args[9] > 0 && args[10] > 0, 'a region to touch');
          }
          return run0.call(this, k, args, n, align, work);
        };
        rt.runTeam = function (k, args, parallel) {
          // mamba2_layer's (and mamba2_layer_2b's) in_proj descriptor (its 2nd argument): words 8, 9 = the region to touch
          if ((k === 'mamba2_layer' || k === 'mamba2_layer_2b') && new Int32Array(rt.memory.buffer, args[1], 10)[8] > 0) layerTouched++;
          return team0.call(this, k, args, parallel);
        };
        try {
          const ids = loadReference(hfFixture(name)).ids('input_ids')[0];
          be.touchState = false;
          const off = await stepLogits(model.lm, ids, 6, 4);
          assert.equal(touched + layerTouched, 0, 'off: no touching');
          be.touchState = true;
          const on = await stepLogits(model.lm, ids, 6, 4);
          assert.ok(layerTouched > 0, 'on: the layer kernel touched the state');
          be.stepIn = false;
          const onSplit = await stepLogits(model.lm, ids, 6, 4);
          assert.ok(touched > 0, 'on, in_proj its own call: linear_q8_touch ran');
          for (let i = 0; i < off.length; i++) {
            assert.deepEqual(on[i], off[i], `step ${i}: logits differ`);
            assert.deepEqual(onSplit[i], off[i], `step ${i}: logits differ (in_proj its own call)`);
          }
          // the other q8 matrix-vector kernels (one row at a time: its own touching loop; 4 adjacent rows), touching and not
          for (const k of ['quarters', 'seq', 'rows4'] as const) {
            rt.gemvQ8 = k;
            be.touchState = true;
            be.stepIn = true;
            const onK = await stepLogits(model.lm, ids, 6, 4);
            be.stepIn = false;
            const onSplitK = await stepLogits(model.lm, ids, 6, 4);
            be.touchState = false;
            be.stepIn = true;
            const offK = await stepLogits(model.lm, ids, 6, 4);
            for (let i = 0; i < off.length; i++) {
              assert.deepEqual(onK[i], off[i], `step ${i}: logits differ (gemvQ8 '${k}', touching)`);
              assert.deepEqual(onSplitK[i], off[i], `step ${i}: logits differ (gemvQ8 '${k}', touching, in_proj its own call)`);
              assert.deepEqual(offK[i], off[i], `step ${i}: logits differ (gemvQ8 '${k}')`);
            }
          }
        } finally {
          rt.run = run0;
          rt.runTeam = team0;
          rt.gemvQ8 = 'lean';
          be.touchState = false;
          be.stepIn = true;
          be.decodeOneCall = true;
        }
      });
    }
  }
});

describe('wasm backend: the whole decode step of a Mamba stack in one call (decodeOneCall)', () => {
  // mamba-variant: conv/in_proj biases; falcon-mamba-tiny: the Δ/B/C RMSNorms; mamba2-groups: 2 groups and Δ limits;
  // llama-tiny, bamba-tiny, bamba-variant (partial RoPE, one KV head), nemotron-h-tiny (Mamba-2, attention and relu²
  // MLP blocks): attention and MLP sublayers, in the one call too (session 31); granite-hybrid-tiny and jamba-tiny
  // (mixtures of experts) run sublayer by sublayer. The KV cache's format varies with the run (f32, bf16, q8 in turn; f16 for q8 where blocks do not fit).
  const cases: Array<[string, boolean]> = [
    ['mamba-tiny', true], ['mamba-variant', true], ['falcon-mamba-tiny', true], ['mamba2-tiny', true], ['mamba2-groups', true],
    ['llama-tiny', true], ['bamba-tiny', true], ['bamba-variant', true], ['granite-hybrid-tiny', false], ['jamba-tiny', false], ['nemotron-h-tiny', true],
  ];
  for (const [name, stacked] of cases) {
    for (const [run, [threads, weights]] of STEP_RUNS.entries()) {
      // (bamba-variant's one KV head of 16 values has no q8 blocks: f16 there)
      const kvCache = (['f32', 'bf16', name === 'bamba-variant' ? 'f16' : 'q8'] as const)[run % 3];
      it(`${name}, ${weights}, ${threads} thread(s), ${kvCache} KV cache: decode bit-identical to a call per sublayer (batch 2, batch 1, from an empty state), greedy tokens equal`, async () => {
        const model = await loadModel(hfFixture(name), { backend: 'wasm', threads, weights, kvCache });
        const be = model.lm.backend as unknown as WasmBackend;
        const rt = be.runtime;
        // the fixtures are below MIN_PARALLEL_WORK: the one call made to split among all the threads anyway
        const seen = new Map<string, number>();
        let heads = 0;
        const restore = watchTeam(rt, (k, args, parallel) => {
          seen.set(k, (seen.get(k) ?? 0) + 1);
          if (k === 'decode_stack' && args[10] > 0) heads++;
          return k === 'decode_stack' || parallel;
        });
        const ran = (k: string): number => seen.get(k) ?? 0;
        // (gated_mlp also runs in the fixtures' short prefills: counted apart)
        const layerKernels = (): number => ran('mamba1_layer') + ran('mamba2_layer_2b') + ran('mamba2_layer') + ran('attn_decode_layer');
        try {
          const ref = loadReference(hfFixture(name));
          const ids = ref.ids('input_ids')[0];
          const decode = async (on: boolean) => {
            be.decodeOneCall = on;
            seen.clear();
            heads = 0;
            const two = await batchedLogits(model.lm, ids);
            const one = await stepLogits(model.lm, ids, 6, 4);
            const empty = await stepLogits(model.lm, ids, 1, 4); // (the first token with pastLen 0: Δ limits as prefill's)
            const calls = { stack: ran('decode_stack'), layers: layerKernels(), mlps: ran('gated_mlp') };
            const res = await model.generate(ref.ids('generate.prompt'), { maxNewTokens: ref.shape('generate.scores')[1], stopTokens: [] });
            // greedy steps of two sequences (the LM head's argmax of each row in the same call)
            const s2 = model.lm.createState(2);
            await model.lm.advance([ids.slice(0, 4), ids.slice(2, 6)], s2);
            const picks: number[] = [];
            let next = [[ids[0]], [ids[1]]];
            const alloc = rt.heap.alloc;
            let allocs = 0;
            for (let t = 0; t < 3; t++) {
              if (t === 1) rt.heap.alloc = function (n) { allocs++; return alloc.call(this, n); };
              try {
                const p = (await model.lm.advanceArgmax!(next, s2))!;
                picks.push(...p);
                next = [[p[0]], [p[1]]];
              } finally {
                rt.heap.alloc = alloc;
              }
            }
            return { logits: [...two, ...one, ...empty], calls, tokens: res.tokens[0], heads, picks, allocs };
          };
          const off = await decode(false);
          const on = await decode(true);
          assert.equal(off.calls.stack, 0, 'off: no one-call step');
          assert.ok(off.calls.layers > 0, 'off: a call per layer');
          if (stacked) {
            assert.equal(on.calls.stack, 13, 'on: every one-token step (4 + 4 + 1 + 4) in one call');
            assert.equal(on.calls.layers, 0, 'on: no call per layer');
            const mlpSteps = off.calls.mlps - on.calls.mlps; // (the one-token steps' gated MLPs, 13 per MLP sublayer)
            assert.ok(mlpSteps % 13 === 0 && (mlpSteps > 0) === /llama|bamba/.test(name), `on: the steps' gated MLPs in the one call (${off.calls.mlps} off, ${on.calls.mlps} on)`);
            assert.ok(on.heads > 0, 'on: greedy decode took the LM head\'s argmax in the same call');
            assert.equal(on.allocs, 0, 'on: the steps after the first reuse the first one\'s plan (no wasm memory allocated)');
          } else assert.equal(on.calls.stack, 0, 'a model with a sublayer the call does not take runs sublayer by sublayer');
          for (let i = 0; i < off.logits.length; i++) assert.deepEqual(on.logits[i], off.logits[i], `call ${i}: logits differ`);
          assert.deepEqual(on.tokens, off.tokens, 'greedy tokens');
          assert.deepEqual(on.picks, off.picks, 'greedy tokens of two sequences');
          if (weights === 'f32') assert.deepEqual(on.tokens, ref.ids('generate.tokens')[0], 'greedy tokens = the reference\'s');
        } finally {
          restore();
          be.decodeOneCall = true;
        }
      });
    }
  }
  it('llama-tiny past 128 positions: the keys split among threads (S > 1 from the 3rd step), the KV cache grown between two steps, a residual scale — the same bits as a call per sublayer', async () => {
    // prompt 125: the cache holds 128 after the prompt and grows at the 4th step (past 128: a new plan); (past + 1) / 2
    // reaches ATTN_MIN_SPLIT (64) at past 127, so 2 threads split a row's keys from the 3rd step (3 threads: from past 191, not
    // reached; batch 2 at 2 threads: one split per row, by heads). Granite's residual multiplier set on every
    // sublayer (0.3: not an f32) in the second half of the runs.
    const ids = Array.from({ length: 140 }, (_, i) => (i * 37 + 11) % 512);
    for (const [threads, weights, kvCache, scale] of [[2, 'f32', 'f32', 1], [2, 'q8', 'q8', 1], [3, 'f32', 'bf16', 1], [2, 'f32', 'q8', 0.3], [3, 'q8', 'f32', 0.3]] as const) {
      const model = await loadModel(hfFixture('llama-tiny'), { backend: 'wasm', threads, weights, kvCache });
      const lm = model.lm;
      const be = lm.backend as unknown as WasmBackend;
      for (const block of (lm as unknown as { spec: { blocks: Array<Array<{ residualScale?: number }>> } }).spec.blocks) for (const sub of block) sub.residualScale = scale;
      const rt = be.runtime;
      let stack = 0, splits = 0;
      const restore = watchTeam(rt, (k, args, parallel) => {
        if (k === 'decode_stack') {
          stack++;
          // (the first attention entry's S: decode_stack's table, entry index 20)
          if (new Float64Array(rt.memory.buffer, args[0], 32)[20] > 1) splits++;
        }
        return k === 'decode_stack' || parallel;
      });
      try {
        const run = async (on: boolean) => {
          be.decodeOneCall = on;
          stack = splits = 0;
          const one = await stepLogits(lm, ids, 125, 6);
          const s2 = lm.createState(2);
          const two = [(await lm.advance([ids.slice(0, 125), ids.slice(7, 132)], s2)).data.slice()];
          for (let t = 0; t < 6; t++) two.push((await lm.advance([[ids[t]], [ids[t + 3]]], s2)).data.slice());
          return { logits: [...one, ...two], stack, splits };
        };
        const off = await run(false);
        const on = await run(true);
        const what = `${threads} threads, ${weights}, ${kvCache} cache, scale ${scale}`;
        assert.equal(off.stack, 0, what);
        assert.equal(on.stack, 12, `${what}: every one-token step in one call`);
        if (threads === 2) assert.equal(on.splits, 4, `${what}: the keys split (S = 2) in batch 1's last 4 steps`);
        for (let i = 0; i < off.logits.length; i++) assert.deepEqual(on.logits[i], off.logits[i], `${what}, call ${i}: logits differ`);
      } finally {
        restore();
        be.decodeOneCall = true;
      }
    }
  });

  it('off with stepIn or stepOut off, or the four-barrier Mamba-2 layer; a bad option value is an error naming it', async () => {
    for (const [name, set] of [['mamba-tiny', (b: WasmBackend) => void (b.stepIn = false)], ['mamba-tiny', (b: WasmBackend) => void (b.stepOut = false)], ['mamba2-tiny', (b: WasmBackend) => void (b.m2TwoBarriers = false)]] as const) {
      const model = await loadModel(hfFixture(name), { backend: 'wasm', threads: 2 });
      const be = model.lm.backend as unknown as WasmBackend;
      set(be);
      let stack = 0;
      const restore = watchTeam(be.runtime, (k) => {
        if (k === 'decode_stack') stack++;
      });
      try {
        await stepLogits(model.lm, loadReference(hfFixture(name)).ids('input_ids')[0], 3, 2);
      } finally {
        restore();
      }
      assert.equal(stack, 0, `${name}: no one-call step`);
    }
    assert.throws(() => new WasmBackendClass({ threads: 1, decodeOneCall: 'yes' as never }), /option "decodeOneCall" must be true or false/);
  });
});

describe('wasm backend: out_proj touched during the fused decode step (stepPrefetch)', () => {
  for (const name of ['mamba-tiny', 'falcon-mamba-tiny', 'mamba2-tiny', 'bamba-variant']) {
    for (const weights of ['f32', 'q8'] as const) {
      it(`${name}, ${weights}, 2 threads: the same logits with and without, and the step kernel really got the rows`, async () => {
        const model = await loadModel(hfFixture(name), { backend: 'wasm', threads: 2, weights });
        const be = model.lm.backend as unknown as WasmBackend;
        const seen: number[][] = [];
        const restore = watchTeam(be.runtime, (kernel, args) => {
          if (kernel === 'mamba1_step' || kernel === 'mamba2_step') seen.push(args.slice(-6));
        });
        try {
          const ids = loadReference(hfFixture(name)).ids('input_ids')[0];
          be.stepOut = false; // (the two-call path: the one-call path does not prefetch, as with stepPrefetch on)
          const run = async (prefetch: number): Promise<Float32Array[]> => {
            be.stepPrefetch = prefetch;
            return stepLogits(model.lm, ids, 6, 4);
          };
          const off = await run(0);
          assert.ok(seen.length > 0 && seen.every((a) => a[0] === 0), 'off: no rows passed');
          seen.length = 0;
          const on = await run(2 ** 31);
          assert.ok(seen.length > 0 && seen.every((a) => a[0] > 0 && a[1] > 0 && a[4] > 0 && a[5] > 0), 'on: the step kernels got out_proj');
          if (weights === 'q8' && name !== 'bamba-variant') assert.ok(seen.some((a) => a[2] > 0 && a[3] > 0), 'q8: the scales too');
          for (let i = 0; i < off.length; i++) assert.deepEqual(on[i], off[i], `step ${i}: logits differ`);
        } finally {
          restore();
          be.stepPrefetch = 0;
          be.stepOut = true;
        }
      });
    }
  }
});

describe('wasm backend: the q8 matrix-vector kernels of decode (gemvQ8 \'lean\', \'quarters\', \'seq\', \'rows4\')', () => {
  // mamba-tiny / mamba2-tiny: the one-call decode (decodeStack); bamba-tiny: Mamba-2 and attention sublayers;
  // llama-tiny: attention and gated MLPs (q/k/v and gate/up through linearMany)
  for (const name of ['mamba-tiny', 'mamba2-tiny', 'bamba-tiny', 'llama-tiny']) {
    for (const threads of [1, 2, 3]) {
      it(`${name}, q8, ${threads} thread(s): prefill and decode logits (batch 1 and 2) bit-identical with 'lean' (default), 'quarters', 'seq' and 'rows4'`, async () => {
        const model = await loadModel(hfFixture(name), { backend: 'wasm', threads, weights: 'q8' });
        const be = model.lm.backend as unknown as WasmBackend;
        assert.equal(be.runtime.gemvQ8, 'lean');
        const rt = be.runtime, run0 = rt.run, team0 = rt.runTeam;
        try {
          const ids = loadReference(hfFixture(name)).ids('input_ids')[0];
          const single = (): Promise<Float32Array[]> => singleLogits(model.lm, ids);
          const quarters1 = await single();
          for (const k of ['quarters', 'seq', 'rows4'] as const) {
            be.runtime.gemvQ8 = k;
            const other1 = await single();
            for (let i = 0; i < quarters1.length; i++) assert.deepEqual(other1[i], quarters1[i], `batch 1, step ${i}: logits differ with '${k}'`);
            // batch 2 (M = 2 runs the tiles, whose rows are the same bits as the M = 1 kernels')
            const r = await offThenOn(be, model.lm, ids, (on) => void (be.runtime.gemvQ8 = on ? k : 'lean'));
            for (let i = 0; i < r.off.length; i++) assert.deepEqual(r.on[i], r.off[i], `batch 2, step ${i}: logits differ with '${k}'`);
          }
        } finally {
          rt.run = run0;
          rt.runTeam = team0;
          be.runtime.gemvQ8 = 'lean';
        }
      });
    }
  }
  it('a bad value is an error naming the option', () => {
    assert.throws(() => new WasmBackendClass({ threads: 1, gemvQ8: 'fast' as never }), /option "gemvQ8" must be one of 'seq', 'rows4', 'quarters', 'lean'/);
  });
});

describe('wasm backend: the f32 matrix-vector kernel of before issue 18\'s fix (gemvF32 \'rows4\')', () => {
  for (const name of ['mamba-tiny', 'mamba2-tiny', 'llama-tiny']) {
    for (const threads of [1, 2, 3]) {
      it(`${name}, f32, ${threads} thread(s): decode bit-identical with 'seq' (default) and 'rows4'; batch 2 within 1e-6`, async () => {
        const model = await loadModel(hfFixture(name), { backend: 'wasm', threads, weights: 'f32' });
        const be = model.lm.backend as unknown as WasmBackend;
        assert.equal(be.runtime.gemvF32, 'seq');
        try {
          const ids = loadReference(hfFixture(name)).ids('input_ids')[0];
          // batch 1: every decode product has one row of x (M = 1): the same bits
          const single = (): Promise<Float32Array[]> => singleLogits(model.lm, ids);
          be.runtime.gemvF32 = 'seq';
          const seq1 = await single();
          be.runtime.gemvF32 = 'rows4';
          const old1 = await single();
          for (let i = 0; i < seq1.length; i++) assert.deepEqual(seq1[i], old1[i], `batch 1, step ${i}: logits differ`);
          // batch 2: M = 2 runs gemvF32Few ('seq') or the 2×4 tiles ('rows4'), another summation order
          const r = await offThenOn(be, model.lm, ids, (on) => void (be.runtime.gemvF32 = on ? 'rows4' : 'seq'));
          assert.equal(be.runtime.gemvF32, 'rows4');
          for (let i = 0; i < r.off.length; i++) {
            let d = 0, m = 0;
            for (let e = 0; e < r.off[i].length; e++) { d = Math.max(d, Math.abs(r.on[i][e] - r.off[i][e])); m = Math.max(m, Math.abs(r.off[i][e])); }
            assert.ok(d <= 1e-6 * m, `batch 2, step ${i}: max |Δ| ${d} > 1e-6 · max |logit| ${m}`);
          }
        } finally {
          be.runtime.gemvF32 = 'seq';
        }
      });
    }
  }
  it('a bad value is an error naming the option', () => {
    assert.throws(() => new WasmBackendClass({ threads: 1, gemvF32: 'fast' as never }), /option "gemvF32" must be 'seq' or 'rows4'/);
  });
});

describe('wasm backend: the Mamba-2 decode step touching its state ahead (ssdTouch)', () => {
  // mamba2-tiny, mamba2-groups (2 groups, N = 8): Mamba-2 stacks (the one-call decode); bamba-variant, bamba-tiny:
  // Mamba-2 and attention sublayers (the per-layer path). The fixtures' states are 3–8 KiB per sequence, so 64 bytes
  // touches all but the last rows' lines and 2048 (the default) about half of them
  for (const name of ['mamba2-tiny', 'mamba2-groups', 'bamba-variant', 'bamba-tiny']) {
    for (const [threads, weights] of [[1, 'f32'], [2, 'f32'], [3, 'f32'], [1, 'q8'], [2, 'q8']] as const) {
      it(`${name}, ${weights}, ${threads} thread(s): decode logits (batch 1 and 2) bit-identical with ssdTouch 0, 64 and 2048 (default)`, async () => {
        const model = await loadModel(hfFixture(name), { backend: 'wasm', threads, weights });
        const be = model.lm.backend as unknown as WasmBackend;
        assert.equal(be.runtime.ssdTouch, 2048);
        try {
          const ids = loadReference(hfFixture(name)).ids('input_ids')[0];
          be.runtime.ssdTouch = 0;
          const off1 = await singleLogits(model.lm, ids);
          for (const d of [64, 2048]) {
            be.runtime.ssdTouch = d;
            const on1 = await singleLogits(model.lm, ids);
            for (let i = 0; i < off1.length; i++) assert.deepEqual(on1[i], off1[i], `batch 1, step ${i}: logits differ with ssdTouch ${d}`);
            const r = await offThenOn(be, model.lm, ids, (on) => void (be.runtime.ssdTouch = on ? d : 0));
            for (let i = 0; i < r.off.length; i++) assert.deepEqual(r.on[i], r.off[i], `batch 2, step ${i}: logits differ with ssdTouch ${d}`);
          }
        } finally {
          be.runtime.ssdTouch = 2048;
        }
      });
    }
  }
  it('a bad value is an error naming the option', () => {
    assert.throws(() => new WasmBackendClass({ threads: 1, ssdTouch: 100 }), /option "ssdTouch" must be a multiple of 64 bytes/);
    assert.throws(() => new WasmBackendClass({ threads: 1, ssdTouch: -64 }), /option "ssdTouch" must be a multiple of 64 bytes/);
  });
});
