/**
 * The WebAssembly kernels of float32 training (matrix products in `gemm.ts`, the selective scan in
 * `fused-scan-wasm.ts`, the causal conv1d in `fused.ts`): the runtime they run on and a frame that copies host
 * arrays into wasm memory and the results back out.
 *
 * Which runtime (if any) is the backend's choice: a CPU backend's differentiable ops run inside `withTrainRuntime`
 * with its `trainRuntime` (src/backend/cpu/index.ts: one single-threaded runtime per process or worker thread,
 * unless MAMBA_TS_TRAIN_WASM=js). Float64 inputs (gradient checks) keep the plain TypeScript implementations.
 */
import type { WasmRuntime } from '../backend/wasm/runtime.js';
import type { Arr } from './var.js';

/**
 * The runtime the kernels run on while a backend's differentiable op runs (`withTrainRuntime`): the backend hands
 * it in (`CpuBackend.trainRuntime`); the autograd never picks one itself. null: the TypeScript implementations.
 */
let current: WasmRuntime | null = null;

/**
 * The most wasm memory one training kernel call may take (its inputs, outputs and scratch); larger calls run the
 * TypeScript implementation (the wasm memory holds at most 4 GiB, and the heap may be fragmented).
 */
export const WASM_TRAIN_MAX_BYTES = 1.5 * 2 ** 30;

/** run `fn` (the forward or backward of differentiable ops) with the kernels on `rt` (null: TypeScript) */
export function withTrainRuntime<T>(rt: WasmRuntime | null, fn: () => T): T {
  const saved = current;
  current = rt;
  try {
    return fn();
  } finally {
    current = saved;
  }
}

/** the runtime of the training kernels for the op running now, or null (TypeScript) */
export function trainRuntime(): WasmRuntime | null {
  return current;
}

/** true when every present array is a Float32Array (the wasm kernels' precision) */
export function allF32(...arrs: readonly (Arr | null)[]): boolean {
  return arrs.every((a) => a === null || a instanceof Float32Array);
}

/** Wasm memory for one kernel call: `put` copies in, `alloc` reserves, `take` copies out; `release` frees it all. */
export class WasmFrame {
  private readonly offs: number[] = [];
  constructor(readonly rt: WasmRuntime) {}

  /** copy `a` in (0 for null) */
  put(a: Arr | null): number {
    if (!a) return 0;
    const o = this.alloc(a.length);
    this.rt.f32(o, a.length).set(a);
    return o;
  }

  /** room for `floats` f32 (contents undefined) */
  alloc(floats: number): number {
    const o = this.rt.heap.alloc(Math.max(1, floats) * 4);
    this.offs.push(o);
    return o;
  }

  /** room for `bytes` bytes */
  allocBytes(bytes: number): number {
    return this.alloc(Math.ceil(bytes / 4));
  }

  /** a copy of `floats` f32 at `off` */
  take(off: number, floats: number): Float32Array {
    return this.rt.f32(off, floats).slice();
  }

  release(): void {
    for (let i = this.offs.length - 1; i >= 0; i--) this.rt.heap.release(this.offs[i]);
    this.offs.length = 0;
  }
}

/** run `fn` with a fresh frame, released afterwards whatever happens */
export function withFrame<T>(rt: WasmRuntime, fn: (f: WasmFrame) => T): T {
  const f = new WasmFrame(rt);
  try {
    return fn(f);
  } finally {
    f.release();
  }
}
