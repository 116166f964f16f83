/**
 * A batched decode step on paper (issue 11, batch 64 ≥ 20× batch 1): every dispatch of one recorded step (the null
 * device of bench/null-gpu.ts with an H100's limits under Dawn, as bench/webgpu-dispatches.ts and bench/rows-bytes.ts
 * record it), with its bytes from memory (weights once, the recurrent state read and written, activations and split-K
 * partials), its bytes re-read from L2 (x̂ per workgroup, the state update's B and C rows per subgroup), its FLOPs, and
 * what those cost at the card's peaks (3.35 TB/s, 50 TFLOP/s f32 FMA by default) — lower bounds, counts not timings.
 * One layer is recorded and multiplied by the preset's layer count; the greedy step's argmax over the logits is added.
 *
 *   node dist/bench/step-bytes.js [--presets mamba2-130m,mamba-130m] [--batch 32,64] [--weights f32]
 *        [--state-rows 1] [--decode-rows 0|auto|16] [--batch-decode fused|fused2] [--tbs 3.35] [--tflops 50] [--json]
 *
 * Activations and partials are counted as if they went to memory (a 50 MB L2 keeps many of them; the bound is loose
 * there); L2 bytes are not in the memory bound.
 */
import { WebGpuBackend } from '../src/backend/webgpu/index.js';
import { rowsParse } from '../src/backend/webgpu/kernels/matvec_rows.js';
import { matvecParse } from '../src/backend/webgpu/kernels/matvec.js';
import { WEBGPU_BATCH_DECODES, WEBGPU_WEIGHT_FORMATS, type WebGpuBatchDecode, type WebGpuWeights } from '../src/backend/webgpu/options.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';
import { nullGpuDevice, stepDispatches, type RecordedDispatch } from './null-gpu.js';
import { intListArg, listArg } from './options.js';

const presets = listArg('presets', 'mamba2-130m,mamba-130m', Object.keys(PRESETS));
const batches = intListArg('batch', '32,64');
const [weights] = listArg<WebGpuWeights>('weights', 'f32', WEBGPU_WEIGHT_FORMATS);
const [batchDecode] = listArg<WebGpuBatchDecode>('batch-decode', 'fused', WEBGPU_BATCH_DECODES);
const after = (f: string) => (process.argv.includes(f) ? process.argv[process.argv.indexOf(f) + 1] : undefined);
const stateRows = Number(after('--state-rows') ?? 1);
const rowsArg = after('--decode-rows');
const decodeRows: number | 'auto' = rowsArg === 'auto' ? 'auto' : Number(rowsArg ?? 0);
const TBS = Number(after('--tbs') ?? 3.35) * 1e12;
const FLOPS = Number(after('--tflops') ?? 50) * 1e12;
const json = process.argv.includes('--json');
const BPW: Record<string, number> = { f32: 4, bf16: 2, q8: 36 / 32 };
const bpw = BPW[weights];

/** one dispatch's counts: bytes from memory (weights; state; activations), bytes from L2, FLOPs */
interface Cost { kernel: string; what: string; weight: number; state: number; act: number; l2: number; flops: number }

