/**
 * Mamba-2 chunked SSD prefill, fused form (`ssd: 'fused'`, the default; ssd.ts has the kernels of before and the
 * math). Differences from those:
 * - no Δ pass: each chunk kernel computes its chunk's Δ = clamp(softplus(dt + bias)) and the running sums
 *   a = Σ Δ·A in workgroup memory (Q values, a log₂Q-step scan), so the sequential `SSD_DT` dispatch and its
 *   two [b, L, nh] buffers are gone; the states kernel leaves only the chunk totals a_end [b, nC, nh] for the
 *   state passing;
 * - x, dt, B, C are read in place with row strides (pieces of in_proj's and the conv's outputs, as `split`
 *   leaves them), so they are not copied apart first.
 * Layouts: row (b, t) of x starts at (b·L + t)·sx and holds [nh, hd]; of dt at (b·L + t)·sdt ([nh]); of B / C at
 * (b·L + t)·sB / sC ([G, N]); y [b, L, nh, hd] and the chunk states S [b, nC, nh, hd, N] are packed.
 */
import type { KernelSpec } from '../runtime.js';

/**
 * WGSL statements: the chunk (b, c)'s Δ of head h in `dS` and its inclusive running sum of Δ·A in `cA` (workgroup
 * arrays of QQ; zero Δ past the chunk's q steps, so the sums stay flat there). Needs b, c, h, t0, q, li, L, nh,
 * flags (2: dt bias), lo, hi, sdt in scope; all 256 invocations must reach it (barriers).
 */
const CHUNK_DT = /* wgsl */ `
  {
    var dv = 0.0;
    if (li < q) {
      var bias = 0.0;
      if ((flags & 2u) != 0u) { bias = $dtb[o_dtb + h]; }
      dv = clamp(softplus($dt[o_dt + (b * L + t0 + li) * sdt + h] + bias), lo, hi);
    }
    if (li < QQ) { dS[li] = dv; cA[li] = dv * $A[o_A + h]; }
    workgroupBarrier();
    for (var off = 1u; off < QQ; off <<= 1u) {
      var prev = 0.0;
      if (li < QQ && li >= off) { prev = cA[li - off]; }
      workgroupBarrier();
      if (li < QQ) { cA[li] += prev; }
      workgroupBarrier();
    }
  }`;

function head(q: string): string {
  const Q = Number(q);
  return `const QQ: u32 = ${Q}u; const TT: u32 = ${Q / 16}u; const QP: u32 = ${Q + 1}u;
var<workgroup> cA: array<f32, ${Q}>;
var<workgroup> dS: array<f32, ${Q}>;`;
}

/** C_l · B_s per (b, chunk, group), [Q, Q]. params: Bn, L, G, N, nC, sB, sC */
export const SSDF_CB: KernelSpec = {
  name: 'ssdf_cb',
  roles: ['B', 'C', 'cb'],
  writes: ['cb'],
  wgsl: (q) => /* wgsl */ `
const QQ: u32 = ${q}u; const TT: u32 = ${Number(q) / 16}u; const QP: u32 = ${Number(q) + 1}u;
var<workgroup> Cs: array<f32, ${16 * (Number(q) + 1)}>;
var<workgroup> Bs: array<f32, ${16 * (Number(q) + 1)}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let G = pu(PK + 2u); let N = pu(PK + 3u); let nC = pu(PK + 4u);
  let sB = pu(PK + 5u); let sC = pu(PK + 6u);
  let item = lin(wg, nw);
  if (item >= Bn * nC * G) { return; }
  let g = item % G; let bc = item / G; let c = bc % nC; let b = bc / nC;
  let t0 = c * QQ; let q = min(QQ, L - t0);
  let tx = li % 16u; let ty = li / 16u;
  var acc: array<array<f32, TT>, TT>;
  for (var i = 0u; i < TT; i++) { for (var j = 0u; j < TT; j++) { acc[i][j] = 0.0; } }
  for (var n0 = 0u; n0 < N; n0 += 16u) {
    for (var k = 0u; k < TT; k++) {
      let e = li + 256u * k;
      let l = e / 16u; let nn = e % 16u;
      let n = n0 + nn;
      var cv = 0.0; var bv = 0.0;
      if (l < q && n < N) {
        let row = b * L + t0 + l;
        cv = $C[o_C + row * sC + g * N + n]; bv = $B[o_B + row * sB + g * N + n];
      }
      Cs[nn * QP + l] = cv; Bs[nn * QP + l] = bv;
    }
    workgroupBarrier();
    for (var nn = 0u; nn < 16u; nn++) {
      var cr: array<f32, TT>; var br: array<f32, TT>;
      for (var i = 0u; i < TT; i++) { cr[i] = Cs[nn * QP + ty + 16u * i]; br[i] = Bs[nn * QP + tx + 16u * i]; }
      for (var i = 0u; i < TT; i++) {
        for (var j = 0u; j < TT; j++) { acc[i][j] = fma(cr[i], br[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  let base = o_cb + item * QQ * QQ;
  for (var i = 0u; i < TT; i++) {
    for (var j = 0u; j < TT; j++) { $cb[base + (ty + 16u * i) * QQ + tx + 16u * j] = acc[i][j]; }
  }
}`,
};

