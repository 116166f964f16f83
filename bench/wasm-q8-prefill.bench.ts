/**
 * q8 prefill on the wasm backend, where the CPU time goes (issue 18, session 31): one model with q8 weights and the
 * same model with f32 weights (the same random weights) in one process; per prompt token, CPU ms (process CPU time:
 * all threads) and wall ms per part — each GEMM by its shape (in_proj, out_proj, lm_head), the quantization of x
 * (`gemm_q8_pack_x`), conv, Δ, SSD, gated norm, pre-norm, and the rest outside the kernels (copies, JS) — and, at
 * 2 threads, how long the calling thread waited for the worker after finishing its own share of each call
 * (imbalance plus the worker's wake-up). Then interleaved A/B of the q8 GEMM kernels (`--kernels`, q8GemmKernel), or
 * of prefillResidual (`--residual 0,1`: the pre-norm and residual add in the Mamba-2 layer op) on --dtype weights,
 * median of --reps prefills (fresh state each), the last logits compared (the kernels give the same bits).
 *
 *   node dist/bench/wasm-q8-prefill.bench.js [--model mamba2-130m] [--threads 1,2] [--prompt 512] [--reps 5]
 *     [--kernels v1,v2 | --residual 0,1 | --variants v1:0,v2:1] [--dtype q8|f32 (of the A/B)] [--profile 1|0] [--f32 1|0]
 */
import { WasmBackend, type WasmQ8GemmKernel } from '../src/backend/wasm/index.js';
import type { WeightDType } from '../src/tensor/dtype.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';
import { cpuMs, median } from './report.js';
import { wasmKernelTimes } from './kernel-times.js';
import { loadavg } from 'node:os';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
};
const modelName = arg('model', 'mamba2-130m');
const prompt = Number(arg('prompt', '512'));
const reps = Number(arg('reps', '5'));
/** the A/B: q8GemmKernel values (default), or with --residual 0,1 prefillResidual off / on (--dtype: the weights of that A/B) */
const residualAB = process.argv.includes('--residual');
// --variants v1:0,v2:1: q8GemmKernel and prefillResidual together (session 31's before and after)
const combined = process.argv.includes('--variants');
const kernels = (combined ? arg('variants', 'v1:0,v2:1').split(',') : residualAB ? arg('residual', '0,1').split(',').map((v) => `residual=${v}`) : arg('kernels', 'v1,v2').split(',')) as string[];
const abDtype = arg('dtype', 'q8') as WeightDType;
const doProfile = arg('profile', '1') === '1';
const doF32 = arg('f32', '1') === '1';

const load = (): string => loadavg().map((v) => v.toFixed(2)).join(' ');

