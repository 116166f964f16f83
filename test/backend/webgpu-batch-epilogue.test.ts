/**
 * Decode batches on the blocked GEMM (gemmSmall 'blocked'): which kernel runs an M-row product (`productKernel`,
 * one rule for gemmSmall × fewRows), and the fused split-K epilogue (`batchDecode: 'fused'`, SPLITK_ROWS: the
 * reduce, the residual add and the next RMSNorm in one dispatch) against the CPU reference at M ∈ {1, 2, 8, 9, 33, 64},
 * f32 and bf16 weights, 'tiled' kernels (what GPUs run). Batched greedy decoding of tiny models through it (rows of
 * different prompt lengths against each row alone) is in webgpu-gemm-blocked.test.ts.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/index.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { maxAbsDiff, randomArray } from '../helpers.js';
import { kernelsOf, roundBf16, webgpuOrReason } from './webgpu-context.js';
import { MATVEC_V, matvecParse, matvecVariant } from '../../src/backend/webgpu/kernels/matvec.js';
import type { Store } from '../../src/backend/webgpu/runtime.js';
import { f2u } from '../../src/backend/webgpu/wgsl.js';

const gpus: Record<string, WebGpuBackend | string> = {};
for (const weights of ['f32', 'bf16'] as const) gpus[weights] = await webgpuOrReason({ kernels: 'tiled', weights });
after(() => {
  for (const g of Object.values(gpus)) if (typeof g !== 'string') g.destroy();
});

/** run `fn` with these backend settings, restored after */
async function withSettings<T>(g: WebGpuBackend, set: Partial<Pick<WebGpuBackend, 'gemmSmall' | 'fewRows' | 'batchDecode' | 'gemmSmallMin' | 'blockedSplits'>>, fn: () => Promise<T>): Promise<T> {
  const saved = { gemmSmall: g.gemmSmall, fewRows: g.fewRows, batchDecode: g.batchDecode, gemmSmallMin: g.gemmSmallMin, blockedSplits: g.blockedSplits };
  Object.assign(g, set);
  try {
    return await fn();
  } finally {
    Object.assign(g, saved);
  }
}

describe('webgpu decode-batch products: which kernel runs M rows', () => {
  it('defaults: 9–128 rows on the blocked GEMM (skinny-M tiles), fewer on the matvec, more on the prefill GEMM', async (t: TestContext) => {
    const g = gpus.f32;
    if (typeof g === 'string') return t.skip(g);
    assert.equal(g.gemmSmall, 'blocked');
    assert.equal(g.fewRows, false);
    assert.equal(g.batchDecode, 'fused');
    const kinds = (rows: number[]) => rows.map((M) => g.productKernel(M));
    assert.deepEqual(kinds([1, 2, 8, 9, 33, 64, 128, 129, 2048]), ['decode', 'decode', 'decode', 'blocked', 'blocked', 'blocked', 'blocked', 'gemm', 'gemm']);
    assert.equal(g.productKernelName(1, 768, 1536), 'matvec');
    assert.equal(g.productKernelName(8, 768, 1536), 'matvec');
    assert.match(g.productKernelName(9, 768, 1536), /^blocked 16x64k32t4x4 split \d+$/);
    assert.match(g.productKernelName(33, 3072, 768), /^blocked 64x64k16t4x4 split \d+$/);
    assert.match(g.productKernelName(64, 50280, 768), /^blocked 64x64k16t4x4$/); // lm_head: enough tiles, no split
    assert.doesNotMatch(g.productKernelName(2048, 3072, 768), /^blocked/);
  });

  it('fewRows takes 2–8 rows (and 9–64 only with gemmSmall old); gemmSmall old keeps the former choice', async (t: TestContext) => {
    const g = gpus.f32;
    if (typeof g === 'string') return t.skip(g);
    await withSettings(g, { fewRows: true }, async () => {
      assert.deepEqual([1, 2, 8, 9, 64, 65].map((M) => g.productKernel(M)), ['decode', 'decode', 'decode', 'blocked', 'blocked', 'blocked']);
      assert.deepEqual([1, 2, 8, 9].map((M) => g.productKernelName(M, 768, 1536)), ['matvec', 'few-rows', 'few-rows', 'blocked 16x64k32t4x4 split 8']);
    });
    await withSettings(g, { fewRows: true, gemmSmall: 'old' }, async () => {
      assert.deepEqual([8, 9, 64, 65].map((M) => g.productKernel(M)), ['decode', 'decode', 'decode', 'gemm']);
      assert.equal(g.productKernelName(33, 768, 1536), 'few-rows');
    });
    await withSettings(g, { gemmSmall: 'old' }, async () => {
      assert.deepEqual([8, 9, 128].map((M) => g.productKernel(M)), ['decode', 'gemm', 'gemm']);
      assert.doesNotMatch(g.productKernelName(64, 768, 1536), /blocked/);
    });
    // the knob (option gemmSmallMin): the blocked GEMM from 1 row, or every batch of 2+ rows
    await withSettings(g, { gemmSmallMin: 1 }, async () => assert.equal(g.productKernel(1), 'blocked'));
    await withSettings(g, { gemmSmallMin: 2 }, async () => {
      assert.deepEqual([1, 2, 8, 9].map((M) => g.productKernel(M)), ['decode', 'blocked', 'blocked', 'blocked']);
      assert.match(g.productKernelName(8, 3352, 768), /^blocked 16x64k32t4x4/);
    });
    for (const bad of [0, 2.5, 130, NaN]) {
      assert.throws(() => {
        g.gemmSmallMin = bad;
      }, new RegExp(`gemmSmallMin must be an integer from 1 to 129 \\(the fewest rows the blocked GEMM takes\\), got ${bad}`));
    }
    assert.equal(g.gemmSmallMin, 9);
  });
});

