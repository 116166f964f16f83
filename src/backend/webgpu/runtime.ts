/// <reference types="@webgpu/types" />
/**
 * The WebGPU runtime under `WebGpuBackend`: device memory, WGSL pipelines, and the command stream.
 *
 * Memory. Tensors live in a few large GPUBuffers ("chunks") and are addressed by element offsets that
 * kernels receive as parameters, so a kernel binds whole buffers and the bind groups repeat from one
 * token to the next (they are cached by buffer identity; creating one costs ~10 µs through Dawn).
 * Allocation is by size class from two pools (constants from the host, activations); a block returns to
 * its pool when the last tensor holding its storage is garbage-collected (FinalizationRegistry). Blocks
 * that a recorded but unsubmitted dispatch uses are held by that dispatch, so reuse never races with it.
 * Allocations larger than half a chunk get a buffer of their own. No tensor may exceed the adapter's
 * `maxStorageBufferBindingSize`; weight matrices that do are split into row blocks by the backend.
 *
 * Bindings. WebGPU forbids binding one buffer twice when either binding is writable, so a kernel's
 * tensor roles (x, w, y, …) are mapped onto the distinct buffers they live in; the WGSL is generated per
 * mapping (`$x[o_x + i]` becomes `b0[o_x + i]`) and cached. Per-dispatch parameters (role offsets, sizes,
 * flags) go to 256-byte slots of one uniform buffer bound with a dynamic offset; small host arrays (token
 * ids, cos/sin tables, sequence lengths) go to an upload buffer. Both are written once per submit.
 *
 * Commands. Ops only record dispatches. `flush()` encodes everything recorded into one compute pass (a
 * read's copy ends it), writes the parameter and upload buffers, and submits; `read()` flushes and maps a
 * staging buffer. With `profile`, every dispatch gets its own pass with timestamp queries and the
 * per-kernel GPU time is accumulated.
 */

import { decodeHalf, f32ToBf16 } from '../../tensor/dtype.js';

export const BUFFER_USAGE = { MAP_READ: 1, COPY_SRC: 4, COPY_DST: 8, UNIFORM: 64, STORAGE: 128, QUERY_RESOLVE: 512 } as const;
const STAGE_COMPUTE = 4;
const MAP_READ = 1;
/** bytes of parameters per dispatch (one uniform slot) */
export const PARAM_SLOT = 256;
const PARAM_WORDS = PARAM_SLOT / 4;

/** A GPUBuffer with a stable id (bind groups are cached by ids). */
export class BufRef {
  private static next = 1;
  id: number;
  /** a buffer of the matrix pool: holds weight matrices only */
  matrices = false;
  /** the pool whose blocks this buffer holds ('' for the runtime's own buffers) */
  pool: 'constants' | 'activations' | 'matrices' | '' = '';
  constructor(public gpu: GPUBuffer, public size: number) {
    this.id = BufRef.next++;
  }
  renew(gpu: GPUBuffer, size: number): void {
    this.gpu = gpu;
    this.size = size;
    this.id = BufRef.next++;
  }
}

/** A block of a pool (the same object each time the block is handed out again). */
interface Alloc {
  ref: BufRef;
  /** byte offset in ref */
  byteOff: number;
  cls: number;
  pool: Pool;
  /** recorded graphs that bind the block: it stays reserved while any lives */
  pins?: number;
  /** released by its tensor while pinned: back to the pool when the last graph goes */
  freed?: boolean;
}

/** One row block of a weight matrix split to fit the binding limit. */
export interface RowBlock {
  r0: number;
  r1: number;
  store: Store;
}

/** What a webgpu Tensor's `storage` is: a range of elements of a buffer (or, for a split matrix, its row blocks). */
export class Store {
  constructor(
    readonly ref: BufRef,
    /** element offset */
    readonly off: number,
    /** elements */
    readonly len: number,
    /** the store whose block this view lies in (kept alive by the view) */
    readonly base: Store | null = null,
    readonly blocks: RowBlock[] | null = null,
  ) {}

  /**
   * How the words hold a matrix: 'f32', or 'bf16' (two weights per u32, weight 2i in the low half; `len` and
   * `off` count u32 words). Only weight matrices in the matrix pool are bf16.
   */
  fmt: 'f32' | 'bf16' = 'f32';
  /** allocation order (GpuRuntime.alloc), so that a capture can tell blocks allocated during it */
  seq = 0;

