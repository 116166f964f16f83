/**
 * Every WebGPU kernel against the CPU reference backend on random shapes, including odd sizes, tails of
 * tiles and chunks, absent optional inputs, in-place state updates, and the splits for adapter limits
 * (a weight matrix larger than the binding limit; a dispatch over more buffers than a stage may bind).
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../../src/backend/backend.js';
import { cpu } from '../../src/backend/cpu/index.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { maxAbsDiff, randomArray } from '../helpers.js';
import { webgpuOrReason } from './webgpu-context.js';

const gpu = await webgpuOrReason({ kernels: 'tiled' });
// barrier-free kernels (what CPU-emulated adapters run by default)
const simple = typeof gpu === 'string' ? gpu : await webgpuOrReason({ kernels: 'simple' });
// tiny bindings: every matrix above 8 KiB is split into row blocks, most tensors get buffers of their own;
// and the kernels for devices without subgroups
const small = typeof gpu === 'string' ? gpu : await webgpuOrReason({ maxBindingBytes: 8192, maxStorageBuffers: 4, noSubgroups: true, kernels: 'simple' });
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
  if (typeof small !== 'string') small.destroy();
  if (typeof simple !== 'string') simple.destroy();
});

let seed = 1;
function rnd(n: number, scale = 1): Float32Array {
  return randomArray(n, seed++ * 7919, scale);
}

/** the same host data on both backends */
function pair(g: Backend, data: Float32Array, shape: number[], matrix = false): [Tensor, Tensor] {
  return [cpu.fromHost(data.slice(), shape), g.fromHost(data.slice(), shape, { matrix })];
}

async function close(t: Tensor, want: Tensor, tol: number, what: string): Promise<void> {
  assert.deepEqual([...t.shape], [...want.shape], `${what}: shape`);
  const got = await t.data();
  const d = maxAbsDiff(got, want.dataSync());
  assert.ok(d <= tol, `${what}: max |Δ| = ${d} > ${tol}`);
}

function withGpu(name: string, fn: (g: WebGpuBackend) => Promise<void>, which: 'default' | 'small' | 'simple' = 'default'): void {
  it(name, async (t: TestContext) => {
    const g = which === 'small' ? small : which === 'simple' ? simple : gpu;
    if (typeof g === 'string') return t.skip(g);
    await fn(g);
  });
}

