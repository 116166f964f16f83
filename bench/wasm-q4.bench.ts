/**
 * q4 (GGUF Q4_K, assembly/linear_q4.ts) against q8 (linear_q8.ts) weights on the wasm backend: one linear layer,
 * decode (M = 1) and prefill (M = 64), at mamba-130m's shapes and one larger, formats interleaved call by call so a
 * shared machine's load falls on both alike. Prints the median wall time per call, the process CPU time per call
 * (1 thread: robust against time-slicing by other processes) and weights GB/s, and checks each result against a
 * float64 product of the dequantized weights (|Δ| within 1e-3 of the output's scale), so a wrong kernel fails here.
 *
 *   node dist/bench/wasm-q4.bench.js [--threads 1,2] [--reps 30]
 */
import { WasmBackend } from '../src/backend/wasm/index.js';
import { GGML, dequantize, quantize } from '../src/io/gguf-quants.js';
import type { Tensor } from '../src/tensor/tensor.js';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : dflt;
};
const threadList = opt('threads', '1,2').split(',').map(Number);
const reps = Number(opt('reps', '30'));

/** [N, K]: mamba-130m in_proj, out_proj, and a 4096 × 2048 matrix (32 MiB of f32: from DRAM) */
const SHAPES: Array<[number, number]> = [[3072, 768], [768, 1536], [4096, 2048]];

function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 0.2;
  }
  return out;
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];

console.log(`wasm q4 vs q8 linear, ${reps} calls each (interleaved), load average ${process.platform === 'linux' ? (await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ') : '?'}`);
let failed = false;
for (const [N, K] of SHAPES) {
  const wf = random(N * K, N + K);
  const q4bytes = quantize(wf, GGML.Q4_K);
  const deq4 = dequantize(q4bytes, GGML.Q4_K, N * K);
  for (const threads of threadList) {
    const bq4 = new WasmBackend({ threads, weights: 'q4' }), bq8 = new WasmBackend({ threads, weights: 'q8' });
    const w4 = bq4.fromHost(deq4, [N, K], { matrix: true, stored: () => ({ type: GGML.Q4_K, bytes: q4bytes, label: 'bench' }) });
    const w8 = bq8.fromHost(deq4, [N, K], { matrix: true }); // the same (dequantized Q4_K) weights, as q8
    const bytes4 = bq4.weightBytes, bytes8 = bq8.weightBytes;
    for (const M of [1, 64]) {
      const x = random(M * K, 7 + M);
      const x4 = bq4.fromHost(x, [M, K]), x8 = bq8.fromHost(x, [M, K]);
      // check against float64 (rows 0 and M - 1, every 7th column)
      const check = (be: WasmBackend, y: Tensor, w: Tensor, label: string) => {
        const got = be.readSync(y), wd = be.readSync(w); // (q8: the Q4_K weights requantized, its own values)
        let scale = 0, worst = 0;
        for (const i of new Set([0, M - 1])) {
          for (let j = 0; j < N; j += 7) {
            let s = 0;
            for (let k = 0; k < K; k++) s += x[i * K + k] * wd[j * K + k];
            scale = Math.max(scale, Math.abs(s));
            worst = Math.max(worst, Math.abs(got[i * N + j] - s));
          }
        }
        if (!(worst <= 1e-3 * scale)) {
          failed = true;
          console.log(`  CHECK FAILED ${label} [${M}×${K}]·[${N}×${K}]ᵀ: max |Δ| ${worst} vs float64 (scale ${scale})`);
        }
      };
      check(bq4, bq4.linear(x4, w4, null), w4, 'q4');
      check(bq8, bq8.linear(x8, w8, null), w8, 'q8');
      const wall: Record<string, number[]> = { q4: [], q8: [] }, cpu: Record<string, number[]> = { q4: [], q8: [] };
      for (let r = 0; r < reps; r++) {
        for (const [f, be, xx, ww] of [['q8', bq8, x8, w8], ['q4', bq4, x4, w4]] as const) {
          const c0 = process.cpuUsage(), t0 = performance.now();
          be.linear(xx, ww, null);
          wall[f].push(performance.now() - t0);
          const c = process.cpuUsage(c0);
          cpu[f].push((c.user + c.system) / 1000);
        }
      }
      const line = (f: 'q4' | 'q8', b: number) =>
        `${f} ${median(wall[f]).toFixed(3)} ms wall, ${median(cpu[f]).toFixed(3)} ms cpu, ${(b / 1e6).toFixed(1)} MB` + (M === 1 ? `, ${(b / median(wall[f]) / 1e6).toFixed(1)} GB/s` : '');
      console.log(`[${N}, ${K}] M=${M} threads ${threads}: ${line('q8', bytes8)} | ${line('q4', bytes4)} | q4/q8 time ${(median(wall.q4) / median(wall.q8)).toFixed(2)}× wall, ${(median(cpu.q4) / median(cpu.q8)).toFixed(2)}× cpu`);
    }
  }
}
if (failed) {
  console.log('FAILED: a kernel disagrees with the float64 reference');
  process.exitCode = 1;
}
