/** bench/models.bench.ts: the parent's tables (presets as columns), as text on stdout and as markdown for BENCHMARKS.md. */
import { fmtMiB, fmtMs, loadLine, machineLine, markdownTable, msList, textTable, type Table } from '../report.js';
import type { Options } from './options.js';
import type { DecodeRow, PresetResult, PrefillRow, RunResult } from './results.js';

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '—');
const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '—');
const times = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '—');
const tokS = (d: DecodeRow): string => `${f1(d.tokensPerSecond)} (${d.msPerStep.toFixed(0)} ms)`;

function columns(rs: PresetResult[], label: string, cell: (r: PresetResult) => string): string[] {
  return [label, ...rs.map(cell)];
}

function table(rs: PresetResult[], rows: string[][]): Table {
  return { head: ['', ...rs.map((r) => `**${r.preset}**`)], rows, align: ['l', ...rs.map((): 'r' => 'r')] };
}

interface Section {
  title: string;
  table: Table;
}

/** the algorithms of the SSM presets in parentheses, e.g. " (SSMs: chunked)" or " (Mamba-1: sequential, Mamba-2: recurrent)"; "" without SSMs */
function algorithmNames(rs: PresetResult[], which: 'main' | 'reference'): string {
  const family = (r: PresetResult) => (['mamba', 'falcon_mamba', 'jamba'].includes(r.modelType) ? 'Mamba-1' : 'Mamba-2');
  const byFamily = new Map<string, string>();
  for (const r of rs) {
    const name = r.algorithms.reference === null ? null : r.algorithms[which];
    if (name) byFamily.set(family(r), name);
  }
  const names = new Set(byFamily.values());
  if (names.size === 0) return '';
  return ` (${names.size === 1 ? `SSMs: ${[...names][0]}` : [...byFamily].map(([f, n]) => `${f}: ${n}`).join(', ')})`;
}

function sections(run: RunResult): Section[] {
  const rs = run.presets;
  const p = run.plan;
  const out: Section[] = [];

  const model: string[][] = [
    columns(rs, 'architecture', (r) => r.architecture.replace(/\s*\(.*\)$/, '')),
    columns(rs, 'layers', (r) => String(r.layers)),
    columns(rs, 'parameters', (r) => `${(r.parameters / 1e6).toFixed(1)} M`),
    columns(rs, 'weight bytes (f32)', (r) => fmtMiB(r.weightBytes)),
    columns(rs, 'build from random weights', (r) => fmtMs(r.build.medianMs)),
  ];
  if (rs.some((r) => r.load)) model.push(columns(rs, '`loadModel` from safetensors (warm cache)', (r) => (r.load ? fmtMs(r.load.time.medianMs) : '—')));
  model.push(
    columns(rs, 'peak RSS (own process)', (r) => fmtMiB(r.memory.maxRSS)),
    columns(rs, 'RSS of the bare process', (r) => fmtMiB(r.memory.rssStart)),
    columns(rs, 'prefill: default vs reference', (r) =>
      r.algorithms.reference ? `${r.algorithms.main} (chunk ${r.algorithms.chunkSize}) vs ${r.algorithms.reference}` : 'one algorithm'),
    columns(rs, 'load average (1 min) at start', (r) => f2(r.loadAverageAtStart[0])),
  );
  out.push({ title: 'Model', table: table(rs, model) });

  const prefill: string[][] = [];
  for (const L of p.prefillLengths) {
    const row = (r: PresetResult, which: 'main' | 'reference'): PrefillRow | undefined =>
      r.prefill.find((x) => x.promptLength === L && x.algorithm === r.algorithms[which]);
    prefill.push(columns(rs, `L=${L}, default${algorithmNames(rs, 'main')}`, (r) => f1(row(r, 'main')?.tokensPerSecond ?? NaN)));
    prefill.push(columns(rs, `L=${L}, reference${algorithmNames(rs, 'reference')}`, (r) => f1(row(r, 'reference')?.tokensPerSecond ?? NaN)));
    prefill.push(columns(rs, `L=${L}, default ÷ reference`, (r) => times(r.prefillRatio.find((x) => x.promptLength === L)?.ratio ?? NaN)));
  }
  if (rs.some((r) => r.longContextFill.to > r.longContextFill.from)) {
    const f = rs[0].longContextFill;
    const label = f.from > 0 ? `context ${f.from} → ${f.to}, default (1 run, continues the L=${f.from} state)` : `L=${f.to}, default (1 run)`;
    prefill.push(columns(rs, label, (r) => f1(r.longContextFill.tokensPerSecond)));
  }
  out.push({ title: 'Prefill, batch 1 — tokens/s (one `advance` on a fresh state)', table: table(rs, prefill) });

  const dec: string[][] = [
    columns(rs, `batch 1, after ${p.decodePrompt} tokens (${p.decodeSteps} steps)`, (r) => tokS(r.decode)),
    columns(rs, `batch 1, after ${p.longContext} tokens (${p.longSteps} steps)`, (r) => tokS(r.longDecode)),
    columns(rs, `long ÷ short context`, (r) => times(r.longDecode.tokensPerSecond / r.decode.tokensPerSecond)),
    columns(rs, `batch ${p.batch}, after ${p.decodePrompt} tokens (${p.batchSteps} steps), total`, (r) => tokS(r.batchDecode)),
    columns(rs, `batch ${p.batch} ÷ batch 1`, (r) => times(r.batchDecode.tokensPerSecond / r.decode.tokensPerSecond)),
  ];
  out.push({ title: 'Decode — tokens/s (ms per step); single-token `advance` calls', table: table(rs, dec) });

  const st: string[][] = [
    columns(rs, `after ${p.decodePrompt} tokens`, (r) => fmtMiB(r.state.short.bytes)),
    columns(rs, `after ${p.longContext} tokens`, (r) => fmtMiB(r.state.long.bytes)),
    columns(rs, `growth`, (r) => times(r.state.long.bytes / r.state.short.bytes)),
    columns(rs, `in use after ${p.decodePrompt} / ${p.longContext} tokens (KV caches without spare capacity)`, (r) =>
      `${fmtMiB(r.state.short.usedBytes)} / ${fmtMiB(r.state.long.usedBytes)}`),
  ];
  out.push({ title: 'State per sequence (`state.byteSize`)', table: table(rs, st) });
  return out;
}

