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

/** RMSNorm over rows of x[M, H]: w · x · rsqrt(mean(x²) + eps); no weight when w is null */
export function rmsNorm(x: Float32Array, w: Float32Array | null, eps: number, M: number, H: number): Float32Array {
  const y = new Float32Array(M * H);
  for (let i = 0; i < M; i++) {
    const o = i * H;
    let ss = 0;
    for (let k = 0; k < H; k++) ss += x[o + k] * x[o + k];
    // HF: x.float() * rsqrt(var + eps) in float32, then weight * that
    const r = Math.fround(1 / Math.sqrt(Math.fround(ss / H) + eps));
    for (let k = 0; k < H; k++) y[o + k] = (w ? w[k] : 1) * Math.fround(x[o + k] * r);
  }
  return y;
}

/**
 * Gated RMSNorm (Mamba-2, norm_before_gate = false): g = x · silu(z); each group of `G` channels is
 * normalised on its own (G = W: HF's full-width norm); then times w.
 */
export function rmsNormGated(x: Float32Array, z: Float32Array, w: Float32Array, eps: number, M: number, W: number, G: number): Float32Array {
  const y = new Float32Array(M * W);
  for (let i = 0; i < M; i++) {
    for (let g0 = 0; g0 < W; g0 += G) {
      const o = i * W + g0;
      let ss = 0;
      for (let k = 0; k < G; k++) {
        const zv = z[o + k];
        const v = Math.fround(x[o + k] * Math.fround(zv / (1 + Math.exp(-zv))));
        y[o + k] = v;
        ss += v * v;
      }
      const r = Math.fround(1 / Math.sqrt(Math.fround(ss / G) + eps));
      for (let k = 0; k < G; k++) y[o + k] = w[g0 + k] * Math.fround(y[o + k] * r);
    }
  }
  return y;
}

/** Rotary embedding, rotate-half convention, on the first `rd` channels of every head: x [rows, H, hd]. */
export function rope(x: Float32Array, positions: Int32Array, rows: number, H: number, hd: number, rd: number, theta: number): Float32Array {
  const y = x.slice();
  const half = rd / 2;
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / Math.pow(theta, (2 * i) / rd);
  const cos = new Float32Array(half);
  const sin = new Float32Array(half);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < half; i++) {
      const f = Math.fround(positions[r] * invFreq[i]); // HF: float32 outer product, then cos/sin
      cos[i] = Math.cos(f);
      sin[i] = Math.sin(f);
    }
    for (let h = 0; h < H; h++) {
      const o = (r * H + h) * hd;
      for (let i = 0; i < half; i++) {
        const a = x[o + i];
        const b = x[o + i + half];
        y[o + i] = a * cos[i] - b * sin[i];
        y[o + i + half] = b * cos[i] + a * sin[i];
      }
    }
  }
  return y;
}

/**
 * Causal grouped-query attention. q [b, L, Hq, hd]; keys/values either the new ones [b, L, Hkv, hd]
 * (no cache) or a cache [b, T, Hkv, hd] into which the new ones are first written at pastLen[r].
 */
export function attention(
  q: Float32Array, k: Float32Array, v: Float32Array, cacheK: Float32Array | null, cacheV: Float32Array | null,
  pastLen: readonly number[], b: number, L: number, Hq: number, Hkv: number, hd: number, T: number, scale: number,
): Float32Array {
  const out = new Float32Array(b * L * Hq * hd);
  const rowKV = Hkv * hd;
  let K = k, V = v, cap = L;
  if (cacheK && cacheV) {
    for (let r = 0; r < b; r++) {
      for (let t = 0; t < L; t++) {
        const src = (r * L + t) * rowKV;
        const dst = (r * T + pastLen[r] + t) * rowKV;
        cacheK.set(k.subarray(src, src + rowKV), dst);
        cacheV.set(v.subarray(src, src + rowKV), dst);
      }
    }
    K = cacheK; V = cacheV; cap = T;
  }
  const group = Hq / Hkv;
  const scores = new Float64Array(cap);
  const acc = new Float64Array(hd);
  for (let r = 0; r < b; r++) {
    const past = cacheK ? pastLen[r] : 0;
    for (let t = 0; t < L; t++) {
      const n = past + t + 1; // keys 0 … past+t
      for (let h = 0; h < Hq; h++) {
        const kvh = Math.floor(h / group);
        const qo = ((r * L + t) * Hq + h) * hd;
        let max = -Infinity;
        for (let s = 0; s < n; s++) {
          const ko = (r * cap + s) * rowKV + kvh * hd;
          let d = 0;
          for (let i = 0; i < hd; i++) d += q[qo + i] * K[ko + i];
          d *= scale;
          scores[s] = d;
          if (d > max) max = d;
        }
        let sum = 0;
        for (let s = 0; s < n; s++) {
          const e = Math.exp(scores[s] - max);
          scores[s] = e;
          sum += e;
        }
        acc.fill(0);
        for (let s = 0; s < n; s++) {
          const w = scores[s] / sum;
          const vo = (r * cap + s) * rowKV + kvh * hd;
          for (let i = 0; i < hd; i++) acc[i] += w * V[vo + i];
        }
        for (let i = 0; i < hd; i++) out[qo + i] = acc[i];
      }
    }
  }
  return out;
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
