/**
 * SSD (Mamba-2): the chunked algorithm, the quadratic (masked-attention) form and the recurrence agree on
 * outputs and final states over many shapes; a 1×1×1 recurrence checked by hand; state carried across calls
 * equals one pass; heads read B/C of group floor(h / (nh/G)); processDt's threshold, bias and clamp.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { processDt, ssdChunked, ssdQuadratic, ssdRecurrent, type SsdArrays } from '../../src/ssm/ssd.js';
import { maxAbsDiff, randomArray } from '../helpers.js';

interface Shape {
  batch: number; L: number; nh: number; G: number; hd: number; N: number;
}

/** uniform in [lo, hi) from randomArray's [-1, 1) */
function uniform(n: number, seed: number, lo: number, hi: number): Float32Array {
  return randomArray(n, seed).map((v) => lo + ((v + 1) / 2) * (hi - lo));
}

function makeCase(s: Shape, seed: number, withState: boolean, withD: boolean): SsdArrays {
  const { batch, L, nh, G, hd, N } = s;
  // dt log-uniform in [0.001, 2]; A in [-8, -0.05]
  const dt = uniform(batch * L * nh, seed + 1, Math.log(0.001), Math.log(2)).map(Math.exp);
  return {
    batch, seqLen: L, nHeads: nh, headDim: hd, nGroups: G, dState: N,
    x: randomArray(batch * L * nh * hd, seed + 2, 2),
    dt,
    A: uniform(nh, seed + 3, -8, -0.05),
    B: randomArray(batch * L * G * N, seed + 4),
    C: randomArray(batch * L * G * N, seed + 5),
    D: withD ? randomArray(nh, seed + 6) : null,
    state: withState ? randomArray(batch * nh * hd * N, seed + 7) : null,
  };
}

function copyCase(c: SsdArrays): SsdArrays {
  return { ...c, state: c.state ? c.state.slice() : null };
}

