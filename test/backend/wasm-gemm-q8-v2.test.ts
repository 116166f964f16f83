/**
 * q8GemmKernel 'v2' (issue 18, session 31): the integer q8 GEMM with x quantized by `gemm_q8_pack_x2`
 * (src/backend/wasm/assembly/gemm_q8.ts, packA2: max |x| on the integer bits, rounding by adding 1.5 · 2^23, groups of
 * 4 rows unrolled; a block with a NaN or an infinity, and a group of fewer than 4 rows, packed by packA's code) must
 * write exactly the bytes `gemm_q8_pack_x` writes — on both builds, every mode and qmax the backend passes, shapes
 * with row tails (M not a multiple of 4, past MC = 80) and K not a multiple of KC = 256, ties (x · (1 / xs) exactly
 * halfway between integers), zeros, −0, subnormals, NaN and ±infinity, and the blocks split among threads at uneven
 * points — so the backend's products and a model's logits are the same bits with 'v1' and 'v2' for 1-3 threads.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomArray, hfFixture, loadReference } from '../helpers.js';
import { allocBytes, assertBitEqual, instantiateKernels, instantiateRelaxedKernels, memory, put, resetArena, unevenSlices } from './wasm-arena.js';
import { WasmBackend, type WasmQ8Gemm, type WasmQ8GemmKernel } from '../../src/backend/wasm/index.js';
import { loadModel } from '../../src/index.js';
import { LoadOptionError } from '../../src/api/load-options.js';

type PackX = (mode: number, qmax: number, x: number, M: number, K: number, xp: number, b0: number, b1: number) => void;
interface Kernels {
  gemm_q8_pack_x: PackX;
  gemm_q8_pack_x2: PackX;
  gemm_q8_packed_x_bytes(M: number, K: number): number;
  gemm_q8_x_blocks(M: number, K: number): number;
}
const builds: Array<[string, Kernels]> = [['plain', instantiateKernels<Kernels>()], ['relaxed', instantiateRelaxedKernels<Kernels>()]];

/** x [M, K] (scale 2) with the cases the two quantizers must agree on, each in its own block of 32 of some row */
function activations(M: number, K: number, qmax: number, seed: number): Float32Array {
  const x = randomArray(M * K, seed, 2);
  const nb = K / 32;
  // case c in row 4c + c % 4 (its own group of 4 rows where M allows: a NaN elsewhere in the group sends the whole
  // group's block to packA's code), block c
  const block = (c: number): number => (((4 * c + (c % 4)) % M) * K) + (c % nb) * 32;
  // ties: max |x| = qmax gives xs = 1 and 1 / xs = 1, so x · (1 / xs) = x, here halfway between integers (−7.5, −6.5, …)
  let o = block(1);
  x[o] = qmax;
  for (let k = 1; k < 32; k++) x[o + k] = k - 16.5;
  // the same with max |x| = −qmax and ties near ±qmax
  o = block(2);
  x[o] = -qmax;
  for (let k = 1; k < 32; k++) x[o + k] = (k % 2 ? 1 : -1) * (qmax - 0.5 - (k >> 1));
  // a block of zeros (scale 0), one of −0 and subnormals
  x.fill(0, block(3), block(3) + 32);
  o = block(4);
  for (let k = 0; k < 32; k++) x[o + k] = k % 3 === 0 ? -0 : (k % 2 ? 1 : -1) * k * 1e-40;
  // NaN, +inf, −inf, and both infinities in one block
  x[block(5) + 7] = NaN;
  x[block(6) + 31] = Infinity;
  x[block(7) + 0] = -Infinity;
  x[block(8) + 3] = Infinity;
  x[block(8) + 4] = -Infinity;
  // a row of large values (max |x| 3e38: 1 / xs still finite)
  o = block(9);
  for (let k = 0; k < 32; k++) x[o + k] *= 1.5e38;
  return x;
}

describe('wasm gemm_q8_pack_x2 (q8GemmKernel v2): the bytes of gemm_q8_pack_x', () => {
  // [M, K]: M below a group of 4, not a multiple of 4, past MC (80); K below, past and not a multiple of KC (256)
  const shapes: Array<[number, number]> = [[1, 32], [3, 64], [6, 288], [13, 96], [81, 544], [163, 800]];
  // [mode, qmax]: int13, int8, int7 as the backend passes them, and mode 0 at its largest qmax
  const modes: Array<[number, number]> = [[0, 4095], [0, 127], [1, 63], [0, 8191]];
  let seed = 3100;
  for (const [build, k] of builds) {
    for (const [mode, qmax] of modes) {
      it(`${build} build, mode ${mode}, qmax ${qmax}: every shape, all blocks at once and split at uneven points`, () => {
        for (const [M, K] of shapes) {
          resetArena();
          const x = put(activations(M, K, qmax, seed++));
          const bytes = k.gemm_q8_packed_x_bytes(M, K), n = k.gemm_q8_x_blocks(M, K);
          assert.equal(n, Math.ceil(M / 80) * Math.ceil(K / 256), 'MC 80 × KC 256 blocks');
          const out = (): [number, Uint8Array] => {
            const o = allocBytes(bytes);
            const v = new Uint8Array(memory.buffer, o, bytes);
            v.fill(0xa5); // (what neither writes stays the same)
            return [o, v];
          };
          const [p1, v1] = out(), [p2, v2] = out(), [p3, v3] = out();
          k.gemm_q8_pack_x(mode, qmax, x, M, K, p1, 0, n);
          k.gemm_q8_pack_x2(mode, qmax, x, M, K, p2, 0, n);
          for (const [b0, b1] of unevenSlices(n)) k.gemm_q8_pack_x2(mode, qmax, x, M, K, p3, b0, b1);
          for (const [v, what] of [[v2, 'all blocks'], [v3, 'uneven slices']] as const) {
            const i = v.findIndex((b, j) => b !== v1[j]);
            assert.equal(i, -1, `M=${M} K=${K} ${what}: byte ${i} of ${bytes} differs (${v[i]} vs ${v1[i]})`);
          }
          assert.ok(v1.some((b) => b !== 0xa5), 'something was packed');
        }
      });
    }
  }
});

