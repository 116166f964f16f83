/**
 * GGUF import and export (src/io/gguf*.ts) on the tiny HF fixtures:
 *  - files written by an independent writer that follows the spec and llama.cpp's converter (gguf-spec-writer.ts)
 *    load with the same logits as the safetensors checkpoint (F32: bit for bit; F16: bit for bit against the
 *    checkpoint with its matrices rounded to f16 the converter's way);
 *  - our exporter → importer, every architecture: F32 logits identical, every tensor back exactly, a second export
 *    byte-identical; F16 and Q8_0 identical to the checkpoint with its matrices rounded through that type;
 *  - the tokenizer (tokenizer.ggml.*) encodes and decodes as tokenizer.json does;
 *  - `mamba-ts export --gguf` writes a file `--model x.gguf` loads.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel } from '../../src/api/load.js';
import { assembleModel } from '../../src/api/model.js';
import { cpu } from '../../src/backend/cpu/index.js';
import { GgufFile, GgufWeights, encodeModelGguf, ggufModelParts, readExportInput, writeGgufAtomic } from '../../src/io/gguf.js';
import { ggufConfig } from '../../src/io/gguf-config.js';
import { WeightSource } from '../../src/io/weights.js';
import type { TensorSource } from '../../src/io/tensor-source.js';
import { readConfig } from '../../src/models/config-file.js';
import { Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { byteLevelTokenizerJson } from '../../src/train/byte-tokenizer.js';
import { f16ToF32, f32ToF16 } from '../../src/tensor/dtype.js';
import { concatChunks as concat, encodeGguf, gv, type GgufValue } from '../../src/io/gguf-format.js';
import { hfFixture } from '../helpers.js';
import { runCli, writeSmallTokenizer } from '../cli/cli-helpers.js';
import { specConvert, specGguf } from './gguf-spec-writer.js';

let tmp = '';
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-gguf-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const IDS = [
  [1, 5, 9, 200, 17, 3, 44, 12, 7, 100, 3, 3, 8, 250, 31, 2],
  [0, 4, 4, 4, 90, 91, 92, 93, 11, 12, 13, 14, 15, 16, 17, 18],
];
const ids = (vocab: number) => IDS.map((r) => r.map((x) => x % vocab));

async function logitsOfDir(dir: string, vocab: number): Promise<Float32Array> {
  const m = await loadModel(dir, { tokenizer: false });
  return (await m.forward(ids(vocab))).logits.data;
}

async function logitsOfSource(dir: string, weights: TensorSource, vocab: number): Promise<Float32Array> {
  const config = readConfig(dir);
  const m = assembleModel({ config, configLabel: `${dir}/config.json`, weights, tokenizer: null, location: dir }, { backend: cpu });
  return (await m.forward(ids(vocab))).logits.data;
}

async function logitsOfGguf(bytes: Uint8Array, label: string, vocab: number): Promise<Float32Array> {
  const parts = ggufModelParts(GgufFile.fromBytes(bytes, label), { tokenizer: false });
  const m = assembleModel(parts, { backend: cpu });
  return (await m.forward(ids(vocab))).logits.data;
}


/**
 * The checkpoint with the tensors llama.cpp's converter stores in the matrix type rounded through it: 2-D+ `.weight`
 * tensors except norms, conv1d and routers; Q8_0 only for rows that are a multiple of 32 (else F16), as ggml's
 * reference quantizer: d = max|x|/127 in f32, q = round(x · (1/d)) halves away from zero, value = f16(d) · q.
 */
function roundedSource(src: ReturnType<typeof WeightSource.openDir>, type: 'f16' | 'q8_0'): TensorSource {
  const rounded = (name: string): boolean => {
    const shape = src.entry(name).shape;
    return shape.length >= 2 && name.endsWith('.weight') && !/norm|conv1d|router/.test(name);
  };
  const half = (v: number) => f16ToF32(f32ToF16(v));
  return {
    files: src.files,
    has: (n) => src.has(n),
    entry: (n) => src.entry(n),
    float32(name) {
      const x = src.float32(name);
      if (!rounded(name)) return x;
      const row = src.entry(name).shape.at(-1)!;
      if (type === 'f16' || row % 32 !== 0) return Float32Array.from(x, half);
      const out = new Float32Array(x.length);
      for (let b = 0; b < x.length; b += 32) {
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]));
        const d = Math.fround(amax / 127), id = d === 0 ? 0 : Math.fround(1 / d), dh = half(d);
        for (let j = 0; j < 32; j++) {
          const v = Math.fround(x[b + j] * id);
          out[b + j] = dh * (v < 0 ? -Math.round(-v) : Math.round(v));
        }
      }
      return out;
    },
  };
}

