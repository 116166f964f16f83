/**
 * Differentiable Mamba-1 selective scan (S6) as one graph node with a hand-written backward.
 *
 *   Δ_t = softplus(δ_t + bias)  (or δ_t + bias)          per channel d
 *   h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t B_t u_t             h [D, N], h_{−1} = 0
 *   y_t = C_t · h_t + D u_t;   out_t = y_t · silu(z_t)
 *
 * Forward: the sequential scan (same math as `scanSequential` in src/backend/cpu/selective_scan.ts, state in
 * float64), saving only the state entering every chunk of `chunkSize` steps: O(b·D·N·L/chunk) memory (plus the
 * pre-gate y when z is given), as the official kernel's checkpointing.
 *
 * Backward, per batch row, chunks last to first: recompute the chunk's states (and exp(Δ_t A)) from its
 * checkpoint into an O(chunk·D·N) scratch, then run the adjoint recurrence backwards through it:
 *   dh_t = gy_t C_t + exp(Δ_{t+1} A) ⊙ dh_{t+1}
 *   gC_t = Σ_d gy_t[d] h_t[d, :]          gB_t = Σ_d dh_t[d, :] Δ_t[d] u_t[d]
 *   gu_t[d] = Δ_t[d] Σ_n dh_t[d, n] B_t[n] + D[d] gy_t[d]
 *   gΔ_t[d] = Σ_n dh_t[d, n] (A[d, n] exp(Δ_t A)[d, n] h_{t−1}[d, n] + B_t[n] u_t[d])
 *   gA[d, n] = Σ_t dh_t[d, n] Δ_t[d] exp(Δ_t A)[d, n] h_{t−1}[d, n]
 * and gδ = gΔ · softplus′, gbias = Σ gδ, gD = Σ gy·u, gz = g · y · silu′(z).
 * exp(Δ_t A) (one per state element and step, twice: forward and recompute) dominates the cost; it is `fastExp`
 * (float64-accurate, about twice Math.exp's speed), and the recompute keeps it for the adjoint pass.
 *
 * Float32 inputs run the same algorithm on the WebAssembly SIMD kernels (`fused-scan-wasm.ts`: f32 state, four
 * channels per vector); float64 inputs (gradient checks) and hosts without the wasm module run `selectiveScanJs`.
 */
import { expectRank, expectShape, fail, fastExp, fromF64, needsGrad, present, shp, sigm, softplus, softplusGrad } from './fused-common.js';
import { selectiveScanWasm } from './fused-scan-wasm.js';
import { accumulateOwned, type Arr, result, type Var, zerosLike } from './var.js';
import { allF32, trainRuntime, WASM_TRAIN_MAX_BYTES } from './wasm-train.js';

export interface ScanInputs {
  u: Var; // [b, L, D]
  delta: Var; // [b, L, D], before bias and softplus
  A: Var; // [D, N] (already −exp(A_log); the caller uses negExp)
  B: Var; // [b, L, N]
  C: Var; // [b, L, N]
  D: Var | null; // [D]
  z: Var | null; // [b, L, D] gate: y ← y·silu(z)
  deltaBias: Var | null; // [D]
  deltaSoftplus: boolean;
  /** recompute-checkpoint interval for the backward (default 64) */
  chunkSize?: number;
}

/**
 * Mamba-1 selective scan (S6). Backward recomputes states from per-chunk checkpoints, so memory stays
 * O(b·D·N·L/chunk) like the official kernel, not O(b·L·D·N).
 */
export function selectiveScan(a: ScanInputs): Var {
  const T = checkScan(a);
  const { u, delta, A, B, C, D, z, deltaBias } = a;
  const [b, L, Dm] = u.shape;
  const N = A.shape[1];
  // the backward's wasm memory: 8 arrays of [b, L, D] (inputs, output gradient, input gradients), 4 of [b, L, N],
  // the checkpoints; beyond WASM_TRAIN_MAX_BYTES (the 4 GiB wasm memory holds other things too) TypeScript runs it
  const bytes = 4 * (8 * b * L * Dm + 4 * b * L * N + b * Math.ceil(L / T) * Math.ceil(Dm / 4) * 4 * N);
  const f32 = allF32(u.data, delta.data, A.data, B.data, C.data, D?.data ?? null, z?.data ?? null, deltaBias?.data ?? null);
  const rt = f32 && bytes <= WASM_TRAIN_MAX_BYTES ? trainRuntime() : null;
  return rt ? selectiveScanWasm(rt, a, T) : selectiveScanJs(a);
}

