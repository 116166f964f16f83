/**
 * The int8 GEMM with float32-level accuracy (the Ozaki scheme: "int8 emulation of FP32 GEMM"), for devices whose
 * tensor cores WebGPU offers only as integer subgroup matrices (an H100 through Dawn: i8→i32 and u8→u32 at
 * 16×16×32, no f32 configuration). y = x·wᵀ (+ bias): both operands are split into S int8 slices per value with a
 * power-of-two exponent per row and K block (`OZAKI_SPLIT`; the arithmetic and its host reference are in
 * ../ozaki.ts), and `MATMUL_I8` sums the S(S+1)/2 slice products of levels i + j < S in int32, one accumulator
 * per level, then combines the levels and the exponents in float32. S = 1 is a plain q8×q8 product (~2⁻⁸ of the
 * row maxima), S = 3 ~2⁻²¹.
 *
 * WGSL of 8-bit subgroup matrices (Dawn's `chromium_experimental_subgroup_matrix`; sources: gpuweb/gpuweb
 * proposals/subgroup-matrix.md, the Tint intrinsic table src/tint/lang/core/core.def and Dawn commits 7f2e6480
 * "Support subgroupMatrixLoad and subgroupMatrixStore with i8 and u8", 55e62e18 / 43f5e8e6 "[spirv] Handle
 * offset / stride in subgroupMatrixLoad for i8 u8", test/tint/builtins/gen/…/subgroupMatrixLoad/*.wgsl):
 * - types `subgroup_matrix_left<i8, K, M>` (M rows × K columns), `subgroup_matrix_right<i8, N, K>` (K × N),
 *   `subgroup_matrix_result<i32, N, M>` (M × N); i8 exists only as a matrix component type;
 * - an i8 matrix is loaded from an `array<i32>` (storage or workgroup; u8 from `array<u32>`), four components
 *   per word, little-endian: `subgroupMatrixLoad<subgroup_matrix_left<i8, 32, 16>>(&arr, offset, col_major, stride)`,
 *   with `offset` and `stride` counted in i8 components, not in words (Tint divides them by 4 for SPIR-V, whose
 *   pointer is to the i32 words: keep both multiples of 4; stride ≥ the columns, or rows if col_major);
 * - `subgroupMatrixMultiplyAccumulate(left, right, acc) -> result`, `subgroupMatrixStore(&arr, offset, value,
 *   col_major, stride)` (an i32 result into an `array<i32>`, counted in i32), `subgroup_matrix_result<i32, N, M>()`
 *   is a zero matrix. Calls must be in subgroup-uniform control flow.
 * Later Dawn passes the layout as a template argument instead of the bool: `subgroupMatrixLoad<T, col_major>(p, offset,
 * stride)`, `subgroupMatrixStore<row_major>(p, offset, value, stride)` (test/tint/extensions/subgroup_matrix/*.wgsl).
 * The uniformity diagnostic `chromium.subgroup_matrix_uniformity` is turned off (wgsl.ts: offsets from the subgroup
 * index are subgroup-uniform but not workgroup-uniform). A probe elsewhere found an earlier browser build reading
 * the offsets in words; so the variant carries the unit ('e': components, as the sources say; 'w': words) and the
 * syntax ('b' bool, 't' template), and the backend's check at creation keeps the first combination that is exact.
 *
 * The GEMM: a workgroup of 256 threads computes a TM×64 tile (TM 64 or 128); K goes in steps of KS (32 or 64), the S
 * slices of the x rows and of the w rows read as 16-byte vectors and staged in workgroup memory as i32 words, rows
 * `RW` words apart (KS bytes + 16 of padding). The 256 threads are 256/G teams of G (a subgroup of G lanes with real matrices), each owning FR×FC
 * fragments of cm×cn outputs; the product step is one generated snippet with two implementations over the same
 * workgroup tiles: `subgroupMatrixMultiplyAccumulate` ('m' variants), or lanes that each own the elements
 * e = lane + G·q of a fragment and form their int32 sums with `dot4I8Packed` ('e': the emulation, for devices without
 * the feature, tests on SwiftShader). After each K block (`KBw` words) the level sums are converted: the real matrices
 * go through workgroup memory (aliasing the tiles) to the lanes, which add Σ_t float(C_t)·2^(−7(t+2)) scaled by
 * 2^(ex+ew) to float32 registers; the store adds the bias.
 */
