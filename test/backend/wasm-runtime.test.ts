/** The wasm runtime's allocator (no overlap, reuse, coalescing) and thread slicing. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { Heap, slice, SplitGovernor, WasmMemoryError, WasmRuntime } from '../../src/backend/wasm/runtime.js';

it('heap: live blocks never overlap; freed space is reused and coalesced; the memory grows on demand', () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1024, shared: true });
  const heap = new Heap(memory, 65536);
  let seed = 5;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
  const live = new Map<number, number>();
  for (let step = 0; step < 3000; step++) {
    if (live.size > 0 && rnd(3) === 0) {
      const keys = [...live.keys()];
      const off = keys[rnd(keys.length)];
      heap.release(off);
      live.delete(off);
    } else {
      const bytes = 1 + rnd(100_000);
      const off = heap.alloc(bytes);
      assert.equal(off % 64, 0);
      assert.ok(off + bytes <= memory.buffer.byteLength, 'inside the (grown) memory');
      for (const [o, b] of live) assert.ok(off + bytes <= o || o + b <= off, `block ${off}+${bytes} overlaps ${o}+${b}`);
      live.set(off, bytes);
    }
  }
  for (const off of live.keys()) heap.release(off);
  assert.equal(heap.bytesInUse, 0);
  // everything was given back: the next allocation starts at the base again
  assert.equal(heap.alloc(10), 65536);
});

it('heap: asking for more than the memory can hold is a WasmMemoryError that says what to do', () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 4, shared: true });
  const heap = new Heap(memory, 65536);
  heap.alloc(65536); // fits (grows to 2 pages)
  assert.throws(() => heap.alloc(4 * 65536), (e: unknown) => e instanceof WasmMemoryError && /at most 4 GiB/.test(e.message) && /--dtype bf16\|q8/.test(e.message));
});

it('slice: thread slices cover [0, n) exactly, aligned', () => {
  for (const [n, used, align] of [[100, 2, 4], [7, 2, 4], [1536, 3, 4], [24, 2, 1], [5, 4, 1]]) {
    let at = 0;
    for (let t = 0; t < used; t++) {
      const [lo, hi] = slice(t, used, n, align, used);
      assert.equal(lo, at);
      assert.ok(hi >= lo);
      if (t < used - 1) assert.equal(hi % align, 0);
      at = hi;
    }
    assert.equal(at, n);
  }
});

it('run: a kernel split across 2 worker threads gives exactly the single-thread result', async () => {
  const { WasmRuntime } = await import('../../src/backend/wasm/runtime.js');
  const rt2 = WasmRuntime.get(2);
  const [M, K, N] = [3, 64, 1001];
  const x = rt2.heap.alloc(M * K * 4), w = rt2.heap.alloc(N * K * 4), y1 = rt2.heap.alloc(M * N * 4), y2 = rt2.heap.alloc(M * N * 4);
  let s = 7;
  const r = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
  rt2.f32(x, M * K).forEach((_, i, a) => (a[i] = r()));
  rt2.f32(w, N * K).forEach((_, i, a) => (a[i] = r()));
  rt2.kernels.linear_f32(x, w, 0, y1, M, K, N, 0, N); // this thread alone
  rt2.run('linear_f32', [x, w, 0, y2, M, K, N], N, 4); // split (work defaults to "large")
  assert.deepEqual(rt2.f32(y2, M * N), rt2.f32(y1, M * N));
  for (const o of [x, w, y1, y2]) rt2.heap.release(o);
});

it('split governor: one thread after 3 late calls in a row, for 20 ms then doubling while late; on time resets it', () => {
  const g = new SplitGovernor(true);
  let now = 0;
  assert.equal(g.split(now), true);
  // two late calls and one on time: still splitting
  g.record(now, false, 0.1, 0);
  g.record(now, true, 0.1, 0.5);
  g.record(now, true, 0.1, 0.01);
  assert.equal(g.split(now), true);
  // a worker that had not started by the end of a tiny share (a wake-up) is not late
  for (let i = 0; i < 5; i++) g.record(now, false, 0.005, 0.01);
  assert.equal(g.split(now), true);
  // three late in a row: alone for 20 ms
  for (let i = 0; i < 3; i++) g.record(now, i === 1, 0.1, i === 1 ? 0.5 : 0);
  assert.equal(g.fallbacks, 1);
  assert.equal(g.split(now + 19), false);
  assert.equal(g.split(now + 20), true);
  // late again at once: 40 ms
  now += 20;
  for (let i = 0; i < 3; i++) g.record(now, false, 0.2, 0);
  assert.equal(g.split(now + 39), false);
  assert.equal(g.split(now + 40), true);
  // on time: back to 20 ms next time
  now += 40;
  g.record(now, true, 0.2, 0.01);
  for (let i = 0; i < 3; i++) g.record(now, false, 0.2, 0);
  assert.equal(g.split(now + 19), false);
  assert.equal(g.split(now + 20), true);
  assert.equal(g.soloCalls, 3);
  // off: always split
  const off = new SplitGovernor(false);
  for (let i = 0; i < 5; i++) off.record(0, false, 1, 5);
  assert.equal(off.split(1), true);
});

it('run: with the split governor on, results are the same whether calls are split or not', async () => {
  const rt = WasmRuntime.get(2);
  const was = rt.governor.enabled;
  rt.governor.enabled = true;
  try {
    const K = 64, N = 1024;
    const x = rt.heap.alloc(K * 4), w = rt.heap.alloc(N * K * 4), y1 = rt.heap.alloc(N * 4), y2 = rt.heap.alloc(N * 4);
    const xs = rt.f32(x, K), ws = rt.f32(w, N * K);
    for (let i = 0; i < K; i++) xs[i] = Math.sin(i);
    for (let i = 0; i < N * K; i++) ws[i] = Math.cos(i * 0.37);
    rt.kernels.linear_f32(x, w, 0, y1, 1, K, N, 0, N);
    for (let r = 0; r < 50; r++) {
      rt.run('linear_f32', [x, w, 0, y2, 1, K, N], N, 4);
      assert.deepEqual(rt.f32(y2, N), rt.f32(y1, N));
    }
    for (const o of [x, w, y1, y2]) rt.heap.release(o);
  } finally {
    rt.governor.enabled = was;
  }
});
