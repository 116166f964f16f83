/**
 * Decode on the wasm backend with its decode-time options on and off (issue 18), interleaved in one process so that
 * a busy machine slows every variant alike: one model per (arch, dtype), random weights (`mamba-ts bench`'s presets),
 * a short prompt, then --gen greedy steps, timed per variant, --reps rounds (the order of the variants alternates
 * between rounds). Reports tok/s (min and median of the rounds), CPU time per token (all threads) and the ratio of
 * each variant's median to the first's.
 *
 * Checks its result: every variant must pick the same tokens as the first variant with the same prompt, with logits
 * equal to the bit where both read logits (the options only change when weights are fetched or where the argmax is
 * taken, not what is computed); a mismatch ends the run with an error.
 *
 *   node dist/bench/wasm-decode.bench.js [--archs mamba,mamba2] [--dtypes f32,q8] [--threads 2] [--gen 64] [--reps 5]
 *        [--prompt 16] [--variants base,prefetch] [--ops] [--js]
 *   node dist/bench/wasm-decode.bench.js --kernels
 *
 * --js: every wasm kernel a no-op during the timed decode steps (the same token fed at every step): what is left is the
 * JavaScript of a decode step (model code, op set-up, copies), CPU time per token per variant; nothing is checked.
 *
 * --ops: also a table per variant of every backend op's calls, wall time and CPU time (all threads) per decode token,
 * summed over the timed runs (`OpProfile`: each outermost backend call timed; the runs are then a little slower).
 *
 * --kernels: the fused decode step kernels of one 130m layer and their parts on one thread, hot in cache, timed
 * alone (min and quartile of 1500 calls; a shared machine inflates the quartile, rarely the min): where the
 * per-layer fixed cost of decode goes.
 *
 * Variants: base = the backend's defaults (no prefetch during the fused step, no split governor); or joined by '+':
 * prefetch = out_proj's rows (all of each thread's) touched while the fused step's scan runs
 * (WasmBackendOptions.stepPrefetch), prefetch:BYTES = at most BYTES per thread; adaptive = calls run on one thread
 * while the workers run late (the runtime's SplitGovernor, MAMBA_TS_WASM_ADAPTIVE=1); argmax = each step through
 * `advanceArgmax` (the LM head and the argmax in one wasm op: no logits copied out, no argmax in JavaScript; what
 * `generate`'s greedy path and `mamba-ts bench` use) instead of `advance` + argmax in JS; prompt:N = this variant's
 * prefill is N tokens (default --prompt); gc = a full garbage collection after the prefill (node --expose-gc);
 * separate = a Transformer layer's q/k/v and an MLP's gate/up products as one wasm call each (the path before
 * `linearMany`, WasmBackendOptions.fuseProducts = false); attn-ops = an attention layer's decode as its ops (q/k/v, rope,
 * attention, o_proj: the path before `attentionDecode`, WasmBackendOptions.attnLayer = false); split-in = a Mamba layer's in_proj as its own call, then its
 * step and out_proj as one (the path before `mamba1Layer` / `mamba2Layer`, WasmBackendOptions.stepIn = false);
 * split-out = in_proj, the step and out_proj as three calls (before `mamba1StepOut` / `mamba2StepOut`, stepOut = false);
 * four-barriers = a Mamba-2 layer's one call with the four barriers of before (WasmBackendOptions.m2TwoBarriers = false);
 * early-bc = the two-barrier call with in_proj's B/C rows first and a split-phase barrier after it (WasmBackendOptions.m2EarlyBC);
 * ssd-touch:BYTES = the Mamba-2 step's SSD touching its state BYTES ahead (runtime.ssdTouch; 0: off);
 * layer-calls = a Mamba model's decode step as a call per layer with the norm and add ops between them, the LM head its
 * own call (before `decodeStack`: WasmBackendOptions.decodeOneCall = false); products-only = the one call with each
 * layer's in_proj and out_proj and no step (`stackParts` 1: the weight streaming and barriers alone; the same token fed at
 * every step, nothing checked); attn-products-only = the one call with each attention sublayer's q/k/v and o_proj
 * products and barrier but no RoPE, cache append or attention (`stackParts` 2; the same token fed, nothing checked);
 * touch-state = a Mamba-2 layer's q8 in_proj touches its SSM state while it runs (WasmBackendOptions.touchState);
 * gemv-rows4 = the f32 matrix-vector kernel before issue 18's fix (runtime.gemvF32 = 'rows4'; f32 weights only);
 * q8-seq / q8-rows4 = the q8 matrix-vector kernel one row at a time / the one before session 32 (runtime.gemvQ8 = 'seq' /
 * 'rows4': 4 adjacent rows at once; q8 weights only; the default is 'lean' since session 34); q8-quarters = 'quarters', the
 * default of sessions 32–33;
 * kv:FMT = the state's attention KV caches in FMT (createState's kvCache: f32, bf16, f16, q8), checked against the first
 * variant with the same prompt and format; attn:SHAPE = the decode attention kernel's loop shape (attnDecode: pipe,
 * the default since session 33; regs; rows, the default before; heads4); f16-widen = an f16 KV cache read with the
 * conversion of before session 34 (WasmBackendOptions.f16KvDecode 'widen'; with kv:f16); attn-heads = a decode step's
 * attention divided among the threads by KV heads instead of by keys (WasmBackendOptions.attnDecodeBy 'heads').
 */
