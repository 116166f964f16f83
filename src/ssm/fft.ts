/**
 * Radix-2 complex FFT (iterative Cooley–Tukey, decimation in time) on float64 re/im arrays, and the causal linear
 * convolution through it. No dependencies; used by the S4/S4D convolution mode (`s4.ts`).
 *
 *   forward:  X[k] = Σ_j x[j] · exp(−2πi·jk/n)           inverse: x[j] = (1/n) Σ_k X[k] · exp(+2πi·jk/n)
 *
 * n must be a power of two. Twiddles are computed per stage from cos/sin of exact angles (no recurrence drift).
 */

/** Smallest power of two ≥ n (n ≥ 1). */
export function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** In-place FFT of (re, im), length a power of two. `inverse` applies the +i sign and the 1/n scale. */
export function fftInPlace(re: Float64Array, im: Float64Array, inverse = false): void {
  const n = re.length;
  if (im.length !== n) throw new RangeError('fft: re and im lengths differ');
  if (n === 0 || (n & (n - 1)) !== 0) throw new RangeError(`fft: length ${n} is not a power of two`);
  // bit-reversal permutation
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      let t = re[i]; re[i] = re[j]; re[j] = t;
      t = im[i]; im[i] = im[j]; im[j] = t;
    }
  }
  const sign = inverse ? 1 : -1;
  for (let len = 2; len <= n; len *= 2) {
    const half = len / 2;
    const ang = (sign * 2 * Math.PI) / len;
    for (let k = 0; k < half; k++) {
      const wr = Math.cos(ang * k);
      const wi = Math.sin(ang * k);
      for (let s = 0; s < n; s += len) {
        const a = s + k;
        const b = a + half;
        const xr = re[b] * wr - im[b] * wi;
        const xi = re[b] * wi + im[b] * wr;
        re[b] = re[a] - xr; im[b] = im[a] - xi;
        re[a] += xr; im[a] += xi;
      }
    }
  }
  if (inverse) {
    for (let i = 0; i < n; i++) { re[i] /= n; im[i] /= n; }
  }
}

/** FFT of a real signal zero-padded to n (a power of two): the full complex spectrum (re, im), length n. */
export function rfftFull(x: ArrayLike<number>, n: number): { re: Float64Array; im: Float64Array } {
  if (x.length > n) throw new RangeError(`rfft: signal length ${x.length} > n = ${n}`);
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  for (let i = 0; i < x.length; i++) re[i] = x[i];
  fftInPlace(re, im, false);
  return { re, im };
}

/**
 * Causal linear convolution y[t] = Σ_{s≤t} K[t−s] · u[s], t = 0..L−1 (L = u.length), as
 *   y = irfft(rfft(u, n) · rfft(K, n))[:L],   n = the power of two ≥ 2L (≥ L + len(K) − 1, so no wrap-around).
 * K longer than L is truncated to L (later taps never reach an output).
 */
export function causalConvFFT(u: ArrayLike<number>, K: ArrayLike<number>): Float64Array {
  const L = u.length;
  if (L === 0) return new Float64Array(0);
  const Lk = Math.min(K.length, L);
  const n = nextPow2(Math.max(2 * L, L + Lk - 1));
  const U = rfftFull(u, n);
  const Kt = new Float64Array(Lk);
  for (let i = 0; i < Lk; i++) Kt[i] = K[i];
  const F = rfftFull(Kt, n);
  for (let i = 0; i < n; i++) {
    const r = U.re[i] * F.re[i] - U.im[i] * F.im[i];
    const m = U.re[i] * F.im[i] + U.im[i] * F.re[i];
    U.re[i] = r; U.im[i] = m;
  }
  fftInPlace(U.re, U.im, true);
  return U.re.slice(0, L);
}

/** Direct O(L·len(K)) causal convolution (the reference for `causalConvFFT`). */
export function causalConvDirect(u: ArrayLike<number>, K: ArrayLike<number>): Float64Array {
  const L = u.length;
  const y = new Float64Array(L);
  for (let t = 0; t < L; t++) {
    let acc = 0;
    for (let s = Math.max(0, t - K.length + 1); s <= t; s++) acc += K[t - s] * u[s];
    y[t] = acc;
  }
  return y;
}
