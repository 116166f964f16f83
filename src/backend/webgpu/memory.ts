/// <reference types="@webgpu/types" />
/**
 * Device memory of the WebGPU runtime (`runtime.ts`): GPUBuffers and what they add up to, the pools tensors
 * are carved from, and when a released block may be handed out again.
 *
 * Tensors live in a few large GPUBuffers ("chunks") and are addressed by element offsets that kernels receive
 * as parameters, so a kernel binds whole buffers and the bind groups repeat from one token to the next.
 * Allocation is by size class from three pools (constants from the host, activations, weight matrices);
 * allocations larger than half a chunk get a buffer of their own. A block returns to its pool when its tensor
 * is disposed (`release`: the tensor layer counts the tensors sharing a storage and scopes dispose what they
 * made, see src/tensor/scope.ts), or else when the last store holding it is garbage-collected
 * (FinalizationRegistry). Blocks that a recorded but unsubmitted dispatch uses are held by that dispatch, so
 * collection never races with it; for explicit release see `release`.
 */

export const BUFFER_USAGE = { MAP_READ: 1, COPY_SRC: 4, COPY_DST: 8, UNIFORM: 64, STORAGE: 128, QUERY_RESOLVE: 512 } as const;

/** A GPUBuffer with a stable id (bind groups are cached by ids). */
export class BufRef {
  private static next = 1;
  id: number;
  /** a buffer of the matrix pool: holds weight matrices only */
  matrices = false;
  /** the pool whose blocks this buffer holds ('' for the runtime's own buffers) */
  pool: 'constants' | 'activations' | 'matrices' | 'packed' | 'kv caches' | '' = '';
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
export interface Alloc {
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
   * How the words hold a matrix: 'f32', 'bf16' (two weights per u32, weight 2i in the low half; `len` and
   * `off` count u32 words), 'f16' (binary16, packed the same way) or 'q8' (int8 blocks and their scales in
   * superblocks, kernels/q8.ts; `q8Elems` weights in `len` words). Weight matrices in the matrix pool are bf16 or q8,
   * 16-bit KV caches in the KV pool bf16 or f16.
   */
  fmt: 'f32' | 'bf16' | 'f16' | 'q8' = 'f32';
  /** a KV cache (any format; WebGpuBackend.kvSplit splits those larger than a binding by sequences) */
  kv = false;
  /** the weights a 'q8' store holds (its words include the scales and the padding of the last superblock) */
  q8Elems = 0;
  /** allocation order (GpuRuntime.alloc), so that a capture can tell blocks allocated during it */
  seq = 0;
  /**
   * A column range of a wider tensor not copied yet (`WebGpuBackend.split`): `rows` rows of `width` columns from
   * column `col` of `src` (row stride `stride`). Kernels that take a row stride read it there; any other use
   * copies it into this store's block first.
   */
  lazy: { src: Store; rows: number; width: number; stride: number; col: number } | null = null;

  /** a view of `len` elements starting `off` elements into this one */
  view(off: number, len: number): Store {
    return new Store(this.ref, this.off + off, len, this.base ?? this);
  }
}

/** size classes: 256 B, then four steps per power of two (waste ≤ 25%) */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 64) * 64);
  const p = 2 ** Math.floor(Math.log2(b));
  if (p === b || p < 1024) return p === b ? b : Math.ceil(b / 64) * 64;
  const step = p / 4;
  return Math.ceil(b / step) * step;
}

export class Pool {
  private readonly free = new Map<number, Alloc[]>();
  private cur: BufRef | null = null;
  private bump = 0;
  private total = 0;
  /** bytes of blocks in the free lists */
  freeBytes = 0;
  constructor(private readonly rt: DeviceMemory, private readonly label: string, private readonly matrices = false) {}

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
      // the size class may round past the largest binding (2 GiB − 4 on NVIDIA, a class of 2^31): every request
      // is at most maxBinding (DeviceMemory.alloc refuses larger), so a buffer of maxBinding holds any of the class
      return { ref: this.newBuffer(Math.min(cls, this.rt.maxBinding), `${this.label} (dedicated)`), byteOff: 0, cls, pool: this };
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
    // kept sorted, lowest address last (what alloc pops): which block a request gets depends on which blocks are
    // free, not on the order they were released in — so a training step that repeats the previous one's
    // allocations gets the same blocks, the same role-to-buffer mappings and no new pipelines (a LIFO list permuted
    // the blocks from step to step and every permutation compiled its own pipelines)
    const key = (x: Alloc): number => x.ref.id * 2 ** 32 + x.byteOff;
    const k = key(a);
    let lo = 0, hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (key(list[mid]) > k) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, a);
  }

  /**
   * Give the free dedicated buffers (blocks over half a chunk, each a GPUBuffer of its own) back to the device;
   * chunks stay (their blocks are carved from shared buffers). Returns the bytes given back. The caller makes sure
   * no recorded, unsubmitted dispatch binds them (GpuRuntime.trim flushes first).
   */
  trim(): number {
    let freed = 0;
    for (const [cls, list] of this.free) {
      if (cls <= this.rt.chunkBytes / 2) continue;
      for (const a of list) {
        this.rt.destroyBuffer(a.ref.gpu);
        this.total -= cls;
        this.freeBytes -= cls;
        freed += a.ref.size;
      }
      this.free.delete(cls);
    }
    return freed;
  }

  /** bytes of this pool's buffers (chunks and dedicated buffers) */
  get bytes(): number {
    return this.total;
  }
}

