/**
 * The blocked prefill GEMM (src/backend/wasm/assembly/gemm.ts, `gemm_blocked`): y = x · Wᵀ (+ bias) for W in f32,
 * bf16, f16 and q8, on shapes that are not multiples of its tiles and blocks (MR 5, NR 8, KC 256, MC 80, NC 512).
 * In the plain build (kernels.wasm, a multiply then an add) each element is exactly the f32 sum in k order, bias last,
 * as emulated here; in the relaxed-SIMD build (kernels-relaxed.wasm, fused multiply-adds) within the rounding bound of
 * such a sum. In both: the same bits for 1, 2 or 3 threads (the team's column slices), for any subset of rows, and
 * columns outside a thread's slice are never written. The backend with gemm 'blocked' and 'tiles' agrees on a model.
 */
import { describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/tensor/dtype.js';
import { randomArray } from '../helpers.js';
import { alloc, allocBytes, assertBitEqual, f32At, instantiateKernels, instantiateRelaxedKernels, put, resetArena } from './wasm-arena.js';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import { packQ8, unpackQ8 } from '../../src/backend/wasm/q8.js';

interface Kernels {
  gemm_blocked(x: number, w: number, scales: number, fmt: number, bias: number, y: number, M: number, K: number, N: number, scratch: number, t: number, T: number): void;
  gemm_scratch_bytes(): number;
  gemm_fused(): number;
}
const builds: Array<[string, Kernels]> = [['plain', instantiateKernels<Kernels>()], ['relaxed', instantiateRelaxedKernels<Kernels>()]];

type Fmt = 'f32' | 'bf16' | 'f16' | 'q8';
const FMT_CODE: Record<Fmt, number> = { f32: 0, bf16: 1, f16: 2, q8: 3 };

/** W's stored bytes (and q8 scales) and the exact f32 values they stand for */
function packW(fmt: Fmt, w: Float32Array): { data: Uint8Array; scales: Float32Array | null; exact: Float32Array } {
  const n = w.length;
  if (fmt === 'f32') return { data: new Uint8Array(w.buffer.slice(0)), scales: null, exact: w };
  if (fmt === 'q8') {
    const qs = new Int8Array(n), sc = new Float32Array(n / 32);
    const z = w.slice();
    for (let b = 3; b < n / 32; b += 7) z.fill(0, b * 32, (b + 1) * 32); // some all-zero blocks (scale 0)
    packQ8(z, qs, sc);
    return { data: new Uint8Array(qs.buffer), scales: sc, exact: unpackQ8(qs, sc) };
  }
  const u16 = new Uint16Array(n), exact = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    // f16: some subnormals and signed zeros too
    const v = fmt === 'f16' && i % 11 === 5 ? (i % 2 ? 3e-6 * (i % 5) : -0) : w[i];
    u16[i] = fmt === 'bf16' ? f32ToBf16(v) : f32ToF16(v);
    exact[i] = fmt === 'bf16' ? bf16ToF32(u16[i]) : f16ToF32(u16[i]);
  }
  return { data: new Uint8Array(u16.buffer), scales: null, exact };
}

/** the plain build's arithmetic: per element, acc = f32(acc + f32(x·w)) in k order from 0, then + bias */
function emulate(x: Float32Array, w: Float32Array, bias: Float32Array | null, M: number, K: number, N: number): Float32Array {
  const y = new Float32Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc = Math.fround(acc + Math.fround(x[i * K + k] * w[j * K + k]));
      y[i * N + j] = bias ? Math.fround(acc + bias[j]) : acc;
    }
  }
  return y;
}

/** max over elements of |y − exact| / ((K + 2) · 2^-23 · (Σ|x·w| + |bias|)): ≤ 1 is within the bound of an f32 sum */
function boundRatio(y: Float32Array, x: Float32Array, w: Float32Array, bias: Float32Array | null, M: number, K: number, N: number): number {
  let worst = 0;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0, a = 0;
      for (let k = 0; k < K; k++) {
        const p = x[i * K + k] * w[j * K + k];
        s += p;
        a += Math.abs(p);
      }
      if (bias) {
        s += bias[j];
        a += Math.abs(bias[j]);
      }
      const bound = (K + 2) * 2 ** -23 * a + 1e-30;
      worst = Math.max(worst, Math.abs(y[i * N + j] - s) / bound);
    }
  }
  return worst;
}

/** runs threads t = T−1 … 0 of a T-thread team call (the order must not matter) */
function call(k: Kernels, fmt: Fmt, x: number, w: number, sc: number, bias: number, y: number, M: number, K: number, N: number, T: number): void {
  const scratch = allocBytes(T * k.gemm_scratch_bytes());
  for (let t = T - 1; t >= 0; t--) k.gemm_blocked(x, w, sc, FMT_CODE[fmt], bias, y, M, K, N, scratch, t, T);
}

