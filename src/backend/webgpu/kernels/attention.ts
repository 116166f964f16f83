/**
 * Rotary embedding and causal (grouped-query) attention with a KV cache.
 * - `ROPE`: rotate-half on the first rd channels of each head; cos/sin come from the host (computed as the
 *   CPU reference does: float32 angle, then cos/sin), so large positions are exact.
 * - `KV_WRITE`: the new k/v rows into the cache [b, T, Hkv, hd] at pastLen[b] + t (variants 'b' / 'h': a bf16 / f16
 *   cache, two values per u32 rounded to nearest even; one thread per word, so Hkv·hd must be even).
 * - `ATTENTION`: one workgroup of 64 per (b, t, query head) and slice of the keys; keys in blocks of 64 with an
 *   online softmax (running max and sum rescale the accumulator), so any length fits; each thread owns up to 8
 *   output channels (hd ≤ 512). Decode splits the keys over S workgroups (flash-decoding) and `ATTN_COMBINE`
 *   merges their partials; prefill with the tiled kernels runs the flash prefill (attention_prefill.ts) or the flash
 *   forward `ATTN_FWD` (grad_attention.ts). Variants 'b' / 'h' read a bf16 / f16 cache (`kvFormat`); with one, a
 *   prefill the flash prefill kernel does not take (head dims > 64) runs here too, as `ATTN_FWD` reads f32 only.
 */
import type { KernelSpec } from '../runtime.js';
import { halfPacker, halfPairReader, halfReader, halfTypes, type HalfFormat } from './half.js';

/**
 * The KV cache format of an attention kernel's variant: '' (f32, or no cache), 'b' (bf16) or 'h' (f16), two values
 * per u32 (kernels/half.ts); the cache roles are then bound as array<u32>.
 */
export function kvFormat(variant: string): HalfFormat {
  return variant.endsWith('b') ? 'b' : variant.endsWith('h') ? 'h' : '';
}

/** WGSL: `kk(i)` / `vv(i)`, element i of the k / v roles (a cache in the variant's format, or f32 rows) */
export function kvReaders(fmt: HalfFormat): string {
  return `${halfReader(fmt, 'k', 'kk')}\n${halfReader(fmt, 'v', 'vv', false)}`;
}

/** params: rows, H, hd, rd. cs: [rows, rd/2, 2] */
export const ROPE: KernelSpec = {
  name: 'rope',
  roles: ['x', 'cs', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let rows = pu(PK); let H = pu(PK + 1u); let hd = pu(PK + 2u); let rd = pu(PK + 3u);
  let i = lin(wg, nw) * 256u + li;
  if (i >= rows * H * hd) { return; }
  let c = i % hd; let base = i - c; let r = i / (H * hd);
  let half = rd / 2u;
  var v = $x[o_x + i];
  if (c < rd) {
    let k = select(c - half, c, c < half);
    let cs = o_cs + (r * half + k) * 2u;
    let co = $cs[cs]; let si = $cs[cs + 1u];
    let a = $x[o_x + base + k];
    let b = $x[o_x + base + k + half];
    v = select(b * co + a * si, a * co - b * si, c < half);
  }
  $y[o_y + i] = v;
}`,
};

/** params: Bn, L, rowKV, T. Grid: one thread per value (f32) or per pair of values (bf16/f16 caches) */
export const KV_WRITE: KernelSpec = {
  name: 'kv_write',
  roles: ['k', 'v', 'past', 'ck', 'cv'],
  writes: ['ck', 'cv'],
  types: (v) => halfTypes(kvFormat(v), 'ck', 'cv'),
  wgsl: (variant) => {
    const fmt = kvFormat(variant);
    if (!fmt) {
      return /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let rowKV = pu(PK + 2u); let T = pu(PK + 3u);
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * L * rowKV) { return; }
  let q = i % rowKV; let bt = i / rowKV; let t = bt % L; let b = bt / L;
  let dst = (b * T + u32($past[o_past + b]) + t) * rowKV + q;
  $ck[o_ck + dst] = $k[o_k + i];
  $cv[o_cv + dst] = $v[o_v + i];
}`;
    }
    return /* wgsl */ `${halfPacker(fmt)}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let rowKV = pu(PK + 2u); let T = pu(PK + 3u);
  let rw = rowKV / 2u;
  let w = lin(wg, nw) * 256u + li;
  if (w >= Bn * L * rw) { return; }
  let q = (w % rw) * 2u; let bt = w / rw; let t = bt % L; let b = bt / L;
  let src = bt * rowKV + q;
  let dst = ((b * T + u32($past[o_past + b]) + t) * rowKV + q) / 2u;
  $ck[o_ck + dst] = half_pack($k[o_k + src], $k[o_k + src + 1u]);
  $cv[o_cv + dst] = half_pack($v[o_v + src], $v[o_v + src + 1u]);
}`;
  },
};

/**
 * params: Bn, L, Hq, Hkv, hd, cap, scale, hasCache, S. Grid: Bn·L·Hq·S workgroups.
 * S = 1: y [Bn, L, Hq, hd] directly. S > 1 (flash-decoding): the n = past + t + 1 keys of a row are cut into S
 * slices of ⌈n/S⌉ rounded up to 64 (so a step recorded once fits every length up to the cache's capacity; slices
 * past n are empty) and slice s writes its partial (max, sum, unnormalised accumulator) to
 * y [Bn·L·Hq, S, hd + 2], which `ATTN_COMBINE` reduces.
 * Variants 'b' / 'h': k and v are a bf16 / f16 KV cache (kvFormat).
 */
