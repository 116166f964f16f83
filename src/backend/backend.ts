/**
 * The backend interface: the primitives every backend implements (CPU now; WebAssembly SIMD and
 * WebGPU next). Shapes are validated once, in `src/tensor/ops.ts`; kernels assume valid input.
 *
 * Design rules, so that the coming backends and autograd fit without changing model code:
 * - Results stay backend-resident; only `read` crosses to the host, and it is async.
 * - Every op returns a new tensor, except the recurrent-state ops, which update the state tensors they
 *   are given in place (conv window, SSM state); inference only — training runs without state.
 * - Ops are pure functions of their inputs and a small attribute record, so an autograd tape can
 *   record (op name, inputs, attrs) and a backward rule per op (see `OpName`).
 */
import type { GradNode, Shape, Tensor } from '../tensor/tensor.js';
import type { KvCacheDType } from '../tensor/dtype.js';
import { OpError } from '../errors.js';

export type OpName =
  | 'embedding'
  | 'linear'
  | 'rms_norm'
  | 'rms_norm_gated'
  | 'add'
  | 'scale'
  | 'activation'
  | 'silu_mul'
  | 'split'
  | 'causal_conv1d'
  | 'selective_scan'
  | 'ssd'
  | 'rope'
  | 'attention'
  | 'concat_rows'
  | 'take_rows'
  | 'scatter_add_rows'
  | 'pad_time';

export type Activation = 'silu' | 'relu2' | 'gelu_tanh' | 'relu';
/** what `Backend.activation` computes: the MLP activations, −exp (A = −exp(A_log)) and the logistic sigmoid */
export type Elementwise = Activation | 'neg_exp' | 'sigmoid';

/**
 * The ops the autograd tape records (`src/autograd/tape.ts`), by name: the forward primitives of the same name
 * (`linear`, `ssd`, …) except the ones that only inference uses (batching states, growing caches, in-place
 * scatter), plus what only training needs (views, the loss, MoE routing weights and combine, the S4D convolution).
 */
export type DiffOp =
  | Exclude<OpName, 'concat_rows' | 'scatter_add_rows' | 'pad_time'>
  | 'reshape'
  | 'mul'
  | 'mean_time'
  | 's4d_kernel'
  | 'fft_conv'
  | 'cross_entropy'
  | 'route_weights'
  | 'scatter_rows';

/** the non-tensor arguments of a recorded op (each op reads the ones it has) */
export interface DiffAttrs {
  shape?: readonly number[];
  ids?: Int32Array;
  eps?: number;
  groupSize?: number;
  scalar?: number;
  kind?: string;
  sizes?: readonly number[];
  softplus?: boolean;
  chunkSize?: number;
  dtLimit?: [number, number];
  positions?: Int32Array;
  rotaryDim?: number;
  theta?: number;
  rows?: Int32Array;
  count?: number;
  length?: number;
  targets?: Int32Array;
  ignoreIndex?: number;
  experts?: Int32Array;
  topK?: number;
  routing?: string;
}

/** An op run differentiably: its outputs, how output gradients become input gradients, and host-side results. */
export interface Differentiated extends Pick<GradNode, 'backward' | 'release'> {
  outputs: Tensor[];
  /** numbers the op computes on the way (the loss's count of scored rows and correct predictions) */
  info?: Record<string, number>;
}

/** Arguments of Mamba-2's SSD scan (multi-head, grouped B/C, scalar A per head). */
export interface SsdArgs {
  /** [b, L, nh, hd] */
  x: Tensor;
  /** Δ before bias/softplus/clamp, [b, L, nh] */
  dt: Tensor;
  /** [nh], negative */
  A: Tensor;
  /** [b, L, G, N]; head h uses group ⌊h / (nh/G)⌋ */
  B: Tensor;
  C: Tensor;
  /** [nh] skip */
  D: Tensor | null;
  /** [nh] */
  dtBias: Tensor | null;
  /** Δ ← clamp(softplus(Δ + bias), lo, hi) */
  dtLimit: [number, number];
  /** [b, nh, hd, N] in/out, or null */
  state: Tensor | null;
  /**
   * 'chunked' (the SSD algorithm), 'quadratic' (the masked-attention dual form) or 'recurrent'; one that the
   * backend's `prefill.ssd` does not list throws
   */
  algorithm: SsdAlgorithm;
  /** chunk length of 'chunked' where `prefill.chunkSize` (else the backend's own) */
  chunkSize: number;
}

