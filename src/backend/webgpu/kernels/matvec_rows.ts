/**
 * MATVEC_R, the batched-decode matrix product at 2–16 rows (issue 11, session 33): y[M, N] = x̂[M, K] · wᵀ (+ bias)
 * with each weight read ONCE for all M rows and x̂ staged once per workgroup for many weight rows.
 *
 * MATVEC_V at M rows (its 'l' variants) stages x̂ of all M rows per workgroup of RPW = 8 weight rows, so at 8 rows of
 * K = 768 a workgroup reads as many bytes of x̂ (from L2, normalised element by element) as of weights, and its
 * tree reduction takes log2(TPR) barrier steps of M adds per lane. Here:
 * - 8 teams of TPR = 32 lanes; a team owns P weight rows (the workgroup TEAMS · P), a lane the same K-slice of each,
 *   so a lane issues P weight loads (16-byte units) before its products: P loads in flight;
 * - x̂ of the MM ≥ M rows (zeros past M) is staged in workgroup memory in chunks of KC elements (all of K when it
 *   fits), once per chunk for all TEAMS · P rows, 256 / MM lanes a row; a folded norm of one group a row (the RMSNorm
 *   before in_proj and the LM head) is applied late — staged as nw · x (· silu(z)), its sums of squares taken on the
 *   way, the row's scale multiplying the sums at the end — so x is read once and no prologue precedes the staging;
 *   grouped norms (gs < K) keep MATVEC_V's prologue (`normScales`, `x4`: M · K / gs ≤ 64 scales, as the decode
 *   fusion's `foldsNorm` allows);
 * - P · MM accumulators per lane in registers (constant indices), one reduction per output at the end: the partials
 *   of a row pass written to workgroup memory (as vec4s, padded by one per lane), then the TEAMS · MM outputs of the
 *   pass summed by as many lanes (TPR values each, in order) and written with `put` (bias, residual, conv window);
 * - weight formats 'f' (f32 vectors), 'b' (packed bf16), 'q' (q8 superblocks): the units of the few-rows kernel
 *   (`unitCode`), not copied. Scalar f32 rows ('x') stay on the kernels of before.
 * Variant `${fmt}p${P}m${MM}c${KC}`. Roles, params and flags: MATVEC_V's (DECODE_ROLES, DECODE_PARAMS).
 */
import type { KernelSpec } from '../runtime.js';
import { DECODE_FNS, DECODE_PARAMS, DECODE_ROLES, normScales, weightTypes, type MatvecFormat } from './matvec.js';
import { unitCode } from './fewrows.js';
import { q8Fns } from './q8.js';

/** lanes per weight row and teams (rows side by side) of a 256-lane workgroup */
const TPR = 32;
const TEAMS = 256 / TPR;
/** accumulators a lane may hold (P · MM) */
const ACC_MAX = 64;
/**
 * registers (f32) a lane may give to its P rows' accumulators and unpacked weight units together, P · (MM + UNIT_REGS):
 * an estimate (NVIDIA's 255 a lane, minus addresses and x̂, at 256 lanes still 2 workgroups an SM), not measured
 */
const REG_MAX = 96;
/** f32 registers of one weight unit once loaded: 4 f32, 8 bf16 unpacked, 16 q8 unpacked and scaled */
const UNIT_REGS: Record<'f' | 'b' | 'q', number> = { f: 4, b: 8, q: 16 };
/** the most input rows MATVEC_R takes */
export const ROWS_MAX = 16;
/**
 * decodeRows 'auto': MATVEC_R for 2 to this many rows. On the H100 (session 33, `--decode-rows 0,16`, the modes not
 * alternated) it was 2.1× / 1.8× the matvec at 2 / 4 rows and 0.87× / 0.94× the matvec / blocked GEMM at 8 / 16.
 */
export const ROWS_AUTO = 4;

export interface RowsVariant {
  fmt: 'f' | 'b' | 'q';
  /** weight rows per team (the workgroup holds TEAMS · p) */
  p: number;
  /** input rows, rounded up to 2, 4, 8 or 16 (accumulators per weight row) */
  mm: number;
  /** elements of K staged per chunk (a multiple of 32) */
  kc: number;
}

/** vec4s of workgroup memory MATVEC_R's shared array takes: x̂ of a chunk, or the padded reduce */
function sharedVec4(mm: number, kc: number): number {
  return Math.max((mm * kc) / 4, 256 * (Math.ceil(mm / 4) + 1));
}

