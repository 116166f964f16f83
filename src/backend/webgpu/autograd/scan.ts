/**
 * Differentiable `causal_conv1d` and `selective_scan` (Mamba-1's S6) on WebGPU. Semantics: `fused.causalConv1d`
 * and `fused.selectiveScan` (src/autograd/fused.ts, fused-scan.ts).
 *
 * causal_conv1d: the backend's forward; the backward recomputes the pre-activation from x (K taps) where the
 * activation is silu, then dx per element and dw, dbias as per-block partials over b·L summed by `sumRows`
 * (kernels: ../kernels/grad_conv.ts).
 *
 * selective_scan: the forward is the backend's chunked forward (scan_chunk / scan_carry / scan_finish) run with
 * chunks of `chunkSize` steps, whose carried states — the state entering every chunk — are kept as the
 * checkpoints (b · ⌈L/chunk⌉ · D · N floats: memory linear in L). The backward (../kernels/grad_scan.ts) expands
 * them to the states entering sub-chunks of ≤ 16 steps, carries the adjoint across sub-chunks (a local backward
 * pass per sub-chunk, then a sequential pass over the sub-chunk totals), and runs the exact adjoint recurrence in
 * every sub-chunk in parallel; sums over channels (dB, dC) and over b and t (dA, dD, dbias) are per-block
 * partials summed by `sumRows` in a fixed order (deterministic: no float atomics).
 */
import type { Tensor } from '../../../tensor/tensor.js';
import type { DiffOp } from '../../backend.js';
import type { Store } from '../runtime.js';
import { SCAN_CARRY, SCAN_CHUNK, SCAN_FINISH } from '../kernels/selective_scan.js';
import { SCAN_BWD_CARRY, SCAN_BWD_LOCAL, SCAN_BWD_MAIN, SCAN_BWD_STATES, SCAN_SUB_MAX } from '../kernels/grad_scan.js';
import { CONV_DW, CONV_DX } from '../kernels/grad_conv.js';
import type { GpuImpl } from './context.js';
import { need } from './util.js';
import { sumRows, type ColumnRange } from './reduce.js';

/** rows of b·L per conv dw/dbias partial */
const CONV_ROWS = 64;

const grads = (n: number): null[] => new Array<null>(n).fill(null);

