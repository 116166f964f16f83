/**
 * The browser playground end to end: build web/ with Vite, serve it and model folders from a local HTTP
 * server (with COOP/COEP headers, so the page is cross-origin isolated, and without them under /nocoi/),
 * drive it in headless Chromium through its controls (load a folder by URL or the folder picker, choose
 * the backend, prompt, greedy, generate; a GGUF file by URL, the file picker or dropped on the page; a model by hub name from a local "hub" server, then again with that
 * server stopped, from the Cache API) and check that the generated tokens equal the Node CPU
 * backend's, and that the Δ heatmap has one row per Mamba layer and one column per token.
 *
 * Needs Debian's chromium (/usr/bin/chromium, or MAMBA_TS_CHROMIUM). Without it the test is skipped,
 * unless MAMBA_TS_REQUIRE_BROWSER=1 (CI), where it fails.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { loadModel } from '../../src/index.js';
import { encodeModelGguf, readExportInput, writeGgufAtomic } from '../../src/io/gguf.js';
import { writeSafetensorsAtomic } from '../../src/io/safetensors.js';
import { initMambaWeights, mambaConfigJson } from '../../src/models/init.js';
import type { MambaConfig } from '../../src/models/mamba.js';
import { FIXTURES, hfFixture } from '../helpers.js';
import { startFakeHub } from '../io/hub-server.js';
import { buildPlayground, launchChromium, missingBrowser, servePlayground, waitForModel, type StaticServer } from '../../bench/playground.js';

const REQUIRE = process.env.MAMBA_TS_REQUIRE_BROWSER === '1';
const REQUIRE_WEBGPU = process.env.MAMBA_TS_REQUIRE_WEBGPU === '1';
const NEW_TOKENS = 12;
const GGUF_FILE = 'model.gguf';

/** A random-init Mamba-1 whose vocabulary fits the BPE fixture tokenizer (as scripts/make-demo-model.ts). */
function writeTextModel(dir: string): void {
  const config: MambaConfig = {
    source: 'hf', vocabSize: 2048, hiddenSize: 64, innerSize: 128, stateSize: 8, numLayers: 2,
    convKernel: 4, dtRank: 4, useBias: false, useConvBias: true, normEps: 1e-5, tieEmbeddings: true, eosTokenIds: [0],
  };
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensorsAtomic(path.join(dir, 'model.safetensors'), initMambaWeights(config, { seed: 7, initializerRange: 0.02 }));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(mambaConfigJson(config)));
  fs.copyFileSync(path.join(FIXTURES, 'tokenizer-bpe', 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
}

/** what the callbacks run in the page use (this file is compiled without the DOM library) */
interface PageElement {
  dataset: Record<string, string | undefined>;
  textContent: string | null;
  classList: { contains(c: string): boolean };
}
/** what dropping a file on the page uses */
interface DropGlobals {
  atob(s: string): string;
  DataTransfer: new () => { items: { add(f: unknown): void } };
  File: new (parts: unknown[], name: string) => unknown;
  DragEvent: new (type: string, init: { dataTransfer: unknown; bubbles: boolean; cancelable: boolean }) => unknown;
  document: { dispatchEvent(e: unknown): boolean };
}
/** the heatmap's pixels after its incremental draws against a full redraw (run in the page after the generation) */
interface HeatmapGlobals {
  requestAnimationFrame(f: () => void): void;
  document: { getElementById(id: string): { width: number; height: number; getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } } | null };
  mambaPlayground: { heatmapStats(): HeatmapDraws; redrawHeatmap(): void };
}
interface HeatmapDraws {
  fullDraws: number;
  incrementalDraws: number;
  rowRepaints: number;
  pixelsPut: number;
}
interface PageGlobals {
  document: { getElementById(id: string): PageElement | null };
  mambaPlayground: {
    deltaValues(): Record<number, number[]>;
    lastRun(): { generated: number[]; decodeMs: number; decodeStepMs: number } | null;
    streamMessages(): number;
  };
}

