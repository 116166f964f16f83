/**
 * Seeding helpers on top of `src/generate/rng.ts` (xoshiro128**):
 *
 * - `deriveSeed(seed, ...keys)`: a well-mixed seed for a sub-stream, e.g. `deriveSeed(seed, step)`
 *   for the batch of step `step`, so a resumed run draws exactly the batches an uninterrupted one
 *   would, with nothing but (seed, step) to store;
 * - `randInt` (unbiased, by rejection) and `shuffleInPlace` (Fisher–Yates);
 * - `rngState` / `rngFromState`: the generator's 128-bit state as four uint32, for checkpoints.
 */
import { Rng } from '../generate/rng.js';

const TWO_POW_32 = 4294967296;

/** murmur3's 32-bit finalizer */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function splitSafe(what: string, v: number): [number, number] {
  if (!Number.isSafeInteger(v)) throw new RangeError(`deriveSeed: ${what} must be a safe integer, got ${v}`);
  return [v >>> 0, Math.floor(v / TWO_POW_32) | 0];
}

/** A seed (safe integer, ≥ 0) for the sub-stream `keys` of `seed`; different keys give unrelated streams. */
export function deriveSeed(seed: number, ...keys: number[]): number {
  const [slo, shi] = splitSafe('seed', seed);
  let a = fmix32(slo ^ 0x243f6a88);
  let b = fmix32((shi ^ 0x85a308d3) + Math.imul(a, 0x9e3779b1));
  for (let i = 0; i < keys.length; i++) {
    const [lo, hi] = splitSafe(`key ${i}`, keys[i]);
    a = fmix32((a ^ lo) + Math.imul(b, 0x9e3779b1) + i + 1);
    b = fmix32((b ^ hi) + Math.imul(a, 0x7feb352d) + 0x6a09e667);
  }
  return (b & 0x1fffff) * TWO_POW_32 + a;
}

/** `new Rng(deriveSeed(seed, ...keys))` */
export function subRng(seed: number, ...keys: number[]): Rng {
  return new Rng(deriveSeed(seed, ...keys));
}

/** Uniform integer in [0, n), n ≤ 2^32, without modulo bias. */
export function randInt(rng: Rng, n: number): number {
  if (!Number.isSafeInteger(n) || n < 1 || n > TWO_POW_32) throw new RangeError(`randInt: n must be an integer in [1, 2^32], got ${n}`);
  const limit = Math.floor(TWO_POW_32 / n) * n;
  for (;;) {
    const u = rng.nextU32();
    if (u < limit) return u % n;
  }
}

/** Fisher–Yates shuffle of `a` in place, driven by `rng`. Returns `a`. */
export function shuffleInPlace<T extends { length: number; [i: number]: unknown }>(rng: Rng, a: T): T {
  for (let i = a.length - 1; i > 0; i--) {
    const j = randInt(rng, i + 1);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

/** A random permutation of 0 … n−1. */
export function permutation(rng: Rng, n: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return shuffleInPlace(rng, p);
}

/**
 * The 128-bit xoshiro state of `rng` as four uint32 (JSON-friendly, for `trainer_state.json`).
 * `Rng` keeps its state in private fields `s0…s3`; this reads them and fails loudly if that layout
 * ever changes rather than saving something that cannot be restored.
 */
export function rngState(rng: Rng): [number, number, number, number] {
  const r = rng as unknown as Record<string, unknown>;
  const out: number[] = [];
  for (const k of ['s0', 's1', 's2', 's3']) {
    const v = r[k];
    if (typeof v !== 'number') throw new Error(`rngState: Rng has no numeric field "${k}" (its internal layout changed; update src/train/random.ts)`);
    out.push(v >>> 0);
  }
  return out as [number, number, number, number];
}

/** An Rng continuing exactly where the one `rngState` was read from stood. */
export function rngFromState(state: readonly number[]): Rng {
  if (!Array.isArray(state) || state.length !== 4 || !state.every((v) => Number.isInteger(v) && v >= 0 && v < TWO_POW_32)) {
    throw new RangeError(`rngFromState: expected four uint32 values, got ${JSON.stringify(state)}`);
  }
  return Rng.fromState(state[0], state[1], state[2], state[3]);
}
