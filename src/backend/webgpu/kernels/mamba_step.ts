/**
 * Fused single-token (decode) steps of the Mamba mixers, between in_proj and out_proj. The in_proj matvec
 * has already shifted the conv window and written the new input into its last slot (`MATVEC_V`'s conv
 * epilogue), so these kernels only read the window: u = silu(Σ_t conv[c, t] · window[b, c, t] + bias[c]),
 * recomputed wherever it is needed (a few loads from cache) instead of a dispatch of its own.
 *
 * Mamba-1 (two dispatches):
 * - `MAMBA1_XPROJ`: one workgroup per (row j of x_proj, batch row b): xdbl[b, j] = x_proj[j, :] · u[b, :].
 * - `MAMBA1_SCAN`: one workgroup per (16 channels, b): the optional Δ'/B/C RMSNorms (FalconMamba, Jamba),
 *   Δ = softplus(dt_proj · Δ' + bias), the state update h = exp(Δ A) h + Δ u B over 16 lanes per channel,
 *   y = (C · h + D u) · silu(z).
 * Mamba-2 (one dispatch):
 * - `MAMBA2_STEP`: one workgroup per (8 rows of a head, head, b): the conv of its x rows and its group's
 *   B and C, Δ = clamp(softplus(Δ' + bias), lo, hi), h = exp(Δ A_h) h + Δ x B over 32 lanes per row,
 *   y = C · h + D_h x, and z copied out contiguous (the gated norm follows, folded into out_proj).
 * decodeKernels 'v2' runs their subgroup forms (mamba_step_sg.ts; MAMBA1_XPROJ's variant = the subgroup size).
 */
import type { KernelSpec } from '../runtime.js';

/** largest R + 2N (Mamba-1) and N (Mamba-2) the step kernels stage in workgroup memory */
export const STEP_MAX_XDBL = 1024;
export const STEP_MAX_STATE = 256;

export const CONV = /* wgsl */ `
fn conv_u(b: u32, c: u32, C: u32, Kc: u32, hasCB: bool) -> f32 {
  var v = 0.0;
  if (hasCB) { v = $cb[o_cb + c]; }
  let wb = o_win + (b * C + c) * Kc; let cb = o_cw + c * Kc;
  for (var t = 0u; t < Kc; t++) { v = fma($cw[cb + t], $win[wb + t], v); }
  return silu(v);
}`;

/**
 * The selective state update and its read-out, one WGSL for every decode-step kernel (MAMBA1_SCAN, MAMBA2_STEP, MEGA1,
 * MEGA2: they differ only in where the operands come from): over the lanes `lane` of `T` of a row (a channel, or a
 * head's row), where `ok`, h[n] = decay(n) · h[n] + dx · B(n) stored back (`h(n)`: the state element, an lvalue), and
 * part += h[n] · C(n); then the sum over the T lanes into red[li] (valid at lane 0). Every thread of the workgroup runs
 * it (barriers inside); it needs `red` (256 floats), `li` and N in scope. `ahead` (MEGA2 'e'): a lane's state elements
 * loaded that many at a time before any is updated (indices clamped into [0, N): the loads are issued together rather
 * than one memory round trip per element; the same products in the same order, so the same result).
 */
export function stateUpdate(o: { ok: string; T: string; lane: string; h: (n: string) => string; decay: (n: string) => string; dx: string; B: (n: string) => string; C: (n: string) => string; ahead?: number }): string {
  const U = o.ahead ?? 1;
  const ks = Array.from({ length: U }, (_, k) => k);
  const loop = U === 1
    ? /* wgsl */ `
    for (var n = ${o.lane}; n < N; n += ${o.T}) {
      let hv = ${o.decay('n')} * ${o.h('n')} + ${o.dx} * ${o.B('n')};
      ${o.h('n')} = hv;
      part += hv * ${o.C('n')};
    }`
    : /* wgsl */ `
    for (var n0 = ${o.lane}; n0 < N; n0 += ${U}u * ${o.T}) {
${ks.map((k) => `      let n${k + 1} = min(n0 + ${k}u * ${o.T}, N - 1u);`).join('\n')}
${ks.map((k) => `      let g${k + 1} = ${o.h(`n${k + 1}`)};`).join('\n')}
${ks.map((k) => `      if (n0 + ${k}u * ${o.T} < N) {
        let hv = ${o.decay(`n${k + 1}`)} * g${k + 1} + ${o.dx} * ${o.B(`n${k + 1}`)};
        ${o.h(`n${k + 1}`)} = hv;
        part += hv * ${o.C(`n${k + 1}`)};
      }`).join('\n')}
    }`;
  return /* wgsl */ `
  var part = 0.0;
  if (${o.ok}) {${loop}
  }
  red[li] = part;
  workgroupBarrier();
  for (var s = ${o.T} / 2u; s > 0u; s >>= 1u) {
    if (${o.lane} < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }`;
}

