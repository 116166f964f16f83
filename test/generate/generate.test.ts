/**
 * Generation over the tiny HF fixture: batching, streaming, stop conditions, seeds, and resuming from a
 * saved state without re-reading the prompt.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel, ModelState, argmax } from '../../src/index.js';
import { hfFixture, maxAbsDiff } from '../helpers.js';

describe('generate', async () => {
  const model = await loadModel(hfFixture('mamba-tiny'));
  const P1 = [5, 17, 300, 42, 7, 99, 1];
  const P2 = [400, 3];
  const P3 = [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19];
  const noStop = { stopTokens: [] as number[] };

  it('greedy generation equals argmax over full re-forwards (no cache)', async () => {
    const res = await model.generate(P1, { maxNewTokens: 10, ...noStop });
    const seq = [...P1];
    for (let i = 0; i < 10; i++) {
      const { logits } = await model.forward([seq]);
      const V = model.vocabSize;
      seq.push(argmax(logits.data.subarray((seq.length - 1) * V, seq.length * V)));
    }
    assert.deepEqual(res.tokens[0], seq);
    assert.deepEqual(res.generated[0], seq.slice(P1.length));
    assert.equal(res.finishReason[0], 'length');
    // the decode's time in the model's steps: some, and within the decode's
    const { decodeMs, decodeStepMs } = res.stats;
    assert.ok(decodeStepMs > 0 && decodeStepMs <= decodeMs, `decodeStepMs ${decodeStepMs} in (0, ${decodeMs}]`);
  });

  it('a batch of prompts of different lengths equals each prompt alone', async () => {
    const batch = await model.generate([P1, P2, P3], { maxNewTokens: 12, ...noStop });
    for (const [i, p] of [P1, P2, P3].entries()) {
      const single = await model.generate(p, { maxNewTokens: 12, ...noStop });
      assert.deepEqual(batch.tokens[i], single.tokens[0], `sequence ${i}`);
    }
    // equal lengths go through one batched prefill
    const same = await model.generate([P1, P1.map((t) => (t + 1) % 512)], { maxNewTokens: 6, ...noStop });
    const alone = await model.generate([P1.map((t) => (t + 1) % 512)], { maxNewTokens: 6, ...noStop });
    assert.deepEqual(same.tokens[1], alone.tokens[0]);
  });

  it('streams every token in order, through the iterator and the callback', async () => {
    const seen: Array<[number, number]> = [];
    const it = model.stream([P1, P2], { maxNewTokens: 5, ...noStop, onToken: (e) => seen.push([e.sequence, e.token]) });
    const events: Array<[number, number]> = [];
    let r = await it.next();
    while (!r.done) {
      events.push([r.value.sequence, r.value.token]);
      r = await it.next();
    }
    assert.deepEqual(events, seen);
    assert.equal(events.length, 10);
    assert.deepEqual(events.filter((e) => e[0] === 0).map((e) => e[1]), r.value.generated[0]);
    assert.deepEqual(events.filter((e) => e[0] === 1).map((e) => e[1]), r.value.generated[1]);
  });

  it('stops at a stop token (kept in the output) and at maxNewTokens', async () => {
    const free = await model.generate(P1, { maxNewTokens: 8, ...noStop });
    const stopAt = free.generated[0][3];
    const firstIdx = free.generated[0].indexOf(stopAt);
    const stopped = await model.generate(P1, { maxNewTokens: 8, stopTokens: [stopAt] });
    assert.deepEqual(stopped.generated[0], free.generated[0].slice(0, firstIdx + 1));
    assert.equal(stopped.finishReason[0], 'stop');
    assert.equal(free.generated[0].length, 8);
    // in a batch, the stopped sequence leaves while the other goes on
    const mixed = await model.generate([P1, P3], { maxNewTokens: 8, stopTokens: [stopAt] });
    const p3 = await model.generate(P3, { maxNewTokens: 8, stopTokens: [stopAt] });
    assert.deepEqual(mixed.generated[0], stopped.generated[0]);
    assert.deepEqual(mixed.generated[1], p3.generated[0]);
  });

  it('sampling is reproducible with a seed and varies across seeds', async () => {
    const opts = { maxNewTokens: 16, doSample: true, temperature: 1.5, topK: 50, topP: 0.95, minP: 0.01, repetitionPenalty: 1.2, ...noStop };
    const a = await model.generate(P1, { ...opts, seed: 1 });
    const b = await model.generate(P1, { ...opts, seed: 1 });
    const c = await model.generate(P1, { ...opts, seed: 2 });
    assert.deepEqual(a.tokens, b.tokens);
    assert.notDeepEqual(a.tokens, c.tokens);
  });

  it('resumes from a returned state exactly as if the whole text were re-read', async () => {
    const first = await model.generate(P1, { maxNewTokens: 6, ...noStop });
    assert.deepEqual(first.state.seqLen, [P1.length + 6]);
    const cont = await model.generate(P2, { maxNewTokens: 6, ...noStop, state: first.state });
    const whole = await model.generate([...first.tokens[0], ...P2], { maxNewTokens: 6, ...noStop });
    assert.deepEqual(cont.generated[0], whole.generated[0]);
    // the state was not consumed by the continuation
    const again = await model.generate(P2, { maxNewTokens: 6, ...noStop, state: first.state });
    assert.deepEqual(again.generated[0], cont.generated[0]);
  });

  it('exported state bytes restore the same state (resume after a restart)', async () => {
    const first = await model.generate(P3, { maxNewTokens: 4, ...noStop });
    const bytes = await first.state.export();
    const restored = model.importState(bytes);
    assert.deepEqual(restored.seqLen, first.state.seqLen);
    assert.equal(restored.byteSize, first.state.byteSize);
    const a = await model.generate(P2, { maxNewTokens: 5, ...noStop, state: first.state });
    const b = await model.generate(P2, { maxNewTokens: 5, ...noStop, state: restored });
    assert.deepEqual(a.tokens, b.tokens);
    // forward() from a state equals forward() of the concatenation at the new positions
    const s = model.importState(bytes);
    const fromState = await model.forward([P2], { state: s });
    const full = await model.forward([[...first.tokens[0], ...P2]]);
    const V = model.vocabSize;
    const tail = full.logits.data.subarray((first.tokens[0].length) * V);
    assert.ok(maxAbsDiff(fromState.logits.data, tail) <= 1e-4);
  });

  it('state size does not grow with the sequence', async () => {
    const short = await model.generate([1], { maxNewTokens: 1, ...noStop });
    const long = await model.generate(P3, { maxNewTokens: 40, ...noStop });
    assert.equal(short.state.byteSize, long.state.byteSize);
    assert.equal(long.state.byteSize, 3 * 128 * (4 + 16) * 4);
  });

  it('select / concat of states keeps each sequence', async () => {
    const r = await model.generate([P1, P2, P3], { maxNewTokens: 3, ...noStop });
    const picked = r.state.select([2, 0]);
    assert.deepEqual(picked.seqLen, [r.state.seqLen[2], r.state.seqLen[0]]);
    const rejoined = ModelState.concat([r.state.select([0]), r.state.select([1]), r.state.select([2])]);
    const a = await model.generate([[1], [1], [1]], { maxNewTokens: 4, ...noStop, state: r.state });
    const b = await model.generate([[1], [1], [1]], { maxNewTokens: 4, ...noStop, state: rejoined });
    assert.deepEqual(a.tokens, b.tokens);
  });

  it('an aborted generation ends early with finishReason "abort"', async () => {
    const ac = new AbortController();
    const res = await model.generate(P1, { maxNewTokens: 50, ...noStop, signal: ac.signal, onToken: (e) => e.index === 2 && ac.abort() });
    assert.equal(res.generated[0].length, 4);
    assert.equal(res.finishReason[0], 'abort');
  });

  it('rejects bad options', async () => {
    await assert.rejects(model.generate(P1, { maxNewTokens: 0 }), /maxNewTokens/);
    await assert.rejects(model.generate(P1, { temperature: -1, doSample: true }), /temperature/);
    await assert.rejects(model.generate(P1, { stopStrings: ['x'] }), /tokenizer/);
    await assert.rejects(model.generate([P1, P2], { state: model.createState(1) }), /1 sequences but 2 prompts/);
  });
});
