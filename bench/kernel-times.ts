/**
 * Per-kernel GPU time of some WebGPU work, for the benchmarks: timestamp queries around each dispatch (the backend
 * must be created with `profile: true` on a device with 'timestamp-query'), summed per kernel over the work and
 * divided by the calls it made — averaging over many calls evens out Dawn's 65.5 µs timestamp quantum.
 */
import type { WebGpuBackend } from '../src/backend/webgpu/backend.js';
import type { WasmRuntime } from '../src/backend/wasm/runtime.js';
import { cpuMs } from './report.js';

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

/** wall and CPU milliseconds of one wasm kernel's calls, how many, and how long the caller waited for the workers */
export interface WasmKernelTime {
  wall: number;
  cpu: number;
  calls: number;
  /** ms the calling thread waited at the join for the workers (the governor's join lag) */
  wait: number;
}

/**
 * Wall and CPU time of every wasm kernel call (`run` and `runTeam` of the backend's runtime) while `f` runs, summed per
 * kernel — or per `label(kernel, args)` (e.g. a GEMM by its shape) — with the join waits; the runtime's methods are
 * restored after. What `f` returns comes back with them.
 */
export async function wasmKernelTimes<T>(rt: WasmRuntime, f: () => Promise<T>, label: (kernel: string, args: number[]) => string = (k) => k): Promise<{ result: T; kernels: Map<string, WasmKernelTime> }> {
  const kernels = new Map<string, WasmKernelTime>();
  const entry = (key: string): WasmKernelTime => {
    let e = kernels.get(key);
    if (!e) kernels.set(key, (e = { wall: 0, cpu: 0, calls: 0, wait: 0 }));
    return e;
  };
  let current = '';
  const timed = (key: string, g: () => void): void => {
    current = key;
    const c0 = cpuMs(), t0 = performance.now();
    g();
    const e = entry(key);
    e.wall += performance.now() - t0;
    e.cpu += cpuMs() - c0;
    e.calls++;
  };
  const run = rt.run, runTeam = rt.runTeam, record = rt.governor.record;
  rt.run = function (kernel, args, n, align, work) {
    timed(label(kernel, args), () => run.call(this, kernel, args, n, align, work));
  };
  rt.runTeam = function (kernel, args, parallel) {
    timed(label(kernel, args), () => runTeam.call(this, kernel, args, parallel));
  };
  rt.governor.record = function (now, started, own, lag) {
    entry(current).wait += lag;
    record.call(this, now, started, own, lag);
  };
  try {
    return { result: await f(), kernels };
  } finally {
    rt.run = run;
    rt.runTeam = runTeam;
    rt.governor.record = record;
  }
}