/** every timed repetition, for judging the noise */
function repetitions(run: RunResult): Table {
  const rs = run.presets;
  const rows: string[][] = [columns(rs, 'build', (r) => msList(r.build))];
  for (const L of run.plan.prefillLengths) {
    for (const which of ['main', 'reference'] as const) {
      rows.push(columns(rs, `prefill L=${L} ${which === 'main' ? 'default' : 'reference'}`, (r) => {
        const x = r.prefill.find((y) => y.promptLength === L && y.algorithm === r.algorithms[which]);
        return x ? msList(x.time) : '—';
      }));
    }
  }
  rows.push(
    columns(rs, 'decode batch 1, short', (r) => msList(r.decode.time)),
    columns(rs, 'decode batch 1, long', (r) => msList(r.longDecode.time)),
    columns(rs, `decode batch ${run.plan.batch}`, (r) => msList(r.batchDecode.time)),
  );
  if (rs.some((r) => r.load)) rows.push(columns(rs, 'loadModel (first; then timed)', (r) => (r.load ? `${r.load.firstMs.toFixed(0)}; ${msList(r.load.time)}` : '—')));
  return table(rs, rows);
}

function runLines(run: RunResult): string[] {
  const p = run.plan;
  return [
    `date: ${run.date}`,
    `machine: ${machineLine(run.machine)}`,
    `node: ${run.node}; commit: ${run.commit}`,
    `command: \`${run.command}\``,
    `load average (1/5/15 min) at start: ${loadLine(run.loadAverage.start)}, at end: ${loadLine(run.loadAverage.end)}`,
    `repetitions: ${p.reps} timed + ${p.warmup} warm-up per measurement, median reported` +
      (p.warmup === 0 ? ' (no warm-up: one short JIT pass per model instead)' : '') + `; total runtime ${run.totalSeconds.toFixed(1)} s`,
    `logits finite: ${run.presets.every((r) => r.logitsFinite) ? 'yes' : 'NO'}` +
      (run.failures.length ? `; FAILED: ${run.failures.map((f) => `${f.preset} (${f.error})`).join('; ')}` : ''),
  ];
}

