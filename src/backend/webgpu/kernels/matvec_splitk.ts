/**
 * The decode matrix-vector product split along K (decodeKernels 'v1-k{U}', issue 11's candidate (c)), for devices with
 * one fixed subgroup size: x̂ is held in registers, so that reading it costs nothing per weight row however many rows
 * of x there are (MATVEC_V reads x̂ from workgroup memory once per weight vector and row of x: M reads per load).
 *
 * Pass 1 (`MATVEC_SK`, partials): the K axis is cut into S slices of sg·U units (a unit: 4 f32 or 8 bf16, one 16-byte
 * load); workgroup (b, s) takes slice s of R·(256 / sg) weight rows. Each lane loads its U units of x̂ (all M rows of x,
 * normalised on the fly when a norm is folded in) into registers once, then per weight row issues its U loads (all R
 * rows' loads before any product), and each subgroup reduces a row's M sums with subgroupAdd; part[s, m, j] is written.
 * Pass 2 (`MATVEC_SK_REDUCE`): y[m, n0 + j] = bias + Σ_s part[s, m, j], with MATVEC_V's residual and conv-window
 * epilogues (`put`). Deterministic (no atomics). Formats 'f' and 'b' (q8 stays on MATVEC_V).
 * params: MATVEC_V's (M, K, N, n0, nb, flags, gs, eps, cs0, cw, Kc), then S.
 */
import type { KernelSpec } from '../runtime.js';
import { DECODE_PARAMS, DECODE_PUT_FN, DECODE_X_FNS, DECODE_ROLES, normScales, weightTypes } from './matvec.js';

export interface MatvecSkVariant {
  mm: number;
  fmt: 'f' | 'b';
  sg: number;
  /** units per lane of a K slice */
  U: number;
  /** weight rows per subgroup */
  R: number;
}

/** weights per 16-byte unit */
const PER = { f: 4, b: 8 } as const;

/**
 * the variant `${mm}${f|b}${sg}u${U}r${R}` of a product of M rows, K, nb weight rows; U (loads per lane) is capped so
 * that a lane holds at most 32 vec4 of x̂; R (rows per subgroup: R·U loads in flight a lane, and x̂'s slice read
 * once per 8·R rows) the largest of 4, 2, 1 that still launches `groups` workgroups
 */
export function matvecSkVariant(M: number, K: number, fmt: 'f' | 'b', nb: number, sg: number, loads: number, groups: number): string {
  const mm = M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : 8;
  let U = loads;
  while (U > 1 && mm * U * (PER[fmt] / 4) > 32) U >>= 1;
  const S = matvecSkSlices(K, fmt, sg, U);
  const fills = (r: number) => Math.ceil(nb / (r * (256 / sg))) * S >= groups;
  const R = fills(4) ? 4 : fills(2) ? 2 : 1;
  return `${mm}${fmt}${sg}u${U}r${R}`;
}

export function matvecSkParse(v: string): MatvecSkVariant {
  const m = /^([1248])([fb])(\d+)u(\d+)r(\d+)$/.exec(v);
  if (!m) throw new Error(`matvec_sk: bad variant ${JSON.stringify(v)}`);
  return { mm: +m[1], fmt: m[2] as 'f' | 'b', sg: +m[3], U: +m[4], R: +m[5] };
}

/** the K slices of a variant: ⌈units / (sg · U)⌉ */
export function matvecSkSlices(K: number, fmt: 'f' | 'b', sg: number, U: number): number {
  return Math.ceil(K / PER[fmt] / (sg * U));
}

/** workgroups of pass 1 for nb weight rows: row blocks × slices (the slice is the fastest index) */
export function matvecSkGroups(v: MatvecSkVariant, K: number, nb: number): number {
  return Math.ceil(nb / (v.R * (256 / v.sg))) * matvecSkSlices(K, v.fmt, v.sg, v.U);
}

