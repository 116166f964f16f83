/**
 * Decode on the wasm backend with its decode-time options on and off (issue 18), interleaved in one process so that
 * a busy machine slows every variant alike: one model per (arch, dtype), random weights (`mamba-ts bench`'s presets),
 * a short prompt, then --gen greedy steps, timed per variant, --reps rounds (the order of the variants alternates
 * between rounds). Reports tok/s (min and median of the rounds), CPU time per token (all threads) and the ratio of
 * each variant's median to the first's.
 *
 * Checks its result: every variant must pick the same tokens as the first, with logits equal to the bit (the options
 * only change when weights are fetched, not what is computed); a mismatch ends the run with an error.
 *
 *   node dist/bench/wasm-decode.bench.js [--archs mamba,mamba2] [--dtypes f32,q8] [--threads 2] [--gen 64] [--reps 5]
 *        [--prompt 16] [--variants base,prefetch]
 *
 * Variants: base = the backend's defaults (no prefetch during the fused step, no split governor); or joined by '+':
 * prefetch = out_proj's rows (all of each thread's) touched while the fused step's scan runs
 * (WasmBackendOptions.stepPrefetch), prefetch:BYTES = at most BYTES per thread; adaptive = calls run on one thread
 * while the workers run late (the runtime's SplitGovernor, MAMBA_TS_WASM_ADAPTIVE=1).
 */
import { WasmBackend } from '../src/backend/wasm/index.js';
import { argmax } from '../src/generate/sampling.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';
import type { WeightDType } from '../src/tensor/dtype.js';
import os from 'node:os';
import { loadLine, machineInfo, machineLine, median } from './report.js';

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(
    'Usage: node dist/bench/wasm-decode.bench.js [--archs mamba,mamba2] [--dtypes f32,q8] [--threads 2] [--gen 64]\n' +
    '       [--reps 5] [--prompt 16] [--variants base,prefetch]\n\n' +
    'Decode tok/s on the wasm backend, variants interleaved in one process; checks that every variant decodes the same\n' +
    'tokens and logits as the first. Variants: base (defaults), or joined by +: prefetch (out_proj touched during the\n' +
    'fused decode step), prefetch:BYTES (at most BYTES of it per thread), adaptive (one thread while the workers run late).\n',
  );
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
for (const a of archs) if (!PRESETS[`${a}-130m`]) throw new Error(`--archs: no preset ${a}-130m`);
for (const d of dtypes) if (!['f32', 'f16', 'bf16', 'q8'].includes(d)) throw new Error(`--dtypes: unknown weight format ${d}`);

/** sets the backend's options for variant `v`: base, or '+'-joined prefetch, prefetch:BYTES, adaptive */
function apply(be: WasmBackend, v: string): void {
  be.stepPrefetch = 0;
  be.runtime.governor.enabled = false;
  if (v === 'base') return;
  for (const part of v.split('+')) {
    if (part === 'prefetch') be.stepPrefetch = 2 ** 31;
    else if (part.startsWith('prefetch:') && Number.isFinite(Number(part.slice(9))) && Number(part.slice(9)) >= 0) be.stepPrefetch = Number(part.slice(9));
    else if (part === 'adaptive') be.runtime.governor.enabled = true;
    else throw new Error(`--variants: unknown variant ${v} (base, or joined by '+': prefetch, prefetch:BYTES, adaptive)`);
  }
}

const load0 = os.loadavg();
const lines: string[] = [];
for (const arch of archs) {
  for (const dtype of dtypes) {
    const be = new WasmBackend({ threads, weights: dtype });
    const name = `${arch}-130m`;
    const lm = buildModel(PRESETS[name], name, new RandomTensorSource(1), { backend: be });
    const ids = Array.from({ length: prompt }, (_, i) => (i * 7919 + 13) % lm.vocabSize);
    const wall: Record<string, number[]> = {}, cpuMs: Record<string, number[]> = {};
    let ref: { tokens: number[]; logits: Float32Array } | null = null;
    for (let r = -1; r < reps; r++) { // r = -1: warm-up, not timed
      const order = r % 2 === 0 ? variants : [...variants].reverse();
      for (const v of order) {
        apply(be, v);
        const s = lm.createState(1);
        let l = await lm.advance([ids], s);
        const tokens: number[] = [];
        const c0 = process.cpuUsage(), t0 = performance.now();
        for (let i = 0; i < gen; i++) {
          const t = argmax(l.data);
          tokens.push(t);
          l = await lm.advance([[t]], s);
        }
        const ms = performance.now() - t0, cu = process.cpuUsage(c0);
        // the check: same tokens, same logits (bits) as the first run of the first variant
        if (!ref) ref = { tokens, logits: l.data.slice() };
        else {
          const bad = tokens.findIndex((t, i) => t !== ref!.tokens[i]);
          if (bad >= 0) throw new Error(`${name} ${dtype} variant ${v}: token ${bad} is ${tokens[bad]}, the first variant decoded ${ref.tokens[bad]}`);
          for (let i = 0; i < l.data.length; i++) {
            if (!Object.is(l.data[i], ref.logits[i])) throw new Error(`${name} ${dtype} variant ${v}: last logits[${i}] = ${l.data[i]}, the first variant's ${ref.logits[i]}`);
          }
        }
        if (r < 0) continue;
        (wall[v] ??= []).push(ms);
        (cpuMs[v] ??= []).push((cu.user + cu.system) / 1000);
      }
    }
    const base = median(wall[variants[0]]);
    for (const v of variants) {
      const w = wall[v];
      const line = `| ${name} | ${dtype} | ${threads} | ${v} | ${(gen / (Math.max(...w) / 1000)).toFixed(1)} / ${(gen / (median(w) / 1000)).toFixed(1)} / ` +
        `${(gen / (Math.min(...w) / 1000)).toFixed(1)} | ${(median(cpuMs[v]) / gen).toFixed(2)} | ${(base / median(w)).toFixed(3)}× |`;
      lines.push(line);
      process.stderr.write(line + '\n');
    }
  }
}
console.log(`\n${machineLine(machineInfo())}; Node ${process.version}; load average ${loadLine(load0)} → ${loadLine(os.loadavg())}`);
console.log(`prompt ${prompt}, ${gen} greedy decode steps, ${reps} round(s), variants interleaved; every variant decoded the same tokens and logits\n`);
console.log('| model | weights | threads | variant | decode tok/s (slowest / median / fastest) | CPU ms per token (all threads, median) | speed ÷ first variant (medians) |');
console.log('|---|---|---:|---|---:|---:|---:|');
for (const l of lines) console.log(l);
