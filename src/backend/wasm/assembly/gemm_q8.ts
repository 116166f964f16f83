// The integer GEMM of prefill for q8 weights: y[M, N] = x[M, K] · W[N, K]ᵀ (+ bias[N]), W in our q8 blocks (int8
// [N, K], f32 scales [N, K/32]; K % 32 == 0), the activations quantized per row and block of 32 as llama.cpp's
// Q8_0 does (xs = max|x| / qmax, xq = round-half-even(x / xs), a block of zeros scale 0), and each block's
// Σ w_q · x_q computed exactly in i32, then scaled in f32:
//   y[i, j] = Σ_b f32(S[i, j, b]) · (sw[j, b] · sx[i, b])      (summed in f32 in block order, bias last)
// A team kernel like gemm_blocked (gemm.ts): thread t of T computes columns [n0, n1) (a slice aligned to NR).
//
// Two inner products (`mode`):
//   0: portable SIMD: i32x4.dot_i16x8_s (pmaddwd) on operands widened to i16 while packing; x_q up to 14 bits
//      (qmax ≤ 8191: a block sum |S| ≤ 32 · 127 · 8191 < 2^25 fits i32; to 4095 it is also exact in f32).
//      W packed per pair of k: [k-pair][NR columns][2 × i16] (32 bytes); x per pair: [MR rows][2 × i16] (16 bytes),
//      each row's pair broadcast (one 32-bit splat load) against two vectors of W: 8 products per instruction.
//   1: relaxed SIMD (the relaxed build only): i32x4.relaxed_dot_i8x16_i7x16_add_s (AVX-VNNI vpdpbusd, else
//      pmaddubsw + pmaddwd + paddd; ARM sdot): 16 products and the accumulation in one instruction. Its second
//      operand must lie in [0, 127] for the result to be defined the same everywhere (x64 reads it unsigned), so x_q is
//      quantized to qmax ≤ 63 and biased by +64 (u = x_q + 64 in [1, 127]); the bias is taken back out exactly by
//      starting each block's accumulators at −64 · Σ_k w_q[j, k] (computed while packing W). The products are then
//      exact on every implementation: pmaddubsw's i16 pair sums stay ≤ 2 · 127 · 127 (no saturation).
//      W packed per quad of k: [k-quad][NR columns][4 × i8] (32 bytes); x per quad: [MR rows][4 × u8].
//   In the plain build mode 1 runs mode 0 (gemm_q8_modes() says which exist). Mode 1 and mode 0 at the same qmax give
//   the same bits. Node 20's V8 (11.3, relaxed SIMD behind a flag) miscompiles the relaxed dot in its baseline tier
//   (Liftoff gives vpmaddubsw the accumulator's register as destination where its allocator picks it: 2 · dot instead
//   of acc + dot, the 4th row of every tile here; TurboFan exact), so the backend runs mode 0 there (platform.ts).
//   What V8 emits decides the speed: V8 11.3 on x64 lowers it to pmaddubsw + pmaddwd + paddd (as fast per product
//   as mode 0 here); Chromium 156 ran it at 2.4x mode 0's rate in the probes (AVX-VNNI's vpdpbusd, presumably).
//
// Blocking as gemm_blocked (KC along K, NC columns, MC rows; packed per call), the tile MR × NR = 4 × 8: 8 i32x4
// accumulators for one block of 32, then converted, scaled and added to the f32 tile in memory (y, or a scratch
// tile at the edges: computed whole on zero-padded operands). Every y[i, j] takes the same operations in the same
// order wherever it lies and however N is split: the same bits for any M, thread count and row subset, and (both
// modes) exactly the emulation in test/backend/wasm-gemm-q8.test.ts.
//
// Scratch: gemm_q8_scratch_bytes() bytes per thread at scratch + t · gemm_q8_scratch_bytes(), 16-byte aligned.

import { sliceHi, sliceLo } from './team';
import { tr0, tr1, tr2, tr3 } from './simd';

const MR = 4;
const NR = 8;
/** K per block (a multiple of 32): a W micro-panel is KC · NR · 2 = 4 KiB (mode 0), an x panel KC · MR · 2 = 2 KiB */
const KC = 256;
/** rows of x per block (a multiple of MR) */
const MC = 80;
/** columns of W per block */
const NC = 512;
const QB = 32;

const B_BYTES: usize = <usize>NC * KC * 2;
/** per NR-column panel and block of 32: the NR weight scales (f32), then (mode 1) the NR corrections (i32) */
const BS_BYTES: usize = <usize>NC * (KC / QB) * 4 * 2;
const A_BYTES: usize = <usize>MC * KC * 2;
/** per MR-row panel and block of 32: the MR activation scales */
const AS_BYTES: usize = <usize>MC * (KC / QB) * 4;
const TILE_BYTES: usize = <usize>MR * NR * 4;

/** bytes of scratch each thread needs */
export function gemm_q8_scratch_bytes(): i32 {
  return <i32>(B_BYTES + BS_BYTES + A_BYTES + AS_BYTES + TILE_BYTES + NR * 4);
}

/** bit 0: mode 0 (portable i16 dot products); bit 1: mode 1 (relaxed i8 dot products, the relaxed build) */
export function gemm_q8_modes(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 3 : 1;
}

// ---------------------------------------------------------------------------------------------------------------
// packing

