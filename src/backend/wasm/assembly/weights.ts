// Weight formats → f32 for the linear kernels (linear.ts) and the f32 panels (panel.ts): bf16, IEEE binary16 (f16),
// and f32 itself, selected at compile time by the type parameter W (f32 → f32, u16 → bf16, i16 → f16). Everything
// here is inlined where used; nothing is a module export.

// @ts-ignore: decorator
@inline export function isF16<W>(): bool {
  return isInteger<W>() && isSigned<W>();
}

// bf16: the bits are the high half of an f32 → interleave with zeros (one punpck{l,h}wd each).
// @ts-ignore: decorator
@inline export function bfLo(r: v128): v128 {
  return v128.shuffle<u16>(i16x8.splat(0), r, 0, 8, 1, 9, 2, 10, 3, 11);
}
// @ts-ignore: decorator
@inline export function bfHi(r: v128): v128 {
  return v128.shuffle<u16>(i16x8.splat(0), r, 4, 12, 5, 13, 6, 14, 7, 15);
}

// f16 → f32, 8 lanes at a time, built as two 16-bit halves that are interleaved into the f32 lanes:
//   high = sign | (e + 112) << 7 | m >> 3,   low = (m & 7) << 13.
// This fast form is exact for normal numbers (e ≠ 0); the kernels check each step of 8 halves (per W row) for
// exponent 0 and use it only when there is none. Lanes with e = 0 (subnormals, zeros) need one more step
// (the "X" functions): with the exponent one higher the value is ±2^-14 · (1 + m/1024), and subtracting ±2^-14 as
// floats leaves ±m · 2^-24 exactly. No f32 denormal is ever touched: they cost ~100 cycles each on many x86 CPUs
// (the classic "multiply by 2^112" conversion runs into exactly that with subnormal halves).
// @ts-ignore: decorator
@inline export function f16HiHalf(r: v128): v128 {
  return i16x8.add(f16HiBits(r), i16x8.splat(0x3800));
}
/** the high halves before the exponent's rebias: sign | e << 7 | m >> 3 (the sign's copies that shr_s leaves cleared) */
// @ts-ignore: decorator
@inline export function f16HiBits(r: v128): v128 {
  return v128.and(i16x8.shr_s(r, 3), i16x8.splat(<i16>0x8FFF));
}
// f16 → f32 · 2^-112 ("raw": the exponent not rebiased), 8 lanes at a time: the fast form without its add, which
// makes it exact for every finite half — a normal one becomes the normal float x · 2^-112, a subnormal one (e = 0)
// the f32 denormal m · 2^-136 = x · 2^-112. Callers multiply by 2^112 (f32x4.mul: exact), or fold the 2^112 into
// the other factor of a product (p · 2^112 times x · 2^-112 is p · x before rounding, so the product rounds alike).
// @ts-ignore: decorator
@inline export function f16LoRaw(r: v128): v128 {
  return v128.shuffle<u16>(i16x8.shl(r, 13), f16HiBits(r), 0, 8, 1, 9, 2, 10, 3, 11);
}
// @ts-ignore: decorator
@inline export function f16HiRaw(r: v128): v128 {
  return v128.shuffle<u16>(i16x8.shl(r, 13), f16HiBits(r), 4, 12, 5, 13, 6, 14, 7, 15);
}
// @ts-ignore: decorator
@inline export function f16Lo(r: v128): v128 {
  return v128.shuffle<u16>(i16x8.shl(r, 13), f16HiHalf(r), 0, 8, 1, 9, 2, 10, 3, 11);
}
// @ts-ignore: decorator
@inline export function f16Hi(r: v128): v128 {
  return v128.shuffle<u16>(i16x8.shl(r, 13), f16HiHalf(r), 4, 12, 5, 13, 6, 14, 7, 15);
}
/** lanes with exponent 0 (subnormal or zero) → 0xFFFF */
// @ts-ignore: decorator
@inline export function f16Sub(r: v128): v128 {
  return i16x8.eq(v128.and(r, i16x8.splat(0x7c00)), i16x8.splat(0));
}
// @ts-ignore: decorator
@inline export function f16HiHalfX(r: v128): v128 {
  return i16x8.sub(f16HiHalf(r), i16x8.shl(f16Sub(r), 7)); // e = 0 lanes: exponent + 1
}
// @ts-ignore: decorator
@inline export function f16Magic(r: v128): v128 {
  // high half of ±2^-14 in e = 0 lanes, 0 elsewhere
  return v128.and(f16Sub(r), v128.or(v128.and(r, i16x8.splat(<i16>0x8000)), i16x8.splat(0x3880)));
}
// @ts-ignore: decorator
@inline export function f16LoX(r: v128): v128 {
  return f32x4.sub(v128.shuffle<u16>(i16x8.shl(r, 13), f16HiHalfX(r), 0, 8, 1, 9, 2, 10, 3, 11),
                   v128.shuffle<u16>(i16x8.splat(0), f16Magic(r), 0, 8, 1, 9, 2, 10, 3, 11));
}
// @ts-ignore: decorator
@inline export function f16HiX(r: v128): v128 {
  return f32x4.sub(v128.shuffle<u16>(i16x8.shl(r, 13), f16HiHalfX(r), 4, 12, 5, 13, 6, 14, 7, 15),
                   v128.shuffle<u16>(i16x8.splat(0), f16Magic(r), 4, 12, 5, 13, 6, 14, 7, 15));
}

