/**
 * Reference quantizers for the tests, written from ggml's block layouts (ggml-common.h) independently of
 * src/io/gguf-quants.ts: each packs float data into blocks of its type and says which value every stored
 * quantum stands for and how far from the data it may be. Simple (not llama.cpp's optimizing search), exact
 * in layout.
 */
import assert from 'node:assert/strict';
import { GGML } from '../../src/io/gguf-quants.js';
import { f16ToF32, f32ToF16 } from '../../src/tensor/dtype.js';

export const half = (x: number) => f16ToF32(f32ToF16(x));
const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

export interface Encoded {
  bytes: Uint8Array;
  /** the value each stored quantum stands for (as the spec defines it) */
  expected: Float32Array;
  /** per value: the largest error the encoding may have against the data */
  bound: Float32Array;
}

/** Q4_0 / Q5_0 / Q8_0: 32 values, d (f16), signed quanta in 4, 5 or 8 bits */
function encodeSymmetric(x: Float32Array, bits: 4 | 5 | 8): Encoded {
  const nb = x.length / 32;
  const bb = bits === 4 ? 18 : bits === 5 ? 22 : 34;
  const bytes = new Uint8Array(nb * bb), dv = new DataView(bytes.buffer);
  const expected = new Float32Array(x.length), bound = new Float32Array(x.length);
  const maxQ = (1 << (bits - 1)) - 1; // 7, 15, 127
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
    const d = half(amax / maxQ);
    dv.setUint16(b * bb, f32ToF16(d), true);
    let qh = 0;
    for (let j = 0; j < 32; j++) {
      const q = d === 0 ? 0 : clamp(Math.round(x[b * 32 + j] / d), -maxQ - 1, maxQ);
      expected[b * 32 + j] = d * q;
      bound[b * 32 + j] = d * 0.5 + 1e-6;
      if (bits === 8) dv.setInt8(b * bb + 2 + j, q);
      else {
        const u = q + (1 << (bits - 1)); // unsigned 0..15 / 0..31
        const at = b * bb + (bits === 5 ? 6 : 2) + (j % 16);
        bytes[at] |= j < 16 ? u & 15 : (u & 15) << 4;
        if (bits === 5 && u & 16) qh |= 1 << j;
      }
    }
    if (bits === 5) dv.setUint32(b * bb + 2, qh >>> 0, true);
  }
  return { bytes, expected, bound };
}

/** Q4_1 / Q5_1: 32 values, d and m (f16), x ≈ d·q + m with q in 0..15 / 0..31 */
function encodeAffine(x: Float32Array, bits: 4 | 5): Encoded {
  const nb = x.length / 32, bb = bits === 4 ? 20 : 24;
  const bytes = new Uint8Array(nb * bb), dv = new DataView(bytes.buffer);
  const expected = new Float32Array(x.length), bound = new Float32Array(x.length);
  const levels = (1 << bits) - 1;
  for (let b = 0; b < nb; b++) {
    const v = x.subarray(b * 32, b * 32 + 32);
    const m = half(Math.min(...v)), d = half((Math.max(...v) - m) / levels);
    dv.setUint16(b * bb, f32ToF16(d), true);
    dv.setUint16(b * bb + 2, f32ToF16(m), true);
    let qh = 0;
    for (let j = 0; j < 32; j++) {
      const q = d === 0 ? 0 : clamp(Math.round((v[j] - m) / d), 0, levels);
      expected[b * 32 + j] = d * q + m;
      bound[b * 32 + j] = d * 0.5 + Math.abs(m) * 2 ** -10 + d * levels * 2 ** -10 + 1e-6;
      const at = b * bb + (bits === 5 ? 8 : 4) + (j % 16);
      bytes[at] |= j < 16 ? q & 15 : (q & 15) << 4;
      if (bits === 5 && q & 16) qh |= 1 << j;
    }
    if (bits === 5) dv.setUint32(b * bb + 4, qh >>> 0, true);
  }
  return { bytes, expected, bound };
}

/** the 12-byte packing of eight 6-bit scales and mins (Q4_K, Q5_K) */
function packScales(ls: number[], lm: number[]): Uint8Array {
  const q = new Uint8Array(12);
  for (let j = 0; j < 4; j++) {
    q[j] = ls[j] | ((ls[j + 4] >> 4) << 6);
    q[j + 4] = lm[j] | ((lm[j + 4] >> 4) << 6);
    q[j + 8] = (ls[j + 4] & 15) | ((lm[j + 4] & 15) << 4);
  }
  return q;
}

