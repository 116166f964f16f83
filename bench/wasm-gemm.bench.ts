/**
 * The wasm backend's prefill GEMMs (y = x·Wᵀ, x [M, K], W [N, K]) at mamba2-130m's shapes, old kernels against the
 * blocked one (assembly/gemm.ts), interleaved in one process at 1 and 2 threads: GFLOP/s by wall time (min of --reps)
 * and by CPU time of the process (on a shared machine, the wall time also counts other processes' time slices), and
 * the fraction of the measured arithmetic peak per CPU-second of one thread: peak_madd (12 independent f32x4 chains)
 * of the plain build (a multiply then an add: plain wasm SIMD has no FMA) for the old kernels, of the relaxed-SIMD
 * build the runtime loads where it can (fused multiply-adds) for the new one.
 *
 *   f32: old = linear_f32 (2×4 dot-product tiles, split over N by the runtime); new = gemm_blocked fmt 0.
 *   bf16: old = linear_panels (32-row panels unpacked to f32, then linear_f32); new = gemm_blocked fmt 1.
 *   q8:  old = quantize_rows_q8 + linear_q8 (13-bit activations, integer block dot products);
 *        new = gemm_blocked fmt 3 (the q8 weights unpacked exactly while packing, f32 products).
 *
 * q8 also runs the integer GEMM (assembly/gemm_q8.ts) in the same interleaved loop, one column per --q8-gemm variant
 * (default int13,int8,int7: x quantized to 13 / 8 bits with i16 dot products, to 7 bits with the relaxed i8 dot where
 * the backend would use it — runtime.relaxedDot, not Node 20 — else with the i16 kernel, the same bits), with
 * their error against float64 (activation rounding: ≤ 1e-3 / 2e-2 / 4e-2 of max |y|) and the i32 dot-product probes
 * (peak_dot16: 12 chains of dot_i16x8_s + add; peak_dot8: relaxed_dot_i8x16_i7x16_add_s; ops = 2 per multiply-add).
 *
 * Every result is checked against a float64 product on a sample of rows (f32 and q8-new: max |Δ| / max |y| ≤ 1e-5;
 * q8-old within its activation quantization, ≤ 1e-3) and new f32 against old (≤ 1e-5); a failure exits with status 1.
 * Also prints the clock estimated from a dependent chain of f32x4 adds (× --add-latency cycles: 3 on Zen 2 and Zen 4,
 * 2 on Zen 5 — pass --add-latency 2 there, else the clock and the per-cycle figures come out 1.5× off).
 *
 * With --models, whole models (random weights, `mamba-ts bench`'s presets) on the backend: prefill of --prompt tokens
 * with gemm 'tiles' and 'blocked' alternating on one model (one WasmBackend, the same weights), min and median wall ms
 * and CPU ms (all threads) of each, and the last position's logits compared (max |Δ| / max |logit|: ≤ 1e-4 for f32;
 * q8 'tiles' quantizes the activations, 'blocked' does not: ≤ 0.05 there, and printed); for q8 also 'blocked' with each
 * --q8-gemm variant (backend.q8Gemm; 'blocked' alone is q8Gemm 'f32'), all in the same rotation.
 *
 *   node dist/bench/wasm-gemm.bench.js [--m 512] [--threads 1,2] [--reps 5] [--formats f32,bf16,q8] [--shapes in_proj,out_proj,lm_head]
 *   node dist/bench/wasm-gemm.bench.js --models mamba2-130m[,mamba-130m] [--prompt 512] [--threads 2] [--reps 5] [--formats f32,bf16,q8]
 *   … [--q8-gemm int13,int8,int7]
 */
import { WasmRuntime } from '../src/backend/wasm/runtime.js';
import { WasmBackend, type WasmGemm, type WasmQ8Gemm } from '../src/backend/wasm/index.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';
import { bf16ToF32, f32ToBf16, type WeightDType } from '../src/tensor/dtype.js';
import { cpuMs, median } from './report.js';
import { packQ8, unpackQ8 } from '../src/backend/wasm/q8.js';
import { randomArray } from '../test/helpers.js';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { loadLine, machineInfo, machineLine } from './report.js';
import { arg, intListArg, listArg } from './options.js';

