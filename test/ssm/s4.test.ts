/**
 * S4 / S4D / HiPPO: HiPPO matrices against hand-computed entries and their structure (LegS normal part,
 * FouT skew part); ZOH against RK4 integration of the continuous ODE; bilinear stability; dense bilinear against
 * its defining equation and the diagonal formula; the FFT (round trip, impulse, naive DFT) and FFT causal
 * convolution against the direct sum; convolution mode == recurrent mode for every init × discretization × L;
 * S4D-LegS eigenvalues against trace identities of the dense matrix.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/generate/rng.js';
import { causalConvDirect, causalConvFFT, fftInPlace, nextPow2 } from '../../src/ssm/fft.js';
import {
  complexRandn, discretizeBilinear, discretizeBilinearDense, discretizeZOH, hippoFouT, hippoLagT, hippoLegS,
  hippoLegSP, hippoLegT, legsNormalFrequencies, onesB, s4dConvolve, s4dInit, s4dKernel, s4dRecurrent,
  solveDense, symmetricEigenvalues, type S4dInitKind,
} from '../../src/ssm/s4.js';
import { maxAbsDiff } from '../helpers.js';

const close = (a: number, b: number, tol: number, msg = ''): void =>
  assert.ok(Math.abs(a - b) <= tol, `${msg} ${a} vs ${b} (tol ${tol})`);

function matmul(X: Float64Array, Y: Float64Array, N: number): Float64Array {
  const Z = new Float64Array(N * N);
  for (let i = 0; i < N; i++) for (let k = 0; k < N; k++) {
    const x = X[i * N + k];
    for (let j = 0; j < N; j++) Z[i * N + j] += x * Y[k * N + j];
  }
  return Z;
}
const trace = (X: Float64Array, N: number): number => { let s = 0; for (let i = 0; i < N; i++) s += X[i * N + i]; return s; };

/** S = A + PPᵀ + ½I for HiPPO-LegS */
function legsSkew(N: number): Float64Array {
  const { A } = hippoLegS(N);
  const P = hippoLegSP(N);
  const S = new Float64Array(N * N);
  for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) S[i * N + j] = A[i * N + j] + P[i] * P[j] + (i === j ? 0.5 : 0);
  return S;
}

describe('HiPPO matrices', () => {
  it('LegS N=3 matches hand-computed entries', () => {
    const { A, B } = hippoLegS(3);
    const s3 = Math.sqrt(3), s5 = Math.sqrt(5), s15 = Math.sqrt(15);
    const want = [-1, 0, 0, -s3, -2, 0, -s5, -s15, -3];
    assert.ok(maxAbsDiff(A, want) < 1e-15, `A = ${Array.from(A)}`);
    assert.ok(maxAbsDiff(B, [1, s3, s5]) < 1e-15);
  });
  it('LegS: A + PPᵀ + ½I is skew-symmetric (N = 1..12)', () => {
    for (let N = 1; N <= 12; N++) {
      const S = legsSkew(N);
      for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) close(S[i * N + j], -S[j * N + i], 1e-12, `N=${N} (${i},${j})`);
    }
  });
  it('LegT N=2 (halved convention), LagT N=3', () => {
    const t = hippoLegT(2);
    const s3 = Math.sqrt(3);
    assert.ok(maxAbsDiff(t.A, [-0.5, s3 / 2, -s3 / 2, -1.5]) < 1e-15, `LegT A = ${Array.from(t.A)}`);
    assert.ok(maxAbsDiff(t.B, [0.5, s3 / 2]) < 1e-15);
    const g = hippoLagT(3);
    assert.deepEqual(Array.from(g.A), [-0.5, 0, 0, -1, -0.5, 0, -1, -1, -0.5]);
    assert.deepEqual(Array.from(g.B), [1, 1, 1]);
  });
  it('FouT N=6: B and A + BBᵀ (rotation blocks π·j on pairs (2j, 2j+1), skew-symmetric); odd N rejected', () => {
    const N = 6;
    const { A, B } = hippoFouT(N);
    const r2 = Math.SQRT2;
    assert.ok(maxAbsDiff(B, [1, 0, r2, 0, r2, 0]) < 1e-15, `B = ${Array.from(B)}`);
    const A0 = new Float64Array(N * N);
    for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) A0[i * N + j] = A[i * N + j] + B[i] * B[j];
    const want = new Float64Array(N * N);
    // d = [0,0,1,0,2]: diag(+1) gets −π·d, diag(−1) gets +π·d
    const d = [0, 0, 1, 0, 2];
    for (let i = 0; i < N - 1; i++) { want[i * N + i + 1] = -Math.PI * d[i]; want[(i + 1) * N + i] = Math.PI * d[i]; }
    assert.ok(maxAbsDiff(A0, want) < 1e-14, `A0 = ${Array.from(A0)}`);
    close(A[2 * N + 4], -2, 1e-15, 'rank-1 correction −B₂B₄');
    assert.throws(() => hippoFouT(5));
  });
});

