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
 * Variant: `${BM}x${BN}k${BK}t${TM}x${TN}[flags]${fmt}[s]`, e.g. '128x128k8t8x8f'. The configurations the backend
 * picks from are in `BLOCKED_CONFIGS`; `blockedPlan` chooses one (and the split) for a shape, or a tuned table
 * (`GemmTuned`) names one per shape. Flags (code variants for the sweep, `BlockedOpts`; none: the kernel above):
 * '_v' activations as 16-byte loads through a second, vec4-typed binding of x (role `xv`; param XV = 0 falls back to
 * scalar loads where x's offset or row stride is not a multiple of 4 or x shares its buffer with the output — the
 * backend allocates such an output from its side pool instead, DeviceMemory.sidePool), '_m' A
 * staged m-major (vec4 stores, 4 k per read), '_g' A not staged but broadcast from registers by subgroupShuffle,
 * '_b1' one slice buffer instead of two, '_w<G>' workgroups rasterised in groups of G tile rows (L2 reuse of weights),
 * '_q<W>' warp tiling (a warp's 32 lanes hold W × 32/W threads of the thread grid).
 * params: M, K, N, n0, nb, hasBias, KC (the K range of one split; K without split), SX (x's row stride: K, or wider
 * for a piece of a wider tensor read in place), XV (flag '_v' only: 1 where `xv` is x, typed)
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
  /** code options (variant flags; all off in the named configurations): see `BLOCKED_FLAGS` */
  opts?: BlockedOpts;
}

/** The code variants of the blocked kernel, as flags after the tile in a variant key (`128x128k16t8x8_v_w8f`). */
export interface BlockedOpts {
  /** '_v': activations loaded as vec4<f32> (x bound a second time, typed; the dispatch falls back to scalar loads where x's offset, row stride or buffer do not allow it: param XV) */
  vx?: boolean;
  /** '_m': A staged m-major (`As[m][k]`, rows of BK + 4 floats), stored and read as vec4s over k; the product takes 4 k per read */
  am?: boolean;
  /** '_g': no workgroup memory for A: each row of threads loads its rows' slice into registers and broadcasts it by subgroupShuffle (needs a fixed subgroup size that BN/TN divides) */
  sg?: boolean;
  /** '_b1': one slice buffer (two barriers per slice, half the workgroup memory) instead of two */
  single?: boolean;
  /** '_w<G>': workgroups rasterised in groups of G tile rows (column tiles of a group share weights in L2: the wide lm_head) */
  swz?: number;
  /**
   * '_q<W>': threads placed warp by warp (warp tiling): the 32 lanes of a warp hold W × 32/W threads of the BN/TN × BM/TM
   * grid instead of whole rows of it (fewer distinct workgroup-memory addresses per warp read: W of B, 32/W of A)
   */
  wq?: number;
}

/** the flags of `BlockedOpts`, for help texts and the sweep */
export const BLOCKED_FLAGS = ['_v', '_m', '_g', '_b1', '_w<G>', '_q<W>'] as const;

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

/** a variant base (`128x64k16t8x4`, flags allowed: `128x128k16t8x8_v_w8`) */
export const BLOCKED_BASE = /^(\d+)x(\d+)k(\d+)t(\d+)x(\d+)((?:_[a-z]+\d*)*)$/;

