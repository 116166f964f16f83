/**
 * A wide sweep of the blocked prefill GEMM (kernels/gemm_blocked.ts) within a time budget, for one device call:
 * tiles (BM×BN, TM×TN per thread, BK), the code flags (`_v` vec4 activations, `_m` A staged m-major, `_g` A by
 * subgroupShuffle, `_b1` one slice buffer, `_w8` rasterised workgroups, `_q8` / `_q4` warp tiling) and split-K, on the GEMMs of the 130m
 * models' prefill (mamba2 in_proj 768→3352, out_proj 1536→768, lm_head 768→50288 / 50280, mamba in_proj, x_proj,
 * dt_proj) and llama-130m's (q/k/v/o, gate/up, down) at M = 2048, against the 'tiled' kernel (the default on a
 * device without an f32 subgroup-matrix configuration) and the blocked kernel's own plan ('blocked').
 *
 * Phases, each until the budget is spent: (1) every tile at BK 16 and 8, no flags, on every shape; (2) for each shape
 * the flags, the other BKs and (small grids) 1/2/4 K-splits on its 3 best tiles of phase 1; (3) the rest of the cross
 * product. Every (configuration, shape) is checked once against the reference (the tiled kernel's output on 40 rows
 * spread over the tiles, itself checked against float64 host rows): max |Δ| / max |y| ≤ --tol, or it is listed as
 * wrong and not ranked. A configuration the device cannot run (workgroup memory, '_g' without a fixed subgroup
 * size its rows divide) is listed as refused; one whose pipeline or run fails (GPU error scopes, exceptions) as
 * failed; neither stops the sweep. Timing: `--trials` batches of products recorded into one submit each (as many as
 * fill --trial-ms, at least 3), wall time from submit to completion, the best batch; decode fusion off, so a split's
 * reduce is a dispatch of its own and counted. With --timestamps on (the default, where the adapter has
 * 'timestamp-query'; Dawn's quantization off) one more batch is profiled: `gpu_us`, the GPU time of the product's
 * dispatches (timestamps around each, as `mamba-ts bench --profile` measures a model's kernels). Ranked by wall time.
 *
 * Prints a ranked table per shape (µs, TFLOP/s, × the tiled kernel) and with --json a file whose `tuned` field is a
 * table for `gemmTuned` / MAMBA_TS_WEBGPU_GEMM_TUNED (the sweep's best per shape where it beats 'tiled' by more than
 * --margin, else 'tiled'; keys KxN for M > 128 — measured at this M only), rewritten every ~5 s while the sweep
 * runs (`done: false` until the end), so a sweep killed from outside still leaves one.
 *
 *   node dist/bench/gemm-sweep.bench.js [--budget-s 100] [--m 2048] [--sizes 130m,llama | tiny] [--shapes <substring>,…]
 *        [--configs <base[@S]>,…] [--phases 1,2,3] [--max-configs N] [--trial-ms 15] [--trials 2] [--tol 1e-4]
 *        [--margin 0.02] [--top 12] [--cores 132] [--x-pool activations|constants] [--timestamps on|off] [--json out.json]
 *
 * `--sizes tiny` (two small shapes; with e.g. --m 37) is for software adapters: it checks that the sweep runs.
 * `--configs` adds candidates run first on every shape (variant bases with flags, e.g. 128x128k16t8x8_v_w8@2).
 * `--x-pool`: where x lives — 'activations' (default: as in a model, where x and the product's output are carved from
 * the activation pool's chunks; for `_v` the backend then puts the output in its side pool) or 'constants' (x uploaded). Each result's `xv` says which ran ('vec4', 'scalar', or '' without the flag); after
 * a fallback on a shape, its further '_v' candidates are skipped (they would time the kernel without the flag).
 */
