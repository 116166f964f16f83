/**
 * Mamba-2's SSD on the wasm backend: the chunked kernel (assembly/ssd_chunked.ts, the default) against the recurrence
 * (assembly/scan.ts `ssd_scan`, the default before), at one mamba2-130m layer's shape (24 heads × 64, state 128, one
 * group) over prompt lengths, for several chunk lengths. Runs interleaved in one process (a busy machine slows all
 * alike); min / median wall ms of one ssd call and the ratio of medians. Every chunked result is checked against the
 * recurrence's (y and final state, max |Δ| / max(1, |want|) ≤ 1e-4); a mismatch exits with status 1.
 *
 * With --models, whole models (random weights, `mamba-ts bench`'s presets): prefill of --prompt tokens with
 * ssd 'recurrent' and 'chunked' (the preset's chunk length unless --chunk), alternating; tok/s of each and the ratio,
 * and the two prefills' logits compared.
 *
 *   node dist/bench/wasm-ssd.bench.js [--threads 2] [--reps 5] [--lengths 4,8,16,32,64,512,2048] [--chunks 32,64,128,256]
 *   node dist/bench/wasm-ssd.bench.js --models mamba2-130m[,hybrid-130m] [--prompt 512] [--chunk 64] [--reps 3] [--dtype q8]
 */
import { WasmBackend } from '../src/backend/wasm/index.js';
import type { SsdArgs } from '../src/backend/backend.js';
import type { WeightDType } from '../src/tensor/dtype.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';
import type { CausalLM } from '../src/models/causal-lm.js';
import { machineInfo, machineLine, median } from './report.js';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
};
const threads = Number(arg('threads', '2'));
const reps = Number(arg('reps', '5'));
const TOL = 1e-4;
const wasm = new WasmBackend({ threads, weights: arg('dtype', 'f32') as WeightDType });

function rand(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    a[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return a;
}

function scaledErr(got: Float32Array, want: Float32Array): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])));
  return m;
}

let failed = false;
const models = arg('models', '');
if (models) await modelsBench(models.split(','), Number(arg('prompt', '512')));
else opBench();
await wasm.runtime.close();
process.exit(failed ? 1 : 0);

function opBench(): void {
  const nh = 24, hd = 64, N = 128, G = 1;
  const lengths = arg('lengths', '4,8,16,32,64,512,2048').split(',').map(Number);
  const chunks = arg('chunks', '32,64,128,256').split(',').map(Number);
  const rows: string[] = [];
  for (const L of lengths) {
    // Δ raw around softplus⁻¹(0.05), A in [-8, -1]: a trained model's range
    const x = rand(L * nh * hd, 1), dtRaw = rand(L * nh, 2).map((v) => v - 3), B = rand(L * G * N, 4), C = rand(L * G * N, 5);
    const A = rand(nh, 3).map((v) => -Math.exp(1 + v)), D = rand(nh, 6), init = rand(nh * hd * N, 7, 0.5);
    const call = (algorithm: SsdArgs['algorithm'], Q: number): [number, Float32Array, Float32Array] => {
      const state = wasm.fromHost(init.slice(), [1, nh, hd, N]);
      const args: SsdArgs = {
        x: wasm.fromHost(x, [1, L, nh, hd]), dt: wasm.fromHost(dtRaw, [1, L, nh]), A: wasm.fromHost(A, [nh]),
        B: wasm.fromHost(B, [1, L, G, N]), C: wasm.fromHost(C, [1, L, G, N]), D: wasm.fromHost(D, [nh]), dtBias: null,
        dtLimit: [0, Infinity], state, algorithm, chunkSize: Q,
      };
      const t0 = performance.now();
      const y = wasm.ssd(args).dataSync();
      const ms = performance.now() - t0;
      const s = state.dataSync().slice();
      for (const t of [args.x, args.dt, args.A, args.B, args.C, args.D!, state]) t.dispose();
      return [ms, y, s];
    };
    const variants: Array<[string, SsdArgs['algorithm'], number]> = [['recurrent', 'recurrent', 0], ...chunks.map((q) => [`chunked Q=${q}`, 'chunked', q] as [string, SsdArgs['algorithm'], number])];
    const times = variants.map(() => [] as number[]);
    const [, yRef, sRef] = call('recurrent', 0);
    for (const [, alg, q] of variants) call(alg, q); // warm-up
    for (let r = 0; r < reps; r++) variants.forEach(([, alg, q], i) => times[i].push(call(alg, q)[0]));
    for (const [i, [name, alg, q]] of variants.entries()) {
      let check = '';
      if (alg === 'chunked') {
        const [, y, s] = call(alg, q);
        const e = Math.max(scaledErr(y, yRef), scaledErr(s, sRef));
        check = e <= TOL ? `ok (${e.toExponential(1)})` : `MISMATCH ${e.toExponential(2)}`;
        if (!(e <= TOL)) failed = true;
      }
      rows.push(`| ${L} | ${name} | ${Math.min(...times[i]).toFixed(3)} / ${median(times[i]).toFixed(3)} | ${(median(times[0]) / median(times[i])).toFixed(2)}× | ${check} |`);
      process.stderr.write(`${rows[rows.length - 1]}\n`);
    }
  }
  console.log(`\n${machineLine(machineInfo())}; ${wasm.name}; one ssd call at mamba2-130m's layer shape (24 heads × 64, state 128); ${reps} reps, min / median ms\n`);
  console.log('| L | algorithm | ms | speed-up vs recurrent | check vs recurrent |');
  console.log('|---:|---|---:|---:|---|');
  for (const r of rows) console.log(r);
}

