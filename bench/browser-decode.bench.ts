/**
 * Greedy decode in the browser against Node (issue 18): a random-init Mamba-1 HF folder (default the mamba-130m
 * shape, 517 MB f32; written once to --dir) served with COOP/COEP beside the built playground, opened by URL in
 * headless Chromium (playwright-core) on the wasm backend at each --threads, and decoded through the page's controls
 * (token-id prompt, temperature 0, --gen tokens); Node loads the same folder on the wasm backend with the same threads
 * and decodes the same prompt through `Model.generate`, in a child process of its own session as Chromium runs in its
 * own (see NodeSide). Rounds interleave browser and Node (the order alternates), so a busy machine slows both alike;
 * the first round of each is a warm-up (wasm tier-up), not counted.
 *
 * Per row: decode tok/s (median of the rounds, and their range), ms per token in the model's steps and between them
 * (sampling, streaming to the page, the event-loop turn), CPU ms per token (every thread of the side's processes over
 * the whole generation, prefill included: Node's process; the browser's processes, from /proc), and the ratio of the median to Node's at the same threads.
 * Variants of the browser run: `plain` (the Δ heatmap off), `delta` (on, the playground's default: Δ handed out by the
 * fused decode step), `unfused` (on, Δ through the op sequence as before the fused steps could hand it out:
 * `?stepdelta=0`), and `old`: as the playground ran before issue 18's fixes and as it was measured then: Δ on through
 * the op sequence, every token and every layer's Δ posted to the page as its own message (`?stream=0&stepdelta=0`),
 * and the end awaited by Playwright's waitForFunction polling on every animation frame (which keeps the page
 * painting). The bench itself waits on a MutationObserver otherwise.
 *
 * Checks its result: the browser's greedy tokens must equal Node's, token for token, in every round; a mismatch ends
 * the run with an error.
 *
 *   node dist/bench/browser-decode.bench.js [--threads 1,2] [--gen 64] [--reps 3] [--variants plain,delta,unfused,old]
 *        [--layers N] [--dir DIR] [--no-build]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { commandUsage, flag, parseChoice, parseCommand, parseNumber, str, type CommandSpec } from '../src/cli/args.js';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadModel, type Model } from '../src/index.js';
import { writeSafetensorsAtomic } from '../src/io/safetensors.js';
import { stringifyConfigJson } from '../src/models/config-json.js';
import { initMambaWeights, mambaConfigJson } from '../src/models/init.js';
import { parseMambaConfig } from '../src/models/mamba.js';
import { PRESETS } from '../src/models/random.js';
import { buildPlayground, launchChromium, missingBrowser, servePlayground, waitForModel } from './playground.js';
import { loadLine, machineInfo, machineLine, median, textTable } from './report.js';

const VARIANTS = ['plain', 'delta', 'unfused', 'old'] as const;
type Variant = (typeof VARIANTS)[number];
/** the page's URL query of each variant (variants with the same query share a page and its loaded model) */
const PAGE_QUERY: Record<Variant, string> = { plain: '', delta: '', unfused: 'stepdelta=0', old: 'stream=0&stepdelta=0' };

const SPEC: CommandSpec = {
  name: 'browser-decode',
  summary: 'Greedy decode tok/s of the playground in headless Chromium (wasm backend) beside Node on the same random model.',
  synopsis: '[--threads 1,2] [--gen 64] [--reps 3] [--variants plain,delta,unfused,old] [--layers N] [--dir DIR] [--no-build]',
  options: {
    threads: { type: 'string', value: 'LIST', help: 'wasm threads, comma-separated (default 1,2)' },
    gen: { type: 'string', value: 'N', help: 'tokens to generate per round (default 64)' },
    prompt: { type: 'string', value: 'N', help: 'prompt length in tokens (default 16)' },
    reps: { type: 'string', value: 'N', help: 'timed rounds after one warm-up round (default 3)' },
    variants: { type: 'string', value: 'LIST', help: 'browser runs: plain (Δ heatmap off), delta (on: the playground default), unfused (on, Δ through the op sequence, not the fused step), old (Δ on, unfused, every token and layer its own message, rAF polling: as before the fixes); default plain,delta,unfused,old' },
    layers: { type: 'string', value: 'N', help: 'layers of the mamba-130m shape (default 24; fewer for a quick run)' },
    dir: { type: 'string', value: 'DIR', help: 'where the random model folders are kept (default $TMPDIR/mamba-ts-browser-bench)' },
    'no-build': { type: 'boolean', help: 'use web/dist as built (default: build the playground first)' },
  },
  examples: ['node dist/bench/browser-decode.bench.js', 'node dist/bench/browser-decode.bench.js --layers 4 --gen 32 --reps 2'],
};

