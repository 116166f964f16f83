/**
 * Issue 11, the wall time above the GPU time: `trace` (MAMBA_TS_WEBGPU_TRACE=1) counts the WebGPU calls a runtime makes,
 * `leanHost` (the default) writes each upload once per submit cycle and reuses the buffers of recorded steps and
 * chains, and `rebindSteps` (opt-in) rebinds a fresh state's first step from a recorded one. Counts on SwiftShader are
 * what carries over to a GPU (the calls are the same); the results must not change.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/index.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { hfFixture } from '../helpers.js';
import { webgpuOrReason } from './webgpu-context.js';
import { WebGpuBackend } from '../../src/backend/webgpu/backend.js';
import { countsSince, formatCounts, type GpuCallCounts } from '../../src/backend/webgpu/trace.js';
import { nullGpuDevice } from '../../bench/null-gpu.js';

// submits every 3 dispatches: a prefill of the tiny models goes in many pieces, as a 2,048-token one does on a GPU
const be = await webgpuOrReason({ trace: true, submitEvery: 3 });
after(() => {
  if (typeof be !== 'string') be.destroy();
});

const IDS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4];

/** a CLI bench rep: a fresh state, the prefill (logits read), a greedy chain of `n` from its argmax, the state disposed */
async function rep(b: WebGpuBackend, lm: CausalLM, n: number): Promise<{ logits: Float32Array; tokens: number[]; prefill: GpuCallCounts; decode: GpuCallCounts }> {
  const tr = b.rt.trace!;
  const s = lm.createState(1);
  const c0 = { ...tr };
  const l = (await lm.advance([IDS], s)).data;
  const c1 = { ...tr };
  let first = 0;
  for (let i = 1; i < l.length; i++) if (l[i] > l[first]) first = i;
  const picks = await lm.greedyChain!([[first]], s, n);
  const c2 = { ...tr };
  s.dispose();
  return { logits: l, tokens: [first, ...picks!.map((p) => p[0])], prefill: countsSince(c0, c1), decode: countsSince(c1, c2) };
}