console.log(`${modelName}, prompt ${prompt}, load average ${load()}`);
for (const threads of arg('threads', '1,2').split(',').map(Number)) {
  const make = (dtype: WeightDType) => {
    const be = new WasmBackend({ threads, weights: dtype });
    const lm = buildModel(PRESETS[modelName], modelName, new RandomTensorSource(1), { backend: be });
    return { be, lm };
  };
  const q8 = make('q8');
  await q8.be.runtime.ready();
  const f32 = doF32 ? make('f32') : null;
  const ids = Array.from({ length: prompt }, (_, i) => (i * 31 + 7) % 1000);
  const prefill = async (m: ReturnType<typeof make>): Promise<{ wall: number; cpu: number; logits: Float32Array }> => {
    const s = m.lm.createState(1);
    const c0 = cpuMs(), t0 = performance.now();
    const l = await m.lm.advance([ids], s);
    return { wall: performance.now() - t0, cpu: cpuMs() - c0, logits: l.data.slice() };
  };

  if (doProfile) {
    const label = (kernel: string, args: number[]): string => {
      // the GEMMs by shape: K (args) and N
      const shape = (K: number, N: number): string => `${kernel} ${K}→${N}`;
      if (kernel === 'gemm_q8_prepacked' || kernel === 'gemm_q8') return shape(args[8], args[9]);
      if (kernel === 'gemm_blocked_prepacked' || kernel === 'gemm_blocked') return shape(args[7], args[8]);
      if (kernel === 'gemm_q8_pack_x') return `${kernel} K ${args[4]}`;
      if (kernel === 'gemm_pack_x') return `${kernel} K ${args[2]}`;
      return kernel;
    };
    for (const [name, m] of [['q8', q8], ...(f32 ? [['f32', f32]] : [])] as [string, ReturnType<typeof make>][]) {
      await prefill(m); // warm-up
      const { result: ps, kernels: k } = await wasmKernelTimes(m.be.runtime, async () => {
        const ps: { wall: number; cpu: number }[] = [];
        for (let r = 0; r < 3; r++) ps.push(await prefill(m));
        return ps;
      }, label);
      const p = { wall: ps.reduce((s, v) => s + v.wall, 0), cpu: ps.reduce((s, v) => s + v.cpu, 0) };
      const n = 3 * prompt;
      const rows = [...k].sort((a, b) => b[1].cpu - a[1].cpu);
      const kw = rows.reduce((s, [, v]) => s + v.wall, 0), kc = rows.reduce((s, [, v]) => s + v.cpu, 0);
      console.log(`\n${name} weights, ${threads} thread(s), 3 prefills, per kernel (ms per token; wall ${(p.wall / n).toFixed(3)}, CPU ${(p.cpu / n).toFixed(3)}; load ${load()})`);
      console.log('| kernel | calls/prefill | wall | CPU | CPU ÷ wall | caller waited for the worker |');
      console.log('|---|---:|---:|---:|---:|---:|');
      for (const [kernel, v] of rows) {
        console.log(`| ${kernel} | ${v.calls / 3} | ${(v.wall / n).toFixed(3)} | ${(v.cpu / n).toFixed(3)} | ${(v.cpu / v.wall).toFixed(2)} | ${(v.wait / n).toFixed(3)} |`);
      }
      console.log(`| outside kernels | | ${((p.wall - kw) / n).toFixed(3)} | ${((p.cpu - kc) / n).toFixed(3)} | | |`);
    }
  }

  // interleaved A/B of the q8 GEMM kernels (or prefillResidual)
  const ab = abDtype === 'q8' ? q8 : f32 ?? make(abDtype);
  const apply = (v: string): void => {
    if (combined) {
      const [k, r] = v.split(':');
      ab.be.q8GemmKernel = k as WasmQ8GemmKernel;
      ab.be.prefillResidual = r === '1';
    } else if (residualAB) ab.be.prefillResidual = v === 'residual=1';
    else ab.be.q8GemmKernel = v as WasmQ8GemmKernel;
  };
  await prefill(ab);
  const wall: Record<string, number[]> = {}, cpu: Record<string, number[]> = {}, last: Record<string, Float32Array> = {};
  for (const v of kernels) {
    wall[v] = [];
    cpu[v] = [];
  }
  for (let r = 0; r < reps; r++) {
    for (const v of r % 2 ? [...kernels].reverse() : kernels) {
      apply(v);
      const p = await prefill(ab);
      wall[v].push(p.wall / prompt);
      cpu[v].push(p.cpu / prompt);
      last[v] = p.logits;
    }
  }
  apply(kernels[kernels.length - 1]);
  const diff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
  console.log(`\n${abDtype} weights, ${combined ? 'q8GemmKernel:prefillResidual' : residualAB ? 'prefillResidual' : 'q8 GEMM kernels'}, ${threads} thread(s), ms per token, median of ${reps} (load ${load()}); last logits max |Δ| vs ${kernels[0]}: ${kernels.slice(1).map((v) => `${v} ${diff(last[kernels[0]], last[v])}`).join(', ')}`);
  console.log('| kernel | wall | CPU | tok/s (wall) | CPU ÷ wall |');
  console.log('|---|---:|---:|---:|---:|');
  for (const v of kernels) {
    const w = median(wall[v]), c = median(cpu[v]);
    console.log(`| ${v} | ${w.toFixed(3)} | ${c.toFixed(3)} | ${(1000 / w).toFixed(1)} | ${(c / w).toFixed(2)} |`);
  }
  await q8.be.runtime.close();
}
