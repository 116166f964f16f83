/**
 * What the wasm streaming benches share (bench/matvec-stream.bench.ts, bench/attn-stream.bench.ts, issue 18): the
 * report header and a pool of test values laid out in wasm memory, larger than the last-level cache, which the
 * kernels stream from DRAM.
 */
import * as os from 'node:os';
import { WasmRuntime } from '../src/backend/wasm/runtime.js';
import { loadLine, machineInfo, machineLine } from './report.js';

export const log = (s: string): void => void process.stdout.write(s + '\n');
export { cpuMs } from './report.js';

/** the report's first lines: title, machine, load at start, the run's settings */
export function streamHeader(title: string, settings: string): void {
  log(`# ${title}`);
  log(`- ${machineLine(machineInfo())}, Node ${process.version}`);
  log(`- load average at start: ${loadLine(os.loadavg())}`);
  log(`- ${settings}`);
}

/** the report's closing load line */
export function streamFooter(): void {
  log(`- load average at end: ${loadLine(os.loadavg())}`);
}

/** f32 values in [-0.5, 0.5) written over `bytes` bytes at `ptr` (a fixed pattern: every run streams the same numbers) */
export function fillF32(rt: WasmRuntime, ptr: number, bytes: number): void {
  const v = rt.f32(ptr, bytes / 4);
  for (let i = 0; i < v.length; i++) v[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
}

/** the runtime of T threads, started, and a pool of `poolMb` MiB (+ 4 KiB of slack for tails) allocated in its memory */
export async function openPool(T: number, poolMb: number): Promise<{ rt: WasmRuntime; poolB: number; pool: number }> {
  const rt = WasmRuntime.get(T);
  await rt.ready();
  const poolB = poolMb * 2 ** 20;
  return { rt, poolB, pool: rt.heap.alloc(poolB + 4096) };
}

/** the probe: one pass of a plain SIMD sum over `bytes` of the pool on the runtime's threads (what DRAM delivers) */
export function probePass(rt: WasmRuntime, pool: number, out: number, bytes: number): void {
  const n = bytes / 4, T = rt.threads, chunk = Math.ceil(n / T);
  if (T === 1) rt.kernels.stream_sum(pool, out, n, 0, n);
  else rt.run('stream_sum', [pool, out, chunk], n, chunk);
}
