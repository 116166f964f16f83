/**
 * The WebGPU suite's tables (bench/webgpu-tables.ts): webgpu.bench.js's JSON as markdown, and the larger shapes
 * beside the official kernels' figures with their ratios (matched by arch, size and dtype).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { anchorTable, speedTables, type Anchor, type Result } from '../../bench/webgpu-tables.js';

const result = (preset: string, weights: string, prefill: number, chained: number | null): Result => ({
  preset, weights, backend: 'webgpu(test)', weight_mib: 10000, prompt: 2048, prefill_tok_s: prefill, decode_tok_s: 40,
  chained_tok_s: chained, generate_tok_s: 50, host_us_per_token: 12.5, dispatches_per_token: 260,
  batched: [{ batch: 8, tok_s: 300, ms_per_step: 26.7, chained_tok_s: 400 }],
});

describe('webgpu suite tables', () => {
  it('speed table and batched table', () => {
    const md = speedTables([result('mamba-2.8b', 'f32', 2119.04, 97.3), result('llama-130m', 'f32', 6622, null)]);
    assert.match(md, /\| mamba-2\.8b \| f32 \| 10,000\.0 \| 2,119\.0 \| 40\.0 \| 97\.3 \| 50\.0 \| 12\.5 \| 260 \|/);
    assert.match(md, /\| llama-130m \| f32 \| 10,000\.0 \| 6,622\.0 \| 40\.0 \| — \|/);
    assert.match(md, /\| 8 \| 300\.0 \/ 400\.0 \| 300\.0 \/ 400\.0 \|/);
  });

  it('beside the official kernels: same arch, size and dtype; a missing figure is a dash, not a ratio', () => {
    const an: Anchor[] = [
      { arch: 'mamba2', size: '2.8b', dtype: 'fp32', prefill_tok_s: 6416, prefill_impl: 'ssd', decode_graph_tok_s: 51.3 },
      { arch: 'mamba2', size: '2.8b', dtype: 'bf16', prefill_tok_s: 20000, prefill_impl: 'ssd', decode_graph_tok_s: 100 },
      { arch: 'mamba', size: '2.8b', dtype: 'fp32', prefill_tok_s: null, prefill_impl: 'not measured', decode_graph_tok_s: 48.65 },
    ];
    const md = anchorTable([result('mamba2-2.8b', 'f32', 3208, 102.6), result('mamba-2.8b', 'f32', 2119, 97.3), result('mamba-1.4b', 'f32', 1, 1)], an);
    assert.match(md, /\| mamba2-2\.8b \| f32 \| 3,208\.0 \| 6,416\.0 \| 0\.50× \| 102\.6 \| 51\.3 \| 2\.00× \|/);
    assert.match(md, /\| mamba-2\.8b \| f32 \| 2,119\.0 \| — \| — \| 97\.3 \| 48\.7 \| 2\.00× \|/);
    assert.doesNotMatch(md, /mamba-1\.4b/);
  });
});
