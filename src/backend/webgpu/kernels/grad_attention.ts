/**
 * Causal grouped-query attention for training (flash-attention style): q [b, L, Hq, hd], k/v [b, L, Hkv, hd],
 * query head h reads kv head ⌊h / (Hq/Hkv)⌋, P = softmax(scale·q·kᵀ) masked causally.
 * - `ATTN_FWD`: O = P·V and the per-row log-sum-exp lse [b, L, Hq] (the only thing the backward keeps besides O).
 *   One workgroup per (b, query head, block of 64 query rows); keys in tiles of 32 with an online softmax.
 *   Inference prefill runs it too (flags, see below): k/v are then a KV cache [b, cap, Hkv, hd] whose row b holds
 *   past[b] earlier positions, query row t sits at position past[b] + t, and no lse is written.
 * - `ATTN_DELTA`: D = Σ_d dO·O per row (D_i = Σ_s P_is·dP_is).
 * - `ATTN_DQ`: dQ = scale·dS·K with P recomputed from lse, dP = dO·Vᵀ, dS = P∘(dP − D); one workgroup per
 *   (b, query head, block of 64 query rows), keys in tiles of 32.
 * - `ATTN_DKV`: dK = scale·dSᵀ·Q, dV = Pᵀ·dO; one workgroup per (b, kv head, block of 64 keys), looping over the
 *   query heads of the group and the later query rows in tiles of 32 — the sum over the group is a loop inside
 *   one workgroup, so it is deterministic (no float atomics).
 * The tiled kernels stage operands in workgroup memory (14.6 KiB at most: 16-channel slices of a 64-row and a
 * 32-row operand for the score tiles, a 64 × 32 tile of P or dS, slices of V/K/Q/dO rows for the products with
 * P), each of their 256 threads holds 2 rows × 4 columns of a score tile and 2 rows × hd/8 channels of the
 * accumulated products (in registers: the variant is ⌈hd/8⌉, so hd ≤ 512).
 * The `_SIMPLE` kernels (CPU-emulated adapters, and head dims above 512) are barrier-free: one thread per query
 * row (forward, dQ) or per key row (dK, dV), accumulating in the output buffers.
 * params (all): Bn, L, Hq, Hkv, hd, scale (f32 bits); ATTN_DELTA: rows, hd; ATTN_FWD also cap (rows of k/v per
 * sequence: L in training) and flags (1: read past[b] (else 0), 2: write lse).
 */
import type { KernelSpec } from '../runtime.js';

/** the largest head dim of the tiled kernels */
export const ATTN_TILED_MAX_HD = 512;

/** the variant of the tiled kernels for a head dim: channels per thread and row (⌈hd/8⌉) */
export function attnVariant(hd: number): string {
  return String(Math.ceil(hd / 8));
}

/** score-tile operand slices: 64 rows × 16 channels at 0, 32 rows × 16 at 1088 (row stride 17: no bank conflicts) */
const SLICES = 1632;

/** constants and workgroup memory of the tiled kernels for variant NJ (channels per thread row: D = 8·NJ ≥ hd) */
function tiledHead(variant: string): string {
  const nj = Number(variant);
  if (!(Number.isInteger(nj) && nj >= 1 && nj <= ATTN_TILED_MAX_HD / 8)) throw new Error(`webgpu attention (training): bad variant ${variant}`);
  const D = 8 * nj;
  let ks = 32;
  while (ks > 1 && ks * D > SLICES) ks /= 2;
  return /* wgsl */ `
const NJ: u32 = ${nj}u;
const D: u32 = ${D}u;
const KS: u32 = ${ks}u;
var<workgroup> Ps: array<f32, 2112>;
var<workgroup> U: array<f32, ${Math.max(SLICES, ks * D)}>;`;
}

