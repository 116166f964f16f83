/**
 * Training throughput: tokens per second of a full optimizer step (forward + backward + clipping + AdamW), on one
 * thread and data-parallel on worker threads, at two shapes:
 *   - small: a 2-layer Mamba, d_model 64, N 16, seq 256, vocab 16 (the selective-copying task), 8 sequences per step
 *     in 4 micro-batches;
 *   - issue12: the shape of issue 12's goal, a byte-level Mamba LM with d_model 256 × 4 layers (d_inner 512, N 16),
 *     8 sequences × 64 tokens per step, on text (this package's sources). One thread runs it as one micro-batch of 8
 *     and as 2 micro-batches of 4; threads T > 1 need T micro-batches (micro-batches are what the workers share),
 *     so they run T micro-batches of 8/T.
 * Called by `npm run bench` (models.bench.ts) after the inference presets; standalone:
 *   node dist/bench/train.bench.js [--quick] [--no-write] [--shape small|issue12|all] [--steps N]
 *   node dist/bench/train.bench.js --one BATCH,ACCUM,THREADS [--steps N]   (one issue-12 configuration, one line)
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildJob, DEFAULT_ARGS, type JobArgs } from '../src/train/jobs.js';
import { train } from '../src/train/trainer.js';
import { gitCommit, loadLine, machineInfo, machineLine, markdownTable, median, repoRoot, writeMarkedSection } from './report.js';

export interface TrainBenchRow {
  shape: string;
  threads: number;
  batch: number;
  accum: number;
  tokensPerSecond: number;
  msPerStep: number;
  tokensPerStep: number;
}

const SMALL: Partial<JobArgs> = { task: 'selective-copying', seqLen: 224, numTokens: 16, vocab: 16, hidden: 64, layers: 2, state: 16, batch: 2, accum: 4, lr: 1e-3, warmup: 0, evalEvery: 1_000_000, saveEvery: 1_000_000 };
const ISSUE12: Partial<JobArgs> = { task: 'text', dataLimit: 1 << 20, seqLen: 64, hidden: 256, layers: 4, state: 16, lr: 1e-3, warmup: 0, evalEvery: 1_000_000, saveEvery: 1_000_000 };

async function measure(shape: string, over: Partial<JobArgs>, threads: number, steps: number): Promise<TrainBenchRow> {
  const a: JobArgs = { ...DEFAULT_ARGS, ...over, steps } as JobArgs;
  const job = buildJob(a);
  const times: number[] = [];
  let tokens = 0;
  await train(job.model, { microStep: job.hooks.microStep }, {
    steps,
    lr: a.lr,
    warmup: 0,
    accum: a.accum,
    threads,
    args: { ...a },
    onStep: (s) => {
      times.push(s.seconds * 1000);
      tokens = s.tokens;
    },
  });
  const ms = median(times.slice(2)); // the first two steps pay for JIT warm-up (and worker start)
  return { shape, threads, batch: a.batch, accum: a.accum, tokensPerSecond: (tokens / ms) * 1000, msPerStep: ms, tokensPerStep: tokens };
}

export async function trainingBench(o: { quick: boolean; write: boolean; shapes?: Array<'small' | 'issue12'>; steps?: number }): Promise<TrainBenchRow[]> {
  const steps = o.steps ?? (o.quick ? 4 : 9);
  const shapes = o.shapes ?? ['small', 'issue12'];
  const cores = os.availableParallelism();
  const many = cores > 1 ? [Math.min(4, cores)] : [];
  const rows: TrainBenchRow[] = [];
  const root = repoRoot(import.meta.url);
  const lines: string[] = [''];
  const table = (rs: TrainBenchRow[], withBatch: boolean): string =>
    markdownTable({
      head: ['threads', ...(withBatch ? ['micro-batches × batch'] : []), 'tokens/s', 'ms/step', 'speed-up'],
      rows: rs.map((r) => [String(r.threads), ...(withBatch ? [`${r.accum} × ${r.batch}`] : []), r.tokensPerSecond.toFixed(0), r.msPerStep.toFixed(0), `${(r.tokensPerSecond / rs[0].tokensPerSecond).toFixed(2)}×`]),
      align: ['r', ...(withBatch ? ['r' as const] : []), 'r', 'r', 'r'],
    });
  if (shapes.includes('small')) {
    const rs: TrainBenchRow[] = [];
    for (const t of [1, ...many]) rs.push(await measure('small', SMALL, t, steps));
    rows.push(...rs);
    lines.push(
      `Training step (forward + backward + clip + AdamW), Mamba 2 layers × d_model 64, N 16, vocab 16, ${SMALL.batch! * SMALL.accum!} sequences × ${SMALL.seqLen! + 2 * SMALL.numTokens!} tokens per step (${SMALL.accum} micro-batches), float32, median of ${steps - 2} steps after 2 warm-up steps${o.quick ? ' — QUICK' : ''}.`,
      '',
      table(rs, false),
      '',
    );
  }
  if (shapes.includes('issue12')) {
    const rs: TrainBenchRow[] = [];
    rs.push(await measure('issue12', { ...ISSUE12, batch: 8, accum: 1 }, 1, steps));
    rs.push(await measure('issue12', { ...ISSUE12, batch: 4, accum: 2 }, 1, steps));
    for (const t of [2, 4].filter((n) => n <= cores)) rs.push(await measure('issue12', { ...ISSUE12, batch: 8 / t, accum: t }, t, steps));
    rows.push(...rs);
    lines.push(
      `Issue 12 shape: byte-level Mamba LM, d_model 256 × 4 layers (d_inner 512, N 16), 8 sequences × 64 tokens per step of text, float32, median of ${steps - 2} steps after 2 warm-up steps${o.quick ? ' — QUICK' : ''}; speed-up against the first row.`,
      '',
      table(rs, true),
      '',
    );
  }
  lines.push(
    `Machine: ${machineLine(machineInfo())}; load ${loadLine(os.loadavg())}; node ${process.version}; commit ${gitCommit(root)}; ${new Date().toISOString()}.`,
    'Command: `npm run bench` (this part alone: `node dist/bench/train.bench.js`).',
  );
  process.stdout.write(`${lines.join('\n')}\n`);
  if (o.write) {
    const file = writeMarkedSection(path.join(root, 'BENCHMARKS.md'), '<!-- bench:training -->', '<!-- /bench:training -->', lines.join('\n'), {
      headerIfNew: '# Benchmarks',
      fallbackHeading: '## Training throughput (CPU, float32)',
    });
    process.stderr.write(`updated ${file}\n`);
  }
  return rows;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const args = process.argv.slice(2);
  const val = (k: string): string | undefined => (args.includes(k) ? args[args.indexOf(k) + 1] : undefined);
  const shape = val('--shape') ?? 'all';
  const steps = val('--steps');
  const one = val('--one');
  if (one) {
    // one configuration of the issue-12 shape, one line: --one BATCH,ACCUM,THREADS (for interleaved comparisons;
    // process CPU / wall time says how many cores the run got)
    const [batch, accum, threads] = one.split(',').map(Number);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const r = await measure('issue12', { ...ISSUE12, batch, accum }, threads, steps ? Number(steps) : 9);
    const c = process.cpuUsage(c0);
    const cores = (c.user + c.system) / 1000 / (performance.now() - t0);
    process.stdout.write(`issue12 threads ${threads} ${accum} × ${batch}: ${r.tokensPerSecond.toFixed(0)} tokens/s (${r.msPerStep.toFixed(0)} ms/step), process ${cores.toFixed(2)} cores\n`);
    process.exit(0);
  }
  await trainingBench({
    quick: args.includes('--quick'),
    write: !args.includes('--no-write'),
    shapes: shape === 'all' ? ['small', 'issue12'] : [shape as 'small' | 'issue12'],
    ...(steps ? { steps: Number(steps) } : {}),
  });
}
