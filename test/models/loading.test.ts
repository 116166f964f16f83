/**
 * Loading a model folder: the state-spaces naming, and every kind of bad input giving an error that
 * names the file / tensor / field and what was expected.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, ModelError, SafetensorsError, SafetensorsFile, GenerationError, writeSafetensorsAtomic } from '../../src/index.js';
import type { WritableTensor } from '../../src/io/safetensors.js';
import { FIXTURES, hfFixture, loadReference, maxAbsDiff } from '../helpers.js';

const TINY = hfFixture('mamba-tiny');
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-load-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

/** the tiny checkpoint's tensors, optionally edited, written to a new folder with a config */
function makeModelDir(name: string, config: object | string, edit: (t: Record<string, WritableTensor>) => void = () => {}): string {
  const dir = path.join(tmpRoot, name);
  fs.mkdirSync(dir, { recursive: true });
  const src = SafetensorsFile.open(path.join(TINY, 'model.safetensors'));
  const tensors: Record<string, WritableTensor> = {};
  for (const n of src.names()) tensors[n] = { dtype: 'F32', shape: src.entry(n).shape, data: src.float32(n) };
  edit(tensors);
  writeSafetensorsAtomic(path.join(dir, 'model.safetensors'), tensors);
  fs.writeFileSync(path.join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  return dir;
}

const hfConfig = JSON.parse(fs.readFileSync(path.join(TINY, 'config.json'), 'utf8'));

describe('state-spaces naming', () => {
  it('gives identical logits to the HF naming', async () => {
    const dir = makeModelDir('state-spaces', {
      d_model: 64, n_layer: 3, vocab_size: 509, pad_vocab_size_multiple: 8, // 509 → padded to 512, as 50277 → 50280
      ssm_cfg: { d_state: 16, d_conv: 4, expand: 2, dt_rank: 4 },
      rms_norm: true, residual_in_fp32: true, fused_add_norm: true, tie_embeddings: true,
    }, (t) => {
      t['backbone.embedding.weight'] = t['backbone.embeddings.weight'];
      delete t['backbone.embeddings.weight'];
      t['lm_head.weight'] = t['backbone.embedding.weight']; // the official state dict lists the tied head too
    });
    const ref = loadReference(TINY);
    const ids = ref.ids('input_ids');
    const [hf, ss] = await Promise.all([loadModel(TINY), loadModel(dir)]);
    assert.equal(ss.describe().config_naming, 'state-spaces');
    assert.equal(ss.vocabSize, 512);
    const a = await hf.forward(ids);
    const b = await ss.forward(ids);
    assert.equal(maxAbsDiff(a.logits.data, b.logits.data), 0);
    assert.ok(maxAbsDiff(b.logits.data, ref.f32('logits')) <= 1e-4);
  });
});

describe('bad model folders', () => {
  const expectError = async (dir: string, type: Function, ...patterns: RegExp[]) => {
    await assert.rejects(loadModel(dir), (e: Error) => {
      assert.ok(e instanceof type, `expected ${type.name}, got ${e.constructor.name}: ${e.message}`);
      for (const p of patterns) assert.match(e.message, p);
      return true;
    });
  };

  it('missing folder', () => expectError(path.join(tmpRoot, 'nope'), ModelError, /nope/, /does not exist/));
  it('missing config.json', async () => {
    const dir = path.join(tmpRoot, 'no-config');
    fs.mkdirSync(dir);
    await expectError(dir, ModelError, /config\.json/, /not found/);
  });
  it('malformed config.json', () => expectError(makeModelDir('bad-json', '{"hidden_size": 64,'), ModelError, /config\.json/, /not valid JSON/));
  it('config.json that is not an object', () => expectError(makeModelDir('array-json', '[1,2]'), ModelError, /config\.json/, /JSON object/));
  it('config field of the wrong type', () =>
    expectError(makeModelDir('bad-field', { ...hfConfig, hidden_size: '64' }), ModelError, /config\.json/, /"hidden_size"/, /integer/));
  it('config missing a required field', () => {
    const { num_hidden_layers: _, ...rest } = hfConfig;
    return expectError(makeModelDir('missing-field', rest), ModelError, /"num_hidden_layers"/, /missing/);
  });
  it('Mamba-2 config whose heads do not fill the inner width', () =>
    expectError(makeModelDir('m2-heads', { ...hfConfig, model_type: 'mamba2', num_heads: 7, head_dim: 16 }), ModelError, /num_heads × head_dim = 7 × 16 = 112/, /expand × hidden_size = 128/, /num_heads = 8/));
  it('unknown model_type', () => expectError(makeModelDir('rwkv', { ...hfConfig, model_type: 'rwkv6' }), ModelError, /"rwkv6" is not supported/, /supported: .*mamba2/));
  it('no weights', async () => {
    const dir = path.join(tmpRoot, 'no-weights');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hfConfig));
    await expectError(dir, SafetensorsError, /no-weights/, /model\.safetensors/);
  });
  it('missing tensor', () =>
    expectError(makeModelDir('missing-tensor', hfConfig, (t) => delete t['backbone.layers.1.mixer.D']), ModelError, /"backbone\.layers\.1\.mixer\.D"/, /missing/));
  it('tensor shapes that disagree with config.json', () =>
    expectError(makeModelDir('wrong-shape', { ...hfConfig, state_size: 8 }), ModelError, /x_proj\.weight/, /\[36, 128\]/, /\[20, 128\]/, /state_size=8/));
  it('vocab_size that disagrees with the embedding', () =>
    expectError(makeModelDir('wrong-vocab', { ...hfConfig, vocab_size: 600 }), ModelError, /embeddings\.weight/, /\[600, 64\]/));
  it('truncated safetensors file', async () => {
    const dir = makeModelDir('truncated', hfConfig);
    const f = path.join(dir, 'model.safetensors');
    const bytes = fs.readFileSync(f);
    fs.writeFileSync(f, bytes.subarray(0, bytes.length - 1000));
    await expectError(dir, SafetensorsError, /model\.safetensors/);
  });
  it('tokenizer that does not belong to the model', async () => {
    await assert.rejects(loadModel(TINY, { tokenizer: path.join(FIXTURES, 'tokenizer-bpe', 'tokenizer.json') }), /2048 tokens.*512/);
  });
});

