/** config.json written as transformers writes it: floats stay floats (transformers 5 refuses `time_step_limit: [0, …]`). */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfigJson, type RawConfig } from '../../src/models/config.js';
import { FLOAT_FIELDS, pythonFloat, stringifyConfigJson } from '../../src/models/config-json.js';
import { saveCheckpoint } from '../../src/train/checkpoint.js';
import { TrainableLM } from '../../src/train/lm.js';
import { loadModel } from '../../src/index.js';
import { FIXTURES, hfFixture } from '../helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-config-json-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** every number literal of a JSON text with the key it belongs to (the innermost key) */
function numberLiterals(text: string): Array<{ key: string; literal: string }> {
  const out: Array<{ key: string; literal: string }> = [];
  const re = /"((?:[^"\\]|\\.)*)"\s*:|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|([[\]{}])/g;
  const keys: string[] = [];
  let lastKey = '';
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m[1] !== undefined) lastKey = m[1];
    else if (m[3] === '[' || m[3] === '{') keys.push(lastKey);
    else if (m[3] === ']' || m[3] === '}') keys.pop();
    else if (m[2] !== undefined) {
      // a number right after "key": belongs to key; inside a list, to the list's key
      const inList = /\[\s*$|,\s*$/.test(text.slice(Math.max(0, m.index - 40), m.index)) && !/:\s*$/.test(text.slice(Math.max(0, m.index - 5), m.index));
      out.push({ key: inList ? keys[keys.length - 1] : lastKey, literal: m[2] });
    }
  }
  return out;
}

const isFloatLiteral = (s: string): boolean => /[.eE]/.test(s);

