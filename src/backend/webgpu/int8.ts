/**
 * The int8 GEMM of the WebGPU backend (gemm 'int8x1'…'int8x4'; kernels/gemm_int8.ts, the split's arithmetic in
 * ozaki.ts): which variant runs a product, the recording of one (x split per product, w's slices cached per weight
 * store), and the check that turns the subgroup-matrix product step on (at creation when `gemm` is an int8 kind, else
 * by `backend.enableInt8Gemm()`: until then the emulation runs).
 */
import type { KernelSpec } from './wgsl.js';
import type { GpuRuntime, Store } from './runtime.js';
import { MATMUL_I8, OZAKI_SPLIT, int8MatrixConfig, int8VariantError, int8VariantKey, int8WorkgroupBytes, parseInt8Variant, type Int8Variant } from './kernels/gemm_int8.js';
import { int8Blocking } from './ozaki.js';
import { packedFormat } from './kernels/matvec.js';
import { maxRelErr, type WebGpuBackend } from './backend.js';

/** the slices of an int8 GEMM choice ('int8x3' → 3), 0 for the others */
export function int8Slices(g: string): number {
  const m = /^int8x([1-4])$/.exec(g);
  return m ? Number(m[1]) : 0;
}

type Run = (spec: KernelSpec, roles: Store[], params: number[], grid: [number, number, number], variant: string) => void;

export class Int8Gemm {
  /**
   * the subgroup-matrix fragment, offset unit and layout syntax (`f${M}x${N}x${K}g${subgroup size}m${e|w}${b|t}`), set
   * by `check` once it matched the emulation on this device; null: the emulation runs (`note` says why)
   */
  mma: string | null = null;
  /** which product step runs, and why */
  note: string;
  /** K block forced (a multiple of 64; tests of the per-block exponents); undefined: the int32 bound's */
  blockK: number | undefined;
  /** tile rows forced (64 or 128; the bench, tests); undefined: 128 where the grid fills the GPU */
  tileM: 64 | 128 | undefined;
  /** K step forced (32 or 64; the bench, tests); undefined: 64 where the workgroup memory allows */
  kStep: 32 | 64 | undefined;
  /** weight slices by weight store and `${S}/${K block}` (see `forgetWeights`) */
  private weights = new WeakMap<Store, Map<string, { q: Store; e: Store }>>();

  constructor(
    private readonly rt: GpuRuntime,
    /** records a dispatch (the backend's, after its pending decode work) */
    private readonly run: Run,
    private readonly gpuCores: number,
  ) {
    this.note = rt.matrixConfigs.length === 0 ? 'emulated (no subgroup-matrix feature)' : 'emulated (the subgroup-matrix check has not run: it runs at creation when `gemm` is an int8 kind, else `await backend.enableInt8Gemm()`)';
  }

  /** the variant of an [M, ·] × [nb, ·]ᵀ product of S slices: real matrices where checked, tiles by the grid and the workgroup memory */
  variant(M: number, nb: number, S: number): Int8Variant {
    const m = this.mma ? /^f(\d+)x(\d+)x(\d+)g(\d+)m([ew])([bt])$/.exec(this.mma) : null;
    const base = m ? { cm: Number(m[1]), cn: Number(m[2]), ck: Number(m[3]), G: Number(m[4]), mma: m[5] as 'e' | 'w', syntax: m[6] as 'b' | 't' } : { cm: 16, cn: 16, ck: 32, G: 32, mma: null };
    const fits = (tm: number, ks: number) => int8WorkgroupBytes({ S, tm, ks, ...base }) <= this.rt.maxWorkgroupStorage && !int8VariantError({ S, tm, ks, ...base });
    let tm: 64 | 128 = this.tileM ?? (Math.ceil(M / 128) * Math.ceil(nb / 64) >= this.gpuCores ? 128 : 64);
    let ks: 32 | 64 = this.kStep ?? 64;
    if (!fits(tm, ks) && this.kStep === undefined) ks = 32;
    if (!fits(tm, ks)) tm = 64;
    if (!fits(tm, ks)) throw new Error(`webgpu: the int8 GEMM with ${S} slices, K step ${ks}, needs ${int8WorkgroupBytes({ S, tm, ks, ...base })} bytes of workgroup memory, the adapter allows ${this.rt.maxWorkgroupStorage}`);
    return { S, tm, ks, ...base };
  }

  /** the backend's kernel description of such a product (`gemmKernel`) */
  kernel(M: number, nb: number, S: number, K: number): { spec: KernelSpec; variant: string; tm: number; tn: number; name: string; kc: number; splits: number } {
    const v = this.variant(M, nb, S);
    return { spec: MATMUL_I8, variant: int8VariantKey(v), tm: v.tm, tn: 64, name: `int8x${S} ${v.mma ? `subgroup-matrix i8 ${v.cm}×${v.cn}×${v.ck}` : 'emulated'} ${v.tm}×64 k${v.ks}`, kc: K, splits: 1 };
  }