describe('GGUF written by an independent spec writer (llama.cpp converter conventions)', () => {
  const cases: Array<[string, 'mamba' | 'mamba2' | 'llama', (c: Record<string, unknown>) => Record<string, number>]> = [
    ['mamba-tiny', 'mamba', (c) => ({ hidden: c.hidden_size, layers: c.num_hidden_layers, conv: c.conv_kernel, inner: c.intermediate_size, state: c.state_size, rank: c.time_step_rank, eps: c.layer_norm_epsilon }) as Record<string, number>],
    ['mamba2-tiny', 'mamba2', (c) => ({ hidden: c.hidden_size, layers: c.num_hidden_layers, conv: c.conv_kernel, inner: (c.expand as number) * (c.hidden_size as number), state: c.state_size, rank: c.num_heads, groups: c.n_groups, eps: c.layer_norm_epsilon }) as Record<string, number>],
    ['llama-tiny', 'llama', (c) => ({ hidden: c.hidden_size, layers: c.num_hidden_layers, ctx: c.max_position_embeddings, ff: c.intermediate_size, heads: c.num_attention_heads, kvHeads: c.num_key_value_heads, theta: 10000, eps: c.rms_norm_eps, headDim: c.head_dim, vocab: c.vocab_size }) as Record<string, number>],
  ];
  for (const [fixture, arch, cfgOf] of cases) {
    test(`${fixture} (${arch}): F32 logits identical to safetensors, F16 identical to the f16-rounded checkpoint`, async () => {
      const dir = hfFixture(fixture);
      const config = readConfig(dir);
      const vocab = config.vocab_size as number;
      const st = WeightSource.openDir(dir);
      const ck = { names: () => st.names(), shape: (n: string) => st.entry(n).shape, get: (n: string) => st.float32(n) };
      const ref = await logitsOfDir(dir, vocab);
      const f32 = specConvert(arch, cfgOf(config), ck, 0);
      assert.deepEqual(await logitsOfGguf(specGguf(f32.kvs, f32.tensors), `${fixture}-spec-f32.gguf`, vocab), ref);
      const f16 = specConvert(arch, cfgOf(config), ck, 1);
      const got16 = await logitsOfGguf(specGguf(f16.kvs, f16.tensors, { alignment: 64 }), `${fixture}-spec-f16.gguf`, vocab);
      assert.deepEqual(got16, await logitsOfSource(dir, roundedSource(st, 'f16'), vocab));
      assert.notDeepEqual(got16, ref, 'f16 rounding changes the logits (the check above is not vacuous)');
    });
  }
});

const FIXTURES = ['mamba-tiny', 'falcon-mamba-tiny', 'mamba-variant', 'mamba2-tiny', 'mamba2-groups', 'jamba-tiny', 'bamba-tiny', 'bamba-variant', 'granite-hybrid-tiny', 'nemotron-h-tiny', 'llama-tiny'];

