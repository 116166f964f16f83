/**
 * The attention op on the wasm backend (assembly/attention.ts) against the TypeScript reference kernel that the
 * wasm backend ran before (CpuBackend.attention), at one attention layer's shapes (llama-130m: 12 heads × 64;
 * hybrid-130m: 12 query / 4 KV heads × 64): decode of one token over a KV cache of C positions, and prefill of a
 * prompt of L tokens. The two run interleaved in one process, so a busy machine slows both alike; the table gives
 * min / median wall milliseconds and the ratio of medians, and the same for the process's CPU time (all threads),
 * which a machine shared with other work inflates less than wall time.
 *
 * With --models, whole models instead (random weights, `mamba-ts bench`'s presets): one prefill of --prompt tokens
 * and --gen decode steps, with attention on the wasm kernels and with the wasm backend's attention swapped back to
 * the TypeScript kernel (what it ran before), alternating in one process; wall and CPU time of each.
 *
 *   node dist/bench/wasm-attention.bench.js [--threads 2] [--reps 5] [--decode 512,2048,8192] [--prefill 512,1024] [--ref-max-prefill 1024]
 *   node dist/bench/wasm-attention.bench.js --models llama-130m,hybrid-130m,mamba-130m [--prompt 512] [--gen 16] [--reps 1]
 *
 * With --kv-cache, decode over KV caches of each format given (the `kvCache` option: f32, bf16, f16, q8), wasm only,
 * the formats interleaved in each rep; each cache made once per context and evicted from the CPU caches (a 64 MiB
 * write) before every timed call, as a model's other layers would; the output of each format against f32's
 * (max |Δ|) as a check:
 *
 *   node dist/bench/wasm-attention.bench.js --kv-cache f32,bf16,f16,q8 [--decode 2048,8192] [--shapes llama-130m,hybrid-130m] [--reps 7]
 */
import { cpu } from '../src/backend/cpu/index.js';
import { WasmBackend } from '../src/backend/wasm/index.js';
import type { Backend } from '../src/backend/backend.js';
import * as ops from '../src/tensor/ops.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { CpuBackend } from '../src/backend/cpu/index.js';
import { argmax } from '../src/generate/sampling.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';
import { loadLine, machineInfo, machineLine, median } from './report.js';
import { DTYPE_BYTES, KV_CACHE_FORMATS, type KvCacheDType } from '../src/tensor/dtype.js';
import * as os from 'node:os';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
};
const threads = Number(arg('threads', '2'));
const reps = Number(arg('reps', '5'));
const decodeCtx = arg('decode', '512,2048,8192').split(',').map(Number);
const prefillLen = arg('prefill', '512,1024').split(',').map(Number);
/** the reference is O(L²) in scalar float64: longer prompts are timed on wasm only */
const refMaxPrefill = Number(arg('ref-max-prefill', '1024'));

const wasm = new WasmBackend({ threads });
const SHAPES = [
  { name: 'llama-130m', Hq: 12, Hkv: 12, hd: 64 },
  { name: 'hybrid-130m', Hq: 12, Hkv: 4, hd: 64 },
];

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    a[i] = (s / 4294967296) * 2 - 1;
  }
  return a;
}

/** one attention call: L new tokens after `past` cached ones; returns wall and CPU milliseconds */
function timeOne(be: Backend, Hq: number, Hkv: number, hd: number, L: number, past: number): [number, number] {
  const cap = past + L;
  const mk = (H: number, n: number, seed: number) => be.fromHost(rand(n * H * hd, seed), [1, n, H, hd]);
  let ck: Tensor | null = null, cv: Tensor | null = null;
  if (past > 0) {
    ck = be.zeros([1, cap, Hkv, hd]);
    cv = be.zeros([1, cap, Hkv, hd]);
    (ck.storage as Float32Array).set(rand(cap * Hkv * hd, 11));
    (cv.storage as Float32Array).set(rand(cap * Hkv * hd, 12));
  }
  const q = mk(Hq, L, 1), k = mk(Hkv, L, 2), v = mk(Hkv, L, 3);
  const c0 = process.cpuUsage(), t0 = performance.now();
  const y = ops.attention({ q, k, v, cacheK: ck, cacheV: cv, pastLen: [past], scale: 1 / Math.sqrt(hd) });
  be.readSync(y);
  const ms = performance.now() - t0, cu = process.cpuUsage(c0);
  for (const t of [q, k, v, y, ck, cv]) t?.dispose();
  return [ms, (cu.user + cu.system) / 1000];
}