const ROWS = [1, 2, 8, 9, 33, 64];

describe('webgpu fused split-K epilogue (SPLITK_ROWS): reduce + residual add + RMSNorm in one dispatch', () => {
  for (const [which, g] of Object.entries(gpus)) {
    it(`${which} weights: M ∈ {${ROWS.join(', ')}} equal the CPU (sum, residual, norm), against the unfused epilogue too`, async (t: TestContext) => {
      if (typeof g === 'string') return t.skip(g);
      let seed = 7;
      // K a multiple of 8 (bf16 packs), N not a multiple of the tile or of 256 (ragged rows in the workgroup)
      const [K, N] = [272, 300];
      for (const M of ROWS) {
        const x = randomArray(M * K, seed++), w = randomArray(N * K, seed++, 0.1), b = randomArray(N, seed++), res = randomArray(M * N, seed++), nw = randomArray(N, seed++);
        const wr = which === 'bf16' ? roundBf16(w) : w;
        const yC = cpu.linear(cpu.fromHost(x.slice(), [M, K]), cpu.fromHost(wr.slice(), [N, K]), cpu.fromHost(b.slice(), [N]));
        const sumC = cpu.add(cpu.fromHost(res.slice(), [M, N]), yC);
        const want = { y: yC.dataSync(), sum: sumC.dataSync(), h: cpu.rmsNorm(sumC, cpu.fromHost(nw.slice(), [N]), 1e-5).dataSync() };
        const W = g.fromHost(w.slice(), [N, K], { matrix: true }), B = g.fromHost(b.slice(), [N]), NW = g.fromHost(nw.slice(), [N]);
        const got: Record<string, { y: Float32Array; sum: Float32Array; h: Float32Array; names: string[] }> = {};
        for (const epi of ['fused', 'old'] as const) {
          // from 1 row on the blocked GEMM, split in 4 (so small K still has partials to reduce)
          got[epi] = await withSettings(g, { gemmSmallMin: 1, blockedSplits: 4, batchDecode: epi }, async () => {
            const { result, names } = await kernelsOf(g, async () => {
              const y = g.linear(g.fromHost(x.slice(), [M, K]), W, B);
              const sum = g.add(g.fromHost(res.slice(), [M, N]), y);
              const h = g.rmsNorm(sum, NW, 1e-5);
              return { y: await y.data(), sum: await sum.data(), h: await h.data() };
            });
            return { ...result, names: names.filter((n) => n !== 'copy') };
          });
        }
        for (const epi of ['fused', 'old'] as const) {
          for (const k of ['y', 'sum', 'h'] as const) {
            const d = maxAbsDiff(got[epi][k], want[k]);
            assert.ok(d <= 1e-4, `${which} ${epi} M=${M} ${k}: max |Δ| = ${d}`);
          }
        }
        assert.deepEqual(got.fused.names, ['matmul_blocked', 'splitk_rows'], `${which} M=${M}: fused (ran ${got.fused.names.join(', ')})`);
        assert.deepEqual(got.old.names.slice(0, 3), ['matmul_blocked', 'splitk_reduce', 'binary'], `${which} M=${M}: old (ran ${got.old.names.join(', ')})`);
        assert.match(got.old.names[3], /^rms_norm/);
        // the sum itself is the same additions in the same order: bit-equal to the unfused reduce
        assert.equal(maxAbsDiff(got.fused.y, got.old.y), 0, `${which} M=${M}: y fused vs old`);
        assert.equal(maxAbsDiff(got.fused.sum, got.old.sum), 0, `${which} M=${M}: residual sum fused vs old`);
        for (const tns of [W, B, NW]) tns.dispose();
      }
    });
  }

  it('a reduce alone stays the plain reduce; a norm straight after it (no add) joins it; a disposed operand waits for it', async (t: TestContext) => {
    const g = gpus.f32;
    if (typeof g === 'string') return t.skip(g);
    const [M, K, N] = [33, 264, 70];
    const x = randomArray(M * K, 1), w = randomArray(N * K, 2, 0.1), nw = randomArray(N, 3), res = randomArray(M * N, 4);
    const yC = cpu.linear(cpu.fromHost(x.slice(), [M, K]), cpu.fromHost(w.slice(), [N, K]), null);
    const W = g.fromHost(w.slice(), [N, K], { matrix: true }), NW = g.fromHost(nw.slice(), [N]);
    await withSettings(g, { blockedSplits: 2 }, async () => {
      const plain = await kernelsOf(g, () => g.linear(g.fromHost(x.slice(), [M, K]), W, null).data());
      assert.deepEqual(plain.names, ['matmul_blocked', 'splitk_reduce']);
      assert.ok(maxAbsDiff(plain.result, yC.dataSync()) <= 1e-4);
      const normed = await kernelsOf(g, () => g.rmsNorm(g.linear(g.fromHost(x.slice(), [M, K]), W, null), NW, 1e-5).data());
      assert.deepEqual(normed.names, ['matmul_blocked', 'splitk_rows']);
      const d = maxAbsDiff(normed.result, cpu.rmsNorm(yC, cpu.fromHost(nw.slice(), [N]), 1e-5).dataSync());
      assert.ok(d <= 1e-4, `norm of the product: max |Δ| = ${d}`);
      // the product's output and the residual disposed before the norm joins (as a layer's scope ends): the
      // reduce stays pending and still reads and writes the right blocks (new tensors do not take them meanwhile)
      const r = g.fromHost(res.slice(), [M, N]);
      const y = g.linear(g.fromHost(x.slice(), [M, K]), W, null);
      const sum = g.add(r, y);
      y.dispose();
      r.dispose();
      const other = g.fromHost(new Float32Array(M * N).fill(9), [M, N]);
      const h = g.rmsNorm(sum, NW, 1e-5);
      const sumC = cpu.add(cpu.fromHost(res.slice(), [M, N]), yC);
      assert.ok(maxAbsDiff(await sum.data(), sumC.dataSync()) <= 1e-4);
      assert.ok(maxAbsDiff(await h.data(), cpu.rmsNorm(sumC, cpu.fromHost(nw.slice(), [N]), 1e-5).dataSync()) <= 1e-4);
      assert.ok((await other.data()).every((v) => v === 9));
    });
  });
});
describe('webgpu blocked GEMM reads a split piece in place (row stride; batchDecode fused)', () => {
  for (const [which, g] of Object.entries(gpus)) {
    it(`${which} weights: M ∈ {9, 64}, the middle piece of a [M, 8 + K + 5] tensor into a [N, K] product, no copy; 'old' copies it first`, async (t: TestContext) => {
      if (typeof g === 'string') return t.skip(g);
      let seed = 900;
      for (const M of [9, 64]) {
        const [K, N] = [48, 70];
        const W0 = 8 + K + 5;
        const full = randomArray(M * W0, seed++), w = randomArray(N * K, seed++), b = randomArray(N, seed++);
        const piece = new Float32Array(M * K);
        for (let r = 0; r < M; r++) piece.set(full.subarray(r * W0 + 8, r * W0 + 8 + K), r * K);
        const want = cpu.linear(cpu.fromHost(piece, [M, K]), cpu.fromHost(which === 'bf16' ? roundBf16(w) : w.slice(), [N, K]), cpu.fromHost(b.slice(), [N])).dataSync();
        const Wt = g.fromHost(w.slice(), [N, K], { matrix: true }), Bt = g.fromHost(b.slice(), [N]);
        for (const mode of ['fused', 'old'] as const) {
          // the tensor computed on the device (as x_proj's output is in Mamba-1), so that the product binds the same
          // buffers in both modes (the piece in place; its copy) and SwiftShader compiles its pipeline once, not twice
          const src = g.add(g.fromHost(full.slice(), [M, W0]), g.zeros([M, W0]));
          const r: { result: Float32Array; names: string[] } = await withSettings(g, { batchDecode: mode }, () =>
            kernelsOf(g, async () => {
              const [, mid] = g.split(src, [8, K, 5]);
              return g.linear(mid, Wt, Bt).data();
            }),
          );
          src.dispose();
          const d = maxAbsDiff(r.result, want);
          assert.ok(d <= 1e-4, `${which} ${mode} M=${M}: max |Δ| = ${d}`);
          assert.deepEqual(r.names, mode === 'fused' ? ['matmul_blocked'] : ['copy_rows', 'matmul_blocked'], `${which} ${mode} M=${M}: ran ${r.names.join(', ')}`);
        }
        Wt.dispose();
        Bt.dispose();
      }
    });
  }
});

