/**
 * The wasm runtime's host on Node: kernels.wasm read from disk, worker_threads, all cores. Browser bundles
 * get `platform.browser.ts` instead (package.json "browser" field; web/vite.config.ts).
 *
 * Where it can, Node runs kernels-relaxed.wasm instead: the same kernels built with relaxed SIMD, whose prefill GEMM
 * (assembly/gemm.ts) uses fused multiply-adds. Node 22+ has relaxed SIMD on; Node 20's V8 has it behind
 * --experimental-wasm-relaxed-simd, which is set here (v8.setFlagsFromString) when the module does not validate
 * without it — process-wide, for every later WebAssembly module too, at the first wasm backend (not at import).
 * Opt-out: the environment variable MAMBA_TS_WASM_RELAXED=0 keeps the plain module and never sets the flag
 * (`backend.runtime.fused` says which build loaded: true for the relaxed one).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as v8 from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { WasmPlatform } from './runtime.js';

/**
 * Whether this V8 has relaxed SIMD only behind --experimental-wasm-relaxed-simd: before 11.4 (Node 20's 11.3), where
 * its baseline compiler (Liftoff) also miscompiles i32x4.relaxed_dot_i8x16_i7x16_add_s (the 4th row of gemm_q8's
 * tiles came out wrong under --liftoff-only; TurboFan's code was exact). By version, not by whether the flag was
 * needed here: another module of the process may have set it first.
 */
export function relaxedBehindFlag(): boolean {
  const [major, minor] = (process.versions.v8 ?? '').split('.').map(Number);
  return major < 11 || (major === 11 && minor < 4);
}

/** kernels-relaxed.wasm next to `url`, compiled, if it exists and this engine runs relaxed SIMD (else null) */
function relaxedKernels(url: URL): WebAssembly.Module | null {
  if (process.env.MAMBA_TS_WASM_RELAXED === '0') return null;
  const relaxed = new URL(url.href.replace(/kernels\.wasm$/, 'kernels-relaxed.wasm'));
  if (relaxed.href === url.href || !fs.existsSync(relaxed)) return null;
  const bytes = new Uint8Array(fs.readFileSync(relaxed));
  if (!WebAssembly.validate(bytes)) {
    v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
    if (!WebAssembly.validate(bytes)) return null;
  }
  return new WebAssembly.Module(bytes);
}

export const platform: WasmPlatform = {
  loadKernels(url) {
    const relaxed = relaxedKernels(url);
    if (relaxed) return relaxed;
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
  relaxedExperimental: relaxedBehindFlag,
};
