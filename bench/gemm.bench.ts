/**
 * The GEMMs of the Mamba presets (y = x·wᵀ, x [M, K], w [N, K]) at prefill size (`--m 2048`) and at decode-batch
 * size (`--m 1,8,32,64`), with each GEMM kernel the device has: 'old' (the 64×64 kernel of before; at ≤ 8 rows the
 * decode matvec the backend runs there), 'tiled' (the shared template, 128×128 where the grid fills the GPU),
 * 'sgmat' (subgroup-matrix / tensor cores, when the device offers an f32 configuration and it passed the check at
 * creation), 'blocked' (kernels/gemm_blocked.ts, configuration and split-K chosen per shape) and, with `--configs`,
 * the blocked kernel forced to each named configuration (BLOCKED_CONFIGS: p128, p128x64, p64, p64x128, s16, s32,
 * s64, s64x128, or a variant base such as 128x64k16t8x4, code flags allowed (128x128k16t8x8_v_w8; bench/gemm-sweep.bench.ts
 * sweeps them); `name@S` also forces S K-splits), and 'int8x1'…'int8x4'
 * (kernels/gemm_int8.ts: the Ozaki split into S int8 slices, on i8 subgroup matrices where the backend's check
 * (`enableInt8Gemm`, run here when an int8 kernel is listed) passed, else emulated — the kernel name says which; `int8x3:t128` forces 128-row tiles). An int8 kernel's
 * TFLOP/s count the float32-equivalent 2·M·N·K; its time includes splitting x (the weights' slices are made once,
 * in the warm-up product, and cached).
 * Prints µs, TFLOP/s and GB/s (weights + x + y bytes, once each) per shape, M and kernel, and checks every
 * result: 'old' against a float64 host product on a sample of rows, the others against 'old' (max |Δ| / max |y|).
 * Tensor cores may round operands to tf32 (10-bit mantissa): their error is printed as measured.
 * `--weights f32,bf16,q8` times each weight format (a backend each, one shape after another, the formats interleaved);
 * a q8 matrix's reference is the float64 product of its dequantized values. With q8 weights the tiled kernels run once
 * per `--q8-tiles` mode ('vector': 16-byte tile loads, the default; 'scalar': session 27's `wv(i)` reader; both by
 * default, listed as e.g. 'tiled/scalar'); the other kernels do not depend on it and run once.
 *
 *   node dist/bench/gemm.bench.js [--m 2048 | --m 1,8,32,64] [--reps 20] [--weights f32,bf16,q8] [--q8-tiles vector,scalar]
 *        [--kernels old,tiled,sgmat,blocked,int8x1,int8x2,int8x3,int8x4] [--configs p128,p128x64,p64] [--sizes 130m,llama,2.8b] [--shapes <substring>,…] [--json]
 *
 * `--sizes` picks the shape sets (default 130m: d_model 768; llama: llama-130m's; 2.8b: d_model 2560). The backend always runs its
 * 'tiled' (GPU) kernels here, on software adapters too (slowly: use a small --m and --shapes there).
 *
 * A kernel whose error exceeds `--tol` (default 1e-4 for f32 kernels and int8x3/int8x4, 1e-2 for sgmat, 3e-2 for
 * int8x1, 1e-3 for int8x2) makes the exit status 1.
 */
import { createWebGpuBackend, type WebGpuBackend } from '../src/backend/webgpu/index.js';
import { maxRelErr } from '../src/backend/webgpu/backend.js';
import { WEBGPU_GEMMS, WEBGPU_Q8_TILES, WEBGPU_WEIGHT_FORMATS, type WebGpuGemm, type WebGpuWeights } from '../src/backend/webgpu/options.js';
import { BLOCKED_BASE, BLOCKED_CONFIGS } from '../src/backend/webgpu/kernels/gemm_blocked.js';
import { packQ8Gpu, unpackQ8Gpu } from '../src/backend/webgpu/kernels/q8.js';
import { arg, intListArg, listArg } from './options.js';
import { GEMM_SHAPE_SETS, gemmInput as rand } from './gemm-shapes.js';

