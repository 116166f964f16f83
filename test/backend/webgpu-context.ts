/**
 * Shared by the WebGPU tests: a backend on whatever adapter this machine has. On a machine without a GPU
 * driver the Vulkan loader is pointed at SwiftShader (Debian's chromium package ships it) when no driver
 * was chosen explicitly. Without an adapter the tests are skipped with the reason — or fail, when
 * MAMBA_TS_REQUIRE_WEBGPU=1 (CI), so they never pass silently.
 */
import * as fs from 'node:fs';
import { createWebGpuBackend, WebGpuUnavailableError, type CreateWebGpuOptions, type WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { bf16ToF32, f32ToBf16 } from '../../src/tensor/dtype.js';

const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';

export function useSoftwareVulkanIfNoDriverChosen(): void {
  const e = process.env;
  if (!e.VK_ICD_FILENAMES && !e.VK_DRIVER_FILES && fs.existsSync(SWIFTSHADER)) e.VK_ICD_FILENAMES = SWIFTSHADER;
  e.XDG_RUNTIME_DIR ??= '/tmp';
}

/** a backend, or the reason there is none (a string) — throws instead when WebGPU is required */
export async function webgpuOrReason(opts: CreateWebGpuOptions = {}): Promise<WebGpuBackend | string> {
  useSoftwareVulkanIfNoDriverChosen();
  try {
    return await createWebGpuBackend(opts);
  } catch (e) {
    if (e instanceof WebGpuUnavailableError && process.env.MAMBA_TS_REQUIRE_WEBGPU !== '1') return `no WebGPU: ${e.message}`;
    throw e;
  }
}

/** values rounded to bf16 (what a matrix stored with `weights: 'bf16'` holds) */
export const roundBf16 = (a: Float32Array): Float32Array => a.map((v) => bf16ToF32(f32ToBf16(v)));

/** the kernels `fn` records on `g` */
export async function kernelsOf<T>(g: WebGpuBackend, fn: () => Promise<T>): Promise<{ result: T; names: string[] }> {
  const names: string[] = [];
  const record = g.rt.record.bind(g.rt);
  g.rt.record = (d) => {
    names.push(d.spec.name);
    record(d);
  };
  try {
    return { result: await fn(), names };
  } finally {
    g.rt.record = record;
  }
}
