/// <reference types="@webgpu/types" />
/**
 * A recorded submit (GpuRuntime.capture) and how it is encoded again (GpuRuntime.replay / replayChain): its
 * pipelines, bind groups and parameter words are fixed; only the uploaded numbers change (token ids, and the
 * lengths and rotary tables of KV-cache models, which follow the positions).
 */
import type { BufRef, Store } from './memory.js';
import { PARAM_SLOT } from './wgsl.js';

export interface GraphStep {
  pipe: GPUComputePipeline;
  bg: GPUBindGroup;
  grid: [number, number, number];
  /** the stores the step binds: held, so that their blocks stay reserved while the graph lives */
  roles: readonly Store[];
}

/**
 * The uploads of a graph that follow the positions (KV-cache lengths, rotary tables): floats [off, off + len) of
 * its upload buffer, each part at `off` within that range computed by `next` from how far each sequence advanced.
 */
export interface RuledUploads {
  off: number;
  len: number;
  parts: readonly { off: number; next: (shift: readonly number[]) => ArrayLike<number> }[];
}

/** one compute pass with a graph's dispatches */
export function encodeGraph(enc: GPUCommandEncoder, g: GpuGraph): void {
  const pass = enc.beginComputePass();
  let lastPipe: GPUComputePipeline | null = null;
  let lastBG: GPUBindGroup | null = null;
  const off = [0];
  for (let i = 0; i < g.steps.length; i++) {
    const st = g.steps[i];
    if (st.pipe !== lastPipe) pass.setPipeline((lastPipe = st.pipe));
    if (st.bg !== lastBG) pass.setBindGroup(0, (lastBG = st.bg));
    off[0] = i * PARAM_SLOT;
    pass.setBindGroup(1, g.paramBG, off);
    pass.dispatchWorkgroups(st.grid[0], st.grid[1], st.grid[2]);
  }
  pass.end();
}

/** A recorded submit (GpuRuntime.capture) that GpuRuntime.replay submits again. */
export class GpuGraph {
  constructor(
    readonly steps: readonly GraphStep[],
    readonly paramBG: GPUBindGroup,
    readonly upload: BufRef,
    readonly params: BufRef,
    readonly uploadLen: number,
    /** what the step reads back */
    readonly src: Store,
    readonly bytes: number,
    readonly staging: GPUBuffer,
    /** uploads that follow the positions (null: only the token ids change) */
    readonly ruled: RuledUploads | null = null,
  ) {}
  /** the upload buffer holds the ids the last chained step picked (a chain may continue from the device) */
  chained = false;
  /** given up (GpuRuntime.releaseGraph): its blocks are back in their pools, it is never submitted again */
  released = false;
  /** what rebinding the step to another state needs (GpuRuntime.rebindSteps: a StepPlan), else null */
  plan: object | null = null;
}

