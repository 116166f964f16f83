/**
 * Front-end ops: validate shapes (errors name the op and the shapes), then dispatch to the backend of
 * the first input. Model files call these, never a backend directly.
 */
import type { CausalConv1dArgs, SelectiveScanArgs } from '../backend/backend.js';
import { Tensor, shapeStr, type Shape } from './tensor.js';

export class ShapeError extends Error {
  override name = 'ShapeError';
}

function check(cond: boolean, op: string, msg: () => string): void {
  if (!cond) throw new ShapeError(`${op}: ${msg()}`);
}
function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
function expectShape(op: string, name: string, t: Tensor | null, want: Shape): void {
  if (t) check(sameShape(t.shape, want), op, () => `${name} has shape ${shapeStr(t.shape)}, expected ${shapeStr(want)}`);
}

/** Reshape without copying (same storage). */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  check(n === x.size, 'reshape', () => `cannot view ${shapeStr(x.shape)} as ${shapeStr(shape)}`);
  return new Tensor(x.backend, x.storage, [...shape], x.dtype);
}

/** Token ids → embeddings. `ids` must already be validated against the vocabulary. */
export function embedding(table: Tensor, ids: Int32Array, outShape: Shape): Tensor {
  check(table.shape.length === 2, 'embedding', () => `table must be [vocab, hidden], got ${shapeStr(table.shape)}`);
  const V = table.shape[0];
  for (const id of ids) check(Number.isInteger(id) && id >= 0 && id < V, 'embedding', () => `token id ${id} is outside [0, ${V})`);
  return reshape(table.backend.embedding(table, ids), outShape);
}

/** y = x Wᵀ + b over the last dim; leading dims are kept. */
export function linear(x: Tensor, w: Tensor, bias: Tensor | null = null): Tensor {
  const K = x.shape[x.shape.length - 1];
  check(w.shape.length === 2 && w.shape[1] === K, 'linear', () => `input ${shapeStr(x.shape)} does not match weight ${shapeStr(w.shape)} (expected [out, ${K}])`);
  expectShape('linear', 'bias', bias, [w.shape[0]]);
  const M = x.size / K;
  const y = x.backend.linear(reshape(x, [M, K]), w, bias);
  return reshape(y, [...x.shape.slice(0, -1), w.shape[0]]);
}

export function rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor {
  const H = x.shape[x.shape.length - 1];
  expectShape('rms_norm', 'weight', w, [H]);
  const y = x.backend.rmsNorm(reshape(x, [x.size / H, H]), w, eps);
  return reshape(y, x.shape);
}

export function add(a: Tensor, b: Tensor): Tensor {
  check(sameShape(a.shape, b.shape), 'add', () => `shapes differ: ${shapeStr(a.shape)} vs ${shapeStr(b.shape)}`);
  return a.backend.add(a, b);
}

/** Split the last dim into pieces of the given sizes. */
export function split(x: Tensor, sizes: readonly number[]): Tensor[] {
  const W = x.shape[x.shape.length - 1];
  check(sizes.reduce((a, b) => a + b, 0) === W, 'split', () => `sizes [${sizes.join(', ')}] do not add up to the last dim of ${shapeStr(x.shape)}`);
  return x.backend.split(x, sizes);
}

export function causalConv1d(args: CausalConv1dArgs): Tensor {
  const { x, weight } = args;
  check(x.shape.length === 3, 'causal_conv1d', () => `x must be [batch, len, channels], got ${shapeStr(x.shape)}`);
  const [b, , C] = x.shape;
  check(weight.shape.length === 2 && weight.shape[0] === C, 'causal_conv1d', () => `weight ${shapeStr(weight.shape)} must be [${C}, K]`);
  expectShape('causal_conv1d', 'bias', args.bias, [C]);
  expectShape('causal_conv1d', 'state', args.state, [b, C, weight.shape[1]]);
  return x.backend.causalConv1d(args);
}

export function selectiveScan(args: SelectiveScanArgs): Tensor {
  const op = 'selective_scan';
  check(args.u.shape.length === 3, op, () => `u must be [batch, len, channels], got ${shapeStr(args.u.shape)}`);
  const [b, L, D] = args.u.shape;
  check(args.A.shape.length === 2 && args.A.shape[0] === D, op, () => `A ${shapeStr(args.A.shape)} must be [${D}, N]`);
  const N = args.A.shape[1];
  expectShape(op, 'delta', args.delta, [b, L, D]);
  expectShape(op, 'B', args.B, [b, L, N]);
  expectShape(op, 'C', args.C, [b, L, N]);
  expectShape(op, 'D', args.D, [D]);
  expectShape(op, 'z', args.z, [b, L, D]);
  expectShape(op, 'deltaBias', args.deltaBias, [D]);
  expectShape(op, 'state', args.state, [b, D, N]);
  check(args.chunkSize >= 1, op, () => `chunkSize must be >= 1, got ${args.chunkSize}`);
  return args.u.backend.selectiveScan(args);
}

export function concatRows(ts: readonly Tensor[]): Tensor {
  check(ts.length > 0, 'concat_rows', () => 'no tensors');
  const tail = ts[0].shape.slice(1);
  for (const t of ts) check(sameShape(t.shape.slice(1), tail), 'concat_rows', () => `shapes differ: ${shapeStr(ts[0].shape)} vs ${shapeStr(t.shape)}`);
  return ts[0].backend.concatRows(ts);
}

export function takeRows(t: Tensor, rows: readonly number[]): Tensor {
  for (const r of rows) check(Number.isInteger(r) && r >= 0 && r < t.shape[0], 'take_rows', () => `row ${r} outside [0, ${t.shape[0]})`);
  return t.backend.takeRows(t, rows);
}
