/**
 * Differentiable Mamba-2 SSD as one graph node with a hand-written backward.
 *
 *   Δ_t = clamp(softplus(dt_t + dt_bias), lo, hi)        per head (no gradient through a clamped value)
 *   h_t = exp(Δ_t A) h_{t−1} + Δ_t x_t ⊗ B_t             h [hd, N] per head, h_{−1} = 0
 *   y_t = h_t C_t + D x_t                                 head h reads group ⌊h/(nh/G)⌋ of B and C
 *
 * Forward: the chunked SSD algorithm (Mamba-2 §6, as `ssdChunked` in src/ssm/ssd.ts, float64 accumulation).
 * While the carried chunk states H_{c−1} pass by (step 3), the ones entering each chunk are kept as checkpoints:
 * O(b·nh·hd·N·L/chunk) memory, as the official kernels' chunk states.
 *
 * Backward: a reverse recurrence with recomputed states (not the chunked/matmul form). Rows p of a head's
 * [hd, N] state evolve independently, so per (batch, head, four rows p) and chunk, last to first: recompute the
 * rows' states over the chunk from the checkpoint (O(chunk·N) scratch), then run the adjoint backwards:
 *   dh_t = gy_t ⊗ C_t + exp(Δ_{t+1} A) dh_{t+1}
 *   gC_t += Σ_p gy_t[p] h_t[p, :]              gB_t += Σ_p dh_t[p, :] Δ_t x_t[p]     (summed over the group's heads)
 *   gx_t[p] = Δ_t Σ_n dh_t[p, n] B_t[n] + D gy_t[p]
 *   gΔ_t += Σ_{p,n} dh_t[p, n] (A exp(Δ_t A) h_{t−1}[p, n] + x_t[p] B_t[n])
 *   gA += Σ_t Σ_{p,n} dh_t[p, n] Δ_t exp(Δ_t A) h_{t−1}[p, n]        gD = Σ gy·x
 * Cost O(L·hd·N) per head, the recurrence's; scratch O(chunk·N + L).
 */
import { expectRank, expectShape, fail, fromF64, needsGrad, present, shp, softplus, softplusGrad } from './fused-common.js';
import { accumulateOwned, type Arr, result, type Var, zerosLike } from './var.js';
import { ssdChunkedInto } from '../ssm/ssd.js';

export interface SsdInputs {
  x: Var; // [b, L, nh, hd]
  dt: Var; // [b, L, nh] before bias/softplus
  A: Var; // [nh]
  B: Var; // [b, L, G, N]
  C: Var; // [b, L, G, N]
  D: Var | null; // [nh]
  dtBias: Var | null; // [nh]
  dtLimit: [number, number];
  chunkSize: number;
}

/**
 * Mamba-2 SSD (head h uses group ⌊h/(nh/G)⌋), softplus(dt + bias) clamped to dtLimit (no gradient through a
 * clamped value), y includes D·x. Forward = the chunked SSD algorithm, keeping the chunk-entry states; backward =
 * a reverse recurrence whose states are recomputed per chunk from those checkpoints (see the file comment).
 */
