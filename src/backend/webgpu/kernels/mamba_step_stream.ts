/**
 * The decode step kernels of decodeKernels '…-s' (issue 11, session 34: the 2.8b step kernels). They do the same work
 * as mamba_step.ts's, with the same roles and parameters, and are laid out so that the step's loads are in flight at
 * once instead of one after another. Needs no subgroups.
 * - `MAMBA2_STEP_S`, variant `q{Q}t{T}`: T lanes a head row (a power of two), Q state elements a lane, 256 / T rows a
 *   workgroup. A lane issues its Q state loads (lane + q·T: coalesced over the row) first, before the conv, Δ and the
 *   B / C staging. It then updates them, and the row's T partial sums are added by lane 0 after one barrier (v1: 32
 *   lanes a row, the state loaded after the staging barrier, a 5-barrier tree). The 2.8b head (hd 64, N 128) at the
 *   default Q 4 is q4t32: 8 rows a workgroup, 8 workgroups a head, 640 in all (as v1, whose lanes load one element at a
 *   time after the barrier); Q 16 is q16t8: 32 rows a workgroup, 160 workgroups. Scalar loads, coalesced over the
 *   lanes: a vec4 binding of the state would need a buffer of its own (KernelSpec.types), the state lives in the
 *   activation pool.
 * - `MAMBA1_XPROJ_SK` (batch 1): x_proj split over K. Workgroup (slice s of 256 channels, block of 256 / L rows of
 *   x_proj) computes u = silu(conv) of its 256 channels once into workgroup memory, then each row's product over the
 *   slice with L lanes a row and 256 / L independent weight loads a lane, written as partial s of that row:
 *   xdbl [S, J]. MAMBA1_SCAN_S 'p' adds the S partials up (MAMBA1_SCAN 'p' can too). v1's MAMBA1_XPROJ is one workgroup per row, over all K, with
 *   u recomputed by every workgroup (2.8b: 192 workgroups, 5,120 channels each); here 2.8b runs 20 slices × 6 blocks
 *   (L 8).
 * - `MAMBA1_SCAN_S`, variant `r{RQ}n{NQ}[p]`: MAMBA1_SCAN's work (16 channels a workgroup, 16 lanes a channel) with a
 *   lane's dt_proj weights (RQ = ⌈R / 16⌉), state and A elements (NQ = ⌈N / 16⌉) loaded first, before the x_proj
 *   row is staged; u, Δ's bias and the gate computed by every lane (no barrier to share them); Δ's and y's sums over
 *   the 16 lanes by one barrier each: 3 barriers where v1 has ~11 (2.8b: R 160 → RQ 10, N 16 → NQ 1). 'p': xdbl
 *   holds nP partial rows, added up first, 8 loads in flight a thread (MAMBA1_XPROJ_SK's 20 at 2.8b, or MATVEC_X ':p''s).
 */
import type { KernelSpec } from '../runtime.js';
import { CONV, MAMBA1_SCAN, MAMBA1_XPROJ, MAMBA2_HEAD, MAMBA2_STEP, STEP_MAX_STATE, STEP_MAX_XDBL, XDBL_NORMS, MAMBA1_HEAD } from './mamba_step.js';

/** MAMBA2_STEP_S's variant for N states and Q elements a lane: T = the power of two ≥ ⌈N / Q⌉, at most 256 */
export function mamba2StepStreamVariant(N: number, Q: number): string {
  let T = 1;
  while (T < Math.ceil(N / Q) && T < 256) T *= 2;
  return `q${Math.max(1, Math.ceil(N / T))}t${T}`;
}

function parseStepStream(v: string): { Q: number; T: number } {
  const m = /^q(\d+)t(\d+)$/.exec(v);
  const Q = m ? Number(m[1]) : 0, T = m ? Number(m[2]) : 0;
  if (!m || !(Q >= 1 && Q <= 64) || !(T >= 1 && T <= 256) || (T & (T - 1)) !== 0) throw new Error(`mamba2_step_s: variant ${v} is not q{1..64}t{power of two ≤ 256}`);
  return { Q, T };
}

