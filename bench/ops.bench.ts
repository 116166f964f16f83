/**
 * Every op of the op layer at the mamba-130m shapes (H 768, D 1536, N 16; Mamba-2: 24 heads × 64, N 128), one
 * prefill of L tokens (the scan and SSD in each backend's default prefill algorithm): forward milliseconds per backend (cpu, wasm, webgpu when an adapter exists) and, for the
 * ops the tape records, forward + backward through the tape on the backends that train.
 *
 *   node dist/bench/ops.bench.js [--len 256] [--reps 5] [--backends cpu,wasm,webgpu] [--threads N]
 */
import { prefillSupport, type Backend } from '../src/backend/backend.js';
import { cpu } from '../src/backend/cpu/index.js';
import { WasmBackend } from '../src/backend/wasm/index.js';
import { createWebGpuBackend } from '../src/backend/webgpu/index.js';
import { backward, withGrad } from '../src/autograd/tape.js';
import * as ops from '../src/tensor/ops.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { machineInfo, machineLine, markdownTable, median } from './report.js';

interface Bench {
  op: string;
  inputs: Array<{ shape: number[]; lo?: number; hi?: number; matrix?: boolean }>;
  /** `be`: the backend, for its default prefill algorithms */
  run(xs: Tensor[], be: Backend): Tensor[];
  /** recorded by the tape (training) */
  grad: boolean;
}

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
};
const L = Number(arg('len', '256'));
const reps = Number(arg('reps', '5'));
const H = 768, D = 1536, N = 16, K = 4, V = 50280;
const nh = 24, hd = 64, N2 = 128;

const BENCHES: Bench[] = [
  { op: 'embedding', inputs: [{ shape: [V, H], matrix: true }], run: ([t]) => [ops.embedding(t, Int32Array.from({ length: L }, (_, i) => (i * 7919) % V), [1, L, H])], grad: true },
  { op: `linear ${2 * D}×${H} (in_proj)`, inputs: [{ shape: [1, L, H] }, { shape: [2 * D, H], matrix: true }], run: ([x, w]) => [ops.linear(x, w)], grad: true },
  { op: `linear ${H}×${D} (out_proj)`, inputs: [{ shape: [1, L, D] }, { shape: [H, D], matrix: true }], run: ([x, w]) => [ops.linear(x, w)], grad: true },
  { op: 'rms_norm', inputs: [{ shape: [1, L, H] }, { shape: [H] }], run: ([x, w]) => [ops.rmsNorm(x, w, 1e-5)], grad: true },
  { op: 'rms_norm_gated', inputs: [{ shape: [1, L, D] }, { shape: [1, L, D] }, { shape: [D] }], run: ([x, z, w]) => [ops.rmsNormGated(x, z, w, 1e-5, D)], grad: true },
  { op: 'add', inputs: [{ shape: [1, L, H] }, { shape: [1, L, H] }], run: ([a, b]) => [ops.add(a, b)], grad: true },
  { op: 'activation silu', inputs: [{ shape: [1, L, D] }], run: ([x]) => [ops.activation(x, 'silu')], grad: true },
  { op: 'split', inputs: [{ shape: [1, L, 2 * D] }], run: ([x]) => ops.split(x, [D, D]), grad: true },
  { op: 'causal_conv1d', inputs: [{ shape: [1, L, D] }, { shape: [D, K] }, { shape: [D] }], run: ([x, w, b]) => [ops.causalConv1d({ x, weight: w, bias: b, state: null, activation: 'silu' })], grad: true },
  {
    op: 'selective_scan',
    inputs: [{ shape: [1, L, D] }, { shape: [1, L, D], lo: -4, hi: -1 }, { shape: [D, N], lo: -8, hi: -0.5 }, { shape: [1, L, N] }, { shape: [1, L, N] }, { shape: [D] }, { shape: [1, L, D] }, { shape: [D] }],
    run: ([u, delta, A, B, C, Dd, z, bias], be) => [ops.selectiveScan({ u, delta, A, B, C, D: Dd, z, deltaBias: bias, deltaSoftplus: true, state: null, algorithm: prefillSupport(be).scan[0], chunkSize: 64 })],
    grad: true,
  },
  {
    op: `ssd (${nh}×${hd}, N ${N2})`,
    inputs: [{ shape: [1, L, nh, hd] }, { shape: [1, L, nh], lo: -4, hi: -1 }, { shape: [nh], lo: -8, hi: -0.5 }, { shape: [1, L, 1, N2] }, { shape: [1, L, 1, N2] }, { shape: [nh] }, { shape: [nh] }],
    run: ([x, dt, A, B, C, Dd, bias], be) => [ops.ssd({ x, dt, A, B, C, D: Dd, dtBias: bias, dtLimit: [0, Infinity], state: null, algorithm: prefillSupport(be).ssd[0], chunkSize: 64 })],
    grad: true,
  },
  {
    op: 'attention (12×64, causal)',
    inputs: [{ shape: [1, L, 12, 64] }, { shape: [1, L, 12, 64] }, { shape: [1, L, 12, 64] }],
    run: ([q, k, v]) => [ops.attention({ q, k, v, cacheK: null, cacheV: null, pastLen: [0], scale: 0.125 })],
    grad: true,
  },
  { op: 'rope', inputs: [{ shape: [1, L, 12, 64] }], run: ([x]) => [ops.rope(x, Int32Array.from({ length: L }, (_, i) => i), 64, 10000)], grad: true },
  { op: 'cross_entropy (vocab 50280)', inputs: [{ shape: [L, V], lo: -3, hi: 3 }], run: ([l]) => [ops.softmaxCrossEntropy(l, Int32Array.from({ length: L }, (_, i) => (i * 31) % V)).loss], grad: true },
];

