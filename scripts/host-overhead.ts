/**
 * Host-side cost of one WebGPU decode step (JavaScript: model code, recording, encoding, submit) at the
 * 130m layer structure but tiny widths, so that a CPU-emulated adapter finishes the GPU work quickly.
 * Measures the time from the call to the submit returning (flush), separately from the wait.
 *   node dist/scripts/host-overhead.js [--preset mamba-130m] [--steps 200]
 */
import { createWebGpuBackend } from '../src/backend/webgpu/index.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';

const arg = (n: string, d: string) => (process.argv.includes(`--${n}`) ? process.argv[process.argv.indexOf(`--${n}`) + 1] : d);
const preset = arg('preset', 'mamba-130m');
const steps = Number(arg('steps', '200'));
const small = { ...PRESETS[preset], hidden_size: 64, vocab_size: 512, intermediate_size: 128, time_step_rank: 4, num_heads: 8, head_dim: 16, state_size: 16, mamba_n_heads: 8, mamba_d_head: 16, mamba_d_state: 16, num_attention_heads: 4, num_key_value_heads: 4 };
const be = await createWebGpuBackend({ fuse: true, kernels: 'tiled' });
const lm = buildModel(small, preset, new RandomTensorSource(1), { backend: be });
const s = lm.createState(1);
await lm.advance([[1, 2, 3, 4]], s);
let flushMs = 0;
const flush = be.rt.flush.bind(be.rt);
let t0 = 0;
be.rt.flush = () => {
  flush();
  flushMs += performance.now() - t0;
};
for (let i = 0; i < 3; i++) await lm.advanceArgmax!([[5]], s);
flushMs = 0;
const d0 = be.rt.counters.dispatches;
const tw = performance.now();
for (let i = 0; i < steps; i++) {
  t0 = performance.now();
  await lm.advanceArgmax!([[5]], s);
}
const wall = (performance.now() - tw) / steps;
console.log(`${be.name} ${preset}: ${((be.rt.counters.dispatches - d0) / steps).toFixed(0)} dispatches/step; host time to submit ${(flushMs / steps * 1000).toFixed(0)} µs/step; wall ${(wall * 1000).toFixed(0)} µs/step`);
be.destroy();