interface Case {
  name: string;
  backend: 'cpu' | 'wasm' | 'webgpu';
  model: string;
  /** how the page gets the folder: its URL, the folder picker, or a hub name (org/<model>) from `hub`; a GGUF file: its URL, the file picker, dropped on the page */
  via: 'url' | 'picker' | 'hub' | 'drop';
  /** the model is `model.gguf` in the folder (exported by encodeModelGguf, F32), not the folder */
  gguf?: boolean;
  /** the hub endpoint (?hub=) for via 'hub' */
  hub?: string;
  prompt: { ids: number[] } | { text: string };
  isolated?: boolean;
  /** text in the backend name the page reports, e.g. "2 threads" */
  backendLike?: RegExp;
  /** relative tolerance on mean Δ against the Node CPU backend (default 1e-4) */
  deltaTolerance?: number;
  /** the page's query string (e.g. threads=1&stream=0) */
  query?: string;
  /** how many messages must bring the tokens and Δ, given the Mamba layers */
  streamMessages?: (layers: number) => number;
}

describe('browser playground (headless Chromium)', () => {
  const skip = missingBrowser();
  let browser: Browser | undefined;
  let server: StaticServer | undefined;
  let base = '';
  let tmp = '';
  const models: Record<string, string> = {};
  const pageErrors: string[] = [];
  /** each case's heatmap draws (full layouts, incremental draws), printed at the end */
  const heatmapDraws: HeatmapDraws[] = [];

  before(async () => {
    if (skip) return;
    const t0 = Date.now();
    await buildPlayground();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-web-'));
    writeTextModel(path.join(tmp, 'text-model'));
    Object.assign(models, {
      'mamba-tiny': hfFixture('mamba-tiny'),
      'mamba-tiny-sharded': hfFixture('mamba-tiny-sharded'),
      'mamba2-tiny': hfFixture('mamba2-tiny'),
      'text-model': path.join(tmp, 'text-model'),
    });
    // the same models as one F32 GGUF file each (model.gguf in NAME-gguf/)
    for (const name of ['text-model', 'mamba-tiny', 'mamba2-tiny']) {
      const dir = path.join(tmp, `${name}-gguf`);
      fs.mkdirSync(dir);
      writeGgufAtomic(path.join(dir, GGUF_FILE), encodeModelGguf(readExportInput(models[name]), 'f32'));
      models[`${name}-gguf`] = dir;
    }
    server = await servePlayground(models);
    base = server.base;
    browser = await launchChromium();
    console.log(`# playground built and served, browser up in ${Date.now() - t0} ms`);
  });

  after(async () => {
    if (heatmapDraws.length) console.log(`# heatmap draws per case: ${heatmapDraws.map((d) => `${d.fullDraws} full + ${d.incrementalDraws} incremental`).join(', ')}`);
    await browser?.close();
    await server?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** the Node CPU backend's greedy tokens and mean Δ per layer and token (what the heatmap shows) */
  async function expected(c: Case): Promise<{ ids: number[]; generated: number[]; text?: string; delta: Record<number, number[]> }> {
    // a GGUF file: loadModel on Node reads the same file
    const model = await loadModel(c.gguf ? path.join(models[c.model], GGUF_FILE) : models[c.model]);
    const ids = 'ids' in c.prompt ? c.prompt.ids : model.encode(c.prompt.text);
    const delta: Record<number, number[]> = {};
    const res = await model.generate([ids], {
      maxNewTokens: NEW_TOKENS,
      onDelta: ({ layer, delta: d }) => {
        const [, L, C] = d.shape;
        for (let t = 0; t < L; t++) {
          let s = 0;
          for (let ch = 0; ch < C; ch++) s += d.data[t * C + ch];
          (delta[layer] ??= []).push(s / C);
        }
      },
    });
    return { ids, generated: res.generated[0], text: res.text?.[0], delta };
  }

  /** drive the page through one case; returns why it cannot run here, or null */
  async function runCase(page: Page, c: Case): Promise<string | null> {
    const prefix = c.isolated === false ? '/nocoi' : '';
    page.on('pageerror', (e) => pageErrors.push(`${c.name}: ${e.message}`));
    await page.goto(`${base}${prefix}/${c.hub ? `?hub=${encodeURIComponent(c.hub)}` : c.query ? `?${c.query}` : ''}`);
    // the worker reports what it can run; then pick the backend
    await page.waitForFunction(() => ((globalThis as unknown as PageGlobals).document.getElementById('backend-note')?.textContent ?? '') !== '', null, { timeout: 30_000 });
    if (c.backend === 'webgpu' && (await page.$eval('#backend option[value="webgpu"]', (o) => (o as unknown as { disabled: boolean }).disabled))) {
      const why = `no WebGPU in this Chromium: ${await page.textContent('#backend-note')}`;
      if (REQUIRE_WEBGPU) assert.fail(`MAMBA_TS_REQUIRE_WEBGPU=1 but ${why}`);
      return why;
    }
    await page.selectOption('#backend', c.backend);
    if (c.via === 'url' || c.via === 'hub') {
      await page.fill('#url', c.via === 'hub' ? `org/${c.model}` : `${prefix}/models/${c.model}/${c.gguf ? GGUF_FILE : ''}`);
      await page.click('#load-url');
    } else if (c.gguf && c.via === 'picker') {
      await page.setInputFiles('#pick-files', path.join(models[c.model], GGUF_FILE));
    } else if (c.via === 'drop') {
      const b64 = fs.readFileSync(path.join(models[c.model], GGUF_FILE)).toString('base64');
      await page.evaluate(({ b64, name }) => {
        const g = globalThis as unknown as DropGlobals;
        const dt = new g.DataTransfer();
        dt.items.add(new g.File([Uint8Array.from(g.atob(b64), (ch) => ch.charCodeAt(0))], name));
        g.document.dispatchEvent(new g.DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
      }, { b64, name: GGUF_FILE });
    } else {
      await page.setInputFiles('#pick-folder', models[c.model]);
    }
    const { backend: loaded, status } = await waitForModel(page, 60_000);
    assert.ok(loaded !== null, `loading failed: ${status}`);
    const backendName = loaded;
    if (c.backendLike) assert.match(backendName, c.backendLike, `backend: ${status}`);

    if ('ids' in c.prompt) {
      await page.selectOption('#prompt-mode', 'ids');
      await page.fill('#prompt', c.prompt.ids.join(', '));
    } else {
      await page.selectOption('#prompt-mode', 'text');
      await page.fill('#prompt', c.prompt.text);
    }
    await page.fill('#temperature', '0');
    await page.fill('#max-tokens', String(NEW_TOKENS));
    await page.click('#generate');
    await page.waitForFunction(() => ['done', 'error'].includes((globalThis as unknown as PageGlobals).document.getElementById('output')?.dataset.state ?? ''), null, { timeout: 120_000 });
    const out = await page.$eval('#output', (el) => ({ ...(el as unknown as PageElement).dataset }));
    assert.equal(out.state, 'done', `generation failed: ${await page.textContent('#status')}`);

    const want = await expected(c);
    assert.deepEqual(out.prompt?.split(',').map(Number), want.ids, 'prompt ids');
    assert.deepEqual(out.generated?.split(',').map(Number), want.generated, `generated tokens on ${backendName} equal the Node CPU backend's`);
    if (want.text !== undefined) assert.equal(await page.textContent('#output .gen'), want.text, 'streamed text');
    const heat = await page.$eval('#heatmap', (el) => ({ ...(el as unknown as PageElement).dataset }));
    // every Mamba layer reports Δ for every token read: the prompt and each generated token
    const layers = Object.keys(want.delta).length;
    assert.ok(layers > 0);
    assert.equal(Number(heat.layers), layers, 'heatmap rows = Mamba layers');
    assert.equal(Number(heat.columns), want.ids.length + want.generated.length, 'heatmap columns = prompt + generated tokens');
    // and its values are the Node CPU backend's Δ (float32 kernels of another backend: relative 1e-4)
    const got = await page.evaluate(() => (globalThis as unknown as PageGlobals).mambaPlayground.deltaValues());
    for (const [layer, row] of Object.entries(want.delta)) {
      const g = got[Number(layer)];
      assert.equal(g?.length, row.length, `Δ columns of layer ${layer}`);
      const tol = c.deltaTolerance ?? 1e-4;
      row.forEach((v, i) => assert.ok(Math.abs(g[i] - v) <= tol * Math.max(1, Math.abs(v)), `layer ${layer} token ${i}: mean Δ ${g[i]} vs Node ${v}`));
    }
    // the heatmap drew incrementally as the tokens came; its pixels are those of a full redraw of the same data
    const pixels = await page.evaluate(async () => {
      const g = globalThis as unknown as HeatmapGlobals;
      for (let i = 0; i < 2; i++) await new Promise<void>((done) => g.requestAnimationFrame(() => done())); // the last batch's draw
      const canvas = g.document.getElementById('heatmap')!;
      const read = () => canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      const draws = g.mambaPlayground.heatmapStats();
      const before = read();
      g.mambaPlayground.redrawHeatmap();
      const after = read();
      let differ = before.length === after.length ? 0 : Math.max(before.length, after.length);
      for (let i = 0; i < Math.min(before.length, after.length); i++) if (before[i] !== after[i]) differ++;
      return { differ, bytes: before.length, draws };
    });
    assert.ok(pixels.bytes > 0 && pixels.draws.fullDraws >= 1, JSON.stringify(pixels));
    assert.equal(pixels.differ, 0, `heatmap: ${pixels.differ} of ${pixels.bytes} pixel bytes differ from a full redraw (${JSON.stringify(pixels.draws)})`);
    heatmapDraws.push(pixels.draws);
    assert.match((await page.textContent('#stats')) ?? '', /tok\/s/);
    const run = await page.evaluate(() => (globalThis as unknown as PageGlobals).mambaPlayground.lastRun());
    assert.deepEqual(run?.generated, want.generated, 'lastRun() has the generated tokens');
    assert.ok(run.decodeStepMs >= 0 && run.decodeStepMs <= run.decodeMs, `decode step time ${run.decodeStepMs} ms within the decode's ${run.decodeMs} ms`);
    if (c.streamMessages) {
      const n = await page.evaluate(() => (globalThis as unknown as PageGlobals).mambaPlayground.streamMessages());
      assert.equal(n, c.streamMessages(layers), 'messages that brought the tokens and Δ');
    }
    return null;
  }

  const PROMPT = [1, 7, 42, 3, 99, 255, 8];
  const cases: Case[] = [
    { name: 'JS backend, Mamba-1, folder by URL', backend: 'cpu', model: 'mamba-tiny', via: 'url', prompt: { ids: PROMPT }, backendLike: /^cpu/ },
    { name: 'JS backend, Mamba-2, folder by URL', backend: 'cpu', model: 'mamba2-tiny', via: 'url', prompt: { ids: PROMPT } },
    {
      name: 'WASM backend on worker threads (cross-origin isolated), sharded folder from the folder picker',
      backend: 'wasm', model: 'mamba-tiny-sharded', via: 'picker', prompt: { ids: PROMPT }, backendLike: /^wasm\([2-9]\d* threads/,
    },
    {
      name: 'WASM backend on one thread (not isolated), text prompt through the tokenizer',
      backend: 'wasm', model: 'text-model', via: 'url', isolated: false, prompt: { text: 'The state space model' }, backendLike: /^wasm\(1 thread,/,
    },
    {
      // a stream interval longer than the run: the first token comes at once (with the prompt's Δ), the rest in one batch
      name: 'WASM backend, 1 thread by ?threads=1 in an isolated page, tokens and Δ batched (?stream=100000: two messages)',
      backend: 'wasm', model: 'mamba-tiny', via: 'url', prompt: { ids: PROMPT }, backendLike: /^wasm\(1 thread,/,
      query: 'threads=1&stream=100000', streamMessages: () => 2,
    },
    {
      // every token and every layer's Δ (the prompt's, then one per token fed) as its own message
      name: 'WASM backend on 2 threads, Mamba-2, tokens and Δ each as it comes (?stream=0)',
      backend: 'wasm', model: 'mamba2-tiny', via: 'url', prompt: { ids: PROMPT }, backendLike: /^wasm\(2 threads,/,
      query: 'threads=2&stream=0', streamMessages: (layers) => NEW_TOKENS + layers * (1 + NEW_TOKENS),
    },
    {
      // Δ through the op sequence instead of the fused decode step (the browser-decode bench's `unfused`): the same heatmap
      name: 'WASM backend on 2 threads, Δ through the op sequence (?stepdelta=0)',
      backend: 'wasm', model: 'mamba-tiny', via: 'url', prompt: { ids: PROMPT }, backendLike: /^wasm\(2 threads,/,
      query: 'threads=2&stepdelta=0',
    },
    {
      // SwiftShader's Vulkan where there is no GPU (slow: shader compilation dominates, so Mamba-1 only)
      name: 'WebGPU backend, Mamba-1, folder by URL',
      backend: 'webgpu', model: 'mamba-tiny', via: 'url', prompt: { ids: PROMPT }, backendLike: /^webgpu/, deltaTolerance: 1e-3,
    },
    {
      name: 'GGUF file by URL (F32, its tokenizer from tokenizer.ggml.*), JS backend, text prompt',
      backend: 'cpu', model: 'text-model-gguf', gguf: true, via: 'url', prompt: { text: 'The state space model' }, backendLike: /^cpu/,
    },
    {
      name: 'GGUF file from the file picker, WASM backend on worker threads, Mamba-2',
      backend: 'wasm', model: 'mamba2-tiny-gguf', gguf: true, via: 'picker', prompt: { ids: PROMPT }, backendLike: /^wasm\([2-9]\d* threads/,
    },
    {
      name: 'GGUF file dropped on the page, JS backend, Mamba-1',
      backend: 'cpu', model: 'mamba-tiny-gguf', gguf: true, via: 'drop', prompt: { ids: PROMPT }, backendLike: /^cpu/,
    },
  ];

  test('a model by hub name (a local server as the hub, set with ?hub=), kept in the Cache API: the second visit loads with the hub stopped', async (t) => {
    if (skip) {
      if (REQUIRE) assert.fail(`MAMBA_TS_REQUIRE_BROWSER=1 but ${skip}`);
      return t.skip(skip);
    }
    const files: Record<string, Uint8Array> = {};
    for (const f of fs.readdirSync(models['text-model'])) files[f] = new Uint8Array(fs.readFileSync(path.join(models['text-model'], f)));
    const hub = await startFakeHub({ 'org/text-model': { files, refs: { main: 'f'.repeat(40) } } });
    const c: Case = { name: 'hub', backend: 'cpu', model: 'text-model', via: 'hub', hub: hub.url, prompt: { text: 'The state space model' } };
    const context = await browser!.newContext();
    try {
      assert.equal(await runCase(await context.newPage(), c), null);
      const fetched = hub.requests.filter((q) => q.method === 'GET').map((q) => q.path);
      assert.ok(fetched.includes(`/org/text-model/resolve/${'f'.repeat(40)}/tokenizer.json`), fetched.join(', '));
      await hub.close();
      // a new visit (same browser profile): the hub is gone, the Cache API has the files
      assert.equal(await runCase(await context.newPage(), c), null);
    } finally {
      await context.close();
      await hub.close();
    }
    assert.deepEqual(pageErrors, [], 'uncaught errors in the page');
  });

  for (const c of cases) {
    test(c.name, async (t) => {
      if (skip) {
        if (REQUIRE) assert.fail(`MAMBA_TS_REQUIRE_BROWSER=1 but ${skip}`);
        return t.skip(skip);
      }
      const context = await browser!.newContext();
      let why: string | null;
      try {
        why = await runCase(await context.newPage(), c);
      } finally {
        await context.close();
      }
      if (why) return t.skip(why);
      assert.deepEqual(pageErrors, [], 'uncaught errors in the page');
    });
  }
});
