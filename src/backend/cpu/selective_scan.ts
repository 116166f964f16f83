/**
 * Selective scan (S6, Mamba §3.2 Algorithm 2) on flat float32 arrays, channel-last layout.
 *
 *   Δ_t = softplus(δ_t + bias)                    (per channel d)
 *   h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t B_t u_t      (ZOH for A, Euler for B — as HF and the official kernels)
 *   y_t = C_t · h_t + D u_t,   y_t ← y_t · silu(z_t)
 *
 * Two algorithms with identical results up to round-off:
 * - `scanSequential`: one pass over t. The reference (and the decode path, L = 1).
 * - `scanChunked`: the two-level parallel scan. The recurrence h_t = a_t h_{t−1} + b_t is associative in
 *   (a, b); with a_t = exp(Δ_t A) the running product over a chunk is exp(A · ΣΔ). So:
 *     1. each chunk is scanned from h = 0, keeping local outputs, its final local state and ΣΔ per step
 *        (chunks are independent: the parallel part);
 *     2. carries are combined across chunks: H_c = exp(A ΣΔ_c) ⊙ H_{c−1} + hloc_c (short sequential pass);
 *     3. each chunk adds the carried-in state's contribution y_t += C_t · (exp(A ΣΔ_{≤t}) ⊙ H_{c−1})
 *        (independent again).
 *   On one thread it does about twice the work of the sequential scan; its value is that phases 1 and 3
 *   run on as many workers/GPU invocations as there are chunks.
 */

export interface ScanArrays {
  batch: number;
  seqLen: number;
  /** channels D */
  dim: number;
  /** state size N */
  dState: number;
  u: Float32Array; // [b, L, D]
  delta: Float32Array; // [b, L, D]
  A: Float32Array; // [D, N]
  B: Float32Array; // [b, L, N]
  C: Float32Array; // [b, L, N]
  D: Float32Array | null; // [D]
  z: Float32Array | null; // [b, L, D]
  deltaBias: Float32Array | null; // [D]
  deltaSoftplus: boolean;
  /** [b, D, N] in/out, or null */
  state: Float32Array | null;
}

/** softplus with PyTorch's threshold (returns x for x > 20) */
export function softplus(x: number): number {
  return x > 20 ? x : Math.log1p(Math.exp(x));
}

function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** Δ after bias and softplus, [b, L, D] */
function computeDelta(a: ScanArrays): Float32Array {
  const { batch, seqLen, dim, delta, deltaBias, deltaSoftplus } = a;
  const out = new Float32Array(batch * seqLen * dim);
  for (let r = 0; r < batch * seqLen; r++) {
    const o = r * dim;
    for (let d = 0; d < dim; d++) {
      let v = delta[o + d] + (deltaBias ? deltaBias[d] : 0);
      if (deltaSoftplus) v = softplus(v);
      out[o + d] = v;
    }
  }
  return out;
}

/** y ← (y + D u) · silu(z), in place */
function finishOutput(a: ScanArrays, y: Float32Array): void {
  const { u, D, z, dim } = a;
  const n = y.length;
  for (let i = 0; i < n; i++) {
    let v = y[i];
    if (D) v += D[i % dim] * u[i];
    if (z) v *= silu(z[i]);
    y[i] = v;
  }
}

export function scanSequential(a: ScanArrays): Float32Array {
  const { batch, seqLen: L, dim, dState: N, u, A, B, C } = a;
  const dt = computeDelta(a);
  const y = new Float32Array(batch * L * dim);
  const h = new Float32Array(dim * N);
  for (let b = 0; b < batch; b++) {
    if (a.state) h.set(a.state.subarray(b * dim * N, (b + 1) * dim * N));
    else h.fill(0);
    for (let t = 0; t < L; t++) {
      const row = (b * L + t) * dim;
      const bc = (b * L + t) * N;
      for (let d = 0; d < dim; d++) {
        const dtv = dt[row + d];
        const du = dtv * u[row + d];
        const hd = d * N;
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const hv = Math.exp(dtv * A[hd + n]) * h[hd + n] + du * B[bc + n];
          h[hd + n] = hv;
          acc += hv * C[bc + n];
        }
        y[row + d] = acc;
      }
    }
    if (a.state) a.state.set(h, b * dim * N);
  }
  finishOutput(a, y);
  return y;
}

export function scanChunked(a: ScanArrays, chunkSize: number): Float32Array {
  const { batch, seqLen: L, dim, dState: N, u, A, B, C } = a;
  const T = Math.max(1, Math.floor(chunkSize));
  const nChunks = Math.ceil(L / T);
  const dt = computeDelta(a);
  const y = new Float32Array(batch * L * dim);
  const DN = dim * N;
  // per chunk: final local state [D, N], and cumulative Δ within the chunk per step [L, D] (one batch row)
  const hLocal = new Float32Array(nChunks * DN);
  const cumDt = new Float32Array(L * dim);
  const carry = new Float32Array(DN);
  for (let b = 0; b < batch; b++) {
    // phase 1: independent local scans from zero state
    for (let c = 0; c < nChunks; c++) {
      const h = hLocal.subarray(c * DN, (c + 1) * DN);
      const t0 = c * T;
      const t1 = Math.min(L, t0 + T);
      for (let t = t0; t < t1; t++) {
        const row = (b * L + t) * dim;
        const bc = (b * L + t) * N;
        for (let d = 0; d < dim; d++) {
          const dtv = dt[row + d];
          cumDt[t * dim + d] = (t > t0 ? cumDt[(t - 1) * dim + d] : 0) + dtv;
          const du = dtv * u[row + d];
          const hd = d * N;
          let acc = 0;
          for (let n = 0; n < N; n++) {
            const hv = Math.exp(dtv * A[hd + n]) * h[hd + n] + du * B[bc + n];
            h[hd + n] = hv;
            acc += hv * C[bc + n];
          }
          y[row + d] = acc;
        }
      }
    }
    // phase 2: combine carries. carry = state entering chunk c.
    if (a.state) carry.set(a.state.subarray(b * DN, (b + 1) * DN));
    else carry.fill(0);
    for (let c = 0; c < nChunks; c++) {
      const t0 = c * T;
      const t1 = Math.min(L, t0 + T);
      // phase 3 for chunk c (uses the carry entering it): y_t += C_t · (exp(A·cumΔ_t) ⊙ carry)
      let nonzero = false;
      for (let i = 0; i < DN; i++) if (carry[i] !== 0) { nonzero = true; break; }
      if (nonzero) {
        for (let t = t0; t < t1; t++) {
          const row = (b * L + t) * dim;
          const bc = (b * L + t) * N;
          for (let d = 0; d < dim; d++) {
            const cd = cumDt[t * dim + d];
            const hd = d * N;
            let acc = 0;
            for (let n = 0; n < N; n++) acc += C[bc + n] * Math.exp(A[hd + n] * cd) * carry[hd + n];
            y[row + d] += acc;
          }
        }
      }
      // carry leaving chunk c
      const last = (t1 - 1) * dim;
      const hl = c * DN;
      for (let d = 0; d < dim; d++) {
        const total = cumDt[last + d];
        const hd = d * N;
        for (let n = 0; n < N; n++) carry[hd + n] = Math.exp(A[hd + n] * total) * carry[hd + n] + hLocal[hl + hd + n];
      }
    }
    if (a.state) a.state.set(carry, b * DN);
    hLocal.fill(0);
  }
  finishOutput(a, y);
  return y;
}
