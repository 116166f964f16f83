/**
 * decodeKernels 'mega' (issue 11): a batch-1 Mamba-2 or Mamba-1 decode step as ONE dispatch — a persistent kernel whose phases are
 * separated by grid barriers (kernels/mega.ts, mega.ts). On SwiftShader (what CI has): it runs two workgroups at once
 * at best (its thread pool has one worker per core; measured here: a probe of 2 workgroups passes, 3 time out, and 2
 * often time out inside a step because a spinning workgroup does not let the other run), so the parity tests run the
 * kernel with ONE workgroup (megaGroups 1: every barrier, its counter resets and the table staging still run) and a
 * two-workgroup case is checked when SwiftShader happens to run it (else reported). Checked against 'v1': the decode
 * logits of the HF Mamba-2 fixtures (one group; two groups with biases and a Δ clamp) and mamba-tiny (Mamba-1), f32 and
 * bf16 weights, of random mamba2-130m- and mamba-130m-shaped layers (f32) and of random Mamba-1 models of other shapes
 * (dt_rank, d_state, d_conv, biases; the 3-phase MEGA1 over several slices, and '-p4') and random Mamba-2 models of other
 * shapes (groups, head dims, d_state, d_conv; MEGA2's even split '-e' over several slices, the loads in flight '-u'), within 1e-5, and greedy tokens chained
 * on the device; the step's dispatches; FalconMamba and batch 2 declining; the fallbacks: a probe of more workgroups than run
 * at once (times out, clear status, no hang, results = v1) and a step's error flag read back (off, recorded again).
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { RandomTensorSource } from '../../src/models/random.js';
import { buildModel } from '../../src/models/registry.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { loadModel } from '../../src/index.js';
import { assertSameDecode, hfFixture, maxAbsDiff } from '../helpers.js';
import { kernelsOf, webgpuOrReason } from './webgpu-context.js';
import { defaultDecodeKernels } from '../../src/backend/webgpu/backend.js';

const made: WebGpuBackend[] = [];
const shared = new Map<string, WebGpuBackend | string>();
/** a backend (shared by the parity tests: its pipelines compile once; `own` for a test that turns 'mega' off) */
async function gpu(weights: 'f32' | 'bf16', megaGroups = 1, megaSpin = 1 << 22, own = false): Promise<WebGpuBackend | string> {
  const key = `${weights}/${megaGroups}/${megaSpin}`;
  const have = own ? undefined : shared.get(key);
  if (have) return have;
  const g = await webgpuOrReason({ kernels: 'tiled', weights, fuse: true, megaGroups, megaSpin });
  if (typeof g !== 'string') made.push(g);
  if (!own) shared.set(key, g);
  return g;
}
after(() => {
  for (const g of made) g.destroy();
});

/** mamba2-130m's layer shape, one layer, a small vocabulary */
const M130 = { model_type: 'mamba2', hidden_size: 768, num_hidden_layers: 1, state_size: 128, num_heads: 24, head_dim: 64, n_groups: 1, expand: 2, conv_kernel: 4, chunk_size: 256, vocab_size: 96, tie_word_embeddings: true };
/** mamba-130m's layer shape, one layer, a small vocabulary */
const M1_130 = { model_type: 'mamba', hidden_size: 768, intermediate_size: 1536, num_hidden_layers: 1, state_size: 16, conv_kernel: 4, time_step_rank: 48, vocab_size: 96, use_bias: false, use_conv_bias: true, tie_word_embeddings: true };
/** a small Mamba-1 with every bias */
const M1_SMALL = { model_type: 'mamba', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, state_size: 20, conv_kernel: 3, time_step_rank: 7, vocab_size: 61, use_bias: true, use_conv_bias: true, tie_word_embeddings: true };
const TINY = { model_type: 'mamba2', hidden_size: 40, num_hidden_layers: 2, state_size: 8, num_heads: 4, head_dim: 20, n_groups: 1, expand: 2, conv_kernel: 4, chunk_size: 16, vocab_size: 101, tie_word_embeddings: true };

/**
 * With kernels `k`: the first token (recorded; with 'mega' its probe is awaited after it), the logits of `steps` more
 * (recorded again once the kernel is ready, then replayed), CHAIN greedy tokens chained on the device; the kernels
 * and dispatch count of one greedy step
 */
