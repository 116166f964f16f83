/**
 * Differentiable S4D pieces: the diagonal SSM's convolution kernel (Vandermonde form) and the causal long
 * convolution by FFT, each one graph node with a hand-written backward.
 *
 * Kernel. With dt = exp(logDt), A_n = −exp(logAReal_n) + i·AImag_n, z_n = dt·A_n and B folded into C:
 *   K[l] = 2·Re Σ_n C_n · dt·ψ(z_n) · exp(l·λ(z_n))
 *     ZOH:       ψ(z) = (eᶻ − 1)/z,      λ(z) = z                     (so dt·ψ = (exp(dtA) − 1)/A)
 *     bilinear:  ψ(z) = 1/(1 − z/2),     λ(z) = log((1 + z/2)/(1 − z/2))
 * Everything is holomorphic in (C_n, z_n), so with S0 = Σ_l gK[l]·e^{lλ}, S1 = Σ_l gK[l]·l·e^{lλ} and
 * P = C·dt·(ψ′(z)·S0 + ψ(z)·λ′(z)·S1):
 *   gC_re = 2 Re(dt ψ S0),  gC_im = −2 Im(dt ψ S0),  gLogDt = dt · 2 Re Σ_n (C ψ S0 + P A),
 *   gLogAReal = 2 Re(P dt) · Re A,  gAImag = −2 Im(P dt).
 * Powers e^{lλ} are advanced by one complex multiply per step and re-anchored with exp/cos/sin every 32 steps.
 *
 * Convolution. y[t] = Σ_{s≤t} K[t−s] u[s] (+ D u[t]) per channel, by FFT at n = nextPow2(2L) (no wrap-around).
 * Two real channels ride in one complex FFT (real and imaginary parts); the FFT is `fft-plan.ts` (src/ssm/fft.ts's
 * transform with cached twiddles). Backward: gu = correlation of g with K, gK = Σ_b correlation of g with u
 * (accumulated in the frequency domain, one inverse FFT per channel).
 */
import { fft, nextPow2 } from './fft-plan.js';
import { expectRank, expectShape, fail, fromF64, present, shp } from './fused-common.js';
import { accumulateOwned, type Arr, result, type Var, zerosLike } from './var.js';

const ANCHOR = 32;

/** per-mode quantities of the S4D kernel */
interface Mode {
  /** W = C · dt · ψ(z) */
  wr: number;
  wi: number;
  /** e^λ (the per-step factor) and λ */
  er: number;
  ei: number;
  lr: number;
  li: number;
}

/** ψ′(z) for ZOH: ((z − 1)eᶻ + 1)/z², by its series near 0 */
function zohPsiPrime(zr: number, zi: number): [number, number] {
  const m2 = zr * zr + zi * zi;
  if (m2 < 0.0025) {
    // Σ_k (k+1) z^k / (k+2)!, k = 0..6, Horner
    const c = [1 / 2, 1 / 3, 1 / 8, 1 / 30, 1 / 144, 1 / 840, 1 / 5760];
    let pr = c[6];
    let pi = 0;
    for (let k = 5; k >= 0; k--) {
      const nr = pr * zr - pi * zi + c[k];
      const ni = pr * zi + pi * zr;
      pr = nr;
      pi = ni;
    }
    return [pr, pi];
  }
  const ex = Math.exp(zr);
  const cr = ex * Math.cos(zi);
  const ci = ex * Math.sin(zi);
  // (z − 1)·eᶻ + 1
  const nr = (zr - 1) * cr - zi * ci + 1;
  const ni = (zr - 1) * ci + zi * cr;
  // / z²
  const z2r = zr * zr - zi * zi;
  const z2i = 2 * zr * zi;
  const den = z2r * z2r + z2i * z2i;
  return [(nr * z2r + ni * z2i) / den, (ni * z2r - nr * z2i) / den];
}

/**
 * S4D convolution kernel K [H, L] from diagonal complex parameters, B folded into C:
 *  dt = exp(logDt[h]); A_n = −exp(logAReal[h,n]) + i·AImag[h,n]; C_n = C[h,n,0] + i·C[h,n,1];
 *  ZOH: K[h,l] = 2·Re( Σ_n C_n · (exp(dt·A_n) − 1)/A_n · exp(dt·A_n·l) )   (the S4D paper's Vandermonde form; for
 *  'bilinear' the bilinear discretization, dA^l evaluated through the principal log as src/ssm/s4.ts).
 *  Gradients w.r.t. logDt, logAReal, AImag, C. Equals src/ssm/s4.ts s4dKernel with B = ones.
 */
