/**
 * The WebAssembly runtime: one shared linear memory, the kernel module instantiated on the main thread
 * and on a pool of worker threads over that same memory, a JS-side allocator for that memory, and a
 * dispatcher that splits one kernel call's range of independent work ([0, n) rows/channels/heads) among
 * the threads. Dispatch goes through Atomics on a shared control block (no message passing per call):
 * the main thread publishes the call, wakes the workers, runs its own slice, and waits for theirs.
 *
 * What differs between Node and browsers (reading kernels.wasm, starting a worker, the thread count) is in
 * `platform.ts` (Node: fs, worker_threads); bundlers for the browser swap it for `platform.browser.ts`
 * (fetch, Web Workers; the package.json "browser" field and web/vite.config.ts say so).
 */
import { platform } from './platform.js';
import { MambaTsError } from '../../errors.js';

const PAGE = 65536;
/** control block (Int32Array): generation, done count, stop flag, kernel index, arg count, workers ready, team call, started count */
const GEN = 0, DONE = 1, STOP = 2, KERNEL = 3, NARGS = 4, READY = 5, TEAM = 6, STARTED = 7;
const MAX_ARGS = 32;
/**
 * Below this much work (≈ multiply-adds, or weights read) a call is not split among threads. Dispatch is a
 * store and a load on the control block when the workers are spinning (see SPIN_MS), a few microseconds in all;
 * a 768 × 768 f32 matrix-vector product takes ~80 µs on one thread.
 */
export const MIN_PARALLEL_WORK = 1 << 16;
/**
 * After each call a worker keeps polling the control block this long before it sleeps (Atomics.wait): the calls
 * of one decode step come microseconds apart, and waking a sleeping thread costs 20–100 µs on Linux. Kept short:
 * a polling thread holds a core that another process (or the test runner's other file) may need.
 */
const SPIN_MS = 0.25;

/**
 * Falling back to one thread while the other cores are busy (SplitGovernor): a call whose workers had not picked it
 * up when this thread finished its own share (of at least START_MS), or finished more than max(LATE_MS, this
 * thread's own share) after this thread did, is late; after LATE_CALLS late calls in a row the calls run on the calling thread alone for SOLO_MS
 * (doubling up to SOLO_MAX_MS while it keeps happening), then are split again. A worker spinning on a free core
 * picks a call up within microseconds, one woken from sleep within ~20–100 µs; a descheduled one only when the OS
 * runs it again, milliseconds later, and then every thread waits for it at the join.
 */
const START_MS = 0.02, LATE_MS = 0.15, LATE_CALLS = 3, SOLO_MS = 20, SOLO_MAX_MS = 640;

/** Whether to split the next call among the threads, from how late the workers were on the last ones. */
export class SplitGovernor {
  private late = 0;
  private soloUntil = -Infinity;
  private solo = SOLO_MS;
  /** calls run alone because of it, and the times it switched to one thread (for benchmarks and tests) */
  soloCalls = 0;
  fallbacks = 0;

  constructor(public enabled = true) {}

  /** split the call that starts at `now` (ms)? */
  split(now: number): boolean {
    if (!this.enabled || now >= this.soloUntil) return true;
    this.soloCalls++;
    return false;
  }

  /**
   * After a split call: `started` = whether every worker had picked it up when this thread finished its own share;
   * `own` = ms this thread spent on its share; `joinLag` = ms it then waited for the workers.
   */
  record(now: number, started: boolean, own: number, joinLag: number): void {
    if ((!started && own >= START_MS) || joinLag > Math.max(LATE_MS, own)) {
      if (++this.late >= LATE_CALLS) {
        this.late = 0;
        this.soloUntil = now + this.solo;
        this.solo = Math.min(2 * this.solo, SOLO_MAX_MS);
        this.fallbacks++;
      }
    } else {
      this.late = 0;
      this.solo = SOLO_MS;
    }
  }
}

export type KernelExports = Record<string, (...args: number[]) => void>;

/**
 * the f32 decode products of every thread: 'seq' (default) walks W with one copy of the row loop (M = 1: gemvF32Seq;
 * M = 2, batched decode: gemvF32Few); 'rows4' runs the kernels before session 28's fix (M = 1: the row loop once per row
 * of a group of 4, 2× slower from DRAM, the same bits; M = 2: the 2×4 tiles, another summation order). See
 * assembly/linear.ts and bench/matvec-stream.bench.ts.
 */