  /** a view of `len` elements starting `off` elements into this one */
  view(off: number, len: number): Store {
    return new Store(this.ref, this.off + off, len, this.base ?? this);
  }
}

/** size classes: 256 B, then four steps per power of two (waste ≤ 25%) */
function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 64) * 64);
  const p = 2 ** Math.floor(Math.log2(b));
  if (p === b || p < 1024) return p === b ? b : Math.ceil(b / 64) * 64;
  const step = p / 4;
  return Math.ceil(b / step) * step;
}

class Pool {
  private readonly free = new Map<number, Alloc[]>();
  private cur: BufRef | null = null;
  private bump = 0;
  private total = 0;
  /** bytes of blocks in the free lists */
  freeBytes = 0;
  constructor(private readonly rt: GpuRuntime, private readonly label: string, private readonly matrices = false) {}

  private newBuffer(bytes: number, label: string): BufRef {
    const ref = this.rt.newBuffer(bytes, label);
    ref.matrices = this.matrices;
    ref.pool = this.label as BufRef['pool'];
    return ref;
  }

  alloc(bytes: number): Alloc {
    const cls = sizeClass(bytes);
    this.rt.noteLive(cls);
    const list = this.free.get(cls);
    if (list && list.length > 0) {
      this.freeBytes -= cls;
      return list.pop()!;
    }
    const maxChunk = this.rt.chunkBytes;
    if (cls > maxChunk / 2) {
      this.total += cls;
      return { ref: this.newBuffer(cls, `${this.label} (dedicated)`), byteOff: 0, cls, pool: this };
    }
    if (!this.cur || this.bump + cls > this.cur.size) {
      // chunks grow with use: small models keep small buffers
      let size = 4 << 20;
      while (size < Math.min(maxChunk, Math.max(cls, this.total / 2))) size *= 2;
      size = Math.min(size, maxChunk);
      this.cur = this.newBuffer(size, `${this.label} chunk`);
      this.bump = 0;
      this.total += size;
    }
    const a: Alloc = { ref: this.cur, byteOff: this.bump, cls, pool: this };
    this.bump += cls;
    return a;
  }

  release(a: Alloc): void {
    this.rt.noteLive(-a.cls);
    this.freeBytes += a.cls;
    let list = this.free.get(a.cls);
    if (!list) this.free.set(a.cls, (list = []));
    list.push(a);
  }

  /** bytes of this pool's buffers (chunks and dedicated buffers) */
  get bytes(): number {
    return this.total;
  }
}

/** A kernel: its WGSL (a function of a variant key) and its tensor roles, in the order dispatches pass them. */
export interface KernelSpec {
  name: string;
  roles: readonly string[];
  /** roles the kernel writes */
  writes: readonly string[];
  /**
   * WGSL after the generated prelude: uses `$role[...]` for the role's array, `o_role` for its element
   * offset (set by `init_offsets()`, to be called first), `pu(PK + i)` / `pf(PK + i)` for its i-th
   * parameter, and `lin(wg, nw)` for a linear workgroup index over a 2-D grid.
   */
  wgsl: (variant: string) => string;
  /**
   * WGSL element types of roles that are not `f32` (e.g. `vec4<f32>` for vectorized weight loads, `vec4<u32>`
   * for packed bf16 weights), by variant. A typed role must be the only role bound to its buffer (weight
   * matrices live in the matrix pool for that reason); its offset is still in 4-byte words.
   */
  types?: (variant: string) => Readonly<Record<string, string>>;
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

const f32scratch = new Float32Array(1);
const u32scratch = new Uint32Array(f32scratch.buffer);
/** the bits of a float32, as a u32 parameter word */
export function f2u(x: number): number {
  f32scratch[0] = x;
  return u32scratch[0];
}

/** GpuRuntime.stats() */
export interface MemoryStats {
  /** bytes of GPU buffers the runtime holds now */
  deviceBytes: number;
  /** the most `deviceBytes` since the runtime was created or `resetPeak()` */
  peakDeviceBytes: number;
  /** GPU buffers created so far */
  buffersCreated: number;
  /** bytes of the pools' buffers (chunks and dedicated buffers: what tensors are carved from) */
  poolBytes: number;
  /** bytes of pool blocks in use now (tensors, backend scratch, blocks recorded graphs reserve) */
  liveBytes: number;
  /** the most `liveBytes` since the runtime was created or `resetPeak()` */
  peakLiveBytes: number;
  /** bytes of pool blocks free for reuse */
  freeBytes: number;
}

export interface RuntimeOptions {
  /** cap on the bytes one binding may cover (default: the adapter's limit); tests force splitting with it */
  maxBindingBytes?: number;
  /** cap on the storage buffers one dispatch binds (default: the adapter's limit); tests force gathering with it */
  maxStorageBuffers?: number;
  /** don't use subgroup operations even when the device has them */
  noSubgroups?: boolean;
  /** the adapter's largest subgroup size (sizes the grids of subgroup kernels) */
  subgroupMaxSize?: number;
  /** accumulate per-kernel GPU time with timestamp queries (one pass per dispatch: slower) */
  profile?: boolean;
}

export class GpuRuntime {
  readonly device: GPUDevice;
  readonly maxBinding: number;
  readonly chunkBytes: number;
  readonly maxStorageBuffers: number;
  readonly maxWorkgroupStorage: number;
  readonly maxWorkgroupsPerDim: number;
  /** the largest subgroup size, when the device has the 'subgroups' feature (else 0) */
  readonly subgroupMax: number;
  readonly constPool: Pool;
  readonly actPool: Pool;
  /** weight matrices only (kernels may bind them with vector element types: see KernelSpec.types) */
  readonly matPool: Pool;
  /** a small zero buffer bound for absent optional roles */
  readonly dummy: Store;

