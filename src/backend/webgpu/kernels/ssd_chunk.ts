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
import { STATE_TILE, causal, chunkConsts, chunkSumArrays, chunkSums, decayed, serialPass, splatFma, tileFma } from './ssd_tiles.js';

/** QQ, TT, QP and the chunk's a_t (cA) and Δ_t (dS) in workgroup memory (ssd_tiles.ts) */
function head(q: string): string {
  return `${chunkConsts(Number(q))}
${chunkSumArrays(Number(q))}`;
}

/**
 * C_l · B_s per (b, chunk, group), stored transposed: cb[s, l] ([Q, Q]), in three workgroups of a (Q/2)² quadrant
 * each — the one above the diagonal (s > l: masked) is skipped. params: Bn, L, G, N, nC, sB, sC
 */
export const SSDF_CB: KernelSpec = {
  name: 'ssdf_cb',
  roles: ['B', 'C', 'cb'],
  writes: ['cb'],
  wgsl: (q) => {
    const H = Number(q) / 2;
    return /* wgsl */ `
const QQ: u32 = ${q}u; const QH: u32 = ${H}u; const TT: u32 = ${H / 16}u; const QP: u32 = ${H + 1}u;
var<workgroup> Cs: array<f32, ${16 * (H + 1)}>;
var<workgroup> Bs: array<f32, ${16 * (H + 1)}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let G = pu(PK + 2u); let N = pu(PK + 3u); let nC = pu(PK + 4u);
  let sB = pu(PK + 5u); let sC = pu(PK + 6u);
  let item3 = lin(wg, nw);
  if (item3 >= Bn * nC * G * 3u) { return; }
  let quad = item3 % 3u; let item = item3 / 3u;
  // quadrants (l half, s half): (0, 0), (1, 0), (1, 1)
  let l0 = select(0u, QH, quad > 0u); let s0 = select(0u, QH, quad == 2u);
  let g = item % G; let bc = item / G; let c = bc % nC; let b = bc / nC;
  let t0 = c * QQ; let q = min(QQ, L - t0);
  let tx = li % 16u; let ty = li / 16u;
  var acc: array<array<f32, TT>, TT>;
  for (var i = 0u; i < TT; i++) { for (var j = 0u; j < TT; j++) { acc[i][j] = 0.0; } }
  for (var n0 = 0u; n0 < N; n0 += 16u) {
    for (var k = 0u; k < (QH * 16u + 255u) / 256u; k++) {
      let e = li + 256u * k;
      if (e < QH * 16u) {
        let r = e / 16u; let nn = e % 16u;
        let n = n0 + nn;
        var cv = 0.0; var bv = 0.0;
        if (n < N) {
          if (l0 + r < q) { cv = $C[o_C + (b * L + t0 + l0 + r) * sC + g * N + n]; }
          if (s0 + r < q) { bv = $B[o_B + (b * L + t0 + s0 + r) * sB + g * N + n]; }
        }
        Cs[nn * QP + r] = cv; Bs[nn * QP + r] = bv;
      }
    }
    workgroupBarrier();
    ${tileFma({ k: 'nn', I: 'TT', J: 'TT', a: (i) => `Cs[nn * QP + ty + 16u * ${i}]`, b: (j) => `Bs[nn * QP + tx + 16u * ${j}]` })}
    workgroupBarrier();
  }
  let base = o_cb + item * QQ * QQ;
  for (var i = 0u; i < TT; i++) {
    for (var j = 0u; j < TT; j++) { $cb[base + (s0 + tx + 16u * j) * QQ + l0 + ty + 16u * i] = acc[i][j]; }
  }
}`;
  },
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
var<workgroup> Xs: array<vec4<f32>, 256>;
var<workgroup> Bs: array<vec4<f32>, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let nh = pu(PK + 2u); let hd = pu(PK + 3u); let G = pu(PK + 4u); let N = pu(PK + 5u); let nC = pu(PK + 6u);
  let flags = pu(PK + 7u); let lo = pf(PK + 8u); let hi = pf(PK + 9u); let sx = pu(PK + 10u); let sB = pu(PK + 11u); let sdt = pu(PK + 12u);
  ${STATE_TILE}
  ${chunkSums('compute')}
  let aEnd = cA[q - 1u];
  if (li < QQ) { ws[li] = exp(aEnd - cA[li]) * dS[li]; }
  if (li == 0u && pt == 0u && nt == 0u) { $aend[o_aend + bch] = aEnd; }
  workgroupBarrier();
  // thread (tx, ty): S[p0 + 4ty + i, n0 + 4tx + j]; tiles of 16 steps as vec4 over p (x) and n (B)
  let tx = li % 16u; let ty = li / 16u;
  var acc: array<vec4<f32>, 4>;
  for (var i = 0u; i < 4u; i++) { acc[i] = vec4<f32>(0.0); }
  for (var s0 = 0u; s0 < q; s0 += 16u) {
    {
      let s = s0 + ty;
      var xv = vec4<f32>(0.0); var bv = vec4<f32>(0.0);
      if (s < q) {
        let row = b * L + t0 + s;
        let w = ws[s];
        for (var j = 0u; j < 4u; j++) {
          let p = p0 + 4u * tx + j;
          if (p < hd) { xv[j] = w * $x[o_x + row * sx + h * hd + p]; }
          let n = n0 + 4u * tx + j;
          if (n < N) { bv[j] = $B[o_B + row * sB + g * N + n]; }
        }
      }
      Xs[li] = xv; Bs[li] = bv;
    }
    workgroupBarrier();
    ${splatFma({ k: 'ss', a: 'Xs[ss * 16u + ty]', b: 'Bs[ss * 16u + tx]', splat: 'a', T: 'vec4<f32>' })}
    workgroupBarrier();
  }
  let base = o_S + bch * hd * N;
  for (var i = 0u; i < 4u; i++) {
    let p = p0 + 4u * ty + i;
    if (p >= hd) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + 4u * tx + j;
      if (n < N) { $S[base + p * N + n] = acc[i][j]; }
    }
  }
}`,
};

/** chunks whose states `SSDF_PASS` loads before it writes the carries over them */
const PASS_BATCH = 8;

/** a state passing kernel: one thread per state element (b, h, e < hd·N), `loop` carrying `carry` over the chunks */
function passKernel(name: string, loop: string): KernelSpec {
  return {
    name,
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
  ${loop}
  if ((flags & 2u) != 0u) { $state[o_state + i] = carry; }
}`,
  };
}