/**
 * Chunk states S_c[p, n] = Σ_s exp(a_end − a_s) Δ_s x_s[p] B_s[n] per (b, chunk, head, 64×64 tile of (p, n)), and
 * the chunk's a_end (by its first tile). params: Bn, L, nh, hd, G, N, nC, flags (2 dt bias), lo, hi, sx, sB, sdt
 */
export const SSDF_STATES: KernelSpec = {
  name: 'ssdf_states',
  roles: ['x', 'B', 'dt', 'A', 'dtb', 'S', 'aend'],
  writes: ['S', 'aend'],
  wgsl: (q) => /* wgsl */ `
${head(q)}
var<workgroup> ws: array<f32, ${q}>;
var<workgroup> Xs: array<f32, 1040>;
var<workgroup> Bs: array<f32, 1040>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let nh = pu(PK + 2u); let hd = pu(PK + 3u); let G = pu(PK + 4u); let N = pu(PK + 5u); let nC = pu(PK + 6u);
  let flags = pu(PK + 7u); let lo = pf(PK + 8u); let hi = pf(PK + 9u); let sx = pu(PK + 10u); let sB = pu(PK + 11u); let sdt = pu(PK + 12u);
  let nNT = (N + 63u) / 64u; let nPT = (hd + 63u) / 64u;
  let item = lin(wg, nw);
  if (item >= Bn * nC * nh * nPT * nNT) { return; }
  let nt = item % nNT; let pt = (item / nNT) % nPT; let bch = item / (nNT * nPT);
  let h = bch % nh; let bc = bch / nh; let c = bc % nC; let b = bc / nC;
  let g = h / (nh / G);
  let p0 = pt * 64u; let n0 = nt * 64u;
  let t0 = c * QQ; let q = min(QQ, L - t0);
  ${CHUNK_DT}
  let aEnd = cA[q - 1u];
  if (li < QQ) { ws[li] = exp(aEnd - cA[li]) * dS[li]; }
  if (li == 0u && pt == 0u && nt == 0u) { $aend[o_aend + bch] = aEnd; }
  workgroupBarrier();
  let tx = li % 16u; let ty = li / 16u;
  var acc: array<array<f32, 4>, 4>;
  for (var i = 0u; i < 4u; i++) { for (var j = 0u; j < 4u; j++) { acc[i][j] = 0.0; } }
  for (var s0 = 0u; s0 < q; s0 += 16u) {
    for (var k = 0u; k < 4u; k++) {
      let e = li + 256u * k;
      let ss = e / 64u; let pp = e % 64u;
      let s = s0 + ss;
      var xv = 0.0; var bv = 0.0;
      if (s < q) {
        let row = b * L + t0 + s;
        if (p0 + pp < hd) { xv = ws[s] * $x[o_x + row * sx + h * hd + p0 + pp]; }
        if (n0 + pp < N) { bv = $B[o_B + row * sB + g * N + n0 + pp]; }
      }
      Xs[ss * 65u + pp] = xv; Bs[ss * 65u + pp] = bv;
    }
    workgroupBarrier();
    for (var ss = 0u; ss < 16u; ss++) {
      var xr: array<f32, 4>; var br: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { xr[i] = Xs[ss * 65u + ty + 16u * i]; br[i] = Bs[ss * 65u + tx + 16u * i]; }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i][j] = fma(xr[i], br[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  let base = o_S + bch * hd * N;
  for (var i = 0u; i < 4u; i++) {
    let p = p0 + ty + 16u * i;
    if (p >= hd) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + tx + 16u * j;
      if (n < N) { $S[base + p * N + n] = acc[i][j]; }
    }
  }
}`,
};

