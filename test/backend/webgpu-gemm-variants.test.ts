/**
 * The blocked GEMM's code variants (kernels/gemm_blocked.ts flags, session 30: '_v' vec4 activations through a second
 * binding of x, '_m' A staged m-major, '_g' A broadcast by subgroupShuffle, '_b1' one slice buffer, '_w<G>' rasterised
 * workgroups) and larger per-thread tiles, each against the CPU on odd shapes (rows, columns and K past a tile and not
 * a multiple of it), split-K or not, f32 vectors, scalars and bf16; and the tuned table (`gemmTuned`) through
 * `backend.linear`. SwiftShader: subgroups of 4, so the '_g' tiles have 4 threads per row of threads.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cpu } from '../../src/backend/cpu/index.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createWebGpuBackend, type WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { MATMUL_BLOCKED, SPLITK_REDUCE, blockedDeviceError, blockedWorkgroupBytes, checkTuned, parseBlocked, tunedChoice } from '../../src/backend/webgpu/kernels/gemm_blocked.js';
import type { Store } from '../../src/backend/webgpu/runtime.js';
import { generateWgsl } from '../../src/backend/webgpu/wgsl.js';
import { bf16ToF32, f32ToBf16 } from '../../src/tensor/dtype.js';
import { hfFixture, maxAbsDiff, randomArray } from '../helpers.js';
import { loadModel } from '../../src/index.js';
import { webgpuOrReason } from './webgpu-context.js';

const gpu = await webgpuOrReason({ kernels: 'tiled' });
const gpuBf16 = typeof gpu === 'string' ? gpu : await webgpuOrReason({ kernels: 'tiled', weights: 'bf16' });
after(() => {
  for (const g of [gpu, gpuBf16]) if (typeof g !== 'string') g.destroy();
});

let seed = 11;
const rnd = (n: number) => randomArray(n, seed++ * 7919, 1);
const roundBf16 = (a: Float32Array): Float32Array => a.map((v) => bf16ToF32(f32ToBf16(v)));
const st = (t: { storage: unknown }) => t.storage as Store;

function reference(x: Float32Array, w: Float32Array, bias: Float32Array, M: number, K: number, N: number): Float32Array {
  return cpu.linear(cpu.fromHost(x, [M, K]), cpu.fromHost(w, [N, K]), cpu.fromHost(bias, [N])).dataSync();
}

/**
 * one product recorded directly (`splits` K ranges: partials + reduce when > 1); `vec`: x passed again as `xv` with
 * XV = 1 (its offset must be a multiple of 4), else the dummy and XV = 0 (the scalar fallback of '_v')
 */
async function run(g: WebGpuBackend, base: string, fmt: 'f' | 'b' | 'x', splits: number, vec: boolean, M: number, K: number, N: number): Promise<number> {
  const c = parseBlocked(base + fmt);
  const x = rnd(M * K), w = rnd(N * K), bias = rnd(N);
  const xt = g.fromHost(x, [M, K]), wt = g.fromHost(w, [N, K], { matrix: true }), bt = g.fromHost(bias, [N]), y = g.zeros([M, N]);
  if (vec) assert.equal(st(xt).off % 4, 0, 'x at a whole vector');
  const xv = vec ? st(xt) : g.rt.dummy;
  const kc = Math.ceil(Math.ceil(K / splits) / c.bk) * c.bk, S = Math.ceil(K / kc);
  const grid: [number, number, number] = [Math.ceil(N / c.bn), Math.ceil(M / c.bm), S];
  if (S === 1) {
    g.rt.record({ spec: MATMUL_BLOCKED, variant: base + fmt, roles: [st(xt), st(wt), st(bt), st(y), xv], params: [M, K, N, 0, N, 1, K, K, vec ? 1 : 0], grid });
  } else {
    const part = g.zeros([S * M * N]);
    g.rt.record({ spec: MATMUL_BLOCKED, variant: base + fmt + 's', roles: [st(xt), st(wt), g.rt.dummy, st(part), xv], params: [M, K, N, 0, N, 0, kc, K, vec ? 1 : 0], grid });
    g.rt.record({ spec: SPLITK_REDUCE, variant: '', roles: [st(part), st(bt), st(y)], params: [M, N, 0, N, 1, S], grid: g.rt.grid(Math.ceil((M * N) / 256)) });
    part.dispose();
  }
  const got = await y.data();
  for (const t of [xt, wt, bt, y]) t.dispose();
  return maxAbsDiff(got, reference(x, fmt === 'b' ? roundBf16(w) : w, bias, M, K, N));
}

