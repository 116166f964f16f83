/**
 * Mamba-1 selective scan (S6), channel-last: Δ = softplus(δ + bias), h_t = exp(Δ_t A) h_{t−1} + Δ_t B_t u_t,
 * y_t = C_t · h_t + D u_t, y ← y · silu(z). The state of one channel is N numbers, kept in registers.
 *
 * - `SCAN_STEP`: one thread per (b, d) walks t sequentially, the state in the state tensor (decode).
 * - Prefill is the two-level (associative) scan of the CPU reference's `scanChunked`, over chunks of T:
 *   `SCAN_CHUNK`  one thread per (b, chunk, d, block of 16 states): a local scan from h = 0 in registers;
 *                 writes the partial outputs (per state block), the chunk's final local state and ΣΔ;
 *   `SCAN_CARRY`  one thread per (b, d, n): the carries across chunks, H_c = exp(A ΣΔ_c) H_{c−1} + hloc_c,
 *                 in place (hloc becomes the state entering each chunk), and the final state;
 *   `SCAN_FINISH` one thread per (b, chunk, d): y_t = Σ partials + C_t · (exp(A cumΔ_t) ⊙ H_in) + D u, gate.
 * flags: 1 D, 2 z, 4 delta bias, 8 softplus, 16 state
 */
import type { KernelSpec } from '../runtime.js';

const FLAGS = /* wgsl */ `
  let hasD = (flags & 1u) != 0u; let hasZ = (flags & 2u) != 0u; let hasBias = (flags & 4u) != 0u;
  let sp = (flags & 8u) != 0u; let hasState = (flags & 16u) != 0u;`;

const DT = /* wgsl */ `
    var dt = $delta[o_delta + row * Dm + d];
    if (hasBias) { dt += $bias[o_bias + d]; }
    if (sp) { dt = softplus(dt); }`;

/**
 * params: Bn, L, Dm, N, flags, sB, sC, sz (row strides of B, C, z: N / N / Dm, or wider for pieces read in place).
 * Variant '' (the kernel of before): the state updated in place, one load-update-store per state; 'r{N}' (N ≤ 64 compiled
 * in): the state row held in registers over the L steps, its N loads issued together, stored once (same arithmetic).
 */
export const SCAN_STEP: KernelSpec = {
  name: 'scan_step',
  roles: ['u', 'delta', 'A', 'B', 'C', 'D', 'z', 'bias', 'state', 'y'],
  writes: ['state', 'y'],
  wgsl: (v) => {
    const R = v === '' ? 0 : Number(v.slice(1));
    if (v !== '' && !(/^r\d+$/.test(v) && R >= 1 && R <= 64)) throw new Error(`scan_step: bad variant ${JSON.stringify(v)} (want '' or r1…r64)`);
    const step = R
      ? /* wgsl */ `
      let hv = exp(dt * $A[o_A + d * N + n]) * h[n] + du * $B[o_B + row * sB + n];
      h[n] = hv;
      acc += hv * $C[o_C + row * sC + n];`
      : /* wgsl */ `
      let hv = exp(dt * $A[o_A + d * N + n]) * $state[so + n] + du * $B[o_B + row * sB + n];
      $state[so + n] = hv;
      acc += hv * $C[o_C + row * sC + n];`;
    return /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let Dm = pu(PK + 2u); let N = ${R ? `${R}u` : 'pu(PK + 3u)'}; let flags = pu(PK + 4u);
  let sB = pu(PK + 5u); let sC = pu(PK + 6u); let sz = pu(PK + 7u);
  ${FLAGS}
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * Dm) { return; }
  let d = i % Dm; let b = i / Dm;
  let so = o_state + (b * Dm + d) * N;${R ? `
  var h = array<f32, ${R}>();
  for (var n = 0u; n < ${R}u; n++) { h[n] = $state[so + n]; }` : ''}
  for (var t = 0u; t < L; t++) {
    let row = b * L + t;
    ${DT}
    let uv = $u[o_u + row * Dm + d];
    let du = dt * uv;
    var acc = 0.0;
    for (var n = 0u; n < N; n++) {${step}
    }
    if (hasD) { acc += $D[o_D + d] * uv; }
    if (hasZ) { acc *= silu($z[o_z + row * sz + d]); }
    $y[o_y + row * Dm + d] = acc;
  }${R ? `
  for (var n = 0u; n < ${R}u; n++) { $state[so + n] = h[n]; }` : ''}
}`;
  },
};

/** params: Bn, L, Dm, N, flags, T, nC, nB */
export const SCAN_CHUNK: KernelSpec = {
  name: 'scan_chunk',
  roles: ['u', 'delta', 'A', 'B', 'C', 'bias', 'ypart', 'hloc', 'dsum'],
  writes: ['ypart', 'hloc', 'dsum'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let Dm = pu(PK + 2u); let N = pu(PK + 3u); let flags = pu(PK + 4u);
  let T = pu(PK + 5u); let nC = pu(PK + 6u); let nB = pu(PK + 7u);
  ${FLAGS}
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * nC * nB * Dm) { return; }
  let d = i % Dm; let r = i / Dm;
  let nb = r % nB; let bc = r / nB;
  let c = bc % nC; let b = bc / nC;
  let t0 = c * T; let t1 = min(L, t0 + T);
  var h: array<f32, 16>;
  var cum = 0.0;
  for (var t = t0; t < t1; t++) {
    let row = b * L + t;
    ${DT}
    cum += dt;
    let du = dt * $u[o_u + row * Dm + d];
    var acc = 0.0;
    for (var j = 0u; j < 16u; j++) {
      let n = nb * 16u + j;
      if (n < N) {
        let hv = exp(dt * $A[o_A + d * N + n]) * h[j] + du * $B[o_B + row * N + n];
        h[j] = hv;
        acc += hv * $C[o_C + row * N + n];
      }
    }
    $ypart[o_ypart + (nb * Bn * L + row) * Dm + d] = acc;
  }
  let ho = o_hloc + (bc * Dm + d) * N;
  for (var j = 0u; j < 16u; j++) {
    let n = nb * 16u + j;
    if (n < N) { $hloc[ho + n] = h[j]; }
  }
  if (nb == 0u) { $dsum[o_dsum + bc * Dm + d] = cum; }
}`,
};

