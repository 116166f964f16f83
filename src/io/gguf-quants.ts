/**
 * ggml tensor types: block sizes, dequantization to float32 (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
 * Q4_K, Q5_K, Q6_K) and quantization for export (F32, F16, BF16, Q8_0 — the types llama.cpp's converter
 * writes). The block layouts are ggml's (`block_q4_0` … `block_q6_K` in ggml-common.h): every block stores
 * its scales as little-endian f16; K-quants are 256-value super-blocks of 16- or 32-value sub-blocks.
 */
import { decodeHalf, f16ToF32, f32ToBf16, f32ToF16 } from '../tensor/dtype.js';

export interface GgmlTypeInfo {
  name: string;
  /** values per block */
  blockSize: number;
  /** bytes per block */
  blockBytes: number;
}

/** ggml type id → layout, for the types this module reads */
export const GGML_TYPES: Readonly<Record<number, GgmlTypeInfo>> = {
  0: { name: 'F32', blockSize: 1, blockBytes: 4 },
  1: { name: 'F16', blockSize: 1, blockBytes: 2 },
  2: { name: 'Q4_0', blockSize: 32, blockBytes: 18 },
  3: { name: 'Q4_1', blockSize: 32, blockBytes: 20 },
  6: { name: 'Q5_0', blockSize: 32, blockBytes: 22 },
  7: { name: 'Q5_1', blockSize: 32, blockBytes: 24 },
  8: { name: 'Q8_0', blockSize: 32, blockBytes: 34 },
  12: { name: 'Q4_K', blockSize: 256, blockBytes: 144 },
  13: { name: 'Q5_K', blockSize: 256, blockBytes: 176 },
  14: { name: 'Q6_K', blockSize: 256, blockBytes: 210 },
  30: { name: 'BF16', blockSize: 1, blockBytes: 2 },
};

/** ggml type ids by name */
export const GGML = { F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q4_K: 12, Q5_K: 13, Q6_K: 14, BF16: 30 } as const;

/** names of ggml types this module does not read (for messages) */
const OTHER_TYPES: Record<number, string> = {
  9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K', 15: 'Q8_K', 16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S',
  22: 'IQ2_S', 23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4',
};

export function ggmlTypeName(type: number): string {
  return GGML_TYPES[type]?.name ?? OTHER_TYPES[type] ?? 'unknown';
}

let f16Table: Float32Array | null = null;
/** f16 bits → float32, by table (dequantizing reads one scale per block) */
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16ToF32(i);
  }
  return f16Table;
}

