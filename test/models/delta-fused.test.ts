/**
 * Δ observed from the fused decode steps (issue 18): with `onDelta` set, the wasm backend keeps its fused
 * `mamba1Step` / `mamba2Step` and the step hands Δ out. The events must be those of the op sequence (the unfused
 * path, `observeDelta`): Mamba-2 to the bit (the same `processDt` on the same numbers); Mamba-1 within ULP_TOL f32
 * ulps: the kernel computes Δ as its scan uses it, softplus(raw + bias) in f32 (the sum rounded to f32, the vector
 * softplus), `processDt` in float64 rounded once at the end; the raw dt_proj output is the same kernels' on the same
 * numbers. Observing changes no logit and no token; a backend without the capability runs the op sequence; a
 * backend that claims it but hands nothing out is an error.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel, type DeltaEvent, type Model } from '../../src/index.js';
import { hfFixture, loadReference, maxAbsDiff, randomArray } from '../helpers.js';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import { processDt } from '../../src/ssm/ssd.js';
import type { Tensor } from '../../src/tensor/tensor.js';

type Step = 'mamba1Step' | 'mamba2Step';
type Hooks = Record<string, unknown>;

/** the backend methods that run a fused step: the step, the step with out_proj, the whole layer (first argument: the step's) */
function stepMethods(method: Step): string[] {
  return [method, `${method}Out`, method.replace('Step', 'Layer')];
}

/** counts the fused step's calls (any of stepMethods) that produced a result, and those of them that were asked for Δ */
function countSteps(model: Model, method: Step): { ran: number; withDelta: number } {
  const be = model.lm.backend as unknown as Hooks;
  const n = { ran: 0, withDelta: 0 };
  for (const m of stepMethods(method)) {
    if (typeof be[m] !== 'function') continue;
    const step = (be[m] as (a: { onDelta?: unknown }, ...rest: unknown[]) => unknown).bind(be);
    be[m] = (a: { onDelta?: unknown }, ...rest: unknown[]) => {
      const y = step(a, ...rest);
      if (y) {
        n.ran++;
        if (a.onDelta) n.withDelta++;
      }
      return y;
    };
  }
  return n;
}

/** prefill two prompts, then 4 batched one-token steps; Δ events of the decode steps and every step's logits */
async function decode(model: Model, ids: number[], observe: boolean): Promise<{ events: DeltaEvent[]; logits: Float32Array[] }> {
  const events: DeltaEvent[] = [];
  const s = model.lm.createState(2);
  const logits = [(await model.lm.advance([ids.slice(0, 5), ids.slice(3, 8)], s)).data.slice()];
  for (let t = 0; t < 4; t++) {
    const l = await model.lm.advance([[ids[t]], [ids[t + 1]]], s, observe ? { onDelta: (e) => events.push(e) } : undefined);
    logits.push(l.data.slice());
  }
  return { events, logits };
}

/**
 * Mamba-1 Δ against processDt's, in f32 ulps of Δ. The vector softplus alone: measured ≤ 3 ulps on a 0.001 grid of
 * [-30, 30] (SOFTPLUS_ULPS). The f32 sum raw + bias adds up to |x|/2 ulps of Δ where softplus(x) ≈ eˣ (x ≪ 0);
 * measured ≤ 7 on the fixtures (x down to ≈ -9): ULP_TOL leaves room for x down to ≈ -20.
 */
const SOFTPLUS_ULPS = 4;
const ULP_TOL = 16;

/** the largest distance in f32 ulps between a[i] and b[i] (same-sign finite values: their bit patterns' difference) */
function maxUlps(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  const ia = new Int32Array(a.buffer, a.byteOffset, a.length), ib = new Int32Array(b.buffer, b.byteOffset, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    assert.ok(Number.isFinite(a[i]) && Number.isFinite(b[i]) && Math.sign(a[i]) === Math.sign(b[i]), `element ${i}: ${a[i]} vs ${b[i]}`);
    m = Math.max(m, Math.abs(ia[i] - ib[i]));
  }
  return m;
}

