/**
 * One CPU benchmark for every architecture at ~130M parameters: Mamba-1, Mamba-2, a Bamba-style hybrid
 * and a same-size Llama Transformer (`PRESETS` in src/models/random.ts), with seeded random weights made
 * on the spot (`RandomTensorSource`: no checkpoint, no network).
 *
 *   npm run bench                                                   # full run, rewrites BENCHMARKS.md
 *   node --expose-gc dist/bench/models.bench.js --quick --no-write  # CI smoke run (well under 2 minutes)
 *   node --expose-gc dist/bench/models.bench.js --json --no-write   # machine-readable result on stdout
 *
 * Options:
 *   --quick          1 repetition, no warm-up (a short JIT warm-up instead), prompts 16 and 64, long
 *                    context 128, 8 decode steps, no load-from-disk measurement; numbers are noisy
 *   --presets a,b    which presets, in this order (default: the ~130M ones of PRESETS)
 *   --no-write       do not touch BENCHMARKS.md
 *   --json           print the result as JSON on stdout instead of tables (progress goes to stderr)
 *   --reps N         timed repetitions per measurement (default 3, quick 1); medians are reported
 *   --warmup N       untimed warm-up runs before them (default 1, quick 0)
 *   --long N         the long context of the long-context decode measurement (default 1024, quick 128)
 *   --chunk-size N   chunk size of the chunked prefill (default: the model's, 64 for Mamba-1, 256 for Mamba-2)
 *   --load/--no-load also time `loadModel` on a safetensors checkpoint of the same weights (default: on,
 *                    off with --quick); writes ~0.5 GB to a temporary folder per preset, deleted afterwards
 *
 * The parent process runs each preset in its own child process (`--child PRESET --json`), so the peak
 * RSS (`process.resourceUsage().maxRSS`) is that model's alone; the child prints one JSON line, the parent
 * renders the tables and writes BENCHMARKS.md. The load measurement runs in a second child
 * (`--child-load PRESET --json`) so writing and re-reading the checkpoint does not count towards it.
 *
 * Modules (bench/models/): options.ts (the command line, the plan), measure.ts (a child's measurements),
 * results.ts (what children report), render.ts (tables, BENCHMARKS.md); this file runs the children.
 */
import { trainingBench } from './train.bench.js';
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandLine, fmtMiB, gitCommit, machineInfo, repoRoot, writeMarkedSection } from './report.js';
import { makePlan, parseArgs, planArgs, USAGE, UsageError, type Options } from './models/options.js';
import { log, measureLoad, measurePreset } from './models/measure.js';
import { backendLabel, HEADER, markers, renderMarkdown, renderText } from './models/render.js';
import type { LoadResult, PresetResult, RunResult } from './models/results.js';

const THIS_FILE = fileURLToPath(import.meta.url);

// ------------------------------------------------------------------------------------------------
// Parent

function runChild(args: string[]): unknown {
  const r = spawnSync(process.execPath, ['--expose-gc', THIS_FILE, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  const out = r.stdout.toString().trim().split('\n').filter(Boolean);
  if (r.status !== 0 || out.length === 0) {
    throw new Error(`child ${args.join(' ')} failed (status ${r.status}${r.signal ? `, signal ${r.signal}` : ''})`);
  }
  return JSON.parse(out[out.length - 1]);
}

async function parent(o: Options): Promise<void> {
  const tStart = performance.now();
  const date = new Date().toISOString();
  const loadAvgStart = os.loadavg();
  const plan = makePlan(o);
  const results: PresetResult[] = [];
  const failures: { preset: string; error: string }[] = [];
  log(`presets ${o.presets.join(', ')}; ${plan.reps} timed run(s) + ${plan.warmup} warm-up; prefill ${plan.prefillLengths.join('/')}; ` +
    `long context ${plan.longContext}${o.quick ? '; QUICK' : ''}`);
  for (const p of o.presets) {
    const tp = performance.now();
    try {
      const r = runChild(['--child', p, '--json', ...planArgs(o)]) as PresetResult;
      if (o.load) r.load = runChild(['--child-load', p, '--json', ...planArgs(o)]) as LoadResult;
      results.push(r);
      log(`${p}: done in ${((performance.now() - tp) / 1000).toFixed(1)} s (peak RSS ${fmtMiB(r.memory.maxRSS)})`);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      failures.push({ preset: p, error: msg });
      log(`${p}: FAILED: ${msg}`);
    }
  }
  const root = repoRoot(import.meta.url);
  const run: RunResult = {
    date,
    machine: machineInfo(),
    loadAverage: { start: loadAvgStart, end: os.loadavg() },
    node: process.version,
    commit: gitCommit(root),
    command: commandLine(import.meta.url, 'bench', 'tsc -p tsconfig.json && '),
    quick: o.quick,
    plan,
    presets: results,
    failures,
    totalSeconds: (performance.now() - tStart) / 1000,
  };

  if (o.json) process.stdout.write(JSON.stringify(run, null, 2) + '\n');
  else process.stdout.write(renderText(run, backendLabel(o)));

  const bad = results.filter((r) => !r.logitsFinite).map((r) => r.preset);
  if (bad.length) log(`error: non-finite logits (${bad.join(', ')}): the random initialisation is broken`);
  if (failures.length || bad.length) process.exitCode = 1;
  if (o.write) {
    const label = backendLabel(o);
    if (failures.length || results.length === 0) log('BENCHMARKS.md left alone: a preset failed');
    else {
      const file = writeMarkedSection(path.join(root, 'BENCHMARKS.md'), ...markers(o), renderMarkdown(run, label), {
        headerIfNew: HEADER,
        fallbackHeading: `## Latest run: all architectures at ~130M, ${label}`,
      });
      log(`updated ${file}`);
    }
  }
}

// ------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.child) {
    const r = await measurePreset(o.child, o);
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  if (o.childLoad) {
    const r = await measureLoad(o.childLoad, o);
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  await parent(o);
  if (!o.json) await trainingBench({ quick: o.quick, write: o.write });
}

main().catch((e: unknown) => {
  if (e instanceof UsageError) {
    process.stderr.write(`[bench] ${e.message}\n${USAGE}`);
    process.exit(2);
  }
  process.stderr.write(`[bench] failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
