/**
 * Jamba: HF parity (Mamba-1 layers with dt/B/C norms, NoPE GQA attention, dense MLP and softmax→top-k MoE),
 * and loading errors that name the field / tensor.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, ModelError, SafetensorsFile, writeSafetensorsAtomic } from '../../src/index.js';
import type { WritableTensor } from '../../src/io/safetensors.js';
import { parseJambaConfig } from '../../src/models/jamba.js';
import { hfFixture } from '../helpers.js';
import { parityTests } from './parity-harness.js';

const scans = [
  { label: 'sequential scan', opts: { scan: { algorithm: 'sequential' as const, chunkSize: 64 } } },
  { label: 'chunked scan, chunk 8', opts: { scan: { algorithm: 'chunked' as const, chunkSize: 8 } } },
];

// 4 layers: mamba+MLP, attention+MoE, mamba+MLP, attention+MoE; 4 experts, top-2; GQA 4/2; dt rank 8
parityTests({ model: 'jamba-tiny', variants: scans });

const TINY = hfFixture('jamba-tiny');
const tinyConfig = JSON.parse(fs.readFileSync(path.join(TINY, 'config.json'), 'utf8'));
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-jamba-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

function makeModelDir(name: string, config: object, edit: (t: Record<string, WritableTensor>) => void = () => {}): string {
  const dir = path.join(tmpRoot, name);
  fs.mkdirSync(dir, { recursive: true });
  const src = SafetensorsFile.open(path.join(TINY, 'model.safetensors'));
  const tensors: Record<string, WritableTensor> = {};
  for (const n of src.names()) tensors[n] = { dtype: 'F32', shape: src.entry(n).shape, data: src.float32(n) };
  edit(tensors);
  writeSafetensorsAtomic(path.join(dir, 'model.safetensors'), tensors);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

const rejects = (p: Promise<unknown>, ...patterns: RegExp[]) =>
  assert.rejects(p, (e: Error) => {
    assert.ok(e instanceof ModelError, `expected ModelError, got ${e.constructor.name}: ${e.message}`);
    for (const re of patterns) assert.match(e.message, re);
    return true;
  });

describe('Jamba config and checkpoint errors', () => {
  it('layer pattern and experts per layer follow the periods and offsets', () => {
    const c = parseJambaConfig({ ...tinyConfig, num_hidden_layers: 6, attn_layer_period: 3, attn_layer_offset: 2, expert_layer_period: 2, expert_layer_offset: 0 });
    assert.deepEqual(c.layerTypes, ['mamba', 'mamba', 'attention', 'mamba', 'mamba', 'attention']);
    assert.deepEqual(c.layerExperts, [4, 1, 4, 1, 4, 1]);
    assert.equal(parseJambaConfig({ ...tinyConfig, mamba_dt_rank: 'auto' }).dtRank, 4); // ⌈64/16⌉
    assert.equal(parseJambaConfig(tinyConfig).mambaInner, 128); // mamba_expand · hidden_size, not intermediate_size
  });

  it('attn_layer_offset >= attn_layer_period fails naming the field', async () => {
    const dir = makeModelDir('bad-offset', { ...tinyConfig, attn_layer_offset: 2 });
    await rejects(loadModel(dir), /config\.json/, /"attn_layer_offset"/, /is 2/, /smaller than "attn_layer_period" = 2/);
  });

  it('expert_layer_offset >= expert_layer_period fails naming the field', () =>
    assert.throws(() => parseJambaConfig({ ...tinyConfig, expert_layer_offset: 5 }), /"expert_layer_offset" is 5/));

  it('num_attention_heads not a multiple of num_key_value_heads fails naming the field', () =>
    assert.throws(() => parseJambaConfig({ ...tinyConfig, num_key_value_heads: 3 }), /"num_key_value_heads" is 3; expected a divisor of "num_attention_heads" = 4/));

  it('more experts per token than experts fails naming the field', () =>
    assert.throws(() => parseJambaConfig({ ...tinyConfig, num_experts_per_tok: 5 }), /"num_experts_per_tok" is 5/));

  it('fused expert tensors (gate_up_proj [E, 2I, H], down_proj [E, H, I]) give the same logits', async () => {
    const dir = makeModelDir('fused-experts', tinyConfig, (t) => {
      for (const l of [1, 3]) {
        const p = `model.layers.${l}.feed_forward.experts.`;
        const gu = new Float32Array(4 * 256 * 64);
        const dn = new Float32Array(4 * 64 * 128);
        for (let e = 0; e < 4; e++) {
          gu.set(t[`${p}${e}.gate_proj.weight`].data as Float32Array, e * 256 * 64);
          gu.set(t[`${p}${e}.up_proj.weight`].data as Float32Array, (e * 256 + 128) * 64);
          dn.set(t[`${p}${e}.down_proj.weight`].data as Float32Array, e * 64 * 128);
          for (const n of ['gate', 'up', 'down']) delete t[`${p}${e}.${n}_proj.weight`];
        }
        t[`${p}gate_up_proj`] = { dtype: 'F32', shape: [4, 256, 64], data: gu };
        t[`${p}down_proj`] = { dtype: 'F32', shape: [4, 64, 128], data: dn };
      }
    });
    const ids = [[5, 17, 300, 42, 9, 1, 77]];
    const [a, b] = await Promise.all([loadModel(TINY), loadModel(dir)]);
    assert.deepEqual((await b.forward(ids)).logits.data, (await a.forward(ids)).logits.data);
  });

  it('a missing attention weight fails naming the tensor', async () => {
    const dir = makeModelDir('no-k-proj', tinyConfig, (t) => {
      delete t['model.layers.1.self_attn.k_proj.weight'];
    });
    await rejects(loadModel(dir), /missing tensor "model\.layers\.1\.self_attn\.k_proj\.weight"/, /\[32, 64\]/);
  });

  it('a mamba_dt_rank that does not fit the checkpoint fails naming the tensor and the field', async () => {
    const dir = makeModelDir('bad-dt-rank', { ...tinyConfig, mamba_dt_rank: 'auto' });
    await rejects(loadModel(dir), /"model\.layers\.0\.mamba\.(x_proj|dt_layernorm)\.weight"/, /mamba_dt_rank=4/);
  });
});
