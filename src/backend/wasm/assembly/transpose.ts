// Matrix transpose, f32, 128-bit SIMD: dst [C, R] = srcᵀ for src [R, C] row-major (the training GEMM's operand
// layouts, src/autograd/gemm.ts). 4×4 blocks transposed in registers, visited in 32×32 tiles so that both the rows
// read and the rows written stay in L1; the edges (R or C not a multiple of 4) element by element.

const TILE: i32 = 32;

export function transpose_f32(src: usize, dst: usize, R: i32, C: i32): void {
  const R4 = R & ~3;
  const C4 = C & ~3;
  const sRow = <usize>C << 2;
  const dRow = <usize>R << 2;
  for (let r0 = 0; r0 < R4; r0 += TILE) {
    const r1 = min(R4, r0 + TILE);
    for (let c0 = 0; c0 < C4; c0 += TILE) {
      const c1 = min(C4, c0 + TILE);
      for (let r = r0; r < r1; r += 4) {
        const sp = src + <usize>r * sRow;
        for (let c = c0; c < c1; c += 4) {
          const p = sp + (<usize>c << 2);
          const a0 = v128.load(p), a1 = v128.load(p + sRow), a2 = v128.load(p + 2 * sRow), a3 = v128.load(p + 3 * sRow);
          const t0 = v128.shuffle<f32>(a0, a1, 0, 4, 1, 5); // a00 a10 a01 a11
          const t1 = v128.shuffle<f32>(a2, a3, 0, 4, 1, 5); // a20 a30 a21 a31
          const t2 = v128.shuffle<f32>(a0, a1, 2, 6, 3, 7); // a02 a12 a03 a13
          const t3 = v128.shuffle<f32>(a2, a3, 2, 6, 3, 7); // a22 a32 a23 a33
          const q = dst + <usize>c * dRow + (<usize>r << 2);
          v128.store(q, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
          v128.store(q + dRow, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7));
          v128.store(q + 2 * dRow, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5));
          v128.store(q + 3 * dRow, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7));
        }
      }
    }
  }
  // edges: rows ≥ R4 (all columns) and columns ≥ C4 (rows < R4)
  for (let r = R4; r < R; r++) for (let c = 0; c < C; c++) store<f32>(dst + ((<usize>c * <usize>R + <usize>r) << 2), load<f32>(src + ((<usize>r * <usize>C + <usize>c) << 2)));
  for (let r = 0; r < R4; r++) for (let c = C4; c < C; c++) store<f32>(dst + ((<usize>c * <usize>R + <usize>r) << 2), load<f32>(src + ((<usize>r * <usize>C + <usize>c) << 2)));
}