describe('wasm gemm_blocked', () => {
  it('the plain build multiplies then adds, the relaxed build fuses', () => {
    assert.equal(builds[0][1].gemm_fused(), 0);
    assert.equal(builds[1][1].gemm_fused(), 1);
  });

  // [M, K, N]: 1 and 3 (below a tile), 5/8 (one tile), 17, 81 (MC + 1), 513 rows; K 1, 3, 17, 257 (KC + 1), 288;
  // N 1, 3, 9, 17, 520 (NC + 8). q8 needs K % 32 == 0.
  const shapes: Array<[number, number, number]> = [[1, 1, 1], [3, 3, 3], [5, 17, 8], [17, 257, 17], [81, 64, 520], [513, 33, 9], [7, 3, 1]];
  const q8Shapes: Array<[number, number, number]> = [[1, 32, 1], [6, 64, 9], [17, 288, 17], [81, 32, 520], [513, 64, 3]];
  let seed = 4100;
  for (const [build, k] of builds) {
    for (const fmt of ['f32', 'bf16', 'f16', 'q8'] as const) {
      for (const [M, K, N] of fmt === 'q8' ? q8Shapes : shapes) {
        it(`${build} build, ${fmt}: M=${M} K=${K} N=${N}: ${build === 'plain' ? 'exact f32 sums' : 'within the f32 sum bound'}, same bits for 1-3 threads and row subsets`, () => {
          seed += 17;
          resetArena();
          const xv = randomArray(M * K, seed), wv = randomArray(N * K, seed + 1, 0.5), bv = randomArray(N, seed + 2);
          const p = packW(fmt, wv);
          const x = put(xv), w = put(p.data), sc = p.scales ? put(p.scales) : 0;
          for (const withBias of [false, true]) {
            const bias = withBias ? put(bv) : 0;
            const [y1, y1v] = alloc(M * N);
            y1v.fill(12345.678);
            call(k, fmt, x, w, sc, bias, y1, M, K, N, 1);
            const got = y1v.slice();
            if (build === 'plain') assertBitEqual(got, emulate(xv, p.exact, withBias ? bv : null, M, K, N), `${fmt} bias=${withBias} vs emulation`);
            else {
              const r = boundRatio(got, xv, p.exact, withBias ? bv : null, M, K, N);
              assert.ok(r <= 1, `${fmt} bias=${withBias}: error ${r} × the f32 sum bound`);
            }
            for (const T of [2, 3]) {
              const [y, yv] = alloc(M * N);
              yv.fill(-7);
              call(k, fmt, x, w, sc, bias, y, M, K, N, T);
              assertBitEqual(yv.slice(), got, `${fmt} bias=${withBias} T=${T}`);
            }
            // rows [r0, M) alone: the same bits as in the whole product
            const r0 = Math.floor(M / 3) + (M > 1 ? 1 : 0);
            if (r0 < M) {
              const [y, yv] = alloc((M - r0) * N);
              call(k, fmt, x + r0 * K * 4, w, sc, bias, y, M - r0, K, N, 2);
              assertBitEqual(yv.slice(), got.slice(r0 * N), `${fmt} bias=${withBias} rows ${r0}..${M}`);
            }
          }
          // one thread of three writes only its own columns (a slice aligned to 8)
          const [y, yv] = alloc(M * N);
          yv.fill(-7);
          const scratch = allocBytes(3 * k.gemm_scratch_bytes());
          k.gemm_blocked(x, w, sc, FMT_CODE[fmt], 0, y, M, K, N, scratch, 1, 3);
          const chunks = Math.ceil(N / 8);
          const lo = Math.min(N, Math.floor(chunks / 3) * 8), hi = Math.min(N, Math.floor((2 * chunks) / 3) * 8);
          const out = f32At(y, M * N);
          for (let i = 0; i < M; i++) {
            for (let j = 0; j < N; j++) {
              if (j < lo || j >= hi) assert.equal(out[i * N + j], -7, `column ${j} outside [${lo}, ${hi}) written`);
            }
          }
        });
      }
    }
  }
});

