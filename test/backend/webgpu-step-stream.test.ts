/**
 * decodeKernels '…-s' (issue 11, session 34): the streaming decode step kernels (kernels/mamba_step_stream.ts) against
 * the v1 kernels they replace, recorded directly on random operands: MAMBA2_STEP_S (several q/t variants) against
 * MAMBA2_STEP — y, the copied z, the updated state and Δ within 1e-6 relative — on shapes including a 2.8b-like head
 * count (80 heads of N 128, few rows a head to stay fast on SwiftShader), two groups, a batch of 2 and rows that do not
 * fill a workgroup; MAMBA1_XPROJ_SK's partials, added up, against MAMBA1_XPROJ (K not a multiple of the slice);
 * MAMBA1_SCAN_S against MAMBA1_SCAN (2.8b's N and dt rank, the Δ/B/C norms, two state elements a lane, partials). Then
 * the backend's selection: a tiny Mamba-2 and Mamba-1 decoded with 'v1-s' give v1's logits and name the new kernels.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import type { Store } from '../../src/backend/webgpu/runtime.js';
import { f2u } from '../../src/backend/webgpu/wgsl.js';
import { MAMBA1_SCAN, MAMBA1_XPROJ, MAMBA2_STEP } from '../../src/backend/webgpu/kernels/mamba_step.js';
import { MAMBA1_SCAN_S, MAMBA1_XPROJ_SK, MAMBA2_STEP_S, XPROJ_SLICE, mamba1ScanStreamVariant, mamba2StepStreamRows, mamba2StepStreamVariant } from '../../src/backend/webgpu/kernels/mamba_step_stream.js';
import { RandomTensorSource } from '../../src/models/random.js';
import { buildModel } from '../../src/models/registry.js';
import { randomArray } from '../helpers.js';
import { kernelsOf, webgpuOrReason } from './webgpu-context.js';

const gpu = await webgpuOrReason({ kernels: 'tiled', fuse: true });
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});

let seed = 3;
const rnd = (n: number, scale = 1) => randomArray(n, seed++ * 7919, scale);
const st = (t: { storage: unknown }) => t.storage as Store;

function relErr(got: Float32Array, want: Float32Array, what: string): number {
  assert.equal(got.length, want.length, `${what}: length`);
  let e = 0, m = 0;
  for (let i = 0; i < want.length; i++) {
    assert.ok(Number.isFinite(got[i]), `${what}[${i}] = ${got[i]}`);
    e = Math.max(e, Math.abs(got[i] - want[i]));
    m = Math.max(m, Math.abs(want[i]));
  }
  assert.ok(m > 0, `${what}: all zero (the check would pass for nothing)`);
  return e / m;
}

/** one Mamba-2 step kernel on fresh copies of the same operands: y, z out, state after, Δ */
async function step2(g: WebGpuBackend, v: string | null, s: { B: number; nh: number; hd: number; G: number; N: number; Kc: number }, data: Record<string, Float32Array>): Promise<Float32Array[]> {
  const { B, nh, hd, G, N, Kc } = s, I = nh * hd, C = I + 2 * G * N;
  const zx = g.fromHost(data.zx, [B, I + C + nh]), win = g.fromHost(data.win, [B, C, Kc]), cw = g.fromHost(data.cw, [C, Kc]), cb = g.fromHost(data.cb, [C]);
  const dtb = g.fromHost(data.dtb, [nh]), A = g.fromHost(data.A, [nh]), D = g.fromHost(data.D, [nh]), state = g.fromHost(data.state, [B, nh, hd, N]);
  const y = g.zeros([B, I]), zo = g.zeros([B, I]), dto = g.zeros([B, nh]);
  const roles = [zx, win, cw, cb, dtb, A, D, state, y, zo, dto].map(st);
  const p = [B, nh, hd, G, N, I, Kc, 1 | 2 | 4 | 8, f2u(0), f2u(1e30)];
  if (v === null) g.rt.record({ spec: MAMBA2_STEP, variant: '', roles, params: p, grid: g.rt.grid(B * nh * Math.ceil(hd / 8)) });
  else g.rt.record({ spec: MAMBA2_STEP_S, variant: v, roles, params: p, grid: g.rt.grid(B * nh * Math.ceil(hd / mamba2StepStreamRows(v))) });
  const out = [await y.data(), await zo.data(), await state.data(), await dto.data()];
  for (const t of [zx, win, cw, cb, dtb, A, D, state, y, zo, dto]) t.dispose();
  return out;
}

