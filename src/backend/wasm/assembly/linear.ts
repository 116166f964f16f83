// Linear layers: y[M, N] = x[M, K] · W[N, K]ᵀ (+ bias[N]), computing output columns [n0, n1) of every row.
//
// x, y, bias: f32, row-major; bias = 0 means none. All pointers are byte offsets into the shared memory (the module
// allocates nothing); columns outside [n0, n1) are never written, so workers can split N into disjoint slices with
// arbitrary bounds. Weight formats:
//   linear_f32   W f32 [N, K]
//   linear_bf16  W bf16 bits [N, K] (f32 = bits << 16)
//   linear_f16   W IEEE binary16 [N, K] (finite values; subnormals and signed zeros are converted exactly)
//   linear_q8    qs int8 [N, K] and scales f32 [N, K/32]: w[j, k] = qs[j, k] · scales[j, k >> 5]; K % 32 == 0
//   quantize_q8  f32 → q8
//
// Strategy
//   M = 1 (decode): a matrix-vector product, bound by streaming W once. f32: one row at a time, read strictly
//     sequentially (gemvF32Seq). bf16/f16/q8: four W rows at a time with one f32x4
//     accumulator each (x loaded once per group), lanes reduced at the end; meanwhile the next group of rows is
//     "touched" (see touchPart) so that its cache lines and TLB entries are already on their way.
//   M > 1 (prefill, batched decode): register tiles over a panel of 4 W rows that stays in L1 while a chunk of
//     ~256 KiB of x rows (L2) passes over it: f32 2 x-rows × 4 W-rows; bf16/f16/q8 4 x-rows × 2 W-rows, so that each
//     converted weight vector serves 4 rows of x.
//   f16: a cheap conversion, exact for normal numbers, and a per-step check for halves with exponent 0 (subnormals,
//     zeros: ~0.1-1 % of real weights) that sends just that step down the exact (slower) conversion.
//   V8 gives wasm SIMD the 16 xmm registers of x64, constants included; the tiles keep 8 accumulators, as more
//   spill. (No FMA: relaxed SIMD is not enabled.)
//
// The f32/bf16/f16 kernels share one generic implementation; its type parameter W only selects the weight format at
// compile time: f32 → f32, u16 → bf16, i16 → IEEE binary16.

// ---------------------------------------------------------------------------------------------------------------
// per-instance state (wasm globals: each worker thread has its own instance)

/** where the words loaded by the cache-line touches go, so that they are not optimized away */
let pfSink: u32 = 0;

// Software prefetch: wasm has no prefetch instruction, but a plain load of one word per 64-byte line of the data
// needed next gets those lines (and their TLB entries: wasm memory sits on 4 KiB pages) moving while the current
// data is computed on. For M = 1 this is worth 1.3-1.6x.

/** loads one word of each 64-byte line of part `step` (of `chunk` bytes) of [p, p + total) */
// @ts-ignore: decorator
@inline function touchPart(p: usize, total: usize, chunk: usize, step: i32): void {
  const o0 = <usize>step * chunk;
  const o1 = min(o0 + chunk, total);
  let junk: u32 = 0;
  for (let o = o0; o < o1; o += 64) junk ^= load<u32>(p + o);
  pfSink ^= junk;
}

/** bytes per part when touching `total` bytes in `nsteps` parts (whole lines) */
// @ts-ignore: decorator
@inline function pfChunk(total: usize, nsteps: i32): usize {
  return ((total / <usize>max(nsteps, 1)) + 63) & ~63;
}

// ---------------------------------------------------------------------------------------------------------------
// weight conversion

// @ts-ignore: decorator
@inline function isF16<W>(): bool {
  return isInteger<W>() && isSigned<W>();
}