import type { KernelSpec, SubgroupMatrixConfig } from '../runtime.js';
import { sgLayout } from './gemm.js';
import { packedSuffix, packedTypes, weightReader } from './linear.js';

/** output columns per workgroup */
const TN = 64;
/** row stride of the staged slices in workgroup memory, in i32 words: KS bytes of K and 16 of padding */
const rowWords = (ks: number) => ks / 4 + 4;

/** the i8→i32 subgroup-matrix configuration the int8 GEMM runs with, or null */
export function int8MatrixConfig(configs: readonly SubgroupMatrixConfig[]): SubgroupMatrixConfig | null {
  const ok = configs.filter((c) => c.componentType === 'i8' && c.resultComponentType === 'i32' && 64 % c.M === 0 && TN % c.N === 0 && 32 % c.K === 0 && c.K % 4 === 0);
  ok.sort((a, b) => b.M * b.N * b.K - a.M * a.N * a.K);
  return ok[0] ?? null;
}

export interface Int8Variant {
  /** slices per value (1…4) */
  S: number;
  /** tile rows (64 or 128) */
  tm: number;
  /** K per staged step (32 or 64) */
  ks: number;
  /** fragment shape (rows × columns × K of one product) */
  cm: number;
  cn: number;
  ck: number;
  /** lanes per team (the subgroup size with real matrices) */
  G: number;
  /** subgroup matrices: offsets counted in components ('e') or words ('w'); null: the emulation */
  mma: null | 'e' | 'w';
  /** how the layout is passed: 'b' a bool argument (`…Load<T>(p, off, col_major, stride)`), 't' a template argument (`…Load<T, col_major>(p, off, stride)`) */
  syntax?: 'b' | 't';
}

/** `s${S}t${tm}k${ks}f${cm}x${cn}x${ck}g${G}` + 'e' (emulated) or 'm' + offset unit + layout syntax ('meb', 'met', 'mwb', 'mwt') */
export function int8VariantKey(v: Int8Variant): string {
  return `s${v.S}t${v.tm}k${v.ks}f${v.cm}x${v.cn}x${v.ck}g${v.G}${v.mma ? `m${v.mma}${v.syntax ?? 'b'}` : 'e'}`;
}

export function parseInt8Variant(key: string): Int8Variant {
  const m = /^s([1-4])t(64|128)k(32|64)f(\d+)x(\d+)x(\d+)g(\d+)(m[ew][bt]|e)$/.exec(key);
  if (!m) throw new Error(`matmul_int8: bad variant ${JSON.stringify(key)} (want e.g. s3t64k32f16x16x32g32meb)`);
  const [S, tm, ks, cm, cn, ck, G] = m.slice(1, 8).map(Number);
  const v: Int8Variant = m[8] === 'e' ? { S, tm, ks, cm, cn, ck, G, mma: null } : { S, tm, ks, cm, cn, ck, G, mma: m[8][1] as 'e' | 'w', syntax: m[8][2] as 'b' | 't' };
  const err = int8VariantError(v);
  if (err) throw new Error(`matmul_int8: variant ${key}: ${err}`);
  return v;
}

/** why a variant cannot be generated (null if it can) */
export function int8VariantError(v: Int8Variant): string | null {
  if (v.G <= 0 || 256 % v.G !== 0) return `teams of ${v.G} lanes do not divide 256 threads`;
  if (v.ks !== 32 && v.ks !== 64) return `K step ${v.ks} (32 or 64)`;
  if (v.tm % v.cm !== 0 || TN % v.cn !== 0 || v.ks % v.ck !== 0 || v.ck % 4 !== 0) return `fragment ${v.cm}×${v.cn}×${v.ck} does not tile ${v.tm}×${TN}×${v.ks}`;
  if ((v.cm * v.cn) % v.G !== 0) return `a ${v.cm}×${v.cn} fragment does not split over ${v.G} lanes`;
  if (!sgLayout({ M: v.cm, N: v.cn }, 256 / v.G, v.tm)) return `${v.tm}×${TN} tile does not split over ${256 / v.G} teams of ${v.cm}×${v.cn} fragments`;
  return null;
}

/** bytes of workgroup memory of a variant (the staged tiles; the real matrices' conversion area aliases them) */
export function int8WorkgroupBytes(v: Int8Variant): number {
  return 4 * Math.max(v.S * (v.tm + TN) * rowWords(v.ks), v.mma ? (256 / v.G) * v.cm * v.cn : 0);
}

