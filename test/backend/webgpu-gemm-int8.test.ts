/**
 * The int8 GEMM with the Ozaki split (kernels/gemm_int8.ts, ozaki.ts): the split and its recombination on the host
 * (error bounds, the int32 bound of the K block), the GPU split against the host's bit for bit, the GEMM ('int8x1'…
 * 'int8x4' through `linear`, the emulated product step on SwiftShader) against float64 on odd shapes, rows of very
 * different magnitude, several K blocks, K = 3072, bias, bf16 weights and a weight split into row blocks; the
 * subgroup-matrix WGSL as generated, run where the device has the feature; the check of the subgroup-matrix step
 * runs at creation only when the int8 GEMM is asked for.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { MATMUL_I8, OZAKI_SPLIT, int8MatrixConfig, int8VariantKey, parseInt8Variant } from '../../src/backend/webgpu/kernels/gemm_int8.js';
import { frexpExp, int8BlockLimit, int8Blocking, int8Product, int8Split, int8Value, roundEven } from '../../src/backend/webgpu/ozaki.js';
import type { Store } from '../../src/backend/webgpu/runtime.js';
import { generateWgsl } from '../../src/backend/webgpu/wgsl.js';
import { randomArray } from '../helpers.js';
import { matrixFeatureGpu, roundBf16, webgpuOrReason } from './webgpu-context.js';

let seed = 5;
const rnd = (n: number, scale = 1) => randomArray(n, seed++ * 7919, scale);

/** rows scaled by 10^(−4…+4) (row r by 10^((r % 9) − 4)) */
function ragged(rows: number, K: number): Float32Array {
  const a = rnd(rows * K);
  for (let r = 0; r < rows; r++) for (let k = 0; k < K; k++) a[r * K + k] *= 10 ** ((r % 9) - 4);
  return a;
}

/** float64 x·wᵀ (+ bias) */
function exact(x: Float32Array, w: Float32Array, M: number, K: number, N: number, bias?: Float32Array): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n] : 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
      y[m * N + n] = s;
    }
  }
  return y;
}

/**
 * max over outputs of |y − want| / (max_k |x_mk| · max_k |w_nk| · K + |bias_n|): the error relative to the row maxima
 * the split is relative to (the scale-free measure the Ozaki bounds are stated in; the bias is added in float32)
 */
function rowRelErr(y: ArrayLike<number>, want: Float64Array, x: Float32Array, w: Float32Array, M: number, K: number, N: number, bias?: Float32Array): number {
  const mx = (a: Float32Array, r: number) => {
    let m = 0;
    for (let k = 0; k < K; k++) m = Math.max(m, Math.abs(a[r * K + k]));
    return m;
  };
  const xm = Array.from({ length: M }, (_, r) => mx(x, r)), wm = Array.from({ length: N }, (_, r) => mx(w, r));
  let e = 0;
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) e = Math.max(e, Math.abs(y[m * N + n] - want[m * N + n]) / (xm[m] * wm[n] * K + Math.abs(bias?.[n] ?? 0) || 1));
  return e;
}

/** the bound of rowRelErr for S slices: each operand's split error < 2^−7S of its row max, twice, plus the dropped pairs */
const bound = (S: number) => 4 * 2 ** (-7 * S);
/** the same for a float32 result (its own rounding, 2^−24 of |y| ≤ row maxima · K, and the float32 combination of the levels) */
const boundF32 = (S: number) => bound(S) + 2 ** -22;