// bf16: the bits are the high half of an f32 → interleave with zeros (one punpck{l,h}wd each).
// @ts-ignore: decorator
@inline function bfLo(r: v128): v128 {
  return v128.shuffle<u16>(i16x8.splat(0), r, 0, 8, 1, 9, 2, 10, 3, 11);
}
// @ts-ignore: decorator
@inline function bfHi(r: v128): v128 {
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
@inline function f16HiHalf(r: v128): v128 {
  return i16x8.add(v128.and(i16x8.shr_s(r, 3), i16x8.splat(<i16>0x8FFF)), i16x8.splat(0x3800));
}
// @ts-ignore: decorator
@inline function f16Lo(r: v128): v128 {
  return v128.shuffle<u16>(i16x8.shl(r, 13), f16HiHalf(r), 0, 8, 1, 9, 2, 10, 3, 11);
}
// @ts-ignore: decorator
@inline function f16Hi(r: v128): v128 {
  return v128.shuffle<u16>(i16x8.shl(r, 13), f16HiHalf(r), 4, 12, 5, 13, 6, 14, 7, 15);
}
/** lanes with exponent 0 (subnormal or zero) → 0xFFFF */
// @ts-ignore: decorator
@inline function f16Sub(r: v128): v128 {
  return i16x8.eq(v128.and(r, i16x8.splat(0x7c00)), i16x8.splat(0));
}
// @ts-ignore: decorator
@inline function f16HiHalfX(r: v128): v128 {
  return i16x8.sub(f16HiHalf(r), i16x8.shl(f16Sub(r), 7)); // e = 0 lanes: exponent + 1
}
// @ts-ignore: decorator
@inline function f16Magic(r: v128): v128 {
  // high half of ±2^-14 in e = 0 lanes, 0 elsewhere
  return v128.and(f16Sub(r), v128.or(v128.and(r, i16x8.splat(<i16>0x8000)), i16x8.splat(0x3880)));
}
// @ts-ignore: decorator
@inline function f16LoX(r: v128): v128 {
  return f32x4.sub(v128.shuffle<u16>(i16x8.shl(r, 13), f16HiHalfX(r), 0, 8, 1, 9, 2, 10, 3, 11),
                   v128.shuffle<u16>(i16x8.splat(0), f16Magic(r), 0, 8, 1, 9, 2, 10, 3, 11));
}
// @ts-ignore: decorator
@inline function f16HiX(r: v128): v128 {
  return f32x4.sub(v128.shuffle<u16>(i16x8.shl(r, 13), f16HiHalfX(r), 4, 12, 5, 13, 6, 14, 7, 15),
                   v128.shuffle<u16>(i16x8.splat(0), f16Magic(r), 4, 12, 5, 13, 6, 14, 7, 15));
}

/** true if no half in a, b (c, d) has exponent 0, i.e. the fast conversion is exact for all of them */
// @ts-ignore: decorator
@inline function f16AllNormal2(a: v128, b: v128): bool {
  // exponent 0 ⟺ (h << 1) < 0x0800 as u16
  return !v128.any_true(i16x8.sub_sat_u(i16x8.splat(0x0800), i16x8.min_u(i16x8.add(a, a), i16x8.add(b, b))));
}
// @ts-ignore: decorator
@inline function f16AllNormal4(a: v128, b: v128, c: v128, d: v128): bool {
  const m = i16x8.min_u(i16x8.min_u(i16x8.add(a, a), i16x8.add(b, b)), i16x8.min_u(i16x8.add(c, c), i16x8.add(d, d)));
  return !v128.any_true(i16x8.sub_sat_u(i16x8.splat(0x0800), m));
}

/**
 * Exact f16 dot products of x[k..k+8) (at xp) with 4 W rows (at p0, stride rowB) → [row0, row1, row2, row3].
 * The rare slow path of dot1x4<f16>, deliberately not inlined: it keeps the hot loop small (no spills).
 */
function f16Step1x4X(xp: usize, p0: usize, rowB: usize): v128 {
  const x0 = v128.load(xp), x1 = v128.load(xp, 16);
  const r0 = v128.load(p0), r1 = v128.load(p0 + rowB), r2 = v128.load(p0 + 2 * rowB), r3 = v128.load(p0 + 3 * rowB);
  return hsum4(f32x4.add(f32x4.mul(x0, f16LoX(r0)), f32x4.mul(x1, f16HiX(r0))),
               f32x4.add(f32x4.mul(x0, f16LoX(r1)), f32x4.mul(x1, f16HiX(r1))),
               f32x4.add(f32x4.mul(x0, f16LoX(r2)), f32x4.mul(x1, f16HiX(r2))),
               f32x4.add(f32x4.mul(x0, f16LoX(r3)), f32x4.mul(x1, f16HiX(r3))));
}

/** IEEE binary16 → f32, exact (finite inputs) */
// @ts-ignore: decorator
@inline function f16ToF32(h: u32): f32 {
  const a = h & 0x7fff;
  const f = a < 0x400 ? <f32>a * 5.9604644775390625e-8 // subnormal: a · 2^-24
                      : reinterpret<f32>((a << 13) + (112 << 23));
  return reinterpret<f32>(reinterpret<u32>(f) | ((h & 0x8000) << 16));
}

/** one weight at byte offset p as f32 (exact) */
// @ts-ignore: decorator
@inline function wScalar<W>(p: usize): f32 {
  if (isFloat<W>()) return load<f32>(p);
  else if (isF16<W>()) return f16ToF32(<u32>load<u16>(p));
  else return reinterpret<f32>(<u32>load<u16>(p) << 16);
}

/** four consecutive weights at byte offset p as f32x4 (exact) */
// @ts-ignore: decorator
@inline function w4<W>(p: usize): v128 {
  if (isFloat<W>()) return v128.load(p);
  else if (isF16<W>()) return f16LoX(v128.load64_zero(p));
  else return i32x4.shl(v128.load16x4_u(p), 16);
}

// Eight consecutive weights at p, from raw = the 16 bytes at p (f32: raw holds only the first four).
// wLo/wHi: weights 0-3 / 4-7 (f16: fast form, normal numbers only); wLoX/wHiX: exact for every finite input.
// @ts-ignore: decorator
@inline function wLo<W>(raw: v128): v128 {
  if (isFloat<W>()) return raw;
  else if (isF16<W>()) return f16Lo(raw);
  else return bfLo(raw);
}
// @ts-ignore: decorator
@inline function wHi<W>(raw: v128, p: usize): v128 {
  if (isFloat<W>()) return v128.load(p, 16);
  else if (isF16<W>()) return f16Hi(raw);
  else return bfHi(raw);
}
// @ts-ignore: decorator
@inline function wLoX<W>(raw: v128): v128 {
  if (isF16<W>()) return f16LoX(raw);
  else return wLo<W>(raw);
}
// @ts-ignore: decorator
@inline function wHiX<W>(raw: v128, p: usize): v128 {
  if (isF16<W>()) return f16HiX(raw);
  else return wHi<W>(raw, p);
}

// ---------------------------------------------------------------------------------------------------------------
// reductions / stores

/** horizontal sum of one f32x4 */
// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  const s = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

/** [hsum(a), hsum(b), hsum(c), hsum(d)] */
// @ts-ignore: decorator
@inline function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

/** y[j..j+3] = v (+ bias[j..j+3]); y points at the row */
// @ts-ignore: decorator
@inline function store4(y: usize, bias: usize, j: i32, v: v128): void {
  if (bias) v = f32x4.add(v, v128.load(bias + (<usize>j << 2)));
  v128.store(y + (<usize>j << 2), v);
}

/** y[j], y[j+1] = lanes 0, 1 of v (+ bias) */
// @ts-ignore: decorator
@inline function store2(y: usize, bias: usize, j: i32, v: v128): void {
  if (bias) v = f32x4.add(v, v128.load64_zero(bias + (<usize>j << 2)));
  v128.store64_lane(y + (<usize>j << 2), v, 0);
}

/** y[j] = v (+ bias[j]) */
// @ts-ignore: decorator
@inline function store1(y: usize, bias: usize, j: i32, v: f32): void {
  if (bias) v += load<f32>(bias + (<usize>j << 2));
  store<f32>(y + (<usize>j << 2), v);
}

// ---------------------------------------------------------------------------------------------------------------
// f32 / bf16 / f16

/**
 * 1 row of x × 4 rows of W (w0 = the first, rowB = bytes per W row) → the 4 dot products. pf ≠ 0: touches the
 * 4 · rowB bytes at pf meanwhile.
 */
// @ts-ignore: decorator
@inline function dot1x4<W>(x: usize, w0: usize, rowB: usize, K: i32, pf: usize): v128 {
  const ES: usize = sizeof<W>();
  const w1 = w0 + rowB, w2 = w1 + rowB, w3 = w2 + rowB;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let ex = f32x4.splat(0); // f16: the steps that needed the exact conversion, [row0, row1, row2, row3]
  let junk: u32 = 0;
  let k: usize = 0;
  const K8 = <usize>(K & ~7), K4 = <usize>(K & ~3);
  for (; k < K8; k += 8) {
    const xp = x + (k << 2), o = k * ES;
    const p0 = w0 + o, p1 = w1 + o, p2 = w2 + o, p3 = w3 + o;
    const r0 = v128.load(p0), r1 = v128.load(p1), r2 = v128.load(p2), r3 = v128.load(p3);
    if (pf) {
      // this step consumes 32 · ES bytes of the group: touch as many of the next group
      junk ^= load<u32>(pf + (o << 2));
      if (ES == 4) junk ^= load<u32>(pf + (o << 2), 64);
    }
    if (isF16<W>()) {
      if (!f16AllNormal4(r0, r1, r2, r3)) {
        ex = f32x4.add(ex, f16Step1x4X(xp, p0, rowB));
        continue;
      }
    }
    const x0 = v128.load(xp), x1 = v128.load(xp, 16);
    a0 = f32x4.add(a0, f32x4.add(f32x4.mul(x0, wLo<W>(r0)), f32x4.mul(x1, wHi<W>(r0, p0))));
    a1 = f32x4.add(a1, f32x4.add(f32x4.mul(x0, wLo<W>(r1)), f32x4.mul(x1, wHi<W>(r1, p1))));
    a2 = f32x4.add(a2, f32x4.add(f32x4.mul(x0, wLo<W>(r2)), f32x4.mul(x1, wHi<W>(r2, p2))));
    a3 = f32x4.add(a3, f32x4.add(f32x4.mul(x0, wLo<W>(r3)), f32x4.mul(x1, wHi<W>(r3, p3))));
  }
  if (pf) pfSink ^= junk;
  if (k < K4) {
    const x0 = v128.load(x + (k << 2)), o = k * ES;
    a0 = f32x4.add(a0, f32x4.mul(x0, w4<W>(w0 + o)));
    a1 = f32x4.add(a1, f32x4.mul(x0, w4<W>(w1 + o)));
    a2 = f32x4.add(a2, f32x4.mul(x0, w4<W>(w2 + o)));
    a3 = f32x4.add(a3, f32x4.mul(x0, w4<W>(w3 + o)));
    k += 4;
  }
  let r = hsum4(a0, a1, a2, a3);
  if (isF16<W>()) r = f32x4.add(r, ex);
  for (; k < <usize>K; k++) {
    const o = k * ES;
    let t = f32x4.splat(wScalar<W>(w0 + o));
    t = f32x4.replace_lane(t, 1, wScalar<W>(w1 + o));
    t = f32x4.replace_lane(t, 2, wScalar<W>(w2 + o));
    t = f32x4.replace_lane(t, 3, wScalar<W>(w3 + o));
    r = f32x4.add(r, f32x4.mul(f32x4.splat(load<f32>(x + (k << 2))), t));
  }
  return r;
}

/** 1 row of x × 1 row of W (exact) */
// @ts-ignore: decorator
@inline function dot1x1<W>(x: usize, w0: usize, K: i32): f32 {
  const ES: usize = sizeof<W>();
  let a0 = f32x4.splat(0), b0 = f32x4.splat(0);
  let k: usize = 0;
  const K8 = <usize>(K & ~7), K4 = <usize>(K & ~3);
  for (; k < K8; k += 8) {
    const xp = x + (k << 2), p = w0 + k * ES;
    const r = v128.load(p);
    a0 = f32x4.add(a0, f32x4.mul(v128.load(xp), wLoX<W>(r)));
    b0 = f32x4.add(b0, f32x4.mul(v128.load(xp, 16), wHiX<W>(r, p)));
  }
  if (k < K4) {
    a0 = f32x4.add(a0, f32x4.mul(v128.load(x + (k << 2)), w4<W>(w0 + k * ES)));
    k += 4;
  }
  let r = hsum(f32x4.add(a0, b0));
  for (; k < <usize>K; k++) r += load<f32>(x + (k << 2)) * wScalar<W>(w0 + k * ES);
  return r;
}

/** 2 rows of x (x0, x0 + xrowB) × 4 rows of W → y rows (y0, y0 + yrowB), columns j..j+3. Used for f32. */
// @ts-ignore: decorator
@inline function tile2x4<W>(x0: usize, xrowB: usize, w0: usize, rowB: usize, K: i32,
                             y0: usize, yrowB: usize, bias: usize, j: i32): void {
  const ES: usize = sizeof<W>();
  const x1 = x0 + xrowB;
  const w1 = w0 + rowB, w2 = w1 + rowB, w3 = w2 + rowB;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  let k: usize = 0;
  const K4 = <usize>(K & ~3);
  for (; k < K4; k += 4) {
    const o = k * ES;
    const v0 = w4<W>(w0 + o), v1 = w4<W>(w1 + o), v2 = w4<W>(w2 + o), v3 = w4<W>(w3 + o);
    const xa = v128.load(x0 + (k << 2));
    a0 = f32x4.add(a0, f32x4.mul(xa, v0));
    a1 = f32x4.add(a1, f32x4.mul(xa, v1));
    a2 = f32x4.add(a2, f32x4.mul(xa, v2));
    a3 = f32x4.add(a3, f32x4.mul(xa, v3));
    const xb = v128.load(x1 + (k << 2));
    b0 = f32x4.add(b0, f32x4.mul(xb, v0));
    b1 = f32x4.add(b1, f32x4.mul(xb, v1));
    b2 = f32x4.add(b2, f32x4.mul(xb, v2));
    b3 = f32x4.add(b3, f32x4.mul(xb, v3));
  }
  let ra = hsum4(a0, a1, a2, a3), rb = hsum4(b0, b1, b2, b3);
  for (; k < <usize>K; k++) {
    const o = k * ES;
    let t = f32x4.splat(wScalar<W>(w0 + o));
    t = f32x4.replace_lane(t, 1, wScalar<W>(w1 + o));
    t = f32x4.replace_lane(t, 2, wScalar<W>(w2 + o));
    t = f32x4.replace_lane(t, 3, wScalar<W>(w3 + o));
    ra = f32x4.add(ra, f32x4.mul(f32x4.splat(load<f32>(x0 + (k << 2))), t));
    rb = f32x4.add(rb, f32x4.mul(f32x4.splat(load<f32>(x1 + (k << 2))), t));
  }
  store4(y0, bias, j, ra);
  store4(y0 + yrowB, bias, j, rb);
}

/**
 * 4 rows of x × 2 rows of W → y rows i..i+3 (y0, stride yrowB), columns j, j+1. Each converted weight vector
 * serves 4 rows of x. Used for bf16 and f16.
 */
// @ts-ignore: decorator
@inline function tile4x2<W>(x0: usize, xrowB: usize, w0: usize, rowB: usize, K: i32,
                             y0: usize, yrowB: usize, bias: usize, j: i32): void {
  const ES: usize = sizeof<W>();
  const x1 = x0 + xrowB, x2 = x1 + xrowB, x3 = x2 + xrowB;
  const w1 = w0 + rowB;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  let k: usize = 0;
  if (isF16<W>()) {
    // f16 converts 8 at a time (cheaper per weight than 4-wide; bf16 is faster 4-wide, below)
    const K8 = <usize>(K & ~7);
    for (; k < K8; k += 8) {
      const o = k * ES;
      const r0 = v128.load(w0 + o), r1 = v128.load(w1 + o);
      let u0: v128, u1: v128, v0: v128, v1: v128;
      if (f16AllNormal2(r0, r1)) {
        u0 = f16Lo(r0); u1 = f16Lo(r1); v0 = f16Hi(r0); v1 = f16Hi(r1);
      } else {
        u0 = f16LoX(r0); u1 = f16LoX(r1); v0 = f16HiX(r0); v1 = f16HiX(r1);
      }
      const kx = k << 2;
      let t = v128.load(x0 + kx);
      a0 = f32x4.add(a0, f32x4.mul(t, u0)); b0 = f32x4.add(b0, f32x4.mul(t, u1));
      t = v128.load(x1 + kx);
      a1 = f32x4.add(a1, f32x4.mul(t, u0)); b1 = f32x4.add(b1, f32x4.mul(t, u1));
      t = v128.load(x2 + kx);
      a2 = f32x4.add(a2, f32x4.mul(t, u0)); b2 = f32x4.add(b2, f32x4.mul(t, u1));
      t = v128.load(x3 + kx);
      a3 = f32x4.add(a3, f32x4.mul(t, u0)); b3 = f32x4.add(b3, f32x4.mul(t, u1));
      t = v128.load(x0 + kx, 16);
      a0 = f32x4.add(a0, f32x4.mul(t, v0)); b0 = f32x4.add(b0, f32x4.mul(t, v1));
      t = v128.load(x1 + kx, 16);
      a1 = f32x4.add(a1, f32x4.mul(t, v0)); b1 = f32x4.add(b1, f32x4.mul(t, v1));
      t = v128.load(x2 + kx, 16);
      a2 = f32x4.add(a2, f32x4.mul(t, v0)); b2 = f32x4.add(b2, f32x4.mul(t, v1));
      t = v128.load(x3 + kx, 16);
      a3 = f32x4.add(a3, f32x4.mul(t, v0)); b3 = f32x4.add(b3, f32x4.mul(t, v1));
    }
  }
  const K4 = <usize>(K & ~3);
  for (; k < K4; k += 4) {
    const o = k * ES, kx = k << 2;
    const u0 = w4<W>(w0 + o), u1 = w4<W>(w1 + o);
    let t = v128.load(x0 + kx);
    a0 = f32x4.add(a0, f32x4.mul(t, u0)); b0 = f32x4.add(b0, f32x4.mul(t, u1));
    t = v128.load(x1 + kx);
    a1 = f32x4.add(a1, f32x4.mul(t, u0)); b1 = f32x4.add(b1, f32x4.mul(t, u1));
    t = v128.load(x2 + kx);
    a2 = f32x4.add(a2, f32x4.mul(t, u0)); b2 = f32x4.add(b2, f32x4.mul(t, u1));
    t = v128.load(x3 + kx);
    a3 = f32x4.add(a3, f32x4.mul(t, u0)); b3 = f32x4.add(b3, f32x4.mul(t, u1));
  }
  // lanes: [row0·w0, row0·w1, row1·w0, row1·w1], [row2·w0, row2·w1, row3·w0, row3·w1]
  let r01 = hsum4(a0, b0, a1, b1), r23 = hsum4(a2, b2, a3, b3);
  for (; k < <usize>K; k++) {
    const o = k * ES, kx = k << 2;
    const ww = f32x4.replace_lane(f32x4.splat(wScalar<W>(w0 + o)), 1, wScalar<W>(w1 + o));
    const wv = v128.shuffle<f32>(ww, ww, 0, 1, 0, 1);
    const x01 = f32x4.replace_lane(f32x4.splat(load<f32>(x0 + kx)), 2, load<f32>(x1 + kx));
    const x23 = f32x4.replace_lane(f32x4.splat(load<f32>(x2 + kx)), 2, load<f32>(x3 + kx));
    r01 = f32x4.add(r01, f32x4.mul(v128.shuffle<f32>(x01, x01, 0, 0, 2, 2), wv));
    r23 = f32x4.add(r23, f32x4.mul(v128.shuffle<f32>(x23, x23, 0, 0, 2, 2), wv));
  }
  store2(y0, bias, j, r01);
  store2(y0 + yrowB, bias, j, v128.shuffle<f32>(r01, r01, 2, 3, 2, 3));
  store2(y0 + 2 * yrowB, bias, j, r23);
  store2(y0 + 3 * yrowB, bias, j, v128.shuffle<f32>(r23, r23, 2, 3, 2, 3));
}

/** x rows [i0, i1) × the panel of 4 W rows at wj → y columns j..j+3; touches the next panel (pf ≠ 0) meanwhile */
// @ts-ignore: decorator
@inline function panel4<W>(x: usize, xrowB: usize, wj: usize, rowB: usize, K: i32, y: usize, yrowB: usize,
                           bias: usize, j: i32, i0: i32, i1: i32, pf: usize): void {
  let i = i0;
  const panelB = rowB << 2;
  if (isFloat<W>()) {
    const chunk = pfChunk(panelB, (i1 - i0) >> 1);
    for (; i + 2 <= i1; i += 2) {
      if (pf) touchPart(pf, panelB, chunk, (i - i0) >> 1);
      tile2x4<W>(x + <usize>i * xrowB, xrowB, wj, rowB, K, y + <usize>i * yrowB, yrowB, bias, j);
    }
  } else {
    const chunk = pfChunk(panelB, (i1 - i0) >> 2);
    for (; i + 4 <= i1; i += 4) {
      if (pf) touchPart(pf, panelB, chunk, (i - i0) >> 2);
      const xi = x + <usize>i * xrowB, yi = y + <usize>i * yrowB;
      tile4x2<W>(xi, xrowB, wj, rowB, K, yi, yrowB, bias, j);
      tile4x2<W>(xi, xrowB, wj + 2 * rowB, rowB, K, yi, yrowB, bias, j + 2);
    }
  }
  // rows left over (all of them when M < tile height: then the first one streams the panel and touches the next)
  for (; i < i1; i++) {
    const v = dot1x4<W>(x + <usize>i * xrowB, wj, rowB, K, i == i0 ? pf : 0);
    store4(y + <usize>i * yrowB, bias, j, v);
  }
}

// @ts-ignore: decorator
@inline function linearT<W>(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (n1 <= n0 || M <= 0) return;
  const ES: usize = sizeof<W>();
  const rowB = <usize>K * ES;
  const xrowB = <usize>K << 2, yrowB = <usize>N << 2;
  if (M == 1) {
    let j = n0;
    for (; j + 4 <= n1; j += 4) {
      const wj = w + <usize>j * rowB;
      store4(y, bias, j, dot1x4<W>(x, wj, rowB, K, j + 8 <= n1 ? wj + 4 * rowB : wj));
    }
    for (; j < n1; j++) store1(y, bias, j, dot1x1<W>(x, w + <usize>j * rowB, K));
    return;
  }
  // rows of x per pass over a panel: that chunk of x stays within ~256 KiB (L2)
  const MC = max(((64 * 1024) / max(K, 1)) & ~3, 4);
  for (let i0 = 0; i0 < M; i0 += MC) {
    const i1 = min(M, i0 + MC);
    let j = n0;
    for (; j + 4 <= n1; j += 4) {
      const wj = w + <usize>j * rowB;
      panel4<W>(x, xrowB, wj, rowB, K, y, yrowB, bias, j, i0, i1, j + 8 <= n1 ? wj + 4 * rowB : 0);
    }
    for (; j < n1; j++) {
      const wj = w + <usize>j * rowB;
      for (let i = i0; i < i1; i++) store1(y + <usize>i * yrowB, bias, j, dot1x1<W>(x + <usize>i * xrowB, wj, K));
    }
  }
}

/** y[:, n0:n1] = x · Wᵀ (+ bias); W f32 [N, K]. */
export function linear_f32(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (M == 1) gemvF32Seq(x, w, bias, y, M, K, N, n0, n1);
  else linearT<f32>(x, w, bias, y, M, K, N, n0, n1);
}

// f32 matrix-vector product (M = 1) reading W strictly sequentially: one row at a time with 4 accumulators over k
// (x stays in L1). On weights that come from DRAM this streams at the memory's full rate (measured 25.7 GB/s on
// one thread vs 15.9 for four rows at once, which splits the read into four interleaved streams).
function gemvF32Seq(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const rowB = <usize>K * 4;
  for (let j = n0; j < n1; j++) {
    const p = w + <usize>j * rowB;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let k = 0;
    for (; k + 16 <= K; k += 16) {
      const o = <usize>k * 4;
      a0 = f32x4.add(a0, f32x4.mul(v128.load(p + o), v128.load(x + o)));
      a1 = f32x4.add(a1, f32x4.mul(v128.load(p + o, 16), v128.load(x + o, 16)));
      a2 = f32x4.add(a2, f32x4.mul(v128.load(p + o, 32), v128.load(x + o, 32)));
      a3 = f32x4.add(a3, f32x4.mul(v128.load(p + o, 48), v128.load(x + o, 48)));
    }
    const t = f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3));
    let s: f32 = f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1) + f32x4.extract_lane(t, 2) + f32x4.extract_lane(t, 3);
    for (; k < K; k++) s += load<f32>(p + <usize>k * 4) * load<f32>(x + <usize>k * 4);
    if (bias) s += load<f32>(bias + <usize>j * 4);
    store<f32>(y + <usize>j * 4, s);
  }
}


