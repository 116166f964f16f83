/**
 * Issue 17's llama.cpp check: does llama.cpp load what `mamba-ts export --gguf` writes, and are its greedy tokens ours?
 *
 * For each HF fixture in test/fixtures/hf (with a tokenizer: test/fixtures/tokenizer-bpe cut to the model's vocabulary)
 * it exports f32 and q8_0 GGUF files (as `mamba-ts export --gguf` does), plus any `<arch>-130m-{f32,q8_0}.gguf` in
 * --bench-dir (scripts/make-bench-models.ts); then per file:
 *   llama.cpp: llama-completion, greedy (temperature 0, top-k 1), end-of-text ignored, -t 2, N new tokens; its prompt
 *              and generated ids read back from the session file it saves (--prompt-cache-all);
 *   mamba-ts:  loadModel(file.gguf) on --backend (default cpu), greedy `generate` of N tokens from llama.cpp's prompt ids.
 * and prints: loaded by llama.cpp (its error if not), whether both tokenize the prompt alike, whether the greedy
 * tokens are equal, and at the first mismatch our logits' gap between our token and llama.cpp's (a near tie there
 * is rounding, a large gap a real difference). llama.cpp itself is built and kept outside the repository.
 *
 *   node dist/scripts/llamacpp-check.js --llama-completion PATH [--bench-dir DIR] [--out DIR] [--tokens N]
 *        [--models a,b] [--types f32,q8_0] [--backend cpu|wasm] [--norm-groups full|group] [--prompt TEXT] [--json FILE]
 *
 * Mamba-2 with n_groups > 1: llama.cpp normalizes the gated norm per group (as the official kernels), HF's torch path
 * over the full width (our default); --norm-groups group compares with llama.cpp's semantics.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../src/api/load.js';
import { commandUsage, parseChoice, parseCommand, parseNumber, str, UsageError, type CommandSpec } from '../src/cli/args.js';
import { EXPORT_TYPES, encodeModelGguf, readExportInput, writeGgufAtomic, type ExportType } from '../src/io/gguf.js';
import { completionArgs, firstMismatch, sessionTokens, truncateBpeTokenizer } from './llamacpp-lib.js';

const SPEC: CommandSpec = {
  name: 'llamacpp-check',
  summary: 'Run llama.cpp on GGUF files mamba-ts exports and compare its greedy tokens with ours (issue 17).',
  synopsis: '--llama-completion PATH [--bench-dir DIR] [--out DIR] [--tokens N] [--models LIST] [--types LIST] [--backend cpu|wasm]',
  options: {
    'llama-completion': { type: 'string', value: 'PATH', help: 'the llama-completion binary of a llama.cpp build [required]' },
    'bench-dir': { type: 'string', value: 'DIR', help: 'also check <arch>-130m-<type>.gguf found here (default /tmp/bench-gguf)' },
    out: { type: 'string', short: 'o', value: 'DIR', help: 'where the exported files go (default /tmp/llamacpp-check)' },
    tokens: { type: 'string', short: 'n', value: 'N', help: 'new tokens per run (default 24)' },
    models: { type: 'string', value: 'LIST', help: 'fixtures to check (default: all of test/fixtures/hf except the bf16/sharded copies)' },
    types: { type: 'string', value: 'LIST', help: 'GGUF types to export and check (default f32,q8_0)' },
    backend: { type: 'string', value: 'NAME', help: 'our backend: cpu (default) or wasm' },
    threads: { type: 'string', short: 't', value: 'N', help: 'llama.cpp threads (default 2)' },
    prompt: { type: 'string', short: 'p', value: 'TEXT', help: 'the prompt (default "The state space model reads one token at a time")' },
    'norm-groups': { type: 'string', value: 'full|group', help: 'our Mamba-2 gated norm: full width (HF, the default) or per group (the official kernels, llama.cpp)' },
    json: { type: 'string', value: 'FILE', help: 'also write the results as JSON' },
  },
  examples: ['node dist/scripts/llamacpp-check.js --llama-completion /work/llamacpp/build/bin/llama-completion'],
};

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURES = path.join(root, 'test', 'fixtures', 'hf');
const TOKENIZER = path.join(root, 'test', 'fixtures', 'tokenizer-bpe', 'tokenizer.json');
/** copies of mamba-tiny in another storage: the same model to llama.cpp */
const SKIP = new Set(['mamba-tiny-bf16', 'mamba-tiny-sharded']);

