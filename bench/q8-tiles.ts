/**
 * The prefill with each of the tiled GEMM's q8 tile loads (WebGpuBackendOptions.q8Tiles: 'vector', 'scalar') on one
 * model: the modes' repetitions interleaved (A B, B A, …; a first untimed round compiles each mode's kernels), the
 * wall time of each prefill (logits read back), and each mode's logits against the first mode's first ones (max
 * relative Δ: the modes multiply by the same numbers in the same order, so 0 is expected). The backend's mode is
 * restored afterwards. Used by webgpu.bench `--q8-tiles`.
 */
import type { WebGpuBackend } from '../src/backend/webgpu/index.js';
import { maxRelErr } from '../src/backend/webgpu/backend.js';
import type { WebGpuQ8Tiles } from '../src/backend/webgpu/options.js';
import type { CausalLM } from '../src/models/causal-lm.js';

export interface Q8TilesPrefill {
  mode: WebGpuQ8Tiles;
  prefill_tok_s: number;
  prefill_ms: number[];
  logits_max_rel_diff: number;
}

export async function prefillByQ8Tiles(backend: WebGpuBackend, lm: CausalLM, ids: number[], modes: readonly WebGpuQ8Tiles[], reps: number): Promise<Q8TilesPrefill[]> {
  const saved = backend.q8Tiles;
  const ms = new Map<WebGpuQ8Tiles, number[]>(modes.map((m) => [m, []]));
  const diff = new Map<WebGpuQ8Tiles, number>(modes.map((m) => [m, 0]));
  let first: Float32Array | null = null;
  try {
    for (let r = 0; r <= reps; r++) {
      for (const m of r % 2 ? [...modes].reverse() : modes) {
        backend.q8Tiles = m;
        const s = lm.createState(1);
        const t = performance.now();
        const l = (await lm.advance([ids], s)).data;
        if (r > 0) ms.get(m)!.push(performance.now() - t);
        if (!first) first = l.slice();
        else diff.set(m, Math.max(diff.get(m)!, maxRelErr(l, first)));
        s.dispose();
      }
    }
  } finally {
    backend.q8Tiles = saved;
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return modes.map((m) => ({ mode: m, prefill_tok_s: ids.length / (median(ms.get(m)!) / 1000), prefill_ms: ms.get(m)!, logits_max_rel_diff: diff.get(m)! }));
}