import { WasmBackend, type AttnDecode } from '../src/backend/wasm/index.js';
import { SSD_TOUCH_DEFAULT, WasmRuntime } from '../src/backend/wasm/runtime.js';
import { argmax } from '../src/generate/sampling.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';
import { KV_CACHE_FORMATS, type KvCacheDType, type WeightDType } from '../src/tensor/dtype.js';
import os from 'node:os';
import { loadLine, machineInfo, machineLine, median } from './report.js';
import { OpProfile } from '../src/cli/op-profile.js';

/** WasmBackendOptions.attnDecode's values (the attn:SHAPE variants) */
const ATTN_SHAPES: AttnDecode[] = ['pipe', 'regs', 'rows', 'heads4'];

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(
    'Usage: node dist/bench/wasm-decode.bench.js [--archs mamba,mamba2] [--dtypes f32,q8] [--threads 2] [--gen 64]\n' +
    '       [--reps 5] [--prompt 16] [--variants base,prefetch] [--ops] [--js]\n\n' +
    'Decode tok/s on the wasm backend, variants interleaved in one process; checks that every variant decodes the same\n' +
    'tokens and logits as the first. Variants: base (defaults), or joined by +: prefetch (out_proj touched during the\n' +
    'fused decode step), prefetch:BYTES (at most BYTES of it per thread), adaptive (one thread while the workers run late),\n' +
    'argmax (advanceArgmax: LM head + argmax in one wasm op), prompt:N (prefill N tokens), gc (collect garbage after the\n' +
    'prefill; needs node --expose-gc), separate (q/k/v and gate/up as one call each, as before linearMany),\n' +
    'attn-ops (an attention layer\'s decode as its ops, as before attentionDecode: WasmBackendOptions.attnLayer = false),\n' +
    'split-in (a Mamba layer\'s in_proj its own call, then the step with out_proj: as before mamba1Layer / mamba2Layer),\n' +
    'split-out (in_proj, the step, out_proj as three calls, as before mamba1StepOut / mamba2StepOut),\n' +
    'four-barriers (a Mamba-2 layer\'s one call with four barriers, as before m2TwoBarriers),\n' +
    'early-bc (the two-barrier call with in_proj\'s B/C rows first, a split-phase barrier after it: m2EarlyBC),\n' +
    'ssd-touch:BYTES (the Mamba-2 SSD step touching its state BYTES ahead: runtime.ssdTouch, 0 off),\n' +
    'layer-calls (a Mamba model\'s decode step as a call per layer, norms and adds as ops: decodeOneCall = false),\n' +
    'products-only (the one call with in_proj and out_proj but no step per layer: weight streaming and barriers alone),\n' +
    'touch-state (Mamba-2 q8: in_proj touches the layer\'s SSM state meanwhile; WasmBackendOptions.touchState),\n' +
    'gemv-rows4 (the f32 matrix-vector kernel before issue 18\'s fix: runtime.gemvF32 = \'rows4\'),\n' +
    'q8-seq, q8-rows4 (the q8 matrix-vector kernel one row at a time / the one before session 32, 4 adjacent rows at\n' +
    'once: runtime.gemvQ8 = \'seq\' / \'rows4\'; the default is \'lean\'), q8-quarters (\'quarters\', the default before),\n' +
    'kv:FMT (attention KV caches in FMT: f32, bf16, f16, q8; tokens checked against the first variant with that format),\n' +
    'attn:SHAPE (the decode attention kernel\'s loop shape, WasmBackendOptions.attnDecode: pipe (default), regs, rows, heads4),\n' +
    'f16-widen (an f16 KV cache read with the conversion of before session 34: f16KvDecode \'widen\'; with kv:f16),\n' +
    'attn-heads (the attention half divided among the threads by KV heads, not keys: attnDecodeBy \'heads\').\n' +
    'Archs: mamba, mamba2, hybrid, llama.\n',
  );
  process.exit(0);
}
if (argv.includes('--kernels')) {
  kernelsBench();
  process.exit(0);
}
const arg = (name: string, dflt: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : dflt;
};
const int = (name: string, dflt: number, min: number): number => {
  const v = Number(arg(name, String(dflt)));
  if (!Number.isInteger(v) || v < min) throw new Error(`--${name}: expected an integer >= ${min}, got "${arg(name, '')}"`);
  return v;
};
const archs = arg('archs', 'mamba,mamba2').split(',');
const dtypes = arg('dtypes', 'f32,q8').split(',') as WeightDType[];
const threads = int('threads', 2, 1);
const gen = int('gen', 64, 1);
const reps = int('reps', 5, 1);
const prompt = int('prompt', 16, 1);
const variants = arg('variants', 'base,prefetch').split(',');
const opsTable = argv.includes('--ops');
const jsOnly = argv.includes('--js');
for (const a of archs) if (!PRESETS[`${a}-130m`]) throw new Error(`--archs: no preset ${a}-130m`);
for (const d of dtypes) if (!['f32', 'f16', 'bf16', 'q8'].includes(d)) throw new Error(`--dtypes: unknown weight format ${d}`);

