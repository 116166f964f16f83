/**
 * The prefill GEMM kernels (kernels/gemm.ts, kernels/linear.ts) against the CPU reference on odd shapes: the old 64×64
 * kernel, the shared tiled template at 64 and 128 (f32 and bf16 weights), the backend's choice by `gemm`, and what can be
 * checked of the subgroup-matrix kernel without the feature (its variants, its WGSL, that it stays off here).
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/index.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { MATMUL } from '../../src/backend/webgpu/kernels/linear.js';
import { MATMUL_TILED, SG_MATMUL, f32MatrixConfig, sgMatmulVariant } from '../../src/backend/webgpu/kernels/gemm.js';
import type { KernelSpec, Store } from '../../src/backend/webgpu/runtime.js';
import { generateWgsl } from '../../src/backend/webgpu/wgsl.js';
import { f32ToBf16 } from '../../src/tensor/dtype.js';
import { maxAbsDiff, randomArray } from '../helpers.js';
import { webgpuOrReason } from './webgpu-context.js';

const gpu = await webgpuOrReason({ kernels: 'tiled' });
const gpuBf16 = typeof gpu === 'string' ? gpu : await webgpuOrReason({ kernels: 'tiled', weights: 'bf16' });
after(() => {
  for (const g of [gpu, gpuBf16]) if (typeof g !== 'string') g.destroy();
});

let seed = 11;
const rnd = (n: number) => randomArray(n, seed++ * 104729, 1);

function withGpu(name: string, fn: (g: WebGpuBackend, b: WebGpuBackend) => Promise<void>): void {
  it(name, async (t: TestContext) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    if (typeof gpuBf16 === 'string') return t.skip(gpuBf16);
    await fn(gpu, gpuBf16);
  });
}

/** y = x·wᵀ + bias on the CPU, with the weights as the backend stores them (bf16-rounded or not) */
function reference(x: Float32Array, w: Float32Array, bias: Float32Array, M: number, K: number, N: number, bf16: boolean): Float32Array {
  const wr = bf16 ? Float32Array.from(w, (v) => new Float32Array(new Uint32Array([f32ToBf16(v) << 16]).buffer)[0]) : w;
  return cpu.linear(cpu.fromHost(x, [M, K]), cpu.fromHost(wr, [N, K]), cpu.fromHost(bias, [N])).dataSync();
}

/** run one GEMM kernel directly: [M, K] × [N, K]ᵀ + bias with tiles tm × tn */
async function runKernel(g: WebGpuBackend, spec: KernelSpec, variant: string, tm: number, tn: number, x: Float32Array, w: Float32Array, bias: Float32Array, M: number, K: number, N: number): Promise<Float32Array> {
  const xt = g.fromHost(x, [M, K]), wt = g.fromHost(w, [N, K], { matrix: true }), bt = g.fromHost(bias, [N]), y = g.zeros([M, N]);
  const st = (t: { storage: unknown }) => t.storage as Store;
  g.rt.record({ spec, variant: variant + (st(wt).fmt === 'bf16' ? 'b' : ''), roles: [st(xt), st(wt), st(bt), st(y)], params: [M, K, N, 0, N, 1], grid: [Math.ceil(N / tn), Math.ceil(M / tm), 1] });
  const out = await y.data();
  for (const t of [xt, wt, bt, y]) t.dispose();
  return out;
}

const SHAPES = [[9, 33, 70], [70, 129, 131], [130, 16, 3], [200, 72, 136], [129, 257, 65]];

