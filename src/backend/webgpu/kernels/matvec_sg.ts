/**
 * The decode matrix-vector product on devices with one fixed subgroup size (NVIDIA: 32; SwiftShader: 4), built
 * to stream the weights at memory bandwidth: each subgroup owns RPS consecutive rows, every lane reads 16-byte
 * vectors (4 float32, or 8 bf16 packed two to a u32), and a row is reduced by `subgroupAdd` — no workgroup
 * tree, no barrier after the loads. With `unroll` the row length is compiled in and all of a lane's loads of
 * its rows are issued before the first sum. Same roles, parameters and fusions as MATVEC_V (matvec.ts): the
 * folded RMSNorm / gated norm (scales by subgroup reductions, then x̂ staged once per workgroup in workgroup
 * memory: two barriers in all, before the weight stream), bias, the residual and conv-window epilogues (`put`).
 * Formats 'f', 'b' and 'q' (q8 superblocks, q8.ts: a lane's unit is 16 weights and their block's scale) only (rows of
 * whole vectors in the matrix pool); the scalar format stays on MATVEC_V.
 */
import type { KernelSpec } from '../runtime.js';
import { DECODE_FNS, DECODE_PARAMS, DECODE_ROLES, weightTypes, type MatvecFormat } from './matvec.js';
import { q8Fns } from './q8.js';

/** the tunables of the subgroup matvec (the backend's `decodeKernels: 'v2-r{rps}w{wg}{u|l}'`) */
export interface MatvecSgConfig {
  /** rows per subgroup */
  rps: number;
  /** workgroup size (a multiple of the subgroup size) */
  wg: number;
  /** compile-time row length, loads issued before the sums ('u'); else a runtime loop ('l') */
  unroll: boolean;
  /** the loop form ('l'): weight loads a lane issues per iteration before their sums (1, 2, 4 or 8; default 1) */
  loads?: number;
  /** x̂ staged in workgroup memory where it fits (default); false: read (and normalised) from x at every use */
  stage?: boolean;
  /**
   * 'v2' without tunables: the workgroups a call should launch at least (default 2 × the GPU's cores); rows per
   * subgroup (4, 2, 1) and then the workgroup size (128 down to 32) shrink per matrix until it does
   */
  auto?: number;
}

/** the tunables for one matrix of nb rows: `cfg` itself, or with `auto`, the largest rows per workgroup that still fill the GPU */
export function matvecSgFit(cfg: MatvecSgConfig, nb: number, sg: number): MatvecSgConfig {
  if (!cfg.auto) return { ...cfg, wg: Math.max(cfg.wg, sg) };
  const groups = (rps: number, wg: number) => Math.ceil(nb / (rps * Math.max(1, wg / sg)));
  let rps = 4, wg = Math.max(128, sg);
  while (rps > 1 && groups(rps, wg) < cfg.auto) rps >>= 1;
  while (wg > Math.max(32, sg) && groups(rps, wg) < cfg.auto) wg >>= 1;
  return { ...cfg, rps, wg };
}

/** the most 16-byte weight vectors a lane holds at once in the unrolled form (else the loop form) */
const MAX_UNROLLED = 48;

export interface MatvecSgVariant extends MatvecSgConfig {
  mm: number;
  fmt: Exclude<MatvecFormat, 'x'>;
  sg: number;
  K: number;
  /** x̂ staged in workgroup memory (vec4s), 0: computed on the fly */
  xs4: number;
}

/** weights per 16-byte unit a lane loads, by format */
const SG_PER = { f: 4, b: 8, q: 16 } as const;

/** the variant key `${mm}${f|b|q}${sg}r${rps}w${wg}${u|l[U]}k${K}s${xs4}` of one call (U: loads in flight of the loop form) */
export function matvecSgVariant(M: number, K: number, fmt: 'f' | 'b' | 'q', sg: number, cfg: MatvecSgConfig, wgBytes: number): string {
  const mm = M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : 8;
  const per = SG_PER[fmt];
  const unroll = cfg.unroll && Math.ceil(K / per / sg) * cfg.rps <= MAX_UNROLLED;
  const need = (M * K) / 4;
  const xs4 = cfg.stage !== false && need * 16 + 64 * 4 <= wgBytes ? need : 0;
  const loads = !unroll && (cfg.loads ?? 1) > 1 ? String(cfg.loads) : '';
  return `${mm}${fmt}${sg}r${cfg.rps}w${cfg.wg}${unroll ? 'u' : 'l'}${loads}k${K}s${xs4}`;
}

