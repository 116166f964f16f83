/**
 * Causal grouped-query attention prefill (inference, flash-attention 2 style) for head dims ≤ 64: one workgroup per
 * (batch row, query head, tile of BQ query rows), the tiles reading the most keys dispatched first.
 * - The Q tile (scaled by scale·log2 e, zero-padded to 64 channels) stays in workgroup memory; keys come in tiles of
 *   64: K transposed into workgroup memory (Kᵀ[d][key], read as vec4 over 4 keys), S = QKᵀ with each thread holding
 *   a 4 × 4 register block (rows ty + RG·i, keys 4·tx + j), then V into the same memory.
 * - Online softmax in base 2: the row max of a tile from the 16 threads sharing a row (partials in workgroup memory),
 *   p = 2^(s − m) in registers, each thread's partial row sum rescaled with its accumulator and summed once at the end.
 * - O += P·V with P staged in workgroup memory (vec4 over 4 keys) and each thread holding 4 rows × 4 channels (vec4).
 * - Tiles above the diagonal are never visited (keys stop at the tile's last position); only the tiles that cross it
 *   are masked. k/v may be a KV cache [b, cap, Hkv, hd] whose row b holds past[b] earlier positions (flags & 1):
 *   query row t then sits at position past[b] + t.
 * Five barriers per tile of 64 keys. Workgroup memory: (2·BQ + 64) × 64 floats — 32 KiB at BQ = 32 (128 threads),
 * 48 KiB at BQ = 64 (256 threads); the variant ('q32' | 'q64') is the largest that fits (`prefillAttentionVariant`).
 * roles: q [b, L, Hq, hd], k, v, past, y [b, L, Hq, hd]. params: Bn, L, Hq, Hkv, hd, scale (f32 bits), cap, flags.
 * A variant ending in 'b' / 'h' ('q32b', 'q64h', …) reads k/v from a bf16 / f16 KV cache (attention.ts's kvFormat).
 */
import type { KernelSpec } from '../runtime.js';
import { halfReader, halfTypes } from './half.js';
import { kvFormat, kvReaders } from './attention.js';

/** the largest head dim of `ATTN_PREFILL` */
export const ATTN_PREFILL_MAX_HD = 64;

/** bytes of workgroup memory of a variant */
export function prefillAttentionBytes(variant: 'q32' | 'q64'): number {
  const bq = variant === 'q64' ? 64 : 32;
  return (2 * bq + 64) * 64 * 4;
}

/** the variant for a head dim and a workgroup-memory limit, or null when the kernel does not apply */
export function prefillAttentionVariant(hd: number, maxWorkgroupStorage: number): 'q32' | 'q64' | null {
  if (hd > ATTN_PREFILL_MAX_HD) return null;
  if (prefillAttentionBytes('q64') <= maxWorkgroupStorage) return 'q64';
  if (prefillAttentionBytes('q32') <= maxWorkgroupStorage) return 'q32';
  return null;
}

/** query rows per workgroup of a variant */
export function prefillAttentionRows(variant: string): number {
  return variant.startsWith('q64') ? 64 : 32;
}

/**
 * WGSL: a vec4 of elements base + d … d+3 read by `fn` (lq, kk, vv: from the role's offset), components at or past
 * hd (and all when `ok` fails) read as 0
 */
function load4(fn: string, base: string, d: string, ok: string): string {
  return /* wgsl */ `
      var x4 = vec4<f32>(0.0);
      if (${ok}) {
        if (${d} < hd) { x4.x = ${fn}(${base} + ${d}); }
        if (${d} + 1u < hd) { x4.y = ${fn}(${base} + ${d} + 1u); }
        if (${d} + 2u < hd) { x4.z = ${fn}(${base} + ${d} + 2u); }
        if (${d} + 3u < hd) { x4.w = ${fn}(${base} + ${d} + 3u); }
      }`;
}

/** the same statement for i = 0…3 (the register block's rows), unrolled */
const rows4 = (f: (i: number) => string): string => [0, 1, 2, 3].map(f).join('\n');