function withGpu(name: string, fn: (g: WebGpuBackend, b: WebGpuBackend) => Promise<void>): void {
  it(name, async (t: TestContext) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    if (typeof gpuBf16 === 'string') return t.skip(gpuBf16);
    await fn(gpu, gpuBf16);
  });
}

/** [variant base, format, splits, x as vec4s]: every flag at least once, split and not, a ragged last K slice */
const CASES: [string, 'f' | 'b' | 'x', number, boolean][] = [
  ['64x64k16t4x4_v', 'x', 3, false], // the fallback of '_v': scalar x loads (XV = 0), scalar weights, split
  ['64x64k16t4x4_m_v_q8', 'f', 3, true],
  ['64x64k16t4x4_m', 'b', 1, false],
  ['64x64k32t4x4_b1', 'f', 1, false],
  ['64x64k16t4x4_m_b1_w4', 'f', 2, false], // 6 row tiles: groups of 4 and of 2
  ['64x128k8t8x16_q4', 'f', 1, false], // 8×16 outputs per thread, warp tiling 4 × 8
  ['128x64k8t16x8_v_w2', 'f', 1, true], // 16×8, rasterised
  ['128x16k8t4x4_g', 'f', 1, false], // A broadcast by subgroupShuffle (4 threads per row of threads)
  ['64x16k16t8x4_g_v_b1', 'b', 2, true],
];

describe('webgpu blocked GEMM code variants against the CPU', () => {
  withGpu(`${CASES.length} variants on odd shapes (split or not, f32 vectors / scalars / bf16)`, async (g, gb) => {
    for (const [base, fmt, splits, vec] of CASES) {
      const c = parseBlocked(base + fmt);
      const dev = blockedDeviceError(c, g.rt.maxWorkgroupStorage, g.rt.subgroupFixed);
      if (dev) {
        // '_g' where the adapter has no fixed subgroup size of 4·k: refused with the reason, not run
        assert.ok(c.opts?.sg, `${base}: ${dev}`);
        assert.match(dev, /flag _g needs a fixed subgroup size/);
        continue;
      }
      const M = (c.opts?.swz === 4 ? 5 : 1) * c.bm + 3, N = c.bn + 5, K = (fmt === 'x' ? 3 : 4) * c.bk + (fmt === 'x' ? 7 : 8);
      const d = await run(fmt === 'b' ? gb : g, base, fmt, splits, vec, M, K, N);
      assert.ok(d <= 1e-4, `${base}${fmt} split ${splits}${vec ? ' vec4 x' : ''} ${M}×${K}×${N}: max |Δ| = ${d}`);
    }
  });

  it('flags: parsed, refused with the reason, workgroup bytes, WGSL (typed second binding of x, no A buffer with _g)', () => {
    assert.deepEqual(parseBlocked('128x128k16t8x8_v_m_b1_w8fs').opts, { vx: true, am: true, single: true, swz: 8 });
    assert.equal(parseBlocked('128x128k16t8x8_v_m_b1_w8fs').split, true);
    assert.throws(() => parseBlocked('64x64k16t4x4_zf'), /unknown flag _z/);
    assert.throws(() => parseBlocked('64x64k16t4x4_m_gf'), /_m and _g exclude each other/);
    assert.throws(() => parseBlocked('64x64k16t4x4_w0f'), /unknown flag _w0/);
    assert.throws(() => parseBlocked('64x64k16t4x4_q32f'), /flag _q32: W must divide 32 and the 16 threads of a row/);
    assert.throws(() => parseBlocked('128x16k8t4x4_g_q4f'), /_q and _g exclude each other/);
    const plain = parseBlocked('64x64k16t4x4f');
    assert.equal(blockedWorkgroupBytes(parseBlocked('64x64k16t4x4_b1f')) * 2, blockedWorkgroupBytes(plain));
    assert.equal(blockedWorkgroupBytes(parseBlocked('64x64k16t4x4_gf')), 2 * 16 * 68 * 4);
    assert.equal(blockedWorkgroupBytes(parseBlocked('64x64k16t4x4_mf')), 2 * (64 * 20 + 16 * 68) * 4);
    assert.match(blockedDeviceError(parseBlocked('128x128k8t8x8_gf'), 65536, 0) ?? '', /fixed subgroup size that its 16 threads/);
    assert.equal(blockedDeviceError(parseBlocked('128x128k8t8x8_gf'), 65536, 32), null);
    assert.match(blockedDeviceError(parseBlocked('128x128k32t8x8f'), 32768, 32) ?? '', /needs 67584 bytes/);
    const v = generateWgsl(MATMUL_BLOCKED, '128x128k8t8x8_v_w8f', [0, 1, 2, 3, 4], 'rrrwr');
    assert.match(v, /b4: array<vec4<f32>>/);
    assert.match(v, /if \(XV != 0u\) \{ ra0 = b4\[p \/ 4u\]; \}/);
    assert.match(v, /num_workgroups/);
    const sg = generateWgsl(MATMUL_BLOCKED, '128x128k8t8x8_gf', [0, 1, 2, 3, 2], 'rrrw');
    assert.match(sg, /^enable subgroups;/);
    assert.doesNotMatch(sg, /var<workgroup> As/);
    assert.match(sg, /subgroupShuffle\(ga0, sb \+ 15u\)/);
    for (const code of [v, sg]) assert.doesNotMatch(code, /\b(let|var) b[0-9]+\b/, 'no local shadows a buffer');
  });
});