/** GpuRuntime.stats() (DeviceMemory.stats) */
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


/**
 * The device's buffers and the pools: counts every buffer made through it (`stats`), allocates stores, and
 * decides when a released block is free again (`release`).
 */
export class DeviceMemory {
  readonly constPool: Pool;
  readonly actPool: Pool;
  /**
   * activations kept apart from actPool's buffers: the output of a GEMM that reads x through a second, typed binding
   * (the blocked kernel's flag '_v') where it would share x's buffer (WebGPU forbids binding a written buffer twice)
   */
  readonly sidePool: Pool;
  /** weight matrices only (kernels may bind them with vector element types: see KernelSpec.types) */
  readonly matPool: Pool;
  /**
   * int8 slices of the int8 GEMM (kernels/gemm_int8.ts: weights cached, activations per product), bound as
   * array<u32>: a pool of its own, so that no f32 tensor shares their buffers
   */
  readonly packPool: Pool;
  /**
   * KV caches in bf16/f16 (two values per u32, bound as array<u32> by the attention kernels): a pool of its own, so
   * that no f32 tensor shares their buffers
   */
  readonly kvPool: Pool;
  /**
   * Set by a capture (GpuRuntime.capture) while it runs: blocks released meanwhile wait here, since the graph
   * it builds may bind them; `endHold` then reserves or frees them.
   */
  hold: Alloc[] | null = null;
  /** allocations so far (each store's `seq`) */
  allocSeq = 0;
  private readonly acct = { device: 0, peakDevice: 0, buffers: 0, live: 0, peakLive: 0 };
  /** returns a collected store's block to its pool */
  private readonly registry: FinalizationRegistry<Alloc>;
  /** unpins the blocks of a recorded graph that was garbage-collected (see `pin`) */
  private readonly graphRegistry: FinalizationRegistry<{ blocks: Alloc[]; bytes: number }>;
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

  constructor(
    private readonly device: GPUDevice,
    /** the largest binding (no store may exceed it) */
    readonly maxBinding: number,
    /** the largest pool chunk */
    readonly chunkBytes: number,
    /** whether dispatches are recorded and not yet submitted */
    private readonly recorded: () => boolean,
    private readonly counters: { released: number },
  ) {
    this.registry = new FinalizationRegistry((a: Alloc) => this.free(a));
    this.graphRegistry = new FinalizationRegistry((h: { blocks: Alloc[]; bytes: number }) => this.unpin(h));
    this.constPool = new Pool(this, 'constants');
    this.actPool = new Pool(this, 'activations');
    this.sidePool = new Pool(this, 'activations');
    this.matPool = new Pool(this, 'matrices', true);
    this.packPool = new Pool(this, 'packed');
    this.kvPool = new Pool(this, 'kv caches');
  }

  newBuffer(bytes: number, label: string, usage: number = BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST): BufRef {
    if (bytes > this.device.limits.maxBufferSize) throw new Error(`webgpu: a buffer of ${bytes} bytes exceeds the device's maxBufferSize (${this.device.limits.maxBufferSize})`);
    return new BufRef(this.createBuffer({ size: bytes, usage, label }), bytes);
  }

  /** every GPUBuffer of the runtime is created here (counted in `stats()`) */
  createBuffer(desc: GPUBufferDescriptor): GPUBuffer {
    const b = this.device.createBuffer(desc);
    this.acct.buffers++;
    this.acct.device += desc.size;
    if (this.acct.device > this.acct.peakDevice) this.acct.peakDevice = this.acct.device;
    return b;
  }

  /** destroy a buffer made by `createBuffer` */
  destroyBuffer(b: GPUBuffer): void {
    this.acct.device -= b.size;
    b.destroy();
  }

  /** `bytes` of a buffer taken out of the accounting (a released graph's) are held again (kept for reuse) */
  noteDevice(bytes: number): void {
    this.acct.device += bytes;
    if (this.acct.device > this.acct.peakDevice) this.acct.peakDevice = this.acct.device;
  }

