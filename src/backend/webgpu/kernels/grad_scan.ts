/**
 * Backward kernels of the Mamba-1 selective scan (S6) for training, channel-last as the forward's
 * (`selective_scan.ts`): u, δ, z, g [b, L, D]; A [D, N]; B, C [b, L, N]; Δ = softplus(δ + bias) (or δ + bias),
 * a_t = exp(Δ_t A), h_t = a_t ⊙ h_{t−1} + Δ_t B_t u_t, y_t = C_t · h_t + D u_t, out = y · silu(z).
 *
 * The forward (the chunked forward kernels, chunks of T steps) keeps the state entering every chunk (the
 * checkpoints, [b, L/T, D, N]). The backward works on sub-chunks of S ≤ 16 steps (a chunk of T steps is cut into
 * nSub = ⌈T/S⌉ of them, the last ones possibly shorter or empty), all in parallel:
 *
 * - `SCAN_BWD_STATES`  one thread per (b, chunk, d, block of 16 states): from the chunk's checkpoint, the state
 *                      entering each of its sub-chunks → hs [b, J, D, N] (J = sub-chunks in all).
 * - `SCAN_BWD_LOCAL`   one thread per (b, sub-chunk, d, state block): the adjoint recurrence dh_t = gy_t C_t +
 *                      a_{t+1} ⊙ dh_{t+1} walked backwards through the sub-chunk from 0, giving its contribution
 *                      q_j = a_{t0} ⊙ dh_{t0} to the gradient entering the sub-chunk before it, and ΣΔ over it.
 * - `SCAN_BWD_CARRY`   one thread per (b, d, n), sub-chunks last to first: G_{j−1} = exp(A ΣΔ_j) G_j + q_j, the
 *                      gradient entering each sub-chunk from the right (written over q).
 * - `SCAN_BWD_MAIN`    a workgroup per (b, sub-chunk, 32 channels), one thread per channel: recomputes the
 *                      sub-chunk's states from hs into registers/private memory, then walks it backwards from
 *                      G_j with the exact dh_t:
 *                        gu = Δ Σ_n dh B + D gy,  gΔ = Σ_n dh (A a h_{t−1} + B u),  gz from y = Σ_n C h + D u,
 *                        gA[d, n] partial (this sub-chunk) = Σ_t dh Δ a h_{t−1} (written over hs),
 *                        gD, gbias partials (this sub-chunk) → [b·J, D];
 *                        gB_t[n] = Σ_d dh Δ u, gC_t[n] = Σ_d gy h_t summed over the workgroup's 32 channels in
 *                        workgroup memory each step (variant 's', CPU-emulated adapters: no barrier, a partial
 *                        per channel instead) → partials [groups, 2, b·L·N].
 *   The partials are summed by `ROW_SUM` (matmul_grad.ts) in a fixed order: no float atomics, the same bits on
 *   every run.
 * gy = g · silu(z) (g without z). Unsigned loops run backwards as `for (k = n; k > 0; k--) { kk = k − 1 … }`.
 * flags: 1 D, 2 z, 4 delta bias, 8 softplus; gflags (MAIN): 1 gu, 2 gΔ, 4 gz, 8 gA, 16 gB/gC, 32 gD, 64 gbias
 */
import type { KernelSpec } from '../runtime.js';

/** params Bn, L, Dm, N, flags, T, nC, nSub, S, nB at PK … PK+9; the step range of sub-chunk j */
const COMMON = /* wgsl */ `
fn sig(v: f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }
/** [t0, t1) of sub-chunk j (j = chunk · nSub + k) */
fn sub_range(j: u32, L: u32, T: u32, nSub: u32, S: u32) -> vec2<u32> {
  let c = j / nSub; let k = j % nSub;
  let t0 = min(L, c * T + k * S);
  let t1 = min(L, min(c * T + k * S + S, c * T + T));
  return vec2<u32>(t0, max(t0, t1));
}`;