/**
 * The variant for M rows of width K (`fmt` 'f', 'b' or 'q') and `rows` weight rows: as many rows per team
 * (P ≤ 8, P · MM ≤ 64, P · (MM + a unit's registers) ≤ 96) as leave at least `groups` workgroups (0: as few as possible), and K in as few chunks (of
 * even size, whole 32-element blocks) as fit x̂ in `wgBytes` of workgroup memory beside the norm's scratch.
 */
export function rowsVariant(M: number, K: number, fmt: 'f' | 'b' | 'q', rows: number, groups: number, wgBytes: number): string {
  if (!Number.isInteger(M) || M < 1 || M > ROWS_MAX) throw new Error(`matvec_rows: M must be 1–${ROWS_MAX}, got ${M}`);
  const mm = M <= 2 ? 2 : M <= 4 ? 4 : M <= 8 ? 8 : 16;
  let p = Math.min(8, ACC_MAX / mm);
  while (p > 1 && p * (mm + UNIT_REGS[fmt]) > REG_MAX) p >>= 1;
  while (p > 1 && Math.ceil(rows / (TEAMS * p)) < groups) p >>= 1;
  // workgroup memory: the shared vec4s, the norm's red (256 f32) and rsv (64 f32), a margin
  const free = Math.floor((wgBytes - 4 * 256 - 4 * 64 - 64) / 16);
  const most = Math.floor((free * 4) / mm / 32) * 32;
  // K in as few chunks as fit, of even size (768 at 16 rows on 48 KiB: two of 384, not 736 + 32)
  const kc = most < 32 ? 0 : Math.ceil(K / Math.ceil(K / most) / 32) * 32;
  if (kc < 32 || sharedVec4(mm, kc) > free) throw new Error(`matvec_rows: ${M} rows do not fit ${wgBytes} bytes of workgroup memory`);
  return `${fmt}p${p}m${mm}c${kc}`;
}

export function rowsParse(v: string): RowsVariant {
  const m = /^([fbq])p([1248])m(2|4|8|16)c(\d+)$/.exec(v);
  if (!m || Number(m[4]) % 32 !== 0 || Number(m[2]) * Number(m[3]) > ACC_MAX) throw new Error(`matvec_rows: bad variant ${JSON.stringify(v)}`);
  return { fmt: m[1] as 'f' | 'b' | 'q', p: Number(m[2]), mm: Number(m[3]), kc: Number(m[4]) };
}

/** workgroups of an [M, K] × [rows, K]ᵀ product of this variant */
export function rowsGroups(v: string, rows: number): number {
  return Math.ceil(rows / (TEAMS * rowsParse(v).p));
}

/** elements a weight unit holds, by format */
const PER: Record<'f' | 'b' | 'q', number> = { f: 4, b: 8, q: 16 };

