/**
 * WebGPU benchmark at the mamba-130m and mamba2-130m shapes (random weights, float32, batch 1): prefill of
 * a 2048-token prompt and greedy decode after it, then one profiled pass of each (timestamp queries, one
 * compute pass per dispatch) that says where the GPU time goes, kernel by kernel.
 *
 *   node dist/bench/webgpu.bench.js [--presets mamba-130m,mamba2-130m] [--prompt 2048] [--gen 128] [--reps 3] [--json]
 *
 * Decode time per token is the wall clock of `advance` (encode + submit + GPU + the logits readback);
 * "dispatches/token" counts what one decode step records.
 */
import { argmax } from '../src/generate/sampling.js';
import { createWebGpuBackend } from '../src/backend/webgpu/index.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const presets = arg('presets', 'mamba-130m,mamba2-130m').split(',');
const promptLen = Number(arg('prompt', '2048'));
const gen = Number(arg('gen', '128'));
const reps = Number(arg('reps', '3'));
const json = process.argv.includes('--json');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const log = (s: string) => process.stderr.write(s + '\n');

const backend = await createWebGpuBackend({ profile: true });
backend.rt.setProfiling(false);
log(`backend ${backend.name}, kernels ${backend.kernels}, subgroups ≤ ${backend.rt.subgroupMax}`);
const results: Record<string, unknown>[] = [];
for (const preset of presets) {
  const t0 = performance.now();
  const lm = buildModel(PRESETS[preset], preset, new RandomTensorSource(1), { backend });
  await backend.sync();
  log(`${preset}: built in ${(performance.now() - t0).toFixed(0)} ms`);
  const V = lm.vocabSize;
  const ids = Array.from({ length: promptLen }, (_, i) => (i * 7919 + 13) % V);
  {
    const s = lm.createState(1);
    const l = await lm.advance([ids], s);
    await lm.advance([[argmax(l.data)]], s);
  }
  const prefill: number[] = [];
  const decode: number[] = [];
  let dispatches = 0, submits = 0;
  for (let r = 0; r < reps; r++) {
    const s = lm.createState(1);
    let t = performance.now();
    let l = await lm.advance([ids], s);
    prefill.push(performance.now() - t);
    const c0 = { ...backend.rt.counters };
    t = performance.now();
    for (let i = 0; i < gen; i++) l = await lm.advance([[argmax(l.data)]], s);
    decode.push(performance.now() - t);
    dispatches = (backend.rt.counters.dispatches - c0.dispatches) / gen;
    submits = (backend.rt.counters.submits - c0.submits) / gen;
  }
  // where the GPU time goes: one prefill and 16 decode steps with a timestamp per dispatch
  backend.rt.setProfiling(true);
  const profile = async (what: string, run: () => Promise<void>, per: number) => {
    backend.rt.kernelTimes.clear();
    await run();
    await backend.sync();
    const rows = [...backend.rt.kernelTimes].sort((a, b) => b[1].ms - a[1].ms);
    const total = rows.reduce((a, [, v]) => a + v.ms, 0);
    return { what, gpu_ms: total / per, kernels: rows.map(([k, v]) => ({ kernel: k, ms: v.ms / per, calls: v.count / per })) };
  };
  const s = lm.createState(1);
  const profPrefill = await profile('prefill', async () => void (await lm.advance([ids], s)), 1);
  const profDecode = await profile('decode step', async () => {
    for (let i = 0; i < 16; i++) await lm.advance([[i + 1]], s);
  }, 16);
  backend.rt.setProfiling(false);
  const res = {
    preset, backend: backend.name, prompt: promptLen, gen, reps,
    prefill_tok_s: promptLen / (median(prefill) / 1000), prefill_ms: prefill,
    decode_tok_s: gen / (median(decode) / 1000), decode_ms: decode,
    dispatches_per_token: dispatches, submits_per_token: submits,
    profile: [profPrefill, profDecode],
  };
  results.push(res);
  if (!json) {
    const f = (x: number) => x.toFixed(1);
    console.log(`${preset}: prefill ${promptLen}: ${f(res.prefill_tok_s)} tok/s (${prefill.map((m) => m.toFixed(1)).join(', ')} ms); decode: ${f(res.decode_tok_s)} tok/s (${f(1000 / res.decode_tok_s * 1000)} µs/token, ${dispatches} dispatches, ${submits} submits per token)`);
    for (const p of res.profile) {
      console.log(`  GPU time per ${p.what}: ${p.gpu_ms.toFixed(3)} ms`);
      for (const k of p.kernels.slice(0, 10)) console.log(`    ${k.kernel.padEnd(20)} ${k.ms.toFixed(3)} ms  (${k.calls} calls, ${(k.ms / k.calls * 1000).toFixed(1)} µs each)`);
    }
  }
}
if (json) console.log(JSON.stringify(results));
backend.destroy();
