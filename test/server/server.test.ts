/** `mamba-ts serve` over real HTTP: the official openai client, raw fetch for SSE framing, and bad requests. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import OpenAI from 'openai';
import type { MambaServer } from '../../src/server/http.js';
import { chatModelDir, completionIds, postJson, startServer, tmpDir } from './helpers.js';

describe('serve: OpenAI-compatible endpoints', () => {
  let tmp: string;
  let server: MambaServer;
  let base: string;
  let client: OpenAI;

  before(async () => {
    tmp = tmpDir('serve');
    server = await startServer(chatModelDir('mamba-tiny', tmp), {}, { apiKey: 'sk-test', maxBodyBytes: 1 << 20 });
    base = server.url;
    client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-test', maxRetries: 0 });
  });
  after(async () => {
    await server.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  const auth = { Authorization: 'Bearer sk-test' };

  it('lists the model', async () => {
    const list = await client.models.list();
    assert.deepEqual(
      list.data.map((m) => m.id),
      ['mamba-tiny'],
    );
    const one = await client.models.retrieve('mamba-tiny');
    assert.equal(one.id, 'mamba-tiny');
  });

  it('completions through the openai client, streamed and not, agree', async () => {
    const full = await client.completions.create({ model: 'mamba-tiny', prompt: 'The state space model', max_tokens: 12, temperature: 0 });
    assert.equal(full.object, 'text_completion');
    assert.equal(full.choices.length, 1);
    assert.ok(['stop', 'length'].includes(full.choices[0].finish_reason));
    const u = full.usage!;
    assert.ok(u.prompt_tokens > 0 && u.completion_tokens > 0 && u.completion_tokens <= 12);
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    const stream = await client.completions.create({ model: 'mamba-tiny', prompt: 'The state space model', max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: typeof u | undefined;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.text;
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    assert.equal(text, full.choices[0].text);
    assert.equal(finish, full.choices[0].finish_reason);
    assert.equal(usage?.completion_tokens, u.completion_tokens);
  });

  it('chat completions through the openai client, streamed and not, agree; usage reports cached tokens', async () => {
    const messages = [
      { role: 'system' as const, content: 'You are terse.' },
      { role: 'user' as const, content: 'Name a state space model.' },
    ];
    const full = await client.chat.completions.create({ model: 'mamba-tiny', messages, max_tokens: 10, temperature: 0 });
    assert.equal(full.object, 'chat.completion');
    assert.equal(full.choices[0].message.role, 'assistant');
    assert.equal(typeof full.choices[0].message.content, 'string');
    assert.equal(typeof full.usage?.prompt_tokens_details?.cached_tokens, 'number');
    const stream = await client.chat.completions.create({ model: 'mamba-tiny', messages, max_tokens: 10, temperature: 0, stream: true });
    let text = '';
    let role: string | undefined;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      role ??= chunk.choices[0]?.delta.role;
      text += chunk.choices[0]?.delta.content ?? '';
    }
    assert.equal(role, 'assistant');
    assert.equal(text, full.choices[0].message.content);
  });

  it('SSE framing: data lines, blank-line separated, ending in data: [DONE]', async () => {
    const res = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...auth },
      body: JSON.stringify({ prompt: [5, 6, 7], max_tokens: 4, temperature: 0, ignore_eos: true, stream: true }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const raw = await res.text();
    assert.ok(raw.endsWith('data: [DONE]\n\n'), JSON.stringify(raw.slice(-40)));
    const events = raw.split('\n\n').filter((e) => e.length > 0);
    for (const e of events) assert.match(e, /^data: /);
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)) as { choices: Array<{ finish_reason: string | null }> });
    assert.equal(chunks.filter((c) => c.choices[0].finish_reason !== null).length, 1);
    assert.equal(chunks.at(-1)!.choices[0].finish_reason, 'length');
  });

  it('logprobs for completions: the chosen token is the most likely under greedy decoding', async () => {
    const r = await postJson(`${base}/v1/completions`, { prompt: [1, 2, 3], max_tokens: 3, temperature: 0, logprobs: 2, ignore_eos: true }, auth);
    assert.equal(r.status, 200);
    const lp = (r.json.choices as Array<{ logprobs: { tokens: string[]; token_logprobs: number[]; top_logprobs: Array<Record<string, number>> } }>)[0].logprobs;
    assert.equal(lp.token_logprobs.length, 3);
    for (let i = 0; i < 3; i++) {
      assert.ok(lp.token_logprobs[i] <= 0);
      const top = Object.values(lp.top_logprobs[i]);
      assert.ok(top.length >= 1 && top.length <= 2);
      assert.ok(Math.abs(Math.max(...top) - lp.token_logprobs[i]) < 1e-6);
    }
  });

  it('seeded sampling repeats; stop strings end the text before them', async () => {
    const a = await completionIds(base, [9, 8, 7], 8, { temperature: 0.9, top_p: 0.9, seed: 42 }).catch(async () => null);
    assert.equal(a, null); // no key → refused (completionIds sends none)
    const req = { prompt: [9, 8, 7], max_tokens: 8, temperature: 0.9, top_p: 0.9, seed: 42, ignore_eos: true, return_token_ids: true };
    const x = await postJson(`${base}/v1/completions`, req, auth);
    const y = await postJson(`${base}/v1/completions`, req, auth);
    const ids = (r: typeof x) => (r.json.choices as Array<{ token_ids: number[]; text: string }>)[0];
    assert.deepEqual(ids(x).token_ids, ids(y).token_ids);
    const greedy = await postJson(`${base}/v1/completions`, { prompt: 'Once upon', max_tokens: 16, temperature: 0, ignore_eos: true }, auth);
    const text = (greedy.json.choices as Array<{ text: string }>)[0].text;
    const stopAt = text.slice(3, 5);
    if (stopAt.trim().length > 0) {
      const cut = await postJson(`${base}/v1/completions`, { prompt: 'Once upon', max_tokens: 16, temperature: 0, ignore_eos: true, stop: [stopAt] }, auth);
      const c = (cut.json.choices as Array<{ text: string; finish_reason: string }>)[0];
      assert.equal(c.text, text.slice(0, text.indexOf(stopAt)));
      assert.equal(c.finish_reason, 'stop');
    }
  });

  it('tokenize, detokenize, health, metrics', async () => {
    const t = await postJson(`${base}/tokenize`, { prompt: 'hello world' }, auth);
    assert.equal(t.status, 200);
    const tokens = t.json.tokens as number[];
    assert.equal(t.json.count, tokens.length);
    const d = await postJson(`${base}/detokenize`, { tokens }, auth);
    assert.equal(d.json.prompt, 'hello world');
    const h = await fetch(`${base}/health`);
    assert.equal(h.status, 200);
    const m = await fetch(`${base}/metrics`, { headers: auth });
    const text = await m.text();
    assert.match(text, /^mamba_ts_requests_total\{endpoint="\/v1\/completions",status="200"\} \d+$/m);
    assert.match(text, /^mamba_ts_generated_tokens_total [1-9]\d*$/m);
    assert.match(text, /^mamba_ts_time_to_first_token_seconds_count [1-9]\d*$/m);
    assert.match(text, /^mamba_ts_queue_length 0$/m);
    assert.match(text, /^mamba_ts_cache_hits_total \d+$/m);
  });

  it('bad requests get a clear 4xx with an OpenAI-style error body', async () => {
    const cases: Array<{ name: string; body: unknown; headers?: Record<string, string>; status: number; re: RegExp; path?: string }> = [
      { name: 'malformed JSON', body: '{"prompt": "x", ', status: 400, re: /not valid JSON/ },
      { name: 'not an object', body: '[1, 2]', status: 400, re: /JSON object/ },
      { name: 'unknown model', body: { model: 'gpt-9', prompt: 'x' }, status: 404, re: /gpt-9.*does not exist/ },
      { name: 'negative max_tokens', body: { prompt: 'x', max_tokens: -1 }, status: 400, re: /max_tokens must be a positive integer/ },
      { name: 'token id out of range', body: { prompt: [1, 100000] }, status: 400, re: /prompt\[1\].*not a token id/ },
      { name: 'bad temperature', body: { prompt: 'x', temperature: 'hot' }, status: 400, re: /temperature/ },
      { name: 'missing messages', body: { model: 'mamba-tiny' }, status: 400, re: /messages/, path: '/v1/chat/completions' },
      { name: 'n > 1', body: { prompt: 'x', n: 3 }, status: 400, re: /n = 1/ },
      { name: 'wrong key', body: { prompt: 'x' }, headers: { Authorization: 'Bearer nope' }, status: 401, re: /API key/ },
      { name: 'no key', body: { prompt: 'x' }, headers: { Authorization: '' }, status: 401, re: /API key/ },
      { name: 'unknown endpoint', body: {}, status: 404, re: /no such endpoint/, path: '/v1/embeddings' },
    ];
    for (const c of cases) {
      const r = await postJson(`${base}${c.path ?? '/v1/completions'}`, c.body, { ...auth, ...(c.headers ?? {}) });
      assert.equal(r.status, c.status, `${c.name}: ${JSON.stringify(r.json)}`);
      const err = r.json.error as Record<string, unknown>;
      assert.ok(err && typeof err.message === 'string' && typeof err.type === 'string' && 'param' in err && 'code' in err, c.name);
      assert.match(err.message as string, c.re, c.name);
    }
    const get = await fetch(`${base}/v1/completions`, { headers: auth });
    assert.equal(get.status, 405);
  });

  it('a 50 MB body is refused with 413, and the server goes on', async () => {
    const big = Buffer.alloc(50 * 2 ** 20, 0x20);
    const r = await fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...auth }, body: big });
    assert.equal(r.status, 413);
    const body = (await r.json()) as { error: { message: string } };
    assert.match(body.error.message, /too large/);
    const ok = await postJson(`${base}/v1/completions`, { prompt: [1, 2], max_tokens: 2 }, auth);
    assert.equal(ok.status, 200);
  });

  it('a client that vanishes mid-stream cancels its request; the server goes on', async () => {
    await new Promise<void>((resolve, reject) => {
      const body = JSON.stringify({ prompt: [3, 4, 5], max_tokens: 5000, temperature: 0, ignore_eos: true, stream: true });
      const req = http.request(`${base}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...auth } }, (res) => {
        res.once('data', () => {
          req.destroy(); // gone after the first chunk
          resolve();
        });
      });
      req.on('error', () => {});
      req.on('close', () => resolve());
      req.end(body);
      setTimeout(() => reject(new Error('no first chunk')), 20000).unref();
    });
    // the request leaves the batch within a few steps
    const t0 = Date.now();
    while (server.scheduler.stats.decoding + server.scheduler.stats.prefilling > 0 && Date.now() - t0 < 10000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.scheduler.stats.decoding, 0);
    const ok = await postJson(`${base}/v1/completions`, { prompt: [1, 2], max_tokens: 2 }, auth);
    assert.equal(ok.status, 200);
  });
});

describe('serve: a full queue answers 429 with Retry-After', () => {
  it('refuses beyond max-batch + max-queue', async () => {
    const tmp = tmpDir('serve-429');
    const server = await startServer(chatModelDir('mamba-tiny', tmp), {}, { maxBatch: 1, maxQueue: 1 });
    try {
      const send = () => postJson(`${server.url}/v1/completions`, { prompt: [1, 2, 3], max_tokens: 40, ignore_eos: true });
      const rs = await Promise.all([send(), send(), send(), send()]);
      const codes = rs.map((r) => r.status).sort();
      assert.ok(codes.includes(200), JSON.stringify(codes));
      const busy = rs.filter((r) => r.status === 429);
      assert.ok(busy.length >= 1, JSON.stringify(codes));
      assert.equal(busy[0].headers.get('retry-after'), '1');
      assert.equal((busy[0].json.error as { code: string }).code, 'queue_full');
    } finally {
      await server.close();
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('serve: generation_config.json defaults and stop tokens', () => {
  it('max_new_tokens and sampling defaults come from generation_config.json; stop_token_ids end a request', async () => {
    const tmp = tmpDir('serve-gencfg');
    const dir = chatModelDir('mamba-tiny', tmp);
    const file = `${dir}/generation_config.json`;
    fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), max_new_tokens: 5, do_sample: true, temperature: 1.5, top_k: 50 }));
    const server = await startServer(dir, {}, {});
    try {
      const ask = (extra: Record<string, unknown>) => completionIds(server.url, [3, 1, 4, 1, 5], undefined, extra);
      // no max_tokens: 5 (from the file); no temperature: sampling (do_sample), so seeds matter
      const a = await ask({ max_tokens: undefined, temperature: undefined, seed: 1 });
      const b = await ask({ max_tokens: undefined, temperature: undefined, seed: 1 });
      assert.equal(a.ids.length, 5);
      assert.deepEqual(a.ids, b.ids);
      const seeds = await Promise.all([2, 3, 4, 5, 6].map((seed) => ask({ max_tokens: undefined, temperature: undefined, seed })));
      assert.ok(seeds.some((s) => JSON.stringify(s.ids) !== JSON.stringify(a.ids)), 'different seeds sample differently');
      // temperature 0 in the request: greedy, whatever the file says
      const g1 = await ask({ max_tokens: 6, temperature: 0, seed: 1 });
      const g2 = await ask({ max_tokens: 6, temperature: 0, seed: 2 });
      assert.deepEqual(g1.ids, g2.ids);
      // stop_token_ids: ends at (and includes) the first occurrence of the third greedy token
      const stopTok = g1.ids[2];
      const cut = await ask({ max_tokens: 6, temperature: 0, stop_token_ids: [stopTok] });
      assert.deepEqual(cut.ids, g1.ids.slice(0, g1.ids.indexOf(stopTok) + 1));
      assert.equal((cut.body.choices as Array<{ finish_reason: string }>)[0].finish_reason, 'stop');
    } finally {
      await server.close();
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
