/**
 * Observing Δ (the selection step) of Mamba layers: `ForwardOptions.onDelta`, the model-level
 * `CausalLM.onDelta`, and `Model.generate({ onDelta })`. Δ of a position depends only on the tokens up to
 * it, so prefill and token-by-token decode must report the same Δ; observing must not change the logits;
 * the wasm backend reports what the CPU backend does; hybrids report their Mamba layers only.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel, type DeltaEvent } from '../../src/index.js';
import { hfFixture, maxAbsDiff } from '../helpers.js';

const IDS = [3, 17, 250, 9, 101, 44, 7, 300, 12];

function collect(): { events: DeltaEvent[]; onDelta: (e: DeltaEvent) => void } {
  const events: DeltaEvent[] = [];
  return { events, onDelta: (e) => events.push(e) };
}

/** Δ per layer as rows [positions × channels], concatenating calls */
function byLayer(events: DeltaEvent[]): Map<number, number[]> {
  const m = new Map<number, number[]>();
  for (const e of events) {
    const row = m.get(e.layer) ?? [];
    row.push(...e.delta.data);
    m.set(e.layer, row);
  }
  return m;
}

describe('Δ observation', () => {
  for (const [fixture, kind, channels] of [['mamba-tiny', 'mamba1', 128], ['mamba2-tiny', 'mamba2', 8]] as const) {
    test(`${fixture}: one event per layer in order, shape [b, L, ${kind === 'mamba1' ? 'D' : 'heads'}], positive; logits unchanged`, async () => {
      const model = await loadModel(hfFixture(fixture));
      const plain = await model.forward([IDS]);
      const { events, onDelta } = collect();
      const observed = await model.forward([IDS], { onDelta });
      assert.deepEqual(observed.logits.data, plain.logits.data, 'observing does not change the result');
      assert.deepEqual(events.map((e) => e.layer), [0, 1, 2]);
      for (const e of events) {
        assert.equal(e.kind, kind);
        assert.deepEqual(e.delta.shape, [1, IDS.length, channels]);
        assert.ok(e.delta.data.every((v: number) => v > 0 && Number.isFinite(v)), 'Δ = softplus(…) > 0');
      }
    });

    test(`${fixture}: prefill and token-by-token decode report the same Δ`, async () => {
      const model = await loadModel(hfFixture(fixture));
      const whole = collect();
      await model.forward([IDS], { onDelta: whole.onDelta });
      const steps = collect();
      const state = model.createState(1);
      model.lm.onDelta = steps.onDelta; // model level: advance() reports too
      try {
        await model.lm.advance([IDS.slice(0, 4)], state);
        for (const id of IDS.slice(4)) await model.lm.advance([[id]], state);
      } finally {
        model.lm.onDelta = null;
      }
      const a = byLayer(whole.events), b = byLayer(steps.events);
      for (const [layer, row] of a) assert.ok(maxAbsDiff(row, b.get(layer)!) < 1e-5, `layer ${layer}`);
    });
  }

  test('wasm reports the CPU backend\'s Δ', async () => {
    const cpu = collect(), wasm = collect();
    await (await loadModel(hfFixture('mamba-tiny'))).forward([IDS], { onDelta: cpu.onDelta });
    await (await loadModel(hfFixture('mamba-tiny'), { backend: 'wasm', threads: 1 })).forward([IDS], { onDelta: wasm.onDelta });
    const a = byLayer(cpu.events), b = byLayer(wasm.events);
    assert.equal(b.size, a.size);
    for (const [layer, row] of a) assert.ok(maxAbsDiff(row, b.get(layer)!) < 1e-5, `layer ${layer}`);
  });

  test('hybrid (Bamba): only the Mamba layers report', async () => {
    const model = await loadModel(hfFixture('bamba-tiny'));
    const { events, onDelta } = collect();
    await model.forward([IDS.slice(0, 5)], { onDelta });
    assert.deepEqual(events.map((e) => e.layer), [0, 2], 'layers 1 and 3 are attention');
    assert.ok(events.every((e) => e.kind === 'mamba2'));
  });

  test('Model.generate({ onDelta }): Δ for the prompt and every generated token; the observer is removed after', async () => {
    const model = await loadModel(hfFixture('mamba2-tiny'));
    const { events, onDelta } = collect();
    const res = await model.generate([IDS.slice(0, 5)], { maxNewTokens: 6, onDelta });
    const positions = new Map<number, number>();
    for (const e of events) positions.set(e.layer, (positions.get(e.layer) ?? 0) + e.delta.shape[1]);
    assert.deepEqual([...positions.values()], [11, 11, 11], '5 prompt + 6 generated positions per layer');
    assert.equal(model.lm.onDelta ?? null, null);
    const again = await model.generate([IDS.slice(0, 5)], { maxNewTokens: 6 });
    assert.deepEqual(again.generated, res.generated, 'observing does not change generation');
  });

  test('concurrent calls on one model: each observer sees its own call\'s Δ only', async () => {
    const model = await loadModel(hfFixture('mamba-tiny'));
    const [pa, pb, pc] = [IDS.slice(0, 5), IDS.slice(4, 7), IDS.slice(2, 6)];
    const opts = { stopTokens: [] as number[] };
    // each call alone first: its Δ events and tokens
    const soloA = collect(), soloB = collect();
    const refA = await model.generate([pa], { ...opts, maxNewTokens: 6, onDelta: soloA.onDelta });
    const refB = await model.generate([pb], { ...opts, maxNewTokens: 4, onDelta: soloB.onDelta });
    const refC = await model.generate([pc], { ...opts, maxNewTokens: 5 });
    const soloF = collect();
    await model.forward([IDS], { onDelta: soloF.onDelta });
    // now at once: two observed generations, one unobserved, one observed forward
    const a = collect(), b = collect(), f = collect();
    const [resA, resB, resC] = await Promise.all([
      model.generate([pa], { ...opts, maxNewTokens: 6, onDelta: a.onDelta }),
      model.generate([pb], { ...opts, maxNewTokens: 4, onDelta: b.onDelta }),
      model.generate([pc], { ...opts, maxNewTokens: 5 }),
      model.forward([IDS], { onDelta: f.onDelta }),
    ]);
    const positions = (events: DeltaEvent[]) => {
      const m = new Map<number, number>();
      for (const e of events) m.set(e.layer, (m.get(e.layer) ?? 0) + e.delta.shape[1]);
      return [...m.entries()];
    };
    assert.deepEqual(positions(a.events), [[0, 11], [1, 11], [2, 11]], 'A: 5 prompt + 6 generated positions in each of 3 layers');
    assert.deepEqual(positions(b.events), [[0, 7], [1, 7], [2, 7]], 'B: 3 prompt + 4 generated positions in each of 3 layers');
    assert.deepEqual(positions(f.events), [[0, IDS.length], [1, IDS.length], [2, IDS.length]], 'the forward: its own positions');
    assert.equal(a.events.length, soloA.events.length);
    assert.equal(b.events.length, soloB.events.length);
    for (const [got, want] of [[a, soloA], [b, soloB], [f, soloF]]) {
      const g = byLayer(got.events), w = byLayer(want.events);
      for (const [layer, row] of w) assert.deepEqual(g.get(layer), row, `layer ${layer}: the same Δ as the call alone`);
    }
    assert.deepEqual([resA.generated, resB.generated, resC.generated], [refA.generated, refB.generated, refC.generated]);
    assert.equal(model.lm.onDelta ?? null, null, 'the model itself was not changed');
  });
});
