/**
 * The "few rows" decode matrix product, y[M, N] = x̂[M, K] · wᵀ (+ bias) for 2 ≤ M ≤ 64 (batched decode):
 * each workgroup reads its RPW weight rows from memory ONCE, into registers (TPR = 256 / RPW consecutive
 * lanes per row, KV 16-byte vectors each: 4 float32 or 8 bf16), then multiplies them with every input row,
 * MB rows at a time (x̂ of the block staged in workgroup memory when it fits, one tree reduction per block).
 * So the weight bytes a step reads do not grow with M, as with MATVEC_V (one pass over all rows, M ≤ 8) and
 * unlike the 64×64-tile matmul (which leaves most SMs idle at N = 768 and re-reads x per tile).
 * Rows too long for the registers (KV = 0: K > 16,384 f32 / 16,384 bf16 at one row per workgroup) are
 * streamed once per block of MB input rows instead.
 *
 * Same roles, parameters and fusions as MATVEC_V (matvec.ts): the RMSNorm / gated-norm prologue, the residual
 * and conv-window epilogues, bias; weight formats 'f' (f32 vectors), 'b' (packed bf16 vectors), 'q' (q8 superblocks, q8.ts), 'x' (scalar f32).
 * params: M, K, N, n0, nb, flags, gs, eps, cs0, cw, Kc
 */
import type { KernelSpec } from '../runtime.js';
import { DECODE_FNS, DECODE_PARAMS, DECODE_ROLES, NORM_SCALES, weightTypes, type MatvecFormat } from './matvec.js';
import { q8Fns } from './q8.js';

/** norm scales a workgroup keeps (M · groups of the folded norm ≤ this) */
export const FEWROWS_SCALES = 512;

/** register budget per lane, in weight units (vec4 f32, vec4 u32 = 8 bf16 unpacked to two vec4, scalar f32, 16 q8 unpacked to four vec4) */
const KV_MAX: Record<MatvecFormat, number> = { f: 16, b: 8, x: 32, q: 4 };

export interface FewRowsVariant {
  fmt: MatvecFormat;
  /** weight rows per workgroup */
  rpw: number;
  /** weight units per lane held in registers; 0: streamed per row block */
  kv: number;
  /** input rows per block (accumulators per lane) */
  mb: number;
  /** vec4s of x̂ staged per block (0: read from memory on the fly) */
  xs4: number;
}

/**
 * The variant for M input rows of width K and `rows` weight rows: as many rows per workgroup (≤ 16) as leave
 * at least `groups` workgroups (256 on GPUs: ~2 per SM of a 132-SM H100 — 16 rows for the 50k-row head, 8 for
 * N = 3072, 2 for N = 768; 0 = as few workgroups as possible), fewer where a row does not fit the registers.
 * Every workgroup stages all M rows of x̂, so fewer, taller workgroups read less of it. Blocks of 8 input
 * rows, or 4 / 2 when that lets the block's x̂ be staged in `wgBytes` of workgroup memory.
 */
export function fewRowsVariant(M: number, K: number, fmt: MatvecFormat, rows: number, groups: number, wgBytes: number): string {
  const units = fmt === 'f' ? K / 4 : fmt === 'b' ? K / 8 : fmt === 'q' ? K / 16 : K;
  let rpw = 16;
  while (rpw > 2 && Math.ceil(rows / rpw) < groups) rpw >>= 1;
  while (rpw > 1 && Math.ceil(units / (256 / rpw)) > KV_MAX[fmt]) rpw >>= 1;
  const need = Math.ceil(units / (256 / rpw));
  const kv = need <= KV_MAX[fmt] ? need : 0;
  const cap = M <= 2 ? 2 : M <= 4 ? 4 : 8;
  let mb = cap, xs4 = 0;
  if (fmt !== 'x') {
    for (let b = cap; b >= 2; b >>= 1) {
      const v4 = Math.ceil((b * K) / 4 / 64) * 64;
      if (4 * 256 * b + 4 * FEWROWS_SCALES + 16 * v4 + 64 <= wgBytes) {
        mb = b;
        xs4 = v4;
        break;
      }
    }
  }
  return `${fmt}${rpw}k${kv}m${mb}s${xs4}`;
}