function upload(be: Backend, b: Bench): Tensor[] {
  let s = 12345;
  return b.inputs.map((spec) => {
    const n = spec.shape.reduce((a, c) => a * c, 1);
    const lo = spec.lo ?? -1, hi = spec.hi ?? 1;
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      d[i] = lo + ((hi - lo) * s) / 2 ** 32;
    }
    return be.fromHost(d, spec.shape, spec.matrix ? { matrix: true } : undefined);
  });
}

async function time(f: () => Promise<unknown>): Promise<number> {
  await f(); // warm-up (kernel compilation, JIT)
  const ms: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await f();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

async function main(): Promise<void> {
  const want = arg('backends', 'cpu,wasm,webgpu').split(',');
  const backends: Array<[string, Backend]> = [];
  if (want.includes('cpu')) backends.push(['cpu', cpu]);
  if (want.includes('wasm')) backends.push(['wasm', new WasmBackend({ threads: Number(arg('threads', '0')) || undefined })]);
  if (want.includes('webgpu')) {
    try {
      backends.push(['webgpu', await createWebGpuBackend()]);
    } catch (e) {
      console.error(`webgpu: skipped (${(e as Error).message.split('\n')[0]})`);
    }
  }
  const rows: string[][] = [];
  for (const b of BENCHES) {
    const row = [b.op];
    for (const [, be] of backends) {
      const xs = upload(be, b);
      row.push((await time(async () => Promise.all(b.run(xs, be).map((t) => t.data())))).toFixed(2));
    }
    for (const [, be] of backends) {
      if (!be.differentiable || !b.grad) {
        row.push('—');
        continue;
      }
      const xs = upload(be, b);
      xs.forEach((x) => (x.requiresGrad = true));
      row.push((await time(async () => {
        xs.forEach((x) => (x.grad = null));
        const outs = await withGrad(() => b.run(xs, be));
        for (const o of outs) backward(o, 1);
        return Promise.all(xs.map((x) => x.grad?.data()));
      })).toFixed(2));
    }
    rows.push(row);
    process.stderr.write('.');
  }
  process.stderr.write('\n');
  console.log(`Ops at the mamba-130m shapes, one prefill of L = ${L} tokens (batch 1), median of ${reps} runs, milliseconds (results read back).`);
  console.log(`Machine: ${machineLine(machineInfo())}; node ${process.version}; ${new Date().toISOString()}.`);
  console.log(`Command: node dist/bench/ops.bench.js ${process.argv.slice(2).join(' ')}`.trimEnd() + '\n');
  console.log(markdownTable({
    head: ['op', ...backends.map(([n]) => `${n} fwd`), ...backends.map(([n]) => `${n} fwd+bwd (tape)`)],
    rows,
    align: ['l', ...backends.map(() => 'r' as const), ...backends.map(() => 'r' as const)],
  }));
  for (const [, be] of backends) (be as { destroy?: () => void }).destroy?.();
}

await main();
