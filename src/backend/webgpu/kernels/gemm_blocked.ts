/**
 * The register-blocked linear y[M, N] = x[M, K]·wᵀ (+ bias), w [N, K] row-major, for prefill (M in the
 * thousands) and for decode batches (M = 9…128 rows, "skinny" M), with optional split-K.
 *
 * A workgroup computes a BM×BN output tile with (BM/TM)·(BN/TN) threads, TM×TN outputs each held in registers
 * as vec4s: a thread's rows are TM/4 runs of 4 consecutive rows, strided by 4·(BM/TM) (and its columns likewise),
 * so that its reads of the staged slices are whole vec4s and a warp's stores cover contiguous columns.
 * K goes in slices of BK, staged k-major in workgroup memory (`As[k][m]`, `Bs[k][n]`, rows padded by 4 floats:
 * the transposing stores of two adjacent k-runs land on disjoint banks), double-buffered: the next slice is
 * loaded from memory into registers while the current one is multiplied, then stored into the other buffer
 * (one barrier per slice). Global loads take 4 consecutive k of a row (8 for bf16 weights): weights as 16-byte
 * vectors (format 'f': vec4<f32>, 'b': vec4<u32> = 8 packed bf16; 'x': scalar f32 for rows that are not whole
 * vectors; 'q': q8 superblocks (q8.ts), 4 k as one word of int8 and the block's scale, dequantized in the load),
 * the activations as 4 scalars (they share their buffer with other activations, so cannot be typed).
 * Two adjacent threads take adjacent 4-k runs of one row, so a warp reads whole 32-byte sectors.
 *
 * Split-K (variant suffix 's'): workgroup z multiplies k ∈ [z·KC, min(K, (z+1)·KC)) and writes its partial sums,
 * without bias, to `y` as [S, M, nb]; `SPLITK_REDUCE` then adds the S partials and the bias into the output.
 * Every kernel here is deterministic (no atomics).
 *
 * Variant: `${BM}x${BN}k${BK}t${TM}x${TN}${fmt}[s]`, e.g. '128x128k8t8x8f'. The configurations the backend
 * picks from are in `BLOCKED_CONFIGS`; `blockedPlan` chooses one (and the split) for a shape.
 * params: M, K, N, n0, nb, hasBias, KC (the K range of one split; K without split), SX (x's row stride: K, or wider
 * for a piece of a wider tensor read in place)
 */
import type { KernelSpec } from '../runtime.js';
import { weightTypes, type MatvecFormat } from './matvec.js';
import { q8Fns } from './q8.js';

export interface BlockedConfig {
  bm: number;
  bn: number;
  bk: number;
  tm: number;
  tn: number;
}

/**
 * The named tile configurations (the bench sweeps them; the planner uses the P and S ones):
 * prefill 'p128' (128×128, 8×8 per thread), 'p128x64' (8×4 per thread), 'p64' (64×64, 4×4 per thread);
 * decode batches 's16' / 's32' / 's64' (BM = the rows rounded up, 64 columns, 4×4 per thread, 64–256 threads).
 */
export const BLOCKED_CONFIGS: Readonly<Record<string, string>> = {
  p128: '128x128k8t8x8',
  p128x64: '128x64k16t8x4',
  p64: '64x64k16t4x4',
  p64x128: '64x128k16t4x8',
  s16: '16x64k32t4x4',
  s32: '32x64k32t4x4',
  s64: '64x64k16t4x4',
  s64x128: '64x128k16t8x4',
};

const PAD = 4;

export function parseBlocked(v: string): BlockedConfig & { fmt: MatvecFormat; split: boolean } {
  const m = /^(\d+)x(\d+)k(\d+)t(\d+)x(\d+)([fbxq])(s?)$/.exec(v);
  if (!m) throw new Error(`matmul_blocked: bad variant ${JSON.stringify(v)} (want e.g. 128x128k8t8x8f)`);
  const [bm, bn, bk, tm, tn] = m.slice(1, 6).map(Number);
  const c = { bm, bn, bk, tm, tn, fmt: m[6] as MatvecFormat, split: m[7] === 's' };
  const err = blockedConfigError(c, c.fmt);
  if (err) throw new Error(`matmul_blocked: variant ${v}: ${err}`);
  return c;
}