/** Q4_K / Q5_K: 256 values in 8 sub-blocks of 32, x ≈ d·ls·q − dmin·lm, 6-bit ls/lm, q in 0..15 / 0..31 */
function encodeK(x: Float32Array, bits: 4 | 5): Encoded {
  const nb = x.length / 256, bb = bits === 4 ? 144 : 176, levels = (1 << bits) - 1;
  const bytes = new Uint8Array(nb * bb), dv = new DataView(bytes.buffer);
  const expected = new Float32Array(x.length), bound = new Float32Array(x.length);
  for (let b = 0; b < nb; b++) {
    const sub = Array.from({ length: 8 }, (_, s) => x.subarray(b * 256 + s * 32, b * 256 + s * 32 + 32));
    // 6-bit multiples of the f16 d / dmin, rounded up so every sub-block's range is covered
    const mins = sub.map((v) => Math.max(0, -Math.min(...v))); // stored positive, subtracted
    const dmin = half((Math.max(...mins) / 63) * (1 + 2 ** -9));
    const lm = mins.map((m) => (dmin === 0 ? 0 : Math.ceil(m / dmin)));
    const scales = sub.map((v, s) => (Math.max(...v) + dmin * lm[s]) / levels);
    const d = half((Math.max(...scales) / 63) * (1 + 2 ** -9));
    const ls = scales.map((s) => (d === 0 ? 0 : Math.ceil(s / d)));
    assert.ok([...ls, ...lm].every((v) => v <= 63));
    dv.setUint16(b * bb, f32ToF16(d), true);
    dv.setUint16(b * bb + 2, f32ToF16(dmin), true);
    bytes.set(packScales(ls, lm), b * bb + 4);
    const qs = b * bb + (bits === 5 ? 48 : 16), qh = b * bb + 16;
    for (let s = 0; s < 8; s++) {
      const step = d * ls[s], off = dmin * lm[s];
      for (let l = 0; l < 32; l++) {
        const i = b * 256 + s * 32 + l;
        const q = step === 0 ? 0 : clamp(Math.round((x[i] + off) / step), 0, levels);
        expected[i] = step * q - off;
        bound[i] = step * 0.5 + 1e-5;
        const at = qs + (s >> 1) * 32 + l;
        bytes[at] |= s % 2 === 0 ? q & 15 : (q & 15) << 4;
        if (bits === 5 && q & 16) bytes[qh + l] |= 1 << s;
      }
    }
  }
  return { bytes, expected, bound };
}

/** Q6_K: 256 values in 16 sub-blocks of 16, x ≈ d·sc·(q − 32), int8 sc, 6-bit q; ql/qh/scales/d */
function encodeQ6K(x: Float32Array): Encoded {
  const nb = x.length / 256;
  const bytes = new Uint8Array(nb * 210), dv = new DataView(bytes.buffer);
  const expected = new Float32Array(x.length), bound = new Float32Array(x.length);
  for (let b = 0; b < nb; b++) {
    const o = b * 210;
    const amax = Array.from({ length: 16 }, (_, s) => Math.max(...Array.from(x.subarray(b * 256 + s * 16, b * 256 + s * 16 + 16), Math.abs)));
    let d = half(Math.max(...amax) / 31 / 127);
    while (d > 0 && Math.max(...amax) / 31 / d > 127) d = f16ToF32(f32ToF16(d) + 1); // the next f16 up (tiny d is subnormal)
    const sc = amax.map((a) => (d === 0 ? 0 : Math.ceil(a / 31 / d)));
    assert.ok(sc.every((v) => v <= 127));
    dv.setUint16(o + 208, f32ToF16(d), true);
    for (let v = 0; v < 256; v++) {
      const i = b * 256 + v, s = v >> 4, step = d * sc[s];
      const q = step === 0 ? 0 : clamp(Math.round(x[i] / step), -32, 31);
      expected[i] = step * q;
      bound[i] = step * 0.5 + 1e-6;
      const u = q + 32, n = v >> 7, g = (v >> 5) & 3, l = v & 31;
      const ql = o + n * 64 + (g & 1) * 32 + l;
      bytes[ql] |= g < 2 ? u & 15 : (u & 15) << 4;
      bytes[o + 128 + n * 32 + l] |= (u >> 4) << (2 * g);
    }
    for (let s = 0; s < 16; s++) dv.setInt8(o + 192 + s, sc[s]);
  }
  return { bytes, expected, bound };
}

export const CASES: Array<[string, number, (x: Float32Array) => Encoded]> = [
  ['Q8_0', GGML.Q8_0, (x) => encodeSymmetric(x, 8)],
  ['Q4_0', GGML.Q4_0, (x) => encodeSymmetric(x, 4)],
  ['Q5_0', GGML.Q5_0, (x) => encodeSymmetric(x, 5)],
  ['Q4_1', GGML.Q4_1, (x) => encodeAffine(x, 4)],
  ['Q5_1', GGML.Q5_1, (x) => encodeAffine(x, 5)],
  ['Q4_K', GGML.Q4_K, (x) => encodeK(x, 4)],
  ['Q5_K', GGML.Q5_K, (x) => encodeK(x, 5)],
  ['Q6_K', GGML.Q6_K, encodeQ6K],
];

