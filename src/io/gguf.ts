/**
 * GGUF files on Node: `openGguf(path)` reads the header (tensors are read when asked for), `isGgufPath`
 * tells a GGUF file from a model folder, `readExportInput` gathers what `encodeModelGguf` needs from a model
 * folder or a GGUF file, `writeGgufAtomic` writes one (temp file + rename). The format, the architecture
 * mapping and the tokenizer are in gguf-format.ts, gguf-arch.ts, gguf-config.ts, gguf-tokenizer.ts and
 * gguf-model.ts (no I/O).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GgufError, GgufFile } from './gguf-format.js';
import { GgufWeights, type GgufExportInput } from './gguf-model.js';
import { ggufConfig } from './gguf-config.js';
import { ggufTokenizerJson } from './gguf-tokenizer.js';
import { fileSource, writeChunksAtomic } from './safetensors.js';
import { WeightSource } from './weights.js';
import { readConfig } from '../models/config-file.js';
import { TOKENIZER_CONFIG_FILE, TOKENIZER_FILE } from '../tokenizer/core.js';

export { GgufError, GgufFile } from './gguf-format.js';
export { GgufWeights, ggufModelParts, ggufWasmWeights, encodeModelGguf, EXPORT_TYPES, type ExportType } from './gguf-model.js';

/** A path to a GGUF file (by name: `*.gguf`) rather than a model folder. */
export function isGgufPath(p: string): boolean {
  if (!p.toLowerCase().endsWith('.gguf')) return false;
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

export function openGguf(filePath: string): GgufFile {
  let size: number;
  try {
    const st = fs.statSync(filePath);
    if (!st.isFile()) throw new GgufError(`${filePath}: expected a GGUF file`);
    size = st.size;
  } catch (e) {
    if (e instanceof GgufError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new GgufError(err.code === 'ENOENT' ? `GGUF file not found: ${filePath}` : `${filePath}: cannot read GGUF file: ${err.message}`);
  }
  return GgufFile.fromSource(fileSource(filePath, size), filePath);
}

export function writeGgufAtomic(filePath: string, chunks: Uint8Array[]): void {
  writeChunksAtomic(filePath, chunks, (m) => new GgufError(`${filePath}: failed to write GGUF file: ${m}`));
}

/** A model folder (config.json, safetensors, tokenizer.json) or a GGUF file, as `encodeModelGguf`'s input. */
export function readExportInput(model: string): GgufExportInput {
  if (isGgufPath(model)) {
    const g = openGguf(model);
    const imported = ggufConfig(g);
    const tok = ggufTokenizerJson(g);
    return {
      config: imported.config, configLabel: `${model} (metadata)`, weights: new GgufWeights(g, imported.family, imported.nLayers, imported.ctx),
      tokenizer: tok && { json: tok.json, config: tok.config, label: `${model} (tokenizer.ggml.*)` }, name: g.str('general.name', path.basename(model, '.gguf')),
    };
  }
  const config = readConfig(model);
  const weights = WeightSource.openDir(model);
  const tokFile = path.join(model, TOKENIZER_FILE);
  let tokenizer: GgufExportInput['tokenizer'] = null;
  if (fs.existsSync(tokFile)) {
    const cfgFile = path.join(model, TOKENIZER_CONFIG_FILE);
    tokenizer = { json: readJson(tokFile), config: fs.existsSync(cfgFile) ? readJson(cfgFile) : undefined, label: tokFile };
  }
  return { config, configLabel: path.join(model, 'config.json'), weights, tokenizer, name: path.basename(path.resolve(model)) };
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new GgufError(`${file}: cannot read JSON: ${(e as Error).message}`);
  }
}
