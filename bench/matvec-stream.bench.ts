/**
 * How fast the wasm f32 matrix-vector product (decode's M = 1 linear) streams its weights from DRAM, against a plain
 * SIMD sum over the same memory (the bandwidth probe, stream_sum), on 1 and 2 threads (issue 18).
 *
 * The weights live in a pool much bigger than the L3 (--pool-mb, default 320 MiB): matrices of one shape laid end to
 * end through it, each timed call on the next one, so that every call reads W from DRAM as decode does (the 517 MB of
 * mamba-130m f32 pass through the cache once per token). One "pass" = calls over the whole pool; the variants run
 * interleaved (round robin, --reps rounds), each round in a fresh order of variants. Reported per variant: GB/s by
 * wall time (median and best of the rounds) and GB per CPU-second (all threads of the process, process.cpuUsage: on a
 * shared machine wall time also counts other processes' slices; CPU time counts a spinning or stalled thread too).
 *
 * Variants (assembly/gemv_variants.ts; `decode` = linear_f32 as the decode runs it):
 *   probe      stream_sum over the pool (4 accumulators, no multiply, no x)
 *   decode     linear_f32 (M = 1): the decode kernel
 *   old        linear_f32 as it was before issue 18's fix (gemvF32Mode 1: the row loop inlined once per row of 4)
 *   sum        each row summed alone (probe's loop, row by row, no x: what the row structure costs)
 *   r1a1 r1a2 r1a4 r1a8   one row at a time, 1 / 2 / 4 / 8 accumulators (r1a8: two lines per iteration)
 *   r1x2       r1a4's row loop inlined twice, rows alternating between the two copies (the old kernel's shape, 2 not 4)
 *   r2 r4 r8   2 / 4 / 8 rows at a time (x loaded once for them: r2, r4 with 2 accumulators per row, r8 with 1)
 *   touch:B    r1a4 plus one load per 64-byte line B bytes ahead (software prefetch)
 *   packed4    W stored as groups of 4 rows interleaved by 8 columns ("column-blocked"): one stream, x shared
 *   bf16, q8   linear_bf16 / linear_q8 (M = 1; q8: x quantized once beforehand) on weights of those formats laid
 *              through the same pool (q8: each matrix's int8 rows then its f32 scales); GB/s of their bytes
 *   q8-seq, q8-rows4, q8-quarters   linear_q8 with runtime.gemvQ8 = 'seq' (one row at a time), 'rows4' (the M = 1
 *              kernel before session 32: 4 adjacent rows at once) or 'quarters' (the default of sessions 32–33); q8
 *              itself runs the default ('lean', session 34)
 *   rows:M     linear_f32 with M rows of x (batched decode: M = 2…8) — GB/s of W read once; rows-old:M the same with
 *              runtime.gemvF32 = 'rows4' (the kernels before the fix: M = 2 on the 2×4 tiles)
 *   NAME@B     the same with the matrices B bytes off 64-byte alignment (e.g. decode@4)
 *   NAME/cols  the threads split the columns (each its k-range of every row, partial y of its own) instead of the rows
 *
 * Every variant's y on the first matrix is checked against linear_f32's (relative ≤ 1e-5; packed4 on a packed copy).
 *
 *   node dist/bench/matvec-stream.bench.js [--threads 1,2] [--reps 7] [--pool-mb 320] [--shapes in_proj,out_proj,lm_head]
 *        (also llama-130m's qkvo, gate_up, down)
 *        [--variants probe,decode,old,bf16,q8,q8-seq,q8-rows4,sum,r1a1,r1a2,r1a4,r1a8,r2,r4,r8,touch:1024,touch:4096,packed4,decode@4,r1a4/cols]
 */
import { arg, intListArg, listArg } from './options.js';
import { interleaved, median } from './report.js';
import { fillF32, log, openPool, probePass, streamFooter, streamHeader } from './stream-pool.js';

const threadList = intListArg('threads', '1,2');
const reps = Number(arg('reps', '7'));
const poolMb = Number(arg('pool-mb', '320'));
/** mamba-130m: d_model 768, d_inner 1536; llama-130m: q/k/v/o 768×768, gate/up 2048×768, down 768×2048; [name, K, N] */
const SHAPES: Array<[string, number, number]> = [
  ['in_proj', 768, 3072],
  ['out_proj', 1536, 768],
  ['lm_head', 768, 50280],
  ['qkvo', 768, 768],
  ['gate_up', 768, 2048],
  ['down', 2048, 768],
];
const wantShapes = listArg('shapes', 'in_proj,out_proj,lm_head', SHAPES.map((s) => s[0]));
const variantSpecs = listArg('variants', 'probe,decode,old,bf16,q8,sum,r1a1,r1a2,r1a4,r1a8,r2,r4,r8,touch:1024,touch:4096,packed4,decode@4,r1a4/cols');

