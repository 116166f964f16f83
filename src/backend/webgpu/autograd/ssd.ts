/**
 * Differentiable Mamba-2 SSD on WebGPU: inputs [x, dt, A, B, C, D | null, dtBias | null], attrs { dtLimit,
 * chunkSize } (semantics: `fused.ssd`, src/autograd/fused-ssd.ts). x [b, L, nh, hd], dt [b, L, nh], A [nh],
 * B, C [b, L, G, N], D, dtBias [nh]; Δ = clamp(softplus(dt + bias), dtLimit) (no gradient where clamped).
 *
 * Forward: the backend's chunked kernels (../kernels/ssd.ts: SSD_DT, SSD_CB, SSD_STATES, SSD_PASS, SSD_OUT), keeping
 * what the backward needs instead of releasing it: Δ, its running sums a per chunk, the C·B blocks and the states
 * entering each chunk ([b, nC, nh, hd, N], as the official kernels' chunk states).
 * Backward: the chunked (dual) form, as Triton's `mamba_chunk_scan_combined` backward (../kernels/grad_ssd.ts):
 * the chunks' own state gradients, passed backwards between chunks; inside a chunk, masked quadratic products;
 * then dx, dB, dC, and the gradient of the running sums turned into dΔ → d(dt), dA, d(bias), dD. Reductions over
 * heads (dB, dC) are loops inside workgroups, over (b, t) (dA, dD, d(bias)) per-chunk partials summed by `colsum`:
 * no atomics, the same bits on every run.
 *
 * Chunk length Q: the requested chunkSize rounded down to 16, 32 or 64 (the kernels' tile sizes), at most the
 * backend's `ssdChunk` (64 where the adapter has the workgroup memory) — small chunk sizes let tests cover many
 * chunks with short sequences; the math does not depend on Q.
 */
import type { Tensor } from '../../../tensor/tensor.js';
import type { DiffOp } from '../../backend.js';
import { OpError } from '../../../errors.js';
import { SSD_CB, SSD_DT, SSD_OUT, SSD_PASS, SSD_STATES } from '../kernels/ssd.js';
import { SSD_DBC, SSD_DCB, SSD_DFIN, SSD_DPASS, SSD_DSTATES, SSD_DX } from '../kernels/grad_ssd.js';
import type { GpuCtx, GpuImpl } from './context.js';
import { colsum } from './reduce.js';
import { need } from './util.js';

const F32_MAX = 3.4028234663852886e38;

/** workgroups the dCB kernel aims for (it splits a group's heads into slices to get them) */
const DCB_TARGET_GROUPS = 512;

/** the chunk length for a requested chunk size on this backend */
export function trainChunk(c: GpuCtx, chunkSize: number): number {
  const max = c.be.ssdChunk;
  for (const q of [64, 32, 16]) if (q <= max && q <= chunkSize) return q;
  return 16;
}