describe('discretization', () => {
  it('ZOH equals RK4 integration of x\' = Ax + Bu over one step (constant u)', () => {
    const rng = new Rng(7);
    for (let trial = 0; trial < 20; trial++) {
      const ar = -0.05 - 2 * rng.next(), ai = (rng.next() - 0.5) * 20;
      const br = rng.next() - 0.5, bi = rng.next() - 0.5;
      const x0r = rng.next() - 0.5, x0i = rng.next() - 0.5;
      const u = rng.next() * 2 - 1;
      const dt = 0.01 + rng.next() * 0.5;
      const { dA, dB } = discretizeZOH({ re: [ar], im: [ai] }, { re: [br], im: [bi] }, dt);
      const zr = dA.re[0] * x0r - dA.im[0] * x0i + dB.re[0] * u;
      const zi = dA.re[0] * x0i + dA.im[0] * x0r + dB.im[0] * u;
      // RK4 on the complex scalar ODE
      const f = (xr: number, xi: number): [number, number] => [ar * xr - ai * xi + br * u, ar * xi + ai * xr + bi * u];
      const steps = 2000, h = dt / steps;
      let xr = x0r, xi = x0i;
      for (let s = 0; s < steps; s++) {
        const k1 = f(xr, xi);
        const k2 = f(xr + (h / 2) * k1[0], xi + (h / 2) * k1[1]);
        const k3 = f(xr + (h / 2) * k2[0], xi + (h / 2) * k2[1]);
        const k4 = f(xr + h * k3[0], xi + h * k3[1]);
        xr += (h / 6) * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0]);
        xi += (h / 6) * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1]);
      }
      close(zr, xr, 1e-9, `trial ${trial} re`);
      close(zi, xi, 1e-9, `trial ${trial} im`);
    }
  });
  it('ZOH dB → B·dt as A → 0 (no cancellation) and equals the formula at moderate A', () => {
    const { dB } = discretizeZOH({ re: [0, -1e-12], im: [0, 0] }, { re: [1, 1], im: [0, 0] }, 0.1);
    close(dB.re[0], 0.1, 1e-17);
    // (exp(dt·a) − 1)/a = dt·(1 + dt·a/2 + …): the O(1e-14) correction must survive (naive exp(x) − 1 loses it)
    close(dB.re[1], 0.1 * (1 + (0.1 * -1e-12) / 2), 1e-17);
  });
  it('bilinear: |dA| < 1 whenever Re(A) < 0, and the formulas', () => {
    const rng = new Rng(3);
    for (let t = 0; t < 200; t++) {
      const ar = -Math.exp(4 * (rng.next() - 0.5)), ai = (rng.next() - 0.5) * 100, dt = Math.exp(6 * (rng.next() - 0.5));
      const { dA, dB } = discretizeBilinear({ re: [ar], im: [ai] }, { re: [1], im: [0] }, dt);
      assert.ok(Math.hypot(dA.re[0], dA.im[0]) < 1, `|dA| for A=${ar}+${ai}i dt=${dt}`);
      // (1 − dtA/2)·dA == 1 + dtA/2 ;  (1 − dtA/2)·dB == dt
      const mr = 1 - (dt * ar) / 2, mi = -(dt * ai) / 2;
      close(mr * dA.re[0] - mi * dA.im[0], 1 + (dt * ar) / 2, 1e-12);
      close(mr * dA.im[0] + mi * dA.re[0], (dt * ai) / 2, 1e-12);
      close(mr * dB.re[0] - mi * dB.im[0], dt, 1e-12);
      close(mr * dB.im[0] + mi * dB.re[0], 0, 1e-12);
    }
  });
  it('dense bilinear satisfies (I − dt/2·A)·dA = I + dt/2·A, (I − dt/2·A)·dB = dt·B; diagonal case = diagonal formula', () => {
    for (const ssm of [hippoLegS(8), hippoLegT(6), hippoFouT(8), hippoLagT(5)]) {
      const N = ssm.N, dt = 0.07;
      const d = discretizeBilinearDense(ssm, dt);
      for (let i = 0; i < N; i++) {
        for (let j = 0; j < N; j++) {
          let lhs = 0;
          for (let k = 0; k < N; k++) lhs += ((i === k ? 1 : 0) - (dt / 2) * ssm.A[i * N + k]) * d.A[k * N + j];
          close(lhs, (i === j ? 1 : 0) + (dt / 2) * ssm.A[i * N + j], 1e-12, `dA (${i},${j})`);
        }
        let lb = 0;
        for (let k = 0; k < N; k++) lb += ((i === k ? 1 : 0) - (dt / 2) * ssm.A[i * N + k]) * d.B[k];
        close(lb, dt * ssm.B[i], 1e-12, `dB ${i}`);
      }
    }
    const re = [-1, -2.5, -0.3], N = 3, dt = 0.2;
    const A = new Float64Array(9);
    re.forEach((v, i) => { A[i * 4] = v; });
    const dd = discretizeBilinearDense({ N, A, B: new Float64Array([1, 2, 3]) }, dt);
    const dg = discretizeBilinear({ re, im: [0, 0, 0] }, { re: [1, 2, 3], im: [0, 0, 0] }, dt);
    for (let i = 0; i < N; i++) { close(dd.A[i * 4], dg.dA.re[i], 1e-15); close(dd.B[i], dg.dB.re[i], 1e-15); }
    assert.ok(Math.abs(dd.A[1]) < 1e-16);
  });
  it('solveDense needs pivoting: [[0,1],[1,0]] x = [2,3]', () => {
    assert.deepEqual(Array.from(solveDense([0, 1, 1, 0], [2, 3], 2, 1)), [3, 2]);
    assert.throws(() => solveDense([1, 2, 2, 4], [1, 1], 2, 1));
  });
});

