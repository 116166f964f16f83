/**
 * The parallel (chunked, two-level associative) scan equals the sequential scan on random inputs,
 * with and without an initial state, for chunk sizes that do and do not divide L; and the conv/scan
 * state carried across calls equals one pass over the whole sequence.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { scanChunked, scanSequential, softplus, type ScanArrays } from '../../src/backend/cpu/selective_scan.js';
import { causalConv1d } from '../../src/backend/cpu/kernels.js';
import { maxAbsDiff, randomArray } from '../helpers.js';

function makeCase(batch: number, L: number, D: number, N: number, seed: number, withState: boolean): ScanArrays {
  const A = randomArray(D * N, seed + 1).map((v) => -Math.exp(v * 2)); // A < 0, spread over ~[-7.4, -0.14]
  return {
    batch, seqLen: L, dim: D, dState: N,
    u: randomArray(batch * L * D, seed + 2, 2),
    delta: randomArray(batch * L * D, seed + 3, 3),
    A,
    B: randomArray(batch * L * N, seed + 4),
    C: randomArray(batch * L * N, seed + 5),
    D: randomArray(D, seed + 6),
    z: randomArray(batch * L * D, seed + 7, 2),
    deltaBias: randomArray(D, seed + 8),
    deltaSoftplus: true,
    state: withState ? randomArray(batch * D * N, seed + 9) : null,
  };
}

function copyCase(c: ScanArrays): ScanArrays {
  return { ...c, state: c.state ? c.state.slice() : null };
}

describe('selective_scan: chunked (parallel) = sequential', () => {
  const shapes = [
    { batch: 1, L: 1, D: 3, N: 4 },
    { batch: 2, L: 37, D: 8, N: 16 },
    { batch: 3, L: 100, D: 5, N: 7 },
    { batch: 1, L: 256, D: 16, N: 16 },
  ];
  let seed = 10;
  for (const s of shapes) {
    for (const chunk of [1, 4, 16, 33, 64]) {
      for (const withState of [false, true]) {
        it(`b=${s.batch} L=${s.L} D=${s.D} N=${s.N} chunk=${chunk} ${withState ? 'with' : 'without'} initial state`, () => {
          const c = makeCase(s.batch, s.L, s.D, s.N, (seed += 11), withState);
          const a = copyCase(c);
          const b = copyCase(c);
          const ys = scanSequential(a);
          const yc = scanChunked(b, chunk);
          const scale = Math.max(1, ...Array.from(ys, Math.abs));
          const d = maxAbsDiff(ys, yc);
          assert.ok(d <= 1e-5 * scale, `max |Δy| = ${d} (scale ${scale})`);
          if (withState) assert.ok(maxAbsDiff(a.state!, b.state!) <= 1e-5 * Math.max(1, ...Array.from(a.state!, Math.abs)), 'final states differ');
        });
      }
    }
  }

  it('matches the recurrence written out by hand for one channel', () => {
    // D=1, N=1: h_t = exp(Δ_t a) h_{t-1} + Δ_t b_t u_t, y_t = c_t h_t + d u_t (no gate)
    const L = 5;
    const c: ScanArrays = {
      batch: 1, seqLen: L, dim: 1, dState: 1,
      u: Float32Array.from([1, -2, 0.5, 3, 1]),
      delta: Float32Array.from([0.1, 0.2, -0.3, 1, 25]),
      A: Float32Array.from([-0.7]),
      B: Float32Array.from([1, 0.5, -1, 2, 1]),
      C: Float32Array.from([0.3, -1, 2, 0.5, 1]),
      D: Float32Array.from([0.25]),
      z: null, deltaBias: Float32Array.from([0.05]), deltaSoftplus: true, state: Float32Array.from([0.4]),
    };
    let h = 0.4;
    const want: number[] = [];
    for (let t = 0; t < L; t++) {
      const dt = softplus(c.delta[t] + 0.05);
      h = Math.exp(dt * -0.7) * h + dt * c.B[t] * c.u[t];
      want.push(c.C[t] * h + 0.25 * c.u[t]);
    }
    for (const y of [scanSequential(copyCase(c)), scanChunked(copyCase(c), 2)]) {
      assert.ok(maxAbsDiff(y, want) < 1e-5, `got ${Array.from(y)} want ${want}`);
    }
    assert.equal(softplus(25), 25); // PyTorch threshold: identity above 20
  });

  it('state carried across calls equals one pass (scan and conv)', () => {
    const batch = 2, L = 29, D = 6, N = 5, K = 4;
    const full = makeCase(batch, L, D, N, 777, true);
    const yFull = scanSequential(copyCase(full));
    const finalFull = (() => { const c = copyCase(full); scanSequential(c); return c.state!; })();
    // split into pieces of 1, 7, 21 steps, carrying the state
    const state = full.state!.slice();
    const pieces: Float32Array[] = [];
    let t0 = 0;
    for (const len of [1, 7, 21]) {
      const sl = (x: Float32Array, w: number) => {
        const out = new Float32Array(batch * len * w);
        for (let b = 0; b < batch; b++) out.set(x.subarray((b * L + t0) * w, (b * L + t0 + len) * w), b * len * w);
        return out;
      };
      const part: ScanArrays = { ...full, seqLen: len, u: sl(full.u, D), delta: sl(full.delta, D), B: sl(full.B, N), C: sl(full.C, N), z: sl(full.z!, D), state };
      pieces.push(len > 4 ? scanChunked(part, 4) : scanSequential(part));
      t0 += len;
    }
    const joined = new Float32Array(batch * L * D);
    for (let b = 0; b < batch; b++) {
      let off = 0;
      for (const [k, len] of [1, 7, 21].entries()) {
        joined.set(pieces[k].subarray(b * len * D, (b + 1) * len * D), (b * L + off) * D);
        off += len;
      }
    }
    assert.ok(maxAbsDiff(joined, yFull) < 1e-5);
    assert.ok(maxAbsDiff(state, finalFull) < 1e-5);

    // conv: one pass vs token-by-token with the rolling window
    const x = randomArray(batch * L * D, 5);
    const w = randomArray(D * K, 6);
    const bias = randomArray(D, 7);
    const once = causalConv1d(x, w, bias, null, true, batch, L, D, K);
    const win = new Float32Array(batch * D * K);
    const stepped = new Float32Array(batch * L * D);
    for (let t = 0; t < L; t++) {
      const xt = new Float32Array(batch * D);
      for (let b = 0; b < batch; b++) xt.set(x.subarray((b * L + t) * D, (b * L + t + 1) * D), b * D);
      const yt = causalConv1d(xt, w, bias, win, true, batch, 1, D, K);
      for (let b = 0; b < batch; b++) stepped.set(yt.subarray(b * D, (b + 1) * D), (b * L + t) * D);
    }
    assert.ok(maxAbsDiff(once, stepped) < 1e-6);
    // the window holds the last K inputs, newest in slot K-1
    for (let b = 0; b < batch; b++) for (let d = 0; d < D; d++) for (let k = 0; k < K; k++) {
      assert.equal(win[(b * D + d) * K + k], x[(b * L + L - K + k) * D + d]);
    }
  });
});