/**
 * A decode step's attention half (one new position per row) for `attentionDecode`: q/k/v of h, RoPE, the KV cache
 * append, attention over the cache and o_proj.
 */
export interface AttentionDecodeArgs {
  /** [b, H], one new position per row */
  h: Tensor;
  /** [weight, bias] each: q [Hq·hd, H], k and v [Hkv·hd, H], o [H', Hq·hd] */
  q: readonly [Tensor, Tensor | null];
  k: readonly [Tensor, Tensor | null];
  v: readonly [Tensor, Tensor | null];
  o: readonly [Tensor, Tensor | null];
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** rotate-half RoPE on the first rotaryDim channels of each head; null: none */
  rope: { rotaryDim: number; theta: number } | null;
  /** [b, T, Hkv, hd] each, T > pastLen[r]: the new k/v go to position pastLen[r] */
  cacheK: Tensor;
  cacheV: Tensor;
  pastLen: readonly number[];
  scale: number;
}

/**
 * The pre-norm and the residual around a sublayer f of a decoder block: x + scale · f(rmsNorm(x, norm, eps)) (norm
 * null: f(x)), as DecoderLM computes it with `rmsNorm`, `scale` and `add` (the same numbers).
 */
export interface SublayerResidual {
  norm: Tensor | null;
  eps: number;
  scale: number;
}

/**
 * A prefill's attention half (L ≥ 2 new positions per row) for `attentionPrefill`: q/k/v of h, RoPE, the KV cache
 * write (where there is a cache), causal attention and o_proj.
 */
export interface AttentionPrefillArgs extends Omit<AttentionDecodeArgs, 'h' | 'cacheK' | 'cacheV'> {
  /** [b, L, H] (with `residual`: the residual stream x, the layer's input before its norm) */
  h: Tensor;
  /** given: the result is x + scale · o_proj(…) of h = x, with q/k/v of rmsNorm(x) (SublayerResidual) */
  residual?: SublayerResidual;
  /** [b, T, Hkv, hd] each, T ≥ pastLen[r] + L: the new k/v go to positions pastLen[r] … (null: no cache, pastLen zeros) */
  cacheK: Tensor | null;
  cacheV: Tensor | null;
}

/** Causal (grouped-query) attention with an optional KV cache. */
export interface AttentionArgs {
  /** [b, L, Hq, hd] */
  q: Tensor;
  /** [b, L, Hkv, hd] (positions already encoded), Hq a multiple of Hkv */
  k: Tensor;
  v: Tensor;
  /**
   * KV cache [b, T, Hkv, hd] each; row r holds `pastLen[r]` valid positions. The new k/v are written at
   * pastLen[r] … pastLen[r]+L−1 (T must be large enough) and queries attend to everything before them.
   * null: no cache, the L new positions attend among themselves.
   */
  cacheK: Tensor | null;
  cacheV: Tensor | null;
  pastLen: readonly number[];
  /** softmax scale (1/√hd usually) */
  scale: number;
}