  private pending: Cmd[] = [];
  /** what a capture (see `capture`) has seen so far */
  private capturing: { submits: Cmd[][]; uploads: { off: number; len: number }[]; ok: boolean; released: Alloc[] } | null = null;
  /** strong references to what the last submits used, until they are done */
  private readonly registry: FinalizationRegistry<Alloc>;
  /** unpins the blocks of a recorded graph that was garbage-collected (see `pin`) */
  private readonly graphRegistry: FinalizationRegistry<{ blocks: Alloc[]; bytes: number }>;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly layouts = new Map<string, { bgl: GPUBindGroupLayout; pl: GPUPipelineLayout }>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly paramLayout: GPUBindGroupLayout;
  private paramBuf: BufRef;
  private paramBG: GPUBindGroup;
  private readonly upload: BufRef;
  private uploadHost = new Float32Array(1 << 14);
  private uploadLen = 0;
  private readonly staging = new Map<number, GPUBuffer[]>();
  private lastError: string | null = null;
  private profile: boolean;
  private querySet: GPUQuerySet | null = null;
  private queryBuf: GPUBuffer | null = null;
  readonly kernelTimes = new Map<string, { ms: number; count: number }>();
  private profileReads: Promise<void>[] = [];
  /** dispatches and submits so far (for benchmarks) */
  readonly counters = { dispatches: 0, submits: 0, gathers: 0, released: 0 };
  /** pipelines compiled so far */
  compiles = 0;
  private allocSeq = 0;
  /** the block of each store allocated here and not released yet (for explicit release) */
  private readonly allocs = new WeakMap<Store, Alloc>();
  /** the block of each store allocated here, released or not (for pinning by graphs) */
  private readonly blockOf = new WeakMap<Store, Alloc>();
  /**
   * Constant and matrix blocks released while recorded dispatches may still use them: back to their pools
   * after the next submit (`fromHost` writes a fresh block at once, with queue.writeBuffer, which would run
   * before the recorded dispatches).
   */
  private deferred: Alloc[] = [];