interface PageGlobals {
  document: { getElementById(id: string): { textContent: string | null; dataset: Record<string, string | undefined>; classList: { contains(c: string): boolean } } | null };
  crossOriginIsolated: boolean;
  MutationObserver: new (f: () => void) => { observe(el: unknown, o: { attributes: boolean }): void; disconnect(): void };
  mambaPlayground: { lastRun(): { generated: number[]; decodeMs: number; decodeStepMs: number; tokensPerSecond: number } | null };
}

interface Run {
  tokens: number[];
  decodeMs: number;
  stepMs: number;
  /** CPU time of the side's processes (all threads) over the whole generation, ms */
  cpuMs: number;
  /** the browser's CPU ms by process type / thread name */
  threads?: Map<string, number>;
}

/** fields after `pid (comm) ` of a /proc stat line: state, ppid, … utime at [11], stime at [12] */
function statFields(file: string): string[] | null {
  let stat: string;
  try {
    stat = fs.readFileSync(file, 'utf8');
  } catch {
    return null; // exited meanwhile
  }
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/**
 * CPU ms (user + system) of this process's descendants (the browser's processes), per "process type / thread name"
 * (e.g. "renderer/DedicatedWorker thread"), from Linux /proc (USER_HZ = 100: 10 ms resolution); empty elsewhere.
 */
function browserCpu(): Map<string, number> {
  const out = new Map<string, number>();
  if (!fs.existsSync('/proc/self/stat')) return out;
  const parent = new Map<number, number>();
  for (const e of fs.readdirSync('/proc')) {
    const f = /^\d+$/.test(e) ? statFields(`/proc/${e}/stat`) : null;
    if (f) parent.set(Number(e), Number(f[1]));
  }
  for (const pid of parent.keys()) {
    let mine = false;
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) if ((mine = p === process.pid)) break;
    if (!mine) continue;
    let type = 'browser';
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.includes('--node-side')) continue; // Node's side (NodeSide), not the browser
      type = /--type=([\w-]+)/.exec(cmdline)?.[1] ?? 'browser';
      for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
        const f = statFields(`/proc/${pid}/task/${tid}/stat`);
        if (!f) continue;
        const name = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim().replace(/\d+$/, '');
        const key = `${type}/${name}`;
        out.set(key, (out.get(key) ?? 0) + (Number(f[11]) + Number(f[12])) * 10);
      }
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

function cpuDiff(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  const d = new Map<string, number>();
  for (const [k, v] of b) if (v - (a.get(k) ?? 0) > 0) d.set(k, v - (a.get(k) ?? 0));
  return d;
}

const ownCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/**
 * Node's side runs in a child process of its own session (detached: setsid), as Chromium's processes do (Playwright
 * starts the browser detached): Linux's autogroup scheduling shares a busy machine's CPU between sessions, so the two
 * sides get the same share of it whatever else runs in the terminal that started the bench.
 */
type ToNode = { type: 'load'; dir: string; threads: number } | { type: 'run'; ids: number[]; gen: number };
type FromNode = { type: 'loaded' } | { type: 'run'; run: Run } | { type: 'error'; message: string };

class NodeSide {
  private readonly child: ChildProcess;
  private pending: ((m: FromNode) => void) | null = null;

  constructor() {
    this.child = fork(fileURLToPath(import.meta.url), ['--node-side'], { detached: true, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: FromNode) => this.pending?.(m));
    this.child.on('exit', (code) => this.pending?.({ type: 'error', message: `Node's side exited (code ${code})` }));
  }