async function decode(lm: CausalLM, g: WebGpuBackend, k: string, steps: number[], B = 1, names = true): Promise<{ logits: Float32Array[]; ids: number[]; names: string[] }> {
  g.decodeKernels = k;
  const state = lm.createState(B);
  const rows = (t: number) => Array.from({ length: B }, (_, r) => [t + r]);
  try {
    await lm.advance(rows(2), state);
    if (k.startsWith('mega')) assert.equal(await g.mega.ready(), '', 'the probe passed');
    const logits: Float32Array[] = [];
    for (const t of steps) logits.push((await lm.advance(rows(t), state)).data.slice());
    const chain = await lm.greedyChain!(rows(3), state, 3);
    const ids = chain!.flatMap((r) => Array.from(r));
    if (!names) return { logits, ids, names: [] };
    // a greedy step recorded afresh (another state: its first argmax step) for its kernels
    const s2 = lm.createState(B);
    await lm.advance(rows(2), s2);
    const s = await kernelsOf(g, () => lm.advanceArgmax!(rows(4), s2));
    s2.dispose();
    return { logits, ids: [...ids, ...Array.from(s.result!)], names: s.names };
  } finally {
    state.dispose();
  }
}

const count = (names: string[], k: string) => names.filter((n) => n === k).length;
/**
 * a greedy step's dispatches with kernels k: with '-h' the one kernel (gather, stack, LM head and argmax inside); else
 * (the default since session 33) the gather, the stack, the LM head with its argmax partials and the argmax reduce
 */
const greedyNames = (k: string, kernel: string) => (k.endsWith('-h') ? [kernel] : ['gather_rows', kernel, 'matvec_x', 'argmax_final']);

/**
 * `kernels` against v1 on `lm` (two decode steps, `slices` slices given to the one workgroup): logits within 1e-5,
 * greedy ids equal, the stack one `kernel` dispatch (with the LM head after it, or inside it for '-h')
 */
async function megaAgainstV1(t: TestContext, lm: CausalLM, g: WebGpuBackend, kernels: readonly string[], slices: number, what: string, kernel: string): Promise<void> {
  g.mega.opts.slices = slices;
  try {
    const v1 = await decode(lm, g, 'v1', [7, 9]);
    for (const k of kernels) {
      const mega = await decode(lm, g, k, [7, 9]);
      assertSameDecode(mega, v1, 1e-5, `${what} ${k}: mega vs v1`);
      t.diagnostic(`${k}: max |Δ| ${Math.max(...mega.logits.map((l, i) => maxAbsDiff(l, v1.logits[i]))).toExponential(2)}, v1's logits spread ${Math.max(...v1.logits.map((l, i) => maxAbsDiff(l, v1.logits[1 - i]))).toExponential(2)} between its two steps`);
      assert.deepEqual(mega.names.filter((n) => n !== 'copy'), greedyNames(k, kernel), `${k} ran ${mega.names.join(', ')}`);
      if (k.endsWith('-h')) assert.equal(g.mega.lastHeadDecline, '');
    }
  } finally {
    g.mega.opts.slices = undefined;
  }
}

