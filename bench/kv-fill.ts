/**
 * Shared by the wasm KV-cache and context benches: a state's KV caches filled directly (random K/V at C positions,
 * no prefill of C tokens), a state at C positions that way, and decode attention's time at a state's context (the op
 * run on its own over the state's caches: attentionProbe).
 */
import type { Backend } from '../src/backend/backend.js';
import { encodeKvInto, type KvArray } from '../src/backend/cpu/index.js';
import type { CausalLM } from '../src/models/causal-lm.js';
import type { DecoderLM } from '../src/models/decoder.js';
import { Attention } from '../src/nn/attention.js';
import type { ModelState } from '../src/models/state.js';
import type { KvCacheDType } from '../src/tensor/dtype.js';
import * as ops from '../src/tensor/ops.js';
import { keep } from '../src/tensor/scope.js';
import type { Tensor } from '../src/tensor/tensor.js';

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

/** one pass of decode attention over a state's caches: wall and CPU ms (process.cpuUsage, all threads), layers run */
export interface AttentionTiming { ms: number; cpuMs: number; layers: number }

/**
 * Decode attention timed on its own at a state's context (issue 18, session 33). Decode does not call `be.attention`
 * any more — on the wasm backend an attention layer's decode is one call (`attentionDecode`: q/k/v, RoPE, the cache
 * append, attention, o_proj) inside the token's call — so wrapping the op (these benches' way before) saw nothing.
 * This runs the op itself (`ops.attention`, one query per row: the decode kernel, with the backend's current
 * attnDecode / attnPad) over every attention layer's KV caches of `s` at its current position, one layer after
 * another as a step would, with a fixed random q/k/v per layer shape. The new k/v are written at position seqLen, the
 * slot the next step writes its own into, so the state decodes on unchanged (the caches need one free position).
 * Not the fused call's exact split of the work among threads (at S = 1 it divides KV heads, the op rows or keys: the
 * same arithmetic per head), and the caches are as the previous step left them (mostly DRAM at the benches' sizes).
 */
export function attentionProbe(lm: CausalLM, be: Backend): ((s: ModelState) => AttentionTiming) | null {
  const spec = (lm as Partial<DecoderLM>).spec;
  if (!spec) return null;
  const layers: Array<{ i: number; o: Attention['opts'] }> = [];
  spec.blocks.forEach((subs, i) => {
    for (const sub of subs) if (sub.mixer instanceof Attention) layers.push({ i, o: sub.mixer.opts });
  });
  if (layers.length === 0) return null;
  const noise = lcgNoise(777);
  const inputs = new Map<string, { q: Tensor; k: Tensor; v: Tensor }>();
  const inputsFor = (o: Attention['opts']) => {
    const key = `${o.nHeads}/${o.nKvHeads}/${o.headDim}`;
    let x = inputs.get(key);
    if (!x) {
      const t = (n: number, shape: number[]) => keep(be.fromHost(noise(n), shape));
      x = { q: t(o.nHeads * o.headDim, [1, 1, o.nHeads, o.headDim]), k: t(o.nKvHeads * o.headDim, [1, 1, o.nKvHeads, o.headDim]), v: t(o.nKvHeads * o.headDim, [1, 1, o.nKvHeads, o.headDim]) };
      inputs.set(key, x);
    }
    return x;
  };
  return (s) => {
    if (s.batch !== 1) throw new Error('attentionProbe: a batch-1 state');
    const c0 = process.cpuUsage(), t0 = performance.now();
    for (const { i, o } of layers) {
      const st = s.layers[i];
      if (!(st.k.shape[1] > s.seqLen[0])) throw new Error(`attentionProbe: layer ${i}'s KV cache has no free position after ${s.seqLen[0]}`);
      const x = inputsFor(o);
      ops.attention({ q: x.q, k: x.k, v: x.v, cacheK: st.k, cacheV: st.v, pastLen: [s.seqLen[0]], scale: o.scale ?? 1 / Math.sqrt(o.headDim) }).dispose();
    }
    const ms = performance.now() - t0, c = process.cpuUsage(c0);
    return { ms, cpuMs: (c.user + c.system) / 1000, layers: layers.length };
  };
}
