/**
 * The tensors of a checkpoint stored as one or more safetensors files, with no I/O of its own (so it runs
 * in browsers too): the table tensor name → file, Hugging Face's sharded index (`weight_map`, validated
 * here for every loader), and the renaming view. `weights.ts` opens folders on Node; `memory-weights.ts`
 * builds the same thing from in-memory bytes, browser `File`s or URLs.
 */
import type { StoredMatrix } from '../backend/backend.js';
import { SafetensorsError, type SafetensorsFile, type TensorEntry } from './safetensors-format.js';

export const SINGLE_FILE_NAME = 'model.safetensors';
export const INDEX_FILE_NAME = 'model.safetensors.index.json';

/**
 * What a model reads its weights from: a checkpoint (`SafetensorsWeights`), or anything else that can
 * answer these calls (e.g. generated weights for benchmarks, `src/models/random.ts`).
 */
export interface TensorSource {
  readonly files: readonly string[];
  has(name: string): boolean;
  entry(name: string): TensorEntry;
  float32(name: string): Float32Array;
  /**
   * A = −exp(`name`) as stored, for sources that hold A rather than A_log (GGUF): the model takes it as is
   * instead of recomputing it from a rounded logarithm. Absent or undefined: computed from `float32(name)`.
   */
  negExp?(name: string): Float32Array | undefined;
  /** the tensor as the file stores it, where it is stored as is (GGUF tensors not transformed), for the backend to keep */
  stored?(name: string): StoredMatrix | undefined;
}

/** A shard of an index as a loader found it: the opened file (its `path` names it in messages). */
export type OpenShard = (shard: string, forTensor: string) => SafetensorsFile;

export class SafetensorsWeights implements TensorSource {
  /** Paths (or labels) of the safetensors files backing this source (shards in order of first use in the map). */
  readonly files: string[];
  /** The folder (or file) the source was opened from; used in messages. */
  readonly location: string;
  private readonly table: ReadonlyMap<string, SafetensorsFile>;
  private readonly rename: ((name: string) => string) | undefined;

  protected constructor(
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

  /** One opened safetensors file holding every tensor. */
  static fromFile(file: SafetensorsFile, location: string = file.path): SafetensorsWeights {
    const table = new Map<string, SafetensorsFile>();
    for (const n of file.names()) table.set(n, file);
    return new SafetensorsWeights(location, [file.path], table);
  }

  /**
   * A sharded checkpoint: `indexText` is `model.safetensors.index.json` (named `indexLabel` in messages);
   * its `weight_map` (tensor name → shard file) is authoritative: every shard is opened once (through
   * `openShard`, which reports a missing or misplaced shard), every listed tensor must be present in its
   * shard, and tensors a shard holds but the map does not list are ignored.
   */
  static fromIndex(indexText: string, indexLabel: string, location: string, openShard: OpenShard): SafetensorsWeights {
    let parsed: unknown;
    try {
      parsed = JSON.parse(indexText);
    } catch (e) {
      throw new SafetensorsError(`${indexLabel}: malformed index JSON: ${(e as Error).message}`);
    }
    const wm =
      typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
        ? (parsed as Record<string, unknown>)['weight_map']
        : undefined;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
      throw new SafetensorsError(
        `${indexLabel}: weight_map: expected an object mapping tensor names to shard files, found ${
          wm === undefined ? 'none' : JSON.stringify(wm).slice(0, 80)
        }`,
      );
    }
    const entries = Object.entries(wm as Record<string, unknown>);
    if (entries.length === 0) throw new SafetensorsError(`${indexLabel}: weight_map: expected at least one tensor, found none`);

    const shards = new Map<string, SafetensorsFile>(); // shard name (as in the map) -> opened file
    const files: string[] = [];
    const table = new Map<string, SafetensorsFile>();
    for (const [name, shard] of entries) {
      if (typeof shard !== 'string' || shard === '') {
        throw new SafetensorsError(
          `${indexLabel}: weight_map["${name}"]: expected a shard file name, found ${JSON.stringify(shard)}`,
        );
      }
      let file = shards.get(shard);
      if (!file) {
        file = openShard(shard, name);
        shards.set(shard, file);
        files.push(file.path);
      }
      if (!file.has(name)) {
        throw new SafetensorsError(
          `tensor "${name}" is mapped to shard ${file.path} by ${indexLabel}, but that shard does not contain it`,
        );
      }
      table.set(name, file);
    }
    return new SafetensorsWeights(location, files, table);
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
      const files = this.files.map(baseName).join(', ');
      throw new SafetensorsError(`${what} not found in ${this.location} (files: ${files})`);
    }
    return f;
  }
}

/** The last component of a path or URL. */
export function baseName(p: string): string {
  const parts = p.split(/[\\/]/);
  return parts[parts.length - 1] || p;
}