/** Arguments of the Mamba-1 selective scan (S6), channel-last layout. */
export interface SelectiveScanArgs {
  /** input after conv+SiLU, [b, L, D] */
  u: Tensor;
  /** Δ before bias and softplus, [b, L, D] */
  delta: Tensor;
  /** A = −exp(A_log), [D, N] */
  A: Tensor;
  /** input-dependent B and C, [b, L, N] */
  B: Tensor;
  C: Tensor;
  /** skip connection, [D] */
  D: Tensor | null;
  /** gate, [b, L, D]: y ← y · silu(z) */
  z: Tensor | null;
  /** added to Δ before the softplus, [D] */
  deltaBias: Tensor | null;
  deltaSoftplus: boolean;
  /** [b, D, N]: read as h₀, overwritten with h_L. null → h₀ = 0 and the final state is dropped. */
  state: Tensor | null;
  /**
   * Scan algorithm. 'sequential': one pass over time. 'chunked': the parallel two-level scan (chunks scanned
   * independently from zero state, carries combined across chunks, then applied), which is what parallel
   * backends run. One that the backend's `prefill.scan` does not list throws.
   */
  algorithm: ScanAlgorithm;
  /** chunk length of 'chunked' where `prefill.chunkSize` (else the backend's own) */
  chunkSize: number;
}

export interface CausalConv1dArgs {
  /** [b, L, C] */
  x: Tensor;
  /** depthwise kernel [C, K] */
  weight: Tensor;
  /** [C] */
  bias: Tensor | null;
  /**
   * [b, C, K] window of the last K pre-conv inputs (slot K−1 = newest), read as history and overwritten
   * with the window after this input. null → zero history, nothing kept.
   */
  state: Tensor | null;
  activation: 'silu' | 'none';
}

export type ScanAlgorithm = 'sequential' | 'chunked';
export type SsdAlgorithm = 'chunked' | 'quadratic' | 'recurrent';

/**
 * Which prefill algorithms a backend runs as asked (`Backend.prefill`). A model runs the first of each list
 * unless its options name another; an algorithm not listed is refused (loaders: before anything is read;
 * `buildModel`: before the first weight), never swapped for another one silently.
 */
export interface PrefillSupport {
  /** `selectiveScan` algorithms, the backend's default first */
  scan: readonly ScanAlgorithm[];
  /** `ssd` algorithms, the backend's default first */
  ssd: readonly SsdAlgorithm[];
  /** whether `chunkSize` is honoured; false: the backend chooses its own chunks, and a given one is refused */
  chunkSize: boolean;
}

/** What each backend family runs (the named backends of the loaders; each backend's `prefill` is its entry). */
export const PREFILL_SUPPORT = {
  /** the TypeScript reference: every algorithm */
  cpu: { scan: ['chunked', 'sequential'], ssd: ['chunked', 'quadratic', 'recurrent'], chunkSize: true },
  /** the sequential scan, the chunked SSD and the SSD recurrence in wasm; the chunked scan and the quadratic SSD by the CPU kernels */
  wasm: { scan: ['sequential', 'chunked'], ssd: ['chunked', 'recurrent', 'quadratic'], chunkSize: true },
  /**
   * no quadratic SSD; chunk lengths from the device (SSD: 64 or 32 by workgroup memory; scan: by occupancy).
   * (Its 'simple' kernels put 'recurrent' first.)
   */
  webgpu: { scan: ['chunked', 'sequential'], ssd: ['chunked', 'recurrent'], chunkSize: false },
} as const satisfies Record<string, PrefillSupport>;

/** An op asked for an algorithm its backend has no kernels for (`Backend.prefill` does not list it). */
export class UnsupportedAlgorithmError extends OpError {}

/** `b.prefill`, or the CPU reference's (every algorithm) for a backend that does not say */
export function prefillSupport(b: Backend): PrefillSupport {
  return b.prefill ?? PREFILL_SUPPORT.cpu;
}

export interface Backend {
  readonly name: string;
  /** the prefill algorithms it runs (absent: all, as the CPU reference) */
  readonly prefill?: PrefillSupport;