export function parseBlocked(v: string): BlockedConfig & { fmt: MatvecFormat; split: boolean } {
  const m = /^(\d+x\d+k\d+t\d+x\d+(?:_[a-z]+\d*)*)([fbxq])(s?)$/.exec(v);
  const b = m && BLOCKED_BASE.exec(m[1]);
  if (!m || !b) throw new Error(`matmul_blocked: bad variant ${JSON.stringify(v)} (want e.g. 128x128k8t8x8f, flags ${BLOCKED_FLAGS.join(' ')} after the tile)`);
  const [bm, bn, bk, tm, tn] = b.slice(1, 6).map(Number);
  const c: BlockedConfig & { fmt: MatvecFormat; split: boolean } = { bm, bn, bk, tm, tn, fmt: m[2] as MatvecFormat, split: m[3] === 's' };
  if (b[6]) {
    const o: BlockedOpts = {};
    for (const f of b[6].split('_').slice(1)) {
      if (f === 'v') o.vx = true;
      else if (f === 'm') o.am = true;
      else if (f === 'g') o.sg = true;
      else if (f === 'b1') o.single = true;
      else if (/^w\d+$/.test(f) && Number(f.slice(1)) >= 1) o.swz = Number(f.slice(1));
      else if (/^q\d+$/.test(f)) o.wq = Number(f.slice(1));
      else throw new Error(`matmul_blocked: variant ${v}: unknown flag _${f} (flags: ${BLOCKED_FLAGS.join(' ')})`);
    }
    c.opts = o;
  }
  const err = blockedConfigError(c, c.fmt);
  if (err) throw new Error(`matmul_blocked: variant ${v}: ${err}`);
  return c;
}

/** why a configuration cannot run (null if it can): thread count, vector multiples, bf16 runs of 8, flags that exclude each other */
export function blockedConfigError(c: BlockedConfig, fmt: MatvecFormat): string | null {
  const { bm, bn, bk, tm, tn } = c;
  if (tm % 4 !== 0 || tn % 4 !== 0 || bm % tm !== 0 || bn % tn !== 0) return `tile ${bm}×${bn} with ${tm}×${tn} per thread (multiples of 4 that divide the tile)`;
  const nt = (bm / tm) * (bn / tn);
  if (nt < 32 || nt > 256 || nt % 32 !== 0) return `${nt} threads (32…256, a multiple of 32)`;
  if (bk % (fmt === 'b' ? 8 : 4) !== 0) return `BK ${bk} (a multiple of ${fmt === 'b' ? 8 : 4})`;
  if (c.opts?.am && c.opts.sg) return `flags _m and _g exclude each other (A is staged m-major or not staged)`;
  const W = c.opts?.wq;
  if (W !== undefined) {
    if (c.opts?.sg) return `flags _q and _g exclude each other (_g needs whole rows of threads in a subgroup)`;
    const ct = bn / tn, rt = bm / tm;
    if (![1, 2, 4, 8, 16, 32].includes(W) || ct % W !== 0 || rt % (32 / W) !== 0) return `flag _q${W}: W must divide 32 and the ${ct} threads of a row, 32/W the ${rt} rows of threads`;
  }
  return null;
}

/** bytes of workgroup memory of a configuration (both buffers, or one with '_b1'; no A with '_g') */
export function blockedWorkgroupBytes(c: BlockedConfig): number {
  const a = c.opts?.sg ? 0 : c.opts?.am ? c.bm * (c.bk + PAD) : c.bk * (c.bm + PAD);
  return (c.opts?.single ? 1 : 2) * (a + c.bk * (c.bn + PAD)) * 4;
}

/**
 * why a configuration cannot run on a device (null if it can): its workgroup memory against the adapter's limit
 * (`wgBytes`), and for '_g' a fixed subgroup size (`subgroupFixed`, 0: none or varying) that the BN/TN threads of a
 * row of threads divide (they must share one subgroup)
 */
export function blockedDeviceError(c: BlockedConfig, wgBytes: number, subgroupFixed: number): string | null {
  if (blockedWorkgroupBytes(c) > wgBytes) return `needs ${blockedWorkgroupBytes(c)} bytes of workgroup memory, the adapter allows ${wgBytes}`;
  const ct = c.bn / c.tn;
  if (c.opts?.sg && !(subgroupFixed > 0 && subgroupFixed % ct === 0)) return `flag _g needs a fixed subgroup size that its ${ct} threads per row of threads divide (the device's: ${subgroupFixed || 'none or varying'})`;
  return null;
}

export interface BlockedPlan {
  /** the variant key (split suffix included) */
  variant: string;
  bm: number;
  bn: number;
  /** K range per split, and the number of splits (1: no partials) */
  kc: number;
  splits: number;
  /** the code options of the variant (vx: the dispatch passes x a second time as `xv`) */
  opts: BlockedOpts;
}