const kvArg = arg('kv-cache', '');
if (kvArg) {
  // (q8-scratch: a q8 cache decoded the older way, WasmBackendOptions.q8KvDecode 'scratch')
  const kinds = kvArg.split(',') as Array<KvCacheDType | 'q8-scratch'>;
  for (const k of kinds) if (k !== 'q8-scratch' && !KV_CACHE_FORMATS.includes(k)) throw new Error(`--kv-cache: expected formats among ${KV_CACHE_FORMATS.join(', ')}, q8-scratch, got '${k}'`);
  const shapes = arg('shapes', 'llama-130m').split(',').map((n) => {
    const sh = SHAPES.find((x) => x.name === n);
    if (!sh) throw new Error(`--shapes: expected names among ${SHAPES.map((x) => x.name).join(', ')}, got '${n}'`);
    return sh;
  });
  kvCacheBench(kinds, shapes, arg('decode', '2048,8192').split(',').map(Number));
  await wasm.runtime.close();
  process.exit(0);
}

/** decode over KV caches of each format, interleaved: wall and CPU ms per call, and each format's output against f32's */
function kvCacheBench(kinds: Array<KvCacheDType | 'q8-scratch'>, shapes: typeof SHAPES, contexts: number[]): void {
  const load0 = os.loadavg();
  const flush = new Float32Array(16 << 20); // 64 MiB, written before every timed call (evicts the caches)
  const rows: string[] = [];
  const f = (xs: number[]) => `${Math.min(...xs).toFixed(2)} / ${median(xs).toFixed(2)}`;
  for (const s of shapes) {
    for (const past of contexts) {
      const cap = past + 1, n = cap * s.Hkv * s.hd;
      const kd = rand(n, 11), vd = rand(n, 12);
      const q = wasm.fromHost(rand(s.Hq * s.hd, 1), [1, 1, s.Hq, s.hd]);
      const k = wasm.fromHost(rand(s.Hkv * s.hd, 2), [1, 1, s.Hkv, s.hd]), v = wasm.fromHost(rand(s.Hkv * s.hd, 3), [1, 1, s.Hkv, s.hd]);
      const caches = kinds.map((kv) => ({
        kv,
        ck: wasm.fromHost(kd.slice(), [1, cap, s.Hkv, s.hd], { kvCache: kv === 'q8-scratch' ? 'q8' : kv }),
        cv: wasm.fromHost(vd.slice(), [1, cap, s.Hkv, s.hd], { kvCache: kv === 'q8-scratch' ? 'q8' : kv }),
        wall: [] as number[], cpu: [] as number[], out: null as Float32Array | null,
      }));
      const call = (c: (typeof caches)[number]): Float32Array => {
        wasm.q8KvDecode = c.kv === 'q8-scratch' ? 'scratch' : 'in-place';
        const y = ops.attention({ q, k, v, cacheK: c.ck, cacheV: c.cv, pastLen: [past], scale: 1 / Math.sqrt(s.hd) });
        const o = wasm.readSync(y).slice();
        y.dispose();
        return o;
      };
      for (const c of caches) c.out = call(c); // warm-up, and the output checked
      for (let r = 0; r < reps; r++) {
        for (const c of caches) {
          flush.fill(r + 1);
          const c0 = process.cpuUsage(), t0 = performance.now();
          call(c);
          const ms = performance.now() - t0, cu = process.cpuUsage(c0);
          c.wall.push(ms);
          c.cpu.push((cu.user + cu.system) / 1000);
        }
      }
      const base = caches.find((c) => c.kv === 'f32') ?? caches[0];
      const bytes = (kv: KvCacheDType | 'q8-scratch') => 2 * n * DTYPE_BYTES[kv === 'q8-scratch' ? 'q8' : kv];
      for (const c of caches) {
        let d = 0;
        for (let i = 0; i < c.out!.length; i++) d = Math.max(d, Math.abs(c.out![i] - base.out![i]));
        const gbs = bytes(c.kv) / (median(c.wall) / 1000) / 1e9;
        rows.push(`| ${s.name} (${s.Hq}/${s.Hkv} heads × ${s.hd}) | ${past} | ${c.kv} | ${(bytes(c.kv) / 2 ** 20).toFixed(1)} | ${f(c.wall)} | ` +
          `${(median(base.wall) / median(c.wall)).toFixed(2)}× | ${f(c.cpu)} | ${(median(base.cpu) / median(c.cpu)).toFixed(2)}× | ${gbs.toFixed(1)} | ${d.toExponential(1)} |`);
        process.stderr.write(`${rows[rows.length - 1]}\n`);
      }
      for (const c of caches) {
        c.ck.dispose();
        c.cv.dispose();
      }
      for (const t of [q, k, v]) t.dispose();
    }
  }
  console.log(`\n${machineLine(machineInfo())}; ${wasm.name}; ${reps} reps, min / median ms of one layer's decode attention op; ` +
    `load average ${loadLine(load0)} → ${loadLine(os.loadavg())}\n`);
  console.log(`| shape | context | KV cache | K+V MiB | wall ms | wall speed-up vs ${kinds.includes('f32') ? 'f32' : kinds[0]} | CPU ms (all threads) | CPU speed-up | KV stream GB/s (wall) | max abs diff vs f32 |`);
  console.log('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
}

const models = arg('models', '');
if (models) {
  await modelsBench(models.split(','), Number(arg('prompt', '512')), Number(arg('gen', '16')));
  await wasm.runtime.close();
  process.exit(0);
}

/** whole models: attention on wasm vs the TypeScript kernel, alternating */
async function modelsBench(names: string[], prompt: number, gen: number): Promise<void> {
  const out: string[] = [];
  const wasmAttention = wasm.attention;
  const tsAttention = CpuBackend.prototype.attention;
  for (const name of names) {
    const lm = buildModel(PRESETS[name], name, new RandomTensorSource(1), { backend: wasm });
    const ids = Array.from({ length: prompt }, (_, i) => (i * 7919 + 13) % lm.vocabSize);
    const t: Record<string, number[][]> = { ts: [[], [], [], []], wasm: [[], [], [], []] };
    for (let r = 0; r < reps; r++) {
      for (const which of ['ts', 'wasm'] as const) {
        wasm.attention = which === 'wasm' ? wasmAttention : tsAttention;
        const s = lm.createState(1);
        let c0 = process.cpuUsage(), t0 = performance.now();
        let l = await lm.advance([ids], s);
        let cu = process.cpuUsage(c0);
        t[which][0].push(performance.now() - t0);
        t[which][1].push((cu.user + cu.system) / 1000);
        c0 = process.cpuUsage();
        t0 = performance.now();
        for (let i = 0; i < gen; i++) l = await lm.advance([[argmax(l.data)]], s);
        cu = process.cpuUsage(c0);
        t[which][2].push(performance.now() - t0);
        t[which][3].push((cu.user + cu.system) / 1000);
      }
    }
    wasm.attention = wasmAttention;
    const tok = (ms: number[], n: number) => (n / (median(ms) / 1000)).toFixed(1);
    const [a, b] = [t.ts, t.wasm];
    out.push(`| ${name} | ${tok(a[0], prompt)} → ${tok(b[0], prompt)} | ${(median(a[1]) / median(b[1])).toFixed(2)}× | ` +
      `${tok(a[2], gen)} → ${tok(b[2], gen)} | ${(median(a[3]) / median(b[3])).toFixed(2)}× |`);
    process.stderr.write(`${out[out.length - 1]}\n`);
  }
  console.log(`\n${machineLine(machineInfo())}; ${wasm.name}; prompt ${prompt}, ${gen} decode steps, ${reps} rep(s), medians\n`);
  console.log(`| model | prefill tok/s (wall), TypeScript attention → wasm | prefill CPU time ratio | decode tok/s at ${prompt}+ (wall) | decode CPU time ratio |`);
  console.log('|---|---:|---:|---:|---:|');
  for (const r of out) console.log(r);
}

const rows: string[] = [];
const fmt = (xs: number[]) => `${Math.min(...xs).toFixed(2)} / ${median(xs).toFixed(2)}`;
for (const s of SHAPES) {
  const cases: Array<{ what: string; L: number; past: number; ref: boolean }> = [
    ...decodeCtx.map((c) => ({ what: `decode @ ${c}`, L: 1, past: c, ref: true })),
    ...prefillLen.map((L) => ({ what: `prefill ${L}`, L, past: 0, ref: L <= refMaxPrefill })),
  ];
  for (const c of cases) {
    const tw: number[] = [], tr: number[] = [], cw: number[] = [], cr: number[] = [];
    timeOne(wasm, s.Hq, s.Hkv, s.hd, c.L, c.past); // warm-up
    for (let r = 0; r < reps; r++) {
      const [w, wc] = timeOne(wasm, s.Hq, s.Hkv, s.hd, c.L, c.past);
      tw.push(w);
      cw.push(wc);
      if (c.ref) {
        const [x, xc] = timeOne(cpu, s.Hq, s.Hkv, s.hd, c.L, c.past);
        tr.push(x);
        cr.push(xc);
      }
    }
    const ratio = (a: number[], b: number[]) => (c.ref ? `${(median(a) / median(b)).toFixed(1)}×` : '—');
    rows.push(`| ${s.name} (${s.Hq}/${s.Hkv} heads × ${s.hd}) | ${c.what} | ${c.ref ? fmt(tr) : '—'} | ${fmt(tw)} | ${ratio(tr, tw)} | ` +
      `${c.ref ? fmt(cr) : '—'} | ${fmt(cw)} | ${ratio(cr, cw)} |`);
    process.stderr.write(`${rows[rows.length - 1]}\n`);
  }
}
console.log(`\n${machineLine(machineInfo())}; ${wasm.name}; ${reps} reps, min / median ms of one layer's attention op\n`);
console.log('| shape | call | wall: TypeScript reference (before) | wall: wasm | speed-up | CPU: reference | CPU: wasm (all threads) | CPU ratio |');
console.log('|---|---|---:|---:|---:|---:|---:|---:|');
for (const r of rows) console.log(r);
await wasm.runtime.close();
