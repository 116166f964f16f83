/**
 * Q4_K GGUFs on the wasm backend, kept quantized (the q4 format): a Mamba and a Mamba-2 256 wide (K-quants need
 * rows of 256; fresh weights of the model's own init) exported with `--type q4_k`, loaded with
 * `loadModel(file, { backend: 'wasm' })`: the logits agree with the same file dequantized on the cpu backend within
 * 2e-3 relative (only the activations' 13-bit quantization differs) and with the f32 original within the 4-bit
 * quantization's error; `weights: 'f32'` dequantizes instead. The tiny fixtures (64 wide: no row of 256) export as
 * Q8_0 under q4_k and load on wasm as q8. The numbers are printed as test diagnostics (BENCHMARKS.md's GGUF table).
 */
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel } from '../../src/api/load.js';
import { assembleModel } from '../../src/api/model.js';
import { cpu } from '../../src/backend/cpu/index.js';
import { GgufFile, encodeModelGguf, ggufModelParts, readExportInput, writeGgufAtomic } from '../../src/io/gguf.js';
import { concatChunks as concat } from '../../src/io/gguf-format.js';
import { GGML } from '../../src/io/gguf-quants.js';
import type { RawConfig } from '../../src/models/config.js';
import { InitTensorSource } from '../../src/models/init.js';
import { buildModel } from '../../src/models/registry.js';
import { hfFixture } from '../helpers.js';

const IDS = [Array.from({ length: 20 }, (_, i) => (i * 37 + 5) % 512), Array.from({ length: 20 }, (_, i) => (i * 11 + 1) % 512)];

/** fresh weights for `config`, recording the tensors the model asks for, as export input */
function synthetic(config: RawConfig, name: string): Parameters<typeof encodeModelGguf>[0] {
  const names: string[] = [];
  const src = new (class extends InitTensorSource {
    override shapeFor(n: string, shape: number[]): void {
      if (!names.includes(n)) names.push(n);
      super.shapeFor(n, shape);
    }
  })(config, 3);
  buildModel(config, name, src, { backend: cpu });
  return { config, configLabel: name, weights: { files: [], names: () => names, has: (n: string) => names.includes(n), entry: (n: string) => src.entry(n), float32: (n: string) => src.float32(n) }, tokenizer: null, name };
}

const MAMBA: RawConfig = {
  model_type: 'mamba', hidden_size: 256, intermediate_size: 512, state_size: 16, time_step_rank: 16, conv_kernel: 4, num_hidden_layers: 2,
  vocab_size: 512, tie_word_embeddings: true, use_bias: false, use_conv_bias: true, layer_norm_epsilon: 1e-5,
};
const MAMBA2: RawConfig = {
  model_type: 'mamba2', hidden_size: 256, expand: 2, num_heads: 8, head_dim: 64, n_groups: 1, state_size: 16, conv_kernel: 4, num_hidden_layers: 2,
  vocab_size: 512, tie_word_embeddings: true, use_bias: false, use_conv_bias: true, layer_norm_epsilon: 1e-5, chunk_size: 256,
};

/** max |Δ| / max |ref| and ‖Δ‖ / ‖ref‖ */
function error(ref: Float32Array, got: Float32Array): { max: number; rms: number } {
  let maxD = 0, maxR = 0, num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = got[i] - ref[i];
    maxD = Math.max(maxD, Math.abs(d));
    maxR = Math.max(maxR, Math.abs(ref[i]));
    num += d * d;
    den += ref[i] * ref[i];
  }
  return { max: maxD / maxR, rms: Math.sqrt(num / den) };
}

const cpuLogits = async (bytes: Uint8Array) =>
  (await assembleModel(ggufModelParts(GgufFile.fromBytes(bytes, 'x.gguf'), { tokenizer: false }), { backend: cpu }).forward(IDS)).logits.data;

