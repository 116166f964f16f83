/**
 * Backward kernels of the causal depthwise conv1d (training), x [b, L, C] channel-last, w [C, K], and the
 * deterministic row sums the training reductions share.
 *
 * With y[t, c] = act(pre[t, c]), pre[t, c] = bias[c] + Σ_k w[c, k] · x[t − K + 1 + k, c] (zero history) and
 * gp = g · act′(pre) (pre recomputed from x: K taps, cheaper than keeping it):
 * - `CONV_DX`: one thread per (b, s, c): dx[s, c] = Σ_k gp[s + K − 1 − k, c] · w[c, k] (taps inside the sequence).
 * - `CONV_DW`: one thread per (block of R rows of b·L, c): the block's partial sums of dw[c, k] = Σ gp[t, c] ·
 *   x[t − K + 1 + k, c] and dbias[c] = Σ gp[t, c], written as part[rb, c·K + k] and part[rb, C·K + c]
 *   (`ROW_SUM` of matmul_grad.ts adds the blocks up). K is taken in slices of 8 taps held in registers.
 * params (conv kernels): Bn, L, C, K, flags (1 silu, 2 bias), R
 */
import type { KernelSpec } from '../runtime.js';

const CONV_HEAD = /* wgsl */ `
fn sig(v: f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }
/** the gradient at the pre-activation of output (row = b·L + t, c) */
fn gpre(row: u32, t: u32, c: u32, C: u32, K: u32, flags: u32) -> f32 {
  let gv = $g[o_g + row * C + c];
  if ((flags & 1u) == 0u) { return gv; }
  var s = 0.0;
  if ((flags & 2u) != 0u) { s = $bias[o_bias + c]; }
  for (var k = 0u; k < K; k++) {
    if (t + k >= K - 1u) { s += $w[o_w + c * K + k] * $x[o_x + (row + k - (K - 1u)) * C + c]; }
  }
  let q = sig(s);
  return gv * q * (1.0 + s * (1.0 - q));
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let C = pu(PK + 2u); let K = pu(PK + 3u); let flags = pu(PK + 4u); let R = pu(PK + 5u);
  let i = lin(wg, nw) * 256u + li;`;

export const CONV_DX: KernelSpec = {
  name: 'conv_dx',
  roles: ['x', 'w', 'bias', 'g', 'dx'],
  writes: ['dx'],
  wgsl: () => /* wgsl */ `${CONV_HEAD}
  if (i >= Bn * L * C) { return; }
  let c = i % C; let row = i / C; let s = row % L;
  var acc = 0.0;
  for (var k = 0u; k < K; k++) {
    let t = s + K - 1u - k; // the output reading x[s] through tap k
    if (t < L) { acc += gpre(row + K - 1u - k, t, c, C, K, flags) * $w[o_w + c * K + k]; }
  }
  $dx[o_dx + i] = acc;
}`,
};

export const CONV_DW: KernelSpec = {
  name: 'conv_dw',
  roles: ['x', 'w', 'bias', 'g', 'part'],
  writes: ['part'],
  wgsl: () => /* wgsl */ `${CONV_HEAD}
  let rows = Bn * L;
  let nRB = (rows + R - 1u) / R;
  if (i >= nRB * C) { return; }
  let c = i % C; let rb = i / C;
  let r0 = rb * R; let r1 = min(rows, r0 + R);
  let W = C * K + C;
  var db = 0.0;
  for (var k0 = 0u; k0 < K; k0 += 8u) {
    var acc: array<f32, 8>;
    for (var j = 0u; j < 8u; j++) { acc[j] = 0.0; } // not left to the declaration (see grad_scan.ts)
    for (var r = r0; r < r1; r++) {
      let t = r % L;
      let gp = gpre(r, t, c, C, K, flags);
      if (k0 == 0u) { db += gp; }
      for (var j = 0u; j < 8u; j++) {
        let k = k0 + j;
        if (k < K && t + k >= K - 1u) { acc[j] += gp * $x[o_x + (r + k - (K - 1u)) * C + c]; }
      }
    }
    for (var j = 0u; j < 8u; j++) {
      if (k0 + j < K) { $part[o_part + rb * W + c * K + k0 + j] = acc[j]; }
    }
  }
  $part[o_part + rb * W + C * K + c] = db;
}`,
};
