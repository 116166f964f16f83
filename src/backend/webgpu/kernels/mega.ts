/**
 * decodeKernels 'mega' (issue 11): a whole batch-1 decode step of a Mamba-2 stack (MEGA2; Mamba-1: MEGA1, below) as ONE dispatch — a persistent
 * kernel of NWG workgroups (all co-resident: `WebGpuBackendOptions.megaGroups`) whose phases are separated by a grid
 * barrier (`GRID_SYNC`), since WebGPU has no grid-wide sync of its own. Per layer l (the math of the v1 kernels:
 * MATVEC_V with its folded RMSNorm and conv-window epilogue, MAMBA2_STEP, the gated norm folded into out_proj and the
 * residual add):
 * 1. every workgroup recomputes RMSNorm(x) (H wide) into workgroup memory, then its blocks of 8 in_proj rows
 *    (round-robin over the workgroups) → zx (z, xBC, dt);
 * 2. the SSD step: (head, 8 rows of the head) units round-robin over the workgroups: conv + SiLU of its x rows and
 *    its group's B and C from the old conv window and the new xBC column, Δ = clamp(softplus(dt + bias)),
 *    h = exp(Δ A) h + Δ x B, y = C · h + D x;
 * 3. the conv windows shifted (channels over all workgroups: every unit of phase 2 has read the old ones), the gated
 *    RMSNorm of y · silu(z) recomputed by every workgroup into workgroup memory, its blocks of out_proj rows (variant
 *    'o': its even share of them, O rows a pass), and x ← x + scale · (out_proj + bias);
 * (variant 'e', session 34: the same 3 barriers, every phase's rows split evenly over the workgroups, the conv in phase
 * 1's epilogue, the gate in phase 2: `mega2eWgsl`)
 * then workgroup 0 writes the final-normed rows; or, in a greedy step (variant 'a'), the layer-0 input is the token's
 * embedding row (gathered by every workgroup from the token id in x) and the LM head runs as the last phases — every
 * workgroup its blocks of head rows with the final norm folded, its best (logit, row) into the scratch, a grid
 * barrier, workgroup 0 the argmax of those into y[0]: a greedy step is ONE dispatch (`tail`).
 *
 * Memory model. Activations that one workgroup writes and another reads later in the same dispatch (x, zx, y) live
 * in the atomic scratch `sc` and are read with atomicLoad (device-scope atomics: never through a stale per-SM cache).
 * WGSL has no device-scope fence (storageBarrier is workgroup-scope) and its atomics are relaxed, so a plain atomic
 * store could still be in flight when the barrier's counter (another address) is seen: they are written with
 * atomicExchange instead, and every thread folds the old values into `wdep` before the workgroup's arrival, i.e. waits
 * until each of its writes has been performed where atomics are (the exchange returned) — only then does thread 0
 * add to the counter. Weights, the layer table and the
 * input x (written by an earlier dispatch) are ordinary loads; each SSM state row and conv window is read and written
 * by one workgroup (windows only after a barrier), across dispatches as any kernel.
 *
 * The grid barrier k (3 per layer, then the LM head's: slot 3L, used by greedy steps only): thread 0 of each workgroup adds 1 to counter slot k and spins on an atomicLoad
 * until it holds NWG; the workgroup that arrives last at barrier k resets slot k − 1 (everyone has left it), and
 * workgroup 0 resets the last two slots (the last of either kind of step) at the start of the next dispatch, so no reset dispatch is needed. The spin is
 * bounded: after `spin` polls (or on seeing the flag) it sets the error flag sc[NB] and the workgroup returns; a
 * dispatch that finds the flag set returns at once (the host reads the flag and falls back to the multi-dispatch
 * kernels: mega.ts).
 */
import type { KernelSpec } from '../runtime.js';
import { stateUpdate } from './mamba_step.js';

/** words of a layer's entry in the layer table */
export const MEGA_TS = 20;
/** the layer table's entries */
export const MT = {
  inW: 0, outW: 1, norm: 2, convW: 3, convB: 4, dtB: 5, A: 6, D: 7, gnorm: 8, inB: 9, outB: 10, scale: 11,
  convOff: 12, ssmOff: 13, lo: 14, hi: 15, geps: 16, xpW: 17, dtW: 18,
} as const;
/** largest dState and gated-norm groups the kernel stages */
export const MEGA_MAX_STATE = 256;
export const MEGA_MAX_GROUPS = 64;

/**
 * The grid barrier (see the file's comment) as `gsync(k, li)` → false when it timed out or the flag is set (the
 * caller returns: the result is uniform over the workgroup). Needs `$sc` (atomic<u32>), `wbad`, and the
 * module-scope NWG_, SPIN_ and FLAG_ set by the kernel; `wgi` the workgroup's index.
 */
export const GRID_SYNC = /* wgsl */ `
var<workgroup> wbad: u32;
var<workgroup> wdep: array<u32, 256>;
var<private> DEP_: u32;
var<private> NWG_: u32;
var<private> SPIN_: u32;
var<private> FLAG_: u32;
var<private> WGI_: u32;
fn gsync(k: u32, li: u32) -> bool {
  // every thread waits for its exchanges' results (aput: performed at the device's coherence point) before the barrier
  wdep[li] = DEP_;
  storageBarrier();
  workgroupBarrier();
  if (li == 0u) {
    var bad = 0u;
    if (NWG_ == 0u) { atomicStore(&$sc[o_sc + FLAG_], wdep[k % 256u]); } // (never: keeps the waits)
    let old = atomicAdd(&$sc[o_sc + k], 1u);
    if (old + 1u == NWG_ && k > 0u) { atomicStore(&$sc[o_sc + k - 1u], 0u); }
    var n = 0u;
    loop {
      if (atomicLoad(&$sc[o_sc + k]) >= NWG_) { break; }
      n += 1u;
      if ((n & 63u) == 0u && atomicLoad(&$sc[o_sc + FLAG_]) != 0u) { bad = 1u; break; }
      if (n >= SPIN_) { atomicStore(&$sc[o_sc + FLAG_], 1u); bad = 1u; break; }
    }
    wbad = bad;
  }
  return workgroupUniformLoad(&wbad) == 0u;
}
fn gstart(li: u32, last: u32) -> bool {
  if (li == 0u) {
    wbad = atomicLoad(&$sc[o_sc + FLAG_]);
    // the last barrier slot of the dispatch before (the LM head's, last − 1, or the last layer's, last − 2)
    if (WGI_ == 0u && last > 0u) { atomicStore(&$sc[o_sc + last - 1u], 0u); }
    if (WGI_ == 0u && last > 1u) { atomicStore(&$sc[o_sc + last - 2u], 0u); }
  }
  return workgroupUniformLoad(&wbad) == 0u;
}`;

/**
 * MEGA2's and MEGA1's roles (hw, em: the LM head and the embedding table of a greedy step, else any buffer, unread;
 * wm1 … wm3: the further matrix arenas of a stack past one binding, else wm again)
 */
const MEGA_ROLES = ['x', 'y', 'wm', 'wc', 'sc', 'st', 'hw', 'em', 'wm1', 'wm2', 'wm3'];
/** matrix arenas a step binds at most (table offsets: the arena in bits 28–31, vec4s below) */
export const MEGA_MAX_ARENAS = 4;

