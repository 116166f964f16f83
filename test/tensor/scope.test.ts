/**
 * Scopes and shared storage (src/tensor/scope.ts) on the CPU backend, and the model paths that use them. The
 * models run on a CPU backend that poisons what it frees (NaN), so a tensor freed while still needed — by its
 * own forward, or by another forward running at the same time — shows up in the logits.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu/index.js';
import { generate, loadModel } from '../../src/index.js';
import * as ops from '../../src/tensor/ops.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { keep, Scope, scope, scopeAsync, scopeContextKind, unscoped, useScopeContext } from '../../src/tensor/scope.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import type { ModelState } from '../../src/models/state.js';
import { hfFixture, maxAbsDiff } from '../helpers.js';

/** a CPU backend that fills freed storage with NaN and counts what it frees */
class PoisonBackend extends CpuBackend {
  freed = 0;
  override dispose(t: Tensor): void {
    this.freed++;
    (t.storage as Float32Array).fill(NaN);
  }
}

const be = new PoisonBackend();
const vec = (n: number, v = 1) => be.fromHost(new Float32Array(n).fill(v), [n]);
const initialKind = scopeContextKind();
after(() => useScopeContext(initialKind));

describe('scopes', () => {
  it('scope() disposes the tensors created inside, except the result; storage is freed once', () => {
    const x = vec(4, 2);
    const f0 = be.freed;
    let a: Tensor | null = null, b: Tensor | null = null;
    const y = scope(() => {
      a = ops.scale(x, 3);
      b = ops.add(a, x);
      return ops.scale(b, 0.5);
    });
    assert.ok(a!.isDisposed && b!.isDisposed, 'intermediates disposed');
    assert.ok(!y.isDisposed && !x.isDisposed, 'result and the input from outside survive');
    assert.deepEqual([...y.dataSync()], [4, 4, 4, 4]);
    assert.equal(be.freed - f0, 2, 'two storages freed');
    assert.throws(() => a!.dataSync(), /used after dispose/);
  });

  it('results inside arrays, plain objects and Maps survive; everything else is disposed', () => {
    const x = vec(2);
    let tmp: Tensor | null = null;
    const r = scope(() => {
      tmp = ops.scale(x, 5);
      const p = ops.scale(x, 2), q = ops.scale(x, 3), m = ops.scale(x, 4);
      return { pair: [p, { q }], map: new Map([['m', m]]), n: 1 };
    });
    assert.ok(tmp!.isDisposed);
    assert.deepEqual([r.pair[0] as Tensor, (r.pair[1] as { q: Tensor }).q, r.map.get('m')!].map((t) => t.dataSync()[0]), [2, 3, 4]);
  });

  it('nested scopes: an inner result passes to the outer scope, which disposes it unless it returns it too', () => {
    const x = vec(3);
    let inner: Tensor | null = null, innerTmp: Tensor | null = null;
    const outer = scope(() => {
      inner = scope(() => {
        innerTmp = ops.scale(x, 2);
        return ops.scale(innerTmp, 2);
      });
      assert.ok(innerTmp!.isDisposed && !inner.isDisposed);
      return ops.add(inner, x);
    });
    assert.ok(inner!.isDisposed, 'the inner result was the outer scope\'s and is freed with it');
    assert.deepEqual([...outer.dataSync()], [5, 5, 5]);
  });

  it('views share storage: disposing one tensor on it does not free it for the others', () => {
    const f0 = be.freed;
    const base = scope(() => {
      const t = vec(6, 7);
      const view = ops.reshape(t, [2, 3]);
      const view2 = ops.reshape(view, [3, 2]);
      t.dispose();
      view.dispose();
      assert.equal(be.freed, f0, 'two of three tensors on the storage disposed: still held');
      assert.deepEqual([...view2.dataSync()], [7, 7, 7, 7, 7, 7]);
      return view2;
    });
    assert.equal(be.freed, f0);
    base.dispose();
    assert.equal(be.freed, f0 + 1, 'freed with the last tensor on it');
    base.dispose(); // idempotent
    assert.equal(be.freed, f0 + 1);
  });

  it('keep() and unscoped(): tensors no scope disposes', () => {
    let kept: Tensor | null = null, free: Tensor | null = null;
    scope(() => {
      kept = keep(vec(2));
      free = unscoped(() => vec(2));
      scope(() => keep(vec(1))); // kept inside a nested scope: not handed to the outer one either
    });
    assert.ok(!kept!.isDisposed && !free!.isDisposed);
  });

  it('an error disposes everything the scope owns; a promise from scope() is refused', async () => {
    let t: Tensor | null = null;
    assert.throws(() => scope(() => {
      t = vec(2);
      throw new Error('boom');
    }), /boom/);
    assert.ok(t!.isDisposed);
    assert.throws(() => scope(() => Promise.resolve(1)), /use scopeAsync/);
    let u: Tensor | null = null;
    await assert.rejects(scopeAsync(async () => {
      u = vec(2);
      throw new Error('later');
    }), /later/);
    assert.ok(u!.isDisposed);
  });

  for (const kind of ['synchronous', 'async-local-storage'] as const) {
    it(`scopeAsync (${kind}): tensors before the first await are the scope's; after it ${kind === 'synchronous' ? 'no scope\'s' : 'the scope\'s too'}`, async () => {
      useScopeContext(kind);
      try {
        let before: Tensor | null = null, afterAwait: Tensor | null = null;
        const r = await scopeAsync(async () => {
          before = vec(2);
          await new Promise((res) => setTimeout(res, 1));
          afterAwait = vec(2);
          return vec(1);
        });
        assert.ok(before!.isDisposed);
        assert.equal(afterAwait!.isDisposed, kind === 'async-local-storage');
        assert.ok(!r.isDisposed);
        // Scope.run re-enters a scope explicitly after an await, in both modes
        const s = new Scope();
        await new Promise((res) => setTimeout(res, 1));
        const t = s.run(() => vec(2));
        s.end();
        assert.ok(t.isDisposed);
      } finally {
        useScopeContext(initialKind);
      }
    });

    it(`scopeAsync (${kind}): two interleaved scopes never dispose each other's tensors`, async () => {
      useScopeContext(kind);
      try {
        const tick = () => new Promise((res) => setTimeout(res, 1));
        const made: Tensor[][] = [[], []];
        const work = (i: number) => scopeAsync(async () => {
          let acc = vec(4, i + 1);
          for (let k = 0; k < 5; k++) {
            await tick();
            const s = new Scope();
            acc = s.run(() => ops.add(ops.scale(acc, 1), vec(4, 1)));
            made[i].push(acc);
            s.end(acc);
            assert.equal(acc.dataSync()[0], i + 2 + k, `scope ${i} step ${k}`);
          }
          return acc;
        });
        const [a, b] = await Promise.all([work(0), work(1)]);
        assert.deepEqual([a.dataSync()[0], b.dataSync()[0]], [6, 7]);
      } finally {
        useScopeContext(initialKind);
      }
    });
  }
});