/** validates the inputs of a selective scan; returns the checkpoint interval */
function checkScan(a: ScanInputs): number {
  const op = 'selective_scan';
  const { u, delta, A, B, C, D, z, deltaBias } = a;
  expectRank(op, 'u', u, 3, '[b, L, D]');
  const [bsz, L, Dm] = u.shape;
  expectRank(op, 'A', A, 2, `[${Dm}, N]`);
  if (A.shape[0] !== Dm) fail(op, `A ${shp(A.shape)} must be [${Dm}, N] for u ${shp(u.shape)}`);
  const N = A.shape[1];
  expectShape(op, 'delta', delta, [bsz, L, Dm]);
  expectShape(op, 'B', B, [bsz, L, N]);
  expectShape(op, 'C', C, [bsz, L, N]);
  expectShape(op, 'D', D, [Dm]);
  expectShape(op, 'z', z, [bsz, L, Dm]);
  expectShape(op, 'deltaBias', deltaBias, [Dm]);
  const T = a.chunkSize ?? 64;
  if (!(Number.isInteger(T) && T >= 1)) fail(op, `chunkSize must be a positive integer, got ${T}`);
  return T;
}

/** The TypeScript implementation (float64 state and sums; any input precision): the oracle of the wasm one. */
export function selectiveScanJs(a: ScanInputs): Var {
  const op = 'selective_scan';
  checkScan(a);
  const { u, delta, A, B, C, D, z, deltaBias, deltaSoftplus } = a;
  const [bsz, L, Dm] = u.shape;
  const N = A.shape[1];
  const T = a.chunkSize ?? 64;

  const parents = present(u, delta, A, B, C, D, z, deltaBias);
  const saving = needsGrad(parents);
  const nChunks = Math.max(1, Math.ceil(L / T));
  const DN = Dm * N;
  const total = bsz * L * Dm;
  const ud = u.data;
  const deld = delta.data;
  const Ad = A.data;
  const Af = Float64Array.from(Ad);
  const Bd = B.data;
  const Cd = C.data;
  const Dd = D ? D.data : null;
  const zd = z ? z.data : null;
  const biasd = deltaBias ? deltaBias.data : null;

  // Δ after bias and softplus (float64, kept for the backward: b·L·D)
  const dt = new Float64Array(total);
  for (let r = 0; r < bsz * L; r++) {
    const o = r * Dm;
    for (let d = 0; d < Dm; d++) {
      const v = deld[o + d] + (biasd ? biasd[d] : 0);
      dt[o + d] = deltaSoftplus ? softplus(v) : v;
    }
  }

  const out = zerosLike(ud, total);
  const yPre = saving && zd ? new Float64Array(total) : null; // y before the gate, for gz
  const ckpt = saving ? new Float64Array(bsz * nChunks * DN) : null;
  const h = new Float64Array(DN);
  for (let b = 0; b < bsz; b++) {
    h.fill(0);
    for (let t = 0; t < L; t++) {
      if (ckpt && t % T === 0) ckpt.set(h, (b * nChunks + t / T) * DN);
      const row = (b * L + t) * Dm;
      const bc = (b * L + t) * N;
      for (let d = 0; d < Dm; d++) {
        const i = row + d;
        const dtv = dt[i];
        const uv = ud[i];
        const du = dtv * uv;
        const hd = d * N;
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const hv = fastExp(dtv * Af[hd + n]) * h[hd + n] + du * Bd[bc + n];
          h[hd + n] = hv;
          acc += hv * Cd[bc + n];
        }
        if (Dd) acc += Dd[d] * uv;
        if (zd) {
          if (yPre) yPre[i] = acc;
          const zv = zd[i];
          acc *= zv / (1 + Math.exp(-zv));
        }
        out[i] = acc;
      }
    }
  }

  return result(op, out, [bsz, L, Dm], parents, (g: Arr) => {
    if (!ckpt) return; // unreachable: result only records the edge when saving
    const gu = zerosLike(ud, total);
    const gdelta = zerosLike(deld, total);
    const gz = zd ? zerosLike(zd, total) : null;
    const gB = zerosLike(Bd, bsz * L * N);
    const gC = zerosLike(Cd, bsz * L * N);
    const gA = new Float64Array(DN);
    const gD = new Float64Array(Dm);
    const gBias = new Float64Array(Dm);
    const Tc = Math.min(T, L);
    const hs = new Float64Array((Tc + 1) * DN); // h_{t0−1}, h_{t0}, …, h_{t1−1}
    const as = new Float64Array(Tc * DN); // exp(Δ_t A) for the chunk
    const dh = new Float64Array(DN);
    const gBrow = new Float64Array(N);
    const gCrow = new Float64Array(N);
    for (let b = 0; b < bsz; b++) {
      dh.fill(0);
      for (let c = nChunks - 1; c >= 0; c--) {
        const t0 = c * T;
        const t1 = Math.min(L, t0 + T);
        // recompute the chunk's states from its checkpoint
        hs.set(ckpt.subarray((b * nChunks + c) * DN, (b * nChunks + c + 1) * DN), 0);
        for (let t = t0; t < t1; t++) {
          const j = t - t0;
          const prev = j * DN;
          const cur = prev + DN;
          const row = (b * L + t) * Dm;
          const bc = (b * L + t) * N;
          for (let d = 0; d < Dm; d++) {
            const dtv = dt[row + d];
            const du = dtv * ud[row + d];
            const hd = d * N;
            for (let n = 0; n < N; n++) {
              const k = hd + n;
              const av = fastExp(dtv * Af[k]);
              as[prev + k] = av;
              hs[cur + k] = av * hs[prev + k] + du * Bd[bc + n];
            }
          }
        }
        // adjoint recurrence, backwards through the chunk
        for (let t = t1 - 1; t >= t0; t--) {
          const j = t - t0;
          const prev = j * DN;
          const cur = prev + DN;
          const row = (b * L + t) * Dm;
          const bc = (b * L + t) * N;
          gBrow.fill(0);
          gCrow.fill(0);
          for (let d = 0; d < Dm; d++) {
            const i = row + d;
            const gv = g[i];
            const uv = ud[i];
            let gyv = gv;
            if (zd && gz && yPre) {
              const zv = zd[i];
              const s = sigm(zv);
              gyv = gv * zv * s;
              gz[i] = gv * yPre[i] * s * (1 + zv * (1 - s));
            }
            const dtv = dt[i];
            const du = dtv * uv;
            const hd = d * N;
            let sB = 0;
            let sA = 0;
            for (let n = 0; n < N; n++) {
              const k = hd + n;
              const dhv = dh[k] + gyv * Cd[bc + n];
              gCrow[n] += gyv * hs[cur + k];
              gBrow[n] += dhv * du;
              sB += dhv * Bd[bc + n];
              const av = as[prev + k];
              const tmp = dhv * av * hs[prev + k];
              gA[k] += dtv * tmp;
              sA += Af[k] * tmp;
              dh[k] = av * dhv;
            }
            let guv = dtv * sB;
            if (Dd) {
              guv += Dd[d] * gyv;
              gD[d] += gyv * uv;
            }
            gu[i] = guv;
            let gdt = sA + uv * sB;
            if (deltaSoftplus) gdt *= softplusGrad(deld[i] + (biasd ? biasd[d] : 0));
            gdelta[i] = gdt;
            gBias[d] += gdt;
          }
          for (let n = 0; n < N; n++) {
            gB[bc + n] = gBrow[n];
            gC[bc + n] = gCrow[n];
          }
        }
      }
    }
    accumulateOwned(u, gu);
    accumulateOwned(delta, gdelta);
    accumulateOwned(A, fromF64(Ad, gA));
    accumulateOwned(B, gB);
    accumulateOwned(C, gC);
    if (D) accumulateOwned(D, fromF64(D.data, gD));
    if (z && gz) accumulateOwned(z, gz);
    if (deltaBias) accumulateOwned(deltaBias, fromF64(deltaBias.data, gBias));
  });
}
