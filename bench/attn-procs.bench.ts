/**
 * Decode attention time across fresh processes (issue 18, session 30): the "bimodal" attention of the CPU context
 * bench (the same build and command gave 7.4 ms of attention per step at 2k context in one process and 23–25 ms in
 * another). Starts --procs fresh Node processes one after another; each builds the model (random weights, wasm,
 * f32), fills its KV caches at --context positions (bench/kv-fill.ts), runs --warm greedy steps, then --gen timed
 * steps; after each step the attention op runs on its own over every layer's caches at the step's context
 * (kv-fill.ts attentionProbe: decode itself runs attention inside each layer's one call, `attentionDecode`, which
 * the op's wrapper does not see — session 33), each call timed. In each process the steps alternate, 4 at a time, between the decode
 * scratch layouts (`attnPad` true: every thread's partials on cache lines of their own, the default since session
 * 30; false: packed, before), so both see the same thread placement and machine load.
 *
 * Per process and layout: attention ms per step (mean of the probe's passes, one per step), the CPU ms of those calls (process.cpuUsage, all threads),
 * the per-call p2 / p10 / median, and how many calls ran "parallel-fast" (under --fast-ms); last, the fraction of
 * processes whose median call is over 1.5× the fastest process's median (the slow mode).
 *
 *   node dist/bench/attn-procs.bench.js [--procs 10] [--arch llama] [--context 2048] [--threads 1,2] [--gen 48]
 *        [--warm 16] [--layouts pad,packed] [--fast-ms 0.75]
 */
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import { fileURLToPath } from 'node:url';
import { WasmBackend } from '../src/backend/wasm/index.js';
import type { AttentionArgs } from '../src/backend/backend.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';
import { attentionProbe, stateAtContext } from './kv-fill.js';
import { arg, intListArg, listArg } from './options.js';

const LAYOUTS = ['pad', 'packed'] as const;
type Layout = (typeof LAYOUTS)[number];

interface ProcResult {
  pid: number;
  threads: number;
  layouts: Record<string, { attn_ms_per_step: number; attn_cpu_ms_per_step: number; step_ms: number; p2: number; p10: number; p50: number; fast: number; calls: number }>;
  tokens: string;
}

const q = (a: number[], p: number): number => {
  const b = [...a].sort((x, y) => x - y);
  return b[Math.floor(p * (b.length - 1))];
};

async function child(arch: string, C: number, threads: number, gen: number, warm: number, layouts: Layout[], fastMs: number): Promise<ProcResult> {
  const model = `${arch}-130m`;
  if (!PRESETS[model]) throw new Error(`--arch: no preset ${model}`);
  const be = new WasmBackend({ threads });
  const lm = buildModel(PRESETS[model], model, new RandomTensorSource(1), { backend: be, kvCache: 'f32' });
  const { s } = await stateAtContext(lm, C, C + warm + gen + 1, 'f32');
  const probeAttention = attentionProbe(lm, be);
  if (!probeAttention) throw new Error(`--arch ${arch}: the model has no attention layers`);
  const calls = new Map<Layout, number[]>(), cpu = new Map<Layout, number>(), steps = new Map<Layout, number[]>();
  let layout: Layout = layouts[0];
  const attention = be.attention;
  be.attention = (a: AttentionArgs) => {
    const t = performance.now(), c = process.cpuUsage();
    try {
      return attention.call(be, a);
    } finally {
      calls.get(layout)!.push(performance.now() - t);
      const d = process.cpuUsage(c);
      cpu.set(layout, cpu.get(layout)! + (d.user + d.system) / 1000);
    }
  };
  const reset = (): void => {
    for (const l of layouts) {
      calls.set(l, []);
      cpu.set(l, 0);
      steps.set(l, []);
    }
  };
  let tok = 1;
  const picked: number[] = [];
  const step = async (i: number): Promise<void> => {
    layout = layouts[(i >> 2) % layouts.length];
    be.attnPad = layout === 'pad';
    const t = performance.now();
    const p = lm.advanceArgmax ? await lm.advanceArgmax([[tok]], s) : null;
    if (!p) throw new Error(`${model}: no advanceArgmax on the wasm backend`);
    tok = p[0];
    picked.push(tok);
    steps.get(layout)!.push(performance.now() - t);
    probeAttention(s); // (its be.attention calls are the ones timed)
  };
  reset();
  for (let i = 0; i < warm; i++) await step(i);
  reset();
  picked.length = 0;
  for (let i = 0; i < gen; i++) await step(i);
  await be.runtime.close();
  const out: ProcResult['layouts'] = {};
  for (const l of layouts) {
    const c = calls.get(l)!, n = steps.get(l)!.length;
    out[l] = {
      attn_ms_per_step: c.reduce((x, y) => x + y, 0) / n, attn_cpu_ms_per_step: cpu.get(l)! / n,
      step_ms: steps.get(l)!.reduce((x, y) => x + y, 0) / n, p2: q(c, 0.02), p10: q(c, 0.1), p50: q(c, 0.5),
      fast: c.filter((x) => x < fastMs).length, calls: c.length,
    };
  }
  return { pid: process.pid, threads, layouts: out, tokens: picked.join(',') };
}