  /** a pool block of `bytes` was handed out (negative: returned) */
  noteLive(bytes: number): void {
    this.acct.live += bytes;
    if (this.acct.live > this.acct.peakLive) this.acct.peakLive = this.acct.live;
  }

  /** see GpuRuntime.stats */
  stats(): MemoryStats {
    const pools = [this.constPool, this.actPool, this.sidePool, this.matPool, this.packPool, this.kvPool];
    return {
      deviceBytes: this.acct.device,
      peakDeviceBytes: this.acct.peakDevice,
      buffersCreated: this.acct.buffers,
      poolBytes: pools.reduce((a, p) => a + p.bytes, 0),
      liveBytes: this.acct.live,
      peakLiveBytes: this.acct.peakLive,
      freeBytes: pools.reduce((a, p) => a + p.freeBytes, 0),
    };
  }

  /** the pool a store's block was allocated from (null: not allocated here) */
  poolOf(s: Store): Pool | null {
    return this.blockOf.get(s)?.pool ?? null;
  }
  /** whether a store allocated here has not been released (explicitly or by the collector) */
  isLive(s: Store): boolean {
    return this.allocs.has(s);
  }

  /** see GpuRuntime.trim */
  trim(): number {
    if (this.hold) return 0; // a capture may still bind blocks released meanwhile
    return [this.constPool, this.actPool, this.sidePool, this.matPool, this.packPool, this.kvPool].reduce((a, p) => a + p.trim(), 0);
  }

  /** start a new high-water mark at the current usage */
  resetPeak(): void {
    this.acct.peakDevice = this.acct.device;
    this.acct.peakLive = this.acct.live;
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

  /**
   * Return a store's block to its pool now rather than when the collector finds it (explicit lifetimes). Only
   * whole allocations (not views, not split matrices); the caller guarantees that nothing uses the storage
   * afterwards (the tensor layer counts the tensors that share it). Safe with work already recorded:
   * - an activation block is free for reuse at once: only dispatches write activations, and a dispatch recorded
   *   later runs later (dispatches of a pass, and submits, run in order), so it cannot overwrite what an earlier
   *   one still reads;
   * - constant and matrix blocks wait for the next submit (`deferred`);
   * - a block that a recorded graph binds stays reserved until the last such graph is collected (`pin`), and a
   *   release during a capture waits for the capture to end (`hold`: the graph it builds may bind the block).
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
    else if (this.hold) this.hold.push(a);
    else if (a.pool === this.actPool || a.pool === this.sidePool || !this.recorded()) a.pool.release(a);
    else this.deferred.push(a);
  }

  /** after a submit: the constant and matrix blocks released before it go back to their pools */
  afterSubmit(): void {
    for (const a of this.deferred) a.pool.release(a);
    this.deferred = [];
  }

  /** a capture ended (`graph` built or not, already pinned): the blocks released during it, where they can go now */
  endHold(): void {
    const held = this.hold ?? [];
    this.hold = null;
    for (const a of held) this.free(a);
  }

  /**
   * Reserve the blocks `stores` lie in while `graph` lives (a recorded graph binds them); `bytes`: the graph's own
   * buffers, uncounted when it is collected.
   */
  pin(graph: object, stores: Iterable<Store>, bytes: number): void {
    const blocks = new Set<Alloc>();
    for (const st of stores) {
      const a = this.blockOf.get(st.base ?? st);
      if (a) blocks.add(a);
    }
    for (const a of blocks) a.pins = (a.pins ?? 0) + 1;
    const h = { blocks: [...blocks], bytes };
    this.pinned.set(graph, h);
    this.graphRegistry.register(graph, h, graph);
  }

  /**
   * `graph` will not be replayed again (its state was disposed, or a new step replaced it): its blocks are unpinned
   * now instead of when the collector finds the graph — a disposed state's KV caches go back to their pools (and
   * `trim` can give them to the device) at once. The caller destroys the graph's own buffers. Returns false when the
   * graph holds no pins (released already, or never pinned).
   */
  unpinNow(graph: object): boolean {
    const h = this.pinned.get(graph);
    if (!h) return false;
    this.pinned.delete(graph);
    this.graphRegistry.unregister(graph);
    this.unpin(h);
    return true;
  }
  /** the pins of each live recorded graph (for `unpinNow`) */
  private readonly pinned = new WeakMap<object, { blocks: Alloc[]; bytes: number }>();

  private unpin(h: { blocks: Alloc[]; bytes: number }): void {
    this.acct.device -= h.bytes; // the graph's own buffers went with it
    for (const a of h.blocks) {
      a.pins!--;
      if (a.pins === 0 && a.freed) {
        a.freed = false;
        this.free(a);
      }
    }
  }
}
