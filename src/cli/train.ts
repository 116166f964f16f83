/** `mamba-ts train` and `mamba-ts eval`: train a model on a task with a progress bar; evaluate a checkpoint. */
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, resolveBackendAsync } from '../api/load.js';
import type { Backend } from '../backend/backend.js';
import type { WebGpuBackend } from '../backend/webgpu/backend.js';
import { ARCHS, type ArchName, buildJob, DEFAULT_ARGS, evaluateCheckpoint, type JobArgs, PRESETS, TASKS, type TaskName } from '../train/jobs.js';
import { countParameters } from '../train/lm.js';
import { ProgressBar } from '../train/progress.js';
import { checkRunFolder } from '../train/run-folder.js';
import { DataError, DEFAULT_MAX_TOTAL_BYTES, normalizeExtension } from '../train/data.js';
import { train } from '../train/trainer.js';
import { commandUsage, flag, parseChoice, parseCommand, parseNumber, parseSize, str, UsageError, type CommandSpec, type ParsedValues } from './args.js';
import { formatBytes, type CliIO } from './io.js';
import { requireModel } from './info.js';

/** numeric flags → JobArgs fields */
const NUMERIC: Array<[flag: string, key: keyof JobArgs, integer: boolean, min: number, help: string]> = [
  ['steps', 'steps', true, 1, 'optimizer steps'],
  ['batch', 'batch', true, 1, 'sequences per micro-batch'],
  ['seq-len', 'seqLen', true, 2, 'sequence length (text window; synthetic task length L)'],
  ['lr', 'lr', false, 0, 'peak learning rate (warmup, then cosine decay to lr/10)'],
  ['warmup', 'warmup', true, 0, 'warmup steps'],
  ['weight-decay', 'weightDecay', false, 0, 'AdamW weight decay (never on A_log, D, Δ bias, norms, biases)'],
  ['accum', 'accum', true, 1, 'gradient accumulation: micro-batches per optimizer step'],
  ['seed', 'seed', true, 0, 'seed of the initialization and the data order'],
  ['hidden', 'hidden', true, 1, 'model width d_model'],
  ['layers', 'layers', true, 1, 'number of layers'],
  ['state', 'state', true, 1, 'SSM state size N'],
  ['expand', 'expand', true, 1, 'Mamba block expansion'],
  ['heads', 'heads', true, 1, 'attention heads (llama, hybrid: head dim = hidden / N); Mamba-2 heads (mamba2: head dim = inner / N)'],
  ['head-dim', 'headDim', true, 1, 'head size of attention and Mamba-2 (default 64, or the width when smaller)'],
  ['attn-every', 'attnEvery', true, 1, 'hybrid: one attention layer in N (layer i when i mod N = N/2 rounded down; default 2)'],
  ['intermediate', 'intermediate', true, 1, 'MLP width of llama and hybrid (default 8/3 × hidden, rounded up to a multiple of 8)'],
  ['rope-theta', 'ropeTheta', false, 1, 'llama: RoPE base (default 10000)'],
  ['vocab', 'vocab', true, 3, 'synthetic tasks: vocabulary size (mqar: Zoology uses 8192; copy: data tokens + 3)'],
  ['num-kv', 'numKv', true, 1, 'mqar: key-value pairs per sequence (default 8)'],
  ['power-a', 'powerA', false, 0, 'mqar: a of the query-gap law P(gap) ∝ (gap+1)^(a−1), > 0 (default 0.01 as Zoology; 1 = uniform)'],
  ['copy-len', 'copyLen', true, 1, 'copy: tokens of the string to copy (sequence 2N + 2; default 32)'],
  ['copy-min-len', 'copyMinLen', true, 1, 'copy: train on strings of every length from N to --copy-len (default: all of --copy-len)'],
  ['num-tokens', 'numTokens', true, 1, 'selective copying: data tokens to copy'],
  ['eval-every', 'evalEvery', true, 1, 'evaluate every N steps'],
  ['save-every', 'saveEvery', true, 1, 'checkpoint every N steps'],
  ['eval-batches', 'evalBatches', true, 0, 'evaluation batches (text: 0 = the whole held-out tail)'],
  ['train-limit', 'trainLimit', true, 0, 'fmnist: training images used (0 = all 60000)'],
  ['test-limit', 'testLimit', true, 0, 'fmnist: test images evaluated (0 = all 10000)'],
];

