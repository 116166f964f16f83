/**
 * Training checkpoints: one folder holding
 *
 *     model.safetensors       weights under their HF names, float32, metadata {"format": "pt"}
 *                             (what HF transformers' loader expects)
 *     config.json             the model's HF config (given object)
 *     optimizer.safetensors   optimizer moments as named float32 tensors (`<param>.exp_avg`,
 *                             `<param>.exp_avg_sq`); metadata: format, kind, step, hyper (JSON)
 *     trainer_state.json      step (required), epoch / data cursor, rng state, lr, loss history,
 *                             args, … (any JSON object with an integer `step`)
 *     tokenizer.json, …       optional extra files, copied in
 *
 * Saving is atomic at the folder level. Everything is written (and fsynced) into a temporary
 * folder `.<name>.tmp-<pid>-<random>` next to the target; then the old folder, if any, is renamed
 * to `<name>.old`, the new one is renamed to `<name>`, and `<name>.old` is deleted. A crash at any
 * point leaves a complete checkpoint: before the swap, the old folder untouched; between the two
 * renames, `<name>.old` — which `loadCheckpoint(<name>)` falls back to; after, the new folder. An
 * exception during the save (a failed write, a full disk) removes the temporary folder and puts
 * the old folder back. Files in the old folder that the new checkpoint does not write (a README,
 * plots, generation_config.json) are carried over into the new one.
 *
 * Non-finite numbers in trainer_state.json (NaN accuracies, Infinity) are written as the strings
 * "NaN", "Infinity", "-Infinity" (plain JSON has no literal for them) and read back as numbers.
 *
 * Every error is a `CheckpointError` naming the folder or file and the field at fault.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { SafetensorsFile, writeSafetensorsAtomic, type WritableTensor } from '../io/safetensors.js';
import type { OptimizerState } from './optim.js';
import type { Param } from './param.js';
import { MambaTsError } from '../errors.js';
import { stringifyConfigJson } from '../models/config-json.js';

export class CheckpointError extends MambaTsError {}

export const CHECKPOINT_FILES = Object.freeze({
  model: 'model.safetensors',
  config: 'config.json',
  optimizer: 'optimizer.safetensors',
  trainerState: 'trainer_state.json',
  tokenizer: 'tokenizer.json',
});

const OPTIMIZER_FORMAT = 'mamba-ts-optimizer';

/** trainer_state.json: `step` is required; the rest is free-form JSON (these are the usual fields). */
export interface TrainerState {
  /** optimizer steps completed */
  step: number;
  epoch?: number;
  /** where the data source stands, if it is not a pure function of step */
  cursor?: unknown;
  /** e.g. `rngState(rng)` (four uint32) */
  rng?: unknown;
  lr?: number;
  /** loss/metric curves */
  history?: unknown;
  /** the command-line / run arguments */
  args?: unknown;
  [key: string]: unknown;
}

export interface CheckpointContents {
  /** weights under their checkpoint (HF) names; a Param list is written as F32 */
  weights: Record<string, WritableTensor> | readonly Param[];
  config: Record<string, unknown>;
  /** config.json's text when the model keeps its source's (written as is; must parse to `config`) */
  configText?: string;
  optimizer?: OptimizerState | null;
  trainerState: TrainerState;
  /** copied in as tokenizer.json */
  tokenizer?: string;
  /** more files: name in the checkpoint → source path to copy, or the bytes/text to write */
  extraFiles?: Record<string, string | Uint8Array>;
}

/** Stages at which `onStage` is called during a save (for fault-injection tests). */
export type SaveStage = `wrote:${string}` | 'before-swap' | 'old-moved-aside' | 'new-in-place';

export interface SaveOptions {
  /** test hook: called at each stage; throwing simulates a failure there */
  onStage?: (stage: SaveStage) => void;
  /** carry over files of the old folder that the new checkpoint does not write (default true) */
  carryOver?: boolean;
}

export interface LoadedCheckpoint {
  /** the folder actually read (`<dir>.old` when recovering from a save interrupted mid-swap) */
  dir: string;
  recovered: boolean;
  weights: Record<string, { shape: number[]; data: Float32Array }>;
  config: Record<string, unknown>;
  /** null when the folder has no optimizer.safetensors */
  optimizer: OptimizerState | null;
  trainerState: TrainerState;
  /** path of tokenizer.json in the checkpoint, or null */
  tokenizerPath: string | null;
}

// ------------------------------------------------------------------------------------------------
// JSON with non-finite numbers

const NONFINITE: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };

function stringifyState(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x), 2);
}

function reviveState(_k: string, x: unknown): unknown {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(NONFINITE, x) ? NONFINITE[x] : x;
}

// ------------------------------------------------------------------------------------------------
// saving

