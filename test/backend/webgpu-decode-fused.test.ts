/**
 * decodeKernels 'fused' (issue 11: fewer dispatches per batch-1 decode step): Mamba-1's x_proj as partial sums in
 * in_proj's epilogue (kernels/matvec.ts MATVEC_X ':p', added up by MAMBA1_SCAN 'p'), and the lm_head matvec writing
 * argmax partials (':a', no ARGMAX_PART). On the 'tiled' kernels (what GPUs run): tiny random Mamba-1 and Mamba-2
 * models with odd widths (channel blocks straddling the x/z boundary of in_proj, rows not a multiple of a
 * workgroup's), several layers, f32 and bf16 weights, against 'v1' and the CPU reference (logits ≤ 1e-4, greedy
 * tokens over 4 chained steps, recorded steps and chains included), the dispatch counts, batch 2 falling back to v1,
 * and the HF fixtures' decode logits. (SwiftShader takes ~1 s a step of the tiled kernels: the steps are few — one
 * recorded, the others replays of it — and each is checked.)
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { CpuBackend } from '../../src/backend/cpu/index.js';
import { RandomTensorSource } from '../../src/models/random.js';
import { buildModel } from '../../src/models/registry.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { loadModel } from '../../src/index.js';
import { assertSameDecode, hfFixture } from '../helpers.js';
import { kernelsOf, webgpuOrReason } from './webgpu-context.js';

const gpus: Record<string, WebGpuBackend | string> = {};
for (const weights of ['f32', 'bf16'] as const) {
  const prev = Object.values(gpus)[0];
  gpus[weights] = typeof prev === 'string' ? prev : await webgpuOrReason({ kernels: 'tiled', weights, fuse: true });
}
after(() => {
  for (const g of Object.values(gpus)) if (typeof g !== 'string') g.destroy();
});

const V = 523;
const MODELS: Record<string, Record<string, unknown>> = {
  // in_proj 2 × 1030 rows → 8 rows per workgroup, the last x block holds 6 channels; J = 7 + 2 · 5 = 17 (one layer:
  // the other models have several)
  'mamba wide': { model_type: 'mamba', hidden_size: 16, intermediate_size: 1030, num_hidden_layers: 1, state_size: 5, conv_kernel: 4, time_step_rank: 7, vocab_size: V, use_bias: false, use_conv_bias: true, tie_word_embeddings: true },
  // in_proj 2 × 53 rows → 2 rows per workgroup, one of them straddling x and z; no conv bias
  'mamba odd': { model_type: 'mamba', hidden_size: 24, intermediate_size: 53, num_hidden_layers: 2, state_size: 3, conv_kernel: 3, time_step_rank: 5, vocab_size: V, use_bias: false, use_conv_bias: false, tie_word_embeddings: false },
  mamba2: { model_type: 'mamba2', hidden_size: 40, num_hidden_layers: 2, state_size: 8, num_heads: 4, head_dim: 20, n_groups: 1, expand: 2, conv_kernel: 4, chunk_size: 16, vocab_size: V, tie_word_embeddings: true },
};
/** the prompt, a token at a time: the first step runs the model code, the second replays it */
const PROMPT = [5, 17];
/** greedy tokens chained on the device (each fed back without a read-back) */
const CHAIN = 4;
/**
 * SwiftShader runs the tiled kernels slowly: the wide model (2,060 in_proj rows) only with f32 weights, and bf16 weights
 * through Mamba-1 only ('fused' is opt-in; for Mamba-2 it changes only the lm_head's argmax partials, whose bf16 form
 * the 'mamba odd' bf16 case runs too)
 */
const CASES: [string, 'f32' | 'bf16'][] = [['mamba odd', 'f32'], ['mamba odd', 'bf16'], ['mamba2', 'f32'], ['mamba wide', 'f32']];

const build = (name: string, backend: WebGpuBackend | CpuBackend): CausalLM => buildModel(MODELS[name], name, new RandomTensorSource(11), { backend });

