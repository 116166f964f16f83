/**
 * The prefill GEMMs of mamba-130m and mamba2-130m (y = x·wᵀ, x [M, K], w [N, K], M = `--m` rows) with each GEMM kernel
 * the device has: 'old' (the 64×64 kernel of before), 'tiled' (the shared template, 128×128 where the grid fills the
 * GPU) and 'sgmat' (subgroup-matrix / tensor cores, when the device offers an f32 configuration and it passed the
 * check at creation). Prints ms and TFLOP/s per shape and kernel, and checks every result: 'old' against a float64
 * host product on a sample of rows, the others against 'old' (max |Δ| / max |y|). Tensor cores may round operands
 * to tf32 (10-bit mantissa): their error is printed as measured, next to the f32 kernels' (~1e-7).
 *
 *   node dist/bench/gemm.bench.js [--m 2048] [--reps 20] [--weights f32|bf16] [--kernels old,tiled,sgmat]
 *        [--shapes <substring>,…] [--json]
 *
 * The backend always runs its 'tiled' (GPU) kernels here, on software adapters too (slowly: use a small --m and
 * --shapes there).
 *
 * A kernel whose error exceeds `--tol` (default 1e-4 for f32 kernels, 1e-2 for sgmat) makes the exit status 1.
 */
import { createWebGpuBackend, type WebGpuBackend } from '../src/backend/webgpu/index.js';
import { maxRelErr } from '../src/backend/webgpu/backend.js';
import type { WebGpuGemm } from '../src/backend/webgpu/options.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const M = Number(arg('m', '2048'));
const reps = Number(arg('reps', '20'));
const weights = arg('weights', 'f32') as 'f32' | 'bf16';
const wanted = arg('kernels', 'old,tiled,sgmat').split(',') as WebGpuGemm[];
const json = process.argv.includes('--json');
const tolArg = arg('tol', '');
const only = arg('shapes', '').split(',').filter((s) => s);
const log = (s: string) => process.stderr.write(s + '\n');

/** [what, K, N]: the prefill linears of the two presets (d_model 768, d_inner 1536, vocab 50280) */
const SHAPES: [string, number, number][] = [
  ['mamba in_proj 768→3072', 768, 3072],
  ['mamba x_proj 1536→80', 1536, 80],
  ['mamba dt_proj 48→1536', 48, 1536],
  ['out_proj 1536→768', 1536, 768],
  ['mamba2 in_proj 768→3352', 768, 3352],
  ['lm_head 768→50280', 768, 50280],
];

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = (s / 2 ** 32 - 0.5) * 2;
  }
  return a;
}

/** float64 rows of x·wᵀ for a sample of rows (w as the device stores it: bf16 rounds it) */
function hostRows(x: Float32Array, w: Float32Array, K: number, N: number, rows: number[]): Float64Array {
  const out = new Float64Array(rows.length * N);
  rows.forEach((r, i) => {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[r * K + k] * w[n * K + k];
      out[i * N + n] = s;
    }
  });
  return out;
}

const bf16Round = (w: Float32Array): Float32Array => {
  const u = new Uint32Array(w.buffer.slice(0));
  for (let i = 0; i < u.length; i++) {
    const x = u[i];
    u[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) << 16;
  }
  return new Float32Array(u.buffer);
};

const be: WebGpuBackend = await createWebGpuBackend({ weights, kernels: 'tiled' });
log(`backend ${be.name}, kernels ${be.kernels}, weights ${weights}, subgroups ≤ ${be.rt.subgroupMax} (fixed ${be.rt.subgroupFixed || 'no'})`);
log(`subgroup-matrix configs: ${be.rt.matrixConfigs.length ? be.rt.matrixConfigs.map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K}`).join(', ') : 'none'}`);
log(`subgroup-matrix GEMM: ${be.matrixGemm ? 'on' : 'off'} — ${be.matrixNote}`);
const kernels = wanted.filter((k) => k !== 'sgmat' || be.matrixGemm);
if (!kernels.includes('old')) kernels.unshift('old');

const results: Record<string, unknown>[] = [];
let failed = false;
for (const [what, K, N] of SHAPES.filter(([w]) => only.length === 0 || only.some((o) => w.includes(o)))) {
  const xs = rand(M * K, K * 31 + N), ws = rand(N * K, N * 17 + K);
  const x = be.fromHost(xs, [M, K]);
  const w = be.fromHost(ws, [N, K], { matrix: true });
  const bf = (w.storage as { fmt?: string }).fmt === 'bf16';
  const flop = 2 * M * N * K;
  let ref: Float32Array | null = null;
  for (const gemm of kernels) {
    be.gemm = gemm;
    const name = be.gemmKernel(M, N, bf).name;
    // warm-up (compile) and the result
    const y0 = be.linear(x, w, null);
    const got = await be.read(y0);
    y0.dispose();
    let err: number;
    let against: string;
    if (gemm === 'old') {
      const rows = [0, 1, 63, 64, Math.floor(M / 2), M - 1].filter((r, i, a) => r < M && a.indexOf(r) === i);
      const want = hostRows(xs, bf ? bf16Round(ws) : ws, K, N, rows);
      const sample = new Float32Array(rows.length * N);
      rows.forEach((r, i) => sample.set(got.subarray(r * N, r * N + N), i * N));
      err = maxRelErr(sample, Float32Array.from(want));
      against = 'float64 host rows';
      ref = got;
    } else {
      err = maxRelErr(got, ref!);
      against = 'old';
    }
    const tol = tolArg ? Number(tolArg) : gemm === 'sgmat' ? 1e-2 : 1e-4;
    const ok = err <= tol;
    if (!ok) failed = true;
    // timing: reps products recorded into one submit (each output released at once: they reuse one block, as
    // recorded work may — see GpuRuntime.release — so lm_head's 400 MB output is not held reps times)
    const ts: number[] = [];
    for (let trial = 0; trial < 3; trial++) {
      await be.sync();
      const t0 = performance.now();
      for (let r = 0; r < reps; r++) be.linear(x, w, null).dispose();
      await be.sync();
      ts.push((performance.now() - t0) / reps);
    }
    const ms = Math.min(...ts);
    const tflops = flop / (ms / 1000) / 1e12;
    results.push({ shape: what, M, K, N, weights, gemm, kernel: name, ms, tflops, max_rel_err: err, checked_against: against, ok });
    if (!json) console.log(`${what.padEnd(26)} M=${M}  ${gemm.padEnd(5)} ${name.padEnd(28)} ${ms.toFixed(3).padStart(8)} ms  ${tflops.toFixed(1).padStart(6)} TFLOP/s  max rel err ${err.toExponential(2)} vs ${against}${ok ? '' : `  FAIL (> ${tol})`}`);
  }
  x.dispose();
  w.dispose();
}
if (json) console.log(JSON.stringify({ backend: be.name, weights, matrix: { on: !!be.matrixGemm, note: be.matrixNote, configs: be.rt.matrixConfigs }, results }, null, 1));
be.destroy();
if (failed) {
  log('gemm.bench: a kernel disagreed with its reference (see FAIL above)');
  process.exit(1);
}
