/**
 * What a WebGPU differentiable op sees of its backend (`GpuCtx`), and the shape of one op's implementation
 * (`GpuImpl`). The op implementations live beside this file, one file per family of ops, each exporting a
 * `Partial<Record<DiffOp, GpuImpl>>` that `index.ts` merges into the backend's table.
 *
 * An implementation runs the op's forward (the backend's own kernels where they exist), keeps what its backward
 * needs as GPU tensors (never host copies: nothing may be read back while the tape records), and returns a
 * backward that records the gradient kernels. Everything is recorded, nothing waits: a training step submits
 * once, when the loss (or a logged number) is read.
 *
 * Conventions shared with the CPU table (`src/backend/cpu/autograd.ts`): inputs in the op layer's order, null for
 * absent optional inputs; the backward returns one gradient per input (null where the input is absent or needs
 * none); gradients have the input's shape. Host-side attributes (ids, rows, targets) are uploaded again by the
 * backward that needs them: uploaded data lives until the next submit only.
 */
import type { DiffAttrs, Differentiated } from '../../backend.js';
import type { Shape, Tensor } from '../../../tensor/tensor.js';
import type { GpuRuntime, KernelSpec, Store } from '../runtime.js';
import type { WebGpuBackend } from '../backend.js';

export interface GpuCtx {
  /** the backend itself: its forward ops (`linear`, `add`, `rmsNorm`, …) are building blocks of backward rules */
  readonly be: WebGpuBackend;
  readonly rt: GpuRuntime;
  /** a tensor's GPU store (work deferred for decode fusion recorded first) */
  st(t: Tensor): Store;
  /** st(t), or a dummy binding for an absent optional input */
  opt(t: Tensor | null): Store;
  /** a new activation tensor (uninitialised) */
  out(shape: Shape, what?: string): Tensor;
  /** a zero-filled activation tensor */
  zeros(shape: Shape, what?: string): Tensor;
  /** a tensor over a store (a view: `viewOf` shares its lifetime) */
  tensor(s: Store, shape: Shape, viewOf?: Tensor): Tensor;
  /** scratch memory for one op's dispatches; hand it back with `done` once they are recorded */
  scratch(n: number, what: string): Store;
  done(...scratch: Store[]): void;
  /** record one dispatch */
  run(spec: KernelSpec, roles: Store[], params: number[], grid: [number, number, number], variant?: string): void;
  /** a grid of 256-wide workgroups covering n items */
  threads(n: number): [number, number, number];
  /** a grid of `groups` workgroups (wrapped into 2-D past the per-dimension limit) */
  grid(groups: number): [number, number, number];
  /** host numbers (ids, rows as floats) for the dispatches recorded before the next submit */
  upload(data: ArrayLike<number>): Store;
  /** the bits of a float32 as a u32 parameter word */
  f2u(x: number): number;
}

export type GpuImpl = (c: GpuCtx, inputs: readonly (Tensor | null)[], attrs: DiffAttrs) => Differentiated;