describe('bad input to a loaded model', async () => {
  const model = await loadModel(TINY);
  it('token id out of range', async () => {
    await assert.rejects(model.forward([[1, 2, 512]]), (e: Error) => e instanceof ModelError && /ids\[0\]\[2\] = 512/.test(e.message) && /\[0, 512\)/.test(e.message));
    await assert.rejects(model.forward([[-1]]), /= -1 is out of range/);
    await assert.rejects(model.forward([[1.5]]), /= 1\.5 is out of range/);
    await assert.rejects(model.generate([[3, 600]]), /600 is out of range/);
  });
  it('empty prompts and batches', async () => {
    await assert.rejects(model.forward([]), /non-empty/);
    await assert.rejects(model.forward([[]]), /ids\[0\] is empty/);
    await assert.rejects(model.generate([[1], []]), (e: Error) => e instanceof GenerationError && /prompt 1 is empty/.test(e.message));
    await assert.rejects(model.generate([]), /empty/);
  });
  it('ragged batch in forward', async () => {
    await assert.rejects(model.forward([[1, 2], [3]]), /different lengths/);
  });
  it('text prompt without a tokenizer', async () => {
    await assert.rejects(model.generate('hello'), /no tokenizer/);
  });
  it('state from another model, or corrupt state bytes', async () => {
    const bytes = await model.createState(1).export();
    const other = await loadModel(makeModelDir('other', { ...hfConfig, num_hidden_layers: 2 }));
    assert.throws(() => other.importState(bytes, 'saved.state'), /saved\.state.*different model/);
    assert.throws(() => model.importState(bytes.subarray(0, 20), 'cut.state'), /cut\.state/);
  });
});
