/**
 * Differentiable S4D pieces on WebGPU (the semantics of `src/autograd/fused-s4.ts`):
 * - s4d_kernel: the diagonal SSM's convolution kernel K [H, L] from logDt [H], logAReal [H, M], AImag [H, M] and
 *   C [H, M, 2] (complex modes, ZOH discretisation, B folded into C). Forward parallel over (h, l); backward
 *   parallel over the modes (h, n), each reducing over l, then dlogDt summed over the modes of a channel.
 * - fft_conv: the causal long convolution of u [b, L, H] with K [H, Lk] along time (+ D[h]·u), computed directly
 *   rather than by FFT (O(L²) multiply-adds per channel and batch, tiled in workgroup memory). Backward: du is
 *   the same convolution run backwards in time (a correlation with K, + D·g), dK the correlation of g with u
 *   summed over the batch (partials per group of batches, added in a fixed order), dD = Σ_{b,t} g·u.
 * Everything is deterministic (no float atomics). Kernels: `../kernels/grad_s4d.ts`.
 */
import type { Tensor } from '../../../tensor/tensor.js';
import type { DiffOp } from '../../backend.js';
import { ShapeError } from '../../../errors.js';
import { sumRows } from './reduce.js';
import {
  CONV, CONV_DK, CONV_DK_SIMPLE, CONV_SIMPLE, ROWS_DOT_PART, S4D_DT_GRAD, S4D_KERNEL, S4D_KERNEL_GRAD, S4D_KERNEL_GRAD_SIMPLE, S4D_MODES,
} from '../kernels/grad_s4d.js';
import type { GpuCtx, GpuImpl } from './context.js';
import { need } from './util.js';

const shp = (t: Tensor): string => `[${t.shape.join(', ')}]`;
const same = (t: Tensor, shape: readonly number[]): boolean => t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);

/**
 * y [B, L, H] = the causal convolution of x [B, L, H] with k [H, Lk] (+ d[h]·x when d is given); reversed: the
 * time axis of x and y read backwards (the correlation of the backward)
 */
function conv(c: GpuCtx, x: Tensor, k: Tensor, d: Tensor | null, y: Tensor, B: number, L: number, H: number, Lk: number, reverse: boolean): void {
  if (B * L * H === 0) return;
  const flags = (reverse ? 1 : 0) | (d ? 2 : 0);
  const roles = [c.st(x), c.st(k), c.opt(d), c.st(y)];
  if (c.be.kernels === 'simple') {
    c.run(CONV_SIMPLE, roles, [B * L * H, L, H, Lk, flags], c.threads(B * L * H));
    return;
  }
  const nh = Math.ceil(H / 16), nt = Math.ceil(L / 64), nb = Math.ceil(B / 4);
  c.run(CONV, roles, [B, L, H, Lk, flags, nh, nt, nb], c.grid(nh * nt * nb));
}

/** dk [H, Lk] = Σ_b correlation of g with u (lags ≥ L are 0) */
function convKernelGrad(c: GpuCtx, g: Tensor, u: Tensor, dk: Tensor, B: number, L: number, H: number, Lk: number): void {
  if (c.be.kernels === 'simple') {
    c.run(CONV_DK_SIMPLE, [c.st(g), c.st(u), c.st(dk)], [H * Lk, B, L, H, Lk], c.threads(H * Lk));
    return;
  }
  const nh = Math.ceil(H / 16), nl = Math.ceil(Lk / 128);
  // enough workgroups to fill a large GPU: split the batch into groups whose partial sums are added afterwards
  let groups = Math.min(B, Math.max(1, Math.ceil(1024 / (nh * nl))));
  const per = Math.ceil(B / groups);
  groups = Math.ceil(B / per);
  const part = groups === 1 ? c.st(dk) : c.scratch(groups * H * Lk, 'fft_conv dK partial sums');
  c.run(CONV_DK, [c.st(g), c.st(u), part], [B, L, H, Lk, per, nh, nl, groups], c.grid(nh * nl * groups));
  if (groups > 1) {
    sumRows(c, part, groups, H * Lk, [{ store: c.st(dk), col: 0, n: H * Lk }]);
    c.done(part);
  }
}

