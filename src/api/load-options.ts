/**
 * The check of load options, shared by `loadModel` (model.ts, Node) and `loadModelFrom` (browser.ts): every
 * option's value (names from a fixed list, integers in range, booleans) and every key (a typo such as `backnd`
 * is refused with the list of known keys), before anything is read. A mistake is a `LoadOptionError` that
 * names the option and lists what is valid. No I/O, browser-safe.
 */
import { PREFILL_SUPPORT, prefillSupport, type Backend, type PrefillSupport, type ScanAlgorithm, type SsdAlgorithm } from '../backend/backend.js';
import { ModelError } from '../models/errors.js';
import type { ModelOptions } from '../models/registry.js';
import { KV_CACHE_FORMATS, type KvCacheDType, type WeightDType } from '../tensor/dtype.js';

/** A load option with an invalid value, or an unknown one. */
export class LoadOptionError extends ModelError {}

export const BACKEND_NAMES = ['cpu', 'wasm', 'webgpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
export const WEIGHT_FORMATS: readonly WeightDType[] = ['f32', 'f16', 'bf16', 'q8', 'q4'];
export const SCAN_ALGORITHMS = ['chunked', 'sequential'] as const;
export const SSD_ALGORITHMS = ['chunked', 'quadratic', 'recurrent'] as const;
export const NORM_GROUPS = ['full', 'group'] as const;

/** The options both loaders take: the backend and the models' own (scan, SSD, norm grouping, Δ clamping). */
export interface CommonLoadOptions extends Omit<ModelOptions, 'backend'> {
  /** a backend name or a Backend instance (to share one between models) */
  backend?: BackendName | Backend;
  /** wasm: threads including the calling one, an integer ≥ 1 (default: available cores) */
  threads?: number;
  /** wasm: storage of weight matrices, chosen at load time (default f32) */
  weights?: WeightDType;
}

/** Checks one option's value (never called with `undefined`: an option set to undefined is not given). */
export type OptionCheck = (value: unknown, fail: (expected: string) => never) => void;

const list = (values: readonly string[]): string => values.map((v) => JSON.stringify(v)).join(', ');
const shown = (v: unknown): string => {
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
  } catch {
    return String(v);
  }
};

export function oneOf(values: readonly string[]): OptionCheck {
  return (v, fail) => {
    if (typeof v !== 'string' || !values.includes(v)) fail(`one of ${list(values)}`);
  };
}

export function positiveInteger(): OptionCheck {
  return (v, fail) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) fail('an integer >= 1');
  };
}

export const isBoolean: OptionCheck = (v, fail) => {
  if (typeof v !== 'boolean') fail('a boolean (true or false)');
};

export const isFunction: OptionCheck = (v, fail) => {
  if (typeof v !== 'function') fail('a function');
};

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `{ algorithm, chunkSize }` of `scan` and `ssd` */
function algorithmOptions(algorithms: readonly string[]): (prefix: string, where: string) => OptionCheck {
  const fields: Record<string, OptionCheck> = { algorithm: oneOf(algorithms), chunkSize: positiveInteger() };
  return (prefix, where) => (v, fail) => {
    if (!isPlainObject(v)) return fail(`an object { algorithm?: ${algorithms.map((a) => JSON.stringify(a)).join(' | ')}; chunkSize?: number }`);
    checkKeys(v, fields, where, prefix);
  };
}
const scanOptions = algorithmOptions(SCAN_ALGORITHMS);
const ssdOptions = algorithmOptions(SSD_ALGORITHMS);

/** A backend name or something that looks like a Backend (an object with a string `name`). */
const isBackend: OptionCheck = (v, fail) => {
  if (typeof v === 'string') {
    if (!(BACKEND_NAMES as readonly string[]).includes(v)) fail(`one of ${list(BACKEND_NAMES)}, or a Backend instance`);
    return;
  }
  if (!isPlainObject(v) || typeof v.name !== 'string') fail(`one of ${list(BACKEND_NAMES)}, or a Backend instance`);
};