describe('export → import', () => {
  for (const fixture of FIXTURES) {
    test(`${fixture}: every tensor back exactly, logits identical (F32) or identical to the rounded checkpoint (F16, Q8_0)`, async () => {
      const dir = hfFixture(fixture);
      const config = readConfig(dir);
      const vocab = config.vocab_size as number;
      const st = WeightSource.openDir(dir);
      const bytes = concat(encodeModelGguf(readExportInput(dir), 'f32'));
      const g = GgufFile.fromBytes(bytes, `${fixture}.gguf`);
      const imported = ggufConfig(g);
      const w = new GgufWeights(g, imported.family, imported.nLayers, imported.ctx);
      assert.deepEqual(new Set(w.names()), new Set(st.names()), 'the same tensor names');
      for (const n of st.names()) {
        assert.deepEqual(w.entry(n).shape, st.entry(n).shape, `${n} shape`);
        if (n.endsWith('A_log')) {
          // GGUF stores A = −exp(A_log): the model takes A as is (bit-identical to the safetensors load's),
          // A_log comes back as log(−A), within an ulp
          assert.deepEqual(w.negExp(n), Float32Array.from(st.float32(n), (v) => -Math.exp(v)), `${n}: A`);
          const back = w.float32(n), orig = st.float32(n);
          for (let i = 0; i < orig.length; i++) assert.ok(Math.abs(back[i] - orig[i]) <= 2 ** -22 * Math.max(1, Math.abs(orig[i])), `${n}[${i}]: ${back[i]} vs ${orig[i]}`);
        } else assert.deepEqual(w.float32(n), st.float32(n), `${n} values`);
      }
      // a second export of the imported model: the same bytes
      const again = concat(encodeModelGguf({ config: imported.config, configLabel: 'imported', weights: w, tokenizer: null, name: fixture }, 'f32'));
      assert.deepEqual(again, bytes);
      let refDir = dir;
      if (fixture === 'mamba2-groups') {
        // GGUF has no key for time_step_limit ([0.01, 0.5] here): the import takes HF's default [0, ∞), so the
        // reference is the same checkpoint with that default
        assert.equal(imported.config.time_step_limit, undefined);
        refDir = path.join(tmp, 'mamba2-groups-default-limit');
        fs.cpSync(dir, refDir, { recursive: true });
        fs.writeFileSync(path.join(refDir, 'config.json'), JSON.stringify({ ...config, time_step_limit: undefined }));
      }
      const ref = await logitsOfDir(refDir, vocab);
      assert.deepEqual(await logitsOfGguf(bytes, `${fixture}.gguf`, vocab), ref);
      for (const type of ['f16', 'q8_0'] as const) {
        const q = concat(encodeModelGguf(readExportInput(dir), type));
        assert.deepEqual(await logitsOfGguf(q, `${fixture}-${type}.gguf`, vocab), await logitsOfSource(refDir, roundedSource(st, type), vocab), type);
      }
    });
  }

  test('tied embeddings: no output.weight is written, and the import ties them again', () => {
    const bytes = concat(encodeModelGguf(readExportInput(hfFixture('mamba-tiny')), 'f32'));
    const g = GgufFile.fromBytes(bytes, 'tied.gguf');
    assert.equal(g.tensors.has('output.weight'), false);
    assert.equal(ggufConfig(g).config.tie_word_embeddings, true);
    const untied = GgufFile.fromBytes(concat(encodeModelGguf(readExportInput(hfFixture('mamba-variant')), 'f32')), 'untied.gguf');
    assert.equal(untied.tensors.has('output.weight'), true);
    assert.equal(ggufConfig(untied).config.tie_word_embeddings, false);
  });

  test('metadata as the converter writes it: per-layer head_count_kv (0 = SSM layer), grouped norms, (n, 1) A and D', () => {
    const g = GgufFile.fromBytes(concat(encodeModelGguf(readExportInput(hfFixture('bamba-tiny')), 'q8_0')), 'bamba.gguf');
    assert.equal(g.str('general.architecture'), 'granitehybrid');
    assert.deepEqual(g.get('granitehybrid.attention.head_count_kv'), [0, 2, 0, 2]);
    assert.equal(g.int('granitehybrid.ssm.time_step_rank'), 8);
    assert.equal(g.int('granitehybrid.rope.dimension_count'), 8, 'partial rotary: half of the 16-wide heads');
    assert.equal(g.int('general.file_type'), 7);
    assert.equal(g.int('general.quantization_version'), 2);
    assert.deepEqual(g.tensor('blk.0.ssm_a').shape, [8, 1]);
    assert.deepEqual(g.tensor('blk.0.ssm_d').shape, [8, 1]);
    assert.deepEqual(g.tensor('blk.0.ssm_norm.weight').shape, [1, 128]);
    assert.deepEqual(g.tensor('blk.0.ssm_conv1d.weight').shape, [160, 4]);
    assert.equal(g.tensor('blk.0.ssm_conv1d.weight').type, 0, 'conv weights stay F32');
    assert.equal(g.tensor('blk.0.ssm_in.weight').type, 8, 'matrices are Q8_0');
    assert.ok([...g.tensors.values()].every((t) => (t.offset - g.dataOffset) % 32 === 0), 'tensors aligned to 32');
    const jamba = GgufFile.fromBytes(concat(encodeModelGguf(readExportInput(hfFixture('jamba-tiny')), 'f32')), 'jamba.gguf');
    assert.deepEqual(jamba.tensor('blk.1.ffn_gate_exps.weight').shape, [4, 128, 64], 'experts stacked');
    assert.equal(jamba.tensor('blk.1.ffn_gate_inp.weight').type, 0, 'routers stay F32');
    const granite = GgufFile.fromBytes(concat(encodeModelGguf(readExportInput(hfFixture('granite-hybrid-tiny')), 'f32')), 'granite.gguf');
    assert.deepEqual(granite.tensor('blk.0.ffn_up_exps.weight').shape, [4, 128, 64], 'fused gate|up split');
    assert.deepEqual(granite.tensor('blk.0.ffn_gate_shexp.weight').shape, [64, 64]);
    assert.equal(granite.num('granitehybrid.logit_scale'), 4);
  });
});