  // ---- memory -------------------------------------------------------------------------------
  /**
   * Wrap/upload host data. The backend may keep `data` without copying: callers hand over ownership.
   * `matrix`: a weight matrix [out, in] used only by `linear` (and, for embeddings, `embedding`); a backend
   * may store it in a reduced-precision format (bf16, f16, q8) chosen at load time, unless `float32` is set
   * (small matrices the model keeps exact, e.g. Mamba-1's x_proj and dt_proj). `stored`: the matrix as its file
   * stores it (a GGUF tensor's ggml type and bytes), for a backend that can keep that format (wasm: Q4_K).
   * `kvCache`: a KV cache stored in that format (see `zeros`).
   */
  fromHost(data: Float32Array, shape: Shape, opts?: { matrix?: boolean; float32?: boolean; stored?: () => StoredMatrix | undefined; kvCache?: KvCacheDType }): Tensor;
  /**
   * `kvCache`: a KV cache stored in that format (bf16/f16: 16-bit values, written round-to-nearest-even; default
   * f32). The row ops (takeRows, concatRows, padTime, scatterAddRows) and attention keep it; reads give f32. A
   * backend without 16-bit caches throws a LoadOptionError naming the option.
   */
  zeros(shape: Shape, kvCache?: KvCacheDType): Tensor;
  read(t: Tensor): Promise<Float32Array>;
  /** throws on backends without host-resident storage */
  readSync(t: Tensor): Float32Array;
  dispose(t: Tensor): void;

