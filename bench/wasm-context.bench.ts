/**
 * Decode speed against context on the CPU (wasm backend), Mamba against a same-size Transformer, ours against
 * llama.cpp (issue 18): for each model and context C, a state at C positions, then greedy decode steps timed.
 *
 * How a state reaches C positions: a short real prefill (8 tokens), then every KV cache replaced by one of C
 * positions of random keys/values and the position set to C — the time of a decode step does not depend on the
 * values (the WebGPU context bench does the same). A Mamba's decode step does not depend on C at all: its state
 * has the same size at any context. llama.cpp runs `llama-bench -p 0 -n N -d C` right after ours at each point
 * (its own prefill of C tokens is not timed), so each ratio is of the same minutes.
 *
 * `--llama-npm DIR` in place of `--llama-bench PATH`: the prebuilt llama.cpp of the npm package node-llama-cpp
 * installed in DIR (not a dependency; bench/llamacpp-npm.ts says how to install it), run with the same arguments.
 *
 * Each point runs in its own process (peak RSS is the point's, the weights and caches of one model only); so does
 * the streaming-bandwidth probe, at the start and the end.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WasmBackend } from '../src/backend/wasm/index.js';
import { commandUsage, parseChoice, parseCommand, parseNumber, str, flag, type CommandSpec } from '../src/cli/args.js';
import { measureBandwidth } from '../src/cli/bench.js';
import { writeFileAtomic } from '../src/cli/io.js';
import { argmax } from '../src/generate/sampling.js';
import { PRESETS, RandomTensorSource } from '../src/models/random.js';
import { buildModel } from '../src/models/registry.js';
import { KV_CACHE_FORMATS } from '../src/tensor/dtype.js';
import { attentionProbe, stateAtContext } from './kv-fill.js';
import { contextLabel, ratioTable, stateLayout, sweepSvg, type StateLayout } from './context-sweep.js';
import { llamaRunner, nodeLlamaCppEntry, NODE_LLAMA_CPP_INSTALL } from './llamacpp-npm-lib.js';
import { contextTable, LLAMA_CPP, llamaBenchArgs, llamaStateBytes, parseLlamaBench, type CpuPoint } from './cpu-context.js';
import { commandLine, gitCommit, loadLine, machineInfo, machineLine, repoRoot, writeMarkedSection } from './report.js';

const SCRIPT = 'dist/bench/wasm-context.bench.js';
const SPEC: CommandSpec = {
  name: 'wasm-context',
  prog: `node ${SCRIPT}`,
  synopsis: '[options]',
  summary: 'Decode tok/s and state per sequence at several contexts on the wasm backend (random weights, batch 1), next to llama.cpp.',
  description: [
    'KV caches are filled with random keys/values at C positions (a decode step\'s time does not depend on the values);',
    'a Mamba state has the same size at any context. Writes wasm-context.json, .md and .svg to --out.',
  ].join('\n'),
  options: {
    contexts: { type: 'string', value: 'N,…', help: 'context lengths (default 512,2048,8192,32768)' },
    archs: { type: 'string', value: 'A,…', help: 'mamba, mamba2, llama, hybrid (the 130m presets; default all four)' },
    threads: { type: 'string', value: 'N', help: 'wasm threads, and llama-bench -t (default 2)' },
    'kv-cache': { type: 'string', value: 'TYPE', help: 'our KV caches: f32 (default), bf16, f16 or q8 (llama.cpp\'s default is f16)' },
    gen: { type: 'string', value: 'N', help: 'timed decode steps per point (default 32; fewer when a step is slow, see --max-seconds)' },
    'max-seconds': { type: 'string', value: 'S', help: 'about how long the timed steps of one point may take (default 30)' },
    'llama-bench': { type: 'string', value: 'PATH', help: 'llama.cpp\'s llama-bench binary: run right after ours at each point' },
    'llama-npm': { type: 'string', value: 'DIR', help: "instead of --llama-bench: the folder the npm package node-llama-cpp is installed in\n(its prebuilt llama.cpp, through bench/llamacpp-npm.ts; not a dependency)" },
    'llama-models': { type: 'string', value: 'DIR', help: 'folder of <arch>-130m-f32.gguf files of the same shapes (yours; none is shipped)' },
    'llama-build': { type: 'string', value: 'TEXT', help: "llama.cpp's commit to name in the report when its build does not say (it reports \"unknown\")" },
    'llama-args': { type: 'string', value: '"ARGS"', help: 'more llama-bench arguments, e.g. --llama-args="-fa 0" (with "=", as the value starts\nwith a dash; default none: its defaults)' },
    'llama-gen': { type: 'string', value: 'N', help: "llama.cpp's decode tokens per point (default: as many as our timed steps there)" },
    'llama-ssm-contexts': { type: 'string', value: 'N,…', help: "contexts at which llama.cpp's Mamba models run (default: all; their step does not\ndepend on the context, but -d makes llama-bench prefill C tokens first, minutes at 32k)" },
    warm: { type: 'string', value: 'N', help: 'untimed greedy steps before the timed ones, in each point\'s process (default 16: V8 compiles the\nhot wasm kernels with its optimizing tier in the background while they run; 2 before session 29)' },
    'llama-timeout': { type: 'string', value: 'S', help: 'a llama-bench run taking longer is stopped, its point "failed" (default 1800)' },
    out: { type: 'string', value: 'DIR', help: 'where wasm-context.json/.md/.svg go (default bench-results)' },
    'write-benchmarks': { type: 'boolean', help: 'also replace the bench:wasm-context section of BENCHMARKS.md' },
    render: { type: 'string', value: 'FILE', help: "measure nothing: the table and plot of an earlier run's JSON (its wasm-context.json, or the\nwasm-context.partial.json of a run stopped half way)" },
    point: { type: 'string', value: 'ARCH:C', help: '(internal) measure one point in this process, print it as JSON' },
    probe: { type: 'boolean', help: '(internal) the streaming-bandwidth probe in this process, print GB/s' },
  },
  examples: [
    `node ${SCRIPT} --contexts 512,2048,8192,32768 --llama-bench ~/llama.cpp/build/bin/llama-bench --llama-models /tmp/gguf --llama-args="-fa 0" --out docs/bench`,
    `node ${SCRIPT} --archs mamba2,llama --contexts 1024,4096 --gen 8`,
  ],
};

const v = parseCommand(SPEC, process.argv.slice(2));
if (!v) {
  process.stdout.write(commandUsage(SPEC));
  process.exit(0);
}
const int = (name: string, dflt: number): number => {
  const raw = str(v, name);
  return raw === undefined ? dflt : parseNumber(name, raw, { integer: true, min: 1, expect: 'a positive integer' }, SPEC.name);
};
const ARCHS = ['mamba', 'mamba2', 'llama', 'hybrid'];
const threads = int('threads', 2);
const kvCache = parseChoice('kv-cache', str(v, 'kv-cache') ?? 'f32', KV_CACHE_FORMATS, SPEC.name);
const gen = int('gen', 32);
const maxSeconds = parseNumber('max-seconds', str(v, 'max-seconds') ?? '30', { min: 0.001, expect: 'a positive number of seconds' }, SPEC.name);
const log = (s: string) => process.stderr.write(s + '\n');
const WARM = int('warm', 16);
const PREFILL = 8;
/** weights-sized buffer of the bandwidth probe (as `mamba-ts bench`'s, capped) */
const PROBE_BYTES = 512 * 2 ** 20;

