/** The named setups of `mamba-ts train --preset NAME` (flags given on the command line override them). */
import type { JobArgs } from './job-args.js';

export const PRESETS: Record<string, { description: string; args: Partial<JobArgs> }> = {
  'text-tiny': {
    description: 'byte-level Mamba (2 layers, d_model 64) on local text — the README main job',
    args: { task: 'text', hidden: 64, layers: 2, seqLen: 128, batch: 4, accum: 2, steps: 1000, lr: 3e-3, warmup: 30, evalEvery: 100, saveEvery: 250 },
  },
  'text-small': {
    description: 'byte-level Mamba (4 layers, d_model 128) on local text',
    args: { task: 'text', hidden: 128, layers: 4, seqLen: 256, batch: 2, accum: 4, steps: 2000, lr: 2e-3, warmup: 100, evalEvery: 200, saveEvery: 200 },
  },
  'selective-copying': {
    description: 'Mamba paper §4.1.1 at reduced length: L=256, 16 data tokens, vocab 16, 2 layers, D=64, S6, batch 64',
    args: { task: 'selective-copying', seqLen: 256, vocab: 16, numTokens: 16, hidden: 64, layers: 2, batch: 4, accum: 16, steps: 1200, lr: 2e-3, warmup: 50, weightDecay: 0, evalEvery: 100, saveEvery: 100, evalBatches: 4 },
  },
  'selective-copying-s4d': {
    description: 'the same network with an LTI S4D layer in place of S6 (the paper\'s S4 ablation)',
    args: { task: 'selective-copying', mixer: 's4d', s4dInit: 'lin', seqLen: 256, vocab: 16, numTokens: 16, hidden: 64, layers: 2, batch: 4, accum: 16, steps: 1200, lr: 2e-3, warmup: 50, weightDecay: 0, evalEvery: 100, saveEvery: 100, evalBatches: 4 },
  },
  'induction-heads': {
    description: 'Mamba paper §4.1.2: trained at L=256, vocab 16, 2 layers, D=64; batch 32; evaluated up to 16384',
    args: { task: 'induction-heads', seqLen: 256, vocab: 16, hidden: 64, layers: 2, batch: 2, accum: 16, steps: 1500, lr: 1e-3, warmup: 50, weightDecay: 0, evalEvery: 100, saveEvery: 100, evalBatches: 16, evalLengths: [256, 1024, 4096, 16384] },
  },
  'fmnist-legs': {
    description: 'sequential Fashion-MNIST (784 steps), S4D classifier with HiPPO-LegS-derived diagonal A',
    args: { task: 'fmnist', s4dInit: 'legs', hidden: 64, layers: 2, state: 64, batch: 4, accum: 8, steps: 600, lr: 4e-3, warmup: 50, weightDecay: 0.01, evalEvery: 250, saveEvery: 250, testLimit: 2000 },
  },
  'fmnist-random': {
    description: 'the same S4D classifier with random diagonal A (ablation)',
    args: { task: 'fmnist', s4dInit: 'random', hidden: 64, layers: 2, state: 64, batch: 4, accum: 8, steps: 600, lr: 4e-3, warmup: 50, weightDecay: 0.01, evalEvery: 250, saveEvery: 250, testLimit: 2000 },
  },
};