function cost(d: RecordedDispatch, H: number, V: number): Cost {
  const p = d.params;
  const wgs = d.grid[0] * d.grid[1] * d.grid[2];
  const c: Cost = { kernel: d.name, what: d.variant, weight: 0, state: 0, act: 0, l2: 0, flops: 0 };
  const prod = (M: number, K: number, N: number, xPerCall: number, partials: number) => {
    c.weight = N * K * bpw;
    c.act = M * K * 4 + M * N * 4 + 2 * partials;
    c.l2 = Math.max(0, xPerCall - M * K * 4);
    c.flops = 2 * M * N * K;
    c.what = `${d.variant} ${K}→${N}${N >= V - 64 ? ' (LM head)' : K === H ? ' (in_proj)' : N === H ? ' (out_proj)' : ''}${d.grid[2] > 1 ? ` split ${d.grid[2]}` : ''}, ${wgs} wg`;
  };
  switch (d.name) {
    case 'matmul_blocked': {
      const [M, K, N] = p;
      const S = d.grid[2];
      // every workgroup of a column tile stages its rows' K-slice of x: x̂ read ⌈N / bn⌉ times
      prod(M, K, N, d.grid[0] * M * K * 4, S > 1 ? S * M * N * 4 : 0);
      break;
    }
    case 'matvec_v': case 'matvec_x': {
      const [M, K, N] = p;
      const v = matvecParse(d.variant);
      prod(M, K, N, wgs * (v.xs4 ? 1 : v.rpw) * M * K * 4, 0);
      break;
    }
    case 'matvec_rows': {
      const [M, K, N] = p;
      prod(M, K, N, wgs * M * K * 4, 0);
      void rowsParse;
      break;
    }
    case 'splitk_reduce': { const [M, N, , , , S] = p; c.act = (S + 1) * M * N * 4; c.what = `${M}×${N}, ${S} partials`; break; }
    // partials of S splits (the variant), the residual, the sum and the next layer's normed input
    case 'splitk_rows': { const [M, N] = p; const S = Number(d.variant) || 1; c.act = (S + 3) * M * N * 4; c.what = `${M}×${N}, ${S} partials + residual + RMSNorm`; break; }
    // the reduce with the conv step of columns [c0, c0 + C) in the same thread (batchDecode 'fused2')
    case 'splitk_conv': { const [M, N, , S, , C, K] = p; c.act = (S + 1) * M * N * 4 + M * C * 4; c.state = 2 * M * C * (K - 1) * 4; c.what = `${M}×${N}, ${S} partials + conv of ${C} (window ${K})`; break; }
    case 'conv_step': { const [B, , C, K] = p; c.state = 2 * B * C * (K - 1) * 4; c.act = 2 * B * C * 4; c.what = `${B}×${C}, window ${K}`; break; }
    case 'ssd_step_sg': case 'ssd_step': {
      const [B, , nh, hd, , N] = p;
      const P = Number(/p(\d+)$/.exec(d.variant)?.[1] ?? 1);
      c.state = 2 * B * nh * hd * N * 4;
      c.act = 2 * B * nh * hd * 4;
      // each subgroup reads its group's B and C rows (N each) for its P rows
      c.l2 = B * nh * Math.ceil(hd / P) * 2 * N * 4;
      c.flops = 4 * B * nh * hd * N;
      c.what = `${B} × ${nh} heads × ${hd} × ${N}, ${d.variant || 'scalar'}, ${wgs} wg`;
      break;
    }
    case 'scan_step': case 'scan_step_sg': {
      const [B, , D, N] = p;
      c.state = 2 * B * D * N * 4;
      c.act = 4 * B * D * 4;
      c.flops = 6 * B * D * N;
      c.what = `${B} × ${D} × ${N}, ${d.variant}`;
      break;
    }
    case 'mamba2_step': case 'mamba_step': {
      c.what = `${d.variant} (fused step: state counted at B·state bytes)`;
      break;
    }
    case 'rms_norm_gated_rows': { const [M, K] = p; c.act = 3 * M * K * 4; c.what = `${M}×${K}`; break; }
    case 'rms_norm_sg': case 'rms_norm': { const [M, K] = p; c.act = 2 * M * K * 4; c.what = `${M}×${K}`; break; }
    case 'gather_rows': { const [M, K] = p; c.act = 2 * M * K * 4; c.what = `${M}×${K}`; break; }
    default: c.what = `${d.variant} (not counted)`;
  }
  return c;
}