describe('wasm backend: q8GemmKernel', () => {
  // [M, K, N]: ragged M (past MC, not a multiple of 4), K not a multiple of KC, N past NC (512) and not a multiple of 8
  const shapes: Array<[number, number, number]> = [[32, 32, 9], [81, 544, 520], [163, 96, 31]];
  for (const threads of [1, 2, 3]) {
    it(`${threads} thread(s), int13 / int8 / int7, with and without a bias, a row with an infinity: v1 and v2 the same bits, each its own packer`, () => {
      let seed = 900 + threads;
      const be = new WasmBackend({ threads, weights: 'q8' });
      assert.equal(be.q8GemmKernel, 'v2', 'the default');
      const rt = be.runtime;
      const { run } = rt;
      const seen: string[] = [];
      rt.run = (k, ...rest) => (seen.push(k), run.call(rt, k, ...rest));
      try {
        for (const [M, K, N] of shapes) {
          const w = be.fromHost(randomArray(N * K, seed++, 0.5), [N, K], { matrix: true });
          const bias = be.fromHost(randomArray(N, seed++), [N]);
          const xv = randomArray(M * K, seed++, 2);
          xv[5 * K + 3] = Infinity;
          const x = be.fromHost(xv, [M, K]);
          for (const q8Gemm of ['int13', 'int8', 'int7'] as WasmQ8Gemm[]) {
            be.q8Gemm = q8Gemm;
            for (const b of [null, bias]) {
              const y: Partial<Record<WasmQ8GemmKernel, Float32Array>> = {};
              for (const kernel of ['v1', 'v2'] as const) {
                be.q8GemmKernel = kernel;
                seen.length = 0;
                y[kernel] = be.linear(x, w, b).dataSync().slice();
                assert.deepEqual(seen, [kernel === 'v1' ? 'gemm_q8_pack_x' : 'gemm_q8_pack_x2'], kernel);
              }
              assertBitEqual(y.v2!, y.v1!, `${q8Gemm} M=${M} K=${K} N=${N} bias=${!!b}`);
              assert.ok(y.v1!.slice(0, 5 * N).every(Number.isFinite) && y.v1!.slice(5 * N, 6 * N).every(Number.isNaN), 'finite rows finite, the row with an infinity NaN');
            }
          }
        }
      } finally {
        rt.run = run;
      }
    });
  }

  it('mamba2-tiny with q8 weights (prefill products of ≥ 32 rows), 1-3 threads: the same logits with v1 and v2', async () => {
    const ref = loadReference(hfFixture('mamba2-tiny'));
    for (const threads of [1, 2, 3]) {
      const m = await loadModel(hfFixture('mamba2-tiny'), { backend: 'wasm', threads, weights: 'q8' });
      const be = m.lm.backend as WasmBackend;
      be.q8GemmKernel = 'v1';
      const a = (await m.forward(ref.ids('input_ids'))).logits.data.slice();
      be.q8GemmKernel = 'v2';
      const b = (await m.forward(ref.ids('input_ids'))).logits.data.slice();
      assertBitEqual(b, a, `${threads} thread(s)`);
    }
  });

  it('a bad q8GemmKernel or MAMBA_TS_WASM_Q8_GEMM_KERNEL is a LoadOptionError naming the option and the choices', () => {
    assert.throws(() => new WasmBackend({ q8GemmKernel: 'v3' as never }), (e: Error) => e instanceof LoadOptionError && /"q8GemmKernel" must be 'v1' or 'v2', got v3/.test(e.message));
    const old = process.env.MAMBA_TS_WASM_Q8_GEMM_KERNEL;
    try {
      process.env.MAMBA_TS_WASM_Q8_GEMM_KERNEL = 'v0';
      assert.throws(() => new WasmBackend({}), (e: Error) => e instanceof LoadOptionError && /MAMBA_TS_WASM_Q8_GEMM_KERNEL must be 'v1' or 'v2', got "v0"/.test(e.message));
      process.env.MAMBA_TS_WASM_Q8_GEMM_KERNEL = 'v1';
      assert.equal(new WasmBackend({}).q8GemmKernel, 'v1');
      assert.equal(new WasmBackend({ q8GemmKernel: 'v2' }).q8GemmKernel, 'v2', 'the option over the environment');
    } finally {
      if (old === undefined) delete process.env.MAMBA_TS_WASM_Q8_GEMM_KERNEL;
      else process.env.MAMBA_TS_WASM_Q8_GEMM_KERNEL = old;
    }
  });
});