describe('webgpu: counting the calls (trace) and the lean host side (leanHost)', () => {
  it('trace counts the submits and dispatches the runtime made, the read-backs and the encoding time', async (t) => {
    if (typeof be === 'string') return t.skip(be);
    const lm: CausalLM = (await loadModel(hfFixture('mamba2-tiny'), { backend: be })).lm;
    const tr = be.rt.trace!;
    const c0 = { ...tr }, k0 = { ...be.rt.counters };
    const s = lm.createState(1);
    await lm.advance([IDS], s);
    await lm.greedyChain!([[1]], s, 4);
    s.dispose();
    const d = countsSince(c0, tr);
    assert.equal(d.submits, be.rt.counters.submits - k0.submits, formatCounts(d));
    assert.equal(d.dispatches, be.rt.counters.dispatches - k0.dispatches, formatCounts(d));
    assert.ok(d.submits > 2, `a prefill in pieces: ${formatCounts(d)}`);
    // the prefill's logits, the recorded first step's argmax, the chain's tokens
    assert.equal(d.maps, 3, formatCounts(d));
    assert.ok(d.encodeMs > 0 && d.writeBuffers > 0 && d.commandBuffers === d.submits, formatCounts(d));
    assert.match(formatCounts(d), /^submits \d+, cmdbufs \d+, passes \d+, dispatches \d+, .*mapAsync 3 \(.* ms waited\).*, encode JS \d+\.\d ms$/);
  });

  it('leanHost: the same logits and tokens as before, each upload written once, no buffers or bind groups made per rep', async (t) => {
    if (typeof be === 'string') return t.skip(be);
    for (const name of ['llama-tiny', 'mamba2-tiny']) {
      const lm: CausalLM = (await loadModel(hfFixture(name), { backend: be })).lm;
      const runs: Record<string, Awaited<ReturnType<typeof rep>>> = {};
      for (const lean of [false, true]) {
        be.rt.leanHost = lean;
        await rep(be, lm, 5); // (compiles; the lean side fills its shelf)
        runs[String(lean)] = await rep(be, lm, 5);
      }
      const [old, lean] = [runs.false, runs.true];
      t.diagnostic(`${name}: prefill before ${formatCounts(old.prefill)}; now ${formatCounts(lean.prefill)}; decode before ${formatCounts(old.decode)}; now ${formatCounts(lean.decode)}`);
      assert.deepEqual(lean.logits, old.logits, `${name}: prefill logits`);
      assert.deepEqual(lean.tokens, old.tokens, `${name}: greedy tokens`);
      // before: the graph's upload, parameter and staging buffers and the chain's tokens (and, with a KV cache, the
      // positions) made again for every state, and bind groups for the new upload buffer; now none
      assert.ok(old.decode.buffers >= 4, `${name} before: ${formatCounts(old.decode)}`);
      assert.equal(lean.decode.buffers, 0, `${name}: ${formatCounts(lean.decode)}`);
      assert.equal(lean.decode.bindGroups, 0, `${name}: ${formatCounts(lean.decode)}`);
      assert.equal(lean.prefill.buffers + lean.prefill.bindGroups + lean.prefill.pipelines, 0, `${name}: ${formatCounts(lean.prefill)}`);
      assert.equal(lean.decode.submits, old.decode.submits, name);
      // the prefill: the same submits; an early submit wrote every upload recorded so far again — now only the new ones,
      // and the rotary table once instead of for q and k of every layer
      assert.equal(lean.prefill.submits, old.prefill.submits, name);
      assert.ok(lean.prefill.writeBytes < old.prefill.writeBytes, `${name}: ${lean.prefill.writeBytes} vs ${old.prefill.writeBytes} bytes written`);
      // the kept buffers stay in the accounting: a rep leaves the device bytes as it found them, and trim() gives the
      // kept ones back with the pools' free dedicated buffers (the bytes it returns are the bytes the device holds less)
      const d0: number = be.rt.stats().deviceBytes;
      await rep(be, lm, 5);
      assert.equal(be.rt.stats().deviceBytes, d0, `${name}: device bytes after a rep`);
      const freed: number = be.rt.trim();
      assert.ok(freed > 0, `${name}: trim() gave back the kept buffers`);
      assert.equal(d0 - be.rt.stats().deviceBytes, freed, `${name}: trim's bytes`);
      const again = await rep(be, lm, 5); // (after a trim: made again, and the same tokens)
      assert.deepEqual(again.tokens, old.tokens, `${name}: tokens after trim()`);
    }
    be.rt.leanHost = true;
  });

  it('rebindSteps: a fresh state\'s first step rebound from a recorded one (no model code run) picks the same tokens', async (t) => {
    if (typeof be === 'string') return t.skip(be);
    const rb = await webgpuOrReason({ trace: true, submitEvery: 3, rebindSteps: true });
    if (typeof rb === 'string') return t.skip(rb);
    try {
      for (const name of ['llama-tiny', 'mamba2-tiny', 'mamba-tiny', 'bamba-tiny']) {
        const ref: CausalLM = (await loadModel(hfFixture(name), { backend: be })).lm;
        const lm: CausalLM = (await loadModel(hfFixture(name), { backend: rb })).lm;
        const want: number[] = (await rep(be, ref, 5)).tokens;
        // dispatches recorded by model code during each rep's decode (a rebound first step records none)
        let recorded = 0;
        const record = rb.rt.record.bind(rb.rt);
        rb.rt.record = (d) => {
          recorded++;
          record(d);
        };
        try {
          const counts: number[] = [];
          for (let r = 0; r < 3; r++) {
            const s = lm.createState(1);
            const l = (await lm.advance([IDS], s)).data;
            let first = 0;
            for (let i = 1; i < l.length; i++) if (l[i] > l[first]) first = i;
            recorded = 0;
            const picks = await lm.greedyChain!([[first]], s, 5);
            counts.push(recorded);
            s.dispose();
            assert.deepEqual([first, ...picks!.map((p) => p[0])], want, `${name} rep ${r + 1}`);
          }
          t.diagnostic(`${name}: dispatches recorded per rep ${counts.join(", ")}`);
          assert.ok(counts[0] > 0, `${name}: the first rep records its step (${counts})`);
          assert.deepEqual(counts.slice(1), [0, 0], `${name}: later reps rebind it (dispatches recorded ${counts})`);
          // KV-cache models at another prompt length: recorded (positions differ), still the same tokens as without
          const ids = IDS.slice(0, 13);
          const s1 = ref.createState(1), s2 = lm.createState(1);
          const [a, b] = [(await ref.advance([ids], s1)).data, (await lm.advance([ids], s2)).data];
          assert.deepEqual(b, a, `${name}: prefill of 13`);
          assert.deepEqual(await lm.greedyChain!([[1]], s2, 4), await ref.greedyChain!([[1]], s1, 4), `${name}: chain after 13`);
          s1.dispose();
          s2.dispose();
        } finally {
          rb.rt.record = record;
        }
      }
      // sampled decoding on the device (the state's RNG counters and presence mask are the step's own tensors too)
      const ref: CausalLM = (await loadModel(hfFixture('mamba2-tiny'), { backend: be })).lm;
      const lm: CausalLM = (await loadModel(hfFixture('mamba2-tiny'), { backend: rb })).lm;
      const { generate } = await import('../../src/generate/generate.js');
      const o = { maxNewTokens: 6, stopTokens: [], seed: 7, doSample: true, temperature: 0.9, topK: 20, deviceSampling: true, repetitionPenalty: 1.2 };
      const want: number[][] = (await generate(ref, [IDS], o)).generated;
      for (let r = 0; r < 3; r++) {
        const g = await generate(lm, [IDS], o);
        assert.deepEqual(g.generated, want, `sampled, call ${r + 1}`);
        g.state.dispose();
      }
    } finally {
      rb.destroy();
    }
  });

  it('refuses a MAMBA_TS_WEBGPU_TRACE, MAMBA_TS_WEBGPU_LEAN_HOST or MAMBA_TS_WEBGPU_REBIND it does not know', () => {
    for (const [k, v, msg] of [
      ['MAMBA_TS_WEBGPU_TRACE', 'yes', /MAMBA_TS_WEBGPU_TRACE: 1 \(count the WebGPU calls\) or 0, got "yes"/],
      ['MAMBA_TS_WEBGPU_LEAN_HOST', 'on', /MAMBA_TS_WEBGPU_LEAN_HOST: 1 \(the default: .*\) or 0 \(as before session 33\), got "on"/],
      ['MAMBA_TS_WEBGPU_REBIND', 'yes', /MAMBA_TS_WEBGPU_REBIND: 1 \(a fresh state's first step rebound from a recorded one\) or 0 \(the default: recorded\), got "yes"/],
    ] as const) {
      const was = process.env[k];
      process.env[k] = v;
      try {
        assert.throws(() => new WebGpuBackend(nullGpuDevice(), 'null'), msg);
      } finally {
        if (was === undefined) delete process.env[k];
        else process.env[k] = was;
      }
    }
    // on from the environment: a traced runtime
    process.env.MAMBA_TS_WEBGPU_TRACE = '1';
    try {
      const b = new WebGpuBackend(nullGpuDevice(), 'null');
      assert.ok(b.rt.trace && b.rt.trace.buffers > 0, 'the runtime\'s own buffers counted');
    } finally {
      delete process.env.MAMBA_TS_WEBGPU_TRACE;
    }
  });
});