/**
 * The causal conv of channel `c` (a WGSL expression) inside the in_proj phase: silu(conv) of the channel's window slots
 * 1 … Kc−1 and its new value `v` (replaced by the result), the window shifted as it is read — MEGA2 'e' and MEGA1.
 */
function convColumn(c: string): string {
  return `          var val = 0.0;
          if (hasCB) { val = cw(cbo + ${c}); }
          let wb = coff + ${c} * Kc; let kb = cwo + ${c} * Kc;
          for (var t = 0u; t + 1u < Kc; t++) {
            let wv = $st[o_st + wb + t + 1u];
            val = fma(cw(kb + t), wv, val);
            $st[o_st + wb + t] = wv;
          }
          $st[o_st + wb + Kc - 1u] = v;
          v = silu(fma(cw(kb + Kc - 1u), v, val));`;
}

/**
 * variant `${f|b}${XS}r${RPW}[o${RPO}][p4][a]`: the weight format of the matrix arena (f32 vec4 / bf16 packed two to a u32, vec4<u32>),
 * the floats of x̂ staged in workgroup memory (≥ max(H, I), a multiple of 8), the projections' rows per pass of a
 * workgroup (8, 16, 32: 256 / RPW lanes a row; the SSD step keeps 8 rows of 32 lanes; the LM head's rows too), 'o':
 * out_proj's rows split evenly over the workgroups, RPO a pass (256 / RPO lanes a row), 'p4': MEGA1's 4 phases, 'e':
 * MEGA2 with every phase split evenly over S slices and the conv in phase 1 (session 34: `mega2eWgsl`), 'u{U}': the
 * projections' vec4 loads a lane issues before their products (`rowdot`; else 2 for f32, 1 for bf16), and 'a':
 * a greedy step (the embedding gather and the LM head's argmax inside).
 * roles: x (input rows [H], the embedded token; 'a': the token id, one float), y (output: the final-normed rows [H];
 * 'a': the chosen token id, one float), wm (matrix arena), wc
 * (constant arena: norms, conv, biases, A, D), sc (the state's atomic scratch: counter slots, flag, x [H], zx [NZ],
 * y [I], the argmax pairs (2 words a workgroup), then the layer table, MEGA_TS words a layer: offsets into wm (vec4s), wc and st, as u32 bits; staged into
 * workgroup memory at each layer's start), st (the state's conv windows and SSM states, one buffer: mega.ts moves them
 * there), hw and em ('a': the LM head [V, H] and the embedding table, in wm's format, vec4-aligned; else unread).
 * params: L, H, I, nh, hd, N, Gn (groups), Kc, NZ, gs (gated-norm group), eps, flags (1 conv bias, 2 D, 4 dt bias,
 * 8 in_proj bias, 16 out_proj bias), spin, fnorm (the final norm's offset in wc), probe (> 0: the co-residency probe,
 * that many barriers over sc and nothing else); 'a': V (the head's rows), the embedding scale, the embedding's rows;
 * 18: S, the slices of 'e' (every step passes all 19: mega.ts).
 */
export const MEGA2: KernelSpec = {
  name: 'mega2',
  roles: MEGA_ROLES,
  writes: ['y', 'sc', 'st'],
  types: megaTypes,
  wgsl: (v) => (megaParse(v).even ? mega2eWgsl(v) : mega2Wgsl(v)),
};

export function megaParse(v: string): { fmt: 'f' | 'b'; xs: number; rpw: number; rpo: number; p4: boolean; even: boolean; loads: number; greedy: boolean } {
  const m = /^([fb])(\d+)r(8|16|32)(?:o(8|16|32))?(p4)?(e)?(?:u(1|2|4|8))?(a?)$/.exec(v);
  if (!m || Number(m[2]) % 8 !== 0) throw new Error(`mega: bad variant ${JSON.stringify(v)}`);
  const fmt = m[1] as 'f' | 'b';
  return { fmt, xs: Number(m[2]), rpw: Number(m[3]), rpo: Number(m[4] ?? 0), p4: m[5] === 'p4', even: m[6] === 'e', loads: Number(m[7] ?? (fmt === 'f' ? 2 : 1)), greedy: m[8] === 'a' };
}
/** the matrix arena, the LM head and the embedding: vec4s of the weight format */
function megaTypes(v: string): Record<string, string> {
  const w = v[0] === 'b' ? 'vec4<u32>' : 'vec4<f32>';
  return { wm: w, wm1: w, wm2: w, wm3: w, hw: w, em: w, sc: 'atomic<u32>' };
}

