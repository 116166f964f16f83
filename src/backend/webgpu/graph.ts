/// <reference types="@webgpu/types" />
/**
 * A recorded submit (GpuRuntime.capture) and how it is encoded again (GpuRuntime.replay / replayChain): its
 * pipelines, bind groups and parameter words are fixed; only the uploaded numbers (token ids) change.
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
  ) {}
  /** the upload buffer holds the ids the last chained step picked (a chain may continue from the device) */
  chained = false;
}

