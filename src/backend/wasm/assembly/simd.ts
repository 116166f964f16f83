// Shared SIMD helpers of the kernels (inlined where used; nothing here is exported from the module):
// vector exp / log1p / softplus / silu, and partial-vector loads and stores for tails.

// ---------------------------------------------------------------------------------------------------------------
// exp for f32x4: exp(x) = 2^k · e^r, k = round(x / ln2), r = x − k·ln2 (Cody–Waite split, exact high part),
// e^r = 1 + r + r²·P(r) with P a degree-4 minimax fit on [−ln2/2, ln2/2] (approximation error 3e-9).
// Measured against Math.exp (8M random points each on [−87.3, 0] and [0, 88.3]): max error 0.93 ulp, relative error
// ≤ 8.1e-8 (the tests assert < 1e-7). x < −87.3 (result below FLT_MIN) gives exactly 0 (no denormals, which are
// slow on x64); x ≥ 88.38 gives +inf (true overflow is at 88.72); NaN propagates. About 24 instructions.

const LOG2E: f32 = 1.44269504;
const EXP_MAGIC: f32 = 12583039.0; // 1.5·2^23 + 127: t = x·log2e + magic rounds to an integer; its low bits are k + 127
const LN2_HI: f32 = 0.693359375; // 355/512: k·LN2_HI is exact for |k| < 2^15
const LN2_LO: f32 = -2.12194440e-4;
const EXP_P0: f32 = 0.49999994;
const EXP_P1: f32 = 0.16666521;
const EXP_P2: f32 = 0.04166839;
const EXP_P3: f32 = 0.00836871;
const EXP_P4: f32 = 0.0013814613;
const EXP_LO: f32 = -87.3;
const EXP_HI: f32 = 88.5;
const LN2: f32 = 0.6931472;
const SQRT2: f32 = 1.4142135;

// @ts-ignore: decorator
@inline export function vexp(x: v128): v128 {
  x = f32x4.pmin(x, f32x4.splat(EXP_HI)); // keeps k + 127 ≤ 255 (255 = +inf); NaN stays NaN
  const t = f32x4.add(f32x4.mul(x, f32x4.splat(LOG2E)), f32x4.splat(EXP_MAGIC));
  const k = f32x4.sub(t, f32x4.splat(EXP_MAGIC));
  let r = f32x4.sub(x, f32x4.mul(k, f32x4.splat(LN2_HI)));
  r = f32x4.sub(r, f32x4.mul(k, f32x4.splat(LN2_LO)));
  let p = f32x4.add(f32x4.mul(f32x4.splat(EXP_P4), r), f32x4.splat(EXP_P3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(EXP_P2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(EXP_P1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(EXP_P0));
  const e = f32x4.add(f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r), f32x4.splat(1.0));
  const s = f32x4.mul(e, i32x4.shl(t, 23)); // · 2^k, bits (k + 127) << 23
  return v128.andnot(s, f32x4.lt(x, f32x4.splat(EXP_LO)));
}

// log(1 + e) for e in [0, 1]: u = 1 + e rounded, corrected by (e − (u − 1)) / u; log u = j·ln2 + log m with
// m = u or u/2 in [1/√2, √2], log m = 2 atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172, series to s^9.
// @ts-ignore: decorator
@inline export function vlog1p01(e: v128): v128 {
  const one = f32x4.splat(1.0);
  const u = f32x4.add(one, e);
  const corr = f32x4.div(f32x4.sub(e, f32x4.sub(u, one)), u);
  const big = f32x4.gt(u, f32x4.splat(SQRT2));
  const m = v128.bitselect(f32x4.mul(u, f32x4.splat(0.5)), u, big);
  const f = f32x4.sub(m, one);
  const s = f32x4.div(f, f32x4.add(f, f32x4.splat(2.0)));
  const z = f32x4.mul(s, s);
  let q = f32x4.add(f32x4.mul(f32x4.splat(<f32>(2.0 / 9.0)), z), f32x4.splat(<f32>(2.0 / 7.0)));
  q = f32x4.add(f32x4.mul(q, z), f32x4.splat(<f32>(2.0 / 5.0)));
  q = f32x4.add(f32x4.mul(q, z), f32x4.splat(<f32>(2.0 / 3.0)));
  const logm = f32x4.add(f32x4.add(s, s), f32x4.mul(f32x4.mul(s, z), q));
  return f32x4.add(f32x4.add(v128.and(big, f32x4.splat(LN2)), logm), corr);
}

// softplus(x) = max(x, 0) + log1p(exp(−|x|)); for x > 20 this rounds to x, i.e. PyTorch's threshold-20 softplus.
// @ts-ignore: decorator
@inline export function vsoftplus(x: v128): v128 {
  return f32x4.add(f32x4.pmax(x, f32x4.splat(0.0)), vlog1p01(vexp(f32x4.neg(f32x4.abs(x)))));
}

// silu(z) = z / (1 + exp(−z))
// @ts-ignore: decorator
@inline export function vsilu(z: v128): v128 {
  return f32x4.div(z, f32x4.add(f32x4.splat(1.0), vexp(f32x4.neg(z))));
}

/**
 * acc + a · b: one fused multiply-add (relaxed SIMD's f32x4.relaxed_madd: V8 emits vfmadd where the CPU has FMA)
 * in the module built with relaxed SIMD (kernels-relaxed.wasm), a multiply then an add in the plain one
 */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, acc: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, acc);
  return f32x4.add(acc, f32x4.mul(a, b));
}

