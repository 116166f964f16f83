// The attention half of a decode step (Llama's, the hybrids' attention layers) as one team call, the way gated_mlp
// (step_out.ts) does the MLP half: one hand-off per layer instead of linearMany, rope (twice, in JS), the KV cache
// append (in JS), attention_decode and the o_proj `linear`, with q, k, v and the attention output never leaving wasm
// memory. Phases, a barrier between each:
//   1. q, k, v = x · W{q,k,v}ᵀ (+ biases) for x [M, H] (teamProduct, each thread its rows of each; descQ/K/V)
//   2. RoPE (rotate-half on the first rd channels of every head) on q's heads, and on k's heads followed by the
//      append of k and v to the cache at row r's position nKeys[r] − 1, in the cache's format; items: (row, query
//      head) and (row, group of KV heads), the group a whole position's heads where q8 blocks span heads (hd % 32 ≠ 0)
//   3. attention_decode (attention.ts: the keys split among the threads, its own barrier on `counter + 4`)
//   With one split of the keys per row (S = 1: short contexts) and a KV head or more per thread (Hkv ≥ T; not a q8
//   cache whose blocks span heads), phases 1–3 go by KV heads instead: each thread its heads' rows of Wq/Wk/Wv, their
//   RoPE and append, their attention and merge (attention_decode_heads), then the one barrier before o_proj. With
//   S = 1 otherwise, phases 2 and 3 go by rows, each thread its own from the rope to the merge: 2 barriers per call.
//   Else 4 (the phases above). Every head's arithmetic is the same in each: the same bits.
//   4. y = attention output [M, Hq·hd] · Woᵀ (+ bias) (descO)
// The same bits as the op sequence: the products are the decode kernels (the same bits for any split of N); RoPE
// takes cos/sin as f32 from the JS side (`rope`: the same Math.cos/sin as the CPU backend's rope, [M, rd]: cos of
// the rd/2 frequencies, then sin) and rotates in f64 rounded to f32 once, as the CPU kernel's JS arithmetic does; the
// cache conversions are dtype.ts's (f32ToBf16, f32ToF16: round-to-nearest-even) and q8.ts's quantizer
// (quantizeQ8Block: scale = f32(max|v| / 127), q = round-half-up(v · (1 / scale))), ported bit for bit.

import { attention_decode, attention_decode_heads } from './attention';
import { productRows, teamProduct } from './step_out';
import { sliceHi, sliceLo, teamBarrier } from './team';

/** float32 → bfloat16 bits, round-to-nearest-even, NaN kept NaN (dtype.ts f32ToBf16) */
// @ts-ignore: decorator
@inline function toBf16(v: f32): u16 {
  const x = reinterpret<u32>(v);
  if ((x & 0x7fffffff) > 0x7f800000) return <u16>(((x >>> 16) | 0x40) & 0xffff);
  return <u16>(((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff);
}

/** float32 → IEEE binary16 bits, round-to-nearest-even (dtype.ts f32ToF16) */
function toF16(v: f32): u16 {
  const x = reinterpret<u32>(v);
  const sign = (x >>> 16) & 0x8000;
  const exp = <i32>((x >>> 23) & 0xff);
  let mant = x & 0x7fffff;
  if (exp == 0xff) return <u16>(sign | 0x7c00 | (mant ? 0x200 : 0));
  const e = exp - 127 + 15;
  if (e >= 0x1f) return <u16>(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return <u16>sign;
    mant |= 0x800000;
    const shift = <u32>(14 - e);
    let half = mant >>> shift;
    const rem = mant & ((<u32>1 << shift) - 1);
    const mid = <u32>1 << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1) != 0)) half++;
    return <u16>(sign | half);
  }
  let half = sign | (<u32>e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1) != 0)) half++;
  return <u16>half;
}

/** JavaScript's Math.round (the nearest integer, halves up) */
// @ts-ignore: decorator
@inline function roundHalfUp(x: f64): f64 {
  const c = Math.ceil(x);
  return c - 0.5 > x ? c - 1 : c;
}

/** the 32 f32 values at src → one q8 KV block at dst (f32 scale, 32 × int8), as q8.ts quantizeQ8Block */
function quantizeKvBlock(src: usize, dst: usize): void {
  let amax: f64 = 0;
  for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(<f64>load<f32>(src + (<usize>i << 2))));
  const s = <f32>(amax / 127);
  const inv: f64 = s == 0 ? 0 : 1 / <f64>s;
  store<f32>(dst, s);
  for (let i = 0; i < 32; i++) store<i8>(dst + 4 + <usize>i, <i8><i32>roundHalfUp(<f64>load<f32>(src + (<usize>i << 2)) * inv));
}

