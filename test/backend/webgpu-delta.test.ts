/**
 * Δ handed out by the WebGPU fused decode steps (issue 18; Backend.stepDelta): with `onDelta` set, mamba1Step /
 * mamba2Step still run and their step kernels (MAMBA1_SCAN v1 and 'p', MAMBA1_SCAN_SG, MAMBA2_STEP, MAMBA2_STEP_SG)
 * write Δ. On the 'tiled' kernels (what GPUs run), tiny random Mamba-1 (odd widths) and Mamba-2 models, each
 * decodeKernels kind the device runs: the events equal the op sequence's (`stepDelta` false, observeDelta) within
 * 1e-5 relative (WGSL's softplus against processDt's float64 one) and the CPU backend's within 1e-5; logits
 * unchanged by observing.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { CpuBackend } from '../../src/backend/cpu/index.js';
import { RandomTensorSource } from '../../src/models/random.js';
import { buildModel } from '../../src/models/registry.js';
import type { CausalLM, DeltaEvent } from '../../src/models/causal-lm.js';
import { maxAbsDiff } from '../helpers.js';
import { webgpuOrReason } from './webgpu-context.js';

const gpu = await webgpuOrReason({ kernels: 'tiled', weights: 'f32', fuse: true });
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});

const V = 97;
const MODELS: Record<string, Record<string, unknown>> = {
  // 53 channels: the scan's last block of 16 channels holds 5; Δ'/B/C of ranks 5 / 3
  'mamba odd': { model_type: 'mamba', hidden_size: 24, intermediate_size: 53, num_hidden_layers: 2, state_size: 3, conv_kernel: 3, time_step_rank: 5, vocab_size: V, use_bias: false, use_conv_bias: true, tie_word_embeddings: true },
  // 2 groups, head_dim 20: the step's blocks of rows straddle the head's end
  mamba2: { model_type: 'mamba2', hidden_size: 40, num_hidden_layers: 2, state_size: 8, num_heads: 4, head_dim: 20, n_groups: 2, expand: 2, conv_kernel: 4, chunk_size: 16, vocab_size: V, tie_word_embeddings: true },
};

const build = (name: string, backend: WebGpuBackend | CpuBackend): CausalLM => buildModel(MODELS[name], name, new RandomTensorSource(5), { backend });

/** a prompt fed one token at a time (SwiftShader compiles the decode kernels only), Δ observed or not */
async function decode(lm: CausalLM, observe: boolean): Promise<{ events: DeltaEvent[]; logits: Float32Array[] }> {
  const events: DeltaEvent[] = [];
  const state = lm.createState(1);
  const logits: Float32Array[] = [];
  for (const t of [5, 17, 60, 2]) logits.push((await lm.advance([[t]], state, observe ? { onDelta: (e) => events.push(e) } : undefined)).data.slice());
  state.dispose();
  return { events, logits };
}

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(Math.abs(a[i]), Math.abs(b[i]), 1e-30));
  return m;
}

describe('webgpu: Δ from the fused decode steps', () => {
  for (const name of Object.keys(MODELS)) {
    it(`${name}: the step kernels' Δ = the op sequence's and the CPU's, for each decodeKernels kind`, async (t: TestContext) => {
      const g = gpu;
      if (typeof g === 'string') return t.skip(g);
      const method = name === 'mamba2' ? 'mamba2Step' : 'mamba1Step';
      const be = g as unknown as Record<string, (a: { onDelta?: unknown }) => unknown>;
      const step = be[method];
      let handed = 0;
      be[method] = function (this: unknown, a) {
        const y = step.call(g, a);
        if (y && a.onDelta) handed++;
        return y;
      };
      const ref = await decode(build(name, new CpuBackend()), true);
      const kinds = ['v1', name === 'mamba2' ? null : 'fused', g.rt.subgroupFixed ? 'v2' : null].filter((k): k is string => k !== null);
      t.diagnostic(`decodeKernels ${kinds.join(', ')}${g.rt.subgroupFixed ? '' : ' (no fixed subgroup size: no v2)'}`);
      try {
        for (const kind of kinds) {
          g.decodeKernels = kind;
          const lm = build(name, g);
          g.stepDelta = false;
          const ops = await decode(lm, true);
          g.stepDelta = true;
          handed = 0;
          const fused = await decode(lm, true);
          const quiet = await decode(lm, false);
          assert.ok(handed > 0 && handed === fused.events.length, `${kind}: the fused step handed Δ out for every event (${handed} of ${fused.events.length})`);
          assert.deepEqual(fused.events.map((e) => [e.layer, e.kind, ...e.delta.shape]), ops.events.map((e) => [e.layer, e.kind, ...e.delta.shape]), kind);
          assert.deepEqual(fused.events.map((e) => [e.layer, e.kind, ...e.delta.shape]), ref.events.map((e) => [e.layer, e.kind, ...e.delta.shape]), kind);
          for (let i = 0; i < fused.events.length; i++) {
            const [a, b, c] = [fused.events[i].delta.data, ops.events[i].delta.data, ref.events[i].delta.data];
            // (WGSL's exp/log are not correctly rounded, and the fused kernel and the op sequence evaluate softplus in
            // different kernels: on an H100 they differed by 1.28e-5 per element relative where Δ is small, session 27;
            // SwiftShader within 16 ulps. So the bound is absolute, the CPU check's.)
            assert.ok(maxAbsDiff(a, b) <= 1e-5, `${kind} event ${i}: Δ vs the op sequence's: ${maxAbsDiff(a, b)} (relative ${maxRel(a, b)})`);
            assert.ok(maxAbsDiff(a, c) <= 1e-5, `${kind} event ${i}: Δ vs the CPU's: ${maxAbsDiff(a, c)}`);
          }
          for (let i = 0; i < fused.logits.length; i++) {
            assert.ok(maxAbsDiff(fused.logits[i], quiet.logits[i]) <= 1e-6, `${kind} step ${i}: observing changed the logits by ${maxAbsDiff(fused.logits[i], quiet.logits[i])}`);
            assert.ok(maxAbsDiff(fused.logits[i], ref.logits[i]) <= 1e-4, `${kind} step ${i}: logits vs the CPU's`);
          }
        }
      } finally {
        g.decodeKernels = 'v1';
        g.stepDelta = true;
        be[method] = step;
      }
    });
  }
});
