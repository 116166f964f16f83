/**
 * Shared by the batched-decode tests of the WebGPU matrix kernels: `rows` sequences with prompts of different
 * lengths, prefilled apart and decoded together (greedy steps through `advance`, the first recorded and the next
 * replayed, then two chained on the device), against the `check`ed rows decoded alone: same tokens, logits ≤ 1e-4.
 */
import assert from 'node:assert/strict';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { ModelState } from '../../src/models/state.js';
import { assertSameDecode } from '../helpers.js';

export async function batchedEqualsAlone(lm: CausalLM, what: string, rows: number, check: number[], steps = 2): Promise<void> {
  const V = lm.vocabSize;
  // prompts of 1, 2 and 4 tokens (the conv window of width 4 partly from zeros, then full): each row's prefill runs the
  // decode matvec over its tokens (blocks of 1, 2, 4 rows), which SwiftShader runs slowly — lengths 1–7 cost ~2× as much
  const prompts = Array.from({ length: rows }, (_, r) => Array.from({ length: [1, 2, 4][r % 3] }, (_, i) => (r * 31 + i * 7 + 3) % V));
  const argmax = (l: Float32Array, r: number) => {
    let best = 0;
    for (let i = 1; i < V; i++) if (l[r * V + i] > l[r * V + best]) best = i;
    return best;
  };
  // each row's prompt apart (different lengths); the batch is a copy of the prefilled states
  const alone: ModelState[] = [];
  const first: number[] = [];
  for (const p of prompts) {
    const s = lm.createState(1);
    first.push(argmax((await lm.advance([p], s)).data, 0));
    alone.push(s);
  }
  const state = ModelState.concat(alone);
  // greedy steps (the first recorded, the next replayed), then two on the device (argmax fed back)
  const decode = async (s: ModelState, ids: number[]) => {
    const logits: Float32Array[] = [], tokens: number[][] = [ids];
    for (let i = 0; i < steps; i++) {
      const l = (await lm.advance(tokens[i].map((x) => [x]), s)).data;
      logits.push(l);
      tokens.push(Array.from({ length: ids.length }, (_, r) => argmax(l, r)));
    }
    const chain = await lm.greedyChain!(tokens[steps].map((x) => [x]), s, 2);
    assert.ok(chain, 'greedyChain runs on webgpu');
    for (const c of chain) tokens.push(Array.from(c));
    return { logits, tokens };
  };
  try {
    const batch = await decode(state, first);
    for (const r of check) {
      const one = await decode(alone[r], [first[r]]);
      const row = { logits: batch.logits.map((l) => l.subarray(r * V, (r + 1) * V)), ids: batch.tokens.map((t) => t[r]) };
      assertSameDecode(row, { logits: one.logits, ids: one.tokens.map((t) => t[0]) }, 1e-4, `${what} row ${r} (prompt of ${prompts[r].length})`);
    }
  } finally {
    for (const s of alone) s.dispose();
    state.dispose();
  }
}
