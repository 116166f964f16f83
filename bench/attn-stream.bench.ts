/**
 * How fast the wasm decode attention kernel (assembly/attention.ts attention_decode: one query per row) streams the KV
 * cache from DRAM, against the bandwidth probe (stream_sum) over the same memory, on 1 and 2 threads (issue 18,
 * session 28; the attention counterpart of matvec-stream.bench).
 *
 * KV caches of one attention layer (K then V, [C, Hkv, hd] each, in the cache's format) are laid end to end through a
 * pool much bigger than the L3 (--pool-mb, default 320 MiB), each timed call on the next one, so every call reads its
 * cache from DRAM as decode does (a model's other layers evict it). One "pass" = calls over the whole pool; variants
 * run interleaved (--reps rounds, alternating order). Reported: GB of cache read per second of wall time and per
 * CPU-second (process.cpuUsage, all threads), and the ratio to the probe's CPU rate.
 *
 * Variants: probe; SHAPE:FMT with SHAPE pipe (the default loop shape since session 33: rows pipelined across blocks,
 * regs under GQA), regs (rows with the values' accumulators in registers), rows (position by position, one loop copy;
 * the default of sessions 28–32) or heads4 (the kernel before: per KV head, 4 key rows per step, next block touched ahead) and FMT f32, bf16, f16, q8 (in place),
 * q8s (q8 through scratch: always the heads4 code), f16w (an f16 cache read with the conversion before session 34,
 * WasmBackendOptions.f16KvDecode 'widen'; f16 runs the default, 'shift'; the two share a pool); a suffix :packed runs the decode scratch packed (attnPad false: the
 * threads' partials sharing cache lines, the layout before session 30). Every variant's output on the first cache is checked against
 * heads4's of the same format (max |Δ| ≤ 1e-6 · max |value| of the cache, × C / 8192 past 8192 keys).
 *
 *   node dist/bench/attn-stream.bench.js [--threads 1,2] [--reps 5] [--pool-mb 320] [--ctx 2048,4096,8192,16384]
 *        [--shapes llama,hybrid] [--variants probe,pipe:f32,rows:f32,heads4:f32,pipe:bf16,rows:bf16,heads4:bf16,pipe:q8,rows:q8,heads4:q8]
 */
import { arg, intListArg, listArg } from './options.js';
import { interleaved, median } from './report.js';
import { fillF32, log, openPool, probePass, streamFooter, streamHeader } from './stream-pool.js';

const threadList = intListArg('threads', '1,2');
const reps = Number(arg('reps', '5'));
const poolMb = Number(arg('pool-mb', '320'));
const ctxList = intListArg('ctx', '2048,4096,8192,16384');
/** llama-130m: 12 heads × 64; hybrid-130m (Bamba-style): 12 query / 4 KV heads × 64 */
const SHAPES: Array<[string, number, number, number]> = [['llama', 12, 12, 64], ['hybrid', 12, 4, 64]];
const wantShapes = listArg('shapes', 'llama,hybrid', SHAPES.map((s) => s[0]));
const variantSpecs = listArg('variants', 'probe,pipe:f32,rows:f32,heads4:f32,pipe:bf16,rows:bf16,heads4:bf16,pipe:q8,rows:q8,heads4:q8');
const FMT: Record<string, number> = { f32: 0, bf16: 1, f16: 2, q8: 3, q8s: 4, f16w: 5 };
/** the cache format of a kernel format code (f16w: the f16 cache) */
const poolFmt = (fmt: number) => (fmt === 5 ? 2 : fmt);
/** attention_decode's shape codes (WasmBackendOptions.attnDecode) */
const SHAPE: Record<string, number> = { rows: 0, heads4: 1, regs: 2, pipe: 3 };
interface Variant { spec: string; probe: boolean; shape: number; fmt: number; pad: number }
const variants: Variant[] = variantSpecs.map((spec) => {
  if (spec === 'probe') return { spec, probe: true, shape: 0, fmt: 0, pad: 1 };
  const [sh, f, layout] = spec.split(':');
  if (SHAPE[sh] === undefined || FMT[f] === undefined || (layout !== undefined && layout !== 'packed')) throw new Error(`--variants: ${spec} is not probe or (pipe|regs|rows|heads4):(f32|bf16|f16|f16w|q8|q8s)[:packed]`);
  return { spec, probe: false, shape: SHAPE[sh], fmt: FMT[f], pad: layout === 'packed' ? 0 : 1 };
});

