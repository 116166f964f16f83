/**
 * SSD — Mamba-2's "state-space duality" layer (Mamba-2 paper, Dao & Gu 2024, §6 and Listing 1;
 * `mamba_ssm/modules/ssd_minimal.py`), on flat float32 arrays, in its three equivalent forms.
 *
 * Glossary (shapes use the reference digest's notation):
 *   b   batch             L   sequence length        t, s  time steps (t = output/query, s = input/key)
 *   nh  heads             hd  head dim (p indexes)   N     state size (n indexes)
 *   G   B/C groups        Q   chunk size             c     chunk index; l, s positions inside a chunk
 *   x   [b, L, nh, hd]    dt  [b, L, nh] (Δ > 0)     A     [nh] scalar per head, A < 0
 *   B,C [b, L, G, N]      D   [nh]                   h     state [b, nh, hd, N]
 * Head h reads the B/C of group g(h) = floor(h / (nh/G)) (group-major: heads 0..nh/G−1 share group 0, …),
 * as HF's `repeat_interleave` and the official kernels. (HF's older `B.repeat` used h % G: a bug for G > 1.)
 *
 * The model per head (scalar-identity A, hence "SSD": A_t = a_t I with a_t = exp(Δ_t A)):
 *   h_t = exp(Δ_t A) · h_{t−1} + Δ_t · x_t ⊗ B_t        ([hd, N]; ZOH for A, Euler for B, as HF/official)
 *   y_t = h_t C_t + D · x_t                              ([hd])
 *
 * Unrolled, with the log-decay a_k := Δ_k A and the segment sum  segsum(t, s) := Σ_{k=s+1..t} a_k  (s ≤ t):
 *   y_t = Σ_{s≤t} exp(segsum(t, s)) · (C_t · B_s) · Δ_s x_s  +  exp(Σ_{k≤t} a_k) · h_0 C_t  +  D x_t
 * i.e.  y = (L ∘ C Bᵀ) (Δ·x) + …  with the 1-semiseparable mask L[t, s] = exp(segsum(t, s)) for s ≤ t, 0 above
 * the diagonal: a causal "attention" whose mask is the SSM's decay. That is the duality.
 *
 * The three forms (identical up to round-off; all accumulate in float64):
 * - `ssdRecurrent`: the linear recurrence, O(L·hd·N) per head. The reference, and the decode path (L = 1).
 * - `ssdQuadratic`: the masked-attention form over the whole sequence, O(L²·(N + hd)) per head. Reference only.
 * - `ssdChunked`: the paper's chunked algorithm (§6, Listing 1). Split L into chunks of Q (the last one may be
 *   shorter); inside a chunk use the quadratic form, across chunks the recurrence on chunk states:
 *     (1) intra-chunk output, the diagonal blocks:  Y_diag[l] = Σ_{s≤l} exp(segsum(l, s)) (C_l · B_s) Δ_s x_s
 *     (2) chunk states, the B terms, decayed to the chunk end:  S_c = Σ_s exp(segsum(end, s)) Δ_s x_s ⊗ B_s
 *     (3) inter-chunk state passing, the A terms:  H_c = exp(Σ_{k ∈ chunk c} a_k) H_{c−1} + S_c,  H_{−1} = h_0
 *     (4) state → output, the C terms, decayed from the chunk start:
 *                                                   Y_off[l] = exp(Σ_{k=start..l} a_k) H_{c−1} C_l
 *   y = Y_diag + Y_off + D x; the final state is H_last. Steps 1, 2 and 4 are independent across chunks (the
 *   parallel, matmul-shaped part); only step 3 is sequential, over L/Q chunk states. Cost per head:
 *   O(L·Q·(N + hd)) (C Bᵀ within a chunk is computed once per group and shared by its heads).
 *   On one thread this runs chunk by chunk and head by head: step 1 for the chunk, then steps 4, 2, 3 one row
 *   p of the [hd, N] state at a time (4 reads the row of H_{c−1} before 3 overwrites it), so only the carried
 *   state of each head (nh·hd·N) is live, the row being worked on stays in L1, and scratch is allocated once
 *   per call. Single-threaded it does the recurrence's O(L·hd·N) work (steps 2 and 4) plus the O(L·Q·hd)
 *   diagonal blocks, so it is not faster than `ssdRecurrent` on one core; its value is that steps 1, 2 and 4
 *   are independent across chunks and shaped like matmuls (workers, SIMD, GPU).
 *
 * Numerics: every decay is exp of a sum of a_k over a range, accumulated directly (never exp(a)/exp(b), never a
 * difference of two long prefix sums); with Δ > 0 and A < 0 all such exponents are ≤ 0, so nothing overflows.
 *
 * dt processing (`processDt`) is separate: callers pass Δ = clamp(softplus(dt_raw + dt_bias), lo, hi), as the
 * kernels' `_chunk_cumsum_fwd` and HF's torch_forward do.
 */

