/**
 * WebGPU q8 weights (`weights: 'q8'`, kernels/q8.ts): the wasm backend's blocks of 32 int8 + an f32 scale, laid out
 * in superblocks for 16-byte loads. Each product kernel is checked against a float64 product of the dequantized
 * weights (so an error in the layout, the byte order, the sign extension or the scale would show), and whole models
 * against the wasm backend's q8 (the same quantized numbers): prefill and decode logits, greedy tokens, batched decode.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/index.js';
import type { Shape, Tensor } from '../../src/tensor/tensor.js';
import type { KvCacheDType } from '../../src/tensor/dtype.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { packQ8, unpackQ8 } from '../../src/backend/wasm/q8.js';
import { packQ8Gpu, q8Words, unpackQ8Gpu } from '../../src/backend/webgpu/kernels/q8.js';
import { loadModel } from '../../src/index.js';
import type { WasmBackend } from '../../src/backend/wasm/index.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { hfFixture, maxAbsDiff, randomArray } from '../helpers.js';
import { kernelsOf, webgpuOrReason } from './webgpu-context.js';

const tiled = await webgpuOrReason({ kernels: 'tiled', weights: 'q8', fuse: true });
const simple = typeof tiled === 'string' ? tiled : await webgpuOrReason({ kernels: 'simple', weights: 'q8' });
const small = typeof tiled === 'string' ? tiled : await webgpuOrReason({ kernels: 'simple', weights: 'q8', maxBindingBytes: 8192, maxStorageBuffers: 4, noSubgroups: true });
after(() => {
  for (const g of [tiled, simple, small]) if (typeof g !== 'string') g.destroy();
});

/** the values a q8 matrix holds: wasm's quantization, unpacked */
function dequant(w: Float32Array): Float32Array {
  const qs = new Int8Array(w.length), sc = new Float32Array(w.length / 32);
  packQ8(w, qs, sc);
  return unpackQ8(qs, sc);
}

/** y = x·wᵀ + b in float64 */
function product64(x: Float32Array, w: Float32Array, b: Float32Array, M: number, K: number, N: number): Float32Array {
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = b[n];
      for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
      y[m * N + n] = s;
    }
  }
  return y;
}

/** max |a − b| / max |b| */
function relErr(a: Float32Array, b: Float32Array): number {
  let e = 0, s = 0;
  for (let i = 0; i < b.length; i++) (e = Math.max(e, Math.abs(a[i] - b[i]))), (s = Math.max(s, Math.abs(b[i])));
  return e / (s || 1);
}

function withGpu(name: string, g: WebGpuBackend | string, fn: (g: WebGpuBackend) => Promise<void>): void {
  it(name, async (t: TestContext) => {
    if (typeof g === 'string') return t.skip(g);
    await fn(g);
  });
}

describe('webgpu q8 weights: the layout', () => {
  it('packQ8Gpu holds wasm packQ8 numbers: superblocks of 4 scales + 4 × 32 int8, the last padded; unpacks exactly', () => {
    for (const n of [32, 96, 128, 160, 32 * 37]) {
      const w = randomArray(n, n, 3);
      w[5] = 0; // a zero among the values, and a block of zeros (scale 0)
      if (n >= 64) w.fill(0, 32, 64);
      const words = packQ8Gpu(w);
      assert.equal(words.length, q8Words(n));
      assert.equal(words.length, Math.ceil(n / 128) * 36);
      assert.deepEqual(unpackQ8Gpu(words, n), dequant(w));
      // first superblock: scale of block 0 in word 0, its value 0 in the low byte of word 4
      const qs = new Int8Array(n), sc = new Float32Array(n / 32);
      packQ8(w, qs, sc);
      assert.equal(new Float32Array(words.buffer)[0], sc[0]);
      assert.equal(new Int8Array(words.buffer)[16], qs[0]);
      const bytes = new Int8Array(words.buffer), f = new Float32Array(words.buffer);
      if (n >= 96) assert.equal(bytes[81], qs[65], 'value 1 of block 2 at byte 1 of word 20'); // block 2: words 20…27
      if (n >= 160) {
        assert.equal(f[36], sc[4], 'block 4: the second superblock');
        assert.equal(bytes[160 + 3], qs[128 + 3]);
      }
    }
    assert.throws(() => packQ8Gpu(new Float32Array(40)), /whole blocks of 32/);
  });
});