const M = Number(arg('m', '512'));
const threadList = intListArg('threads', '1,2');
const reps = Number(arg('reps', '5'));
const formats = listArg('formats', 'f32,q8', ['f32', 'bf16', 'q8'] as const);
const addLatency = Number(arg('add-latency', '3'));
const q8Variants = listArg('q8-gemm', 'int13,int8,int7', ['int13', 'int8', 'int7'] as const);
/** gemm_q8's [mode, qmax] per variant (as the backend passes them) and the bound of its error against float64 */
const Q8_INT: Record<Exclude<WasmQ8Gemm, 'f32'>, [number, number, number]> = { int13: [0, 4095, 1e-3], int8: [0, 127, 2e-2], int7: [1, 63, 4e-2] };

/** mamba2-130m: d_model 768, d_inner 1536, in_proj 2·1536 + 2·128 + 24 = 3352, vocab 50288 */
const SHAPES: Array<[string, number, number]> = [
  ['in_proj', 768, 3352],
  ['out_proj', 1536, 768],
  ['lm_head', 768, 50288],
];
const wantShapes = listArg('shapes', 'in_proj,out_proj,lm_head', SHAPES.map((s) => s[0]));

let failed = false;
const log = (s: string) => process.stdout.write(s + '\n');


type Probe = (iters: number, out: number) => void;

/** CPU ms of the fastest of 7 calls of probe(iters, out) */
function bestCpuMs(probe: Probe, iters: number, out: number): number {
  let best = Infinity;
  for (let r = 0; r < 7; r++) {
    const c0 = cpuMs();
    probe(iters, out);
    best = Math.min(best, cpuMs() - c0);
  }
  return best;
}

/**
 * The arithmetic probes on the calling thread, timed by CPU time: GFLOP/s of peak_madd in the runtime's kernels
 * (fused multiply-adds where they are the relaxed build) and in the plain build (kernels.wasm, instantiated here on a
 * memory of its own: a multiply then an add), and the clock the add chain implies
 */
function probes(rt: WasmRuntime): { peak: number; fma: number; ghz: number; dot16: number; dot16only: number; dot8: number } {
  const iters = 2_000_000;
  const memory = new WebAssembly.Memory({ initial: 2, maximum: 65536, shared: true });
  const plain = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(new URL('../wasm/kernels.wasm', import.meta.url))),
    { env: { memory, abort() {} } }).exports as Record<string, Probe>;
  const out = rt.heap.alloc(64);
  const gflops = (ms: number) => (96 * iters) / (ms * 1e6);
  const peak = gflops(bestCpuMs(plain.peak_madd, iters, 0));
  const fma = gflops(bestCpuMs(rt.kernels.peak_madd as Probe, iters, out));
  const ghz = (8 * iters * addLatency) / (bestCpuMs(rt.kernels.add_chain as Probe, iters, out) * 1e6);
  // integer dot products, 2 ops per multiply-add: 12 chains of 8 (dot_i16x8_s) or 16 (relaxed i8) per iteration
  const dot16 = (192 * iters) / (bestCpuMs(rt.kernels.peak_dot16 as Probe, iters, out) * 1e6);
  const dot16only = (192 * iters) / (bestCpuMs(rt.kernels.peak_dot16_only as Probe, iters, out) * 1e6);
  const dot8 = rt.fused ? (384 * iters) / (bestCpuMs(rt.kernels.peak_dot8 as Probe, iters, out) * 1e6) : 0;
  rt.heap.release(out);
  return { peak, fma, ghz, dot16, dot16only, dot8 };
}

/** float64 y rows `rows` of x · Wᵀ (W given as f32 values) */
function refRows(x: Float32Array, w: Float32Array, K: number, N: number, rows: number[]): Float64Array {
  const out = new Float64Array(rows.length * N);
  rows.forEach((i, r) => {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[i * K + k] * w[j * K + k];
      out[r * N + j] = s;
    }
  });
  return out;
}

function errVs(y: Float32Array, want: Float64Array, N: number, rows: number[]): number {
  let m = 0, mx = 0;
  rows.forEach((i, r) => {
    for (let j = 0; j < N; j++) {
      m = Math.max(m, Math.abs(y[i * N + j] - want[r * N + j]));
      mx = Math.max(mx, Math.abs(want[r * N + j]));
    }
  });
  return m / mx;
}

