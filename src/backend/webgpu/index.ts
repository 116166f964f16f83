/// <reference types="@webgpu/types" />
/**
 * WebGPU backend entry point. In a browser pass `navigator.gpu`; in Node the `webgpu` package (Dawn) is
 * imported on demand, so this module itself imports nothing Node-only and bundles for the web.
 *
 * On a machine without a GPU, a software Vulkan driver gives an adapter: SwiftShader from Debian's
 * chromium package (`VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json`) or Mesa's lavapipe.
 */
import { WebGpuBackend, type WebGpuBackendOptions } from './backend.js';
import { MambaTsError } from '../../errors.js';
import type { SubgroupMatrixConfig } from './runtime.js';
import { int8Slices } from './int8.js';
import { checkTuned } from './kernels/gemm_blocked.js';

export { WebGpuBackend, type WebGpuBackendOptions, type WebGpuSsd } from './backend.js';

/** No WebGPU here: no `webgpu` package, no adapter, or no device. */
export class WebGpuUnavailableError extends MambaTsError {}

export interface CreateWebGpuOptions extends WebGpuBackendOptions {
  /** the WebGPU entry point (`navigator.gpu` in a browser); default: the `webgpu` npm package's `create([])` */
  gpu?: GPU;
  /**
   * Request `chromium-experimental-subgroup-matrix` (cooperative matrices: tensor cores) when the adapter offers it,
   * for the prefill GEMM. In Node, Dawn offers it only when created with the `allow_unsafe_apis` toggle, which this
   * then passes. Default: on, unless the environment sets MAMBA_TS_WEBGPU_SUBGROUP_MATRIX=0.
   */
  subgroupMatrix?: boolean;
  powerPreference?: GPUPowerPreference;
  /**
   * Dawn device toggles (Node only: the `webgpu` package's `enable-dawn-features` / `disable-dawn-features`), e.g.
   * `{ enable: ['disable_robustness', 'disable_workgroup_init'] }`: the shaders then skip their bounds clamps and the
   * zeroing of workgroup memory (our kernels index within bounds and write workgroup memory before reading it; the
   * GPU parity tests check that with the toggles on). Default `DEFAULT_DAWN_TOGGLES` (both on): measured on an H100
   * (session 30, batch-1 decode, median of 3) f32 mamba-130m 974 → 1,051 tok/s, mamba2-130m 1,042 → 1,140, bf16
   * mamba2-130m 1,155 → 1,222; the 46 WebGPU test files (636 tests) pass with them on SwiftShader and the parity tests
   * on the H100. `{}` (or MAMBA_TS_WEBGPU_DAWN_TOGGLES=none) turns them off. Also settable by
   * MAMBA_TS_WEBGPU_DAWN_TOGGLES, a comma list where a name with a leading '-' is disabled (e.g.
   * `disable_robustness,disable_workgroup_init,-timestamp_quantization`). With `profile`, `timestamp_quantization` is
   * disabled (profiled times otherwise come in steps of ~4–16 µs).
   */
  dawnToggles?: DawnToggles;
}

/** Dawn toggles to force on or off at device creation (see CreateWebGpuOptions.dawnToggles) */
export interface DawnToggles {
  enable?: readonly string[];
  disable?: readonly string[];
}

/** the toggles a device is created with unless told otherwise (CreateWebGpuOptions.dawnToggles) */
export const DEFAULT_DAWN_TOGGLES: DawnToggles = { enable: ['disable_robustness', 'disable_workgroup_init'] };

/** MAMBA_TS_WEBGPU_DAWN_TOGGLES as toggles: `a,b,-c` enables a and b and disables c; `none`: no toggles */
export function parseDawnToggles(v: string): DawnToggles {
  if (v.trim() === 'none') return {};
  const names = v.split(',').map((t) => t.trim()).filter((t) => t.length > 0);
  for (const n of names) {
    if (!/^-?[a-z0-9_]+$/.test(n)) throw new Error(`MAMBA_TS_WEBGPU_DAWN_TOGGLES: "${n}" is not a Dawn toggle name (lower case, digits and _; a leading - disables it)`);
  }
  return { enable: names.filter((n) => !n.startsWith('-')), disable: names.filter((n) => n.startsWith('-')).map((n) => n.slice(1)) };
}