  /**
   * y (roles: x, w, bias, y; y's columns n0…n0+nb of N) = x·wᵀ (+ bias): x split per product (slices in the packed
   * pool, released once recorded), w's slices made at its first product and cached
   */
  record(roles: Store[], M: number, K: number, N: number, n0: number, nb: number, hasB: number, variant: string): void {
    const [x, w, bias, y] = roles;
    const v = parseInt8Variant(variant);
    const { Kp, KB, nblk } = int8Blocking(K, v.S, this.blockK);
    const Kw = Kp / 4;
    if (Math.ceil(nb / 64) > this.rt.maxWorkgroupsPerDim || Math.ceil(M / v.tm) > this.rt.maxWorkgroupsPerDim) throw new Error(`webgpu.linear: [${M}, ${K}] × [${nb}, ${K}]ᵀ needs more workgroups than the adapter allows`);
    const key = `${v.S}/${KB}`;
    let cache = this.weights.get(w);
    if (!cache) this.weights.set(w, (cache = new Map()));
    let ws = cache.get(key);
    if (!ws) {
      ws = { q: this.rt.alloc(this.rt.packPool, v.S * nb * Kw, 'int8 weight slices'), e: this.rt.alloc(this.rt.constPool, nb * nblk, 'int8 weight exponents') };
      this.run(OZAKI_SPLIT, [w, ws.q, ws.e], [nb, K, Kw, KB, nblk], this.rt.grid(nb * nblk), `${v.S}${packedFormat(w) ?? ''}`);
      cache.set(key, ws);
    }
    const xq = this.rt.alloc(this.rt.packPool, v.S * M * Kw, 'int8 slices of x');
    const xe = this.rt.alloc(this.rt.actPool, M * nblk, 'int8 exponents of x');
    // the GEMM reads the slices as 16-byte vectors: pool blocks are 64-byte aligned
    if (xq.off % 4 !== 0 || ws.q.off % 4 !== 0) throw new Error('webgpu: int8 slices not on 16-byte boundaries');
    this.run(OZAKI_SPLIT, [x, xq, xe], [M, K, Kw, KB, nblk], this.rt.grid(M * nblk), `${v.S}`);
    this.run(MATMUL_I8, [xq, xe, ws.q, ws.e, bias, y], [M, Kw, N, n0, nb, hasB, KB / 4, nblk], [Math.ceil(nb / 64), Math.ceil(M / v.tm), 1], variant);
    this.rt.release(xe);
    this.rt.release(xq);
  }

  /** drop the cached weight slices (after weights were written in place: the next product splits them again) */
  forgetWeights(): void {
    this.weights = new WeakMap();
  }

  /**
   * Turn the subgroup matrices on when the device has an i8→i32 configuration: a ragged product (2 slices, 2 K blocks)
   * with real matrices, 64- and 128-row tiles, K steps 32 and 64, must equal the emulation's (int32 sums are exact: max
   * relative difference ≤ 1e-6); offsets counted in i8 components first (as Dawn's sources say), then in words, each
   * with the layout as a bool argument, then as a template argument (later Dawn). Returns the reason when the
   * emulation stays (also in `note`).
   */
  async check(be: WebGpuBackend): Promise<string | null> {
    this.mma = null;
    const cfg = int8MatrixConfig(this.rt.matrixConfigs);
    const sg = this.rt.subgroupFixed;
    if (this.rt.matrixConfigs.length === 0) return (this.note = 'emulated (no subgroup-matrix feature)');
    if (!cfg) return (this.note = `emulated (no i8→i32 subgroup-matrix configuration among ${this.rt.matrixConfigs.map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K}`).join(', ')})`);
    if (!sg) return (this.note = 'emulated (the subgroup size is not fixed)');
    const M = 150, K = 100, N = 70;
    const xs = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
    const wv = Float32Array.from({ length: N * K }, (_, i) => Math.cos(i * 0.11));
    const x = be.fromHost(xs, [M, K]), w = be.fromHost(wv, [N, K], { matrix: true, float32: true });
    const saved = [be.gemm, this.blockK, this.tileM, this.kStep] as const;
    const notes: string[] = [];
    const product = async (mma: string | null, tm: 64 | 128, ks: 32 | 64): Promise<Float32Array> => {
      [this.mma, this.tileM, this.kStep] = [mma, tm, ks];
      const y = be.linear(x, w, null);
      try {
        return await be.read(y);
      } finally {
        y.dispose();
      }
    };
    try {
      be.gemm = 'int8x2';
      this.blockK = 64;
      const want = await product(null, 64, 32);
      for (const unit of ['eb', 'et', 'wb', 'wt']) {
        const key = `f${cfg.M}x${cfg.N}x${cfg.K}g${sg}m${unit}`;
        const err = int8VariantError({ S: 2, tm: 64, ks: 32, cm: cfg.M, cn: cfg.N, ck: cfg.K, G: sg, mma: unit[0] as 'e' });
        if (err) return (this.note = `emulated (${key}: ${err})`);
        try {
          const e = Math.max(maxRelErr(await product(key, 64, 32), want), maxRelErr(await product(key, 128, 32), want), maxRelErr(await product(key, 64, 64), want));
          if (e <= 1e-6) {
            this.mma = key;
            this.note = `subgroup-matrix i8 ${cfg.M}×${cfg.N}×${cfg.K}, offsets in ${unit[0] === 'e' ? 'components' : 'words'}, layout as a ${unit[1] === 'b' ? 'bool' : 'template'} argument (max relative difference ${e.toExponential(1)} from the emulation on the check)`;
            return null;
          }
          notes.push(`${key} differs from the emulation by ${e}`);
        } catch (e) {
          notes.push(`${key} failed: ${(e as Error).message}`);
        }
      }
      this.mma = null;
      return (this.note = `emulated (${notes.join('; ')})`);
    } catch (e) {
      this.mma = null;
      return (this.note = `emulated (the check failed: ${(e as Error).message})`);
    } finally {
      [be.gemm, this.blockK, this.tileM, this.kStep] = saved;
      x.dispose();
      w.dispose();
    }
  }
}