/** n f32 values at src → the cache at value index `idx` in format fmt (0 f32, 1 bf16, 2 f16, 3 q8: n, idx multiples of 32) */
function appendKv(src: usize, cache: usize, idx: usize, n: i32, fmt: i32): void {
  if (fmt == 0) memory.copy(cache + (idx << 2), src, <usize>n << 2);
  else if (fmt == 1) for (let i = 0; i < n; i++) store<u16>(cache + ((idx + <usize>i) << 1), toBf16(load<f32>(src + (<usize>i << 2))));
  else if (fmt == 2) for (let i = 0; i < n; i++) store<u16>(cache + ((idx + <usize>i) << 1), toF16(load<f32>(src + (<usize>i << 2))));
  else for (let i = 0; i < n; i += 32) quantizeKvBlock(src + (<usize>i << 2), cache + ((idx + <usize>i) >> 5) * 36);
}

/** rotate-half RoPE on the first rd channels of the nh heads of hd values at p; cs: cos [rd/2], then sin [rd/2] */
function ropeHeads(p: usize, nh: i32, hd: i32, rd: i32, cs: usize): void {
  const half = rd >> 1;
  for (let h = 0; h < nh; h++) {
    const o = p + ((<usize>h * hd) << 2);
    for (let i = 0; i < half; i++) {
      const pa = o + (<usize>i << 2), pb = o + (<usize>(i + half) << 2);
      const a = <f64>load<f32>(pa), b = <f64>load<f32>(pb);
      const c = <f64>load<f32>(cs + (<usize>i << 2)), s = <f64>load<f32>(cs + (<usize>(i + half) << 2));
      store<f32>(pa, <f32>(a * c - b * s));
      store<f32>(pb, <f32>(b * c + a * s));
    }
  }
}

/**
 * Item `it` of phase 2: it < M·Hq: RoPE on query head it (row it / Hq); else (row, group of gh KV heads) number
 * it − M·Hq: RoPE on those k heads, then their k and v appended to the caches at the row's new position
 */
function ropeAppend(
  it: i32, M: i32, Hq: i32, q: usize, k: usize, v: usize, hd: i32, rd: i32, rope: usize, groups: i32, gh: i32,
  rowKV: i32, Kc: usize, Vc: usize, cap: i32, fmt: i32, nKeys: usize,
): void {
  if (it < M * Hq) {
    if (rope) ropeHeads(q + ((<usize>it * hd) << 2), 1, hd, rd, rope + ((<usize>(it / Hq) * rd) << 2));
    return;
  }
  const j = it - M * Hq, r = j / groups, g = j % groups;
  const off = <usize>(r * rowKV + g * gh * hd) << 2;
  if (rope) ropeHeads(k + off, gh, hd, rd, rope + ((<usize>r * rd) << 2));
  const idx = (<usize>r * cap + <usize>(load<i32>(nKeys + (<usize>r << 2)) - 1)) * rowKV + <usize>(g * gh * hd);
  appendKv(k + off, Kc, idx, gh * hd, fmt);
  appendKv(v + off, Vc, idx, gh * hd, fmt);
}

/**
 * A decode step's attention half (see above). x [M, H]; descQ/K/V/O: step_out.ts product descriptors (their y: q
 * [M, Hq·hd], k and v [M, Hkv·hd], the output [M, N]); rope: cos/sin [M, rd] or 0 (no positional encoding, rd 0);
 * Kc, Vc: the caches [M, cap, Hkv, hd] in format fmt (0 f32, 1 bf16, 2 f16, 3 q8 blocks); nKeys: i32 [M] (row r's
 * new position is nKeys[r] − 1); scale, S, scratch, dfmt, shape, pad: attention_decode's; att: [M, Hq·hd] for its
 * output; counter: 2 i32 zeroed (this kernel's barriers, then attention_decode's).
 */
