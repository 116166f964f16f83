/**
 * Decode fusion of the WebGPU backend: the work it holds back so that a single-token step records few
 * dispatches, and the matvec that absorbs it.
 */
import type { GpuRuntime, KernelSpec, Store } from './runtime.js';
import { f2u } from './wgsl.js';
import { MATVEC_V, MATVEC_X, matvecParse, matvecVariant, packedFormat, type MatvecFormat } from './kernels/matvec.js';
import { MATVEC_SG } from './kernels/linear.js';
import { MATVEC_SGV, matvecSgFit, matvecSgParse, matvecSgRows, matvecSgVariant, type MatvecSgConfig } from './kernels/matvec_sg.js';
import { FEWROWS, FEWROWS_SCALES, fewRowsParse, fewRowsVariant } from './kernels/fewrows.js';
import { MATVEC_BW, matvecBwGroups, matvecBwParse, matvecBwPlan, type MatvecBwConfig } from './kernels/matvec_bf16.js';
import { MATVEC_R, ROWS_MAX, rowsGroups, rowsVariant } from './kernels/matvec_rows.js';
import { MATVEC_SK, MATVEC_SK_REDUCE, matvecSkGroups, matvecSkParse, matvecSkSlices, matvecSkVariant } from './kernels/matvec_splitk.js';
import { RMS_NORM, RMS_NORM_GATED, RMS_NORM_GATED_SG, RMS_NORM_SG } from './kernels/rms_norm.js';
import { SPLITK_REDUCE, SPLITK_ROWS } from './kernels/gemm_blocked.js';
import { SPLITK_CONV } from './kernels/causal_conv1d.js';

/**
 * Decode fusion (rows ≤ `maxRows`: 64 with the few-rows kernel, 8 without). Two kinds of deferred work, so that a decode layer records ~4 dispatches:
 * - a pending norm (`rmsNorm`, `rmsNormGated` with a weight): a pure function of immutable inputs, kept
 *   per output store and folded into the matvec that consumes it; materialised (its own dispatch) only
 *   when anything else touches its output (`store`), or when one of its inputs is released (`releasing`). Assumes norm inputs are not later updated in place
 *   (they are activations; in-place ops write states, caches and accumulators).
 * - a pending linear (`linear` with M ≤ maxRows): held back until the next recorded op, which either absorbs it
 *   (`add` → the residual is added in the matvec's epilogue; `selectiveScan` L = 1 → dt_proj is computed
 *   in the scan step) or flushes it first, so program order is kept.
 * Decode batches on the blocked GEMM (9–128 rows, batchDecode 'fused') hold back a third kind: the split-K reduce of a
 * product whose rows are whole (`PendingReduce`), which the residual add and then an RMSNorm of the sum join
 * (SPLITK_ROWS); stores released meanwhile that it reads or writes go back to the pool once it is recorded.
 */
export interface PendingNorm {
  x: Store;
  z: Store | null;
  w: Store;
  y: Store;
  M: number;
  K: number;
  gs: number;
  eps: number;
  gated: boolean;
}
export interface PendingLinear {
  x: Store;
  w: Store;
  bias: Store | null;
  y: Store;
  M: number;
  K: number;
  N: number;
  norm: PendingNorm | null;
}

/**
 * The split-K reduce of a decode batch's blocked product (rows whole), held back so that the residual add after it
 * (`res` → y2 = y + res) and the RMSNorm after that (`norm` → h) are computed in the same dispatch (SPLITK_ROWS).
 */
export interface PendingReduce {
  part: Store;
  bias: Store | null;
  y: Store;
  M: number;
  N: number;
  S: number;
  res: Store | null;
  y2: Store | null;
  norm: { w: Store; eps: number; h: Store } | null;
}

/** the conv-window epilogue of an in_proj matvec (see MATVEC_V): output columns [c0, c0 + width) */
export interface ConvWindow {
  state: Store;
  c0: number;
  width: number;
  K: number;
}

