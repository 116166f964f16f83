/**
 * WebGPU benchmark at the ~130M shapes (random weights, batch 1 unless asked): prefill of a `--prompt`-token
 * prompt, greedy decode after it with the argmax on the GPU (what `generate` does: 4 bytes read back per
 * sequence, as the official CUDA-graph decode keeps the token on the device), batched decode, and one
 * profiled pass (timestamp queries, one compute pass per dispatch) that says where the GPU time goes.
 *
 *   node dist/bench/webgpu.bench.js [--presets mamba-130m,mamba2-130m] [--weights f32,bf16,q8] [--prompt 2048]
 *        [--gen 128] [--reps 3] [--batch 1,8,32,64] [--batch-prompt 128] [--attention flash1,flash,flash-q32,flash-q64,legacy] [--fewrows off,on] [--decode-rows 0,16] [--no-profile] [--json]
 *        [--gemm old|tiled|sgmat|blocked|int8x1|int8x2|int8x3|int8x4] [--gemm-small blocked,old] [--gemm-small-min 9,2] [--batch-decode fused,fused-v1,old]
 *        [--profile-batches all|max|8,16] [--scan rescan|partials] [--decode v1,v2,v2-r2w128u,…]
 *        [--ssd fused|old|fused,old] [--kv-cache f32|bf16|f16] [--q8-tiles vector,scalar]
 *
 * `--gemm` / `--scan` pick the prefill GEMM and the Mamba-1 scan (default: the best the device has; `--gemm old --scan
 * partials` are the kernels of before); the kernels used are printed, and the prefill logits are checked against
 * those of the old kernels on the same device. `--ssd` picks the Mamba-2 SSD kernels (WebGpuBackendOptions.ssd; the
 * first listed runs everything); with several, the prefill and the largest batch's decode step are profiled with
 * each on the same device, and the prefill logits of each are checked against those of the old kernels.
 *   node dist/bench/webgpu.bench.js --memory [--presets …] [--weights …] [--prompt 2048] [--layers n] [--json]
 * `--decode v1,v2` runs each preset with each set of batch-1 decode kernels (WebGpuBackendOptions.decodeKernels: 'v1'
 * the matvec and step kernels before, 'fused' v1 in fewer dispatches, 'v2' the subgroup ones, 'v2-r{rows per subgroup}w{workgroup}{u|l}' its tunables)
 * on the same device; the first decode step's logits of every set are checked against the first set's (max |Δ| printed).
 * `--layers n` / `--vocab n` shrink the presets in either mode (smoke runs on SwiftShader); `--draws n` (default
 * 10,000): how many sampleRows draws the distribution check of the generate() rows makes.
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
 * "generate()" rows: the user path, greedy and sampled (temperature 0.8, top-p 0.95, top-k 50), pipelined (chunks queued
 * on the device, sampling there) beside `pipeline: false` (one chunk at a time; sampled: logits read back every
 * step), each checked on the device (see generateBench); a failed check prints CHECK FAILED and exits 1.
 *
 * Batched decode (`--batch`): total tok/s over the batch, sync and on device, then a check on the device that
 * batched greedy tokens equal batch-1 tokens for the same prompt (first and last row; logits of the first step
 * compared too: a kernel wrong on that GPU fails the run). `--fewrows off,on` measures the batch table with the
 * matvec up to 8 rows (default) and with the few-rows kernel (kernels/fewrows.ts) in the same run; every batch size
 * is profiled with each (`--profile-batches max`: the largest only, as before; or a list). `--gemm-small blocked,old`
 * does the same for the products of 9–128 rows: the skinny-M blocked GEMM (kernels/gemm_blocked.ts, split-K; the
 * default) and as before (`--gemm`'s kernel, or few-rows with `--fewrows on`); `--gemm-small-min 9,2` for the fewest
 * rows the blocked GEMM takes (WebGpuBackendOptions.gemmSmallMin: 9 the default, 2 = every batch on it);
 * `--decode-rows 0,16` for MATVEC_R at 2–16 rows off and on (WebGpuBackendOptions.decodeRows; session 33; 'auto': 2–4);
 * `--state-rows 1,4` for the rows of a head's state per subgroup in Mamba-2's batched decode step (decodeStateRows;
 * session 34); a list may repeat its values to alternate the passes (`--decode-rows 0,auto,0,auto`), and lists of
 * `--decode-rows`, `--state-rows` and `--batch-decode` of the same length zip (`--decode-rows 0,auto,0,auto --state-rows
 * 1,4,1,4 --batch-decode fused,fused2,fused,fused2`: four passes, before / new alternated);
 * `--batch-decode fused,fused-v1,old` for the kernels of batched steps (WebGpuBackendOptions.batchDecode: 'fused'
 * session 28's — Mamba-2's gated norm of 2–8 rows not folded into out_proj, the matvec's rows written from as many
 * lanes, the gated norm of decode rows a workgroup per row —, 'fused-v1' without them, 'old' also without the split-K
 * reduce + residual + RMSNorm in one dispatch); each mode checked against batch 1, the kernel that runs in_proj at each
 * batch size printed (`productKernelName`), and with profiling the GPU ms of each profiled step on its line, then
 * the kernels that took most of it.
 * "host µs/token" is the JavaScript side of a decode step (model code, recording, encoding, up to the submit
 * returning); the rest of the wall time is the GPU and the read-back.
 *
 * `--q8-tiles vector,scalar` (q8 weights): the prefill again with each of the tiled GEMM's q8 tile loads
 * (WebGpuBackendOptions.q8Tiles; the first listed runs everything else), the modes' repetitions interleaved on the same
 * model, their logits compared (the same products: the max relative Δ printed, > 1e-5 fails), and profiled with each.
 *
 * MAMBA_TS_WEBGPU_TRACE=1 prints the WebGPU calls of each timed prefill (src/backend/webgpu/trace.ts; bench/webgpu-wall.ts
 * breaks a rep down further).
 *
 * `--kv-cache bf16` (or f16) stores the attention presets' KV caches in 16 bits (the `kvCache` option; default f32): every
 * state the run makes; each preset's line says the state per sequence at the prompt + gen positions in that format.
 *
 * `--attention flash1,flash,legacy` runs each preset with each inference attention kernel set (WebGpuBackendOptions.attention:
 * 'flash' the flash prefill kernel (kernels/attention_prefill.ts, 32-query tiles; 'flash-q64' with 64-query tiles) + flash-decoding, 'flash1' the training forward as the
 * prefill kernel + flash-decoding, 'legacy' the one-workgroup-per-row kernel before them) on the same device. With
 * several sets, the attention op alone at the prompt's shape of each attention preset (1 × prompt × heads × head dim)
 * runs first with each set: output against the CPU reference (max |Δ| ≤ 1e-4, else CHECK FAILED) and GPU ms per call. Every run
 * checks its tokens on the device: the greedy decode (recorded steps replayed), the chained decode (tokens kept on
 * the GPU) from a copy of the same state, and the first 8 steps running the model code (no replay) must pick the same ids;
 * with both kernel sets, the prefill logits must agree within 1e-3 (the process exits 1 otherwise).
 */