/** `count` values of type `type` in `bytes` as float32 */
export function dequantize(bytes: Uint8Array, type: number, count: number): Float32Array {
  const info = GGML_TYPES[type];
  if (!info) throw new Error(`dequantize: ggml type ${type} (${ggmlTypeName(type)}) is not supported`);
  // whole-tensor halves: the same decoding as safetensors' F16/BF16
  if (type === GGML.F16) return decodeHalf(bytes, 'f16', count);
  if (type === GGML.BF16) return decodeHalf(bytes, 'bf16', count);
  const out = new Float32Array(count);
  const nb = count / info.blockSize;
  const h = halfTable();
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const f16 = (o: number) => h[dv.getUint16(o, true)];
  switch (type) {
    case GGML.F32:
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      break;
    case GGML.Q8_0:
      for (let b = 0; b < nb; b++) {
        const o = b * 34;
        const d = f16(o);
        for (let j = 0; j < 32; j++) out[b * 32 + j] = d * dv.getInt8(o + 2 + j);
      }
      break;
    case GGML.Q4_0:
    case GGML.Q4_1: {
      const bb = info.blockBytes;
      const q = type === GGML.Q4_1 ? 4 : 2; // qs after d (and m)
      for (let b = 0; b < nb; b++) {
        const o = b * bb;
        const d = f16(o);
        const m = type === GGML.Q4_1 ? f16(o + 2) : 0;
        const sub = type === GGML.Q4_1 ? 0 : 8;
        for (let j = 0; j < 16; j++) {
          const x = bytes[o + q + j];
          out[b * 32 + j] = ((x & 0x0f) - sub) * d + m;
          out[b * 32 + j + 16] = ((x >> 4) - sub) * d + m;
        }
      }
      break;
    }
    case GGML.Q5_0:
    case GGML.Q5_1: {
      const bb = info.blockBytes;
      const one = type === GGML.Q5_1;
      for (let b = 0; b < nb; b++) {
        const o = b * bb;
        const d = f16(o);
        const m = one ? f16(o + 2) : 0;
        const qhAt = one ? o + 4 : o + 2;
        const qh = dv.getUint32(qhAt, true);
        const qs = qhAt + 4;
        const sub = one ? 0 : 16;
        for (let j = 0; j < 16; j++) {
          const x = bytes[qs + j];
          const h0 = ((qh >>> j) << 4) & 0x10;
          const h1 = (qh >>> (j + 12)) & 0x10;
          out[b * 32 + j] = (((x & 0x0f) | h0) - sub) * d + m;
          out[b * 32 + j + 16] = (((x >> 4) | h1) - sub) * d + m;
        }
      }
      break;
    }
    case GGML.Q4_K:
    case GGML.Q5_K: {
      const five = type === GGML.Q5_K;
      const bb = info.blockBytes;
      for (let b = 0; b < nb; b++) {
        const o = b * bb;
        const d = f16(o);
        const dmin = f16(o + 2);
        const sc = o + 4; // 12 bytes of packed 6-bit scales and mins
        const qh = o + 16; // Q5_K: 32 bytes of high bits
        let ql = five ? o + 48 : o + 16;
        let y = b * 256;
        for (let j = 0, is = 0; j < 4; j++, is += 2) {
          const [s1, m1] = scaleMinK4(bytes, sc, is);
          const [s2, m2] = scaleMinK4(bytes, sc, is + 1);
          const d1 = d * s1, mm1 = dmin * m1, d2 = d * s2, mm2 = dmin * m2;
          const u1 = 1 << (2 * j), u2 = 2 << (2 * j);
          for (let l = 0; l < 32; l++) out[y + l] = d1 * ((bytes[ql + l] & 0x0f) + (five && bytes[qh + l] & u1 ? 16 : 0)) - mm1;
          for (let l = 0; l < 32; l++) out[y + 32 + l] = d2 * ((bytes[ql + l] >> 4) + (five && bytes[qh + l] & u2 ? 16 : 0)) - mm2;
          ql += 32;
          y += 64;
        }
      }
      break;
    }
    case GGML.Q6_K:
      for (let b = 0; b < nb; b++) {
        const o = b * 210;
        const d = f16(o + 208);
        for (let n = 0; n < 2; n++) {
          const ql = o + n * 64, qh = o + 128 + n * 32, sc = o + 192 + n * 8, y = b * 256 + n * 128;
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const h = bytes[qh + l];
            const q1 = ((bytes[ql + l] & 0x0f) | ((h & 3) << 4)) - 32;
            const q2 = ((bytes[ql + l + 32] & 0x0f) | (((h >> 2) & 3) << 4)) - 32;
            const q3 = ((bytes[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
            const q4 = ((bytes[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
            out[y + l] = d * dv.getInt8(sc + is) * q1;
            out[y + l + 32] = d * dv.getInt8(sc + is + 2) * q2;
            out[y + l + 64] = d * dv.getInt8(sc + is + 4) * q3;
            out[y + l + 96] = d * dv.getInt8(sc + is + 6) * q4;
          }
        }
      }
      break;
  }
  return out;
}

/** the j-th 6-bit (scale, min) pair of a Q4_K/Q5_K block's 12 packed bytes at `at` */
export function scaleMinK4(q: Uint8Array, at: number, j: number): [number, number] {
  if (j < 4) return [q[at + j] & 63, q[at + j + 4] & 63];
  return [(q[at + j + 4] & 0x0f) | ((q[at + j - 4] >> 6) << 4), (q[at + j + 4] >> 4) | ((q[at + j] >> 6) << 4)];
}

/** ggml's roundf: halves away from zero */
function roundAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/** The types `quantize` writes (what llama.cpp's converter writes, and Q4_K). */
export const WRITABLE_TYPES = [GGML.F32, GGML.F16, GGML.BF16, GGML.Q8_0, GGML.Q4_K] as const;

/**
 * `data` encoded as `type` (F32, F16, BF16 round to nearest even; Q8_0 as ggml's reference quantizer:
 * per 32 values d = max|x| / 127 stored as f16, q = round(x / d)). Q8_0 needs a multiple of 32 values.
 */
export function quantize(data: Float32Array, type: number): Uint8Array {
  const n = data.length;
  switch (type) {
    case GGML.F32: {
      const out = new Uint8Array(n * 4);
      const dv = new DataView(out.buffer);
      for (let i = 0; i < n; i++) dv.setFloat32(i * 4, data[i], true);
      return out;
    }
    case GGML.F16:
    case GGML.BF16: {
      const out = new Uint8Array(n * 2);
      const dv = new DataView(out.buffer);
      const enc = type === GGML.F16 ? f32ToF16 : f32ToBf16;
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, enc(data[i]), true);
      return out;
    }
    case GGML.Q8_0: {
      if (n % 32 !== 0) throw new Error(`quantize: Q8_0 needs a multiple of 32 values, got ${n}`);
      const out = new Uint8Array((n / 32) * 34);
      const dv = new DataView(out.buffer);
      for (let b = 0; b < n / 32; b++) {
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(data[b * 32 + j]));
        const d = Math.fround(amax / 127);
        const id = d === 0 ? 0 : Math.fround(1 / d);
        dv.setUint16(b * 34, f32ToF16(d), true);
        for (let j = 0; j < 32; j++) dv.setInt8(b * 34 + 2 + j, roundAway(Math.fround(data[b * 32 + j] * id)));
      }
      return out;
    }
    case GGML.Q4_K:
      if (n % 256 !== 0) throw new Error(`quantize: Q4_K needs a multiple of 256 values, got ${n}`);
      return quantizeQ4K(data);
    default:
      throw new Error(`quantize: writing ggml type ${ggmlTypeName(type)} is not supported (F32, F16, BF16, Q8_0, Q4_K)`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Q4_K quantization, after the logic of llama.cpp's reference quantizer (quantize_row_q4_K_ref, make_qkx2_quants;
// our own code): per block of 32 an asymmetric 4-bit fit x ≈ scale · q − min, found by a weighted least-squares
// search over 21 candidate scales (weights av|x| + |x|); the 8 scales and mins of a super-block are then quantized
// to 6 bits against d = max scale / 63, dmin = max min / 63 (f16), and the q recomputed with those. Float32
// arithmetic throughout (Math.fround), rounding as ggml's nearest_int (to nearest, ties to even).

const fr = Math.fround;

const XM = new Float32Array(32);

/** ggml's nearest_int: round to nearest, ties to even (|x| < 2^22) */
function nearestInt(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/**
 * The best (scale, min ≥ 0) with x ≈ scale · L − min, L in [0, nmax], for 32 values at `o` of x, weighted;
 * writes L. (make_qkx2_quants with rmin −1, rdelta 0.1, 20 steps, squared error.)
 */
function fitQkx2(x: Float32Array, o: number, w: Float32Array, nmax: number, L: Uint8Array, lo: number, aux: Uint8Array): [number, number] {
  const n = 32;
  let mn = x[o], mx = x[o];
  let sumW = w[0], sumX = fr(w[0] * x[o]);
  for (let i = 1; i < n; i++) {
    const v = x[o + i];
    if (v < mn) mn = v;
    if (v > mx) mx = v;
    sumW = fr(sumW + w[i]);
    sumX = fr(sumX + fr(w[i] * v));
  }
  if (mn > 0) mn = 0;
  if (mx === mn) {
    L.fill(0, lo, lo + n);
    return [0, -mn];
  }
  let iscale = fr(nmax / fr(mx - mn));
  let scale = fr(1 / iscale);
  let best = 0;
  const xm = XM; // x − min, recomputed when min changes
  for (let i = 0; i < n; i++) xm[i] = x[o + i] - mn;
  for (let i = 0; i < n; i++) {
    const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * xm[i]))));
    L[lo + i] = l;
    const d = fr(fr(fr(scale * l) + mn) - x[o + i]);
    best = fr(best + fr(w[i] * fr(d * d)));
  }
  for (let is = 0; is <= 20; is++) {
    iscale = fr(fr(fr(-1 + fr(0.1 * is)) + nmax) / fr(mx - mn));
    let sumL = 0, sumL2 = 0, sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * xm[i]))));
      aux[i] = l;
      sumL = fr(sumL + fr(w[i] * l));
      sumL2 = fr(sumL2 + fr(fr(w[i] * l) * l));
      sumXL = fr(sumXL + fr(fr(w[i] * l) * x[o + i]));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = fr(sumXL / sumL2);
      }
      let cur = 0;
      for (let i = 0; i < n; i++) {
        const d = fr(fr(fr(thisScale * aux[i]) + thisMin) - x[o + i]);
        cur = fr(cur + fr(w[i] * fr(d * d)));
      }
      if (cur < best) {
        for (let i = 0; i < n; i++) L[lo + i] = aux[i];
        best = cur;
        scale = thisScale;
        if (thisMin !== mn) {
          mn = thisMin;
          for (let i = 0; i < n; i++) xm[i] = x[o + i] - mn;
        }
      }
    }
  }
  return [scale, -mn];
}

