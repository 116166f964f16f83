/**
 * Training throughput: tokens per second of a full optimizer step (forward + backward + clipping +
 * AdamW) of a small Mamba LM (2 layers, d_model 64, N 16, seq 256, vocab 16 — the selective-copying
 * shape), on one thread and data-parallel on worker threads. Called by `npm run bench`
 * (models.bench.ts) after the inference presets; standalone: node dist/bench/train.bench.js [--quick] [--no-write].
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildJob, DEFAULT_ARGS, type JobArgs } from '../src/train/jobs.js';
import { train } from '../src/train/trainer.js';
import { gitCommit, loadLine, machineInfo, machineLine, markdownTable, median, repoRoot, writeMarkedSection } from './report.js';

export interface TrainBenchRow {
  threads: number;
  tokensPerSecond: number;
  msPerStep: number;
  tokensPerStep: number;
}

const SHAPE: Partial<JobArgs> = { task: 'selective-copying', seqLen: 224, numTokens: 16, vocab: 16, hidden: 64, layers: 2, state: 16, batch: 2, accum: 4, lr: 1e-3, warmup: 0, evalEvery: 1_000_000, saveEvery: 1_000_000 };

async function measure(threads: number, steps: number): Promise<TrainBenchRow> {
  const a: JobArgs = { ...DEFAULT_ARGS, ...SHAPE, steps } as JobArgs;
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
  const ms = median(times.slice(1)); // the first step pays for JIT warm-up / worker start
  return { threads, tokensPerSecond: (tokens / ms) * 1000, msPerStep: ms, tokensPerStep: tokens };
}

export async function trainingBench(o: { quick: boolean; write: boolean }): Promise<TrainBenchRow[]> {
  const steps = o.quick ? 3 : 8;
  const threads = [1, ...(os.availableParallelism() > 1 ? [Math.min(4, os.availableParallelism())] : [])];
  const rows: TrainBenchRow[] = [];
  for (const t of threads) rows.push(await measure(t, steps));
  const root = repoRoot(import.meta.url);
  const lines = [
    '',
    `Training step (forward + backward + clip + AdamW), Mamba 2 layers × d_model 64, N 16, vocab 16, ${SHAPE.batch! * SHAPE.accum!} sequences × ${SHAPE.seqLen! + 2 * SHAPE.numTokens!} tokens per step (${SHAPE.accum} micro-batches), float32, median of ${steps - 1} steps${o.quick ? ' — QUICK' : ''}.`,
    `Machine: ${machineLine(machineInfo())}; load ${loadLine(os.loadavg())}; node ${process.version}; commit ${gitCommit(root)}; ${new Date().toISOString()}.`,
    'Command: `npm run bench` (this part alone: `node dist/bench/train.bench.js`).',
    '',
    markdownTable({
      head: ['threads', 'tokens/s', 'ms/step', 'speed-up'],
      rows: rows.map((r) => [String(r.threads), r.tokensPerSecond.toFixed(0), r.msPerStep.toFixed(0), `${(r.tokensPerSecond / rows[0].tokensPerSecond).toFixed(2)}×`]),
      align: ['r', 'r', 'r', 'r'],
    }),
  ];
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
  await trainingBench({ quick: args.includes('--quick'), write: !args.includes('--no-write') });
}
