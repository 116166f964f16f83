/// <reference types="@webgpu/types" />
/**
 * The WebGPU runtime under `WebGpuBackend`: the command stream, WGSL pipelines, recorded graphs; device memory
 * is `memory.ts`'s (pools, accounting, when a released block may be reused), kernel code generation `wgsl.ts`'s.
 *
 * Bindings. A kernel's roles are mapped onto the distinct buffers they live in (`wgsl.ts`); pipelines and bind
 * groups are cached by that mapping and by buffer identity (creating a bind group costs ~10 µs through Dawn), so
 * they repeat from one token to the next. Per-dispatch parameters go to 256-byte slots of one uniform buffer
 * bound with a dynamic offset; small host arrays (token ids, cos/sin tables, sequence lengths) go to an upload
 * buffer. Both are written once per submit. No tensor may exceed the adapter's `maxStorageBufferBindingSize`;
 * weight matrices that do are split into row blocks by the backend.
 *
 * Commands. Ops only record dispatches. `flush()` encodes everything recorded into one compute pass (a
 * read's copy ends it), writes the parameter and upload buffers, and submits; `read()` flushes and maps a
 * staging buffer. With `profile`, every dispatch gets its own pass with timestamp queries and the
 * per-kernel GPU time is accumulated.
 */

import { decodeHalf } from '../../tensor/dtype.js';
import { unpackQ8Gpu } from './kernels/q8.js';
import { BUFFER_USAGE, BufRef, DeviceMemory, Store, sizeClass, type MemoryStats, type Pool } from './memory.js';
import { COPY_SPEC, PARAM_SLOT, PARAM_WORDS, type KernelSpec } from './wgsl.js';
import { GpuGraph, encodeGraph, type GraphStep, type RuledUploads } from './graph.js';
import { PipelineCache } from './pipelines.js';
import { traceDevice, traceFromEnv, type GpuCallCounts } from './trace.js';

export { BUFFER_USAGE, BufRef, Store, type MemoryStats, type RowBlock } from './memory.js';
export { COPY_SPEC, PARAM_SLOT, f2u, generateWgsl, packBf16, type KernelSpec } from './wgsl.js';
export { GpuGraph } from './graph.js';

const MAP_READ = 1;

/** an upload of a captured step; `next` (positions, lengths) gives it at later steps, null for the token ids */
interface CapturedUpload {
  off: number;
  len: number;
  next: UploadRule | null;
}
/**
 * What an upload holds `shift[r]` steps after the recorded one (sequence r has advanced that many positions):
 * a step's positions and lengths, so that a recorded step replays at later positions. A function of `shift` alone (the
 * runtime calls a rule shared by several uploads once per step).
 */
export type UploadRule = (shift: readonly number[]) => ArrayLike<number>;

interface Capturing {
  submits: Cmd[][];
  uploads: CapturedUpload[];
  ok: boolean;
}

export interface Dispatch {
  kind: 'dispatch';
  spec: KernelSpec;
  variant: string;
  roles: Store[];
  /** kernel parameters as u32 words (floats already bit-cast) */
  params: number[];
  grid: [number, number, number];
}

interface ReadCopy {
  kind: 'copy';
  src: Store;
  dst: GPUBuffer;
  bytes: number;
}

type Cmd = Dispatch | ReadCopy;

/** one entry of `adapter.info.subgroupMatrixConfigs`: an M×K · K×N → M×N product of one subgroup */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

export interface RuntimeOptions {
  /** cap on the bytes one binding may cover (default: the adapter's limit); tests force splitting with it */
  maxBindingBytes?: number;
  /**
   * cap on the bytes of one block of a KV cache split by sequences (default: the largest binding); tests split
   * caches into several blocks with it while the other tensors still fit their bindings
   */
  maxKvBlockBytes?: number;
  /** cap on the storage buffers one dispatch binds (default: the adapter's limit); tests force gathering with it */
  maxStorageBuffers?: number;
  /** cap on a workgroup's shared memory in bytes (default: the adapter's limit); tests pick the smaller SSD chunk with it */
  maxWorkgroupStorageBytes?: number;
  /** don't use subgroup operations even when the device has them */
  noSubgroups?: boolean;
  /** the adapter's largest subgroup size (sizes the grids of subgroup kernels) */
  subgroupMaxSize?: number;
  /** the adapter's smallest subgroup size (0: unknown); subgroup-matrix kernels need it equal to the largest */
  subgroupMinSize?: number;
  /**
   * the cooperative-matrix shapes the device runs (`adapter.info.subgroupMatrixConfigs`), when it was created with
   * 'chromium-experimental-subgroup-matrix'; empty: none
   */
  subgroupMatrixConfigs?: readonly SubgroupMatrixConfig[];
  /** accumulate per-kernel GPU time with timestamp queries (one pass per dispatch: slower) */
  profile?: boolean;
  /**
   * Submit what is recorded every this many dispatches (outside a step capture), so that the GPU starts on a long
   * recording — a prefill of 250–320 dispatches — while JavaScript records the rest, instead of idling until the
   * read at the end. 0: submit only when something is read or flushed (the behaviour before). Default 48, or
   * MAMBA_TS_WEBGPU_SUBMIT_EVERY — measured on an H100 (session 30, prefill 2048, median of 5): mamba2-130m 30 → 26 ms
   * (63.9k → 76.2k tok/s), llama-130m 85 → 52 ms against 0. Recorded decode steps are one submit either way.
   */
  submitEvery?: number;
  /**
   * Count every WebGPU call made through the device (`trace.ts`: submits, passes, dispatches, writeBuffer calls,
   * read-backs, buffers / bind groups / pipelines created, the JavaScript time of encoding) into `GpuRuntime.trace`.
   * Debug only. Default: MAMBA_TS_WEBGPU_TRACE=1.
   */
  trace?: boolean;
  /**
   * The host side of session 33 (issue 11: the wall time above the GPU time): an early submit (`submitEvery`) writes
   * only the uploads recorded since the last one instead of all of them again (a llama-130m prefill of 2,048 tokens
   * wrote 47 MB through writeBuffer for 12.6 MB of rotary tables, themselves one table uploaded 24 times: now once per
   * submit cycle, `uploadShared`; 0.6 MB in all), and the buffers of recorded steps and chains (graph upload, parameters, staging, the
   * chain's token and position buffers) are kept for reuse instead of created per state and per chain. Same results.
   * false: as before, for comparisons on a GPU. Default true, or MAMBA_TS_WEBGPU_LEAN_HOST=0 for false. Settable later
   * (`GpuRuntime.leanHost`).
   */
  leanHost?: boolean;
  /**
   * Issue 11, a fresh state's first decode step (opt-in, not yet timed on a GPU): a recorded step's plan (`stepPlan`:
   * its dispatches with each binding named as one of the state's stores by index, a block the step made, or a
   * long-lived store) is kept, and a new state of the same shapes gets a graph rebound from it (`rebind`: the state's
   * stores put in, the step's own blocks allocated afresh) instead of running the model code of its first step and
   * reading its result back. Default false, or MAMBA_TS_WEBGPU_REBIND=1. Settable later (`GpuRuntime.rebindSteps`).
   */
  rebindSteps?: boolean;
}

