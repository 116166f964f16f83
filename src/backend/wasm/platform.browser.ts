/**
 * The wasm runtime's host in browsers (swapped in for `platform.ts` by bundlers: package.json "browser"
 * field, web/vite.config.ts). kernels.wasm is fetched and compiled beforehand (`loadWasmKernels`, async);
 * threads are Web Workers sharing the wasm memory, which needs a cross-origin-isolated page
 * (COOP/COEP headers, so SharedArrayBuffer can be posted) and a caller that may block (`Atomics.wait`):
 * a worker, not the page's main thread. Elsewhere the runtime runs on one thread.
 *
 * Type-checked without the DOM library (the Node build compiles it too), so browser globals are reached
 * through `globalThis` with the few members used here.
 */
import type { WasmPlatform } from './runtime.js';

interface BrowserWorker {
  postMessage(message: unknown): void;
  terminate(): void;
}

const host = globalThis as unknown as {
  Worker?: new (url: URL, options: { type: 'module'; name?: string }) => BrowserWorker;
  crossOriginIsolated?: boolean;
  navigator?: { hardwareConcurrency?: number };
  WorkerGlobalScope?: unknown;
  fetch(url: string | URL): Promise<{ ok: boolean; status: number; arrayBuffer(): Promise<ArrayBuffer> }>;
};
// named `Worker` so that bundlers recognise `new Worker(new URL(...), ...)` and emit the worker script
const Worker = host.Worker;

let kernels: WebAssembly.Module | null = null;

/**
 * Fetch and compile kernels.wasm (default: next to the library, `dist/wasm/kernels.wasm`; an app bundler
 * may give its own asset URL). Call once before creating a `WasmBackend`.
 */
export async function loadWasmKernels(url: string | URL = new URL('../../../wasm/kernels.wasm', import.meta.url)): Promise<void> {
  if (kernels) return;
  let res;
  try {
    res = await host.fetch(url);
  } catch (e) {
    throw new Error(`wasm backend: cannot fetch ${String(url)}: ${(e as Error).message}`);
  }
  if (!res.ok) throw new Error(`wasm backend: cannot fetch ${String(url)}: HTTP ${res.status}`);
  // async compile: browsers refuse to compile modules over 4 KiB synchronously on the main thread
  const { compile } = WebAssembly as unknown as { compile(bytes: ArrayBuffer): Promise<WebAssembly.Module> };
  kernels = await compile(await res.arrayBuffer());
}

/** Whether worker threads can run here: shared memory may be posted, and this thread may block. */
export function wasmThreadsAvailable(): boolean {
  return host.crossOriginIsolated === true && host.WorkerGlobalScope !== undefined && Worker !== undefined;
}

export const platform: WasmPlatform = {
  loadKernels() {
    if (!kernels) throw new Error('wasm backend: kernels.wasm is not loaded; await loadWasmKernels() first');
    return kernels;
  },
  spawnWorker(init) {
    if (!Worker) throw new Error('wasm backend: Web Workers are not available here');
    const w = new Worker(new URL('./worker.browser.js', import.meta.url), { type: 'module', name: `mamba-ts wasm ${init.index}` });
    w.postMessage(init);
    return w;
  },
  defaultThreads() {
    return wasmThreadsAvailable() ? Math.max(1, host.navigator?.hardwareConcurrency ?? 1) : 1;
  },
  maxThreads() {
    return wasmThreadsAvailable() ? Infinity : 1;
  },
};
