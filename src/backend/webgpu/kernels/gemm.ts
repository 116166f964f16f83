/**
 * The tiled GEMM template shared by the forward linear (`linear.ts`: y = x·wᵀ + bias) and the training products
 * (`matmul_grad.ts`: strided operands, split-K), and the cooperative-matrix (tensor core) GEMM of the prefill linear.
 *
 * `tiledGemm`: T×T output tiles per workgroup of 256 threads, (T/16)×(T/16) outputs per thread strided by 16
 * (conflict-free workgroup reads, coalesced writes), K taken in slices of KS staged in workgroup memory
 * (KS·(T+1) floats per operand, column-padded). The caller supplies the parameter words, the K range, how a
 * slice is loaded (`As[kk·TP + r]` = A(row r, k0 + kk), `Bs[kk·TP + c]` = B(k0 + kk, column c)) and how one output
 * is stored; the template supplies the tile loop, the register blocking and the bounds of the store. A caller may
 * load Bs in larger units instead (`loadB`): the q8 weights of the linear, 16 values per 16-byte load (`q8TileLoad`).
 *
 * `SG_MATMUL`: the same linear with `subgroup_matrix` products (the 'chromium-experimental-subgroup-matrix'
 * feature; f32 operands, which NVIDIA runs as tf32 on its tensor cores).
 */
import type { SubgroupMatrixConfig } from '../runtime.js';
import type { KernelSpec } from '../runtime.js';
import { packedSuffix, packedTypes, weightReader } from './linear.js';
import { q8Fns } from './q8.js';

export interface GemmParts {
  /** output tile side (a multiple of 16: 64 or 128) */
  T: number;
  /** K slice depth (T·KS a multiple of 256) */
  KS: number;
  /** WGSL after init_offsets(): defines `M` (rows), `NC` (columns), `kb`/`ke` (the K range) and what load/store use */
  head: string;
  /** WGSL run (T·KS/256 times per slice) with `e` (0 … T·KS−1), `k0`, `tm`, `tn`: writes one element of As and of Bs */
  load: string;
  /**
   * Optional: Bs loaded in `units` pieces instead (then `load` writes As only): WGSL run for `u` = li, li + 256, …
   * below `units`, with `k0`, `tn` (the q8 weights: 16 values of a row from one 16-byte vector and its block's scale)
   */
  loadB?: { units: number; code: string };
  /** WGSL run for each output inside the bounds, with `r` (row), `c` (column) and `v` (the sum) */
  store: string;
}

export function tiledGemm(p: GemmParts): string {
  const { T, KS } = p;
  const R = T / 16, P = T + 1;
  if (T % 16 !== 0 || (T * KS) % 256 !== 0) throw new Error(`tiledGemm: tile ${T}×${KS} does not fit 256 threads`);
  return /* wgsl */ `
const TP: u32 = ${P}u;
var<workgroup> As: array<f32, ${KS * P}>;
var<workgroup> Bs: array<f32, ${KS * P}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  ${p.head}
  let tm = wg.y * ${T}u; let tn = wg.x * ${T}u;
  let tx = li % 16u; let ty = li / 16u;
  var acc: array<array<f32, ${R}>, ${R}>;
  for (var i = 0u; i < ${R}u; i++) { for (var j = 0u; j < ${R}u; j++) { acc[i][j] = 0.0; } }
  for (var k0 = kb; k0 < ke; k0 += ${KS}u) {
    for (var q = 0u; q < ${(T * KS) / 256}u; q++) {
      let e = li + 256u * q;
      ${p.load}
    }${p.loadB ? `
    for (var u = li; u < ${p.loadB.units}u; u += 256u) {
      ${p.loadB.code}
    }` : ''}
    workgroupBarrier();
    for (var kk = 0u; kk < ${KS}u; kk++) {
      var av: array<f32, ${R}>;
      var bv: array<f32, ${R}>;
      for (var i = 0u; i < ${R}u; i++) { av[i] = As[kk * TP + ty + 16u * i]; }
      for (var j = 0u; j < ${R}u; j++) { bv[j] = Bs[kk * TP + tx + 16u * j]; }
      for (var i = 0u; i < ${R}u; i++) {
        for (var j = 0u; j < ${R}u; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${R}u; i++) {
    let r = tm + ty + 16u * i;
    if (r >= M) { continue; }
    for (var j = 0u; j < ${R}u; j++) {
      let c = tn + tx + 16u * j;
      if (c < NC) {
        let v = acc[i][j];
        ${p.store}
      }
    }
  }
}`;
}