/**
 * WGSL: ${out}[i][j] = Σ_{d<hd} R[ty + 32i][d] · C[tx + 8j][d] for the 64 rows of R at `rBase` (row stride
 * `rStride`, `rN` valid) and the 32 rows of C at `cBase` (`cN` valid); invalid rows read as 0.
 */
function dots(out: string, R: string, rBase: string, rStride: string, rN: string, C: string, cBase: string, cStride: string, cN: string): string {
  return /* wgsl */ `
  for (var i = 0u; i < 2u; i++) { for (var j = 0u; j < 4u; j++) { ${out}[i][j] = 0.0; } }
  for (var d0 = 0u; d0 < hd; d0 += 16u) {
    for (var q = 0u; q < 4u; q++) {
      let e = li + 256u * q; let rr = e / 16u; let dd = e % 16u;
      var v = 0.0;
      if (rr < ${rN} && d0 + dd < hd) { v = $${R}[${rBase} + rr * ${rStride} + d0 + dd]; }
      U[rr * 17u + dd] = v;
    }
    for (var q = 0u; q < 2u; q++) {
      let e = li + 256u * q; let cc = e / 16u; let dd = e % 16u;
      var v = 0.0;
      if (cc < ${cN} && d0 + dd < hd) { v = $${C}[${cBase} + cc * ${cStride} + d0 + dd]; }
      U[1088u + cc * 17u + dd] = v;
    }
    workgroupBarrier();
    for (var dd = 0u; dd < 16u; dd++) {
      let a0 = U[ty * 17u + dd];
      let a1 = U[(ty + 32u) * 17u + dd];
      for (var j = 0u; j < 4u; j++) {
        let bv = U[1088u + (tx + 8u * j) * 17u + dd];
        ${out}[0][j] = fma(a0, bv, ${out}[0][j]);
        ${out}[1][j] = fma(a1, bv, ${out}[1][j]);
      }
    }
    workgroupBarrier();
  }`;
}

/**
 * WGSL: ${acc}[i][j] += Σ_{c<32} Ps[ty + 32i][c] · W[c][tx + 8j] for the 32 rows of W at `wBase` (row stride
 * `wStride`, `wN` valid), staged KS rows at a time; `extra` runs once per c with p0, p1 = Ps[ty][c], Ps[ty+32][c].
 */
function products(acc: string, W: string, wBase: string, wStride: string, wN: string, extra = ''): string {
  return /* wgsl */ `
  for (var k0 = 0u; k0 < 32u; k0 += KS) {
    for (var e = li; e < KS * D; e += 256u) {
      let kk = e / D; let dd = e % D;
      var v = 0.0;
      if (k0 + kk < ${wN} && dd < hd) { v = $${W}[${wBase} + (k0 + kk) * ${wStride} + dd]; }
      U[e] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < KS; kk++) {
      let p0 = Ps[ty * 33u + k0 + kk];
      let p1 = Ps[(ty + 32u) * 33u + k0 + kk];
      ${extra}
      for (var j = 0u; j < NJ; j++) {
        let w = U[kk * D + tx + 8u * j];
        ${acc}[0][j] = fma(p0, w, ${acc}[0][j]);
        ${acc}[1][j] = fma(p1, w, ${acc}[1][j]);
      }
    }
    workgroupBarrier();
  }`;
}

const PARAMS = /* wgsl */ `
  let Bn = pu(PK); let L = pu(PK + 1u); let Hq = pu(PK + 2u); let Hkv = pu(PK + 3u); let hd = pu(PK + 4u);
  let scale = pf(PK + 5u);
  let rowQ = Hq * hd; let rowKV = Hkv * hd; let group = Hq / Hkv;`;

