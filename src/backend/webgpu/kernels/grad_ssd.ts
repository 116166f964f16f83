/**
 * Backward of Mamba-2 SSD (training), the chunked (dual) form of the official Triton `mamba_chunk_scan_combined`
 * backward. Layouts as in ./ssd.ts: x, gy (= dL/dy), y [b, L, nh, hd]; dt, Δ (dtp), a (cum) [b, L, nh]; B, C
 * [b, L, G, N]; chunk states [b, nC, nh, hd, N]; head h reads group g = ⌊h/(nh/G)⌋. Per chunk c of q ≤ Q steps,
 * with a_t the running sum of Δ·A inside the chunk, H_in the state entering it (kept from the forward), dH_out the
 * gradient of the state leaving it and P[l, s] = (C_l·B_s) exp(a_l − a_s) for s ≤ l:
 *
 *   `SSD_DSTATES`  dS_c[p, n] = Σ_l exp(a_l) gy_l[p] C_l[n]            (the chunk's own gradient of H_in; 64×64 tiles)
 *   `SSD_DPASS`    dH_out_c = dH_in_{c+1},  dH_in_c = dS_c + exp(a_end) dH_out_c, last chunk to first, in place;
 *                  with per-256-element partials of <dH_out_c, H_out_c> (the chunk decay's gradient)
 *   `SSD_DCB`      dCB[l, s] = Σ_{heads of the group} exp(a_l − a_s) Δ_s Σ_p gy_l[p] x_s[p]   (s ≤ l), as partials
 *                  over slices of the group's heads (parallelism when G and b·nC are small)
 *   `SSD_DX`       u_s[p] = Σ_l P[l, s] gy_l[p] + exp(a_end − a_s) Σ_n B_s[n] dH_out[p, n];  dx = Δ_s u + D gy,
 *                  and per (t, head): Σ_p x·u (Δ's direct gradient), Σ_p gy·(y − D x), Σ_p gy·x (for dD)
 *   `SSD_DBC`      variant C: dC_l[n] = Σ_h Σ_p exp(a_l) gy_l[p] H_in[p, n] + Σ_s dCB[l, s] B_s[n]
 *                  variant B: dB_s[n] = Σ_h Σ_p exp(a_end − a_s) Δ_s x_s[p] dH_out[p, n] + Σ_l dCB[l, s] C_l[n]
 *                  (the sum over the group's heads is a loop inside the workgroup: deterministic)
 *   `SSD_DFIN`     per (b, chunk, head), last step to first: the gradient of a_t,
 *                    da_t = gy_t·(y_t − D x_t) − Δ_t (Σ_p x u)_t + [t last] <dH_out, H_out>,
 *                  its reverse running sum ρ_t, dΔ_t = (Σ_p x u)_t + A ρ_t, d(dt)_t = dΔ_t σ(dt_t + bias) (0 where
 *                  Δ is clamped), and the chunk's partials of dA (Σ Δ ρ), d(bias) (Σ d(dt)) and dD (Σ gy·x), summed
 *                  over (b, chunk) afterwards by the column-sum kernel.
 *
 * The a_t identity: a enters y through exp(a_l − a_s) (intra-chunk), exp(a_l) (the carried state), exp(a_end − a_s)
 * (the chunk state) and exp(a_end) (state passing); the first two sum to gy_t·(y_t − D x_t), the third is
 * −Δ_t times the state part of Σ_p x·u, the fourth and the third's a_end side make <dH_out, H_out>.
 * Workgroup memory ≤ ~9 KiB for Q = 64. Q (16, 32 or 64) is the variant (DBC: Q then 'B' or 'C').
 */
import type { KernelSpec } from '../runtime.js';
import { causal, chunkConsts, chunkOuterKernel, chunkSumArrays, chunkSums, decayed, tileFma } from './ssd_tiles.js';