/** where a binding of a recorded step lives, for rebinding the step to another state (GpuRuntime.stepPlan) */
type PlanRole =
  | { k: 'own'; i: number; off: number; len: number; like: StoreFormat }
  | { k: 'fresh'; j: number; off: number; len: number; like: StoreFormat }
  | { k: 'fixed'; store: Store };
/** how a binding's words hold its values (copied, not the store: a plan keeps no state's or step's store alive) */
type StoreFormat = Pick<Store, 'fmt' | 'kv' | 'q8Elems'>;
const formatOf = (s: Store): StoreFormat => ({ fmt: s.fmt, kv: s.kv, q8Elems: s.q8Elems });

/** A recorded step without its blocks: what `GpuRuntime.rebind` builds a graph for another state from. */
export interface StepPlan {
  readonly dispatches: readonly (Omit<Dispatch, 'kind' | 'roles'> & { roles: PlanRole[] })[];
  readonly read: { role: PlanRole; bytes: number };
  readonly up: CapturedUpload;
  readonly rest: readonly CapturedUpload[];
  /** the element counts and formats of the owned stores, in the order `rebind` takes them */
  readonly own: readonly { len: number; fmt: Store['fmt'] }[];
  /** the blocks the step made: pool and elements (allocated afresh by `rebind`) */
  readonly fresh: readonly { pool: Pool; len: number }[];
}

export class GpuRuntime {
  readonly device: GPUDevice;
  readonly maxBinding: number;
  /** the most bytes one block of a KV cache split by sequences holds (WebGpuBackend.kvSplit) */
  readonly maxKvBlock: number;
  readonly chunkBytes: number;
  readonly maxStorageBuffers: number;
  readonly maxWorkgroupStorage: number;
  readonly maxWorkgroupsPerDim: number;
  /** the largest subgroup size, when the device has the 'subgroups' feature (else 0) */
  readonly subgroupMax: number;
  /** the one subgroup size of the device when its smallest and largest agree (else 0) */
  readonly subgroupFixed: number;
  /** subgroup-matrix configurations the device was created with (empty: no cooperative matrices) */
  readonly matrixConfigs: readonly SubgroupMatrixConfig[];
  /** device memory: pools, accounting, block lifetimes */
  readonly mem: DeviceMemory;
  readonly constPool: Pool;
  readonly actPool: Pool;
  /** see DeviceMemory.sidePool */
  readonly sidePool: Pool;
  /** weight matrices only (kernels may bind them with vector element types: see KernelSpec.types) */
  readonly matPool: Pool;
  /** the int8 slices of the int8 GEMM only (bound as array<u32>) */
  readonly packPool: Pool;
  /** 16-bit KV caches only (bound as array<u32>) */
  readonly kvPool: Pool;
  /** a small zero buffer bound for absent optional roles */
  readonly dummy: Store;

  private pending: Cmd[] = [];
  /** what a capture (see `capture`) has seen so far */
  private capturing: Capturing | null = null;
  private readonly kernels: PipelineCache;
  private paramBuf: BufRef;
  private paramBG: GPUBindGroup;
  private readonly upload: BufRef;
  private uploadHost = new Float32Array(1 << 14);
  private uploadLen = 0;
  /** floats of `uploadHost` already written to the upload buffer in this upload cycle (leanHost) */
  private uploadWritten = 0;
  /** upload cycles so far (a flush that is not early starts the next: the upload buffer's contents are then rewritten) */
  private uploadCycle = 0;
  /** host arrays uploaded in this cycle by `uploadShared`, and where */
  private readonly shared = new WeakMap<object, { cycle: number; store: Store }>();
  /** see RuntimeOptions.leanHost */
  leanHost: boolean;
  /** see RuntimeOptions.rebindSteps */
  rebindSteps: boolean;
  /**
   * Buffers of released graphs and finished chains kept for the next ones (leanHost), by use and size: a graph's upload
   * and parameter buffers (BufRefs: the same ids, so the next graph's bind groups are found in the cache), the chains'
   * position tables. Read-back buffers go to `staging`.
   */
  private readonly shelf = new Map<string, BufRef[]>();
  private readonly staging = new Map<number, GPUBuffer[]>();
  private lastError: string | null = null;
  private profile: boolean;
  private querySet: GPUQuerySet | null = null;
  private queryBuf: GPUBuffer | null = null;
  readonly kernelTimes = new Map<string, { ms: number; count: number }>();
  private profileReads: Promise<void>[] = [];
  /** dispatches and submits so far (for benchmarks) */
  readonly counters = { dispatches: 0, submits: 0, gathers: 0, released: 0 };
  /** see RuntimeOptions.submitEvery */
  submitEvery: number;
  /** the WebGPU calls made so far, when created with `trace` (else null) */
  readonly trace: GpuCallCounts | null;
  /** pipelines compiled so far */
  get compiles(): number {
    return this.kernels.compiles;
  }