/**
 * a further epilogue of a one-row matvec (decodeKernels 'fused', `MATVEC_X`): Mamba-1's x_proj partials ('p':
 * needs the conv window at columns [0, width), conv weights and bias, x_proj [J, width]) or argmax partials ('a')
 */
export interface MatvecExt {
  kind: 'p' | 'a';
  aux: Store;
  cw?: Store;
  cb?: Store | null;
  xp?: Store;
  J?: number;
}

/**
 * Whether decodeKernels 'v1' (the default) sends bf16 weights through MATVEC_BW (`matvecBwPlan`'s tunables) instead of
 * MATVEC_V with 4 loads in flight. false until the variants are timed against each other on a GPU (bench/webgpu-
 * stream.bench.ts, scripts/gpu-s33d.sh): the one line to flip.
 */
export const BF16_WIDE_DEFAULT = false;
/**
 * What 'v1' runs for a one-row bf16 product of K ≥ BF16_WIDE_MIN and N ≥ BF16_WIDE_MIN rows: MATVEC_BW at R 2, U 4
 * (the 2.8b shapes: in_proj, out_proj, lm_head). H100, session 33, mamba2-2.8b bf16 decode in two calls: 160.1 / 159.1
 * tok/s against MATVEC_V's 136.2 / 136.3 (+17%; `matvecBwPlan`'s own picks 150.0, R 1 U 8 135.2, R 4 U 4 144.8). The
 * 130m shapes (K 768, 1536) keep MATVEC_V: not timed there.
 */
export const BF16_WIDE_LARGE = { R: 2, U: 4 } as const;
export const BF16_WIDE_MIN = 2048;

export class DecodeFusion {
  private readonly norms = new WeakMap<Store, PendingNorm>();
  /** the pending norms that read a store (x or z), by the store's base: materialised before it is released */
  private readonly normReaders = new WeakMap<Store, PendingNorm[]>();
  private seq: PendingLinear[] = [];
  /** the pending split-K reduce (never together with pending linears: each kind records the other first) */
  private red: PendingReduce | null = null;
  /** stores released while the pending reduce reads or writes them: back to the pool once it is recorded */
  private heldBack: Store[] = [];
  /**
   * 2–64 rows go through FEWROWS (each weight row read once for all rows); false: the former path, MATVEC_V
   * up to 8 rows and the tiled matmul above (kept to compare: the backend's `fewRows` option)
   */
  fewRows = false;
  /**
   * the subgroup matvec's tunables (decodeKernels 'v2…'), used where the device has one fixed subgroup size and
   * the weights are 16-byte vectors; null: MATVEC_V ('v1', the kernel before)
   */
  sgv: MatvecSgConfig | null = null;
  /**
   * MATVEC_V of 2–8 rows writes its rows from as many lanes (variant 'l'; batchDecode 'fused'), not in a loop in one
   * lane: in_proj's conv-window epilogue shifts a window per row (dependent loads and stores)
   */
  rowLanes = true;
  /**
   * MATVEC_V's weight loads in flight per lane (decodeKernels 'v1-u{U}': 1, 2, 4, 8; 1 is the kernel of before).
   * 0 (decodeKernels 'v1', the default): at 1–2 rows 4 for f32 weights with rows of K ≥ 2048 and for bf16 weights
   * of any K, else 1 — measured on an H100: f32 in session 30 (bench/webgpu-stream.bench.ts: the 2.8b shapes' in_proj
   * 50.2 → 41.8 µs (1 row), 83.5 → 52.7 (2 rows), out_proj (K = 5120) 46.9 → 28.8 µs; at the 130m shapes (K = 768,
   * 1536) level, at 4–8 rows slower); bf16 in session 32 (decode-kernels.bench, one call: mamba2-2.8b decode 121.9 →
   * 141.3 tok/s, mamba2-130m 951.6 → 1,158.7, mamba-130m 854.3 → 891.2).
   */
  loads = 0;
  /** the loads in flight for one product (see `loads`) */
  loadsFor(M: number, K: number, fmt: MatvecFormat): number {
    if (this.loads > 0) return this.loads;
    return M <= 2 && ((fmt === 'f' && K >= 2048) || fmt === 'b') ? 4 : 1;
  }
  /**
   * decodeKernels 'v1-k{U}': the split-K matvec (kernels/matvec_splitk.ts: x̂ in registers, U units a lane, a reduce
   * pass) for f32/bf16 vector weights where the device has one fixed subgroup size; 0: MATVEC_V
   */
  splitK = 0;
  /**
   * decodeKernels 'v1-b…' (session 33): bf16 weights through MATVEC_BW (kernels/matvec_bf16.ts: R·U 16-byte loads in
   * flight a lane, unpacking on vectors, x̂ staged even/odd and reused across a lane's R rows, subgroupAdd, split-K
   * where the rows are few), tunables fixed by name or by `matvecBwPlan`'s rule; null: MATVEC_V. What 'v1' sets it
   * to is BF16_WIDE_DEFAULT.
   */
  bw: MatvecBwConfig | null = BF16_WIDE_DEFAULT ? {} : null;
  /** decodeKernels 'v1': one-row bf16 products of K and N ≥ BF16_WIDE_MIN through MATVEC_BW at BF16_WIDE_LARGE */
  bwLarge = true;
  /**
   * the backend's `decodeRows`: 2 to this many rows run MATVEC_R (kernels/matvec_rows.ts: each weight read once, x̂
   * staged once per TEAMS · P rows) where the weights are 16-byte vectors; 0: the kernels of before
   */
  rows = 0;
  /** workgroups MATVEC_R aims for at least (P shrinks until it has them): about one per SM of an H100 (estimate) */
  rowsMinGroups = 128;