describe('stringifyConfigJson', () => {
  it('formats floats as Python repr does', () => {
    const cases: Array<[number, string]> = [
      [0, '0.0'], [1, '1.0'], [-2, '-2.0'], [10000, '10000.0'], [0.1, '0.1'], [1e-5, '1e-05'], [1e-6, '1e-06'],
      [0.0001, '0.0001'], [0.001, '0.001'], [1.5e-7, '1.5e-07'], [123.456, '123.456'], [1e16, '1e+16'],
      [1e15, '1000000000000000.0'], [2.5e20, '2.5e+20'], [0.02, '0.02'], [1 / 3, '0.3333333333333333'], [-0, '-0.0'],
    ];
    for (const [x, want] of cases) assert.equal(pythonFloat(x), want, `pythonFloat(${x})`);
  });

  it('re-writes every HF-saved fixture config.json byte for byte (floats stay floats, ints stay ints)', () => {
    const dirs = fs.readdirSync(path.join(FIXTURES, 'hf')).filter((d) => fs.existsSync(path.join(FIXTURES, 'hf', d, 'config.json')));
    assert.ok(dirs.length >= 10, `fixtures: ${dirs.join(', ')}`);
    let floats = 0;
    for (const d of dirs) {
      const text = fs.readFileSync(path.join(FIXTURES, 'hf', d, 'config.json'), 'utf8');
      const again = stringifyConfigJson(parseConfigJson(text) as RawConfig);
      assert.equal(again, text, `${d}/config.json`);
      floats += numberLiterals(text).filter((n) => isFloatLiteral(n.literal)).length;
    }
    assert.ok(floats > 50, `the fixtures hold ${floats} float literals`);
  });

  it('writes a Mamba-2 time_step_limit [0, Infinity] as [0.0, {"__float__": "Infinity"}] and reads it back', () => {
    const cfg = { model_type: 'mamba2', time_step_limit: [0, Infinity], time_step_min: 0.001, expand: 2, layer_norm_epsilon: 1e-5, rope_parameters: { rope_theta: 10000, rope_type: 'default' } };
    const text = stringifyConfigJson(cfg);
    assert.match(text, /"time_step_limit": \[\n {4}0\.0,\n {4}\{\n {6}"__float__": "Infinity"\n {4}\}\n {2}\]/);
    assert.match(text, /"expand": 2,/);
    assert.match(text, /"rope_theta": 10000\.0,/);
    assert.match(text, /"layer_norm_epsilon": 1e-05,/);
    assert.deepEqual(parseConfigJson(text), cfg);
  });

  it('escapes non-ASCII as Python json does and refuses what JSON cannot hold', () => {
    assert.equal(stringifyConfigJson({ name: 'Mämba "x"\n' }), '{\n  "name": "M\\u00e4mba \\"x\\"\\n"\n}\n');
    assert.equal(JSON.parse(stringifyConfigJson({ e: '😀', l: [], o: {} })).e, '😀');
    assert.throws(() => stringifyConfigJson({ f: () => 1 } as unknown as RawConfig), /config\.f is a function/);
    assert.throws(() => stringifyConfigJson({ vocab_size: 2 ** 60 }), /config\.vocab_size .* beyond 2\^53/);
  });

  it('a fresh model saved by training writes its float fields with a decimal point, and loads back', async () => {
    const lm = TrainableLM.init({ ...(await freshConfig()), normEps: 1 });
    const dir = path.join(tmp, 'fresh');
    saveCheckpoint(dir, { weights: [...lm.params.values()], config: lm.configJson(), configText: lm.configText(), trainerState: { step: 0 } });
    const text = fs.readFileSync(path.join(dir, 'config.json'), 'utf8');
    const nums = numberLiterals(text);
    assert.ok(nums.some((n) => n.key === 'layer_norm_epsilon'));
    for (const n of nums) {
      assert.equal(isFloatLiteral(n.literal), FLOAT_FIELDS.has(n.key), `"${n.key}": ${n.literal}`);
    }
    assert.match(text, /"layer_norm_epsilon": 1\.0,/);
    // saveCheckpoint without the text writes the same
    const dir2 = path.join(tmp, 'fresh2');
    saveCheckpoint(dir2, { weights: [...lm.params.values()], config: lm.configJson(), trainerState: { step: 0 } });
    assert.equal(fs.readFileSync(path.join(dir2, 'config.json'), 'utf8'), text);
    const m = await loadModel(dir, { tokenizer: false });
    assert.equal(m.lm.modelType, 'mamba');
  });

  for (const arch of ['mamba2', 'llama', 'hybrid'] as const) {
    it(`a fresh ${arch} (train --arch ${arch}) writes config.json with its float fields as floats, and it loads back`, async () => {
      const lm = TrainableLM.fresh(arch, { vocabSize: 64, hiddenSize: 32, numLayers: 2, stateSize: 8, expand: 2 }, { seed: 1 });
      const text = lm.configText();
      const nums = numberLiterals(text);
      assert.ok(nums.filter((n) => FLOAT_FIELDS.has(n.key)).length >= 2, text);
      for (const n of nums) if (FLOAT_FIELDS.has(n.key)) assert.ok(isFloatLiteral(n.literal), `"${n.key}": ${n.literal}`);
      if (arch !== 'mamba2') assert.match(text, /"rope_theta": 10000\.0/);
      assert.deepEqual(parseConfigJson(text), lm.configJson());
      const dir = path.join(tmp, `fresh-${arch}`);
      saveCheckpoint(dir, { weights: [...lm.params.values()], config: lm.configJson(), configText: text, trainerState: { step: 0 } });
      const m = await loadModel(dir, { tokenizer: false });
      assert.equal(m.lm.modelType, lm.modelType);
    });
  }

  it('a fine-tuned fixture keeps the source config.json as written', () => {
    const lm = TrainableLM.fromPretrained(hfFixture('mamba2-tiny'));
    assert.equal(lm.configText(), fs.readFileSync(path.join(hfFixture('mamba2-tiny'), 'config.json'), 'utf8'));
  });
});

async function freshConfig() {
  const { parseMambaConfig } = await import('../../src/models/mamba.js');
  const raw = parseConfigJson(fs.readFileSync(path.join(hfFixture('mamba-tiny'), 'config.json'), 'utf8')) as RawConfig;
  return parseMambaConfig(raw, 'mamba-tiny/config.json');
}