  private ask(m: ToNode): Promise<FromNode> {
    return new Promise((resolve, reject) => {
      this.pending = (r) => {
        this.pending = null;
        if (r.type === 'error') reject(new Error(`Node's side: ${r.message}`));
        else resolve(r);
      };
      this.child.send(m);
    });
  }

  async load(dir: string, threads: number): Promise<void> {
    await this.ask({ type: 'load', dir, threads });
  }

  async run(ids: number[], gen: number): Promise<Run> {
    const r = await this.ask({ type: 'run', ids, gen });
    if (r.type !== 'run') throw new Error(`Node's side answered ${r.type}`);
    return r.run;
  }

  close(): void {
    this.child.kill();
  }
}

/** the child: loads the model, runs greedy generations when asked */
function nodeSideMain(): void {
  let model: Model | null = null;
  const reply = (m: FromNode) => process.send!(m);
  process.on('message', (m: ToNode) => {
    const job = async (): Promise<FromNode> => {
      if (m.type === 'load') {
        model = await loadModel(m.dir, { backend: 'wasm', threads: m.threads, tokenizer: false });
        return { type: 'loaded' };
      }
      if (!model) throw new Error('no model loaded');
      return { type: 'run', run: await nodeRun(model, m.ids, m.gen) };
    };
    job().then(reply, (e: unknown) => reply({ type: 'error', message: e instanceof Error ? e.message : String(e) }));
  });
  process.on('disconnect', () => process.exit(0));
}

/** the mamba-130m shape with `layers` layers, random init (seed 1), written once into `root` */
function modelFolder(root: string, layers: number): string {
  const dir = path.join(root, `mamba-130m-${layers}l-seed1`);
  if (fs.existsSync(path.join(dir, 'config.json'))) return dir;
  const c = { ...parseMambaConfig(PRESETS['mamba-130m'], 'PRESETS["mamba-130m"]'), numLayers: layers };
  process.stderr.write(`[browser-decode] writing a random mamba-130m-shaped folder (${layers} layers) to ${dir}\n`);
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensorsAtomic(path.join(dir, 'model.safetensors'), initMambaWeights(c, { seed: 1 }), { format: 'pt' });
  // config.json last: its presence marks a complete folder
  const tmp = path.join(dir, `config.json.${process.pid}.tmp`);
  fs.writeFileSync(tmp, stringifyConfigJson(mambaConfigJson(c)));
  fs.renameSync(tmp, path.join(dir, 'config.json'));
  return dir;
}

/** open the playground with `threads` wasm threads and load the model folder by URL; returns the backend's name */
async function openPage(page: Page, base: string, threads: number, query: string): Promise<string> {
  await page.goto(`${base}/?threads=${threads}${query ? `&${query}` : ''}`);
  await page.waitForFunction(() => ((globalThis as unknown as PageGlobals).document.getElementById('backend-note')?.textContent ?? '') !== '', null, { timeout: 60_000 });
  if (!(await page.evaluate(() => (globalThis as unknown as PageGlobals).crossOriginIsolated))) throw new Error('the page is not cross-origin isolated');
  await page.selectOption('#backend', 'wasm');
  await page.fill('#url', '/models/m/');
  await page.click('#load-url');
  const { backend: name, status } = await waitForModel(page, 600_000);
  if (name === null) throw new Error(`the page could not load the model: ${status}`);
  if (!name.startsWith(threads === 1 ? 'wasm(1 thread' : `wasm(${threads} threads`)) throw new Error(`asked for ${threads} wasm threads, the page runs ${name}`);
  await page.selectOption('#prompt-mode', 'ids');
  await page.fill('#temperature', '0');
  return name;
}

