/**
 * Training throughput on WebGPU (issue 13): tokens per second of a training step — forward, softmax cross-entropy,
 * backward — on random weights and random tokens, float32, at the shapes of issue 13's speed table:
 *   tiny256 / tiny4096  the synthetic tasks' model: Mamba, 2 layers, d_model 64, d_state 16, vocab 32; batch 8, L 256 / 4096
 *   mamba2              the mamba2-130m shape, batch 8, L 2048
 *   mamba               the mamba-130m shape, batch 2, L 1024
 * `scripts/anchors/train_anchor.py` measures the same steps in PyTorch (HF's torch path; the official Triton SSD for
 * mamba2) — run it in the same device call and report ratios.
 *
 *   node dist/bench/train-gpu.bench.js [--shapes tiny256,tiny4096,mamba2,mamba] [--reps 5] [--layers n] [--optimizer] [--json]
 *
 * `--optimizer` times the whole training step as `mamba-ts train --backend webgpu` takes it: gradients dropped,
 * forward, backward (the graph freed on the way), global-norm clipping and AdamW on the GPU (src/train/device-optim.ts).
 *
 * Each line: the shape, tokens/s and ms per step (median of `--reps` timed steps after one warm-up), the GPU memory
 * high-water mark of a step, and the loss of the last step (read back once, to show the numbers are finite).
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

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const reps = Number(arg('reps', '5'));
const layers = arg('layers', '');
const json = process.argv.includes('--json');
const withOptimizer = process.argv.includes('--optimizer');
const log = (s: string) => process.stderr.write(s + '\n');

const TINY: RawConfig = { model_type: 'mamba', hidden_size: 64, num_hidden_layers: 2, state_size: 16, expand: 2, conv_kernel: 4, vocab_size: 32, tie_word_embeddings: true };
const SHAPES: Record<string, { config: RawConfig; b: number; L: number }> = {
  tiny256: { config: TINY, b: 8, L: 256 },
  tiny4096: { config: TINY, b: 8, L: 4096 },
  mamba2: { config: PRESETS['mamba2-130m'], b: 8, L: 2048 },
  mamba: { config: PRESETS['mamba-130m'], b: 2, L: 1024 },
};

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
  const loss = (await last!.data())[0];
  const st = backend.rt.stats();
  const row = { shape: name, b, L, layers: lm.numLayers, tokens_per_s: Math.round((b * L) / (ms / 1000)), ms_per_step: Number(ms.toFixed(1)), peak_mib: Math.round(st.peakDeviceBytes / 2 ** 20), loss, backend: backend.name, step: opt ? 'forward+backward+adamw' : 'forward+backward' };
  opt?.dispose();
  return row;
}

const backend = await createWebGpuBackend({ weights: 'f32' });
for (const name of arg('shapes', 'tiny256,tiny4096,mamba2,mamba').split(',')) {
  try {
    const r = await measure(backend, name);
    if (json) console.log(JSON.stringify(r));
    else console.log(`${name} (b${r.b} L${r.L}, ${r.layers} layers) on ${r.backend}: ${r.tokens_per_s} tok/s, ${r.ms_per_step} ms/step, peak ${r.peak_mib} MiB, loss ${Number(r.loss).toFixed(4)} (${r.step})`);
  } catch (e) {
    log(`${name}: ${(e as Error).message}`);
    if (json) console.log(JSON.stringify({ shape: name, error: (e as Error).message }));
  }
}
backend.destroy();
