/**
 * Why the WebGPU decode matvec streams its weights far below the GPU's bandwidth (issue 11): three parts, one process,
 * one table each (median of --reps rounds; the variants of a table interleaved round by round).
 *
 * 1. probe — read bandwidth of plain WGSL streaming kernels over a buffer of --bytes (default 1 GiB): a vec4<f32> sum
 *    with L loads in flight per lane (L independent accumulators, the L loads issued before the adds), workgroup sizes
 *    64/128/256, 'b' blocked (workgroup g sweeps its own contiguous block, lanes wg apart) or 'g' grid-stride (all
 *    lanes of the grid wg·groups apart), 't' a workgroup tree reduction at the end or 'n' none (every lane writes its
 *    sum); variant `L{L}w{wg}{b|g}{t|n}`. Also the CLI's probe (`mamba-ts bench --backend webgpu`: WebGpuBackend.
 *    measureBandwidth, COPY_ROWS one float per lane, GB/s = (read + written bytes) / time, best of 5 syncs of 4 copies)
 *    as it reports itself, and its kernel timed here ('cli-copy' read+write and read-only GB/s). Every sum is checked.
 * 2. matvec — the decode matvec at real shapes (mamba2-2.8b in_proj / out_proj, mamba2-130m in_proj / out_proj, the
 *    130m lm_head), f32 / bf16 / q8, M = 1, 2, 4, 8 rows of x (--rows; bf16 and q8: --rows-packed, 1 and 2): for each --kernels value (the backend's decodeKernels
 *    option: 'v1' = what decode runs today, MATVEC_V; 'v1-u4' its loads-in-flight form; 'v1-k4' the split-K matvec with
 *    x̂ in registers; 'v2…' the subgroup matvec, 'v2-r1w128l4n' its loop form with 4 loads in flight) the dispatches the
 *    backend records for `linear` are captured (so the variant is the one the backend picks) and replayed. The weights
 *    rotate over copies of the matrix filling --rotate-mb (alias --pool-mb; default 256 MiB, > 4× an H100's 50 MB L2),
 *    so every call reads them from HBM (0: one copy, re-read: the L2-resident case). Every kernel set's output is checked against a float64 CPU product of the weights as stored
 *    (bf16 / q8 read back), max relative error printed, failing above 1e-4. GB/s = weight bytes / time per call;
 *    'probe ÷ this' = the probe's time over the same bytes (below) ÷ this set's: 1.0 is the probe's rate.
 *    `--context norm`: RMSNorm(x)·Wᵀ, the norm folded into the matvec as decode's in_proj and lm_head run it (default
 *    'plain': x·Wᵀ); `--context gated`: RMSNorm(x · silu(z))·Wᵀ, Mamba-2's gated norm folded as in decode's out_proj.
 *    Row 'probe' (--matvec-probe, default L4w256gn; '' for none): part 1's sum over the same copies, the same way.
 * 3. dispatch — chains of 1/16/64/256 tiny dispatches (a 256-float copy, one workgroup): 'dep-1pass' each reads what
 *    the previous wrote, one compute pass; 'dep-passes' the same, a pass per dispatch; 'indep-1pass' each its own pair
 *    of buffers, one pass. µs per dispatch by wall time and by timestamps.
 *
 * Times: 'gpu' from two timestamp queries around all --calls calls of one submit (one pass: begin and end; passes:
 * the first's begin and the last's end), so Dawn's timestamp quantum (~8 µs) is spread over them; 'wall' = that
 * submit (already encoded) until onSubmittedWorkDone, per call. Without 'timestamp-query' the gpu column is empty.
 *
 *   node dist/bench/webgpu-stream.bench.js [--small] [--parts probe,matvec,dispatch] [--bytes 1073741824] [--reps 3]
 *        [--calls 200] [--rotate-mb 256] [--weights f32,bf16,q8] [--rows 1,2,4,8] [--rows-packed 1,2] [--shapes ...] [--kernels v1,...]
 *        [--context plain|norm] [--probes L4w256gt,...] [--groups 4224] [--matvec-probe L4w256gn] [--chains 1,16,64,256] [--json FILE]
 *        [--dawn-features disable_robustness] [--dawn-disable timestamp_quantization] [--budget-s 75]
 *
 * `--small` (SwiftShader: checks that it runs, < 60 s): tiny shapes, a 4 MiB probe over 16 workgroups, a 1 MiB pool,
 * 3 calls per submit, 2 rounds, chains of 1 and 16.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { createWebGpuBackend, type WebGpuBackend } from '../src/backend/webgpu/index.js';
import { COPY_ROWS } from '../src/backend/webgpu/kernels/copy.js';
import { BUFFER_USAGE, COPY_SPEC, PARAM_SLOT, Store, paramWords, type Dispatch, type KernelSpec } from '../src/backend/webgpu/runtime.js';
import { PARAM_WORDS } from '../src/backend/webgpu/wgsl.js';
import type { WebGpuWeights } from '../src/backend/webgpu/options.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { arg, intListArg, listArg } from './options.js';
import { loadLine, median } from './report.js';

const small = process.argv.includes('--small');
const parts = listArg('parts', 'probe,matvec,dispatch', ['probe', 'matvec', 'dispatch']);
const probeBytes = Number(arg('bytes', small ? String(4 << 20) : String(1 << 30)));
/** workgroups of the probes: default 4 × 8 per SM of an H100 (132 SMs), so that every lane has loads to issue */
const probeGroups = Number(arg('groups', small ? '16' : String(4 * 8 * 132)));
const reps = Number(arg('reps', small ? '2' : '3'));
const calls = Number(arg('calls', small ? '3' : '200'));
/**
 * --rotate-mb (alias --pool-mb): part 2's weights rotate over copies of the matrix filling this many MiB (default 256,
 * > 4× an H100's 50 MB L2: every call reads its matrix from HBM, not from L2); a model's weights are GBs, so
 * `--rotate-mb 4096` also spreads them over as many pages as a 2.8b step touches (TLB reach). 0: no copies, every call
 * re-reads the one matrix (the L2-resident case, to set beside the default).
 */