const HEAD = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();`;

/** params: Bn, L, nh, hd, G, N, nC (Q is the variant). One workgroup per (b, c, h, 64 rows p, 64 columns n). */
export const SSD_DSTATES: KernelSpec = {
  name: 'ssd_dstates',
  roles: ['gy', 'C', 'cum', 'dS'],
  writes: ['dS'],
  wgsl: (q) => chunkOuterKernel(q, { u: 'gy', v: 'C', out: 'dS', weight: (k) => `exp($cum[o_cum + ${k}])` }),
};

/**
 * params: Bn, L, nh, HN (= hd·N), Q, nC, nBlk (= ⌈HN/256⌉). One workgroup per (b, h, 256 elements of the state);
 * S holds the states entering each chunk (read), dS the chunks' own gradients (replaced by dH_out); part
 * [b, nC, nh, nBlk] the partials of <dH_out_c, H_out_c> (H_out_c = the state entering c + 1; 0 for the last chunk).
 */
export const SSD_DPASS: KernelSpec = {
  name: 'ssd_dpass',
  roles: ['cum', 'S', 'dS', 'part'],
  writes: ['dS', 'part'],
  wgsl: () => /* wgsl */ `
var<workgroup> red: array<f32, 256>;
${HEAD}
  let Bn = pu(PK); let L = pu(PK + 1u); let nh = pu(PK + 2u); let HN = pu(PK + 3u);
  let Q = pu(PK + 4u); let nC = pu(PK + 5u); let nBlk = pu(PK + 6u);
  let item = lin(wg, nw);
  if (item >= Bn * nh * nBlk) { return; }
  let blk = item % nBlk; let bh = item / nBlk; let h = bh % nh; let b = bh / nh;
  let e = blk * 256u + li;
  let live = e < HN;
  var carry = 0.0;
  for (var k = 0u; k < nC; k++) {
    let c = nC - 1u - k;
    let idx = ((b * nC + c) * nh + h) * HN + e;
    var v = 0.0; var prod = 0.0;
    if (live) {
      v = $dS[o_dS + idx];
      $dS[o_dS + idx] = carry;
      if (c + 1u < nC) { prod = carry * $S[o_S + idx + nh * HN]; }
    }
    red[li] = prod;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
      if (li < s) { red[li] += red[li + s]; }
      workgroupBarrier();
    }
    if (li == 0u) { $part[o_part + ((b * nC + c) * nh + h) * nBlk + blk] = red[0]; }
    workgroupBarrier();
    let tEnd = min(L, c * Q + Q) - 1u;
    carry = exp($cum[o_cum + (b * L + tEnd) * nh + h]) * carry + v;
  }
}`,
};

/**
 * params: Bn, L, nh, hd, G, nC, nSplit, hps (heads per slice). One workgroup per (b, c, g, slice of heads);
 * dcb [b, nC, G, nSplit, Q, Q] (zero outside s ≤ l < q).
 */
export const SSD_DCB: KernelSpec = {
  name: 'ssd_dcb',
  roles: ['x', 'gy', 'dtp', 'cum', 'dcb'],
  writes: ['dcb'],
  wgsl: (q) => /* wgsl */ `