if (flag(v, 'probe')) {
  process.stdout.write(JSON.stringify({ gb_s: measureBandwidth(threads, PROBE_BYTES) }) + '\n');
  process.exit(0);
}
const pointArg = str(v, 'point');
if (pointArg !== undefined) {
  const [arch, c] = pointArg.split(':');
  process.stdout.write(JSON.stringify(await measurePoint(arch, Number(c))) + '\n');
  process.exit(0);
}

/** one model at one context, in this process: state at C positions, WARM steps, then up to `gen` timed steps */
async function measurePoint(arch: string, C: number): Promise<{ point: CpuPoint; layout: StateLayout }> {
  const model = `${arch}-130m`;
  if (!PRESETS[model]) throw new Error(`--point: no preset ${model}`);
  if (!Number.isInteger(C) || C < PREFILL) throw new Error(`--point: context ${C} is not an integer >= ${PREFILL}`);
  const be = new WasmBackend({ threads });
  const lm = buildModel(PRESETS[model], model, new RandomTensorSource(1), { backend: be, kvCache });
  const lay = stateLayout(lm);
  // (one LCG from 12345 carried on across the row sizes)
  const st = await stateAtContext(lm, C, C + WARM + gen + 1, kvCache);
  const s = st.s;
  let logits = st.logits;
  // attention's time per step: the op run on its own over the state's caches after the timed steps (decode runs it
  // inside an attention layer's one call, which no wrapper sees: kv-fill.ts attentionProbe)
  const probeAttention = attentionProbe(lm, be);
  let tok = argmax(logits.data);
  const problems: string[] = [];
  // greedy steps as `mamba-ts generate` takes them: the LM head and the argmax as one op where the model has it
  // (`advanceArgmax`: no logits copied out), else `advance` and the argmax here
  const fused = !!lm.advanceArgmax && !!be.linearArgmax;
  const step = async (): Promise<void> => {
    if (fused) {
      const picked = await lm.advanceArgmax!([[tok]], s);
      tok = picked ? picked[0] : -1;
      if (tok < 0) {
        if (problems.length === 0) problems.push(`step at position ${s.seqLen[0]}: no finite logit`);
        tok = 0;
      }
      return;
    }
    logits = await lm.advance([[tok]], s);
    tok = argmax(logits.data);
    if (tok < 0 || !Number.isFinite(logits.data[tok])) {
      if (problems.length === 0) problems.push(`step at position ${s.seqLen[0]}: logits not finite`);
      tok = 0;
    }
  };
  let t = performance.now();
  for (let i = 0; i < WARM; i++) await step();
  const warmMs = (performance.now() - t) / WARM;
  const n = Math.max(Math.min(4, gen), Math.min(gen, Math.floor((maxSeconds * 1000) / Math.max(warmMs, 1e-3))));
  t = performance.now();
  for (let i = 0; i < n; i++) await step();
  const ms = (performance.now() - t) / n;
  // then the attention alone at the context the steps reached (C + WARM + n positions before the probe's own), as many
  // passes as steps (at most 16): mean wall ms per pass, and the KV bytes one pass reads
  let attnMs = 0;
  const passes = Math.min(n, 16);
  if (probeAttention) {
    for (let i = 0; i < passes; i++) attnMs += probeAttention(s).ms;
    attnMs /= passes;
  }
  const kvBytes = lay.perPositionBytes * (C + WARM + n + 1);
  await be.runtime.close();
  const point: CpuPoint = {
    model, context: C, batch: 1, status: 'ok', fill: lay.grows ? `prefill ${PREFILL} tokens, KV caches then written directly (random K/V at ${C} positions, position set)` : `prefill ${PREFILL} tokens (the state's size does not depend on the context)`,
    path: fused ? 'advanceArgmax' : 'advance', steps: n, ms_per_step: ms, tok_s: 1000 / ms,
    state_bytes_per_seq: lay.constBytes + lay.perPositionBytes * C, state_alloc_bytes_per_seq: s.byteSize,
    needed_bytes: 0,
    ...(lay.grows && probeAttention ? { attention_ms_per_step: attnMs, kv_gb_s: kvBytes / attnMs / 1e6 } : {}),
    peak_rss_mib: process.resourceUsage().maxRSS / 1024,
    check: problems.length ? `MISMATCH: ${problems.join('; ')}` : 'ok',
  };
  return { point, layout: lay };
}