const poolMb = Number(arg('rotate-mb', arg('pool-mb', small ? '1' : '256')));
const formats = listArg<WebGpuWeights>('weights', 'f32,bf16,q8', ['f32', 'bf16', 'q8']);
const rowsF32 = intListArg('rows', small ? '1,4' : '1,2,4,8');
/**
 * --rows-packed: the rows of x for the bf16 and q8 weights (default 1,2: batch-1 decode and two sequences, where
 * the packed formats' unpacking shows; 4 and 8 add ~2× the time a format)
 */
const rowsPacked = intListArg('rows-packed', small ? '1,4' : '1,2');
const rowsFor = (fmt: WebGpuWeights): number[] => (fmt === 'f32' ? rowsF32 : rowsPacked);
/** [name, K, N]: mamba2-2.8b (d_model 2560, d_inner 5120, 80 heads, 1 group of 128 states), mamba2-130m, the lm_head */
const ALL_SHAPES: Array<[string, number, number]> = small
  ? [['s.in_proj', 64, 40], ['s.out_proj', 128, 16], ['s.lm_head', 64, 200]]
  : [['2.8b.in_proj', 2560, 10576], ['2.8b.out_proj', 5120, 2560], ['130m.in_proj', 768, 3352], ['130m.out_proj', 1536, 768], ['130m.lm_head', 768, 50280]];
const shapeNames = listArg('shapes', ALL_SHAPES.map((s) => s[0]).join(','), ALL_SHAPES.map((s) => s[0]));
const kernelSets = listArg('kernels', 'v1,v1-u4,v1-k4,v2,v2-r1w128l4n');
/**
 * what the matvec of part 2 computes: 'plain' x·Wᵀ, or 'norm' RMSNorm(x)·Wᵀ with the norm folded into the matvec as in
 * decode's in_proj and lm_head (every workgroup recomputes the row's RMS scale and stages x̂)
 */
const [context] = listArg('context', 'plain', ['plain', 'norm', 'gated']);
const probeList = listArg('probes', small ? 'L1w256gt,L4w256gt,L4w64bn,L8w128gt' : 'L1w256gt,L2w256gt,L4w256gt,L8w256gt,L4w64gt,L4w128gt,L4w256bt,L4w256gn,L4w256bn,L8w128bn,L1w64bn');
/** the probe timed beside the matvecs of part 2, over the same weight copies ('' for none) */
const matvecProbe = arg('matvec-probe', 'L4w256gn');
if (matvecProbe) probeParse(matvecProbe);
const chains = intListArg('chains', small ? '1,16' : '1,16,64,256');
const jsonOut = arg('json', '');
/**
 * --budget-s: past this many seconds no further matvec shape or format is started (the device time is lent by the
 * minute); what was skipped is listed at the end and in the JSON. 0: no budget.
 */
const budgetS = Number(arg('budget-s', small ? '0' : '75'));
const skipped: string[] = [];
const overBudget = (what: string): boolean => {
  if (!(budgetS > 0) || (performance.now() - t00) / 1000 < budgetS) return false;
  skipped.push(what);
  return true;
};
/**
 * --dawn-features a,b / --dawn-disable c: Dawn toggles to enable (with allow_unsafe_apis, as the backend asks for anyway)
 * or disable, e.g. enable disable_robustness (no bounds clamps on buffer indices), disable timestamp_quantization;
 * every backend of the run is created on such an instance (the `webgpu` package's create flags)
 */