${chunkConsts(Number(q))}
var<workgroup> Gs: array<f32, ${16 * (Number(q) + 1)}>;
var<workgroup> Xs: array<f32, ${16 * (Number(q) + 1)}>;
${chunkSumArrays(Number(q))}
${HEAD}
  let Bn = pu(PK); let L = pu(PK + 1u); let nh = pu(PK + 2u); let hd = pu(PK + 3u); let G = pu(PK + 4u);
  let nC = pu(PK + 5u); let nSplit = pu(PK + 6u); let hps = pu(PK + 7u);
  let item = lin(wg, nw);
  if (item >= Bn * nC * G * nSplit) { return; }
  let sp = item % nSplit; let bcg = item / nSplit; let g = bcg % G; let bc = bcg / G; let c = bc % nC; let b = bc / nC;
  let hpg = nh / G;
  let h0 = g * hpg + sp * hps; let h1 = min(g * hpg + hpg, h0 + hps);
  let t0 = c * QQ; let q = min(QQ, L - t0);
  let tx = li % 16u; let ty = li / 16u;
  var tot: array<array<f32, TT>, TT>;
  for (var h = h0; h < h1; h++) {
    workgroupBarrier();
    ${chunkSums('load')}
    var acc: array<array<f32, TT>, TT>; // zeroed explicitly: some compilers hoist a loop-body var and keep its value
    for (var i = 0u; i < TT; i++) { acc[i] = array<f32, TT>(); }
    for (var p0 = 0u; p0 < hd; p0 += 16u) {
      for (var k = 0u; k < TT; k++) {
        let e = li + 256u * k;
        let pp = e % 16u; let l = e / 16u;
        var gv = 0.0; var xv = 0.0;
        if (l < q && p0 + pp < hd) {
          let o = ((b * L + t0 + l) * nh + h) * hd + p0 + pp;
          gv = $gy[o_gy + o]; xv = $x[o_x + o];
        }
        Gs[pp * QP + l] = gv; Xs[pp * QP + l] = xv;
      }
      workgroupBarrier();
      ${tileFma({ k: 'pp', I: 'TT', J: 'TT', a: (i) => `Gs[pp * QP + ty + 16u * ${i}]`, b: (j) => `Xs[pp * QP + tx + 16u * ${j}]` })}
      workgroupBarrier();
    }
    for (var i = 0u; i < TT; i++) {
      let l = ty + 16u * i;
      for (var j = 0u; j < TT; j++) {
        let s = tx + 16u * j;
        if (${causal('l', 's')}) { tot[i][j] += ${decayed('acc[i][j]', 'l', 's', true)}; }
      }
    }
  }
  let base = o_dcb + item * QQ * QQ;
  for (var i = 0u; i < TT; i++) {
    for (var j = 0u; j < TT; j++) { $dcb[base + (ty + 16u * i) * QQ + tx + 16u * j] = tot[i][j]; }
  }
}`,
};

/**
 * params: Bn, L, nh, hd, G, N, nC, hasD (Q is the variant). One workgroup per (b, c, h), 64 columns p at a time.
 * Roles: dH = dH_out per chunk [b, nC, nh, hd, N]; ts [3, b·L·nh] gets Σ_p x·u, Σ_p gy·(y − D x), Σ_p gy·x.
 */
export const SSD_DX: KernelSpec = {
  name: 'ssd_dx',
  roles: ['x', 'gy', 'y', 'B', 'cb', 'dtp', 'cum', 'dH', 'D', 'dx', 'ts'],
  writes: ['dx', 'ts'],
  wgsl: (q) => /* wgsl */ `
