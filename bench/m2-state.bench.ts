/**
 * The Mamba-2 decode step's SSM state against this machine's memory (issue 18, session 34): one layer's in-place SSD
 * step (ssd_scan with a state: 24 heads × 64 × 128 f32 at mamba2-130m, 786 KB read and written) over a pool of
 * states larger than the last-level cache, beside two probes over the same bytes — a read-only stream (stream_sum)
 * and a read+write stream (stream_rw: v = a·v + b in place, each line read once and written back once, the state's
 * traffic) — and the same step hot (one state, in L2). One thread.
 *
 *   node dist/bench/m2-state.bench.js [--reps 7] [--pool-mb 160] [--variants probe,rw,ssd,ssd:4096,hot,hot:4096]
 *
 * ssd:BYTES / hot:BYTES: the step touching the rows BYTES on meanwhile (ssdTouch, assembly/scan.ts).
 *
 * GB/s count the state's bytes once for `probe` and twice (read + written) for `rw`, `ssd` and `hot`. Each step's
 * x, B, C, Δ are fixed (their few KB stay in L1); what varies is where the state comes from.
 */
import { arg, listArg } from './options.js';
import { interleaved, median } from './report.js';
import { fillF32, log, openPool, streamFooter, streamHeader } from './stream-pool.js';

const reps = Number(arg('reps', '7'));
const poolMb = Number(arg('pool-mb', '160'));
/** probe, rw, ssd (the in-place step as decode runs it), hot; ssd:BYTES / hot:BYTES: with ssdTouch = BYTES */
type V = string;
const variants = listArg('variants', 'probe,rw,ssd,ssd:2048,ssd:4096,ssd:8192,hot,hot:4096');
const touchOf = (v: V): number => {
  const m = /^(ssd|hot)(?::(\d+))?$/.exec(v);
  if (!m && v !== 'probe' && v !== 'rw') throw new Error(`--variants: ${v} is not one of probe, rw, ssd[:BYTES], hot[:BYTES]`);
  return m && m[2] ? Number(m[2]) : 0;
};
variants.forEach(touchOf);

const nh = 24, hd = 64, G = 1, N = 128;
const stateB = nh * hd * N * 4;

streamHeader('The Mamba-2 decode step\'s SSM state against the memory probes (bench/m2-state.bench.ts)',
  `one thread; a pool of ${poolMb} MiB of states of ${nh} × ${hd} × ${N} f32 (${(stateB / 1e6).toFixed(3)} MB), ${reps} rounds, variants interleaved`);

const { rt, poolB, pool } = await openPool(1, poolMb);
const k = rt.kernels;
fillF32(rt, pool, poolB + 4096);
const count = Math.floor(poolB / stateB);
const passStates = count * stateB;
const W = nh * hd;
const small = rt.heap.alloc(4 * (W + 2 * G * N + 2 * nh + W + 64));
const x = small, B = x + W * 4, C = B + G * N * 4, dt = C + G * N * 4, A = dt + nh * 4, y = A + nh * 4, out = y + W * 4;
{
  const v = rt.f32(x, W + 2 * G * N);
  for (let i = 0; i < v.length; i++) v[i] = Math.sin(i) * 0.5;
  rt.f32(dt, nh).fill(0.05);
  rt.f32(A, nh).fill(-1);
}
/** the state multiplies by exp(Δ A) < 1 each step: rescale the pool now and then so the values stay normal */
const ssdPass = (hot: boolean): void => {
  for (let c = 0; c < count; c++) {
    const s = hot ? pool : pool + c * stateB;
    k.ssd_scan(x, dt, A, B, C, 0, s, y, 1, 1, nh, hd, G, N, 0, nh);
  }
};
const onePass = (v: V): void => {
  if (v === 'probe') k.stream_sum(pool, out, passStates / 4, 0, passStates / 4);
  else if (v === 'rw') k.stream_rw(pool, 1, 0, 0, passStates / 4);
  else {
    k.set_ssd_touch(touchOf(v), 0, 1);
    ssdPass(v.startsWith('hot'));
    k.set_ssd_touch(0, 0, 1);
  }
};
const bytes = (v: V): number => (v === 'probe' ? passStates : 2 * passStates);

const wall = new Map<string, number[]>(), cpu = new Map<string, number[]>();
interleaved(variants, reps, onePass, { wall, cpu }, String, () => fillF32(rt, pool, poolB));
const gb = (v: V, ms: number): number => bytes(v) / ms / 1e6;
const rwMed = wall.has('rw') ? median(wall.get('rw')!) : NaN;
log('');
log('| variant | µs per layer (median wall) | GB/s wall (median) | GB/s wall (best) | GB per CPU-s (median) | ÷ read+write probe (wall) |');
log('|---|---:|---:|---:|---:|---:|');
for (const v of variants) {
  const w = wall.get(v)!, c = cpu.get(v)!;
  const perLayer = (median(w) / count) * 1000;
  const ratio = v === 'probe' ? '—' : (rwMed / median(w)).toFixed(2);
  log(`| ${v} | ${perLayer.toFixed(1)} | ${gb(v, median(w)).toFixed(1)} | ${gb(v, Math.min(...w)).toFixed(1)} | ${gb(v, median(c)).toFixed(1)} | ${ratio} |`);
}
streamFooter();
