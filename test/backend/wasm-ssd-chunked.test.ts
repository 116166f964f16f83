/**
 * The chunked SSD in wasm (src/backend/wasm/assembly/ssd_chunked.ts) through WasmBackend.ssd, against the float64
 * recurrence `ssdRecurrent` (src/ssm/ssd.ts): y and the final state within 1e-5 (relative, |want| ≥ 1) on 1 and 2
 * threads, for lengths that are not multiples of the chunk, chunks longer than the prompt, one group and several
 * (B/C shared by heads h / (nh/G)), head_dim and state sizes with and without a SIMD tail, batch > 1, with and
 * without an initial state and D; a prompt in two pieces (the state carried) equals one piece; the chunked kernel
 * and the wasm recurrence agree; Δ processing (bias, softplus, limits) as the recurrence's. And whole models: the
 * Mamba-2 and hybrid HF fixtures (one group and several, chunk lengths 10–16 against prompts that are no multiple of
 * them) keep their 1e-4 logit parity with the chunked kernel really running, on 1 and 2 threads; a prompt in two
 * pieces gives the logits of one piece; with q8 weights, chunked and recurrent prefill agree.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { SsdArgs } from '../../src/backend/backend.js';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import { processDt, ssdRecurrent, type SsdArrays } from '../../src/ssm/ssd.js';
import { loadModel } from '../../src/index.js';
import { hfFixture, loadReference, maxAbsDiff, randomArray } from '../helpers.js';
import { maxScaledErr } from './wasm-arena.js';

// (short prompts too: the backend's default sends prompts under 32 tokens to the recurrence)
// ('2 mul-add': the products on the linear.ts tiles of before, ssdFma false)
const wasm = {
  1: new WasmBackend({ threads: 1, ssdChunkedMinLength: 2 }), 2: new WasmBackend({ threads: 2, ssdChunkedMinLength: 2 }),
  '2 mul-add': new WasmBackend({ threads: 2, ssdChunkedMinLength: 2, ssdFma: false }),
};
const TOL = 1e-5;

interface Case {
  b: number;
  L: number;
  nh: number;
  hd: number;
  G: number;
  N: number;
  Q: number;
  state: boolean;
  D: boolean;
  limit?: [number, number];
}

/** the recurrence's arrays (dt raw here: processed by each side) and the bias of Δ */
type Data = Pick<SsdArrays, 'x' | 'dt' | 'A' | 'B' | 'C' | 'D' | 'state'> & { dtBias: Float32Array };

function makeData(c: Case, seed: number): Data {
  const { b, L, nh, hd, G, N } = c;
  return {
    x: randomArray(b * L * nh * hd, seed + 1, 2),
    dt: randomArray(b * L * nh, seed + 2, 2),
    A: randomArray(nh, seed + 3).map((v) => -Math.exp(v)),
    B: randomArray(b * L * G * N, seed + 4),
    C: randomArray(b * L * G * N, seed + 5),
    D: c.D ? randomArray(nh, seed + 6) : null,
    dtBias: randomArray(nh, seed + 7),
    state: c.state ? randomArray(b * nh * hd * N, seed + 8, 3) : null,
  };
}

/** the float64 recurrence on positions [t0, t1) of d; `state` is read and updated */
function reference(c: Case, d: Data, t0: number, t1: number, state: Float32Array | null): Float32Array {
  const { b, L, nh, hd, G, N } = c;
  const part = (a: Float32Array, w: number) => {
    const out = new Float32Array(b * (t1 - t0) * w);
    for (let r = 0; r < b; r++) out.set(a.subarray((r * L + t0) * w, (r * L + t1) * w), r * (t1 - t0) * w);
    return out;
  };
  return ssdRecurrent({
    batch: b, seqLen: t1 - t0, nHeads: nh, headDim: hd, nGroups: G, dState: N,
    x: part(d.x, nh * hd), dt: processDt(part(d.dt, nh), d.dtBias, nh, c.limit ?? [0, Infinity]), A: d.A,
    B: part(d.B, G * N), C: part(d.C, G * N), D: d.D, state,
  });
}

/** WasmBackend.ssd on positions [t0, t1); `state` (a wasm tensor's array) is read and updated */
function runWasm(be: WasmBackend, c: Case, d: Data, t0: number, t1: number, state: Float32Array | null, algorithm: SsdArgs['algorithm'] = 'chunked'): Float32Array {
  const { b, L, nh, hd, G, N } = c;
  const l = t1 - t0;
  const part = (a: Float32Array, w: number, shape: number[]) => {
    const out = new Float32Array(b * l * w);
    for (let r = 0; r < b; r++) out.set(a.subarray((r * L + t0) * w, (r * L + t1) * w), r * l * w);
    return be.fromHost(out, shape);
  };
  const st = state ? be.fromHost(state, [b, nh, hd, N]) : null;
  const y = be.ssd({
    x: part(d.x, nh * hd, [b, l, nh, hd]), dt: part(d.dt, nh, [b, l, nh]), A: be.fromHost(d.A, [nh]),
    B: part(d.B, G * N, [b, l, G, N]), C: part(d.C, G * N, [b, l, G, N]), D: d.D ? be.fromHost(d.D, [nh]) : null,
    dtBias: be.fromHost(d.dtBias, [nh]), dtLimit: c.limit ?? [0, Infinity], state: st, algorithm, chunkSize: c.Q,
  }).dataSync();
  if (state && st) state.set(st.dataSync());
  return y;
}

