/**
 * The integer prefill GEMM for q8 weights (src/backend/wasm/assembly/gemm_q8.ts, `gemm_q8`): x quantized per row and
 * block of 32 (xs = f32(max|x| / qmax), q = round-half-even(f32(x · f32(1 / xs)))), exact integer block sums, each
 * scaled as y = f32(y + f32(f32(S) · f32(sw · sx))) in block order, bias last. Both inner products — mode 0
 * (i32x4.dot_i16x8_s) and mode 1 (the relaxed build's i32x4.relaxed_dot_i8x16_i7x16_add_s with x biased by +64 and
 * the bias taken back out) — give exactly the emulation below, bit for bit, on shapes that are not multiples of the
 * tiles and blocks (MR 4, NR 8, KC 256, MC 80, NC 512), weights at ±127 and −128 (no saturation in pmaddubsw), for
 * 1-3 threads and row subsets; the plain build runs mode 0 for mode 1. Then the backend's q8Gemm option.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomArray, hfFixture, loadReference, maxAbsDiff } from '../helpers.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alloc, allocBytes, assertBitEqual, f32At, instantiateKernels, instantiateRelaxedKernels, put, resetArena } from './wasm-arena.js';
import { relaxedBehindFlag } from '../../src/backend/wasm/platform.js';

/** Node 20: relaxed SIMD behind V8's flag, and V8 11.3's Liftoff miscompiles the relaxed dot */
const relaxedExperimental = relaxedBehindFlag();
import { WasmBackend, type WasmQ8Gemm } from '../../src/backend/wasm/index.js';
import type { WeightDType } from '../../src/tensor/dtype.js';
import { packQ8 } from '../../src/backend/wasm/q8.js';
import { loadModel } from '../../src/index.js';
import { LoadOptionError } from '../../src/api/load-options.js';

interface Kernels {
  gemm_q8(mode: number, qmax: number, x: number, w: number, scales: number, bias: number, y: number, M: number, K: number, N: number, scratch: number, t: number, T: number): void;
  gemm_q8_scratch_bytes(): number;
  gemm_q8_modes(): number;
}
const builds: Array<[string, Kernels]> = [['plain', instantiateKernels<Kernels>()], ['relaxed', instantiateRelaxedKernels<Kernels>()]];

/** round half to even (f32x4.nearest) */
function rint(v: number): number {
  const f = Math.floor(v), d = v - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** the kernel's arithmetic, emulated: x [M, K] f32, W int8 [N, K] with scales [N, K/32] */
function emulate(x: Float32Array, qs: Int8Array, sw: Float32Array, bias: Float32Array | null, M: number, K: number, N: number, qmax: number): Float32Array {
  const nb = K / 32;
  const xq = new Int32Array(M * K), sx = new Float32Array(M * nb);
  for (let i = 0; i < M; i++) {
    for (let b = 0; b < nb; b++) {
      let amax = 0;
      for (let k = 0; k < 32; k++) amax = Math.max(amax, Math.abs(x[i * K + b * 32 + k]));
      const s = Math.fround(amax / qmax), inv = s !== 0 ? Math.fround(1 / s) : 0;
      sx[i * nb + b] = s;
      for (let k = 0; k < 32; k++) xq[i * K + b * 32 + k] = rint(Math.fround(x[i * K + b * 32 + k] * inv));
    }
  }
  const y = new Float32Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let acc = 0;
      for (let b = 0; b < nb; b++) {
        let S = 0;
        for (let k = b * 32; k < b * 32 + 32; k++) S += xq[i * K + k] * qs[j * K + k];
        acc = Math.fround(acc + Math.fround(Math.fround(S) * Math.fround(sw[j * nb + b] * sx[i * nb + b])));
      }
      y[i * N + j] = bias ? Math.fround(acc + bias[j]) : acc;
    }
  }
  return y;
}

