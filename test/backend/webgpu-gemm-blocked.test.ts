/**
 * The register-blocked GEMM (kernels/gemm_blocked.ts) against the CPU reference on shapes that are not multiples
 * of any tile: every named configuration, f32 weights as vectors ('f') and scalars ('x'), bf16 weights ('b'), with
 * and without split-K (partials + SPLITK_REDUCE); the plan it picks per shape; `backend.linear` with gemm 'blocked'
 * and gemmSmall 'blocked'; and batched greedy decode of the tiny fixtures on the former path with gemmSmall
 * 'blocked' against each row decoded alone. 'tiled' kernels throughout (SwiftShader defaults to 'simple').
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/index.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { BLOCKED_CONFIGS, MATMUL_BLOCKED, SPLITK_REDUCE, blockedPlan, blockedWorkgroupBytes, parseBlocked } from '../../src/backend/webgpu/kernels/gemm_blocked.js';
import type { Store } from '../../src/backend/webgpu/runtime.js';
import { generateWgsl } from '../../src/backend/webgpu/wgsl.js';
import { loadModel } from '../../src/index.js';
import { bf16ToF32, f32ToBf16 } from '../../src/tensor/dtype.js';
import { hfFixture, maxAbsDiff, randomArray } from '../helpers.js';
import { webgpuOrReason } from './webgpu-context.js';
import { batchedEqualsAlone } from './batched-decode.js';

const gpu = await webgpuOrReason({ kernels: 'tiled' });
const gpuBf16 = typeof gpu === 'string' ? gpu : await webgpuOrReason({ kernels: 'tiled', weights: 'bf16' });
after(() => {
  for (const g of [gpu, gpuBf16]) if (typeof g !== 'string') g.destroy();
});

let seed = 7;
const rnd = (n: number) => randomArray(n, seed++ * 7919, 1);
const roundBf16 = (a: Float32Array): Float32Array => a.map((v) => bf16ToF32(f32ToBf16(v)));

function reference(x: Float32Array, w: Float32Array, bias: Float32Array | null, M: number, K: number, N: number): Float32Array {
  return cpu.linear(cpu.fromHost(x, [M, K]), cpu.fromHost(w, [N, K]), bias ? cpu.fromHost(bias, [N]) : null).dataSync();
}

/** one blocked product recorded directly: variant base + format, `splits` K ranges (partials + reduce when > 1) */
async function runBlocked(g: WebGpuBackend, base: string, fmt: 'f' | 'b' | 'x', splits: number, x: Float32Array, w: Float32Array, bias: Float32Array, M: number, K: number, N: number): Promise<Float32Array> {
  const c = parseBlocked(base + fmt);
  const xt = g.fromHost(x, [M, K]), wt = g.fromHost(w, [N, K], { matrix: true }), bt = g.fromHost(bias, [N]), y = g.zeros([M, N]);
  const st = (t: { storage: unknown }) => t.storage as Store;
  assert.equal(st(wt).fmt === 'bf16', fmt === 'b', `weights stored as ${st(wt).fmt} for format ${fmt}`);
  const kc = Math.ceil(Math.ceil(K / splits) / c.bk) * c.bk, S = Math.ceil(K / kc);
  const grid: [number, number, number] = [Math.ceil(N / c.bn), Math.ceil(M / c.bm), S];
  if (S === 1) {
    g.rt.record({ spec: MATMUL_BLOCKED, variant: base + fmt, roles: [st(xt), st(wt), st(bt), st(y), g.rt.dummy], params: [M, K, N, 0, N, 1, K, K, 0], grid });
  } else {
    const part = g.zeros([S * M * N]);
    g.rt.record({ spec: MATMUL_BLOCKED, variant: base + fmt + 's', roles: [st(xt), st(wt), g.rt.dummy, st(part), g.rt.dummy], params: [M, K, N, 0, N, 0, kc, K, 0], grid });
    g.rt.record({ spec: SPLITK_REDUCE, variant: '', roles: [st(part), st(bt), st(y)], params: [M, N, 0, N, 1, S], grid: g.rt.grid(Math.ceil((M * N) / 256)) });
    part.dispose();
  }
  const out = await y.data();
  for (const t of [xt, wt, bt, y]) t.dispose();
  return out;
}

