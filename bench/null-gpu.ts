/// <reference types="@webgpu/types" />
import type { WebGpuBackend } from '../src/backend/webgpu/index.js';
import type { buildModel } from '../src/models/registry.js';
/**
 * A GPUDevice that runs nothing: buffers are sizes, submits are dropped, reads map zeros. For memory
 * accounting only (`webgpu.bench.ts --memory --null-device`): what the WebGPU runtime allocates depends on the
 * recorded ops and the device's limits, not on the results, so a prefill "run" on this device allocates exactly
 * what it would on a GPU with these limits and kernel choices, in seconds instead of the minutes a software
 * adapter takes. Its logits are meaningless.
 */

/** limits of a discrete GPU (Dawn on Vulkan): bindings of ≥ 256 MiB, so pool chunks are the runtime's largest (256 MiB) */
export const NULL_GPU_LIMITS = {
  maxStorageBufferBindingSize: 2 ** 31 - 4,
  maxBufferSize: 2 ** 32,
  maxStorageBuffersPerShaderStage: 10,
  maxComputeWorkgroupStorageSize: 32768,
  maxComputeInvocationsPerWorkgroup: 1024,
  maxComputeWorkgroupSizeX: 1024,
  maxComputeWorkgroupsPerDimension: 65535,
};

class NullBuffer {
  private data: ArrayBuffer | null = null;
  mapState: GPUBufferMapState = 'unmapped';
  constructor(readonly size: number) {}
  mapAsync(): Promise<void> {
    this.mapState = 'mapped';
    return Promise.resolve();
  }
  getMappedRange(offset = 0, size = this.size - offset): ArrayBuffer {
    this.data = new ArrayBuffer(size);
    return this.data;
  }
  unmap(): void {
    this.data = null;
    this.mapState = 'unmapped';
  }
  destroy(): void {}
}

const obj = () => ({});

/** a device with `NULL_GPU_LIMITS` (or these limits replaced) and the 'subgroups' feature (as NVIDIA adapters have) */
export function nullGpuDevice(limits: Partial<typeof NULL_GPU_LIMITS> = {}): GPUDevice {
  const pass = { setPipeline() {}, setBindGroup() {}, dispatchWorkgroups() {}, end() {} };
  const device = {
    limits: { ...NULL_GPU_LIMITS, ...limits },
    features: new Set<string>(['subgroups']),
    queue: { writeBuffer() {}, submit() {}, onSubmittedWorkDone: () => Promise.resolve() },
    addEventListener() {},
    createBuffer: (d: GPUBufferDescriptor) => new NullBuffer(d.size),
    createBindGroupLayout: obj,
    createPipelineLayout: obj,
    createShaderModule: obj,
    createComputePipeline: obj,
    createBindGroup: obj,
    createQuerySet: () => ({ destroy() {} }),
    createCommandEncoder: () => ({ beginComputePass: () => pass, copyBufferToBuffer() {}, resolveQuerySet() {}, finish: obj }),
    destroy() {},
  };
  return device as unknown as GPUDevice;
}

/** a recorded dispatch as `stepDispatches` lists it */
export interface RecordedDispatch {
  name: string;
  variant: string;
  grid: [number, number, number];
  params: number[];
}

/**
 * The dispatches of a B-row model's first one-token step (the one that runs the model code and is recorded for replay)
 * after a 3-token prefill: the shared measurement of bench/webgpu-dispatches.ts and bench/rows-bytes.ts (empty grids
 * left out).
 */
export async function stepDispatches(backend: WebGpuBackend, lm: ReturnType<typeof buildModel>, B: number): Promise<RecordedDispatch[]> {
  const s = lm.createState(B);
  const advance = (ids: number[][]) => lm.advance(ids, s);
  await advance(Array.from({ length: B }, (_, r) => [1 + r, 2, 3]));
  const log: RecordedDispatch[] = [];
  const rt = backend.rt;
  const record = rt.record.bind(rt);
  rt.record = (d) => {
    if (d.grid[0] * d.grid[1] * d.grid[2] > 0) log.push({ name: d.spec.name, variant: d.variant, grid: d.grid, params: d.params });
    record(d);
  };
  try {
    await advance(Array.from({ length: B }, () => [5]));
  } finally {
    rt.record = record;
    s.dispose();
  }
  return log;
}
