/** `--kv-cache f32|bf16|f16|q8` on generate (cpu, wasm, webgpu), bench and serve (in process): what it changes, what it reports, what it refuses. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors-format.js';
import { hfFixture } from '../helpers.js';
import { runCli as run } from './cli-helpers.js';
import { webgpuOrReason } from '../backend/webgpu-context.js';

const LLAMA = hfFixture('llama-tiny');

it('generate --kv-cache bf16/f16/q8: the same greedy tokens as f32 on llama-tiny (cpu, wasm); --save-state writes the caches as BF16', async () => {
  const base = ['generate', '-m', LLAMA, '--ids', '3,17,250,9,44', '-n', '12', '--no-eos', '--json'];
  const want = JSON.parse((await run(base)).stdout).generated as number[];
  assert.equal(want.length, 12);
  for (const backend of [['--backend', 'cpu'], ['--backend', 'wasm', '--threads', '2']]) {
    for (const kv of ['bf16', 'f16', 'q8']) {
      const r = await run([...base, ...backend, '--kv-cache', kv]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout).generated, want, `${backend.join(' ')} --kv-cache ${kv}`);
    }
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvcli-'));
  try {
    const file = path.join(dir, 'chat.state');
    const r = await run([...base, '--kv-cache', 'bf16', '--save-state', file]);
    assert.equal(r.code, 0, r.stderr);
    const f = SafetensorsFile.fromBytes(new Uint8Array(fs.readFileSync(file)), file);
    assert.equal(f.entry('layers.0.k').dtype, 'BF16');
    assert.equal(f.entry('layers.0.v').dtype, 'BF16');
    // continued by a run with an f32 cache (the file's values, in f32 caches)
    const c = await run(['generate', '-m', LLAMA, '--ids', '5', '-n', '3', '--no-eos', '--json', '--load-state', file]);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(JSON.parse(c.stdout).generated.length, 3);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

it('generate --backend webgpu --kv-cache bf16/f16: the CPU backend\'s greedy tokens with the same cache format', async (t) => {
  const g = await webgpuOrReason();
  if (typeof g === 'string') return t.skip(g);
  g.destroy(); // (the command makes its own)
  const base = ['generate', '-m', LLAMA, '--ids', '3,17,250,9,44', '-n', '12', '--no-eos', '--json'];
  for (const kv of ['bf16', 'f16']) {
    const want = JSON.parse((await run([...base, '--kv-cache', kv])).stdout).generated as number[];
    const r = await run([...base, '--backend', 'webgpu', '--kv-cache', kv]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).generated, want, `webgpu --kv-cache ${kv}`);
  }
});

it('bench --kv-cache bf16 / q8 runs with it and reports it (JSON kv_cache)', async () => {
  for (const kv of ['bf16', 'q8']) {
    const r = await run(['bench', '--arch', 'hybrid', '--backend', 'wasm', '--threads', '2', '--kv-cache', kv, '--prompt', '8', '--gen', '2', '--reps', '1', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(j.kv_cache, kv);
    assert.ok(j.decode_tok_s > 0);
  }
});

it('--kv-cache: a bad value is a usage error naming the options', async () => {
  for (const cmd of [['generate', '-m', LLAMA, '--ids', '1'], ['bench'], ['serve', '-m', LLAMA]]) {
    const a = await run([...cmd, '--kv-cache', 'q4']);
    assert.equal(a.code, 2, a.stderr);
    assert.match(a.stderr, /--kv-cache: expected one of f32, bf16, f16, q8, got 'q4'/);
    const b = await run([...cmd, '--backend', 'webgpu', '--kv-cache', 'q8']);
    assert.equal(b.code, 2, b.stderr);
    assert.match(b.stderr, /--kv-cache q8 is not supported by the webgpu backend yet: use f32 or bf16 or f16/);
  }
  const h = await run(['generate', '--help']);
  assert.match(h.stdout, /--kv-cache TYPE +attention KV cache storage: f32 \(default, exact\), bf16 or f16/);
});