import { writeFileSync } from 'node:fs';
import { createWebGpuBackend, type WebGpuBackend } from '../src/backend/webgpu/index.js';
import { maxRelErr } from '../src/backend/webgpu/backend.js';
import { BLOCKED_BASE, BLOCKED_CONFIGS, MATMUL_BLOCKED, blockedDeviceError, parseBlocked, tunedKeys } from '../src/backend/webgpu/kernels/gemm_blocked.js';
import type { Store } from '../src/backend/webgpu/runtime.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { arg, intListArg, listArg } from './options.js';
import { GEMM_SHAPE_SETS, gemmInput as rand } from './gemm-shapes.js';

const t0 = performance.now();
const elapsed = () => (performance.now() - t0) / 1000;
const num = (name: string, dflt: string, min: number) => {
  const v = Number(arg(name, dflt));
  if (!Number.isFinite(v) || v < min) throw new Error(`--${name}: want a number ≥ ${min}, got ${arg(name, dflt)}`);
  return v;
};
const budget = num('budget-s', '100', 1);
const Ms = intListArg('m', '2048');
const trialMs = num('trial-ms', '15', 0);
const trials = num('trials', '2', 1);
const tol = num('tol', '1e-4', 0);
const margin = num('margin', '0.02', 0);
const top = num('top', '12', 1);
const maxConfigs = num('max-configs', '100000', 1);
const cores = num('cores', '132', 1);
const xPool = listArg('x-pool', 'activations', ['activations', 'constants'])[0];
const stamps = listArg('timestamps', 'on', ['on', 'off'])[0] === 'on';
const phases = listArg('phases', '1,2,3', ['1', '2', '3']);
const only = listArg('shapes', '');
const jsonPath = arg('json', '');
const extra = listArg('configs', '');
for (const c of extra) {
  const [b, s] = c.split('@');
  if (!BLOCKED_CONFIGS[b] && !BLOCKED_BASE.test(b)) throw new Error(`--configs: ${c} is neither one of ${Object.keys(BLOCKED_CONFIGS).join(', ')} nor a variant base like 128x64k16t8x4_v (optionally @splits)`);
  if (s !== undefined && !(Number.isInteger(Number(s)) && Number(s) >= 1)) throw new Error(`--configs: ${c}: the split after @ must be a positive integer`);
}
const log = (s: string) => process.stderr.write(s + '\n');

const SHAPE_SETS = GEMM_SHAPE_SETS;
const sizes = listArg('sizes', '130m,llama', Object.keys(SHAPE_SETS));

/** tiles [BM, BN, TM, TN]: the named ones first, then larger per-thread tiles, then wide/narrow */
const TILES: [number, number, number, number][] = [
  [128, 128, 8, 8], [128, 64, 8, 4], [64, 128, 4, 8], [64, 64, 4, 4],
  [128, 128, 8, 16], [128, 128, 16, 8], [64, 128, 8, 8], [128, 64, 8, 8],
  [128, 256, 8, 16], [256, 128, 16, 8], [256, 64, 16, 4], [64, 256, 4, 16],
  [64, 64, 8, 8], [128, 32, 8, 4], [32, 128, 4, 8], [64, 32, 4, 4], [128, 16, 4, 4],
];
const FLAGS = ['_v', '_m_v', '_w8', '_v_w8', '_q8', '_v_q8', '_q4', '_m', '_g_v', '_g', '_b1', '_v_b1', '_m_v_w8', '_g_v_w8', '_m_v_b1', '_m_v_q8'];
const tileBase = ([bm, bn, tm, tn]: number[], bk: number) => `${bm}x${bn}k${bk}t${tm}x${tn}`;