describe('tokenizer.ggml.*', () => {
  test('a model folder with tokenizer.json: the GGUF tokenizer encodes, decodes and knows eos as tokenizer.json does', async () => {
    const dir = path.join(tmp, 'mamba-tok');
    fs.cpSync(hfFixture('mamba-tiny'), dir, { recursive: true });
    writeSmallTokenizer(dir);
    const file = path.join(dir, '..', 'mamba-tok.gguf');
    writeGgufAtomic(file, encodeModelGguf(readExportInput(dir), 'f16'));
    const ref = Tokenizer.fromFile(dir);
    const model = await loadModel(file);
    assert.ok(model.tokenizer);
    const g = GgufFile.fromBytes(fs.readFileSync(file), file);
    assert.equal((g.get('tokenizer.ggml.tokens') as string[]).length, 512);
    assert.equal(g.str('tokenizer.ggml.pre'), 'gpt-2');
    for (const text of ['The state space model', 'Hello, world! 123 4567', '  spaces\tand\nlines  ', 'ünïcödé → ✓', '<|endoftext|>x']) {
      assert.deepEqual(model.encode(text), ref.encode(text), text);
      assert.equal(model.decode(ref.encode(text)), ref.decode(ref.encode(text)), text);
    }
    assert.deepEqual(model.eosTokenIds, [0]);
  });

  test('tokenizer.ggml.add_bos_token: encode prepends BOS when true; not when false, nor when absent (llama.cpp\'s default for gpt2 vocabularies but Llama-3-style ones)', () => {
    const dir = path.join(tmp, 'mamba-bos');
    fs.cpSync(hfFixture('mamba-tiny'), dir, { recursive: true });
    writeSmallTokenizer(dir);
    const g = GgufFile.fromBytes(concat(encodeModelGguf(readExportInput(dir), 'f32')), 'bos.gguf');
    assert.equal(g.has('tokenizer.ggml.add_bos_token'), false, 'the converter writes no add_bos_token for mamba');
    const bos = g.int('tokenizer.ggml.bos_token_id');
    const withKeys = (keys: Array<[string, GgufValue]>) => {
      const md = [...g.metadata].filter(([k]) => !keys.some(([n]) => n === k));
      const tensors = [...g.tensors.values()].map((t) => ({ name: t.name, shape: t.shape, type: t.type, data: g.bytes(t.name) }));
      return ggufModelParts(GgufFile.fromBytes(concat(encodeGguf([...md, ...keys], tensors)), 'bos.gguf')).tokenizer!;
    };
    const text = 'The state space model';
    const plain = withKeys([]).encode(text);
    assert.notEqual(plain[0], bos);
    assert.deepEqual(withKeys([['tokenizer.ggml.add_bos_token', gv.bool(false)]]).encode(text), plain);
    assert.deepEqual(withKeys([['tokenizer.ggml.add_bos_token', gv.bool(true)]]).encode(text), [bos, ...plain]);
    assert.deepEqual(withKeys([['tokenizer.ggml.add_bos_token', gv.bool(true)]]).encode(text, { addSpecialTokens: false }), plain);
    assert.equal(withKeys([['tokenizer.ggml.pre', gv.str('llama-bpe')]]).encode(text)[0], bos, 'llama-bpe: BOS by default');
    assert.throws(() => withKeys([['tokenizer.ggml.add_bos_token', gv.bool(true)], ['tokenizer.ggml.bos_token_id', gv.u32(99999)]]), /bos_token_id" is 99999, beyond/);
  });

  test('no tokenizer: tokenizer.ggml.model "no_vocab" (what llama.cpp reads as none), loaded without one', async () => {
    const file = path.join(tmp, 'no-vocab.gguf');
    writeGgufAtomic(file, encodeModelGguf(readExportInput(hfFixture('mamba-tiny')), 'f32'));
    assert.equal(GgufFile.fromBytes(fs.readFileSync(file), file).str('tokenizer.ggml.model'), 'no_vocab');
    assert.equal((await loadModel(file)).tokenizer, null);
  });

  test('a byte-level tokenizer of a model trained here (256 byte tokens, no merges) round-trips', async () => {
    const dir = path.join(tmp, 'mamba-bytes');
    fs.cpSync(hfFixture('mamba-tiny'), dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), byteLevelTokenizerJson());
    const file = path.join(tmp, 'mamba-bytes.gguf');
    writeGgufAtomic(file, encodeModelGguf(readExportInput(dir), 'f32'));
    const ref = Tokenizer.fromFile(dir), model = await loadModel(file);
    for (const text of ['bytes: ü → ✓', 'a  b\n']) {
      assert.deepEqual(model.encode(text), ref.encode(text));
      assert.equal(model.decode(model.encode(text)), text);
    }
  });
});

