/**
 * The Mamba-2 SSD op alone on WebGPU (one layer's prefill: `backend.ssd`, chunked), with each SSD kernel set asked
 * for: per-kernel GPU time (timestamp queries, averaged over `--reps` calls, which evens out Dawn's 65.5 µs timestamp
 * quantum), wall time per call (`--reps` calls queued in one submit, no timestamps), and a check of every set on the
 * device: its output and returned state against the CPU reference (float64 chunked algorithm) and against 'old'.
 *
 *   node dist/bench/ssd.bench.js [--shape b,L,nh,hd,G,N] [--ssd fused,fused-v1,old] [--reps 20] [--state on|off]
 *        [--cpu on|off] [--tol 1e-4] [--json]
 *
 * Default shape 1,2048,24,64,1,128: a mamba2-130m layer at a prompt of 2048 (chunks of 64 → 32 chunks). x, B, C
 * are read from a [b·L, nh·hd + 2·G·N] tensor (the conv's output) and dt from a [b·L, 2·nh·hd + 2·G·N + nh] one
 * (in_proj's), as the model hands them over. A set whose error exceeds `--tol` (max |Δ| / max |reference|) makes
 * the exit status 1. Runs the 'tiled' (GPU) kernels, on software adapters too (use a small --shape there).
 */
import { createWebGpuBackend, type WebGpuBackend } from '../src/backend/webgpu/index.js';
import { maxRelErr } from '../src/backend/webgpu/backend.js';
import { WEBGPU_SSDS, type WebGpuSsd } from '../src/backend/webgpu/options.js';
import { cpu } from '../src/backend/cpu/index.js';
import type { SsdArgs } from '../src/backend/backend.js';
import type { Tensor } from '../src/tensor/tensor.js';
import * as ops from '../src/tensor/ops.js';
import { kernelTimes } from './kernel-times.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const shape = arg('shape', '1,2048,24,64,1,128').split(',').map(Number);
if (shape.length !== 6 || shape.some((v) => !Number.isInteger(v) || v < 1)) throw new Error(`--shape: six positive integers b,L,nh,hd,G,N, got ${arg('shape', '')}`);
const [b, L, nh, hd, G, N] = shape;
if (nh % G !== 0) throw new Error(`--shape: nh (${nh}) must be a multiple of G (${G})`);
const modes = arg('ssd', 'fused,fused-v1,old').split(',') as WebGpuSsd[];
for (const m of modes) if (!(WEBGPU_SSDS as readonly string[]).includes(m)) throw new Error(`--ssd: ${WEBGPU_SSDS.join(', ')} or a list of them (got ${JSON.stringify(m)})`);
const reps = Number(arg('reps', '20'));
if (!(Number.isInteger(reps) && reps >= 1)) throw new Error(`--reps: a positive integer, got ${arg('reps', '')}`);
const withState = arg('state', 'on') === 'on';
const withCpu = arg('cpu', 'on') === 'on';
const tol = Number(arg('tol', '1e-4'));
const json = process.argv.includes('--json');
const log = (s: string) => process.stderr.write(s + '\n');

function rand(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = (s / 2 ** 32 - 0.5) * 2 * scale;
  }
  return a;
}

const I = nh * hd, GN = G * N;
const convW = I + 2 * GN, inW = 2 * I + 2 * GN + nh;
const conv = rand(b * L * convW, 7, 0.5);
const inp = rand(b * L * inW, 11);
const A = rand(nh, 13).map((v) => -Math.exp(v));
const D = rand(nh, 17), dtb = rand(nh, 19, 0.5), state0 = rand(b * nh * hd * N, 23, 0.1);

/** the op's arguments on one backend: x, B, C split from the conv output, dt from in_proj's (pieces read in place) */
function args(be: WebGpuBackend | typeof cpu, state: Tensor | null): SsdArgs {
  const [x, B, C] = be.split(be.fromHost(conv.slice(), [b * L, convW]), [I, GN, GN]);
  const [, , dt] = be.split(be.fromHost(inp.slice(), [b * L, inW]), [I, I + 2 * GN, nh]);
  return {
    x: ops.reshape(x, [b, L, nh, hd]), B: ops.reshape(B, [b, L, G, N]), C: ops.reshape(C, [b, L, G, N]), dt: ops.reshape(dt, [b, L, nh]),
    A: be.fromHost(A.slice(), [nh]), D: be.fromHost(D.slice(), [nh]), dtBias: be.fromHost(dtb.slice(), [nh]), dtLimit: [0, Infinity],
    state, algorithm: 'chunked', chunkSize: 256,
  };
}

