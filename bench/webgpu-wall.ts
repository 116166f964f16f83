/**
 * Where the wall time above the GPU time goes (issue 11, session 33): per prefill and per decode call, the wall and CPU
 * milliseconds and the WebGPU calls made (src/backend/webgpu/trace.ts: submits, passes, dispatches, copies, writeBuffer
 * calls and bytes, mapAsync read-backs and the time waited on them, buffers / bind groups / pipelines created, the
 * JavaScript time of encoding), along the two paths that time a prefill:
 *   - `bench`: webgpu.bench's rep — a fresh state, the prefill, `gen` advanceArgmax steps (a read-back each), then a
 *     greedy chain of `gen` on the same state; states are not disposed (left to the collector);
 *   - `cli`: `mamba-ts bench`'s rep — a fresh state, the prefill, a greedy chain of `gen` (its first step recorded,
 *     src/cli/bench.ts `benchDecoder`), the state disposed; after the CLI's warm-up (the whole prompt and `gen` steps).
 * `--lean 1,0` runs each rep with GpuRuntime.leanHost on and off, interleaved on the same model (the session-33 host
 * side against the one before); `--rebind 0,1` with GpuRuntime.rebindSteps off and on (a fresh state's first step
 * rebound from the last recorded one instead of run and recorded). `--gpu-ms` adds one profiled prefill per preset (timestamp queries: the GPU time that
 * the wall time is held against). `--null-device`: recorded on bench/null-gpu.ts's device with an H100's limits
 * (nothing runs: counts and our own JavaScript time at full shapes in seconds); else the adapter (`--layers`, `--vocab`
 * shrink the presets for SwiftShader).
 *
 *   node dist/bench/webgpu-wall.js [--presets llama-130m,mamba2-130m,mamba-130m] [--paths cli,bench] [--prompt 2048]
 *        [--gen 16] [--reps 3] [--lean 1,0] [--rebind 0,1] [--gpu-ms] [--null-device] [--layers n] [--vocab n]
 */
import { WebGpuBackend, createWebGpuBackend } from '../src/backend/webgpu/index.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';
import type { CausalLM } from '../src/models/causal-lm.js';
import { argmax } from '../src/generate/sampling.js';
import { countsSince, formatCounts, type GpuCallCounts } from '../src/backend/webgpu/trace.js';
import { benchDecoder } from '../src/cli/bench.js';
import { kernelTimes } from './kernel-times.js';
import { nullGpuDevice } from './null-gpu.js';
import { intListArg, listArg } from './options.js';
import { cpuMs, median } from './report.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const presets = listArg('presets', 'llama-130m,mamba2-130m,mamba-130m', Object.keys(PRESETS));
const paths = listArg('paths', 'cli,bench', ['cli', 'bench']);
const promptLen = intListArg('prompt', '2048')[0];
const gen = intListArg('gen', '16')[0];
const reps = intListArg('reps', '3')[0];
const leans = listArg('lean', '1', ['1', '0']).map((x) => x === '1'); // GpuRuntime.leanHost on / off
const rebinds = listArg('rebind', '0', ['0', '1']).map((x) => x === '1'); // GpuRuntime.rebindSteps off / on
/** the host sides compared, each rep run with each */
const modes = leans.flatMap((lean) => rebinds.map((rebind) => ({ lean, rebind, tag: [leans.length > 1 ? `leanHost ${lean ? 'on' : 'off'}` : '', rebinds.length > 1 ? `rebind ${rebind ? 'on' : 'off'}` : ''].filter((x) => x).join(', ') })));
const nul = process.argv.includes('--null-device');
const gpuMs = process.argv.includes('--gpu-ms');
if (nul && gpuMs) throw new Error('--gpu-ms needs a GPU: the null device runs nothing');
const layers = arg('layers', ''), vocab = arg('vocab', '');
if (!(gen >= 2 && promptLen >= 1 && reps >= 1)) throw new Error('--gen must be ≥ 2, --prompt and --reps ≥ 1');

const backend = nul
  ? new WebGpuBackend(nullGpuDevice({ maxComputeWorkgroupStorageSize: 49152 }), 'null device (H100 limits)', { kernels: 'tiled', subgroupMaxSize: 32, subgroupMinSize: 32, trace: true })
  : await createWebGpuBackend({ trace: true, profile: gpuMs });