interface Result {
  file: string;
  model: string;
  type: string;
  loaded: boolean;
  error?: string;
  llamaPrompt?: number[];
  oursPrompt?: number[];
  promptEqual?: boolean;
  llamaTokens?: number[];
  oursTokens?: number[];
  equal?: boolean;
  /** first differing position among the generated tokens, -1 when equal */
  mismatchAt?: number;
  /** our logit of our token minus our logit of llama.cpp's token at the first mismatch */
  gap?: number;
  seconds?: number;
}

/** the fixture as a model folder with a tokenizer of its vocabulary, exported to each type */
function exportFixture(name: string, out: string, types: ExportType[]): string[] {
  const src = path.join(FIXTURES, name);
  const dir = path.join(out, 'hf', name);
  fs.mkdirSync(dir, { recursive: true });
  const config = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
  for (const f of fs.readdirSync(src)) if (f === 'config.json' || f.endsWith('.safetensors') && !f.startsWith('reference') || f.endsWith('.index.json')) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  const vocab = config.vocab_size as number;
  const tok = truncateBpeTokenizer(JSON.parse(fs.readFileSync(TOKENIZER, 'utf8')), vocab, TOKENIZER);
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tok));
  return types.map((type) => {
    const file = path.join(out, `${name}-${type}.gguf`);
    writeGgufAtomic(file, encodeModelGguf(readExportInput(dir), type));
    return file;
  });
}

/** llama.cpp's error lines from its log, for a file it did not load */
function llamaError(log: string): string {
  const lines = log.split('\n').filter((l) => /error|failed|exception|unknown|wrong|missing|invalid|not supported|abort/i.test(l));
  return (lines.length > 0 ? lines.slice(0, 6) : log.trim().split('\n').slice(-6)).map((l) => l.trim()).join(' | ');
}

async function check(bin: string, file: string, model: string, type: string, o: { n: number; threads: number; prompt: string; backend: 'cpu' | 'wasm'; normGroups?: 'full' | 'group' }): Promise<Result> {
  const res: Result = { file, model, type, loaded: false };
  const session = `${file}.session`;
  fs.rmSync(session, { force: true });
  const t0 = performance.now();
  const run = spawnSync(bin, completionArgs(file, o.prompt, o.n, o.threads, session), { encoding: 'utf8', maxBuffer: 1 << 26, timeout: 600_000 });
  res.seconds = (performance.now() - t0) / 1000;
  const log = `${run.stdout ?? ''}\n${run.stderr ?? ''}`;
  if (run.error || run.status !== 0 || !fs.existsSync(session)) {
    res.error = run.error ? run.error.message : `exit ${run.status ?? run.signal}: ${llamaError(log)}`;
    return res;
  }
  res.loaded = true;
  const ids = sessionTokens(fs.readFileSync(session), session);
  fs.rmSync(session, { force: true });
  const nPrompt = ids.length - o.n;
  res.llamaPrompt = ids.slice(0, nPrompt);
  res.llamaTokens = ids.slice(nPrompt);

  try {
    const m = await loadModel(file, { backend: o.backend, ...(o.normGroups ? { normGroups: o.normGroups } : {}) });
    res.oursPrompt = m.tokenizer ? m.encode(o.prompt) : [];
    res.promptEqual = firstMismatch(res.oursPrompt, res.llamaPrompt) === -1;
    const g = await m.generate(res.llamaPrompt, { maxNewTokens: o.n, temperature: 0, stopTokens: [] });
    res.oursTokens = g.generated[0];
    res.mismatchAt = firstMismatch(res.oursTokens, res.llamaTokens);
    res.equal = res.mismatchAt === -1;
    if (!res.equal && res.mismatchAt < Math.min(res.oursTokens.length, res.llamaTokens.length)) {
      const k = res.mismatchAt;
      const out = await m.forward([[...res.llamaPrompt, ...res.oursTokens.slice(0, k)]]);
      const V = m.vocabSize;
      const logits = out.logits.data as Float32Array;
      const row = logits.subarray(logits.length - V);
      res.gap = row[res.oursTokens[k]] - row[res.llamaTokens[k]];
    }
  } catch (e) {
    res.equal = false;
    res.error = `mamba-ts: ${(e as Error).message}`;
  }
  return res;
}