function ssdImpl(c: GpuCtx, inputs: readonly (Tensor | null)[], attrs: { dtLimit?: [number, number]; chunkSize?: number }): ReturnType<GpuImpl> {
  const op = 'ssd';
  const x = need(inputs[0], op, 'x'), dt = need(inputs[1], op, 'dt'), A = need(inputs[2], op, 'A');
  const Bm = need(inputs[3], op, 'B'), Cm = need(inputs[4], op, 'C');
  const D = inputs[5], dtb = inputs[6];
  const [Bn, L, nh, hd] = x.shape;
  const [, , G, N] = Bm.shape;
  if (G < 1 || nh % G !== 0) throw new OpError(`${op} (webgpu, differentiable): ${nh} heads cannot be split into ${G} groups`);
  const dtLimit = attrs.dtLimit ?? [0, Infinity];
  const lo = Math.max(dtLimit[0], -F32_MAX), hi = Math.min(dtLimit[1], F32_MAX);
  const Q = trainChunk(c, attrs.chunkSize ?? 256);
  const nC = Math.ceil(L / Q);
  const q = String(Q);
  const flags = (D ? 1 : 0) | (dtb ? 2 : 0);
  const BLH = Bn * L * nh;
  const HN = hd * N;

  // forward, keeping Δ, a, C·B and the chunk-entry states: tensors the op owns until the tape frees its graph
  // (gpuDifferentiable in index.ts keeps them out of the model's scopes)
  const sdtp = c.st(c.out([BLH], 'ssd Δ'));
  const scum = c.st(c.out([BLH], 'ssd Δ·A sums'));
  const scb = c.st(c.out([Bn * nC * G * Q * Q], 'ssd C·B'));
  const sS = c.st(c.out([Bn * nC * nh * HN], 'ssd chunk states'));
  const y = c.out(x.shape, 'ssd');
  const [sx, sdt, sA, sB, sC, sD, sb] = [c.st(x), c.st(dt), c.st(A), c.st(Bm), c.st(Cm), c.opt(D), c.opt(dtb)];
  c.run(SSD_DT, [sdt, sA, sb, sdtp, scum], [Bn, L, nh, flags, c.f2u(lo), c.f2u(hi), Q, nC], c.threads(Bn * nC * nh));
  c.run(SSD_CB, [sB, sC, scb], [Bn, L, G, N, nC], c.grid(Bn * nC * G), q);
  c.run(SSD_STATES, [sx, sB, sdtp, scum, sS], [Bn, L, nh, hd, G, N, nC], c.grid(Bn * nC * nh * Math.ceil(hd / 64) * Math.ceil(N / 64)), q);
  c.run(SSD_PASS, [scum, sS, c.opt(null)], [Bn, L, nh, hd, N, Q, nC, 0], c.threads(Bn * nh * HN));
  c.run(SSD_OUT, [sx, sC, sdtp, scum, scb, sS, sD, c.st(y)], [Bn, L, nh, hd, G, N, nC, D ? 1 : 0], c.grid(Bn * nC * nh * Math.ceil(hd / 64)), q);
  return {
    outputs: [y],
    backward: ([gy]) => {
      if (!gy) return [null, null, null, null, null, null, null];
      const sgy = c.st(gy);
      // the chunks' own state gradients, then passed backwards: dH_out per chunk (+ <dH_out, H_out> partials)
      const dH = c.scratch(Bn * nC * nh * HN, 'ssd state gradients');
      c.run(SSD_DSTATES, [sgy, sC, scum, dH], [Bn, L, nh, hd, G, N, nC], c.grid(Bn * nC * nh * Math.ceil(hd / 64) * Math.ceil(N / 64)), q);
      const nBlk = Math.ceil(HN / 256);
      const endPart = c.scratch(Bn * nC * nh * nBlk, 'ssd chunk decay gradient partials');
      c.run(SSD_DPASS, [scum, sS, dH, endPart], [Bn, L, nh, HN, Q, nC, nBlk], c.grid(Bn * nh * nBlk));
      // dCB per (b, c, g), over slices of the group's heads
      const hpg = nh / G;
      const want = Math.max(1, Math.min(hpg, Math.ceil(DCB_TARGET_GROUPS / (Bn * nC * G))));
      const hps = Math.ceil(hpg / want);
      const nSplit = Math.ceil(hpg / hps);
      const needBC = Bm.requiresGrad || Cm.requiresGrad;
      const dcb = needBC ? c.scratch(Bn * nC * G * nSplit * Q * Q, 'ssd dCB') : null;
      if (dcb) c.run(SSD_DCB, [sx, sgy, sdtp, scum, dcb], [Bn, L, nh, hd, G, nC, nSplit, hps], c.grid(Bn * nC * G * nSplit), q);
      // dx, and the per-step sums for Δ's gradient and dD
      const dx = c.out(x.shape, 'ssd dx');
      const ts = c.scratch(3 * BLH, 'ssd per-step sums');
      c.run(SSD_DX, [sx, sgy, c.st(y), sB, scb, sdtp, scum, dH, sD, c.st(dx), ts], [Bn, L, nh, hd, G, N, nC, D ? 1 : 0], c.grid(Bn * nC * nh), q);
      // dB, dC: the group's heads summed inside each workgroup
      const grid = c.grid(Bn * nC * G * Math.ceil(N / 64));
      let dC: Tensor | null = null, dB: Tensor | null = null;
      if (dcb && Cm.requiresGrad) {
        dC = c.out(Cm.shape, 'ssd dC');
        c.run(SSD_DBC, [sgy, sS, sdtp, scum, dcb, sB, c.st(dC)], [Bn, L, nh, hd, G, N, nC, nSplit], grid, `${q}C`);
      }
      if (dcb && Bm.requiresGrad) {
        dB = c.out(Bm.shape, 'ssd dB');
        c.run(SSD_DBC, [sx, dH, sdtp, scum, dcb, sC, c.st(dB)], [Bn, L, nh, hd, G, N, nC, nSplit], grid, `${q}B`);
      }
      // d(dt) and the per-chunk partials of dA, d(bias), dD, summed over (b, chunk)
      const ddt = c.out(dt.shape, 'ssd d(dt)');
      const NB = Bn * nC * nh;
      const red = c.scratch(3 * NB, 'ssd dA/dbias/dD partials');
      c.run(SSD_DFIN, [sdt, sb, sA, sdtp, ts, endPart, c.st(ddt), red], [Bn, L, nh, Q, nC, nBlk, flags, c.f2u(lo), c.f2u(hi)], c.threads(NB));
      const part = (k: number): Tensor => c.tensor(red.view(k * NB, NB), [Bn * nC, nh]);
      const dA = A.requiresGrad ? colsum(c, part(0), Bn * nC, nh) : null;
      const dBias = dtb?.requiresGrad ? colsum(c, part(1), Bn * nC, nh) : null;
      const dD = D?.requiresGrad ? colsum(c, part(2), Bn * nC, nh) : null;
      c.done(dH, endPart, ts, red, ...(dcb ? [dcb] : []));
      return [dx, ddt, dA, dB, dC, dD, dBias];
    },
  };
}

export const SSD: Partial<Record<DiffOp, GpuImpl>> = {
  ssd: (c, inputs, a) => ssdImpl(c, inputs, a),
};