/**
 * Tiled linear y[M, N] = x[M, K]·wᵀ (+ bias) from the shared template; variant `<T>`, `<T>b` (bf16 weights), `<T>q`
 * (q8, each weight through the scalar reader `wv(i)`: a u32 and a scale per weight) or `<T>qv` (q8 read as vectors:
 * `q8TileLoad`; the weight role bound as array<vec4<u32>>, 16-deep K slices).
 * params (as MATMUL's): M, K, N, n0, nb, hasBias
 */
export const MATMUL_TILED: KernelSpec = {
  name: 'matmul_tiled',
  roles: ['x', 'w', 'bias', 'y'],
  writes: ['y'],
  types: (v) => (tiledParse(v).fmt === 'qv' ? { w: 'vec4<u32>' } : packedTypes('w')(packedSuffix(v))),
  wgsl: (v) => {
    const { T, fmt } = tiledParse(v);
    const KS = tiledDepth(T, fmt);
    const vecQ8 = fmt === 'qv';
    // both operands are K-contiguous: consecutive threads read consecutive k of one row
    const loadA = `let r = e / ${KS}u; let kk = e % ${KS}u; let gk = k0 + kk;
      var a = 0.0;
      if (tm + r < M && gk < K) { a = $x[o_x + (tm + r) * K + gk]; }
      As[kk * TP + r] = a;`;
    const loadW = `
      var b = 0.0;
      if (tn + r < NC && gk < K) { b = wv((tn + r) * K + gk); }
      Bs[kk * TP + r] = b;`;
    return `${vecQ8 ? q8Fns() : weightReader(fmt)}\n` + tiledGemm({
      T,
      KS,
      head: `let M = pu(PK); let K = pu(PK + 1u); let N = pu(PK + 2u); let n0 = pu(PK + 3u); let NC = pu(PK + 4u); let hasB = pu(PK + 5u);
  let kb = 0u; let ke = K;`,
      load: vecQ8 ? loadA : loadA + loadW,
      loadB: vecQ8 ? q8TileLoad(T, KS, (kk) => `Bs[(${kk}) * TP + r]`) : undefined,
      store: `var bb = 0.0;
        if (hasB != 0u) { bb = $bias[o_bias + c]; }
        $y[o_y + r * N + n0 + c] = v + bb;`,
    });
  },
};

/** tile side and weight format of a MATMUL_TILED variant */
export function tiledParse(v: string): { T: 64 | 128; fmt: '' | 'b' | 'q' | 'qv' } {
  const m = /^(64|128)(b|q|qv)?$/.exec(v);
  if (!m) throw new Error(`matmul_tiled: bad variant ${JSON.stringify(v)} (want 64 or 128, then nothing, b, q or qv)`);
  return { T: Number(m[1]) as 64 | 128, fmt: (m[2] ?? '') as '' | 'b' | 'q' | 'qv' };
}

/** the K slice depth of MATMUL_TILED: 16 (64-tiles, and q8 vectors: a slice is one half-block), 8 for 128-tiles */
export function tiledDepth(T: number, fmt: string): number {
  return fmt === 'qv' || T !== 128 ? 16 : 8;
}

/** bytes of workgroup memory MATMUL_TILED's variant needs (As and Bs: KS·(T+1) floats each) */
export function tiledWorkgroupBytes(v: string): number {
  const { T, fmt } = tiledParse(v);
  return 2 * tiledDepth(T, fmt) * (T + 1) * 4;
}

/**
 * The q8 weight tile load of a tiled GEMM (`GemmParts.loadB`): the slice k0 … k0 + KS−1 (KS a multiple of 16, k0 of
 * KS, K of 32) of the tile's rows tn … tn + T−1 in units of 16 values — one half of a block: one vec4<u32> (`q8at`)
 * and the block's scale (`q8sc`), dequantized exactly as `wv` does (f32(q)·scale) and stored as f32 through `dst`
 * (the WGSL place of slice k `kk` of tile row `r`). Consecutive units take consecutive rows, so a
 * warp's stores of one kk are consecutive. Rows past NC get zeros (the slice never straddles K: K is whole blocks).
 * Needs q8Fns(), and `K`, `NC`, `k0`, `tn` and the loop's `u` in scope.
 */