/** one greedy generation through the page's controls */
async function browserRun(page: Page, ids: number[], gen: number, variant: Variant): Promise<Run> {
  // the page that runs is the one in front: a page behind another (variants on pages of their own) is not painted,
  // which would take its UI's CPU out of the comparison
  await page.bringToFront();
  await page.fill('#prompt', ids.join(', '));
  await page.fill('#max-tokens', String(gen));
  await page.setChecked('#capture-delta', variant !== 'plain');
  const cpu0 = browserCpu();
  await page.click('#generate');
  if (variant === 'old') {
    await page.waitForFunction(() => ['done', 'error'].includes((globalThis as unknown as PageGlobals).document.getElementById('output')?.dataset.state ?? ''), null, { timeout: 600_000 });
  } else {
    // wait on a MutationObserver: waitForFunction's default polling runs on every animation frame, which keeps the page
    // painting at 60 frames/s and takes CPU from the decode (not what a user's page does)
    await page.evaluate(
      () =>
        new Promise<void>((resolve) => {
          const g = globalThis as unknown as PageGlobals;
          const out = g.document.getElementById('output')!;
          const done = () => ['done', 'error'].includes(out.dataset.state ?? '');
          if (done()) return resolve();
          const obs = new g.MutationObserver(() => {
            if (!done()) return;
            obs.disconnect();
            resolve();
          });
          obs.observe(out, { attributes: true });
        }),
    );
  }
  const threads = cpuDiff(cpu0, browserCpu());
  const r = await page.evaluate(() => (globalThis as unknown as PageGlobals).mambaPlayground.lastRun());
  if (!r) throw new Error(`generation failed in the page: ${await page.textContent('#status')}`);
  return { tokens: r.generated, decodeMs: r.decodeMs, stepMs: r.decodeStepMs, cpuMs: [...threads.values()].reduce((a, b) => a + b, 0), threads };
}

async function nodeRun(model: Model, ids: number[], gen: number): Promise<Run> {
  const cpu0 = ownCpuMs();
  const r = await model.generate([ids], { maxNewTokens: gen });
  return { tokens: r.generated[0], decodeMs: r.stats.decodeMs, stepMs: r.stats.decodeStepMs, cpuMs: ownCpuMs() - cpu0 };
}

