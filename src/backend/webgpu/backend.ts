/// <reference types="@webgpu/types" />
/**
 * The WebGPU backend: tensors are ranges of GPUBuffers (`runtime.ts`), ops record WGSL dispatches
 * (`kernels/`) and nothing runs until a read: `read()` submits everything recorded in one command
 * buffer and maps the result. Same semantics as the CPU reference backend, including the in-place
 * updates of the recurrent state (conv window, SSM state, KV cache).
 *
 * Splits for adapter limits: a weight matrix larger than the biggest binding (`maxStorageBufferBindingSize`,
 * 128 MiB on lavapipe) is stored as row blocks, and `linear`/`embedding` run block by block; dispatches
 * whose inputs live in more buffers than a shader stage may bind first gather inputs into one buffer;
 * grids wrap into two dimensions past `maxComputeWorkgroupsPerDimension`.
 */
import { PREFILL_SUPPORT, UnsupportedAlgorithmError, type AttentionArgs, type Backend, type CausalConv1dArgs, type DecodeStackArgs, type DiffAttrs, type DiffOp, type Differentiated, type Elementwise, type Mamba1StepArgs, type Mamba2StepArgs, type PrefillSupport, type SampleRowsArgs, type SelectiveScanArgs, type SsdArgs, type StepGraph } from '../backend.js';
import { Tensor, shapeSize, type Shape } from '../../tensor/tensor.js';
import { encodeHalfInto, type KvCacheDType } from '../../tensor/dtype.js';
import { BACKEND_KV_CACHE_FORMATS, checkKvCache } from '../../api/load-options.js';
import { GpuGraph, GpuRuntime, Store, f2u, packBf16, type KernelSpec, type RowBlock, type StepPlan } from './runtime.js';
import { Q8_BLOCK } from '../wasm/q8.js';
import { Q8_SUPER_WORDS, packQ8Gpu, q8Words } from './kernels/q8.js';
import { parseMatvecSgConfig, type MatvecSgConfig } from './kernels/matvec_sg.js';
import { parseMatvecBwConfig } from './kernels/matvec_bf16.js';
import { packedFormat } from './kernels/matvec.js';
import { MAMBA1_SCAN_SG, MAMBA2_STEP_SG } from './kernels/mamba_step_sg.js';
import { MAMBA1_SCAN, MAMBA1_XPROJ, MAMBA2_STEP, STEP_MAX_STATE, STEP_MAX_XDBL } from './kernels/mamba_step.js';
import { MAMBA1_SCAN_S, MAMBA1_XPROJ_SK, MAMBA2_STEP_S, XPROJ_SLICE, mamba1ScanStreamVariant, mamba2StepStreamRows, mamba2StepStreamVariant } from './kernels/mamba_step_stream.js';
import { BINARY_MAP, FILL, UNARY_MAP } from './kernels/elementwise.js';
import { COPY_ROWS, GATHER_ROWS, PAD_TIME, SCATTER_ADD_ROWS } from './kernels/copy.js';
import { MATMUL, MATMUL_SIMPLE } from './kernels/linear.js';
import { MATMUL_TILED, SG_MATMUL, f32MatrixConfig, sgMatmulVariant, tiledWorkgroupBytes } from './kernels/gemm.js';
import { BLOCKED_CONFIGS, MATMUL_BLOCKED, SPLITK_REDUCE, blockedPlan, checkTuned, parseBlocked, tunedChoice, type GemmTuned } from './kernels/gemm_blocked.js';
import { MATMUL_I8 } from './kernels/gemm_int8.js';
import { Int8Gemm, int8Slices } from './int8.js';
import { RMS_NORM, RMS_NORM_GATED, RMS_NORM_GATED_ROWS, RMS_NORM_GATED_SG, RMS_NORM_SG } from './kernels/rms_norm.js';
import { CONV_OUT, CONV_STATE, CONV_STEP } from './kernels/causal_conv1d.js';
import { SCAN_CARRY, SCAN_CARRY_D, SCAN_CHUNK, SCAN_FINISH, SCAN_OUT, SCAN_STATES, SCAN_STEP, SCAN_STEP_DT } from './kernels/selective_scan.js';
import { ARGMAX_FINAL, ARGMAX_PART } from './kernels/argmax.js';
import { SAMPLE } from './kernels/sample.js';
import { TOP_P_EPS } from '../../generate/sampling.js';
import { SSD_CB, SSD_DT, SSD_OUT, SSD_PASS, SSD_STATES, SSD_STEP, SSD_STEP_SG, ssdStepRows } from './kernels/ssd.js';
import { SSDF_CB, SSDF_OUT, SSDF_OUT_V1, SSDF_PASS, SSDF_PASS_V1, SSDF_STATES } from './kernels/ssd_chunk.js';
import { ATTENTION, ATTN_COMBINE, KV_WRITE, ROPE } from './kernels/attention.js';
import { halfFormat, type HalfFormat } from './kernels/half.js';
import { ATTN_FWD, attnVariant } from './kernels/grad_attention.js';
import { ATTN_PREFILL, prefillAttentionBytes, prefillAttentionRows, prefillAttentionVariant } from './kernels/attention_prefill.js';
import { BF16_WIDE_DEFAULT, DecodeFusion } from './fusion.js';
import { ROWS_AUTO, ROWS_MAX } from './kernels/matvec_rows.js';
import { MegaDecode } from './mega.js';
import { GPU_DIFF_OPS, gpuDifferentiable, type GpuCtx } from './autograd/index.js';
import { ropeTable } from './autograd/attention.js';
import { WEBGPU_ATTENTIONS, WEBGPU_BATCH_DECODES, WEBGPU_GEMMS, WEBGPU_GEMMS_SMALL, WEBGPU_Q8_TILES, WEBGPU_SCANS, WEBGPU_SSDS, WEBGPU_STATE_ROWS, WEBGPU_WEIGHT_FORMATS, type WebGpuAttention, type WebGpuBackendOptions, type WebGpuGemm, type WebGpuGemmSmall, type WebGpuQ8Tiles, type WebGpuBatchDecode, type WebGpuScan, type WebGpuSsd, type WebGpuWeights } from './options.js';

export { WEBGPU_ATTENTIONS, WEBGPU_BATCH_DECODES, WEBGPU_GEMMS, WEBGPU_GEMMS_SMALL, WEBGPU_Q8_TILES, WEBGPU_SCANS, WEBGPU_SSDS, WEBGPU_STATE_ROWS, WEBGPU_WEIGHT_FORMATS, type WebGpuAttention, type WebGpuBackendOptions, type WebGpuGemm, type WebGpuGemmSmall, type WebGpuQ8Tiles, type WebGpuBatchDecode, type WebGpuScan, type WebGpuSsd, type WebGpuWeights } from './options.js';

const F32_MAX = 3.4028234663852886e38;
/**
 * the subgroup matvec's tunables of decodeKernels 'v2': unrolled loads, rows per subgroup and workgroup size fitted
 * per matrix to launch ≥ 2 workgroups per GPU core (no H100 sweep yet: issue 11's probe timed out)
 */
const MATVEC_SG_DEFAULT: MatvecSgConfig = { rps: 4, wg: 128, unroll: true };