export function fewRowsParse(v: string): FewRowsVariant {
  const m = /^([fbxq])(\d+)k(\d+)m(\d+)s(\d+)$/.exec(v);
  if (!m) throw new Error(`fewrows: bad variant ${JSON.stringify(v)}`);
  return { fmt: m[1] as MatvecFormat, rpw: Number(m[2]), kv: Number(m[3]), mb: Number(m[4]), xs4: Number(m[5]) };
}

/**
 * The WGSL of one weight unit, per format: how it is loaded (into `dst`, from the row starting at `wr`), kept
 * (`decl`) and multiplied with x̂ into an accumulator; `units` (units a row), `row` (`wr` of row j). Shared by
 * FEWROWS and MATVEC_R (matvec_rows.ts), which pass where x̂ of (row mm, element k) is read (`X4`, 'x' excepted)
 * and which accumulator a row adds into (`acc`).
 */
export function unitCode(fmt: MatvecFormat, staged: boolean, opts: { X4?: (mm: string, k: string) => string; acc?: (mm: string) => string } = {}): { decl: string; load: (q: string, dst: string) => string; fma: (src: string, mm: string, q: string) => string; units: string; row: string } {
  // x̂ of block row mm (input row m0 + mm) at element k: 4 elements
  const X4 = opts.X4 ?? ((mm: string, k: string) => (staged ? `xs[${mm} * (K / 4u) + (${k}) / 4u]` : `x4(m0 + ${mm}, ${k}, K, norm, gated, nG, gs)`));
  const A = opts.acc ?? ((mm: string) => `acc[${mm}]`);
  if (fmt === 'f') {
    return {
      decl: 'vec4<f32>',
      units: 'K / 4u',
      row: 'o_w / 4u + j * (K / 4u)',
      load: (q, dst) => `${dst} = $w[wr + ${q}];`,
      fma: (src, mm, q) => `${A(mm)} += dot(${src}, ${X4(mm, `${q} * 4u`)});`,
    };
  }
  if (fmt === 'b') {
    return {
      decl: 'array<vec4<f32>, 2>',
      units: 'K / 8u',
      row: 'o_w / 4u + j * (K / 8u)',
      load: (q, dst) => `{ let p = $w[wr + ${q}]; ${dst} = array<vec4<f32>, 2>(bitcast<vec4<f32>>(p << vec4<u32>(16u)), bitcast<vec4<f32>>(p & vec4<u32>(0xffff0000u))); }`,
      fma: (src, mm, q) => `{ let a = ${X4(mm, `${q} * 8u`)}; let b = ${X4(mm, `${q} * 8u + 4u`)};
            ${A(mm)} += dot(${src}[0], vec4<f32>(a.x, a.z, b.x, b.z)) + dot(${src}[1], vec4<f32>(a.y, a.w, b.y, b.w)); }`,
    };
  }
  if (fmt === 'q') {
    // 16 weights a unit (half a q8 block), unpacked and scaled once; `wr` is the row's first block
    return {
      decl: 'array<vec4<f32>, 4>',
      units: 'K / 16u',
      row: 'j * (K / 32u)',
      load: (q, dst) => `{ let g = wr + (${q}) / 2u; let p = q8at(g, (${q}) & 1u); let sc = q8sc(g);
      ${dst} = array<vec4<f32>, 4>(q8x4(p.x) * sc, q8x4(p.y) * sc, q8x4(p.z) * sc, q8x4(p.w) * sc); }`,
      fma: (src, mm, q) => `${A(mm)} += dot(${src}[0], ${X4(mm, `${q} * 16u`)}) + dot(${src}[1], ${X4(mm, `${q} * 16u + 4u`)}) + dot(${src}[2], ${X4(mm, `${q} * 16u + 8u`)}) + dot(${src}[3], ${X4(mm, `${q} * 16u + 12u`)});`,
    };
  }
  return {
    decl: 'f32',
    units: 'K',
    row: 'o_w + j * K',
    load: (q, dst) => `${dst} = $w[wr + ${q}];`,
    fma: (src, mm, q) => `${A(mm)} += ${src} * xin(m0 + ${mm}, ${q}, K, norm, gated, nG, gs);`,
  };
}

