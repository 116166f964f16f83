/**
 * ggml dequantization (src/io/gguf-quants.ts) against block encodings built here from the spec (ggml-common.h's
 * block layouts): a simple reference quantizer per type packs random data into blocks and says which value each
 * stored integer stands for; our `dequantize` must give exactly those values, and they must be within the type's
 * rounding error of the data. The writer's F16/BF16/Q8_0 encodings are checked the same way.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { GGML, dequantize, quantize } from '../../src/io/gguf-quants.js';
import { f16ToF32, f32ToF16 } from '../../src/tensor/dtype.js';
import { CASES, half } from './gguf-ref-quants.js';
import { randomArray } from '../helpers.js';

describe('dequantize: block encodings built from the spec', () => {
  for (const [name, type, encode] of CASES) {
    test(`${name}: every quantum decodes to its value, within the rounding error of the data`, () => {
      for (const [seed, scale] of [[1, 1], [2, 0.02], [3, 40]] as const) {
        const x = randomArray(1024, seed * 97 + type, scale);
        x.fill(0, 512, 544); // an all-zero block (scale 0)
        const enc = encode(x);
        const got = dequantize(enc.bytes, type, x.length);
        for (let i = 0; i < x.length; i++) {
          assert.ok(Math.abs(got[i] - enc.expected[i]) <= 1e-6 * Math.abs(enc.expected[i]) + 1e-30, `${name} value ${i}: got ${got[i]}, the block encodes ${enc.expected[i]}`);
          assert.ok(Math.abs(got[i] - x[i]) <= enc.bound[i] * 1.001, `${name} value ${i}: ${got[i]} is ${Math.abs(got[i] - x[i])} from ${x[i]}, more than the bound ${enc.bound[i]}`);
        }
        assert.ok(got.subarray(512, 544).every((v) => v === 0), `${name}: a zero block decodes to zeros`);
      }
    });
  }

  test('F32, F16 and BF16 decode their bit patterns', () => {
    const x = randomArray(64, 5, 3);
    const f32 = new Uint8Array(x.buffer.slice(0));
    assert.deepEqual(dequantize(f32, GGML.F32, 64), x);
    const f16 = new Uint8Array(128), bf = new Uint8Array(128), dv = new DataView(f16.buffer), dvb = new DataView(bf.buffer);
    x.forEach((v, i) => {
      dv.setUint16(i * 2, f32ToF16(v), true);
      dvb.setUint16(i * 2, new Uint32Array(new Float32Array([v]).buffer)[0] >>> 16, true); // truncation is a valid bf16
    });
    assert.deepEqual(dequantize(f16, GGML.F16, 64), Float32Array.from(x, half));
    assert.deepEqual(dequantize(bf, GGML.BF16, 64), Float32Array.from(x, (v) => new Float32Array(new Uint32Array([(new Uint32Array(new Float32Array([v]).buffer)[0] >>> 16) << 16]).buffer)[0]));
  });
});

describe('quantize (what export writes)', () => {
  test('Q8_0 as ggml: d = max|x|/127 (f16), q = round(x/d); decodes within d/2 (+ the f16 rounding of d)', () => {
    const x = randomArray(32 * 40, 11, 2);
    x.fill(0, 64, 96);
    const bytes = quantize(x, GGML.Q8_0);
    assert.equal(bytes.byteLength, 40 * 34);
    const back = dequantize(bytes, GGML.Q8_0, x.length);
    const dv = new DataView(bytes.buffer);
    for (let b = 0; b < 40; b++) {
      const amax = Math.max(...Array.from(x.subarray(b * 32, b * 32 + 32), Math.abs));
      assert.equal(f16ToF32(dv.getUint16(b * 34, true)), half(amax / 127), `block ${b} scale`);
      const q = Array.from({ length: 32 }, (_, j) => dv.getInt8(b * 34 + 2 + j));
      if (amax > 0) assert.equal(Math.max(...q.map(Math.abs)), 127, `block ${b}: the largest value maps to ±127`);
      for (let j = 0; j < 32; j++) assert.ok(Math.abs(back[b * 32 + j] - x[b * 32 + j]) <= (amax / 127) * (0.5 + 127 * 2 ** -11) + 1e-7);
    }
    assert.throws(() => quantize(new Float32Array(33), GGML.Q8_0), /multiple of 32/);
  });

  test('F16/BF16/F32 round trip through dequantize', () => {
    const x = randomArray(100, 4, 10);
    assert.deepEqual(dequantize(quantize(x, GGML.F32), GGML.F32, 100), x);
    assert.deepEqual(dequantize(quantize(x, GGML.F16), GGML.F16, 100), Float32Array.from(x, half));
    const bf = dequantize(quantize(x, GGML.BF16), GGML.BF16, 100);
    for (let i = 0; i < 100; i++) assert.ok(Math.abs(bf[i] - x[i]) <= Math.abs(x[i]) * 2 ** -8);
    assert.throws(() => quantize(x, GGML.Q6_K), /not supported/);
    assert.throws(() => quantize(x, GGML.Q4_K), /Q4_K needs a multiple of 256 values, got 100/);
  });
});
