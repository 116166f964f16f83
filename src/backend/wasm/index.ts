/**
 * The WebAssembly backend: 128-bit SIMD kernels (AssemblyScript, `assembly/`) on a pool of threads sharing
 * one wasm memory (`runtime.ts`). It extends the CPU backend: weights and recurrent states live in wasm
 * memory (as Float32Array views, so every plain-TypeScript kernel still works on them), the hot ops —
 * linear (f32, bf16, f16, q8 or q4 weights), the Mamba-1 selective scan, Mamba-2's SSD (chunked, or the recurrence) and
 * attention (its KV cache kept in wasm memory) — run in wasm on all threads, and the cheap ones stay in TypeScript (so
 * do the chunked scan and the quadratic SSD form, when a model asks for them: `prefill`). Activations produced by TypeScript
 * kernels stay on the JS heap; a wasm kernel copies what it needs into scratch memory and back.
 */
import { PREFILL_SUPPORT, type StoredMatrix, type AttentionArgs, type AttentionDecodeArgs, type AttentionPrefillArgs, type SublayerResidual, type CausalConv1dArgs, type DecodeStackArgs, type Mamba1LayerArgs, type Mamba1StepArgs, type Mamba2LayerArgs, type Mamba2PrefillArgs, type Mamba2StepArgs, type PrefillSupport, type SelectiveScanArgs, type SsdArgs } from '../backend.js';
import { CpuBackend, kvOf, writeRowsKv, type KvArray } from '../cpu/index.js';
import { ropeTable } from '../cpu/kernels.js';
import { Tensor, shapeSize, type Shape } from '../../tensor/tensor.js';
import type { KvCacheDType, WeightDType } from '../../tensor/dtype.js';
import { f32ToBf16, f32ToF16, f16ToF32, bf16ToF32 } from '../../tensor/dtype.js';
import { processDt } from '../../ssm/ssd.js';
import { GEMV_Q8_NAMES, MIN_PARALLEL_WORK, WasmRuntime, envChoice, type GemvF32, type GemvQ8, type Heap } from './runtime.js';
import { platform } from './platform.js';
import { LoadOptionError } from '../../api/load-options.js';
import { GGML } from '../../io/gguf-quants.js';
import { Q4_SUPER, packQ4, q4Sizes, repackQ4K, unpackQ4Row } from './q4.js';
import { Q8_BLOCK, packQ8, q8KvBytes } from './q8.js';

export interface WasmBackendOptions {
  /** worker threads including the calling one (default: available cores); more than the platform can run is refused */
  threads?: number;
  /**
   * storage format of weight matrices (default f32). q4: GGUF Q4_K matrices kept as they are; other GGUF quantized
   * matrices (Q6_K, Q5_K, Q8_0, Q4_0, …) as q8, float ones as f32; matrices from float checkpoints quantized to
   * Q4_K (rows of whole 256-value super-blocks; else q8 for rows of whole 32-value blocks; else f32)
   */
  weights?: WeightDType;
  /**
   * Mamba-2 prompts shorter than this run the SSD as the recurrence even where 'chunked' is asked (default 32: below
   * it the recurrence measured faster, from it the chunked kernel as fast or faster; same numbers to rounding)
   */
  ssdChunkedMinLength?: number;
  /**
   * Decode: bytes of out_proj's weights each thread touches (starts reading into its caches) while the fused step's
   * scan runs, from the start of the rows it multiplies next (default 0 = off, or the environment's
   * MAMBA_TS_WASM_STEP_PREFETCH; not on by default: no gain measured yet, see bench/wasm-decode.bench.ts)
   */
  stepPrefetch?: number;
  /**
   * the GEMM of prefill (products of at least 32 rows): 'blocked' (assembly/gemm.ts: packed operands, 5×8 register
   * tiles with fused multiply-adds; f32, bf16, f16 weights, and q8 with q8Gemm 'f32' — unpacked exactly, activations
   * kept f32; q8 otherwise runs q8Gemm's integer GEMM, assembly/gemm_q8.ts) or
   * 'tiles' (the kernels of before: linear_f32's dot-product tiles, bf16/f16 panels, q8 integer products).
   * Default 'blocked', or the environment's MAMBA_TS_WASM_GEMM. 'blocked' runs only where the relaxed-SIMD kernels
   * loaded (platform.ts: `runtime.fused`); without fused multiply-adds it was no faster than the tiles, which run then.
   */
  gemm?: WasmGemm;
  /**
   * q8 weights in the prefill GEMM (gemm 'blocked', products of at least 32 rows; assembly/gemm_q8.ts): x quantized
   * per row and block of 32 (scale max|x| / qmax, round to nearest even), exact integer block sums, scaled per block
   * in f32. 'int13' (default: 13-bit activations, i32x4.dot_i16x8_s on operands widened to i16; as accurate as the
   * f32 products on the q8 tests), 'int8' (the same kernel with llama.cpp's Q8_0 activations, qmax 127: the same
   * speed, less accurate), 'int7' (qmax 63: the relaxed build's i32x4.relaxed_dot_i8x16_i7x16_add_s, x biased into
   * its unsigned operand's range and corrected exactly — where the engine runs relaxed SIMD natively; elsewhere, in
   * the plain build and on Node 20, whose V8 11.3 miscompiles that instruction in its baseline tier, the i16 kernel
   * with the same bits) or 'f32' (gemm_blocked: W unpacked exactly to f32 while packing, x kept f32, as before; only
   * in the relaxed build, else the tiles run). Plain and relaxed builds alike for the integer ones. Default 'int13',
   * or the environment's MAMBA_TS_WASM_Q8_GEMM. BENCHMARKS.md ("wasm q8 prefill on integer dot products") has
   * their speed and accuracy.
   */
  q8Gemm?: WasmQ8Gemm;
  /**
   * the integer q8 GEMM's kernel (q8Gemm 'int13' / 'int8' / 'int7'; assembly/gemm_q8.ts): 'v2' (default) or 'v1'
   * (session 29's, kept for comparison), or the environment's MAMBA_TS_WASM_Q8_GEMM_KERNEL. The same bits.
   */
  q8GemmKernel?: WasmQ8GemmKernel;
  /**
   * decode: products of one input (q/k/v, gate/up) as one call on the threads (`linearMany`; default true), and a
   * gated MLP's gate/up, SwiGLU and down as one (`gatedMlp`). false: one call per product and op, as before (benchmarks
   * compare the two; the numbers are the same bits)
   */
  fuseProducts?: boolean;
  /**
   * decode: a Mamba layer's step and its out_proj as one call on the threads (`mamba1StepOut` / `mamba2StepOut`:
   * assembly/step_out.ts; default true, or the environment's MAMBA_TS_WASM_STEP_OUT=0 for false). false: the step, then
   * out_proj as its own call, as before (benchmarks compare the two; the numbers are the same bits)
   */
  stepOut?: boolean;
  /**
   * decode: a Mamba-2 layer's q8 in_proj (one row of x) touches the layer's SSM state while it runs (one line of it per
   * block of weights, each thread the share it steps next), so that the step finds the state cached (in `mamba2Layer`,
   * or `linearTouching` when in_proj is its own call).
   * Default false, or the environment's MAMBA_TS_WASM_TOUCH_STATE=1: on a shared machine the step got 3× faster but
   * in_proj as much slower (the memory was the limit); to be measured on a quiet machine. The same numbers on or off.
   */
  touchState?: boolean;
  /**
   * decode: a Mamba layer's in_proj in the same call as its step and out_proj (`mamba1Layer` / `mamba2Layer`: one
   * hand-off per layer; needs `stepOut`). Default true, or the environment's MAMBA_TS_WASM_STEP_IN=0 for false (in_proj
   * its own call). The same numbers either way.
   */
  stepIn?: boolean;
  /**
   * decode: a Mamba-2 layer's one team call (`mamba2Layer`) with two barriers instead of four: after in_proj each
   * thread runs Δ, the conv and the SSD step of its own heads without a barrier between them (every thread convolves
   * all B/C channels itself, on its own copy of their conv state), and after the SSD every thread computes the whole
   * gated RMSNorm itself (before: one thread while the others waited) and goes straight on to its rows of out_proj.
   * Default true, or the environment's MAMBA_TS_WASM_M2_TWO_BARRIERS=0 for false (the four-barrier kernel, as before;
   * benchmarks compare the two). The same numbers either way.
   */
  m2TwoBarriers?: boolean;
  /**
   * decode, with `m2TwoBarriers`: each thread computes its share of in_proj's B/C rows first, signals the barrier after
   * in_proj without waiting, computes the x and dt rows of its own heads and its share of z, and only then waits for
   * the others (a split-phase barrier: a thread that starts late is absorbed by that work). Default false (measured
   * level with the plain barrier so far; BENCHMARKS.md, session 30), or the environment's MAMBA_TS_WASM_M2_EARLY_BC=1
   * for true; batch 1 only, not with `touchState`. The same numbers either way.
   */
  m2EarlyBC?: boolean;
  /**
   * decode: a one-token step of a model whose sublayers are all pre-normed Mamba layers, attention halves, gated MLPs
   * or relu²/relu MLPs (mamba-130m, mamba2-130m, llama, Bamba, Nemotron-H; not the mixtures of experts of Jamba and
   * Granite 4.0-H) as one call on the threads (`decodeStack`, assembly/stack.ts): every sublayer's norm, its one-call
   * kernel (`mamba1Layer` / `mamba2Layer` with m2TwoBarriers, `attentionDecode` with attnLayer, `gatedMlp` with
   * fuseProducts), the residual add (with Granite's scale), a barrier, the next one; then the final norm and, for
   * greedy decode, the LM head and the argmax (as `linearArgmax`). One hand-off per token instead of 25 at 24 Mamba
   * layers or 12 llama blocks, and no JavaScript between the sublayers. Needs stepIn and stepOut (and m2TwoBarriers for
   * Mamba-2). Default true, or the environment's MAMBA_TS_WASM_DECODE_ONE_CALL=0 for false: a call per sublayer and
   * ops between them, as before (benchmarks compare the two). The same bits either way.
   */
  decodeOneCall?: boolean;
  /**
   * prefill: a Mamba-2 layer in one op (`mamba2Prefill`): in_proj, conv1d + SiLU, Δ, the chunked SSD, the gated
   * RMSNorm and out_proj on activations kept in wasm memory, the conv and the SSD reading their columns of in_proj's
   * output in place (no split copies, no copy in and out of each op; conv, Δ and the norm on all threads). Default
   * true, or the environment's MAMBA_TS_WASM_PREFILL_LAYER=0 for false: the op sequence, as before (benchmarks compare
   * the two). The same kernels' arithmetic either way.
   */
  prefillLayer?: boolean;
  /**
   * prefill: a sublayer's one op (`mamba2Prefill`, `attentionPrefill`, `gatedMlp`) also runs the decoder block's
   * pre-norm before it and the residual add after it (`residual`: the residual stream copied in once, normed in wasm
   * memory, the sum the one copy out; no rmsNorm op with its copies, no add in JavaScript). Default true, or the environment's
   * MAMBA_TS_WASM_PREFILL_RESIDUAL=0 for false (the norm and the add as their own ops, as before). The same bits.
   */
  prefillResidual?: boolean;
  /**
   * the chunked SSD's small matrix products (assembly/ssd_chunked.ts) with fused multiply-adds (`gemm_nt_f32_fma`;
   * where the relaxed-SIMD kernels loaded, else a multiply and an add — the same bits as false). Default true, or the
   * environment's MAMBA_TS_WASM_SSD_FMA=0 for false: the linear.ts tiles of before. Other roundings (within f32 parity).
   */
  ssdFma?: boolean;
  /**
   * the prefill GEMMs (gemm 'blocked', and q8Gemm 'int13' / 'int8' / 'int7') with x packed (q8: quantized) once per
   * product, its blocks split among the threads (`gemm_pack_x` / `gemm_q8_pack_x`, then `gemm_blocked_prepacked` /
   * `gemm_q8_prepacked`), instead of again for every block of 512 columns in every thread (7 times per in_proj of
   * mamba2-130m on one thread: 13 % of its time with q8 weights, 2.7 % with f32). Default true, or the environment's
   * MAMBA_TS_WASM_PACK_X_ONCE=0 for false (the kernels of before). The same bits.
   */
  packXOnce?: boolean;
  /**
   * decode attention over a q8 KV cache: 'in-place' (default; head dims a multiple of 32: the kernel widens the int8
   * values in registers) or 'scratch' (the older way, also what other head dims run: each block of 32 keys of a head
   * dequantized into per-thread scratch, then the f32 kernel); both compute q · (q8 · scale), to f32 rounding
   */
  q8KvDecode?: 'in-place' | 'scratch';
  /**
   * the loop shape of decode attention (one query per row; f32, bf16, f16 and in-place q8 caches): 'pipe' (default, or
   * the environment's MAMBA_TS_WASM_ATTN_DECODE; session 33) is 'rows' software-pipelined across blocks of 32 keys
   * (block b + 1's scores and block b's values in one loop per key row, so that K and V stream side by side), and under
   * GQA 'regs'; 'regs' is 'rows' with each query head's values' accumulator held in registers across a block (V then
   * walked head by head: slower from DRAM where G = 1, faster under GQA); 'rows' (the default of sessions 28–32) walks
   * the cache position by position with one copy of each loop, so that K and V stream start to end; 'heads4' is the
   * kernel before session 28 (per KV head, 4 key rows per step, the next block touched ahead), about 2× slower from
   * DRAM on an f32 cache. On a q8 cache 'regs' runs the 'rows' code; under GQA, 16-bit caches run the heads4 code
   * in 'rows' and 'heads4' and the 'regs' code in 'pipe' and 'regs' (faster than heads4 there), q8 caches heads4's in
   * all four. 'pipe', 'regs' and 'rows' give the same bits where 'rows' runs its own code (the same multiply-adds
   * per value in the same order); heads4's code the same results to f32 rounding (scores and values summed in
   * another order, fused multiply-adds in the relaxed build; within 1e-6 of the largest |value|).
   */
  attnDecode?: AttnDecode;
  /**
   * how decode attention converts an f16 KV cache's values to f32 as it reads them (both exact: the same bits):
   * 'shift' (default, or the environment's MAMBA_TS_WASM_F16_KV; session 34) converts 8 halves with a shift, a shift
   * and a mask, then one interleave per 4 (the value times 2^-112), multiplied by 2^112 for the keys' dot products,
   * the 2^112 folded into each key's weight p for the values' passes; 'widen' is the conversion of before (each 4
   * halves widened to i32, masked, shifted, multiplied by 2^112, the sign masked, shifted and put back: twice the
   * operations)
   */
  f16KvDecode?: F16KvDecode;
  /**
   * how a decode step's attention half (attn_decode_layer) divides a few rows' attention among the threads where the
   * context is long enough to split: 'keys' (default, or the environment's MAMBA_TS_WASM_ATTN_BY) splits each row's keys
   * (S splits per row, merged after a barrier: 4 barriers in the call); 'heads' (session 34) gives each thread whole KV
   * heads — their rows of Wq/Wk/Wv, RoPE, the cache append, the attention over every key — where the KV heads are a
   * multiple of the threads (and the cache is not q8 with blocks spanning heads): one barrier in the call, no merge.
   * 'heads' computes each head as one thread does (S = 1): not the same bits as 'keys' past ATTN_MIN_SPLIT keys.
   */
  attnDecodeBy?: AttnDecodeBy;
  /**
   * decode attention's scratch: every thread's scores and every (query head, split of the keys)'s partial sum on cache
   * lines of its own (true, default, or the environment's MAMBA_TS_WASM_ATTN_PAD=1), or packed end to end (false:
   * the layout before session 30, where two threads' partials shared a 64-byte line that both wrote at every key, so
   * the line bounced between the cores; kept for A/B measurements). The same numbers either way.
   */
  attnPad?: boolean;
  /**
   * decode: an attention layer's q/k/v products, RoPE, KV cache append, attention over the cache and o_proj as one
   * call on the threads (`attentionDecode`: assembly/attn_layer.ts; one hand-off per layer instead of four or five,
   * RoPE and the append in wasm). Default true, or the environment's MAMBA_TS_WASM_ATTN_LAYER=0 for false: the op
   * sequence, as before (benchmarks compare the two). The same bits either way.
   */
  attnLayer?: boolean;
  /**
   * prefill: an attention layer's q/k/v products on x packed (q8: quantized) once, RoPE and the KV cache write in wasm,
   * attention over the tiles and o_proj as one op (`attentionPrefill`: q, k, v and the attention output kept in wasm
   * memory, one copy in and one out). Default true, or the environment's MAMBA_TS_WASM_ATTN_PREFILL=0 for false: the op
   * sequence, as before (benchmarks compare the two). The same bits either way.
   */
  attnPrefill?: boolean;
  /**
   * prefill: a gated MLP's gate and up products on x packed (q8: quantized) once, SwiGLU in place in wasm memory and the
   * down product as one op (`gatedMlp` for prefill-sized x; one copy in and one out). Default true, or the environment's
   * MAMBA_TS_WASM_MLP_PREFILL=0 for false: linear, linear, siluMul, linear, as before. The same bits either way.
   */
  mlpPrefill?: boolean;
  /**
   * prefill attention's tiles (assembly/attention.ts attention_prefill): 'scoresT' (default, or the environment's
   * MAMBA_TS_WASM_ATTN_TILES) computes each tile's scores transposed (Sᵀ = K·Qᵀ on gemm_nt_f32_fma's tiles, K read in
   * place from an f32 cache), the online softmax down its columns 4 queries per vector, and accumulates PV into the
   * output on 4×8 FMA tiles reading V in place (no K copy, no transposed V, no separate PV product and add); 'fma'
   * the layout before with S = QKᵀ and PV on gemm_nt_f32_fma's tiles; 'dot' the kernel before session 31 (linear_f32's
   * tiles). FMA: fused multiply-adds where the relaxed-SIMD kernels loaded, else a multiply and an add ('fma' then
   * gives 'dot''s bits). Other roundings (within f32 parity).
   */
  attnTiles?: AttnTiles;
  /**
   * the f32 kernels of decode's products (one or two rows of x): 'seq' (default, or the environment's
   * MAMBA_TS_WASM_GEMV_F32) or 'rows4' (the kernels before session 28's fix, 2× slower from DRAM at batch 1 — the same
   * bits there; batch 2 within 1e-6; benchmarks compare the two). A setting of the thread pool (`runtime.gemvF32`),
   * shared by every backend on the same number of threads.
   */
  gemvF32?: GemvF32;
  /**
   * decode of Mamba-2 layers: while the SSD step updates 4 rows of a head's state it touches (loads one 64-byte line
   * of) the 4 rows this many bytes on, so that the state streams from DRAM while the core computes (session 34: the
   * step from DRAM ran at ~0.4–0.5 of the read+write probe without). 0: none, the step before. Default
   * SSD_TOUCH_DEFAULT (runtime.ts), or the environment's MAMBA_TS_WASM_SSD_TOUCH. The same bits either way. A setting
   * of the thread pool (`runtime.ssdTouch`), shared by every backend on the same number of threads.
   */
  ssdTouch?: number;
  /**
   * the q8 kernel of decode's products (one row of x; assembly/linear_q8.ts): 'lean' (default, or the environment's
   * MAMBA_TS_WASM_GEMV_Q8; session 34: 'quarters' in a loop of its own, pointers stepped per block, the block sums not
   * reloaded), 'quarters' (the default of sessions 32–33: x loaded once for 4 rows of W, one from each quarter of the
   * rows, each load instruction streaming its quarter), 'seq' (one row of W at a time) or 'rows4' (4 adjacent rows at
   * once: the kernel before session 32). The same bits. A setting of the thread pool (`runtime.gemvQ8`), shared by every backend on the same
   * number of threads.
   */
  gemvQ8?: GemvQ8;
}

