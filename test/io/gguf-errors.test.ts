/**
 * Bad GGUF files get a GgufError (a MambaTsError) whose message names the file and the field, tensor or offset —
 * never a crash, a hang or a silently wrong model: one test per malformed case (built with the spec writer), then
 * truncation at every header length and seeded random byte corruption of a real file.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { assembleModel } from '../../src/api/model.js';
import { cpu } from '../../src/backend/cpu/index.js';
import { MambaTsError } from '../../src/errors.js';
import { GgufError, GgufFile, encodeModelGguf, ggufModelParts, readExportInput } from '../../src/io/gguf.js';
import { concatChunks as concat } from '../../src/io/gguf-format.js';
import { hfFixture, randomArray } from '../helpers.js';
import { f32Bytes, specGguf, type SpecTensor, type SpecValue } from './gguf-spec-writer.js';

const LABEL = 'bad.gguf';
const parse = (b: Uint8Array) => GgufFile.fromBytes(b, LABEL);
/** parse, map to HF and build the model (what loading does short of running it) */
const load = (b: Uint8Array) => assembleModel(ggufModelParts(parse(b)), { backend: cpu });

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof GgufError || e instanceof MambaTsError, `expected a MambaTsError, got ${String(e)}`);
    assert.match((e as Error).message, pattern);
    return true;
  });
}

const t1 = (name: string, shape: number[], type = 0): SpecTensor => ({
  name, shape, type, data: type === 0 ? f32Bytes(randomArray(shape.reduce((a, b) => a * b, 1), 3)) : new Uint8Array((shape.reduce((a, b) => a * b, 1) / 32) * 34),
});
const KV: Array<[string, SpecValue]> = [['general.architecture', ['str', 'mamba']], ['general.name', ['str', 'x']]];

