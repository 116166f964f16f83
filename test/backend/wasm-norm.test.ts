/**
 * The WebAssembly RMSNorm kernels (src/backend/wasm/assembly/norm.ts) against the TypeScript references `rmsNorm`
 * and `rmsNormGated` (src/backend/cpu/kernels.ts): widths with SIMD tails, weight present/absent, group sizes that
 * do and do not divide by 4 (Mamba-2's per-group norm), and any split of the rows gives bit-identical results.
 * Also `silu_mul` (the gated MLP's silu(a) · b, session 30) against CpuBackend.siluMul, and through WasmBackend.siluMul.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmsNorm, rmsNormGated } from '../../src/backend/cpu/kernels.js';
import { CpuBackend } from '../../src/backend/cpu/index.js';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import { randomArray } from '../helpers.js';
import { alloc, assertBitEqual, instantiateKernels, maxScaledErr, put, resetArena, unevenSlices } from './wasm-arena.js';

interface Kernels {
  rms_norm(x: number, w: number, y: number, H: number, eps: number, m0: number, m1: number): void;
  rms_norm_gated(x: number, z: number, w: number, y: number, W: number, G: number, eps: number, m0: number, m1: number): void;
  silu_mul(a: number, b: number, y: number, i0: number, i1: number): void;
}
const kernels = instantiateKernels<Kernels>();
const SENTINEL = 12345.678;

function norm(x: Float32Array, w: Float32Array | null, M: number, H: number, eps: number, slices: [number, number][]): Float32Array {
  resetArena();
  const xo = put(x), wo = put(w);
  const [yo, yv] = alloc(M * H);
  yv.fill(SENTINEL);
  for (const [m0, m1] of slices) kernels.rms_norm(xo, wo, yo, H, eps, m0, m1);
  return yv.slice();
}

function gated(x: Float32Array, z: Float32Array, w: Float32Array, M: number, W: number, G: number, eps: number, slices: [number, number][]): Float32Array {
  resetArena();
  const xo = put(x), zo = put(z), wo = put(w);
  const [yo, yv] = alloc(M * W);
  yv.fill(SENTINEL);
  for (const [m0, m1] of slices) kernels.rms_norm_gated(xo, zo, wo, yo, W, G, eps, m0, m1);
  return yv.slice();
}

describe('wasm rms_norm = rmsNorm', () => {
  let seed = 700;
  for (const [M, H] of [[1, 1], [1, 768], [5, 7], [9, 13], [4, 64], [3, 1030]] as const) {
    it(`M=${M} H=${H}, with and without a weight`, () => {
      for (const withW of [true, false]) {
        seed += 3;
        const x = randomArray(M * H, seed, 3), w = withW ? randomArray(H, seed + 1) : null;
        const want = rmsNorm(x, w, 1e-5, M, H);
        const whole = norm(x, w, M, H, 1e-5, [[0, M]]);
        const e = maxScaledErr(whole, want);
        assert.ok(e <= 2e-6, `M=${M} H=${H} w=${withW}: error ${e}`);
        assertBitEqual(norm(x, w, M, H, 1e-5, unevenSlices(M)), whole, 'sliced rows');
      }
    });
  }
  it('eps matters for tiny rows (x = 0 gives 0, not NaN)', () => {
    const y = norm(new Float32Array(8), null, 1, 8, 1e-6, [[0, 1]]);
    assert.deepEqual(Array.from(y), new Array(8).fill(0));
  });
});

describe('wasm rms_norm_gated = rmsNormGated', () => {
  let seed = 800;
  for (const [M, W, G] of [[1, 8, 8], [1, 1536, 1536], [3, 24, 6], [2, 30, 10], [5, 7, 7], [4, 256, 128], [2, 15, 5]] as const) {
    it(`M=${M} W=${W} G=${G}`, () => {
      seed += 5;
      const x = randomArray(M * W, seed, 2), z = randomArray(M * W, seed + 1, 4), w = randomArray(W, seed + 2);
      const want = rmsNormGated(x, z, w, 1e-5, M, W, G);
      const whole = gated(x, z, w, M, W, G, 1e-5, [[0, M]]);
      const e = maxScaledErr(whole, want);
      assert.ok(e <= 4e-6, `M=${M} W=${W} G=${G}: error ${e}`);
      assertBitEqual(gated(x, z, w, M, W, G, 1e-5, unevenSlices(M)), whole, 'sliced rows');
    });
  }
});

describe('wasm silu_mul = CpuBackend.siluMul', () => {
  const cpu = new CpuBackend();
  const ref = (a: Float32Array, b: Float32Array) => cpu.readSync(cpu.siluMul(cpu.fromHost(a, [a.length]), cpu.fromHost(b, [b.length])));
  it('lengths with SIMD tails, large |a| (no NaN), any split gives the same bits', () => {
    let seed = 900;
    for (const n of [1, 3, 4, 7, 2048, 2051]) {
      seed += 2;
      const a = randomArray(n, seed, 8), b = randomArray(n, seed + 1, 2);
      if (n >= 4) a.set([-120, 120, -1e30, 0], 0);
      const want = ref(a, b);
      const run = (slices: [number, number][]) => {
        resetArena();
        const ao = put(a), bo = put(b);
        const [yo, yv] = alloc(n);
        yv.fill(SENTINEL);
        for (const [i0, i1] of slices) kernels.silu_mul(ao, bo, yo, i0, i1);
        return yv.slice();
      };
      const whole = run([[0, n]]);
      assert.ok(whole.every(Number.isFinite), `n=${n}: finite`);
      const e = maxScaledErr(whole, want);
      assert.ok(e <= 4e-6, `n=${n}: error ${e}`);
      assertBitEqual(run(unevenSlices(n)), whole, 'sliced');
    }
  });
  it('WasmBackend.siluMul on 1 and 2 threads (prefill sizes are split), shape kept', () => {
    const [L, I] = [40, 2052];
    const a = randomArray(L * I, 31, 6), b = randomArray(L * I, 32, 2);
    const want = ref(a, b);
    for (const threads of [1, 2]) {
      const be = new WasmBackend({ threads });
      const y = be.siluMul(be.fromHost(a.slice(), [L, I]), be.fromHost(b.slice(), [L, I]));
      assert.deepEqual(y.shape, [L, I]);
      const e = maxScaledErr(be.readSync(y), want);
      assert.ok(e <= 4e-6, `${threads} thread(s): error ${e}`);
    }
  });
});