describe('scopes in the model paths (CPU backend that poisons freed storage)', () => {
  const plain = new CpuBackend();
  const models = new Map<string, Promise<{ poisoned: CausalLM; ref: CausalLM }>>();
  const get = (name: string) => {
    let m = models.get(name);
    if (!m) {
      m = Promise.all([loadModel(hfFixture(name), { backend: be }), loadModel(hfFixture(name), { backend: plain })]).then(([a, b]) => ({ poisoned: a.lm, ref: b.lm }));
      models.set(name, m);
    }
    return m;
  };
  const stateOk = (s: ModelState) => s.layers.every((l) => Object.values(l).every((t) => !t.isDisposed && !t.dataSync().some(Number.isNaN)));

  // mamba / mamba2: the plain paths; jamba: attention (a KV cache that grows inside a layer) and MoE (an await
  // inside the mixer); granite: MoE summed with a shared MLP
  for (const name of ['mamba-tiny', 'mamba2-tiny', 'jamba-tiny', 'granite-hybrid-tiny']) {
    it(`${name}: forward, prefill and decode free their intermediates and give the reference logits; weights and state survive`, async () => {
      const { poisoned, ref } = await get(name);
      const f0 = be.freed;
      const prompt = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]];
      const a = await poisoned.forward(prompt, { outputHiddenStates: true });
      const b = await ref.forward(prompt, { outputHiddenStates: true });
      assert.ok(be.freed - f0 > poisoned.numLayers, `${be.freed - f0} storages freed`);
      assert.equal(maxAbsDiff(a.logits.data, b.logits.data), 0);
      a.hiddenStates!.forEach((h, i) => assert.equal(maxAbsDiff(h.data, b.hiddenStates![i].data), 0, `hidden ${i}`));
      const [sa, sb] = [poisoned.createState(1), ref.createState(1)];
      for (const ids of [prompt, [[11]], [[12]]]) {
        const [la, lb] = [await poisoned.advance(ids, sa), await ref.advance(ids, sb)];
        assert.equal(maxAbsDiff(la.data, lb.data), 0);
      }
      // a prompt long enough to grow a KV cache (64 positions at first) inside a layer's scope
      const long = [Array.from({ length: 70 }, (_, i) => (i * 7 + 3) % 50)];
      const caches = sa.layers.flatMap((l) => ['k', 'v'].filter((k) => k in l).map((k) => l[k]));
      assert.equal(maxAbsDiff((await poisoned.advance(long, sa)).data, (await ref.advance(long, sb)).data), 0);
      if (name === 'jamba-tiny') assert.ok(caches.length > 0 && caches.every((t) => t.isDisposed), 'the outgrown KV caches were freed');
      assert.ok(stateOk(sa), 'state tensors alive and clean');
      assert.equal(maxAbsDiff((await poisoned.forward(prompt)).logits.data, b.logits.data), 0, 'weights intact after the forwards');
    });
  }

  it('generate frees the states it drops (prompts of different lengths, a row stopping early): same tokens and final state', async () => {
    const { poisoned, ref } = await get('mamba-tiny');
    const prompts = [[1, 2, 3], [4, 5, 6, 7, 8]];
    const free = await generate(ref, prompts, { maxNewTokens: 6, stopTokens: [] });
    const stop = free.generated[0][2]; // row 0 stops at its third token (row 1 goes on unless it meets it earlier)
    const f0 = be.freed;
    const [a, b] = [await generate(poisoned, prompts, { maxNewTokens: 6, stopTokens: [stop] }), await generate(ref, prompts, { maxNewTokens: 6, stopTokens: [stop] })];
    assert.deepEqual(a.generated, b.generated);
    assert.ok(be.freed > f0);
    assert.ok(stateOk(a.state));
    for (let i = 0; i < a.state.layers.length; i++) {
      for (const [k, t] of Object.entries(a.state.layers[i])) assert.equal(maxAbsDiff(t.dataSync(), b.state.layers[i][k].dataSync()), 0, `layer ${i} ${k}`);
    }
  });

  for (const kind of ['synchronous', 'async-local-storage'] as const) {
    for (const name of ['mamba2-tiny', 'jamba-tiny']) {
      it(`${name} (${kind}): two concurrent forwards on one model equal sequential ones`, async () => {
        useScopeContext(kind);
        try {
          const { poisoned } = await get(name);
          const p1 = [[1, 2, 3, 4, 5, 6]], p2 = [[9, 8, 7, 6, 5, 4, 3, 2, 1], [3, 3, 3, 3, 3, 3, 3, 3, 3]];
          const s1 = poisoned.createState(1), s2 = poisoned.createState(2), r1 = poisoned.createState(1), r2 = poisoned.createState(2);
          const seq1 = await poisoned.forward(p1, { state: r1 });
          const seq2 = await poisoned.forward(p2, { state: r2 });
          const [c1, c2] = await Promise.all([poisoned.forward(p1, { state: s1 }), poisoned.forward(p2, { state: s2 })]);
          assert.equal(maxAbsDiff(c1.logits.data, seq1.logits.data), 0);
          assert.equal(maxAbsDiff(c2.logits.data, seq2.logits.data), 0);
          // and one more step of each, concurrently, from the states they left
          const [d1, d2] = await Promise.all([poisoned.advance([[5]], s1), poisoned.advance([[6], [7]], s2)]);
          assert.equal(maxAbsDiff(d1.data, (await poisoned.advance([[5]], r1)).data), 0);
          assert.equal(maxAbsDiff(d2.data, (await poisoned.advance([[6], [7]], r2)).data), 0);
          assert.ok(stateOk(s1) && stateOk(s2));
        } finally {
          useScopeContext(initialKind);
        }
      });
    }
  }
});