// ------------------------------------------------------------------------------------------------ the sweep

const contexts = (str(v, 'contexts') ?? '512,2048,8192,32768').split(',').filter((x) => x).map((x) => parseNumber('contexts', x, { integer: true, min: PREFILL, expect: `an integer >= ${PREFILL}` }, SPEC.name)).sort((a, b) => a - b);
const archs = (str(v, 'archs') ?? ARCHS.join(',')).split(',').filter((x) => x);
for (const a of archs) if (!ARCHS.includes(a)) throw new Error(`--archs: unknown arch "${a}" (expected ${ARCHS.join(', ')})`);
const llamaBench = str(v, 'llama-bench');
const llamaModels = str(v, 'llama-models');
const llama = llamaRunner(llamaBench, str(v, 'llama-npm'), path.join(path.dirname(fileURLToPath(import.meta.url)), 'llamacpp-npm.js'), process.execPath);
if (!!llama !== !!llamaModels) throw new Error('--llama-models goes with --llama-bench or --llama-npm');
if (llamaBench && !existsSync(llamaBench)) throw new Error(`--llama-bench: ${llamaBench} does not exist`);
if (llama?.npm) nodeLlamaCppEntry(str(v, 'llama-npm')!, NODE_LLAMA_CPP_INSTALL);
if (llamaModels && !existsSync(llamaModels)) throw new Error(`--llama-models: ${llamaModels} does not exist`);
const llamaExtra = (str(v, 'llama-args') ?? '').split(/\s+/).filter((x) => x);
const llamaSsmContexts = str(v, 'llama-ssm-contexts')?.split(',').filter((x) => x).map((x) => parseNumber('llama-ssm-contexts', x, { integer: true, min: 1, expect: 'a positive integer' }, SPEC.name));
const llamaGen = str(v, 'llama-gen') === undefined ? undefined : int('llama-gen', 1);
const llamaTimeout = parseNumber('llama-timeout', str(v, 'llama-timeout') ?? '1800', { min: 1, expect: 'a number of seconds' }, SPEC.name);
const out = str(v, 'out') ?? 'bench-results';
const self = fileURLToPath(import.meta.url);
const root = repoRoot(import.meta.url);

