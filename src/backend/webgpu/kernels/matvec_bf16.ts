/**
 * The bf16 decode matrix-vector product built for the memory's rate (issue 11, session 33; decodeKernels 'v1-b…'):
 * MATVEC_V's bf16 path reaches ~0.8 TB/s on an H100 where a plain stream of the same bytes reaches ~3 (BENCHMARKS.md,
 * sessions 31–32: bound by its unpacking and issue rate). Here:
 * - wide loads: a lane's unit is one vec4<u32> = 8 bf16 weights; each lane issues R·U of them (R weight rows × U
 *   units, T·U apart) before any product;
 * - unpacking on vectors: weights 2i (low halves) are `bitcast<vec4<f32>>(w << 16)`, weights 2i+1 (high halves)
 *   `bitcast<vec4<f32>>(w & 0xffff0000)`: two vector ops per 8 weights;
 * - x̂ staged once per workgroup in workgroup memory, already split into its even and odd elements (xe = x̂[8q + 0, 2,
 *   4, 6], xo = x̂[8q + 1, 3, 5, 7]), so a unit costs two dot products and no swizzle; one read of x̂ serves the R
 *   weight rows of a lane (x̂ read once per R rows, not once per row);
 * - a group of T lanes owns R consecutive weight rows and reduces them with subgroupAdd where T is the device's one
 *   fixed subgroup size (variant 's'); elsewhere T = 32 lanes reduce through a workgroup tree ('t');
 * - the first round's R·U loads issued before the norm prologue and the staging (variant 'p'): their latency overlaps
 *   the prologue's barriers and x's loads instead of following them (a row of the 2.8b in_proj is 5 rounds a lane);
 * - split-K (S > 1 slices of SU units, a runtime parameter): workgroup (b, s) takes slice s and writes partials
 *   part[s, m, j], added by MATVEC_SK_REDUCE (matvec_splitk.ts, which also applies the bias, residual and conv-window
 *   epilogues) — for matrices of few rows (out_proj) that would not otherwise fill the GPU. S = 1: one dispatch, the
 *   epilogues applied here (`put`).
 * Same roles, parameters, norm prologue and epilogues as MATVEC_V (matvec.ts), then S and SU. Rows of whole units
 * only (K % 8 == 0, the matrix pool); anything else stays on MATVEC_V.
 * params: M, K, N, n0, nb, flags, gs, eps, cs0, cw, Kc, S, SU
 */
import type { KernelSpec } from '../runtime.js';
import { DECODE_FNS, DECODE_PARAMS, DECODE_ROLES, normScales } from './matvec.js';

export interface MatvecBwVariant {
  /** rows of x, rounded up (1, 2, 4, 8) */
  mm: number;
  /** lanes per weight row group */
  T: number;
  /** weight rows per group of T lanes */
  R: number;
  /** units (vec4<u32>, 8 weights) a lane loads per row and iteration: R·U loads in flight */
  U: number;
  /** units of x̂ per row staged in workgroup memory (≥ the slice's units); 0: x̂ normalised at every use */
  CH: number;
  /** 's' subgroupAdd (T = the fixed subgroup size), 't' a workgroup tree */
  red: 's' | 't';
  /**
   * 'p': a lane's first R·U weight loads are issued before the norm prologue and the staging of x̂ (their barriers
   * and x's loads then overlap the first weights' latency); else they wait for them
   */
  pre: boolean;
  /**
   * 'g' (session 34): every round of R·U loads is a whole one, its units past the slice's end guarded (index clamped,
   * weight zeroed): the slice's last, partial round is issued at once instead of one unit at a time (the 2.8b in_proj,
   * K 2560 = 320 units, at U 4 over 32 lanes: 2 whole rounds and 2 one-unit steps, vs 3 rounds)
   */
  guard: boolean;
  /**
   * 'f' (session 34): the norm prologue's sum of squares with 4 loads of x (and z) in flight a lane (normScales'
   * unrolled form, as MATVEC_V's); else one at a time. Every workgroup of a folded norm runs it over all of K first:
   * out_proj's gated norm is 5,120 products y · silu(z) before any weight but the first round ('p')
   */
  fastNorm: boolean;
}

