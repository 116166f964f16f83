/**
 * Sampling on the GPU: each row's next token drawn from logits [rows, V] with the CPU sampler's filters
 * (`src/generate/sampling.ts`, HF order: repetition penalty → temperature → top-k → top-p → min-p), so that
 * sampled decoding chains on the device like greedy decoding (the drawn id feeds the next step).
 *
 * One workgroup of 256 per row. Every filter is a threshold on an order-preserving u32 key of the processed
 * logit, found exactly with passes over the row:
 * - top-k: the key of the k-th largest, by radix select (four 8-bit digits, histograms in workgroup atomics);
 *   ties with the k-th value are kept, as HF;
 * - top-p: the smallest key c whose mass strictly above is < (topP − TOP_P_EPS)·Z, Z the mass after top-k, by
 *   bisection over the key space (32 passes; masses are workgroup reductions: WGSL has no float atomics);
 *   the tokens tied at c are kept in ascending id order while the mass ranked above them stays under the
 *   threshold (the CPU sampler sorts ties by id too); the top token is always kept;
 * - min-p: weight exp(v − max) ≥ minP.
 * The draw: thread t owns ids [t·C, (t+1)·C); a prefix scan of the kept masses finds the thread whose range
 * holds u·total, which walks its ids. u comes from Philox4x32-10 keyed by the row's 64-bit seed with the
 * row's counter (the index of the token being drawn), which the kernel then increments; with a repetition
 * penalty the drawn id is marked in the row's presence mask.
 *
 * Roles: x [rows, V] logits, rng [rows, 8] (seed as four 16-bit halves, counter, unused), pres [rows, V]
 * (0/1, or the dummy when there is no penalty), y [rows] (the id as a float, −1 when nothing is selectable).
 * Params: rows, V, flags (1 penalty, 2 top-k, 4 top-p, 8 min-p), temperature, penalty, topK, topP − eps, minP.
 */
import type { KernelSpec } from '../runtime.js';

/** Philox4x32-10 (Salmon et al., Random123): 16-bit limbs for the 32×32→64 products WGSL lacks */
export const PHILOX_WGSL = /* wgsl */ `
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
  let a0 = a & 0xffffu; let a1 = a >> 16u; let b0 = b & 0xffffu; let b1 = b >> 16u;
  let p00 = a0 * b0; let p01 = a0 * b1; let p10 = a1 * b0; let p11 = a1 * b1;
  let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  return vec2<u32>(p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u), a * b);
}
fn philox(c: vec4<u32>, k: vec2<u32>) -> vec4<u32> {
  var x = c;
  var key = k;
  for (var i = 0u; i < 10u; i++) {
    let m0 = mulhilo(0xD2511F53u, x.x);
    let m1 = mulhilo(0xCD9E8D57u, x.z);
    x = vec4<u32>(m1.x ^ x.y ^ key.x, m1.y, m0.x ^ x.w ^ key.y, m0.y);
    key = key + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
  }
  return x;
}`;

/** a 256-thread tree reduction of v with `op` in workgroup array `arr`, broadcast through `out` */
function reduction(name: string, type: string, arr: string, out: string, op: (x: string, y: string) => string): string {
  return /* wgsl */ `
fn ${name}(li: u32, v: ${type}) -> ${type} {
  ${arr}[li] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) { if (li < s) { ${arr}[li] = ${op(`${arr}[li]`, `${arr}[li + s]`)}; } workgroupBarrier(); }
  if (li == 0u) { ${out} = ${arr}[0]; }
  return workgroupUniformLoad(&${out});
}`;
}

/** 256-thread reductions and scans; results broadcast with workgroupUniformLoad (uniform for the barriers after) */
const REDUCE = /* wgsl */ `
var<workgroup> su: array<u32, 256>;
var<workgroup> sf: array<f32, 256>;
var<workgroup> bu: u32;
var<workgroup> bu2: u32;
var<workgroup> bf: f32;
var<workgroup> hist: array<atomic<u32>, 256>;
${reduction('sum_u', 'u32', 'su', 'bu', (x, y) => `${x} + ${y}`)}
${reduction('max_u', 'u32', 'su', 'bu', (x, y) => `max(${x}, ${y})`)}
${reduction('min_u', 'u32', 'su', 'bu', (x, y) => `min(${x}, ${y})`)}
${reduction('sum_f', 'f32', 'sf', 'bf', (x, y) => `${x} + ${y}`)}
/** inclusive prefix sums of v over the threads (Hillis-Steele) */
fn scan_u(li: u32, v: u32) -> u32 {
  su[li] = v;
  workgroupBarrier();
  for (var s = 1u; s < 256u; s <<= 1u) {
    var t = 0u;
    if (li >= s) { t = su[li - s]; }
    workgroupBarrier();
    su[li] += t;
    workgroupBarrier();
  }
  let r = su[li];
  workgroupBarrier();
  return r;
}
fn scan_f(li: u32, v: f32) -> f32 {
  sf[li] = v;
  workgroupBarrier();
  for (var s = 1u; s < 256u; s <<= 1u) {
    var t = 0.0;
    if (li >= s) { t = sf[li - s]; }
    workgroupBarrier();
    sf[li] += t;
    workgroupBarrier();
  }
  let r = sf[li];
  workgroupBarrier();
  return r;
}`;

