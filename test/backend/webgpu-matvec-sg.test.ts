/**
 * The batch-1 decode kernels 'v2' (kernels/matvec_sg.ts: rows per subgroup, 16-byte loads, subgroupAdd; the
 * barrier-free Mamba step kernels) against a float64 reference and against the kernels before ('v1'): f32 and
 * bf16 weights, 'tiled' and 'simple' kernels, unrolled and loop forms, odd shapes (rows not a multiple of a
 * workgroup's rows, row lengths not a multiple of the subgroup's vectors), the folded norms and the residual
 * epilogue, and whole decode steps of the HF fixtures (Mamba, Mamba-2, hybrids).
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { matvecSgFit, matvecSgParse, matvecSgVariant, parseMatvecSgConfig } from '../../src/backend/webgpu/kernels/matvec_sg.js';
import { loadModel } from '../../src/index.js';
import { assertSameDecode, hfFixture, maxAbsDiff, randomArray } from '../helpers.js';
import { kernelsOf, roundBf16, webgpuOrReason } from './webgpu-context.js';

const gpus: Record<string, WebGpuBackend | string> = {};
for (const kernels of ['tiled', 'simple'] as const) {
  for (const weights of ['f32', 'bf16'] as const) {
    const prev = Object.values(gpus)[0];
    gpus[`${kernels} ${weights}`] = typeof prev === 'string' ? prev : await webgpuOrReason({ kernels, weights, fuse: true });
  }
}
after(() => {
  for (const g of Object.values(gpus)) if (typeof g !== 'string') g.destroy();
});


/** y = norm?(x) · wᵀ + b (+ res), in float64; norm: RMS over groups of gs, gated by silu(z) when z is given */
function reference(x: Float32Array, w: Float32Array, b: Float32Array | null, M: number, K: number, N: number, norm?: { nw: Float32Array; gs: number; eps: number; z?: Float32Array }, res?: Float32Array): Float64Array {
  const xh = Float64Array.from(x);
  if (norm) {
    for (let m = 0; m < M; m++) {
      for (let g0 = 0; g0 < K; g0 += norm.gs) {
        let s = 0;
        for (let k = g0; k < g0 + norm.gs; k++) {
          const i = m * K + k;
          if (norm.z) xh[i] *= norm.z[i] / (1 + Math.exp(-norm.z[i]));
          s += xh[i] * xh[i];
        }
        const r = 1 / Math.sqrt(s / norm.gs + norm.eps);
        for (let k = g0; k < g0 + norm.gs; k++) xh[m * K + k] *= r * norm.nw[k];
      }
    }
  }
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = b ? b[n] : 0;
      for (let k = 0; k < K; k++) s += xh[m * K + k] * w[n * K + k];
      y[m * N + n] = s + (res ? res[m * N + n] : 0);
    }
  }
  return y;
}

const CONFIGS = ['v2', 'v2-r1w32u', 'v2-r3w64l', 'v2-r4w32un', 'v2-r2w128l'];

