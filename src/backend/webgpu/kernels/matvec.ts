/**
 * The decode matrix-vector product, y[M, N] = x̂[M, K] · wᵀ (+ bias), M ≤ 8, streaming the weights at
 * memory speed: the weight matrix is bound as an array of 16-byte vectors (4 float32, or 8 bf16 packed two
 * to a u32), a row is read by TPR consecutive lanes (512 contiguous bytes per step for TPR = 32), RPW rows
 * per workgroup of 256, one tree reduction per row at the end. Chosen per call: RPW = 8 for tall matrices,
 * 2–4 for short ones so that every SM gets work.
 *
 * Fusions (all optional, by flag), so that a decode layer records few dispatches:
 * - prologue (2): x is RMS-normalised on the fly, x̂ = w_n · x / √(mean(x²) + eps) per group of `gs`
 *   channels; with 4 it is the gated norm x̂ = w_n · n(x · silu(z)) (Mamba-2). The per-(row, group) scales
 *   are reduced in workgroup memory first (every workgroup recomputes them: x is a few KB, read from cache);
 * - epilogue (8): y2 = y + res, the residual add, written besides y;
 * - epilogue (16): the conv window of a Mamba mixer: for output columns c ∈ [cs0, cs0 + cw) (the channels
 *   the depthwise conv reads), window[m, c − cs0, ·] shifts by one and takes y (slot Kc−1 = newest). The
 *   mixer's step kernels then read the updated window only, so no kernel reads what another one writes.
 *
 * bf16 weights: a u32 holds weights 2i (low half) and 2i+1 (high half); bf16 → f32 is a shift or a mask.
 * q8 weights (format 'q', q8.ts): a lane takes 16 weights at a time (one vec4<u32> of int8 and the block's scale),
 * the products summed before the scale multiplies them.
 * The vector formats need K % 4 == 0 (f32), K % 8 == 0 (bf16) or K % 32 == 0 (q8) and the matrix in a buffer of its
 * own (the matrix pool); any other float32 weight takes the scalar format 'x' (one float per lane and step).
 * flags: 1 bias, 2 norm, 4 gate, 8 residual, 16 conv window.
 * params: M, K, N, n0, nb, flags, gs, eps, cs0, cw, Kc
 */
import type { KernelSpec } from '../runtime.js';
import { q8Fns } from './q8.js';

/**
 * The RMS scales of the norm prologue: rsv[m · nG + g] = 1/√(mean over group g of row m of (x · silu(z) when
 * gated)² + eps). The M · nG reductions run side by side, G lanes each (G the largest power of two with
 * G · M · nG ≤ 256, at least 1; passes of 256 / G of them when there are more), reduced in `red` (≥ 256 floats).
 * Every workgroup recomputes them: x is a few KB to a few hundred, read from cache. `unrolled` (MATVEC_V's 'l'
 * variants, 2–8 rows, where a lane's share grows with the rows: 24 values at 8 rows of 768): four loads issued
 * before their sums, in four partial sums (another order of the additions).
 */