export type GemvF32 = 'seq' | 'rows4';
const GEMV_F32_MODE: Record<GemvF32, number> = { seq: 0, rows4: 1 };
/**
 * the q8 matrix-vector kernel of decode (linear_q8 with one row of x; assembly/linear_q8.ts gemvQ8Mode): 'lean'
 * (default since session 34: 'quarters' in a loop of its own with pointers stepped per block and no reload of the
 * block sums), 'quarters' (the default of sessions 32–33: x loaded once for 4 rows, one from each quarter of the rows,
 * so that each load instruction of W streams its quarter start to end), 'seq' (one row of W at a time) or 'rows4' (4
 * adjacent rows at once: the kernel before issue 18's session 32). The same bits.
 */
export type GemvQ8 = 'lean' | 'quarters' | 'seq' | 'rows4';
const GEMV_Q8_MODE: Record<GemvQ8, number> = { seq: 0, rows4: 1, quarters: 2, lean: 3 };
/** the GemvQ8 names (option checks, errors, the environment) */
export const GEMV_Q8_NAMES = Object.keys(GEMV_Q8_MODE) as GemvQ8[];

/** WasmRuntime.ssdTouch's default (bytes; assembly/scan.ts starts with the same) */
export const SSD_TOUCH_DEFAULT = 2048;

/** What a kernel worker is started with (Node: workerData; browsers: its first message). */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  ctrl: Int32Array;
  args: Float64Array;
  names: string[];
  index: number;
  threads: number;
}

/** The host-specific parts of the runtime (`platform.ts` on Node, `platform.browser.ts` in browsers). */
export interface WasmPlatform {
  /** the compiled kernels (Node: read from `url`; browsers: compiled beforehand by `loadWasmKernels`) */
  loadKernels(url: URL): WebAssembly.Module;
  /** start a kernel worker that runs `runKernelWorker(init)` */
  spawnWorker(init: WorkerInit): { terminate(): unknown };
  /** threads to use when not told (including the calling one) */
  defaultThreads(): number;
  /** the most threads this host can run: 1 where the calling thread may not block (a browser's main thread) or memory cannot be shared */
  maxThreads(): number;
  /**
   * true where relaxed SIMD runs only behind an experimental engine flag (Node 20's V8 11.3: its baseline compiler,
   * Liftoff, miscompiles i32x4.relaxed_dot_i8x16_i7x16_add_s, so gemm_q8's mode 1 is not used there); absent: false
   */
  relaxedExperimental?(): boolean;
}

export function kernelsPath(): URL {
  // dist/src/backend/wasm/runtime.js → dist/wasm/kernels.wasm
  return new URL('../../../wasm/kernels.wasm', import.meta.url);
}

/** The wasm memory cannot hold what was asked for (it is at most 4 GiB: 32-bit addresses). */
export class WasmMemoryError extends MambaTsError {}

/** First-fit allocator over the wasm memory, 64-byte aligned; grows the memory as needed. */
export class Heap {
  private top: number;
  private readonly free: Array<{ off: number; size: number }> = [];
  private readonly sizes = new Map<number, number>();

  constructor(private readonly memory: WebAssembly.Memory, base: number) {
    this.top = base;
  }

