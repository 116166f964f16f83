/**
 * Issue 16's experiments as commands: the mqar-*, copy-* and lm-* presets compare the architectures at equal
 * parameter count (without the embedding), `mamba-ts eval` reports MQAR/copy accuracy at several lengths, and the
 * LM sanity corpus path: a gzip text (the Jargon File ships as dictd's .dict.dz) read as its text, evaluated on the
 * whole held-out tail with --eval-batches 0 (val_ppl, val_bits_per_byte).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { run as cli } from '../../src/cli/main.js';
import { DataError, loadTextCorpus } from '../../src/train/data.js';
import { buildJob, DEFAULT_ARGS, type JobArgs, PRESETS } from '../../src/train/jobs.js';
import { embeddingParameters } from '../../src/train/job-model.js';
import { countParameters, type TrainableLM } from '../../src/train/lm.js';
import { JARGON_FILE } from '../../src/train/presets.js';
import { TrainError } from '../../src/train/errors.js';

const TMP_PREFIX = `mamba-ts-task-presets-${process.pid}-`;
function tmp(t: TestContext, name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${name}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
const io = (lines: string[]) => ({ stdout: { write: (s: string) => (lines.push(s), true) }, stderr: { write: (s: string) => (lines.push(s), true) }, handleSigint: false });
const lastJson = (lines: string[]) => JSON.parse(lines.join('').trim().split('\n').pop()!);

/** some English-like text of our own (no corpus is committed) */
function text(words: number, seed = 1): string {
  const vocab = ['the', 'state', 'space', 'model', 'reads', 'a', 'token', 'and', 'keeps', 'its', 'memory', 'of', 'what', 'came', 'before', 'attention', 'looks', 'back', 'at', 'every', 'word'];
  let s = seed;
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out.push(vocab[s % vocab.length] + (i % 12 === 11 ? '.\n' : ''));
  }
  return out.join(' ');
}

test('the mqar-*, copy-* and lm-* presets: mamba, mamba2, llama and hybrid have equal parameters without the embedding (within 2%)', (t) => {
  const data = path.join(tmp(t, 'presets'), 'corpus.txt');
  fs.writeFileSync(data, text(3000));
  for (const family of ['mqar', 'copy', 'lm']) {
    const counts: Record<string, number> = {};
    for (const arch of ['mamba', 'mamba2', 'llama', 'hybrid']) {
      const p = PRESETS[`${family}-${arch}`];
      assert.ok(p, `${family}-${arch}`);
      assert.equal(p.args.arch, arch);
      const job = buildJob({ ...DEFAULT_ARGS, ...p.args, ...(family === 'lm' ? { data } : {}) });
      const m = job.model as TrainableLM;
      counts[arch] = countParameters(m) - embeddingParameters(m);
      assert.ok(embeddingParameters(m) > 0);
    }
    const v = Object.values(counts);
    const spread = (Math.max(...v) - Math.min(...v)) / Math.min(...v);
    t.diagnostic(`${family}: ${JSON.stringify(counts)}`);
    assert.ok(spread <= 0.02, `${family}: ${JSON.stringify(counts)} differ by ${(100 * spread).toFixed(1)}%`);
  }
  assert.equal(PRESETS['lm-mamba'].args.data, JARGON_FILE);
  // the corpus missing: the error says which package has it
  if (!fs.existsSync(JARGON_FILE)) {
    assert.throws(() => buildJob({ ...DEFAULT_ARGS, ...PRESETS['lm-llama'].args }), (e: unknown) => e instanceof TrainError && /apt-get install dict-jargon/.test(e.message));
  }
});

