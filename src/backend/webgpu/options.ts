/** Options of the WebGPU backend (`createWebGpuBackend`, `new WebGpuBackend`). */
import type { RuntimeOptions } from './runtime.js';

export interface WebGpuBackendOptions extends RuntimeOptions {
  /**
   * 'tiled' (workgroup-memory tiles: matmul, chunked SSD) suits GPUs; 'simple' (no workgroup barriers: a
   * thread per matmul output, the SSD recurrence for every length) suits CPU-emulated adapters such as
   * SwiftShader, where a barrier costs a thread switch per 4 invocations. Default: by the adapter.
   */
  kernels?: 'tiled' | 'simple';
  /**
   * Fused single-token decode kernels (norm into the next matvec, residual add into out_proj, dt_proj into
   * the scan step). Default: on with 'tiled' kernels (GPUs, where dispatch latency dominates decode), off
   * with 'simple' ones (CPU-emulated adapters, where the fused kernels' reductions cost ~10× more than
   * the dispatches they save: mamba-tiny greedy 12 tokens 12.9 s fused vs 1.3 s unfused on SwiftShader).
   */
  fuse?: boolean;
  /**
   * Storage of weight matrices, chosen at load time: 'f32' (default), 'bf16' (two to a u32, converted with
   * a shift in the kernels: half the bytes a decode step streams) or 'q8' (the wasm backend's q8: blocks of 32 int8
   * along a row and an f32 scale each, the same quantized numbers as wasm's `packQ8`; 1.125 bytes a weight; unpacked
   * exactly in every product's weight loads, activations kept f32; kernels/q8.ts has the layout). Matrices the model
   * keeps exact (Mamba-1's x_proj and dt_proj) and those whose row length is not a multiple of 8 (bf16) or 32 (q8)
   * stay float32. Embedding tables are matrices too: they are stored (and gathered) in the same format.
   */
  weights?: WebGpuWeights;
  /**
   * Inference attention: 'flash' (default: prefill with 'tiled' kernels and head dims ≤ 64 runs the flash prefill of
   * kernels/attention_prefill.ts — 64 queries × 64 keys a tile where the device has 48 KiB of workgroup memory, else
   * 32 queries, 4 × 4 register blocks, tiles above the diagonal skipped — and larger head dims the training forward;
   * decode splits the keys over several workgroups and combines their partials; on an H100 the 64-query tiles took
   * 2.56 ms per llama-130m layer at 2,048 tokens against 4.08 for 32, exact: session 27), 'flash-q32' (32-query tiles
   * always), 'flash-q64' (the same as 'flash'), 'flash1' (the same, but every prefill through the training forward `ATTN_FWD`, the prefill
   * kernel before; for comparisons) or 'legacy' (one workgroup per query row over all its keys, the kernel before
   * those). Also settable later (`backend.attentionKernels`) or by the environment variable MAMBA_TS_WEBGPU_ATTENTION.
   * A bf16/f16 KV cache (`kvCache`): every set reads it, but 'flash1' refuses a prefill on one (the training forward
   * reads f32), and a head dim past the flash prefill's prefills with the one-row-per-workgroup kernel.
   */
  attention?: WebGpuAttention;
  /** compute units the decode split aims to fill, and the grid above which the prefill GEMMs take 128-row tiles (WebGPU does not tell: default 132, an H100's SMs) */
  gpuCores?: number;
  /** fixed number of key slices of flash decoding (default: chosen from the cache length and `gpuCores`); tests. Also settable later (`backend.attentionSplits`) */
  attentionSplits?: number;
  /**
   * The prefill GEMM (linear layers with more than 8 rows) with 'tiled' kernels: 'old' (the 64×64 kernel of
   * before), 'tiled' (the shared tiled template: 128×128 tiles where the grid still fills the GPU, else 64×64),
   * 'sgmat' (cooperative matrices, where the device has an f32 subgroup-matrix configuration that passed the
   * check at creation; else 'tiled'), 'blocked' (kernels/gemm_blocked.ts: register-blocked 8×8 / 8×4 / 4×4 outputs
   * per thread, double-buffered slices, 16-byte weight loads, split-K where the grid is small), 'int8x1'…'int8x4'
   * (kernels/gemm_int8.ts: the Ozaki split, S = 1…4 int8 slices per value on integer tensor cores where the device has an
   * i8 subgroup-matrix configuration that passed its check — run at creation when this option asks for int8, else by
   * `await backend.enableInt8Gemm()` — else emulated with dot4I8Packed; S = 3 is
   * float32-level, ~2⁻²¹ of the row maxima; the weights' slices are cached at first use: `backend.int8.forgetWeights()` after
   * writing weights in place). Default 'sgmat'
   * (i.e. the best available), or MAMBA_TS_WEBGPU_GEMM.
   */
  gemm?: WebGpuGemm;
  /**
   * How the tiled prefill GEMM (`gemm` 'tiled', and 'sgmat' where it falls back to it) loads q8 weight tiles:
   * 'vector' (default: 16 values of a row as one 16-byte load and their block's scale, dequantized into workgroup
   * memory, 16-deep K slices; kernels/gemm.ts `q8TileLoad`) or 'scalar' (session 27's reader: a u32 and a scale per
   * weight through `wv(i)`), for comparisons. Both multiply by the same numbers (f32(q)·scale), so the products are
   * equal. Also settable on the backend (`q8Tiles`) or by MAMBA_TS_WEBGPU_Q8_TILES.
   */
  q8Tiles?: WebGpuQ8Tiles;
  /**
   * The products of 9–128 rows with 'tiled' kernels (batched decode): 'blocked' (default: the skinny-M configurations
   * of kernels/gemm_blocked.ts: BM = the rows rounded up to 16/32/64, split-K until the GPU is busy: on an H100 a
   * batch-64 step's matmuls 1.6 ms instead of 9.1, batch 64 at 15.0–15.3k tok/s against 6.3–7.5k before; BENCHMARKS.md,
   * session 24) or 'old' (as before: the few-rows kernel up to 64 rows with `fewRows`, else `gemm`'s kernel). It wins
   * over `fewRows` above 8 rows (`WebGpuBackend.productKernel` decides, `productKernelName` reports). Or
   * MAMBA_TS_WEBGPU_GEMM_SMALL.
   */
  gemmSmall?: WebGpuGemmSmall;
  /**
   * Kernels of batched decode steps: 'fused' (default) — (1) the split-K reduce of a decode batch's blocked product
   * (rows whole; with decode fusion on) is held back so that the residual add after it and the next layer's RMSNorm
   * run in the same dispatch (SPLITK_ROWS: 2 dispatches per layer fewer, the out_proj output, the residual sum and
   * the normed rows written at once); (2) the per-sequence recurrence steps (Mamba-1 `scan_step`, Mamba-2
   * `ssd_step_sg`) hold a state row in registers, its loads issued together instead of one load-update-store at a
   * time (same arithmetic, same results). 'old': as before (a reduce, an add and a norm dispatch; the step kernels
   * of before), for comparisons. 'fused' (session 28) adds, for 2–8 rows on the decode matvec: (3) the gated
   * RMSNorm of a Mamba-2 step is its own dispatch (RMS_NORM_GATED_ROWS: a workgroup per row, x and z read once)
   * instead of being folded into out_proj's matvec (the few-rows kernel of `fewRows` still folds it), whose every
   * workgroup recomputed Σ(x·silu(z))² over all rows (M·K/256 loads and silu per lane: the work grows with the rows)
   * and, past what workgroup memory stages (6–8 rows at K 1,536), x·silu(z)·w·rms again for every weight row;
   * (4) the matvec writes its M rows from M lanes (the conv-window shift of in_proj's epilogue was a loop over the
   * rows in one lane) and its norm prologue (in_proj, lm_head) issues its loads four at a time; (5) a gated norm of fewer than 64 rows that runs on its own (decode batches of 9+ rows on the
   * blocked GEMM, the above, short prompts) runs RMS_NORM_GATED_ROWS too (was one subgroup per row: 37.5 µs per call
   * at 16 rows on an H100, 0.9 of the 3.4 ms step). 'fused-v1': (1) and (2) only (sessions 25–27's default).
   * 'old': none. 'fused2' (session 34, not yet timed on a GPU): 'fused' with the conv step of a decode batch on the
   * blocked GEMM (9+ rows) computed in the split-K reduce of in_proj that made its input (SPLITK_CONV: 24 dispatches a
   * step fewer for both Mamba-1 and Mamba-2 at 24 layers, the same numbers). Or MAMBA_TS_WEBGPU_BATCH_DECODE.
   */
  batchDecode?: WebGpuBatchDecode;
  /**
   * The fewest rows gemmSmall 'blocked' takes (default 9: 1–8 rows run the decode matvec with its fusions, as batch 1);
   * 2 sends every batched product to the blocked GEMM (its 16-row tiles: a batch-8 step does at most a batch-16
   * step's work there), for comparisons on a GPU. An integer 1–129. Also settable on the backend (`gemmSmallMin`) or
   * by MAMBA_TS_WEBGPU_GEMM_SMALL_MIN.
   */
  gemmSmallMin?: number;
  /**
   * Rows of a head's state each subgroup updates in Mamba-2's batched decode step (`ssd_step_sg`, session 34): 1
   * (default: the kernel of before, one row p of N states per subgroup, B and C re-read for every row), or 2, 4, 8: the
   * head's Δ and its group's B and C rows loaded once for that many rows, their state loads issued together. At 64
   * sequences of mamba2-130m a layer's step reads and writes 100 MB of state; P = 1 adds as many bytes of B/C reads
   * from L2. Halved where P·⌈N / subgroup⌉ > 64 registers; needs a fixed subgroup size (else the kernel of before).
   * Not yet timed on a GPU. Also settable on the backend (`decodeStateRows`) or by MAMBA_TS_WEBGPU_STATE_ROWS.
   */
  decodeStateRows?: number;
  /**
   * Per-shape GEMM choices from a sweep (`bench/gemm-sweep.bench.ts` writes them as its JSON's `tuned`): shape key →
   * 'tiled' (the `gemm` option's tiled kernel) or a blocked variant base / BLOCKED_CONFIGS name, flags allowed, with
   * `@S` for S K-splits (e.g. `{"768x50288": "128x128k16t8x8_w8", "2048x768x3352": "128x64k16t8x4_v"}`). Keys
   * `${M}x${K}x${N}` (exactly M rows) or `${K}x${N}` (any M above 128), N the columns of the weight (or of its row
   * block), `:bf16` / `:q8` appended for those weights. A shape without an entry keeps the choice of `gemm` /
   * `gemmSmall`; a forced blocked configuration (MAMBA_TS_WEBGPU_BLOCKED_CONFIG) and `gemm` 'old' or int8 ignore the
   * table. Default: none, or MAMBA_TS_WEBGPU_GEMM_TUNED=path.json (Node: the table itself, or the sweep's JSON with
   * its `tuned` field). Also settable on the backend (`gemmTuned`).
   */
  gemmTuned?: Readonly<Record<string, string>>;
  /**
   * The Mamba-1 prefill scan with 'tiled' kernels: 'rescan' (default for N ≤ 64 states: chunk states, carries, then
   * each chunk scanned again from its entering state; B, C and z read in place) or 'partials' (the scan of before:
   * per-chunk partial outputs corrected by exp(A·cumΔ)). MAMBA_TS_WEBGPU_SCAN overrides the default.
   */
  scan?: WebGpuScan;
  /**
   * The Mamba-2 SSD with 'tiled' kernels: 'fused' (no Δ pass, each chunk kernel computes its chunk's Δ and
   * Δ·A sums in workgroup memory; x, dt, B, C read in place in the conv's and in_proj's outputs, in prefill and in
   * the batched decode step; the default: on an H100 prefill logits within 4.1e-6 of 'old', GPU time per mamba2-130m
   * prefill 31.3 vs 32.3 ms, per batch-64 decode step 5.2 vs 6.8 ms; BENCHMARKS.md, session 24) or 'old' (the five
   * kernels of before, inputs copied apart first). 'fused-v1': 'fused' with session 24's state passing (a chunk at a
   * time: 133.8 µs per mamba2-130m layer on the H100 against 24.6 for the old kernels' pass) and output kernel (no
   * prefetch of the next tile), for comparisons.
   * Also settable on the backend (`ssd`) or by MAMBA_TS_WEBGPU_SSD.
   */
  ssd?: WebGpuSsd;
  /**
   * Batched decode through the few-rows kernel, which reads each weight row once for all rows, with the decode fusions
   * of batch 1: 2–8 rows, and up to 64 where gemmSmall 'blocked' does not take them (gemmSmall 'old', 'simple'
   * kernels). Default false: the matvec up to 8 rows (level with the few-rows kernel at batch 8 on an H100; the
   * few-rows kernel lost 2–4× to the tiled matmul at batch 32/64: it re-reads the inputs per workgroup and runs
   * 0.37–0.68 ms per call at 64 rows; BENCHMARKS.md, issue 11). Also settable on the backend (`fewRows`).
   */
  fewRows?: boolean;
  /**
   * Batched decode at 2 to `decodeRows` rows (at most 16) through MATVEC_R (kernels/matvec_rows.ts, session 33): each
   * weight read once for all rows, x̂ staged once per workgroup of 8·P weight rows, P loads in flight and P·M sums per
   * lane, one reduction per output; with the decode fusions of the matvec (norm prologue, bias, residual, conv window).
   * It takes those rows from the matvec (≤ 8) and from the blocked GEMM (9–16, whatever `gemmSmallMin` says); scalar
   * f32 rows (not whole 16-byte vectors) keep the kernels of before. 'auto' (session 34, the candidate default): 2 to
   * 4 rows (ROWS_AUTO), where the H100 measured 2.1× / 1.8× at 2 / 4 rows and 0.87× / 0.94× at 8 / 16 (session 33,
   * modes not alternated). Default 0 (off) until 'auto' is timed with the modes alternated.
   * Also settable on the backend (`decodeRows`) or by MAMBA_TS_WEBGPU_DECODE_ROWS (a number or 'auto').
   */
  decodeRows?: number | 'auto';
  /**
   * Batch-1 decode kernels (up to 8 rows): 'v2' runs the subgroup matvec (kernels/matvec_sg.ts: rows per subgroup,
   * 16-byte loads, subgroupAdd) and the barrier-free Mamba step kernels where the device has one fixed subgroup
   * size; 'v1' (default) the kernels before (MATVEC_V, the workgroup-tree step kernels). On an H100 'v2' is exact
   * (logits within 1.7e-6 of v1, same tokens) but was not faster (bf16: mamba-130m 408 vs 658 tok/s, mamba2-130m
   * 280 vs 292; BENCHMARKS.md, session 24), so it is opt-in.
   * 'v2-r{rows per subgroup}w{workgroup size}{u|l}[n]' (e.g. 'v2-r2w128u') sets the matvec's tunables (n: the input not staged in workgroup memory; u: loads
   * unrolled with the row length compiled in; l: a loop). 'fused' (one row; opt-in: on an H100 it lost to v1 for Mamba-1, 397 vs 921 tok/s f32, its scan adding 192 partials
   * per output costs more than the dispatch saved, and was level for Mamba-2; BENCHMARKS.md, session 27): v1
   * with fewer dispatches — Mamba-1's x_proj as partial sums in in_proj's epilogue, added up by the scan step (3
   * dispatches per layer instead of 4), and the lm_head matvec writing argmax partials for greedy steps (no
   * argmax_part); batches > 1 take v1. Also settable on the backend (`decodeKernels`) or by MAMBA_TS_WEBGPU_DECODE.
   * Issue 11's streaming candidates (session 29; opt-in until timed on a GPU: bench/webgpu-stream.bench.ts times them,
   * BENCHMARKS.md "WebGPU streaming bench"): 'v1-u1' / 'v1-u2' / 'v1-u4' / 'v1-u8' — v1 with MATVEC_V issuing U weight loads per
   * lane before their products (U independent partial sums; 'v1' itself takes 4 at 1–2 rows for f32 rows of K ≥ 2048 and for bf16 (session 32),
   * measured faster at the 2.8b shapes on an H100 in session 30, and 1 elsewhere; 'v1-u1' never); 'v1-k1' / 'v1-k2' / 'v1-k4' — v1 with the split-K matvec
   * (kernels/matvec_splitk.ts: a K slice of sg·U 16-byte units per workgroup, x̂ held in registers so its reads do not
   * grow with the rows, partial sums added by a second dispatch that applies the bias, residual and conv-window
   * epilogues) for f32/bf16 weights where the device has one fixed subgroup size (q8 and other devices: MATVEC_V);
   * 'v2-r{rows}w{workgroup}l{U}[n]' — the subgroup matvec's loop form with U (2, 4, 8) loads in flight.
   * 'v1-b' / 'v1-b-r{R}u{U}[s{S}]' (session 33, opt-in, not yet timed on a GPU): v1 with bf16 weights through MATVEC_BW
   * (kernels/matvec_bf16.ts: R weight rows × U 16-byte units loaded a lane before any product, shift/mask unpacking on
   * vectors, x̂ staged even/odd once per workgroup and reused across the R rows, subgroupAdd, K in S slices added by a
   * second dispatch, the first loads issued before the norm prologue); 'v1-b' takes R, U and S by `matvecBwPlan`'s rule, the long
   * form fixes them (R, U ∈ 1, 2, 4, 8); a trailing '-n' issues the first loads after the prologue; a 'g' after the
   * numbers ('v1-b-r2u4g', session 34, opt-in, untimed) issues a slice's last, partial round of loads at once (guarded)
   * instead of one unit at a time; an 'f' after that ('v1-b-r2u4gf', 'v1-b-r2u4f') sums the folded norm's squares
   * with 4 loads in flight a lane (MATVEC_V's unrolled prologue).
   * A trailing '-s' on any of these ('v1-s', 'v1-b-r2u4g-s'; session 34, opt-in, untimed on a GPU): the streaming
   * decode step kernels (kernels/mamba_step_stream.ts) — Mamba-2's step with a lane's state loads issued first and one
   * barrier (MAMBA_TS_WEBGPU_STEP_Q state elements a lane, default 4), Mamba-1's x_proj split over K at batch 1
   * (MAMBA_TS_WEBGPU_XPROJ_L lanes a row, default 8) and its scan with a lane's loads issued first and 3 barriers
   * ('mega-…-s': the one-dispatch kernel keeps its own step code; its fallback kernels take these).
   * Other weight formats run v1's kernels. 'v1' itself takes it at R 2, U 4 for one-row bf16 products of K and N ≥ 2048
   * (fusion.ts BF16_WIDE_LARGE: the 2.8b shapes, +17% decode on an H100 in session 33); BF16_WIDE_DEFAULT makes it take
   * it everywhere.
   * 'mega' (session 32; H100 timings in BENCHMARKS.md, best there 'mega-r32-o8', **the default on NVIDIA adapters since
   * session 34** — `defaultDecodeKernels`; 'v1' elsewhere and on 'simple' kernels): a whole batch-1 step of a Mamba-2 or Mamba-1 stack as one
   * dispatch (see `megaGroups`); 'mega-g{G}-r{R}' with G workgroups and R (8, 16, 32) projection rows per pass;
   * then '-o{O}' ('mega-r32-o8'): out_proj's rows split evenly over the workgroups at O rows a pass (Mamba-1's 3-phase
   * kernel always splits them); '-p4' at the end ('mega-p4', 'mega-r16-p4'):
   * Mamba-1 stacks in session 32's 4 phases a layer (session 33's 3 are the default); '-e' ('mega-r32-o8-e', session 34,
   * opt-in, not yet timed on a GPU): Mamba-2 stacks in MEGA2's even split (every phase's rows split evenly over the
   * workgroups, the conv in in_proj's epilogue, the gate applied by the SSD step; Mamba-1 ignores it); '-u{U}' (U 1, 2,
   * 4, 8; 'mega-r32-o8-e-u4', session 34, not yet timed): the projections' vec4 loads a lane issues before their
   * products (else 2 for f32, 1 for bf16); '-h' last ('mega-r32-o8-h'): a
   * greedy step's embedding gather, LM head and argmax inside the kernel too (one dispatch; slower on the H100 in
   * session 33, so off by default: the LM head then runs as the decoder's ops after the kernel).
   */
  decodeKernels?: string;
  /**
   * decodeKernels 'mega' (issue 11; the default on NVIDIA adapters, else MAMBA_TS_WEBGPU_DECODE=mega): a batch-1 decode step of a Mamba-2 or Mamba-1 stack as ONE
   * dispatch, a persistent kernel whose phases are separated by grid barriers (kernels/mega.ts). Its workgroups must all be
   * resident at once: `megaGroups` of them (default `gpuCores`, 132; MAMBA_TS_WEBGPU_MEGA_GROUPS). A probe with as many
   * workgroups runs first; if it (or a later step's barrier) times out after `megaSpin` polls (default 2^20), the backend
   * warns and runs the multi-dispatch kernels.
   */
  megaGroups?: number;
  megaSpin?: number;
}