describe('webgpu decodeKernels mega: one dispatch per Mamba-2 or Mamba-1 decode step, the same results as v1', () => {
  // (the projections' rows per pass: 8 ('mega'), 16, 32; Mamba-1 runs MEGA1: in_proj + conv + x_proj parts; the parts
  // summed, Δ, scan, gate; out_proj — or with '-p4' session 32's in_proj; u + x_proj; Δ, scan, gate; out_proj)
  const HF = [['mamba2-tiny', 'f32', 'mega-h', 'mega2'], ['mamba2-tiny', 'f32', 'mega-r16-o8', 'mega2'], ['mamba2-groups', 'bf16', 'mega-r32-o8-e-u4', 'mega2'], ['mamba2-groups', 'f32', 'mega-r32-h', 'mega2'], ['mamba2-groups', 'bf16', 'mega-r16', 'mega2'], ['mamba-tiny', 'f32', 'mega', 'mega1'], ['mamba-tiny', 'bf16', 'mega-r16-h', 'mega1']] as const;
  for (const [name, weights, k, kernel] of HF) {
    it(`HF ${name} (${weights}, ${k}): decode logits within 1e-5 of v1, chained greedy ids equal, a greedy step ${k.endsWith('-h') ? '1 dispatch' : 'the stack in 1 dispatch, the LM head after it'}`, async (t: TestContext) => {
      const g = await gpu(weights);
      if (typeof g === 'string') return t.skip(g);
      const lm = (await loadModel(hfFixture(name), { backend: g })).lm;
      const v1 = await decode(lm, g, 'v1', [7, 9]);
      const mega = await decode(lm, g, k, [7, 9]);
      assertSameDecode(mega, v1, 1e-5, `${name} ${weights}: mega vs v1`);
      // with '-h' the embedding gather, the stack, the LM head and its argmax: one dispatch; else the stack one
      assert.deepEqual(mega.names.filter((n) => n !== 'copy'), greedyNames(k, kernel), `${k} ran ${mega.names.join(', ')}`);
      if (k.endsWith('-h')) assert.equal(g.mega.lastHeadDecline, '');
      assert.equal(count(v1.names, kernel), 0);
      t.diagnostic(`${name} ${weights}: a greedy step records ${v1.names.length} dispatches with v1, ${mega.names.length} with mega`);
    });
  }

  // real widths, one layer (bf16 at these widths: checked once, not kept in the suite — it costs SwiftShader ~3 s a
  // case; the fixtures run bf16)
  // (and Mamba-2's even split over the H100's 132 slices: 25–26 in_proj rows, 11–12 head rows, 5–6 out_proj rows a slice)
  // (the projections' loads in flight, '-u8' / '-u4': K 768 and 1536 run their unrolled loops at these widths)
  for (const [name, config, ks, slices] of [['mamba2-130m', M130, ['mega-r16'], 0], ['mamba2-130m', M130, ['mega-r32-o8-e', 'mega-r32-o8-e-u8'], 132], ['mamba-130m', M1_130, ['mega-r32', 'mega-r32-o8-u4'], 0]] as const) {
    it(`a random ${name}-shaped layer (f32, ${ks.join(', ')}${slices ? `, ${slices} slices` : ''}): logits within 1e-5 of v1, chained greedy ids equal`, async (t: TestContext) => {
      const g = await gpu('f32');
      if (typeof g === 'string') return t.skip(g);
      const lm = buildModel(config, name, new RandomTensorSource(5), { backend: g });
      g.mega.opts.slices = slices || undefined;
      try {
        const v1 = await decode(lm, g, 'v1', [7], 1, false);
        for (const k of ks) {
          const c0 = g.rt.counters.dispatches;
          const mega = await decode(lm, g, k, [7], 1, false);
          assertSameDecode(mega, v1, 1e-5, `${name}-shaped ${k}: mega vs v1`);
          t.diagnostic(`${k}: max |Δ| ${maxAbsDiff(mega.logits[0], v1.logits[0]).toExponential(2)}`);
          // 2 logits steps (gather, stack, lm_head) + the chain's 3 greedy steps (+ the argmax reduce), v1's first step
          assert.ok(g.rt.counters.dispatches - c0 < 40, `${g.rt.counters.dispatches - c0} dispatches`);
        }
      } finally {
        g.mega.opts.slices = undefined;
      }
    });
  }

  // Mamba-1 in 3 phases (session 33): shapes the fixtures lack — dt_rank, d_state, d_conv, the conv bias and the
  // in/out_proj biases varied — each against v1 (the first also session 32's 4 phases, '-p4'); `slices` > 1 gives the one
  // workgroup several slices, so the x_proj parts of several slices are summed across the barrier and the split
  // boundaries (in_proj rows straddling x and z, 2–7 channels a slice) are crossed as with many workgroups
  const M1 = [
    // [name, config, weights, slices]
    ['R 3, N 5, Kc 2, conv bias', { hidden_size: 24, intermediate_size: 48, time_step_rank: 3, state_size: 5, conv_kernel: 2, use_conv_bias: true, use_bias: false }, 'f32', 3],
    ['R 7, N 20, Kc 3, no conv bias, proj biases', { hidden_size: 32, intermediate_size: 64, time_step_rank: 7, state_size: 20, conv_kernel: 3, use_conv_bias: false, use_bias: true }, 'f32', 5],
    ['R 16, N 16, Kc 4, conv bias', { hidden_size: 40, intermediate_size: 80, time_step_rank: 16, state_size: 16, conv_kernel: 4, use_conv_bias: true, use_bias: false }, 'f32', 13],
    ['R 5, N 3, Kc 4, no conv bias', { hidden_size: 32, intermediate_size: 96, time_step_rank: 5, state_size: 3, conv_kernel: 4, use_conv_bias: false, use_bias: false }, 'bf16', 4],
  ] as const;
  /**
   * random weights that make the state matter in the logits (RandomTensorSource's Δ ≈ 0.01, zero biases and 0.02
   * embeddings leave the scan's share of a logit ~1e-4: a third of x_proj left out moved them by 3e-5 only): Δ ≈ 0.3
   * from the dt_proj bias, the other biases (conv, in/out_proj) U(±0.3), embeddings U(±1)
   */
  class Lively extends RandomTensorSource {
    override float32(name: string): Float32Array {
      const out = super.float32(name);
      if (/dt_proj\.bias$/.test(name)) out.fill(Math.log(Math.expm1(0.3)));
      else if (/\.bias$/.test(name)) for (let i = 0; i < out.length; i++) out[i] = 0.3 * Math.sin(1.7 * i + name.length);
      else if (/embed/.test(name)) for (let i = 0; i < out.length; i++) out[i] *= 1 / (0.02 * Math.sqrt(3));
      return out;
    }
  }
  for (const [what, shape, weights, slices] of M1) {
    // (rows per pass: in_proj/out_proj at 8, 16 with out_proj at 8, 32, 8)
    const kernels = [['mega-h', 'mega-p4-h'], ['mega-r16-o8-h'], ['mega-r32'], ['mega-h']][M1.findIndex((m) => m[0] === what)];
    it(`a random Mamba-1, ${what} (${weights}, ${slices} slices): ${kernels.join(', ')} within 1e-5 of v1, greedy ids equal, the stack one dispatch`, async (t: TestContext) => {
      const g = await gpu(weights);
      if (typeof g === 'string') return t.skip(g);
      const config = { model_type: 'mamba', num_hidden_layers: 2, vocab_size: 61, tie_word_embeddings: true, ...shape };
      const lm = buildModel(config, 'mamba', new Lively(17), { backend: g });
      await megaAgainstV1(t, lm, g, kernels, slices, `${what} ${weights}`, 'mega1');
    });
  }

  // Mamba-2's even split ('-e', session 34): shapes the fixtures lack — groups (2, 4, 3: the B/C groups and the gated
  // norm's), head dims (8, 4, 32, 20), d_state (16, 12, 40, 8), conv kernels (4, 3, 2, 4), biases — with `slices`
  // giving the one workgroup several, so that slices straddle heads and groups in the SSD phase (case 2: 40 slices,
  // more than its 32 head rows and 16 out_proj rows: empty slices; case 3: 64 rows a slice, four passes of 16; its
  // '-u4': bf16 rows of 16 and 32 vec4s over 8 lanes run the unrolled loop)
  const M2 = [
    // [name, config, weights, slices, kernels, norm groups]
    ['4 heads × 8, 2 groups, N 16, Kc 4, conv and proj biases', { hidden_size: 16, num_heads: 4, head_dim: 8, n_groups: 2, state_size: 16, conv_kernel: 4, use_conv_bias: true, use_bias: true }, 'f32', 5, ['mega-e-h', 'mega-r16-o8-e'], 'group'],
    ['8 heads × 4, 4 groups, N 12, Kc 3, no conv bias', { hidden_size: 16, num_heads: 8, head_dim: 4, n_groups: 4, state_size: 12, conv_kernel: 3, use_conv_bias: false, use_bias: false }, 'f32', 40, ['mega-r32-o8-e'], 'group'],
    ['8 heads × 32, 1 group, N 40, Kc 2, Δ clamp', { hidden_size: 128, num_heads: 8, head_dim: 32, n_groups: 1, state_size: 40, conv_kernel: 2, use_conv_bias: true, use_bias: false, time_step_limit: [0.05, 0.2] }, 'bf16', 4, ['mega-r16-e-h', 'mega-r32-e-u4'], 'full'],
    ['6 heads × 20, 3 groups, N 8, Kc 4', { hidden_size: 60, num_heads: 6, head_dim: 20, n_groups: 3, state_size: 8, conv_kernel: 4, use_conv_bias: true, use_bias: false }, 'f32', 13, ['mega-e'], 'group'],
  ] as const;
  /** Lively's weights for Mamba-2: Δ ≈ 0.3 from dt_bias, every norm's weights (the layers', the gated norm's, the final) and D varied (else all 1) */
  class Lively2 extends Lively {
    override float32(name: string): Float32Array {
      const out = super.float32(name);
      if (/dt_bias$/.test(name)) out.fill(Math.log(Math.expm1(0.3)));
      else if (/norm[^.]*\.weight$|\.D$/.test(name)) for (let i = 0; i < out.length; i++) out[i] = 1 + 0.5 * Math.sin(0.9 * i + name.length);
      return out;
    }
  }
  for (const [what, shape, weights, slices, kernels, norm] of M2) {
    it(`a random Mamba-2, ${what} (${weights}, ${slices} slices, ${norm} gated norm): ${kernels.join(', ')} within 1e-5 of v1, greedy ids equal, the stack one dispatch`, async (t: TestContext) => {
      const g = await gpu(weights);
      if (typeof g === 'string') return t.skip(g);
      const config = { model_type: 'mamba2', num_hidden_layers: 2, expand: 2, chunk_size: 16, vocab_size: 61, tie_word_embeddings: true, ...shape };
      const lm = buildModel(config, 'mamba2', new Lively2(19), { backend: g, normGroups: norm });
      await megaAgainstV1(t, lm, g, kernels, slices, `${what} ${weights}`, 'mega2');
    });
  }

  it("'-e' selects MEGA2's even split (variant …e), the default session 32's blocks; Mamba-1 ignores it", async (t: TestContext) => {
    const g = await gpu('f32');
    if (typeof g === 'string') return t.skip(g);
    const lm = (await loadModel(hfFixture('mamba2-tiny'), { backend: g })).lm;
    const variants: Record<string, string[]> = {};
    for (const k of ['mega-r32-o8', 'mega-r32-o8-e', 'mega-e-h']) {
      g.decodeKernels = k;
      const s = lm.createState(1);
      await lm.advance([[2]], s);
      assert.equal(await g.mega.ready(), '');
      const step = await kernelsOf(g, () => lm.advanceArgmax!([[5]], s));
      s.dispose();
      variants[k] = step.variants.filter((v, i) => step.names[i] === 'mega2');
    }
    assert.match(variants['mega-r32-o8'].join(), /^mega2:f\d+r32o8$/);
    assert.match(variants['mega-r32-o8-e'].join(), /^mega2:f\d+r32o8e$/);
    assert.match(variants['mega-e-h'].join(), /^mega2:f\d+r8ea$/);
    assert.equal(g.mega.opts.even, true);
    assert.equal(g.mega.opts.head, true);
    g.decodeKernels = 'mega-r32-o8-e-u8-h';
    assert.deepEqual([g.mega.opts.even, g.mega.opts.loads, g.mega.opts.head, g.mega.opts.outRows], [true, 8, true, 8]);
    g.decodeKernels = 'mega-r32-o8';
    assert.equal(g.mega.opts.even, false);
    assert.equal(g.mega.opts.loads, undefined);
    // a Mamba-1 stack under '-e': its 3-phase kernel, the variant without 'e'
    const m1 = (await loadModel(hfFixture('mamba-tiny'), { backend: g })).lm;
    g.decodeKernels = 'mega-r32-o8-e';
    const s1 = m1.createState(1);
    await m1.advance([[2]], s1);
    assert.equal(await g.mega.ready(), '');
    const step1 = await kernelsOf(g, () => m1.advance([[5]], s1));
    s1.dispose();
    assert.match(step1.variants.filter((v, i) => step1.names[i] === 'mega1').join(), /^mega1:f\d+r32o8$/);
  });

  it("'-p4' selects session 32's 4-phase Mamba-1 kernel (the variant), the default 3; '-o8' out_proj's rows", async (t: TestContext) => {
    const g = await gpu('f32');
    if (typeof g === 'string') return t.skip(g);
    const lm = (await loadModel(hfFixture('mamba-tiny'), { backend: g })).lm;
    const variants: Record<string, string[]> = {};
    for (const k of ['mega', 'mega-r16-p4', 'mega-r32-o8']) {
      g.decodeKernels = k;
      const s = lm.createState(1);
      await lm.advance([[2]], s);
      assert.equal(await g.mega.ready(), '');
      const step = await kernelsOf(g, () => lm.advance([[5]], s));
      s.dispose();
      variants[k] = step.variants.filter((v, i) => step.names[i] === 'mega1');
    }
    assert.equal(g.mega.opts.mamba1Phases, 3);
    assert.equal(g.mega.opts.outRows, 8);
    assert.equal(g.mega.opts.head, false, "the LM head outside the kernel unless '-h'");
    g.decodeKernels = 'mega-r32-o8-h';
    assert.equal(g.mega.opts.head, true);
    assert.equal(g.mega.opts.outRows, 8);
    assert.match(variants['mega-r32-o8'].join(), /^mega1:f\d+r32o8$/);
    assert.match(variants.mega.join(), /^mega1:f\d+r8$/);
    assert.match(variants['mega-r16-p4'].join(), /^mega1:f\d+r16p4$/);
  });

  // an LM head of its own (not the embedding): f32 and bf16, Mamba-2 and Mamba-1
  for (const [name, config, weights] of [['mamba2', { ...TINY, tie_word_embeddings: false }, 'f32'], ['mamba2', { ...TINY, tie_word_embeddings: false }, 'bf16'], ['mamba', { ...M1_130, hidden_size: 32, intermediate_size: 64, time_step_rank: 4, tie_word_embeddings: false }, 'bf16']] as const) {
    it(`a random ${name} with an untied LM head (${weights}): logits within 1e-5 of v1, greedy ids equal, the step one dispatch`, async (t: TestContext) => {
      const g = await gpu(weights);
      if (typeof g === 'string') return t.skip(g);
      const lm = buildModel(config, name, new RandomTensorSource(7), { backend: g });
      const v1 = await decode(lm, g, 'v1', [7, 9]);
      const mega = await decode(lm, g, 'mega-h', [7, 9]);
      assertSameDecode(mega, v1, 1e-5, `untied ${name} ${weights}: mega vs v1`);
      assert.deepEqual(mega.names.filter((n) => n !== 'copy'), [name === 'mamba' ? 'mega1' : 'mega2'], `mega ran ${mega.names.join(', ')}`);
    });
  }

  // a stack over several matrix arenas (mamba2-2.8b bf16: 5.1 GB of layer matrices, 2 GB a binding): forced here with
  // arenaBytes (TINY's in_proj 28,800 bytes, out_proj 12,800: 48,000 makes 2 arenas, 30,000 makes 4)
  for (const [bytes, arenas] of [[48_000, 2], [30_000, 4]] as const) {
    it(`layer matrices over ${arenas} arenas (arenaBytes ${bytes}): logits within 1e-5 of v1, greedy ids equal`, async (t: TestContext) => {
      const g = await gpu('f32');
      if (typeof g === 'string') return t.skip(g);
      const lm = buildModel(TINY, 'mamba2', new RandomTensorSource(11), { backend: g });
      g.mega.opts.arenaBytes = bytes;
      try {
        const v1 = await decode(lm, g, 'v1', [7, 9]);
        const mega = await decode(lm, g, 'mega-h', [7, 9]);
        assertSameDecode(mega, v1, 1e-5, `${arenas} arenas: mega vs v1`);
        const buffers = 7 + arenas; // the greedy step: ids, id out, the arenas, constants, scratch, states, the head
        if (buffers <= g.rt.maxStorageBuffers) assert.deepEqual(mega.names.filter((n) => n !== 'copy'), ['mega2'], `mega ran ${mega.names.join(', ')}`);
        else {
          assert.ok(mega.names.includes('mega2') || /binds \d+ buffers/.test(g.mega.lastDecline), `mega ran ${mega.names.join(', ')}; ${g.mega.lastDecline}`);
          t.diagnostic(`${buffers} buffers > the adapter's ${g.rt.maxStorageBuffers}: ${g.mega.lastHeadDecline || g.mega.lastDecline}`);
        }
      } finally {
        g.mega.opts.arenaBytes = undefined;
      }
    });
  }

  it('a greedy step over the adapter\'s bindings runs the rows (then the LM head\'s dispatches), the chain still right', async (t: TestContext) => {
    const g = await gpu('f32');
    if (typeof g === 'string') return t.skip(g);
    const lm = buildModel(TINY, 'mamba2', new RandomTensorSource(13), { backend: g });
    const rt = g.rt as { maxStorageBuffers: number };
    const limit = rt.maxStorageBuffers;
    if (limit < 10) return t.skip(`the adapter binds ${limit} storage buffers`);
    g.mega.opts.arenaBytes = 30_000; // 4 arenas: the greedy step binds 10 buffers, the rows 9 at most
    try {
      const v1 = await decode(lm, g, 'v1', [7, 9]);
      rt.maxStorageBuffers = 9;
      const mega = await decode(lm, g, 'mega-h', [7, 9]);
      assertSameDecode(mega, v1, 1e-5, 'rows path: mega vs v1');
      assert.match(g.mega.lastHeadDecline, /the greedy step binds 10 buffers; the adapter allows 9/);
      assert.deepEqual(mega.names.filter((n) => n !== 'copy'), ['gather_rows', 'mega2', 'matvec_x', 'argmax_final'], `mega ran ${mega.names.join(', ')}`);
    } finally {
      rt.maxStorageBuffers = limit;
      g.mega.opts.arenaBytes = undefined;
    }
  });

  it('a layer matrix over one arena declines: = v1 exactly, the reason said', async (t: TestContext) => {
    const g = await gpu('f32');
    if (typeof g === 'string') return t.skip(g);
    const lm = buildModel(TINY, 'mamba2', new RandomTensorSource(12), { backend: g });
    g.mega.opts.arenaBytes = 20_000;
    try {
      const v1 = await decode(lm, g, 'v1', [7], 1, false);
      const mega = await decode(lm, g, 'mega', [7], 1, false);
      assertSameDecode(mega, v1, 0, 'declined: exactly v1');
      assert.match(g.mega.lastDecline, /a layer matrix exceeds one binding \(20000 bytes\)/);
    } finally {
      g.mega.opts.arenaBytes = undefined;
    }
  });

  it('FalconMamba (Δ/B/C norms inside the layer) declines: = v1 exactly, the reason said', async (t: TestContext) => {
    const g = await gpu('f32');
    if (typeof g === 'string') return t.skip(g);
    const lm = (await loadModel(hfFixture('falcon-mamba-tiny'), { backend: g })).lm;
    const run = async (k: string) => {
      g.decodeKernels = k;
      const s = lm.createState(1);
      await lm.advance([[2]], s);
      const logits = (await lm.advance([[7]], s)).data.slice();
      const step = await kernelsOf(g, () => lm.advanceArgmax!([[4]], s));
      s.dispose();
      return { logits, names: step.names };
    };
    const v1 = await run('v1');
    const mega = await run('mega');
    assert.match(g.mega.lastDecline, /Δ\/B\/C norms/);
    assert.equal(count(mega.names, 'mega1'), 0);
    assert.deepEqual(mega.logits, v1.logits);
  });

  it('batch 2 declines (the multi-dispatch kernels run, exactly v1)', async (t: TestContext) => {
    const g = await gpu('f32');
    if (typeof g === 'string') return t.skip(g);
    const lm = buildModel(TINY, 'tiny', new RandomTensorSource(3), { backend: g });
    g.decodeKernels = 'mega';
    const s1 = lm.createState(1);
    await lm.advance([[1]], s1); // (the plan and its probe: made by a batch-1 step)
    s1.dispose();
    assert.equal(await g.mega.ready(), '');
    const v1 = await decode(lm, g, 'v1', [7], 2);
    const mega = await decode(lm, g, 'mega', [7], 2);
    assert.equal(count(mega.names, 'mega2'), 0, `batch 2 ran ${mega.names.join(', ')}`);
    assertSameDecode(mega, v1, 0, 'batch 2: mega vs v1');
  });

  // Mamba-2 (TINY) and Mamba-1 (3 phases: its work split over the workgroups, the x_proj parts and u crossing them);
  // a real GPU runs 16 workgroups (SwiftShader 2 at best)
  for (const [name, config] of [['mamba2', TINY], ['mamba', M1_SMALL]] as const) {
    it(`several workgroups (${name}; 2 when SwiftShader runs them at once, 16 on a GPU): logits within 1e-5 of v1`, async (t: TestContext) => {
      const g = await gpu('f32', 2, 1 << 18, true);
      if (typeof g === 'string') return t.skip(g);
      // (and on a GPU Mamba-2's out_proj rows split evenly, '-o8', as Mamba-1's 3-phase kernel always splits them; then
      // Mamba-2's even split, '-e', across the workgroups)
      const sw = /swiftshader|llvmpipe|lavapipe/i.test(g.name);
      const k = sw ? 'mega' : name === 'mamba2' ? 'mega-g16-o8' : 'mega-g16';
      const lm = buildModel(config, name, new RandomTensorSource(3), { backend: g });
      g.decodeKernels = k;
      const probe = lm.createState(1);
      await lm.advance([[1]], probe);
      probe.dispose();
      if (await g.mega.ready()) return t.skip(`${g.mega.opts.groups} workgroups did not run at once: ${g.mega.status}`);
      const v1 = await decode(lm, g, 'v1', [7, 9]);
      const mega = await decode(lm, g, k, [7, 9]).catch((e) => e as Error);
      // a barrier that timed out inside a step is read back (`check` on a replay) and turns mega off: reported, not failed
      if (g.mega.status) return t.skip(`a step's barrier timed out: ${g.mega.status}`);
      if (mega instanceof Error) throw mega;
      assertSameDecode(mega, v1, 1e-5, `${g.mega.opts.groups} workgroups: mega vs v1`);
      assert.ok(mega.names.includes(name === 'mamba' ? 'mega1' : 'mega2'), `ran ${mega.names.join(', ')}`);
      if (name === 'mamba2') {
        const e = await decode(lm, g, `${k}-e`, [7, 9]).catch((err) => err as Error);
        if (g.mega.status) return t.skip(`'-e': a step's barrier timed out: ${g.mega.status}`);
        if (e instanceof Error) throw e;
        assertSameDecode(e, v1, 1e-5, `${g.mega.opts.groups} workgroups, '-e': mega vs v1`);
      }
    });
  }
});