/**
 * State passing H_c = exp(a_end,c) H_{c−1} + S_c, in place (S becomes the state entering each chunk); the state
 * in (flags 1) and out (flags 2). params: Bn, nh, hd, N, nC, flags
 */
export const SSDF_PASS: KernelSpec = {
  name: 'ssdf_pass',
  roles: ['aend', 'S', 'state'],
  writes: ['S', 'state'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let nh = pu(PK + 1u); let hd = pu(PK + 2u); let N = pu(PK + 3u); let nC = pu(PK + 4u); let flags = pu(PK + 5u);
  let HN = hd * N;
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * nh * HN) { return; }
  let e = i % HN; let bh = i / HN; let h = bh % nh; let b = bh / nh;
  var carry = 0.0;
  if ((flags & 1u) != 0u) { carry = $state[o_state + i]; }
  for (var c = 0u; c < nC; c++) {
    let k = (b * nC + c) * nh + h;
    let idx = o_S + k * HN + e;
    let s = $S[idx];
    $S[idx] = carry;
    carry = exp($aend[o_aend + k]) * carry + s;
  }
  if ((flags & 2u) != 0u) { $state[o_state + i] = carry; }
}`,
};

/**
 * Output per (b, chunk, head, 64 p): y_l = Σ_{s≤l} exp(a_l − a_s) (C_l·B_s) Δ_s x_s + exp(a_l) C_l · H_in + D x_l.
 * params: Bn, L, nh, hd, G, N, nC, flags (1 D, 2 dt bias), lo, hi, sx, sC, sdt
 */
export const SSDF_OUT: KernelSpec = {
  name: 'ssdf_out',
  roles: ['x', 'C', 'dt', 'A', 'dtb', 'cb', 'hin', 'D', 'y'],
  writes: ['y'],
  wgsl: (q) => /* wgsl */ `
