/**
 * The browser entry's loaders, run in Node: model folders from memory and from picked files
 * (`src/io/model-folder.ts`) load the same model as `loadModel` does from disk, with the same validation
 * and messages that name the file; and src/browser.ts reaches no Node module.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModel } from '../../src/index.js';
import {
  filesFolder,
  loadModelFrom,
  memoryFolder,
  ModelError,
  SafetensorsError,
  type FileLike,
} from '../../src/browser.js';
import { FIXTURES, hfFixture, ROOT } from '../helpers.js';

const IDS = [1, 7, 42, 3, 99, 255, 8];

function folderFiles(dir: string): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const f of fs.readdirSync(dir)) if (!f.startsWith('reference')) out[f] = new Uint8Array(fs.readFileSync(path.join(dir, f)));
  return out;
}

async function rejectsNaming(p: Promise<unknown>, type: new (...a: never[]) => Error, ...parts: (string | RegExp)[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${String(e)}`);
    for (const part of parts) {
      if (typeof part === 'string') assert.ok(e.message.includes(part), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(part)}`);
      else assert.match(e.message, part);
    }
    return true;
  });
}

describe('browser loaders (in Node)', () => {
  for (const name of ['mamba-tiny', 'mamba-tiny-sharded', 'mamba2-tiny']) {
    test(`memoryFolder(${name}) generates what loadModel(${name}) does`, async () => {
      const fromDisk = await loadModel(hfFixture(name));
      const fromMemory = await loadModelFrom(memoryFolder(folderFiles(hfFixture(name)), name));
      assert.equal(fromMemory.dir, name);
      assert.deepEqual(fromMemory.eosTokenIds, fromDisk.eosTokenIds);
      const [a, b] = await Promise.all([fromDisk, fromMemory].map((m) => m.generate([IDS], { maxNewTokens: 8 })));
      assert.deepEqual(b.generated, a.generated);
    });
  }

  test('filesFolder: a picked folder (webkitRelativePath) names the model; a tokenizer that does not fit is refused', async () => {
    const files = folderFiles(hfFixture('mamba-tiny'));
    // the fixture tokenizer has more tokens than mamba-tiny's vocabulary: must be refused
    files['tokenizer.json'] = new Uint8Array(fs.readFileSync(path.join(FIXTURES, 'tokenizer-bpe', 'tokenizer.json')));
    const picked: FileLike[] = Object.entries(files).map(([name, bytes]) => {
      const blob = new Blob([bytes]);
      return { name, size: bytes.byteLength, webkitRelativePath: `my-model/${name}`, slice: (a, b) => blob.slice(a, b), arrayBuffer: () => blob.arrayBuffer(), text: () => blob.text() };
    });
    await rejectsNaming(loadModelFrom(filesFolder(picked)), ModelError, 'do not belong together');
    const model = await loadModelFrom(filesFolder(picked), { tokenizer: false });
    assert.equal(model.dir, 'my-model');
    assert.equal(model.tokenizer, null);
  });

  test('errors name the file: no config, no weights, a shard outside the folder, a missing shard', async () => {
    const tiny = folderFiles(hfFixture('mamba-tiny'));
    const { 'config.json': _config, ...noConfig } = tiny;
    await rejectsNaming(loadModelFrom(memoryFolder(noConfig, 'm')), ModelError, 'm/config.json', 'not found');
    const { 'model.safetensors': _weights, ...noWeights } = tiny;
    await rejectsNaming(loadModelFrom(memoryFolder(noWeights, 'm')), SafetensorsError, 'no weights found in m', 'model.safetensors.index.json');
    const sharded = folderFiles(hfFixture('mamba-tiny-sharded'));
    const index = JSON.parse(new TextDecoder().decode(sharded['model.safetensors.index.json'])) as { weight_map: Record<string, string> };
    const first = Object.keys(index.weight_map)[0];
    const escaping = { ...sharded, 'model.safetensors.index.json': JSON.stringify({ weight_map: { ...index.weight_map, [first]: '../x.safetensors' } }) };
    await rejectsNaming(loadModelFrom(memoryFolder(escaping, 's')), SafetensorsError, 's/model.safetensors.index.json', 'must be a file inside s');
    const shard = index.weight_map[first];
    const { [shard]: _shard, ...missing } = sharded;
    await rejectsNaming(loadModelFrom(memoryFolder(missing, 's')), SafetensorsError, `shard "${shard}"`, 'not found', `s/${shard}`);
  });

  test('src/browser.ts reaches no Node module (static imports, transitively)', () => {
    const seen = new Set<string>();
    const nodeImports: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = fs.readFileSync(file, 'utf8');
      for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gm)) {
        const spec = m[1];
        if (/^import\s+type\s/.test(m[0].trim()) || /^export\s+type\s/.test(m[0].trim())) continue;
        if (spec.startsWith('.')) {
          // what the bundler does: the wasm runtime's host module is swapped for the browser one
          let target = path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts');
          if (target.endsWith(path.join('backend', 'wasm', 'platform.ts'))) target = target.replace(/platform\.ts$/, 'platform.browser.ts');
          visit(target);
        } else if (spec.startsWith('node:') || ['fs', 'path', 'os', 'worker_threads', 'crypto', 'url'].includes(spec)) {
          nodeImports.push(`${path.relative(ROOT, file)} → ${spec}`);
        }
      }
    };
    visit(path.join(ROOT, 'src', 'browser.ts'));
    assert.ok(seen.size > 20, `followed ${seen.size} modules`);
    assert.deepEqual(nodeImports, []);
  });
});