describe('Δ from the fused decode steps (wasm)', () => {
  // mamba-variant: conv/in_proj biases; falcon-mamba-tiny: the Δ/B/C RMSNorms; jamba-tiny: Mamba-1 layers in a hybrid;
  // mamba2-groups: 2 groups; bamba-variant: a hybrid
  const cases: Array<[string, Step]> = [
    ['mamba-tiny', 'mamba1Step'], ['mamba-variant', 'mamba1Step'], ['falcon-mamba-tiny', 'mamba1Step'], ['jamba-tiny', 'mamba1Step'],
    ['mamba2-tiny', 'mamba2Step'], ['mamba2-groups', 'mamba2Step'], ['bamba-variant', 'mamba2Step'],
  ];
  for (const [name, method] of cases) {
    for (const threads of [1, 2]) {
      it(`${name}, ${threads} thread(s): the fused step's Δ = the op sequence's, logits unchanged by observing`, async () => {
        const ids = loadReference(hfFixture(name)).ids('input_ids')[0];
        const fused = await loadModel(hfFixture(name), { backend: 'wasm', threads });
        const plain = await loadModel(hfFixture(name), { backend: 'wasm', threads });
        const cpu = await loadModel(hfFixture(name));
        (plain.lm.backend as unknown as Hooks).stepDelta = false; // the op sequence whenever Δ is observed
        const calls = countSteps(fused, method), plainCalls = countSteps(plain, method);
        const a = await decode(fused, ids, true);
        const b = await decode(plain, ids, true);
        const c = await decode(cpu, ids, true);
        const quiet = await decode(fused, ids, false);
        assert.ok(calls.withDelta > 0 && calls.withDelta === a.events.length, `the fused step ran for every observed layer (${calls.withDelta} of ${a.events.length})`);
        assert.equal(plainCalls.withDelta, 0, 'without stepDelta the observed step ran the op sequence');
        for (let i = 0; i < a.logits.length; i++) {
          assert.deepEqual(a.logits[i], quiet.logits[i], `step ${i}: observing Δ changed the logits`);
          assert.deepEqual(a.logits[i], b.logits[i], `step ${i}: fused and op-sequence logits differ`);
        }
        assert.deepEqual(a.events.map((e) => [e.layer, e.kind, ...e.delta.shape]), b.events.map((e) => [e.layer, e.kind, ...e.delta.shape]));
        assert.deepEqual(a.events.map((e) => [e.layer, e.kind, ...e.delta.shape]), c.events.map((e) => [e.layer, e.kind, ...e.delta.shape]));
        const kind = method === 'mamba1Step' ? 'mamba1' : 'mamba2';
        for (let i = 0; i < a.events.length; i++) {
          const [ea, eb, ec] = [a.events[i], b.events[i], c.events[i]];
          assert.equal(ea.kind, kind);
          assert.equal(ea.delta.shape[0], 2);
          assert.equal(ea.delta.shape[1], 1);
          if (kind === 'mamba2') assert.deepEqual(ea.delta.data, eb.delta.data, `layer ${ea.layer}: Mamba-2 Δ differs from the op sequence's`);
          else {
            const u = maxUlps(ea.delta.data, eb.delta.data);
            assert.ok(u <= ULP_TOL, `layer ${ea.layer}: Mamba-1 Δ differs from the op sequence's by ${u} ulps`);
          }
          const dc = maxAbsDiff(ea.delta.data, ec.delta.data);
          assert.ok(dc < 1e-5, `layer ${ea.layer}: Δ vs the CPU backend's: max |diff| ${dc}`);
        }
      });
    }
  }

  it('greedy generation: the same tokens with Δ observed, the same events as the op sequence (2 threads)', async () => {
    for (const name of ['mamba-tiny', 'mamba2-tiny']) {
      const model = await loadModel(hfFixture(name), { backend: 'wasm', threads: 2 });
      const plain = await loadModel(hfFixture(name), { backend: 'wasm', threads: 2 });
      (plain.lm.backend as unknown as Hooks).stepDelta = false;
      const method: Step = name === 'mamba-tiny' ? 'mamba1Step' : 'mamba2Step';
      const calls = countSteps(model, method);
      const prompt = loadReference(hfFixture(name)).ids('input_ids')[0].slice(0, 6);
      const quiet = await model.generate([prompt], { maxNewTokens: 8, stopTokens: [] });
      const [a, b]: DeltaEvent[][] = [[], []];
      const observed = await model.generate([prompt], { maxNewTokens: 8, stopTokens: [], onDelta: (e) => a.push(e) });
      const unfused = await plain.generate([prompt], { maxNewTokens: 8, stopTokens: [], onDelta: (e) => b.push(e) });
      assert.deepEqual(observed.tokens, quiet.tokens, `${name}: tokens changed by observing Δ`);
      assert.deepEqual(unfused.tokens, quiet.tokens, `${name}: the op sequence's tokens differ`);
      assert.ok(calls.withDelta > 0, `${name}: the fused step handed Δ out`);
      assert.deepEqual(a.map((e) => [e.layer, ...e.delta.shape]), b.map((e) => [e.layer, ...e.delta.shape]), `${name}: events`);
      for (let i = 0; i < a.length; i++) assert.ok(maxUlps(a[i].delta.data, b[i].delta.data) <= ULP_TOL, `${name}: event ${i}`);
    }
  });

  for (const threads of [1, 2]) {
    it(`mamba1Step's Δ over softplus's range (bias in [-30, 30], 1001 channels, ${threads} thread(s)): within ${SOFTPLUS_ULPS} ulps of processDt`, () => {
      // dt_proj = 0, so Δ = softplus(dtBias) channel by channel; 1001 channels: the threads' slices and a partial vector
      const Dm = 1001, K = 4, R = 2, N = 4;
      const be = new WasmBackend({ threads });
      const bias = Float32Array.from({ length: Dm }, (_, d) => -30 + (60 * d) / (Dm - 1));
      const delta: Tensor[] = [];
      const y = be.mamba1Step({
        xz: be.fromHost(randomArray(2 * Dm, 1), [1, 1, 2 * Dm]),
        conv: be.fromHost(randomArray(Dm * K, 2), [Dm, K]),
        convBias: null,
        convState: be.zeros([1, Dm, K]),
        xProj: be.fromHost(randomArray((R + 2 * N) * Dm, 3), [R + 2 * N, Dm], { matrix: true }),
        dtProj: be.fromHost(new Float32Array(Dm * R), [Dm, R], { matrix: true }),
        dtBias: be.fromHost(bias, [Dm]),
        A: be.fromHost(new Float32Array(Dm * N).fill(-1), [Dm, N]),
        D: be.fromHost(new Float32Array(Dm).fill(1), [Dm]),
        ssmState: be.zeros([1, Dm, N]),
        onDelta: (d) => delta.push(d),
      });
      assert.ok(y, 'the fused step ran');
      assert.equal(delta.length, 1);
      assert.deepEqual(delta[0].shape, [1, 1, Dm]);
      const got = be.readSync(delta[0]);
      const want = processDt(new Float32Array(Dm), bias, Dm, [-Infinity, Infinity]);
      const u = maxUlps(got, want);
      assert.ok(u <= SOFTPLUS_ULPS, `${u} ulps`);
    });
  }

  it('a backend that claims stepDelta but hands no Δ out: an error naming it, not a missing event', async () => {
    const model = await loadModel(hfFixture('mamba-tiny'), { backend: 'wasm', threads: 1 });
    const be = model.lm.backend as unknown as Hooks;
    for (const m of stepMethods('mamba1Step')) {
      const step = (be[m] as (a: object, ...rest: unknown[]) => unknown).bind(be);
      be[m] = (a: object, ...rest: unknown[]) => step({ ...a, onDelta: undefined }, ...rest);
    }
    const s = model.lm.createState(1);
    await model.lm.advance([[3, 17, 250]], s);
    await assert.rejects(model.lm.advance([[9]], s, { onDelta: () => {} }), /wasm.*fused mamba1 decode step returned no Δ.*stepDelta/);
  });
});
