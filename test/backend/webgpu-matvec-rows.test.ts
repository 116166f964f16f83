/**
 * MATVEC_R (kernels/matvec_rows.ts, `decodeRows`): the batched-decode product at 2–16 rows — its variant choice, its
 * products against the CPU for f32, bf16 and q8 weights at awkward K / N (x̂ staged in one chunk and in several), its
 * epilogues (bias, residual, conv window) and norm prologues, its routing (it takes 2–16 rows from the matvec and the
 * blocked GEMM; off by default), and batched greedy decoding of a tiny model = its rows decoded alone.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/index.js';
import { packQ8, unpackQ8 } from '../../src/backend/wasm/q8.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { MATVEC_R, ROWS_MAX, rowsGroups, rowsParse, rowsVariant } from '../../src/backend/webgpu/kernels/matvec_rows.js';
import type { Store } from '../../src/backend/webgpu/runtime.js';
import { f2u } from '../../src/backend/webgpu/wgsl.js';
import { loadModel } from '../../src/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { hfFixture, maxAbsDiff, randomArray } from '../helpers.js';
import { batchedEqualsAlone } from './batched-decode.js';
import { kernelsOf, roundBf16, webgpuOrReason } from './webgpu-context.js';

const gpus: Record<string, WebGpuBackend | string> = {};
for (const weights of ['f32', 'bf16', 'q8'] as const) {
  const prev = Object.values(gpus)[0];
  gpus[weights] = typeof prev === 'string' ? prev : await webgpuOrReason({ kernels: 'tiled', weights, decodeRows: 16 });
}
after(() => {
  for (const g of Object.values(gpus)) if (typeof g !== 'string') g.destroy();
});

/** the values a q8 matrix holds (wasm's quantization, unpacked) */
function dequant(w: Float32Array): Float32Array {
  const qs = new Int8Array(w.length), sc = new Float32Array(w.length / 32);
  packQ8(w, qs, sc);
  return unpackQ8(qs, sc);
}