const child = (args: string[]): string => {
  const text = execFileSync(process.execPath, [self, '--threads', String(threads), '--kv-cache', kvCache, ...args], { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'inherit'] });
  return text.trim().split('\n').pop()!;
};
const probe = (): number => (JSON.parse(child(['--probe'])) as { gb_s: number }).gb_s;

let llamaCommit = '';
const llamaBuild = str(v, 'llama-build');
/** llama.cpp's decode of `n` tokens after its own prefill of C, when there is a GGUF file for the model */
function runLlama(arch: string, C: number, n: number, stateOf: (typeK: string, typeV: string) => number): CpuPoint | undefined {
  if (!llama || !llamaModels) return undefined;
  const file = path.join(llamaModels, `${arch}-130m-f32.gguf`);
  if (!existsSync(file)) return undefined;
  if ((arch === 'mamba' || arch === 'mamba2') && llamaSsmContexts && !llamaSsmContexts.includes(C)) return undefined;
  const model = `${arch}-130m`;
  const t = performance.now();
  const base: CpuPoint = { model, engine: LLAMA_CPP, context: C, batch: 1, status: 'ok', fill: `llama-bench -d ${C} (its own prefill)`, state_bytes_per_seq: stateOf('f16', 'f16'), needed_bytes: 0 };
  try {
    const text = execFileSync(llama.file, [...llama.prefix, ...llamaBenchArgs(file, C, n, threads, llamaExtra)], { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'ignore'], timeout: llamaTimeout * 1000, killSignal: 'SIGKILL' });
    const r = parseLlamaBench(text, C, n, `llama-bench on ${file}`);
    llamaCommit ||= r.build_commit === 'unknown' && llamaBuild ? `${llamaBuild} (as given; the binary reports "unknown")` : r.build_commit;
    return {
      ...base, steps: n, ms_per_step: 1000 / r.tok_s, tok_s: r.tok_s, state_bytes_per_seq: stateOf(r.type_k, r.type_v),
      type_k: r.type_k, type_v: r.type_v, flash_attn: r.flash_attn, wall_s: (performance.now() - t) / 1000, check: 'ok',
    };
  } catch (e) {
    const timedOut = (e as { signal?: string }).signal === 'SIGKILL';
    return { ...base, status: 'failed', reason: timedOut ? `stopped after --llama-timeout ${llamaTimeout} s` : (e as Error).message.split('\n')[0], wall_s: (performance.now() - t) / 1000 };
  }
}