/** true if no half in a, b (c, d) has exponent 0, i.e. the fast conversion is exact for all of them */
// @ts-ignore: decorator
@inline export function f16AllNormal2(a: v128, b: v128): bool {
  // exponent 0 ⟺ (h << 1) < 0x0800 as u16
  return !v128.any_true(i16x8.sub_sat_u(i16x8.splat(0x0800), i16x8.min_u(i16x8.add(a, a), i16x8.add(b, b))));
}
// @ts-ignore: decorator
@inline export function f16AllNormal4(a: v128, b: v128, c: v128, d: v128): bool {
  const m = i16x8.min_u(i16x8.min_u(i16x8.add(a, a), i16x8.add(b, b)), i16x8.min_u(i16x8.add(c, c), i16x8.add(d, d)));
  return !v128.any_true(i16x8.sub_sat_u(i16x8.splat(0x0800), m));
}

/** IEEE binary16 → f32, exact (finite inputs) */
// @ts-ignore: decorator
@inline export function f16ToF32(h: u32): f32 {
  const a = h & 0x7fff;
  const f = a < 0x400 ? <f32>a * 5.9604644775390625e-8 // subnormal: a · 2^-24
                      : reinterpret<f32>((a << 13) + (112 << 23));
  return reinterpret<f32>(reinterpret<u32>(f) | ((h & 0x8000) << 16));
}

/** one weight at byte offset p as f32 (exact) */
// @ts-ignore: decorator
@inline export function wScalar<W>(p: usize): f32 {
  if (isFloat<W>()) return load<f32>(p);
  else if (isF16<W>()) return f16ToF32(<u32>load<u16>(p));
  else return reinterpret<f32>(<u32>load<u16>(p) << 16);
}

/** four consecutive weights at byte offset p as f32x4 (exact) */
// @ts-ignore: decorator
@inline export function w4<W>(p: usize): v128 {
  if (isFloat<W>()) return v128.load(p);
  else if (isF16<W>()) return f16LoX(v128.load64_zero(p));
  else return i32x4.shl(v128.load16x4_u(p), 16);
}

// Eight consecutive weights at p, from raw = the 16 bytes at p (f32: raw holds only the first four).
// wLo/wHi: weights 0-3 / 4-7 (f16: fast form, normal numbers only); wLoX/wHiX: exact for every finite input.
// @ts-ignore: decorator
@inline export function wLo<W>(raw: v128): v128 {
  if (isFloat<W>()) return raw;
  else if (isF16<W>()) return f16Lo(raw);
  else return bfLo(raw);
}
// @ts-ignore: decorator
@inline export function wHi<W>(raw: v128, p: usize): v128 {
  if (isFloat<W>()) return v128.load(p, 16);
  else if (isF16<W>()) return f16Hi(raw);
  else return bfHi(raw);
}
// @ts-ignore: decorator
@inline export function wLoX<W>(raw: v128): v128 {
  if (isF16<W>()) return f16LoX(raw);
  else return wLo<W>(raw);
}
// @ts-ignore: decorator
@inline export function wHiX<W>(raw: v128, p: usize): v128 {
  if (isF16<W>()) return f16HiX(raw);
  else return wHi<W>(raw, p);
}

/**
 * 32 q8 values (int8 at q) times their block's scale s (splat) as f32 at d: q · scale, one f32 multiply each (the
 * values a q8 matrix or KV cache stands for; src/backend/wasm/q8.ts unpackQ8 / decodeQ8Kv compute the same)
 */
// @ts-ignore: decorator
@inline export function q8x32(q: usize, s: v128, d: usize): void {
  for (let h: usize = 0; h < 32; h += 16) {
    const r = v128.load(q + h);
    const lo = i16x8.extend_low_i8x16_s(r), hi = i16x8.extend_high_i8x16_s(r);
    const o = d + (h << 2);
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), s));
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), s), 16);
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), s), 32);
    v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), s), 48);
  }
}