/** the tunables one may fix by name ('v1-b-r{R}u{U}[s{S}]'); unset ones follow `matvecBwPlan`'s rule */
export interface MatvecBwConfig {
  R?: number;
  U?: number;
  S?: number;
  /** false ('…-n'): no weight loads before the prologue (variant without 'p') */
  pre?: boolean;
  /** true ('…g' after the slices: 'v1-b-r2u4g'): the last round guarded, not split into one-unit steps (variant 'g') */
  guard?: boolean;
  /** true ('…f' after 'g' or the numbers: 'v1-b-r2u4gf', 'v1-b-r2u4f'): the unrolled norm prologue (variant 'f') */
  fastNorm?: boolean;
}

export function matvecBwKey(v: MatvecBwVariant): string {
  return `${v.mm}b${v.T}r${v.R}u${v.U}c${v.CH}${v.red}${v.pre ? 'p' : ''}${v.guard ? 'g' : ''}${v.fastNorm ? 'f' : ''}`;
}

export function matvecBwParse(v: string): MatvecBwVariant {
  const m = /^([1248])b(\d+)r([1248])u([1248])c(\d+)([st])(p?)(g?)(f?)$/.exec(v);
  if (!m) throw new Error(`matvec_bw: bad variant ${JSON.stringify(v)}`);
  return { mm: +m[1], T: +m[2], R: +m[3], U: +m[4], CH: +m[5], red: m[6] as 's' | 't', pre: m[7] === 'p', guard: m[8] === 'g', fastNorm: m[9] === 'f' };
}

/**
 * 'v1-b' → {} (every tunable by the rule), 'v1-b-r{R}u{U}[s{S}][g]' → those fixed (R, U ∈ 1, 2, 4, 8; S ≥ 1 slices of
 * K; g: the last round of a slice guarded, variant 'g'; f: the unrolled norm prologue, variant 'f'); a trailing '-n' ('v1-b-n', 'v1-b-r4u2-n'): the first weight
 * loads wait for the prologue; null for any other name
 */
export function parseMatvecBwConfig(k: string): MatvecBwConfig | null {
  const m = /^v1-b(?:-r([1248])u([1248])(?:s(\d+))?(g)?(f)?)?(-n)?$/.exec(k);
  if (!m) return null;
  const cfg: MatvecBwConfig = m[6] ? { pre: false } : {};
  if (m[4]) cfg.guard = true;
  if (m[5]) cfg.fastNorm = true;
  if (m[1]) Object.assign(cfg, { R: +m[1], U: +m[2] });
  if (m[3]) {
    if (+m[3] < 1) throw new Error(`webgpu: decodeKernels ${JSON.stringify(k)}: the slices of K (s) must be ≥ 1`);
    cfg.S = +m[3];
  }
  return cfg;
}

/**
 * One call's variant and its split, by this rule (each step a line to flip):
 * - T = the device's fixed subgroup size when it divides 256 (subgroupAdd), else 32 lanes and a workgroup tree;
 * - R (rows per group of T lanes) = the largest of 4, 2, 1 that still launches `groups` workgroups (256 on GPUs: as
 *   MATVEC_V) — the 2.8b in_proj (10,576 rows) takes 4, out_proj (2,560) and the 130m matrices 1;
 * - U = 8 / R (8 loads in flight a lane: 128 bytes), halved while a lane would have fewer than U units of its slice
 *   (130m in_proj: 96 units over 32 lanes → U 2);
 * - S (slices of K): 1, unless R = 1 still launches fewer than groups / 2 workgroups (the 130m out_proj, 768 rows:
 *   96 workgroups → 3 slices), then enough slices to reach `groups`, each of at least 2·T units; and more slices while
 *   the slice of x̂ (M rows, even/odd) does not fit the workgroup memory left (`wgBytes`);
 * - x̂ staged when it fits (CH = the slice's units), else normalised at every use (CH = 0; only a fixed S can do that);
 * - the first weight loads issued before the prologue ('p'), unless the name ends in '-n'.
 * `cfg` fixes R, U or S by name; `sg` the fixed subgroup size (0: none).
 */