/** why a configuration cannot run (null if it can): thread count, vector multiples, bf16 runs of 8 */
export function blockedConfigError(c: BlockedConfig, fmt: MatvecFormat): string | null {
  const { bm, bn, bk, tm, tn } = c;
  if (tm % 4 !== 0 || tn % 4 !== 0 || bm % tm !== 0 || bn % tn !== 0) return `tile ${bm}×${bn} with ${tm}×${tn} per thread (multiples of 4 that divide the tile)`;
  const nt = (bm / tm) * (bn / tn);
  if (nt < 32 || nt > 256 || nt % 32 !== 0) return `${nt} threads (32…256, a multiple of 32)`;
  if (bk % (fmt === 'b' ? 8 : 4) !== 0) return `BK ${bk} (a multiple of ${fmt === 'b' ? 8 : 4})`;
  return null;
}

/** bytes of workgroup memory of a configuration (both buffers) */
export function blockedWorkgroupBytes(c: BlockedConfig): number {
  return 2 * c.bk * (c.bm + PAD + c.bn + PAD) * 4;
}

export interface BlockedPlan {
  /** the variant key (split suffix included) */
  variant: string;
  bm: number;
  bn: number;
  /** K range per split, and the number of splits (1: no partials) */
  kc: number;
  splits: number;
}

/**
 * The configuration and split of an [M, K] × [nb, K]ᵀ product. `config` forces one (a BLOCKED_CONFIGS name or a
 * variant base such as '128x64k16t8x4'), `splits` a split count; else by shape: 128×128 tiles where their grid
 * still covers `cores` compute units, then 128×64, then 64×64; skinny M (≤ 128 rows) takes BM = M rounded up to
 * 16/32/64. A grid of fewer tiles than `cores` has K split (in multiples of BK, each part ≥ 128) until about
 * `cores` · 512 threads are busy.
 */
export function blockedPlan(M: number, nb: number, K: number, fmt: MatvecFormat, cores: number, wgBytes: number, config?: string, splits?: number): BlockedPlan {
  let base: string;
  if (config) base = BLOCKED_CONFIGS[config] ?? config;
  else if (M <= 16) base = BLOCKED_CONFIGS.s16;
  else if (M <= 32) base = BLOCKED_CONFIGS.s32;
  else if (M <= 128) base = BLOCKED_CONFIGS.s64;
  else if (Math.ceil(M / 128) * Math.ceil(nb / 128) >= cores) base = BLOCKED_CONFIGS.p128;
  else if (Math.ceil(M / 128) * Math.ceil(nb / 64) >= cores) base = BLOCKED_CONFIGS.p128x64;
  else base = BLOCKED_CONFIGS.p64;
  const c = parseBlocked(base + fmt);
  if (blockedWorkgroupBytes(c) > wgBytes) throw new Error(`matmul_blocked: ${base} needs ${blockedWorkgroupBytes(c)} bytes of workgroup memory, the adapter allows ${wgBytes}`);
  const tiles = Math.ceil(M / c.bm) * Math.ceil(nb / c.bn);
  const nt = (c.bm / c.tm) * (c.bn / c.tn);
  let s = splits ?? 1;
  if (splits === undefined) {
    // only grids short of one workgroup per compute unit are split (the partials cost a write and a read of M·N·S)
    const want = tiles < cores ? (cores * 512) / nt : 0;
    while (tiles * s < want && K / (s * 2) >= 128) s *= 2;
  }
  if (!Number.isInteger(s) || s < 1) throw new Error(`matmul_blocked: splits must be a positive integer, got ${s}`);
  const kc = Math.ceil(Math.ceil(K / s) / c.bk) * c.bk;
  const S = Math.ceil(K / kc);
  return { variant: base + fmt + (S > 1 ? 's' : ''), bm: c.bm, bn: c.bn, kc, splits: S };
}

export const MATMUL_BLOCKED: KernelSpec = {
  name: 'matmul_blocked',
  roles: ['x', 'w', 'bias', 'y'],
  writes: ['y'],
  types: (v) => weightTypes(parseBlocked(v).fmt),
  wgsl: (v) => blockedWgsl(parseBlocked(v)),
};