const info = machineInfo();
const models = listArg('models', '');
if (models.length) {
  await modelsBench(models);
  process.exit(failed ? 1 : 0);
}
log(`# wasm GEMM, M = ${M}, min of ${reps} reps, ${machineLine(info)}`);
log(`# load average at start: ${loadLine(os.loadavg())}`);

interface Row { shape: string; fmt: string; T: number; old: number; neu: number; peakOld: number; peak: number; cOld: number; cNew: number }
const results: Row[] = [];
interface IntRow { shape: string; T: number; variant: string; wall: number; cpu: number; cpuF32: number; cpuTiles: number; err: number; peak: number }
const intRows: IntRow[] = [];
/** the dot_i16x8_s probe of the current thread count (Gop/s per CPU-second) */
let dotPeak = 0;
for (const T of threadList) {
  const rt = WasmRuntime.get(T);
  await rt.ready();
  const { peak: mulAdd, fma, ghz, dot16, dot16only, dot8 } = probes(rt);
  // the ceiling the new kernel can reach: fused multiply-adds where the kernels have them
  const peak = rt.fused ? fma : mulAdd;
  log(`threads ${rt.threads}, ${rt.fused ? 'relaxed-SIMD kernels (fused multiply-add in the new GEMM)' : 'plain SIMD kernels (no FMA)'}: wasm SIMD per CPU-second: multiply+add ${mulAdd.toFixed(1)} GFLOP/s (${(mulAdd / ghz).toFixed(1)} flops/cycle), ` +
    `${rt.fused ? `fused multiply-add ${fma.toFixed(1)} GFLOP/s (${(fma / ghz).toFixed(1)} flops/cycle)` : 'no FMA'}, ` +
    `i32x4.dot_i16x8_s + add ${dot16.toFixed(1)} Gop/s (${(dot16 / ghz).toFixed(1)} ops/cycle), the dot alone ${dot16only.toFixed(1)} Gop/s (${(dot16only / ghz).toFixed(1)} ops/cycle)` +
    `${rt.fused ? `, relaxed_dot_i8x16_i7x16_add_s ${dot8.toFixed(1)} Gop/s (${(dot8 / ghz).toFixed(1)} ops/cycle)` : ''}, at the ~${ghz.toFixed(2)} GHz the add chain shows`);
  dotPeak = dot16;
  if (rt.fused && !rt.relaxedDot) log(`  (int7 runs the i16 kernel: relaxed SIMD is behind a flag in V8 ${process.versions.v8}, whose Liftoff miscompiles the relaxed dot)`);
  const scratchPer = rt.kernels.gemm_scratch_bytes as unknown as () => number;
  const q8ScratchPer = rt.kernels.gemm_q8_scratch_bytes as unknown as () => number;
  for (const [name, K, N] of SHAPES) {
    if (!wantShapes.includes(name)) continue;
    const x = randomArray(M * K, 1), wf = randomArray(N * K, 2, 0.05);
    const sample = [0, 1, 3, Math.floor(M / 2), M - 1].filter((i, k, a) => i < M && a.indexOf(i) === k);
    const heap = rt.heap;
    const xo = heap.alloc(M * K * 4), yo = heap.alloc(M * N * 4), yn = heap.alloc(M * N * 4);
    rt.f32(xo, M * K).set(x);
    const scratch = heap.alloc(rt.threads * Math.max(scratchPer(), q8ScratchPer()));
    const yi = heap.alloc(M * N * 4);
    const flops = 2 * M * K * N;
    for (const fmt of formats) {
      let wo = 0, so = 0, xq = 0;
      let wvals: Float32Array;
      const freeList: number[] = [];
      if (fmt === 'f32') {
        wo = heap.alloc(N * K * 4);
        rt.f32(wo, N * K).set(wf);
        wvals = wf;
        freeList.push(wo);
      } else if (fmt === 'bf16') {
        wo = heap.alloc(N * K * 2);
        const u16 = new Uint16Array(rt.memory.buffer, wo, N * K);
        wvals = new Float32Array(N * K);
        for (let i = 0; i < N * K; i++) {
          u16[i] = f32ToBf16(wf[i]);
          wvals[i] = bf16ToF32(u16[i]);
        }
        xq = heap.alloc(rt.threads * 32 * K * 4); // linear_panels' unpacked panels
        freeList.push(wo, xq);
      } else {
        // q8 as the backend packs it
        wo = heap.alloc(N * K);
        so = heap.alloc((N * K) / 8);
        const qs = new Int8Array(rt.memory.buffer, wo, N * K), sc = rt.f32(so, (N * K) / 32);
        packQ8(wf, qs, sc);
        wvals = unpackQ8(qs, sc);
        xq = heap.alloc((M * K) * 2 + (M * K) / 8);
        freeList.push(wo, so, xq);
      }
      const xs = xq + M * K * 2;
      const runOld = () => {
        if (fmt === 'f32') rt.run('linear_f32', [xo, wo, 0, yo, M, K, N], N, 4, M * K * N);
        else if (fmt === 'bf16') rt.runTeam('linear_panels', [xo, wo, 0, 1, 0, yo, M, K, N, xq]);
        else {
          rt.run('quantize_rows_q8', [xo, xq, xs, M, K], M, 1, M * K);
          rt.run('linear_q8', [xq, xs, wo, so, 0, yo, M, K, N], N, 4, M * K * N);
        }
      };
      const runNew = () => rt.runTeam('gemm_blocked', [xo, wo, so, { f32: 0, bf16: 1, q8: 3 }[fmt] ?? 0, 0, yn, M, K, N, scratch]);
      const tOld: number[] = [], tNew: number[] = [], cOld: number[] = [], cNew: number[] = [];
      // q8: the integer GEMM's variants in the same rotation (each into yi, checked right after its own run)
      const ints = fmt === 'q8' ? q8Variants : [];
      const tInt: number[][] = ints.map(() => []), cInt: number[][] = ints.map(() => []), eInt: number[] = ints.map(() => 0);
      const want = refRows(x, wvals, K, N, sample);
      // (int7's relaxed i8 dot only where the backend would run it: runtime.relaxedDot; else the i16 kernel, same bits)
      const runInt = (v: number) => rt.runTeam('gemm_q8', [rt.relaxedDot ? Q8_INT[ints[v]][0] : 0, Q8_INT[ints[v]][1], xo, wo, so, 0, yi, M, K, N, scratch]);
      const r = name === 'lm_head' ? Math.max(1, Math.ceil(reps / 2)) : reps;
      runOld(); runNew(); // warm-up
      ints.forEach((_, v) => runInt(v));
      for (let i = 0; i < r; i++) {
        let c0 = cpuMs(), t0 = performance.now(); runOld(); tOld.push(performance.now() - t0); cOld.push(cpuMs() - c0);
        c0 = cpuMs(); t0 = performance.now(); runNew(); tNew.push(performance.now() - t0); cNew.push(cpuMs() - c0);
        for (let v = 0; v < ints.length; v++) {
          c0 = cpuMs(); t0 = performance.now(); runInt(v); tInt[v].push(performance.now() - t0); cInt[v].push(cpuMs() - c0);
          if (i === 0) eInt[v] = errVs(rt.f32(yi, M * N), want, N, sample);
        }
      }
      const yOld = rt.f32(yo, M * N), yNew = rt.f32(yn, M * N);
      const eOld = errVs(yOld, want, N, sample), eNew = errVs(yNew, want, N, sample);
      let eCross = 0;
      if (fmt !== 'q8') {
        let mx = 0;
        for (let i = 0; i < M * N; i++) { eCross = Math.max(eCross, Math.abs(yOld[i] - yNew[i])); mx = Math.max(mx, Math.abs(yOld[i])); }
        eCross /= mx;
      }
      const okOld = eOld <= (fmt !== 'q8' ? 1e-5 : 1e-3), okNew = eNew <= 1e-5 && eCross <= 1e-5;
      if (!okOld || !okNew) failed = true;
      const gOld = flops / (Math.min(...tOld) * 1e6), gNew = flops / (Math.min(...tNew) * 1e6);
      // CPU time of the whole process (all threads, spinning included) per call: on a shared machine the wall time
      // counts the time slices other processes took; the CPU time does not (it still counts their cache pollution)
      const cgOld = flops / (Math.min(...cOld) * 1e6), cgNew = flops / (Math.min(...cNew) * 1e6);
      results.push({ shape: `${name} ${K}→${N}`, fmt, T: rt.threads, old: gOld, neu: gNew, peakOld: mulAdd, peak, cOld: cgOld, cNew: cgNew });
      log(`  ${fmt} ${name} ${K}→${N} T=${rt.threads}: old ${gOld.toFixed(1)} GFLOP/s (${(Math.min(...tOld)).toFixed(2)} ms), ` +
        `new ${gNew.toFixed(1)} GFLOP/s (${(Math.min(...tNew)).toFixed(2)} ms), ×${(gNew / gOld).toFixed(2)}; ` +
        `per CPU-second old ${cgOld.toFixed(1)} new ${cgNew.toFixed(1)} (×${(cgNew / cgOld).toFixed(2)}); ` +
        `of the thread's peak per CPU-second ${((100 * cgOld) / mulAdd).toFixed(0)}% (of multiply+add) → ${((100 * cgNew) / peak).toFixed(0)}%; ` +
        `err vs f64 old ${eOld.toExponential(1)} new ${eNew.toExponential(1)}${fmt !== 'q8' ? ` new-vs-old ${eCross.toExponential(1)}` : ''}` +
        `${okOld && okNew ? '' : '  ** CHECK FAILED **'}`);
      ints.forEach((g, v) => {
        const ok = eInt[v] <= Q8_INT[g][2];
        if (!ok) failed = true;
        const gw = flops / (Math.min(...tInt[v]) * 1e6), gc = flops / (Math.min(...cInt[v]) * 1e6);
        intRows.push({ shape: `${name} ${K}→${N}`, T: rt.threads, variant: g, wall: gw, cpu: gc, cpuF32: cgNew, cpuTiles: cgOld, err: eInt[v], peak: dotPeak });
        log(`  q8 ${g} ${name} ${K}→${N} T=${rt.threads}: ${gw.toFixed(1)} GFLOP/s (${Math.min(...tInt[v]).toFixed(2)} ms), per CPU-second ${gc.toFixed(1)} ` +
          `(×${(gc / cgNew).toFixed(2)} the f32 blocked GEMM, ×${(gc / cgOld).toFixed(2)} the tiles), err vs f64 ${eInt[v].toExponential(1)}${ok ? '' : '  ** CHECK FAILED **'}`);
      });
      for (const o of freeList) heap.release(o);
    }
    for (const o of [xo, yo, yn, yi, scratch]) heap.release(o);
  }
}

