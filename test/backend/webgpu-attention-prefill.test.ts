/**
 * The flash prefill attention kernel (kernels/attention_prefill.ts, `attention: 'flash'` with 'tiled' kernels) against
 * the CPU reference: lengths around its tiles (1, 17, 64, 65, 200), head dims 64 and 13 (zero-padded to 64), GQA
 * 12/4, a batch of 2 after cached prefixes of different lengths; the kernel that ran is checked by name (head dims
 * above 64 go to the training forward, as does `attention: 'flash1'`), and the variant choice by workgroup memory;
 * and the rotary table reused across a prefill's layers only for equal positions.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { AttentionArgs } from '../../src/backend/backend.js';
import { cpu } from '../../src/backend/cpu/index.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/backend.js';
import { ATTN_PREFILL, prefillAttentionBytes, prefillAttentionVariant } from '../../src/backend/webgpu/kernels/attention_prefill.js';
import { attentionArgs, maxAbsDiff, randomArray, type AttentionDims } from '../helpers.js';
import { kernelsOf, webgpuOrReason } from './webgpu-context.js';

const tiled = await webgpuOrReason({ kernels: 'tiled' });
after(() => {
  if (typeof tiled !== 'string') tiled.destroy();
});

let seed = 5;
const rnd = (n: number, amp = 1) => randomArray(n, seed++ * 7919, amp);

interface Case extends AttentionDims {
  /** cache capacity (0: no cache) */
  T: number;
  past: number[];
  /** amplitude of q and k (large scores test the running max) */
  amp?: number;
}

/** runs one case on `g` and the CPU; returns the max |Δ| and the kernels `g` recorded */
async function run(g: WebGpuBackend, c: Case): Promise<{ d: number; names: string[] }> {
  const { b, L, Hq, Hkv, hd, T, past } = c;
  const q = rnd(b * L * Hq * hd, c.amp), k = rnd(b * L * Hkv * hd, c.amp), v = rnd(b * L * Hkv * hd);
  const ck = T ? rnd(b * T * Hkv * hd, c.amp) : null, cv = T ? rnd(b * T * Hkv * hd) : null;
  const args = (be: typeof cpu | WebGpuBackend): AttentionArgs => attentionArgs(be, c, q, k, v, past, ck, cv);
  const { result: got, names } = await kernelsOf(g, async () => g.attention(args(g)).data());
  const want = cpu.attention(args(cpu)).dataSync();
  return { d: maxAbsDiff(got, want), names };
}

const label = (c: Case) => `b${c.b} L${c.L} Hq${c.Hq} Hkv${c.Hkv} hd${c.hd} T${c.T} past ${c.past}${c.amp ? ` amp ${c.amp}` : ''}`;

function withGpu(name: string, fn: (g: WebGpuBackend) => Promise<void>): void {
  it(name, async (t: TestContext) => {
    if (typeof tiled === 'string') return t.skip(tiled);
    await fn(tiled);
  });
}

