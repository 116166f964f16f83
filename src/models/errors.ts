import { MambaTsError } from '../errors.js';

/** Errors about a model folder: bad/missing config fields, missing or mis-shaped tensors, bad input ids. */
export class ModelError extends MambaTsError {}