export function normScales(unrolled: boolean): string {
  const at = (k: string, o = 'o_x') => `${o} + m * K + g0 + ${k}`;
  const loop = unrolled
    ? /* wgsl */ `
        var s1 = 0.0; var s2 = 0.0; var s3 = 0.0;
        var k = gl;
        for (; k + 3u * G < gs; k += 4u * G) {
          var v = vec4<f32>($x[${at('k')}], $x[${at('k + G')}], $x[${at('k + 2u * G')}], $x[${at('k + 3u * G')}]);
          if (gated) {
            v *= vec4<f32>(silu($z[${at('k', 'o_z')}]), silu($z[${at('k + G', 'o_z')}]), silu($z[${at('k + 2u * G', 'o_z')}]), silu($z[${at('k + 3u * G', 'o_z')}]));
          }
          s += v.x * v.x; s1 += v.y * v.y; s2 += v.z * v.z; s3 += v.w * v.w;
        }
        for (; k < gs; k += G) {
          var v = $x[${at('k')}];
          if (gated) { v *= silu($z[${at('k', 'o_z')}]); }
          s += v * v;
        }
        s = (s + s1) + (s2 + s3);`
    : /* wgsl */ `
        for (var k = gl; k < gs; k += G) {
          var v = $x[o_x + m * K + g0 + k];
          if (gated) { v *= silu($z[o_z + m * K + g0 + k]); }
          s += v * v;
        }`;
  return /* wgsl */ `
    let nq = M * nG;
    var G = 256u;
    while (G > 1u && G * nq > 256u) { G >>= 1u; }
    for (var q0 = 0u; q0 < nq; q0 += 256u / G) {
      let q = q0 + li / G; let gl = li % G;
      var s = 0.0;
      if (q < nq) {
        let m = q / nG; let g0 = (q % nG) * gs;${loop}
      }
      red[li] = s;
      workgroupBarrier();
      for (var st = G / 2u; st > 0u; st >>= 1u) {
        if (gl < st) { red[li] += red[li + st]; }
        workgroupBarrier();
      }
      if (gl == 0u && q < nq) { rsv[q] = inverseSqrt(red[li] / f32(gs) + eps); }
      workgroupBarrier();
    }`;
}
/** the prologue of before (one load at a time per lane) */
export const NORM_SCALES = normScales(false);

/** the roles of the decode matrix kernels (MATVEC_V, FEWROWS): input, weights, folded norm, residual, conv window, outputs */
export const DECODE_ROLES = ['x', 'w', 'bias', 'nw', 'z', 'res', 'cst', 'y', 'y2'] as const;

/**
 * WGSL shared by the decode matrix kernels: `xin` / `x4`, one / four elements of x̂ (the input with its folded
 * norm; `rsv` holds the scales) — DECODE_X_FNS — and `put`, the write of output (m, col) with the residual and
 * conv-window epilogues — DECODE_PUT_FN; DECODE_FNS is both.
 */
export const DECODE_X_FNS = /* wgsl */ `
fn xin(m: u32, k: u32, K: u32, norm: bool, gated: bool, nG: u32, gs: u32) -> f32 {
  var v = $x[o_x + m * K + k];
  if (norm) {
    if (gated) { v *= silu($z[o_z + m * K + k]); }
    v *= $nw[o_nw + k] * rsv[m * nG + k / gs];
  }
  return v;
}
fn x4(m: u32, k: u32, K: u32, norm: bool, gated: bool, nG: u32, gs: u32) -> vec4<f32> {
  return vec4<f32>(xin(m, k, K, norm, gated, nG, gs), xin(m, k + 1u, K, norm, gated, nG, gs),
                   xin(m, k + 2u, K, norm, gated, nG, gs), xin(m, k + 3u, K, norm, gated, nG, gs));
}`;
export const DECODE_PUT_FN = /* wgsl */ `
fn put(m: u32, col: u32, v: f32, N: u32, hasR: bool, conv: bool, cs0: u32, cw: u32, Kc: u32) {
  let o = m * N + col;
  $y[o_y + o] = v;
  if (hasR) { $y2[o_y2 + o] = v + $res[o_res + o]; }
  if (conv && col >= cs0 && col < cs0 + cw) {
    let base = o_cst + (m * cw + col - cs0) * Kc;
    for (var t = 0u; t + 1u < Kc; t++) { $cst[base + t] = $cst[base + t + 1u]; }
    $cst[base + Kc - 1u] = v;
  }
}`;
export const DECODE_FNS = DECODE_X_FNS + DECODE_PUT_FN;

/** the parameter words of the decode matrix kernels, as WGSL locals */
export const DECODE_PARAMS = /* wgsl */ `
  let M = pu(PK); let K = pu(PK + 1u); let N = pu(PK + 2u); let n0 = pu(PK + 3u); let nb = pu(PK + 4u); let flags = pu(PK + 5u);
  let gs = pu(PK + 6u); let eps = pf(PK + 7u); let cs0 = pu(PK + 8u); let cw = pu(PK + 9u); let Kc = pu(PK + 10u);
  let hasB = (flags & 1u) != 0u; let norm = (flags & 2u) != 0u; let gated = (flags & 4u) != 0u;
  let hasR = (flags & 8u) != 0u; let conv = (flags & 16u) != 0u;
  let nG = K / gs;`;

