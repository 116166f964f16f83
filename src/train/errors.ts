import { MambaTsError } from '../errors.js';

/** A training run cannot go on (bad options, diverged loss, mismatched resume): the message says why. */
export class TrainError extends MambaTsError {}

/** `--from` names a checkpoint whose architecture mamba-ts does not know: says which it is and which can be trained. */
export class UntrainableModelError extends TrainError {
  constructor(
    readonly dir: string,
    /** the checkpoint's model_type */
    readonly modelType: string,
    /** model_type → architecture name, of those that can be trained */
    readonly trainable: Readonly<Record<string, string>>,
  ) {
    super(
      `--from ${dir}: model_type "${modelType}" cannot be trained (mamba-ts does not know it); ` +
        `trainable: ${Object.entries(trainable).map(([t, name]) => `${t} (${name})`).join(', ')}`,
    );
  }
}

/** The checkpoint folder (`--out`) cannot be used: it holds another run, is not a folder, or cannot be written. */
export class RunFolderError extends TrainError {
  constructor(
    message: string,
    readonly dir: string,
  ) {
    super(message);
  }
}
