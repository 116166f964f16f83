/**
 * Logits of quantized GGUF models against the same model in F32 (the BENCHMARKS.md table; the numbers are printed
 * as test diagnostics): the fixtures exported as F16/BF16/Q8_0, and a synthetic Mamba 256 wide (K-quants need rows
 * of 256) with its matrices quantized to every type mamba-ts reads by the reference quantizers of gguf-ref-quants.ts.
 * Each type's error must stay within its bound, and fewer bits must not do better than more.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assembleModel } from '../../src/api/model.js';
import { cpu } from '../../src/backend/cpu/index.js';
import { GgufFile, encodeModelGguf, ggufModelParts, readExportInput } from '../../src/io/gguf.js';
import { encodeGguf, type GgufTensorOut } from '../../src/io/gguf-format.js';
import { GGML_TYPES } from '../../src/io/gguf-quants.js';
import type { RawConfig } from '../../src/models/config.js';
import { RandomTensorSource } from '../../src/models/random.js';
import { concatChunks as concat } from '../../src/io/gguf-format.js';
import { hfFixture } from '../helpers.js';
import { CASES } from './gguf-ref-quants.js';


const IDS = [Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % 500), Array.from({ length: 24 }, (_, i) => (i * 11 + 1) % 500)];

async function logits(bytes: Uint8Array): Promise<Float32Array> {
  const m = assembleModel(ggufModelParts(GgufFile.fromBytes(bytes, 'q.gguf'), { tokenizer: false }), { backend: cpu });
  return (await m.forward(IDS)).logits.data;
}

/** max |Δ| and ‖Δ‖ / ‖ref‖ */
function error(ref: Float32Array, got: Float32Array): { maxAbs: number; relRms: number } {
  let maxAbs = 0, num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = got[i] - ref[i];
    maxAbs = Math.max(maxAbs, Math.abs(d));
    num += d * d;
    den += ref[i] * ref[i];
  }
  return { maxAbs, relRms: Math.sqrt(num / den) };
}

/** an HF Mamba checkpoint of random weights (src/models/random.ts's init), as export input */
function syntheticMamba(): Parameters<typeof encodeModelGguf>[0] {
  const config: RawConfig = {
    model_type: 'mamba', hidden_size: 256, intermediate_size: 512, state_size: 16, time_step_rank: 16, conv_kernel: 4, num_hidden_layers: 2,
    vocab_size: 512, tie_word_embeddings: true, use_bias: false, use_conv_bias: true, layer_norm_epsilon: 1e-5,
  };
  const shapes: Record<string, number[]> = { 'backbone.embeddings.weight': [512, 256], 'backbone.norm_f.weight': [256] };
  for (let i = 0; i < 2; i++) {
    const p = `backbone.layers.${i}`;
    Object.assign(shapes, {
      [`${p}.norm.weight`]: [256], [`${p}.mixer.in_proj.weight`]: [1024, 256], [`${p}.mixer.conv1d.weight`]: [512, 1, 4], [`${p}.mixer.conv1d.bias`]: [512],
      [`${p}.mixer.x_proj.weight`]: [48, 512], [`${p}.mixer.dt_proj.weight`]: [512, 16], [`${p}.mixer.dt_proj.bias`]: [512],
      [`${p}.mixer.A_log`]: [512, 16], [`${p}.mixer.D`]: [512], [`${p}.mixer.out_proj.weight`]: [256, 512],
    });
  }
  const src = new RandomTensorSource(7);
  for (const [n, s] of Object.entries(shapes)) src.shapeFor(n, s);
  return { config, configLabel: 'synthetic', weights: { files: [], names: () => Object.keys(shapes), has: (n: string) => n in shapes, entry: (n: string) => src.entry(n), float32: (n: string) => src.float32(n) }, tokenizer: null, name: 'synthetic-mamba' };
}

