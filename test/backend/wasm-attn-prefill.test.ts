/**
 * A prefill's attention half and gated MLP as one op each on the wasm backend (session 31, issue 18):
 * `attentionPrefill` (q/k/v on x packed once, RoPE and the KV cache write in wasm, attention_prefill, o_proj) and
 * `gatedMlp` for prefill-sized x (gate/up on x packed once, SwiGLU in place, down). With the same attention tiles they must give
 * the op sequence's bits (the same kernels' arithmetic) — forwards without state, stateful prefills followed by decode
 * steps (which read what the prefill wrote into the caches), a prefill continuing another — for every weight and KV
 * cache format, 1–3 threads, GQA, partial rotary (Bamba) and none (Jamba); really run; and the attention tiles
 * `attnTiles` 'fma' and 'scoresT' (the default: scores transposed, PV accumulated on FMA tiles) stay within 1e-5 of the
 * largest logit of 'dot' (the tiles before; 1e-3 with q8 weights) and at HF's float32 logits.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/index.js';
import { WasmBackend, type AttnTiles } from '../../src/backend/wasm/index.js';
import { CpuBackend } from '../../src/backend/cpu/index.js';
import { RandomTensorSource } from '../../src/models/random.js';
import { buildModel } from '../../src/models/registry.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import type { KvCacheDType, WeightDType } from '../../src/tensor/dtype.js';
import { Tensor } from '../../src/tensor/tensor.js';
import * as ops from '../../src/tensor/ops.js';
import { hfFixture, loadReference, maxAbsDiff, stepLogits } from '../helpers.js';

type Flags = { attnPrefill: boolean; mlpPrefill: boolean; attnTiles: AttnTiles };
const OFF: Flags = { attnPrefill: false, mlpPrefill: false, attnTiles: 'dot' };
const FUSED: Flags = { attnPrefill: true, mlpPrefill: true, attnTiles: 'dot' };
const FUSED_FMA: Flags = { attnPrefill: true, mlpPrefill: true, attnTiles: 'fma' };
const OPS_T: Flags = { attnPrefill: false, mlpPrefill: false, attnTiles: 'scoresT' };
const DEFAULTS: Flags = { attnPrefill: true, mlpPrefill: true, attnTiles: 'scoresT' };

/** `run` with the flags set, and how many attentionPrefill / prefill gatedMlp calls ran in one op */
async function withFlags<T>(be: WasmBackend, f: Flags, run: () => Promise<T>): Promise<{ out: T; attn: number; mlp: number }> {
  const attnP = be.attentionPrefill.bind(be), mlp = be.gatedMlp.bind(be);
  let attn = 0, mlps = 0;
  be.attentionPrefill = (a) => {
    const y = attnP(a);
    if (y) attn++;
    return y;
  };
  be.gatedMlp = (x, g, u, d, residual) => {
    const y = mlp(x, g, u, d, residual);
    if (y && x.shape[0] >= 32) mlps++;
    return y;
  };
  Object.assign(be, f);
  try {
    return { out: await run(), attn, mlp: mlps };
  } finally {
    Object.assign(be, DEFAULTS);
    be.attentionPrefill = attnP;
    be.gatedMlp = mlp;
  }
}

/** all-position logits of a forward (no state); a stateful prefill and 3 decode steps; a prefill in two halves */
async function logitsOf(lm: CausalLM, ids: number[][]): Promise<Float32Array[]> {
  const full = (await lm.forward(ids)).logits.data.slice();
  const out = [full, ...(await stepLogits(lm, ids[0], ids[0].length - 3, 3))];
  const row = ids[0], half = row.length >> 1;
  const s = lm.createState(1);
  await lm.advance([row.slice(0, half)], s);
  out.push((await lm.advance([row.slice(half)], s)).data.slice());
  return out;
}

function close(got: Float32Array[], want: Float32Array[], rel: number, what: string): void {
  for (let i = 0; i < want.length; i++) {
    const scale = Math.max(1, ...want[i].map(Math.abs));
    const d = maxAbsDiff(got[i], want[i]);
    assert.ok(d <= rel * scale, `${what} ${i}: ${d} apart (max |logit| ${scale})`);
  }
}

