// The blocked GEMM of prefill: y[M, N] = x[M, K] · W[N, K]ᵀ (+ bias[N]) for many rows of x (M ≥ ~16), W stored in
// any of the linear formats (f32, bf16, f16, q8). A team kernel (team.ts): thread t of T computes columns
// [n0, n1) of y (a slice aligned to NR), and no two threads write the same column.
//
// The GotoBLAS / BLIS scheme with 128-bit vectors:
//   for each block of NC columns of the slice, each block of KC along K:
//     pack that W block into micro-panels of NR columns, k-major ([kc][NR] f32; bf16/f16/q8 converted exactly here,
//       so every format runs the same f32 product on exactly the weights the matrix stands for); ~NC·KC·4 bytes (L2)
//     for each block of MC rows of x: pack it into micro-panels of MR rows, k-major ([kc][MR]; L2)
//       for each micro-panel of W (L1, reused by every row micro-panel), each micro-panel of x:
//         the micro-kernel: an MR × NR tile of y in 8 registers (4 rows × 2 f32x4); per k one broadcast of x per
//         row (a load that fills the vector) and two vector loads of W, 8 multiplies and 8 adds.
//   Operands are packed per call (not once at load): packing costs O(N·K + M·K·N/NC) against O(M·N·K) of
//   products (< 1 % at M = 512), and the weights keep their row-major layout for the matrix-vector product of
//   decode and for the TypeScript code that reads them.
// Each y[i, j] is summed strictly in k order, y = ((0 + x0·w0) + x1·w1) + …, the partial sums of a K block
// stored to y and loaded back for the next (exact), the bias added last. Tiles at the edges (M, N not multiples of
// MR, NR) are computed whole on zero-padded operands in a scratch tile, of which the valid part is copied, so every
// element takes the same operations in the same order wherever it lies: the result is the same bits for any M, any
// split of N among threads and any K blocking.
//
// Scratch: gemm_scratch_bytes() bytes per thread at scratch + t · gemm_scratch_bytes(), 16-byte aligned.

import { sliceHi, sliceLo } from './team';
import { w4, wScalar } from './weights';
import { madd, tr0, tr1, tr2, tr3 } from './simd';

const MR = 5;
const NR = 8;
/** floats per k in a packed x micro-panel: the MR rows, then zeros up to 8 (32 bytes: aligned loads) */
const AS = 8;
/** K per block: a micro-panel of W is KC · NR · 4 = 8 KiB, of x KC · AS · 4 = 8 KiB (L1) */
const KC = 256;
/** rows of x per block (a multiple of MR): MC / MR · KC · AS · 4 = 128 KiB (L2) */
const MC = 80;
/** columns of W per block: NC · KC · 4 = 512 KiB (L2/L3) */
const NC = 512;

const B_BYTES: usize = <usize>NC * KC * 4;
const A_BYTES: usize = <usize>(MC / MR) * KC * AS * 4;
const TILE_BYTES: usize = <usize>MR * NR * 4;

/** bytes of scratch each thread needs */
export function gemm_scratch_bytes(): i32 {
  return <i32>(B_BYTES + A_BYTES + TILE_BYTES + NR * 4);
}

// ---------------------------------------------------------------------------------------------------------------
// packing

/** W[j, k..k+3] as f32 (exact); W = f32, u16 (bf16), i16 (f16) or i8 (q8: scales f32 [N, K/32], k % 4 == 0) */
// @ts-ignore: decorator
@inline function wrow4<W>(w: usize, scales: usize, K: i32, j: i32, k: i32): v128 {
  const e = <usize>j * <usize>K + <usize>k;
  if (sizeof<W>() == 1) {
    const q = i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(v128.load32_zero(w + e)));
    return f32x4.mul(f32x4.convert_i32x4_s(q), v128.load32_splat(scales + ((e >> 5) << 2)));
  }
  return w4<W>(w + e * sizeof<W>());
}

