/**
 * S4D kernels for training (`../autograd/s4d.ts`; the semantics of `src/autograd/fused-s4.ts`, ZOH only).
 *
 * The S4D convolution kernel. Per mode k = (h, n): dt = exp(logDt[h]), A = −exp(logAReal[k]) + i·AImag[k],
 * z = dt·A, C = C[k, 0] + i·C[k, 1], dtψ = (eᶻ − 1)/A, W = C·dtψ, and K[h, l] = 2·Re Σ_n W·e^{l·z}.
 * - `S4D_MODES`: one thread per mode: (Re W, Im W, Re z, Im z) into a scratch [H·M, 4].
 * - `S4D_KERNEL`: one thread per (h, l), a loop over the modes, e^{l·z} evaluated directly (parallel over l).
 * - `S4D_KERNEL_GRAD` (one 64-wide workgroup per mode, the sums over l split among its threads and added by a
 *   tree: deterministic) / `S4D_KERNEL_GRAD_SIMPLE` (one thread per mode, for CPU-emulated adapters): with
 *   S0 = Σ_l g[h, l]·e^{lz} and S1 = Σ_l g[h, l]·l·e^{lz}, t = dtψ·S0 and P = C·(dt·ψ′(z)·S0 + dtψ·S1):
 *   dC = (2 Re t, −2 Im t), dlogAReal = 2·dt·Re A·Re P, dAImag = −2·dt·Im P, and the mode's share of dlogDt,
 *   2·Re(C·t) + 2·dt·Re(P·A), into a scratch [H, M].
 * - `S4D_DT_GRAD`: dlogDt[h] = Σ_n share[h, n] (one thread per channel, a fixed order).
 * sin/cos are evaluated by a range reduction to [−π/4, π/4] and Taylor polynomials, and eᶻ − 1 by its series near
 * 0, so the f32 results do not depend on an adapter's transcendental approximations (WGSL only bounds sin/cos
 * within [−π, π], loosely).
 *
 * The causal long convolution (`fft_conv`), computed directly (O(L²) per channel, no FFT):
 *   y[b, t, h] = Σ_{s ≤ t, s < Lk} K[h, s]·u[b, t − s, h] (+ D[h]·u[b, t, h]).
 * - `CONV` / `CONV_SIMPLE`: that sum; with flag `reverse` the time axis of input and output is read backwards,
 *   which turns it into the correlation of the backward, du[b, τ, h] = Σ_{t ≥ τ} K[h, t − τ]·g[b, t, h] (+ D·g).
 *   `CONV` tiles 16 channels × 64 times × 4 batches per 256-thread workgroup; chunks of 32 source times of u and
 *   the 95 lags of K they need are staged in workgroup memory (14 KiB); each thread keeps 4 consecutive times ×
 *   4 batches and slides a 4-tap window of K along the chunk. `CONV_SIMPLE`: one thread per output.
 * - `CONV_DK` / `CONV_DK_SIMPLE`: dK[h, s] = Σ_b Σ_t g[b, t, h]·u[b, t − s, h]. `CONV_DK` tiles 16 channels ×
 *   128 lags per workgroup (8 consecutive lags a thread, a sliding 8-wide window of u), over one group of
 *   batches: partial sums [groups, H, Lk] added afterwards in a fixed order (`sumRows`). `CONV_DK_SIMPLE`: one
 *   thread per (h, s) over every batch and time.
 * - `ROWS_DOT_PART`: partial[c, h] = Σ_{r in rows 64c..64c+63} g[r, h]·u[r, h] (dD = its column sums).
 */
import type { KernelSpec } from '../runtime.js';
import { PER_ITEM_HEAD } from './elementwise.js';


/** (sin x, cos x) to about 1 ulp of the reduced argument, any adapter */
const SINCOS = /* wgsl */ `
fn sincos(x: f32) -> vec2<f32> {
  let q = round(x * 0.63661977236758134);
  let r = fma(-q, -4.371139006309477e-8, fma(-q, 1.5707963705062866, x));
  let r2 = r * r;
  let s = r * (1.0 + r2 * (-0.16666666666666666 + r2 * (8.333333333333333e-3 + r2 * (-1.984126984126984e-4 + r2 * 2.7557319223985893e-6))));
  let c = 1.0 + r2 * (-0.5 + r2 * (4.1666666666666664e-2 + r2 * (-1.388888888888889e-3 + r2 * (2.48015873015873e-5 + r2 * -2.755731922398589e-7))));
  let qi = i32(q) & 3;
  if (qi == 0) { return vec2<f32>(s, c); }
  if (qi == 1) { return vec2<f32>(c, -s); }
  if (qi == 2) { return vec2<f32>(-s, -c); }
  return vec2<f32>(-c, s);
}
fn cmul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> { return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }
`;