import { WebGpuBackend, createWebGpuBackend } from '../src/backend/webgpu/index.js';
import { WEBGPU_ATTENTIONS, WEBGPU_BATCH_DECODES, WEBGPU_GEMMS_SMALL, WEBGPU_Q8_TILES, WEBGPU_SSDS, WEBGPU_STATE_ROWS, type WebGpuAttention, type WebGpuBatchDecode, type WebGpuGemm, type WebGpuGemmSmall, type WebGpuQ8Tiles, type WebGpuScan, type WebGpuSsd, type WebGpuWeights } from '../src/backend/webgpu/options.js';
import { zipOrCross } from './options.js';
import { maxRelErr } from '../src/backend/webgpu/backend.js';
import { nullGpuDevice } from './null-gpu.js';
import { attentionOpCheck, type AttentionShape } from './webgpu-attention-check.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';
import type { CausalLM } from '../src/models/causal-lm.js';
import { generate } from '../src/generate/generate.js';
import { KV_CACHE_FORMATS, type KvCacheDType } from '../src/tensor/dtype.js';
import { stateLayout } from './context-sweep.js';
import { prefillByQ8Tiles } from './q8-tiles.js';
import { countsSince, formatCounts } from '../src/backend/webgpu/trace.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const presets = arg('presets', 'mamba-130m,mamba2-130m').split(',');
const formats = arg('weights', 'f32').split(',') as WebGpuWeights[];
const promptLen = Number(arg('prompt', '2048'));
const gen = Number(arg('gen', '128'));
const reps = Number(arg('reps', '3'));
const batches = arg('batch', '').split(',').filter((s) => s).map(Number);
const batchPrompt = Number(arg('batch-prompt', '128'));
const fewRowsModes = arg('fewrows', 'off').split(',').map((m) => {
  if (m !== 'on' && m !== 'off') throw new Error(`--fewrows: on, off or on,off (got ${JSON.stringify(m)})`);
  return m === 'on';
});
const smallModes = arg('gemm-small', 'blocked').split(',').map((m) => {
  if (!(WEBGPU_GEMMS_SMALL as readonly string[]).includes(m)) throw new Error(`--gemm-small: ${WEBGPU_GEMMS_SMALL.join(', ')} or a list of them (got ${JSON.stringify(m)})`);
  return m as WebGpuGemmSmall;
});
const smallMins = arg('gemm-small-min', '').split(',').filter((m) => m).map((m) => {
  const n = Number(m);
  if (!Number.isInteger(n) || n < 1 || n > 129) throw new Error(`--gemm-small-min: integers from 1 to 129, e.g. 9,2 (got ${JSON.stringify(m)})`);
  return n;
});
// decodeRows (MATVEC_R at 2–n rows; 0 off; 'auto' 2–4), each value a mode of the batch table beside the others (a value
// may repeat: `0,auto,0,auto` alternates the modes, each pass over every batch size)
const rowsModes = arg('decode-rows', '').split(',').filter((m) => m).map((m): number | 'auto' => {
  if (m === 'auto') return m;
  const n = Number(m);
  if (!Number.isInteger(n) || n < 0 || n > 16 || n === 1) throw new Error(`--decode-rows: 0 (off), auto or integers from 2 to 16, e.g. 0,16 (got ${JSON.stringify(m)})`);
  return n;
});
// decodeStateRows (rows of a head's state per subgroup in Mamba-2's batched decode step; 1 the kernel of before), each a
// mode of the batch table (`1,4,1,4` alternates them)
const stateRowsModes = arg('state-rows', '').split(',').filter((m) => m).map((m) => {
  const n = Number(m);
  if (!(WEBGPU_STATE_ROWS as readonly number[]).includes(n)) throw new Error(`--state-rows: ${WEBGPU_STATE_ROWS.join(', ')} or a list of them, e.g. 1,4,1,4 (got ${JSON.stringify(m)})`);
  return n;
});
const profileBatches = arg('profile-batches', 'all');
const epiModes = arg('batch-decode', 'fused').split(',').map((m) => {
  if (!(WEBGPU_BATCH_DECODES as readonly string[]).includes(m)) throw new Error(`--batch-decode: ${WEBGPU_BATCH_DECODES.join(', ')} or a list of them (got ${JSON.stringify(m)})`);
  return m as WebGpuBatchDecode;
});
const q8TileModes = arg('q8-tiles', '').split(',').filter((m) => m).map((m) => {
  if (!(WEBGPU_Q8_TILES as readonly string[]).includes(m)) throw new Error(`--q8-tiles: ${WEBGPU_Q8_TILES.join(', ')} or a list of them (got ${JSON.stringify(m)})`);
  return m as WebGpuQ8Tiles;
});
const json = process.argv.includes('--json');
const doProfile = !process.argv.includes('--no-profile') && !process.argv.includes('--memory');
const memoryOnly = process.argv.includes('--memory');
const nullDevice = process.argv.includes('--null-device');
if (nullDevice && !memoryOnly) throw new Error('--null-device runs nothing: only with --memory');
const layers = arg('layers', '');
const attnModes = arg('attention', 'flash').split(',') as WebGpuAttention[];
for (const m of attnModes) if (!(WEBGPU_ATTENTIONS as readonly string[]).includes(m)) throw new Error(`--attention: ${WEBGPU_ATTENTIONS.join(', ')} or a list of them (got ${JSON.stringify(m)})`);
const decodeModes = arg('decode', '').split(',').filter((m) => m);
let failed = false;
/** a check of the results on the device: reported, and the process ends with status 1 */
function check(ok: boolean, what: string): void {
  if (!ok) {
    failed = true;
    log(`CHECK FAILED: ${what}`);
  }
}
const gemmArg = arg('gemm', '') as WebGpuGemm | '';
const scanArg = arg('scan', '') as WebGpuScan | '';
const ssdModes = arg('ssd', '').split(',').filter((m) => m) as WebGpuSsd[];
for (const m of ssdModes) if (!(WEBGPU_SSDS as readonly string[]).includes(m)) throw new Error(`--ssd: ${WEBGPU_SSDS.join(', ')} or a list of them (got ${JSON.stringify(m)})`);
const vocab = arg('vocab', '');
const kvCache = arg('kv-cache', 'f32') as KvCacheDType;
if (!KV_CACHE_FORMATS.includes(kvCache)) throw new Error(`--kv-cache: ${KV_CACHE_FORMATS.join(', ')} (got ${JSON.stringify(kvCache)})`);
const draws = Number(arg('draws', '10000'));
/** the preset, with `--layers` / `--vocab` when given (smoke runs on slow adapters such as SwiftShader) */
const shrunk = (preset: string) => ({ ...PRESETS[preset], ...(layers ? { num_hidden_layers: Number(layers) } : {}), ...(vocab ? { vocab_size: Number(vocab) } : {}) });
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