const be: WebGpuBackend = await createWebGpuBackend({ kernels: 'tiled', profile: true });
const profiling = be.rt.device.features.has('timestamp-query');
log(`backend ${be.name}, SSD chunk ${be.ssdChunk}, shape b ${b} L ${L} nh ${nh} hd ${hd} G ${G} N ${N} (${Math.ceil(L / be.ssdChunk)} chunks), state ${withState ? 'in/out' : 'none'}, ${reps} reps${profiling ? '' : ' (no timestamp-query: no per-kernel times)'}`);

let ref: { y: Float32Array; state: Float32Array | null } | null = null;
if (withCpu) {
  const t = performance.now();
  const st = withState ? cpu.fromHost(state0.slice(), [b, nh, hd, N]) : null;
  const y = cpu.ssd(args(cpu, st)).dataSync() as Float32Array;
  ref = { y, state: st ? (st.dataSync() as Float32Array) : null };
  log(`CPU reference: ${(performance.now() - t).toFixed(0)} ms`);
}

const results: Record<string, unknown>[] = [];
const outs: Record<string, { y: Float32Array; state: Float32Array | null }> = {};
let failed = false;
// 'old' first: the others are checked against it
for (const mode of ['old' as WebGpuSsd, ...modes.filter((m) => m !== 'old')]) {
  be.ssdKernels = mode;
  // the result (and the pipelines compiled)
  const st = withState ? be.fromHost(state0.slice(), [b, nh, hd, N]) : null;
  const a = args(be, st);
  const y = be.ssd(a);
  outs[mode] = { y: await be.read(y), state: st ? await be.read(st) : null };
  y.dispose();
  const checks: Record<string, number> = {};
  if (ref) {
    checks.y_vs_cpu = maxRelErr(outs[mode].y, ref.y);
    if (ref.state) checks.state_vs_cpu = maxRelErr(outs[mode].state!, ref.state);
  }
  if (mode !== 'old') {
    checks.y_vs_old = maxRelErr(outs[mode].y, outs.old.y);
    if (outs.old.state) checks.state_vs_old = maxRelErr(outs[mode].state!, outs.old.state);
  }
  const ok = Object.values(checks).every((e) => e <= tol);
  if (!ok) failed = true;
  // wall time: reps calls recorded into one submit (the state, if any, carried from call to call)
  const ts: number[] = [];
  for (let trial = 0; trial < 3; trial++) {
    await be.sync();
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) be.ssd(a).dispose();
    await be.sync();
    ts.push((performance.now() - t0) / reps);
  }
  const ms = Math.min(...ts);
  // per-kernel GPU time (one pass per dispatch), averaged over reps calls
  const kernels: { kernel: string; us: number }[] = [];
  if (profiling) {
    const p = await kernelTimes(be, () => {
      for (let r = 0; r < reps; r++) be.ssd(a).dispose();
    }, reps);
    for (const k of p.kernels) kernels.push({ kernel: k.kernel, us: k.ms * 1000 });
  }
  if (st) st.dispose();
  const gpuUs = kernels.reduce((s, k) => s + k.us, 0);
  results.push({ ssd: mode, wall_us: ms * 1000, gpu_us: profiling ? gpuUs : null, kernels, checks, ok });
  if (!json) {
    const ck = Object.entries(checks).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ');
    console.log(`ssd ${mode.padEnd(9)} wall ${(ms * 1000).toFixed(1).padStart(8)} µs per call${profiling ? `, GPU ${gpuUs.toFixed(1)} µs: ${kernels.map((k) => `${k.kernel} ${k.us.toFixed(1)}`).join(', ')}` : ''}; ${ck || 'no checks'}${ok ? '' : `  FAIL (> ${tol})`}`);
  }
}
if (json) console.log(JSON.stringify({ backend: be.name, shape: { b, L, nh, hd, G, N }, chunk: be.ssdChunk, reps, state: withState, results }, null, 1));
be.destroy();
if (failed) {
  log('ssd.bench: a kernel set disagreed with its reference (see FAIL above)');
  process.exit(1);
}
