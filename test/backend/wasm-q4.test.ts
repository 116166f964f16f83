/**
 * The wasm q4 weight format (assembly/linear_q4.ts, backend/wasm/q4.ts): Q4_K blocks kept as they are. linear with
 * q4 weights against a float64 product of the dequantized weights (gguf-quants.ts `dequantize`, independent of the
 * repacking) on odd shapes (N not a multiple of 4, M = 1 and M > 1, K multiples of 256), 1 and 2 threads, within the
 * bound of the activations' quantization (13 bits per block of 32) plus f32 rounding; the same bits for any split of
 * N or M and either thread count; reads back exactly the dequantized values; what is not Q4_K falls back (q8 / f32);
 * bad Q4_K data is refused naming the tensor.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import { GGML, dequantize, quantize } from '../../src/io/gguf-quants.js';
import { randomArray } from '../helpers.js';

/** rows with different magnitudes and offsets (so scales, mins and d/dmin all vary) */
function weights(N: number, K: number, seed: number): Float32Array {
  const w = randomArray(N * K, seed);
  for (let j = 0; j < N; j++) {
    const s = 0.05 * (1 + (j % 5)), off = ((j % 3) - 1) * 0.3 * s;
    for (let k = 0; k < K; k++) w[j * K + k] = w[j * K + k] * s + off;
  }
  return w;
}

const stored = (bytes: Uint8Array, type: number = GGML.Q4_K) => () => ({ type, bytes, label: 'test.gguf: tensor "w"' });

/** float64 x · Wᵀ + bias and the bound of the q4 kernel's error: Σ_blocks xs/2 · Σ|w| (x quantized) + f32 rounding */
function reference(x: Float32Array, w: Float32Array, bias: Float32Array | null, M: number, K: number, N: number) {
  const ref = new Float64Array(M * N), bound = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = bias ? bias[j] : 0, q = 0, mag = 0;
      for (let b = 0; b < K / 32; b++) {
        let amax = 0, wabs = 0;
        for (let k = b * 32; k < b * 32 + 32; k++) {
          amax = Math.max(amax, Math.abs(x[i * K + k]));
          wabs += Math.abs(w[j * K + k]);
          s += x[i * K + k] * w[j * K + k];
          mag += Math.abs(x[i * K + k] * w[j * K + k]);
        }
        q += (amax / 4095 / 2) * wabs * (1 + 1e-6);
      }
      ref[i * N + j] = s;
      bound[i * N + j] = q + 4e-7 * (K / 32 + 8) * (mag + Math.abs(s)) + 1e-30;
    }
  }
  return { ref, bound };
}

function run(be: WasmBackend, x: Float32Array, bytes: Uint8Array, deq: Float32Array, bias: Float32Array | null, M: number, K: number, N: number): Float32Array {
  const w = be.fromHost(deq, [N, K], { matrix: true, stored: stored(bytes) });
  assert.equal(w.dtype, 'q4');
  return be.readSync(be.linear(be.fromHost(x, [M, K]), w, bias && be.fromHost(bias, [N])));
}

const SHAPES: Array<[number, number, number]> = [[1, 256, 1], [1, 256, 7], [1, 512, 13], [5, 768, 9], [4, 256, 4], [9, 512, 6], [1, 2048, 37], [3, 1024, 67]];

