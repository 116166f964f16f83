/**
 * Granite 4.0-H (`granitemoehybrid`): HF parity of the tiny fixture (Mamba-2 + RoPE attention, 4 experts top-2
 * + shared MLP, muP multipliers, untied head) under every SSD form; the configurations the fixture does not
 * cover (no experts, NoPE, tied head) checked for cached-decode self-consistency; config errors naming the field.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, ModelError } from '../../src/index.js';
import { parseConfigJson } from '../../src/models/config.js';
import { parseGraniteHybridConfig } from '../../src/models/granite_hybrid.js';
import { hfFixture, maxAbsDiff } from '../helpers.js';
import { parityTests, TOL } from './parity-harness.js';

const ssdForms = [
  { label: 'chunked SSD', opts: {} },
  { label: 'chunked SSD, chunk 7', opts: { ssd: { algorithm: 'chunked' as const, chunkSize: 7 } } },
  { label: 'quadratic (attention) form', opts: { ssd: { algorithm: 'quadratic' as const } } },
  { label: 'recurrent form', opts: { ssd: { algorithm: 'recurrent' as const } } },
];

parityTests({ model: 'granite-hybrid-tiny', variants: ssdForms });

const FIXTURE = hfFixture('granite-hybrid-tiny');
// time_step_limit is [0, Infinity] (written {"__float__": "Infinity"}), which JSON.parse alone cannot read
const CONFIG = parseConfigJson(fs.readFileSync(path.join(FIXTURE, 'config.json'), 'utf8')) as Record<string, unknown>;
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-granite-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

/** the fixture's weights with an edited config.json (time_step_limit left to its default, the same [0, ∞]) */
function variantDir(name: string, edit: Record<string, unknown>): string {
  const dir = path.join(tmpRoot, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(FIXTURE, 'model.safetensors'), path.join(dir, 'model.safetensors'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...CONFIG, time_step_limit: undefined, ...edit }));
  return dir;
}

describe('Granite 4.0-H configurations beyond the fixture', () => {
  const ids = [[5, 17, 300, 2, 44, 44, 9, 120, 511, 0, 63], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]];
  const cases: Array<[string, Record<string, unknown>]> = [
    ['shared MLP only (num_local_experts 0)', { num_local_experts: 0 }],
    ['NoPE attention', { position_embedding_type: 'nope' }],
    ['tied head, legacy layer names', { tie_word_embeddings: true, layer_types: ['mamba', 'attention', 'mamba', 'mamba'] }],
  ];
  cases.forEach(([label, edit], n) => {
    it(`${label}: token-by-token decode equals the full forward`, async () => {
      const model = await loadModel(variantDir(`v${n}`, edit));
      const full = await model.forward(ids);
      const [b, L, V] = full.logits.shape;
      assert.ok(full.logits.data.every(Number.isFinite));
      const state = model.createState(b);
      for (let t = 0; t < L; t++) {
        const step = await model.lm.advance(ids.map((r) => [r[t]]), state);
        for (let r = 0; r < b; r++) {
          const d = maxAbsDiff(step.data.subarray(r * V, (r + 1) * V), full.logits.data.subarray((r * L + t) * V, (r * L + t + 1) * V));
          assert.ok(d <= TOL, `row ${r} position ${t}: max |Δlogit| = ${d}`);
        }
      }
    });
  });

  it('the variants differ from the fixture model where they should', async () => {
    const base = await (await loadModel(FIXTURE)).forward(ids);
    for (const [label, edit] of cases) {
      const v = await (await loadModel(variantDir(`d-${label.replace(/\W+/g, '-')}`, edit))).forward(ids);
      // the fixture's logits are small (|logit| < 0.3: random init, logits_scaling 4), float noise ~1e-7
      assert.ok(maxAbsDiff(v.logits.data, base.logits.data) > 1e-5, `${label} gives the fixture's logits`);
    }
  });

  it('describe() reports the layout', async () => {
    const d = (await loadModel(FIXTURE)).lm.describe();
    assert.equal(d.layer_types, 'MAMM');
    assert.equal(d.num_local_experts, 4);
    assert.equal(d.attention_layers, 1);
  });
});

describe('Granite 4.0-H config errors name the field', () => {
  const bad = (edit: Record<string, unknown>, ...patterns: RegExp[]) => () => {
    assert.throws(() => parseGraniteHybridConfig({ ...CONFIG, ...edit }, 'cfg.json'), (e: unknown) => {
      assert.ok(e instanceof ModelError, String(e));
      assert.match(e.message, /cfg\.json/);
      for (const p of patterns) assert.match(e.message, p);
      return true;
    });
  };
  it('accepts the fixture config', () => {
    const c = parseGraniteHybridConfig(CONFIG);
    assert.deepEqual(c.layerTypes, ['mamba', 'attention', 'mamba', 'mamba']);
    assert.equal(c.ropeTheta, 10000);
    assert.equal(c.headDim, 16);
  });
  it('unknown layer type', bad({ layer_types: ['mamba', 'attention', 'moe', 'mamba'] }, /"layer_types"/, /entry 2/, /"moe"/, /"mamba"/));
  it('layer_types of the wrong length', bad({ layer_types: ['mamba', 'attention'] }, /"layer_types"/, /2 entries/, /4 entries \(num_hidden_layers\)/));
  it('mamba heads × head dim ≠ expand × hidden', bad({ mamba_d_head: 8 }, /mamba_n_heads × mamba_d_head = 8 × 8 = 64/, /mamba_expand × hidden_size = 128/, /mamba_d_head = 16/));
  it('mamba heads not dividing the inner width', bad({ mamba_n_heads: 7, mamba_d_head: 'auto' }, /"mamba_n_heads"/, /128/));
  it('attention heads not divisible by KV heads', bad({ num_attention_heads: 4, num_key_value_heads: 3 }, /"num_key_value_heads"/, /"num_attention_heads"/));
  it('unknown position_embedding_type', bad({ position_embedding_type: 'alibi' }, /"position_embedding_type"/, /"rope"/));
  it('unsupported rope type', bad({ rope_parameters: { rope_type: 'yarn', rope_theta: 10000 } }, /rope_type/, /"default"/));
  it('more experts per token than experts', bad({ num_experts_per_tok: 5 }, /"num_experts_per_tok"/, /at most 4/));
  it('non-silu activation', bad({ hidden_act: 'gelu' }, /"hidden_act"/, /"silu"/));
  it('through loadModel, the message names config.json and the field', async () => {
    const dir = variantDir('bad', { layer_types: ['mamba', 'mamba', 'mamba'] });
    await assert.rejects(loadModel(dir), (e: unknown) => e instanceof ModelError && /config\.json/.test(e.message) && /"layer_types"/.test(e.message));
  });
});
