/**
 * The attention op alone at a model's prefill shape, for each inference attention kernel set (WebGpuBackendOptions
 * .attention) on the same device: its output against the CPU reference (so a kernel wrong on that GPU fails the run)
 * and its GPU time per call (timestamp queries when the backend has them, else the wall time of queued calls).
 * Used by webgpu.bench.ts when `--attention` lists several sets.
 */
import type { WebGpuBackend } from '../src/backend/webgpu/backend.js';
import type { WebGpuAttention } from '../src/backend/webgpu/options.js';
import { cpu } from '../src/backend/cpu/index.js';
import { attentionArgs, maxAbsDiff, randomArray, type AttentionDims } from '../test/helpers.js';
import { kernelTimes } from './kernel-times.js';

export type AttentionShape = AttentionDims;

export interface AttentionOpResult {
  shape: AttentionShape;
  mode: WebGpuAttention;
  /** the prefill kernel's variant, or null (another kernel ran) */
  variant: string | null;
  max_abs_diff_vs_cpu: number;
  gpu_ms: number;
  /** whether gpu_ms is from timestamp queries (else: wall time of queued calls) */
  timestamps: boolean;
  kernels: string[];
}

/** each mode on `g` for each shape (the CPU reference computed once a shape); restores g's attention kernels */
export async function attentionOpCheck(g: WebGpuBackend, modes: readonly WebGpuAttention[], shapes: readonly AttentionShape[], reps: number, profile: boolean): Promise<AttentionOpResult[]> {
  const saved = g.attentionKernels;
  const out: AttentionOpResult[] = [];
  try {
    for (const sh of shapes) {
      const { b, L, Hq, Hkv, hd } = sh;
      const q = randomArray(b * L * Hq * hd, 1), k = randomArray(b * L * Hkv * hd, 2), v = randomArray(b * L * Hkv * hd, 3);
      const args = (be: typeof cpu | WebGpuBackend) => attentionArgs(be, sh, q, k, v, new Array<number>(b).fill(0));
      const want = cpu.attention(args(cpu)).dataSync();
      const ga = args(g);
      for (const mode of modes) {
        g.attentionKernels = mode;
        const got = await g.attention(ga).data();
        const d = maxAbsDiff(got, want); // Infinity where got has a NaN
        await g.sync();
        let ms: number;
        let kernels: string[] = [];
        if (profile) {
          const p = await kernelTimes(g, () => {
            for (let r = 0; r < reps; r++) g.attention(ga).dispose();
          }, reps);
          kernels = p.kernels.map((k) => k.kernel);
          ms = p.gpuMs;
        } else {
          const t = performance.now();
          for (let r = 0; r < reps; r++) g.attention(ga).dispose();
          await g.sync();
          ms = (performance.now() - t) / reps;
        }
        out.push({ shape: sh, mode, variant: g.prefillAttentionKernel(hd), max_abs_diff_vs_cpu: d, gpu_ms: ms, timestamps: profile, kernels });
      }
    }
  } finally {
    g.attentionKernels = saved;
  }
  return out;
}
