/** scripts/llamacpp-lib.ts: what the llama.cpp check does without llama.cpp (cut tokenizer, session file, mismatch). */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { completionArgs, firstMismatch, sessionTokens, truncateBpeTokenizer } from '../../scripts/llamacpp-lib.js';
import { Tokenizer } from '../../src/tokenizer/core.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const tokJson = JSON.parse(fs.readFileSync(path.join(root, 'test', 'fixtures', 'tokenizer-bpe', 'tokenizer.json'), 'utf8')) as Record<string, unknown>;

test('truncateBpeTokenizer keeps ids below the vocabulary and still encodes any text', () => {
  const full = Tokenizer.fromJSON(tokJson, undefined, 'full');
  const cut = Tokenizer.fromJSON(truncateBpeTokenizer(tokJson, 300), undefined, 'cut');
  const text = 'The state space model reads one token at a time — naïve ünïcode 123';
  const ids = cut.encode(text);
  assert.ok(ids.length > 0 && ids.every((i) => i < 300), `ids ${JSON.stringify(ids)}`);
  assert.ok(ids.length >= full.encode(text).length, 'fewer merges: at least as many tokens');
  assert.equal(cut.decode(ids), text);
  // the merges kept are the full tokenizer's first ones: a text the full one encodes with ids below 300 encodes alike
  for (const short of ['in', 'se', 'on']) {
    assert.ok(full.encode(short).every((i) => i < 300));
    assert.deepEqual(cut.encode(short), full.encode(short));
  }
});

test('truncateBpeTokenizer refuses a cut that loses byte tokens, and a non-BPE tokenizer', () => {
  assert.throws(() => truncateBpeTokenizer(tokJson, 100), /needs all 256 bytes/);
  assert.throws(() => truncateBpeTokenizer({ model: { type: 'WordPiece', vocab: {} } }, 300), /byte-level BPE/);
});

test('sessionTokens reads the ids of a llama.cpp session file and rejects what is not one', () => {
  const ids = [464, 1181, 2317, 0, 50279];
  const buf = Buffer.alloc(12 + 4 * ids.length + 7);
  buf.writeUInt32LE(0x6767736e, 0);
  buf.writeUInt32LE(9, 4);
  buf.writeUInt32LE(ids.length, 8);
  ids.forEach((id, i) => buf.writeInt32LE(id, 12 + 4 * i));
  assert.deepEqual(sessionTokens(buf), ids);
  const bad = Buffer.from(buf);
  bad.writeUInt32LE(0x46554747, 0);
  assert.throws(() => sessionTokens(bad, 's.bin'), /s\.bin: magic 0x46554747/);
  const short = Buffer.from(buf);
  short.writeUInt32LE(1000, 8);
  assert.throws(() => sessionTokens(short), /says 1000 tokens but holds 6/);
  assert.throws(() => sessionTokens(new Uint8Array(4)), /too short/);
});

test('firstMismatch and the greedy command line', () => {
  assert.equal(firstMismatch([1, 2, 3], [1, 2, 3]), -1);
  assert.equal(firstMismatch([1, 2, 3], [1, 5, 3]), 1);
  assert.equal(firstMismatch([1, 2], [1, 2, 3]), 2);
  const args = completionArgs('m.gguf', 'hi', 8, 2, 's.bin');
  const at = (k: string) => args[args.indexOf(k) + 1];
  assert.equal(at('--temp'), '0');
  assert.equal(at('--top-k'), '1');
  assert.equal(at('-n'), '8');
  assert.equal(at('--prompt-cache'), 's.bin');
  assert.equal(at('-ctk'), 'f32');
  assert.equal(at('-ctv'), 'f32');
  assert.ok(args.includes('--ignore-eos') && args.includes('--prompt-cache-all') && args.includes('-no-cnv'));
});
