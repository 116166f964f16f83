/**
 * The `kvCache` load option end to end on the tiny HF Llama and Bamba fixtures (attention layers with GQA; Bamba's
 * partial rotary), CPU, wasm and WebGPU (when an adapter is there): greedy decode over 20 steps with a bf16 / f16 KV cache against the f32 cache, the
 * states' byteSize (the KV part halves), and that clone, select, concat, writeRow, compact and export/import keep the
 * format. q8 the same way (cpu = wasm on the stored values, against f32 within 1/254 of the logit spread). A format
 * the backend cannot store (q8 on webgpu) or an unknown one is refused at load with the options listed.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModel, type LoadOptions } from '../../src/index.js';
import { LoadOptionError } from '../../src/api/load-options.js';
import { ModelState } from '../../src/models/state.js';
import { buildModel } from '../../src/models/registry.js';
import type { WeightSource } from '../../src/io/weights.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { hfFixture, maxAbsDiff } from '../helpers.js';
import { webgpuOrReason } from '../backend/webgpu-context.js';

const PROMPT = [[3, 17, 250, 9, 44, 101, 7, 300, 12, 5, 88, 61]];
const STEPS = 20;

/** greedy decode: the prompt, then STEPS tokens, each the argmax of the last logits; `forced`: feed these tokens instead */
async function greedy(lm: CausalLM, state: ModelState, forced?: number[]): Promise<{ tokens: number[]; logits: Float32Array[] }> {
  let last = await lm.advance(PROMPT, state);
  const tokens: number[] = [];
  const logits: Float32Array[] = [];
  for (let s = 0; s < STEPS; s++) {
    logits.push(last.data.slice());
    let best = 0;
    for (let i = 1; i < last.data.length; i++) if (last.data[i] > last.data[best]) best = i;
    tokens.push(best);
    last = await lm.advance([[forced ? forced[s] : best]], state);
  }
  return { tokens, logits };
}

/** bytes of the state's KV caches (the tensors whose dim 1 is time), as f32 */
function kvElements(state: ModelState): number {
  return state.layers.reduce((a, l) => a + Object.entries(l).filter(([k]) => state.timeTensors.has(k)).reduce((b, [, t]) => b + t.size, 0), 0);
}

// WebGPU (SwiftShader here) with the barrier-free kernels, the faster ones on a CPU-emulated adapter
const gpu = await webgpuOrReason({ kernels: 'simple' });
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});

const BACKENDS: Array<{ label: string; opts: LoadOptions }> = [
  { label: 'cpu', opts: { backend: 'cpu' } },
  { label: 'wasm 2 threads', opts: { backend: 'wasm', threads: 2 } },
  ...(typeof gpu === 'string' ? [] : [{ label: 'webgpu', opts: { backend: gpu } }]),
];