export interface SsdArrays {
  batch: number;
  seqLen: number;
  nHeads: number;
  headDim: number;
  nGroups: number;
  dState: number;
  /** [b, L, nh, hd] */
  x: Float32Array;
  /** [b, L, nh]  step sizes, already processed (softplus(dt + dt_bias), clamped) — > 0 */
  dt: Float32Array;
  /** [nh]  (negative; A = -exp(A_log)) */
  A: Float32Array;
  /** [b, L, G, N] */
  B: Float32Array;
  /** [b, L, G, N] */
  C: Float32Array;
  /** [nh]  skip: y += D[h] * x */
  D: Float32Array | null;
  /** [b, nh, hd, N]: read as the initial state h0 (null = zeros), overwritten with the final state */
  state: Float32Array | null;
}

/** softplus with PyTorch's threshold (returns x for x > 20) */
function softplus(x: number): number {
  return x > 20 ? x : Math.log1p(Math.exp(x));
}

/**
 * dt processing shared by callers: out = clamp(softplus(dt + bias), lo, hi), softplus with PyTorch's threshold 20
 * (the kernels' `dt <= 20 ? softplus(dt) : dt`). `dtRaw` is [..., nh] (e.g. [b, L, nh]); `bias` is [nh].
 * Use `[0, Infinity]` for no limit (the default `dt_limit`/`time_step_limit`).
 */
export function processDt(
  dtRaw: Float32Array,
  bias: Float32Array | null,
  nHeads: number,
  limit: [number, number],
): Float32Array {
  if (!(Number.isInteger(nHeads) && nHeads > 0)) throw new Error(`processDt: nHeads must be a positive integer, got ${nHeads}`);
  if (dtRaw.length % nHeads !== 0) throw new Error(`processDt: dt length ${dtRaw.length} is not a multiple of nHeads ${nHeads}`);
  if (bias && bias.length !== nHeads) throw new Error(`processDt: bias length ${bias.length} != nHeads ${nHeads}`);
  const [lo, hi] = limit;
  if (!(lo <= hi)) throw new Error(`processDt: bad limit [${lo}, ${hi}]`);
  const out = new Float32Array(dtRaw.length);
  for (let i = 0; i < dtRaw.length; i += nHeads) {
    for (let h = 0; h < nHeads; h++) {
      const v = softplus(dtRaw[i + h] + (bias ? bias[h] : 0));
      out[i + h] = v < lo ? lo : v > hi ? hi : v;
    }
  }
  return out;
}

