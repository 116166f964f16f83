/** `mamba-ts serve` on the command line: --help, option mistakes, and a real run (in process, stopped by a signal). */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { run } from '../../src/cli/main.js';
import { SERVE_SPEC } from '../../src/cli/serve.js';
import { runCli } from '../cli/cli-helpers.js';
import { chatModelDir, postJson, tmpDir } from './helpers.js';

let tmp: string;
before(() => {
  tmp = tmpDir('serve-cli');
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('mamba-ts serve (command line)', () => {
  it('--help lists every option', async () => {
    const r = await runCli(['serve', '--help']);
    assert.equal(r.code, 0);
    for (const o of ['model', 'backend', 'dtype', 'host', 'port', 'api-key', 'max-batch', 'cache-mb', 'checkpoint-every', 'cache-dir', ...Object.keys(SERVE_SPEC.options)]) {
      assert.match(r.stdout, new RegExp(`--${o}\\b`), `--${o}`);
    }
    const overview = await runCli(['--help']);
    assert.match(overview.stdout, /^ {2}serve +Serve a model/m);
  });

  it('option mistakes are usage errors (exit 2) before anything is loaded', async () => {
    for (const [args, re] of [
      [['serve'], /missing required option --model/],
      [['serve', '--model', 'x', '--port', '70000'], /--port: expected an integer in \[0, 65535\]/],
      [['serve', '--model', 'x', '--max-batch', '0'], /--max-batch/],
      [['serve', '--model', 'x', '--backend', 'tpu'], /--backend: expected one of cpu, wasm, webgpu/],
      [['serve', '--model', 'x', '--dtype', 'q8'], /--dtype q8 needs --backend wasm or webgpu \(the cpu backend stores f32\)/],
      [['serve', '--model', 'x', '--backend', 'webgpu', '--dtype', 'q4'], /--dtype q4 needs --backend wasm \(the webgpu backend stores f32, bf16, q8\)/],
      [['serve', '--model', 'x', '--api-key', ''], /--api-key/],
    ] as Array<[string[], RegExp]>) {
      const r = await runCli(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
    }
    const missing = await runCli(['serve', '--model', `${tmp}/nothing-here`, '--port', '0']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nothing-here/);
  });

  it('serves until its signal is aborted', async () => {
    const dir = chatModelDir('mamba-tiny', tmp);
    const abort = new AbortController();
    let stderr = '';
    let resolveUrl: (u: string) => void = () => {};
    const url = new Promise<string>((r) => (resolveUrl = r));
    const done = run(['serve', '--model', dir, '--port', '0', '--backend', 'wasm', '--threads', '1', '--api-key', 'k'], {
      stdout: { write: () => true },
      stderr: {
        write: (s: string) => {
          stderr += s;
          const m = /at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(stderr);
          if (m) resolveUrl(m[1]);
          return true;
        },
      },
      signal: abort.signal,
    });
    const base = await Promise.race([url, done.then((code) => Promise.reject(new Error(`serve exited with ${code}: ${stderr}`)))]);
    const r = await postJson(`${base}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 }, { Authorization: 'Bearer k' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.match(stderr, /POST \/v1\/chat\/completions 200/);
    abort.abort();
    assert.equal(await done, 0);
    await assert.rejects(fetch(`${base}/health`));
  });
});