/** the WGSL shared by MEGA2 and MEGA1: constants, workgroup memory, the grid barrier, the table, the scratch, rowdot */
function megaCommon(v: string): string {
  const { fmt, xs, rpw, rpo, greedy, loads } = megaParse(v);
  // one row's dot product with x̂ (staged as vec4s in xs4), lanes `lane` of TPR; wo: the matrix's offset in vec4s; U
  // (variant 'u') loads of the row issued before their products, U partial sums (U 2 for f32, 1 for bf16: sessions 32–33's
  // code, the same sums)
  const U = loads, ks = Array.from({ length: U }, (_, k) => k);
  const sum = (a: string[]): string => (a.length === 1 ? a[0] : `(${sum(a.slice(0, a.length / 2))} + ${sum(a.slice(a.length / 2))})`);
  const [W, term] = fmt === 'f' ? ['K / 4u', (w: string, q: string) => `dot(${w}, xs4[${q}])`] : ['K / 8u', (w: string, q: string) => `bdot(${w}, ${q})`];
  // u loads issued, then their products (the main loop's body, and each of the rest's halves)
  const block = (u: number): string => `${ks.slice(0, u).map((k) => `let w${k} = $wm[wr + q + ${k}u * TPR];`).join(' ')}
    ${ks.slice(0, u).map((k) => `a${k} += ${term(`w${k}`, `q + ${k}u * TPR`)};`).join(' ')}`;
  // the rest, fewer than U a lane, in halves (U/2, U/4, … 1 at most once each: log2 U round trips, not U − 1)
  const halves = ks.filter((k) => k > 0 && (U >> k) >= 1).map((k) => U >> k);
  const dot = /* wgsl */ `
fn rowdot(wo: u32, j: u32, K: u32, lane: u32) -> f32 {
  let KW = ${W};
  let wr = wo + j * KW;
  ${ks.map((k) => `var a${k} = 0.0;`).join(' ')}
  var q = lane;
  for (; q + ${U - 1}u * TPR < KW; q += ${U}u * TPR) {
    ${block(U)}
  }${halves.map((u) => `
  if (q + ${u - 1}u * TPR < KW) {
    ${block(u)}
    q += ${u}u * TPR;
  }`).join('')}
  return ${sum(ks.map((k) => `a${k}`))};
}`;
  // a bf16 vec4<u32> (8 weights, two to a u32) times x̂'s 8 floats at 8q
  const bdot = fmt === 'f' ? '' : /* wgsl */ `
fn bdot(p: vec4<u32>, q: u32) -> f32 {
  let lo = bitcast<vec4<f32>>(p << vec4<u32>(16u));
  let hi = bitcast<vec4<f32>>(p & vec4<u32>(0xffff0000u));
  let a = xs4[2u * q]; let b = xs4[2u * q + 1u];
  return dot(lo, vec4<f32>(a.x, a.z, b.x, b.z)) + dot(hi, vec4<f32>(a.y, a.w, b.y, b.w));
}`;
  // a greedy step ('a'): the layer-0 input is the embedded token (read from x, the token id), the LM head's rows (hw,
  // the same format) in the last phases; else x is the embedded token
  const el = fmt === 'f'
    ? 'let v = $em[o_em / 4u + e / 4u]; return v[e % 4u];'
    : 'let p = $em[o_em / 4u + e / 8u][(e % 8u) / 2u]; if (e % 2u == 0u) { return bitcast<f32>(p << 16u); } return bitcast<f32>(p & 0xffff0000u);';
  const input = greedy
    ? /* wgsl */ `
var<private> TOK_: u32;
var<private> EMS_: f32;
var<private> H_: u32;
var<workgroup> rbi: array<u32, 256>;
/** element e of the embedding table */
fn eel(e: u32) -> f32 { ${el} }
/** the layer-0 input: the token's embedding row times the embedding scale */
fn xin(k: u32) -> f32 { return EMS_ * eel(TOK_ * H_ + k); }
${AMAX}
${dot.replace('fn rowdot(', 'fn hdot(').replaceAll('$wm[', '$hw[')}`
    : /* wgsl */ `
fn xin(k: u32) -> f32 { return $x[o_x + k]; }`;
  // a layer matrix's row: its arena from the offset's top bits (uniform over the row: one branch, then that arena's
  // loop); with 'o' (MEGA1's out_proj at RPO rows a pass) also rowdotO, lanesumO over TPO lanes
  const rowdotOf = (fn: string, T: string): string => /* wgsl */ `${['wm', 'wm1', 'wm2', 'wm3'].map((r, i) => dot.replace('fn rowdot(', `fn ${fn}${i}(`).replaceAll('$wm[', `$${r}[`).replaceAll('TPR', T)).join('')}
fn ${fn}(wo: u32, j: u32, K: u32, lane: u32) -> f32 {
  let a = wo >> 28u; let o = wo & 0x0fffffffu;
  if (a == 0u) { return ${fn}0(o, j, K, lane); }
  if (a == 1u) { return ${fn}1(o, j, K, lane); }
  if (a == 2u) { return ${fn}2(o, j, K, lane); }
  return ${fn}3(o, j, K, lane);
}`;
  const lanesumOf = (fn: string, T: string): string => /* wgsl */ `
/** v summed over the ${T} lanes of each row group (the sum valid at lane 0: red[li]); barriers inside */
fn ${fn}(v: f32, li: u32, lane: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = ${T} / 2u; s > 0u; s >>= 1u) {
    if (lane < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  return red[li];
}`;
  const rowdot = rowdotOf('rowdot', 'TPR') + lanesumOf('lanesum', 'TPR') + (rpo ? `
const RPO: u32 = ${rpo}u;
const TPO: u32 = ${256 / rpo}u;${rowdotOf('rowdotO', 'TPO')}${lanesumOf('lanesumO', 'TPO')}` : '');
  return /* wgsl */ `
const RPW: u32 = ${rpw}u;
const TPR: u32 = ${256 / rpw}u;
const PB: u32 = 8u;
const T2: u32 = 32u;
const TS: u32 = ${MEGA_TS}u;
var<workgroup> xs4: array<vec4<f32>, ${xs / 4}>;
var<workgroup> red: array<f32, 256>;
var<workgroup> rsv: array<f32, ${MEGA_MAX_GROUPS}>;
var<workgroup> sx: array<f32, 8>;
var<workgroup> sB: array<f32, ${MEGA_MAX_STATE}>;
var<workgroup> sC: array<f32, ${MEGA_MAX_STATE}>;
${GRID_SYNC}
var<workgroup> lt: array<u32, TS>;
fn tu(l: u32, i: u32) -> u32 { return lt[i]; }
fn tf(l: u32, i: u32) -> f32 { return bitcast<f32>(lt[i]); }
fn cw(i: u32) -> f32 { return $wc[o_wc + i]; }
fn aget(i: u32) -> f32 { return bitcast<f32>(atomicLoad(&$sc[o_sc + i])); }
fn aput(i: u32, v: f32) { DEP_ ^= atomicExchange(&$sc[o_sc + i], bitcast<u32>(v)); }
/** the sum over the workgroup of each thread's v (every thread gets it) */
fn wsum(v: f32, li: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
${bdot}
${rowdot}
/** the part [x, y) of n things that slice s of S takes (contiguous; sizes differ by one at most) */
fn split(n: u32, s: u32, S: u32) -> vec2<u32> { return vec2<u32>((s * n) / S, ((s + 1u) * n) / S); }
${input}`;
}

/**
 * The co-residency probe (mega.ts): the kernel's own pipeline (so the same registers and workgroup memory, the same
 * workgroups resident) running only that many barriers (param 14), its flag after them
 */
const PROBE = /* wgsl */ `
  let probe = pu(PK + 14u);
  if (probe > 0u) {
    SPIN_ = pu(PK + 12u); NWG_ = nwg.x * nwg.y; WGI_ = lin(wg, nwg); FLAG_ = probe;
    if (!gstart(li, 0u)) { return; }
    for (var k = 0u; k < probe; k++) {
      if (!gsync(k, li)) { return; }
    }
    return;
  }`;

/** each layer's start (every kernel): its entry of the table staged into workgroup memory (lt) */
const LAYER_TABLE = /* wgsl */ `
    if (li < TS) { lt[li] = atomicLoad(&$sc[o_sc + TB + l * TS + li]); }
    workgroupBarrier();`;
/** phase 1's start (both kernels): x (the input at layer 0, else the scratch) RMS-normalised with the layer's weight into xs4 */
const NORM_X = normX(false);
/**
 * NORM_X, or with `pre` (MEGA2 'e') the norm's weights loaded beside x (one round trip, not two): x·w staged, then
 * scaled by rs once the sum is known — (x·w)·rs rounds apart from x·(w·rs) by an ulp at most
 */
function normX(pre: boolean): string {
  const w = 'vec4<f32>(cw(nwo + 4u * q), cw(nwo + 4u * q + 1u), cw(nwo + 4u * q + 2u), cw(nwo + 4u * q + 3u))';
  return /* wgsl */ `
    var ss = 0.0;${pre ? `
    let nwo = tu(l, ${MT.norm}u);` : ''}
    for (var q = li; q < H / 4u; q += 256u) {
      var v: vec4<f32>;${pre ? `
      let wq = ${w};` : ''}
      if (l == 0u) {
        v = vec4<f32>(xin(4u * q), xin(4u * q + 1u), xin(4u * q + 2u), xin(4u * q + 3u));
      } else {
        v = vec4<f32>(aget(XB + 4u * q), aget(XB + 4u * q + 1u), aget(XB + 4u * q + 2u), aget(XB + 4u * q + 3u));
      }
      xs4[q] = v${pre ? ' * wq' : ''};
      ss += dot(v, v);
    }
    let rs = inverseSqrt(wsum(ss, li) / f32(H) + eps);${pre ? '' : `
    let nwo = tu(l, ${MT.norm}u);`}
    for (var q = li; q < H / 4u; q += 256u) {
      xs4[q] = xs4[q] * ${pre ? 'rs' : `(${w} * rs)`};
    }
    workgroupBarrier();`;
}

/**
 * `n` rows in blocks of RPW round-robin over the workgroups: each row's `dot` (a WGSL expression of j and lane) summed
 * over its TPR lanes, then `put` at lane 0 (o: the sum, j: the row)
 */
function rows(n: string, dot: string, put: string): string {
  return rowPasses(`wgi * RPW`, n, `nwgs * RPW`, dot, put);
}
/**
 * rows [lo, hi) of one workgroup in passes of RPW (as `rows`; lo, hi uniform over the workgroup); `o`: in passes of RPO
 * rows of TPO lanes (ro, laneo: the thread's row and lane; the dot of rowdotO)
 */
function rowsIn(lo: string, hi: string, dot: string, put: string, o = false): string {
  return rowPasses(lo, hi, o ? 'RPO' : 'RPW', dot, put, o);
}
function rowPasses(first: string, end: string, step: string, dot: string, put: string, o = false): string {
  return /* wgsl */ `
    for (var j0 = ${first}; j0 < ${end}; j0 += ${step}) {
      let j = j0 + ${o ? 'ro' : 'r'};
      var acc = 0.0;
      if (j < ${end}) { acc = ${dot}; }
      let o = ${o ? 'lanesumO(acc, li, laneo)' : 'lanesum(acc, li, lane)'};
      if (${o ? 'laneo' : 'lane'} == 0u && j < ${end}) { ${put} }
      workgroupBarrier();
    }`;
}

/** the out_proj row j's sum o put: the residual x ← x + scale · (o + bias) (outB, scale in scope) */
const RESIDUAL = /* wgsl */ `var b = 0.0;
        if (hasOutB) { b = cw(outB + j); }
        var xo = 0.0;
        if (l == 0u) { xo = xin(j); } else { xo = aget(XB + j); }
        aput(XB + j, xo + scale * (o + b));`;
/**
 * the last phase's out_proj rows (K inputs staged in xs4) and the residual: round-robin blocks of RPW rows, or `split`:
 * the rows [s·H/S, (s+1)·H/S) of each slice s (`S` in scope), in passes of RPW rows — or with `o` (variant 'o') of RPO
 * rows of TPO lanes
 */
const OUT_PROJ = (K: string, split: boolean, o: boolean): string => /* wgsl */ `
    let outW = tu(l, ${MT.outW}u); let outB = tu(l, ${MT.outB}u); let scale = tf(l, ${MT.scale}u);${split ? `${o ? `
    let ro = li / TPO; let laneo = li % TPO;` : ''}
    for (var s = wgi; s < S; s += nwgs) {
      let hr = split(H, s, S);
${rowsIn('hr.x', 'hr.y', o ? `rowdotO(outW, j, ${K}, laneo)` : `rowdot(outW, j, ${K}, lane)`, RESIDUAL, o)}
    }` : rows('H', `rowdot(outW, j, ${K}, lane)`, RESIDUAL)}`;

/**
 * after the last layer: without 'a', workgroup 0 writes the final-normed rows into y. With 'a' (a greedy step), the
 * LM head as the last phases: every workgroup the final-normed rows into xs4, its blocks of RPW head rows (V, param
 * 15) keeping each thread's best (value, row; the lower row on ties, as ARGMAX_PART / ARGMAX_FINAL), the workgroup's
 * best into the scratch (PART + 2 wgi: value bits, row); a grid barrier (slot NB − 1); workgroup 0 reduces the
 * workgroups' pairs and writes the token id into y[0] as a float (−1 if no logit was a number), which a chained step
 * copies into the next step's x.
 */
/** a greedy step's start: the token (x[0], clamped to the embedding's rows, param 17), the embedding scale (16) */
function greedyStart(v: string): string {
  return megaParse(v).greedy ? 'H_ = H; EMS_ = pf(PK + 16u); TOK_ = min(u32(max($x[o_x], 0.0)), pu(PK + 17u) - 1u);' : '';
}
function tail(v: string): string {
  if (!megaParse(v).greedy) {
    return /* wgsl */ `
  if (wgi == 0u) {
    var s3 = 0.0;
    for (var k = li; k < H; k += 256u) { let vv = aget(XB + k); s3 += vv * vv; }
    let rf = inverseSqrt(wsum(s3, li) / f32(H) + eps);
    for (var k = li; k < H; k += 256u) { $y[o_y + k] = aget(XB + k) * rf * cw(fnorm + k); }
  }`;
  }
  return /* wgsl */ `
  var s3 = 0.0;
  for (var q = li; q < H / 4u; q += 256u) {
    let v = vec4<f32>(aget(XB + 4u * q), aget(XB + 4u * q + 1u), aget(XB + 4u * q + 2u), aget(XB + 4u * q + 3u));
    xs4[q] = v;
    s3 += dot(v, v);
  }
  let rf = inverseSqrt(wsum(s3, li) / f32(H) + eps);
  for (var q = li; q < H / 4u; q += 256u) {
    xs4[q] = xs4[q] * (vec4<f32>(cw(fnorm + 4u * q), cw(fnorm + 4u * q + 1u), cw(fnorm + 4u * q + 2u), cw(fnorm + 4u * q + 3u)) * rf);
  }
  workgroupBarrier();
  let V = pu(PK + 15u);
  let hwo = o_hw / 4u;
  var best = -3.4028234663852886e38;
  var bix = 0xffffffffu;
${rows('V', 'hdot(hwo, j, H, lane)', 'if (o > best || (bix == 0xffffffffu && o == best)) { best = o; bix = j; }')}
  amax(best, bix, li);
  if (li == 0u) {
    aput(PART + 2u * wgi, red[0]);
    DEP_ ^= atomicExchange(&$sc[o_sc + PART + 2u * wgi + 1u], rbi[0]);
  }
  if (!gsync(NB - 1u, li)) { return; }
  if (wgi == 0u) {
    var b2 = -3.4028234663852886e38;
    var i2 = 0xffffffffu;
    for (var k = li; k < nwgs; k += 256u) {
      let vv = aget(PART + 2u * k); let ii = atomicLoad(&$sc[o_sc + PART + 2u * k + 1u]);
      if (abetter(vv, ii, b2, i2)) { b2 = vv; i2 = ii; }
    }
    amax(b2, i2, li);
    if (li == 0u) {
      var o = -1.0;
      if (rbi[0] != 0xffffffffu) { o = f32(rbi[0]); }
      $y[o_y] = o;
    }
  }`;
}
/** the argmax reduce over the workgroup (greedy: red, rbi; the result in red[0], rbi[0]) */
const AMAX = /* wgsl */ `
fn abetter(v: f32, i: u32, best: f32, idx: u32) -> bool {
  return i != 0xffffffffu && (idx == 0xffffffffu || v > best || (v == best && i < idx));
}
fn amax(v: f32, i: u32, li: u32) {
  workgroupBarrier();
  red[li] = v; rbi[li] = i;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s && abetter(red[li + s], rbi[li + s], red[li], rbi[li])) { red[li] = red[li + s]; rbi[li] = rbi[li + s]; }
    workgroupBarrier();
  }
}`;

/** MEGA2's phase 3 after y · silu(z) is staged in xs4: the gated RMSNorm's groups (every workgroup) and its weight */
const GATED_NORM = /* wgsl */ `
    workgroupBarrier();
    let nG = I / gs;
    let geps = tf(l, ${MT.geps}u);
    for (var g = 0u; g < nG; g++) {
      var s2 = 0.0;
      for (var k = li; k < gs; k += 256u) { let vv = xs4[(g * gs + k) / 4u][(g * gs + k) % 4u]; s2 += vv * vv; }
      let tot = wsum(s2, li);
      if (li == 0u) { rsv[g] = inverseSqrt(tot / f32(gs) + geps); }
    }
    workgroupBarrier();
    let gno = tu(l, ${MT.gnorm}u);
    for (var q = li; q < I / 4u; q += 256u) {
      let k = 4u * q;
      let sc4 = vec4<f32>(cw(gno + k) * rsv[k / gs], cw(gno + k + 1u) * rsv[(k + 1u) / gs], cw(gno + k + 2u) * rsv[(k + 2u) / gs], cw(gno + k + 3u) * rsv[(k + 3u) / gs]);
      xs4[q] = xs4[q] * sc4;
    }
    workgroupBarrier();`;

/** both MEGA2 variants' start: the parameters, the scratch layout (x, zx, y, the argmax pairs, the table), the probe */
function M2_HEAD(v: string): string {
  return /* wgsl */ `  init_offsets();
  let L = pu(PK); let H = pu(PK + 1u); let I = pu(PK + 2u); let nh = pu(PK + 3u); let hd = pu(PK + 4u);
  let N = pu(PK + 5u); let Gn = pu(PK + 6u); let Kc = pu(PK + 7u); let NZ = pu(PK + 8u); let gs = pu(PK + 9u);
  let eps = pf(PK + 10u); let flags = pu(PK + 11u); SPIN_ = pu(PK + 12u); let fnorm = pu(PK + 13u);
  let hasCB = (flags & 1u) != 0u; let hasD = (flags & 2u) != 0u; let hasDtB = (flags & 4u) != 0u;
  let hasInB = (flags & 8u) != 0u; let hasOutB = (flags & 16u) != 0u;
  let nwgs = nwg.x * nwg.y; let wgi = lin(wg, nwg);
  NWG_ = nwgs; WGI_ = wgi;
  let NB = 3u * L + 1u;
  FLAG_ = NB;
  let XB = NB + 1u; let ZB = XB + H; let YB = ZB + NZ; let PART = YB + I;
${greedyStart(v)}
  let C = I + 2u * Gn * N;
  let r = li / TPR; let lane = li % TPR;
${PROBE}
  if (!gstart(li, NB)) { return; }
  let TB = PART + 2u * nwgs;`;
}

function mega2Wgsl(v: string): string {
  return /* wgsl */ `${megaCommon(v)}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
${M2_HEAD(v)}
  let r2 = li / T2; let lane2 = li % T2;
  for (var l = 0u; l < L; l++) {
${LAYER_TABLE}
    // ---- phase 1: RMSNorm(x) into xs4 (every workgroup), in_proj rows → zx
${NORM_X}
    let inW = tu(l, ${MT.inW}u); let inB = tu(l, ${MT.inB}u);
${rows('NZ', 'rowdot(inW, j, H, lane)', 'var v = o; if (hasInB) { v += cw(inB + j); } aput(ZB + j, v);')}
    if (!gsync(3u * l, li)) { return; }
    // ---- phase 2: conv + SiLU, Δ, the state update, y = C · h + D x, per (head, 8 rows) unit
    let cwo = tu(l, ${MT.convW}u); let cbo = tu(l, ${MT.convB}u); let coff = tu(l, ${MT.convOff}u);
    let soff = tu(l, ${MT.ssmOff}u);
    let lo = tf(l, ${MT.lo}u); let hi = tf(l, ${MT.hi}u);
    let nP = (hd + PB - 1u) / PB;
    for (var u = wgi; u < nh * nP; u += nwgs) {
      let h = u / nP; let pb = u % nP;
      let grp = h / (nh / Gn);
      for (var i = li; i < PB + 2u * N; i += 256u) {
        var c = 0u; var ok = true;
        if (i < PB) {
          let p = pb * PB + i;
          ok = p < hd;
          c = h * hd + p;
        } else if (i < PB + N) {
          c = I + grp * N + i - PB;
        } else {
          c = I + Gn * N + grp * N + i - PB - N;
        }
        var val = 0.0;
        if (ok) {
          // the window after the shift: old slots 1 … Kc−1, then the new column (v1: MATVEC_V's conv epilogue, conv_u)
          if (hasCB) { val = cw(cbo + c); }
          let wb = coff + c * Kc; let kb = cwo + c * Kc;
          for (var t = 0u; t + 1u < Kc; t++) { val = fma(cw(kb + t), $st[o_st + wb + t + 1u], val); }
          val = silu(fma(cw(kb + Kc - 1u), aget(ZB + I + c), val));
        }
        if (i < PB) { sx[i] = val; } else if (i < PB + N) { sB[i - PB] = val; } else { sC[i - PB - N] = val; }
      }
      workgroupBarrier();
      var bias = 0.0;
      if (hasDtB) { bias = cw(tu(l, ${MT.dtB}u) + h); }
      let dt = clamp(softplus(aget(ZB + I + C + h) + bias), lo, hi);
      let dA = exp(dt * cw(tu(l, ${MT.A}u) + h));
      let p = pb * PB + r2;
      var xv = 0.0;
      if (p < hd) { xv = sx[r2]; }
      let so = soff + (h * hd + p) * N;
${stateUpdate({ ok: 'p < hd', T: 'T2', lane: 'lane2', h: (n) => `$st[o_st + so + ${n}]`, decay: () => 'dA', dx: 'dt * xv', B: (n) => `sB[${n}]`, C: (n) => `sC[${n}]` })}
      if (lane2 == 0u && p < hd) {
        var o = red[li];
        if (hasD) { o += cw(tu(l, ${MT.D}u) + h) * xv; }
        aput(YB + h * hd + p, o);
      }
      workgroupBarrier();
    }
    if (!gsync(3u * l + 1u, li)) { return; }
    // ---- phase 3: the conv windows shifted; gated RMSNorm(y · silu(z)) into xs4; out_proj rows + the residual
    for (var c = wgi * 256u + li; c < C; c += nwgs * 256u) {
      let wb = coff + c * Kc;
      for (var t = 0u; t + 1u < Kc; t++) { $st[o_st + wb + t] = $st[o_st + wb + t + 1u]; }
      $st[o_st + wb + Kc - 1u] = aget(ZB + I + c);
    }
    for (var q = li; q < I / 4u; q += 256u) {
      let k = 4u * q;
      xs4[q] = vec4<f32>(aget(YB + k), aget(YB + k + 1u), aget(YB + k + 2u), aget(YB + k + 3u))
        * vec4<f32>(silu(aget(ZB + k)), silu(aget(ZB + k + 1u)), silu(aget(ZB + k + 2u)), silu(aget(ZB + k + 3u)));
    }
${GATED_NORM}
    let S = nwgs;
${OUT_PROJ('I', megaParse(v).rpo > 0, megaParse(v).rpo > 0)}
    if (!gsync(3u * l + 2u, li)) { return; }
  }
${tail(v)}
}`;
}

/**
 * MEGA2 variant 'e' (decodeKernels 'mega-…-e', session 34): the same 3 grid barriers a layer, every phase's work split
 * into S slices (param 18; S = the workgroups by default, each workgroup its slices s ≡ wgi mod NWG), each phase taking
 * a contiguous, even part — so that no phase leaves workgroups idle or gives some two rounds (BENCHMARKS, "Session 34
 * (branch s34-mega2)": at 132 workgroups the round-robin blocks left 27 idle in in_proj at r32, gave 60 two SSD units,
 * and staged z by every workgroup):
 * (1) RMSNorm(x) per workgroup; in_proj rows [s·NZ/S, (s+1)·NZ/S) at RPW a pass (25–26 a workgroup at mamba2-130m); at
 *     an xBC row c its lane 0 also forms silu(conv) from the old window and the new column and shifts the window (its
 *     only reader now), putting the conv's output at zx (z, dt raw);
 * (2) rows [s·I/S, …) of the heads (11–12 a workgroup), P3 (16) rows of T3 (16) lanes a pass, group by group (B and C
 *     of the group staged from zx, already convolved): Δ = clamp(softplus(dt + bias)), the state update (a lane's
 *     state elements loaded 8 at a time before they are updated: 1 round trip at N 128, not 8), y = C · h + D x,
 *     and the gate: g = y · silu(z) put at y (phase 3 stages only g: half the loads, no silu per workgroup);
 * (3) g staged, the gated RMSNorm (every workgroup), the slice's out_proj rows [s·H/S, …) (at RPO a pass with 'o', else
 *     RPW) and the residual.
 * The windows shift in phase 1, so phase 3 has no pass over them; the conv of B and C is done once a layer (was once
 * per (head, 8 rows) unit).
 */
const P3 = 16;
function mega2eWgsl(v: string): string {
  const { rpo } = megaParse(v);
  return /* wgsl */ `${megaCommon(v)}
const P3: u32 = ${P3}u;
const T3: u32 = ${256 / P3}u;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
${M2_HEAD(v)}
  let S = pu(PK + 18u);
  let r3 = li / T3; let lane3 = li % T3;
  // rows of I a group's B and C serve
  let rpg = (nh / Gn) * hd;
  for (var l = 0u; l < L; l++) {
${LAYER_TABLE}
    // ---- phase 1: RMSNorm(x) into xs4; each slice's in_proj rows → zx, the conv of its xBC rows (their windows shifted)
${normX(true)}
    let inW = tu(l, ${MT.inW}u); let inB = tu(l, ${MT.inB}u);
    let cwo = tu(l, ${MT.convW}u); let cbo = tu(l, ${MT.convB}u); let coff = tu(l, ${MT.convOff}u);
    for (var s = wgi; s < S; s += nwgs) {
      let rg = split(NZ, s, S);
${rowsIn('rg.x', 'rg.y', 'rowdot(inW, j, H, lane)', `var v = o;
        if (hasInB) { v += cw(inB + j); }
        if (j >= I && j < I + C) {
          // silu(conv) from the window's slots 1 … Kc−1 and the new column; the window shifted as it is read
          let c = j - I;
${convColumn('c')}
        }
        aput(ZB + j, v);`)}
    }
    if (!gsync(3u * l, li)) { return; }
    // ---- phase 2: each slice's rows of the heads, group by group: Δ, the state update, y = C · h + D x, g = y · silu(z)
    let soff = tu(l, ${MT.ssmOff}u); let Ao = tu(l, ${MT.A}u); let Do = tu(l, ${MT.D}u); let dbo = tu(l, ${MT.dtB}u);
    let lo = tf(l, ${MT.lo}u); let hi = tf(l, ${MT.hi}u);
    for (var s = wgi; s < S; s += nwgs) {
      let yr = split(I, s, S);
      if (yr.x >= yr.y) { continue; }
      for (var grp = yr.x / rpg; grp * rpg < yr.y; grp++) {
        for (var i = li; i < 2u * N; i += 256u) {
          if (i < N) { sB[i] = aget(ZB + 2u * I + grp * N + i); } else { sC[i - N] = aget(ZB + 2u * I + (Gn + grp) * N + i - N); }
        }
        workgroupBarrier();
        let ge = min(yr.y, (grp + 1u) * rpg);
        for (var j0 = max(yr.x, grp * rpg); j0 < ge; j0 += P3) {
          let j = min(j0 + r3, ge - 1u);
          let ok = j0 + r3 < ge;
          let h = j / hd;
          var bias = 0.0;
          if (hasDtB) { bias = cw(dbo + h); }
          let dt = clamp(softplus(aget(ZB + I + C + h) + bias), lo, hi);
          let dA = exp(dt * cw(Ao + h));
          let xv = aget(ZB + I + j);
          let so = soff + j * N;
${stateUpdate({ ok: 'ok', T: 'T3', lane: 'lane3', h: (n) => `$st[o_st + so + ${n}]`, decay: () => 'dA', dx: 'dt * xv', B: (n) => `sB[${n}]`, C: (n) => `sC[${n}]`, ahead: 8 })}
          if (lane3 == 0u && ok) {
            var o = red[li];
            if (hasD) { o += cw(Do + h) * xv; }
            aput(YB + j, o * silu(aget(ZB + j)));
          }
          workgroupBarrier();
        }
      }
    }
    if (!gsync(3u * l + 1u, li)) { return; }
    // ---- phase 3: g staged, the gated RMSNorm into xs4; each slice's out_proj rows + the residual
    for (var q = li; q < I / 4u; q += 256u) {
      let k = 4u * q;
      xs4[q] = vec4<f32>(aget(YB + k), aget(YB + k + 1u), aget(YB + k + 2u), aget(YB + k + 3u));
    }
${GATED_NORM}
${OUT_PROJ('I', true, rpo > 0)}
    if (!gsync(3u * l + 2u, li)) { return; }
  }
${tail(v)}
}`;
}

/**
 * A whole batch-1 decode step of a Mamba-1 stack (MEGA2's machinery and roles; the math of v1's MATVEC_V with the folded
 * norm, MAMBA1_XPROJ, MAMBA1_SCAN and the out_proj matvec with the residual; x_proj and dt_proj, float32 in every
 * weight format, are read from the constant arena). Session 33: 3 phases a layer (variant without 'p4'), the work
 * split into S slices (param 4; S = the workgroups by default, each workgroup its slices s ≡ wgi mod NWG), each phase
 * taking a contiguous, even part of its rows or channels:
 * (1) RMSNorm(x) per workgroup; in_proj rows [s·2D/S, (s+1)·2D/S) of each slice — every workgroup ~2D/NWG rows whatever
 *     RPW; at an x row c (c < D) its lane 0 also forms u = silu(conv) from the old window and the new x and shifts
 *     the window (its only reader this step), putting u at xz[c] (z raw at xz[D + c]); then the slice's part of x_proj
 *     over its x channels, J sums put at XP + s·J (the slices s < P = ⌈S/2⌉ hold x rows);
 * (2) xdbl = the P parts summed in a fixed order (the same in every workgroup: deterministic) into xs4; the slice's
 *     channels [s·D/S, …) in passes of 16 (16 lanes a channel): Δ = softplus(dt_proj · xdbl[:R] + bias), the state
 *     update, y = (C · h + D u) · silu(z);
 * (3) y staged, the slice's out_proj rows [s·H/S, …), x ← x + scale · (out + bias).
 * So 3 grid barriers a layer (was 4), no phase with idle workgroups at 132 (mamba-130m: 23–24 in_proj rows, 11–12
 * channels, 5–6 out_proj rows a workgroup) and no u recomputed for all channels by every workgroup.
 * sc: 3L + 1 counter slots, the flag, x [H], xz [2D] (u, z), xdbl [J] (unused), y [D], the argmax pairs, the x_proj
 * parts [S, J], the table.
 * Variant 'p4' (decodeKernels 'mega-p4'; session 32's, kept to compare): 4 phases a layer —
 * (1) RMSNorm(x) per workgroup, in_proj rows → xz (x then z, 2D);
 * (2) u = silu(conv) of all D channels recomputed per workgroup (old window slots 1 … Kc−1, the new x), x_proj rows
 *     (J = R + 2N) → xdbl, one row a workgroup (all 256 lanes: J is small);
 * (3) channels in blocks of 8 (32 lanes each, whatever RPW) round-robin: Δ = softplus(dt_proj · xdbl[:R] + bias), u again, the window shifted
 *     (every workgroup read the old ones in phase 2), h = exp(Δ A) h + Δ u B, y = (C · h + D u) · silu(z);
 * (4) y staged, out_proj rows, x ← x + scale · (out + bias).
 * sc: 4L + 1 counter slots, the flag, x [H], xz [2D], xdbl [J], y [D], the argmax pairs, the table.
 * Greedy ('a'): as MEGA2. params (MEGA2's slots): L, H, D, R, S, N, 0, Kc, 2D, 0, eps, flags (1 conv bias, 2 D, 4 dt
 * bias, 8 in_proj bias, 16 out_proj bias), spin, fnorm, probe.
 */
export const MEGA1: KernelSpec = {
  name: 'mega1',
  roles: MEGA_ROLES,
  writes: ['y', 'sc', 'st'],
  types: megaTypes,
  wgsl: (v) => (megaParse(v).p4 ? mega1p4Wgsl(v) : mega1Wgsl(v)),
};

/** the WGSL of both MEGA1 variants: megaCommon, the per-channel scalars of a pass, cdot, lsum */
function MEGA1_COMMON(v: string): string {
  return /* wgsl */ `${megaCommon(v)}
var<workgroup> su: array<f32, 16>;
var<workgroup> sdt: array<f32, 16>;
var<workgroup> sg: array<f32, 16>;
/** row j of a float32 matrix in the constant arena at wo (x_proj, dt_proj: float32 whatever the weights) times xs4, lanes lane of n */
fn cdot(wo: u32, j: u32, K: u32, lane: u32, n: u32) -> f32 {
  var acc = 0.0;
  for (var k = lane; k < K; k += n) { acc = fma(cw(wo + j * K + k), xs4[k / 4u][k % 4u], acc); }
  return acc;
}
/** v summed over the T lanes (a power of 2) of each group (valid at lane 0: red[li]); barriers inside */
fn lsum(v: f32, li: u32, lane: u32, T: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = T / 2u; s > 0u; s >>= 1u) {
    if (lane < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  return red[li];
}`;
}

/**
 * Mamba-1's channel d of a pass (its group `c` of lanes `lane` of T; `ok`: d is the pass's): the state update from Δ
 * (sdt[c]), u (su[c]), B and C (xdbl in xs4), then y = (C · h + D u) · silu(z) (sg[c]) put at YB + d
 */
const SCAN1 = (ok: string, T: string, lane: string, c: string): string => /* wgsl */ `
      let dt = sdt[${c}];
      let so = soff + d * N;
${stateUpdate({
  ok, T, lane, h: (n) => `$st[o_st + so + ${n}]`, decay: (n) => `exp(dt * cw(Ao + d * N + ${n}))`, dx: `dt * su[${c}]`,
  B: (n) => `xs4[(R + ${n}) / 4u][(R + ${n}) % 4u]`, C: (n) => `xs4[(R + N + ${n}) / 4u][(R + N + ${n}) % 4u]`,
})}
      if (${lane} == 0u && ${ok}) {
        var dd = 0.0;
        if (hasD) { dd = cw(tu(l, ${MT.D}u) + d); }
        aput(YB + d, (red[li] + dd * su[${c}]) * sg[${c}]);
      }`;

/**
 * Both MEGA1 variants' start: the probe, the parameters, the scratch layout (x, xz, xdbl, y, the argmax pairs, the
 * x_proj parts [S, J] — S = 0 with 'p4' — the table), the greedy step's token, the projections' lanes
 */
function M1_HEAD(v: string, phases: number): string {
  return /* wgsl */ `${PROBE}
  let L = pu(PK); let H = pu(PK + 1u); let D = pu(PK + 2u); let R = pu(PK + 3u); let S = pu(PK + 4u); let N = pu(PK + 5u);
  let Kc = pu(PK + 7u);
  let eps = pf(PK + 10u); let flags = pu(PK + 11u); SPIN_ = pu(PK + 12u); let fnorm = pu(PK + 13u);
  let hasCB = (flags & 1u) != 0u; let hasD = (flags & 2u) != 0u; let hasDtB = (flags & 4u) != 0u;
  let hasInB = (flags & 8u) != 0u; let hasOutB = (flags & 16u) != 0u;
  let nwgs = nwg.x * nwg.y; let wgi = lin(wg, nwg);
  NWG_ = nwgs; WGI_ = wgi;
  let NB = ${phases}u * L + 1u;
  FLAG_ = NB;
  let J = R + 2u * N;
  let XB = NB + 1u; let ZB = XB + H; let DB = ZB + 2u * D; let YB = DB + J; let PART = YB + D; let XP = PART + 2u * nwgs;
  let TB = XP + S * J;
${greedyStart(v)}
  let r = li / TPR; let lane = li % TPR;`;
}
/** y [D] from the scratch into xs4 (out_proj's input) */
const STAGE_Y = /* wgsl */ `
    for (var q = li; q < D / 4u; q += 256u) {
      xs4[q] = vec4<f32>(aget(YB + 4u * q), aget(YB + 4u * q + 1u), aget(YB + 4u * q + 2u), aget(YB + 4u * q + 3u));
    }
    workgroupBarrier();`;

/** MEGA1 in 3 phases a layer (see MEGA1) */
function mega1Wgsl(v: string): string {
  return /* wgsl */ `${MEGA1_COMMON(v)}
const T1: u32 = 16u;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
${M1_HEAD(v, 3)}
  let c1 = li / T1; let lane1 = li % T1;
  // x_proj's J sums over the lanes: LJ lanes a sum, NJ sums a round; P: the slices with x rows of in_proj
  let LJ = max(1u, 256u / J); let NJ = 256u / LJ;
  let P = (S + 1u) / 2u;
  if (!gstart(li, NB)) { return; }
  for (var l = 0u; l < L; l++) {
${LAYER_TABLE}
    // ---- phase 1: RMSNorm(x) into xs4; each slice's in_proj rows → u (x rows: the conv, the window shifted), z; its part of x_proj
${NORM_X}
    let inW = tu(l, ${MT.inW}u); let inB = tu(l, ${MT.inB}u); let xpW = tu(l, ${MT.xpW}u);
    let cwo = tu(l, ${MT.convW}u); let cbo = tu(l, ${MT.convB}u); let coff = tu(l, ${MT.convOff}u);
    for (var s = wgi; s < S; s += nwgs) {
      let rg = split(2u * D, s, S);
${rowsIn('rg.x', 'rg.y', 'rowdot(inW, j, H, lane)', `var v = o;
        if (hasInB) { v += cw(inB + j); }
        if (j < D) {
          // u from the window's slots 1 … Kc−1 and the new x; the window shifted as it is read
${convColumn('j')}
        }
        aput(ZB + j, v);`)}
      // the slice's part of x_proj over its x channels (their u read back: put by this workgroup's lanes above)
      storageBarrier();
      if (s < P) {
        let xe = min(rg.y, D);
        for (var j0 = 0u; j0 < J; j0 += NJ) {
          let j = j0 + li / LJ; let lj = li % LJ;
          var acc = 0.0;
          if (j < J && li < LJ * NJ) {
            for (var k = rg.x + lj; k < xe; k += LJ) { acc = fma(cw(xpW + j * D + k), aget(ZB + k), acc); }
          }
          red[li] = acc;
          workgroupBarrier();
          if (li < NJ && j0 + li < J) {
            var sum = 0.0;
            for (var m = 0u; m < LJ; m++) { sum += red[li * LJ + m]; }
            aput(XP + s * J + j0 + li, sum);
          }
          workgroupBarrier();
        }
      }
    }
    if (!gsync(3u * l, li)) { return; }
    // ---- phase 2: xdbl (the P parts summed in a fixed order, every workgroup the same) into xs4; per channel of the slices Δ, the state update, y
    for (var j0 = 0u; j0 < J; j0 += NJ) {
      let j = j0 + li % NJ; let lj = li / NJ;
      var acc = 0.0;
      if (j < J && lj < LJ) {
        for (var p = lj; p < P; p += LJ) { acc += aget(XP + p * J + j); }
      }
      red[li] = acc;
      workgroupBarrier();
      if (li < NJ && j0 + li < J) {
        var sum = 0.0;
        for (var m = 0u; m < LJ; m++) { sum += red[m * NJ + li]; }
        xs4[(j0 + li) / 4u][(j0 + li) % 4u] = sum;
      }
      workgroupBarrier();
    }
    let dtW = tu(l, ${MT.dtW}u); let soff = tu(l, ${MT.ssmOff}u); let Ao = tu(l, ${MT.A}u);
    for (var s = wgi; s < S; s += nwgs) {
      let cr = split(D, s, S);
      for (var d0 = cr.x; d0 < cr.y; d0 += 256u / T1) {
        let d = d0 + c1;
        var acc = 0.0;
        if (d < cr.y) { acc = cdot(dtW, d, R, lane1, T1); }
        let o = lsum(acc, li, lane1, T1);
        if (lane1 == 0u && d < cr.y) {
          var bias = 0.0;
          if (hasDtB) { bias = cw(tu(l, ${MT.dtB}u) + d); }
          sdt[c1] = softplus(o + bias);
          su[c1] = aget(ZB + d);
          sg[c1] = silu(aget(ZB + D + d));
        }
        workgroupBarrier();
${SCAN1('d < cr.y', 'T1', 'lane1', 'c1')}
        workgroupBarrier();
      }
    }
    if (!gsync(3u * l + 1u, li)) { return; }
    // ---- phase 3: y staged, the slices' out_proj rows + the residual
${STAGE_Y}
${OUT_PROJ('D', true, megaParse(v).rpo > 0)}
    if (!gsync(3u * l + 2u, li)) { return; }
  }
${tail(v)}
}`;
}

/** MEGA1 variant 'p4': session 32's 4 phases a layer (see MEGA1) */
function mega1p4Wgsl(v: string): string {
  return /* wgsl */ `${MEGA1_COMMON(v)}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
${M1_HEAD(v, 4)}
  let r2 = li / T2; let lane2 = li % T2;
  if (!gstart(li, NB)) { return; }
  for (var l = 0u; l < L; l++) {
${LAYER_TABLE}
    // ---- phase 1: RMSNorm(x) into xs4, in_proj rows → xz
${NORM_X}
    let inW = tu(l, ${MT.inW}u); let inB = tu(l, ${MT.inB}u);
${rows('2u * D', 'rowdot(inW, j, H, lane)', 'var v = o; if (hasInB) { v += cw(inB + j); } aput(ZB + j, v);')}
    if (!gsync(4u * l, li)) { return; }
    // ---- phase 2: u of every channel into xs4 (the new x with the old window), x_proj rows → xdbl
    let cwo = tu(l, ${MT.convW}u); let cbo = tu(l, ${MT.convB}u); let coff = tu(l, ${MT.convOff}u);
    for (var c = li; c < D; c += 256u) {
      var val = 0.0;
      if (hasCB) { val = cw(cbo + c); }
      let wb = coff + c * Kc; let kb = cwo + c * Kc;
      for (var t = 0u; t + 1u < Kc; t++) { val = fma(cw(kb + t), $st[o_st + wb + t + 1u], val); }
      xs4[c / 4u][c % 4u] = silu(fma(cw(kb + Kc - 1u), aget(ZB + c), val));
    }
    workgroupBarrier();
    // x_proj: one row a workgroup, all 256 lanes (its J = R + 2N rows are few: blocks of RPW rows left most of the
    // workgroups idle — 10 of 132 busy for mamba-130m's 80 rows at r8, 3 at r32 — and each row to 256 / RPW lanes)
    let xpW = tu(l, ${MT.xpW}u);
    for (var j = wgi; j < J; j += nwgs) {
      let o = wsum(cdot(xpW, j, D, li, 256u), li);
      if (li == 0u) { aput(DB + j, o); }
    }
    if (!gsync(4u * l + 1u, li)) { return; }
    // ---- phase 3: per channel Δ, u, the window shifted, the state update, y
    for (var q = li; q < J; q += 256u) { xs4[q / 4u][q % 4u] = aget(DB + q); }
    workgroupBarrier();
    let dtW = tu(l, ${MT.dtW}u); let soff = tu(l, ${MT.ssmOff}u); let Ao = tu(l, ${MT.A}u);
    // channels in blocks of PB (8) of T2 (32) lanes whatever RPW (at r32: 48 blocks of 32 for mamba-130m's 1536 channels, under
    // the 132 workgroups; 192 blocks of 8)
    for (var d0 = wgi * PB; d0 < D; d0 += nwgs * PB) {
      let d = d0 + r2;
      var acc = 0.0;
      if (d < D) { acc = cdot(dtW, d, R, lane2, T2); }
      let o = lsum(acc, li, lane2, T2);
      if (lane2 == 0u && d < D) {
        var bias = 0.0;
        if (hasDtB) { bias = cw(tu(l, ${MT.dtB}u) + d); }
        sdt[r2] = softplus(o + bias);
        var val = 0.0;
        if (hasCB) { val = cw(cbo + d); }
        let wb = coff + d * Kc; let kb = cwo + d * Kc;
        let xn = aget(ZB + d);
        for (var t = 0u; t + 1u < Kc; t++) { val = fma(cw(kb + t), $st[o_st + wb + t + 1u], val); }
        su[r2] = silu(fma(cw(kb + Kc - 1u), xn, val));
        for (var t = 0u; t + 1u < Kc; t++) { $st[o_st + wb + t] = $st[o_st + wb + t + 1u]; }
        $st[o_st + wb + Kc - 1u] = xn;
        sg[r2] = silu(aget(ZB + D + d));
      }
      workgroupBarrier();
${SCAN1('d < D', 'T2', 'lane2', 'r2')}
      workgroupBarrier();
    }
    if (!gsync(4u * l + 2u, li)) { return; }
    // ---- phase 4: y staged, out_proj rows + the residual
${STAGE_Y}
${OUT_PROJ('D', false, false)}
    if (!gsync(4u * l + 3u, li)) { return; }
  }
${tail(v)}
}`;
}