${chunkConsts(Number(q))}
var<workgroup> As: array<f32, 1040>;
var<workgroup> Bs: array<f32, 1040>;
${chunkSumArrays(Number(q))}
${HEAD}
  let Bn = pu(PK); let L = pu(PK + 1u); let nh = pu(PK + 2u); let hd = pu(PK + 3u); let G = pu(PK + 4u); let N = pu(PK + 5u);
  let nC = pu(PK + 6u); let hasD = pu(PK + 7u) != 0u;
  let item = lin(wg, nw);
  if (item >= Bn * nC * nh) { return; }
  let h = item % nh; let bc = item / nh; let c = bc % nC; let b = bc / nC;
  let g = h / (nh / G);
  let t0 = c * QQ; let q = min(QQ, L - t0);
  let BLH = Bn * L * nh;
  ${chunkSums('load')}
  workgroupBarrier();
  let aEnd = cA[q - 1u];
  var dv = 0.0;
  if (hasD) { dv = $D[o_D + h]; }
  let cbBase = o_cb + ((b * nC + c) * G + g) * QQ * QQ;
  let hBase = o_dH + item * hd * N;
  let tx = li % 16u; let ty = li / 16u;
  var part: array<array<f32, TT>, 3>;
  for (var p0 = 0u; p0 < hd; p0 += 64u) {
    var acc: array<array<f32, 4>, TT>;
    for (var i = 0u; i < TT; i++) { acc[i] = array<f32, 4>(); } // explicitly: see SSD_DCB
    // intra-chunk: Σ_l P[l, s] gy_l[p]
    for (var l0 = 0u; l0 < q; l0 += 16u) {
      for (var k = 0u; k < TT; k++) {
        let e = li + 256u * k;
        let s = e % QQ; let ll = e / QQ; let l = l0 + ll;
        var v = 0.0;
        if (${causal('l', 's')}) { v = ${decayed('$cb[cbBase + l * QQ + s]', 'l', 's', false)}; }
        As[ll * 65u + s] = v;
      }
      for (var k = 0u; k < 4u; k++) {
        let e = li + 256u * k;
        let pp = e % 64u; let ll = e / 64u; let l = l0 + ll;
        var v = 0.0;
        if (l < q && p0 + pp < hd) { v = $gy[o_gy + ((b * L + t0 + l) * nh + h) * hd + p0 + pp]; }
        Bs[ll * 65u + pp] = v;
      }
      workgroupBarrier();
      ${tileFma({ k: 'll', I: 'TT', J: '4u', a: (i) => `As[ll * 65u + ty + 16u * ${i}]`, b: (j) => `Bs[ll * 65u + tx + 16u * ${j}]` })}
      workgroupBarrier();
    }
    // the chunk state: exp(a_end − a_s) Σ_n B_s[n] dH_out[p, n]
    for (var n0 = 0u; n0 < N; n0 += 16u) {
      for (var k = 0u; k < TT; k++) {
        let e = li + 256u * k;
        let nn = e % 16u; let s = e / 16u;
        var v = 0.0;
        if (s < q && n0 + nn < N) { v = $B[o_B + ((b * L + t0 + s) * G + g) * N + n0 + nn] * exp(aEnd - cA[s]); }
        As[nn * 65u + s] = v;
      }
      for (var k = 0u; k < 4u; k++) {
        let e = li + 256u * k;
        let nn = e % 16u; let pp = e / 16u;
        var v = 0.0;
        if (p0 + pp < hd && n0 + nn < N) { v = $dH[hBase + (p0 + pp) * N + n0 + nn]; }
        Bs[nn * 65u + pp] = v;
      }
      workgroupBarrier();
      ${tileFma({ k: 'nn', I: 'TT', J: '4u', a: (i) => `As[nn * 65u + ty + 16u * ${i}]`, b: (j) => `Bs[nn * 65u + tx + 16u * ${j}]` })}
      workgroupBarrier();
    }
    for (var i = 0u; i < TT; i++) {
      let s = ty + 16u * i;
      if (s >= q) { continue; }
      for (var j = 0u; j < 4u; j++) {
        let p = p0 + tx + 16u * j;
        if (p < hd) {
          let o = ((b * L + t0 + s) * nh + h) * hd + p;
          let u = acc[i][j];
          let xv = $x[o_x + o]; let gv = $gy[o_gy + o];
          $dx[o_dx + o] = dS[s] * u + dv * gv;
          part[0][i] += xv * u;
          part[1][i] += gv * ($y[o_y + o] - dv * xv);
          part[2][i] += gv * xv;
        }
      }
    }
  }
  // per-step sums over p: the 16 column threads of each row, in a fixed order
  for (var k = 0u; k < 3u; k++) {
    workgroupBarrier();
    for (var i = 0u; i < TT; i++) { As[(ty + 16u * i) * 16u + tx] = part[k][i]; }
    workgroupBarrier();
    if (li < q) {
      var s = 0.0;
      for (var j = 0u; j < 16u; j++) { s += As[li * 16u + j]; }
      $ts[o_ts + k * BLH + (b * L + t0 + li) * nh + h] = s;
    }
  }
}`,
};

/**
 * params: Bn, L, nh, hd, G, N, nC, nSplit (variant: Q then 'C' or 'B'). One workgroup per (b, c, g, 64 columns n).
 * Roles — C: v = gy, st = the states entering each chunk, bc = B; B: v = x, st = dH_out, bc = C. out: dC or dB.
 */
export const SSD_DBC: KernelSpec = {
  name: 'ssd_dbc',
  roles: ['v', 'st', 'dtp', 'cum', 'dcb', 'bc', 'out'],
  writes: ['out'],
  wgsl: (variant) => {
    const q = Number(variant.slice(0, -1));
    const isC = variant.endsWith('C');
    return /* wgsl */ `