export const TRAIN_SPEC: CommandSpec = {
  name: 'train',
  summary: 'Train a Mamba, Mamba-2, Llama or hybrid model (or an S4D ablation) on text or one of the papers\' tasks, with checkpoints and curves.',
  synopsis: '[--preset NAME] [--task TASK] [--out DIR] [options]',
  description: [
    'Presets (flags override them):',
    ...Object.entries(PRESETS).map(([n, p]) => `  ${n.padEnd(22)} ${p.description}`),
    '',
    'The checkpoint folder holds model.safetensors + config.json (Hugging Face format for Mamba/S6 models),',
    'optimizer.safetensors, trainer_state.json (step, curves, arguments) and curves.svg; it is replaced',
    'atomically at every save. --resume continues an interrupted run with the same batches it would have seen.',
    'A folder that holds another run is not replaced without --overwrite; --resume on a run already at',
    '--steps says so and exits 0. Ctrl-C (or SIGTERM) finishes the step under way, saves it and exits 130',
    '(143); a second one quits at once, without saving.',
    '',
    '--data takes every UTF-8 text file of a folder (binary files, node_modules, dist and hidden entries',
    'are skipped), read in pieces, up to --data-limit bytes; the line "data: …" says what was used.',
    'A flag given twice takes the later value (npm start -- --out DIR overrides the script\'s own flags).',
    '',
    '--backend webgpu trains on the GPU (every task: text, the synthetic tasks, fmnist): weights, gradients and',
    'AdamW moments stay there, and the numbers are read back every --log-every steps (evaluation too runs there);',
    'checkpoints are the same files, and --resume may switch between cpu and webgpu.',
  ].join('\n'),
  options: {
    preset: { type: 'string', short: 'p', value: 'NAME', help: `named setup: ${Object.keys(PRESETS).join(', ')}` },
    task: { type: 'string', value: 'TASK', help: `${TASKS.join(', ')} (default text)` },
    data: { type: 'string', value: 'PATH', help: "text: folder or file to train on (default: this package's own src/ folder)" },
    'data-ext': { type: 'string', value: '.EXT,…', help: 'text: take only files with these extensions, e.g. .md,.ts (default: every text file)' },
    'data-limit': { type: 'string', value: 'SIZE', help: `text: read at most this much text, e.g. 256M, 1G (default ${formatBytes(DEFAULT_MAX_TOTAL_BYTES).replace(/\.0+ /, ' ')})` },
    from: { type: 'string', value: 'DIR', help: 'start from this checkpoint (any architecture mamba-ts loads, a folder written by train,\nor a hub name org/name from the Hugging Face cache) instead of a fresh model' },
    out: { type: 'string', short: 'o', value: 'DIR', help: 'checkpoint folder (default runs/<preset or task>)' },
    resume: { type: 'boolean', help: 'continue from the checkpoint in --out' },
    overwrite: { type: 'boolean', help: 'replace the checkpoint in --out with a new run (without it, an existing run is refused)' },
    arch: { type: 'string', value: 'ARCH', help: `fresh model: ${ARCHS.join(', ')} (default mamba; hybrid = Bamba: Mamba-2 layers + one attention layer in --attn-every)` },
    'dry-run': { type: 'boolean', help: 'build the model and data, print what would be trained (with the parameter count) and exit' },
    mixer: { type: 'string', value: 's6|s4d', help: 'Mamba block SSM: s6 (selective, default) or s4d (LTI ablation)' },
    's4d-init': { type: 'string', value: 'KIND', help: 'S4D A initialization: legs, lin, inv, real, random' },
    'eval-lengths': { type: 'string', value: 'L,L,…', help: 'synthetic tasks: lengths to evaluate after training (induction heads, mqar: sequence lengths; copy: string lengths)' },
    'eval-num-kv': { type: 'string', value: 'K,K,…', help: 'mqar: key-value pairs at each of --eval-lengths (Zoology\'s test slices; default --num-kv)' },
    ...Object.fromEntries(NUMERIC.map(([f, , , , help]) => [f, { type: 'string' as const, value: 'N', help }])),
    'time-limit': { type: 'string', value: 'SECONDS', help: 'stop after this long, with a checkpoint (continue later with --resume)' },
    threads: { type: 'string', short: 't', value: 'N', help: 'data-parallel worker threads (default: available cores; at most --accum are used; more than the cores: a warning)' },
    backend: { type: 'string', value: 'NAME', help: 'cpu (default: TypeScript + wasm kernels, data-parallel threads) or webgpu (the GPU)' },
    'log-every': { type: 'string', value: 'N', help: 'read the loss back every N steps (default 1 on cpu, 10 on webgpu, where a read waits for the GPU)' },
    sample: { type: 'string', value: 'N', help: 'text: generate N tokens from the trained model at the end (default 200; 0 = none)' },
    prompt: { type: 'string', value: 'TEXT', help: 'text: prompt of the final sample (default "export function ")' },
    json: { type: 'boolean', help: 'print the final metrics as one JSON line' },
  },
  examples: [
    'mamba-ts train --preset text-tiny --data ./src --out runs/tiny',
    'mamba-ts train --preset selective-copying --out runs/copy',
    'mamba-ts train --preset selective-copying --out runs/copy --resume',
    'mamba-ts train --preset fmnist-legs --steps 500 --out runs/fmnist-legs',
    'mamba-ts train --preset selective-copying --backend webgpu --out runs/copy-gpu',
    'mamba-ts train --preset fmnist-legs --backend webgpu --batch 32 --accum 1 --out runs/fmnist-legs-gpu',
  ],
};