export function q8TileLoad(T: number, KS: number, dst: (kk: string) => string): { units: number; code: string } {
  if (KS % 16 !== 0) throw new Error(`q8TileLoad: K slice ${KS} is not whole 16-value units`);
  const put = (kk: string, val: string) => `${dst(kk)} = ${val};`;
  return {
    units: (T * KS) / 16,
    code: `let r = u % ${T}u; let h = u / ${T}u; let n = tn + r; let gk = k0 + 16u * h;
      if (n < NC && gk < K) {
        let e = n * K + gk; let g = e >> 5u;
        let q = q8at(g, (e >> 4u) & 1u); let s = q8sc(g);
        for (var j = 0u; j < 4u; j++) {
          let f = q8x4(q[j]) * s;
          for (var i = 0u; i < 4u; i++) { ${put('16u * h + 4u * j + i', 'f[i]')} }
        }
      } else {
        for (var i = 0u; i < 16u; i++) { ${put('16u * h + i', '0.0')} }
      }`,
  };
}

/** the f32 configuration the subgroup-matrix GEMM runs with, or null (see `sgMatmulVariant`) */
export function f32MatrixConfig(configs: readonly SubgroupMatrixConfig[]): SubgroupMatrixConfig | null {
  const ok = configs.filter((c) => c.componentType === 'f32' && c.resultComponentType === 'f32' && 64 % c.M === 0 && 64 % c.N === 0 && 32 % c.K === 0);
  // the most work per product
  ok.sort((a, b) => b.M * b.N * b.K - a.M * a.N * a.K);
  return ok[0] ?? null;
}

/**
 * The variant key of SG_MATMUL: `${M}x${N}x${K}s${subgroup size}t${tile rows}[b]`, or null when the shape does not
 * split over the subgroups of a 256-thread workgroup.
 */
export function sgMatmulVariant(cfg: SubgroupMatrixConfig, sg: number, tileM: 64 | 128, bf16: boolean): string | null {
  if (sg <= 0 || 256 % sg !== 0) return null;
  const nsg = 256 / sg;
  const frags = (tileM / cfg.M) * (64 / cfg.N);
  if (frags % nsg !== 0) return null;
  const layout = sgLayout(cfg, nsg, tileM);
  if (!layout) return null;
  return `${cfg.M}x${cfg.N}x${cfg.K}s${sg}t${tileM}${bf16 ? 'b' : ''}`;
}

/** how the subgroups of a workgroup cover its tile: FR×FC fragments each, on a grid of (tile/M/FR) × (64/N/FC) */
export function sgLayout(cfg: { M: number; N: number }, nsg: number, tileM: number): { FR: number; FC: number; GR: number; GC: number } | null {
  const WM = tileM / cfg.M, WN = 64 / cfg.N;
  const F = (WM * WN) / nsg;
  if (!Number.isInteger(F) || F < 1) return null;
  let FR = 1 << Math.floor(Math.log2(F) / 2);
  while (FR > 1 && (WM % FR !== 0 || F % FR !== 0)) FR >>= 1;
  const FC = F / FR;
  if (WM % FR !== 0 || WN % FC !== 0) return null;
  return { FR, FC, GR: WM / FR, GC: WN / FC };
}

/**
 * Subgroup-matrix linear: y[M, N] = x[M, K]·wᵀ (+ bias), w [N, K] row-major, f32, bf16-packed or q8 weights (variant suffix b, q).
 * A workgroup (256 threads) computes a tileM×64 output tile; K goes in slices of 32 staged in workgroup memory
 * (x rows and w rows both K-contiguous, zero-filled past the edges, 4 floats of padding per row to keep 16-byte
 * alignment); each subgroup owns FR×FC result fragments of cfg.M×cfg.N, accumulated over the slice with
 * `subgroupMatrixMultiplyAccumulate`. The left operand is the x slice (row-major), the right one the w slice read
 * column-major (B(k, n) = w[n, k]). After the K loop each fragment goes through a per-subgroup staging area of
 * workgroup memory, from where the lanes add the bias and write the rows and columns inside the bounds.
 * Assumes the subgroup size of the variant (the device's fixed one) and subgroups of consecutive invocations.
 * params (as MATMUL's): M, K, N, n0, nb, hasBias
 */
