/**
 * Mamba-2 prefill on the wasm backend: a layer in one op (`prefillLayer`, assembly kernels on in_proj's output in
 * place) against the op sequence (split, conv, ssd, gated norm as separate ops, each copying in and out), and the
 * SSD's products with fused multiply-adds (`ssdFma`), and x packed (q8: quantized) once per GEMM (`packXOnce`) — 'ops' (all
 * off: the code before session 30), 'layer', 'layer+fma', 'layer+fma+pack1' (the defaults) — interleaved in one process on one model (random weights, `mamba-ts bench`'s presets),
 * and where the time goes per kernel.
 *
 * Per variant: wall and CPU ms (process CPU time: all threads) per prompt token, median of --reps prefills (fresh
 * state each), the variants alternating; then one more prefill of each with every wasm kernel call timed (wall and
 * process CPU around each `run` / `runTeam`), the rest of the prefill (copies, TypeScript ops, JS) as "outside
 * kernels". Wall ≈ CPU at 2 threads marks a part that runs on one thread. The last position's logits of the two
 * variants are compared (they should be the same bits).
 *
 *   node dist/bench/wasm-m2prefill.bench.js [--model mamba2-130m] [--dtype f32|q8] [--threads 1,2] [--prompt 512] [--reps 5]
 */
import { WasmBackend } from '../src/backend/wasm/index.js';
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
const dtype = arg('dtype', 'f32') as WeightDType;
const prompt = Number(arg('prompt', '512'));
const reps = Number(arg('reps', '5'));
/** [name, prefillLayer, ssdFma, packXOnce]: 'ops' is the code before session 30, the last one the defaults */
type Variant = readonly [string, boolean, boolean, boolean];
const VARIANTS: Variant[] = [['ops', false, false, false], ['layer', true, false, false], ['layer+fma', true, true, false]];
VARIANTS.push(['layer+fma+pack1', true, true, true]);


console.log(`${modelName}, ${dtype} weights, prompt ${prompt}, load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
for (const threads of arg('threads', '1,2').split(',').map(Number)) {
  const be = new WasmBackend({ threads, weights: dtype });
  await be.runtime.ready();
  const lm = buildModel(PRESETS[modelName], modelName, new RandomTensorSource(1), { backend: be });
  const ids = Array.from({ length: prompt }, (_, i) => (i * 31 + 7) % 1000);
  const prefill = async ([, on, fma, pack1]: Variant): Promise<{ wall: number; cpu: number; logits: Float32Array }> => {
    be.prefillLayer = on;
    be.ssdFma = fma;
    be.packXOnce = pack1;
    const s = lm.createState(1);
    const c0 = cpuMs(), t0 = performance.now();
    const l = await lm.advance([ids], s);
    return { wall: performance.now() - t0, cpu: cpuMs() - c0, logits: l.data.slice() };
  };
  for (const v of VARIANTS) await prefill(v); // (warm-up: compiled code, memory grown)
  const wall: Record<string, number[]> = {}, cpu: Record<string, number[]> = {};
  for (const [name] of VARIANTS) {
    wall[name] = [];
    cpu[name] = [];
  }
  const last: Record<string, Float32Array> = {};
  for (let r = 0; r < reps; r++) {
    for (const v of r % 2 ? [...VARIANTS].reverse() : VARIANTS) {
      const name = v[0];
      const p = await prefill(v);
      wall[name].push(p.wall / prompt);
      cpu[name].push(p.cpu / prompt);
      last[name] = p.logits;
    }
  }
  const diff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
  console.log(`\n${threads} thread(s): ms per token, median of ${reps} (load ${loadavg()[0].toFixed(2)}); last logits max |Δ|: ops vs layer ${diff(last.ops, last.layer)}, layer vs layer+fma ${diff(last.layer, last['layer+fma'])}${last['layer+fma+pack1'] ? `, layer+fma vs layer+fma+pack1 ${diff(last['layer+fma'], last['layer+fma+pack1'])}` : ''}`);
  console.log('| variant | wall | CPU | CPU ÷ wall |');
  console.log('|---|---:|---:|---:|');
  for (const [name] of VARIANTS) {
    const w = median(wall[name]), c = median(cpu[name]);
    console.log(`| ${name} | ${w.toFixed(3)} | ${c.toFixed(3)} | ${(c / w).toFixed(2)} |`);
  }
  for (const [name] of VARIANTS.slice(1)) {
    console.log(`${name} against ops: wall ${(median(wall.ops) / median(wall[name])).toFixed(3)}× faster, CPU ${(median(cpu.ops) / median(cpu[name])).toFixed(3)}× less`);
  }

  // per kernel: one prefill of each variant with every kernel call timed
  const rt = be.runtime;
  for (const v of VARIANTS) {
    const name = v[0];
    const { result: p, kernels: k } = await wasmKernelTimes(rt, () => prefill(v));
    const rows = [...k].sort((a, b) => b[1].wall - a[1].wall);
    const kw = rows.reduce((s, [, v]) => s + v.wall, 0), kc = rows.reduce((s, [, v]) => s + v.cpu, 0);
    console.log(`\n${name}, ${threads} thread(s), per kernel (ms per token; wall ${(p.wall / prompt).toFixed(3)}, CPU ${(p.cpu / prompt).toFixed(3)})`);
    console.log('| kernel | calls | wall | CPU | CPU ÷ wall |');
    console.log('|---|---:|---:|---:|---:|');
    for (const [kernel, v] of rows) console.log(`| ${kernel} | ${v.calls} | ${(v.wall / prompt).toFixed(3)} | ${(v.cpu / prompt).toFixed(3)} | ${(v.cpu / v.wall).toFixed(2)} |`);
    console.log(`| outside kernels | | ${((p.wall - kw) / prompt).toFixed(3)} | ${((p.cpu - kc) / prompt).toFixed(3)} | |`);
  }
  await be.runtime.close();
}