/** how the weights are read: f32 vectors, packed bf16 vectors, scalar f32, or q8 superblocks (q8.ts) */
export type MatvecFormat = 'f' | 'b' | 'x' | 'q';

/** the format a packed weight store is read in ('b' bf16, 'q' q8); null for float32 (vector or scalar, by shape) */
export function packedFormat(s: { fmt: string }): 'b' | 'q' | null {
  return s.fmt === 'bf16' ? 'b' : s.fmt === 'q8' ? 'q' : null;
}

/** the WGSL element type of the weight role, by format */
export function weightTypes(fmt: MatvecFormat): Record<string, string> {
  return fmt === 'f' ? { w: 'vec4<f32>' } : fmt === 'b' || fmt === 'q' ? { w: 'vec4<u32>' } : {};
}

/**
 * variant `${MM}${f|b|x}${RPW}[s${XS4}][l]`: rows of x rounded up (1, 2, 4, 8), weight format, rows per
 * workgroup, and, when x̂ fits in workgroup memory (`wgBytes` of the adapter's limit; vector formats only), its
 * size in vec4s: the workgroup then normalises x once into workgroup memory and the weight loop reads one vec4
 * of x̂ per vec4 of w. 'l' (`rowLanes`, 2–8 rows): lane m of a weight row writes output row m (with its residual and
 * conv-window epilogues) instead of lane 0 looping over the rows (the same values), and the norm prologue issues its
 * loads four at a time (`normScales`; sums in another order). 'u${U}' (`loads` 2, 4 or 8: decodeKernels 'v1-u…',
 * vector formats): each lane issues U weight loads (U·TPR vectors apart) before any product, into U independent
 * partial sums (added at the end: another order of the additions), then the rest of the row one load at a time.
 */
export function matvecVariant(M: number, K: number, fmt: MatvecFormat, rows: number, groups: number, wgBytes: number, rowLanes = false, loads = 1): string {
  const mm = M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : 8;
  // enough workgroups to cover the GPU (≥ 256), else more lanes per row
  const rpw = Math.ceil(rows / 8) >= groups ? 8 : Math.ceil(rows / 4) >= groups ? 4 : 2;
  const free = wgBytes - 4 * 256 * mm - 4 * 64 - 64;
  const xs4 = Math.min(2048, Math.floor(free / 16));
  const need = Math.ceil((M * K) / 4 / 64) * 64;
  const staged = fmt !== 'x' && need <= xs4 ? `s${need}` : '';
  return `${mm}${fmt}${rpw}${staged}${rowLanes && M > 1 ? 'l' : ''}${loads > 1 && fmt !== 'x' ? `u${loads}` : ''}`;
}

/**
 * the parts of a variant string; `ext` (after ':', MATVEC_X only): 'p' the x_proj partials epilogue, 'a' the
 * argmax partials epilogue
 */
export function matvecParse(v: string): { mm: number; fmt: MatvecFormat; rpw: number; xs4: number; ext: '' | 'p' | 'a'; rowLanes: boolean; loads: number } {
  const [full, ext] = v.split(':');
  const m = /^([1248])([fbxq])(\d+)(?:s(\d+))?(l?)(?:u([248]))?$/.exec(full);
  if (!m) throw new Error(`matvec: bad variant ${JSON.stringify(v)}`);
  return { mm: Number(m[1]), fmt: m[2] as MatvecFormat, rpw: Number(m[3]), xs4: m[4] ? Number(m[4]) : 0, ext: (ext ?? '') as '' | 'p' | 'a', rowLanes: m[5] === 'l', loads: m[6] ? Number(m[6]) : 1 };
}

export const MATVEC_V: KernelSpec = {
  name: 'matvec_v',
  roles: DECODE_ROLES,
  writes: ['y', 'y2', 'cst'],
  types: (v) => weightTypes(matvecParse(v).fmt),
  wgsl: (v) => matvecWgsl(v),
};

