/**
 * What the decode step's matrix products ask of the GPU at M rows (issue 11, batched decode at 2–16 rows), counted on
 * the null device of bench/null-gpu.ts with an H100's limits under Dawn (as bench/webgpu-dispatches.ts records a
 * step): per product (in_proj, out_proj, the LM head, and Mamba-1's x_proj / dt_proj) and per path — the kernel and
 * variant, workgroups, bytes of weights and of x̂ per workgroup and per call, and the per-lane work (products of a
 * 16-byte weight unit with one row of x̂, and reduction adds / barrier steps). Counts from the variants' rules, not
 * measurements: x̂ bytes are what a workgroup reads of the input (staged or streamed, from L2 — the norm prologue's
 * pass over x counted besides), weight bytes what it reads of the matrix (each weight once).
 *
 *   node dist/bench/rows-bytes.js [--presets mamba2-130m,mamba-130m] [--weights f32] [--batch 1,2,4,8,16]
 *        [--paths default,fewrows,small2,rows]
 *
 * Paths: 'default' (matvec ≤ 8 rows, the blocked GEMM 9–16), 'fewrows' (fewRows: the few-rows kernel 2–8),
 * 'small2' (gemmSmallMin 2: the blocked GEMM from 2 rows), 'rows' (decodeRows 16: MATVEC_R at 2–16).
 */
import { WebGpuBackend } from '../src/backend/webgpu/index.js';
import { matvecParse } from '../src/backend/webgpu/kernels/matvec.js';
import { fewRowsParse } from '../src/backend/webgpu/kernels/fewrows.js';
import { rowsParse } from '../src/backend/webgpu/kernels/matvec_rows.js';
import { WEBGPU_WEIGHT_FORMATS, type WebGpuWeights } from '../src/backend/webgpu/options.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';
import { nullGpuDevice, stepDispatches } from './null-gpu.js';
import { intListArg, listArg } from './options.js';

const presets = listArg('presets', 'mamba2-130m,mamba-130m', Object.keys(PRESETS));
const batches = intListArg('batch', '1,2,4,8,16');
const [weights] = listArg<WebGpuWeights>('weights', 'f32', WEBGPU_WEIGHT_FORMATS);
const paths = listArg('paths', 'default,fewrows,small2,rows', ['default', 'fewrows', 'small2', 'rows']);
/** bytes a weight takes, by format (q8: 32 int8 + an f32 scale a block) */
const BPW: Record<string, number> = { f32: 4, bf16: 2, q8: 36 / 32 };
const bpw = BPW[weights];
const unit = (fmt: string) => ({ f: 4, b: 8, q: 16, x: 1 })[fmt as 'f'] ?? 1;
const kb = (b: number) => (b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : `${(b / 1024).toFixed(1)} KB`);

interface Row { kernel: string; variant: string; wgs: number; wPer: number; xPer: number; dots: number; red: string }

/** the counts of one recorded product dispatch, by kernel and variant (null: not a decode matrix product) */
function count(name: string, variant: string, grid: [number, number, number], p: number[]): Row | null {
  const wgs = grid[0] * grid[1] * grid[2];
  const [M, K] = p;
  const flags = p[5] ?? 0;
  // the norm prologue re-reads x (and z) of all M rows in every workgroup
  const normX = name === 'matmul_blocked' ? 0 : flags & 2 ? M * K * 4 * (flags & 4 ? 2 : 1) : 0;
  if (name === 'matvec_v' || name === 'matvec_x') {
    const v = matvecParse(variant);
    const tpr = 256 / v.rpw, units = K / unit(v.fmt);
    const xs = v.xs4 ? M * K * 4 : v.rpw * M * K * 4; // staged once, or every team reads x̂ of its row
    return { kernel: name, variant, wgs, wPer: v.rpw * K * bpw, xPer: xs + normX, dots: Math.ceil(units / tpr) * M, red: `${Math.log2(tpr)} steps × ${v.mm} adds` };
  }
  if (name === 'fewrows') {
    const v = fewRowsParse(variant);
    const tpr = 256 / v.rpw, units = K / unit(v.fmt);
    const xs = v.xs4 ? M * K * 4 : v.rpw * M * K * 4;
    return { kernel: name, variant, wgs, wPer: v.rpw * K * bpw, xPer: xs + normX, dots: Math.ceil(units / tpr) * M, red: `${Math.ceil(M / v.mb)} × ${Math.log2(tpr)} steps × ${v.mb} adds` };
  }
  if (name === 'matvec_rows') {
    const v = rowsParse(variant);
    const units = K / unit(v.fmt);
    // (a norm of one group a row is applied late: x read once, in the staging)
    return { kernel: name, variant, wgs, wPer: 8 * v.p * K * bpw, xPer: M * K * 4 + (p[6] < K ? normX : 0), dots: v.p * Math.ceil(units / 32) * v.mm, red: `${v.p} × (2 barriers, ${v.mm} stores; 32 adds on ${8 * v.mm} lanes)` };
  }
  if (name === 'matmul_blocked') {
    const nb = p[2], kc = p[6] ?? K;
    const bn = Math.ceil(nb / grid[0]), bm = Math.ceil(M / grid[1]);
    return { kernel: name, variant: `${variant} split ${grid[2]}`, wgs, wPer: bn * kc * bpw, xPer: bm * kc * 4, dots: 0, red: grid[2] > 1 ? `split-K: ${grid[2]} partials, a reduce pass` : 'none' };
  }
  return null;
}

for (const preset of presets) {
  const cfg = PRESETS[preset] as { hidden_size?: number; d_model?: number; vocab_size: number };
  const H = cfg.hidden_size ?? cfg.d_model ?? 768;
  console.log(`\n## ${preset}, ${weights} weights (null device, H100 limits: 48 KiB workgroup memory, subgroups of 32)\n`);
  console.log('| M | path | product | K × N | kernel variant | workgroups | weights / wg | x̂ / wg | x̂ / call | x̂ : weights | unit products / lane | reduction |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const path of paths) {
    const backend = new WebGpuBackend(nullGpuDevice({ maxComputeWorkgroupStorageSize: 49152 }), 'null device (H100 limits)', {
      weights, kernels: 'tiled', subgroupMinSize: 32, subgroupMaxSize: 32,
      fewRows: path === 'fewrows', gemmSmallMin: path === 'small2' ? 2 : 9, decodeRows: path === 'rows' ? 16 : 0,
    });
    const lm = buildModel({ ...PRESETS[preset], num_hidden_layers: 1 }, preset, new RandomTensorSource(1), { backend });
    for (const B of batches) {
      if (B === 1 && path !== 'default') continue;
      const log = await stepDispatches(backend, lm, B);
      for (const d of log) {
        const r = count(d.name, d.variant, d.grid, d.params);
        if (!r) continue;
        const K = d.params[1], N = d.name === 'matmul_blocked' ? d.params[2] : d.params[2];
        const what = N >= cfg.vocab_size - 64 ? 'lm_head' : K === H ? 'in_proj' : N === H ? 'out_proj' : 'other';
        const x = r.xPer * r.wgs, w = N * K * bpw;
        console.log(`| ${B} | ${path} | ${what} | ${K} × ${N} | ${r.kernel} ${r.variant} | ${r.wgs} | ${kb(r.wPer)} | ${kb(r.xPer)} | ${kb(x)} | ${(x / w).toFixed(2)} | ${r.dots || '—'} | ${r.red} |`);
      }
    }
    backend.destroy();
  }
}
