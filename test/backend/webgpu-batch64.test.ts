/**
 * Batched decode at 2–64 rows (issue 11, session 34): the Mamba-2 decode step's state update with P rows of a head
 * per subgroup (`decodeStateRows`, `ssd_step_sg` 'r{N}s{SG}p{P}') against the kernel of before (P = 1) and the CPU at
 * 2, 3, 5, 9, 17, 33 and 64 sequences, head sizes P does not divide, and the register rule; `decodeRows: 'auto'`
 * (MATVEC_R at 2–4 rows only): which kernel runs in_proj at which rows, and a tiny model's batched tokens and logits
 * against its rows decoded alone and against the kernels of before.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/index.js';
import type { SsdArgs } from '../../src/backend/backend.js';
import { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { nullGpuDevice } from '../../bench/null-gpu.js';
import { SSD_STEP_ROWS_REGS, SSD_STEP_SG, ssdStepRows } from '../../src/backend/webgpu/kernels/ssd.js';
import { generateWgsl } from '../../src/backend/webgpu/wgsl.js';
import { ROWS_AUTO } from '../../src/backend/webgpu/kernels/matvec_rows.js';
import { loadModel } from '../../src/index.js';
import * as ops from '../../src/tensor/ops.js';
import { hfFixture, maxAbsDiff, randomArray } from '../helpers.js';
import { batchedEqualsAlone } from './batched-decode.js';
import { kernelsOf, webgpuOrReason } from './webgpu-context.js';

const gpu = await webgpuOrReason({ kernels: 'tiled' });
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});

let seed = 3;
const rnd = (n: number, scale = 1) => randomArray(n, seed++ * 7919, scale);

interface Case { b: number; nh: number; hd: number; G: number; N: number }

/** one decode step's inputs, x / B / C / dt pieces of one wide row as in_proj leaves them (read in place) */
function data(c: Case) {
  const I = c.nh * c.hd, GN = c.G * c.N;
  const sizes = [3, I, GN, GN, c.nh];
  const W = sizes.reduce((s, v) => s + v, 0);
  return { sizes, W, wide: rnd(c.b * W), A: rnd(c.nh).map((v) => -Math.exp(v)), D: rnd(c.nh), dtb: rnd(c.nh), state: rnd(c.b * c.nh * c.hd * c.N) };
}

function args(be: typeof cpu | WebGpuBackend, c: Case, d: ReturnType<typeof data>, state: SsdArgs['state']): SsdArgs {
  const [, x, B, C, dt] = be.split(be.fromHost(d.wide.slice(), [c.b, d.W]), d.sizes);
  return {
    x: ops.reshape(x, [c.b, 1, c.nh, c.hd]), B: ops.reshape(B, [c.b, 1, c.G, c.N]), C: ops.reshape(C, [c.b, 1, c.G, c.N]),
    dt: ops.reshape(dt, [c.b, 1, c.nh]), A: be.fromHost(d.A.slice(), [c.nh]), D: be.fromHost(d.D.slice(), [c.nh]),
    dtBias: be.fromHost(d.dtb.slice(), [c.nh]), dtLimit: [0, Infinity], state, algorithm: 'recurrent', chunkSize: 16,
  };
}