describe("webgpu batched decode steps with the state in registers (batchDecode 'fused') = the kernels of before = the CPU", () => {
  const variantsOf = async <T>(g: WebGpuBackend, fn: () => Promise<T>): Promise<{ result: T; runs: string[] }> => {
    const runs: string[] = [];
    const record = g.rt.record.bind(g.rt);
    g.rt.record = (d) => {
      runs.push(`${d.spec.name}:${d.variant}`);
      record(d);
    };
    try {
      return { result: await fn(), runs };
    } finally {
      g.rt.record = record;
    }
  };

  it('Mamba-1 scan step (scan_step r{N}): B ∈ {1, 9, 64}, L = 1 and 3, N = 16 and 5; states and outputs bit-equal to before', async (t: TestContext) => {
    const g = gpus.f32;
    if (typeof g === 'string') return t.skip(g);
    let seed = 300;
    for (const [Bn, L, Dm, N] of [[1, 1, 40, 16], [9, 1, 40, 16], [64, 1, 24, 16], [9, 3, 20, 5]]) {
      const u = randomArray(Bn * L * Dm, seed++), dl = randomArray(Bn * L * Dm, seed++), A = randomArray(Dm * N, seed++).map((v) => -Math.exp(v));
      const Bm = randomArray(Bn * L * N, seed++), Cm = randomArray(Bn * L * N, seed++), D = randomArray(Dm, seed++), z = randomArray(Bn * L * Dm, seed++), bias = randomArray(Dm, seed++), h0 = randomArray(Bn * Dm * N, seed++);
      const args = <T>(be: { fromHost(d: Float32Array, s: number[]): T }, state: T) => ({
        u: be.fromHost(u.slice(), [Bn, L, Dm]), delta: be.fromHost(dl.slice(), [Bn, L, Dm]), A: be.fromHost(A.slice(), [Dm, N]),
        B: be.fromHost(Bm.slice(), [Bn, L, N]), C: be.fromHost(Cm.slice(), [Bn, L, N]), D: be.fromHost(D.slice(), [Dm]), z: be.fromHost(z.slice(), [Bn, L, Dm]),
        deltaBias: be.fromHost(bias.slice(), [Dm]), deltaSoftplus: true, state, algorithm: 'sequential' as const,
      });
      const sc = cpu.fromHost(h0.slice(), [Bn, Dm, N]);
      const yc = cpu.selectiveScan(args(cpu, sc) as never).dataSync();
      const out: Record<string, { y: Float32Array; h: Float32Array; runs: string[] }> = {};
      for (const mode of ['fused', 'old'] as const) {
        out[mode] = await withSettings(g, { batchDecode: mode }, async () => {
          const sg = g.fromHost(h0.slice(), [Bn, Dm, N]);
          const { result, runs } = await variantsOf(g, async () => ({ y: await g.selectiveScan(args(g, sg) as never).data(), h: await sg.data() }));
          return { ...result, runs };
        });
      }
      assert.ok(out.fused.runs.includes(`scan_step:r${N}`), out.fused.runs.join(', '));
      assert.ok(out.old.runs.includes('scan_step:'), out.old.runs.join(', '));
      const what = `B=${Bn} L=${L} N=${N}`;
      assert.ok(maxAbsDiff(out.fused.y, yc) <= 1e-4, `${what}: y vs the CPU ${maxAbsDiff(out.fused.y, yc)}`);
      assert.ok(maxAbsDiff(out.fused.h, sc.dataSync()) <= 1e-4, `${what}: state vs the CPU`);
      assert.equal(maxAbsDiff(out.fused.y, out.old.y), 0, `${what}: y vs before`);
      assert.equal(maxAbsDiff(out.fused.h, out.old.h), 0, `${what}: state vs before`);
    }
  });

  it('Mamba-2 SSD step (ssd_step_sg r{N}s{subgroup}): B ∈ {1, 9, 64}, L = 1 and 2, N = 16 and 20; bit-equal to before', async (t: TestContext) => {
    const g = gpus.f32;
    if (typeof g === 'string') return t.skip(g);
    if (!g.rt.subgroupFixed || !g.rt.subgroupMax || g.rt.subgroupMax > 64) return t.skip('no fixed subgroup size on this adapter');
    let seed = 500;
    for (const [Bn, L, nh, hd, G, N] of [[1, 1, 4, 8, 1, 16], [9, 1, 4, 8, 2, 16], [64, 1, 2, 4, 1, 16], [9, 2, 4, 4, 2, 20]]) {
      const x = randomArray(Bn * L * nh * hd, seed++), dt = randomArray(Bn * L * nh, seed++), A = randomArray(nh, seed++).map((v) => -Math.exp(v));
      const Bm = randomArray(Bn * L * G * N, seed++), Cm = randomArray(Bn * L * G * N, seed++), D = randomArray(nh, seed++), dtb = randomArray(nh, seed++), h0 = randomArray(Bn * nh * hd * N, seed++);
      const args = <T>(be: { fromHost(d: Float32Array, s: number[]): T }, state: T) => ({
        x: be.fromHost(x.slice(), [Bn, L, nh, hd]), dt: be.fromHost(dt.slice(), [Bn, L, nh]), A: be.fromHost(A.slice(), [nh]),
        B: be.fromHost(Bm.slice(), [Bn, L, G, N]), C: be.fromHost(Cm.slice(), [Bn, L, G, N]), D: be.fromHost(D.slice(), [nh]), dtBias: be.fromHost(dtb.slice(), [nh]),
        dtLimit: [0, Infinity] as [number, number], state, algorithm: 'recurrent' as const, chunkSize: 64,
      });
      const sc = cpu.fromHost(h0.slice(), [Bn, nh, hd, N]);
      const yc = cpu.ssd(args(cpu, sc) as never).dataSync();
      const out: Record<string, { y: Float32Array; h: Float32Array; runs: string[] }> = {};
      for (const mode of ['fused', 'old'] as const) {
        out[mode] = await withSettings(g, { batchDecode: mode }, async () => {
          const sg = g.fromHost(h0.slice(), [Bn, nh, hd, N]);
          const { result, runs } = await variantsOf(g, async () => ({ y: await g.ssd(args(g, sg) as never).data(), h: await sg.data() }));
          return { ...result, runs };
        });
      }
      assert.ok(out.fused.runs.includes(`ssd_step_sg:r${N}s${g.rt.subgroupFixed}`), out.fused.runs.join(', '));
      assert.ok(out.old.runs.includes('ssd_step_sg:'), out.old.runs.join(', '));
      const what = `B=${Bn} L=${L} G=${G} N=${N}`;
      assert.ok(maxAbsDiff(out.fused.y, yc) <= 1e-4, `${what}: y vs the CPU ${maxAbsDiff(out.fused.y, yc)}`);
      assert.ok(maxAbsDiff(out.fused.h, sc.dataSync()) <= 1e-4, `${what}: state vs the CPU`);
      assert.equal(maxAbsDiff(out.fused.y, out.old.y), 0, `${what}: y vs before`);
      assert.equal(maxAbsDiff(out.fused.h, out.old.h), 0, `${what}: state vs before`);
    }
  });
});