async function decodeSteps(lm: CausalLM, s: ReturnType<CausalLM['createState']>, first: number[], n: number, timer?: { start(): void }): Promise<number[][]> {
  let next = first;
  const out: number[][] = [];
  for (let i = 0; i < n; i++) {
    timer?.start();
    const ids = await lm.advanceArgmax!(next.map((t) => [t]), s);
    next = Array.from(ids!, (t) => Math.max(0, t));
    out.push(next);
  }
  return out;
}

/** greedy steps running the model code each time (forward with the state: nothing recorded or replayed) */
async function referenceSteps(lm: CausalLM, s: ReturnType<CausalLM['createState']>, first: number, n: number): Promise<number[]> {
  const out: number[] = [];
  let next = first;
  for (let i = 0; i < n; i++) {
    const l = (await lm.forward([[next]], { state: s, logitsToKeep: 1 })).logits.data;
    let best = 0;
    for (let j = 1; j < l.length; j++) if (l[j] > l[best]) best = j;
    out.push((next = best));
  }
  return out;
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
    preset, weights, kv_cache: lm.kvCache ?? 'f32', backend: backend.name, kernels: backend.kernels, prompt: ids.length, layers: lm.numLayers, prefill_ms: ms,
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

const SAMPLED = { doSample: true, temperature: 0.8, topP: 0.95, topK: 50 };

/**
 * generate() tok/s (median of `reps`), greedy and sampled, pipelined and pipeline: false, with checks run on the
 * device: pipelined greedy = the earlier path's tokens; the returned state = the prompt and the tokens read step by
 * step (one more step's logits); sampled: the same seed gives the same tokens, every drawn token is one the CPU
 * sampler keeps at its step; 10,000 draws of sampleRows at the model's vocabulary match the CPU distribution.
 */
async function generateBench(lm: CausalLM, prompt: number[]) {
  const fails: string[] = [], checks: string[] = [];
  const check = (ok: boolean, what: string) => {
    (ok ? checks : fails).push(what);
    if (!ok) {
      log(`CHECK FAILED: ${what}`);
      process.exitCode = 1;
    }
  };
  const run = async (o: Record<string, unknown>) => {
    const tok: number[] = [];
    let last: Awaited<ReturnType<typeof generate>> | null = null;
    for (let r = 0; r < Math.max(1, reps); r++) {
      last?.state.dispose();
      last = await generate(lm, [prompt], { maxNewTokens: gen, stopTokens: [], seed: 1234, ...o });
      tok.push(last.stats.decodeTokensPerSecond);
    }
    return { tok_s: median(tok), runs: tok, res: last! };
  };
  const [greedy, greedyOld, sampled, sampledOld] = [await run({}), await run({ pipeline: false }), await run({ ...SAMPLED, deviceSampling: true }), await run({ ...SAMPLED, pipeline: false })];
  check(JSON.stringify(greedy.res.generated) === JSON.stringify(greedyOld.res.generated), 'greedy pipelined = earlier path');
  const again = await generate(lm, [prompt], { maxNewTokens: gen, stopTokens: [], seed: 1234, ...SAMPLED, deviceSampling: true });
  check(JSON.stringify(again.generated) === JSON.stringify(sampled.res.generated), 'sampled: same seed, same tokens');
  again.state.dispose();
  // step by step: the states after the returned tokens, and each sampled token inside the CPU sampler's kept set
  const { Sampler } = await import('../src/generate/sampling.js');
  for (const [what, g] of [['greedy', greedy.res], ['sampled', sampled.res]] as const) {
    const s = lm.createState(1);
    let l = await lm.advance([prompt], s);
    let outside = 0;
    const toks = g.generated[0];
    for (let i = 0; i < toks.length; i++) {
      if (what === 'sampled' && i > 0) {
        const cpu = new Sampler(lm.vocabSize, { ...SAMPLED, seed: 1 });
        cpu.sample(l.data);
        if (cpu.lastProcessed()[toks[i]] === -Infinity) outside++;
      }
      l = await lm.advance([[toks[i]]], s);
    }
    const [a, b] = [await lm.advance([[7]], g.state), await lm.advance([[7]], s)];
    let d = 0;
    for (let i = 0; i < a.data.length; i++) d = Math.max(d, Math.abs(a.data[i] - b.data[i]));
    check(d <= 1e-4, `${what}: state after generate() vs step by step, next logits Δ ${d.toExponential(1)}`);
    if (what === 'sampled') check(outside === 0, `sampled: ${outside} of ${toks.length - 1} tokens outside the CPU sampler's kept set`);
    s.dispose();
  }
  // the kernel's distribution at the model's vocabulary: 10,000 draws from one row of logits
  const be = lm.backend;
  if (be.sampleRows) {
    const { philoxRows } = await import('../src/generate/rng.js');
    const V = lm.vocabSize, per = Math.min(2000, draws), n = Math.ceil(draws / per) * per; // batches of ≤ 2,000 rows (400 MB of logits at V 50k)
    const row = Float32Array.from({ length: V }, (_, i) => Math.sin(i * 12.9898) * 4);
    const x = new Float32Array(per * V);
    for (let r = 0; r < per; r++) x.set(row, r * V);
    const lt = be.fromHost(x, [per, V]);
    const ids: number[] = [];
    let ms = 0;
    for (let b = 0; b < n / per; b++) {
      const rng = be.fromHost(philoxRows(Array.from({ length: per }, (_, r) => b * per + r), new Array(per).fill(0)), [per, 8]);
      const t = performance.now();
      ids.push(...(await be.sampleRows(lt, { temperature: 0.8, topK: 50, topP: 0.95, minP: 0, repetitionPenalty: 1, rng, presence: null })));
      ms += performance.now() - t;
      rng.dispose();
    }
    lt.dispose();
    const cpu = new Sampler(V, { ...SAMPLED, seed: 1 });
    cpu.sample(row);
    const proc = cpu.lastProcessed();
    let m = -Infinity, z = 0;
    for (const v of proc) m = Math.max(m, v);
    const p = Array.from(proc, (v) => (v === -Infinity ? 0 : Math.exp(v - m)));
    p.forEach((v) => (z += v));
    const counts = new Map<number, number>();
    let outside = 0;
    for (const id of ids) {
      if (!(p[id] > 0)) outside++;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    let chi2 = 0, df = -1, poolE = 0, poolO = 0; // bins expecting < 5 draws pooled
    p.forEach((v, i) => {
      if (!(v > 0)) return;
      const e = (v / z) * n, o = counts.get(i) ?? 0;
      if (e < 5) {
        poolE += e;
        poolO += o;
      } else {
        chi2 += (o - e) ** 2 / e;
        df++;
      }
    });
    if (poolE > 0) {
      chi2 += (poolO - poolE) ** 2 / poolE;
      df++;
    }
    df = Math.max(1, df); // (few draws: every bin pooled)
    const crit = df * (1 - 2 / (9 * df) + 3.719 * Math.sqrt(2 / (9 * df))) ** 3;
    check(outside === 0 && chi2 < crit, `sampleRows ${n} draws over V ${V}: ${outside} outside the kept set, chi2 ${chi2.toFixed(1)} on ${df} df (critical ${crit.toFixed(1)}), ${(ms / (n / per)).toFixed(1)} ms per ${per} rows`);
  }
  for (const g of [greedy, greedyOld, sampled, sampledOld]) g.res.state.dispose();
  const strip = (g: typeof greedy) => ({ tok_s: g.tok_s, runs: g.runs });
  return { greedy: strip(greedy), greedy_old: strip(greedyOld), sampled: strip(sampled), sampled_old: strip(sampledOld), checks, failed: fails };
}

const results: Record<string, unknown>[] = [];
const newBackend = async (weights: WebGpuWeights): Promise<WebGpuBackend> =>
  nullDevice
    ? new WebGpuBackend(nullGpuDevice(), 'null device (allocations only)', { weights, kernels: arg('kernels', 'tiled') as 'tiled' | 'simple', subgroupMaxSize: 32, ...(ssdModes.length ? { ssd: ssdModes[0] } : {}) })
    : createWebGpuBackend({ profile: doProfile, weights, ...(q8TileModes.length ? { q8Tiles: q8TileModes[0] } : {}), ...(gemmArg ? { gemm: gemmArg } : {}), ...(scanArg ? { scan: scanArg } : {}), ...(ssdModes.length ? { ssd: ssdModes[0] } : {}), ...(arg('kernels', '') ? { kernels: arg('kernels', '') as 'tiled' | 'simple' } : {}) });
if (memoryOnly) {
  // a fresh device per model: what one model needs, not what the models before it left in the pools
  for (const weights of formats) {
    for (const preset of presets) {
      const backend = await newBackend(weights);
      const config = shrunk(preset);
      const lm = buildModel(config, preset, new RandomTensorSource(1), { backend, kvCache });
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
  log(`Mamba-1 scan: ${backend.scanKernel}; prefill GEMM: ${backend.gemm} → in_proj [${promptLen}, 768]×[3072, 768]ᵀ runs ${backend.gemmKernel(promptLen, 3072, weights).name}; subgroup matrices: ${backend.matrixNote}${backend.gemm.startsWith('int8') ? `; int8 GEMM: ${backend.int8.note}` : ''}`);
  const attnShapes: AttentionShape[] = presets.map((p) => PRESETS[p] as { hidden_size: number; num_attention_heads?: number; num_key_value_heads?: number }).filter((c) => c.num_attention_heads).map((c) => ({ b: 1, L: promptLen, Hq: c.num_attention_heads!, Hkv: c.num_key_value_heads ?? c.num_attention_heads!, hd: c.hidden_size / c.num_attention_heads! }));
  if (attnModes.length > 1 && attnShapes.length > 0) {
    const uniq = attnShapes.filter((s, i) => attnShapes.findIndex((t) => JSON.stringify(t) === JSON.stringify(s)) === i);
    const ops = await attentionOpCheck(backend, attnModes, uniq, 10, doProfile);
    for (const o of ops) {
      const { b, L, Hq, Hkv, hd } = o.shape;
      log(`attention op [${b}, ${L}, ${Hq}/${Hkv} heads, ${hd}] ${o.mode}${o.variant ? ` (${o.variant})` : ''}: ${o.gpu_ms.toFixed(3)} ms per call (${o.timestamps ? `GPU, ${o.kernels.join(' + ')}` : 'wall, queued'}); vs CPU max |Δ| ${o.max_abs_diff_vs_cpu.toExponential(2)}`);
      check(o.max_abs_diff_vs_cpu <= 1e-4, `attention op ${o.mode} [${b}, ${L}, ${Hq}/${Hkv}, ${hd}] differs from the CPU reference by ${o.max_abs_diff_vs_cpu}`);
    }
    results.push({ attention_op: ops });
  }
  for (const preset of presets) {
  const t0 = performance.now();
  const w0 = backend.weightBytes;
  const lm = buildModel(shrunk(preset), preset, new RandomTensorSource(1), { backend, kvCache });
  // the state one sequence holds at the prompt + gen positions (KV caches in their format, at the positions in use)
  const lay = stateLayout(lm);
  const stateMiB = MiB(lay.constBytes + lay.perPositionBytes * (promptLen + gen));
  await backend.sync();
  const weightMB = (backend.weightBytes - w0) / 2 ** 20;
  log(`${preset} (${weights}): built in ${(performance.now() - t0).toFixed(0)} ms, ${f1(weightMB)} MiB of weights`);
  let prefillLogits: Float32Array | null = null;
  let decodeLogits: { mode: string; data: Float32Array } | null = null;
  for (const [attention, decodeMode] of attnModes.flatMap((a) => (decodeModes.length ? decodeModes : ['']).map((d) => [a, d] as const))) {
    backend.attentionKernels = attention;
    if (decodeMode) backend.decodeKernels = decodeMode;
    let decodeParity: number | null = null;
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
    let checked = 'no chain';
    for (let r = 0; r < reps; r++) {
      const s = lm.createState(1);
      const k0 = backend.rt.trace ? { ...backend.rt.trace } : null;
      let t = performance.now();
      const l = await lm.advance([ids], s);
      prefill.push(performance.now() - t);
      // MAMBA_TS_WEBGPU_TRACE=1: the WebGPU calls of each timed prefill
      if (k0) log(`  rep ${r + 1} prefill ${promptLen} (${prefill[r].toFixed(1)} ms) WebGPU calls: ${formatCounts(countsSince(k0, backend.rt.trace!))}`);
      if (r === 0 && prefillLogits) {
        let d = 0, m = 0;
        for (let i = 0; i < V; i++) (d = Math.max(d, Math.abs(l.data[i] - prefillLogits[i]))), (m = Math.max(m, Math.abs(prefillLogits[i])));
        log(`  prefill logits, ${attention} vs ${attnModes[0]}: max |Δ| ${d.toExponential(2)} (max |logit| ${m.toFixed(2)})`);
        check(d <= 1e-3 * Math.max(1, m), `${preset}: prefill logits of ${attention} differ from ${attnModes[0]} by ${d}`);
      }
      if (r === 0 && !prefillLogits) prefillLogits = l.data.slice();
      let first = 0;
      for (let i = 1; i < V; i++) if (l.data[i] > l.data[first]) first = i;
      const copy = r === 0 ? [s.clone(), s.clone(), s.clone()] : null; // for the checks: the chain and the model code from the same state
      const c0 = { ...backend.rt.counters };
      const h0 = timer.total();
      t = performance.now();
      const stepped = (await decodeSteps(lm, s, [first], gen, timer)).map((x) => x[0]);
      decode.push(performance.now() - t);
      dispatches = (backend.rt.counters.dispatches - c0.dispatches) / gen;
      submits = (backend.rt.counters.submits - c0.submits) / gen;
      hostUs = ((timer.total() - h0) / gen) * 1000;
      // the same number of greedy steps with the tokens kept on the GPU (queued, one read-back at the end),
      // which is how the official decode is timed (a CUDA graph replayed in a loop)
      t = performance.now();
      const ch = await lm.greedyChain!([[first]], s, gen);
      if (ch) chained.push(performance.now() - t);
      if (copy) {
        const chain = (await lm.greedyChain!([[first]], copy[0], gen))?.map((x) => x[0]);
        const nRef = Math.min(8, gen);
        const ref = await referenceSteps(lm, copy[1], first, nRef);
        if (chain) check(chain.join() === stepped.join(), `${preset} ${attention}: chained tokens ${chain.slice(0, 16)}… differ from the stepped ${stepped.slice(0, 16)}…`);
        check(ref.join() === stepped.slice(0, nRef).join(), `${preset} ${attention}: model-code tokens ${ref} differ from the replayed ${stepped.slice(0, nRef)}`);
        checked = `${chain ? `chain = steps (${gen} tokens)` : 'no chain'}, model code = steps (${nRef} tokens): ${failed ? 'FAILED' : 'ok'}`;
        // the first decode step's logits against those of the first decode kernel set (a kernel wrong on this GPU shows)
        const dl = (await lm.advance([[first]], copy[2])).data;
        if (!decodeLogits) decodeLogits = { mode: backend.decodeKernels, data: dl.slice() };
        else {
          let d = 0, m = 0;
          for (let i = 0; i < V; i++) (d = Math.max(d, Math.abs(dl[i] - decodeLogits.data[i]))), (m = Math.max(m, Math.abs(decodeLogits.data[i])));
          decodeParity = d;
          log(`  decode logits, ${backend.decodeKernels} vs ${decodeLogits.mode}: max |Δ| ${d.toExponential(2)} (max |logit| ${m.toFixed(2)})`);
          check(d <= 1e-3 * Math.max(1, m), `${preset}: decode logits of ${backend.decodeKernels} differ from ${decodeLogits.mode} by ${d}`);
        }
        for (const c of copy) c.dispose();
      }
      s.dispose();
    }
    // the prefill's logits with the kernels timed against those of the old kernels (64×64 GEMM, 'partials' scan),
    // on this device: a kernel that is wrong on this GPU shows here
    let parity: number | null = null;
    const ssdParity: Record<string, number> = {};
    if (backend.gemm !== 'old' || backend.scan !== 'partials' || backend.ssdKernels !== 'old' || ssdModes.length > 1) {
      const saved = [backend.gemm, backend.scan, backend.ssdKernels] as const;
      backend.gemm = 'old';
      backend.scan = 'partials';
      backend.ssdKernels = 'old';
      const lOld = await lm.advance([ids], lm.createState(1));
      [backend.gemm, backend.scan] = [saved[0], saved[1]];
      for (const m of ssdModes.length ? ssdModes : [saved[2]]) {
        backend.ssdKernels = m;
        const lNew = await lm.advance([ids], lm.createState(1));
        ssdParity[m] = maxRelErr(lNew.data, lOld.data);
        if (m === saved[2]) parity = ssdParity[m];
        const ssdNote = preset.startsWith('mamba2') || ssdModes.length > 1 ? ` (ssd ${m})` : '';
        log(`${preset}: prefill logits vs the old kernels${ssdNote}: max |Δ| / max |logit| = ${ssdParity[m].toExponential(2)}${ssdParity[m] > 1e-2 ? '  FAIL' : ''}`);
        check(ssdParity[m] <= 1e-2, `${preset}: prefill logits${ssdNote} differ from the old kernels' by ${ssdParity[m]} of the largest`);
      }
      backend.ssdKernels = saved[2];
    }
    // what a user gets: generate(), greedy and sampled, pipelined (default) and the earlier path (pipeline: false)
    const gens = await generateBench(lm, ids.slice(0, 64));
    const generateTokS = gens.greedy.tok_s;
    // batched greedy decode after a short prompt per sequence: total tokens/s over the batch, with each kernel path asked
    const batched: { batch: number; decode_rows: number | 'auto'; state_rows: number; few_rows: boolean; gemm_small: WebGpuGemmSmall; gemm_small_min: number; epilogue: WebGpuBatchDecode; in_proj: string; tok_s: number; ms_per_step: number; chained_tok_s: number; gpu_ms_per_step: number | null; check: Awaited<ReturnType<typeof batchCheck>> }[] = [];
    const batchProfiles: { what: string; gpu_ms: number; kernels: { kernel: string; ms: number; calls: number }[] }[] = [];
    // (the fewest blocked rows only matter with the blocked GEMM)
    const mins = smallMins.length ? smallMins : [backend.gemmSmallMin];
    const rowsList = rowsModes.length ? rowsModes : [backend.decodeRows];
    const stateList = stateRowsModes.length ? stateRowsModes : [backend.decodeStateRows];
    // lists of --decode-rows, --state-rows and --batch-decode with more than one value and the same length are zipped
    // (pass i takes value i of each: `--decode-rows 0,auto,0,auto --state-rows 1,4,1,4 --batch-decode fused,fused2,fused,fused2`
    // is four passes, before / new alternated); otherwise every combination runs
    const passes = zipOrCross<[number | 'auto', number, WebGpuBatchDecode]>([rowsModes, stateRowsModes, epiModes], [rowsList[0], stateList[0], epiModes[0]]).map(([rows, sr, epi]) => ({ rows, sr, epi }));
    const modes = passes.flatMap(({ rows, sr, epi }) => fewRowsModes.flatMap((few) => smallModes.flatMap((small) => (small === 'blocked' ? mins : mins.slice(0, 1)).map((min) => ({ rows, sr, few, small, min, epi })))));
    const savedModes = [backend.fewRows, backend.gemmSmall, backend.batchDecode, backend.gemmSmallMin, backend.decodeRows, backend.decodeStateRows] as const;
    const profiled = (b: number) => doProfile && (profileBatches === 'all' || (profileBatches === 'max' ? b === Math.max(...batches) : profileBatches.split(',').map(Number).includes(b)));
    for (const { rows, sr, few, small, min, epi } of batches.length ? modes : []) {
      backend.decodeRows = rows;
      backend.decodeStateRows = sr;
      backend.fewRows = few;
      backend.gemmSmall = small;
      backend.gemmSmallMin = min;
      backend.batchDecode = epi;
      const path = `${rows ? `matvec-rows 2–${rows === 'auto' ? 'auto (4)' : rows}, ` : ''}${sr > 1 ? `state rows ${sr}, ` : ''}${few ? 'few-rows' : 'former path'}${small === 'blocked' ? `, blocked GEMM ≥ ${min} rows` : ''}, batch kernels ${epi}`;
      for (const b of batches) {
        const inProj = backend.productKernelName(b, preset.startsWith('mamba2') ? 3352 : 3072, 768);
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
        let gpuMs: number | null = null;
        for (const sm of profiled(b) ? (ssdModes.length > 1 ? ssdModes : [backend.ssdKernels]) : []) {
          const savedSsd = backend.ssdKernels;
          backend.ssdKernels = sm;
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
          backend.ssdKernels = savedSsd;
          batchProfiles.push({ what: `decode step, batch ${b}, ${path}${ssdModes.length > 1 ? `, ssd ${sm}` : ''}`, gpu_ms: rows.reduce((a, [, v]) => a + v.ms, 0) / 4, kernels: rows.map(([k, v]) => ({ kernel: k, ms: v.ms / 4, calls: v.count / 4 })) });
          gpuMs ??= batchProfiles[batchProfiles.length - 1].gpu_ms;
        }
        s.dispose();
        const check = await batchCheck(lm, prompts, first, 8);
        if (!check.tokens_equal || check.logits_max_abs_diff > 1e-3) {
          process.exitCode = 1;
          log(`CHECK FAILED: ${preset} ${weights} batch ${b} (${path}): ${check.mismatch ?? 'tokens equal'}, first-step logits differ by ${check.logits_max_abs_diff}`);
        }
        batched.push({ batch: b, decode_rows: rows, state_rows: sr, few_rows: few, gemm_small: small, gemm_small_min: min, epilogue: epi, in_proj: inProj, tok_s: (b * 1000) / ms, ms_per_step: ms, chained_tok_s: (b * 1000) / msc, gpu_ms_per_step: gpuMs, check });
      }
    }
    [backend.fewRows, backend.gemmSmall, backend.batchDecode, backend.gemmSmallMin, backend.decodeRows, backend.decodeStateRows] = savedModes;
    // the prefill with each q8 tile load, repetitions interleaved (A B, B A, …) on the same model
    const tileModes = weights === 'q8' && q8TileModes.length > 1 ? q8TileModes : [];
    const q8Tiles = tileModes.length ? await prefillByQ8Tiles(backend, lm, ids, tileModes, reps) : [];
    for (const q of q8Tiles) check(q.logits_max_rel_diff <= 1e-5, `${preset}: prefill logits with q8Tiles ${q.mode} differ from ${tileModes[0]}'s by ${q.logits_max_rel_diff} (relative)`);
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
      for (const sm of ssdModes.length > 1 ? ssdModes : [backend.ssdKernels]) {
        const savedSsd = backend.ssdKernels;
        backend.ssdKernels = sm;
        const sp = lm.createState(1);
        await profile(ssdModes.length > 1 ? `prefill, ssd ${sm}` : 'prefill', async () => void (await lm.advance([ids], sp)), 1);
        sp.dispose();
        backend.ssdKernels = savedSsd;
      }
      for (const m of tileModes) {
        const savedTiles = backend.q8Tiles;
        backend.q8Tiles = m;
        const sp = lm.createState(1);
        await profile(`prefill, q8 tiles ${m}`, async () => void (await lm.advance([ids], sp)), 1);
        sp.dispose();
        backend.q8Tiles = savedTiles;
      }
      await lm.advance([ids], s);
      await profile('decode step', async () => void (await decodeSteps(lm, s, [1], 16)), 16);
      backend.rt.setProfiling(false);
      profiles.push(...batchProfiles);
    }
    const res = {
      preset, weights, kv_cache: lay.grows ? kvCache : null, state_mib_per_seq: stateMiB, attention, decode_kernels: backend.decodeKernels, decode_logits_vs_first: decodeParity, checked, backend: backend.name, gemm: backend.gemmKernel(promptLen, 3072, weights).name, scan: backend.scanKernel, prompt: promptLen, gen, reps, weight_mib: weightMB,
      prefill_tok_s: promptLen / (median(prefill) / 1000), prefill_ms: prefill,
      decode_tok_s: gen / (median(decode) / 1000), decode_ms: decode,
      chained_tok_s: chained.length ? gen / (median(chained) / 1000) : null, chained_ms: chained,
      generate_tok_s: generateTokS, generate: gens,
      prefill_vs_old_kernels: parity, ssd: backend.ssdKernels, prefill_vs_old_kernels_by_ssd: ssdParity, q8_tiles: q8Tiles,
      host_us_per_token: hostUs, dispatches_per_token: dispatches, submits_per_token: submits,
      batched, profile: profiles,
    };
    results.push(res);
    if (!json) {
      console.log(`${preset} ${weights}${lay.grows ? ` KV ${kvCache}` : ''} attention ${attention} decode ${backend.decodeKernels} (${checked}): state ${stateMiB < 10 ? stateMiB.toFixed(2) : f1(stateMiB)} MiB/sequence at ${promptLen + gen} positions; prefill ${promptLen}: ${f1(res.prefill_tok_s)} tok/s (${prefill.map((m) => m.toFixed(1)).join(', ')} ms); decode: ${f1(res.decode_tok_s)} tok/s (${f1(1e6 / res.decode_tok_s)} µs/token, host ${f1(hostUs)} µs; ${dispatches} dispatches, ${submits} submits per token)`);
      if (res.chained_tok_s) console.log(`  decode with the tokens kept on the GPU (queued): ${f1(res.chained_tok_s)} tok/s; generate() greedy: ${f1(generateTokS)} tok/s`);
      console.log(`  generate() ${gen} tokens (prompt 64): greedy ${f1(gens.greedy.tok_s)} tok/s pipelined vs ${f1(gens.greedy_old.tok_s)} earlier path; sampled (T ${SAMPLED.temperature}, top-p ${SAMPLED.topP}, top-k ${SAMPLED.topK}) ${f1(gens.sampled.tok_s)} tok/s on the GPU vs ${f1(gens.sampled_old.tok_s)} on the host; checks: ${gens.checks.join('; ')}`);
      for (const q of q8Tiles) console.log(`  prefill ${promptLen}, q8 tiles ${q.mode}: ${f1(q.prefill_tok_s)} tok/s (${q.prefill_ms.map((m) => m.toFixed(1)).join(', ')} ms, interleaved); logits vs ${q8Tiles[0].mode}: max relative Δ ${q.logits_max_rel_diff.toExponential(1)}`);
      for (const b of batched) {
        const one = batched.find((c) => c.batch === 1 && c.decode_rows === b.decode_rows && c.few_rows === b.few_rows && c.gemm_small === b.gemm_small && c.gemm_small_min === b.gemm_small_min && c.epilogue === b.epilogue);
        const ratio = one && b.batch !== 1 ? ` (${(b.chained_tok_s / one.chained_tok_s).toFixed(1)}× batch 1 on device, ${(b.tok_s / one.tok_s).toFixed(1)}× sync)` : '';
        const ck = b.check.tokens_equal ? `tokens = batch 1 (rows ${b.check.rows.join(', ')}, 9 steps)` : `TOKENS DIFFER (${b.check.mismatch})`;
        const gpu = b.gpu_ms_per_step === null ? '' : `; GPU ${b.gpu_ms_per_step.toFixed(3)} ms per step (profiled)`;
        console.log(`  batch ${b.batch} [${b.decode_rows ? `matvec-rows 2–${b.decode_rows}, ` : ''}${b.few_rows ? 'few-rows' : 'former path'}${b.gemm_small === 'blocked' ? `, blocked GEMM ≥ ${b.gemm_small_min} rows` : ''}, batch kernels ${b.epilogue}; in_proj: ${b.in_proj}]: ${f1(b.tok_s)} tok/s total sync (${b.ms_per_step.toFixed(3)} ms per step); on device ${f1(b.chained_tok_s)} tok/s${ratio}${gpu}; ${ck}, first-step logits Δ ${b.check.logits_max_abs_diff.toExponential(1)}`);
      }
      for (const p of profiles) {
        console.log(`  GPU time per ${p.what}: ${p.gpu_ms.toFixed(3)} ms`);
        for (const k of p.kernels.slice(0, 10)) console.log(`    ${k.kernel.padEnd(20)} ${k.ms.toFixed(3)} ms  (${k.calls} calls, ${(k.ms / k.calls * 1000).toFixed(1)} µs each)`);
      }
    }
  }
  }
  backend.destroy();
}
if (json) console.log(JSON.stringify(results));
if (failed) {
  log('some checks of the results on the device failed (see CHECK FAILED above)');
  process.exitCode = 1;
}