/**
 * MATVEC_V with one more epilogue (decodeKernels 'fused', one row, one block of weight rows, workgroup g writing
 * partials at g), so that the next dispatch finds reduced work:
 * - ':p' (Mamba-1 in_proj with the conv window, cs0 = 0): each workgroup computes u = silu(conv + bias) of its
 *   x channels from the updated window and its share of x_proj, aux[g · J + i] = Σ_{c of g} xp[i, c] · u[c], i < J
 *   (`MAMBA1_SCAN` variant 'p' adds the partials up: x_proj costs no dispatch of its own);
 * - ':a' (lm_head): each workgroup's largest output and its index (the first on ties, NaN never), as
 *   `ARGMAX_PART`'s pairs aux[2g], aux[2g + 1], for `ARGMAX_FINAL` over ⌈N / RPW⌉ segments.
 * flags: MATVEC_V's and 32 conv bias. params: MATVEC_V's, then J. xp is read as words of w's vector type (it may
 * share w's matrix buffer).
 */
export const MATVEC_X: KernelSpec = {
  name: 'matvec_x',
  roles: [...DECODE_ROLES, 'cw', 'cb', 'xp', 'aux'],
  writes: ['y', 'y2', 'cst', 'aux'],
  types: (v) => {
    const { fmt, ext } = matvecParse(v);
    const t = weightTypes(fmt);
    return ext === 'p' && t.w ? { ...t, xp: t.w } : t;
  },
  wgsl: (v) => matvecWgsl(v),
};

