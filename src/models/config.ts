/**
 * config.json fields with errors that name the file and field (no I/O: reading the file is in
 * config-file.ts, so model code runs in browsers too).
 */
import { ModelError } from './errors.js';

export type RawConfig = Record<string, unknown>;

/** The JSON object in `text` (config.json, generation_config.json, ...), named `file` in messages. */
export function parseJsonObject(text: string, file: string, what: string): RawConfig {
  let v: unknown;
  try {
    v = parseConfigJson(text);
  } catch (e) {
    throw new ModelError(`${what}: ${file} is not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ModelError(`${what}: ${file} must hold a JSON object`);
  return v as RawConfig;
}

/**
 * JSON as config files in the wild write it: Python's json module emits bare `Infinity`, `-Infinity` and
 * `NaN` (which JSON.parse rejects), and HF transformers 5 writes `{"__float__": "Infinity"}`. Both become
 * numbers.
 */
export function parseConfigJson(text: string): unknown {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      out += c;
      if (c === '\\') out += text[++i] ?? '';
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      out += c;
      continue;
    }
    const m = /^(-?Infinity|NaN)/.exec(text.slice(i, i + 9));
    if (m) {
      out += JSON.stringify({ __float__: m[1] });
      i += m[1].length - 1;
      continue;
    }
    out += c;
  }
  return JSON.parse(out, (_k, v) => {
    if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 1 && typeof v.__float__ === 'string') {
      const f = Number(v.__float__);
      if (Number.isNaN(f) && v.__float__ !== 'NaN') throw new Error(`bad {"__float__": ${JSON.stringify(v.__float__)}}`);
      return f;
    }
    return v;
  });
}

/** Typed field access: `f.int('hidden_size')` etc. Errors name the file and the field. */
export class ConfigFields {
  constructor(readonly raw: RawConfig, readonly file: string) {}

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }
  private fail(key: string, want: string): never {
    throw new ModelError(`${this.file}: field "${key}" ${this.has(key) ? `is ${JSON.stringify(this.raw[key])}` : 'is missing'}; expected ${want}`);
  }
  int(key: string, dflt?: number, min = 1): number {
    if (!this.has(key)) return dflt ?? this.fail(key, `an integer >= ${min}`);
    const v = this.raw[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(key, `an integer >= ${min}`);
    return v;
  }
  num(key: string, dflt?: number, check: (v: number) => boolean = Number.isFinite, want = 'a finite number'): number {
    if (!this.has(key)) return dflt ?? this.fail(key, want);
    const v = this.raw[key];
    if (typeof v !== 'number' || !check(v)) this.fail(key, want);
    return v;
  }
  bool(key: string, dflt?: boolean): boolean {
    if (!this.has(key)) return dflt ?? this.fail(key, 'true or false');
    const v = this.raw[key];
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }
  str(key: string, dflt?: string): string {
    if (!this.has(key)) return dflt ?? this.fail(key, 'a string');
    const v = this.raw[key];
    if (typeof v !== 'string') this.fail(key, 'a string');
    return v;
  }
  /** the activation field (default silu): only SiLU is implemented */
  requireSilu(key = 'hidden_act'): void {
    const act = this.str(key, 'silu');
    if (act !== 'silu') throw new ModelError(`${this.file}: field "${key}" is "${act}"; only "silu" is supported`);
  }
  /** token id fields may be a number or a list of numbers */
  ids(key: string): number[] {
    if (!this.has(key)) return [];
    const v = this.raw[key];
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) this.fail(key, 'a token id or a list of token ids');
    return list as number[];
  }
  /** a [lo, hi] pair of numbers (Infinity allowed) */
  range(key: string, dflt: [number, number]): [number, number] {
    if (!this.has(key)) return dflt;
    const v = this.raw[key];
    if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => typeof x === 'number' && !Number.isNaN(x)) || v[0] > v[1]) {
      this.fail(key, 'a pair [low, high] of numbers with low <= high');
    }
    return [v[0], v[1]];
  }
  sub(key: string): ConfigFields {
    const v = this.raw[key];
    if (v === undefined || v === null) return new ConfigFields({}, `${this.file} (${key})`);
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(key, 'an object');
    return new ConfigFields(v as RawConfig, `${this.file} (${key})`);
  }
}
