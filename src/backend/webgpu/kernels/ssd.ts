/**
 * Mamba-2 SSD (see src/ssm/ssd.ts for the math and the names). Layouts: x, y [b, L, nh, hd]; dt [b, L, nh];
 * B, C [b, L, G, N]; state [b, nh, hd, N]; head h reads group g = ⌊h / (nh/G)⌋.
 *
 * Decode (`SSD_STEP`): one workgroup per (b, head, 8 rows p of the state); 32 lanes per row stride over n
 * (coalesced), update the state in place and reduce y_p = Σ_n h[p, n] C[n].
 *
 * Prefill, the chunked algorithm over chunks of Q (32 or 64, by the workgroup memory available):
 *   `SSD_DT`      Δ = clamp(softplus(dt + bias)) and its running sum a = Σ Δ·A inside each chunk;
 *   `SSD_CB`      C_l · B_s per (chunk, group): [Q, Q], shared by the group's heads;
 *   `SSD_STATES`  (2) chunk states S_c[p, n] = Σ_s exp(a_end − a_s) Δ_s x_s[p] B_s[n]   (64×64 tiles);
 *   `SSD_PASS`    (3) H_c = exp(a_end) H_{c−1} + S_c, in place: S becomes the state entering each chunk;
 *   `SSD_OUT`     (1)+(4) y_l = Σ_{s≤l} exp(a_l − a_s) (C_l·B_s) Δ_s x_s + exp(a_l) C_l · H_in + D x_l.
 * The exponent differences are of sums over at most Q steps (the official kernels' form).
 */
import type { KernelSpec } from '../runtime.js';
import { causal, chunkConsts, chunkOuterKernel, chunkSumArrays, chunkSums, decayed, serialPass, tileFma } from './ssd_tiles.js';

const DTPROC = /* wgsl */ `
fn dt_proc(raw: f32, bias: f32, lo: f32, hi: f32) -> f32 {
  return clamp(softplus(raw + bias), lo, hi);
}`;

/**
 * params: Bn, L, nh, hd, G, N, flags (1 D, 2 bias), lo, hi, sx, sdt, sB, sC (the row strides of x, dt, B, C: row (b, t)
 * of x starts at (b·L + t)·sx — nh·hd when packed, wider for a piece of a larger tensor read in place)
 */
export const SSD_STEP: KernelSpec = {
  name: 'ssd_step',
  roles: ['x', 'dt', 'A', 'B', 'C', 'D', 'dtb', 'state', 'y'],
  writes: ['state', 'y'],
  wgsl: () => /* wgsl */ `
${DTPROC}
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let nh = pu(PK + 2u); let hd = pu(PK + 3u); let G = pu(PK + 4u); let N = pu(PK + 5u);
  let flags = pu(PK + 6u); let lo = pf(PK + 7u); let hi = pf(PK + 8u);
  let sx = pu(PK + 9u); let sdt = pu(PK + 10u); let sB = pu(PK + 11u); let sC = pu(PK + 12u);
  let nPT = (hd + 7u) / 8u;
  let item = lin(wg, nw);
  if (item >= Bn * nh * nPT) { return; }
  let pt = item % nPT; let h = (item / nPT) % nh; let b = item / (nPT * nh);
  let g = h / (nh / G);
  let r = li / 32u; let lane = li % 32u;
  let p = pt * 8u + r;
  var bias = 0.0;
  if ((flags & 2u) != 0u) { bias = $dtb[o_dtb + h]; }
  let so = o_state + ((b * nh + h) * hd + p) * N;
  for (var t = 0u; t < L; t++) {
    let row = b * L + t;
    let dtv = dt_proc($dt[o_dt + row * sdt + h], bias, lo, hi);
    let dA = exp(dtv * $A[o_A + h]);
    var partial = 0.0;
    var xv = 0.0;
    if (p < hd) {
      xv = $x[o_x + row * sx + h * hd + p];
      let dx = dtv * xv;
      let bB = row * sB + g * N; let bC = row * sC + g * N;
      for (var n = lane; n < N; n += 32u) {
        let hv = dA * $state[so + n] + dx * $B[o_B + bB + n];
        $state[so + n] = hv;
        partial += hv * $C[o_C + bC + n];
      }
    }
    red[li] = partial;
    workgroupBarrier();
    for (var s = 16u; s > 0u; s >>= 1u) {
      if (lane < s) { red[li] += red[li + s]; }
      workgroupBarrier();
    }
    if (lane == 0u && p < hd) {
      var v = red[li];
      if ((flags & 1u) != 0u) { v += $D[o_D + h] * xv; }
      $y[o_y + (row * nh + h) * hd + p] = v;
    }
    workgroupBarrier();
  }
}`,
};