export const ATTENTION: KernelSpec = {
  name: 'attention',
  roles: ['q', 'k', 'v', 'past', 'y'],
  writes: ['y'],
  types: (v) => halfTypes(kvFormat(v), 'k', 'v'),
  wgsl: (variant) => {
    const fmt = kvFormat(variant);
    // a 16-bit cache with an even head dim: the scores' keys read a pair of values per load (same sums, in order)
    const dot = fmt
      ? /* wgsl */ `if ((hd & 1u) == 0u) {
        for (var i = 0u; i < hd; i += 2u) { let k2 = kk2(ko + i); d = fma(qs[i], k2.x, d); d = fma(qs[i + 1u], k2.y, d); }
      } else {
        for (var i = 0u; i < hd; i++) { d = fma(qs[i], kk(ko + i), d); }
      }`
      : 'for (var i = 0u; i < hd; i++) { d = fma(qs[i], kk(ko + i), d); }';
    return /* wgsl */ `
${kvReaders(fmt)}
${fmt ? halfPairReader(fmt, 'k', 'kk2') : ''}
var<workgroup> qs: array<f32, 512>;
var<workgroup> sc: array<f32, 64>;
var<workgroup> wpast: u32;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let Hq = pu(PK + 2u); let Hkv = pu(PK + 3u); let hd = pu(PK + 4u);
  let cap = pu(PK + 5u); let scale = pf(PK + 6u); let hasCache = pu(PK + 7u) != 0u; let S = pu(PK + 8u);
  let wi = lin(wg, nw);
  if (wi >= Bn * L * Hq * S) { return; }
  let sp = wi % S; let item = wi / S;
  let h = item % Hq; let t = (item / Hq) % L; let b = item / (Hq * L);
  let kvh = h / (Hq / Hkv);
  let rowKV = Hkv * hd;
  if (li == 0u) {
    var p = 0u;
    if (hasCache) { p = u32($past[o_past + b]); }
    wpast = p;
  }
  for (var p = li; p < hd; p += 64u) { qs[p] = $q[o_q + item * hd + p]; }
  let past = workgroupUniformLoad(&wpast);
  let n = past + t + 1u;
  let chunk = ((n + S - 1u) / S + 63u) / 64u * 64u;
  let start = min(n, sp * chunk);
  let end = min(n, start + chunk);
  var m = -3.0e38;
  var lsum = 0.0;
  var acc: array<f32, 8>;
  for (var jj = 0u; jj < 8u; jj++) { acc[jj] = 0.0; }
  for (var s0 = start; s0 < end; s0 += 64u) {
    let s = s0 + li;
    var sv = -3.0e38;
    if (s < end) {
      let ko = (b * cap + s) * rowKV + kvh * hd;
      var d = 0.0;
      ${dot}
      sv = d * scale;
    }
    sc[li] = sv;
    workgroupBarrier();
    var bm = m;
    for (var j = 0u; j < 64u; j++) { bm = max(bm, sc[j]); }
    let corr = exp(m - bm);
    workgroupBarrier();
    var pv = 0.0;
    if (s < end) { pv = exp(sv - bm); }
    sc[li] = pv;
    workgroupBarrier();
    var ps = 0.0;
    for (var j = 0u; j < 64u; j++) { ps += sc[j]; }
    lsum = lsum * corr + ps;
    let cnt = min(64u, end - s0);
    for (var jj = 0u; jj < 8u; jj++) {
      let p = li + 64u * jj;
      if (p < hd) {
        var a = acc[jj] * corr;
        for (var j = 0u; j < cnt; j++) { a = fma(sc[j], vv((b * cap + s0 + j) * rowKV + kvh * hd + p), a); }
        acc[jj] = a;
      }
    }
    m = bm;
    workgroupBarrier();
  }
  if (S == 1u) {
    for (var jj = 0u; jj < 8u; jj++) {
      let p = li + 64u * jj;
      if (p < hd) { $y[o_y + item * hd + p] = acc[jj] / lsum; }
    }
    return;
  }
  let po = o_y + wi * (hd + 2u);
  if (li == 0u) { $y[po] = m; $y[po + 1u] = lsum; }
  for (var jj = 0u; jj < 8u; jj++) {
    let p = li + 64u * jj;
    if (p < hd) { $y[po + 2u + p] = acc[jj]; }
  }
}`;
  },
};

/**
 * The partials of `ATTENTION` with S > 1 → y [rows, hd]: y = Σ_s e^(m_s − M) acc_s / Σ_s e^(m_s − M) l_s, M the
 * largest m_s (empty slices have m = −3e38, l = 0 and weigh nothing). params: rows, S, hd. One thread per output.
 */
export const ATTN_COMBINE: KernelSpec = {
  name: 'attention_combine',
  roles: ['part', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let rows = pu(PK); let S = pu(PK + 1u); let hd = pu(PK + 2u);
  let i = lin(wg, nw) * 256u + li;
  if (i >= rows * hd) { return; }
  let p = i % hd; let r = i / hd;
  let base = o_part + r * S * (hd + 2u);
  var M = -3.0e38;
  for (var s = 0u; s < S; s++) { M = max(M, $part[base + s * (hd + 2u)]); }
  var num = 0.0;
  var den = 0.0;
  for (var s = 0u; s < S; s++) {
    let o = base + s * (hd + 2u);
    let w = exp($part[o] - M);
    den = fma(w, $part[o + 1u], den);
    num = fma(w, $part[o + 2u + p], num);
  }
  $y[o_y + i] = num / den;
}`,
};