const batch = [...Array(PASS_BATCH).keys()];

/**
 * State passing H_c = exp(a_end,c) H_{c−1} + S_c, in place (S becomes the state entering each chunk); the state
 * in (flags 1) and out (flags 2). One thread per state element (b, h, p, n), chunks in order; the states of
 * PASS_BATCH chunks are loaded (independent loads, all in flight) before the carries over them are stored, so a
 * thread waits for memory nC / PASS_BATCH times instead of nC times (the per-chunk loop, `SSDF_PASS_V1`, waits
 * for each load: a store to S sits between one chunk's load and the next). Same arithmetic, same order.
 * params: Bn, nh, hd, N, nC, flags
 */
export const SSDF_PASS: KernelSpec = passKernel('ssdf_pass', /* wgsl */ `
  // chunk c's element at idx (+ stride per chunk), its Δ·A total at ka (+ nh per chunk)
  let stride = nh * HN;
  var idx = o_S + (b * nC * nh + h) * HN + e;
  var ka = o_aend + b * nC * nh + h;
  var c = 0u;
  for (; c + ${PASS_BATCH}u <= nC; c += ${PASS_BATCH}u) {
${batch.map((k) => `    let sv${k} = $S[idx + ${k}u * stride]; let dv${k} = exp($aend[ka + ${k}u * nh]);`).join('\n')}
${batch.map((k) => `    $S[idx + ${k}u * stride] = carry; carry = dv${k} * carry + sv${k};`).join('\n')}
    idx += ${PASS_BATCH}u * stride; ka += ${PASS_BATCH}u * nh;
  }
  for (; c < nC; c++) {
    let sv = $S[idx];
    $S[idx] = carry;
    carry = exp($aend[ka]) * carry + sv;
    idx += stride; ka += nh;
  }`);

/** `SSDF_PASS` of session 24 (`ssd: 'fused-v1'`): one chunk at a time, each load waited for. Same params. */
export const SSDF_PASS_V1: KernelSpec = passKernel('ssdf_pass_v1', serialPass((k) => `$aend[o_aend + ${k}]`));

/**
 * Output per (b, chunk, head, 64 p): y_l = Σ_{s≤l} exp(a_l − a_s) (C_l·B_s) Δ_s x_s + exp(a_l) C_l · H_in + D x_l.
 * Thread (tx, ty) owns rows l = R·ty + r (R = Q/16) and columns p = p0 + 4tx + j; workgroup tiles are vectors over
 * those (vecR over l, vec4 over p), so each multiply-add step reads two vectors from workgroup memory for 4R FMAs.
 * params: Bn, L, nh, hd, G, N, nC, flags (1 D, 2 dt bias), lo, hi, sx, sC, sdt
 */
export const SSDF_OUT: KernelSpec = outKernel('ssdf_out', true);

/** `SSDF_OUT` of session 24 (`ssd: 'fused-v1'`): each tile's global loads waited for before its products. Same params. */
export const SSDF_OUT_V1: KernelSpec = outKernel('ssdf_out_v1', false);

/**
 * The output kernel; `prefetch`: the global loads of the next tile (x, then C and H_in) are issued before the products
 * over the current one and stored to workgroup memory after them, and the first x tile's before the chunk's Δ·A scan
 * and the masked C·B block, so memory latency overlaps arithmetic (same products in the same order either way).
 */
