/**
 * WebGPU inference attention: the flash prefill (tiled: 64 queries a workgroup) and flash-decoding (keys split over
 * workgroups, then combined) against the CPU reference, with and without a KV cache, ragged past lengths, GQA,
 * odd lengths and head dims, on the 'tiled' and 'simple' kernel sets and the legacy kernel; and KV-cache models
 * (Llama, a Bamba hybrid) replaying their recorded decode step at later positions — the lengths and rotary
 * tables follow the positions — equal to running the model code, greedyChain equal to step-by-step decoding.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { AttentionArgs } from '../../src/backend/backend.js';
import { cpu } from '../../src/backend/cpu/index.js';
import { decodeSplits, type WebGpuBackend } from '../../src/backend/webgpu/backend.js';
import { loadModel } from '../../src/index.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { attentionArgs, computedArgs, hfFixture, loadReference, maxAbsDiff, randomArray } from '../helpers.js';
import { webgpuOrReason } from './webgpu-context.js';

// two devices (SwiftShader compiles each pipeline per device, ~2-4 s of CPU for the flash kernels: most of this file's
// time): the tiled kernels (the split of flash decoding set on it when a test fixes one), the simple ones split in 5
const tiled = await webgpuOrReason({ kernels: 'tiled' });
const simpleSplit = typeof tiled === 'string' ? tiled : await webgpuOrReason({ kernels: 'simple', attentionSplits: 5 });
after(() => {
  for (const g of [tiled, simpleSplit]) if (typeof g !== 'string') g.destroy();
});

let seed = 11;
const rnd = (n: number) => randomArray(n, seed++ * 7919, 1);

// [b, L, Hq, Hkv, hd, cache capacity (0: no cache), past lengths]
const CASES: [number, number, number, number, number, number, number[]][] = [
  [2, 5, 4, 2, 13, 0, [0, 0]], // no cache, GQA, odd head dim
  [1, 70, 2, 1, 64, 0, [0]], // more than one query block
  [2, 37, 4, 2, 64, 160, [45, 0]], // prompt after a cached prefix (chunked prefill), ragged
  [2, 3, 3, 1, 13, 20, [7, 16]],
  [1, 1, 6, 3, 64, 300, [250]], // decode: keys split
  [3, 1, 2, 2, 13, 140, [0, 63, 139 - 1]], // decode, ragged, lengths 1…139
];

async function checkAttention(g: WebGpuBackend, what: string, maxL = Infinity): Promise<void> {
  for (const [b, L, Hq, Hkv, hd, T, past] of CASES.filter((c) => c[1] <= maxL)) {
    const q = rnd(b * L * Hq * hd), k = rnd(b * L * Hkv * hd), v = rnd(b * L * Hkv * hd);
    const ck = T ? rnd(b * T * Hkv * hd) : null, cv = T ? rnd(b * T * Hkv * hd) : null;
    const args = (be: typeof cpu | WebGpuBackend): AttentionArgs => attentionArgs(be, { b, L, Hq, Hkv, hd }, q, k, v, past, ck, cv);
    const ag = computedArgs(g, args(g)), ac = args(cpu); // bound as a model's (one pipeline per kernel on SwiftShader)
    const got = await g.attention(ag).data(), want = cpu.attention(ac).dataSync();
    const d = maxAbsDiff(got, want);
    const name = `${what}: b${b} L${L} Hq${Hq} Hkv${Hkv} hd${hd} T${T} past ${past}`;
    assert.ok(d <= 1e-4, `${name}: max |Δ| = ${d}`);
    if (T) assert.equal(maxAbsDiff(await ag.cacheK!.data(), ac.cacheK!.dataSync()), 0, `${name}: K cache`);
  }
}

function withGpu(name: string, g: WebGpuBackend | string, fn: (g: WebGpuBackend) => Promise<void>): void {
  it(name, async (t: TestContext) => {
    if (typeof g === 'string') return t.skip(g);
    await fn(g);
  });
}

describe('webgpu inference attention vs the CPU reference (≤ 1e-4)', () => {
  withGpu('tiled: flash prefill, flash-decoding with the automatic split', tiled, (g) => checkAttention(g, 'tiled'));
  withGpu('tiled: flash prefill, decode split in 3', tiled, async (g) => {
    g.attentionSplits = 3; // (the long prefills: above)
    try {
      await checkAttention(g, 'tiled/3', 5);
    } finally {
      g.attentionSplits = undefined;
    }
    assert.throws(() => (g.attentionSplits = 0), /webgpu: attentionSplits must be a positive integer, got 0/);
  });
  withGpu('simple: one workgroup per query row, keys split in 5', simpleSplit, (g) => checkAttention(g, 'simple/5'));
  withGpu('legacy kernel (attention: legacy) still selectable', tiled, async (g) => {
    g.attentionKernels = 'legacy';
    try {
      await checkAttention(g, 'legacy');
    } finally {
      g.attentionKernels = 'flash';
    }
    assert.throws(() => (g.attentionKernels = 'fast' as 'flash'), /'flash', 'flash-q32', 'flash-q64', 'flash1', 'legacy'/);
  });

  it('decode splits: enough workgroups for the GPU, ≥ 128 keys a slice, at most 64', () => {
    assert.equal(decodeSplits(12, 64, 132), 1);
    assert.equal(decodeSplits(12, 4096, 132), 22);
    assert.equal(decodeSplits(12 * 32, 65536, 132), 1);
    assert.equal(decodeSplits(1, 1 << 20, 132), 64);
  });
});

/** greedy argmax of logits rows [rows, V] on the host */
function argmax(data: Float32Array, V: number): number[] {
  return Array.from({ length: data.length / V }, (_, r) => {
    const row = data.subarray(r * V, (r + 1) * V);
    let best = 0;
    for (let i = 1; i < V; i++) if (row[i] > row[best]) best = i;
    return best;
  });
}