interface Shape {
  what: string;
  M: number;
  K: number;
  N: number;
  key: string;
  xs: Float32Array;
  x: Tensor;
  w: Tensor;
  /** the rows checked, and the reference's values there */
  rows: number[];
  ref: Float32Array | null;
  results: Result[];
  /** a '_v' configuration took the scalar fallback here (x shares the output's buffer): later '_v' ones are skipped */
  xvScalar: boolean;
}
interface Result {
  config: string;
  kernel: string;
  /** the blocked variant that ran (base, without format) and its splits: what a tuned table names */
  choice: string;
  status: 'ok' | 'wrong' | 'refused' | 'failed';
  /** flag '_v': whether x was read as vec4s ('vec4') or took the scalar fallback ('scalar'); '' without the flag */
  xv: '' | 'vec4' | 'scalar';
  us?: number;
  tflops?: number;
  /** GPU time of the product's dispatches by timestamps (µs per product) */
  gpu_us?: number;
  max_rel_err?: number;
  reason?: string;
  phase: number;
}

const be: WebGpuBackend = await createWebGpuBackend({ kernels: 'tiled', gpuCores: cores, profile: stamps });
const canStamp = stamps && be.rt.device.features.has('timestamp-query');
be.fuse = false;
const dev = be.rt.device;
const sgFixed = be.rt.subgroupFixed;
log(`x in the ${xPool} pool; backend ${be.name}, kernels ${be.kernels}; subgroups ≤ ${be.rt.subgroupMax} (fixed ${sgFixed || 'no'}), workgroup memory ${be.rt.maxWorkgroupStorage} B; f32 subgroup matrices ${be.matrixGemm ? 'on' : 'off'}; budget ${budget} s`);

const shapes: Shape[] = [];
for (const M of Ms) {
  for (const [what, K, N] of sizes.flatMap((z) => SHAPE_SETS[z]).filter(([w]) => only.length === 0 || only.some((o) => w.includes(o)))) {
    const xs = rand(M * K, K * 31 + N);
    const xc = be.fromHost(xs, [M, K]);
    // in the activation pool, as a model's x (×1 is exact)
    const x = xPool === 'activations' ? be.scale(xc, 1) : xc;
    if (x !== xc) xc.dispose();
    const w = be.fromHost(rand(N * K, N * 17 + K), [N, K], { matrix: true });
    const rows = [...new Set([...Array.from({ length: Math.min(M, 40) }, (_, i) => (i * 61) % M), M - 1])].sort((a, b) => a - b);
    shapes.push({ what, M, K, N, key: tunedKeys(M, K, N, 'f32').at(-1)!, xs, x, w, rows, ref: null, results: [], xvScalar: false });
  }
}
if (shapes.length === 0) throw new Error(`--shapes ${only.join(',')}: no shape of --sizes ${sizes.join(',')} matches`);

/** the backend set up for a candidate: 'tiled', 'sgmat', 'blocked' (its plan) or a blocked base[@S] */
function choose(cand: string): void {
  be.blockedConfig = undefined;
  be.blockedSplits = undefined;
  if (cand === 'tiled' || cand === 'sgmat') {
    be.gemm = cand;
    return;
  }
  be.gemm = 'blocked';
  if (cand === 'blocked') return;
  const [b, s] = cand.split('@');
  be.blockedConfig = b;
  be.blockedSplits = s === undefined ? undefined : Number(s);
}

/** a device-side run inside GPU error scopes: a validation / internal / out-of-memory error becomes an exception */
async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  dev.pushErrorScope('out-of-memory');
  dev.pushErrorScope('internal');
  dev.pushErrorScope('validation');
  let out: T | undefined, thrown: unknown;
  try {
    out = await fn();
  } catch (e) {
    thrown = e;
  }
  const errs = [];
  for (let i = 0; i < 3; i++) errs.push(await dev.popErrorScope());
  if (thrown !== undefined) throw thrown;
  const e = errs.filter((x) => x);
  if (e.length) throw new Error(e.map((x) => x!.message.split('\n')[0]).join('; '));
  return out as T;
}

/** the checked rows of a product, gathered on the device (the embedding gather) and read at once */
async function readRows(s: Shape, y: Tensor): Promise<Float32Array> {
  const g = be.embedding(y, Int32Array.from(s.rows));
  try {
    return await be.read(g);
  } finally {
    g.dispose();
  }
}