export const SG_MATMUL: KernelSpec = {
  name: 'matmul_sgmat',
  roles: ['x', 'w', 'bias', 'y'],
  writes: ['y'],
  types: (v) => packedTypes('w')(packedSuffix(v)),
  wgsl: (v) => {
    const m = /^(\d+)x(\d+)x(\d+)s(\d+)t(\d+)([bq]?)$/.exec(v);
    if (!m) throw new Error(`matmul_sgmat: bad variant ${v}`);
    const [cm, cn, ck, sg, TM] = m.slice(1, 6).map(Number);
    const packed = m[6] as '' | 'b' | 'q';
    const TN = 64, KS = 32, S = KS + 4;
    const nsg = 256 / sg;
    const lay = sgLayout({ M: cm, N: cn }, nsg, TM);
    if (!lay) throw new Error(`matmul_sgmat: ${v} does not split over ${nsg} subgroups`);
    const { FR, FC, GC } = lay;
    const L = `subgroup_matrix_left<f32, ${ck}, ${cm}>`;
    const Rt = `subgroup_matrix_right<f32, ${cn}, ${ck}>`;
    const C = `subgroup_matrix_result<f32, ${cn}, ${cm}>`;
    const frag = cm * cn;
    const accDecl: string[] = [], mma: string[] = [], out: string[] = [];
    for (let i = 0; i < FR; i++) for (let j = 0; j < FC; j++) accDecl.push(`var cm${i}_${j} = ${C}();`);
    // per k step: FR left fragments, FC right fragments, FR·FC products
    for (let i = 0; i < FR; i++) mma.push(`let am${i} = subgroupMatrixLoad<${L}>(&As, (fr0 + ${i * cm}u) * ${S}u + kk, false, ${S}u);`);
    for (let j = 0; j < FC; j++) mma.push(`let bm${j} = subgroupMatrixLoad<${Rt}>(&Bs, (fc0 + ${j * cn}u) * ${S}u + kk, true, ${S}u);`);
    for (let i = 0; i < FR; i++) for (let j = 0; j < FC; j++) mma.push(`cm${i}_${j} = subgroupMatrixMultiplyAccumulate(am${i}, bm${j}, cm${i}_${j});`);
    for (let i = 0; i < FR; i++) {
      for (let j = 0; j < FC; j++) {
        out.push(`subgroupMatrixStore(&Cs, sgi * ${frag}u, cm${i}_${j}, false, ${cn}u);
    workgroupBarrier();
    for (var e = lane; e < ${frag}u; e += ${sg}u) {
      let r = tm + fr0 + ${i * cm}u + e / ${cn}u; let c = tn + fc0 + ${j * cn}u + e % ${cn}u;
      if (r < M && c < NC) {
        var bb = 0.0;
        if (hasB != 0u) { bb = $bias[o_bias + c]; }
        $y[o_y + r * N + n0 + c] = Cs[sgi * ${frag}u + e] + bb;
      }
    }
    workgroupBarrier();`);
      }
    }
    return /* wgsl */ `
${weightReader(packed)}
var<workgroup> As: array<f32, ${TM * S}>;
var<workgroup> Bs: array<f32, ${TN * S}>;
var<workgroup> Cs: array<f32, ${nsg * frag}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
  init_offsets();
  let M = pu(PK); let K = pu(PK + 1u); let N = pu(PK + 2u); let n0 = pu(PK + 3u); let NC = pu(PK + 4u); let hasB = pu(PK + 5u);
  let tm = wg.y * ${TM}u; let tn = wg.x * ${TN}u;
  let sgi = li / ${sg}u;
  let fr0 = (sgi / ${GC}u) * ${FR * cm}u; let fc0 = (sgi % ${GC}u) * ${FC * cn}u;
  ${accDecl.join('\n  ')}
  for (var k0 = 0u; k0 < K; k0 += ${KS}u) {
    // x rows tm… and w rows tn… of the slice, k-contiguous (32 consecutive threads read one row's slice)
    for (var q = 0u; q < ${(TM * KS) / 256}u; q++) {
      let e = li + 256u * q;
      let r = e / ${KS}u; let kk = e % ${KS}u; let gk = k0 + kk;
      var a = 0.0;
      if (tm + r < M && gk < K) { a = $x[o_x + (tm + r) * K + gk]; }
      As[r * ${S}u + kk] = a;
    }
    for (var q = 0u; q < ${(TN * KS) / 256}u; q++) {
      let e = li + 256u * q;
      let r = e / ${KS}u; let kk = e % ${KS}u; let gk = k0 + kk;
      var b = 0.0;
      if (tn + r < NC && gk < K) { b = wv((tn + r) * K + gk); }
      Bs[r * ${S}u + kk] = b;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${KS}u; kk += ${ck}u) {
      ${mma.join('\n      ')}
    }
    workgroupBarrier();
  }
  ${out.join('\n  ')}
}`;
  },
};