/** rows of a head a MAMBA2_STEP_S workgroup updates (its grid: B · nh · ⌈hd / rows⌉) */
export function mamba2StepStreamRows(v: string): number {
  return 256 / parseStepStream(v).T;
}

/** flags and params as MAMBA2_STEP: flags 1 conv bias, 2 D, 4 Δ bias, 8 Δ to dto; Bn, nh, hd, G, N, I, Kc, flags, lo, hi (N ≤ Q·T) */
export const MAMBA2_STEP_S: KernelSpec = {
  name: 'mamba2_step_s',
  roles: MAMBA2_STEP.roles,
  writes: MAMBA2_STEP.writes,
  wgsl: (v) => {
    const { Q, T } = parseStepStream(v);
    const qs = Array.from({ length: Q }, (_, q) => q);
    return /* wgsl */ `
${CONV}
const T: u32 = ${T}u;
const PB: u32 = ${256 / T}u;
var<workgroup> sB: array<f32, ${STEP_MAX_STATE}>;
var<workgroup> sC: array<f32, ${STEP_MAX_STATE}>;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
${MAMBA2_HEAD}
  // the row of this lane (a row past the head's end reads the last one and writes nothing) and its state, loaded first
  let r = li / T; let lane = li % T;
  let p0 = pb * PB + r;
  let ok = p0 < hd;
  let p = min(p0, hd - 1u);
  let so = o_state + ((b * nh + h) * hd + p) * N + lane;
  ${qs.map((q) => `var h${q} = 0.0;`).join(' ')}
  ${qs.map((q) => `if (lane + ${q * T}u < N) { h${q} = $state[so + ${q * T}u]; }`).join('\n  ')}
  let row = b * (I + C + nh);
  var bias = 0.0;
  if ((flags & 4u) != 0u) { bias = $dtb[o_dtb + h]; }
  let dt = clamp(softplus($zx[o_zx + row + I + C + h] + bias), lo, hi);
  let dA = exp(dt * $A[o_A + h]);
  let xv = conv_u(b, h * hd + p, C, Kc, hasCB);
  for (var i = li; i < 2u * N; i += 256u) {
    if (i < N) { sB[i] = conv_u(b, I + grp * N + i, C, Kc, hasCB); }
    else { sC[i - N] = conv_u(b, I + G * N + grp * N + i - N, C, Kc, hasCB); }
  }
  if ((flags & 8u) != 0u && pb == 0u && li == 0u) { $dto[o_dto + b * nh + h] = dt; }
  workgroupBarrier();
  let dx = dt * xv;
  var part = 0.0;
  ${qs.map((q) => `if (lane + ${q * T}u < N) {
    let hv = dA * h${q} + dx * sB[lane + ${q * T}u];
    if (ok) { $state[so + ${q * T}u] = hv; }
    part += hv * sC[lane + ${q * T}u];
  }`).join('\n  ')}
  red[li] = part;
  workgroupBarrier();
  if (lane == 0u && ok) {
    var out = 0.0;
    for (var i = 0u; i < T; i++) { out += red[li + i]; }
    if ((flags & 2u) != 0u) { out += $D[o_D + h] * xv; }
    let o = (b * nh + h) * hd + p;
    $y[o_y + o] = out;
    $zo[o_zo + o] = $zx[o_zx + row + h * hd + p];
  }
}`;
  },
};

/** channels a MAMBA1_XPROJ_SK workgroup covers (its slice of K) */
export const XPROJ_SLICE = 256;

/**
 * variant `l{L}`: L lanes a row (a power of two ≤ 256), 256 / L rows a workgroup. params: Bn (1), Dm, Kc, J, flags
 * (1 conv bias), S (slices). Grid S · ⌈J / (256 / L)⌉ (slice fastest). Writes xdbl[s · J + j] (MAMBA1_SCAN 'p''s partials).
 */
