/** HF parity of Nemotron-H (one Mamba-2 / attention / MLP mixer per layer), and its config errors. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelError } from '../../src/index.js';
import { parseConfigJson } from '../../src/models/config.js';
import { parseNemotronHConfig } from '../../src/models/nemotron_h.js';
import { hfFixture } from '../helpers.js';
import { parityTests } from './parity-harness.js';

const ssdForms = [
  { label: 'chunked SSD', opts: {} },
  { label: 'chunked SSD, chunk 7', opts: { ssd: { algorithm: 'chunked' as const, chunkSize: 7 } } },
  { label: 'quadratic (attention) form', opts: { ssd: { algorithm: 'quadratic' as const } } },
  { label: 'recurrent form', opts: { ssd: { algorithm: 'recurrent' as const } } },
];

// layers [mamba, attention (4 heads / 2 KV, head_dim 128 ≠ 64/4, no RoPE), mamba, relu² MLP], chunk 16 (41 tokens: 3 chunks).
// HF's full forward floors Δ at time_step_min but its cached decode does not (generate.scores follow the latter):
// floor in decode too for the per-position check against the full-forward logits.
parityTests({ model: 'nemotron-h-tiny', variants: ssdForms, stepOpts: { clampDecodeDt: true } });

describe('Nemotron-H config', () => {
  const base = parseConfigJson(fs.readFileSync(path.join(hfFixture('nemotron-h-tiny'), 'config.json'), 'utf8')) as Record<string, unknown>;
  const parse = (edit: Record<string, unknown>, drop: string[] = []) => {
    const raw: Record<string, unknown> = { ...base, ...edit };
    for (const k of drop) delete raw[k];
    return parseNemotronHConfig(raw, 'config.json');
  };

  it('reads the older hybrid_override_pattern and legacy layer names as layers_block_type', () => {
    const want = parse({}).layerTypes;
    assert.deepEqual(want, ['mamba', 'attention', 'mamba', 'mlp']);
    assert.deepEqual(parse({ hybrid_override_pattern: 'M*M-' }, ['layers_block_type']).layerTypes, want);
    assert.deepEqual(parse({ layers_block_type: ['mamba', 'attention', 'mamba', 'mlp'] }).layerTypes, want);
  });

  it('names the field and the expected values in errors', () => {
    assert.throws(() => parse({ layers_block_type: ['linear_attention', 'transformer'] }),
      (e: Error) => e instanceof ModelError && /"layers_block_type"\[1\]/.test(e.message) && /"transformer"/.test(e.message) && /"full_attention"/.test(e.message));
    assert.throws(() => parse({ layers_block_type: 'M*M-' }),
      (e: Error) => e instanceof ModelError && /"layers_block_type"/.test(e.message) && /list of layer types/.test(e.message));
    assert.throws(() => parse({ hybrid_override_pattern: 'M*X-' }, ['layers_block_type']),
      (e: Error) => e instanceof ModelError && /"hybrid_override_pattern"/.test(e.message) && /position 2/.test(e.message));
    assert.throws(() => parse({}, ['layers_block_type']),
      (e: Error) => e instanceof ModelError && /"layers_block_type"/.test(e.message) && /"hybrid_override_pattern"/.test(e.message));
    assert.throws(() => parse({ mlp_hidden_act: 'tanh' }),
      (e: Error) => e instanceof ModelError && /"mlp_hidden_act"/.test(e.message) && /"relu2"/.test(e.message));
    assert.throws(() => parse({ mamba_num_heads: 6, n_groups: 4 }),
      (e: Error) => e instanceof ModelError && /"mamba_num_heads"/.test(e.message) && /n_groups/.test(e.message));
    assert.throws(() => parse({ time_step_min: -1 }),
      (e: Error) => e instanceof ModelError && /"time_step_min"/.test(e.message) && /non-negative/.test(e.message));
    assert.throws(() => parse({ time_step_limit: [0.5, 0.1] }),
      (e: Error) => e instanceof ModelError && /"time_step_limit"/.test(e.message));
  });

  it('rejects mixture-of-experts layers as not supported yet, naming the layer', () => {
    assert.throws(() => parse({ layers_block_type: ['linear_attention', 'moe', 'full_attention'] }),
      (e: Error) => e instanceof ModelError && /layer 1/.test(e.message) && /"moe"/.test(e.message) && /not supported yet/.test(e.message));
    assert.throws(() => parse({ hybrid_override_pattern: 'M*ME' }, ['layers_block_type']),
      (e: Error) => e instanceof ModelError && /layer 3/.test(e.message) && /not supported yet/.test(e.message));
  });
});