/**
 * params: Bn, Dm, Kc, J, flags (1 conv bias). Variant '' (v1): a workgroup tree reduction; the subgroup size
 * (decodeKernels 'v2', a fixed size): subgroupAdd, then one barrier to add the subgroups' partials.
 */
export const MAMBA1_XPROJ: KernelSpec = {
  name: 'mamba1_xproj',
  roles: ['win', 'cw', 'cb', 'xp', 'xdbl'],
  writes: ['xdbl'],
  wgsl: (v) => /* wgsl */ `
${CONV}
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32${v ? `,
        @builtin(subgroup_invocation_id) lane: u32` : ''}) {
  init_offsets();
  let Bn = pu(PK); let Dm = pu(PK + 1u); let Kc = pu(PK + 2u); let J = pu(PK + 3u); let flags = pu(PK + 4u);
  let g = lin(wg, nwg); let j = g % J; let b = g / J;
  if (b >= Bn) { return; }
  var s = 0.0;
  for (var k = li; k < Dm; k += 256u) { s = fma($xp[o_xp + j * Dm + k], conv_u(b, k, Dm, Kc, (flags & 1u) != 0u), s); }
  ${v ? `let t = subgroupAdd(s);
  if (lane == 0u) { red[li / ${Number(v)}u] = t; }
  workgroupBarrier();
  if (li == 0u) {
    var r = 0.0;
    for (var i = 0u; i < ${256 / Number(v)}u; i++) { r += red[i]; }
    $xdbl[o_xdbl + b * J + j] = r;
  }` : `red[li] = s;
  workgroupBarrier();
  for (var st = 128u; st > 0u; st >>= 1u) {
    if (li < st) { red[li] += red[li + st]; }
    workgroupBarrier();
  }
  if (li == 0u) { $xdbl[o_xdbl + b * J + j] = red[0]; }`}
}`,
};

/**
 * Variant 'p' (decodeKernels 'fused', one row): xdbl holds nP partial x_proj rows [nP, J] (`MATVEC_X` ':p'), added
 * up here in a fixed order (the same in every workgroup: deterministic).
 */
const XDBL_PARTIALS = /* wgsl */ `
  let nP = pu(PK + 7u);
  var L = 256u;
  while (L > 1u && L * J > 256u) { L >>= 1u; }
  for (var j0 = 0u; j0 < J; j0 += 256u / L) {
    let jj = j0 + li / L; let sl = li % L;
    var a0 = 0.0; var a1 = 0.0;
    if (jj < J) {
      var p = sl;
      for (; p + L < nP; p += 2u * L) {
        a0 += $xdbl[o_xdbl + p * J + jj];
        a1 += $xdbl[o_xdbl + (p + L) * J + jj];
      }
      if (p < nP) { a0 += $xdbl[o_xdbl + p * J + jj]; }
    }
    red[li] = a0 + a1;
    workgroupBarrier();
    for (var st = L / 2u; st > 0u; st >>= 1u) {
      if (sl < st) { red[li] += red[li + st]; }
      workgroupBarrier();
    }
    if (sl == 0u && jj < J) { xv[jj] = red[li]; }
    workgroupBarrier();
  }`;

/**
 * flags: 1 conv bias, 2 Δ'/B/C norms, 4 Δ' norm weight, 8 B norm weight, 16 C norm weight, 32 write Δ to dto [b, Dm]
 * (Δ observed; without it dto may be any written role's buffer: it is not touched).
 * params: Bn, Dm, N, R, Kc, flags, eps (, nP: variant 'p')
 */
