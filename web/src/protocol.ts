/** Messages between the page (main.ts) and the model worker (worker.ts). */
import type { BackendName } from '../../src/browser.js';

export type ModelSource =
  | { kind: 'files'; files: File[] }
  | { kind: 'url'; url: string }
  /** a Hugging Face hub name (org/name[@rev]), fetched from `endpoint` and kept in the Cache API */
  | { kind: 'hub'; name: string; endpoint: string };

export interface SamplingSettings {
  maxNewTokens: number;
  /** 0 = greedy */
  temperature: number;
  topP: number;
  seed: number;
}

export type ToWorker =
  | { type: 'load'; source: ModelSource; backend: BackendName; threads?: number }
  /**
   * streamMs: tokens and Δ are sent in batches at most this often (default worker.ts STREAM_MS; 0 = each as it comes);
   * stepDelta false: Δ observed through the op sequence, not handed out by the backend's fused decode step (as before
   * issue 18's fix; benchmarks compare)
   */
  | { type: 'generate'; prompt: string | number[]; sampling: SamplingSettings; delta: boolean; streamMs?: number; stepDelta?: boolean }
  | { type: 'stop' };

export interface ModelInfo {
  modelType: string;
  location: string;
  layers: number;
  parameters: number;
  vocabSize: number;
  backend: string;
  tokenizer: boolean;
  loadMs: number;
}

export interface Capabilities {
  webgpu: string | null; // null = available, else why not
  wasmThreads: boolean;
  cores: number;
}

export type FromWorker =
  | { type: 'capabilities'; caps: Capabilities }
  | { type: 'progress'; file: string; loaded: number; total: number }
  | { type: 'loaded'; info: ModelInfo }
  /** the prompt as the model reads it: ids and a display label per token */
  | { type: 'prompt'; ids: number[]; labels: string[] }
  | { type: 'token'; id: number; label: string; text: string; index: number }
  /** mean Δ of one Mamba layer over its channels (Mamba-1) or heads (Mamba-2), one value per position read */
  | { type: 'delta'; layer: number; kind: 'mamba1' | 'mamba2'; values: Float32Array }
  | {
      type: 'done';
      generated: number[];
      finishReason: string;
      prefillMs: number;
      decodeMs: number;
      /** the part of decodeMs in the model's decode steps (the rest: sampling, streaming, between tokens) */
      decodeStepMs: number;
      tokensPerSecond: number;
    }
  | { type: 'error'; during: 'load' | 'generate' | 'init'; message: string }
  /**
   * streamed messages (tokens, Δ) sent together: the worker sends at most one batch per ~50 ms (worker.ts
   * STREAM_MS), so that the page handles and repaints a few times per second, not once per token and layer
   */
  | { type: 'batch'; messages: FromWorker[] };
