/**
 * `mamba-ts train` as a user meets it: an existing run in --out is not replaced silently, a bad --out
 * is refused before the first step, Ctrl-C saves the steps done so far, --data takes ordinary text,
 * untrainable --from architectures are named, and the small things (thread count, nothing to resume,
 * curves.svg) say what they do. Tiny models and a few steps each; the signal tests spawn the real CLI.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hfFixture, ROOT } from '../helpers.js';
import { CLI, runCli } from './cli-helpers.js';


interface Result {
  code: number | null;
  signal?: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `mamba-ts train …` in this process (checks that it left no global state behind) */
const train = (args: string[]): Promise<Result> => runCli(['train', ...args]);

let tmp: string;
let text: string;
let n = 0;
/** a fresh (not yet existing) folder name under the test's temp folder */
const fresh = (name: string): string => path.join(tmp, `${name}-${n++}`);
/** a tiny byte-level text run of `steps` steps into `out` */
const tiny = (out: string, steps = 3, data = text, saveEvery = 1000): string[] => [
  '--data', data, '--steps', String(steps), '--hidden', '16', '--layers', '1', '--state', '4', '--seq-len', '16', '--batch', '2',
  '--sample', '0', '--eval-every', '1000', '--save-every', String(saveEvery), '--out', out,
];
const state = (out: string): { step: number; saved_at: string } => JSON.parse(fs.readFileSync(path.join(out, 'trainer_state.json'), 'utf8')) as { step: number; saved_at: string };