export type WasmGemm = 'blocked' | 'tiles';
export type WasmQ8Gemm = 'int13' | 'int8' | 'int7' | 'f32';
/** see WasmBackendOptions.q8GemmKernel */
export type WasmQ8GemmKernel = 'v1' | 'v2';
export type AttnDecode = 'pipe' | 'regs' | 'rows' | 'heads4';
/** see WasmBackendOptions.f16KvDecode */
export type F16KvDecode = 'shift' | 'widen';
/** see WasmBackendOptions.attnDecodeBy */
export type AttnDecodeBy = 'keys' | 'heads';
export type AttnTiles = 'scoresT' | 'fma' | 'dot';
/** attention_prefill's `mode` codes */
const ATTN_TILES: Record<AttnTiles, number> = { dot: 0, fma: 1, scoresT: 2 };
/** assembly/attention.ts attention_decode's `shape` codes */
const ATTN_DECODE_SHAPE: Record<AttnDecode, number> = { rows: 0, heads4: 1, regs: 2, pipe: 3 };

/** A weight matrix stored in wasm memory in some format. */
interface Matrix {
  format: WeightDType;
  rows: number;
  cols: number;
  /** data: f32 / u16 (bf16, f16) / int8 (q8) */
  off: number;
  /** q8 scales (f32 per block of 32); q4: its scales and mins (u8 pairs per block of 32); else 0 */
  scales: number;
  /** q4: d, dmin (f32 pairs per super-block of 256), else 0 */
  supers: number;
}

/** the KV cache format codes of assembly/attention.ts (its fmt) */
const KV_FORMAT: Record<KvCacheDType, number> = { f32: 0, bf16: 1, f16: 2, q8: 3 };
/** prefill attention tiles: ≈ 64 query rows (G heads × BQ positions) × 64 keys */
const ATTN_TILE_ROWS = 64, ATTN_TILE_KEYS = 64;
/**
 * attnTiles 'scoresT': ≈ 32 query rows per tile (llama-130m's layer, one thread: 10.3–10.6 ms against 10.8–11.5 with
 * 64, the scores and the output tile staying in L1 with K and V read in place; and twice the items to share)
 */
const ATTN_TILE_ROWS_T = 32;
/** a decode row's keys are split among threads only in pieces of at least this many */
const ATTN_MIN_SPLIT = 64;
/** from this many rows of x, bf16/f16 products unpack W to f32 panels (assembly/panel.ts) instead of converting per row group */
const PANEL_MIN_ROWS = 8;
/** from this many rows of x, the 'blocked' GEMM (assembly/gemm.ts) runs the product; its weight format codes */
const BLOCKED_MIN_ROWS = 32;
const BLOCKED_FORMAT: Partial<Record<WeightDType, number>> = { f32: 0, bf16: 1, f16: 2, q8: 3 };
/** gemm_q8's mode (0: i16 dot products, 1: relaxed i8 dot products) and the activations' largest |x_q| per q8Gemm */
const Q8_GEMM: Record<Exclude<WasmQ8Gemm, 'f32'>, [number, number]> = { int13: [0, 4095], int8: [0, 127], int7: [1, 63] };
/** the blocks of x of gemm_blocked and gemm_q8: MC rows × KC (assembly/gemm.ts, gemm_q8.ts), the items gemm_pack_x / gemm_q8_pack_x split */
const GEMM_MC = 80, GEMM_KC = 256;
/**
 * the chunked SSD's longest chunk: a longer chunk length (configs say 256) is cut to this (the same algorithm and
 * numbers to rounding; at mamba2-130m's shape chunks of 64 ran 1.1× faster than 128 and 2× faster than 256)
 */
export const SSD_MAX_CHUNK = 64;
/** out_proj formats the *_step_out kernels multiply by (assembly/step_out.ts: its `fmt` codes) */
const STEP_OUT_FORMAT: Partial<Record<WeightDType, number>> = { f32: 0, bf16: 1, f16: 2, q8: 3 };

/** decode_stack's layer kinds (assembly/stack.ts) */
const STACK_KERNEL: Partial<Record<string, number>> = { mamba1_layer: 1, mamba2_layer_2b: 2 };

/** the product a decode step's kernel applies to its output in the same call (mamba1StepOut, mamba2StepOut) */
interface StepOutArgs {
  w: Tensor;
  bias: Tensor | null;
}

export class WasmBackend extends CpuBackend {
  override readonly name: string;
  /** the sequential scan and the chunked SSD in wasm (the defaults), also the SSD recurrence; the chunked scan and the quadratic SSD by the CPU kernels */
  override readonly prefill: PrefillSupport = PREFILL_SUPPORT.wasm;
  readonly runtime: WasmRuntime;
  readonly weightFormat: WeightDType;
  /** WasmBackendOptions.ssdChunkedMinLength */
  readonly ssdChunkedMinLength: number;
  /** wasm-resident arrays (f32; the u16 bits of bf16/f16 KV caches; the bytes of q8 KV caches) → their byte offset */
  private readonly resident = new WeakMap<KvArray, number>();
  /** weight matrices by their storage (a Float32Array view, or the Matrix record of a packed one), so views of a tensor share it */
  private readonly matrices = new WeakMap<object, Matrix>();
  private readonly finalizer: FinalizationRegistry<number[]>;
  /** bytes of everything uploaded with fromHost (weights in their storage format), for bandwidth ceilings */
  weightBytes = 0;
  /** see WasmBackendOptions.stepPrefetch (may be changed between calls: benchmarks compare on and off) */
  stepPrefetch: number;
  /** see WasmBackendOptions.gemm (may be changed between calls: benchmarks compare the two) */
  gemm: WasmGemm;
  /** see WasmBackendOptions.q8Gemm (may be changed between calls: benchmarks compare them) */
  q8Gemm: WasmQ8Gemm;
  /** see WasmBackendOptions.q8GemmKernel (may be changed between calls: benchmarks compare them) */
  q8GemmKernel: WasmQ8GemmKernel;
  /** see WasmBackendOptions.fuseProducts (may be changed between calls) */
  fuseProducts: boolean;
  /** see WasmBackendOptions.stepOut (may be changed between calls) */
  stepOut: boolean;
  /** see WasmBackendOptions.touchState (may be changed between calls) */
  touchState: boolean;
  /** see WasmBackendOptions.stepIn (may be changed between calls) */
  stepIn: boolean;
  /** see WasmBackendOptions.m2TwoBarriers (may be changed between calls: benchmarks compare the two) */
  m2TwoBarriers: boolean;
  /** see WasmBackendOptions.m2EarlyBC (may be changed between calls: benchmarks compare the two) */
  m2EarlyBC: boolean;
  /** see WasmBackendOptions.decodeOneCall (may be changed between calls: benchmarks compare the two) */
  decodeOneCall: boolean;
  /** see WasmBackendOptions.prefillLayer (may be changed between calls: benchmarks compare the two) */
  prefillLayer: boolean;
  /** see WasmBackendOptions.prefillResidual (may be changed between calls: benchmarks compare the two) */
  prefillResidual: boolean;
  /** see WasmBackendOptions.ssdFma (may be changed between calls: benchmarks compare the two) */
  ssdFma: boolean;
  /** see WasmBackendOptions.packXOnce (may be changed between calls: benchmarks compare the two) */
  packXOnce: boolean;
  /** see WasmBackendOptions.q8KvDecode (may be changed between calls: benchmarks compare the two) */
  q8KvDecode: 'in-place' | 'scratch';
  /** see WasmBackendOptions.attnDecode (may be changed between calls: benchmarks compare the two) */
  attnDecode: AttnDecode;
  /** see WasmBackendOptions.attnPad (may be changed between calls: benchmarks compare the two) */
  attnPad: boolean;
  /** see WasmBackendOptions.f16KvDecode (may be changed between calls: benchmarks compare the two) */
  f16KvDecode: F16KvDecode;
  /** see WasmBackendOptions.attnDecodeBy (may be changed between calls: benchmarks compare the two) */
  attnDecodeBy: AttnDecodeBy;
  /** see WasmBackendOptions.attnLayer (may be changed between calls) */
  attnLayer: boolean;
  /** see WasmBackendOptions.attnPrefill (may be changed between calls: benchmarks compare the two) */
  attnPrefill: boolean;
  /** see WasmBackendOptions.mlpPrefill (may be changed between calls: benchmarks compare the two) */
  mlpPrefill: boolean;
  /** see WasmBackendOptions.attnTiles (may be changed between calls: benchmarks compare them) */
  attnTiles: AttnTiles;