export function renderText(run: RunResult, backendLabel: string): string {
  const out = ['', `All architectures at ~130M, ${backendLabel}, random weights${run.quick ? ' — QUICK run (noisy)' : ''}`];
  out.push(...runLines(run).map((l) => l.replace(/`/g, '')), '');
  if (run.presets.length) {
    for (const s of sections(run)) out.push(s.title.replace(/`/g, ''), textTable(plainHead(s.table)), '');
    out.push('every timed repetition (ms)', textTable(plainHead(repetitions(run))), '');
  }
  return out.join('\n');
}

function plainHead(t: Table): Table {
  return { ...t, head: t.head.map((h) => h.replace(/\*\*/g, '')) };
}

const howToRead = (batch: number, backendLabel: string): string => [
  '**How to read**',
  '',
  `- Higher tokens/s is better; ${backendLabel === CPU_LABEL ? 'CPU backend, one thread' : backendLabel}. The weights are random, so speed and memory are those of`,
  '  real checkpoints of the same shape (output quality is not measured).',
  '- **Decode at a long vs a short context**: an SSM step costs the same whatever the model has read (its state has a',
  '  fixed size), so its long ÷ short ratio stays ≈ 1; attention reads its whole KV cache every step, so its ratio',
  '  falls as the context grows. At this size the weight matmuls still take most of a step, so the gap widens with',
  '  longer contexts (`--long 4096`).',
  '- **State per sequence**: constant for Mamba-1/Mamba-2 (conv window + SSM state: growth 1.00×); grows with the',
  '  context for attention (KV cache, allocated in doubling steps: `byteSize` counts the capacity, the "in use" row',
  '  only the filled positions); a hybrid has a constant SSM part plus the KV caches of its few attention layers.',
  '- **Prefill default ÷ reference** > 1: the backend\'s default algorithm is faster (CPU: chunked; wasm: its own scan',
  '  and recurrence, against the CPU chunked kernels). On one thread the chunked algorithm mostly does extra work',
  '  (its value comes with parallel backends); for Mamba-1 a prompt no longer than the chunk size runs the',
  '  sequential scan anyway, so that ratio is ≈ 1 by construction and shows the noise level.',
  `- **Batch ${batch} ÷ batch 1**: how well one step amortises reading the weights over several sequences.`,
  '- **Peak RSS** is each model\'s own process: Node itself (the "bare process" row), the f32 weights, activations,',
  '  and the states the measurements hold (the batched one and its copy included).',
  '- Compare numbers only between runs on the same quiet machine (see the load averages).',
].join('\n');

const CPU_LABEL = 'CPU backend (TypeScript reference)';

/** which backend the parent measured */
export function backendLabel(o: Options): string {
  return o.backend === 'wasm' ? `WebAssembly backend (${o.dtype} weights, ${o.threads ?? 'all'} threads)` : CPU_LABEL;
}

export function renderMarkdown(run: RunResult, backendLabel: string): string {
  const out = [
    `### All architectures at ~130M, ${backendLabel} — ${run.date}${run.quick ? ' (quick run: noisy)' : ''}`,
    '',
    ...runLines(run).map((l) => `- ${l}`),
    '',
  ];
  for (const s of sections(run)) out.push(`#### ${s.title}`, '', markdownTable(s.table), '');
  out.push(howToRead(run.plan.batch, backendLabel), '');
  out.push('<details><summary>every timed repetition (ms)</summary>', '', markdownTable(repetitions(run)), '', '</details>');
  return out.join('\n');
}

/** one marked section per backend configuration (the CPU reference keeps the original markers) */
export function markers(o: Options): [string, string] {
  const tag = o.backend === 'cpu' ? 'models' : `models-wasm-${o.dtype}-t${o.threads ?? 'all'}`;
  return [`<!-- bench:${tag}:start -->`, `<!-- bench:${tag}:end -->`];
}

/** used only when BENCHMARKS.md does not exist; the file's own header is maintained by hand */
export const HEADER = `# Benchmarks

CPU numbers for mamba-ts: every architecture at ~130M parameters, written by \`bench/models.bench.ts\`
(\`npm run bench\`; \`--quick --no-write\` for a smoke run, \`--help\` for the options).`;