if (gpuMs) backend.rt.setProfiling(false);
const tr = backend.rt.trace!;

interface Part {
  wall: number;
  cpu: number;
  calls: GpuCallCounts;
}
async function part<T>(f: () => Promise<T>): Promise<[T, Part]> {
  const c0 = { ...tr }, t0 = performance.now(), u0 = cpuMs();
  const r = await f();
  return [r, { wall: performance.now() - t0, cpu: cpuMs() - u0, calls: countsSince(c0, tr) }];
}
const line = (what: string, p: Part) => `    ${what}: wall ${p.wall.toFixed(1)} ms, CPU ${p.cpu.toFixed(1)} ms; ${formatCounts(p.calls)}`;

console.log(`${backend.name}: prompt ${promptLen}, gen ${gen}, ${reps} reps, paths ${paths.join(',')}, leanHost ${leans.map((l) => (l ? 'on' : 'off')).join(',')}, rebindSteps ${rebinds.map((l) => (l ? 'on' : 'off')).join(',')}${nul ? ' (nothing runs: counts and JavaScript time only)' : ''}`);
for (const preset of presets) {
  const cfg = { ...PRESETS[preset], ...(layers ? { num_hidden_layers: Number(layers) } : {}), ...(vocab ? { vocab_size: Number(vocab) } : {}) };
  const lm: CausalLM = buildModel(cfg, preset, new RandomTensorSource(1), { backend });
  const ids = Array.from({ length: promptLen }, (_, i) => (i * 7919 + 13) % lm.vocabSize);
  const { decode } = benchDecoder(lm, false);
  // warm-up as the CLI's (every path's pipelines compiled, the lean side's shelf filled, a step recorded to rebind)
  for (const m of modes) {
    backend.rt.leanHost = m.lean;
    backend.rt.rebindSteps = m.rebind;
    const s = lm.createState(1);
    const l = await lm.advance([ids], s);
    await decode(l, s, gen);
    let t = argmax(l.data);
    for (let i = 0; i < 2; i++) t = (await lm.advanceArgmax!([[t]], s))![0];
    s.dispose();
  }
  if (gpuMs) {
    const s = lm.createState(1);
    const k = await kernelTimes(backend, () => lm.advance([ids], s));
    s.dispose();
    console.log(`${preset}: prefill ${promptLen}, GPU ${k.gpuMs.toFixed(2)} ms (profiled: timestamp queries around each dispatch, one pass each); ${k.kernels.slice(0, 4).map((x) => `${x.kernel} ${x.ms.toFixed(2)}`).join(', ')}`);
  }
  const walls = new Map<string, number[]>();
  const note = (key: string, ms: number) => walls.set(key, [...(walls.get(key) ?? []), ms]);
  for (let r = 0; r < reps; r++) {
    for (const path of paths) {
      for (const m of modes) {
        backend.rt.leanHost = m.lean;
        backend.rt.rebindSteps = m.rebind;
        const tag = `${path}${m.tag ? `, ${m.tag}` : ''}`;
        console.log(`${preset} rep ${r + 1}, ${tag}`);
        const s = lm.createState(1);
        const [l, pre] = await part(() => lm.advance([ids], s));
        console.log(line(`prefill ${promptLen}`, pre));
        note(`${tag}|prefill`, pre.wall);
        if (path === 'cli') {
          const [, dec] = await part(() => decode(l, s, gen));
          console.log(line(`greedy chain of ${gen}, first step recorded`, dec));
          note(`${tag}|decode`, dec.wall);
          s.dispose();
        } else {
          let t = argmax(l.data);
          const [, steps] = await part(async () => {
            for (let i = 0; i < gen; i++) t = (await lm.advanceArgmax!([[t]], s))![0];
          });
          console.log(line(`${gen} advanceArgmax steps`, steps));
          const [, chain] = await part(() => lm.greedyChain!([[t]], s, gen));
          console.log(line(`greedy chain of ${gen}, recorded already`, chain));
          note(`${tag}|decode`, chain.wall);
        }
      }
    }
  }
  for (const [key, ms] of walls) {
    const [tag, what] = key.split('|');
    console.log(`${preset} ${tag}: ${what} median ${median(ms).toFixed(1)} ms (${ms.map((m) => m.toFixed(1)).join(', ')})`);
  }
}
backend.destroy();