const dawnFeatures = arg('dawn-features', ''), dawnDisable = arg('dawn-disable', '');
const names = (list: string): string[] => list.split(',').map((t) => t.trim()).filter((t) => t.length > 0);
async function backend(opts: Parameters<typeof createWebGpuBackend>[0] = {}): Promise<WebGpuBackend> {
  if (!dawnFeatures && !dawnDisable) return createWebGpuBackend(opts);
  return createWebGpuBackend({ ...opts, dawnToggles: { enable: names(dawnFeatures), disable: names(dawnDisable) } });
}
if (!(reps >= 1 && calls >= 1 && poolMb >= 0 && probeBytes >= 1 << 20)) throw new Error('--reps, --calls must be ≥ 1, --rotate-mb ≥ 0 and --bytes ≥ 1 MiB');

const log = (s: string): void => void process.stdout.write(s + '\n');
/** the JSON of what is measured so far (--json): written after every part, so a run cut short keeps its parts */
const saveJson = (): void => {
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ small, reps, calls, poolMb, probeBytes, kernels: kernelSets, context, skipped, loadavg: os.loadavg(), elapsedS: (performance.now() - t00) / 1000, ...results }, null, 1));
};
const t00 = performance.now();
const results: Record<string, unknown[]> = { probe: [], matvec: [], dispatch: [] };
let failed = false;

// ---- timing --------------------------------------------------------------------------------------------------------

/** one call = the dispatches of one product (1 for most kernels, 2 for split-K) */
type Call = Omit<Dispatch, 'kind'>[];

class Timer {
  private params: { buf: ReturnType<WebGpuBackend['rt']['newBuffer']>; bg: GPUBindGroup } | null = null;
  private readonly qs: GPUQuerySet | null;
  private readonly resolve: GPUBuffer | null;
  private readonly readback: GPUBuffer | null;
  constructor(private readonly be: WebGpuBackend) {
    const d = be.rt.device;
    const ts = d.features.has('timestamp-query');
    this.qs = ts ? d.createQuerySet({ type: 'timestamp', count: 2 }) : null;
    this.resolve = ts ? d.createBuffer({ size: 16, usage: BUFFER_USAGE.QUERY_RESOLVE | BUFFER_USAGE.COPY_SRC }) : null;
    this.readback = ts ? d.createBuffer({ size: 16, usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST }) : null;
  }
  /**
   * Submit `list` (calls, in order) in one submit — one compute pass, or a pass per dispatch — and wait for it:
   * µs per call by the timestamps around it (NaN without timestamps) and by wall time (submit to done)
   */
  async run(list: Call[], passes: 'one' | 'each' = 'one'): Promise<{ gpuUs: number; wallUs: number }> {
    const rt = this.be.rt, d = rt.device;
    const flat = list.flat();
    const need = flat.length * PARAM_SLOT;
    if (!this.params || this.params.buf.size < need) {
      if (this.params) rt.destroyBuffer(this.params.buf.gpu);
      let size = 1 << 16;
      while (size < need) size *= 2;
      const buf = rt.newBuffer(size, 'bench parameters', BUFFER_USAGE.UNIFORM | BUFFER_USAGE.COPY_DST);
      this.params = { buf, bg: rt.paramBindGroup(buf) };
    }
    const words = new Uint32Array(flat.length * PARAM_WORDS);
    flat.forEach((c, i) => paramWords(c, words, i));
    d.queue.writeBuffer(this.params.buf.gpu, 0, words.buffer, 0, words.byteLength);
    const enc = d.createCommandEncoder();
    let pass: GPUComputePassEncoder | null = null;
    flat.forEach((c, i) => {
      const first = i === 0, last = i === flat.length - 1;
      if (!pass) {
        const tw: GPUComputePassTimestampWrites | undefined = this.qs
          ? { querySet: this.qs, ...(first ? { beginningOfPassWriteIndex: 0 } : {}), ...(passes === 'one' || last ? { endOfPassWriteIndex: 1 } : {}) }
          : undefined;
        pass = enc.beginComputePass(tw && (first || passes === 'one' || last) ? { timestampWrites: tw } : {});
      }
      const { pipe, bg } = rt.encodeInfo(c);
      pass.setPipeline(pipe);
      pass.setBindGroup(0, bg);
      pass.setBindGroup(1, this.params!.bg, [i * PARAM_SLOT]);
      pass.dispatchWorkgroups(...c.grid);
      if (passes === 'each' || last) {
        pass.end();
        pass = null;
      }
    });
    if (this.qs) {
      enc.resolveQuerySet(this.qs, 0, 2, this.resolve!, 0);
      enc.copyBufferToBuffer(this.resolve!, 0, this.readback!, 0, 16);
    }
    const cmd = enc.finish();
    await d.queue.onSubmittedWorkDone();
    const t0 = performance.now();
    d.queue.submit([cmd]);
    await d.queue.onSubmittedWorkDone();
    const wallUs = ((performance.now() - t0) * 1000) / list.length;
    let gpuUs = NaN;
    if (this.readback) {
      await this.readback.mapAsync(1);
      const t = new BigUint64Array(this.readback.getMappedRange().slice(0));
      this.readback.unmap();
      gpuUs = Number(t[1] - t[0]) / 1000 / list.length;
    }
    return { gpuUs, wallUs };
  }
}