describe('webgpu q8 weights: products and gathers = float64 on the dequantized weights', () => {
  for (const [which, g] of [['tiled', tiled], ['simple', simple], ['row blocks', small]] as const) {
    withGpu(`linear (${which}): matvec M ≤ 8, blocked / tiled GEMM M > 8; K % 32 ≠ 0 stays f32`, g, async (g) => {
      let seed = 11;
      const shapes = [[1, 64, 37], [3, 160, 70], [8, 32, 5], [9, 96, 33], [which === 'row blocks' ? 10 : 70, 64, 131], [2, 48, 20]];
      for (const [M, K, N] of shapes) {
        const x = randomArray(M * K, seed++), w = randomArray(N * K, seed++, 0.5), b = randomArray(N, seed++);
        const wg = g.fromHost(w.slice(), [N, K], { matrix: true });
        const q8 = K % 32 === 0;
        const st = wg.storage as { fmt: string; blocks: unknown };
        assert.equal(st.fmt, q8 ? 'q8' : 'f32', `${M}×${K}×${N}: storage format`);
        if (which === 'row blocks' && q8 && q8Words(N * K) * 4 > 8192) assert.ok(st.blocks, `${M}×${K}×${N}: split into row blocks`);
        const held = q8 ? dequant(w) : w;
        const want = product64(x, held, b, M, K, N);
        const { result: y, names } = await kernelsOf(g, async () => g.linear(g.fromHost(x.slice(), [M, K]), wg, g.fromHost(b.slice(), [N])).data());
        const e = relErr(y, want);
        assert.ok(e <= 1e-5, `${which} ${M}×${K}×${N} (${names.join(', ')}): relative error ${e}`);
        if (q8) assert.ok(relErr(y, product64(x, w, b, M, K, N)) > 1e-6, `${M}×${K}×${N}: the q8 numbers are used`);
        // the matrix reads back as its dequantized values
        assert.deepEqual(await wg.data(), held);
      }
    });
    withGpu(`embedding (${which}): gathers q8 rows exactly`, g, async (g) => {
      const [V, H] = [50, 64];
      const table = randomArray(V * H, 77);
      const ids = Int32Array.from([0, 49, 7, 7, 31]);
      const t = g.fromHost(table.slice(), [V, H], { matrix: true });
      assert.equal((t.storage as { fmt: string }).fmt, 'q8');
      const got = await g.embedding(t, ids).data();
      const d = dequant(table);
      const want = Float32Array.from({ length: ids.length * H }, (_, i) => d[ids[Math.floor(i / H)] * H + (i % H)]);
      assert.deepEqual(got, want);
    });
  }

  // (gemm int8x… splits the weights through the same `wv` reader: not repeated here, SwiftShader runs it slowly)
  withGpu('tiled: the GEMM kinds old and tiled read q8 (blocked: above)', tiled, async (g) => {
    const [M, K, N] = [37, 96, 70];
    const x = randomArray(M * K, 5), w = randomArray(N * K, 6, 0.5), b = randomArray(N, 7);
    const wg = g.fromHost(w.slice(), [N, K], { matrix: true });
    const want = product64(x, dequant(w), b, M, K, N);
    const [gemm, small0] = [g.gemm, g.gemmSmall];
    try {
      for (const [kind, smallKind, tol] of [['old', 'old', 1e-5], ['tiled', 'old', 1e-5]] as const) {
        g.gemm = kind;
        g.gemmSmall = smallKind;
        const { result: y, names } = await kernelsOf(g, async () => g.linear(g.fromHost(x.slice(), [M, K]), wg, g.fromHost(b.slice(), [N])).data());
        const e = relErr(y, want);
        assert.ok(e <= tol, `gemm ${kind}, gemmSmall ${smallKind} (${names.join(', ')}): relative error ${e}`);
      }
    } finally {
      g.gemm = gemm;
      g.gemmSmall = small0;
    }
  });

  // the prefill GEMM's q8 tile loads (q8Tiles): 'vector' (16 values + the block's scale per load, 16-deep slices) and
  // 'scalar' (wv(i)) multiply by the same numbers in the same order, so they must agree bit for bit; both tile sides
  // (64 here, 128 on a backend that takes 128-row tiles for every grid), ragged M and N, K of 1, 3 and 5 blocks
  // (slices of half blocks, a superblock's tail)
  withGpu("tiled: q8Tiles 'vector' = 'scalar' bit for bit, = float64 of the dequantized weights; 64- and 128-tiles, ragged edges", tiled, async (g) => {
    const big = await webgpuOrReason({ kernels: 'tiled', weights: 'q8', gpuCores: 1 });
    if (typeof big === 'string') throw new Error(big);
    try {
      let seed = 300;
      for (const [be, T] of [[g, 64], [big, 128]] as const) {
        const [gemm, small0, tiles] = [be.gemm, be.gemmSmall, be.q8Tiles];
        be.gemm = 'tiled';
        be.gemmSmall = 'old';
        try {
          for (const [M, K, N] of [[9, 32, 1], [70, 96, 131], [T + 3, 160, T - 5]]) {
            const x = randomArray(M * K, seed++), w = randomArray(N * K, seed++, 0.5), b = randomArray(N, seed++);
            const wg = be.fromHost(w.slice(), [N, K], { matrix: true });
            const want = product64(x, dequant(w), b, M, K, N);
            const got: Record<string, Float32Array> = {};
            for (const mode of ['vector', 'scalar'] as const) {
              be.q8Tiles = mode;
              const name = be.productKernelName(M, N, K);
              assert.equal(name, `tiled ${T}×${T} q8 ${mode}`, `${M}×${K}×${N}, ${mode}: the kernel`);
              const { result: y, variants } = await kernelsOf(be, async () => be.linear(be.fromHost(x.slice(), [M, K]), wg, be.fromHost(b.slice(), [N])).data());
              assert.deepEqual([...new Set(variants)], [`matmul_tiled:${T}${mode === 'vector' ? 'qv' : 'q'}`], `${M}×${K}×${N}, ${mode}: ran ${variants.join(', ')}`);
              const e = relErr(y, want);
              assert.ok(e <= 1e-5, `${name}, ${M}×${K}×${N}: relative error ${e}`);
              got[mode] = y;
            }
            assert.deepEqual(got.vector, got.scalar, `${M}×${K}×${N}, ${T}-tiles: vector = scalar`);
            wg.dispose();
          }
        } finally {
          [be.gemm, be.gemmSmall, be.q8Tiles] = [gemm, small0, tiles];
        }
      }
    } finally {
      big.destroy();
    }
    assert.throws(() => (g.q8Tiles = 'vec4' as never), /q8Tiles must be one of vector, scalar, got "vec4"/);
  });

  withGpu('tiled: the decode matvec with a folded RMSNorm (fusion), the few-rows kernel and the subgroup matvec (v2) read q8', tiled, async (g) => {
    const [K, N] = [96, 45];
    const w = randomArray(N * K, 8, 0.5), nw = randomArray(K, 9);
    const wg = g.fromHost(w.slice(), [N, K], { matrix: true });
    const held = dequant(w);
    for (const mode of ['v1', 'few-rows', 'v2']) {
      const few = mode === 'few-rows';
      g.fewRows = few;
      g.decodeKernels = mode === 'v2' ? 'v2' : 'v1';
      const kernel = (M: number) => (few && M > 1 ? 'fewrows' : mode === 'v2' && g.rt.subgroupFixed > 0 ? 'matvec_sgv' : 'matvec_v');
      try {
        for (const M of [1, 4]) {
          const x = randomArray(M * K, 10 + M);
          const xn = new Float32Array(M * K);
          for (let m = 0; m < M; m++) {
            let s = 0;
            for (let k = 0; k < K; k++) s += x[m * K + k] ** 2;
            const r = 1 / Math.sqrt(s / K + 1e-5);
            for (let k = 0; k < K; k++) xn[m * K + k] = x[m * K + k] * r * nw[k];
          }
          const want = product64(xn, held, new Float32Array(N), M, K, N);
          const { result: y, names } = await kernelsOf(g, async () => g.linear(g.rmsNorm(g.fromHost(x.slice(), [M, K]), g.fromHost(nw.slice(), [K]), 1e-5), wg, null).data());
          assert.ok(names.includes(kernel(M)), `${mode}, ${M} rows: ${names.join(', ')}`);
          assert.ok(!names.some((n) => n.startsWith('rms_norm')), `the norm is folded: ${names.join(', ')}`);
          const e = relErr(y, want);
          assert.ok(e <= 1e-5, `${mode}, ${M} rows: relative error ${e}`);
        }
      } finally {
        g.fewRows = false;
        g.decodeKernels = 'v1';
      }
    }
  });
});

