/** A wasm kernel worker: waits on the control block, runs its slice of each published call. */
import { workerData } from 'node:worker_threads';
import { CONTROL, slice, type KernelExports } from './runtime.js';

const { module, memory, ctrl, args, names, index, threads } = workerData as {
  module: WebAssembly.Module; memory: WebAssembly.Memory; ctrl: Int32Array; args: Float64Array; names: string[]; index: number; threads: number;
};
const instance = new WebAssembly.Instance(module, { env: { memory, abort: () => { throw new Error('wasm kernel abort'); } } });
const kernels = instance.exports as unknown as KernelExports;

let seen = Atomics.load(ctrl, CONTROL.GEN);
Atomics.add(ctrl, CONTROL.READY, 1);
Atomics.notify(ctrl, CONTROL.READY);
for (;;) {
  Atomics.wait(ctrl, CONTROL.GEN, seen);
  seen = Atomics.load(ctrl, CONTROL.GEN);
  if (Atomics.load(ctrl, CONTROL.STOP)) break;
  const nargs = Atomics.load(ctrl, CONTROL.NARGS);
  const a: number[] = [];
  for (let i = 0; i < nargs; i++) a.push(args[i]);
  const n = args[nargs];
  const align = args[nargs + 1];
  const used = Math.min(threads, Math.max(1, Math.ceil(n / align)));
  const [lo, hi] = slice(index, used, n, align, threads);
  if (lo < hi) kernels[names[Atomics.load(ctrl, CONTROL.KERNEL)]](...a, lo, hi);
  Atomics.add(ctrl, CONTROL.DONE, 1);
  Atomics.notify(ctrl, CONTROL.DONE);
}