  // ---- primitives ---------------------------------------------------------------------------
  /** table [V, H], ids (validated) → [ids.length, H] */
  embedding(table: Tensor, ids: Int32Array): Tensor;
  /** x [M, K] · wᵀ, w [N, K] (+ bias [N]) → [M, N] */
  linear(x: Tensor, w: Tensor, bias: Tensor | null): Tensor;
  /**
   * Optional (wasm): `linear` of one x with each of several weights (a layer's q/k/v, an MLP's gate/up) in one call,
   * the same numbers as separate calls; null when it does not handle these (the caller then calls `linear` per weight).
   */
  linearMany?(x: Tensor, ws: ReadonlyArray<readonly [Tensor, Tensor | null]>): Tensor[] | null;
  /**
   * Optional (wasm decode and prefill): a gated MLP, down(silu(gate(x)) · up(x)) for x [M, H], each [weight, bias], in
   * one call; the same numbers as `linearMany`, `siluMul` and `linear`. With `residual`: x is the residual stream and
   * the result x + scale · down(…) of rmsNorm(x) (SublayerResidual). null when it does not handle these (a given
   * `residual` included).
   */
  gatedMlp?(x: Tensor, gate: readonly [Tensor, Tensor | null], up: readonly [Tensor, Tensor | null], down: readonly [Tensor, Tensor | null], residual?: SublayerResidual): Tensor | null;
  /**
   * Optional (wasm decode): a decode step's attention half in one call (AttentionDecodeArgs): the same numbers as
   * `linearMany`, `rope`, `attention` (its cache append) and `linear`, the result [b, H']. null when it does not
   * handle these (the caller then runs those ops).
   */
  attentionDecode?(a: AttentionDecodeArgs): Tensor | null;
  /**
   * Optional (wasm prefill): a prefill's attention half in one call (AttentionPrefillArgs): the same numbers as
   * `linearMany`, `rope`, `attention` (its cache write) and `linear`, the result [b, L, H']. null when it does not
   * handle these (the caller then runs those ops).
   */
  attentionPrefill?(a: AttentionPrefillArgs): Tensor | null;
  /**
   * Optional (wasm): `linear`, touching the memory of `next` (the tensor the caller reads next: a Mamba-2 layer's SSM
   * state before its decode step) meanwhile, so that it is cached when read; the same numbers as `linear`. null when
   * it does not do this for these arguments (the caller then calls `linear`).
   */
  linearTouching?(x: Tensor, w: Tensor, bias: Tensor | null, next: Tensor): Tensor | null;
  /** RMSNorm over the last dim of x [M, H]: w · x / sqrt(mean(x²) + eps) (w null: no weight) */
  rmsNorm(x: Tensor, w: Tensor | null, eps: number): Tensor;
  /** gated RMSNorm (norm before gate = false): w · n(x · silu(z)), normalised per group of `groupSize` channels */
  rmsNormGated(x: Tensor, z: Tensor, w: Tensor, eps: number, groupSize: number): Tensor;
  add(a: Tensor, b: Tensor): Tensor;
  /** x · s */
  scale(x: Tensor, s: number): Tensor;
  activation(x: Tensor, kind: Elementwise): Tensor;
  /** silu(a) · b (gated MLPs) */
  siluMul(a: Tensor, b: Tensor): Tensor;
  /** split the last dim of x [M, Σsizes] into contiguous pieces [M, sizes[i]] */
  split(x: Tensor, sizes: readonly number[]): Tensor[];
  causalConv1d(args: CausalConv1dArgs): Tensor;
  selectiveScan(args: SelectiveScanArgs): Tensor;
  /** y [b, L, nh, hd] including the D skip */
  ssd(args: SsdArgs): Tensor;
  /**
   * Rotary position embedding (rotate-half convention) on the first `rotaryDim` channels of each head of
   * x [b, L, H, hd]; `positions` [b·L]. inv_freq_i = theta^(−2i/rotaryDim).
   */
  rope(x: Tensor, positions: Int32Array, rotaryDim: number, theta: number): Tensor;
  /** [b, L, Hq, hd]; writes the new k/v into the cache tensors when given */
  attention(args: AttentionArgs): Tensor;
  /** concatenate along dim 0 (batch of states) */
  concatRows(ts: readonly Tensor[]): Tensor;
  /** pick rows of dim 0 */
  takeRows(t: Tensor, rows: readonly number[]): Tensor;
  /** dst[rows[i]] += weights[i] · src[i], in place (dst [M, H], src [n, H]) */
  scatterAddRows(dst: Tensor, rows: Int32Array, src: Tensor, weights: Float32Array): void;
  /** [b, T, …] → [b, newT, …], zero-filled after T (newT ≥ T) */
  padTime(t: Tensor, newT: number): Tensor;
  /**
   * Optional: run `op` keeping what its backward needs (training). `inputs` in the op's order (see the op layer,
   * `src/tensor/ops.ts`); null for absent optional inputs. A backend without it cannot train.
   */
  differentiable?(op: DiffOp, inputs: readonly (Tensor | null)[], attrs: DiffAttrs): Differentiated;
  /**
   * Optional: the most elements one tensor may hold on this backend (WebGPU: its largest buffer binding), where
   * that is a limit a caller must plan around (training's loss computes logits in row blocks under it).
   */
  readonly maxTensorElements?: number;
  /** Optional: the ops `differentiable` records, where that is not all of them (the others are refused with an OpError naming the op) */
  readonly differentiableOps?: ReadonlySet<DiffOp>;
  /**
   * Optional (WebGPU): the index of each row's largest value of logits [rows, V] (the first on ties; −1 when
   * a row has no finite or +∞ value), so greedy decoding reads back one number per sequence.
   */
  argmaxRows?(logits: Tensor): Promise<Int32Array>;
  /**
   * Optional (wasm): `argmaxRows` of x·Wᵀ in one op, the logits never leaving the backend (greedy decode's LM
   * head). null when it does not handle W (the caller then runs linear + argmaxRows).
   */
  linearArgmax?(x: Tensor, w: Tensor): Int32Array | null;
  /**
   * Optional (wasm): a Mamba-1 mixer's decode step between in_proj and out_proj in one call — conv step, x_proj,
   * (Δ/B/C norms), dt_proj, scan step, gate — with the same result as that op sequence; y [b, 1, D]. Returns null
   * when it does not handle these arguments (the mixer then runs the op sequence).
   */
  mamba1Step?(a: Mamba1StepArgs): Tensor | null;
  /**
   * Optional (wasm): a Mamba-2 mixer's decode step between in_proj and out_proj in one call — conv step, SSD
   * recurrence step, gated RMSNorm — with the same result as that op sequence; g [b, 1, inner]. Returns null when
   * it does not handle these arguments.
   */
  mamba2Step?(a: Mamba2StepArgs): Tensor | null;
  /**
   * Optional (wasm): `mamba1Step` and then out_proj (`w`, `bias`: what the mixer multiplies the step's y by) in one
   * call, with the same result as the two; [b, 1, w rows]. null when it does not handle these arguments (the mixer
   * then calls `mamba1Step` and `linear`).
   */
  mamba1StepOut?(a: Mamba1StepArgs, w: Tensor, bias: Tensor | null): Tensor | null;
  /** Optional (wasm): `mamba2Step` and then out_proj in one call, as `mamba1StepOut` */
  mamba2StepOut?(a: Mamba2StepArgs, w: Tensor, bias: Tensor | null): Tensor | null;
  /**
   * Optional (wasm): a Mamba-1 layer's whole decode step in one call — in_proj of `h`, `mamba1Step`, out_proj — with
   * the same result as those; [b, 1, out rows]. null when it does not handle these arguments (the mixer then runs
   * in_proj and `mamba1StepOut`).
   */
  mamba1Layer?(a: Mamba1LayerArgs): Tensor | null;
  /** Optional (wasm): a Mamba-2 layer's whole decode step in one call, as `mamba1Layer` */
  mamba2Layer?(a: Mamba2LayerArgs): Tensor | null;
  /**
   * Optional (wasm): a one-token step of a stack of pre-normed Mamba layers in one call — for each layer x += f(norm(x))
   * with f its mixer's whole decode step (`mamba1Layer` / `mamba2Layer`), then the final norm — with the same result as
   * those ops. Returns the final-normed rows [b, 1, H]; with `head`, each row's argmax of their product with it (as
   * `linearArgmax`) where the backend can fuse that too, else the rows (WebGPU 'mega': the ids as a promise of their
   * read-back, the step one dispatch). null when it does not handle these arguments (the caller then runs the layers one by one).
   */
  decodeStack?(a: DecodeStackArgs): Tensor | Int32Array | Promise<Int32Array> | null;
  /**
   * Optional (wasm): a Mamba-2 layer's prefill (h [b, L, H], L > 1) in one call — in_proj, conv1d + SiLU, Δ, the
   * SSD, the gated RMSNorm, out_proj — the activations kept in the backend between them; the same result as the
   * mixer's op sequence; [b, L, out rows]. null when it does not handle these arguments (the mixer then runs the ops).
   */
  mamba2Prefill?(a: Mamba2PrefillArgs): Tensor | null;
  /**
   * Optional: true when `mamba1Step` / `mamba2Step` honour their `onDelta` argument (hand Δ out of the fused step);
   * a mixer observing Δ (ForwardOptions.onDelta) runs the op sequence on a backend without it.
   */
  readonly stepDelta?: boolean;
  /**
   * Optional (WebGPU): run `step` — ops ending in one read — and keep what it submitted as a graph that
   * `replayStep` submits again with new uploaded numbers (the token ids) and no JavaScript in between, as a
   * CUDA graph does. `own`: the tensors the step may update besides what it allocates (its state). graph null:
   * the step cannot be replayed (more than one submit, other uploads, other callers' work recorded in between, …).
   */
  captureStep?<T>(step: () => Promise<T>, own: readonly Tensor[]): Promise<{ result: T; graph: StepGraph | null }>;
  /**
   * Optional: replay a captured step with new uploads; null when the graph went stale (capture again). `shift[r]`:
   * how many positions sequence r advanced since the captured step (a step whose KV-cache lengths and rotary
   * positions follow the positions needs it; the caches must hold the longer sequences already).
   */
  replayStep?(graph: StepGraph, upload: ArrayLike<number>, shift?: readonly number[]): Promise<Float32Array | null>;
  /**
   * Optional: replay a captured argmax step `n` times with each step's ids fed to the next on the device;
   * the ids of all n steps ([n × rows] floats), or null when the graph went stale. `shift`: as replayStep's,
   * for the first of the n steps.
   */
  replayChain?(graph: StepGraph, upload: ArrayLike<number>, n: number, shift?: readonly number[]): Promise<Float32Array | null>;
  /**
   * Optional: `replayChain` submitted now, read later (null when the graph went stale): the caller queues the next
   * chunk before awaiting this one. upload null continues from the ids the graph's last chained step picked.
   */
  startChain?(graph: StepGraph, upload: ArrayLike<number> | null, n: number, shift?: readonly number[]): Promise<Float32Array> | null;
  /**
   * Optional: a captured step will not be replayed again (its state was disposed, or a new capture replaced it):
   * what it reserved goes back now rather than when the collector finds the graph.
   */
  releaseStep?(graph: StepGraph): void;
  /** Optional: replay a captured step once per given row of token ids, reading nothing back; false when stale */
  replayFeed?(graph: StepGraph, uploads: readonly ArrayLike<number>[], shift?: readonly number[]): boolean;
  /**
   * Optional (WebGPU, opt-in): what rebinding a captured step to another state needs (an opaque plan holding none of
   * the state's or the step's tensors), or null; `rebindStep` then makes the graph of that step for `own` — another
   * state's tensors in the order `captureStep` got them — without running the step (null: record it instead). The
   * plan's step reads the positions the captured one did: the caller replays it with the shift from those.
   */
  stepPlan?(graph: StepGraph): object | null;
  rebindStep?(plan: object, own: readonly Tensor[]): StepGraph | null;
  /**
   * Optional (WebGPU): each row's next token drawn from logits [rows, V] on the device (sampling filters in the
   * CPU sampler's order), so that sampled decoding chains like greedy decoding; −1 for a row with nothing selectable.
   */
  sampleRows?(logits: Tensor, args: SampleRowsArgs): Promise<Int32Array>;
}