/** the F32 file with every matrix the converter would quantize (rows a multiple of the block) encoded as `type` */
function requantize(f32: Uint8Array, type: number, encode: (x: Float32Array) => { bytes: Uint8Array }): Uint8Array {
  const g = GgufFile.fromBytes(f32, 'f32.gguf');
  const tensors: GgufTensorOut[] = [...g.tensors.values()].map((t) => {
    const quantizable = t.shape.length >= 2 && t.name.endsWith('.weight') && !/_norm|ssm_conv1d|ffn_gate_inp/.test(t.name) && t.shape.at(-1)! % GGML_TYPES[type].blockSize === 0;
    return quantizable ? { name: t.name, shape: t.shape, type, data: encode(g.float32(t.name)).bytes } : { name: t.name, shape: t.shape, type: t.type, data: g.bytes(t.name) };
  });
  return concat(encodeGguf([...g.metadata], tensors));
}

test('logits error of quantized GGUFs against F32', async (t) => {
  const report = (model: string, type: string, e: { maxAbs: number; relRms: number }) =>
    t.diagnostic(`gguf-logits ${model} ${type}: max|Δ| ${e.maxAbs.toExponential(2)}, ‖Δ‖/‖ref‖ ${e.relRms.toExponential(2)}`);

  // the fixtures, through our exporter
  for (const fixture of ['mamba-tiny', 'mamba2-tiny', 'bamba-tiny', 'jamba-tiny']) {
    const input = readExportInput(hfFixture(fixture));
    const ref = await logits(concat(encodeModelGguf(input, 'f32')));
    for (const [type, bound] of [['f16', 2e-3], ['bf16', 1.5e-2], ['q8_0', 5e-2]] as const) {
      const e = error(ref, await logits(concat(encodeModelGguf(input, type))));
      report(fixture, type, e);
      assert.ok(e.relRms > 0 && e.relRms < bound, `${fixture} ${type}: relative error ${e.relRms} (bound ${bound})`);
    }
  }

  // a 256-wide Mamba, every type
  const input = syntheticMamba();
  const f32 = concat(encodeModelGguf(input, 'f32'));
  const ref = await logits(f32);
  const errs: Record<string, number> = {};
  const q8 = error(ref, await logits(concat(encodeModelGguf(input, 'q8_0'))));
  report('synthetic-mamba-256', 'q8_0 (export)', q8);
  const BOUND: Record<string, number> = { Q8_0: 0.02, Q6_K: 0.06, Q5_0: 0.12, Q5_1: 0.12, Q5_K: 0.12, Q4_0: 0.25, Q4_1: 0.25, Q4_K: 0.25 };
  for (const [name, type, encode] of CASES) {
    const e = error(ref, await logits(requantize(f32, type, encode)));
    report('synthetic-mamba-256', name, e);
    errs[name] = e.relRms;
    assert.ok(e.relRms > 0 && e.relRms < BOUND[name], `${name}: relative error ${e.relRms} (bound ${BOUND[name]})`);
  }
  assert.ok(q8.relRms < BOUND.Q8_0 && Math.abs(q8.relRms - errs.Q8_0) < errs.Q8_0, 'our Q8_0 export matches the reference Q8_0 error');
  const q4 = error(ref, await logits(concat(encodeModelGguf(input, 'q4_k'))));
  report('synthetic-mamba-256', 'q4_k (export)', q4);
  assert.ok(q4.relRms > 0 && q4.relRms <= errs.Q4_K, `our Q4_K export (error-minimizing search) errs no more than the reference round-to-nearest: ${q4.relRms} vs ${errs.Q4_K}`);
  const worst = (names: string[]) => Math.max(...names.map((n) => errs[n]));
  const best = (names: string[]) => Math.min(...names.map((n) => errs[n]));
  assert.ok(errs.Q8_0 < errs.Q6_K && errs.Q6_K < best(['Q5_0', 'Q5_1', 'Q5_K']) && worst(['Q5_0', 'Q5_1', 'Q5_K']) < best(['Q4_0', 'Q4_1', 'Q4_K']), `more bits, less error: ${JSON.stringify(errs)}`);
});