/**
 * The configuration and split of an [M, K] × [nb, K]ᵀ product. `config` forces one (a BLOCKED_CONFIGS name or a
 * variant base such as '128x64k16t8x4', flags allowed), `splits` a split count; else by shape: 128×128 tiles where their grid
 * still covers `cores` compute units, then 128×64, then 64×64; skinny M (≤ 128 rows) takes BM = M rounded up to
 * 16/32/64. A grid of fewer tiles than `cores` has K split (in multiples of BK, each part ≥ 128) until about
 * `cores` · 512 threads are busy. `subgroupFixed`: the device's fixed subgroup size (for '_g'; 0: none).
 */
export function blockedPlan(M: number, nb: number, K: number, fmt: MatvecFormat, cores: number, wgBytes: number, config?: string, splits?: number, subgroupFixed = 0): BlockedPlan {
  let base: string;
  if (config) base = BLOCKED_CONFIGS[config] ?? config;
  else if (M <= 16) base = BLOCKED_CONFIGS.s16;
  else if (M <= 32) base = BLOCKED_CONFIGS.s32;
  else if (M <= 128) base = BLOCKED_CONFIGS.s64;
  else if (Math.ceil(M / 128) * Math.ceil(nb / 128) >= cores) base = BLOCKED_CONFIGS.p128;
  else if (Math.ceil(M / 128) * Math.ceil(nb / 64) >= cores) base = BLOCKED_CONFIGS.p128x64;
  else base = BLOCKED_CONFIGS.p64;
  const c = parseBlocked(base + fmt);
  const dev = blockedDeviceError(c, wgBytes, c.opts?.sg ? subgroupFixed : 1);
  if (dev) throw new Error(`matmul_blocked: ${base} ${dev}`);
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
  return { variant: base + fmt + (S > 1 ? 's' : ''), bm: c.bm, bn: c.bn, kc, splits: S, opts: c.opts ?? {} };
}

/**
 * A tuned table of prefill GEMM choices (option `gemmTuned`, or MAMBA_TS_WEBGPU_GEMM_TUNED=path.json; the sweep
 * `bench/gemm-sweep.bench.ts` writes one as its JSON's `tuned`): shape key → choice. Keys: `${M}x${K}x${N}` (that
 * many rows exactly) or `${K}x${N}` (any M above 128, i.e. prefill), with `:bf16` or `:q8` appended for those weights
 * (no suffix: f32). Choices: 'tiled' (the tiled kernel, as without the table) or a blocked variant base or
 * BLOCKED_CONFIGS name (`128x128k16t8x8_v_w8`, `p128x64`), optionally `@S` for S K-splits.
 */
export type GemmTuned = Readonly<Record<string, string>>;

/** the shape keys of a tuned table for an [M, K] × [N, K]ᵀ product: exact M first, then any M (prefill, M > 128) */
export function tunedKeys(M: number, K: number, N: number, weights: 'f32' | 'bf16' | 'q8'): string[] {
  const sfx = weights === 'f32' ? '' : `:${weights}`;
  return [`${M}x${K}x${N}${sfx}`, ...(M > 128 ? [`${K}x${N}${sfx}`] : [])];
}

/** the table's choice for a shape (undefined: none) */
export function tunedChoice(t: GemmTuned | undefined, M: number, K: number, N: number, weights: 'f32' | 'bf16' | 'q8'): string | undefined {
  if (!t) return undefined;
  for (const k of tunedKeys(M, K, N, weights)) if (t[k] !== undefined) return t[k];
  return undefined;
}