function fsyncPath(p: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(p, 'r');
    fs.fsyncSync(fd);
  } catch {
    /* directories cannot be fsynced everywhere: best effort */
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function writeFileDurable(file: string, data: string | Uint8Array): void {
  const fd = fs.openSync(file, 'wx');
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** whether process `pid` runs (EPERM: it does, under another user) */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function modelTensors(weights: CheckpointContents['weights']): Record<string, WritableTensor> {
  if (!Array.isArray(weights)) return weights as Record<string, WritableTensor>;
  const out: Record<string, WritableTensor> = {};
  for (const p of weights as readonly Param[]) {
    if (out[p.name]) throw new CheckpointError(`saveCheckpoint: weights: two parameters are named "${p.name}"`);
    out[p.name] = { dtype: 'F32', shape: [...p.shape], data: p.data instanceof Float32Array ? p.data : Float32Array.from(p.data) };
  }
  return out;
}

function checkFileName(name: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\\') || name.includes('\0')) {
    throw new CheckpointError(`saveCheckpoint: extraFiles: "${name}" must be a plain file name`);
  }
  if ((Object.values(CHECKPOINT_FILES) as string[]).includes(name) && name !== CHECKPOINT_FILES.tokenizer) {
    throw new CheckpointError(`saveCheckpoint: extraFiles: "${name}" is written by the checkpoint itself`);
  }
}

/** Does the folder look like something `saveCheckpoint` may replace? (empty, or it holds a checkpoint) */
function checkReplaceable(final: string): void {
  const st = fs.statSync(final);
  if (!st.isDirectory()) throw new CheckpointError(`saveCheckpoint: ${final} exists and is not a folder`);
  const names = fs.readdirSync(final);
  if (names.length === 0) return;
  if (names.includes(CHECKPOINT_FILES.model) || names.includes(CHECKPOINT_FILES.trainerState) || names.includes(CHECKPOINT_FILES.config)) return;
  throw new CheckpointError(
    `saveCheckpoint: refusing to replace ${final}: it is a non-empty folder without ${CHECKPOINT_FILES.model}, ` +
      `${CHECKPOINT_FILES.config} or ${CHECKPOINT_FILES.trainerState} (not a checkpoint); choose a new or empty folder`,
  );
}

/** Write a checkpoint folder atomically (see the file comment). Returns the folder path. */
export function saveCheckpoint(dir: string, contents: CheckpointContents, opts: SaveOptions = {}): string {
  const final = path.resolve(dir);
  const parent = path.dirname(final);
  const base = path.basename(final);
  const old = `${final}.old`;
  const stage = opts.onStage ?? (() => {});

  if (contents === null || typeof contents !== 'object') throw new CheckpointError('saveCheckpoint: contents must be an object');
  const ts = contents.trainerState;
  if (ts === null || typeof ts !== 'object' || Array.isArray(ts)) throw new CheckpointError('saveCheckpoint: trainerState must be an object');
  if (!Number.isSafeInteger(ts.step) || ts.step < 0) throw new CheckpointError(`saveCheckpoint: trainerState.step must be an integer >= 0, got ${JSON.stringify(ts.step)}`);
  const cfg = contents.config;
  if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) throw new CheckpointError('saveCheckpoint: config must be an object');
  const extra: Record<string, string | Uint8Array> = { ...(contents.extraFiles ?? {}) };
  if (contents.tokenizer !== undefined) extra[CHECKPOINT_FILES.tokenizer] = contents.tokenizer;
  for (const name of Object.keys(extra)) checkFileName(name);

  try {
    fs.mkdirSync(parent, { recursive: true });
  } catch (e) {
    throw new CheckpointError(`saveCheckpoint: cannot create ${parent}: ${(e as Error).message}`);
  }
  if (fs.existsSync(final)) checkReplaceable(final);

  // temporary folders of saves that died with their process
  const tmpPrefix = `.${base}.tmp-`;
  for (const name of fs.readdirSync(parent)) {
    if (!name.startsWith(tmpPrefix)) continue;
    const pid = Number(name.slice(tmpPrefix.length).split('-')[0]);
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && !pidAlive(pid)) {
      fs.rmSync(path.join(parent, name), { recursive: true, force: true });
    }
  }

  const tmp = path.join(parent, `${tmpPrefix}${process.pid}-${randomBytes(6).toString('hex')}`);
  let movedAside = false;
  let swapped = false;
  try {
    fs.mkdirSync(tmp);
    const written = new Set<string>();
    const wrote = (name: string): void => {
      written.add(name);
      stage(`wrote:${name}`);
    };

    writeSafetensorsAtomic(path.join(tmp, CHECKPOINT_FILES.model), modelTensors(contents.weights), { format: 'pt' });
    wrote(CHECKPOINT_FILES.model);
    writeFileDurable(path.join(tmp, CHECKPOINT_FILES.config), contents.configText ?? stringifyConfigJson(cfg));
    wrote(CHECKPOINT_FILES.config);
    if (contents.optimizer) {
      const o = contents.optimizer;
      const tensors: Record<string, WritableTensor> = {};
      for (const [k, t] of Object.entries(o.tensors)) tensors[k] = { dtype: 'F32', shape: t.shape, data: t.data };
      writeSafetensorsAtomic(path.join(tmp, CHECKPOINT_FILES.optimizer), tensors, {
        format: OPTIMIZER_FORMAT,
        kind: o.kind,
        step: String(o.step),
        hyper: JSON.stringify(o.hyper ?? {}),
      });
      wrote(CHECKPOINT_FILES.optimizer);
    }
    for (const [name, src] of Object.entries(extra)) {
      const dst = path.join(tmp, name);
      if (typeof src === 'string') {
        try {
          fs.copyFileSync(src, dst, fs.constants.COPYFILE_EXCL);
        } catch (e) {
          throw new CheckpointError(`saveCheckpoint: cannot copy ${name} from ${src}: ${(e as Error).message}`);
        }
        fsyncPath(dst);
      } else writeFileDurable(dst, src);
      wrote(name);
    }
    // last, so a folder with trainer_state.json has everything else
    writeFileDurable(path.join(tmp, CHECKPOINT_FILES.trainerState), stringifyState(ts) + '\n');
    wrote(CHECKPOINT_FILES.trainerState);

    const finalExists = fs.existsSync(final);
    if (finalExists && (opts.carryOver ?? true)) {
      for (const ent of fs.readdirSync(final, { withFileTypes: true })) {
        if (written.has(ent.name) || ent.name === CHECKPOINT_FILES.optimizer) continue; // a stale optimizer state must not survive
        const src = path.join(final, ent.name);
        const dst = path.join(tmp, ent.name);
        if (ent.isDirectory()) fs.cpSync(src, dst, { recursive: true });
        else if (ent.isFile()) fs.copyFileSync(src, dst, fs.constants.COPYFILE_EXCL);
      }
    }
    fsyncPath(tmp);
    stage('before-swap');

    if (finalExists) {
      // an old `.old` next to a complete folder is stale (a previous save died after its swap)
      fs.rmSync(old, { recursive: true, force: true });
      fs.renameSync(final, old);
      movedAside = true;
      stage('old-moved-aside');
    }
    // (when `final` is missing but `.old` exists, a previous save died mid-swap: `.old` stays until the new folder is in place)
    fs.renameSync(tmp, final);
    movedAside = false;
    swapped = true;
    fsyncPath(parent);
    stage('new-in-place');
    fs.rmSync(old, { recursive: true, force: true });
    fsyncPath(parent);
    return final;
  } catch (e) {
    if (swapped) {
      // the new checkpoint is complete and in place; only removing `.old` failed (the next save removes it)
      throw new CheckpointError(`saveCheckpoint: ${final} was written, but removing ${old} failed: ${(e as Error).message}`);
    }
    if (movedAside) {
      try {
        if (!fs.existsSync(final)) fs.renameSync(old, final);
      } catch {
        /* `.old` stays; loadCheckpoint falls back to it */
      }
    }
    try {
      fs.rmSync(tmp, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`saveCheckpoint: writing ${final} failed (the previous checkpoint, if any, is unchanged): ${(e as Error).message}`);
  }
}

