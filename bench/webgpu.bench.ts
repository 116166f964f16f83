/**
 * WebGPU benchmark at the ~130M shapes (random weights, batch 1 unless asked): prefill of a `--prompt`-token
 * prompt, greedy decode after it with the argmax on the GPU (what `generate` does: 4 bytes read back per
 * sequence, as the official CUDA-graph decode keeps the token on the device), batched decode, and one
 * profiled pass (timestamp queries, one compute pass per dispatch) that says where the GPU time goes.
 *
 *   node dist/bench/webgpu.bench.js [--presets mamba-130m,mamba2-130m] [--weights f32,bf16] [--prompt 2048]
 *        [--gen 128] [--reps 3] [--batch 1,8,32,64] [--batch-prompt 128] [--fewrows on,off] [--no-profile] [--json]
 *   node dist/bench/webgpu.bench.js --memory [--presets …] [--weights …] [--prompt 2048] [--layers n] [--json]
 *
 * `--memory` measures GPU memory instead of speed: one prefill of `--prompt` tokens and what it took beyond the
 * weights and the state (the runtime's `stats()`: device bytes at the high-water mark, and the pool blocks in use
 * at most); `--layers n` builds the presets with n layers (same widths), for slow adapters (speed runs too). `--null-device` (with
 * `--memory`) records on a device that executes nothing (bench/null-gpu.ts): the allocations of a GPU with ≥ 256 MiB
 * bindings and `--kernels tiled|simple` (default tiled), in seconds, without a GPU; its logits are meaningless.
 * `--kernels` also picks the kernels of a speed run (default: by the adapter).
 *
 * "decode, tokens kept on the GPU" is `greedyChain`: the argmax of each step feeds the next on the device and
 * the steps are queued without a read-back in between (how the official CUDA-graph decode is timed).
 * Batched decode (`--batch`): total tok/s over the batch, sync and on device, then a check on the device that
 * batched greedy tokens equal batch-1 tokens for the same prompt (first and last row; logits of the first step
 * compared too: a kernel wrong on that GPU fails the run). `--fewrows on,off` measures the batch table with the
 * few-rows kernel (kernels/fewrows.ts, the default) and with the former path (matvec ≤ 8 rows, tiled matmul
 * above) in the same run; the largest batch is profiled with each.
 * "host µs/token" is the JavaScript side of a decode step (model code, recording, encoding, up to the submit
 * returning); the rest of the wall time is the GPU and the read-back.
 */
import { WebGpuBackend, createWebGpuBackend } from '../src/backend/webgpu/index.js';
import { nullGpuDevice } from './null-gpu.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';
import type { CausalLM } from '../src/models/causal-lm.js';
import { generate } from '../src/generate/generate.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const presets = arg('presets', 'mamba-130m,mamba2-130m').split(',');
const formats = arg('weights', 'f32').split(',') as ('f32' | 'bf16')[];
const promptLen = Number(arg('prompt', '2048'));
const gen = Number(arg('gen', '128'));
const reps = Number(arg('reps', '3'));
const batches = arg('batch', '').split(',').filter((s) => s).map(Number);
const batchPrompt = Number(arg('batch-prompt', '128'));
const fewRowsModes = arg('fewrows', 'on').split(',').map((m) => {
  if (m !== 'on' && m !== 'off') throw new Error(`--fewrows: on, off or on,off (got ${JSON.stringify(m)})`);
  return m === 'on';
});
const json = process.argv.includes('--json');
const doProfile = !process.argv.includes('--no-profile') && !process.argv.includes('--memory');
const memoryOnly = process.argv.includes('--memory');
const nullDevice = process.argv.includes('--null-device');
if (nullDevice && !memoryOnly) throw new Error('--null-device runs nothing: only with --memory');
const layers = arg('layers', '');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const log = (s: string) => process.stderr.write(s + '\n');
const f1 = (x: number) => x.toFixed(1);