/** the logits of two steps after the prompt, CHAIN chained greedy tokens, dispatches and kernels of one step */
async function decode(lm: CausalLM, g: WebGpuBackend | null, B = 1): Promise<{ logits: Float32Array[]; ids: number[]; dispatches: number; names: string[] }> {
  const state = lm.createState(B);
  // the prompt one token at a time: SwiftShader compiles the decode kernels only (prefill pipelines cost minutes);
  // the first step runs the model code (kernels seen here), the next ones replay it
  let names: string[] = [], dispatches = 0;
  for (const t of PROMPT) {
    const ids = Array.from({ length: B }, (_, r) => [(t + r) % V]);
    if (g && names.length === 0) {
      const c0 = g.rt.counters.dispatches;
      names = (await kernelsOf(g, () => lm.advance(ids, state).then((l) => l.data))).names;
      dispatches = g.rt.counters.dispatches - c0;
    } else await lm.advance(ids, state);
  }
  const logits: Float32Array[] = [];
  for (const tok of [7, 9]) logits.push((await lm.advance(Array.from({ length: B }, (_, r) => [tok + r]), state)).data.slice());
  const ids: number[] = [];
  if (g) {
    // greedy on the device: advanceArgmax records the step, the chain replays it
    const chain = await lm.greedyChain!(Array.from({ length: B }, () => [3]), state, CHAIN);
    for (const row of chain!) ids.push(...row);
  } else {
    let next = 3;
    for (let i = 0; i < CHAIN; i++) {
      const l = (await lm.advance([[next]], state)).data;
      let best = 0;
      for (let v = 1; v < V; v++) if (l[v] > l[best]) best = v;
      ids.push((next = best));
    }
  }
  state.dispose();
  return { logits, ids, dispatches, names };
}

describe('webgpu decodeKernels fused: fewer dispatches per decode step, same results', () => {
  const cpuRef: Record<string, Awaited<ReturnType<typeof decode>>> = {};
  for (const [name, weights] of CASES) {
    {
      it(`${name} (${weights}): fused = v1${weights === 'f32' ? ' = CPU' : ''} (logits ≤ 1e-4, ${CHAIN} chained greedy tokens); dispatches per step`, async (t: TestContext) => {
        const g = gpus[weights];
        if (typeof g === 'string') return t.skip(g);
        const lm = build(name, g);
        const mamba1 = name.startsWith('mamba ');
        const L = MODELS[name].num_hidden_layers as number;
        try {
          g.decodeKernels = 'v1';
          const v1 = await decode(lm, g);
          g.decodeKernels = 'fused';
          const fused = await decode(lm, g);
          t.diagnostic(`${name} ${weights}: ${v1.dispatches} dispatches per decode step with v1, ${fused.dispatches} fused`);
          assertSameDecode(fused, v1, 1e-4, `${name} ${weights}: fused vs v1`);
          // Mamba-1: in_proj (+ x_proj partials), scan, out_proj per layer; v1 has x_proj's own dispatch
          const count = (names: string[], k: string) => names.filter((n) => n === k).length;
          if (mamba1) {
            assert.equal(count(fused.names, 'mamba1_xproj'), 0, `fused ran ${fused.names.join(', ')}`);
            assert.equal(count(fused.names, 'matvec_x'), L, `fused ran ${fused.names.join(', ')}`);
            assert.equal(count(v1.names, 'mamba1_xproj'), L);
          }
          assert.equal(fused.dispatches, v1.dispatches - (mamba1 ? L : 0), `${name}: fused ${fused.names.join(', ')}; v1 ${v1.names.join(', ')}`);
          if (weights === 'f32') {
            const ref = (cpuRef[name] ??= await decode(build(name, new CpuBackend()), null));
            assertSameDecode(fused, ref, 1e-4, `${name}: fused vs the CPU reference`);
          }
          // the greedy step of a chain: lm_head writes the argmax partials (no argmax_part) with fused
          const s = lm.createState(1);
          await lm.advance([[PROMPT[0]]], s);
          const step = await kernelsOf(g, () => lm.advanceArgmax!([[4]], s));
          s.dispose();
          assert.equal(count(step.names, 'argmax_part'), 0, `fused greedy step ran ${step.names.join(', ')}`);
          assert.equal(count(step.names, 'argmax_final'), 1);
        } finally {
          g.decodeKernels = 'v1';
        }
      });
    }
  }

  it('batch 2 takes the v1 kernels with fused set (the fused epilogues are one-row), same logits', async (t: TestContext) => {
    const g = gpus.f32;
    if (typeof g === 'string') return t.skip(g);
    const lm = build('mamba odd', g);
    try {
      g.decodeKernels = 'v1';
      const v1 = await decode(lm, g, 2);
      g.decodeKernels = 'fused';
      const fused = await decode(lm, g, 2);
      assert.ok(!fused.names.includes('matvec_x') && fused.names.includes('mamba1_xproj'), `batch 2 fused ran ${fused.names.join(', ')}`);
      assertSameDecode(fused, v1, 1e-6, 'batch 2: fused vs v1');
    } finally {
      g.decodeKernels = 'v1';
    }
  });
});