  constructor(private readonly rt: GpuRuntime, private readonly kernels: 'tiled' | 'simple') {}

  /** the most rows a decode matrix kernel (and so the fusion) takes */
  get maxRows(): number {
    return this.fewRows ? 64 : Math.max(8, this.rows);
  }
  /** whether a norm of M rows in groups of gs (width K) can be folded into the matrix kernel (scales in workgroup memory) */
  foldsNorm(M: number, K: number, gs: number): boolean {
    // (MATVEC_R, which takes 2–`rows` rows before the few-rows kernel, keeps 64 scales as MATVEC_V does)
    return M <= this.maxRows && M * (K / gs) <= (this.fewRows && M >= 2 && M > this.rows ? FEWROWS_SCALES : 64);
  }

  /** the pending norm that produces `s`, if any (a decode matrix kernel may fold it in) */
  normOf(s: Store): PendingNorm | undefined {
    return this.norms.get(s);
  }

  /** hold a matvec back until the next op (which may absorb it) */
  pushLinear(l: PendingLinear): void {
    this.flushReduce();
    this.seq.push(l);
  }

  /** hold a split-K reduce back until the next op (a residual add and then an RMSNorm of its rows may join it) */
  pendReduce(r: PendingReduce): void {
    this.flush();
    this.red = r;
  }
  /** the pending reduce whose latest output is `s` (y, or y2 once the residual joined), if it can still take `what` */
  reduceOf(s: Store, what: 'res' | 'norm'): PendingReduce | null {
    const r = this.red;
    if (!r || r.norm || (what === 'res' && r.res)) return null;
    return (r.y2 ?? r.y) === s ? r : null;
  }
  /** record the pending reduce (SPLITK_ROWS with what joined it, else the plain SPLITK_REDUCE) and free what it held */
  flushReduce(): void {
    const r = this.red;
    if (!r) return;
    this.red = null;
    if (!r.res && !r.norm) {
      this.rec(SPLITK_REDUCE, [r.part, r.bias ?? this.rt.dummy, r.y], [r.M, r.N, 0, r.N, r.bias ? 1 : 0, r.S], this.rt.grid(Math.ceil((r.M * r.N) / 256)));
    } else {
      const flags = (r.bias ? 1 : 0) | (r.res ? 2 : 0) | (r.norm ? 4 : 0);
      const roles = [r.part, r.bias ?? this.rt.dummy, r.res ?? this.rt.dummy, r.norm?.w ?? this.rt.dummy, r.y, r.y2 ?? this.rt.dummy, r.norm?.h ?? this.rt.dummy];
      this.rec(SPLITK_ROWS, roles, [r.M, r.N, flags, f2u(r.norm?.eps ?? 0)], this.rt.grid(r.M), String(r.S));
    }
    this.doneReduce(r);
  }
  /** the pending reduce's partials and the stores released meanwhile back to the pool (it is recorded) */
  private doneReduce(r: PendingReduce): void {
    this.rt.release(r.part);
    for (const s of this.heldBack.splice(0)) this.rt.release(s);
  }
  /**
   * batchDecode 'fused2': the conv step of a decode batch (its input columns [c0, c0 + C) of the pending reduce's
   * output `src`, rows `stride` apart, nothing joined to the reduce yet) recorded with the reduce as one dispatch
   * (SPLITK_CONV); false where the pending reduce is not that one
   */
  reduceConv(src: Store, c0: number, C: number, stride: number, conv: { w: Store; bias: Store | null; state: Store; y: Store; K: number; act: boolean }): boolean {
    const r = this.red;
    if (!r || r.res || r.norm || r.y !== src || stride !== r.N || c0 + C > r.N) return false;
    this.red = null;
    const flags = (conv.bias ? 2 : 0) | (conv.act ? 4 : 0);
    this.rec(SPLITK_CONV, [r.part, r.bias ?? this.rt.dummy, r.y, conv.w, conv.bias ?? this.rt.dummy, conv.state, conv.y], [r.M, r.N, r.bias ? 1 : 0, r.S, c0, C, conv.K, flags], this.rt.grid(Math.ceil((r.M * r.N) / 256)));
    this.doneReduce(r);
    return true;
  }
  private touches(r: PendingReduce, s: Store): boolean {
    const b = s.base ?? s;
    return [r.part, r.bias, r.res, r.y, r.y2, r.norm?.w, r.norm?.h].some((x) => x && (x.base ?? x) === b);
  }

