/**
 * The WebGPU Mamba-2 SSD kernels, both sets ('fused': Δ computed per chunk in workgroup memory, inputs read in
 * place; 'old': the five kernels of before) and both kernel families ('tiled', 'simple'), against the CPU
 * reference: inputs as the model hands them over (pieces of one wider tensor, as `split` leaves in_proj's and the
 * conv's outputs), chunk tails, several groups, absent D / dt bias, a finite dt limit, a state carried in and out,
 * a prefill continued from the state of an earlier one, and the batched decode step.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/index.js';
import type { SsdArgs } from '../../src/backend/backend.js';
import type { WebGpuBackend, WebGpuSsd } from '../../src/backend/webgpu/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import * as ops from '../../src/tensor/ops.js';
import { hfFixture, loadReference, maxAbsDiff, randomArray } from '../helpers.js';
import { loadModel } from '../../src/index.js';
import { webgpuOrReason } from './webgpu-context.js';

const tiled = await webgpuOrReason({ kernels: 'tiled' });
const simple = typeof tiled === 'string' ? tiled : await webgpuOrReason({ kernels: 'simple' });
// 16 KiB of workgroup memory (WebGPU's default limit): chunks of 32 steps
const small = typeof tiled === 'string' ? tiled : await webgpuOrReason({ kernels: 'tiled', maxWorkgroupStorageBytes: 16384 });
after(() => {
  if (typeof small !== 'string') small.destroy();
  if (typeof tiled !== 'string') tiled.destroy();
  if (typeof simple !== 'string') simple.destroy();
});

let seed = 11;
const rnd = (n: number, scale = 1) => randomArray(n, seed++ * 7919, scale);

interface Case { b: number; L: number; nh: number; hd: number; G: number; N: number; D: boolean; bias: boolean; limit: [number, number] }

/** host data of one case: a wide [b, L, W] row holding (pad, x, B, C, pad, dt) like in_proj/conv outputs, and the rest */
function data(c: Case) {
  const I = c.nh * c.hd, GN = c.G * c.N;
  const sizes = [3, I, GN, GN, 2, c.nh];
  const W = sizes.reduce((s, v) => s + v, 0);
  const wide = rnd(c.b * c.L * W);
  // dt around 0 (Δ = softplus ≈ 0.7), B/C smaller
  return {
    sizes, W, wide,
    A: rnd(c.nh).map((v) => -Math.exp(v)), D: rnd(c.nh), dtb: rnd(c.nh), state: rnd(c.b * c.nh * c.hd * c.N),
  };
}

/** the SSD arguments on one backend: x, B, C, dt split from the wide tensor (lazy pieces on the GPU) */
function args(be: typeof cpu | WebGpuBackend, c: Case, d: ReturnType<typeof data>, state: Tensor | null): SsdArgs {
  const wide = be.fromHost(d.wide.slice(), [c.b * c.L, d.W]);
  const [, x, B, C, , dt] = be.split(wide, d.sizes);
  return {
    x: ops.reshape(x, [c.b, c.L, c.nh, c.hd]), B: ops.reshape(B, [c.b, c.L, c.G, c.N]), C: ops.reshape(C, [c.b, c.L, c.G, c.N]),
    dt: ops.reshape(dt, [c.b, c.L, c.nh]), A: be.fromHost(d.A.slice(), [c.nh]), D: c.D ? be.fromHost(d.D.slice(), [c.nh]) : null,
    dtBias: c.bias ? be.fromHost(d.dtb.slice(), [c.nh]) : null, dtLimit: c.limit, state, algorithm: 'chunked', chunkSize: 16,
  };
}

async function close(got: Tensor, want: Tensor, tol: number, what: string): Promise<void> {
  assert.deepEqual([...got.shape], [...want.shape], `${what}: shape`);
  const d = maxAbsDiff(await got.data(), want.dataSync());
  assert.ok(d <= tol, `${what}: max |Δ| = ${d} > ${tol}`);
}

const CASES: Case[] = [
  { b: 2, L: 70, nh: 4, hd: 3, G: 2, N: 5, D: true, bias: true, limit: [0.01, 0.5] },
  { b: 1, L: 130, nh: 3, hd: 70, G: 3, N: 70, D: true, bias: true, limit: [0, Infinity] },
  { b: 2, L: 9, nh: 2, hd: 8, G: 1, N: 16, D: false, bias: false, limit: [0, Infinity] },
  { b: 1, L: 33, nh: 4, hd: 16, G: 1, N: 8, D: true, bias: false, limit: [0, Infinity] },
];