/** validate shapes; returns heads per group */
function checkArrays(a: SsdArrays, fn: string): number {
  const { batch, seqLen: L, nHeads: nh, headDim: hd, nGroups: G, dState: N } = a;
  for (const [k, v] of Object.entries({ batch, seqLen: L, nHeads: nh, headDim: hd, nGroups: G, dState: N })) {
    if (!Number.isInteger(v) || v < (k === 'seqLen' ? 0 : 1)) throw new Error(`${fn}: ${k} must be a positive integer, got ${v}`);
  }
  if (nh % G !== 0) throw new Error(`${fn}: nHeads ${nh} is not a multiple of nGroups ${G}`);
  const want = (name: string, arr: Float32Array | null, n: number): void => {
    if (arr && arr.length !== n) throw new Error(`${fn}: ${name} has length ${arr.length}, expected ${n}`);
  };
  want('x', a.x, batch * L * nh * hd);
  want('dt', a.dt, batch * L * nh);
  want('A', a.A, nh);
  want('B', a.B, batch * L * G * N);
  want('C', a.C, batch * L * G * N);
  want('D', a.D, nh);
  want('state', a.state, batch * nh * hd * N);
  return nh / G;
}

/** y += D[h] x, in place */
function addSkip(a: SsdArrays, y: Float32Array): void {
  const { D, x, nHeads: nh, headDim: hd } = a;
  if (!D) return;
  const rows = y.length / hd;
  for (let r = 0; r < rows; r++) {
    const d = D[r % nh];
    const o = r * hd;
    for (let p = 0; p < hd; p++) y[o + p] += d * x[o + p];
  }
}

/**
 * The recurrence: h_t = exp(Δ_t A) h_{t−1} + Δ_t x_t ⊗ B_t;  y_t = h_t C_t + D x_t.  Returns y [b, L, nh, hd];
 * reads h_0 from `a.state` (zeros if null) and writes the final state back to it.
 */
export function ssdRecurrent(a: SsdArrays): Float32Array {
  const hpg = checkArrays(a, 'ssdRecurrent');
  const { batch, seqLen: L, nHeads: nh, headDim: hd, nGroups: G, dState: N, x, dt, A, B, C } = a;
  const HN = hd * N;
  const y = new Float32Array(batch * L * nh * hd);
  const h = new Float64Array(HN);
  for (let b = 0; b < batch; b++) {
    for (let hh = 0; hh < nh; hh++) {
      const g = Math.floor(hh / hpg);
      const so = (b * nh + hh) * HN;
      if (a.state) for (let i = 0; i < HN; i++) h[i] = a.state[so + i];
      else h.fill(0);
      const Ah = A[hh];
      for (let t = 0; t < L; t++) {
        const r = b * L + t;
        const dtv = dt[r * nh + hh];
        const dA = Math.exp(dtv * Ah);
        const xo = (r * nh + hh) * hd;
        const bc = (r * G + g) * N;
        for (let p = 0; p < hd; p++) {
          const dx = dtv * x[xo + p];
          const hp = p * N;
          let acc = 0;
          for (let n = 0; n < N; n++) {
            const v = dA * h[hp + n] + dx * B[bc + n];
            h[hp + n] = v;
            acc += v * C[bc + n];
          }
          y[xo + p] = acc;
        }
      }
      if (a.state) for (let i = 0; i < HN; i++) a.state[so + i] = h[i];
    }
  }
  addSkip(a, y);
  return y;
}

/**
 * The masked-attention (quadratic) dual form over the whole sequence, per head:
 *   y = (L ∘ C Bᵀ)(Δ·x) + C_t · (exp(Σ_{k≤t} a_k) h_0) + D x,   L[t, s] = exp(Σ_{k=s+1..t} a_k) for s ≤ t, else 0;
 *   final state = Σ_s exp(Σ_{k=s+1..L−1} a_k) Δ_s x_s ⊗ B_s + exp(Σ_k a_k) h_0.
 * O(L²) time and memory: a reference for tests, not a kernel.
 */