/** the host time of each submit (from the start of the step to the submit returning) */
function hostTimer(be: WebGpuBackend): { start(): void; total(): number } {
  let t0 = 0, sum = 0;
  const flush = be.rt.flush.bind(be.rt);
  be.rt.flush = () => {
    flush();
    if (t0) sum += performance.now() - t0;
    t0 = 0;
  };
  return { start: () => void (t0 = performance.now()), total: () => sum };
}

async function decodeSteps(lm: CausalLM, s: ReturnType<CausalLM['createState']>, first: number[], n: number, timer?: { start(): void }): Promise<void> {
  let next = first;
  for (let i = 0; i < n; i++) {
    timer?.start();
    const ids = await lm.advanceArgmax!(next.map((t) => [t]), s);
    next = Array.from(ids!, (t) => Math.max(0, t));
  }
}

const MiB = (b: number) => b / 2 ** 20;

function argmaxRow(l: Float32Array, r: number, V: number): number {
  let best = 0;
  for (let i = 1; i < V; i++) if (l[r * V + i] > l[r * V + best]) best = i;
  return best;
}

/**
 * On the device: the batch's greedy tokens (one logits step, then `n` chained steps) against the same prompt
 * decoded at batch 1, for the first and the last row; and the first step's logits of those rows.
 */
/** n greedy steps: on the device where the model chains them, else one read-back per step */
async function greedy(lm: CausalLM, ids: number[], s: ReturnType<CausalLM['createState']>, n: number): Promise<number[][]> {
  const chain = await lm.greedyChain?.(ids.map((x) => [x]), s, n);
  if (chain) return chain.map((c) => Array.from(c));
  const out: number[][] = [];
  for (let i = 0, next = ids; i < n; i++) out.push((next = Array.from((await lm.advanceArgmax!(next.map((x) => [x]), s))!)));
  return out;
}

async function batchCheck(lm: CausalLM, prompts: number[][], first: number[], n: number): Promise<{ rows: number[]; tokens_equal: boolean; mismatch: string | null; logits_max_abs_diff: number }> {
  const V = lm.vocabSize, b = prompts.length;
  const s = lm.createState(b);
  await lm.advance(prompts, s);
  const lb = (await lm.advance(first.map((x) => [x]), s)).data;
  const next = Array.from({ length: b }, (_, r) => argmaxRow(lb, r, V));
  const chain = await greedy(lm, next, s, n);
  s.dispose();
  const rows = [...new Set([0, b - 1])];
  let diff = 0, mismatch: string | null = null;
  for (const r of rows) {
    const s1 = lm.createState(1);
    await lm.advance([prompts[r]], s1);
    const l1 = (await lm.advance([[first[r]]], s1)).data;
    for (let i = 0; i < V; i++) diff = Math.max(diff, Math.abs(l1[i] - lb[r * V + i]));
    const t1 = argmaxRow(l1, 0, V);
    const c1 = await greedy(lm, [t1], s1, n);
    s1.dispose();
    const got = [next[r], ...chain.map((c) => c[r])], want = [t1, ...c1.map((c) => c[0])];
    const at = got.findIndex((t, i) => t !== want[i]);
    if (at >= 0 && !mismatch) mismatch = `row ${r}, step ${at}: batch ${got[at]} vs alone ${want[at]}`;
  }
  return { rows, tokens_equal: mismatch === null, mismatch, logits_max_abs_diff: diff };
}