describe('webgpu streaming decode step kernels (decodeKernels …-s)', () => {
  it('mamba2_step_s matches mamba2_step (y, z, state, Δ within 1e-6) on random shapes incl. 80 heads of N 128', async (t: TestContext) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const shapes = [
      { B: 1, nh: 80, hd: 3, G: 1, N: 128, Kc: 4, Q: [4, 2, 1] }, // 2.8b's heads and states (hd 64 there)
      { B: 2, nh: 4, hd: 20, G: 2, N: 8, Kc: 4, Q: [4, 1] }, // two groups, a batch of 2, 20 rows: a partial workgroup
      { B: 1, nh: 3, hd: 5, G: 1, N: 13, Kc: 3, Q: [3, 16] }, // N not a multiple of the lanes, more lanes than N
    ];
    for (const s of shapes) {
      const { B, nh, hd, G, N, Kc } = s, I = nh * hd, C = I + 2 * G * N;
      const data = {
        zx: rnd(B * (I + C + nh)), win: rnd(B * C * Kc), cw: rnd(C * Kc, 0.5), cb: rnd(C, 0.1), dtb: rnd(nh, 0.5),
        A: rnd(nh).map((a) => -Math.abs(a) - 0.1), D: rnd(nh), state: rnd(B * nh * hd * N),
      };
      const want = await step2(gpu, null, s, data);
      for (const q of s.Q) {
        const v = mamba2StepStreamVariant(N, q);
        const got = await step2(gpu, v, s, data);
        ['y', 'z', 'state', 'Δ'].forEach((what, i) => {
          const e = relErr(got[i], want[i], `${what} ${v} ${JSON.stringify(s)}`);
          assert.ok(e <= 1e-6, `${what}: mamba2_step_s(${v}) vs mamba2_step, relative error ${e} (shape ${JSON.stringify(s)})`);
        });
        // the state did change: the comparison is of updated states
        assert.ok(relErr(got[2], data.state, 'state vs before') > 1e-3, `${v}: the state was not updated`);
      }
    }
  });

  it('mamba1_xproj_sk partials add up to mamba1_xproj (within 1e-6)', async (t: TestContext) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    for (const { Dm, J, Kc, L } of [{ Dm: 600, J: 37, Kc: 4, L: 8 }, { Dm: 256, J: 5, Kc: 3, L: 32 }, { Dm: 300, J: 70, Kc: 4, L: 2 }]) {
      const win = gpu.fromHost(rnd(Dm * Kc), [1, Dm, Kc]), cw = gpu.fromHost(rnd(Dm * Kc, 0.5), [Dm, Kc]), cb = gpu.fromHost(rnd(Dm, 0.1), [Dm]);
      const xp = gpu.fromHost(rnd(J * Dm), [J, Dm], { matrix: true });
      const S = Math.ceil(Dm / XPROJ_SLICE);
      const want = gpu.zeros([J]), part = gpu.zeros([S * J]);
      const roles = [win, cw, cb, xp].map(st);
      gpu.rt.record({ spec: MAMBA1_XPROJ, variant: '', roles: [...roles, st(want)], params: [1, Dm, Kc, J, 1], grid: gpu.rt.grid(J) });
      gpu.rt.record({ spec: MAMBA1_XPROJ_SK, variant: `l${L}`, roles: [...roles, st(part)], params: [1, Dm, Kc, J, 1, S], grid: gpu.rt.grid(S * Math.ceil(J / (256 / L))) });
      const w = await want.data(), pp = await part.data();
      const got = new Float32Array(J).map((_, j) => {
        let s = 0;
        for (let i = 0; i < S; i++) s += pp[i * J + j];
        return s;
      });
      const e = relErr(got, w, `x_proj Dm ${Dm} J ${J}`);
      assert.ok(e <= 1e-6, `mamba1_xproj_sk(l${L}) Dm ${Dm} J ${J}: relative error ${e}`);
      for (const x of [win, cw, cb, xp, want, part]) x.dispose();
    }
  });

  it('mamba1_scan_s matches mamba1_scan (y, state, Δ within 1e-6), with and without the Δ/B/C norms, rows and partials', async (t: TestContext) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    // [B, Dm, N, R, Kc, flags, nP (0: xdbl rows, else partial rows for 'p', batch 1)]
    const cases = [
      [1, 48, 16, 160, 4, 1 | 32, 0], // 2.8b's N and R (J 192)
      [2, 40, 5, 7, 4, 1 | 2 | 4 | 8 | 16 | 32, 0], // the norms and their weights, 40 channels (a partial workgroup), 2 rows
      [1, 37, 20, 3, 3, 2 | 32, 0], // N 20: two state elements a lane; norms without weights, no conv bias
      [1, 40, 16, 9, 4, 1 | 32, 3], // 3 partial rows of xdbl ('p')
      [1, 300, 16, 160, 4, 1 | 2 | 32, 19], // 19 partial rows (8-row rounds and a remainder), J 192 as at 2.8b
    ] as const;
    for (const [B, Dm, N, R, Kc, flags, nP] of cases) {
      const J = R + 2 * N;
      const xdblRows = nP || B;
      const data = {
        xdbl: rnd(xdblRows * J, 0.7), win: rnd(B * Dm * Kc), cw: rnd(Dm * Kc, 0.5), cb: rnd(Dm, 0.1), xz: rnd(B * 2 * Dm), dtw: rnd(Dm * R, 0.3), dtb: rnd(Dm, 0.5),
        A: rnd(Dm * N).map((a) => -Math.abs(a) - 0.1), D: rnd(Dm), nd: rnd(R), nB: rnd(N), nC: rnd(N), state: rnd(B * Dm * N),
      };
      const outs: Float32Array[][] = [];
      for (const which of ['v1', 's']) {
        const ts = [
          gpu.fromHost(data.xdbl, [xdblRows * J]), gpu.fromHost(data.win, [B * Dm * Kc]), gpu.fromHost(data.cw, [Dm * Kc]), gpu.fromHost(data.cb, [Dm]), gpu.fromHost(data.xz, [B * 2 * Dm]),
          gpu.fromHost(data.dtw, [Dm * R]), gpu.fromHost(data.dtb, [Dm]), gpu.fromHost(data.A, [Dm * N]), gpu.fromHost(data.D, [Dm]), gpu.fromHost(data.nd, [R]), gpu.fromHost(data.nB, [N]),
          gpu.fromHost(data.nC, [N]), gpu.fromHost(data.state, [B * Dm * N]), gpu.zeros([B * Dm]), gpu.zeros([B * Dm]),
        ];
        const p = [B, Dm, N, R, Kc, flags, f2u(1e-5), ...(nP ? [nP] : [])];
        const grid = gpu.rt.grid(B * Math.ceil(Dm / 16));
        if (which === 'v1') gpu.rt.record({ spec: MAMBA1_SCAN, variant: nP ? 'p' : '', roles: ts.map(st), params: p, grid });
        else gpu.rt.record({ spec: MAMBA1_SCAN_S, variant: mamba1ScanStreamVariant(R, N, nP > 0), roles: ts.map(st), params: p, grid });
        outs.push([await ts[13].data(), await ts[12].data(), await ts[14].data()]);
        for (const x of ts) x.dispose();
      }
      ['y', 'state', 'Δ'].forEach((what, i) => {
        const e = relErr(outs[1][i], outs[0][i], `${what} ${JSON.stringify({ B, Dm, N, R, flags, nP })}`);
        assert.ok(e <= 1e-6, `mamba1_scan_s ${what}: relative error ${e} vs mamba1_scan (B ${B} Dm ${Dm} N ${N} R ${R} flags ${flags} nP ${nP})`);
      });
      assert.ok(relErr(outs[1][1], data.state, 'state vs before') > 1e-3, 'the state was not updated');
    }
  });

  it("'v1-s' decodes a tiny Mamba-2 and Mamba-1 as 'v1' does, through the new kernels", async (t: TestContext) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const V = 97;
    const cfgs: Record<string, Record<string, unknown>> = {
      mamba2: { model_type: 'mamba2', hidden_size: 32, num_hidden_layers: 2, state_size: 16, num_heads: 4, head_dim: 16, n_groups: 1, expand: 2, conv_kernel: 4, chunk_size: 16, vocab_size: V, tie_word_embeddings: true },
      mamba: { model_type: 'mamba', hidden_size: 16, intermediate_size: 300, num_hidden_layers: 2, state_size: 5, conv_kernel: 4, time_step_rank: 7, vocab_size: V, use_bias: false, use_conv_bias: true, tie_word_embeddings: true },
    };
    for (const [name, cfg] of Object.entries(cfgs)) {
      const logits: Record<string, Float32Array[]> = {};
      for (const k of ['v1', 'v1-s']) {
        gpu.decodeKernels = k;
        const lm = buildModel(cfg, name, new RandomTensorSource(5), { backend: gpu });
        const state = lm.createState(1);
        const names: string[] = (await kernelsOf(gpu, () => lm.advance([[4]], state).then((l) => l.data))).names;
        for (const want of name === 'mamba2' ? ['mamba2_step_s'] : ['mamba1_xproj_sk', 'mamba1_scan_s']) {
          assert.equal(names.includes(want), k === 'v1-s', `${name} ${k}: kernels ${names.join(', ')}`);
        }
        logits[k] = [];
        for (const tok of [7, 9, 11]) logits[k].push((await lm.advance([[tok]], state)).data.slice());
      }
      logits.v1.forEach((w, i) => {
        const e = relErr(logits['v1-s'][i], w, `${name} step ${i}`);
        assert.ok(e <= 1e-5, `${name} step ${i}: 'v1-s' logits vs 'v1', relative error ${e}`);
      });
    }
    gpu.decodeKernels = 'v1';
  });
});
