/**
 * WebGPU decode fusion: dispatches recorded per decode token (so the count cannot silently regress), the
 * fused step giving the same logits as the unfused ops, and greedy argmax on the GPU.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/index.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { hfFixture, maxAbsDiff } from '../helpers.js';
import { webgpuOrReason } from './webgpu-context.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const gpu = await webgpuOrReason();
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});

// dispatches per layer of one decode token (fused / unfused); + a few for the embedding and head
// (Mamba-1: in_proj+norm+conv window, x_proj, scan, out_proj+residual; Mamba-2: in_proj, step, out_proj)
const CASES: [string, number, number][] = [['mamba-tiny', 4, 8], ['mamba2-tiny', 3, 7]];

describe('webgpu decode: fused single-token steps', () => {
  for (const [name, fused, unfused] of CASES) {
    it(`${name}: ≤ ${fused} dispatches per layer per decode token (${unfused} unfused), same logits`, async (t) => {
      if (typeof gpu === 'string') return t.skip(gpu);
      const model = await loadModel(hfFixture(name), { backend: gpu });
      const lm = model.lm;
      const layers = lm.numLayers;
      const prompt = [[1, 2, 3, 4, 5]];
      const step = async (fuse: boolean) => {
        gpu.fuse = fuse;
        const state = lm.createState(1);
        await lm.advance(prompt, state);
        const c0 = gpu.rt.counters.dispatches;
        const out = await lm.advance([[7]], state);
        const n = gpu.rt.counters.dispatches - c0;
        const out2 = await lm.advance([[9]], state);
        return { n, logits: [out.data, out2.data] };
      };
      try {
        const off = await step(false), on = await step(true);
        t.diagnostic(`${name}: ${layers} layers, ${off.n} dispatches per decode token unfused, ${on.n} fused`);
        assert.ok(on.n <= fused * layers + 4, `${on.n} dispatches for ${layers} layers (want ≤ ${fused} per layer + 4)`);
        assert.ok(off.n >= unfused * layers, `unfused: ${off.n}`);
        for (let i = 0; i < 2; i++) assert.ok(maxAbsDiff(on.logits[i], off.logits[i]) <= 1e-4, `step ${i}: fused logits differ`);
      } finally {
        gpu.fuse = true;
      }
    });
  }

  // every mixer variant through the fused steps: odd widths, Δ/B/C norms with and without weights (FalconMamba,
  // Jamba), grouped B/C and per-group gated norms, hybrids; two sequences decoded together
  for (const name of ['mamba-variant', 'falcon-mamba-tiny', 'jamba-tiny', 'mamba2-groups', 'bamba-variant']) {
    it(`${name}: fused decode steps (batch 2) = unfused within 1e-4`, async (t) => {
      if (typeof gpu === 'string') return t.skip(gpu);
      const lm = (await loadModel(hfFixture(name), { backend: gpu })).lm;
      const run = async (fuse: boolean) => {
        gpu.fuse = fuse;
        const state = lm.createState(2);
        await lm.advance([[1, 2, 3, 4], [5, 6, 7, 8]], state);
        const out: Float32Array[] = [];
        for (const tok of [7, 9]) out.push((await lm.advance([[tok], [tok + 2]], state)).data);
        return out;
      };
      try {
        const [off, on] = [await run(false), await run(true)];
        for (let i = 0; i < off.length; i++) {
          const d = maxAbsDiff(on[i], off[i]);
          assert.ok(d <= 1e-4, `step ${i}: fused logits differ by ${d}`);
        }
      } finally {
        gpu.fuse = true;
      }
    });
  }

  it('greedy generation takes the argmax on the GPU (tokens equal the CPU backend, batch with a row stopping early)', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const [g, c] = [await loadModel(hfFixture('mamba-tiny'), { backend: gpu }), await loadModel(hfFixture('mamba-tiny'))];
    const prompts = [[5, 6, 7], [8, 9, 10]];
    const base = await c.generate(prompts, { maxNewTokens: 8, stopTokens: [] });
    const stop = base.generated[0][3]; // row 0 stops early, row 1 goes on (unless it emits the same token)
    const lm = g.lm as typeof g.lm & { advanceArgmax: (...a: never[]) => Promise<Int32Array | null> };
    let calls = 0;
    const orig = lm.advanceArgmax.bind(lm);
    lm.advanceArgmax = (async (...a: Parameters<typeof orig>) => (calls++, orig(...a))) as typeof lm.advanceArgmax;
    const opts = { maxNewTokens: 8, stopTokens: [stop] };
    const [gg, cc] = [await g.generate(prompts, opts), await c.generate(prompts, opts)];
    assert.ok(calls > 0, 'advanceArgmax was used');
    assert.deepEqual(gg.tokens, cc.tokens);
    assert.deepEqual(gg.finishReason, cc.finishReason);
  });

  it('greedy generate runs chunks on the GPU and redoes a chunk when a row stops inside it: tokens and the returned state equal the CPU', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const [g, c] = [await loadModel(hfFixture('mamba2-tiny'), { backend: gpu }), await loadModel(hfFixture('mamba2-tiny'))];
    const prompts = [[5, 6, 7], [8, 9, 10]];
    const base = await c.generate(prompts, { maxNewTokens: 12, stopTokens: [] });
    const stop = base.generated[1][6]; // row 1 stops inside the first chunk
    let chains = 0;
    const lm = g.lm as typeof g.lm & { greedyChain: (...a: never[]) => Promise<Int32Array[] | null> };
    const orig = lm.greedyChain.bind(lm);
    lm.greedyChain = (async (...a: Parameters<typeof orig>) => (chains++, orig(...a))) as typeof lm.greedyChain;
    // pipeline false: the earlier path (greedyChain, one chunk at a time); true: queued chunks (webgpu-sample.test.ts)
    for (const opts of [12, 20].flatMap((max) => [false, true].map((pipeline) => ({ maxNewTokens: max, stopTokens: max === 12 ? [stop] : [], pipeline })))) {
      const [gg, cc] = [await g.generate(prompts, opts), await c.generate(prompts, opts)];
      assert.deepEqual(gg.tokens, cc.tokens);
      assert.deepEqual(gg.finishReason, cc.finishReason);
      // the returned states have read exactly the returned tokens: continuing gives the same tokens
      const more = { maxNewTokens: 4, stopTokens: [] };
      const [g2, c2] = [await g.generate([[3], [4]], { ...more, state: gg.state }), await c.generate([[3], [4]], { ...more, state: cc.state })];
      assert.deepEqual(g2.generated, c2.generated);
    }
    assert.ok(chains > 0, 'greedyChain was used');
    // the state copies taken before each chunk go back to the pool when done with, not when the collector runs
    const r0 = gpu.rt.counters.released;
    // (two chunks show it as three did, in half the steps)
    await g.generate([[5, 6, 7]], { maxNewTokens: 33, stopTokens: [], pipeline: false }); // chunks of 32, 1
    assert.ok(gpu.rt.counters.released - r0 >= 2 * g.lm.numLayers, `released ${gpu.rt.counters.released - r0} blocks`);
  });

  it('recorded decode steps: later steps replay the first one (no model code) with the same logits as running it', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    for (const name of ['mamba-tiny', 'mamba2-tiny']) {
      const lm: CausalLM = (await loadModel(hfFixture(name), { backend: gpu })).lm;
      const a = lm.createState(2), b = lm.createState(2);
      const prompt = [[3, 1, 4, 1], [5, 9, 2, 6]];
      await lm.advance(prompt, a);
      await lm.forward(prompt, { state: b });
      let replays = 0;
      const replay = gpu.rt.replay.bind(gpu.rt);
      gpu.rt.replay = (...x: Parameters<typeof replay>) => (replays++, replay(...x));
      try {
        for (const [i, tok] of [7, 8, 9, 10].entries()) {
          const got = await lm.advance([[tok], [tok + 1]], a); // step 0 records, 1… replay
          const want = (await lm.forward([[tok], [tok + 1]], { state: b, logitsToKeep: 1 })).logits.data; // model code every step
          assert.equal(maxAbsDiff(got.data, want), 0, `${name} step ${i}: replayed logits differ`);
        }
        assert.equal(replays, 3, `${name}: steps 1-3 replayed`);
        assert.deepEqual(a.seqLen, b.seqLen);
        const ids = (await lm.advanceArgmax!([[11], [12]], a))!; // another read-back: recorded anew, then replayed
        const ids2 = (await lm.advanceArgmax!([[13], [14]], a))!;
        const ref = await lm.forward([[11], [12]], { state: b, logitsToKeep: 1 });
        const V = lm.vocabSize;
        for (let r = 0; r < 2; r++) {
          const row = ref.logits.data.subarray(r * V, (r + 1) * V);
          assert.equal(ids[r], row.indexOf(Math.max(...row)), `${name}: argmax row ${r}`);
        }
        assert.equal(ids2.length, 2);
        assert.equal(replays, 4);
      } finally {
        gpu.rt.replay = replay;
      }
    }
  });

  it('a step recorded while another sequence runs records only its own work (the other state is not replayed into)', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const lm: CausalLM = (await loadModel(hfFixture('mamba-tiny'), { backend: gpu })).lm;
    const [a, b, ra, rb] = [lm.createState(1), lm.createState(1), lm.createState(1), lm.createState(1)];
    for (const [s, p] of [[a, [1, 2, 3]], [b, [4, 5, 6]], [ra, [1, 2, 3]], [rb, [4, 5, 6]]] as const) await lm.advance([[...p]], s);
    // b's forward has started (its ids uploaded and flushed by a's recording) when a's first step is recorded
    const [fb, la] = await Promise.all([lm.forward([[9]], { state: b, logitsToKeep: 1 }), lm.advance([[7]], a)]);
    const close = (x: Float32Array, y: Float32Array, what: string) => assert.ok(maxAbsDiff(x, y) <= 1e-5, `${what} differs by ${maxAbsDiff(x, y)}`);
    close(fb.logits.data, (await lm.forward([[9]], { state: rb, logitsToKeep: 1 })).logits.data, 'b, concurrent step');
    close(la.data, (await lm.forward([[7]], { state: ra, logitsToKeep: 1 })).logits.data, 'a, recorded step');
    for (const tok of [8, 9]) close((await lm.advance([[tok]], a)).data, (await lm.forward([[tok]], { state: ra, logitsToKeep: 1 })).logits.data, `a, step ${tok}`);
    // had a's recording taken in b's layers, replaying it would have advanced b's state twice more
    close((await lm.forward([[3]], { state: b, logitsToKeep: 1 })).logits.data, (await lm.forward([[3]], { state: rb, logitsToKeep: 1 })).logits.data, 'b after a\'s replays');
  });

  it('greedyChain: tokens fed back on the GPU equal step-by-step greedy decoding, and the state reads every step', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const lm: CausalLM = (await loadModel(hfFixture('mamba2-tiny'), { backend: gpu })).lm;
    const a = lm.createState(2), b = lm.createState(2);
    const prompt = [[3, 1, 4, 1], [5, 9, 2, 6]];
    await lm.advance(prompt, a);
    await lm.advance(prompt, b);
    const chain = (await lm.greedyChain!([[7], [8]], a, 6))!;
    let next = [[7], [8]];
    for (let s = 0; s < 6; s++) {
      const ids = (await lm.advanceArgmax!(next, b))!;
      assert.deepEqual([...chain[s]], [...ids], `step ${s}`);
      next = Array.from(ids, (v) => [v]);
    }
    assert.deepEqual(a.seqLen, b.seqLen);
    const [la, lb] = [await lm.advance([[1], [2]], a), await lm.advance([[1], [2]], b)];
    assert.equal(maxAbsDiff(la.data, lb.data), 0, 'states after the chain equal');
  });

  it('dispose returns a block to the pool: allocations reuse free blocks, lowest address first; the tensor refuses use', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    type Block = { ref: { id: number }; off: number };
    const at = (x: Tensor): Block => x.storage as Block;
    const addr = (b: Block): number => b.ref.id * 2 ** 32 + b.off;
    // a size class nothing else in this file uses: its free list holds only what this test releases
    const n = 12_345;
    const p = gpu.zeros([n]), q = gpu.zeros([n]);
    await q.data();
    const blocks = [at(p), at(q)].map(addr).sort((x, y) => x - y);
    const before = gpu.rt.stats().poolBytes;
    q.dispose();
    p.dispose();
    const r1 = gpu.zeros([n]);
    const r2 = gpu.zeros([n]);
    assert.equal(gpu.rt.stats().poolBytes, before, 'no new pool memory: the released blocks were handed out again');
    assert.deepEqual([addr(at(r1)), addr(at(r2))], blocks, 'the lower address first, whatever the order of release');
    assert.deepEqual([...(await r1.data())].slice(0, 3), [0, 0, 0]);
    await assert.rejects(async () => p.data(), /used after dispose/);
  });

  it('argmaxRows: first index of the largest value per row', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const V = 1000;
    const data = new Float32Array(3 * V).map((_, i) => Math.sin(i * 0.37));
    data[V + 17] = 5; data[V + 600] = 5; // tie: the first wins
    data[2 * V + 999] = 9;
    const idx = await gpu.argmaxRows(gpu.fromHost(data, [3, V]));
    const want = [0, 1, 2].map((r) => {
      let b = 0;
      for (let i = 1; i < V; i++) if (data[r * V + i] > data[r * V + b]) b = i;
      return b;
    });
    assert.deepEqual([...idx], want);
    // rows longer than one segment (2048): a tie across segments goes to the first; no finite value → −1
    const W = 5000;
    const long = new Float32Array(3 * W).map((_, i) => Math.cos(i * 0.11));
    long[3000] = 7; long[4500] = 7; long[100] = 6.5;
    long.fill(-Infinity, W, 2 * W); long[W + 4999] = NaN;
    long[2 * W + 2047] = 3; long[2 * W + 2048] = 3;
    assert.deepEqual([...(await gpu.argmaxRows(gpu.fromHost(long, [3, W])))], [3000, -1, 2047]);
  });
});