/** float64 host rows of x·wᵀ (the reference's own check) */
function hostRow(s: Shape, w: Float32Array, r: number): Float64Array {
  const o = new Float64Array(s.N);
  for (let n = 0; n < s.N; n++) {
    let a = 0;
    for (let k = 0; k < s.K; k++) a += s.xs[r * s.K + k] * w[n * s.K + k];
    o[n] = a;
  }
  return o;
}

const refused: { config: string; reason: string }[] = [];
let configsRun = 0;
let lastWrite = performance.now();
let stopped = '';

/** run one candidate on some shapes (each once): checked, then timed; never throws */
async function runCand(cand: string, on: Shape[], phase: number): Promise<void> {
  if (stopped) return;
  if (cand !== 'tiled' && cand !== 'blocked' && cand !== 'sgmat') {
    const [b] = cand.split('@');
    try {
      const c = parseBlocked((BLOCKED_CONFIGS[b] ?? b) + 'f');
      const why = blockedDeviceError(c, be.rt.maxWorkgroupStorage, sgFixed);
      if (why) {
        refused.push({ config: cand, reason: why });
        return;
      }
    } catch (e) {
      refused.push({ config: cand, reason: (e as Error).message });
      return;
    }
  }
  const vx = /_v(_|@|$)/.test(cand);
  const todo = on.filter((s) => !s.results.some((r) => r.config === cand) && !(vx && s.xvScalar));
  if (todo.length === 0) return;
  if (configsRun >= maxConfigs) {
    stopped = `--max-configs ${maxConfigs}`;
    return;
  }
  configsRun++;
  // the JSON so far every few seconds: a sweep cut off from outside still leaves its results
  if (jsonPath && performance.now() - lastWrite > 5000) {
    writeFileSync(jsonPath, JSON.stringify(report(false), null, 1));
    lastWrite = performance.now();
  }
  for (const s of todo) {
    if (elapsed() > budget) {
      stopped = `budget (${budget} s)`;
      return;
    }
    choose(cand);
    const res: Result = { config: cand, kernel: '', choice: cand, status: 'ok', xv: '', phase };
    s.results.push(res);
    try {
      const k = be.gemmKernel(s.M, s.N, false, s.K, s.w.storage as Store);
      res.kernel = k.name;
      if (k.variant && /^\d+x/.test(k.variant)) res.choice = k.variant.replace(/[fbxq]s?$/, '') + (k.splits > 1 ? `@${k.splits}` : '');
      else if (cand === 'sgmat' && !k.name.startsWith('subgroup')) res.choice = 'tiled';
      const XV = new Set<number>();
      const got = await guarded(async () => {
        const record = be.rt.record.bind(be.rt);
        be.rt.record = (d) => {
          if (d.spec === MATMUL_BLOCKED && parseBlocked(d.variant).opts?.vx) XV.add(d.params[8]);
          record(d);
        };
        let y: Tensor;
        try {
          y = be.linear(s.x, s.w, null);
        } finally {
          be.rt.record = record;
        }
        const r = await readRows(s, y);
        y.dispose();
        return r;
      });
      res.xv = XV.size === 0 ? '' : XV.has(1) ? 'vec4' : 'scalar';
      if (res.xv === 'scalar') s.xvScalar = true;
      if (!s.ref) {
        // the first candidate (tiled) is the reference: its first, middle and last checked rows against float64
        const w = rand(s.N * s.K, s.N * 17 + s.K);
        let e = 0;
        for (const i of [0, s.rows.length >> 1, s.rows.length - 1]) e = Math.max(e, maxRelErr(got.subarray(i * s.N, (i + 1) * s.N), Float32Array.from(hostRow(s, w, s.rows[i]))));
        if (!(e <= tol)) log(`${s.what}: the reference (${cand}) is ${e.toExponential(2)} from float64 host rows (> ${tol})`);
        s.ref = got;
      }
      res.max_rel_err = maxRelErr(got, s.ref);
      if (!(res.max_rel_err <= tol)) {
        res.status = 'wrong';
        continue;
      }
      const us = await guarded(async () => {
        await be.sync();
        let t = performance.now();
        be.linear(s.x, s.w, null).dispose();
        await be.sync();
        const one = performance.now() - t;
        // reps to fill --trial-ms: from the single product (submit overhead included), then from the last batch
        let reps = Math.max(3, Math.min(1000, Math.ceil(trialMs / Math.max(one, 0.005))));
        let best = Infinity;
        for (let i = 0; i < trials && (i === 0 || elapsed() < budget); i++) {
          await be.sync();
          t = performance.now();
          for (let r = 0; r < reps; r++) be.linear(s.x, s.w, null).dispose();
          await be.sync();
          const per = (performance.now() - t) / reps;
          best = Math.min(best, per);
          reps = Math.max(3, Math.min(2000, Math.ceil(trialMs / Math.max(per, 0.002))));
        }
        if (canStamp) {
          // one more batch, each dispatch timed on the GPU
          const n = Math.min(reps, 50);
          await be.sync();
          be.rt.kernelTimes.clear();
          be.rt.setProfiling(true);
          try {
            for (let r = 0; r < n; r++) be.linear(s.x, s.w, null).dispose();
            await be.sync();
          } finally {
            be.rt.setProfiling(false);
          }
          res.gpu_us = ([...be.rt.kernelTimes.values()].reduce((a, v) => a + v.ms, 0) / n) * 1000;
        }
        return best * 1000;
      });
      res.us = us;
      res.tflops = (2 * s.M * s.N * s.K) / (us * 1e-6) / 1e12;
    } catch (e) {
      res.status = 'failed';
      res.reason = (e as Error).message.split('\n')[0].slice(0, 300);
    }
  }
}

