/**
 * The float32 WebAssembly training kernels against their TypeScript oracles on the same random inputs: the selective
 * scan (`fused-scan-wasm.ts` vs `selectiveScanJs`), the causal conv1d (+ silu) and the linear layer's products.
 * Outputs and every input gradient must agree to a float32 tolerance, relative to the largest magnitude of the
 * oracle's values: |wasm − js| ≤ TOL · max(1, max|js|) elementwise (TOL = 2e-5 — the wasm kernels keep the state
 * and all sums in f32, the oracle in float64; the vector exp has relative error < 1e-7).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/generate/rng.js';
import * as F from '../../src/autograd/fused.js';
import * as ag from '../../src/autograd/ops.js';
import { selectiveScanJs } from '../../src/autograd/fused-scan.js';
import { backward, noGrad, param, type Var } from '../../src/autograd/var.js';
import { withTrainRuntime } from '../../src/autograd/wasm-train.js';
import { defaultTrainRuntime } from '../../src/backend/cpu/index.js';
import { transpose } from '../../src/autograd/gemm.js';

const TOL = 2e-5;

function rand32(rng: Rng, n: number, lo: number, hi: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.next();
  return a;
}

/** worst |a − b| / max(1, max|b|) */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let scale = 1;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst / scale;
}

type Spec = { name: string; shape: number[]; lo: number; hi: number };

/** run `f` on fresh parameters made from `data`, back-propagate `seed`; the output and every input's gradient */
function run(f: (vs: Var[]) => Var, specs: Spec[], data: Float32Array[], seed: Float32Array, f64 = false): { out: Float32Array; grads: Float32Array[] } {
  const vs = specs.map((s, i) => param(s.name, f64 ? Float64Array.from(data[i]) : data[i].slice(), s.shape));
  const out = f(vs);
  backward(out, f64 ? Float64Array.from(seed) : seed);
  return { out: Float32Array.from(out.data), grads: vs.map((v) => Float32Array.from(v.grad ?? new Float32Array(v.size))) };
}

/** `wasm` on float32 inputs against `js` on the same values (in float64 when `js64`: the TypeScript path) */
function compare(label: string, wasm: (vs: Var[]) => Var, js: (vs: Var[]) => Var, specs: Spec[], seed = 1, js64 = false): void {
  const rng = new Rng(seed);
  const data = specs.map((s) => rand32(rng, s.shape.reduce((a, b) => a * b, 1), s.lo, s.hi));
  // the same output gradient for both
  const size = noGrad(() => js(specs.map((s, i) => param(s.name, data[i].slice(), s.shape)))).size;
  const g = rand32(rng, size, -1, 1);
  const w = withTrainRuntime(defaultTrainRuntime(), () => run(wasm, specs, data, g));
  const j = run(js, specs, data, g, js64);
  const eOut = relErr(w.out, j.out);
  assert.ok(eOut <= TOL, `${label}: output differs by ${eOut}`);
  specs.forEach((s, i) => {
    const e = relErr(w.grads[i], j.grads[i]);
    assert.ok(e <= TOL, `${label}: gradient of ${s.name} differs by ${e}`);
    // the gradients are not trivially zero (a test that could not fail otherwise)
    assert.ok(j.grads[i].some((v) => v !== 0), `${label}: oracle gradient of ${s.name} is all zero`);
  });
}

test('the wasm training kernels are available (float32 training runs on them)', () => {
  assert.ok(defaultTrainRuntime(), 'defaultTrainRuntime() is null: dist/wasm/kernels.wasm missing or MAMBA_TS_TRAIN_WASM=js');
});