/** The checks of the options every loader takes; TypeScript insists on one per option. */
function commonChecks(where: string): { [K in keyof CommonLoadOptions]-?: OptionCheck } {
  return {
    backend: isBackend,
    threads: positiveInteger(),
    weights: oneOf(WEIGHT_FORMATS),
    scan: scanOptions('scan', where),
    ssd: ssdOptions('ssd', where),
    normGroups: oneOf(NORM_GROUPS),
    clampDecodeDt: isBoolean,
    kvCache: (v) => void checkKvCache(v, where),
  };
}

/** edit distance, for "did you mean" */
function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length];
}

function checkKeys(obj: Record<string, unknown>, checks: Record<string, OptionCheck>, where: string, prefix = ''): void {
  const known = Object.keys(checks);
  const name = (k: string): string => (prefix ? `${prefix}.${k}` : k);
  for (const key of Object.keys(obj)) {
    if (!Object.prototype.hasOwnProperty.call(checks, key)) {
      const lower = key.toLowerCase();
      const near = known.map((k) => [k, k.toLowerCase().startsWith(lower) && lower.length >= 3 ? 0 : distance(key, k)] as const).sort((a, b) => a[1] - b[1])[0];
      const hint = near && near[1] <= Math.max(1, Math.floor(key.length / 3)) ? `; did you mean "${name(near[0])}"?` : '';
      throw new LoadOptionError(
        `${where}: unknown option "${name(key)}"${hint} (known ${prefix ? `${prefix} options` : 'options'}: ${known.join(', ')})`,
      );
    }
  }
  for (const key of known) {
    const v = obj[key];
    if (v === undefined) continue;
    checks[key](v, (expected) => {
      throw new LoadOptionError(`${where}: option "${name(key)}" must be ${expected}, got ${shown(v)}`);
    });
  }
}

/** the WebGPU backend's `weights` for a load option checked by `validateBackendOptions` (undefined: 'f32') */
export function webgpuWeights(w: WeightDType | undefined): 'f32' | 'bf16' | 'q8' {
  if (w === undefined || w === 'f32' || w === 'bf16' || w === 'q8') return w ?? 'f32';
  throw new LoadOptionError(`option "weights" ${JSON.stringify(w)} is not available on backend "webgpu" (it takes ${list(BACKEND_WEIGHT_FORMATS.webgpu)})`);
}

/** The weight formats each named backend stores matrices in (`weights`); the loaders create them so. */
export const BACKEND_WEIGHT_FORMATS: Record<BackendName, readonly WeightDType[]> = {
  cpu: ['f32'],
  wasm: WEIGHT_FORMATS,
  webgpu: ['f32', 'bf16', 'q8'],
};

/** The KV cache formats each named backend stores (`kvCache`). */
export const BACKEND_KV_CACHE_FORMATS: Record<BackendName, readonly KvCacheDType[]> = {
  cpu: KV_CACHE_FORMATS,
  wasm: KV_CACHE_FORMATS,
  webgpu: KV_CACHE_FORMATS.filter((f) => f !== 'q8'),
};

/**
 * The one check of a KV cache format (the `kvCache` option), for the loaders (`where`: the loader), `buildModel`,
 * `createState` and the backends' `zeros` / `fromHost` (`backend`: its name, `supported`: what it stores):
 * undefined is f32; anything else that is not one of the formats allowed (KV_CACHE_FORMATS, or those the backend
 * stores) is a LoadOptionError naming the option, the values allowed and the value given.
 */