function withGpu(name: string, which: 'tiled' | 'simple' | 'small', fn: (g: WebGpuBackend) => Promise<void>): void {
  it(name, async (t: TestContext) => {
    const g = which === 'tiled' ? tiled : which === 'small' ? small : simple;
    if (typeof g === 'string') return t.skip(g);
    await fn(g);
  });
}

describe('webgpu SSD kernels vs the CPU reference', () => {
  for (const which of ['tiled', 'small', 'simple'] as const) {
    for (const kernels of ['fused', 'old'] as WebGpuSsd[]) {
      withGpu(`chunked prefill, ${which === 'small' ? 'tiled backend with 16 KiB of workgroup memory' : `${which} backend`}, ${kernels} SSD: split inputs, chunk tails, groups, state in/out`, which, async (g) => {
        g.ssdKernels = kernels;
        if (which === 'small') assert.equal(g.ssdChunk, 32, 'SSD chunk length');
        for (const c of CASES) {
          const d = data(c);
          const what = `${kernels} b${c.b} L${c.L} nh${c.nh} hd${c.hd} G${c.G} N${c.N} (chunk ${g.ssdChunk})`;
          for (const withState of [false, true]) {
            const sc = withState ? cpu.fromHost(d.state.slice(), [c.b, c.nh, c.hd, c.N]) : null;
            const sg = withState ? g.fromHost(d.state.slice(), [c.b, c.nh, c.hd, c.N]) : null;
            const before = g.rt.counters.dispatches;
            const y = g.ssd(args(g, c, d, sg));
            await close(y, cpu.ssd(args(cpu, c, d, sc)), 5e-4, `${what}${withState ? ', state' : ''}`);
            // fused: 4 dispatches (C·B, states, state passing, output), nothing copied apart; old: 4 copies + 5
            assert.equal(g.rt.counters.dispatches - before, kernels === 'fused' ? 4 : 9, `${what}: dispatches`);
            if (sg) await close(sg, sc!, 5e-4, `${what}: state out`);
          }
        }
        g.ssdKernels = 'fused';
      });
    }

    withGpu(`chunked prefill continued from an earlier one's state = one prefill (${which} backend, both SSDs)`, which, async (g) => {
      const c: Case = { b: 2, L: 77, nh: 3, hd: 10, G: 1, N: 12, D: true, bias: true, limit: [0, Infinity] };
      const d = data(c);
      const zero = new Float32Array(c.b * c.nh * c.hd * c.N);
      const sc = cpu.fromHost(zero.slice(), [c.b, c.nh, c.hd, c.N]);
      const want = cpu.ssd(args(cpu, c, d, sc)).dataSync();
      for (const kernels of ['fused', 'old'] as WebGpuSsd[]) {
        g.ssdKernels = kernels;
        const sg = g.fromHost(zero.slice(), [c.b, c.nh, c.hd, c.N]);
        // the same inputs cut at t = 40 (not a chunk boundary): two prefills, the second from the first's state
        const cut = 40;
        const part = (t0: number, t1: number) => {
          const dd = { ...d, wide: new Float32Array(c.b * (t1 - t0) * d.W) };
          for (let b = 0; b < c.b; b++) dd.wide.set(d.wide.subarray((b * c.L + t0) * d.W, (b * c.L + t1) * d.W), b * (t1 - t0) * d.W);
          return args(g, { ...c, L: t1 - t0 }, dd, sg);
        };
        const y1 = await g.ssd(part(0, cut)).data();
        const y2 = await g.ssd(part(cut, c.L)).data();
        const per = c.nh * c.hd;
        const got = new Float32Array(want.length);
        for (let b = 0; b < c.b; b++) {
          got.set(y1.subarray(b * cut * per, (b + 1) * cut * per), b * c.L * per);
          got.set(y2.subarray(b * (c.L - cut) * per, (b + 1) * (c.L - cut) * per), (b * c.L + cut) * per);
        }
        const diff = maxAbsDiff(got, want);
        assert.ok(diff <= 5e-4, `${kernels}: continued prefill vs one: max |Δ| = ${diff}`);
        await close(sg, sc, 5e-4, `${kernels}: state after both`);
      }
      g.ssdKernels = 'fused';
    });

    withGpu(`batched decode step (recurrence) with x, B, C, dt read in place (${which} backend)`, which, async (g) => {
      const c: Case = { b: 5, L: 1, nh: 4, hd: 6, G: 2, N: 9, D: true, bias: true, limit: [0, Infinity] };
      for (const kernels of ['fused', 'old'] as WebGpuSsd[]) {
        g.ssdKernels = kernels;
        const d = data(c);
        const sc = cpu.fromHost(d.state.slice(), [c.b, c.nh, c.hd, c.N]);
        const sg = g.fromHost(d.state.slice(), [c.b, c.nh, c.hd, c.N]);
        const before = g.rt.counters.dispatches;
        const y = g.ssd({ ...args(g, c, d, sg), algorithm: 'recurrent' });
        await close(y, cpu.ssd({ ...args(cpu, c, d, sc), algorithm: 'recurrent' }), 2e-5, `${kernels} decode step`);
        assert.equal(g.rt.counters.dispatches - before, kernels === 'fused' ? 1 : 5, `${kernels} decode step: dispatches`);
        await close(sg, sc, 2e-5, `${kernels} decode step: state`);
      }
      g.ssdKernels = 'fused';
    });
  }
});

