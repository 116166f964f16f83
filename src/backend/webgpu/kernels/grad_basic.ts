/**
 * Backward kernels of the elementwise ops and of the row gathers (training): activation derivatives, the silu·mul
 * pair, mean over time, and the deterministic scatter-sum of row gradients (embedding, take_rows) — each output
 * row sums its sources in a fixed order (a CSR list built on the host from the ids), so no float atomics and the
 * same bits on every run.
 */
import type { KernelSpec } from '../runtime.js';
import { PER_ITEM_HEAD } from './elementwise.js';


/** f'(x) of `Backend.activation`'s functions, from x (`v`) */
const DERIV: Record<string, string> = {
  silu: 'sig(v) * (1.0 + v * (1.0 - sig(v)))',
  relu: 'select(0.0, 1.0, v > 0.0)',
  relu2: 'select(0.0, 2.0 * v, v > 0.0)',
  neg_exp: '-exp(v)',
  sigmoid: 'sig(v) * (1.0 - sig(v))',
  gelu_tanh: 'gelu_d(v)',
};

const HELPERS = /* wgsl */ `
fn sig(v: f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }
fn gelu_d(v: f32) -> f32 {
  let k = 0.7978845608028654;
  let t = tanh(clamp(k * (v + 0.044715 * v * v * v), -15.0, 15.0));
  return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * v * v);
}`;

/** dx = g · f'(x); variant: the activation. params: n */
export const ACTIVATION_GRAD: KernelSpec = {
  name: 'activation_grad',
  roles: ['x', 'g', 'dx'],
  writes: ['dx'],
  wgsl: (kind) => {
    const d = DERIV[kind];
    if (!d) throw new Error(`webgpu: no derivative for activation ${kind}`);
    return `${HELPERS}${PER_ITEM_HEAD}\n  let v = $x[o_x + i];\n  $dx[o_dx + i] = $g[o_g + i] * (${d});\n}`;
  },
};

/** y = silu(a)·b: da = g·b·silu'(a), db = g·silu(a). params: n */
export const SILU_MUL_GRAD: KernelSpec = {
  name: 'silu_mul_grad',
  roles: ['a', 'b', 'g', 'da', 'db'],
  writes: ['da', 'db'],
  wgsl: () => `${HELPERS}${PER_ITEM_HEAD}
  let v = $a[o_a + i]; let s = sig(v); let g = $g[o_g + i];
  $da[o_da + i] = g * $b[o_b + i] * s * (1.0 + v * (1.0 - s));
  $db[o_db + i] = g * v * s;
}`,
};

/** y = a·b: da = g·b, db = g·a (either output may be the dummy: flags bit 0 da, bit 1 db). params: n, flags */
export const MUL_GRAD: KernelSpec = {
  name: 'mul_grad',
  roles: ['a', 'b', 'g', 'da', 'db'],
  writes: ['da', 'db'],
  wgsl: () => `${PER_ITEM_HEAD}
  let g = $g[o_g + i]; let f = pu(PK + 1u);
  if ((f & 1u) != 0u) { $da[o_da + i] = g * $b[o_b + i]; }
  if ((f & 2u) != 0u) { $db[o_db + i] = g * $a[o_a + i]; }
}`,
};

/** y[b, h] = mean over t of x[b, t, h]. params: b·H, L, H */
export const MEAN_TIME: KernelSpec = {
  name: 'mean_time',
  roles: ['x', 'y'],
  writes: ['y'],
  wgsl: () => `${PER_ITEM_HEAD}
  let L = pu(PK + 1u); let H = pu(PK + 2u);
  let r = i / H; let h = i % H;
  var s = 0.0;
  for (var t = 0u; t < L; t++) { s += $x[o_x + (r * L + t) * H + h]; }
  $y[o_y + i] = s / f32(L);
}`,
};

/** dx[b, t, h] = g[b, h] / L. params: b·L·H, L, H */
export const MEAN_TIME_GRAD: KernelSpec = {
  name: 'mean_time_grad',
  roles: ['g', 'dx'],
  writes: ['dx'],
  wgsl: () => `${PER_ITEM_HEAD}
  let L = pu(PK + 1u); let H = pu(PK + 2u);
  let h = i % H; let r = i / (L * H);
  $dx[o_dx + i] = $g[o_g + r * H + h] / f32(L);
}`,
};

/**
 * dx[r, c] = Σ_{j ∈ [off[r], off[r+1])} g[src[j], c]: the gradient of a row gather (y[i] = x[ids[i]]), with
 * `csr` = off[0..R] followed by src (row indices of g, as floats, in order). params: R·W, W, R
 */
export const ROWS_GRAD: KernelSpec = {
  name: 'rows_grad',
  roles: ['csr', 'g', 'dx'],
  writes: ['dx'],
  wgsl: () => `${PER_ITEM_HEAD}
  let W = pu(PK + 1u); let R = pu(PK + 2u);
  let r = i / W; let c = i % W;
  let a = u32($csr[o_csr + r]); let b = u32($csr[o_csr + r + 1u]);
  var s = 0.0;
  for (var j = a; j < b; j++) { s += $g[o_g + u32($csr[o_csr + R + 1u + j]) * W + c]; }
  $dx[o_dx + i] = s;
}`,
};
