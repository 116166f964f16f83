// Team kernels: a kernel that every thread of the pool runs at once as thread t of T (WasmRuntime.runTeam), each
// taking its share of each phase and meeting the others at a barrier between phases. One dispatch then covers a
// chain of small dependent steps (a decode step of a layer) that would otherwise cost one dispatch each.

/** [lo, hi) of [0, n) for thread t of T, boundaries aligned to `align` (the JS runtime's `slice`) */
// @ts-ignore: decorator
@inline export function sliceLo(t: i32, T: i32, n: i32, align: i32): i32 {
  const chunks = (n + align - 1) / align;
  return min(n, <i32>((<i64>chunks * t) / T) * align);
}
// @ts-ignore: decorator
@inline export function sliceHi(t: i32, T: i32, n: i32, align: i32): i32 {
  if (t == T - 1) return n;
  const chunks = (n + align - 1) / align;
  return min(n, <i32>((<i64>chunks * (t + 1)) / T) * align);
}

/**
 * Barrier `phase` (1, 2, …) of a team call: the i32 at `counter` (zero when the call starts) counts arrivals, so
 * phase p is passed when it reaches p·T. Waiters poll, then sleep in short timed waits (a thread the OS has
 * descheduled may be late), and the last arrival wakes them.
 */
export function teamBarrier(counter: usize, phase: i32, T: i32): void {
  if (T <= 1) return;
  const target = phase * T;
  if (atomic.add<i32>(counter, 1) + 1 >= target) {
    atomic.notify(counter, T);
    return;
  }
  let spins = 0;
  for (;;) {
    const v = atomic.load<i32>(counter);
    if (v >= target) return;
    if (++spins > 20000) memory.atomic.wait32(counter, v, 50000); // 50 µs
  }
}

/**
 * `teamBarrier` in two halves (a split-phase barrier): `teamArrive` counts this thread in without waiting, so it can do
 * work that needs nothing from the others before `teamWait` waits for phase `phase` to be passed.
 */
export function teamArrive(counter: usize, phase: i32, T: i32): void {
  if (T <= 1) return;
  if (atomic.add<i32>(counter, 1) + 1 >= phase * T) atomic.notify(counter, T);
}
export function teamWait(counter: usize, phase: i32, T: i32): void {
  if (T <= 1) return;
  const target = phase * T;
  let spins = 0;
  for (;;) {
    const v = atomic.load<i32>(counter);
    if (v >= target) return;
    if (++spins > 20000) memory.atomic.wait32(counter, v, 50000); // 50 µs
  }
}
