/**
 * The few-rows decode matrix kernel (kernels/fewrows.ts: batched decode, 2–64 rows, each weight row read once)
 * against the CPU reference — f32 and bf16 weights, 'tiled' and 'simple' kernels, odd widths, the fused norm
 * prologues and residual epilogue — and batched greedy decoding of tiny models (rows of different prompt
 * lengths) against each row decoded alone.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/index.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { fewRowsParse, fewRowsVariant } from '../../src/backend/webgpu/kernels/fewrows.js';
import { loadModel } from '../../src/index.js';
import { hfFixture, maxAbsDiff, randomArray } from '../helpers.js';
import { kernelsOf, roundBf16, webgpuOrReason } from './webgpu-context.js';
import { batchedEqualsAlone } from './batched-decode.js';

const gpus: Record<string, WebGpuBackend | string> = {};
for (const kernels of ['tiled', 'simple'] as const) {
  for (const weights of ['f32', 'bf16'] as const) {
    const prev = Object.values(gpus)[0];
    // the 'simple' backends with fusion on: their decode linears go through the same kernel choice
    gpus[`${kernels} ${weights}`] = typeof prev === 'string' ? prev : await webgpuOrReason({ kernels, weights, fuse: true, fewRows: true });
  }
}
after(() => {
  for (const g of Object.values(gpus)) if (typeof g !== 'string') g.destroy();
});


const ROWS = [1, 2, 7, 8, 9, 33, 64];

describe('webgpu few-rows decode kernel', () => {
  it('variant choice: ≥ 256 workgroups for 768×3072 and 1536×768 on a GPU, weights in registers, staged blocks', () => {
    for (const M of [8, 32, 64]) {
      for (const [K, N] of [[768, 3072], [1536, 768], [768, 50280]]) {
        for (const fmt of ['f', 'b'] as const) {
          const v = fewRowsParse(fewRowsVariant(M, K, fmt, N, 256, 49152));
          assert.ok(Math.ceil(N / v.rpw) >= 256, `${M}×${K}×${N} ${fmt}: ${Math.ceil(N / v.rpw)} workgroups`);
          assert.ok(v.kv > 0, `${M}×${K}×${N} ${fmt}: the row fits the registers`);
          assert.ok(v.xs4 > 0 && v.mb >= 4, `${M}×${K}×${N} ${fmt}: x̂ staged (${v.mb} rows a block)`);
        }
      }
    }
    // a row longer than the registers hold: streamed
    assert.equal(fewRowsParse(fewRowsVariant(9, 20000, 'f', 64, 256, 49152)).kv, 0);
    assert.throws(() => fewRowsParse('f8'), /fewrows: bad variant/);
  });

  for (const [which, g] of Object.entries(gpus)) {
    const bf16 = which.endsWith('bf16');
    it(`linear (${which}): M ∈ {${ROWS.join(', ')}} equals the CPU, odd widths, and 2–64 rows run the few-rows kernel`, async (t: TestContext) => {
      if (typeof g === 'string') return t.skip(g);
      let seed = 11;
      // [K, N]: vector rows (K % 8 = 0), odd K (scalar format; bf16 stays f32), one 'x' row too long for the registers
      const shapes = [[72, 45], [37, 29], [136, 130], [20000, 3]];
      // each (M, K, N) compiles a variant of its own (SwiftShader: ~1 s each): two shapes per row count, alternating,
      // instead of all four — vector rows and [136, 130] meet M = 1, 7, 9, 64, odd K and the long row M = 2, 8, 33
      // (the few-rows range 2–8 and past it, each kernel choice on each kind of row)
      for (const [i, M] of ROWS.entries()) {
        for (const [K, N] of [shapes[i % 4], shapes[(i + 2) % 4]]) {
          // the long rows' weights scaled down so that a sum of 20,000 products stays near 1 in size
          const x = randomArray(M * K, seed++), w = randomArray(N * K, seed++, K > 1000 ? 0.05 : 1), b = randomArray(N, seed++);
          const wg = g.fromHost(w.slice(), [N, K], { matrix: true });
          const packed = bf16 && K % 8 === 0;
          const want = cpu.linear(cpu.fromHost(x.slice(), [M, K]), cpu.fromHost(packed ? roundBf16(w) : w.slice(), [N, K]), cpu.fromHost(b.slice(), [N])).dataSync();
          const { result: got, names }: { result: Float32Array; names: string[] } = await kernelsOf(g, () => g.linear(g.fromHost(x.slice(), [M, K]), wg, g.fromHost(b.slice(), [N])).data());
          const d = maxAbsDiff(got, want);
          assert.ok(d <= 1e-4, `${which} ${M}×${K}×${N}: max |Δ| = ${d}`);
          // which kernel ran (backend.productKernel): one row the matvec; 9+ rows the blocked GEMM with 'tiled'
          // kernels (gemmSmall 'blocked', the default), few-rows with 'simple' ones; 2–8 rows few-rows unless the
          // plain f32 subgroup matvec is chosen (simple kernels, or rows that are not 16-byte vectors)
          const few: boolean = names.includes('fewrows');
          const blocked: boolean = names.includes('matmul_blocked');
          assert.equal(blocked, M > 8 && which.startsWith('tiled'), `${which} ${M}×${K}×${N}: ran ${names.join(', ')}`);
          if (M === 1 || blocked) assert.ok(!few, `${which} M=${M}: ${names}`);
          else if (M > 8 || (which.startsWith('tiled') && (K % 4 === 0 || !g.rt.subgroupMax))) assert.ok(few, `${which} ${M}×${K}×${N}: ran ${names.join(', ')}`);
        }
      }
    });

    it(`fused (${which}): RMSNorm prologue + residual epilogue and the grouped gated norm, 2–64 rows, equal the CPU in one dispatch`, async (t: TestContext) => {
      if (typeof g === 'string') return t.skip(g);
      let seed = 101;
      // two row counts per backend (each compiles its own variants): 'tiled' 2 (few-rows) and 33 (norm, blocked GEMM,
      // add); 'simple' 9 and 64 (few-rows past 8 rows, up to its limit)
      for (const M of which.startsWith('tiled') ? [2, 33] : [9, 64]) {
        const [K, N, gs] = [64, 40, 16];
        const x = randomArray(M * K, seed++), z = randomArray(M * K, seed++), nw = randomArray(K, seed++);
        const w = randomArray(N * K, seed++), res = randomArray(M * N, seed++);
        const wr = bf16 ? roundBf16(w) : w;
        const c = {
          plain: cpu.add(cpu.linear(cpu.rmsNorm(cpu.fromHost(x.slice(), [M, K]), cpu.fromHost(nw.slice(), [K]), 1e-5), cpu.fromHost(wr.slice(), [N, K]), null), cpu.fromHost(res.slice(), [M, N])).dataSync(),
          gated: cpu.linear(cpu.rmsNormGated(cpu.fromHost(x.slice(), [M, K]), cpu.fromHost(z.slice(), [M, K]), cpu.fromHost(nw.slice(), [K]), 1e-5, gs), cpu.fromHost(wr.slice(), [N, K]), null).dataSync(),
        };
        const W = g.fromHost(w.slice(), [N, K], { matrix: true });
        const plain: { result: Float32Array; names: string[] } = await kernelsOf(g, () => g.add(g.linear(g.rmsNorm(g.fromHost(x.slice(), [M, K]), g.fromHost(nw.slice(), [K]), 1e-5), W, null), g.fromHost(res.slice(), [M, N])).data());
        const gated: { result: Float32Array; names: string[] } = await kernelsOf(g, () => g.linear(g.rmsNormGated(g.fromHost(x.slice(), [M, K]), g.fromHost(z.slice(), [M, K]), g.fromHost(nw.slice(), [K]), 1e-5, gs), W, null).data());
        for (const [what, r] of [['norm + residual', plain], ['gated norm', gated]] as const) {
          const d = maxAbsDiff(r.result, c[what === 'gated norm' ? 'gated' : 'plain']);
          assert.ok(d <= 1e-4, `${which} M=${M} ${what}: max |Δ| = ${d}`);
          const ran = r.names.filter((n) => n !== 'copy');
          if (M <= 8 || which.startsWith('simple')) assert.deepEqual(ran, ['fewrows'], `${which} M=${M} ${what}: one few-rows dispatch (got ${r.names.join(', ')})`);
          else {
            // 9+ rows with 'tiled' kernels: the norm, the blocked GEMM (K = 64: not split), then the add
            assert.match(ran[0], /^rms_norm/, `${which} M=${M} ${what}: ${ran.join(', ')}`);
            assert.equal(ran[1], 'matmul_blocked', `${which} M=${M} ${what}: ${ran.join(', ')}`);
            assert.deepEqual(ran.slice(2), what === 'gated norm' ? [] : ['binary'], `${which} M=${M} ${what}: ${ran.join(', ')}`);
          }
        }
      }
    });
  }

  it('gemmSmall old keeps the few-rows kernel up to 64 rows (fused, one dispatch); fewRows false then the tiled matmul; same values', async (t: TestContext) => {
    const g = gpus['tiled f32'];
    if (typeof g === 'string') return t.skip(g);
    const [M, K, N] = [33, 72, 45];
    const x = randomArray(M * K, 5), w = randomArray(N * K, 6), nw = randomArray(K, 7);
    const want = cpu.linear(cpu.rmsNorm(cpu.fromHost(x.slice(), [M, K]), cpu.fromHost(nw.slice(), [K]), 1e-5), cpu.fromHost(w.slice(), [N, K]), null).dataSync();
    const W = g.fromHost(w.slice(), [N, K], { matrix: true }), NW = g.fromHost(nw.slice(), [K]);
    const run = () => kernelsOf(g, () => g.linear(g.rmsNorm(g.fromHost(x.slice(), [M, K]), NW, 1e-5), W, null).data());
    g.gemmSmall = 'old';
    try {
      const few = await run();
      assert.deepEqual(few.names.filter((n) => n !== 'copy'), ['fewrows'], few.names.join(', '));
      assert.ok(maxAbsDiff(few.result, want) <= 1e-4);
      g.fewRows = false;
      const { result, names } = await run();
      assert.ok(names.some((n) => n.startsWith('matmul') && n !== 'matmul_blocked') && !names.includes('fewrows'), names.join(', '));
      assert.ok(maxAbsDiff(result, want) <= 1e-4);
    } finally {
      g.fewRows = true;
      g.gemmSmall = 'blocked';
    }
  });
});

describe('webgpu batched greedy decode (few-rows kernel, recorded steps)', () => {
  // the tiled kernels (what GPUs run); the simple ones are covered op by op above (a model decoded both ways
  // costs minutes on SwiftShader). gemmSmall 'old' so that the 9 rows take the few-rows kernel (the default sends
  // them to the blocked GEMM: webgpu-gemm-blocked.test.ts decodes that way). fewRows is opt-in: one model — bf16
  // weights, Mamba-2's in_proj of 296 rows with the conv-window epilogue (xBC from column 128), its gated norm folded into
  // out_proj — and the first, a middle and the last row alone, as webgpu-gemm-blocked.test.ts does (a row alone costs
  // ~5 s of SwiftShader CPU; mamba-tiny f32 decoded this way took ~80 s); f32 weights are checked op by op above
  for (const [name, which] of [['mamba2-tiny', 'tiled bf16']] as const) {
    it(`${name} (${which}): 9 rows of different prompt lengths decoded together = rows 0, 4, 8 alone (tokens, logits ≤ 1e-4)`, async (t: TestContext) => {
      const g = gpus[which];
      if (typeof g === 'string') return t.skip(g);
      const lm = (await loadModel(hfFixture(name), { backend: g })).lm;
      g.gemmSmall = 'old';
      try {
        const { names } = await kernelsOf(g, () => batchedEqualsAlone(lm, name, 9, [0, 4, 8]));
        assert.ok(names.includes('fewrows') && !names.includes('matmul_blocked'), [...new Set(names)].join(', '));
      } finally {
        g.gemmSmall = 'blocked';
      }
    });
  }
});
