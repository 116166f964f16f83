/**
 * Where the time of one training step goes: forward and backward milliseconds per differentiable op (the ops the
 * tape records, as `cpu.differentiable` runs them), for a Mamba-1 LM at the shape of issue 12 by default:
 * d_model 256 × 4 layers (d_inner 512, N 16, dt_rank 16, byte vocab 256), batch 8 × 64 tokens, float32, one thread
 * (no optimizer step: forward + backward only).
 *
 *   node dist/bench/train-profile.js [--steps 10] [--batch 8] [--seq 64] [--hidden 256] [--layers 4] [--json]
 *
 * Prints tokens/s (median and best step), the median step's split into forward and backward, and per op the median
 * over the steps of its forward and backward time; "(outside ops)" is the rest of the step (the tape's bookkeeping,
 * gradient accumulation between ops). On a machine shared with other work, compare runs made back to back, and look
 * at the best step as well as the median.
 */
import { cpu } from '../src/backend/cpu/index.js';
import type { DiffAttrs, DiffOp, Differentiated } from '../src/backend/backend.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { backward, withGrad } from '../src/autograd/tape.js';
import { TrainableLM } from '../src/train/lm.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
const steps = arg('steps', 10);
const b = arg('batch', 8);
const L = arg('seq', 64);
const hidden = arg('hidden', 256);
const layers = arg('layers', 4);
const json = process.argv.includes('--json');

// per-step op times
let fwd = new Map<string, number>();
let bwd = new Map<string, number>();
const add = (m: Map<string, number>, k: string, v: number): void => void m.set(k, (m.get(k) ?? 0) + v);
const orig = cpu.differentiable.bind(cpu);
cpu.differentiable = (op: DiffOp, inputs: readonly (Tensor | null)[], attrs: DiffAttrs): Differentiated => {
  const t0 = performance.now();
  const r = orig(op, inputs, attrs);
  add(fwd, op, performance.now() - t0);
  const inner = r.backward.bind(r);
  return {
    ...r,
    backward: (g) => {
      const t1 = performance.now();
      const x = inner(g);
      add(bwd, op, performance.now() - t1);
      return x;
    },
  };
};

const model = TrainableLM.init(
  { source: 'hf', vocabSize: 256, hiddenSize: hidden, innerSize: 2 * hidden, stateSize: 16, numLayers: layers, convKernel: 4, dtRank: Math.ceil(hidden / 16), useBias: false, useConvBias: true, normEps: 1e-5, tieEmbeddings: true, eosTokenIds: [0] },
  { seed: 1 },
);
const ids = Int32Array.from({ length: b * L }, (_, i) => (i * 31 + 7) % 256);
const targets = Int32Array.from({ length: b * L }, (_, i) => (i * 17 + 3) % 256);

interface StepTimes { total: number; forward: number; fwd: Map<string, number>; bwd: Map<string, number> }
const recorded: StepTimes[] = [];
for (let it = 0; it <= steps; it++) {
  fwd = new Map();
  bwd = new Map();
  for (const p of model.params.values()) p.grad = null;
  const t0 = performance.now();
  const ce = await withGrad(() => model.loss(ids, targets, b, L));
  const t1 = performance.now();
  backward(ce.loss);
  const t2 = performance.now();
  if (it > 0) recorded.push({ total: t2 - t0, forward: t1 - t0, fwd, bwd }); // step 0: JIT warm-up
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const tokens = b * L;
const med = median(recorded.map((r) => r.total));
const best = Math.min(...recorded.map((r) => r.total));
const ops = [...new Set(recorded.flatMap((r) => [...r.fwd.keys(), ...r.bwd.keys()]))];
const rows = ops
  .map((op) => ({ op, forward: median(recorded.map((r) => r.fwd.get(op) ?? 0)), backward: median(recorded.map((r) => r.bwd.get(op) ?? 0)) }))
  .sort((x, y) => y.forward + y.backward - x.forward - x.backward);
const inOps = median(recorded.map((r) => [...r.fwd.values(), ...r.bwd.values()].reduce((s, v) => s + v, 0)));
const summary = {
  shape: { hidden, layers, batch: b, seq: L, steps },
  tokensPerSecond: { median: (tokens / med) * 1000, best: (tokens / best) * 1000 },
  msPerStep: { median: med, best, forward: median(recorded.map((r) => r.forward)) },
  ops: rows,
  outsideOpsMs: med - inOps,
};
if (json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
else {
  const f = (v: number): string => v.toFixed(1).padStart(9);
  console.log(`Mamba-1 d_model ${hidden} × ${layers} layers, batch ${b} × ${L} tokens, float32, forward + backward, ${steps} steps (+1 warm-up)`);
  console.log(`tokens/s: median ${summary.tokensPerSecond.median.toFixed(0)}, best ${summary.tokensPerSecond.best.toFixed(0)}; ms/step median ${med.toFixed(1)} (forward ${summary.msPerStep.forward.toFixed(1)}), best ${best.toFixed(1)}`);
  console.log(`${'op'.padEnd(16)}${'fwd ms'.padStart(9)}${'bwd ms'.padStart(9)}`);
  for (const r of rows) console.log(`${r.op.padEnd(16)}${f(r.forward)}${f(r.backward)}`);
  console.log(`${'(outside ops)'.padEnd(16)}${f(summary.outsideOpsMs)}`);
}
