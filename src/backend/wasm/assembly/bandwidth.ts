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

/**
 * Read+write probe (bench/m2-state.bench.ts): f32 elements [lo, hi) of `buf` updated in place, v = a·v + b, 4 vectors
 * per iteration — the memory traffic of a decode step's SSM state (each line read once and written back once).
 */
export function stream_rw(buf: usize, a: f32, b: f32, lo: i32, hi: i32): void {
  const av = f32x4.splat(a), bv = f32x4.splat(b);
  let i = lo;
  for (; i + 16 <= hi; i += 16) {
    const p = buf + (<usize>i) * 4;
    const v0 = v128.load(p), v1 = v128.load(p, 16), v2 = v128.load(p, 32), v3 = v128.load(p, 48);
    v128.store(p, f32x4.add(f32x4.mul(av, v0), bv));
    v128.store(p, f32x4.add(f32x4.mul(av, v1), bv), 16);
    v128.store(p, f32x4.add(f32x4.mul(av, v2), bv), 32);
    v128.store(p, f32x4.add(f32x4.mul(av, v3), bv), 48);
  }
  for (; i < hi; i++) {
    const p = buf + (<usize>i) * 4;
    store<f32>(p, a * load<f32>(p) + b);
  }
}
