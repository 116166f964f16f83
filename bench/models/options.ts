/** bench/models.bench.ts: its command line (`Options`) and what a run measures, derived from it (`Plan`). */
import { PRESETS } from '../../src/models/random.js';

/** a wrong command line: reported without a stack trace */
export class UsageError extends Error {}

export interface Options {
  quick: boolean;
  write: boolean;
  json: boolean;
  reps: number;
  warmup: number;
  long: number;
  chunkSize: number | undefined;
  load: boolean;
  presets: string[];
  /** backend of the measured models: cpu (TypeScript reference) or wasm */
  backend: 'cpu' | 'wasm';
  threads: number | undefined;
  dtype: 'f32' | 'f16' | 'bf16' | 'q8';
  /** internal: measure this preset and print one JSON line */
  child: string | undefined;
  /** internal: time loadModel for this preset and print one JSON line */
  childLoad: string | undefined;
}

export const USAGE = `usage: node --expose-gc dist/bench/models.bench.js [--quick] [--presets a,b] [--no-write] [--json]
         [--reps N] [--warmup N] [--long N] [--chunk-size N] [--load | --no-load]
         [--backend cpu|wasm] [--threads N] [--dtype f32|f16|bf16|q8]
presets: ${Object.keys(PRESETS).join(', ')}
`;

export function parseArgs(argv: string[]): Options {
  const o: Options = {
    quick: false, write: true, json: false, reps: -1, warmup: -1, long: -1, chunkSize: undefined, load: true,
    presets: Object.keys(PRESETS).filter((p) => p.endsWith('-130m')), child: undefined, childLoad: undefined, backend: 'cpu', threads: undefined, dtype: 'f32',
  };
  let loadGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    const int = (min: number): number => {
      const s = value();
      const v = Number(s);
      if (!Number.isInteger(v) || v < min) throw new UsageError(`${a} needs an integer ≥ ${min}, got ${s}`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--no-write') o.write = false;
    else if (a === '--json') o.json = true;
    else if (a === '--reps') o.reps = int(1);
    else if (a === '--warmup') o.warmup = int(0);
    else if (a === '--long') o.long = int(1);
    else if (a === '--chunk-size') o.chunkSize = int(1);
    else if (a === '--load') (o.load = true), (loadGiven = true);
    else if (a === '--no-load') (o.load = false), (loadGiven = true);
    else if (a === '--presets') o.presets = value().split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '--backend') {
      const b = value();
      if (b !== 'cpu' && b !== 'wasm') throw new UsageError(`--backend must be cpu or wasm, got ${b}`);
      o.backend = b;
    } else if (a === '--threads') o.threads = int(1);
    else if (a === '--dtype') {
      const d = value();
      if (!['f32', 'f16', 'bf16', 'q8'].includes(d)) throw new UsageError(`--dtype must be f32, f16, bf16 or q8, got ${d}`);
      o.dtype = d as Options['dtype'];
    } else if (a === '--child') o.child = value();
    else if (a === '--child-load') o.childLoad = value();
    else if (a === '--help' || a === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else throw new UsageError(`unknown option ${a} (try --help)`);
  }
  for (const p of [...o.presets, ...(o.child ? [o.child] : []), ...(o.childLoad ? [o.childLoad] : [])]) {
    if (!(p in PRESETS)) throw new UsageError(`unknown preset "${p}" (known: ${Object.keys(PRESETS).join(', ')})`);
  }
  if (o.presets.length === 0) throw new UsageError('--presets: no preset given');
  if (o.threads !== undefined && o.backend !== 'wasm') throw new UsageError('--threads needs --backend wasm');
  if (o.reps < 0) o.reps = o.quick ? 1 : 3;
  if (o.warmup < 0) o.warmup = o.quick ? 0 : 1;
  if (o.long < 0) o.long = o.quick ? 128 : 1024;
  if (!loadGiven) o.load = !o.quick;
  return o;
}

/** What is measured, derived from the options (the same in parent and children). */
export interface Plan {
  reps: number;
  warmup: number;
  prefillLengths: number[];
  /** prompt length before the short-context decode and the batched decode */
  decodePrompt: number;
  decodeSteps: number;
  longContext: number;
  longSteps: number;
  batch: number;
  batchSteps: number;
  chunkSize: number | null;
}

export function makePlan(o: Options): Plan {
  return {
    reps: o.reps,
    warmup: o.warmup,
    prefillLengths: o.quick ? [16, 64] : [64, 512],
    decodePrompt: 16,
    decodeSteps: o.quick ? 8 : 32,
    longContext: o.long,
    longSteps: o.quick ? 8 : 16,
    batch: 4,
    batchSteps: o.quick ? 8 : 32,
    chunkSize: o.chunkSize ?? null,
  };
}

/** Arguments that make a child compute the same plan. */
export function planArgs(o: Options): string[] {
  const a = ['--reps', String(o.reps), '--warmup', String(o.warmup), '--long', String(o.long)];
  if (o.quick) a.push('--quick');
  if (o.chunkSize !== undefined) a.push('--chunk-size', String(o.chunkSize));
  a.push('--backend', o.backend, '--dtype', o.dtype);
  if (o.threads !== undefined) a.push('--threads', String(o.threads));
  return a;
}