describe('FFT', () => {
  it('impulse → all ones; round trip; matches the naive DFT', () => {
    const n = 16;
    const re = new Float64Array(n), im = new Float64Array(n);
    re[0] = 1;
    fftInPlace(re, im);
    assert.ok(maxAbsDiff(re, new Float64Array(n).fill(1)) < 1e-15 && maxAbsDiff(im, new Float64Array(n)) < 1e-15);
    const rng = new Rng(11);
    for (const m of [1, 2, 8, 64, 1024]) {
      const xr = Float64Array.from({ length: m }, () => rng.next() - 0.5);
      const xi = Float64Array.from({ length: m }, () => rng.next() - 0.5);
      const yr = xr.slice(), yi = xi.slice();
      fftInPlace(yr, yi);
      if (m <= 64) {
        for (let k = 0; k < m; k++) {
          let sr = 0, si = 0;
          for (let j = 0; j < m; j++) {
            const a = (-2 * Math.PI * j * k) / m;
            sr += xr[j] * Math.cos(a) - xi[j] * Math.sin(a);
            si += xr[j] * Math.sin(a) + xi[j] * Math.cos(a);
          }
          close(yr[k], sr, 1e-12, `m=${m} k=${k} re`); close(yi[k], si, 1e-12, `m=${m} k=${k} im`);
        }
      }
      fftInPlace(yr, yi, true);
      assert.ok(maxAbsDiff(yr, xr) < 1e-14 && maxAbsDiff(yi, xi) < 1e-14, `round trip m=${m}`);
    }
    assert.throws(() => fftInPlace(new Float64Array(6), new Float64Array(6)));
    assert.equal(nextPow2(1), 1); assert.equal(nextPow2(600), 1024);
  });
  it('FFT causal conv == direct O(L²) causal conv', () => {
    const rng = new Rng(5);
    for (const L of [1, 2, 7, 64, 300, 513]) {
      const u = Float64Array.from({ length: L }, () => rng.next() - 0.5);
      const K = Float64Array.from({ length: L }, () => rng.next() - 0.5);
      const yf = causalConvFFT(u, K), yd = causalConvDirect(u, K);
      assert.equal(yf.length, L);
      assert.ok(maxAbsDiff(yf, yd) < 1e-12 * Math.max(1, L), `L=${L}: ${maxAbsDiff(yf, yd)}`);
    }
  });
});