const CASES: Case[] = [
  // odd sizes everywhere: hd, N without a SIMD multiple of 4, L not a multiple of Q, Q not a multiple of 4
  { b: 1, L: 7, nh: 3, hd: 5, G: 1, N: 3, Q: 3, state: true, D: true },
  { b: 2, L: 37, nh: 6, hd: 16, G: 2, N: 8, Q: 10, state: true, D: true, limit: [0.01, 0.5] },
  { b: 1, L: 50, nh: 8, hd: 12, G: 4, N: 17, Q: 7, state: false, D: true },
  { b: 3, L: 20, nh: 4, hd: 8, G: 2, N: 16, Q: 256, state: true, D: false },
  // mamba2-130m's head shape (hd 64, N 128), a short last chunk
  { b: 1, L: 133, nh: 3, hd: 64, G: 1, N: 128, Q: 64, state: true, D: true },
  { b: 1, L: 2, nh: 2, hd: 4, G: 1, N: 4, Q: 64, state: false, D: true },
];

function label(c: Case): string {
  return `b=${c.b} L=${c.L} nh=${c.nh} hd=${c.hd} G=${c.G} N=${c.N} Q=${c.Q}${c.state ? ' state' : ''}${c.D ? ' D' : ''}`;
}

/** the wasm kernels `fn` runs on `be` (team and sliced calls) */
async function kernelsRun(be: WasmBackend, fn: () => Promise<void>): Promise<string[]> {
  const names: string[] = [];
  const rt = be.runtime;
  const { run, runTeam } = rt;
  rt.run = (k, ...rest) => (names.push(k), run.call(rt, k, ...rest));
  rt.runTeam = (k, ...rest) => (names.push(k), runTeam.call(rt, k, ...rest));
  try {
    await fn();
  } finally {
    rt.run = run;
    rt.runTeam = runTeam;
  }
  return names;
}

describe('wasm chunked SSD = the float64 recurrence', () => {
  for (const threads of [1, 2, '2 mul-add'] as const) {
    for (const [i, c] of CASES.entries()) {
      it(`${threads} thread(s), ${label(c)}: y and final state within ${TOL}`, () => {
        const d = makeData(c, 100 * i);
        const refState = d.state ? d.state.slice() : null;
        const want = reference(c, d, 0, c.L, refState);
        const gotState = d.state ? d.state.slice() : null;
        const got = runWasm(wasm[threads], c, d, 0, c.L, gotState);
        const ey = maxScaledErr(got, want);
        assert.ok(ey <= TOL, `y: max scaled error ${ey}`);
        if (refState) {
          const es = maxScaledErr(gotState!, refState);
          assert.ok(es <= TOL, `state: max scaled error ${es}`);
        }
      });
    }
  }

  it('a prompt in two pieces (state carried, the cut inside a chunk) = one piece; = the wasm recurrence', () => {
    const c: Case = { b: 2, L: 90, nh: 4, hd: 16, G: 2, N: 32, Q: 16, state: true, D: true };
    const d = makeData(c, 7);
    for (const threads of [1, 2] as const) {
      const s1 = d.state!.slice();
      const one = runWasm(wasm[threads], c, d, 0, c.L, s1);
      const s2 = d.state!.slice();
      const a = runWasm(wasm[threads], c, d, 0, 37, s2);
      const b = runWasm(wasm[threads], c, d, 37, c.L, s2);
      // stitch the pieces back into [b, L, nh, hd]
      const W = c.nh * c.hd;
      const two = new Float32Array(one.length);
      for (let r = 0; r < c.b; r++) {
        two.set(a.subarray(r * 37 * W, (r + 1) * 37 * W), r * c.L * W);
        two.set(b.subarray(r * (c.L - 37) * W, (r + 1) * (c.L - 37) * W), (r * c.L + 37) * W);
      }
      assert.ok(maxScaledErr(two, one) <= TOL, `${threads} thread(s): y, two pieces vs one: ${maxScaledErr(two, one)}`);
      assert.ok(maxScaledErr(s2, s1) <= TOL, `${threads} thread(s): final state, two pieces vs one: ${maxScaledErr(s2, s1)}`);
      const s3 = d.state!.slice();
      const rec = runWasm(wasm[threads], c, d, 0, c.L, s3, 'recurrent');
      assert.ok(maxScaledErr(one, rec) <= TOL, `chunked vs wasm recurrence: ${maxScaledErr(one, rec)}`);
      assert.ok(maxScaledErr(s1, s3) <= TOL, `state, chunked vs wasm recurrence: ${maxScaledErr(s1, s3)}`);
      assert.notDeepEqual(one, rec, 'two different computations (not the same kernel twice)');
    }
  });

  it('by default, prompts under 32 tokens run the recurrence (faster there), from 32 the chunked kernel', async () => {
    const be = new WasmBackend({ threads: 2 });
    assert.equal(be.ssdChunkedMinLength, 32);
    assert.throws(() => new WasmBackend({ threads: 1, ssdChunkedMinLength: 0 }), /"ssdChunkedMinLength" must be an integer >= 1, got 0/);
    const kernels = (L: number): Promise<string[]> => {
      const c: Case = { b: 1, L, nh: 2, hd: 4, G: 1, N: 4, Q: 8, state: false, D: false };
      return kernelsRun(be, async () => void runWasm(be, c, makeData(c, 1), 0, L, null));
    };
    assert.deepEqual(await kernels(31), ['ssd_scan']);
    assert.deepEqual(await kernels(32), ['ssd_chunked_rows']);
  });

  it('1 and 2 threads give the same numbers (each head is computed the same way whichever thread takes it)', () => {
    const c: Case = { b: 2, L: 45, nh: 6, hd: 8, G: 3, N: 12, Q: 8, state: true, D: true };
    const d = makeData(c, 3);
    const s1 = d.state!.slice(), s2 = d.state!.slice();
    const y1 = runWasm(wasm[1], c, d, 0, c.L, s1);
    const y2 = runWasm(wasm[2], c, d, 0, c.L, s2);
    assert.deepEqual(y2, y1);
    assert.deepEqual(s2, s1);
  });
});