// selective scan: shapes with odd D (partial channel groups), L not a multiple of the chunk, N not a multiple of 4
const scanShapes: Array<{ b: number; L: number; D: number; N: number; chunk: number }> = [
  { b: 2, L: 7, D: 3, N: 4, chunk: 3 },
  { b: 1, L: 13, D: 9, N: 5, chunk: 4 },
  { b: 3, L: 20, D: 16, N: 16, chunk: 64 },
  { b: 2, L: 33, D: 6, N: 3, chunk: 8 },
];
for (const sh of scanShapes) {
  for (const variant of ['full', 'bare', 'D only', 'z no bias'] as const) {
    const { b, L, D, N, chunk } = sh;
    const specs: Spec[] = [
      { name: 'u', shape: [b, L, D], lo: -1, hi: 1 },
      { name: 'delta', shape: [b, L, D], lo: variant === 'bare' ? 0.05 : -2, hi: 1 },
      { name: 'A', shape: [D, N], lo: -1.5, hi: -0.2 },
      { name: 'B', shape: [b, L, N], lo: -1, hi: 1 },
      { name: 'C', shape: [b, L, N], lo: -1, hi: 1 },
    ];
    const hasD = variant === 'full' || variant === 'D only';
    const hasZ = variant === 'full' || variant === 'z no bias';
    const hasBias = variant === 'full';
    if (hasD) specs.push({ name: 'D', shape: [D], lo: -1, hi: 1 });
    if (hasZ) specs.push({ name: 'z', shape: [b, L, D], lo: -2, hi: 2 });
    if (hasBias) specs.push({ name: 'deltaBias', shape: [D], lo: -0.5, hi: 0.5 });
    const make = (impl: typeof F.selectiveScan) => (vs: Var[]): Var => {
      const by = new Map(specs.map((s, i) => [s.name, vs[i]]));
      return impl({
        u: by.get('u')!, delta: by.get('delta')!, A: by.get('A')!, B: by.get('B')!, C: by.get('C')!,
        D: by.get('D') ?? null, z: by.get('z') ?? null, deltaBias: by.get('deltaBias') ?? null,
        deltaSoftplus: variant !== 'bare', chunkSize: chunk,
      });
    };
    test(`selective scan wasm = TypeScript: b${b} L${L} D${D} N${N} chunk ${chunk}, ${variant}`, () => {
      compare(`scan ${variant}`, make(F.selectiveScan), make(selectiveScanJs), specs, b * 1000 + L * 10 + D);
    });
  }
}

// causal conv1d (+ silu): C not a multiple of 4, K > L, K > 4, with and without bias
const convShapes: Array<{ b: number; L: number; C: number; K: number }> = [
  { b: 2, L: 3, C: 5, K: 4 },
  { b: 1, L: 11, C: 7, K: 2 },
  { b: 3, L: 16, C: 32, K: 4 },
  { b: 2, L: 9, C: 6, K: 5 },
];
for (const { b, L, C, K } of convShapes) {
  for (const silu of [false, true]) {
    for (const withBias of [true, false]) {
      const specs: Spec[] = [
        { name: 'x', shape: [b, L, C], lo: -2, hi: 2 },
        { name: 'w', shape: [C, K], lo: -1, hi: 1 },
      ];
      if (withBias) specs.push({ name: 'bias', shape: [C], lo: -1, hi: 1 });
      test(`causal conv1d wasm = TypeScript: b${b} L${L} C${C} K${K}${silu ? ' + silu' : ''}${withBias ? '' : ', no bias'}`, () => {
        compare(
          'conv',
          ([x, w, bias]) => F.causalConv1d(x, w, bias ?? null, silu),
          ([x, w, bias]) => {
            const y = F.causalConv1dJs(x, w, bias ?? null);
            return silu ? ag.silu(y) : y;
          },
          specs,
          b * 100 + L * 10 + C,
        );
      });
    }
  }
}

// linear layer (forward on linear_f32; backward: wasm transposes + two linear_f32 products) against the float64
// TypeScript path; shapes above the wasm threshold (M·K·N ≥ 2^14), odd sizes (transpose edges)
const linShapes: Array<{ M: number; K: number; N: number }> = [
  { M: 64, K: 32, N: 48 },
  { M: 37, K: 29, N: 53 },
  { M: 130, K: 7, N: 33 },
];
for (const { M, K, N } of linShapes) {
  for (const withBias of [true, false]) {
    const specs: Spec[] = [
      { name: 'x', shape: [M, K], lo: -1, hi: 1 },
      { name: 'w', shape: [N, K], lo: -1, hi: 1 },
    ];
    if (withBias) specs.push({ name: 'bias', shape: [N], lo: -1, hi: 1 });
    test(`linear wasm = TypeScript float64: M${M} K${K} N${N}${withBias ? '' : ', no bias'}`, () => {
      const f = ([x, w, bias]: Var[]): Var => ag.linear(x, w, bias ?? null);
      compare('linear', f, f, specs, M + K + N, true);
    });
  }
}

test('transpose_f32 (wasm) = the TypeScript transpose, edges included', () => {
  const rt = defaultTrainRuntime()!;
  const rng = new Rng(5);
  for (const [R, C] of [[1, 1], [3, 5], [4, 4], [37, 66], [64, 33], [100, 3]]) {
    const a = rand32(rng, R * C, -1, 1);
    const o = rt.heap.alloc(R * C * 4);
    const t = rt.heap.alloc(R * C * 4);
    try {
      rt.f32(o, R * C).set(a);
      rt.kernels.transpose_f32(o, t, R, C);
      assert.deepEqual(rt.f32(t, R * C).slice(), transpose(a, R, C), `${R}×${C}`);
    } finally {
      rt.heap.release(t);
      rt.heap.release(o);
    }
  }
});
