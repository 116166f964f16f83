/**
 * A Mamba-2 layer's prefill in one op on the wasm backend (`mamba2Prefill`, WasmBackendOptions.prefillLayer):
 * in_proj, conv1d + SiLU and the SSD on in_proj's output in place, Δ, the gated RMSNorm and out_proj without the op
 * sequence's splits and copies. It must give the op sequence's bits (the same kernels' arithmetic) — full forwards
 * (no state) and prefills that leave a state for decode — for every weight format and thread count, really run, and
 * on shapes the fixtures lack (conv width 5: out of place; groups, head dims not a multiple of 4, a last partial
 * chunk, batch 2) stay at the TypeScript reference's float32 numbers.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/index.js';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import { CpuBackend } from '../../src/backend/cpu/index.js';
import { RandomTensorSource } from '../../src/models/random.js';
import { buildModel } from '../../src/models/registry.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { hfFixture, loadReference, maxAbsDiff, stepLogits } from '../helpers.js';

/**
 * what `run` returned with the backend's `flag` off, then on (true again after), and how often `kernel` (a kernel only
 * the flag's path runs) ran in each
 */
async function flagOffThenOn<T>(be: WasmBackend, flag: 'prefillLayer' | 'prefillResidual', kernel: string, run: () => Promise<T>): Promise<{ off: T; on: T; ranOff: number; ranOn: number }> {
  const rt = be.runtime;
  const runK = rt.run;
  let ran = 0;
  rt.run = function (k, args, n, align, work) {
    if (k === kernel) ran++;
    return runK.call(this, k, args, n, align, work);
  };
  try {
    be[flag] = false;
    const off = await run();
    const ranOff = ran;
    ran = 0;
    be[flag] = true;
    const on = await run();
    return { off, on, ranOff, ranOn: ran };
  } finally {
    rt.run = runK;
    be[flag] = true;
  }
}

/** what `run` returned with prefillLayer off, then on, and how often mamba2_dt_rows (the one-op path's Δ) ran in each */
const offThenOn = <T>(be: WasmBackend, run: () => Promise<T>) => flagOffThenOn(be, 'prefillLayer', 'mamba2_dt_rows', run);

/**
 * all-position logits of a forward of `ids` (no state), then the logits of a stateful prefill and 3 decode steps; for
 * rows of 64 tokens or more also a prefill in two halves (the second starting from the first's conv and SSD states)
 */
async function logitsOf(lm: CausalLM, ids: number[][]): Promise<Float32Array[]> {
  const full = (await lm.forward(ids)).logits.data.slice();
  const out = [full, ...(await stepLogits(lm, ids[0], ids[0].length - 3, 3))];
  const row = ids[0], half = row.length >> 1;
  if (half >= 32) {
    const s = lm.createState(1);
    await lm.advance([row.slice(0, half)], s);
    out.push((await lm.advance([row.slice(half)], s)).data.slice());
  }
  return out;
}

