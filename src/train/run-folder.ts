/**
 * The checkpoint folder of a run (`train --out`), checked before the first step: a folder that holds
 * another run is not replaced unless asked to (`overwrite`), or continued (`resume`); a folder with other
 * files is never replaced; and the place must be a folder that can be created and written — otherwise a
 * run would only find out at its first save, after the work.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CHECKPOINT_FILES } from './checkpoint.js';
import { RunFolderError } from './errors.js';

export interface RunFolderOptions {
  /** continue the run in the folder (it must hold one) */
  resume?: boolean;
  /** replace the checkpoint in the folder, if any */
  overwrite?: boolean;
}

export interface RunFolderInfo {
  /** the folder's checkpoint's step (trainer_state.json), null when it holds none */
  step: number | null;
}

function errnoMessage(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const m = typeof err?.message === 'string' ? /^[A-Z]+: (.*?)(, \w+ '.*')?$/.exec(err.message) : null;
  return m ? m[1] : String(err?.message ?? e);
}

/** the files that make a folder a checkpoint */
const MARKERS: readonly string[] = [CHECKPOINT_FILES.trainerState, CHECKPOINT_FILES.model, CHECKPOINT_FILES.config];

/** the step in `<dir>/trainer_state.json`, or null when there is none (or it is unreadable) */
function readStep(dir: string): number | null {
  try {
    const ts = JSON.parse(fs.readFileSync(path.join(dir, CHECKPOINT_FILES.trainerState), 'utf8')) as { step?: unknown };
    return typeof ts.step === 'number' ? ts.step : null;
  } catch {
    return null;
  }
}

/** a folder's entries, or null when it does not exist */
function entries(dir: string): string[] | null {
  try {
    return fs.readdirSync(dir);
  } catch {
    return null;
  }
}

/**
 * Check that a run may write its checkpoints to `dir`, before it starts; creates the parent folders.
 * Throws a `RunFolderError` naming the folder, what is wrong and what to do.
 */
export function checkRunFolder(dir: string, opts: RunFolderOptions = {}): RunFolderInfo {
  const abs = path.resolve(dir);
  const here = `--out ${dir}`;
  let st: fs.Stats | null = null;
  try {
    st = fs.statSync(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new RunFolderError(`${here}: cannot use it: ${errnoMessage(e)}`, dir);
  }
  if (st && !st.isDirectory()) throw new RunFolderError(`${here} is a file, not a folder: choose a folder for the checkpoint`, dir);

  // what is there: the folder, or `<dir>.old` (a save interrupted between its two renames, which loading falls back to)
  const names = entries(abs) ?? [];
  const oldNames = entries(`${abs}.old`);
  const ckDir = names.some((n) => MARKERS.includes(n)) ? abs : oldNames?.some((n) => MARKERS.includes(n)) ? `${abs}.old` : null;
  const step = ckDir ? readStep(ckDir) : null;
  if (opts.resume) {
    if (step === null) throw new RunFolderError(`--resume: ${dir} holds no training checkpoint to continue (no ${CHECKPOINT_FILES.trainerState})`, dir);
  } else if (ckDir) {
    const what = step !== null ? `a training run (checkpoint at step ${step})` : `a model checkpoint (${MARKERS.filter((n) => (entries(ckDir) ?? []).includes(n)).join(', ')})`;
    if (!opts.overwrite) throw new RunFolderError(`${here} already holds ${what}: add --resume to continue it, or --overwrite to replace it (or choose another --out)`, dir);
  } else if (names.length > 0) {
    const shown = names.slice(0, 3).join(', ') + (names.length > 3 ? ', …' : '');
    throw new RunFolderError(`${here} is a folder with other files (${shown}) and no checkpoint: it is never replaced; choose a new or empty folder`, dir);
  }

  // the parent must be (or become) a folder that we can write: saves write `.<name>.tmp-…` there and rename it
  const parent = path.dirname(abs);
  for (let p = path.dirname(dir); ; p = path.dirname(p)) {
    let s: fs.Stats | null = null;
    try {
      s = fs.statSync(p);
    } catch {
      /* not there: look higher up */
    }
    if (s) {
      if (!s.isDirectory()) throw new RunFolderError(`${here}: cannot create the checkpoint folder: ${p} is a file, not a folder`, dir);
      break;
    }
    if (path.dirname(p) === p) break;
  }
  try {
    fs.mkdirSync(parent, { recursive: true });
    const probe = fs.mkdtempSync(path.join(parent, `.${path.basename(abs)}.probe-`));
    fs.rmdirSync(probe);
  } catch (e) {
    throw new RunFolderError(`${here}: cannot write the checkpoint folder there: ${errnoMessage(e)}`, dir);
  }
  return { step };
}