interface Variant { argmax: boolean; prompt: number; gc: boolean; fixed: boolean; kv: KvCacheDType }
/** sets the backend's options for variant `v` (base, or '+'-joined parts: see --help) and returns the loop's */
function apply(be: WasmBackend, v: string): Variant {
  be.stepPrefetch = 0;
  be.runtime.governor.enabled = false;
  be.fuseProducts = true;
  be.attnLayer = true;
  be.stepOut = true;
  be.touchState = false;
  be.stepIn = true;
  be.m2TwoBarriers = true;
  be.m2EarlyBC = false;
  be.decodeOneCall = true;
  be.stackParts = 0;
  be.runtime.gemvF32 = 'seq';
  be.runtime.gemvQ8 = 'lean';
  be.runtime.ssdTouch = SSD_TOUCH_DEFAULT;
  be.attnDecode = 'pipe';
  be.f16KvDecode = 'shift';
  be.attnDecodeBy = 'keys';
  const out: Variant = { argmax: false, prompt, gc: false, fixed: false, kv: 'f32' };
  if (v === 'base') return out;
  const num = (part: string, at: number, min: number): number => {
    const x = Number(part.slice(at));
    if (!Number.isInteger(x) || x < min) throw new Error(`--variants: ${part}: expected an integer >= ${min} after the colon`);
    return x;
  };
  for (const part of v.split('+')) {
    if (part === 'prefetch') be.stepPrefetch = 2 ** 31;
    else if (part.startsWith('prefetch:')) be.stepPrefetch = num(part, 9, 0);
    else if (part === 'adaptive') be.runtime.governor.enabled = true;
    else if (part === 'argmax') out.argmax = true;
    else if (part === 'separate') be.fuseProducts = false;
    else if (part === 'attn-ops') be.attnLayer = false;
    else if (part === 'split-out') be.stepOut = false;
    else if (part === 'touch-state') be.touchState = true;
    else if (part === 'split-in') be.stepIn = false;
    else if (part === 'four-barriers') be.m2TwoBarriers = false;
    else if (part === 'early-bc') be.m2EarlyBC = true;
    else if (part.startsWith('ssd-touch:')) be.runtime.ssdTouch = num(part, 10, 0);
    else if (part === 'layer-calls') be.decodeOneCall = false;
    else if (part === 'products-only') {
      be.stackParts = 1;
      out.fixed = true;
    } else if (part === 'attn-products-only') {
      be.stackParts = 2;
      out.fixed = true;
    }
    else if (part === 'gemv-rows4') be.runtime.gemvF32 = 'rows4';
    else if (part === 'q8-rows4') be.runtime.gemvQ8 = 'rows4';
    else if (part === 'q8-seq') be.runtime.gemvQ8 = 'seq';
    else if (part === 'q8-quarters') be.runtime.gemvQ8 = 'quarters';
    else if (part === 'f16-widen') be.f16KvDecode = 'widen';
    else if (part === 'attn-heads') be.attnDecodeBy = 'heads';
    else if (part.startsWith('attn:')) {
      const shape = part.slice(5);
      if (!ATTN_SHAPES.includes(shape as AttnDecode)) throw new Error(`--variants: ${part}: the decode attention shape must be one of ${ATTN_SHAPES.join(', ')}`);
      be.attnDecode = shape as AttnDecode;
    }
    else if (part.startsWith('prompt:')) out.prompt = num(part, 7, 1);
    else if (part.startsWith('kv:')) {
      const f = part.slice(3);
      if (!(KV_CACHE_FORMATS as readonly string[]).includes(f)) throw new Error(`--variants: ${part}: the KV cache format must be one of ${KV_CACHE_FORMATS.join(', ')}`);
      out.kv = f as KvCacheDType;
    }
    else if (part === 'gc') {
      if (typeof (globalThis as { gc?: () => void }).gc !== 'function') throw new Error('--variants: gc needs node --expose-gc');
      out.gc = true;
    } else throw new Error(`--variants: unknown variant ${v} (base, or joined by '+': prefetch, prefetch:BYTES, adaptive, argmax, separate, attn-ops, split-in, split-out, four-barriers, early-bc, ssd-touch:BYTES, layer-calls, products-only, attn-products-only, touch-state, gemv-rows4, q8-seq, q8-rows4, q8-quarters, f16-widen, attn-heads, attn:SHAPE, prompt:N, kv:FMT, gc)`);
  }
  return out;
}