/** a tuned table checked: keys and choices as `GemmTuned` says (an error names the entry and `what` it came from) */
export function checkTuned(t: unknown, what: string): GemmTuned {
  if (typeof t !== 'object' || t === null || Array.isArray(t)) throw new Error(`webgpu: ${what} must be an object of shape key → GEMM choice, got ${JSON.stringify(t)}`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(t)) {
    if (!/^(\d+x)?\d+x\d+(:bf16|:q8)?$/.test(k)) throw new Error(`webgpu: ${what}: key ${JSON.stringify(k)} is not MxKxN or KxN (optionally :bf16 or :q8)`);
    if (typeof v !== 'string') throw new Error(`webgpu: ${what}[${k}] must be a string ('tiled' or a blocked variant base[@S]), got ${JSON.stringify(v)}`);
    if (v !== 'tiled') {
      const [cfg, sp] = v.split('@');
      try {
        parseBlocked((BLOCKED_CONFIGS[cfg] ?? cfg) + (k.endsWith(':bf16') ? 'b' : k.endsWith(':q8') ? 'q' : 'f'));
      } catch (e) {
        throw new Error(`webgpu: ${what}[${k}] = ${JSON.stringify(v)}: ${(e as Error).message}`);
      }
      if (sp !== undefined && !(Number.isInteger(Number(sp)) && Number(sp) >= 1)) throw new Error(`webgpu: ${what}[${k}] = ${JSON.stringify(v)}: the split after @ must be a positive integer`);
    }
    out[k] = v;
  }
  return out;
}

export const MATMUL_BLOCKED: KernelSpec = {
  name: 'matmul_blocked',
  roles: ['x', 'w', 'bias', 'y', 'xv'],
  writes: ['y'],
  types: (v) => {
    const c = parseBlocked(v);
    return c.opts?.vx ? { ...weightTypes(c.fmt), xv: 'vec4<f32>' } : weightTypes(c.fmt);
  },
  wgsl: (v) => blockedWgsl(parseBlocked(v)),
};

