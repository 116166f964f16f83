/**
 * The backend interface: the primitives every backend implements (CPU now; WebAssembly SIMD and
 * WebGPU next). Shapes are validated once, in `src/tensor/ops.ts`; kernels assume valid input.
 *
 * Design rules, so that the coming backends and autograd fit without changing model code:
 * - Results stay backend-resident; only `read` crosses to the host, and it is async.
 * - Every op returns a new tensor, except the recurrent-state ops, which update the state tensors they
 *   are given in place (conv window, SSM state); inference only — training runs without state.
 * - Ops are pure functions of their inputs and a small attribute record, so an autograd tape can
 *   record (op name, inputs, attrs) and a backward rule per op (see `OpName`).
 */
import type { Shape, Tensor } from '../tensor/tensor.js';

export type OpName =
  | 'embedding'
  | 'linear'
  | 'rms_norm'
  | 'add'
  | 'split'
  | 'causal_conv1d'
  | 'selective_scan'
  | 'concat_rows'
  | 'take_rows';

/** Arguments of the Mamba-1 selective scan (S6), channel-last layout. */
export interface SelectiveScanArgs {
  /** input after conv+SiLU, [b, L, D] */
  u: Tensor;
  /** Δ before bias and softplus, [b, L, D] */
  delta: Tensor;
  /** A = −exp(A_log), [D, N] */
  A: Tensor;
  /** input-dependent B and C, [b, L, N] */
  B: Tensor;
  C: Tensor;
  /** skip connection, [D] */
  D: Tensor | null;
  /** gate, [b, L, D]: y ← y · silu(z) */
  z: Tensor | null;
  /** added to Δ before the softplus, [D] */
  deltaBias: Tensor | null;
  deltaSoftplus: boolean;
  /** [b, D, N]: read as h₀, overwritten with h_L. null → h₀ = 0 and the final state is dropped. */
  state: Tensor | null;
  /**
   * Scan algorithm. 'sequential': one pass over time. 'chunked': the parallel two-level scan (chunks scanned
   * independently from zero state, carries combined across chunks, then applied), which is what parallel
   * backends run. `chunkSize` is a hint for 'chunked'.
   */
  algorithm: 'sequential' | 'chunked';
  chunkSize: number;
}

export interface CausalConv1dArgs {
  /** [b, L, C] */
  x: Tensor;
  /** depthwise kernel [C, K] */
  weight: Tensor;
  /** [C] */
  bias: Tensor | null;
  /**
   * [b, C, K] window of the last K pre-conv inputs (slot K−1 = newest), read as history and overwritten
   * with the window after this input. null → zero history, nothing kept.
   */
  state: Tensor | null;
  activation: 'silu' | 'none';
}

export interface Backend {
  readonly name: string;

  // ---- memory -------------------------------------------------------------------------------
  /** Wrap/upload host data. The backend may keep `data` without copying: callers hand over ownership. */
  fromHost(data: Float32Array, shape: Shape): Tensor;
  zeros(shape: Shape): Tensor;
  read(t: Tensor): Promise<Float32Array>;
  /** throws on backends without host-resident storage */
  readSync(t: Tensor): Float32Array;
  dispose(t: Tensor): void;

  // ---- primitives ---------------------------------------------------------------------------
  /** table [V, H], ids (validated) → [ids.length, H] */
  embedding(table: Tensor, ids: Int32Array): Tensor;
  /** x [M, K] · wᵀ, w [N, K] (+ bias [N]) → [M, N] */
  linear(x: Tensor, w: Tensor, bias: Tensor | null): Tensor;
  /** RMSNorm over the last dim of x [M, H]: w · x / sqrt(mean(x²) + eps) */
  rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor;
  add(a: Tensor, b: Tensor): Tensor;
  /** split the last dim of x [M, Σsizes] into contiguous pieces [M, sizes[i]] */
  split(x: Tensor, sizes: readonly number[]): Tensor[];
  causalConv1d(args: CausalConv1dArgs): Tensor;
  selectiveScan(args: SelectiveScanArgs): Tensor;
  /** concatenate along dim 0 (batch of states) */
  concatRows(ts: readonly Tensor[]): Tensor;
  /** pick rows of dim 0 */
  takeRows(t: Tensor, rows: readonly number[]): Tensor;
}