for (const [task, flags, lengths, seqKey] of [
  ['mqar', ['--vocab', '64', '--seq-len', '32', '--num-kv', '4'], ['16', '64'], 'seq_acc'],
  ['copy', ['--vocab', '8', '--copy-len', '6', '--copy-min-len', '2'], ['3', '12'], 'string_acc'],
] as const) {
  test(`mamba-ts eval on ${task}: token and whole-sequence accuracy at every --eval-lengths (llama, after training)`, async (t) => {
    const out = tmp(t, task);
    const lines: string[] = [];
    const code = await cli(['train', '--task', task, ...flags, '--arch', 'llama', '--hidden', '32', '--layers', '1', '--head-dim', '16', '--steps', '2', '--batch', '4', '--eval-batches', '1', '--threads', '1', '--eval-lengths', lengths.join(','), '--out', out, '--json'], io(lines) as never);
    assert.equal(code, 0, lines.join(''));
    const trained = lastJson(lines);
    for (const L of lengths) {
      assert.ok(trained[`acc_L${L}`] >= 0 && trained[`acc_L${L}`] <= 1, `train summary acc_L${L}: ${JSON.stringify(trained)}`);
      assert.ok(trained[`${seqKey}_L${L}`] >= 0 && trained[`${seqKey}_L${L}`] <= trained[`acc_L${L}`], `${seqKey}_L${L} <= acc_L${L}`);
    }
    const ev: string[] = [];
    assert.equal(await cli(['eval', '--model', out, '--json'], io(ev) as never), 0, ev.join(''));
    const m = lastJson(ev);
    for (const L of lengths) assert.equal(m[`acc_L${L}`], trained[`acc_L${L}`], `eval = the run's last evaluation at ${L}`);
    const ev2: string[] = [];
    assert.equal(await cli(['eval', '--model', out, '--eval-lengths', lengths[0], '--json'], io(ev2) as never), 0, ev2.join(''));
    const m2 = lastJson(ev2);
    assert.equal(m2[`acc_L${lengths[0]}`], trained[`acc_L${lengths[0]}`]);
    assert.ok(!(`acc_L${lengths[1]}` in m2), '--eval-lengths replaces the trained ones');
  });
}

test('mqar --eval-num-kv: a number of pairs per evaluated length (acc_L{T}_kv{K}); mamba-ts eval takes new ones or drops them with new lengths', async (t) => {
  const out = tmp(t, 'kv');
  const lines: string[] = [];
  const flags = ['--task', 'mqar', '--vocab', '64', '--seq-len', '32', '--num-kv', '4', '--arch', 'llama', '--hidden', '32', '--layers', '1', '--head-dim', '16', '--steps', '1', '--batch', '2', '--eval-batches', '1', '--threads', '1', '--out', out, '--json'];
  assert.equal(await cli(['train', ...flags, '--eval-lengths', '16,32,64', '--eval-num-kv', '2,8,4'], io(lines) as never), 0, lines.join(''));
  const m = lastJson(lines);
  for (const k of ['acc_L16_kv2', 'seq_acc_L16_kv2', 'acc_L32_kv8', 'acc_L64_kv4']) assert.ok(m[k] >= 0 && m[k] <= 1, `${k} in ${JSON.stringify(m)}`);
  assert.ok(!('acc_L32' in m) && !('acc_L16' in m));
  const ev: string[] = [];
  assert.equal(await cli(['eval', '--model', out, '--json'], io(ev) as never), 0, ev.join(''));
  assert.equal(lastJson(ev).acc_L32_kv8, m.acc_L32_kv8, 'the saved pairs per length');
  const ev2: string[] = [];
  assert.equal(await cli(['eval', '--model', out, '--eval-lengths', '64', '--json'], io(ev2) as never), 0, ev2.join(''));
  assert.equal(lastJson(ev2).acc_L64, m.acc_L64_kv4, 'new lengths, the trained --num-kv (4)');
  const bad: string[] = [];
  assert.equal(await cli(['train', ...flags, '--overwrite', '--eval-lengths', '16,32', '--eval-num-kv', '2'], io(bad) as never), 1, bad.join(''));
  assert.match(bad.join(''), /--eval-num-kv gives 1 numbers for the 2 of --eval-lengths/);
  assert.throws(() => buildJob({ ...DEFAULT_ARGS, task: 'mqar', vocab: 64, seqLen: 32, numKv: 4, evalLengths: [16], evalNumKv: [5] }), (e: unknown) => e instanceof TrainError && /--eval-lengths 16 --eval-num-kv 5: 4 × --eval-num-kv \(20\) must be <= the sequence length 16/.test(e.message));
  assert.throws(() => buildJob({ ...DEFAULT_ARGS, task: 'copy', evalLengths: [16], evalNumKv: [5] }), (e: unknown) => e instanceof TrainError && /--eval-num-kv is for --task mqar, not copy/.test(e.message));
});