/** y[:, n0:n1] = x · Wᵀ (+ bias); W bf16 bits [N, K]. */
export function linear_bf16(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (M == 1) gemvBf16Seq(x, w, bias, y, K, n0, n1);
  else linearT<u16>(x, w, bias, y, M, K, N, n0, n1);
}

// bf16 matrix-vector product (M = 1), W read strictly sequentially one row at a time (see gemvF32Seq).
function gemvBf16Seq(x: usize, w: usize, bias: usize, y: usize, K: i32, n0: i32, n1: i32): void {
  const rowB = <usize>K * 2;
  for (let j = n0; j < n1; j++) {
    const p = w + <usize>j * rowB;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let k = 0;
    for (; k + 16 <= K; k += 16) {
      const r0 = v128.load(p + <usize>k * 2), r1 = v128.load(p + <usize>k * 2, 16);
      const xo = x + <usize>k * 4;
      a0 = f32x4.add(a0, f32x4.mul(bfLo(r0), v128.load(xo)));
      a1 = f32x4.add(a1, f32x4.mul(bfHi(r0), v128.load(xo, 16)));
      a2 = f32x4.add(a2, f32x4.mul(bfLo(r1), v128.load(xo, 32)));
      a3 = f32x4.add(a3, f32x4.mul(bfHi(r1), v128.load(xo, 48)));
    }
    const t = f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3));
    let s: f32 = f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1) + f32x4.extract_lane(t, 2) + f32x4.extract_lane(t, 3);
    for (; k < K; k++) s += reinterpret<f32>(<u32>load<u16>(p + <usize>k * 2) << 16) * load<f32>(x + <usize>k * 4);
    if (bias) s += load<f32>(bias + <usize>j * 4);
    store<f32>(y + <usize>j * 4, s);
  }
}

