/**
 * The kernel module (dist/wasm/kernels.wasm) instantiated on a shared memory of the tests' own, a bump allocator
 * over it, and the comparisons the kernel tests share.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as v8 from 'node:v8';

export const memory = new WebAssembly.Memory({ initial: 64, maximum: 65536, shared: true });
const wasmPath = fileURLToPath(new URL('../../wasm/kernels.wasm', import.meta.url));
const wasmModule = new WebAssembly.Module(readFileSync(wasmPath));
/** the module's exports, typed by each test */
export function instantiateKernels<K>(): K {
  return new WebAssembly.Instance(wasmModule, { env: { memory, abort() {} } }).exports as unknown as K;
}

/**
 * The relaxed-SIMD build (dist/wasm/kernels-relaxed.wasm: the same kernels, gemm.ts with fused multiply-adds) on the
 * same memory, enabling relaxed SIMD in V8 as the runtime does on Node 20 (platform.ts)
 */
export function instantiateRelaxedKernels<K>(): K {
  const bytes = readFileSync(fileURLToPath(new URL('../../wasm/kernels-relaxed.wasm', import.meta.url)));
  if (!WebAssembly.validate(bytes)) v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  return new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory, abort() {} } }).exports as unknown as K;
}

const BASE = 65536; // arrays live above the first 64 KiB
let top = BASE;

/** forget every array (views taken before stay valid, their contents don't) */
export function resetArena(): void {
  top = BASE;
}

/** room for `bytes` at a 16-byte aligned offset (contents undefined) */
export function allocBytes(bytes: number): number {
  const off = top;
  top += Math.ceil(bytes / 16) * 16 + 16;
  const need = Math.ceil(top / 65536);
  const have = memory.buffer.byteLength / 65536;
  if (need > have) memory.grow(need - have);
  return off;
}

/** a zeroed f32 array of n elements at a 16-byte aligned offset; returns [offset, view] */
export function alloc(n: number): [number, Float32Array] {
  const off = allocBytes(n * 4);
  const view = f32At(off, n);
  view.fill(0);
  return [off, view];
}

/** a copy of `a` in the arena (0 for null: the kernels' "absent") */
export function put(a: Float32Array | Uint16Array | Int8Array | Uint8Array | null): number {
  if (!a) return 0;
  const off = allocBytes(a.byteLength);
  new Uint8Array(memory.buffer, off, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return off;
}

export const f32At = (off: number, n: number): Float32Array => new Float32Array(memory.buffer, off, n);
export const i8At = (off: number, n: number): Int8Array => new Int8Array(memory.buffer, off, n);
export const i16At = (off: number, n: number): Int16Array => new Int16Array(memory.buffer, off, n);

/** max over i of |got − want| / max(1, |want|) (NaN/length mismatch → Infinity) */
export function maxScaledErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return Infinity;
  let m = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i]));
    if (!(e <= m)) m = Number.isNaN(e) ? Infinity : e;
  }
  return m;
}

export function assertBitEqual(got: Float32Array, want: Float32Array, what: string): void {
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < w.length; i++) {
    if (g[i] !== w[i]) assert.fail(`${what}: element ${i} differs: ${got[i]} vs ${want[i]}`);
  }
}

/** [start, end) slices of [0, n) cut at uneven points */
export function unevenSlices(n: number): [number, number][] {
  const cuts = [0, ...[1, Math.floor(n / 3) + 1, Math.floor((2 * n) / 3) + 2].filter((c) => c > 0 && c < n), n];
  const uniq = [...new Set(cuts)].sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (let i = 0; i + 1 < uniq.length; i++) out.push([uniq[i], uniq[i + 1]]);
  return out;
}