/**
 * Columns [j0, j1) of W, k in [k0, k0 + kc) (k0, kc multiples of 32), as micro-panels of NR columns: panel p at
 * dst + p · kc · NR · 2 (mode 0: k-pairs; mode 1: k-quads, half of it used), its block scales (and mode 1: block
 * corrections −64 · Σ w_q) at ds + p · (kc / 32) · NR · 8: per block [NR scales][NR corrections]. Columns past j1
 * are zeros (scale 0).
 */
// @ts-ignore: decorator
@inline function packB(mode: i32, w: usize, scales: usize, K: i32, j0: i32, j1: i32, k0: i32, kc: i32, dst: usize, ds: usize): void {
  const nb = kc / QB;
  const panelB = <usize>kc * NR * 2, panelS = <usize>nb * NR * 8;
  const zero = i32x4.splat(0);
  for (let jp = j0; jp < j1; jp += NR) {
    const p = <usize>((jp - j0) / NR);
    const d = dst + p * panelB, dsp = ds + p * panelS;
    for (let h = 0; h < NR; h += 4) {
      const j = jp + h;
      const ok0 = j < j1, ok1 = j + 1 < j1, ok2 = j + 2 < j1, ok3 = j + 3 < j1;
      const r0 = w + <usize>j * <usize>K, r1 = r0 + <usize>K, r2 = r1 + <usize>K, r3 = r2 + <usize>K;
      const srow = <usize>(K / QB) * 4;
      const s0 = scales + <usize>j * srow;
      for (let b = 0; b < nb; b++) {
        const k = <usize>(k0 + b * QB);
        const a0 = ok0 ? v128.load(r0 + k) : zero, a1 = ok0 ? v128.load(r0 + k, 16) : zero;
        const b0 = ok1 ? v128.load(r1 + k) : zero, b1 = ok1 ? v128.load(r1 + k, 16) : zero;
        const c0 = ok2 ? v128.load(r2 + k) : zero, c1 = ok2 ? v128.load(r2 + k, 16) : zero;
        const e0 = ok3 ? v128.load(r3 + k) : zero, e1 = ok3 ? v128.load(r3 + k, 16) : zero;
        const so = (k >> 5) << 2;
        let sc = f32x4.splat(0);
        if (ok0) sc = f32x4.replace_lane(sc, 0, load<f32>(s0 + so));
        if (ok1) sc = f32x4.replace_lane(sc, 1, load<f32>(s0 + srow + so));
        if (ok2) sc = f32x4.replace_lane(sc, 2, load<f32>(s0 + 2 * srow + so));
        if (ok3) sc = f32x4.replace_lane(sc, 3, load<f32>(s0 + 3 * srow + so));
        const sb = dsp + <usize>b * NR * 8 + <usize>h * 4;
        v128.store(sb, sc);
        if (mode == 0) {
          // 4 groups of 8 k (4 pairs each) per row, widened to i16; pair t of group g → k-pair 4g + t
          const o = d + <usize>b * 16 * 32 + <usize>h * 4;
          packPairs(o, i16x8.extend_low_i8x16_s(a0), i16x8.extend_low_i8x16_s(b0), i16x8.extend_low_i8x16_s(c0), i16x8.extend_low_i8x16_s(e0));
          packPairs(o + 4 * 32, i16x8.extend_high_i8x16_s(a0), i16x8.extend_high_i8x16_s(b0), i16x8.extend_high_i8x16_s(c0), i16x8.extend_high_i8x16_s(e0));
          packPairs(o + 8 * 32, i16x8.extend_low_i8x16_s(a1), i16x8.extend_low_i8x16_s(b1), i16x8.extend_low_i8x16_s(c1), i16x8.extend_low_i8x16_s(e1));
          packPairs(o + 12 * 32, i16x8.extend_high_i8x16_s(a1), i16x8.extend_high_i8x16_s(b1), i16x8.extend_high_i8x16_s(c1), i16x8.extend_high_i8x16_s(e1));
        } else {
          // quads of k: 16 bytes of a row = quads 0-3 (32-bit lanes)
          const o = d + <usize>b * 8 * 32 + <usize>h * 4;
          packPairs(o, a0, b0, c0, e0);
          packPairs(o + 4 * 32, a1, b1, c1, e1);
          // −64 · Σ w_q over the block, per column
          const sa = rowSum(a0, a1), sbb = rowSum(b0, b1), scc = rowSum(c0, c1), se = rowSum(e0, e1);
          const sums = i32x4.add(i32x4.add(tr0(sa, sbb, scc, se), tr1(sa, sbb, scc, se)), i32x4.add(tr2(sa, sbb, scc, se), tr3(sa, sbb, scc, se)));
          v128.store(sb, i32x4.mul(sums, i32x4.splat(-64)), NR * 4);
        }
      }
    }
  }
}

/** 4 rows' vectors of 4 32-bit units (k-pairs of i16 or k-quads of i8) → unit t of the 4 rows at o + t · 32 */
// @ts-ignore: decorator
@inline function packPairs(o: usize, a: v128, b: v128, c: v128, d: v128): void {
  v128.store(o, tr0(a, b, c, d));
  v128.store(o, tr1(a, b, c, d), 32);
  v128.store(o, tr2(a, b, c, d), 64);
  v128.store(o, tr3(a, b, c, d), 96);
}

/** the 32 int8 of a and b summed to 4 i32 partial sums */
// @ts-ignore: decorator
@inline function rowSum(a: v128, b: v128): v128 {
  return i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.extadd_pairwise_i8x16_s(a), i16x8.extadd_pairwise_i8x16_s(b)));
}

