// Memory-bandwidth probe: read f32 elements [lo, hi) of `src` with 4 independent SIMD accumulators and
// store the sum at out + 4·slot (so the reads cannot be optimised away). slot = lo / chunk.
export function stream_sum(src: usize, out: usize, chunk: i32, lo: i32, hi: i32): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let i = lo;
  for (; i + 16 <= hi; i += 16) {
    const p = src + (<usize>i) * 4;
    a0 = f32x4.add(a0, v128.load(p));
    a1 = f32x4.add(a1, v128.load(p, 16));
    a2 = f32x4.add(a2, v128.load(p, 32));
    a3 = f32x4.add(a3, v128.load(p, 48));
  }
  let s: f32 = 0;
  for (; i < hi; i++) s += load<f32>(src + (<usize>i) * 4);
  const t = f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3));
  s += f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1) + f32x4.extract_lane(t, 2) + f32x4.extract_lane(t, 3);
  store<f32>(out + (<usize>(lo / chunk)) * 4, s);
}


// Arithmetic probes (bench/wasm-gemm.bench.ts): what this engine's wasm SIMD reaches on this core.

/**
 * `iters` iterations of 12 independent chains acc = acc · c + d on f32x4 (96 flops per iteration: 48 multiplies,
 * 48 adds, no fused multiply-add in plain wasm SIMD); the sum lands at out so nothing is optimized away.
 */
export function peak_mul_add(iters: i32, out: usize): void {
  const c = f32x4.splat(0.999), d = f32x4.splat(0.001);
  let a0 = f32x4.splat(0.1), a1 = f32x4.splat(0.2), a2 = f32x4.splat(0.3), a3 = f32x4.splat(0.4);
  let a4 = f32x4.splat(0.5), a5 = f32x4.splat(0.6), a6 = f32x4.splat(0.7), a7 = f32x4.splat(0.8);
  let a8 = f32x4.splat(0.9), a9 = f32x4.splat(1.0), a10 = f32x4.splat(1.1), a11 = f32x4.splat(1.2);
  for (let i = 0; i < iters; i++) {
    a0 = f32x4.add(f32x4.mul(a0, c), d); a1 = f32x4.add(f32x4.mul(a1, c), d);
    a2 = f32x4.add(f32x4.mul(a2, c), d); a3 = f32x4.add(f32x4.mul(a3, c), d);
    a4 = f32x4.add(f32x4.mul(a4, c), d); a5 = f32x4.add(f32x4.mul(a5, c), d);
    a6 = f32x4.add(f32x4.mul(a6, c), d); a7 = f32x4.add(f32x4.mul(a7, c), d);
    a8 = f32x4.add(f32x4.mul(a8, c), d); a9 = f32x4.add(f32x4.mul(a9, c), d);
    a10 = f32x4.add(f32x4.mul(a10, c), d); a11 = f32x4.add(f32x4.mul(a11, c), d);
  }
  const s = f32x4.add(f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7))),
                      f32x4.add(f32x4.add(a8, a9), f32x4.add(a10, a11)));
  v128.store(out, s);
}

/**
 * `iters` iterations of 8 dependent f32x4 adds (one chain): its rate × the add latency (cycles) estimates the clock.
 */
export function add_chain(iters: i32, out: usize): void {
  const d = f32x4.splat(1e-7);
  let a = f32x4.splat(1.0);
  for (let i = 0; i < iters; i++) {
    a = f32x4.add(a, d); a = f32x4.add(a, d); a = f32x4.add(a, d); a = f32x4.add(a, d);
    a = f32x4.add(a, d); a = f32x4.add(a, d); a = f32x4.add(a, d); a = f32x4.add(a, d);
  }
  v128.store(out, a);
}
