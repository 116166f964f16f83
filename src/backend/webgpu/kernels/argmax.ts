/**
 * Greedy decoding: the index of each row's largest value, the first on ties (as the CPU sampler's
 * `argmax`; NaN never wins; −1 when a row has no finite or +∞ value), written as a float (exact below 2²⁴).
 * Two passes, so that a 50k-entry row is scanned by many workgroups rather than one:
 * - `ARGMAX_PART`: one workgroup of 256 per (row, segment of `seg` entries): strided scan and a tree
 *   reduction that keeps the lower index on equal values → (value, index) pairs [rows, nSeg, 2];
 * - `ARGMAX_FINAL`: one workgroup per row reduces its nSeg pairs the same way.
 */
import type { KernelSpec } from '../runtime.js';

const REDUCE = /* wgsl */ `
var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;
const NONE: u32 = 0xffffffffu;
/** take (v, i) into the running best of this thread: larger value, or the lower index on a tie */
fn better(v: f32, i: u32, best: f32, idx: u32) -> bool {
  return i != NONE && (idx == NONE || v > best || (v == best && i < idx));
}
fn reduce(li: u32) {
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s && better(bv[li + s], bi[li + s], bv[li], bi[li])) { bv[li] = bv[li + s]; bi[li] = bi[li + s]; }
    workgroupBarrier();
  }
}`;

/** params: rows, V, seg, nSeg */
export const ARGMAX_PART: KernelSpec = {
  name: 'argmax_part',
  roles: ['x', 'part'],
  writes: ['part'],
  wgsl: () => /* wgsl */ `
${REDUCE}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let rows = pu(PK); let V = pu(PK + 1u); let seg = pu(PK + 2u); let nSeg = pu(PK + 3u);
  let g = lin(wg, nw);
  let r = g / nSeg; let sg = g % nSeg;
  if (r >= rows) { return; }
  var best = -3.4028234663852886e38;
  var idx = NONE;
  let k1 = min(V, (sg + 1u) * seg);
  for (var k = sg * seg + li; k < k1; k += 256u) {
    let v = $x[o_x + r * V + k];
    if (v > best || (idx == NONE && v == best)) { best = v; idx = k; }
  }
  bv[li] = best; bi[li] = idx;
  reduce(li);
  if (li == 0u) {
    var o = -1.0;
    if (bi[0] != NONE) { o = f32(bi[0]); }
    $part[o_part + g * 2u] = bv[0];
    $part[o_part + g * 2u + 1u] = o;
  }
}`,
};

/** params: rows, nSeg */
export const ARGMAX_FINAL: KernelSpec = {
  name: 'argmax_final',
  roles: ['part', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `
${REDUCE}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let rows = pu(PK); let nSeg = pu(PK + 1u);
  let r = lin(wg, nw);
  if (r >= rows) { return; }
  var best = -3.4028234663852886e38;
  var idx = NONE;
  for (var k = li; k < nSeg; k += 256u) {
    let o = o_part + (r * nSeg + k) * 2u;
    let i = $part[o + 1u];
    if (i >= 0.0 && better($part[o], u32(i), best, idx)) { best = $part[o]; idx = u32(i); }
  }
  bv[li] = best; bi[li] = idx;
  reduce(li);
  if (li == 0u) {
    var o = -1.0;
    if (bi[0] != NONE) { o = f32(bi[0]); }
    $y[o_y + r] = o;
  }
}`,
};
