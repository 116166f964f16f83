/**
 * The model worker: loads a model folder (picked files or a URL) or one GGUF file (picked or a URL) on the chosen backend and generates,
 * streaming tokens and Δ to the page. Models run here, not on the page's thread, because a forward pass
 * blocks its thread (and the wasm backend's worker threads need a thread that may block).
 */
import kernelsUrl from '../../dist/wasm/kernels.wasm?url';
import {
  filesFolder,
  hubFolder,
  loadGgufFrom,
  loadModelFrom,
  urlFolder,
  wasmThreadsAvailable,
  type DeltaEvent,
  type Model,
} from '../../src/browser.js';
import type { FromWorker, ModelInfo, ToWorker } from './protocol.js';

const scope = self as unknown as {
  postMessage(m: FromWorker, transfer?: Transferable[]): void;
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
};
const post = (m: FromWorker, transfer?: Transferable[]) => scope.postMessage(m, transfer);

/**
 * Tokens and Δ go to the page in batches, one per STREAM_MS at most (and the first token at once): every message
 * costs the page's thread a task and a repaint (layout, paint, the compositor), CPU time that a decode running on
 * every core has to give up: per token (and per layer for Δ) that was ~28 ms of CPU per mamba-130m token at 2 threads,
 * ~6 ms batched (issue 18; BENCHMARKS.md, `bench/browser-decode.bench.ts`).
 */
const STREAM_MS = 50;
let streamMs = STREAM_MS;
let outbox: FromWorker[] = [];
let outboxTransfer: Transferable[] = [];
let lastSent = -Infinity;

function stream(m: FromWorker, transfer: Transferable[] = [], now = false): void {
  outbox.push(m);
  outboxTransfer.push(...transfer);
  if (now || performance.now() - lastSent >= streamMs) flush();
}

function flush(): void {
  if (outbox.length === 0) return;
  post(outbox.length === 1 ? outbox[0] : { type: 'batch', messages: outbox }, outboxTransfer);
  outbox = [];
  outboxTransfer = [];
  lastSent = performance.now();
}

let model: Model | null = null;
let abort: AbortController | null = null;
let busy = false;

/** null when WebGPU has an adapter here, else why not */
async function webgpuStatus(): Promise<string | null> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return 'this browser has no WebGPU';
  try {
    return (await gpu.requestAdapter()) ? null : 'no WebGPU adapter (GPU driver)';
  } catch (e) {
    return (e as Error).message;
  }
}

function label(id: number): string {
  if (!model?.tokenizer) return String(id);
  const t = model.tokenizer.decode([id], { skipSpecialTokens: false });
  return t === '' ? `#${id}` : t;
}

const isGgufName = (name: string) => name.toLowerCase().endsWith('.gguf');

/** the GGUF file among picked files, when they are not a model folder (no config.json) */
function ggufFile(files: File[]): File | null {
  if (files.some((f) => f.name === 'config.json')) return null;
  const ggufs = files.filter((f) => isGgufName(f.name));
  if (ggufs.length > 1) throw new Error(`pick one GGUF file, not ${ggufs.length} (${ggufs.map((f) => f.name).join(', ')})`);
  return ggufs[0] ?? null;
}

