/**
 * Command-line plumbing for `mamba-ts`: option specs (from which `--help` text is generated), parsing
 * with `node:util` parseArgs, strict number/id validation, and the two error kinds the CLI reports
 * without a stack trace (`UsageError` → exit 2, `CliError` → exit 1).
 */
import { parseArgs } from 'node:util';
import { MambaTsError } from '../errors.js';
import { KV_CACHE_FORMATS, type KvCacheDType, type WeightDType } from '../tensor/dtype.js';
import { BACKEND_KV_CACHE_FORMATS, BACKEND_NAMES, BACKEND_WEIGHT_FORMATS, type BackendName } from '../api/load-options.js';

export const PROG = 'mamba-ts';

/** A mistake in the command line (unknown option, missing or malformed value). Exit code 2. */
export class UsageError extends MambaTsError {
  constructor(
    message: string,
    /** the command whose `--help` to point at ('' = the top-level overview) */
    readonly command = '',
  ) {
    super(message);
  }
}

/** A user-facing failure that is not a usage mistake (unreadable file, …). Exit code 1. */
export class CliError extends MambaTsError {}

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** placeholder in the help text, e.g. DIR */
  value?: string;
  help: string;
}

export interface CommandSpec {
  name: string;
  summary: string;
  /** the synopsis after `mamba-ts <name> ` */
  synopsis: string;
  /** paragraphs printed after the synopsis */
  description?: string;
  options: Record<string, OptionSpec>;
  examples: string[];
  /** what the usage line names instead of `mamba-ts <name>` (a script run by node, e.g. a benchmark) */
  prog?: string;
  /** how many arguments without an option the command takes (default none); parseCommand returns them as `_` */
  positionals?: { min: number; max: number; name: string };
}

const HELP_OPTION: OptionSpec = { type: 'boolean', short: 'h', help: 'show this help and exit' };