/** y[:, n0:n1] = x · Wᵀ (+ bias); W IEEE binary16 [N, K] (finite). */
export function linear_f16(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  linearT<i16>(x, w, bias, y, M, K, N, n0, n1);
}

// ---------------------------------------------------------------------------------------------------------------
// q8: int8 weights in blocks of 32 along K, one f32 scale per block: w[j, k] = qs[j, k] · scales[j, k >> 5].
// int8 → f32 with one swizzle (pshufb) per 4 weights: each byte goes into the top byte of an i32 lane, the other
// bytes are zero (swizzle indices ≥ 16 give 0), so the lane holds q · 2^24; convert_i32x4_s is exact, and the 2^-24
// is applied to the final sums (multiplying by a power of two is exact).

const Q8_UNSCALE: f32 = 5.9604644775390625e-8; // 2^-24

// @ts-ignore: decorator
@inline function q8m0(): v128 { return i8x16(-1, -1, -1, 0, -1, -1, -1, 1, -1, -1, -1, 2, -1, -1, -1, 3); }
// @ts-ignore: decorator
@inline function q8m1(): v128 { return i8x16(-1, -1, -1, 4, -1, -1, -1, 5, -1, -1, -1, 6, -1, -1, -1, 7); }
// @ts-ignore: decorator
@inline function q8m2(): v128 { return i8x16(-1, -1, -1, 8, -1, -1, -1, 9, -1, -1, -1, 10, -1, -1, -1, 11); }
// @ts-ignore: decorator
@inline function q8m3(): v128 { return i8x16(-1, -1, -1, 12, -1, -1, -1, 13, -1, -1, -1, 14, -1, -1, -1, 15); }

