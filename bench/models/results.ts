/** bench/models.bench.ts: what a child measures for one preset (`PresetResult`, `LoadResult`, sent as JSON) and the parent's run. */
import type { MachineInfo, Timed } from '../report.js';
import type { Plan } from './options.js';

export interface PrefillRow {
  algorithm: string;
  promptLength: number;
  time: Timed;
  tokensPerSecond: number;
}

export interface DecodeRow {
  batch: number;
  /** tokens already in the state when the timed steps start */
  context: number;
  steps: number;
  time: Timed;
  /** generated tokens per second, summed over the batch */
  tokensPerSecond: number;
  msPerStep: number;
}

export interface StateSize {
  context: number;
  /** `state.byteSize` for one sequence: every state tensor × 4 bytes, KV-cache capacity included */
  bytes: number;
  /** the same with KV caches counted only up to the filled positions */
  usedBytes: number;
}

export interface MemSample {
  phase: string;
  rss: number;
  heapUsed: number;
  arrayBuffers: number;
}

export interface LoadResult {
  checkpointFileBytes: number;
  writeMs: number;
  /** the first `loadModel` (not in `time`) */
  firstMs: number;
  time: Timed;
}

export interface PresetResult {
  preset: string;
  modelType: string;
  architecture: string;
  layers: number;
  parameters: number;
  /** parameters × 4 (float32) */
  weightBytes: number;
  algorithms: { main: string; reference: string | null; chunkSize: number | null };
  /** os.loadavg() when this preset's child started */
  loadAverageAtStart: number[];
  /** model construction from the random source (weights generated on the spot) */
  build: Timed;
  prefill: PrefillRow[];
  /** main tok/s ÷ reference tok/s per prompt length (> 1: the default algorithm is faster) */
  prefillRatio: { promptLength: number; ratio: number }[];
  /** how the long context was reached: continue the state of a `from`-token prefill with more tokens (1 run) */
  longContextFill: { from: number; to: number; ms: number; tokensPerSecond: number };
  decode: DecodeRow;
  longDecode: DecodeRow;
  batchDecode: DecodeRow;
  state: { short: StateSize; long: StateSize };
  memory: { rssStart: number; rssAfterBuild: number; maxRSS: number; samples: MemSample[] };
  logitsFinite: boolean;
  seconds: number;
  load?: LoadResult;
}

export interface RunResult {
  date: string;
  machine: MachineInfo;
  /** os.loadavg() (1, 5, 15 min) at the start and the end: a loaded machine makes the numbers noisy */
  loadAverage: { start: number[]; end: number[] };
  node: string;
  commit: string;
  command: string;
  quick: boolean;
  plan: Plan;
  presets: PresetResult[];
  failures: { preset: string; error: string }[];
  totalSeconds: number;
}