export function checkKvCache(kvCache: unknown, where?: string, backend?: string, supported: readonly KvCacheDType[] = KV_CACHE_FORMATS): KvCacheDType {
  if (kvCache === undefined) return 'f32';
  if (supported.includes(kvCache as KvCacheDType)) return kvCache as KvCacheDType;
  const head = `${where ? `${where}: ` : ''}option "kvCache" must be`;
  if (!KV_CACHE_FORMATS.includes(kvCache as KvCacheDType)) throw new LoadOptionError(`${head} one of ${list(KV_CACHE_FORMATS)}, got ${shown(kvCache)}`);
  const allowed = supported.length === 1 ? list(supported) : `one of ${list(supported)}`;
  throw new LoadOptionError(`${head} ${allowed} on the ${backend ?? 'this'} backend, got ${shown(kvCache)} (not stored there yet)`);
}

/**
 * The shape rule of a q8 KV cache (`kvCache: 'q8'`): blocks of 32 values along each position's keys (the inner dims
 * of a cache [b, T, kv_heads, head_dim]: along the head dim, a block inside one head when head_dim is a multiple of 32;
 * with head_dim 8 or 16 a block spans 32 / head_dim heads of the position), so kv_heads × head_dim must be a multiple
 * of 32; another shape is refused (no fallback: the caller picks 'bf16' or 'f16') with a LoadOptionError naming the
 * option and the head dim. Other formats take any shape.
 */
export function checkKvCacheShape(kvCache: KvCacheDType, shape: readonly number[], where: string): void {
  if (kvCache !== 'q8') return;
  const hd = shape[shape.length - 1];
  const heads = shape.length > 3 ? shape.slice(2, -1).reduce((a, d) => a * d, 1) : 1;
  if ((heads * hd) % 32 !== 0) {
    throw new LoadOptionError(
      `${where}: option "kvCache" 'q8' stores blocks of 32 values along each position's keys, so kv_heads × head_dim must be a multiple of 32; ` +
        `this cache has head dim ${hd} (× ${heads} kv heads = ${heads * hd}): use 'bf16' or 'f16'`,
    );
  }
}

/** Cross-option rules: `threads` only for wasm, the weight format one the backend stores, prefill options it runs, the KV cache format it stores. */
function checkCombination(opts: Pick<CommonLoadOptions, 'backend' | 'weights' | 'threads' | 'scan' | 'ssd' | 'kvCache'>, where: string): void {
  const { backend, threads } = opts;
  if (threads !== undefined && backend !== 'wasm') {
    throw new LoadOptionError(
      typeof backend === 'object'
        ? `${where}: option "threads" is for a backend given by name; a Backend instance keeps the threads it was created with`
        : `${where}: option "threads" is for backend "wasm" (backend "${backend ?? 'cpu'}" does not run on a thread pool)`,
    );
  }
  checkWeights(opts, where);
  if (typeof backend === 'string') checkKvCache(opts.kvCache, where, backend, BACKEND_KV_CACHE_FORMATS[backend]);
  const support = typeof backend === 'object' ? prefillSupport(backend) : PREFILL_SUPPORT[backend ?? 'cpu'];
  const label = typeof backend === 'object' ? backend.name : (backend ?? 'cpu');
  for (const kind of ['scan', 'ssd'] as const) {
    const refusal = prefillRefusal(support, label, kind, opts[kind]);
    if (refusal) throw new LoadOptionError(`${where}: ${refusal}`);
  }
}

function checkWeights(opts: Pick<CommonLoadOptions, 'backend' | 'weights'>, where: string): void {
  const { backend, weights } = opts;
  if (weights === undefined || weights === 'f32') return;
  if (typeof backend === 'object') {
    throw new LoadOptionError(
      `${where}: option "weights" ${JSON.stringify(weights)} is for a backend given by name; a Backend instance keeps the weight format it was created with`,
    );
  }
  const name = backend ?? 'cpu';
  const formats = BACKEND_WEIGHT_FORMATS[name];
  if (formats.includes(weights)) return;
  const takers = BACKEND_NAMES.filter((b) => BACKEND_WEIGHT_FORMATS[b].includes(weights));
  throw new LoadOptionError(
    `${where}: option "weights" ${JSON.stringify(weights)} is not available on backend "${name}" (it takes ${list(formats)}); ` +
      `${JSON.stringify(weights)} needs backend ${takers.map((b) => JSON.stringify(b)).join(' or ')}`,
  );
}