const okOf = (s: Shape) => s.results.filter((r) => r.status === 'ok' && r.us !== undefined).sort((a, b) => a.us! - b.us!);
const baseOf = (cand: string) => cand.split('@')[0];

// baselines and --configs first (the tiled kernel is every shape's reference)
const baselines = ['tiled', 'blocked', ...(be.matrixGemm ? ['sgmat'] : [])];
for (const c of [...baselines, ...extra]) await runCand(c, shapes, 0);

// (1) every tile at BK 16 and 8, no flags, the plan's split
const phase1 = TILES.flatMap((t) => [16, 8].map((bk) => tileBase(t, bk)));
if (phases.includes('1')) for (const c of phase1) await runCand(c, shapes, 1);

// (2) per shape, its 3 best tiles of phase 1: every flag, the other BKs (plain and _v), and 1/2/4 splits where the grid is small
if (phases.includes('2') && !stopped) {
  const want = new Map<string, Shape[]>();
  for (const s of shapes) {
    const best = [...new Set(okOf(s).filter((r) => r.phase === 1).map((r) => baseOf(r.config)))].slice(0, 3);
    for (const b of best) {
      const m = BLOCKED_BASE.exec(b)!;
      const [bm, bn, bk, tm, tn] = m.slice(1, 6).map(Number);
      const cands = FLAGS.map((f) => b + f);
      for (const k of [8, 16, 32].filter((k) => k !== bk)) cands.push(tileBase([bm, bn, tm, tn], k), tileBase([bm, bn, tm, tn], k) + '_v');
      if (Math.ceil(s.M / bm) * Math.ceil(s.N / bn) < 2 * cores) for (const sp of [1, 2, 4]) cands.push(`${b}@${sp}`, `${b}_v@${sp}`);
      for (const c of cands) want.set(c, [...(want.get(c) ?? []), s]);
    }
  }
  for (const [c, on] of want) await runCand(c, on, 2);
}

