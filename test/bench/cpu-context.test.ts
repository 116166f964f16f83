/**
 * The CPU context bench's pure helpers (bench/cpu-context.ts): llama-bench's command line and JSON, llama.cpp's
 * bytes of state per sequence, the table with ratios, and the plot with llama.cpp's series dashed next to ours.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cacheTypeBytes, contextTable, llamaBenchArgs, llamaStateBytes, parseLlamaBench, type CpuPoint } from '../../bench/cpu-context.js';
import { sweepChart, sweepSvg } from '../../bench/context-sweep.js';

// the JSON rows `llama-bench -o json` writes (fields trimmed to those read, plus a few others)
const LLAMA_JSON = JSON.stringify([
  { build_commit: 'unknown', model_type: 'llama ?B all F32', n_prompt: 0, n_gen: 32, n_depth: 2048, type_k: 'f16', type_v: 'f16', flash_attn: 0, avg_ts: 30.5, stddev_ts: 0 },
  { build_commit: 'unknown', n_prompt: 0, n_gen: 32, n_depth: 8192, type_k: 'q8_0', type_v: 'q8_0', flash_attn: 1, avg_ts: 12.25, stddev_ts: 0 },
]);

describe('CPU context bench helpers', () => {
  it('llama-bench arguments: decode only (-p 0), at depth C, one repetition, JSON; extra arguments last', () => {
    assert.deepEqual(llamaBenchArgs('/m/llama-130m-f32.gguf', 8192, 16, 2, ['-fa', '0']),
      ['-m', '/m/llama-130m-f32.gguf', '-p', '0', '-n', '16', '-d', '8192', '-t', '2', '-r', '1', '-o', 'json', '-fa', '0']);
  });

  it('parses the decode row at the asked depth; says what is missing otherwise', () => {
    const r = parseLlamaBench(LLAMA_JSON, 8192, 32);
    assert.deepEqual(r, { tok_s: 12.25, n_depth: 8192, n_gen: 32, type_k: 'q8_0', type_v: 'q8_0', flash_attn: 'on', build_commit: 'unknown' });
    assert.equal(parseLlamaBench(LLAMA_JSON, 2048, 32).flash_attn, 'off');
    assert.throws(() => parseLlamaBench(LLAMA_JSON, 4096, 32, 'llama-bench on x.gguf'), /llama-bench on x\.gguf: no row with n_prompt 0, n_gen 32, n_depth 4096/);
    assert.throws(() => parseLlamaBench('error: unknown argument -d', 512, 32), /not JSON/);
    assert.throws(() => parseLlamaBench('{}', 512, 32), /expected a JSON array/);
    assert.throws(() => parseLlamaBench(JSON.stringify([{ n_prompt: 0, n_gen: 32, n_depth: 512, avg_ts: 0 }]), 512, 32), /avg_ts 0 is not a positive number/);
  });

  it("llama.cpp's state: the SSM state as ours, K and V per position in its cache types", () => {
    // llama-130m: 24 layers × K and V × 768 f32 per position
    const lay = { constBytes: 0, perPositionBytes: 24 * 2 * 768 * 4, maxTensorPerPosition: 768 * 4, grows: true };
    assert.equal(llamaStateBytes(lay, 1000, 'f16', 'f16'), 1000 * 24 * 2 * 768 * 2);
    assert.equal(llamaStateBytes(lay, 1000, 'f32', 'q8_0'), 1000 * 24 * 768 * (4 + 34 / 32));
    const ssm = { constBytes: 12345, perPositionBytes: 0, maxTensorPerPosition: 0, grows: false };
    assert.equal(llamaStateBytes(ssm, 32768, 'f16', 'f16'), 12345);
    assert.equal(cacheTypeBytes('bf16'), 2);
    assert.throws(() => cacheTypeBytes('f8'), /cache type "f8": unknown/);
  });

  const ok = (model: string, context: number, tok_s: number, extra: Partial<CpuPoint> = {}): CpuPoint => ({
    model, context, batch: 1, status: 'ok', fill: 'x', steps: 8, tok_s, ms_per_step: 1000 / tok_s, state_bytes_per_seq: 2 ** 20 * (context / 512), needed_bytes: 0, check: 'ok', ...extra,
  });
  const points: CpuPoint[] = [
    ok('mamba-130m', 512, 80), ok('mamba-130m', 512, 64, { engine: 'llama.cpp', type_k: 'f16', type_v: 'f16' }),
    ok('mamba-130m', 8192, 79), ok('mamba-130m', 8192, 63, { engine: 'llama.cpp', type_k: 'f16', type_v: 'f16' }),
    ok('llama-130m', 512, 50, { attention_ms_per_step: 2, kv_gb_s: 12.5 }), ok('llama-130m', 512, 40, { engine: 'llama.cpp', type_k: 'f16', type_v: 'f16' }),
    ok('llama-130m', 8192, 20, { attention_ms_per_step: 25, kv_gb_s: 11 }),
    { model: 'llama-130m', engine: 'llama.cpp', context: 8192, batch: 1, status: 'failed', reason: 'killed', fill: 'x', state_bytes_per_seq: 2 ** 24, needed_bytes: 0 },
    ok('hybrid-130m', 512, 70, { attention_ms_per_step: 0.5 }),
  ];

  it('table: ours, llama.cpp, the ratio; attention share and KV stream; a model without a llama.cpp file against its reference', () => {
    const t = contextTable(points, { 'hybrid-130m': 'llama-130m' });
    assert.match(t, /\| mamba-130m \| 512 \| 80\.0 \| 12\.5 \| — \| 1\.00 \| 64\.0 \| 1\.00 \(K f16, V f16\) \| \*\*1\.25×\*\* \|/);
    assert.match(t, /\| llama-130m \| 512 \| 50\.0 \| 20\.0 \| 2\.0 \(10%, 12\.5 GB\/s\) \| 1\.00 \| 40\.0 \|/);
    // llama.cpp failed at 8k: said so, no ratio
    assert.match(t, /\| llama-130m \| 8k \| 20\.0 \| 50\.0 \| 25\.0 \(50%, 11\.0 GB\/s\) \| 16\.0 \| failed \| 16\.0 \| — \|/);
    assert.match(t, /\| hybrid-130m \| 512 \| 70\.0 \| 14\.3 \| 0\.5 \(4%\) \| 1\.00 \| 40\.0 \(its llama-130m\) \| 1\.00 \(K f16, V f16\) \(its llama-130m\) \| \*\*1\.75×\*\* \(its llama-130m\) \|/);
    // no llama.cpp point and no reference: dashes
    assert.match(contextTable([ok('mamba2-130m', 512, 70)]), /\| mamba2-130m \| 512 \| 70\.0 \| 14\.3 \| — \| 1\.00 \| — \| — \| — \|/);
    assert.equal(t.split('\n').length, 2 + 5);
  });

  it("plot: llama.cpp's series dashed in its model's colour, no GPU panel for CPU points, the failed point marked", () => {
    const c = sweepChart(points, 'cpu');
    assert.equal(c.panels.length, 2);
    const speed = c.panels[0].series;
    assert.deepEqual(speed.map((s) => s.name), ['mamba-130m, batch 1', 'mamba-130m (llama.cpp), batch 1', 'llama-130m, batch 1', 'llama-130m (llama.cpp), batch 1', 'hybrid-130m, batch 1']);
    assert.deepEqual(speed.map((s) => !!s.dashed), [false, true, false, true, false]);
    assert.equal(speed[0].color, speed[1].color);
    assert.notEqual(speed[0].color, speed[2].color);
    assert.deepEqual(Array.from(speed[3].y, (y) => Number.isNaN(y)), [false, true]);
    assert.deepEqual(c.panels[0].marks?.map((m) => m.label), ['llama-130m (llama.cpp), batch 1: failed']);
    assert.equal(c.panels[0].title, 'decode tokens/s (batch 1)');
    const svg = sweepSvg(points, 'cpu');
    assert.ok(svg.includes('data-series="llama-130m (llama.cpp), batch 1"'));
    assert.doesNotMatch(svg, /NaN|undefined/);
  });
});