describe('wasm backend: a Mamba-2 layer\'s prefill in one op (prefillLayer)', () => {
  // mamba2-groups: 2 groups, biases, conv 3, Δ limits; bamba-variant: a hybrid; nemotron-h-tiny: the per-group gated norm
  const runs: Array<[string, number, 'f32' | 'q8' | 'bf16']> = [
    ['mamba2-tiny', 1, 'f32'], ['mamba2-tiny', 2, 'f32'], ['mamba2-tiny', 3, 'q8'], ['mamba2-tiny', 2, 'bf16'],
    ['mamba2-groups', 2, 'f32'], ['mamba2-groups', 3, 'q8'], ['bamba-variant', 2, 'q8'], ['nemotron-h-tiny', 2, 'f32'],
  ];
  for (const [name, threads, weights] of runs) {
    it(`${name}, ${weights}, ${threads} thread(s): the op sequence's bits, and really one op per layer`, async () => {
      const model = await loadModel(hfFixture(name), { backend: 'wasm', threads, weights });
      const be = model.lm.backend as unknown as WasmBackend;
      const ids = loadReference(hfFixture(name)).ids('input_ids');
      assert.ok(ids[0].length - 3 >= be.ssdChunkedMinLength, 'the stateful prefill is long enough for the chunked SSD');
      const r = await offThenOn(be, () => logitsOf(model.lm, ids));
      assert.equal(r.ranOff, 0, 'off: the op sequence');
      assert.ok(r.ranOn > 0, 'on: mamba2_dt_rows ran');
      for (let i = 0; i < r.off.length; i++) assert.deepEqual(r.on[i], r.off[i], `${i === 0 ? 'forward' : `prefill + step ${i - 1}`}: logits differ`);
      if (weights === 'f32') {
        // and the fused path stays at HF's float32 logits
        const d = maxAbsDiff(r.on[0], loadReference(hfFixture(name)).f32('logits'));
        assert.ok(d <= 1e-4, `logits differ from HF's by ${d}`);
      }
    });
  }

  // conv width 5 (the conv writes a buffer of its own), 2 groups, head dim 10, 70 tokens (chunks of 64 + 6), biases, Δ limits
  const config = {
    model_type: 'mamba2', hidden_size: 20, num_hidden_layers: 2, state_size: 6, num_heads: 4, head_dim: 10, n_groups: 2, expand: 2,
    conv_kernel: 5, chunk_size: 256, vocab_size: 97, use_bias: true, use_conv_bias: true, time_step_limit: [0.005, 0.8], tie_word_embeddings: false,
  };
  const ids = [0, 1].map((r) => Array.from({ length: 70 }, (_, t) => (t * 7 + r * 13 + 3) % 97));
  for (const [threads, kernel] of [[1, 4], [2, 5], [3, 5]] as const) {
    it(`random mamba2, conv width ${kernel}, batch 2 × 70 tokens, ${threads} thread(s): the op sequence's bits, the TypeScript reference's numbers`, async () => {
      const cfg = { ...config, conv_kernel: kernel };
      const be = new WasmBackend({ threads });
      const lm = buildModel(cfg, 'random mamba2', new RandomTensorSource(5), { backend: be });
      const ref = buildModel(cfg, 'random mamba2', new RandomTensorSource(5), { backend: new CpuBackend() });
      const r = await offThenOn(be, () => logitsOf(lm, ids));
      assert.ok(r.ranOn > 0 && r.ranOff === 0, 'on: the fused prefill ran; off: it did not');
      for (let i = 0; i < r.off.length; i++) assert.deepEqual(r.on[i], r.off[i], `${i}: logits differ`);
      const want = await logitsOf(ref, ids);
      for (let i = 0; i < want.length; i++) {
        const scale = Math.max(...want[i].map(Math.abs));
        const d = maxAbsDiff(r.on[i], want[i]);
        assert.ok(d <= 1e-4 * Math.max(1, scale), `${i}: ${d} from the TypeScript reference (max |logit| ${scale})`);
      }
    });
  }

  it('declines what it does not run (the mixer then runs the ops): option off, short prompts, other SSD algorithms', async () => {
    // (a declined layer is asked twice, with the block's residual and then without: the calls without are counted)
    const be = new WasmBackend({ threads: 1 });
    const lm = buildModel(config, 'random mamba2', new RandomTensorSource(5), { backend: be });
    const calls: boolean[] = [];
    const f = be.mamba2Prefill.bind(be);
    be.mamba2Prefill = (a) => {
      const y = f(a);
      if (!a.residual || y) calls.push(y !== null);
      return y;
    };
    // (declined: asked twice per layer — the sublayer with its norm and residual, then the layer alone — and run once)
    const declined = (what: string) => assert.ok(calls.length >= 2 && calls.every((y) => !y), `${what}: declined (${calls})`);
    await lm.forward([ids[0].slice(0, be.ssdChunkedMinLength - 1)]);
    declined('shorter than ssdChunkedMinLength');
    calls.length = 0;
    await lm.forward([ids[0].slice(0, be.ssdChunkedMinLength)]);
    assert.deepEqual(calls, [true, true], 'from ssdChunkedMinLength: run');
    calls.length = 0;
    const rec = buildModel(config, 'random mamba2', new RandomTensorSource(5), { backend: be, ssd: { algorithm: 'recurrent' } });
    await rec.forward([ids[0]]);
    declined("ssd 'recurrent'");
    assert.throws(() => new WasmBackend({ threads: 1, prefillLayer: 'yes' as unknown as boolean }), /"prefillLayer" must be true or false/);
  });
});

describe('wasm backend: a Mamba-2 prefill layer with the block\'s pre-norm and residual add (prefillResidual)', () => {
  /** what `run` returned with prefillResidual off, then on, and how often residual_add (the fused residual add) ran in each */
  const offThenOnResidual = <T>(be: WasmBackend, run: () => Promise<T>) => flagOffThenOn(be, 'prefillResidual', 'residual_add', run);

  // granite-hybrid-tiny: a residual multiplier ≠ 1 (residual_add scales the layer's output: the same bits as scale + add)
  const runs: Array<[string, number, 'f32' | 'q8' | 'bf16']> = [
    ['mamba2-tiny', 1, 'f32'], ['mamba2-tiny', 3, 'q8'], ['mamba2-groups', 2, 'bf16'],
    ['bamba-variant', 2, 'q8'], ['nemotron-h-tiny', 2, 'f32'], ['granite-hybrid-tiny', 2, 'f32'],
  ];
  for (const [name, threads, weights] of runs) {
    it(`${name}, ${weights}, ${threads} thread(s): the bits of the norm and add as ops, and the fused add really ran`, async () => {
      const model = await loadModel(hfFixture(name), { backend: 'wasm', threads, weights });
      const be = model.lm.backend as unknown as WasmBackend;
      assert.equal(be.prefillResidual, true, 'the default');
      const ids = loadReference(hfFixture(name)).ids('input_ids');
      const r = await offThenOnResidual(be, () => logitsOf(model.lm, ids));
      assert.equal(r.ranOff, 0, 'off: no fused add');
      assert.ok(r.ranOn > 0, 'on: residual_add ran');
      for (let i = 0; i < r.off.length; i++) assert.deepEqual(r.on[i], r.off[i], `${i === 0 ? 'forward' : `prefill + step ${i - 1}`}: logits differ`);
    });
  }

  it('MAMBA_TS_WASM_PREFILL_RESIDUAL=0 turns it off; a bad value of the option is an error naming it', () => {
    const old = process.env.MAMBA_TS_WASM_PREFILL_RESIDUAL;
    try {
      process.env.MAMBA_TS_WASM_PREFILL_RESIDUAL = '0';
      assert.equal(new WasmBackend({ threads: 1 }).prefillResidual, false);
      assert.equal(new WasmBackend({ threads: 1, prefillResidual: true }).prefillResidual, true, 'the option over the environment');
    } finally {
      if (old === undefined) delete process.env.MAMBA_TS_WASM_PREFILL_RESIDUAL;
      else process.env.MAMBA_TS_WASM_PREFILL_RESIDUAL = old;
    }
    assert.throws(() => new WasmBackend({ threads: 1, prefillResidual: 'yes' as unknown as boolean }), /"prefillResidual" must be true or false/);
  });
});
