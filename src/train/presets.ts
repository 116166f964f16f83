/**
 * The named setups of `mamba-ts train --preset NAME` (flags given on the command line override them).
 *
 * The seed's-caveat families (issue 16: MQAR, copying, LM sanity) compare architectures at equal parameter count:
 * the sizes below give the same parameters without the embedding within 1.5% (`mamba-ts train --preset P
 * --dry-run` prints them): at d_model 128, Mamba 4 layers N=16 466,560, Mamba-2 4 layers N=64 470,192, Llama 2
 * layers MLP 432 463,488, hybrid 2 layers (Mamba-2 + attention, MLP 368) 466,188; at d_model 256 (LM), 1.75M each.
 */
import type { JobArgs } from './job-args.js';

/** the LM sanity corpus: the Jargon File 4.4.7 (public domain), Debian package dict-jargon (apt-get install dict-jargon) */
export const JARGON_FILE = '/usr/share/dictd/jargon.dict.dz';

/** the architectures at equal size: d_model 128 (MQAR, copying) and 256 (LM) */
const SIZE_128: Record<'mamba' | 'mamba2' | 'llama' | 'hybrid', Partial<JobArgs>> = {
  mamba: { arch: 'mamba', hidden: 128, layers: 4, state: 16 },
  mamba2: { arch: 'mamba2', hidden: 128, layers: 4, state: 64, headDim: 64 },
  llama: { arch: 'llama', hidden: 128, layers: 2, headDim: 64, intermediate: 432 },
  hybrid: { arch: 'hybrid', hidden: 128, layers: 2, state: 64, headDim: 64, attnEvery: 2, intermediate: 368 },
};
const SIZE_256: typeof SIZE_128 = {
  mamba: { arch: 'mamba', hidden: 256, layers: 4, state: 16 },
  mamba2: { arch: 'mamba2', hidden: 256, layers: 4, state: 64, headDim: 64 },
  llama: { arch: 'llama', hidden: 256, layers: 2, headDim: 64, intermediate: 800 },
  hybrid: { arch: 'hybrid', hidden: 256, layers: 2, state: 64, headDim: 64, attnEvery: 2, intermediate: 688 },
};
const NAMES = { mamba: 'Mamba', mamba2: 'Mamba-2', llama: 'Llama (RoPE)', hybrid: 'hybrid (Mamba-2 + 1 attention in 2)' };

const MQAR: Partial<JobArgs> = { task: 'mqar', vocab: 8192, seqLen: 256, numKv: 16, powerA: 0.01, batch: 64, accum: 1, steps: 3000, lr: 1e-3, warmup: 100, weightDecay: 0.1, evalEvery: 250, saveEvery: 250, evalBatches: 4, evalLengths: [64, 128, 256, 512, 1024], evalNumKv: [4, 8, 16, 32, 64] };
const COPY: Partial<JobArgs> = { task: 'copy', vocab: 29, copyLen: 64, copyMinLen: 1, batch: 64, accum: 1, steps: 3000, lr: 1e-3, warmup: 100, weightDecay: 0.1, evalEvery: 250, saveEvery: 250, evalBatches: 2, evalLengths: [16, 32, 64, 128, 256] };
const LM: Partial<JobArgs> = { task: 'text', data: JARGON_FILE, seqLen: 512, batch: 32, accum: 1, steps: 3000, lr: 1e-3, warmup: 100, weightDecay: 0.1, evalEvery: 250, saveEvery: 250, evalBatches: 0 };

function family(prefix: string, base: Partial<JobArgs>, sizes: typeof SIZE_128, what: string): Record<string, { description: string; args: Partial<JobArgs> }> {
  return Object.fromEntries((Object.keys(sizes) as Array<keyof typeof sizes>).map((k) => [`${prefix}-${k}`, { description: `${what}: ${NAMES[k]}, d_model ${sizes[k].hidden}`, args: { ...base, ...sizes[k] } }]));
}

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
  ...family('mqar', MQAR, SIZE_128, 'MQAR (Zoology: T=256, 16 pairs, vocab 8192), evaluated at T = 64…1024 with T/16 pairs'),
  ...family('copy', COPY, SIZE_128, 'copying strings of 1…64 tokens (26 letters), evaluated on 16…256'),
  ...family('lm', LM, SIZE_256, 'byte-level LM on the Jargon File (apt-get install dict-jargon), held-out tail'),
};
