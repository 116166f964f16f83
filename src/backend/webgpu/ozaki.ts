/**
 * The Ozaki split of the int8 GEMM (kernels/gemm_int8.ts), on the host: the reference its GPU kernels are
 * tested against, and the arithmetic they implement, in one place.
 *
 * A row of K values (zero-padded to a multiple of 64, the GEMM's largest K step) is cut into blocks of KB (a multiple of 64); each block gets the power-of-two exponent e of
 * its largest |value| (max < 2^e, from frexp), and each value v becomes S signed int8 slices q_0…q_{S−1}:
 *   t_0 = v·2^(7−e)  (|t_0| < 128),  q_s = trunc(t_s) and t_{s+1} = (t_s − q_s)·128 for s < S − 1,
 *   q_{S−1} = round-half-even(t_{S−1}) clamped to ±127,
 * so v = 2^e · Σ_s q_s·2^(−7(s+1)) + an error below 2^(e−7S) (each step is exact in float32: a power-of-two
 * scaling and the subtraction of a value's own integer part). The product of two split rows over one block is
 *   x·w = 2^(ex+ew) · Σ_{i,j} 2^(−7(i+j+2)) · (q^x_i · q^w_j),
 * of which the S(S+1)/2 pairs with i + j < S are kept (the others are below 2^(ex+ew−7S−7)·KB·127). The pairs
 * of one level t = i + j add up in one int32: at most S pairs of KB products of |q| ≤ 127, so S·127²·KB < 2^31
 * bounds KB (`int8BlockLimit`). Values not finite are not supported (their block's exponent is meaningless).
 */

/** the largest K block (a multiple of 64) whose level sums of S pairs cannot overflow an int32 */
export function int8BlockLimit(S: number): number {
  return Math.floor((2 ** 31 - 1) / (S * 127 * 127) / 64) * 64;
}

/** the padded row length (a multiple of 64), the K block and the number of blocks of a split of S slices */
export function int8Blocking(K: number, S: number, forced?: number): { Kp: number; KB: number; nblk: number } {
  if (!Number.isInteger(S) || S < 1 || S > 4) throw new Error(`int8 GEMM: slices S must be 1, 2, 3 or 4, got ${S}`);
  const Kp = Math.max(64, Math.ceil(K / 64) * 64);
  const limit = int8BlockLimit(S);
  if (forced !== undefined && (!Number.isInteger(forced) || forced < 64 || forced % 64 !== 0 || forced > limit)) {
    throw new Error(`int8 GEMM: a K block must be a multiple of 64 from 64 to ${limit} for ${S} slices (int32 sums), got ${forced}`);
  }
  const KB = Math.min(Kp, forced ?? limit);
  return { Kp, KB, nblk: Math.ceil(Kp / KB) };
}

/** round half to even (WGSL's round) */
export function roundEven(t: number): number {
  const r = Math.round(t);
  return Math.abs(t - Math.trunc(t)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** exponent e with |m| < 2^e ≤ 2|m| (frexp's), 0 for m = 0 */
export function frexpExp(m: number): number {
  if (m === 0) return 0;
  let e = Math.floor(Math.log2(m)) + 1;
  if (2 ** (e - 1) > m) e--;
  if (2 ** e <= m) e++;
  return e;
}

export interface Int8Split {
  S: number;
  rows: number;
  K: number;
  Kp: number;
  KB: number;
  nblk: number;
  /** slices [S, rows, Kp] (zero past K) */
  q: Int8Array;
  /** exponents [rows, nblk] */
  e: Int32Array;
}

/** the split of a [rows, K] row-major float32 matrix into S int8 slices per value (see the module comment) */
export function int8Split(data: Float32Array, rows: number, K: number, S: number, forcedKB?: number): Int8Split {
  if (data.length !== rows * K) throw new Error(`int8Split: ${data.length} values for [${rows}, ${K}]`);
  const { Kp, KB, nblk } = int8Blocking(K, S, forcedKB);
  const q = new Int8Array(S * rows * Kp);
  const e = new Int32Array(rows * nblk);
  const f = new Float32Array(1);
  const f32 = (v: number) => ((f[0] = v), f[0]);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nblk; b++) {
      const k0 = b * KB, k1 = Math.min(K, k0 + KB);
      let m = 0;
      for (let k = k0; k < k1; k++) m = Math.max(m, Math.abs(data[r * K + k]));
      const ex = frexpExp(m);
      e[r * nblk + b] = ex;
      for (let k = k0; k < k1; k++) {
        let t = f32(data[r * K + k] * 2 ** (7 - ex));
        for (let s = 0; s < S; s++) {
          const d = s + 1 < S ? Math.trunc(t) : Math.max(-127, Math.min(127, roundEven(t)));
          q[(s * rows + r) * Kp + k] = d;
          t = f32((t - d) * 128);
        }
      }
    }
  }
  return { S, rows, K, Kp, KB, nblk, q, e };
}

/** the value a split holds for row r, column k (float64) */
export function int8Value(sp: Int8Split, r: number, k: number): number {
  let v = 0;
  for (let s = 0; s < sp.S; s++) v += sp.q[(s * sp.rows + r) * sp.Kp + k] * 2 ** (-7 * (s + 1));
  return v * 2 ** sp.e[r * sp.nblk + Math.floor(k / sp.KB)];
}

/**
 * y = x·wᵀ from two splits as the GPU kernel forms it: int32 level sums per K block (checked against the bound),
 * converted to float and combined with the exponents — in float64 here (the kernel combines in float32).
 */
export function int8Product(xs: Int8Split, ws: Int8Split): Float64Array {
  if (xs.S !== ws.S || xs.Kp !== ws.Kp || xs.KB !== ws.KB) throw new Error('int8Product: splits of different S or blocking');
  const { S, Kp, KB, nblk } = xs;
  const M = xs.rows, N = ws.rows;
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let b = 0; b < nblk; b++) {
        let lv = 0;
        for (let t = 0; t < S; t++) {
          let c = 0;
          for (let i = 0; i <= t; i++) {
            const xo = (i * M + m) * Kp, wo = ((t - i) * N + n) * Kp;
            for (let k = b * KB; k < Math.min(Kp, (b + 1) * KB); k++) c += xs.q[xo + k] * ws.q[wo + k];
          }
          if (Math.abs(c) > 2 ** 31 - 1) throw new Error(`int8Product: level sum ${c} overflows int32`);
          lv += c * 2 ** (-7 * (t + 2));
        }
        acc += lv * 2 ** (xs.e[m * nblk + b] + ws.e[n * nblk + b]);
      }
      y[m * N + n] = acc;
    }
  }
  return y;
}