test('mqar settings that break the generator are refused before training, naming the flag', () => {
  const a: JobArgs = { ...DEFAULT_ARGS, task: 'mqar', vocab: 64, seqLen: 32, numKv: 4 };
  assert.throws(() => buildJob({ ...a, numKv: 9 }), (e: unknown) => e instanceof TrainError && /--task mqar: 4 × --num-kv \(36\) must be <= the sequence length 32/.test(e.message));
  assert.throws(() => buildJob({ ...a, evalLengths: [12] }), (e: unknown) => e instanceof TrainError && /--eval-lengths 12: 4 × --num-kv \(16\) must be <= the sequence length 12/.test(e.message));
  assert.throws(() => buildJob({ ...a, evalBatches: 0 }), (e: unknown) => e instanceof TrainError && /--eval-batches must be >= 1 for --task mqar/.test(e.message));
});

test('a gzip text file (dictd .dict.dz, .gz) is read as the text inside; a broken or over-budget one is a DataError naming the file', (t) => {
  const dir = tmp(t, 'gz');
  const body = text(500);
  const gz = path.join(dir, 'corpus.dict.dz');
  fs.writeFileSync(gz, zlib.gzipSync(body));
  const c = loadTextCorpus(gz);
  assert.equal(Buffer.from(Uint8Array.from(c.files[0].tokens)).toString('utf8'), body);
  assert.equal(c.totalBytes, Buffer.byteLength(body));
  const bad = path.join(dir, 'broken.gz');
  fs.writeFileSync(bad, Buffer.concat([zlib.gzipSync(body).subarray(0, 20), Buffer.from('not deflate at all')]));
  assert.throws(() => loadTextCorpus(bad), (e: unknown) => e instanceof DataError && e.message.includes(bad) && /does not decompress/.test(e.message));
  assert.throws(() => loadTextCorpus(gz, { maxTotalBytes: 100 }), (e: unknown) => e instanceof DataError && e.message.includes(gz) && /--data-limit/.test(e.message));
});

test('text on a gzip corpus with --arch mamba2: --eval-batches 0 scores the whole held-out tail (val_ppl = e^val_loss)', async (t) => {
  const dir = tmp(t, 'lm');
  const gz = path.join(dir, 'corpus.txt.gz');
  fs.writeFileSync(gz, zlib.gzipSync(text(1200)));
  const base: JobArgs = { ...DEFAULT_ARGS, task: 'text', data: gz, arch: 'mamba2', hidden: 32, layers: 1, state: 8, headDim: 16, seqLen: 32, batch: 4 };
  const all = await buildJob({ ...base, evalBatches: 0 }).hooks.evaluate!(1);
  assert.ok(Math.abs(all.val_ppl - Math.exp(all.val_loss)) < 1e-9 * all.val_ppl);
  assert.ok(Math.abs(all.val_bits_per_byte - all.val_loss / Math.LN2) < 1e-12);
  // the tail holds ⌊10% of the bytes⌋: as many batches as cover it give the same numbers; one batch does not
  const job = buildJob({ ...base, evalBatches: 1 });
  const valBytes = Number(/val (\d+)\)/.exec(job.describe)![1]);
  const batches = Math.ceil(Math.floor((valBytes - 1) / 32) / 4);
  assert.ok(batches > 1, `${valBytes} held-out bytes`);
  const same = await buildJob({ ...base, evalBatches: batches }).hooks.evaluate!(1);
  assert.equal(same.val_loss, all.val_loss);
  const one = await job.hooks.evaluate!(1);
  assert.notEqual(one.val_loss, all.val_loss);
  // and it trains through the CLI
  const lines: string[] = [];
  const out = path.join(dir, 'run');
  const code = await cli(['train', '--data', gz, '--arch', 'mamba2', '--hidden', '32', '--layers', '1', '--state', '8', '--head-dim', '16', '--seq-len', '32', '--batch', '4', '--steps', '2', '--eval-batches', '0', '--sample', '0', '--threads', '1', '--out', out, '--json'], io(lines) as never);
  assert.equal(code, 0, lines.join(''));
  assert.ok(lastJson(lines).val_ppl > 1);
});

test('no temporary folder is left behind', () => {
  assert.deepEqual(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(TMP_PREFIX)), []);
});
