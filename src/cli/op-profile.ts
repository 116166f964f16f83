/**
 * Where a backend's time goes: wraps every method of one backend instance so that each outermost call adds its
 * wall time, and the process's CPU time (all threads: a spinning worker counts, a descheduled one does not; where
 * `process.cpuUsage` exists), to a per-op total (linear calls are keyed by the weight's shape). For `mamba-ts bench
 * --profile` and `bench/wasm-decode.bench.ts --ops`. Wrapping costs a couple of microseconds per call; wasm work on
 * worker threads is inside the calls that start it.
 */
import type { Backend } from '../backend/backend.js';
import type { Tensor } from '../tensor/tensor.js';

/** CPU milliseconds of this process so far (all threads), or null where there is no such clock (browsers) */
export function cpuMsNow(): number | null {
  if (typeof process === 'undefined' || typeof process.cpuUsage !== 'function') return null;
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export interface OpProfileRow {
  op: string;
  calls: number;
  /** wall milliseconds */
  ms: number;
  /** share of the wall time */
  share: number;
  /** CPU milliseconds (all threads); NaN without a CPU clock */
  cpuMs: number;
}

export class OpProfile {
  private totals = new Map<string, { ms: number; cpuMs: number; calls: number }>();
  private depth = 0;

  constructor(backend: Backend) {
    const names = new Set<string>();
    for (let p = Object.getPrototypeOf(backend); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
      for (const k of Object.getOwnPropertyNames(p)) if (k !== 'constructor' && typeof (backend as unknown as Record<string, unknown>)[k] === 'function') names.add(k);
    }
    const target = backend as unknown as Record<string, (...a: unknown[]) => unknown>;
    for (const k of names) {
      const f = target[k];
      target[k] = (...a: unknown[]) => {
        if (this.depth > 0) return f.apply(backend, a);
        this.depth++;
        const c0 = cpuMsNow() ?? NaN, t0 = performance.now();
        try {
          return f.apply(backend, a);
        } finally {
          this.depth--;
          const key = k === 'linear' || k === 'linearArgmax' || k === 'linearTouching' ? `${k} ${(a[1] as Tensor).shape.join('×')}` : k;
          const e = this.totals.get(key) ?? { ms: 0, cpuMs: 0, calls: 0 };
          e.ms += performance.now() - t0;
          e.cpuMs += (cpuMsNow() ?? NaN) - c0;
          e.calls++;
          this.totals.set(key, e);
        }
      };
    }
  }

  reset(): void {
    this.totals.clear();
  }

  /**
   * rows [op, calls, ms, share of `wallMs`, CPU ms] sorted by time, plus the time outside backend calls (its CPU time:
   * `cpuMs`, the whole span's, less the ops'; NaN when not given)
   */
  rows(wallMs: number, cpuMs = NaN): OpProfileRow[] {
    const rows = [...this.totals].map(([op, e]) => ({ op, calls: e.calls, ms: e.ms, share: e.ms / wallMs, cpuMs: e.cpuMs })).sort((a, b) => b.ms - a.ms);
    const inside = rows.reduce((s, r) => s + r.ms, 0), insideCpu = rows.reduce((s, r) => s + r.cpuMs, 0);
    const outside = Math.max(0, wallMs - inside); // (timer rounding can make it a hair negative)
    rows.push({ op: '(outside backend calls)', calls: 0, ms: outside, share: outside / wallMs, cpuMs: Math.max(0, cpuMs - insideCpu) });
    return rows;
  }
}