/** the first lines of a Mamba-1 scan step's main: its parameters, the workgroup's channel block `blk` of sequence `b`, J = R + 2N (MAMBA1_SCAN, MAMBA1_SCAN_S) */
export const MAMBA1_HEAD = /* wgsl */ `  init_offsets();
  let Bn = pu(PK); let Dm = pu(PK + 1u); let N = pu(PK + 2u); let R = pu(PK + 3u); let Kc = pu(PK + 4u);
  let flags = pu(PK + 5u); let eps = pf(PK + 6u);
  let nblk = (Dm + CW - 1u) / CW;
  let g = lin(wg, nwg); let blk = g % nblk; let b = g / nblk;
  if (b >= Bn) { return; }
  let J = R + 2u * N;`;

/**
 * Mamba-1's Δ, B and C norms (Falcon-Mamba-style, flags & 2) over the staged x_proj row `xv` (R + 2N floats): each part
 * RMS-normed (its weights where flags 4, 8, 16 say so), in place; needs `nrm` (3 floats) in workgroup memory.
 * Shared by MAMBA1_SCAN and MAMBA1_SCAN_S (mamba_step_stream.ts).
 */
export const XDBL_NORMS = /* wgsl */ `  if ((flags & 2u) != 0u) {
    if (li < 3u) {
      var o = 0u; var n = R;
      if (li == 1u) { o = R; n = N; }
      if (li == 2u) { o = R + N; n = N; }
      var s = 0.0;
      for (var i = 0u; i < n; i++) { s += xv[o + i] * xv[o + i]; }
      nrm[li] = inverseSqrt(s / f32(n) + eps);
    }
    workgroupBarrier();
    for (var i = li; i < J; i += 256u) {
      var v = xv[i];
      if (i < R) {
        v *= nrm[0];
        if ((flags & 4u) != 0u) { v *= $nd[o_nd + i]; }
      } else if (i < R + N) {
        v *= nrm[1];
        if ((flags & 8u) != 0u) { v *= $nB[o_nB + i - R]; }
      } else {
        v *= nrm[2];
        if ((flags & 16u) != 0u) { v *= $nC[o_nC + i - R - N]; }
      }
      xv[i] = v;
    }
    workgroupBarrier();
  }
`;

export const MAMBA1_SCAN: KernelSpec = {
  name: 'mamba1_scan',
  roles: ['xdbl', 'win', 'cw', 'cb', 'xz', 'dtw', 'dtb', 'A', 'D', 'nd', 'nB', 'nC', 'state', 'y', 'dto'],
  writes: ['state', 'y', 'dto'],
  wgsl: (v) => /* wgsl */ `
${CONV}
const CW: u32 = 16u;
const TPC: u32 = 16u;
var<workgroup> xv: array<f32, ${STEP_MAX_XDBL}>;
var<workgroup> nrm: array<f32, 3>;
var<workgroup> su: array<f32, 16>;
var<workgroup> sdt: array<f32, 16>;
var<workgroup> sg: array<f32, 16>;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
${MAMBA1_HEAD}
  ${v === 'p' ? XDBL_PARTIALS : `for (var i = li; i < J; i += 256u) { xv[i] = $xdbl[o_xdbl + b * J + i]; }
  workgroupBarrier();`}
${XDBL_NORMS}  // Δ' · dt_proj[d, :] over the channel's 16 lanes, then the per-channel scalars
  let c = li / TPC; let lane = li % TPC;
  let d = blk * CW + c;
  var pd = 0.0;
  if (d < Dm) {
    for (var r = lane; r < R; r += TPC) { pd = fma(xv[r], $dtw[o_dtw + d * R + r], pd); }
  }
  red[li] = pd;
  workgroupBarrier();
  for (var s = TPC / 2u; s > 0u; s >>= 1u) {
    if (lane < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  if (lane == 0u && d < Dm) {
    su[c] = conv_u(b, d, Dm, Kc, (flags & 1u) != 0u);
    sdt[c] = softplus(red[li] + $dtb[o_dtb + d]);
    if ((flags & 32u) != 0u) { $dto[o_dto + b * Dm + d] = sdt[c]; }
    sg[c] = silu($xz[o_xz + b * 2u * Dm + Dm + d]);
  }
  workgroupBarrier();
  let dt = sdt[c];
  let so = o_state + (b * Dm + d) * N;
${stateUpdate({ ok: 'd < Dm', T: 'TPC', lane: 'lane', h: (n) => `$state[so + ${n}]`, decay: (n) => `exp(dt * $A[o_A + d * N + ${n}])`, dx: 'dt * su[c]', B: (n) => `xv[R + ${n}]`, C: (n) => `xv[R + N + ${n}]` })}
  if (lane == 0u && d < Dm) {
    $y[o_y + b * Dm + d] = (red[li] + $D[o_D + d] * su[c]) * sg[c];
  }
}`,
};

