/**
 * `mamba-ts serve` under load, against a random model of a published shape (default mamba-130m; seeded random
 * weights made on the spot: no checkpoint, no tokenizer, prompts are token ids). The server runs in a child
 * process (so the clients' event loop does not share its thread); the clients here use fetch and read the
 * server-sent events as they come.
 *
 *   npm run bench:serve                                   # full scale (64 clients × 60 s; 10 turns to ~16k tokens)
 *   npm run bench:serve -- --clients 8 --seconds 20 --turn-tokens 200   # reduced
 *
 * 1. Load: N streaming clients, each sending one request after another for S seconds: requests/s, generated
 *    tokens/s, p50/p99 time to first token and inter-token latency, errors, server RSS before/after.
 * 2. Multi-turn chat: T turns, each adding `--turn-tokens` new tokens and `--reply` generated ones to the
 *    conversation; time to first token per turn on a server with the prefix cache and on one without (both running,
 *    each turn sent to one then the other; their replies must agree).
 *
 * Options: --preset NAME  --backend cpu|wasm|webgpu (wasm)  --dtype f32|f16|bf16|q8 (q8 on wasm)  --threads N
 *   --clients N (64) --seconds S (60) --prompt N (64 prompt tokens per load request) --max-tokens N (64)
 *   --max-batch N (64) --turns N (10) --turn-tokens N (1600) --reply N (32) --no-load --no-chat --json
 *   --write (put the result in BENCHMARKS.md)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { assembleModel } from '../src/api/model.js';
import { resolveBackendAsync } from '../src/api/load.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { serve } from '../src/server/http.js';
import { Rng } from '../src/generate/rng.js';
import { commandLine, gitCommit, machineInfo, machineLine, markdownTable, repoRoot, textTable, writeMarkedSection, loadLine } from './report.js';
import * as os from 'node:os';

interface Opts {
  preset: string;
  backend: 'cpu' | 'wasm' | 'webgpu';
  dtype?: 'f32' | 'f16' | 'bf16' | 'q8';
  threads?: number;
  clients: number;
  seconds: number;
  prompt: number;
  maxTokens: number;
  maxBatch: number;
  turns: number;
  turnTokens: number;
  reply: number;
  load: boolean;
  chat: boolean;
  json: boolean;
  write: boolean;
}

function parse(argv: string[]): Opts & { child?: string } {
  const o: Opts & { child?: string } = {
    preset: 'mamba-130m', backend: 'wasm', clients: 64, seconds: 60, prompt: 64, maxTokens: 64, maxBatch: 64,
    turns: 10, turnTokens: 1600, reply: 32, load: true, chat: true, json: false, write: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const int = (): number => {
      const v = Number(next());
      if (!Number.isInteger(v) || v < 0) throw new Error(`${a}: expected a non-negative integer`);
      return v;
    };
    switch (a) {
      case '--preset': o.preset = next(); break;
      case '--backend': o.backend = next() as Opts['backend']; break;
      case '--dtype': o.dtype = next() as Opts['dtype']; break;
      case '--threads': o.threads = int(); break;
      case '--clients': o.clients = int(); break;
      case '--seconds': o.seconds = int(); break;
      case '--prompt': o.prompt = int(); break;
      case '--max-tokens': o.maxTokens = int(); break;
      case '--max-batch': o.maxBatch = int(); break;
      case '--turns': o.turns = int(); break;
      case '--turn-tokens': o.turnTokens = int(); break;
      case '--reply': o.reply = int(); break;
      case '--no-load': o.load = false; break;
      case '--no-chat': o.chat = false; break;
      case '--json': o.json = true; break;
      case '--write': o.write = true; break;
      case '--child-server': o.child = next(); break;
      default: throw new Error(`unknown option ${a}`);
    }
  }
  if (!(o.preset in PRESETS)) throw new Error(`--preset: one of ${Object.keys(PRESETS).join(', ')}`);
  if (o.dtype === undefined && o.backend === 'wasm') o.dtype = 'q8';
  return o;
}

/** child: serve the random model; prints "URL <url>" when listening */
async function childServer(o: Opts, cacheMb: number): Promise<void> {
  const backend = await resolveBackendAsync({ backend: o.backend, threads: o.threads, weights: o.dtype });
  const model = assembleModel(
    { config: PRESETS[o.preset], configLabel: o.preset, weights: new RandomTensorSource(1), tokenizer: null, location: `random-${o.preset}` },
    { backend },
  );
  const s = await serve({ model, port: 0, modelName: o.preset, maxBatch: o.maxBatch, maxQueue: 4096, cacheMb, checkpointEvery: 512 });
  process.stdout.write(`URL ${s.url}\n`);
}