export function attn_decode_layer(
  x: usize, M: i32, H: i32, descQ: usize, descK: usize, descV: usize, descO: usize, rope: usize, rd: i32,
  Hq: i32, Hkv: i32, hd: i32, Kc: usize, Vc: usize, cap: i32, fmt: i32, nKeys: usize,
  scale: f32, S: i32, scratch: usize, dfmt: i32, shape: i32, pad: i32, att: usize, counter: usize, t: i32, T: i32,
): void {
  const q = <usize>load<u32>(descQ, 16), k = <usize>load<u32>(descK, 16), v = <usize>load<u32>(descV, 16);
  const rowKV = Hkv * hd;
  // KV heads per item: one, or a whole position where a q8 block spans heads
  const gh = fmt == 3 && hd % 32 != 0 ? Hkv : 1;
  const groups = Hkv / gh;
  const G = Hq / Hkv;
  if (S == 1 && T > 1 && Hkv >= T && gh == 1 && (hd & 3) == 0) {
    // one split per row and a KV head or more per thread: each thread its KV heads (and their query heads) from the
    // products to the merge — their rows of Wq/Wk/Wv (whole heads: multiples of 4 rows), RoPE, the append, the
    // attention — then the one barrier before o_proj
    const g0 = sliceLo(t, T, Hkv, 1), g1 = sliceHi(t, T, Hkv, 1);
    productRows(descQ, x, M, H, g0 * G * hd, g1 * G * hd, t);
    productRows(descK, x, M, H, g0 * hd, g1 * hd, t);
    productRows(descV, x, M, H, g0 * hd, g1 * hd, t);
    for (let r = 0; r < M; r++) {
      for (let h = g0 * G; h < g1 * G; h++) ropeAppend(r * Hq + h, M, Hq, q, k, v, hd, rd, rope, groups, gh, rowKV, Kc, Vc, cap, fmt, nKeys);
      for (let g = g0; g < g1; g++) ropeAppend(M * Hq + r * groups + g, M, Hq, q, k, v, hd, rd, rope, groups, gh, rowKV, Kc, Vc, cap, fmt, nKeys);
    }
    attention_decode_heads(q, Kc, Vc, att, nKeys, M, Hq, Hkv, hd, cap, scale, scratch, dfmt, shape, pad, g0, g1, t, T);
    teamBarrier(counter, 1, T);
    teamProduct(descO, att, M, Hq * hd, t, T);
    return;
  }
  teamProduct(descQ, x, M, H, t, T);
  teamProduct(descK, x, M, H, t, T);
  teamProduct(descV, x, M, H, t, T);
  teamBarrier(counter, 1, T);
  let phase = 2;
  if (S == 1) {
    // one split of the keys per row (short contexts): the thread that runs row r's attention (attention_decode's
    // items are its rows then) ropes and appends row r itself, and attention_decode merges its own rows: no barrier
    // until o_proj
    const r1 = sliceHi(t, T, M, 1);
    for (let r = sliceLo(t, T, M, 1); r < r1; r++) {
      for (let h = 0; h < Hq; h++) ropeAppend(r * Hq + h, M, Hq, q, k, v, hd, rd, rope, groups, gh, rowKV, Kc, Vc, cap, fmt, nKeys);
      for (let g = 0; g < groups; g++) ropeAppend(M * Hq + r * groups + g, M, Hq, q, k, v, hd, rd, rope, groups, gh, rowKV, Kc, Vc, cap, fmt, nKeys);
    }
  } else {
    const items = M * (Hq + groups);
    const i1 = sliceHi(t, T, items, 1);
    for (let it = sliceLo(t, T, items, 1); it < i1; it++) ropeAppend(it, M, Hq, q, k, v, hd, rd, rope, groups, gh, rowKV, Kc, Vc, cap, fmt, nKeys);
    teamBarrier(counter, phase++, T);
  }
  attention_decode(q, Kc, Vc, att, nKeys, M, Hq, Hkv, hd, cap, scale, S, scratch, counter + 4, dfmt, shape, pad, t, T);
  teamBarrier(counter, phase, T);
  teamProduct(descO, att, M, Hq * hd, t, T);
}

/**
 * Prefill's RoPE and KV cache write (WasmBackend.attentionPrefill), rows m of [m0, m1) of q [M, Hq·hd] and k, v
 * [M, Hkv·hd] (M = b·L; row m is position past[m / L] + m % L of batch row m / L): RoPE on row m's query and key
 * heads with cs + m · rd (cos [rd/2], then sin; rd 0 or cs 0: none), then, where there are caches (Kc ≠ 0), row m's k
 * and v written into Kc, Vc [b, cap, Hkv, hd] at that position in format fmt (q8: Hkv·hd a multiple of 32). The same
 * bits as the op sequence (`rope` twice in JS, then `attention`'s cache write): see ropeHeads and appendKv.
 */
export function attn_prefill_rope(
  q: usize, k: usize, v: usize, L: i32, Hq: i32, Hkv: i32, hd: i32, rd: i32, cs: usize,
  Kc: usize, Vc: usize, cap: i32, fmt: i32, past: usize, m0: i32, m1: i32,
): void {
  const rowKV = Hkv * hd;
  for (let m = m0; m < m1; m++) {
    const km = k + ((<usize>m * rowKV) << 2);
    if (rd && cs) {
      const c = cs + ((<usize>m * rd) << 2);
      ropeHeads(q + ((<usize>m * Hq * hd) << 2), Hq, hd, rd, c);
      ropeHeads(km, Hkv, hd, rd, c);
    }
    if (Kc) {
      const r = m / L;
      const idx = (<usize>r * cap + <usize>(load<i32>(past + (<usize>r << 2)) + m % L)) * <usize>rowKV;
      appendKv(km, Kc, idx, rowKV, fmt);
      appendKv(v + ((<usize>m * rowKV) << 2), Vc, idx, rowKV, fmt);
    }
  }
}
