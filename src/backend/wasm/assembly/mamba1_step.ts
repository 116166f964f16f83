// The decode step of a Mamba-1 mixer between in_proj and out_proj, as one team kernel (see team.ts):
//
//   phase 1  u = silu(conv1d_step(x))                 channels split among threads (causal_conv1d, L = 1)
//   ── barrier ──
//   phase 2  [Δ', B, C] = x_proj · u                  rows of x_proj split (linear_f32)
//            (Falcon/Jamba: RMSNorm of Δ', B, C — thread 0, then a second barrier)
//   ── barrier ──
//   phase 3  Δ = dt_proj · Δ' (per channel);          channels split: each thread computes Δ for its channels and
//            h, y = selective scan step, y·silu(z)    runs the scan step on them (selective_scan, L = 1)
//
// Same arithmetic as the op sequence of Mamba1Mixer.forward on the wasm backend (the same kernels are called), so
// the results are bit-identical to the unfused path. x_proj and dt_proj are f32 (they are kept f32 whatever the
// weight format, as llama.cpp's quantizer keeps ssm_x / ssm_dt).
//
//   xz [batch, 2·Dm] (in_proj output: x then z);  convW [Dm, K], convB [Dm] or 0;  convState [batch, Dm, K]
//   xProj [R + 2N, Dm];  dtProj [Dm, R];  dtBias [Dm];  A [Dm, N];  Dskip [Dm] or 0;  ssmState [batch, Dm, N]
//   normDt/normB/normC: RMSNorm weights (0 = no weight) when hasNorms ≠ 0;  y [batch, Dm]
//   scratch: u [batch, Dm], dbc [batch, R + 2N], delta [batch, Dm], then per thread Δ' [batch, R] (f32, contiguous)
//   counter: i32, zeroed;  deltaOut [batch, Dm] or 0: receives Δ = softplus(dt_proj · Δ' + dtBias) (Δ observed),
//   computed as the scan step computes it (the same f32 lanes)
//   pfQ, pfQRowB, pfS, pfSRowB, pfRows, pfBudget: the next linear's weights (out_proj; pfQ = 0: none), touched while
//   the scan runs, ≤ pfBudget bytes per thread from the start of the rows it will compute (see touchNextRows)

import { causal_conv1d } from './conv';
import { linear_f32 } from './linear';
import { touchNextRows } from './linear_common';
import { rms_norm } from './norm';
import { selective_scan } from './scan';
import { ldc, stc, vsoftplus } from './simd';
import { sliceHi, sliceLo, teamBarrier } from './team';

export function mamba1_step(
  xz: usize, convW: usize, convB: usize, convState: usize, xProj: usize, dtProj: usize, dtBias: usize, A: usize,
  Dskip: usize, ssmState: usize, y: usize, scratch: usize, counter: usize, deltaOut: usize,
  hasNorms: i32, normDt: usize, normB: usize, normC: usize, eps: f32,
  batch: i32, Dm: i32, K: i32, R: i32, N: i32,
  pfQ: usize, pfQRowB: usize, pfS: usize, pfSRowB: usize, pfRows: i32, pfBudget: usize, t: i32, T: i32,
): void {
  const P = R + 2 * N; // x_proj rows
  const u = scratch;
  const dbc = u + ((<usize>batch * Dm) << 2);
  const delta = dbc + ((<usize>batch * P) << 2);
  const d0 = sliceLo(t, T, Dm, 4), d1 = sliceHi(t, T, Dm, 4);
  const rowXZ = <usize>(2 * Dm) << 2;

  // phase 1: conv step (x is the first half of each xz row)
  if (d0 < d1) {
    for (let b = 0; b < batch; b++) {
      causal_conv1d(xz + <usize>b * rowXZ, convW, convB, convState + ((<usize>b * Dm * K) << 2), u + ((<usize>b * Dm) << 2), 1, 1, Dm, K, 1, d0, d1);
    }
  }
  teamBarrier(counter, 1, T);

  // phase 2: x_proj rows
  const p0 = sliceLo(t, T, P, 4), p1 = sliceHi(t, T, P, 4);
  if (p0 < p1) linear_f32(u, xProj, 0, dbc, batch, Dm, P, p0, p1);
  let phase = 2;
  if (hasNorms) {
    teamBarrier(counter, phase++, T);
    if (t == 0) {
      for (let b = 0; b < batch; b++) {
        const row = dbc + ((<usize>b * P) << 2);
        rms_norm(row, normDt, row, R, eps, 0, 1);
        rms_norm(row + (<usize>R << 2), normB, row + (<usize>R << 2), N, eps, 0, 1);
        rms_norm(row + (<usize>(R + N) << 2), normC, row + (<usize>(R + N) << 2), N, eps, 0, 1);
      }
    }
  }
  teamBarrier(counter, phase, T);

  // phase 3: Δ and the scan step for this thread's channels. Δ' is copied to rows of its own (this thread's copy)
  // so that dt_proj runs as the unfused path's one [batch, R] · dt_projᵀ product (same kernel, same sums).
  if (d0 < d1) {
    const dtLow = delta + ((<usize>(batch * Dm + t * batch * R)) << 2);
    for (let b = 0; b < batch; b++) memory.copy(dtLow + ((<usize>b * R) << 2), dbc + ((<usize>b * P) << 2), <usize>R << 2);
    linear_f32(dtLow, dtProj, 0, delta, batch, R, Dm, d0, d1);
    if (deltaOut) {
      for (let b = 0; b < batch; b++) {
        const rowOff = (<usize>b * Dm) << 2;
        for (let d = d0; d < d1; d += 4) {
          const nc = min(4, d1 - d), o = <usize>d << 2;
          stc(deltaOut + rowOff + o, vsoftplus(f32x4.add(ldc(delta + rowOff + o, nc), dtBias ? ldc(dtBias + o, nc) : f32x4.splat(0.0))), nc);
        }
      }
    }
    // the scan in pieces of STEP_CHANNELS channels (any split gives the same bits), the next weights touched in
    // between; in one piece when there is nothing to touch
    const pieces = pfQ ? (d1 - d0 + STEP_CHANNELS - 1) / STEP_CHANNELS : 1;
    const width = pfQ ? STEP_CHANNELS : d1 - d0;
    for (let i = 0; i < pieces; i++) {
      const e0 = d0 + i * width, e1 = min(d1, e0 + width);
      touchNextRows(pfQ, pfQRowB, pfS, pfSRowB, pfRows, pfBudget, t, T, i, pieces);
      for (let b = 0; b < batch; b++) {
        const row = dbc + ((<usize>b * P) << 2);
        const db = delta + ((<usize>b * Dm) << 2);
        selective_scan(
          u + ((<usize>b * Dm) << 2), db, A, row + (<usize>R << 2), row + (<usize>(R + N) << 2), Dskip,
          xz + <usize>b * rowXZ + (<usize>Dm << 2), dtBias, ssmState + ((<usize>b * Dm * N) << 2), y + ((<usize>b * Dm) << 2),
          1, 1, Dm, N, 1, e0, e1,
        );
      }
    }
  }
}

/** channels per piece of the scan phase (a multiple of 4), between which the next weights are touched */
const STEP_CHANNELS: i32 = 16;
