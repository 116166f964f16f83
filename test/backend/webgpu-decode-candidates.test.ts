/**
 * Issue 11's decode matvec candidates, selectable by `decodeKernels` (the default stays 'v1', which takes 4 loads in
 * flight for f32 rows of K ≥ 2048 at 1–2 rows): 'v1-u{1,2,4,8}' (MATVEC_V with U weight loads in flight per lane), 'v1-k{1,2,4}' (the split-K matvec with x̂ in registers and a reduce pass,
 * kernels/matvec_splitk.ts, on devices with one fixed subgroup size, f32/bf16), 'v2-r…l{U}' (the subgroup matvec's loop
 * form with U loads in flight). Checked: option and variant parsing; a plain product per candidate against float64
 * (f32, bf16, q8 weights); split-K at 4 rows a subgroup with every fusion (gated norm, bias, residual, conv window)
 * against MATVEC_V; and mamba2-tiny's decode steps at batch 1 (the folded RMSNorm and conv window in in_proj, the
 * folded gated norm and residual in out_proj) against the default kernels, logits within 1e-5 relative.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { MATVEC_V, matvecParse, matvecVariant } from '../../src/backend/webgpu/kernels/matvec.js';
import { matvecSgParse, parseMatvecSgConfig } from '../../src/backend/webgpu/kernels/matvec_sg.js';
import { MATVEC_SK, MATVEC_SK_REDUCE, matvecSkGroups, matvecSkParse, matvecSkSlices, matvecSkVariant } from '../../src/backend/webgpu/kernels/matvec_splitk.js';
import { f2u, type Store } from '../../src/backend/webgpu/runtime.js';
import { loadModel } from '../../src/index.js';
import { hfFixture, randomArray, relErr } from '../helpers.js';
import { kernelsOf, roundBf16, webgpuOrReason } from './webgpu-context.js';

const gpus: Record<string, WebGpuBackend | string> = {};
for (const weights of ['f32', 'bf16', 'q8'] as const) {
  const prev = Object.values(gpus)[0];
  gpus[weights] = typeof prev === 'string' ? prev : await webgpuOrReason({ kernels: 'tiled', weights, fuse: true });
}
after(() => {
  for (const g of Object.values(gpus)) if (typeof g !== 'string') g.destroy();
});


describe('webgpu decode matvec candidates (issue 11)', () => {
  it('variant strings: u / l{U} / split-K parsed and bounded; bad option values named', () => {
    assert.equal(matvecVariant(1, 768, 'f', 3072, 256, 49152, false, 4), '1f8s192u4');
    assert.equal(matvecVariant(1, 768, 'x', 3072, 256, 49152, false, 4), '1x8', 'the scalar format has no loads-in-flight form');
    assert.deepEqual(matvecParse('4b2s128lu8'), { mm: 4, fmt: 'b', rpw: 2, xs4: 128, ext: '', rowLanes: true, loads: 8 });
    assert.deepEqual(matvecParse('1f8:a'), { mm: 1, fmt: 'f', rpw: 8, xs4: 0, ext: 'a', rowLanes: false, loads: 1 });
    assert.throws(() => matvecParse('1f8u3'), /bad variant/);
    assert.deepEqual(parseMatvecSgConfig('v2-r1w128l4n', { rps: 4, wg: 128, unroll: true }), { rps: 1, wg: 128, unroll: false, loads: 4, stage: false });
    assert.equal(matvecSgParse('2f32r1w128l4k768s0').loads, 4);
    for (const bad of ['v1-u3', 'v1-k8', 'v2-r1w128u4', 'v2-r1w128l3']) assert.throws(() => parseMatvecSgConfig(bad, { rps: 1, wg: 64, unroll: true }), /decodeKernels must be/);
    // split-K: U capped at 32 vec4 of x̂ a lane (8 rows of bf16: 2 units); R the most rows per subgroup (4, 2, 1) that
    // still fill 256 workgroups (mamba2-130m in_proj: 2 slices × 105 row blocks at R = 4 is too few, so R = 2; out_proj 3 × 96 at R = 1)
    assert.deepEqual(matvecSkParse(matvecSkVariant(8, 2560, 'b', 10576, 32, 4, 256)), { mm: 8, fmt: 'b', sg: 32, U: 2, R: 4 });
    assert.deepEqual(matvecSkParse(matvecSkVariant(1, 768, 'f', 3352, 32, 4, 256)), { mm: 1, fmt: 'f', sg: 32, U: 4, R: 2 });
    assert.deepEqual(matvecSkParse(matvecSkVariant(1, 1536, 'f', 768, 32, 4, 256)), { mm: 1, fmt: 'f', sg: 32, U: 4, R: 1 });
    assert.equal(matvecSkSlices(5120, 'f', 32, 4), 10);
  });

  for (const [which, g] of Object.entries(gpus)) {
    const bf16 = which === 'bf16', q8 = which === 'q8';
    it(`linear (${which}): each candidate = float64 reference, odd shapes, the kernels it names`, async (t: TestContext) => {
      if (typeof g === 'string') return t.skip(g);
      let seed = 91;
      try {
        // [option, M, K, N]: a partial last round of loads (K 72 / 136; q8, whole blocks of 32: 96 / 160), rows not a
        // multiple of a workgroup's; q8 has no split-K form (MATVEC_V runs)
        const [KA, KB] = q8 ? [160, 96] : [136, 72];
        // 'v1' (the default) takes 4 loads in flight at 1–2 rows for f32 rows of K ≥ 2048 and for bf16, 'v1-u1' never
        for (const [opt, M, K, N, kernel] of [
          ['v1', 1, 2048, 9, 'matvec_v'], ['v1', 2, 2080, 9, 'matvec_v'], ['v1', 3, 2048, 9, 'matvec_v'], ['v1-u1', 1, 2048, 9, 'matvec_v'],
          ['v1-u4', 1, KA, 37, 'matvec_v'], ['v1-u2', 3, KB, 45, 'matvec_v'],
          ['v1-k4', 1, KA, 37, q8 ? 'matvec_v' : 'matvec_sk'], ['v1-k2', 5, KB, 45, q8 ? 'matvec_v' : 'matvec_sk'],
          ['v2-r2w64l4', 3, KA, 37, 'matvec_sgv'],
        ] as const) {
          g.decodeKernels = opt;
          const x = randomArray(M * K, seed++), w = randomArray(N * K, seed++), b = randomArray(N, seed++);
          const W = g.fromHost(w.slice(), [N, K], { matrix: true });
          const wr = bf16 ? roundBf16(w) : q8 ? await g.rt.read(W.storage as Store) : w;
          const want = new Float64Array(M * N);
          for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
            let s = b[n];
            for (let k = 0; k < K; k++) s += x[m * K + k] * wr[n * K + k];
            want[m * N + n] = s;
          }
          const r: { result: Float32Array; names: string[]; variants: string[] } = await kernelsOf(g, () => g.linear(g.fromHost(x.slice(), [M, K]), W, g.fromHost(b.slice(), [N])).data());
          const e = relErr(r.result, want);
          assert.ok(e <= 1e-5, `${which} ${opt} ${M}×${K}×${N}: relative error ${e}`);
          const sg: boolean = g.rt.subgroupFixed > 0;
          const expect: string[] = kernel === 'matvec_v' ? ['matvec_v'] : !sg ? ['matvec_v'] : kernel === 'matvec_sk' ? ['matvec_sk', 'matvec_sk_reduce'] : ['matvec_sgv'];
          assert.deepEqual(r.names.filter((n) => n !== 'copy'), expect, `${which} ${opt}: ran ${r.variants.join(', ')}`);
          if (opt.startsWith('v1-u') && opt !== 'v1-u1') assert.match(r.variants[0], new RegExp(`u${opt.slice(4)}$`), `${which} ${opt}: ${r.variants[0]}`);
          if (opt === 'v1-u1' || (opt === 'v1' && (M > 2 || q8))) assert.doesNotMatch(r.variants[0], /u\d$/, `${which} ${opt} ${M} rows: ${r.variants[0]}`);
          if (opt === 'v1' && M <= 2 && !q8) assert.match(r.variants[0], /u4$/, `${which} ${opt} ${M} rows: ${r.variants[0]}`);
          W.dispose();
        }
      } finally {
        g.decodeKernels = 'v1';
      }
    });
  }

  it('split-K with R = 4 rows a subgroup, U = 2, 3 rows of x: gated norm (groups of 68), bias, residual and conv window = MATVEC_V', async (t: TestContext) => {
    const g = gpus.f32;
    if (typeof g === 'string') return t.skip(g);
    const sg = g.rt.subgroupFixed;
    if (!sg) return t.skip('no fixed subgroup size');
    // rows not a multiple of a workgroup's (256 / sg · 4), K not a multiple of a slice (sg · 2 units): idle lanes and rows
    const [M, K, N, cs0, cw, Kc, gs] = [3, 136, 2 * (256 / sg) * 4 + 5, 6, 20, 4, 68];
    let seed = 4100;
    const st = (x: { storage: unknown }) => x.storage as Store;
    const x = randomArray(M * K, seed++), z = randomArray(M * K, seed++), nw = randomArray(K, seed++), w = randomArray(N * K, seed++), b = randomArray(N, seed++), res = randomArray(M * N, seed++), win = randomArray(M * cw * Kc, seed++);
    const W = g.fromHost(w.slice(), [N, K], { matrix: true }), X = g.fromHost(x.slice(), [M, K]), Z = g.fromHost(z.slice(), [M, K]), NW = g.fromHost(nw.slice(), [K]), Bt = g.fromHost(b.slice(), [N]), Rs = g.fromHost(res.slice(), [M, N]);
    const v = `4f${sg}u2r4`, p = matvecSkParse(v), S = matvecSkSlices(K, 'f', sg, 2);
    const params = [M, K, N, 0, N, 1 | 2 | 4 | 8 | 16, gs, f2u(1e-5), cs0, cw, Kc];
    const out: Float32Array[][] = [];
    for (const which of ['v1', 'split-K'] as const) {
      const y = g.zeros([M, N]), y2 = g.zeros([M, N]), cst = g.fromHost(win.slice(), [M, cw, Kc]);
      const roles = [st(X), st(W), st(Bt), st(NW), st(Z), st(Rs), st(cst), st(y), st(y2)];
      if (which === 'v1') {
        const mv = matvecVariant(M, K, 'f', N, 256, g.rt.maxWorkgroupStorage, true);
        g.rt.record({ spec: MATVEC_V, variant: mv, roles, params, grid: g.rt.grid(Math.ceil(N / matvecParse(mv).rpw)) });
      } else {
        const part = g.zeros([S, M, N]);
        g.rt.record({ spec: MATVEC_SK, variant: v, roles: [...roles, st(part)], params: [...params, S], grid: g.rt.grid(matvecSkGroups(p, K, N)) });
        const rr = [...roles, st(part)];
        rr[1] = g.rt.dummy;
        g.rt.record({ spec: MATVEC_SK_REDUCE, variant: '', roles: rr, params: [...params, S], grid: g.rt.grid(Math.ceil((M * N) / 256)) });
      }
      out.push([await y.data(), await y2.data(), await cst.data()]);
    }
    for (let i = 0; i < 3; i++) {
      const e = relErr(out[1][i], out[0][i]);
      assert.ok(e <= 1e-5, `split-K ${v} vs MATVEC_V: output ${['y', 'y2', 'conv window'][i]} differs by ${e} relative`);
    }
  });

  // [fixture, backend, batch]: Mamba-2 at batch 1 — the RMSNorm folded into in_proj with the conv-window epilogue, the
  // gated norm folded into out_proj with the residual epilogue, the lm_head (2–8 rows: the linear case above; each
  // case compiles the fixture's pipelines for three kernel sets, ~12 s of CPU on SwiftShader; the subgroup matvec's
  // loop form is checked by the linear case)
  const CASES: [string, string, number][] = [['mamba2-tiny', 'f32', 1]];
  for (const [name, which, B] of CASES) {
    it(`${name} (${which}, batch ${B}): decode logits of v1-u4 and v1-k4 = v1 within 1e-5 relative`, async (t: TestContext) => {
      const g = gpus[which];
      if (typeof g === 'string') return t.skip(g);
      const lm = (await loadModel(hfFixture(name), { backend: g })).lm;
      const run = async (k: string) => {
        g.decodeKernels = k;
        const state = lm.createState(B);
        await lm.advance(Array.from({ length: B }, (_, r) => [1 + r, 2, 3, 4, 5]), state);
        const first = await kernelsOf(g, () => lm.advance(Array.from({ length: B }, (_, r) => [7 + r]), state).then((l) => l.data));
        const logits = [first.result];
        logits.push((await lm.advance(Array.from({ length: B }, (_, r) => [9 + r]), state)).data);
        state.dispose();
        return { logits, names: first.names };
      };
      try {
        const base = await run('v1');
        for (const k of ['v1-u4', 'v1-k4']) {
          const got = await run(k);
          for (let i = 0; i < base.logits.length; i++) {
            const e = relErr(got.logits[i], base.logits[i]);
            assert.ok(e <= 1e-5, `${name} ${k} step ${i}: logits differ from v1 by ${e} relative`);
          }
          const mark = k === 'v1-k4' ? 'matvec_sk' : 'matvec_v';
          if (g.rt.subgroupFixed) assert.ok(got.names.includes(mark), `${name} ${k} ran ${got.names.join(', ')}`);
        }
      } finally {
        g.decodeKernels = 'v1';
      }
    });
  }
});