for (const fixture of ['llama-tiny', 'bamba-tiny']) {
  describe(`kvCache bf16 / f16: ${fixture}`, () => {
    for (const be of BACKENDS) {
      for (const kv of ['bf16', 'f16'] as const) {
        it(`${be.label}, ${kv}: 20 greedy steps against the f32 cache; byteSize; state copies keep the format`, async () => {
          const ref = await loadModel(hfFixture(fixture), be.opts);
          const model = await loadModel(hfFixture(fixture), { ...be.opts, kvCache: kv });
          assert.equal(model.lm.kvCache, kv);
          const s32 = ref.createState(1), s16 = model.createState(1);
          assert.equal(s32.kvCache, 'f32');
          assert.equal(s16.kvCache, kv);
          const want = await greedy(ref.lm, s32);
          const got = await greedy(model.lm, s16);
          // (measured on these fixtures: the same 20 tokens in every case; a difference would show here first)
          assert.deepEqual(got.tokens, want.tokens, 'greedy tokens');
          const dl = Math.max(...got.logits.map((l, i) => maxAbsDiff(l, want.logits[i])));
          const spread = Math.max(...want.logits.map((l) => Math.max(...l) - Math.min(...l)));
          // each cached key/value moves by ≤ u relative (bf16 u = 2⁻⁸, f16 2⁻¹¹): the logits here by less than u of their
          // spread (measured: llama-tiny 0.22 u bf16, 0.17 u f16; bamba-tiny 0.02 u); not at all would mean no rounding
          const u = kv === 'bf16' ? 2 ** -8 : 2 ** -11;
          assert.ok(dl > 0 && dl < u * spread, `max |Δlogit| = ${dl}, logit spread ${spread}, u = ${u}`);

          // the KV part of the state takes half the bytes; the rest is unchanged
          const n = kvElements(s16);
          assert.ok(n > 0);
          assert.equal(kvElements(s32), n);
          assert.equal(s32.byteSize - s16.byteSize, n * 2);

          // copies keep the format and the values
          const clone = s16.clone();
          assert.equal(clone.kvCache, kv);
          assert.equal(clone.byteSize, s16.byteSize);
          const compact = await s16.compact();
          assert.equal(compact.kvCache, kv);
          const both = ModelState.concat([s16, clone]);
          assert.equal(both.kvCache, kv);
          assert.equal(both.select([1]).kvCache, kv);
          // continuing from a copy gives what continuing from the original gives
          const next = [[want.tokens[STEPS - 1]]];
          const a = await model.lm.advance(next, s16.clone());
          const b = await model.lm.advance(next, compact);
          assert.deepEqual(b.data, a.data, 'the compacted copy continues as the original');
          // (a batch of 2 splits the wasm decode's keys otherwise among the threads: equal to f32 rounding)
          const c = await model.lm.advance([next[0], next[0]], both);
          assert.ok(maxAbsDiff(c.data.subarray(0, a.data.length), a.data) <= 1e-5, 'a row of a concatenated state continues as the original');

          // writeRow: a fresh 16-bit batch state takes the sequence in row 1
          const batch = model.createState(2);
          assert.equal(await batch.writeRow(1, s16), true);
          assert.equal(batch.kvCache, kv);
          const w = await model.lm.advance([next[0], next[0]], batch);
          assert.ok(maxAbsDiff(w.data.subarray(a.data.length), a.data) <= 1e-5, 'the written row continues as the original');

          // export / import keep the format (BF16/F16 in the file) and the values
          const bytes = await s16.export();
          const back = model.importState(bytes);
          assert.equal(back.kvCache, kv);
          // an f32 model imports it into f32 caches holding the same values
          const back32 = ref.importState(bytes);
          assert.equal(back32.kvCache, 'f32');
          for (let i = 0; i < back.layers.length; i++) {
            for (const k of Object.keys(back.layers[i])) assert.deepEqual(await back32.layers[i][k].data(), await back.layers[i][k].data(), `layers.${i}.${k}`);
          }
          assert.deepEqual((await model.lm.advance(next, back)).data, a.data, 'the imported state continues as the original');
          // a state of another format for one call
          assert.equal(ref.createState(1, { kvCache: kv }).kvCache, kv);
          for (const s of [s32, s16, clone, compact, both, batch, back, back32]) s.dispose();
        });
      }
    }
  });
}