// ---------------------------------------------------------------------------------------------------------------
// partial-vector helpers: lanes [0, c) from/to p, p + 4, …; c = 4 is a plain v128 load/store.
// Unused lanes repeat lane 0 (never stored; lanes never mix).

// @ts-ignore: decorator
@inline export function ldc(p: usize, c: i32): v128 {
  if (c >= 4) return v128.load(p);
  let v = v128.load32_splat(p);
  if (c > 1) v = v128.load32_lane(p, v, 1, 4);
  if (c > 2) v = v128.load32_lane(p, v, 2, 8);
  return v;
}

// lanes [0, c) from p, zeros in the others (for sums over lanes and stores of whole vectors)
// @ts-ignore: decorator
@inline export function ldz(p: usize, c: i32): v128 {
  if (c >= 4) return v128.load(p);
  let v = f32x4.splat(0.0);
  v = v128.load32_lane(p, v, 0);
  if (c > 1) v = v128.load32_lane(p, v, 1, 4);
  if (c > 2) v = v128.load32_lane(p, v, 2, 8);
  return v;
}

// @ts-ignore: decorator
@inline export function stc(p: usize, v: v128, c: i32): void {
  if (c >= 4) {
    v128.store(p, v);
    return;
  }
  v128.store32_lane(p, v, 0);
  if (c > 1) v128.store32_lane(p, v, 1, 4);
  if (c > 2) v128.store32_lane(p, v, 2, 8);
}

// lanes k < c from p + k·stride (bytes)
// @ts-ignore: decorator
@inline export function gather(p: usize, stride: usize, c: i32): v128 {
  let v = v128.load32_splat(p);
  if (c > 1) v = v128.load32_lane(p + stride, v, 1);
  if (c > 2) v = v128.load32_lane(p + 2 * stride, v, 2);
  if (c > 3) v = v128.load32_lane(p + 3 * stride, v, 3);
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// 4 × 4 transposes of 32-bit lanes: trN(a, b, c, d) = [lane N of a, of b, of c, of d] (f32, i32, or i16 / i8 pairs
// and quads read as 32-bit lanes)
// @ts-ignore: decorator
@inline export function tr0(a: v128, b: v128, c: v128, d: v128): v128 {
  return v128.shuffle<f32>(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 0, 4, 1, 5), 0, 1, 4, 5);
}
// @ts-ignore: decorator
@inline export function tr1(a: v128, b: v128, c: v128, d: v128): v128 {
  return v128.shuffle<f32>(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 0, 4, 1, 5), 2, 3, 6, 7);
}
// @ts-ignore: decorator
@inline export function tr2(a: v128, b: v128, c: v128, d: v128): v128 {
  return v128.shuffle<f32>(v128.shuffle<f32>(a, b, 2, 6, 3, 7), v128.shuffle<f32>(c, d, 2, 6, 3, 7), 0, 1, 4, 5);
}
// @ts-ignore: decorator
@inline export function tr3(a: v128, b: v128, c: v128, d: v128): v128 {
  return v128.shuffle<f32>(v128.shuffle<f32>(a, b, 2, 6, 3, 7), v128.shuffle<f32>(c, d, 2, 6, 3, 7), 2, 3, 6, 7);
}