/** variants timed round-robin (`reps` rounds, every other round reversed); medians of gpu and wall µs per call */
async function interleaved<T>(timer: Timer, items: T[], calls: (it: T) => Call[], passes: (it: T) => 'one' | 'each' = () => 'one'): Promise<Array<{ gpuUs: number; wallUs: number }>> {
  for (const it of items) await timer.run(calls(it).slice(0, Math.min(4, calls(it).length)), passes(it)); // pipelines compiled, caches warm
  const gpu: number[][] = items.map(() => []), wall: number[][] = items.map(() => []);
  for (let r = 0; r < reps; r++) {
    const order = items.map((_, i) => i);
    if (r % 2) order.reverse();
    for (const i of order) {
      const t = await timer.run(calls(items[i]), passes(items[i]));
      gpu[i].push(t.gpuUs);
      wall[i].push(t.wallUs);
    }
  }
  return items.map((_, i) => ({ gpuUs: median(gpu[i]), wallUs: median(wall[i]) }));
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '—');
const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '—');

// ---- part 1: bandwidth probes --------------------------------------------------------------------------------------

/** variant L{loads}w{wg}{b|g}{t|n} of STREAM_SUM */
function probeParse(v: string): { L: number; wg: number; blocked: boolean; tree: boolean } {
  const m = /^L([1248])w(64|128|256)([bg])([tn])$/.exec(v);
  if (!m) throw new Error(`--probes: ${v} is not L{1|2|4|8}w{64|128|256}{b|g}{t|n}`);
  return { L: +m[1], wg: +m[2], blocked: m[3] === 'b', tree: m[4] === 't' };
}

/**
 * The probe: sum of n vec4<f32> (params: n in vec4s, chunk = vec4s per workgroup for 'b'); out[g] (tree) or
 * out[g·wg + li] (none). Bench-only: it measures what a WGSL streaming loop reaches, it is no kernel of the backend.
 */
const STREAM_SUM: KernelSpec = {
  name: 'stream_sum',
  roles: ['x', 'out'],
  writes: ['out'],
  types: () => ({ x: 'vec4<f32>' }),
  wgsl: (v) => {
    const { L, wg, blocked, tree } = probeParse(v);
    const acc = Array.from({ length: L }, (_, l) => `a${l}`);
    // start, stride between a lane's consecutive loads, end
    const idx = blocked
      ? 'let chunk = pu(PK + 1u); let start = g * chunk + li; let end = min(n, (g + 1u) * chunk); let stride = WG;'
      : 'let start = g * WG + li; let end = n; let stride = WG * ng;';
    return /* wgsl */ `
const WG: u32 = ${wg}u;
${tree ? `var<workgroup> red: array<f32, ${wg}>;` : ''}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wgid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let n = pu(PK);
  let g = lin(wgid, nwg); let ng = nwg.x * nwg.y;
  ${idx}
  ${acc.map((a) => `var ${a} = vec4<f32>();`).join(' ')}
  var i = start;
  for (; i + ${L - 1}u * stride < end; i += ${L}u * stride) {
    ${acc.map((_, l) => `let v${l} = $x[o_x / 4u + i + ${l}u * stride];`).join('\n    ')}
    ${acc.map((a, l) => `${a} += v${l};`).join(' ')}
  }
  for (; i < end; i += stride) { a0 += $x[o_x / 4u + i]; }
  let s4 = ${acc.join(' + ')};
  let s = (s4.x + s4.y) + (s4.z + s4.w);
  ${tree ? `red[li] = s;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (li < k) { red[li] += red[li + k]; }
    workgroupBarrier();
  }
  if (li == 0u) { $out[o_out + g] = red[0]; }` : '$out[o_out + g * WG + li] = s;'}
}`;
  },
};