export const MAMBA1_XPROJ_SK: KernelSpec = {
  name: 'mamba1_xproj_sk',
  roles: MAMBA1_XPROJ.roles,
  writes: MAMBA1_XPROJ.writes,
  wgsl: (v) => {
    const m = /^l(\d+)$/.exec(v), L = m ? Number(m[1]) : 0;
    if (!(L >= 1 && L <= 256) || (L & (L - 1)) !== 0) throw new Error(`mamba1_xproj_sk: variant ${v} is not l{power of two ≤ 256}`);
    return /* wgsl */ `
${CONV}
const L: u32 = ${L}u;
const KS: u32 = ${XPROJ_SLICE}u;
var<workgroup> su: array<f32, ${XPROJ_SLICE}>;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Dm = pu(PK + 1u); let Kc = pu(PK + 2u); let J = pu(PK + 3u); let flags = pu(PK + 4u); let S = pu(PK + 5u);
  let g = lin(wg, nwg); let s = g % S; let jb = g / S;
  let r = li / L; let lane = li % L;
  let j0 = jb * (256u / L) + r;
  let ok = j0 < J;
  let j = min(j0, J - 1u);
  let k0 = s * KS;
  let kn = min(KS, Dm - k0);
  // the weights first: 256 / L loads a lane, in flight before the conv
  let wo = o_xp + j * Dm + k0;
  ${Array.from({ length: XPROJ_SLICE / L }, (_, i) => `var w${i} = 0.0; if (lane + ${i * L}u < kn) { w${i} = $xp[wo + lane + ${i * L}u]; }`).join('\n  ')}
  var u = 0.0;
  if (li < kn) { u = conv_u(0u, k0 + li, Dm, Kc, (flags & 1u) != 0u); }
  su[li] = u;
  workgroupBarrier();
  var acc = 0.0;
  ${Array.from({ length: XPROJ_SLICE / L }, (_, i) => `acc = fma(w${i}, su[lane + ${i * L}u], acc);`).join('\n  ')}
  red[li] = acc;
  workgroupBarrier();
  if (lane == 0u && ok) {
    var t = 0.0;
    for (var i = 0u; i < L; i++) { t += red[li + i]; }
    $xdbl[o_xdbl + s * J + j] = t;
  }
}`;
  },
};

/**
 * MAMBA1_SCAN_S 'p': xv[j] = Σ_p xdbl[p, j] over the nP partial rows (param 7), a thread per j with 8 loads in flight
 * (8 accumulators, added in a fixed order: deterministic). MAMBA1_SCAN 'p''s XDBL_PARTIALS splits a j's rows over lanes
 * but, with J ≥ 256 / 2 as at 2.8b (J 192), gives each j one lane and 2 loads at a time: 10 rounds for 20 partials.
 */
const XPROJ_PARTIALS = /* wgsl */ `
  let nP = pu(PK + 7u);
  for (var i = li; i < J; i += 256u) {
    var a0 = 0.0; var a1 = 0.0; var a2 = 0.0; var a3 = 0.0; var a4 = 0.0; var a5 = 0.0; var a6 = 0.0; var a7 = 0.0;
    var p = 0u;
    for (; p + 8u <= nP; p += 8u) {
      let o = o_xdbl + p * J + i;
      a0 += $xdbl[o]; a1 += $xdbl[o + J]; a2 += $xdbl[o + 2u * J]; a3 += $xdbl[o + 3u * J];
      a4 += $xdbl[o + 4u * J]; a5 += $xdbl[o + 5u * J]; a6 += $xdbl[o + 6u * J]; a7 += $xdbl[o + 7u * J];
    }
    for (; p < nP; p++) { a0 += $xdbl[o_xdbl + p * J + i]; }
    xv[i] = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
  }
  workgroupBarrier();`;

/** MAMBA1_SCAN_S's variant for dt rank R and N states ('p': xdbl holds partial rows) */
export function mamba1ScanStreamVariant(R: number, N: number, partials: boolean): string {
  return `r${Math.max(1, Math.ceil(R / 16))}n${Math.max(1, Math.ceil(N / 16))}${partials ? 'p' : ''}`;
}

