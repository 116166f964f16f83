/** `mamba-ts bench` (in process): a real (short) run on the wasm backend, JSON on the last line; usage errors. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli as run } from './cli-helpers.js';
import { webgpuOrReason } from '../backend/webgpu-context.js';
import { loadModel } from '../../src/index.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { generate } from '../../src/generate/generate.js';
import { hfFixture } from '../helpers.js';
import { benchDecoder } from '../../src/cli/bench.js';

it('bench --json --profile: mamba-130m with q8 weights on 2 wasm threads reports speeds, memory, the bandwidth ceiling and where the time goes', async () => {
  const r = await run(['bench', '--arch', 'mamba', '--backend', 'wasm', '--dtype', 'q8', '--threads', '2', '--prompt', '8', '--gen', '2', '--reps', '1', '--json', '--profile']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(j.preset, 'mamba-130m');
  assert.equal(j.dtype, 'q8');
  assert.equal(j.threads, 2);
  assert.ok(j.parameters > 128e6 && j.parameters < 130e6, `parameters ${j.parameters}`);
  for (const k of ['prefill_tok_s', 'decode_tok_s', 'peak_rss_mb', 'bandwidth_gb_s', 'decode_ceiling_tok_s']) {
    assert.ok(Number.isFinite(j[k]) && j[k] > 0, `${k} = ${j[k]}`);
  }
  // q8: 1.125 bytes per weight, except x_proj/dt_proj (24 × 196,608 weights kept f32) and the f32 vectors (A, D, conv, norms: ~0.87M)
  const extra = j.weight_mb * 2 ** 20 - j.parameters * 1.125;
  const xdt = 24 * (80 * 1536 + 1536 * 48) * (4 - 1.125);
  assert.ok(extra >= xdt && extra < xdt + 3e6, `stored bytes exceed q8 by ${extra}`);
  // the profile: a decode step is one call (every layer's norm, in_proj, the fused step, out_proj and residual add, the
  // final norm, the LM head and its argmax: decodeStack), prefill in_proj as a product of its own; per-op shares add
  // up to the wall time
  const ops = j.profile.decode.map((row: { op: string }) => row.op);
  assert.ok(ops.includes('decodeStack') && !ops.includes('mamba1Layer') && !ops.includes('linear 3072×768') && !ops.includes('mamba1Step') && !ops.includes('rmsNorm'), ops.join(', '));
  assert.ok(j.profile.prefill.some((row: { op: string }) => row.op === 'linear 3072×768'), 'prefill: in_proj');
  // greedy decode picks through the fused LM head + argmax (no logits copied out; here inside decodeStack); --logits
  // keeps the old path
  assert.equal(j.decode_step, 'advanceArgmax');
  assert.ok(!ops.some((o: string) => o.startsWith('linearArgmax')) && !ops.includes('linear 50280×768'), ops.join(', '));
  assert.ok(j.decode_cpu_ms_per_token > 0, `decode CPU ms per token ${j.decode_cpu_ms_per_token}`);
  assert.ok(j.prefill_cpu_ms_per_token > 0, `prefill CPU ms per token ${j.prefill_cpu_ms_per_token}`);
  for (const phase of ['prefill', 'decode']) {
    const sum = j.profile[phase].reduce((a: number, row: { share: number }) => a + row.share, 0);
    assert.ok(Math.abs(sum - 1) < 0.02, `${phase} shares sum to ${sum}`);
  }
});

it('bench --logits: decode reads each step\'s logits (the LM head as a plain linear)', async () => {
  const r = await run(['bench', '--arch', 'mamba', '--backend', 'wasm', '--dtype', 'q8', '--threads', '2', '--prompt', '4', '--gen', '2', '--reps', '1', '--json', '--profile', '--logits']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(j.decode_step, 'advance');
  const ops = j.profile.decode.map((row: { op: string }) => row.op);
  assert.ok(ops.includes('linear 50280×768') && !ops.some((o: string) => o.startsWith('linearArgmax')), ops.join(', '));
});

it('bench rejects bad options with a usage error', async () => {
  const a = await run(['bench', '--arch', 'rwkv']);
  assert.equal(a.code, 2);
  assert.match(a.stderr, /--arch: expected one of mamba, mamba2, hybrid, llama/);
  const b = await run(['bench', '--backend', 'cpu', '--dtype', 'q8']);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /--dtype q8 needs --backend wasm or webgpu \(the cpu backend stores f32\)/);
  const d = await run(['bench', '--arch', 'mamba2', '--ssd', 'scan']);
  assert.equal(d.code, 2);
  assert.match(d.stderr, /--ssd: expected one of chunked, recurrent, quadratic/);
  const e = await run(['bench', '--arch', 'mamba', '--ssd', 'chunked']);
  assert.equal(e.code, 2);
  assert.match(e.stderr, /--ssd and --chunk need --arch mamba2 or hybrid/);
  for (const backend of ['cpu', 'webgpu']) {
    const c = await run(['bench', '--backend', backend, '--threads', '2']);
    assert.equal(c.code, 2, c.stderr);
    assert.match(c.stderr, /--threads needs --backend wasm/);
  }
});

it('bench --ssd: the Mamba-2 prefill SSD asked for is the one that runs (reported as prefill_ssd)', async () => {
  for (const ssd of ['recurrent', 'chunked']) {
    const r = await run(['bench', '--arch', 'mamba2', '--backend', 'wasm', '--threads', '2', '--prompt', '40', '--gen', '1', '--reps', '1', '--json', '--ssd', ssd, '--chunk', '16']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(j.prefill_ssd, ssd);
    assert.ok(j.prefill_tok_s > 0);
  }
});

it('bench\'s decode on webgpu (a fresh state, the greedy chain on the device) picks the tokens generate() picks', async (t) => {
  const be = await webgpuOrReason();
  if (typeof be === 'string') return t.skip(be);
  try {
    for (const name of ['mamba2-tiny', 'llama-tiny']) {
      const lm: CausalLM = (await loadModel(hfFixture(name), { backend: be })).lm;
      const ids = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8];
      const want: number[] = (await generate(lm, [ids], { maxNewTokens: 6, stopTokens: [] })).generated[0];
      for (const readLogits of [false, true]) {
        const d = benchDecoder(lm, readLogits);
        assert.equal(d.step, readLogits ? 'advance' : 'greedyChain', name);
        for (let r = 0; r < 2; r++) { // (the second: the buffers of the first state's recorded step reused)
          const s = lm.createState(1);
          const got = await d.decode(await lm.advance([ids], s), s, 6);
          s.dispose();
          assert.deepEqual(got, want, `${name} ${d.step} rep ${r + 1}`);
        }
      }
    }
  } finally {
    be.destroy();
  }
});
