/**
 * Optimizer kernels (training on the GPU, host side in src/train/device-optim.ts): the global gradient norm and its
 * clip factor, and the AdamW update of a parameter in place — the same arithmetic as `adamwUpdate`
 * (src/train/optim.ts), in float32. Nothing is read back: the norm and the clip factor stay in a small device
 * tensor that the update reads, and the trainer reads the norm only when it logs.
 *
 * - `SUMSQ`: one level of the norm's reduction. Thread i of T = ⌈n / 64⌉ sums x[i], x[i + T], x[i + 2T], … (at most
 *   64 terms; squared at the first level, plain at the next ones) with Kahan compensation (dropped once the sum
 *   is infinite) into out[i]. Reads
 *   coalesce across threads, no workgroup memory, no barriers (the same kernel on GPUs and CPU-emulated adapters),
 *   no atomics: the same bits on every run (an exact `--resume`). The first level runs once per gradient tensor,
 *   each writing its partial sums at its own offset of one buffer; the next levels reduce that buffer until at most
 *   64 values are left.
 * - `CLIP_FINAL`: one thread sums the last ≤ 64 partials: out[0] = ‖g‖ = √Σg², out[1] = the factor
 *   `clipGradNorm` multiplies the gradients by: maxNorm / (‖g‖ + 1e-6) when that is < 1, else 1 (also 1 for a
 *   non-finite norm, which leaves the gradients as they are, as on the host).
 * - `ADAMW`: per element, g ← g · clip (when a clip tensor is bound), m ← β1·m + (1 − β1)·g,
 *   v ← β2·v + (1 − β2)·g·g, p ← p·(1 − lr·λ) − (lr / (1 − β1^t))·m / (√v / √(1 − β2^t) + ε), with the factors computed
 *   on the host in float64 (as `adamwUpdate` does) and passed as float32 parameters.
 */
import type { KernelSpec } from '../runtime.js';

/** terms one thread adds up per level of the norm's reduction */
export const SUMSQ_PER_THREAD = 64;

/** params: n, T (threads = partial sums written), squared (1: sum of squares, 0: plain sum) */
/** Kahan summation that survives infinities (the compensation of an infinite sum would be ∞ − ∞ = NaN) */
const KAHAN = /* wgsl */ `
fn finite(v: f32) -> bool { return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u; }
struct Acc { s: f32, c: f32 }
fn kahan(a: Acc, v: f32) -> Acc {
  let y = v - a.c;
  let t = a.s + y;
  return Acc(t, select(0.0, (t - a.s) - y, finite(t)));
}`;

export const SUMSQ: KernelSpec = {
  name: 'sumsq',
  roles: ['x', 'out'],
  writes: ['out'],
  wgsl: () => /* wgsl */ `${KAHAN}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let n = pu(PK); let T = pu(PK + 1u); let sq = pu(PK + 2u) != 0u;
  let i = lin(wg, nw) * 256u + li;
  if (i >= T) { return; }
  var a = Acc(0.0, 0.0);
  for (var j = i; j < n; j += T) {
    let v = $x[o_x + j];
    a = kahan(a, select(v, v * v, sq));
  }
  $out[o_out + i] = a.s;
}`,
};

/** params: n (≤ 64 partials), maxNorm (f32 bits), clip (1: compute the factor, 0: factor 1) */
export const CLIP_FINAL: KernelSpec = {
  name: 'clip_final',
  roles: ['x', 'out'],
  writes: ['out'],
  wgsl: () => /* wgsl */ `${KAHAN}
@compute @workgroup_size(1)
fn main() {
  init_offsets();
  let n = pu(PK); let maxNorm = pf(PK + 1u); let clip = pu(PK + 2u) != 0u;
  var a = Acc(0.0, 0.0);
  for (var j = 0u; j < n; j++) { a = kahan(a, $x[o_x + j]); }
  let norm = sqrt(a.s);
  var coef = 1.0;
  if (clip && finite(norm)) {
    let k = maxNorm / (norm + 1e-6);
    if (k < 1.0) { coef = k; }
  }
  $out[o_out] = norm;
  $out[o_out + 1u] = coef;
}`,
};

/**
 * params: n, β1, 1 − β1, β2, 1 − β2, decay factor 1 − lr·λ, step size lr / (1 − β1^t), √(1 − β2^t), ε (floats as bits),
 * flags (bit 0: multiply g by clip[1])
 */
export const ADAMW: KernelSpec = {
  name: 'adamw',
  roles: ['p', 'g', 'm', 'v', 'clip'],
  writes: ['p', 'm', 'v'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let i = lin(wg, nw) * 256u + li;
  if (i >= pu(PK)) { return; }
  // (no local may be named b0, b1, …: those are the buffers the roles are bound to)
  let beta1 = pf(PK + 1u); let omb1 = pf(PK + 2u); let beta2 = pf(PK + 3u); let omb2 = pf(PK + 4u);
  let decay = pf(PK + 5u); let stepSize = pf(PK + 6u); let sqrtBc2 = pf(PK + 7u); let eps = pf(PK + 8u);
  var g = $g[o_g + i];
  if ((pu(PK + 9u) & 1u) != 0u) { g = g * $clip[o_clip + 1u]; }
  let m = beta1 * $m[o_m + i] + omb1 * g;
  let v = beta2 * $v[o_v + i] + omb2 * g * g;
  $m[o_m + i] = m;
  $v[o_v + i] = v;
  $p[o_p + i] = $p[o_p + i] * decay - (stepSize * m) / (sqrt(v) / sqrtBc2 + eps);
}`,
};