function blockedWgsl(c: BlockedConfig & { fmt: MatvecFormat; split: boolean }): string {
  const { bm, bn, bk, tm, tn, fmt, split } = c;
  const RT = bm / tm, CT = bn / tn, NT = RT * CT;
  const RG = tm / 4, CG = tn / 4;
  const AP = (bm + PAD) / 4, BP = (bn + PAD) / 4; // vec4s per staged k row
  const ASZ = bk * AP, BSZ = bk * BP;
  const bu = fmt === 'b' ? 8 : 4; // k per weight load
  // loads: A in runs of 4 k, B in runs of bu k; `units` per row per slice, paired so a warp reads whole sectors
  const aUnits = (bm * bk) / 4, bUnits = (bn * bk) / bu;
  const lines: string[] = [];
  const unitMap = (c_: string, rows: number, upr: number) =>
    upr === 1 ? `let row = ${c_} % ${rows}u; let u = ${c_} / ${rows}u;` : `let row = (${c_} / 2u) % ${rows}u; let u = (${c_} / ${2 * rows}u) * 2u + ${c_} % 2u;`;
  const aLoads: string[] = [], aStores: string[] = [], bLoads: string[] = [], bStores: string[] = [];
  for (let q = 0; q * NT < aUnits; q++) {
    const guard = (q + 1) * NT > aUnits ? `ca < ${aUnits}u` : 'true';
    aLoads.push(`{ let ca = li + ${q * NT}u; ra${q} = vec4<f32>(0.0);
      if (${guard}) { ${unitMap('ca', bm, bk / 4)}
        let r = tm + row; let gk = k0 + u * 4u;
        if (r < M && gk < ke) {
          let p = o_x + r * SX + gk;
          if (gk + 3u < ke) { ra${q} = vec4<f32>($x[p], $x[p + 1u], $x[p + 2u], $x[p + 3u]); }
          else { for (var i = 0u; i < 3u; i++) { if (gk + i < ke) { ra${q}[i] = $x[p + i]; } } }
        }
      } }`);
    aStores.push(`{ let ca = li + ${q * NT}u;
      if (${guard}) { ${unitMap('ca', bm, bk / 4)}
        for (var i = 0u; i < 4u; i++) { As[nbuf * ${ASZ}u + (u * 4u + i) * ${AP}u + row / 4u][row % 4u] = ra${q}[i]; }
      } }`);
  }
  for (let q = 0; q * NT < bUnits; q++) {
    const guard = (q + 1) * NT > bUnits ? `cb < ${bUnits}u` : 'true';
    const decl = fmt === 'b' ? 'vec4<u32>' : 'vec4<f32>';
    let load: string;
    if (fmt === 'f') load = `rb${q} = $w[o_w / 4u + n * (K / 4u) + gk / 4u];`;
    else if (fmt === 'b') load = `rb${q} = $w[o_w / 4u + n * (K / 8u) + gk / 8u];`;
    else if (fmt === 'q') load = `let e = n * K + gk; let g = e >> 5u; rb${q} = q8x4(q8at(g, (e >> 4u) & 1u)[(e >> 2u) & 3u]) * q8sc(g);`;
    else {
      load = `let p = o_w + n * K + gk;
          if (gk + 3u < ke) { rb${q} = vec4<f32>($w[p], $w[p + 1u], $w[p + 2u], $w[p + 3u]); }
          else { for (var i = 0u; i < 3u; i++) { if (gk + i < ke) { rb${q}[i] = $w[p + i]; } } }`;
    }
    bLoads.push(`{ let cb = li + ${q * NT}u; rb${q} = ${decl}(0${fmt === 'b' ? 'u' : '.0'});
      if (${guard}) { ${unitMap('cb', bn, bk / bu)}
        let n = tn + row; let gk = k0 + u * ${bu}u;
        if (n < NC && gk < ke) { ${load} }
      } }`);
    const store = fmt === 'b'
      ? `let lo = bitcast<vec4<f32>>(rb${q} << vec4<u32>(16u)); let hi = bitcast<vec4<f32>>(rb${q} & vec4<u32>(0xffff0000u));
        for (var i = 0u; i < 4u; i++) {
          Bs[nbuf * ${BSZ}u + (u * 8u + 2u * i) * ${BP}u + row / 4u][row % 4u] = lo[i];
          Bs[nbuf * ${BSZ}u + (u * 8u + 2u * i + 1u) * ${BP}u + row / 4u][row % 4u] = hi[i];
        }`
      : `for (var i = 0u; i < 4u; i++) { Bs[nbuf * ${BSZ}u + (u * 4u + i) * ${BP}u + row / 4u][row % 4u] = rb${q}[i]; }`;
    bStores.push(`{ let cb = li + ${q * NT}u;
      if (${guard}) { ${unitMap('cb', bn, bk / bu)}
        ${store}
      } }`);
  }
  const nA = Math.ceil(aUnits / NT), nB = Math.ceil(bUnits / NT);
  const regs = [...Array.from({ length: nA }, (_, q) => `var ra${q} = vec4<f32>(0.0);`), ...Array.from({ length: nB }, (_, q) => `var rb${q} = ${fmt === 'b' ? 'vec4<u32>(0u)' : 'vec4<f32>(0.0)'};`)];
  const acc: string[] = [];
  for (let i = 0; i < tm; i++) for (let h = 0; h < CG; h++) acc.push(`var c${i}_${h} = vec4<f32>(0.0);`);
  const fmas: string[] = [];
  for (let g = 0; g < RG; g++) fmas.push(`let av${g} = As[ab + ${g * RT}u + ty];`);
  for (let h = 0; h < CG; h++) fmas.push(`let bw${h} = Bs[bb + ${h * CT}u + tx];`);
  for (let g = 0; g < RG; g++) for (let i = 0; i < 4; i++) for (let h = 0; h < CG; h++) fmas.push(`c${g * 4 + i}_${h} = fma(vec4<f32>(av${g}.${'xyzw'[i]}), bw${h}, c${g * 4 + i}_${h});`);
  const out: string[] = [];
  for (let h = 0; h < CG; h++) {
    out.push(`{ let c = tn + ${h * CT * 4}u + tx * 4u;`);
    if (!split) out.push(`  var bv = vec4<f32>(0.0);
    if (hasB != 0u) { for (var e = 0u; e < 4u; e++) { if (c + e < NC) { bv[e] = $bias[o_bias + c + e]; } } }`);
    for (let g = 0; g < RG; g++) {
      for (let i = 0; i < 4; i++) {
        const v = `c${g * 4 + i}_${h}`;
        const dst = split ? `o_y + (wg.z * M + r) * NC + c` : `o_y + r * N + n0 + c`;
        out.push(`  { let r = tm + ${g * RT * 4 + i}u + ty * 4u;
    if (r < M) { let v = ${v}${split ? '' : ' + bv'}; let d = ${dst};
      if (c + 3u < NC) { $y[d] = v.x; $y[d + 1u] = v.y; $y[d + 2u] = v.z; $y[d + 3u] = v.w; }
      else { for (var e = 0u; e < 3u; e++) { if (c + e < NC) { $y[d + e] = v[e]; } } } } }`);
      }
    }
    out.push('}');
  }
  lines.push(/* wgsl */ `${fmt === 'q' ? q8Fns() : ''}
var<workgroup> As: array<vec4<f32>, ${2 * ASZ}>;
var<workgroup> Bs: array<vec4<f32>, ${2 * BSZ}>;
@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let K = pu(PK + 1u); let N = pu(PK + 2u); let n0 = pu(PK + 3u); let NC = pu(PK + 4u); let hasB = pu(PK + 5u); let KC = pu(PK + 6u); let SX = pu(PK + 7u);
  let tm = wg.y * ${bm}u; let tn = wg.x * ${bn}u;
  let kb = wg.z * KC; let ke = min(K, kb + KC);
  let tx = li % ${CT}u; let ty = li / ${CT}u;
  ${regs.join('\n  ')}
  ${acc.join('\n  ')}
  let nt = (ke - kb + ${bk - 1}u) / ${bk}u;
  var k0 = kb;
  var nbuf = 0u;
  ${aLoads.join('\n  ')}
  ${bLoads.join('\n  ')}
  ${aStores.join('\n  ')}
  ${bStores.join('\n  ')}
  workgroupBarrier();
  for (var t = 0u; t < nt; t++) {
    let cur = t % 2u;
    nbuf = 1u - cur;
    k0 = kb + (t + 1u) * ${bk}u;
    let more = t + 1u < nt;
    if (more) {
      ${aLoads.join('\n      ')}
      ${bLoads.join('\n      ')}
    }
    for (var kk = 0u; kk < ${bk}u; kk++) {
      let ab = cur * ${ASZ}u + kk * ${AP}u; let bb = cur * ${BSZ}u + kk * ${BP}u;
      ${fmas.join('\n      ')}
    }
    if (more) {
      ${aStores.join('\n      ')}
      ${bStores.join('\n      ')}
    }
    workgroupBarrier();
  }
  ${out.join('\n  ')}
}`);
  return lines.join('\n');
}

