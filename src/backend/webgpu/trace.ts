/// <reference types="@webgpu/types" />
/**
 * Counts of the WebGPU API calls a runtime makes (issue 11: the wall time above the GPU time). `traceDevice` wraps a
 * GPUDevice's methods in place — its queue's, and those of the buffers, command encoders and compute passes it
 * creates — so every call through it is counted, wherever in the code it comes from: submits, command buffers,
 * passes, dispatches, buffer copies, `writeBuffer` calls and bytes, `mapAsync` read-backs and the milliseconds spent
 * waiting on them, buffers, bind groups, shader modules and pipelines created. The runtime adds the milliseconds of
 * JavaScript that encoded its submits (`encodeMs`: from the first recorded command to the submit returning is
 * spread over the ops; this is the part inside `flush`, `replay` and the chains). Debug only: the wrappers cost a
 * function call each. On with `MAMBA_TS_WEBGPU_TRACE=1` (the backend is then created traced; `mamba-ts bench` and the
 * WebGPU benches print the counts of each call they time) or `new WebGpuBackend(device, name, { trace: true })`.
 */

/** what `traceDevice` counts (all cumulative since the device was wrapped) */
export interface GpuCallCounts {
  submits: number;
  commandBuffers: number;
  computePasses: number;
  dispatches: number;
  /** copyBufferToBuffer calls */
  copies: number;
  writeBuffers: number;
  writeBytes: number;
  /** mapAsync calls (read-backs) */
  maps: number;
  /** milliseconds from mapAsync to its promise settling, summed (wall time the host waited on the GPU, if it awaited) */
  mapWaitMs: number;
  buffers: number;
  bufferBytes: number;
  bindGroups: number;
  shaderModules: number;
  pipelines: number;
  /** onSubmittedWorkDone calls */
  syncs: number;
  /** milliseconds of JavaScript in the runtime's encoding of submits (GpuRuntime: flush, replay, chains) */
  encodeMs: number;
}

export const ZERO_COUNTS: Readonly<GpuCallCounts> = Object.freeze({
  submits: 0, commandBuffers: 0, computePasses: 0, dispatches: 0, copies: 0, writeBuffers: 0, writeBytes: 0, maps: 0, mapWaitMs: 0,
  buffers: 0, bufferBytes: 0, bindGroups: 0, shaderModules: 0, pipelines: 0, syncs: 0, encodeMs: 0,
});

/** b − a, field by field */
export function countsSince(a: Readonly<GpuCallCounts>, b: Readonly<GpuCallCounts>): GpuCallCounts {
  const out = { ...ZERO_COUNTS } as GpuCallCounts;
  for (const k of Object.keys(out) as (keyof GpuCallCounts)[]) out[k] = b[k] - a[k];
  return out;
}

/** one line: the counts that are not zero (bytes in KiB, ms to 0.1) */
export function formatCounts(c: Readonly<GpuCallCounts>): string {
  const parts: string[] = [];
  const n = (k: keyof GpuCallCounts, label: string) => {
    if (c[k]) parts.push(`${label} ${c[k]}`);
  };
  n('submits', 'submits');
  n('commandBuffers', 'cmdbufs');
  n('computePasses', 'passes');
  n('dispatches', 'dispatches');
  n('copies', 'copies');
  if (c.writeBuffers) parts.push(`writeBuffer ${c.writeBuffers} (${(c.writeBytes / 1024).toFixed(1)} KiB)`);
  if (c.maps) parts.push(`mapAsync ${c.maps} (${c.mapWaitMs.toFixed(1)} ms waited)`);
  if (c.buffers) parts.push(`buffers created ${c.buffers} (${(c.bufferBytes / 2 ** 20).toFixed(1)} MiB)`);
  n('bindGroups', 'bind groups created');
  n('shaderModules', 'shader modules');
  n('pipelines', 'pipelines compiled');
  n('syncs', 'onSubmittedWorkDone');
  parts.push(`encode JS ${c.encodeMs.toFixed(1)} ms`);
  return parts.join(', ');
}

/** whether MAMBA_TS_WEBGPU_TRACE asks for traced devices */
export function traceFromEnv(): boolean {
  const v = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.MAMBA_TS_WEBGPU_TRACE;
  if (v === undefined || v === '' || v === '0') return false;
  if (v !== '1') throw new Error(`MAMBA_TS_WEBGPU_TRACE: 1 (count the WebGPU calls) or 0, got ${JSON.stringify(v)}`);
  return true;
}

type Fn = (...args: never[]) => unknown;
/** marks a wrapper (an object handed out again, such as a null device's pass, is wrapped once) */
const TRACED = Symbol('traced');
/** replace `obj[name]` by a wrapper that runs `before(args)` then the original (as a method of obj) */
function wrap<T extends object>(obj: T, name: string, before: (args: unknown[], result?: unknown) => void, after?: (result: unknown, args: unknown[]) => unknown): void {
  const o = obj as Record<string | symbol, Fn>;
  const orig = o[name];
  if (typeof orig !== 'function' || (orig as { [TRACED]?: boolean })[TRACED]) return; 
  const w = function (this: unknown, ...args: never[]) {
    before(args);
    const r = orig.apply(this, args);
    return after ? after(r, args) : r;
  } as Fn;
  (w as { [TRACED]?: boolean })[TRACED] = true;
  o[name] = w;
}

/** wrap `device` in place; returns the live counts (the runtime adds `encodeMs`) */
export function traceDevice(device: GPUDevice): GpuCallCounts {
  const c = { ...ZERO_COUNTS } as GpuCallCounts;
  const onBuffer = (b: GPUBuffer) => {
    wrap(b, 'mapAsync', () => void c.maps++, (p) => {
      const t0 = performance.now();
      const done = () => void (c.mapWaitMs += performance.now() - t0);
      (p as Promise<void>).then(done, done);
      return p;
    });
    return b;
  };
  wrap(device, 'createBuffer', (a) => {
    c.buffers++;
    c.bufferBytes += (a[0] as GPUBufferDescriptor).size;
  }, (b) => onBuffer(b as GPUBuffer));
  wrap(device, 'createBindGroup', () => void c.bindGroups++);
  wrap(device, 'createShaderModule', () => void c.shaderModules++);
  wrap(device, 'createComputePipeline', () => void c.pipelines++);
  wrap(device, 'createComputePipelineAsync', () => void c.pipelines++);
  wrap(device, 'createCommandEncoder', () => {}, (e) => {
    const enc = e as GPUCommandEncoder;
    wrap(enc, 'copyBufferToBuffer', () => void c.copies++);
    wrap(enc, 'beginComputePass', () => void c.computePasses++, (p) => {
      wrap(p as GPUComputePassEncoder, 'dispatchWorkgroups', () => void c.dispatches++);
      return p;
    });
    wrap(enc, 'finish', () => void c.commandBuffers++);
    return enc;
  });
  const q = device.queue;
  wrap(q, 'submit', () => void c.submits++);
  wrap(q, 'writeBuffer', (a) => {
    c.writeBuffers++;
    // (buffer, offset, data, dataOffset?, size?): size in elements of a typed array, else bytes
    const data = a[2] as ArrayBufferView | ArrayBuffer;
    const el = ArrayBuffer.isView(data) ? (data as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1 : 1;
    const whole = data.byteLength - (a[3] !== undefined ? Number(a[3]) * el : 0);
    c.writeBytes += a[4] !== undefined ? Number(a[4]) * el : whole;
  });
  wrap(q, 'onSubmittedWorkDone', () => void c.syncs++);
  return c;
}