describe('webgpu Mamba-2 decode step, P rows of a head per subgroup (decodeStateRows)', () => {
  it('the rule: P halved to fit P·⌈N/SG⌉ ≤ 64 registers, at most hd; bad values refused', (t: TestContext) => {
    assert.equal(ssdStepRows(4, 64, 128, 32), 4); // mamba2-130m on an H100: 4 rows × 4 states a lane
    assert.equal(ssdStepRows(8, 64, 128, 32), 8);
    assert.equal(ssdStepRows(8, 64, 128, 4), 2); // SwiftShader's subgroups of 4: 32 states a lane, 2 rows
    assert.equal(ssdStepRows(4, 64, 256, 4), 1); // 64 states a lane: the one-row kernel
    assert.equal(ssdStepRows(8, 3, 16, 4), 3);
    for (const [P, hd, N, SG] of [[8, 64, 128, 32], [4, 16, 16, 4], [8, 5, 70, 32]]) {
      const p = ssdStepRows(P, hd, N, SG);
      assert.ok(p * Math.ceil(N / SG) <= SSD_STEP_ROWS_REGS && p <= hd, `${P} ${hd} ${N} ${SG} → ${p}`);
    }
    if (typeof gpu === 'string') return t.skip(gpu);
    for (const bad of [0, 3, 16, 1.5]) assert.throws(() => (gpu.decodeStateRows = bad), /decodeStateRows must be one of 1, 2, 4, 8/);
    assert.equal(gpu.decodeStateRows, 1, 'default: the kernel of before');
  });

  it("an H100's variants (subgroups of 32: r128s32p2/p4/p8, N 128; r70s32p4, a partial last unit) compile here", async (t: TestContext) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    // the roles on 9 buffers, state and y written (what a decode step binds)
    const map = SSD_STEP_SG.roles.map((_r, i) => i), modes = SSD_STEP_SG.roles.map((r) => (SSD_STEP_SG.writes.includes(r) ? 'w' : 'r')).join('');
    for (const v of ['r128s32p2', 'r128s32p4', 'r128s32p8', 'r70s32p4']) {
      const code = generateWgsl(SSD_STEP_SG, v, map, modes);
      const m = gpu.rt.device.createShaderModule({ code, label: v });
      const errors = (await m.getCompilationInfo()).messages.filter((x) => x.type === 'error');
      assert.deepEqual(errors.map((e) => `${e.lineNum}: ${e.message}`), [], v);
    }
    assert.throws(() => SSD_STEP_SG.wgsl('r128s4p4'), /4 rows a subgroup of 32 states a lane/);
  });

  it('2, 3, 5, 9, 17, 33, 64 sequences; hd 8 / 6 / 5 (tails), N 16 / 7, groups 1 / 2: P = 2, 4 equal P = 1 (≤ 1e-6), and the CPU (≤ 2e-5), y and state', async (t: TestContext) => {
    const g = gpu;
    if (typeof g === 'string') return t.skip(g);
    const sg = g.rt.subgroupFixed;
    if (!(sg > 0)) return t.skip('no fixed subgroup size: the P-row kernel does not run here');
    const cases: Case[] = [2, 3, 5, 9, 17, 33, 64].map((b, i) => ({ b, nh: i % 2 ? 4 : 2, hd: [8, 6, 5][i % 3], G: i % 2 ? 2 : 1, N: i === 3 ? 7 : 16 }));
    try {
      for (const c of cases) {
        const d = data(c);
        const what = `b${c.b} nh${c.nh} hd${c.hd} G${c.G} N${c.N}`;
        const sc = cpu.fromHost(d.state.slice(), [c.b, c.nh, c.hd, c.N]);
        const yc = cpu.ssd(args(cpu, c, d, sc)).dataSync();
        const got: Record<number, { y: Float32Array; s: Float32Array }> = {};
        for (const P of [1, 2, 4]) {
          g.decodeStateRows = P;
          const st = g.fromHost(d.state.slice(), [c.b, c.nh, c.hd, c.N]);
          const run: { result: Float32Array; names: string[]; variants: string[] } = await kernelsOf(g, () => g.ssd(args(g, c, d, st)).data());
          const [y, variants] = [run.result, run.variants];
          const p = ssdStepRows(P, c.hd, c.N, sg);
          assert.deepEqual(variants.filter((v) => v.startsWith('ssd_step')), [`ssd_step_sg:r${c.N}s${sg}${p > 1 ? `p${p}` : ''}`], `${what} P ${P}`);
          got[P] = { y, s: await st.data() };
          st.dispose();
          assert.ok(maxAbsDiff(got[P].y, yc) <= 2e-5, `${what} P ${P}: y vs the CPU ${maxAbsDiff(got[P].y, yc)}`);
          assert.ok(maxAbsDiff(got[P].s, sc.dataSync()) <= 2e-5, `${what} P ${P}: state vs the CPU`);
          if (P > 1) {
            assert.ok(maxAbsDiff(got[P].y, got[1].y) <= 1e-6, `${what} P ${P}: y vs P 1 ${maxAbsDiff(got[P].y, got[1].y)}`);
            assert.ok(maxAbsDiff(got[P].s, got[1].s) <= 1e-6, `${what} P ${P}: state vs P 1 ${maxAbsDiff(got[P].s, got[1].s)}`);
          }
        }
      }
    } finally {
      g.decodeStateRows = 1;
    }
  });
});

