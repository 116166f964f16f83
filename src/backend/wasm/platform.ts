/**
 * The wasm runtime's host on Node: kernels.wasm read from disk, worker_threads, all cores. Browser bundles
 * get `platform.browser.ts` instead (package.json "browser" field; web/vite.config.ts).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { WasmPlatform } from './runtime.js';

export const platform: WasmPlatform = {
  loadKernels(url) {
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = new Uint8Array(fs.readFileSync(url));
    } catch {
      throw new Error(`wasm backend: ${url.pathname} not found; run \`npm run build\` (it compiles the AssemblyScript kernels)`);
    }
    return new WebAssembly.Module(bytes);
  },
  spawnWorker(init) {
    const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: init });
    w.unref();
    return w;
  },
  defaultThreads() {
    return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  },
  maxThreads() {
    return Infinity;
  },
};