describe('S4D modes', () => {
  it('convolution (Vandermonde + FFT) == recurrence for every init, both discretizations, L ∈ {1,7,64,300}', () => {
    const kinds: S4dInitKind[] = ['lin', 'inv', 'real', 'legs', 'random'];
    let seed = 100;
    for (const kind of kinds) {
      for (const disc of ['zoh', 'bilinear'] as const) {
        for (const L of [1, 7, 64, 300]) {
          for (const dt of [0.01, 0.1]) {
            const rng = new Rng(seed++);
            const A = s4dInit(kind, 16, rng);
            const M = A.re.length;
            const C = complexRandn(M, rng);
            const B = kind === 'random' ? complexRandn(M, rng) : onesB(M);
            const u = Float64Array.from({ length: L }, () => rng.next() * 2 - 1);
            const D = rng.next() - 0.5;
            const yc = s4dConvolve(A, B, C, dt, u, disc, D);
            const yr = s4dRecurrent(A, B, C, dt, u, disc, D);
            let scale = 1e-300;
            for (const v of yr) scale = Math.max(scale, Math.abs(v));
            const err = maxAbsDiff(yc, yr) / scale;
            assert.ok(err <= 1e-9, `${kind}/${disc}/L=${L}/dt=${dt}: rel err ${err}`);
          }
        }
      }
    }
  });
  it('kernel = impulse response of the recurrence, K[0] = 2·Re(C·dB), and D skip adds D·u', () => {
    const rng = new Rng(9);
    const A = s4dInit('lin', 8), C = complexRandn(4, rng), B = onesB(4);
    const L = 20, u = new Float64Array(L);
    u[0] = 1;
    for (const disc of ['zoh', 'bilinear'] as const) {
      const K = s4dKernel(A, B, C, 0.05, L, disc);
      assert.ok(maxAbsDiff(K, s4dRecurrent(A, B, C, 0.05, u, disc)) < 1e-13);
      const { dB } = disc === 'zoh' ? discretizeZOH(A, B, 0.05) : discretizeBilinear(A, B, 0.05);
      let k0 = 0;
      for (let n = 0; n < 4; n++) k0 += 2 * (C.re[n] * dB.re[n] - C.im[n] * dB.im[n]);
      close(K[0], k0, 1e-15);
      const y0 = s4dRecurrent(A, B, C, 0.05, u, disc, 0), y1 = s4dRecurrent(A, B, C, 0.05, u, disc, 0.7);
      close(y1[0] - y0[0], 0.7, 1e-15);
    }
  });
  it('init formulas: lin, inv, real', () => {
    const lin = s4dInit('lin', 8), inv = s4dInit('inv', 8), real = s4dInit('real', 4);
    assert.deepEqual(Array.from(lin.re), [-0.5, -0.5, -0.5, -0.5]);
    close(lin.im[3], 3 * Math.PI, 1e-15);
    close(inv.im[0], (8 / Math.PI) * 7, 1e-13);
    close(inv.im[2], (8 / Math.PI) * (8 / 5 - 1), 1e-13);
    assert.deepEqual(Array.from(real.re), [-1, -2, -3, -4]);
    assert.deepEqual(Array.from(real.im), [0, 0, 0, 0]);
    const r1 = s4dInit('random', 8, new Rng(1)), r2 = s4dInit('random', 8, new Rng(1));
    assert.deepEqual(Array.from(r1.re), Array.from(r2.re));
    assert.ok(r1.re.every((v) => v < 0) && r1.im.every((v) => v > 0));
  });
});

describe('S4D-LegS eigenvalues', () => {
  it('real parts −½; imaginary parts match trace identities of the dense normal part', () => {
    for (const N of [2, 4, 8, 16, 32, 64]) {
      const A = s4dInit('legs', N);
      assert.equal(A.re.length, N / 2);
      assert.ok(A.re.every((v) => v === -0.5));
      assert.ok(A.im.every((v) => v <= 0), 'negative imaginary half kept');
      const w = legsNormalFrequencies(N);
      const S = legsSkew(N);
      const S2 = matmul(S, S, N), S4 = matmul(S2, S2, N);
      // eigenvalues ±iω: trace(S²) = −2Σω², trace(S⁴) = 2Σω⁴
      let sw2 = 0, sw4 = 0;
      for (const x of w) { sw2 += x * x; sw4 += x ** 4; }
      close(trace(S2, N), -2 * sw2, 1e-10 * Math.abs(trace(S2, N)), `N=${N} tr S²`);
      close(trace(S4, N), 2 * sw4, 1e-10 * Math.abs(trace(S4, N)), `N=${N} tr S⁴`);
      // and the dense bilinear of A + PPᵀ: trace(dA) = Σ over all N eigenvalues λ of (1 + dtλ/2)/(1 − dtλ/2)
      const { A: Ad } = hippoLegS(N);
      const P = hippoLegSP(N);
      const An = Ad.slice();
      for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) An[i * N + j] += P[i] * P[j];
      for (const dt of [0.01, 0.3]) {
        const dense = discretizeBilinearDense({ N, A: An, B: new Float64Array(N) }, dt);
        const diag = discretizeBilinear(A, onesB(N / 2), dt);
        let tr = 0;
        for (let n = 0; n < N / 2; n++) tr += 2 * diag.dA.re[n];
        close(trace(dense.A, N), tr, 1e-9, `N=${N} dt=${dt} trace dA`);
      }
    }
  });
  it('N=2 closed form: S = [[0, −s],[s, 0]] with ω = |S[1,0]|', () => {
    const S = legsSkew(2);
    close(legsNormalFrequencies(2)[0], Math.abs(S[2]), 1e-14);
  });
  it('symmetric Jacobi eigenvalues: known 2×2 and diagonal', () => {
    const ev = symmetricEigenvalues([2, 1, 1, 2], 2);
    close(ev[0], 3, 1e-14); close(ev[1], 1, 1e-14);
    assert.deepEqual(Array.from(symmetricEigenvalues([1, 0, 0, 0, 5, 0, 0, 0, 3], 3)), [5, 3, 1]);
  });
});
