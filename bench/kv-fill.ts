/**
 * Shared by the wasm KV-cache and context benches: a state's KV caches filled directly (random K/V at C positions,
 * no prefill of C tokens), a state at C positions that way, and attention's time per step (the backend op wrapped).
 */
import type { AttentionArgs, Backend } from '../src/backend/backend.js';
import { encodeKvInto, type KvArray } from '../src/backend/cpu/index.js';
import type { CausalLM } from '../src/models/causal-lm.js';
import type { ModelState } from '../src/models/state.js';
import type { KvCacheDType } from '../src/tensor/dtype.js';
import * as ops from '../src/tensor/ops.js';
import { keep } from '../src/tensor/scope.js';

/** the benches' noise: an LCG from `seed`, uniform in [−0.5, 0.5); each call fills `n` values, carrying on the sequence */
export function lcgNoise(seed = 12345): (n: number) => Float32Array {
  return (n) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      out[i] = seed / 2 ** 32 - 0.5;
    }
    return out;
  };
}

/**
 * Grows each of the state's time tensors (its KV caches, CPU/wasm storage) to `cap` positions and writes `noise` at
 * positions 0 … C−1, in `kvCache`'s format; one block of noise per row size, drawn once and kept in `blocks` (pass the
 * same map to give several states the same values). The caller sets `s.seqLen`.
 */
export function fillKvCaches(s: ModelState, C: number, cap: number, kvCache: KvCacheDType, noise: (n: number) => Float32Array, blocks = new Map<number, Float32Array>()): void {
  if (!(cap >= C)) throw new Error(`fillKvCaches: capacity ${cap} is less than the context ${C}`);
  for (const l of s.layers) {
    for (const k of Object.keys(l)) {
      if (!s.timeTensors.has(k)) continue;
      const per = l[k].size / l[k].shape[1];
      let block = blocks.get(per);
      if (!block) {
        block = noise(C * per);
        blocks.set(per, block);
      }
      const grown = keep(ops.padTime(l[k], cap)); // (the wasm backend's grown caches live in wasm memory)
      encodeKvInto(block, kvCache, grown.storage as KvArray, 0); // (in the cache's format)
      l[k].dispose();
      l[k] = grown;
    }
  }
}

/** the tokens of the benches' short real prefill before the caches are filled: 8 ids spread over the vocabulary */
export const prefillIds = (vocab: number): number[] => Array.from({ length: 8 }, (_, i) => (i * 7919 + 13) % vocab);

/**
 * A batch-1 state at C positions as the benches build one: an 8-token prefill (its logits returned), then the KV
 * caches (in `kvCache`) grown to `cap` positions with noise at 0 … C−1 (fillKvCaches; a state without KV caches is
 * left as the prefill made it: its size does not depend on C) and the position set to C. `noise` / `blocks` as
 * fillKvCaches's (default an LCG from 12345, blocks drawn for this state only).
 */
export async function stateAtContext(lm: CausalLM, C: number, cap: number, kvCache: KvCacheDType, o: { noise?: (n: number) => Float32Array; blocks?: Map<number, Float32Array> } = {}): Promise<{ s: ModelState; logits: Awaited<ReturnType<CausalLM['advance']>> }> {
  const s = lm.createState(1, { kvCache });
  const logits = await lm.advance([prefillIds(lm.vocabSize)], s);
  if (s.timeTensors.size > 0) fillKvCaches(s, C, cap, kvCache, o.noise ?? lcgNoise(12345), o.blocks);
  s.seqLen[0] = C;
  return { s, logits };
}

/** wraps `be.attention` to add up its wall time (a few µs per call); `ms` is read and reset by the caller, `restore()` unwraps */
export function timeAttention(be: Pick<Backend, 'attention'>): { ms: number; restore: () => void } {
  const attention = be.attention;
  const timer = {
    ms: 0,
    restore: () => {
      be.attention = attention;
    },
  };
  be.attention = (a: AttentionArgs) => {
    const t = performance.now();
    try {
      return attention.call(be, a);
    } finally {
      timer.ms += performance.now() - t;
    }
  };
  return timer;
}