/**
 * `SSD_STEP` on devices with subgroups: one state row (b, h, p) per subgroup, lanes stride over n and
 * y_p = subgroupAdd; no workgroup barriers. Same params.
 *
 * Variant 'r{N}s{SG}p{P}' (P > 1, session 34, `decodeStateRows`): P consecutive rows p of one head per subgroup. The
 * head's Δ, exp(Δ·A) and the group's B and C rows are loaded once for the P rows (P = 1 loads them for every row:
 * at 64 sequences × 24 heads × 64 rows that is 100 MB of B/C reads from L2 per layer beside the 100 MB of state),
 * and the P·⌈N/SG⌉ state loads of a lane are issued together (more bytes in flight); code unrolled in the
 * generator so the state stays in registers. Same arithmetic per row in the same order as P = 1.
 */
export const SSD_STEP_SG: KernelSpec = {
  name: 'ssd_step_sg',
  roles: ['x', 'dt', 'A', 'B', 'C', 'D', 'dtb', 'state', 'y'],
  writes: ['state', 'y'],
  wgsl: (v) => {
    // variant '' (the kernel of before): the state updated in place, one load-update-store per lane at a time;
    // 'r{N}s{subgroup}' (a fixed subgroup size): the lane's ⌈N / subgroup⌉ states in registers, loads issued together;
    // 'r{N}s{subgroup}p{P}': P rows of a head per subgroup (ssdStepRowsBody)
    const m = /^r(\d+)s(\d+)(?:p(\d+))?$/.exec(v);
    if (v !== '' && !m) throw new Error(`ssd_step_sg: bad variant ${JSON.stringify(v)} (want '' or r{N}s{subgroup size}[p{rows}])`);
    const [RN, SG] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
    const K = m ? Math.ceil(RN / SG) : 0;
    if (m && !(K >= 1 && K <= 64)) throw new Error(`ssd_step_sg: variant ${v} holds ${K} states a lane (1…64)`);
    if (m?.[3] !== undefined) return ssdStepRowsBody(RN, SG, Number(m[3]));
    const loop = m
      ? /* wgsl */ `
    for (var j = 0u; j < ${K}u; j++) {
      let n = lane + j * ${SG}u;
      if (n < N) {
        let hv = dA * hs[j] + dx * $B[o_B + bB + n];
        hs[j] = hv;
        partial += hv * $C[o_C + bC + n];
      }
    }`
      : /* wgsl */ `
    for (var n = lane; n < N; n += sgs) {
      let hv = dA * $state[so + n] + dx * $B[o_B + bB + n];
      if (live) { $state[so + n] = hv; }
      partial += hv * $C[o_C + bC + n];
    }`;
    return /* wgsl */ `${ssdStepSgHead(m ? `${RN}u` : 'pu(PK + 5u)')}
  let item = lin(wg, nw) * (64u / sgs) + li / sgs;
  let live = item < Bn * nh * hd;
  let it = min(item, Bn * nh * hd - 1u);
  let p = it % hd; let h = (it / hd) % nh; let b = it / (hd * nh);
  let g = h / (nh / G);
  var bias = 0.0;
  if ((flags & 2u) != 0u) { bias = $dtb[o_dtb + h]; }
  let so = o_state + it * N;${m ? `
  var hs = array<f32, ${K}>();
  for (var j = 0u; j < ${K}u; j++) { let n = lane + j * ${SG}u; if (n < N) { hs[j] = $state[so + n]; } }` : ''}
  for (var t = 0u; t < L; t++) {
    let row = b * L + t;
    let dtv = dt_proc($dt[o_dt + row * sdt + h], bias, lo, hi);
    let dA = exp(dtv * $A[o_A + h]);
    let xv = $x[o_x + row * sx + h * hd + p];
    let dx = dtv * xv;
    let bB = row * sB + g * N; let bC = row * sC + g * N;
    var partial = 0.0;${loop}
    let v = subgroupAdd(partial);
    if (live && lane == 0u) {
      var out = v;
      if ((flags & 1u) != 0u) { out += $D[o_D + h] * xv; }
      $y[o_y + (row * nh + h) * hd + p] = out;
    }
  }${m ? `
  if (live) { for (var j = 0u; j < ${K}u; j++) { let n = lane + j * ${SG}u; if (n < N) { $state[so + n] = hs[j]; } } }` : ''}
}`;
  },
};