async function probePart(be: WebGpuBackend, timer: Timer): Promise<void> {
  const rt = be.rt;
  const bytes = Math.min(probeBytes, rt.maxBinding) - (Math.min(probeBytes, rt.maxBinding) % (1 << 20));
  const n4 = bytes / 16;
  const x = rt.alloc(rt.matPool, n4 * 4, 'probe buffer');
  // values (i mod 1024) / 1024 in [0, 1): known sum, written in 16 MiB pieces
  const piece = new Float32Array(Math.min(n4 * 4, 1 << 22)).map((_, i) => (i % 1024) / 1024);
  for (let o = 0; o < n4 * 4; o += piece.length) rt.device.queue.writeBuffer(x.ref.gpu, (x.off + o) * 4, piece.buffer, 0, Math.min(piece.length, n4 * 4 - o) * 4);
  const want = (n4 * 4 / 1024) * (1023 / 2); // whole periods of 1024 (bytes a multiple of 1 MiB)
  const groups = probeGroups;
  const out = rt.alloc(rt.actPool, groups * 256, 'probe sums');
  const items = probeList.map((v) => ({ v, ...probeParse(v) }));
  const call = (it: (typeof items)[number]): Call => [{ spec: STREAM_SUM, variant: it.v, roles: [x, out], params: [n4, Math.ceil(n4 / groups)], grid: rt.grid(groups) }];
  // the CLI's probe: its own number (as `mamba-ts bench` prints it) and its kernel, captured and timed here
  const captured: Call = [];
  const record = rt.record.bind(rt);
  rt.record = (d) => {
    if (d.spec === COPY_ROWS) captured.push(d);
    record(d);
  };
  let cliGBs = NaN;
  try {
    cliGBs = await be.measureBandwidth(bytes);
  } finally {
    rt.record = record;
  }
  const nCopy = captured[0]?.params[1] ?? 0;
  const ca = rt.alloc(rt.actPool, nCopy, 'copy source'), cb = rt.alloc(rt.actPool, nCopy, 'copy destination');
  const copyCall: Call = [{ ...captured[0], roles: [ca, cb] }];
  const per = Math.max(1, Math.min(calls, 20));
  const timed = await interleaved(timer, [...items.map((it) => ({ it, copy: false })), { it: items[0], copy: true }], (e) => Array.from({ length: per }, () => (e.copy ? copyCall : call(e.it))));
  log(`\n## 1. Read bandwidth probes (${(bytes / 2 ** 20).toFixed(0)} MiB, ${groups} workgroups, ${per} calls per submit, median of ${reps})`);
  log(`- CLI probe as it reports itself (WebGpuBackend.measureBandwidth: COPY_ROWS over ${(nCopy * 4 / 2 ** 20).toFixed(0)} MiB, read + written bytes, best of 5): ${f1(cliGBs)} GB/s`);
  log('| variant | loads in flight | workgroup | indexing | reduction | GB/s (gpu) | GB/s (wall) | µs per call (gpu) | sum check |');
  log('|---|---:|---:|---|---|---:|---:|---:|---|');
  for (let i = 0; i < items.length; i++) {
    const it = items[i], t = timed[i];
    // one more call for the check: the partial sums add up to the buffer's sum
    await timer.run([call(it)]);
    const o = await rt.read(new Store(out.ref, out.off, it.tree ? groups : groups * it.wg));
    let got = 0;
    for (const v of o) got += v;
    const rel = Math.abs(got - want) / want;
    const ok = rel <= 1e-3;
    if (!ok) (failed = true), log(`CHECK FAILED: probe ${it.v}: sum ${got} vs ${want}`);
    log(`| ${it.v} | ${it.L} | ${it.wg} | ${it.blocked ? 'blocked' : 'grid-stride'} | ${it.tree ? 'tree' : 'none'} | ${f1(bytes / t.gpuUs / 1e3)} | ${f1(bytes / t.wallUs / 1e3)} | ${f1(t.gpuUs)} | ${ok ? 'ok' : 'FAILED'} (rel ${rel.toExponential(1)}) |`);
    results.probe.push({ variant: it.v, loads: it.L, wg: it.wg, blocked: it.blocked, tree: it.tree, bytes, gpuUs: t.gpuUs, wallUs: t.wallUs, gbsGpu: bytes / t.gpuUs / 1e3, gbsWall: bytes / t.wallUs / 1e3, sumRelErr: rel });
  }
  const tc = timed[items.length], cbytes = nCopy * 4;
  log(`| cli-copy (COPY_ROWS) | 1 | 256 | one float per lane | none | read+write ${f1((2 * cbytes) / tc.gpuUs / 1e3)}, read ${f1(cbytes / tc.gpuUs / 1e3)} | read+write ${f1((2 * cbytes) / tc.wallUs / 1e3)} | ${f1(tc.gpuUs)} | — |`);
  results.probe.push({ variant: 'cli-copy', bytes: cbytes, gpuUs: tc.gpuUs, wallUs: tc.wallUs, gbsReadWriteGpu: (2 * cbytes) / tc.gpuUs / 1e3, gbsReadGpu: cbytes / tc.gpuUs / 1e3, cliReportedGBs: cliGBs });
  for (const s of [x, out, ca, cb]) rt.release(s);
}