let tmp = '';
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-q4-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('Q4_K GGUF on wasm (kept quantized)', () => {
  for (const [label, config] of [['mamba-256', MAMBA], ['mamba2-256', MAMBA2]] as const) {
    it(`${label}: logits vs the file dequantized on cpu and vs f32; weights: 'f32' dequantizes`, async (t) => {
      const input = synthetic(config, label);
      const f32 = concat(encodeModelGguf(input, 'f32'));
      const q4 = concat(encodeModelGguf(input, 'q4_k'));
      const g = GgufFile.fromBytes(q4, 'q4.gguf');
      const types = [...g.tensors.values()].map((x) => x.type);
      assert.ok(types.includes(GGML.Q4_K), 'matrices with rows of 256 are Q4_K');
      const file = path.join(tmp, `${label}-q4_k.gguf`);
      writeGgufAtomic(file, encodeModelGguf(input, 'q4_k'));
      const ref = await cpuLogits(f32), deq = await cpuLogits(q4);
      for (const threads of [1, 2]) {
        const m = await loadModel(file, { backend: 'wasm', threads, tokenizer: false });
        assert.match(m.lm.backend.name, /q4 weights/);
        const got = (await m.forward(IDS)).logits.data;
        const vsDeq = error(deq, got), vsF32 = error(ref, got), deqF32 = error(ref, deq);
        t.diagnostic(`${label} q4_k, wasm ${threads} thread(s): vs cpu dequantized max ${vsDeq.max.toExponential(2)} rms ${vsDeq.rms.toExponential(2)}; ` +
          `vs f32 max ${vsF32.max.toExponential(2)} rms ${vsF32.rms.toExponential(2)} (cpu dequantized vs f32: max ${deqF32.max.toExponential(2)} rms ${deqF32.rms.toExponential(2)})`);
        assert.ok(vsDeq.max > 0 && vsDeq.max < 2e-3 && vsDeq.rms < 1e-3, `${label}: wasm q4 vs cpu dequantized ${JSON.stringify(vsDeq)}`);
        // the 4-bit quantization's own error (these inits: ~0.25; gguf-quant-logits.test.ts compares the quantizers), to which wasm adds little
        assert.ok(vsF32.rms < 0.3 && Math.abs(vsF32.rms - deqF32.rms) < 0.02 * deqF32.rms, `${label}: vs f32 ${JSON.stringify(vsF32)}, dequantized ${JSON.stringify(deqF32)}`);
      }
      const m = await loadModel(file, { backend: 'wasm', threads: 1, weights: 'f32', tokenizer: false });
      assert.match(m.lm.backend.name, /f32 weights/);
      const e = error(deq, (await m.forward(IDS)).logits.data);
      assert.ok(e.max < 1e-4, `weights: 'f32' is the dequantized file: ${JSON.stringify(e)}`);
    });
  }

  for (const fixture of ['mamba-tiny', 'mamba2-tiny']) {
    it(`${fixture} (64 wide) exported as q4_k: Q8_0 matrices, loaded on wasm as q8 within 5e-2 of f32`, async () => {
      const input = readExportInput(hfFixture(fixture));
      const q4 = concat(encodeModelGguf(input, 'q4_k'));
      const types = new Set([...GgufFile.fromBytes(q4, 'q.gguf').tensors.values()].map((x) => x.type));
      assert.ok(!types.has(GGML.Q4_K) && types.has(GGML.Q8_0), 'no row of 256: Q8_0');
      const file = path.join(tmp, `${fixture}-q4_k.gguf`);
      fs.writeFileSync(file, q4);
      const m = await loadModel(file, { backend: 'wasm', threads: 2, tokenizer: false });
      assert.match(m.lm.backend.name, /q4 weights/);
      const e = error(await cpuLogits(concat(encodeModelGguf(input, 'f32'))), (await m.forward(IDS)).logits.data);
      assert.ok(e.rms > 0 && e.rms < 5e-2, `${fixture}: ${JSON.stringify(e)}`);
    });
  }

  it('a truncated Q4_K file is refused with a clear error', () => {
    const q4 = concat(encodeModelGguf(synthetic(MAMBA, 'mamba-256'), 'q4_k'));
    assert.throws(() => GgufFile.fromBytes(q4.subarray(0, q4.length - 100), 'cut.gguf'), /cut\.gguf.*(truncated|beyond|end)/i);
  });
});
