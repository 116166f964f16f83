/**
 * Rotary embedding and causal (grouped-query) attention with a KV cache.
 * - `ROPE`: rotate-half on the first rd channels of each head; cos/sin come from the host (computed as the
 *   CPU reference does: float32 angle, then cos/sin), so large positions are exact.
 * - `KV_WRITE`: the new k/v rows into the cache [b, T, Hkv, hd] at pastLen[b] + t.
 * - `ATTENTION`: one workgroup of 64 per (b, t, query head); keys in blocks of 64 with an online softmax
 *   (running max and sum rescale the accumulator), so any length fits; each thread owns up to 8 output
 *   channels (hd ≤ 512).
 */
import type { KernelSpec } from '../runtime.js';

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

/** params: Bn, L, rowKV, T */
export const KV_WRITE: KernelSpec = {
  name: 'kv_write',
  roles: ['k', 'v', 'past', 'ck', 'cv'],
  writes: ['ck', 'cv'],
  wgsl: () => /* wgsl */ `
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
}`,
};

/** params: Bn, L, Hq, Hkv, hd, cap, scale, hasCache */
export const ATTENTION: KernelSpec = {
  name: 'attention',
  roles: ['q', 'k', 'v', 'past', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `
var<workgroup> qs: array<f32, 512>;
var<workgroup> sc: array<f32, 64>;
var<workgroup> wpast: u32;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let Hq = pu(PK + 2u); let Hkv = pu(PK + 3u); let hd = pu(PK + 4u);
  let cap = pu(PK + 5u); let scale = pf(PK + 6u); let hasCache = pu(PK + 7u) != 0u;
  let item = lin(wg, nw);
  if (item >= Bn * L * Hq) { return; }
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
  var m = -3.0e38;
  var lsum = 0.0;
  var acc: array<f32, 8>;
  for (var s0 = 0u; s0 < n; s0 += 64u) {
    let s = s0 + li;
    var sv = -3.0e38;
    if (s < n) {
      let ko = o_k + (b * cap + s) * rowKV + kvh * hd;
      var d = 0.0;
      for (var i = 0u; i < hd; i++) { d = fma(qs[i], $k[ko + i], d); }
      sv = d * scale;
    }
    sc[li] = sv;
    workgroupBarrier();
    var bm = m;
    for (var j = 0u; j < 64u; j++) { bm = max(bm, sc[j]); }
    let corr = exp(m - bm);
    workgroupBarrier();
    var pv = 0.0;
    if (s < n) { pv = exp(sv - bm); }
    sc[li] = pv;
    workgroupBarrier();
    var ps = 0.0;
    for (var j = 0u; j < 64u; j++) { ps += sc[j]; }
    lsum = lsum * corr + ps;
    let cnt = min(64u, n - s0);
    for (var jj = 0u; jj < 8u; jj++) {
      let p = li + 64u * jj;
      if (p < hd) {
        var a = acc[jj] * corr;
        for (var j = 0u; j < cnt; j++) { a = fma(sc[j], $v[o_v + (b * cap + s0 + j) * rowKV + kvh * hd + p], a); }
        acc[jj] = a;
      }
    }
    m = bm;
    workgroupBarrier();
  }
  for (var jj = 0u; jj < 8u; jj++) {
    let p = li + 64u * jj;
    if (p < hd) { $y[o_y + item * hd + p] = acc[jj] / lsum; }
  }
}`,
};
