/**
 * KV cache formats end to end on the wasm backend (the `kvCache` option), in one process so that a loaded machine
 * slows every format alike:
 *
 * 1. decode step time at context C: one model (random weights), one state per format at C positions (an 8-token
 *    prefill, then each KV cache replaced by C positions of the same random keys/values in the state's format, as
 *    wasm-context.bench.ts does), greedy steps of the formats interleaved; wall and process CPU time (all threads)
 *    per step, and decode attention's time (wall) at each step's context, the op run on its own after the step over the
 *    state's caches (bench/kv-fill.ts attentionProbe: decode runs it inside each attention layer's one call).
 * 2. accuracy at context P: a real prefill of P tokens under each format, then N decode steps fed the f32 run's
 *    greedy tokens; max |Δlogit| against the f32 cache over all N + 1 logits rows, and the logit spread.
 *
 *   node dist/bench/wasm-kv-cache.bench.js [--model llama-130m] [--formats f32,bf16,q8] [--context 8192] [--steps 6]
 *       [--accuracy-prompt 1024] [--accuracy-steps 8] [--threads 2]
 */
import * as os from 'node:os';
import { WasmBackend } from '../src/backend/wasm/index.js';
import { buildModel } from '../src/models/registry.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { argmax } from '../src/generate/sampling.js';
import { KV_CACHE_FORMATS, type KvCacheDType } from '../src/tensor/dtype.js';
import type { ModelState } from '../src/models/state.js';
import { attentionProbe, stateAtContext, lcgNoise } from './kv-fill.js';
import { loadLine, machineInfo, machineLine } from './report.js';

const argv = process.argv.slice(2);
const arg = (name: string, def: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const model = arg('model', 'llama-130m');
const formats = arg('formats', 'f32,bf16,q8').split(',') as KvCacheDType[];
for (const f of formats) if (!KV_CACHE_FORMATS.includes(f)) throw new Error(`--formats: expected formats among ${KV_CACHE_FORMATS.join(', ')}, got '${f}'`);
/** an integer option >= min (a clear error naming it otherwise) */
const int = (name: string, def: string, min: number): number => {
  const raw = arg(name, def);
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: expected an integer >= ${min}, got '${raw}'`);
  return n;
};
const C = int('context', '8192', 0);
const steps = int('steps', '6', 1);
const P = int('accuracy-prompt', '1024', 0);
const N = int('accuracy-steps', '8', 0);
const threads = int('threads', '2', 1);
if (!PRESETS[model]) throw new Error(`--model: no preset ${model}`);

const be = new WasmBackend({ threads });
// one model; each format's states made with createState(1, { kvCache })
const lm = buildModel(PRESETS[model], model, new RandomTensorSource(1), { backend: be });
const V = lm.vocabSize;
const load0 = os.loadavg();
console.log(`${machineLine(machineInfo())}; ${be.name}; ${model} (random weights); load average ${loadLine(load0)}`);

if (C > 0) {
  const blocks = new Map<number, Float32Array>();
  const states: ModelState[] = [];
  for (const kv of formats) {
    // (a fresh LCG from 12345 for each row size: every format's caches hold the same values)
    const { s } = await stateAtContext(lm, C, C + steps + 2, kv, { noise: (n) => lcgNoise(12345)(n), blocks });
    states.push(s);
  }
  const probeAttention = attentionProbe(lm, be);
  const res = formats.map(() => ({ wall: [] as number[], cpu: [] as number[], attn: [] as number[] }));
  const toks = formats.map(() => 1);
  for (let r = 0; r < steps + 1; r++) {
    for (let f = 0; f < formats.length; f++) {
      const c0 = process.cpuUsage(), t0 = performance.now();
      const logits = await lm.advance([[toks[f]]], states[f]);
      toks[f] = argmax(logits.data);
      const wall = performance.now() - t0, cu = process.cpuUsage(c0);
      if (r === 0) continue; // warm-up
      res[f].wall.push(wall);
      res[f].cpu.push((cu.user + cu.system) / 1000);
      res[f].attn.push(probeAttention ? probeAttention(states[f]).ms : NaN);
    }
  }
  console.log(`\nDecode step at context ${C} (${steps} steps per format, interleaved; median [min]); load average now ${loadLine(os.loadavg())}\n`);
  console.log('| KV cache | state MiB | wall ms/step | CPU ms/step (all threads) | CPU speed-up vs first | attention ms/step (wall) |');
  console.log('|---|---:|---:|---:|---:|---:|');
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (let f = 0; f < formats.length; f++) {
    const x = res[f];
    console.log(`| ${formats[f]} | ${(states[f].byteSize / 2 ** 20).toFixed(1)} | ${med(x.wall).toFixed(1)} [${Math.min(...x.wall).toFixed(1)}] | ` +
      `${med(x.cpu).toFixed(1)} [${Math.min(...x.cpu).toFixed(1)}] | ${(med(res[0].cpu) / med(x.cpu)).toFixed(2)}× | ${med(x.attn).toFixed(1)} [${Math.min(...x.attn).toFixed(1)}] |`);
  }
  for (const s of states) s.dispose();
}

if (P > 0) {
  const prompt = Array.from({ length: P }, (_, i) => (i * 7919 + 13) % V);
  const rows: Float32Array[][] = [];
  let forced: number[] = [];
  for (let f = 0; f < formats.length; f++) {
    const s = lm.createState(1, { kvCache: formats[f] });
    const out: Float32Array[] = [];
    let logits = await lm.advance([prompt], s);
    out.push(logits.data.slice());
    const fed: number[] = [];
    for (let i = 0; i < N; i++) {
      const tok = f === 0 ? argmax(logits.data) : forced[i];
      fed.push(tok);
      logits = await lm.advance([[tok]], s);
      out.push(logits.data.slice());
    }
    if (f === 0) forced = fed;
    rows.push(out);
    s.dispose();
  }
  const spread = Math.max(...rows[0].map((l) => Math.max(...l) - Math.min(...l)));
  console.log(`\nAccuracy: prefill ${P} tokens, then ${N} steps fed ${formats[0]}'s greedy tokens; logit spread (max − min) ${spread.toFixed(3)}; load average now ${loadLine(os.loadavg())}\n`);
  console.log(`| KV cache | max abs Δlogit vs ${formats[0]} | ÷ spread | greedy tokens equal to ${formats[0]}'s |`);
  console.log('|---|---:|---:|---|');
  for (let f = 1; f < formats.length; f++) {
    let d = 0, same = 0;
    for (let i = 0; i < rows[f].length; i++) {
      for (let j = 0; j < rows[f][i].length; j++) d = Math.max(d, Math.abs(rows[f][i][j] - rows[0][i][j]));
      if (argmax(rows[f][i]) === argmax(rows[0][i])) same++;
    }
    console.log(`| ${formats[f]} | ${d.toExponential(2)} | ${(d / spread).toExponential(2)} | ${same} / ${rows[f].length} |`);
  }
}
await be.runtime.close();