const PARAMS = /* wgsl */ `
  let Bn = pu(PK); let L = pu(PK + 1u); let Dm = pu(PK + 2u); let N = pu(PK + 3u); let flags = pu(PK + 4u);
  let T = pu(PK + 5u); let nC = pu(PK + 6u); let nSub = pu(PK + 7u); let S = pu(PK + 8u); let nB = pu(PK + 9u);
  let nJ = nC * nSub;
  let hasD = (flags & 1u) != 0u; let hasZ = (flags & 2u) != 0u; let hasBias = (flags & 4u) != 0u;
  let sp = (flags & 8u) != 0u;`;

/** Δ of (row, d) as `dt` */
const DT = /* wgsl */ `
    var dt = $delta[o_delta + row * Dm + d];
    if (hasBias) { dt += $bias[o_bias + d]; }
    if (sp) { dt = softplus(dt); }`;

/** the output gradient after the gate as `gy` */
const GY = /* wgsl */ `
    var gy = $g[o_g + row * Dm + d];
    if (hasZ) { gy *= silu($z[o_z + row * Dm + d]); }`;

const HEAD256 = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();`;

export const SCAN_BWD_STATES: KernelSpec = {
  name: 'scan_bwd_states',
  roles: ['u', 'delta', 'A', 'B', 'bias', 'ck', 'hs'],
  writes: ['hs'],
  wgsl: () => /* wgsl */ `${COMMON}${HEAD256}${PARAMS}
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * nC * nB * Dm) { return; }
  let d = i % Dm; let r = i / Dm;
  let nb = r % nB; let bc = r / nB;
  let c = bc % nC; let b = bc / nC;
  var h: array<f32, 16>;
  var Ar: array<f32, 16>;
  for (var j = 0u; j < 16u; j++) {
    let n = nb * 16u + j;
    if (n < N) { h[j] = $ck[o_ck + (bc * Dm + d) * N + n]; Ar[j] = $A[o_A + d * N + n]; }
  }
  for (var k = 0u; k < nSub; k++) {
    let jj = c * nSub + k;
    let ho = o_hs + ((b * nJ + jj) * Dm + d) * N;
    for (var j = 0u; j < 16u; j++) {
      let n = nb * 16u + j;
      if (n < N) { $hs[ho + n] = h[j]; }
    }
    if (k + 1u == nSub) { break; }
    let tr = sub_range(jj, L, T, nSub, S);
    for (var t = tr.x; t < tr.y; t++) {
      let row = b * L + t;
      ${DT}
      let du = dt * $u[o_u + row * Dm + d];
      for (var j = 0u; j < 16u; j++) {
        let n = nb * 16u + j;
        if (n < N) { h[j] = exp(dt * Ar[j]) * h[j] + du * $B[o_B + row * N + n]; }
      }
    }
  }
}`,
};

export const SCAN_BWD_LOCAL: KernelSpec = {
  name: 'scan_bwd_local',
  roles: ['delta', 'A', 'C', 'z', 'bias', 'g', 'q', 'dsum'],
  writes: ['q', 'dsum'],
  wgsl: () => /* wgsl */ `${COMMON}${HEAD256}${PARAMS}
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * nJ * nB * Dm) { return; }
  let d = i % Dm; let r = i / Dm;
  let nb = r % nB; let bj = r / nB;
  let jj = bj % nJ; let b = bj / nJ;
  let tr = sub_range(jj, L, T, nSub, S);
  var nx: array<f32, 16>;
  var Ar: array<f32, 16>;
  for (var j = 0u; j < 16u; j++) {
    let n = nb * 16u + j;
    if (n < N) { Ar[j] = $A[o_A + d * N + n]; }
  }
  var cum = 0.0;
  for (var tt = tr.y; tt > tr.x; tt--) {
    let t = tt - 1u;
    let row = b * L + t;
    ${DT}
    ${GY}
    cum += dt;
    for (var j = 0u; j < 16u; j++) {
      let n = nb * 16u + j;
      if (n < N) { nx[j] = exp(dt * Ar[j]) * (nx[j] + gy * $C[o_C + row * N + n]); }
    }
  }
  let qo = o_q + (bj * Dm + d) * N;
  for (var j = 0u; j < 16u; j++) {
    let n = nb * 16u + j;
    if (n < N) { $q[qo + n] = nx[j]; }
  }
  if (nb == 0u) { $dsum[o_dsum + bj * Dm + d] = cum; }
}`,
};

/** params: Bn, Dm, N, nJ */
export const SCAN_BWD_CARRY: KernelSpec = {
  name: 'scan_bwd_carry',
  roles: ['A', 'dsum', 'q'],
  writes: ['q'],
  wgsl: () => /* wgsl */ `${HEAD256}
  let Bn = pu(PK); let Dm = pu(PK + 1u); let N = pu(PK + 2u); let nJ = pu(PK + 3u);
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * Dm * N) { return; }
  let n = i % N; let d = (i / N) % Dm; let b = i / (N * Dm);
  let a = $A[o_A + d * N + n];
  var G = 0.0;
  for (var jj = nJ; jj > 0u; jj--) {
    let j = jj - 1u;
    let idx = o_q + ((b * nJ + j) * Dm + d) * N + n;
    let qv = $q[idx];
    $q[idx] = G;
    G = exp(a * $dsum[o_dsum + (b * nJ + j) * Dm + d]) * G + qv;
  }
}`,
};

/** the most steps of a sub-chunk (private arrays are sized by it) */
export const SCAN_SUB_MAX = 16;

/**
 * params: as the others, then gflags. Workgroups: b · J · ⌈D/32⌉; pBC rows: ⌈D/32⌉ groups (variant 's': D channels).
 * roles hs (in: sub-chunk states; out: gA partials) and G (gradient entering each sub-chunk from the right).
 */
export const SCAN_BWD_MAIN: KernelSpec = {
  name: 'scan_bwd_main',
  roles: ['u', 'delta', 'A', 'B', 'C', 'D', 'z', 'bias', 'g', 'G', 'hs', 'gu', 'gdelta', 'gz', 'pD', 'pbias', 'pBC'],
  writes: ['hs', 'gu', 'gdelta', 'gz', 'pD', 'pbias', 'pBC'],
  wgsl: (variant) => {
    const shared = variant !== 's';
    return /* wgsl */ `${COMMON}