  constructor(device: GPUDevice, opts: RuntimeOptions = {}) {
    this.device = device;
    this.trace = (opts.trace ?? traceFromEnv()) ? traceDevice(device) : null;
    const lim = device.limits;
    this.maxBinding = Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize, opts.maxBindingBytes ?? Infinity);
    this.maxBinding -= this.maxBinding % 256;
    this.chunkBytes = Math.min(this.maxBinding, 256 << 20);
    this.maxKvBlock = Math.min(this.maxBinding, opts.maxKvBlockBytes ?? Infinity);
    this.maxStorageBuffers = Math.max(2, Math.min(lim.maxStorageBuffersPerShaderStage, opts.maxStorageBuffers ?? Infinity));
    this.maxWorkgroupStorage = Math.min(lim.maxComputeWorkgroupStorageSize, opts.maxWorkgroupStorageBytes ?? Infinity);
    this.maxWorkgroupsPerDim = lim.maxComputeWorkgroupsPerDimension;
    this.subgroupMax = device.features.has('subgroups') && !opts.noSubgroups ? Math.max(1, opts.subgroupMaxSize ?? 128) : 0;
    this.subgroupFixed = this.subgroupMax > 0 && opts.subgroupMinSize === opts.subgroupMaxSize ? this.subgroupMax : 0;
    this.matrixConfigs = this.subgroupMax > 0 && device.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName) ? [...(opts.subgroupMatrixConfigs ?? [])] : [];
    this.profile = !!opts.profile && device.features.has('timestamp-query');
    const envEvery = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.MAMBA_TS_WEBGPU_SUBMIT_EVERY;
    this.submitEvery = opts.submitEvery ?? (envEvery ? Number(envEvery) : 48);
    const envLean = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.MAMBA_TS_WEBGPU_LEAN_HOST;
    if (envLean !== undefined && envLean !== '' && envLean !== '0' && envLean !== '1') throw new Error(`MAMBA_TS_WEBGPU_LEAN_HOST: 1 (the default: uploads written once, step and chain buffers reused) or 0 (as before session 33), got ${JSON.stringify(envLean)}`);
    this.leanHost = opts.leanHost ?? envLean !== '0';
    const envRebind = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.MAMBA_TS_WEBGPU_REBIND;
    if (envRebind !== undefined && envRebind !== '' && envRebind !== '0' && envRebind !== '1') throw new Error(`MAMBA_TS_WEBGPU_REBIND: 1 (a fresh state's first step rebound from a recorded one) or 0 (the default: recorded), got ${JSON.stringify(envRebind)}`);
    this.rebindSteps = opts.rebindSteps ?? envRebind === '1';
    if (!Number.isInteger(this.submitEvery) || this.submitEvery < 0) {
      throw new Error(`webgpu: submitEvery must be a whole number of dispatches ≥ 0 (0: only at reads), got ${opts.submitEvery ?? JSON.stringify(envEvery)}${opts.submitEvery === undefined ? ' (from MAMBA_TS_WEBGPU_SUBMIT_EVERY)' : ''}`);
    }
    device.addEventListener('uncapturederror', (e) => {
      const msg = (e as GPUUncapturedErrorEvent).error.message;
      this.lastError ??= msg;
    });
    this.mem = new DeviceMemory(device, this.maxBinding, this.chunkBytes, () => this.pending.length > 0, this.counters);
    this.constPool = this.mem.constPool;
    this.actPool = this.mem.actPool;
    this.sidePool = this.mem.sidePool;
    this.matPool = this.mem.matPool;
    this.packPool = this.mem.packPool;
    this.kvPool = this.mem.kvPool;
    this.kernels = new PipelineCache(device);
    this.paramBuf = this.newBuffer(PARAM_SLOT * 1024, 'parameters', BUFFER_USAGE.UNIFORM | BUFFER_USAGE.COPY_DST);
    this.paramBG = this.makeParamBG();
    this.upload = this.newBuffer(1 << 16, 'uploads');
    this.dummy = this.alloc(this.constPool, 64);
    device.queue.writeBuffer(this.dummy.ref.gpu, this.dummy.off * 4, new Float32Array(64));
  }

  newBuffer(bytes: number, label: string, usage?: number): BufRef {
    return this.mem.newBuffer(bytes, label, usage);
  }
  /** a GPUBuffer counted in `stats()` */
  createBuffer(desc: GPUBufferDescriptor): GPUBuffer {
    return this.mem.createBuffer(desc);
  }
  destroyBuffer(b: GPUBuffer): void {
    this.mem.destroyBuffer(b);
  }

  /**
   * GPU memory: what the device holds for this runtime (every buffer: the pools' chunks, its own parameter,
   * upload and staging buffers, recorded graphs' buffers) and the high-water mark since creation or
   * `resetPeak()`; how much of the pools tensors use now (live blocks, by size class) and at most; and what the
   * pools keep free for reuse. Pool chunks are never given back to the device, so `peakDeviceBytes` is what a
   * workload needed at its worst.
   */
  stats(): MemoryStats {
    return this.mem.stats();
  }

  /** start a new high-water mark at the current usage */
  resetPeak(): void {
    this.mem.resetPeak();
  }

  /**
   * Give the pools' free dedicated buffers (the large blocks: KV caches, long activations) back to the device, after
   * submitting what is recorded; returns the bytes given back (`stats().deviceBytes` drops by as much). Pool chunks
   * stay; the buffers kept for recorded steps and chains (leanHost) go too. For a long-lived process between workloads
   * of different shapes (a server after a long context, a bench between points); nothing happens during a capture.
   */
  trim(): number {
    this.flush();
    if (this.capturing) return 0;
    let shelved = 0;
    for (const list of this.shelf.values()) for (const b of list) (shelved += b.size), this.destroyBuffer(b.gpu);
    this.shelf.clear();
    return this.mem.trim() + shelved;
  }

  /** a buffer of `bytes` for `use` ('graph upload', 'graph parameters', 'chained positions'): from the shelf (leanHost) or new */
  private fromShelf(use: string, bytes: number, usage: number): BufRef {
    const list = this.leanHost ? this.shelf.get(`${use}|${bytes}`) : undefined;
    if (list && list.length > 0) return list.pop()!;
    return this.newBuffer(bytes, use, usage);
  }
  /** `b` (made by `fromShelf` for `use`) kept for the next user; `counted`: whether its bytes are still in the accounting */
  private toShelf(use: string, b: BufRef, counted: boolean): void {
    if (!this.leanHost) {
      if (counted) this.destroyBuffer(b.gpu);
      else b.gpu.destroy();
      return;
    }
    if (!counted) this.mem.noteDevice(b.size);
    const key = `${use}|${b.size}`;
    const list = this.shelf.get(key) ?? [];
    list.push(b);
    this.shelf.set(key, list);
  }

  private makeParamBG(): GPUBindGroup {
    return this.kernels.paramBindGroup(this.paramBuf);
  }

  /** a fresh store of `elements` floats (contents undefined) */
  alloc(pool: Pool, elements: number, what = 'tensor'): Store {
    return this.mem.alloc(pool, elements, what);
  }

  /** host floats → a new store (written now: the block is not used by any recorded dispatch) */
  fromHost(pool: Pool, data: Float32Array | Uint32Array): Store {
    const s = this.alloc(pool, data.length);
    if (data.length > 0) this.device.queue.writeBuffer(s.ref.gpu, s.off * 4, data.buffer, data.byteOffset, data.byteLength);
    return s;
  }

  /**
   * host floats that only this submit's dispatches read (ids, tables): the upload buffer, written at flush.
   * `next`: how the data follows the positions (see UploadRule), for uploads other than the token ids of a
   * step that is recorded (`capture`).
   */
  uploadData(data: ArrayLike<number>, next: UploadRule | null = null): Store {
    const off = this.uploadLen;
    const need = off + Math.ceil(Math.max(1, data.length) / 64) * 64;
    if (need > this.uploadHost.length) {
      let n = this.uploadHost.length;
      while (n < need) n *= 2;
      const grown = new Float32Array(n);
      grown.set(this.uploadHost.subarray(0, this.uploadLen));
      this.uploadHost = grown;
    }
    this.uploadHost.set(data, off);
    this.uploadLen = need;
    this.capturing?.uploads.push({ off, len: data.length, next });
    return new Store(this.upload, off, data.length);
  }

  /**
   * `uploadData` for a host array that several dispatches of one submit cycle read unchanged (a prefill's rotary
   * table: q and k of every layer): uploaded once per cycle, the same store handed out again while the upload buffer
   * holds it (until a flush that is not early). The caller must not change the array afterwards. During a capture (a
   * recorded step follows its uploads by rules) and with leanHost off it is `uploadData`.
   */
  uploadShared(data: Float32Array, next: UploadRule | null = null): Store {
    if (this.capturing || !this.leanHost) return this.uploadData(data, next);
    const hit = this.shared.get(data);
    if (hit && hit.cycle === this.uploadCycle && hit.store.len === data.length) return hit.store;
    const store = this.uploadData(data, next);
    this.shared.set(data, { cycle: this.uploadCycle, store });
    return store;
  }

  record(d: Omit<Dispatch, 'kind'>): void {
    if (d.grid[0] === 0 || d.grid[1] === 0 || d.grid[2] === 0) return;
    for (const s of d.roles) if (s.blocks) throw new Error(`webgpu: ${d.spec.name} cannot take a matrix split into row blocks`);
    this.pending.push({ kind: 'dispatch', ...d });
    // profiling: two timestamps per dispatch, and a query set holds at most 4,096 — submit what is recorded when
    // full (after the dispatch that may read the latest upload, so the uploads it reads go with it)
    if (this.profile && !this.capturing && this.pending.length >= 2000) this.flush();
    else if (this.submitEvery > 0 && !this.capturing && this.pending.length >= this.submitEvery) this.flush(true);
  }

  /** a 2-D grid of `groups` workgroups that respects maxComputeWorkgroupsPerDimension */
  grid(groups: number): [number, number, number] {
    if (groups <= 0) return [0, 1, 1];
    const x = Math.min(groups, this.maxWorkgroupsPerDim);
    const y = Math.ceil(groups / x);
    if (y > this.maxWorkgroupsPerDim) throw new Error(`webgpu: ${groups} workgroups exceed the dispatch limit`);
    return [x, y, 1];
  }

  // ---- submit and read -------------------------------------------------------------------------

  /**
   * encode and submit everything recorded. `early` (submitEvery): the host uploads stay where they are after the
   * submit — a store handed out by `uploadData` may be read by a dispatch not recorded yet, so the next submit
   * writes them again at the same offsets (queue order keeps each submit's reads of its own uploads); a flush that
   * is not early starts the uploads afresh.
   */
  flush(early = false): void {
    if (this.pending.length === 0) return;
    const t0 = this.trace ? performance.now() : 0;
    // more distinct buffers than the stage allows: gather read-only inputs into one scratch buffer first
    const cmds: Cmd[] = [];
    const scratch: BufRef[] = [];
    for (const c of this.pending) {
      if (c.kind === 'dispatch') cmds.push(...this.fitBindings(c, scratch));
      else cmds.push(c);
    }
    this.pending = [];
    if (this.capturing) {
      this.capturing.submits.push(cmds);
      if (scratch.length > 0) this.capturing.ok = false; // gathers into buffers destroyed after this submit
    }
    const nDispatch = cmds.reduce((a, c) => a + (c.kind === 'dispatch' ? 1 : 0), 0);
    if (nDispatch * PARAM_SLOT > this.paramBuf.size) {
      let size = this.paramBuf.size;
      while (size < nDispatch * PARAM_SLOT) size *= 2;
      this.destroyBuffer(this.paramBuf.gpu);
      this.paramBuf = this.newBuffer(size, 'parameters', BUFFER_USAGE.UNIFORM | BUFFER_USAGE.COPY_DST);
      this.paramBG = this.makeParamBG();
    }
    if (this.uploadLen * 4 > this.upload.size) {
      let size = this.upload.size;
      while (size < this.uploadLen * 4) size *= 2;
      this.destroyBuffer(this.upload.gpu);
      this.upload.renew(this.createBuffer({ size, usage: BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_DST, label: 'uploads' }), size);
      this.uploadWritten = 0; // (a new buffer: everything of this cycle written again)
    }
    const words = new Uint32Array(nDispatch * PARAM_WORDS);
    const enc = this.device.createCommandEncoder();
    let pass: GPUComputePassEncoder | null = null;
    let slot = 0;
    let lastPipe: GPUComputePipeline | null = null;
    let lastBG: GPUBindGroup | null = null;
    const profiled: string[] = [];
    if (this.profile) this.ensureQueries(nDispatch);
    for (const c of cmds) {
      if (c.kind === 'copy') {
        if (pass) pass.end();
        pass = null;
        enc.copyBufferToBuffer(c.src.ref.gpu, c.src.off * 4, c.dst, 0, c.bytes);
        continue;
      }
      const { pipe, bg } = this.kernels.encodeInfo(c.spec, c.variant, c.roles);
      paramWords(c, words, slot);
      if (this.profile) {
        if (pass) pass.end();
        const q = profiled.length * 2;
        pass = enc.beginComputePass({ timestampWrites: { querySet: this.querySet!, beginningOfPassWriteIndex: q, endOfPassWriteIndex: q + 1 } });
        profiled.push(c.spec.name);
        lastPipe = null;
        lastBG = null;
      } else if (!pass) {
        pass = enc.beginComputePass();
        lastPipe = null;
        lastBG = null;
      }
      if (pipe !== lastPipe) pass.setPipeline(pipe);
      if (bg !== lastBG) pass.setBindGroup(0, bg);
      lastPipe = pipe;
      lastBG = bg;
      pass.setBindGroup(1, this.paramBG, [slot * PARAM_SLOT]);
      pass.dispatchWorkgroups(c.grid[0], c.grid[1], c.grid[2]);
      if (this.profile) {
        pass.end();
        pass = null;
      }
      slot++;
    }
    if (pass) pass.end();
    if (this.profile && profiled.length > 0) {
      enc.resolveQuerySet(this.querySet!, 0, profiled.length * 2, this.queryBuf!, 0);
    }
    const q = this.device.queue;
    if (nDispatch > 0) q.writeBuffer(this.paramBuf.gpu, 0, words.buffer, 0, nDispatch * PARAM_SLOT);
    // uploads: those of earlier early submits of this cycle are in the buffer already, at the same offsets (leanHost)
    const from = this.leanHost ? this.uploadWritten : 0;
    if (this.uploadLen > from) q.writeBuffer(this.upload.gpu, from * 4, this.uploadHost.buffer, from * 4, (this.uploadLen - from) * 4);
    this.uploadWritten = this.uploadLen;
    if (!early) {
      this.uploadLen = 0;
      this.uploadWritten = 0;
      this.uploadCycle++;
    }
    let readback: GPUBuffer | null = null;
    if (this.profile && profiled.length > 0) {
      readback = this.getStaging(profiled.length * 16);
      enc.copyBufferToBuffer(this.queryBuf!, 0, readback, 0, profiled.length * 16);
    }
    q.submit([enc.finish()]);
    this.counters.dispatches += nDispatch;
    this.counters.submits++;
    this.mem.afterSubmit();
    for (const s of scratch) this.destroyBuffer(s.gpu); // freed once the submitted work is done
    if (readback) this.profileReads.push(this.collectTimes(readback, profiled));
    if (this.trace) this.trace.encodeMs += performance.now() - t0;
  }

  /** split a dispatch whose roles live in more buffers than a shader stage may bind */
  private fitBindings(c: Dispatch, scratch: BufRef[]): Dispatch[] {
    const distinct = new Set(c.roles.map((s) => s.ref)).size;
    if (distinct <= this.maxStorageBuffers) return [c];
    // move read-only roles of buffers used by nothing else into one scratch buffer (copied by a kernel)
    const written = new Set(c.roles.filter((_s, i) => c.spec.writes.includes(c.spec.roles[i])).map((s) => s.ref));
    const types = c.spec.types?.(c.variant) ?? {};
    const typed = new Set(c.roles.filter((_s, i) => types[c.spec.roles[i]]).map((s) => s.ref));
    const movable = [...new Set(c.roles.map((s) => s.ref))].filter((r) => !written.has(r) && !typed.has(r));
    const m = Math.max(2, distinct - this.maxStorageBuffers + 1); // moving m buffers into one saves m − 1
    if (movable.length < m) {
      throw new Error(`webgpu: ${c.spec.name} needs ${distinct} storage buffers; the adapter allows ${this.maxStorageBuffers}`);
    }
    const move = new Set(movable.slice(0, m));
    const idx = c.roles.map((s, i) => (move.has(s.ref) ? i : -1)).filter((i) => i >= 0);
    let total = 0;
    const offs = idx.map((i) => {
      const o = total;
      total += Math.ceil(c.roles[i].len / 64) * 64 || 64;
      return o;
    });
    const buf = this.newBuffer(total * 4, 'binding scratch');
    this.counters.gathers++;
    scratch.push(buf);
    const out: Dispatch[] = [];
    const roles = [...c.roles];
    idx.forEach((i, k) => {
      const src = c.roles[i];
      const dst = new Store(buf, offs[k], src.len);
      out.push({ kind: 'dispatch', spec: COPY_SPEC, variant: '', roles: [src, dst], params: [src.len], grid: this.grid(Math.ceil(src.len / 256)) });
      roles[i] = dst;
    });
    out.push({ ...c, roles });
    return out;
  }

  /**
   * The pipeline and bind group of a dispatch (compiled and made on first use, then cached), for code that encodes
   * its own passes (bench/webgpu-stream.bench.ts); with `paramWords` and `paramBindGroup` it encodes what `flush` would.
   */
  encodeInfo(d: Omit<Dispatch, 'kind'>): { pipe: GPUComputePipeline; bg: GPUBindGroup } {
    return this.kernels.encodeInfo(d.spec, d.variant, d.roles);
  }
  /** the bind group (group 1 of every pipeline) over parameter slots in `buf`, one slot per dispatch (dynamic offset) */
  paramBindGroup(buf: BufRef): GPUBindGroup {
    return this.kernels.paramBindGroup(buf);
  }

  /**
   * Stores outside the pools that a kernel keeps across steps and a recorded step may write (decodeKernels 'mega':
   * its grid-barrier counters and cross-workgroup scratch, rewritten by every step before they are read)
   */
  readonly persistent = new WeakSet<Store>();

  /** whether a recorded, unsubmitted dispatch writes a block that overlaps any of these stores (by their blocks) */
  pendingWrites(stores: readonly Store[]): boolean {
    const blocks = stores.map((s) => this.blockRange(s));
    return this.pending.some((c) => c.kind === 'dispatch' && c.roles.some((st, i) => {
      if (!c.spec.writes.includes(c.spec.roles[i])) return false;
      const w = this.blockRange(st);
      return blocks.some((b) => b.ref === w.ref && b.off < w.off + w.len && w.off < b.off + b.len);
    }));
  }
  /** the whole block a store lies in (a kernel may write anywhere in its role's block) */
  private blockRange(s: Store): { ref: BufRef; off: number; len: number } {
    const b = s.base ?? s;
    return { ref: b.ref, off: b.off, len: Math.max(b.len, s.off + s.len - b.off) };
  }

  /**
   * Encode and submit one dispatch now, outside the recorded command stream (and outside any capture), with its own
   * parameter buffer; `before` may add copies ahead of it. For one-off work such as decodeKernels 'mega''s probe.
   */
  submitNow(d: Omit<Dispatch, 'kind'> | null, before?: (enc: GPUCommandEncoder) => void, after?: (enc: GPUCommandEncoder) => void): void {
    const enc = this.device.createCommandEncoder();
    before?.(enc);
    let params: BufRef | null = null;
    if (d) {
      params = this.newBuffer(PARAM_SLOT, 'one-off parameters', BUFFER_USAGE.UNIFORM | BUFFER_USAGE.COPY_DST);
      const words = new Uint32Array(PARAM_WORDS);
      paramWords(d, words, 0);
      this.device.queue.writeBuffer(params.gpu, 0, words.buffer, 0, PARAM_SLOT);
      const { pipe, bg } = this.kernels.encodeInfo(d.spec, d.variant, d.roles);
      const pass = enc.beginComputePass();
      pass.setPipeline(pipe);
      pass.setBindGroup(0, bg);
      pass.setBindGroup(1, this.kernels.paramBindGroup(params), [0]);
      pass.dispatchWorkgroups(d.grid[0], d.grid[1], d.grid[2]);
      pass.end();
    }
    after?.(enc);
    this.device.queue.submit([enc.finish()]);
    if (params) this.destroyBuffer(params.gpu); // (destroyed once the submitted work is done)
  }

  /** Return a store's block to its pool now rather than when the collector finds it: see DeviceMemory.release. */
  release(s: Store): void {
    this.mem.release(s);
  }

  // ---- recorded steps ---------------------------------------------------------------------------

  /**
   * Run `step` (which records dispatches and ends with one `read`) and keep what it submitted as a graph
   * that `replay` can submit again without the JavaScript that recorded it: pipelines, bind groups and
   * parameter words are fixed, the intermediate blocks stay reserved by the graph, and only the upload data
   * (the token ids) changes. null graph when the step does not fit that mould: more than one submit (a
   * read-back in the middle, e.g. MoE routing), other than exactly one upload, binding gathers, or profiling.
   */
  async capture<T>(step: () => Promise<T>, own: readonly Store[] = []): Promise<{ result: T; graph: GpuGraph | null }> {
    this.flush();
    const start = this.mem.allocSeq;
    const cap: Capturing = (this.capturing = { submits: [], uploads: [], ok: !this.profile });
    this.mem.hold = []; // blocks released during the capture wait for its end (the graph may bind them)
    let result: T;
    try {
      result = await step();
    } catch (e) {
      this.capturing = null;
      this.mem.endHold();
      throw e;
    }
    this.capturing = null;
    const graph = this.graphOf(cap, start, own);
    if (graph && this.rebindSteps) graph.plan = this.planOf(cap, start, own);
    // the graph's blocks stay reserved while it lives; those released during the capture and not bound by it go back
    if (graph) this.mem.pin(graph, [...graph.steps.flatMap((st) => st.roles), graph.src], graph.upload.size + graph.params.size + graph.staging.size);
    this.mem.endHold();
    return { result, graph };
  }

  /**
   * Give up a recorded graph now (its state was disposed, or a new recording replaced it) instead of when the
   * collector finds it: the blocks it reserved go back to their pools (a disposed state's KV caches too, which
   * `trim` can then give to the device) and its own buffers are destroyed (work already submitted still completes;
   * a staging buffer still being mapped is left to the collector). The graph is never submitted again.
   */
  releaseGraph(g: GpuGraph): void {
    if (g.released) return;
    g.released = true;
    if (!this.mem.unpinNow(g)) return;
    // (unpinNow took the graph's buffers out of the accounting)
    this.toShelf('graph upload', g.upload, false);
    this.toShelf('graph parameters', g.params, false);
    if (g.staging.mapState === 'unmapped') {
      if (this.leanHost) {
        this.mem.noteDevice(g.staging.size);
        this.putStaging(g.staging);
      } else g.staging.destroy();
    }
  }

  /** the graph of a capture, or null when it cannot be replayed (see `capture`) */
  private graphOf(cap: Capturing, start: number, own: readonly Store[]): GpuGraph | null {
    const cmds = cap.submits[0];
    const last = cmds?.[cmds.length - 1];
    const ids = cap.uploads.filter((u) => !u.next);
    if (!cap.ok || cap.submits.length !== 1 || ids.length !== 1 || last?.kind !== 'copy' || cmds.slice(0, -1).some((c) => c.kind === 'copy')) {
      return null;
    }
    // only the step's own work may be in the recording: it writes blocks allocated during it or the stores it
    // owns (its state), and reads those, constants and matrices — any other activation means another caller's
    // dispatches were recorded in between (concurrent use of the backend): then nothing is recorded
    const mine = new Set(own.map((s) => s.base ?? s));
    const fresh = (st: Store) => (st.base ?? st).seq > start || mine.has(st.base ?? st) || st.ref === this.upload || (st.base ?? st) === this.dummy || this.persistent.has(st.base ?? st);
    for (const c of cmds) {
      if (c.kind !== 'dispatch') continue;
      for (let i = 0; i < c.roles.length; i++) {
        const st = c.roles[i];
        const writes = c.spec.writes.includes(c.spec.roles[i]);
        if ((writes || st.ref.pool === 'activations') && !fresh(st)) return null;
      }
    }
    return this.buildGraph(cmds as [...Dispatch[], ReadCopy], ids[0], cap.uploads.filter((u) => u.next));
  }

  /**
   * The plan of a captured step (see RuntimeOptions.rebindSteps), or null when it cannot be rebound: an owned store
   * that is a view or split, or a block made during the step that a dispatch reads before any dispatch writes it (its
   * contents came from the host: a fresh block would not have them).
   */
  private planOf(cap: Capturing, start: number, own: readonly Store[]): StepPlan | null {
    const cmds = cap.submits[0] as [...Dispatch[], ReadCopy];
    if (own.some((s) => s.base || s.blocks)) return null;
    const ownIdx = new Map(own.map((s, i) => [s, i] as const));
    const freshIdx = new Map<Store, number>();
    const fresh: { pool: Pool; len: number }[] = [];
    const role = (st: Store, writes: boolean): PlanRole | null => {
      const b = st.base ?? st;
      const i = ownIdx.get(b);
      if (i !== undefined) return { k: 'own', i, off: st.off - b.off, len: st.len, like: formatOf(st) };
      if (b.seq > start && st.ref !== this.upload && b !== this.dummy && !this.persistent.has(b)) {
        let j = freshIdx.get(b);
        if (j === undefined) {
          const pool = this.mem.poolOf(b);
          if (!pool || !writes) return null; // (read before written: contents from the host)
          freshIdx.set(b, (j = fresh.push({ pool, len: b.len }) - 1));
        }
        return { k: 'fresh', j, off: st.off - b.off, len: st.len, like: formatOf(st) };
      }
      return { k: 'fixed', store: st };
    };
    const read = cmds[cmds.length - 1] as ReadCopy;
    const dispatches: (Omit<Dispatch, 'kind' | 'roles'> & { roles: PlanRole[] })[] = [];
    for (const d of cmds.slice(0, -1) as Dispatch[]) {
      const roles: PlanRole[] = [];
      // (a dispatch that writes a block reads it too, possibly: its written roles count as the first use)
      for (let i = 0; i < d.roles.length; i++) {
        const r = role(d.roles[i], d.spec.writes.includes(d.spec.roles[i]));
        if (!r) return null;
        roles.push(r);
      }
      dispatches.push({ spec: d.spec, variant: d.variant, params: d.params, grid: d.grid, roles });
    }
    const src = role(read.src, false);
    if (!src || src.k === 'fixed') return null;
    const up = cap.uploads.find((u) => !u.next)!; // (graphOf checked: exactly one, the token ids)
    return { dispatches, read: { role: src, bytes: read.bytes }, up, rest: cap.uploads.filter((u) => u.next), own: own.map((s) => ({ len: s.len, fmt: s.fmt })), fresh };
  }

  /**
   * A graph of `plan`'s step for the owned stores `own` (in the plan's order, the same element counts and formats):
   * the step's own blocks allocated afresh (reserved by the graph, back to their pools when it goes). null when the
   * stores do not fit the plan or a long-lived store it binds was released meanwhile (then record the step).
   */
  rebind(plan: StepPlan, own: readonly Store[]): GpuGraph | null {
    if (own.length !== plan.own.length || own.some((s, i) => s.base || s.blocks || s.len !== plan.own[i].len || s.fmt !== plan.own[i].fmt)) return null;
    for (const d of plan.dispatches) for (const r of d.roles) if (r.k === 'fixed' && !this.isLive(r.store)) return null;
    this.flush();
    const made = plan.fresh.map((f) => this.alloc(f.pool, f.len, 'a rebound step\'s block'));
    const put = (r: PlanRole): Store => {
      if (r.k === 'fixed') return r.store;
      const base = r.k === 'own' ? own[r.i] : made[r.j];
      const v = r.off === 0 && r.len === base.len ? base : base.view(r.off, r.len);
      v.fmt = r.like.fmt;
      v.kv = r.like.kv;
      v.q8Elems = r.like.q8Elems;
      return v;
    };
    const cmds: Dispatch[] = plan.dispatches.map((d) => ({ kind: 'dispatch', spec: d.spec, variant: d.variant, params: d.params, grid: d.grid, roles: d.roles.map(put) }));
    const read: ReadCopy = { kind: 'copy', src: put(plan.read.role), dst: null as unknown as GPUBuffer, bytes: plan.read.bytes };
    const graph = this.buildGraph([...cmds, read], plan.up, [...plan.rest]);
    graph.plan = plan;
    this.mem.pin(graph, [...graph.steps.flatMap((st) => st.roles), graph.src], graph.upload.size + graph.params.size + graph.staging.size);
    for (const m of made) this.mem.release(m); // (reserved by the graph: back to the pool when it goes)
    return graph;
  }

  /** a store outside the step that is still allocated (weights, constants: not released), or the runtime's own */
  private isLive(s: Store): boolean {
    const b = s.base ?? s;
    return s.ref === this.upload || b === this.dummy || this.persistent.has(b) || this.mem.isLive(b);
  }

  private buildGraph(cmds: [...Dispatch[], ReadCopy], up: CapturedUpload, rest: CapturedUpload[]): GpuGraph {
    const read = cmds[cmds.length - 1] as ReadCopy;
    const dispatches = cmds.slice(0, -1) as Dispatch[];
    // the graph's upload: the token ids at 0, then the uploads that follow the positions (one contiguous range,
    // which a chain of steps overwrites before each step)
    const idsLen = Math.ceil(Math.max(1, up.len) / 64) * 64;
    const layout = new Map<CapturedUpload, number>([[up, 0]]);
    let total = idsLen;
    for (const u of rest) {
      layout.set(u, total);
      total += Math.ceil(Math.max(1, u.len) / 64) * 64;
    }
    const moved = (s: Store): Store => {
      const u = [up, ...rest].find((c) => s.off >= c.off && s.off < c.off + Math.max(1, c.len));
      if (!u) throw new Error('webgpu: a recorded step binds an upload it did not make');
      return new Store(upload, layout.get(u)! + s.off - u.off, s.len);
    };
    const ruled: RuledUploads | null = rest.length > 0 ? { off: idsLen, len: total - idsLen, parts: rest.map((u) => ({ off: layout.get(u)! - idsLen, next: u.next! })) } : null;
    // the graph's own upload, parameter and staging buffers (the runtime's are rewritten by every submit)
    const upload = this.fromShelf('graph upload', sizeClass(Math.max(256, total * 4)), BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST);
    const params = this.fromShelf('graph parameters', Math.max(1, dispatches.length) * PARAM_SLOT, BUFFER_USAGE.UNIFORM | BUFFER_USAGE.COPY_DST);
    const paramBG = this.kernels.paramBindGroup(params);
    const words = new Uint32Array(dispatches.length * PARAM_WORDS);
    const steps: GraphStep[] = dispatches.map((d, slot) => {
      const roles = d.roles.map((s) => (s.ref === this.upload ? moved(s) : s));
      const { pipe, bg } = this.kernels.encodeInfo(d.spec, d.variant, roles);
      paramWords({ ...d, roles }, words, slot);
      return { pipe, bg, grid: d.grid, roles };
    });
    this.device.queue.writeBuffer(params.gpu, 0, words.buffer, 0, words.byteLength);
    const staging = this.leanHost ? this.getStaging(read.bytes) : this.createBuffer({ size: sizeClass(read.bytes), usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST, label: 'graph staging' });
    return new GpuGraph(steps, paramBG, upload, params, up.len, read.src, read.bytes, staging, ruled);
  }

  /** the position-following uploads of a graph `shift[r]` steps after the recorded one */
  private ruledData(r: RuledUploads, shift: readonly number[], out: Float32Array, at: number): void {
    // a rule is a function of the shift alone: one shared by several uploads (the rotary table of q and k of every
    // layer) is computed once
    const done = new Map<UploadRule, ArrayLike<number>>();
    for (const p of r.parts) {
      let v = done.get(p.next);
      if (!v) done.set(p.next, (v = p.next(shift)));
      out.set(v, at + p.off);
    }
  }

  /**
   * submit a graph again with new upload data (as many numbers as at capture) and read its result; `shift[r]`:
   * how many positions sequence r has advanced since the recorded step (for graphs with uploads that follow the
   * positions: KV-cache lengths, rotary tables)
   */
  async replay(g: GpuGraph, upload: ArrayLike<number>, shift?: readonly number[]): Promise<Float32Array> {
    if (upload.length !== g.uploadLen) throw new Error(`webgpu: a graph recorded with ${g.uploadLen} uploaded numbers replayed with ${upload.length}`);
    this.flush();
    const t0 = this.trace ? performance.now() : 0;
    const q = this.device.queue;
    const data = new Float32Array(g.ruled ? g.ruled.off + g.ruled.len : upload.length);
    data.set(upload);
    if (g.ruled) this.ruledData(g.ruled, needShift(shift), data, g.ruled.off);
    q.writeBuffer(g.upload.gpu, 0, data);
    g.chained = false;
    const enc = this.device.createCommandEncoder();
    encodeGraph(enc, g);
    enc.copyBufferToBuffer(g.src.ref.gpu, g.src.off * 4, g.staging, 0, g.bytes);
    q.submit([enc.finish()]);
    this.counters.dispatches += g.steps.length;
    this.counters.submits++;
    if (this.trace) this.trace.encodeMs += performance.now() - t0;
    try {
      await g.staging.mapAsync(MAP_READ, 0, g.bytes);
    } catch (e) {
      throw this.errorAfter(e);
    }
    const out = new Float32Array(g.staging.getMappedRange(0, g.bytes).slice(0));
    g.staging.unmap();
    if (this.lastError) throw this.errorAfter(null);
    return out;
  }

  /**
   * Greedy decoding with the tokens kept on the device: replay an argmax graph `n` times, each step's argmax
   * copied into the next step's token ids on the GPU (no host round trip between steps, as a CUDA graph
   * replayed in a loop), the ids of every step collected and read back once at the end. [n × ids] floats.
   */
  async replayChain(g: GpuGraph, upload: ArrayLike<number>, n: number, shift?: readonly number[]): Promise<Float32Array> {
    return this.startChain(g, upload, n, shift);
  }

  /**
   * `replayChain` without waiting: the n steps are submitted when this returns, the promise gives their ids.
   * upload null continues from the ids the graph's last chained step left on the device (its picks), so a
   * caller can queue the next chunk before reading this one. `shift[r]`: how many positions sequence r has advanced
   * since the recorded step when this chain's first step runs (graphs whose uploads follow the positions).
   */
  startChain(g: GpuGraph, upload: ArrayLike<number> | null, n: number, shift?: readonly number[]): Promise<Float32Array> {
    if (upload && upload.length !== g.uploadLen) throw new Error(`webgpu: a graph recorded with ${g.uploadLen} uploaded numbers replayed with ${upload.length}`);
    if (g.bytes !== g.uploadLen * 4) throw new Error('webgpu: only a step that reads back its next token ids can be chained');
    if (!upload && !g.chained) throw new Error('webgpu: a chain continued on the device, but the graph\'s last run was not a chain');
    if (!Number.isInteger(n) || n < 1) throw new Error(`webgpu: a chain needs n >= 1 steps, got ${n}`);
    this.flush();
    const t0 = this.trace ? performance.now() : 0;
    const q = this.device.queue;
    if (upload) q.writeBuffer(g.upload.gpu, 0, Float32Array.from(upload));
    g.chained = true;
    // position-following uploads of all n steps, each copied into the graph's upload before its step
    let tableRef: BufRef | null = null;
    const r = g.ruled;
    if (r) {
      const sh = needShift(shift);
      const all = new Float32Array(n * r.len);
      for (let s = 0; s < n; s++) this.ruledData(r, sh.map((x) => x + s), all, s * r.len);
      tableRef = this.fromShelf('chained positions', sizeClass(all.byteLength), BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST);
      q.writeBuffer(tableRef.gpu, 0, all);
    }
    const table = tableRef?.gpu ?? null;
    const out = this.leanHost ? this.getStaging(n * g.bytes) : this.createBuffer({ size: Math.max(4, n * g.bytes), usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST, label: 'chained tokens' });
    for (let s0 = 0; s0 < n; s0 += 16) {
      const enc = this.device.createCommandEncoder();
      for (let s = s0; s < Math.min(n, s0 + 16); s++) {
        if (table && r) enc.copyBufferToBuffer(table, s * r.len * 4, g.upload.gpu, r.off * 4, r.len * 4);
        encodeGraph(enc, g);
        enc.copyBufferToBuffer(g.src.ref.gpu, g.src.off * 4, g.upload.gpu, 0, g.bytes);
        enc.copyBufferToBuffer(g.src.ref.gpu, g.src.off * 4, out, s * g.bytes, g.bytes);
      }
      q.submit([enc.finish()]);
      this.counters.submits++;
    }
    this.counters.dispatches += n * g.steps.length;
    if (this.trace) this.trace.encodeMs += performance.now() - t0;
    return (async () => {
      try {
        await out.mapAsync(MAP_READ, 0, n * g.bytes);
      } catch (e) {
        this.destroyBuffer(out);
        if (table) this.destroyBuffer(table);
        throw this.errorAfter(e);
      }
      const res = new Float32Array(out.getMappedRange(0, n * g.bytes).slice(0));
      if (this.leanHost) {
        out.unmap();
        this.putStaging(out);
      } else this.destroyBuffer(out);
      if (tableRef) this.toShelf('chained positions', tableRef, true);
      if (this.lastError) throw this.errorAfter(null);
      return res;
    })();
  }

  /**
   * Replay a graph once per row of `uploads` (each the step's token ids), nothing read back: the state reads
   * given tokens (teacher forcing) at the speed of recorded steps. `shift[r]`: positions sequence r has advanced
   * since the recorded step when the first of these steps runs (graphs whose uploads follow the positions).
   */
  replayFeed(g: GpuGraph, uploads: readonly ArrayLike<number>[], shift?: readonly number[]): void {
    for (const u of uploads) if (u.length !== g.uploadLen) throw new Error(`webgpu: a graph recorded with ${g.uploadLen} uploaded numbers replayed with ${u.length}`);
    this.flush();
    const t0 = this.trace ? performance.now() : 0;
    const q = this.device.queue;
    g.chained = false;
    const r = g.ruled;
    const sh = r ? needShift(shift) : [];
    for (let i = 0; i < uploads.length; i++) {
      const data = new Float32Array(r ? r.off + r.len : uploads[i].length);
      data.set(uploads[i]);
      if (r) this.ruledData(r, sh.map((x) => x + i), data, r.off);
      q.writeBuffer(g.upload.gpu, 0, data);
      const enc = this.device.createCommandEncoder();
      encodeGraph(enc, g);
      q.submit([enc.finish()]);
      this.counters.submits++;
      this.counters.dispatches += g.steps.length;
    }
    if (this.trace) this.trace.encodeMs += performance.now() - t0;
  }

  private getStaging(bytes: number): GPUBuffer {
    const cls = sizeClass(bytes);
    const list = this.staging.get(cls);
    if (list && list.length > 0) return list.pop()!;
    return this.createBuffer({ size: cls, usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST, label: 'staging' });
  }

  private putStaging(b: GPUBuffer): void {
    const list = this.staging.get(b.size) ?? [];
    list.push(b);
    this.staging.set(b.size, list);
  }

  /** copy a store to the host (flushes everything recorded) */
  async read(s: Store): Promise<Float32Array> {
    if (s.blocks) {
      const parts = await Promise.all(s.blocks.map((b) => this.read(b.store)));
      const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0)); // (16-bit blocks: two values a word)
      let o = 0;
      for (const p of parts) {
        out.set(p, o);
        o += p.length;
      }
      return out;
    }
    const bytes = s.len * 4;
    if (bytes === 0) return new Float32Array(0);
    const staging = this.getStaging(bytes);
    this.pending.push({ kind: 'copy', src: s, dst: staging, bytes });
    // let reads issued in the same turn join this submit
    await Promise.resolve();
    this.flush();
    try {
      await staging.mapAsync(MAP_READ, 0, bytes);
    } catch (e) {
      throw this.errorAfter(e);
    }
    let out: Float32Array = new Float32Array(staging.getMappedRange(0, bytes).slice(0));
    staging.unmap();
    if (s.fmt === 'q8') out = unpackQ8Gpu(new Uint32Array(out.buffer), s.q8Elems);
    else if (s.fmt !== 'f32') out = decodeHalf(new Uint8Array(out.buffer), s.fmt, out.length * 2);
    this.putStaging(staging);
    if (this.lastError) throw this.errorAfter(null);
    return out;
  }

  /** wait for all submitted work (and profile readbacks) */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await Promise.all(this.profileReads);
    this.profileReads = [];
    if (this.lastError) throw this.errorAfter(null);
  }

  private errorAfter(e: unknown): Error {
    const msg = this.lastError ?? (e instanceof Error ? e.message : String(e));
    this.lastError = null;
    return new Error(`webgpu: the device reported an error: ${msg}`);
  }

  private ensureQueries(n: number): void {
    const need = Math.max(2, n * 2);
    if (this.querySet && this.querySet.count >= need) return;
    this.querySet?.destroy();
    if (this.queryBuf) this.destroyBuffer(this.queryBuf);
    let count = 256;
    while (count < need) count *= 2;
    count = Math.min(count, 4096);
    this.querySet = this.device.createQuerySet({ type: 'timestamp', count });
    this.queryBuf = this.createBuffer({ size: count * 8, usage: BUFFER_USAGE.QUERY_RESOLVE | BUFFER_USAGE.COPY_SRC });
  }

  private async collectTimes(buf: GPUBuffer, names: string[]): Promise<void> {
    await buf.mapAsync(MAP_READ, 0, names.length * 16);
    const t = new BigUint64Array(buf.getMappedRange(0, names.length * 16).slice(0));
    buf.unmap();
    this.putStaging(buf);
    names.forEach((n, i) => {
      const ms = Number(t[2 * i + 1] - t[2 * i]) / 1e6;
      const e = this.kernelTimes.get(n) ?? { ms: 0, count: 0 };
      e.ms += ms;
      e.count++;
      this.kernelTimes.set(n, e);
    });
  }

  /** turn per-kernel timing on or off (the device needs 'timestamp-query': create it with `profile`) */
  setProfiling(on: boolean): void {
    if (on && !this.device.features.has('timestamp-query')) throw new Error('webgpu: profiling needs the timestamp-query feature (create the backend with profile: true)');
    this.profile = on;
  }

  destroy(): void {
    this.pending = [];
    this.device.destroy();
  }
}


/** a dispatch's parameter slot: its roles' offsets, then its parameters, at slot `slot` of `words` */
export function paramWords(d: Pick<Dispatch, 'spec' | 'roles' | 'params'>, words: Uint32Array, slot: number): void {
  const base = slot * PARAM_WORDS;
  if (d.roles.length + d.params.length > PARAM_WORDS) throw new Error(`webgpu: ${d.spec.name} has too many parameters`);
  d.roles.forEach((s, i) => (words[base + i] = s.off));
  for (let i = 0; i < d.params.length; i++) words[base + d.roles.length + i] = d.params[i];
}

function needShift(shift: readonly number[] | undefined): readonly number[] {
  if (!shift) throw new Error('webgpu: this recorded step follows the positions (KV cache): replay it with how far each sequence has advanced');
  return shift;
}