/** a user error: exit code, one line `mamba-ts: error: …` naming `mentions`, no stack, nothing trained */
function assertRefused(r: Result, code: number, ...mentions: string[]): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trim().split('\n');
  assert.match(lines[0], /^mamba-ts: error: /);
  if (code === 1) assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  for (const m of mentions) assert.ok(lines[0].includes(m), `the error should mention ${JSON.stringify(m)}: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\bloss\b|tok\/s|\n\s+at /, 'refused before the first step, no stack trace');
  assert.equal(r.stdout, '');
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-train-cli-'));
  text = path.join(tmp, 'notes.txt');
  fs.writeFileSync(text, 'a state space model reads one token at a time and keeps a summary of the past.\n'.repeat(40));
});

after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('train: the checkpoint folder', () => {
  it('refuses to replace another run in --out unless --resume or --overwrite is given', async () => {
    const out = fresh('run');
    assert.equal((await train(tiny(out, 3))).code, 0);
    const before = state(out);
    assert.equal(before.step, 3);
    assertRefused(await train(tiny(out, 2)), 1, out, '--resume', '--overwrite');
    assert.deepEqual(state(out), before, 'the checkpoint is untouched');

    const r = await train([...tiny(out, 2), '--overwrite']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(state(out).step, 2, '--overwrite replaced it');
    assertRefused(await train([...tiny(out, 2), '--overwrite', '--resume']), 2, '--resume', '--overwrite');
  });

  it('refuses a non-empty folder that holds no checkpoint before the first step (even with --overwrite)', async () => {
    const out = fresh('notes');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'todo.md'), 'mine\n');
    assertRefused(await train(tiny(out)), 1, out);
    assertRefused(await train([...tiny(out), '--overwrite']), 1, out);
    assert.deepEqual(fs.readdirSync(out), ['todo.md']);
  });

  it('an --out that cannot be created is refused before the first step', async () => {
    const file = path.join(tmp, 'file.bin');
    fs.writeFileSync(file, 'x');
    assertRefused(await train(tiny(path.join(file, 'sub'))), 1, path.join(file, 'sub'), 'file.bin');
  });

  it('a flag given twice takes the later value (npm start -- --out X over the script\'s --out)', async () => {
    const first = fresh('script-out');
    const last = fresh('user-out');
    const r = await train([...tiny(first), '--out', last]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(state(last).step, 3);
    assert.ok(!fs.existsSync(first), 'the earlier --out is not used');
  });

  it('periodic saves say so, on their own line', async () => {
    const out = fresh('periodic');
    const r = await train(tiny(out, 4, text, 2));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^saved step 2 to ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
  });

  it('curves.svg is titled with the run\'s name, not an absolute path', async () => {
    const out = fresh('titled');
    assert.equal((await train(tiny(out))).code, 0);
    const svg = fs.readFileSync(path.join(out, 'curves.svg'), 'utf8');
    const title = /<text class="title"[^>]*>([^<]*)<\/text>/.exec(svg)?.[1] ?? '';
    assert.ok(title.includes(path.basename(out)), `title "${title}" names the run folder`);
    assert.ok(!title.includes(tmp) && !title.includes(os.tmpdir()), `title "${title}" has no absolute path`);
  });
});

describe('train: small things said out loud', () => {
  it('--backend webgpu refuses what trains on the CPU only (data-parallel --threads) and a bad --log-every, before any work', async () => {
    assertRefused(await train([...tiny(fresh('gpu')), '--backend', 'webgpu', '--threads', '2']), 2, '--threads', '--backend cpu');
    assertRefused(await train([...tiny(fresh('gpu')), '--backend', 'tpu']), 2, '--backend');
    assertRefused(await train([...tiny(fresh('gpu')), '--log-every', '0']), 2, '--log-every');
  });

  it('--threads above the number of cores warns on stderr', async () => {
    const r = await train([...tiny(fresh('threads')), '--threads', '999']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^warning: --threads 999 is more than the ${os.availableParallelism()} cores? of this machine`, 'm'));
    const quiet = await train([...tiny(fresh('threads')), '--threads', '1']);
    assert.doesNotMatch(quiet.stderr, /warning/);
  });

  it('--resume on a checkpoint already at --steps says there is nothing to train and exits 0', async () => {
    const out = fresh('done');
    assert.equal((await train(tiny(out, 3))).code, 0);
    const before = state(out);
    for (const steps of [2, 3]) {
      const r = await train([...tiny(out, steps), '--resume']);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stderr.includes(`checkpoint already at step 3 ≥ --steps ${steps}: nothing to train`), r.stderr);
      assert.doesNotMatch(r.stderr, /tok\/s/);
    }
    assert.deepEqual(state(out), before);
    const more = await train([...tiny(out, 5), '--resume']);
    assert.equal(more.code, 0, more.stderr);
    assert.equal(state(out).step, 5, 'a higher --steps continues');
  });

  it('--from a Jamba checkpoint (attention, Mamba and experts) fine-tunes it into a folder of the same architecture', async () => {
    const out = fresh('from');
    const r = await train([...tiny(out, 2), '--from', hfFixture('jamba-tiny')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).model_type, 'jamba');
    assert.equal(state(out).step, 2);
  });

  it('--from a model_type mamba-ts does not know names it and the trainable architectures', async () => {
    const dir = fresh('unknown-type');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'rwkv7', hidden_size: 8 }));
    const r = await train([...tiny(fresh('from-unknown')), '--from', dir]);
    assertRefused(r, 1, 'model_type "rwkv7"', 'mamba', 'mamba2', 'jamba');
  });
});

describe('train --data: ordinary text', () => {
  it('takes any UTF-8 text file of any size and extension, skips binaries, and says what it used in one line', async () => {
    const data = path.join(tmp, 'corpus');
    fs.mkdirSync(data);
    const line = 'static int add(int a, int b) { return a + b; } /* a line of C */\n';
    fs.writeFileSync(path.join(data, 'big.txt'), line.repeat(Math.ceil(2.8e6 / line.length)));
    fs.writeFileSync(path.join(data, 'add.c'), line.repeat(10));
    fs.writeFileSync(path.join(data, 'doc.rst'), 'Title\n=====\n\nSome *reStructuredText*.\n');
    fs.writeFileSync(path.join(data, 'image.bin'), new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 13]));
    const bytes = ['big.txt', 'add.c', 'doc.rst'].reduce((s, f) => s + fs.statSync(path.join(data, f)).size, 0);
    const r = await train(tiny(fresh('data'), 2, data));
    assert.equal(r.code, 0, r.stderr);
    const used = r.stderr.split('\n').filter((l) => l.startsWith('data: '));
    assert.equal(used.length, 1, r.stderr);
    assert.match(used[0], new RegExp(`^data: 3 files, ${bytes} bytes \\(.*\\) from .*corpus; skipped 1: 1 binary \\(image\\.bin\\)$`));
    assert.doesNotMatch(r.stderr, /tooLarge/);

    const only = await train([...tiny(fresh('data'), 2, data), '--data-ext', '.c,rst']);
    assert.equal(only.code, 0, only.stderr);
    assert.match(only.stderr, /^data: 2 files, .*; skipped 2: 2 not matching --data-ext \.c,\.rst \(big\.txt, image\.bin\)$/m);
    assertRefused(await train([...tiny(fresh('data'), 2, data), '--data-ext', '.md']), 1, '--data-ext', data);
  });
});