/** why `backend` (`label`) does not run the prefill options `given` of `kind`, or null when it does */
function prefillRefusal(
  support: PrefillSupport, label: string, kind: 'scan' | 'ssd', given: { algorithm?: string; chunkSize?: number } | undefined,
): string | null {
  const algorithm = given?.algorithm;
  const runs: readonly string[] = support[kind];
  if (algorithm !== undefined && !runs.includes(algorithm)) {
    const takers = BACKEND_NAMES.filter((b) => (PREFILL_SUPPORT[b][kind] as readonly string[]).includes(algorithm));
    return `option "${kind}.algorithm" ${JSON.stringify(algorithm)} is not available on backend "${label}" (it runs ${list(runs)}); ` +
      `${JSON.stringify(algorithm)} needs backend ${takers.map((b) => JSON.stringify(b)).join(' or ')}`;
  }
  if (given?.chunkSize !== undefined && !support.chunkSize) {
    const takers = BACKEND_NAMES.filter((b) => PREFILL_SUPPORT[b].chunkSize);
    return `option "${kind}.chunkSize" is not available on backend "${label}", which chooses its own chunk lengths; ` +
      `chunkSize is honoured by backend ${takers.map((b) => JSON.stringify(b)).join(' or ')}`;
  }
  return null;
}

/**
 * The prefill algorithm and chunk length a model runs on `backend`: the given ones, else the backend's default
 * algorithm (the first it lists) and `defaultChunk`. What the backend does not run is refused with a
 * LoadOptionError (for `buildModel` callers; the loaders refuse it before reading anything).
 */
export function prefillOptions(backend: Backend, kind: 'scan', given: { algorithm?: ScanAlgorithm; chunkSize?: number } | undefined, defaultChunk: number): { algorithm: ScanAlgorithm; chunkSize: number };
export function prefillOptions(backend: Backend, kind: 'ssd', given: { algorithm?: SsdAlgorithm; chunkSize?: number } | undefined, defaultChunk: number): { algorithm: SsdAlgorithm; chunkSize: number };
export function prefillOptions(
  backend: Backend, kind: 'scan' | 'ssd', given: { algorithm?: ScanAlgorithm | SsdAlgorithm; chunkSize?: number } | undefined, defaultChunk: number,
): { algorithm: ScanAlgorithm | SsdAlgorithm; chunkSize: number } {
  const support = prefillSupport(backend);
  const refusal = prefillRefusal(support, backend.name, kind, given);
  if (refusal) throw new LoadOptionError(`buildModel: ${refusal}`);
  return { algorithm: given?.algorithm ?? support[kind][0], chunkSize: given?.chunkSize ?? defaultChunk };
}

/**
 * Check a loader's options: the common ones plus the loader's own (`extra`, e.g. Node's `tokenizer` path or
 * the browser's `onProgress`). Throws a LoadOptionError naming `where` (the function the user called).
 */
export function validateLoadOptions(opts: unknown, extra: Record<string, OptionCheck>, where: string): void {
  if (opts === undefined) return;
  if (!isPlainObject(opts)) throw new LoadOptionError(`${where}: options must be an object, got ${shown(opts)}`);
  checkKeys(opts, { ...commonChecks(where), ...extra }, where);
  checkCombination(opts as CommonLoadOptions, where);
}

/** Check just the backend options (`resolveBackend`, the browser's `createBackend`), whatever else `opts` holds. */
export function validateBackendOptions(opts: Pick<CommonLoadOptions, 'backend' | 'threads' | 'weights'>, where: string): void {
  const c = commonChecks(where);
  checkKeys({ backend: opts.backend, threads: opts.threads, weights: opts.weights }, { backend: c.backend, threads: c.threads, weights: c.weights }, where);
  checkCombination({ backend: opts.backend, threads: opts.threads, weights: opts.weights }, where);
}
