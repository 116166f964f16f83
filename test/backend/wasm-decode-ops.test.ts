/**
 * Decode-time ops of the wasm backend. `linearMany` (assembly/linear_multi.ts: q/k/v, gate/up in one call) gives the
 * bits of separate `linear` calls for every weight format, thread count and row count it takes, declines what it does
 * not take, and a Transformer decodes the same logits with it on and off; so does `gatedMlp` (assembly/step_out.ts
 * gated_mlp: gate/up, the SwiGLU and down in one team call) against linearMany, siluMul and linear. Greedy decode's pick on the wasm backend (assembly/argmax.ts): `argmaxRows` against `argmax` of
 * src/generate/sampling.ts (first index on ties, NaN and −∞ never picked, −1 for a row without a finite or +∞
 * value, ±0 equal) on rows of every length around the SIMD widths; `linearArgmax` (the LM head and the argmax in one
 * op) equal to the argmax of `linear`'s rows for every weight format; and `advanceArgmax` on wasm models picking the
 * tokens that `advance` + argmax picks.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import { argmax } from '../../src/generate/sampling.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { loadModel } from '../../src/index.js';
import { hfFixture, loadReference, randomArray, stepLogits } from '../helpers.js';

/** uniform floats in [0, 1) from the tests' seeded generator */
function rng(seed: number): () => number {
  const a = randomArray(1 << 18, seed);
  let i = 0;
  return () => (a[i++ % a.length] + 1) / 2;
}

/** the JS oracle, −1 where it throws (no finite or +∞ value) */
function oracle(row: Float32Array): number {
  try {
    return argmax(row);
  } catch {
    return -1;
  }
}

describe('wasm argmaxRows', () => {
  const be = new WasmBackend({ threads: 2 });
  it('equals argmax of sampling.ts on rows with ties, NaN, ±∞ and ±0, every length around the SIMD widths', async () => {
    const r = rng(7);
    let checked = 0, special = 0;
    for (const V of [1, 2, 3, 4, 5, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1000, 50280]) {
      for (let kind = 0; kind < 9; kind++) {
        const M = 3;
        const x = new Float32Array(M * V);
        for (let i = 0; i < x.length; i++) x[i] = Math.round((r() * 2 - 1) * 8) / 4; // few values: ties
        for (let m = 0; m < M; m++) {
          const row = x.subarray(m * V, (m + 1) * V);
          const at = () => Math.floor(r() * V);
          if (kind === 1) for (let k = 0; k < 3; k++) row[at()] = NaN;
          if (kind === 2) row.fill(NaN);
          if (kind === 3) row.fill(-Infinity);
          if (kind === 4) { row.fill(-Infinity); row[at()] = NaN; }
          if (kind === 5) { row[at()] = Infinity; row[at()] = Infinity; row[at()] = NaN; }
          if (kind === 6) { row.fill(-1); row[at()] = -0; row[at()] = 0; row[at()] = -0; }
          if (kind === 7) { row.fill(NaN); row[V - 1] = -5; }
          if (kind === 8) { row.fill(3); row[0] = NaN; }
        }
        const got = await be.argmaxRows(new Tensor(be, x, [M, V]));
        for (let m = 0; m < M; m++) {
          const want = oracle(x.subarray(m * V, (m + 1) * V));
          assert.equal(got[m], want, `V ${V}, case ${kind}, row ${m}`);
          checked++;
          if (want < 0 || kind > 0) special++;
        }
      }
    }
    assert.ok(checked === 17 * 9 * 3 && special > 100);
  });

  it('reads a wasm-resident tensor in place (a zeros() tensor filled by hand) and copies in one on the JS heap', async () => {
    const t = be.zeros([2, 40]);
    const d = t.storage as Float32Array;
    d[17] = 5;
    d[40 + 39] = 1;
    assert.deepEqual(Array.from(await be.argmaxRows(t)), [17, 79 - 40]);
    t.dispose();
  });
});