log('');
log('| shape (M = ' + M + ') | weights | threads | old GFLOP/s | new GFLOP/s | new/old | GFLOP per CPU-s old / new | old % of mul+add peak | new % of its peak |');
log('|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  log(`| ${r.shape} | ${r.fmt} | ${r.T} | ${r.old.toFixed(1)} | ${r.neu.toFixed(1)} | ${(r.neu / r.old).toFixed(2)} | ${r.cOld.toFixed(1)} / ${r.cNew.toFixed(1)} | ${((100 * r.cOld) / r.peakOld).toFixed(0)}% | ${((100 * r.cNew) / r.peak).toFixed(0)}% |`);
}
if (intRows.length) {
  log('');
  log('| shape (M = ' + M + ') | threads | q8 GEMM | GFLOP/s (wall) | GFLOP per CPU-s | ÷ f32 blocked (per CPU-s) | ÷ tiles (per CPU-s) | % of the dot_i16x8_s probe | max |Δ| / max |y| vs f64 |');
  log('|---|---|---|---|---|---|---|---|---|');
  for (const r of intRows) {
    log(`| ${r.shape} | ${r.T} | ${r.variant} | ${r.wall.toFixed(1)} | ${r.cpu.toFixed(1)} | ${(r.cpu / r.cpuF32).toFixed(2)}× | ${(r.cpu / r.cpuTiles).toFixed(2)}× | ${((100 * r.cpu) / r.peak).toFixed(0)}% | ${r.err.toExponential(1)} |`);
  }
}
log(`# load average at end: ${loadLine(os.loadavg())}`);
for (const T of threadList) await WasmRuntime.get(T).close();
process.exit(failed ? 1 : 0);