export function parseJobArgs(v: ParsedValues, command: string): { args: JobArgs; preset: string | null } {
  const presetName = str(v, 'preset') ?? null;
  let args: JobArgs = { ...DEFAULT_ARGS };
  if (presetName !== null) {
    const p = PRESETS[presetName];
    if (!p) throw new UsageError(`--preset: unknown preset '${presetName}' (presets: ${Object.keys(PRESETS).join(', ')})`, command);
    args = { ...args, ...p.args };
  }
  const task = str(v, 'task');
  if (task !== undefined) args.task = parseChoice('task', task, TASKS, command) as TaskName;
  for (const [f, key, integer, min] of NUMERIC) {
    const raw = str(v, f);
    if (raw !== undefined) (args as unknown as Record<string, number>)[key] = parseNumber(f, raw, { integer, min, expect: `${integer ? 'an integer' : 'a number'} >= ${min}` }, command);
  }
  if (args.powerA <= 0) throw new UsageError(`--power-a: expected a number > 0, got ${args.powerA}`, command);
  const arch = str(v, 'arch');
  if (arch !== undefined) args.arch = parseChoice('arch', arch, ARCHS, command) as ArchName;
  const mixer = str(v, 'mixer');
  if (mixer !== undefined) args.mixer = parseChoice('mixer', mixer, ['s6', 's4d'] as const, command);
  const init = str(v, 's4d-init');
  if (init !== undefined) args.s4dInit = parseChoice('s4d-init', init, ['legs', 'lin', 'inv', 'real', 'random'] as const, command);
  const lengths = str(v, 'eval-lengths');
  if (lengths !== undefined) args.evalLengths = lengths.split(',').map((s) => parseNumber('eval-lengths', s, { integer: true, min: 3, expect: 'comma-separated integers >= 3' }, command));
  const kvs = parseKvList(v, command);
  if (kvs !== undefined) args.evalNumKv = kvs;
  const data = str(v, 'data');
  if (data !== undefined) args.data = data;
  const ext = str(v, 'data-ext');
  if (ext !== undefined) {
    try {
      args.dataExt = ext.split(',').filter((e) => e.trim() !== '').map(normalizeExtension);
    } catch (e) {
      throw new UsageError(`--data-ext: ${e instanceof DataError ? e.message.replace(/^text corpus: /, '') : String(e)}`, command);
    }
    if (args.dataExt.length === 0) throw new UsageError(`--data-ext: expected extensions such as .md,.ts, got '${ext}'`, command);
  }
  const limit = str(v, 'data-limit');
  if (limit !== undefined) args.dataLimit = parseSize('data-limit', limit, command);
  const from = str(v, 'from');
  if (from !== undefined) args.from = from;
  if (from !== undefined && arch !== undefined) throw new UsageError('--arch builds a fresh model and --from starts from a checkpoint (its own architecture): give one of them', command);
  return { args, preset: presetName };
}

/** --eval-num-kv K,K,… */
function parseKvList(v: ParsedValues, command: string): number[] | undefined {
  const raw = str(v, 'eval-num-kv');
  return raw?.split(',').map((s) => parseNumber('eval-num-kv', s, { integer: true, min: 1, expect: 'comma-separated integers >= 1' }, command));
}

/** exit codes of a run stopped by a signal: 128 + its number */
const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