/**
 * The parameters of the Mamba-2 step kernels and the workgroup's (block of PB rows pb, head h, batch row b), its
 * group grp, conv width C; workgroups past the batch return.
 */
export const MAMBA2_HEAD = /* wgsl */ `
  let Bn = pu(PK); let nh = pu(PK + 1u); let hd = pu(PK + 2u); let G = pu(PK + 3u); let N = pu(PK + 4u);
  let I = pu(PK + 5u); let Kc = pu(PK + 6u); let flags = pu(PK + 7u); let lo = pf(PK + 8u); let hi = pf(PK + 9u);
  let nP = (hd + PB - 1u) / PB;
  let g = lin(wg, nwg); let pb = g % nP; let bh = g / nP; let h = bh % nh; let b = bh / nh;
  if (b >= Bn) { return; }
  let C = I + 2u * G * N;
  let grp = h / (nh / G);
  let hasCB = (flags & 1u) != 0u;`;

/**
 * flags: 1 conv bias, 2 D, 4 Δ bias, 8 write Δ to dto [b, nh] (Δ observed; without it dto may be any written role's
 * buffer: it is not touched). params: Bn, nh, hd, G, N, I, Kc, flags, lo, hi. Also copies z to zo [b, I].
 */
export const MAMBA2_STEP: KernelSpec = {
  name: 'mamba2_step',
  roles: ['zx', 'win', 'cw', 'cb', 'dtb', 'A', 'D', 'state', 'y', 'zo', 'dto'],
  writes: ['state', 'y', 'zo', 'dto'],
  wgsl: () => /* wgsl */ `
${CONV}
const PB: u32 = 8u;
const TPR: u32 = 32u;
var<workgroup> sx: array<f32, 8>;
var<workgroup> sB: array<f32, ${STEP_MAX_STATE}>;
var<workgroup> sC: array<f32, ${STEP_MAX_STATE}>;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
${MAMBA2_HEAD}
  for (var i = li; i < PB + 2u * N; i += 256u) {
    if (i < PB) {
      let p = pb * PB + i;
      if (p < hd) { sx[i] = conv_u(b, h * hd + p, C, Kc, hasCB); }
    } else if (i < PB + N) {
      sB[i - PB] = conv_u(b, I + grp * N + i - PB, C, Kc, hasCB);
    } else {
      sC[i - PB - N] = conv_u(b, I + G * N + grp * N + i - PB - N, C, Kc, hasCB);
    }
  }
  workgroupBarrier();
  var bias = 0.0;
  if ((flags & 4u) != 0u) { bias = $dtb[o_dtb + h]; }
  let dt = clamp(softplus($zx[o_zx + b * (I + C + nh) + I + C + h] + bias), lo, hi);
  if ((flags & 8u) != 0u && pb == 0u && li == 0u) { $dto[o_dto + b * nh + h] = dt; }
  let dA = exp(dt * $A[o_A + h]);
  let r = li / TPR; let lane = li % TPR;
  let p = pb * PB + r;
  var xv = 0.0;
  if (p < hd) { xv = sx[r]; }
  let so = o_state + ((b * nh + h) * hd + p) * N;
${stateUpdate({ ok: 'p < hd', T: 'TPR', lane: 'lane', h: (n) => `$state[so + ${n}]`, decay: () => 'dA', dx: 'dt * xv', B: (n) => `sB[${n}]`, C: (n) => `sC[${n}]` })}
  if (lane == 0u && p < hd) {
    var out = red[li];
    if ((flags & 2u) != 0u) { out += $D[o_D + h] * xv; }
    let o = (b * nh + h) * hd + p;
    $y[o_y + o] = out;
    $zo[o_zo + o] = $zx[o_zx + b * (I + C + nh) + h * hd + p];
  }
}`,
};