describe('webgpu prefill GEMM', () => {
  for (const [label, spec, variant, T] of [
    ['old 64×64 (MATMUL)', MATMUL, '', 64],
    ['tiled 64×64 (shared template)', MATMUL_TILED, '64', 64],
    ['tiled 128×128 (shared template)', MATMUL_TILED, '128', 128],
  ] as const) {
    withGpu(`${label}: odd shapes, bias, f32 and bf16 weights, against the CPU ≤ 1e-4`, async (g, gb) => {
      for (const [M, K, N] of SHAPES) {
        const x = rnd(M * K), w = rnd(N * K), b = rnd(N);
        for (const [be, bf16] of [[g, false], [gb, true]] as const) {
          if (bf16 && K % 8 !== 0) continue; // rows of other lengths stay float32
          const got = await runKernel(be, spec as KernelSpec, variant, T, T, x, w, b, M, K, N);
          const d = maxAbsDiff(got, reference(x, w, b, M, K, N, bf16));
          assert.ok(d <= 1e-4, `${label} ${bf16 ? 'bf16' : 'f32'} ${M}×${K}×${N}: max |Δ| = ${d}`);
        }
      }
    });
  }

  withGpu('backend.linear with gemm old / tiled / sgmat (falls back to tiled here) agree with the CPU; the choice is reported', async (g) => {
    const saved = [g.gemm, g.gemmSmall] as const;
    try {
      for (const gemm of ['old', 'tiled', 'sgmat'] as const) {
        g.gemm = gemm;
        // 9–128 rows (decode batches) go to the blocked GEMM by default, whatever `gemm` says; gemmSmall 'old' leaves them to `gemm`
        g.gemmSmall = 'blocked';
        assert.equal(g.productKernel(70), 'blocked');
        assert.match(g.gemmKernel(70, 131, false).name, /^blocked 64x64k16t4x4/);
        assert.match(g.productKernelName(70, 131, 129), /^blocked 64x64k16t4x4/);
        assert.match(g.gemmKernel(2048, 3072, false).name, gemm === 'old' ? /old/ : /tiled 128×128/);
        g.gemmSmall = 'old';
        assert.equal(g.productKernel(70), 'gemm');
        const name = g.gemmKernel(70, 131, false).name;
        assert.match(name, gemm === 'old' ? /^old 64×64$/ : /^tiled 64×64$/, `${gemm}: ${name}`);
        assert.equal(g.productKernelName(70, 131, 129), name);
        assert.match(g.gemmKernel(2048, 3072, false).name, gemm === 'old' ? /old/ : /tiled 128×128/);
        const [M, K, N] = [70, 129, 131];
        const x = rnd(M * K), w = rnd(N * K), b = rnd(N);
        const y = g.linear(g.fromHost(x, [M, K]), g.fromHost(w, [N, K], { matrix: true }), g.fromHost(b, [N]));
        const d = maxAbsDiff(await y.data(), reference(x, w, b, M, K, N, false));
        assert.ok(d <= 1e-4, `gemm ${gemm}: max |Δ| = ${d}`);
      }
    } finally {
      [g.gemm, g.gemmSmall] = saved;
    }
  });

  withGpu('without the subgroup-matrix feature the tensor-core GEMM stays off and says why', async (g) => {
    if (g.rt.matrixConfigs.length > 0) return; // a device that has it checks it at creation instead
    assert.equal(g.matrixGemm, null);
    assert.equal(await g.enableMatrixGemm(), 'no subgroup-matrix feature');
    assert.equal(g.matrixGemm, null);
  });
});

describe('subgroup-matrix GEMM: configurations and WGSL (no device here has the feature)', () => {
  const f32 = { componentType: 'f32', resultComponentType: 'f32', M: 8, N: 8, K: 8 };
  it('picks an f32 configuration, never an f16 or integer one', () => {
    assert.equal(f32MatrixConfig([]), null);
    assert.equal(f32MatrixConfig([{ ...f32, componentType: 'f16', resultComponentType: 'f16' }, { ...f32, componentType: 'i8', resultComponentType: 'i32', K: 32 }]), null);
    assert.deepEqual(f32MatrixConfig([{ ...f32, componentType: 'f16' }, f32]), f32);
    assert.equal(f32MatrixConfig([{ ...f32, M: 12 }]), null); // does not tile 64
  });
  it('variants split the tile over the subgroups of 256 threads, or are refused', () => {
    assert.equal(sgMatmulVariant(f32, 32, 64, false), '8x8x8s32t64');
    assert.equal(sgMatmulVariant(f32, 32, 128, true), '8x8x8s32t128b');
    assert.equal(sgMatmulVariant(f32, 64, 64, false), '8x8x8s64t64');
    assert.equal(sgMatmulVariant(f32, 48, 64, false), null);
    assert.equal(sgMatmulVariant({ ...f32, M: 16, N: 16 }, 32, 64, false), '16x16x8s32t64');
  });
  it('its WGSL enables the extension, loads x row-major and w column-major, and stores through the staging area', () => {
    for (const v of ['8x8x8s32t64', '8x8x8s32t128b', '16x16x8s32t64', '8x8x8s16t64']) {
      const code = generateWgsl(SG_MATMUL, v, [0, 1, 2, 3], 'rrrw');
      assert.match(code, /enable chromium_experimental_subgroup_matrix;/);
      assert.match(code, /subgroupMatrixLoad<subgroup_matrix_left<f32, 8, (8|16)>>\(&As, [^;]*, false, 36u\)/);
      assert.match(code, /subgroupMatrixLoad<subgroup_matrix_right<f32, (8|16), 8>>\(&Bs, [^;]*, true, 36u\)/);
      assert.match(code, /subgroupMatrixMultiplyAccumulate/);
      assert.match(code, /subgroupMatrixStore\(&Cs/);
      assert.doesNotMatch(code, /\bb[0-9]+ = /, 'no local shadows a buffer');
      if (v.endsWith('b')) assert.match(code, /array<u32>/);
    }
    assert.throws(() => generateWgsl(SG_MATMUL, '8x8x8s48t64', [0, 1, 2, 3], 'rrrw'), /bad variant|does not split/);
  });
});
