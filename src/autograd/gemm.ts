/**
 * Float32 matrix products for training, on the WebAssembly SIMD kernel the inference backend uses
 * (`linear_f32`: y = x·Wᵀ, cache-blocked). The three products of a Linear layer's forward and backward
 * are all of that form after a transpose:
 *   y  = x·Wᵀ                      (forward)
 *   dx = dy·W   = dy·(Wᵀ)ᵀ          (transpose W)
 *   dW = dyᵀ·x  = dyᵀ·(xᵀ)ᵀ         (transpose dy and x)
 * Transposes cost O(MK + NK + MN) against the O(MNK) product. Runs on the calling thread (training
 * parallelism is data-parallel across workers, see src/train/parallel.ts); float64 and tiny products stay
 * in plain TypeScript (`ops.ts`), and so does everything where the wasm module cannot be loaded.
 */
import { WasmRuntime } from '../backend/wasm/runtime.js';

let runtime: WasmRuntime | null | undefined;

function rt(): WasmRuntime | null {
  if (runtime === undefined) {
    try {
      runtime = process.env.MAMBA_TS_TRAIN_GEMM === 'js' ? null : WasmRuntime.get(1);
    } catch {
      runtime = null;
    }
  }
  return runtime;
}

/** below this many multiply-adds the copies cost more than they save */
const MIN_WORK = 1 << 14;

/** y [M, N] = x [M, K] · w [N, K]ᵀ (+ bias [N]); null when the wasm path is not available for this call */
export function gemmNT(x: Float32Array, w: Float32Array, bias: Float32Array | null, M: number, K: number, N: number): Float32Array | null {
  if (M * K * N < MIN_WORK) return null;
  const r = rt();
  if (!r) return null;
  const h = r.heap;
  const xo = h.alloc(M * K * 4);
  const wo = h.alloc(N * K * 4);
  const bo = bias ? h.alloc(N * 4) : 0;
  const yo = h.alloc(M * N * 4);
  try {
    r.f32(xo, M * K).set(x.subarray(0, M * K));
    r.f32(wo, N * K).set(w.subarray(0, N * K));
    if (bias) r.f32(bo, N).set(bias);
    r.kernels.linear_f32(xo, wo, bo, yo, M, K, N, 0, N);
    return r.f32(yo, M * N).slice();
  } finally {
    h.release(yo);
    if (bias) h.release(bo);
    h.release(wo);
    h.release(xo);
  }
}

/** the transpose of a [R, C] row-major matrix */
export function transpose(a: Float32Array, R: number, C: number): Float32Array {
  const t = new Float32Array(R * C);
  const B = 32;
  for (let r0 = 0; r0 < R; r0 += B)
    for (let c0 = 0; c0 < C; c0 += B) {
      const r1 = Math.min(R, r0 + B);
      const c1 = Math.min(C, c0 + B);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) t[c * R + r] = a[r * C + c];
    }
  return t;
}