export const FEWROWS: KernelSpec = {
  name: 'fewrows',
  roles: DECODE_ROLES,
  writes: ['y', 'y2', 'cst'],
  types: (v) => weightTypes(fewRowsParse(v).fmt),
  wgsl: (v) => {
    const { fmt, rpw, kv, mb, xs4 } = fewRowsParse(v);
    const u = unitCode(fmt, xs4 > 0);
    // the products of one block: weights from the registers (kv > 0) or streamed from memory
    const products = kv > 0
      ? /* wgsl */ `
    for (var i = 0u; i < KV; i++) {
      let q = lane + i * TPR;
      if (q < KU) {
        for (var mm = 0u; mm < MB; mm++) {
          if (m0 + mm < M) { ${u.fma('wreg[i]', 'mm', 'q')} }
        }
      }
    }`
      : /* wgsl */ `
    for (var q = lane; q < KU; q += TPR) {
      var wq: ${u.decl};
      ${u.load('q', 'wq')}
      for (var mm = 0u; mm < MB; mm++) {
        if (m0 + mm < M) { ${u.fma('wq', 'mm', 'q')} }
      }
    }`;
    return /* wgsl */ `
const RPW: u32 = ${rpw}u;
const TPR: u32 = ${256 / rpw}u;
const KV: u32 = ${Math.max(kv, 1)}u;
const MB: u32 = ${mb}u;
var<workgroup> red: array<f32, ${256 * mb}>;
var<workgroup> rsv: array<f32, ${FEWROWS_SCALES}>;
${xs4 ? `var<workgroup> xs: array<vec4<f32>, ${xs4}>;` : ''}
${DECODE_FNS}
${fmt === 'q' ? q8Fns() : ''}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
${DECODE_PARAMS}
  if (norm) { ${NORM_SCALES} }
  let r = li / TPR; let lane = li % TPR;
  let j = lin(wg, nwg) * RPW + r;
  let KU = ${u.units};
  let live = j < nb;
  let wr = select(0u, ${u.row}, live);
  // this lane's part of weight row j, read once
  var wreg: array<${u.decl}, KV>;
  ${kv > 0 ? `for (var i = 0u; i < KV; i++) {
    let q = lane + i * TPR;
    if (live && q < KU) { ${u.load('q', 'wreg[i]')} }
  }` : ''}
  var bv = 0.0;
  if (hasB && live) { bv = $bias[o_bias + j]; }
  for (var m0 = 0u; m0 < M; m0 += MB) {
    ${xs4 ? `for (var i = li; i < MB * (K / 4u); i += 256u) {
      let mm = i / (K / 4u);
      if (m0 + mm < M) { xs[i] = x4(m0 + mm, (i % (K / 4u)) * 4u, K, norm, gated, nG, gs); }
    }
    workgroupBarrier();` : ''}
    var acc: array<f32, MB>;
    for (var mm = 0u; mm < MB; mm++) { acc[mm] = 0.0; }
    if (live) {${products}
    }
    for (var mm = 0u; mm < MB; mm++) { red[mm * 256u + li] = acc[mm]; }
    workgroupBarrier();
    for (var s = TPR / 2u; s > 0u; s >>= 1u) {
      if (lane < s) {
        for (var mm = 0u; mm < MB; mm++) { red[mm * 256u + li] += red[mm * 256u + li + s]; }
      }
      workgroupBarrier();
    }
    if (lane == 0u && live) {
      for (var mm = 0u; mm < MB; mm++) {
        if (m0 + mm < M) { put(m0 + mm, n0 + j, red[mm * 256u + li] + bv, N, hasR, conv, cs0, cw, Kc); }
      }
    }
    // no barrier needed before the next block: each lane rewrites only its own slots of red, and xs is
    // read by the products only, all done before the reduction's barriers
  }
}`;
  },
};