for (const fixture of ['llama-tiny', 'bamba-tiny']) {
  // head_dim 16 with 2 KV heads: a position's 32 keys are one q8 block (spanning both heads)
  describe(`kvCache q8: ${fixture}`, () => {
    it('cpu and wasm (2 threads) on a q8 cache: equal logits (<= 1e-5) and greedy tokens over 20 steps; against the f32 cache within 1/254 of the logit spread; byteSize; state copies keep q8', async (t) => {
      const ref = await loadModel(hfFixture(fixture), { backend: 'cpu' });
      const cpu8 = await loadModel(hfFixture(fixture), { backend: 'cpu', kvCache: 'q8' });
      const wasm8 = await loadModel(hfFixture(fixture), { backend: 'wasm', threads: 2, kvCache: 'q8' });
      assert.equal(wasm8.lm.kvCache, 'q8');
      const s32 = ref.createState(1), sc = cpu8.createState(1), sw = wasm8.createState(1);
      assert.equal(sc.kvCache, 'q8');
      assert.equal(sw.kvCache, 'q8');
      const want = await greedy(ref.lm, s32);
      const onCpu = await greedy(cpu8.lm, sc);
      const onWasm = await greedy(wasm8.lm, sw);
      assert.deepEqual(onWasm.tokens, onCpu.tokens, 'greedy tokens: wasm = cpu on q8');
      const dcw = Math.max(...onWasm.logits.map((l, i) => maxAbsDiff(l, onCpu.logits[i])));
      assert.ok(dcw <= 1e-5, `wasm vs cpu on q8: max |Δlogit| over ${STEPS} steps = ${dcw}`);
      // against the f32 cache, fed the same tokens (the f32 run's): each cached key/value moves by <= 1/254 of its
      // block's largest |value|; the logits here by less than 1/254 of their spread (measured: see the message)
      const forced = await greedy(cpu8.lm, cpu8.createState(1), want.tokens);
      const dl = Math.max(...forced.logits.map((l, i) => maxAbsDiff(l, want.logits[i])));
      const spread = Math.max(...want.logits.map((l) => Math.max(...l) - Math.min(...l)));
      t.diagnostic(`q8 vs f32 cache: max |Δlogit| ${dl.toExponential(3)} = ${(dl / spread * 254).toFixed(3)} × spread/254; wasm vs cpu ${dcw.toExponential(2)}`);
      assert.ok(dl > 0 && dl < spread / 254, `q8 vs f32 cache: max |Δlogit| = ${dl}, logit spread ${spread} (${(dl / spread * 254).toFixed(3)} of 1/254)`);

      // the KV part takes 1.125 bytes per value (36 bytes per block of 32); the rest is unchanged
      const n = kvElements(sw);
      assert.ok(n > 0);
      assert.equal(s32.byteSize - sw.byteSize, n * (4 - 1.125));
      assert.equal(sc.byteSize, sw.byteSize);

      // copies keep the format and the values (wasm: its resident caches)
      const next = [[onCpu.tokens[STEPS - 1]]];
      const a = await wasm8.lm.advance(next, sw.clone());
      const clone = sw.clone();
      assert.equal(clone.kvCache, 'q8');
      assert.equal(clone.byteSize, sw.byteSize);
      const both = ModelState.concat([sw, clone]);
      assert.equal(both.kvCache, 'q8');
      assert.equal(both.select([1]).kvCache, 'q8');
      const c = await wasm8.lm.advance([next[0], next[0]], both);
      assert.ok(maxAbsDiff(c.data.subarray(a.data.length), a.data) <= 1e-5, 'a row of a concatenated state continues as the original');
      const batch = wasm8.createState(2);
      assert.equal(await batch.writeRow(1, sw), true);
      assert.equal(batch.kvCache, 'q8');
      const w = await wasm8.lm.advance([next[0], next[0]], batch);
      assert.ok(maxAbsDiff(w.data.subarray(a.data.length), a.data) <= 1e-5, 'the written row continues as the original');
      // compact and export / import quantize the stored values again: the same blocks to a rounding of the scale
      const compact = await sw.compact();
      assert.equal(compact.kvCache, 'q8');
      assert.ok(maxAbsDiff((await wasm8.lm.advance(next, compact)).data, a.data) <= 1e-5, 'the compacted copy continues as the original');
      const back = wasm8.importState(await sw.export());
      assert.equal(back.kvCache, 'q8');
      for (let i = 0; i < back.layers.length; i++) {
        for (const k of Object.keys(back.layers[i])) {
          const x = await back.layers[i][k].data(), y = await sw.layers[i][k].data();
          assert.ok(maxAbsDiff(x.subarray(0, y.length), y.subarray(0, x.length)) <= 1e-6 * Math.max(1, ...y.map(Math.abs)), `layers.${i}.${k} after export/import`);
        }
      }
      assert.ok(maxAbsDiff((await wasm8.lm.advance(next, back)).data, a.data) <= 1e-5, 'the imported state continues as the original');
      for (const s of [s32, sc, sw, clone, both, batch, compact, back]) s.dispose();
    });
  });
}

describe('kvCache option errors', () => {
  it('an unknown format is refused at load, listing the options', async () => {
    await assert.rejects(loadModel(hfFixture('llama-tiny'), { kvCache: 'q4' as 'f32' }),
      (e: Error) => e instanceof LoadOptionError && /option "kvCache" must be one of "f32", "bf16", "f16", "q8", got "q4"/.test(e.message));
  });
  it('q8 on a model whose kv_heads × head_dim is not a multiple of 32 is refused at load, naming the option and the head dim', async () => {
    // bamba-variant: 1 KV head of 16
    for (const backend of ['cpu', 'wasm'] as const) {
      await assert.rejects(loadModel(hfFixture('bamba-variant'), { backend, kvCache: 'q8' }),
        (e: Error) => e instanceof LoadOptionError && /^buildModel: option "kvCache" 'q8' stores blocks of 32 values .* this cache has head dim 16 \(× 1 kv heads = 16\): use 'bf16' or 'f16'$/.test(e.message));
    }
  });
  it('webgpu refuses a q8 cache at load, naming the option', async () => {
    await assert.rejects(loadModel(hfFixture('llama-tiny'), { backend: 'webgpu', kvCache: 'q8' }),
      (e: Error) => e instanceof LoadOptionError && /^loadModel: option "kvCache" must be .* on the webgpu backend, got "q8" \(not stored there yet\)$/.test(e.message));
  });
  it('createState and buildModel refuse an unknown format with the same message (one checker)', async () => {
    const model = await loadModel(hfFixture('llama-tiny'));
    assert.throws(() => model.createState(1, { kvCache: 'f8' as 'f32' }),
      (e: Error) => e instanceof LoadOptionError && /^createState: option "kvCache" must be one of "f32", "bf16", "f16", "q8", got "f8"$/.test(e.message));
    const dir = hfFixture('llama-tiny');
    const raw = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    assert.throws(() => buildModel(raw, 'config.json', {} as WeightSource, { kvCache: 'fp16' as 'f16' }),
      (e: Error) => e instanceof LoadOptionError && /^buildModel: option "kvCache" must be one of "f32", "bf16", "f16", "q8", got "fp16"$/.test(e.message));
  });
});