describe('webgpu decodeKernels fused: argmax partials in the lm_head matvec', () => {
  it('ties take the first index, NaN never wins, rows past a workgroup boundary; = argmax_part (v1)', async (t: TestContext) => {
    const g = gpus.f32;
    if (typeof g === 'string') return t.skip(g);
    const [K, N] = [16, 45];
    const x = Float32Array.from({ length: K }, (_, k) => 0.1 + 0.05 * k);
    const w = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.37) * 0.5);
    // rows 13 and 30 equal and largest (the first must win); row 7 NaN; row 44 (the last, alone in its workgroup) −∞
    for (let k = 0; k < K; k++) (w[13 * K + k] = 2), (w[30 * K + k] = 2), (w[44 * K + k] = -Infinity);
    w[7 * K + 3] = NaN;
    const W = g.fromHost(w, [N, K], { matrix: true });
    const pick = async (k: string) => {
      g.decodeKernels = k;
      return kernelsOf(g, () => g.argmaxRows(g.linear(g.fromHost(x.slice(), [1, K]), W, null)));
    };
    try {
      const v1 = await pick('v1'), fused = await pick('fused');
      assert.deepEqual(Array.from(fused.result), [13]);
      assert.deepEqual(Array.from(v1.result), [13]);
      assert.deepEqual(fused.names.filter((n) => n !== 'copy'), ['matvec_x', 'argmax_final'], `fused ran ${fused.names.join(', ')}`);
      // all rows −∞ or NaN: no index (−1), as argmax_part
      const bad = Float32Array.from({ length: N * K }, (_, i) => (i % 3 ? -Infinity : NaN));
      g.decodeKernels = 'fused';
      const none = await g.argmaxRows(g.linear(g.fromHost(x.slice(), [1, K]), g.fromHost(bad, [N, K], { matrix: true }), null));
      assert.deepEqual(Array.from(none), [-1]);
    } finally {
      g.decodeKernels = 'v1';
    }
  });
});

describe('webgpu decodeKernels fused: decode logits of the HF fixtures = v1', () => {
  // Mamba-1, where 'fused' changes the layer (x_proj partials in in_proj's epilogue, summed by the scan); for Mamba-2
  // it changes only the lm_head (argmax partials: the mamba2 model above, against v1 and the CPU, and the argmax case)
  for (const [name, which, B] of [['mamba-tiny', 'bf16', 1]] as const) {
    it(`${name} (${which}, batch ${B}): fused decode logits within 1e-5 of v1, greedy ids equal`, async (t: TestContext) => {
      const g = gpus[which];
      if (typeof g === 'string') return t.skip(g);
      const lm = (await loadModel(hfFixture(name), { backend: g })).lm;
      const run = async (k: string) => {
        g.decodeKernels = k;
        const state = lm.createState(B);
        for (const t of [1, 2]) await lm.advance([[t]], state);
        const logits: Float32Array[] = [];
        for (const tok of [7, 9]) logits.push((await lm.advance([[tok]], state)).data.slice());
        const ids: number[] = [];
        let next = [[3]];
        for (let i = 0; i < 3; i++) {
          const a = await lm.advanceArgmax!(next, state);
          ids.push(...Array.from(a!));
          next = Array.from(a!, (v) => [Math.max(0, v)]);
        }
        state.dispose();
        return { logits, ids };
      };
      try {
        assertSameDecode(await run('fused'), await run('v1'), 1e-5, `${name}: fused vs v1`);
      } finally {
        g.decodeKernels = 'v1';
      }
    });
  }
});