export function s4dKernel(logDt: Var, logAReal: Var, AImag: Var, C: Var, L: number, disc: 'zoh' | 'bilinear' = 'zoh'): Var {
  const op = 's4d_kernel';
  expectRank(op, 'logDt', logDt, 1, '[H]');
  const H = logDt.shape[0];
  expectRank(op, 'logAReal', logAReal, 2, `[${H}, M]`);
  const M = logAReal.shape[1];
  expectShape(op, 'logAReal', logAReal, [H, M]);
  expectShape(op, 'AImag', AImag, [H, M]);
  expectShape(op, 'C', C, [H, M, 2]);
  if (!(Number.isInteger(L) && L >= 0)) fail(op, `L must be a non-negative integer, got ${L}`);
  if (disc !== 'zoh' && disc !== 'bilinear') fail(op, `unknown discretization ${String(disc)}`);
  const ldt = logDt.data;
  const lar = logAReal.data;
  const aim = AImag.data;
  const cd = C.data;

  const mode = (h: number, n: number, dt: number): Mode & { zr: number; zi: number; ar: number; ai: number; psr: number; psi: number } => {
    const k = h * M + n;
    const ar = -Math.exp(lar[k]);
    const ai = aim[k];
    const zr = dt * ar;
    const zi = dt * ai;
    const cr = cd[2 * k];
    const ci = cd[2 * k + 1];
    let psr: number, psi: number; // ψ(z)
    let er: number, ei: number, lr: number, li: number;
    if (disc === 'zoh') {
      // dt·ψ = (eᶻ − 1)/A, with Re(eᶻ − 1) = expm1(zr)cos zi − 2 sin²(zi/2) (as s4.ts discretizeZOH)
      const ex = Math.exp(zr);
      const cy = Math.cos(zi);
      const sy = Math.sin(zi);
      const sh = Math.sin(zi / 2);
      const fr0 = Math.expm1(zr) * cy - 2 * sh * sh;
      const fi0 = ex * sy;
      const den = ar * ar + ai * ai;
      psr = (fr0 * ar + fi0 * ai) / den / dt;
      psi = (fi0 * ar - fr0 * ai) / den / dt;
      er = ex * cy;
      ei = ex * sy;
      lr = zr;
      li = zi;
    } else {
      const hr = zr / 2;
      const hi = zi / 2;
      const dr = 1 - hr;
      const di = -hi;
      const den = dr * dr + di * di;
      const nr = 1 + hr;
      const ni = hi;
      er = (nr * dr + ni * di) / den;
      ei = (ni * dr - nr * di) / den;
      psr = dr / den;
      psi = -di / den;
      lr = Math.log(Math.hypot(er, ei));
      li = Math.atan2(ei, er);
    }
    const wr = dt * (cr * psr - ci * psi);
    const wi = dt * (cr * psi + ci * psr);
    return { wr, wi, er, ei, lr, li, zr, zi, ar, ai, psr, psi };
  };

  const K = zerosLike(ldt, H * L);
  const row = new Float64Array(L);
  for (let h = 0; h < H; h++) {
    const dt = Math.exp(ldt[h]);
    row.fill(0);
    for (let n = 0; n < M; n++) {
      const { wr, wi, er, ei, lr, li } = mode(h, n, dt);
      let pr = 1;
      let pi = 0;
      for (let l = 0; l < L; l++) {
        if (l % ANCHOR === 0 && l > 0) {
          const mag = Math.exp(l * lr);
          pr = mag * Math.cos(l * li);
          pi = mag * Math.sin(l * li);
        }
        row[l] += 2 * (wr * pr - wi * pi);
        const nr = pr * er - pi * ei;
        pi = pr * ei + pi * er;
        pr = nr;
      }
    }
    for (let l = 0; l < L; l++) K[h * L + l] = row[l];
  }

  return result(op, K, [H, L], [logDt, logAReal, AImag, C], (g: Arr) => {
    const gLogDt = new Float64Array(H);
    const gLar = new Float64Array(H * M);
    const gAim = new Float64Array(H * M);
    const gC = new Float64Array(H * M * 2);
    for (let h = 0; h < H; h++) {
      const dt = Math.exp(ldt[h]);
      let gdt = 0;
      for (let n = 0; n < M; n++) {
        const k = h * M + n;
        const md = mode(h, n, dt);
        const { er, ei, lr, li, zr, zi, ar, ai, psr, psi } = md;
        // S0 = Σ gK[l] e^{lλ},  S1 = Σ gK[l] l e^{lλ}
        let s0r = 0, s0i = 0, s1r = 0, s1i = 0;
        let pr = 1;
        let pi = 0;
        for (let l = 0; l < L; l++) {
          if (l % ANCHOR === 0 && l > 0) {
            const mag = Math.exp(l * lr);
            pr = mag * Math.cos(l * li);
            pi = mag * Math.sin(l * li);
          }
          const gv = g[h * L + l];
          s0r += gv * pr;
          s0i += gv * pi;
          s1r += gv * l * pr;
          s1i += gv * l * pi;
          const nr = pr * er - pi * ei;
          pi = pr * ei + pi * er;
          pr = nr;
        }
        // ψ′ and λ′
        let dpr: number, dpi: number, lpr: number, lpi: number;
        if (disc === 'zoh') {
          [dpr, dpi] = zohPsiPrime(zr, zi);
          lpr = 1;
          lpi = 0;
        } else {
          // ψ′ = ½ψ²,  λ′ = 1/(1 − z²/4)
          dpr = 0.5 * (psr * psr - psi * psi);
          dpi = psr * psi;
          const qr = 1 - (zr * zr - zi * zi) / 4;
          const qi = -(2 * zr * zi) / 4;
          const qd = qr * qr + qi * qi;
          lpr = qr / qd;
          lpi = -qi / qd;
        }
        const cr = cd[2 * k];
        const ci = cd[2 * k + 1];
        // Q = ψ′ S0 + ψ λ′ S1
        const plr = psr * lpr - psi * lpi;
        const pli = psr * lpi + psi * lpr;
        const qr = dpr * s0r - dpi * s0i + plr * s1r - pli * s1i;
        const qi = dpr * s0i + dpi * s0r + plr * s1i + pli * s1r;
        // P = C · dt · Q
        const Pr = dt * (cr * qr - ci * qi);
        const Pi = dt * (cr * qi + ci * qr);
        // dt ψ S0
        const tr = dt * (psr * s0r - psi * s0i);
        const ti = dt * (psr * s0i + psi * s0r);
        gC[2 * k] = 2 * tr;
        gC[2 * k + 1] = -2 * ti;
        // C ψ S0 = C · (tr + i ti)/dt ; P A
        gdt += (2 * (cr * tr - ci * ti)) / dt + 2 * (Pr * ar - Pi * ai);
        gLar[k] = 2 * Pr * dt * ar;
        gAim[k] = -2 * Pi * dt;
      }
      gLogDt[h] = gdt * dt;
    }
    accumulateOwned(logDt, fromF64(ldt, gLogDt));
    accumulateOwned(logAReal, fromF64(lar, gLar));
    accumulateOwned(AImag, fromF64(aim, gAim));
    accumulateOwned(C, fromF64(cd, gC));
  });
}