const Ms = intListArg('m', '2048');
const reps = Number(arg('reps', '20'));
const formats = listArg<WebGpuWeights>('weights', 'f32', WEBGPU_WEIGHT_FORMATS);
const q8Tiles = listArg('q8-tiles', 'vector,scalar', WEBGPU_Q8_TILES);
const wanted = listArg('kernels', 'old,tiled,sgmat,blocked');
for (const k of wanted) {
  const [g, o] = k.split(':');
  if (!(WEBGPU_GEMMS as readonly string[]).includes(g) || (o !== undefined && !(/^int8/.test(g) && /^t(64|128)$/.test(o)))) throw new Error(`--kernels: ${k} is not one of ${WEBGPU_GEMMS.join(', ')} (int8 kernels may add :t64 or :t128)`);
}
const configs = listArg('configs', '');
for (const c of configs) {
  const name = c.split('@')[0];
  if (!BLOCKED_CONFIGS[name] && !BLOCKED_BASE.test(name)) throw new Error(`--configs: ${c} is neither one of ${Object.keys(BLOCKED_CONFIGS).join(', ')} nor a variant base like 128x64k16t8x4 or 128x128k16t8x8_v_w8 (flags: kernels/gemm_blocked.ts; optionally @splits)`);
}
const json = process.argv.includes('--json');
const tolArg = arg('tol', '');
const only = listArg('shapes', '');
const log = (s: string) => process.stderr.write(s + '\n');

const SHAPE_SETS = GEMM_SHAPE_SETS;
const sizes = listArg('sizes', '130m', Object.keys(SHAPE_SETS));
const SHAPES = sizes.flatMap((z) => SHAPE_SETS[z]);

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

/** the weights as the device holds them (bf16 rounds them, q8 quantizes them) */
const held = (w: Float32Array, fmt: string): Float32Array => (fmt === 'bf16' ? bf16Round(w) : fmt === 'q8' ? unpackQ8Gpu(packQ8Gpu(w), w.length) : w);