const ENTRY = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();${PARAMS}`;

/** per query-row block: the workgroup's (b, h, r0) — the longest rows first (causal: later blocks read more keys) */
const QUERY_BLOCK = /* wgsl */ `
  let nb = (L + 63u) / 64u;
  let item = lin(wg, nw);
  if (item >= Bn * Hq * nb) { return; }
  let blk = nb - 1u - item % nb; let h = (item / nb) % Hq; let b = item / (nb * Hq);
  let kvh = h / group;
  let r0 = blk * 64u; let rN = min(64u, L - r0);
  let tx = li % 8u; let ty = li / 8u;
  let qBase = o_q + (b * L + r0) * rowQ + h * hd;
  let cEnd = min(L, r0 + 64u);`;

/**
 * roles: q, k, v, y, lse, past. Grid: Bn·Hq·⌈L/64⌉ workgroups; variant attnVariant(hd). params: the common ones,
 * cap, flags (see the top)
 */
export const ATTN_FWD: KernelSpec = {
  name: 'attention_train_fwd',
  roles: ['q', 'k', 'v', 'y', 'lse', 'past'],
  writes: ['y', 'lse'],
  wgsl: (variant) => /* wgsl */ `${tiledHead(variant)}
var<workgroup> wpast: u32;
${ENTRY}${QUERY_BLOCK}
  let cap = pu(PK + 6u); let flags = pu(PK + 7u);
  if (li == 0u) {
    var p0 = 0u;
    if ((flags & 1u) != 0u) { p0 = u32($past[o_past + b]); }
    wpast = p0;
  }
  let past = workgroupUniformLoad(&wpast);
  let kEnd = past + cEnd;
  var s: array<array<f32, 4>, 2>;
  var acc: array<array<f32, NJ>, 2>;
  for (var i = 0u; i < 2u; i++) { for (var j = 0u; j < NJ; j++) { acc[i][j] = 0.0; } }
  var m = array<f32, 2>(-3.0e38, -3.0e38);
  var l = array<f32, 2>(0.0, 0.0);
  for (var c0 = 0u; c0 < kEnd; c0 += 32u) {
    let cN = min(32u, kEnd - c0);
    let kBase = o_k + (b * cap + c0) * rowKV + kvh * hd;
    let vBase = o_v + (b * cap + c0) * rowKV + kvh * hd;
    ${dots('s', 'q', 'qBase', 'rowQ', 'rN', 'k', 'kBase', 'rowKV', 'cN')}
    for (var i = 0u; i < 2u; i++) {
      let r = r0 + ty + 32u * i;
      for (var j = 0u; j < 4u; j++) {
        var v = -3.0e38;
        if (r < L && c0 + tx + 8u * j <= past + r) { v = s[i][j] * scale; }
        s[i][j] = v;
        Ps[(ty + 32u * i) * 33u + tx + 8u * j] = v;
      }
    }
    workgroupBarrier();
    for (var i = 0u; i < 2u; i++) {
      var mx = m[i];
      for (var cc = 0u; cc < 32u; cc++) { mx = max(mx, Ps[(ty + 32u * i) * 33u + cc]); }
      let corr = exp(m[i] - mx);
      m[i] = mx;
      l[i] *= corr;
      for (var j = 0u; j < NJ; j++) { acc[i][j] *= corr; }
    }
    workgroupBarrier();
    for (var i = 0u; i < 2u; i++) {
      let r = r0 + ty + 32u * i;
      for (var j = 0u; j < 4u; j++) {
        var p = 0.0;
        if (r < L && c0 + tx + 8u * j <= past + r) { p = exp(s[i][j] - m[i]); }
        Ps[(ty + 32u * i) * 33u + tx + 8u * j] = p;
      }
    }
    ${products('acc', 'v', 'vBase', 'rowKV', 'cN', 'l[0] += p0; l[1] += p1;')}
  }
  for (var i = 0u; i < 2u; i++) {
    let r = r0 + ty + 32u * i;
    if (r >= L) { continue; }
    let yo = o_y + (b * L + r) * rowQ + h * hd;
    for (var j = 0u; j < NJ; j++) {
      let d = tx + 8u * j;
      if (d < hd) { $y[yo + d] = acc[i][j] / l[i]; }
    }
    if (tx == 0u && (flags & 2u) != 0u) { $lse[o_lse + (b * L + r) * Hq + h] = m[i] + log(l[i]); }
  }
}`,
};

/** roles: q, k, v, g (dO), lse, dl (D), dq. Grid: Bn·Hq·⌈L/64⌉ workgroups; variant attnVariant(hd) */
export const ATTN_DQ: KernelSpec = {
  name: 'attention_train_dq',
  roles: ['q', 'k', 'v', 'g', 'lse', 'dl', 'dq'],
  writes: ['dq'],
  wgsl: (variant) => /* wgsl */ `${tiledHead(variant)}