function scale(a: ArrayLike<number>): number {
  let m = 1;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function assertClose(ref: ArrayLike<number>, got: ArrayLike<number>, what: string): void {
  const d = maxAbsDiff(ref, got);
  const sc = scale(ref);
  assert.ok(d <= 1e-5 * sc, `${what}: max |Δ| = ${d} (scale ${sc})`);
}

/** rows [t0, t1) along L of an array laid out [b, L, width] */
function sliceTime(arr: Float32Array, batch: number, L: number, width: number, t0: number, t1: number): Float32Array {
  const out = new Float32Array(batch * (t1 - t0) * width);
  for (let b = 0; b < batch; b++) out.set(arr.subarray((b * L + t0) * width, (b * L + t1) * width), b * (t1 - t0) * width);
  return out;
}

function sliceCase(c: SsdArrays, t0: number, t1: number, state: Float32Array | null): SsdArrays {
  const { batch, seqLen: L, nHeads: nh, headDim: hd, nGroups: G, dState: N } = c;
  return {
    ...c,
    seqLen: t1 - t0,
    x: sliceTime(c.x, batch, L, nh * hd, t0, t1),
    dt: sliceTime(c.dt, batch, L, nh, t0, t1),
    B: sliceTime(c.B, batch, L, G * N, t0, t1),
    C: sliceTime(c.C, batch, L, G * N, t0, t1),
    state,
  };
}

/** y [b, L', nh, hd] for rows [t0, t1) written into the whole-sequence layout */
function putTime(dst: Float32Array, src: Float32Array, batch: number, L: number, width: number, t0: number, t1: number): void {
  for (let b = 0; b < batch; b++) dst.set(src.subarray(b * (t1 - t0) * width, (b + 1) * (t1 - t0) * width), (b * L + t0) * width);
}

describe('ssd: chunked = quadratic = recurrent', () => {
  const headGroups = [
    { nh: 8, G: 1 },
    { nh: 6, G: 2 },
    { nh: 6, G: 3 },
    { nh: 5, G: 5 },
  ];
  const lengths = [1, 5, 16, 37, 64, 100];
  const chunks = [1, 4, 16, 10, 64, 128];
  let k = 0;
  for (const L of lengths) {
    for (const { nh, G } of headGroups) {
      // vary batch, hd, N, initial state and D deterministically over the cases
      const batch = 1 + (k % 3);
      const hd = [1, 3, 8, 16, 5][k % 5];
      const N = [16, 1, 7, 4, 12, 2][k % 6];
      const withState = k % 2 === 0;
      const withD = k % 4 < 2;
      const seed = 1000 + 37 * k++;
      const s: Shape = { batch, L, nh, G, hd, N };
      it(`b=${batch} L=${L} nh=${nh} G=${G} hd=${hd} N=${N} ${withState ? 'h0' : 'no h0'} ${withD ? 'D' : 'no D'}; chunks ${chunks.join(',')}`, () => {
        const c = makeCase(s, seed, withState, withD);
        const rec = copyCase(c);
        const quad = copyCase(c);
        const yr = ssdRecurrent(rec);
        const yq = ssdQuadratic(quad);
        assert.equal(yr.length, batch * L * nh * hd);
        assertClose(yr, yq, 'quadratic vs recurrent y');
        if (withState) assertClose(rec.state!, quad.state!, 'quadratic vs recurrent state');
        for (const Q of chunks) {
          const ch = copyCase(c);
          const yc = ssdChunked(ch, Q);
          assertClose(yr, yc, `chunked(Q=${Q}) vs recurrent y`);
          assertClose(yq, yc, `chunked(Q=${Q}) vs quadratic y`);
          if (withState) assertClose(rec.state!, ch.state!, `chunked(Q=${Q}) vs recurrent state`);
        }
      });
    }
  }

  it('final state from a zero initial state: all three agree (state array given as zeros)', () => {
    const s: Shape = { batch: 2, L: 37, nh: 6, G: 2, hd: 4, N: 5 };
    const c = makeCase(s, 77, true, true);
    c.state!.fill(0);
    const r = copyCase(c), q = copyCase(c), ch = copyCase(c);
    const yr = ssdRecurrent(r);
    const y0 = ssdRecurrent({ ...c, state: null });
    assert.ok(maxAbsDiff(yr, y0) === 0, 'zero state = null state');
    ssdQuadratic(q);
    ssdChunked(ch, 10);
    assert.ok(scale(r.state!) > 1e-3);
    assertClose(r.state!, q.state!, 'quadratic state');
    assertClose(r.state!, ch.state!, 'chunked state');
  });

  it('matches the recurrence written out by hand (1 head, hd=1, N=1, with h0 and D)', () => {
    const A = -1.5, D = 0.25, h0 = 0.5;
    const dt = [0.5, 1, 0.25, 2];
    const x = [1, -2, 3, 0.5];
    const B = [2, 1, -1, 0.5];
    const C = [1, 3, 0.5, -2];
    // h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t ; y_t = C_t h_t + D x_t
    const h1 = Math.exp(0.5 * A) * h0 + 0.5 * 1 * 2;
    const h2 = Math.exp(1 * A) * h1 + 1 * -2 * 1;
    const h3 = Math.exp(0.25 * A) * h2 + 0.25 * 3 * -1;
    const h4 = Math.exp(2 * A) * h3 + 2 * 0.5 * 0.5;
    const want = [1 * h1 + D * 1, 3 * h2 + D * -2, 0.5 * h3 + D * 3, -2 * h4 + D * 0.5];
    const mk = (): SsdArrays => ({
      batch: 1, seqLen: 4, nHeads: 1, headDim: 1, nGroups: 1, dState: 1,
      x: Float32Array.from(x), dt: Float32Array.from(dt), A: Float32Array.of(A),
      B: Float32Array.from(B), C: Float32Array.from(C), D: Float32Array.of(D), state: Float32Array.of(h0),
    });
    const forms: Array<[string, (a: SsdArrays) => Float32Array]> = [
      ['recurrent', ssdRecurrent],
      ['quadratic', ssdQuadratic],
      ['chunked Q=1', (a) => ssdChunked(a, 1)],
      ['chunked Q=3', (a) => ssdChunked(a, 3)],
      ['chunked Q=4', (a) => ssdChunked(a, 4)],
    ];
    for (const [name, f] of forms) {
      const a = mk();
      const y = f(a);
      for (let t = 0; t < 4; t++) assert.ok(Math.abs(y[t] - want[t]) < 1e-6, `${name} y[${t}] = ${y[t]}, want ${want[t]}`);
      assert.ok(Math.abs(a.state![0] - h4) < 1e-6, `${name} final state ${a.state![0]}, want ${h4}`);
    }
  });

  it('L = 0 returns an empty output and leaves the state unchanged', () => {
    const c = makeCase({ batch: 2, L: 0, nh: 4, G: 2, hd: 3, N: 2 }, 5, true, true);
    for (const f of [ssdRecurrent, ssdQuadratic, (a: SsdArrays) => ssdChunked(a, 8)]) {
      const a = copyCase(c);
      assert.equal(f(a).length, 0);
      assert.deepEqual(a.state, c.state);
    }
  });

  it('rejects bad shapes and chunk sizes', () => {
    const c = makeCase({ batch: 1, L: 4, nh: 6, G: 2, hd: 2, N: 3 }, 9, false, false);
    assert.throws(() => ssdChunked({ ...c, nGroups: 4 }, 4), /multiple of nGroups/);
    assert.throws(() => ssdRecurrent({ ...c, x: c.x.subarray(1) }), /x has length/);
    assert.throws(() => ssdChunked(c, 0), /chunkSize/);
    assert.throws(() => ssdChunked(c, 2.5), /chunkSize/);
  });
});

describe('ssd: state carry', () => {
  for (const { L, split, Q } of [
    { L: 37, split: 16, Q: 16 },
    { L: 100, split: 33, Q: 10 },
    { L: 64, split: 1, Q: 64 },
    { L: 50, split: 49, Q: 4 },
  ]) {
    it(`chunked over [0, ${split}) then [${split}, ${L}) with the carried state = chunked over [0, ${L}) (Q=${Q})`, () => {
      const s: Shape = { batch: 2, L, nh: 6, G: 3, hd: 4, N: 8 };
      const c = makeCase(s, 300 + L + split, true, true);
      const whole = copyCase(c);
      const yWhole = ssdChunked(whole, Q);

      const state = c.state!.slice();
      const y1 = ssdChunked(sliceCase(c, 0, split, state), Q);
      const y2 = ssdChunked(sliceCase(c, split, L, state), Q);
      const y = new Float32Array(yWhole.length);
      const w = s.nh * s.hd;
      putTime(y, y1, s.batch, L, w, 0, split);
      putTime(y, y2, s.batch, L, w, split, L);
      assertClose(yWhole, y, 'y');
      assertClose(whole.state!, state, 'final state');
    });
  }

  it('chunked prefill then token-by-token recurrent decode = one pass', () => {
    const s: Shape = { batch: 3, L: 40, nh: 8, G: 1, hd: 6, N: 16 };
    const c = makeCase(s, 4242, false, true);
    const yWhole = ssdRecurrent(copyCase(c));
    const prefill = 29;
    const state = new Float32Array(s.batch * s.nh * s.hd * s.N);
    const y = new Float32Array(yWhole.length);
    const w = s.nh * s.hd;
    putTime(y, ssdChunked(sliceCase(c, 0, prefill, state), 8), s.batch, s.L, w, 0, prefill);
    for (let t = prefill; t < s.L; t++) putTime(y, ssdRecurrent(sliceCase(c, t, t + 1, state)), s.batch, s.L, w, t, t + 1);
    assertClose(yWhole, y, 'y');
  });
});

describe('ssd: group mapping (head h reads group floor(h / (nh/G)))', () => {
  /** explicit scalar recurrence with a chosen head→group map */
  function explicit(c: SsdArrays, groupOf: (h: number) => number): { y: Float64Array; state: Float64Array } {
    const { batch, seqLen: L, nHeads: nh, headDim: hd, nGroups: G, dState: N } = c;
    const y = new Float64Array(batch * L * nh * hd);
    const state = new Float64Array(batch * nh * hd * N);
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < nh; h++) {
        const g = groupOf(h);
        for (let p = 0; p < hd; p++) {
          for (let n = 0; n < N; n++) {
            const si = ((b * nh + h) * hd + p) * N + n;
            let st = c.state ? c.state[si] : 0;
            for (let t = 0; t < L; t++) {
              const dtv = c.dt[(b * L + t) * nh + h];
              const xv = c.x[((b * L + t) * nh + h) * hd + p];
              st = Math.exp(dtv * c.A[h]) * st + dtv * xv * c.B[((b * L + t) * G + g) * N + n];
              y[((b * L + t) * nh + h) * hd + p] += st * c.C[((b * L + t) * G + g) * N + n];
            }
            state[si] = st;
          }
          if (c.D) for (let t = 0; t < L; t++) {
            const i = ((b * L + t) * nh + h) * hd + p;
            y[i] += c.D[h] * c.x[i];
          }
        }
      }
    }
    return { y, state };
  }

  it('nh=6, G=3 with distinct group B/C: all forms match the group-major recurrence, not h % G', () => {
    const s: Shape = { batch: 2, L: 23, nh: 6, G: 3, hd: 3, N: 4 };
    const c = makeCase(s, 555, true, true);
    // make the groups clearly different: scale group g's B and C by (g + 1) and shift them
    for (let i = 0; i < c.B.length; i++) {
      const g = Math.floor(i / s.N) % s.G;
      c.B[i] = c.B[i] * (g + 1) + 0.5 * g;
      c.C[i] = c.C[i] * (g + 1) - 0.3 * g;
    }
    const hpg = s.nh / s.G;
    const want = explicit(c, (h) => Math.floor(h / hpg));
    const wrong = explicit(c, (h) => h % s.G);
    assert.ok(maxAbsDiff(want.y, wrong.y) > 0.1, 'the two mappings must give different outputs for this test to mean anything');
    for (const [name, f] of [
      ['recurrent', ssdRecurrent],
      ['quadratic', ssdQuadratic],
      ['chunked Q=5', (a: SsdArrays) => ssdChunked(a, 5)],
    ] as Array<[string, (a: SsdArrays) => Float32Array]>) {
      const a = copyCase(c);
      const y = f(a);
      assertClose(want.y, y, `${name} y vs group-major`);
      assertClose(want.state, a.state!, `${name} state vs group-major`);
      assert.ok(maxAbsDiff(wrong.y, y) > 0.1, `${name} must not match the h % G mapping`);
    }
  });
});

