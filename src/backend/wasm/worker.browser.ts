/** A wasm kernel worker in browsers (a module Web Worker): its first message is the `WorkerInit`. */
import { runKernelWorker, type WorkerInit } from './runtime.js';

const scope = globalThis as unknown as { onmessage: ((e: { data: WorkerInit }) => void) | null };
scope.onmessage = (e) => {
  scope.onmessage = null;
  runKernelWorker(e.data); // never returns until the runtime stops
};
