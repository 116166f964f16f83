/** config.json as found in the wild: bare Infinity (Python json), HF 5's {"__float__": "Infinity"}; hybrid config errors. */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, ModelError } from '../../src/index.js';
import { parseConfigJson } from '../../src/models/config.js';
import { hfFixture, maxAbsDiff } from '../helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-config-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** a copy of a fixture folder with its config.json text replaced */
function withConfig(name: string, edit: (text: string) => string, weights?: (dir: string) => void): string {
  const dir = path.join(tmp, `${name}-${Math.random().toString(36).slice(2)}`);
  fs.cpSync(hfFixture(name), dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), edit(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')));
  weights?.(dir);
  return dir;
}

describe('config JSON', () => {
  it('reads bare Infinity / -Infinity / NaN and {"__float__": …}, leaving strings alone', () => {
    const v = parseConfigJson('{"a": [0.0, Infinity], "b": -Infinity, "c": NaN, "d": {"__float__": "Infinity"}, "e": "Infinity \\"NaN\\""}') as Record<string, unknown>;
    assert.deepEqual(v.a, [0, Infinity]);
    assert.equal(v.b, -Infinity);
    assert.ok(Number.isNaN(v.c as number));
    assert.equal(v.d, Infinity);
    assert.equal(v.e, 'Infinity "NaN"');
    assert.throws(() => parseConfigJson('{"a": Infinit}'));
  });

  it('a Mamba-2 config with a bare Infinity time_step_limit loads and computes the same logits', async () => {
    const a = await loadModel(hfFixture('mamba2-tiny'));
    const dir = withConfig('mamba2-tiny', (t) => {
      const c = JSON.parse(t);
      delete c.time_step_limit;
      return JSON.stringify(c).replace(/}$/, ', "time_step_limit": [0.0, Infinity]}');
    });
    assert.match(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'), /\[0\.0, Infinity\]/);
    const b = await loadModel(dir);
    const ids = [[1, 2, 3, 4, 5]];
    assert.equal(maxAbsDiff((await a.forward(ids)).logits.data, (await b.forward(ids)).logits.data), 0);
  });
});

describe('hybrid config and checkpoint errors', () => {
  it('Bamba: attention layer index out of range names the field', async () => {
    const dir = withConfig('bamba-variant', (t) => t.replace(/"attn_layer_indices": \[\s*0\s*\]/, '"attn_layer_indices": [7]'));
    await assert.rejects(loadModel(dir), (e: Error) => e instanceof ModelError && /attn_layer_indices/.test(e.message) && /\[0, 3\)/.test(e.message));
  });
  it('Bamba: mamba heads that do not fill expand × hidden name both', async () => {
    const dir = withConfig('bamba-variant', (t) => t.replace('"mamba_n_heads": 6', '"mamba_n_heads": 5'));
    await assert.rejects(loadModel(dir), /mamba_n_heads × mamba_d_head = 5 × 16 = 80.*96/);
  });
  it('Llama: heads not divisible by KV heads', async () => {
    const dir = withConfig('llama-tiny', (t) => t.replace('"num_key_value_heads": 2', '"num_key_value_heads": 3'));
    await assert.rejects(loadModel(dir), /num_attention_heads 4 is not a multiple of num_key_value_heads 3/);
  });
  it('Bamba: a missing attention weight is named', async () => {
    const { SafetensorsFile, writeSafetensorsAtomic } = await import('../../src/index.js');
    const dir = withConfig('bamba-variant', (t) => t, (d) => {
      const f = SafetensorsFile.open(path.join(d, 'model.safetensors'));
      const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
      for (const n of f.names()) if (n !== 'model.layers.0.self_attn.k_proj.weight') tensors[n] = { dtype: 'F32', shape: f.entry(n).shape, data: f.float32(n) };
      writeSafetensorsAtomic(path.join(d, 'model.safetensors'), tensors);
    });
    await assert.rejects(loadModel(dir), /missing tensor "model\.layers\.0\.self_attn\.k_proj\.weight" \(expected shape \[16, 48\]/);
  });
  it('unsupported rope scaling is refused by name', async () => {
    const dir = withConfig('llama-tiny', (t) => t.replace('"rope_type": "default"', '"rope_type": "yarn"'));
    await assert.rejects(loadModel(dir), /rope_type "yarn" is not supported/);
  });
});