export const SAMPLE: KernelSpec = {
  name: 'sample',
  roles: ['x', 'rng', 'pres', 'y'],
  writes: ['rng', 'pres', 'y'],
  wgsl: () => /* wgsl */ `
${PHILOX_WGSL}
${REDUCE}
const NEG_INF_KEY: u32 = 0x007fffffu;
const POS_INF_KEY: u32 = 0xff800000u;
const NONE: u32 = 0xffffffffu;
var<private> row: u32;
var<private> V: u32;
var<private> flags: u32;
var<private> temp: f32;
var<private> pen: f32;
/** order-preserving key of a float: larger float, larger key (NaN is mapped to −∞ before) */
fn key_of(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  if ((b >> 31u) == 1u) { return ~b; }
  return b | 0x80000000u;
}
fn val_of(k: u32) -> f32 {
  if ((k >> 31u) == 1u) { return bitcast<f32>(k & 0x7fffffffu); }
  return bitcast<f32>(~k);
}
/** the processed logit of token i as a key: NaN → −∞, repetition penalty, temperature */
fn key_at(i: u32) -> u32 {
  let raw = $x[o_x + row * V + i];
  let b = bitcast<u32>(raw);
  if ((b & 0x7fffffffu) > 0x7f800000u) { return NEG_INF_KEY; }
  if ((b & 0x7fffffffu) == 0x7f800000u) { return key_of(raw); }
  var v = raw;
  if ((flags & 1u) != 0u && $pres[o_pres + row * V + i] > 0.5) {
    if (v < 0.0) { v = v * pen; } else { v = v / pen; }
  }
  return key_of(v / temp);
}
/** the unnormalized probability of a key: exp(v − max), or 1/0 for ±∞ when the max is +∞ */
fn weight(k: u32, maxk: u32, m: f32) -> f32 {
  if (k <= NEG_INF_KEY) { return 0.0; }
  if (maxk == POS_INF_KEY) { return select(0.0, 1.0, k == POS_INF_KEY); }
  return exp(val_of(k) - m);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let rows = pu(PK);
  V = pu(PK + 1u);
  let fl = pu(PK + 2u); // (a local: private variables count as non-uniform for the barriers)
  flags = fl;
  temp = pf(PK + 3u);
  pen = pf(PK + 4u);
  let topK = pu(PK + 5u);
  let topP = pf(PK + 6u);
  let minP = pf(PK + 7u);
  let r0 = lin(wg, nw);
  if (r0 >= rows) { return; }
  row = r0;

  // 1. the largest key and the number of selectable tokens
  var mk = 0u;
  var cnt = 0u;
  for (var i = li; i < V; i += 256u) {
    let k = key_at(i);
    mk = max(mk, k);
    if (k > NEG_INF_KEY) { cnt += 1u; }
  }
  let maxk = max_u(li, mk);
  let n = sum_u(li, cnt);
  if (n == 0u) {
    if (li == 0u) { $y[o_y + row] = -1.0; }
    return;
  }
  let m = val_of(maxk);

  // 2. top-k: the key of the k-th largest (radix select, 8 bits a pass: a histogram of the next digit among the
  //    keys that share the digits chosen so far, in workgroup atomics)
  var kth = NEG_INF_KEY + 1u;
  if ((fl & 2u) != 0u && topK < n) {
    var prefix = 0u;
    var need = topK;
    for (var d = 0u; d < 4u; d++) {
      let shift = 24u - 8u * d;
      let known = select(0xffffffffu << (shift + 8u), 0u, d == 0u);
      atomicStore(&hist[li], 0u);
      workgroupBarrier();
      for (var i = li; i < V; i += 256u) {
        let k = key_at(i);
        if (k > NEG_INF_KEY && (k & known) == prefix) { atomicAdd(&hist[(k >> shift) & 255u], 1u); }
      }
      workgroupBarrier();
      if (li == 0u) {
        // the largest digit b with count(digit >= b) >= need
        var acc = 0u;
        var b = 255u;
        loop {
          let c = atomicLoad(&hist[b]);
          if (acc + c >= need || b == 0u) { break; }
          acc += c;
          b -= 1u;
        }
        bu = b;
        bu2 = need - acc;
      }
      prefix = prefix | (workgroupUniformLoad(&bu) << shift);
      need = workgroupUniformLoad(&bu2);
    }
    kth = prefix;
  }

  // 3. top-p: cutoff key c and how many of the tokens tied at c (in id order) are kept
  var cut = kth;
  var nTie = NONE;
  if ((fl & 4u) != 0u) {
    var z = 0.0;
    for (var i = li; i < V; i += 256u) {
      let k = key_at(i);
      if (k >= kth) { z += weight(k, maxk, m); }
    }
    let thr = topP * sum_f(li, z);
    // smallest K >= kth whose mass strictly above is < thr (true at maxk unless thr <= 0)
    var lo = kth;
    var hi = maxk;
    for (var it = 0u; it < 32u; it++) {
      let mid = lo + (hi - lo) / 2u;
      var g = 0.0;
      for (var i = li; i < V; i += 256u) {
        let k = key_at(i);
        if (k > mid) { g += weight(k, maxk, m); }
      }
      if (sum_f(li, g) < thr) { hi = mid; } else { lo = mid + 1u; }
    }
    // the smallest present key >= lo, the mass above it and its ties
    var mn = NONE;
    for (var i = li; i < V; i += 256u) { let k = key_at(i); if (k >= lo && k >= kth) { mn = min(mn, k); } }
    cut = min_u(li, mn);
    if (cut == NONE) { cut = maxk; }
    var above = 0.0;
    var ties = 0u;
    for (var i = li; i < V; i += 256u) {
      let k = key_at(i);
      if (k > cut) { above += weight(k, maxk, m); }
      if (k == cut) { ties += 1u; }
    }
    let g = sum_f(li, above);
    let t = sum_u(li, ties);
    let wc = weight(cut, maxk, m);
    if (g >= thr) {
      nTie = 1u; // only the top token survives (thr <= 0)
    } else if (wc > 0.0) {
      nTie = u32(clamp(ceil((thr - g) / wc), 1.0, f32(t)));
    }
  }

  // 4. the draw: thread li owns ids [li*C, li*C + C); tie ranks and kept masses by prefix scans
  let C = (V + 255u) / 256u;
  let i0 = min(V, li * C);
  let i1 = min(V, i0 + C);
  var myTies = 0u;
  for (var i = i0; i < i1; i++) { if (key_at(i) == cut) { myTies += 1u; } }
  let tieBase = scan_u(li, myTies) - myTies;
  var mass = 0.0;
  var lastPos = NONE;
  var rank = tieBase;
  for (var i = i0; i < i1; i++) {
    let k = key_at(i);
    var keep = k > cut;
    if (k == cut) { keep = rank < nTie; rank += 1u; }
    let w = weight(k, maxk, m);
    if (keep && k >= kth && w > 0.0 && ((flags & 8u) == 0u || w >= minP)) { mass += w; lastPos = i; }
  }
  let incl = scan_f(li, mass);
  if (li == 255u) { bf = incl; }
  let total = workgroupUniformLoad(&bf);
  let rb = o_rng + row * 8u;
  let seed = vec2<u32>(u32($rng[rb]) | (u32($rng[rb + 1u]) << 16u), u32($rng[rb + 2u]) | (u32($rng[rb + 3u]) << 16u));
  let ctr = u32($rng[rb + 4u]);
  let u = f32(philox(vec4<u32>(ctr, 0u, 0u, 0u), seed).x >> 8u) * (1.0 / 16777216.0);
  let r = u * total;
  let excl = incl - mass;
  var mine = NONE;
  if (mass > 0.0 && r < incl) { mine = li; }
  var winner = min_u(li, mine);
  // u·total at or past the total (rounding): the last thread with mass takes its last kept id
  let lastT = max_u(li, select(0u, li + 1u, mass > 0.0));
  if (winner == NONE) { winner = lastT - 1u; }
  if (li == winner) {
    var pick = lastPos;
    var acc = excl;
    rank = tieBase;
    for (var i = i0; i < i1; i++) {
      let k = key_at(i);
      var keep = k > cut;
      if (k == cut) { keep = rank < nTie; rank += 1u; }
      let w = weight(k, maxk, m);
      if (keep && k >= kth && w > 0.0 && ((flags & 8u) == 0u || w >= minP)) {
        acc += w;
        if (acc > r) { pick = i; break; }
      }
    }
    $y[o_y + row] = f32(pick);
    $rng[rb + 4u] = f32(ctr + 1u);
    if ((flags & 1u) != 0u) { $pres[o_pres + row * V + pick] = 1.0; }
  }
}`,
};
