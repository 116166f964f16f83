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