describe('wasm backend: gemm blocked vs tiles', () => {
  it('a 40-row product with bias, f32 and q8 weights, 2 threads: close to each other and to float64', () => {
    for (const weights of ['f32', 'q8'] as const) {
      const M = 40, K = 96, N = 70;
      // q8: gemm_blocked's f32 products (q8Gemm 'f32'; the integer GEMM is wasm-gemm-q8.test.ts's)
      const be = new WasmBackend({ threads: 2, weights, q8Gemm: 'f32' });
      const xv = randomArray(M * K, 7), wv = randomArray(N * K, 8, 0.3), bv = randomArray(N, 9);
      const w = be.fromHost(wv, [N, K], { matrix: true }), b = be.fromHost(bv, [N]), x = be.fromHost(xv, [M, K]);
      be.gemm = 'blocked';
      const yb = be.linear(x, w, b).dataSync();
      be.gemm = 'tiles';
      const yt = be.linear(x, w, b).dataSync();
      const exact = new Float32Array(w.dataSync()); // the weights the stored matrix stands for
      let eb = 0, et = 0, mx = 0;
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          let s = bv[j];
          for (let k = 0; k < K; k++) s += xv[i * K + k] * exact[j * K + k];
          eb = Math.max(eb, Math.abs(yb[i * N + j] - s));
          et = Math.max(et, Math.abs(yt[i * N + j] - s));
          mx = Math.max(mx, Math.abs(s));
        }
      }
      assert.ok(be.runtime.fused, 'the relaxed-SIMD kernels are loaded on this Node');
      assert.ok(eb / mx <= 1e-6, `${weights} blocked: ${eb / mx}`);
      // tiles: q8 products quantize the activations (13 bits)
      assert.ok(et / mx <= (weights === 'q8' ? 1e-3 : 1e-6), `${weights} tiles: ${et / mx}`);
      if (weights === 'q8') assert.ok(et > eb, 'q8: the tiles (quantized activations) differ from the blocked GEMM');
    }
  });
});

describe('wasm backend without relaxed SIMD (MAMBA_TS_WASM_RELAXED=0)', () => {
  /** a child process (its own V8 flags) with `env`: which build loaded, the V8 flags the library set, a blocked vs tiles product */
  const child = (env: NodeJS.ProcessEnv): { fused: boolean; same: boolean; flags: string[]; validates: boolean } => {
    const script = `
      import v8 from 'node:v8';
      import { syncBuiltinESMExports } from 'node:module';
      import { readFileSync } from 'node:fs';
      // every V8 flag set from here on is recorded (the library calls it through its node:v8 import)
      const flags = [], setFlags = v8.setFlagsFromString;
      v8.setFlagsFromString = (f) => (flags.push(f), setFlags(f));
      syncBuiltinESMExports();
      // whether this Node runs the relaxed build without a flag (22+) or needs one (20)
      const validates = WebAssembly.validate(readFileSync(new URL(${JSON.stringify(new URL('../../wasm/kernels-relaxed.wasm', import.meta.url).href)})));
      const { WasmBackend } = await import(${JSON.stringify(new URL('../../src/backend/wasm/index.js', import.meta.url).href)});
      const { randomArray } = await import(${JSON.stringify(new URL('../helpers.js', import.meta.url).href)});
      const be = new WasmBackend({ threads: 2 });
      const M = 40, K = 96, N = 70;
      const w = be.fromHost(randomArray(N * K, 8, 0.3), [N, K], { matrix: true }), x = be.fromHost(randomArray(M * K, 7), [M, K]);
      be.gemm = 'blocked';
      const yb = be.linear(x, w, null).dataSync();
      be.gemm = 'tiles';
      const yt = be.linear(x, w, null).dataSync();
      const same = yb.every((v, i) => Object.is(v, yt[i]));
      console.log(JSON.stringify({ fused: be.runtime.fused, same, flags, validates }));
      await be.runtime.close();`;
    // (a script file, not `node -e`: worker threads inherit the parent's exec arguments and refuse -e)
    const dir = mkdtempSync(join(tmpdir(), 'mamba-ts-gemm-'));
    const file = join(dir, 'plain.mjs');
    writeFileSync(file, script);
    try {
      const out = execFileSync(process.execPath, [file], { env, encoding: 'utf8', timeout: 120_000 });
      return JSON.parse(out.trim().split('\n').pop()!);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('loads the plain kernels and never sets the V8 flag; a 40-row product with gemm blocked runs the tiles (same bits as gemm tiles)', () => {
    const plain = child({ ...process.env, MAMBA_TS_WASM_RELAXED: '0' });
    assert.deepEqual({ fused: plain.fused, same: plain.same, flags: plain.flags }, { fused: false, same: true, flags: [] });
    // without the variable: the relaxed build, the flag set exactly where this Node needs it (the spy sees it)
    const env = { ...process.env };
    delete env.MAMBA_TS_WASM_RELAXED;
    const relaxed = child(env);
    assert.equal(relaxed.fused, true);
    assert.deepEqual(relaxed.flags, relaxed.validates ? [] : ['--experimental-wasm-relaxed-simd']);
  });
});
