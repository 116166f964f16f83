// Mamba-2's SSD as chunked matrix products (the "dual" form: Mamba-2 paper §6; `ssdChunked` in src/ssm/ssd.ts is the
// oracle and has the glossary). One team kernel (team.ts), two phases:
//
//   phase 1  per (batch row, chunk, group), threads split the items:
//              CB = C_c · B_cᵀ  [q, q]          (shared by the group's heads)
//              Bt = B_cᵀ        [N, q]          (the state product's right operand, K-contiguous)
//   ── barrier ──
//   phase 2  per (batch row, head), threads split the items; the chunks of one head in order, its state H [hd, N]
//            carried from chunk to chunk (the inter-chunk recurrence):
//              cum_t = Σ_{k ≤ t} Δ_k A  (inside the chunk, accumulated and differenced in f64)
//              Y = [exp(cum_t) C_t | M_t] · [H | Xᵀ]ᵀ           one product, K = N + q:
//                  M[t, s] = exp(cum_t − cum_s) CB[t, s] Δ_s for s ≤ t, 0 above (+ D on the diagonal), so that
//                  Y_diag (the masked "attention"), Y_off (C · state decayed from the chunk start) and D x come
//                  out of the same register tiles;
//              S = Xwᵀ · Bt ᵀ,  Xw[p, s] = exp(cum_end − cum_s) Δ_s x_s[p]     (the chunk's own state)
//              H ← exp(cum_end) H + S
//
// The products run on linear.ts's f32 tiles (gemm_nt_f32). Decays inside a chunk are exp of a difference of two
// in-chunk cumulative sums, as the official kernels (`_chunk_scan_fwd`) compute them; every exponent is ≤ 0.
//
//   x, y: [batch, L, nh, hd];  dt: [batch, L, nh] processed (> 0);  A, D: [nh] (D or 0);  B, C: [batch, L, G, N]
//   state: [batch, nh, hd, N] read as h_0 and overwritten with the final state, or 0 (h_0 = 0, final state dropped)
//   Q: chunk length;  work: ssd_chunked_work_bytes(...) bytes, 16-byte aligned;  counter: an i32, zeroed

import { gemm_nt_f32, gemm_nt_f32_fma } from './linear';
import { ldc, stc, vexp } from './simd';
import { sliceHi, sliceLo, teamBarrier } from './team';

/** the f32 lanes [a0, a1, b0, b1] of two f64x2 */
// @ts-ignore: decorator
@inline function cat(a: v128, b: v128): v128 {
  return v128.shuffle<f32>(f32x4.demote_f64x2_zero(a), f32x4.demote_f64x2_zero(b), 0, 1, 4, 5);
}

/** rows of the output product per call (see below) */
const RB: i32 = 16;

// @ts-ignore: decorator
@inline function pad4(n: i32): i32 {
  return (n + 3) & ~3;
}

/** bytes of phase 1's shared results (CB and Bt of every chunk) */
// @ts-ignore: decorator
@inline function sharedBytes(batch: i32, L: i32, G: i32, N: i32, Q: i32): usize {
  const nc = (L + Q - 1) / Q;
  const Qp = pad4(Q);
  return (<usize>batch * <usize>nc * <usize>G * (<usize>Qp * <usize>Qp + <usize>N * <usize>Qp)) << 2;
}

/** bytes of one thread's scratch of phase 2 */
// @ts-ignore: decorator
@inline function threadBytes(hd: i32, N: i32, Q: i32): usize {
  const Qp = pad4(Q);
  const S = <usize>(N + Qp);
  // (+ 16: room to align the f64 sums; whole 16-byte blocks)
  return (((<usize>Qp * S + <usize>hd * S + <usize>hd * <usize>Qp + <usize>hd * <usize>N + 5 * <usize>Qp) << 2) + 16 + 15) & ~15;
}

/** the `work` bytes ssd_chunked needs for T threads */
export function ssd_chunked_work_bytes(batch: i32, L: i32, hd: i32, G: i32, N: i32, Q: i32, T: i32): f64 {
  return <f64>(sharedBytes(batch, L, G, N, Q) + <usize>T * threadBytes(hd, N, Q));
}