  /**
   * `s` is about to go back to its pool: the held-back work that touches it is recorded first (the pending
   * matvecs, and the pending norms that read it); a pending norm whose output it is, is dropped (never computed).
   */
  releasing(s: Store): boolean {
    this.flushLinears(); // a pending matvec may read or write it
    this.norms.delete(s);
    const readers = this.normReaders.get(s);
    if (readers) {
      this.normReaders.delete(s);
      for (const p of readers) {
        if (this.norms.get(p.y) !== p) continue; // consumed, materialised or dropped already
        this.norms.delete(p.y);
        this.materializeNorm(p);
      }
    }
    // the pending reduce stays pending (an add and a norm may still join it); what it touches waits for it
    if (!this.red || !this.touches(this.red, s)) return false;
    this.heldBack.push(s);
    return true;
  }

  /** `s`, its pending norm recorded first (anything but a fused matvec is about to read it) */
  store(s: Store): Store {
    const p = this.norms.get(s);
    if (p) {
      this.norms.delete(s);
      this.materializeNorm(p);
    }
    return s;
  }

  private materializeNorm(p: PendingNorm): void {
    if (p.gated) {
      const roles = [p.x, p.z!, p.w, p.y], params = [p.M, p.K, p.gs, f2u(p.eps), p.K];
      const items = p.M * (p.K / p.gs);
      if (this.sgOk()) this.run(RMS_NORM_GATED_SG, roles, params, this.sgGrid(items));
      else this.run(RMS_NORM_GATED, roles, params, this.rt.grid(items));
    } else {
      const roles = [p.x, p.w, p.y], params = [p.M, p.K, f2u(p.eps), 1];
      if (this.sgOk()) this.run(RMS_NORM_SG, roles, params, this.sgGrid(p.M));
      else this.run(RMS_NORM, roles, params, this.rt.grid(p.M));
    }
  }

