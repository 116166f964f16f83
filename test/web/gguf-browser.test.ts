/**
 * `loadGgufFrom` (the browser entry's GGUF loader), run in Node: a GGUF file as bytes, as a picked File /
 * Blob and by URL (a local HTTP server) generates what `loadModel('x.gguf')` does; bad input is an error
 * naming what was given. The playground end to end is in playground.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { loadModel } from '../../src/index.js';
import { encodeModelGguf, readExportInput, writeGgufAtomic } from '../../src/io/gguf.js';
import { concatChunks } from '../../src/io/gguf-format.js';
import { GgufError, GgufFile, ModelError, loadGgufFrom, type FileLike } from '../../src/browser.js';
import { ggufWasmWeights } from '../../src/io/gguf-model.js';
import { memorySource } from '../../src/io/model-folder.js';
import { hfFixture } from '../helpers.js';

const IDS = [1, 7, 42, 3, 99, 255, 8];

describe('loadGgufFrom (in Node)', () => {
  let tmp = '';
  let server: http.Server | undefined;
  let base = '';
  const files: Record<string, Uint8Array> = {};

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-gguf-browser-'));
    for (const [name, type] of [['mamba-tiny', 'f32'], ['mamba2-tiny', 'q8_0']] as const) {
      const chunks = encodeModelGguf(readExportInput(hfFixture(name)), type);
      files[name] = concatChunks(chunks);
      writeGgufAtomic(path.join(tmp, `${name}.gguf`), chunks);
    }
    server = http.createServer((req, res) => {
      const name = decodeURIComponent((req.url ?? '/').slice(1));
      if (name === 'broken.gguf') return void res.writeHead(500, 'Internal Server Error').end();
      const file = path.join(tmp, name);
      if (path.dirname(file) !== tmp || !fs.existsSync(file)) return void res.writeHead(404).end();
      const body = fs.readFileSync(file);
      res.writeHead(200, { 'Content-Length': body.byteLength }).end(body);
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function nodeTokens(name: string): Promise<number[][]> {
    const m = await loadModel(path.join(tmp, `${name}.gguf`));
    return (await m.generate([IDS], { maxNewTokens: 8 })).generated;
  }

  test('bytes (Uint8Array, ArrayBuffer) and a URL give loadModel(x.gguf)\'s greedy tokens', async () => {
    for (const name of ['mamba-tiny', 'mamba2-tiny']) {
      const want = await nodeTokens(name);
      const bytes = files[name];
      const progress: number[] = [];
      for (const input of [bytes, bytes.slice().buffer, `${base}/${name}.gguf`, new URL(`${base}/${name}.gguf`)]) {
        const m = await loadGgufFrom(input, { onProgress: (p) => progress.push(p.loaded) });
        assert.equal(m.lm.modelType, name === 'mamba-tiny' ? 'mamba' : 'mamba2');
        assert.deepEqual((await m.generate([IDS], { maxNewTokens: 8 })).generated, want, `${name} from ${typeof input === 'string' ? input : input.constructor.name}`);
      }
      assert.equal(progress.at(-1), bytes.byteLength, 'the download reports its bytes');
    }
  });

  test('a picked File / Blob; a Q8_0 file implies q8 weights on wasm, as loadModel does', async () => {
    const bytes = files['mamba2-tiny'];
    const blob = new Blob([bytes]);
    const file: FileLike = { name: 'mamba2-tiny.gguf', size: bytes.byteLength, slice: (a, b) => blob.slice(a, b), arrayBuffer: () => blob.arrayBuffer(), text: () => blob.text() };
    const m = await loadGgufFrom(file);
    assert.equal(m.dir, 'mamba2-tiny.gguf');
    assert.deepEqual((await m.generate([IDS], { maxNewTokens: 8 })).generated, await nodeTokens('mamba2-tiny'));
    const q8 = GgufFile.fromSource(memorySource(bytes), 'q8.gguf');
    const f32 = GgufFile.fromSource(memorySource(files['mamba-tiny']), 'f32.gguf');
    assert.equal(ggufWasmWeights(q8, 'wasm', undefined), 'q8');
    assert.equal(ggufWasmWeights(q8, 'wasm', 'f32'), undefined, 'an explicit weights option wins');
    assert.equal(ggufWasmWeights(q8, 'cpu', undefined), undefined);
    assert.equal(ggufWasmWeights(f32, 'wasm', undefined), undefined);
  });

  test('errors name what was given: a 404, an HTTP error, not a GGUF file, a bad input, a bad option', async () => {
    await assert.rejects(loadGgufFrom(`${base}/missing.gguf`), (e: unknown) => e instanceof ModelError && /missing\.gguf.*404/.test(e.message));
    await assert.rejects(loadGgufFrom(`${base}/broken.gguf`), (e: unknown) => e instanceof ModelError && /broken\.gguf.*HTTP 500/.test(e.message));
    await assert.rejects(loadGgufFrom(new TextEncoder().encode('{"not": "gguf"}')), (e: unknown) => e instanceof GgufError && /memory\.gguf/.test(e.message));
    const truncated = files['mamba-tiny'].subarray(0, 200);
    await assert.rejects(loadGgufFrom(truncated), (e: unknown) => e instanceof GgufError && /memory\.gguf: truncated/.test(e.message));
    await assert.rejects(loadGgufFrom(42 as never), (e: unknown) => e instanceof ModelError && /expected a URL, a File \/ Blob or the bytes.*got number/.test(e.message));
    await assert.rejects(loadGgufFrom(files['mamba-tiny'], { backend: 'nope' as never }), /backend/);
  });
});