${chunkConsts(q)}
var<workgroup> As: array<f32, 1040>;
var<workgroup> Bs: array<f32, 1040>;
var<workgroup> wv: array<f32, ${q}>;
${HEAD}
  let Bn = pu(PK); let L = pu(PK + 1u); let nh = pu(PK + 2u); let hd = pu(PK + 3u); let G = pu(PK + 4u); let N = pu(PK + 5u);
  let nC = pu(PK + 6u); let nSplit = pu(PK + 7u);
  let nNT = (N + 63u) / 64u;
  let item = lin(wg, nw);
  if (item >= Bn * nC * G * nNT) { return; }
  let nt = item % nNT; let bcg = item / nNT; let g = bcg % G; let bc = bcg / G; let c = bc % nC; let b = bc / nC;
  let n0 = nt * 64u;
  let t0 = c * QQ; let q = min(QQ, L - t0);
  let hpg = nh / G;
  let tx = li % 16u; let ty = li / 16u;
  var acc: array<array<f32, 4>, TT>;
  // the states: Σ_h Σ_p w_t v_t[p] st[p, n]
  for (var hh = 0u; hh < hpg; hh++) {
    let h = g * hpg + hh;
    workgroupBarrier();
    if (li < QQ) {
      var w = 0.0;
      if (li < q) {
        let k = (b * L + t0 + li) * nh + h;
        ${isC ? 'w = exp($cum[o_cum + k]);' : 'w = exp($cum[o_cum + (b * L + t0 + q - 1u) * nh + h] - $cum[o_cum + k]) * $dtp[o_dtp + k];'}
      }
      wv[li] = w;
    }
    workgroupBarrier();
    let stBase = o_st + (bc * nh + h) * hd * N;
    for (var p0 = 0u; p0 < hd; p0 += 16u) {
      for (var k = 0u; k < TT; k++) {
        let e = li + 256u * k;
        let pp = e % 16u; let t = e / 16u;
        var v = 0.0;
        if (t < q && p0 + pp < hd) { v = wv[t] * $v[o_v + ((b * L + t0 + t) * nh + h) * hd + p0 + pp]; }
        As[pp * 65u + t] = v;
      }
      for (var k = 0u; k < 4u; k++) {
        let e = li + 256u * k;
        let nn = e % 64u; let pp = e / 64u;
        var v = 0.0;
        if (p0 + pp < hd && n0 + nn < N) { v = $st[stBase + (p0 + pp) * N + n0 + nn]; }
        Bs[pp * 65u + nn] = v;
      }
      workgroupBarrier();
      ${tileFma({ k: 'pp', I: 'TT', J: '4u', a: (i) => `As[pp * 65u + ty + 16u * ${i}]`, b: (j) => `Bs[pp * 65u + tx + 16u * ${j}]` })}
      workgroupBarrier();
    }
  }
  // intra-chunk: ${isC ? 'Σ_s dCB[l, s] B_s[n]' : 'Σ_l dCB[l, s] C_l[n]'} (dCB summed over the head slices)
  let dBase = o_dcb + bcg * nSplit * QQ * QQ;
  for (var k0 = 0u; k0 < q; k0 += 16u) {
    for (var k = 0u; k < TT; k++) {
      let e = li + 256u * k;
      ${isC ? 'let kk = e % 16u; let t = e / 16u; let idx = t * QQ + k0 + kk;' : 'let t = e % QQ; let kk = e / QQ; let idx = (k0 + kk) * QQ + t;'}
      var v = 0.0;
      for (var sp = 0u; sp < nSplit; sp++) { v += $dcb[dBase + sp * QQ * QQ + idx]; }
      As[kk * 65u + t] = v;
    }
    for (var k = 0u; k < 4u; k++) {
      let e = li + 256u * k;
      let nn = e % 64u; let kk = e / 64u;
      var v = 0.0;
      if (k0 + kk < q && n0 + nn < N) { v = $bc[o_bc + ((b * L + t0 + k0 + kk) * G + g) * N + n0 + nn]; }
      Bs[kk * 65u + nn] = v;
    }
    workgroupBarrier();
    ${tileFma({ k: 'kk', I: 'TT', J: '4u', a: (i) => `As[kk * 65u + ty + 16u * ${i}]`, b: (j) => `Bs[kk * 65u + tx + 16u * ${j}]` })}
    workgroupBarrier();
  }
  for (var i = 0u; i < TT; i++) {
    let t = ty + 16u * i;
    if (t >= q) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + tx + 16u * j;
      if (n < N) { $out[o_out + ((b * L + t0 + t) * G + g) * N + n] = acc[i][j]; }
    }
  }
}`;
  },
};

/**
 * params: Bn, L, nh, Q, nC, nBlk, flags (2 bias), lo, hi. One thread per (b, c, h). Roles: dt (raw), dtb (bias),
 * A, dtp (Δ), ts (from SSD_DX), part (from SSD_DPASS); writes ddt [b, L, nh] and red [3, b·nC, nh]: the chunk's
 * partials of dA, d(bias), dD.
 */
export const SSD_DFIN: KernelSpec = {
  name: 'ssd_dfin',
  roles: ['dt', 'dtb', 'A', 'dtp', 'ts', 'part', 'ddt', 'red'],
  writes: ['ddt', 'red'],
  wgsl: () => /* wgsl */ `
