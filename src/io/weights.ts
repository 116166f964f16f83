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
import { SafetensorsError, SafetensorsFile } from './safetensors.js';
import { INDEX_FILE_NAME, SINGLE_FILE_NAME, SafetensorsWeights as SafetensorsTable, type TensorSource } from './tensor-source.js';

// the table, the index validation and the renaming view live in tensor-source.ts (no I/O, browser-safe)
export { INDEX_FILE_NAME, SINGLE_FILE_NAME, type TensorSource } from './tensor-source.js';

export class SafetensorsWeights extends SafetensorsTable {
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
      return dir.endsWith('.json') ? SafetensorsWeights.openIndex(dir) : SafetensorsTable.fromFile(SafetensorsFile.open(dir));
    }
    if (!stat.isDirectory()) {
      throw new SafetensorsError(`${dir}: expected a model folder or a .safetensors file`);
    }
    const single = path.join(dir, SINGLE_FILE_NAME);
    if (fs.existsSync(single)) return SafetensorsTable.fromFile(SafetensorsFile.open(single), dir);
    const index = path.join(dir, INDEX_FILE_NAME);
    if (fs.existsSync(index)) return SafetensorsWeights.openIndex(index);
    throw new SafetensorsError(
      `no weights found in ${dir}: expected ${SINGLE_FILE_NAME} or ${INDEX_FILE_NAME}`,
    );
  }

  private static openIndex(indexPath: string): SafetensorsWeights {
    const dir = path.dirname(indexPath);
    let text: string;
    try {
      text = fs.readFileSync(indexPath, 'utf8');
    } catch (e) {
      throw new SafetensorsError(`${indexPath}: cannot read index: ${(e as Error).message}`);
    }
    const root = path.resolve(dir);
    return SafetensorsTable.fromIndex(text, indexPath, dir, (shard, name) => {
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
      return SafetensorsFile.open(shardPath);
    });
  }
}

/** `WeightSource.openDir(dir)` opens a checkpoint; as a type, any `TensorSource`. */
export type WeightSource = TensorSource;
export const WeightSource = SafetensorsWeights;