async function modelsBench(names: string[], prompt: number): Promise<void> {
  const chunk = arg('chunk', '');
  const out: string[] = [];
  for (const name of names) {
    const build = (algorithm: 'recurrent' | 'chunked'): CausalLM =>
      buildModel(PRESETS[name], name, new RandomTensorSource(1), { backend: wasm, ssd: { algorithm, ...(chunk ? { chunkSize: Number(chunk) } : {}) } });
    const lms = { recurrent: build('recurrent'), chunked: build('chunked') };
    const ids = Array.from({ length: prompt }, (_, i) => (i * 7919 + 13) % lms.chunked.vocabSize);
    const t: Record<string, number[]> = { recurrent: [], chunked: [] };
    const cpuMs: Record<string, number[]> = { recurrent: [], chunked: [] };
    const logits: Record<string, Float32Array> = {};
    for (let r = 0; r <= reps; r++) {
      for (const which of ['recurrent', 'chunked'] as const) {
        const s = lms[which].createState(1);
        const c0 = process.cpuUsage(), t0 = performance.now();
        const l = await lms[which].advance([ids], s);
        const cu = process.cpuUsage(c0);
        if (r > 0) {
          // (rep 0: warm-up)
          t[which].push(performance.now() - t0);
          cpuMs[which].push((cu.user + cu.system) / 1000);
        }
        logits[which] = l.data.slice();
      }
    }
    const e = scaledErr(logits.chunked, logits.recurrent);
    if (!(e <= TOL)) failed = true;
    const tok = (ms: number[]) => (prompt / (median(ms) / 1000)).toFixed(1);
    out.push(`| ${name} | ${tok(t.recurrent)} | ${tok(t.chunked)} | ${(median(t.recurrent) / median(t.chunked)).toFixed(2)}× | ` +
      `${(median(cpuMs.recurrent) / median(cpuMs.chunked)).toFixed(2)}× | ${e <= TOL ? 'ok' : 'MISMATCH'} (${e.toExponential(1)}) |`);
    process.stderr.write(`${out[out.length - 1]}\n`);
  }
  console.log(`\n${machineLine(machineInfo())}; ${wasm.name}; prefill ${prompt}, chunk ${chunk || 'the preset\'s'}, ${reps} reps (after a warm-up), medians\n`);
  console.log('| model | prefill tok/s, ssd recurrent | prefill tok/s, ssd chunked | speed-up (wall) | speed-up (CPU time, all threads) | last logits, chunked vs recurrent |');
  console.log('|---|---:|---:|---:|---:|---|');
  for (const r of out) console.log(r);
}