/**
 * y[r, n0 + c] = Σ_s part[s, r, c] (+ bias[c]) for the S partial sums of a split-K MATMUL_BLOCKED.
 * params: M, N, n0, nb, hasBias, S
 */
export const SPLITK_REDUCE: KernelSpec = {
  name: 'splitk_reduce',
  roles: ['p', 'bias', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let N = pu(PK + 1u); let n0 = pu(PK + 2u); let nb = pu(PK + 3u); let hasB = pu(PK + 4u); let S = pu(PK + 5u);
  let i = lin(wg, nw) * 256u + li;
  if (i >= M * nb) { return; }
  let r = i / nb; let c = i % nb;
  var s = 0.0;
  if (hasB != 0u) { s = $bias[o_bias + c]; }
  for (var z = 0u; z < S; z++) { s += $p[o_p + z * M * nb + i]; }
  $y[o_y + r * N + n0 + c] = s;
}`,
};

/**
 * The split-K reduce of a decode batch's product with the ops that follow it fused in (a workgroup per row, the
 * rows whole: one block of columns): y = Σ_s part[s] (+ bias), in SPLITK_REDUCE's order; flag 2: y2 = y + res (the
 * residual add); flag 4: h = nw · v · rsqrt(mean(v²) + eps) with v = y2 (or y), the RMSNorm of the next layer.
 * Deterministic (no atomics). Variant: S, the number of partials (compiled in, so the loads unroll).
 * params: M, N, flags (1 bias, 2 residual, 4 norm), eps
 */
export const SPLITK_ROWS: KernelSpec = {
  name: 'splitk_rows',
  roles: ['p', 'bias', 'res', 'nw', 'y', 'y2', 'h'],
  writes: ['y', 'y2', 'h'],
  wgsl: (v) => {
    const S = Number(v);
    if (!Number.isInteger(S) || S < 1) throw new Error(`splitk_rows: bad variant ${JSON.stringify(v)} (want the number of partials)`);
    return /* wgsl */ `
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let N = pu(PK + 1u); let flags = pu(PK + 2u); let eps = pf(PK + 3u);
  let row = lin(wg, nw);
  if (row >= M) { return; }
  let hasB = (flags & 1u) != 0u; let hasR = (flags & 2u) != 0u; let hasN = (flags & 4u) != 0u;
  var ss = 0.0;
  for (var c = li; c < N; c += 256u) {
    let i = row * N + c;
    var s = 0.0;
    if (hasB) { s = $bias[o_bias + c]; }
    for (var z = 0u; z < ${S}u; z++) { s += $p[o_p + z * M * N + i]; }
    $y[o_y + i] = s;
    if (hasR) { s = $res[o_res + i] + s; $y2[o_y2 + i] = s; }
    ss += s * s;
  }
  if (!hasN) { return; }
  red[li] = ss;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k >>= 1u) {
    if (li < k) { red[li] += red[li + k]; }
    workgroupBarrier();
  }
  let r = 1.0 / sqrt(red[0] / f32(N) + eps);
  for (var c = li; c < N; c += 256u) {
    let i = row * N + c;
    var s = $y[o_y + i];
    if (hasR) { s = $y2[o_y2 + i]; }
    $h[o_h + i] = $nw[o_nw + c] * (s * r);
  }
}`;
  },
};
