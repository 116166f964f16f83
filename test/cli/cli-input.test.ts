/**
 * What the CLI makes of what a user types: escapes in --stop values (`--stop "\n\n"`), `help --help`,
 * binary prompt files, and the --json result's token lists (named and meant as in the API's result).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadModel, type Model } from '../../src/api/load.js';
import { GENERATE_SPEC, parseGenerateArgs } from '../../src/cli/generate.js';
import { hfFixture } from '../helpers.js';
import { runCli as cli, spawnCli, writeSmallTokenizer, type Result } from './cli-helpers.js';

const TINY = hfFixture('mamba-tiny');

function assertCliError(r: Result, code: number, ...mentions: string[]): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  assert.match(r.stderr, /^mamba-ts: error: /);
  assert.equal(r.stderr.trim().split('\n').length, code === 2 ? 2 : 1, `a one-line message: ${r.stderr}`);
  for (const m of mentions) assert.ok(r.stderr.includes(m), `stderr should mention ${JSON.stringify(m)}: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(r.stdout, '', 'nothing on stdout');
}

let tmp: string;
let smallTokenizer: string;
let model: Model;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-cli-input-'));
  smallTokenizer = writeSmallTokenizer(tmp); // the tiny model's 512-token vocabulary
  model = await loadModel(TINY, { tokenizer: smallTokenizer });
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('--stop escapes', () => {
  const stops = (...values: string[]): string[] => parseGenerateArgs(['-m', 'x', '--ids', '1', ...values.flatMap((v) => ['--stop', v])])!.stop;

  it('\\n, \\t, \\r, \\\\ and \\uXXXX / \\u{…} are interpreted', () => {
    assert.deepEqual(stops('\\n\\n'), ['\n\n']);
    assert.deepEqual(stops('a\\tb', 'x\\r\\ny'), ['a\tb', 'x\r\ny']);
    assert.deepEqual(stops('\\\\n'), ['\\n'], 'an escaped backslash is one backslash, and the n stays an n');
    assert.deepEqual(stops('caf\\u00e9', '\\u{1F600}!'), ['café', '😀!']);
    assert.deepEqual(stops('plain text'), ['plain text']);
  });

  for (const [value, mention] of [['\\q', '\\q'], ['end\\', 'backslash'], ['\\u12', '\\u12'], ['\\u{110000}', '\\u{110000}'], ['\\u{}', '\\u{}']] as const) {
    it(`an invalid escape (${value}) is a usage error`, () => {
      assert.throws(
        () => stops(value),
        (e: Error) => e.name === 'UsageError' && e.message.includes('--stop') && e.message.includes(mention) && e.message.includes('\\n'),
      );
    });
  }

  it('generate --help says so', () => {
    assert.match(GENERATE_SPEC.options.stop.help, /\\n/);
    assert.match(GENERATE_SPEC.options.stop.help, /\\uXXXX/);
  });

  it('a stop text given with escapes ends the generation where the plain text does', async () => {
    const free = (await model.generate('Hello world', { maxNewTokens: 20, stopTokens: [] })).text![0];
    assert.ok(free.length >= 4, `need some generated text: ${JSON.stringify(free)}`);
    const stop = free.slice(2, 4);
    const escaped = [...stop].map((c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`).join('');
    const want = await model.generate('Hello world', { maxNewTokens: 20, stopTokens: [], stopStrings: [stop] });
    const r = await cli(['generate', '-m', TINY, '--tokenizer', smallTokenizer, '-p', 'Hello world', '-n', '20', '--no-eos', '--stop', escaped]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.replace(/\n$/, ''), want.text![0]);
    assert.match(r.stderr, /finish reason: stop/);
  });
});

describe('mamba-ts help --help', () => {
  for (const args of [['help', '--help'], ['help', '-h'], ['help', 'help']]) {
    it(`'${args.join(' ')}' prints the overview and exits 0`, async () => {
      const r = await cli(args);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /Usage: mamba-ts <command>/);
      assert.equal(r.stderr, '');
    });
  }
  it("'help generate --help' prints generate's help", async () => {
    const r = await cli(['help', 'generate', '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Usage: mamba-ts generate /);
  });
});

describe('--prompt-file must be text', () => {
  const base = (): string[] => ['generate', '-m', TINY, '--tokenizer', smallTokenizer, '-n', '2'];

  it('a file with NUL bytes is refused, naming the file', async () => {
    const f = path.join(tmp, 'binary.bin');
    fs.writeFileSync(f, Buffer.from([0x48, 0x69, 0x00, 0x00, 0x01, 0x02, 0x48]));
    assertCliError(await cli([...base(), '--prompt-file', f]), 1, '--prompt-file', f, 'NUL');
  });

  it('a file that is not UTF-8 is refused, naming the file and the byte offset', async () => {
    const f = path.join(tmp, 'latin1.txt');
    fs.writeFileSync(f, Buffer.from('caf\xe9 au lait', 'latin1'));
    assertCliError(await cli([...base(), '--prompt-file', f]), 1, '--prompt-file', f, 'UTF-8', 'offset 3');
  });

  it('binary on stdin is refused too', async () => {
    assertCliError(await spawnCli([...base(), '--prompt-file', '-'], { input: '\u0000\u0001\u0002' }), 1, '--prompt-file', 'stdin', 'NUL'); // a real process's stdin
  });

  it('UTF-8 text (with a byte-order mark, which is dropped) is read', async () => {
    const f = path.join(tmp, 'bom.txt');
    fs.writeFileSync(f, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('Hello world café', 'utf8')]));
    const a = await cli([...base(), '--json', '--prompt-file', f]);
    assert.equal(a.code, 0, a.stderr);
    assert.deepEqual((JSON.parse(a.stdout) as { promptIds: number[] }).promptIds, model.encode('Hello world café'));
  });
});

describe('--json token lists mean what the API result\'s do', () => {
  it('tokens = prompt + generated (as GenerateResult.tokens, HF generate), generated = the new ids', async () => {
    const api = await model.generate([1, 2, 3], { maxNewTokens: 5, stopTokens: [] });
    assert.deepEqual(api.tokens[0], [1, 2, 3, ...api.generated[0]], 'the API: tokens include the prompt');
    const r = await cli(['generate', '-m', TINY, '--ids', '1,2,3', '-n', '5', '--no-eos', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout) as { tokens: number[]; generated: number[]; promptIds: number[] };
    assert.deepEqual(o.generated, api.generated[0]);
    assert.deepEqual(o.tokens, api.tokens[0]);
    assert.deepEqual(o.promptIds, [1, 2, 3]);
  });

  it('--json --help describes both', async () => {
    assert.match(GENERATE_SPEC.options.json.help, /generated/);
    assert.match(GENERATE_SPEC.options.json.help, /tokens/);
    assert.match(GENERATE_SPEC.options.json.help, /prompt/);
  });
});