/** the 4 bytes of q that mask m selects, as f32 · 2^24 */
// @ts-ignore: decorator
@inline function q8cvt(q: v128, m: v128): v128 {
  return f32x4.convert_i32x4_s(i8x16.swizzle(q, m));
}

/** one block of 32: partial sums of x[0..32) · q[0..32) · 2^24 as an f32x4 */
// @ts-ignore: decorator
@inline function q8block(xp: usize, qp: usize): v128 {
  const qa = v128.load(qp), qb = v128.load(qp, 16);
  const s0 = f32x4.add(f32x4.mul(v128.load(xp), q8cvt(qa, q8m0())), f32x4.mul(v128.load(xp, 16), q8cvt(qa, q8m1())));
  const s1 = f32x4.add(f32x4.mul(v128.load(xp, 32), q8cvt(qa, q8m2())), f32x4.mul(v128.load(xp, 48), q8cvt(qa, q8m3())));
  const s2 = f32x4.add(f32x4.mul(v128.load(xp, 64), q8cvt(qb, q8m0())), f32x4.mul(v128.load(xp, 80), q8cvt(qb, q8m1())));
  const s3 = f32x4.add(f32x4.mul(v128.load(xp, 96), q8cvt(qb, q8m2())), f32x4.mul(v128.load(xp, 112), q8cvt(qb, q8m3())));
  return f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3));
}

