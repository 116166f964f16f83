/**
 * Explicit tensor lifetimes: scopes that dispose the tensors created inside them, and storage shared by
 * several tensors (reshape views) released only when the last of them is disposed.
 *
 *   const y = scope(() => ops.linear(ops.rmsNorm(x, w, eps), W));   // the normed x is disposed, y is not
 *   const out = await scopeAsync(async () => { …; return { logits, hidden } });
 *
 * A scope owns every tensor created while it is the current scope, except those marked with `keep()`. When it
 * ends, it disposes what it owns, except the tensors found in its result (a tensor, or arrays and plain
 * objects holding tensors), which pass to the enclosing scope (or to none: then only `dispose()` or the
 * garbage collector frees them). Scopes nest; a scope ended early hands later arrivals to the nearest open
 * enclosing scope. On error the scope disposes everything it owns (nothing is returned).
 *
 * Long-lived tensors are not a scope's: `keep(t)` takes a tensor out of every scope for good (model state
 * does this for its tensors), and `unscoped(fn)` creates tensors that no scope owns (model weights).
 *
 * Which scope is current. Model forwards are async, and two forwards may run at once on one model (a server):
 * a single global "current scope" would hand the tensors of one forward to the other's scope when their awaits
 * interleave, and that scope would free them under it. So the current scope follows the code that runs:
 * - on Node (and runtimes with `process.getBuiltinModule`), through AsyncLocalStorage: a scope is current in
 *   its callback and in every async continuation started there, and in nothing else;
 * - elsewhere (browsers: no node:async_hooks), only while the callback runs synchronously: after the first
 *   `await` inside `scopeAsync`'s callback nothing is current (tensors created there belong to no scope and are
 *   left to the collector) — never another forward's scope, since every scope is entered and left within one
 *   synchronous stretch and continuations run on an empty stack. Code that wants its tensors after an await
 *   owned re-enters the scope explicitly: `s.run(() => …)` on a `Scope` object it carries along. The model code
 *   here does that (the decoder passes its scope objects explicitly), so it frees the same tensors on both.
 * Either way a tensor belongs to the scope whose code created it, and concurrent forwards never share one.
 *
 * Storage. A tensor's storage may be shared (a reshape is a new tensor on the same storage; a backend's view of
 * part of a tensor, such as WebGPU's one-row split, shares its base's storage): whoever makes such a tensor
 * names the tensor it is a view of (`new Tensor(…, viewOf)`), the tensors on one storage share a reference
 * count, and the backend frees the storage when the last of them is disposed.
 */
import type { Tensor } from './tensor.js';

interface ScopeContext {
  readonly kind: 'async-local-storage' | 'synchronous';
  current(): Scope | null;
  run<T>(s: Scope | null, fn: () => T): T;
}

function syncContext(): ScopeContext {
  let cur: Scope | null = null;
  return {
    kind: 'synchronous',
    current: () => cur,
    run<T>(s: Scope | null, fn: () => T): T {
      const prev = cur;
      cur = s;
      try {
        return fn();
      } finally {
        cur = prev;
      }
    },
  };
}

interface AsyncLocalStorageLike<S> {
  getStore(): S | undefined;
  run<T>(store: S, fn: () => T): T;
}

/** AsyncLocalStorage where the runtime offers it without an import (so the browser bundle stays free of Node modules) */
function asyncContext(): ScopeContext | null {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const hooks = proc?.getBuiltinModule?.('node:async_hooks') as { AsyncLocalStorage?: new () => AsyncLocalStorageLike<{ s: Scope | null }> } | undefined;
  if (!hooks?.AsyncLocalStorage) return null;
  const als = new hooks.AsyncLocalStorage();
  return {
    kind: 'async-local-storage',
    current: () => als.getStore()?.s ?? null,
    run: (s, fn) => als.run({ s }, fn),
  };
}

let context: ScopeContext = asyncContext() ?? syncContext();

/** how the current scope is followed here: through async continuations, or only synchronously (see above) */
export function scopeContextKind(): ScopeContext['kind'] {
  return context.kind;
}

/**
 * Choose how the current scope is followed (tests run both): 'synchronous' works everywhere, and
 * 'async-local-storage' where the runtime has it. Call it while no scope is open.
 */
export function useScopeContext(kind: ScopeContext['kind']): void {
  const next = kind === 'synchronous' ? syncContext() : asyncContext();
  if (!next) throw new Error('AsyncLocalStorage is not available in this runtime');
  context = next;
}

/** the tensors `keep()` took out of scopes */
const kept = new WeakSet<Tensor>();

/** A scope: owns the tensors created while it is current (see the module comment). */
export class Scope {
  private owned: Tensor[] = [];
  private open = true;

  /** `parent`: where tensors that escape go (default: the scope current now) */
  constructor(readonly parent: Scope | null = context.current()) {}

  /** the current scope, if any */
  static current(): Scope | null {
    return context.current();
  }

  /** whether the scope has not ended */
  get isOpen(): boolean {
    return this.open;
  }

  /** how many tensors the scope owns now (disposed ones included until it ends) */
  get size(): number {
    return this.owned.length;
  }