export function ssdQuadratic(a: SsdArrays): Float32Array {
  const hpg = checkArrays(a, 'ssdQuadratic');
  const { batch, seqLen: L, nHeads: nh, headDim: hd, nGroups: G, dState: N, x, dt, A, B, C } = a;
  const HN = hd * N;
  const y = new Float32Array(batch * L * nh * hd);
  const CB = new Float64Array(L * L); // C_t · B_s for s ≤ t, one group
  const M = new Float64Array(L * L); // L ∘ C Bᵀ, one head
  const la = new Float64Array(L); // a_t = Δ_t A
  const h0 = new Float64Array(HN);
  const hT = new Float64Array(HN);
  const yAcc = new Float64Array(hd);
  for (let b = 0; b < batch; b++) {
    for (let g = 0; g < G; g++) {
      for (let t = 0; t < L; t++) {
        const ct = ((b * L + t) * G + g) * N;
        for (let s = 0; s <= t; s++) {
          const bs = ((b * L + s) * G + g) * N;
          let acc = 0;
          for (let n = 0; n < N; n++) acc += C[ct + n] * B[bs + n];
          CB[t * L + s] = acc;
        }
      }
      for (let hh = g * hpg; hh < (g + 1) * hpg; hh++) {
        const Ah = A[hh];
        for (let t = 0; t < L; t++) la[t] = dt[(b * L + t) * nh + hh] * Ah;
        // the mask, with segsum(t, s) accumulated from the diagonal outwards (stable)
        for (let t = 0; t < L; t++) {
          let seg = 0; // Σ_{k=s+1..t} a_k
          for (let s = t; s >= 0; s--) {
            M[t * L + s] = Math.exp(seg) * CB[t * L + s];
            seg += la[s];
          }
        }
        const so = (b * nh + hh) * HN;
        if (a.state) for (let i = 0; i < HN; i++) h0[i] = a.state[so + i];
        else h0.fill(0);
        let prefix = 0; // Σ_{k≤t} a_k
        for (let t = 0; t < L; t++) {
          prefix += la[t];
          // y_t = Σ_s M[t, s] Δ_s x_s
          yAcc.fill(0);
          for (let s = 0; s <= t; s++) {
            const r = b * L + s;
            const m = M[t * L + s] * dt[r * nh + hh];
            const xs = (r * nh + hh) * hd;
            for (let p = 0; p < hd; p++) yAcc[p] += m * x[xs + p];
          }
          // + C_t · (exp(Σ_{k≤t} a_k) h_0)
          const ct = ((b * L + t) * G + g) * N;
          const decay0 = Math.exp(prefix);
          const yo = ((b * L + t) * nh + hh) * hd;
          for (let p = 0; p < hd; p++) {
            let acc = 0;
            for (let n = 0; n < N; n++) acc += h0[p * N + n] * C[ct + n];
            y[yo + p] = yAcc[p] + decay0 * acc;
          }
        }
        if (a.state) {
          // final state: Σ_s exp(Σ_{k=s+1..L−1} a_k) Δ_s x_s ⊗ B_s + exp(Σ_k a_k) h_0
          let suffix = 0; // Σ_{k=s+1..L−1} a_k
          hT.fill(0);
          for (let s = L - 1; s >= 0; s--) {
            const r = b * L + s;
            const w = Math.exp(suffix) * dt[r * nh + hh];
            const xs = (r * nh + hh) * hd;
            const bs = (r * G + g) * N;
            for (let p = 0; p < hd; p++) {
              const wx = w * x[xs + p];
              for (let n = 0; n < N; n++) hT[p * N + n] += wx * B[bs + n];
            }
            suffix += la[s];
          }
          const decayAll = Math.exp(suffix);
          for (let i = 0; i < HN; i++) a.state[so + i] = hT[i] + decayAll * h0[i];
        }
      }
    }
  }
  addSkip(a, y);
  return y;
}