describe('webgpu MATVEC_R (decodeRows): batched decode products at 2–16 rows', () => {
  it('variant choice: P · MM ≤ 64, ≥ 128 workgroups where the rows allow, chunks of whole 32-blocks that fit', () => {
    for (const M of [2, 3, 8, 9, 16]) {
      for (const [K, N] of [[768, 3352], [1536, 768], [768, 50280], [2560, 10240], [72, 45]]) {
        for (const wg of [32768, 49152]) {
          const v = rowsVariant(M, K, 'f', N, 128, wg);
          const p = rowsParse(v);
          assert.ok(p.mm >= M && p.mm / 2 < Math.max(M, 2), `${v}: MM for ${M} rows`);
          assert.ok(p.p * p.mm <= 64, v);
          assert.ok(p.p === 1 || rowsGroups(v, N) >= 128, `${M}×${K}×${N}: ${v} leaves ${rowsGroups(v, N)} workgroups`);
          // (f32: P · (MM + 4) ≤ 96 caps P at 4 for 16 rows, 8 below)
          assert.ok(p.p === (p.mm === 16 ? 4 : 8) || Math.ceil(N / (8 * 2 * p.p)) < 128, `${v}: P could be larger`);
          assert.equal(p.kc % 32, 0);
          assert.ok(p.kc <= Math.ceil(K / 32) * 32 && 16 * Math.max((p.mm * p.kc) / 4, 256 * (p.mm / 4 + 1)) + 1344 <= wg + 16, `${v}: workgroup memory`);
        }
      }
    }
    // the LM head at 8 rows on an H100's 48 KiB: 8 rows a team in f32 (8 · (8 + 4) ≤ 96 registers), 4 in bf16 (an
    // unpacked unit 8) and q8 (16: 4 · 24 = 96); x̂ of K = 768 staged whole
    assert.equal(rowsVariant(8, 768, 'f', 50280, 128, 49152), 'fp8m8c768');
    assert.equal(rowsVariant(8, 768, 'b', 50280, 128, 49152), 'bp4m8c768');
    assert.equal(rowsVariant(8, 768, 'q', 50280, 128, 49152), 'qp4m8c768');
    // Mamba-2 130m's in_proj at 16 rows: 2 rows a team (210 workgroups), K = 768 in two even chunks (not 736 + 32)
    assert.equal(rowsVariant(16, 768, 'f', 3352, 128, 49152), 'fp2m16c384');
    assert.throws(() => rowsVariant(17, 768, 'f', 64, 128, 49152), /M must be 1–16/);
    assert.throws(() => rowsParse('fp8m16c768'), /bad variant/); // 128 accumulators
    assert.throws(() => rowsParse('xp1m2c64'), /bad variant/);
  });

  for (const [which, g] of Object.entries(gpus)) {
    // [K, N]: x̂ in one chunk, and K past the chunk of 9–16 rows (480 elements on SwiftShader's 32 KiB, 736 on an
    // H100's 48) and of 8 rows on SwiftShader (960)
    const shapes = which === 'q8' ? [[96, 45], [1024, 130]] : [[72, 45], [1000, 130]];
    const ROWS = [1, 2, 3, 5, 8, 9, 13, 16];
    it(`linear (${which}): M ∈ {${ROWS.join(', ')}} equal the CPU; 2–16 rows run matvec_rows, 1 row the matvec`, async (t: TestContext) => {
      if (typeof g === 'string') return t.skip(g);
      let seed = 31;
      for (const [i, M] of ROWS.entries()) {
        const [K, N] = shapes[i % 2];
        const x = randomArray(M * K, seed++), w = randomArray(N * K, seed++, 0.3), b = randomArray(N, seed++);
        const held = which === 'bf16' ? roundBf16(w) : which === 'q8' ? dequant(w) : w;
        const want = cpu.linear(cpu.fromHost(x.slice(), [M, K]), cpu.fromHost(held, [N, K]), cpu.fromHost(b.slice(), [N])).dataSync();
        const W = g.fromHost(w.slice(), [N, K], { matrix: true });
        const { result, names, variants }: { result: Float32Array; names: string[]; variants: string[] } = await kernelsOf(g, () => g.linear(g.fromHost(x.slice(), [M, K]), W, g.fromHost(b.slice(), [N])).data());
        const d = maxAbsDiff(result, want);
        assert.ok(d <= 1e-4, `${which} ${M}×${K}×${N} (${names.join(', ')} ${variants.join(', ')}): max |Δ| = ${d}`);
        assert.equal(names.includes('matvec_rows'), M >= 2, `${which} ${M}×${K}×${N}: ran ${names.join(', ')}`);
        assert.ok(!names.includes('matmul_blocked'), `${which} ${M}: ${names.join(', ')}`);
        if (M >= 2) assert.equal(g.productKernelName(M, N, K), 'matvec-rows');
        W.dispose();
      }
    });
  }

  it('epilogues and prologues (f32, recorded directly): bias, residual, conv window; no norm, RMSNorm, gated norm; 3 and 16 rows, K in one chunk and in two', async (t: TestContext) => {
    const g = gpus.f32;
    if (typeof g === 'string') return t.skip(g);
    let seed = 700;
    const st = (x: { storage: unknown }) => x.storage as Store;
    const [N, cs0, cw, Kc] = [40, 6, 20, 4];
    // (16 rows of 1088: in chunks on SwiftShader's 32 KiB and on an H100's 48; groups of 272: M · groups = 64, the most
    // scales the prologue keeps, as the decode fusion's foldsNorm allows)
    for (const [M, K, gs] of [[3, 136, 68], [16, 1088, 272]]) {
      const x = randomArray(M * K, seed++), z = randomArray(M * K, seed++), nw = randomArray(K, seed++), w = randomArray(N * K, seed++, 0.2), b = randomArray(N, seed++), res = randomArray(M * N, seed++), win = randomArray(M * cw * Kc, seed++);
      const W = g.fromHost(w.slice(), [N, K], { matrix: true }), X = g.fromHost(x.slice(), [M, K]), Z = g.fromHost(z.slice(), [M, K]), NW = g.fromHost(nw.slice(), [K]), Bt = g.fromHost(b.slice(), [N]), R = g.fromHost(res.slice(), [M, N]);
      const v = rowsVariant(M, K, 'f', N, 0, g.rt.maxWorkgroupStorage);
      if (M === 16) assert.ok(rowsParse(v).kc < K, `${v}: K = ${K} in chunks`);
      // the RMSNorm and the gated norm of one group (applied late: x read once), the grouped gated norm (the prologue)
      for (const [what, flags, g0] of [['plain', 0, K], ['norm', 2, K], ['gated norm, one group', 2 | 4, K], ['gated norm', 2 | 4, gs]] as const) {
        const xc = cpu.fromHost(x.slice(), [M, K]);
        const xin = what === 'plain' ? xc : what === 'norm' ? cpu.rmsNorm(xc, cpu.fromHost(nw.slice(), [K]), 1e-5) : cpu.rmsNormGated(xc, cpu.fromHost(z.slice(), [M, K]), cpu.fromHost(nw.slice(), [K]), 1e-5, g0);
        const yC = cpu.linear(xin, cpu.fromHost(w.slice(), [N, K]), cpu.fromHost(b.slice(), [N])).dataSync();
        const y: Tensor = g.zeros([M, N]), y2: Tensor = g.zeros([M, N]), cst: Tensor = g.fromHost(win.slice(), [M, cw, Kc]);
        const roles = [st(X), st(W), st(Bt), flags ? st(NW) : g.rt.dummy, flags & 4 ? st(Z) : g.rt.dummy, st(R), st(cst), st(y), st(y2)];
        g.rt.record({ spec: MATVEC_R, variant: v, roles, params: [M, K, N, 0, N, 1 | flags | 8 | 16, g0, f2u(1e-5), cs0, cw, Kc], grid: g.rt.grid(rowsGroups(v, N)) });
        const [yg, y2g, cg]: Float32Array[] = [await y.data(), await y2.data(), await cst.data()];
        const tag = `M=${M} K=${K} ${what} (${v})`;
        assert.ok(maxAbsDiff(yg, yC) <= 1e-4, `${tag}: y vs the CPU ${maxAbsDiff(yg, yC)}`);
        assert.ok(maxAbsDiff(y2g, yg.map((v, i) => v + res[i])) <= 1e-6, `${tag}: residual`);
        for (let m = 0; m < M; m++) {
          for (let c = 0; c < cw; c++) {
            const o = (m * cw + c) * Kc;
            assert.deepEqual([...cg.subarray(o, o + Kc)], [...win.subarray(o + 1, o + Kc), yg[m * N + cs0 + c]], `${tag}: row ${m} window ${c}`);
          }
        }
        for (const tn of [y, y2, cst]) tn.dispose();
      }
      for (const tn of [W, X, Z, NW, Bt, R]) tn.dispose();
    }
  });

  it('through the decode fusion: RMSNorm folded in, residual added, one dispatch at 12 rows; decodeRows 0 gives the blocked GEMM back, 1 and 17 are refused; with fewRows',  async (t: TestContext) => {
    const g = gpus.f32;
    if (typeof g === 'string') return t.skip(g);
    const [M, K, N] = [12, 72, 45];
    const x = randomArray(M * K, 5), w = randomArray(N * K, 6), nw = randomArray(K, 7), res = randomArray(M * N, 8);
    const want = cpu.add(cpu.linear(cpu.rmsNorm(cpu.fromHost(x.slice(), [M, K]), cpu.fromHost(nw.slice(), [K]), 1e-5), cpu.fromHost(w.slice(), [N, K]), null), cpu.fromHost(res.slice(), [M, N])).dataSync();
    const W = g.fromHost(w.slice(), [N, K], { matrix: true }), NW = g.fromHost(nw.slice(), [K]);
    const run = () => kernelsOf(g, () => g.add(g.linear(g.rmsNorm(g.fromHost(x.slice(), [M, K]), NW, 1e-5), W, null), g.fromHost(res.slice(), [M, N])).data());
    const on = await run();
    assert.deepEqual(on.names.filter((n) => n !== 'copy'), ['matvec_rows'], on.names.join(', '));
    assert.ok(maxAbsDiff(on.result, want) <= 1e-4);
    g.decodeRows = 0;
    try {
      const off = await run();
      assert.ok(off.names.includes('matmul_blocked') && !off.names.includes('matvec_rows'), off.names.join(', '));
      assert.ok(maxAbsDiff(off.result, want) <= 1e-4);
      assert.throws(() => (g.decodeRows = 1), /decodeRows must be 0 \(off\), 'auto' \(2–4 rows\) or an integer from 2 to 16/);
      assert.throws(() => (g.decodeRows = ROWS_MAX + 1), /decodeRows/);
    } finally {
      g.decodeRows = 16;
    }
    // with fewRows on too, MATVEC_R keeps the 2–16 rows, and a gated norm of more scales than its 64 (4 rows × 32
    // groups) is not folded into it (the few-rows kernel would have kept 512)
    g.fewRows = true;
    try {
      const z = randomArray(4 * K, 9);
      const wantG = cpu.linear(cpu.rmsNormGated(cpu.fromHost(x.slice(0, 4 * K), [4, K]), cpu.fromHost(z.slice(), [4, K]), cpu.fromHost(nw.slice(), [K]), 1e-5, 2), cpu.fromHost(w.slice(), [N, K]), null).dataSync();
      const r: { result: Float32Array; names: string[] } = await kernelsOf(g, () => g.linear(g.rmsNormGated(g.fromHost(x.slice(0, 4 * K), [4, K]), g.fromHost(z.slice(), [4, K]), NW, 1e-5, 2), W, null).data());
      assert.ok(r.names.includes('matvec_rows') && !r.names.includes('fewrows'), r.names.join(', '));
      assert.ok(maxAbsDiff(r.result, wantG) <= 1e-4, `gated norm of 32 groups: ${maxAbsDiff(r.result, wantG)}`);
    } finally {
      g.fewRows = false;
    }
    W.dispose();
    NW.dispose();
  });
});