/** What `Backend.sampleRows` draws with: resolved sampling options (see SamplingOptions) and per-row device state. */
export interface SampleRowsArgs {
  /** > 0 */
  temperature: number;
  /** 0 = off */
  topK: number;
  /** 1 = off */
  topP: number;
  /** 0 = off */
  minP: number;
  /** 1 = off */
  repetitionPenalty: number;
  /** [rows, 8]: the row's 64-bit seed as four 16-bit halves (low first), its counter (the index of the token drawn next), 3 unused; the counter advances */
  rng: Tensor;
  /** [rows, V] 0/1: the ids the row has seen (with a repetition penalty; the drawn ids are added), else null */
  presence: Tensor | null;
}

/** A recorded decode step of a backend (opaque outside it). */
export interface StepGraph {
  readonly backendName: string;
}

export interface Mamba2StepArgs {
  /** in_proj output [b, 1, inner + convDim + nh]: z, xBC, dt */
  zxbcdt: Tensor;
  nHeads: number;
  headDim: number;
  nGroups: number;
  dState: number;
  conv: Tensor;
  convBias: Tensor | null;
  convState: Tensor;
  dtBias: Tensor | null;
  dtLimit: [number, number];
  A: Tensor;
  D: Tensor | null;
  ssmState: Tensor;
  norm: Tensor;
  normEps: number;
  normGroupSize: number;
  /** the weight the caller multiplies the result by next (out_proj): a backend may start reading it meanwhile */
  next?: Tensor | null;
  /**
   * Someone observes Δ (backends with `stepDelta` only): called before a non-null result is returned with Δ
   * [b, 1, nh] = clamp(softplus(dt + dtBias), dtLimit), as `observeDelta` computes it from the op sequence
   */
  onDelta?: (delta: Tensor) => void;
}