/**
 * The chunked SSD algorithm (Mamba-2 paper §6 / Listing 1, `ssd_minimal_discrete`; the CPU prefill kernel).
 * Four steps per chunk — (1) diagonal blocks, (2) chunk states, (3) state passing, (4) state → output — see the
 * file comment. Any chunkSize ≥ 1 works: the last chunk may be shorter, and chunkSize > L means one chunk.
 * Returns y [b, L, nh, hd]; reads h_0 from `a.state` (zeros if null) and writes the final state back to it.
 */
export function ssdChunked(a: SsdArrays, chunkSize: number): Float32Array {
  checkArrays(a, 'ssdChunked');
  if (!(Number.isInteger(chunkSize) && chunkSize >= 1)) throw new Error(`ssdChunked: chunkSize must be a positive integer, got ${chunkSize}`);
  const y = new Float32Array(a.batch * a.seqLen * a.nHeads * a.headDim);
  ssdChunkedInto({ ...a, D: null }, chunkSize, y, null);
  addSkip(a, y);
  return y;
}

/** ssdChunked's arrays in either precision (the training op runs it on float64 data for gradient checks) */
export type SsdChunkedArrays = Omit<SsdArrays, 'x' | 'dt' | 'A' | 'B' | 'C' | 'D' | 'state'> & {
  x: Float32Array | Float64Array;
  dt: Float32Array | Float64Array;
  A: Float32Array | Float64Array;
  B: Float32Array | Float64Array;
  C: Float32Array | Float64Array;
  D: Float32Array | Float64Array | null;
  state: Float32Array | Float64Array | null;
};

/**
 * The chunked algorithm into `y` (unchecked arrays: the callers check them). The D skip, when given, is added with
 * each output in float64 (one rounding). `chunkStates` [b, ⌈L/Q⌉, nh, hd, N], when given, receives the state
 * entering each chunk: the checkpoints the training op's backward recomputes from.
 */
