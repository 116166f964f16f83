/**
 * Greedy decoding: the index of each row's largest value, the first on ties (as the CPU sampler's
 * `argmax`; NaN never wins), written as a float (exact below 2²⁴). One workgroup of 256 per row:
 * strided scan, then a tree reduction that keeps the lower index on equal values.
 * params: rows, V
 */
import type { KernelSpec } from '../runtime.js';

export const ARGMAX_ROWS: KernelSpec = {
  name: 'argmax_rows',
  roles: ['x', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `
var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let rows = pu(PK); let V = pu(PK + 1u);
  let r = lin(wg, nw);
  let ok = r < rows;
  var best = -3.4028234663852886e38;
  var idx = 0xffffffffu;
  if (ok) {
    for (var k = li; k < V; k += 256u) {
      let v = $x[o_x + r * V + k];
      if (v > best || (idx == 0xffffffffu && v == best)) { best = v; idx = k; }
    }
  }
  bv[li] = best; bi[li] = idx;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) {
      let ov = bv[li + s]; let oi = bi[li + s];
      if (oi != 0xffffffffu && (bi[li] == 0xffffffffu || ov > bv[li] || (ov == bv[li] && oi < bi[li]))) { bv[li] = ov; bi[li] = oi; }
    }
    workgroupBarrier();
  }
  if (ok && li == 0u) {
    var o = -1.0;
    if (bi[0] != 0xffffffffu) { o = f32(bi[0]); }
    $y[o_y + r] = o;
  }
}`,
};