// ---- part 2: matvec at real shapes ---------------------------------------------------------------------------------

/** random in [-1, 1) from a seed (a fixed sequence: runs compare) */
function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

async function matvecPart(fmt: WebGpuWeights): Promise<void> {
  const be = await backend({ weights: fmt, kernels: 'tiled', fuse: true, profile: true });
  const rt = be.rt, timer = new Timer(be);
  be.rt.setProfiling(false);
  log(`\n## 2. Matvec, ${fmt} weights, ${context === 'norm' ? 'RMSNorm(x) folded in' : context === 'gated' ? 'RMSNorm(x · silu(z)) folded in' : 'plain x'} (${be.name}, subgroup size ${rt.subgroupFixed || 'not fixed'}; ${calls} calls per submit ${poolMb === 0 ? 'on one copy of the weights (no rotation: L2 may hold them)' : `rotating over ≥ ${poolMb} MiB of weight copies (from HBM)`}, median of ${reps})`);
  log('| shape | K → N | M | kernels | variant | GB/s (gpu) | GB/s (wall) | µs per call (gpu) | µs per call (wall) | probe ÷ this (gpu) | max rel err |');
  log('|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|');
  const rowsList = rowsFor(fmt);
  const maxM = Math.max(...rowsList);
  for (const [name, K, N] of ALL_SHAPES.filter((s) => shapeNames.includes(s[0]))) {
    if (overBudget(`${fmt} ${name}`)) continue;
    const w = random(N * K, 11 + K + N);
    const W = be.fromHost(w, [N, K], { matrix: true });
    const ws = W.storage as Store;
    if (ws.blocks) throw new Error(`${name}: the matrix is split into row blocks on this adapter; pick smaller shapes`);
    const wBytes = ws.len * 4;
    // copies of the stored matrix (bit for bit) through the pool, so that the calls stream from DRAM
    const copies = [ws];
    const nCopies = poolMb === 0 ? 1 : Math.max(2, Math.ceil((poolMb * 2 ** 20) / wBytes));
    log(`| ${name} | ${K} → ${N} | — | (weights) | ${nCopies} ${nCopies === 1 ? 'copy: re-read every call (may sit in L2)' : `copies rotated, ${((nCopies * wBytes) / 2 ** 20).toFixed(0)} MiB`} | | | | | | |`);
    // (through a buffer of its own: a copy may live in the same pool chunk as the matrix)
    const tmp = rt.createBuffer({ size: wBytes, usage: BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST, label: 'weight copy source' });
    const enc = rt.device.createCommandEncoder();
    enc.copyBufferToBuffer(ws.ref.gpu, ws.off * 4, tmp, 0, wBytes);
    for (let c = 1; c < nCopies; c++) {
      const s = rt.alloc(rt.matPool, ws.len, 'weight copy');
      enc.copyBufferToBuffer(tmp, 0, s.ref.gpu, s.off * 4, wBytes);
      copies.push(s);
    }
    rt.device.queue.submit([enc.finish()]);
    await rt.device.queue.onSubmittedWorkDone();
    rt.destroyBuffer(tmp);
    // the reference: float64 products of the weights as stored (bf16 / q8 read back: the numbers the kernels use)
    const wq = fmt === 'f32' ? w : await rt.read(ws);
    const x0 = random(maxM * K, 5 + K), nwv = random(K, 3 + K), z0 = random(maxM * K, 7 + K);
    // the product's input as the kernels see it: x, or RMSNorm(x) · w_n (eps 1e-5) in float64 for the reference
    const xs = Float64Array.from(x0);
    if (context === 'gated') for (let i = 0; i < xs.length; i++) xs[i] *= z0[i] / (1 + Math.exp(-z0[i])); // y · silu(z)
    if (context !== 'plain') {
      for (let m = 0; m < maxM; m++) {
        let ss = 0;
        for (let k = 0; k < K; k++) ss += xs[m * K + k] ** 2;
        const r = 1 / Math.sqrt(ss / K + 1e-5);
        for (let k = 0; k < K; k++) xs[m * K + k] *= r * nwv[k];
      }
    }
    const NW = be.fromHost(nwv, [K]);
    const ref = new Float64Array(maxM * N);
    let refMax = 0;
    for (let n = 0; n < N; n++) {
      for (let m = 0; m < maxM; m++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += xs[m * K + k] * wq[n * K + k];
        ref[m * N + n] = s;
      }
    }
    // the probe's µs per call over these copies (timed with the first M): each set's time as a fraction of it
    let probeUs = NaN;
    for (const M of rowsList) {
      const X = be.fromHost(x0.slice(0, M * K), [M, K]), Z = be.fromHost(z0.slice(0, M * K), [M, K]);
      const keep: Tensor[] = [X, Z];
      const sets: Array<{ k: string; call: Call; variant: string; err: number }> = [];
      for (const k of kernelSets) {
        be.decodeKernels = k;
        const call: Call = [];
        const record = rt.record.bind(rt);
        rt.record = (d) => {
          call.push(d);
          record(d);
        };
        let y: Float32Array;
        try {
          const xin = context === 'norm' ? be.rmsNorm(X, NW, 1e-5) : context === 'gated' ? be.rmsNormGated(X, Z, NW, 1e-5, K) : X;
          const Y = be.linear(xin, W, null);
          keep.push(Y);
          y = await Y.data();
        } finally {
          rt.record = record;
        }
        let e = 0, mx = 0;
        for (let m = 0; m < M; m++) {
          for (let n = 0; n < N; n++) {
            e = Math.max(e, Math.abs(y[m * N + n] - ref[m * N + n]));
            mx = Math.max(mx, Math.abs(ref[m * N + n]));
          }
        }
        const err = e / (mx || 1);
        refMax = Math.max(refMax, err);
        if (!(err <= 1e-4)) (failed = true), log(`CHECK FAILED: ${name} ${fmt} M=${M} ${k}: max relative error ${err}`);
        sets.push({ k, call, variant: call.map((d) => `${d.spec.name}(${d.variant})`).join(' + '), err });
      }
      // the probe over the same copies (once per shape): what a plain stream of these bytes reaches with this call pattern
      let probeOut: Store | null = null;
      if (matvecProbe && M === rowsList[0]) {
        const n4 = Math.floor(ws.len / 4), groups = Math.max(1, Math.min(probeGroups, Math.ceil(n4 / 256)));
        probeOut = rt.alloc(rt.actPool, groups * 256, 'probe sums');
        sets.push({ k: 'probe', call: [{ spec: STREAM_SUM, variant: matvecProbe, roles: [ws, probeOut], params: [n4, Math.ceil(n4 / groups)], grid: rt.grid(groups) }], variant: `stream_sum(${matvecProbe})`, err: NaN });
      }
      // (blocks a split-K's partials were released to may be reused by later sets' outputs: timing only, results checked above)
      const timed = await interleaved(timer, sets, (s) => Array.from({ length: calls }, (_, i) => s.call.map((d) => ({ ...d, roles: d.roles.map((r) => (r === ws ? copies[i % copies.length] : r)) }))));
      const pi = sets.findIndex((s) => s.k === 'probe');
      if (pi >= 0) probeUs = timed[pi].gpuUs;
      sets.forEach((s, i) => {
        const t = timed[i];
        log(`| ${name} | ${K} → ${N} | ${M} | ${s.k} | ${s.variant} | ${f1(wBytes / t.gpuUs / 1e3)} | ${f1(wBytes / t.wallUs / 1e3)} | ${f2(t.gpuUs)} | ${f2(t.wallUs)} | ${f2(probeUs / t.gpuUs)} | ${Number.isNaN(s.err) ? '—' : s.err.toExponential(1)} |`);
        results.matvec.push({ shape: name, K, N, M, weights: fmt, context, copies: nCopies, kernels: s.k, variant: s.variant, weightBytes: wBytes, gpuUs: t.gpuUs, wallUs: t.wallUs, gbsGpu: wBytes / t.gpuUs / 1e3, gbsWall: wBytes / t.wallUs / 1e3, probeOverThis: probeUs / t.gpuUs, maxRelErr: s.err });
      });
      for (const t of keep) t.dispose();
      if (probeOut) rt.release(probeOut);
    }
    for (const s of copies.slice(1)) rt.release(s);
    W.dispose();
    NW.dispose();
  }
  be.destroy();
}