/** q8 weights: packQ8 of random values, some all-zero blocks, some blocks of ±127 / −128 only (the operand extremes) */
function weights(N: number, K: number, seed: number): { qs: Int8Array; sc: Float32Array } {
  const qs = new Int8Array(N * K), sc = new Float32Array((N * K) / 32);
  const z = randomArray(N * K, seed, 0.5);
  for (let b = 3; b < (N * K) / 32; b += 7) z.fill(0, b * 32, (b + 1) * 32);
  packQ8(z, qs, sc);
  for (let b = 5; b < (N * K) / 32; b += 11) for (let k = 0; k < 32; k++) qs[b * 32 + k] = k % 3 === 0 ? -128 : k % 2 ? 127 : -127;
  return { qs, sc };
}

function call(k: Kernels, mode: number, qmax: number, x: number, w: number, sc: number, bias: number, y: number, M: number, K: number, N: number, T: number): void {
  const scratch = allocBytes(T * k.gemm_q8_scratch_bytes());
  for (let t = T - 1; t >= 0; t--) k.gemm_q8(mode, qmax, x, w, sc, bias, y, M, K, N, scratch, t, T);
}

describe('wasm gemm_q8', () => {
  it('the plain build has mode 0, the relaxed build modes 0 and 1', () => {
    assert.equal(builds[0][1].gemm_q8_modes(), 1);
    assert.equal(builds[1][1].gemm_q8_modes(), 3);
  });

  // [M, K, N]: rows below a tile, ragged M past MC (80), K past KC (256), N past NC (512) and not a multiple of NR (8)
  const shapes: Array<[number, number, number]> = [[1, 32, 1], [3, 64, 9], [6, 288, 17], [81, 32, 520], [37, 544, 13], [163, 96, 31]];
  // [mode, qmax]: int13, int8, int7 as the backend passes them; mode 0 at 8191 (block sums beyond 2^24: f32 rounding)
  const modes: Array<[number, number]> = [[0, 4095], [0, 127], [1, 63], [0, 8191]];
  let seed = 9100;
  for (const [build, k] of builds) {
    for (const [mode, qmax] of modes) {
      for (const [M, K, N] of shapes) {
        it(`${build} build, mode ${mode}, qmax ${qmax}: M=${M} K=${K} N=${N}: the emulation bit for bit, same bits for 1-3 threads and row subsets`, (t) => {
          seed += 13;
          // Node 20 (relaxed SIMD behind a flag): V8 11.3's Liftoff miscompiles the relaxed dot (see the test below); the
          // backend never runs mode 1 there, and whether this process runs Liftoff's code or TurboFan's is a matter of timing
          if (build === 'relaxed' && mode === 1 && relaxedExperimental) return t.skip('relaxed SIMD behind a flag (Node 20): mode 1 is checked per compiler tier below');
          resetArena();
          const xv = randomArray(M * K, seed, 2), bv = randomArray(N, seed + 2);
          // rows of zeros (scale 0) and a row at the extremes of the biased i7 operand
          if (M > 2) xv.fill(0, K, 2 * K);
          if (M > 3) for (let c = 0; c < K; c++) xv[2 * K + c] = c % 2 ? 3 : -3;
          const { qs, sc } = weights(N, K, seed + 1);
          const x = put(xv), w = put(qs), s = put(sc);
          for (const withBias of [false, true]) {
            const bias = withBias ? put(bv) : 0;
            const [y1, y1v] = alloc(M * N);
            y1v.fill(12345.678);
            call(k, mode, qmax, x, w, s, bias, y1, M, K, N, 1);
            const got = y1v.slice();
            assertBitEqual(got, emulate(xv, qs, sc, withBias ? bv : null, M, K, N, qmax), `bias=${withBias} vs emulation`);
            for (const T of [2, 3]) {
              const [y, yv] = alloc(M * N);
              yv.fill(-7);
              call(k, mode, qmax, x, w, s, bias, y, M, K, N, T);
              assertBitEqual(yv.slice(), got, `bias=${withBias} T=${T}`);
            }
            const r0 = Math.floor(M / 3) + (M > 1 ? 1 : 0);
            if (r0 < M) {
              const [y, yv] = alloc((M - r0) * N);
              call(k, mode, qmax, x + r0 * K * 4, w, s, bias, y, M - r0, K, N, 2);
              assertBitEqual(yv.slice(), got.slice(r0 * N), `bias=${withBias} rows ${r0}..${M}`);
            }
          }
          // one thread of three writes only its own columns (a slice aligned to 8)
          const [y, yv] = alloc(M * N);
          yv.fill(-7);
          const scratch = allocBytes(3 * k.gemm_q8_scratch_bytes());
          k.gemm_q8(mode, qmax, x, w, s, 0, y, M, K, N, scratch, 1, 3);
          const chunks = Math.ceil(N / 8);
          const lo = Math.min(N, Math.floor(chunks / 3) * 8), hi = Math.min(N, Math.floor((2 * chunks) / 3) * 8);
          const out = f32At(y, M * N);
          for (let i = 0; i < M; i++) {
            for (let j = 0; j < N; j++) if (j < lo || j >= hi) assert.equal(out[i * N + j], -7, `column ${j} outside [${lo}, ${hi}) written`);
          }
        });
      }
    }
  }
});

