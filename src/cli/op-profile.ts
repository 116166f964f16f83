/**
 * Where a backend's time goes: wraps every method of one backend instance so that each outermost call adds its
 * wall time to a per-op total (linear calls are keyed by the weight's shape). For `mamba-ts bench --profile`.
 * Wrapping costs a couple of microseconds per call; wasm work on worker threads is inside the calls that start it.
 */
import type { Backend } from '../backend/backend.js';
import type { Tensor } from '../tensor/tensor.js';

export class OpProfile {
  private totals = new Map<string, { ms: number; calls: number }>();
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
        const t0 = performance.now();
        try {
          return f.apply(backend, a);
        } finally {
          this.depth--;
          const key = k === 'linear' || k === 'linearArgmax' ? `${k} ${(a[1] as Tensor).shape.join('×')}` : k;
          const e = this.totals.get(key) ?? { ms: 0, calls: 0 };
          e.ms += performance.now() - t0;
          e.calls++;
          this.totals.set(key, e);
        }
      };
    }
  }

  reset(): void {
    this.totals.clear();
  }

  /** rows [op, calls, ms, share of `wallMs`] sorted by time, plus the time outside backend calls */
  rows(wallMs: number): Array<{ op: string; calls: number; ms: number; share: number }> {
    const rows = [...this.totals].map(([op, e]) => ({ op, calls: e.calls, ms: e.ms, share: e.ms / wallMs })).sort((a, b) => b.ms - a.ms);
    const inside = rows.reduce((s, r) => s + r.ms, 0);
    const outside = Math.max(0, wallMs - inside); // (timer rounding can make it a hair negative)
    rows.push({ op: '(outside backend calls)', calls: 0, ms: outside, share: outside / wallMs });
    return rows;
  }
}