// the fused set (batched state passing, 'fused'; a chunk at a time, 'fused-v1') against the old kernels and the CPU at
// lengths around the chunk (1: the recurrence; Q − 1, Q, Q + 1; more than 8 chunks, what the pass loads at once, plus
// a tail), one and several groups, without and with a state carried in and returned, chunks of 64 and of 32
// (SwiftShader runs the tiled kernels slowly: batch 1 past 100 steps)
const AROUND: Record<'tiled' | 'small', [L: number, nh: number, G: number, state: boolean][]> = {
  tiled: [[1, 2, 1, true], [63, 4, 2, false], [64, 2, 1, true], [65, 4, 2, true], [200, 4, 2, false], [520, 2, 1, true]],
  small: [[31, 4, 2, true], [33, 2, 1, false], [290, 4, 2, true]],
};
describe('webgpu fused SSD vs the old kernels and the CPU: lengths around the chunk, groups, states', () => {
  for (const which of ['tiled', 'small'] as const) {
    withGpu(`chunks of ${which === 'small' ? 32 : 64}: L ${AROUND[which].map(([L]) => L).join(', ')}; G 1 and 2; with and without a state in/out`, which, async (g) => {
      for (const [L, nh, G, withState] of AROUND[which]) {
        const c: Case = { b: L > 100 ? 1 : 2, L, nh, hd: 6, G, N: 5, D: true, bias: true, limit: [0, Infinity] };
        const d = data(c);
        const what = `L${L} nh${nh} G${G}${withState ? ', state' : ''} (chunk ${g.ssdChunk})`;
        const sc = withState ? cpu.fromHost(d.state.slice(), [c.b, c.nh, c.hd, c.N]) : null;
        const want = cpu.ssd(args(cpu, c, d, sc));
        const got: Record<string, { y: Float32Array; state: Float32Array | null }> = {};
        for (const kernels of ['fused', 'fused-v1', 'old'] as WebGpuSsd[]) {
          g.ssdKernels = kernels;
          const sg = withState ? g.fromHost(d.state.slice(), [c.b, c.nh, c.hd, c.N]) : null;
          const before = g.rt.counters.dispatches;
          const y = g.ssd(args(g, c, d, sg));
          await close(y, want, 5e-4, `${kernels} ${what}`);
          // fused: C·B, states, state passing, output (the recurrence at L = 1); old: 4 copies + 5 (+ 1)
          assert.equal(g.rt.counters.dispatches - before, (kernels === 'old' ? 4 : 0) + (L === 1 ? 1 : kernels === 'old' ? 5 : 4), `${kernels} ${what}: dispatches`);
          if (sg) await close(sg, sc!, 5e-4, `${kernels} ${what}: state out`);
          got[kernels] = { y: await y.data(), state: sg ? await sg.data() : null };
        }
        // the two state passings do the same arithmetic in the same order; the old kernels differ in rounding only
        assert.ok(maxAbsDiff(got.fused.y, got['fused-v1'].y) <= 1e-6, `${what}: fused vs fused-v1 y: ${maxAbsDiff(got.fused.y, got['fused-v1'].y)}`);
        assert.ok(maxAbsDiff(got.fused.y, got.old.y) <= 5e-5, `${what}: fused vs old y: ${maxAbsDiff(got.fused.y, got.old.y)}`);
        if (withState) assert.ok(maxAbsDiff(got.fused.state!, got.old.state!) <= 5e-5, `${what}: fused vs old state: ${maxAbsDiff(got.fused.state!, got.old.state!)}`);
      }
      g.ssdKernels = 'fused';
    });
  }
});