/** the `webgpu` package's flags for the subgroup-matrix wish, the toggles asked for, and profiling */
export function dawnFlags(wantMatrix: boolean, toggles: DawnToggles | undefined, profile: boolean): string[] {
  const enable = [...(toggles?.enable ?? [])];
  const disable = [...(toggles?.disable ?? [])];
  if (profile && !disable.includes('timestamp_quantization')) disable.push('timestamp_quantization');
  if ((wantMatrix || enable.length > 0 || disable.length > 0) && !enable.includes('allow_unsafe_apis')) enable.unshift('allow_unsafe_apis');
  const flags: string[] = [];
  if (enable.length > 0) flags.push(`enable-dawn-features=${enable.join(',')}`);
  if (disable.length > 0) flags.push(`disable-dawn-features=${disable.join(',')}`);
  return flags;
}

/**
 * Without a desktop session XDG_RUNTIME_DIR is often unset, and then Mesa's Vulkan device-select layer (installed
 * with Mesa's drivers), asking Wayland for the display's GPU, makes libwayland print "error: XDG_RUNTIME_DIR is
 * invalid or not set in the environment." twice whenever Dawn starts — noise: there is no display to ask. libwayland
 * calls the variable invalid when it is unset or not an absolute path; then this points it at the temporary folder
 * (for this process and the ones it starts), where no Wayland socket is, so nothing is printed and nothing else
 * changes. A valid value is left alone.
 */
async function quietWayland(): Promise<void> {
  const proc = (globalThis as { process?: { platform?: string; env?: Record<string, string | undefined> } }).process;
  if (!proc?.env || proc.platform === 'win32' || proc.platform === 'darwin') return;
  if (proc.env.XDG_RUNTIME_DIR?.startsWith('/')) return;
  const osModule = 'node:os';
  const { tmpdir } = (await import(/* @vite-ignore */ osModule)) as { tmpdir(): string };
  proc.env.XDG_RUNTIME_DIR = tmpdir();
}

/** the `webgpu` package's `create(flags)`, imported lazily (a non-literal specifier keeps bundlers away) */
async function nodeGpu(flags: string[]): Promise<GPU> {
  await quietWayland();
  const specifier = 'webgpu';
  let mod: { create(flags: string[]): GPU };
  try {
    mod = (await import(/* @vite-ignore */ specifier)) as { create(flags: string[]): GPU };
  } catch (e) {
    throw new WebGpuUnavailableError(`webgpu: the "webgpu" package (Dawn for Node) could not be loaded (${(e as Error).message}); install it with \`npm install webgpu\``);
  }
  return mod.create(flags);
}

const keepAlive = new WeakMap<WebGpuBackend, GPU>();

const LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
] as const;

const SUBGROUP_MATRIX = 'chromium-experimental-subgroup-matrix';

/** the adapter's subgroup-matrix configurations (`adapter.info.subgroupMatrixConfigs`), as plain objects */
function readMatrixConfigs(info: GPUAdapterInfo | undefined): SubgroupMatrixConfig[] {
  const list = (info as { subgroupMatrixConfigs?: Iterable<Record<string, unknown>> } | undefined)?.subgroupMatrixConfigs;
  if (!list) return [];
  return [...list].map((c) => ({ componentType: String(c.componentType), resultComponentType: String(c.resultComponentType), M: Number(c.M), N: Number(c.N), K: Number(c.K) }));
}

/** MAMBA_TS_WEBGPU_GEMM_TUNED's file (Node): a tuned GEMM table, or a sweep's JSON holding one as `tuned` */
async function readTuned(path: string): Promise<Record<string, string>> {
  const fsModule = 'node:fs/promises'; // (a variable: bundlers for the browser leave it alone)
  const { readFile } = (await import(/* @vite-ignore */ fsModule)) as { readFile(p: string, enc: 'utf8'): Promise<string> };
  let j: unknown;
  try {
    j = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`webgpu: MAMBA_TS_WEBGPU_GEMM_TUNED=${path}: ${(e as Error).message}`);
  }
  const t = (j as { tuned?: unknown }).tuned ?? j;
  return checkTuned(t, `MAMBA_TS_WEBGPU_GEMM_TUNED=${path}`) as Record<string, string>;
}