/** greedy decode: the prompt, then `n` tokens each fed back; the logits of every step */
async function greedy(lm: CausalLM, prompt: number[], n: number): Promise<{ ids: number[]; logits: Float32Array[] }> {
  const s = lm.createState(1);
  let l = (await lm.advance([prompt], s)).data.slice();
  const ids: number[] = [], logits = [l];
  for (let t = 0; t < n; t++) {
    let best = 0;
    for (let i = 1; i < l.length; i++) if (l[i] > l[best]) best = i;
    ids.push(best);
    l = (await lm.advance([[best]], s)).data.slice();
    logits.push(l);
  }
  return { ids, logits };
}

/**
 * the CPU reference backend holding what a q8 backend holds: every matrix that q8 stores (rows of whole blocks, not
 * kept float32) replaced by its dequantized values
 */
class CpuQ8 extends CpuBackend {
  override fromHost(data: Float32Array, shape: Shape, opts?: { matrix?: boolean; float32?: boolean; kvCache?: KvCacheDType }): Tensor {
    const q8 = opts?.matrix && !opts.float32 && shape.length === 2 && shape[1] % 32 === 0;
    return super.fromHost(q8 ? dequant(data) : data, shape, opts);
  }
}
const cpuQ8 = new CpuQ8();

function assertClose(got: Float32Array[], want: Float32Array[], tol: number, what: string): void {
  for (let i = 0; i < want.length; i++) {
    const d = maxAbsDiff(got[i], want[i]);
    assert.ok(d <= tol, `${what} step ${i}: max |Δlogit| = ${d} (> ${tol})`);
  }
}