describe('malformed files are rejected with a GgufError naming file and field', () => {
  test('not GGUF: wrong magic, too short', () => {
    rejects(() => parse(specGguf(KV, [], { magic: 'GGML' })), /bad\.gguf: not a GGUF file: magic is "GGML", expected "GGUF"/);
    rejects(() => parse(new Uint8Array([0x47, 0x47])), /bad\.gguf: not a GGUF file/);
    rejects(() => parse(new TextEncoder().encode('{"__metadata__": {}}')), /not a GGUF file/);
  });

  test('unsupported version', () => {
    rejects(() => parse(specGguf(KV, [], { version: 1 })), /GGUF version 1 is not supported \(expected 2 or 3\)/);
    rejects(() => parse(specGguf(KV, [], { version: 99 })), /GGUF version 99/);
  });

  test('absurd counts and lengths are refused before allocating', () => {
    rejects(() => parse(specGguf(KV, [], { tensorCount: 1n << 40n })), /tensor count is 1099511627776, expected at most/);
    rejects(() => parse(specGguf(KV, [], { kvCount: 1n << 62n })), /metadata count is \d+, expected at most/);
    rejects(() => parse(specGguf(KV, [], { kvCount: 5n })), /truncated: .*metadata key \d/);
    const longKey = specGguf([['k', ['str', 'v']]], []);
    new DataView(longKey.buffer).setBigUint64(24, 1n << 50n, true); // the key's length
    rejects(() => parse(longKey), /length of metadata key 0 is \d+, expected at most/);
  });

  test('tensor infos: n_dims, unknown types, rows that do not fill blocks, offsets out of range, misaligned, overlapping', () => {
    const dims = specGguf(KV, [t1('a', [4])]);
    // n_dims follows the tensor's name: u64 length 1, then "a"
    const at = Buffer.from(dims).indexOf(Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0x61])) + 9;
    new DataView(dims.buffer).setUint32(at, 7, true);
    rejects(() => parse(dims), /tensor "a": n_dims is 7, expected 1\.\.4/);
    rejects(() => parse(specGguf(KV, [{ ...t1('q2', [256]), type: 10, data: new Uint8Array(84) }])), /tensor "q2" has ggml type 10 \(Q2_K\), which is not supported \(supported: F32, F16, Q4_0/);
    rejects(() => parse(specGguf(KV, [{ ...t1('w', [4]), type: 99 }])), /tensor "w" has ggml type 99 \(unknown\)/);
    rejects(() => parse(specGguf(KV, [{ name: 'q', shape: [2, 48], type: 8, data: new Uint8Array(102) }])), /tensor "q" \(Q8_0\) has a row of 48 values, not a multiple of the Q8_0 block size 32/);
    rejects(() => parse(specGguf(KV, [t1('a', [4]), t1('b', [4])], { offsets: { b: 1n << 20n } })), /tensor "b" spans bytes \d+\.\.\d+, beyond the end of the file/);
    rejects(() => parse(specGguf(KV, [t1('a', [4])], { offsets: { a: 4n } })), /tensor "a" is at data offset 4, not a multiple of the alignment 32/);
    rejects(() => parse(specGguf(KV, [t1('a', [16]), t1('b', [16])], { offsets: { b: 32n } })), /tensors "a" and "b" overlap/);
    rejects(() => parse(specGguf(KV, [t1('a', [4]), t1('a', [4])])), /tensor "a" is listed twice/);
    rejects(() => parse(specGguf([...KV, ['general.alignment', ['u32', 48]]], [])), /"general\.alignment" is "48", expected a power of two/);
  });

  test('metadata the architecture needs: missing, mistyped, wrong length; unknown architecture and tensors', () => {
    const good = encodeModelGguf(readExportInput(hfFixture('mamba-tiny')), 'f32');
    const file = parse(concat(good));
    // rebuild the file with one key changed
    const rebuild = (edit: (kvs: Array<[string, SpecValue]>) => Array<[string, SpecValue]>, tensors?: SpecTensor[]) => {
      const kvs: Array<[string, SpecValue]> = [];
      for (const [k, v] of file.metadata) {
        const t = v.type === 4 ? 'u32' : v.type === 6 ? 'f32' : v.type === 7 ? 'bool' : v.type === 8 ? 'str' : v.itemType === 8 ? 'str[]' : 'i32[]';
        kvs.push([k, [t, v.value] as SpecValue]);
      }
      const ts = tensors ?? [...file.tensors.values()].map((t) => ({ name: t.name, shape: t.shape, type: t.type, data: file.bytes(t.name) }));
      return specGguf(edit(kvs), ts);
    };
    assert.doesNotThrow(() => load(rebuild((k) => k)), 'the rebuilt file is valid');
    rejects(() => load(rebuild((k) => k.filter(([n]) => n !== 'mamba.block_count'))), /bad\.gguf: metadata "mamba\.block_count" is missing \(expected a number\)/);
    rejects(() => load(rebuild((k) => k.map(([n, v]) => [n, n === 'mamba.ssm.state_size' ? ['str', '16'] : v]))), /metadata "mamba\.ssm\.state_size" is string "16", expected a number/);
    rejects(() => load(rebuild((k) => k.map(([n, v]) => [n, n === 'general.architecture' ? ['str', 'rwkv7'] : v]))), /metadata "general\.architecture" is "rwkv7", which mamba-ts does not read \(supported: mamba, mamba2/);
    rejects(() => load(rebuild((k) => k.filter(([n]) => n !== 'general.architecture'))), /metadata "general\.architecture" is missing/);
    rejects(() => load(rebuild((k) => k.map(([n, v]) => [n, n === 'mamba.embedding_length' ? ['u32', 32] : v]))), /tensor "token_embd\.weight" has shape \[512, 64\], expected \[vocab, 32\]/);
    const tensors = [...file.tensors.values()].map((t) => ({ name: t.name, shape: t.shape, type: t.type, data: file.bytes(t.name) }));
    rejects(() => load(rebuild((k) => k, [...tensors, t1('blk.0.mystery.weight', [4])])), /tensor "blk\.0\.mystery\.weight" is not part of a mamba model as mamba-ts reads it/);
    rejects(() => load(rebuild((k) => k, tensors.filter((t) => t.name !== 'blk.1.ssm_out.weight'))), /missing tensor "backbone\.layers\.1\.mixer\.out_proj\.weight"/);
    rejects(() => load(rebuild((k) => k, tensors.map((t) => (t.name === 'blk.0.ssm_conv1d.weight' ? { ...t, shape: [4, 128], data: t.data } : t)))), /tensor "backbone\.layers\.0\.mixer\.conv1d\.weight" in bad\.gguf \(blk\.0\.ssm_conv1d\.weight\) has shape \[4, 1, 128\], but config\.json implies \[128, 1, 4\]/);
    const hybrid = parse(concat(encodeModelGguf(readExportInput(hfFixture('bamba-tiny')), 'f32')));
    const kvs: Array<[string, SpecValue]> = [...hybrid.metadata].map(([n, v]) => [n, n === 'granitehybrid.attention.head_count_kv' ? ['i32[]', [0, 2, 0]] : v.type === 4 ? ['u32', v.value as number] : v.type === 6 ? ['f32', v.value as number] : v.type === 7 ? ['bool', v.value as boolean] : ['str', v.value as string]]);
    const hts = [...hybrid.tensors.values()].map((t) => ({ name: t.name, shape: t.shape, type: t.type, data: hybrid.bytes(t.name) }));
    rejects(() => load(specGguf(kvs, hts)), /metadata "granitehybrid\.attention\.head_count_kv" is an array of 3 values, expected 4 non-negative integers \(one per layer\)/);
  });
});


describe('fuzz', () => {
  const valid = concat(encodeModelGguf(readExportInput(hfFixture('mamba2-tiny')), 'q8_0'));
  const headerEnd = parse(valid).dataOffset;

  test('truncated at every length of the header (and through the data): a GgufError naming the file', () => {
    assert.doesNotThrow(() => load(valid));
    for (let n = 0; n < valid.length; n += n < headerEnd + 64 ? 1 : 997) {
      rejects(() => load(valid.subarray(0, n)), /bad\.gguf: (truncated|not a GGUF file|tensor ".*" spans bytes)/);
    }
  });

  test('random byte corruption: a model or a MambaTsError, never another exception', () => {
    const rnd = randomArray(4000, 42);
    let failures = 0;
    for (let trial = 0; trial < 400; trial++) {
      const b = valid.slice();
      const flips = 1 + Math.floor(Math.abs(rnd[trial * 3]) * 4);
      for (let f = 0; f < flips; f++) {
        // mostly the header, where the structure is
        const pos = Math.floor(Math.abs(rnd[(trial * 3 + f + 1) % 4000]) * (trial % 4 === 0 ? b.length : headerEnd));
        b[pos] = Math.floor(Math.abs(rnd[(trial * 7 + f) % 4000]) * 256);
      }
      try {
        load(b);
      } catch (e) {
        failures++;
        assert.ok(e instanceof MambaTsError, `trial ${trial}: ${(e as Error)?.stack ?? String(e)}`);
        assert.ok((e as Error).message.length > 0);
      }
    }
    assert.ok(failures > 50, `the corruption is not vacuous (${failures} of 400 rejected)`);
  });
});