// model level, with the tiled (GPU) kernels and each SSD kernel set: a prefill of the HF fixtures' inputs against
// the reference logits, and the batched decode step (9 rows: past the few-row paths, so the op sequence with the SSD
// recurrence reading its inputs in place) against each row decoded alone
const MODELS = ['mamba2-tiny', 'mamba2-groups', 'bamba-tiny', 'nemotron-h-tiny'];
describe('webgpu SSD kernels in the Mamba-2 and hybrid fixtures', () => {
  for (const name of MODELS) {
    for (const kernels of ['fused'] as WebGpuSsd[]) {
      withGpu(`${name}, ${kernels} SSD: prefill logits within 1e-4 of the HF reference`, 'tiled', async (g) => {
        g.ssdKernels = kernels;
        const ref = loadReference(hfFixture(name));
        const model = await loadModel(hfFixture(name), { backend: g });
        const [b, L, V] = ref.shape('logits');
        const ids = ref.ids('input_ids');
        const got = (await model.lm.advance(ids, model.createState(b))).data;
        const want = ref.f32('logits');
        for (let r = 0; r < b; r++) {
          const d = maxAbsDiff(got.subarray(r * V, (r + 1) * V), want.subarray((r * L + L - 1) * V, (r * L + L) * V));
          assert.ok(d <= 1e-4, `${name} ${kernels}: row ${r} last position: max |Δlogit| = ${d}`);
        }
        g.ssdKernels = 'fused';
      });
    }
  }

  for (const name of ['mamba2-tiny', 'mamba-tiny']) {
    withGpu(`${name}: batched decode (9 rows, inputs of the SSD / scan step read in place) = each row alone`, 'simple', async (g) => {
      const model = await loadModel(hfFixture(name), { backend: g });
      const V = model.lm.vocabSize;
      const rows = 9, steps = 2;
      const prompts = Array.from({ length: rows }, (_, r) => Array.from({ length: 7 }, (_, i) => (i * 31 + r * 97 + 5) % V));
      const next = (r: number, k: number) => (r * 13 + k) % V;
      const alone: Float32Array[][] = [];
      for (let r = 0; r < rows; r++) {
        const s = model.createState(1);
        const out = [(await model.lm.advance([prompts[r]], s)).data];
        for (let k = 0; k < steps; k++) out.push((await model.lm.advance([[next(r, k)]], s)).data);
        alone.push(out);
        s.dispose();
      }
      const s = model.createState(rows);
      let l = (await model.lm.advance(prompts, s)).data;
      for (let k = 0; k <= steps; k++) {
        if (k > 0) l = (await model.lm.advance(prompts.map((_, r) => [next(r, k - 1)]), s)).data;
        for (let r = 0; r < rows; r++) {
          const d = maxAbsDiff(l.subarray(r * V, (r + 1) * V), alone[r][k]);
          assert.ok(d <= 1e-4, `row ${r} ${k === 0 ? 'prefill' : `step ${k}`}: max |Δlogit| vs the row alone = ${d}`);
        }
      }
      // one more step with the inputs copied apart first (the kernels of before): 4 copies (x, B, C, dt) more per
      // Mamba-2 layer, 3 (B, C, z) per Mamba-1 layer
      const stepDispatches = async () => {
        await g.sync();
        const d0 = g.rt.counters.dispatches;
        await model.lm.advance(prompts.map((_, r) => [next(r, 9)]), s);
        return g.rt.counters.dispatches - d0;
      };
      const inPlace = await stepDispatches();
      if (name.startsWith('mamba2')) g.ssdKernels = 'old';
      else g.scan = 'partials';
      const copied = await stepDispatches();
      g.ssdKernels = 'fused';
      g.scan = 'rescan';
      assert.equal(copied - inPlace, (name.startsWith('mamba2') ? 4 : 3) * model.lm.numLayers, `dispatches per step: ${inPlace} in place, ${copied} copied`);
      s.dispose();
    });
  }
});

describe('webgpu gated RMSNorm of prefill rows (a workgroup per row with the fused SSD)', () => {
  withGpu('wide rows, whole-row and grouped norms, z read in place, = the CPU reference (fused and old kernels)', 'tiled', async (g) => {
    for (const [M, W, gs] of [[70, 600, 600], [70, 600, 300], [65, 1100, 1100], [3, 600, 600]]) {
      const zw = rnd(M * (W + 7));
      const xd = rnd(M * W), wd = rnd(W);
      const pieces = (be: typeof cpu | WebGpuBackend) => {
        const [z] = be.split(be.fromHost(zw.slice(), [M, W + 7]), [W, 7]);
        return [be.fromHost(xd.slice(), [M, W]), z, be.fromHost(wd.slice(), [W])] as const;
      };
      const [xc, zc, wc] = pieces(cpu);
      const want = cpu.rmsNormGated(xc, zc, wc, 1e-5, gs);
      for (const kernels of ['fused', 'old'] as WebGpuSsd[]) {
        g.ssdKernels = kernels;
        const [xg, zg, wg] = pieces(g);
        await close(g.rmsNormGated(xg, zg, wg, 1e-5, gs), want, 2e-5, `${kernels}: rms_norm_gated M${M} W${W} group ${gs}`);
      }
    }
    g.ssdKernels = 'fused';
  });
});
