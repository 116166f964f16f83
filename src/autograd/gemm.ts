/**
 * Float32 matrix products for training, on the WebAssembly SIMD kernel the inference backend uses
 * (`linear_f32`: y = x·Wᵀ, cache-blocked). The three products of a Linear layer's forward and backward
 * are all of that form after a transpose:
 *   y  = x·Wᵀ                      (forward)
 *   dx = dy·W   = dy·(Wᵀ)ᵀ          (transpose W)
 *   dW = dyᵀ·x  = dyᵀ·(xᵀ)ᵀ         (transpose dy and x)
 * The transposes run in wasm too (`transpose_f32`, SIMD 4×4 blocks) on the copies already in wasm memory, so the
 * backward copies dy, x and W in once and the two products out. Runs on the calling thread (training parallelism
 * is data-parallel across workers, see src/train/parallel.ts); float64 and tiny products stay in plain TypeScript
 * (`ops.ts`), and so does everything where the wasm module cannot be loaded.
 */
import { trainRuntime, WASM_TRAIN_MAX_BYTES, withFrame } from './wasm-train.js';

/** below this many multiply-adds the copies cost more than they save */
const MIN_WORK = 1 << 14;

/** y [M, N] = x [M, K] · w [N, K]ᵀ (+ bias [N]); null when the wasm path is not available for this call */
export function gemmNT(x: Float32Array, w: Float32Array, bias: Float32Array | null, M: number, K: number, N: number): Float32Array | null {
  if (M * K * N < MIN_WORK || 4 * (M * K + N * K + M * N) > WASM_TRAIN_MAX_BYTES) return null;
  const r = trainRuntime();
  if (!r) return null;
  return withFrame(r, (f) => {
    const xo = f.put(x.subarray(0, M * K));
    const wo = f.put(w.subarray(0, N * K));
    const bo = f.put(bias);
    const yo = f.alloc(M * N);
    r.kernels.linear_f32(xo, wo, bo, yo, M, K, N, 0, N);
    return f.take(yo, M * N);
  });
}

/**
 * The backward of y = x·Wᵀ for g = dy [M, N], x [M, K], w [N, K]: gx = g·W [M, K] (when `needX`) and
 * gw = gᵀ·x [N, K] (when `needW`); null when the wasm path is not available for this call.
 */
export function linearBackward(
  g: Float32Array, x: Float32Array, w: Float32Array, M: number, K: number, N: number, needX: boolean, needW: boolean,
): { gx: Float32Array | null; gw: Float32Array | null } | null {
  if (M * K * N < MIN_WORK || 4 * 2 * (M * K + N * K + M * N) > WASM_TRAIN_MAX_BYTES) return null;
  const r = trainRuntime();
  if (!r) return null;
  const k = r.kernels;
  return withFrame(r, (f) => {
    const go = f.put(g.subarray(0, M * N));
    let gx: Float32Array | null = null;
    let gw: Float32Array | null = null;
    if (needX) {
      const wo = f.put(w.subarray(0, N * K));
      const wt = f.alloc(N * K);
      k.transpose_f32(wo, wt, N, K); // Wᵀ [K, N]
      const gxo = f.alloc(M * K);
      k.linear_f32(go, wt, 0, gxo, M, N, K, 0, K);
      gx = f.take(gxo, M * K);
    }
    if (needW) {
      const xo = f.put(x.subarray(0, M * K));
      const gt = f.alloc(M * N);
      const xt = f.alloc(M * K);
      k.transpose_f32(go, gt, M, N); // gᵀ [N, M]
      k.transpose_f32(xo, xt, M, K); // xᵀ [K, M]
      const gwo = f.alloc(N * K);
      k.linear_f32(gt, xt, 0, gwo, N, M, K, 0, K);
      gw = f.take(gwo, N * K);
    }
    return { gx, gw };
  });
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