/**
 * 1 row of x × 4 rows of q8 W (q0: first row of qs, s0: its first scale) → the 4 dot products. pfq ≠ 0: touches
 * the next 4 rows (qs at pfq, scales at pfs) meanwhile.
 */
// @ts-ignore: decorator
@inline function q8dot1x4(x: usize, q0: usize, s0: usize, K: i32, pfq: usize, pfs: usize): v128 {
  const qrowB = <usize>K, srowB = <usize>K >> 3;
  const q1 = q0 + qrowB, q2 = q1 + qrowB, q3 = q2 + qrowB;
  const s1 = s0 + srowB, s2 = s1 + srowB, s3 = s2 + srowB;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let junk: u32 = 0;
  const nb = <usize>K >> 5;
  for (let b: usize = 0; b < nb; b++) {
    const xp = x + (b << 7), k = b << 5, so = b << 2;
    if (pfq) {
      // this block consumes 4 · 32 bytes of qs and 4 · 4 of scales: touch as many of the next group
      junk ^= load<u32>(pfq + (k << 2)) ^ load<u32>(pfq + (k << 2), 64) ^ load<u32>(pfs + (so << 2));
    }
    a0 = f32x4.add(a0, f32x4.mul(q8block(xp, q0 + k), v128.load32_splat(s0 + so)));
    a1 = f32x4.add(a1, f32x4.mul(q8block(xp, q1 + k), v128.load32_splat(s1 + so)));
    a2 = f32x4.add(a2, f32x4.mul(q8block(xp, q2 + k), v128.load32_splat(s2 + so)));
    a3 = f32x4.add(a3, f32x4.mul(q8block(xp, q3 + k), v128.load32_splat(s3 + so)));
  }
  if (pfq) pfSink ^= junk;
  return f32x4.mul(hsum4(a0, a1, a2, a3), f32x4.splat(Q8_UNSCALE));
}