/** roles, flags and params as MAMBA1_SCAN (and nP for 'p'); grid B · ⌈Dm / 16⌉ (batch 1 for 'p') */
export const MAMBA1_SCAN_S: KernelSpec = {
  name: 'mamba1_scan_s',
  roles: MAMBA1_SCAN.roles,
  writes: MAMBA1_SCAN.writes,
  wgsl: (v) => {
    const m = /^r(\d+)n(\d+)(p?)$/.exec(v);
    if (!m || +m[1] < 1 || +m[2] < 1) throw new Error(`mamba1_scan_s: variant ${v} is not r{RQ}n{NQ}[p]`);
    const rq = Array.from({ length: +m[1] }, (_, i) => i), nq = Array.from({ length: +m[2] }, (_, i) => i);
    return /* wgsl */ `
${CONV}
const CW: u32 = 16u;
const TPC: u32 = 16u;
var<workgroup> xv: array<f32, ${STEP_MAX_XDBL}>;
var<workgroup> nrm: array<f32, 3>;
var<workgroup> red: array<f32, 256>;
var<workgroup> red2: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
${MAMBA1_HEAD}
  // this lane's channel (a channel past the end reads the last one and writes nothing) and its loads, issued first
  let c = li / TPC; let lane = li % TPC;
  let d0 = blk * CW + c;
  let ok = d0 < Dm;
  let d = min(d0, Dm - 1u);
  ${rq.map((i) => `var wd${i} = 0.0; if (lane + ${i * 16}u < R) { wd${i} = $dtw[o_dtw + d * R + lane + ${i * 16}u]; }`).join('\n  ')}
  let so = o_state + (b * Dm + d) * N;
  ${nq.map((i) => `var h${i} = 0.0; var a${i} = 0.0; if (lane + ${i * 16}u < N) { h${i} = $state[so + lane + ${i * 16}u]; a${i} = $A[o_A + d * N + lane + ${i * 16}u]; }`).join('\n  ')}
  let u = conv_u(b, d, Dm, Kc, (flags & 1u) != 0u);
  let gate = silu($xz[o_xz + b * 2u * Dm + Dm + d]);
  let dtb = $dtb[o_dtb + d];
  let Dd = $D[o_D + d];
  ${m[3] ? XPROJ_PARTIALS : `for (var i = li; i < J; i += 256u) { xv[i] = $xdbl[o_xdbl + b * J + i]; }
  workgroupBarrier();`}
${XDBL_NORMS}  // Δ' · dt_proj[d, :]: a lane's RQ products, the channel's 16 partials summed by every lane after one barrier
  var pd = 0.0;
  ${rq.map((i) => `if (lane + ${i * 16}u < R) { pd = fma(xv[lane + ${i * 16}u], wd${i}, pd); }`).join('\n  ')}
  red[li] = pd;
  workgroupBarrier();
  var sd = 0.0;
  for (var i = 0u; i < TPC; i++) { sd += red[c * TPC + i]; }
  let dt = softplus(sd + dtb);
  if ((flags & 32u) != 0u && lane == 0u && ok) { $dto[o_dto + b * Dm + d] = dt; }
  let du = dt * u;
  var part = 0.0;
  ${nq.map((i) => `if (lane + ${i * 16}u < N) {
    let hv = exp(dt * a${i}) * h${i} + du * xv[R + lane + ${i * 16}u];
    if (ok) { $state[so + lane + ${i * 16}u] = hv; }
    part += hv * xv[R + N + lane + ${i * 16}u];
  }`).join('\n  ')}
  red2[li] = part;
  workgroupBarrier();
  if (lane == 0u && ok) {
    var yv = 0.0;
    for (var i = 0u; i < TPC; i++) { yv += red2[li + i]; }
    $y[o_y + b * Dm + d] = (yv + Dd * u) * gate;
  }
}`;
  },
};
