/**
 * Load options are checked when a model is loaded, before anything is read: a bad value (an unknown weight
 * format, SSD or scan algorithm, norm grouping, a non-integer thread count) or an unknown key (a typo) is a
 * LoadOptionError (a ModelError) that names the option and lists what is valid — the same check and the same
 * message from loadModel (Node) and loadModelFrom (browser). So is an option the chosen backend would not honour
 * (a quadratic SSD or a chunk length on WebGPU, threads off wasm): refused, not ignored.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cpu, loadModel, ModelError } from '../../src/index.js';
import { loadModelFrom, memoryFolder } from '../../src/browser.js';
import { hfFixture } from '../helpers.js';

let tmp: string;
/** a folder with mamba-tiny's config.json and a model.safetensors that is not safetensors at all */
let noWeights: string;

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-loadopts-'));
  noWeights = path.join(tmp, 'no-weights');
  fs.mkdirSync(noWeights);
  fs.copyFileSync(path.join(hfFixture('mamba-tiny'), 'config.json'), path.join(noWeights, 'config.json'));
  fs.writeFileSync(path.join(noWeights, 'model.safetensors'), 'not safetensors');
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** rejects with a LoadOptionError (a ModelError) whose message holds every part */
async function rejectsOption(p: Promise<unknown>, ...parts: string[]): Promise<string> {
  let message = '';
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ModelError, `expected a ModelError, got ${String(e)}`);
    assert.equal(e.name, 'LoadOptionError', String(e));
    for (const part of parts) assert.ok(e.message.includes(part), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(part)}`);
    message = e.message;
    return true;
  });
  return message;
}

// cast: these are the mistakes a JavaScript caller (or one with `as any`) can make
const bad = (o: Record<string, unknown>): Parameters<typeof loadModel>[1] => o as Parameters<typeof loadModel>[1];

describe('load options are validated at load time', () => {
  const TINY = hfFixture('mamba-tiny');

  for (const weights of ['q2', 'banana', 'F16', 'int8', '']) {
    test(`weights ${JSON.stringify(weights)} is refused, listing the formats`, async () => {
      await rejectsOption(loadModel(TINY, bad({ backend: 'wasm', weights })), '"weights"', JSON.stringify(weights), '"f32"', '"f16"', '"bf16"', '"q8"', '"q4"');
    });
  }

  test('weights other than f32 need the wasm backend', async () => {
    await rejectsOption(loadModel(TINY, { weights: 'q8' }), '"weights"', 'wasm');
    await rejectsOption(loadModel(TINY, { backend: 'cpu', weights: 'bf16' }), '"weights"', 'wasm');
    await rejectsOption(loadModel(TINY, { backend: 'webgpu', weights: 'f16' }), '"weights"', '"webgpu"', 'wasm');
    // a Backend instance was created with its format: a weights option next to it would be ignored
    await rejectsOption(loadModel(TINY, { backend: cpu, weights: 'q8' }), '"weights"', 'Backend instance');
    assert.equal((await loadModel(TINY, { backend: cpu, weights: 'f32' })).lm.modelType, 'mamba');
  });

  test('an unknown backend name is refused, listing the backends', async () => {
    await rejectsOption(loadModel(TINY, bad({ backend: 'gpu' })), '"backend"', '"gpu"', '"cpu"', '"wasm"', '"webgpu"');
  });

  test('ssd, scan and normGroups: unknown algorithms and groupings are refused, listing the valid ones', async () => {
    await rejectsOption(loadModel(TINY, bad({ ssd: { algorithm: 'bogus' } })), 'ssd.algorithm', '"bogus"', '"chunked"', '"quadratic"', '"recurrent"');
    await rejectsOption(loadModel(TINY, bad({ scan: { algorithm: 'bogus' } })), 'scan.algorithm', '"bogus"', '"chunked"', '"sequential"');
    await rejectsOption(loadModel(TINY, bad({ normGroups: 'bogus' })), '"normGroups"', '"bogus"', '"full"', '"group"');
    await rejectsOption(loadModel(TINY, bad({ scan: { algorithm: 'chunked', chunk: 8 } })), '"scan.chunk"', 'did you mean "scan.chunkSize"', 'algorithm, chunkSize');
    await rejectsOption(loadModel(TINY, bad({ ssd: 'chunked' })), '"ssd"', 'object');
  });

  test('numbers must be integers in range', async () => {
    for (const threads of [0, -1, 1.5, NaN, Infinity, '4']) {
      await rejectsOption(loadModel(TINY, bad({ backend: 'wasm', threads })), '"threads"', 'integer');
    }
    for (const chunkSize of [0, -8, 2.5, '8']) {
      await rejectsOption(loadModel(TINY, bad({ scan: { chunkSize } })), 'scan.chunkSize', 'integer');
      await rejectsOption(loadModel(TINY, bad({ ssd: { chunkSize } })), 'ssd.chunkSize', 'integer');
    }
    await rejectsOption(loadModel(TINY, bad({ clampDecodeDt: 'yes' })), '"clampDecodeDt"', 'boolean');
    await rejectsOption(loadModel(TINY, bad({ tokenizer: true })), '"tokenizer"');
  });

  test('an unknown key (a typo) is refused with the list of known keys', async () => {
    const m = await rejectsOption(loadModel(TINY, bad({ backnd: 'wasm' })), '"backnd"', 'backend', 'threads', 'weights', 'tokenizer', 'scan', 'ssd', 'normGroups', 'clampDecodeDt');
    assert.match(m, /did you mean "backend"/);
    await rejectsOption(loadModel(TINY, bad({ onProgress: () => {} })), '"onProgress"');
    await rejectsOption(loadModel(TINY, 'wasm' as unknown as Parameters<typeof loadModel>[1]), 'options', 'object');
  });

  test('options are checked before any weights are read', async () => {
    // a valid load of this folder fails on its weights; a bad option is reported instead, so it came first
    await assert.rejects(loadModel(noWeights), (e: Error) => e.name === 'SafetensorsError');
    await rejectsOption(loadModel(noWeights, bad({ backend: 'wasm', weights: 'q2' })), '"weights"');
    await rejectsOption(loadModel(path.join(tmp, 'missing'), bad({ ssd: { algorithm: 'bogus' } })), 'ssd.algorithm');
  });

  test('an option the backend would not honour is refused, naming it and the backends that take it', async () => {
    const missing = path.join(tmp, 'missing'); // refused before the folder is read or a GPU is asked for
    await rejectsOption(loadModel(missing, { backend: 'webgpu', ssd: { algorithm: 'quadratic' } }),
      'loadModel', 'option "ssd.algorithm" "quadratic" is not available on backend "webgpu"', '"chunked", "recurrent"', 'needs backend "cpu" or "wasm"');
    for (const kind of ['scan', 'ssd'] as const) {
      await rejectsOption(loadModel(missing, { backend: 'webgpu', [kind]: { chunkSize: 16 } }), `"${kind}.chunkSize"`, '"webgpu"', 'chooses its own chunk lengths', '"cpu" or "wasm"');
    }
    // threads: only the wasm backend has a thread pool
    await rejectsOption(loadModel(missing, { threads: 2 }), '"threads"', 'backend "wasm"', 'backend "cpu"');
    await rejectsOption(loadModel(missing, { backend: 'webgpu', threads: 2 }), '"threads"', 'backend "wasm"', 'backend "webgpu"');
    await rejectsOption(loadModel(missing, { backend: cpu, threads: 2 }), '"threads"', 'Backend instance');
    // a Backend instance is held to what it says it runs
    const recurrentOnly = Object.assign(Object.create(cpu) as typeof cpu, { name: 'recurrent-only', prefill: { scan: ['sequential'], ssd: ['recurrent'], chunkSize: true } });
    await rejectsOption(loadModel(missing, { backend: recurrentOnly, ssd: { algorithm: 'chunked' } }), '"ssd.algorithm" "chunked"', 'backend "recurrent-only"', '"recurrent"');
    // the browser loader says the same
    const empty = memoryFolder({}, 'm');
    await rejectsOption(loadModelFrom(empty, { backend: 'webgpu', ssd: { algorithm: 'quadratic' } }), 'loadModelFrom', '"ssd.algorithm" "quadratic"', '"cpu" or "wasm"');
    // what the backends do run still loads
    assert.equal((await loadModel(TINY, { backend: 'wasm', threads: 1, ssd: { algorithm: 'quadratic', chunkSize: 8 }, scan: { algorithm: 'chunked', chunkSize: 8 } })).lm.modelType, 'mamba');
  });

  test('valid options still load (undefined values count as not given)', async () => {
    const m = await loadModel(TINY, { backend: 'cpu', scan: { algorithm: 'sequential', chunkSize: 8 }, ssd: { algorithm: 'quadratic' }, normGroups: 'group', clampDecodeDt: true, tokenizer: false, threads: undefined });
    assert.equal(m.lm.modelType, 'mamba');
  });
});

describe('the browser loader runs the same check', () => {
  test('same errors, same messages, before the folder is read', async () => {
    const empty = memoryFolder({}, 'm'); // reading it fails (no config.json) — after the options are checked
    await assert.rejects(loadModelFrom(empty), (e: Error) => /config\.json/.test(e.message));
    for (const o of [{ backend: 'wasm', weights: 'q2' }, { ssd: { algorithm: 'bogus' } }, { normGroups: 'bogus' }, { threads: 1.5 }, { scan: { chunkSize: 0 } }]) {
      const node = await rejectsOption(loadModel(path.join(tmp, 'missing'), bad(o)));
      const browser = await rejectsOption(loadModelFrom(empty, o as Parameters<typeof loadModelFrom>[1]));
      assert.equal(browser.replace('loadModelFrom', 'loadModel'), node, JSON.stringify(o));
    }
    // the known keys differ (the browser's own options are listed there), the refusal does not
    await rejectsOption(loadModelFrom(empty, bad({ backnd: 'wasm' }) as Parameters<typeof loadModelFrom>[1]), 'loadModelFrom', '"backnd"', 'did you mean "backend"', 'onProgress');
  });

  test('browser-only options are known there (and only there)', async () => {
    const empty = memoryFolder({}, 'm');
    await assert.rejects(loadModelFrom(empty, { onProgress: () => {}, wasmKernelsUrl: 'x.wasm', tokenizer: true }), (e: Error) => /config\.json/.test(e.message));
    await rejectsOption(loadModelFrom(empty, { tokenizer: 'tokenizer.json' } as unknown as Parameters<typeof loadModelFrom>[1]), '"tokenizer"', 'boolean');
    await rejectsOption(loadModelFrom(empty, { onProgress: 'yes' } as unknown as Parameters<typeof loadModelFrom>[1]), '"onProgress"', 'function');
  });
});