// ---- part 3: per-dispatch cost -------------------------------------------------------------------------------------

async function dispatchPart(be: WebGpuBackend, timer: Timer): Promise<void> {
  const rt = be.rt;
  const n = 256, maxChain = Math.max(...chains);
  // buffers of their own (a store per GPUBuffer), so that independent dispatches share no buffer
  const own = (label: string) => new Store(rt.newBuffer(n * 4, label), 0, n);
  const a = own('chain a'), b = own('chain b');
  const srcs = Array.from({ length: maxChain }, () => own('independent source'));
  const dsts = Array.from({ length: maxChain }, () => own('independent destination'));
  const copy = (x: Store, y: Store): Call[number] => ({ spec: COPY_SPEC, variant: '', roles: [x, y], params: [n], grid: [1, 1, 1] });
  const modes = ['dep-1pass', 'dep-passes', 'indep-1pass'] as const;
  const items = chains.flatMap((c) => modes.map((mode) => ({ c, mode })));
  const list = (it: (typeof items)[number]): Call[] =>
    Array.from({ length: it.c }, (_, i) => [it.mode === 'indep-1pass' ? copy(srcs[i], dsts[i]) : i % 2 ? copy(b, a) : copy(a, b)]);
  const timed = await interleaved(timer, items, list, (it) => (it.mode === 'dep-passes' ? 'each' : 'one'));
  log(`\n## 3. Per-dispatch cost (a 256-float copy, one workgroup; one submit per chain, median of ${reps})`);
  log('| dispatches | mode | µs per dispatch (gpu) | µs per dispatch (wall) |');
  log('|---:|---|---:|---:|');
  items.forEach((it, i) => {
    log(`| ${it.c} | ${it.mode} | ${f2(timed[i].gpuUs)} | ${f2(timed[i].wallUs)} |`);
    results.dispatch.push({ dispatches: it.c, mode: it.mode, gpuUs: timed[i].gpuUs, wallUs: timed[i].wallUs });
  });
  // the submit's fixed costs (timestamp resolve and copy, the wake-up) are in every row, spread over its dispatches:
  // the slope between the two longest chains is the cost of one more dispatch
  const [c1, c2] = [...chains].sort((x, y) => x - y).slice(-2);
  if (c1 !== undefined && c2 !== undefined && c1 < c2) {
    for (const mode of modes) {
      const at = (c: number) => timed[items.findIndex((it) => it.c === c && it.mode === mode)];
      const slope = (k: 'gpuUs' | 'wallUs') => (at(c2)[k] * c2 - at(c1)[k] * c1) / (c2 - c1);
      log(`- ${mode}: one more dispatch (slope ${c1} → ${c2}) ${f2(slope('gpuUs'))} µs gpu, ${f2(slope('wallUs'))} µs wall`);
      results.dispatch.push({ mode, slopeFrom: c1, slopeTo: c2, gpuUsPerDispatch: slope('gpuUs'), wallUsPerDispatch: slope('wallUs') });
    }
  }
}