${ENTRY}${QUERY_BLOCK}
  let gBase = o_g + (b * L + r0) * rowQ + h * hd;
  var s: array<array<f32, 4>, 2>;
  var dp: array<array<f32, 4>, 2>;
  var acc: array<array<f32, NJ>, 2>;
  var lr: array<f32, 2>;
  var dr: array<f32, 2>;
  for (var i = 0u; i < 2u; i++) {
    let r = r0 + ty + 32u * i;
    if (r < L) { lr[i] = $lse[o_lse + (b * L + r) * Hq + h]; dr[i] = $dl[o_dl + (b * L + r) * Hq + h]; }
  }
  for (var c0 = 0u; c0 < cEnd; c0 += 32u) {
    let cN = min(32u, L - c0);
    let kBase = o_k + (b * L + c0) * rowKV + kvh * hd;
    let vBase = o_v + (b * L + c0) * rowKV + kvh * hd;
    ${dots('s', 'q', 'qBase', 'rowQ', 'rN', 'k', 'kBase', 'rowKV', 'cN')}
    ${dots('dp', 'g', 'gBase', 'rowQ', 'rN', 'v', 'vBase', 'rowKV', 'cN')}
    for (var i = 0u; i < 2u; i++) {
      let r = r0 + ty + 32u * i;
      for (var j = 0u; j < 4u; j++) {
        var ds = 0.0;
        if (r < L && c0 + tx + 8u * j <= r) { ds = exp(s[i][j] * scale - lr[i]) * (dp[i][j] - dr[i]); }
        Ps[(ty + 32u * i) * 33u + tx + 8u * j] = ds;
      }
    }
    ${products('acc', 'k', 'kBase', 'rowKV', 'cN')}
  }
  for (var i = 0u; i < 2u; i++) {
    let r = r0 + ty + 32u * i;
    if (r >= L) { continue; }
    let o = o_dq + (b * L + r) * rowQ + h * hd;
    for (var j = 0u; j < NJ; j++) {
      let d = tx + 8u * j;
      if (d < hd) { $dq[o + d] = acc[i][j] * scale; }
    }
  }
}`,
};

/** roles: q, k, v, g (dO), lse, dl (D), dk, dv. Grid: Bn·Hkv·⌈L/64⌉ workgroups; variant attnVariant(hd) */
export const ATTN_DKV: KernelSpec = {
  name: 'attention_train_dkv',
  roles: ['q', 'k', 'v', 'g', 'lse', 'dl', 'dk', 'dv'],
  writes: ['dk', 'dv'],
  wgsl: (variant) => /* wgsl */ `${tiledHead(variant)}
