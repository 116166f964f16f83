/**
 * The WebAssembly depthwise causal conv1d (src/backend/wasm/assembly/conv.ts) against the TypeScript reference
 * `causalConv1d` (src/backend/cpu/kernels.ts): odd channel counts (SIMD tails), K from 1 to 6 (the SIMD path takes
 * K ≤ 4, a scalar loop the rest), L shorter and longer than K, state present/absent (read as history and
 * rewritten), bias and silu on/off; any split of the channel range gives bit-identical results.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { causalConv1d } from '../../src/backend/cpu/kernels.js';
import { randomArray } from '../helpers.js';
import { alloc, assertBitEqual, instantiateKernels, maxScaledErr, memory, put, resetArena, unevenSlices } from './wasm-arena.js';

interface Kernels {
  causal_conv1d(
    x: number, w: number, bias: number, state: number, y: number,
    batch: number, L: number, C: number, K: number, silu: number, c0: number, c1: number,
  ): void;
}
const kernels = instantiateKernels<Kernels>();
const SENTINEL = 12345.678;

interface Case {
  batch: number; L: number; C: number; K: number;
  x: Float32Array; w: Float32Array; bias: Float32Array | null; state: Float32Array | null; silu: boolean;
}

function run(c: Case, slices: [number, number][]): { y: Float32Array; state: Float32Array | null } {
  resetArena();
  const x = put(c.x), w = put(c.w), b = put(c.bias), s = put(c.state);
  const [y, yv] = alloc(c.batch * c.L * c.C);
  yv.fill(SENTINEL);
  for (const [c0, c1] of [...slices].reverse()) kernels.causal_conv1d(x, w, b, s, y, c.batch, c.L, c.C, c.K, c.silu ? 1 : 0, c0, c1);
  return { y: yv.slice(), state: c.state ? new Float32Array(memory.buffer, s, c.state.length).slice() : null };
}

function check(c: Case, label: string): void {
  const refState = c.state ? c.state.slice() : null;
  const yRef = causalConv1d(c.x, c.w, c.bias, refState, c.silu, c.batch, c.L, c.C, c.K);
  const whole = run(c, [[0, c.C]]);
  const ey = maxScaledErr(whole.y, yRef);
  assert.ok(ey <= 1e-6, `${label}: y error ${ey}`);
  if (refState) {
    // the state is a copy of inputs: exact
    assertBitEqual(whole.state!, refState, `${label}: state`);
  }
  const split = run(c, unevenSlices(c.C));
  assertBitEqual(split.y, whole.y, `${label}: sliced y`);
  if (whole.state) assertBitEqual(split.state!, whole.state, `${label}: sliced state`);
}

describe('wasm causal_conv1d = causalConv1d (TypeScript reference)', () => {
  const shapes: [number, number, number][] = [
    // [batch, L, C]
    [1, 1, 1],
    [2, 1, 7], // decode, a 3-lane tail
    [1, 3, 9], // L < K
    [3, 17, 13],
    [1, 64, 48],
    [2, 5, 6],
  ];
  let seed = 500;
  for (const [batch, L, C] of shapes) {
    for (const K of [1, 2, 3, 4, 5, 6]) {
      it(`b=${batch} L=${L} C=${C} K=${K}, state/bias/silu on and off`, () => {
        for (let mask = 0; mask < 8; mask++) {
          seed += 7;
          const c: Case = {
            batch, L, C, K,
            x: randomArray(batch * L * C, seed, 2),
            w: randomArray(C * K, seed + 1),
            bias: mask & 1 ? randomArray(C, seed + 2) : null,
            state: mask & 2 ? randomArray(batch * C * K, seed + 3, 2) : null,
            silu: !!(mask & 4),
          };
          check(c, `b=${batch} L=${L} C=${C} K=${K} mask=${mask}`);
        }
      });
    }
  }

  it('decoding step by step = one call over the sequence (state carried)', () => {
    const [batch, L, C, K] = [2, 9, 11, 4];
    const x = randomArray(batch * L * C, 901, 2);
    const w = randomArray(C * K, 902);
    const whole = run({ batch, L, C, K, x, w, bias: null, state: new Float32Array(batch * C * K), silu: true }, [[0, C]]);
    resetArena();
    const xo = put(x), wo = put(w);
    const [so] = alloc(batch * C * K);
    const [yo, yv] = alloc(batch * C);
    const [xt, xtv] = alloc(batch * C);
    const stepped = new Float32Array(batch * L * C);
    for (let t = 0; t < L; t++) {
      for (let b = 0; b < batch; b++) xtv.set(new Float32Array(memory.buffer, xo + ((b * L + t) * C) * 4, C), b * C);
      kernels.causal_conv1d(xt, wo, 0, so, yo, batch, 1, C, K, 1, 0, C);
      for (let b = 0; b < batch; b++) stepped.set(yv.subarray(b * C, (b + 1) * C), (b * L + t) * C);
    }
    assertBitEqual(stepped, whole.y, 'stepped y');
    assertBitEqual(new Float32Array(memory.buffer, so, batch * C * K).slice(), whole.state!, 'stepped state');
  });
});