  alloc(bytes: number): number {
    const size = Math.max(64, Math.ceil(bytes / 64) * 64);
    for (let i = 0; i < this.free.length; i++) {
      const f = this.free[i];
      if (f.size >= size) {
        const off = f.off;
        if (f.size === size) this.free.splice(i, 1);
        else {
          f.off += size;
          f.size -= size;
        }
        this.sizes.set(off, size);
        return off;
      }
    }
    const off = this.top;
    const end = off + size;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      try {
        this.memory.grow(pages);
      } catch {
        throw new WasmMemoryError(
          `wasm backend: out of memory: ${((end / 2 ** 20) | 0)} MiB needed, but WebAssembly memory holds at most 4 GiB ` +
          `(${((have / 2 ** 20) | 0)} MiB in use); store the weights smaller (weights: 'bf16' or 'q8'; CLI: --dtype bf16|q8)`,
        );
      }
    }
    this.top = end;
    this.sizes.set(off, size);
    return off;
  }

  release(off: number): void {
    const size = this.sizes.get(off);
    if (size === undefined) return;
    this.sizes.delete(off);
    if (off + size === this.top) {
      this.top = off;
      // fold free blocks that now touch the top
      this.free.sort((a, b) => a.off - b.off);
      while (this.free.length && this.free[this.free.length - 1].off + this.free[this.free.length - 1].size === this.top) {
        this.top = this.free.pop()!.off;
      }
      return;
    }
    this.free.push({ off, size });
    this.free.sort((a, b) => a.off - b.off);
    // coalesce neighbours
    for (let i = this.free.length - 2; i >= 0; i--) {
      const a = this.free[i], b = this.free[i + 1];
      if (a.off + a.size === b.off) {
        a.size += b.size;
        this.free.splice(i + 1, 1);
      }
    }
  }

  get bytesInUse(): number {
    let n = 0;
    for (const s of this.sizes.values()) n += s;
    return n;
  }
}

export class WasmRuntime {
  readonly memory: WebAssembly.Memory;
  readonly kernels: KernelExports;
  readonly heap: Heap;
  /** calls handed to the workers so far (each wakes them; calls run on this thread alone are not counted) */
  handoffs = 0;
  readonly threads: number;
  /** whether the kernels are the relaxed-SIMD build (fused multiply-adds in the prefill GEMM; platform.ts) */
  readonly fused: boolean;
  /**
   * whether gemm_q8 may run its relaxed i8 dot products (mode 1): the relaxed build, on an engine that runs relaxed
   * SIMD without an experimental flag (WasmPlatform.relaxedExperimental)
   */
  readonly relaxedDot: boolean;
  private readonly names: string[];
  private readonly ctrl: Int32Array;
  private readonly args: Float64Array;
  /**
   * one thread while the others are busy elsewhere (see SplitGovernor); off unless MAMBA_TS_WASM_ADAPTIVE=1: on this
   * machine under load it halved the CPU time per call but the wall time grew (the OS gives 2 runnable threads more)
   */
  readonly governor = new SplitGovernor(envAdaptive());
  private readonly workers: Array<{ terminate(): unknown }> = [];
  private generation = 0;
  private gemv: GemvF32 = 'seq';
  private gemvQ8Kernel: GemvQ8 = 'lean';
  private ssdTouchBytes = SSD_TOUCH_DEFAULT;

