/**
 * A model folder without a file system (browser-safe): the files a user picked (`<input type="file"
 * webkitdirectory>` or several files), a folder served over HTTP (a base URL), or bytes in memory. Each is
 * a `ModelFolder`; `readModelParts` reads config.json, the tokenizer, generation_config.json and the weights
 * (model.safetensors, or the shards of model.safetensors.index.json) from one, validating as `loadModel`
 * does on Node, and returns the parts `assembleModel` builds a Model from.
 *
 * Weights: a picked file is read on demand, tensor by tensor, where `FileReaderSync` exists (in a worker);
 * elsewhere, and for URLs, each safetensors file is read into memory once (the backend copies the tensors
 * it keeps, after which the bytes can be collected).
 */
import { parseJsonObject, type RawConfig } from '../models/config.js';
import { ModelError } from '../models/errors.js';
import { checkTokenizerFits, type ModelParts } from '../api/model.js';
import { Tokenizer, TokenizerError, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE, isObject } from '../tokenizer/core.js';
import { SafetensorsError, SafetensorsFile, type ByteSource } from './safetensors-format.js';
import { INDEX_FILE_NAME, SINGLE_FILE_NAME, SafetensorsWeights, baseName } from './tensor-source.js';

/** Bytes read so far of one file (downloads and file reads report it). */
export interface ReadProgress {
  file: string;
  loaded: number;
  /** 0 when unknown */
  total: number;
}

/** The files of one model folder, by name relative to the folder ("model-00001-of-00002.safetensors"). */
export interface ModelFolder {
  /** the folder's name or base URL (messages, `Model.dir`) */
  readonly location: string;
  /** a file's path or URL, for messages */
  label(name: string): string;
  /** the file's text, or null when the folder has no such file */
  text(name: string): Promise<string | null>;
  /** the file's bytes (in memory or read on demand), or null when the folder has no such file */
  bytes(name: string, onProgress?: (p: ReadProgress) => void): Promise<ByteSource | null>;
}

/** Just enough of a DOM `File` / `Blob` (so this module type-checks without the DOM library). */
export interface FileLike {
  readonly name: string;
  readonly size: number;
  /** set by `<input webkitdirectory>`: "folder/sub/file" */
  readonly webkitRelativePath?: string;
  slice(start: number, end: number): unknown;
  arrayBuffer(): Promise<ArrayBuffer>;
  text(): Promise<string>;
}

const host = globalThis as unknown as {
  FileReaderSync?: new () => { readAsArrayBuffer(blob: unknown): ArrayBuffer };
  fetch(url: string, init?: { method?: string }): Promise<FetchResponse>;
};

/** Just enough of a fetch Response (no DOM library needed). */
export interface FetchResponse {
  ok: boolean;
  status: number;
  statusText: string;
  headers: { get(name: string): string | null };
  body: { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }> } } | null;
  text(): Promise<string>;
  arrayBuffer(): Promise<ArrayBuffer>;
}

export function memorySource(bytes: Uint8Array): ByteSource {
  return { length: bytes.byteLength, read: (o, n) => bytes.subarray(o, o + n) };
}

/**
 * Picked files as a folder. With `webkitdirectory` every path starts with the picked folder's name, which
 * is dropped (and names the folder); files picked one by one are taken by name.
 */
export function filesFolder(files: ArrayLike<FileLike>): ModelFolder {
  const list = Array.from(files);
  if (list.length === 0) throw new ModelError('no files given: pick a model folder (config.json, *.safetensors, tokenizer.json)');
  const byName = new Map<string, FileLike>();
  let location = 'picked files';
  for (const f of list) {
    const rel = f.webkitRelativePath || f.name;
    const parts = rel.split('/');
    if (parts.length > 1) location = parts[0];
    const name = parts.length > 1 ? parts.slice(1).join('/') : rel;
    byName.set(name, f);
  }
  const label = (name: string) => `${location}/${name}`;
  return {
    location,
    label,
    async text(name) {
      const f = byName.get(name);
      return f ? f.text() : null;
    },
    async bytes(name, onProgress) {
      const f = byName.get(name);
      return f ? fileSource(f, label(name), onProgress, name) : null;
    },
  };
}

/**
 * A picked file (or Blob) as a ByteSource: read range by range when asked for where `FileReaderSync` exists (in a
 * worker), so the file is never in memory whole; elsewhere read into memory once. `label` names it in messages,
 * `progressName` in progress reports.
 */