describe('webgpu KV-cache models: recorded decode steps replay at later positions', () => {
  for (const name of ['llama-tiny', 'bamba-tiny']) {
    withGpu(`${name}: HF parity with the tiled (flash) kernels`, tiled, async (g) => {
      const ref = loadReference(hfFixture(name));
      const model = await loadModel(hfFixture(name), { backend: g });
      const d = maxAbsDiff((await model.forward(ref.ids('input_ids'))).logits.data, ref.f32('logits'));
      assert.ok(d <= 1e-3, `forward: max |Δlogit| = ${d}`);
    });

    // the replay tests on the barrier-free kernels (SwiftShader runs the tiled ones ~10× slower), keys split in 5
    withGpu(`${name}: replayed steps = the model code at every position, across a cache growth`, simpleSplit, async (g) => {
      const lm: CausalLM = (await loadModel(hfFixture(name), { backend: g })).lm;
      assert.equal(lm.chainsOnDevice, true);
      const a = lm.createState(2), b = lm.createState(2);
      // 60 and 58 tokens: the first cache (64 positions) fills during the steps and grows
      const prompt = [Array.from({ length: 60 }, (_, i) => (i * 7 + 3) % lm.vocabSize), Array.from({ length: 60 }, (_, i) => (i * 5 + 1) % lm.vocabSize)];
      await lm.advance(prompt, a);
      await lm.forward(prompt, { state: b });
      let replays = 0;
      const replay = g.rt.replay.bind(g.rt);
      g.rt.replay = (...x: Parameters<typeof replay>) => (replays++, replay(...x));
      try {
        for (let i = 0; i < 8; i++) {
          const ids = [[(i * 3 + 2) % lm.vocabSize], [(i * 11 + 5) % lm.vocabSize]];
          const got = await lm.advance(ids, a); // recorded at 60 and again once the caches grow, replayed otherwise
          const want = (await lm.forward(ids, { state: b, logitsToKeep: 1 })).logits.data; // model code every step
          const d = maxAbsDiff(got.data, want);
          assert.ok(d <= 1e-5, `step ${i} (position ${60 + i}): replayed logits differ by ${d}`);
        }
      } finally {
        g.rt.replay = replay;
      }
      assert.ok(replays >= 5, `${replays} replays`);
      assert.deepEqual(a.seqLen, b.seqLen);
      a.dispose();
      b.dispose();
    });

    withGpu(`${name}: greedyChain (tokens fed back on the GPU) = step-by-step greedy with the model code`, simpleSplit, async (g) => {
      const lm: CausalLM = (await loadModel(hfFixture(name), { backend: g })).lm;
      const a = lm.createState(2), b = lm.createState(2);
      const prompt = [[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]];
      await lm.advance(prompt, a);
      await lm.forward(prompt, { state: b });
      const chain = (await lm.greedyChain!([[7], [8]], a, 5))!;
      const chain2 = (await lm.greedyChain!(Array.from(chain[4], (v) => [v]), a, 4))!; // replayed at a later position
      let next = [[7], [8]];
      const want: number[][] = [];
      for (let s = 0; s < 9; s++) {
        const ids = argmax((await lm.forward(next, { state: b, logitsToKeep: 1 })).logits.data, lm.vocabSize);
        want.push(ids);
        next = ids.map((v) => [v]);
      }
      assert.deepEqual([...chain, ...chain2].map((c) => [...c]), want);
      assert.deepEqual(a.seqLen, b.seqLen);
      const [la, lb] = [await lm.advance([[1], [2]], a), await lm.advance([[1], [2]], b)];
      assert.ok(maxAbsDiff(la.data, lb.data) <= 1e-5, 'states after the chains equal');
    });
  }
});