// (3) the rest of the cross product, on every shape
if (phases.includes('3') && !stopped) {
  for (const f of ['', ...FLAGS]) for (const bk of [16, 8, 32]) for (const t of TILES) await runCand(tileBase(t, bk) + f, shapes, 3);
}

// ---- report ----------------------------------------------------------------------------------------------------
/** the ranked tables (printed with `print`) and the JSON (with the tuned table) of what has run so far */
function report(print: boolean): Record<string, unknown> {
  const say = print ? (t: string) => console.log(t) : () => {};
  const tuned: Record<string, string> = {};
  const summary = shapes.map((s) => {
    const ok = okOf(s);
    const tiled = s.results.find((r) => r.config === 'tiled' && r.status === 'ok');
    const best = ok[0];
    const bestBlocked = ok.find((r) => /^\d+x/.test(r.choice));
    const gain = tiled?.us && bestBlocked?.us ? tiled.us / bestBlocked.us : undefined;
    tuned[s.key] = bestBlocked && (!tiled || (gain !== undefined && gain > 1 + margin)) ? bestBlocked.choice : 'tiled';
    const gflop = (2 * s.M * s.N * s.K) / 1e9;
    say(`\n${s.what}  M=${s.M} K=${s.K} N=${s.N} (${gflop.toFixed(2)} GFLOP; key ${s.key}): ${ok.length} ranked, ${s.results.filter((r) => r.status === 'wrong').length} wrong, ${s.results.filter((r) => r.status === 'failed').length} failed → ${tuned[s.key]}${gain ? ` (${gain.toFixed(3)}× tiled)` : ''}`);
    ok.forEach((r, i) => {
      if (i < top || baselines.includes(r.config)) say(`  ${String(i + 1).padStart(3)}. ${r.config.padEnd(26)} ${r.kernel.padEnd(40)} ${r.us!.toFixed(1).padStart(9)} µs${r.gpu_us !== undefined ? ` (GPU ${r.gpu_us.toFixed(1)})` : ''} ${r.tflops!.toFixed(2).padStart(6)} TFLOP/s ${tiled?.us ? (tiled.us / r.us!).toFixed(3) : '  —  '}× tiled  err ${r.max_rel_err!.toExponential(1)}  (phase ${r.phase}${r.xv ? `, x ${r.xv}` : ''})`);
    });
    for (const r of s.results.filter((r) => r.status !== 'ok')) say(`   ${r.status.toUpperCase()} ${r.config}: ${r.reason ?? `max rel err ${r.max_rel_err?.toExponential(2)} > ${tol}`}`);
    return { shape: s.what, M: s.M, K: s.K, N: s.N, key: s.key, gflop, best: best?.config, tuned: tuned[s.key], gain_vs_tiled: gain, results: [...ok, ...s.results.filter((r) => r.status !== 'ok' || r.us === undefined)] };
  });
  say(`\nconfigurations run: ${configsRun} in ${elapsed().toFixed(1)} s${stopped ? ` (stopped: ${stopped})` : ''}; refused ${refused.length}`);
  say(`tuned table (gemmTuned / MAMBA_TS_WEBGPU_GEMM_TUNED): ${JSON.stringify(tuned)}`);
  return { bench: 'gemm-sweep', backend: be.name, date: new Date().toISOString(), done: print, x_pool: xPool, timestamps: canStamp, budget_s: budget, elapsed_s: elapsed(), stopped: stopped || null, configs_run: configsRun, subgroup_fixed: sgFixed, workgroup_bytes: be.rt.maxWorkgroupStorage, trial_ms: trialMs, trials, tol, margin, tuned, shapes: summary, refused };
}
if (jsonPath) {
  writeFileSync(jsonPath, JSON.stringify(report(true), null, 1));
  log(`wrote ${jsonPath}`);
} else report(true);
for (const s of shapes) {
  s.x.dispose();
  s.w.dispose();
}
be.destroy();