/** bf16 and q8: linear_bf16 / linear_q8 (M = 1) as decode runs them, not mv_f32 variants */
const BF16 = 100, Q8 = 101, GEMM = 102, GEMM_OLD = 103, Q8_ROWS4 = 104, Q8_SEQ = 105, Q8_QUARTERS = 106;
const CODES: Record<string, number> = { bf16: BF16, q8: Q8, 'q8-rows4': Q8_ROWS4, 'q8-seq': Q8_SEQ, 'q8-quarters': Q8_QUARTERS, decode: 0, r1a1: 1, r1a2: 2, r1a4: 3, r1a8: 4, r2: 5, r4: 6, r8: 7, touch: 8, sum: 9, packed4: 10, old: 11, r1x2: 12 };

interface Variant { spec: string; probe: boolean; code: number; pf: number; offset: number; cols: boolean }

function parseVariant(spec: string): Variant {
  let s = spec, cols = false, offset = 0, pf = 0;
  if (s.endsWith('/cols')) { cols = true; s = s.slice(0, -5); }
  const at = s.indexOf('@');
  if (at >= 0) { offset = Number(s.slice(at + 1)); s = s.slice(0, at); }
  const colon = s.indexOf(':');
  if (colon >= 0) { pf = Number(s.slice(colon + 1)); s = s.slice(0, colon); }
  if (s === 'probe') return { spec, probe: true, code: -1, pf, offset, cols };
  if (s === 'rows' || s === 'rows-old') {
    if (!Number.isInteger(pf) || pf < 1 || pf > 64) throw new Error(`--variants: ${spec}: rows:M needs M in 1…64`);
    return { spec, probe: false, code: s === 'rows' ? GEMM : GEMM_OLD, pf, offset, cols };
  }
  const code = CODES[s];
  if (code === undefined || !Number.isFinite(offset) || !Number.isFinite(pf)) {
    throw new Error(`--variants: ${spec} is not one of probe, ${Object.keys(CODES).join(', ')} (with optional :BYTES, @OFFSET, /cols)`);
  }
  return { spec, probe: false, code, pf, offset, cols };
}
const variants = variantSpecs.map(parseVariant);


streamHeader('f32 matrix-vector streaming from DRAM (issue 18)', `pool ${poolMb} MiB, ${reps} rounds, threads ${threadList.join(',')}`);

let failed = false;
const rows: string[] = [];
rows.push('| threads | shape | variant | GB/s wall (median) | GB/s wall (best) | GB per CPU-s (all threads, median) | ÷ probe (median wall) |');
rows.push('|---:|---|---|---:|---:|---:|---:|');