/** `data` (a multiple of 256 values) as Q4_K blocks */
function quantizeQ4K(data: Float32Array): Uint8Array {
  const nb = data.length / 256;
  const out = new Uint8Array(nb * 144);
  const dv = new DataView(out.buffer);
  const x = data instanceof Float32Array ? data : Float32Array.from(data);
  const L = new Uint8Array(256), aux = new Uint8Array(32), w = new Float32Array(32);
  const scales = new Float32Array(8), mins = new Float32Array(8);
  const h = halfTable();
  for (let b = 0; b < nb; b++) {
    const xo = b * 256, o = b * 144;
    let maxScale = 0, maxMin = 0;
    for (let j = 0; j < 8; j++) {
      let s2 = 0;
      for (let l = 0; l < 32; l++) s2 = fr(s2 + fr(x[xo + 32 * j + l] * x[xo + 32 * j + l]));
      const av = fr(Math.sqrt(fr(s2 / 32)));
      for (let l = 0; l < 32; l++) w[l] = fr(av + Math.abs(x[xo + 32 * j + l]));
      [scales[j], mins[j]] = fitQkx2(x, xo + 32 * j, w, 15, L, 32 * j, aux);
      if (scales[j] > maxScale) maxScale = scales[j];
      if (mins[j] > maxMin) maxMin = mins[j];
    }
    const invScale = maxScale > 0 ? fr(63 / maxScale) : 0, invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
    const sc = o + 4;
    for (let j = 0; j < 8; j++) {
      const ls = Math.min(63, nearestInt(fr(invScale * scales[j]))), lm = Math.min(63, nearestInt(fr(invMin * mins[j])));
      if (j < 4) {
        out[sc + j] = ls;
        out[sc + j + 4] = lm;
      } else {
        out[sc + j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
        out[sc + j - 4] |= (ls >> 4) << 6;
        out[sc + j] |= (lm >> 4) << 6;
      }
    }
    dv.setUint16(o, f32ToF16(fr(maxScale / 63)), true);
    dv.setUint16(o + 2, f32ToF16(fr(maxMin / 63)), true);
    const d = h[dv.getUint16(o, true)], dmin = h[dv.getUint16(o + 2, true)];
    for (let j = 0; j < 8; j++) {
      const [s, m] = scaleMinK4(out, sc, j);
      const dd = fr(d * s);
      if (dd === 0) continue;
      const dm = fr(dmin * m);
      for (let l = 0; l < 32; l++) L[32 * j + l] = Math.max(0, Math.min(15, nearestInt(fr(fr(x[xo + 32 * j + l] + dm) / dd))));
    }
    for (let j = 0; j < 4; j++) {
      for (let l = 0; l < 32; l++) out[o + 16 + 32 * j + l] = L[64 * j + l] | (L[64 * j + 32 + l] << 4);
    }
  }
  return out;
}