/** the inference attention kernel sets (`attention`) */
export const WEBGPU_ATTENTIONS = ['flash', 'flash-q32', 'flash-q64', 'flash1', 'legacy'] as const;
export type WebGpuAttention = (typeof WEBGPU_ATTENTIONS)[number];

/** the Mamba-1 prefill scans (`scan`) */
export const WEBGPU_SCANS = ['rescan', 'partials'] as const;
export type WebGpuScan = (typeof WEBGPU_SCANS)[number];

/** the Mamba-2 SSD kernels (`ssd`) */
export const WEBGPU_SSDS = ['fused', 'fused-v1', 'old'] as const;
export type WebGpuSsd = (typeof WEBGPU_SSDS)[number];

/** the prefill GEMM kernels (`gemm`) */
export const WEBGPU_GEMMS = ['old', 'tiled', 'sgmat', 'blocked', 'int8x1', 'int8x2', 'int8x3', 'int8x4'] as const;
export type WebGpuGemm = (typeof WEBGPU_GEMMS)[number];
/** how the tiled GEMM loads q8 weight tiles (`q8Tiles`) */
export const WEBGPU_Q8_TILES = ['vector', 'scalar'] as const;
export type WebGpuQ8Tiles = (typeof WEBGPU_Q8_TILES)[number];
/** the GEMM of 9–128 rows (`gemmSmall`) */
export const WEBGPU_GEMMS_SMALL = ['old', 'blocked'] as const;
export type WebGpuGemmSmall = (typeof WEBGPU_GEMMS_SMALL)[number];

/** the rows of a head's state per subgroup in the Mamba-2 decode step (`decodeStateRows`) */
export const WEBGPU_STATE_ROWS = [1, 2, 4, 8] as const;
/** the kernels of batched decode steps (`batchDecode`) */
export const WEBGPU_BATCH_DECODES = ['fused', 'fused-v1', 'old', 'fused2'] as const;
export type WebGpuBatchDecode = (typeof WEBGPU_BATCH_DECODES)[number];

/** the weight formats this backend stores (`weights`) */
export const WEBGPU_WEIGHT_FORMATS = ['f32', 'bf16', 'q8'] as const;
export type WebGpuWeights = (typeof WEBGPU_WEIGHT_FORMATS)[number];