/**
 * causal long convolution via FFT: u [b, L, H], K [H, Lk] (taps ≥ L never reach an output; a shorter K is
 * zero-padded) → y[b,t,h] = Σ_{s≤t} K[h, t−s]·u[b,s,h] (+ D[h]·u[b,t,h]); gradients w.r.t. u, K, D by FFT
 * correlations.
 */
export function fftConv(u: Var, K: Var, D: Var | null): Var {
  const op = 'fft_conv';
  expectRank(op, 'u', u, 3, '[b, L, H]');
  const [bsz, L, H] = u.shape;
  expectRank(op, 'K', K, 2, `[${H}, L]`);
  if (K.shape[0] !== H) fail(op, `K ${shp(K.shape)} must have ${H} rows for u ${shp(u.shape)}`);
  const Lk = K.shape[1];
  expectShape(op, 'D', D, [H]);
  const parents = present(u, K, D);
  const ud = u.data;
  const kd = K.data;
  const Dd = D ? D.data : null;
  const y = zerosLike(ud, u.size);
  const taps = Math.min(Lk, L);
  const n = L > 0 ? nextPow2(2 * L) : 1;
  const fr = new Float64Array(n);
  const fi = new Float64Array(n);
  const zr = new Float64Array(n);
  const zi = new Float64Array(n);

  /** spectrum of K[h] (zero-padded) into (fr, fi) */
  const kernelSpectrum = (h: number): void => {
    fr.fill(0);
    fi.fill(0);
    for (let j = 0; j < taps; j++) fr[j] = kd[h * Lk + j];
    fft(fr, fi, false);
  };
  /** (zr, zi) ← FFT(srcT[b1, h, :] + i·srcT[b2, h, :]) from a channel-major [b, H, L] copy (b2 < 0: no imaginary part) */
  const packed = (srcT: Float64Array, h: number, b1: number, b2: number): void => {
    zr.fill(0);
    zi.fill(0);
    zr.set(srcT.subarray((b1 * H + h) * L, (b1 * H + h + 1) * L));
    if (b2 >= 0) zi.set(srcT.subarray((b2 * H + h) * L, (b2 * H + h + 1) * L));
    fft(zr, zi, false);
  };
  /** rows (zr, zi)[0..L) → outT[b1, h, :] and outT[b2, h, :] */
  const unpack = (outT: Float64Array, h: number, b1: number, b2: number): void => {
    outT.set(zr.subarray(0, L), (b1 * H + h) * L);
    if (b2 >= 0) outT.set(zi.subarray(0, L), (b2 * H + h) * L);
  };

  if (L > 0) {
    // the FFTs run along time, so work on a channel-major copy (strided gathers per channel miss the cache)
    const uT = channelMajor(ud, bsz, L, H);
    const yT = new Float64Array(bsz * H * L);
    for (let h = 0; h < H; h++) {
      kernelSpectrum(h);
      for (let b1 = 0; b1 < bsz; b1 += 2) {
        const b2 = b1 + 1 < bsz ? b1 + 1 : -1;
        packed(uT, h, b1, b2);
        for (let k = 0; k < n; k++) {
          const r = zr[k] * fr[k] - zi[k] * fi[k];
          zi[k] = zr[k] * fi[k] + zi[k] * fr[k];
          zr[k] = r;
        }
        fft(zr, zi, true);
        unpack(yT, h, b1, b2);
      }
    }
    timeMajorInto(y, yT, bsz, L, H);
    if (Dd) for (let i = 0; i < y.length; i += H) for (let h = 0; h < H; h++) y[i + h] += Dd[h] * ud[i + h];
  }

  return result(op, y, [bsz, L, H], parents, (g: Arr) => {
    const gu = zerosLike(ud, u.size);
    const gK = new Float64Array(H * Lk);
    const gD = new Float64Array(H);
    if (L > 0) {
      const wantK = K.requiresGrad;
      const uT = wantK ? channelMajor(ud, bsz, L, H) : null;
      const gT = channelMajor(g, bsz, L, H);
      const guT = new Float64Array(bsz * H * L);
      const ar = new Float64Array(n); // Σ_b G_b·conj(U_b), packed pairs (real part of its inverse is gK)
      const ai = new Float64Array(n);
      const gr = new Float64Array(n);
      const gi = new Float64Array(n);
      for (let h = 0; h < H; h++) {
        kernelSpectrum(h);
        ar.fill(0);
        ai.fill(0);
        for (let b1 = 0; b1 < bsz; b1 += 2) {
          const b2 = b1 + 1 < bsz ? b1 + 1 : -1;
          if (uT) {
            packed(uT, h, b1, b2);
            gr.set(zr);
            gi.set(zi);
          }
          // G = FFT(g_b1 + i g_b2)
          packed(gT, h, b1, b2);
          if (uT) {
            for (let k = 0; k < n; k++) {
              ar[k] += zr[k] * gr[k] + zi[k] * gi[k];
              ai[k] += zi[k] * gr[k] - zr[k] * gi[k];
            }
          }
          // gu_b1 + i gu_b2 = IFFT(G · conj(FK))
          for (let k = 0; k < n; k++) {
            const r = zr[k] * fr[k] + zi[k] * fi[k];
            zi[k] = zi[k] * fr[k] - zr[k] * fi[k];
            zr[k] = r;
          }
          fft(zr, zi, true);
          unpack(guT, h, b1, b2);
        }
        if (uT) {
          fft(ar, ai, true);
          for (let j = 0; j < taps; j++) gK[h * Lk + j] = ar[j];
        }
      }
      timeMajorInto(gu, guT, bsz, L, H);
      for (let i = 0; i < gu.length; i += H) {
        for (let h = 0; h < H; h++) {
          if (Dd) gu[i + h] += Dd[h] * g[i + h];
          gD[h] += g[i + h] * ud[i + h];
        }
      }
    }
    accumulateOwned(u, gu);
    accumulateOwned(K, fromF64(kd, gK));
    if (D) accumulateOwned(D, fromF64(D.data, gD));
  });
}

/** [b, L, H] → a float64 [b, H, L] copy */
function channelMajor(src: ArrayLike<number>, bsz: number, L: number, H: number): Float64Array {
  const out = new Float64Array(bsz * H * L);
  for (let b = 0; b < bsz; b++) {
    for (let t = 0; t < L; t++) {
      const so = (b * L + t) * H;
      const dob = b * H * L + t;
      for (let h = 0; h < H; h++) out[dob + h * L] = src[so + h];
    }
  }
  return out;
}

/** dst [b, L, H] ← srcT [b, H, L] */
function timeMajorInto(dst: Arr, srcT: Float64Array, bsz: number, L: number, H: number): void {
  for (let b = 0; b < bsz; b++) {
    for (let t = 0; t < L; t++) {
      const d0 = (b * L + t) * H;
      const sob = b * H * L + t;
      for (let h = 0; h < H; h++) dst[d0 + h] = srcT[sob + h * L];
    }
  }
}
