/**
 * The prefill GEMM shapes the GEMM benches time ([what, K, N], x [M, K] · wᵀ with w [N, K]), one list for
 * bench/gemm.bench.ts and bench/gemm-sweep.bench.ts: the 130m models (d_model 768, d_inner 1536; vocab 50280, Mamba-2's
 * padded 50288), llama-130m (12 heads, SwiGLU 2048; linearMany runs q/k/v as one product of 768 → 2304 where it
 * fuses them), the 2.8b shapes (d_model 2560, d_inner 5120), and two tiny ones for software adapters; and the inputs
 * both fill them with.
 */
export type GemmShape = [what: string, K: number, N: number];

export const GEMM_SHAPE_SETS: Readonly<Record<string, readonly GemmShape[]>> = {
  '130m': [
    ['mamba2 in_proj 768→3352', 768, 3352],
    ['out_proj 1536→768', 1536, 768],
    ['mamba2 lm_head 768→50288', 768, 50288],
    ['mamba in_proj 768→3072', 768, 3072],
    ['mamba x_proj 1536→80', 1536, 80],
    ['mamba dt_proj 48→1536', 48, 1536],
    ['lm_head 768→50280 (mamba, llama)', 768, 50280],
  ],
  llama: [
    ['llama q/k/v/o 768→768', 768, 768],
    ['llama qkv fused 768→2304', 768, 2304],
    ['llama gate/up 768→2048', 768, 2048],
    ['llama down 2048→768', 2048, 768],
  ],
  '2.8b': [
    ['2.8b in_proj 2560→10240', 2560, 10240],
    ['2.8b out_proj 5120→2560', 5120, 2560],
    ['mamba2-2.7b in_proj 2560→10576', 2560, 10576],
    ['2.8b lm_head 2560→50280', 2560, 50280],
  ],
  tiny: [
    ['tiny 72→40', 72, 40],
    ['tiny 40→132', 40, 132],
  ],
};

/** n values uniform in [−1, 1) from a linear congruential generator seeded with `seed` (the GEMM benches' x and w) */
export function gemmInput(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = (s / 2 ** 32 - 0.5) * 2;
  }
  return a;
}