describe('wasm q4 weights (Q4_K)', () => {
  for (const threads of [1, 2]) {
    it(`linear against the float64 product of the dequantized weights, ${threads} thread(s)`, (t) => {
      const be = new WasmBackend({ threads, weights: 'q4' });
      let worst = 0;
      for (const [si, [M, K, N]] of SHAPES.entries()) {
        const wf = weights(N, K, 10 + si), bytes = quantize(wf, GGML.Q4_K), deq = dequantize(bytes, GGML.Q4_K, N * K);
        const x = randomArray(M * K, 100 + si);
        const bias = si % 2 ? randomArray(N, 200 + si) : null;
        const y = run(be, x, bytes, deq, bias, M, K, N);
        const { ref, bound } = reference(x, deq, bias, M, K, N);
        for (let i = 0; i < M * N; i++) {
          const err = Math.abs(y[i] - ref[i]);
          worst = Math.max(worst, err / bound[i]);
          assert.ok(err <= bound[i], `[${M}, ${K}, ${N}] y[${i}] = ${y[i]}, float64 ${ref[i]}: |Δ| ${err} > bound ${bound[i]}`);
        }
      }
      t.diagnostic(`largest |Δ| / bound: ${worst.toFixed(3)}`);
      assert.ok(worst > 0, 'the activations are quantized: some error is expected');
    });
  }

  it('the same bits for any split of N or M and on 1 or 2 threads; reads back the dequantized values exactly', () => {
    const [M, K, N] = [6, 1024, 23];
    const wf = weights(N, K, 3), bytes = quantize(wf, GGML.Q4_K), deq = dequantize(bytes, GGML.Q4_K, N * K);
    const x = randomArray(M * K, 4), bias = randomArray(N, 5);
    const be1 = new WasmBackend({ threads: 1, weights: 'q4' }), be2 = new WasmBackend({ threads: 2, weights: 'q4' });
    const all = run(be1, x, bytes, deq, bias, M, K, N);
    assert.deepEqual(run(be2, x, bytes, deq, bias, M, K, N), all, '2 threads');
    const rowBytes = (K / 256) * 144;
    for (let j = 0; j < N; j++) {
      // one W row alone (the 1-row kernel path) and one x row alone (M = 1)
      const one = run(be1, x, bytes.subarray(j * rowBytes, (j + 1) * rowBytes), deq.subarray(j * K, (j + 1) * K), bias.subarray(j, j + 1), M, K, 1);
      for (let i = 0; i < M; i++) assert.equal(one[i], all[i * N + j], `row ${i}, column ${j} alone`);
    }
    for (let i = 0; i < M; i++) assert.deepEqual(run(be1, x.subarray(i * K, (i + 1) * K), bytes, deq, bias, 1, K, N), all.subarray(i * N, (i + 1) * N), `x row ${i} alone`);
    const w = be1.fromHost(deq, [N, K], { matrix: true, stored: stored(bytes) });
    assert.deepEqual(be1.readSync(w), deq);
    assert.deepEqual(be1.readSync(be1.embedding(w, Int32Array.from([3, 0, 22]))), Float32Array.from([...deq.subarray(3 * K, 4 * K), ...deq.subarray(0, K), ...deq.subarray(22 * K, 23 * K)]));
  });

  it('what is not Q4_K falls back: rows not a multiple of 256 → q8 (or f32), other quantized types → q8, float types → f32', () => {
    const be = new WasmBackend({ threads: 1, weights: 'q4' });
    const w96 = weights(5, 96, 1);
    assert.equal(be.fromHost(w96, [5, 96], { matrix: true }).dtype, 'q8');
    assert.equal(be.fromHost(weights(5, 40, 1), [5, 40], { matrix: true }).dtype, 'f32');
    const w256 = weights(3, 256, 2);
    assert.equal(be.fromHost(w256, [3, 256], { matrix: true }).dtype, 'q4', 'float checkpoints are quantized to Q4_K');
    assert.equal(be.fromHost(w256, [3, 256], { matrix: true, stored: stored(quantize(w256, GGML.Q8_0), GGML.Q8_0) }).dtype, 'q8');
    assert.equal(be.fromHost(w256, [3, 256], { matrix: true, stored: stored(quantize(w256, GGML.F16), GGML.F16) }).dtype, 'f32');
    assert.equal(be.fromHost(w256, [3, 256], { matrix: true, float32: true }).dtype, 'f32');
  });

  it('bad Q4_K data is refused, naming the tensor', () => {
    const be = new WasmBackend({ threads: 1, weights: 'q4' });
    const w = weights(4, 512, 1), bytes = quantize(w, GGML.Q4_K);
    assert.throws(() => be.fromHost(w, [4, 512], { matrix: true, stored: stored(bytes.subarray(0, bytes.length - 10)) }),
      /test\.gguf: tensor "w": Q4_K data of 1142 bytes for a \[4, 512\] matrix; expected .* 1152 bytes/);
  });
});

describe('Q4_K quantizer (gguf-quants.ts)', () => {
  it('round-trips within 4-bit error, rows of any magnitude; zeros stay zeros', () => {
    const K = 1024, N = 8;
    const w = weights(N, K, 9);
    w.fill(0, 256, 512); // a zero super-block
    const deq = dequantize(quantize(w, GGML.Q4_K), GGML.Q4_K, N * K);
    for (let k = 256; k < 512; k++) assert.equal(deq[k], 0);
    for (let j = 0; j < N; j++) {
      let num = 0, den = 0, maxErr = 0, amax = 0;
      for (let k = 0; k < K; k++) {
        const d = deq[j * K + k] - w[j * K + k];
        num += d * d;
        den += w[j * K + k] ** 2;
        maxErr = Math.max(maxErr, Math.abs(d));
        amax = Math.max(amax, Math.abs(w[j * K + k]));
      }
      // 4 bits over a block's range (≤ 2 · amax): a step ≤ 2 · amax / 15, errors within about half a step
      assert.ok(Math.sqrt(num / den) < 0.1, `row ${j}: relative RMS error ${Math.sqrt(num / den)}`);
      assert.ok(maxErr < amax / 10, `row ${j}: max error ${maxErr} (max |w| ${amax})`);
    }
  });
});