export const SCAN: Partial<Record<DiffOp, GpuImpl>> = {
  causal_conv1d: (c, [xIn, wIn, bias], a) => {
    const x = need(xIn, 'causal_conv1d', 'x'), w = need(wIn, 'causal_conv1d', 'weight');
    const [Bn, L, C] = x.shape;
    const K = w.shape[1];
    const silu = a.kind === 'silu';
    const y = c.be.causalConv1d({ x, weight: w, bias, state: null, activation: silu ? 'silu' : 'none' });
    return {
      outputs: [y],
      backward: ([g]) => {
        if (!g) return grads(3);
        const params = [Bn, L, C, K, (silu ? 1 : 0) | (bias ? 2 : 0), CONV_ROWS];
        const roles = [c.st(x), c.st(w), c.opt(bias), c.st(g)];
        let dx: Tensor | null = null, dw: Tensor | null = null, db: Tensor | null = null;
        if (x.requiresGrad) {
          dx = c.out(x.shape, 'causal_conv1d dx');
          c.run(CONV_DX, [...roles, c.st(dx)], params, c.threads(x.size));
        }
        if (w.requiresGrad || bias?.requiresGrad) {
          const nRB = Math.ceil((Bn * L) / CONV_ROWS);
          const W = C * K + C;
          const part = c.scratch(nRB * W, 'causal_conv1d dw partials');
          c.run(CONV_DW, [...roles, part], params, c.threads(nRB * C));
          const outs: ColumnRange[] = [];
          if (w.requiresGrad) {
            dw = c.out(w.shape, 'causal_conv1d dw');
            outs.push({ store: c.st(dw), col: 0, n: C * K });
          }
          if (bias?.requiresGrad) {
            db = c.out(bias.shape, 'causal_conv1d dbias');
            outs.push({ store: c.st(db), col: C * K, n: C });
          }
          sumRows(c, part, nRB, W, outs);
          c.done(part);
        }
        return [dx, dw, db];
      },
    };
  },

  selective_scan: (c, inputs, a) => {
    const op = 'selective_scan';
    const [u, delta, A, B, C] = (['u', 'delta', 'A', 'B', 'C'] as const).map((name, i) => need(inputs[i], op, name));
    const [D, z, bias] = [inputs[5], inputs[6], inputs[7]];
    const [Bn, L, Dm] = u.shape;
    const N = A.shape[1];
    const flags = (D ? 1 : 0) | (z ? 2 : 0) | (bias ? 4 : 0) | (a.softplus ? 8 : 0);
    // checkpoint interval: the op's chunk (≤ L: one chunk holds a short sequence)
    const T = Math.max(1, Math.min(a.chunkSize ?? 64, L));
    const nC = Math.ceil(L / T);
    const nB = Math.ceil(N / 16);
    const [su, sdelta, sA, sB, sC] = [u, delta, A, B, C].map((t) => c.st(t));
    const [sD, sz, sbias] = [c.opt(D), c.opt(z), c.opt(bias)];

    // forward: the chunked forward kernels with chunks of T; after scan_carry, ck holds the state entering each chunk
    const y = c.out([Bn, L, Dm], 'selective_scan');
    const ck = c.out([Bn, nC, Dm, N], 'selective_scan checkpoints');
    const ypart = c.scratch(nB * Bn * L * Dm, 'scan partial outputs');
    const dsumF = c.scratch(Bn * nC * Dm, 'scan chunk Δ sums');
    const pf = [Bn, L, Dm, N, flags, T, nC, nB];
    c.run(SCAN_CHUNK, [su, sdelta, sA, sB, sC, sbias, ypart, c.st(ck), dsumF], pf, c.threads(Bn * nC * nB * Dm));
    c.run(SCAN_CARRY, [sA, dsumF, c.st(ck), c.opt(null)], [Bn, Dm, N, nC, flags], c.threads(Bn * Dm * N));
    c.run(SCAN_FINISH, [su, sdelta, sA, sC, sD, sz, sbias, ypart, c.st(ck), c.st(y)], pf, c.threads(Bn * nC * Dm));
    c.done(ypart, dsumF);

    return {
      outputs: [y],
      backward: ([g]) => {
        if (!g) return grads(8);
        const want = [u, delta, A, B, C, D, z, bias].map((t) => !!t?.requiresGrad);
        const nSub = Math.ceil(T / SCAN_SUB_MAX);
        const S = Math.ceil(T / nSub);
        const nJ = nC * nSub;
        const p = [Bn, L, Dm, N, flags, T, nC, nSub, S, nB];
        const SN = Bn * nJ * Dm * N;
        // stores taken again: c.st records any work deferred on a tensor first
        const [su, sdelta, sA, sB, sC] = [u, delta, A, B, C].map((t) => c.st(t));
        const [sD, sz, sbias, sg] = [c.opt(D), c.opt(z), c.opt(bias), c.st(g)];
        const hs = c.scratch(SN, 'scan sub-chunk states / dA partials');
        const q = c.scratch(SN, 'scan adjoint carries');
        const dsum = c.scratch(Bn * nJ * Dm, 'scan sub-chunk Δ sums');
        c.run(SCAN_BWD_STATES, [su, sdelta, sA, sB, sbias, c.st(ck), hs], p, c.threads(Bn * nC * nB * Dm));
        c.run(SCAN_BWD_LOCAL, [sdelta, sA, sC, sz, sbias, sg, q, dsum], p, c.threads(Bn * nJ * nB * Dm));
        c.run(SCAN_BWD_CARRY, [sA, dsum, q], [Bn, Dm, N, nJ], c.threads(Bn * Dm * N));

        const gu = want[0] ? c.out(u.shape, 'selective_scan du') : null;
        const gdelta = want[1] ? c.out(delta.shape, 'selective_scan ddelta') : null;
        const gz = want[6] && z ? c.out(z.shape, 'selective_scan dz') : null;
        const simple = c.be.kernels === 'simple';
        const nW = Math.ceil(Dm / 32);
        const nG = simple ? Dm : nW; // rows of the dB/dC partials
        const BLN = Bn * L * N;
        const wantBC = want[3] || want[4];
        const pBC = wantBC ? c.scratch(nG * 2 * BLN, 'scan dB/dC partials') : null;
        const pD = want[5] ? c.scratch(Bn * nJ * Dm, 'scan dD partials') : null;
        const pbias = want[7] ? c.scratch(Bn * nJ * Dm, 'scan dbias partials') : null;
        const gflags = (gu ? 1 : 0) | (gdelta ? 2 : 0) | (gz ? 4 : 0) | (want[2] ? 8 : 0) | (wantBC ? 16 : 0) | (pD ? 32 : 0) | (pbias ? 64 : 0);
        const opt = (s: Store | null): Store => s ?? c.opt(null);
        const roles = [su, sdelta, sA, sB, sC, sD, sz, sbias, sg, q, hs, c.opt(gu), c.opt(gdelta), c.opt(gz), opt(pD), opt(pbias), opt(pBC)];
        c.run(SCAN_BWD_MAIN, roles, [...p, gflags], c.grid(Bn * nJ * nW), simple ? 's' : '');
        c.done(q, dsum);

        let gA: Tensor | null = null, gB: Tensor | null = null, gC: Tensor | null = null, gD: Tensor | null = null, gb: Tensor | null = null;
        if (want[2]) {
          gA = c.out(A.shape, 'selective_scan dA');
          sumRows(c, hs, Bn * nJ, Dm * N, [{ store: c.st(gA), col: 0, n: Dm * N }]);
        }
        if (pBC) {
          const outs: ColumnRange[] = [];
          if (want[3]) {
            gB = c.out(B.shape, 'selective_scan dB');
            outs.push({ store: c.st(gB), col: 0, n: BLN });
          }
          if (want[4]) {
            gC = c.out(C.shape, 'selective_scan dC');
            outs.push({ store: c.st(gC), col: BLN, n: BLN });
          }
          sumRows(c, pBC, nG, 2 * BLN, outs);
        }
        if (pD && D) {
          gD = c.out(D.shape, 'selective_scan dD');
          sumRows(c, pD, Bn * nJ, Dm, [{ store: c.st(gD), col: 0, n: Dm }]);
        }
        if (pbias && bias) {
          gb = c.out(bias.shape, 'selective_scan ddelta_bias');
          sumRows(c, pbias, Bn * nJ, Dm, [{ store: c.st(gb), col: 0, n: Dm }]);
        }
        c.done(hs, ...[pBC, pD, pbias].filter((s): s is Store => !!s));
        return [gu, gdelta, gA, gB, gC, gD, gz, gb];
      },
    };
  },
};
