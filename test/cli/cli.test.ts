import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadModel, type Model } from '../../src/api/load.js';
import { report, version } from '../../src/cli/main.js';
import { GENERATE_SPEC } from '../../src/cli/generate.js';
import { INFO_SPEC } from '../../src/cli/info.js';
import { FIXTURES, ROOT, hfFixture } from '../helpers.js';
import { runCli as cli, spawnCli, writeSmallTokenizer, type Result } from './cli-helpers.js';

const TINY = hfFixture('mamba-tiny');
const BPE = path.join(FIXTURES, 'tokenizer-bpe', 'tokenizer.json');


const STACK_RE = /\n\s+at .+\(?.*:\d+:\d+\)?/;

/** a usage or library error: non-zero exit, `mamba-ts: error:` naming `mentions`, no stack trace */
function assertCliError(r: Result, code: number, ...mentions: string[]): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  assert.match(r.stderr, /^mamba-ts: error: /m);
  for (const m of mentions) assert.ok(r.stderr.includes(m), `stderr should mention ${JSON.stringify(m)}: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, STACK_RE, 'no stack trace');
  assert.doesNotMatch(r.stderr, /internal error/);
  assert.equal(r.stdout, '', 'nothing on stdout');
}

const ids = (s: string): number[] => s.trim().split(/\s+/).map(Number);

let model: Model;
let tmp: string;
/** a 512-token tokenizer derived from the BPE fixture (the tiny model's vocabulary size) */
let smallTokenizer: string;

before(async () => {
  model = await loadModel(TINY);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-cli-'));
  smallTokenizer = writeSmallTokenizer(tmp);
});

after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

// The tests run the CLI in this process (`run(argv, io)`, cli-helpers.ts) except where a real process is the point:
// these, a SIGINT during generation and a prompt on stdin.
describe('the bin: a real process exits with the code run() returns', () => {
  it('--version: exit 0, the version on stdout', async () => {
    const r = await spawnCli(['--version']);
    assert.deepEqual([r.code, r.signal, r.stdout.trim(), r.stderr], [0, null, version(), '']);
  });
  it('a usage error: exit 2; a library error: exit 1; the message on stderr, nothing on stdout', async () => {
    assertCliError(await spawnCli(['generate', '--ids', '1,2,3']), 2, '--model');
    const dir = path.join(tmp, 'no-such-model');
    assertCliError(await spawnCli(['info', '--model', dir]), 1, dir);
  });
});

describe('mamba-ts help and version', () => {
  for (const args of [[], ['--help'], ['-h'], ['help']]) {
    it(`'${args.join(' ')}' prints the overview and exits 0`, async () => {
      const r = await cli(args);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /Usage: mamba-ts <command>/);
      assert.match(r.stdout, /^\s+generate\s/m);
      assert.match(r.stdout, /^\s+info\s/m);
      assert.equal(r.stderr, '');
    });
  }

  it('--version prints the package.json version', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await cli(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), pkg.version);
    assert.equal(version(), pkg.version);
  });

  const generateOptions = [
    'model', 'prompt', 'prompt-file', 'ids', 'max-tokens', 'temperature', 'top-k', 'top-p', 'min-p', 'repetition-penalty',
    'seed', 'sample', 'stop', 'no-eos', 'tokenizer', 'save-state', 'load-state', 'json', 'scan', 'help',
  ];
  for (const args of [['generate', '--help'], ['generate', '-h'], ['help', 'generate'], ['generate', '--bogus', '--help']]) {
    it(`'${args.join(' ')}' lists every generate option and an example`, async () => {
      const r = await cli(args);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^Usage: mamba-ts generate /);
      for (const o of [...generateOptions, ...Object.keys(GENERATE_SPEC.options)]) {
        assert.match(r.stdout, new RegExp(`--${o}\\b`), `--${o} in generate --help`);
      }
      assert.match(r.stdout, /Examples?:\n\s+mamba-ts generate /);
    });
  }

  for (const args of [['info', '--help'], ['info', '-h'], ['help', 'info']]) {
    it(`'${args.join(' ')}' lists every info option and an example`, async () => {
      const r = await cli(args);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^Usage: mamba-ts info /);
      for (const o of ['model', 'json', 'help', ...Object.keys(INFO_SPEC.options)]) assert.match(r.stdout, new RegExp(`--${o}\\b`));
      assert.match(r.stdout, /Examples?:\n\s+mamba-ts info /);
    });
  }
});

describe('mamba-ts info', () => {
  it('prints the architecture as aligned key: value lines, and the files', async () => {
    const r = await cli(['info', '--model', TINY]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^hidden_size:\s+64$/m);
    assert.match(r.stdout, /^num_layers:\s+3$/m);
    assert.match(r.stdout, /^vocab_size:\s+512$/m);
    assert.match(r.stdout, /^weights:\s+.*model\.safetensors \(/m);
    assert.match(r.stdout, /^tokenizer:\s+none$/m);
    // values start in the same column
    const cols = r.stdout.trim().split('\n').map((l) => l.search(/(?<=:\s+)\S/));
    assert.ok(cols.every((c) => c === cols[0]), `aligned: ${cols}`);
    assert.equal(r.stderr, '', 'no progress output when stderr is not a TTY');
  });

  it('--json prints one parseable object', async () => {
    const r = await cli(['info', '--model', TINY, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout) as Record<string, unknown> & { files: { weights: { path: string; bytes: number }[]; tokenizer: unknown } };
    assert.equal(o.hidden_size, 64);
    assert.equal(o.num_layers, 3);
    assert.deepEqual(o.eos_token_ids, [0]);
    assert.equal(o.files.weights.length, 1);
    assert.ok(o.files.weights[0].path.endsWith('model.safetensors'));
    assert.equal(o.files.weights[0].bytes, fs.statSync(path.join(TINY, 'model.safetensors')).size);
    assert.equal(o.files.tokenizer, null);
  });

  it('lists every shard of a sharded checkpoint', async () => {
    const r = await cli(['info', '--model', hfFixture('mamba-tiny-sharded')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^weights:\s+3 files/m);
    assert.match(r.stdout, /model-00003-of-00003\.safetensors/);
  });
});

describe('mamba-ts generate', () => {
  it('--ids streams the generated ids, equal to the library API', async () => {
    const want = (await model.generate([1, 2, 3], { maxNewTokens: 5, stopTokens: [] })).generated[0];
    const r = await cli(['generate', '--model', TINY, '--ids', '1,2,3', '--max-tokens', '5', '--no-eos']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, want.join(' ') + '\n');
    assert.deepEqual(ids(r.stdout), want);
    assert.match(r.stderr, /^5 tokens in [\d.]+ s \([\d.]+ tokens\/s decode; prefill 3 tokens in [\d.]+ ms\); finish reason: length$/m);
  });

  it('without --no-eos uses the model eos ids like the API does', async () => {
    const want = (await model.generate([1, 2, 3], { maxNewTokens: 5 })).generated[0];
    const r = await cli(['generate', '-m', TINY, '--ids', '1 2 3', '-n', '5']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(ids(r.stdout), want);
  });

  it('--json prints one object with 5 tokens', async () => {
    const want = (await model.generate([1, 2, 3], { maxNewTokens: 5, stopTokens: [] })).generated[0];
    const r = await cli(['generate', '--model', TINY, '--ids', '1,2,3', '--max-tokens', '5', '--no-eos', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').length, 1);
    const o = JSON.parse(r.stdout) as { generated: number[]; tokens: number[]; text: unknown; finishReason: string; stats: { promptTokens: number; generatedTokens: number; prefillMs: number } };
    assert.equal(o.generated.length, 5);
    assert.deepEqual(o.generated, want);
    assert.deepEqual(o.tokens, [1, 2, 3, ...want], 'tokens = prompt + generated, as in the API result');
    assert.equal(o.text, null);
    assert.equal(o.finishReason, 'length');
    assert.equal(o.stats.promptTokens, 3);
    assert.equal(o.stats.generatedTokens, 5);
    assert.deepEqual((o as unknown as { promptIds: number[] }).promptIds, [1, 2, 3]);
    assert.equal(typeof o.stats.prefillMs, 'number');
  });

  it('--scan sequential gives the same greedy tokens', async () => {
    const want = (await model.generate([1, 2, 3], { maxNewTokens: 5, stopTokens: [] })).generated[0];
    const r = await cli(['generate', '--model', TINY, '--ids', '1,2,3', '--max-tokens', '5', '--no-eos', '--scan', 'sequential']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(ids(r.stdout), want);
  });

  it('sampling options imply sampling and are reproducible with --seed', async () => {
    const want = (await model.generate([1, 2, 3], { maxNewTokens: 8, stopTokens: [], doSample: true, temperature: 1.3, topK: 50, seed: 7 })).generated[0];
    const args = ['generate', '--model', TINY, '--ids', '1,2,3', '-n', '8', '--no-eos', '--temperature', '1.3', '--top-k', '50', '--seed', '7'];
    const [a, b] = [await cli(args), await cli(args)];
    assert.equal(a.code, 0, a.stderr);
    assert.deepEqual(ids(a.stdout), want);
    assert.equal(a.stdout, b.stdout);
    assert.match(a.stderr, /seed 7/);
  });

  it('--save-state then --load-state continues like one generation', async () => {
    const P = [1, 2, 3];
    const Q = [4, 5];
    // library side: continuing from the saved state == generating over prompt + output + next prompt
    const r1 = await model.generate(P, { maxNewTokens: 5, stopTokens: [] });
    const r2 = await model.generate(Q, { state: r1.state, maxNewTokens: 6, stopTokens: [] });
    const whole = await model.generate([...P, ...r1.generated[0], ...Q], { maxNewTokens: 6, stopTokens: [] });
    assert.deepEqual(r2.generated[0], whole.generated[0]);

    const file = path.join(tmp, 'chat.state');
    const a = await cli(['generate', '-m', TINY, '--ids', P.join(','), '-n', '5', '--no-eos', '--save-state', file]);
    assert.equal(a.code, 0, a.stderr);
    assert.deepEqual(ids(a.stdout), r1.generated[0]);
    assert.match(a.stderr, /state saved to .*chat\.state .*8 tokens read/);
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('chat.state')), ['chat.state'], 'no temporary file left');
    assert.deepEqual(model.importState(fs.readFileSync(file), file).seqLen, [8]);

    const b = await cli(['generate', '-m', TINY, '--ids', Q.join(','), '-n', '6', '--no-eos', '--load-state', file]);
    assert.equal(b.code, 0, b.stderr);
    assert.deepEqual(ids(b.stdout), r2.generated[0]);

    // a state file of another model is refused with a clear message
    const c = await cli(['generate', '-m', TINY, '--ids', '1', '--load-state', smallTokenizer]);
    assertCliError(c, 1, smallTokenizer);
  });

  it('--json with --save-state reports the saved file', async () => {
    const file = path.join(tmp, 'j.state');
    const r = await cli(['generate', '-m', TINY, '--ids', '9', '-n', '2', '--no-eos', '--json', '--save-state', file]);
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout) as { savedState: { file: string; tokens: number } };
    assert.equal(o.savedState.file, file);
    assert.equal(o.savedState.tokens, 3);
    assert.ok(fs.statSync(file).size > 0);
  });

  describe('with a tokenizer', () => {
    it('--prompt streams the text, equal to the library API', async () => {
      const m = await loadModel(TINY, { tokenizer: smallTokenizer });
      const want = await m.generate('The state space model', { maxNewTokens: 12, stopTokens: [] });
      const r = await cli(['generate', '-m', TINY, '--tokenizer', smallTokenizer, '--prompt', 'The state space model', '-n', '12', '--no-eos']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, want.text![0] + (want.text![0].endsWith('\n') ? '' : '\n'));
      const j = JSON.parse((await cli(['generate', '-m', TINY, '--tokenizer', smallTokenizer, '-p', 'The state space model', '-n', '12', '--no-eos', '--json'])).stdout) as { text: string; generated: number[] };
      assert.equal(j.text, want.text![0]);
      assert.deepEqual(j.generated, want.generated[0]);
    });

    it('--prompt-file (and stdin via -) read the prompt', async () => {
      const f = path.join(tmp, 'prompt.txt');
      fs.writeFileSync(f, 'Hello world');
      const base = ['generate', '-m', TINY, '--tokenizer', smallTokenizer, '-n', '6', '--no-eos'];
      const a = await cli([...base, '--prompt', 'Hello world']);
      const b = await cli([...base, '--prompt-file', f]);
      const c = await spawnCli([...base, '--prompt-file', '-'], { input: 'Hello world' }); // stdin: a real process
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.stdout, a.stdout);
      assert.equal(c.stdout, a.stdout);
    });

    it('--stop ends generation and the stop text is not printed', async () => {
      const m = await loadModel(TINY, { tokenizer: smallTokenizer });
      const free = (await m.generate('Hello world', { maxNewTokens: 20, stopTokens: [] })).text![0];
      assert.ok(free.length >= 4, `need some generated text: ${JSON.stringify(free)}`);
      const stop = free.slice(2, 4);
      const want = await m.generate('Hello world', { maxNewTokens: 20, stopTokens: [], stopStrings: [stop] });
      const r = await cli(['generate', '-m', TINY, '--tokenizer', smallTokenizer, '-p', 'Hello world', '-n', '20', '--no-eos', '--stop', stop, '--stop', 'never-there']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.replace(/\n$/, ''), want.text![0]);
      assert.ok(!r.stdout.includes(stop), `stop text printed: ${JSON.stringify(r.stdout)}`);
      assert.match(r.stderr, /finish reason: stop/);
    });
  });

  it('SIGINT stops generation, prints the summary and exits 130', async () => {
    let sent = false;
    const r = await spawnCli(['generate', '-m', TINY, '--ids', '1', '-n', '1000000', '--no-eos'], {
      onStdout: (_c, child) => {
        if (!sent) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /^\d+ tokens in .*finish reason: abort/m);
    assert.ok(ids(r.stdout).length >= 1);
  });

  it('an io.signal aborted before the start ends an in-process run with 130, generating nothing', async () => {
    const ac = new AbortController();
    ac.abort();
    const r = await cli(['generate', '-m', TINY, '--ids', '1,2', '-n', '50', '--no-eos'], { signal: ac.signal });
    assert.equal(r.code, 130);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /interrupted before generation started/);
  });
});

describe('progress output', () => {
  it('draws and clears a progress line only when stderr is a TTY', async () => {
    const tty = await cli(['generate', '-m', TINY, '--ids', '1,2,3', '-n', '3', '--no-eos'], { stderrTTY: true });
    assert.equal(tty.code, 0, tty.stderr);
    assert.match(tty.stderr, /loading .*mamba-tiny/);
    assert.ok(tty.stderr.includes('\r\x1b[K'), 'the line is cleared');
    assert.doesNotMatch(tty.stdout, /\x1b|\r/);

    const piped = await cli(['generate', '-m', TINY, '--ids', '1,2,3', '-n', '3', '--no-eos'], { stderrTTY: false });
    assert.equal(piped.stdout, tty.stdout);
    assert.doesNotMatch(piped.stderr, /\x1b|\r|loading/);
  });
});

describe('errors', () => {
  const G = ['generate', '--ids', '1,2,3'];
  it('missing --model', async () => assertCliError(await cli(G), 2, '--model'));
  it('missing --model (info)', async () => assertCliError(await cli(['info']), 2, '--model'));
  it('missing prompt', async () => assertCliError(await cli(['generate', '-m', TINY]), 2, '--prompt', '--ids'));
  it('two prompts', async () => assertCliError(await cli([...G, '-m', TINY, '--prompt', 'x']), 2, '--prompt', '--ids'));
  it('nonexistent model folder names the path', async () => {
    const dir = path.join(tmp, 'no-such-model');
    assertCliError(await cli([...G, '--model', dir]), 1, dir);
    assertCliError(await cli(['info', '--model', dir]), 1, dir);
  });
  it('--max-tokens abc', async () => assertCliError(await cli([...G, '-m', TINY, '--max-tokens', 'abc']), 2, '--max-tokens', 'abc'));
  it('--max-tokens 0 / -3 / 1.5', async () => {
    for (const v of ['0', '-3', '1.5']) assertCliError(await cli([...G, '-m', TINY, '--max-tokens', v]), 2, '--max-tokens', v);
  });
  it('--top-p 2', async () => assertCliError(await cli([...G, '-m', TINY, '--top-p', '2']), 2, '--top-p', '2'));
  it('other invalid numbers', async () => {
    for (const [o, v] of [['temperature', '-1'], ['top-k', '2.5'], ['min-p', '1.5'], ['repetition-penalty', '0'], ['seed', 'x'], ['temperature', 'NaN'], ['top-p', '']]) {
      assertCliError(await cli([...G, '-m', TINY, `--${o}`, v]), 2, `--${o}`);
    }
  });
  it('--scan with an unknown algorithm', async () => assertCliError(await cli([...G, '-m', TINY, '--scan', 'fast']), 2, '--scan', 'fast'));
  it('token id out of range', async () => assertCliError(await cli(['generate', '-m', TINY, '--ids', '9999']), 2, '--ids', '9999', '512'));
  it("empty --ids ''", async () => assertCliError(await cli(['generate', '-m', TINY, '--ids', '']), 2, '--ids'));
  it('malformed --ids', async () => assertCliError(await cli(['generate', '-m', TINY, '--ids', '1,x,3']), 2, '--ids', "'x'"));
  it('unknown option', async () => assertCliError(await cli([...G, '-m', TINY, '--frobnicate']), 2, '--frobnicate'));
  it('unknown command', async () => assertCliError(await cli(['frobnicate']), 2, 'frobnicate'));
  it('unexpected positional argument', async () => assertCliError(await cli([...G, '-m', TINY, 'hello']), 2, 'hello'));
  it('a tokenizer larger than the model vocabulary is refused', async () => {
    const r = await cli([...G, '-m', TINY, '--tokenizer', BPE]);
    assertCliError(r, 1, '2048', '512', 'tokenizer');
  });
  it('--prompt without a tokenizer', async () => assertCliError(await cli(['generate', '-m', TINY, '--prompt', 'hi']), 1, '--prompt', 'tokenizer'));
  it('--stop without a tokenizer', async () => assertCliError(await cli([...G, '-m', TINY, '--stop', 'x']), 1, '--stop', 'tokenizer'));
  it('unreadable --prompt-file and --load-state name the file', async () => {
    const f = path.join(tmp, 'missing.txt');
    assertCliError(await cli(['generate', '-m', TINY, '--prompt-file', f]), 1, '--prompt-file', f);
    assertCliError(await cli([...G, '-m', TINY, '--load-state', f]), 1, '--load-state', f);
  });
  it('--save-state into a missing folder fails before generating', async () => {
    const f = path.join(tmp, 'no-dir', 'x.state');
    assertCliError(await cli([...G, '-m', TINY, '--save-state', f]), 1, '--save-state', f);
  });
  it('help for an unknown command', async () => assertCliError(await cli(['help', 'frobnicate']), 2, 'frobnicate'));
  it('an unexpected internal error is reported with its stack, exit 1', () => {
    let err = '';
    const code = report(new TypeError('boom'), { stdout: { write: () => true }, stderr: { write: (s: string) => (err += s) } });
    assert.equal(code, 1);
    assert.match(err, /^mamba-ts: internal error: boom\n/);
    assert.match(err, STACK_RE);
  });
});
