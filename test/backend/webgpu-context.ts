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
  if (/swiftshader/i.test(`${e.VK_ICD_FILENAMES ?? ''} ${e.VK_DRIVER_FILES ?? ''}`)) sleepBetweenDawnPolls();
}

let polite = false;

/**
 * Dawn for Node waits for a map (every read-back) or onSubmittedWorkDone by polling its events through setImmediate,
 * again and again: a loop that keeps a core busy for as long as the GPU works. On SwiftShader the GPU is this machine's
 * CPU, so the loop took ~40% of the CPU time of a decode step (mamba-tiny, 8 steps in one process, interleaved: 9.6 s
 * vs 5.6 s) and, with the test files running two at a time on CI's 2 cores, a core from the other file's kernels.
 * Dawn's poll callbacks go through setTimeout(0) instead, which lets the loop sleep ~1 ms between polls; every other
 * setImmediate is left alone (`setImmediate(resolve)` included). Only with SwiftShader (a GPU keeps the tight loop),
 * and only in the tests: the library does not touch the global.
 */
function sleepBetweenDawnPolls(): void {
  if (polite) return;
  polite = true;
  const immediate = globalThis.setImmediate;
  // Dawn's callback: a native function made by N-API, nameless, no parameters, constructible (a prototype) — unlike a
  // promise's resolve function (nameless and native too, but one parameter and no prototype: setImmediate(resolve))
  const native = (f: unknown): boolean =>
    typeof f === 'function' && f.name === '' && f.length === 0 && 'prototype' in f && Function.prototype.toString.call(f).endsWith('{ [native code] }');
  globalThis.setImmediate = Object.assign(
    function (this: unknown, f: (...a: unknown[]) => void, ...a: unknown[]) {
      return native(f) ? (setTimeout(f, 0, ...a) as unknown as NodeJS.Immediate) : immediate(f, ...a);
    },
    { __promisify__: immediate.__promisify__ },
  ) as typeof setImmediate;
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
export async function kernelsOf<T>(g: WebGpuBackend, fn: () => Promise<T>): Promise<{ result: T; names: string[]; variants: string[] }> {
  const names: string[] = [], variants: string[] = [];
  const record = g.rt.record.bind(g.rt);
  g.rt.record = (d) => {
    names.push(d.spec.name);
    variants.push(`${d.spec.name}:${d.variant}`);
    record(d);
  };
  try {
    return { result: await fn(), names, variants };
  } finally {
    g.rt.record = record;
  }
}

const SUBGROUP_MATRIX = 'chromium-experimental-subgroup-matrix';

/** an object whose methods run on `target` (Dawn's objects check their receiver), with some properties replaced */
function facade<T extends object>(target: T, replaced: Record<string, unknown>): T {
  return new Proxy(target, {
    get(t, k) {
      if (typeof k === 'string' && k in replaced) return replaced[k];
      const v = Reflect.get(t, k, t) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

/**
 * Dawn's entry point, with adapters and devices that claim the subgroup-matrix feature and the given configurations
 * (the device is created without it: a kernel using cooperative matrices fails to compile) — to test, on an adapter
 * without the feature (SwiftShader), what a backend does at creation on one with it. The reason when there is no
 * `webgpu` package (throws when WebGPU is required).
 */
export async function matrixFeatureGpu(configs: Record<string, string | number>[]): Promise<GPU | string> {
  useSoftwareVulkanIfNoDriverChosen();
  let create: (flags: string[]) => GPU;
  try {
    ({ create } = (await import('webgpu')) as { create(flags: string[]): GPU });
  } catch (e) {
    if (process.env.MAMBA_TS_REQUIRE_WEBGPU === '1') throw e;
    return `no WebGPU: ${(e as Error).message}`;
  }
  const gpu = create([]);
  const features = (f: ReadonlySet<string>) => new Set([...f, SUBGROUP_MATRIX]);
  return {
    requestAdapter: async (o?: GPURequestAdapterOptions) => {
      const a = await gpu.requestAdapter(o);
      if (!a) return null;
      const i = a.info as GPUAdapterInfo & Record<string, unknown>;
      const info = { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, isFallbackAdapter: i.isFallbackAdapter, subgroupMinSize: i.subgroupMinSize, subgroupMaxSize: i.subgroupMaxSize, subgroupMatrixConfigs: configs };
      const requestDevice = async (d: GPUDeviceDescriptor = {}) => {
        const dev = await a.requestDevice({ ...d, requiredFeatures: [...(d.requiredFeatures ?? [])].filter((f) => (f as string) !== SUBGROUP_MATRIX) });
        return facade(dev, { features: features(dev.features as ReadonlySet<string>) });
      };
      return facade(a, { features: features(a.features as ReadonlySet<string>), info, requestDevice });
    },
  } as unknown as GPU;
}
