/**
 * A planned radix-2 complex FFT for the training ops: the same transform and conventions as `fftInPlace` in
 * src/ssm/fft.ts (forward e^{−2πi·jk/n}; inverse e^{+2πi·jk/n} with the 1/n scale), but with the bit-reversal
 * permutation and the twiddles computed once per length and cached. `fftInPlace` evaluates cos/sin per butterfly
 * group on every call, which costs as much as the butterflies themselves; `fftConv` runs thousands of transforms
 * of one length per step.
 */
import { nextPow2 } from '../ssm/fft.js';

export { nextPow2 };

interface Plan {
  n: number;
  /** pairs (i, j), i < j, to swap for the bit-reversal permutation */
  swaps: Int32Array;
  /** per stage of half-length h (h = 1, 2, 4, …, n/2): cos(πk/h), sin(πk/h) for k < h, at offset h (exact angles) */
  cos: Float64Array;
  sin: Float64Array;
}

const plans = new Map<number, Plan>();

function plan(n: number): Plan {
  let p = plans.get(n);
  if (p) return p;
  if (n === 0 || (n & (n - 1)) !== 0) throw new RangeError(`fft: length ${n} is not a power of two`);
  const sw: number[] = [];
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) sw.push(i, j);
  }
  const cos = new Float64Array(Math.max(2, n));
  const sin = new Float64Array(Math.max(2, n));
  for (let h = 1; h < n; h <<= 1) {
    for (let k = 0; k < h; k++) {
      cos[h + k] = Math.cos((Math.PI * k) / h);
      sin[h + k] = Math.sin((Math.PI * k) / h);
    }
  }
  p = { n, swaps: Int32Array.from(sw), cos, sin };
  plans.set(n, p);
  return p;
}

/** In-place FFT of (re, im), length a power of two; `inverse` applies the +i sign and the 1/n scale. */
export function fft(re: Float64Array, im: Float64Array, inverse = false): void {
  const n = re.length;
  if (im.length !== n) throw new RangeError('fft: re and im lengths differ');
  const { swaps, cos, sin } = plan(n);
  for (let s = 0; s < swaps.length; s += 2) {
    const i = swaps[s];
    const j = swaps[s + 1];
    let t = re[i];
    re[i] = re[j];
    re[j] = t;
    t = im[i];
    im[i] = im[j];
    im[j] = t;
  }
  // stage of length 2: twiddle 1
  for (let a = 0; a + 1 < n; a += 2) {
    const xr = re[a + 1];
    const xi = im[a + 1];
    re[a + 1] = re[a] - xr;
    im[a + 1] = im[a] - xi;
    re[a] += xr;
    im[a] += xi;
  }
  const sgn = inverse ? 1 : -1;
  // stage of length 4: twiddles 1 and ∓i
  if (n >= 4) {
    for (let a = 0; a < n; a += 4) {
      let xr = re[a + 2];
      let xi = im[a + 2];
      re[a + 2] = re[a] - xr;
      im[a + 2] = im[a] - xi;
      re[a] += xr;
      im[a] += xi;
      // (x_r + i x_i)·(sgn·i) = −sgn·x_i + i·sgn·x_r
      xr = -sgn * im[a + 3];
      xi = sgn * re[a + 3];
      re[a + 3] = re[a + 1] - xr;
      im[a + 3] = im[a + 1] - xi;
      re[a + 1] += xr;
      im[a + 1] += xi;
    }
  }
  for (let half = 4; half < n; half <<= 1) {
    const len = half << 1;
    if (half * len < n) {
      // many short blocks: twiddle outer, kept in registers
      for (let k = 0; k < half; k++) {
        const wr = cos[half + k];
        const wi = sgn * sin[half + k];
        for (let a = k; a < n; a += len) {
          const b = a + half;
          const xr = re[b] * wr - im[b] * wi;
          const xi = re[b] * wi + im[b] * wr;
          re[b] = re[a] - xr;
          im[b] = im[a] - xi;
          re[a] += xr;
          im[a] += xi;
        }
      }
    } else {
      // few long blocks: contiguous sweeps over each block
      for (let a0 = 0; a0 < n; a0 += len) {
        for (let k = 0; k < half; k++) {
          const wr = cos[half + k];
          const wi = sgn * sin[half + k];
          const a = a0 + k;
          const b = a + half;
          const xr = re[b] * wr - im[b] * wi;
          const xi = re[b] * wi + im[b] * wr;
          re[b] = re[a] - xr;
          im[b] = im[a] - xi;
          re[a] += xr;
          im[a] += xi;
        }
      }
    }
  }
  if (inverse) {
    const s = 1 / n;
    for (let i = 0; i < n; i++) {
      re[i] *= s;
      im[i] *= s;
    }
  }
}