export const MATVEC_SK: KernelSpec = {
  name: 'matvec_sk',
  roles: [...DECODE_ROLES, 'part'],
  writes: ['part'],
  types: (v) => weightTypes(matvecSkParse(v).fmt),
  wgsl: (v) => {
    const { mm, fmt, sg, U, R } = matvecSkParse(v);
    const per = PER[fmt];
    const nx = per / 4; // vec4s of x̂ per unit
    const L: string[] = [];
    // x̂ of the lane's units, all rows of x, into registers (zero past the row's end and for rows past M)
    for (let m = 0; m < mm; m++) {
      for (let u = 0; u < U; u++) {
        for (let i = 0; i < nx; i++) L.push(`var x${m}_${u}_${i} = vec4<f32>();`);
      }
    }
    for (let u = 0; u < U; u++) {
      L.push(`if (q0 + ${u * sg}u < KV) {`);
      for (let m = 0; m < mm; m++) {
        L.push(`  if (${m}u < M) {`);
        for (let i = 0; i < nx; i++) L.push(`    x${m}_${u}_${i} = x4(${m}u, (q0 + ${u * sg}u) * ${per}u + ${4 * i}u, K, norm, gated, nG, gs);`);
        L.push(`  }`);
      }
      L.push(`}`);
    }
    // every load of the subgroup's R rows first (rows past the end and units past K read nothing: zero)
    for (let r = 0; r < R; r++) {
      L.push(`let j${r} = row0 + ${r}u; let wr${r} = wb + min(j${r}, nb - 1u) * KV;`);
      for (let u = 0; u < U; u++) {
        L.push(`var w${r}_${u} = ${fmt === 'f' ? 'vec4<f32>' : 'vec4<u32>'}(); if (q0 + ${u * sg}u < KV) { w${r}_${u} = $w[wr${r} + q0 + ${u * sg}u]; }`);
      }
    }
    for (let r = 0; r < R; r++) {
      for (let m = 0; m < mm; m++) {
        const terms: string[] = [];
        for (let u = 0; u < U; u++) {
          const w = `w${r}_${u}`;
          if (fmt === 'f') terms.push(`dot(${w}, x${m}_${u}_0)`);
          else {
            const a = `x${m}_${u}_0`, c = `x${m}_${u}_1`;
            terms.push(`dot(bitcast<vec4<f32>>(${w} << vec4<u32>(16u)), vec4<f32>(${a}.x, ${a}.z, ${c}.x, ${c}.z)) + dot(bitcast<vec4<f32>>(${w} & vec4<u32>(0xffff0000u)), vec4<f32>(${a}.y, ${a}.w, ${c}.y, ${c}.w))`);
          }
        }
        L.push(`{ let t = subgroupAdd(${terms.join(' + ')});`);
        L.push(`  if (lane == 0u && j${r} < nb && ${m}u < M) { $part[o_part + (s * M + ${m}u) * nb + j${r}] = t; } }`);
      }
    }
    return /* wgsl */ `
var<workgroup> red: array<f32, 256>;
var<workgroup> rsv: array<f32, 64>;
${DECODE_X_FNS}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wgid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
  init_offsets();
${DECODE_PARAMS}
  let S = pu(PK + 11u);
  if (norm) { ${normScales(false)} }
  let KV = K / ${per}u;
  let g = lin(wgid, nwg);
  let s = g % S; let b = g / S;
  let row0 = (b * ${256 / sg}u + li / ${sg}u) * ${R}u;
  let q0 = s * ${sg * U}u + lane;
  let wb = o_w / 4u;
  ${L.join('\n  ')}
}`;
  },
};

/** pass 2: y[m, n0 + j] = bias[j] + Σ_s part[s, m, j] (+ the residual and conv-window epilogues); params: MATVEC_SK's */
export const MATVEC_SK_REDUCE: KernelSpec = {
  name: 'matvec_sk_reduce',
  roles: [...DECODE_ROLES, 'part'],
  writes: ['y', 'y2', 'cst'],
  wgsl: () => /* wgsl */ `
${DECODE_PUT_FN}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wgid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
${DECODE_PARAMS}
  let S = pu(PK + 11u);
  let i = lin(wgid, nwg) * 256u + li;
  if (i >= M * nb) { return; }
  let m = i / nb; let j = i % nb;
  var v = 0.0;
  if (hasB) { v = $bias[o_bias + j]; }
  for (var s = 0u; s < S; s++) { v += $part[o_part + s * M * nb + i]; }
  put(m, n0 + j, v, N, hasR, conv, cs0, cw, Kc);
}`,
};
