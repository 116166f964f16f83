/**
 * Element types. Compute is float32 everywhere; float16 and bfloat16 exist as *storage* formats
 * (checkpoints, later quantized/half GPU buffers) and are decoded to float32 on load.
 */
export type DType = 'f32' | 'f16' | 'bf16' | 'i32' | 'q8' | 'q4';

/** Bytes per element of each dtype (q8: one int8 plus a float32 scale per block of 32). */
export const DTYPE_BYTES: Record<DType, number> = { f32: 4, f16: 2, bf16: 2, i32: 4, q8: 1.125, q4: 0.59375 };

/** Storage formats a backend may keep weight matrices in. */
export type WeightDType = 'f32' | 'f16' | 'bf16' | 'q8' | 'q4';

/**
 * Storage formats of attention KV caches (the `kvCache` option): f32 is exact, bf16/f16 half the bytes, q8 int8
 * values in blocks of 32 along the head dim with an f32 scale each (1.125 bytes per value; kv_heads × head_dim a
 * multiple of 32; src/backend/wasm/q8.ts).
 */
export type KvCacheDType = 'f32' | 'bf16' | 'f16' | 'q8';
export const KV_CACHE_FORMATS: readonly KvCacheDType[] = ['f32', 'bf16', 'f16', 'q8'];

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE-754 binary16 → float32 (exact; handles subnormals, ±inf and NaN). */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero or subnormal
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** float32 → IEEE-754 binary16 bits, round-to-nearest-even. */
export function f32ToF16(v: number): number {
  f32Scratch[0] = v;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow → ±0
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++; // may carry into exponent: still correct
  return half;
}

/** bfloat16 bits → float32: the top 16 bits of a float32. */
export function bf16ToF32(b: number): number {
  u32Scratch[0] = b << 16;
  return f32Scratch[0];
}

/** float32 → bfloat16 bits, round-to-nearest-even (NaN stays NaN). */
export function f32ToBf16(v: number): number {
  f32Scratch[0] = v;
  const x = u32Scratch[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Decode a little-endian f16/bf16 byte range into a new Float32Array (decodeHalfBits over the bytes as u16s). */
export function decodeHalf(bytes: Uint8Array, dtype: 'f16' | 'bf16', count: number): Float32Array {
  if (bytes.length < count * 2) throw new RangeError(`decodeHalf: ${count} ${dtype} values need ${count * 2} bytes, got ${bytes.length}`);
  // a Uint16Array view needs an even offset (a copy otherwise) and reads the host's byte order: swap on big-endian hosts
  const even = bytes.byteOffset % 2 === 0 && LITTLE_ENDIAN ? bytes : bytes.slice(0, count * 2);
  const bits = new Uint16Array(even.buffer, even.byteOffset, count);
  if (!LITTLE_ENDIAN) for (let i = 0; i < count; i++) bits[i] = ((bits[i] & 0xff) << 8) | (bits[i] >> 8);
  return decodeHalfBits(bits, dtype);
}

/** f32 values → bf16 / f16 bits at dst[offset …], round-to-nearest-even (what a KV cache in that format stores) */
export function encodeHalfInto(src: ArrayLike<number>, dtype: 'f16' | 'bf16', dst: Uint16Array, offset = 0): void {
  const conv = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
  for (let i = 0; i < src.length; i++) dst[offset + i] = conv(src[i]);
}

/** bf16 / f16 bits → a new Float32Array (exact) */
export function decodeHalfBits(bits: Uint16Array, dtype: 'f16' | 'bf16'): Float32Array {
  const out = new Float32Array(bits.length);
  if (dtype === 'bf16') {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  } else {
    for (let i = 0; i < bits.length; i++) out[i] = f16ToF32(bits[i]);
  }
  return out;
}

/** f32 values rounded to bf16 / f16 and back (the values a KV cache in that format holds) */
export function roundToHalf(src: Float32Array, dtype: 'f32' | 'bf16' | 'f16'): Float32Array {
  if (dtype === 'f32') return src;
  const bits = new Uint16Array(src.length);
  encodeHalfInto(src, dtype, bits);
  return decodeHalfBits(bits, dtype);
}
