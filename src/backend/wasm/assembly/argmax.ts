// The greedy pick of decode: the index of each row's largest value, where the logits are (no copy out of wasm memory).
//
// Oracle: `argmax` in src/generate/sampling.ts — the first index on ties, NaN never picked, −∞ never picked (−1 when a
// row has no finite or +∞ value). Pass 1 takes the row's maximum with pmax (a NaN lane leaves the running maximum as
// it was), pass 2 returns the first index holding it.

/** out[m] (i32) = argmax of row m of x [M, V], rows [m0, m1) */
export function argmax_rows(x: usize, V: i32, out: usize, m0: i32, m1: i32): void {
  for (let m = m0; m < m1; m++) {
    const p = x + ((<usize>m * V) << 2);
    const ninf = f32x4.splat(-Infinity);
    let a0 = ninf, a1 = ninf, a2 = ninf, a3 = ninf;
    let k = 0;
    for (; k + 16 <= V; k += 16) {
      const q = p + (<usize>k << 2);
      a0 = f32x4.pmax(a0, v128.load(q));
      a1 = f32x4.pmax(a1, v128.load(q, 16));
      a2 = f32x4.pmax(a2, v128.load(q, 32));
      a3 = f32x4.pmax(a3, v128.load(q, 48));
    }
    const a = f32x4.pmax(f32x4.pmax(a0, a1), f32x4.pmax(a2, a3));
    // (the lanes hold no NaN: pmax keeps the running value when the new one is NaN)
    let best: f32 = f32x4.extract_lane(a, 0);
    const a1v = f32x4.extract_lane(a, 1), a2v = f32x4.extract_lane(a, 2), a3v = f32x4.extract_lane(a, 3);
    if (a1v > best) best = a1v;
    if (a2v > best) best = a2v;
    if (a3v > best) best = a3v;
    for (let j = k; j < V; j++) {
      const v = load<f32>(p + (<usize>j << 2));
      if (v > best) best = v;
    }
    let idx = -1;
    if (best > -Infinity) {
      const b = f32x4.splat(best);
      let j = 0;
      for (; j + 4 <= V; j += 4) {
        if (v128.any_true(f32x4.eq(v128.load(p + (<usize>j << 2)), b))) break;
      }
      for (; j < V; j++) {
        if (load<f32>(p + (<usize>j << 2)) == best) { idx = j; break; }
      }
    }
    store<i32>(out + (<usize>m << 2), idx);
  }
}