export function ssd_chunked(
  x: usize, dt: usize, A: usize, B: usize, C: usize, D: usize, state: usize, y: usize, work: usize, counter: usize,
  batch: i32, L: i32, nh: i32, hd: i32, G: i32, N: i32, Q: i32, t: i32, T: i32,
): void {
  ssd_chunked_rows(x, nh * hd, dt, A, B, C, G * N, D, state, y, work, counter, batch, L, nh, hd, G, N, Q, 0, t, T);
}

/**
 * `ssd_chunked` with x's rows (floats per time step, xRow ≥ nh · hd) and B's and C's (bcRow ≥ G · N) strided, e.g.
 * read in place from Mamba-2's convolved in_proj output [batch · L, width]. fma 0: the products on gemm_nt_f32 (the
 * same arithmetic as `ssd_chunked`); 1: on gemm_nt_f32_fma (fused multiply-adds in the relaxed build).
 */
export function ssd_chunked_rows(
  x: usize, xRow: i32, dt: usize, A: usize, B: usize, C: usize, bcRow: i32, D: usize, state: usize, y: usize, work: usize,
  counter: usize, batch: i32, L: i32, nh: i32, hd: i32, G: i32, N: i32, Q: i32, fma: i32, t: i32, T: i32,
): void {
  const nc = (L + Q - 1) / Q;
  const Qp = pad4(Q);
  const GN = <usize>bcRow; // (floats from one time step's B or C to the next)
  const itemB = (<usize>Qp * <usize>Qp + <usize>N * <usize>Qp) << 2; // CB then Bt, per (b, c, g)

  // phase 1: CB and Bt of this thread's (b, c, g)
  const n1 = batch * nc * G;
  for (let i = sliceLo(t, T, n1, 1), e = sliceHi(t, T, n1, 1); i < e; i++) {
    const g = i % G, c = (i / G) % nc, b = i / (G * nc);
    const t0 = c * Q, q = min(Q, L - t0);
    const cb = work + <usize>i * itemB;
    const bt = cb + ((<usize>Qp * <usize>Qp) << 2);
    const rowOff = (((<usize>b * <usize>L + <usize>t0) * GN + <usize>g * <usize>N) << 2);
    if (fma) gemm_nt_f32_fma(C + rowOff, GN << 2, B + rowOff, GN << 2, cb, <usize>Qp << 2, q, N, q);
    else gemm_nt_f32(C + rowOff, GN << 2, B + rowOff, GN << 2, cb, <usize>Qp << 2, q, N, q);
    for (let s = 0; s < q; s++) {
      const bs = B + rowOff + ((<usize>s * GN) << 2);
      for (let n = 0; n < N; n++) store<f32>(bt + ((<usize>n * <usize>Qp + <usize>s) << 2), load<f32>(bs + (<usize>n << 2)));
    }
  }
  teamBarrier(counter, 1, T);

  // phase 2: this thread's (b, head) items
  const S = N + Qp; // row length of the two operands of the output product
  const SB = <usize>S << 2;
  const Ap = work + sharedBytes(batch, L, G, N, Q) + <usize>t * threadBytes(hd, N, Q);
  const Wp = Ap + <usize>Qp * SB; // [hd, S]: H in columns [0, N), Xᵀ of the chunk after it
  const Xw = Wp + <usize>hd * SB; // [hd, Qp]
  const St = Xw + ((<usize>hd * <usize>Qp) << 2); // [hd, N]
  const cum = (St + ((<usize>hd * <usize>N) << 2) + 7) & ~7; // [Qp] f64 (Qp + 1 f32 slots: room to align)
  const dts = cum + (<usize>Qp << 3);
  const ecum = dts + (<usize>Qp << 2);
  const wts = ecum + (<usize>Qp << 2);
  const hpg = nh / G;
  const n2 = batch * nh;
  const HB = <usize>N << 2;
  const yRowB = (<usize>nh * <usize>hd) << 2;
  for (let i = sliceLo(t, T, n2, 1), e = sliceHi(t, T, n2, 1); i < e; i++) {
    const b = i / nh, hh = i % nh, g = hh / hpg;
    const Ah = <f64>load<f32>(A + (<usize>hh << 2));
    const Dh = D ? load<f32>(D + (<usize>hh << 2)) : <f32>0;
    const sh = state ? state + ((<usize>i * <usize>hd * <usize>N) << 2) : 0;
    for (let p = 0; p < hd; p++) {
      const row = Wp + <usize>p * SB;
      if (sh) memory.copy(row, sh + <usize>p * HB, HB);
      else memory.fill(row, 0, HB);
    }
    for (let c = 0; c < nc; c++) {
      const t0 = c * Q, q = min(Q, L - t0);
      const cb = work + (((<usize>b * <usize>nc + <usize>c) * <usize>G + <usize>g) * itemB);
      const bt = cb + ((<usize>Qp * <usize>Qp) << 2);
      const r0 = <usize>b * <usize>L + <usize>t0;
      // Δ and the in-chunk cumulative log-decay
      let acc: f64 = 0;
      for (let s = 0; s < q; s++) {
        const d = load<f32>(dt + (((r0 + <usize>s) * <usize>nh + <usize>hh) << 2));
        store<f32>(dts + (<usize>s << 2), d);
        acc += <f64>d * Ah;
        store<f64>(cum + (<usize>s << 3), acc);
      }
      const lastV = f64x2.splat(acc);
      for (let s = 0; s < q; s += 4) {
        const cs = cum + (<usize>s << 3);
        const cv = cat(v128.load(cs), v128.load(cs, 16)); // (lanes past q: never read)
        stc(ecum + (<usize>s << 2), vexp(cv), min(4, q - s));
        // the weight of x_s in the chunk's state: exp(cum_end − cum_s) Δ_s
        const dec = vexp(cat(f64x2.sub(lastV, v128.load(cs)), f64x2.sub(lastV, v128.load(cs, 16))));
        stc(wts + (<usize>s << 2), f32x4.mul(dec, ldc(dts + (<usize>s << 2), min(4, q - s))), min(4, q - s));
      }
      // the left operand, rows t: [exp(cum_t) C_t | M[t, 0..q)]
      for (let tt = 0; tt < q; tt++) {
        const row = Ap + <usize>tt * SB;
        const cp = C + (((r0 + <usize>tt) * GN + <usize>g * <usize>N) << 2);
        const ev = f32x4.splat(load<f32>(ecum + (<usize>tt << 2)));
        let n = 0;
        for (; n + 4 <= N; n += 4) v128.store(row + (<usize>n << 2), f32x4.mul(v128.load(cp + (<usize>n << 2)), ev));
        for (; n < N; n++) store<f32>(row + (<usize>n << 2), load<f32>(cp + (<usize>n << 2)) * f32x4.extract_lane(ev, 0));
        const mrow = row + HB;
        const cbrow = cb + ((<usize>tt * <usize>Qp) << 2);
        const ct = f64x2.splat(load<f64>(cum + (<usize>tt << 3)));
        const blockEnd = min(q, (tt / RB + 1) * RB); // the columns the row's block of the product reads
        let s = 0;
        for (; s <= tt; s += 4) {
          const so = <usize>s << 2, cs = cum + (<usize>s << 3);
          // exp(cum_t − cum_s), the difference taken in f64 (two long sums of nearly equal size); lanes past tt:
          // never read (zeroed below)
          const dec = vexp(cat(f64x2.sub(ct, v128.load(cs)), f64x2.sub(ct, v128.load(cs, 16))));
          v128.store(mrow + so, f32x4.mul(f32x4.mul(dec, v128.load(cbrow + so)), v128.load(dts + so)));
        }
        for (s = tt + 1; s < blockEnd; s++) store<f32>(mrow + (<usize>s << 2), 0);
        if (D) {
          const dp = mrow + (<usize>tt << 2);
          store<f32>(dp, load<f32>(dp) + Dh);
        }
      }
      // the right operand's Xᵀ part, and Xw for the state: 4×4 blocks transposed in registers, the edges one by one
      const q4 = q & ~3, hd4 = hd & ~3;
      const xRowB = <usize>xRow << 2;
      for (let s = 0; s < q4; s += 4) {
        const xs = x + (((r0 + <usize>s) * <usize>xRow + <usize>hh * <usize>hd) << 2);
        const wv = v128.load(wts + (<usize>s << 2));
        for (let p = 0; p < hd4; p += 4) {
          const xp = xs + (<usize>p << 2);
          const a0 = v128.load(xp), a1 = v128.load(xp + xRowB), a2 = v128.load(xp + 2 * xRowB), a3 = v128.load(xp + 3 * xRowB);
          const t0 = v128.shuffle<f32>(a0, a1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(a2, a3, 0, 4, 1, 5);
          const t2 = v128.shuffle<f32>(a0, a1, 2, 6, 3, 7), t3 = v128.shuffle<f32>(a2, a3, 2, 6, 3, 7);
          const c0 = v128.shuffle<f32>(t0, t1, 0, 1, 4, 5), c1 = v128.shuffle<f32>(t0, t1, 2, 3, 6, 7);
          const c2 = v128.shuffle<f32>(t2, t3, 0, 1, 4, 5), c3 = v128.shuffle<f32>(t2, t3, 2, 3, 6, 7);
          const wp = Wp + <usize>p * SB + HB + (<usize>s << 2);
          v128.store(wp, c0); v128.store(wp + SB, c1); v128.store(wp + 2 * SB, c2); v128.store(wp + 3 * SB, c3);
          const xq = Xw + ((<usize>p * <usize>Qp + <usize>s) << 2), QB = <usize>Qp << 2;
          v128.store(xq, f32x4.mul(c0, wv)); v128.store(xq + QB, f32x4.mul(c1, wv));
          v128.store(xq + 2 * QB, f32x4.mul(c2, wv)); v128.store(xq + 3 * QB, f32x4.mul(c3, wv));
        }
        for (let p = hd4; p < hd; p++) {
          for (let k = 0; k < 4; k++) {
            const v = load<f32>(xs + <usize>k * xRowB + (<usize>p << 2));
            store<f32>(Wp + <usize>p * SB + HB + (<usize>(s + k) << 2), v);
            store<f32>(Xw + ((<usize>p * <usize>Qp + <usize>(s + k)) << 2), v * load<f32>(wts + (<usize>(s + k) << 2)));
          }
        }
      }
      for (let s = q4; s < q; s++) {
        const xs = x + (((r0 + <usize>s) * <usize>xRow + <usize>hh * <usize>hd) << 2);
        const w = load<f32>(wts + (<usize>s << 2));
        for (let p = 0; p < hd; p++) {
          const v = load<f32>(xs + (<usize>p << 2));
          store<f32>(Wp + <usize>p * SB + HB + (<usize>s << 2), v);
          store<f32>(Xw + ((<usize>p * <usize>Qp + <usize>s) << 2), v * w);
        }
      }
      // y rows of the chunk, in blocks of RB rows that stop at the block's last column of M (M is lower triangular);
      // H = 0 in the first chunk without a state: only the M part
      const yc = y + ((r0 * <usize>nh + <usize>hh) * <usize>hd << 2);
      const h0 = c == 0 && !sh ? HB : 0;
      for (let i0 = 0; i0 < q; i0 += RB) {
        const i1 = min(q, i0 + RB);
        const ya = yc + <usize>i0 * yRowB, kk = (h0 ? 0 : N) + i1;
        if (fma) gemm_nt_f32_fma(Ap + <usize>i0 * SB + h0, SB, Wp + h0, SB, ya, yRowB, i1 - i0, kk, hd);
        else gemm_nt_f32(Ap + <usize>i0 * SB + h0, SB, Wp + h0, SB, ya, yRowB, i1 - i0, kk, hd);
      }
      if (c == nc - 1 && !sh) break; // the final state is not wanted
      // the chunk's state, then H ← exp(cum_end) H + S
      if (fma) gemm_nt_f32_fma(Xw, <usize>Qp << 2, bt, <usize>Qp << 2, St, HB, hd, q, N);
      else gemm_nt_f32(Xw, <usize>Qp << 2, bt, <usize>Qp << 2, St, HB, hd, q, N);
      const ed = f32x4.splat(load<f32>(ecum + (<usize>(q - 1) << 2)));
      for (let p = 0; p < hd; p++) {
        const hr = Wp + <usize>p * SB, sr = St + <usize>p * HB;
        let n = 0;
        for (; n + 4 <= N; n += 4) {
          const o = <usize>n << 2;
          v128.store(hr + o, f32x4.add(f32x4.mul(ed, v128.load(hr + o)), v128.load(sr + o)));
        }
        for (; n < N; n++) {
          const o = <usize>n << 2;
          store<f32>(hr + o, f32x4.extract_lane(ed, 0) * load<f32>(hr + o) + load<f32>(sr + o));
        }
      }
    }
    if (sh) for (let p = 0; p < hd; p++) memory.copy(sh + <usize>p * HB, Wp + <usize>p * SB, HB);
  }
}
