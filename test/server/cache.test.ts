/**
 * The prefix-state cache: a conversation's second turn restores the snapshot left at the end of its first turn's
 * messages (cached_tokens > 0) and generates exactly what a server without a cache generates — for Mamba and for
 * hybrids (SSM state and attention KV cache restored at the same position); snapshots on disk survive a restart;
 * the radix tree, copy-on-read and LRU eviction under a byte budget.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModel } from '../../src/api/load.js';
import { PrefixCache } from '../../src/server/prefix-cache.js';
import type { MambaServer } from '../../src/server/http.js';
import { chatModelDir, completionIds, postJson, startServer, tmpDir } from './helpers.js';
import { hfFixture, maxAbsDiff } from '../helpers.js';

let tmp: string;
before(() => {
  tmp = tmpDir('serve-cache');
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Turn {
  text: string;
  ids: number[];
  /** the log-probability of each generated token: a state read wrongly shows here even when the argmax survives */
  logprobs: number[];
  prompt: number;
  cached: number;
}

async function chat(server: MambaServer, messages: Array<{ role: string; content: string }>): Promise<Turn> {
  const r = await postJson(`${server.url}/v1/chat/completions`, { messages, max_tokens: 8, temperature: 0, ignore_eos: true, return_token_ids: true, logprobs: true });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const choice = (r.json.choices as Array<{ message: { content: string }; token_ids: number[]; logprobs: { content: Array<{ logprob: number }> } }>)[0];
  const usage = r.json.usage as { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } };
  const logprobs = choice.logprobs.content.map((c) => c.logprob);
  return { text: choice.message.content, ids: choice.token_ids, logprobs, prompt: usage.prompt_tokens, cached: usage.prompt_tokens_details.cached_tokens };
}

function tokenLogprobs(body: Record<string, unknown>): number[] {
  return (body.choices as Array<{ logprobs: { token_logprobs: number[] } }>)[0].logprobs.token_logprobs;
}

/** three turns of a conversation; each reply is fed back as the assistant's message */
async function conversation(server: MambaServer): Promise<Turn[]> {
  const messages = [{ role: 'system', content: 'You answer in one line.' }];
  const turns: Turn[] = [];
  for (const q of ['What is a state space model?', 'And a selective one?', 'Thanks. Summarise.']) {
    messages.push({ role: 'user', content: q });
    const t = await chat(server, messages);
    turns.push(t);
    messages.push({ role: 'assistant', content: t.text });
  }
  return turns;
}

for (const fixture of ['mamba-tiny', 'bamba-tiny', 'jamba-tiny']) {
  describe(`prefix cache (${fixture})`, () => {
    it('later turns restore a snapshot and generate exactly what an uncached server does', async () => {
      const dir = chatModelDir(fixture, tmp);
      const plain = await startServer(dir, {}, { cacheMb: 0 });
      const cached = await startServer(dir, {}, { cacheMb: 64, prefillChunk: 7 });
      try {
        const want = await conversation(plain);
        const got = await conversation(cached);
        assert.ok(want.every((t) => t.cached === 0));
        assert.equal(got[0].cached, 0);
        for (let i = 0; i < want.length; i++) {
          assert.deepEqual(got[i].ids, want[i].ids, `turn ${i + 1}`);
          assert.ok(maxAbsDiff(got[i].logprobs, want[i].logprobs) < 1e-4, `turn ${i + 1}: logprobs ${got[i].logprobs} vs ${want[i].logprobs}`);
          assert.equal(got[i].prompt, want[i].prompt);
        }
        for (const t of got.slice(1)) {
          // at least the previous turn's messages come from the cache; at least the new user message is read
          assert.ok(t.cached > 0 && t.cached < t.prompt, `cached ${t.cached} of ${t.prompt}`);
        }
        assert.ok(got[2].cached > got[1].cached);
        assert.ok(cached.cache!.hits >= 2);
      } finally {
        await plain.close();
        await cached.close();
      }
    });
  });
}