/** `ssd_step_sg`'s entry point and parameters (SSD_STEP's), N the state size as WGSL (a constant or a parameter) */
function ssdStepSgHead(N: string): string {
  return /* wgsl */ `
${DTPROC}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_size) sgs: u32, @builtin(subgroup_invocation_id) lane: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let nh = pu(PK + 2u); let hd = pu(PK + 3u); let G = pu(PK + 4u); let N = ${N};
  let flags = pu(PK + 6u); let lo = pf(PK + 7u); let hi = pf(PK + 8u);
  let sx = pu(PK + 9u); let sdt = pu(PK + 10u); let sB = pu(PK + 11u); let sC = pu(PK + 12u);`;
}

/** the most state values a lane holds in `ssd_step_sg`'s P-row variant (P·⌈N/SG⌉) */
export const SSD_STEP_ROWS_REGS = 64;

/**
 * The rows of `ssd_step_sg` a subgroup takes for a head of hd rows and N states at subgroup size SG, asked P: P
 * halved until P·⌈N/SG⌉ ≤ SSD_STEP_ROWS_REGS, and at most hd (1: the one-row kernel).
 */
export function ssdStepRows(P: number, hd: number, N: number, SG: number): number {
  let p = Math.max(1, Math.min(P, hd));
  while (p > 1 && p * Math.ceil(N / SG) > SSD_STEP_ROWS_REGS) p >>= 1;
  return p;
}