function matvecWgsl(v: string): string {
    const { mm, fmt, rpw, xs4, ext, rowLanes, loads } = matvecParse(v);
    if (rowLanes && (ext || 256 / rpw < mm)) throw new Error(`matvec variant ${v}: 'l' needs no epilogue and a lane per row`);
    if (loads > 1 && (fmt === 'x' || ext)) throw new Error(`matvec variant ${v}: 'u' needs a vector format and no epilogue`);
    // x̂ as 4 (f32) or 8 (bf16) inputs at k: from workgroup memory when staged, else normalised on the fly
    const X4 = (k: string) => (xs4 ? `xs[m * (K / 4u) + (${k}) / 4u]` : `x4(m, ${k}, K, norm, gated, nG, gs)`);
    const scalar = /* wgsl */ `
    let wr = o_w + j * K;
    for (var k = lane; k < K; k += TPR) {
      let wv = $w[wr + k];
      for (var m = 0u; m < MM; m++) {
        if (m < M) { acc[m] += wv * xin(m, k, K, norm, gated, nG, gs); }
      }
    }`;
    const q8 = /* wgsl */ `
    let K16 = K / 16u;
    let g0 = j * (K / 32u);
    for (var q = lane; q < K16; q += TPR) {
      let g = g0 + q / 2u;
      let p = q8at(g, q & 1u);
      let sc = q8sc(g);
      let w0 = q8x4(p.x); let w1 = q8x4(p.y); let w2 = q8x4(p.z); let w3 = q8x4(p.w);
      for (var m = 0u; m < MM; m++) {
        if (m < M) {
          acc[m] += sc * (dot(w0, ${X4('q * 16u')}) + dot(w1, ${X4('q * 16u + 4u')}) + dot(w2, ${X4('q * 16u + 8u')}) + dot(w3, ${X4('q * 16u + 12u')}));
        }
      }
    }`;
    const body = loads > 1 ? inFlight(fmt as 'f' | 'b' | 'q', loads, X4) : fmt === 'x' ? scalar : fmt === 'q' ? q8 : fmt === 'b'
      ? /* wgsl */ `
    let K8 = K / 8u;
    let wr = o_w / 4u + j * K8;
    for (var q = lane; q < K8; q += TPR) {
      let p = $w[wr + q];
      let lo = bitcast<vec4<f32>>(p << vec4<u32>(16u));
      let hi = bitcast<vec4<f32>>(p & vec4<u32>(0xffff0000u));
      for (var m = 0u; m < MM; m++) {
        if (m < M) {
          let a = ${X4('q * 8u')};
          let b = ${X4('q * 8u + 4u')};
          acc[m] += dot(lo, vec4<f32>(a.x, a.z, b.x, b.z)) + dot(hi, vec4<f32>(a.y, a.w, b.y, b.w));
        }
      }
    }`
      : /* wgsl */ `
    let K4 = K / 4u;
    let wr = o_w / 4u + j * K4;
    for (var q = lane; q < K4; q += TPR) {
      let w4 = $w[wr + q];
      for (var m = 0u; m < MM; m++) {
        if (m < M) { acc[m] += dot(w4, ${X4('q * 4u')}); }
      }
    }`;
    return /* wgsl */ `
const MM: u32 = ${mm}u;
const RPW: u32 = ${rpw}u;
const TPR: u32 = ${256 / rpw}u;
var<workgroup> red: array<f32, ${256 * mm}>;
var<workgroup> rsv: array<f32, 64>;
${xs4 ? `var<workgroup> xs: array<vec4<f32>, ${xs4}>;` : ''}
${ext === 'p' ? `var<workgroup> su: array<f32, ${rpw}>;
fn xpw(i: u32) -> f32 { return ${fmt === 'x' ? '$xp[i]' : fmt === 'f' ? '$xp[i / 4u][i % 4u]' : 'bitcast<f32>($xp[i / 4u][i % 4u])'}; }` : ''}
${fmt === 'q' ? q8Fns() : ''}
${ext === 'a' ? `var<workgroup> av: array<f32, ${rpw}>;
var<workgroup> ai: array<u32, ${rpw}>;` : ''}
${DECODE_FNS}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
${DECODE_PARAMS}
  if (norm) { ${normScales(rowLanes)} }
  ${xs4 ? `for (var i = li; i < M * (K / 4u); i += 256u) { xs[i] = x4(i / (K / 4u), (i % (K / 4u)) * 4u, K, norm, gated, nG, gs); }
  workgroupBarrier();` : ''}
  let r = li / TPR; let lane = li % TPR;
  let j = lin(wg, nwg) * RPW + r;
  var acc: array<f32, MM>;${Array.from({ length: loads - 1 }, (_, u) => `\n  var acc${u + 1}: array<f32, MM>;`).join('')}
  if (j < nb) {${body}
  }
  for (var m = 0u; m < MM; m++) { red[m * 256u + li] = acc[m]; }
  workgroupBarrier();
  for (var s = TPR / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var m = 0u; m < MM; m++) { red[m * 256u + li] += red[m * 256u + li + s]; }
    }
    workgroupBarrier();
  }
  ${rowLanes ? `if (lane < M && j < nb) {
    var b = 0.0;
    if (hasB) { b = $bias[o_bias + j]; }
    put(lane, n0 + j, red[lane * 256u + li - lane] + b, N, hasR, conv, cs0, cw, Kc);
  }` : `if (lane == 0u && j < nb) {
    var b = 0.0;
    if (hasB) { b = $bias[o_bias + j]; }
    for (var m = 0u; m < M; m++) { put(m, n0 + j, red[m * 256u + li] + b, N, hasR, conv, cs0, cw, Kc); }
  }`}${ext ? EPILOGUES[ext] : ''}
}`;
}

/**
 * MATVEC_V's weight loop with U loads in flight ('u' variants): per iteration a lane loads U weight units (U·TPR units
 * apart), then adds their products into U partial sums (acc, acc1 … acc{U−1}, declared by the caller), which are
 * added into acc at the end; the last < U·TPR units one at a time. A unit is 4 f32 (a vec4), 8 bf16 (a vec4<u32>)
 * or 16 q8 (a vec4<u32> of int8 and its block's scale). Expects `j`, `lane`, TPR, MM, M and x̂ through X4.
 */