describe('webgpu kernels vs the CPU reference', () => {
  withGpu('fromHost / zeros / read round trip; readSync refuses', async (g) => {
    const data = rnd(1000);
    assert.deepEqual(await g.fromHost(data.slice(), [10, 100]).data(), data);
    assert.deepEqual(await g.zeros([3, 7]).data(), new Float32Array(21));
    assert.throws(() => g.zeros([2]).dataSync(), /cannot be read synchronously/);
  });

  for (const which of ['default', 'small', 'simple'] as const) {
    withGpu(`linear: matvec and ${which === 'default' ? 'tiled' : 'simple'} matmul, odd sizes, bias, ${which === 'small' ? 'weights split into row blocks, no subgroups' : 'one binding'}`, async (g) => {
      const shapes = which === 'small'
        ? [[1, 37, 5], [3, 130, 67], [8, 64, 130], [9, 33, 70], [70, 29, 29], [100, 16, 3], [2, 36, 50], [5, 48, 77]]
        : [[1, 37, 5], [3, 130, 67], [8, 64, 130], [9, 33, 70], [70, 129, 131], [130, 16, 3], [2, 36, 50], [1, 256, 300], [5, 48, 77], [2, 4200, 40]]; // the last: x too large to stage in workgroup memory
      for (const [M, K, N] of shapes) {
        const [xc, xg] = pair(g, rnd(M * K), [M, K]);
        const [wc, wg] = pair(g, rnd(N * K), [N, K], true);
        const [bc, bg] = pair(g, rnd(N), [N]);
        if (which === 'small' && N * K * 4 > 8192) assert.ok((wg.storage as { blocks: unknown[] }).blocks.length > 1, 'matrix is split');
        await close(g.linear(xg, wg, null), cpu.linear(xc, wc, null), 1e-4, `linear ${M}×${K}×${N}`);
        await close(g.linear(xg, wg, bg), cpu.linear(xc, wc, bc), 1e-4, `linear+bias ${M}×${K}×${N}`);
      }
    }, which);

    if (which !== 'simple') withGpu(`embedding${which === 'small' ? ' from a table split into row blocks' : ''}`, async (g) => {
      const [V, H] = [50, 33];
      const [tc, tg] = pair(g, rnd(V * H), [V, H], true);
      const ids = Int32Array.from([0, 49, 7, 7, 31, 12, 48]);
      await close(g.embedding(tg, ids), cpu.embedding(tc, ids), 0, 'embedding');
    }, which);
  }

  for (const which of ['default', 'small'] as const) withGpu(`rms_norm (with and without weight) and gated rms_norm (full width and per group)${which === 'small' ? ', without subgroups' : ''}`, async (g) => {
    for (const [M, H] of which === 'small' ? [[1, 7], [5, 300]] : [[1, 7], [5, 300], [3, 1024]]) {
      const [xc, xg] = pair(g, rnd(M * H, 3), [M, H]);
      const [wc, wg] = pair(g, rnd(H), [H]);
      await close(g.rmsNorm(xg, wg, 1e-5), cpu.rmsNorm(xc, wc, 1e-5), 1e-5, `rms_norm ${M}×${H}`);
      await close(g.rmsNorm(xg, null, 1e-6), cpu.rmsNorm(xc, null, 1e-6), 1e-5, `rms_norm no weight ${M}×${H}`);
    }
    for (const [M, W, G] of which === 'small' ? [[1, 12, 12], [2, 600, 300], [3, 60, 20]] : [[1, 12, 12], [4, 600, 300], [3, 60, 20]]) {
      const [xc, xg] = pair(g, rnd(M * W, 2), [M, W]);
      const [zc, zg] = pair(g, rnd(M * W, 2), [M, W]);
      const [wc, wg] = pair(g, rnd(W), [W]);
      await close(g.rmsNormGated(xg, zg, wg, 1e-5, G), cpu.rmsNormGated(xc, zc, wc, 1e-5, G), 1e-5, `gated ${M}×${W}/${G}`);
    }
  }, which);

  withGpu('elementwise: add, scale, activations, silu·mul', async (g) => {
    const n = 1000;
    const [ac, ag] = pair(g, rnd(n, 8), [n]);
    const [bc, bg] = pair(g, rnd(n, 8), [n]);
    await close(g.add(ag, bg), cpu.add(ac, bc), 1e-6, 'add');
    await close(g.scale(ag, -0.37), cpu.scale(ac, -0.37), 1e-6, 'scale');
    await close(g.siluMul(ag, bg), cpu.siluMul(ac, bc), 1e-5, 'silu_mul');
    for (const kind of ['silu', 'relu', 'relu2', 'gelu_tanh'] as const) await close(g.activation(ag, kind), cpu.activation(ac, kind), 1e-5, kind);
  });

  withGpu('split (one row: views; several rows: copies), concat_rows, take_rows, pad_time, scatter_add_rows', async (g) => {
    for (const M of [1, 5]) {
      const [xc, xg] = pair(g, rnd(M * 20), [M, 20]);
      const sc = cpu.split(xc, [3, 0, 12, 5]);
      const sg = g.split(xg, [3, 0, 12, 5]);
      for (let i = 0; i < sc.length; i++) await close(sg[i], sc[i], 0, `split ${M} piece ${i}`);
    }
    const parts = [[2, 3, 4], [1, 3, 4], [3, 3, 4]].map((s) => pair(g, rnd(s[0] * 12), s));
    await close(g.concatRows(parts.map((p) => p[1])), cpu.concatRows(parts.map((p) => p[0])), 0, 'concat_rows');
    const [tc, tg] = pair(g, rnd(6 * 10), [6, 2, 5]);
    await close(g.takeRows(tg, [5, 0, 0, 3]), cpu.takeRows(tc, [5, 0, 0, 3]), 0, 'take_rows');
    await close(g.padTime(tg, 7), cpu.padTime(tc, 7), 0, 'pad_time');
    const [dc, dg] = pair(g, rnd(5 * 9), [5, 9]);
    const [sc2, sg2] = pair(g, rnd(4 * 9), [4, 9]);
    const rows = Int32Array.from([4, 0, 4, 2]);
    const w = Float32Array.from([0.5, -1, 2, 0.25]);
    cpu.scatterAddRows(dc, rows, sc2, w);
    g.scatterAddRows(dg, rows, sg2, w);
    await close(dg, dc, 1e-6, 'scatter_add_rows (repeated rows)');
  });

  withGpu('causal_conv1d: prefill with and without state (also L < K−1), one-step decode, bias/no bias, silu/none', async (g) => {
    for (const [b, L, C, K, withState, bias, act] of [
      [2, 9, 5, 4, true, true, 'silu'], [1, 1, 7, 4, true, false, 'silu'], [3, 2, 6, 4, true, true, 'none'],
      [2, 6, 300, 3, false, true, 'silu'], [2, 1, 4, 3, false, false, 'none'], [1, 1, 520, 4, true, true, 'silu'],
    ] as const) {
      const [xc, xg] = pair(g, rnd(b * L * C), [b, L, C]);
      const [wc, wg] = pair(g, rnd(C * K), [C, K]);
      const [bc, bg] = pair(g, rnd(C), [C]);
      const [sc, sg] = pair(g, rnd(b * C * K), [b, C, K]);
      const what = `conv b${b} L${L} C${C} K${K} state=${withState}`;
      const yg = g.causalConv1d({ x: xg, weight: wg, bias: bias ? bg : null, state: withState ? sg : null, activation: act });
      const yc = cpu.causalConv1d({ x: xc, weight: wc, bias: bias ? bc : null, state: withState ? sc : null, activation: act });
      await close(yg, yc, 1e-5, what);
      if (withState) await close(sg, sc, 0, `${what}: window`);
    }
  });

  for (const which of ['default', 'small'] as const) {
    withGpu(`selective_scan: decode step, sequential and chunked prefill, state in/out, optional D/z/bias${which === 'small' ? ' (4 buffers per dispatch)' : ''}`, async (g) => {
      const cases = [
        { b: 1, L: 1, D: 6, N: 16, state: true, opt: true },
        { b: 2, L: 37, D: 5, N: 3, state: true, opt: true },
        { b: 2, L: which === 'small' ? 17 : 37, D: 5, N: 20, state: false, opt: true },
        { b: 1, L: 64, D: 9, N: 16, state: true, opt: false },
        { b: 3, L: 5, D: 4, N: 7, state: false, opt: false },
      ];
      for (const c of cases) {
        const { b, L, D, N } = c;
        const [uc, ug] = pair(g, rnd(b * L * D), [b, L, D]);
        // without the softplus, Δ must be positive for a stable recurrence
        const [dc, dg] = pair(g, rnd(b * L * D, 2).map((v) => (c.opt ? v : Math.abs(v) * 0.3)), [b, L, D]);
        const Ah = rnd(D * N).map((v) => -Math.exp(v));
        const [Ac, Ag] = pair(g, Ah, [D, N]);
        const [Bc, Bg] = pair(g, rnd(b * L * N), [b, L, N]);
        const [Cc, Cg] = pair(g, rnd(b * L * N), [b, L, N]);
        const [Dc, Dg] = pair(g, rnd(D), [D]);
        const [zc, zg] = pair(g, rnd(b * L * D), [b, L, D]);
        const [bc, bg] = pair(g, rnd(D), [D]);
        const [sc, sg] = pair(g, rnd(b * D * N), [b, D, N]);
        for (const algorithm of ['sequential', 'chunked'] as const) {
          const args = (cpuSide: boolean) => {
            const pick = (x: [Tensor, Tensor]) => (cpuSide ? x[0] : x[1]);
            return {
              u: pick([uc, ug]), delta: pick([dc, dg]), A: pick([Ac, Ag]), B: pick([Bc, Bg]), C: pick([Cc, Cg]),
              D: c.opt ? pick([Dc, Dg]) : null, z: c.opt ? pick([zc, zg]) : null, deltaBias: c.opt ? pick([bc, bg]) : null,
              deltaSoftplus: c.opt, state: c.state ? pick([sc, sg]) : null, algorithm, chunkSize: 8,
            };
          };
          const what = `scan ${algorithm} b${b} L${L} D${D} N${N}`;
          const yc = cpu.selectiveScan(args(true));
          const yg = g.selectiveScan(args(false));
          await close(yg, yc, 2e-4, what);
          if (c.state) await close(sg, sc, 2e-4, `${what}: state`);
        }
      }
      if (which === 'small') assert.ok(g.rt.counters.gathers > 0, 'some dispatch had its inputs gathered into one buffer');
    }, which);
  }

  for (const which of ['default', 'simple', 'small'] as const) withGpu(`ssd: decode step, ${which === 'default' ? 'chunked' : 'recurrent'} prefill (tails, groups, several p/n tiles, finite dt limit), state in/out${which === 'small' ? ', without subgroups' : ''}`, async (g) => {
    const cases = [
      { b: 2, L: 1, nh: 4, hd: 3, G: 2, N: 5, state: true, limit: [0, Infinity] },
      { b: 1, L: 1, nh: 2, hd: 70, G: 1, N: 130, state: false, limit: [0, Infinity] },
      { b: 2, L: 70, nh: 4, hd: 3, G: 2, N: 5, state: true, limit: [0.01, 0.5] },
      { b: 1, L: 130, nh: 3, hd: 70, G: 3, N: 70, state: true, limit: [0, Infinity] },
      { b: 2, L: 9, nh: 2, hd: 8, G: 1, N: 16, state: false, limit: [0, Infinity] },
    ].filter((c) => which !== 'small' || c.b * Math.max(c.L * c.nh * c.hd, c.nh * c.hd * c.N) <= 2048); // 8 KiB bindings
    for (const c of cases) {
      const { b, L, nh, hd, G, N } = c;
      const [xc, xg] = pair(g, rnd(b * L * nh * hd), [b, L, nh, hd]);
      const [dc, dg] = pair(g, rnd(b * L * nh, 2), [b, L, nh]);
      const [Ac, Ag] = pair(g, rnd(nh).map((v) => -Math.exp(v)), [nh]);
      const [Bc, Bg] = pair(g, rnd(b * L * G * N, 0.5), [b, L, G, N]);
      const [Cc, Cg] = pair(g, rnd(b * L * G * N, 0.5), [b, L, G, N]);
      const [Dc, Dg] = pair(g, rnd(nh), [nh]);
      const [bc, bg] = pair(g, rnd(nh), [nh]);
      const [sc, sg] = pair(g, rnd(b * nh * hd * N), [b, nh, hd, N]);
      const args = (cpuSide: boolean) => {
        const pick = (x: [Tensor, Tensor]) => (cpuSide ? x[0] : x[1]);
        return {
          x: pick([xc, xg]), dt: pick([dc, dg]), A: pick([Ac, Ag]), B: pick([Bc, Bg]), C: pick([Cc, Cg]), D: pick([Dc, Dg]),
          dtBias: pick([bc, bg]), dtLimit: c.limit as [number, number], state: c.state ? pick([sc, sg]) : null,
          algorithm: which === 'default' ? 'chunked' as const : 'recurrent' as const, chunkSize: 16,
        };
      };
      const what = `ssd b${b} L${L} nh${nh} hd${hd} G${G} N${N}`;
      await close(g.ssd(args(false)), cpu.ssd(args(true)), 5e-4, what);
      if (c.state) await close(sg, sc, 5e-4, `${what}: state`);
    }
  }, which);

  withGpu('rope (partial rotary, large positions)', async (g) => {
    const [b, L, H, hd] = [2, 3, 3, 10];
    const [xc, xg] = pair(g, rnd(b * L * H * hd), [b, L, H, hd]);
    const pos = Int32Array.from([0, 1, 2, 5000, 5001, 70000]);
    await close(g.rope(xg, pos, 6, 10000), cpu.rope(xc, pos, 6, 10000), 1e-5, 'rope');
    await close(g.rope(xg, pos, 10, 500), cpu.rope(xc, pos, 10, 500), 1e-5, 'rope full');
  });

  withGpu('attention: no cache, KV cache with ragged past lengths, GQA, more than 64 keys', async (g) => {
    for (const [b, L, Hq, Hkv, hd, T, past] of [
      [2, 5, 4, 2, 10, 0, [0, 0]], [2, 3, 4, 2, 10, 16, [3, 0]], [1, 1, 6, 3, 70, 130, [100]], [1, 90, 2, 1, 8, 0, [0]],
    ] as const) {
      const [qc, qg] = pair(g, rnd(b * L * Hq * hd), [b, L, Hq, hd]);
      const [kc, kg] = pair(g, rnd(b * L * Hkv * hd), [b, L, Hkv, hd]);
      const [vc, vg] = pair(g, rnd(b * L * Hkv * hd), [b, L, Hkv, hd]);
      const what = `attention b${b} L${L} Hq${Hq} Hkv${Hkv} hd${hd} T${T}`;
      if (T === 0) {
        const a = (q: Tensor, k: Tensor, v: Tensor) => ({ q, k, v, cacheK: null, cacheV: null, pastLen: [...past], scale: 0.3 });
        await close(g.attention(a(qg, kg, vg)), cpu.attention(a(qc, kc, vc)), 1e-5, what);
      } else {
        const [ckc, ckg] = pair(g, rnd(b * T * Hkv * hd), [b, T, Hkv, hd]);
        const [cvc, cvg] = pair(g, rnd(b * T * Hkv * hd), [b, T, Hkv, hd]);
        const a = (q: Tensor, k: Tensor, v: Tensor, ck: Tensor, cv: Tensor) => ({ q, k, v, cacheK: ck, cacheV: cv, pastLen: [...past], scale: 0.3 });
        await close(g.attention(a(qg, kg, vg, ckg, cvg)), cpu.attention(a(qc, kc, vc, ckc, cvc)), 1e-5, what);
        await close(ckg, ckc, 0, `${what}: K cache`);
        await close(cvg, cvc, 0, `${what}: V cache`);
      }
    }
  });
});