/**
 * The 32 values of x at p quantized (xs = max|x| / qmax, q = nearest(x · (1 / xs)), 0 where xs = 0): the 4 i32x4 of
 * q in globals q0..q3 (k 0-3, 4-7, …), returns xs
 */
let q0: v128 = i32x4.splat(0), q1: v128 = i32x4.splat(0), q2: v128 = i32x4.splat(0), q3: v128 = i32x4.splat(0);
let q4: v128 = i32x4.splat(0), q5: v128 = i32x4.splat(0), q6: v128 = i32x4.splat(0), q7: v128 = i32x4.splat(0);

// @ts-ignore: decorator
@inline function quantBlock(p: usize, qmax: f32): f32 {
  const v0 = v128.load(p), v1 = v128.load(p, 16), v2 = v128.load(p, 32), v3 = v128.load(p, 48);
  const v4 = v128.load(p, 64), v5 = v128.load(p, 80), v6 = v128.load(p, 96), v7 = v128.load(p, 112);
  let m = f32x4.max(f32x4.max(f32x4.max(f32x4.abs(v0), f32x4.abs(v1)), f32x4.max(f32x4.abs(v2), f32x4.abs(v3))),
                    f32x4.max(f32x4.max(f32x4.abs(v4), f32x4.abs(v5)), f32x4.max(f32x4.abs(v6), f32x4.abs(v7))));
  m = f32x4.max(m, v128.shuffle<f32>(m, m, 2, 3, 0, 1));
  m = f32x4.max(m, v128.shuffle<f32>(m, m, 1, 0, 3, 2));
  const amax = f32x4.extract_lane(m, 0);
  const xs: f32 = amax / qmax;
  const inv = f32x4.splat(xs != 0 ? <f32>1 / xs : 0);
  q0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v0, inv)));
  q1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v1, inv)));
  q2 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v2, inv)));
  q3 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v3, inv)));
  q4 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v4, inv)));
  q5 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v5, inv)));
  q6 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v6, inv)));
  q7 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v7, inv)));
  return xs;
}

/**
 * Rows [i0, i0 + mc) of x, k in [k0, k0 + kc), quantized into micro-panels of MR rows: panel g at dst + g · kc · MR
 * · 2, per k-pair (mode 0) MR × 2 i16, per k-quad (mode 1) MR × 4 u8 (x_q + 64); the rows' block scales at ds + g ·
 * (kc / 32) · MR · 4. Rows past the block are zeros (scale 0).
 */
function packA(mode: i32, qmax: f32, x: usize, K: i32, i0: i32, mc: i32, k0: i32, kc: i32, dst: usize, ds: usize): void {
  const nb = kc / QB;
  const xrowB = <usize>K << 2;
  const panelB = <usize>kc * MR * 2, panelS = <usize>nb * MR * 4;
  const zero = i32x4.splat(0);
  const bias8 = i8x16.splat(64);
  for (let g = 0; g < mc; g += MR) {
    const d = dst + <usize>(g / MR) * panelB, dsg = ds + <usize>(g / MR) * panelS;
    const rows = min(MR, mc - g);
    const p0 = x + <usize>(i0 + g) * xrowB + (<usize>k0 << 2);
    for (let b = 0; b < nb; b++) {
      const pb = p0 + (<usize>b << 7);
      // per row: mode 0 the 4 i16x8 (k 0-7, …, 24-31), mode 1 the 2 u8x16 (k 0-15, 16-31)
      let a0 = zero, a1 = zero, a2 = zero, a3 = zero, b0 = zero, b1 = zero, b2 = zero, b3 = zero;
      let c0 = zero, c1 = zero, c2 = zero, c3 = zero, e0 = zero, e1 = zero, e2 = zero, e3 = zero;
      let sc = f32x4.splat(0);
      for (let r = 0; r < MR; r++) {
        let u0 = zero, u1 = zero, u2 = zero, u3 = zero;
        if (r < rows) {
          sc = f32x4.replace_lane(sc, 0, quantBlock(pb + <usize>r * xrowB, qmax));
          u0 = i16x8.narrow_i32x4_s(q0, q1); u1 = i16x8.narrow_i32x4_s(q2, q3);
          u2 = i16x8.narrow_i32x4_s(q4, q5); u3 = i16x8.narrow_i32x4_s(q6, q7);
        } else sc = f32x4.replace_lane(sc, 0, 0);
        sc = v128.shuffle<f32>(sc, sc, 1, 2, 3, 0); // lane 0 → lane 3 after the 4 rows: row r in lane r
        if (mode != 0) {
          u0 = i8x16.add(i8x16.narrow_i16x8_s(u0, u1), bias8);
          u1 = i8x16.add(i8x16.narrow_i16x8_s(u2, u3), bias8);
        }
        if (r == 0) { a0 = u0; a1 = u1; a2 = u2; a3 = u3; }
        else if (r == 1) { b0 = u0; b1 = u1; b2 = u2; b3 = u3; }
        else if (r == 2) { c0 = u0; c1 = u1; c2 = u2; c3 = u3; }
        else { e0 = u0; e1 = u1; e2 = u2; e3 = u3; }
      }
      v128.store(dsg + <usize>b * MR * 4, sc);
      if (mode == 0) {
        const o = d + <usize>b * 16 * 16;
        packUnits16(o, a0, b0, c0, e0);
        packUnits16(o + 4 * 16, a1, b1, c1, e1);
        packUnits16(o + 8 * 16, a2, b2, c2, e2);
        packUnits16(o + 12 * 16, a3, b3, c3, e3);
      } else {
        const o = d + <usize>b * 8 * 16;
        packUnits16(o, a0, b0, c0, e0);
        packUnits16(o + 4 * 16, a1, b1, c1, e1);
      }
    }
  }
}