describe('webgpu decodeKernels mega: memory', () => {
  it("a state's moved buffer and scratch are destroyed when the state is disposed (not left to the collector)", async (t: TestContext) => {
    const g = await gpu('f32');
    if (typeof g === 'string') return t.skip(g);
    const lm = buildModel(TINY, 'tiny', new RandomTensorSource(3), { backend: g });
    g.decodeKernels = 'mega';
    const warm = lm.createState(1);
    await lm.advance([[1]], warm);
    warm.dispose();
    assert.equal(await g.mega.ready(), '');
    const s = lm.createState(1);
    const before = g.rt.stats().deviceBytes;
    await lm.advance([[2]], s); // the first mega step of this state: its tensors moved, its scratch made
    await lm.advance([[3]], s);
    const grown = g.rt.stats().deviceBytes - before;
    // 2 layers: conv windows 2 × (80 + 16) × 4 and SSM states 2 × 4 × 20 × 8 floats, rounded to 64, plus the scratch
    const stateBytes = 2 * 4 * (Math.ceil((96 * 4) / 64) * 64 + Math.ceil((4 * 20 * 8) / 64) * 64);
    assert.ok(grown >= stateBytes, `grew ${grown} bytes, the state alone is ${stateBytes}`);
    const held = g.rt.stats().deviceBytes;
    s.dispose();
    const freed = held - g.rt.stats().deviceBytes;
    assert.ok(freed >= stateBytes, `disposing the state gave back ${freed} bytes (its buffer: ${stateBytes})`);
  });
});