// ------------------------------------------------------------------------------------------------
// signals: a real process

interface Spawned {
  result: Promise<Result>;
  /** resolves once stderr matches `re` (with the match) */
  waitFor(re: RegExp): Promise<RegExpMatchArray>;
  kill(sig: NodeJS.Signals): void;
}

function spawnTrain(args: string[], timeoutMs = 120_000): Spawned {
  const child = spawn(process.execPath, [CLI, 'train', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: Array<{ re: RegExp; resolve: (m: RegExpMatchArray) => void }> = [];
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
    for (const w of [...waiters]) {
      const m = w.re.exec(stderr);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const result = new Promise<Result>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      for (const w of waiters) w.resolve(['(process ended)'] as unknown as RegExpMatchArray);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return {
    result,
    waitFor: (re) => new Promise((resolve) => {
      const m = re.exec(stderr);
      if (m) resolve(m);
      else waiters.push({ re, resolve });
    }),
    kill: (sig) => child.kill(sig),
  };
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('train: Ctrl-C', () => {
  /** a run far too long to finish: interrupted, it must save where it is */
  const long = (out: string, extra: string[] = []): string[] => [
    '--data', text, '--steps', '100000', '--hidden', '16', '--layers', '1', '--state', '4', '--seq-len', '32', '--batch', '2',
    '--sample', '0', '--eval-every', '100000', '--save-every', '100000', '--out', out, ...extra,
  ];

  for (const [sig, code, extra] of [['SIGINT', 130, ['--threads', '1']], ['SIGTERM', 143, ['--threads', '2', '--accum', '2']]] as const) {
    it(`${sig} (${extra.join(' ')}) finishes the step, saves it, says "continue with --resume" and exits ${code}`, async () => {
      const out = fresh('sig');
      const p = spawnTrain(long(out, [...extra]));
      await p.waitFor(/\]\s+\d+\/100000/); // the first progress line: training is under way
      p.kill(sig);
      const r = await p.result;
      assert.equal(r.signal, null, `exited by itself, not killed by ${r.signal}: ${r.stderr}`);
      assert.equal(r.code, code, r.stderr);
      const m = new RegExp(`^saved step (\\d+) to ${escape(out)} — continue with --resume$`, 'm').exec(r.stderr);
      assert.ok(m, `stderr says what was saved: ${r.stderr}`);
      const step = Number(m[1]);
      assert.ok(step >= 2 && step < 100000, `step ${step}`);
      assert.equal(state(out).step, step, 'the checkpoint holds the steps done before the signal');
    });
  }

  it('a second Ctrl-C quits at once, without waiting for the step or saving', async () => {
    const out = fresh('twice');
    const big = path.join(tmp, 'big-notes.txt');
    fs.writeFileSync(big, 'the selective scan decides, token by token, what to keep and what to forget.\n'.repeat(400));
    // data-parallel: the main thread waits for the workers during a step, so signals are seen mid-step;
    // long steps (~1 s) leave time for the second one
    const p = spawnTrain(['--data', big, '--steps', '100000', '--hidden', '32', '--layers', '1', '--seq-len', '2048', '--batch', '4', '--accum', '2', '--threads', '2',
      '--sample', '0', '--eval-every', '100000', '--save-every', '100000', '--out', out]);
    await p.waitFor(/\]\s+\d+\/100000/);
    p.kill('SIGINT');
    await p.waitFor(/Ctrl-C again/);
    const t0 = performance.now();
    p.kill('SIGINT');
    const r = await p.result;
    assert.equal(r.code, 130, r.stderr);
    assert.doesNotMatch(r.stderr, /saved step/, 'nothing saved');
    assert.match(r.stderr, /interrupted again/);
    assert.ok(!fs.existsSync(path.join(out, 'trainer_state.json')), 'no checkpoint written');
    assert.ok(performance.now() - t0 < 5000, 'quits at once');
  });
});