/**
 * The carries across chunks, one thread per (b, d, n): H_c = exp(A ΣΔ_c) H_{c−1} + hloc_c, in place (hloc becomes the
 * state entering each chunk), and the final state ([B, D, N]). `dFirst`: hloc laid out [B, nC, N, D] and threads
 * d-fastest ('rescan'); else [B, nC, D, N], n-fastest ('partials').
 * params: Bn, Dm, N, nC, flags
 */
function scanCarry(name: string, dFirst: boolean): KernelSpec {
  return {
    name,
    roles: ['A', 'dsum', 'hloc', 'state'],
    writes: ['hloc', 'state'],
    wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let Dm = pu(PK + 1u); let N = pu(PK + 2u); let nC = pu(PK + 3u); let flags = pu(PK + 4u);
  ${FLAGS}
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * Dm * N) { return; }
  ${dFirst ? 'let d = i % Dm; let n = (i / Dm) % N; let b = i / (Dm * N);' : 'let n = i % N; let d = (i / N) % Dm; let b = i / (N * Dm);'}
  let si = o_state + (b * Dm + d) * N + n;
  var carry = 0.0;
  if (hasState) { carry = $state[si]; }
  let a = $A[o_A + d * N + n];
  for (var c = 0u; c < nC; c++) {
    let idx = o_hloc + ${dFirst ? '((b * nC + c) * N + n) * Dm + d' : '((b * nC + c) * Dm + d) * N + n'};
    let hl = $hloc[idx];
    $hloc[idx] = carry;
    carry = exp(a * $dsum[o_dsum + (b * nC + c) * Dm + d]) * carry + hl;
  }
  if (hasState) { $state[si] = carry; }
}`,
  };
}
export const SCAN_CARRY = scanCarry('scan_carry', false);

/** params: Bn, L, Dm, N, flags, T, nC, nB */
export const SCAN_FINISH: KernelSpec = {
  name: 'scan_finish',
  roles: ['u', 'delta', 'A', 'C', 'D', 'z', 'bias', 'ypart', 'hin', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let Dm = pu(PK + 2u); let N = pu(PK + 3u); let flags = pu(PK + 4u);
  let T = pu(PK + 5u); let nC = pu(PK + 6u); let nB = pu(PK + 7u);
  ${FLAGS}
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * nC * Dm) { return; }
  let d = i % Dm; let bc = i / Dm;
  let c = bc % nC; let b = bc / nC;
  let t0 = c * T; let t1 = min(L, t0 + T);
  let carried = c > 0u || hasState;
  let ho = o_hin + (bc * Dm + d) * N;
  var cum = 0.0;
  for (var t = t0; t < t1; t++) {
    let row = b * L + t;
    ${DT}
    cum += dt;
    var acc = 0.0;
    for (var k = 0u; k < nB; k++) { acc += $ypart[o_ypart + (k * Bn * L + row) * Dm + d]; }
    if (carried) {
      for (var n = 0u; n < N; n++) {
        acc += $C[o_C + row * N + n] * exp($A[o_A + d * N + n] * cum) * $hin[ho + n];
      }
    }
    let uv = $u[o_u + row * Dm + d];
    if (hasD) { acc += $D[o_D + d] * uv; }
    if (hasZ) { acc *= silu($z[o_z + row * Dm + d]); }
    $y[o_y + row * Dm + d] = acc;
  }
}`,
};

