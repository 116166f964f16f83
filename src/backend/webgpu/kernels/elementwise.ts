/**
 * Elementwise kernels: fill, unary maps (scale, activations), binary maps (add, silu·mul). One thread per
 * element over a 2-D grid of 256-wide workgroups.
 */
import type { KernelSpec } from '../runtime.js';

/** the start of a kernel with one thread per item: `i` < params[0], 256-wide workgroups over a 2-D grid */
export const PER_ITEM_HEAD = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let i = lin(wg, nw) * 256u + li;
  if (i >= pu(PK)) { return; }`;

/** y[i] = value; params: n, value */
export const FILL: KernelSpec = {
  name: 'fill',
  roles: ['y'],
  writes: ['y'],
  wgsl: () => `${PER_ITEM_HEAD}\n  $y[o_y + i] = pf(PK + 1u);\n}`,
};

const UNARY: Record<string, string> = {
  scale: 'v * pf(PK + 1u)',
  silu: 'silu(v)',
  relu: 'max(v, 0.0)',
  relu2: 'select(0.0, v * v, v > 0.0)',
  neg_exp: '-exp(v)',
  sigmoid: '1.0 / (1.0 + exp(-v))',
  // tanh's argument clamped: some drivers compute tanh through exp and overflow to NaN
  gelu_tanh: '0.5 * v * (1.0 + tanh(clamp(0.7978845608028654 * (v + 0.044715 * v * v * v), -15.0, 15.0)))',
};

/** y = f(x); variant: scale (params n, s) or an activation name (params n) */
export const UNARY_MAP: KernelSpec = {
  name: 'unary',
  roles: ['x', 'y'],
  writes: ['y'],
  wgsl: (op) => {
    const f = UNARY[op];
    if (!f) throw new Error(`webgpu: unknown unary op ${op}`);
    return `${PER_ITEM_HEAD}\n  let v = $x[o_x + i];\n  $y[o_y + i] = ${f};\n}`;
  },
};

const BINARY: Record<string, string> = {
  add: 'a + b',
  mul: 'a * b',
  silu_mul: 'silu(a) * b',
};

/** y = f(a, b); params n */
export const BINARY_MAP: KernelSpec = {
  name: 'binary',
  roles: ['a', 'b', 'y'],
  writes: ['y'],
  wgsl: (op) => {
    const f = BINARY[op];
    if (!f) throw new Error(`webgpu: unknown binary op ${op}`);
    return `${PER_ITEM_HEAD}\n  let a = $a[o_a + i];\n  let b = $b[o_b + i];\n  $y[o_y + i] = ${f};\n}`;
  },
};
