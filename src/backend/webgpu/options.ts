/** Options of the WebGPU backend (`createWebGpuBackend`, `new WebGpuBackend`). */
import type { RuntimeOptions } from './runtime.js';

export interface WebGpuBackendOptions extends RuntimeOptions {
  /**
   * 'tiled' (workgroup-memory tiles: matmul, chunked SSD) suits GPUs; 'simple' (no workgroup barriers: a
   * thread per matmul output, the SSD recurrence for every length) suits CPU-emulated adapters such as
   * SwiftShader, where a barrier costs a thread switch per 4 invocations. Default: by the adapter.
   */
  kernels?: 'tiled' | 'simple';
  /**
   * Fused single-token decode kernels (norm into the next matvec, residual add into out_proj, dt_proj into
   * the scan step). Default: on with 'tiled' kernels (GPUs, where dispatch latency dominates decode), off
   * with 'simple' ones (CPU-emulated adapters, where the fused kernels' reductions cost ~10× more than
   * the dispatches they save: mamba-tiny greedy 12 tokens 12.9 s fused vs 1.3 s unfused on SwiftShader).
   */
  fuse?: boolean;
  /**
   * Storage of weight matrices, chosen at load time: 'f32' (default) or 'bf16' (two to a u32, converted with
   * a shift in the kernels: half the bytes a decode step streams). Matrices the model keeps exact (Mamba-1's
   * x_proj and dt_proj) and those whose row length is not a multiple of 8 stay float32.
   */
  weights?: 'f32' | 'bf16';
  /**
   * Batched decode (2–64 rows per step) through the few-rows kernel, which reads each weight row once for all
   * rows, with the decode fusions of batch 1 (default true). false: the former path (matvec up to 8 rows, the
   * 64×64-tile matmul above, unfused), to compare. Also settable on the backend (`fewRows`).
   */
  fewRows?: boolean;
}

/** the weight formats this backend stores (`weights`) */
export const WEBGPU_WEIGHT_FORMATS = ['f32', 'bf16'] as const;
