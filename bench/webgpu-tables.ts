/**
 * Tables of the WebGPU suite (bench/webgpu-suite.ts): webgpu.bench.js's JSON as markdown, and the larger shapes
 * beside the official kernels (scripts/anchors/official_shapes.py's JSON lines).
 */
import { fmt1, markdownTable } from './report.js';

export interface Batched { batch: number; tok_s: number; ms_per_step: number; chained_tok_s: number }
export interface Result {
  preset: string; weights: string; backend: string; weight_mib: number; prompt: number;
  prefill_tok_s: number; decode_tok_s: number; chained_tok_s: number | null; generate_tok_s: number;
  host_us_per_token: number; dispatches_per_token: number; batched: Batched[];
}
const f1 = fmt1;

/** the speed table and the batched-decode table of webgpu.bench.js's JSON */
export function speedTables(rs: Result[]): string {
  const main = markdownTable({
    head: ['model', 'weights', 'weights MiB', 'prefill tok/s', 'decode sync tok/s', 'decode greedyChain tok/s', 'generate() tok/s', 'host µs/token', 'dispatches/token'],
    align: ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    rows: rs.map((r) => [r.preset, r.weights, f1(r.weight_mib), f1(r.prefill_tok_s), f1(r.decode_tok_s), f1(r.chained_tok_s), f1(r.generate_tok_s), f1(r.host_us_per_token), String(r.dispatches_per_token)]),
  });
  const batches = [...new Set(rs.flatMap((r) => r.batched.map((b) => b.batch)))].sort((a, b) => a - b);
  if (batches.length === 0) return main;
  const batched = markdownTable({
    head: ['batch', ...rs.map((r) => `${r.preset} ${r.weights} (sync / greedyChain)`)],
    align: ['r', ...rs.map(() => 'r' as const)],
    rows: batches.map((B) => [String(B), ...rs.map((r) => {
      const b = r.batched.find((x) => x.batch === B);
      return b ? `${f1(b.tok_s)} / ${f1(b.chained_tok_s)}` : '—';
    })]),
  });
  return `${main}\n\nBatched greedy decode, total tok/s over the batch:\n\n${batched}`;
}

export /** the official kernels' figures (scripts/anchors/official_shapes.py's JSON lines) */
interface Anchor { arch: string; size: string; dtype: string; prefill_tok_s: number | null; prefill_impl: string; decode_graph_tok_s?: number; decode_eager_tok_s?: number; error?: string }

/** ours beside the official kernels at the same shape and dtype */
export function anchorTable(rs: Result[], an: Anchor[]): string {
  const rows: string[][] = [];
  const ratio = (a: number | null | undefined, b: number | null | undefined) => (a && b ? `${(a / b).toFixed(2)}×` : '—');
  for (const r of rs) {
    const m = /^(mamba2?)-(.+)$/.exec(r.preset);
    const a = m && an.find((x) => x.arch === m[1] && x.size === m[2] && x.dtype === (r.weights === 'bf16' ? 'bf16' : 'fp32'));
    if (!a) continue;
    rows.push([r.preset, r.weights, f1(r.prefill_tok_s), a.error ?? f1(a.prefill_tok_s), ratio(r.prefill_tok_s, a.prefill_tok_s), f1(r.chained_tok_s), f1(a.decode_graph_tok_s), ratio(r.chained_tok_s, a.decode_graph_tok_s)]);
  }
  return markdownTable({
    head: ['shape', 'weights', 'prefill tok/s', 'official prefill tok/s', 'ratio', 'decode greedyChain tok/s', 'official decode, CUDA graph', 'ratio'],
    align: ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r'],
    rows,
  }) + '\n\nOfficial: Triton SSD (Mamba-2) / selective_scan_fn (Mamba-1, only with its CUDA extension) prefill and `selective_state_update` decode, ' +
    'torch matmuls; its bf16 runs activations in bf16 too, ours keeps f32 activations with bf16 weights.';
}