const PROMPT = [1, 5, 9, 200];

describe('webgpu q8 weights: whole models', () => {
  // (the 'simple' kernels on SwiftShader: the tiled ones cost it ~5× the CPU time; their q8 reads are checked above)
  it('= the CPU on the dequantized weights (prefill, greedy decode: logits within 1e-4, same tokens): mamba, mamba2, bamba', async (t) => {
    if (typeof simple === 'string') return t.skip(simple);
    for (const name of ['mamba-tiny', 'mamba2-tiny', 'bamba-tiny']) {
      const [g, c, f] = [
        await loadModel(hfFixture(name), { backend: simple }),
        await loadModel(hfFixture(name), { backend: cpuQ8 }),
        await loadModel(hfFixture(name), { backend: 'cpu' }),
      ];
      const want = await greedy(c.lm, PROMPT, 2);
      assert.ok(maxAbsDiff(want.logits[0], (await greedy(f.lm, PROMPT, 0)).logits[0]) > 1e-5, `${name}: the q8 numbers differ from float32`);
      const got = await greedy(g.lm, PROMPT, 2);
      assertClose(got.logits, want.logits, 1e-4, name);
      assert.deepEqual(got.ids, want.ids, `${name}: greedy tokens`);
    }
  });

  it("prefill through the tiled GEMM (gemm 'tiled'): q8Tiles 'vector' logits = 'scalar' bit for bit, = the CPU on the dequantized weights (1e-4): mamba, mamba2", async (t) => {
    if (typeof tiled === 'string') return t.skip(tiled);
    const [gemm, small0] = [tiled.gemm, tiled.gemmSmall];
    // 20 rows: past the decode kernels (≤ 8), and with gemmSmall 'old' not on the blocked GEMM (9–128) but on `gemm`'s
    tiled.gemm = 'tiled';
    tiled.gemmSmall = 'old';
    const prompt = Array.from({ length: 20 }, (_, i) => (i * 37 + 11) % 512);
    try {
      for (const name of ['mamba-tiny', 'mamba2-tiny']) {
        const [g, c] = [await loadModel(hfFixture(name), { backend: tiled }), await loadModel(hfFixture(name), { backend: cpuQ8 })];
        const logits: Record<string, Float32Array> = {};
        for (const mode of ['vector', 'scalar'] as const) {
          tiled.q8Tiles = mode;
          const { result, variants } = await kernelsOf(tiled, () => greedy(g.lm, prompt, 0));
          const tiles = [...new Set(variants.filter((v) => v.startsWith('matmul_tiled')))];
          assert.ok(tiles.includes(`matmul_tiled:64${mode === 'vector' ? 'qv' : 'q'}`), `${name} ${mode}: ${tiles.join(', ')}`);
          assert.ok(!tiles.includes(`matmul_tiled:64${mode === 'vector' ? 'q' : 'qv'}`), `${name} ${mode}: only ${mode} tiles: ${tiles.join(', ')}`);
          logits[mode] = result.logits[0];
        }
        assert.deepEqual(logits.vector, logits.scalar, `${name}: vector = scalar`);
        assertClose([logits.vector], (await greedy(c.lm, prompt, 0)).logits, 1e-4, `${name} q8 vector tiles`);
      }
    } finally {
      [tiled.gemm, tiled.gemmSmall, tiled.q8Tiles] = [gemm, small0, 'vector'];
    }
  });

  it('decodeKernels fused (Mamba-1 x_proj partials in the q8 in_proj matvec) = the CPU on the dequantized weights', async (t) => {
    if (typeof tiled === 'string') return t.skip(tiled);
    const [g, c] = [await loadModel(hfFixture('mamba-tiny'), { backend: tiled }), await loadModel(hfFixture('mamba-tiny'), { backend: cpuQ8 })];
    tiled.decodeKernels = 'fused';
    try {
      const { result: got, names } = await kernelsOf(tiled, () => greedy(g.lm, PROMPT.slice(0, 2), 1));
      assert.ok(names.includes('matvec_x'), `the fused epilogue ran: ${[...new Set(names)].join(', ')}`);
      const want = await greedy(c.lm, PROMPT.slice(0, 2), 1);
      assertClose(got.logits, want.logits, 1e-4, 'mamba-tiny fused');
      assert.deepEqual(got.ids, want.ids, 'greedy tokens');
    } finally {
      tiled.decodeKernels = 'v1';
    }
  });

  it('= wasm q8 (the same quantized weights) within 2e-3, the same greedy tokens (wasm q8 is not exact: its decode products take the activations as 13-bit integers; its prefill GEMM here takes them in f32, as WebGPU does)', async (t) => {
    if (typeof simple === 'string') return t.skip(simple);
    const prompt = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % 512);
    for (const name of ['mamba-tiny', 'mamba2-tiny']) {
      const gm = await loadModel(hfFixture(name), { backend: simple });
      const wm = await loadModel(hfFixture(name), { backend: 'wasm', threads: 1, weights: 'q8' });
      // the 40-token prefill would run the integer GEMM (q8Gemm 'int13', activations quantized: 2.8e-3 from WebGPU's
      // f32 activations on mamba2-tiny): the f32-activation GEMM is the like-for-like comparison
      (wm.lm.backend as WasmBackend).q8Gemm = 'f32';
      const a = await greedy(gm.lm, prompt, 2);
      const b = await greedy(wm.lm, prompt, 2);
      assertClose(a.logits, b.logits, 2e-3, `${name} webgpu q8 vs wasm q8`);
      assert.deepEqual(a.ids, b.ids, `${name}: greedy tokens`);
    }
  });

  it('batched decode (3 rows) = batch 1 per sequence (9–128 rows: the blocked GEMM, checked above)', async (t) => {
    if (typeof simple === 'string') return t.skip(simple);
    const m = await loadModel(hfFixture('mamba2-tiny'), { backend: simple });
    for (const B of [3]) {
      const prompts = Array.from({ length: B }, (_, b) => [1 + b, 7, 30 + 3 * b]);
      const s = m.lm.createState(B);
      const batched = [(await m.lm.advance(prompts, s)).data.slice()];
      batched.push((await m.lm.advance(prompts.map((_, b) => [11 + b]), s)).data.slice());
      const V = batched[0].length / B;
      for (const b of [0, B - 1]) {
        const s1 = m.lm.createState(1);
        const one = [(await m.lm.advance([prompts[b]], s1)).data.slice()];
        one.push((await m.lm.advance([[11 + b]], s1)).data.slice());
        assertClose(one, batched.map((l) => l.subarray(b * V, (b + 1) * V)), 1e-4, `batch ${B} row ${b}`);
      }
    }
  });

  it('weightBytes counts q8 matrices at 1.125 bytes a weight; other formats are refused naming the option', async (t) => {
    if (typeof tiled === 'string') return t.skip(tiled);
    const before = tiled.weightBytes;
    const w = tiled.fromHost(randomArray(40 * 128, 3), [40, 128], { matrix: true });
    assert.equal(tiled.weightBytes - before, 40 * 128 * 1.125);
    w.dispose();
    await assert.rejects(webgpuOrReason({ weights: 'q4' as never }), /weights must be one of f32, bf16, q8, got "q4"/);
    await assert.rejects(loadModel(hfFixture('mamba-tiny'), { backend: 'webgpu', weights: 'q4' }), /"weights" "q4" is not available on backend "webgpu" \(it takes .*q8/);
  });
});