describe('webgpu decode kernels v2: subgroup matvec', () => {
  it('config strings and variants: parsed, bad ones named; long rows leave the unrolled form; x̂ staged when it fits', () => {
    assert.deepEqual(parseMatvecSgConfig('v2-r2w128u', { rps: 1, wg: 64, unroll: false }), { rps: 2, wg: 128, unroll: true, stage: true });
    assert.deepEqual(parseMatvecSgConfig('v2-r4w64ln', { rps: 1, wg: 64, unroll: false }), { rps: 4, wg: 64, unroll: false, stage: false });
    assert.deepEqual(parseMatvecSgConfig('v2', { rps: 1, wg: 64, unroll: false }), { rps: 1, wg: 64, unroll: false });
    for (const bad of ['v3', 'v2-r0w128u', 'v2-r2w100u', 'v2-r2w128x', 'v2-r9w64u']) assert.throws(() => parseMatvecSgConfig(bad, { rps: 1, wg: 64, unroll: true }), /decodeKernels must be/);
    const v = matvecSgParse(matvecSgVariant(1, 768, 'f', 32, { rps: 2, wg: 128, unroll: true }, 32768));
    assert.deepEqual(v, { mm: 1, fmt: 'f', sg: 32, rps: 2, wg: 128, unroll: true, K: 768, xs4: 192 });
    assert.equal(matvecSgParse(matvecSgVariant(1, 20480, 'f', 32, { rps: 4, wg: 128, unroll: true }, 32768)).unroll, false);
    assert.equal(matvecSgParse(matvecSgVariant(8, 5120, 'b', 32, { rps: 1, wg: 128, unroll: true }, 32768)).xs4, 0);
    assert.throws(() => matvecSgParse('1f32r2'), /bad variant/);
    // 'v2' fitted per matrix: ≥ 264 workgroups (2 × 132 cores) where the rows allow, else the fewest rows per workgroup
    const auto = { rps: 4, wg: 128, unroll: true, auto: 264 };
    assert.deepEqual([3072, 768, 50280, 100].map((nb) => matvecSgFit(auto, nb, 32)).map((c) => `r${c.rps}w${c.wg}`), ['r2w128', 'r1w64', 'r4w128', 'r1w32']);
    assert.deepEqual(matvecSgFit({ rps: 3, wg: 32, unroll: false }, 10, 64), { rps: 3, wg: 64, unroll: false });
  });

  for (const [which, g] of Object.entries(gpus)) {
    const bf16 = which.endsWith('bf16');
    it(`linear (${which}): M ∈ {1, 3, 8}, odd shapes, every config = float64 reference (one matvec_sgv dispatch)`, async (t: TestContext) => {
      if (typeof g === 'string') return t.skip(g);
      if (!g.rt.subgroupFixed) return t.skip('no fixed subgroup size: v2 runs the v1 matvec');
      let seed = 7;
      try {
        // every config on the tiled backends; two on the simple ones (same kernel, other format choices). Each
        // (config, M, K) compiles a pipeline of its own (M and K are compiled in): a Latin square instead of the full
        // product — each config meets every K and every M once, and every (K, M) pair is met by some config
        const configs = which.startsWith('tiled') ? CONFIGS : ['v2', 'v2-r3w64l'];
        for (const [ci, cfg] of configs.entries()) {
          g.decodeKernels = cfg;
          // [K, N]: 16 (one vector a lane or less), 72 (f32: 18 vectors, bf16: 9: a partial last round), 136 × 70 rows;
          // M: 1, 3 (a partial block of 4 rows), 8
          for (const [j, [K, N]] of [[16, 5], [72, 45], [136, 70]].entries()) {
            for (const M of [[1, 3, 8][(j + ci) % 3]]) {
              const x = randomArray(M * K, seed++), w = randomArray(N * K, seed++), b = randomArray(N, seed++);
              const W = g.fromHost(w.slice(), [N, K], { matrix: true });
              const want = reference(x, bf16 ? roundBf16(w) : w, b, M, K, N);
              const { result, names }: { result: Float32Array; names: string[] } = await kernelsOf(g, () => g.linear(g.fromHost(x.slice(), [M, K]), W, g.fromHost(b.slice(), [N])).data());
              const d = maxAbsDiff(result, Float32Array.from(want));
              assert.ok(d <= 2e-5 * Math.sqrt(K), `${which} ${cfg} ${M}×${K}×${N}: max |Δ| = ${d}`);
              // plain f32 matvecs on 'simple' kernels keep the barrier-free scalar subgroup kernel (matvec_sg)
              const expect = !bf16 && which.startsWith('simple') ? 'matvec_sg' : 'matvec_sgv';
              assert.deepEqual(names.filter((n) => n !== 'copy'), [expect], `${which} ${cfg} ${M}×${K}×${N}: ran ${names.join(', ')}`);
            }
          }
        }
      } finally {
        g.decodeKernels = 'v2';
      }
    });

    it(`fused (${which}): RMSNorm + residual and the grouped gated norm folded into matvec_sgv = float64 reference`, async (t: TestContext) => {
      if (typeof g === 'string') return t.skip(g);
      if (!g.rt.subgroupFixed) return t.skip('no fixed subgroup size');
      let seed = 301;
      try {
        // one M per config (each (config, M) compiles its own pipelines), rotated from backend to backend (tiled f32,
        // tiled bf16, simple f32: shifts 0, 1, 2): every config meets every M over the file, each norm (plain, gated,
        // one group) with each
        const shift = Object.keys(gpus).indexOf(which) % 3;
        for (const [ci, cfg] of ['v2-r1w32u', 'v2-r2w64l', 'v2-r2w64un'].entries()) {
          g.decodeKernels = cfg;
          for (const M of [[1, 2, 5][(ci + shift) % 3]]) {
            const [K, N, gs, eps] = [64, 41, 16, 1e-5];
            const x = randomArray(M * K, seed++), z = randomArray(M * K, seed++), nw = randomArray(K, seed++);
            const w = randomArray(N * K, seed++), res = randomArray(M * N, seed++);
            const wr = bf16 ? roundBf16(w) : w;
            const W = g.fromHost(w.slice(), [N, K], { matrix: true });
            const plain: { result: Float32Array; names: string[] } = await kernelsOf(g, () => g.add(g.linear(g.rmsNorm(g.fromHost(x.slice(), [M, K]), g.fromHost(nw.slice(), [K]), eps), W, null), g.fromHost(res.slice(), [M, N])).data());
            const gated: { result: Float32Array; names: string[] } = await kernelsOf(g, () => g.linear(g.rmsNormGated(g.fromHost(x.slice(), [M, K]), g.fromHost(z.slice(), [M, K]), g.fromHost(nw.slice(), [K]), eps, gs), W, null).data());
            // one group over the whole row (Mamba-2 with one norm group; with M = 1 the kernel's one-row path)
            const gated1: { result: Float32Array; names: string[] } = await kernelsOf(g, () => g.linear(g.rmsNormGated(g.fromHost(x.slice(), [M, K]), g.fromHost(z.slice(), [M, K]), g.fromHost(nw.slice(), [K]), eps, K), W, null).data());
            const want = {
              plain: reference(x, wr, null, M, K, N, { nw, gs: K, eps }, res),
              gated: reference(x, wr, null, M, K, N, { nw, gs, eps, z }),
              gated1: reference(x, wr, null, M, K, N, { nw, gs: K, eps, z }),
            };
            for (const [what, r] of [['plain', plain], ['gated', gated], ['gated1', gated1]] as const) {
              const d = maxAbsDiff(r.result, Float32Array.from(want[what]));
              assert.ok(d <= 1e-4, `${which} ${cfg} M=${M} ${what}: max |Δ| = ${d}`);
              // batchDecode 'fused' (the default since session 28) runs a gated norm of 2–8 rows on its own (a gated-norm
              // kernel, then the matvec without the fold); 'fused-v1' folds it (webgpu-batch-epilogue tests both modes)
              const alone: boolean = what !== 'plain' && M >= 2 && g.batchDecode === 'fused';
              const names = r.names.filter((n) => n !== 'copy');
              if (alone) assert.ok(names.length === 2 && names[0].startsWith('rms_norm_gated') && names[1].startsWith('matvec_sg'), `${which} ${cfg} M=${M} ${what}: the norm, then the matvec (got ${names.join(', ')})`);
              else assert.deepEqual(names, ['matvec_sgv'], `${which} ${cfg} M=${M} ${what}: one dispatch (got ${names.join(', ')})`);
            }
          }
        }
      } finally {
        g.decodeKernels = 'v2';
      }
    });
  }
});