/**
 * x [R, K] f32 (or bf16 / q8 weights, variant suffix 'b' / 'q', read by linear.ts's `weightReader`) → q [S, R, Kw] u32 (4 int8 slices of consecutive k per word,
 * k = 4w + b in byte b; zero past K) and e [R, nblk] (each row block's exponent, as a float). One workgroup of 64
 * per (row, block): the block's max |x|, frexp's exponent, the slices (see ../ozaki.ts).
 * Variant `${S}`, `${S}b` or `${S}q`. params: R, K, Kw, KB, nblk
 */
export const OZAKI_SPLIT: KernelSpec = {
  name: 'ozaki_split',
  roles: ['x', 'q', 'e'],
  writes: ['q', 'e'],
  types: (v): Record<string, string> => ({ ...packedTypes('x')(packedSuffix(v)), q: 'u32' }),
  wgsl: (v) => {
    const S = parseInt(v, 10);
    if (!(S >= 1 && S <= 4)) throw new Error(`ozaki_split: bad variant ${v}`);
    const read = `${weightReader(packedSuffix(v), 'x')}\nfn xv(i: u32) -> f32 { return wv(i); }`;
    const slices: string[] = [];
    for (let s = 0; s < S; s++) {
      slices.push(s + 1 < S
        ? `{ let d = trunc(t); w${s} |= (bitcast<u32>(i32(d)) & 0xffu) << (8u * b); t = (t - d) * 128.0; }`
        : `{ let d = clamp(round(t), -127.0, 127.0); w${s} |= (bitcast<u32>(i32(d)) & 0xffu) << (8u * b); }`);
    }
    return /* wgsl */ `
${read}
var<workgroup> red: array<f32, 64>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let R = pu(PK); let K = pu(PK + 1u); let Kw = pu(PK + 2u); let KB = pu(PK + 3u); let nblk = pu(PK + 4u);
  let id = lin(wg, nw);
  let row = id / nblk; let blk = id % nblk;
  if (row >= R) { return; }
  let k0 = blk * KB; let k1 = min(K, k0 + KB);
  var m = 0.0;
  for (var k = k0 + li; k < k1; k += 64u) { m = max(m, abs(xv(row * K + k))); }
  red[li] = m;
  workgroupBarrier();
  for (var h = 32u; h > 0u; h >>= 1u) {
    if (li < h) { red[li] = max(red[li], red[li + h]); }
    workgroupBarrier();
  }
  let mx = red[0];
  var ex = 0i;
  if (mx > 0.0) { ex = frexp(mx).exp; }
  if (li == 0u) { $e[o_e + row * nblk + blk] = f32(ex); }
  let w1 = min(Kw, (k0 + KB) / 4u);
  for (var w = k0 / 4u + li; w < w1; w += 64u) {
    ${Array.from({ length: S }, (_, s) => `var w${s} = 0u;`).join(' ')}
    for (var b = 0u; b < 4u; b++) {
      let k = 4u * w + b;
      var xk = 0.0;
      if (k < K) { xk = xv(row * K + k); }
      var t = ldexp(xk, 7i - ex);
      ${slices.join('\n      ')}
    }
    ${Array.from({ length: S }, (_, s) => `$q[o_q + (${s}u * R + row) * Kw + w] = w${s};`).join('\n    ')}
  }
}`;
  },
};

/**
 * y[M, N] = x·wᵀ (+ bias) from the splits of x ([S, M, Kw] words, exponents [M, nblk]) and of w ([S, nb, Kw],
 * [nb, nblk]); see the module comment. Variant: `int8VariantKey`.
 * params: M, Kw, N, n0, nb, hasBias, KBw (words per K block), nblk
 */
export const MATMUL_I8: KernelSpec = {
  name: 'matmul_int8',
  roles: ['xq', 'xe', 'wq', 'we', 'bias', 'y'],
  writes: ['y'],
  types: () => ({ xq: 'vec4<u32>', wq: 'vec4<u32>' }),
  wgsl: (key) => int8Wgsl(parseInt8Variant(key)),
};

