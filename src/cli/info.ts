/** `mamba-ts info`: what a model folder holds. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModel, type Model } from '../api/load.js';
import { isGgufPath } from '../io/gguf.js';
import { commandUsage, flag, parseCommand, str, UsageError, type CommandSpec } from './args.js';
import { formatBytes, startProgress, type CliIO } from './io.js';
import { DOWNLOAD_OPTION, MODEL_OPTION, resolveWithProgress } from './download.js';

export const INFO_SPEC: CommandSpec = {
  name: 'info',
  summary: 'Show the architecture, size and files of a model folder.',
  synopsis: '--model DIR|org/name [--download] [--tokenizer FILE] [--json]',
  options: {
    model: MODEL_OPTION,
    download: DOWNLOAD_OPTION,
    tokenizer: { type: 'string', value: 'FILE', help: "tokenizer.json (or a folder holding one) instead of the model folder's" },
    json: { type: 'boolean', help: 'print one JSON object instead of key: value lines' },
  },
  examples: ['mamba-ts info --model ./mamba-130m-hf', 'mamba-ts info --model ./mamba-130m-hf --json | jq .parameters', 'mamba-ts info --model state-spaces/mamba-130m-hf --download'],
};

export interface FileEntry {
  file: string;
  bytes: number | null;
}

/** The files a model folder's loader uses, with sizes (null = listed but missing). */
export function modelFiles(dir: string, tokenizerOpt?: string): { config: FileEntry; generationConfig: FileEntry | null; weights: FileEntry[]; index: FileEntry | null; tokenizer: FileEntry | null } {
  const entry = (f: string): FileEntry => {
    try {
      return { file: f, bytes: fs.statSync(f).size };
    } catch {
      return { file: f, bytes: null };
    }
  };
  const exists = (f: string): boolean => fs.existsSync(f);
  const single = path.join(dir, 'model.safetensors');
  const indexFile = path.join(dir, 'model.safetensors.index.json');
  let weights: FileEntry[] = [];
  let index: FileEntry | null = null;
  if (exists(single)) weights = [entry(single)];
  else if (exists(indexFile)) {
    index = entry(indexFile);
    try {
      const map = (JSON.parse(fs.readFileSync(indexFile, 'utf8')) as { weight_map?: Record<string, string> }).weight_map ?? {};
      weights = [...new Set(Object.values(map))].map((s) => entry(path.join(dir, s)));
    } catch {
      weights = [];
    }
  }
  let tok: string | null = null;
  if (tokenizerOpt !== undefined) tok = fs.existsSync(tokenizerOpt) && fs.statSync(tokenizerOpt).isDirectory() ? path.join(tokenizerOpt, 'tokenizer.json') : tokenizerOpt;
  else if (exists(path.join(dir, 'tokenizer.json'))) tok = path.join(dir, 'tokenizer.json');
  const gen = path.join(dir, 'generation_config.json');
  if (isGgufPath(dir)) return { config: entry(dir), generationConfig: null, weights: [entry(dir)], index: null, tokenizer: tok === null ? entry(dir) : entry(tok) };
  return {
    config: entry(path.join(dir, 'config.json')),
    generationConfig: exists(gen) ? entry(gen) : null,
    weights,
    index,
    tokenizer: tok === null ? null : entry(tok),
  };
}

/** `--model` is required by every command that loads one. */
export function requireModel(values: Record<string, unknown>, command: string): string {
  const dir = values.model;
  if (typeof dir !== 'string') throw new UsageError(`${command}: missing required option --model DIR`, command);
  if (dir.length === 0) throw new UsageError('--model: expected a model folder, got an empty string', command);
  return dir;
}

/** loadModel with a TTY-only spinner on stderr; a hub name resolved first (downloaded with a progress bar when `download`). */
export async function loadWithProgress(io: CliIO, spec: string, opts: Parameters<typeof loadModel>[1], download = false): Promise<Model> {
  const dir = await resolveWithProgress(io, spec, { download });
  const p = startProgress(io.stderr, `loading ${spec}`);
  try {
    return await loadModel(dir, opts);
  } finally {
    p.done();
  }
}

export async function infoCommand(argv: string[], io: CliIO): Promise<number> {
  const values = parseCommand(INFO_SPEC, argv);
  if (values === null) {
    io.stdout.write(commandUsage(INFO_SPEC));
    return 0;
  }
  const dir = requireModel(values, 'info');
  const tokenizer = str(values, 'tokenizer');
  const model = await loadWithProgress(io, dir, tokenizer !== undefined ? { tokenizer } : {}, flag(values, 'download'));
  const d = model.describe();
  const files = modelFiles(model.dir, tokenizer);
  const info: Record<string, unknown> = {
    folder: model.dir,
    model_type: model.lm.modelType,
    ...d,
    eos_token_ids: model.eosTokenIds,
  };
  if (flag(values, 'json')) {
    const f = (e: { file: string; bytes: number | null } | null) => (e === null ? null : { path: e.file, bytes: e.bytes });
    const out = {
      ...info,
      files: {
        config: f(files.config),
        generation_config: f(files.generationConfig),
        weights_index: f(files.index),
        weights: files.weights.map(f),
        tokenizer: f(files.tokenizer),
      },
    };
    io.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return 0;
  }
  const rows: Array<[string, string]> = Object.entries(info).map(([k, v]) => [k, formatValue(k, v)]);
  const fileLine = (e: FileEntry): string => `${e.file} (${e.bytes === null ? 'missing' : formatBytes(e.bytes)})`;
  if (files.index) rows.push(['weights_index', fileLine(files.index)]);
  const totalBytes = files.weights.reduce((a, e) => a + (e.bytes ?? 0), 0);
  rows.push(['weights', files.weights.length === 1 ? fileLine(files.weights[0]) : `${files.weights.length} files, ${formatBytes(totalBytes)}`]);
  if (files.weights.length > 1) for (const w of files.weights) rows.push(['', fileLine(w)]);
  rows.push(['tokenizer_file', files.tokenizer ? fileLine(files.tokenizer) : 'none']);
  const width = Math.max(...rows.map(([k]) => k.length)) + 1;
  for (const [k, v] of rows) io.stdout.write(`${(k ? `${k}:` : '').padEnd(width)} ${v}\n`);
  return 0;
}

function formatValue(key: string, v: unknown): string {
  if (Array.isArray(v)) return v.length === 0 ? '(none)' : v.join(', ');
  if (typeof v === 'number' && key === 'parameters') return `${v} (${(v / 1e6).toFixed(2)} M)`;
  if (typeof v === 'number' && /(^|_)bytes(_|$)/.test(key)) return `${v} (${formatBytes(v)})`;
  if (v !== null && typeof v === 'object') return JSON.stringify(v);
  return String(v);
}
