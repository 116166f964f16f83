/**
 * Per-kernel GPU time of some WebGPU work, for the benchmarks: timestamp queries around each dispatch (the backend
 * must be created with `profile: true` on a device with 'timestamp-query'), summed per kernel over the work and
 * divided by the calls it made — averaging over many calls evens out Dawn's 65.5 µs timestamp quantum.
 */
import type { WebGpuBackend } from '../src/backend/webgpu/backend.js';

export interface KernelTime {
  kernel: string;
  /** GPU milliseconds per call */
  ms: number;
  /** dispatches per call */
  calls: number;
}

/** the kernels `run` dispatched (slowest first) and their GPU time, per call of `per`; profiling is off again after */
export async function kernelTimes(be: WebGpuBackend, run: () => unknown, per = 1): Promise<{ gpuMs: number; kernels: KernelTime[] }> {
  await be.sync();
  be.rt.setProfiling(true);
  be.rt.kernelTimes.clear();
  try {
    await run();
    await be.sync();
  } finally {
    be.rt.setProfiling(false);
  }
  const kernels = [...be.rt.kernelTimes].sort((a, b) => b[1].ms - a[1].ms).map(([kernel, v]) => ({ kernel, ms: v.ms / per, calls: v.count / per }));
  return { gpuMs: kernels.reduce((s, k) => s + k.ms, 0), kernels };
}
