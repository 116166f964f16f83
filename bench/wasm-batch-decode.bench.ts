/**
 * Batched decode on the wasm backend (B sequences per step), the f32 decode kernels of now against those before
 * session 28's fix (runtime.gemvF32 'seq' vs 'rows4'; at B = 2 the products run gemvF32Few or the 2×4 tiles), interleaved
 * in one process: per model, --reps rounds of (prefill 4 tokens per sequence, then --gen steps) in each mode, the order
 * alternating; wall and CPU ms (all threads, process.cpuUsage) per step, median of the rounds. Random weights
 * (`mamba-ts bench`'s presets). Checks that both modes pick the same greedy tokens.
 *
 *   node dist/bench/wasm-batch-decode.bench.js [--archs mamba,mamba2] [--batch 2] [--threads 2] [--gen 24] [--reps 5]
 */
import os from 'node:os';
import { WasmBackend } from '../src/backend/wasm/index.js';
import type { GemvF32 } from '../src/backend/wasm/runtime.js';
import { argmax } from '../src/generate/sampling.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';
import { arg, listArg } from './options.js';
import { loadLine, machineInfo, machineLine, median } from './report.js';

const archs = listArg('archs', 'mamba,mamba2');
const batch = Number(arg('batch', '2')), threads = Number(arg('threads', '2'));
const gen = Number(arg('gen', '24')), reps = Number(arg('reps', '5'));
for (const [n, v] of [['batch', batch], ['threads', threads], ['gen', gen], ['reps', reps]] as const) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${n}: expected an integer >= 1, got ${v}`);
}
for (const a of archs) if (!PRESETS[`${a}-130m`]) throw new Error(`--archs: no preset ${a}-130m`);

const load0 = os.loadavg();
const lines: string[] = [];
for (const arch of archs) {
  const be = new WasmBackend({ threads, weights: 'f32' });
  const name = `${arch}-130m`;
  const lm = buildModel(PRESETS[name], name, new RandomTensorSource(1), { backend: be });
  const modes: GemvF32[] = ['seq', 'rows4'];
  const wall: Record<string, number[]> = { seq: [], rows4: [] }, cpu: Record<string, number[]> = { seq: [], rows4: [] };
  const tokens: Record<string, number[]> = {};
  for (let r = -1; r < reps; r++) { // r = -1: warm-up
    for (const mode of r % 2 ? modes : [...modes].reverse()) {
      be.runtime.gemvF32 = mode;
      const s = lm.createState(batch);
      const prompts = Array.from({ length: batch }, (_, b) => Array.from({ length: 4 }, (_, i) => (b * 131 + i * 7919 + 13) % lm.vocabSize));
      let l = await lm.advance(prompts, s);
      const picked: number[] = [];
      const c0 = process.cpuUsage(), t0 = performance.now();
      for (let i = 0; i < gen; i++) {
        const V = l.data.length / batch;
        const next = Array.from({ length: batch }, (_, b) => [argmax(l.data.subarray(b * V, (b + 1) * V))]);
        picked.push(...next.map((t) => t[0]));
        l = await lm.advance(next, s);
      }
      const ms = performance.now() - t0, c = process.cpuUsage(c0);
      if (r >= 0) {
        wall[mode].push(ms / gen);
        cpu[mode].push((c.user + c.system) / 1000 / gen);
      }
      if (!tokens[mode]) tokens[mode] = picked;
    }
  }
  be.runtime.gemvF32 = 'seq';
  const same = tokens.seq.every((t, i) => t === tokens.rows4[i]);
  for (const m of modes) {
    lines.push(`| ${name} | f32 | ${batch} | ${threads} | ${m} | ${median(wall[m]).toFixed(1)} (${wall[m].map((x) => x.toFixed(1)).join(', ')}) | ${median(cpu[m]).toFixed(1)} |`);
  }
  if (!same) lines.push(`(${name}: the two modes picked different greedy tokens: their logits differ by rounding (batch ≥ 2), a near tie can flip)`);
}
console.log(`${machineLine(machineInfo())}; Node ${process.version}; load average ${loadLine(load0)} → ${loadLine(os.loadavg())}`);
console.log(`${gen} decode steps of ${batch} sequences after a 4-token prefill each, ${reps} rounds, modes interleaved\n`);
console.log('| model | weights | batch | threads | gemvF32 | wall ms per step (median; rounds) | CPU ms per step (all threads, median) |');
console.log('|---|---|---:|---:|---|---:|---:|');
for (const l of lines) console.log(l);
process.exit(0);