export const ATTN_PREFILL: KernelSpec = {
  name: 'attention_prefill',
  roles: ['q', 'k', 'v', 'past', 'y'],
  writes: ['y'],
  types: (v) => halfTypes(kvFormat(v), 'k', 'v'),
  wgsl: (variant) => {
    if (!/^q(32|64)[bh]?$/.test(variant)) throw new Error(`webgpu attention_prefill: bad variant ${JSON.stringify(variant)} (q32 or q64, then b or h for a bf16 / f16 KV cache)`);
    const rg = prefillAttentionRows(variant) / 4;
    return /* wgsl */ `
${halfReader('', 'q', 'lq')}
${kvReaders(kvFormat(variant))}
const RG: u32 = ${rg}u;
const BQ: u32 = ${4 * rg}u;
const NT: u32 = ${16 * rg}u;
var<workgroup> Qs: array<vec4<f32>, ${4 * rg * 16}>;
var<workgroup> KV: array<vec4<f32>, 1024>;
var<workgroup> Ps: array<vec4<f32>, ${4 * rg * 16}>;
@compute @workgroup_size(${16 * rg})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let Hq = pu(PK + 2u); let Hkv = pu(PK + 3u); let hd = pu(PK + 4u);
  let scale = pf(PK + 5u); let cap = pu(PK + 6u); let flags = pu(PK + 7u);
  let nb = (L + BQ - 1u) / BQ;
  let item = lin(wg, nw);
  if (item >= Bn * Hq * nb) { return; }
  // the last query tiles (the most keys) of every head first
  let bh = item % (Bn * Hq);
  let blk = nb - 1u - item / (Bn * Hq);
  let h = bh % Hq; let b = bh / Hq;
  let kvh = h / (Hq / Hkv);
  let rowQ = Hq * hd; let rowKV = Hkv * hd;
  let r0 = blk * BQ;
  let tx = li % 16u; let ty = li / 16u;
  // the past length goes through workgroup memory (Ps[0], free until the first tile) to be uniform
  if (li == 0u) {
    var p0 = 0u;
    if ((flags & 1u) != 0u) { p0 = u32($past[o_past + b]); }
    Ps[0] = vec4<f32>(bitcast<f32>(p0), 0.0, 0.0, 0.0);
  }
  let qscale = scale * 1.4426950408889634;
  for (var e = li; e < BQ * 16u; e += NT) {
    let r = e / 16u; let d = (e % 16u) * 4u;
    let base = (b * L + r0 + r) * rowQ + h * hd;${load4('lq', 'base', 'd', 'r0 + r < L')}
    Qs[e] = x4 * qscale;
  }
  let past = bitcast<u32>(workgroupUniformLoad(&Ps[0]).x);
  let cEnd = min(L, r0 + BQ);
  let kEnd = past + cEnd;
  var acc: array<vec4<f32>, 4>;
  var s: array<vec4<f32>, 4>;
  var m: array<f32, 4>;
  var l: array<f32, 4>;
${rows4((i) => `  acc[${i}] = vec4<f32>(0.0); m[${i}] = -3.0e38; l[${i}] = 0.0;`)}
  for (var c0 = 0u; c0 < kEnd; c0 += 64u) {
    // Kᵀ: KV[d·16 + key/4][key % 4] (consecutive threads: consecutive keys)
    for (var e = li; e < 1024u; e += NT) {
      let key = e % 64u; let d = (e / 64u) * 4u;
      let base = (b * cap + c0 + key) * rowKV + kvh * hd;${load4('kk', 'base', 'd', 'c0 + key < kEnd')}
      let kq = key / 4u; let kr = key % 4u;
      KV[d * 16u + kq][kr] = x4.x;
      KV[(d + 1u) * 16u + kq][kr] = x4.y;
      KV[(d + 2u) * 16u + kq][kr] = x4.z;
      KV[(d + 3u) * 16u + kq][kr] = x4.w;
    }
    workgroupBarrier();
${rows4((i) => `    s[${i}] = vec4<f32>(0.0);`)}
    for (var d4 = 0u; d4 < 16u; d4++) {
${rows4((i) => `      let q${i} = Qs[(ty + ${i}u * RG) * 16u + d4];`)}
${rows4((j) => `      let k${j} = KV[(d4 * 4u + ${j}u) * 16u + tx];\n${rows4((i) => `      s[${i}] = fma(vec4<f32>(q${i}[${j}]), k${j}, s[${i}]);`)}`)}
    }
    // mask the tiles that cross the diagonal (key c0 + 4tx + j is seen by row r iff it is ≤ past + r)
    if (c0 + 63u > past + r0) {
${rows4((i) => [0, 1, 2, 3].map((j) => `      if (c0 + 4u * tx + ${j}u > past + r0 + ty + ${i}u * RG) { s[${i}][${j}] = -3.0e38; }`).join('\n'))}
    }
    // the row maxima: 16 partials a row (in Ps, free since the last barrier)
${rows4((i) => `    Ps[(ty + ${i}u * RG) * 4u + tx / 4u][tx % 4u] = max(max(s[${i}].x, s[${i}].y), max(s[${i}].z, s[${i}].w));`)}
    workgroupBarrier();
${rows4((i) => `    {
      let r = (ty + ${i}u * RG) * 4u;
      let a = max(max(Ps[r], Ps[r + 1u]), max(Ps[r + 2u], Ps[r + 3u]));
      let mn = max(m[${i}], max(max(a.x, a.y), max(a.z, a.w)));
      let corr = exp2(m[${i}] - mn);
      m[${i}] = mn;
      s[${i}] = exp2(s[${i}] - vec4<f32>(mn));
      l[${i}] = fma(l[${i}], corr, (s[${i}].x + s[${i}].y) + (s[${i}].z + s[${i}].w));
      acc[${i}] = acc[${i}] * corr;
    }`)}
    // V: KV[key·16 + d/4] (the keys' rows are done with)
    for (var e = li; e < 1024u; e += NT) {
      let key = e / 16u; let d = (e % 16u) * 4u;
      let base = (b * cap + c0 + key) * rowKV + kvh * hd;${load4('vv', 'base', 'd', 'c0 + key < kEnd')}
      KV[e] = x4;
    }
    workgroupBarrier();
${rows4((i) => `    Ps[(ty + ${i}u * RG) * 16u + tx] = s[${i}];`)}
    workgroupBarrier();
    for (var k4 = 0u; k4 < 16u; k4++) {
${rows4((i) => `      let p${i} = Ps[(ty + ${i}u * RG) * 16u + k4];`)}
${rows4((j) => `      let v${j} = KV[(k4 * 4u + ${j}u) * 16u + tx];\n${rows4((i) => `      acc[${i}] = fma(vec4<f32>(p${i}[${j}]), v${j}, acc[${i}]);`)}`)}
    }
    workgroupBarrier();
  }
  // the row sums: 16 partials a row
${rows4((i) => `  Ps[(ty + ${i}u * RG) * 4u + tx / 4u][tx % 4u] = l[${i}];`)}
  workgroupBarrier();
${rows4((i) => `  {
    let r = r0 + ty + ${i}u * RG;
    let pr = (ty + ${i}u * RG) * 4u;
    let a = (Ps[pr] + Ps[pr + 1u]) + (Ps[pr + 2u] + Ps[pr + 3u]);
    let o = acc[${i}] / ((a.x + a.y) + (a.z + a.w));
    let yo = o_y + (b * L + r) * rowQ + h * hd + 4u * tx;
    if (r < L) {
      if (4u * tx < hd) { $y[yo] = o.x; }
      if (4u * tx + 1u < hd) { $y[yo + 1u] = o.y; }
      if (4u * tx + 2u < hd) { $y[yo + 2u] = o.z; }
      if (4u * tx + 3u < hd) { $y[yo + 3u] = o.w; }
    }
  }`)}
}`;
  },
};