// packA2: packA's output, the same bits, with cheaper quantization (what q8GemmKernel 'v2' packs x with: session 29's
// packA spent ~6.7 cycles per value of x, ~10 % of out_proj's time). Per row and block of 32: max |x| on the integer
// bits (|x|'s bits order as its values), and v = x · (1 / xs) rounded to the nearest integer, ties to even, by adding
// 1.5 · 2^23 and taking the integer bits back out — nearest + trunc_sat's result wherever v is finite and |v| < 2^22
// (V8 11.3 emits trunc_sat as 5 instructions, f32x4.max as 8). That holds when max |x| is 0 or a finite value
// ≥ 2^-100 (xs normal, so |v| ≤ qmax · (1 + 2^-21)); a block with a NaN, an infinity or only subnormal values (1 / xs
// may overflow: x · ∞) goes to packA's code, which defines what such a block gives, and so does a group of fewer than
// MR rows. Groups of MR rows are unrolled (no loop over rows, no globals).

const RND_MAGIC: f32 = 12582912.0; // 1.5 · 2^23
const RND_MAGIC_BITS: i32 = 0x4b400000;
const F32_INF_BITS: i32 = 0x7f800000;
/** the bits of 2^-100: from here to +∞ (and at 0) packA2's rounding is packA's */
const FAST_MIN_BITS: i32 = 27 << 23;

/** whether a block whose max |x| has bits `m` may take packA2's rounding: 0, or finite and ≥ 2^-100 */
// @ts-ignore: decorator
@inline function fastBits(m: i32): bool {
  return m == 0 || <u32>(m - FAST_MIN_BITS) < <u32>(F32_INF_BITS - FAST_MIN_BITS);
}

/** max |x| of the 32 values at p as f32 bits (≥ F32_INF_BITS: a NaN or an infinity among them) */
// @ts-ignore: decorator
@inline function absMaxBits(p: usize): i32 {
  const mask = i32x4.splat(0x7fffffff);
  const m0 = i32x4.max_s(v128.and(v128.load(p), mask), v128.and(v128.load(p, 16), mask));
  const m1 = i32x4.max_s(v128.and(v128.load(p, 32), mask), v128.and(v128.load(p, 48), mask));
  const m2 = i32x4.max_s(v128.and(v128.load(p, 64), mask), v128.and(v128.load(p, 80), mask));
  const m3 = i32x4.max_s(v128.and(v128.load(p, 96), mask), v128.and(v128.load(p, 112), mask));
  let m = i32x4.max_s(i32x4.max_s(m0, m1), i32x4.max_s(m2, m3));
  m = i32x4.max_s(m, i32x4.shuffle(m, m, 2, 3, 0, 1));
  m = i32x4.max_s(m, i32x4.shuffle(m, m, 1, 0, 3, 2));
  return i32x4.extract_lane(m, 0);
}

/** the 4 values at p + off times inv, rounded to the nearest integer (ties to even) as i32 (finite, |·| < 2^22) */
// @ts-ignore: decorator
@inline function roundMul(p: usize, off: usize, inv: v128): v128 {
  return i32x4.sub(f32x4.add(f32x4.mul(v128.load(p + off), inv), f32x4.splat(RND_MAGIC)), i32x4.splat(RND_MAGIC_BITS));
}

/** 8 values at p + off quantized (× inv, rounded) to i16 */
// @ts-ignore: decorator
@inline function q16(p: usize, off: usize, inv: v128): v128 {
  return i16x8.narrow_i32x4_s(roundMul(p, off, inv), roundMul(p, off + 16, inv));
}

/** the f32 scale xs = max|x| / qmax of a block whose max |x| has bits `bits` (finite) */
// @ts-ignore: decorator
@inline function blockScale(bits: i32, qmax: f32): f32 {
  return reinterpret<f32>(bits) / qmax;
}

// @ts-ignore: decorator
@inline function invOf(xs: f32): v128 {
  return f32x4.splat(xs != 0 ? <f32>1 / xs : 0);
}