/** max |a − b| / max(|b|) over two arrays (a scale-free error of a product) */
export function maxRelErr(a: Float32Array, b: Float32Array): number {
  let e = 0, s = 0;
  for (let i = 0; i < b.length; i++) {
    e = Math.max(e, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return a.length !== b.length ? Infinity : e / (s || 1);
}

/** the stores of a step's own tensors (a KV cache split by sequences: each of its blocks) */
function ownStores(own: readonly Tensor[]): Store[] {
  return own.flatMap((t) => (t.storage as Store).blocks?.map((b) => b.store) ?? [t.storage as Store]);
}

/**
 * The batch-1 decode kernels a backend takes when none are named (WebGpuBackendOptions.decodeKernels,
 * MAMBA_TS_WEBGPU_DECODE): 'mega-r32-o8' on NVIDIA adapters with the tuned kernels — measured there (H100, session 34,
 * beside the official CUDA-graph decode in the same call: mamba2-130m 1.29× f32 / 1.70× bf16, mamba-130m 1.34× / 1.75×,
 * against v1's 1.03–1.25× f32 / 1.23–1.45× bf16 in that call); its probe still runs first and a timeout falls back to v1 with a warning — and 'v1'
 * elsewhere (other GPUs have not been timed, and a persistent kernel's grid barrier needs all its workgroups resident).
 */
export function defaultDecodeKernels(adapterName: string, kernels: string): string {
  return kernels === 'tiled' && /^nvidia\b/i.test(adapterName) ? 'mega-r32-o8' : 'v1';
}

export class WebGpuBackend implements Backend {
  readonly name: string;
  /** mamba1Step / mamba2Step hand Δ out (Mamba1StepArgs.onDelta: the step kernels write it); may be set false (benchmarks compare with the op sequence) */
  stepDelta = true;
  readonly rt: GpuRuntime;
  /** SSD chunk length on this device (64 needs ~26 KiB of workgroup memory) */
  readonly ssdChunk: number;
  readonly kernels: 'tiled' | 'simple';
  readonly weights: WebGpuWeights;
  /** the prefill GEMM asked for (see WebGpuBackendOptions.gemm); `gemmKernel` says which one runs a shape */
  gemm: WebGpuGemm;
  /**
   * A kernel-choice setter's step: `v` checked against `allowed` (an error naming the option otherwise); a change from
   * `cur` makes recorded steps stale (the epoch moves on). Returns `v`.
   */
  private switchTo<T extends string>(name: string, allowed: readonly T[], cur: T, v: T): T {
    if (!allowed.includes(v)) throw new Error(`webgpu: ${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
    if (v !== cur) this.epoch++;
    return v;
  }
  /** the GEMM of 9–128 rows (see WebGpuBackendOptions.gemmSmall); setting it makes recorded steps stale */
  get gemmSmall(): WebGpuGemmSmall {
    return this.small;
  }
  set gemmSmall(g: WebGpuGemmSmall) {
    this.small = this.switchTo('gemmSmall', WEBGPU_GEMMS_SMALL, this.small, g);
  }
  private small: WebGpuGemmSmall = 'blocked';
  /** how the tiled GEMM loads q8 weight tiles (see WebGpuBackendOptions.q8Tiles); setting it makes recorded steps stale */
  get q8Tiles(): WebGpuQ8Tiles {
    return this.q8T;
  }
  set q8Tiles(t: WebGpuQ8Tiles) {
    this.q8T = this.switchTo('q8Tiles', WEBGPU_Q8_TILES, this.q8T, t);
  }
  private q8T: WebGpuQ8Tiles = 'vector';
  /** the kernels of batched decode steps (see WebGpuBackendOptions.batchDecode); setting it makes recorded steps stale */
  get batchDecode(): WebGpuBatchDecode {
    return this.batchDec;
  }
  set batchDecode(e: WebGpuBatchDecode) {
    this.batchDec = this.switchTo('batchDecode', WEBGPU_BATCH_DECODES, this.batchDec, e);
    this.fx.rowLanes = e === 'fused' || e === 'fused2';
  }
  private batchDec: WebGpuBatchDecode = 'fused';
  /**
   * the 'blocked' GEMM's configuration and split forced for every shape (a BLOCKED_CONFIGS name or a variant base,
   * and a split count): the bench's sweep, or MAMBA_TS_WEBGPU_BLOCKED_CONFIG=name[@splits]; undefined: chosen per
   * shape (`blockedPlan`)
   */
  blockedConfig: string | undefined;
  /** the fewest rows gemmSmall 'blocked' takes (fewer go to the decode matvec; see WebGpuBackendOptions.gemmSmallMin); setting it makes recorded steps stale */
  get gemmSmallMin(): number {
    return this.smallMin;
  }
  set gemmSmallMin(m: number) {
    if (!Number.isInteger(m) || m < 1 || m > 129) throw new Error(`webgpu: gemmSmallMin must be an integer from 1 to 129 (the fewest rows the blocked GEMM takes), got ${m}`);
    if (m !== this.smallMin) this.epoch++;
    this.smallMin = m;
  }
  private smallMin = 9;
  /**
   * rows of a head's state per subgroup in Mamba-2's batched decode step (`ssd_step_sg`; see
   * WebGpuBackendOptions.decodeStateRows); setting it makes recorded steps stale
   */
  get decodeStateRows(): number {
    return this.stateRows;
  }
  set decodeStateRows(p: number) {
    if (!(WEBGPU_STATE_ROWS as readonly number[]).includes(p)) throw new Error(`webgpu: decodeStateRows must be one of ${WEBGPU_STATE_ROWS.join(', ')} (rows of a head's state per subgroup in the Mamba-2 decode step; 1 = the kernel of before), got ${p}`);
    if (p !== this.stateRows) this.epoch++;
    this.stateRows = p;
  }
  private stateRows = 1;
  blockedSplits: number | undefined;
  /**
   * per-shape GEMM choices (see WebGpuBackendOptions.gemmTuned; kernels/gemm_blocked.ts `GemmTuned`), below a forced
   * `blockedConfig`; setting it makes recorded steps stale
   */
  get gemmTuned(): GemmTuned | undefined {
    return this.tuned;
  }
  set gemmTuned(t: GemmTuned | undefined) {
    this.tuned = t === undefined ? undefined : checkTuned(t, 'gemmTuned');
    this.epoch++;
  }
  private tuned: GemmTuned | undefined;
  /** the Mamba-1 prefill scan asked for (see WebGpuBackendOptions.scan) */
  get scan(): WebGpuScan {
    return this.scanK;
  }
  /** (recorded steps go stale: the decode step reads its inputs in place or not by it) */
  set scan(k: WebGpuScan) {
    if (k !== this.scanK) this.epoch++;
    this.scanK = k;
  }
  private scanK: WebGpuScan = 'rescan';
  /** the Mamba-2 SSD kernels (see WebGpuBackendOptions.ssd); setting it makes recorded steps stale */
  get ssdKernels(): WebGpuSsd {
    return this.ssdK;
  }
  set ssdKernels(k: WebGpuSsd) {
    if (!(WEBGPU_SSDS as readonly string[]).includes(k)) throw new Error(`webgpu: ssd must be one of ${WEBGPU_SSDS.join(', ')}, got ${JSON.stringify(k)}`);
    if (k !== this.ssdK) this.epoch++;
    this.ssdK = k;
  }
  private ssdK: WebGpuSsd = 'fused';
  /** the Mamba-1 prefill scan that runs (N ≤ 64 states; 'simple' kernels always run 'partials') */
  get scanKernel(): WebGpuScan {
    return this.kernels === 'tiled' ? this.scan : 'partials';
  }
  /**
   * the subgroup-matrix GEMM's configuration (`${M}x${N}x${K}s${subgroup size}`), set by `enableMatrixGemm` once it
   * passed its check on this device; null: not available (`matrixNote` says why)
   */
  matrixGemm: string | null = null;
  matrixNote = 'no subgroup-matrix feature';
  /** the int8 GEMM (gemm 'int8x1'…'int8x4'): which product step runs (`int8.note`), its forced tiles, its weight slices */
  readonly int8: Int8Gemm;
  /** chunked scan, chunked SSD (default; 'simple' kernels: the recurrence) and the recurrence; no quadratic SSD; own chunk lengths */
  readonly prefill: PrefillSupport;

  /** decode fusion on (see PendingNorm); false records every op as its own dispatch(es) */
  get fuse(): boolean {
    return this.fusion;
  }
  set fuse(on: boolean) {
    if (on !== this.fusion) this.epoch++; // recorded steps used the other kernels: capture again
    this.fusion = on;
  }
  private fusion: boolean;
  /** inference attention kernels (see WebGpuBackendOptions.attention); setting it makes recorded steps stale */
  get attentionKernels(): WebGpuAttention {
    return this.attn;
  }
  set attentionKernels(k: WebGpuAttention) {
    if (!(WEBGPU_ATTENTIONS as readonly string[]).includes(k)) throw new Error(`webgpu: attention kernels must be one of ${WEBGPU_ATTENTIONS.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(k)}`);
    if (k !== this.attn) this.epoch++;
    this.attn = k;
  }
  private attn: WebGpuAttention;
  /** the variant of the flash prefill kernel (kernels/attention_prefill.ts) for a head dim, or null: the training forward runs */
  prefillAttentionKernel(hd: number): string | null {
    if (this.kernels !== 'tiled' || (this.attn !== 'flash' && this.attn !== 'flash-q32' && this.attn !== 'flash-q64')) return null;
    // 64-query tiles where the device has the 48 KiB ('flash', 'flash-q64'; on an H100 2.56 vs 4.08 ms per llama-130m
    // layer at 2,048, exact: session 27), 32-query tiles when asked for ('flash-q32') or where that is all that fits
    return prefillAttentionVariant(hd, this.attn === 'flash-q32' ? Math.min(this.rt.maxWorkgroupStorage, prefillAttentionBytes('q32')) : this.rt.maxWorkgroupStorage);
  }
  private readonly gpuCores: number;
  private attnSplits: number | undefined;
  /** flash-decoding: the keys of a row split in this many slices (undefined: `decodeSplits` picks per call); settable, as the `attentionSplits` option */
  get attentionSplits(): number | undefined {
    return this.attnSplits;
  }
  set attentionSplits(s: number | undefined) {
    if (s !== undefined && (!Number.isInteger(s) || s < 1)) throw new Error(`webgpu: attentionSplits must be a positive integer, got ${s}`);
    if (s !== this.attnSplits) this.epoch++; // recorded decode steps dispatch the old split: record them again
    this.attnSplits = s;
  }
  /**
   * batched decode through the few-rows kernel (kernels/fewrows.ts): 2–8 rows, and up to 64 where the blocked GEMM
   * does not take them (`productKernel`); false (default): the matvec up to 8 rows
   */
  get fewRows(): boolean {
    return this.fx.fewRows;
  }
  set fewRows(on: boolean) {
    if (on !== this.fx.fewRows) this.epoch++;
    this.fx.fewRows = on;
  }
  /**
   * batched decode at 2 to this many rows (≤ 16) through MATVEC_R (kernels/matvec_rows.ts; WebGpuBackendOptions.decodeRows),
   * also where the blocked GEMM would take them; 'auto': 2 to ROWS_AUTO (4) rows, where the H100 measured it faster
   * (session 33); 0 (default): the kernels of before. Setting it makes recorded steps stale
   */
  get decodeRows(): number | 'auto' {
    return this.rowsSetting;
  }
  set decodeRows(n: number | 'auto') {
    if (n !== 'auto' && (!Number.isInteger(n) || n < 0 || n > ROWS_MAX || n === 1)) throw new Error(`webgpu: decodeRows must be 0 (off), 'auto' (2–${ROWS_AUTO} rows) or an integer from 2 to ${ROWS_MAX} (the most rows MATVEC_R takes), got ${JSON.stringify(n)}`);
    const rows = n === 'auto' ? ROWS_AUTO : n;
    if (rows !== this.fx.rows) this.epoch++;
    this.fx.rows = rows;
    this.rowsSetting = n;
  }
  private rowsSetting: number | 'auto' = 0;
  /** the batch-1 decode kernels (see WebGpuBackendOptions.decodeKernels); setting it makes recorded steps stale */
  get decodeKernels(): string {
    return this.decodeName;
  }
  /** decodeKernels as set ('mega-g66-r16'); decodeK: its family ('mega') */
  private decodeName = 'v1';
  private megaGroups = 132;
  set decodeKernels(name: string) {
    // a trailing '-s' ('v1-s', 'v1-b-r2u4-s'): the streaming step kernels (kernels/mamba_step_stream.ts) with the rest of
    // the set named before it
    const stream = /.-s$/.test(name);
    const k = stream ? name.slice(0, -2) : name;
    // 'v1-u{U}' / 'v1-k{U}': v1 with MATVEC_V's loads in flight / the split-K matvec (issue 11's candidates)
    const v1 = /^v1-(?:u([1248])|k([124]))$/.exec(k);
    // 'mega-g{G}-r{R}[-o{O}][-p4]': 'mega' with G workgroups (else megaGroups) and R projection rows per pass (8, 16, 32;
    // else 8); '-o{O}': out_proj's rows split evenly over the workgroups, O a pass (Mamba-1 in 3 phases always splits
    // them, at R a pass without -o); '-p4': Mamba-1 stacks in session 32's 4 phases a layer (else 3; then -o is
    // ignored; Mamba-2 ignores -p4); '-e': Mamba-2 stacks in MEGA2's even split (MegaOptions.even; Mamba-1 ignores it);
    // '-u{U}': the projections' loads in flight a lane (MegaOptions.loads); '-h': a greedy step's gather, LM head and
    // argmax inside the kernel (MegaOptions.head)
    const mega = /^mega(?:-g(\d+))?(?:-r(8|16|32))?(?:-o(8|16|32))?(-p4)?(-e)?(?:-u(1|2|4|8))?(-h)?$/.exec(k);
    // 'v1-b' / 'v1-b-r{R}u{U}[s{S}]': v1 with bf16 weights through MATVEC_BW (kernels/matvec_bf16.ts)
    const bw = parseMatvecBwConfig(k);
    const cfg = k === 'v1' || k === 'fused' || mega || v1 || bw ? null : parseMatvecSgConfig(k, { ...MATVEC_SG_DEFAULT, auto: 2 * this.gpuCores });
    if (name !== this.decodeName) this.epoch++;
    this.streamStep = stream;
    if (mega && this.mega) {
      this.mega.opts.groups = mega[1] ? Number(mega[1]) : this.megaGroups;
      this.mega.opts.rows = mega[2] ? Number(mega[2]) : 8;
      this.mega.opts.outRows = mega[3] ? Number(mega[3]) : undefined;
      this.mega.opts.mamba1Phases = mega[4] ? 4 : 3;
      this.mega.opts.even = !!mega[5];
      this.mega.opts.loads = mega[6] ? Number(mega[6]) : undefined;
      this.mega.opts.head = !!mega[7];
    }
    this.decodeK = mega ? 'mega' : k;
    this.decodeName = name;
    this.fx.sgv = cfg;
    this.fx.loads = v1?.[1] ? Number(v1[1]) : 0;
    this.fx.splitK = v1?.[2] ? Number(v1[2]) : 0;
    // 'mega' falls back to v1's kernels wherever its one dispatch does not run (batches, other stacks, the probe
    // pending): they keep v1's bf16 rule
    this.fx.bw = bw ?? ((k === 'v1' || mega) && BF16_WIDE_DEFAULT ? {} : null);
    this.fx.bwLarge = k === 'v1' || !!mega;
  }
  private decodeK = 'v1';
  /** decodeKernels '…-s': the streaming step kernels (MAMBA2_STEP_S, MAMBA1_XPROJ_SK, MAMBA1_SCAN_S) where they apply */
  private streamStep = false;
  /** MAMBA2_STEP_S's state elements a lane (its variant: mamba2StepStreamVariant(N, Q)); MAMBA_TS_WEBGPU_STEP_Q */
  stepStreamQ = 4;
  /** MAMBA1_XPROJ_SK's lanes a row (variant 'l{L}'); MAMBA_TS_WEBGPU_XPROJ_L */
  xprojStreamL = 8;
  /** decodeKernels 'mega': the one-dispatch decode step (mega.ts) */
  readonly mega: MegaDecode;
  /** bumped when recorded steps go stale */
  private epoch = 0;
  /** work held back for decode fusion (see fusion.ts) */
  private readonly fx: DecodeFusion;

  constructor(device: GPUDevice, adapterName: string, opts: WebGpuBackendOptions = {}) {
    this.rt = new GpuRuntime(device, opts);
    this.name = `webgpu(${adapterName})`;
    this.ssdChunk = this.rt.maxWorkgroupStorage >= 26 * 1024 ? 64 : 32;
    this.kernels = opts.kernels ?? 'tiled';
    this.prefill = this.kernels === 'simple' ? { ...PREFILL_SUPPORT.webgpu, ssd: ['recurrent', 'chunked'] } : PREFILL_SUPPORT.webgpu;
    this.fx = new DecodeFusion(this.rt, this.kernels);
    const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
    this.fusion = opts.fuse ?? this.kernels === 'tiled';
    try {
      const envRows = env?.MAMBA_TS_WEBGPU_DECODE_ROWS;
      this.decodeRows = opts.decodeRows ?? (envRows ? (envRows === 'auto' ? 'auto' : Number(envRows)) : 0);
    } catch (e) {
      throw new Error(`${(e as Error).message}${opts.decodeRows !== undefined ? '' : ' (from MAMBA_TS_WEBGPU_DECODE_ROWS)'}`);
    }
    // MATVEC_R's P rule: at least this many workgroups (MAMBA_TS_WEBGPU_ROWS_GROUPS, for sweeps on a GPU; default 128)
    const rowsGroups = env?.MAMBA_TS_WEBGPU_ROWS_GROUPS ? Number(env.MAMBA_TS_WEBGPU_ROWS_GROUPS) : this.fx.rowsMinGroups;
    if (!Number.isInteger(rowsGroups) || rowsGroups < 0) throw new Error(`webgpu: MAMBA_TS_WEBGPU_ROWS_GROUPS must be a whole number of workgroups, got ${env?.MAMBA_TS_WEBGPU_ROWS_GROUPS}`);
    this.fx.rowsMinGroups = rowsGroups;
    // the streaming step kernels' tunables (decodeKernels '…-s'; for sweeps on a GPU)
    const stepQ = env?.MAMBA_TS_WEBGPU_STEP_Q ? Number(env.MAMBA_TS_WEBGPU_STEP_Q) : this.stepStreamQ;
    if (!Number.isInteger(stepQ) || stepQ < 1 || stepQ > 64) throw new Error(`webgpu: MAMBA_TS_WEBGPU_STEP_Q (state elements a lane of mamba2_step_s) must be a whole number in 1..64, got ${env?.MAMBA_TS_WEBGPU_STEP_Q}`);
    this.stepStreamQ = stepQ;
    const xprojL = env?.MAMBA_TS_WEBGPU_XPROJ_L ? Number(env.MAMBA_TS_WEBGPU_XPROJ_L) : this.xprojStreamL;
    if (![1, 2, 4, 8, 16, 32, 64, 128, 256].includes(xprojL) || xprojL < 2) throw new Error(`webgpu: MAMBA_TS_WEBGPU_XPROJ_L (lanes a row of mamba1_xproj_sk) must be a power of two in 2..256, got ${env?.MAMBA_TS_WEBGPU_XPROJ_L}`);
    this.xprojStreamL = xprojL;
    this.fx.fewRows = opts.fewRows ?? false; // measured slower than the former path at batch 32/64 on an H100 (BENCHMARKS.md)
    this.weights = opts.weights ?? 'f32';
    this.attn = 'flash';
    this.attentionKernels = opts.attention ?? (env?.MAMBA_TS_WEBGPU_ATTENTION as WebGpuAttention | undefined) ?? 'flash';
    this.gpuCores = opts.gpuCores ?? 132;
    this.int8 = new Int8Gemm(this.rt, (spec, roles, params, grid, variant) => this.run(spec, roles, params, grid, variant), this.gpuCores);
    this.attnSplits = opts.attentionSplits;
    for (const [k, v] of [['gpuCores', this.gpuCores], ['attentionSplits', this.attnSplits ?? 1]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`webgpu: ${k} must be a positive integer, got ${v}`);
    }
    this.decodeKernels = opts.decodeKernels ?? (env?.MAMBA_TS_WEBGPU_DECODE || defaultDecodeKernels(adapterName, this.kernels));
    const megaGroups = opts.megaGroups ?? (env?.MAMBA_TS_WEBGPU_MEGA_GROUPS ? Number(env.MAMBA_TS_WEBGPU_MEGA_GROUPS) : this.gpuCores);
    const megaSpin = opts.megaSpin ?? 1 << 20;
    for (const [k, v] of [['megaGroups', megaGroups], ['megaSpin', megaSpin]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`webgpu: ${k} must be a positive integer, got ${v}${k === 'megaGroups' && opts.megaGroups === undefined && env?.MAMBA_TS_WEBGPU_MEGA_GROUPS ? ' (from MAMBA_TS_WEBGPU_MEGA_GROUPS)' : ''}`);
    }
    this.megaGroups = megaGroups;
    this.mega = new MegaDecode(this.rt, { groups: megaGroups, rows: 8, spin: megaSpin, mamba1Phases: 3 }, () => this.epoch++, (n) => this.scratch(n, 'mega output'));
    this.decodeKernels = this.decodeName; // (a 'mega-…' from the options or the environment: its settings now)
    this.gemm = opts.gemm ?? ((env?.MAMBA_TS_WEBGPU_GEMM || 'sgmat') as WebGpuGemm);
    if (!(WEBGPU_GEMMS as readonly string[]).includes(this.gemm)) {
      throw new Error(`webgpu: gemm must be one of ${WEBGPU_GEMMS.join(', ')}, got ${JSON.stringify(this.gemm)}${opts.gemm ? '' : ' (from MAMBA_TS_WEBGPU_GEMM)'}`);
    }
    try {
      this.gemmSmall = opts.gemmSmall ?? ((env?.MAMBA_TS_WEBGPU_GEMM_SMALL || 'blocked') as WebGpuGemmSmall);
    } catch (e) {
      throw new Error(`${(e as Error).message}${opts.gemmSmall ? '' : ' (from MAMBA_TS_WEBGPU_GEMM_SMALL)'}`);
    }
    try {
      this.q8Tiles = opts.q8Tiles ?? ((env?.MAMBA_TS_WEBGPU_Q8_TILES || 'vector') as WebGpuQ8Tiles);
    } catch (e) {
      throw new Error(`${(e as Error).message}${opts.q8Tiles ? '' : ' (from MAMBA_TS_WEBGPU_Q8_TILES)'}`);
    }
    try {
      this.batchDecode = opts.batchDecode ?? ((env?.MAMBA_TS_WEBGPU_BATCH_DECODE || 'fused') as WebGpuBatchDecode);
    } catch (e) {
      throw new Error(`${(e as Error).message}${opts.batchDecode ? '' : ' (from MAMBA_TS_WEBGPU_BATCH_DECODE)'}`);
    }
    try {
      this.gemmSmallMin = opts.gemmSmallMin ?? (env?.MAMBA_TS_WEBGPU_GEMM_SMALL_MIN ? Number(env.MAMBA_TS_WEBGPU_GEMM_SMALL_MIN) : 9);
    } catch (e) {
      throw new Error(`${(e as Error).message}${opts.gemmSmallMin !== undefined ? '' : ' (from MAMBA_TS_WEBGPU_GEMM_SMALL_MIN)'}`);
    }
    try {
      this.decodeStateRows = opts.decodeStateRows ?? (env?.MAMBA_TS_WEBGPU_STATE_ROWS ? Number(env.MAMBA_TS_WEBGPU_STATE_ROWS) : 1);
    } catch (e) {
      throw new Error(`${(e as Error).message}${opts.decodeStateRows !== undefined ? '' : ' (from MAMBA_TS_WEBGPU_STATE_ROWS)'}`);
    }
    // a blocked configuration (and split) forced for every shape, for sweeps of the end-to-end bench
    const forced = env?.MAMBA_TS_WEBGPU_BLOCKED_CONFIG;
    if (forced) {
      const [cfg, sp] = forced.split('@');
      parseBlocked((BLOCKED_CONFIGS[cfg] ?? cfg) + 'f');
      this.blockedConfig = cfg;
      this.blockedSplits = sp === undefined ? undefined : Number(sp);
    }
    // (MAMBA_TS_WEBGPU_GEMM_TUNED=path.json is read by createWebGpuBackend, which passes the table here)
    if (opts.gemmTuned) this.gemmTuned = opts.gemmTuned;
    this.scan = opts.scan ?? ((env?.MAMBA_TS_WEBGPU_SCAN || 'rescan') as WebGpuScan);
    if (!(WEBGPU_SCANS as readonly string[]).includes(this.scan)) {
      throw new Error(`webgpu: scan must be one of ${WEBGPU_SCANS.join(', ')}, got ${JSON.stringify(this.scan)}${opts.scan ? '' : ' (from MAMBA_TS_WEBGPU_SCAN)'}`);
    }
    const ssd = opts.ssd ?? ((env?.MAMBA_TS_WEBGPU_SSD || 'fused') as WebGpuSsd);
    if (!(WEBGPU_SSDS as readonly string[]).includes(ssd)) {
      throw new Error(`webgpu: ssd must be one of ${WEBGPU_SSDS.join(', ')}, got ${JSON.stringify(ssd)}${opts.ssd ? '' : ' (from MAMBA_TS_WEBGPU_SSD)'}`);
    }
    this.ssdK = ssd;
    if (!(WEBGPU_WEIGHT_FORMATS as readonly string[]).includes(this.weights)) {
      throw new Error(`webgpu: weights must be one of ${WEBGPU_WEIGHT_FORMATS.join(', ')}, got ${JSON.stringify(this.weights)}`);
    }
  }

  // ---- memory --------------------------------------------------------------------------------

  /** a tensor's store, its pending norm recorded first (anything but a fused matvec reads it), a lazy split copied */
  private st(t: Tensor): Store {
    const s = t.storage as Store;
    if (s.lazy) this.materialize(s);
    return this.fx.store(s);
  }

  /**
   * A tensor of rows as a kernel with a row stride reads it: a lazily split piece (see `split`) is its source's
   * columns in place (the store starts at the piece's first column; rows `stride` apart), anything else its own
   * store with rows `width` apart. `width`: the row length as the kernel sees it (default the last dimension; e.g.
   * nh·hd for x reshaped to [b, L, nh, hd]).
   */
  private rows(t: Tensor, width = t.shape[t.shape.length - 1]): { s: Store; stride: number } {
    const s = t.storage as Store;
    const z = s.lazy;
    if (!z || width !== z.width) return { s: this.st(t), stride: width };
    return { s: this.fx.store(z.src).view(z.col, (z.rows - 1) * z.stride + z.width), stride: z.stride };
  }

  /** lazily split pieces by their source's block; a source disposed while it has some is released after the last */
  private readonly lazyOf = new Map<Store, Set<Store>>();
  private readonly lateRelease = new Set<Store>();

  /** record the copy of a lazily split piece into its own block */
  private materialize(s: Store): void {
    const z = s.lazy!;
    this.run(COPY_ROWS, [this.fx.store(z.src), s], [z.rows, z.width, z.stride, z.col, z.width, 0], this.threads(z.rows * z.width));
    this.unlink(s);
  }

  /** a lazy piece no longer needs its source (copied or disposed): the source goes if it was only waiting for it */
  private unlink(s: Store): void {
    const src = s.lazy!.src;
    s.lazy = null;
    const base = src.base ?? src;
    const set = this.lazyOf.get(base);
    set?.delete(s);
    if (set && set.size > 0) return;
    this.lazyOf.delete(base);
    if (this.lateRelease.delete(base)) this.release(base);
  }

  private release(s: Store): void {
    if (!this.fx.releasing(s)) this.rt.release(s); // else the pending reduce releases it once recorded
  }

  async captureStep<T>(step: () => Promise<T>, own: readonly Tensor[]): Promise<{ result: T; graph: StepGraph | null }> {
    this.fx.flush();
    const epoch = this.epoch;
    // (a KV cache split by sequences: the step owns each of its blocks)
    const { result, graph } = await this.rt.capture(step, ownStores(own));
    if (graph?.plan) Object.assign(graph.plan, { epoch, owner: this });
    return { result, graph: graph ? Object.assign(graph, { backendName: this.name, epoch, owner: this }) : null };
  }

  /** see Backend.stepPlan (GpuRuntime.rebindSteps; null when off, stale or not rebindable) */
  stepPlan(graph: StepGraph): object | null {
    const g = graph as unknown as GpuGraph & { owner?: WebGpuBackend };
    return g.owner === this && this.rt.rebindSteps ? g.plan : null;
  }

  /** see Backend.rebindStep */
  rebindStep(plan: object, own: readonly Tensor[]): StepGraph | null {
    const p = plan as StepPlan & { epoch?: number; owner?: WebGpuBackend };
    if (p.owner !== this || p.epoch !== this.epoch || !this.rt.rebindSteps) return null;
    this.fx.flush();
    const g = this.rt.rebind(p, ownStores(own));
    return g ? Object.assign(g, { backendName: this.name, epoch: this.epoch, owner: this }) : null;
  }

  async replayStep(graph: StepGraph, upload: ArrayLike<number>, shift?: readonly number[]): Promise<Float32Array | null> {
    const g = this.liveGraph(graph);
    return g && this.rt.replay(g, upload, shift);
  }

  async replayChain(graph: StepGraph, upload: ArrayLike<number>, n: number, shift?: readonly number[]): Promise<Float32Array | null> {
    const g = this.liveGraph(graph);
    return g && this.rt.replayChain(g, upload, n, shift);
  }

  startChain(graph: StepGraph, upload: ArrayLike<number> | null, n: number, shift?: readonly number[]): Promise<Float32Array> | null {
    const g = this.liveGraph(graph);
    return g && this.rt.startChain(g, upload, n, shift);
  }

  replayFeed(graph: StepGraph, uploads: readonly ArrayLike<number>[], shift?: readonly number[]): boolean {
    const g = this.liveGraph(graph);
    if (g) this.rt.replayFeed(g, uploads, shift);
    return !!g;
  }

  /** a step this backend recorded, with the pending ops recorded before it; null when it went stale */
  private liveGraph(graph: StepGraph): GpuGraph | null {
    const g = graph as unknown as GpuGraph & { epoch?: number; owner?: WebGpuBackend };
    if (g.owner !== this) throw new Error(`webgpu: a step recorded on ${graph.backendName} replayed on another backend`);
    if (this.decodeK === 'mega') this.mega.check(); // a grid barrier that timed out in an earlier step: off, recorded again
    if (g.epoch !== this.epoch || g.released) return null;
    this.fx.flush();
    return g;
  }

  releaseStep(graph: StepGraph): void {
    const g = graph as unknown as GpuGraph & { owner?: WebGpuBackend };
    if (g.owner === this) this.rt.releaseGraph(g);
  }

  private opt(t: Tensor | null): Store {
    return t ? this.st(t) : this.rt.dummy;
  }
  private tensor(s: Store, shape: Shape, viewOf?: Tensor): Tensor {
    return new Tensor(this, s, [...shape], 'f32', viewOf);
  }
  private out(shape: Shape, what = 'result'): Tensor {
    return this.tensor(this.rt.alloc(this.rt.actPool, shapeSize(shape), what), shape);
  }
  private scratch(n: number, what: string): Store {
    return this.rt.alloc(this.rt.actPool, n, what);
  }
  /** scratch of an op whose dispatches are recorded: free for the next op (see GpuRuntime.release) */
  private done(...scratch: Store[]): void {
    for (const s of scratch) this.rt.release(s);
  }
  /** record a dispatch after the pending linears */
  private run(spec: KernelSpec, roles: Store[], params: number[], grid: [number, number, number], variant = ''): void {
    this.fx.run(spec, roles, params, grid, variant);
  }
  private rec(spec: KernelSpec, roles: Store[], params: number[], grid: [number, number, number], variant = ''): void {
    this.rt.record({ spec, variant, roles, params, grid });
  }
  /** one thread per item, 256 per workgroup */
  private threads(n: number): [number, number, number] {
    return this.rt.grid(Math.ceil(n / 256));
  }

  private sgOk(): boolean {
    return this.fx.sgOk();
  }
  private sgGrid(items: number): [number, number, number] {
    return this.fx.sgGrid(items);
  }

  /** bytes of host data uploaded so far (weights as stored: bf16 matrices count 2 bytes a weight, q8 ones 1.125 and their last superblock's padding) */
  weightBytes = 0;

  fromHost(data: Float32Array, shape: Shape, opts?: { matrix?: boolean; float32?: boolean; kvCache?: KvCacheDType }): Tensor {
    if (data.length !== shapeSize(shape)) throw new Error(`webgpu.fromHost: ${data.length} values for shape [${shape.join(', ')}]`);
    const kv = this.kvFormat(opts?.kvCache, 'webgpu.fromHost');
    if (kv !== 'f32') {
      // a bf16/f16 KV cache: rounded to nearest even here (dtype.ts, as the cpu/wasm backends store it), two per u32
      this.kvCheck(shape, kv);
      return this.kvSplit(shape, kv, 'KV cache', data) ?? new Tensor(this, this.kvStore(kv, data.length, 'KV cache', data), [...shape], kv);
    }
    if (opts?.kvCache === 'f32') {
      const split = this.kvSplit(shape, 'f32', 'KV cache', data);
      if (split) return split;
      const t = this.tensor(this.rt.fromHost(this.rt.constPool, data), shape);
      (t.storage as Store).kv = true;
      return t;
    }
    if (!opts?.matrix || shape.length !== 2) {
      this.weightBytes += data.byteLength;
      return this.tensor(this.rt.fromHost(this.rt.constPool, data), shape);
    }
    const [rows, cols] = shape;
    // q8 needs rows of whole 32-blocks (as on wasm), bf16 rows of whole 16-byte vectors; other matrices stay float32
    const fmt = opts.float32 ? 'f32' : this.weights === 'bf16' && cols % 8 === 0 ? 'bf16' : this.weights === 'q8' && cols % Q8_BLOCK === 0 ? 'q8' : 'f32';
    const upload = (part: Float32Array): Store => {
      const s = this.rt.fromHost(this.rt.matPool, fmt === 'bf16' ? packBf16(part) : fmt === 'q8' ? packQ8Gpu(part) : part);
      this.weightBytes += s.len * 4;
      s.fmt = fmt;
      if (fmt === 'q8') s.q8Elems = part.length;
      return s;
    };
    // bytes a row takes (q8: 1.125 a weight with the scales; room left for the padding of a block's last superblock)
    const rowBytes = fmt === 'q8' ? (cols * 9) / 8 : cols * (fmt === 'bf16' ? 2 : 4);
    const room = this.rt.maxBinding - (fmt === 'q8' ? Q8_SUPER_WORDS * 4 : 0);
    if ((fmt === 'q8' ? q8Words(rows * cols) * 4 : rows * rowBytes) > this.rt.maxBinding) {
      const per = Math.floor(room / rowBytes);
      if (per < 1) throw new Error(`webgpu.fromHost: one row of a [${rows}, ${cols}] matrix exceeds the adapter's largest binding (${this.rt.maxBinding} bytes)`);
      const blocks: RowBlock[] = [];
      for (let r0 = 0; r0 < rows; r0 += per) {
        const r1 = Math.min(rows, r0 + per);
        blocks.push({ r0, r1, store: upload(data.subarray(r0 * cols, r1 * cols)) });
      }
      const s = new Store(blocks[0].store.ref, 0, data.length, null, blocks);
      s.fmt = blocks[0].store.fmt;
      return this.tensor(s, shape);
    }
    return this.tensor(upload(data), shape);
  }

  /** `kvCache` bf16/f16: a KV cache [b, T, Hkv, hd] of 16-bit values, two per u32 (`kvCheck`), in the KV pool */
  zeros(shape: Shape, kvCache?: KvCacheDType): Tensor {
    const kv = this.kvFormat(kvCache, 'webgpu.zeros');
    if (kv !== 'f32') this.kvCheck(shape, kv);
    // (kvCache given, f32 too: a KV cache, split by sequences when larger than a binding)
    const split = kvCache !== undefined ? this.kvSplit(shape, kv, 'KV cache') : null;
    if (split) {
      for (const b of this.seqBlocks(split)) this.fill(b.store, 0);
      return split;
    }
    const t = kv === 'f32' ? this.out(shape, 'zeros') : this.kvOut(shape, kv, 'KV cache');
    if (kvCache !== undefined) (t.storage as Store).kv = true;
    this.fill(this.st(t), 0);
    return t;
  }

  // ---- KV caches split by sequences ----------------------------------------------------------
  // A KV cache [b, T, Hkv, hd] larger than one buffer binding (maxStorageBufferBindingSize: 2 GiB − 4 on NVIDIA,
  // e.g. llama-130m at 64k × batch 32 in bf16) is stored as blocks of whole sequences (Store.blocks, r0/r1 in
  // batch rows), each a store of its own in the KV pool; the ops that touch caches (attention and its cache write,
  // padTime, takeRows, concatRows, scatterAddRows, read, dispose) run block by block with the block's rows. A
  // cache that fits stays one store and takes the same dispatches as before.

  /**
   * A KV cache tensor split into blocks of sequences when [b, …] of `kv` values exceeds the largest binding (null
   * when it fits: the caller makes one store); `data`: its values from the host (else contents undefined).
   */
  private kvSplit(shape: Shape, kv: 'f32' | 'bf16' | 'f16', what: string, data?: Float32Array): Tensor | null {
    if (shape.length < 3 || shape[0] < 1) return null;
    const w = kv === 'f32' ? 1 : 2; // values per word
    const rowWords = shapeSize(shape) / shape[0] / w;
    const most = this.rt.maxKvBlock;
    if (rowWords * shape[0] * 4 <= most) return null;
    const per = Math.floor(most / (rowWords * 4));
    if (per < 1) {
      throw new Error(`webgpu: a ${what} [${shape.join(', ')}] (${kv}) needs ${rowWords * 4} bytes per sequence, more than ${most === this.rt.maxBinding ? "the adapter's largest buffer binding" : 'a KV cache block may hold (maxKvBlockBytes)'} (${most} bytes); use a shorter context`);
    }
    const blocks: RowBlock[] = [];
    for (let r0 = 0; r0 < shape[0]; r0 += per) {
      const r1 = Math.min(shape[0], r0 + per);
      blocks.push({ r0, r1, store: this.kvStore(kv, (r1 - r0) * rowWords * w, what, data?.subarray(r0 * rowWords * w, r1 * rowWords * w)) });
    }
    const s = new Store(blocks[0].store.ref, 0, rowWords * shape[0], null, blocks);
    s.fmt = kv;
    s.kv = true;
    return new Tensor(this, s, [...shape], kv);
  }

  /** a tensor's blocks of sequences (a KV cache split by `kvSplit`), or its one store as a block of all rows */
  private seqBlocks(t: Tensor): RowBlock[] {
    const s = t.storage as Store;
    return s.blocks ?? [{ r0: 0, r1: t.shape[0], store: this.st(t) }];
  }

  /** `len` words from word `off` of a block store, in its format */
  private sub(s: Store, off: number, len: number): Store {
    const v = s.view(off, len);
    v.fmt = s.fmt;
    return v;
  }

  /**
   * The pieces of rows [a0, a0 + n) of blocks A that land on rows [b0, b0 + n) of blocks B: each piece lies in
   * one block of each (rows local to the blocks).
   */
  private spans(A: RowBlock[], a0: number, B: RowBlock[], b0: number, n: number): { x: Store; xr: number; y: Store; yr: number; n: number }[] {
    const out: { x: Store; xr: number; y: Store; yr: number; n: number }[] = [];
    const at = (bs: RowBlock[], r: number) => bs.find((b) => r >= b.r0 && r < b.r1)!;
    for (let i = 0; i < n; ) {
      const x = at(A, a0 + i), y = at(B, b0 + i);
      const cnt = Math.min(n - i, x.r1 - (a0 + i), y.r1 - (b0 + i));
      out.push({ x: x.store, xr: a0 + i - x.r0, y: y.store, yr: b0 + i - y.r0, n: cnt });
      i += cnt;
    }
    return out;
  }

  /**
   * A 16-bit KV cache holds two values per 32-bit word, and a kernel writes whole words: each position (the values
   * after the first two dimensions, Hkv·hd) must have an even count, so that no word straddles two positions.
   */
  private kvCheck(shape: Shape, kv: 'bf16' | 'f16'): void {
    const per = shape.length < 3 ? NaN : shape.slice(2).reduce((a, d) => a * d, 1);
    if (!(per % 2 === 0)) {
      throw new Error(`webgpu: a ${kv} KV cache (kvCache '${kv}') is [batch, time, heads, head dim] with an even number of values per position (two per 32-bit word); got shape [${shape.join(', ')}]`);
    }
  }

  /** a fresh 16-bit KV cache tensor (contents undefined) */
  private kvOut(shape: Shape, kv: 'bf16' | 'f16', what: string): Tensor {
    this.kvCheck(shape, kv);
    return new Tensor(this, this.kvStore(kv, shapeSize(shape), what), [...shape], kv);
  }

  /**
   * One store of KV cache values in the KV pool, marked as a cache in format `kv`: `data` uploaded (16-bit: rounded to
   * nearest even, two values per u32), else room for `values` (contents undefined)
   */
  private kvStore(kv: 'f32' | 'bf16' | 'f16', values: number, what: string, data?: Float32Array): Store {
    let st: Store;
    if (!data) st = this.rt.alloc(this.rt.kvPool, kv === 'f32' ? values : values / 2, what);
    else if (kv === 'f32') st = this.rt.fromHost(this.rt.kvPool, data);
    else {
      const bits = new Uint16Array(data.length);
      encodeHalfInto(data, kv, bits);
      st = this.rt.fromHost(this.rt.kvPool, new Uint32Array(bits.buffer));
    }
    st.fmt = kv;
    st.kv = true;
    return st;
  }

  /** the kvCache option as this backend stores it (checkKvCache with its formats: f32, bf16, f16) */
  private kvFormat(kvCache: unknown, where: string): 'f32' | 'bf16' | 'f16' {
    return checkKvCache(kvCache, where, 'webgpu', BACKEND_KV_CACHE_FORMATS.webgpu) as Exclude<KvCacheDType, 'q8'>;
  }

  /** the format letter of a 16-bit KV cache tensor ('b' bf16, 'h' f16; kernels/half.ts), '' for any other */
  private kvOf(t: Tensor): HalfFormat {
    return t.dtype === 'bf16' || t.dtype === 'f16' ? halfFormat(t.dtype) : '';
  }

  private fill(s: Store, v: number): void {
    this.run(FILL, [s], [s.len, f2u(v)], this.threads(s.len));
  }

  read(t: Tensor): Promise<Float32Array> {
    const s = this.st(t);
    this.fx.flush();
    return this.rt.read(s);
  }

  /**
   * Greedy decoding on the GPU: the index of each row's largest value (the first on ties, as the CPU
   * sampler), so a decode step reads back 4 bytes per sequence instead of the logits. logits [rows, V].
   */
  async argmaxRows(logits: Tensor): Promise<Int32Array> {
    const V = logits.shape[logits.shape.length - 1];
    const rows = logits.size / V;
    const idx = this.out([rows], 'argmax');
    // decodeKernels 'fused': the pending lm_head matvec writes per-workgroup argmax partials (no ARGMAX_PART)
    const lm = this.fuse && (this.decodeK === 'fused' || this.decodeK === 'mega') ? this.fx.takeTail(logits.storage as Store, (p) => this.fx.extOk(p) && p.N === V) : null;
    let part: Store;
    let nSeg: number;
    if (lm) {
      this.fx.flush();
      part = this.scratch(Math.ceil(V / 2) * 2, 'argmax partials');
      nSeg = Math.ceil(V / this.fx.recLinear(lm, null, null, null, { kind: 'a', aux: part }));
    } else {
      const x = this.st(logits);
      const seg = 2048;
      nSeg = Math.ceil(V / seg);
      part = this.scratch(rows * nSeg * 2, 'argmax partials');
      this.run(ARGMAX_PART, [x, part], [rows, V, seg, nSeg], this.rt.grid(rows * nSeg));
    }
    this.run(ARGMAX_FINAL, [part, this.st(idx)], [rows, nSeg], this.rt.grid(rows));
    this.done(part);
    const f = await this.read(idx);
    idx.dispose();
    return Int32Array.from(f, (v) => Math.round(v));
  }

  /**
   * Sampling on the GPU (kernels/sample.ts): each row's next token from logits [rows, V] after the repetition
   * penalty, temperature, top-k, top-p and min-p, drawn with the row's Philox counter in `rng` (advanced by one);
   * with a penalty the drawn id is marked in `presence`. −1 for a row with nothing selectable.
   */
  async sampleRows(logits: Tensor, a: SampleRowsArgs): Promise<Int32Array> {
    const V = logits.shape[logits.shape.length - 1];
    const rows = logits.size / V;
    if (a.rng.size !== rows * 8) throw new Error(`webgpu.sampleRows: rng holds ${a.rng.size} values, expected ${rows * 8} (8 per row)`);
    const pen = a.repetitionPenalty !== 1;
    if (pen && a.presence?.size !== rows * V) throw new Error(`webgpu.sampleRows: a repetition penalty needs presence [${rows}, ${V}]`);
    if (!(a.temperature > 0)) throw new Error(`webgpu.sampleRows: temperature must be > 0 (0 is greedy: argmaxRows), got ${a.temperature}`);
    const topK = a.topK > 0 && a.topK < V, topP = a.topP < 1, minP = a.minP > 0;
    const flags = (pen ? 1 : 0) | (topK ? 2 : 0) | (topP ? 4 : 0) | (minP ? 8 : 0);
    const idx = this.out([rows], 'sampled ids');
    const params = [rows, V, flags, f2u(a.temperature), f2u(a.repetitionPenalty), topK ? a.topK : 0, f2u(a.topP - TOP_P_EPS), f2u(a.minP)];
    this.run(SAMPLE, [this.st(logits), this.st(a.rng), pen ? this.st(a.presence!) : this.rt.dummy, this.st(idx)], params, this.rt.grid(rows));
    const f = await this.read(idx);
    idx.dispose();
    return Int32Array.from(f, (v) => Math.round(v));
  }

  readSync(_t: Tensor): Float32Array {
    throw new Error('webgpu: tensors live in GPU memory and cannot be read synchronously; use `await tensor.data()`');
  }

  /**
   * Return the tensor's GPU block to its pool now (see GpuRuntime.release for why reuse is safe with work
   * recorded). The tensor layer calls this once per storage, when the last tensor on it (reshapes, views) is
   * disposed. Work deferred for fusion that touches the block is recorded first: the pending matvecs, and the
   * pending norms that read it (a norm whose own output is disposed is dropped, never computed). Split matrices
   * are left to the garbage collector, as are tensors never disposed.
   */
  dispose(t: Tensor): void {
    const s = t.storage as Store;
    if (s.lazy) this.unlink(s); // read in place or never: its block was never written
    if (this.lazyOf.has(s.base ?? s)) {
      // lazily split pieces still read it in place: released with the last of them (see `split`)
      this.lateRelease.add(s.base ?? s);
      return;
    }
    // a KV cache split by sequences: its blocks go back now (split weight matrices are left to the collector)
    if (s.blocks && s.blocks[0].store.ref.pool === 'kv caches') for (const b of s.blocks) this.release(b.store);
    if (s.base && !s.ref.pool) this.mega.disposed(s); // a state moved by decodeKernels 'mega' (its own buffer)
    this.release(s);
  }

  /** wait until every recorded op has run (benchmarks) */
  sync(): Promise<void> {
    this.fx.flush();
    return this.rt.sync();
  }

  /** GB/s of a buffer copy on the GPU (bytes read + written; best of 5), for the bench's decode ceiling */
  async measureBandwidth(bytes: number): Promise<number> {
    const n = Math.max(1 << 20, Math.floor(Math.min(bytes, this.rt.maxBinding / 2) / 4));
    const a = this.scratch(n, 'bandwidth probe'), b = this.scratch(n, 'bandwidth probe');
    this.fill(a, 1);
    await this.sync();
    let best = Infinity;
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      for (let i = 0; i < 4; i++) this.run(COPY_ROWS, [a, b], [1, n, 0, 0, 0, 0], this.threads(n));
      await this.sync();
      best = Math.min(best, (performance.now() - t0) / 4);
    }
    this.done(a, b);
    return (2 * n * 4) / (best / 1000) / 1e9;
  }

  /** release the device (pending work is dropped) */
  destroy(): void {
    this.rt.destroy();
  }

  // ---- training ------------------------------------------------------------------------------

  /** the largest tensor one buffer binding holds */
  get maxTensorElements(): number {
    return Math.floor(this.rt.maxBinding / 4);
  }

  /** the ops this backend records for training (`differentiable` refuses the others, naming them) */
  readonly differentiableOps = GPU_DIFF_OPS;

  differentiable(op: DiffOp, inputs: readonly (Tensor | null)[], attrs: DiffAttrs): Differentiated {
    return gpuDifferentiable(this.gradCtx, op, inputs, attrs);
  }

  /**
   * What the differentiable ops (./autograd) see of this backend; training code that records its own kernels (the
   * optimizer, src/train/device-optim.ts) uses it too.
   */
  get gradCtx(): GpuCtx {
    return (this.ctx ??= this.makeGradCtx());
  }

  /**
   * Overwrite a tensor's values in place with host data (training: resuming parameters and optimizer moments). The
   * work recorded so far is submitted first, so it reads the old values and everything recorded later the new ones.
   */
  write(t: Tensor, data: Float32Array): void {
    const s = t.storage as Store;
    if (s.blocks || s.fmt !== 'f32') throw new Error(`webgpu.write: tensor [${t.shape.join(', ')}] is ${s.blocks ? 'split into row blocks' : `stored as ${s.fmt}`}; only float32 tensors in one buffer can be written`);
    if (data.length !== s.len) throw new Error(`webgpu.write: ${data.length} values for tensor [${t.shape.join(', ')}] (${s.len})`);
    if (s.lazy) this.materialize(s);
    this.fx.flush();
    this.rt.flush();
    if (data.length > 0) this.rt.device.queue.writeBuffer(s.ref.gpu, s.off * 4, data.buffer, data.byteOffset, data.byteLength);
  }

  /**
   * Submit everything recorded without waiting for it (training: one submit per optimizer step, so the GPU runs a
   * step while the next one is recorded); resolves when the submitted work has run.
   */
  submit(): Promise<void> {
    this.fx.flush();
    this.rt.flush();
    return this.rt.device.queue.onSubmittedWorkDone();
  }
  private ctx: GpuCtx | null = null;
  private makeGradCtx(): GpuCtx {
    return {
      be: this,
      rt: this.rt,
      st: (t) => this.st(t),
      opt: (t) => this.opt(t),
      out: (shape, what) => this.out(shape, what),
      zeros: (shape) => this.zeros(shape),
      tensor: (s, shape, viewOf) => this.tensor(s, shape, viewOf),
      scratch: (n, what) => this.scratch(n, what),
      done: (...s) => this.done(...s),
      run: (spec, roles, params, grid, variant = '') => this.run(spec, roles, params, grid, variant),
      threads: (n) => this.threads(n),
      grid: (groups) => this.rt.grid(groups),
      upload: (data) => this.rt.uploadData(data),
      f2u,
    };
  }

  // ---- primitives ---------------------------------------------------------------------------

  embedding(table: Tensor, ids: Int32Array): Tensor {
    const [V, H] = table.shape;
    const n = ids.length;
    const y = this.out([n, H], 'embedding');
    const idx = this.rt.uploadData(Float32Array.from(ids));
    const s = this.st(table);
    const blocks = s.blocks ?? [{ r0: 0, r1: V, store: s }];
    for (const b of blocks) this.run(GATHER_ROWS, [idx, b.store, this.st(y)], [n, H, b.r0, b.r1], this.threads(n * H), packedFormat(b.store) ?? '');
    return y;
  }

  linear(x: Tensor, w: Tensor, bias: Tensor | null): Tensor {
    const [M, K] = x.shape;
    const N = w.shape[0];
    let y = this.out([M, N], 'linear output');
    const route = this.productKernel(M);
    if (route === 'decode' && this.fuse) {
      const xs = x.storage as Store;
      const n = this.fx.normOf(xs);
      const norm = n && this.fx.foldsNorm(n.M, n.K, n.gs) ? n : null;
      this.fx.pushLinear({ x: norm ? xs : this.st(x), w: this.st(w), bias: bias ? this.st(bias) : null, y: this.st(y), M, K, N, norm });
      return y;
    }
    const ws = this.st(w);
    if (route === 'decode') {
      this.fx.flush();
      this.fx.recLinear({ x: this.st(x), w: ws, bias: bias ? this.st(bias) : null, y: this.st(y), M, K, N, norm: null }, null, null);
      return y;
    }
    const blocks = ws.blocks ?? [{ r0: 0, r1: N, store: ws }];
    for (const b of blocks) {
      const nb = b.r1 - b.r0;
      const bs = bias ? this.st(bias).view(b.r0, nb) : this.rt.dummy;
      const params = [M, K, N, b.r0, nb, bias ? 1 : 0];
      const k = this.gemmKernel(M, nb, b.store.fmt as WebGpuWeights, K, b.store); // (a weight store: never f16)
      // the blocked kernel takes x's row stride: a lazily split piece (Mamba-1's Δ into dt_proj) read in place (batchDecode 'fused', 'fused-v1')
      const xr = k.spec === MATMUL_BLOCKED && this.batchDec !== 'old' ? this.rows(x) : { s: this.st(x), stride: K };
      if (k.vx && b === blocks[0] && this.st(y).ref === xr.s.ref) {
        // flag '_v' binds x twice (f32 and vec4): the output apart from x's buffer (nothing written to y yet)
        y.dispose();
        y = this.tensor(this.rt.alloc(this.rt.sidePool, M * N, 'linear output'), [M, N]);
      }
      const roles = [xr.s, b.store, bs, this.st(y)];
      const gx = Math.ceil(nb / k.tn), gy = Math.ceil(M / k.tm);
      if (k.spec === MATMUL_I8) {
        this.int8.record(roles, M, K, N, b.r0, nb, bias ? 1 : 0, k.variant);
        continue;
      }
      if (k.spec === MATMUL_SIMPLE) {
        this.run(MATMUL_SIMPLE, roles, params, this.threads(M * nb), k.variant);
        continue;
      }
      if (gx > this.rt.maxWorkgroupsPerDim || gy > this.rt.maxWorkgroupsPerDim || k.splits > this.rt.maxWorkgroupsPerDim) throw new Error(`webgpu.linear: [${M}, ${K}] × [${nb}, ${K}]ᵀ needs more workgroups than the adapter allows`);
      // flag '_v': x bound again as vec4s where its offset and row stride are whole vectors and no output shares its buffer
      let part = k.spec === MATMUL_BLOCKED && k.splits > 1 ? this.scratch(k.splits * M * nb, 'split-K partials') : null;
      if (part && k.vx && part.ref === xr.s.ref) {
        this.rt.release(part);
        part = this.rt.alloc(this.rt.sidePool, k.splits * M * nb, 'split-K partials');
      }
      const xv = k.vx && xr.s.off % 4 === 0 && xr.stride % 4 === 0 && xr.s.ref !== (part ?? this.st(y)).ref;
      if (k.spec !== MATMUL_BLOCKED) {
        this.run(k.spec, roles, params, [gx, gy, 1], k.variant);
      } else if (k.splits === 1) {
        this.run(MATMUL_BLOCKED, [...roles, xv ? xr.s : this.rt.dummy], [...params, K, xr.stride, xv ? 1 : 0], [gx, gy, 1], k.variant);
      } else if (part) {
        // split-K: partial sums [S, M, nb], then their sum (+ bias) into y
        this.run(MATMUL_BLOCKED, [roles[0], roles[1], this.rt.dummy, part, xv ? xr.s : this.rt.dummy], [M, K, nb, 0, nb, 0, k.kc, xr.stride, xv ? 1 : 0], [gx, gy, k.splits], k.variant);
        if (this.fuse && this.batchDec !== 'old' && blocks.length === 1) {
          // the sum held back: the residual add and the next RMSNorm may join it (add, rmsNorm)
          this.fx.pendReduce({ part, bias: bias ? bs : null, y: this.st(y), M, N, S: k.splits, res: null, y2: null, norm: null });
          continue;
        }
        this.run(SPLITK_REDUCE, [part, bs, this.st(y)], [M, N, b.r0, nb, bias ? 1 : 0, k.splits], this.threads(M * nb));
        this.done(part);
      }
    }
    return y;
  }

  /**
   * Which kernels run an M-row product — the one place that decides (`productKernelName` reports it):
   * - 'blocked': the skinny-M blocked GEMM, with 'tiled' kernels and gemmSmall 'blocked' (the default), for
   *   `gemmSmallMin` (9) to 128 rows — on an H100 the batch-64 matmuls took 1.6 ms against 9.1 (tiled matmul) and
   *   the few-rows kernel lost to the tiled matmul at 32–64 rows (0.37–0.68 ms per call), so it wins there even
   *   with `fewRows`;
   * - 'decode': the decode matrix kernels with the decode fusions — 1 row (and up to 8 without `fewRows`) the
   *   matvec, 2–8 rows the few-rows kernel with `fewRows` (each weight row streamed once for all rows; on an H100
   *   level with the matvec at batch 8), and with `fewRows` up to 64 rows where 'blocked' does not take them
   *   (gemmSmall 'old', 'simple' kernels);
   * - 'gemm': the GEMM of `gemm` (`gemmKernel`).
   */
  productKernel(M: number): 'blocked' | 'decode' | 'gemm' {
    // decodeRows: 2 to that many rows on MATVEC_R (the decode path), before the blocked GEMM
    if (this.kernels === 'tiled' && this.small === 'blocked' && M >= this.gemmSmallMin && M <= 128 && !(M >= 2 && M <= this.fx.rows)) return 'blocked';
    // unfused 'simple' kernels keep the simple matmul above 8 rows
    if (M <= 8 || (M <= this.fx.maxRows && (this.fuse || this.kernels === 'tiled'))) return 'decode';
    return 'gemm';
  }

  /** the kernel that runs an [M, K] × [N, K]ᵀ product of a weight of this backend's format (`productKernel`), by name */
  productKernelName(M: number, N: number, K: number, weights: boolean | WebGpuWeights = this.weights): string {
    if (this.productKernel(M) !== 'decode') return this.gemmKernel(M, N, weights, K).name;
    if (M >= 2 && M <= this.fx.rows) return 'matvec-rows';
    return this.fewRows && M >= 2 ? 'few-rows' : 'matvec';
  }

  /**
   * The kernel of an [M, K] × [nb, K]ᵀ product with more than 8 rows, by `kernels` and `gemm`: its spec, variant
   * and output tile (rows tm × columns tn per workgroup). 128-row tiles where their grid still covers the GPU
   * (≥ `gpuCores` workgroups: 132 by default, an H100's multiprocessors), else 64. `weights`: the weight's storage format (true: bf16, false: f32).
   */
  gemmKernel(M: number, nb: number, weights: boolean | WebGpuWeights, K = 768, w?: Store): { spec: KernelSpec; variant: string; tm: number; tn: number; name: string; kc: number; splits: number; vx?: boolean } {
    const b = weights === true || weights === 'bf16' ? 'b' : weights === 'q8' ? 'q' : '';
    if (this.kernels === 'simple') return { spec: MATMUL_SIMPLE, variant: b, tm: 1, tn: 1, name: 'simple', kc: K, splits: 1 };
    const S8 = int8Slices(this.gemm);
    if (S8) return this.int8.kernel(M, nb, S8, K);
    // the blocked kernel reads weights as 16-byte vectors where the rows are whole vectors of a matrix buffer
    // (bf16 and q8 always are), else as scalars ('x'); a packed matrix in a buffer it cannot read that way keeps the tiled kernel
    const vec = !w || (w.ref.matrices && w.off % 4 === 0 && K % (b === 'q' ? Q8_BLOCK : b === 'b' ? 8 : 4) === 0);
    // a tuned table's choice for the shape (not over a forced configuration, 'old', or 'simple' kernels)
    const tuned = this.blockedConfig === undefined && this.gemm !== 'old' ? tunedChoice(this.tuned, M, K, nb, b === 'b' ? 'bf16' : b === 'q' ? 'q8' : 'f32') : undefined;
    if (tuned !== 'tiled' && (tuned !== undefined || this.gemm === 'blocked' || this.productKernel(M) === 'blocked') && (vec || !b)) {
      const [cfg, sp] = tuned !== undefined ? tuned.split('@') : [this.blockedConfig, undefined];
      const p = blockedPlan(M, nb, K, b || (vec ? 'f' : 'x'), this.gpuCores, this.rt.maxWorkgroupStorage, cfg, tuned !== undefined ? (sp === undefined ? undefined : Number(sp)) : this.blockedSplits, this.rt.subgroupFixed);
      const base = p.variant.replace(/[fbxq]s?$/, '');
      return { spec: MATMUL_BLOCKED, variant: p.variant, tm: p.bm, tn: p.bn, name: `blocked ${base}${p.splits > 1 ? ` split ${p.splits}` : ''}${tuned !== undefined ? ' (tuned)' : ''}`, kc: p.kc, splits: p.splits, vx: !!p.opts.vx };
    }
    return { ...this.tiledKernel(M, nb, b, vec), kc: K, splits: 1 }; // (also a tuned 'tiled' where the plan would take the blocked kernel)
  }
  /** `vec`: the weight can be bound as 16-byte vectors (q8 tiles then load as vectors: `q8Tiles`) */
  private tiledKernel(M: number, nb: number, b: string, vec = true): { spec: KernelSpec; variant: string; tm: number; tn: number; name: string } {
    if (this.gemm === 'old') return { spec: MATMUL, variant: b, tm: 64, tn: 64, name: 'old 64×64' };
    if (this.gemm === 'sgmat' && this.matrixGemm && M >= 32) {
      const tm = Math.ceil(M / 128) * Math.ceil(nb / 64) >= this.gpuCores ? 128 : 64;
      return { spec: SG_MATMUL, variant: `${this.matrixGemm}t${tm}${b}`, tm, tn: 64, name: `subgroup-matrix ${this.matrixGemm.split('s')[0]} ${tm}×64` };
    }
    const T = Math.ceil(M / 128) * Math.ceil(nb / 128) >= this.gpuCores ? 128 : 64;
    const qv = b === 'q' && vec && this.q8T === 'vector' && tiledWorkgroupBytes(`${T}qv`) <= this.rt.maxWorkgroupStorage;
    return { spec: MATMUL_TILED, variant: `${T}${qv ? 'qv' : b}`, tm: T, tn: T, name: `tiled ${T}×${T}${b === 'q' ? (qv ? ' q8 vector' : ' q8 scalar') : ''}` };
  }

  /**
   * Turn the int8 GEMM's subgroup matrices on when the device has an i8→i32 configuration that matches the emulation
   * on a check (see Int8Gemm.check); returns the reason when the emulation stays (also in `int8.note`). Run by
   * `createWebGpuBackend` only when its `gemm` is an int8 kind (the check compiles ~6 pipelines); after setting `gemm`
   * to one later, await this first (until then the emulation runs: same results, slower).
   */
  enableInt8Gemm(): Promise<string | null> {
    return this.int8.check(this);
  }

  /**
   * Turn the subgroup-matrix GEMM on when the device has an f32 configuration: compiled and checked here against
   * the tiled kernel on a product with ragged edges (tensor cores may round operands to tf32: relative error
   * ≤ 1e-2 passes). Returns the reason when it stays off (also in `matrixNote`).
   */
  async enableMatrixGemm(): Promise<string | null> {
    this.matrixGemm = null;
    const cfg = f32MatrixConfig(this.rt.matrixConfigs);
    const sg = this.rt.subgroupFixed;
    if (this.rt.matrixConfigs.length === 0) return (this.matrixNote = 'no subgroup-matrix feature');
    if (!cfg) return (this.matrixNote = `no f32 subgroup-matrix configuration (${this.rt.matrixConfigs.map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K}`).join(', ')})`);
    if (!sg) return (this.matrixNote = 'the subgroup size is not fixed');
    const base = sgMatmulVariant(cfg, sg, 64, false);
    if (!base || !sgMatmulVariant(cfg, sg, 128, false)) return (this.matrixNote = `${cfg.M}×${cfg.N}×${cfg.K} does not split over subgroups of ${sg}`);
    const key = base.replace(/t64$/, '');
    const M = 150, K = 100, N = 70;
    const xs = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i * 0.37));
    const ws = Float32Array.from({ length: N * K }, (_, i) => Math.cos(i * 0.11));
    const bias = Float32Array.from({ length: N }, (_, i) => i * 0.01);
    const x = this.fromHost(xs, [M, K]), w = this.fromHost(ws, [N, K], { matrix: true, float32: true }), bt = this.fromHost(bias, [N]);
    const want = this.out([M, N], 'gemm check'), got = this.out([M, N], 'gemm check'), got128 = this.out([M, N], 'gemm check');
    const roles = (y: Tensor) => [this.st(x), this.st(w), this.st(bt), this.st(y)];
    const params = [M, K, N, 0, N, 1];
    try {
      this.run(MATMUL_TILED, roles(want), params, [Math.ceil(N / 64), Math.ceil(M / 64), 1], '64');
      this.run(SG_MATMUL, roles(got), params, [Math.ceil(N / 64), Math.ceil(M / 64), 1], `${key}t64`);
      this.run(SG_MATMUL, roles(got128), params, [Math.ceil(N / 64), Math.ceil(M / 128), 1], `${key}t128`);
      const [a, g, g2] = await Promise.all([this.read(want), this.read(got), this.read(got128)]);
      const err = Math.max(maxRelErr(g, a), maxRelErr(g2, a));
      if (!(err <= 1e-2)) return (this.matrixNote = `the ${key} subgroup-matrix GEMM disagrees with the tiled one (max relative error ${err})`);
      this.matrixGemm = key;
      this.matrixNote = `subgroup-matrix ${key} (max relative error ${err.toExponential(1)} on the check)`;
      return null;
    } catch (e) {
      return (this.matrixNote = `the ${key} subgroup-matrix GEMM failed: ${(e as Error).message}`);
    } finally {
      for (const t of [x, w, bt, want, got, got128]) t.dispose();
    }
  }

  rmsNorm(x: Tensor, w: Tensor | null, eps: number): Tensor {
    const [M, H] = x.shape;
    const y = this.out([M, H], 'rms_norm');
    if (this.fuse && w) {
      // the norm of a pending split-K reduce's rows (after the residual add): computed in the same dispatch
      const ws = this.st(w);
      const r = this.fx.reduceOf(x.storage as Store, 'norm');
      if (r && r.M === M && r.N === H) {
        r.norm = { w: ws, eps, h: this.st(y) };
        this.fx.flushReduce();
        return y;
      }
    }
    if (this.fuse && w && M <= this.fx.maxRows) {
      this.fx.pendNorm({ x: this.st(x), z: null, w: this.st(w), y: this.st(y), M, K: H, gs: H, eps, gated: false });
      return y;
    }
    const roles = [this.st(x), this.opt(w), this.st(y)], params = [M, H, f2u(eps), w ? 1 : 0];
    if (this.sgOk()) this.run(RMS_NORM_SG, roles, params, this.sgGrid(M));
    else this.run(RMS_NORM, roles, params, this.rt.grid(M));
    return y;
  }

  rmsNormGated(x: Tensor, z: Tensor, w: Tensor, eps: number, groupSize: number): Tensor {
    const [M, W] = x.shape;
    const y = this.out([M, W], 'rms_norm_gated');
    // batchDecode 'fused': folded into the next matvec for one row only; 2–8 rows get their own dispatch (below), as the
    // fold has every workgroup of out_proj reduce all rows again (and, past what it stages, normalise per weight row);
    // the few-rows kernel (fewRows) still folds it. Not held back for rows the blocked GEMM takes (gemmSmallMin ≤ M):
    // nothing would fold it, and a pending norm takes z as a store of its own (a piece of in_proj's output: copied)
    if (this.fuse && this.fx.foldsNorm(M, W, groupSize) && (M === 1 || (this.batchDec !== 'fused' && this.batchDec !== 'fused2') || this.fewRows) && this.productKernel(M) === 'decode') {
      this.fx.pendNorm({ x: this.st(x), z: this.st(z), w: this.st(w), y: this.st(y), M, K: W, gs: groupSize, eps, gated: true });
      return y;
    }
    const zr = this.rows(z); // in place in in_proj's output
    const roles = [this.st(x), zr.s, this.st(w), this.st(y)], params = [M, W, groupSize, f2u(eps), zr.stride];
    const items = M * (W / groupSize);
    // a workgroup per (row, group), values kept in registers (x, z read once): prefill's wide rows (with the 'fused'
    // SSD), and fewer than 64 rows with batchDecode 'fused' (decode batches, short prompts; the subgroup kernel's
    // serial loop over a row took 37.5 µs at 16 rows on an H100)
    const tiled = this.kernels === 'tiled' && groupSize <= 4096;
    if (tiled && ((this.ssdKernels !== 'old' && items >= 64 && groupSize >= 256) || ((this.batchDec === 'fused' || this.batchDec === 'fused2') && items < 64))) {
      this.run(RMS_NORM_GATED_ROWS, roles, params, this.rt.grid(items), String(Math.ceil(groupSize / 256)));
    } else if (this.sgOk()) this.run(RMS_NORM_GATED_SG, roles, params, this.sgGrid(items));
    else this.run(RMS_NORM_GATED, roles, params, this.rt.grid(items));
    return y;
  }

  private unary(x: Tensor, op: string, extra: number[] = []): Tensor {
    const y = this.out(x.shape, op);
    this.run(UNARY_MAP, [this.st(x), this.st(y)], [x.size, ...extra], this.threads(x.size), op);
    return y;
  }

  private binary(a: Tensor, b: Tensor, op: string): Tensor {
    const y = this.out(a.shape, op);
    this.run(BINARY_MAP, [this.st(a), this.st(b), this.st(y)], [a.size], this.threads(a.size), op);
    return y;
  }

  add(a: Tensor, b: Tensor): Tensor {
    if (this.fuse) {
      // the residual add folded into the pending matvec, or joined to the pending split-K reduce, that produced one operand
      for (const [lin, other] of [[b, a], [a, b]] as const) {
        if (a.storage !== b.storage && this.fx.reduceOf(lin.storage as Store, 'res')) {
          const os = this.st(other); // (may record a copy, and with it the reduce)
          const r = this.fx.reduceOf(lin.storage as Store, 'res');
          if (r && r.M * r.N === a.size) {
            const y = this.out(a.shape, 'add');
            r.res = os;
            r.y2 = y.storage as Store;
            return y;
          }
        }
        const l = this.fx.takeTail(lin.storage as Store, (p) => p.M * p.N === a.size);
        if (!l) continue;
        const r = this.st(other);
        this.fx.flush();
        const y = this.out(a.shape, 'add');
        this.fx.recLinear(l, r, this.st(y));
        return y;
      }
    }
    return this.binary(a, b, 'add');
  }
  scale(x: Tensor, s: number): Tensor {
    return this.unary(x, 'scale', [f2u(s)]);
  }
  activation(x: Tensor, kind: Elementwise): Tensor {
    return this.unary(x, kind);
  }
  siluMul(a: Tensor, b: Tensor): Tensor {
    return this.binary(a, b, 'silu_mul');
  }

  /**
   * Column ranges of x's last axis. One row: views of x's storage. More rows: each piece gets its own block, but the
   * copy into it is deferred (`Store.lazy`): the kernels that take a row stride (conv1d's input, the Mamba-1 scan's
   * B, C and z) read the piece in place in x, and the copy is recorded only when something else reads the piece.
   * x's block is kept until its last lazy piece is disposed or copied (as a view keeps its base).
   */
  split(x: Tensor, sizes: readonly number[]): Tensor[] {
    const W = x.shape[x.shape.length - 1];
    const M = x.size / W;
    const src = this.st(x);
    const lead = x.shape.slice(0, -1);
    let off = 0;
    return sizes.map((s) => {
      const shape = [...lead, s];
      let t: Tensor;
      if (M === 1) {
        t = this.tensor(src.view(off, s), shape, x); // one row: the pieces are contiguous ranges of x's storage
      } else {
        t = this.out(shape, 'split');
        const piece = t.storage as Store;
        piece.lazy = { src, rows: M, width: s, stride: W, col: off };
        const base = src.base ?? src;
        const set = this.lazyOf.get(base) ?? new Set<Store>();
        set.add(piece);
        this.lazyOf.set(base, set);
      }
      off += s;
      return t;
    });
  }

  causalConv1d(a: CausalConv1dArgs): Tensor {
    const [B, L, C] = a.x.shape;
    const K = a.weight.shape[1];
    const y = this.out([B, L, C], 'causal_conv1d');
    const flags = (a.state ? 1 : 0) | (a.bias ? 2 : 0) | (a.activation === 'silu' ? 4 : 0);
    // batchDecode 'fused2': a decode batch's conv step joins the split-K reduce of in_proj that made its input
    if (a.state && L === 1 && this.batchDec === 'fused2' && this.fuse) {
      const xs = a.x.storage as Store, z = xs.lazy;
      const [src, c0, stride, rows] = z ? [z.src, z.col, z.stride, z.rows] : [xs, 0, C, B];
      if (rows === B && this.fx.reduceConv(src, c0, C, stride, { w: this.st(a.weight), bias: a.bias ? this.st(a.bias) : null, state: this.st(a.state), y: this.st(y), K, act: !!(flags & 4) })) return y;
    }
    const xr = this.rows(a.x);
    const params = [B, L, C, K, flags, xr.stride];
    const roles = [xr.s, this.st(a.weight), this.opt(a.bias), this.opt(a.state), this.st(y)];
    if (a.state && L === 1) {
      this.run(CONV_STEP, roles, params, this.threads(B * C));
    } else {
      this.run(CONV_OUT, roles, params, this.threads(B * L * C));
      if (a.state) this.run(CONV_STATE, [xr.s, this.st(a.state)], params, this.threads(B * C));
    }
    return y;
  }

  selectiveScan(a: SelectiveScanArgs): Tensor {
    const [B, L, Dm] = a.u.shape;
    const N = a.A.shape[1];
    const y = this.out([B, L, Dm], 'selective_scan');
    const flags = (a.D ? 1 : 0) | (a.z ? 2 : 0) | (a.deltaBias ? 4 : 0) | (a.deltaSoftplus ? 8 : 0) | (a.state ? 16 : 0);
    const [u, delta, A, D, bias] = [this.st(a.u), this.st(a.delta), this.st(a.A), this.opt(a.D), this.opt(a.deltaBias)];
    // chunks: enough (b, d, chunk) threads to fill the GPU, at least 8 steps each
    const nC = Math.max(1, Math.min(Math.ceil(L / 8), Math.ceil(65536 / (B * Dm))));
    if (L > 1 && nC > 1 && a.algorithm !== 'sequential' && this.kernels === 'tiled' && this.scan === 'rescan' && N <= 64) {
      // B, C and z read in place (row strides), so x_proj's and in_proj's outputs are not copied apart
      const [Br, Cr] = [this.rows(a.B), this.rows(a.C)];
      const zr = a.z ? this.rows(a.z) : { s: this.rt.dummy, stride: Dm };
      // chunks of ≥ 16 steps, enough (b, chunk, d) threads to fill a large GPU (~128k)
      const T = Math.max(16, Math.ceil(L / Math.max(1, Math.ceil(131072 / (B * Dm)))));
      const chunks = Math.ceil(L / T);
      const nDW = Math.ceil(Dm / 256);
      const hloc = this.scratch(B * chunks * Dm * N, 'scan chunk states');
      const dsum = this.scratch(B * chunks * Dm, 'scan chunk Δ sums');
      const p = [B, L, Dm, flags, T, chunks, nDW, Br.stride];
      const grid = this.rt.grid(B * chunks * nDW);
      this.run(SCAN_STATES, [u, delta, A, Br.s, bias, hloc, dsum], p, grid, String(N));
      this.run(SCAN_CARRY_D, [A, dsum, hloc, this.opt(a.state)], [B, Dm, N, chunks, flags], this.threads(B * Dm * N));
      this.run(SCAN_OUT, [u, delta, A, Br.s, Cr.s, D, zr.s, bias, hloc, this.st(y)], [...p, Cr.stride, zr.stride], grid, String(N));
      this.done(hloc, dsum);
      return y;
    }
    // B, C, z as packed tensors (a lazily split piece copied apart)
    const packed = () => [this.st(a.B), this.st(a.C), this.opt(a.z)] as const;
    // (a split piece among them: its copy would record the pending dt_proj first, so it could not be fused)
    const split = [a.B, a.C, a.z].some((t) => t && (t.storage as Store).lazy);
    if (L === 1 && a.state && this.fuse && !split) {
      // dt_proj (the pending matvec that produced Δ) computed in the step
      const l = this.fx.takeTail(a.delta.storage as Store, (p) => !p.norm && !p.bias && !p.w.blocks && p.M === B && p.N === Dm);
      if (l) {
        const [Bm, Cm, z] = packed();
        const roles = [u, l.x, l.w, A, Bm, Cm, D, z, bias, this.st(a.state), this.st(y), l.y];
        this.run(SCAN_STEP_DT, roles, [B, Dm, N, l.K, flags], this.threads(B * Dm));
        return y;
      }
    }
    if (L === 1 || nC === 1 || a.algorithm === 'sequential') {
      let state = a.state ? this.st(a.state) : null;
      if (!state) {
        state = this.scratch(B * Dm * N, 'scan state');
        this.fill(state, 0);
      }
      // B, C, z read in place (x_proj's and in_proj's outputs not copied apart), but with the scan of before
      const inPlace = this.scan !== 'partials';
      const [Br, Cr] = inPlace ? [this.rows(a.B), this.rows(a.C)] : [{ s: this.st(a.B), stride: N }, { s: this.st(a.C), stride: N }];
      const zr = !a.z ? { s: this.rt.dummy, stride: Dm } : inPlace ? this.rows(a.z) : { s: this.st(a.z), stride: Dm };
      const roles = [u, delta, A, Br.s, Cr.s, D, zr.s, bias, state, this.st(y)];
      // batchDecode 'fused', 'fused-v1': the state row in registers (its loads issued together)
      const v = this.batchDec !== 'old' && N <= 64 ? `r${N}` : '';
      this.run(SCAN_STEP, roles, [B, L, Dm, N, flags, Br.stride, Cr.stride, zr.stride], this.threads(B * Dm), v);
      if (!a.state) this.done(state);
      return y;
    }
    const [Bm, Cm, z] = packed();
    const T = Math.ceil(L / nC);
    const chunks = Math.ceil(L / T);
    const nB = Math.ceil(N / 16);
    const ypart = this.scratch(nB * B * L * Dm, 'scan partial outputs');
    const hloc = this.scratch(B * chunks * Dm * N, 'scan chunk states');
    const dsum = this.scratch(B * chunks * Dm, 'scan chunk Δ sums');
    const p = [B, L, Dm, N, flags, T, chunks, nB];
    this.run(SCAN_CHUNK, [u, delta, A, Bm, Cm, bias, ypart, hloc, dsum], p, this.threads(B * chunks * nB * Dm));
    this.run(SCAN_CARRY, [A, dsum, hloc, this.opt(a.state)], [B, Dm, N, chunks, flags], this.threads(B * Dm * N));
    this.run(SCAN_FINISH, [u, delta, A, Cm, D, z, bias, ypart, hloc, this.st(y)], p, this.threads(B * chunks * Dm));
    this.done(ypart, hloc, dsum);
    return y;
  }

  /**
   * Mamba-1 decode step after in_proj (Backend.mamba1Step): the pending in_proj matvec shifts the conv window
   * (epilogue), then x_proj (conv recomputed per row) and the scan (conv, dt_proj, Δ/B/C norms, state update,
   * D skip, gate) — 3 dispatches instead of 5. null (op sequence) without decode fusion or a pending in_proj.
   */
  mamba1Step(a: Mamba1StepArgs): Tensor | null {
    if (!this.fuse) return null;
    const B = a.xz.shape[0], D = a.A.shape[0], N = a.A.shape[1], R = a.dtProj.shape[1], Kc = a.conv.shape[1];
    const J = R + 2 * N;
    if (J > STEP_MAX_XDBL || a.xz.size !== B * 2 * D) return null;
    const l = this.fx.takeTail(a.xz.storage as Store, (p) => p.M === B && this.fx.vecAll(p.w, p.K));
    if (!l) return null;
    this.fx.flush();
    const win = this.st(a.convState);
    const [cw, cb, xp] = [this.st(a.conv), this.opt(a.convBias), this.st(a.xProj)];
    const convFlag = a.convBias ? 1 : 0;
    const conv = { state: win, c0: 0, width: D, K: Kc };
    // decodeKernels 'fused': x_proj's partial sums in in_proj's epilogue, added up by the scan (2 dispatches, not 3)
    const fused = this.decodeK === 'fused' && this.fx.extOk(l) && xp.ref.matrices && xp.fmt === 'f32' && !xp.blocks;
    // decodeKernels '…-s', batch 1: x_proj split over K (MAMBA1_XPROJ_SK), its partials added up by the scan ('p')
    const split = !fused && this.streamStep && B === 1 && xp.fmt === 'f32' && !xp.blocks;
    const S = Math.ceil(D / XPROJ_SLICE);
    const xdbl = this.scratch(fused ? Math.ceil(D / 2) * J : split ? S * J : B * J, fused || split ? 'x_proj partials' : 'x_proj output');
    let nP = 0;
    const sg = this.stepSubgroup();
    if (fused) {
      nP = Math.ceil(D / this.fx.recLinear(l, null, null, conv, { kind: 'p', aux: xdbl, cw, cb: a.convBias ? cb : null, xp, J }));
    } else if (split) {
      this.fx.recLinear(l, null, null, conv);
      const L = this.xprojStreamL;
      this.rec(MAMBA1_XPROJ_SK, [win, cw, cb, xp, xdbl], [B, D, Kc, J, convFlag, S], this.rt.grid(S * Math.ceil(J / (256 / L))), `l${L}`);
      nP = S;
    } else {
      this.fx.recLinear(l, null, null, conv);
      this.rec(MAMBA1_XPROJ, [win, cw, cb, xp, xdbl], [B, D, Kc, J, convFlag], this.rt.grid(B * J), sg ? String(sg) : '');
    }
    const n = a.innerNorms;
    const dto = a.onDelta ? this.out([B, 1, D], 'mamba1 Δ') : null; // Δ observed: written by the scan kernel
    const flags = convFlag | (n ? 2 : 0) | (n?.dt ? 4 : 0) | (n?.B ? 8 : 0) | (n?.C ? 16 : 0) | (dto ? 32 : 0);
    const y = this.out([B, 1, D], 'mamba1 step');
    const roles = [xdbl, win, cw, cb, l.y, this.st(a.dtProj), this.st(a.dtBias), this.st(a.A), this.st(a.D), this.opt(n?.dt ?? null), this.opt(n?.B ?? null), this.opt(n?.C ?? null), this.st(a.ssmState), this.st(y), this.st(dto ?? y)];
    const p = [B, D, N, R, Kc, flags, f2u(n?.eps ?? 0)];
    if (this.streamStep) this.rec(MAMBA1_SCAN_S, roles, fused || split ? [...p, nP] : p, this.rt.grid((fused || split ? 1 : B) * Math.ceil(D / 16)), mamba1ScanStreamVariant(R, N, fused || split));
    else if (fused || split) this.rec(MAMBA1_SCAN, roles, [...p, nP], this.rt.grid(Math.ceil(D / 16)), 'p');
    else if (sg) this.rec(MAMBA1_SCAN_SG, roles, p, this.rt.grid(Math.ceil((B * D) / (64 / sg))), String(sg));
    else this.rec(MAMBA1_SCAN, roles, p, this.rt.grid(B * Math.ceil(D / 16)));
    this.done(xdbl);
    if (dto) a.onDelta!(dto);
    return y;
  }

  /** the subgroup size the step kernels of decodeKernels 'v2' are compiled for; 0: the 'v1' step kernels */
  private stepSubgroup(): number {
    const sg = this.rt.subgroupFixed;
    return this.fx.sgv !== null && sg > 0 && sg <= 64 ? sg : 0;
  }

  /**
   * Mamba-2 decode step after in_proj (Backend.mamba2Step): the pending in_proj matvec shifts the conv window,
   * one dispatch runs conv + SSD recurrence + D skip, and the gated RMSNorm is left pending for out_proj to
   * fold in — 1 dispatch between the two projections instead of 3.
   */
  mamba2Step(a: Mamba2StepArgs): Tensor | null {
    if (!this.fuse) return null;
    const B = a.zxbcdt.shape[0], nh = a.nHeads, hd = a.headDim, G = a.nGroups, N = a.dState, Kc = a.conv.shape[1];
    const I = nh * hd, C = I + 2 * G * N;
    if (N > STEP_MAX_STATE || a.zxbcdt.size !== B * (I + C + nh)) return null;
    const l = this.fx.takeTail(a.zxbcdt.storage as Store, (p) => p.M === B && this.fx.vecAll(p.w, p.K));
    if (!l) return null;
    this.fx.flush();
    const win = this.st(a.convState);
    this.fx.recLinear(l, null, null, { state: win, c0: I, width: C, K: Kc });
    const y = this.out([B, I], 'mamba2 step'), z = this.out([B, I], 'mamba2 gate');
    const dto = a.onDelta ? this.out([B, 1, nh], 'mamba2 Δ') : null; // Δ observed: written by the step kernel
    const lo = Math.max(a.dtLimit[0], -F32_MAX), hi = Math.min(a.dtLimit[1], F32_MAX);
    const flags = (a.convBias ? 1 : 0) | (a.D ? 2 : 0) | (a.dtBias ? 4 : 0) | (dto ? 8 : 0);
    const roles = [l.y, win, this.st(a.conv), this.opt(a.convBias), this.opt(a.dtBias), this.st(a.A), this.opt(a.D), this.st(a.ssmState), this.st(y), this.st(z), this.st(dto ?? y)];
    const p = [B, nh, hd, G, N, I, Kc, flags, f2u(lo), f2u(hi)], sg = this.stepSubgroup();
    if (this.streamStep) {
      const v = mamba2StepStreamVariant(N, this.stepStreamQ);
      this.rec(MAMBA2_STEP_S, roles, p, this.rt.grid(B * nh * Math.ceil(hd / mamba2StepStreamRows(v))), v);
    } else if (sg) this.rec(MAMBA2_STEP_SG, roles, p, this.rt.grid(B * nh * Math.ceil(hd / (256 / sg))), String(sg));
    else this.rec(MAMBA2_STEP, roles, p, this.rt.grid(B * nh * Math.ceil(hd / 8)));
    const g = this.rmsNormGated(y, z, a.norm, a.normEps, a.normGroupSize);
    if (dto) a.onDelta!(dto);
    return this.tensor(g.storage as Store, [B, 1, I], g);
  }

  /**
   * A one-token step of a stack of pre-normed layers (Backend.decodeStack) with decodeKernels 'mega': the whole stack as
   * one dispatch (mega.ts, kernels/mega.ts) — Mamba-2 or Mamba-1 layers (one kind), batch 1, f32 or bf16 weights; the final-normed rows
   * [1, 1, H] (the LM head follows as the decoder's ops), or — with the '-h' setting (MegaOptions.head), `head` and
   * `embed` (a greedy step) — the token id read back: the embedding gather, the layers, the LM head and its argmax all in
   * the one dispatch (where the head and the embedding are in the layers' format, else the rows). null otherwise, and while the kernel's
   * co-residency probe is out (`mega.ready()`): the layers then run one by one.
   */
  decodeStack(a: DecodeStackArgs): Tensor | Promise<Int32Array> | null {
    if (this.decodeK !== 'mega' || a.rows !== 1) return null;
    const e = a.embed;
    const idx = this.mega.opts.head && a.head && e && e.ids.length === 1 ? this.out([1], 'argmax') : null;
    const r = this.mega.step(a, () => {
      const s = this.st(a.x());
      this.fx.flush();
      return s;
    }, idx && a.head && e ? {
      head: a.head, embed: e.table, scale: e.scale, out: idx.storage as Store,
      ids: () => {
        this.fx.flush();
        return this.rt.uploadData(Float32Array.from(e.ids));
      },
    } : null);
    if (r) this.mega.check(); // (a flag read after a step recorded but not replayed: profiling, unrecorded steps)
    if (r?.greedy && idx) {
      return this.read(idx).then((f) => {
        idx.dispose();
        return Int32Array.from(f, (v) => Math.round(v));
      });
    }
    idx?.dispose();
    return r ? this.tensor(r.y, [1, 1, a.finalNorm.shape[0]]) : null;
  }

  ssd(a: SsdArgs): Tensor {
    if (a.algorithm === 'quadratic') throw new UnsupportedAlgorithmError(`webgpu.ssd: no quadratic SSD on ${this.name} (it runs ${this.prefill.ssd.join(', ')}); the quadratic form runs on the cpu and wasm backends`);
    const [B, L, nh, hd] = a.x.shape;
    const [, , G, N] = a.B.shape;
    const y = this.out([B, L, nh, hd], 'ssd');
    const lo = Math.max(a.dtLimit[0], -F32_MAX), hi = Math.min(a.dtLimit[1], F32_MAX);
    const fused = this.ssdKernels !== 'old';
    // 'fused': x, dt, B, C read in place where they are pieces of a wider tensor (split); 'old': copied apart
    const rows = (t: Tensor, width: number) => (fused ? this.rows(t, width) : { s: this.st(t), stride: width });
    const [xr, dr, Br, Cr] = [rows(a.x, nh * hd), rows(a.dt, nh), rows(a.B, G * N), rows(a.C, G * N)];
    const [x, dt, Bm, Cm] = [xr.s, dr.s, Br.s, Cr.s];
    const [A, D, dtb] = [this.st(a.A), this.opt(a.D), this.opt(a.dtBias)];
    const flags = (a.D ? 1 : 0) | (a.dtBias ? 2 : 0);
    if (L === 1 || a.algorithm === 'recurrent') {
      let state = a.state ? this.st(a.state) : null;
      if (!state) {
        state = this.scratch(B * nh * hd * N, 'ssd state');
        this.fill(state, 0);
      }
      const roles = [x, dt, A, Bm, Cm, D, dtb, state, this.st(y)];
      const params = [B, L, nh, hd, G, N, flags, f2u(lo), f2u(hi), xr.stride, dr.stride, Br.stride, Cr.stride];
      // batchDecode 'fused', 'fused-v1' on a fixed subgroup size: each lane's states in registers (their loads issued together)
      const sg = this.rt.subgroupFixed;
      // decodeStateRows P > 1 (session 34): P rows of a head per subgroup, Δ, B and C loaded once for them
      const P = sg > 0 ? ssdStepRows(this.stateRows, hd, N, sg) : 1;
      const v = this.batchDec !== 'old' && sg > 0 && Math.ceil(N / sg) <= 64 ? `r${N}s${sg}${P > 1 ? `p${P}` : ''}` : '';
      if (this.sgOk()) this.run(SSD_STEP_SG, roles, params, this.sgGrid(B * nh * (v.includes('p') ? Math.ceil(hd / P) : hd)), v);
      else this.run(SSD_STEP, roles, params, this.rt.grid(B * nh * Math.ceil(hd / 8)));
      if (!a.state) this.done(state);
      return y;
    }
    const Q = this.ssdChunk;
    const nC = Math.ceil(L / Q);
    const q = String(Q);
    const cb = this.scratch(B * nC * G * Q * Q, 'ssd C·B');
    const S = this.scratch(B * nC * nh * hd * N, 'ssd chunk states');
    const outGrid = this.rt.grid(B * nC * nh * Math.ceil(hd / 64));
    const statesGrid = this.rt.grid(B * nC * nh * Math.ceil(hd / 64) * Math.ceil(N / 64));
    if (fused) {
      const aend = this.scratch(B * nC * nh, 'ssd chunk Δ·A totals');
      const v1 = this.ssdKernels === 'fused-v1'; // session 24's state passing and output kernels
      const p = [B, L, nh, hd, G, N, nC, flags, f2u(lo), f2u(hi)];
      this.run(SSDF_CB, [Bm, Cm, cb], [B, L, G, N, nC, Br.stride, Cr.stride], this.rt.grid(B * nC * G * 3), q);
      this.run(SSDF_STATES, [x, Bm, dt, A, dtb, S, aend], [...p, xr.stride, Br.stride, dr.stride], statesGrid, q);
      const stateFlags = a.state ? 3 : 0;
      this.run(v1 ? SSDF_PASS_V1 : SSDF_PASS, [aend, S, this.opt(a.state)], [B, nh, hd, N, nC, stateFlags], this.threads(B * nh * hd * N));
      this.done(aend);
      this.run(v1 ? SSDF_OUT_V1 : SSDF_OUT, [x, Cm, dt, A, dtb, cb, S, D, this.st(y)], [...p, xr.stride, Cr.stride, dr.stride], outGrid, q);
      this.done(cb, S);
      return y;
    }
    const dtp = this.scratch(B * L * nh, 'ssd Δ');
    const cum = this.scratch(B * L * nh, 'ssd Δ·A sums');
    this.run(SSD_DT, [dt, A, dtb, dtp, cum], [B, L, nh, flags, f2u(lo), f2u(hi), Q, nC], this.threads(B * nC * nh));
    this.run(SSD_CB, [Bm, Cm, cb], [B, L, G, N, nC], this.rt.grid(B * nC * G), q);
    this.run(SSD_STATES, [x, Bm, dtp, cum, S], [B, L, nh, hd, G, N, nC], statesGrid, q);
    this.run(SSD_PASS, [cum, S, this.opt(a.state)], [B, L, nh, hd, N, Q, nC, a.state ? 1 : 0], this.threads(B * nh * hd * N));
    this.run(SSD_OUT, [x, Cm, dtp, cum, cb, S, D, this.st(y)], [B, L, nh, hd, G, N, nC, a.D ? 1 : 0], outGrid, q);
    this.done(dtp, cum, cb, S);
    return y;
  }

  /**
   * The cos/sin table of the last positions asked for: a prefill rotates q and k of every layer at the same
   * positions, and the table of 2,048 positions takes milliseconds of host time (24 of them per llama-130m prefill).
   */
  private ropeCached(positions: Int32Array, rotaryDim: number, theta: number): Float32Array {
    const c = this.ropeMemo;
    if (c && c.rotaryDim === rotaryDim && c.theta === theta && c.positions.length === positions.length && c.positions.every((p, i) => p === positions[i])) return c.table;
    const table = ropeTable(positions, rotaryDim, theta, 1);
    this.ropeMemo = { positions: positions.slice(), rotaryDim, theta, table };
    return table;
  }
  private ropeMemo: { positions: Int32Array; rotaryDim: number; theta: number; table: Float32Array } | null = null;

  /**
   * How a recorded step's rotary table follows the positions (an UploadRule): the same function for the same positions,
   * so that a chain computes the table of a step once for q and k of every layer (GpuRuntime.ruledData calls each
   * distinct rule once per step) — with leanHost; else a new function per call, as before.
   */
  private ropeRule(positions: Int32Array, rotaryDim: number, theta: number, L: number): (shift: readonly number[]) => Float32Array {
    const make = (pos: Int32Array) => (shift: readonly number[]) => ropeTable(pos.map((p, i) => p + shift[Math.floor(i / L)]), rotaryDim, theta, 1);
    if (!this.rt.leanHost) return make(positions);
    const c = this.ropeRuleMemo;
    if (c && c.rotaryDim === rotaryDim && c.theta === theta && c.L === L && c.positions.length === positions.length && c.positions.every((p, i) => p === positions[i])) return c.rule;
    const pos = positions.slice();
    const rule = make(pos);
    this.ropeRuleMemo = { positions: pos, rotaryDim, theta, L, rule };
    return rule;
  }
  private ropeRuleMemo: { positions: Int32Array; rotaryDim: number; theta: number; L: number; rule: (shift: readonly number[]) => Float32Array } | null = null;

  rope(x: Tensor, positions: Int32Array, rotaryDim: number, theta: number): Tensor {
    const [b, L, H, hd] = x.shape;
    const y = this.out(x.shape, 'rope');
    const table = this.rt.uploadShared(this.ropeCached(positions, rotaryDim, theta), this.ropeRule(positions, rotaryDim, theta, L));
    this.run(ROPE, [this.st(x), table, this.st(y)], [b * L, H, hd, rotaryDim], this.threads(b * L * H * hd));
    return y;
  }

  attention(a: AttentionArgs): Tensor {
    const [B, L, Hq, hd] = a.q.shape;
    if (hd > 512) throw new Error(`webgpu.attention: head dim ${hd} > 512 is not supported`);
    const y = this.out([B, L, Hq, hd], 'attention');
    const cached = !!(a.cacheK && a.cacheV);
    // a bf16/f16 cache: every kernel below reads it in its format (variant 'b' / 'h'), the new rows written rounded
    const kvf = cached ? this.kvOf(a.cacheK!) : '';
    if (kvf && this.attn === 'flash1' && L > 1) {
      throw new Error(`webgpu.attention: attention 'flash1' prefills through the training forward, which reads f32 KV caches only; a ${a.cacheK!.dtype} cache (kvCache) prefills with 'flash' or 'legacy'`);
    }
    if (!cached || !(a.cacheK!.storage as Store).blocks) {
      this.attnRows(a, 0, B, y, cached ? { k: this.st(a.cacheK!), v: this.st(a.cacheV!) } : null, kvf);
      return y;
    }
    // a KV cache split by sequences (kvSplit): the same dispatches per block, on its rows of q, k, v and y
    const K = this.seqBlocks(a.cacheK!), V = this.seqBlocks(a.cacheV!);
    if (K.length !== V.length || K.some((b, i) => b.r0 !== V[i].r0 || b.r1 !== V[i].r1)) {
      throw new Error(`webgpu.attention: the K and V caches [${a.cacheK!.shape.join(', ')}] / [${a.cacheV!.shape.join(', ')}] are split into different blocks of sequences`);
    }
    for (let i = 0; i < K.length; i++) this.attnRows(a, K[i].r0, K[i].r1, y, { k: K[i].store, v: V[i].store }, kvf);
    return y;
  }

  /** attention of sequences r0 … r1 − 1 (all of them, or one block of a split cache `cache` holds) into y */
  private attnRows(a: AttentionArgs, r0: number, r1: number, y: Tensor, cache: { k: Store; v: Store } | null, kvf: HalfFormat): void {
    const [Bt, L, Hq, hd] = a.q.shape;
    const Hkv = a.k.shape[2];
    const B = r1 - r0, whole = B === Bt;
    const rowsOf = (s: Store, per: number): Store => (whole ? s : s.view(r0 * per, B * per));
    let k = rowsOf(this.st(a.k), L * Hkv * hd), v = rowsOf(this.st(a.v), L * Hkv * hd), cap = L;
    const cached = !!cache;
    // the lengths live in a buffer (uploaded with a rule for the next steps: a recorded step replays at later positions)
    const pl = whole ? a.pastLen : a.pastLen.slice(r0, r1);
    const past = cached ? this.rt.uploadData(Float32Array.from(pl), (shift) => Float32Array.from(pl, (p, r) => p + shift[r0 + r])) : this.rt.dummy;
    if (cache) {
      const T = a.cacheK!.shape[1];
      const { k: ck, v: cv } = cache;
      this.run(KV_WRITE, [k, v, past, ck, cv], [B, L, Hkv * hd, T], this.threads((B * L * Hkv * hd) / (kvf ? 2 : 1)), kvf);
      k = ck;
      v = cv;
      cap = T;
    }
    const q = rowsOf(this.st(a.q), L * Hq * hd), out = rowsOf(this.st(y), L * Hq * hd), scale = f2u(a.scale);
    const flash = this.attn !== 'legacy';
    const pv = L > 1 ? this.prefillAttentionKernel(hd) : null;
    if (pv) {
      this.run(ATTN_PREFILL, [q, k, v, past, out], [B, L, Hq, Hkv, hd, scale, cap, cached ? 1 : 0], this.rt.grid(B * Hq * Math.ceil(L / prefillAttentionRows(pv))), pv + kvf);
      return;
    }
    // (a 16-bit cache with head dims past the prefill kernel's: the query-row kernel below)
    if (flash && this.kernels === 'tiled' && L > 1 && !kvf) {
      // flash forward: 64 queries per workgroup, k/v tiles in workgroup memory (the training forward, no lse)
      this.run(ATTN_FWD, [q, k, v, out, out, past], [B, L, Hq, Hkv, hd, scale, cap, cached ? 1 : 0], this.rt.grid(B * Hq * Math.ceil(L / 64)), attnVariant(hd));
      return;
    }
    // split over the capacity, not the current length: a recorded step keeps its grid while the cache fills
    const S = flash ? this.attnSplits ?? decodeSplits(B * L * Hq, cap, this.gpuCores) : 1;
    const params = [B, L, Hq, Hkv, hd, cap, scale, cached ? 1 : 0, S];
    if (S === 1) {
      this.run(ATTENTION, [q, k, v, past, out], params, this.rt.grid(B * L * Hq), kvf);
      return;
    }
    const part = this.scratch(B * L * Hq * S * (hd + 2), 'attention partials');
    this.run(ATTENTION, [q, k, v, past, part], params, this.rt.grid(B * L * Hq * S), kvf);
    this.run(ATTN_COMBINE, [part, out], [B * L * Hq, S, hd], this.threads(B * L * Hq * hd));
    this.done(part);
  }

  /** a result of a row op on `t`: a KV cache of t's 16-bit format, or f32 */
  private rowsOut(t: Tensor, shape: Shape, what: string): Tensor {
    const half = this.kvOf(t) ? (t.dtype as 'bf16' | 'f16') : null;
    if (!(t.storage as Store).kv && !half) return this.out(shape, what);
    // a KV cache: split by sequences when larger than a binding, else one store marked as a cache
    const split = this.kvSplit(shape, half ?? 'f32', what);
    if (split) return split;
    if (half) return this.kvOut(shape, half, what);
    const y = this.out(shape, what);
    (y.storage as Store).kv = true;
    return y;
  }

  /** (16-bit KV caches stay in their format: words copied as they are, variant 'u'; ops.concatRows checks one dtype) */
  concatRows(ts: readonly Tensor[]): Tensor {
    const rows = ts.reduce((s, t) => s + t.shape[0], 0);
    const y = this.rowsOut(ts[0], [rows, ...ts[0].shape.slice(1)], 'concat_rows');
    const w = this.kvOf(ts[0]) ? 2 : 1; // values per word
    let off = 0;
    if ((y.storage as Store).blocks || ts.some((t) => (t.storage as Store).blocks)) {
      // KV caches split by sequences: copied piece by piece (each within one block of the part and of the result)
      const rw = ts[0].size / ts[0].shape[0] / w, Y = this.seqBlocks(y);
      for (const t of ts) {
        for (const p of this.spans(this.seqBlocks(t), 0, Y, off, t.shape[0])) {
          this.run(COPY_ROWS, [this.sub(p.x, p.xr * rw, p.n * rw), this.sub(p.y, p.yr * rw, p.n * rw)], [1, p.n * rw, 0, 0, 0, 0], this.threads(p.n * rw), w === 2 ? 'u' : '');
        }
        off += t.shape[0];
      }
      return y;
    }
    for (const t of ts) {
      this.run(COPY_ROWS, [this.st(t), this.st(y)], [1, t.size / w, 0, 0, 0, off / w], this.threads(t.size / w), w === 2 ? 'u' : '');
      off += t.size;
    }
    return y;
  }

  /** (keeps a 16-bit KV cache's format) */
  takeRows(t: Tensor, rows: readonly number[]): Tensor {
    const w = this.kvOf(t) ? 2 : 1;
    const rowSize = t.size / t.shape[0] / w;
    const y = this.rowsOut(t, [rows.length, ...t.shape.slice(1)], 'take_rows');
    if ((y.storage as Store).blocks || (t.storage as Store).blocks) {
      // split by sequences: each block of the result gathers its rows from each block of t (GATHER_ROWS skips ids outside it)
      const X = this.seqBlocks(t);
      for (const yb of this.seqBlocks(y)) {
        const n = yb.r1 - yb.r0;
        const idx = this.rt.uploadData(Float32Array.from(rows.slice(yb.r0, yb.r1)));
        for (const xb of X) this.run(GATHER_ROWS, [idx, xb.store, yb.store], [n, rowSize, xb.r0, xb.r1], this.threads(n * rowSize), w === 2 ? 'u' : '');
      }
      return y;
    }
    const idx = this.rt.uploadData(Float32Array.from(rows));
    this.run(GATHER_ROWS, [idx, this.st(t), this.st(y)], [rows.length, rowSize, 0, t.shape[0]], this.threads(rows.length * rowSize), w === 2 ? 'u' : '');
    return y;
  }

  /**
   * (a 16-bit KV cache dst, ModelState.writeRow: each changed value rounded to its format again, two columns per
   * thread, so its rows need an even length; src of either format)
   */
  scatterAddRows(dst: Tensor, rows: Int32Array, src: Tensor, weights: Float32Array): void {
    const H = dst.shape[dst.shape.length - 1];
    const [df, sf] = [this.kvOf(dst), this.kvOf(src)];
    if (df && H % 2 !== 0) throw new Error(`webgpu.scatterAddRows: dst is a ${dst.dtype} KV cache [${dst.shape.join(', ')}] with rows of odd length ${H}; the webgpu backend adds whole 32-bit words (two values) of 16-bit caches`);
    const rw = new Float32Array(rows.length * 2);
    for (let i = 0; i < rows.length; i++) {
      rw[2 * i] = rows[i];
      rw[2 * i + 1] = weights[i];
    }
    const v = df || sf ? `${df || 'f'}${sf || 'f'}` : '';
    if ((dst.storage as Store).blocks || (src.storage as Store).blocks) {
      this.scatterAddBlocks(dst, rows, src, weights, v);
      return;
    }
    this.run(SCATTER_ADD_ROWS, [this.rt.uploadData(rw), this.st(src), this.st(dst)], [rows.length, H], this.threads(df ? H / 2 : H), v);
  }

  /**
   * scatterAddRows on KV caches split by sequences: row i of src (rows of the last dim, H values) goes to row
   * rows[i] of dst; consecutive entries whose dst row and src row lie in the same blocks are one dispatch.
   */
  private scatterAddBlocks(dst: Tensor, rows: Int32Array, src: Tensor, weights: Float32Array, v: string): void {
    const H = dst.shape[dst.shape.length - 1];
    const [dw, sw] = [this.kvOf(dst) ? 2 : 1, this.kvOf(src) ? 2 : 1]; // values per word
    const Rd = dst.size / (dst.shape[0] * H), Rs = src.size / (src.shape[0] * H); // rows of H per sequence
    const D = this.seqBlocks(dst), S = this.seqBlocks(src);
    const blockOf = (bs: RowBlock[], row: number, R: number) => bs.findIndex((b) => row >= b.r0 * R && row < b.r1 * R);
    for (let i0 = 0; i0 < rows.length; ) {
      const db = blockOf(D, rows[i0], Rd), sb = blockOf(S, i0, Rs);
      if (db < 0) throw new Error(`webgpu.scatterAddRows: row ${rows[i0]} outside dst [${dst.shape.join(', ')}]`);
      let i1 = i0 + 1;
      while (i1 < rows.length && blockOf(D, rows[i1], Rd) === db && blockOf(S, i1, Rs) === sb) i1++;
      const d = D[db], s = S[sb];
      const srcRow = i0 - s.r0 * Rs;
      if ((srcRow * H) % sw !== 0) throw new Error(`webgpu.scatterAddRows: src is a ${src.dtype} KV cache split into blocks with rows of odd length ${H}; a piece would start inside a 32-bit word`);
      const rw = new Float32Array((i1 - i0) * 2);
      for (let i = i0; i < i1; i++) {
        rw[2 * (i - i0)] = rows[i] - d.r0 * Rd;
        rw[2 * (i - i0) + 1] = weights[i];
      }
      const ss = this.sub(s.store, (srcRow * H) / sw, ((i1 - i0) * H) / sw);
      this.run(SCATTER_ADD_ROWS, [this.rt.uploadData(rw), ss, d.store], [i1 - i0, H], this.threads(dw === 2 ? H / 2 : H), v);
      i0 = i1;
    }
  }

  /** (keeps a 16-bit KV cache's format: kvCheck makes each position whole words) */
  padTime(t: Tensor, newT: number): Tensor {
    const [b, T] = t.shape;
    const w = this.kvOf(t) ? 2 : 1;
    const inner = t.size / (b * T) / w;
    const y = this.rowsOut(t, [b, newT, ...t.shape.slice(2)], 'pad_time');
    if ((y.storage as Store).blocks || (t.storage as Store).blocks) {
      for (const p of this.spans(this.seqBlocks(t), 0, this.seqBlocks(y), 0, b)) {
        const [x, o] = [this.sub(p.x, p.xr * T * inner, p.n * T * inner), this.sub(p.y, p.yr * newT * inner, p.n * newT * inner)];
        this.run(PAD_TIME, [x, o], [p.n * newT * inner, T * inner, newT * inner], this.threads(p.n * newT * inner), w === 2 ? 'u' : '');
      }
      return y;
    }
    this.run(PAD_TIME, [this.st(t), this.st(y)], [b * newT * inner, T * inner, newT * inner], this.threads(b * newT * inner), w === 2 ? 'u' : '');
    return y;
  }
}

/**
 * Key slices of flash decoding for `rows` query rows over a cache of `cap` positions: enough workgroups for two per
 * compute unit, at least 128 keys a slice, at most 64 slices.
 */
export function decodeSplits(rows: number, cap: number, cores: number): number {
  return Math.max(1, Math.min(Math.ceil((2 * cores) / rows), Math.ceil(cap / 128), 64));
}