async function load(msg: Extract<ToWorker, { type: 'load' }>): Promise<void> {
  const t0 = performance.now();
  const onProgress = (p: { file: string; loaded: number; total: number }) => post({ type: 'progress', ...p });
  const src = msg.source;
  const opts = { backend: msg.backend, threads: msg.threads, wasmKernelsUrl: kernelsUrl, onProgress };
  model = null;
  // one GGUF file (picked, or a URL ending in .gguf) holds config, weights and tokenizer; else a model folder
  // (a hub name naming a .gguf file, org/name[@revision]/file.gguf, too: fetched into the browser's cache like a folder)
  const gguf = src.kind === 'files' ? ggufFile(src.files) : src.kind === 'url' && isGgufName(new URL(src.url).pathname) ? src.url : src.kind === 'hub' && isGgufName(src.name) ? src.name : null;
  const m = gguf
    ? await loadGgufFrom(gguf, src.kind === 'hub' ? { ...opts, hub: { endpoint: src.endpoint } } : opts)
    : await loadModelFrom(src.kind === 'files' ? filesFolder(src.files) : src.kind === 'url' ? urlFolder(src.url) : await hubFolder(src.name, { endpoint: src.endpoint, onProgress }), opts);
  model = m;
  const d = m.describe();
  const info: ModelInfo = {
    modelType: m.lm.modelType,
    location: m.dir,
    layers: m.lm.numLayers,
    parameters: Number(d.parameters ?? 0),
    vocabSize: m.vocabSize,
    backend: m.lm.backend.name,
    tokenizer: m.tokenizer !== null,
    loadMs: performance.now() - t0,
  };
  post({ type: 'loaded', info });
}

async function generate(msg: Extract<ToWorker, { type: 'generate' }>): Promise<void> {
  if (!model) throw new Error('no model loaded');
  const m = model;
  const ids = typeof msg.prompt === 'string' ? m.encode(msg.prompt) : msg.prompt;
  if (ids.length === 0) throw new Error('the prompt is empty');
  post({ type: 'prompt', ids, labels: ids.map(label) });
  lastSent = performance.now();
  streamMs = msg.streamMs ?? STREAM_MS;
  const s = msg.sampling;
  abort = new AbortController();
  // the wasm backend hands Δ out of its fused decode steps unless told not to (a mutable flag there)
  const be = m.lm.backend as { stepDelta?: boolean };
  if (typeof be.stepDelta === 'boolean') be.stepDelta = msg.stepDelta !== false;
  const onDelta = msg.delta
    ? (e: DeltaEvent) => {
        // [1, L, C] → mean over C per position
        const [, L, C] = e.delta.shape;
        const values = new Float32Array(L);
        for (let t = 0; t < L; t++) {
          let sum = 0;
          for (let c = 0; c < C; c++) sum += e.delta.data[t * C + c];
          values[t] = sum / C;
        }
        stream({ type: 'delta', layer: e.layer, kind: e.kind, values }, [values.buffer]);
      }
    : undefined;
  const res = await m.generate([ids], {
    maxNewTokens: s.maxNewTokens,
    doSample: s.temperature > 0,
    temperature: s.temperature > 0 ? s.temperature : undefined,
    topP: s.temperature > 0 && s.topP < 1 ? s.topP : undefined,
    seed: s.seed,
    signal: abort.signal,
    onDelta,
    onToken: (e) => stream({ type: 'token', id: e.token, label: label(e.token), text: e.text, index: e.index }, [], e.index === 0),
  });
  flush();
  post({
    type: 'done',
    generated: res.generated[0],
    finishReason: res.finishReason[0],
    prefillMs: res.stats.prefillMs,
    decodeMs: res.stats.decodeMs,
    decodeStepMs: res.stats.decodeStepMs,
    tokensPerSecond: res.stats.decodeTokensPerSecond,
  });
}

scope.onmessage = (e) => {
  const msg = e.data;
  if (msg.type === 'stop') {
    abort?.abort();
    return;
  }
  if (busy) {
    post({ type: 'error', during: msg.type, message: 'busy: wait for the current job to finish' });
    return;
  }
  busy = true;
  const job = msg.type === 'load' ? load(msg) : generate(msg);
  job
    .catch((err: unknown) => {
      flush(); // what was generated before the error
      post({ type: 'error', during: msg.type, message: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
    })
    .finally(() => {
      busy = false;
      abort = null;
    });
};

void webgpuStatus().then((webgpu) =>
  post({ type: 'capabilities', caps: { webgpu, wasmThreads: wasmThreadsAvailable(), cores: navigator.hardwareConcurrency ?? 1 } }),
);
