/**
 * Softmax cross-entropy for training, over M rows of V logits with one target per row (`tg`: the target as a
 * float, −1 for a row that is not scored).
 * - `CE_ROWS`: per row, in one pass over the logits, the running max and the rescaled sum of exponentials (and
 *   the first index of the max); `lse` = max + log Σ exp, `aux` = [nll (M) | hit (M)] with nll = lse − x[target]
 *   and hit = 1 where the argmax (the first one on ties) is the target, both 0 on rows not scored. One workgroup
 *   of 256 per row (strided scan, then a tree reduction: deterministic); variant 's' (CPU-emulated adapters):
 *   one thread per row, barrier-free.
 * - `CE_LOSS`: loss = Σ nll · (1/count), correct = Σ hit, in a fixed order (strided partial sums of one
 *   workgroup, then a tree); variant 's': one thread sums everything.
 * - `CE_GRAD`: dx[m, v] = (exp(x − lse[m]) − [v = target]) · g · (1/count) on scored rows, 0 on the others.
 */
import type { KernelSpec } from '../runtime.js';

/** roles: x, tg, lse, aux. params: M, V. Grid: M workgroups (variant ''), threads(M) (variant 's') */
export const CE_ROWS: KernelSpec = {
  name: 'cross_entropy_rows',
  roles: ['x', 'tg', 'lse', 'aux'],
  writes: ['lse', 'aux'],
  wgsl: (variant) => /* wgsl */ `
var<workgroup> wm: array<f32, 256>;
var<workgroup> wsum: array<f32, 256>;
var<workgroup> wi: array<u32, 256>;
fn finish(row: u32, M: u32, V: u32, m: f32, s: f32, arg: u32) {
  let lse = m + log(s);
  $lse[o_lse + row] = lse;
  let t = $tg[o_tg + row];
  var nll = 0.0;
  var hit = 0.0;
  if (t >= 0.0) {
    let ti = u32(t);
    nll = lse - $x[o_x + row * V + ti];
    hit = select(0.0, 1.0, arg == ti);
  }
  $aux[o_aux + row] = nll;
  $aux[o_aux + M + row] = hit;
}
@compute @workgroup_size(${variant === 's' ? 64 : 256})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let V = pu(PK + 1u);
${variant === 's' ? /* wgsl */ `
  let row = lin(wg, nw) * 64u + li;
  if (row >= M) { return; }
  var m = -3.4028234e38;
  var s = 0.0;
  var arg = 0u;
  for (var v = 0u; v < V; v++) {
    let x = $x[o_x + row * V + v];
    if (x > m) { s *= exp(m - x); m = x; arg = v; }
    s += exp(x - m);
  }
  finish(row, M, V, m, s, arg);
}` : /* wgsl */ `
  let row = lin(wg, nw);
  if (row >= M) { return; }
  var m = -3.4028234e38;
  var s = 0.0;
  var arg = 0xffffffffu;
  for (var v = li; v < V; v += 256u) {
    let x = $x[o_x + row * V + v];
    if (x > m) { s *= exp(m - x); m = x; arg = v; }
    s += exp(x - m);
  }
  wm[li] = m; wsum[li] = s; wi[li] = arg;
  workgroupBarrier();
  for (var h = 128u; h > 0u; h /= 2u) {
    if (li < h) {
      let m1 = wm[li]; let m2 = wm[li + h];
      let mx = max(m1, m2);
      wsum[li] = wsum[li] * exp(m1 - mx) + wsum[li + h] * exp(m2 - mx);
      if (m2 > m1 || (m2 == m1 && wi[li + h] < wi[li])) { wi[li] = wi[li + h]; }
      wm[li] = mx;
    }
    workgroupBarrier();
  }
  if (li == 0u) { finish(row, M, V, wm[0], wsum[0], wi[0]); }
}`}`,
};

/** roles: aux, loss, correct. params: M, 1/count (f32 bits; 0 when no row is scored). Grid: one workgroup */
export const CE_LOSS: KernelSpec = {
  name: 'cross_entropy_loss',
  roles: ['aux', 'loss', 'correct'],
  writes: ['loss', 'correct'],
  wgsl: (variant) => /* wgsl */ `
var<workgroup> wa: array<f32, 256>;
var<workgroup> wh: array<f32, 256>;
@compute @workgroup_size(${variant === 's' ? 1 : 256})
fn main(@builtin(local_invocation_index) li: u32) {
  init_offsets();
  let M = pu(PK); let inv = pf(PK + 1u);
${variant === 's' ? /* wgsl */ `
  var a = 0.0;
  var c = 0.0;
  for (var r = 0u; r < M; r++) { a += $aux[o_aux + r]; c += $aux[o_aux + M + r]; }
  $loss[o_loss] = a * inv;
  $correct[o_correct] = c;
}` : /* wgsl */ `
  var a = 0.0;
  var c = 0.0;
  for (var r = li; r < M; r += 256u) { a += $aux[o_aux + r]; c += $aux[o_aux + M + r]; }
  wa[li] = a; wh[li] = c;
  workgroupBarrier();
  for (var h = 128u; h > 0u; h /= 2u) {
    if (li < h) { wa[li] += wa[li + h]; wh[li] += wh[li + h]; }
    workgroupBarrier();
  }
  if (li == 0u) { $loss[o_loss] = wa[0] * inv; $correct[o_correct] = wh[0]; }
}`}`,
};

/** roles: x, tg, lse, g, dx. params: M·V, V, 1/count (f32 bits). Grid: threads(M·V) */
export const CE_GRAD: KernelSpec = {
  name: 'cross_entropy_grad',
  roles: ['x', 'tg', 'lse', 'g', 'dx'],
  writes: ['dx'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let n = pu(PK); let V = pu(PK + 1u); let inv = pf(PK + 2u);
  let i = lin(wg, nw) * 256u + li;
  if (i >= n) { return; }
  let row = i / V; let v = i % V;
  let t = $tg[o_tg + row];
  var d = 0.0;
  if (t >= 0.0) {
    d = exp($x[o_x + i] - $lse[o_lse + row]);
    if (u32(t) == v) { d -= 1.0; }
    d *= $g[o_g] * inv;
  }
  $dx[o_dx + i] = d;
}`,
};