function startChild(argv: string[], cacheMb: number): Promise<{ child: ChildProcess; url: string }> {
  const file = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [file, ...argv, '--child-server', String(cacheMb)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (c: string) => {
      out += c;
      const m = /URL (\S+)/.exec(out);
      // one short request first: the measurements start warm (JIT, wasm instantiation, first allocations)
      if (m) void streamCompletion(m[1], Array.from({ length: 64 }, (_, i) => 5 + i), 4).then(() => resolve({ child, url: m[1] }), reject);
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
}

interface StreamResult {
  ttftMs: number;
  gapsMs: number[];
  tokens: number[];
}

/** one streamed completion; times the first token and the gaps between tokens */
async function streamCompletion(url: string, prompt: number[], maxTokens: number): Promise<StreamResult> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream: true, return_token_ids: true }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  let last = 0;
  const r: StreamResult = { ttftMs: NaN, gapsMs: [], tokens: [] };
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let k: number;
    while ((k = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const obj = JSON.parse(ev.slice(6)) as { choices: Array<{ token_ids?: number[] }>; error?: unknown };
      if (obj.error) throw new Error(JSON.stringify(obj.error));
      const ids = obj.choices[0]?.token_ids ?? [];
      const t = performance.now();
      for (const id of ids) {
        if (r.tokens.length === 0) r.ttftMs = t - t0;
        else r.gapsMs.push(t - last);
        r.tokens.push(id);
        last = t;
      }
    }
  }
  return r;
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/** the server's RSS and the bytes its prefix cache holds (from /metrics) */
async function memory(url: string): Promise<{ rss: number; cache: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const get = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
  return { rss: get(/^process_resident_memory_bytes (\d+)/m), cache: get(/^mamba_ts_cache_bytes (\d+)/m) };
}

function randomIds(rng: Rng, n: number, vocab: number): number[] {
  return Array.from({ length: n }, () => 2 + Math.floor(rng.next() * (vocab - 2)));
}

async function loadTest(o: Opts, url: string, vocab: number) {
  const before = await memory(url);
  const ttft: number[] = [];
  const gaps: number[] = [];
  let requests = 0;
  let tokens = 0;
  let errors = 0;
  const firstError: string[] = [];
  const t0 = performance.now();
  const end = t0 + o.seconds * 1000;
  await Promise.all(
    Array.from({ length: o.clients }, async (_, c) => {
      const rng = new Rng(1000 + c);
      while (performance.now() < end) {
        try {
          const r = await streamCompletion(url, randomIds(rng, o.prompt, vocab), o.maxTokens);
          requests++;
          tokens += r.tokens.length;
          ttft.push(r.ttftMs);
          gaps.push(...r.gapsMs);
        } catch (e) {
          errors++;
          if (firstError.length === 0) firstError.push(String((e as Error).message));
        }
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const after = await memory(url);
  return {
    clients: o.clients, seconds: wall, requests, requestsPerSecond: requests / wall, tokensPerSecond: tokens / wall,
    ttftP50: pct(ttft, 50), ttftP99: pct(ttft, 99), itlP50: pct(gaps, 50), itlP99: pct(gaps, 99), errors, firstError: firstError[0] ?? null,
    rssBeforeMiB: before.rss / 2 ** 20, rssAfterMiB: after.rss / 2 ** 20, cacheAfterMiB: after.cache / 2 ** 20,
  };
}

/**
 * a conversation of `turns` turns: each adds turnTokens new tokens, the reply is appended to the history; every
 * turn goes to the server with the cache and then, the same prompt, to the one without (in lockstep, so both see
 * the same machine load)
 */
async function chatTest(o: Opts, cached: string, plain: string, vocab: number): Promise<ChatRow[]> {
  const rng = new Rng(7);
  let history: number[] = [];
  const out: ChatRow[] = [];
  for (let t = 1; t <= o.turns; t++) {
    const prompt = [...history, ...randomIds(rng, o.turnTokens, vocab)];
    const a = await streamCompletion(cached, prompt, o.reply);
    const b = await streamCompletion(plain, prompt, o.reply);
    if (a.tokens.join() !== b.tokens.join()) throw new Error(`turn ${t}: the cached server's reply differs from the uncached one's`);
    out.push({ turn: t, promptTokens: prompt.length, ttftCacheMs: a.ttftMs, ttftNoCacheMs: b.ttftMs, speedup: b.ttftMs / a.ttftMs });
    history = [...prompt, ...a.tokens];
  }
  return out;
}

interface ChatRow {
  turn: number;
  promptTokens: number;
  ttftCacheMs: number;
  ttftNoCacheMs: number;
  speedup: number;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const o = parse(argv);
  if (o.child !== undefined) return childServer(o, Number(o.child));
  const vocab = Number(PRESETS[o.preset].vocab_size);
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  const result: Record<string, unknown> = { preset: o.preset, backend: o.backend, dtype: o.dtype ?? 'f32', machine: machineLine(machineInfo()), loadavg: loadLine(os.loadavg()) };
  if (o.load) {
    log(`load: ${o.clients} clients × ${o.seconds} s, prompt ${o.prompt}, ${o.maxTokens} tokens each`);
    const { child, url } = await startChild(argv, 512);
    try {
      result.load = await loadTest(o, url, vocab);
    } finally {
      child.kill();
    }
  }
  if (o.chat) {
    log(`chat: ${o.turns} turns of ${o.turnTokens} new tokens + ${o.reply} reply, with and without the cache`);
    const started = await Promise.allSettled([startChild(argv, 2048), startChild(argv, 0)]);
    if (started.some((s) => s.status === 'rejected')) {
      for (const s of started) if (s.status === 'fulfilled') s.value.child.kill();
      throw (started.find((s) => s.status === 'rejected') as PromiseRejectedResult).reason;
    }
    const [withCache, without] = started.map((s) => (s as PromiseFulfilledResult<{ child: ChildProcess; url: string }>).value);
    try {
      result.chat = await chatTest(o, withCache.url, without.url, vocab);
    } finally {
      withCache.child.kill();
      without.child.kill();
    }
  }
  if (o.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  const text = render(o, result, commandLine(import.meta.url, 'bench:serve', 'npm run build && '));
  process.stdout.write(text.plain + '\n');
  if (o.write) {
    const root = repoRoot(import.meta.url);
    writeMarkedSection(path.join(root, 'BENCHMARKS.md'), '<!-- serve:start -->', '<!-- serve:end -->', text.markdown, {
      headerIfNew: '# Benchmarks',
      fallbackHeading: '## Serving (`mamba-ts serve`, `npm run bench:serve`)',
    });
    log('BENCHMARKS.md updated');
  }
}

function render(o: Opts, r: Record<string, unknown>, command: string): { plain: string; markdown: string } {
  const f = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  const parts: Array<{ title: string; table: { head: string[]; rows: string[][]; align: Array<'l' | 'r'> } }> = [];
  const load = r.load as ReturnType<typeof loadTest> extends Promise<infer T> ? T : never;
  if (load) {
    parts.push({
      title: `Load: ${load.clients} streaming clients for ${f(load.seconds, 0)} s, prompt ${o.prompt} tokens, ${o.maxTokens} generated each (greedy), max batch ${o.maxBatch}`,
      table: {
        head: ['requests', 'req/s', 'tokens/s', 'TTFT p50', 'TTFT p99', 'ITL p50', 'ITL p99', 'errors', 'RSS before → after', 'of which prefix cache'],
        rows: [[String(load.requests), f(load.requestsPerSecond, 2), f(load.tokensPerSecond), `${f(load.ttftP50, 0)} ms`, `${f(load.ttftP99, 0)} ms`, `${f(load.itlP50, 0)} ms`, `${f(load.itlP99, 0)} ms`, String(load.errors), `${f(load.rssBeforeMiB, 0)} → ${f(load.rssAfterMiB, 0)} MiB`, `${f(load.cacheAfterMiB, 0)} MiB`]],
        align: ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
      },
    });
  }
  const chat = r.chat as ChatRow[] | undefined;
  if (chat) {
    parts.push({
      title: `Multi-turn chat: ${o.turns} turns of ${o.turnTokens} new tokens + a ${o.reply}-token reply; time to first token`,
      table: {
        head: ['turn', 'prompt tokens', 'TTFT with cache', 'TTFT without', 'speed-up'],
        rows: chat.map((c) => [String(c.turn), String(c.promptTokens), `${f(c.ttftCacheMs, 0)} ms`, `${f(c.ttftNoCacheMs, 0)} ms`, `${f(c.speedup)}×`]),
        align: ['r', 'r', 'r', 'r', 'r'],
      },
    });
  }
  const head = `${o.preset} (random weights), ${o.backend}${o.dtype ? ` ${o.dtype}` : ''}${o.threads ? `, ${o.threads} threads` : ''}`;
  const meta = [`Machine: ${r.machine}; load average before: ${r.loadavg}`, `Date: ${new Date().toISOString().slice(0, 10)}; commit ${gitCommit(repoRoot(import.meta.url))}`, `Command: \`${command}\``];
  return {
    plain: [head, ...parts.flatMap((p) => ['', p.title, textTable(p.table)]), '', ...meta].join('\n'),
    markdown: [`### ${head}`, '', ...meta.map((m) => `${m}  `), ...parts.flatMap((p) => ['', `**${p.title}**`, '', markdownTable(p.table)])].join('\n'),
  };
}

main().catch((e) => {
  process.stderr.write(`serve.bench: ${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