  private constructor(module: WebAssembly.Module, threads: number) {
    this.memory = new WebAssembly.Memory({ initial: 32, maximum: 65536, shared: true });
    const instance = new WebAssembly.Instance(module, { env: { memory: this.memory, abort: () => { throw new Error('wasm kernel abort'); } } });
    // (a wasm kernel that traps throws a WebAssembly.RuntimeError on the calling thread)
    this.kernels = instance.exports as unknown as KernelExports;
    this.names = Object.keys(this.kernels).filter((k) => typeof this.kernels[k] === 'function');
    this.fused = (this.kernels.gemm_fused as unknown as (() => number) | undefined)?.() === 1;
    this.relaxedDot = this.fused && !(platform.relaxedExperimental?.() ?? false);
    // the module keeps no data of its own; leave its first page alone anyway
    this.heap = new Heap(this.memory, PAGE);
    this.threads = threads;
    // (one thread needs no sharing: a browser page that is not cross-origin isolated has no SharedArrayBuffer)
    const buffer = (bytes: number) => (threads > 1 ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
    this.ctrl = new Int32Array(buffer(64));
    this.args = new Float64Array(buffer(8 * MAX_ARGS));
    for (let t = 1; t < threads; t++) {
      this.workers.push(platform.spawnWorker({ module, memory: this.memory, ctrl: this.ctrl, args: this.args, names: this.names, index: t, threads }));
    }
  }

  private static instances = new Map<number, WasmRuntime>();

  /** One runtime per thread count, created on first use. */
  static get(threads?: number): WasmRuntime {
    const n = Math.min(platform.maxThreads(), Math.max(1, Math.floor(threads ?? defaultThreads())));
    let r = WasmRuntime.instances.get(n);
    if (!r) {
      r = new WasmRuntime(platform.loadKernels(kernelsPath()), n);
      WasmRuntime.instances.set(n, r);
      const g = envChoice<GemvF32>('MAMBA_TS_WASM_GEMV_F32', ['seq', 'rows4']);
      if (g !== undefined) r.gemvF32 = g;
      const q = envChoice<GemvQ8>('MAMBA_TS_WASM_GEMV_Q8', GEMV_Q8_NAMES);
      if (q !== undefined) r.gemvQ8 = q;
      const st = envBytes('MAMBA_TS_WASM_SSD_TOUCH');
      if (st !== undefined) r.ssdTouch = st;
    }
    return r;
  }

  /**
   * The f32 matrix-vector kernel of every thread (see GemvF32): a setting of this runtime, so of every backend on its
   * thread count (the last one set wins). Default 'seq', or the environment's MAMBA_TS_WASM_GEMV_F32.
   */
  get gemvF32(): GemvF32 {
    return this.gemv;
  }

  set gemvF32(v: GemvF32) {
    const mode = GEMV_F32_MODE[v];
    if (mode === undefined) throw new MambaTsError(`wasm backend: gemvF32 must be 'seq' or 'rows4', got ${JSON.stringify(v)}`);
    if (v === this.gemv) return;
    this.broadcast('set_gemv_f32_mode', [mode]);
    this.gemv = v;
  }

  /**
   * The q8 matrix-vector kernel of every thread (see GemvQ8): a setting of this runtime, so of every backend on its
   * thread count (the last one set wins). Default 'quarters', or the environment's MAMBA_TS_WASM_GEMV_Q8.
   */
  get gemvQ8(): GemvQ8 {
    return this.gemvQ8Kernel;
  }

  set gemvQ8(v: GemvQ8) {
    const mode = GEMV_Q8_MODE[v];
    if (mode === undefined) throw new MambaTsError(`wasm backend: gemvQ8 must be one of ${GEMV_Q8_NAMES.map((n) => `'${n}'`).join(', ')}, got ${JSON.stringify(v)}`);
    if (v === this.gemvQ8Kernel) return;
    this.broadcast('set_gemv_q8_mode', [mode]);
    this.gemvQ8Kernel = v;
  }

  /**
   * The Mamba-2 decode step's touching distance in bytes (assembly/scan.ts ssdTouch): while the in-place SSD step
   * updates 4 rows of a head's state, it loads one 64-byte line of the 4 rows this many bytes on, so that the state
   * streams from DRAM while the core computes; 0 none (the step before session 34). The same bits either way. A setting
   * of this runtime (every backend on its thread count; the last one set wins). Default SSD_TOUCH_DEFAULT, or the
   * environment's MAMBA_TS_WASM_SSD_TOUCH.
   */
  get ssdTouch(): number {
    return this.ssdTouchBytes;
  }

  set ssdTouch(v: number) {
    if (!Number.isInteger(v) || v < 0 || v > 1 << 20 || v % 64 !== 0) throw new MambaTsError(`wasm backend: ssdTouch must be a multiple of 64 bytes from 0 to 1048576, got ${JSON.stringify(v)}`);
    if (v === this.ssdTouchBytes) return;
    this.broadcast('set_ssd_touch', [v]);
    this.ssdTouchBytes = v;
  }

  /** run team kernel `kernel(...args, t, T)` on every thread (settings each instance keeps), whatever the governor says */
  private broadcast(kernel: string, args: number[]): void {
    const k = this.kernelIndex(kernel);
    if (this.threads === 1) this.kernels[kernel](...args, 0, 1);
    else this.dispatch(k, args, true, () => this.kernels[kernel](...args, 0, this.threads));
  }

  /**
   * Resolves once every worker thread is listening, without blocking the calling thread (browsers start
   * workers asynchronously; `run` would otherwise wait for them on its first parallel call).
   */
  async ready(timeoutMs = 60_000): Promise<void> {
    const t0 = Date.now();
    while (Atomics.load(this.ctrl, READY) < this.threads - 1) {
      if (Date.now() - t0 > timeoutMs) throw new Error(`wasm backend: ${this.threads - 1} worker threads did not start within ${timeoutMs / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** A Float32Array view of `count` floats at byte offset `off` (valid across memory growth). */
  f32(off: number, count: number): Float32Array {
    return new Float32Array(this.memory.buffer, off, count);
  }

  u8(off: number, count: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, off, count);
  }

  /**
   * Run `kernel(...args, lo, hi)` over [0, n) split into `threads` slices aligned to `align`;
   * returns when every slice is done.
   */
  run(kernel: string, args: number[], n: number, align = 4, work = Infinity): void {
    const k = this.kernelIndex(kernel);
    // waking the workers costs tens of microseconds: small calls run on this thread alone
    const T = work < MIN_PARALLEL_WORK ? 1 : Math.min(this.threads, Math.max(1, Math.ceil(n / align)));
    if (T === 1 || !this.governor.split(performance.now())) {
      this.kernels[kernel](...args, 0, n);
      return;
    }
    this.dispatch(k, [...args, n, align], false, () => {
      const [lo, hi] = slice(0, T, n, align, this.threads);
      this.kernels[kernel](...args, lo, hi);
    });
  }

  /**
   * Run `kernel(...args, t, T)` on every thread t of T at once (a "team" kernel: it splits its phases among the
   * T threads itself and may wait for the others at barriers in between; see assembly/team.ts). T = 1 when
   * `parallel` is false.
   */
  runTeam(kernel: string, args: number[], parallel = true): void {
    const k = this.kernelIndex(kernel);
    if (!parallel || this.threads === 1 || !this.governor.split(performance.now())) {
      this.kernels[kernel](...args, 0, 1);
      return;
    }
    this.dispatch(k, args, true, () => this.kernels[kernel](...args, 0, this.threads));
  }

  private kernelIndex(kernel: string): number {
    const k = this.names.indexOf(kernel);
    if (k < 0) throw new Error(`wasm backend: kernel ${kernel} is missing from kernels.wasm (stale build? run \`npm run build\`)`);
    return k;
  }

  /** publish call `k` with `args` to the workers, run `own` (this thread's share), wait for the workers */
  private dispatch(k: number, args: number[], team: boolean, own: () => void): void {
    this.handoffs++;
    // the first call waits until every worker has instantiated the module and is listening
    for (;;) {
      const r = Atomics.load(this.ctrl, READY);
      if (r >= this.threads - 1) break;
      Atomics.wait(this.ctrl, READY, r, 100);
    }
    for (let i = 0; i < args.length; i++) this.args[i] = args[i];
    Atomics.store(this.ctrl, KERNEL, k);
    Atomics.store(this.ctrl, NARGS, args.length);
    Atomics.store(this.ctrl, TEAM, team ? 1 : 0);
    Atomics.store(this.ctrl, DONE, 0);
    Atomics.store(this.ctrl, STARTED, 0);
    this.generation++;
    Atomics.store(this.ctrl, GEN, this.generation);
    Atomics.notify(this.ctrl, GEN);
    const tOwn = performance.now();
    own();
    // wait for the workers (those beyond T find an empty slice and finish at once). Their slices end about when
    // ours does, so poll first — a sleeping main thread is woken 20–100 µs after the last worker's notify, more
    // than many whole calls take — but only for a while: if a worker lags far behind, this machine's cores are
    // busy with other work, and polling would take a core from it.
    const want = this.threads - 1;
    const ownDone = performance.now();
    const started = Atomics.load(this.ctrl, STARTED) >= want;
    if (Atomics.load(this.ctrl, DONE) < want) {
      const until = ownDone + Math.min(0.5, 0.02 + 0.5 * (ownDone - tOwn));
      for (let i = 1; Atomics.load(this.ctrl, DONE) < want; i++) if ((i & 255) === 0 && performance.now() > until) break;
    }
    for (;;) {
      const d = Atomics.load(this.ctrl, DONE);
      if (d >= want) break;
      Atomics.wait(this.ctrl, DONE, d, 50);
    }
    const end = performance.now();
    this.governor.record(end, started, ownDone - tOwn, end - ownDone);
  }

  /** stop the workers (tests; the process does not wait for them anyway) */
  async close(): Promise<void> {
    Atomics.store(this.ctrl, STOP, 1);
    this.generation++;
    Atomics.store(this.ctrl, GEN, this.generation);
    Atomics.notify(this.ctrl, GEN);
    await Promise.all(this.workers.map((w) => w.terminate()));
    for (const [n, r] of WasmRuntime.instances) if (r === this) WasmRuntime.instances.delete(n);
  }
}

/** slice t of [0, n) for `used` threads out of `total`, boundaries rounded to `align` */
export function slice(t: number, used: number, n: number, align: number, _total: number): [number, number] {
  if (t >= used) return [n, n];
  const chunks = Math.ceil(n / align);
  const lo = Math.floor((chunks * t) / used) * align;
  const hi = Math.min(n, Math.floor((chunks * (t + 1)) / used) * align);
  return [Math.min(lo, n), t === used - 1 ? n : hi];
}

/** MAMBA_TS_WASM_ADAPTIVE=1: fall back to one thread while the workers run late (SplitGovernor on) */
function envAdaptive(): boolean {
  const raw = typeof process !== 'undefined' ? process.env?.MAMBA_TS_WASM_ADAPTIVE : undefined;
  return raw === '1';
}

/**
 * An environment variable that names one of `choices` (MAMBA_TS_WASM_GEMV_F32, _GEMM, _ATTN_DECODE): undefined when
 * unset or empty; any other value is an error of class `Err` naming the variable and the choices.
 */
export function envChoice<T extends string>(name: string, choices: readonly T[], Err: new (message: string) => Error = MambaTsError): T | undefined {
  const raw = typeof process !== 'undefined' ? process.env?.[name] : undefined;
  if (raw === undefined || raw === '') return undefined;
  if (!(choices as readonly string[]).includes(raw)) throw new Err(`wasm backend: ${name} must be ${choices.map((c) => `'${c}'`).join(' or ')}, got "${raw}"`);
  return raw as T;
}

/** a byte count from the environment variable `name` (unset or empty: undefined); ssdTouch checks its range */
function envBytes(name: string): number | undefined {
  const raw = typeof process !== 'undefined' ? process.env?.[name] : undefined;
  if (raw === undefined || raw === '') return undefined;
  const v = Number(raw);
  if (!/^\d+$/.test(raw) || v % 64 !== 0) throw new MambaTsError(`wasm backend: ${name} must be a multiple of 64 bytes (0: off), got "${raw}"`);
  return v;
}

export function defaultThreads(): number {
  return platform.defaultThreads();
}

/** A kernel worker's life: wait on the control block, run its slice of each published call, until stopped. */
export function runKernelWorker(init: WorkerInit): void {
  const { module, memory, ctrl, args, names, index, threads } = init;
  const instance = new WebAssembly.Instance(module, { env: { memory, abort: () => { throw new Error('wasm kernel abort'); } } });
  const kernels = instance.exports as unknown as KernelExports;
  let seen = Atomics.load(ctrl, GEN);
  Atomics.add(ctrl, READY, 1);
  Atomics.notify(ctrl, READY);
  for (;;) {
    // poll for the next call for SPIN_MS (checking the clock every 256 polls), then sleep until notified
    if (Atomics.load(ctrl, GEN) === seen) {
      const until = performance.now() + SPIN_MS;
      for (let i = 1; Atomics.load(ctrl, GEN) === seen; i++) {
        if ((i & 255) === 0 && performance.now() > until) {
          Atomics.wait(ctrl, GEN, seen);
          break;
        }
      }
    }
    seen = Atomics.load(ctrl, GEN);
    Atomics.add(ctrl, STARTED, 1);
    if (Atomics.load(ctrl, STOP)) break;
    const nargs = Atomics.load(ctrl, NARGS);
    const kernel = kernels[names[Atomics.load(ctrl, KERNEL)]];
    if (Atomics.load(ctrl, TEAM)) {
      const a: number[] = [];
      for (let i = 0; i < nargs; i++) a.push(args[i]);
      kernel(...a, index, threads);
    } else {
      // the last two arguments are n and align
      const a: number[] = [];
      for (let i = 0; i < nargs - 2; i++) a.push(args[i]);
      const n = args[nargs - 2];
      const align = args[nargs - 1];
      const used = Math.min(threads, Math.max(1, Math.ceil(n / align)));
      const [lo, hi] = slice(index, used, n, align, threads);
      if (lo < hi) kernel(...a, lo, hi);
    }
    Atomics.add(ctrl, DONE, 1);
    Atomics.notify(ctrl, DONE);
  }
}

export const CONTROL = { GEN, DONE, STOP, KERNEL, NARGS, READY, TEAM, STARTED };