export const MATVEC_R: KernelSpec = {
  name: 'matvec_rows',
  roles: DECODE_ROLES,
  writes: ['y', 'y2', 'cst'],
  types: (v) => weightTypes(rowsParse(v).fmt as MatvecFormat),
  wgsl: (v) => {
    const { fmt, p: P, mm: MM, kc: KC } = rowsParse(v);
    const RV = Math.ceil(MM / 4) + 1;
    // x̂ of row m at element k (absolute; k − kc0 inside the staged chunk); row pass p adds into acc[p · MM + m]
    const unit = (p: number) => unitCode(fmt, true, { X4: (m, k) => `sh[${m}u * KC4 + ((${k}) - kc0) / 4u]`, acc: (m) => `acc[${p * MM + Number(m)}]` });
    const u = unit(0);
    const ps = Array.from({ length: P }, (_, p) => p);
    const ms = Array.from({ length: MM }, (_, m) => m);
    const rowsSetup = ps.map((p) => `let j${p} = jb + ${p}u * TEAMS + t;
  var wr${p} = 0u;
  if (j${p} < nb) { let j = j${p}; wr${p} = ${u.row}; }`).join('\n  ');
    const loads = ps.map((p) => `var w${p}: ${u.decl};
      { let wr = wr${p}; ${u.load('qa', `w${p}`)} }`).join('\n      ');
    // the products: P rows × MM inputs, constant accumulator indices (registers)
    const fmas = ps.flatMap((p) => ms.map((m) => unit(p).fma(`w${p}`, String(m), 'qa'))).join('\n      ');
    const reduce = ps.map((p) => `
  workgroupBarrier();
  ${Array.from({ length: Math.ceil(MM / 4) }, (_, i) => {
    const a = (c: number) => (i * 4 + c < MM ? `acc[${p * MM + i * 4 + c}]` : '0.0');
    return `sh[li * RV + ${i}u] = vec4<f32>(${a(0)}, ${a(1)}, ${a(2)}, ${a(3)});`;
  }).join('\n  ')}
  workgroupBarrier();
  if (li < TEAMS * MM) {
    let tt = li / MM; let m = li % MM; let j = jb + ${p}u * TEAMS + tt;
    if (m < M && j < nb) {
      var s = 0.0;
      for (var l = 0u; l < TPR; l++) { s += sh[(tt * TPR + l) * RV + m / 4u][m % 4u]; }
      if (late) { s *= rsv[m]; }
      if (hasB) { s += $bias[o_bias + j]; }
      put(m, n0 + j, s, N, hasR, conv, cs0, cw, Kc);
    }
  }`).join('');
    return /* wgsl */ `
const TPR: u32 = ${TPR}u;
const TEAMS: u32 = ${TEAMS}u;
const MM: u32 = ${MM}u;
const KC: u32 = ${KC}u;
const KC4: u32 = ${KC / 4}u;
const RV: u32 = ${RV}u;
const PER: u32 = ${PER[fmt]}u;
const LPR: u32 = ${256 / MM}u;
fn m4(m: u32, k: u32, K: u32) -> u32 { return o_x + m * K + k; }
var<workgroup> sh: array<vec4<f32>, ${sharedVec4(MM, KC)}>;
var<workgroup> red: array<f32, 256>;
var<workgroup> rsv: array<f32, 64>;
${DECODE_FNS}
${fmt === 'q' ? q8Fns() : ''}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
${DECODE_PARAMS}
  // a norm of one group a row (RMSNorm; the gated norm with gs = K) is applied late: x̂ · w = rsv[m] · Σ nw·x·w, so
  // x is read once (staged as nw·x, its squares summed on the way) and the scale multiplies the sums at the end
  let late = norm && nG == 1u;
  if (norm && !late) { ${normScales(true)} }
  let t = li / TPR; let lane = li % TPR;
  // staging: LPR lanes a row of x̂ (lane li stages row sm only: its sum of squares is one register)
  let sm = li / LPR; let sl = li % LPR;
  var ssq = 0.0;
  let jb = lin(wg, nwg) * (TEAMS * ${P}u);
  ${rowsSetup}
  var acc: array<f32, ${P * MM}>;
  for (var kc0 = 0u; kc0 < K; kc0 += KC) {
    let cl = min(KC, K - kc0);
    workgroupBarrier();
    for (var c = sl; c < KC4; c += LPR) {
      let e = c * 4u;
      var v = vec4<f32>(0.0);
      if (sm < M && e < cl) {
        if (late) {
          let o = m4(sm, kc0 + e, K);
          v = vec4<f32>($x[o], $x[o + 1u], $x[o + 2u], $x[o + 3u]);
          if (gated) {
            let oz = o - o_x + o_z;
            v *= vec4<f32>(silu($z[oz]), silu($z[oz + 1u]), silu($z[oz + 2u]), silu($z[oz + 3u]));
          }
          ssq += dot(v, v);
          let on = o_nw + kc0 + e;
          v *= vec4<f32>($nw[on], $nw[on + 1u], $nw[on + 2u], $nw[on + 3u]);
        } else {
          v = x4(sm, kc0 + e, K, norm, gated, nG, gs);
        }
      }
      sh[sm * KC4 + c] = v;
    }
    workgroupBarrier();
    let ku0 = kc0 / PER;
    for (var q = lane; q < cl / PER; q += TPR) {
      let qa = ku0 + q;
      ${loads}
      ${fmas}
    }
  }
  if (late) {
    // the rows' scales: LPR partial sums of squares each, a tree in red
    red[li] = ssq;
    workgroupBarrier();
    for (var st = LPR / 2u; st > 0u; st >>= 1u) {
      if (sl < st) { red[li] += red[li + st]; }
      workgroupBarrier();
    }
    if (sl == 0u && sm < M) { rsv[sm] = inverseSqrt(red[li] / f32(K) + eps); }
  }${reduce}
}`;
  },
};