export function ssdChunkedInto(a: SsdChunkedArrays, chunkSize: number, y: Float32Array | Float64Array, chunkStates: Float64Array | null): void {
  const { batch, seqLen: L, nHeads: nh, headDim: hd, nGroups: G, dState: N, x, dt, A, B, C, D, state } = a;
  const hpg = nh / G;
  const HN = hd * N;
  const Q = Math.max(1, Math.min(chunkSize, L));
  const nC = Math.max(1, Math.ceil(L / Q));
  if (L === 0) return;

  // scratch, allocated once
  const H = new Float64Array(nh * HN); // carried state per head: H_{c−1} entering the current chunk
  const Srow = new Float64Array(N); // step 2's chunk state, one row p of one head
  const CB = new Float64Array(Q * Q); // C_l · B_s (s ≤ l) for the current chunk and group
  const la = new Float64Array(Q); // a_l = Δ_l A within the chunk, one head
  const dtc = new Float64Array(Q); // Δ_l within the chunk, one head
  const pre = new Float64Array(Q); // Σ_{k=start..l} a_k
  const eOut = new Float64Array(Q); // step 4's decays exp(pre[l])
  const wS = new Float64Array(Q); // step 2's weights (decay to the chunk end · Δ_s)
  const W = new Float64Array(Q); // step 1's row weights for the current l (mask · Δ_s)
  const Yc = new Float64Array(Q * hd); // the chunk's output for one head, [Q, hd]

  for (let b = 0; b < batch; b++) {
    if (state) for (let i = 0; i < nh * HN; i++) H[i] = state[b * nh * HN + i];
    else H.fill(0);

    for (let t0 = 0, ci = 0; t0 < L; t0 += Q, ci++) {
      const q = Math.min(Q, L - t0); // this chunk's length
      if (chunkStates) chunkStates.set(H, (b * nC + ci) * nh * HN);
      for (let g = 0; g < G; g++) {
        // C Bᵀ within the chunk (lower triangle), shared by the group's heads
        for (let l = 0; l < q; l++) {
          const cl = ((b * L + t0 + l) * G + g) * N;
          for (let s = 0; s <= l; s++) {
            const bs = ((b * L + t0 + s) * G + g) * N;
            let acc = 0;
            for (let n = 0; n < N; n++) acc += C[cl + n] * B[bs + n];
            CB[l * Q + s] = acc;
          }
        }

        for (let hh = g * hpg; hh < (g + 1) * hpg; hh++) {
          const Ah = A[hh];
          let run = 0;
          for (let l = 0; l < q; l++) {
            const d = dt[(b * L + t0 + l) * nh + hh];
            dtc[l] = d;
            la[l] = d * Ah;
            run += la[l];
            pre[l] = run;
          }
          const Hh = H.subarray(hh * HN, (hh + 1) * HN);
          // decay weights, all from range sums accumulated directly:
          //   eOut[l] = exp(Σ_{k=start..l} a_k)            (step 4: from the chunk start)
          //   wS[s]   = exp(Σ_{k=s+1..end} a_k) · Δ_s      (step 2: to the chunk end)
          let suffix = 0;
          for (let s = q - 1; s >= 0; s--) {
            wS[s] = Math.exp(suffix) * dtc[s];
            suffix += la[s];
          }
          for (let l = 0; l < q; l++) eOut[l] = Math.exp(pre[l]);

          // (1) intra-chunk diagonal block: Y_diag[l] = Σ_{s≤l} exp(segsum(l, s)) (C_l · B_s) Δ_s x_s
          for (let l = 0; l < q; l++) {
            let seg = 0; // Σ_{k=s+1..l} a_k, accumulated outwards from the diagonal
            for (let s = l; s >= 0; s--) {
              W[s] = Math.exp(seg) * CB[l * Q + s] * dtc[s];
              seg += la[s];
            }
            const yl = l * hd;
            for (let p = 0; p < hd; p++) Yc[yl + p] = 0;
            for (let s = 0; s <= l; s++) {
              const w = W[s];
              const xs = ((b * L + t0 + s) * nh + hh) * hd;
              for (let p = 0; p < hd; p++) Yc[yl + p] += w * x[xs + p];
            }
          }

          // Steps 4, 2 and 3, one row p of the [hd, N] state at a time (so the row of H and of S stays in cache):
          //   (4) state → output:  Y_off[l, p] = eOut[l] · Σ_n H_{c−1}[p, n] C_l[n]
          //   (2) chunk state:     S_c[p, :] = Σ_s wS[s] x_s[p] B_s[:]
          //   (3) state passing:   H_c[p, :] = exp(Σ_{k ∈ chunk} a_k) H_{c−1}[p, :] + S_c[p, :]
          // (4) reads H_{c−1}[p] before (3) overwrites it, so the order within a row is 4, 2, 3.
          const decay = Math.exp(pre[q - 1]);
          for (let p = 0; p < hd; p++) {
            const hp = p * N;
            Srow.fill(0);
            for (let l = 0; l < q; l++) {
              const r = b * L + t0 + l;
              const bc = (r * G + g) * N;
              const wx = wS[l] * x[(r * nh + hh) * hd + p];
              let acc = 0;
              for (let n = 0; n < N; n++) {
                acc += Hh[hp + n] * C[bc + n];
                Srow[n] += wx * B[bc + n];
              }
              Yc[l * hd + p] += eOut[l] * acc;
            }
            for (let n = 0; n < N; n++) Hh[hp + n] = decay * Hh[hp + n] + Srow[n];
          }
          for (let l = 0; l < q; l++) {
            const yo = ((b * L + t0 + l) * nh + hh) * hd;
            if (D) for (let p = 0; p < hd; p++) y[yo + p] = Yc[l * hd + p] + D[hh] * x[yo + p];
            else for (let p = 0; p < hd; p++) y[yo + p] = Yc[l * hd + p];
          }
        }
      }
    }
    if (state) for (let i = 0; i < nh * HN; i++) state[b * nh * HN + i] = H[i];
  }
}
