// y[M, N] = x[M, K] · w[N, K]ᵀ (+ bias) for output columns [n0, n1) — f32 weights.
export function linear_f32(x: usize, w: usize, bias: usize, y: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  for (let i = 0; i < M; i++) {
    const xr = x + (<usize>i * <usize>K) * 4;
    for (let j = n0; j < n1; j++) {
      const wr = w + (<usize>j * <usize>K) * 4;
      let acc: f32 = 0;
      for (let k = 0; k < K; k++) acc += load<f32>(xr + (<usize>k) * 4) * load<f32>(wr + (<usize>k) * 4);
      if (bias) acc += load<f32>(bias + (<usize>j) * 4);
      store<f32>(y + (<usize>i * <usize>N + <usize>j) * 4, acc);
    }
  }
}