/** one prefill of `ids` and the GPU memory it took beyond what the model (and its state) held before */
async function memoryReport(backend: WebGpuBackend, lm: CausalLM, preset: string, weights: string, ids: number[]): Promise<Record<string, unknown>> {
  const s = lm.createState(1);
  await backend.sync();
  const before = backend.rt.stats();
  backend.rt.resetPeak();
  const t = performance.now();
  await lm.advance([ids], s);
  await backend.sync();
  const ms = performance.now() - t;
  const after = backend.rt.stats();
  const res = {
    preset, weights, backend: backend.name, kernels: backend.kernels, prompt: ids.length, layers: lm.numLayers, prefill_ms: ms,
    model_device_mib: MiB(before.deviceBytes),
    peak_device_mib: MiB(after.peakDeviceBytes),
    prefill_device_mib: MiB(after.peakDeviceBytes - before.deviceBytes),
    prefill_peak_live_mib: MiB(after.peakLiveBytes - before.liveBytes),
    after_live_mib: MiB(after.liveBytes - before.liveBytes),
    buffers_created: after.buffersCreated - before.buffersCreated,
  };
  if (!json) {
    console.log(`${preset} ${weights} (${lm.numLayers} layers, ${backend.kernels} kernels): prefill ${ids.length} tokens in ${(ms / 1000).toFixed(1)} s; ` +
      `GPU memory: model + state ${f1(res.model_device_mib)} MiB, peak ${f1(res.peak_device_mib)} MiB (prefill +${f1(res.prefill_device_mib)} MiB; ` +
      `blocks in use at most +${f1(res.prefill_peak_live_mib)} MiB, after it +${f1(res.after_live_mib)} MiB; ${res.buffers_created} buffers created)`);
  }
  return res;
}

const results: Record<string, unknown>[] = [];
const newBackend = async (weights: 'f32' | 'bf16'): Promise<WebGpuBackend> =>
  nullDevice
    ? new WebGpuBackend(nullGpuDevice(), 'null device (allocations only)', { weights, kernels: arg('kernels', 'tiled') as 'tiled' | 'simple', subgroupMaxSize: 32 })
    : createWebGpuBackend({ profile: doProfile, weights, ...(arg('kernels', '') ? { kernels: arg('kernels', '') as 'tiled' | 'simple' } : {}) });