/** A Mamba layer's decode step from its input (mamba1Layer, mamba2Layer): h [b, 1, H], in_proj, the step's arguments, out_proj */
export interface LayerProjections {
  h: Tensor;
  inProj: Tensor;
  inProjBias: Tensor | null;
  outProj: Tensor;
  outProjBias: Tensor | null;
}
export type Mamba1LayerArgs = Omit<Mamba1StepArgs, 'xz'> & LayerProjections;
export type Mamba2LayerArgs = Omit<Mamba2StepArgs, 'zxbcdt'> & LayerProjections;
/**
 * A decoder sublayer's one-token step without its input (`Backend.decodeStack`): a Mamba mixer (its layer arguments
 * but h), an attention half (`attentionDecode`'s arguments but h and pastLen: the step's, DecodeStackArgs.pastLen), a
 * gated MLP (`gatedMlp`'s weights) or a plain one (down(act(up(x))): Nemotron-H's)
 */
export type StackMixerArgs =
  | { kind: 'mamba1'; args: Omit<Mamba1LayerArgs, 'h' | 'next' | 'onDelta'> }
  | { kind: 'mamba2'; args: Omit<Mamba2LayerArgs, 'h' | 'next' | 'onDelta'> }
  | { kind: 'attention'; args: Omit<AttentionDecodeArgs, 'h' | 'pastLen'> }
  | { kind: 'gatedMlp'; args: { gate: readonly [Tensor, Tensor | null]; up: readonly [Tensor, Tensor | null]; down: readonly [Tensor, Tensor | null] } }
  | { kind: 'plainMlp'; args: { up: readonly [Tensor, Tensor | null]; down: readonly [Tensor, Tensor | null]; act: Activation } };