async function modelsBench(names: string[]): Promise<void> {
  const prompt = Number(arg('prompt', '512'));
  const T = Number(threadList[threadList.length - 1]);
  log(`# wasm prefill ${prompt} tokens, gemm 'tiles' vs 'blocked' (q8: and each q8Gemm) alternating, ${reps} reps after a warm-up, ${machineLine(info)}`);
  log(`# load average at start: ${loadLine(os.loadavg())}`);
  const rows: string[] = [];
  for (const fmt of formats) {
    const wasm = new WasmBackend({ threads: T, weights: fmt as WeightDType });
    log(`# ${wasm.name}; kernels: ${wasm.runtime.fused ? 'relaxed SIMD (FMA)' : 'plain SIMD (blocked falls back to tiles)'}`);
    // [label, gemm, q8Gemm]: 'blocked' is the f32 GEMM (q8: the weights unpacked, x kept f32)
    const kinds: Array<[string, WasmGemm, WasmQ8Gemm]> = [['tiles', 'tiles', 'f32'], ['blocked', 'blocked', 'f32'],
      ...(fmt === 'q8' ? q8Variants.map((g): [string, WasmGemm, WasmQ8Gemm] => [`blocked ${g}`, 'blocked', g]) : [])];
    for (const name of names) {
      const lm = buildModel(PRESETS[name], name, new RandomTensorSource(1), { backend: wasm });
      const ids = Array.from({ length: prompt }, (_, i) => (i * 7919 + 13) % lm.vocabSize);
      const wall: number[][] = kinds.map(() => []), cpu: number[][] = kinds.map(() => []);
      const logits: Float32Array[] = [];
      for (let r = 0; r <= reps; r++) {
        for (const [k, [, g, q]] of kinds.entries()) {
          wasm.gemm = g;
          wasm.q8Gemm = q;
          const s = lm.createState(1);
          const c0 = cpuMs(), t0 = performance.now();
          const l = await lm.advance([ids], s);
          if (r > 0) {
            wall[k].push(performance.now() - t0);
            cpu[k].push(cpuMs() - c0);
          }
          logits[k] = l.data.slice();
        }
      }
      const tok = (ms: number) => (prompt / (ms / 1000)).toFixed(0);
      // last logits against the f32 'blocked' GEMM's (max |Δ| / max |logit|): ≤ 1e-4 for f32 weights; q8 ≤ 0.05 (tiles,
      // int13: 13-bit activations), ≤ 0.15 / 0.3 for int8 / int7 (8- and 7-bit activations: printed, for the record)
      const base = logits[1];
      const mx = base.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      for (const [k, [label]] of kinds.entries()) {
        let d = 0;
        for (let i = 0; i < base.length; i++) d = Math.max(d, Math.abs(logits[k][i] - base[i]));
        const rel = d / mx, tol = fmt !== 'q8' ? 1e-4 : label.endsWith('int8') ? 0.15 : label.endsWith('int7') ? 0.3 : 0.05;
        if (!(rel <= tol)) failed = true;
        const row = `| ${name} | ${fmt} | ${T} | ${label} | ${tok(median(wall[k]))} / ${tok(Math.min(...wall[k]))} | ${median(cpu[k]).toFixed(0)} | ` +
          `${(median(cpu[1]) / median(cpu[k])).toFixed(2)}× | ${(median(wall[1]) / median(wall[k])).toFixed(2)}× | ${rel.toExponential(1)}${rel <= tol ? '' : ' MISMATCH'} |`;
        rows.push(row);
        log(row);
      }
    }
  }
  log('');
  log(`| model | weights | threads | GEMM | prefill tok/s (median / best) | CPU ms per prefill (median, all threads) | speed-up over 'blocked', CPU | speed-up, wall medians | last logits max |Δ| / max |logit| vs 'blocked' |`);
  log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) log(r);
  log(`# load average at end: ${loadLine(os.loadavg())}`);
}