function withGpu(name: string, fn: (g: WebGpuBackend, b: WebGpuBackend) => Promise<void>): void {
  it(name, async (t: TestContext) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    if (typeof gpuBf16 === 'string') return t.skip(gpuBf16);
    await fn(gpu, gpuBf16);
  });
}

describe('webgpu blocked GEMM: every configuration on odd shapes', () => {
  const bases = [...new Set(Object.values(BLOCKED_CONFIGS))];
  for (const base of bases) {
    withGpu(`${base}: f32 vectors, bf16 weights with split-K (and scalars, split), bias, against the CPU`, async (g, gb) => {
      const c = parseBlocked(base + 'f');
      // rows and columns past one tile and not a multiple of it; K not a multiple of BK (a ragged last slice)
      const M = c.bm + 3, N = c.bn + 5;
      // each variant costs SwiftShader seconds to compile: f32 vectors unsplit and bf16 split for every configuration,
      // scalars split and bf16 unsplit for the two that differ most (the 8×8 prefill and the 64-thread skinny one)
      const cases: ['f' | 'x' | 'b', number, number][] = [['f', 4 * c.bk + 12, 1], ['b', 5 * c.bk + 8, 3]];
      if (base === BLOCKED_CONFIGS.p128 || base === BLOCKED_CONFIGS.s16) cases.push(['x', 2 * c.bk + 7, 3], ['b', 3 * c.bk + 8, 1]);
      for (const [fmt, K, splits] of cases) {
        const x = rnd(M * K), w = rnd(N * K), b = rnd(N);
        const want = reference(x, fmt === 'b' ? roundBf16(w) : w, b, M, K, N);
        {
          const got = await runBlocked(fmt === 'b' ? gb : g, base, fmt, splits, x, w, b, M, K, N);
          const d = maxAbsDiff(got, want);
          assert.ok(d <= 1e-4, `${base}${fmt} split ${splits} ${M}×${K}×${N}: max |Δ| = ${d}`);
        }
      }
    });
  }

  it('variants: parsed, refused with the reason, and their WGSL declares typed weights and no shadowing locals', () => {
    assert.deepEqual(parseBlocked('128x128k8t8x8f'), { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8, fmt: 'f', split: false });
    assert.equal(parseBlocked('16x64k32t4x4bs').split, true);
    assert.throws(() => parseBlocked('128x128k8t8x8'), /bad variant/);
    assert.throws(() => parseBlocked('128x128k8t4x4f'), /1024 threads/);
    assert.throws(() => parseBlocked('64x64k4t4x4b'), /BK 4 \(a multiple of 8\)/);
    assert.throws(() => parseBlocked('64x64k16t6x4f'), /multiples of 4/);
    for (const v of ['128x128k8t8x8f', '16x64k32t4x4b', '64x64k16t4x4xs']) {
      const code = generateWgsl(MATMUL_BLOCKED, v, [0, 1, 2, 3, 2], 'rrrw');
      assert.match(code, v.includes('b') && !v.endsWith('xs') ? /array<vec4<u32>>/ : v.endsWith('f') ? /array<vec4<f32>>/ : /b1: array<f32>/);
      assert.doesNotMatch(code, /\b(let|var) b[0-9]+\b/, 'no local shadows a buffer');
      assert.match(code, /workgroupBarrier\(\);\s*for \(var t = 0u/);
    }
    for (const base of Object.values(BLOCKED_CONFIGS)) assert.ok(blockedWorkgroupBytes(parseBlocked(base + 'f')) <= 32768, `${base} fits 32 KiB of workgroup memory`);
  });

  it('the plan: 128×128 tiles where they fill the GPU, smaller ones below, skinny M by the rows, split-K for small grids', () => {
    const p = (M: number, N: number, K: number, cfg?: string, s?: number) => blockedPlan(M, N, K, 'f', 132, 32768, cfg, s);
    assert.deepEqual(p(2048, 3072, 768), { variant: '128x128k8t8x8f', bm: 128, bn: 128, kc: 768, splits: 1, opts: {} });
    assert.equal(p(2048, 768, 1536).variant, '128x64k16t8x4f');
    assert.equal(p(2048, 50280, 768).variant, '128x128k8t8x8f');
    const xproj = p(2048, 80, 1536);
    assert.ok(xproj.variant.startsWith('64x64k16t4x4f') && xproj.splits > 1, JSON.stringify(xproj));
    for (const [M, bm] of [[9, 16], [16, 16], [17, 32], [32, 32], [33, 64], [64, 64], [128, 64]]) assert.equal(p(M, 768, 1536).bm, bm, `M = ${M}`);
    // decode batch 64, out_proj 1536 → 768: 12 column tiles, split until ~132·512 threads (≤ K/128 parts)
    const out = p(64, 768, 1536);
    assert.equal(out.variant, '64x64k16t4x4fs');
    assert.equal(out.splits, 8);
    assert.equal(out.kc, 192);
    // no split of a short K; a forced configuration and split
    assert.equal(p(64, 768, 48).splits, 1);
    assert.deepEqual(p(64, 768, 1536, 'p128', 4), { variant: '128x128k8t8x8fs', bm: 128, bn: 128, kc: 384, splits: 4, opts: {} });
    assert.throws(() => blockedPlan(64, 768, 768, 'f', 132, 16384, 'p128x64'), /needs 25600 bytes of workgroup memory, the adapter allows 16384/);
    assert.throws(() => p(64, 768, 768, 'p64', 0), /splits must be a positive integer/);
  });
});

describe('webgpu blocked GEMM through backend.linear', () => {
  withGpu("gemm 'blocked' (prefill sizes) and gemmSmall 'blocked' (9–128 rows), f32 and bf16, split or not, equal the CPU", async (g, gb) => {
    for (const be of [g, gb]) {
      const saved = [be.gemm, be.gemmSmall, be.fuse] as const;
      be.fuse = false;
      try {
        for (const [gemm, small, M, K, N] of [['blocked', 'old', 200, 136, 131], ['blocked', 'old', 130, 1024, 20], ['tiled', 'blocked', 9, 520, 70], ['tiled', 'blocked', 33, 264, 200], ['old', 'blocked', 64, 1032, 67]] as const) {
          be.gemm = gemm;
          be.gemmSmall = small;
          const k = be.gemmKernel(M, N, be === gb, K);
          assert.equal(k.spec, MATMUL_BLOCKED, `${gemm}/${small} M=${M}: ${k.name}`);
          const x = rnd(M * K), w = rnd(N * K), b = rnd(N);
          const y = be.linear(be.fromHost(x, [M, K]), be.fromHost(w, [N, K], { matrix: true }), be.fromHost(b, [N]));
          const d = maxAbsDiff(await y.data(), reference(x, be === gb ? roundBf16(w) : w, b, M, K, N));
          assert.ok(d <= 1e-4, `${be.weights} ${k.name} ${M}×${K}×${N}: max |Δ| = ${d}`);
        }
        // gemmSmall leaves prefill sizes to `gemm`
        be.gemm = 'tiled';
        assert.match(be.gemmKernel(2048, 3072, false).name, /^tiled/);
        assert.match(be.gemmKernel(64, 3072, false).name, /^blocked 64x64k16t4x4/);
        be.gemmSmall = 'old';
        assert.match(be.gemmKernel(64, 3072, false).name, /^tiled/);
      } finally {
        [be.gemm, be.gemmSmall, be.fuse] = saved;
      }
    }
    assert.throws(() => {
      g.gemmSmall = 'new' as 'old';
    }, /gemmSmall must be one of old, blocked, got "new"/);
  });
});

describe('webgpu batched greedy decode with gemmSmall blocked (the default: matvec ≤ 8 rows, blocked GEMM above, fused split-K epilogue)', () => {
  for (const [name, bf16] of [['mamba-tiny', false], ['mamba2-tiny', true]] as const) {
    it(`${name} (${bf16 ? 'bf16' : 'f32'}): 9 rows decoded together = rows 0, 4, 8 alone (tokens, logits ≤ 1e-4), the blocked kernel and the fused epilogue run`, async (t: TestContext) => {
      const g = bf16 ? gpuBf16 : gpu;
      if (typeof g === 'string') return t.skip(g);
      const saved = [g.gemmSmall, g.fewRows, g.blockedSplits, g.batchDecode] as const;
      g.gemmSmall = 'blocked';
      g.fewRows = false;
      // split in 2 (the tiny widths would not be split): the reduces, residual adds and norms go through SPLITK_ROWS
      g.blockedSplits = 2;
      g.batchDecode = 'fused';
      const names = new Set<string>();
      const record = g.rt.record.bind(g.rt);
      g.rt.record = (d) => {
        names.add(d.spec.name);
        record(d);
      };
      try {
        const lm = (await loadModel(hfFixture(name), { backend: g })).lm;
        // the first, a middle and the last row against themselves alone (each ~5 s of SwiftShader CPU); the
        // prompts (1, 2 and 4 tokens: rows 0, 4, 8 one of each) and the rows alone stay on the matvec, so the blocked
        // kernel ran for the batch
        await batchedEqualsAlone(lm, name, 9, [0, 4, 8]);
        assert.ok(names.has('matmul_blocked') && names.has('splitk_rows'), `the batch ran ${[...names].join(', ')}`);
      } finally {
        g.rt.record = record;
        [g.gemmSmall, g.fewRows, g.blockedSplits, g.batchDecode] = saved;
      }
    });
  }
});

describe("webgpu batched greedy decode of 2–8 rows on the matvec (batchDecode 'fused', session 28)", () => {
  it("mamba2-tiny (f32): 2 rows decoded together = row 1 alone (tokens, logits ≤ 1e-4); the gated norm ran as its own dispatch and the matvec wrote rows from their lanes", async (t: TestContext) => {
    const g = gpu;
    if (typeof g === 'string') return t.skip(g);
    const saved = [g.gemmSmall, g.fewRows, g.gemmSmallMin, g.batchDecode] as const;
    [g.gemmSmall, g.fewRows, g.gemmSmallMin, g.batchDecode] = ['blocked', false, 9, 'fused'];
    const runs = new Set<string>();
    const record = g.rt.record.bind(g.rt);
    g.rt.record = (d) => {
      if (d.params[0] === 2) runs.add(`${d.spec.name}:${d.variant}`); // the batch's dispatches (M = 2 rows first)
      record(d);
    };
    try {
      const lm = (await loadModel(hfFixture('mamba2-tiny'), { backend: g })).lm;
      // one step recorded, two replayed on the device (SwiftShader: ~2 s a step); gemmSmallMin 2 (the blocked GEMM
      // at 2–8 rows) runs the kernels of the 9-row test above, and the products at 2 and 8 rows are in webgpu-batch-epilogue
      await batchedEqualsAlone(lm, 'mamba2-tiny', 2, [1], 1);
      const names = [...runs];
      assert.ok(names.includes('rms_norm_gated_rows:1') && names.some((n) => /^matvec_v:2f\d+(s\d+)?l$/.test(n)) && !names.some((n) => n.startsWith('matmul_blocked')), names.join(', '));
    } finally {
      g.rt.record = record;
      [g.gemmSmall, g.fewRows, g.gemmSmallMin, g.batchDecode] = saved;
    }
  });
});