describe('webgpu decodeRows auto: MATVEC_R at 2–4 rows only', () => {
  it('which kernel runs in_proj at 1, 2, 3, 4, 5, 8, 9, 16, 64 rows (auto, 0, 16); settable from the environment too', (t: TestContext) => {
    const g = gpu;
    if (typeof g === 'string') return t.skip(g);
    const saved = g.decodeRows;
    try {
      const kernelAt = (M: number) => g.productKernelName(M, 3352, 768);
      g.decodeRows = 'auto';
      assert.equal(g.decodeRows, 'auto');
      assert.equal(ROWS_AUTO, 4);
      for (const M of [2, 3, 4]) assert.equal(kernelAt(M), 'matvec-rows', `auto, ${M} rows`);
      for (const M of [1, 5, 8]) assert.equal(kernelAt(M), 'matvec', `auto, ${M} rows`);
      for (const M of [9, 16, 64]) assert.match(kernelAt(M), /^blocked/, `auto, ${M} rows`);
      g.decodeRows = 0;
      for (const M of [2, 4]) assert.equal(kernelAt(M), 'matvec', `off, ${M} rows`);
      g.decodeRows = 16;
      for (const M of [2, 8, 16]) assert.equal(kernelAt(M), 'matvec-rows', `16, ${M} rows`);
      assert.match(kernelAt(17), /^blocked/);
      assert.throws(() => (g.decodeRows = 'all' as never), /decodeRows must be 0 \(off\), 'auto' \(2–4 rows\)/);
    } finally {
      g.decodeRows = saved;
    }
    // from the environment (a backend on the null device: no adapter needed)
    const env = process.env;
    const keep = [env.MAMBA_TS_WEBGPU_DECODE_ROWS, env.MAMBA_TS_WEBGPU_STATE_ROWS];
    try {
      [env.MAMBA_TS_WEBGPU_DECODE_ROWS, env.MAMBA_TS_WEBGPU_STATE_ROWS] = ['auto', '4'];
      const n = new WebGpuBackend(nullGpuDevice(), 'null device', { kernels: 'tiled' });
      assert.deepEqual([n.decodeRows, n.decodeStateRows, n.productKernelName(3, 3352, 768), n.productKernelName(5, 3352, 768)], ['auto', 4, 'matvec-rows', 'matvec']);
      n.destroy();
      env.MAMBA_TS_WEBGPU_STATE_ROWS = '3';
      assert.throws(() => new WebGpuBackend(nullGpuDevice(), 'null device', { kernels: 'tiled' }), /decodeStateRows must be one of 1, 2, 4, 8 .*\(from MAMBA_TS_WEBGPU_STATE_ROWS\)/);
    } finally {
      [env.MAMBA_TS_WEBGPU_DECODE_ROWS, env.MAMBA_TS_WEBGPU_STATE_ROWS] = keep;
      if (keep[0] === undefined) delete env.MAMBA_TS_WEBGPU_DECODE_ROWS;
      if (keep[1] === undefined) delete env.MAMBA_TS_WEBGPU_STATE_ROWS;
    }
  });

});

describe('webgpu batched decode with every session-34 mode on (decodeRows auto, decodeStateRows 4, batchDecode fused2) = the kernels of before = rows alone', () => {
  // mamba2-tiny at 9 rows: the blocked GEMM with the conv step in in_proj's split-K reduce and the 4-row state update
  // (SwiftShader's subgroups of 4: N 16 is 4 states a lane, P 4); mamba-tiny at 9 rows: the conv step in the reduce
  // (its scan step has no P-row kernel). (MATVEC_R at 2–4 rows decoding a model: webgpu-matvec-rows' 10-row tests.)
  for (const [name, rows] of [['mamba2-tiny', 9], ['mamba-tiny', 9]] as const) {
    it(`${name}, ${rows} rows: batched = rows alone (tokens, logits ≤ 1e-4), first-step logits within 1e-5 of the kernels of before`, async (t: TestContext) => {
      const g = gpu;
      if (typeof g === 'string') return t.skip(g);
      const lm = (await loadModel(hfFixture(name), { backend: g })).lm;
      // K split in 2 (the tiny models' products are too small for the plan to split K: no reduce to join otherwise)
      const splits = g.blockedSplits;
      g.blockedSplits = rows > 8 ? 2 : splits;
      const V = lm.vocabSize;
      const prompts = Array.from({ length: rows }, (_, r) => Array.from({ length: 3 }, (_, i) => (r * 31 + i * 7 + 3) % V));
      const first = async () => {
        const s = lm.createState(rows);
        try {
          await lm.advance(prompts, s);
          return (await lm.advance(prompts.map((p) => [p[0]]), s)).data;
        } finally {
          s.dispose();
        }
      };
      const before = await first();
      const { names: namesBefore } = await kernelsOf(g, first);
      g.decodeRows = 'auto';
      g.decodeStateRows = 4;
      g.batchDecode = 'fused2';
      try {
        const { result: now, names, variants } = await kernelsOf(g, first);
        assert.ok(maxAbsDiff(now, before) <= 1e-5, `first-step logits vs the kernels of before: ${maxAbsDiff(now, before)}`);
        assert.equal(names.includes('matvec_rows'), rows <= ROWS_AUTO, [...new Set(names)].join(', '));
        if (rows > 8) {
          const uniq = [...new Set(variants)].join(', ');
          if (name === 'mamba2-tiny') assert.ok(variants.some((v) => /^ssd_step_sg:r16s\d+p\d$/.test(v)) && names.includes('matmul_blocked'), uniq);
          // the conv step inside the reduce: one dispatch a layer fewer than before
          assert.ok(names.includes('splitk_conv') && !names.includes('conv_step'), uniq);
          assert.equal(names.length, namesBefore.length - names.filter((n) => n === 'splitk_conv').length, `dispatches: ${names.length} now, ${namesBefore.length} before`);
        }
        await batchedEqualsAlone(lm, `${name} ${rows} rows`, rows, [0, rows - 1]);
      } finally {
        g.decodeRows = 0;
        g.decodeStateRows = 1;
        g.batchDecode = 'fused';
        g.blockedSplits = splits;
      }
    });
  }
});