describe('wasm linearArgmax (LM head + argmax in one op)', () => {
  for (const weights of ['f32', 'bf16', 'f16', 'q8', 'q4'] as const) {
    it(`${weights} weights: the argmax of linear's rows, for 1 and 3 rows, without a logits copy`, async () => {
      const be = new WasmBackend({ threads: 2, weights });
      const r = rng(11);
      const N = 1003, K = 256;
      const w = be.fromHost(Float32Array.from({ length: N * K }, () => r() * 2 - 1), [N, K], { matrix: true });
      for (const M of [1, 3]) {
        const x = new Tensor(be, Float32Array.from({ length: M * K }, () => r() * 2 - 1), [M, K]);
        const logits = be.linear(x, w, null);
        const want = Array.from({ length: M }, (_, m) => argmax((logits.storage as Float32Array).subarray(m * N, (m + 1) * N)));
        const got = be.linearArgmax(x, w);
        assert.ok(got);
        assert.deepEqual(Array.from(got), want, `${M} row(s)`);
      }
      assert.throws(() => be.linearArgmax(new Tensor(be, new Float32Array(100), [1, 100]), w), /linearArgmax: x of shape \[1, 100\] for a 1003×256 matrix/);
      // not a wasm matrix (a plain activation): not handled, the caller runs linear + argmaxRows
      assert.equal(be.linearArgmax(new Tensor(be, new Float32Array(K), [1, K]), new Tensor(be, new Float32Array(4 * K), [4, K])), null);
    });
  }
});

describe('wasm advanceArgmax: the same greedy tokens as advance + argmax', () => {
  for (const [name, weights] of [['mamba-tiny', 'q8'], ['mamba2-tiny', 'f32'], ['llama-tiny', 'q8'], ['bamba-variant', 'bf16']] as const) {
    it(`${name}, ${weights}, 2 threads`, async () => {
      const model = await loadModel(hfFixture(name), { backend: 'wasm', threads: 2, weights });
      const lm = model.lm;
      const ids = loadReference(hfFixture(name)).ids('input_ids')[0];
      const a = lm.createState(1), b = lm.createState(1);
      let l = await lm.advance([ids.slice(0, 5)], a);
      await lm.advance([ids.slice(0, 5)], b);
      let tb = argmax(l.data);
      let ta = tb;
      for (let s = 0; s < 8; s++) {
        l = await lm.advance([[ta]], a);
        ta = argmax(l.data);
        const p = await lm.advanceArgmax!([[tb]], b);
        assert.ok(p, 'advanceArgmax ran');
        tb = p[0];
        assert.equal(tb, ta, `step ${s}`);
      }
      assert.deepEqual(a.seqLen, b.seqLen);
    });
  }
});