  /**
   * Run `fn` with this scope current (an async `fn`: its continuations too where AsyncLocalStorage follows
   * them; elsewhere only its synchronous start). The scope does not end: call `end`.
   */
  run<T>(fn: () => T): T {
    return context.run(this, fn);
  }

  /** take ownership of `t` (done for every tensor created while this scope is current) */
  adopt(t: Tensor): void {
    let s: Scope | null = this;
    while (s && !s.open) s = s.parent;
    if (s && !kept.has(t)) s.owned.push(t);
  }

  /**
   * End the scope: dispose what it owns (newest first) except the tensors in `result` and in `keep` (which pass
   * to the parent scope), and those `keep()` took out. Idempotent.
   */
  end(result?: unknown, keepAlso: Iterable<Tensor> = []): void {
    if (!this.open) return;
    this.open = false;
    const escaping = new Set<Tensor>();
    collectTensors(result, escaping);
    for (const t of keepAlso) escaping.add(t);
    const owned = this.owned;
    this.owned = [];
    for (let i = owned.length - 1; i >= 0; i--) {
      const t = owned[i];
      if (kept.has(t) || t.isDisposed || t.requiresGrad) continue; // recorded on the autograd tape: the graph owns it
      if (escaping.has(t)) this.parent?.adopt(t);
      else t.dispose();
    }
  }
}

/** what the scope module calls when a tensor is created */
export function trackTensor(t: Tensor): void {
  context.current()?.adopt(t);
}

/**
 * Take tensors out of every scope for good: no scope disposes them (their owner does, with `dispose()`, or
 * the garbage collector). Returns the first argument.
 */
export function keep<T extends Tensor>(t: T, ...more: Tensor[]): T {
  kept.add(t);
  for (const m of more) kept.add(m);
  return t;
}

/** whether `keep()` took `t` out of scopes */
export function isKept(t: Tensor): boolean {
  return kept.has(t);
}

/**
 * Run `fn` in a new scope and end it: the tensors created inside are disposed, except those in the result
 * (returned to the enclosing scope) and those kept. Synchronous: for an async callback use `scopeAsync`.
 */
export function scope<T>(fn: () => T): T {
  const s = new Scope();
  let result: T;
  try {
    result = s.run(fn);
  } catch (e) {
    s.end();
    throw e;
  }
  if (result instanceof Promise) {
    s.end();
    throw new TypeError('scope(): the callback returned a promise; use scopeAsync() for async callbacks');
  }
  s.end(result);
  return result;
}

/**
 * `scope` for async callbacks: the scope ends when the promise settles. `keepAlso` (called then, on success
 * and on error) names tensors to leave alive besides the result, e.g. state tensors the callback replaced.
 * Where AsyncLocalStorage is not available, tensors created after the callback's first await are not the
 * scope's (see the module comment).
 */
export async function scopeAsync<T>(fn: () => Promise<T>, keepAlso?: () => Iterable<Tensor>): Promise<T> {
  const s = new Scope();
  let result: T | undefined;
  try {
    result = await s.run(fn);
    return result;
  } finally {
    s.end(result, keepAlso?.() ?? []);
  }
}

/** Run `fn` with no current scope: the tensors it creates belong to no scope (model weights). */
export function unscoped<T>(fn: () => T): T {
  return context.run(null, fn);
}

/** the tensors in `v`: a tensor, or arrays, plain objects, Maps and Sets holding them (any depth) */
function collectTensors(v: unknown, out: Set<Tensor>, seen = new Set<object>()): void {
  if (v === null || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  if (isTensor(v)) {
    out.add(v);
    return;
  }
  if (Array.isArray(v) || v instanceof Set) {
    for (const x of v) collectTensors(x, out, seen);
  } else if (v instanceof Map) {
    for (const x of v.values()) collectTensors(x, out, seen);
  } else {
    const proto = Object.getPrototypeOf(v);
    if (proto === Object.prototype || proto === null) for (const x of Object.values(v)) collectTensors(x, out, seen);
  }
}

/** Tensor without importing tensor.ts (which imports this module) */
function isTensor(v: object): v is Tensor {
  return (v as { [TENSOR]?: boolean })[TENSOR] === true;
}

/** marks Tensor instances (set on Tensor.prototype) */
export const TENSOR = Symbol.for('mamba-ts.tensor');

/**
 * The reference count of one storage: every tensor on it holds one reference; the storage is released (through
 * the backend of the tensor that created it) when the count drops to zero.
 */
export class Lifetime {
  refs = 0;
  constructor(readonly root: Tensor) {}
}

/**
 * The lifetime a new tensor joins: that of `viewOf` when it shares that tensor's storage (a reshape, a backend's
 * view), else a new one. Code that makes a tensor on another tensor's storage must say so (`viewOf`): a lookup
 * by storage object would cost every tensor a WeakMap entry (measured on the CPU backend, a tiny
 * model's decode step: ~560 µs of CPU with such a map, ~365 without; ~345 before explicit lifetimes).
 */
export function joinLifetime(t: Tensor, viewOf: Tensor | undefined): Lifetime {
  const l = viewOf ? viewOf.lifetime : new Lifetime(t);
  if (viewOf && l.refs === 0) throw new Error(`tensor [${viewOf.shape.join(', ')}] was used after dispose() (a view of it was made)`);
  l.refs++;
  return l;
}