// ------------------------------------------------------------------------------------------------
// loading

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CheckpointError(`${file}: cannot read ${what}: ${code === 'ENOENT' ? 'file is missing' : (e as Error).message}`);
  }
  try {
    return JSON.parse(text, reviveState);
  } catch (e) {
    throw new CheckpointError(`${file}: ${what} is not valid JSON: ${(e as Error).message}`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validate a parsed trainer_state.json; errors name the file and field. */
export function validateTrainerState(v: unknown, file: string): TrainerState {
  if (!isObject(v)) throw new CheckpointError(`${file}: expected a JSON object, found ${Array.isArray(v) ? 'an array' : JSON.stringify(v)}`);
  const step = v['step'];
  if (step === undefined) throw new CheckpointError(`${file}: missing field "step"`);
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) throw new CheckpointError(`${file}: field "step": expected an integer >= 0, found ${JSON.stringify(step)}`);
  const epoch = v['epoch'];
  if (epoch !== undefined && (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0)) {
    throw new CheckpointError(`${file}: field "epoch": expected an integer >= 0, found ${JSON.stringify(epoch)}`);
  }
  const lr = v['lr'];
  if (lr !== undefined && (typeof lr !== 'number' || !Number.isFinite(lr) || lr < 0)) {
    throw new CheckpointError(`${file}: field "lr": expected a finite number >= 0, found ${JSON.stringify(lr)}`);
  }
  const rng = v['rng'];
  if (Array.isArray(rng) && !(rng.length === 4 && rng.every((x) => Number.isInteger(x) && x >= 0 && x < 4294967296))) {
    throw new CheckpointError(`${file}: field "rng": expected four uint32 values, found ${JSON.stringify(rng)}`);
  }
  for (const k of ['history', 'args']) {
    if (v[k] !== undefined && !isObject(v[k])) throw new CheckpointError(`${file}: field "${k}": expected an object, found ${JSON.stringify(v[k]).slice(0, 60)}`);
  }
  return v as TrainerState;
}

function readOptimizer(file: string): OptimizerState {
  const f = SafetensorsFile.open(file);
  const meta = f.metadata;
  if (meta['format'] !== OPTIMIZER_FORMAT) {
    throw new CheckpointError(`${file}: metadata "format" is ${JSON.stringify(meta['format'])}, expected "${OPTIMIZER_FORMAT}"`);
  }
  const kind = meta['kind'];
  if (!kind) throw new CheckpointError(`${file}: metadata "kind" is missing`);
  const step = Number(meta['step']);
  if (meta['step'] === undefined || !Number.isSafeInteger(step) || step < 0) {
    throw new CheckpointError(`${file}: metadata "step": expected an integer >= 0, found ${JSON.stringify(meta['step'])}`);
  }
  let hyper: Record<string, number> = {};
  if (meta['hyper'] !== undefined) {
    let h: unknown;
    try {
      h = JSON.parse(meta['hyper']);
    } catch {
      throw new CheckpointError(`${file}: metadata "hyper" is not valid JSON`);
    }
    if (!isObject(h) || !Object.values(h).every((x) => typeof x === 'number')) {
      throw new CheckpointError(`${file}: metadata "hyper": expected an object of numbers`);
    }
    hyper = h as Record<string, number>;
  }
  const tensors: OptimizerState['tensors'] = {};
  for (const name of f.names()) {
    const e = f.entry(name);
    if (e.dtype !== 'F32') throw new CheckpointError(`${file}: tensor "${name}" has dtype ${e.dtype}, expected F32`);
    tensors[name] = { shape: e.shape.slice(), data: f.float32(name) };
  }
  return { kind, step, hyper, tensors };
}

/**
 * Read a checkpoint folder written by `saveCheckpoint`. `model.safetensors`, `config.json` and
 * `trainer_state.json` are required; `optimizer.safetensors` and `tokenizer.json` are optional.
 * When `dir` is missing but `<dir>.old` exists (a save interrupted between its two renames), that
 * is read instead (`recovered: true`).
 */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  let where = path.resolve(dir);
  let recovered = false;
  if (!fs.existsSync(where)) {
    if (fs.existsSync(`${where}.old`)) {
      where = `${where}.old`;
      recovered = true;
    } else throw new CheckpointError(`loadCheckpoint: ${dir}: no such checkpoint folder`);
  }
  if (!fs.statSync(where).isDirectory()) throw new CheckpointError(`loadCheckpoint: ${where}: expected a checkpoint folder, found a file`);
  const file = (n: string) => path.join(where, n);

  const modelFile = file(CHECKPOINT_FILES.model);
  if (!fs.existsSync(modelFile)) throw new CheckpointError(`${modelFile}: file is missing (every checkpoint has its weights here)`);
  const weights: LoadedCheckpoint['weights'] = {};
  try {
    const st = SafetensorsFile.open(modelFile);
    for (const name of st.names()) weights[name] = { shape: st.entry(name).shape.slice(), data: st.float32(name) };
  } catch (e) {
    throw e instanceof CheckpointError ? e : new CheckpointError(`${modelFile}: ${(e as Error).message.replace(`${modelFile}: `, '')}`);
  }

  const cfgFile = file(CHECKPOINT_FILES.config);
  const config = readJson(cfgFile, 'config');
  if (!isObject(config)) throw new CheckpointError(`${cfgFile}: expected a JSON object`);

  const tsFile = file(CHECKPOINT_FILES.trainerState);
  const trainerState = validateTrainerState(readJson(tsFile, 'trainer state'), tsFile);

  const optFile = file(CHECKPOINT_FILES.optimizer);
  let optimizer: OptimizerState | null = null;
  if (fs.existsSync(optFile)) {
    try {
      optimizer = readOptimizer(optFile);
    } catch (e) {
      throw e instanceof CheckpointError ? e : new CheckpointError(`${optFile}: ${(e as Error).message.replace(`${optFile}: `, '')}`);
    }
  }
  const tok = file(CHECKPOINT_FILES.tokenizer);
  return { dir: where, recovered, weights, config, optimizer, trainerState, tokenizerPath: fs.existsSync(tok) ? tok : null };
}