function int8Wgsl(v: Int8Variant): string {
  const { S, tm: TM, ks: KS, cm, cn, ck, G, mma } = v;
  const RW = rowWords(KS), KV = KS / 16; // words per staged row, 16-byte loads per row per step
  const nsg = 256 / G;
  const { FR, FC, GC } = sgLayout({ M: cm, N: cn }, nsg, TM)!;
  const frag = cm * cn, PER = frag / G, NF = FR * FC;
  const BOFF = S * TM * RW; // where the w slices start in the tile memory
  const lines: string[] = [];
  const level = (t: number) => `${2 ** (-7 * (t + 2))}`;
  // staging of one K step: S slices of TM x rows and of 64 w rows, KS/4 words each, read as 16-byte vectors
  // (rows are whole vectors: Kw and k0 are multiples of 8 words, the stores' offsets of 16 words)
  const stageOne = (role: string, rows: number, limit: string, r0: string, base: string) => {
    const units = S * rows * KV;
    return `for (var q = 0u; q < ${Math.ceil(units / 256)}u; q++) {
        let e = li + 256u * q;
        if (${units % 256 === 0 ? 'true' : `e < ${units}u`}) {
          let s = e / ${rows * KV}u; let r = (e / ${KV}u) % ${rows}u; let kv = e % ${KV}u;
          var a = vec4<i32>(0i);
          if (${r0} + r < ${limit}) { a = bitcast<vec4<i32>>($${role}[(o_${role} + (s * ${limit} + ${r0} + r) * Kw + k0) / 4u + kv]); }
          let d = ${base}(s * ${rows}u + r) * ${RW}u + kv * 4u;
          T[d] = a.x; T[d + 1u] = a.y; T[d + 2u] = a.z; T[d + 3u] = a.w;
        }
      }`;
  };
  const stage = `${stageOne('xq', TM, 'M', 'tm', '')}
      ${stageOne('wq', TN, 'NC', 'tn', `${BOFF}u + `)}`;
  // where fragment row/column `base` of slice s starts in T (in words)
  const aRow = (s: number, ii: number) => `(${s * TM}u + fr0 + ${ii * cm}u) * ${RW}u`;
  const bRow = (s: number, jj: number) => `${BOFF}u + (${s * TN}u + fc0 + ${jj * cn}u) * ${RW}u`;
  let decl: string, step: string, flush: string;
  if (mma) {
    const L = `subgroup_matrix_left<i8, ${ck}, ${cm}>`, R = `subgroup_matrix_right<i8, ${cn}, ${ck}>`, C = `subgroup_matrix_result<i32, ${cn}, ${cm}>`;
    const unit = mma === 'e' ? 4 : 1; // offsets and strides: i8 components or words
    const kOff = mma === 'e' ? 'kk' : 'kk / 4u';
    const ds: string[] = [];
    for (let t = 0; t < S; t++) for (let f = 0; f < NF; f++) ds.push(`var c${t}_${f} = ${C}();`);
    decl = ds.join('\n  ');
    const st: string[] = [];
    const tpl = v.syntax === 't';
    const load = (ty: string, off: string, col: boolean) => (tpl ? `subgroupMatrixLoad<${ty}, ${col ? 'col' : 'row'}_major>(&T, ${off}, ${RW * unit}u)` : `subgroupMatrixLoad<${ty}>(&T, ${off}, ${col}, ${RW * unit}u)`);
    for (let s = 0; s < S; s++) for (let ii = 0; ii < FR; ii++) st.push(`let a${s}_${ii} = ${load(L, `${aRow(s, ii)} * ${unit}u + ${kOff}`, false)};`);
    for (let s = 0; s < S; s++) for (let jj = 0; jj < FC; jj++) st.push(`let b${s}_${jj} = ${load(R, `(${bRow(s, jj)}) * ${unit}u + ${kOff}`, true)};`);
    for (let t = 0; t < S; t++) {
      for (let i = 0; i <= t; i++) {
        for (let ii = 0; ii < FR; ii++) for (let jj = 0; jj < FC; jj++) st.push(`c${t}_${ii * FC + jj} = subgroupMatrixMultiplyAccumulate(a${i}_${ii}, b${t - i}_${jj}, c${t}_${ii * FC + jj});`);
      }
    }
    step = `for (var kk = 0u; kk < ${KS}u; kk += ${ck}u) {
        ${st.join('\n        ')}
      }`;
    // the level sums through workgroup memory (the tiles are free: the K step ended with a barrier)
    const fl: string[] = [];
    for (let f = 0; f < NF; f++) {
      for (let t = 0; t < S; t++) {
        fl.push(`${tpl ? `subgroupMatrixStore<row_major>(&T, sgi * ${frag}u, c${t}_${f}, ${cn}u)` : `subgroupMatrixStore(&T, sgi * ${frag}u, c${t}_${f}, false, ${cn}u)`};
    workgroupBarrier();
    for (var q = 0u; q < ${PER}u; q++) { lv[${f * PER}u + q] += f32(T[sgi * ${frag}u + lane + ${G}u * q]) * ${level(t)}; }
    workgroupBarrier();
    c${t}_${f} = ${C}();`);
      }
    }
    flush = fl.join('\n    ');
  } else {
    decl = `var ci: array<i32, ${S * NF * PER}>;
  for (var i = 0u; i < ${S * NF * PER}u; i++) { ci[i] = 0i; }`;
    // (the pairs as loops, not unrolled: SwiftShader compiles the unrolled form 5–10× slower)
    step = `for (var f = 0u; f < ${NF}u; f++) {
        let ii = f / ${FC}u; let jj = f % ${FC}u;
        for (var q = 0u; q < ${PER}u; q++) {
          let el = lane + ${G}u * q;
          let ar = (fr0 + ii * ${cm}u + el / ${cn}u) * ${RW}u; let br = ${BOFF}u + (fc0 + jj * ${cn}u + el % ${cn}u) * ${RW}u;
          for (var t = 0u; t < ${S}u; t++) {
            var c = 0i;
            for (var i = 0u; i <= t; i++) {
              let a0 = ar + i * ${TM * RW}u; let b0 = br + (t - i) * ${TN * RW}u;
              for (var w = 0u; w < ${KS / 4}u; w++) { c += dot4I8Packed(bitcast<u32>(T[a0 + w]), bitcast<u32>(T[b0 + w])); }
            }
            ci[t * ${NF * PER}u + f * ${PER}u + q] += c;
          }
        }
      }`;
    const fl: string[] = [];
    for (let t = 0; t < S; t++) fl.push(`lv[i] += f32(ci[${t * NF * PER}u + i]) * ${level(t)}; ci[${t * NF * PER}u + i] = 0i;`);
    flush = `for (var i = 0u; i < ${NF * PER}u; i++) {
      ${fl.join('\n      ')}
    }`;
  }
  // element i = f·PER + q of the lane: fragment f = ii·FC + jj, element lane + G·q of it
  const rowOf = `tm + fr0 + (i / ${PER}u / ${FC}u) * ${cm}u + (lane + ${G}u * (i % ${PER}u)) / ${cn}u`;
  const colOf = `tn + fc0 + ((i / ${PER}u) % ${FC}u) * ${cn}u + (lane + ${G}u * (i % ${PER}u)) % ${cn}u`;
  lines.push(/* wgsl */ `
var<workgroup> T: array<i32, ${int8WorkgroupBytes(v) / 4}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let Kw = pu(PK + 1u); let N = pu(PK + 2u); let n0 = pu(PK + 3u); let NC = pu(PK + 4u); let hasB = pu(PK + 5u);
  let KBw = pu(PK + 6u); let nblk = pu(PK + 7u);
  let tm = wg.y * ${TM}u; let tn = wg.x * ${TN}u;
  let sgi = li / ${G}u; let lane = li % ${G}u;
  let fr0 = (sgi / ${GC}u) * ${FR * cm}u; let fc0 = (sgi % ${GC}u) * ${FC * cn}u;
  var acc: array<f32, ${NF * PER}>;
  var lv: array<f32, ${NF * PER}>;
  for (var i = 0u; i < ${NF * PER}u; i++) { acc[i] = 0.0; lv[i] = 0.0; }
  ${decl}
  for (var kb0 = 0u; kb0 < Kw; kb0 += KBw) {
    let blk = kb0 / KBw;
    let ke = min(Kw, kb0 + KBw);
    for (var k0 = kb0; k0 < ke; k0 += ${KS / 4}u) {
      ${stage}
      workgroupBarrier();
      ${step}
      workgroupBarrier();
    }
    ${flush}
    for (var i = 0u; i < ${NF * PER}u; i++) {
      let r = ${rowOf}; let c = ${colOf};
      if (r < M && c < NC) { acc[i] += ldexp(lv[i], i32($xe[o_xe + r * nblk + blk] + $we[o_we + c * nblk + blk])); }
      lv[i] = 0.0;
    }
  }
  for (var i = 0u; i < ${NF * PER}u; i++) {
    let r = ${rowOf}; let c = ${colOf};
    if (r < M && c < NC) {
      var bb = 0.0;
      if (hasB != 0u) { bb = $bias[o_bias + c]; }
      $y[o_y + r * N + n0 + c] = acc[i] + bb;
    }
  }
}`);
  return lines.join('\n');
}
