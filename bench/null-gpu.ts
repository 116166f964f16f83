/// <reference types="@webgpu/types" />
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