function inFlight(fmt: 'f' | 'b' | 'q', U: number, X4: (k: string) => string): string {
  const per = { f: 4, b: 8, q: 16 }[fmt];
  const setup = fmt === 'q' ? 'let g0 = j * (K / 32u);' : `let wr = o_w / 4u + j * KV;`;
  const load = (u: number, q: string) =>
    fmt === 'q' ? `let p${u} = q8at(g0 + (${q}) / 2u, (${q}) & 1u); let s${u} = q8sc(g0 + (${q}) / 2u);` : `let w${u} = $w[wr + ${q}];`;
  const fma = (acc: string, u: number, q: string) => {
    if (fmt === 'f') return `${acc} += dot(w${u}, ${X4(`(${q}) * 4u`)});`;
    if (fmt === 'b') {
      return `{ let a = ${X4(`(${q}) * 8u`)}; let b = ${X4(`(${q}) * 8u + 4u`)};
          ${acc} += dot(bitcast<vec4<f32>>(w${u} << vec4<u32>(16u)), vec4<f32>(a.x, a.z, b.x, b.z)) + dot(bitcast<vec4<f32>>(w${u} & vec4<u32>(0xffff0000u)), vec4<f32>(a.y, a.w, b.y, b.w)); }`;
    }
    return `${acc} += s${u} * (dot(q8x4(p${u}.x), ${X4(`(${q}) * 16u`)}) + dot(q8x4(p${u}.y), ${X4(`(${q}) * 16u + 4u`)}) + dot(q8x4(p${u}.z), ${X4(`(${q}) * 16u + 8u`)}) + dot(q8x4(p${u}.w), ${X4(`(${q}) * 16u + 12u`)}));`;
  };
  const qs = Array.from({ length: U }, (_, u) => (u === 0 ? 'q' : `q + ${u}u * TPR`));
  const accs = Array.from({ length: U }, (_, u) => (u === 0 ? 'acc[m]' : `acc${u}[m]`));
  return /* wgsl */ `
    let KV = K / ${per}u;
    ${setup}
    var q = lane;
    for (; q + ${U - 1}u * TPR < KV; q += ${U}u * TPR) {
      ${qs.map((q, u) => load(u, q)).join('\n      ')}
      for (var m = 0u; m < MM; m++) {
        if (m < M) {
          ${qs.map((q, u) => fma(accs[u], u, q)).join('\n          ')}
        }
      }
    }
    for (; q < KV; q += TPR) {
      ${load(0, 'q')}
      for (var m = 0u; m < MM; m++) {
        if (m < M) { ${fma('acc[m]', 0, 'q')} }
      }
    }
    for (var m = 0u; m < MM; m++) { acc[m] += ${accs.slice(1).join(' + ')}; }`;
}

/** the epilogues of MATVEC_X (one row: M = 1, n0 = 0), after the outputs are written */
const EPILOGUES = {
  p: /* wgsl */ `
  let J = pu(PK + 11u); let g = lin(wg, nwg);
  if (lane == 0u) {
    var u = 0.0;
    if (j < nb && j < cw) {
      var v = 0.0;
      if ((flags & 32u) != 0u) { v = $cb[o_cb + j]; }
      for (var t = 0u; t < Kc; t++) { v = fma($cw[o_cw + j * Kc + t], $cst[o_cst + j * Kc + t], v); }
      u = silu(v);
    }
    su[r] = u;
  }
  workgroupBarrier();
  if (g * RPW < cw) {
    for (var i = li; i < J; i += 256u) {
      var s = 0.0;
      for (var q = 0u; q < RPW; q++) {
        let c = g * RPW + q;
        if (c < cw && c < nb) { s = fma(xpw(o_xp + i * cw + c), su[q], s); }
      }
      $aux[o_aux + g * J + i] = s;
    }
  }`,
  a: /* wgsl */ `
  if (lane == 0u) {
    var v = 0.0;
    if (j < nb) { v = red[li]; if (hasB) { v += $bias[o_bias + j]; } }
    av[r] = v;
    ai[r] = select(0xffffffffu, n0 + j, j < nb);
  }
  workgroupBarrier();
  if (li == 0u && lin(wg, nwg) * RPW < nb) {
    var best = -3.4028234663852886e38;
    var idx = 0xffffffffu;
    for (var q = 0u; q < RPW; q++) {
      if (ai[q] != 0xffffffffu && (av[q] > best || (idx == 0xffffffffu && av[q] == best))) { best = av[q]; idx = ai[q]; }
    }
    let g = lin(wg, nwg);
    $aux[o_aux + g * 2u] = best;
    $aux[o_aux + g * 2u + 1u] = select(-1.0, f32(idx), idx != 0xffffffffu);
  }`,
} as const;