export async function fileSource(f: FileLike, label: string, onProgress?: (p: ReadProgress) => void, progressName = f.name): Promise<ByteSource> {
  const Reader = host.FileReaderSync;
  if (Reader) {
    const reader = new Reader();
    return {
      length: f.size,
      read(offset, length) {
        try {
          return new Uint8Array(reader.readAsArrayBuffer(f.slice(offset, offset + length)));
        } catch (e) {
          throw new SafetensorsError(`${label}: cannot read bytes ${offset}..${offset + length}: ${(e as Error).message}`);
        }
      },
    };
  }
  const bytes = new Uint8Array(await f.arrayBuffer());
  onProgress?.({ file: progressName, loaded: bytes.byteLength, total: bytes.byteLength });
  return memorySource(bytes);
}

/** Files already in memory (name → bytes or text) as a folder called `location`. */
export function memoryFolder(files: Record<string, Uint8Array | string>, location = 'memory'): ModelFolder {
  const get = (name: string) => (Object.prototype.hasOwnProperty.call(files, name) ? files[name] : undefined);
  return {
    location,
    label: (name) => `${location}/${name}`,
    async text(name) {
      const v = get(name);
      return v === undefined ? null : typeof v === 'string' ? v : new TextDecoder().decode(v);
    },
    async bytes(name) {
      const v = get(name);
      return v === undefined ? null : memorySource(typeof v === 'string' ? new TextEncoder().encode(v) : v);
    },
  };
}

/**
 * A folder served over HTTP: `base` is its URL (a trailing "/" is added). A 404 means the file is absent;
 * other failures are errors naming the URL.
 */
export function urlFolder(base: string): ModelFolder {
  const root = base.endsWith('/') ? base : `${base}/`;
  const label = (name: string) => root + name;
  const get = (name: string) => fetchFile(label(name));
  return {
    location: root,
    label,
    async text(name) {
      const res = await get(name);
      return res ? res.text() : null;
    },
    async bytes(name, onProgress) {
      const res = await get(name);
      return res ? memorySource(await readBody(res, name, onProgress)) : null;
    },
  };
}

/** GET `url`: null on 404, else the response; a network failure or another HTTP error is a ModelError naming the URL. */
export async function fetchFile(url: string): Promise<FetchResponse | null> {
  let res: FetchResponse;
  try {
    res = await host.fetch(url);
  } catch (e) {
    throw new ModelError(`cannot fetch ${url}: ${(e as Error).message}`);
  }
  if (res.status === 404) return null;
  if (!res.ok) throw new ModelError(`cannot fetch ${url}: HTTP ${res.status} ${res.statusText}`);
  return res;
}

/** A response's body, streamed into one buffer (sized by Content-Length when given), reporting progress. */
export async function readBody(res: FetchResponse, name: string, onProgress?: (p: ReadProgress) => void): Promise<Uint8Array> {
  const total = Number(res.headers.get('content-length') ?? 0) || 0;
  if (!res.body) {
    const bytes = new Uint8Array(await res.arrayBuffer());
    onProgress?.({ file: name, loaded: bytes.byteLength, total: bytes.byteLength });
    return bytes;
  }
  const reader = res.body.getReader();
  let buf = new Uint8Array(total > 0 ? total : 1 << 20);
  let loaded = 0;
  let lastReport = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done || !value) break;
    if (loaded + value.byteLength > buf.byteLength) {
      const bigger = new Uint8Array(Math.max(buf.byteLength * 2, loaded + value.byteLength));
      bigger.set(buf.subarray(0, loaded));
      buf = bigger;
    }
    buf.set(value, loaded);
    loaded += value.byteLength;
    if (onProgress && loaded - lastReport >= 1 << 20) {
      lastReport = loaded;
      onProgress({ file: name, loaded, total });
    }
  }
  onProgress?.({ file: name, loaded, total: total || loaded });
  return buf.subarray(0, loaded);
}

export interface ReadPartsOptions {
  /** read tokenizer.json (default true); false = ids only */
  tokenizer?: boolean;
  onProgress?: (p: ReadProgress) => void;
}

