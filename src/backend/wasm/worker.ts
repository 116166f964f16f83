/** A wasm kernel worker on Node: waits on the control block, runs its slice of each published call. */
import { workerData } from 'node:worker_threads';
import { runKernelWorker, type WorkerInit } from './runtime.js';

runKernelWorker(workerData as WorkerInit);