export function matvecBwPlan(M: number, K: number, nb: number, sg: number, groups: number, wgBytes: number, cfg: MatvecBwConfig = {}): { variant: string; S: number; SU: number } {
  const mm = M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : 8;
  const red: 's' | 't' = sg > 0 && sg <= 256 && 256 % sg === 0 ? 's' : 't';
  const T = red === 's' ? sg : 32;
  const NS = 256 / T;
  const KV = K / 8;
  const wgs = (r: number) => Math.ceil(nb / (r * NS));
  const R = cfg.R ?? (wgs(4) >= groups ? 4 : wgs(2) >= groups ? 2 : 1);
  let U = cfg.U ?? 8 / R;
  let S = cfg.S ?? 1;
  if (cfg.S === undefined && wgs(R) < groups / 2) S = Math.max(1, Math.min(Math.ceil(groups / wgs(R)), Math.floor(KV / (T * Math.min(U, 2)))));
  // workgroup memory left for x̂: red (256 floats), rsv (64), a margin
  const free = wgBytes - 4 * 256 - 4 * 64 - 64;
  const fits = (s: number) => 2 * mm * Math.ceil(KV / s) * 16 <= free;
  if (cfg.S === undefined) while (!fits(S) && S < KV) S++;
  S = Math.min(S, KV);
  const SU = Math.ceil(KV / S);
  S = Math.ceil(KV / SU); // no empty slice
  if (cfg.U === undefined) while (U > 1 && Math.ceil(SU / T) < U) U >>= 1;
  const CH = fits(S) ? SU : 0;
  return { variant: matvecBwKey({ mm, T, R, U, CH, red, pre: cfg.pre !== false, guard: cfg.guard === true, fastNorm: cfg.fastNorm === true }), S, SU };
}

/** workgroups of a call: row blocks × slices (the slice is the fastest index) */
export function matvecBwGroups(v: MatvecBwVariant, nb: number, S: number): number {
  return Math.ceil(nb / (v.R * (256 / v.T))) * S;
}

