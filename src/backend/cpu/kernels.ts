/**
 * Plain TypeScript float32 kernels: the readable reference the faster backends are tested against.
 * Accumulation is in JS numbers (float64), results are stored as float32.
 */

/** y[M, N] = x[M, K] · w[N, K]ᵀ (+ bias). Four rows of x share each pass over a row of w. */
export function linear(x: Float32Array, w: Float32Array, bias: Float32Array | null, M: number, K: number, N: number): Float32Array {
  const y = new Float32Array(M * N);
  let i = 0;
  for (; i + 4 <= M; i += 4) {
    const x0 = i * K, x1 = x0 + K, x2 = x1 + K, x3 = x2 + K;
    for (let j = 0; j < N; j++) {
      const wo = j * K;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0; k < K; k++) {
        const wv = w[wo + k];
        s0 += x[x0 + k] * wv;
        s1 += x[x1 + k] * wv;
        s2 += x[x2 + k] * wv;
        s3 += x[x3 + k] * wv;
      }
      const bv = bias ? bias[j] : 0;
      y[i * N + j] = s0 + bv;
      y[(i + 1) * N + j] = s1 + bv;
      y[(i + 2) * N + j] = s2 + bv;
      y[(i + 3) * N + j] = s3 + bv;
    }
  }
  for (; i < M; i++) {
    const xo = i * K;
    for (let j = 0; j < N; j++) {
      const wo = j * K;
      let s0 = 0, s1 = 0;
      let k = 0;
      for (; k + 2 <= K; k += 2) {
        s0 += x[xo + k] * w[wo + k];
        s1 += x[xo + k + 1] * w[wo + k + 1];
      }
      if (k < K) s0 += x[xo + k] * w[wo + k];
      y[i * N + j] = s0 + s1 + (bias ? bias[j] : 0);
    }
  }
  return y;
}

/** RMSNorm over rows of x[M, H]: w · x · rsqrt(mean(x²) + eps) */
export function rmsNorm(x: Float32Array, w: Float32Array, eps: number, M: number, H: number): Float32Array {
  const y = new Float32Array(M * H);
  for (let i = 0; i < M; i++) {
    const o = i * H;
    let ss = 0;
    for (let k = 0; k < H; k++) ss += x[o + k] * x[o + k];
    // HF: x.float() * rsqrt(var + eps) in float32, then weight * that
    const r = Math.fround(1 / Math.sqrt(Math.fround(ss / H) + eps));
    for (let k = 0; k < H; k++) y[o + k] = w[k] * Math.fround(x[o + k] * r);
  }
  return y;
}

/**
 * Causal depthwise conv1d over time, channel-last x[b, L, C], kernel w[C, K]:
 *   out[t, c] = act(bias[c] + Σ_k w[c, k] · x[t − (K−1) + k, c])
 * History before t = 0 comes from `state` [b, C, K] (slot K−1 = newest input) or is zero.
 * When `state` is given it is overwritten with the window of the last K inputs.
 */
export function causalConv1d(
  x: Float32Array, w: Float32Array, bias: Float32Array | null, state: Float32Array | null,
  silu: boolean, batch: number, L: number, C: number, K: number,
): Float32Array {
  const y = new Float32Array(batch * L * C);
  // padded[c][j], j = 0..K−2+L: K−1 history values followed by the L inputs of channel c
  const P = K - 1 + L;
  const padded = new Float32Array(P);
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < C; c++) {
      const so = (b * C + c) * K;
      for (let j = 0; j < K - 1; j++) padded[j] = state ? state[so + j + 1] : 0;
      for (let t = 0; t < L; t++) padded[K - 1 + t] = x[(b * L + t) * C + c];
      const wo = c * K;
      const bv = bias ? bias[c] : 0;
      for (let t = 0; t < L; t++) {
        let s = bv;
        for (let k = 0; k < K; k++) s += w[wo + k] * padded[t + k];
        y[(b * L + t) * C + c] = silu ? s / (1 + Math.exp(-s)) : s;
      }
      if (state) for (let k = 0; k < K; k++) state[so + k] = padded[P - K + k];
    }
  }
  return y;
}