describe("webgpu '_v' in a model: outputs apart from x (the side pool), logits equal", () => {
  withGpu('llama-tiny, 130-token prefill: every blocked product read x as vec4s; last logits = the tiled kernels’ (≤ 1e-4)', async (g) => {
    const saved = [g.gemm, g.blockedConfig] as const;
    const counts = [0, 0];
    const record = g.rt.record.bind(g.rt);
    g.rt.record = (d) => {
      if (d.spec === MATMUL_BLOCKED) counts[d.params[8]]++;
      record(d);
    };
    try {
      const lm = (await loadModel(hfFixture('llama-tiny'), { backend: g })).lm;
      const ids = Array.from({ length: 130 }, (_, i) => (i * 7 + 3) % 90);
      g.gemm = 'tiled';
      const want = (await lm.advance([ids], lm.createState(1))).data.slice();
      g.gemm = 'blocked';
      g.blockedConfig = '64x64k16t4x4_v';
      const got = (await lm.advance([ids], lm.createState(1))).data.slice();
      assert.ok(counts[1] > 0 && counts[0] === 0, `XV = 1 in ${counts[1]} products, 0 in ${counts[0]}`);
      const d = maxAbsDiff(got, want);
      assert.ok(d <= 1e-4, `max |Δlogit| = ${d}`);
    } finally {
      g.rt.record = record;
      [g.gemm, g.blockedConfig] = saved;
    }
  });
});

