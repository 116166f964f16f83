/**
 * wasm-matrix's options that need no benchmark run: --help lists --kv-cache (passed on to each `mamba-ts bench` cell),
 * and a format it does not know is refused before any cell runs, naming the option and the formats it takes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const script = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'wasm-matrix.bench.js');

describe('wasm-matrix bench options', () => {
  it('--help lists --kv-cache and exits 0 without running cells', () => {
    const r = spawnSync(process.execPath, [script, '--help'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /--kv-cache/);
    assert.doesNotMatch(r.stderr, /\[wasm-matrix\]/);
  });
  it('an unknown --kv-cache format is a usage error naming the option and the formats', () => {
    const r = spawnSync(process.execPath, [script, '--kv-cache', 'q4', '--no-write'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--kv-cache must be one of f32, bf16, f16, q8 \(got 'q4'\)/);
    assert.doesNotMatch(r.stderr, /\[wasm-matrix\]/);
  });
});
