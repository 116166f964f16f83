/**
 * The WebAssembly scan kernels (src/backend/wasm/assembly/scan.ts, built into dist/wasm/kernels.wasm) against the JS
 * oracles: Mamba-1 `selective_scan` vs `scanSequential`, Mamba-2 `ssd_scan` vs `ssdRecurrent`, on random inputs with
 * odd shapes and every optional input present/absent; any split of the channel/head range into slices gives results
 * bit-identical to the whole range; and the kernels' vector exp vs Math.exp.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { scanSequential, type ScanArrays } from '../../src/backend/cpu/selective_scan.js';
import { processDt, ssdRecurrent, type SsdArrays } from '../../src/ssm/ssd.js';
import { randomArray } from '../helpers.js';
import { alloc, assertBitEqual, instantiateKernels, maxScaledErr, memory, put, resetArena, unevenSlices } from './wasm-arena.js';

// ---- the module, on our own shared memory

interface Kernels {
  exp_f32(x: number, y: number, n: number): void;
  selective_scan(
    u: number, delta: number, A: number, B: number, C: number, D: number, z: number, deltaBias: number, state: number,
    y: number, batch: number, L: number, Dm: number, N: number, softplusFlag: number, d0: number, d1: number,
  ): void;
  ssd_scan(
    x: number, dt: number, A: number, B: number, C: number, D: number, state: number, y: number,
    batch: number, L: number, nh: number, hd: number, G: number, N: number, h0: number, h1: number,
  ): void;
}

const kernels = instantiateKernels<Kernels>();

const TOL = 1e-5;
const SENTINEL = 12345.678; // y is pre-filled with it: every output element must be written

// ---- the vector exp

describe('wasm vector exp', () => {
  it('matches Math.exp on a dense grid in [-100, 0] (relative error < 1e-7; 0 below -87.3)', () => {
    resetArena();
    const n = 1_000_003; // not a multiple of 4: the tail path too
    const xs = new Float32Array(n);
    for (let i = 0; i < n; i++) xs[i] = -100 + (100 * i) / (n - 1);
    const xo = put(xs);
    const [yo, ys] = alloc(n);
    kernels.exp_f32(xo, yo, n);
    let maxRel = 0;
    let worst = 0;
    for (let i = 0; i < n; i++) {
      const x = xs[i];
      const want = Math.exp(x);
      if (x < -87.3) {
        assert.equal(ys[i], 0, `exp(${x}) should flush to 0`);
        continue;
      }
      const rel = Math.abs(ys[i] - want) / want;
      if (!(rel <= maxRel)) {
        maxRel = rel;
        worst = x;
      }
    }
    assert.ok(maxRel < 1e-7, `max relative error ${maxRel} at x=${worst}`);
    assert.equal(ys[n - 1], 1, 'exp(0) = 1 exactly');
  });

  it('covers positive inputs, overflow and specials', () => {
    resetArena();
    const xs = Float32Array.from([0.5, 1, 10, 20, 50, 88, 89, 1000, Infinity, -Infinity, NaN, -1e30, -87.2, -87.4]);
    const xo = put(xs);
    const [yo, ys] = alloc(xs.length);
    kernels.exp_f32(xo, yo, xs.length);
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i];
      const want = Math.exp(x);
      if (Number.isNaN(x)) assert.ok(Number.isNaN(ys[i]), 'exp(NaN) = NaN');
      else if (x >= 89) assert.equal(ys[i], Infinity, `exp(${x})`);
      else if (x < -87.3) assert.equal(ys[i], 0, `exp(${x})`);
      else assert.ok(Math.abs(ys[i] - want) / want < 1e-7, `exp(${x}) = ${ys[i]}, want ${want}`);
    }
  });
});

// ---- Mamba-1

interface M1Opts {
  D: boolean;
  z: boolean;
  bias: boolean;
  state: boolean;
  softplus: boolean;
}

function m1Case(batch: number, L: number, Dm: number, N: number, seed: number, o: M1Opts, deltaScale = 3): ScanArrays {
  const delta = randomArray(batch * L * Dm, seed + 3, deltaScale);
  const deltaBias = o.bias ? randomArray(Dm, seed + 8) : null;
  // without softplus, Δ = delta + bias is used as is: keep it positive as a real one would be (a negative Δ makes
  // the recurrence grow exponentially, where any two float implementations part ways)
  if (!o.softplus) {
    for (let i = 0; i < delta.length; i++) delta[i] = Math.abs(delta[i]) * 0.5 + 0.01;
    if (deltaBias) for (let i = 0; i < Dm; i++) deltaBias[i] = Math.abs(deltaBias[i]) * 0.1;
  }
  return {
    batch, seqLen: L, dim: Dm, dState: N,
    u: randomArray(batch * L * Dm, seed + 1, 2),
    delta,
    A: randomArray(Dm * N, seed + 2).map((v) => -Math.exp(v * 2)),
    B: randomArray(batch * L * N, seed + 4),
    C: randomArray(batch * L * N, seed + 5),
    D: o.D ? randomArray(Dm, seed + 6) : null,
    z: o.z ? randomArray(batch * L * Dm, seed + 7, 3) : null,
    deltaBias,
    deltaSoftplus: o.softplus,
    state: o.state ? randomArray(batch * Dm * N, seed + 9) : null,
  };
}

/** runs the wasm kernel over the given channel slices; returns y and the final state */
function m1Wasm(c: ScanArrays, slices: [number, number][]): { y: Float32Array; state: Float32Array | null } {
  resetArena();
  const { batch, seqLen: L, dim: Dm, dState: N } = c;
  const u = put(c.u), delta = put(c.delta), A = put(c.A), B = put(c.B), C = put(c.C);
  const D = put(c.D), z = put(c.z), bias = put(c.deltaBias), state = put(c.state);
  const [y, yv] = alloc(batch * L * Dm);
  yv.fill(SENTINEL);
  // last slice first: a slice that wrote outside its range would clobber results already in place
  for (const [d0, d1] of [...slices].reverse()) {
    kernels.selective_scan(u, delta, A, B, C, D, z, bias, state, y, batch, L, Dm, N, c.deltaSoftplus ? 1 : 0, d0, d1);
  }
  return { y: yv.slice(), state: c.state ? new Float32Array(memory.buffer, state, c.state.length).slice() : null };
}