/** 1 row of x × 1 row of q8 W */
// @ts-ignore: decorator
@inline function q8dot1x1(x: usize, q0: usize, s0: usize, K: i32): f32 {
  let a0 = f32x4.splat(0);
  const nb = <usize>K >> 5;
  for (let b: usize = 0; b < nb; b++) {
    a0 = f32x4.add(a0, f32x4.mul(q8block(x + (b << 7), q0 + (b << 5)), v128.load32_splat(s0 + (b << 2))));
  }
  return hsum(a0) * Q8_UNSCALE;
}

/**
 * 4 rows of x × 2 rows of q8 W → y rows i..i+3 (y0, stride yrowB), columns j, j+1. The block scale is applied to
 * the converted weights, each of which then serves 4 rows of x.
 */
// @ts-ignore: decorator
@inline function q8tile4x2(x0: usize, xrowB: usize, q0: usize, s0: usize, K: i32,
                           y0: usize, yrowB: usize, bias: usize, j: i32): void {
  const x1 = x0 + xrowB, x2 = x1 + xrowB, x3 = x2 + xrowB;
  const q1 = q0 + <usize>K, s1 = s0 + (<usize>K >> 3);
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  const nb = <usize>K >> 5;
  for (let b: usize = 0; b < nb; b++) {
    const c0 = v128.load32_splat(s0 + (b << 2)), c1 = v128.load32_splat(s1 + (b << 2));
    for (let h: usize = 0; h < 32; h += 16) {
      const k = (b << 5) + h;
      const qa = v128.load(q0 + k), qb = v128.load(q1 + k);
      const kx = k << 2;
      // 4 steps of 4 weights: bytes 0-3, 4-7, 8-11, 12-15 of qa / qb
      let u = f32x4.mul(q8cvt(qa, q8m0()), c0), v = f32x4.mul(q8cvt(qb, q8m0()), c1);
      let t = v128.load(x0 + kx); a0 = f32x4.add(a0, f32x4.mul(t, u)); b0 = f32x4.add(b0, f32x4.mul(t, v));
      t = v128.load(x1 + kx); a1 = f32x4.add(a1, f32x4.mul(t, u)); b1 = f32x4.add(b1, f32x4.mul(t, v));
      t = v128.load(x2 + kx); a2 = f32x4.add(a2, f32x4.mul(t, u)); b2 = f32x4.add(b2, f32x4.mul(t, v));
      t = v128.load(x3 + kx); a3 = f32x4.add(a3, f32x4.mul(t, u)); b3 = f32x4.add(b3, f32x4.mul(t, v));
      u = f32x4.mul(q8cvt(qa, q8m1()), c0); v = f32x4.mul(q8cvt(qb, q8m1()), c1);
      t = v128.load(x0 + kx, 16); a0 = f32x4.add(a0, f32x4.mul(t, u)); b0 = f32x4.add(b0, f32x4.mul(t, v));
      t = v128.load(x1 + kx, 16); a1 = f32x4.add(a1, f32x4.mul(t, u)); b1 = f32x4.add(b1, f32x4.mul(t, v));
      t = v128.load(x2 + kx, 16); a2 = f32x4.add(a2, f32x4.mul(t, u)); b2 = f32x4.add(b2, f32x4.mul(t, v));
      t = v128.load(x3 + kx, 16); a3 = f32x4.add(a3, f32x4.mul(t, u)); b3 = f32x4.add(b3, f32x4.mul(t, v));
      u = f32x4.mul(q8cvt(qa, q8m2()), c0); v = f32x4.mul(q8cvt(qb, q8m2()), c1);
      t = v128.load(x0 + kx, 32); a0 = f32x4.add(a0, f32x4.mul(t, u)); b0 = f32x4.add(b0, f32x4.mul(t, v));
      t = v128.load(x1 + kx, 32); a1 = f32x4.add(a1, f32x4.mul(t, u)); b1 = f32x4.add(b1, f32x4.mul(t, v));
      t = v128.load(x2 + kx, 32); a2 = f32x4.add(a2, f32x4.mul(t, u)); b2 = f32x4.add(b2, f32x4.mul(t, v));
      t = v128.load(x3 + kx, 32); a3 = f32x4.add(a3, f32x4.mul(t, u)); b3 = f32x4.add(b3, f32x4.mul(t, v));
      u = f32x4.mul(q8cvt(qa, q8m3()), c0); v = f32x4.mul(q8cvt(qb, q8m3()), c1);
      t = v128.load(x0 + kx, 48); a0 = f32x4.add(a0, f32x4.mul(t, u)); b0 = f32x4.add(b0, f32x4.mul(t, v));
      t = v128.load(x1 + kx, 48); a1 = f32x4.add(a1, f32x4.mul(t, u)); b1 = f32x4.add(b1, f32x4.mul(t, v));
      t = v128.load(x2 + kx, 48); a2 = f32x4.add(a2, f32x4.mul(t, u)); b2 = f32x4.add(b2, f32x4.mul(t, v));
      t = v128.load(x3 + kx, 48); a3 = f32x4.add(a3, f32x4.mul(t, u)); b3 = f32x4.add(b3, f32x4.mul(t, v));
    }
  }
  const us = f32x4.splat(Q8_UNSCALE);
  const r01 = f32x4.mul(hsum4(a0, b0, a1, b1), us), r23 = f32x4.mul(hsum4(a2, b2, a3, b3), us);
  store2(y0, bias, j, r01);
  store2(y0 + yrowB, bias, j, v128.shuffle<f32>(r01, r01, 2, 3, 2, 3));
  store2(y0 + 2 * yrowB, bias, j, r23);
  store2(y0 + 3 * yrowB, bias, j, v128.shuffle<f32>(r23, r23, 2, 3, 2, 3));
}

