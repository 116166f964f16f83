/**
 * What every causal language model in mamba-ts offers to generation, the CLI and the server.
 * Architectures implement `CausalLM`; `src/models/registry.ts` maps config.json to one.
 */
import type { Backend } from '../backend/backend.js';
import type { HostTensor } from '../tensor/tensor.js';
import type { ModelState } from './state.js';
import type { KvCacheDType } from '../tensor/dtype.js';

export interface ForwardOptions {
  /** also return hidden states, in the convention of the Hugging Face class the model mirrors */
  outputHiddenStates?: boolean;
  /** start from (and advance) this state instead of an empty one */
  state?: ModelState;
  /** only compute logits for the last n positions (generation needs 1) */
  logitsToKeep?: number;
  /** receive Δ of every Mamba layer for this call's positions (see `DeltaEvent`); costs nothing when unset */
  onDelta?: DeltaObserver;
}

/**
 * Δ, the selection step of one Mamba layer, for the positions of one forward call: small Δ keeps the state
 * (the model remembers), large Δ overwrites it with the current input (it forgets). Events arrive in layer
 * order before `forward` / `advance` returns.
 */
export interface DeltaEvent {
  /** block index (0-based) */
  layer: number;
  kind: 'mamba1' | 'mamba2';
  /**
   * Δ after softplus (and, for Mamba-2, the clamp to time_step_limit that the scan applies):
   * [batch, positions, D] per channel for Mamba-1, [batch, positions, nHeads] per head for Mamba-2
   */
  delta: HostTensor;
}

export type DeltaObserver = (e: DeltaEvent) => void;

/** Options of one `advance` / `advanceArgmax` call. */
export interface StepOptions {
  /** receive Δ of every Mamba layer for this call's positions (as `ForwardOptions.onDelta`) */
  onDelta?: DeltaObserver;
}

/** Sampling on the device (`CausalLM.advanceSample`): resolved options (temperature > 0) and the rows' RNG streams. */
export interface DeviceSampling {
  temperature: number;
  /** 0 = off */
  topK: number;
  /** 1 = off */
  topP: number;
  /** 0 = off */
  minP: number;
  /** 1 = off */
  repetitionPenalty: number;
  /** per row: the seed of its Philox stream */
  seeds: number[];
  /** per row: the index of the token drawn next (its Philox counter; each draw advances it on the device) */
  counters: number[];
  /** per row: the ids seen so far (prompt + generated), for the repetition penalty */
  history?: number[][];
}

export interface ForwardOutput {
  /** [batch, positions, vocab] */
  logits: HostTensor;
  hiddenStates?: HostTensor[];
}

export interface CausalLM {
  readonly modelType: string;
  readonly vocabSize: number;
  readonly numLayers: number;
  readonly backend: Backend;
  /** token ids that end generation by default (from config.json / generation_config.json) */
  readonly eosTokenIds: number[];
  /** Full forward over a rectangular batch of token ids. */
  forward(ids: number[][], opts?: ForwardOptions): Promise<ForwardOutput>;
  /**
   * The storage of attention KV caches in the states `createState` makes (default 'f32'; the load option `kvCache`).
   * Setting it changes states created afterwards; a backend that cannot store the format refuses at createState.
   */
  kvCache?: KvCacheDType;
  /** An empty state for `batch` sequences; `kvCache` overrides the model's format of KV caches for this state. */
  createState(batch: number, opts?: { kvCache?: KvCacheDType }): ModelState;
  /**
   * Model-level Δ observer: when set, every forward and advance (so generation too) reports Δ to it, as
   * `ForwardOptions.onDelta` does for one call; it is shared by all calls on the model (a call's own `onDelta`
   * takes its place for that call). Models without Mamba layers never call it.
   */
  onDelta?: DeltaObserver | null;
  /**
   * Read `ids` (one equal-length row per sequence in `state`) and advance the state; returns the logits of
   * each row's last position, [batch, vocab]. Prefill and single-token decode are the same call.
   */
  advance(ids: number[][], state: ModelState, opts?: StepOptions): Promise<HostTensor>;
  /**
   * Optional: `advance`, but returning each row's greedy token (argmax of the last position's logits, −1 when
   * none is selectable) computed where the logits are; null when the backend cannot (nothing is run then).
   */
  advanceArgmax?(ids: number[][], state: ModelState, opts?: StepOptions): Promise<Int32Array | null>;
  /** Optional: n greedy steps with the tokens kept on the device (see DecoderLM.greedyChain); null if unsupported */
  greedyChain?(ids: number[][], state: ModelState, n: number): Promise<Int32Array[] | null>;
  /** whether greedyChain can run on this model's backend (no host round trip between its steps) */
  readonly chainsOnDevice?: boolean;
  /** Optional: `advance`, returning each row's token drawn on the device (see DecoderLM.advanceSample); null if unsupported */
  advanceSample?(ids: number[][], state: ModelState, s: DeviceSampling, opts?: StepOptions): Promise<Int32Array | null>;
  /** Optional: queue n picking steps on the device and return at once (see DecoderLM.submitChain) */
  submitChain?(ids: number[][] | null, state: ModelState, n: number, pick?: DeviceSampling | null): Promise<Int32Array[]> | null;
  /** Optional: read the given tokens step by step, nothing read back ([steps][rows] ids; see DecoderLM.feedSteps) */
  feedSteps?(steps: number[][], state: ModelState): Promise<void>;
  /** parameter count and config summary, for `mamba-ts info` */
  describe(): Record<string, unknown>;
}
