/**
 * 16-bit values packed two to a u32 (value 2i in the low half, 2i + 1 in the high half), as WGSL snippets shared by
 * the kernels that read or write them: bf16 weight matrices (variant 'b' of the matvecs, GEMMs and gathers) and
 * bf16/f16 KV caches (variants 'b' and 'h' of the attention kernels and the cache row copies).
 * - bf16 → f32 is a shift or a mask; f16 → f32 is decoded with integer operations (exact, subnormals included), so
 *   neither format needs the `shader-f16` feature.
 * - f32 → bf16/f16 rounds to nearest even, bit for bit as `f32ToBf16` / `f32ToF16` (src/tensor/dtype.ts) do, so the
 *   GPU's caches hold the numbers the CPU and wasm backends hold (WGSL's own pack2x16float leaves the rounding to the
 *   implementation).
 */

/** how a role holds its values: f32 (''), packed bf16 ('b') or packed f16 ('h') */
export type HalfFormat = '' | 'b' | 'h';

/** the format letter of a store format ('f32' | 'bf16' | 'f16') */
export function halfFormat(fmt: 'f32' | 'bf16' | 'f16'): HalfFormat {
  return fmt === 'bf16' ? 'b' : fmt === 'f16' ? 'h' : '';
}

/** WGSL element types of roles in a 16-bit format: u32 words (f32: none) */
export function halfTypes(fmt: HalfFormat, ...roles: string[]): Record<string, string> {
  return fmt ? Object.fromEntries(roles.map((r) => [r, 'u32'])) : {};
}

/** WGSL: f16 bits (the low 16 of h) → f32, exact (zero and subnormals as m·2⁻²⁴, ±inf, NaN) */
const F16_TO_F32 = /* wgsl */ `
fn f16_to_f32(h: u32) -> f32 {
  let sg = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  let nrm = sg | ((e + 112u) << 23u) | (m << 13u);
  let sub = sg | bitcast<u32>(f32(m) * 5.9604644775390625e-8);
  let inf = sg | 0x7f800000u | (m << 13u);
  return bitcast<f32>(select(select(nrm, inf, e == 31u), sub, e == 0u));
}`;

/**
 * WGSL: `fn ${fn}(i: u32) -> f32`, element i of `role` (counted from the role's offset) in format `fmt`; the f16
 * decoder comes along when needed (once per kernel: pass `withDecoder` false for a second f16 reader)
 */
export function halfReader(fmt: HalfFormat, role: string, fn: string, withDecoder = true): string {
  if (fmt === 'b') return /* wgsl */ `fn ${fn}(i: u32) -> f32 { let u = $${role}[o_${role} + (i >> 1u)]; return bitcast<f32>(select(u << 16u, u & 0xffff0000u, (i & 1u) == 1u)); }`;
  if (fmt === 'h') return /* wgsl */ `${withDecoder ? F16_TO_F32 : ''}
fn ${fn}(i: u32) -> f32 { let u = $${role}[o_${role} + (i >> 1u)]; return f16_to_f32(select(u, u >> 16u, (i & 1u) == 1u)); }`;
  return /* wgsl */ `fn ${fn}(i: u32) -> f32 { return $${role}[o_${role} + i]; }`;
}

/**
 * WGSL: `fn ${fn}(i: u32) -> vec2<f32>`, elements i and i + 1 of `role` in a 16-bit format, for an even i: one load
 * (the f16 decoder must come with a `halfReader` of the kernel)
 */
export function halfPairReader(fmt: 'b' | 'h', role: string, fn: string): string {
  const pair = fmt === 'b' ? 'vec2<f32>(bitcast<f32>(u << 16u), bitcast<f32>(u & 0xffff0000u))' : 'vec2<f32>(f16_to_f32(u), f16_to_f32(u >> 16u))';
  return /* wgsl */ `fn ${fn}(i: u32) -> vec2<f32> { let u = $${role}[o_${role} + (i >> 1u)]; return ${pair}; }`;
}

/**
 * WGSL: `fn half_pack(a: f32, b: f32) -> u32`, two values rounded to nearest even in format `fmt` ('b' | 'h'),
 * a in the low half
 */
export function halfPacker(fmt: 'b' | 'h'): string {
  const enc = fmt === 'b'
    ? /* wgsl */ `
fn half_enc(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  if ((x & 0x7fffffffu) > 0x7f800000u) { return ((x >> 16u) | 0x40u) & 0xffffu; }
  return ((x + 0x7fffu + ((x >> 16u) & 1u)) >> 16u) & 0xffffu;
}`
    : /* wgsl */ `
fn half_enc(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  let sg = (x >> 16u) & 0x8000u;
  let ex = (x >> 23u) & 0xffu;
  var mant = x & 0x7fffffu;
  if (ex == 0xffu) { return sg | 0x7c00u | select(0u, 0x200u, mant != 0u); }
  let e = i32(ex) - 112;
  if (e >= 31) { return sg | 0x7c00u; }
  if (e <= 0) {
    if (e < -10) { return sg; }
    mant = mant | 0x800000u;
    let sh = u32(14 - e);
    var hv = mant >> sh;
    let rem = mant & ((1u << sh) - 1u);
    let mid = 1u << (sh - 1u);
    if (rem > mid || (rem == mid && (hv & 1u) == 1u)) { hv += 1u; }
    return sg | hv;
  }
  var hv = sg | (u32(e) << 10u) | (mant >> 13u);
  let rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (hv & 1u) == 1u)) { hv += 1u; }
  return hv;
}`;
  return /* wgsl */ `${enc}
fn half_pack(a: f32, b: f32) -> u32 { return half_enc(a) | (half_enc(b) << 16u); }`;
}