export async function trainCommand(argv: string[], io: CliIO): Promise<number> {
  const v = parseCommand(TRAIN_SPEC, argv);
  if (v === null) {
    io.stdout.write(commandUsage(TRAIN_SPEC));
    return 0;
  }
  const { args, preset } = parseJobArgs(v, 'train');
  const out = str(v, 'out') ?? path.join('runs', preset ?? args.task);
  const resume = flag(v, 'resume');
  const overwrite = flag(v, 'overwrite');
  if (resume && overwrite) throw new UsageError('--resume and --overwrite contradict each other: continue the run in --out, or replace it', 'train');
  const threadsRaw = str(v, 'threads');
  const backendName = parseChoice('backend', str(v, 'backend') ?? 'cpu', ['cpu', 'webgpu'] as const, 'train');
  const gpu = backendName === 'webgpu';
  let threads = threadsRaw !== undefined ? parseNumber('threads', threadsRaw, { integer: true, min: 1, expect: 'an integer >= 1' }, 'train') : os.availableParallelism();
  if (gpu) {
    if (threads > 1 && threadsRaw !== undefined) throw new UsageError('--threads (data-parallel CPU workers) needs --backend cpu; webgpu trains on its GPU', 'train');
    threads = 1;
  }
  const logEveryRaw = str(v, 'log-every');
  const logEvery = logEveryRaw !== undefined ? parseNumber('log-every', logEveryRaw, { integer: true, min: 1, expect: 'an integer >= 1' }, 'train') : undefined;
  const timeLimit = str(v, 'time-limit') !== undefined ? parseNumber('time-limit', str(v, 'time-limit')!, { min: 0, expect: 'a number of seconds >= 0' }, 'train') : undefined;
  const sampleTokens = str(v, 'sample') !== undefined ? parseNumber('sample', str(v, 'sample')!, { integer: true, min: 0, expect: 'an integer >= 0' }, 'train') : 200;
  if (flag(v, 'dry-run')) {
    const job = buildJob(args, undefined, {});
    if (job.dataSummary) io.stderr.write(`${job.dataSummary}\n`);
    if (flag(v, 'json')) io.stdout.write(`${JSON.stringify({ preset, task: args.task, arch: args.arch, parameters: countParameters(job.model), describe: job.describe })}\n`);
    else io.stdout.write(`${job.describe}\n`);
    return 0;
  }
  // before any work: the checkpoint folder can take this run
  const folder = checkRunFolder(out, { resume, overwrite });
  if (resume && folder.step !== null && folder.step >= args.steps) {
    io.stderr.write(`checkpoint already at step ${folder.step} ≥ --steps ${args.steps}: nothing to train (raise --steps to train further)\n`);
    return 0;
  }
  const cores = os.availableParallelism();
  if (threadsRaw !== undefined && threads > cores) {
    io.stderr.write(`warning: --threads ${threads} is more than the ${cores} core${cores === 1 ? '' : 's'} of this machine: the threads will share them (slower than --threads ${cores})\n`);
  }
  const backend: Backend | undefined = gpu ? await resolveBackendAsync({ backend: 'webgpu', weights: 'f32' }) : undefined;
  const job = buildJob(args, undefined, backend ? { backend } : {});
  const used = Math.min(threads, args.accum);
  if (job.dataSummary) io.stderr.write(`${job.dataSummary}\n`);
  const where = backend
    ? `on ${backend.name} (micro-batches of ${args.batch}, accum ${args.accum})`
    : used > 1 ? `data-parallel on ${used} threads (${args.accum} micro-batches of ${args.batch} per step)` : `1 thread (micro-batches of ${args.batch}, accum ${args.accum}${threads > 1 ? '; use --accum ≥ --threads to train in parallel' : ''})`;
  io.stderr.write(`${job.describe}\n${where}\n`);
  // made after the first step (a resumed run starts mid-way), which is therefore not counted in the rates
  let bar: ProgressBar | null = null;
  const progress = (step: number): ProgressBar => (bar ??= new ProgressBar(io.stderr as never, { total: args.steps, startStep: step, rateUnit: args.task === 'fmnist' ? 'px/s' : 'tok/s' }));
  const say = (line: string): void => (bar ? bar.log(line) : void io.stderr.write(`${line}\n`));

  // Ctrl-C / SIGTERM: finish the step under way, save it, exit 128 + signal; a second one quits at once
  const stop = new AbortController();
  let stopSignal: NodeJS.Signals = 'SIGINT';
  let lastStep = folder.step ?? 0;
  let lastSaved: number | null = folder.step;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stop.signal.aborted) {
      (bar as ProgressBar | null)?.done();
      io.stderr.write(`interrupted again: quitting without saving${lastSaved !== null ? ` (the checkpoint in ${out} is at step ${lastSaved})` : ''}\n`);
      process.exit(SIGNAL_EXIT[sig] ?? 130);
    }
    stopSignal = sig;
    stop.abort();
    say(`interrupted (${sig}): finishing step ${lastStep + 1}, then saving it to ${out} (Ctrl-C again to quit without saving)`);
  };
  const onExternalAbort = (): void => onSignal('SIGINT');
  if (io.handleSigint) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  if (io.signal?.aborted) stop.abort();
  else io.signal?.addEventListener('abort', onExternalAbort, { once: true });

  const recorded = { ...args, preset } as Record<string, unknown>;
  const runName = path.basename(path.resolve(out));
  const what = preset ?? args.task;
  let result: Awaited<ReturnType<typeof train>>;
  try {
    result = await train(job.model, job.hooks, {
      steps: args.steps,
      lr: args.lr,
      warmup: args.warmup,
      weightDecay: args.weightDecay,
      accum: args.accum,
      evalEvery: args.evalEvery,
      saveEvery: args.saveEvery,
      outDir: out,
      resume,
      threads: used,
      ...(logEvery !== undefined ? { logEvery } : {}),
      ...(timeLimit !== undefined ? { timeLimitSeconds: timeLimit } : {}),
      args: { ...recorded, task: args.task, seq_len: args.seqLen, backend: backendName },
      title: `${runName === what ? runName : `${runName} (${what})`}: ${job.name}`,
      ...(job.tokenizerJson ? { extraFiles: { 'tokenizer.json': new TextEncoder().encode(job.tokenizerJson) } } : {}),
      ...job.trainOptions,
      signal: stop.signal,
      onStep: (s) => {
        lastStep = s.step;
        if (bar === null) progress(s.step);
        else bar.update(s.step, { loss: s.loss, tokens: s.tokens, extra: { lr: s.lr.toExponential(1), ...(s.accuracy !== undefined ? { acc: s.accuracy.toFixed(3) } : {}) } });
      },
      onEval: (step, m) => progress(step).log(`step ${step}: ${Object.entries(m).map(([k, x]) => `${k} ${Number.isInteger(x) ? x : x.toFixed(4)}`).join(', ')}`),
      onNotice: (message) => progress(lastStep).log(`note: ${message}`),
      onSave: (step, why) => {
        lastSaved = step;
        if (why === 'periodic') progress(step).log(`saved step ${step} to ${out}`);
      },
    });
  } finally {
    if (io.handleSigint) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    io.signal?.removeEventListener('abort', onExternalAbort);
  }
  (bar as ProgressBar | null)?.done();
  if (!result.completed) {
    io.stderr.write(`saved step ${result.step} to ${out} — continue with --resume\n`);
    if (result.stopped === 'interrupted') return SIGNAL_EXIT[stopSignal] ?? 130;
  } else io.stderr.write(`saved ${out} (model.safetensors, config.json, optimizer.safetensors, trainer_state.json, curves.svg)\n`);
  const h = result.history;
  const tail = h.loss.slice(-Math.min(20, h.loss.length));
  const summary: Record<string, unknown> = {
    out,
    steps: result.step,
    completed: result.completed,
    final_train_loss: tail.reduce((a, b) => a + b, 0) / tail.length,
    train_tokens_per_s: Math.round(result.tokensPerSecond),
    train_seconds: Math.round(h.train_seconds),
    ...result.finalMetrics,
  };
  if (gpu) {
    // GPU memory: the most held at once (buffers of the device) and the most in use by tensors (weights, moments,
    // gradients, activations) since the backend was created
    const m = (backend as WebGpuBackend).rt.stats();
    summary.gpu_peak_bytes = m.peakDeviceBytes;
    summary.gpu_peak_tensor_bytes = m.peakLiveBytes;
    (backend as WebGpuBackend).destroy();
  }
  if (args.task === 'text' && args.mixer === 's6' && sampleTokens > 0 && result.completed && !stop.signal.aborted) {
    const model = await loadModel(out);
    const prompt = str(v, 'prompt') ?? 'export function ';
    io.stdout.write(`\n--- sample (${sampleTokens} tokens, temperature 0.8, from ${out}) ---\n${prompt}`);
    for await (const ev of model.stream(prompt, { maxNewTokens: sampleTokens, doSample: true, temperature: 0.8, topK: 40, seed: args.seed, stopTokens: [] })) io.stdout.write(ev.text);
    io.stdout.write('\n---\n');
  }
  if (flag(v, 'json')) io.stdout.write(`${JSON.stringify(summary)}\n`);
  else io.stdout.write(`${Object.entries(summary).map(([k, x]) => `${k}: ${typeof x === 'number' && !Number.isInteger(x) ? x.toFixed(4) : x}`).join('\n')}\n`);
  return stop.signal.aborted ? (SIGNAL_EXIT[stopSignal] ?? 130) : 0;
}