/**
 * The decode step (L = 1) with dt_proj fused in: δ_d = Σ_r dtx[b, r] · dtw[d, r] (written to `delta` too,
 * so the linear's output stays valid), then as `SCAN_STEP`. One thread per (b, d).
 * params: Bn, Dm, N, R, flags (as SCAN_STEP's; 16 state is required)
 */
export const SCAN_STEP_DT: KernelSpec = {
  name: 'scan_step_dt',
  roles: ['u', 'dtx', 'dtw', 'A', 'B', 'C', 'D', 'z', 'bias', 'state', 'y', 'delta'],
  writes: ['state', 'y', 'delta'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let Dm = pu(PK + 1u); let N = pu(PK + 2u); let R = pu(PK + 3u); let flags = pu(PK + 4u);
  ${FLAGS}
  let i = lin(wg, nw) * 256u + li;
  if (i >= Bn * Dm) { return; }
  let d = i % Dm; let b = i / Dm;
  let so = o_state + (b * Dm + d) * N;
  let row = b;
  var dl = 0.0;
  for (var r = 0u; r < R; r++) { dl = fma($dtx[o_dtx + b * R + r], $dtw[o_dtw + d * R + r], dl); }
  $delta[o_delta + row * Dm + d] = dl;
  var dt = dl;
  if (hasBias) { dt += $bias[o_bias + d]; }
  if (sp) { dt = softplus(dt); }
  let uv = $u[o_u + row * Dm + d];
  let du = dt * uv;
  var acc = 0.0;
  for (var n = 0u; n < N; n++) {
    let hv = exp(dt * $A[o_A + d * N + n]) * $state[so + n] + du * $B[o_B + row * N + n];
    $state[so + n] = hv;
    acc += hv * $C[o_C + row * N + n];
  }
  if (hasD) { acc += $D[o_D + d] * uv; }
  if (hasZ) { acc *= silu($z[o_z + row * Dm + d]); }
  $y[o_y + row * Dm + d] = acc;
}`,
};

/**
 * The chunked prefill scan without partial outputs ('rescan', the default on GPUs): pass 1 scans each chunk from
 * h = 0 and keeps only its final state and ΣΔ; pass 2 carries the states across chunks (`SCAN_CARRY_D`); pass 3
 * scans each chunk again from the state entering it, producing y exactly as the sequential recurrence does (no
 * exp(A·cumΔ) correction, no [nB, B, L, D] partials written and read back). Both scans: a workgroup of 256
 * channels d of one (b, chunk), the N states and A in registers (variant: N), the chunk's B (and C) rows staged
 * 16 steps at a time in workgroup memory. B, C and z are read with their own row strides (bS, cS, zS: views
 * of a wider tensor such as x_proj's or in_proj's output need no copy).
 * Chunk states (hloc) are laid out [B, nC, N, D] (d fastest: every pass reads them coalesced).
 * params (pass 1): Bn, L, Dm, flags, T, nC, nDW (workgroups over d), bS
 */
const SCAN_HEAD = /* wgsl */ `
const NS: u32 = NSTATE;
const TB: u32 = 16u;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let Dm = pu(PK + 2u); let flags = pu(PK + 3u);
  let T = pu(PK + 4u); let nC = pu(PK + 5u); let nDW = pu(PK + 6u); let bS = pu(PK + 7u);
  ${FLAGS}
  let g = lin(wg, nw);
  let bc = g / nDW; let c = bc % nC; let b = bc / nC;
  if (b >= Bn) { return; }
  let d = (g % nDW) * 256u + li;
  let live = d < Dm;
  let dd = min(d, Dm - 1u);
  let t0 = c * T; let t1 = min(L, t0 + T);
  var a: array<f32, NS>;
  var h: array<f32, NS>;`;

/** stage rows tb … tb+TB−1 of a [rows, stride] operand into `sh` (zeros past t1) */
const stage = (sh: string, role: string, stride: string) => /* wgsl */ `
    for (var e = li; e < TB * NS; e += 256u) {
      let tt = e / NS;
      var v = 0.0;
      if (tt < nt) { v = $${role}[o_${role} + (b * L + tb + tt) * ${stride} + e % NS]; }
      ${sh}[e] = v;
    }`;

const DT_D = DT.replace(/\bd\b/g, 'dd');

export const SCAN_STATES: KernelSpec = {
  name: 'scan_states',
  roles: ['u', 'delta', 'A', 'B', 'bias', 'hloc', 'dsum'],
  writes: ['hloc', 'dsum'],
  wgsl: (n) => /* wgsl */ `
var<workgroup> Bsh: array<f32, ${16 * Number(n)}>;
${SCAN_HEAD.replace('NSTATE', `${Number(n)}u`)}
  for (var n = 0u; n < NS; n++) { h[n] = 0.0; a[n] = $A[o_A + dd * NS + n]; }
  var cum = 0.0;
  for (var tb = t0; tb < t1; tb += TB) {
    let nt = min(TB, t1 - tb);
    ${stage('Bsh', 'B', 'bS')}
    workgroupBarrier();
    for (var tt = 0u; tt < nt; tt++) {
      let row = b * L + tb + tt;
      ${DT_D}
      cum += dt;
      let du = dt * $u[o_u + row * Dm + dd];
      for (var n = 0u; n < NS; n++) { h[n] = exp(dt * a[n]) * h[n] + du * Bsh[tt * NS + n]; }
    }
    workgroupBarrier();
  }
  if (live) {
    for (var n = 0u; n < NS; n++) { $hloc[o_hloc + (bc * NS + n) * Dm + d] = h[n]; }
    $dsum[o_dsum + bc * Dm + d] = cum;
  }
}`,
};

/** Pass 2 of 'rescan' (see scanCarry). params: Bn, Dm, N, nC, flags */
export const SCAN_CARRY_D = scanCarry('scan_carry_d', true);

/** Pass 3 of 'rescan'. params: as SCAN_STATES's, then cS, zS */
export const SCAN_OUT: KernelSpec = {
  name: 'scan_out',
  roles: ['u', 'delta', 'A', 'B', 'C', 'D', 'z', 'bias', 'hin', 'y'],
  writes: ['y'],
  wgsl: (n) => /* wgsl */ `