export const MATVEC_BW: KernelSpec = {
  name: 'matvec_bw',
  roles: [...DECODE_ROLES, 'part'],
  writes: ['y', 'y2', 'cst', 'part'],
  types: () => ({ w: 'vec4<u32>' }),
  wgsl: (v) => {
    const { mm, T, R, U, CH, red, pre, guard, fastNorm } = matvecBwParse(v);
    if (256 % T !== 0) throw new Error(`matvec_bw variant ${v}: T must divide 256`);
    const rows = Array.from({ length: R }, (_, r) => r);
    const ms = Array.from({ length: mm }, (_, m) => m);
    // x̂'s even / odd elements of unit q (absolute) for row m: staged, or normalised here
    const X = (m: number, q: string, odd: 0 | 1) =>
      CH ? `xs[2u * (${m}u * ${CH}u + (${q}) - q_lo) + ${odd}u]` : `xeo(${m}u, ${q}, ${odd}u, K, norm, gated, nG, gs)`;
    const us = Array.from({ length: U }, (_, u) => u);
    // unit u of a round; 'g': clamped into the slice (units 1.. of the last round may lie past it; their weights are zeroed)
    const qU = (u: number) => (u === 0 ? 'q' : guard ? `min(q + ${u * T}u, q_hi - 1u)` : `q + ${u * T}u`);
    const inSlice = (u: number) => (u === 0 ? 'true' : `q + ${u * T}u < q_hi`);
    // the loads of one round into w{r}_{u} (declared as vars when `pre`)
    const loads = (uList: number[], q: (u: number) => string, decl: boolean): string =>
      uList
        .flatMap((u) =>
          rows.map((r) => `${decl ? 'let ' : ''}w${r}_${u} = ${guard && u > 0 && q === qU ? `select(vec4<u32>(0u), $w[wr${r} + ${q(u)}], ${inSlice(u)})` : `$w[wr${r} + ${q(u)}]`};`),
        )
        .join(' ');
    const step = (uList: number[], q: (u: number) => string, load: 'let' | 'none'): string => {
      const L: string[] = [];
      if (load === 'let') L.push(loads(uList, q, true));
      for (const m of ms) {
        const body: string[] = [];
        for (const u of uList) {
          body.push(`{ let xe = ${X(m, q(u), 0)}; let xo = ${X(m, q(u), 1)};`);
          for (const r of rows) body.push(`  a${r}_${m} += dot(bitcast<vec4<f32>>(w${r}_${u} << vec4<u32>(16u)), xe) + dot(bitcast<vec4<f32>>(w${r}_${u} & vec4<u32>(0xffff0000u)), xo);`);
          body.push(`}`);
        }
        L.push(m === 0 ? body.join('\n        ') : `if (${m}u < M) {\n        ${body.join('\n        ')}\n      }`);
      }
      return L.join('\n      ');
    };
    const write = (r: number, m: number, t: string) =>
      `if (j${r} < nb && ${m}u < M) {
      if (S == 1u) {
        var b = 0.0;
        if (hasB) { b = $bias[o_bias + j${r}]; }
        put(${m}u, n0 + j${r}, ${t} + b, N, hasR, conv, cs0, cw, Kc);
      } else { $part[o_part + (s * M + ${m}u) * nb + j${r}] = ${t}; }
    }`;
    const reduce: string[] = [];
    for (const r of rows) {
      for (const m of ms) {
        if (red === 's') reduce.push(`{ let t = subgroupAdd(a${r}_${m});\n    if (lane == 0u) { ${write(r, m, 't')} } }`);
        else {
          reduce.push(`red[li] = a${r}_${m};
  workgroupBarrier();
  for (var st = ${T / 2}u; st > 0u; st >>= 1u) {
    if (lane < st) { red[li] += red[li + st]; }
    workgroupBarrier();
  }
  if (lane == 0u) { let t = red[li]; ${write(r, m, 't')} }
  workgroupBarrier();`);
        }
      }
    }
    return /* wgsl */ `
var<workgroup> red: array<f32, 256>;
var<workgroup> rsv: array<f32, 64>;
${CH ? `var<workgroup> xs: array<vec4<f32>, ${2 * mm * CH}>;` : ''}
${DECODE_FNS}
fn xeo(m: u32, q: u32, odd: u32, K: u32, norm: bool, gated: bool, nG: u32, gs: u32) -> vec4<f32> {
  let k = q * 8u + odd;
  return vec4<f32>(xin(m, k, K, norm, gated, nG, gs), xin(m, k + 2u, K, norm, gated, nG, gs),
                   xin(m, k + 4u, K, norm, gated, nG, gs), xin(m, k + 6u, K, norm, gated, nG, gs));
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wgid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32${red === 's' ? `,
        @builtin(subgroup_invocation_id) sgl: u32` : ''}) {
  init_offsets();
${DECODE_PARAMS}
  let S = pu(PK + 11u); let SU = pu(PK + 12u);
  let KV = K / 8u;
  let g = lin(wgid, nwg);
  let s = g % S; let blk = g / S;
  let q_lo = min(KV, s * SU); let q_hi = min(KV, q_lo + SU);
  let lane = ${red === 's' ? 'sgl' : `li % ${T}u`};
  let row0 = (blk * ${256 / T}u + li / ${T}u) * ${R}u;
  let wb = o_w / 4u;
  ${rows.map((r) => `let j${r} = row0 + ${r}u; let wr${r} = wb + min(j${r}, nb - 1u) * KV;`).join('\n  ')}
  var q = q_lo + lane;
  ${pre ? `${us.flatMap((u) => rows.map((r) => `var w${r}_${u}: vec4<u32>;`)).join(' ')}
  var held = q${guard ? '' : ` + ${(U - 1) * T}u`} < q_hi;
  if (held) { ${loads(us, qU, false)} }` : ''}
  if (norm) { ${normScales(fastNorm)} }
  ${CH ? `let n = q_hi - q_lo;
  for (var i = li; i < M * n; i += 256u) {
    let m = i / n; let q = q_lo + i % n;
    let a = x4(m, q * 8u, K, norm, gated, nG, gs); let c = x4(m, q * 8u + 4u, K, norm, gated, nG, gs);
    let o = 2u * (m * ${CH}u + i % n);
    xs[o] = vec4<f32>(a.x, a.z, c.x, c.z);
    xs[o + 1u] = vec4<f32>(a.y, a.w, c.y, c.w);
  }
  workgroupBarrier();` : ''}
  ${rows.flatMap((r) => ms.map((m) => `var a${r}_${m} = 0.0;`)).join(' ')}
  for (; q${guard ? '' : ` + ${(U - 1) * T}u`} < q_hi; q += ${U * T}u) {
      ${pre ? `if (!held) { ${loads(us, qU, false)} }
      held = false;
      ${step(us, qU, 'none')}` : step(us, qU, 'let')}
  }
  for (; q < q_hi; q += ${T}u) {
      ${step([0], () => 'q', 'let')}
  }
  ${reduce.join('\n  ')}
}`;
  },
};
