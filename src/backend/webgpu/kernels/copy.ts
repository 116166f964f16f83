/**
 * Data movement: strided row copies (split, concat), row gathers (embedding, take_rows), zero-padding
 * along time (pad_time), and the weighted scatter-add of mixture-of-experts outputs. Row indices come
 * from the upload buffer as float values (exact below 2^24).
 */
import type { KernelSpec } from '../runtime.js';
import { packedTypes, weightReader } from './linear.js';
import { halfPacker, halfReader, halfTypes, type HalfFormat } from './half.js';

/**
 * variant 'u' of the row copies (copy_rows, gather_rows, pad_time): u32 words copied bit for bit — a 16-bit KV cache
 * (two values per word) keeps its format through growth, selection and concatenation
 */
const wordTypes = (variant: string): Record<string, string> => (variant === 'u' ? { x: 'u32', y: 'u32' } : {});

/**
 * y[r·ys + yc + c] = x[r·xs + xc + c] for r < rows, c < width.
 * params: rows, width, xs, xc, ys, yc
 */
export const COPY_ROWS: KernelSpec = {
  name: 'copy_rows',
  roles: ['x', 'y'],
  writes: ['y'],
  types: wordTypes,
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let rows = pu(PK); let width = pu(PK + 1u);
  let i = lin(wg, nw) * 256u + li;
  if (i >= rows * width) { return; }
  let r = i / width; let c = i % width;
  $y[o_y + r * pu(PK + 4u) + pu(PK + 5u) + c] = $x[o_x + r * pu(PK + 2u) + pu(PK + 3u) + c];
}`,
};

/**
 * y[i·W + c] = x[(idx[i] − lo)·W + c] for the ids in [lo, hi) (a table split into row blocks is gathered
 * block by block). params: n, W, lo, hi
 */
export const GATHER_ROWS: KernelSpec = {
  name: 'gather_rows',
  roles: ['idx', 'x', 'y'],
  writes: ['y'],
  // variant 'b' / 'q': a bf16 or q8 table (an embedding stored as bf16 or q8); 'u': words copied as they are
  types: (v) => (v === 'u' ? wordTypes(v) : packedTypes('x')(v)),
  wgsl: (v) => /* wgsl */ `
${v === 'u' ? 'fn wv(i: u32) -> u32 { return $x[o_x + i]; }' : weightReader(v, 'x')}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let n = pu(PK); let W = pu(PK + 1u); let lo = pu(PK + 2u); let hi = pu(PK + 3u);
  let e = lin(wg, nw) * 256u + li;
  if (e >= n * W) { return; }
  let i = e / W; let c = e % W;
  let id = u32($idx[o_idx + i]);
  if (id < lo || id >= hi) { return; }
  $y[o_y + i * W + c] = wv((id - lo) * W + c);
}`,
};

/** [b, T, inner] → [b, newT, inner], zeros after T. params: total (b·newT·inner), T·inner, newT·inner */
export const PAD_TIME: KernelSpec = {
  name: 'pad_time',
  roles: ['x', 'y'],
  writes: ['y'],
  types: wordTypes,
  wgsl: (v) => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let i = lin(wg, nw) * 256u + li;
  if (i >= pu(PK)) { return; }
  let tin = pu(PK + 1u); let tout = pu(PK + 2u);
  let r = i / tout; let q = i % tout;
  var v = ${v === 'u' ? '0u' : '0.0'};
  if (q < tin) { v = $x[o_x + r * tin + q]; }
  $y[o_y + i] = v;
}`,
};

/**
 * dst[rows[i]] += w[i] · src[i] for i < n, in order (rows may repeat): one thread per column.
 * rw holds (row, weight) pairs. params: n, H
 * Variants for 16-bit KV caches (ModelState.writeRow): two letters, dst's format then src's ('f' f32, 'b' bf16,
 * 'h' f16; '' is 'ff'). A 16-bit dst: one thread per pair of columns (H even), each sum rounded to nearest even again.
 */
export const SCATTER_ADD_ROWS: KernelSpec = {
  name: 'scatter_add_rows',
  roles: ['rw', 'src', 'dst'],
  writes: ['dst'],
  types: (v) => ({ ...halfTypes(scatterFormats(v).src, 'src'), ...halfTypes(scatterFormats(v).dst, 'dst') }),
  wgsl: (v) => {
    const f = scatterFormats(v);
    const head = /* wgsl */ `
${halfReader(f.src, 'src', 'sv')}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let n = pu(PK); let H = pu(PK + 1u);
  let c = lin(wg, nw) * 256u + li;`;
    if (!f.dst) {
      return /* wgsl */ `${head}
  if (c >= H) { return; }
  for (var i = 0u; i < n; i++) {
    let r = u32($rw[o_rw + 2u * i]);
    let w = $rw[o_rw + 2u * i + 1u];
    $dst[o_dst + r * H + c] += w * sv(i * H + c);
  }
}`;
    }
    return /* wgsl */ `${halfReader(f.dst, 'dst', 'dv', f.src !== 'h')}
${halfPacker(f.dst)}${head}
  if (2u * c >= H) { return; }
  for (var i = 0u; i < n; i++) {
    let r = u32($rw[o_rw + 2u * i]);
    let w = $rw[o_rw + 2u * i + 1u];
    let e = r * H + 2u * c; let se = i * H + 2u * c;
    $dst[o_dst + e / 2u] = half_pack(dv(e) + w * sv(se), dv(e + 1u) + w * sv(se + 1u));
  }
}`;
  },
};

/** the formats of SCATTER_ADD_ROWS's dst and src in a variant */
export function scatterFormats(variant: string): { dst: HalfFormat; src: HalfFormat } {
  const f = (c: string | undefined): HalfFormat => (c === 'b' || c === 'h' ? c : '');
  return { dst: f(variant[0]), src: f(variant[1]) };
}