function checkM1(c: ScanArrays, label: string): void {
  const ref = { ...c, state: c.state ? c.state.slice() : null };
  const yRef = scanSequential(ref);
  const whole = m1Wasm(c, [[0, c.dim]]);
  const ey = maxScaledErr(whole.y, yRef);
  assert.ok(ey <= TOL, `${label}: y error ${ey}`);
  if (ref.state) {
    const es = maxScaledErr(whole.state!, ref.state);
    assert.ok(es <= TOL, `${label}: state error ${es}`);
  }
  const split = m1Wasm(c, unevenSlices(c.dim));
  assertBitEqual(split.y, whole.y, `${label}: sliced y`);
  if (whole.state) assertBitEqual(split.state!, whole.state, `${label}: sliced state`);
}

describe('wasm selective_scan (Mamba-1) = scanSequential', () => {
  const shapes: [number, number, number, number][] = [
    // [batch, L, D, N]
    [1, 1, 1, 1],
    [2, 7, 5, 3],
    [3, 13, 9, 16],
    [1, 33, 120, 8],
    [2, 17, 10, 37], // N over the 16-wide block, with a tail
    [1, 9, 7, 32],
    [3, 1, 6, 16], // decode
    [2, 40, 13, 5],
  ];
  let seed = 100;
  for (const [batch, L, Dm, N] of shapes) {
    it(`b=${batch} L=${L} D=${Dm} N=${N}, every combination of optional inputs`, () => {
      for (let mask = 0; mask < 32; mask++) {
        const o: M1Opts = { D: !!(mask & 1), z: !!(mask & 2), bias: !!(mask & 4), state: !!(mask & 8), softplus: !!(mask & 16) };
        seed += 10;
        checkM1(m1Case(batch, L, Dm, N, seed, o), `b=${batch} L=${L} D=${Dm} N=${N} ${JSON.stringify(o)}`);
      }
    });
  }

  it('large Δ (softplus threshold 20, decays down to exp(-100) and below)', () => {
    const o: M1Opts = { D: true, z: true, bias: true, state: true, softplus: true };
    checkM1(m1Case(2, 21, 11, 16, 7, o, 30), 'large delta');
  });

  it('main shape slice: D=1536, N=16, L=16', () => {
    const o: M1Opts = { D: true, z: true, bias: true, state: true, softplus: true };
    checkM1(m1Case(1, 16, 1536, 16, 9, o), 'D=1536');
  });
});