const load0 = os.loadavg();
const lines: string[] = [], opLines: string[] = [];
for (const arch of archs) {
  for (const dtype of dtypes) {
    const be = new WasmBackend({ threads, weights: dtype });
    const name = `${arch}-130m`;
    const lm = buildModel(PRESETS[name], name, new RandomTensorSource(1), { backend: be });
    const wall: Record<string, number[]> = {}, cpuMs: Record<string, number[]> = {}, hand: Record<string, number[]> = {};
    // --ops: every backend op's wall and CPU time over the timed decode runs, per variant
    const prof = opsTable ? new OpProfile(be) : null;
    const opTotals: Record<string, Map<string, { ms: number; cpuMs: number; calls: number }>> = {};
    // per prompt length and KV cache format: the first run's tokens, and the first logits-reading run's last logits
    const refs = new Map<string, { tokens: number[]; logits: Float32Array | null }>();
    for (let r = -1; r < reps; r++) { // r = -1: warm-up, not timed
      const order = r % 2 === 0 ? variants : [...variants].reverse();
      for (const v of order) {
        const o = apply(be, v);
        const ids = Array.from({ length: o.prompt }, (_, i) => (i * 7919 + 13) % lm.vocabSize);
        const s = lm.createState(1, { kvCache: o.kv });
        let l = await lm.advance([ids], s);
        if (o.gc) (globalThis as { gc?: () => void }).gc!();
        const tokens: number[] = [];
        prof?.reset();
        // --js: every kernel a no-op from here (the token fed is fixed: the picks are not computed)
        const rt = be.runtime, run0 = rt.run, team0 = rt.runTeam;
        if (jsOnly) {
          rt.run = () => {};
          rt.runTeam = () => {};
        }
        const h0 = be.runtime.handoffs;
        const c0 = process.cpuUsage(), t0 = performance.now();
        try {
          if (o.argmax) {
            let t = argmax(l.data);
            for (let i = 0; i < gen; i++) {
              tokens.push(t);
              const p = await lm.advanceArgmax!([[t]], s);
              if (!p) throw new Error(`${name} ${dtype}: advanceArgmax is not available on ${be.name}`);
              t = jsOnly || o.fixed ? 13 : p[0];
            }
          } else {
            for (let i = 0; i < gen; i++) {
              const t = jsOnly || o.fixed ? 13 : argmax(l.data);
              tokens.push(t);
              l = await lm.advance([[t]], s);
            }
          }
        } finally {
          rt.run = run0;
          rt.runTeam = team0;
        }
        const ms = performance.now() - t0, cu = process.cpuUsage(c0);
        const handoffs = (be.runtime.handoffs - h0) / gen;
        // the check: same tokens as the first run with this prompt, same last logits (bits) where both read them
        const logits = o.argmax ? null : l.data.slice();
        // (the state's KV caches and SSM states back to the wasm heap now: left to the collector, whose runs the
        // one-call decode's few JavaScript allocations make rare, 20 rounds of 130m states at prompt 512 ran the 4 GiB
        // memory out — session 31)
        s.dispose();
        const refKey = `${o.prompt}/${o.kv}`;
        const ref = refs.get(refKey);
        if (jsOnly || o.fixed) { /* (not the model's numbers: nothing to check) */ } else if (!ref) refs.set(refKey, { tokens, logits });
        else {
          const bad = tokens.findIndex((t, i) => t !== ref.tokens[i]);
          if (bad >= 0) throw new Error(`${name} ${dtype} variant ${v}: token ${bad} is ${tokens[bad]}, the first variant decoded ${ref.tokens[bad]}`);
          if (logits && !ref.logits) ref.logits = logits;
          else if (logits && ref.logits) {
            for (let i = 0; i < logits.length; i++) {
              if (!Object.is(logits[i], ref.logits[i])) throw new Error(`${name} ${dtype} variant ${v}: last logits[${i}] = ${logits[i]}, the first variant's ${ref.logits[i]}`);
            }
          }
        }
        if (r < 0) continue;
        (wall[v] ??= []).push(ms);
        (cpuMs[v] ??= []).push((cu.user + cu.system) / 1000);
        (hand[v] ??= []).push(handoffs);
        if (prof) {
          const m = (opTotals[v] ??= new Map());
          for (const row of prof.rows(ms, (cu.user + cu.system) / 1000)) {
            const e = m.get(row.op) ?? { ms: 0, cpuMs: 0, calls: 0 };
            e.ms += row.ms;
            e.cpuMs += row.cpuMs;
            e.calls += row.calls;
            m.set(row.op, e);
          }
        }
      }
    }
    const base = median(wall[variants[0]]);
    for (const v of variants) {
      const w = wall[v];
      const line = `| ${name} | ${dtype} | ${threads} | ${v} | ${(gen / (Math.max(...w) / 1000)).toFixed(1)} / ${(gen / (median(w) / 1000)).toFixed(1)} / ` +
        `${(gen / (Math.min(...w) / 1000)).toFixed(1)} | ${(median(cpuMs[v]) / gen).toFixed(2)} | ${median(hand[v]).toFixed(1)} | ${(base / median(w)).toFixed(3)}× |`;
      lines.push(line);
      process.stderr.write(line + '\n');
    }
    for (const v of opsTable ? variants : []) {
      // (the profiled runs: each op call also reads the clocks, ~2 µs)
      const n = gen * reps, m = opTotals[v];
      const cpuAll = [...m.values()].reduce((a, e) => a + e.cpuMs, 0);
      opLines.push(`\n${name} ${dtype}, ${threads} thread(s), variant ${v}: per decode token (${reps} × ${gen} steps)\n`);
      opLines.push('| op | calls | wall µs | CPU µs (all threads) | share of CPU |');
      opLines.push('|---|---:|---:|---:|---:|');
      for (const [op, e] of [...m].sort((a, b) => b[1].cpuMs - a[1].cpuMs)) {
        if (e.cpuMs / n < 0.001 && op !== '(outside backend calls)') continue; // (< 1 µs: ops that declined, dispose)
        opLines.push(`| ${op} | ${(e.calls / n).toFixed(0)} | ${((1000 * e.ms) / n).toFixed(0)} | ${((1000 * e.cpuMs) / n).toFixed(0)} | ${((100 * e.cpuMs) / cpuAll).toFixed(1)} % |`);
      }
    }
  }
}
console.log(`\n${machineLine(machineInfo())}; Node ${process.version}; load average ${loadLine(load0)} → ${loadLine(os.loadavg())}`);
console.log(`prompt ${prompt} (unless the variant says), ${gen} greedy decode steps, ${reps} round(s), variants interleaved; ${jsOnly ? 'every kernel a no-op (--js): JavaScript only, nothing checked' : 'every variant decoded the same tokens and logits as the first with its prompt'}\n`);
console.log('| model | weights | threads | variant | decode tok/s (slowest / median / fastest) | CPU ms per token (all threads, median) | hand-offs per token (median) | speed ÷ first variant (medians) |');
console.log('|---|---|---:|---|---:|---:|---:|---:|');
for (const l of lines) console.log(l);
for (const l of opLines) console.log(l);