  constructor(device: GPUDevice, opts: RuntimeOptions = {}) {
    this.device = device;
    const lim = device.limits;
    this.maxBinding = Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize, opts.maxBindingBytes ?? Infinity);
    this.maxBinding -= this.maxBinding % 256;
    this.chunkBytes = Math.min(this.maxBinding, 256 << 20);
    this.maxStorageBuffers = Math.max(2, Math.min(lim.maxStorageBuffersPerShaderStage, opts.maxStorageBuffers ?? Infinity));
    this.maxWorkgroupStorage = lim.maxComputeWorkgroupStorageSize;
    this.maxWorkgroupsPerDim = lim.maxComputeWorkgroupsPerDimension;
    this.subgroupMax = device.features.has('subgroups') && !opts.noSubgroups ? Math.max(1, opts.subgroupMaxSize ?? 128) : 0;
    this.profile = !!opts.profile && device.features.has('timestamp-query');
    device.addEventListener('uncapturederror', (e) => {
      const msg = (e as GPUUncapturedErrorEvent).error.message;
      this.lastError ??= msg;
    });
    this.registry = new FinalizationRegistry((a: Alloc) => this.free(a));
    this.graphRegistry = new FinalizationRegistry((h: { blocks: Alloc[]; bytes: number }) => this.unpin(h));
    this.constPool = new Pool(this, 'constants');
    this.actPool = new Pool(this, 'activations');
    this.matPool = new Pool(this, 'matrices', true);
    this.paramLayout = device.createBindGroupLayout({
      entries: [{ binding: 0, visibility: STAGE_COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: PARAM_SLOT } }],
    });
    this.paramBuf = this.newBuffer(PARAM_SLOT * 1024, 'parameters', BUFFER_USAGE.UNIFORM | BUFFER_USAGE.COPY_DST);
    this.paramBG = this.makeParamBG();
    this.upload = this.newBuffer(1 << 16, 'uploads');
    this.dummy = this.alloc(this.constPool, 64);
    device.queue.writeBuffer(this.dummy.ref.gpu, this.dummy.off * 4, new Float32Array(64));
  }

  newBuffer(bytes: number, label: string, usage: number = BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST): BufRef {
    if (bytes > this.device.limits.maxBufferSize) throw new Error(`webgpu: a buffer of ${bytes} bytes exceeds the device's maxBufferSize (${this.device.limits.maxBufferSize})`);
    return new BufRef(this.createBuffer({ size: bytes, usage, label }), bytes);
  }

  // ---- memory accounting ------------------------------------------------------------------------

  private readonly mem = { device: 0, peakDevice: 0, buffers: 0, live: 0, peakLive: 0 };

  /** every GPUBuffer of the runtime is created here (counted in `stats()`) */
  createBuffer(desc: GPUBufferDescriptor): GPUBuffer {
    const b = this.device.createBuffer(desc);
    this.mem.buffers++;
    this.mem.device += desc.size;
    if (this.mem.device > this.mem.peakDevice) this.mem.peakDevice = this.mem.device;
    return b;
  }

  /** destroy a buffer made by `createBuffer` */
  destroyBuffer(b: GPUBuffer): void {
    this.mem.device -= b.size;
    b.destroy();
  }

  /** a pool block of `bytes` was handed out (negative: returned) */
  noteLive(bytes: number): void {
    this.mem.live += bytes;
    if (this.mem.live > this.mem.peakLive) this.mem.peakLive = this.mem.live;
  }

  /**
   * GPU memory: what the device holds for this runtime (every buffer: the pools' chunks, its own parameter,
   * upload and staging buffers, recorded graphs' buffers) and the high-water mark since creation or
   * `resetPeak()`; how much of the pools tensors use now (live blocks, by size class) and at most; and what the
   * pools keep free for reuse. Pool chunks are never given back to the device, so `peakDeviceBytes` is what a
   * workload needed at its worst.
   */
  stats(): MemoryStats {
    const pools = [this.constPool, this.actPool, this.matPool];
    return {
      deviceBytes: this.mem.device,
      peakDeviceBytes: this.mem.peakDevice,
      buffersCreated: this.mem.buffers,
      poolBytes: pools.reduce((a, p) => a + p.bytes, 0),
      liveBytes: this.mem.live,
      peakLiveBytes: this.mem.peakLive,
      freeBytes: pools.reduce((a, p) => a + p.freeBytes, 0),
    };
  }

  /** start a new high-water mark at the current usage */
  resetPeak(): void {
    this.mem.peakDevice = this.mem.device;
    this.mem.peakLive = this.mem.live;
  }

  private makeParamBG(): GPUBindGroup {
    return this.device.createBindGroup({ layout: this.paramLayout, entries: [{ binding: 0, resource: { buffer: this.paramBuf.gpu, offset: 0, size: PARAM_SLOT } }] });
  }

  /** a fresh store of `elements` floats (contents undefined) */
  alloc(pool: Pool, elements: number, what = 'tensor'): Store {
    const bytes = Math.max(4, elements * 4);
    if (bytes > this.maxBinding) {
      throw new Error(`webgpu: ${what} of ${elements} floats (${bytes} bytes) exceeds the largest buffer binding the adapter allows (${this.maxBinding} bytes); use a shorter sequence or a smaller batch`);
    }
    const a = pool.alloc(bytes);
    const s = new Store(a.ref, a.byteOff / 4, elements);
    s.seq = ++this.allocSeq;
    this.registry.register(s, a, s);
    this.allocs.set(s, a);
    this.blockOf.set(s, a);
    return s;
  }

  /** host floats → a new store (written now: the block is not used by any recorded dispatch) */
  fromHost(pool: Pool, data: Float32Array | Uint32Array): Store {
    const s = this.alloc(pool, data.length);
    if (data.length > 0) this.device.queue.writeBuffer(s.ref.gpu, s.off * 4, data.buffer, data.byteOffset, data.byteLength);
    return s;
  }

  /** host floats that only this submit's dispatches read (ids, tables): the upload buffer, written at flush */
  uploadData(data: ArrayLike<number>): Store {
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
    this.capturing?.uploads.push({ off, len: data.length });
    return new Store(this.upload, off, data.length);
  }

  record(d: Omit<Dispatch, 'kind'>): void {
    if (d.grid[0] === 0 || d.grid[1] === 0 || d.grid[2] === 0) return;
    for (const s of d.roles) if (s.blocks) throw new Error(`webgpu: ${d.spec.name} cannot take a matrix split into row blocks`);
    this.pending.push({ kind: 'dispatch', ...d });
  }

  /** a 2-D grid of `groups` workgroups that respects maxComputeWorkgroupsPerDimension */
  grid(groups: number): [number, number, number] {
    if (groups <= 0) return [0, 1, 1];
    const x = Math.min(groups, this.maxWorkgroupsPerDim);
    const y = Math.ceil(groups / x);
    if (y > this.maxWorkgroupsPerDim) throw new Error(`webgpu: ${groups} workgroups exceed the dispatch limit`);
    return [x, y, 1];
  }

  // ---- pipelines and bind groups ----------------------------------------------------------------

  private layoutFor(modes: string): { bgl: GPUBindGroupLayout; pl: GPUPipelineLayout } {
    let l = this.layouts.get(modes);
    if (!l) {
      const bgl = this.device.createBindGroupLayout({
        entries: [...modes].map((m, j) => ({ binding: j, visibility: STAGE_COMPUTE, buffer: { type: m === 'w' ? 'storage' : 'read-only-storage' } as GPUBufferBindingLayout })),
      });
      const pl = this.device.createPipelineLayout({ bindGroupLayouts: [bgl, this.paramLayout] });
      l = { bgl, pl };
      this.layouts.set(modes, l);
    }
    return l;
  }

  private pipeline(spec: KernelSpec, variant: string, map: number[], modes: string): GPUComputePipeline {
    const key = `${spec.name}|${variant}|${map.join(',')}|${modes}`;
    let p = this.pipelines.get(key);
    if (!p) {
      const code = generateWgsl(spec, variant, map, modes);
      this.compiles++;
      const module = this.device.createShaderModule({ code, label: `${spec.name}(${variant})` });
      p = this.device.createComputePipeline({ layout: this.layoutFor(modes).pl, compute: { module, entryPoint: 'main' }, label: `${spec.name}(${variant})` });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** the pipeline and bind group of a dispatch: its roles mapped onto the distinct buffers they live in */
  private encodeInfo(spec: KernelSpec, variant: string, roles: readonly Store[]): { pipe: GPUComputePipeline; bg: GPUBindGroup } {
    const bufs: BufRef[] = [];
    const map = roles.map((s) => {
      let j = bufs.indexOf(s.ref);
      if (j < 0) j = bufs.push(s.ref) - 1;
      return j;
    });
    const modes = bufs.map((_, j) => (roles.some((_s, i) => map[i] === j && spec.writes.includes(spec.roles[i])) ? 'w' : 'r')).join('');
    return { pipe: this.pipeline(spec, variant, map, modes), bg: this.bindGroup(modes, bufs) };
  }

  private bindGroup(modes: string, bufs: BufRef[]): GPUBindGroup {
    const key = `${modes}|${bufs.map((b) => b.id).join(',')}`;
    let g = this.bindGroups.get(key);
    if (!g) {
      g = this.device.createBindGroup({ layout: this.layoutFor(modes).bgl, entries: bufs.map((b, j) => ({ binding: j, resource: { buffer: b.gpu } })) });
      this.bindGroups.set(key, g);
    }
    return g;
  }

  // ---- submit and read -------------------------------------------------------------------------

  /** encode and submit everything recorded */
  flush(): void {
    if (this.pending.length === 0) return;
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
      const { pipe, bg } = this.encodeInfo(c.spec, c.variant, c.roles);
      const base = slot * PARAM_WORDS;
      c.roles.forEach((s, i) => (words[base + i] = s.off));
      if (c.roles.length + c.params.length > PARAM_WORDS) throw new Error(`webgpu: ${c.spec.name} has too many parameters`);
      for (let i = 0; i < c.params.length; i++) words[base + c.roles.length + i] = c.params[i];
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
    if (this.uploadLen > 0) q.writeBuffer(this.upload.gpu, 0, this.uploadHost.buffer, 0, this.uploadLen * 4);
    this.uploadLen = 0;
    let readback: GPUBuffer | null = null;
    if (this.profile && profiled.length > 0) {
      readback = this.getStaging(profiled.length * 16);
      enc.copyBufferToBuffer(this.queryBuf!, 0, readback, 0, profiled.length * 16);
    }
    q.submit([enc.finish()]);
    this.counters.dispatches += nDispatch;
    this.counters.submits++;
    for (const a of this.deferred) a.pool.release(a);
    this.deferred = [];
    for (const s of scratch) this.destroyBuffer(s.gpu); // freed once the submitted work is done
    if (readback) this.profileReads.push(this.collectTimes(readback, profiled));
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
   * Return a store's block to its pool now rather than when the collector finds it (explicit lifetimes). Only
   * whole allocations (not views, not split matrices); the caller guarantees that nothing uses the storage
   * afterwards (the tensor layer counts the tensors that share it). Safe with work already recorded:
   * - an activation block is free for reuse at once: only dispatches write activations, and a dispatch recorded
   *   later runs later (dispatches of a pass, and submits, run in order), so it cannot overwrite what an earlier
   *   one still reads;
   * - constant and matrix blocks wait for the next submit (`deferred`);
   * - a block that a recorded graph binds stays reserved until the last such graph is collected (`pin`), and a
   *   release during a capture waits for the capture to end (the graph it builds may bind the block).
   */
  release(s: Store): void {
    const a = this.allocs.get(s);
    if (!a || s.base || s.blocks) return;
    this.allocs.delete(s);
    this.registry.unregister(s);
    this.counters.released++;
    this.free(a);
  }

  /** a released block back to its pool, when it can be (see `release`) */
  private free(a: Alloc): void {
    if (a.pins) a.freed = true;
    else if (this.capturing) this.capturing.released.push(a);
    else if (a.pool === this.actPool || this.pending.length === 0) a.pool.release(a);
    else this.deferred.push(a);
  }

  /** reserve the blocks a graph binds while it lives */
  private pin(g: GpuGraph): void {
    const blocks = new Set<Alloc>();
    const add = (st: Store) => {
      const a = this.blockOf.get(st.base ?? st);
      if (a) blocks.add(a);
    };
    for (const step of g.steps) step.roles.forEach(add);
    add(g.src);
    for (const a of blocks) a.pins = (a.pins ?? 0) + 1;
    const held = { blocks: [...blocks], bytes: g.upload.size + g.params.size + g.staging.size };
    this.graphRegistry.register(g, held, g);
  }

  private unpin(h: { blocks: Alloc[]; bytes: number }): void {
    this.mem.device -= h.bytes; // the graph's own buffers went with it
    for (const a of h.blocks) {
      a.pins!--;
      if (a.pins === 0 && a.freed) {
        a.freed = false;
        this.free(a);
      }
    }
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
    const start = this.allocSeq;
    const cap = (this.capturing = { submits: [] as Cmd[][], uploads: [] as { off: number; len: number }[], ok: !this.profile, released: [] as Alloc[] });
    let result: T;
    try {
      result = await step();
    } catch (e) {
      this.capturing = null;
      for (const a of cap.released) this.free(a);
      throw e;
    }
    this.capturing = null;
    const graph = this.graphOf(cap, start, own);
    if (graph) this.pin(graph);
    // blocks released during the capture: reserved by the graph where it binds them, else back to their pools
    for (const a of cap.released) this.free(a);
    return { result, graph };
  }

  /** the graph of a capture, or null when it cannot be replayed (see `capture`) */
  private graphOf(cap: { submits: Cmd[][]; uploads: { off: number; len: number }[]; ok: boolean }, start: number, own: readonly Store[]): GpuGraph | null {
    const cmds = cap.submits[0];
    const last = cmds?.[cmds.length - 1];
    if (!cap.ok || cap.submits.length !== 1 || cap.uploads.length !== 1 || last?.kind !== 'copy' || cmds.slice(0, -1).some((c) => c.kind === 'copy')) {
      return null;
    }
    // only the step's own work may be in the recording: it writes blocks allocated during it or the stores it
    // owns (its state), and reads those, constants and matrices — any other activation means another caller's
    // dispatches were recorded in between (concurrent use of the backend): then nothing is recorded
    const mine = new Set(own.map((s) => s.base ?? s));
    const fresh = (st: Store) => (st.base ?? st).seq > start || mine.has(st.base ?? st) || st.ref === this.upload || (st.base ?? st) === this.dummy;
    for (const c of cmds) {
      if (c.kind !== 'dispatch') continue;
      for (let i = 0; i < c.roles.length; i++) {
        const st = c.roles[i];
        const writes = c.spec.writes.includes(c.spec.roles[i]);
        if ((writes || st.ref.pool === 'activations') && !fresh(st)) return null;
      }
    }
    return this.buildGraph(cmds as [...Dispatch[], ReadCopy], cap.uploads[0]);
  }

  private buildGraph(cmds: [...Dispatch[], ReadCopy], up: { off: number; len: number }): GpuGraph {
    const read = cmds[cmds.length - 1] as ReadCopy;
    const dispatches = cmds.slice(0, -1) as Dispatch[];
    // the graph's own upload, parameter and staging buffers (the runtime's are rewritten by every submit)
    const upload = this.newBuffer(Math.max(256, Math.ceil(up.len / 64) * 256), 'graph upload');
    const params = this.newBuffer(Math.max(1, dispatches.length) * PARAM_SLOT, 'graph parameters', BUFFER_USAGE.UNIFORM | BUFFER_USAGE.COPY_DST);
    const paramBG = this.device.createBindGroup({ layout: this.paramLayout, entries: [{ binding: 0, resource: { buffer: params.gpu, offset: 0, size: PARAM_SLOT } }] });
    const words = new Uint32Array(dispatches.length * PARAM_WORDS);
    const steps: GraphStep[] = dispatches.map((d, slot) => {
      const roles = d.roles.map((s) => (s.ref === this.upload ? new Store(upload, s.off - up.off, s.len) : s));
      const { pipe, bg } = this.encodeInfo(d.spec, d.variant, roles);
      roles.forEach((s, i) => (words[slot * PARAM_WORDS + i] = s.off));
      d.params.forEach((v, i) => (words[slot * PARAM_WORDS + roles.length + i] = v));
      return { pipe, bg, grid: d.grid, roles };
    });
    this.device.queue.writeBuffer(params.gpu, 0, words.buffer, 0, words.byteLength);
    const staging = this.createBuffer({ size: sizeClass(read.bytes), usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST, label: 'graph staging' });
    return new GpuGraph(steps, paramBG, upload, params, up.len, read.src, read.bytes, staging);
  }

  /** submit a graph again with new upload data (as many numbers as at capture) and read its result */
  async replay(g: GpuGraph, upload: ArrayLike<number>): Promise<Float32Array> {
    if (upload.length !== g.uploadLen) throw new Error(`webgpu: a graph recorded with ${g.uploadLen} uploaded numbers replayed with ${upload.length}`);
    this.flush();
    const q = this.device.queue;
    q.writeBuffer(g.upload.gpu, 0, Float32Array.from(upload));
    const enc = this.device.createCommandEncoder();
    encodeGraph(enc, g);
    enc.copyBufferToBuffer(g.src.ref.gpu, g.src.off * 4, g.staging, 0, g.bytes);
    q.submit([enc.finish()]);
    this.counters.dispatches += g.steps.length;
    this.counters.submits++;
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
  async replayChain(g: GpuGraph, upload: ArrayLike<number>, n: number): Promise<Float32Array> {
    if (upload.length !== g.uploadLen) throw new Error(`webgpu: a graph recorded with ${g.uploadLen} uploaded numbers replayed with ${upload.length}`);
    if (g.bytes !== g.uploadLen * 4) throw new Error('webgpu: only a step that reads back its next token ids can be chained');
    this.flush();
    const q = this.device.queue;
    q.writeBuffer(g.upload.gpu, 0, Float32Array.from(upload));
    const out = this.createBuffer({ size: Math.max(4, n * g.bytes), usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST, label: 'chained tokens' });
    for (let s0 = 0; s0 < n; s0 += 16) {
      const enc = this.device.createCommandEncoder();
      for (let s = s0; s < Math.min(n, s0 + 16); s++) {
        encodeGraph(enc, g);
        enc.copyBufferToBuffer(g.src.ref.gpu, g.src.off * 4, g.upload.gpu, 0, g.bytes);
        enc.copyBufferToBuffer(g.src.ref.gpu, g.src.off * 4, out, s * g.bytes, g.bytes);
      }
      q.submit([enc.finish()]);
      this.counters.submits++;
    }
    this.counters.dispatches += n * g.steps.length;
    try {
      await out.mapAsync(MAP_READ, 0, n * g.bytes);
    } catch (e) {
      throw this.errorAfter(e);
    }
    const res = new Float32Array(out.getMappedRange(0, n * g.bytes).slice(0));
    this.destroyBuffer(out);
    if (this.lastError) throw this.errorAfter(null);
    return res;
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
      const out = new Float32Array(s.len);
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
    if (s.fmt === 'bf16') out = decodeHalf(new Uint8Array(out.buffer), 'bf16', out.length * 2);
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

interface GraphStep {
  pipe: GPUComputePipeline;
  bg: GPUBindGroup;
  grid: [number, number, number];
  /** the stores the step binds: held, so that their blocks stay reserved while the graph lives */
  roles: readonly Store[];
}

/** one compute pass with a graph's dispatches */
function encodeGraph(enc: GPUCommandEncoder, g: GpuGraph): void {
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
}

/** float32 → bf16 (dtype.ts's rounding), two to a u32: weight 2i in the low half (little-endian u16 pairs) */
export function packBf16(data: Float32Array): Uint32Array {
  const u16 = new Uint16Array(data.length + (data.length & 1));
  for (let i = 0; i < data.length; i++) u16[i] = f32ToBf16(data[i]);
  return new Uint32Array(u16.buffer);
}

/** the prelude + bindings + role substitution for one binding map */
export function generateWgsl(spec: KernelSpec, variant: string, map: number[], modes: string): string {
  const lines: string[] = [];
  const body = spec.wgsl(variant);
  const types = spec.types?.(variant) ?? {};
  if (/subgroup/.test(body)) lines.push('enable subgroups;');
  for (let j = 0; j < modes.length; j++) {
    const roles = spec.roles.filter((_r, i) => map[i] === j);
    const typed = roles.filter((r) => types[r]);
    if (typed.length > 0 && (roles.length > 1 || modes[j] === 'w')) {
      throw new Error(`webgpu kernel ${spec.name}(${variant}): role ${typed[0]} (${types[typed[0]]}) shares its buffer with ${roles.filter((r) => r !== typed[0]).join(', ') || 'a write'}; typed roles need a buffer of their own`);
    }
    const elem = typed.length > 0 ? types[typed[0]] : 'f32';
    lines.push(`@group(0) @binding(${j}) var<storage, ${modes[j] === 'w' ? 'read_write' : 'read'}> b${j}: array<${elem}>;`);
  }
  lines.push(PRELUDE);
  lines.push(`const PK: u32 = ${spec.roles.length}u;`);
  for (const r of spec.roles) lines.push(`var<private> o_${r}: u32;`);
  lines.push(`fn init_offsets() {`);
  spec.roles.forEach((r, i) => lines.push(`  o_${r} = pu(${i}u);`));
  lines.push(`}`);
  const code = body.replace(/\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, name: string) => {
    const i = spec.roles.indexOf(name);
    if (i < 0) throw new Error(`webgpu kernel ${spec.name}: unknown role ${m}`);
    return `b${map[i]}`;
  });
  lines.push(code);
  return lines.join('\n');
}

const PRELUDE = /* wgsl */ `
struct Params { v: array<vec4<u32>, ${PARAM_WORDS / 4}> }
@group(1) @binding(0) var<uniform> P: Params;
fn pu(i: u32) -> u32 { return P.v[i / 4u][i % 4u]; }
fn pf(i: u32) -> f32 { return bitcast<f32>(pu(i)); }
fn lin(wg: vec3<u32>, nw: vec3<u32>) -> u32 { return wg.x + wg.y * nw.x; }
fn silu(x: f32) -> f32 { return x / (1.0 + exp(-x)); }
fn softplus(x: f32) -> f32 {
  if (x > 20.0) { return x; }
  if (x < -15.0) { return exp(x); }
  return log(1.0 + exp(x));
}
`;

/** dst[i] = src[i], i < n (also used to gather inputs when a dispatch needs too many buffers) */
export const COPY_SPEC: KernelSpec = {
  name: 'copy',
  roles: ['x', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let i = lin(wg, nw) * 256u + li;
  if (i < pu(PK)) { $y[o_y + i] = $x[o_x + i]; }
}`,
};