/** y[:, n0:n1] = x · Wᵀ (+ bias); W q8: qs int8 [N, K], scales f32 [N, K/32]. K must be a multiple of 32. */
export function linear_q8(x: usize, qs: usize, scales: usize, bias: usize, y: usize,
                          M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (n1 <= n0 || M <= 0) return;
  const qrowB = <usize>K, srowB = <usize>K >> 3;
  const qpB = qrowB << 2, spB = srowB << 2; // a panel of 4 rows
  const xrowB = <usize>K << 2, yrowB = <usize>N << 2;
  if (M == 1) {
    let j = n0;
    for (; j + 4 <= n1; j += 4) {
      const qj = qs + <usize>j * qrowB, sj = scales + <usize>j * srowB;
      const more = j + 8 <= n1;
      store4(y, bias, j, q8dot1x4(x, qj, sj, K, more ? qj + qpB : qj, more ? sj + spB : sj));
    }
    for (; j < n1; j++) store1(y, bias, j, q8dot1x1(x, qs + <usize>j * qrowB, scales + <usize>j * srowB, K));
    return;
  }
  // rows of x per pass over a panel: that chunk of x stays within ~256 KiB (L2)
  const MC = max(((64 * 1024) / max(K, 1)) & ~3, 4);
  for (let i0 = 0; i0 < M; i0 += MC) {
    const i1 = min(M, i0 + MC);
    let j = n0;
    for (; j + 4 <= n1; j += 4) {
      const qj = qs + <usize>j * qrowB, sj = scales + <usize>j * srowB;
      const more = j + 8 <= n1;
      const qchunk = pfChunk(qpB, (i1 - i0) >> 2), schunk = pfChunk(spB, (i1 - i0) >> 2);
      let i = i0;
      for (; i + 4 <= i1; i += 4) {
        if (more) {
          touchPart(qj + qpB, qpB, qchunk, (i - i0) >> 2);
          touchPart(sj + spB, spB, schunk, (i - i0) >> 2);
        }
        const xi = x + <usize>i * xrowB, yi = y + <usize>i * yrowB;
        q8tile4x2(xi, xrowB, qj, sj, K, yi, yrowB, bias, j);
        q8tile4x2(xi, xrowB, qj + 2 * qrowB, sj + 2 * srowB, K, yi, yrowB, bias, j + 2);
      }
      for (; i < i1; i++) {
        const pfq: usize = more && i == i0 ? qj + qpB : 0;
        store4(y + <usize>i * yrowB, bias, j, q8dot1x4(x + <usize>i * xrowB, qj, sj, K, pfq, sj + spB));
      }
    }
    for (; j < n1; j++) {
      const qj = qs + <usize>j * qrowB, sj = scales + <usize>j * srowB;
      for (let i = i0; i < i1; i++) store1(y + <usize>i * yrowB, bias, j, q8dot1x1(x + <usize>i * xrowB, qj, sj, K));
    }
  }
}

/**
 * Quantizes rows [n0, n1) of the f32 matrix w [N, K] to q8 (qs int8 [N, K], scales f32 [N, K/32]): per block of 32,
 * scale = max|w| / 127 and q = round(w / scale) (ties to even), so |q · scale - w| ≤ scale / 2; a block of zeros gets
 * scale 0 and q = 0. K must be a multiple of 32. (N is not needed: rows are addressed by n0, n1.)
 */
export function quantize_q8(w: usize, qs: usize, scales: usize, N: i32, K: i32, n0: i32, n1: i32): void {
  const nb = <usize>K >> 5;
  for (let j = n0; j < n1; j++) {
    for (let b: usize = 0; b < nb; b++) {
      const blk = <usize>j * nb + b;
      const wp = w + (blk << 7), qp = qs + (blk << 5);
      const v0 = v128.load(wp), v1 = v128.load(wp, 16), v2 = v128.load(wp, 32), v3 = v128.load(wp, 48);
      const v4 = v128.load(wp, 64), v5 = v128.load(wp, 80), v6 = v128.load(wp, 96), v7 = v128.load(wp, 112);
      let m = f32x4.max(f32x4.max(f32x4.max(f32x4.abs(v0), f32x4.abs(v1)), f32x4.max(f32x4.abs(v2), f32x4.abs(v3))),
                        f32x4.max(f32x4.max(f32x4.abs(v4), f32x4.abs(v5)), f32x4.max(f32x4.abs(v6), f32x4.abs(v7))));
      m = f32x4.max(m, v128.shuffle<f32>(m, m, 2, 3, 0, 1));
      const amax = max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1));
      const scale: f32 = amax / 127;
      store<f32>(scales + (blk << 2), scale);
      if (scale == 0) {
        v128.store(qp, i8x16.splat(0));
        v128.store(qp, i8x16.splat(0), 16);
        continue;
      }
      const s = f32x4.splat(scale);
      const q01 = i16x8.narrow_i32x4_s(q8round(v0, s), q8round(v1, s));
      const q23 = i16x8.narrow_i32x4_s(q8round(v2, s), q8round(v3, s));
      const q45 = i16x8.narrow_i32x4_s(q8round(v4, s), q8round(v5, s));
      const q67 = i16x8.narrow_i32x4_s(q8round(v6, s), q8round(v7, s));
      v128.store(qp, i8x16.narrow_i16x8_s(q01, q23));
      v128.store(qp, i8x16.narrow_i16x8_s(q45, q67), 16);
    }
  }
}

/** round(v / s) clamped to [-127, 127], as i32x4 */
// @ts-ignore: decorator
@inline function q8round(v: v128, s: v128): v128 {
  const c = f32x4.splat(127);
  return i32x4.trunc_sat_f32x4_s(f32x4.max(f32x4.min(f32x4.nearest(f32x4.div(v, s)), c), f32x4.neg(c)));
}