${ENTRY}
  let nb = (L + 63u) / 64u;
  let item = lin(wg, nw);
  if (item >= Bn * Hkv * nb) { return; }
  let blk = item % nb; let kvh = (item / nb) % Hkv; let b = item / (nb * Hkv);
  let c0 = blk * 64u; let cN = min(64u, L - c0);
  let tx = li % 8u; let ty = li / 8u;
  let kBase = o_k + (b * L + c0) * rowKV + kvh * hd;
  let vBase = o_v + (b * L + c0) * rowKV + kvh * hd;
  var s: array<array<f32, 4>, 2>;
  var dp: array<array<f32, 4>, 2>;
  var dk: array<array<f32, NJ>, 2>;
  var dv: array<array<f32, NJ>, 2>;
  for (var hh = 0u; hh < group; hh++) {
    let h = kvh * group + hh;
    for (var t0 = c0; t0 < L; t0 += 32u) {
      let tN = min(32u, L - t0);
      let qBase = o_q + (b * L + t0) * rowQ + h * hd;
      let gBase = o_g + (b * L + t0) * rowQ + h * hd;
      ${dots('s', 'k', 'kBase', 'rowKV', 'cN', 'q', 'qBase', 'rowQ', 'tN')}
      ${dots('dp', 'v', 'vBase', 'rowKV', 'cN', 'g', 'gBase', 'rowQ', 'tN')}
      for (var j = 0u; j < 4u; j++) {
        let t = t0 + tx + 8u * j;
        var lt = 0.0; var dt = 0.0;
        if (t < L) { lt = $lse[o_lse + (b * L + t) * Hq + h]; dt = $dl[o_dl + (b * L + t) * Hq + h]; }
        for (var i = 0u; i < 2u; i++) {
          let key = c0 + ty + 32u * i;
          var p = 0.0;
          if (t < L && key <= t) { p = exp(s[i][j] * scale - lt); }
          Ps[(ty + 32u * i) * 33u + tx + 8u * j] = p;
          dp[i][j] = p * (dp[i][j] - dt);
        }
      }
      ${products('dv', 'g', 'gBase', 'rowQ', 'tN')}
      for (var i = 0u; i < 2u; i++) {
        for (var j = 0u; j < 4u; j++) { Ps[(ty + 32u * i) * 33u + tx + 8u * j] = dp[i][j]; }
      }
      ${products('dk', 'q', 'qBase', 'rowQ', 'tN')}
    }
  }
  for (var i = 0u; i < 2u; i++) {
    let key = c0 + ty + 32u * i;
    if (key >= L) { continue; }
    let o = (b * L + key) * rowKV + kvh * hd;
    for (var j = 0u; j < NJ; j++) {
      let d = tx + 8u * j;
      if (d < hd) { $dk[o_dk + o + d] = dk[i][j] * scale; $dv[o_dv + o + d] = dv[i][j]; }
    }
  }
}`,
};

/** D[i] = Σ_d g[i, d] · y[i, d] over rows of hd. params: rows, hd */
export const ATTN_DELTA: KernelSpec = {
  name: 'attention_train_delta',
  roles: ['g', 'y', 'dl'],
  writes: ['dl'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let rows = pu(PK); let hd = pu(PK + 1u);
  let i = lin(wg, nw) * 256u + li;
  if (i >= rows) { return; }
  var s = 0.0;
  for (var d = 0u; d < hd; d++) { s = fma($g[o_g + i * hd + d], $y[o_y + i * hd + d], s); }
  $dl[o_dl + i] = s;
}`,
};