var<workgroup> Bsh: array<f32, ${16 * Number(n)}>;
var<workgroup> Csh: array<f32, ${16 * Number(n)}>;
${SCAN_HEAD.replace('NSTATE', `${Number(n)}u`)}
  let cS = pu(PK + 8u); let zS = pu(PK + 9u);
  for (var n = 0u; n < NS; n++) { h[n] = $hin[o_hin + (bc * NS + n) * Dm + dd]; a[n] = $A[o_A + dd * NS + n]; }
  var dskip = 0.0;
  if (hasD) { dskip = $D[o_D + dd]; }
  for (var tb = t0; tb < t1; tb += TB) {
    let nt = min(TB, t1 - tb);
    ${stage('Bsh', 'B', 'bS')}
    ${stage('Csh', 'C', 'cS')}
    workgroupBarrier();
    for (var tt = 0u; tt < nt; tt++) {
      let row = b * L + tb + tt;
      ${DT_D}
      let uv = $u[o_u + row * Dm + dd];
      let du = dt * uv;
      var acc = 0.0;
      for (var n = 0u; n < NS; n++) {
        h[n] = exp(dt * a[n]) * h[n] + du * Bsh[tt * NS + n];
        acc = fma(h[n], Csh[tt * NS + n], acc);
      }
      acc = fma(dskip, uv, acc);
      if (hasZ) { acc *= silu($z[o_z + row * zS + dd]); }
      if (live) { $y[o_y + row * Dm + d] = acc; }
    }
    workgroupBarrier();
  }
}`,
};