/** --kernels: one layer's fused decode step kernels (130m shapes) and their parts, one thread, hot */
function kernelsBench(): void {
  const rt = WasmRuntime.get(1);
  const k = rt.kernels;
  let seed = 1;
  const alloc = (n: number, f: (i: number) => number = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 0.2 - 0.1): number => {
    const o = rt.heap.alloc(n * 4);
    const a = rt.f32(o, n);
    for (let i = 0; i < n; i++) a[i] = f(i);
    return o;
  };
  const rows: string[] = [];
  const time = (name: string, f: () => void): void => {
    const t: number[] = [];
    for (let r = 0; r < 1500; r++) {
      const t0 = performance.now();
      f();
      t.push(performance.now() - t0);
    }
    t.sort((a, b) => a - b);
    rows.push(`| ${name} | ${(t[0] * 1000).toFixed(1)} | ${(t[375] * 1000).toFixed(1)} |`);
  };
  {
    const Dm = 1536, K = 4, R = 48, N = 16, P = R + 2 * N;
    const xz = alloc(2 * Dm), convW = alloc(Dm * K), convB = alloc(Dm), convState = alloc(Dm * K), xProj = alloc(P * Dm), dtProj = alloc(Dm * R);
    const dtBias = alloc(Dm, () => -3), A = alloc(Dm * N, (i) => -((i % N) + 1)), D = alloc(Dm), ssm = alloc(Dm * N), y = alloc(Dm);
    const scratch = alloc(2 * Dm + P + R), counter = alloc(16, () => 0);
    const ctr = new Int32Array(rt.memory.buffer, counter, 1);
    const u = alloc(Dm), dbc = alloc(P), delta = alloc(Dm, () => 0.5), z = alloc(Dm);
    time('mamba-130m: mamba1_step (conv, x_proj, dt_proj, scan, gate)', () => {
      ctr[0] = 0;
      k.mamba1_step(xz, convW, convB, convState, xProj, dtProj, dtBias, A, D, ssm, y, scratch, counter, 0, 0, 0, 0, 0, 0, 1, Dm, K, R, N, 0, 0, 0, 0, 0, 0, 0, 1);
    });
    time('  causal_conv1d step, 1536 channels, K = 4', () => k.causal_conv1d(xz, convW, convB, convState, u, 1, 1, Dm, K, 1, 0, Dm));
    time('  x_proj 80 × 1536 (f32)', () => k.linear_f32(u, xProj, 0, dbc, 1, Dm, P, 0, P));
    time('  dt_proj 1536 × 48 (f32)', () => k.linear_f32(dbc, dtProj, 0, delta, 1, R, Dm, 0, Dm));
    time('  selective_scan step, 1536 × 16 states', () => k.selective_scan(u, delta, A, dbc, dbc, D, z, dtBias, ssm, y, 1, 1, Dm, N, 1, 0, Dm));
  }
  {
    const nh = 24, hd = 64, G = 1, N = 128, K = 4, W = nh * hd, convDim = W + 2 * G * N;
    const zx = alloc(W + convDim + nh), convW = alloc(convDim * K), convB = alloc(convDim), cs = alloc(convDim * K), xbc = alloc(convDim);
    const dt = alloc(nh, () => 0.1), A = alloc(nh, () => -1), D = alloc(nh), st = alloc(nh * hd * N), ys = alloc(W), nw = alloc(W), y = alloc(W);
    const scratch = alloc(convDim + W), counter = alloc(16, () => 0);
    const ctr = new Int32Array(rt.memory.buffer, counter, 1);
    time('mamba2-130m: mamba2_step (conv, SSD step, gated norm)', () => {
      ctr[0] = 0;
      k.mamba2_step(zx, dt, convW, convB, cs, A, D, st, nw, 1e-5, W, y, scratch, counter, 1, nh, hd, G, N, K, 0, 0, 0, 0, 0, 0, 0, 1);
    });
    time('  causal_conv1d step, 1792 channels, K = 4', () => k.causal_conv1d(zx + W * 4, convW, convB, cs, xbc, 1, 1, convDim, K, 1, 0, convDim));
    time('  ssd_scan step, 24 heads × 64 × 128 states', () => k.ssd_scan(xbc, dt, A, xbc + W * 4, xbc + (W + N) * 4, D, st, ys, 1, 1, nh, hd, G, N, 0, nh));
    time('  rms_norm_gated, 1536', () => k.rms_norm_gated(ys, zx, nw, y, W, W, 1e-5, 0, 1));
  }
  console.log(`\n${machineLine(machineInfo())}; Node ${process.version}; load average ${loadLine(os.loadavg())}\n`);
  console.log('| kernel (one layer of decode, 1 thread, hot) | min µs | quartile µs |');
  console.log('|---|---:|---:|');
  for (const r of rows) console.log(r);
}