  constructor(opts: WasmBackendOptions = {}) {
    super();
    if (opts.threads !== undefined && opts.threads > platform.maxThreads()) {
      // (browsers: worker threads need shared memory, i.e. a cross-origin isolated page)
      throw new LoadOptionError(
        `wasm backend: option "threads" ${opts.threads} cannot be honoured here: wasm runs on at most ${platform.maxThreads()} thread(s) ` +
          '(in a browser, worker threads need a cross-origin isolated page: COOP and COEP headers); leave "threads" out to use what there is',
      );
    }
    this.runtime = WasmRuntime.get(opts.threads);
    this.weightFormat = opts.weights ?? 'f32';
    this.ssdChunkedMinLength = opts.ssdChunkedMinLength ?? 32;
    if (!(Number.isInteger(this.ssdChunkedMinLength) && this.ssdChunkedMinLength >= 1)) {
      throw new LoadOptionError(`wasm backend: option "ssdChunkedMinLength" must be an integer >= 1, got ${opts.ssdChunkedMinLength}`);
    }
    this.stepPrefetch = opts.stepPrefetch ?? envStepPrefetch();
    if (!(Number.isFinite(this.stepPrefetch) && this.stepPrefetch >= 0)) throw new LoadOptionError(`wasm backend: option "stepPrefetch" must be a number of bytes >= 0, got ${opts.stepPrefetch}`);
    this.gemm = opts.gemm ?? envChoice<WasmGemm>('MAMBA_TS_WASM_GEMM', ['blocked', 'tiles'], LoadOptionError) ?? 'blocked';
    this.q8Gemm = opts.q8Gemm ?? envChoice<WasmQ8Gemm>('MAMBA_TS_WASM_Q8_GEMM', ['int13', 'int8', 'int7', 'f32'], LoadOptionError) ?? 'int13';
    if (this.q8Gemm !== 'f32' && Q8_GEMM[this.q8Gemm] === undefined) throw new LoadOptionError(`wasm backend: option "q8Gemm" must be 'int13', 'int8', 'int7' or 'f32', got ${String(opts.q8Gemm)}`);
    this.q8GemmKernel = opts.q8GemmKernel ?? envChoice<WasmQ8GemmKernel>('MAMBA_TS_WASM_Q8_GEMM_KERNEL', ['v1', 'v2'], LoadOptionError) ?? 'v2';
    if (this.q8GemmKernel !== 'v1' && this.q8GemmKernel !== 'v2') throw new LoadOptionError(`wasm backend: option "q8GemmKernel" must be 'v1' or 'v2', got ${String(opts.q8GemmKernel)}`);
    this.fuseProducts = flagOption(opts, 'fuseProducts', true);
    this.stepOut = flagOption(opts, 'stepOut', envFlag('MAMBA_TS_WASM_STEP_OUT', true));
    this.touchState = flagOption(opts, 'touchState', envFlag('MAMBA_TS_WASM_TOUCH_STATE', false));
    this.stepIn = flagOption(opts, 'stepIn', envFlag('MAMBA_TS_WASM_STEP_IN', true));
    this.m2TwoBarriers = flagOption(opts, 'm2TwoBarriers', envFlag('MAMBA_TS_WASM_M2_TWO_BARRIERS', true));
    this.m2EarlyBC = flagOption(opts, 'm2EarlyBC', envFlag('MAMBA_TS_WASM_M2_EARLY_BC', false));
    this.decodeOneCall = flagOption(opts, 'decodeOneCall', envFlag('MAMBA_TS_WASM_DECODE_ONE_CALL', true));
    this.prefillLayer = flagOption(opts, 'prefillLayer', envFlag('MAMBA_TS_WASM_PREFILL_LAYER', true));
    this.prefillResidual = flagOption(opts, 'prefillResidual', envFlag('MAMBA_TS_WASM_PREFILL_RESIDUAL', true));
    this.ssdFma = flagOption(opts, 'ssdFma', envFlag('MAMBA_TS_WASM_SSD_FMA', true));
    this.packXOnce = flagOption(opts, 'packXOnce', envFlag('MAMBA_TS_WASM_PACK_X_ONCE', true));
    this.q8KvDecode = opts.q8KvDecode ?? 'in-place';
    this.attnDecode = opts.attnDecode ?? envChoice<AttnDecode>('MAMBA_TS_WASM_ATTN_DECODE', ['pipe', 'regs', 'rows', 'heads4'], LoadOptionError) ?? 'pipe';
    this.attnPad = flagOption(opts, 'attnPad', envFlag('MAMBA_TS_WASM_ATTN_PAD', true));
    this.f16KvDecode = opts.f16KvDecode ?? envChoice<F16KvDecode>('MAMBA_TS_WASM_F16_KV', ['shift', 'widen'], LoadOptionError) ?? 'shift';
    if (this.f16KvDecode !== 'shift' && this.f16KvDecode !== 'widen') throw new LoadOptionError(`wasm backend: option "f16KvDecode" must be 'shift' or 'widen', got ${String(opts.f16KvDecode)}`);
    this.attnDecodeBy = opts.attnDecodeBy ?? envChoice<AttnDecodeBy>('MAMBA_TS_WASM_ATTN_BY', ['keys', 'heads'], LoadOptionError) ?? 'keys';
    if (this.attnDecodeBy !== 'keys' && this.attnDecodeBy !== 'heads') throw new LoadOptionError(`wasm backend: option "attnDecodeBy" must be 'keys' or 'heads', got ${String(opts.attnDecodeBy)}`);
    this.attnLayer = flagOption(opts, 'attnLayer', envFlag('MAMBA_TS_WASM_ATTN_LAYER', true));
    this.attnPrefill = flagOption(opts, 'attnPrefill', envFlag('MAMBA_TS_WASM_ATTN_PREFILL', true));
    this.mlpPrefill = flagOption(opts, 'mlpPrefill', envFlag('MAMBA_TS_WASM_MLP_PREFILL', true));
    this.attnTiles = opts.attnTiles ?? envChoice<AttnTiles>('MAMBA_TS_WASM_ATTN_TILES', ['scoresT', 'fma', 'dot'], LoadOptionError) ?? 'scoresT';
    if (ATTN_TILES[this.attnTiles] === undefined) throw new LoadOptionError(`wasm backend: option "attnTiles" must be 'scoresT', 'fma' or 'dot', got ${String(opts.attnTiles)}`);
    if (ATTN_DECODE_SHAPE[this.attnDecode] === undefined) throw new LoadOptionError(`wasm backend: option "attnDecode" must be 'pipe', 'regs', 'rows' or 'heads4', got ${String(opts.attnDecode)}`);
    if (opts.gemvF32 !== undefined) {
      if (opts.gemvF32 !== 'seq' && opts.gemvF32 !== 'rows4') throw new LoadOptionError(`wasm backend: option "gemvF32" must be 'seq' or 'rows4', got ${String(opts.gemvF32)}`);
      this.runtime.gemvF32 = opts.gemvF32;
    }
    if (opts.ssdTouch !== undefined) {
      if (typeof opts.ssdTouch !== 'number' || !Number.isInteger(opts.ssdTouch) || opts.ssdTouch < 0 || opts.ssdTouch > 1 << 20 || opts.ssdTouch % 64 !== 0) {
        throw new LoadOptionError(`wasm backend: option "ssdTouch" must be a multiple of 64 bytes from 0 to 1048576 (0: off), got ${String(opts.ssdTouch)}`);
      }
      this.runtime.ssdTouch = opts.ssdTouch;
    }
    if (opts.gemvQ8 !== undefined) {
      if (!GEMV_Q8_NAMES.includes(opts.gemvQ8)) throw new LoadOptionError(`wasm backend: option "gemvQ8" must be one of ${GEMV_Q8_NAMES.map((n) => `'${n}'`).join(', ')}, got ${String(opts.gemvQ8)}`);
      this.runtime.gemvQ8 = opts.gemvQ8;
    }
    if (this.q8KvDecode !== 'in-place' && this.q8KvDecode !== 'scratch') throw new LoadOptionError(`wasm backend: option "q8KvDecode" must be 'in-place' or 'scratch', got ${String(opts.q8KvDecode)}`);
    if (this.gemm !== 'blocked' && this.gemm !== 'tiles') throw new LoadOptionError(`wasm backend: option "gemm" must be 'blocked' or 'tiles', got ${String(opts.gemm)}`);
    this.name = `wasm(${this.runtime.threads} thread${this.runtime.threads > 1 ? 's' : ''}, ${this.weightFormat} weights)`;
    this.finalizer = new FinalizationRegistry((offs) => offs.forEach((o) => this.runtime.heap.release(o)));
  }

  // ---- memory --------------------------------------------------------------------------------

  /** a new wasm-resident f32 array (freed when the array is garbage-collected) */
  private allocF32(count: number): Float32Array {
    const off = this.runtime.heap.alloc(count * 4);
    const view = this.runtime.f32(off, count);
    this.resident.set(view, off);
    this.finalizer.register(view, [off], view);
    return view;
  }

  /**
   * a new wasm-resident array of a KV cache of `count` values in a 16-bit or q8 format (bf16/f16: u16 bits; q8: the
   * bytes of its blocks, wasm/q8.ts); freed when the array is garbage-collected
   */
  private allocKv(count: number, kv: 'bf16' | 'f16' | 'q8'): Uint16Array | Uint8Array {
    const bytes = kv === 'q8' ? q8KvBytes(count) : count * 2;
    const off = this.runtime.heap.alloc(bytes);
    const view = kv === 'q8' ? new Uint8Array(this.runtime.memory.buffer, off, bytes) : new Uint16Array(this.runtime.memory.buffer, off, count);
    this.resident.set(view, off);
    this.finalizer.register(view, [off], view);
    return view;
  }

  /**
   * Free wasm-resident f32 storage now (states, zero-initialised accumulators, f32 weights); the tensor layer
   * calls this when the last tensor on the storage is disposed. Activations on the JS heap and packed matrices
   * are left to the collector.
   */
  override dispose(t: Tensor): void {
    const view = t.storage as Float32Array;
    const off = this.resident.get(view);
    if (off === undefined) return;
    this.resident.delete(view);
    this.matrices.delete(view);
    this.finalizer.unregister(view);
    this.runtime.heap.release(off);
  }

  override fromHost(data: Float32Array, shape: Shape, opts?: { matrix?: boolean; float32?: boolean; stored?: () => StoredMatrix | undefined; kvCache?: KvCacheDType }): Tensor {
    if (data.length !== shapeSize(shape)) throw new Error(`wasm.fromHost: ${data.length} values for shape [${shape.join(', ')}]`);
    if (opts?.kvCache !== undefined && opts.kvCache !== 'f32') return super.fromHost(data, shape, { kvCache: opts.kvCache });
    if (opts?.matrix && shape.length === 2 && !opts.float32) {
      const [rows, cols] = shape;
      let format = this.weightFormat;
      let q4k: StoredMatrix | undefined;
      if (format === 'q4') {
        // a file's Q4_K kept as is; its other quantized types as q8; its float matrices as f32
        const stored = opts.stored?.();
        if (stored?.type === GGML.Q4_K && cols % Q4_SUPER === 0) q4k = stored;
        else if (stored) format = stored.type === GGML.F32 || stored.type === GGML.F16 || stored.type === GGML.BF16 ? 'f32' : 'q8';
        else if (cols % Q4_SUPER !== 0) format = 'q8';
      }
      if (format === 'q8' && cols % Q8_BLOCK !== 0) format = 'f32'; // q8 needs whole blocks
      if (format === 'q4') return this.packQ4Matrix(data, rows, cols, q4k);
      if (format !== 'f32') return this.packMatrix(data, rows, cols, format);
    }
    const view = this.allocF32(data.length);
    view.set(data);
    this.weightBytes += data.length * 4;
    const t = new Tensor(this, view, [...shape]);
    if (opts?.matrix && shape.length === 2) this.matrices.set(view, { format: 'f32', rows: shape[0], cols: shape[1], off: this.resident.get(view)!, scales: 0, supers: 0 });
    return t;
  }

  override zeros(shape: Shape, kvCache?: KvCacheDType): Tensor {
    if (kvCache !== undefined && kvCache !== 'f32') return super.zeros(shape, kvCache); // (cacheArray: resident, zeroed)
    const view = this.allocF32(shapeSize(shape));
    view.fill(0); // reused memory holds old values
    return new Tensor(this, view, [...shape]);
  }

  /** bf16 / f16 / q8 weights: packed into wasm memory; the tensor's storage is the Matrix record */
  private packMatrix(data: Float32Array, rows: number, cols: number, format: WeightDType): Tensor {
    const heap = this.runtime.heap;
    const n = rows * cols;
    this.weightBytes += format === 'q8' ? n + (n / Q8_BLOCK) * 4 : n * 2;
    let off: number, scales = 0;
    if (format === 'q8') {
      off = heap.alloc(n);
      scales = heap.alloc((n / Q8_BLOCK) * 4);
      const qs = new Int8Array(this.runtime.memory.buffer, off, n);
      packQ8(data, qs, this.runtime.f32(scales, n / Q8_BLOCK));
    } else {
      off = heap.alloc(n * 2);
      const u16 = new Uint16Array(this.runtime.memory.buffer, off, n);
      const conv = format === 'bf16' ? f32ToBf16 : f32ToF16;
      for (let i = 0; i < n; i++) u16[i] = conv(data[i]);
    }
    return this.matrixTensor({ format, rows, cols, off, scales, supers: 0 });
  }

  private matrixTensor(m: Matrix): Tensor {
    const t = new Tensor(this, m, [m.rows, m.cols], m.format);
    this.matrices.set(m, m);
    // freed when the last tensor holding this storage is gone (reshaped views share the record)
    this.finalizer.register(m, [m.off, m.scales, m.supers].filter((o) => o !== 0));
    return t;
  }

  /** q4 weights: a file's Q4_K blocks repacked (lossless), or f32 data quantized to Q4_K first */
  private packQ4Matrix(data: Float32Array, rows: number, cols: number, stored: StoredMatrix | undefined): Tensor {
    const heap = this.runtime.heap;
    const size = q4Sizes(rows, cols);
    const off = heap.alloc(size.qs), scales = heap.alloc(size.sm), supers = heap.alloc(size.dd);
    const buf = this.runtime.memory.buffer;
    const qs = new Uint8Array(buf, off, size.qs), sm = new Uint8Array(buf, scales, size.sm), dd = this.runtime.f32(supers, size.dd / 4);
    sm.fill(0); // (a last group of fewer than 4 rows is padded)
    dd.fill(0);
    try {
      if (stored) repackQ4K(stored.bytes, rows, cols, qs, sm, dd, stored.label);
      else packQ4(data, rows, cols, qs, sm, dd);
    } catch (e) {
      for (const o of [off, scales, supers]) heap.release(o);
      throw e;
    }
    this.weightBytes += size.qs + size.sm + size.dd;
    return this.matrixTensor({ format: 'q4', rows, cols, off, scales, supers });
  }