/** one S4D mode from the parameters (roles ldt, lar, aim, cc) */
const MODE = /* wgsl */ `${SINCOS}
fn expm1f(x: f32) -> f32 {
  if (abs(x) < 0.5) {
    return x * (1.0 + x * (0.5 + x * (0.16666666666666666 + x * (4.1666666666666664e-2 + x * (8.333333333333333e-3
      + x * (1.388888888888889e-3 + x * (1.984126984126984e-4 + x * (2.48015873015873e-5 + x * 2.7557319223985893e-6))))))));
  }
  return exp(x) - 1.0;
}
struct Mode { dt: f32, a: vec2<f32>, z: vec2<f32>, c: vec2<f32>, dtpsi: vec2<f32> }
fn mode(h: u32, k: u32) -> Mode {
  var m: Mode;
  m.dt = exp($ldt[o_ldt + h]);
  m.a = vec2<f32>(-exp($lar[o_lar + k]), $aim[o_aim + k]);
  m.z = m.dt * m.a;
  m.c = vec2<f32>($cc[o_cc + 2u * k], $cc[o_cc + 2u * k + 1u]);
  // eᶻ − 1 = expm1(zr)·cos zi − 2 sin²(zi/2) + i·e^{zr} sin zi, over A
  let cs = sincos(m.z.y);
  let sh = sincos(0.5 * m.z.y).x;
  let fr = expm1f(m.z.x) * cs.y - 2.0 * sh * sh;
  let fi = exp(m.z.x) * cs.x;
  let den = dot(m.a, m.a);
  m.dtpsi = vec2<f32>(fr * m.a.x + fi * m.a.y, fi * m.a.x - fr * m.a.y) / den;
  return m;
}
/** e^{l·z} */
fn epow(l: f32, z: vec2<f32>) -> vec2<f32> {
  let cs = sincos(l * z.y);
  return exp(l * z.x) * vec2<f32>(cs.y, cs.x);
}
/** ψ′(z) = ((z − 1)eᶻ + 1)/z², by its series Σ_k (k+1) zᵏ/(k+2)! for |z| < 1 */
fn psi_prime(z: vec2<f32>) -> vec2<f32> {
  if (dot(z, z) < 1.0) {
    var p = vec2<f32>(2.2964432686654909e-8, 0.0);
    p = cmul(p, z) + vec2<f32>(2.5052108385441720e-7, 0.0);
    p = cmul(p, z) + vec2<f32>(2.4801587301587302e-6, 0.0);
    p = cmul(p, z) + vec2<f32>(2.2045855379188712e-5, 0.0);
    p = cmul(p, z) + vec2<f32>(1.7361111111111112e-4, 0.0);
    p = cmul(p, z) + vec2<f32>(1.1904761904761906e-3, 0.0);
    p = cmul(p, z) + vec2<f32>(6.9444444444444441e-3, 0.0);
    p = cmul(p, z) + vec2<f32>(3.3333333333333333e-2, 0.0);
    p = cmul(p, z) + vec2<f32>(0.125, 0.0);
    p = cmul(p, z) + vec2<f32>(0.33333333333333333, 0.0);
    return cmul(p, z) + vec2<f32>(0.5, 0.0);
  }
  let num = cmul(z - vec2<f32>(1.0, 0.0), epow(1.0, z)) + vec2<f32>(1.0, 0.0);
  let z2 = cmul(z, z);
  return cmul(num, vec2<f32>(z2.x, -z2.y)) / dot(z2, z2);
}
`;

const S4D_ROLES = ['ldt', 'lar', 'aim', 'cc'] as const;

/** params: H·M, M */
export const S4D_MODES: KernelSpec = {
  name: 's4d_modes',
  roles: [...S4D_ROLES, 'md'],
  writes: ['md'],
  wgsl: () => `${MODE}${PER_ITEM_HEAD}
  let m = mode(i / pu(PK + 1u), i);
  let w = cmul(m.c, m.dtpsi);
  let o = o_md + 4u * i;
  $md[o] = w.x; $md[o + 1u] = w.y; $md[o + 2u] = m.z.x; $md[o + 3u] = m.z.y;
}`,
};