${HEAD}
  let Bn = pu(PK); let L = pu(PK + 1u); let nh = pu(PK + 2u); let Q = pu(PK + 3u); let nC = pu(PK + 4u);
  let nBlk = pu(PK + 5u); let flags = pu(PK + 6u); let lo = pf(PK + 7u); let hi = pf(PK + 8u);
  let i = lin(wg, nw) * 256u + li;
  let NB = Bn * nC * nh;
  if (i >= NB) { return; }
  let h = i % nh; let bc = i / nh; let c = bc % nC; let b = bc / nC;
  let BLH = Bn * L * nh;
  var bias = 0.0;
  if ((flags & 2u) != 0u) { bias = $dtb[o_dtb + h]; }
  let a = $A[o_A + h];
  var endTerm = 0.0;
  for (var k = 0u; k < nBlk; k++) { endTerm += $part[o_part + i * nBlk + k]; }
  let t0 = c * Q; let t1 = min(L, t0 + Q);
  var rc = 0.0; var sA = 0.0; var sB = 0.0; var sD = 0.0;
  for (var t = t1; t > t0; t--) {
    let k = (b * L + t - 1u) * nh + h;
    let direct = $ts[o_ts + k];
    let delta = $dtp[o_dtp + k];
    var da = $ts[o_ts + BLH + k] - delta * direct;
    if (t == t1) { da += endTerm; }
    rc += da;
    sA += delta * rc;
    let v = $dt[o_dt + k] + bias;
    let sp = softplus(v);
    var gr = 0.0;
    if (!(sp < lo) && !(sp > hi)) { gr = (direct + a * rc) / (1.0 + exp(-v)); }
    $ddt[o_ddt + k] = gr;
    sB += gr;
    sD += $ts[o_ts + 2u * BLH + k];
  }
  $red[o_red + i] = sA;
  $red[o_red + NB + i] = sB;
  $red[o_red + 2u * NB + i] = sD;
}`,
};