describe('webgpu decode kernels v2 vs v1: decode logits of the HF fixtures', () => {
  // the tiled kernels (what GPUs run), fused; f32 within 1e-5, bf16 weights likewise (same rounding both ways)
  // [fixture, backend, batch, step kernel expected with v2]. 'v2' is opt-in (v1 is the default): one case per step
  // kernel × batch (1 / 2 rows) and bf16 through a hybrid; each case compiles the fixture's v1 and v2 pipelines
  // (20-50 s on SwiftShader), so mamba2-tiny (b1: the Mamba-2 step of bamba-tiny, one group), mamba-tiny bf16 (bf16
  // matvec_sgv: bamba-tiny, and the linear/fused cases above) and mamba-variant (Mamba-1 at batch 2: falcon-mamba-tiny)
  // are left to those cases; every fixture's HF parity with the default kernels is in webgpu-models.test.ts
  const CASES: [string, string, number, string][] = [
    ['mamba-tiny', 'tiled f32', 1, 'mamba1_scan_sg'], ['falcon-mamba-tiny', 'tiled f32', 2, 'mamba1_scan_sg'],
    ['mamba2-groups', 'tiled f32', 2, 'mamba2_step_sg'], ['bamba-tiny', 'tiled bf16', 1, 'mamba2_step_sg'],
  ];
  for (const [name, which, B, stepKernel] of CASES) {
    it(`${name} (${which}, batch ${B}): v2 decode logits = v1 within 1e-5, recorded steps included`, async (t: TestContext) => {
      const g = gpus[which];
      if (typeof g === 'string') return t.skip(g);
      const lm = (await loadModel(hfFixture(name), { backend: g })).lm;
      const run = async (k: string) => {
        g.decodeKernels = k;
        const state = lm.createState(B);
        await lm.advance(Array.from({ length: B }, (_, r) => [1 + r, 2, 3, 4, 5]), state);
        const logits: Float32Array[] = [];
        const c0 = g.rt.counters.dispatches;
        const first: { result: Float32Array; names: string[] } = await kernelsOf(g, () => lm.advance(Array.from({ length: B }, (_, r) => [7 + r]), state).then((l) => l.data));
        const dispatches = g.rt.counters.dispatches - c0;
        logits.push(first.result);
        for (const tok of [9, 11]) logits.push((await lm.advance(Array.from({ length: B }, (_, r) => [tok + r]), state)).data);
        // greedy ids through advanceArgmax (the path generate() replays)
        const ids: number[] = [];
        let next = Array.from({ length: B }, () => [3]);
        for (let i = 0; i < 4; i++) {
          const a = await lm.advanceArgmax!(next, state);
          ids.push(...Array.from(a!));
          next = Array.from(a!, (v) => [Math.max(0, v)]);
        }
        state.dispose();
        return { logits, ids, names: first.names, dispatches };
      };
      try {
        const v1 = await run('v1'), v2 = await run('v2');
        t.diagnostic(`${name}: ${v1.dispatches} dispatches per decode token with v1, ${v2.dispatches} with v2`);
        if (g.rt.subgroupFixed) {
          assert.ok(v2.names.includes('matvec_sgv') && v2.names.includes(stepKernel), `${name} v2 ran ${v2.names.join(', ')}`);
          const v2only = ['matvec_sgv', 'mamba1_scan_sg', 'mamba2_step_sg'];
          assert.ok(!v1.names.some((n) => v2only.includes(n)), `${name} v1 ran ${v1.names.join(', ')}`);
        }
        assertSameDecode(v2, v1, 1e-5, `${name}: v2 vs v1`);
      } finally {
        g.decodeKernels = 'v2';
      }
    });
  }
});
