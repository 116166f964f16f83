/**
 * Random-init GGUF files at the 130m shapes `mamba-ts bench` measures (src/models/random.ts PRESETS: mamba-130m,
 * mamba2-130m, llama-130m), for running llama.cpp side by side (`npm run bench:wasm -- --llama-bench PATH
 * --llama-models DIR`, which looks for `<arch>-130m-<f32|f16|bf16|q8_0>.gguf`).
 *
 * Per architecture: fresh weights by the repository's init (Mamba-1: `initMambaWeights`; Mamba-2 and Llama:
 * `TrainableLM.fresh`, i.e. `InitTensorSource`), seeded, no training step, written as an HF folder (config.json,
 * model.safetensors, tokenizer.json: the byte-level BPE of test/fixtures/tokenizer-bpe, 2,048 tokens, which the GGUF
 * exporter pads with "[PADn]" to the embedding's rows as llama.cpp's converter does), then `mamba-ts export --gguf`
 * into each type. The files are ~0.1–0.5 GB each: they go to --out (default /tmp/bench-gguf), never the repository.
 *
 *   node dist/scripts/make-bench-models.js [--out DIR] [--archs mamba,mamba2,llama] [--types f32,f16,bf16,q8_0] [--seed N] [--keep-hf]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandUsage, parseChoice, parseCommand, parseNumber, str, flag, UsageError, type CommandSpec } from '../src/cli/args.js';
import { exportCommand } from '../src/cli/export.js';
import { writeSafetensorsAtomic, type WritableTensor } from '../src/io/safetensors.js';
import { EXPORT_TYPES, type ExportType } from '../src/io/gguf.js';
import type { RawConfig } from '../src/models/config.js';
import { stringifyConfigJson } from '../src/models/config-json.js';
import { initMambaWeights, mambaConfigJson } from '../src/models/init.js';
import { parseMambaConfig } from '../src/models/mamba.js';
import { PRESETS } from '../src/models/random.js';
import { TrainableLM } from '../src/train/lm.js';

const ARCHS = ['mamba', 'mamba2', 'llama'] as const;
type Arch = (typeof ARCHS)[number];

const SPEC: CommandSpec = {
  name: 'make-bench-models',
  summary: 'Write random-init 130m GGUF files (f32, f16, bf16, q8_0) for running llama.cpp next to mamba-ts bench.',
  synopsis: '[--out DIR] [--archs mamba,mamba2,llama] [--types f32,f16,bf16,q8_0] [--seed N] [--keep-hf]',
  options: {
    out: { type: 'string', short: 'o', value: 'DIR', help: 'output folder (default /tmp/bench-gguf); files <arch>-130m-<type>.gguf' },
    archs: { type: 'string', value: 'LIST', help: `architectures, comma-separated (default ${ARCHS.join(',')})` },
    types: { type: 'string', value: 'LIST', help: 'GGUF types, comma-separated (default f32,f16,bf16,q8_0)' },
    seed: { type: 'string', value: 'N', help: 'init seed (default 1): the same seed writes the same files' },
    'keep-hf': { type: 'boolean', help: 'keep the HF folders (<out>/hf/<arch>-130m) the GGUF files are exported from' },
  },
  examples: ['node dist/scripts/make-bench-models.js --out /tmp/bench-gguf', 'node dist/scripts/make-bench-models.js --archs mamba --types q8_0'],
};

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TOKENIZER = path.join(root, 'test', 'fixtures', 'tokenizer-bpe', 'tokenizer.json');

/** config.json and tensors of a fresh model at the preset's shape */
function freshModel(arch: Arch, seed: number): { config: RawConfig; tensors: Record<string, WritableTensor> } {
  const preset = PRESETS[`${arch}-130m`];
  let config: RawConfig;
  let tensors: Record<string, WritableTensor>;
  if (arch === 'mamba') {
    const c = parseMambaConfig(preset, `PRESETS["mamba-130m"]`);
    config = mambaConfigJson(c);
    tensors = initMambaWeights(c, { seed });
  } else {
    const n = (k: string) => preset[k] as number;
    const lm = arch === 'mamba2'
      ? TrainableLM.fresh('mamba2', { vocabSize: n('vocab_size'), hiddenSize: n('hidden_size'), numLayers: n('num_hidden_layers'), stateSize: n('state_size'), expand: n('expand'), headDim: n('head_dim'), convKernel: n('conv_kernel'), chunkSize: n('chunk_size') }, { seed })
      : TrainableLM.fresh('llama', { vocabSize: n('vocab_size'), hiddenSize: n('hidden_size'), numLayers: n('num_hidden_layers'), stateSize: 1, expand: 1, heads: n('num_attention_heads'), intermediateSize: n('intermediate_size'), ropeTheta: n('rope_theta') }, { seed });
    config = lm.configJson();
    tensors = {};
    for (const p of lm.params.values()) tensors[p.name] = { dtype: 'F32', shape: [...p.shape], data: p.data as Float32Array };
  }
  // the written config must describe the shape `mamba-ts bench --arch <arch>` measures
  for (const [k, v] of Object.entries(preset)) {
    if (JSON.stringify(config[k]) !== JSON.stringify(v)) throw new Error(`${arch}-130m: fresh config has ${k} = ${JSON.stringify(config[k])}, the bench preset ${JSON.stringify(v)}`);
  }
  return { config, tensors };
}

