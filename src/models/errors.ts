/** Errors about a model folder: bad/missing config fields, missing or mis-shaped tensors, bad input ids. */
export class ModelError extends Error {
  override name = 'ModelError';
}
