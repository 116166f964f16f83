/**
 * llama / hybrid prefill on the wasm backend (issue 18, session 31): an attention layer's half as one op
 * (`attnPrefill`: q/k/v on x packed once, RoPE and the KV cache write in wasm, attention, o_proj with the activations
 * kept in wasm memory), a gated MLP as one op (`mlpPrefill`: gate/up on x packed once, SwiGLU in place, down) and the
 * attention tiles (`attnTiles`) — 'ops' (both off, 'dot' tiles: the code before session 31), 'fused' (the two ops,
 * 'dot' tiles: the same bits as 'ops'), 'fused+fma' ('fma' tiles), 'fused+scoresT' (the defaults: scores transposed,
 * PV accumulated on FMA tiles) — interleaved in one process on one model
 * (random weights, `mamba-ts bench`'s presets), and where the time goes per kernel.
 *
 * Per variant: wall and CPU ms (process CPU time: all threads) per prompt token and tok/s (wall), median of --reps
 * prefills (fresh state each), the variants alternating; then one more prefill of each with every wasm kernel call
 * timed (wall and process CPU around each `run` / `runTeam`), the rest (copies, TypeScript ops, JS) as "outside
 * kernels". The last position's logits of the variants are compared ('ops' and 'fused': the same bits).
 *
 *   node dist/bench/wasm-llamaprefill.bench.js [--models llama-130m,hybrid-130m] [--dtypes f32,q8] [--threads 1,2] [--prompt 512] [--reps 5] [--kernels]
 */
import { WasmBackend, type AttnTiles } from '../src/backend/wasm/index.js';
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
const models = arg('models', 'llama-130m').split(',');
const dtypes = arg('dtypes', 'f32,q8').split(',') as WeightDType[];
const prompt = Number(arg('prompt', '512'));
const reps = Number(arg('reps', '5'));
const kernels = process.argv.includes('--kernels');
/** [name, attnPrefill, mlpPrefill, attnTiles] */
type Variant = readonly [string, boolean, boolean, AttnTiles];
const VARIANTS: Variant[] = [['ops', false, false, 'dot'], ['fused', true, true, 'dot'], ['fused+fma', true, true, 'fma'], ['fused+scoresT', true, true, 'scoresT']];

const load = (): string => loadavg().map((v) => v.toFixed(2)).join(' ');

console.log(`prompt ${prompt}, ${reps} reps, load average ${load()}, ${new Date().toISOString()}`);
for (const modelName of models) {
  for (const dtype of dtypes) {
    for (const threads of arg('threads', '1,2').split(',').map(Number)) {
      const be = new WasmBackend({ threads, weights: dtype });
      await be.runtime.ready();
      const lm = buildModel(PRESETS[modelName], modelName, new RandomTensorSource(1), { backend: be });
      const ids = Array.from({ length: prompt }, (_, i) => (i * 31 + 7) % 1000);
      const prefill = async ([, attn, mlp, tiles]: Variant): Promise<{ wall: number; cpu: number; logits: Float32Array }> => {
        be.attnPrefill = attn;
        be.mlpPrefill = mlp;
        be.attnTiles = tiles;
        const s = lm.createState(1);
        const c0 = cpuMs(), t0 = performance.now();
        const l = await lm.advance([ids], s);
        const r = { wall: performance.now() - t0, cpu: cpuMs() - c0, logits: l.data.slice() };
        s.dispose();
        return r;
      };
      for (const v of VARIANTS) await prefill(v); // (warm-up: compiled code, memory grown)
      const wall: Record<string, number[]> = {}, cpu: Record<string, number[]> = {};
      for (const [name] of VARIANTS) {
        wall[name] = [];
        cpu[name] = [];
      }
      const last: Record<string, Float32Array> = {};
      const l0 = loadavg()[0];
      for (let r = 0; r < reps; r++) {
        for (const v of r % 2 ? [...VARIANTS].reverse() : VARIANTS) {
          const p = await prefill(v);
          wall[v[0]].push(p.wall / prompt);
          cpu[v[0]].push(p.cpu / prompt);
          last[v[0]] = p.logits;
        }
      }
      const diff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
      const mx = last.ops.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      console.log(`\n${modelName}, ${dtype}, ${threads} thread(s): ms per token, median of ${reps} (load ${l0.toFixed(2)} → ${loadavg()[0].toFixed(2)}); ` +
        `last logits max |Δ|: ops vs fused ${diff(last.ops, last.fused)}, fused vs fused+fma ${diff(last.fused, last['fused+fma'])}, fused vs fused+scoresT ${diff(last.fused, last['fused+scoresT'])} (max |logit| ${mx.toFixed(2)})`);
      console.log('| variant | wall ms/token | tok/s | CPU ms/token | CPU ÷ wall | CPU less than ops |');
      console.log('|---|---:|---:|---:|---:|---:|');
      for (const [name] of VARIANTS) {
        const w = median(wall[name]), c = median(cpu[name]);
        console.log(`| ${name} | ${w.toFixed(3)} | ${(1000 / w).toFixed(1)} | ${c.toFixed(3)} | ${(c / w).toFixed(2)} | ${(median(cpu.ops) / c).toFixed(3)}× |`);
      }
      if (kernels) {
        // per kernel: one prefill of each variant with every kernel call timed
        const rt = be.runtime;
        for (const v of VARIANTS) {
          const { result: p, kernels: k } = await wasmKernelTimes(rt, () => prefill(v));
          const rows = [...k].sort((a, b) => b[1].cpu - a[1].cpu);
          const kw = rows.reduce((s, [, e]) => s + e.wall, 0), kc = rows.reduce((s, [, e]) => s + e.cpu, 0);
          console.log(`\n${v[0]}, ${threads} thread(s), per kernel (ms per token; wall ${(p.wall / prompt).toFixed(3)}, CPU ${(p.cpu / prompt).toFixed(3)})`);
          console.log('| kernel | calls | wall | CPU | CPU ÷ wall |');
          console.log('|---|---:|---:|---:|---:|');
          for (const [kernel, e] of rows) console.log(`| ${kernel} | ${e.calls} | ${(e.wall / prompt).toFixed(3)} | ${(e.cpu / prompt).toFixed(3)} | ${(e.cpu / e.wall).toFixed(2)} |`);
          console.log(`| outside kernels | | ${((p.wall - kw) / prompt).toFixed(3)} | ${((p.cpu - kc) / prompt).toFixed(3)} | |`);
        }
      }
      await be.runtime.close();
    }
  }
}