  /** f32 values of a packed matrix's rows (embedding lookups, reads) */
  private unpackRows(m: Matrix, rows: ArrayLike<number>): Float32Array {
    const { cols } = m;
    const out = new Float32Array(rows.length * cols);
    const buf = this.runtime.memory.buffer;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      if (m.format === 'q4') {
        const size = q4Sizes(m.rows, cols);
        unpackQ4Row(new Uint8Array(buf, m.off, size.qs), new Uint8Array(buf, m.scales, size.sm), this.runtime.f32(m.supers, size.dd / 4), cols, r, out, i * cols);
      } else if (m.format === 'q8') {
        const qs = new Int8Array(buf, m.off + r * cols, cols);
        const sc = this.runtime.f32(m.scales + ((r * cols) / Q8_BLOCK) * 4, cols / Q8_BLOCK);
        for (let k = 0; k < cols; k++) out[i * cols + k] = qs[k] * sc[(k / Q8_BLOCK) | 0];
      } else {
        const u16 = new Uint16Array(buf, m.off + r * cols * 2, cols);
        const conv = m.format === 'bf16' ? bf16ToF32 : f16ToF32;
        for (let k = 0; k < cols; k++) out[i * cols + k] = conv(u16[k]);
      }
    }
    return out;
  }

  private packed(t: Tensor): Matrix | undefined {
    const m = this.matrices.get(t.storage as object);
    return m && m.format !== 'f32' ? m : undefined;
  }

  override readSync(t: Tensor): Float32Array {
    const m = this.packed(t);
    return m ? this.unpackRows(m, [...Array(m.rows).keys()]) : super.readSync(t);
  }
  override read(t: Tensor): Promise<Float32Array> {
    const m = this.packed(t);
    return m ? Promise.resolve(this.readSync(t)) : super.read(t);
  }

  /**
   * Runs `f` with the scratch of one op call and frees it afterwards (see OpScratch): inputs not already in wasm
   * memory are copied in, outputs allocated, and states passed with `copyBack` copied back to their arrays.
   */
  private op<T>(f: (c: OpScratch) => T): T {
    const rt = this.runtime;
    const scratch: number[] = [];
    const back: Array<[number, Float32Array]> = [];
    const out = (count: number): number => {
      const off = rt.heap.alloc(count * 4);
      scratch.push(off);
      return off;
    };
    const c: OpScratch = {
      in: (t, copyBack = false) => {
        if (!t) return 0;
        const a = t.storage as Float32Array;
        const off = this.resident.get(a);
        if (off !== undefined) return off;
        if (kvOf(t) !== 'f32') {
          // the bits / blocks of a bf16/f16/q8 KV cache outside wasm memory (a copied state's)
          const raw = t.storage as Uint16Array | Uint8Array;
          const s = out(Math.ceil(raw.byteLength / 4));
          new Uint8Array(rt.memory.buffer, s, raw.byteLength).set(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength));
          return s;
        }
        const s = out(a.length);
        rt.f32(s, a.length).set(a);
        if (copyBack) back.push([s, a]);
        return s;
      },
      out,
      data: (values) => {
        const off = out(values.length);
        rt.f32(off, values.length).set(values);
        return off;
      },
      zeros: (count) => {
        const off = out(count);
        rt.f32(off, count).fill(0);
        return off;
      },
      result: (off, shape) => {
        for (const [o, arr] of back) arr.set(rt.f32(o, arr.length));
        return new Tensor(this, rt.f32(off, shapeSize(shape)).slice(), shape);
      },
      resident: (t) => this.resident.get(t.storage as Float32Array),
    };
    try {
      return f(c);
    } finally {
      // (last allocated first: each block is then the heap's top, released without a search of the free list)
      for (let i = scratch.length - 1; i >= 0; i--) rt.heap.release(scratch[i]);
    }
  }

  // ---- ops -----------------------------------------------------------------------------------

  override embedding(table: Tensor, ids: Int32Array): Tensor {
    const m = this.packed(table);
    if (!m) return super.embedding(table, ids);
    return new Tensor(this, this.unpackRows(m, ids), [ids.length, m.cols]);
  }

  override linear(x: Tensor, w: Tensor, bias: Tensor | null): Tensor {
    const m = this.matrices.get(w.storage as object);
    if (!m) return super.linear(x, w, bias);
    const M = x.shape[0];
    return this.op((c) => c.result(this.product(c, x, m, bias), [M, m.rows]));
  }

  /**
   * Several products of one x in one call (decode: a layer's q/k/v, an MLP's gate/up): their rows are one range that
   * the threads split, one hand-off instead of one per product (and x quantized once for q8). The same bits as
   * separate `linear` calls. null (not handled) for prefill-sized x (the GEMM kernels run those), mixed formats,
   * q4 weights, or row counts that are not multiples of 4.
   */
  linearMany(x: Tensor, ws: ReadonlyArray<readonly [Tensor, Tensor | null]>): Tensor[] | null {
    const ms = ws.map(([w]) => this.matrices.get(w.storage as object));
    const [M, K] = x.shape;
    const f = ms[0]?.format;
    if (!this.fuseProducts || ws.length < 2 || ws.length > 3 || !f || f === 'q4' || ms.some((m) => !m || m.format !== f || m.rows % 4 !== 0 || m.cols !== K)) return null;
    if (M >= (f === 'f32' || f === 'q8' ? BLOCKED_MIN_ROWS : PANEL_MIN_ROWS)) return null;
    const mats = ms as Matrix[];
    const total = mats.reduce((n, m) => n + m.rows, 0);
    return this.op((c) => {
      const xo = c.in(x);
      const ys = mats.map((m) => c.out(M * m.rows));
      const slot = (i: number): number[] => {
        const m = mats[i];
        if (!m) return f === 'q8' ? [0, 0, 0, 0, 0] : [0, 0, 0, 0];
        return f === 'q8' ? [m.off, m.scales, c.in(ws[i][1]), ys[i], m.rows] : [m.off, c.in(ws[i][1]), ys[i], m.rows];
      };
      const slots = [0, 1, 2].flatMap(slot);
      if (f === 'q8') {
        const xq = c.out((M * K) / 2 + (M * K) / Q8_BLOCK), xs = xq + M * K * 2;
        this.runtime.run('quantize_rows_q8', [xo, xq, xs, M, K], M, 1, M * K);
        this.runtime.run('linear_q8_multi', [xq, xs, M, K, ...slots], total, 4, M * K * total);
      } else {
        this.runtime.run('linear_multi', [f === 'f32' ? 0 : f === 'bf16' ? 1 : 2, xo, M, K, ...slots], total, 4, M * K * total);
      }
      return mats.map((m, i) => c.result(ys[i], [M, m.rows]));
    });
  }

  /**
   * A gated MLP's down(silu(gate(x)) · up(x)) as one team call (assembly/step_out.ts gated_mlp: both products, the
   * SwiGLU on each thread's rows, a barrier, the down product): one hand-off instead of three ops, the same bits.
   * null (the ops run separately) where `fuseProducts` is off or a product is not one the decode kernels run (see
   * stepOutDesc: q4 weights, prefill-sized x). Prefill-sized x (from 32 rows) with `mlpPrefill` on: gatedMlpPrefill.
   */
  gatedMlp(x: Tensor, gate: readonly [Tensor, Tensor | null], up: readonly [Tensor, Tensor | null], down: readonly [Tensor, Tensor | null], residual?: SublayerResidual): Tensor | null {
    const [M, H] = x.shape;
    if (residual && !this.prefillResidual) return null;
    if (this.mlpPrefill && M >= BLOCKED_MIN_ROWS) return this.gatedMlpPrefill(x, gate, up, down, residual);
    if (!this.fuseProducts || residual) return null;
    return this.op((c) => {
      const q = this.gatedMlpCall(c, gate, up, down, M, H);
      if (!q) return null;
      q.args[0] = c.in(x);
      this.runtime.runTeam('gated_mlp', q.args, q.work >= MIN_PARALLEL_WORK);
      return c.result(q.y, [M, q.N]);
    });
  }

  /**
   * gated_mlp's arguments for M rows of H with scratch from `c` (args[0], x, left 0 for the caller); null where a
   * product is not one the decode kernels run. Used by `gatedMlp` and `decodeStack`.
   */
  private gatedMlpCall(c: OpScratch, gate: readonly [Tensor, Tensor | null], up: readonly [Tensor, Tensor | null], down: readonly [Tensor, Tensor | null], M: number, H: number): { args: number[]; y: number; N: number; work: number } | null {
    const dg = this.stepOutDesc(c, { w: gate[0], bias: gate[1] }, M, H), du = this.stepOutDesc(c, { w: up[0], bias: up[1] }, M, H);
    if (!dg || !du || dg.N !== du.N) return null;
    const dd = this.stepOutDesc(c, { w: down[0], bias: down[1] }, M, dg.N);
    if (!dd) return null;
    const counter = c.zeros(2);
    return { args: [0, M, H, dg.N, dg.desc, du.desc, dd.desc, counter], y: dd.y, N: dd.N, work: dg.work + du.work + dd.work };
  }

  /**
   * A gated MLP for prefill-sized x [M, H] (WasmBackendOptions.mlpPrefill): gate and up on x packed (q8: quantized)
   * once, silu(gate) · up in place over gate's output, then down; the intermediates stay in wasm memory. The same bits
   * as `linear` (gate), `linear` (up), `siluMul` and `linear` (down). With `residual`: x is the residual stream, the
   * MLP reads its RMSNorm and the result is the residual add (preNorm, residualAdd: `rmsNorm`, `scale` and `add`'s
   * bits). null where a weight is not a wasm matrix of these shapes (the ops run).
   */
  private gatedMlpPrefill(x: Tensor, gate: readonly [Tensor, Tensor | null], up: readonly [Tensor, Tensor | null], down: readonly [Tensor, Tensor | null], residual?: SublayerResidual): Tensor | null {
    const [M, H] = x.shape;
    const mg = this.matrices.get(gate[0].storage as object), mu = this.matrices.get(up[0].storage as object), md = this.matrices.get(down[0].storage as object);
    if (!mg || !mu || !md || mg.cols !== H || mu.cols !== H || mu.rows !== mg.rows || md.cols !== mg.rows || (residual && md.rows !== H)) return null;
    const I = mg.rows;
    return this.op((c) => {
      const xo = c.in(x);
      const ho = this.preNorm(c, xo, M, H, residual);
      const packs = new Map<string, number>();
      const g = this.productAt(c, ho, M, H, mg, gate[1], packs);
      const u = this.productAt(c, ho, M, H, mu, up[1], packs);
      this.runtime.run('silu_mul', [g, u, g], M * I, 4, 8 * M * I);
      const y = this.productAt(c, g, M, I, md, down[1]);
      this.residualAdd(xo, y, M * md.rows, residual);
      return c.result(y, [M, md.rows]);
    });
  }

  /** a sublayer's input: x at xo itself, or (residual with a norm) rmsNorm(x) into scratch of `c` ([M, H]) */
  private preNorm(c: OpScratch, xo: number, M: number, H: number, residual: SublayerResidual | undefined): number {
    if (!residual?.norm) return xo;
    const ho = c.out(M * H);
    this.runtime.run('rms_norm', [xo, c.in(residual.norm), ho, H, residual.eps], M, 1, 4 * M * H);
    return ho;
  }

  /** (residual) y ← x + scale · y over n floats at yo, x at xo (assembly/norm.ts residual_add) */
  private residualAdd(xo: number, yo: number, n: number, residual: SublayerResidual | undefined): void {
    if (residual) this.runtime.run('residual_add', [xo, yo, residual.scale, yo], n, 4, 2 * n);
  }

  /**
   * `linear` touching `next` meanwhile (WasmBackendOptions.touchState): q8 W, one row of x, `next` wasm-resident;
   * else null. The product is linear_q8's (the same bits); the touches only load.
   */
  linearTouching(x: Tensor, w: Tensor, bias: Tensor | null, next: Tensor): Tensor | null {
    const m = this.matrices.get(w.storage as object);
    const [M, K] = x.shape;
    if (!this.touchState || !m || m.format !== 'q8' || M !== 1 || m.cols !== K) return null;
    const touch = this.resident.get(next.storage as Float32Array);
    if (touch === undefined) return null;
    const N = m.rows;
    return this.op((c) => {
      const xo = c.in(x), bo = c.in(bias), yo = c.out(N);
      const xq = c.out(K / 2 + K / Q8_BLOCK), xs = xq + K * 2;
      this.runtime.run('quantize_rows_q8', [xo, xq, xs, 1, K], 1, 1, K);
      this.runtime.run('linear_q8_touch', [xq, xs, m.off, m.scales, bo, yo, 1, K, N, touch, next.size * 4], N, 4, K * N);
      return c.result(yo, [1, N]);
    });
  }

  /**
   * Greedy decode's last op: the index of each row's largest value of x·Wᵀ (the first on ties, −1 when a row has no
   * finite or +∞ value), the product left in wasm memory and reduced there (no [rows, V] logits copied out). null
   * when W is not a wasm matrix.
   */
  linearArgmax(x: Tensor, w: Tensor): Int32Array | null {
    const m = this.matrices.get(w.storage as object);
    if (!m) return null;
    if (x.shape.length !== 2 || x.shape[1] !== m.cols) throw new Error(`wasm.linearArgmax: x of shape [${x.shape.join(', ')}] for a ${m.rows}×${m.cols} matrix (expected [rows, ${m.cols}])`);
    const M = x.shape[0];
    return this.op((c) => this.argmaxIn(c, this.product(c, x, m, null), M, m.rows));
  }

  /** the index of each row's largest value of logits [rows, V] (as `linearArgmax`; reads the rows in wasm memory) */
  argmaxRows(logits: Tensor): Promise<Int32Array> {
    const V = logits.shape[logits.shape.length - 1];
    const M = logits.size / V;
    return Promise.resolve(this.op((c) => this.argmaxIn(c, c.in(logits), M, V)));
  }

  /** argmax_rows over rows [M, V] at offset `xo` of wasm memory: each row's index, copied out */
  private argmaxIn(c: OpScratch, xo: number, M: number, V: number): Int32Array {
    const io = c.out(M);
    this.runtime.run('argmax_rows', [xo, V, io], M, 1, M * V);
    return new Int32Array(this.runtime.memory.buffer, io, M).slice();
  }

  /** y = x·Wᵀ (+ bias) into scratch of `c`: x [M, K], W a wasm matrix [N, K]; the offset of y [M, N] */
  private product(c: OpScratch, x: Tensor, m: Matrix, bias: Tensor | null): number {
    const [M, K] = x.shape;
    return this.productAt(c, c.in(x), M, K, m, bias);
  }

  /**
   * `product` of x [M, K] at offset `xo` of wasm memory. packs: x as packed (q8: quantized) for the prefill GEMMs
   * (packXOnce), by packing kind, kept for further products of the same x in the same op (attentionPrefill's q/k/v,
   * a gated MLP's gate/up: x packed once for all of them; the same bits as packing it for each)
   */
  private productAt(c: OpScratch, xo: number, M: number, K: number, m: Matrix, bias: Tensor | null, packs?: Map<string, number>): number {
    const N = m.rows;
    const work = M * K * N;
    const bo = c.in(bias), yo = c.out(M * N);
    const blocked = BLOCKED_FORMAT[m.format];
    if (m.format === 'q8' && M >= BLOCKED_MIN_ROWS && this.gemm === 'blocked' && this.q8Gemm !== 'f32') {
      // prefill with q8 weights: x quantized per block too, integer dot products (plain and relaxed builds)
      // (int7: the relaxed i8 dot where the engine runs it natively, else the i16 one: the same bits, see gemm_q8.ts)
      const [m8, qmax] = Q8_GEMM[this.q8Gemm];
      const mode = this.runtime.relaxedDot ? m8 : 0;
      const rt = this.runtime;
      const scratch = c.out((rt.threads * (rt.kernels.gemm_q8_scratch_bytes as unknown as () => number)()) / 4);
      if (this.packXOnce) {
        // x quantized and packed once, its (80 rows × 256) blocks split among the threads
        const key = `q8:${mode}:${qmax}`;
        let xp = packs?.get(key);
        if (xp === undefined) {
          xp = c.out(Math.ceil((rt.kernels.gemm_q8_packed_x_bytes as (M: number, K: number) => number)(M, K) / 4));
          rt.run(this.q8GemmKernel === 'v1' ? 'gemm_q8_pack_x' : 'gemm_q8_pack_x2', [mode, qmax, xo, M, K, xp], (rt.kernels.gemm_q8_x_blocks as (M: number, K: number) => number)(M, K), 1, 8 * M * K);
          packs?.set(key, xp);
        }
        rt.runTeam('gemm_q8_prepacked', [mode, qmax, xp, m.off, m.scales, bo, yo, M, K, N, scratch], work >= MIN_PARALLEL_WORK);
      } else rt.runTeam('gemm_q8', [mode, qmax, xo, m.off, m.scales, bo, yo, M, K, N, scratch], work >= MIN_PARALLEL_WORK);
    } else if (blocked !== undefined && M >= BLOCKED_MIN_ROWS && this.gemm === 'blocked' && this.runtime.fused) {
      // prefill: the blocked GEMM, each thread packing its own columns of W (scratch per thread); x packed once first
      // (packXOnce) or by each thread per block of columns
      const rt = this.runtime;
      const scratch = c.out((rt.threads * (rt.kernels.gemm_scratch_bytes as unknown as () => number)()) / 4);
      if (this.packXOnce) {
        // x packed once, its (80 rows × 256) blocks split among the threads
        let xp = packs?.get('f32');
        if (xp === undefined) {
          xp = c.out(Math.ceil((rt.kernels.gemm_packed_x_bytes as (M: number, K: number) => number)(M, K) / 4));
          rt.run('gemm_pack_x', [xo, M, K, xp], Math.ceil(M / GEMM_MC) * Math.ceil(K / GEMM_KC), 1, 2 * M * K);
          packs?.set('f32', xp);
        }
        rt.runTeam('gemm_blocked_prepacked', [xp, m.off, m.scales, blocked, bo, yo, M, K, N, scratch], work >= MIN_PARALLEL_WORK);
      } else rt.runTeam('gemm_blocked', [xo, m.off, m.scales, blocked, bo, yo, M, K, N, scratch], work >= MIN_PARALLEL_WORK);
    } else if (m.format === 'q4') {
      // x quantized as for q8, plus each block's sum of quantized values (for the mins)
      const xq = c.out((M * K) / 2 + (2 * M * K) / Q8_BLOCK), xs = xq + M * K * 2, xb = xs + (M * K * 4) / Q8_BLOCK;
      this.runtime.run('quantize_rows_q8', [xo, xq, xs, M, K], M, 1, M * K);
      this.runtime.run('q8_block_sums', [xq, xb, M, K], M, 1, M * K);
      this.runtime.run('linear_q4', [xq, xs, xb, m.off, m.scales, m.supers, bo, yo, M, K, N], N, 4, work);
    } else if (m.format === 'q8') {
      // x quantized per block of 32 too (13-bit integers as i16, in the kernels' layout), then integer dot products
      const xq = c.out((M * K) / 2 + (M * K) / Q8_BLOCK), xs = xq + M * K * 2;
      this.runtime.run('quantize_rows_q8', [xo, xq, xs, M, K], M, 1, M * K);
      this.runtime.run('linear_q8', [xq, xs, m.off, m.scales, bo, yo, M, K, N], N, 4, work);
    } else if (m.format !== 'f32' && M >= PANEL_MIN_ROWS) {
      // prefill with bf16/f16 weights: each thread unpacks 32-row panels of W to f32 and runs the f32 GEMM on them
      const panels = c.out(this.runtime.threads * 32 * K);
      this.runtime.runTeam('linear_panels', [xo, m.off, 0, m.format === 'bf16' ? 1 : 2, bo, yo, M, K, N, panels], work >= MIN_PARALLEL_WORK);
    } else this.runtime.run(`linear_${m.format}`, [xo, m.off, bo, yo, M, K, N], N, 4, work);
    return yo;
  }

  override rmsNorm(x: Tensor, w: Tensor | null, eps: number): Tensor {
    const [M, H] = x.shape;
    return this.op((c) => {
      const yo = c.out(M * H);
      this.runtime.run('rms_norm', [c.in(x), c.in(w), yo, H, eps], M, 1, 4 * M * H);
      return c.result(yo, [M, H]);
    });
  }

  /** silu(a) · b in wasm (assembly/norm.ts silu_mul; the SwiGLU of a gated MLP): split among threads from prefill sizes */
  override siluMul(a: Tensor, b: Tensor): Tensor {
    const n = a.size;
    if (b.size !== n) return super.siluMul(a, b);
    return this.op((c) => {
      const yo = c.out(n);
      this.runtime.run('silu_mul', [c.in(a), c.in(b), yo], n, 4, 8 * n);
      return c.result(yo, [...a.shape]);
    });
  }

  override rmsNormGated(x: Tensor, z: Tensor, w: Tensor, eps: number, groupSize: number): Tensor {
    const [M, W] = x.shape;
    return this.op((c) => {
      const yo = c.out(M * W);
      this.runtime.run('rms_norm_gated', [c.in(x), c.in(z), c.in(w), yo, W, groupSize, eps], M, 1, 16 * M * W);
      return c.result(yo, [M, W]);
    });
  }

  override causalConv1d(a: CausalConv1dArgs): Tensor {
    const [batch, L, C] = a.x.shape;
    const K = a.weight.shape[1];
    return this.op((c) => {
      const yo = c.out(batch * L * C);
      this.runtime.run('causal_conv1d', [c.in(a.x), c.in(a.weight), c.in(a.bias), c.in(a.state, true), yo, batch, L, C, K, a.activation === 'silu' ? 1 : 0], C, 4, 4 * batch * L * C * K);
      return c.result(yo, [batch, L, C]);
    });
  }

  /** mamba1Step / mamba2Step hand Δ out (Mamba1StepArgs.onDelta); may be set false between calls (benchmarks compare with the op sequence) */
  stepDelta = true;

  /** Mamba-1 decode step as one team kernel (assembly/mamba1_step.ts); f32 x_proj/dt_proj, resident states */
  mamba1Step(a: Mamba1StepArgs): Tensor | null {
    return this.mamba1Run(a, a.xz, null, null);
  }

  /**
   * The Mamba-1 decode step and then out_proj (`w`, `bias`) in one team call (assembly/step_out.ts): the same bits as
   * `mamba1Step` followed by `linear`; [b, 1, w rows]. null when `stepOut` is off or the step or W is not handled here;
   * also while `stepPrefetch` is on (that option touches out_proj during the step of the two-call path).
   */
  mamba1StepOut(a: Mamba1StepArgs, w: Tensor, bias: Tensor | null): Tensor | null {
    return this.fuseOut ? this.mamba1Run(a, a.xz, null, { w, bias }) : null;
  }

  /**
   * A Mamba-1 layer's whole decode step in one team call (assembly/step_out.ts: mamba1_layer): in_proj, the step,
   * out_proj; the same bits as `linear` then `mamba1StepOut`. [b, 1, out rows]; null as for `mamba2Layer`.
   */
  mamba1Layer(a: Mamba1LayerArgs): Tensor | null {
    const p = this.layerProjections(a);
    return p && this.mamba1Run(a, null, p.inp, p.out);
  }

  /** whether the *_step_out and *_layer kernels may run: `stepOut` on, `stepPrefetch` off */
  private get fuseOut(): boolean {
    return this.stepOut && !(this.stepPrefetch > 0);
  }

  /** in_proj (with its input h) and out_proj of a layer's decode step for the *_layer kernels; null when `stepIn` is off or !fuseOut */
  private layerProjections(a: Mamba1LayerArgs | Mamba2LayerArgs): { inp: StepOutArgs & { h: Tensor }; out: StepOutArgs } | null {
    if (!this.stepIn || !this.fuseOut) return null;
    return { inp: { h: a.h, w: a.inProj, bias: a.inProjBias }, out: { w: a.outProj, bias: a.outProjBias } };
  }

  /** the Mamba-1 decode step of `a` on xz (given), or on in_proj of `inp.h` (the layer kernel); then out_proj when `out` */
  private mamba1Run(a: Omit<Mamba1StepArgs, 'xz'>, xz: Tensor | null, inp: (StepOutArgs & { h: Tensor }) | null, out: StepOutArgs | null): Tensor | null {
    const [batch, L] = (xz ?? inp!.h).shape;
    if (L !== 1) return null;
    return this.op((c) => {
      const p = this.mamba1Call(c, a, batch, xz, inp && { H: inp.h.shape[2], w: inp.w, bias: inp.bias }, out);
      if (!p) return null;
      if (p.layer) this.runtime.runTeam(p.layer.kernel, [c.in(inp!.h), ...p.layer.args], p.work >= MIN_PARALLEL_WORK);
      else if (p.o) this.runtime.runTeam('mamba1_step_out', [...p.args, p.o.desc], p.work >= MIN_PARALLEL_WORK);
      else this.runtime.runTeam('mamba1_step', [...p.args, ...this.prefetchArgs(a.next)], p.work >= MIN_PARALLEL_WORK);
      const y = p.o ? c.result(p.o.y, [batch, 1, p.o.N]) : c.result(p.y, [batch, 1, p.Dm]);
      a.onDelta?.(c.result(p.deltaOut, [batch, 1, p.Dm]));
      return y;
    });
  }

  /**
   * The arguments of a Mamba-1 decode kernel (in scratch of `c`): the step's (`args`: mamba1_step's without the
   * prefetch, on xz given or, with `inp`, on in_proj's output), out_proj's descriptor `o` when `out`, and with `inp`
   * and `out` mamba1_layer's after h (`layer`); `work` for the parallel threshold. null where the kernels do not run
   * these arguments (states not wasm-resident, x_proj / dt_proj not f32 matrices, shapes).
   */
  private mamba1Call(c: OpScratch, a: Omit<Mamba1StepArgs, 'xz'>, batch: number, xz: Tensor | null, inp: (StepOutArgs & { H: number }) | null, out: StepOutArgs | null):
    { args: number[]; layer: { kernel: 'mamba1_layer'; args: number[] } | null; o: { desc: number; y: number; N: number } | null; y: number; Dm: number; deltaOut: number; work: number } | null {
    const [Dm, K] = a.conv.shape;
    const R = a.dtProj.shape[1];
    const N = a.A.shape[1];
    const f32 = (t: Tensor) => this.matrices.get(t.storage as object)?.format === 'f32';
    const convState = c.resident(a.convState), ssmState = c.resident(a.ssmState);
    if (!f32(a.xProj) || !f32(a.dtProj) || convState === undefined || ssmState === undefined) return null;
    if (xz && xz.shape[2] !== 2 * Dm) return null;
    const H = inp ? inp.H : 0;
    const i = inp ? this.stepOutDesc(c, inp, batch, H) : null;
    if (inp && (!i || i.N !== 2 * Dm || !out)) return null;
    const P = R + 2 * N;
    const n = a.innerNorms;
    const yo = c.out(batch * Dm);
    const work = c.out(batch * (2 * Dm + P + this.runtime.threads * R));
    const counter = c.zeros(2); // (i32 zeros: the step's barriers, the layer kernel's after in_proj)
    const o = out ? this.stepOutDesc(c, out, batch, Dm) : null;
    if (out && !o) return null;
    const deltaOut = a.onDelta ? c.out(batch * Dm) : 0; // Δ observed: the kernel writes it as its scan uses it
    const args = [
      i ? i.y : c.in(xz), c.in(a.conv), c.in(a.convBias), convState, c.in(a.xProj), c.in(a.dtProj), c.in(a.dtBias), c.in(a.A), c.in(a.D), ssmState,
      yo, work, counter, deltaOut, n ? 1 : 0, c.in(n?.dt ?? null), c.in(n?.B ?? null), c.in(n?.C ?? null), n ? n.eps : 0,
      batch, Dm, K, R, N,
    ];
    const stepWork = batch * Dm * (P + R + 4 * N);
    return { args, layer: i && o ? { kernel: 'mamba1_layer', args: [i.desc, H, ...args, o.desc] } : null, o, y: yo, Dm, deltaOut, work: stepWork + (i ? i.work : 0) + (o ? o.work : 0) };
  }

  /**
   * A one-token step of a stack of pre-normed sublayers in one team call (WasmBackendOptions.decodeOneCall;
   * assembly/stack.ts decode_stack): each sublayer's arguments as `mamba1Layer` / `mamba2Layer` / `attentionDecode`
   * (attnDecodeCall) / `gatedMlp` (gatedMlpCall) build them, or plain_mlp's, written into a table the kernel walks;
   * the attention entries' position-dependent arguments (key counts, RoPE's cos/sin, the key splits S) rewritten
   * before each call. The final-normed rows [b, 1, H], or with `head` each row's argmax (i32) of the LM head
   * (`linearArgmax`'s product and argmax; the rows where the head is not a matrix the decode kernels run). null (the
   * sublayers run one by one) where the option, stepIn or stepOut is off, a Mamba-2 layer would not run the
   * two-barrier kernel, attnLayer or fuseProducts is off for an attention or gated-MLP sublayer, or a sublayer's
   * arguments are not handled by its one-call kernel.
   */
  decodeStack(a: DecodeStackArgs): Tensor | Int32Array | null {
    if (!this.decodeOneCall || !this.stepIn || !this.fuseOut || a.layers.length === 0) return null;
    const b = a.rows, H = a.finalNorm.size;
    const rt = this.runtime;
    const key = this.stackKey(a);
    const same = (k: unknown[] | undefined) => !!k && k.length === key.length && k.every((v, i) => Object.is(v, key[i]));
    if (same(this.stackDeclined ?? undefined)) return null; // (declined with these arguments already: not built again)
    let p = this.stackPlan;
    if (!p || !same(p.key)) {
      if (p) this.releasePlan(p);
      this.stackPlan = p = this.stackBuild(a, key);
      this.stackDeclined = p ? null : key;
      if (!p) return null;
    } else {
      // the same arguments: the plan's table, descriptors and scratch as they are; its counters zeroed, what it copied in copied again
      for (const [off, n] of p.zeros) rt.f32(off, n).fill(0);
      for (const [off, v] of p.copies) rt.f32(off, v.length).set(v);
    }
    for (const r of p.refresh) r(a.pastLen);
    const x = a.x();
    if (x.size !== b * H) throw new Error(`wasm.decodeStack: x of shape [${x.shape.join(', ')}] for ${b} rows of ${H}`);
    rt.f32(p.x, b * H).set(x.storage as Float32Array); // (a copy: the kernel adds to x in place)
    p.args[p.args.length - 1] = this.stackParts;
    rt.runTeam('decode_stack', p.args, p.parallel);
    return p.ids ? new Int32Array(rt.memory.buffer, p.ids, b).slice() : new Tensor(this, rt.f32(p.last, b * H).slice(), [b, 1, H]);
  }

  /**
   * decodeStack's last plan: its layer table, descriptors and scratch (kept in wasm memory between calls), the
   * arguments of the decode_stack call, and what it was made for (`key`); rebuilt when the arguments change
   */
  private stackPlan: StackPlan | null = null;
  /**
   * benchmarks only: 1 has decodeStack run each layer's in_proj and out_proj and no step (the weight streaming and
   * barriers alone: the tokens and states are then not the model's); 2 has each attention sublayer run its q/k/v
   * products, a barrier and o_proj only (no RoPE, cache append or attention; the rest whole); 0 (default) the layers
   */
  stackParts: 0 | 1 | 2 = 0;
  /** the arguments decodeStack last declined (their key), so that a model it does not run costs one check per step */
  private stackDeclined: unknown[] | null = null;

  /** what decodeStack's plan depends on: every argument (tensors by identity) and the options its layer kernels read */
  private stackKey(a: DecodeStackArgs): unknown[] {
    const key: unknown[] = [
      a.rows, a.finalNorm.size, a.normEps, a.finalNorm, a.head, this.m2EarlyBC, this.touchState, this.m2TwoBarriers,
      this.attnLayer, this.fuseProducts, this.attnDecode, this.attnPad, this.q8KvDecode, this.f16KvDecode, this.attnDecodeBy,
    ];
    for (const l of a.layers) {
      key.push(l.kind, l.norm, l.scale ?? 1);
      for (const v of Object.values(l.args)) {
        if (Array.isArray(v)) key.push(...v);
        else if (v && typeof v === 'object' && !(v instanceof Tensor)) key.push(...Object.values(v));
        else key.push(v);
      }
    }
    return key;
  }

  private releasePlan(p: StackPlan): void {
    PLANS.unregister(p);
    for (let i = p.scratch.length - 1; i >= 0; i--) this.runtime.heap.release(p.scratch[i]);
    if (this.stackPlan === p) this.stackPlan = null;
  }

  /** a new plan for decodeStack (see there); null (nothing kept) where its arguments are not handled */
  private stackBuild(a: DecodeStackArgs, key: unknown[]): StackPlan | null {
    const rt = this.runtime;
    const b = a.rows, H = a.finalNorm.size;
    const p: StackPlan = { key, scratch: [], zeros: [], copies: [], refresh: [], args: [], parallel: false, x: 0, last: 0, ids: 0 };
    const alloc = (count: number): number => {
      const off = rt.heap.alloc(count * 4);
      p.scratch.push(off);
      return off;
    };
    const c: OpScratch = {
      in: (t) => {
        if (!t) return 0;
        const off = this.resident.get(t.storage as Float32Array);
        if (off !== undefined) return off;
        const v = t.storage as Float32Array;
        if (!(v instanceof Float32Array)) throw new Error('wasm.decodeStack: an argument that is neither wasm-resident nor f32');
        const s = alloc(v.length);
        rt.f32(s, v.length).set(v);
        p.copies.push([s, v]);
        return s;
      },
      out: alloc,
      data: (values) => {
        const off = alloc(values.length);
        rt.f32(off, values.length).set(values);
        p.copies.push([off, values]);
        return off;
      },
      zeros: (count) => {
        const off = alloc(count);
        rt.f32(off, count).fill(0);
        p.zeros.push([off, count]);
        return off;
      },
      result: (off, shape) => new Tensor(this, rt.f32(off, shapeSize(shape)).slice(), shape),
      resident: (t) => this.resident.get(t.storage as Float32Array),
    };
    const built = ((): boolean => {
      const stride = rt.kernels.decode_stack_stride() as unknown as number;
      const rows: number[][] = [];
      let work = 0;
      for (const l of a.layers) {
        if (l.norm.size !== H) return false;
        const norm = c.in(l.norm), scale = l.scale ?? 1;
        let row: number[];
        if (l.kind === 'attention') {
          // (its position-dependent arguments written before each call: p.refresh)
          if (!this.attnDecodeFits(l.args, b, H)) return false;
          const q = this.attnDecodeCall(c, l.args, b, H, Infinity);
          if (!q || q.N !== H) return false;
          const at = rows.length * stride;
          p.refresh.push((pastLen) => {
            q.refresh(pastLen);
            new Float64Array(rt.memory.buffer, p.args[0], stride * rows.length)[at + 20] = q.args[18]; // (S: entry index 2 + its argument index)
          });
          row = [3, norm, q.y, ...q.args.slice(1)];
          work += q.work;
        } else if (l.kind === 'plainMlp') {
          const act = PLAIN_MLP_ACT[l.args.act];
          if (act === undefined) return false; // (relu² and relu only)
          const du = this.stepOutDesc(c, { w: l.args.up[0], bias: l.args.up[1] }, b, H);
          const dd = du && this.stepOutDesc(c, { w: l.args.down[0], bias: l.args.down[1] }, b, du.N);
          if (!du || !dd || dd.N !== H) return false;
          row = [5, norm, dd.y, b, H, du.N, du.desc, dd.desc, act, c.zeros(2)];
          work += du.work + dd.work;
        } else if (l.kind === 'gatedMlp') {
          if (!this.fuseProducts) return false;
          const q = this.gatedMlpCall(c, l.args.gate, l.args.up, l.args.down, b, H);
          if (!q || q.N !== H) return false;
          row = [4, norm, q.y, ...q.args.slice(1)];
          work += q.work;
        } else {
          const inp = { H, w: l.args.inProj, bias: l.args.inProjBias }, out = { w: l.args.outProj, bias: l.args.outProjBias };
          const q = l.kind === 'mamba1' ? this.mamba1Call(c, l.args, b, null, inp, out) : this.mamba2Call(c, l.args, b, null, inp, out);
          const layer = q?.layer;
          if (!q || !layer || !q.o || q.o.N !== H) return false;
          const kernel = STACK_KERNEL[layer.kernel];
          if (kernel === undefined) return false; // (the four-barrier kernel runs layer by layer)
          row = [kernel, norm, q.o.y, ...layer.args];
          work += q.work;
        }
        if (row.length > stride - 1) throw new Error(`wasm.decodeStack: ${row.length} values for a layer entry of ${stride} (its last: the residual scale)`);
        const entry = new Array<number>(stride).fill(0);
        row.forEach((v, i) => (entry[i] = v));
        entry[stride - 1] = scale;
        rows.push(entry);
      }
      const hd = a.head ? this.stepOutDesc(c, { w: a.head, bias: null }, b, H) : null;
      const hStride = Math.ceil(Math.max(4 * b * H, 8 * b) / 64) * 64; // (also the argmax slots: (index, value) per row)
      const hbuf = c.out((rt.threads * hStride) / 4);
      p.last = hd ? 0 : c.out(b * H);
      p.ids = hd ? c.out(b) : 0;
      const counter = c.zeros(1); // (an i32 zero)
      p.x = c.out(b * H);
      const tab = c.out(2 * stride * rows.length);
      const tv = new Float64Array(rt.memory.buffer, tab, stride * rows.length);
      rows.forEach((r, l) => tv.set(r, l * stride));
      p.args = [tab, rows.length, p.x, b, H, a.normEps, hbuf, hStride, c.in(a.finalNorm), p.last, hd ? hd.desc : 0, p.ids, counter, 0];
      p.parallel = work + (hd ? hd.work : 0) >= MIN_PARALLEL_WORK;
      return true;
    })();
    if (!built) {
      this.releasePlan(p);
      return null;
    }
    PLANS.register(this, { heap: rt.heap, offs: p.scratch }, p); // (the scratch goes back with this backend)
    return p;
  }

  /** Mamba-2 decode step as one team kernel (assembly/mamba2_step.ts); resident states */
  mamba2Step(a: Mamba2StepArgs): Tensor | null {
    return this.mamba2Run(a, a.zxbcdt, null, null);
  }

  /**
   * The Mamba-2 decode step and then out_proj (`w`, `bias`) in one team call (assembly/step_out.ts): the same bits as
   * `mamba2Step` followed by `linear`; [b, 1, w rows]. null as for `mamba1StepOut`.
   */
  mamba2StepOut(a: Mamba2StepArgs, w: Tensor, bias: Tensor | null): Tensor | null {
    return this.fuseOut ? this.mamba2Run(a, a.zxbcdt, null, { w, bias }) : null;
  }

  /**
   * A Mamba-2 layer's whole decode step in one team call (assembly/step_out.ts: mamba2_layer): in_proj, Δ, the step,
   * out_proj; the same bits as `linear`, `mamba2StepOut` (Δ computed in wasm in f64 as processDt does; see the kernel).
   * [b, 1, out rows]; null when `stepIn` or `stepOut` is off (or `stepPrefetch` on) or these arguments are not handled
   * here. With `touchState`, q8 in_proj touches the state meanwhile (as `linearTouching`).
   */
  mamba2Layer(a: Mamba2LayerArgs): Tensor | null {
    const p = this.layerProjections(a);
    return p && this.mamba2Run(a, null, p.inp, p.out);
  }

  /** the Mamba-2 decode step of `a` on zxbcdt (given), or on in_proj of `inp.h` (the layer kernel); then out_proj when `out` */
  private mamba2Run(a: Omit<Mamba2StepArgs, 'zxbcdt'>, zxbcdt: Tensor | null, inp: (StepOutArgs & { h: Tensor }) | null, out: StepOutArgs | null): Tensor | null {
    const [batch, L] = (zxbcdt ?? inp!.h).shape;
    if (L !== 1) return null;
    return this.op((c) => {
      const p = this.mamba2Call(c, a, batch, zxbcdt, inp && { H: inp.h.shape[2], w: inp.w, bias: inp.bias }, out);
      if (!p) return null;
      const par = p.work >= MIN_PARALLEL_WORK;
      if (p.layer) this.runtime.runTeam(p.layer.kernel, [c.in(inp!.h), ...p.layer.args], par);
      else if (p.o) this.runtime.runTeam('mamba2_step_out', [...p.args, p.o.desc], par);
      else this.runtime.runTeam('mamba2_step', [...p.args, ...this.prefetchArgs(a.next)], par);
      // Δ observed: what observeDelta computes (same function, same inputs; the layer kernel's own f64 copy of it)
      a.onDelta?.(p.dtHost ? new Tensor(this, p.dtHost, [batch, 1, a.nHeads]) : c.result(p.dt, [batch, 1, a.nHeads]));
      return p.o ? c.result(p.o.y, [batch, 1, p.o.N]) : c.result(p.y, [batch, 1, a.nHeads * a.headDim]);
    });
  }

  /**
   * The arguments of a Mamba-2 decode kernel (in scratch of `c`), as `mamba1Call`: the step's (`args`), out_proj's
   * descriptor `o`, and with `inp` and `out` the layer kernel (mamba2_layer_2b with m2TwoBarriers, else mamba2_layer)
   * and its arguments after h (`layer`). Δ: with `inp` the layer kernel computes it into `dt`; else computed here
   * (`dtHost`, as processDt) from the given zxbcdt.
   */
  private mamba2Call(c: OpScratch, a: Omit<Mamba2StepArgs, 'zxbcdt'>, batch: number, zxbcdt: Tensor | null, inp: (StepOutArgs & { H: number }) | null, out: StepOutArgs | null): {
    args: number[]; layer: { kernel: 'mamba2_layer_2b' | 'mamba2_layer'; args: number[] } | null; o: { desc: number; y: number; N: number } | null;
    y: number; dt: number; dtHost: Float32Array | null; work: number;
  } | null {
    const { nHeads: nh, headDim: hd, nGroups: G, dState: N } = a;
    const W = nh * hd;
    const convDim = W + 2 * G * N;
    const width = W + convDim + nh;
    const K = a.conv.shape[1];
    const convState = c.resident(a.convState), ssmState = c.resident(a.ssmState);
    if (W % a.normGroupSize !== 0 || convState === undefined || ssmState === undefined) return null;
    if (zxbcdt && zxbcdt.shape[2] !== width) return null;
    const H = inp ? inp.H : 0;
    const i = inp ? this.stepOutDesc(c, inp, batch, H, this.touchState ? a.ssmState : null) : null;
    if (inp && (!i || i.N !== width || !out)) return null;
    const o = out ? this.stepOutDesc(c, out, batch, W) : null;
    if (out && !o) return null;
    const yo = c.out(batch * W);
    const work = c.out(batch * (convDim + W));
    const counter = c.zeros(2); // (i32 zeros: the step's barriers, the layer kernel's after in_proj)
    let dt: number, dtHost: Float32Array | null = null;
    if (i) dt = c.out(batch * nh); // (the layer kernel computes Δ)
    else {
      // Δ: bias, softplus and limits on the JS side, as the unfused path does
      const all = zxbcdt!.storage as Float32Array;
      const dtRaw = new Float32Array(batch * nh);
      for (let b = 0; b < batch; b++) dtRaw.set(all.subarray(b * width + W + convDim, (b + 1) * width), b * nh);
      dtHost = processDt(dtRaw, a.dtBias ? (a.dtBias.storage as Float32Array) : null, nh, a.dtLimit);
      dt = c.data(dtHost);
    }
    const args = [
      i ? i.y : c.in(zxbcdt), dt, c.in(a.conv), c.in(a.convBias), convState, c.in(a.A), c.in(a.D), ssmState, c.in(a.norm), a.normEps, a.normGroupSize,
      yo, work, counter, batch, nh, hd, G, N, K,
    ];
    const stepWork = 3 * batch * W * N;
    const total = stepWork + (i ? i.work : 0) + (o ? o.work : 0);
    let layer: { kernel: 'mamba2_layer_2b' | 'mamba2_layer'; args: number[] } | null = null;
    if (i && o && this.m2TwoBarriers) {
      // per thread: B/C conv state [batch, 2GN, K], B/C after the conv [batch, 2GN], g [batch, W] (a multiple of 64 bytes)
      const [lo, hi] = a.dtLimit;
      const privStride = Math.ceil((4 * batch * (2 * G * N * (K + 1) + W)) / 64) * 64;
      const priv = c.out((this.runtime.threads * privStride) / 4);
      layer = {
        kernel: 'mamba2_layer_2b',
        args: [i.desc, H, c.in(a.dtBias), lo, hi, i.y, dt, c.in(a.conv), c.in(a.convBias), convState, c.in(a.A), c.in(a.D), ssmState,
          c.in(a.norm), a.normEps, a.normGroupSize, priv, privStride, work, counter, batch, nh, hd, G, N, K, o.desc, this.m2EarlyBC ? 1 : 0],
      };
    } else if (i && o) {
      const [lo, hi] = a.dtLimit;
      layer = { kernel: 'mamba2_layer', args: [i.desc, H, c.in(a.dtBias), lo, hi, ...args, o.desc] };
    }
    return { args, layer, o, y: yo, dt, dtHost, work: total };
  }

  /**
   * The descriptor of out_proj (or in_proj) for the *_step_out / *_layer kernels (assembly/step_out.ts: format, W, scales, bias, y, N, the
   * q8 scratch and its stride per thread) written into scratch of `c`, for x [M, K]; null where they do not run this
   * product: W not a wasm matrix of f32/bf16/f16/q8 with K columns, or M rows that `linear` would give to the GEMM
   * kernels (the decode kernels then would not be the same bits).
   */
  private stepOutDesc(c: OpScratch, out: StepOutArgs, M: number, K: number, touch: Tensor | null = null): { desc: number; y: number; N: number; work: number } | null {
    const m = this.matrices.get(out.w.storage as object);
    const fmt = m ? STEP_OUT_FORMAT[m.format] : undefined;
    if (!m || fmt === undefined || m.cols !== K) return null;
    if (M >= (m.format === 'f32' || m.format === 'q8' ? BLOCKED_MIN_ROWS : PANEL_MIN_ROWS)) return null;
    if (out.bias && out.bias.size !== m.rows) throw new Error(`wasm: a Mamba layer's projection bias has ${out.bias.size} values for a ${m.rows}×${m.cols} matrix (expected ${m.rows})`);
    const y = c.out(M * m.rows);
    // q8: x quantized by each thread into scratch of its own (i16 values, then f32 block scales), 64-byte aligned
    const stride = m.format === 'q8' ? Math.ceil((2 * M * K + (4 * M * K) / Q8_BLOCK) / 64) * 64 : 0;
    const xq = stride ? c.out((this.runtime.threads * stride) / 4) : 0;
    const desc = c.out(10);
    const t = touch && m.format === 'q8' && M === 1 ? this.resident.get(touch.storage as Float32Array) ?? 0 : 0;
    new Int32Array(this.runtime.memory.buffer, desc, 10).set([fmt, m.off, m.scales, c.in(out.bias), y, m.rows, xq, stride, t, t ? touch!.size * 4 : 0]);
    return { desc, y, N: m.rows, work: M * K * m.rows };
  }

  /** the step kernels' pfQ, pfQRowB, pfS, pfSRowB, pfRows, pfBudget for the weight `w` (zeros: no prefetch) */
  private prefetchArgs(w: Tensor | null | undefined): number[] {
    const m = w && this.stepPrefetch > 0 ? this.matrices.get(w.storage as object) : undefined;
    if (!m) return [0, 0, 0, 0, 0, 0];
    const bytes = m.format === 'f32' ? 4 : m.format === 'q8' ? 1 : 2;
    const budget = Math.min(this.stepPrefetch, m.rows * m.cols * bytes, 2 ** 31);
    return [m.off, m.cols * bytes, m.scales, m.format === 'q8' ? (m.cols / Q8_BLOCK) * 4 : 0, m.rows, budget];
  }

  /**
   * Causal GQA attention in wasm (assembly/attention.ts): one query per row → the decode kernel (each row's keys
   * split among the threads, merged by log-sum-exp); longer → flash-style
   * tiles on the f32 GEMM. The new k/v are written into the cache first (as the CPU backend does); a resident cache
   * (the wasm backend's zeros/padTime) is read in place, another one is copied in.
   */
  override attention(a: AttentionArgs): Tensor {
    const [b, L, Hq, hd] = a.q.shape;
    const Hkv = a.k.shape[2];
    const rowKV = Hkv * hd;
    const cached = a.cacheK !== null && a.cacheV !== null;
    const cap = cached ? a.cacheK!.shape[1] : L;
    const past = cached ? a.pastLen : new Array<number>(b).fill(0);
    const kv = cached ? kvOf(a.cacheK!) : 'f32';
    if (cached) {
      const k = a.k.storage as Float32Array, v = a.v.storage as Float32Array;
      if (kv !== 'f32') {
        // written in the cache's format (round-to-nearest-even; q8 per block of 32); the kernels read what is stored
        writeRowsKv(a.cacheK!.storage as KvArray, k, past, b, L, cap, rowKV, kv);
        writeRowsKv(a.cacheV!.storage as KvArray, v, past, b, L, cap, rowKV, kv);
      } else {
        const ck = a.cacheK!.storage as Float32Array, cv = a.cacheV!.storage as Float32Array;
        for (let r = 0; r < b; r++) {
          const src = r * L * rowKV, dst = (r * cap + past[r]) * rowKV;
          ck.set(k.subarray(src, src + L * rowKV), dst);
          cv.set(v.subarray(src, src + L * rowKV), dst);
        }
      }
    }
    const fmt = KV_FORMAT[kv];
    const rt = this.runtime;
    return this.op((c) => {
      const qo = c.in(a.q), ko = c.in(cached ? a.cacheK : a.k), vo = c.in(cached ? a.cacheV : a.v);
      const yo = c.out(b * L * Hq * hd);
      const ints = c.out(b);
      const iv = new Int32Array(rt.memory.buffer, ints, b);
      const counter = c.zeros(2); // (i32 zeros)
      const maxPast = Math.max(...past);
      if (L === 1) {
        for (let r = 0; r < b; r++) iv[r] = past[r] + 1;
        const d = this.decodePlan(c, b, Hq, hd, maxPast, fmt);
        const work = 2 * b * Hq * (maxPast + 1) * hd;
        // (one item, b · S = 1 — a short context on one row — runs on this thread: a team call would wake a worker
        // only for it to wait at the barrier)
        rt.runTeam('attention_decode', [qo, ko, vo, yo, ints, b, Hq, Hkv, hd, cap, a.scale, d.S, d.scratch, counter, d.dfmt, d.shape, d.pad], work >= MIN_PARALLEL_WORK && b * d.S > 1);
      } else {
        for (let r = 0; r < b; r++) iv[r] = past[r];
        this.prefillTiles(c, qo, ko, vo, yo, ints, b, L, Hq, Hkv, hd, cap, a.scale, fmt, maxPast);
      }
      return c.result(yo, [b, L, Hq, hd]);
    });
  }

  /**
   * attention_prefill (flash-style tiles) of q [b, L, Hq, hd] at qo over keys/values at ko, vo ([b, cap, Hkv, hd] in
   * the KV format fmt), row r's queries at positions past[r] … (ints: i32 [b]); the output [b, L, Hq, hd] at yo
   */
  private prefillTiles(c: OpScratch, qo: number, ko: number, vo: number, yo: number, ints: number, b: number, L: number, Hq: number, Hkv: number, hd: number, cap: number, scale: number, fmt: number, maxPast: number): void {
    const G = Hq / Hkv;
    const BQ = Math.max(1, Math.floor((this.attnTiles === 'scoresT' ? ATTN_TILE_ROWS_T : ATTN_TILE_ROWS) / G)), BK = ATTN_TILE_KEYS;
    const Mp = Math.ceil((G * BQ) / 4) * 4; // (the tile's rows, rounded up to 4 for 'scoresT')
    const tileFloats = Math.ceil((Mp * (3 * hd + BK + 2) + 3 * BK * hd) / 16) * 16;
    const scratch = c.out(this.runtime.threads * tileFloats);
    const counter = c.zeros(2); // (i32 zeros)
    const work = 2 * b * Hq * L * (maxPast + L / 2) * hd;
    this.runtime.runTeam('attention_prefill', [qo, ko, vo, yo, ints, b, L, Hq, Hkv, hd, cap, scale, BQ, BK, scratch, tileFloats, counter, fmt, ATTN_TILES[this.attnTiles]], work >= MIN_PARALLEL_WORK);
  }

  /**
   * A prefill's attention half as one op (WasmBackendOptions.attnPrefill): the q/k/v products on h packed (q8:
   * quantized) once, RoPE (cos/sin from ropeTable, the rotation in wasm) and the new k/v written into the resident
   * caches in their format (assembly/attn_layer.ts attn_prefill_rope: rows split among threads), attention_prefill
   * over them (or over k and v themselves without a cache), and o_proj, with q, k, v and the attention output kept in
   * wasm memory. The same bits as linearMany, rope, attention and linear. null (the ops run) where the option is off,
   * for fewer than 32 rows (b · L: the GEMM kernels' threshold), where a cache is not wasm-resident (or a q8 cache's position is not whole blocks), or a weight is not a wasm matrix of
   * the layer's shapes.
   */
  attentionPrefill(a: AttentionPrefillArgs): Tensor | null {
    if (!this.attnPrefill || a.h.shape.length !== 3) return null;
    const [b, L, H] = a.h.shape;
    const { nHeads: Hq, nKvHeads: Hkv, headDim: hd } = a;
    // (fewer rows: the decode kernels' linearMany runs q/k/v in one hand-off, as before)
    if (L < 2 || b * L < BLOCKED_MIN_ROWS || Hq % Hkv !== 0) return null;
    const rd = a.rope ? a.rope.rotaryDim : 0;
    if (rd % 2 !== 0 || rd > hd) return null; // (the ops name the error)
    const ms = [a.q, a.k, a.v, a.o].map(([w]) => this.matrices.get(w.storage as object));
    const [mq, mk, mv, mo] = ms;
    if (!mq || !mk || !mv || !mo || mq.rows !== Hq * hd || mk.rows !== Hkv * hd || mv.rows !== Hkv * hd || mq.cols !== H || mk.cols !== H || mv.cols !== H || mo.cols !== Hq * hd) return null;
    if (a.residual && !this.prefillResidual) return null;
    if (a.residual && mo.rows !== H) return null;
    const rowKV = Hkv * hd;
    const cached = a.cacheK !== null && a.cacheV !== null;
    const kv = cached ? kvOf(a.cacheK!) : 'f32';
    if (cached && (kvOf(a.cacheV!) !== kv || (kv === 'q8' && rowKV % 32 !== 0))) return null;
    const cap = cached ? a.cacheK!.shape[1] : L;
    const past = cached ? a.pastLen : new Array<number>(b).fill(0);
    const rt = this.runtime;
    const M = b * L;
    return this.op((c) => {
      const kc = cached ? c.resident(a.cacheK!) : 0, vc = cached ? c.resident(a.cacheV!) : 0;
      if (kc === undefined || vc === undefined) return null;
      const xo = c.in(a.h);
      const ho = this.preNorm(c, xo, M, H, a.residual);
      const packs = new Map<string, number>();
      const q = this.productAt(c, ho, M, H, mq, a.q[1], packs);
      const k = this.productAt(c, ho, M, H, mk, a.k[1], packs);
      const v = this.productAt(c, ho, M, H, mv, a.v[1], packs);
      const ints = c.out(b);
      new Int32Array(rt.memory.buffer, ints, b).set(past);
      const cs = rd ? c.data(this.ropePrefill(past, L, rd, a.rope!.theta)) : 0;
      const fmt = KV_FORMAT[kv];
      if (rd || cached) rt.run('attn_prefill_rope', [q, k, v, L, Hq, Hkv, hd, rd, cs, kc, vc, cap, fmt, ints], M, 1, M * (Hq + 2 * Hkv) * hd * 4);
      const att = c.out(M * Hq * hd);
      this.prefillTiles(c, q, cached ? kc : k, cached ? vc : v, att, ints, b, L, Hq, Hkv, hd, cap, a.scale, fmt, Math.max(...past));
      const y = this.productAt(c, att, M, Hq * hd, mo, a.o[1]);
      this.residualAdd(xo, y, M * mo.rows, a.residual);
      return c.result(y, [b, L, mo.rows]);
    });
  }

  /** ropeTable for positions pastLen[r] + t (t < L) of every row, kept for the next call with the same ones (every attention layer of a prefill) */
  private ropePrefill(pastLen: readonly number[], L: number, rd: number, theta: number): Float32Array {
    const key = `${rd},${theta},${L},${pastLen.join(',')}`;
    if (this.ropePrefillCache?.key !== key) {
      const pos = new Int32Array(pastLen.length * L);
      for (let r = 0; r < pastLen.length; r++) for (let t = 0; t < L; t++) pos[r * L + t] = pastLen[r] + t;
      this.ropePrefillCache = { key, table: ropeTable(pos, rd, theta) };
    }
    return this.ropePrefillCache.table;
  }
  private ropePrefillCache: { key: string; table: Float32Array } | null = null;

  /**
   * decode attention's plan for b rows of one query (attention_decode's S, scratch, fmt, shape, pad): the keys split
   * so that rows × splits give every thread an equal share, in pieces of at least ATTN_MIN_SPLIT; a q8 cache read in
   * place (fmt 3) or through scratch (4: head dims not a multiple of 32, or q8KvDecode 'scratch'); the scratch (per
   * thread 2 · Hq · DBK scores and the format's, then the partials, each on cache lines of its own with attnPad)
   */
  private decodePlan(c: OpScratch, b: number, Hq: number, hd: number, maxPast: number, fmt: number): { S: number; scratch: number; dfmt: number; shape: number; pad: number } {
    const rt = this.runtime;
    const T = rt.threads;
    const S = this.decodeSplits(b, maxPast);
    // (dfmt 5: an f16 cache read with the conversion of before, f16KvDecode 'widen')
    const dfmt = fmt === 3 && (hd % 32 !== 0 || this.q8KvDecode === 'scratch') ? 4 : fmt === 2 && this.f16KvDecode === 'widen' ? 5 : fmt;
    const pad = this.attnPad ? 1 : 0;
    // (maxPast Infinity: the most scratch any split takes)
    let bytes = 0;
    for (let s = Number.isFinite(maxPast) ? S : 1; s <= S; s++) bytes = Math.max(bytes, rt.kernels.attention_decode_scratch(b, Hq, hd, s, T, dfmt, pad) as unknown as number);
    const scratch = c.out(bytes);
    return { S, scratch, dfmt, shape: ATTN_DECODE_SHAPE[this.attnDecode], pad };
  }

  /** decodePlan's S: the keys split so that rows × splits give every thread an equal share, in pieces of at least ATTN_MIN_SPLIT */
  private decodeSplits(b: number, maxPast: number): number {
    const T = this.runtime.threads;
    let S = T / gcd(b, T);
    while (S > 1 && (maxPast + 1) / S < ATTN_MIN_SPLIT) S--;
    return S;
  }

  /**
   * A decode step's attention half as one team call (WasmBackendOptions.attnLayer; assembly/attn_layer.ts): the q/k/v
   * products, RoPE (cos/sin from ropeTable, the rotation in wasm), the new k/v written into the resident caches in
   * their format, attention_decode over them and o_proj, with q, k, v and the attention output kept in wasm memory.
   * The same bits as linearMany, rope, attention and linear. null (the ops run) where the option is off, more than
   * 8 rows, a cache is not wasm-resident, or a product is not one the decode kernels run (stepOutDesc).
   */
  attentionDecode(a: AttentionDecodeArgs): Tensor | null {
    if (!this.attnDecodeFits(a, a.h.shape[0], a.h.shape[1])) return null;
    return this.op((c) => {
      const q = this.attnDecodeCall(c, a, a.h.shape[0], a.h.shape[1], Math.max(...a.pastLen));
      if (!q) return null;
      q.args[0] = c.in(a.h);
      q.refresh(a.pastLen);
      this.runtime.runTeam('attn_decode_layer', q.args, q.work >= MIN_PARALLEL_WORK);
      return c.result(q.y, [q.b, q.N]);
    });
  }

  /** whether attn_decode_layer takes these arguments (b rows of H) at all: the option, ≤ 8 rows, the heads, the caches' format */
  private attnDecodeFits(a: Omit<AttentionDecodeArgs, 'h' | 'pastLen'>, b: number, H: number): boolean {
    const { nHeads: Hq, nKvHeads: Hkv, headDim: hd } = a;
    if (!this.attnLayer || b > 8 || Hq % Hkv !== 0 || H <= 0) return false;
    const rd = a.rope ? a.rope.rotaryDim : 0;
    if (rd % 2 !== 0 || rd > hd) return false; // (the ops name the error)
    const kv = kvOf(a.cacheK);
    return kvOf(a.cacheV) === kv && !(kv === 'q8' && (Hkv * hd) % 32 !== 0);
  }

  /**
   * attn_decode_layer's arguments (after attnDecodeFits) for b rows of H, with scratch from `c`: args[0] (x) left 0
   * for the caller; `refresh(pastLen)` writes what depends on the positions (each row's key count, RoPE's cos/sin, the
   * key splits S into args) before a call — the split's scratch is sized for every S up to `maxPast`'s (the stack:
   * Infinity, any context). null where a cache is not wasm-resident or a product is not one the decode kernels run.
   * Used by `attentionDecode` and `decodeStack` (one concept, one place).
   */
  private attnDecodeCall(c: OpScratch, a: Omit<AttentionDecodeArgs, 'h' | 'pastLen'>, b: number, H: number, maxPast: number): AttnDecodeCall | null {
    const { nHeads: Hq, nKvHeads: Hkv, headDim: hd } = a;
    const rd = a.rope ? a.rope.rotaryDim : 0;
    const kv = kvOf(a.cacheK);
    const cap = a.cacheK.shape[1];
    const ko = c.resident(a.cacheK), vo = c.resident(a.cacheV);
    if (ko === undefined || vo === undefined) return null;
    const dq = this.stepOutDesc(c, { w: a.q[0], bias: a.q[1] }, b, H);
    const dk = this.stepOutDesc(c, { w: a.k[0], bias: a.k[1] }, b, H);
    const dv = this.stepOutDesc(c, { w: a.v[0], bias: a.v[1] }, b, H);
    if (!dq || !dk || !dv || dq.N !== Hq * hd || dk.N !== Hkv * hd || dv.N !== Hkv * hd) return null;
    const dout = this.stepOutDesc(c, { w: a.o[0], bias: a.o[1] }, b, Hq * hd);
    if (!dout) return null;
    const rt = this.runtime;
    const ints = c.out(b);
    const rope = a.rope ? c.out(b * rd) : 0;
    const d = this.decodePlan(c, b, Hq, hd, maxPast, KV_FORMAT[kv]);
    const att = c.out(b * Hq * hd);
    const counter = c.zeros(2);
    const args = [
      0, b, H, dq.desc, dk.desc, dv.desc, dout.desc, rope, rd, Hq, Hkv, hd, ko, vo, cap, KV_FORMAT[kv], ints,
      a.scale, d.S, d.scratch, d.dfmt, d.shape, d.pad, att, counter,
    ];
    // attnDecodeBy 'heads': one split per row, so that attn_decode_layer gives each thread whole KV heads (its
    // condition: S = 1, Hkv ≥ T, no q8 block spanning heads, hd a multiple of 4; here Hkv a multiple of T, for balance)
    const T = rt.threads;
    const byHeads = this.attnDecodeBy === 'heads' && T > 1 && Hkv % T === 0 && hd % 4 === 0 && !(kv === 'q8' && hd % 32 !== 0);
    const refresh = (pastLen: readonly number[]): void => {
      const iv = new Int32Array(rt.memory.buffer, ints, b);
      for (let r = 0; r < b; r++) iv[r] = pastLen[r] + 1;
      if (a.rope) rt.f32(rope, b * rd).set(this.ropeCosSin(pastLen, a.rope.rotaryDim, a.rope.theta));
      args[18] = byHeads ? 1 : this.decodeSplits(b, Math.max(...pastLen));
    };
    const work = dq.work + dk.work + dv.work + dout.work + 2 * b * Hq * (Number.isFinite(maxPast) ? maxPast + 1 : 0) * hd;
    return { args, y: dout.y, N: dout.N, b, work, refresh };
  }

  /** ropeTable for these positions, kept for the next call with the same ones (every attention layer of a step) */
  private ropeCosSin(pastLen: readonly number[], rd: number, theta: number): Float32Array {
    const key = `${rd},${theta},${pastLen.join(',')}`;
    if (this.ropeCache?.key !== key) this.ropeCache = { key, table: ropeTable(Int32Array.from(pastLen), rd, theta) };
    return this.ropeCache.table;
  }
  private ropeCache: { key: string; table: Float32Array } | null = null;

  /** a KV cache (zeros in bf16/f16/q8, a grown one) stays in wasm memory (resident), so that attention reads it in place */
  protected override cacheArray(count: number, kvCache: KvCacheDType = 'f32'): KvArray {
    const a = kvCache === 'f32' ? this.allocF32(count) : this.allocKv(count, kvCache);
    a.fill(0); // reused memory holds old values
    return a;
  }

  /** the sequential scan in wasm; 'chunked' (longer than a chunk) by the CPU kernel, as asked */
  override selectiveScan(a: SelectiveScanArgs): Tensor {
    if (a.algorithm === 'chunked' && a.u.shape[1] > a.chunkSize) return super.selectiveScan(a);
    const [batch, L, D] = a.u.shape;
    const N = a.A.shape[1];
    return this.op((c) => {
      // (a zeroed scratch state when there is none: the kernel runs faster with one than without)
      const state = a.state ? c.in(a.state, true) : c.zeros(batch * D * N);
      const yo = c.out(batch * L * D);
      this.runtime.run('selective_scan', [
        c.in(a.u), c.in(a.delta), c.in(a.A), c.in(a.B), c.in(a.C), c.in(a.D), c.in(a.z), c.in(a.deltaBias), state,
        yo, batch, L, D, N, a.deltaSoftplus ? 1 : 0,
      ], D, 4, 8 * batch * L * D * N);
      return c.result(yo, [batch, L, D]);
    });
  }

  /**
   * A Mamba-2 layer's prefill in one op (WasmBackendOptions.prefillLayer): in_proj's output zxbcdt [b·L, width] stays
   * in wasm memory; conv1d + SiLU runs on its xBC columns in place, a row at a time (channels split among threads; K > 4:
   * into a buffer of its own), Δ from its dt columns (rows split), the chunked SSD reads x, B, C there (strided), the gated RMSNorm
   * reads z there (rows split) and writes over the SSD's y, out_proj multiplies that; one copy out. The same kernels'
   * arithmetic as the op sequence (`linear`, `causalConv1d`, `ssd`, `rmsNormGated`). null (the mixer runs the ops)
   * when the option is off, the SSD would not run chunked (another algorithm asked, or L < ssdChunkedMinLength), or
   * the weights are not wasm matrices of the layer's shapes.
   */
  mamba2Prefill(a: Mamba2PrefillArgs): Tensor | null {
    if (!this.prefillLayer || a.algorithm !== 'chunked') return null;
    if (a.residual && !this.prefillResidual) return null;
    const { nHeads: nh, headDim: hd, nGroups: G, dState: N } = a;
    const [batch, L, H] = a.h.shape;
    const W = nh * hd, GN = G * N, convDim = W + 2 * GN, width = W + convDim + nh;
    const [convRows, K] = a.conv.shape;
    const mi = this.matrices.get(a.inProj.storage as object), mo = this.matrices.get(a.outProj.storage as object);
    if (a.h.shape.length !== 3 || L < 2 || L < this.ssdChunkedMinLength || !mi || !mo) return null;
    if (mi.rows !== width || mi.cols !== H || mo.cols !== W || convRows !== convDim || W % a.normGroupSize !== 0 || nh % G !== 0) return null;
    if (a.residual && mo.rows !== H) return null;
    const [lo, hi] = a.dtLimit;
    if (!(lo <= hi)) return null; // (the op sequence's processDt names the error)
    const M = batch * L;
    const rt = this.runtime;
    const res = a.residual;
    if (res?.norm && (res.norm.shape.length !== 1 || res.norm.shape[0] !== H)) return null; // (the ops name the error)
    return this.op((c) => {
      const xo = c.in(a.h);
      const zx = this.productAt(c, this.preNorm(c, xo, M, H, a.residual), M, H, mi, a.inProjBias);
      // conv1d + SiLU of the xBC columns: K ≤ 4 in place, time outermost (causal_conv1d_timewise); else into a buffer
      // of its own (causal_conv1d_rows reads x_{t−j} back)
      const inPlace = K <= 4;
      const xbc = inPlace ? zx + W * 4 : c.out(M * convDim), xbcRow = inPlace ? width : convDim;
      const convArgs = [zx + W * 4, width, c.in(a.conv), c.in(a.convBias), c.in(a.convState, true), xbc, xbcRow];
      if (inPlace) rt.run('causal_conv1d_timewise', [...convArgs, c.out(4 * convDim), c.out(4 * convDim), batch, L, convDim, K, 1], convDim, 4, 4 * M * convDim * K);
      else rt.run('causal_conv1d_rows', [...convArgs, batch, L, convDim, K, 1], convDim, 4, 4 * M * convDim * K);
      // Δ [b·L, nh] (exp and log1p per value: counted as 32 units of work each)
      const dt = c.out(M * nh);
      rt.run('mamba2_dt_rows', [zx + (W + convDim) * 4, width, c.in(a.dtBias), lo, hi, dt, nh], M, 1, 32 * M * nh);
      // the chunked SSD on x, B, C in place
      const Q = Math.min(a.chunkSize, SSD_MAX_CHUNK, L);
      const bytes = (rt.kernels.ssd_chunked_work_bytes as (...v: number[]) => number)(batch, L, hd, G, N, Q, rt.threads);
      const work = c.out(Math.ceil(bytes / 4));
      const counter = c.zeros(1); // (an i32 zero)
      const y = c.out(M * W);
      // (no state: a zero one, as `ssd` passes — the same sums, so the same bits)
      const state = a.ssmState ? c.in(a.ssmState, true) : c.zeros(batch * nh * hd * N);
      rt.runTeam('ssd_chunked_rows', [
        xbc, xbcRow, dt, c.in(a.A), xbc + W * 4, xbc + (W + GN) * 4, xbcRow, c.in(a.D), state, y, work, counter,
        batch, L, nh, hd, G, N, Q, this.ssdFma ? 1 : 0,
      ], 4 * M * W * N >= MIN_PARALLEL_WORK);
      // g = norm(y · silu(z)) over y
      rt.run('rms_norm_gated_rows', [y, W, zx, width, c.in(a.norm), y, W, W, a.normGroupSize, a.normEps], M, 1, 16 * M * W);
      const out = this.productAt(c, y, M, W, mo, a.outProjBias);
      this.residualAdd(xo, out, M * mo.rows, a.residual);
      return c.result(out, [batch, L, mo.rows]);
    });
  }

  /**
   * Mamba-2: 'chunked' (the default) and 'recurrent' in wasm, 'quadratic' by the CPU kernel. Chunked: the SSD as small
   * matrix products on the GEMM tiles (assembly/ssd_chunked.ts), threads over (batch row, head); the recurrence (exact;
   * threads split heads) for decode steps and prompts shorter than `ssdChunkedMinLength`, where it is faster.
   */
  override ssd(a: SsdArgs): Tensor {
    const [batch, L, nh, hd] = a.x.shape;
    if (a.algorithm === 'quadratic' && L > 1) return super.ssd(a);
    const [, , G, N] = a.B.shape;
    const chunked = a.algorithm === 'chunked' && L >= this.ssdChunkedMinLength && L > 1;
    return this.op((c) => {
      const dt = c.data(processDt(a.dt.storage as Float32Array, a.dtBias ? (a.dtBias.storage as Float32Array) : null, nh, a.dtLimit));
      const state = a.state ? c.in(a.state, true) : c.zeros(batch * nh * hd * N);
      const yo = c.out(batch * L * nh * hd);
      const args = [c.in(a.x), dt, c.in(a.A), c.in(a.B), c.in(a.C), c.in(a.D), state, yo];
      const flops = 4 * batch * L * nh * hd * N;
      if (chunked) {
        const rt = this.runtime;
        const Q = Math.min(a.chunkSize, SSD_MAX_CHUNK, L);
        const bytes = (rt.kernels.ssd_chunked_work_bytes as (...v: number[]) => number)(batch, L, hd, G, N, Q, rt.threads);
        const work = c.out(Math.ceil(bytes / 4));
        const counter = c.zeros(1); // (an i32 zero)
        // (ssd_chunked_rows with dense rows: x [b, L, nh, hd], B and C [b, L, G, N])
        const [xo, dto, Ao, Bo, Co, Do, so, ys] = args;
        rt.runTeam('ssd_chunked_rows', [xo, nh * hd, dto, Ao, Bo, Co, G * N, Do, so, ys, work, counter, batch, L, nh, hd, G, N, Q, this.ssdFma ? 1 : 0], flops >= MIN_PARALLEL_WORK);
      } else {
        this.runtime.run('ssd_scan', [...args, batch, L, nh, hd, G, N], nh, 1, flops);
      }
      return c.result(yo, [batch, L, nh, hd]);
    });
  }
}

