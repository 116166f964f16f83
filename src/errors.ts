/**
 * The base of every error class of mamba-ts, and the errors of the front-end ops. Each error mamba-ts throws
 * on purpose (a bad option, a model folder it cannot read, a shape that does not fit, a usage mistake, …) is
 * a `MambaTsError`: one `instanceof` tells it from a bug or a system error (the CLI prints it as one line).
 * `name` is the subclass's class name (`new.target.name`): a bundle that minifies must keep class names
 * (keepNames; the playground's vite config does) for it to read well; `instanceof` works regardless.
 * No I/O, browser-safe.
 */
export class MambaTsError extends Error {
  constructor(message?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** An op (front-end or autograd) was called with arguments it cannot take; the message names the op. */
export class OpError extends MambaTsError {}

/** An op's inputs do not fit: shapes, sizes, indices, counts. The message names the op and the shapes. */
export class ShapeError extends OpError {}

/**
 * The tensors of one op live on different backends (a CPU state passed to a WebGPU model, weights of two
 * models mixed, …). The message names the op, the argument and both backends.
 */
export class BackendMismatchError extends OpError {}