/** A one-token step of a stack of pre-normed sublayers (`Backend.decodeStack`) */
export interface DecodeStackArgs {
  /** sequences (one token each) */
  rows: number;
  /** each row's position before the step (the attention sublayers' pastLen) */
  pastLen: readonly number[];
  /** the residual stream's input (the embedded tokens) [rows, 1, H], made when the backend takes the step */
  x: () => Tensor;
  /** per sublayer, in order, x ← x + scale · mixer(rmsNorm(x, norm, normEps)) (scale: 1 when left out; Granite's residual multiplier) */
  layers: ReadonlyArray<StackMixerArgs & { norm: Tensor; scale?: number }>;
  normEps: number;
  /** the last x is normed with this (and normEps) */
  finalNorm: Tensor;
  /** the LM head [V, H] whose argmax per row is wanted (greedy decode), or null for the normed rows */
  head: Tensor | null;
  /** what `x` embeds (the table [V, H], the ids, the scale it multiplies by): for a backend that gathers inside its step */
  embed?: { table: Tensor; ids: Int32Array; scale: number };
}
/** A Mamba-2 layer's prefill from its input (mamba2Prefill): h [b, L, H]; the states may be absent (no cache) */
export type Mamba2PrefillArgs = Omit<Mamba2StepArgs, 'zxbcdt' | 'convState' | 'ssmState' | 'next' | 'onDelta'> & LayerProjections & {
  convState: Tensor | null;
  ssmState: Tensor | null;
  /** the SSD algorithm asked for and its chunk length (as SsdArgs) */
  algorithm: SsdAlgorithm;
  chunkSize: number;
  /** given: h is the residual stream x; in_proj reads rmsNorm(x) and the result is x + scale · out_proj(…) (SublayerResidual) */
  residual?: SublayerResidual;
};

export interface Mamba1StepArgs {
  /** in_proj output [b, 1, 2D]: x then z */
  xz: Tensor;
  conv: Tensor;
  convBias: Tensor | null;
  convState: Tensor;
  xProj: Tensor;
  dtProj: Tensor;
  dtBias: Tensor;
  A: Tensor;
  D: Tensor;
  ssmState: Tensor;
  innerNorms?: { dt: Tensor | null; B: Tensor | null; C: Tensor | null; eps: number };
  /** the weight the caller multiplies the result by next (out_proj): a backend may start reading it meanwhile */
  next?: Tensor | null;
  /**
   * Someone observes Δ (backends with `stepDelta` only): called before a non-null result is returned with Δ
   * [b, 1, D] = softplus(dt_proj · Δ' + dtBias), as `observeDelta` computes it from the op sequence
   */
  onDelta?: (delta: Tensor) => void;
}

/** A weight matrix as a file stores it: its ggml type id (src/io/gguf-quants.ts `GGML`) and its bytes, rows in order. */
export interface StoredMatrix {
  type: number;
  bytes: Uint8Array;
  /** names it in messages */
  label: string;
}