/** params: H·L, L, M */
export const S4D_KERNEL: KernelSpec = {
  name: 's4d_kernel',
  roles: ['md', 'k'],
  writes: ['k'],
  wgsl: () => `${SINCOS}${PER_ITEM_HEAD}
  let L = pu(PK + 1u); let M = pu(PK + 2u);
  let h = i / L; let l = f32(i % L);
  var s = 0.0;
  for (var n = 0u; n < M; n++) {
    let o = o_md + 4u * (h * M + n);
    let cs = sincos(l * $md[o + 3u]);
    let e = exp(l * $md[o + 2u]);
    s += 2.0 * e * ($md[o] * cs.y - $md[o + 1u] * cs.x);
  }
  $k[o_k + i] = s;
}`,
};

/** the gradients of mode k from its sums S0, S1 (see the file's comment) */
const FINISH = /* wgsl */ `
fn finish(h: u32, k: u32, s0: vec2<f32>, s1: vec2<f32>) {
  let m = mode(h, k);
  let t = cmul(m.dtpsi, s0);
  let p = cmul(m.c, m.dt * cmul(psi_prime(m.z), s0) + cmul(m.dtpsi, s1));
  $dc[o_dc + 2u * k] = 2.0 * t.x;
  $dc[o_dc + 2u * k + 1u] = -2.0 * t.y;
  $dlar[o_dlar + k] = 2.0 * p.x * m.dt * m.a.x;
  $daim[o_daim + k] = -2.0 * p.y * m.dt;
  $share[o_share + k] = 2.0 * (m.c.x * t.x - m.c.y * t.y) + 2.0 * m.dt * (p.x * m.a.x - p.y * m.a.y);
}
`;

const GRAD_ROLES = [...S4D_ROLES, 'g', 'dlar', 'daim', 'dc', 'share'];
const GRAD_WRITES = ['dlar', 'daim', 'dc', 'share'];

/** params: H·M, M, L */
export const S4D_KERNEL_GRAD: KernelSpec = {
  name: 's4d_kernel_grad',
  roles: GRAD_ROLES,
  writes: GRAD_WRITES,
  wgsl: () => /* wgsl */ `${MODE}${FINISH}
var<workgroup> red: array<vec4<f32>, 64>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let k = lin(wg, nw);
  if (k >= pu(PK)) { return; }
  let M = pu(PK + 1u); let L = pu(PK + 2u);
  let h = k / M;
  let m = mode(h, k);
  var s = vec4<f32>(0.0);
  for (var l = li; l < L; l += 64u) {
    let gv = $g[o_g + h * L + l];
    let e = gv * epow(f32(l), m.z);
    s += vec4<f32>(e, f32(l) * e);
  }
  red[li] = s;
  workgroupBarrier();
  for (var w = 32u; w > 0u; w >>= 1u) {
    if (li < w) { red[li] += red[li + w]; }
    workgroupBarrier();
  }
  if (li == 0u) { finish(h, k, red[0].xy, red[0].zw); }
}`,
};

/** params: H·M, M, L */
export const S4D_KERNEL_GRAD_SIMPLE: KernelSpec = {
  name: 's4d_kernel_grad_simple',
  roles: GRAD_ROLES,
  writes: GRAD_WRITES,
  wgsl: () => `${MODE}${FINISH}${PER_ITEM_HEAD}
  let M = pu(PK + 1u); let L = pu(PK + 2u);
  let h = i / M;
  let m = mode(h, i);
  var s = vec4<f32>(0.0);
  for (var l = 0u; l < L; l++) {
    let e = $g[o_g + h * L + l] * epow(f32(l), m.z);
    s += vec4<f32>(e, f32(l) * e);
  }
  finish(h, i, s.xy, s.zw);
}`,
};

/** params: H, M */
export const S4D_DT_GRAD: KernelSpec = {
  name: 's4d_dt_grad',
  roles: ['share', 'dldt'],
  writes: ['dldt'],
  wgsl: () => `${PER_ITEM_HEAD}
  let M = pu(PK + 1u);
  var s = 0.0;
  for (var n = 0u; n < M; n++) { s += $share[o_share + i * M + n]; }
  $dldt[o_dldt + i] = s;
}`,
};

// ---- causal convolution ----------------------------------------------------------------------------------------

const TIME = /* wgsl */ `
fn tm(x: u32, L: u32, rev: bool) -> u32 { return select(x, L - 1u - x, rev); }
`;

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/**
 * params: B, L, H, Lk, flags (bit 0 reverse time, bit 1 add D·u), tiles of channels, times, batches.
 * Roles: u (the input: u, or g for the backward), k, d, y.
 */