export const EVAL_SPEC: CommandSpec = {
  name: 'eval',
  summary: 'Evaluate a training checkpoint on its task (text loss, task accuracy at several lengths, test accuracy).',
  synopsis: '--model DIR [--eval-lengths L,…] [--json]',
  description: 'The task and its settings come from the checkpoint\'s trainer_state.json; flags override them.',
  options: {
    model: { type: 'string', short: 'm', value: 'DIR', help: 'checkpoint folder written by mamba-ts train [required]' },
    data: { type: 'string', value: 'PATH', help: 'text: folder or file to evaluate on (default: the one trained on)' },
    'eval-lengths': { type: 'string', value: 'L,L,…', help: 'synthetic tasks: lengths to evaluate' },
    'eval-num-kv': { type: 'string', value: 'K,K,…', help: 'mqar: key-value pairs at each of --eval-lengths (default: the trained --num-kv)' },
    'eval-batches': { type: 'string', value: 'N', help: 'evaluation batches (text: 0 = the whole held-out tail)' },
    'test-limit': { type: 'string', value: 'N', help: 'fmnist: test images (0 = all 10000)' },
    backend: { type: 'string', value: 'NAME', help: 'language-model tasks: cpu (default) or webgpu (evaluate on the GPU: long lengths)' },
    json: { type: 'boolean', help: 'print one JSON object' },
  },
  examples: ['mamba-ts eval --model runs/induction-heads --eval-lengths 256,4096,65536', 'mamba-ts eval --model runs/ih-gpu --backend webgpu --eval-lengths 64,1024,16384,262144,1048576 --eval-batches 2', 'mamba-ts eval --model runs/fmnist-legs --test-limit 0 --json'],
};