describe('wasm linearMany (several products of one input in one call)', () => {
  for (const weights of ['f32', 'bf16', 'f16', 'q8'] as const) {
    for (const threads of [1, 2, 3]) {
      it(`${weights} weights, ${threads} thread(s): the bits of separate linear calls, with and without biases`, () => {
        const be = new WasmBackend({ threads, weights });
        const r = rng(threads * 10 + weights.length);
        const K = 96;
        const mat = (N: number) => be.fromHost(Float32Array.from({ length: N * K }, () => r() * 2 - 1), [N, K], { matrix: true });
        const vec = (N: number) => be.fromHost(Float32Array.from({ length: N }, () => r() - 0.5), [N]);
        const ws: Array<[Tensor, Tensor | null]> = [[mat(68), vec(68)], [mat(20), null], [mat(132), vec(132)]];
        for (const M of [1, 2, 5]) {
          const x = new Tensor(be, Float32Array.from({ length: M * K }, () => r() * 2 - 1), [M, K]);
          for (const n of [2, 3]) {
            const got = be.linearMany(x, ws.slice(0, n));
            assert.ok(got, `${M} row(s), ${n} products: handled`);
            ws.slice(0, n).forEach(([w, b], i) => {
              const want = be.linear(x, w, b);
              assert.deepEqual(got[i].shape, want.shape);
              assert.deepEqual(got[i].storage, want.storage, `${M} row(s), product ${i} of ${n}`);
            });
          }
        }
      });
    }
  }

  it('declines what it does not take: one product, q4 weights, mixed formats, rows not a multiple of 4, prefill-sized x, fuseProducts off', () => {
    const be = new WasmBackend({ threads: 2, weights: 'q8' });
    const K = 256;
    const x = new Tensor(be, new Float32Array(K).fill(0.5), [1, K]);
    const q8 = (N: number) => be.fromHost(new Float32Array(N * K).fill(0.25), [N, K], { matrix: true });
    const f32 = be.fromHost(new Float32Array(8 * K), [8, K], { matrix: true, float32: true });
    assert.equal(be.linearMany(x, [[q8(8), null]]), null);
    assert.equal(be.linearMany(x, [[q8(8), null], [f32, null]]), null);
    assert.equal(be.linearMany(x, [[q8(8), null], [q8(6), null]]), null);
    assert.equal(be.linearMany(new Tensor(be, new Float32Array(32 * K), [32, K]), [[q8(8), null], [q8(8), null]]), null);
    assert.ok(be.linearMany(x, [[q8(8), null], [q8(8), null]]));
    be.fuseProducts = false;
    assert.equal(be.linearMany(x, [[q8(8), null], [q8(8), null]]), null);
    const q4 = new WasmBackend({ threads: 2, weights: 'q4' });
    const w4 = () => q4.fromHost(new Float32Array(8 * K).fill(0.25), [8, K], { matrix: true });
    assert.equal(q4.linearMany(new Tensor(q4, new Float32Array(K), [1, K]), [[w4(), null], [w4(), null]]), null);
  });

  for (const [name, weights] of [['llama-tiny', 'q8'], ['llama-tiny', 'f32'], ['bamba-variant', 'bf16']] as const) {
    it(`${name}, ${weights}: decode logits the same bits with products fused (linearMany, gatedMlp) and separate, and fused really ran`, async () => {
      const model = await loadModel(hfFixture(name), { backend: 'wasm', threads: 2, weights });
      const be = model.lm.backend as unknown as WasmBackend;
      be.decodeOneCall = false; // (a call per sublayer: the whole step in one call is wasm-backend.test's decodeOneCall describe's)
      let fused = 0;
      const many = be.linearMany.bind(be), mlp = be.gatedMlp.bind(be);
      be.linearMany = (x, ws) => {
        const y = many(x, ws);
        if (y) fused++;
        return y;
      };
      let mlps = 0;
      be.gatedMlp = (x, g, u, d, residual) => {
        const y = mlp(x, g, u, d, residual);
        if (y) mlps++;
        return y;
      };
      const ids = loadReference(hfFixture(name)).ids('input_ids')[0];
      const run = async (on: boolean): Promise<Float32Array[]> => {
        be.fuseProducts = on;
        return stepLogits(model.lm, ids, 6, 5);
      };
      const on = await run(true);
      assert.ok(fused > 0, 'linearMany ran');
      assert.ok(mlps > 0, 'gatedMlp ran');
      const count = fused, mlpCount = mlps;
      const off = await run(false);
      assert.equal(fused, count, 'off: not run');
      assert.equal(mlps, mlpCount, 'off: gatedMlp not run');
      for (let i = 0; i < on.length; i++) assert.deepEqual(on[i], off[i], `step ${i}: logits differ`);
    });
  }
});