/** `ssd_step_sg` with P rows of a head per subgroup (see SSD_STEP_SG): Δ, B and C once for the P rows, states in registers */
function ssdStepRowsBody(RN: number, SG: number, P: number): string {
  const K = Math.ceil(RN / SG);
  if (!(Number.isInteger(P) && P >= 2 && P * K <= SSD_STEP_ROWS_REGS)) throw new Error(`ssd_step_sg: ${P} rows a subgroup of ${K} states a lane: want 2 to ${Math.floor(SSD_STEP_ROWS_REGS / K)} (P·⌈N/SG⌉ ≤ ${SSD_STEP_ROWS_REGS})`);
  const rows = Array.from({ length: P }, (_, r) => r);
  const js = Array.from({ length: K }, (_, j) => j);
  // (n < N is false only in the last unit when SG does not divide N)
  const guard = (j: number, body: string) => ((j + 1) * SG <= RN ? `{ ${body} }` : `if (lane + ${j * SG}u < N) { ${body} }`);
  const load = rows.map((r) => `  if (p0 + ${r}u < hd) {\n${js.map((j) => `    ${guard(j, `hs[${r * K + j}] = $state[so + ${r * RN + j * SG}u + lane];`)}`).join('\n')}\n  }`).join('\n');
  const store = rows.map((r) => `    if (p0 + ${r}u < hd) {\n${js.map((j) => `      ${guard(j, `$state[so + ${r * RN + j * SG}u + lane] = hs[${r * K + j}];`)}`).join('\n')}\n    }`).join('\n');
  const bc = js.map((j) => `    ${guard(j, `bv[${j}] = $B[o_B + bB + ${j * SG}u + lane]; cv[${j}] = $C[o_C + bC + ${j * SG}u + lane];`)}`).join('\n');
  const step = rows.map((r) => `    {
      let p = min(p0 + ${r}u, hd - 1u);
      let xv = $x[o_x + row * sx + h * hd + p];
      let dx = dtv * xv;
      var partial = 0.0;
${js.map((j) => `      ${guard(j, `let hv = dA * hs[${r * K + j}] + dx * bv[${j}]; hs[${r * K + j}] = hv; partial += hv * cv[${j}];`)}`).join('\n')}
      let v = subgroupAdd(partial);
      if (live && lane == 0u && p0 + ${r}u < hd) {
        var out = v;
        if ((flags & 1u) != 0u) { out += $D[o_D + h] * xv; }
        $y[o_y + (row * nh + h) * hd + p] = out;
      }
    }`).join('\n');
  return /* wgsl */ `${ssdStepSgHead(`${RN}u`)}
  // a subgroup per P rows p0 … p0 + P − 1 of head h of sequence b
  let nP = (hd + ${P - 1}u) / ${P}u;
  let item = lin(wg, nw) * (64u / sgs) + li / sgs;
  let live = item < Bn * nh * nP;
  let it = min(item, Bn * nh * nP - 1u);
  let p0 = (it % nP) * ${P}u; let h = (it / nP) % nh; let b = it / (nP * nh);
  let g = h / (nh / G);
  var bias = 0.0;
  if ((flags & 2u) != 0u) { bias = $dtb[o_dtb + h]; }
  let so = o_state + ((b * nh + h) * hd + p0) * N;
  var hs = array<f32, ${P * K}>();
  var bv = array<f32, ${K}>();
  var cv = array<f32, ${K}>();
${load}
  for (var t = 0u; t < L; t++) {
    let row = b * L + t;
    let dtv = dt_proc($dt[o_dt + row * sdt + h], bias, lo, hi);
    let dA = exp(dtv * $A[o_A + h]);
    let bB = row * sB + g * N; let bC = row * sC + g * N;
${bc}
${step}
  }
  if (live) {
${store}
  }
}`;
}

/** params: Bn, L, nh, flags (2 bias), lo, hi, Q, nC */
export const SSD_DT: KernelSpec = {
  name: 'ssd_dt',
  roles: ['dt', 'A', 'dtb', 'dtp', 'cum'],
  writes: ['dtp', 'cum'],
  wgsl: () => /* wgsl */ `
${DTPROC}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let nh = pu(PK + 2u); let flags = pu(PK + 3u);
  let lo = pf(PK + 4u); let hi = pf(PK + 5u); let Q = pu(PK + 6u); let nC = pu(PK + 7u);
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * nC * nh) { return; }
  let h = i % nh; let c = (i / nh) % nC; let b = i / (nh * nC);
  var bias = 0.0;
  if ((flags & 2u) != 0u) { bias = $dtb[o_dtb + h]; }
  let a = $A[o_A + h];
  var run = 0.0;
  for (var t = c * Q; t < min(L, c * Q + Q); t++) {
    let k = (b * L + t) * nh + h;
    let v = dt_proc($dt[o_dt + k], bias, lo, hi);
    $dtp[o_dtp + k] = v;
    run += v * a;
    $cum[o_cum + k] = run;
  }
}`,
};