/** `mamba-ts <cmd> --help` text: synopsis, every option with its help, examples. */
export function commandUsage(spec: CommandSpec): string {
  const opts = { ...spec.options, help: HELP_OPTION };
  const left = (name: string, o: OptionSpec): string =>
    `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
  const width = Math.max(...Object.entries(opts).map(([n, o]) => left(n, o).length));
  const lines = [`Usage: ${spec.prog ?? `${PROG} ${spec.name}`} ${spec.synopsis}`, '', spec.summary];
  if (spec.description) lines.push('', spec.description);
  lines.push('', 'Options:');
  for (const [n, o] of Object.entries(opts)) {
    const [first, ...rest] = o.help.split('\n');
    lines.push(`  ${left(n, o).padEnd(width)}  ${first}`);
    for (const r of rest) lines.push(`  ${' '.repeat(width)}  ${r}`);
  }
  lines.push('', spec.examples.length > 1 ? 'Examples:' : 'Example:');
  for (const e of spec.examples) lines.push(`  ${e}`);
  return lines.join('\n') + '\n';
}

export type ParsedValues = Record<string, string | boolean | string[] | undefined>;

/**
 * Parse `argv` (the arguments after the command name) against `spec`. Returns `null` when help was
 * asked for (`--help` / `-h` anywhere, even next to otherwise invalid options). A single-valued option
 * given twice takes the later value; a `multiple` one collects them all.
 */
export function parseCommand(spec: CommandSpec, argv: string[]): ParsedValues | null {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [n, o] of Object.entries({ ...spec.options, help: HELP_OPTION })) {
    options[n] = { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  }
  // `--max-tokens -3`: parseArgs refuses a value starting with '-'; pass negative numbers as values
  // (`--max-tokens=-3`) so that validation can say what is wrong with them
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = argv[i + 1];
    const name = a.startsWith('--') ? a.slice(2) : Object.keys(options).find((n) => a === `-${options[n].short ?? '\0'}`);
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      args.push(`--${name}=${next}`);
      i++;
    } else args.push(a);
  }
  let parsed: { values: object; positionals: string[] };
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (e) {
    if (argv.includes('--help') || argv.includes('-h')) return null;
    throw new UsageError(describeParseError(e, spec), spec.name);
  }
  const values = parsed.values as ParsedValues;
  if (values.help) return null;
  const pos = spec.positionals ?? { min: 0, max: 0, name: '' };
  if (parsed.positionals.length > pos.max) {
    throw new UsageError(`${spec.name}: unexpected argument '${parsed.positionals[pos.max]}' (options take the form --name VALUE)`, spec.name);
  }
  if (parsed.positionals.length < pos.min) throw new UsageError(`${spec.name}: missing ${pos.name}`, spec.name);
  if (spec.positionals) values._ = parsed.positionals;
  // a single-valued option given more than once takes its last value, as in most command-line tools
  // (getopt_long, git, npm): a wrapper such as `npm start -- --out X` overrides the script's own --out
  return values;
}

function describeParseError(e: unknown, spec: CommandSpec): string {
  const err = e as { code?: string; message?: string };
  const msg = String(err.message ?? e);
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const m = /'([^']+)'/.exec(msg);
    return `${spec.name}: unknown option '${m ? m[1] : '?'}'`;
  }
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    // e.g. "Option '--max-tokens <value>' argument missing" / "Option '--json' does not take an argument"
    return msg.replace(/^Option /, 'option ').replace(/\s*\n\s*/g, ' ');
  }
  return msg;
}

// ---------------------------------------------------------------- values

const NUMBER_RE = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

export interface NumberRule {
  integer?: boolean;
  min?: number;
  max?: number;
  /** min is exclusive */
  minOpen?: boolean;
  /** max is exclusive */
  maxOpen?: boolean;
  /** what is allowed, for the message, e.g. "a number in (0, 1]" */
  expect: string;
}

/** Parse an option value as a number, strictly (no '', '12abc', 'Infinity', hex). */
export function parseNumber(option: string, raw: string, rule: NumberRule, command = ''): number {
  const bad = (): never => {
    throw new UsageError(`--${option}: expected ${rule.expect}, got '${raw}'`, command);
  };
  const s = raw.trim();
  if (!NUMBER_RE.test(s)) bad();
  const v = Number(s);
  if (!Number.isFinite(v)) bad();
  if (rule.integer && !Number.isSafeInteger(v)) bad();
  if (rule.min !== undefined && (rule.minOpen ? v <= rule.min : v < rule.min)) bad();
  if (rule.max !== undefined && (rule.maxOpen ? v >= rule.max : v > rule.max)) bad();
  return v;
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** A size in bytes: `1000000`, `64M`, `1.5G`, `512KiB`, `2GB` (K/M/G/T are powers of 1024). */
export function parseSize(option: string, raw: string, command = ''): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(raw.trim());
  const v = m ? Math.floor(Number(m[1]) * SIZE_UNITS[m[2].toLowerCase()]) : NaN;
  if (!Number.isSafeInteger(v) || v < 1) throw new UsageError(`--${option}: expected a size such as 64M, 1G or a number of bytes, got '${raw}'`, command);
  return v;
}

/** `--ids 1,2,3` (commas and/or whitespace) → token ids. */
export function parseIds(option: string, raw: string, command = ''): number[] {
  const parts = raw.trim().split(/[\s,]+/).filter((p) => p.length > 0);
  if (parts.length === 0) throw new UsageError(`--${option}: expected comma-separated token ids (e.g. --${option} 1,2,3), got '${raw}'`, command);
  return parts.map((p) => {
    if (!/^\d+$/.test(p) || !Number.isSafeInteger(Number(p))) {
      throw new UsageError(`--${option}: '${p}' is not a token id (expected non-negative integers separated by commas, got '${raw}')`, command);
    }
    return Number(p);
  });
}

/** `--x a,b,c` (commas and/or whitespace) → its items, each one of `choices` when given. */
export function parseList<T extends string = string>(option: string, raw: string, choices?: readonly T[], command = ''): T[] {
  const items = raw.trim().split(/[\s,]+/).filter((p) => p.length > 0);
  if (items.length === 0) throw new UsageError(`--${option}: expected a comma-separated list${choices ? ` of ${choices.join(', ')}` : ''}, got '${raw}'`, command);
  return items.map((p) => (choices ? parseChoice(option, p, choices, command) : (p as T)));
}

/** A string option restricted to a few values. */
export function parseChoice<T extends string>(option: string, raw: string, choices: readonly T[], command = ''): T {
  if (!(choices as readonly string[]).includes(raw)) {
    throw new UsageError(`--${option}: expected one of ${choices.join(', ')}, got '${raw}'`, command);
  }
  return raw as T;
}

export function str(values: ParsedValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function strs(values: ParsedValues, name: string): string[] {
  const v = values[name];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

export function flag(values: ParsedValues, name: string): boolean {
  return values[name] === true;
}

/** `--kv-cache f32|bf16|f16|q8` (generate, serve, bench): the storage of attention KV caches (the `kvCache` load option) */
export const KV_CACHE_OPTION: OptionSpec = {
  type: 'string',
  value: 'TYPE',
  help: 'attention KV cache storage: f32 (default, exact), bf16 or f16 (half the bytes; cpu, wasm and webgpu), q8 (int8 blocks of 32 with an f32 scale, 1.125 bytes per value; kv_heads × head_dim a multiple of 32; cpu and wasm)',
};

/** The `--kv-cache` value (undefined when not given); a format the backend cannot store is a UsageError. */
export function parseKvCache(values: ParsedValues, backend: string, command: string): KvCacheDType | undefined {
  const raw = str(values, 'kv-cache');
  if (raw === undefined) return undefined;
  const kv = parseChoice('kv-cache', raw, KV_CACHE_FORMATS, command);
  const ok = BACKEND_KV_CACHE_FORMATS[backend as BackendName];
  if (ok && !ok.includes(kv)) throw new UsageError(`--kv-cache ${kv} is not supported by the ${backend} backend yet: use ${ok.join(' or ')}`, command);
  return kv;
}

/**
 * The one check of `--dtype` against `--backend` (generate, serve, bench): a weight format the backend does not store
 * is a UsageError naming the backends that store it and what this one stores.
 */
export function checkDtype(dtype: WeightDType | undefined, backend: BackendName, command: string): void {
  const ok = BACKEND_WEIGHT_FORMATS[backend];
  if (dtype === undefined || ok.includes(dtype)) return;
  const takers = BACKEND_NAMES.filter((b) => BACKEND_WEIGHT_FORMATS[b].includes(dtype));
  throw new UsageError(`--dtype ${dtype} needs --backend ${takers.join(' or ')} (the ${backend} backend stores ${ok.join(', ')})`, command);
}
