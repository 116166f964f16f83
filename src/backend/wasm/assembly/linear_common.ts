// What the linear kernels share (linear.ts: f32/bf16/f16 weights; linear_q8.ts: q8 weights): the software prefetch
// (cache-line touches) and the reductions and stores of results. Not a module of kernels: index.ts does not export it.

// ---------------------------------------------------------------------------------------------------------------
// per-instance state (wasm globals: each worker thread has its own instance)

/** where the words loaded by the cache-line touches go, so that they are not optimized away */
let pfSink: u32 = 0;

// Software prefetch: wasm has no prefetch instruction, but a plain load of one word per 64-byte line of the data
// needed next gets those lines (and their TLB entries: wasm memory sits on 4 KiB pages) moving while the current
// data is computed on. For M = 1 this is worth 1.3-1.6x.

/** loads one word of each 64-byte line of part `step` (of `chunk` bytes) of [p, p + total) */
// @ts-ignore: decorator
@inline export function touchPart(p: usize, total: usize, chunk: usize, step: i32): void {
  const o0 = <usize>step * chunk;
  const o1 = min(o0 + chunk, total);
  let junk: u32 = 0;
  for (let o = o0; o < o1; o += 64) junk ^= load<u32>(p + o);
  pfSink ^= junk;
}

/** bytes per part when touching `total` bytes in `nsteps` parts (whole lines) */
// @ts-ignore: decorator
@inline export function pfChunk(total: usize, nsteps: i32): usize {
  return ((total / <usize>max(nsteps, 1)) + 63) & ~63;
}

/** feeds `junk` (words loaded by a kernel's own touches) to the sink, so that the loads are not optimized away */
// @ts-ignore: decorator
@inline export function sinkTouches(junk: u32): void {
  pfSink ^= junk;
}

// ---------------------------------------------------------------------------------------------------------------
// reductions / stores

/** horizontal sum of one f32x4 */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  const s = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

/** [hsum(a), hsum(b), hsum(c), hsum(d)] */
// @ts-ignore: decorator
@inline export function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

/** y[j..j+3] = v (+ bias[j..j+3]); y points at the row */
// @ts-ignore: decorator
@inline export function store4(y: usize, bias: usize, j: i32, v: v128): void {
  if (bias) v = f32x4.add(v, v128.load(bias + (<usize>j << 2)));
  v128.store(y + (<usize>j << 2), v);
}

/** y[j], y[j+1] = lanes 0, 1 of v (+ bias) */
// @ts-ignore: decorator
@inline export function store2(y: usize, bias: usize, j: i32, v: v128): void {
  if (bias) v = f32x4.add(v, v128.load64_zero(bias + (<usize>j << 2)));
  v128.store64_lane(y + (<usize>j << 2), v, 0);
}

/** y[j] = v (+ bias[j]) */
// @ts-ignore: decorator
@inline export function store1(y: usize, bias: usize, j: i32, v: f32): void {
  if (bias) v += load<f32>(bias + (<usize>j << 2));
  store<f32>(y + (<usize>j << 2), v);
}

// ---------------------------------------------------------------------------------------------------------------
// prefetch of the next matrix-vector product's weights (the decode step kernels, mamba1_step / mamba2_step)

/**
 * Touches part `part` of `nparts` of what thread t of T will read first in the next M = 1 linear call (its row
 * slice, as the runtime splits rows: sliceLo/sliceHi with align 4), at most `budget` bytes of weights (q: rows of
 * qRowB bytes) and the matching share of the scales (s: rows of sRowB bytes; 0 = none). q = 0: nothing to do.
 * A step kernel calls this between its pieces of compute, so that the lines arrive (into this core's L2 and the
 * shared L3) while the memory would otherwise stand idle, and the linear that follows starts on cached rows.
 */
export function touchNextRows(q: usize, qRowB: usize, s: usize, sRowB: usize, rows: i32, budget: usize,
                              t: i32, T: i32, part: i32, nparts: i32): void {
  if (!q || rows <= 0 || nparts <= 0) return;
  const chunks = (rows + 3) >> 2;
  const r0 = min(rows, <i32>((<i64>chunks * t) / T) << 2);
  const r1 = t == T - 1 ? rows : min(rows, <i32>((<i64>chunks * (t + 1)) / T) << 2);
  if (r1 <= r0) return;
  const n = <usize>(r1 - r0);
  const qTotal = min(n * qRowB, budget);
  touchPart(q + <usize>r0 * qRowB, qTotal, pfChunk(qTotal, nparts), part);
  if (s) {
    const sTotal = min(n * sRowB, (qTotal / qRowB + 1) * sRowB);
    touchPart(s + <usize>r0 * sRowB, sTotal, pfChunk(sTotal, nparts), part);
  }
}