// a backend per weight format (`weights` is chosen at creation); the first one's notes are printed
const backends = new Map<WebGpuWeights, WebGpuBackend>();
for (const f of formats) backends.set(f, await createWebGpuBackend({ weights: f, kernels: 'tiled' }));
let be: WebGpuBackend = backends.get(formats[0])!;
log(`backend ${be.name}, kernels ${be.kernels}, weights ${formats.join(', ')}, subgroups ≤ ${be.rt.subgroupMax} (fixed ${be.rt.subgroupFixed || 'no'})`);
log(`subgroup-matrix configs: ${be.rt.matrixConfigs.length ? be.rt.matrixConfigs.map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K}`).join(', ') : 'none'}`);
log(`subgroup-matrix GEMM: ${be.matrixGemm ? 'on' : 'off'} — ${be.matrixNote}`);
// the int8 check runs at creation only when `gemm` asks for int8: here the kernels are chosen per entry
if (wanted.some((k) => k.startsWith('int8'))) for (const b of backends.values()) await b.enableInt8Gemm();
log(`int8 GEMM: ${be.int8.note}`);
const kernels: string[] = wanted.filter((k) => k !== 'sgmat' || be.matrixGemm);
if (!kernels.includes('old')) kernels.unshift('old');
kernels.push(...configs.map((c) => `blocked:${c}`));

/** the entries of one weight format: with q8, the tiled kernels (tiled, sgmat, which may fall back to it) once per `--q8-tiles` mode */
const entriesOf = (fmt: string): string[] =>
  fmt !== 'q8' ? kernels : kernels.flatMap((k) => (k === 'tiled' || k === 'sgmat' ? q8Tiles.map((t) => (t === 'vector' ? k : `${k}/${t}`)) : [k]));

/** set the backend up for one kernel entry: 'old' | 'tiled[/scalar]' | 'sgmat[/scalar]' | 'blocked' | 'blocked:<config>[@S]' | 'int8x<S>[:t64|:t128]' */
function choose(entry: string): void {
  const [k, tiles] = entry.split('/');
  be.q8Tiles = tiles === 'scalar' ? 'scalar' : 'vector';
  const [gemm, cfg] = k.split(':');
  be.gemm = gemm as WebGpuGemm;
  be.int8.tileM = gemm.startsWith('int8') && cfg ? (Number(cfg.slice(1)) as 64 | 128) : undefined;
  if (gemm.startsWith('int8')) {
    be.gemmSmall = 'old';
    be.blockedConfig = undefined;
    be.blockedSplits = undefined;
    return;
  }
  // the blocked kernel also for ≤ 8 rows (the backend gives those to the decode matvec otherwise)
  be.gemmSmall = gemm === 'blocked' ? 'blocked' : 'old';
  be.gemmSmallMin = 1;
  be.blockedConfig = cfg?.split('@')[0];
  be.blockedSplits = cfg?.includes('@') ? Number(cfg.split('@')[1]) : undefined;
}

const results: Record<string, unknown>[] = [];
let failed = false;
for (const M of Ms) {
  for (const [what, K, N] of SHAPES.filter(([w]) => only.length === 0 || only.some((o) => w.includes(o)))) {
    const xs = rand(M * K, K * 31 + N), ws = rand(N * K, N * 17 + K);
    for (const weights of formats) {
      be = backends.get(weights)!;
      const x = be.fromHost(xs, [M, K]);
      const w = be.fromHost(ws, [N, K], { matrix: true });
      // the format the matrix got (f32 where its rows do not suit the packed one)
      const fmt = (w.storage as { fmt?: string }).fmt ?? 'f32';
      const flop = 2 * M * N * K;
      const bytes = N * K * (fmt === 'bf16' ? 2 : fmt === 'q8' ? 1.125 : 4) + 4 * M * K + 4 * M * N;
      let ref: Float32Array | null = null;
      for (const kernel of entriesOf(fmt)) {
        choose(kernel);
        const name = kernel === 'old' && M <= 8 ? 'decode matvec' : be.gemmKernel(M, N, fmt as WebGpuWeights, K, w.storage as never).name;
        // warm-up (compile) and the result
        const y0 = be.linear(x, w, null);
        const got = await be.read(y0);
        y0.dispose();
        let err: number;
        let against: string;
        if (kernel === 'old') {
          const rows = [0, 1, 63, 64, Math.floor(M / 2), M - 1].filter((r, i, a) => r < M && a.indexOf(r) === i);
          const want = hostRows(xs, held(ws, fmt), K, N, rows);
          const sample = new Float32Array(rows.length * N);
          rows.forEach((r, i) => sample.set(got.subarray(r * N, r * N + N), i * N));
          err = maxRelErr(sample, Float32Array.from(want));
          against = 'float64 host rows';
          ref = got;
        } else {
          err = maxRelErr(got, ref!);
          against = 'old';
        }
        const tol = tolArg ? Number(tolArg) : kernel.startsWith('sgmat') ? 1e-2 : kernel.startsWith('int8x1') ? 3e-2 : kernel.startsWith('int8x2') ? 1e-3 : 1e-4;
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
        const gbs = bytes / (ms / 1000) / 1e9;
        results.push({ shape: what, M, K, N, weights: fmt, gemm: kernel, kernel: name, us: ms * 1000, tflops, gbs, max_rel_err: err, checked_against: against, ok });
        if (!json) console.log(`${what.padEnd(30)} M=${String(M).padEnd(5)} ${fmt.padEnd(4)} ${kernel.padEnd(16)} ${name.padEnd(34)} ${(ms * 1000).toFixed(1).padStart(9)} µs  ${tflops.toFixed(2).padStart(6)} TFLOP/s  ${gbs.toFixed(0).padStart(5)} GB/s  max rel err ${err.toExponential(2)} vs ${against}${ok ? '' : `  FAIL (> ${tol})`}`);
      }
      x.dispose();
      w.dispose();
    }
  }
}
if (json) console.log(JSON.stringify({ backend: be.name, weights: formats, matrix: { on: !!be.matrixGemm, note: be.matrixNote, configs: be.rt.matrixConfigs }, int8: { mma: be.int8.mma, note: be.int8.note }, results }, null, 1));
for (const b of backends.values()) b.destroy();
if (failed) {
  log('gemm.bench: a kernel disagreed with its reference (see FAIL above)');
  process.exit(1);
}
