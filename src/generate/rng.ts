/**
 * Deterministic seeded PRNG: xoshiro128** (Blackman & Vigna) with its 128-bit state filled by
 * splitmix32. Only 32-bit integer ops (`Math.imul`, shifts), so the sequence is identical on every
 * platform and Node version.
 */

const TWO_POW_32 = 4294967296;

/** One splitmix32 step (used only for seeding): the advanced state and its 32-bit output. */
function splitmix32(state: number): { state: number; out: number } {
  const s = (state + 0x9e3779b9) | 0;
  let t = s ^ (s >>> 16);
  t = Math.imul(t, 0x21f0aaad);
  t ^= t >>> 15;
  t = Math.imul(t, 0x735a2d97);
  t ^= t >>> 15;
  return { state: s, out: t >>> 0 };
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  /**
   * @param seed any safe integer (negative allowed). The low and high 32-bit halves are both mixed
   *   in, so e.g. seeds 1 and 2^32 + 1 give different streams.
   */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) {
      throw new RangeError(`Rng seed must be a safe integer, got ${seed}`);
    }
    const lo = seed >>> 0; // two's complement low word (also for negatives)
    const hi = Math.floor(seed / TWO_POW_32) | 0;
    let a = lo | 0;
    let b = (hi ^ 0x6a09e667) | 0;
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const ra = splitmix32(a);
      const rb = splitmix32(b);
      a = ra.state;
      b = rb.state;
      words.push((ra.out ^ Math.imul(rb.out, 0x9e3779b1)) | 0);
    }
    this.setState(words[0], words[1], words[2], words[3]);
  }

  /** Build an Rng with an explicit xoshiro128** state (for known-answer tests). Not all zero. */
  static fromState(s0: number, s1: number, s2: number, s3: number): Rng {
    const r = new Rng(0);
    r.setState(s0 | 0, s1 | 0, s2 | 0, s3 | 0);
    return r;
  }

  private setState(s0: number, s1: number, s2: number, s3: number): void {
    if ((s0 | s1 | s2 | s3) === 0) s0 = 1; // xoshiro's only forbidden state
    this.s0 = s0;
    this.s1 = s1;
    this.s2 = s2;
    this.s3 = s3;
  }

  /** Next uniformly distributed unsigned 32-bit integer. */
  nextU32(): number {
    const s1 = this.s1;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result >>> 0;
  }

  /** Uniform double in [0, 1) with 32 random bits (never returns 1). */
  next(): number {
    return this.nextU32() / TWO_POW_32;
  }
}

/** 32×32 → 64-bit product as [hi, lo] (16-bit limbs, exact in doubles) */
function mulhilo(a: number, b: number): [number, number] {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return [(p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) >>> 0, Math.imul(a, b) >>> 0];
}

/**
 * Philox4x32-10 (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"): a counter-based generator,
 * the i-th draw of a stream is a pure function of (key, counter). The WebGPU sampler (`kernels/sample.ts`) runs
 * the same function; this one is its reference.
 */
export function philox4x32(counter: readonly [number, number, number, number], key: readonly [number, number]): [number, number, number, number] {
  let [x0, x1, x2, x3] = counter.map((v) => v >>> 0);
  let k0 = key[0] >>> 0, k1 = key[1] >>> 0;
  for (let i = 0; i < 10; i++) {
    const [h0, l0] = mulhilo(0xd2511f53, x0);
    const [h1, l1] = mulhilo(0xcd9e8d57, x2);
    [x0, x1, x2, x3] = [(h1 ^ x1 ^ k0) >>> 0, l1, (h0 ^ x3 ^ k1) >>> 0, l0];
    k0 = (k0 + 0x9e3779b9) >>> 0;
    k1 = (k1 + 0xbb67ae85) >>> 0;
  }
  return [x0, x1, x2, x3];
}

/**
 * The per-row RNG words of `Backend.sampleRows` ([rows, 8] floats): the row's 64-bit seed as four 16-bit halves
 * (low first; negative seeds in two's complement) and its Philox counter.
 */
export function philoxRows(seeds: readonly number[], counters: readonly number[]): Float32Array {
  if (seeds.length !== counters.length) throw new RangeError(`${seeds.length} seeds but ${counters.length} counters`);
  const out = new Float32Array(seeds.length * 8);
  seeds.forEach((seed, r) => {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed ${seed} is not a safe integer`);
    const c = counters[r];
    if (!Number.isInteger(c) || c < 0 || c >= 2 ** 24) throw new RangeError(`counter ${c} outside [0, 2^24)`);
    const lo = seed >>> 0, hi = Math.floor(seed / TWO_POW_32) >>> 0;
    out.set([lo & 0xffff, lo >>> 16, hi & 0xffff, hi >>> 16, c], r * 8);
  });
  return out;
}
