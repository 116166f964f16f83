/**
 * What every causal language model in mamba-ts offers to generation, the CLI and the server.
 * Architectures implement `CausalLM`; `src/models/registry.ts` maps config.json to one.
 */
import type { Backend } from '../backend/backend.js';
import type { HostTensor } from '../tensor/tensor.js';
import type { ModelState } from './state.js';

export interface ForwardOptions {
  /** also return hidden states, in the convention of the Hugging Face class the model mirrors */
  outputHiddenStates?: boolean;
  /** start from (and advance) this state instead of an empty one */
  state?: ModelState;
  /** only compute logits for the last n positions (generation needs 1) */
  logitsToKeep?: number;
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
  /** An empty state for `batch` sequences. */
  createState(batch: number): ModelState;
  /**
   * Read `ids` (one equal-length row per sequence in `state`) and advance the state; returns the logits of
   * each row's last position, [batch, vocab]. Prefill and single-token decode are the same call.
   */
  advance(ids: number[][], state: ModelState): Promise<HostTensor>;
  /** parameter count and config summary, for `mamba-ts info` */
  describe(): Record<string, unknown>;
}