/** `fn` with console.warn captured: its messages */
async function warnings(fn: () => Promise<void>): Promise<string[]> {
  const warn = console.warn;
  const warned: string[] = [];
  console.warn = (m: string) => void warned.push(m);
  try {
    await fn();
  } finally {
    console.warn = warn;
  }
  return warned;
}

describe('webgpu decodeKernels mega: the fallbacks', () => {
  it('more workgroups than run at once: the probe times out (no hang), a clear status, the v1 kernels run', async (t: TestContext) => {
    // SwiftShader runs at most one workgroup per core: 64 never fit on the machines CI has; a real GPU (an H100 holds
    // ~1k of these workgroups at once) is given 8192
    const g = await gpu('f32', 64, 1 << 16, true);
    if (typeof g === 'string') return t.skip(g);
    const G = /swiftshader|llvmpipe|lavapipe/i.test(g.name) ? 64 : 8192;
    const lm = buildModel(TINY, 'tiny', new RandomTensorSource(3), { backend: g });
    const v1 = await decode(lm, g, 'v1', [7]);
    g.decodeKernels = `mega-g${G}`;
    const s = lm.createState(1);
    let why = '';
    const warned = await warnings(async () => {
      await lm.advance([[1]], s);
      why = await g.mega.ready();
    });
    s.dispose();
    assert.match(why, new RegExp(`decodeKernels 'mega(-g${G})?' is off: the co-residency probe of ${G} workgroups timed out`));
    assert.deepEqual(warned, [why]);
    // the steps with 'mega' set run the multi-dispatch kernels and match v1 exactly
    const st = lm.createState(1);
    await lm.advance([[2]], st);
    const logits = [(await lm.advance([[7]], st)).data.slice()];
    const step = await kernelsOf(g, () => lm.advanceArgmax!([[4]], st));
    st.dispose();
    assert.equal(count(step.names, 'mega2'), 0);
    assert.deepEqual(logits[0], v1.logits[0]);
  });

  // (Mamba-1 too: its 3-phase kernel's flag slot, 3L + 1, where the host writes and reads it)
  for (const [name, config, kernel] of [['mamba2', TINY, 'mega2'], ['mamba', M1_SMALL, 'mega1']] as const) {
    it(`a step's error flag read back (${name}): mega turns off with a warning and the step is recorded again with v1`, async (t: TestContext) => {
      const g = await gpu('f32', 1, 1 << 22, true);
      if (typeof g === 'string') return t.skip(g);
      const lm = buildModel(config, name, new RandomTensorSource(3), { backend: g });
      const v1 = await decode(lm, g, 'v1', [7, 9]);
      g.decodeKernels = 'mega';
      const s = lm.createState(1);
      const warned = await warnings(async () => {
        await lm.advance([[2]], s);
        assert.equal(await g.mega.ready(), '');
        const first = (await lm.advance([[7]], s)).data.slice(); // recorded with mega
        assert.ok(Math.abs(first[0] - v1.logits[0][0]) <= 1e-5);
        // what a barrier that timed out leaves: the flag set in the state's scratch (then every step returns at once)
        const plan = (g.mega as unknown as { plans: { scratch: GPUBuffer[]; nb: number }[] }).plans[0];
        for (const b of plan.scratch) g.rt.device.queue.writeBuffer(b, plan.nb * 4, new Uint32Array([1]));
        // a replay: its result is not v1's (the kernel saw the flag and returned at once); the flag is read
        const replay = (await lm.advance([[9]], s)).data.slice();
        assert.ok(maxAbsDiff(replay, v1.logits[1]) > 1e-3, 'the kernel returned at once on the flag');
        await g.sync();
        await new Promise((r) => setTimeout(r, 50));
      });
      assert.match(g.mega.status, /a grid barrier of the one-dispatch step timed out/);
      assert.deepEqual(warned, [g.mega.status]);
      // from here the multi-dispatch kernels: recorded again (the epoch moved), no mega dispatch
      const step = await kernelsOf(g, () => lm.advance([[3]], s));
      s.dispose();
      assert.equal(count(step.names, kernel), 0, `after the flag: ${step.names.join(', ')}`);
      assert.ok(step.names.length > 4);
    });
  }
});