export async function evalCommand(argv: string[], io: CliIO): Promise<number> {
  const v = parseCommand(EVAL_SPEC, argv);
  if (v === null) {
    io.stdout.write(commandUsage(EVAL_SPEC));
    return 0;
  }
  const dir = requireModel(v, 'eval');
  const over: Partial<JobArgs> = {};
  const lengths = str(v, 'eval-lengths');
  if (lengths !== undefined) over.evalLengths = lengths.split(',').map((s) => parseNumber('eval-lengths', s, { integer: true, min: 3, expect: 'comma-separated integers >= 3' }, 'eval'));
  // new lengths drop the trained run's pairs per length unless given again
  const kvs = parseKvList(v, 'eval');
  if (kvs !== undefined || lengths !== undefined) over.evalNumKv = kvs;
  const eb = str(v, 'eval-batches');
  if (eb !== undefined) over.evalBatches = parseNumber('eval-batches', eb, { integer: true, min: 0, expect: 'an integer >= 0' }, 'eval');
  const tl = str(v, 'test-limit');
  if (tl !== undefined) over.testLimit = parseNumber('test-limit', tl, { integer: true, min: 0, expect: 'an integer >= 0' }, 'eval');
  const data = str(v, 'data');
  if (data !== undefined) over.data = data;
  const backendName = parseChoice('backend', str(v, 'backend') ?? 'cpu', ['cpu', 'webgpu'] as const, 'eval');
  const backend = backendName === 'webgpu' ? await resolveBackendAsync({ backend: 'webgpu', weights: 'f32' }) : undefined;
  const t0 = performance.now();
  const metrics = await evaluateCheckpoint(dir, over, backend ? { backend } : {});
  const res = { model: dir, ...metrics, seconds: Math.round((performance.now() - t0) / 100) / 10 };
  if (flag(v, 'json')) io.stdout.write(`${JSON.stringify(res)}\n`);
  else io.stdout.write(`${Object.entries(res).map(([k, x]) => `${k}: ${typeof x === 'number' && !Number.isInteger(x) ? x.toFixed(4) : x}`).join('\n')}\n`);
  return 0;
}