/** An adapter and device (the adapter's largest limits), wrapped as a backend. */
export async function createWebGpuBackend(opts: CreateWebGpuOptions = {}): Promise<WebGpuBackend> {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const wantMatrix = opts.subgroupMatrix ?? env?.MAMBA_TS_WEBGPU_SUBGROUP_MATRIX !== '0';
  const envToggles = env?.MAMBA_TS_WEBGPU_DAWN_TOGGLES;
  const toggles = opts.dawnToggles ?? (envToggles ? parseDawnToggles(envToggles) : DEFAULT_DAWN_TOGGLES);
  const flags = dawnFlags(wantMatrix, toggles, !!opts.profile);
  const gpu = opts.gpu ?? (await nodeGpu(flags));
  const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  if (!adapter) {
    throw new WebGpuUnavailableError(
      'webgpu: no adapter found (no usable GPU driver; any "Warning:" lines above are Dawn\'s reasons). On a machine without a GPU, ' +
        'a software Vulkan driver works: apt-get install chromium libvulkan1, then VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json',
    );
  }
  const requiredLimits: Record<string, number> = {};
  for (const k of LIMITS) requiredLimits[k] = adapter.limits[k];
  const requiredFeatures: GPUFeatureName[] = [];
  if (opts.profile && adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
  if (!opts.noSubgroups && adapter.features.has('subgroups')) requiredFeatures.push('subgroups');
  const info = adapter.info;
  // cooperative matrices are only used with subgroups (the kernels need the subgroup size)
  const matrixConfigs = wantMatrix && !opts.noSubgroups && requiredFeatures.includes('subgroups') && adapter.features.has(SUBGROUP_MATRIX as GPUFeatureName) ? readMatrixConfigs(info) : [];
  if (matrixConfigs.length > 0) requiredFeatures.push(SUBGROUP_MATRIX as GPUFeatureName);
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  } catch (e) {
    throw new WebGpuUnavailableError(`webgpu: the adapter refused a device (${(e as Error).message})`);
  }
  const forced = opts.gpu ? [] : [...(toggles?.enable ?? []), ...(toggles?.disable ?? []).map((t) => `-${t}`)];
  const adapterName = ([info?.vendor, info?.device || info?.description || info?.architecture].filter((s) => s).join(' ') || 'adapter') + (forced.length > 0 ? ` [dawn: ${forced.join(',')}]` : '');
  const subgroupMaxSize = (info as { subgroupMaxSize?: number } | undefined)?.subgroupMaxSize || 128;
  // CPU-emulated adapters run barrier-free kernels (see WebGpuBackendOptions.kernels)
  const software = !!(info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe/i.test(adapterName);
  const subgroupMinSize = (info as { subgroupMinSize?: number } | undefined)?.subgroupMinSize || 0;
  const gemmTuned = opts.gemmTuned ?? (env?.MAMBA_TS_WEBGPU_GEMM_TUNED ? await readTuned(env.MAMBA_TS_WEBGPU_GEMM_TUNED) : undefined);
  const backend = new WebGpuBackend(device, adapterName, { subgroupMaxSize, subgroupMinSize, subgroupMatrixConfigs: matrixConfigs, kernels: software ? 'simple' : 'tiled', ...opts, gemmTuned });
  // Dawn's instance must outlive the device: a collected GPU object takes the device down with it
  keepAlive.set(backend, gpu);
  if (matrixConfigs.length > 0 && backend.kernels === 'tiled') {
    await backend.enableMatrixGemm();
    // the int8 check compiles ~6 pipelines: only when an int8 GEMM is asked for (set `gemm` to one later: see enableInt8Gemm)
    if (int8Slices(backend.gemm)) await backend.enableInt8Gemm();
  }
  return backend;
}