describe("webgpu decode rows on the matvec (batchDecode 'fused', session 28): the gated norm not folded at 2–8 rows, rows written from their own lanes", () => {
  it("rmsNormGated of M ∈ {1, 2, 8} rows: 'fused' runs rms_norm_gated_rows at once for 2–8 rows (1 row stays pending for the matvec), 'fused-v1' leaves them pending; = the CPU", async (t: TestContext) => {
    const g = gpus.f32;
    if (typeof g === 'string') return t.skip(g);
    let seed = 1100;
    // the whole width and two groups; z a piece of a wider tensor (read in place)
    for (const [M, W, gs] of [[1, 96, 96], [2, 96, 96], [8, 96, 48], [8, 272, 272]]) {
      const xd = randomArray(M * W, seed++), zw = randomArray(M * (W + 5), seed++), wd = randomArray(W, seed++);
      const pieces = (be: typeof cpu | WebGpuBackend) => [be.fromHost(xd.slice(), [M, W]), be.split(be.fromHost(zw.slice(), [M, W + 5]), [W, 5])[0], be.fromHost(wd.slice(), [W])] as const;
      const want = cpu.rmsNormGated(...pieces(cpu), 1e-5, gs).dataSync();
      for (const mode of ['fused', 'fused-v1'] as const) {
        await withSettings(g, { batchDecode: mode }, async () => {
          const [x, z, w] = pieces(g);
          const { result: y, names } = await kernelsOf(g, async () => g.rmsNormGated(x, z, w, 1e-5, gs));
          const own = mode === 'fused' && M > 1;
          // (a pending norm takes z as a store of its own: the piece copied out, copy_rows)
          assert.deepEqual(names.filter((n) => !n.startsWith('copy')), own ? ['rms_norm_gated_rows'] : [], `${mode} M=${M} W=${W}: recorded ${names.join(', ')} before anything read it`);
          const d = maxAbsDiff(await y.data(), want);
          assert.ok(d <= 1e-5, `${mode} M=${M} W=${W} gs=${gs}: max |Δ| = ${d}`);
        });
      }
    }
  });

  it("MATVEC_V of 2, 5 and 8 rows with bias, residual and conv-window epilogues: variant 'l' (a lane per row, the norm prologue's loads four at a time) = lane 0's loop (bit-equal without a norm) = the CPU", async (t: TestContext) => {
    const g = gpus.f32;
    if (typeof g === 'string') return t.skip(g);
    let seed = 1200;
    const [K, N, cs0, cw, Kc] = [136, 40, 6, 20, 4];
    const st = (t: { storage: unknown }) => t.storage as Store;
    for (const M of [2, 5, 8]) {
      const x = randomArray(M * K, seed++), z = randomArray(M * K, seed++), nw = randomArray(K, seed++), w = randomArray(N * K, seed++, 0.2), b = randomArray(N, seed++), res = randomArray(M * N, seed++), win = randomArray(M * cw * Kc, seed++);
      const W = g.fromHost(w.slice(), [N, K], { matrix: true }), X = g.fromHost(x.slice(), [M, K]), Z = g.fromHost(z.slice(), [M, K]), NW = g.fromHost(nw.slice(), [K]), Bt = g.fromHost(b.slice(), [N]), R = g.fromHost(res.slice(), [M, N]);
      // no norm; the RMSNorm (in_proj, lm_head); the gated norm in groups of 68 (out_proj of a grouped norm)
      for (const [what, flags, gs] of [['plain', 0, K], ['norm', 2, K], ['gated norm', 2 | 4, 68]] as const) {
        const xc = cpu.fromHost(x.slice(), [M, K]);
        const xin = what === 'plain' ? xc : what === 'norm' ? cpu.rmsNorm(xc, cpu.fromHost(nw.slice(), [K]), 1e-5) : cpu.rmsNormGated(xc, cpu.fromHost(z.slice(), [M, K]), cpu.fromHost(nw.slice(), [K]), 1e-5, gs);
        const yC = cpu.linear(xin, cpu.fromHost(w.slice(), [N, K]), cpu.fromHost(b.slice(), [N])).dataSync();
        const out: Record<string, Float32Array[]> = {};
        for (const lanes of [false, true]) {
          const v = matvecVariant(M, K, 'f', N, 256, g.rt.maxWorkgroupStorage, lanes);
          assert.equal(v.endsWith('l'), lanes, v);
          assert.equal(matvecParse(v).rowLanes, lanes);
          const y = g.zeros([M, N]), y2 = g.zeros([M, N]), cst = g.fromHost(win.slice(), [M, cw, Kc]);
          const roles = [st(X), st(W), st(Bt), flags ? st(NW) : g.rt.dummy, flags & 4 ? st(Z) : g.rt.dummy, st(R), st(cst), st(y), st(y2)];
          g.rt.record({ spec: MATVEC_V, variant: v, roles, params: [M, K, N, 0, N, 1 | flags | 8 | 16, gs, f2u(1e-5), cs0, cw, Kc], grid: g.rt.grid(Math.ceil(N / matvecParse(v).rpw)) });
          out[v] = [await y.data(), await y2.data(), await cst.data()];
          for (const tn of [y, y2, cst]) tn.dispose();
        }
        const [a, l] = Object.values(out);
        const tag = `M=${M} ${what} (${Object.keys(out).join(' vs ')})`;
        for (let i = 0; i < 3; i++) {
          const d = maxAbsDiff(a[i], l[i]);
          if (what === 'plain') assert.equal(d, 0, `${tag}: output ${i}`);
          else assert.ok(d <= 1e-5, `${tag}: output ${i} differs by ${d}`);
        }
        assert.ok(maxAbsDiff(l[0], yC) <= 1e-4, `${tag}: y vs the CPU ${maxAbsDiff(l[0], yC)}`);
        // the conv window: each row's columns cs0…cs0+cw shifted by one slot, the new value last
        for (let m = 0; m < M; m++) {
          for (let c = 0; c < cw; c++) {
            const o = (m * cw + c) * Kc;
            assert.deepEqual([...l[2].subarray(o, o + Kc)], [...win.subarray(o + 1, o + Kc), l[0][m * N + cs0 + c]], `${tag}: row ${m} window ${c}`);
          }
        }
        assert.ok(maxAbsDiff(l[1], l[0].map((v, i) => v + res[i])) <= 1e-6, `${tag}: residual`);
      }
      for (const tn of [W, X, Z, NW, Bt, R]) tn.dispose();
    }
  });
});

// batched greedy decoding of the tiny models through the blocked GEMM and this epilogue: webgpu-gemm-blocked.test.ts