  /** record the pending work, in order */
  flush(): void {
    this.flushReduce();
    this.flushLinears();
  }
  private flushLinears(): void {
    while (this.seq.length > 0) this.recLinear(this.seq.shift()!, null, null);
  }

  /** the last pending linear if it produced `s` (and nothing else is needed of it) */
  takeTail(s: Store, ok: (l: PendingLinear) => boolean = () => true): PendingLinear | null {
    const l = this.seq[this.seq.length - 1];
    if (!l || l.y !== s || !ok(l)) return null;
    this.seq.pop();
    return l;
  }

  /**
   * a decode matrix product (M ≤ maxRows), with its pending norm folded in and optionally the residual
   * (y2 = y + res) and a conv window: MATVEC_V for one row (or ≤ 8 without few-rows), FEWROWS for 2–64; MATVEC_R for
   * 2–`rows` (decodeRows) first
   */
  recLinear(l: PendingLinear, res: Store | null, y2: Store | null, conv: ConvWindow | null = null, ext: MatvecExt | null = null): number {
    const blocks = l.w.blocks ?? [{ r0: 0, r1: l.N, store: l.w }];
    const mm = l.M <= 1 ? 1 : l.M <= 2 ? 2 : l.M <= 4 ? 4 : 8;
    // (rows past 8 without the few-rows kernel: MATVEC_R's, or the few-rows kernel where its formats do not fit)
    const few = (this.fewRows && l.M >= 2) || l.M > 8;
    if (l.M > this.maxRows) throw new Error(`webgpu: a decode matrix product of ${l.M} rows (at most ${this.maxRows})`);
    if (ext) return this.recExt(l, res, y2, conv, ext);
    for (const b of blocks) {
      const nb = b.r1 - b.r0;
      const bs = l.bias ? l.bias.view(b.r0, nb) : this.rt.dummy;
      const n = l.norm;
      const vec = this.vecOk(b.store, l.K);
      if (!n && !res && !conv && b.store.fmt === 'f32' && this.sgOk() && (!vec || this.kernels === 'simple') && l.M <= 8) {
        // a plain f32 matvec: the barrier-free subgroup kernel where the vector one cannot read the weights, and
        // on CPU-emulated adapters (barriers cost them a thread switch each)
        this.rec(MATVEC_SG, [l.x, b.store, bs, l.y], [l.M, l.K, l.N, b.r0, nb, l.bias ? 1 : 0], this.sgGrid(nb), String(mm));
        continue;
      }
      // vector loads on GPUs and wherever they are needed (bf16; the conv window of the mixer steps), else scalar
      // (the subgroup matvec of decodeKernels 'v2' has no barrier in its weight loop: vector loads everywhere)
      const sgv = !few && this.sgv !== null && this.rt.subgroupFixed > 0 && this.rt.subgroupFixed <= 128;
      const fmt: MatvecFormat = packedFormat(b.store) ?? (vec && (this.kernels === 'tiled' || conv || sgv) ? 'f' : 'x');
      const flags = (l.bias ? 1 : 0) | (n ? 2 : 0) | (n?.gated ? 4 : 0) | (res ? 8 : 0) | (conv ? 16 : 0);
      const roles = [n ? n.x : l.x, b.store, bs, n ? n.w : this.rt.dummy, n?.z ?? this.rt.dummy, res ?? this.rt.dummy, conv?.state ?? this.rt.dummy, l.y, y2 ?? this.rt.dummy];
      const params = [l.M, l.K, l.N, b.r0, nb, flags, n ? n.gs : l.K, f2u(n ? n.eps : 0), conv?.c0 ?? 0, conv?.width ?? 0, conv?.K ?? 0];
      // GPUs: at least 256 workgroups; CPU-emulated adapters: the fewest reduction barriers (8 rows each)
      const groups = this.kernels === 'tiled' ? 256 : 0;
      if (l.M >= 2 && l.M <= Math.min(this.rows, ROWS_MAX) && fmt !== 'x') {
        const v = rowsVariant(l.M, l.K, fmt, nb, this.kernels === 'tiled' ? this.rowsMinGroups : 0, this.rt.maxWorkgroupStorage);
        this.rec(MATVEC_R, roles, params, this.rt.grid(rowsGroups(v, nb)), v);
        continue;
      }
      if (sgv && fmt !== 'x') {
        const sg = this.rt.subgroupFixed, cfg = this.sgv!;
        const v = matvecSgVariant(l.M, l.K, fmt, sg, matvecSgFit(cfg, nb, sg), this.rt.maxWorkgroupStorage);
        this.rec(MATVEC_SGV, roles, params, this.rt.grid(Math.ceil(nb / matvecSgRows(matvecSgParse(v)))), v);
      } else if (!few && fmt === 'b' && (this.bw || (this.bwLarge && l.M === 1 && l.K >= BF16_WIDE_MIN && nb >= BF16_WIDE_MIN && l.K % 8 === 0))) {
        const plan = matvecBwPlan(l.M, l.K, nb, this.rt.subgroupFixed, groups, this.rt.maxWorkgroupStorage, this.bw ?? BF16_WIDE_LARGE);
        const v = matvecBwParse(plan.variant);
        const grid = this.rt.grid(matvecBwGroups(v, nb, plan.S));
        if (plan.S === 1) this.rec(MATVEC_BW, [...roles, this.rt.dummy], [...params, 1, plan.SU], grid, plan.variant);
        else this.recSplit(MATVEC_BW, roles, params, [plan.S, plan.SU], l.M * nb, grid, plan.variant);
      } else if (!few && this.splitK > 0 && (fmt === 'f' || fmt === 'b') && this.rt.subgroupFixed > 0 && this.rt.subgroupFixed <= 128) {
        const sg = this.rt.subgroupFixed;
        const v = matvecSkVariant(l.M, l.K, fmt, nb, sg, this.splitK, groups);
        const p = matvecSkParse(v), S = matvecSkSlices(l.K, fmt, sg, p.U);
        this.recSplit(MATVEC_SK, roles, params, [S], l.M * nb, this.rt.grid(matvecSkGroups(p, l.K, nb)), v);
      } else if (few) {
        const v = fewRowsVariant(l.M, l.K, fmt, nb, groups, this.rt.maxWorkgroupStorage);
        this.rec(FEWROWS, roles, params, this.rt.grid(Math.ceil(nb / fewRowsParse(v).rpw)), v);
      } else {
        const v = matvecVariant(l.M, l.K, fmt, nb, groups, this.rt.maxWorkgroupStorage, this.rowLanes, this.loadsFor(l.M, l.K, fmt));
        this.rec(MATVEC_V, roles, params, this.rt.grid(Math.ceil(nb / matvecParse(v).rpw)), v);
      }
    }
    return 0;
  }

