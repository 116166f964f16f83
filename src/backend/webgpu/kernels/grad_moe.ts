/**
 * Mixture-of-experts kernels for training (`../autograd/moe.ts`):
 * - `ROUTE_WEIGHTS`: the routing weights w [M, k] of the experts picked per row (`ex`, M·k ids as floats) from
 *   router logits x [M, E], one thread per row: 'softmax-topk' (mode 0) = softmax over all E then picked, with
 *   the row's max and exp-sum kept in `st` [M, 2] for the backward; 'topk-softmax' (mode 1) = softmax over the k
 *   picked logits.
 * - `ROUTE_WEIGHTS_GRAD`: dx [M, E], one thread per (row, expert). With dot = Σ_j g_j·w_j:
 *   mode 0: dx_e = p_e·(Σ_{j: ex_j = e} g_j − dot), p = softmax(x) rebuilt from `st`;
 *   mode 1: dx_e = Σ_{j: ex_j = e} w_j·(g_j − dot).
 * - `SCATTER_ROWS`: y[r] = Σ_{i: rows[i] = r} w[i]·src[i] from a CSR list built on the host (off[0..count], then
 *   the i's of each row in ascending order): each output element sums its sources in a fixed order, so there are
 *   no float atomics and every run gives the same bits; rows without sources are 0.
 * - `SCATTER_ROWS_GRAD` (one 64-wide workgroup per source row, a tree reduction) / `SCATTER_ROWS_GRAD_SIMPLE` (one
 *   thread per source row, for CPU-emulated adapters): dsrc[i] = w[i]·g[rows[i]], dw[i] = g[rows[i]]·src[i].
 */
import type { KernelSpec } from '../runtime.js';
import { PER_ITEM_HEAD } from './elementwise.js';


/** params: M, E, k, mode (0 softmax-topk, 1 topk-softmax) */
export const ROUTE_WEIGHTS: KernelSpec = {
  name: 'route_weights',
  roles: ['x', 'ex', 'w', 'st'],
  writes: ['w', 'st'],
  wgsl: () => /* wgsl */ `${PER_ITEM_HEAD}
  let E = pu(PK + 1u); let k = pu(PK + 2u); let mode = pu(PK + 3u);
  let xo = o_x + i * E; let eo = o_ex + i * k; let wo = o_w + i * k;
  if (mode == 0u) {
    var mx = $x[xo];
    for (var e = 1u; e < E; e++) { mx = max(mx, $x[xo + e]); }
    var s = 0.0;
    for (var e = 0u; e < E; e++) { s += exp($x[xo + e] - mx); }
    for (var j = 0u; j < k; j++) { $w[wo + j] = exp($x[xo + u32($ex[eo + j])] - mx) / s; }
    $st[o_st + 2u * i] = mx;
    $st[o_st + 2u * i + 1u] = s;
  } else {
    var mx = $x[xo + u32($ex[eo])];
    for (var j = 1u; j < k; j++) { mx = max(mx, $x[xo + u32($ex[eo + j])]); }
    var s = 0.0;
    for (var j = 0u; j < k; j++) { s += exp($x[xo + u32($ex[eo + j])] - mx); }
    for (var j = 0u; j < k; j++) { $w[wo + j] = exp($x[xo + u32($ex[eo + j])] - mx) / s; }
  }
}`,
};

/** params: M·E, E, k, mode */
export const ROUTE_WEIGHTS_GRAD: KernelSpec = {
  name: 'route_weights_grad',
  roles: ['x', 'ex', 'w', 'st', 'g', 'dx'],
  writes: ['dx'],
  wgsl: () => /* wgsl */ `${PER_ITEM_HEAD}
  let E = pu(PK + 1u); let k = pu(PK + 2u); let mode = pu(PK + 3u);
  let m = i / E; let e = f32(i % E);
  let eo = o_ex + m * k; let wo = o_w + m * k; let go = o_g + m * k;
  var dot = 0.0;
  for (var j = 0u; j < k; j++) { dot += $g[go + j] * $w[wo + j]; }
  var s = 0.0;
  if (mode == 0u) {
    for (var j = 0u; j < k; j++) { if ($ex[eo + j] == e) { s += $g[go + j]; } }
    let p = exp($x[o_x + i] - $st[o_st + 2u * m]) / $st[o_st + 2u * m + 1u];
    s = p * (s - dot);
  } else {
    for (var j = 0u; j < k; j++) { if ($ex[eo + j] == e) { s += $w[wo + j] * ($g[go + j] - dot); } }
  }
  $dx[o_dx + i] = s;
}`,
};

/** params: count·H, H, count */
export const SCATTER_ROWS: KernelSpec = {
  name: 'scatter_rows',
  roles: ['csr', 'src', 'w', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `${PER_ITEM_HEAD}
  let H = pu(PK + 1u); let R = pu(PK + 2u);
  let r = i / H; let h = i % H;
  let a = u32($csr[o_csr + r]); let b = u32($csr[o_csr + r + 1u]);
  var s = 0.0;
  for (var j = a; j < b; j++) {
    let src = u32($csr[o_csr + R + 1u + j]);
    s += $w[o_w + src] * $src[o_src + src * H + h];
  }
  $y[o_y + i] = s;
}`,
};

/** params: n, H, flags (bit 0: write dsrc, bit 1: write dw) */
export const SCATTER_ROWS_GRAD: KernelSpec = {
  name: 'scatter_rows_grad',
  roles: ['rows', 'src', 'w', 'g', 'ds', 'dw'],
  writes: ['ds', 'dw'],
  wgsl: () => /* wgsl */ `
var<workgroup> red: array<f32, 64>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let i = lin(wg, nw);
  if (i >= pu(PK)) { return; }
  let H = pu(PK + 1u); let f = pu(PK + 2u);
  let go = o_g + u32($rows[o_rows + i]) * H; let so = o_src + i * H;
  let w = $w[o_w + i];
  var acc = 0.0;
  for (var h = li; h < H; h += 64u) {
    let g = $g[go + h];
    if ((f & 1u) != 0u) { $ds[o_ds + i * H + h] = w * g; }
    acc += g * $src[so + h];
  }
  red[li] = acc;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  if (li == 0u && (f & 2u) != 0u) { $dw[o_dw + i] = red[0]; }
}`,
};

/** params: n, H, flags */
export const SCATTER_ROWS_GRAD_SIMPLE: KernelSpec = {
  name: 'scatter_rows_grad_simple',
  roles: ['rows', 'src', 'w', 'g', 'ds', 'dw'],
  writes: ['ds', 'dw'],
  wgsl: () => /* wgsl */ `${PER_ITEM_HEAD}
  let H = pu(PK + 1u); let f = pu(PK + 2u);
  let go = o_g + u32($rows[o_rows + i]) * H; let so = o_src + i * H;
  let w = $w[o_w + i];
  var acc = 0.0;
  for (var h = 0u; h < H; h++) {
    let g = $g[go + h];
    if ((f & 1u) != 0u) { $ds[o_ds + i * H + h] = w * g; }
    acc += g * $src[so + h];
  }
  if ((f & 2u) != 0u) { $dw[o_dw + i] = acc; }
}`,
};