describe('webgpu flash prefill attention (tiled) vs the CPU reference (≤ 1e-4)', () => {
  const cases: Case[] = [
    ...[1, 17, 64, 65, 200].map((L): Case => ({ b: 1, L, Hq: 12, Hkv: 4, hd: 64, T: 0, past: [0] })),
    { b: 1, L: 65, Hq: 6, Hkv: 2, hd: 13, T: 0, past: [0] }, // odd head dim (zero-padded to 64)
    { b: 2, L: 37, Hq: 12, Hkv: 4, hd: 64, T: 160, past: [45, 0] }, // after cached prefixes of different lengths
    { b: 2, L: 70, Hq: 4, Hkv: 4, hd: 64, T: 200, past: [3, 101] }, // the diagonal crosses mid-tile, MHA
    { b: 1, L: 96, Hq: 2, Hkv: 1, hd: 32, T: 0, past: [0], amp: 6 }, // large scores: the running max moves
  ];
  for (const c of cases) {
    withGpu(label(c), async (g) => {
      const { d, names } = await run(g, c);
      assert.ok(d <= 1e-4, `${label(c)}: max |Δ| = ${d}`);
      if (c.L > 1) assert.ok(names.includes('attention_prefill'), `${label(c)}: ran ${names.join(', ')}`);
      else assert.ok(!names.includes('attention_prefill'), `decode runs the decode kernel, not ${names.join(', ')}`);
    });
  }

  withGpu('head dim 128: the training forward (the prefill kernel takes ≤ 64), still exact', async (g) => {
    const c: Case = { b: 1, L: 40, Hq: 2, Hkv: 1, hd: 128, T: 0, past: [0] };
    const { d, names } = await run(g, c);
    assert.ok(d <= 1e-4, `max |Δ| = ${d}`);
    assert.ok(names.includes('attention_train_fwd') && !names.includes('attention_prefill'), names.join(', '));
  });

  withGpu("attention: 'flash1' runs the training forward (the kernel before), same results", async (g) => {
    const c: Case = { b: 2, L: 65, Hq: 12, Hkv: 4, hd: 64, T: 80, past: [7, 0] };
    g.attentionKernels = 'flash1';
    try {
      const { d, names } = await run(g, c);
      assert.ok(d <= 1e-4, `max |Δ| = ${d}`);
      assert.ok(names.includes('attention_train_fwd') && !names.includes('attention_prefill'), names.join(', '));
      assert.equal(g.prefillAttentionKernel(64), null);
    } finally {
      g.attentionKernels = 'flash';
    }
    assert.equal(g.prefillAttentionKernel(64), prefillAttentionVariant(64, g.rt.maxWorkgroupStorage));
  });

  withGpu("attention: 'flash-q32' runs the prefill kernel with 32-query tiles", async (g) => {
    g.attentionKernels = 'flash-q32';
    try {
      assert.equal(g.prefillAttentionKernel(64), 'q32');
      const { d, names } = await run(g, { b: 1, L: 33, Hq: 4, Hkv: 2, hd: 64, T: 0, past: [0] });
      assert.ok(d <= 1e-4, `max |Δ| = ${d}`);
      assert.ok(names.includes('attention_prefill'), names.join(', '));
    } finally {
      g.attentionKernels = 'flash';
    }
  });
});

describe('webgpu rope: the cos/sin table of the last positions is reused, and only for the same positions', () => {
  withGpu('positions A, B, A, A with another rotary dim / theta: each equal to the CPU', async (g) => {
    const [b, L, H, hd] = [2, 9, 3, 16];
    const x = rnd(b * L * H * hd);
    const A = Int32Array.from({ length: b * L }, (_, i) => (i % L) + (i < L ? 0 : 5));
    const B = A.map((p) => p + 1);
    for (const [pos, rd, theta] of [[A, 16, 10000], [B, 16, 10000], [A, 16, 10000], [A, 8, 10000], [A, 8, 500]] as const) {
      const got = await g.rope(g.fromHost(x.slice(), [b, L, H, hd]), pos, rd, theta).data();
      const want = cpu.rope(cpu.fromHost(x.slice(), [b, L, H, hd]), pos, rd, theta).dataSync();
      assert.ok(maxAbsDiff(got, want) <= 1e-5, `positions ${pos.slice(0, 3)}…, rotary dim ${rd}, theta ${theta}: max |Δ| ${maxAbsDiff(got, want)}`);
    }
  });
});

describe('webgpu flash prefill attention: variants', () => {
  it('the largest tile that fits the workgroup memory; head dims above 64 do not apply', () => {
    assert.equal(prefillAttentionBytes('q32'), 32768);
    assert.equal(prefillAttentionBytes('q64'), 49152);
    assert.equal(prefillAttentionVariant(64, 49152), 'q64');
    assert.equal(prefillAttentionVariant(13, 32768), 'q32');
    assert.equal(prefillAttentionVariant(64, 16384), null);
    assert.equal(prefillAttentionVariant(65, 65536), null);
  });

  it('WGSL of each variant: workgroup size and memory; a bad variant is refused by name', () => {
    assert.match(ATTN_PREFILL.wgsl('q64'), /@workgroup_size\(256\)/);
    assert.match(ATTN_PREFILL.wgsl('q32'), /@workgroup_size\(128\)/);
    assert.throws(() => ATTN_PREFILL.wgsl('q16'), /attention_prefill: bad variant "q16"/);
  });
});
