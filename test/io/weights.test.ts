/**
 * Tests for src/io/weights.ts: single-file and sharded model folders (fixtures), the renaming view,
 * and index problems (malformed JSON, bad weight_map, missing shard, tensor absent from its shard,
 * missing folder, folder with neither file).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsError, SafetensorsFile, writeSafetensorsAtomic } from '../../src/io/safetensors.js';
import { WeightSource } from '../../src/io/weights.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const FIX = path.join(ROOT, 'test/fixtures/hf');
const TINY = path.join(FIX, 'mamba-tiny');
const SHARDED = path.join(FIX, 'mamba-tiny-sharded');

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-w-'));
}

function withTmp(fn: (dir: string) => void): void {
  const dir = tmpDir();
  try {
    fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** assert.throws expecting a SafetensorsError whose message contains every string / matches every regex. */
function throwsNaming(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
    for (const p of parts) {
      if (typeof p === 'string') assert.ok(e.message.includes(p), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(p)}`);
      else assert.match(e.message, p);
    }
    return true;
  });
}

const f32 = (...v: number[]) => ({ dtype: 'F32' as const, shape: [v.length], data: Float32Array.from(v) });

/** A small sharded folder: a,b in s1; c in s2 (s2 also holds an unlisted "a" copy). */
function writeSmallSharded(dir: string, index: unknown = undefined): void {
  writeSafetensorsAtomic(path.join(dir, 's1.safetensors'), { a: f32(1, 2), b: f32(3) });
  writeSafetensorsAtomic(path.join(dir, 's2.safetensors'), { c: f32(4, 5, 6), a: f32(-1, -2) });
  const idx = index ?? { metadata: { total_size: 24 }, weight_map: { a: 's1.safetensors', b: 's1.safetensors', c: 's2.safetensors' } };
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), typeof idx === 'string' ? idx : JSON.stringify(idx));
}

describe('WeightSource on the fixtures', () => {
  test('single-file folder: names, entries and float32 match the file', () => {
    const w = WeightSource.openDir(TINY);
    assert.deepEqual(w.files, [path.join(TINY, 'model.safetensors')]);
    const f = SafetensorsFile.open(path.join(TINY, 'model.safetensors'));
    assert.deepEqual(w.names(), f.names());
    assert.ok(w.has('backbone.layers.0.mixer.A_log'));
    assert.ok(!w.has('lm_head.weight'));
    assert.deepEqual(w.entry('backbone.layers.0.mixer.A_log').shape, [128, 16]);
    assert.deepEqual(w.float32('backbone.norm_f.weight'), f.float32('backbone.norm_f.weight'));
  });

  test('a *.safetensors file path is accepted directly', () => {
    const p = path.join(TINY, 'model.safetensors');
    const w = WeightSource.openDir(p);
    assert.deepEqual(w.files, [p]);
    assert.deepEqual(w.entry('backbone.layers.0.mixer.A_log').shape, [128, 16]);
  });

  test('sharded folder: same names and bit-identical float32 data as the single file', () => {
    const single = WeightSource.openDir(TINY);
    const sharded = WeightSource.openDir(SHARDED);
    assert.equal(sharded.files.length, 3);
    assert.equal(new Set(sharded.files).size, 3, 'each shard opened once');
    for (const f of sharded.files) assert.match(path.basename(f), /^model-0000[123]-of-00003\.safetensors$/);
    assert.deepEqual([...sharded.names()].sort(), [...single.names()].sort());
    for (const n of single.names()) {
      const a = single.float32(n);
      const b = sharded.float32(n);
      assert.deepEqual(sharded.entry(n).shape, single.entry(n).shape, n);
      assert.deepEqual(
        new Uint8Array(b.buffer, b.byteOffset, b.byteLength),
        new Uint8Array(a.buffer, a.byteOffset, a.byteLength),
        `${n} bit-identical`,
      );
    }
    // entries point into the right shard
    const e = sharded.entry('backbone.layers.0.mixer.dt_proj.bias');
    assert.equal(path.basename(e.file), 'model-00002-of-00003.safetensors');
  });

  test('the index file path is accepted directly', () => {
    const w = WeightSource.openDir(path.join(SHARDED, 'model.safetensors.index.json'));
    assert.equal(w.files.length, 3);
    assert.ok(w.has('backbone.embeddings.weight'));
  });

  test('missing tensor: message names tensor, folder and files', () => {
    const w = WeightSource.openDir(SHARDED);
    throwsNaming(() => w.float32('lm_head.weight'), 'tensor "lm_head.weight" not found in', SHARDED, /\(files: model-00001-of-00003\.safetensors, .*\)/);
    throwsNaming(() => w.entry('nope'), '"nope"', SHARDED);
    const s = WeightSource.openDir(TINY);
    throwsNaming(() => s.float32('lm_head.weight'), 'tensor "lm_head.weight" not found in', TINY, '(files: model.safetensors)');
  });

  test('withNameMap: lookups go through the map; errors name both names', () => {
    const w = WeightSource.openDir(TINY).withNameMap((n) => n.replace(/^model\./, 'backbone.'));
    assert.ok(w.has('model.layers.0.mixer.A_log'));
    assert.deepEqual(w.entry('model.layers.0.mixer.A_log').shape, [128, 16]);
    assert.deepEqual(w.float32('model.norm_f.weight'), WeightSource.openDir(TINY).float32('backbone.norm_f.weight'));
    assert.ok(w.has('backbone.norm_f.weight'), 'names the map leaves alone still resolve');
    throwsNaming(() => w.float32('model.nope'), 'tensor "model.nope" (stored name "backbone.nope") not found', TINY);
    // views compose
    const w2 = w.withNameMap((n) => n.replace(/^m\./, 'model.'));
    assert.deepEqual(w2.entry('m.layers.1.mixer.D').shape, [128]);
  });
});

describe('WeightSource index handling', () => {
  test('map wins over unlisted copies in other shards; unlisted tensors are not exposed twice', () => {
    withTmp((dir) => {
      writeSmallSharded(dir);
      const w = WeightSource.openDir(dir);
      assert.deepEqual(w.names(), ['a', 'b', 'c']);
      assert.deepEqual([...w.float32('a')], [1, 2]);
      assert.deepEqual([...w.float32('c')], [4, 5, 6]);
      assert.deepEqual(w.files, [path.join(dir, 's1.safetensors'), path.join(dir, 's2.safetensors')]);

      // Remap "a" to s2: now the s2 copy is used.
      writeSmallSharded(dir, { weight_map: { a: 's2.safetensors', b: 's1.safetensors', c: 's2.safetensors' } });
      assert.deepEqual([...WeightSource.openDir(dir).float32('a')], [-1, -2]);
    });
  });

  test('model.safetensors takes precedence over an index in the same folder', () => {
    withTmp((dir) => {
      writeSmallSharded(dir);
      writeSafetensorsAtomic(path.join(dir, 'model.safetensors'), { only: f32(9) });
      const w = WeightSource.openDir(dir);
      assert.deepEqual(w.names(), ['only']);
    });
  });

  test('malformed index JSON names the index file', () => {
    withTmp((dir) => {
      writeSmallSharded(dir, '{"weight_map": {"a": "s1.safetensors",');
      throwsNaming(() => WeightSource.openDir(dir), path.join(dir, 'model.safetensors.index.json'), /malformed index JSON/);
    });
  });

  test('missing weight_map names the index file and the field', () => {
    withTmp((dir) => {
      writeSmallSharded(dir, { metadata: {} });
      throwsNaming(() => WeightSource.openDir(dir), 'model.safetensors.index.json', /weight_map: expected an object/, /found none/);
    });
  });

  test('invalid weight_map (array / non-string shard / empty) names the index and the field', () => {
    withTmp((dir) => {
      writeSmallSharded(dir, { weight_map: ['s1.safetensors'] });
      throwsNaming(() => WeightSource.openDir(dir), 'model.safetensors.index.json', /weight_map: expected an object/);
      writeSmallSharded(dir, { weight_map: { a: 3 } });
      throwsNaming(() => WeightSource.openDir(dir), 'model.safetensors.index.json', /weight_map\["a"\]/, /found 3/);
      writeSmallSharded(dir, { weight_map: {} });
      throwsNaming(() => WeightSource.openDir(dir), 'model.safetensors.index.json', /weight_map/, /at least one/);
      writeSmallSharded(dir, [1]);
      throwsNaming(() => WeightSource.openDir(dir), 'model.safetensors.index.json', /weight_map/);
    });
  });

  test('a shard outside the model folder is rejected', () => {
    withTmp((dir) => {
      writeSmallSharded(dir, { weight_map: { a: '../s1.safetensors' } });
      throwsNaming(() => WeightSource.openDir(dir), 'model.safetensors.index.json', '../s1.safetensors', /inside/);
    });
  });

  test('missing shard names the shard and the index', () => {
    withTmp((dir) => {
      writeSmallSharded(dir, { weight_map: { a: 's1.safetensors', z: 's9.safetensors' } });
      throwsNaming(() => WeightSource.openDir(dir), 'model.safetensors.index.json', 'shard "s9.safetensors"', '"z"', /not found/);
    });
  });

  test('tensor absent from its shard names the tensor, the shard and the index', () => {
    withTmp((dir) => {
      writeSmallSharded(dir, { weight_map: { a: 's1.safetensors', c: 's1.safetensors' } });
      throwsNaming(() => WeightSource.openDir(dir), 'tensor "c"', path.join(dir, 's1.safetensors'), 'model.safetensors.index.json', /does not contain/);
    });
  });

  test('a corrupt shard is reported with the shard path', () => {
    withTmp((dir) => {
      writeSmallSharded(dir);
      fs.writeFileSync(path.join(dir, 's2.safetensors'), new Uint8Array(4));
      throwsNaming(() => WeightSource.openDir(dir), path.join(dir, 's2.safetensors'), /too short/);
    });
  });

  test('missing directory names the path', () => {
    withTmp((dir) => {
      const p = path.join(dir, 'no-such-model');
      throwsNaming(() => WeightSource.openDir(p), p, /not found/);
    });
  });

  test('folder with neither model.safetensors nor an index names the folder and both file names', () => {
    withTmp((dir) => {
      fs.writeFileSync(path.join(dir, 'config.json'), '{}');
      throwsNaming(() => WeightSource.openDir(dir), dir, 'model.safetensors', 'model.safetensors.index.json');
    });
  });

  test('a corrupt single model.safetensors is reported with its path', () => {
    withTmp((dir) => {
      fs.writeFileSync(path.join(dir, 'model.safetensors'), 'not a safetensors file');
      throwsNaming(() => WeightSource.openDir(dir), path.join(dir, 'model.safetensors'));
    });
  });
});