${shared ? 'var<workgroup> red: array<f32, 2112>; // two buffers of [32 values][32 channels + 1]' : ''}
@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  ${PARAMS}
  let gflags = pu(PK + 10u);
  let nW = (Dm + 31u) / 32u;
  let w = lin(wg, nw);
  let grp = w % nW; let bj = w / nW; let d = grp * 32u + li;
  if (bj >= Bn * nJ) { return; }
  let jj = bj % nJ; let b = bj / nJ;
  let tr = sub_range(jj, L, T, nSub, S);
  let t0 = tr.x; let len = tr.y - tr.x;
  let act = d < Dm;
  let BLN = Bn * L * N;
  // the sub-chunk's Δ, u, gy per step
  var dtk: array<f32, ${SCAN_SUB_MAX}>;
  var uk: array<f32, ${SCAN_SUB_MAX}>;
  var gyk: array<f32, ${SCAN_SUB_MAX}>;
  // per step: Σ_n dh B, Σ_n dh A a h_{t−1}, Σ_n C h (over the state blocks)
  var sBk: array<f32, ${SCAN_SUB_MAX}>;
  var sAk: array<f32, ${SCAN_SUB_MAX}>;
  var yk: array<f32, ${SCAN_SUB_MAX}>;
  if (act) {
    for (var k = 0u; k < len; k++) {
      let row = b * L + t0 + k;
      ${DT}
      ${GY}
      dtk[k] = dt; uk[k] = $u[o_u + row * Dm + d]; gyk[k] = gy;
    }
  }
  var hist: array<array<f32, 16>, ${SCAN_SUB_MAX}>; // the state entering each step
  var it = 0u;
  for (var nb = 0u; nb < nB; nb++) {
    let so = (bj * Dm + d) * N + nb * 16u;
    var Ar: array<f32, 16>;
    var h: array<f32, 16>;
    var dh: array<f32, 16>;
    var gA: array<f32, 16>;
    if (act) {
      for (var j = 0u; j < 16u; j++) {
        gA[j] = 0.0; // explicitly: SwiftShader does not zero a var declared in a loop again on every iteration
        if (nb * 16u + j < N) { Ar[j] = $A[o_A + d * N + nb * 16u + j]; h[j] = $hs[o_hs + so + j]; dh[j] = $G[o_G + so + j]; }
      }
      for (var k = 0u; k < len; k++) {
        let row = b * L + t0 + k;
        let dt = dtk[k]; let du = dt * uk[k];
        for (var j = 0u; j < 16u; j++) {
          hist[k][j] = h[j];
          if (nb * 16u + j < N) { h[j] = exp(dt * Ar[j]) * h[j] + du * $B[o_B + row * N + nb * 16u + j]; }
        }
      }
    }
    // backwards: h holds h_t, dh the gradient flowing in from step t + 1 (a_{t+1} ⊙ dh_{t+1})
    for (var kk = len; kk > 0u; kk--) {
      let k = kk - 1u;
      let row = b * L + t0 + k;
      ${shared ? 'let buf = (it & 1u) * 1056u;' : ''}
      it++;
      var sB = 0.0; var sA = 0.0; var yc = 0.0;
      for (var j = 0u; j < 16u; j++) {
        let n = nb * 16u + j;
        var gBv = 0.0; var gCv = 0.0;
        if (act && n < N) {
          let dt = dtk[k]; let gy = gyk[k];
          let Cn = $C[o_C + row * N + n];
          let hp = hist[k][j];
          let a = exp(dt * Ar[j]);
          let dhv = dh[j] + gy * Cn;
          gBv = dhv * dt * uk[k];
          gCv = gy * h[j];
          yc += Cn * h[j];
          sB += dhv * $B[o_B + row * N + n];
          let tmp = dhv * a * hp;
          gA[j] += dt * tmp;
          sA += Ar[j] * tmp;
          dh[j] = a * dhv;
          h[j] = hp;
        }
        ${
          shared
            ? 'red[buf + j * 33u + li] = gBv; red[buf + (16u + j) * 33u + li] = gCv;'
            : `if ((gflags & 16u) != 0u && act && n < N) {
          $pBC[o_pBC + d * 2u * BLN + row * N + n] = gBv;
          $pBC[o_pBC + (d * 2u + 1u) * BLN + row * N + n] = gCv;
        }`
        }
      }
      sBk[k] += sB; sAk[k] += sA; yk[k] += yc;
      ${
        shared
          ? `workgroupBarrier();
      // lane li sums value li (gB of state li, or gC of state li − 16) over the 32 channels
      let n = nb * 16u + (li % 16u);
      if ((gflags & 16u) != 0u && n < N) {
        var s = 0.0;
        for (var l = 0u; l < 32u; l++) { s += red[buf + li * 33u + l]; }
        $pBC[o_pBC + (grp * 2u + li / 16u) * BLN + row * N + n] = s;
      }`
          : ''
      }
    }
    if (act && (gflags & 8u) != 0u) {
      for (var j = 0u; j < 16u; j++) {
        if (nb * 16u + j < N) { $hs[o_hs + so + j] = gA[j]; }
      }
    }
  }
  if (!act) { return; }
  var gD = 0.0; var gb = 0.0;
  var Dd = 0.0;
  if (hasD) { Dd = $D[o_D + d]; }
  for (var k = 0u; k < len; k++) {
    let row = b * L + t0 + k;
    let i = row * Dm + d;
    let dt = dtk[k]; let uv = uk[k]; let gy = gyk[k];
    if ((gflags & 1u) != 0u) { $gu[o_gu + i] = dt * sBk[k] + Dd * gy; }
    var gdt = sAk[k] + uv * sBk[k];
    if (sp) {
      var v = $delta[o_delta + i];
      if (hasBias) { v += $bias[o_bias + d]; }
      if (v <= 20.0) { gdt *= sig(v); }
    }
    if ((gflags & 2u) != 0u) { $gdelta[o_gdelta + i] = gdt; }
    gb += gdt;
    gD += gy * uv;
    if ((gflags & 4u) != 0u) {
      let zv = $z[o_z + i];
      let s = sig(zv);
      $gz[o_gz + i] = $g[o_g + i] * (yk[k] + Dd * uv) * s * (1.0 + zv * (1.0 - s));
    }
  }
  if ((gflags & 32u) != 0u) { $pD[o_pD + bj * Dm + d] = gD; }
  if ((gflags & 64u) != 0u) { $pbias[o_pbias + bj * Dm + d] = gb; }
}`;
  },
};
