/**
 * The context sweep's bookkeeping (bench/context-sweep.ts) on whatever WebGPU adapter there is (SwiftShader
 * here), with 2-layer tiny models at contexts 8 and 16: state bytes per sequence (a Mamba-2 state is constant,
 * a KV cache grows linearly; exact bytes from the config), the decode path each model offers and the tokens'
 * check, the "out of memory" rows of impossible points, KV caches in bf16 (half the bytes; one run per format), and
 * the SVG plot.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildModel } from '../../src/models/registry.js';
import { RandomTensorSource } from '../../src/models/random.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { ratioTable, runPoint, runSweep, stateLayout, sweepChart, sweepSvg, sweepTable, type SweepPoint } from '../../bench/context-sweep.js';
import { lineChartSvg, logTicks } from '../../src/train/plot.js';
import { webgpuOrReason } from '../backend/webgpu-context.js';

const MAMBA2 = {
  model_type: 'mamba2', hidden_size: 32, num_hidden_layers: 2, state_size: 8, num_heads: 4, head_dim: 16,
  n_groups: 1, expand: 2, conv_kernel: 4, chunk_size: 8, vocab_size: 64, tie_word_embeddings: true,
};
const LLAMA = {
  model_type: 'llama', hidden_size: 32, num_hidden_layers: 2, intermediate_size: 64, num_attention_heads: 4,
  num_key_value_heads: 2, vocab_size: 64, tie_word_embeddings: true, rope_theta: 10000,
};
// Mamba-2 per sequence and layer: conv window [conv_dim = 2·32 + 2·1·8, K = 4] + SSM state [4 heads, 16, 8]
const MAMBA2_BYTES = 2 * ((64 + 16) * 4 + 4 * 16 * 8) * 4;
// Llama per sequence, layer and position: K and V of 2 KV heads × head dim 32/4 = 8
const LLAMA_PER_POSITION = 2 * 2 * 2 * 8 * 4;

const gpus: WebGpuBackend[] = [];
after(() => {
  for (const g of gpus) g.destroy();
});
const backend = async (kernels?: 'tiled' | 'simple'): Promise<WebGpuBackend | string> => {
  const g = await webgpuOrReason(kernels ? { kernels } : {});
  if (typeof g !== 'string') gpus.push(g);
  return g;
};

describe('context sweep', () => {
  it('state bytes per sequence: Mamba-2 constant, the KV cache linear in the context (exact, from the config); both decode paths check out', async (t) => {
    const gpu = await backend();
    if (typeof gpu === 'string') return t.skip(gpu);
    const m2 = buildModel(MAMBA2, 'mamba2-tiny', new RandomTensorSource(3), { backend: gpu });
    const ll = buildModel(LLAMA, 'llama-tiny', new RandomTensorSource(3), { backend: gpu });
    assert.deepEqual(stateLayout(m2), { constBytes: MAMBA2_BYTES, perPositionBytes: 0, maxTensorPerPosition: 0, grows: false });
    assert.deepEqual(stateLayout(ll), { constBytes: 0, perPositionBytes: LLAMA_PER_POSITION, maxTensorPerPosition: LLAMA_PER_POSITION / 4, grows: true });
    const steps = 3;
    for (const C of [8, 16]) {
      for (const B of [1, 2]) {
        const a = await runPoint(m2, gpu, 'mamba2-tiny', { context: C, batch: B, steps, fill: 'auto', chunk: 5 });
        assert.equal(a.status, 'ok', a.reason);
        assert.equal(a.state_bytes_per_seq, MAMBA2_BYTES);
        assert.equal(a.state_alloc_bytes_per_seq, MAMBA2_BYTES);
        assert.match(a.fill, /^prefill/);
        assert.equal(a.path, m2.chainsOnDevice ? 'greedyChain' : 'advanceArgmax');
        assert.equal(a.check, 'ok');
        assert.equal(a.steps, steps);
        assert.ok(a.tok_s! > 0 && Math.abs(a.tok_s! - (B * 1000) / a.ms_per_step!) < 1e-6 * a.tok_s!);
        assert.ok(a.peak_live_bytes! >= B * MAMBA2_BYTES && a.device_bytes! >= a.peak_live_bytes!);

        const b = await runPoint(ll, gpu, 'llama-tiny', { context: C, batch: B, steps, fill: 'auto' });
        assert.equal(b.status, 'ok', b.reason);
        assert.equal(b.state_bytes_per_seq, LLAMA_PER_POSITION * C);
        // a direct fill allocates the context, the warm-up and timed steps, and one spare position
        assert.equal(b.state_alloc_bytes_per_seq, LLAMA_PER_POSITION * (C + 2 + steps + 1));
        assert.match(b.fill, /random K\/V/);
        assert.equal(b.path, ll.chainsOnDevice ? 'greedyChain' : 'advanceArgmax');
        assert.equal(b.check, 'ok');
      }
    }
    // a real prefill reaches the same bytes in use (its cache capacity doubles: 64 positions at least)
    const p = await runPoint(ll, gpu, 'llama-tiny', { context: 16, batch: 2, steps, fill: 'prefill', chunk: 6 });
    assert.equal(p.status, 'ok', p.reason);
    assert.equal(p.state_bytes_per_seq, LLAMA_PER_POSITION * 16);
    assert.equal(p.state_alloc_bytes_per_seq, LLAMA_PER_POSITION * 64);
    assert.equal(p.check, 'ok');
  });

  it('KV caches in bf16: half the bytes a position, the check passes (direct fill and prefill); a sweep runs the Transformer once per format, the Mamba once', async (t) => {
    const gpu = await backend();
    if (typeof gpu === 'string') return t.skip(gpu);
    const ll = buildModel(LLAMA, 'llama-tiny', new RandomTensorSource(3), { backend: gpu, kvCache: 'bf16' });
    assert.deepEqual(stateLayout(ll), { constBytes: 0, perPositionBytes: LLAMA_PER_POSITION / 2, maxTensorPerPosition: LLAMA_PER_POSITION / 8, grows: true });
    for (const fill of ['direct', 'prefill'] as const) {
      const p = await runPoint(ll, gpu, 'llama-tiny (bf16 KV)', { context: 10, batch: 2, steps: 2, fill, chunk: 4 });
      assert.equal(p.status, 'ok', p.reason);
      assert.equal(p.kv_cache, 'bf16');
      assert.equal(p.state_bytes_per_seq, (LLAMA_PER_POSITION / 2) * 10);
      assert.equal(p.check, 'ok', `${fill}: ${p.check}`);
    }
    const pts = await runSweep({
      models: [{ name: 'mamba2-tiny', config: MAMBA2 }, { name: 'llama-tiny', config: LLAMA }],
      contexts: [8], batches: [1], steps: 2, fill: 'auto', kvCaches: ['f32', 'bf16'],
      makeBackend: async () => {
        const g = await webgpuOrReason(); // runSweep destroys it
        if (typeof g === 'string') throw new Error(g);
        return g;
      },
    });
    assert.deepEqual(pts.map((p) => [p.model, p.kv_cache, p.state_bytes_per_seq, p.check]), [
      ['mamba2-tiny', undefined, MAMBA2_BYTES, 'ok'],
      ['llama-tiny', 'f32', LLAMA_PER_POSITION * 8, 'ok'],
      ['llama-tiny (bf16 KV)', 'bf16', (LLAMA_PER_POSITION / 2) * 8, 'ok'],
    ]);
    const r = ratioTable(pts);
    assert.match(r, /\| context \| batch \| mamba2-tiny tok\/s \| llama-tiny tok\/s \|/);
    assert.match(r, /\| context \| batch \| mamba2-tiny tok\/s \| llama-tiny \(bf16 KV\) tok\/s \|/);
  });

  it("the tiled (GPU) kernels: the check passes too", async (t) => {
    const gpu = await backend('tiled');
    if (typeof gpu === 'string') return t.skip(gpu);
    for (const cfg of [MAMBA2, LLAMA]) {
      const lm = buildModel(cfg, 'tiny', new RandomTensorSource(5), { backend: gpu });
      const r = await runPoint(lm, gpu, 'tiny', { context: 12, batch: 3, steps: 2, fill: 'auto' });
      assert.equal(r.status, 'ok', r.reason);
      assert.equal(r.check, 'ok');
    }
  });

  it('an impossible point is an "out of memory" row, not a crash; the sweep goes on', async (t) => {
    const gpu = await backend();
    if (typeof gpu === 'string') return t.skip(gpu);
    const ll = buildModel(LLAMA, 'llama-tiny', new RandomTensorSource(3), { backend: gpu });
    // over the budget: predicted, nothing allocated (but the state layout, looked at once before)
    stateLayout(ll);
    await gpu.sync();
    const before = gpu.rt.stats().deviceBytes;
    const a = await runPoint(ll, gpu, 'llama-tiny', { context: 1 << 20, batch: 4, steps: 2, fill: 'auto', budgetBytes: 64 << 20 });
    assert.equal(a.status, 'oom');
    assert.match(a.reason!, /out of memory \(predicted\)/);
    assert.equal(a.state_bytes_per_seq, LLAMA_PER_POSITION * (1 << 20));
    assert.ok(a.needed_bytes > 64 << 20);
    assert.equal(gpu.rt.stats().deviceBytes, before);
    // no budget, but one KV tensor larger than the adapter's largest binding
    const C = Math.ceil((gpu.rt.maxBinding + 1) / (LLAMA_PER_POSITION / 4));
    const b = await runPoint(ll, gpu, 'llama-tiny', { context: C, batch: 1, steps: 2, fill: 'auto' });
    assert.equal(b.status, 'oom');
    assert.match(b.reason!, /largest buffer binding/);
    // a sweep with such a point: a row for every point, the points after it measured
    const pts = await runSweep({
      models: [{ name: 'llama-tiny', config: LLAMA }],
      contexts: [1 << 20, 8], batches: [1, 2], steps: 2, fill: 'auto', budgetBytes: 256 << 20,
      makeBackend: async () => {
        const g = await webgpuOrReason(); // runSweep destroys it
        if (typeof g === 'string') throw new Error(g);
        return g;
      },
    });
    assert.deepEqual(pts.map((p) => [p.batch, p.context, p.status]), [[1, 8, 'ok'], [1, 1 << 20, 'oom'], [2, 8, 'ok'], [2, 1 << 20, 'oom']]);
    assert.match(sweepTable(pts), /\| llama-tiny \| 1024k \| 2 \| \*\*out of memory\*\* \|/);
    const svg = sweepSvg(pts);
    assert.match(svg, /<text class="mark"[^>]*>llama-tiny, batch 1: out of memory<\/text>/);
  });
});

describe('sweep plot', () => {
  const pts: SweepPoint[] = [];
  for (const [model, base, perPos] of [['mamba2', 1000, 0], ['llama', 900, 1 << 20]] as const) {
    for (const B of [1, 32]) {
      for (const C of [1024, 4096, 16384, 65536]) {
        const oom = model === 'llama' && B === 32 && C === 65536;
        pts.push({
          model, context: C, batch: B, status: oom ? 'oom' : 'ok', fill: 'x', state_bytes_per_seq: 2 ** 20 + perPos * C / 1024, needed_bytes: 2 ** 37,
          ...(oom ? { reason: 'out of memory (predicted)' } : { tok_s: (base * B) / (perPos ? C / 1024 : 1), ms_per_step: 1, peak_live_bytes: 2 ** 28 * B, device_bytes: 2 ** 29, path: 'advanceArgmax' as const, steps: 4, check: 'ok' }),
        });
      }
    }
  }

  it('a valid SVG document with every measured point, log axes, and the OOM point marked', () => {
    const svg = sweepSvg(pts);
    assert.ok(svg.startsWith('<?xml') && svg.trimEnd().endsWith('</svg>'));
    // well formed: every opened element closed, in order (the writer emits one element per tag)
    const stack: string[] = [];
    for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
      if (m[0].startsWith('<?')) continue;
      if (m[1]) assert.equal(stack.pop(), m[2], `closing </${m[2]}>`);
      else if (!m[3]) stack.push(m[2]);
    }
    assert.deepEqual(stack, []);
    assert.doesNotMatch(svg, /NaN|Infinity|undefined/);
    // 4 series of 4 points in the speed and GPU panels (one OOM point fewer), 2 series in the state panel: markers at each
    for (const name of ['mamba2, batch 1', 'mamba2, batch 32', 'llama, batch 1', 'llama, batch 32']) assert.ok(svg.includes(`data-series="${name}"`), name);
    const circles = svg.match(/<circle /g)?.length ?? 0;
    assert.equal(circles, (16 - 1) + 8 + (16 - 1));
    assert.equal(svg.match(/<text class="mark"/g)?.length, 2);
    assert.match(svg, />llama, batch 32: out of memory<\/text>/);
    for (const l of ['1k', '4k', '16k', '64k']) assert.match(svg, new RegExp(`>${l}</text>`));
    // the chart: the x axis is logarithmic, so 1k → 4k → 16k → 64k are equally spaced
    const opts = sweepChart(pts);
    assert.equal(opts.xScale, 'log');
    const xs = [...svg.matchAll(/<text x="([\d.]+)" y="[\d.]+" text-anchor="middle">(1k|4k|16k|64k)<\/text>/g)].slice(0, 4).map((m) => Number(m[1]));
    assert.equal(xs.length, 4);
    assert.ok(Math.abs((xs[1] - xs[0]) - (xs[3] - xs[2])) < 0.05 && Math.abs((xs[2] - xs[1]) - (xs[1] - xs[0])) < 0.05, xs.join(','));
  });

  it('ratio table: speed of the first model over the second, memory of the second over the first; OOM says so', () => {
    const r = ratioTable(pts);
    assert.match(r, /\| 1k \| 1 \| 1,000\.0 \| 900\.0 \| 1\.11× \| 1\.00 \| 2\.00 \| 2\.00× \|/);
    assert.match(r, /\| 64k \| 32 \| 32,000\.0 \| out of memory \| ∞ \(llama out of memory\) \|/);
  });

  it('log ticks: decades, with 2 and 5 between when the range is short', () => {
    assert.deepEqual(logTicks(3, 5).ticks.map((t) => t.label), ['1k', '2k', '5k', '10k', '20k', '50k', '100k']);
    assert.deepEqual(logTicks(0, 6).ticks.map((t) => t.label), ['1', '10', '100', '1k', '10k', '100k', '1M']);
    const svg = lineChartSvg({ xScale: 'log', panels: [{ yScale: 'log', series: [{ name: 's', x: [1, 10, 0, 100], y: [1, 0.1, 5, 0.01] }] }] });
    assert.match(svg, />0\.01<\/text>/);
    assert.doesNotMatch(svg, /NaN/);
  });
});
