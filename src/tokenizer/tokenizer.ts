/**
 * Tokenizers on Node: `Tokenizer.fromFile` / `Tokenizer.existsIn` read a model folder's tokenizer.json (and
 * tokenizer_config.json). Everything else — the wrapper around `@huggingface/tokenizers`, its semantics and
 * the streaming detokenizer — is in `core.ts` (no I/O, browser-safe) and re-exported from here.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { Tokenizer as CoreTokenizer, TokenizerError, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE, isObject } from "./core.js";

export { StreamDecoder, TokenizerError } from "./core.js";

function readJsonFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new TokenizerError(
      code === "ENOENT"
        ? `${what} not found: ${path}`
        : `cannot read ${what} ${path}: ${(e as Error).message}`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`malformed JSON in ${what} ${path}: ${(e as Error).message}`);
  }
}

export class Tokenizer extends CoreTokenizer {
  /**
   * Load from a model folder (tokenizer.json + optional tokenizer_config.json) or a path to a
   * tokenizer.json file (a tokenizer_config.json next to it is picked up too).
   */
  static fromFile(pathOrDir: string): Tokenizer {
    let file = pathOrDir;
    let isDir = false;
    try {
      isDir = statSync(pathOrDir).isDirectory();
    } catch {
      throw new TokenizerError(`tokenizer not found: ${pathOrDir} (expected a ${TOKENIZER_FILE} file or a folder containing one)`);
    }
    if (isDir) {
      file = join(pathOrDir, TOKENIZER_FILE);
      if (!existsSync(file)) {
        throw new TokenizerError(`no ${TOKENIZER_FILE} in folder ${pathOrDir} (expected ${file})`);
      }
    }
    const json = readJsonFile(file, TOKENIZER_FILE);
    if (!isObject(json)) {
      throw new TokenizerError(`${file} is not a ${TOKENIZER_FILE} (expected a JSON object with a "model" entry)`);
    }
    const configPath = join(dirname(file), TOKENIZER_CONFIG_FILE);
    let config: unknown = undefined;
    if (existsSync(configPath)) {
      config = readJsonFile(configPath, TOKENIZER_CONFIG_FILE);
      if (!isObject(config)) {
        throw new TokenizerError(`${configPath} is not a ${TOKENIZER_CONFIG_FILE} (expected a JSON object)`);
      }
    }
    return Tokenizer.fromJSON(json, config as object | undefined, file);
  }

  /** Does a folder contain a tokenizer? */
  static existsIn(dir: string): boolean {
    try {
      return statSync(join(dir, TOKENIZER_FILE)).isFile();
    } catch {
      return false;
    }
  }
}
