// Training kernels of the depthwise causal conv1d (Mamba's short convolution, optionally followed by silu), f32,
// 128-bit SIMD over channels.
//
// Oracle: `causalConv1d` in src/autograd/fused.ts (then `silu` of ops.ts when siluFlag ≠ 0). Layouts:
//   x, y, yPre, g, gx: [batch, L, C];  w, gw: [C, K];  bias, gb: [C] (bias 0: none; gb 0: not wanted)
//   yPre[t, c] = bias[c] + Σ_k w[c, k] · x[t − K + 1 + k, c]  (zero history);  y = silu(yPre) or yPre
// Every time step is a row of C contiguous channels, so the loops run over rows and, inside, over groups of 4
// channels with plain vector loads (the weights transposed once to [K, C] in scratch). Any K.
// scratch: conv_train_scratch(C, K) bytes. Single-threaded, like scan_train.ts.

import { ldz, stc, vexp, vsilu } from './simd';

/** bytes of scratch the kernels need */
export function conv_train_scratch(C: i32, K: i32): i32 {
  return (2 * K * (C + 4)) << 2;
}

// w [C, K] → wT [K, C]
function transposeW(w: usize, wT: usize, C: i32, K: i32): void {
  for (let c = 0; c < C; c++) for (let k = 0; k < K; k++) store<f32>(wT + ((<usize>k * <usize>C + <usize>c) << 2), load<f32>(w + ((<usize>c * <usize>K + <usize>k) << 2)));
}

/** forward: y (and yPre, when siluFlag ≠ 0 and yPre ≠ 0: the value before the silu) */
export function conv_train_fwd(
  x: usize, w: usize, bias: usize, y: usize, yPre: usize, scratch: usize,
  batch: i32, L: i32, C: i32, K: i32, siluFlag: i32,
): void {
  const wT = scratch;
  transposeW(w, wT, C, K);
  const rowB = <usize>C << 2;
  const zero = f32x4.splat(0.0);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < L; t++) {
      const r = <usize>(b * L + t) * rowB;
      const k0 = max(0, K - 1 - t);
      for (let c = 0; c < C; c += 4) {
        const nc = min(4, C - c);
        const co = <usize>c << 2;
        let acc = bias ? ldz(bias + co, nc) : zero;
        for (let k = k0; k < K; k++) {
          // x at time t − K + 1 + k
          const xr = r - <usize>(K - 1 - k) * rowB;
          acc = f32x4.add(acc, f32x4.mul(ldz(wT + <usize>k * rowB + co, nc), ldz(x + xr + co, nc)));
        }
        if (siluFlag) {
          if (yPre) stc(yPre + r + co, acc, nc);
          acc = vsilu(acc);
        }
        stc(y + r + co, acc, nc);
      }
    }
  }
}

/**
 * backward from the output gradient g (overwritten: with siluFlag ≠ 0 it becomes the gradient before the silu,
 * which needs yPre): gx (0: not wanted), gw [C, K] (0: not wanted), gb (0: not wanted)
 */
export function conv_train_bwd(
  x: usize, w: usize, yPre: usize, g: usize, gx: usize, gw: usize, gb: usize, scratch: usize,
  batch: i32, L: i32, C: i32, K: i32, siluFlag: i32,
): void {
  const wT = scratch;
  const gwT = scratch + ((<usize>K * <usize>(C + 4)) << 2);
  transposeW(w, wT, C, K);
  const rowB = <usize>C << 2;
  const n = batch * L;
  const zero = f32x4.splat(0.0);
  const one = f32x4.splat(1.0);
  if (siluFlag) {
    // g ← g · silu′(yPre), silu′(v) = s (1 + v (1 − s)), s = sigmoid(v)
    const total = n * C;
    for (let i = 0; i < total; i += 4) {
      const nc = min(4, total - i);
      const o = <usize>i << 2;
      const v = ldz(yPre + o, nc);
      const s = f32x4.div(one, f32x4.add(one, vexp(f32x4.neg(v))));
      stc(g + o, f32x4.mul(ldz(g + o, nc), f32x4.mul(s, f32x4.add(one, f32x4.mul(v, f32x4.sub(one, s))))), nc);
    }
  }
  if (gx) {
    // gx[s, c] = Σ_k g[s + K − 1 − k, c] · w[c, k]  (times < L)
    for (let b = 0; b < batch; b++) {
      for (let s = 0; s < L; s++) {
        const r = <usize>(b * L + s) * rowB;
        const k0 = max(0, s + K - L);
        for (let c = 0; c < C; c += 4) {
          const nc = min(4, C - c);
          const co = <usize>c << 2;
          let acc = zero;
          for (let k = k0; k < K; k++) {
            const gr = r + <usize>(K - 1 - k) * rowB;
            acc = f32x4.add(acc, f32x4.mul(ldz(wT + <usize>k * rowB + co, nc), ldz(g + gr + co, nc)));
          }
          stc(gx + r + co, acc, nc);
        }
      }
    }
  }
  if (gw) {
    // gw[c, k] = Σ_{b, t} g[t, c] · x[t − K + 1 + k, c]
    memory.fill(gwT, 0, (<usize>K * <usize>C) << 2);
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t < L; t++) {
        const r = <usize>(b * L + t) * rowB;
        const k0 = max(0, K - 1 - t);
        for (let k = k0; k < K; k++) {
          const xr = r - <usize>(K - 1 - k) * rowB;
          const wr = gwT + <usize>k * rowB;
          for (let c = 0; c < C; c += 4) {
            const nc = min(4, C - c);
            const co = <usize>c << 2;
            stc(wr + co, f32x4.add(ldz(wr + co, nc), f32x4.mul(ldz(g + r + co, nc), ldz(x + xr + co, nc))), nc);
          }
        }
      }
    }
    for (let c = 0; c < C; c++) for (let k = 0; k < K; k++) store<f32>(gw + ((<usize>c * <usize>K + <usize>k) << 2), load<f32>(gwT + ((<usize>k * <usize>C + <usize>c) << 2)));
  }
  if (gb) {
    memory.fill(gb, 0, <usize>C << 2);
    for (let i = 0; i < n; i++) {
      const r = <usize>i * rowB;
      for (let c = 0; c < C; c += 4) {
        const nc = min(4, C - c);
        const co = <usize>c << 2;
        stc(gb + co, f32x4.add(ldz(gb + co, nc), ldz(g + r + co, nc)), nc);
      }
    }
  }
}