function outKernel(name: string, prefetch: boolean): KernelSpec {
  return {
    name,
    roles: ['x', 'C', 'dt', 'A', 'dtb', 'cb', 'hin', 'D', 'y'],
    writes: ['y'],
    wgsl: (q) => {
      const R = Number(q) / 16, V = `vec${R}<f32>`;
      // x rows s0 + ty, columns p0 + 4tx + j → xn; C rows k·R + r and H_in rows p0 + 4k + j at column n0 + nn → cn, hn
      const loadX = (s0: string) => /* wgsl */ `
    xn = vec4<f32>(0.0);
    if (${s0} + ty < q) {
      let row = b * L + t0 + ${s0} + ty;
      for (var j = 0u; j < 4u; j++) {
        let p = p0 + 4u * tx + j;
        if (p < hd) { xn[j] = $x[o_x + row * sx + h * hd + p]; }
      }
    }`;
      const loadCH = (n0: string) => /* wgsl */ `
    cn = ${V}(0.0); hn = vec4<f32>(0.0);
    if (${n0} + tx < N) {
      for (var r = 0u; r < RL; r++) {
        let l = ty * RL + r;
        if (l < q) { cn[r] = $C[o_C + (b * L + t0 + l) * sC + g * N + ${n0} + tx]; }
      }
      for (var j = 0u; j < 4u; j++) {
        let p = p0 + 4u * ty + j;
        if (p < hd) { hn[j] = $hin[hBase + p * N + ${n0} + tx]; }
      }
    }`;
      return /* wgsl */ `
${head(q)}
const RL: u32 = ${R}u;
var<workgroup> Ms: array<${V}, ${Number(q) * 16}>;
var<workgroup> T1: array<vec4<f32>, 272>;
var<workgroup> Cs: array<${V}, 272>;
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
  let tx = li % 16u; let ty = li / 16u;
  let hBase = o_hin + bch * hd * N;
  var xn: vec4<f32>; var cn: ${V}; var hn: vec4<f32>;${prefetch ? loadX('0u') : ''}
  ${chunkSums('compute')}
  // the masked, decayed C·B block by columns: Ms[s·16 + ly] = M[R·ly + r, s] = (C_l·B_s) exp(a_l − a_s) Δ_s, s ≤ l < q
  let cbBase = o_cb + ((b * nC + c) * G + g) * QQ * QQ;
  for (var e = li; e < QQ * 16u; e += 256u) {
    let s = e / 16u; let ly = e % 16u;
    var v = ${V}(0.0);
    for (var r = 0u; r < RL; r++) {
      let l = ly * RL + r;
      if (${causal('l', 's')}) { v[r] = ${decayed('$cb[cbBase + s * QQ + l]', 'l', 's', true)}; }
    }
    Ms[e] = v;
  }
  var acc: array<${V}, 4>;
  var acc2: array<${V}, 4>;
  for (var j = 0u; j < 4u; j++) { acc[j] = ${V}(0.0); acc2[j] = ${V}(0.0); }
  // (1) diagonal block: Σ_s M[l, s] x_s[p], 16 steps s a tile
  for (var s0 = 0u; s0 < q; s0 += 16u) {${prefetch ? '' : loadX('s0')}
    T1[ty * 17u + tx] = xn;
    workgroupBarrier();${prefetch ? `
    if (s0 + 16u < q) {${loadX('s0 + 16u')}
    } else {${loadCH('0u')}
    }` : ''}
    ${splatFma({ k: 'ss', a: 'Ms[(s0 + ss) * 16u + ty]', b: 'T1[ss * 17u + tx]', splat: 'b', T: V })}
    workgroupBarrier();
  }
  // (4) carried-in state: Σ_n C_l[n] H_in[p, n] (times exp(a_l) below), 16 n a tile
  for (var n0 = 0u; n0 < N; n0 += 16u) {${prefetch ? '' : loadCH('n0')}
    Cs[tx * 17u + ty] = cn; T1[tx * 17u + ty] = hn;
    workgroupBarrier();${prefetch ? `
    if (n0 + 16u < N) {${loadCH('n0 + 16u')}
    }` : ''}
    ${splatFma({ k: 'nn', a: 'Cs[nn * 17u + ty]', b: 'T1[nn * 17u + tx]', splat: 'b', T: V, acc: 'acc2' })}
    workgroupBarrier();
  }
  var dv = 0.0;
  if ((flags & 1u) != 0u) { dv = $D[o_D + h]; }
  for (var r = 0u; r < RL; r++) {
    let l = ty * RL + r;
    if (l >= q) { continue; }
    let decay = exp(cA[l]);
    let row = b * L + t0 + l;
    for (var j = 0u; j < 4u; j++) {
      let p = p0 + 4u * tx + j;
      if (p < hd) {
        $y[o_y + (row * nh + h) * hd + p] = acc[j][r] + decay * acc2[j][r] + dv * $x[o_x + row * sx + h * hd + p];
      }
    }
  }
}`;
    },
  };
}