export function ssd(a: SsdInputs): Var {
  const op = 'ssd';
  const { x, dt, A, B, C, D, dtBias, dtLimit, chunkSize } = a;
  expectRank(op, 'x', x, 4, '[b, L, nh, hd]');
  const [bsz, L, nh, hd] = x.shape;
  expectRank(op, 'B', B, 4, '[b, L, G, N]');
  const [, , G, N] = B.shape;
  expectShape(op, 'B', B, [bsz, L, G, N]);
  expectShape(op, 'C', C, [bsz, L, G, N]);
  expectShape(op, 'dt', dt, [bsz, L, nh]);
  expectShape(op, 'A', A, [nh]);
  expectShape(op, 'D', D, [nh]);
  expectShape(op, 'dtBias', dtBias, [nh]);
  if (G < 1 || nh % G !== 0) fail(op, `nh ${nh} (x ${shp(x.shape)}) is not a multiple of G ${G} (B ${shp(B.shape)})`);
  if (!(Number.isInteger(chunkSize) && chunkSize >= 1)) fail(op, `chunkSize must be a positive integer, got ${chunkSize}`);
  const [lo, hi] = dtLimit;
  if (!(lo <= hi)) fail(op, `bad dtLimit [${lo}, ${hi}]`);
  const hpg = nh / G;
  const HN = hd * N;
  const Q = Math.max(1, Math.min(chunkSize, L));
  const nC = Math.max(1, Math.ceil(L / Q));

  const parents = present(x, dt, A, B, C, D, dtBias);
  const saving = needsGrad(parents);
  const xd = x.data;
  const rawd = dt.data;
  const Ad = A.data;
  const Bd = B.data;
  const Cd = C.data;
  const Dd = D ? D.data : null;
  const biasd = dtBias ? dtBias.data : null;

  // Δ, and dΔ/d(dt_raw) (0 where clamped)
  const rows = bsz * L;
  const dl = new Float64Array(rows * nh);
  const dd = saving ? new Float64Array(rows * nh) : null;
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < nh; h++) {
      const i = r * nh + h;
      const v = rawd[i] + (biasd ? biasd[h] : 0);
      const s = softplus(v);
      if (s < lo) dl[i] = lo;
      else if (s > hi) dl[i] = hi;
      else {
        dl[i] = s;
        if (dd) dd[i] = softplusGrad(v);
      }
    }
  }

  const y = zerosLike(xd, bsz * L * nh * hd);
  const ckpt = saving ? new Float64Array(bsz * nC * nh * HN) : null;
  // the forward is the inference path's chunked algorithm, keeping the state entering each chunk for the backward
  ssdChunkedInto(
    { batch: bsz, seqLen: L, nHeads: nh, headDim: hd, nGroups: G, dState: N, x: xd, dt: dl, A: Ad, B: Bd, C: Cd, D: Dd, state: null },
    Q, y, ckpt,
  );

  return result(op, y, [bsz, L, nh, hd], parents, (gOut: Arr) => {
    if (!ckpt || !dd) return; // unreachable: the edge is recorded only when saving
    const gx = zerosLike(xd, x.size);
    const gB = new Float64Array(B.size);
    const gC = new Float64Array(C.size);
    const gDl = new Float64Array(rows * nh);
    const gA = new Float64Array(nh);
    const gD = new Float64Array(nh);
    const aexp = new Float64Array(L);
    // four state rows at a time (B_t, C_t and the gB/gC rows are loaded once for the four); rows past hd are
    // zero-padded (zero x, zero gy, zero state), contribute nothing, and are not written
    const hr0 = new Float64Array((Q + 1) * N);
    const hr1 = new Float64Array((Q + 1) * N);
    const hr2 = new Float64Array((Q + 1) * N);
    const hr3 = new Float64Array((Q + 1) * N);
    const dh0 = new Float64Array(N);
    const dh1 = new Float64Array(N);
    const dh2 = new Float64Array(N);
    const dh3 = new Float64Array(N);
    const hrs = [hr0, hr1, hr2, hr3];
    for (let b = 0; b < bsz; b++) {
      for (let hh = 0; hh < nh; hh++) {
        const g = Math.floor(hh / hpg);
        const Ah = Ad[hh];
        const Dh = Dd ? Dd[hh] : 0;
        for (let t = 0; t < L; t++) aexp[t] = Math.exp(dl[(b * L + t) * nh + hh] * Ah);
        let gAacc = 0;
        let gDacc = 0;
        for (let p0 = 0; p0 < hd; p0 += 4) {
          const R = Math.min(4, hd - p0); // live rows
          dh0.fill(0);
          dh1.fill(0);
          dh2.fill(0);
          dh3.fill(0);
          for (let ci = nC - 1; ci >= 0; ci--) {
            const t0 = ci * Q;
            const q = Math.min(Q, L - t0);
            const co = ((b * nC + ci) * nh + hh) * HN + p0 * N;
            for (let j = 0; j < 4; j++) {
              if (j < R) hrs[j].set(ckpt.subarray(co + j * N, co + (j + 1) * N), 0);
              else hrs[j].fill(0, 0, N);
            }
            // recompute the rows' states over the chunk
            for (let l = 0; l < q; l++) {
              const r = b * L + t0 + l;
              const dtv = dl[r * nh + hh];
              const xo = (r * nh + hh) * hd + p0;
              const dx0 = dtv * xd[xo];
              const dx1 = R > 1 ? dtv * xd[xo + 1] : 0;
              const dx2 = R > 2 ? dtv * xd[xo + 2] : 0;
              const dx3 = R > 3 ? dtv * xd[xo + 3] : 0;
              const av = aexp[t0 + l];
              const bc = (r * G + g) * N;
              const prev = l * N;
              const cur = prev + N;
              for (let n = 0; n < N; n++) {
                const bn = Bd[bc + n];
                hr0[cur + n] = av * hr0[prev + n] + dx0 * bn;
                hr1[cur + n] = av * hr1[prev + n] + dx1 * bn;
                hr2[cur + n] = av * hr2[prev + n] + dx2 * bn;
                hr3[cur + n] = av * hr3[prev + n] + dx3 * bn;
              }
            }
            // adjoint, backwards through the chunk
            for (let l = q - 1; l >= 0; l--) {
              const r = b * L + t0 + l;
              const xo = (r * nh + hh) * hd + p0;
              const dtv = dl[r * nh + hh];
              const x0 = xd[xo];
              const x1 = R > 1 ? xd[xo + 1] : 0;
              const x2 = R > 2 ? xd[xo + 2] : 0;
              const x3 = R > 3 ? xd[xo + 3] : 0;
              const g0 = gOut[xo];
              const g1 = R > 1 ? gOut[xo + 1] : 0;
              const g2 = R > 2 ? gOut[xo + 2] : 0;
              const g3 = R > 3 ? gOut[xo + 3] : 0;
              const dx0 = dtv * x0;
              const dx1 = dtv * x1;
              const dx2 = dtv * x2;
              const dx3 = dtv * x3;
              const av = aexp[t0 + l];
              const bc = (r * G + g) * N;
              const prev = l * N;
              const cur = prev + N;
              let sB0 = 0, sB1 = 0, sB2 = 0, sB3 = 0;
              let sH0 = 0, sH1 = 0, sH2 = 0, sH3 = 0;
              for (let n = 0; n < N; n++) {
                const cn = Cd[bc + n];
                const bn = Bd[bc + n];
                const d0 = dh0[n] + g0 * cn;
                const d1 = dh1[n] + g1 * cn;
                const d2 = dh2[n] + g2 * cn;
                const d3 = dh3[n] + g3 * cn;
                gC[bc + n] += g0 * hr0[cur + n] + g1 * hr1[cur + n] + g2 * hr2[cur + n] + g3 * hr3[cur + n];
                gB[bc + n] += d0 * dx0 + d1 * dx1 + d2 * dx2 + d3 * dx3;
                sB0 += d0 * bn;
                sB1 += d1 * bn;
                sB2 += d2 * bn;
                sB3 += d3 * bn;
                sH0 += d0 * hr0[prev + n];
                sH1 += d1 * hr1[prev + n];
                sH2 += d2 * hr2[prev + n];
                sH3 += d3 * hr3[prev + n];
                dh0[n] = av * d0;
                dh1[n] = av * d1;
                dh2[n] = av * d2;
                dh3[n] = av * d3;
              }
              gx[xo] = dtv * sB0 + Dh * g0;
              if (R > 1) gx[xo + 1] = dtv * sB1 + Dh * g1;
              if (R > 2) gx[xo + 2] = dtv * sB2 + Dh * g2;
              if (R > 3) gx[xo + 3] = dtv * sB3 + Dh * g3;
              gDacc += g0 * x0 + g1 * x1 + g2 * x2 + g3 * x3;
              const sH = sH0 + sH1 + sH2 + sH3;
              gDl[r * nh + hh] += x0 * sB0 + x1 * sB1 + x2 * sB2 + x3 * sB3 + Ah * av * sH;
              gAacc += dtv * av * sH;
            }
          }
        }
        gA[hh] += gAacc;
        gD[hh] += gDacc;
      }
    }
    const graw = zerosLike(rawd, rows * nh);
    const gBias = new Float64Array(nh);
    for (let r = 0; r < rows; r++) {
      for (let h = 0; h < nh; h++) {
        const v = gDl[r * nh + h] * dd[r * nh + h];
        graw[r * nh + h] = v;
        gBias[h] += v;
      }
    }
    accumulateOwned(x, gx);
    accumulateOwned(dt, graw);
    accumulateOwned(A, fromF64(Ad, gA));
    accumulateOwned(B, fromF64(Bd, gB));
    accumulateOwned(C, fromF64(Cd, gC));
    if (D) accumulateOwned(D, fromF64(D.data, gD));
    if (dtBias) accumulateOwned(dtBias, fromF64(dtBias.data, gBias));
  });
}
