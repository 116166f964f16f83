/** `mamba-ts export --gguf OUT`: a model folder (or a GGUF file) written as llama.cpp's converter writes it. */
import * as fs from 'node:fs';
import { EXPORT_TYPES, encodeModelGguf, readExportInput, writeGgufAtomic, type ExportType } from '../io/gguf.js';
import { ProgressBar } from '../train/progress.js';
import { commandUsage, parseChoice, parseCommand, str, UsageError, type CommandSpec } from './args.js';
import { requireModel } from './info.js';
import { formatBytes, type CliIO } from './io.js';

export const EXPORT_SPEC: CommandSpec = {
  name: 'export',
  summary: 'Write a model as a GGUF file for llama.cpp and Ollama.',
  synopsis: '--model DIR --gguf OUT [--type f32|f16|bf16|q8_0|q4_k]',
  description:
    'Writes what llama.cpp\'s convert_hf_to_gguf.py writes for the model: its architecture (mamba, mamba2, jamba,\n' +
    'granitehybrid, nemotron_h, llama), metadata keys, tensor names and transforms, and the tokenizer\n' +
    '(tokenizer.json, byte-level BPE) as tokenizer.ggml.*. Matrices are stored in --type; norms, biases, A, D,\n' +
    'conv and router weights stay F32, as the converter keeps them. The file is written atomically.',
  options: {
    model: { type: 'string', short: 'm', value: 'DIR', help: 'model folder (config.json + *.safetensors), or a .gguf file [required]' },
    gguf: { type: 'string', short: 'o', value: 'OUT', help: 'the GGUF file to write [required]' },
    type: { type: 'string', short: 't', value: 'TYPE', help: 'storage of the weight matrices: f32, f16 (default), bf16, q8_0 or q4_k (rows not a multiple of 256: q8_0)' },
  },
  examples: ['mamba-ts export --model ./mamba-130m-hf --gguf mamba-130m-f16.gguf', 'mamba-ts export --model ./runs/tiny/final --gguf tiny-q8_0.gguf --type q8_0'],
};

export async function exportCommand(argv: string[], io: CliIO): Promise<number> {
  const values = parseCommand(EXPORT_SPEC, argv);
  if (values === null) {
    io.stdout.write(commandUsage(EXPORT_SPEC));
    return 0;
  }
  const model = requireModel(values, 'export');
  const out = str(values, 'gguf');
  if (out === undefined || out === '') throw new UsageError('export: missing required option --gguf OUT (the file to write)', 'export');
  const typeRaw = str(values, 'type');
  const type: ExportType = typeRaw === undefined ? 'f16' : parseChoice('type', typeRaw, Object.keys(EXPORT_TYPES) as ExportType[], 'export');
  if (fs.existsSync(out) && fs.statSync(out).isDirectory()) throw new UsageError(`--gguf: ${out} is a folder; expected a file name such as model.gguf`, 'export');

  const input = readExportInput(model);
  let bar: ProgressBar | null = null;
  const chunks = encodeModelGguf(input, type, (done, total) => {
    bar ??= new ProgressBar(io.stderr, { total, rateUnit: 'tensors/s' });
    bar.update(done, { extra: { tensors: `${done}/${total}` } });
  });
  (bar as ProgressBar | null)?.done();
  writeGgufAtomic(out, chunks);
  const bytes = chunks.reduce((a, c) => a + c.byteLength, 0);
  io.stdout.write(`wrote ${out} (${formatBytes(bytes)}, ${type}${input.tokenizer ? ', with tokenizer' : ', no tokenizer'})\n`);
  return 0;
}