/** one thread per (b, t, query head): i = (b·L + t)·Hq + h */
const SIMPLE_QUERY_ROW = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();${PARAMS}
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * L * Hq) { return; }
  let h = i % Hq; let t = (i / Hq) % L; let b = i / (Hq * L);
  let kv = (h / group) * hd;
  let qo = i * hd;`;

/** roles: q, k, v, y, lse. One thread per query row (threads(Bn·L·Hq)) */
export const ATTN_FWD_SIMPLE: KernelSpec = {
  name: 'attention_train_fwd_simple',
  roles: ['q', 'k', 'v', 'y', 'lse'],
  writes: ['y', 'lse'],
  wgsl: () => /* wgsl */ `${SIMPLE_QUERY_ROW}
  var m = -3.0e38;
  var l = 0.0;
  for (var s = 0u; s <= t; s++) {
    let ko = o_k + (b * L + s) * rowKV + kv;
    var d = 0.0;
    for (var c = 0u; c < hd; c++) { d = fma($q[o_q + qo + c], $k[ko + c], d); }
    let sc = d * scale;
    if (sc > m) { l *= exp(m - sc); m = sc; }
    l += exp(sc - m);
  }
  for (var c = 0u; c < hd; c++) { $y[o_y + qo + c] = 0.0; }
  for (var s = 0u; s <= t; s++) {
    let ko = o_k + (b * L + s) * rowKV + kv;
    let vo = o_v + (b * L + s) * rowKV + kv;
    var d = 0.0;
    for (var c = 0u; c < hd; c++) { d = fma($q[o_q + qo + c], $k[ko + c], d); }
    let p = exp(d * scale - m) / l;
    for (var c = 0u; c < hd; c++) { $y[o_y + qo + c] = fma(p, $v[vo + c], $y[o_y + qo + c]); }
  }
  $lse[o_lse + i] = m + log(l);
}`,
};

/** roles: q, k, v, g, lse, dl, dq. One thread per query row (threads(Bn·L·Hq)) */
export const ATTN_DQ_SIMPLE: KernelSpec = {
  name: 'attention_train_dq_simple',
  roles: ['q', 'k', 'v', 'g', 'lse', 'dl', 'dq'],
  writes: ['dq'],
  wgsl: () => /* wgsl */ `${SIMPLE_QUERY_ROW}
  let lr = $lse[o_lse + i]; let dr = $dl[o_dl + i];
  for (var c = 0u; c < hd; c++) { $dq[o_dq + qo + c] = 0.0; }
  for (var s = 0u; s <= t; s++) {
    let ko = o_k + (b * L + s) * rowKV + kv;
    let vo = o_v + (b * L + s) * rowKV + kv;
    var d = 0.0;
    var dp = 0.0;
    for (var c = 0u; c < hd; c++) {
      d = fma($q[o_q + qo + c], $k[ko + c], d);
      dp = fma($g[o_g + qo + c], $v[vo + c], dp);
    }
    let ds = exp(d * scale - lr) * (dp - dr) * scale;
    for (var c = 0u; c < hd; c++) { $dq[o_dq + qo + c] = fma(ds, $k[ko + c], $dq[o_dq + qo + c]); }
  }
}`,
};

/** roles: q, k, v, g, lse, dl, dk, dv. One thread per key row and kv head (threads(Bn·L·Hkv)) */
export const ATTN_DKV_SIMPLE: KernelSpec = {
  name: 'attention_train_dkv_simple',
  roles: ['q', 'k', 'v', 'g', 'lse', 'dl', 'dk', 'dv'],
  writes: ['dk', 'dv'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();${PARAMS}
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * L * Hkv) { return; }
  let kvh = i % Hkv; let s = (i / Hkv) % L; let b = i / (Hkv * L);
  let ko = i * hd;
  for (var c = 0u; c < hd; c++) { $dk[o_dk + ko + c] = 0.0; $dv[o_dv + ko + c] = 0.0; }
  for (var hh = 0u; hh < group; hh++) {
    let h = kvh * group + hh;
    for (var t = s; t < L; t++) {
      let row = (b * L + t) * Hq + h;
      let qo = row * hd;
      var d = 0.0;
      var dp = 0.0;
      for (var c = 0u; c < hd; c++) {
        d = fma($q[o_q + qo + c], $k[o_k + ko + c], d);
        dp = fma($g[o_g + qo + c], $v[o_v + ko + c], dp);
      }
      let p = exp(d * scale - $lse[o_lse + row]);
      let ds = p * (dp - $dl[o_dl + row]) * scale;
      for (var c = 0u; c < hd; c++) {
        $dk[o_dk + ko + c] = fma(ds, $q[o_q + qo + c], $dk[o_dk + ko + c]);
        $dv[o_dv + ko + c] = fma(p, $g[o_g + qo + c], $dv[o_dv + ko + c]);
      }
    }
  }
}`,
};