for (const T of threadList) {
  const { rt, poolB, pool } = await openPool(T, poolMb);
  const k = rt.kernels;
  fillF32(rt, pool, poolB + 4096);
  const out = rt.heap.alloc(64 * (T + 1));
  for (const [shape, K, N] of SHAPES.filter((s) => wantShapes.includes(s[0]))) {
    const rowB = K * 4, matB = N * rowB;
    const count = Math.max(2, Math.floor(poolB / matB));
    if (count * matB > poolB + 4096 - 64) throw new Error(`--pool-mb ${poolMb}: too small for two ${shape} matrices (${(2 * matB / 2 ** 20).toFixed(0)} MiB)`);
    const passB = count * matB;
    /** bytes of one matrix of variant v's format, how many fit the pool, the bytes of one pass over them */
    const layout = (v: Variant) => {
      const b = v.code === Q8 || v.code === Q8_ROWS4 || v.code === Q8_SEQ || v.code === Q8_QUARTERS ? Math.ceil((N * K * 9) / 8 / 64) * 64 : v.code === BF16 ? N * K * 2 : matB;
      const n = Math.max(2, Math.floor(poolB / b));
      return { matB: b, count: n, passB: n * b };
    };
    const x = rt.heap.alloc(K * 4), y = rt.heap.alloc(N * 4 * T), yRef = rt.heap.alloc(N * 4);
    rt.f32(x, K).set(Array.from({ length: K }, (_, i) => Math.sin(i)));
    const xq = rt.heap.alloc(K * 2), xs = rt.heap.alloc(K / 8);
    const maxM = Math.max(1, ...variants.filter((v) => v.code === GEMM || v.code === GEMM_OLD).map((v) => v.pf));
    const xM = rt.heap.alloc(maxM * K * 4), yM = rt.heap.alloc(maxM * N * 4);
    rt.f32(xM, maxM * K).set(Array.from({ length: maxM * K }, (_, i) => Math.cos(i)));
    k.quantize_rows_q8(x, xq, xs, 1, K, 0, 1);
    // check every variant against linear_f32 on the first matrix
    k.linear_f32(x, pool, 0, yRef, 1, K, N, 0, N);
    const ref = rt.f32(yRef, N).slice();
    const packed = rt.heap.alloc(matB);
    {
      const src = rt.f32(pool, N * K), dst = rt.f32(packed, N * K);
      for (let g = 0; g < N / 4; g++) for (let kb = 0; kb < K; kb += 8) for (let r = 0; r < 4; r++) for (let c = 0; c < 8; c++) {
        dst[g * 4 * K + kb * 4 + r * 8 + c] = src[(4 * g + r) * K + kb + c];
      }
    }
    for (const v of variants) {
      if (v.probe || v.cols || v.offset || v.code === 9 || v.code >= 100) continue; // (sum: no x, not a product)
      rt.f32(y, N).fill(NaN);
      k.mv_f32(v.code, x, v.code === 10 ? packed : pool, y, K, rowB, v.pf, N, 0, 0, N);
      const got = rt.f32(y, N);
      let err = 0, mx = 0;
      for (let j = 0; j < N; j++) { err = Math.max(err, Math.abs(got[j] - ref[j])); mx = Math.max(mx, Math.abs(ref[j])); }
      if (!(err <= 1e-5 * mx)) { failed = true; log(`CHECK FAILED: ${shape} ${v.spec}: max |Δ| ${err} vs max |y| ${mx}`); }
    }
    rt.heap.release(packed);

    const wallMs = new Map<string, number[]>(), cpu = new Map<string, number[]>();
    let m = 0;
    const onePass = (v: Variant) => {
      if (v.probe) return probePass(rt, pool, out, passB);
      const L = layout(v);
      if (v.code === GEMM_OLD) rt.gemvF32 = 'rows4';
      if (v.code === Q8_ROWS4) rt.gemvQ8 = 'rows4';
      if (v.code === Q8_SEQ) rt.gemvQ8 = 'seq';
      if (v.code === Q8_QUARTERS) rt.gemvQ8 = 'quarters';
      for (let c = 0; c < L.count; c++) {
        const w = pool + v.offset + ((m++ % L.count) * L.matB);
        if (v.code === Q8 || v.code === Q8_ROWS4 || v.code === Q8_SEQ || v.code === Q8_QUARTERS) {
          const q8 = [xq, xs, w, w + N * K, 0, y, 1, K, N];
          if (T === 1) k.linear_q8(...q8, 0, N);
          else rt.run('linear_q8', q8, N, 4);
          continue;
        }
        if (v.code === GEMM || v.code === GEMM_OLD) {
          const g = [xM, w, 0, yM, v.pf, K, N];
          if (T === 1) k.linear_f32(...g, 0, N);
          else rt.run('linear_f32', g, N, 4);
          continue;
        }
        if (v.code === BF16) {
          const b16 = [x, w, 0, y, 1, K, N];
          if (T === 1) k.linear_bf16(...b16, 0, N);
          else rt.run('linear_bf16', b16, N, 4);
          continue;
        }
        const args = [v.code, x, w, y, K, rowB, v.pf, N];
        if (T === 1) k.mv_f32(...args, 0, 0, N);
        else if (v.cols) rt.run('mv_f32', [...args, T], T, 1);
        else rt.run('mv_f32', [...args, 0], N, 4);
      }
      rt.gemvF32 = 'seq';
      rt.gemvQ8 = 'lean';
    };
    interleaved(variants, reps, onePass, { wall: wallMs, cpu }, (v) => v.spec);
    const probeMed = wallMs.has('probe') ? median(wallMs.get('probe')!) : NaN;
    for (const v of variants) {
      const w = wallMs.get(v.spec)!, c = cpu.get(v.spec)!;
      const bytes = v.probe ? passB : layout(v).passB;
      const gb = (ms: number) => bytes / (ms / 1000) / 1e9;
      const line = `| ${T} | ${shape} (${N}×${K}) | ${v.spec} | ${gb(median(w)).toFixed(1)} | ${gb(Math.min(...w)).toFixed(1)} | ${gb(median(c)).toFixed(1)} | ${(probeMed / median(w)).toFixed(2)} |`;
      rows.push(line);
      log(line);
    }
    rt.heap.release(x); rt.heap.release(y); rt.heap.release(yRef); rt.heap.release(xq); rt.heap.release(xs); rt.heap.release(xM); rt.heap.release(yM);
  }
  rt.heap.release(pool); rt.heap.release(out);
}
log('');
streamFooter();
log('');
for (const r of rows) log(r);
if (failed) process.exit(1);
process.exit(0);