describe('webgpu tuned GEMM table (gemmTuned)', () => {
  it('keys and choices: exact M first, then KxN for prefill; checked with the entry named', () => {
    const t = checkTuned({ '768x3352': '64x64k16t4x4_v', '300x768x3352': 'tiled', '768x3352:bf16': 'p128x64@2' }, 'test');
    assert.equal(tunedChoice(t, 2048, 768, 3352, 'f32'), '64x64k16t4x4_v');
    assert.equal(tunedChoice(t, 300, 768, 3352, 'f32'), 'tiled');
    assert.equal(tunedChoice(t, 64, 768, 3352, 'f32'), undefined, 'KxN keys are for more than 128 rows');
    assert.equal(tunedChoice(t, 2048, 768, 3352, 'bf16'), 'p128x64@2');
    assert.equal(tunedChoice(t, 2048, 768, 3352, 'q8'), undefined);
    assert.throws(() => checkTuned({ '768': 'tiled' }, 'gemmTuned'), /gemmTuned: key "768" is not MxKxN or KxN/);
    assert.throws(() => checkTuned({ '768x768': '64x64k16t6x4' }, 'gemmTuned'), /gemmTuned\[768x768\] = "64x64k16t6x4": .*multiples of 4/);
    assert.throws(() => checkTuned({ '768x768:bf16': '64x64k4t4x4' }, 'gemmTuned'), /BK 4 \(a multiple of 8\)/);
    assert.throws(() => checkTuned({ '768x768': 'p64@0' }, 'gemmTuned'), /positive integer/);
    assert.throws(() => checkTuned([], 'gemmTuned'), /must be an object/);
  });

  withGpu('MAMBA_TS_WEBGPU_GEMM_TUNED: a table or a sweep JSON read at creation; a bad entry names the file and key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gemm-tuned-'));
    const saved = process.env.MAMBA_TS_WEBGPU_GEMM_TUNED;
    try {
      const sweep = join(dir, 'sweep.json'), bad = join(dir, 'bad.json');
      writeFileSync(sweep, JSON.stringify({ bench: 'gemm-sweep', tuned: { '768x3352': '128x64k16t8x4_v_w8@2', '1536x768': 'tiled' } }));
      writeFileSync(bad, JSON.stringify({ '768x3352': '128x64k16t8x4_q' }));
      process.env.MAMBA_TS_WEBGPU_GEMM_TUNED = sweep;
      const b = await createWebGpuBackend({ kernels: 'tiled' });
      assert.deepEqual(b.gemmTuned, { '768x3352': '128x64k16t8x4_v_w8@2', '1536x768': 'tiled' });
      assert.match(b.gemmKernel(2048, 3352, false, 768).name, /^blocked 128x64k16t8x4_v_w8 split 2 \(tuned\)$/);
      b.destroy();
      process.env.MAMBA_TS_WEBGPU_GEMM_TUNED = bad;
      await assert.rejects(createWebGpuBackend({ kernels: 'tiled' }), /MAMBA_TS_WEBGPU_GEMM_TUNED=.*bad\.json\[768x3352\] = "128x64k16t8x4_q": .*unknown flag _q/);
      process.env.MAMBA_TS_WEBGPU_GEMM_TUNED = join(dir, 'missing.json');
      await assert.rejects(createWebGpuBackend({ kernels: 'tiled' }), /MAMBA_TS_WEBGPU_GEMM_TUNED=.*missing\.json: ENOENT/);
    } finally {
      if (saved === undefined) delete process.env.MAMBA_TS_WEBGPU_GEMM_TUNED;
      else process.env.MAMBA_TS_WEBGPU_GEMM_TUNED = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  withGpu('backend.linear takes the table: a blocked variant (vec4 x, split) for one shape, tiled for another, equal to the CPU', async (g) => {
    const saved = [g.gemm, g.gemmTuned, g.fuse] as const;
    g.fuse = false;
    g.gemm = 'tiled';
    try {
      g.gemmTuned = { '136x133': '64x64k16t4x4_m_v@2', '200x136x67': 'tiled', '20x72x40': '32x64k32t4x4_v' };
      for (const [M, K, N, name] of [[200, 136, 133, /^blocked 64x64k16t4x4_m_v split 2 \(tuned\)$/], [200, 136, 67, /^tiled/], [20, 72, 40, /^blocked 32x64k32t4x4_v \(tuned\)$/], [150, 72, 40, /^tiled/]] as const) {
        assert.match(g.gemmKernel(M, N, false, K).name, name, `${M}×${K}×${N}`);
        const x = rnd(M * K), w = rnd(N * K), b = rnd(N);
        const ran: string[] = [];
        const record = g.rt.record.bind(g.rt);
        g.rt.record = (d) => {
          if (d.spec === MATMUL_BLOCKED) ran.push(`${d.variant} XV=${d.params[8]}`);
          record(d);
        };
        try {
          const y = g.linear(g.fromHost(x, [M, K]), g.fromHost(w, [N, K], { matrix: true }), g.fromHost(b, [N]));
          const d = maxAbsDiff(await y.data(), reference(x, w, b, M, K, N));
          assert.ok(d <= 1e-4, `${M}×${K}×${N}: max |Δ| = ${d} (${ran.join(', ')})`);
        } finally {
          g.rt.record = record;
        }
        if (String(name).includes('blocked')) assert.equal(ran.length, 1, `${M}×${K}×${N} ran ${ran.join(', ')}`);
        else assert.equal(ran.length, 0);
      }
      assert.throws(() => {
        g.gemmTuned = { '768x768': 'huge' };
      }, /gemmTuned\[768x768\] = "huge"/);
    } finally {
      [g.gemm, g.gemmTuned, g.fuse] = saved;
    }
  });
});