// ---- main ----------------------------------------------------------------------------------------------------------

log(`# WebGPU streaming bench (issue 11)`);
log(`- ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, Node ${process.version}; load average at start: ${loadLine(os.loadavg())}${dawnFeatures ? `; Dawn toggles on: ${dawnFeatures}` : ''}${dawnDisable ? `; off: ${dawnDisable}` : ''}`);
if (parts.includes('probe') || parts.includes('dispatch')) {
  const be = await backend({ profile: true });
  be.rt.setProfiling(false);
  log(`- ${be.name}, subgroup size ${be.rt.subgroupFixed || 'not fixed'}, timestamps ${be.rt.device.features.has('timestamp-query') ? 'on' : 'OFF (gpu columns empty)'}, largest binding ${(be.rt.maxBinding / 2 ** 20).toFixed(0)} MiB`);
  const timer = new Timer(be);
  if (parts.includes('probe')) await probePart(be, timer);
  log(`- (${((performance.now() - t00) / 1000).toFixed(1)} s so far)`);
  saveJson();
  if (parts.includes('dispatch')) await dispatchPart(be, timer);
  log(`- (${((performance.now() - t00) / 1000).toFixed(1)} s so far)`);
  be.destroy();
}
if (parts.includes('matvec')) {
  for (const fmt of formats) {
    if (overBudget(`${fmt} (all shapes)`)) continue;
    await matvecPart(fmt);
    saveJson();
    log(`- (${((performance.now() - t00) / 1000).toFixed(1)} s so far)`);
  }
}
if (skipped.length > 0) log(`\n- NOT RUN (past --budget-s ${budgetS}): ${skipped.join(', ')}`);
log(`\n- load average at end: ${loadLine(os.loadavg())}; ${((performance.now() - t00) / 1000).toFixed(1)} s in all`);
saveJson();
if (failed) {
  log('some results did not match their reference (CHECK FAILED above)');
  process.exitCode = 1;
}