function blockedWgsl(c: BlockedConfig & { fmt: MatvecFormat; split: boolean }): string {
  const { bm, bn, bk, tm, tn, fmt, split } = c;
  const o = c.opts ?? {};
  const am = !!o.am, sg = !!o.sg, NBUF = o.single ? 1 : 2;
  const RT = bm / tm, CT = bn / tn, NT = RT * CT;
  const RG = tm / 4, CG = tn / 4;
  const AP = (bm + PAD) / 4, BP = (bn + PAD) / 4; // vec4s per staged k row
  const KQ = bk / 4, AK = KQ + 1; // '_m': vec4s of k per staged row (+1 of padding)
  const ASZ = sg ? 0 : am ? bm * AK : bk * AP, BSZ = bk * BP;
  const bu = fmt === 'b' ? 8 : 4; // k per weight load
  // loads: A in runs of 4 k, B in runs of bu k; `units` per row per slice, paired so a warp reads whole sectors
  const aUnits = (bm * bk) / 4, bUnits = (bn * bk) / bu;
  const lines: string[] = [];
  const unitMap = (c_: string, rows: number, upr: number) =>
    upr === 1 ? `let row = ${c_} % ${rows}u; let u = ${c_} / ${rows}u;` : `let row = (${c_} / 2u) % ${rows}u; let u = (${c_} / ${2 * rows}u) * 2u + ${c_} % 2u;`;
  // 4 k of x's row r from gk (zeros past M and ke) into `dst`: 16-byte loads through `xv` where the dispatch allows
  const xLoad = (dst: string) => `if (r < M && gk < ke) {
          let p = o_x + r * SX + gk;
          if (gk + 3u < ke) { ${o.vx ? `if (XV != 0u) { ${dst} = $xv[p / 4u]; } else { ${dst} = vec4<f32>($x[p], $x[p + 1u], $x[p + 2u], $x[p + 3u]); }` : `${dst} = vec4<f32>($x[p], $x[p + 1u], $x[p + 2u], $x[p + 3u]);`} }
          else { for (var i = 0u; i < 3u; i++) { if (gk + i < ke) { ${dst}[i] = $x[p + i]; } } }
        }`;
  const aLoads: string[] = [], aStores: string[] = [], bLoads: string[] = [], bStores: string[] = [];
  const regs: string[] = [];
  if (sg) {
    // '_g': the CT threads of a row of threads (one subgroup holds them) load its TM rows × BK k: unit u = j·KQ + kq
    // (row j of the thread's rows, 4 k from kq·4), lane tx taking u = tx, tx + CT, …; adjacent lanes read adjacent k
    const UA = tm * KQ, QA = Math.ceil(UA / CT);
    for (let q = 0; q < QA; q++) {
      const guard = (q + 1) * CT > UA ? `u < ${UA}u` : 'true';
      regs.push(`var ga${q} = vec4<f32>(0.0); var na${q} = vec4<f32>(0.0);`);
      aLoads.push(`{ let u = tx + ${q * CT}u; na${q} = vec4<f32>(0.0);
      if (${guard}) { let j = u / ${KQ}u; let kq = u % ${KQ}u;
        let r = tm + (j / 4u) * ${RT * 4}u + ty * 4u + j % 4u; let gk = k0 + kq * 4u;
        ${xLoad(`na${q}`)}
      } }`);
      aStores.push(`ga${q} = na${q};`);
    }
  } else {
    for (let q = 0; q * NT < aUnits; q++) {
      const guard = (q + 1) * NT > aUnits ? `ca < ${aUnits}u` : 'true';
      regs.push(`var ra${q} = vec4<f32>(0.0);`);
      aLoads.push(`{ let ca = li + ${q * NT}u; ra${q} = vec4<f32>(0.0);
      if (${guard}) { ${unitMap('ca', bm, bk / 4)}
        let r = tm + row; let gk = k0 + u * 4u;
        ${xLoad(`ra${q}`)}
      } }`);
      aStores.push(`{ let ca = li + ${q * NT}u;
      if (${guard}) { ${unitMap('ca', bm, bk / 4)}
        ${am ? `As[nbuf * ${ASZ}u + row * ${AK}u + u] = ra${q};` : `for (var i = 0u; i < 4u; i++) { As[nbuf * ${ASZ}u + (u * 4u + i) * ${AP}u + row / 4u][row % 4u] = ra${q}[i]; }`}
      } }`);
    }
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
    regs.push(`var rb${q} = ${fmt === 'b' ? 'vec4<u32>(0u)' : 'vec4<f32>(0.0)'};`);
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
  const acc: string[] = [];
  for (let i = 0; i < tm; i++) for (let h = 0; h < CG; h++) acc.push(`var c${i}_${h} = vec4<f32>(0.0);`);
  // the thread's row j (0 … TM−1) of the tile: runs of 4 consecutive rows, strided by 4·RT
  const rowOf = (j: number) => `${Math.floor(j / 4) * RT * 4 + (j % 4)}u + ty * 4u`;
  // one k of the product: a(j) the thread's row j at this k, the B row at `bb`
  const fmaK = (a: (j: number) => string, bb: string, tag: string) => {
    const f: string[] = [];
    for (let h = 0; h < CG; h++) f.push(`let bw${tag}_${h} = Bs[${bb} + ${h * CT}u + tx];`);
    for (let j = 0; j < tm; j++) for (let h = 0; h < CG; h++) f.push(`c${j}_${h} = fma(vec4<f32>(${a(j)}), bw${tag}_${h}, c${j}_${h});`);
    return f;
  };
  let product: string;
  if (sg) {
    // unrolled over the slice: per 4 k, TM vec4 shuffles (row j's 4 k from the lane that loaded them), then 4 k of B
    const f: string[] = [];
    for (let kq = 0; kq < KQ; kq++) {
      for (let j = 0; j < tm; j++) {
        const u = j * KQ + kq;
        f.push(`let a${kq}_${j} = subgroupShuffle(ga${Math.floor(u / CT)}, sb + ${u % CT}u);`);
      }
      for (let e = 0; e < 4; e++) f.push(...fmaK((j) => `a${kq}_${j}.${'xyzw'[e]}`, `cur * ${BSZ}u + ${(kq * 4 + e) * BP}u`, `${kq}${e}`));
    }
    product = `{
      ${f.join('\n      ')}
    }`;
  } else if (am) {
    const f: string[] = [];
    for (let j = 0; j < tm; j++) f.push(`let a${j} = As[ab + (${rowOf(j)}) * ${AK}u];`);
    for (let e = 0; e < 4; e++) f.push(...fmaK((j) => `a${j}.${'xyzw'[e]}`, `bb + ${e * BP}u`, `${e}`));
    product = `for (var kq = 0u; kq < ${KQ}u; kq++) {
      let ab = cur * ${ASZ}u + kq; let bb = cur * ${BSZ}u + kq * ${4 * BP}u;
      ${f.join('\n      ')}
    }`;
  } else {
    const f: string[] = [];
    for (let g = 0; g < RG; g++) f.push(`let av${g} = As[ab + ${g * RT}u + ty];`);
    for (let h = 0; h < CG; h++) f.push(`let bw${h} = Bs[bb + ${h * CT}u + tx];`);
    for (let g = 0; g < RG; g++) for (let i = 0; i < 4; i++) for (let h = 0; h < CG; h++) f.push(`c${g * 4 + i}_${h} = fma(vec4<f32>(av${g}.${'xyzw'[i]}), bw${h}, c${g * 4 + i}_${h});`);
    product = `for (var kk = 0u; kk < ${bk}u; kk++) {
      let ab = cur * ${ASZ}u + kk * ${AP}u; let bb = cur * ${BSZ}u + kk * ${BP}u;
      ${f.join('\n      ')}
    }`;
  }
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
  // the tile of this workgroup: the grid's order, or rasterised in groups of G tile rows ('_w<G>')
  const G = o.swz ?? 0;
  const tile = G
    ? `let gx = nw.x; let gy = nw.y; let L = wg.x + wg.y * gx; let per = ${G}u * gx; let m0 = (L / per) * ${G}u;
  let gsz = min(gy - m0, ${G}u); let pm = m0 + (L % per) % gsz; let pn = (L % per) / gsz;
  let tm = pm * ${bm}u; let tn = pn * ${bn}u;`
    : `let tm = wg.y * ${bm}u; let tn = wg.x * ${bn}u;`;
  // one buffer ('_b1'): every thread done with the slice before it is overwritten (a second barrier)
  const stores = [...(NBUF === 1 ? ['workgroupBarrier();'] : []), ...aStores, ...bStores];
  lines.push(/* wgsl */ `${fmt === 'q' ? q8Fns() : ''}
${sg ? '' : `var<workgroup> As: array<vec4<f32>, ${NBUF * ASZ}>;`}
var<workgroup> Bs: array<vec4<f32>, ${NBUF * BSZ}>;
@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32${G ? ', @builtin(num_workgroups) nw: vec3<u32>' : ''}${sg ? ', @builtin(subgroup_invocation_id) sl: u32' : ''}) {
  init_offsets();
  let M = pu(PK); let K = pu(PK + 1u); let N = pu(PK + 2u); let n0 = pu(PK + 3u); let NC = pu(PK + 4u); let hasB = pu(PK + 5u); let KC = pu(PK + 6u); let SX = pu(PK + 7u);${o.vx ? ' let XV = pu(PK + 8u);' : ''}
  ${tile}
  let kb = wg.z * KC; let ke = min(K, kb + KC);
  ${o.wq ? `let lw = li % 32u; let wi = li / 32u; // warp tiling: a warp holds ${o.wq} × ${32 / o.wq} threads
  let tx = lw % ${o.wq}u + ${o.wq}u * (wi % ${CT / o.wq}u); let ty = lw / ${o.wq}u + ${32 / o.wq}u * (wi / ${CT / o.wq}u);` : `let tx = li % ${CT}u; let ty = li / ${CT}u;`}${sg ? `\n  let sb = sl - tx; // the lane of this row of threads' tx = 0` : ''}
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
    let cur = ${NBUF === 2 ? 't % 2u' : '0u'};
    nbuf = ${NBUF === 2 ? '1u - cur' : '0u'};
    k0 = kb + (t + 1u) * ${bk}u;
    let more = t + 1u < nt;
    if (more) {
      ${aLoads.join('\n      ')}
      ${bLoads.join('\n      ')}
    }
    ${product}
    if (more) {
      ${stores.join('\n      ')}
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
