/**
 * The seed's trade-off in one engine (issue 16, experiment 4): trained MQAR checkpoints (`mamba-ts train --preset
 * mqar-…`), each measured for
 *   - recall: MQAR accuracy at sequence lengths T with T/16 key-value pairs (Zoology's test slices), through the same
 *     evaluation as `mamba-ts eval`, on the wasm backend;
 *   - decode: greedy decode tok/s at contexts C, batch 1, wasm backend (KV caches written directly with random keys and
 *     values at C positions after an 8-token prefill, as bench/wasm-context.bench.ts: a step's time does not depend on
 *     the values; a Mamba state has one size at any C);
 *   - memory: state bytes per sequence at C (the KV caches at C positions; a Mamba state's fixed size).
 * Writes recall-tradeoff.json / .md / .svg (three panels against the context: accuracy, decode tok/s, state bytes).
 *
 *   node dist/bench/recall-tradeoff.js --runs mamba2=runs/mqar-mamba2,llama=runs/mqar-llama --out docs/experiments
 */
import { mkdirSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel } from '../src/api/load.js';
import { WasmBackend } from '../src/backend/wasm/index.js';
import { commandUsage, parseCommand, parseNumber, str, type CommandSpec } from '../src/cli/args.js';
import { writeFileAtomic } from '../src/cli/io.js';
import { argmax } from '../src/generate/sampling.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { evaluateCheckpoint } from '../src/train/jobs.js';
import { lineChartSvg, PALETTE, type ChartOptions, type Series } from '../src/train/plot.js';
import { contextLabel, stateLayout } from './context-sweep.js';
import { stateAtContext } from './kv-fill.js';
import { commandLine, fmt1, gitCommit, loadLine, machineInfo, machineLine, markdownTable, repoRoot } from './report.js';

const SCRIPT = 'dist/bench/recall-tradeoff.js';
const SPEC: CommandSpec = {
  name: 'recall-tradeoff',
  prog: `node ${SCRIPT}`,
  synopsis: '--runs NAME=DIR,… [options]',
  summary: 'MQAR recall, decode tok/s and state per sequence of trained checkpoints against the context, in one engine (wasm).',
  options: {
    runs: { type: 'string', value: 'NAME=DIR,…', help: 'trained MQAR checkpoints (folders written by mamba-ts train) [required]' },
    lengths: { type: 'string', value: 'T,…', help: 'recall: sequence lengths, each with T/16 key-value pairs (default 256,512,1024,2048)' },
    'eval-batches': { type: 'string', value: 'N', help: 'recall: batches of the run\'s batch size per length (default 1)' },
    contexts: { type: 'string', value: 'C,…', help: 'decode: contexts (default 256,1024,4096,16384)' },
    gen: { type: 'string', value: 'N', help: 'decode: greedy steps per timed run (3 runs a point, the median; after 32 untimed steps; default 32)' },
    threads: { type: 'string', value: 'N', help: 'wasm threads (default 1: at d_model 128 a second thread adds barriers, not speed)' },
    out: { type: 'string', value: 'DIR', help: 'where recall-tradeoff.json/.md/.svg go (default bench-results)' },
    render: { type: 'string', value: 'FILE', help: 'measure nothing: the table and plot of an earlier run\'s JSON' },
  },
  examples: [`node ${SCRIPT} --runs mamba2=runs/mqar-mamba2,llama=runs/mqar-llama,hybrid=runs/mqar-hybrid --out docs/experiments`],
};

interface RunResult {
  name: string;
  dir: string;
  params: number;
  /** accuracy (fraction of answers) at each length */
  recall: Array<{ length: number; pairs: number; acc: number; seq_acc: number; sequences: number }>;
  decode: Array<{ context: number; tok_s: number; ms_per_step: number; state_bytes_per_seq: number; steps: number }>;
}
interface Report {
  date: string;
  machine: string;
  commit: string;
  command: string;
  load: string;
  threads: number;
  runs: RunResult[];
}

const v = parseCommand(SPEC, process.argv.slice(2));
if (!v) {
  process.stdout.write(commandUsage(SPEC));
  process.exit(0);
}
const ints = (name: string, dflt: string): number[] =>
  (str(v, name) ?? dflt).split(',').filter((x) => x).map((x) => parseNumber(name, x, { integer: true, min: 16, expect: 'comma-separated integers >= 16' }, SPEC.name));
const int1 = (name: string, dflt: number): number => {
  const raw = str(v, name);
  return raw === undefined ? dflt : parseNumber(name, raw, { integer: true, min: 1, expect: 'a positive integer' }, SPEC.name);
};
const out = str(v, 'out') ?? 'bench-results';
const log = (s: string): void => void process.stderr.write(s + '\n');
/** untimed greedy steps before the timed ones at each context */
const WARM = 32;

