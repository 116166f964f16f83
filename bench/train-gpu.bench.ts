/**
 * Training throughput on WebGPU (issue 13): tokens per second of a training step — forward, softmax cross-entropy,
 * backward — on random weights and random tokens, float32, at the shapes of issue 13's speed table:
 *   tiny256 / tiny4096  the synthetic tasks' model: Mamba, 2 layers, d_model 64, d_state 16, vocab 32; batch 8, L 256 / 4096
 *   mamba2              the mamba2-130m shape, batch 8, L 2048
 *   mamba               the mamba-130m shape, batch 2, L 1024
 *   llama / hybrid      the llama-130m / hybrid-130m shapes (our Transformer baseline and Bamba-style hybrid), batch 8, L 2048
 *   mqar-mamba, mqar-mamba2, mqar-llama, mqar-hybrid   the MQAR presets' models (d_model 128, vocab 8192), batch 64, L 256
 * `scripts/anchors/train_anchor.py` measures the same steps in PyTorch (HF's torch path; the official Triton SSD for
 * mamba2) — run it in the same device call and report ratios.
 *
 *   node dist/bench/train-gpu.bench.js [--shapes tiny256,tiny4096,mamba2,mamba] [--reps 5] [--layers n] [--optimizer] [--profile] [--json]
 *
 * `--optimizer` times the whole training step as `mamba-ts train --backend webgpu` takes it: gradients dropped,
 * forward, backward (the graph freed on the way), global-norm clipping and AdamW on the GPU (src/train/device-optim.ts).
 *
 * Each line: the shape, tokens/s and ms per step (median of `--reps` timed steps after one warm-up), the GPU memory
 * high-water mark of a step, and the loss of the last step (read back once, to show the numbers are finite).
 * `--profile` adds one step timed per kernel (timestamp queries; the slowest 15 kernels). Every line also says how many
 * dispatches and pipeline compiles the step after the timed ones recorded.
 * `--layers n` builds the 130m shapes with n layers (same widths), for slow adapters.
 */
import { createWebGpuBackend, type WebGpuBackend } from '../src/backend/webgpu/index.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';
import { DecoderLM } from '../src/models/decoder.js';
import { backward, withGrad } from '../src/autograd/tape.js';
import type { Tensor } from '../src/tensor/tensor.js';
import type { RawConfig } from '../src/models/config.js';
import { DeviceParam } from '../src/train/device-param.js';
import { DeviceAdamW } from '../src/train/device-optim.js';
import { buildJob, DEFAULT_ARGS } from '../src/train/jobs.js';
import { PRESETS as TRAIN_PRESETS } from '../src/train/presets.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const reps = Number(arg('reps', '5'));
const layers = arg('layers', '');
const json = process.argv.includes('--json');
const withOptimizer = process.argv.includes('--optimizer');
const profile = process.argv.includes('--profile');
const log = (s: string) => process.stderr.write(s + '\n');

const TINY: RawConfig = { model_type: 'mamba', hidden_size: 64, num_hidden_layers: 2, state_size: 16, expand: 2, conv_kernel: 4, vocab_size: 32, tie_word_embeddings: true };
const SHAPES: Record<string, { config: RawConfig; b: number; L: number }> = {
  tiny256: { config: TINY, b: 8, L: 256 },
  tiny4096: { config: TINY, b: 8, L: 4096 },
  mamba2: { config: PRESETS['mamba2-130m'], b: 8, L: 2048 },
  mamba: { config: PRESETS['mamba-130m'], b: 2, L: 1024 },
  llama: { config: PRESETS['llama-130m'], b: 8, L: 2048 },
  hybrid: { config: PRESETS['hybrid-130m'], b: 8, L: 2048 },
};
// the MQAR presets' models (EXPERIMENTS.md §4: d_model 128, vocab 8192, batch 64 × 256), as `mamba-ts train` builds them
// (the model built only when its shape is measured)
for (const arch of ['mamba', 'mamba2', 'llama', 'hybrid']) {
  const a = { ...DEFAULT_ARGS, ...TRAIN_PRESETS[`mqar-${arch}`].args };
  SHAPES[`mqar-${arch}`] = { get config() { return buildJob(a).model.configJson() as RawConfig; }, b: a.batch, L: a.seqLen };
}