describe('wasm backend: a prefill\'s attention half and gated MLP in one op each (attnPrefill, mlpPrefill), attention tiles (attnTiles)', () => {
  // llama-tiny: GQA 4/2 × 16; bamba-tiny / bamba-variant: partial rotary, hybrids (3/1 heads); jamba-tiny: no rotary, MoE;
  // granite-hybrid-tiny: residual / logits multipliers
  const runs: Array<[string, number, WeightDType, KvCacheDType]> = [
    ['llama-tiny', 1, 'f32', 'f32'], ['llama-tiny', 2, 'q8', 'f32'], ['llama-tiny', 3, 'bf16', 'bf16'], ['llama-tiny', 2, 'f32', 'q8'],
    ['bamba-tiny', 2, 'f32', 'f32'], ['bamba-variant', 3, 'q8', 'f16'], ['jamba-tiny', 2, 'f32', 'f32'], ['granite-hybrid-tiny', 1, 'f32', 'f32'],
  ];
  for (const [name, threads, weights, kvCache] of runs) {
    it(`${name}, ${weights} weights, ${kvCache} KV cache, ${threads} thread(s): the op sequence's bits, ran, and the tiles within 1e-5`, async () => {
      const model = await loadModel(hfFixture(name), { backend: 'wasm', threads, weights, kvCache });
      const be = model.lm.backend as unknown as WasmBackend;
      const ref = loadReference(hfFixture(name));
      const ids = ref.ids('input_ids');
      const off = await withFlags(be, OFF, () => logitsOf(model.lm, ids));
      const fused = await withFlags(be, FUSED, () => logitsOf(model.lm, ids));
      const fma = await withFlags(be, FUSED_FMA, () => logitsOf(model.lm, ids));
      const opsT = await withFlags(be, OPS_T, () => logitsOf(model.lm, ids));
      const dflt = await withFlags(be, DEFAULTS, () => logitsOf(model.lm, ids));
      assert.equal(off.attn + off.mlp + opsT.attn + opsT.mlp, 0, 'off: the op sequence');
      assert.ok(fused.attn > 0 && dflt.attn > 0, 'on: attentionPrefill ran');
      for (let i = 0; i < off.out.length; i++) {
        const what = i === 0 ? 'forward' : `prefill / step ${i - 1}`;
        assert.deepEqual(fused.out[i], off.out[i], `${what}: logits differ (dot tiles)`);
        assert.deepEqual(dflt.out[i], opsT.out[i], `${what}: logits differ (scoresT tiles)`);
      }
      // (q8 weights: the next layer's integer GEMM rounds its activations to 13 bits, which turns the tiles' other
      // roundings into steps of up to a quantum of x: within 1e-3 there, as ssdFma)
      close(fma.out, off.out, weights === 'q8' ? 1e-3 : 1e-5, 'fma tiles');
      close(dflt.out, off.out, weights === 'q8' ? 1e-3 : 1e-5, 'scoresT tiles');
      if (weights === 'f32' && kvCache === 'f32') close([dflt.out[0]], [ref.f32('logits')], 1e-4, "HF's logits");
    });
  }

  // GQA 3 query heads per KV head, head dim 12, partial rotary, 150 + 2 rows (3 query tiles, a last partial one),
  // batch 2: the gated MLP runs its one op (M ≥ 32) and the tiles skip the causal ones
  const config = {
    model_type: 'llama', hidden_size: 36, num_hidden_layers: 2, num_attention_heads: 6, num_key_value_heads: 2, head_dim: 12,
    intermediate_size: 40, partial_rotary_factor: 0.5, vocab_size: 61, tie_word_embeddings: false,
  };
  const ids = [0, 1].map((r) => Array.from({ length: 150 }, (_, t) => (t * 7 + r * 13 + 3) % 61));
  for (const threads of [1, 2, 3]) {
    it(`random GQA 6/2 × 12, partial rotary, batch 2 × 150, ${threads} thread(s): the op sequence's bits, the TypeScript reference's numbers`, async () => {
      const be = new WasmBackend({ threads });
      const lm = buildModel(config, 'random llama', new RandomTensorSource(7), { backend: be });
      const cpu = buildModel(config, 'random llama', new RandomTensorSource(7), { backend: new CpuBackend() });
      const run = async (): Promise<Float32Array[]> => [(await lm.forward(ids)).logits.data.slice(), ...(await logitsOf(lm, [ids[1]]))];
      const off = await withFlags(be, OFF, run);
      const fused = await withFlags(be, FUSED, run);
      const opsT = await withFlags(be, OPS_T, run);
      const dflt = await withFlags(be, DEFAULTS, run);
      assert.ok(fused.attn > 0 && fused.mlp > 0 && off.attn + off.mlp === 0, 'on: both ops ran; off: neither');
      for (let i = 0; i < off.out.length; i++) {
        assert.deepEqual(fused.out[i], off.out[i], `${i}: logits differ (dot tiles)`);
        assert.deepEqual(dflt.out[i], opsT.out[i], `${i}: logits differ (scoresT tiles)`);
      }
      close(dflt.out, off.out, 1e-5, 'scoresT tiles');
      const want = [(await cpu.forward(ids)).logits.data.slice(), ...(await logitsOf(cpu, [ids[1]]))];
      close(dflt.out, want, 1e-4, 'TypeScript reference');
    });
  }

  it('gatedMlp with a residual: the bits of rmsNorm, the MLP, scale and add (scale 0.3, not an f32; no norm)', () => {
    const be = new WasmBackend({ threads: 2 });
    let seed = 5;
    const r = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1;
    const [M, H, I] = [40, 36, 44];
    const mat = (N: number, K: number) => be.fromHost(Float32Array.from({ length: N * K }, r), [N, K], { matrix: true });
    const [g, u, d] = [[mat(I, H), null], [mat(I, H), null], [mat(H, I), null]] as Array<[Tensor, null]>;
    const x = new Tensor(be, Float32Array.from({ length: M * H }, r), [M, H]);
    const norm = be.fromHost(Float32Array.from({ length: H }, r), [H]);
    for (const [w, s] of [[norm, 0.3], [null, 1], [norm, 1]] as const) {
      const got = be.gatedMlp(x, g, u, d, { norm: w, eps: 1e-5, scale: s });
      assert.ok(got, 'handled');
      const want = ops.add(x, ops.scale(be.gatedMlp(w ? ops.rmsNorm(x, w, 1e-5) : x, g, u, d)!, s));
      assert.deepEqual(got.storage, want.storage, `norm ${w ? 'on' : 'off'}, scale ${s}`);
    }
    assert.equal(be.gatedMlp(new Tensor(be, new Float32Array(H), [1, H]), g, u, d, { norm, eps: 1e-5, scale: 1 }), null, 'decode-sized x with a residual: declined');
  });

  it('declines what it does not run, and checks its options', async () => {
    const be = new WasmBackend({ threads: 1 });
    const lm = buildModel(config, 'random llama', new RandomTensorSource(7), { backend: be });
    const calls: boolean[] = [];
    const f = be.attentionPrefill.bind(be);
    be.attentionPrefill = (a) => {
      const y = f(a);
      calls.push(y !== null);
      return y;
    };
    const declined = (what: string) => assert.ok(calls.length >= 2 && calls.every((y) => !y), `${what}: declined (${calls})`);
    await lm.forward([ids[0].slice(0, 31)]);
    declined('fewer than 32 rows (linearMany runs q/k/v)');
    calls.length = 0;
    await lm.forward([ids[0].slice(0, 16), ids[1].slice(0, 16)]);
    assert.deepEqual(calls, [true, true], '2 × 16 rows: run (one call per layer: the sublayer with its norm and residual)');
    calls.length = 0;
    be.attnPrefill = false;
    await lm.forward([ids[0].slice(0, 40)]);
    declined('option off');
    const x = (M: number) => new Tensor(be, new Float32Array(M * 36).fill(0.5), [M, 36]);
    const mlp = (lm as unknown as { spec: { blocks: Array<Array<{ mixer: { w?: { gate: Tensor; up: Tensor; down: Tensor } } }>> } }).spec.blocks[0][1].mixer.w!;
    const [g, u, d] = [[mlp.gate, null], [mlp.up, null], [mlp.down, null]] as Array<[Tensor, null]>;
    assert.ok(be.gatedMlp(x(32), g, u, d), 'gatedMlp, 32 rows: the prefill op');
    be.mlpPrefill = false;
    assert.equal(be.gatedMlp(x(32), g, u, d), null, 'gatedMlp, 32 rows, mlpPrefill off: declined');
    assert.throws(() => new WasmBackend({ threads: 1, attnPrefill: 1 as unknown as boolean }), /"attnPrefill" must be true or false/);
    assert.throws(() => new WasmBackend({ threads: 1, mlpPrefill: 'no' as unknown as boolean }), /"mlpPrefill" must be true or false/);
    assert.throws(() => new WasmBackend({ threads: 1, attnTiles: 'fast' as unknown as AttnTiles }), /"attnTiles" must be 'scoresT', 'fma' or 'dot'/);
  });
});