describe('webgpu decodeKernels: the default by adapter', () => {
  it("'mega-r32-o8' on NVIDIA adapters with the tuned kernels, 'v1' on others and on the 'simple' kernels", () => {
    assert.equal(defaultDecodeKernels('nvidia nvidia-h100-80gb-hbm3 [dawn: disable_robustness]', 'tiled'), 'mega-r32-o8');
    assert.equal(defaultDecodeKernels('NVIDIA GeForce RTX 4090', 'tiled'), 'mega-r32-o8');
    assert.equal(defaultDecodeKernels('nvidia nvidia-h100-80gb-hbm3', 'simple'), 'v1');
    for (const name of ['google swiftshader device (subzero)', 'amd radeon', 'apple m3', 'intel arc', 'adapter', 'nvidiax fake']) {
      assert.equal(defaultDecodeKernels(name, 'tiled'), 'v1', name);
    }
  });
  it('a backend made without decodeKernels takes the rule for its adapter', async (t: TestContext) => {
    const b = await webgpuOrReason({ kernels: 'tiled' });
    if (typeof b === 'string') return t.skip(b);
    try {
      const adapter = b.name.replace(/^webgpu\((.*)\)$/, '$1');
      assert.equal(b.decodeKernels, process.env.MAMBA_TS_WEBGPU_DECODE || defaultDecodeKernels(adapter, 'tiled'));
    } finally {
      b.destroy();
    }
  });
});