const renderFrom = str(v, 'render');
let points: CpuPoint[] = [];
let load0: number[], load1: number[] | undefined, bw0: number, bw1: number | undefined;
let command = commandLine(import.meta.url, 'bench:wasm-context', '');
let date = new Date().toISOString();
if (renderFrom) {
  // the tables and plot of an earlier run's JSON (e.g. the partial file of a run stopped half way)
  const j = JSON.parse(readFileSync(renderFrom, 'utf8')) as { date?: string; points?: CpuPoint[]; load0?: number[]; load?: number[][]; bandwidth0?: number; bandwidth_gb_s?: number[]; command?: string; llama_cpp?: string | null };
  if (!Array.isArray(j.points)) throw new Error(`--render: ${renderFrom} has no "points" array`);
  points = j.points;
  load0 = j.load0 ?? j.load?.[0] ?? [NaN, NaN, NaN];
  load1 = j.load?.[1];
  bw0 = j.bandwidth0 ?? j.bandwidth_gb_s?.[0] ?? NaN;
  bw1 = j.bandwidth_gb_s?.[1];
  command = j.command ?? `(the run that wrote ${renderFrom})`;
  date = j.date ?? date;
  llamaCommit = j.llama_cpp ?? '';
} else {
  load0 = os.loadavg();
  bw0 = probe();
  const t0 = performance.now();
  log(`[wasm-context] load ${loadLine(load0)}, streaming bandwidth ${bw0.toFixed(1)} GB/s (${threads} threads)`);
  mkdirSync(out, { recursive: true });
  /** the points so far, after each one (a run stopped half way keeps what it measured) */
  const savePartial = () => writeFileAtomic(path.join(out, 'wasm-context.partial.json'), new TextEncoder().encode(JSON.stringify({ date: new Date().toISOString(), command: commandLine(import.meta.url, 'bench:wasm-context', ''), threads, llama_cpp: llamaCommit || null, load0, bandwidth0: bw0, points }, null, 1) + '\n'), 'context bench results so far');
  for (const arch of archs) {
    const model = `${arch}-130m`;
    for (const C of contexts) {
      const elapsed = () => `[${((performance.now() - t0) / 1000).toFixed(0)} s, load ${loadLine(os.loadavg())}]`;
      let p: CpuPoint;
      let lay: StateLayout | undefined;
      try {
        ({ point: p, layout: lay } = JSON.parse(child(['--point', `${arch}:${C}`, '--gen', String(gen), '--warm', String(WARM), '--max-seconds', String(maxSeconds)])) as { point: CpuPoint; layout: StateLayout });
      } catch (e) {
        p = { model, context: C, batch: 1, status: 'failed', fill: '—', state_bytes_per_seq: NaN, needed_bytes: 0, reason: (e as Error).message.split('\n')[0] };
      }
      points.push(p);
      log(`${model} @ ${contextLabel(C)}: ` + (p.status === 'ok'
        ? `${p.tok_s!.toFixed(1)} tok/s (${p.steps} steps${p.attention_ms_per_step !== undefined ? `, attention ${p.attention_ms_per_step.toFixed(1)} ms/step, KV ${p.kv_gb_s!.toFixed(1)} GB/s` : ''}), state ${(p.state_bytes_per_seq / 2 ** 20).toFixed(2)} MiB, RSS ${p.peak_rss_mib!.toFixed(0)} MiB, check ${p.check}`
        : `FAILED: ${p.reason}`) + ` ${elapsed()}`);
      savePartial();
      const l = lay && runLlama(arch, C, llamaGen ?? p.steps ?? gen, (k, vv) => llamaStateBytes(lay, C, k, vv));
      if (l) {
        points.push(l);
        savePartial();
        log(`  ${LLAMA_CPP} ${model} @ ${contextLabel(C)}: ` + (l.status === 'ok' ? `${l.tok_s!.toFixed(1)} tok/s (K ${l.type_k}, V ${l.type_v}, flash attention ${l.flash_attn}; run ${l.wall_s!.toFixed(0)} s)` : `FAILED: ${l.reason}`) + ` ${elapsed()}`);
      }
    }
  }
  bw1 = probe();
  load1 = os.loadavg();
}

mkdirSync(out, { recursive: true });
const llamaLine = llama
  ? `- ${LLAMA_CPP}${llama.npm ? ` (run by ${llama.label})` : ''}: \`${llama.npm ? 'llama-bench' : path.basename(llamaBench!)} ${llamaBenchArgs('<arch>-130m-f32.gguf', 0, 0, threads, llamaExtra).join(' ').replace('-d 0', '-d C').replace('-n 0', '-n N')}\` right after ours at each point (N = ${llamaGen ?? 'our timed steps'}; build ${llamaCommit || 'unknown'}; random-weight GGUF files of the same shapes; its prefill of C tokens is not timed)${llamaSsmContexts ? `; its Mamba models at contexts ${llamaSsmContexts.map(contextLabel).join(', ')} only (their step does not depend on the context; -d makes llama-bench prefill C tokens first)` : ''}. hybrid-130m has no llama.cpp file: it is compared with llama.cpp's llama-130m`
  : `- ${LLAMA_CPP}: not run (no --llama-bench)`;