/** W[j, k] as f32 (exact) */
// @ts-ignore: decorator
@inline function wrow1<W>(w: usize, scales: usize, K: i32, j: i32, k: i32): f32 {
  const e = <usize>j * <usize>K + <usize>k;
  if (sizeof<W>() == 1) return <f32>load<i8>(w + e) * load<f32>(scales + ((e >> 5) << 2));
  return wScalar<W>(w + e * sizeof<W>());
}

/**
 * Columns [j0, j1) of W (rows of the stored matrix), k in [k0, k0 + kc), as micro-panels of NR columns at dst:
 * panel p at dst + p · kc · NR · 4, element (k, r) at + (k − k0) · NR · 4 + r · 4; columns past j1 are zeros.
 */
// @ts-ignore: decorator
@inline function packB<W>(w: usize, scales: usize, K: i32, j0: i32, j1: i32, k0: i32, kc: i32, dst: usize): void {
  const panelB = <usize>kc * NR * 4;
  for (let jp = j0; jp < j1; jp += NR) {
    const d = dst + <usize>((jp - j0) / NR) * panelB;
    for (let r4 = 0; r4 < NR; r4 += 4) {
      const j = jp + r4;
      const dr = d + <usize>r4 * 4;
      if (j + 4 <= j1 && (sizeof<W>() != 1 || (k0 & 31) == 0)) {
        let k = 0;
        for (; k + 4 <= kc; k += 4) {
          const a = wrow4<W>(w, scales, K, j, k0 + k), b = wrow4<W>(w, scales, K, j + 1, k0 + k);
          const c = wrow4<W>(w, scales, K, j + 2, k0 + k), e = wrow4<W>(w, scales, K, j + 3, k0 + k);
          const o = dr + <usize>k * NR * 4;
          v128.store(o, tr0(a, b, c, e));
          v128.store(o, tr1(a, b, c, e), NR * 4);
          v128.store(o, tr2(a, b, c, e), 2 * NR * 4);
          v128.store(o, tr3(a, b, c, e), 3 * NR * 4);
        }
        for (; k < kc; k++) {
          const o = dr + <usize>k * NR * 4;
          for (let r = 0; r < 4; r++) store<f32>(o + <usize>r * 4, wrow1<W>(w, scales, K, j + r, k0 + k));
        }
      } else {
        for (let k = 0; k < kc; k++) {
          const o = dr + <usize>k * NR * 4;
          for (let r = 0; r < 4; r++) store<f32>(o + <usize>r * 4, j + r < j1 ? wrow1<W>(w, scales, K, j + r, k0 + k) : 0);
        }
      }
    }
  }
}

/**
 * Rows [i0, i0 + mc) of x, k in [k0, k0 + kc), as micro-panels of MR rows at dst: panel g at dst + g · kc · AS · 4,
 * element (k, r) at + (k − k0) · AS · 4 + r · 4; rows past the block and lanes MR..AS−1 are zeros.
 */