// ---- whole models

const MAMBA2_FIXTURES = ['mamba2-tiny', 'mamba2-groups', 'bamba-variant', 'granite-hybrid-tiny', 'nemotron-h-tiny'];

describe('wasm chunked SSD in whole models (HF fixtures)', () => {
  for (const threads of [1, 2] as const) {
    for (const name of MAMBA2_FIXTURES) {
      it(`${name}, ${threads} thread(s): logits within 1e-4 of the reference with ssd_chunked_rows running; two pieces = one`, async () => {
        const ref = loadReference(hfFixture(name));
        const be = new WasmBackend({ threads, ssdChunkedMinLength: 2 });
        const model = await loadModel(hfFixture(name), { backend: be, tokenizer: false });
        const ids = ref.ids('input_ids');
        let out!: Awaited<ReturnType<typeof model.forward>>;
        const names = await kernelsRun(be, async () => {
          out = await model.forward(ids);
        });
        assert.ok(names.includes('ssd_chunked_rows'), `ssd_chunked_rows ran (kernels: ${[...new Set(names)].join(', ')})`);
        const d = maxAbsDiff(out.logits.data, ref.f32('logits'));
        assert.ok(d <= 1e-4, `max |Δlogit| = ${d}`);
        // the first row of the batch in two pieces: the state carried between them
        const row = ids[0];
        const cut = Math.floor(row.length / 2) + 1;
        const one = model.lm.createState(1);
        const lOne = (await model.lm.advance([row], one)).data;
        const two = model.lm.createState(1);
        await model.lm.advance([row.slice(0, cut)], two);
        const lTwo = (await model.lm.advance([row.slice(cut)], two)).data;
        const V = model.lm.vocabSize;
        const last = (l: Float32Array) => l.subarray(l.length - V);
        assert.ok(maxAbsDiff(last(lTwo), last(lOne)) <= 1e-4, `two pieces vs one: ${maxAbsDiff(last(lTwo), last(lOne))}`);
      });
    }
  }

  for (const name of ['mamba2-groups', 'bamba-variant']) {
    it(`${name}, q8 weights, 2 threads: chunked and recurrent prefill agree (within 1e-3 of max |logit|, 20× closer than q8 to f32)`, async () => {
      const ref = loadReference(hfFixture(name));
      const be = new WasmBackend({ threads: 2, weights: 'q8', ssdChunkedMinLength: 2 });
      const ch = await loadModel(hfFixture(name), { backend: be, tokenizer: false });
      const rc = await loadModel(hfFixture(name), { backend: be, tokenizer: false, ssd: { algorithm: 'recurrent' } });
      const ids = ref.ids('input_ids');
      const [a, b] = [(await ch.forward(ids)).logits.data, (await rc.forward(ids)).logits.data];
      // q8 products quantize their activations too: an SSD output that differs in its last bits can round to the
      // neighbouring q8 step, so the two prefills differ by far less than q8 differs from f32, but not by 1e-6
      const dAlg = maxAbsDiff(a, b), dQ8 = maxAbsDiff(b, ref.f32('logits'));
      const scale = Math.max(...Array.from(b, Math.abs));
      assert.ok(dQ8 > 0, 'q8 weights really used (not the f32 logits)');
      assert.ok(dAlg <= 1e-3 * scale && dAlg <= dQ8 / 20, `chunked vs recurrent ${dAlg}; q8 vs f32 ${dQ8}; max |logit| ${scale}`);
    });
  }
});
