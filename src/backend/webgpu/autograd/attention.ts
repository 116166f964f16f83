/**
 * Differentiable `rope` and `attention` on WebGPU (reference semantics: `fused.rope` / `fused.attention` of
 * src/autograd/fused.ts).
 * - rope: y = R(θ)·x on the first rotaryDim channels of each head (rotate-half). Backward: dx = R(−θ)·dy, the
 *   transpose of the rotation — the same kernel over a cos/−sin table. The table is built on the host as the
 *   backend's forward `rope` builds it (float32 inverse frequencies and angles) and uploaded again by the backward.
 * - attention: causal grouped-query self-attention, flash style (../kernels/grad_attention.ts): the forward keeps
 *   O and the per-row log-sum-exp; the backward computes D = dO·O, then dQ (per query block) and dK, dV (per key
 *   block, summing the query heads of each kv head inside one workgroup: deterministic) from probabilities
 *   recomputed from the log-sum-exp. Nothing of size L² is stored.
 */
import type { Tensor } from '../../../tensor/tensor.js';
import type { DiffOp } from '../../backend.js';
import { OpError } from '../../../errors.js';
import { ROPE } from '../kernels/attention.js';
import {
  ATTN_DELTA, ATTN_DKV, ATTN_DKV_SIMPLE, ATTN_DQ, ATTN_DQ_SIMPLE, ATTN_FWD, ATTN_FWD_SIMPLE, ATTN_TILED_MAX_HD, attnVariant,
} from '../kernels/grad_attention.js';
import type { GpuCtx, GpuImpl } from './context.js';
import { need } from './util.js';

/**
 * [rows, rd/2, 2] of (cos, sign·sin) of position·inv_freq, the table of the ROPE kernel (the backend's forward
 * `rope` and this backward: float32 inverse frequencies and angles, as HF and the CPU reference): sign −1 gives the
 * inverse rotation.
 */
export function ropeTable(positions: Int32Array, rotaryDim: number, theta: number, sign: 1 | -1): Float32Array {
  const rows = positions.length;
  const half = rotaryDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(theta, (2 * i) / rotaryDim);
  const cs = new Float32Array(rows * half * 2);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < half; i++) {
      const f = Math.fround(positions[r] * inv[i]);
      cs[(r * half + i) * 2] = Math.cos(f);
      cs[(r * half + i) * 2 + 1] = sign * Math.sin(f);
    }
  }
  return cs;
}

function rotate(c: GpuCtx, x: Tensor, positions: Int32Array, rotaryDim: number, theta: number, sign: 1 | -1, what: string): Tensor {
  const [b, L, H, hd] = x.shape;
  const y = c.out(x.shape, what);
  c.run(ROPE, [c.st(x), c.upload(ropeTable(positions, rotaryDim, theta, sign)), c.st(y)], [b * L, H, hd, rotaryDim], c.threads(x.size));
  return y;
}

export const ATTENTION: Partial<Record<DiffOp, GpuImpl>> = {
  rope: (c, [xIn], a) => {
    const x = need(xIn, 'rope', 'x');
    const positions = a.positions!, rd = a.rotaryDim!, theta = a.theta!;
    if (x.shape.length !== 4 || positions.length !== x.shape[0] * x.shape[1] || rd % 2 !== 0 || rd <= 0 || rd > x.shape[3]) {
      throw new OpError(`rope (webgpu, differentiable): x [${x.shape.join(', ')}], ${positions.length} positions and rotary dim ${rd} do not fit`);
    }
    return {
      outputs: [rotate(c, x, positions, rd, theta, 1, 'rope')],
      backward: ([g]) => [g ? rotate(c, g, positions, rd, theta, -1, 'rope grad') : null],
    };
  },

  attention: (c, [qIn, kIn, vIn], a) => {
    const q = need(qIn, 'attention', 'q'), k = need(kIn, 'attention', 'k'), v = need(vIn, 'attention', 'v');
    const [B, L, Hq, hd] = q.shape;
    const Hkv = k.shape[2];
    const kvShape = [B, L, Hkv, hd];
    const fits = (t: Tensor): boolean => t.shape.length === 4 && t.shape.every((d, i) => d === kvShape[i]);
    if (q.shape.length !== 4 || !fits(k) || !fits(v) || Hkv < 1 || Hq % Hkv !== 0) {
      throw new OpError(`attention (webgpu, differentiable): q [${q.shape.join(', ')}], k [${k.shape.join(', ')}], v [${v.shape.join(', ')}] do not fit (q [b, L, Hq, hd], k/v [b, L, Hkv, hd], Hq a multiple of Hkv)`);
    }
    const scale = a.scalar!;
    const tiled = c.be.kernels === 'tiled' && hd <= ATTN_TILED_MAX_HD;
    const variant = tiled ? attnVariant(hd) : '';
    const params = [B, L, Hq, Hkv, hd, c.f2u(scale)];
    const rows = B * L * Hq;
    const blocks = Math.ceil(L / 64);
    const y = c.out(q.shape, 'attention');
    const lse = c.out([B, L, Hq], 'attention log-sum-exp');
    const [sq, sk, sv] = [c.st(q), c.st(k), c.st(v)];
    if (tiled) c.run(ATTN_FWD, [sq, sk, sv, c.st(y), c.st(lse), sq], [...params, L, 2], c.grid(B * Hq * blocks), variant); // no past, lse kept
    else c.run(ATTN_FWD_SIMPLE, [sq, sk, sv, c.st(y), c.st(lse)], params, c.threads(rows));
    return {
      outputs: [y],
      backward: ([g]) => {
        if (!g) return [null, null, null];
        const dl = c.scratch(rows, 'attention dO·O');
        const [sq, sk, sv, sg, sl] = [c.st(q), c.st(k), c.st(v), c.st(g), c.st(lse)];
        c.run(ATTN_DELTA, [sg, c.st(y), dl], [rows, hd], c.threads(rows));
        let dq: Tensor | null = null, dk: Tensor | null = null, dv: Tensor | null = null;
        if (q.requiresGrad) {
          dq = c.out(q.shape, 'attention dQ');
          const roles = [sq, sk, sv, sg, sl, dl, c.st(dq)];
          if (tiled) c.run(ATTN_DQ, roles, params, c.grid(B * Hq * blocks), variant);
          else c.run(ATTN_DQ_SIMPLE, roles, params, c.threads(rows));
        }
        const spare: ReturnType<GpuCtx['scratch']>[] = [];
        if (k.requiresGrad || v.requiresGrad) {
          // both come out of one kernel: the one nobody needs goes to scratch
          const grad = (t: Tensor, what: string): Tensor | null => (t.requiresGrad ? c.out(t.shape, what) : null);
          dk = grad(k, 'attention dK');
          dv = grad(v, 'attention dV');
          const store = (t: Tensor | null, what: string) => (t ? c.st(t) : (spare[spare.length] = c.scratch(k.size, what)));
          const roles = [sq, sk, sv, sg, sl, dl, store(dk, 'attention dK (unused)'), store(dv, 'attention dV (unused)')];
          if (tiled) c.run(ATTN_DKV, roles, params, c.grid(B * Hkv * blocks), variant);
          else c.run(ATTN_DKV_SIMPLE, roles, params, c.threads(B * L * Hkv));
        }
        c.done(dl, ...spare);
        return [dq, dk, dv];
      },
    };
  },
};
