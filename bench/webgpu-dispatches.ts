/**
 * The dispatches of one recorded decode step, kernel by kernel: name, variant, grid and workgroups, and the first
 * parameter words (M, K, N… by kernel), at each batch size — what a step asks of the GPU, without one. Random
 * weights at a preset's shapes; by default recorded on the null device of bench/null-gpu.ts with an H100's limits
 * under Dawn (48 KiB of workgroup memory, subgroups of 32, 'tiled' kernels), so it runs in seconds anywhere;
 * `--adapter` records on the real adapter instead (its limits and kernels).
 *
 *   node dist/bench/webgpu-dispatches.js [--presets mamba2-130m] [--batch 1,8,16] [--layers 1] [--weights f32|bf16|q8]
 *        [--gemm-small-min 9] [--batch-decode fused|fused-v1|old] [--fewrows] [--decode-rows 16|auto] [--state-rows 4]
 *        [--adapter] [--summary]
 *
 * `--layers n` keeps n layers (default 1: a layer's dispatches and the head's; the count per step is printed for it);
 * `--summary` prints the dispatch count per batch only.
 */
import { WebGpuBackend, createWebGpuBackend } from '../src/backend/webgpu/index.js';
import { WEBGPU_BATCH_DECODES, WEBGPU_WEIGHT_FORMATS, type WebGpuBatchDecode, type WebGpuWeights } from '../src/backend/webgpu/options.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';
import { nullGpuDevice, stepDispatches } from './null-gpu.js';
import { intListArg, listArg } from './options.js';

const presets = listArg('presets', 'mamba2-130m', Object.keys(PRESETS));
const batches = intListArg('batch', '1,8,16');
const layers = intListArg('layers', '1')[0];
const [weights] = listArg<WebGpuWeights>('weights', 'f32', WEBGPU_WEIGHT_FORMATS);
const [batchDecode] = listArg<WebGpuBatchDecode>('batch-decode', 'fused', WEBGPU_BATCH_DECODES);
const gemmSmallMin = intListArg('gemm-small-min', '9')[0];
const summary = process.argv.includes('--summary');
// decodeRows: MATVEC_R at 2 to n rows, or 'auto' (the backend checks it); decodeStateRows: rows of a head's state per subgroup
const after = (f: string) => (process.argv.includes(f) ? process.argv[process.argv.indexOf(f) + 1] : undefined);
const rowsArg = after('--decode-rows');
const decodeRows: number | 'auto' = rowsArg === 'auto' ? 'auto' : Number(rowsArg ?? 0);
const decodeStateRows = Number(after('--state-rows') ?? 1);
const opts = { weights, batchDecode, gemmSmallMin, fewRows: process.argv.includes('--fewrows'), decodeRows, decodeStateRows };
const backend = process.argv.includes('--adapter')
  ? await createWebGpuBackend(opts)
  : new WebGpuBackend(nullGpuDevice({ maxComputeWorkgroupStorageSize: 49152 }), 'null device (H100 limits)', { ...opts, kernels: 'tiled', subgroupMinSize: 32, subgroupMaxSize: 32 });
console.log(`${backend.name}: kernels ${backend.kernels}, weights ${weights}, batchDecode ${batchDecode}, gemmSmallMin ${gemmSmallMin}${opts.fewRows ? ', fewRows' : ''}${decodeRows ? `, decodeRows ${decodeRows}` : ''}${decodeStateRows > 1 ? `, decodeStateRows ${decodeStateRows}` : ''}, ${backend.rt.maxWorkgroupStorage} bytes of workgroup memory`);
for (const preset of presets) {
  const lm = buildModel({ ...PRESETS[preset], num_hidden_layers: layers }, preset, new RandomTensorSource(1), { backend });
  for (const B of batches) {
    // the first one-token step of a state runs the model code (and is recorded for replay): its dispatches
    const log = await stepDispatches(backend, lm, B);
    console.log(`${preset} batch ${B}: ${log.length} dispatches per step at ${layers} layer${layers > 1 ? 's' : ''} (logits out; a greedy step adds the argmax)`);
    if (summary) continue;
    for (const d of log) {
      const wg = d.grid[0] * d.grid[1] * d.grid[2];
      console.log(`  ${d.name.padEnd(20)} ${d.variant.padEnd(18)} grid ${d.grid.join('×').padEnd(12)} ${String(wg).padStart(6)} workgroups  params ${d.params.slice(0, 6).join(', ')}`);
    }
  }
}
backend.destroy();