describe('webgpu batched greedy decode through MATVEC_R (recorded steps)', () => {
  // 10 rows: past 8 (taken from the blocked GEMM), MM = 16 with 6 rows of zeros; Mamba-2's in_proj with the conv-window
  // epilogue, its gated norm its own dispatch, out_proj with the residual, the LM head; rows 0 and 9 alone
  it('mamba2-tiny (f32): 10 rows of different prompt lengths decoded together = rows 0 and 9 alone (tokens, logits ≤ 1e-4)', async (t: TestContext) => {
    const g = gpus.f32;
    if (typeof g === 'string') return t.skip(g);
    const lm = (await loadModel(hfFixture('mamba2-tiny'), { backend: g })).lm;
    const { names } = await kernelsOf(g, () => batchedEqualsAlone(lm, 'mamba2-tiny', 10, [0, 9]));
    assert.ok(names.includes('matvec_rows') && !names.includes('matmul_blocked'), [...new Set(names)].join(', '));
  });
  // Mamba-1 at 10 rows: in_proj with the conv window from column 0, x_proj, dt_proj held back into the scan step (the
  // decode fusion's, which 9–16 rows meet only on this path), out_proj with the residual
  it('mamba-tiny (f32): 10 rows decoded together = rows 0 and 9 alone (tokens, logits ≤ 1e-4)', async (t: TestContext) => {
    const g = gpus.f32;
    if (typeof g === 'string') return t.skip(g);
    const lm = (await loadModel(hfFixture('mamba-tiny'), { backend: g })).lm;
    const { names } = await kernelsOf(g, () => batchedEqualsAlone(lm, 'mamba-tiny', 10, [0, 9]));
    assert.ok(names.includes('matvec_rows') && !names.includes('matmul_blocked'), [...new Set(names)].join(', '));
  });
});