/** a boolean option of WasmBackendOptions: `dflt` when left out; another type is a LoadOptionError naming it */
function flagOption(opts: WasmBackendOptions, name: 'fuseProducts' | 'stepOut' | 'touchState' | 'stepIn' | 'm2TwoBarriers' | 'm2EarlyBC' | 'decodeOneCall' | 'prefillLayer' | 'prefillResidual' | 'ssdFma' | 'packXOnce' | 'attnPad' | 'attnLayer' | 'attnPrefill' | 'mlpPrefill', dflt: boolean): boolean {
  const v: unknown = opts[name];
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new LoadOptionError(`wasm backend: option "${name}" must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** a boolean environment variable (MAMBA_TS_WASM_STEP_OUT, _STEP_IN, _M2_TWO_BARRIERS, _M2_EARLY_BC, _DECODE_ONE_CALL, _TOUCH_STATE, _PREFILL_LAYER, _SSD_FMA, _PACK_X_ONCE, _ATTN_PAD, _ATTN_LAYER, _ATTN_PREFILL, _MLP_PREFILL): '1' true, '0' false, unset or empty `dflt` */
function envFlag(name: string, dflt: boolean): boolean {
  const raw = typeof process !== 'undefined' ? process.env?.[name] : undefined;
  if (raw === undefined || raw === '') return dflt;
  if (raw === '1' || raw === '0') return raw === '1';
  throw new LoadOptionError(`wasm backend: ${name} must be 0 or 1, got "${raw}"`);
}

/** MAMBA_TS_WASM_STEP_PREFETCH (bytes per thread; 0 = off), else 0 */
function envStepPrefetch(): number {
  const raw = typeof process !== 'undefined' ? process.env?.MAMBA_TS_WASM_STEP_PREFETCH : undefined;
  if (raw === undefined || raw === '') return 0;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0) throw new LoadOptionError(`wasm backend: MAMBA_TS_WASM_STEP_PREFETCH must be a number of bytes >= 0, got "${raw}"`);
  return v;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** a dropped backend's decodeStack plan: its scratch back to the thread pool's heap (the pool outlives backends) */
const PLANS = new FinalizationRegistry<{ heap: Heap; offs: number[] }>(({ heap, offs }) => {
  for (let i = offs.length - 1; i >= 0; i--) heap.release(offs[i]);
});

/** decodeStack's plan (WasmBackend.stackPlan): offsets are bytes into wasm memory */
/** assembly/step_out.ts plain_mlp's activations (decodeStack) */
const PLAIN_MLP_ACT: Partial<Record<string, number>> = { relu2: 1, relu: 2 };

/** attn_decode_layer's arguments for one layer (WasmBackend.attnDecodeCall) */
interface AttnDecodeCall {
  /** the kernel's arguments but t and T; [0] (x) for the caller */
  args: number[];
  /** o_proj's output [b, N] */
  y: number;
  N: number;
  b: number;
  work: number;
  /** writes the position-dependent arguments for a step from these positions (see attnDecodeCall) */
  refresh(pastLen: readonly number[]): void;
}

interface StackPlan {
  key: unknown[];
  /** everything it allocated (released when the plan is replaced) */
  scratch: number[];
  /** counters to zero before each call: (offset, floats) */
  zeros: Array<[number, number]>;
  /** arrays it copied into wasm memory (not resident there), copied again before each call */
  copies: Array<[number, Float32Array]>;
  /** the attention sublayers' position-dependent arguments, written before each call (AttnDecodeCall.refresh) */
  refresh: Array<(pastLen: readonly number[]) => void>;
  /** decode_stack's arguments but t and T */
  args: number[];
  parallel: boolean;
  /** x [b, H] (copied in), the normed rows (no head) or the ids (head) */
  x: number;
  last: number;
  ids: number;
}

/** The scratch of one wasm op call (WasmBackend.op); offsets are bytes into wasm memory. */
interface OpScratch {
  /** the tensor's data in wasm memory (copied into scratch unless resident; `copyBack`: copied back by `result`); 0 for null */
  in(t: Tensor | null, copyBack?: boolean): number;
  /** `count` floats of scratch */
  out(count: number): number;
  /** a scratch copy of `values` */
  data(values: Float32Array): number;
  /** `count` zeroed floats of scratch */
  zeros(count: number): number;
  /** the op's result: a host copy of the floats at `off`; states passed with copyBack are copied back first */
  result(off: number, shape: number[]): Tensor;
  /** the offset of a wasm-resident tensor, else undefined */
  resident(t: Tensor): number | undefined;
}
