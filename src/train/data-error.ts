import { MambaTsError } from '../errors.js';

/** The error of the training-data loaders (text corpus, windows, Fashion-MNIST): it names the file or folder and what was expected. */
export class DataError extends MambaTsError {}