const mb = (b: number) => (b / 1e6).toFixed(1);
const us = (s: number) => (s * 1e6).toFixed(1);
const out: unknown[] = [];
for (const preset of presets) {
  const cfg = PRESETS[preset] as { hidden_size?: number; d_model?: number; vocab_size: number; num_hidden_layers?: number; n_layer?: number };
  const H = cfg.hidden_size ?? cfg.d_model ?? 768;
  const V = cfg.vocab_size;
  const layers = cfg.num_hidden_layers ?? cfg.n_layer ?? 24;
  const backend = new WebGpuBackend(nullGpuDevice({ maxComputeWorkgroupStorageSize: 49152 }), 'null device (H100 limits)', {
    weights, kernels: 'tiled', subgroupMinSize: 32, subgroupMaxSize: 32, decodeRows, decodeStateRows: stateRows, batchDecode,
  });
  const lm = buildModel({ ...PRESETS[preset], num_hidden_layers: 1 }, preset, new RandomTensorSource(1), { backend });
  for (const B of batches) {
    const log = await stepDispatches(backend, lm, B);
    // one layer's dispatches (between the first layer's input norm / gather and the head) × layers; the rest once
    const headAt = log.findIndex((d) => d.name === 'matmul_blocked' || d.name.startsWith('matvec') ? d.params[2] >= V - 64 : false);
    const firstLayer = log.findIndex((d, i) => i > 0 && !['gather_rows', 'rms_norm_sg', 'rms_norm'].includes(d.name));
    const rows: (Cost & { n: number })[] = log.map((d, i) => ({ ...cost(d, H, V), n: i >= firstLayer && i < headAt ? layers : 1 }));
    // the greedy step's argmax over the logits (not in the recorded step)
    rows.push({ kernel: 'argmax (greedy)', what: `${B} × ${V}`, weight: 0, state: 0, act: B * V * 4, l2: 0, flops: 0, n: 1 });
    const sum = (k: 'weight' | 'state' | 'act' | 'l2' | 'flops') => rows.reduce((a, r) => a + r[k] * r.n, 0);
    const dispatches = rows.reduce((a, r) => a + r.n, 0);
    const [w, st, act, l2, fl] = [sum('weight'), sum('state'), sum('act'), sum('l2'), sum('flops')];
    if (json) {
      out.push({ preset, batch: B, weights, stateRows, decodeRows, dispatches, bytes: { weights: w, state: st, activations: act, l2 }, flops: fl, rows });
      continue;
    }
    console.log(`\n## ${preset}, ${B} rows, ${weights} weights (${layers} layers; null device with H100 limits; decodeRows ${decodeRows}, decodeStateRows ${stateRows}, batchDecode ${batchDecode})\n`);
    console.log('| kernel | what | × | weights MB | state MB | activations MB | L2 re-reads MB | GFLOP | µs at the memory peak | µs at the FLOP peak |');
    console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of rows) {
      const bytes = (r.weight + r.state + r.act) * r.n;
      console.log(`| ${r.kernel} | ${r.what} | ${r.n} | ${mb(r.weight * r.n)} | ${mb(r.state * r.n)} | ${mb(r.act * r.n)} | ${mb(r.l2 * r.n)} | ${((r.flops * r.n) / 1e9).toFixed(2)} | ${us(bytes / TBS)} | ${us((r.flops * r.n) / FLOPS)} |`);
    }
    console.log(`| **step** | ${dispatches - 1} dispatches + the argmax | | **${mb(w)}** | **${mb(st)}** | **${mb(act)}** | ${mb(l2)} | **${(fl / 1e9).toFixed(2)}** | **${us((w + st + act) / TBS)}** | **${us(fl / FLOPS)}** |`);
    console.log(`\nbounds: memory ${us((w + st + act) / TBS)} µs (weights ${us(w / TBS)}, state ${us(st / TBS)}, activations ${us(act / TBS)}) at ${TBS / 1e12} TB/s; FLOPs ${us(fl / FLOPS)} µs at ${FLOPS / 1e12} TFLOP/s; a 20× target of batch 1 at ~1,050 tok/s is ${((B / (20 * 1050)) * 1e3).toFixed(2)} ms a step`);
  }
  backend.destroy();
}
if (json) console.log(JSON.stringify(out, null, 1));