${head(q)}
var<workgroup> Ms: array<f32, ${Number(q) * (Number(q) + 1)}>;
var<workgroup> T1: array<f32, 1040>;
var<workgroup> Cs: array<f32, ${16 * (Number(q) + 1)}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let nh = pu(PK + 2u); let hd = pu(PK + 3u); let G = pu(PK + 4u); let N = pu(PK + 5u);
  let nC = pu(PK + 6u); let flags = pu(PK + 7u); let lo = pf(PK + 8u); let hi = pf(PK + 9u);
  let sx = pu(PK + 10u); let sC = pu(PK + 11u); let sdt = pu(PK + 12u);
  let nPT = (hd + 63u) / 64u;
  let item = lin(wg, nw);
  if (item >= Bn * nC * nh * nPT) { return; }
  let pt = item % nPT; let bch = item / nPT;
  let h = bch % nh; let bc = bch / nh; let c = bc % nC; let b = bc / nC;
  let g = h / (nh / G);
  let p0 = pt * 64u;
  let t0 = c * QQ; let q = min(QQ, L - t0);
  ${CHUNK_DT}
  // the masked, decayed C·B block: M[l, s] = (C_l·B_s) exp(a_l − a_s) Δ_s for s ≤ l < q
  let cbBase = o_cb + ((b * nC + c) * G + g) * QQ * QQ;
  for (var e = li; e < QQ * QQ; e += 256u) {
    let l = e / QQ; let s = e % QQ;
    var v = 0.0;
    if (s <= l && l < q) { v = $cb[cbBase + e] * exp(cA[l] - cA[s]) * dS[s]; }
    Ms[l * QP + s] = v;
  }
  let tx = li % 16u; let ty = li / 16u;
  var acc: array<array<f32, 4>, TT>;
  for (var i = 0u; i < TT; i++) { for (var j = 0u; j < 4u; j++) { acc[i][j] = 0.0; } }
  // (1) diagonal block: Σ_s M[l, s] x_s[p]
  for (var s0 = 0u; s0 < q; s0 += 16u) {
    for (var k = 0u; k < 4u; k++) {
      let e = li + 256u * k;
      let ss = e / 64u; let pp = e % 64u;
      var xv = 0.0;
      if (s0 + ss < q && p0 + pp < hd) { xv = $x[o_x + (b * L + t0 + s0 + ss) * sx + h * hd + p0 + pp]; }
      T1[ss * 65u + pp] = xv;
    }
    workgroupBarrier();
    for (var ss = 0u; ss < 16u; ss++) {
      var xr: array<f32, 4>;
      for (var j = 0u; j < 4u; j++) { xr[j] = T1[ss * 65u + tx + 16u * j]; }
      for (var i = 0u; i < TT; i++) {
        let m = Ms[(ty + 16u * i) * QP + s0 + ss];
        for (var j = 0u; j < 4u; j++) { acc[i][j] = fma(m, xr[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  // (4) carried-in state: exp(a_l) Σ_n C_l[n] H_in[p, n]
  var acc2: array<array<f32, 4>, TT>;
  for (var i = 0u; i < TT; i++) { for (var j = 0u; j < 4u; j++) { acc2[i][j] = 0.0; } }
  let hBase = o_hin + bch * hd * N;
  for (var n0 = 0u; n0 < N; n0 += 16u) {
    for (var k = 0u; k < TT; k++) {
      let e = li + 256u * k;
      let l = e / 16u; let nn = e % 16u;
      var cv = 0.0;
      if (l < q && n0 + nn < N) { cv = $C[o_C + (b * L + t0 + l) * sC + g * N + n0 + nn]; }
      Cs[nn * QP + l] = cv;
    }
    for (var k = 0u; k < 4u; k++) {
      let e = li + 256u * k;
      let pp = e / 16u; let nn = e % 16u;
      var hv = 0.0;
      if (p0 + pp < hd && n0 + nn < N) { hv = $hin[hBase + (p0 + pp) * N + n0 + nn]; }
      T1[nn * 65u + pp] = hv;
    }
    workgroupBarrier();
    for (var nn = 0u; nn < 16u; nn++) {
      var hr: array<f32, 4>;
      for (var j = 0u; j < 4u; j++) { hr[j] = T1[nn * 65u + tx + 16u * j]; }
      for (var i = 0u; i < TT; i++) {
        let cv = Cs[nn * QP + ty + 16u * i];
        for (var j = 0u; j < 4u; j++) { acc2[i][j] = fma(cv, hr[j], acc2[i][j]); }
      }
    }
    workgroupBarrier();
  }
  var dv = 0.0;
  if ((flags & 1u) != 0u) { dv = $D[o_D + h]; }
  for (var i = 0u; i < TT; i++) {
    let l = ty + 16u * i;
    if (l >= q) { continue; }
    let decay = exp(cA[l]);
    let row = b * L + t0 + l;
    for (var j = 0u; j < 4u; j++) {
      let p = p0 + tx + 16u * j;
      if (p < hd) {
        $y[o_y + (row * nh + h) * hd + p] = acc[i][j] + decay * acc2[i][j] + dv * $x[o_x + row * sx + h * hd + p];
      }
    }
  }
}`,
};
