/**
 * Batch-1 decode kernel sets of the WebGPU backend side by side (issue 11): for each `--decode` set (v1: the kernels
 * before; fused: v1 with x_proj in in_proj's epilogue (Mamba-1) and argmax partials in lm_head's; mega: a Mamba-2 or -1
 * step as one persistent-kernel dispatch, MAMBA_TS_WEBGPU_MEGA_GROUPS workgroups (default 132); v2: the subgroup
 * matvec and step kernels; v2-r{rows per subgroup}w{workgroup}{u|l}[n]: its tunables), after one untimed chain of
 * `--gen` tokens (warm-up: so the figures compare with webgpu.bench's), greedy
 * decode on the device (`greedyChain`: tokens kept on the GPU, one read-back at the end, as the CUDA-graph anchor
 * is timed), tok/s and µs/token, dispatches per token, then one profiled step (GPU time per kernel). Every set is
 * checked on the device against the first one: the first decode step's logits (max |Δ| printed, fail above 1e-3
 * relative) and the chained greedy tokens (must be equal); a failed check prints CHECK FAILED and exits 1.
 *
 *   node dist/bench/decode-kernels.bench.js [--presets mamba-130m,mamba2-130m] [--weights f32,bf16,q8]
 *        [--decode v1,fused,mega,v2,v2-r1w64u,v2-r4w128u,v2-r2w256l,v2-r2w128un] [--prompt 64] [--gen 256] [--reps 3] [--layers n] [--vocab n]
 */
import { createWebGpuBackend, type WebGpuBackend } from '../src/backend/webgpu/index.js';
import type { WebGpuWeights } from '../src/backend/webgpu/options.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const presets = arg('presets', 'mamba-130m,mamba2-130m').split(',');
const formats = arg('weights', 'f32,bf16').split(',') as WebGpuWeights[];
const modes = arg('decode', 'v1,fused,v2').split(',');
const promptLen = Number(arg('prompt', '64'));
const gen = Number(arg('gen', '256'));
const reps = Number(arg('reps', '3'));
const layers = arg('layers', ''), vocab = arg('vocab', '');
const log = (s: string) => process.stderr.write(s + '\n');
let failed = false;