describe('wasm gatedMlp (a SwiGLU MLP in one team call, session 30)', () => {
  for (const weights of ['f32', 'bf16', 'f16', 'q8'] as const) {
    for (const threads of [1, 2, 3]) {
      it(`${weights} weights, ${threads} thread(s): the bits of linearMany, siluMul and linear, with and without biases`, () => {
        const be = new WasmBackend({ threads, weights });
        const r = rng(threads * 7 + weights.length);
        const [H, I] = [96, 132];
        const mat = (N: number, K: number) => be.fromHost(Float32Array.from({ length: N * K }, () => r() * 2 - 1), [N, K], { matrix: true });
        const vec = (N: number) => be.fromHost(Float32Array.from({ length: N }, () => r() - 0.5), [N]);
        const [wg, wu, wd] = [mat(I, H), mat(I, H), mat(H, I)];
        for (const bias of [false, true]) {
          const g: [Tensor, Tensor | null] = [wg, bias ? vec(I) : null], u: [Tensor, Tensor | null] = [wu, bias ? vec(I) : null];
          const d: [Tensor, Tensor | null] = [wd, bias ? vec(H) : null];
          for (const M of [1, 2, 5]) {
            const x = new Tensor(be, Float32Array.from({ length: M * H }, () => r() * 4 - 2), [M, H]);
            const got = be.gatedMlp(x, g, u, d);
            assert.ok(got, `${M} row(s): handled`);
            const [yg, yu] = be.linearMany(x, [g, u])!;
            const want = be.linear(be.siluMul(yg, yu), d[0], d[1]);
            assert.deepEqual(got.shape, [M, H]);
            assert.deepEqual(got.storage, want.storage, `${M} row(s), biases ${bias}`);
          }
        }
      });
    }
  }

  it('declines prefill-sized x, q4 weights and fuseProducts off (the ops then run separately)', () => {
    // (prefill-sized x with mlpPrefill on, the default: the prefill op of session 31, wasm-attn-prefill.test.ts)
    const be = new WasmBackend({ threads: 2, weights: 'q8', mlpPrefill: false });
    const [H, I] = [64, 96];
    const m = (N: number, K: number) => be.fromHost(new Float32Array(N * K).fill(0.25), [N, K], { matrix: true });
    const [g, u, d]: Array<[Tensor, Tensor | null]> = [[m(I, H), null], [m(I, H), null], [m(H, I), null]];
    assert.ok(be.gatedMlp(new Tensor(be, new Float32Array(H).fill(0.5), [1, H]), g, u, d));
    assert.equal(be.gatedMlp(new Tensor(be, new Float32Array(32 * H), [32, H]), g, u, d), null);
    be.fuseProducts = false;
    assert.equal(be.gatedMlp(new Tensor(be, new Float32Array(H).fill(0.5), [1, H]), g, u, d), null);
    const q4 = new WasmBackend({ threads: 2, weights: 'q4' });
    const w4 = (N: number, K: number): [Tensor, Tensor | null] => [q4.fromHost(new Float32Array(N * K).fill(0.25), [N, K], { matrix: true }), null];
    assert.equal(q4.gatedMlp(new Tensor(q4, new Float32Array(256), [1, 256]), w4(256, 256), w4(256, 256), w4(256, 256)), null);
  });
});

describe('decode_stack: the LM head\'s argmax split between the threads (assembly/stack.ts)', () => {
  // no layers: the final norm (no weight) of x = a unit vector, so logit n = W[n, 0] · r exactly; each thread takes
  // the argmax of its rows of the head, thread 0 the best of them
  const H = 16, V = 41;
  const cases: Array<[string, (n: number) => number]> = [
    ['the largest value twice, in the first and the last rows', (n) => (n === 3 || n === 38 ? 5 : (n % 7) - 3)],
    ['the largest value twice in the middle', (n) => (n === 19 || n === 21 ? 2 : n === 40 ? 1.5 : -1)],
    ['NaN first, +∞ twice', (n) => (n < 4 ? NaN : n === 30 || n === 39 ? Infinity : 1)],
    ['only NaN and −∞', (n) => (n % 2 ? NaN : -Infinity)],
    ['−∞ but one row', (n) => (n === 27 ? -1e30 : -Infinity)],
    ['±0 only', (n) => (n % 3 ? -0 : 0)],
  ];
  for (const threads of [1, 2, 3]) {
    it(`${threads} thread(s): each case's argmax as argmax over the whole row (first index on ties, NaN and −∞ never, −1 for none)`, () => {
      const be = new WasmBackend({ threads });
      const rt = be.runtime;
      const heap = rt.heap;
      const w = heap.alloc(4 * V * H), x = heap.alloc(4 * H), y = heap.alloc(4 * V), desc = heap.alloc(40), ids = heap.alloc(4), counter = heap.alloc(4);
      const hStride = 64 * Math.ceil((4 * H) / 64), hbuf = heap.alloc(threads * hStride);
      try {
        rt.f32(x, H).fill(0)[0] = 1;
        new Int32Array(rt.memory.buffer, desc, 10).set([0, w, 0, 0, y, V, 0, 0, 0, 0]);
        for (const [what, value] of cases) {
          const wv = rt.f32(w, V * H).fill(0);
          for (let n = 0; n < V; n++) wv[n * H] = value(n);
          new Int32Array(rt.memory.buffer, counter, 1)[0] = 0;
          new Int32Array(rt.memory.buffer, ids, 1)[0] = -7;
          rt.runTeam('decode_stack', [0, 0, x, 1, H, 1e-5, hbuf, hStride, 0, 0, desc, ids, counter, 0], true);
          const logits = rt.f32(y, V).slice();
          assert.equal(new Int32Array(rt.memory.buffer, ids, 1)[0], oracle(logits), what);
        }
      } finally {
        for (const o of [hbuf, counter, ids, desc, y, x, w]) heap.release(o);
      }
    });
  }
});