async function main(argv: string[]): Promise<number> {
  const values = parseCommand(SPEC, argv);
  if (values === null) {
    process.stdout.write(commandUsage(SPEC).replace('mamba-ts make-bench-models', 'node dist/scripts/make-bench-models.js'));
    return 0;
  }
  const out = path.resolve(str(values, 'out') ?? '/tmp/bench-gguf');
  if (out === root || out.startsWith(root + path.sep)) throw new UsageError(`--out ${out} is inside the repository; the files are ~0.5 GB each: write them elsewhere`, SPEC.name);
  const archs = (str(values, 'archs') ?? ARCHS.join(',')).split(',').map((a) => parseChoice('archs', a, ARCHS, SPEC.name));
  const types = (str(values, 'types') ?? 'f32,f16,bf16,q8_0').split(',').map((t) => parseChoice('types', t, Object.keys(EXPORT_TYPES) as ExportType[], SPEC.name));
  const seed = parseNumber('seed', str(values, 'seed') ?? '1', { integer: true, min: 0, expect: 'an integer >= 0' }, SPEC.name);
  fs.mkdirSync(out, { recursive: true });
  const io = { stdout: process.stdout, stderr: process.stderr };
  for (const arch of archs) {
    const hf = path.join(out, 'hf', `${arch}-130m`);
    process.stderr.write(`[make-bench-models] ${arch}-130m: fresh weights (seed ${seed}) → ${hf}\n`);
    const { config, tensors } = freshModel(arch, seed);
    fs.mkdirSync(hf, { recursive: true });
    writeSafetensorsAtomic(path.join(hf, 'model.safetensors'), tensors, { format: 'pt' });
    fs.writeFileSync(path.join(hf, 'config.json'), stringifyConfigJson(config));
    fs.copyFileSync(TOKENIZER, path.join(hf, 'tokenizer.json'));
    for (const type of types) {
      const rc = await exportCommand(['--model', hf, '--gguf', path.join(out, `${arch}-130m-${type}.gguf`), '--type', type], io);
      if (rc !== 0) return rc;
    }
    if (!flag(values, 'keep-hf')) fs.rmSync(hf, { recursive: true, force: true });
  }
  if (!flag(values, 'keep-hf')) fs.rmSync(path.join(out, 'hf'), { recursive: true, force: true });
  return 0;
}

main(process.argv.slice(2)).then((rc) => process.exit(rc), (e: unknown) => {
  process.stderr.write(`make-bench-models: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
