/**
 * Plain TypeScript float32 kernels: the readable reference the faster backends are tested against.
 * Accumulation is in JS numbers (float64), results are stored as float32.
 */

/**
 * y[M, N] = x[M, K] · w[N, K]ᵀ (+ bias). Register tiles of 2 rows of x × 4 rows of w (8 independent
 * accumulators, each x and w value loaded once per tile), over blocks of 256 rows of w so that a block
 * stays in cache while every row of x passes over it. Measured here: ~2× the one-accumulator loop.
 */
export function linear(x: Float32Array, w: Float32Array, bias: Float32Array | null, M: number, K: number, N: number): Float32Array {
  const y = new Float32Array(M * N);
  const JB = 256;
  for (let jb = 0; jb < N; jb += JB) {
    const je = Math.min(N, jb + JB);
    const j4 = jb + ((je - jb) & ~3);
    let i = 0;
    for (; i + 2 <= M; i += 2) {
      const x0 = i * K, x1 = x0 + K;
      let j = jb;
      for (; j < j4; j += 4) {
        const o0 = j * K, o1 = o0 + K, o2 = o1 + K, o3 = o2 + K;
        let a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
        for (let k = 0; k < K; k++) {
          const u = x[x0 + k], v = x[x1 + k];
          const w0 = w[o0 + k], w1 = w[o1 + k], w2 = w[o2 + k], w3 = w[o3 + k];
          a0 += u * w0; a1 += u * w1; a2 += u * w2; a3 += u * w3;
          b0 += v * w0; b1 += v * w1; b2 += v * w2; b3 += v * w3;
        }
        const r0 = i * N + j, r1 = r0 + N;
        y[r0] = a0; y[r0 + 1] = a1; y[r0 + 2] = a2; y[r0 + 3] = a3;
        y[r1] = b0; y[r1 + 1] = b1; y[r1 + 2] = b2; y[r1 + 3] = b3;
      }
      for (; j < je; j++) {
        const o = j * K;
        let a = 0, b = 0;
        for (let k = 0; k < K; k++) {
          a += x[x0 + k] * w[o + k];
          b += x[x1 + k] * w[o + k];
        }
        y[i * N + j] = a;
        y[(i + 1) * N + j] = b;
      }
    }
    if (i < M) {
      // last odd row (and batch-1 decode): 1 row of x × 4 rows of w
      const x0 = i * K;
      let j = jb;
      for (; j < j4; j += 4) {
        const o0 = j * K, o1 = o0 + K, o2 = o1 + K, o3 = o2 + K;
        let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (let k = 0; k < K; k++) {
          const u = x[x0 + k];
          a0 += u * w[o0 + k]; a1 += u * w[o1 + k]; a2 += u * w[o2 + k]; a3 += u * w[o3 + k];
        }
        const r0 = i * N + j;
        y[r0] = a0; y[r0 + 1] = a1; y[r0 + 2] = a2; y[r0 + 3] = a3;
      }
      for (; j < je; j++) {
        const o = j * K;
        let a = 0;
        for (let k = 0; k < K; k++) a += x[x0 + k] * w[o + k];
        y[i * N + j] = a;
      }
    }
  }
  if (bias) for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) y[i * N + j] += bias[j];
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

/**
 * RoPE's cos and sin per row: [rows, rd], each row cos of the rd/2 frequencies, then their sin (f32; HF: float32
 * inverse frequencies and outer product, then cos/sin). One place for them: `rope` below and the wasm backend's
 * decode attention layer (which rotates in wasm with these values).
 */
export function ropeTable(positions: Int32Array, rd: number, theta: number): Float32Array {
  const half = rd / 2;
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / Math.pow(theta, (2 * i) / rd);
  const cs = new Float32Array(positions.length * rd);
  for (let r = 0; r < positions.length; r++) {
    for (let i = 0; i < half; i++) {
      const f = Math.fround(positions[r] * invFreq[i]);
      cs[r * rd + i] = Math.cos(f);
      cs[r * rd + half + i] = Math.sin(f);
    }
  }
  return cs;
}

/** Rotary embedding, rotate-half convention, on the first `rd` channels of every head: x [rows, H, hd]. */
export function rope(x: Float32Array, positions: Int32Array, rows: number, H: number, hd: number, rd: number, theta: number): Float32Array {
  const y = x.slice();
  const half = rd / 2;
  const cs = ropeTable(positions, rd, theta); // (one position per row)
  for (let r = 0; r < rows; r++) {
    const c0 = r * rd, s0 = c0 + half;
    for (let h = 0; h < H; h++) {
      const o = (r * H + h) * hd;
      for (let i = 0; i < half; i++) {
        const a = x[o + i];
        const b = x[o + i + half];
        y[o + i] = a * cs[c0 + i] - b * cs[s0 + i];
        y[o + i + half] = b * cs[c0 + i] + a * cs[s0 + i];
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
