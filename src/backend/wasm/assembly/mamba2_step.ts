// The decode step of a Mamba-2 mixer between in_proj and out_proj, as one team kernel (see team.ts):
//
//   phase 1  xBC = silu(conv1d_step(xBC_raw))          channels split among threads (causal_conv1d, L = 1)
//   ── barrier ──
//   phase 2  h, y = SSD recurrence step (+ D x)        heads split (ssd_scan, L = 1)
//   ── barrier ──
//   phase 3  g = RMSNorm_groups(y · silu(z)) · w       rows (batch) split (rms_norm_gated)
//
// Δ arrives processed (softplus, bias, limits: `processDt` on the JS side, as the unfused path does). Same kernels as
// the op sequence of Mamba2Mixer.forward on the wasm backend, so the results are bit-identical to it.
//
//   zxbcdt [batch, W + convDim + nh] (in_proj output: z, xBC, dt);  dt [batch, nh] processed
//   convW [convDim, K], convB or 0, convState [batch, convDim, K];  A [nh];  Dskip [nh] or 0
//   ssmState [batch, nh, hd, N];  normW [W];  y [batch, W]
//   scratch: xBC [batch, convDim], ySsd [batch, W];  counter: i32, zeroed
//   pfQ, pfQRowB, pfS, pfSRowB, pfRows, pfBudget: the next linear's weights (out_proj; pfQ = 0: none), touched while
//   the recurrence runs, ≤ pfBudget bytes per thread from the start of the rows it will compute (see touchNextRows)

import { causal_conv1d } from './conv';
import { touchNextRows } from './linear_common';
import { rms_norm_gated } from './norm';
import { ssd_scan } from './scan';
import { sliceHi, sliceLo, teamBarrier } from './team';

export function mamba2_step(
  zxbcdt: usize, dt: usize, convW: usize, convB: usize, convState: usize, A: usize, Dskip: usize, ssmState: usize,
  normW: usize, eps: f32, groupSize: i32, y: usize, scratch: usize, counter: usize,
  batch: i32, nh: i32, hd: i32, G: i32, N: i32, K: i32,
  pfQ: usize, pfQRowB: usize, pfS: usize, pfSRowB: usize, pfRows: i32, pfBudget: usize, t: i32, T: i32,
): void {
  const W = nh * hd;
  const GN = G * N;
  const convDim = W + 2 * GN;
  const rowIn = <usize>(W + convDim + nh) << 2;
  const xbc = scratch;
  const ys = xbc + ((<usize>batch * convDim) << 2);

  // phase 1: conv step on xBC (after z in each in_proj row)
  const c0 = sliceLo(t, T, convDim, 4), c1 = sliceHi(t, T, convDim, 4);
  if (c0 < c1) {
    for (let b = 0; b < batch; b++) {
      causal_conv1d(zxbcdt + <usize>b * rowIn + (<usize>W << 2), convW, convB, convState + ((<usize>b * convDim * K) << 2),
        xbc + ((<usize>b * convDim) << 2), 1, 1, convDim, K, 1, c0, c1);
    }
  }
  teamBarrier(counter, 1, T);

  // phase 2: the recurrence step for this thread's heads
  const h0 = sliceLo(t, T, nh, 1), h1 = sliceHi(t, T, nh, 1);
  // one head at a time (any split gives the same bits), the next weights touched in between; all at once when
  // there is nothing to touch
  const step = pfQ ? 1 : max(h1 - h0, 1);
  for (let h = h0; h < h1; h += step) {
    const e = min(h1, h + step);
    touchNextRows(pfQ, pfQRowB, pfS, pfSRowB, pfRows, pfBudget, t, T, h - h0, h1 - h0);
    for (let b = 0; b < batch; b++) {
      const xb = xbc + ((<usize>b * convDim) << 2);
      ssd_scan(xb, dt + ((<usize>b * nh) << 2), A, xb + (<usize>W << 2), xb + (<usize>(W + GN) << 2), Dskip,
        ssmState + ((<usize>b * nh * hd * N) << 2), ys + ((<usize>b * W) << 2), 1, 1, nh, hd, G, N, h, e);
    }
  }
  teamBarrier(counter, 2, T);

  // phase 3: gated norm, rows split
  const r0 = sliceLo(t, T, batch, 1), r1 = sliceHi(t, T, batch, 1);
  for (let b = r0; b < r1; b++) {
    rms_norm_gated(ys + ((<usize>b * W) << 2), zxbcdt + <usize>b * rowIn, normW, y + ((<usize>b * W) << 2), W, groupSize, eps, 0, 1);
  }
}