/** packA with packA2's quantization (see above); the same output */
function packA2(mode: i32, qmax: f32, x: usize, K: i32, i0: i32, mc: i32, k0: i32, kc: i32, dst: usize, ds: usize): void {
  const nb = kc / QB;
  const xrowB = <usize>K << 2;
  const panelB = <usize>kc * MR * 2, panelS = <usize>nb * MR * 4;
  const bias8 = i8x16.splat(64);
  for (let g = 0; g < mc; g += MR) {
    const d = dst + <usize>(g / MR) * panelB, dsg = ds + <usize>(g / MR) * panelS;
    if (mc - g < MR) {
      packA(mode, qmax, x, K, i0 + g, mc - g, k0, kc, d, dsg);
      continue;
    }
    const p0 = x + <usize>(i0 + g) * xrowB + (<usize>k0 << 2);
    for (let b = 0; b < nb; b++) {
      const pa = p0 + (<usize>b << 7), pb = pa + xrowB, pc = pb + xrowB, pe = pc + xrowB;
      const ma = absMaxBits(pa), mb = absMaxBits(pb), mcx = absMaxBits(pc), me = absMaxBits(pe);
      if (!(fastBits(ma) && fastBits(mb) && fastBits(mcx) && fastBits(me))) {
        // a NaN, an infinity or a block of subnormals: this block of the 4 rows as packA packs it (into its place)
        packA(mode, qmax, x, K, i0 + g, MR, k0 + b * QB, QB, d + <usize>b * (mode == 0 ? 16 * 16 : 8 * 16), dsg + <usize>b * MR * 4);
        continue;
      }
      const xa = blockScale(ma, qmax), xb = blockScale(mb, qmax), xc = blockScale(mcx, qmax), xe = blockScale(me, qmax);
      let sc = f32x4.splat(xa);
      sc = f32x4.replace_lane(sc, 1, xb);
      sc = f32x4.replace_lane(sc, 2, xc);
      sc = f32x4.replace_lane(sc, 3, xe);
      v128.store(dsg + <usize>b * MR * 4, sc);
      const ia = invOf(xa), ib = invOf(xb), ic = invOf(xc), ie = invOf(xe);
      if (mode == 0) {
        const o = d + <usize>b * 16 * 16;
        packUnits16(o, q16(pa, 0, ia), q16(pb, 0, ib), q16(pc, 0, ic), q16(pe, 0, ie));
        packUnits16(o + 4 * 16, q16(pa, 32, ia), q16(pb, 32, ib), q16(pc, 32, ic), q16(pe, 32, ie));
        packUnits16(o + 8 * 16, q16(pa, 64, ia), q16(pb, 64, ib), q16(pc, 64, ic), q16(pe, 64, ie));
        packUnits16(o + 12 * 16, q16(pa, 96, ia), q16(pb, 96, ib), q16(pc, 96, ic), q16(pe, 96, ie));
      } else {
        const o = d + <usize>b * 8 * 16;
        packUnits16(o,
          i8x16.add(i8x16.narrow_i16x8_s(q16(pa, 0, ia), q16(pa, 32, ia)), bias8), i8x16.add(i8x16.narrow_i16x8_s(q16(pb, 0, ib), q16(pb, 32, ib)), bias8),
          i8x16.add(i8x16.narrow_i16x8_s(q16(pc, 0, ic), q16(pc, 32, ic)), bias8), i8x16.add(i8x16.narrow_i16x8_s(q16(pe, 0, ie), q16(pe, 32, ie)), bias8));
        packUnits16(o + 4 * 16,
          i8x16.add(i8x16.narrow_i16x8_s(q16(pa, 64, ia), q16(pa, 96, ia)), bias8), i8x16.add(i8x16.narrow_i16x8_s(q16(pb, 64, ib), q16(pb, 96, ib)), bias8),
          i8x16.add(i8x16.narrow_i16x8_s(q16(pc, 64, ic), q16(pc, 96, ic)), bias8), i8x16.add(i8x16.narrow_i16x8_s(q16(pe, 64, ie), q16(pe, 96, ie)), bias8));
      }
    }
  }
}

/** 4 rows' vectors of 4 32-bit units → unit t of the 4 rows at o + t · 16 */
// @ts-ignore: decorator
@inline function packUnits16(o: usize, a: v128, b: v128, c: v128, d: v128): void {
  v128.store(o, tr0(a, b, c, d));
  v128.store(o, tr1(a, b, c, d), 16);
  v128.store(o, tr2(a, b, c, d), 32);
  v128.store(o, tr3(a, b, c, d), 48);
}

// ---------------------------------------------------------------------------------------------------------------
// the micro-kernel

/** y row at c (2 f32x4) += f32(acc) · (sw · sx) for the row's two accumulators; fresh: from 0 instead of c */
// @ts-ignore: decorator
@inline function scaleRow(c: usize, fresh: bool, t0: v128, t1: v128, sw0: v128, sw1: v128, sx: v128): void {
  const y0 = fresh ? f32x4.splat(0) : v128.load(c), y1 = fresh ? f32x4.splat(0) : v128.load(c, 16);
  v128.store(c, f32x4.add(y0, f32x4.mul(f32x4.convert_i32x4_s(t0), f32x4.mul(sw0, sx))));
  v128.store(c, f32x4.add(y1, f32x4.mul(f32x4.convert_i32x4_s(t1), f32x4.mul(sw1, sx))), 16);
}

// @ts-ignore: decorator
@inline function biasRow(c: usize, e0: v128, e1: v128): void {
  v128.store(c, f32x4.add(v128.load(c), e0));
  v128.store(c, f32x4.add(v128.load(c, 16), e1), 16);
}

/**
 * The MR × NR tile of y at c (rows crowB apart) (+)= the packed x panel (ap, its scales as) · the packed W panel
 * (bp, its scales and corrections bs) over nb blocks of 32: from zeros (first) or the tile's partial sums; then adds
 * the NR biases at bias (≠ 0).
 */