export const S4D: Partial<Record<DiffOp, GpuImpl>> = {
  s4d_kernel: (c, [ldtIn, larIn, aimIn, cIn], a) => {
    const op = 's4d_kernel';
    const ldt = need(ldtIn, op, 'logDt'), lar = need(larIn, op, 'logAReal'), aim = need(aimIn, op, 'AImag'), C = need(cIn, op, 'C');
    if (ldt.shape.length !== 1) throw new ShapeError(`${op}: logDt must be [H], got ${shp(ldt)}`);
    const H = ldt.shape[0];
    if (lar.shape.length !== 2 || lar.shape[0] !== H) throw new ShapeError(`${op}: logAReal must be [${H}, M], got ${shp(lar)}`);
    const M = lar.shape[1];
    if (!same(aim, [H, M])) throw new ShapeError(`${op}: AImag ${shp(aim)} must be [${H}, ${M}]`);
    if (!same(C, [H, M, 2])) throw new ShapeError(`${op}: C ${shp(C)} must be [${H}, ${M}, 2]`);
    const L = a.length!;
    if (!(Number.isInteger(L) && L >= 0)) throw new ShapeError(`${op}: L must be a non-negative integer, got ${L}`);
    const params = [c.st(ldt), c.st(lar), c.st(aim), c.st(C)];
    const K = c.out([H, L], 's4d_kernel');
    if (H * L > 0) {
      if (M === 0) c.run(S4D_KERNEL, [c.rt.dummy, c.st(K)], [H * L, L, 0], c.threads(H * L));
      else {
        const md = c.scratch(H * M * 4, 's4d modes');
        c.run(S4D_MODES, [...params, md], [H * M, M], c.threads(H * M));
        c.run(S4D_KERNEL, [md, c.st(K)], [H * L, L, M], c.threads(H * L));
        c.done(md);
      }
    }
    return {
      outputs: [K],
      backward: ([g]) => {
        if (!g) return [null, null, null, null];
        const dldt = c.out([H], 's4d_kernel dlogDt');
        const dlar = c.out([H, M], 's4d_kernel dlogAReal');
        const daim = c.out([H, M], 's4d_kernel dAImag');
        const dc = c.out([H, M, 2], 's4d_kernel dC');
        if (H * M === 0) {
          if (H > 0) c.run(S4D_DT_GRAD, [c.rt.dummy, c.st(dldt)], [H, 0], c.threads(H));
        } else {
          const share = c.scratch(H * M, 's4d_kernel dlogDt shares');
          const roles = [...params, c.st(g), c.st(dlar), c.st(daim), c.st(dc), share];
          if (c.be.kernels === 'simple') c.run(S4D_KERNEL_GRAD_SIMPLE, roles, [H * M, M, L], c.threads(H * M));
          else c.run(S4D_KERNEL_GRAD, roles, [H * M, M, L], c.grid(H * M));
          c.run(S4D_DT_GRAD, [share, c.st(dldt)], [H, M], c.threads(H));
          c.done(share);
        }
        const want = (t: Tensor, d: Tensor): Tensor | null => (t.requiresGrad ? d : null);
        return [want(ldt, dldt), want(lar, dlar), want(aim, daim), want(C, dc)];
      },
    };
  },

  fft_conv: (c, [uIn, kIn, D]) => {
    const op = 'fft_conv';
    const u = need(uIn, op, 'u'), K = need(kIn, op, 'K');
    if (u.shape.length !== 3) throw new ShapeError(`${op}: u must be [b, L, H], got ${shp(u)}`);
    const [B, L, H] = u.shape;
    if (K.shape.length !== 2 || K.shape[0] !== H) throw new ShapeError(`${op}: K ${shp(K)} must have ${H} rows for u ${shp(u)}`);
    const Lk = K.shape[1];
    if (D && !same(D, [H])) throw new ShapeError(`${op}: D ${shp(D)} must be [${H}]`);
    const y = c.out(u.shape, 'fft_conv');
    conv(c, u, K, D, y, B, L, H, Lk, false);
    return {
      outputs: [y],
      backward: ([g]) => {
        if (!g) return [null, null, null];
        let du: Tensor | null = null, dK: Tensor | null = null, dD: Tensor | null = null;
        if (u.requiresGrad) {
          du = c.out(u.shape, 'fft_conv du');
          conv(c, g, K, D, du, B, L, H, Lk, true);
        }
        if (K.requiresGrad) {
          if (B * L * H * Lk === 0) dK = c.zeros(K.shape);
          else {
            dK = c.out(K.shape, 'fft_conv dK');
            convKernelGrad(c, g, u, dK, B, L, H, Lk);
          }
        }
        if (D?.requiresGrad) {
          const rows = B * L;
          if (rows * H === 0) dD = c.zeros(D.shape);
          else {
            dD = c.out(D.shape, 'fft_conv dD');
            const chunks = Math.ceil(rows / 64);
            const part = c.scratch(chunks * H, 'fft_conv dD partial sums');
            c.run(ROWS_DOT_PART, [c.st(g), c.st(u), part], [chunks * H, H, rows], c.threads(chunks * H));
            sumRows(c, part, chunks, H, [{ store: c.st(dD), col: 0, n: H }]);
            c.done(part);
          }
        }
        return [du, dK, dD];
      },
    };
  },
};
