/**
 * Where a fresh state's decode goes on a GPU (issue 11): `mamba-ts bench --backend webgpu --gen 16` showed 26–216 ms
 * per rep on an H100 (1.6–13.5 ms a token) where decode-kernels.bench replays at ~1 ms a token. Each rep here, as the
 * CLI's: a new state, the prefill (logits read), then greedy decode through `greedyChain` — timed in parts: the first
 * step (model code run and recorded, its argmax read back), the remaining n−1 steps replayed on the device (one read at
 * the end), and then n more steps on the same, already recorded state. With `--dispose` each rep's state is disposed
 * (its recorded step's buffers given back at once) before the next. Counters per part: submits, dispatches.
 *
 * With MAMBA_TS_WEBGPU_TRACE=1 each part also says the WebGPU calls it made (src/backend/webgpu/trace.ts); `--null-device`
 * records on bench/null-gpu.ts's device with an H100's limits (nothing runs: the parts' JavaScript time and counts).
 *
 *   node dist/bench/webgpu-first-step.js [--preset mamba2-130m] [--prompt 2048] [--gen 16] [--reps 7] [--dispose] [--null-device]
 */
import { WebGpuBackend, createWebGpuBackend } from '../src/backend/webgpu/index.js';
import { countsSince, formatCounts } from '../src/backend/webgpu/trace.js';
import { nullGpuDevice } from './null-gpu.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';
import { DecoderLM } from '../src/models/decoder.js';
import { argmax } from '../src/generate/sampling.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const preset = arg('preset', 'mamba2-130m');
const promptLen = Number(arg('prompt', '2048'));
const gen = Number(arg('gen', '16'));
const reps = Number(arg('reps', '7'));
const dispose = process.argv.includes('--dispose');
if (!PRESETS[preset]) throw new Error(`unknown preset ${preset} (one of ${Object.keys(PRESETS).join(', ')})`);
if (!(gen >= 2 && promptLen >= 1 && reps >= 1)) throw new Error('--gen must be ≥ 2, --prompt and --reps ≥ 1');

const backend = process.argv.includes('--null-device')
  ? new WebGpuBackend(nullGpuDevice({ maxComputeWorkgroupStorageSize: 49152 }), 'null device (H100 limits)', { kernels: 'tiled', subgroupMaxSize: 32, subgroupMinSize: 32 })
  : await createWebGpuBackend({ weights: 'f32' });
const lm = buildModel(PRESETS[preset], preset, new RandomTensorSource(1), { backend });
if (!(lm instanceof DecoderLM) || !lm.greedyChain) throw new Error(`${preset}: no greedy chain on this backend`);
const V = lm.vocabSize;
const ids = Array.from({ length: promptLen }, (_, i) => (i * 7919 + 13) % V);
const c = backend.rt.counters;
const part = async <T>(f: () => Promise<T>): Promise<[T, string]> => {
  const s0 = c.submits, d0 = c.dispatches, t0 = performance.now(), u0 = process.cpuUsage();
  const k0 = backend.rt.trace ? { ...backend.rt.trace } : null;
  const r = await f();
  const u = process.cpuUsage(u0);
  const calls = k0 ? `; ${formatCounts(countsSince(k0, backend.rt.trace!))}` : '';
  return [r, `${(performance.now() - t0).toFixed(1)} ms, CPU ${((u.user + u.system) / 1000).toFixed(1)} ms (${c.submits - s0} submits, ${c.dispatches - d0} dispatches${calls})`];
};
console.log(`${backend.name}: ${preset}, prompt ${promptLen}, greedy ${gen} + ${gen}, ${reps} reps${dispose ? ', each state disposed' : ''}`);
for (let r = 0; r < reps + 1; r++) {
  const s = lm.createState(1);
  const [l, pre] = await part(() => lm.advance([ids], s));
  const first = argmax(l.data);
  const [a, one] = await part(() => lm.greedyChain!([[first]], s, 1));
  const [b, rest] = await part(() => lm.greedyChain!([[a![0][0]]], s, gen - 1));
  const [, more] = await part(() => lm.greedyChain!([[b![gen - 2][0]]], s, gen));
  console.log(`${r === 0 ? 'warm-up' : `rep ${r}`}: prefill ${pre}; first step ${one}; ${gen - 1} replayed ${rest}; ${gen} more ${more}`);
  if (dispose) s.dispose();
}
backend.destroy();