async function measure(name: string, dir: string, threads: number): Promise<RunResult> {
  const lengths = ints('lengths', '256,512,1024,2048');
  const contexts = ints('contexts', '256,1024,4096,16384');
  const gen = int1('gen', 32);
  const evalBatches = int1('eval-batches', 1);
  const be = new WasmBackend({ threads });
  try {
    const pairs = lengths.map((T) => T / 16);
    for (const [i, T] of lengths.entries()) if (!Number.isInteger(pairs[i])) throw new Error(`--lengths: ${T} is not a multiple of 16 (T/16 key-value pairs)`);
    const t0 = performance.now();
    const m = await evaluateCheckpoint(dir, { evalLengths: lengths, evalNumKv: pairs, evalBatches }, { backend: be });
    const trainer = JSON.parse(readFileSync(path.join(dir, 'trainer_state.json'), 'utf8')) as { args?: { batch?: number; seqLen?: number; numKv?: number } };
    const batch = trainer.args?.batch ?? 64;
    // (the trained slice is reported as val_acc)
    const trained = (T: number, k: number): boolean => T === trainer.args?.seqLen && k === trainer.args?.numKv;
    const recall = lengths.map((T, i) => {
      const acc = m[`acc_L${T}_kv${pairs[i]}`] ?? (trained(T, pairs[i]) ? m.val_acc : undefined);
      const seq = m[`seq_acc_L${T}_kv${pairs[i]}`] ?? (trained(T, pairs[i]) ? m.val_seq_acc : undefined);
      if (acc === undefined) throw new Error(`${dir}: the evaluation gave no acc_L${T}_kv${pairs[i]} (is it an MQAR checkpoint? keys: ${Object.keys(m).join(', ')})`);
      return { length: T, pairs: pairs[i], acc, seq_acc: seq ?? NaN, sequences: batch * evalBatches };
    });
    log(`${name}: recall ${recall.map((r) => `${r.length}: ${(100 * r.acc).toFixed(1)}%`).join(', ')} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);

    const model = await loadModel(dir, { backend: be });
    const lm = model.lm;
    const lay = stateLayout(lm);
    const params = countParams(dir);
    const decode: RunResult['decode'] = [];
    // once per model, untimed: V8 tiers the hot wasm up in the background, which the first context's 32 untimed
    // steps did not cover at this size (~0.1–0.2 ms a step: the first point came out 3–4× slow)
    const w = lm.createState(1);
    try {
      for (let i = 0; i < 512; i++) await lm.advance([[i % lm.vocabSize]], w);
    } finally {
      w.dispose();
    }
    for (const C of contexts) {
      const { s, logits } = await stateAtContext(lm, C, C + WARM + 3 * gen + 1, 'f32');
      try {
        let tok = argmax(logits.data);
        const step = async (): Promise<void> => {
          const picked = lm.advanceArgmax ? await lm.advanceArgmax([[tok]], s) : null;
          if (picked) tok = Math.max(0, picked[0]);
          else tok = Math.max(0, argmax((await lm.advance([[tok]], s)).data));
        };
        // untimed steps first (V8 tiers the hot wasm up meanwhile), then 3 timed runs of `gen` steps: their median
        for (let i = 0; i < WARM; i++) await step();
        const reps: number[] = [];
        for (let r = 0; r < 3; r++) {
          const t = performance.now();
          for (let i = 0; i < gen; i++) await step();
          reps.push((performance.now() - t) / gen);
        }
        const ms = [...reps].sort((a, b) => a - b)[1];
        decode.push({ context: C, tok_s: 1000 / ms, ms_per_step: ms, state_bytes_per_seq: lay.constBytes + lay.perPositionBytes * C, steps: gen });
      } finally {
        s.dispose();
      }
    }
    log(`${name}: decode ${decode.map((d) => `${contextLabel(d.context)}: ${d.tok_s.toFixed(0)} tok/s`).join(', ')}`);
    return { name, dir, params, recall, decode };
  } finally {
    await be.runtime.close();
  }
}

/** parameters of a checkpoint: the element counts in its safetensors header */
function countParams(dir: string): number {
  const f = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  return f.names().reduce((a, n) => a + f.entry(n).shape.reduce((x, y) => x * y, 1), 0);
}

function table(r: Report): string {
  const lengths = [...new Set(r.runs.flatMap((x) => x.recall.map((y) => y.length)))].sort((a, b) => a - b);
  const contexts = [...new Set(r.runs.flatMap((x) => x.decode.map((y) => y.context)))].sort((a, b) => a - b);
  const kib = (b: number): string => (b >= 2 ** 20 ? `${fmt1(b / 2 ** 20)} MiB` : `${fmt1(b / 1024)} KiB`);
  const head = ['model', 'parameters', ...lengths.map((T) => `recall T=${contextLabel(T)} (${T / 16} pairs)`), ...contexts.map((C) => `decode tok/s @${contextLabel(C)}`), ...contexts.map((C) => `state @${contextLabel(C)}`)];
  const rows = r.runs.map((x) => [
    x.name, x.params ? x.params.toLocaleString('en-US') : '—',
    ...lengths.map((T) => { const y = x.recall.find((z) => z.length === T); return y ? `${(100 * y.acc).toFixed(1)}%` : '—'; }),
    ...contexts.map((C) => { const y = x.decode.find((z) => z.context === C); return y ? y.tok_s.toFixed(0) : '—'; }),
    ...contexts.map((C) => { const y = x.decode.find((z) => z.context === C); return y ? kib(y.state_bytes_per_seq) : '—'; }),
  ]);
  return [
    `### MQAR recall, decode speed and state per sequence against the context (wasm, ${r.threads} threads, batch 1) — ${r.date}`,
    '',
    `- machine: ${r.machine}; commit ${r.commit}`,
    `- command: \`${r.command}\``,
    `- load: ${r.load}`,
    `- recall: answers correct (Zoology's accuracy), ${r.runs[0]?.recall[0]?.sequences ?? '?'} sequences per length; decode: greedy steps after the context (KV caches written directly), median of 3 timed runs after 32 untimed steps`,
    '',
    markdownTable({ head, rows, align: head.map((_, i) => (i === 0 ? 'l' : 'r')) }),
    '',
  ].join('\n');
}

function chart(r: Report): ChartOptions {
  // (one color per model in every panel)
  const series = (f: (x: RunResult) => Array<[number, number]>): Series[] => r.runs.map((x, i) => {
    const pts = f(x);
    return { name: x.name, x: pts.map((p) => p[0]), y: pts.map((p) => p[1]), markers: true, color: PALETTE[i % PALETTE.length] };
  });
  const xs = [...new Set(r.runs.flatMap((x) => [...x.recall.map((y) => y.length), ...x.decode.map((y) => y.context)]))].sort((a, b) => a - b);
  return {
    title: 'The trade-off in one engine: MQAR recall vs decode speed and memory (trained d_model-128 models, wasm)',
    xLabel: 'sequence length / context (tokens)',
    xScale: 'log',
    xTicks: xs.map((c) => ({ at: c, label: contextLabel(c) })),
    panels: [
      { title: 'MQAR accuracy at length T (T/16 pairs; trained at T = 256)', yLabel: 'accuracy %', yRange: [0, 100], series: series((x) => x.recall.map((y) => [y.length, 100 * y.acc])) },
      { title: 'decode tok/s (batch 1)', yLabel: 'tok/s', yScale: 'log', series: series((x) => x.decode.map((y) => [y.context, y.tok_s])) },
      { title: 'state per sequence', yLabel: 'KiB', yScale: 'log', series: series((x) => x.decode.map((y) => [y.context, y.state_bytes_per_seq / 1024])) },
    ],
  };
}

const enc = (t: string): Uint8Array => new TextEncoder().encode(t);

function write(r: Report): void {
  mkdirSync(out, { recursive: true });
  writeFileAtomic(path.join(out, 'recall-tradeoff.json'), enc(JSON.stringify(r, null, 1) + '\n'), 'the trade-off JSON');
  writeFileAtomic(path.join(out, 'recall-tradeoff.md'), enc(table(r)), 'the trade-off table');
  writeFileAtomic(path.join(out, 'recall-tradeoff.svg'), enc(lineChartSvg(chart(r))), 'the trade-off plot');
  process.stdout.write(table(r));
  log(`wrote ${path.join(out, 'recall-tradeoff.{json,md,svg}')}`);
}

const render = str(v, 'render');
if (render !== undefined) {
  write(JSON.parse(readFileSync(render, 'utf8')) as Report);
} else {
  const spec = str(v, 'runs');
  if (!spec) throw new Error('--runs NAME=DIR,… is required (trained MQAR checkpoints)');
  const runs = spec.split(',').filter((x) => x).map((x) => {
    const i = x.lastIndexOf('='); // (a name may hold '=': "Mamba-2 (N=64)=runs/…")
    if (i <= 0) throw new Error(`--runs: "${x}" is not NAME=DIR`);
    return [x.slice(0, i), x.slice(i + 1)] as const;
  });
  const threads = int1('threads', 1);
  const loadStart = loadLine(os.loadavg());
  const results: RunResult[] = [];
  for (const [name, dir] of runs) results.push(await measure(name, dir, threads));
  write({ date: new Date().toISOString(), machine: `${machineLine(machineInfo())}; Node ${process.version}`, commit: gitCommit(repoRoot(import.meta.url)), command: commandLine(import.meta.url, 'bench:recall-tradeoff', ''), load: `${loadStart} → ${loadLine(os.loadavg())}`, threads, runs: results });
}