describe('mamba-ts export --gguf', () => {
  test('writes a file that --model x.gguf runs; --help; bad --type and a missing --gguf are usage errors', async () => {
    const out = path.join(tmp, 'cli.gguf');
    const r = await runCli(['export', '--model', hfFixture('mamba2-tiny'), '--gguf', out, '--type', 'q8_0']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /wrote .*cli\.gguf .*q8_0/);
    assert.equal(GgufFile.fromBytes(fs.readFileSync(out), out).int('general.file_type'), 7);
    assert.equal(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-')).length, 0, 'no temp file left');
    const info = await runCli(['info', '--model', out, '--json']);
    assert.equal(info.code, 0, info.stderr);
    assert.equal(JSON.parse(info.stdout).model_type, 'mamba2');
    const gen = await runCli(['generate', '--model', out, '--ids', '1,2,3', '--max-tokens', '4']);
    assert.equal(gen.code, 0, gen.stderr);
    const help = await runCli(['export', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--gguf OUT/);
    assert.match(help.stdout, /q8_0/);
    const bad = await runCli(['export', '--model', hfFixture('mamba2-tiny'), '--gguf', out, '--type', 'q5_k']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--type: expected one of f32, f16, bf16, q8_0, q4_k/);
    const missing = await runCli(['export', '--model', hfFixture('mamba2-tiny')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--gguf/);
  });
});

test('a missing .gguf file is reported as such', async () => {
  await assert.rejects(loadModel(path.join(tmp, 'nope.gguf')), /GGUF file not found: .*nope\.gguf/);
});

describe('backends', () => {
  test('a Q8_0 GGUF on wasm keeps q8 matrices (the same int8 quanta) and agrees with the cpu backend', async () => {
    const file = path.join(tmp, 'wasm-q8.gguf');
    writeGgufAtomic(file, encodeModelGguf(readExportInput(hfFixture('mamba-tiny')), 'q8_0'));
    const onCpu = await loadModel(file);
    const onWasm = await loadModel(file, { backend: 'wasm', threads: 1 });
    assert.match(onWasm.lm.backend.name, /q8 weights/);
    const a = (await onCpu.forward(ids(512))).logits.data, b = (await onWasm.forward(ids(512))).logits.data;
    let num = 0, den = 0;
    for (let i = 0; i < a.length; i++) {
      num += (a[i] - b[i]) ** 2;
      den += a[i] ** 2;
    }
    // wasm's q8 linear also rounds the activations to int8 blocks
    assert.ok(Math.sqrt(num / den) < 2e-2, `relative error ${Math.sqrt(num / den)}`);
    const f32OnWasm = await loadModel(file, { backend: 'wasm', threads: 1, weights: 'f32' });
    assert.match(f32OnWasm.lm.backend.name, /f32 weights/);
  });
});