const md = [
  `### Decode vs context on the CPU (wasm, ${threads} threads, batch 1, f32${kvCache === 'f32' ? '' : `, KV cache ${kvCache}`}) — ${date}`,
  '',
  `- machine: ${machineLine(machineInfo())}; Node ${process.version}; commit ${gitCommit(root)}`,
  `- command: \`${command}\``,
  `- load average at start / end: ${loadLine(load0)} → ${load1 ? loadLine(load1) : '(not measured: the run was stopped before its end)'}; streaming bandwidth (stream_sum over ${PROBE_BYTES / 2 ** 20} MiB, ${threads} threads) ${bw0.toFixed(1)} → ${bw1 !== undefined ? `${bw1.toFixed(1)} GB/s` : '(not measured)'}`,
  `- ours: KV caches written directly with random K/V at C positions (the time of a step does not depend on the values), after an ${PREFILL}-token prefill; greedy steps timed one at a time (\`advanceArgmax\`: the LM head and the argmax as one op, as \`mamba-ts generate\`; before session 29 \`advance\` + an argmax in JavaScript), up to ${gen} per point (fewer when a step is slow: about ${maxSeconds} s of steps). "attention ms/step" = decode attention over every attention layer run on its own at the context the timed steps reached (the op, not the layer's fused call it runs in during decode: bench/kv-fill.ts attentionProbe), "KV stream" = the KV cache bytes it reads ÷ that time`,
  llamaLine,
  '',
  contextTable(points, { 'hybrid-130m': 'llama-130m' }),
  '',
  ...(archs.includes('mamba2') && archs.includes('llama')
    ? ['Mamba-2 against the Transformer of the same size, both ours:', '', ratioTable(points.filter((p) => p.engine === undefined && (p.model === 'mamba2-130m' || p.model === 'llama-130m'))), '']
    : []),
].join('\n');
const files = { json: path.join(out, 'wasm-context.json'), md: path.join(out, 'wasm-context.md'), svg: path.join(out, 'wasm-context.svg') };
const enc = new TextEncoder();
writeFileAtomic(files.json, enc.encode(JSON.stringify({ date, command, threads, kv_cache: kvCache, machine: machineLine(machineInfo()), load: [load0, load1 ?? null], bandwidth_gb_s: [bw0, bw1 ?? null], llama_cpp: llamaCommit || null, points }, null, 1) + '\n'), 'context bench results');
writeFileAtomic(files.md, enc.encode(md + '\n'), 'context bench table');
writeFileAtomic(files.svg, enc.encode(sweepSvg(points, `Decode vs context, CPU (wasm, ${threads} threads, f32, batch 1; load average ${load0[0].toFixed(1)} → ${load1 ? load1[0].toFixed(1) : '?'}) — dashed: ${LLAMA_CPP}`)), 'context bench plot');
console.log(md);
console.log(`wrote ${files.json}, ${files.md}, ${files.svg}`);
if (flag(v, 'write-benchmarks')) {
  const file = writeMarkedSection(path.join(root, 'BENCHMARKS.md'), '<!-- bench:wasm-context:start -->', '<!-- bench:wasm-context:end -->', md, {
    headerIfNew: '# Benchmarks\n',
    fallbackHeading: '## Decode vs context on the CPU, Mamba vs Transformer vs llama.cpp (`bench/wasm-context.bench.ts`, issue 18)',
  });
  log(`updated ${file}`);
}
const bad = points.filter((p) => p.engine === undefined && (p.status !== 'ok' || p.check !== 'ok'));
if (bad.length) {
  log(`CHECK FAILED at ${bad.length} point(s): ${bad.map((p) => `${p.model} ${contextLabel(p.context)}: ${p.reason ?? p.check}`).join(' | ')}`);
  process.exitCode = 1;
}
