// profile of one training step per differentiable op (forward / backward ms), Mamba-1 d_model 256 × 4 layers, batch 8 × 64
import { cpu } from '../src/backend/cpu/index.js';
import { backward, withGrad } from '../src/autograd/tape.js';
import { TrainableLM } from '../src/train/lm.js';
const fwd = new Map<string, number>(), bwd = new Map<string, number>();
const orig = cpu.differentiable.bind(cpu);
(cpu as any).differentiable = (op: any, inputs: any, attrs: any) => {
  const t0 = performance.now(); const r = orig(op, inputs, attrs); fwd.set(op, (fwd.get(op) ?? 0) + performance.now() - t0);
  const b = r.backward;
  return { ...r, backward: (g: any) => { const t1 = performance.now(); const x = b(g); bwd.set(op, (bwd.get(op) ?? 0) + performance.now() - t1); return x; } };
};
const cfg = { source: 'hf' as const, vocabSize: 256, hiddenSize: 256, innerSize: 512, stateSize: 16, numLayers: 4, convKernel: 4, dtRank: 16, useBias: false, useConvBias: true, normEps: 1e-5, tieEmbeddings: true, eosTokenIds: [0] };
const m = TrainableLM.init(cfg, { seed: 1 });
const b = 8, L = 64;
const ids = Int32Array.from({ length: b * L }, (_, i) => (i * 31 + 7) % 256);
const tg = Int32Array.from({ length: b * L }, (_, i) => (i * 17 + 3) % 256);
let tot = 0, tf = 0;
for (let it = 0; it < 6; it++) {
  if (it === 1) { fwd.clear(); bwd.clear(); tot = 0; tf = 0; }
  for (const p of m.params.values()) p.grad = null;
  const t0 = performance.now();
  const ce = await withGrad(() => m.loss(ids, tg, b, L));
  const t1 = performance.now();
  backward(ce.loss);
  tot += performance.now() - t0; tf += t1 - t0;
}
console.log('tok/s', (5 * b * L) / (tot / 1000), 'fwd ms', tf / 5, 'total ms', tot / 5);
const rows = [...new Set([...fwd.keys(), ...bwd.keys()])].map((k) => [k, (fwd.get(k) ?? 0) / 5, (bwd.get(k) ?? 0) / 5] as const).sort((a, b) => b[1] + b[2] - a[1] - a[2]);
for (const r of rows) console.log(r[0].padEnd(16), r[1].toFixed(1).padStart(8), r[2].toFixed(1).padStart(8));