function packA(x: usize, K: i32, i0: i32, mc: i32, k0: i32, kc: i32, dst: usize): void {
  const xrowB = <usize>K << 2;
  const panelB = <usize>kc * AS * 4;
  const zero = f32x4.splat(0);
  for (let g = 0; g < mc; g += MR) {
    const d = dst + <usize>(g / MR) * panelB;
    const p = x + <usize>(i0 + g) * xrowB + (<usize>k0 << 2);
    const rows = min(MR, mc - g);
    if (rows == MR) {
      // rows 0-3 by 4 × 4 transposes, row 4 one value per k
      let k = 0;
      for (; k + 4 <= kc; k += 4) {
        const q = p + (<usize>k << 2);
        const a = v128.load(q), b = v128.load(q + xrowB), c = v128.load(q + 2 * xrowB), e = v128.load(q + 3 * xrowB);
        const f = v128.load(q + 4 * xrowB);
        const o = d + <usize>k * AS * 4;
        v128.store(o, tr0(a, b, c, e));
        v128.store(o, f32x4.replace_lane(zero, 0, f32x4.extract_lane(f, 0)), 16);
        v128.store(o, tr1(a, b, c, e), AS * 4);
        v128.store(o, f32x4.replace_lane(zero, 0, f32x4.extract_lane(f, 1)), AS * 4 + 16);
        v128.store(o, tr2(a, b, c, e), 2 * AS * 4);
        v128.store(o, f32x4.replace_lane(zero, 0, f32x4.extract_lane(f, 2)), 2 * AS * 4 + 16);
        v128.store(o, tr3(a, b, c, e), 3 * AS * 4);
        v128.store(o, f32x4.replace_lane(zero, 0, f32x4.extract_lane(f, 3)), 3 * AS * 4 + 16);
      }
      for (; k < kc; k++) {
        const q = p + (<usize>k << 2), o = d + <usize>k * AS * 4;
        v128.store(o, zero, 16);
        for (let r = 0; r < MR; r++) store<f32>(o + <usize>r * 4, load<f32>(q + <usize>r * xrowB));
      }
    } else {
      for (let k = 0; k < kc; k++) {
        const q = p + (<usize>k << 2), o = d + <usize>k * AS * 4;
        v128.store(o, zero);
        v128.store(o, zero, 16);
        for (let r = 0; r < rows; r++) store<f32>(o + <usize>r * 4, load<f32>(q + <usize>r * xrowB));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// the micro-kernel

/** 1 when this module was built with relaxed SIMD (the fused multiply-adds of gemm_blocked), else 0 */
export function gemm_fused(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}

/**
 * Arithmetic probe (bench/wasm-gemm.bench.ts): `iters` iterations of 12 independent chains acc = madd(acc, c, d)
 * (96 flops per iteration: fused multiply-adds in the relaxed build, else a multiply and an add); the sum lands at out.
 */
export function peak_madd(iters: i32, out: usize): void {
  const c = f32x4.splat(0.999), d = f32x4.splat(0.001);
  let a0 = f32x4.splat(0.1), a1 = f32x4.splat(0.2), a2 = f32x4.splat(0.3), a3 = f32x4.splat(0.4);
  let a4 = f32x4.splat(0.5), a5 = f32x4.splat(0.6), a6 = f32x4.splat(0.7), a7 = f32x4.splat(0.8);
  let a8 = f32x4.splat(0.9), a9 = f32x4.splat(1.0), a10 = f32x4.splat(1.1), a11 = f32x4.splat(1.2);
  for (let i = 0; i < iters; i++) {
    a0 = madd(a0, c, d); a1 = madd(a1, c, d); a2 = madd(a2, c, d); a3 = madd(a3, c, d);
    a4 = madd(a4, c, d); a5 = madd(a5, c, d); a6 = madd(a6, c, d); a7 = madd(a7, c, d);
    a8 = madd(a8, c, d); a9 = madd(a9, c, d); a10 = madd(a10, c, d); a11 = madd(a11, c, d);
  }
  v128.store(out, f32x4.add(f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7))),
                            f32x4.add(f32x4.add(a8, a9), f32x4.add(a10, a11))));
}

/**
 * The MR × NR tile of y at c (rows crowB bytes apart) (+)= the packed x micro-panel ap · the packed W micro-panel bp
 * over kc steps of k: starts from zeros (first) or from the tile's partial sums; then adds the NR biases at bias
 * (≠ 0) and stores the tile.
 */
function micro(ap: usize, bp: usize, kc: i32, c: usize, crowB: usize, first: bool, bias: usize): void {
  const c1 = c + crowB, c2 = c1 + crowB, c3 = c2 + crowB, c4 = c3 + crowB;
  let y00 = f32x4.splat(0), y01 = f32x4.splat(0), y10 = f32x4.splat(0), y11 = f32x4.splat(0);
  let y20 = f32x4.splat(0), y21 = f32x4.splat(0), y30 = f32x4.splat(0), y31 = f32x4.splat(0);
  let y40 = f32x4.splat(0), y41 = f32x4.splat(0);
  if (!first) {
    y00 = v128.load(c); y01 = v128.load(c, 16);
    y10 = v128.load(c1); y11 = v128.load(c1, 16);
    y20 = v128.load(c2); y21 = v128.load(c2, 16);
    y30 = v128.load(c3); y31 = v128.load(c3, 16);
    y40 = v128.load(c4); y41 = v128.load(c4, 16);
  }
  const end = ap + (<usize>kc << 5); // AS · 4 bytes per k
  for (let a = ap, b = bp; a < end; a += 32, b += 32) {
    const b0 = v128.load(b), b1 = v128.load(b, 16);
    const lo = v128.load(a);
    let s = v128.shuffle<f32>(lo, lo, 0, 0, 0, 0);
    y00 = madd(s, b0, y00); y01 = madd(s, b1, y01);
    s = v128.shuffle<f32>(lo, lo, 1, 1, 1, 1);
    y10 = madd(s, b0, y10); y11 = madd(s, b1, y11);
    s = v128.shuffle<f32>(lo, lo, 2, 2, 2, 2);
    y20 = madd(s, b0, y20); y21 = madd(s, b1, y21);
    s = v128.shuffle<f32>(lo, lo, 3, 3, 3, 3);
    y30 = madd(s, b0, y30); y31 = madd(s, b1, y31);
    s = v128.load32_splat(a, 16);
    y40 = madd(s, b0, y40); y41 = madd(s, b1, y41);
  }
  if (bias) {
    const e0 = v128.load(bias), e1 = v128.load(bias, 16);
    y00 = f32x4.add(y00, e0); y01 = f32x4.add(y01, e1);
    y10 = f32x4.add(y10, e0); y11 = f32x4.add(y11, e1);
    y20 = f32x4.add(y20, e0); y21 = f32x4.add(y21, e1);
    y30 = f32x4.add(y30, e0); y31 = f32x4.add(y31, e1);
    y40 = f32x4.add(y40, e0); y41 = f32x4.add(y41, e1);
  }
  v128.store(c, y00); v128.store(c, y01, 16);
  v128.store(c1, y10); v128.store(c1, y11, 16);
  v128.store(c2, y20); v128.store(c2, y21, 16);
  v128.store(c3, y30); v128.store(c3, y31, 16);
  v128.store(c4, y40); v128.store(c4, y41, 16);
}

// ---------------------------------------------------------------------------------------------------------------
// the driver

// @ts-ignore: decorator
@inline function gemmT<W>(x: usize, xp: usize, w: usize, scales: usize, bias: usize, y: usize, M: i32, K: i32, N: i32,
                          scratch: usize, t: i32, T: i32): void {
  const nKC = (K + KC - 1) / KC;
  const n0 = sliceLo(t, T, N, NR), n1 = sliceHi(t, T, N, NR);
  if (n1 <= n0 || M <= 0) return;
  const base = scratch + <usize>t * <usize>gemm_scratch_bytes();
  const Bp = base, Apack = Bp + B_BYTES, tile = Apack + A_BYTES, btile = tile + TILE_BYTES;
  const yrowB = <usize>N << 2;
  for (let jc = n0; jc < n1; jc += NC) {
    const jn = min(n1, jc + NC);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      const first = pc == 0, last = pc + kc >= K;
      packB<W>(w, scales, K, jc, jn, pc, kc, Bp);
      for (let ic = 0; ic < M; ic += MC) {
        const mc = min(MC, M - ic);
        let Ap = Apack;
        if (xp) Ap = xp + <usize>((ic / MC) * nKC + pc / KC) * A_BYTES; // (packed by gemm_pack_x)
        else packA(x, K, ic, mc, pc, kc, Ap);
        for (let jr = jc; jr < jn; jr += NR) {
          const bp = Bp + <usize>((jr - jc) / NR) * <usize>kc * NR * 4;
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
            const ap = Ap + <usize>(ir / MR) * <usize>kc * AS * 4;
            const mr = min(MR, mc - ir);
            const c = y + <usize>(ic + ir) * yrowB + (<usize>jr << 2);
            if (mr == MR && nr == NR) {
              micro(ap, bp, kc, c, yrowB, first, bb);
            } else {
              // an edge tile: computed whole in the scratch tile, the valid part copied in and out
              if (!first) {
                for (let i = 0; i < mr; i++) for (let r = 0; r < nr; r++) {
                  store<f32>(tile + <usize>(i * NR + r) * 4, load<f32>(c + <usize>i * yrowB + (<usize>r << 2)));
                }
              }
              micro(ap, bp, kc, tile, NR * 4, first, bb);
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

/**
 * y = x · Wᵀ (+ bias) as thread t of T (team kernel), W in format fmt: 0 f32 [N, K], 1 bf16 bits, 2 IEEE binary16,
 * 3 q8 (int8 [N, K] with f32 scales [N, K/32]; K % 32 == 0). scratch: T · gemm_scratch_bytes() bytes.
 */
export function gemm_blocked(x: usize, w: usize, scales: usize, fmt: i32, bias: usize, y: usize, M: i32, K: i32, N: i32,
                             scratch: usize, t: i32, T: i32): void {
  gemmFmt(x, 0, w, scales, fmt, bias, y, M, K, N, scratch, t, T);
}

// x packed once per product: the driver above packs each block of x again for every NC block of columns and in every
// thread (7 times per in_proj of mamba2-130m on one thread; ~2.7 % of its time); gemm_pack_x packs every (MC rows, KC)
// block once, as packA would, at xp + (ic / MC · nKC + pc / KC) · A_BYTES, and gemm_blocked_prepacked multiplies from
// there. The same bits.

/** bytes of gemm_pack_x's output for x [M, K] */
export function gemm_packed_x_bytes(M: i32, K: i32): f64 {
  return <f64>(<i64>((M + MC - 1) / MC) * <i64>((K + KC - 1) / KC) * <i64>A_BYTES);
}

/** blocks [b0, b1) of x [M, K] (block i = rows (i / nKC) · MC…, k (i % nKC) · KC…; nKC = ⌈K / KC⌉) packed into xp */
export function gemm_pack_x(x: usize, M: i32, K: i32, xp: usize, b0: i32, b1: i32): void {
  const nKC = (K + KC - 1) / KC;
  for (let i = b0; i < b1; i++) {
    const ic = (i / nKC) * MC, pc = (i % nKC) * KC;
    packA(x, K, ic, min(MC, M - ic), pc, min(KC, K - pc), xp + <usize>i * A_BYTES);
  }
}

/** gemm_blocked on x packed by gemm_pack_x at xp */
export function gemm_blocked_prepacked(xp: usize, w: usize, scales: usize, fmt: i32, bias: usize, y: usize, M: i32, K: i32, N: i32,
                                       scratch: usize, t: i32, T: i32): void {
  gemmFmt(0, xp, w, scales, fmt, bias, y, M, K, N, scratch, t, T);
}

// @ts-ignore: decorator
@inline function gemmFmt(x: usize, xp: usize, w: usize, scales: usize, fmt: i32, bias: usize, y: usize, M: i32, K: i32, N: i32,
                         scratch: usize, t: i32, T: i32): void {
  if (fmt == 0) gemmT<f32>(x, xp, w, 0, bias, y, M, K, N, scratch, t, T);
  else if (fmt == 1) gemmT<u16>(x, xp, w, 0, bias, y, M, K, N, scratch, t, T);
  else if (fmt == 2) gemmT<i16>(x, xp, w, 0, bias, y, M, K, N, scratch, t, T);
  else gemmT<i8>(x, xp, w, scales, bias, y, M, K, N, scratch, t, T);
}