const procs = Number(arg('procs', '10'));
const arch = arg('arch', 'llama');
const C = Number(arg('context', '2048'));
const threadList = intListArg('threads', '1,2');
const gen = Number(arg('gen', '48'));
const warm = Number(arg('warm', '16'));
const layouts = listArg('layouts', 'pad,packed', LAYOUTS);
const fastMs = Number(arg('fast-ms', '0.75'));
if (process.argv.includes('--child')) {
  process.stdout.write(JSON.stringify(await child(arch, C, threadList[0], gen, warm, layouts, fastMs)) + '\n');
  process.exit(0);
}
const self = fileURLToPath(import.meta.url);
console.log(`# decode attention across fresh processes: ${arch}-130m f32, context ${C}, ${gen} timed steps after ${warm} (layouts ${layouts.join(', ')}, alternating 4 steps at a time)`);
console.log(`- load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(' / ')}`);
console.log('| process | threads | ' + layouts.map((l) => `${l}: attention ms/step (CPU ms) | ${l}: per call p2 / p10 / median ms | ${l}: calls < ${fastMs} ms`).join(' | ') + ' |');
console.log('|---:|---:|' + layouts.map(() => '---:|---:|---:|').join(''));
const results: ProcResult[] = [];
for (let p = 0; p < procs; p++) {
  for (const T of threadList) {
    const text = execFileSync(process.execPath, [self, '--child', '--arch', arch, '--context', String(C), '--threads', String(T), '--gen', String(gen), '--warm', String(warm), '--layouts', layouts.join(','), '--fast-ms', String(fastMs)], { encoding: 'utf8', maxBuffer: 1 << 24 });
    const r = JSON.parse(text.trim().split('\n').pop()!) as ProcResult;
    results.push(r);
    console.log(`| ${p + 1} (pid ${r.pid}) | ${T} | ` + layouts.map((l) => {
      const x = r.layouts[l];
      return `${x.attn_ms_per_step.toFixed(2)} (${x.attn_cpu_ms_per_step.toFixed(1)}) | ${x.p2.toFixed(3)} / ${x.p10.toFixed(3)} / ${x.p50.toFixed(3)} | ${x.fast}/${x.calls}`;
    }).join(' | ') + ' |');
  }
}
// every process greedy-decodes the same tokens, whatever its layout mix (the layouts give the same numbers)
const tokenSets = new Set(results.map((r) => r.tokens));
console.log(`- load average at end: ${os.loadavg().map((x) => x.toFixed(2)).join(' / ')}; greedy tokens ${tokenSets.size === 1 ? 'identical in every process' : `DIFFER (${tokenSets.size} sequences)`}`);
for (const T of threadList) {
  for (const l of layouts) {
    const med = results.filter((r) => r.threads === T).map((r) => r.layouts[l].p50);
    const best = Math.min(...med);
    const slow = med.filter((m) => m > 1.5 * best).length;
    console.log(`- ${T} thread(s), ${l}: median call ${Math.min(...med).toFixed(3)}–${Math.max(...med).toFixed(3)} ms across processes; slow mode (> 1.5× the best) in ${slow} of ${med.length}`);
  }
}
if (tokenSets.size !== 1) process.exitCode = 1;
