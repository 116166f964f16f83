/**
 * `linear_panels` (src/backend/wasm/assembly/panel.ts): the prefill product with packed weights (bf16, f16, q8)
 * equals the f32 kernel `linear_f32` run on the exactly unpacked weights — bit for bit, for any number of threads
 * (the team's column slices) and odd shapes (N not a multiple of the panel or of 4, M small and large).
 */
import { describe, it } from 'node:test';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/tensor/dtype.js';
import { randomArray } from '../helpers.js';
import { packQ8, unpackQ8 } from '../../src/backend/wasm/q8.js';
import { alloc, assertBitEqual, instantiateKernels, put, resetArena } from './wasm-arena.js';

interface Kernels {
  linear_f32(x: number, w: number, bias: number, y: number, M: number, K: number, N: number, n0: number, n1: number): void;
  linear_panels(x: number, w: number, scales: number, fmt: number, bias: number, y: number, M: number, K: number, N: number, scratch: number, t: number, T: number): void;
}
const kernels = instantiateKernels<Kernels>();

/** packed bytes + the exact f32 values they stand for */
function pack(fmt: 'bf16' | 'f16' | 'q8', w: Float32Array): { data: Uint8Array; scales: Float32Array | null; exact: Float32Array } {
  const n = w.length;
  if (fmt === 'q8') {
    const qs = new Int8Array(n), sc = new Float32Array(n / 32);
    packQ8(w, qs, sc);
    return { data: new Uint8Array(qs.buffer), scales: sc, exact: unpackQ8(qs, sc) };
  }
  const u16 = new Uint16Array(n), exact = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    u16[i] = fmt === 'bf16' ? f32ToBf16(w[i]) : f32ToF16(w[i]);
    exact[i] = fmt === 'bf16' ? bf16ToF32(u16[i]) : f16ToF32(u16[i]);
  }
  return { data: new Uint8Array(u16.buffer), scales: null, exact };
}

describe('wasm linear_panels = linear_f32 on the unpacked weights', () => {
  let seed = 1200;
  for (const fmt of ['bf16', 'f16', 'q8'] as const) {
    for (const [M, K, N] of [[8, 32, 5], [9, 64, 33], [17, 96, 70], [64, 128, 100]] as const) {
      it(`${fmt}: M=${M} K=${K} N=${N}, 1-3 threads, with and without bias`, () => {
        seed += 11;
        const w = randomArray(N * K, seed, 0.5);
        // f16: include subnormals and zeros
        if (fmt === 'f16') for (let i = 0; i < w.length; i += 7) w[i] = i % 2 ? 3e-6 * (i % 5) : -0;
        const p = pack(fmt, w);
        for (const withBias of [false, true]) {
          resetArena();
          const x = put(randomArray(M * K, seed + 1)), bias = withBias ? put(randomArray(N, seed + 2)) : 0;
          const wf = put(p.exact);
          const [yRef, yRefV] = alloc(M * N);
          kernels.linear_f32(x, wf, bias, yRef, M, K, N, 0, N);
          const want = yRefV.slice();
          const wp = put(p.data), sc = p.scales ? put(p.scales) : 0;
          const fmtCode = { bf16: 1, f16: 2, q8: 3 }[fmt];
          for (const T of [1, 2, 3]) {
            const [scratch] = alloc(T * 32 * K);
            const [y, yv] = alloc(M * N);
            yv.fill(12345.678);
            for (let t = T - 1; t >= 0; t--) kernels.linear_panels(x, wp, sc, fmtCode, bias, y, M, K, N, scratch, t, T);
            assertBitEqual(yv.slice(), want, `${fmt} T=${T} bias=${withBias}`);
          }
        }
      });
    }
  }
});
