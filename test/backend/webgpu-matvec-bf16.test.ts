/**
 * MATVEC_BW (kernels/matvec_bf16.ts, decodeKernels 'v1-b…', session 33): the bf16 decode matvec with R·U wide loads in
 * flight, unpacking on vectors, x̂ staged even/odd, subgroup (or workgroup-tree) reductions and split-K.
 * Checked: the tunables' rule at the 2.8b and 130m shapes and the option parsing; `linear` through the backend against
 * float64 at awkward shapes (K = 8·odd, units not a multiple of a lane's, N = 1 and rows not a multiple of a
 * workgroup's, 1–8 rows of x, bias and none, fixed tunables with and without split-K, first loads before the prologue
 * or not); and the kernel recorded directly with every fusion (gated norm, bias, residual, conv window), both
 * reductions, S = 1–3 slices, x̂ staged or not, the first loads before the prologue or not, against
 * MATVEC_V's bf16 path on the same inputs.
 * Bound: 1e-5 of the largest |output| — the same float32 products summed in another order (a lane's strided partial
 * sums, then a subgroup or tree reduction, per slice), so the two differ by float rounding only: at K ≤ 264 the
 * rounding of the sums is ~K·2⁻²⁴ ≈ 2e-5 relative at the very worst, ~1e-6 in practice.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { MATVEC_V, matvecParse, matvecVariant } from '../../src/backend/webgpu/kernels/matvec.js';
import { MATVEC_BW, matvecBwGroups, matvecBwKey, matvecBwParse, matvecBwPlan, parseMatvecBwConfig } from '../../src/backend/webgpu/kernels/matvec_bf16.js';
import { MATVEC_SK_REDUCE } from '../../src/backend/webgpu/kernels/matvec_splitk.js';
import { f2u, type Store } from '../../src/backend/webgpu/runtime.js';
import { randomArray, relErr } from '../helpers.js';
import { kernelsOf, roundBf16, webgpuOrReason } from './webgpu-context.js';

const g = await webgpuOrReason({ kernels: 'tiled', weights: 'bf16', fuse: true });
after(() => {
  if (typeof g !== 'string') g.destroy();
});


describe('webgpu bf16 matvec MATVEC_BW (issue 11, session 33)', () => {
  it('the rule: R, U, S and staging at the 2.8b and 130m shapes; names parsed, bad ones refused', () => {
    const plan = (M: number, K: number, N: number, wg = 49152) => {
      const p = matvecBwPlan(M, K, N, 32, 256, wg);
      return { ...matvecBwParse(p.variant), S: p.S, SU: p.SU };
    };
    // 2.8b in_proj: 10,576 rows fill 331 workgroups at R = 4 (8 subgroups × 4 rows): 2 units a row in flight, x̂ staged
    assert.deepEqual(plan(1, 2560, 10576), { mm: 1, T: 32, R: 4, U: 2, CH: 320, red: 's', pre: true, guard: false, fastNorm: false, S: 1, SU: 320 });
    // 2.8b out_proj: 2,560 rows → R = 1 (320 workgroups), U = 8; two rows of x: 2 × 640 units × 32 B = 40 KB of x̂
    assert.deepEqual(plan(1, 5120, 2560), { mm: 1, T: 32, R: 1, U: 8, CH: 640, red: 's', pre: true, guard: false, fastNorm: false, S: 1, SU: 640 });
    assert.deepEqual(plan(2, 5120, 2560, 32768), { mm: 2, T: 32, R: 1, U: 8, CH: 320, red: 's', pre: true, guard: false, fastNorm: false, S: 2, SU: 320 }, '32 KiB: two slices so x̂ fits');
    // 130m in_proj: 96 units a row over 32 lanes → U 2; out_proj 768 rows = 96 workgroups < 128 → 3 slices of 64 units
    assert.deepEqual(plan(1, 768, 3352), { mm: 1, T: 32, R: 1, U: 2, CH: 96, red: 's', pre: true, guard: false, fastNorm: false, S: 1, SU: 96 });
    assert.deepEqual(plan(1, 1536, 768), { mm: 1, T: 32, R: 1, U: 2, CH: 64, red: 's', pre: true, guard: false, fastNorm: false, S: 3, SU: 64 });
    // no fixed subgroup size: 32 lanes and a tree; a fixed name wins over the rule
    assert.equal(matvecBwParse(matvecBwPlan(1, 768, 3352, 0, 256, 49152).variant).red, 't');
    assert.deepEqual(matvecBwPlan(1, 2560, 10576, 32, 256, 49152, { R: 2, U: 4, S: 5 }), { variant: '1b32r2u4c64sp', S: 5, SU: 64 });
    assert.equal(matvecBwPlan(1, 2560, 10576, 32, 256, 49152, { pre: false }).variant, '1b32r4u2c320s', "'-n': no loads before the prologue");
    assert.equal(matvecBwKey(matvecBwParse('8b4r4u8c0t')), '8b4r4u8c0t');
    assert.equal(matvecBwKey(matvecBwParse('2b32r1u8c320sp')), '2b32r1u8c320sp');
    assert.throws(() => matvecBwParse('1b32r3u2c0s'), /bad variant/);
    assert.deepEqual(parseMatvecBwConfig('v1-b'), {});
    assert.deepEqual(parseMatvecBwConfig('v1-b-r4u2'), { R: 4, U: 2 });
    assert.deepEqual(parseMatvecBwConfig('v1-b-r1u8s3'), { R: 1, U: 8, S: 3 });
    assert.deepEqual(parseMatvecBwConfig('v1-b-n'), { pre: false });
    assert.deepEqual(parseMatvecBwConfig('v1-b-r2u4s2-n'), { pre: false, R: 2, U: 4, S: 2 });
    assert.deepEqual(parseMatvecBwConfig('v1-b-r2u4g'), { R: 2, U: 4, guard: true });
    assert.deepEqual(parseMatvecBwConfig('v1-b-r1u8s2g-n'), { pre: false, guard: true, R: 1, U: 8, S: 2 });
    assert.deepEqual(parseMatvecBwConfig('v1-b-r2u4gf'), { R: 2, U: 4, guard: true, fastNorm: true });
    assert.deepEqual(parseMatvecBwConfig('v1-b-r2u4f'), { R: 2, U: 4, fastNorm: true });
    assert.equal(matvecBwPlan(1, 5120, 2560, 32, 256, 49152, { R: 2, U: 4, guard: true, fastNorm: true }).variant, '1b32r2u4c640spgf');
    assert.equal(matvecBwKey(matvecBwParse('1b32r2u4c640sf')), '1b32r2u4c640sf');
    assert.equal(matvecBwPlan(1, 2560, 10576, 32, 256, 49152, { R: 2, U: 4, guard: true }).variant, '1b32r2u4c320spg', "'g': the guarded last round");
    assert.equal(matvecBwKey(matvecBwParse('1b32r2u4c320sg')), '1b32r2u4c320sg');
    assert.equal(parseMatvecBwConfig('v1-bg'), null);
    assert.equal(parseMatvecBwConfig('v1-b-r3u2'), null);
    assert.equal(parseMatvecBwConfig('v1-bx'), null);
  });

  it('option names: v1-b… accepted, others refused naming the option', (t: TestContext) => {
    if (typeof g === 'string') return t.skip(g);
    try {
      for (const k of ['v1-b', 'v1-b-r4u2', 'v1-b-r1u8s3', 'v1-b-r1u8-n', 'v1-b-r2u4g', 'v1-b-r2u4g-s', 'v1-b-r2u4gf', 'v1-b-r4u2f-s', 'v1-s']) g.decodeKernels = k;
      assert.throws(() => (g.decodeKernels = 'v1-b-r5u2'), /decodeKernels must be .*v1-b/);
    } finally {
      g.decodeKernels = 'v1';
    }
  });

  it('linear: v1-b forms = float64 at awkward shapes, 1–8 rows, bias / none; MATVEC_BW runs (+ the reduce when split)', async (t: TestContext) => {
    if (typeof g === 'string') return t.skip(g);
    let seed = 331;
    try {
      // [option, M, K, N, bias]: K 8·17 (units not a multiple of the lanes' step), 8·33, 8·3 (fewer units than lanes)
      for (const [opt, M, K, N, bias] of [
        ['v1-b', 1, 136, 37, true], ['v1-b', 2, 264, 1, false], ['v1-b', 3, 24, 45, true], ['v1-b', 8, 136, 9, false],
        ['v1-b-r4u2', 1, 264, 70, true], ['v1-b-r2u4', 5, 136, 37, false], ['v1-b-r1u8', 1, 264, 3, true],
        ['v1-b-r4u2s3', 2, 264, 37, true], ['v1-b-r1u1s5', 7, 136, 11, false], ['v1-b-r8u1s2', 4, 72, 1, true],
        ['v1-b-n', 1, 136, 37, true], ['v1-b-r2u4s2-n', 3, 264, 19, false],
      ] as const) {
        g.decodeKernels = opt;
        const x = randomArray(M * K, seed++), w = randomArray(N * K, seed++), b = randomArray(N, seed++);
        const W = g.fromHost(w.slice(), [N, K], { matrix: true });
        const wr = roundBf16(w);
        const want = new Float64Array(M * N);
        for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
          let s = bias ? b[n] : 0;
          for (let k = 0; k < K; k++) s += x[m * K + k] * wr[n * K + k];
          want[m * N + n] = s;
        }
        const r: { result: Float32Array; names: string[]; variants: string[] } = await kernelsOf(g, () => g.linear(g.fromHost(x.slice(), [M, K]), W, bias ? g.fromHost(b.slice(), [N]) : null).data());
        const e = relErr(r.result, want);
        assert.ok(e <= 1e-5, `${opt} ${M}×${K}×${N}: relative error ${e} (${r.variants.join(', ')})`);
        const split: boolean = matvecBwPlan(M, K, N, g.rt.subgroupFixed, 256, g.rt.maxWorkgroupStorage, parseMatvecBwConfig(opt)!).S > 1;
        if (/s[2-9]$/.test(opt)) assert.ok(split, `${opt}: slices asked for`);
        assert.deepEqual(r.names.filter((n) => n !== 'copy'), split ? ['matvec_bw', 'matvec_sk_reduce'] : ['matvec_bw'], `${opt}: ran ${r.variants.join(', ')}`);
        W.dispose();
      }
    } finally {
      g.decodeKernels = 'v1';
    }
  });

  it("'v1' (and 'mega''s fallback kernels): one-row bf16 products of K and N ≥ 2048 run MATVEC_BW at R 2 U 4 (= float64); smaller ones, 2 rows and 'v1-u4' MATVEC_V", async (t: TestContext) => {
    if (typeof g === 'string') return t.skip(g);
    let seed = 901;
    try {
      // [option, M, K, N, MATVEC_BW expected]
      for (const [opt, M, K, N, bw] of [['v1', 1, 2048, 2048, true], ['v1', 1, 2048, 2040, false], ['v1', 1, 1536, 4096, false], ['v1', 2, 2048, 2048, false], ['v1-u4', 1, 2048, 2048, false], ['mega-r32-o8', 1, 2048, 2048, true], ['mega', 1, 1536, 4096, false]] as const) {
        g.decodeKernels = opt;
        const x = randomArray(M * K, seed++), w = randomArray(N * K, seed++);
        const W = g.fromHost(w.slice(), [N, K], { matrix: true });
        const wr = roundBf16(w);
        const want = new Float64Array(M * N);
        for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += x[m * K + k] * wr[n * K + k];
          want[m * N + n] = s;
        }
        const r: { result: Float32Array; names: string[]; variants: string[] } = await kernelsOf(g, () => g.linear(g.fromHost(x.slice(), [M, K]), W, null).data());
        const e = relErr(r.result, want);
        assert.ok(e <= 1e-5, `${opt} ${M}×${K}×${N}: relative error ${e} (${r.variants.join(', ')})`);
        assert.equal(r.names.includes('matvec_bw'), bw, `${opt} ${M}×${K}×${N} ran ${r.variants.join(', ')}`);
        if (bw) assert.deepEqual(r.variants.filter((v, i) => r.names[i] === 'matvec_bw').map((v) => matvecBwParse(v.replace(/^matvec_bw:/, '')).R), [2]);
        W.dispose();
      }
    } finally {
      g.decodeKernels = 'v1';
    }
  });

  it('K not a multiple of 8: bf16 weights stay on their old path, still = float64', async (t: TestContext) => {
    if (typeof g === 'string') return t.skip(g);
    try {
      g.decodeKernels = 'v1-b';
      const [M, K, N] = [1, 100, 13];
      const x = randomArray(M * K, 7), w = randomArray(N * K, 8);
      const W = g.fromHost(w.slice(), [N, K], { matrix: true });
      const wr = (W.storage as Store).fmt === 'bf16' ? roundBf16(w) : w;
      const want = new Float64Array(N);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) want[n] += x[k] * wr[n * K + k];
      const r: { result: Float32Array; names: string[]; variants: string[] } = await kernelsOf(g, () => g.linear(g.fromHost(x.slice(), [M, K]), W, null).data());
      assert.ok(relErr(r.result, want) <= 1e-5, `K ${K}: ${r.variants.join(', ')}`);
      assert.ok(!r.names.includes('matvec_bw'), `K ${K} ran ${r.names.join(', ')}`);
      W.dispose();
    } finally {
      g.decodeKernels = 'v1';
    }
  });

  it('recorded directly, every fusion (gated norm in groups of 68, bias, residual, conv window), 1–8 rows, s / t reductions, S = 1 / 3: = MATVEC_V', async (t: TestContext) => {
    if (typeof g === 'string') return t.skip(g);
    const sg = g.rt.subgroupFixed;
    const st = (x: { storage: unknown }) => x.storage as Store;
    let seed = 5100;
    const cs0 = 6, cw = 20, Kc = 4;
    // [M, R, U, reduction, S, first loads before the prologue, last round guarded ('g', session 34: 17 units a row, so
    // the last round of a lane is partial), the unrolled norm prologue ('f', session 34)]
    for (const c of [[1, 4, 2, 's', 1, true, false, false], [3, 2, 2, 't', 3, true, false, false], [8, 1, 4, 's', 3, false, false, false], [2, 4, 1, 't', 1, false, false, false], [5, 1, 8, 's', 2, true, false, false],
      [1, 2, 4, 's', 1, true, true, false], [3, 2, 2, 't', 3, true, true, true], [1, 4, 4, 't', 1, false, true, true], [1, 2, 4, 's', 1, true, false, true], [1, 2, 4, 's', 1, true, true, true, 'K 2048'], [2, 1, 4, 't', 2, true, false, true, 'K 2048']] as const) {
      const [M, R, U, red, S, pre, guard, fastNorm] = c;
      // K 136 in groups of 68 (17 units a row); the last two K 2048 in groups of 1,024, long enough for the unrolled
      // prologue's 4-load rounds
      const [K, gs] = c.length > 8 ? [2048, 1024] : [136, 68];
      if (red === 's' && !sg) continue;
      const T = red === 's' ? sg : 32;
      const N = (256 / T) * R + 5; // a second workgroup, partly idle
      const mm = M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : 8;
      const SU = Math.ceil(K / 8 / S);
      const x = randomArray(M * K, seed++), z = randomArray(M * K, seed++), nw = randomArray(K, seed++), w = randomArray(N * K, seed++), b = randomArray(N, seed++), res = randomArray(M * N, seed++), win = randomArray(M * cw * Kc, seed++);
      const W = g.fromHost(w.slice(), [N, K], { matrix: true }), X = g.fromHost(x.slice(), [M, K]), Z = g.fromHost(z.slice(), [M, K]), NW = g.fromHost(nw.slice(), [K]), Bt = g.fromHost(b.slice(), [N]), Rs = g.fromHost(res.slice(), [M, N]);
      assert.equal(st(W).fmt, 'bf16');
      const params = [M, K, N, 0, N, 1 | 2 | 4 | 8 | 16, gs, f2u(1e-5), cs0, cw, Kc];
      const out: Float32Array[][] = [];
      for (const which of ['v1', 'bw', 'bw unstaged'] as const) {
        const y = g.zeros([M, N]), y2 = g.zeros([M, N]), cst = g.fromHost(win.slice(), [M, cw, Kc]);
        const roles = [st(X), st(W), st(Bt), st(NW), st(Z), st(Rs), st(cst), st(y), st(y2)];
        if (which === 'v1') {
          const mv = matvecVariant(M, K, 'b', N, 256, g.rt.maxWorkgroupStorage, true);
          g.rt.record({ spec: MATVEC_V, variant: mv, roles, params, grid: g.rt.grid(Math.ceil(N / matvecParse(mv).rpw)) });
        } else {
          const v = matvecBwKey({ mm, T, R, U, CH: which === 'bw' ? SU : 0, red, pre, guard, fastNorm });
          const part = g.zeros([S, M, N]);
          const grid = g.rt.grid(matvecBwGroups(matvecBwParse(v), N, S));
          g.rt.record({ spec: MATVEC_BW, variant: v, roles: [...roles, S > 1 ? st(part) : g.rt.dummy], params: [...params, S, SU], grid });
          if (S > 1) {
            const rr = [...roles, st(part)];
            rr[1] = g.rt.dummy;
            g.rt.record({ spec: MATVEC_SK_REDUCE, variant: '', roles: rr, params: [...params, S], grid: g.rt.grid(Math.ceil((M * N) / 256)) });
          }
        }
        out.push([await y.data(), await y2.data(), await cst.data()]);
      }
      for (const k of [1, 2]) {
        for (let i = 0; i < 3; i++) {
          const e = relErr(out[k][i], out[0][i]);
          assert.ok(e <= 1e-5, `M ${M} R ${R} U ${U} ${red} S ${S}${pre ? ' p' : ''}${guard ? ' g' : ''}${fastNorm ? ' f' : ''} ${k === 1 ? 'staged' : 'unstaged'}: ${['y', 'y2', 'conv window'][i]} differs from MATVEC_V by ${e} relative`);
        }
      }
    }
  });
});
