/**
 * bench/llamacpp-npm-lib.ts: the llama-bench arguments the node-llama-cpp stand-in takes, the tests they stand for,
 * its JSON rows, where an installed node-llama-cpp's entry file is, and the benches' --llama-bench / --llama-npm
 * choice. No llama.cpp runs here.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchRow, benchTests, llamaRunner, median, nodeLlamaCppEntry, parseLlamaBenchArgs, rowTokS, testName } from '../../bench/llamacpp-npm-lib.js';
import { llamaBenchArgs, parseLlamaBench } from '../../bench/cpu-context.js';

describe('llamacpp-npm: llama-bench stand-in helpers', () => {
  it('parses the arguments the benches pass; llama-bench defaults otherwise', () => {
    const o = parseLlamaBenchArgs(['-m', 'a.gguf', '-p', '512', '-n', '128', '-t', '2', '-r', '3', '-o', 'json', '--npm', '/tmp/llnpm']);
    assert.deepEqual(o, { model: 'a.gguf', prompts: [512], gens: [128], depths: [0], threads: [2], reps: 3, output: 'json', flashAttn: 'auto', api: 'raw', npmDir: '/tmp/llnpm' });
    assert.equal(parseLlamaBenchArgs(['-m', 'x', '--api', 'sequence']).api, 'sequence');
    const d = parseLlamaBenchArgs(['-m', 'b.gguf'], 4);
    assert.deepEqual([d.prompts, d.gens, d.depths, d.threads, d.reps, d.output], [[512], [128], [0], [4], 5, 'md']);
    assert.deepEqual(parseLlamaBenchArgs(['-m', 'x', '-t', '1,2', '-d', '0,512', '-fa', '0']).threads, [1, 2]);
    assert.equal(parseLlamaBenchArgs(['-m', 'x', '-fa', '0']).flashAttn, 'off');
    // wasm-context's own command line goes through unchanged
    const ctx = parseLlamaBenchArgs(llamaBenchArgs('/m/llama-130m-f32.gguf', 8192, 16, 2, ['-fa', '1']));
    assert.deepEqual([ctx.prompts, ctx.gens, ctx.depths, ctx.reps, ctx.flashAttn], [[0], [16], [8192], 1, 'on']);
  });

  it('names what is wrong with an argument', () => {
    assert.throws(() => parseLlamaBenchArgs(['-p', '512']), /-m FILE .* is required/);
    assert.throws(() => parseLlamaBenchArgs(['-m', 'x', '-ctk', 'q8_0']), /unsupported argument "-ctk"/);
    assert.throws(() => parseLlamaBenchArgs(['-m', 'x', '-t', '0']), /-t "0" is not an integer >= 1/);
    assert.throws(() => parseLlamaBenchArgs(['-m', 'x', '-p', '5x']), /-p "5x" is not an integer >= 0/);
    assert.throws(() => parseLlamaBenchArgs(['-m', 'x', '-o', 'csv']), /-o "csv": expected json or md/);
    assert.throws(() => parseLlamaBenchArgs(['-m', 'x', '-fa', 'maybe']), /-fa "maybe"/);
    assert.throws(() => parseLlamaBenchArgs(['-m', 'x', '-r']), /-r needs a value/);
    assert.throws(() => parseLlamaBenchArgs(['-m', 'x', '--api', 'fast']), /--api "fast": expected raw or sequence/);
  });

  it("the tests: llama-bench's pp for each -p > 0, tg for each -n > 0, at each depth and thread count", () => {
    const t = benchTests(parseLlamaBenchArgs(['-m', 'x', '-p', '0,512', '-n', '128', '-d', '0,1024', '-t', '1,2']));
    assert.equal(t.length, 8);
    assert.deepEqual(t.slice(0, 4), [
      { n_prompt: 512, n_gen: 0, n_depth: 0, n_threads: 1 }, { n_prompt: 0, n_gen: 128, n_depth: 0, n_threads: 1 },
      { n_prompt: 512, n_gen: 0, n_depth: 1024, n_threads: 1 }, { n_prompt: 0, n_gen: 128, n_depth: 1024, n_threads: 1 },
    ]);
    assert.deepEqual(benchTests(parseLlamaBenchArgs(['-m', 'x', '-p', '512', '-n', '0'])), [{ n_prompt: 512, n_gen: 0, n_depth: 0, n_threads: 2 }]);
    assert.equal(testName(t[3]), 'tg128 @ d1024');
    assert.equal(testName(t[0]), 'pp512');
  });

  it("rows: llama-bench's JSON (avg_ts the mean) plus the median and CPU ms per token; parsed by the context bench", () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 2, 3]), 2.5);
    // 128 tokens in 1, 2 and 4 s: 128, 64, 32 tok/s
    const r = benchRow({ n_prompt: 0, n_gen: 128, n_depth: 512, n_threads: 2 }, [1e9, 2e9, 4e9], { model: 'm.gguf', build: 'b', cpu: 'c' }, [1.28e9, 2.56e9, 1.28e9]);
    assert.deepEqual(r.samples_ts, [128, 64, 32]);
    assert.ok(Math.abs((r.avg_ts as number) - 224 / 3) < 1e-9);
    assert.equal(r.median_ts, 64);
    assert.equal(r.cpu_ms_per_token, 10);
    assert.equal(rowTokS(r as { avg_ts: number; median_ts: number }), 64);
    assert.equal(rowTokS({ avg_ts: 5 }), 5);
    const parsed = parseLlamaBench(JSON.stringify([r]), 512, 128);
    assert.deepEqual([parsed.tok_s, parsed.type_k, parsed.flash_attn, parsed.build_commit], [224 / 3, 'f16', 'auto', 'b']);
    assert.throws(() => benchRow({ n_prompt: 1, n_gen: 0, n_depth: 0, n_threads: 1 }, [], { model: '', build: '', cpu: '' }), /no timed repetitions/);
    assert.throws(() => benchRow({ n_prompt: 1, n_gen: 0, n_depth: 0, n_threads: 1 }, [1], { model: '', build: '', cpu: '' }, [1, 2]), /2 CPU times for 1 repetitions/);
  });

  it("finds node-llama-cpp's entry under the install folder, or says how to install it", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'llnpm-test-'));
    try {
      assert.throws(() => nodeLlamaCppEntry(dir, 'npm install node-llama-cpp'), /no node-llama-cpp package there .*install it outside the repository: npm install node-llama-cpp/);
      const pkg = path.join(dir, 'node_modules', 'node-llama-cpp');
      mkdirSync(pkg, { recursive: true });
      writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'node-llama-cpp', version: '3.22.1', exports: { '.': { import: './dist/index.js' } } }));
      assert.deepEqual(nodeLlamaCppEntry(dir, ''), { entry: path.join(pkg, 'dist/index.js'), version: '3.22.1', pkgDir: pkg });
      assert.equal(nodeLlamaCppEntry(pkg, '').pkgDir, pkg);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--llama-bench or --llama-npm, not both; the npm runner runs the stand-in with the folder', () => {
    assert.equal(llamaRunner(undefined, undefined, 's.js', 'node'), undefined);
    assert.deepEqual(llamaRunner('/b/llama-bench', undefined, 's.js', 'node'), { file: '/b/llama-bench', prefix: [], label: '`llama-bench`', npm: false });
    const n = llamaRunner(undefined, '/tmp/llnpm', '/r/dist/bench/llamacpp-npm.js', '/usr/bin/node')!;
    assert.deepEqual([n.file, n.prefix, n.npm], ['/usr/bin/node', ['/r/dist/bench/llamacpp-npm.js', '--npm', '/tmp/llnpm'], true]);
    assert.throws(() => llamaRunner('/b/llama-bench', '/tmp/llnpm', 's.js', 'node'), /one or the other/);
  });
});
