/**
 * SafetensorsWeights (exported as `WeightSource`): the tensors of a model folder, whether stored as one `model.safetensors` or as
 * Hugging Face shards described by `model.safetensors.index.json`.
 *
 *     const w = WeightSource.openDir('path/to/model');      // folder, *.safetensors, or *.index.json
 *     const a = w.float32('backbone.layers.0.mixer.A_log');
 *
 * Resolution for a folder: `model.safetensors` if present, else `model.safetensors.index.json`.
 * For an index, its `weight_map` (tensor name -> shard file, relative to the index's folder) is
 * authoritative: every shard is opened once and validated, every listed tensor must be present in
 * its shard, and tensors a shard holds but the map does not list are ignored (the map wins).
 *
 * `withNameMap(map)` gives a renaming view: lookups of `name` go to `map(name)` in the underlying
 * source (e.g. to read checkpoints that use a different naming convention).
 *
 * All errors are `SafetensorsError`s naming the folder / index / shard and the tensor involved.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsError, SafetensorsFile, type TensorEntry } from './safetensors.js';

export const SINGLE_FILE_NAME = 'model.safetensors';
export const INDEX_FILE_NAME = 'model.safetensors.index.json';

export class SafetensorsWeights {
  /** Paths of the safetensors files backing this source (shards in order of first use in the map). */
  readonly files: string[];
  /** The folder (or file) the source was opened from; used in messages. */
  readonly location: string;
  private readonly table: ReadonlyMap<string, SafetensorsFile>;
  private readonly rename: ((name: string) => string) | undefined;

  private constructor(
    location: string,
    files: string[],
    table: ReadonlyMap<string, SafetensorsFile>,
    rename?: (name: string) => string,
  ) {
    this.location = location;
    this.files = files;
    this.table = table;
    this.rename = rename;
  }

  /**
   * Open a model folder, a single `*.safetensors` file, or a `*.safetensors.index.json` file.
   */
  static openDir(dir: string): SafetensorsWeights {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(dir);
    } catch {
      throw new SafetensorsError(`model weights path not found: ${dir}`);
    }
    if (stat.isFile()) {
      return dir.endsWith('.json') ? SafetensorsWeights.fromIndex(dir) : SafetensorsWeights.fromFile(dir);
    }
    if (!stat.isDirectory()) {
      throw new SafetensorsError(`${dir}: expected a model folder or a .safetensors file`);
    }
    const single = path.join(dir, SINGLE_FILE_NAME);
    if (fs.existsSync(single)) return SafetensorsWeights.fromFile(single, dir);
    const index = path.join(dir, INDEX_FILE_NAME);
    if (fs.existsSync(index)) return SafetensorsWeights.fromIndex(index);
    throw new SafetensorsError(
      `no weights found in ${dir}: expected ${SINGLE_FILE_NAME} or ${INDEX_FILE_NAME}`,
    );
  }

  private static fromFile(file: string, location: string = file): SafetensorsWeights {
    const f = SafetensorsFile.open(file);
    const table = new Map<string, SafetensorsFile>();
    for (const n of f.names()) table.set(n, f);
    return new SafetensorsWeights(location, [file], table);
  }

  private static fromIndex(indexPath: string): SafetensorsWeights {
    const dir = path.dirname(indexPath);
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
    } catch (e) {
      throw new SafetensorsError(`${indexPath}: malformed index JSON: ${(e as Error).message}`);
    }
    const wm =
      typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
        ? (parsed as Record<string, unknown>)['weight_map']
        : undefined;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
      throw new SafetensorsError(
        `${indexPath}: weight_map: expected an object mapping tensor names to shard files, found ${
          wm === undefined ? 'none' : JSON.stringify(wm).slice(0, 80)
        }`,
      );
    }
    const entries = Object.entries(wm as Record<string, unknown>);
    if (entries.length === 0) throw new SafetensorsError(`${indexPath}: weight_map: expected at least one tensor, found none`);

    const root = path.resolve(dir);
    const shards = new Map<string, SafetensorsFile>(); // shard name (as in the map) -> opened file
    const files: string[] = [];
    const table = new Map<string, SafetensorsFile>();
    for (const [name, shard] of entries) {
      if (typeof shard !== 'string' || shard === '') {
        throw new SafetensorsError(
          `${indexPath}: weight_map["${name}"]: expected a shard file name, found ${JSON.stringify(shard)}`,
        );
      }
      let file = shards.get(shard);
      if (!file) {
        const shardPath = path.join(dir, shard);
        const rel = path.relative(root, path.resolve(shardPath));
        if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
          throw new SafetensorsError(
            `${indexPath}: weight_map["${name}"]: shard "${shard}" must be a file inside ${dir}`,
          );
        }
        if (!fs.existsSync(shardPath)) {
          throw new SafetensorsError(
            `${indexPath}: shard "${shard}" (for tensor "${name}") not found: expected ${shardPath}`,
          );
        }
        file = SafetensorsFile.open(shardPath);
        shards.set(shard, file);
        files.push(shardPath);
      }
      if (!file.has(name)) {
        throw new SafetensorsError(
          `tensor "${name}" is mapped to shard ${file.path} by ${indexPath}, but that shard does not contain it`,
        );
      }
      table.set(name, file);
    }
    return new SafetensorsWeights(dir, files, table);
  }

  /**
   * A view in which every lookup of `name` goes to `map(name)` in this source. `names()` of the
   * view still lists the stored names (a function cannot be inverted).
   */
  withNameMap(map: (name: string) => string): SafetensorsWeights {
    const inner = this.rename;
    const composed = inner ? (n: string) => inner(map(n)) : map;
    return new SafetensorsWeights(this.location, this.files, this.table, composed);
  }

  /** Stored tensor names (single file: file order; sharded: weight_map order). */
  names(): string[] {
    return [...this.table.keys()];
  }

  has(name: string): boolean {
    return this.table.has(this.resolve(name));
  }

  entry(name: string): TensorEntry {
    return this.fileOf(name).entry(this.resolve(name));
  }

  /** See `SafetensorsFile.float32` (zero-copy for aligned F32; treat as read-only). */
  float32(name: string): Float32Array {
    return this.fileOf(name).float32(this.resolve(name));
  }

  /** See `SafetensorsFile.int32`. */
  int32(name: string): Int32Array {
    return this.fileOf(name).int32(this.resolve(name));
  }

  /** Raw bytes of a tensor (a view into its file). */
  bytes(name: string): Uint8Array {
    return this.fileOf(name).bytes(this.resolve(name));
  }

  private resolve(name: string): string {
    return this.rename ? this.rename(name) : name;
  }

  private fileOf(name: string): SafetensorsFile {
    const stored = this.resolve(name);
    const f = this.table.get(stored);
    if (!f) {
      const what = stored === name ? `tensor "${name}"` : `tensor "${name}" (stored name "${stored}")`;
      const files = this.files.map((p) => path.basename(p)).join(', ');
      throw new SafetensorsError(`${what} not found in ${this.location} (files: ${files})`);
    }
    return f;
  }
}

/**
 * What a model reads its weights from: a checkpoint (`SafetensorsWeights`), or anything else that can
 * answer these calls (e.g. generated weights for benchmarks, `src/models/random.ts`).
 */
export interface TensorSource {
  readonly files: readonly string[];
  has(name: string): boolean;
  entry(name: string): TensorEntry;
  float32(name: string): Float32Array;
}

/** `WeightSource.openDir(dir)` opens a checkpoint; as a type, any `TensorSource`. */
export type WeightSource = TensorSource;
export const WeightSource = SafetensorsWeights;