if (memoryOnly) {
  // a fresh device per model: what one model needs, not what the models before it left in the pools
  for (const weights of formats) {
    for (const preset of presets) {
      const backend = await newBackend(weights);
      const config = layers ? { ...PRESETS[preset], num_hidden_layers: Number(layers) } : PRESETS[preset];
      const lm = buildModel(config, preset, new RandomTensorSource(1), { backend });
      log(`${preset} (${weights}) on ${backend.name}: ${f1(backend.weightBytes / 2 ** 20)} MiB of weights`);
      const ids = Array.from({ length: promptLen }, (_, i) => (i * 7919 + 13) % lm.vocabSize);
      results.push(await memoryReport(backend, lm, preset, weights, ids));
      backend.destroy();
    }
  }
}
for (const weights of memoryOnly ? [] : formats) {
  const backend = await newBackend(weights);
  if (doProfile) backend.rt.setProfiling(false);
  const timer = hostTimer(backend);
  log(`backend ${backend.name}, kernels ${backend.kernels}, weights ${weights}, subgroups ≤ ${backend.rt.subgroupMax}`);
  for (const preset of presets) {
    const t0 = performance.now();
    const w0 = backend.weightBytes;
    const config = layers ? { ...PRESETS[preset], num_hidden_layers: Number(layers) } : PRESETS[preset];
    const lm = buildModel(config, preset, new RandomTensorSource(1), { backend });
    await backend.sync();
    const weightMB = (backend.weightBytes - w0) / 2 ** 20;
    log(`${preset} (${weights}): built in ${(performance.now() - t0).toFixed(0)} ms, ${f1(weightMB)} MiB of weights`);
    const V = lm.vocabSize;
    const ids = Array.from({ length: promptLen }, (_, i) => (i * 7919 + 13) % V);
    {
      const s = lm.createState(1);
      await lm.advance([ids], s);
      await decodeSteps(lm, s, [1], 4);
    }
    const prefill: number[] = [];
    const decode: number[] = [];
    const chained: number[] = [];
    let dispatches = 0, submits = 0, hostUs = 0;
    for (let r = 0; r < reps; r++) {
      const s = lm.createState(1);
      let t = performance.now();
      const l = await lm.advance([ids], s);
      prefill.push(performance.now() - t);
      let first = 0;
      for (let i = 1; i < V; i++) if (l.data[i] > l.data[first]) first = i;
      const c0 = { ...backend.rt.counters };
      const h0 = timer.total();
      t = performance.now();
      await decodeSteps(lm, s, [first], gen, timer);
      decode.push(performance.now() - t);
      dispatches = (backend.rt.counters.dispatches - c0.dispatches) / gen;
      submits = (backend.rt.counters.submits - c0.submits) / gen;
      hostUs = ((timer.total() - h0) / gen) * 1000;
      // the same number of greedy steps with the tokens kept on the GPU (queued, one read-back at the end),
      // which is how the official decode is timed (a CUDA graph replayed in a loop)
      t = performance.now();
      const ch = await lm.greedyChain!([[first]], s, gen);
      if (ch) chained.push(performance.now() - t);
    }
    // what a user gets: generate() greedy (chunks of on-device steps, one read-back per chunk)
    const genRes = await generate(lm, [ids.slice(0, 64)], { maxNewTokens: gen, stopTokens: [] });
    const generateTokS = genRes.stats.decodeTokensPerSecond;
    // batched greedy decode after a short prompt per sequence: total tokens/s over the batch, with each kernel path asked
    const batched: { batch: number; few_rows: boolean; tok_s: number; ms_per_step: number; chained_tok_s: number; check: Awaited<ReturnType<typeof batchCheck>> }[] = [];
    const batchProfiles: { what: string; gpu_ms: number; kernels: { kernel: string; ms: number; calls: number }[] }[] = [];
    for (const few of batches.length ? fewRowsModes : []) {
      backend.fewRows = few;
      for (const b of batches) {
        const s = lm.createState(b);
        const prompts = Array.from({ length: b }, (_, r) => Array.from({ length: batchPrompt }, (_, i) => (i * 31 + r * 997 + 5) % V));
        await lm.advance(prompts, s);
        const first = Array.from({ length: b }, (_, r) => (r * 13 + 1) % V);
        await decodeSteps(lm, s, first, 2);
        const n = Math.max(8, Math.round(gen / 2));
        const t = performance.now();
        await decodeSteps(lm, s, first, n);
        const ms = (performance.now() - t) / n;
        const tc = performance.now();
        await lm.greedyChain!(first.map((x) => [x]), s, n);
        const msc = (performance.now() - tc) / n;
        if (doProfile && b === Math.max(...batches)) {
          // a fresh state while profiling (recorded steps replay without timestamps, so none is recorded)
          backend.rt.setProfiling(true);
          const sp = lm.createState(b);
          await lm.advance(prompts, sp);
          await backend.sync();
          backend.rt.kernelTimes.clear();
          await decodeSteps(lm, sp, first, 4);
          await backend.sync();
          backend.rt.setProfiling(false);
          sp.dispose();
          const rows = [...backend.rt.kernelTimes].sort((a, c) => c[1].ms - a[1].ms);
          batchProfiles.push({ what: `decode step, batch ${b}, ${few ? 'few-rows' : 'former path'}`, gpu_ms: rows.reduce((a, [, v]) => a + v.ms, 0) / 4, kernels: rows.map(([k, v]) => ({ kernel: k, ms: v.ms / 4, calls: v.count / 4 })) });
        }
        s.dispose();
        const check = await batchCheck(lm, prompts, first, 8);
        if (!check.tokens_equal || check.logits_max_abs_diff > 1e-3) {
          process.exitCode = 1;
          log(`CHECK FAILED: ${preset} ${weights} batch ${b} (${few ? 'few-rows' : 'former path'}): ${check.mismatch ?? 'tokens equal'}, first-step logits differ by ${check.logits_max_abs_diff}`);
        }
        batched.push({ batch: b, few_rows: few, tok_s: (b * 1000) / ms, ms_per_step: ms, chained_tok_s: (b * 1000) / msc, check });
      }
    }
    backend.fewRows = true;
    const profiles: { what: string; gpu_ms: number; kernels: { kernel: string; ms: number; calls: number }[] }[] = [];
    if (doProfile) {
      backend.rt.setProfiling(true);
      const profile = async (what: string, run: () => Promise<void>, per: number) => {
        backend.rt.kernelTimes.clear();
        await run();
        await backend.sync();
        const rows = [...backend.rt.kernelTimes].sort((a, b) => b[1].ms - a[1].ms);
        const total = rows.reduce((a, [, v]) => a + v.ms, 0);
        profiles.push({ what, gpu_ms: total / per, kernels: rows.map(([k, v]) => ({ kernel: k, ms: v.ms / per, calls: v.count / per })) });
      };
      const s = lm.createState(1);
      await profile('prefill', async () => void (await lm.advance([ids], s)), 1);
      await profile('decode step', () => decodeSteps(lm, s, [1], 16), 16);
      backend.rt.setProfiling(false);
      profiles.push(...batchProfiles);
    }
    const res = {
      preset, weights, backend: backend.name, prompt: promptLen, gen, reps, weight_mib: weightMB,
      prefill_tok_s: promptLen / (median(prefill) / 1000), prefill_ms: prefill,
      decode_tok_s: gen / (median(decode) / 1000), decode_ms: decode,
      chained_tok_s: chained.length ? gen / (median(chained) / 1000) : null, chained_ms: chained,
      generate_tok_s: generateTokS,
      host_us_per_token: hostUs, dispatches_per_token: dispatches, submits_per_token: submits,
      batched, profile: profiles,
    };
    results.push(res);
    if (!json) {
      console.log(`${preset} ${weights}: prefill ${promptLen}: ${f1(res.prefill_tok_s)} tok/s (${prefill.map((m) => m.toFixed(1)).join(', ')} ms); decode: ${f1(res.decode_tok_s)} tok/s (${f1(1e6 / res.decode_tok_s)} µs/token, host ${f1(hostUs)} µs; ${dispatches} dispatches, ${submits} submits per token)`);
      if (res.chained_tok_s) console.log(`  decode with the tokens kept on the GPU (queued): ${f1(res.chained_tok_s)} tok/s; generate() greedy: ${f1(generateTokS)} tok/s`);
      for (const b of batched) {
        const one = batched.find((c) => c.batch === 1 && c.few_rows === b.few_rows);
        const ratio = one && b.batch !== 1 ? ` (${(b.chained_tok_s / one.chained_tok_s).toFixed(1)}× batch 1 on device, ${(b.tok_s / one.tok_s).toFixed(1)}× sync)` : '';
        const ck = b.check.tokens_equal ? `tokens = batch 1 (rows ${b.check.rows.join(', ')}, 9 steps)` : `TOKENS DIFFER (${b.check.mismatch})`;
        console.log(`  batch ${b.batch} [${b.few_rows ? 'few-rows' : 'former path'}]: ${f1(b.tok_s)} tok/s total sync (${b.ms_per_step.toFixed(3)} ms per step); on device ${f1(b.chained_tok_s)} tok/s${ratio}; ${ck}, first-step logits Δ ${b.check.logits_max_abs_diff.toExponential(1)}`);
      }
      for (const p of profiles) {
        console.log(`  GPU time per ${p.what}: ${p.gpu_ms.toFixed(3)} ms`);
        for (const k of p.kernels.slice(0, 10)) console.log(`    ${k.kernel.padEnd(20)} ${k.ms.toFixed(3)} ms  (${k.calls} calls, ${(k.ms / k.calls * 1000).toFixed(1)} µs each)`);
      }
    }
  }
  backend.destroy();
}
if (json) console.log(JSON.stringify(results));