  /** whether `recLinear` can take an epilogue (`MatvecExt`) for this product: one row, one block of weight rows */
  extOk(l: PendingLinear): boolean {
    return l.M === 1 && !l.w.blocks && !this.fewRows;
  }

  /** MATVEC_X: a one-row matvec with a further epilogue; returns its rows per workgroup (partials: ⌈N / RPW⌉) */
  private recExt(l: PendingLinear, res: Store | null, y2: Store | null, conv: ConvWindow | null, ext: MatvecExt): number {
    if (!this.extOk(l)) throw new Error(`webgpu: matvec epilogue '${ext.kind}' needs one row and one weight block (got ${l.M} rows)`);
    if (ext.kind === 'p' && (!conv || conv.c0 !== 0 || !ext.cw || !ext.xp || !ext.J)) throw new Error(`webgpu: the x_proj epilogue needs the conv window at column 0, conv weights, x_proj and J`);
    const n = l.norm, w = l.w;
    const fmt: MatvecFormat = packedFormat(w) ?? (this.vecOk(w, l.K) && (this.kernels === 'tiled' || conv) ? 'f' : 'x');
    const flags = (l.bias ? 1 : 0) | (n ? 2 : 0) | (n?.gated ? 4 : 0) | (res ? 8 : 0) | (conv ? 16 : 0) | (ext.cb ? 32 : 0);
    const d = this.rt.dummy;
    const roles = [n ? n.x : l.x, w, l.bias ?? d, n ? n.w : d, n?.z ?? d, res ?? d, conv?.state ?? d, l.y, y2 ?? d, ext.cw ?? d, ext.cb ?? d, ext.xp ?? d, ext.aux];
    const params = [l.M, l.K, l.N, 0, l.N, flags, n ? n.gs : l.K, f2u(n ? n.eps : 0), conv?.c0 ?? 0, conv?.width ?? 0, conv?.K ?? 0, ext.J ?? 0];
    const v = matvecVariant(l.M, l.K, fmt, l.N, this.kernels === 'tiled' ? 256 : 0, this.rt.maxWorkgroupStorage);
    const rpw = matvecParse(v).rpw;
    this.rec(MATVEC_X, roles, params, this.rt.grid(Math.ceil(l.N / rpw)), `${v}:${ext.kind}`);
    return rpw;
  }