async function main(argv: string[]): Promise<number> {
  const values = parseCommand(SPEC, argv);
  if (values === null) {
    process.stdout.write(commandUsage(SPEC).replace('mamba-ts llamacpp-check', 'node dist/scripts/llamacpp-check.js'));
    return 0;
  }
  const bin = str(values, 'llama-completion');
  if (!bin) throw new UsageError('missing required option --llama-completion PATH (llama.cpp\'s llama-completion binary)', SPEC.name);
  if (!fs.existsSync(bin)) throw new UsageError(`--llama-completion: ${bin} does not exist`, SPEC.name);
  const out = path.resolve(str(values, 'out') ?? '/tmp/llamacpp-check');
  const benchDir = str(values, 'bench-dir') ?? '/tmp/bench-gguf';
  const n = parseNumber('tokens', str(values, 'tokens') ?? '24', { integer: true, min: 1, expect: 'an integer >= 1' }, SPEC.name);
  const threads = parseNumber('threads', str(values, 'threads') ?? '2', { integer: true, min: 1, expect: 'an integer >= 1' }, SPEC.name);
  const types = (str(values, 'types') ?? 'f32,q8_0').split(',').map((t) => parseChoice('types', t, Object.keys(EXPORT_TYPES) as ExportType[], SPEC.name));
  const backend = parseChoice('backend', str(values, 'backend') ?? 'cpu', ['cpu', 'wasm'] as const, SPEC.name);
  const prompt = str(values, 'prompt') ?? 'The state space model reads one token at a time';
  const ng = str(values, 'norm-groups');
  const normGroups = ng === undefined ? undefined : parseChoice('norm-groups', ng, ['full', 'group'] as const, SPEC.name);
  const all = fs.readdirSync(FIXTURES).filter((d) => !SKIP.has(d)).sort();
  const models = str(values, 'models')?.split(',') ?? all;
  for (const mdl of models) if (!all.includes(mdl)) throw new UsageError(`--models: no fixture "${mdl}" (have: ${all.join(', ')})`, SPEC.name);
  fs.mkdirSync(out, { recursive: true });

  const jobs: { file: string; model: string; type: string }[] = [];
  for (const mdl of models) {
    process.stderr.write(`[llamacpp-check] exporting ${mdl} (${types.join(', ')})\n`);
    exportFixture(mdl, out, types).forEach((file, i) => jobs.push({ file, model: mdl, type: types[i] }));
  }
  for (const arch of ['mamba', 'mamba2', 'llama']) {
    for (const type of types) {
      const file = path.join(benchDir, `${arch}-130m-${type}.gguf`);
      if (fs.existsSync(file)) jobs.push({ file, model: `${arch}-130m`, type });
    }
  }
  const results: Result[] = [];
  for (const j of jobs) {
    process.stderr.write(`[llamacpp-check] ${path.basename(j.file)} …\n`);
    let r: Result;
    try {
      r = await check(bin, j.file, j.model, j.type, { n, threads, prompt, backend, normGroups });
    } catch (e) {
      r = { ...j, loaded: false, error: `mamba-ts: ${(e as Error).message}` };
    }
    results.push(r);
    const verdict = !r.loaded ? `NOT LOADED: ${r.error}`
      : `loaded; prompt ids ${r.promptEqual ? 'equal' : `DIFFER (llama.cpp ${JSON.stringify(r.llamaPrompt)}, ours ${JSON.stringify(r.oursPrompt)})`}; ` +
        (r.error ? `but ${r.error}` : `greedy tokens ${r.equal ? `equal (${n}/${n})` : `DIFFER from position ${r.mismatchAt}${r.gap !== undefined ? ` (our logit gap there ${r.gap.toExponential(2)})` : ''}`}`);
    process.stdout.write(`${path.basename(j.file)}: ${verdict}\n`);
    if (r.loaded && !r.equal && r.oursTokens) process.stdout.write(`  llama.cpp ${JSON.stringify(r.llamaTokens)}\n  mamba-ts  ${JSON.stringify(r.oursTokens)}\n`);
  }
  process.stdout.write(`\n| file | loaded by llama.cpp | prompt ids equal | greedy tokens equal (${n} new) |\n|---|---|---|---|\n`);
  for (const r of results) {
    process.stdout.write(`| ${path.basename(r.file)} | ${r.loaded ? 'yes' : `no: ${r.error}`} | ${r.loaded ? (r.promptEqual ? 'yes' : 'no') : '—'} | ${r.loaded ? (r.equal ? 'yes' : r.error ? `error: ${r.error}` : `no, from token ${r.mismatchAt}${r.gap !== undefined ? ` (gap ${r.gap.toExponential(1)})` : ''}`) : '—'} |\n`);
  }
  const json = str(values, 'json');
  if (json) fs.writeFileSync(json, JSON.stringify({ prompt, tokens: n, backend, results }, null, 2) + '\n');
  return results.every((r) => r.loaded && r.equal) ? 0 : 2;
}

main(process.argv.slice(2)).then((rc) => process.exit(rc), (e: unknown) => {
  process.stderr.write(`llamacpp-check: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