async function main(argv: string[]): Promise<number> {
  const values = parseCommand(SPEC, argv);
  if (values === null) {
    process.stdout.write(commandUsage(SPEC).replace('mamba-ts browser-decode', 'node dist/bench/browser-decode.bench.js'));
    return 0;
  }
  const int = (name: string, dflt: number, min: number) => parseNumber(name, str(values, name) ?? String(dflt), { integer: true, min, expect: `an integer >= ${min}` }, SPEC.name);
  const threadList = (str(values, 'threads') ?? '1,2').split(',').map((t) => parseNumber('threads', t, { integer: true, min: 1, expect: 'an integer >= 1' }, SPEC.name));
  const gen = int('gen', 64, 2);
  const promptLen = int('prompt', 16, 1);
  const reps = int('reps', 3, 1);
  const layers = int('layers', 24, 1);
  const variants = (str(values, 'variants') ?? VARIANTS.join(',')).split(',').map((v) => parseChoice('variants', v, VARIANTS, SPEC.name));
  const why = missingBrowser();
  if (why) throw new Error(why);

  const dir = modelFolder(str(values, 'dir') ?? path.join(os.tmpdir(), 'mamba-ts-browser-bench'), layers);
  if (!flag(values, 'no-build')) await buildPlayground();
  const server = await servePlayground({ m: dir });
  const browser = await launchChromium();
  const load0 = os.loadavg();
  const V = 50280;
  const ids = Array.from({ length: promptLen }, (_, i) => (i * 7919 + 13) % V);
  const rows: string[][] = [];
  const threadRows: string[] = [];
  const log = (s: string) => process.stderr.write(`[browser-decode] ${s}\n`);
  const sides: NodeSide[] = [];
  try {
    for (const T of threadList) {
      const context = await browser.newContext();
      const errors: string[] = [];
      // one page per URL query the variants need (the model loaded in each)
      const pages = new Map<string, Page>();
      for (const query of new Set(variants.map((v) => PAGE_QUERY[v]))) {
        const page = await context.newPage();
        pages.set(query, page);
        page.on('pageerror', (e) => errors.push(e.message));
        const t0 = performance.now();
        const name = await openPage(page, server.base, T, query);
        log(`${T} thread(s): the page${query ? ` (?${query})` : ''} loaded the model in ${((performance.now() - t0) / 1000).toFixed(1)} s on ${name}`);
      }
      const t0 = performance.now();
      const node = new NodeSide();
      sides.push(node);
      await node.load(dir, T);
      log(`${T} thread(s): Node loaded it in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const runs: Record<string, Run[]> = { node: [] };
      for (const v of variants) runs[v] = [];
      for (let r = 0; r <= reps; r++) {
        // warm-up round 0; then alternate who goes first
        const order: Array<'node' | Variant> = r % 2 === 0 ? ['node', ...variants] : [...variants].reverse().concat('node' as never);
        for (const who of order) {
          const run = who === 'node' ? await node.run(ids, gen) : await browserRun(pages.get(PAGE_QUERY[who])!, ids, gen, who);
          if (r > 0) runs[who].push(run);
          const ref = runs.node[runs.node.length - 1] ?? (who === 'node' ? run : null);
          if (ref && run.tokens.join(',') !== ref.tokens.join(',')) {
            throw new Error(`${T} thread(s), round ${r}, ${who}: the browser's greedy tokens differ from Node's\n  browser ${run.tokens.join(',')}\n  node    ${ref.tokens.join(',')}`);
          }
          log(`${T} thread(s) round ${r}${r === 0 ? ' (warm-up)' : ''} ${who}: ${((run.tokens.length / run.decodeMs) * 1000).toFixed(1)} tok/s`);
        }
      }
      if (errors.length) throw new Error(`errors in the page: ${errors.join('; ')}`);
      const tps = (rs: Run[]) => rs.map((x) => (x.tokens.length / x.decodeMs) * 1000);
      const nodeTps = median(tps(runs.node));
      for (const who of ['node', ...variants]) {
        const rs = runs[who];
        const t = tps(rs);
        const per = (f: (x: Run) => number) => median(rs.map((x) => f(x) / x.tokens.length)).toFixed(2);
        rows.push([
          String(T), who === 'node' ? 'Node' : `browser (${who})`, median(t).toFixed(1), `${Math.min(...t).toFixed(1)}–${Math.max(...t).toFixed(1)}`,
          per((x) => x.stepMs), per((x) => x.decodeMs - x.stepMs), per((x) => x.cpuMs), who === 'node' ? '1.00' : (median(t) / nodeTps).toFixed(2),
        ]);
      }
      for (const v of variants) {
        // the browser's threads that used at least 0.1 ms CPU per token, summed over the rounds
        const sum = new Map<string, number>();
        let n = 0;
        for (const x of runs[v]) {
          n += x.tokens.length;
          for (const [k, ms] of x.threads ?? []) sum.set(k, (sum.get(k) ?? 0) + ms);
        }
        const top = [...sum].filter(([, ms]) => ms / n >= 0.1).sort((a, b) => b[1] - a[1]);
        threadRows.push(`${T} thread(s), browser (${v}): ${top.map(([k, ms]) => `${k} ${(ms / n).toFixed(1)}`).join(', ')}`);
      }
      await context.close();
      node.close();
    }
  } finally {
    for (const side of sides) side.close();
    await browser.close();
    await server.close();
  }
  const load1 = os.loadavg();
  const out = [
    `Greedy decode, random mamba-130m shape (${layers} layers, f32), prompt ${promptLen} tokens, ${gen} new tokens, median of ${reps} rounds after a warm-up; browser: headless Chromium (playwright-core), the playground by URL, cross-origin isolated.`,
    machineLine(machineInfo()),
    `load average before / after (1, 5, 15 min): ${loadLine(load0)} → ${loadLine(load1)}`,
    '',
    textTable({
      head: ['threads', 'run', 'tok/s', 'range', 'step ms/tok', 'between ms/tok', 'CPU ms/tok', '÷ Node'],
      align: ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r'],
      rows,
    }),
    'Tokens: the browser\'s equal Node\'s in every round.',
    '',
    'The browser\'s CPU ms per token by process / thread (prefill included):',
    ...threadRows,
  ];
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

if (process.argv[2] === '--node-side') nodeSideMain();
else main(process.argv.slice(2)).then((rc) => process.exit(rc), (e: unknown) => {
  process.stderr.write(`browser-decode: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
