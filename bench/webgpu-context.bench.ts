/**
 * Decode speed and memory vs context on WebGPU, Mamba-2 against a same-size Transformer (issue 11, the seed's
 * claim): see bench/context-sweep.ts for what a point measures. Writes context.json, context.md and
 * context.svg to --out and prints the tables.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createWebGpuBackend } from '../src/backend/webgpu/index.js';
import { WebGpuBackend } from '../src/backend/webgpu/backend.js';
import { nullGpuDevice } from './null-gpu.js';
import { PRESETS } from '../src/models/random.js';
import { writeFileAtomic } from '../src/cli/io.js';
import { ratioTable, runSweep, sweepSvg, sweepTable, contextLabel, type Fill, type SweepPoint } from './context-sweep.js';
import { commandLine, gitCommit, repoRoot } from './report.js';
import { KV_CACHE_FORMATS, type KvCacheDType } from '../src/tensor/dtype.js';

const HELP = `node dist/bench/webgpu-context.bench.js [options]

Decode tok/s and memory per sequence at several contexts and batches (random weights, WebGPU).

  --models A,B        presets (default mamba2-130m,llama-130m)
  --contexts N,…      context lengths (default 1024,4096,16384,65536)
  --batch N,…         batch sizes (default 1,32)
  --steps N           timed decode steps per point (default 16; fewer when a step is slow, see --max-seconds)
  --max-seconds S     about how long the timed steps of one point may take (default 10)
  --fill MODE         auto | prefill | direct: how the state reaches the context (default auto: a real prefill
                      for constant-size states, KV caches written directly with random K/V for the others)
  --chunk N           prefill chunk in tokens (default 2048)
  --gpu-memory-gib G  points predicted to need more device memory are "out of memory" rows (default 76)
  --layers N          build the presets with N layers (same widths; for slow adapters)
  --weights f32|bf16  weight storage on the GPU (default f32)
  --kv-cache F,…      KV cache formats: f32, bf16, f16 (default f32); a model with KV caches runs once per format
                      ("llama-130m (bf16 KV)"), the state per sequence counted in the format's bytes
  --kernels tiled|simple  (default: the adapter's)
  --plan              run nothing: check each point against --gpu-memory-gib and the bindings and allocate one
                      of its KV cache tensors (split into blocks of sequences when over one binding)
  --max-kv-block-bytes N  cap a KV cache block's bytes below the binding (splits small caches: a smoke test of
                      the split path on a software adapter)
  --null-device       with --plan: a device that executes nothing, with an NVIDIA GPU's limits (bench/null-gpu.ts)
  --out DIR           where context.json/.md/.svg go (default bench-results)
  --json              print the points as one JSON line at the end
`;

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a value`);
  return v;
}
const list = (name: string, dflt: string): number[] =>
  arg(name, dflt).split(',').filter((s) => s).map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: "${s}" is not a positive integer`);
    return n;
  });

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(HELP);
  process.exit(0);
}
const models = arg('models', 'mamba2-130m,llama-130m').split(',').filter((s) => s);
for (const m of models) if (!PRESETS[m]) throw new Error(`--models: unknown preset "${m}" (known: ${Object.keys(PRESETS).join(', ')})`);
const fill = arg('fill', 'auto') as Fill;
if (!['auto', 'prefill', 'direct'].includes(fill)) throw new Error(`--fill: expected auto, prefill or direct, got "${fill}"`);
const weights = arg('weights', 'f32');
if (weights !== 'f32' && weights !== 'bf16') throw new Error(`--weights: expected f32 or bf16, got "${weights}"`);
const kvCaches = arg('kv-cache', 'f32').split(',').filter((s) => s) as KvCacheDType[];
for (const k of kvCaches) if (!KV_CACHE_FORMATS.includes(k)) throw new Error(`--kv-cache: expected formats among ${KV_CACHE_FORMATS.join(', ')}, got "${k}"`);
const kernels = arg('kernels', '');
if (kernels && kernels !== 'tiled' && kernels !== 'simple') throw new Error(`--kernels: expected tiled or simple, got "${kernels}"`);
const layers = arg('layers', '');
const gpuGiB = Number(arg('gpu-memory-gib', '76'));
if (!(gpuGiB > 0)) throw new Error('--gpu-memory-gib: expected a positive number');
const out = arg('out', 'bench-results');
const planOnly = process.argv.includes('--plan');
const kvBlock = arg('max-kv-block-bytes', '');
if (kvBlock && !(Number(kvBlock) >= 256)) throw new Error(`--max-kv-block-bytes: expected a number of bytes >= 256, got "${kvBlock}"`);
const kvOpt = kvBlock ? { maxKvBlockBytes: Number(kvBlock) } : {};
const nullDevice = process.argv.includes('--null-device');
if (nullDevice && !planOnly) throw new Error('--null-device runs nothing: only with --plan');
const log = (s: string) => process.stderr.write(s + '\n');

let adapter = '';
const t0 = performance.now();
const points: SweepPoint[] = await runSweep({
  models: models.map((name) => ({ name, config: layers ? { ...PRESETS[name], num_hidden_layers: Number(layers) } : PRESETS[name] })),
  contexts: list('contexts', '1024,4096,16384,65536'),
  batches: list('batch', '1,32'),
  steps: list('steps', '16')[0],
  maxSeconds: Number(arg('max-seconds', '10')),
  fill,
  chunk: list('chunk', '2048')[0],
  budgetBytes: gpuGiB * 2 ** 30,
  kvCaches,
  planOnly,
  makeBackend: async () => {
    const be = nullDevice
      ? new WebGpuBackend(nullGpuDevice(), 'null device (allocations only)', { weights, kernels: (kernels || 'tiled') as 'tiled' | 'simple', subgroupMaxSize: 32, ...kvOpt })
      : await createWebGpuBackend({ weights, ...kvOpt, ...(kernels ? { kernels: kernels as 'tiled' | 'simple' } : {}) });
    adapter = `${be.name} (${be.kernels} kernels)`;
    return be;
  },
  log,
  onPoint: (p) =>
    log(`${p.model} context ${contextLabel(p.context)} batch ${p.batch}: ` +
      (p.status === 'ok'
        ? `${p.tok_s!.toFixed(1)} tok/s (${p.ms_per_step!.toFixed(2)} ms/step, ${p.path}), state ${(p.state_bytes_per_seq / 2 ** 20).toFixed(2)} MiB/seq, check ${p.check}`
        : `${p.status === 'oom' ? 'OUT OF MEMORY' : p.status === 'planned' ? 'planned' : 'FAILED'}: ${p.reason}`) + ` [${((performance.now() - t0) / 1000).toFixed(0)} s]`),
});

const root = repoRoot(import.meta.url);
const header = [
  `Adapter: ${adapter}; weights ${weights}; KV caches ${kvCaches.join(', ')}; commit ${gitCommit(root)}; ${new Date().toISOString()}`,
  `Command: ${commandLine(import.meta.url, 'bench:webgpu', '')}`,
].join('  \n');
const md = [
  '## Decode speed and memory vs context (WebGPU)', '', header, '',
  sweepTable(points), '',
  ratioTable(points), '',
].join('\n');
fs.mkdirSync(out, { recursive: true });
const files = {
  json: path.join(out, 'context.json'),
  md: path.join(out, 'context.md'),
  svg: path.join(out, 'context.svg'),
};
const enc = new TextEncoder();
writeFileAtomic(files.json, enc.encode(JSON.stringify({ adapter, weights, kv_caches: kvCaches, date: new Date().toISOString(), points }, null, 1) + '\n'), 'sweep results');
writeFileAtomic(files.md, enc.encode(md), 'sweep table');
writeFileAtomic(files.svg, enc.encode(sweepSvg(points, `Decode speed and memory vs context — ${adapter}, ${weights}${kvCaches.some((k) => k !== 'f32') ? `, KV ${kvCaches.join('/')}` : ''}`)), 'sweep plot');
console.log(md);
console.log(`wrote ${files.json}, ${files.md}, ${files.svg}`);
const bad = points.filter((p) => p.status === 'failed' || (p.check && p.check !== 'ok'));
if (bad.length) {
  log(`CHECK FAILED at ${bad.length} point(s): ${bad.map((p) => `${p.model} ${contextLabel(p.context)}×${p.batch}: ${p.reason ?? p.check}`).join(' | ')}`);
  process.exitCode = 1;
}
if (process.argv.includes('--json')) console.log(JSON.stringify(points));