// ---- Mamba-2

function m2Case(
  batch: number, L: number, nh: number, hd: number, G: number, N: number, seed: number, withD: boolean, withState: boolean,
): SsdArrays {
  return {
    batch, seqLen: L, nHeads: nh, headDim: hd, nGroups: G, dState: N,
    x: randomArray(batch * L * nh * hd, seed + 1, 2),
    dt: processDt(randomArray(batch * L * nh, seed + 2, 3), randomArray(nh, seed + 3), nh, [0, Infinity]),
    A: randomArray(nh, seed + 4).map((v) => -Math.exp(v * 1.5)),
    B: randomArray(batch * L * G * N, seed + 5),
    C: randomArray(batch * L * G * N, seed + 6),
    D: withD ? randomArray(nh, seed + 7) : null,
    state: withState ? randomArray(batch * nh * hd * N, seed + 8) : null,
  };
}

function m2Wasm(c: SsdArrays, slices: [number, number][]): { y: Float32Array; state: Float32Array | null } {
  resetArena();
  const { batch, seqLen: L, nHeads: nh, headDim: hd, nGroups: G, dState: N } = c;
  const x = put(c.x), dt = put(c.dt), A = put(c.A), B = put(c.B), C = put(c.C), D = put(c.D), state = put(c.state);
  const [y, yv] = alloc(batch * L * nh * hd);
  yv.fill(SENTINEL);
  for (const [h0, h1] of [...slices].reverse()) kernels.ssd_scan(x, dt, A, B, C, D, state, y, batch, L, nh, hd, G, N, h0, h1);
  return { y: yv.slice(), state: c.state ? new Float32Array(memory.buffer, state, c.state.length).slice() : null };
}

function checkM2(c: SsdArrays, label: string): void {
  const ref = { ...c, state: c.state ? c.state.slice() : null };
  const yRef = ssdRecurrent(ref);
  const whole = m2Wasm(c, [[0, c.nHeads]]);
  const ey = maxScaledErr(whole.y, yRef);
  assert.ok(ey <= TOL, `${label}: y error ${ey}`);
  if (ref.state) {
    const es = maxScaledErr(whole.state!, ref.state);
    assert.ok(es <= TOL, `${label}: state error ${es}`);
  }
  const split = m2Wasm(c, unevenSlices(c.nHeads));
  assertBitEqual(split.y, whole.y, `${label}: sliced y`);
  if (whole.state) assertBitEqual(split.state!, whole.state, `${label}: sliced state`);
}

describe('wasm ssd_scan (Mamba-2) = ssdRecurrent', () => {
  const shapes: [number, number, number, number, number, number][] = [
    // [batch, L, nh, hd, G, N]
    [1, 1, 1, 1, 1, 1],
    [2, 7, 4, 5, 2, 3],
    [3, 10, 6, 8, 3, 17],
    [1, 33, 4, 6, 1, 128],
    [2, 5, 2, 64, 1, 128],
    [1, 3, 8, 4, 2, 9],
    [2, 4, 5, 7, 5, 13],
    [3, 1, 6, 16, 2, 64], // decode
    [1, 61, 3, 3, 1, 10],
  ];
  let seed = 1000;
  for (const [batch, L, nh, hd, G, N] of shapes) {
    it(`b=${batch} L=${L} nh=${nh} hd=${hd} G=${G} N=${N}, with/without D and state`, () => {
      for (const withD of [false, true]) {
        for (const withState of [false, true]) {
          seed += 10;
          checkM2(
            m2Case(batch, L, nh, hd, G, N, seed, withD, withState),
            `b=${batch} L=${L} nh=${nh} hd=${hd} G=${G} N=${N} D=${withD} state=${withState}`,
          );
        }
      }
    });
  }
});