export const CONV: KernelSpec = {
  name: 'conv_causal',
  roles: ['u', 'k', 'd', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `${TIME}
var<workgroup> Us: array<f32, 2048>; // [4 batches][32 times][16 channels]
var<workgroup> Ks: array<f32, 1552>; // [16 channels][97]: the lags of the chunk
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let B = pu(PK); let L = pu(PK + 1u); let H = pu(PK + 2u); let Lk = pu(PK + 3u); let f = pu(PK + 4u);
  let nh = pu(PK + 5u); let nt = pu(PK + 6u); let nb = pu(PK + 7u);
  let gi = lin(wg, nw);
  if (gi >= nh * nt * nb) { return; }
  let h0 = (gi % nh) * 16u; let t0 = ((gi / nh) % nt) * 64u; let bt0 = (gi / (nh * nt)) * 4u;
  let hh = li % 16u; let tg = li / 16u;
  let rev = (f & 1u) != 0u;
  ${range(4).map((i) => range(4).map((b) => `var a${i}${b} = 0.0;`).join(' ')).join('\n  ')}
  let tEnd = min(t0 + 64u, L);
  var tau0 = 0u;
  if (t0 + 1u > Lk) { tau0 = t0 + 1u - Lk; }
  for (; tau0 < tEnd; tau0 += 32u) {
    for (var q = 0u; q < 8u; q++) {
      let e = li + 256u * q;
      let tau = tau0 + (e / 16u) % 32u; let b = bt0 + e / 512u; let h = h0 + e % 16u;
      var v = 0.0;
      if (tau < L && b < B && h < H) { v = $u[o_u + (b * L + tm(tau, L, rev)) * H + h]; }
      Us[e] = v;
    }
    let base = i32(t0) - i32(tau0) - 31;
    for (var q = 0u; q < 6u; q++) {
      let e = li + 256u * q;
      if (e < 1520u) {
        let eh = e / 95u; let j = e % 95u;
        let lag = base + i32(j); let h = h0 + eh;
        var v = 0.0;
        if (lag >= 0 && u32(lag) < Lk && h < H) { v = $k[o_k + h * Lk + u32(lag)]; }
        Ks[eh * 97u + j] = v;
      }
    }
    workgroupBarrier();
    let kb = hh * 97u + 4u * tg + 31u;
    var k0 = Ks[kb]; var k1 = Ks[kb + 1u]; var k2 = Ks[kb + 2u]; var k3 = Ks[kb + 3u];
    for (var j = 0u; j < 32u; j++) {
      if (j > 0u) { k3 = k2; k2 = k1; k1 = k0; k0 = Ks[kb - j]; }
      let ub = j * 16u + hh;
      ${range(4).map((b) => `let u${b} = Us[${b * 512}u + ub];`).join(' ')}
      ${range(4).map((i) => range(4).map((b) => `a${i}${b} = fma(k${i}, u${b}, a${i}${b});`).join(' ')).join('\n      ')}
    }
    workgroupBarrier();
  }
  let h = h0 + hh;
  if (h >= H) { return; }
  var dv = 0.0;
  if ((f & 2u) != 0u) { dv = $d[o_d + h]; }
  ${range(4).map((i) => range(4).map((b) => `put(${i}u, ${b}u, a${i}${b}, t0 + 4u * tg, bt0, h, B, L, H, rev, dv);`).join(' ')).join('\n  ')}
}
fn put(i: u32, bb: u32, v: f32, t: u32, bt0: u32, h: u32, B: u32, L: u32, H: u32, rev: bool, dv: f32) {
  let b = bt0 + bb;
  if (t + i >= L || b >= B) { return; }
  let o = (b * L + tm(t + i, L, rev)) * H + h;
  $y[o_y + o] = v + dv * $u[o_u + o];
}`,
};

/** params: B·L·H, L, H, Lk, flags (as CONV) */
export const CONV_SIMPLE: KernelSpec = {
  name: 'conv_causal_simple',
  roles: ['u', 'k', 'd', 'y'],
  writes: ['y'],
  wgsl: () => `${TIME}${PER_ITEM_HEAD}
  let L = pu(PK + 1u); let H = pu(PK + 2u); let Lk = pu(PK + 3u); let f = pu(PK + 4u);
  let rev = (f & 1u) != 0u;
  let h = i % H; let b = i / (L * H);
  let t = tm((i / H) % L, L, rev);
  var s = 0.0;
  for (var lag = 0u; lag <= t && lag < Lk; lag++) { s = fma($k[o_k + h * Lk + lag], $u[o_u + (b * L + tm(t - lag, L, rev)) * H + h], s); }
  if ((f & 2u) != 0u) { s += $d[o_d + h] * $u[o_u + i]; }
  $y[o_y + i] = s;
}`,
};

/** params: B, L, H, Lk, batches per group, tiles of channels, lags, batch groups. Output: partials [groups, H, Lk] */
export const CONV_DK: KernelSpec = {
  name: 'conv_causal_dk',
  roles: ['g', 'u', 'part'],
  writes: ['part'],
  wgsl: () => /* wgsl */ `
var<workgroup> Gs: array<f32, 512>;  // [32 times][16 channels]
var<workgroup> Us: array<f32, 2576>; // [16 channels][161]: the 159 times of u the chunk needs
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let B = pu(PK); let L = pu(PK + 1u); let H = pu(PK + 2u); let Lk = pu(PK + 3u); let bg = pu(PK + 4u);
  let nh = pu(PK + 5u); let nl = pu(PK + 6u); let ng = pu(PK + 7u);
  let gi = lin(wg, nw);
  if (gi >= nh * nl * ng) { return; }
  let h0 = (gi % nh) * 16u; let l0 = ((gi / nh) % nl) * 128u; let grp = gi / (nh * nl);
  let hh = li % 16u; let lg = li / 16u;
  ${range(8).map((i) => `var a${i} = 0.0;`).join(' ')}
  let bEnd = min(B, (grp + 1u) * bg);
  for (var b = grp * bg; b < bEnd; b++) {
    for (var t0 = l0; t0 < L; t0 += 32u) {
      for (var q = 0u; q < 2u; q++) {
        let e = li + 256u * q;
        let t = t0 + e / 16u; let h = h0 + e % 16u;
        var v = 0.0;
        if (t < L && h < H) { v = $g[o_g + (b * L + t) * H + h]; }
        Gs[e] = v;
      }
      let base = i32(t0) - i32(l0) - 127;
      for (var q = 0u; q < 10u; q++) {
        let e = li + 256u * q;
        if (e < 2544u) {
          let eh = e % 16u; let j = e / 16u;
          let s = base + i32(j); let h = h0 + eh;
          var v = 0.0;
          if (s >= 0 && u32(s) < L && h < H) { v = $u[o_u + (b * L + u32(s)) * H + h]; }
          Us[eh * 161u + j] = v;
        }
      }
      workgroupBarrier();
      let ub = hh * 161u + 127u - 8u * lg;
      ${range(8).map((i) => `var w${i} = Us[ub - ${i}u];`).join(' ')}
      for (var j = 0u; j < 32u; j++) {
        if (j > 0u) { ${range(7).map((i) => `w${7 - i} = w${6 - i};`).join(' ')} w0 = Us[ub + j]; }
        let gv = Gs[j * 16u + hh];
        ${range(8).map((i) => `a${i} = fma(gv, w${i}, a${i});`).join(' ')}
      }
      workgroupBarrier();
    }
  }
  let h = h0 + hh;
  if (h >= H) { return; }
  let o = o_part + (grp * H + h) * Lk + l0 + 8u * lg;
  let lag = l0 + 8u * lg;
  ${range(8).map((i) => `if (lag + ${i}u < Lk) { $part[o + ${i}u] = a${i}; }`).join('\n  ')}
}`,
};

/** params: H·Lk, B, L, H, Lk */
export const CONV_DK_SIMPLE: KernelSpec = {
  name: 'conv_causal_dk_simple',
  roles: ['g', 'u', 'part'],
  writes: ['part'],
  wgsl: () => `${PER_ITEM_HEAD}
  let B = pu(PK + 1u); let L = pu(PK + 2u); let H = pu(PK + 3u); let Lk = pu(PK + 4u);
  let h = i / Lk; let lag = i % Lk;
  var s = 0.0;
  for (var b = 0u; b < B; b++) {
    for (var t = lag; t < L; t++) { s = fma($g[o_g + (b * L + t) * H + h], $u[o_u + (b * L + t - lag) * H + h], s); }
  }
  $part[o_part + i] = s;
}`,
};

/** params: chunks·H, H, rows */
export const ROWS_DOT_PART: KernelSpec = {
  name: 'rows_dot_part',
  roles: ['g', 'u', 'part'],
  writes: ['part'],
  wgsl: () => `${PER_ITEM_HEAD}
  let H = pu(PK + 1u); let R = pu(PK + 2u);
  let h = i % H; let r0 = (i / H) * 64u;
  var s = 0.0;
  for (var r = r0; r < min(r0 + 64u, R); r++) { s = fma($g[o_g + r * H + h], $u[o_u + r * H + h], s); }
  $part[o_part + i] = s;
}`,
};