describe('prefix cache: completions and checkpoints', () => {
  it('a prompt that extends an earlier one restores it (exact position) and matches the uncached output', async () => {
    const dir = chatModelDir('mamba-tiny', tmp);
    const plain = await startServer(dir, {}, { cacheMb: 0 });
    const cached = await startServer(dir, {}, { cacheMb: 64, checkpointEvery: 8 });
    try {
      const p1 = Array.from({ length: 30 }, (_, i) => (i * 37 + 11) % 500);
      const p2 = [...p1, 1, 2, 3, 4, 5];
      const p3 = [...p1.slice(0, 20), 9, 9, 9];
      let reply: number[] = [];
      for (const [p, wantCached] of [
        [p1, 0],
        [p2, 30], // the end of p1's prompt
        [p3, 16], // the last checkpoint (every 8 tokens) inside the shared 20
        [() => [...p1, ...reply, 8, 8], 35], // p1 + its reply: the state after the reply's last-but-one token
      ] as Array<[number[] | (() => number[]), number]>) {
        const prompt = typeof p === 'function' ? p() : p;
        const a = await completionIds(plain.url, prompt, 6, { logprobs: 0 });
        const b = await completionIds(cached.url, prompt, 6, { logprobs: 0 });
        if (prompt === p1) reply = b.ids;
        assert.deepEqual(b.ids, a.ids);
        assert.ok(maxAbsDiff(tokenLogprobs(b.body), tokenLogprobs(a.body)) < 1e-4);
        const usage = b.body.usage as { prompt_tokens_details: { cached_tokens: number } };
        assert.equal(usage.prompt_tokens_details.cached_tokens, wantCached);
      }
    } finally {
      await plain.close();
      await cached.close();
    }
  });

  it('snapshots on disk survive a restart (written atomically, read back on a miss in memory)', async () => {
    const dir = chatModelDir('bamba-tiny', tmp);
    const cacheDir = path.join(tmp, 'prefix-disk');
    const p1 = Array.from({ length: 25 }, (_, i) => (i * 13 + 5) % 500);
    const p2 = [...p1, 7, 7, 7];
    const first = await startServer(dir, {}, { cacheMb: 64, cacheDir, checkpointEvery: 0 });
    await completionIds(first.url, p1, 4);
    await first.close(); // waits for the writes
    const files = fs.readdirSync(cacheDir);
    assert.ok(files.length >= 1 && files.every((f) => f.endsWith('.safetensors')), files.join(', '));
    const plain = await startServer(dir, {}, { cacheMb: 0 });
    const second = await startServer(dir, {}, { cacheMb: 64, cacheDir, checkpointEvery: 0 });
    try {
      assert.ok(second.cache!.size >= 1);
      const a = await completionIds(plain.url, p2, 6, { logprobs: 0 });
      const b = await completionIds(second.url, p2, 6, { logprobs: 0 });
      assert.ok(maxAbsDiff(tokenLogprobs(b.body), tokenLogprobs(a.body)) < 1e-4);
      assert.equal((b.body.usage as { prompt_tokens_details: { cached_tokens: number } }).prompt_tokens_details.cached_tokens, 25);
      assert.deepEqual(b.ids, a.ids);
    } finally {
      await plain.close();
      await second.close();
    }
    // a damaged file is skipped with a message, not a crash
    fs.writeFileSync(path.join(cacheDir, 'broken.safetensors'), 'not a safetensors file');
    const errors: string[] = [];
    const model = await loadModel(hfFixture('bamba-tiny'));
    const c = new PrefixCache(model, { maxBytes: 1 << 20, dir: cacheDir, onError: (e) => errors.push(String((e as Error).message)) });
    assert.ok(c.size >= 1);
    assert.equal(errors.length, 1);
    c.dispose();
  });
});

describe('PrefixCache', () => {
  it('longest prefix through split edges; copies on read; LRU eviction under the byte budget', async () => {
    const model = await loadModel(hfFixture('mamba-tiny'));
    const one = model.createState(1);
    const bytes = one.byteSize;
    const cache = new PrefixCache(model, { maxBytes: bytes * 2 });
    const states: Record<string, ReturnType<typeof model.createState>> = {};
    for (const [name, ids] of Object.entries({ a: [1, 2, 3, 4], b: [1, 2, 9], c: [1, 2] })) {
      const s = model.createState(1);
      await model.lm.advance([ids], s);
      states[name] = s;
    }
    await cache.insert([1, 2, 3, 4], states.a);
    await cache.insert([1, 2, 9], states.b); // splits the edge [1 2 3 4] at 2
    assert.equal(cache.size, 2);
    let hit = await cache.lookup([1, 2, 3, 4, 5]);
    assert.equal(hit?.tokens, 4);
    // the copy is the snapshot's values, and advancing it leaves the cache as it was
    assert.deepEqual(await hit!.state.layers[0].ssm.data(), await states.a.layers[0].ssm.data());
    await model.lm.advance([[7]], hit!.state);
    const again = await cache.lookup([1, 2, 3, 4]);
    assert.deepEqual(await again!.state.layers[0].ssm.data(), await states.a.layers[0].ssm.data());
    assert.equal((await cache.lookup([1, 2, 9, 9]))?.tokens, 3);
    assert.equal(await cache.lookup([1, 2, 8]), null); // no snapshot at [1 2] yet
    assert.equal((await cache.lookup([1, 2, 3, 4], 3)), null); // maxLen
    // a third snapshot goes over the budget: the least recently used one ([1 2 9]) goes
    await cache.lookup([1, 2, 3, 4]);
    await cache.insert([1, 2], states.c);
    assert.equal(cache.size, 2);
    assert.ok(cache.bytes.memory <= bytes * 2);
    assert.equal((await cache.lookup([1, 2, 9]))?.tokens, 2); // [1 2 9] was evicted; [1 2] is found instead
    assert.equal((await cache.lookup([1, 2, 3, 4]))?.tokens, 4);
    cache.dispose();
  });
});