async function measure(backend: WebGpuBackend, name: string): Promise<Record<string, unknown>> {
  const s = SHAPES[name];
  if (!s) throw new Error(`unknown shape ${name} (one of ${Object.keys(SHAPES).join(', ')})`);
  const config = layers && name !== 'tiny256' && name !== 'tiny4096' ? { ...s.config, num_hidden_layers: Number(layers) } : s.config;
  const lm = buildModel(config, name, new RandomTensorSource(1), { backend });
  if (!(lm instanceof DecoderLM)) throw new Error(`${name}: not a decoder LM`);
  const params: Tensor[] = [];
  for (const e of lm.parameters.values()) for (const p of e.parts) (p.tensor.requiresGrad = true), params.push(p.tensor);
  const opt = withOptimizer ? new DeviceAdamW([...lm.parameters.values()].map((e) => new DeviceParam(e)), { lr: 1e-4, betas: [0.9, 0.95], weightDecay: 0.1 }) : null;
  const V = lm.vocabSize, { b, L } = s;
  let seed = 12345;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % V;
  const rows = Array.from({ length: b }, () => Array.from({ length: L }, rnd));
  const targets = Int32Array.from(rows.flatMap((r) => [...r.slice(1), -100]));
  let last: Tensor | null = null;
  const step = async (): Promise<void> => {
    for (const p of params) {
      p.grad?.dispose();
      p.grad = null;
    }
    const loss = await withGrad(async () => (await lm.lossTensor(rows, targets)).loss);
    backward(loss, 1, { free: true, keep: [loss] });
    opt?.clipAndStep(1e-4, 1.0).dispose();
    (last as Tensor | null)?.dispose();
    last = loss;
    await backend.sync();
  };
  await step();
  backend.rt.resetPeak();
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await step();
    times.push(performance.now() - t0);
  }
  const ms = [...times].sort((x, y) => x - y)[Math.floor(times.length / 2)];
  // pipelines compiled and dispatches recorded per step (a step that compiles is not at its steady state)
  const c0 = backend.rt.compiles, d0 = backend.rt.counters.dispatches;
  const tc = performance.now();
  await step();
  const countMs = performance.now() - tc;
  const compiles = backend.rt.compiles - c0, dispatches = backend.rt.counters.dispatches - d0;
  let kernels: { kernel: string; ms: number; calls: number }[] = [];
  let gpuMs = 0;
  if (profile) {
    backend.rt.setProfiling(true);
    backend.rt.kernelTimes.clear();
    await step();
    backend.rt.setProfiling(false);
    const rows = [...backend.rt.kernelTimes].sort((x, y) => y[1].ms - x[1].ms);
    gpuMs = rows.reduce((a, [, v]) => a + v.ms, 0);
    kernels = rows.slice(0, 15).map(([k, v]) => ({ kernel: k, ms: Number(v.ms.toFixed(2)), calls: v.count }));
  }
  const loss = (await last!.data())[0];
  const st = backend.rt.stats();
  const row = { shape: name, b, L, layers: lm.numLayers, tokens_per_s: Math.round((b * L) / (ms / 1000)), ms_per_step: Number(ms.toFixed(1)), peak_mib: Math.round(st.peakDeviceBytes / 2 ** 20), loss, backend: backend.name, step: opt ? 'forward+backward+adamw' : 'forward+backward', compiles_per_step: compiles, dispatches_per_step: dispatches, last_step_ms: Number(countMs.toFixed(1)), ...(profile ? { gpu_ms: Number(gpuMs.toFixed(1)), kernels } : {}) };
  opt?.dispose();
  return row;
}

// one device per shape: the memory high-water mark is that shape's alone
for (const name of arg('shapes', 'tiny256,tiny4096,mamba2,mamba').split(',')) {
  const backend = await createWebGpuBackend({ weights: 'f32', profile });
  try {
    const r = await measure(backend, name);
    if (json) console.log(JSON.stringify(r));
    else {
      console.log(`${name} (b${r.b} L${r.L}, ${r.layers} layers) on ${r.backend}: ${r.tokens_per_s} tok/s, ${r.ms_per_step} ms/step, peak ${r.peak_mib} MiB, loss ${Number(r.loss).toFixed(4)} (${r.step}); ${r.dispatches_per_step} dispatches and ${r.compiles_per_step} compiles in the step after`);
      if (r.kernels) console.log(`  profiled step: ${r.gpu_ms} ms of GPU time; ${(r.kernels as { kernel: string; ms: number; calls: number }[]).map((k) => `${k.kernel} ${k.ms} ms ×${k.calls}`).join(', ')}`);
    }
  } catch (e) {
    log(`${name}: ${(e as Error).message}`);
    if (json) console.log(JSON.stringify({ shape: name, error: (e as Error).message }));
  } finally {
    backend.destroy();
  }
}