describe('wasm gemm_q8 mode 1 per V8 compiler tier (child processes)', () => {
  /** mode 1 (relaxed i8 dot) and mode 0 at qmax 63 (the same numbers by construction) on one product, under `flags` */
  const child = (flags: string[]): { same: boolean; differ: number } => {
    const script = `
      import { readFileSync } from 'node:fs';
      const bytes = readFileSync(new URL(${JSON.stringify(new URL('../../wasm/kernels-relaxed.wasm', import.meta.url).href)}));
      const memory = new WebAssembly.Memory({ initial: 64, maximum: 65536, shared: true });
      const k = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory, abort() {} } }).exports;
      const M = 13, K = 96, N = 20;
      const xo = 65536, wo = xo + M * K * 4, so = wo + N * K, y0 = so + N * K, y1 = y0 + M * N * 4, sc = y1 + M * N * 4;
      const x = new Float32Array(memory.buffer, xo, M * K);
      for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37);
      const q = new Int8Array(memory.buffer, wo, N * K);
      for (let i = 0; i < q.length; i++) q[i] = ((i * 2654435761) >>> 0) % 255 - 127;
      new Float32Array(memory.buffer, so, (N * K) / 32).fill(0.01);
      k.gemm_q8(0, 63, xo, wo, so, 0, y0, M, K, N, sc, 0, 1);
      k.gemm_q8(1, 63, xo, wo, so, 0, y1, M, K, N, sc, 0, 1);
      const a = new Uint32Array(memory.buffer, y0, M * N), b = new Uint32Array(memory.buffer, y1, M * N);
      let differ = 0;
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differ++;
      console.log(JSON.stringify({ same: differ === 0, differ }));`;
    const dir = mkdtempSync(join(tmpdir(), 'mamba-ts-gemm-q8-'));
    const file = join(dir, 'tier.mjs');
    writeFileSync(file, script);
    try {
      const out = execFileSync(process.execPath, [...(relaxedExperimental ? ['--experimental-wasm-relaxed-simd'] : []), ...flags, file], { encoding: 'utf8', timeout: 60_000 });
      return JSON.parse(out.trim().split('\n').pop()!);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('TurboFan (--no-liftoff): mode 1 gives mode 0\'s bits; Liftoff (--liftoff-only): the same where relaxed SIMD is native (Node 20: reported)', (t) => {
    assert.deepEqual(child(['--no-liftoff']), { same: true, differ: 0 });
    const lift = child(['--liftoff-only']);
    if (relaxedExperimental) t.diagnostic(`V8 ${process.versions.v8}, Liftoff: ${lift.differ} of 260 elements differ (rows 3, 7, 11: the 4th row of each 4×8 tile)`);
    else assert.deepEqual(lift, { same: true, differ: 0 });
  });
});

describe('wasm backend: q8Gemm', () => {
  it('a 40-row q8 product: int13 / int8 / int7 run gemm_q8 within their activation rounding of f32 (gemm_blocked); fewer rows run the tiles', () => {
    const M = 40, K = 96, N = 70;
    const be = new WasmBackend({ threads: 2, weights: 'q8' });
    const xv = randomArray(M * K, 7), wv = randomArray(N * K, 8, 0.3), bv = randomArray(N, 9);
    const w = be.fromHost(wv, [N, K], { matrix: true }), b = be.fromHost(bv, [N]), x = be.fromHost(xv, [M, K]);
    const seen: string[] = [];
    const runTeam = be.runtime.runTeam.bind(be.runtime);
    be.runtime.runTeam = ((name: string, ...rest: unknown[]) => (seen.push(name), (runTeam as (...a: unknown[]) => unknown)(name, ...rest))) as typeof be.runtime.runTeam;
    assert.equal(be.q8Gemm, 'int13', 'the default');
    const ys: Record<string, Float32Array> = {};
    const modes: number[] = [];
    const runTeam2 = be.runtime.runTeam.bind(be.runtime);
    be.runtime.runTeam = ((name: string, args: number[], ...rest: unknown[]) => {
      if (name === 'gemm_q8' || name === 'gemm_q8_prepacked') modes.push(args[0]);
      return (runTeam2 as (...a: unknown[]) => unknown)(name, args, ...rest);
    }) as typeof be.runtime.runTeam;
    for (const g of ['f32', 'int13', 'int8', 'int7'] as const) {
      be.q8Gemm = g;
      seen.length = 0;
      ys[g] = be.linear(x, w, b).dataSync().slice();
      assert.deepEqual(seen, [g === 'f32' ? 'gemm_blocked_prepacked' : 'gemm_q8_prepacked'], g); // (x packed once: packXOnce)
    }
    // int7: the relaxed i8 dot only where the engine runs relaxed SIMD without a flag (not Node 20)
    assert.deepEqual(modes, [0, 0, be.runtime.relaxedDot ? 1 : 0]);
    assert.equal(be.runtime.relaxedDot, be.runtime.fused && !relaxedExperimental);
    const mx = Math.max(...Array.from(ys.f32, Math.abs));
    // relative to the largest |y|: activation steps of max|x| / 4095, / 127, / 63 per block
    for (const [g, lo, hi] of [['int13', 1e-6, 1e-3], ['int8', 1e-4, 2e-2], ['int7', 1e-4, 4e-2]] as const) {
      const e = maxAbsDiff(ys[g], ys.f32) / mx;
      assert.ok(e > lo && e <= hi, `${g}: ${e}`);
    }
    // below 32 rows: the tiles (linear_q8), whatever q8Gemm says
    be.q8Gemm = 'int8';
    seen.length = 0;
    be.linear(be.fromHost(xv.subarray(0, 31 * K), [31, K]), w, b);
    assert.ok(!seen.includes('gemm_q8') && !seen.includes('gemm_q8_prepacked'));
  });

  it('a bad q8Gemm or MAMBA_TS_WASM_Q8_GEMM is a LoadOptionError naming the option and the choices', () => {
    assert.throws(() => new WasmBackend({ q8Gemm: 'int4' as never }), (e: Error) => e instanceof LoadOptionError && /"q8Gemm" must be 'int13', 'int8', 'int7' or 'f32', got int4/.test(e.message));
    const old = process.env.MAMBA_TS_WASM_Q8_GEMM;
    try {
      process.env.MAMBA_TS_WASM_Q8_GEMM = 'int9';
      assert.throws(() => new WasmBackend({}), (e: Error) => e instanceof LoadOptionError && /MAMBA_TS_WASM_Q8_GEMM must be 'int13' or 'int8' or 'int7' or 'f32', got "int9"/.test(e.message));
      process.env.MAMBA_TS_WASM_Q8_GEMM = 'int8';
      assert.equal(new WasmBackend({}).q8Gemm, 'int8');
      assert.equal(new WasmBackend({ q8Gemm: 'f32' }).q8Gemm, 'f32', 'the option over the environment');
    } finally {
      if (old === undefined) delete process.env.MAMBA_TS_WASM_Q8_GEMM;
      else process.env.MAMBA_TS_WASM_Q8_GEMM = old;
    }
  });

  // max |Δlogit| / max |logit| of the q8 models against the HF float32 logits (the bound of the q8 tests in
  // wasm-backend.test.ts: 0.03) and against the f32-activation GEMM: int13 stays as close as 'f32' does
  it('q8 fixtures (batch 2-3 × 37-41 tokens: prefill products of ≥ 32 rows): int13 within the q8 bound, close to the f32-activation GEMM', async () => {
    for (const name of ['mamba-tiny', 'mamba2-tiny', 'llama-tiny']) {
      const ref = loadReference(hfFixture(name));
      const m = await loadModel(hfFixture(name), { backend: 'wasm', threads: 2, weights: 'q8' });
      const be = m.lm.backend as WasmBackend;
      const want = ref.f32('logits');
      const scale = Math.max(...Array.from(want, Math.abs));
      be.q8Gemm = 'f32';
      const f = (await m.forward(ref.ids('input_ids'))).logits.data.slice();
      be.q8Gemm = 'int13';
      const i13 = (await m.forward(ref.ids('input_ids'))).logits.data.slice();
      const vsHf = maxAbsDiff(i13, want) / scale, vsF32 = maxAbsDiff(i13, f) / scale;
      assert.ok(vsHf <= 0.03, `${name}: int13 vs HF ${vsHf}`);
      assert.ok(vsF32 > 0 && vsF32 <= 3e-3, `${name}: int13 vs the f32-activation GEMM ${vsF32}`);
    }
  });
});

describe('wasm prefill GEMMs with x packed once (packXOnce)', () => {
  // [M, K, N]: M past MC (80) and not a multiple of MR, K past KC (256) and not a multiple of it, N past NC (512)
  const shapes: Array<[number, number, number]> = [[32, 32, 9], [81, 544, 520], [163, 96, 31], [200, 288, 1030]];
  // [weights, q8Gemm]: gemm_blocked on f32 / bf16 / q8 unpacked to f32; gemm_q8 at each activation width
  const runs: Array<[WeightDType, WasmQ8Gemm]> = [['f32', 'int13'], ['bf16', 'int13'], ['q8', 'f32'], ['q8', 'int13'], ['q8', 'int8'], ['q8', 'int7']];
  for (const threads of [1, 2, 3]) {
    it(`${threads} thread(s), f32 / bf16 / q8 weights, every q8Gemm, with and without a bias: the bits of packing per block, and really packed once`, () => {
      let seed = 700 + threads;
      for (const [weights, q8Gemm] of runs) {
        const be = new WasmBackend({ threads, weights, q8Gemm });
        if (!be.runtime.fused && !(weights === 'q8' && q8Gemm !== 'f32')) continue; // (the plain build: the tiles)
        const rt = be.runtime;
        const { run, runTeam } = rt;
        const seen: string[] = [];
        rt.run = (k, ...rest) => (seen.push(k), run.call(rt, k, ...rest));
        rt.runTeam = (k, ...rest) => (seen.push(k), runTeam.call(rt, k, ...rest));
        const kernel = weights === 'q8' && q8Gemm !== 'f32' ? 'gemm_q8' : 'gemm_blocked';
        try {
          for (const [M, K, N] of shapes) {
            const w = be.fromHost(randomArray(N * K, seed++, 0.5), [N, K], { matrix: true });
            const bias = be.fromHost(randomArray(N, seed++), [N]);
            const x = be.fromHost(randomArray(M * K, seed++, 2), [M, K]);
            for (const b of [null, bias]) {
              be.packXOnce = false;
              seen.length = 0;
              const want = be.linear(x, w, b).dataSync().slice();
              assert.deepEqual(seen, [kernel], `off: ${kernel} alone`);
              be.packXOnce = true;
              seen.length = 0;
              const got = be.linear(x, w, b).dataSync().slice();
              const packer = kernel === 'gemm_q8' ? (be.q8GemmKernel === 'v1' ? 'gemm_q8_pack_x' : 'gemm_q8_pack_x2') : 'gemm_pack_x';
              assert.deepEqual(seen, [packer, `${kernel}_prepacked`], 'on: packed once, then the product');
              assertBitEqual(got, want, `${weights} ${q8Gemm}: M=${M} K=${K} N=${N} bias=${!!b}`);
            }
          }
        } finally {
          rt.run = run;
          rt.runTeam = runTeam;
        }
      }
    });
  }
});