/** params: Bn, L, G, N, nC */
export const SSD_CB: KernelSpec = {
  name: 'ssd_cb',
  roles: ['B', 'C', 'cb'],
  writes: ['cb'],
  wgsl: (q) => /* wgsl */ `
${chunkConsts(Number(q))}
var<workgroup> Cs: array<f32, ${16 * (Number(q) + 1)}>;
var<workgroup> Bs: array<f32, ${16 * (Number(q) + 1)}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let G = pu(PK + 2u); let N = pu(PK + 3u); let nC = pu(PK + 4u);
  let item = lin(wg, nw);
  if (item >= Bn * nC * G) { return; }
  let g = item % G; let bc = item / G; let c = bc % nC; let b = bc / nC;
  let t0 = c * QQ; let q = min(QQ, L - t0);
  let tx = li % 16u; let ty = li / 16u;
  var acc: array<array<f32, TT>, TT>;
  for (var n0 = 0u; n0 < N; n0 += 16u) {
    for (var k = 0u; k < TT; k++) {
      let e = li + 256u * k;
      let l = e / 16u; let nn = e % 16u;
      let n = n0 + nn;
      var cv = 0.0; var bv = 0.0;
      if (l < q && n < N) {
        let o = ((b * L + t0 + l) * G + g) * N + n;
        cv = $C[o_C + o]; bv = $B[o_B + o];
      }
      Cs[nn * QP + l] = cv; Bs[nn * QP + l] = bv;
    }
    workgroupBarrier();
    ${tileFma({ k: 'nn', I: 'TT', J: 'TT', a: (i) => `Cs[nn * QP + ty + 16u * ${i}]`, b: (j) => `Bs[nn * QP + tx + 16u * ${j}]` })}
    workgroupBarrier();
  }
  let base = o_cb + item * QQ * QQ;
  for (var i = 0u; i < TT; i++) {
    for (var j = 0u; j < TT; j++) { $cb[base + (ty + 16u * i) * QQ + tx + 16u * j] = acc[i][j]; }
  }
}`,
};

/** S_c[p, n] = Σ_s exp(a_end − a_s) Δ_s x_s[p] B_s[n]. params: Bn, L, nh, hd, G, N, nC (Q is the variant) */
export const SSD_STATES: KernelSpec = {
  name: 'ssd_states',
  roles: ['x', 'B', 'dtp', 'cum', 'S'],
  writes: ['S'],
  wgsl: (q) => chunkOuterKernel(q, {
    u: 'x', v: 'B', out: 'S',
    pre: `
  let aEnd = $cum[o_cum + (b * L + t0 + q - 1u) * nh + h];`,
    weight: (k) => `exp(aEnd - $cum[o_cum + ${k}]) * $dtp[o_dtp + ${k}]`,
  }),
};

/** params: Bn, L, nh, hd, N, Q, nC, hasState */
export const SSD_PASS: KernelSpec = {
  name: 'ssd_pass',
  roles: ['cum', 'S', 'state'],
  writes: ['S', 'state'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let nh = pu(PK + 2u); let hd = pu(PK + 3u); let N = pu(PK + 4u);
  let Q = pu(PK + 5u); let nC = pu(PK + 6u); let hasState = pu(PK + 7u) != 0u;
  let HN = hd * N;
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * nh * HN) { return; }
  let e = i % HN; let bh = i / HN; let h = bh % nh; let b = bh / nh;
  var carry = 0.0;
  if (hasState) { carry = $state[o_state + i]; }
  ${serialPass(() => '$cum[o_cum + (b * L + min(L, c * Q + Q) - 1u) * nh + h]')}
  if (hasState) { $state[o_state + i] = carry; }
}`,
};

/** params: Bn, L, nh, hd, G, N, nC, hasD (Q is the variant) */
export const SSD_OUT: KernelSpec = {
  name: 'ssd_out',
  roles: ['x', 'C', 'dtp', 'cum', 'cb', 'hin', 'D', 'y'],
  writes: ['y'],
  wgsl: (q) => /* wgsl */ `