export function matvecSgParse(v: string): MatvecSgVariant {
  const m = /^([1248])([fbq])(\d+)r(\d+)w(\d+)(u|l[248]?)k(\d+)s(\d+)$/.exec(v);
  if (!m) throw new Error(`matvec_sgv: bad variant ${JSON.stringify(v)}`);
  const loads = m[6].length > 1 ? { loads: +m[6].slice(1) } : {};
  return { mm: +m[1], fmt: m[2] as 'f' | 'b' | 'q', sg: +m[3], rps: +m[4], wg: +m[5], unroll: m[6] === 'u', ...loads, K: +m[7], xs4: +m[8] };
}

/**
 * `v2`, or `v2-r{rps}w{wg}{u|l[U]}[n]` (rps 1–8, wg a power of two 32–1024, U loads in flight of the loop form 2, 4
 * or 8, n: x̂ not staged) → the config; throws naming the option otherwise
 */
export function parseMatvecSgConfig(s: string, dflt: MatvecSgConfig): MatvecSgConfig {
  if (s === 'v2') return dflt;
  const m = /^v2-r(\d+)w(\d+)(u|l[248]?)(n?)$/.exec(s);
  const rps = m ? Number(m[1]) : 0, wg = m ? Number(m[2]) : 0;
  if (!m || rps < 1 || rps > 8 || wg < 32 || wg > 1024 || (wg & (wg - 1)) !== 0) {
    throw new Error(`webgpu: decodeKernels must be 'v1', 'v1-u<1|2|4|8>', 'v1-k<1|2|4>', 'v1-b' or 'v1-b-r<1|2|4|8>u<1|2|4|8>[s<slices>]' (either with a trailing '-n'), 'fused', 'v2' or 'v2-r<rows per subgroup 1–8>w<workgroup 32–1024, a power of two><u|l|l2|l4|l8>' (e.g. v2-r2w128u, v2-r1w128l4n; a trailing n: x̂ not staged in workgroup memory), got ${JSON.stringify(s)}`);
  }
  return { rps, wg, unroll: m[3] === 'u', ...(m[3].length > 1 ? { loads: Number(m[3].slice(1)) } : {}), stage: m[4] !== 'n' };
}

/** rows one workgroup covers */
export const matvecSgRows = (v: MatvecSgVariant): number => v.rps * Math.max(1, v.wg / v.sg);