for (const weights of formats) {
  const backend: WebGpuBackend = await createWebGpuBackend({ weights, profile: true, ...(arg('kernels', '') ? { kernels: arg('kernels', '') as 'tiled' | 'simple' } : {}) });
  backend.rt.setProfiling(false);
  log(`backend ${backend.name}, kernels ${backend.kernels}, weights ${weights}, subgroup size ${backend.rt.subgroupFixed || 'not fixed (v2 = v1 matvec)'}`);
  for (const preset of presets) {
    const config = { ...PRESETS[preset], ...(layers ? { num_hidden_layers: Number(layers) } : {}), ...(vocab ? { vocab_size: Number(vocab) } : {}) };
    const lm = buildModel(config, preset, new RandomTensorSource(1), { backend });
    const V = lm.vocabSize;
    const ids = Array.from({ length: promptLen }, (_, i) => (i * 7919 + 13) % V);
    let first: { mode: string; logits: Float32Array; tokens: string } | null = null;
    for (const mode of modes) {
      backend.decodeKernels = mode;
      const s = lm.createState(1);
      await lm.advance([ids], s);
      const check = s.clone();
      // warm-up: records the step, then one untimed chain as long as the timed ones (pipelines of the replayed
      // chain compiled, GPU clocks up), then timed chains from copies of the same state
      await lm.greedyChain!([[1]], s.clone(), 8);
      // 'mega': its co-residency probe (submitted by that first step) must have come back before the timed chains
      if (mode.startsWith('mega')) {
        const why = await backend.mega.ready();
        log(why ? `${preset} ${weights} ${mode}: ${why}` : `${preset} ${weights} ${mode}: probe of ${backend.mega.opts.groups} workgroups passed (the adapter binds ${backend.rt.maxStorageBuffers} storage buffers a stage, ${backend.rt.maxBinding} bytes a binding)`);
      }
      const warm = s.clone();
      await lm.greedyChain!([[1]], warm, gen);
      warm.dispose();
      const times: number[] = [];
      let tokens = '';
      const c0 = backend.rt.counters.dispatches;
      for (let r = 0; r < reps; r++) {
        const sr = s.clone();
        const t = performance.now();
        const out = await lm.greedyChain!([[1]], sr, gen);
        times.push(performance.now() - t);
        tokens = out!.map((x) => x[0]).join(',');
        sr.dispose();
      }
      const dispatches = (backend.rt.counters.dispatches - c0) / (reps * gen);
      const logits = (await lm.advance([[1]], check)).data;
      let dl = 0, mx = 0;
      if (first) {
        for (let i = 0; i < V; i++) (dl = Math.max(dl, Math.abs(logits[i] - first.logits[i]))), (mx = Math.max(mx, Math.abs(first.logits[i])));
        if (dl > 1e-3 * Math.max(1, mx)) (failed = true), log(`CHECK FAILED: ${preset} ${weights} ${mode}: decode logits differ from ${first.mode} by ${dl}`);
        if (tokens !== first.tokens) (failed = true), log(`CHECK FAILED: ${preset} ${weights} ${mode}: chained greedy tokens differ from ${first.mode}'s`);
      } else first = { mode, logits: logits.slice(), tokens };
      // one profiled step per kernel set (timestamps around every dispatch: inflated, but per kernel)
      // (a fresh state: recorded steps replay without timestamps)
      const sp = lm.createState(1);
      await lm.advance([ids], sp);
      await backend.sync();
      backend.rt.setProfiling(true);
      backend.rt.kernelTimes.clear();
      for (let i = 0; i < 4; i++) await lm.advanceArgmax!([[1 + i]], sp);
      await backend.sync();
      backend.rt.setProfiling(false);
      const rows = [...backend.rt.kernelTimes].sort((a, b) => b[1].ms - a[1].ms);
      for (const x of [s, check, sp]) x.dispose();
      const ms = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)];
      const best = Math.min(...times);
      // 'mega' that did not run (declined or off) measured the multi-dispatch kernels: said so on the line
      const megaRan = rows.some(([k]) => k === 'mega2' || k === 'mega1');
      // (and a greedy step whose LM head stayed outside the kernel: the rows, then the head's dispatches)
      const megaNote = !mode.startsWith('mega') ? '' : !megaRan ? ` [MEGA DID NOT RUN: ${backend.mega.status || backend.mega.lastDecline || 'declined'}]` : backend.mega.lastHeadDecline ? ` [LM HEAD OUTSIDE MEGA: ${backend.mega.lastHeadDecline}]` : '';
      const line = `${preset} ${weights} decode ${mode}${megaNote}: ${((gen * 1000) / ms).toFixed(1)} tok/s on device (median of ${reps}; ${((ms * 1000) / gen).toFixed(1)} µs/token; best ${((gen * 1000) / best).toFixed(1)} tok/s), ${dispatches.toFixed(1)} dispatches per token; ${first.mode === mode ? 'reference set' : `logits vs ${first.mode} max |Δ| ${dl.toExponential(2)}, tokens ${tokens === first.tokens ? 'equal' : 'DIFFER'}`}`;
      console.log(line);
      console.log(`  profiled step (GPU µs): ${rows.slice(0, 8).map(([k, v]) => `${k} ${((v.ms / 4) * 1000).toFixed(1)} (${v.count / 4}× ${((v.ms / v.count) * 1000).toFixed(1)})`).join(', ')}`);
    }
  }
  backend.destroy();
}
if (failed) {
  log('some checks of the results on the device failed (see CHECK FAILED above)');
  process.exitCode = 1;
}
