/**
 * The Mamba-1 prefill scans of the WebGPU backend's 'tiled' kernels against the CPU reference: 'rescan' (chunk
 * states, carries, chunks scanned again; B/C staged in workgroup memory) and 'partials' (the scan of before), with
 * several workgroups over the channels, tails of chunks and of channel blocks, state in/out, and B, C, z read in
 * place from wider tensors (the views `split` makes).
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/index.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { maxAbsDiff, randomArray } from '../helpers.js';
import { webgpuOrReason } from './webgpu-context.js';

const gpu = await webgpuOrReason({ kernels: 'tiled' });
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});
let seed = 5;
const rnd = (n: number, scale = 1) => randomArray(n, seed++ * 7907, scale);

async function close(t: Tensor, want: Tensor, tol: number, what: string): Promise<void> {
  const d = maxAbsDiff(await t.data(), want.dataSync());
  assert.ok(d <= tol, `${what}: max |Δ| = ${d} > ${tol}`);
}

describe('webgpu Mamba-1 prefill scan (tiled kernels)', () => {
  const cases = [
    { b: 1, L: 70, D: 300, N: 16, state: true, opt: true },
    { b: 2, L: 33, D: 257, N: 5, state: false, opt: true },
    { b: 1, L: 40, D: 20, N: 64, state: true, opt: false },
  ];
  for (const scan of ['rescan', 'partials'] as const) {
    it(`${scan}: several channel blocks, chunk tails, N up to 64, state in/out, optional D/z/bias, against the CPU`, async (t: TestContext) => {
      if (typeof gpu === 'string') return t.skip(gpu);
      const g: WebGpuBackend = gpu;
      const saved = g.scan;
      g.scan = scan;
      try {
        for (const c of cases) {
          const { b, L, D, N } = c;
          const h = (data: Float32Array, shape: number[]): [Tensor, Tensor] => [cpu.fromHost(data.slice(), shape), g.fromHost(data.slice(), shape)];
          const u = h(rnd(b * L * D), [b, L, D]);
          const delta = h(rnd(b * L * D, 2).map((v) => (c.opt ? v : Math.abs(v) * 0.3)), [b, L, D]);
          const A = h(rnd(D * N).map((v) => -Math.exp(v)), [D, N]);
          // B and C as columns of one wider tensor, as x_proj's output is split: [dt | B | C]
          const R = 3;
          const xdbl = rnd(b * L * (R + 2 * N));
          const Bh = new Float32Array(b * L * N), Ch = new Float32Array(b * L * N);
          for (let r = 0; r < b * L; r++) {
            Bh.set(xdbl.subarray(r * (R + 2 * N) + R, r * (R + 2 * N) + R + N), r * N);
            Ch.set(xdbl.subarray(r * (R + 2 * N) + R + N, (r + 1) * (R + 2 * N)), r * N);
          }
          const [, Bg, Cg] = g.split(g.fromHost(xdbl, [b, L, R + 2 * N]), [R, N, N]);
          const Bc = cpu.fromHost(Bh, [b, L, N]), Cc = cpu.fromHost(Ch, [b, L, N]);
          const Dv = h(rnd(D), [D]), z = h(rnd(b * L * D), [b, L, D]), bias = h(rnd(D), [D]), st = h(rnd(b * D * N), [b, D, N]);
          const args = (i: 0 | 1) => ({
            u: u[i], delta: delta[i], A: A[i], B: i ? Bg : Bc, C: i ? Cg : Cc, D: c.opt ? Dv[i] : null, z: c.opt ? z[i] : null,
            deltaBias: c.opt ? bias[i] : null, deltaSoftplus: c.opt, state: c.state ? st[i] : null, algorithm: 'chunked' as const, chunkSize: 8,
          });
          const what = `${scan} b${b} L${L} D${D} N${N}`;
          const yc = cpu.selectiveScan(args(0));
          const yg = g.selectiveScan(args(1));
          await close(yg, yc, 1e-4, what);
          if (scan === 'rescan') assert.ok((Bg.storage as { lazy: unknown }).lazy && (Cg.storage as { lazy: unknown }).lazy, `${what}: B and C read in place`);
          if (c.state) await close(st[1], st[0], 1e-4, `${what}: state`);
        }
      } finally {
        g.scan = saved;
      }
    });
  }
});

describe('webgpu split: pieces read in place, copied on demand', () => {
  it('pieces are right when read directly, through conv1d and the scan, and after their source is disposed', async (t: TestContext) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const g: WebGpuBackend = gpu;
    const [b, L, W] = [2, 9, 13];
    const data = rnd(b * L * W);
    const want = cpu.split(cpu.fromHost(data.slice(), [b, L, W]), [4, 6, 3]);
    // read directly (copied on demand)
    const src = g.fromHost(data.slice(), [b, L, W]);
    const pieces = g.split(src, [4, 6, 3]);
    for (let i = 0; i < 3; i++) await close(pieces[i], want[i], 0, `piece ${i}`);
    // the source disposed first: the pieces still read it (its block is kept until the last piece goes)
    const src2 = g.fromHost(data.slice(), [b, L, W]);
    const [p0, p1] = g.split(src2, [6, 7]);
    const w0 = cpu.split(cpu.fromHost(data.slice(), [b, L, W]), [6, 7]);
    src2.dispose();
    const filler = g.fromHost(rnd(b * L * W), [b, L, W]); // would take a freed block
    const conv = (x: Tensor, be: typeof cpu | WebGpuBackend) => be.causalConv1d({ x, weight: be.fromHost(Float32Array.from({ length: 6 * 4 }, (_, i) => Math.sin(i)), [6, 4]), bias: null, state: null, activation: 'silu' });
    await close(conv(p0, g), conv(w0[0], cpu), 1e-5, 'conv1d of a piece whose source was disposed');
    await close(p1, w0[1], 0, 'the other piece');
    p0.dispose();
    p1.dispose();
    filler.dispose();
    // the gated norm's z read in place (Mamba-2: z is the first columns of in_proj's output), 18 rows, groups of 4
    const zx = rnd(18 * 20), xv = rnd(18 * 8), wv = rnd(8);
    const [zg] = g.split(g.fromHost(zx.slice(), [18, 20]), [8, 12]);
    const [zc] = cpu.split(cpu.fromHost(zx.slice(), [18, 20]), [8, 12]);
    const yg = g.rmsNormGated(g.fromHost(xv.slice(), [18, 8]), zg, g.fromHost(wv.slice(), [8]), 1e-5, 4);
    await close(yg, cpu.rmsNormGated(cpu.fromHost(xv.slice(), [18, 8]), zc, cpu.fromHost(wv.slice(), [8]), 1e-5, 4), 1e-5, 'gated norm with z in place');
    assert.ok((zg.storage as { lazy: unknown }).lazy, 'z was read in place, not copied');
  });
});