export const MATVEC_SGV: KernelSpec = {
  name: 'matvec_sgv',
  roles: DECODE_ROLES,
  writes: ['y', 'y2', 'cst'],
  types: (v) => weightTypes(matvecSgParse(v).fmt),
  wgsl: (v) => {
    const { mm, fmt, sg, rps, wg, unroll, K, xs4, loads = 1 } = matvecSgParse(v);
    const nsg = Math.max(1, wg / sg);
    const per = SG_PER[fmt];
    // x̂[m] as a vec4 at vec4 index q (staged, or normalised on the fly)
    const X4 = (m: string, q: string) => (xs4 ? `xs[(${m}) * K4 + (${q})]` : `x4(${m}, (${q}) * 4u, K, norm, gated, nG, gs)`);
    // acc += w (one weight vector at vector index q) · x̂[m]
    // (q8: the unit's scale is the local named `${w}s`)
    const fma = (acc: string, w: string, m: string, q: string) =>
      fmt === 'f'
        ? `${acc} += dot(${w}, ${X4(m, q)});`
        : fmt === 'q'
        ? `${acc} += ${w}s * (dot(q8x4(${w}.x), ${X4(m, `4u * (${q})`)}) + dot(q8x4(${w}.y), ${X4(m, `4u * (${q}) + 1u`)}) + dot(q8x4(${w}.z), ${X4(m, `4u * (${q}) + 2u`)}) + dot(q8x4(${w}.w), ${X4(m, `4u * (${q}) + 3u`)}));`
        : `{ let a = ${X4(m, `2u * (${q})`)}; let c = ${X4(m, `2u * (${q}) + 1u`)};
        ${acc} += dot(bitcast<vec4<f32>>(${w} << vec4<u32>(16u)), vec4<f32>(a.x, a.z, c.x, c.z)) + dot(bitcast<vec4<f32>>(${w} & vec4<u32>(0xffff0000u)), vec4<f32>(a.y, a.w, c.y, c.w)); }`;
    const wty = fmt === 'f' ? 'vec4<f32>' : 'vec4<u32>';
    // unit u of the row at `wr` (a vector index; q8: the row's first block) into `w` (and its scale `${w}s`)
    const load = (w: string, wr: string, u: string, decl: 'let' | 'set') => {
      if (fmt !== 'q') return `${decl === 'let' ? 'let ' : ''}${w} = $w[${wr} + ${u}];`;
      const g = `${wr} + (${u}) / 2u`;
      return `${decl === 'let' ? 'let ' : ''}${w} = q8at(${g}, (${u}) & 1u); ${decl === 'let' ? 'let ' : ''}${w}s = q8sc(${g});`;
    };
    const rowAt = (j: string) => (fmt === 'q' ? `(${j}) * (K / 32u)` : `wb + (${j}) * ${fmt === 'f' ? 'K4' : 'KV'}`);
    let body: string;
    if (unroll) {
      const KV = K / per, NL = Math.ceil(KV / sg);
      const L: string[] = [];
      // every load of the subgroup's rows first (rows past the end read the last row: in bounds, not written)
      for (let r = 0; r < rps; r++) {
        L.push(`let j${r} = row0 + ${r}u; let wr${r} = ${rowAt(`min(j${r}, nb - 1u)`)};`);
        for (let i = 0; i < NL; i++) {
          if ((i + 1) * sg <= KV) L.push(load(`w${r}_${i}`, `wr${r}`, `${i * sg}u + lane`, 'let'));
          else L.push(`var w${r}_${i} = ${wty}();${fmt === 'q' ? ` var w${r}_${i}s = 0.0;` : ''} if (${i * sg}u + lane < ${KV}u) { ${load(`w${r}_${i}`, `wr${r}`, `${i * sg}u + lane`, 'set')} }`);
        }
      }
      for (let r = 0; r < rps; r++) {
        for (let m = 0; m < mm; m++) {
          L.push(`{ var acc = 0.0;`);
          for (let i = 0; i < NL; i++) {
            const q = (i + 1) * sg <= KV ? `${i * sg}u + lane` : `min(${i * sg}u + lane, ${KV - 1}u)`;
            L.push('  ' + fma('acc', `w${r}_${i}`, `${m}u`, q));
          }
          L.push(`  let s = subgroupAdd(acc);`);
          L.push(`  if (lane == 0u && j${r} < nb && ${m}u < M) { put(${m}u, n0 + j${r}, s + bias(j${r}, hasB, nb), N, hasR, conv, cs0, cw, Kc); } }`);
        }
      }
      body = L.join('\n    ');
    } else {
      // the loop form; with U > 1, U loads in flight: U units (U·sg apart) loaded, then their products into U partial sums
      const U = loads > 1 ? loads : 1;
      const qs = Array.from({ length: U }, (_, u) => (u === 0 ? 'q' : `q + ${u * sg}u`));
      const stream = U > 1
        ? /* wgsl */ `var q = lane;
        ${Array.from({ length: U - 1 }, (_, u) => `var acc${u + 1}: array<f32, ${mm}>;
        for (var m = 0u; m < ${mm}u; m++) { acc${u + 1}[m] = 0.0; }`).join('\n        ')}
        for (; q + ${(U - 1) * sg}u < KV; q += ${U * sg}u) {
          ${qs.map((q, u) => load(`w${u}`, 'wr', q, 'let')).join('\n          ')}
          for (var m = 0u; m < ${mm}u; m++) {
            if (m < M) {
              ${qs.map((q, u) => fma(u === 0 ? 'acc[m]' : `acc${u}[m]`, `w${u}`, 'm', q)).join('\n              ')}
            }
          }
        }
        for (; q < KV; q += ${sg}u) {
          ${load('w', 'wr', 'q', 'let')}
          for (var m = 0u; m < ${mm}u; m++) {
            if (m < M) { ${fma('acc[m]', 'w', 'm', 'q')} }
          }
        }
        for (var m = 0u; m < ${mm}u; m++) { acc[m] += ${qs.slice(1).map((_, u) => `acc${u + 1}[m]`).join(' + ')}; }`
        : /* wgsl */ `for (var q = lane; q < KV; q += ${sg}u) {
          ${load('w', 'wr', 'q', 'let')}
          for (var m = 0u; m < ${mm}u; m++) {
            if (m < M) { ${fma('acc[m]', 'w', 'm', 'q')} }
          }
        }`;
      body = /* wgsl */ `
    for (var r = 0u; r < ${rps}u; r++) {
      let j = row0 + r;
      var acc: array<f32, ${mm}>;
      for (var m = 0u; m < ${mm}u; m++) { acc[m] = 0.0; }
      if (j < nb) {
        let wr = ${rowAt('j')};
        ${stream}
      }
      for (var m = 0u; m < ${mm}u; m++) {
        let s = subgroupAdd(acc[m]);
        if (lane == 0u && j < nb && m < M) { put(m, n0 + j, s + bias(j, hasB, nb), N, hasR, conv, cs0, cw, Kc); }
      }
    }`;
    }
    return /* wgsl */ `
const NSG: u32 = ${nsg}u;
var<workgroup> rsv: array<f32, ${Math.max(64, nsg)}>;
${xs4 ? `var<workgroup> xs: array<vec4<f32>, ${xs4}>;` : ''}
${DECODE_FNS}
${fmt === 'q' ? q8Fns() : ''}
fn bias(j: u32, hasB: bool, nb: u32) -> f32 {
  if (hasB && j < nb) { return $bias[o_bias + j]; }
  return 0.0;
}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wgid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
  init_offsets();
${DECODE_PARAMS}
  let K4 = K / 4u; let KV = K / ${per}u;
  let sgi = li / ${sg}u;
  ${xs4 ? `if (norm && M * nG == 1u) {
    // one row, one norm group (batch-1 decode): x (· silu(z)) staged and its squares summed by every lane at
    // once, the partial sums added across subgroups, then each lane scales the vectors it staged
    var s = 0.0;
    for (var i = li; i < K4; i += ${wg}u) {
      var v = vec4<f32>($x[o_x + 4u * i], $x[o_x + 4u * i + 1u], $x[o_x + 4u * i + 2u], $x[o_x + 4u * i + 3u]);
      if (gated) { v *= vec4<f32>(silu($z[o_z + 4u * i]), silu($z[o_z + 4u * i + 1u]), silu($z[o_z + 4u * i + 2u]), silu($z[o_z + 4u * i + 3u])); }
      xs[i] = v;
      s += dot(v, v);
    }
    let t = subgroupAdd(s);
    if (lane == 0u) { rsv[sgi] = t; }
    workgroupBarrier();
    var tot = 0.0;
    for (var i = 0u; i < NSG; i++) { tot += rsv[i]; }
    let rs = inverseSqrt(tot / f32(K) + eps);
    for (var i = li; i < K4; i += ${wg}u) { xs[i] *= rs * vec4<f32>($nw[o_nw + 4u * i], $nw[o_nw + 4u * i + 1u], $nw[o_nw + 4u * i + 2u], $nw[o_nw + 4u * i + 3u]); }
    workgroupBarrier();
  } else {` : '{'}
  if (norm) {
    // the RMS scales, one subgroup per (row, group): subgroupAdd, no tree
    let nq = M * nG;
    for (var q0 = 0u; q0 < nq; q0 += NSG) {
      let q = q0 + sgi;
      var s = 0.0;
      if (q < nq) {
        let m = q / nG; let g0 = (q % nG) * gs;
        for (var k = lane; k < gs; k += ${sg}u) {
          var v = $x[o_x + m * K + g0 + k];
          if (gated) { v *= silu($z[o_z + m * K + g0 + k]); }
          s += v * v;
        }
      }
      let t = subgroupAdd(s);
      if (lane == 0u && q < nq) { rsv[q] = inverseSqrt(t / f32(gs) + eps); }
    }
    workgroupBarrier();
  }
  ${xs4 ? `for (var i = li; i < M * K4; i += ${wg}u) { xs[i] = x4(i / K4, (i % K4) * 4u, K, norm, gated, nG, gs); }
  workgroupBarrier();` : ''}
  }
  let row0 = (lin(wgid, nwg) * NSG + sgi) * ${rps}u;
  let wb = o_w / 4u;
  ${body}
}`;
  },
};
