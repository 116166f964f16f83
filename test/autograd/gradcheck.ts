/**
 * Finite-difference gradient check in float64: the analytic gradient of Σ rᵢ·outᵢ (r fixed random) with
 * respect to every input element (or a seeded sample of them) against central differences.
 */
import { Rng } from '../../src/generate/rng.js';
import { backward, noGrad, param, type Var } from '../../src/autograd/var.js';

export interface GradcheckOptions {
  /** check at most this many elements per input (seeded sample); default all */
  maxPerInput?: number;
  eps?: number;
  rtol?: number;
  atol?: number;
  seed?: number;
}

export interface GradcheckReport {
  /** worst |analytic − numeric| / (atol + rtol·|numeric|); ≤ 1 passes */
  worst: number;
  where: string;
  checked: number;
}

/** random float64 input of a shape, values ~ U(lo, hi) */
export function rand64(rng: Rng, shape: number[], lo = -1, hi = 1): Float64Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.next();
  return a;
}

export function gradcheck(f: (xs: Var[]) => Var, inputs: Array<{ name: string; data: Float64Array; shape: number[] }>, opts: GradcheckOptions = {}): GradcheckReport {
  const rng = new Rng(opts.seed ?? 7);
  const eps = opts.eps ?? 1e-6;
  const rtol = opts.rtol ?? 1e-5;
  const atol = opts.atol ?? 1e-8;
  const vars = inputs.map((i) => param(i.name, i.data, i.shape));
  const out = f(vars);
  const r = rand64(rng, [out.size]);
  backward(out, r);
  const objective = (): number =>
    noGrad(() => {
      const o = f(inputs.map((i) => param(i.name, i.data, i.shape)));
      let acc = 0;
      for (let k = 0; k < o.size; k++) acc += r[k] * o.data[k];
      return acc;
    });
  let worst = 0;
  let where = '';
  let checked = 0;
  inputs.forEach((inp, vi) => {
    const g = vars[vi].grad;
    const n = inp.data.length;
    let idx = Array.from({ length: n }, (_, k) => k);
    if (opts.maxPerInput && n > opts.maxPerInput) {
      for (let k = n - 1; k > 0; k--) {
        const j = Math.floor(rng.next() * (k + 1));
        [idx[k], idx[j]] = [idx[j], idx[k]];
      }
      idx = idx.slice(0, opts.maxPerInput);
    }
    for (const k of idx) {
      const x0 = inp.data[k];
      inp.data[k] = x0 + eps;
      const fp = objective();
      inp.data[k] = x0 - eps;
      const fm = objective();
      inp.data[k] = x0;
      const num = (fp - fm) / (2 * eps);
      const ana = g ? g[k] : 0;
      const err = Math.abs(ana - num) / (atol + rtol * Math.abs(num));
      checked++;
      if (!(err <= worst)) {
        worst = Number.isNaN(err) ? Infinity : err;
        where = `${inp.name}[${k}]: analytic ${ana}, numeric ${num}`;
      }
    }
  });
  return { worst, where, checked };
}
