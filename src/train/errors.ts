/** A training run cannot go on (bad options, diverged loss, mismatched resume): the message says why. */
export class TrainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainError';
  }
}