${chunkConsts(Number(q))}
var<workgroup> Ms: array<f32, ${Number(q) * (Number(q) + 1)}>;
var<workgroup> T1: array<f32, 1040>;
var<workgroup> Cs: array<f32, ${16 * (Number(q) + 1)}>;
${chunkSumArrays(Number(q))}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let nh = pu(PK + 2u); let hd = pu(PK + 3u); let G = pu(PK + 4u); let N = pu(PK + 5u);
  let nC = pu(PK + 6u); let hasD = pu(PK + 7u) != 0u;
  let nPT = (hd + 63u) / 64u;
  let item = lin(wg, nw);
  if (item >= Bn * nC * nh * nPT) { return; }
  let pt = item % nPT; let bch = item / nPT;
  let h = bch % nh; let bc = bch / nh; let c = bc % nC; let b = bc / nC;
  let g = h / (nh / G);
  let p0 = pt * 64u;
  let t0 = c * QQ; let q = min(QQ, L - t0);
  ${chunkSums('load')}
  workgroupBarrier();
  // the masked, decayed C·B block: M[l, s] = (C_l·B_s) exp(a_l − a_s) Δ_s for s ≤ l < q
  let cbBase = o_cb + ((b * nC + c) * G + g) * QQ * QQ;
  for (var e = li; e < QQ * QQ; e += 256u) {
    let l = e / QQ; let s = e % QQ;
    var v = 0.0;
    if (${causal('l', 's')}) { v = ${decayed('$cb[cbBase + e]', 'l', 's', true)}; }
    Ms[l * QP + s] = v;
  }
  let tx = li % 16u; let ty = li / 16u;
  var acc: array<array<f32, 4>, TT>;
  // (1) diagonal block: Σ_s M[l, s] x_s[p]
  for (var s0 = 0u; s0 < q; s0 += 16u) {
    for (var k = 0u; k < 4u; k++) {
      let e = li + 256u * k;
      let ss = e / 64u; let pp = e % 64u;
      var xv = 0.0;
      if (s0 + ss < q && p0 + pp < hd) { xv = $x[o_x + ((b * L + t0 + s0 + ss) * nh + h) * hd + p0 + pp]; }
      T1[ss * 65u + pp] = xv;
    }
    workgroupBarrier();
    ${tileFma({ k: 'ss', I: 'TT', J: '4u', a: (i) => `Ms[(ty + 16u * ${i}) * QP + s0 + ss]`, b: (j) => `T1[ss * 65u + tx + 16u * ${j}]` })}
    workgroupBarrier();
  }
  // (4) carried-in state: exp(a_l) Σ_n C_l[n] H_in[p, n]
  var acc2: array<array<f32, 4>, TT>;
  let hBase = o_hin + bch * hd * N;
  for (var n0 = 0u; n0 < N; n0 += 16u) {
    for (var k = 0u; k < TT; k++) {
      let e = li + 256u * k;
      let l = e / 16u; let nn = e % 16u;
      var cv = 0.0;
      if (l < q && n0 + nn < N) { cv = $C[o_C + ((b * L + t0 + l) * G + g) * N + n0 + nn]; }
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
    ${tileFma({ k: 'nn', I: 'TT', J: '4u', acc: 'acc2', a: (i) => `Cs[nn * QP + ty + 16u * ${i}]`, b: (j) => `T1[nn * 65u + tx + 16u * ${j}]` })}
    workgroupBarrier();
  }
  var dv = 0.0;
  if (hasD) { dv = $D[o_D + h]; }
  for (var i = 0u; i < TT; i++) {
    let l = ty + 16u * i;
    if (l >= q) { continue; }
    let decay = exp(cA[l]);
    for (var j = 0u; j < 4u; j++) {
      let p = p0 + tx + 16u * j;
      if (p < hd) {
        let o = ((b * L + t0 + l) * nh + h) * hd + p;
        $y[o_y + o] = acc[i][j] + decay * acc2[i][j] + dv * $x[o_x + o];
      }
    }
  }
}`,
};