describe('int8 GEMM split (host)', () => {
  it('frexp exponents and round-half-even as WGSL has them', () => {
    for (const [m, e] of [[1, 1], [0.5, 0], [0.75, 0], [3, 2], [4, 3], [1e-30, -99], [0, 0]] as const) assert.equal(frexpExp(m), e, `frexp(${m})`);
    assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, -2.6].map(roundEven), [0, 2, 2, -0, -2, 2, -3]);
  });

  it('each value is its slices within 2^(e−7S), slices within ±127, padding zero', () => {
    const K = 77, rows = 9;
    const x = ragged(rows, K);
    for (let S = 1; S <= 4; S++) {
      const sp = int8Split(x, rows, K, S, 64);
      assert.equal(sp.Kp, 128);
      assert.equal(sp.nblk, 2);
      for (let r = 0; r < rows; r++) {
        for (let k = 0; k < sp.Kp; k++) {
          for (let s = 0; s < S; s++) assert.ok(Math.abs(sp.q[(s * rows + r) * sp.Kp + k]) <= 127);
          if (k >= K) {
            assert.equal(int8Value(sp, r, k), 0);
            continue;
          }
          const e = sp.e[r * sp.nblk + Math.floor(k / 64)];
          const err = Math.abs(int8Value(sp, r, k) - x[r * K + k]);
          assert.ok(err <= 2 ** (e - 7 * S), `S=${S} row ${r} k ${k}: |Δ| ${err} > 2^${e - 7 * S}`);
        }
      }
    }
  });

  it('the K block keeps S pairs of 127·127 products per level inside int32; bad blocks are refused', () => {
    for (let S = 1; S <= 4; S++) {
      const L = int8BlockLimit(S);
      assert.ok(L % 64 === 0 && S * 127 * 127 * L <= 2 ** 31 - 1 && S * 127 * 127 * (L + 64) > 2 ** 31 - 1, `S=${S}: ${L}`);
    }
    assert.deepEqual(int8Blocking(3072, 3), { Kp: 3072, KB: 3072, nblk: 1 });
    assert.deepEqual(int8Blocking(70000, 4), { Kp: 70016, KB: int8BlockLimit(4), nblk: Math.ceil(70016 / int8BlockLimit(4)) });
    assert.deepEqual(int8Blocking(48, 1), { Kp: 64, KB: 64, nblk: 1 });
    assert.throws(() => int8Blocking(100, 3, 96), /multiple of 64/);
    assert.throws(() => int8Blocking(100, 4, 40000), /multiple of 64 from 64 to 33280/);
    assert.throws(() => int8Blocking(100, 5), /S must be 1, 2, 3 or 4/);
    // the worst case at the bound: every slice ±127 (values just under the row max), all products of one sign
    const K = int8BlockLimit(4);
    const x = new Float32Array(K).fill(1 - 2 ** -24), w = new Float32Array(K).fill(-(1 - 2 ** -24));
    const sx = int8Split(x, 1, K, 4), sw = int8Split(w, 1, K, 4);
    assert.ok(sx.q.subarray(0, 3 * K).every((q) => q === 127) && sw.q.subarray(0, 3 * K).every((q) => q === -127));
    const y = int8Product(sx, sw)[0];
    assert.ok(Math.abs(y + K * (1 - 2 ** -24) ** 2) <= K * bound(4), `${y}`);
  });

  it('recombination: the error relative to the row maxima falls by ~2^−7 per slice (S = 3: ≤ 2^−19)', () => {
    const M = 13, K = 300, N = 11;
    const x = ragged(M, K), w = ragged(N, K);
    const want = exact(x, w, M, K, N);
    let prev = Infinity;
    for (let S = 1; S <= 4; S++) {
      const e = rowRelErr(int8Product(int8Split(x, M, K, S, 128), int8Split(w, N, K, S, 128)), want, x, w, M, K, N);
      assert.ok(e <= bound(S), `S=${S}: ${e} > ${bound(S)}`);
      assert.ok(e < prev / 16, `S=${S}: ${e} not well below S−1's ${prev}`);
      prev = e;
    }
  });
});

const gpu = await webgpuOrReason({ kernels: 'tiled' });
const gpuBf16 = typeof gpu === 'string' ? gpu : await webgpuOrReason({ kernels: 'tiled', weights: 'bf16' });
after(() => {
  for (const g of [gpu, gpuBf16]) if (typeof g !== 'string') g.destroy();
});

function withGpu(name: string, fn: (g: WebGpuBackend, gb: WebGpuBackend) => Promise<void>): void {
  it(name, async (t: TestContext) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    if (typeof gpuBf16 === 'string') return t.skip(gpuBf16);
    await fn(gpu, gpuBf16);
  });
}

/** y = x·wᵀ (+ bias) through `linear` with gemm 'int8x<S>' (K block, tile rows and K step forced if given) */
async function int8Linear(g: WebGpuBackend, S: number, x: Float32Array, w: Float32Array, M: number, K: number, N: number, o: { bias?: Float32Array; KB?: number; tm?: 64 | 128; ks?: 32 | 64 } = {}): Promise<Float32Array> {
  const saved = [g.gemm, g.int8.blockK, g.int8.tileM, g.int8.kStep] as const;
  g.gemm = `int8x${S}` as typeof g.gemm;
  g.int8.blockK = o.KB;
  g.int8.tileM = o.tm;
  g.int8.kStep = o.ks;
  const xt = g.fromHost(x, [M, K]), wt = g.fromHost(w, [N, K], { matrix: true }), bt = o.bias ? g.fromHost(o.bias, [N]) : null;
  try {
    assert.match(g.gemmKernel(M, N, false, K).name, new RegExp(`^int8x${S} (emulated|subgroup-matrix)`));
    const y = g.linear(xt, wt, bt);
    const out = await y.data();
    y.dispose();
    return out;
  } finally {
    [g.gemm, g.int8.blockK, g.int8.tileM, g.int8.kStep] = saved;
    for (const t of [xt, wt, bt]) t?.dispose();
  }
}