describe('processDt', () => {
  const sp = (v: number): number => Math.log1p(Math.exp(v));

  it('softplus below the threshold, identity above 20 (PyTorch threshold)', () => {
    const raw = Float32Array.of(0, -3, 5, 19.5, 20.5, 25, 100, -100, 1000, 3e38);
    const out = processDt(raw, null, 1, [0, Infinity]);
    const want = [Math.LN2, sp(-3), sp(5), sp(19.5), 20.5, 25, 100, sp(-100), 1000, Math.fround(3e38)];
    for (let i = 0; i < raw.length; i++) assert.equal(out[i], Math.fround(want[i]), `i=${i}: ${out[i]} vs ${want[i]}`);
    // above the threshold the value is passed through exactly (softplus would differ from x by ~exp(-x))
    assert.equal(out[4], 20.5);
    assert.equal(out[6], 100);
    // and large values do not overflow (log1p(exp(1000)) would be Infinity)
    assert.equal(out[8], 1000);
    assert.equal(out[9], Math.fround(3e38));
    // (in float32, softplus(x) rounds to x for x ≳ 17, so the exact cut at 20 is not observable in the output)
  });

  it('adds the per-head bias before the softplus, head = index mod nh', () => {
    const nh = 3;
    const bias = Float32Array.of(1, -2, 21);
    const raw = Float32Array.of(-1, 0, 0, 0.5, 2, -0.5); // [2 rows, 3 heads]
    const out = processDt(raw, bias, nh, [0, Infinity]);
    const want = [sp(0), sp(-2), 21, sp(1.5), sp(0), 20.5];
    for (let i = 0; i < raw.length; i++) assert.ok(Math.abs(out[i] - want[i]) < 1e-6, `i=${i}: ${out[i]} vs ${want[i]}`);
    // softplus(dt + bias), not softplus(dt) + bias
    assert.ok(Math.abs(out[0] - Math.LN2) < 1e-7);
    assert.ok(Math.abs(out[0] - (sp(-1) + 1)) > 0.1);
  });

  it('clamps to the limits after the softplus', () => {
    const raw = Float32Array.of(-10, 0, 5, 30);
    const out = processDt(raw, null, 2, [0.01, 0.5]);
    assert.deepEqual(Array.from(out), [0.01, 0.5, 0.5, 0.5].map(Math.fround));
    const out2 = processDt(Float32Array.of(-1, -0.5), null, 2, [0.3, 0.45]);
    assert.ok(Math.abs(out2[0] - sp(-1)) < 1e-7, 'inside the limits: unchanged'); // 0.3133
    assert.equal(out2[1], Math.fround(0.45)); // sp(-0.5) = 0.474 → 0.45
    assert.equal(processDt(Float32Array.of(-30), null, 1, [0.001, Infinity])[0], Math.fround(0.001));
  });

  it('rejects mismatched shapes', () => {
    assert.throws(() => processDt(new Float32Array(5), null, 2, [0, Infinity]), /multiple of nHeads/);
    assert.throws(() => processDt(new Float32Array(4), new Float32Array(3), 2, [0, Infinity]), /bias length/);
  });
});
