/** Reading config.json (and other JSON files of a model folder) on Node, with errors that name the file. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseJsonObject, type RawConfig } from './config.js';
import { ModelError } from './errors.js';

export function readJsonFile(file: string, what: string): RawConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModelError(`${what}: cannot read ${file} (${code === 'ENOENT' ? 'file not found' : code ?? String(e)})`);
  }
  return parseJsonObject(text, file, what);
}

export function readConfig(dir: string): RawConfig {
  if (!fs.existsSync(dir)) throw new ModelError(`model folder ${dir} does not exist`);
  if (!fs.statSync(dir).isDirectory()) throw new ModelError(`${dir} is not a folder (expected a model folder holding config.json and *.safetensors)`);
  return readJsonFile(path.join(dir, 'config.json'), 'config');
}