describe('webgpu int8 GEMM (Ozaki split)', () => {
  withGpu('the split kernel gives the host split bit for bit (f32 and bf16 rows, several K blocks)', async (g, gb) => {
    for (const [be, bf] of [[g, false], [gb, true]] as const) {
      const R = 5, K = 136, S = 3;
      let x = ragged(R, K);
      if (bf) x = roundBf16(x);
      const { Kp, KB, nblk } = int8Blocking(K, S, 64);
      const xt = be.fromHost(x, [R, K], bf ? { matrix: true } : undefined);
      const xs = xt.storage as Store;
      assert.equal(xs.fmt, bf ? 'bf16' : 'f32');
      const q = be.rt.alloc(be.rt.packPool, S * R * (Kp / 4)), e = be.rt.alloc(be.rt.actPool, R * nblk);
      be.rt.record({ spec: OZAKI_SPLIT, variant: `${S}${bf ? 'b' : ''}`, roles: [xs, q, e], params: [R, K, Kp / 4, KB, nblk], grid: be.rt.grid(R * nblk) });
      const [qd, ed] = await Promise.all([be.rt.read(q), be.rt.read(e)]);
      const want = int8Split(x, R, K, S, 64);
      assert.deepEqual(new Int8Array(qd.buffer, 0, want.q.length), want.q);
      assert.deepEqual(Array.from(ed), Array.from(want.e));
      xt.dispose();
    }
  });

  withGpu('S = 1…4 on odd shapes with ragged rows: within the bound of the row maxima, as the host arithmetic', async (g) => {
    const M = 70, K = 129, N = 67;
    const x = ragged(M, K), w = ragged(N, K), bias = rnd(N);
    const want = exact(x, w, M, K, N, bias);
    const errs: string[] = [];
    for (let S = 1; S <= 4; S++) {
      const y = await int8Linear(g, S, x, w, M, K, N, { bias });
      const e = rowRelErr(y, want, x, w, M, K, N, bias);
      errs.push(`S=${S} ${e.toExponential(2)}`);
      assert.ok(e <= boundF32(S), `S=${S}: ${e} > ${boundF32(S)}`);
      // the same arithmetic on the host (float64 recombination): only float32 rounding apart
      const host = int8Product(int8Split(x, M, K, S), int8Split(w, N, K, S));
      const hb = Float64Array.from(host, (v, i) => v + bias[i % N]);
      const eh = rowRelErr(y, hb, x, w, M, K, N, bias);
      assert.ok(eh <= 1e-7, `S=${S} differs from the host's int8 arithmetic by ${eh}`);
    }
    console.log(`int8 GEMM [${M}, ${K}] × [${N}, ${K}]ᵀ, ragged rows, error / (row maxima · K): ${errs.join(', ')}`);
  });

  withGpu('several K blocks, 128-row tiles, K = 3072, bf16 weights, a weight in row blocks', async (g, gb) => {
    {
      const M = 150, K = 200, N = 70, S = 2;
      const x = ragged(M, K), w = ragged(N, K);
      const want = exact(x, w, M, K, N);
      for (const o of [{ KB: 64, ks: 32 as const }, { KB: 128, tm: 128 as const, ks: 64 as const }]) {
        const e = rowRelErr(await int8Linear(g, S, x, w, M, K, N, o), want, x, w, M, K, N);
        assert.ok(e <= boundF32(S), `${JSON.stringify(o)}: ${e}`);
      }
    }
    {
      const M = 17, K = 3072, N = 20, S = 3;
      const x = rnd(M * K), w = rnd(N * K);
      const y = await int8Linear(g, S, x, w, M, K, N);
      const want = exact(x, w, M, K, N);
      const e = rowRelErr(y, want, x, w, M, K, N);
      let num = 0, den = 0;
      for (let i = 0; i < y.length; i++) {
        num = Math.max(num, Math.abs(y[i] - want[i]));
        den = Math.max(den, Math.abs(want[i]));
      }
      console.log(`int8x3 K=3072: error / (row maxima · K) ${e.toExponential(2)}, max |Δ| / max |y| ${(num / den).toExponential(2)}`);
      assert.ok(e <= boundF32(S) && num / den <= 1e-5, `${e}, ${num / den}`);
    }
    {
      const M = 40, K = 64, N = 50, S = 3;
      const x = rnd(M * K), w = roundBf16(rnd(N * K));
      const e = rowRelErr(await int8Linear(gb, S, x, w, M, K, N), exact(x, w, M, K, N), x, w, M, K, N);
      assert.ok(e <= boundF32(S), `bf16 weights: ${e}`);
    }
  });

  withGpu('a weight split into row blocks (binding limit): each block split and multiplied at its columns', async () => {
    const g = await webgpuOrReason({ kernels: 'tiled', maxBindingBytes: 64 * 40 * 4 });
    if (typeof g === 'string') return;
    try {
      const M = 20, K = 64, N = 100, S = 1;
      const x = rnd(M * K), w = rnd(N * K), bias = rnd(N);
      const y = await int8Linear(g, S, x, w, M, K, N, { bias });
      const e = rowRelErr(y, exact(x, w, M, K, N, bias), x, w, M, K, N, bias);
      assert.ok(e <= boundF32(S), `${e}`);
    } finally {
      g.destroy();
    }
  });

  withGpu('weights are split once and cached per store; int8.forgetWeights() splits them again', async (g) => {
    const M = 20, K = 32, N = 16;
    const x = rnd(M * K), w = rnd(N * K);
    const saved = g.gemm;
    g.gemm = 'int8x2';
    const xt = g.fromHost(x, [M, K]), wt = g.fromHost(w, [N, K], { matrix: true });
    const splits = () => {
      let n = 0;
      const rec = g.rt.record.bind(g.rt);
      g.rt.record = (d) => {
        if (d.spec === OZAKI_SPLIT) n++;
        rec(d);
      };
      const y = g.linear(xt, wt, null);
      g.rt.record = rec;
      return { y, n };
    };
    try {
      const a = splits(), b = splits();
      assert.deepEqual([a.n, b.n], [2, 1]);
      g.int8.forgetWeights();
      const c = splits();
      assert.equal(c.n, 2);
      const [ya, yc] = await Promise.all([a.y.data(), c.y.data()]);
      assert.deepEqual(ya, yc);
      for (const r of [a, b, c]) r.y.dispose();
    } finally {
      g.gemm = saved;
      xt.dispose();
      wt.dispose();
    }
  });

  withGpu('the subgroup-matrix variants: WGSL as generated, run where the device has the feature', async (g) => {
    assert.equal(int8MatrixConfig([{ componentType: 'f32', resultComponentType: 'f32', M: 8, N: 8, K: 8 }]), null);
    const cfg = int8MatrixConfig([{ componentType: 'u8', resultComponentType: 'u32', M: 16, N: 16, K: 32 }, { componentType: 'i8', resultComponentType: 'i32', M: 16, N: 16, K: 32 }]);
    assert.deepEqual(cfg, { componentType: 'i8', resultComponentType: 'i32', M: 16, N: 16, K: 32 });
    for (const unit of ['eb', 'et', 'wb', 'wt']) {
      const key = int8VariantKey({ S: 3, tm: 64, ks: 32, cm: 16, cn: 16, ck: 32, G: 32, mma: unit[0] as 'e', syntax: unit[1] as 'b' });
      assert.equal(key, `s3t64k32f16x16x32g32m${unit}`);
      assert.deepEqual(parseInt8Variant(key).mma, unit[0]);
      const code = generateWgsl(MATMUL_I8, key, [0, 1, 0, 2, 2, 3], 'rrrw');
      assert.match(code, /enable chromium_experimental_subgroup_matrix;\ndiagnostic\(off, chromium\.subgroup_matrix_uniformity\);/);
      assert.match(code, /var<storage, read> b0: array<vec4<u32>>;/);
      const load = unit[1] === 'b' ? 'subgroupMatrixLoad<subgroup_matrix_left<i8, 32, 16>>(&T, ' : 'subgroupMatrixLoad<subgroup_matrix_left<i8, 32, 16>, row_major>(&T, ';
      assert.ok(code.includes(load), `${key}: ${load}`);
      assert.ok(code.includes(unit[0] === 'e' ? `, ${unit[1] === 'b' ? 'true, ' : ''}48u)` : `, ${unit[1] === 'b' ? 'true, ' : ''}12u)`), `${key}: stride`);
      // 6 products of 2 fragments per K step for S = 3: levels 0 (1 pair), 1 (2), 2 (3)
      assert.equal(code.match(/subgroupMatrixMultiplyAccumulate\(/g)?.length, 12);
      assert.equal(code.match(/var c\d_\d = subgroup_matrix_result<i32, 16, 16>\(\);/g)?.length, 6);
    }
    // K step 64: two products per fragment pair and staged step
    assert.equal(generateWgsl(MATMUL_I8, 's1t64k64f16x16x32g32meb', [0, 1, 0, 2, 2, 3], 'rrrw').match(/subgroupMatrixMultiplyAccumulate\(/g)?.length, 2);
    assert.match(generateWgsl(MATMUL_I8, 's1t64k64f16x16x32g32meb', [0, 1, 0, 2, 2, 3], 'rrrw'), /kk < 64u; kk \+= 32u/);
    assert.throws(() => parseInt8Variant('s5t64k32f16x16x32g32e'), /bad variant/);
    assert.throws(() => parseInt8Variant('s2t64k32f16x16x32g48e'), /do not divide 256/);
    // the emulation has no subgroup code
    assert.doesNotMatch(generateWgsl(MATMUL_I8, 's2t64k32f16x16x32g32e', [0, 1, 0, 2, 2, 3], 'rrrw'), /subgroup/);
    if (!g.int8.mma) {
      assert.match(g.int8.note, /^emulated \(/);
      return;
    }
    // a device with i8 matrices: the checked variant against the emulation on a ragged product
    const M = 100, K = 96, N = 80;
    const x = ragged(M, K), w = ragged(N, K);
    const saved = g.int8.mma;
    const yM = await int8Linear(g, 3, x, w, M, K, N);
    g.int8.mma = null;
    const yE = await int8Linear(g, 3, x, w, M, K, N);
    g.int8.mma = saved;
    assert.deepEqual(yM, yE);
  });
});

describe('webgpu int8 GEMM: the subgroup-matrix check runs when int8 is asked for, not at every creation', () => {
  it('a device with an i8 configuration: default options compile nothing for int8; gemm int8x2 at creation (or enableInt8Gemm later) checks, and the product is right', async (t: TestContext) => {
    const fake = await matrixFeatureGpu([{ componentType: 'i8', resultComponentType: 'i32', M: 16, N: 16, K: 32 }]);
    if (typeof fake === 'string') return t.skip(fake);
    const made: WebGpuBackend[] = [];
    const create = async (o: { gemm?: 'int8x2' }) => {
      const g = await webgpuOrReason({ gpu: fake, kernels: 'tiled', ...o });
      if (typeof g !== 'string') made.push(g);
      return g;
    };
    try {
      const plain = await create({});
      if (typeof plain === 'string') return t.skip(plain);
      if (!plain.rt.subgroupFixed) return t.skip('no fixed subgroup size: the backend sees no subgroup matrices');
      // the facade took: the backend sees the configuration (and would have checked it at creation before)
      assert.deepEqual(plain.rt.matrixConfigs.map((c) => `${c.componentType}→${c.resultComponentType}`), ['i8→i32']);
      assert.equal(plain.rt.compiles, 0, 'default options: no pipeline compiled at creation');
      assert.match(plain.int8.note, /check has not run/);
      // asked later: the check (its emulated product compiles the split and the GEMM) and a note on its outcome
      assert.match((await plain.enableInt8Gemm()) ?? '', /^emulated \(/);
      assert.ok(plain.rt.compiles >= 2, `enableInt8Gemm compiled ${plain.rt.compiles} pipelines`);
      assert.doesNotMatch(plain.int8.note, /has not run/);
      t.diagnostic(`int8 note after the check: ${plain.int8.note}`);
      // asked at creation: checked before the backend is returned
      const asked = await create({ gemm: 'int8x2' });
      if (typeof asked === 'string') return t.skip(asked);
      assert.ok(asked.rt.compiles >= 2, `gemm int8x2: ${asked.rt.compiles} pipelines compiled at creation`);
      assert.doesNotMatch(asked.int8.note, /has not run/);
      assert.match(asked.int8.note, /^(emulated|subgroup-matrix i8)/);
      const M = 37, K = 100, N = 29;
      const x = ragged(M, K), w = ragged(N, K);
      const y = await int8Linear(asked, 2, x, w, M, K, N);
      const e = rowRelErr(y, exact(x, w, M, K, N), x, w, M, K, N);
      assert.ok(e <= boundF32(2), `int8x2 after the check: ${e} > ${boundF32(2)}`);
    } finally {
      for (const g of made) g.destroy();
    }
  });
});