/** bytes of n cache values in format fmt */
const kvBytes = (fmt: number, n: number) => (poolFmt(fmt) >= 3 ? (n / 32) * 36 : fmt ? n * 2 : n * 4);

streamHeader('wasm decode attention streaming the KV cache from DRAM (issue 18)', `pool ${poolMb} MiB, ${reps} rounds, threads ${threadList.join(',')}, contexts ${ctxList.join(',')}`);

let failed = false;
const rows: string[] = [];
rows.push('| threads | shape | context | variant | GB/s wall (median) | GB per CPU-s (median) | ÷ probe (CPU) | µs per call (CPU) |');
rows.push('|---:|---|---:|---|---:|---:|---:|---:|');

for (const T of threadList) {
  const { rt, poolB, pool } = await openPool(T, poolMb);
  const k = rt.kernels;
  const fillPool = (fmt: number) => {
    // f32 / 16-bit: values in [-0.5, 0.5) (bf16: the high halves of such floats; f16 codes of magnitude < 1); q8:
    // blocks of [scale 0.01, 32 int8]
    if (fmt === 0) fillF32(rt, pool, poolB + 4096);
    else if (fmt <= 2) {
      const v = new Uint16Array(rt.memory.buffer, pool, (poolB + 4096) / 2);
      const f = new Float32Array(1), u = new Uint32Array(f.buffer);
      for (let i = 0; i < v.length; i++) {
        const x = ((i * 2654435761) % 1000) / 1000 - 0.5;
        if (fmt === 1) { f[0] = x; v[i] = u[0] >>> 16; } else v[i] = (x < 0 ? 0x8000 : 0) | (0x3000 + ((i * 7919) % 0x0800));
      }
    } else {
      const b = new Uint8Array(rt.memory.buffer, pool, poolB + 4096);
      for (let i = 0; i < b.length; i++) b[i] = (i * 2654435761) >>> 24;
      const dv = new DataView(rt.memory.buffer, pool, poolB + 4096);
      for (let o = 0; o + 36 <= poolB; o += 36) dv.setFloat32(o, 0.01, true);
    }
  };
  const out = rt.heap.alloc(64 * (T + 1));
  for (const [shape, Hq, Hkv, hd] of SHAPES.filter((s) => wantShapes.includes(s[0]))) {
    for (const C of ctxList) {
      const cacheB = (v: Variant) => kvBytes(v.fmt, C * Hkv * hd); // K or V of one layer
      const count = (v: Variant) => Math.max(2, Math.floor(poolB / (2 * cacheB(v))));
      if (2 * 2 * cacheB({ spec: '', probe: false, shape: 0, fmt: 0, pad: 1 }) > poolB) throw new Error(`--pool-mb ${poolMb}: too small for two f32 caches of ${C} positions`);
      const S = T; // (one row: every thread a split of the keys, as the backend picks for b = 1)
      const q = rt.heap.alloc(Hq * hd * 4), y = rt.heap.alloc(Hq * hd * 4), yRef = rt.heap.alloc(Hq * hd * 4);
      const nKeys = rt.heap.alloc(4), counter = rt.heap.alloc(8);
      // (the largest of the formats' scratch, as the kernel lays it out)
      const scratchFloats = Math.max(...[0, 1, 2, 3, 4].map((fmt) => k.attention_decode_scratch(1, Hq, hd, S, T, fmt, 1) as unknown as number));
      const scratch = rt.heap.alloc(scratchFloats * 4);
      rt.f32(q, Hq * hd).set(Array.from({ length: Hq * hd }, (_, i) => Math.sin(i)));
      new Int32Array(rt.memory.buffer, nKeys, 1)[0] = C;
      const scale = 1 / Math.sqrt(hd);
      const call = (v: Variant, base: number, dst: number) => {
        new Int32Array(rt.memory.buffer, counter, 2).fill(0);
        const args = [q, base, base + cacheB(v), dst, nKeys, 1, Hq, Hkv, hd, C, scale, S, scratch, counter, v.fmt, v.shape, v.pad];
        if (T === 1) k.attention_decode(...args, 0, 1);
        else rt.runTeam('attention_decode', args, true);
      };
      const wallMs = new Map<string, number[]>(), cpu = new Map<string, number[]>();
        // per format: the pool filled once, then every variant of that format (and the probe) interleaved
      const fmts = [...new Set(variants.filter((v) => !v.probe).map((v) => poolFmt(v.fmt)))];
      const probe = variants.find((v) => v.probe);
      let m = 0;
      const onePass = (v: Variant) => {
        if (v.probe) return probePass(rt, pool, out, poolB);
        const n = count(v);
        for (let c = 0; c < n; c++) call(v, pool + (m++ % n) * 2 * cacheB(v), y);
      };
      for (const f of fmts) {
        fillPool(f);
        const vs = variants.filter((v) => !v.probe && poolFmt(v.fmt) === f);
        if (probe) vs.unshift(probe);
        // check: against heads4 of the same format (q8s: the q8 scratch path, also heads4 code)
        const ref: Variant = { spec: 'ref', probe: false, shape: 1, fmt: f, pad: 1 };
        call(ref, pool, yRef);
        const want = rt.f32(yRef, Hq * hd).slice();
        const vmax = f === 0 || f === 1 ? 0.5 : f === 2 ? 0.5 : 1.28; // the pool's largest |value| (q8: 128 · 0.01)
        for (const v of vs) {
          if (v.probe) continue;
          rt.f32(y, Hq * hd).fill(NaN);
          call(v, pool, y);
          const got = rt.f32(y, Hq * hd);
          let err = 0, mx = 0;
          for (let j = 0; j < Hq * hd; j++) { err = Math.max(err, Math.abs(got[j] - want[j])); mx = Math.max(mx, Math.abs(want[j])); }
          // (out = Σ p v with Σ p = 1: rounding scales with the values, not with |out|, which averaging makes small)
          // (the two kernels sum the keys in different orders: the bound grows with the context past 8k keys — at 32k
          // 'rows' and heads4 differed by 8.4e-7 with max |value| 0.5, session 33)
          if (!(err <= 1e-6 * vmax * Math.max(1, C / 8192))) { failed = true; log(`CHECK FAILED: ${shape} C=${C} ${v.spec}: max |Δ| ${err} vs max |value| ${vmax} (max |out| ${mx})`); }
        }
        interleaved(vs, reps, onePass, { wall: wallMs, cpu }, (v) => v.spec);
      }
      const probeCpu = probe ? median(cpu.get('probe')!) : NaN;
      for (const v of variants) {
        const w = wallMs.get(v.spec)!, c = cpu.get(v.spec)!;
        const calls = v.probe ? 1 : count(v);
        const bytes = v.probe ? poolB : calls * 2 * cacheB(v);
        const gb = (ms: number) => bytes / (ms / 1000) / 1e9;
        const ratio = v.probe ? 1 : gb(median(c)) / (poolB / (probeCpu / 1000) / 1e9);
        const line = `| ${T} | ${shape} (${Hq}/${Hkv}×${hd}) | ${C} | ${v.spec} | ${gb(median(w)).toFixed(1)} | ${gb(median(c)).toFixed(1)} | ${ratio.toFixed(2)} | ${v.probe ? '—' : ((median(c) * 1000) / calls).toFixed(0)} |`;
        rows.push(line);
        log(line);
      }
      for (const p of [q, y, yRef, nKeys, counter, scratch]) rt.heap.release(p);
    }
  }
  rt.heap.release(pool); rt.heap.release(out);
}
log('');
streamFooter();
log('');
for (const r of rows) log(r);
if (failed) process.exit(1);
process.exit(0);