/** Read and validate a model folder's parts; the errors name the file and field, as `loadModel`'s do. */
export async function readModelParts(folder: ModelFolder, opts: ReadPartsOptions = {}): Promise<ModelParts> {
  const configText = await folder.text('config.json');
  if (configText === null) throw new ModelError(`config: ${folder.label('config.json')} not found (a model folder holds config.json and *.safetensors)`);
  const config = parseJsonObject(configText, folder.label('config.json'), 'config');

  let tokenizer: Tokenizer | null = null;
  const tokText = opts.tokenizer === false ? null : await folder.text(TOKENIZER_FILE);
  if (tokText !== null) {
    const tokJson = parseJson(tokText, folder.label(TOKENIZER_FILE), TOKENIZER_FILE);
    const cfgText = await folder.text(TOKENIZER_CONFIG_FILE);
    const cfg = cfgText === null ? undefined : parseJson(cfgText, folder.label(TOKENIZER_CONFIG_FILE), TOKENIZER_CONFIG_FILE);
    if (cfg !== undefined && !isObject(cfg)) throw new TokenizerError(`${folder.label(TOKENIZER_CONFIG_FILE)} is not a ${TOKENIZER_CONFIG_FILE} (expected a JSON object)`);
    tokenizer = Tokenizer.fromJSON(tokJson as object, cfg as object | undefined, folder.label(TOKENIZER_FILE));
  }
  // a tokenizer that cannot belong to this model is reported before reading the weights
  checkTokenizerFits(config, tokenizer);

  const genText = await folder.text('generation_config.json');
  const generationConfig: RawConfig | null = genText === null ? null : parseJsonObject(genText, folder.label('generation_config.json'), 'generation config');

  return {
    config,
    configLabel: folder.label('config.json'),
    weights: await readWeights(folder, opts.onProgress),
    tokenizer,
    generationConfig,
    generationConfigLabel: folder.label('generation_config.json'),
    location: folder.location,
  };
}

function parseJson(text: string, label: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`malformed JSON in ${what} ${label}: ${(e as Error).message}`);
  }
}

/** model.safetensors, else the shards of model.safetensors.index.json (validated by `SafetensorsWeights.fromIndex`). */
export async function readWeights(folder: ModelFolder, onProgress?: (p: ReadProgress) => void): Promise<SafetensorsWeights> {
  const single = await folder.bytes(SINGLE_FILE_NAME, onProgress);
  if (single) return SafetensorsWeights.fromFile(SafetensorsFile.fromSource(single, folder.label(SINGLE_FILE_NAME)), folder.location);
  const indexLabel = folder.label(INDEX_FILE_NAME);
  const indexText = await folder.text(INDEX_FILE_NAME);
  if (indexText === null) {
    throw new SafetensorsError(`no weights found in ${folder.location}: expected ${SINGLE_FILE_NAME} or ${INDEX_FILE_NAME}`);
  }
  // fetch every shard the map names (the map itself is validated by fromIndex, which opens them in order)
  const shards = new Map<string, SafetensorsFile | null>();
  let wm: unknown;
  try {
    wm = (JSON.parse(indexText) as { weight_map?: unknown })?.weight_map;
  } catch {
    wm = undefined; // fromIndex reports it
  }
  if (isObject(wm)) {
    for (const shard of new Set(Object.values(wm))) {
      if (typeof shard !== 'string' || shard === '' || !isPlainShardName(shard)) continue;
      const src = await folder.bytes(shard, onProgress);
      shards.set(shard, src ? SafetensorsFile.fromSource(src, folder.label(shard)) : null);
    }
  }
  return SafetensorsWeights.fromIndex(indexText, indexLabel, folder.location, (shard, name) => {
    if (!isPlainShardName(shard)) {
      throw new SafetensorsError(`${indexLabel}: weight_map["${name}"]: shard "${shard}" must be a file inside ${folder.location}`);
    }
    const file = shards.get(shard);
    if (!file) throw new SafetensorsError(`${indexLabel}: shard "${shard}" (for tensor "${name}") not found: expected ${folder.label(shard)}`);
    return file;
  });
}

/** a shard path that stays inside the folder: relative, no "..", no scheme */
function isPlainShardName(shard: string): boolean {
  if (shard.startsWith('/') || shard.startsWith('\\') || /^[a-z][a-z0-9+.-]*:/i.test(shard)) return false;
  return !shard.split(/[\\/]/).some((p) => p === '..' || p === '.') && baseName(shard) !== '';
}