  /** the vectorized matvec can read this weight store: a matrix of its own buffer, rows of whole 16-byte vectors */
  private vecOk(w: Store, K: number): boolean {
    return w.ref.matrices && w.off % 4 === 0 && K % (w.fmt === 'bf16' ? 8 : w.fmt === 'q8' ? 32 : 4) === 0;
  }

  /** hold a norm back until a matvec folds it in or its output is read */
  pendNorm(p: PendingNorm): void {
    this.norms.set(p.y, p);
    for (const s of p.z ? [p.x, p.z] : [p.x]) {
      const base = s.base ?? s;
      const list = this.normReaders.get(base);
      if (list) list.push(p);
      else this.normReaders.set(base, [p]);
    }
  }
  /** record a dispatch after the pending linears */
  run(spec: KernelSpec, roles: Store[], params: number[], grid: [number, number, number], variant = ''): void {
    this.flush();
    this.rec(spec, roles, params, grid, variant);
  }
  /**
   * a split-K matvec (MATVEC_SK, MATVEC_BW with S > 1) writing S partials of each of its `outs` outputs (sk[0] = S, then
   * the kernel's own), and MATVEC_SK_REDUCE adding them up with the epilogues
   */
  private recSplit(spec: KernelSpec, roles: Store[], params: number[], sk: number[], outs: number, grid: [number, number, number], variant: string): void {
    const part = this.rt.alloc(this.rt.actPool, sk[0] * outs, 'split-K partials');
    this.rec(spec, [...roles, part], [...params, ...sk], grid, variant);
    const reduceRoles = [...roles, part];
    reduceRoles[1] = this.rt.dummy; // (the weights: pass 2 reads only the partials)
    this.rec(MATVEC_SK_REDUCE, reduceRoles, [...params, sk[0]], this.rt.grid(Math.ceil(outs / 256)));
    this.rt.release(part);
  }

  private rec(spec: KernelSpec, roles: Store[], params: number[], grid: [number, number, number], variant = ''): void {
    this.rt.record({ spec, variant, roles, params, grid });
  }
  /** subgroup kernels: one item per subgroup, in workgroups of 64 */
  sgOk(): boolean {
    return this.rt.subgroupMax > 0 && this.rt.subgroupMax <= 64;
  }
  sgGrid(items: number): [number, number, number] {
    return this.rt.grid(Math.ceil((items * this.rt.subgroupMax) / 64));
  }

  /** all row blocks of a weight can take the vectorized matvec (the conv-window epilogue needs it) */
  vecAll(w: Store, K: number): boolean {
    return (w.blocks ?? [{ store: w }]).every((b) => this.vecOk(b.store, K));
  }
}