function micro(mode: i32, ap: usize, as: usize, bp: usize, bs: usize, nb: i32, c: usize, crowB: usize, first: bool, bias: usize): void {
  const c1 = c + crowB, c2 = c1 + crowB, c3 = c2 + crowB;
  let a = ap, w = bp;
  for (let b = 0; b < nb; b++) {
    let t00 = i32x4.splat(0), t01 = i32x4.splat(0), t10 = i32x4.splat(0), t11 = i32x4.splat(0);
    let t20 = i32x4.splat(0), t21 = i32x4.splat(0), t30 = i32x4.splat(0), t31 = i32x4.splat(0);
    const sbp = bs + <usize>b * NR * 8;
    if (ASC_FEATURE_RELAXED_SIMD && mode != 0) {
      // start from the corrections −64 · Σ w_q; 8 quads of k
      t00 = v128.load(sbp, NR * 4); t01 = v128.load(sbp, NR * 4 + 16);
      t10 = t00; t11 = t01; t20 = t00; t21 = t01; t30 = t00; t31 = t01;
      const end = a + 8 * 16;
      for (; a < end; a += 16, w += 32) {
        const w0 = v128.load(w), w1 = v128.load(w, 16);
        let s = v128.load32_splat(a);
        t00 = i32x4.relaxed_dot_i8x16_i7x16_add_s(w0, s, t00); t01 = i32x4.relaxed_dot_i8x16_i7x16_add_s(w1, s, t01);
        s = v128.load32_splat(a, 4);
        t10 = i32x4.relaxed_dot_i8x16_i7x16_add_s(w0, s, t10); t11 = i32x4.relaxed_dot_i8x16_i7x16_add_s(w1, s, t11);
        s = v128.load32_splat(a, 8);
        t20 = i32x4.relaxed_dot_i8x16_i7x16_add_s(w0, s, t20); t21 = i32x4.relaxed_dot_i8x16_i7x16_add_s(w1, s, t21);
        s = v128.load32_splat(a, 12);
        t30 = i32x4.relaxed_dot_i8x16_i7x16_add_s(w0, s, t30); t31 = i32x4.relaxed_dot_i8x16_i7x16_add_s(w1, s, t31);
      }
    } else {
      // 16 pairs of k
      const end = a + 16 * 16;
      for (; a < end; a += 16, w += 32) {
        const w0 = v128.load(w), w1 = v128.load(w, 16);
        let s = v128.load32_splat(a);
        t00 = i32x4.add(t00, i32x4.dot_i16x8_s(s, w0)); t01 = i32x4.add(t01, i32x4.dot_i16x8_s(s, w1));
        s = v128.load32_splat(a, 4);
        t10 = i32x4.add(t10, i32x4.dot_i16x8_s(s, w0)); t11 = i32x4.add(t11, i32x4.dot_i16x8_s(s, w1));
        s = v128.load32_splat(a, 8);
        t20 = i32x4.add(t20, i32x4.dot_i16x8_s(s, w0)); t21 = i32x4.add(t21, i32x4.dot_i16x8_s(s, w1));
        s = v128.load32_splat(a, 12);
        t30 = i32x4.add(t30, i32x4.dot_i16x8_s(s, w0)); t31 = i32x4.add(t31, i32x4.dot_i16x8_s(s, w1));
      }
    }
    const sw0 = v128.load(sbp), sw1 = v128.load(sbp, 16);
    const sxp = as + (<usize>b << 4);
    const fresh = first && b == 0;
    scaleRow(c, fresh, t00, t01, sw0, sw1, v128.load32_splat(sxp));
    scaleRow(c1, fresh, t10, t11, sw0, sw1, v128.load32_splat(sxp, 4));
    scaleRow(c2, fresh, t20, t21, sw0, sw1, v128.load32_splat(sxp, 8));
    scaleRow(c3, fresh, t30, t31, sw0, sw1, v128.load32_splat(sxp, 12));
  }
  if (bias) {
    const e0 = v128.load(bias), e1 = v128.load(bias, 16);
    biasRow(c, e0, e1); biasRow(c1, e0, e1); biasRow(c2, e0, e1); biasRow(c3, e0, e1);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// the driver

/**
 * y = x · Wᵀ (+ bias) as thread t of T (team kernel), W q8 (int8 [N, K], f32 scales [N, K/32]; K % 32 == 0), x
 * quantized per block of 32 to ±qmax: mode 0 (i16 dot products) qmax in [1, 8191], mode 1 (relaxed i8 dot
 * products; mode 0 in the plain build) qmax in [1, 63]. scratch: T · gemm_q8_scratch_bytes() bytes.
 */
export function gemm_q8(mode: i32, qmax: i32, x: usize, w: usize, scales: usize, bias: usize, y: usize, M: i32, K: i32, N: i32,
                        scratch: usize, t: i32, T: i32): void {
  gemmQ8(mode, qmax, x, 0, w, scales, bias, y, M, K, N, scratch, t, T);
}

// x quantized and packed once per product (the driver above packs each block of x again for every NC block of columns
// and in every thread: 7 times per in_proj of mamba2-130m on one thread, ~13 % of its time): gemm_q8_pack_x packs every
// (MC rows, KC) block of x, as packA would, into `xp` (block (ic / MC, pc / KC) at (ic / MC · nKC + pc / KC) ·
// (A_BYTES + AS_BYTES): its panels, then its scales); gemm_q8_prepacked then multiplies from there. The same bits.

/** bytes of gemm_q8_pack_x's output for x [M, K] */
export function gemm_q8_packed_x_bytes(M: i32, K: i32): f64 {
  return <f64>(<i64>gemm_q8_x_blocks(M, K) * <i64>(A_BYTES + AS_BYTES));
}

/** how many (MC rows × KC) blocks gemm_q8_pack_x splits x [M, K] into (the items its callers share among threads) */
export function gemm_q8_x_blocks(M: i32, K: i32): i32 {
  return ((M + MC - 1) / MC) * ((K + KC - 1) / KC);
}

/** blocks [b0, b1) of x [M, K] (block i = rows (i / nKC) · MC…, k (i % nKC) · KC…; nKC = ⌈K / KC⌉) packed into xp */
export function gemm_q8_pack_x(mode: i32, qmax: i32, x: usize, M: i32, K: i32, xp: usize, b0: i32, b1: i32): void {
  packXBlocks(false, mode, qmax, x, M, K, xp, b0, b1);
}

/** gemm_q8_pack_x with packA2's quantization (q8GemmKernel 'v2'): the same output */
export function gemm_q8_pack_x2(mode: i32, qmax: i32, x: usize, M: i32, K: i32, xp: usize, b0: i32, b1: i32): void {
  packXBlocks(true, mode, qmax, x, M, K, xp, b0, b1);
}

/** the block loop of gemm_q8_pack_x (packA) and gemm_q8_pack_x2 (`v2`: packA2) */
function packXBlocks(v2: bool, mode: i32, qmax: i32, x: usize, M: i32, K: i32, xp: usize, b0: i32, b1: i32): void {
  if (!ASC_FEATURE_RELAXED_SIMD) mode = 0;
  const nKC = (K + KC - 1) / KC;
  for (let i = b0; i < b1; i++) {
    const ic = (i / nKC) * MC, pc = (i % nKC) * KC;
    const dst = xp + <usize>i * (A_BYTES + AS_BYTES);
    if (v2) packA2(mode, <f32>qmax, x, K, ic, min(MC, M - ic), pc, min(KC, K - pc), dst, dst + A_BYTES);
    else packA(mode, <f32>qmax, x, K, ic, min(MC, M - ic), pc, min(KC, K - pc), dst, dst + A_BYTES);
  }
}

/** gemm_q8 on x packed by gemm_q8_pack_x (same mode and qmax) at xp; scratch as gemm_q8's */
export function gemm_q8_prepacked(mode: i32, qmax: i32, xp: usize, w: usize, scales: usize, bias: usize, y: usize, M: i32, K: i32, N: i32,
                                  scratch: usize, t: i32, T: i32): void {
  gemmQ8(mode, qmax, 0, xp, w, scales, bias, y, M, K, N, scratch, t, T);
}

/** the driver: x packed here per block (xp = 0), or read packed from xp */
// @ts-ignore: decorator
@inline function gemmQ8(mode: i32, qmax: i32, x: usize, xp: usize, w: usize, scales: usize, bias: usize, y: usize, M: i32, K: i32, N: i32,
                        scratch: usize, t: i32, T: i32): void {
  if (!ASC_FEATURE_RELAXED_SIMD) mode = 0;
  const nKC = (K + KC - 1) / KC;
  const n0 = sliceLo(t, T, N, NR), n1 = sliceHi(t, T, N, NR);
  if (n1 <= n0 || M <= 0) return;
  const qm = <f32>qmax;
  const base = scratch + <usize>t * <usize>gemm_q8_scratch_bytes();
  const Bp = base, Bs = Bp + B_BYTES, Apack = Bs + BS_BYTES, Aspack = Apack + A_BYTES, tile = Aspack + AS_BYTES, btile = tile + TILE_BYTES;
  const yrowB = <usize>N << 2;
  for (let jc = n0; jc < n1; jc += NC) {
    const jn = min(n1, jc + NC);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc), nb = kc / QB;
      const first = pc == 0, last = pc + kc >= K;
      packB(mode, w, scales, K, jc, jn, pc, kc, Bp, Bs);
      for (let ic = 0; ic < M; ic += MC) {
        const mc = min(MC, M - ic);
        let Ap = Apack, As = Aspack;
        if (xp) {
          Ap = xp + <usize>((ic / MC) * nKC + pc / KC) * (A_BYTES + AS_BYTES);
          As = Ap + A_BYTES;
        } else packA(mode, qm, x, K, ic, mc, pc, kc, Ap, As);
        for (let jr = jc; jr < jn; jr += NR) {
          const pj = <usize>((jr - jc) / NR);
          const bp = Bp + pj * <usize>kc * NR * 2, bs = Bs + pj * <usize>nb * NR * 8;
          const nr = min(NR, jn - jr);
          let bb: usize = 0;
          if (last && bias) {
            if (nr == NR) bb = bias + (<usize>jr << 2);
            else {
              for (let r = 0; r < NR; r++) store<f32>(btile + <usize>r * 4, r < nr ? load<f32>(bias + (<usize>(jr + r) << 2)) : 0);
              bb = btile;
            }
          }
          for (let ir = 0; ir < mc; ir += MR) {
            const pi = <usize>(ir / MR);
            const ap = Ap + pi * <usize>kc * MR * 2, as = As + pi * <usize>nb * MR * 4;
            const mr = min(MR, mc - ir);
            const c = y + <usize>(ic + ir) * yrowB + (<usize>jr << 2);
            if (mr == MR && nr == NR) {
              micro(mode, ap, as, bp, bs, nb, c, yrowB, first, bb);
            } else {
              // an edge tile: computed whole in the scratch tile, the valid part copied in and out
              if (!first) {
                for (let i = 0; i < mr; i++) for (let r = 0; r < nr; r++) {
                  store<f32>(tile + <usize>(i * NR + r) * 4, load<f32>(c + <usize>i * yrowB + (<usize>r << 2)));
                }
              }
              micro(mode, ap, as, bp, bs, nb, tile, NR * 4, first, bb);
              for (let i = 0; i < mr; i++) for (let r = 0; r < nr; r++) {
                store<f32>(c + <usize>i * yrowB + (<usize>r << 2), load<f32>(tile + <usize>(i * NR + r) * 4));
              }
            }
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// arithmetic probes (bench/wasm-gemm.bench.ts): `iters` iterations of 12 independent i32x4 accumulator chains

/** 12 × (acc += dot_i16x8_s(c, acc)) per iteration: 96 multiply-adds (192 ops); 12 chains of latency ~4 cover the throughput */
export function peak_dot16(iters: i32, out: usize): void {
  const c = i16x8.splat(3);
  let a0 = i32x4.splat(1), a1 = i32x4.splat(2), a2 = i32x4.splat(3), a3 = i32x4.splat(4);
  let a4 = i32x4.splat(5), a5 = i32x4.splat(6), a6 = i32x4.splat(7), a7 = i32x4.splat(8);
  let a8 = i32x4.splat(9), a9 = i32x4.splat(10), a10 = i32x4.splat(11), a11 = i32x4.splat(12);
  for (let i = 0; i < iters; i++) {
    a0 = i32x4.add(a0, i32x4.dot_i16x8_s(c, a0)); a1 = i32x4.add(a1, i32x4.dot_i16x8_s(c, a1));
    a2 = i32x4.add(a2, i32x4.dot_i16x8_s(c, a2)); a3 = i32x4.add(a3, i32x4.dot_i16x8_s(c, a3));
    a4 = i32x4.add(a4, i32x4.dot_i16x8_s(c, a4)); a5 = i32x4.add(a5, i32x4.dot_i16x8_s(c, a5));
    a6 = i32x4.add(a6, i32x4.dot_i16x8_s(c, a6)); a7 = i32x4.add(a7, i32x4.dot_i16x8_s(c, a7));
    a8 = i32x4.add(a8, i32x4.dot_i16x8_s(c, a8)); a9 = i32x4.add(a9, i32x4.dot_i16x8_s(c, a9));
    a10 = i32x4.add(a10, i32x4.dot_i16x8_s(c, a10)); a11 = i32x4.add(a11, i32x4.dot_i16x8_s(c, a11));
  }
  v128.store(out, i32x4.add(i32x4.add(i32x4.add(i32x4.add(a0, a1), i32x4.add(a2, a3)), i32x4.add(i32x4.add(a4, a5), i32x4.add(a6, a7))),
                            i32x4.add(i32x4.add(a8, a9), i32x4.add(a10, a11))));
}

/**
 * 12 × (acc = dot_i16x8_s(acc, c)) per iteration: 96 multiply-adds (192 ops) with no add — the multiply pipes alone
 * (12 chains of pmaddwd's latency 3 cover 2 per cycle); peak_dot16 ÷ this is what the add beside each dot costs
 */
export function peak_dot16_only(iters: i32, out: usize): void {
  const c = i16x8.splat(1);
  let a0 = i32x4.splat(1), a1 = i32x4.splat(2), a2 = i32x4.splat(3), a3 = i32x4.splat(4);
  let a4 = i32x4.splat(5), a5 = i32x4.splat(6), a6 = i32x4.splat(7), a7 = i32x4.splat(8);
  let a8 = i32x4.splat(9), a9 = i32x4.splat(10), a10 = i32x4.splat(11), a11 = i32x4.splat(12);
  for (let i = 0; i < iters; i++) {
    a0 = i32x4.dot_i16x8_s(a0, c); a1 = i32x4.dot_i16x8_s(a1, c); a2 = i32x4.dot_i16x8_s(a2, c); a3 = i32x4.dot_i16x8_s(a3, c);
    a4 = i32x4.dot_i16x8_s(a4, c); a5 = i32x4.dot_i16x8_s(a5, c); a6 = i32x4.dot_i16x8_s(a6, c); a7 = i32x4.dot_i16x8_s(a7, c);
    a8 = i32x4.dot_i16x8_s(a8, c); a9 = i32x4.dot_i16x8_s(a9, c); a10 = i32x4.dot_i16x8_s(a10, c); a11 = i32x4.dot_i16x8_s(a11, c);
  }
  v128.store(out, i32x4.add(i32x4.add(i32x4.add(i32x4.add(a0, a1), i32x4.add(a2, a3)), i32x4.add(i32x4.add(a4, a5), i32x4.add(a6, a7))),
                            i32x4.add(i32x4.add(a8, a9), i32x4.add(a10, a11))));
}

/** 12 × relaxed_dot_i8x16_i7x16_add_s per iteration: 192 multiply-adds (384 ops); the plain build: nothing (0) */
export function peak_dot8(iters: i32, out: usize): void {
  if (!ASC_FEATURE_RELAXED_SIMD) {
    v128.store(out, i32x4.splat(0));
    return;
  }
  const c = i8x16.splat(3), d = i8x16.splat(5);
  let a0 = i32x4.splat(1), a1 = i32x4.splat(2), a2 = i32x4.splat(3), a3 = i32x4.splat(4);
  let a4 = i32x4.splat(5), a5 = i32x4.splat(6), a6 = i32x4.splat(7), a7 = i32x4.splat(8);
  let a8 = i32x4.splat(9), a9 = i32x4.splat(10), a10 = i32x4.splat(11), a11 = i32x4.splat(12);
  for (let i = 0; i < iters; i++) {
    a0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c, d, a0); a1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c, d, a1);
    a2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c, d, a2); a3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c, d, a3);
    a4 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c, d, a4); a5 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c, d, a5);
    a6 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c, d, a6); a7 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c, d, a7);
    a8 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c, d, a8); a9 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c, d, a9);
    a10 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c, d, a10); a11 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c, d, a11);
  }
  v128.store(out, i32x4.add(i32x4.add(i32x4.add(i32x4.add(a0, a1), i32x4.add(a2, a3)), i32x4.add(i32x4.add(a4, a5), i32x4.add(a6, a7))),
                            i32x4.add(i32x4.add(a8, a9), i32x4.add(a10, a11))));
}
