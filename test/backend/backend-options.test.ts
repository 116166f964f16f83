/**
 * Backend options are honoured or refused, never dropped silently. The prefill algorithms (`scan`, `ssd`):
 * - wasm runs the scan, the chunked SSD (its defaults) and the SSD recurrence in wasm, and the chunked scan and the
 *   quadratic SSD form with the CPU kernels, as asked: the same numbers as the CPU backend, and no wasm kernel call;
 * - WebGPU runs the recurrence when asked for it (one dispatch instead of the chunked algorithm's five), the chunked
 *   SSD on its 'simple' kernels too, and throws an UnsupportedAlgorithmError for the quadratic form;
 * - a model takes its backend's default algorithm when its options name none (`Backend.prefill`).
 * And: more wasm threads than the platform runs are refused; the browser's createBackend('webgpu') keeps `weights`.
 */
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { PREFILL_SUPPORT, UnsupportedAlgorithmError, type Backend, type SelectiveScanArgs, type SsdArgs } from '../../src/backend/backend.js';
import { cpu, CpuBackend } from '../../src/backend/cpu/index.js';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import { platform } from '../../src/backend/wasm/platform.js';
import { createBackend } from '../../src/browser.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { loadModel } from '../../src/api/load.js';
import { LoadOptionError } from '../../src/api/load-options.js';
import { readConfig } from '../../src/models/config-file.js';
import { buildModel } from '../../src/models/registry.js';
import { RandomTensorSource } from '../../src/models/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { hfFixture, maxAbsDiff, randomArray } from '../helpers.js';
import { useSoftwareVulkanIfNoDriverChosen, webgpuOrReason } from './webgpu-context.js';

const wasm = new WasmBackend({ threads: 2 });

/** the names of the wasm kernels `fn` runs */
function wasmKernels(fn: () => void): string[] {
  const rt = wasm.runtime;
  const names: string[] = [];
  const { run, runTeam } = rt;
  rt.run = function (this: typeof rt, kernel: string, ...rest: unknown[]) {
    names.push(kernel);
    return (run as (...a: unknown[]) => void).call(this, kernel, ...rest);
  } as typeof rt.run;
  rt.runTeam = function (this: typeof rt, kernel: string, ...rest: unknown[]) {
    names.push(kernel);
    return (runTeam as (...a: unknown[]) => void).call(this, kernel, ...rest);
  } as typeof rt.runTeam;
  try {
    fn();
  } finally {
    rt.run = run;
    rt.runTeam = runTeam;
  }
  return names;
}

// ---- small random inputs on any backend

const SSD = { b: 2, L: 23, nh: 4, hd: 3, G: 2, N: 5 };
function ssdArgs(be: Backend, algorithm: SsdArgs['algorithm'], state: Tensor | null = null): SsdArgs {
  const { b, L, nh, hd, G, N } = SSD;
  const t = (n: number, seed: number, shape: number[], scale = 1) => be.fromHost(randomArray(n, seed, scale), shape);
  return {
    x: t(b * L * nh * hd, 1, [b, L, nh, hd]), dt: t(b * L * nh, 2, [b, L, nh], 2), A: be.fromHost(randomArray(nh, 3).map((v) => -Math.exp(v)), [nh]),
    B: t(b * L * G * N, 4, [b, L, G, N], 0.5), C: t(b * L * G * N, 5, [b, L, G, N], 0.5), D: t(nh, 6, [nh]), dtBias: t(nh, 7, [nh]),
    dtLimit: [0, Infinity], state, algorithm, chunkSize: 8,
  };
}
const SSD_STATE = SSD.b * SSD.nh * SSD.hd * SSD.N;

const SCAN = { b: 2, L: 37, D: 6, N: 4 };
function scanArgs(be: Backend, algorithm: SelectiveScanArgs['algorithm'], state: Tensor | null = null): SelectiveScanArgs {
  const { b, L, D, N } = SCAN;
  const t = (n: number, seed: number, shape: number[]) => be.fromHost(randomArray(n, seed), shape);
  return {
    u: t(b * L * D, 11, [b, L, D]), delta: t(b * L * D, 12, [b, L, D]), A: be.fromHost(randomArray(D * N, 13).map((v) => -Math.exp(v)), [D, N]),
    B: t(b * L * N, 14, [b, L, N]), C: t(b * L * N, 15, [b, L, N]), D: t(D, 16, [D]), z: t(b * L * D, 17, [b, L, D]), deltaBias: t(D, 18, [D]),
    deltaSoftplus: true, state, algorithm, chunkSize: 8,
  };
}
const SCAN_STATE = SCAN.b * SCAN.D * SCAN.N;

describe('wasm: every prefill algorithm runs as asked', () => {
  it('ssd "quadratic" runs the CPU quadratic form (same numbers, state included), not the wasm recurrence', () => {
    const init = randomArray(SSD_STATE, 9);
    const cpuState = cpu.fromHost(init.slice(), [SSD.b, SSD.nh, SSD.hd, SSD.N]);
    const want = cpu.ssd(ssdArgs(cpu, 'quadratic', cpuState)).dataSync();
    const wasmState = wasm.fromHost(init.slice(), [SSD.b, SSD.nh, SSD.hd, SSD.N]);
    let got!: Float32Array;
    const kernels = wasmKernels(() => (got = wasm.ssd(ssdArgs(wasm, 'quadratic', wasmState)).dataSync()));
    assert.deepEqual(kernels, [], 'no wasm kernel ran');
    assert.ok(maxAbsDiff(got, want) <= 1e-5, `max |Δ| = ${maxAbsDiff(got, want)}`);
    assert.deepEqual(got, want, 'the very CPU kernel: bit-identical');
    assert.deepEqual(wasmState.dataSync(), cpuState.dataSync(), 'final state');
    // and it is not what the recurrence gives (the numbers differ in their last bits: another algorithm ran)
    let rec!: Float32Array;
    assert.deepEqual(wasmKernels(() => (rec = wasm.ssd(ssdArgs(wasm, 'recurrent')).dataSync())), ['ssd_scan']);
    const noState = cpu.ssd(ssdArgs(cpu, 'quadratic')).dataSync();
    assert.ok(maxAbsDiff(rec, noState) <= 1e-5, 'the two forms agree to rounding');
    assert.notDeepEqual(rec, noState, 'but are not the same computation');
  });

  it('ssd "chunked" runs the wasm chunked kernel (the CPU chunked form\'s numbers to rounding, state too); one token runs the wasm recurrence', () => {
    const init = randomArray(SSD_STATE, 9);
    const cpuState = cpu.fromHost(init.slice(), [SSD.b, SSD.nh, SSD.hd, SSD.N]);
    const want = cpu.ssd(ssdArgs(cpu, 'chunked', cpuState)).dataSync();
    const wasmState = wasm.fromHost(init.slice(), [SSD.b, SSD.nh, SSD.hd, SSD.N]);
    let got!: Float32Array;
    // (a prompt of 23: under the backend's default ssdChunkedMinLength, the recurrence; from 2 here)
    assert.deepEqual(wasmKernels(() => wasm.ssd(ssdArgs(wasm, 'chunked'))), ['ssd_scan']);
    const chunkedFrom2 = new WasmBackend({ threads: 2, ssdChunkedMinLength: 2 });
    assert.deepEqual(wasmKernels(() => (got = chunkedFrom2.ssd(ssdArgs(chunkedFrom2, 'chunked', wasmState)).dataSync())), ['ssd_chunked_rows']);
    assert.ok(maxAbsDiff(got, want) <= 1e-5, `max |Δ| = ${maxAbsDiff(got, want)}`);
    assert.ok(maxAbsDiff(wasmState.dataSync(), cpuState.dataSync()) <= 1e-5, 'final state');
    const one = (be: Backend): SsdArgs => {
      const a = ssdArgs(be, 'chunked');
      const { b, nh, hd, G, N } = SSD;
      const cut = (t: Tensor, w: number) => be.fromHost(t.dataSync().slice(0, b * w), [b, 1, ...t.shape.slice(2)]);
      return { ...a, x: cut(a.x, nh * hd), dt: cut(a.dt, nh), B: cut(a.B, G * N), C: cut(a.C, G * N) };
    };
    assert.deepEqual(wasmKernels(() => wasm.ssd(one(wasm))), ['ssd_scan'], 'L = 1 is the recurrence whatever the algorithm');
  });

  it('scan "chunked" (longer than a chunk) runs the CPU chunked scan; "sequential" runs the wasm kernel', () => {
    const init = randomArray(SCAN_STATE, 19);
    const cpuState = cpu.fromHost(init.slice(), [SCAN.b, SCAN.D, SCAN.N]);
    const want = cpu.selectiveScan(scanArgs(cpu, 'chunked', cpuState)).dataSync();
    const wasmState = wasm.fromHost(init.slice(), [SCAN.b, SCAN.D, SCAN.N]);
    let got!: Float32Array;
    assert.deepEqual(wasmKernels(() => (got = wasm.selectiveScan(scanArgs(wasm, 'chunked', wasmState)).dataSync())), []);
    assert.deepEqual(got, want, 'the CPU chunked scan: bit-identical');
    assert.deepEqual(wasmState.dataSync(), cpuState.dataSync(), 'final state');
    let seq!: Float32Array;
    assert.deepEqual(wasmKernels(() => (seq = wasm.selectiveScan(scanArgs(wasm, 'sequential')).dataSync())), ['selective_scan']);
    const cpuSeq = cpu.selectiveScan(scanArgs(cpu, 'sequential')).dataSync();
    assert.ok(maxAbsDiff(seq, cpuSeq) <= 1e-5, `sequential: max |Δ| = ${maxAbsDiff(seq, cpuSeq)}`);
  });
});

describe('a model runs its backend\'s default prefill unless told otherwise', () => {
  it('the backends list their algorithms, default first', () => {
    assert.deepEqual(cpu.prefill, PREFILL_SUPPORT.cpu);
    assert.deepEqual(wasm.prefill, PREFILL_SUPPORT.wasm);
    assert.equal(wasm.prefill.scan[0], 'sequential');
    assert.equal(wasm.prefill.ssd[0], 'chunked');
    assert.ok(!PREFILL_SUPPORT.webgpu.ssd.includes('quadratic' as never));
  });

  it('mamba-tiny and mamba2-tiny describe what runs: cpu chunked, wasm sequential / chunked, or what was asked', async () => {
    const d = async (name: string, opts: Parameters<typeof loadModel>[1]) => (await loadModel(hfFixture(name), { tokenizer: false, ...opts })).describe();
    assert.equal((await d('mamba-tiny', {})).prefill_scan, 'chunked');
    assert.equal((await d('mamba-tiny', { backend: 'wasm', threads: 2 })).prefill_scan, 'sequential');
    assert.equal((await d('mamba-tiny', { backend: 'wasm', threads: 2, scan: { algorithm: 'chunked' } })).prefill_scan, 'chunked');
    assert.equal((await d('mamba2-tiny', {})).prefill_ssd, 'chunked');
    assert.equal((await d('mamba2-tiny', { backend: 'wasm', threads: 2 })).prefill_ssd, 'chunked');
    assert.equal((await d('mamba2-tiny', { backend: 'wasm', threads: 2, ssd: { algorithm: 'recurrent' } })).prefill_ssd, 'recurrent');
    assert.equal((await d('mamba2-tiny', { backend: 'wasm', threads: 2, ssd: { algorithm: 'quadratic' } })).prefill_ssd, 'quadratic');
  });

  it('wasm with ssd "quadratic": the model\'s logits are the CPU model\'s, to the bit, on a prompt', async () => {
    const ids = [[1, 5, 9, 2, 7, 7, 3, 11, 4, 6, 8, 10]];
    const c = await loadModel(hfFixture('mamba2-tiny'), { tokenizer: false, ssd: { algorithm: 'quadratic' } });
    const w = await loadModel(hfFixture('mamba2-tiny'), { tokenizer: false, backend: 'wasm', threads: 2, ssd: { algorithm: 'quadratic' } });
    const [lc, lw] = [(await c.forward(ids)).logits.data, (await w.forward(ids)).logits.data];
    assert.ok(maxAbsDiff(lc, lw) <= 1e-4, `max |Δlogit| = ${maxAbsDiff(lc, lw)}`);
  });

  it('buildModel refuses an algorithm its backend does not run (a LoadOptionError naming option and backends)', () => {
    class RecurrentOnly extends CpuBackend {
      override readonly name = 'recurrent-only';
      override readonly prefill = { scan: ['sequential'], ssd: ['recurrent'], chunkSize: false } as const;
    }
    const be = new RecurrentOnly();
    const build = (fixture: string, opts: object) =>
      buildModel(readConfig(hfFixture(fixture)), `${fixture}/config.json`, new RandomTensorSource(1), { backend: be, ...opts });
    const refused = (fn: () => unknown, ...parts: string[]) =>
      assert.throws(fn, (e: unknown) => e instanceof LoadOptionError && parts.every((p) => e.message.includes(p)) || assert.fail(String(e)));
    refused(() => build('mamba2-tiny', { ssd: { algorithm: 'quadratic' } }), 'buildModel', '"ssd.algorithm" "quadratic"', '"recurrent-only"', '"cpu" or "wasm"');
    refused(() => build('mamba-tiny', { scan: { algorithm: 'chunked' } }), '"scan.algorithm" "chunked"', '"cpu" or "wasm" or "webgpu"');
    refused(() => build('mamba2-tiny', { ssd: { chunkSize: 16 } }), '"ssd.chunkSize"', 'chooses its own chunk lengths', '"cpu" or "wasm"');
    assert.equal(build('mamba-tiny', {}).describe().prefill_scan, 'sequential', 'the backend\'s default');
    assert.equal(build('mamba2-tiny', {}).describe().prefill_ssd, 'recurrent');
  });
});

// ---- WebGPU (skipped without an adapter)

const tiled = await webgpuOrReason({ kernels: 'tiled' });
const simple = typeof tiled === 'string' ? tiled : await webgpuOrReason({ kernels: 'simple' });
after(() => {
  if (typeof tiled !== 'string') tiled.destroy();
  if (typeof simple !== 'string') simple.destroy();
});

/** the dispatches `fn` records (counted when read) */
async function dispatches(g: WebGpuBackend, fn: () => Tensor): Promise<{ n: number; y: Float32Array }> {
  await g.zeros([1]).data(); // flush what is pending
  const before = g.rt.counters.dispatches;
  const y = await fn().data();
  return { n: g.rt.counters.dispatches - before, y };
}

describe('webgpu: the algorithm asked for runs, the quadratic SSD is refused', () => {
  const state = (g: Backend) => g.fromHost(randomArray(SSD_STATE, 9), [SSD.b, SSD.nh, SSD.hd, SSD.N]);
  it('tiled kernels: "recurrent" is one dispatch, "chunked" four (the fused SSD; five with the old one); both match the CPU', async (t: TestContext) => {
    if (typeof tiled === 'string') return t.skip(tiled);
    const want = cpu.ssd(ssdArgs(cpu, 'recurrent', state(cpu))).dataSync();
    const rec = await dispatches(tiled, () => tiled.ssd(ssdArgs(tiled, 'recurrent', state(tiled))));
    const dflt = tiled.ssdKernels;
    tiled.ssdKernels = 'fused';
    const chk = await dispatches(tiled, () => tiled.ssd(ssdArgs(tiled, 'chunked', state(tiled))));
    tiled.ssdKernels = 'old';
    const old = await dispatches(tiled, () => tiled.ssd(ssdArgs(tiled, 'chunked', state(tiled))));
    tiled.ssdKernels = dflt;
    assert.equal(rec.n, 1);
    assert.equal(chk.n, 4);
    assert.equal(old.n, 5);
    assert.ok(maxAbsDiff(rec.y, want) <= 5e-4 && maxAbsDiff(chk.y, want) <= 5e-4 && maxAbsDiff(old.y, want) <= 5e-4, `${maxAbsDiff(rec.y, want)}, ${maxAbsDiff(chk.y, want)}, ${maxAbsDiff(old.y, want)}`);
    assert.equal(tiled.prefill.ssd[0], 'chunked');
  });

  it('simple kernels: the recurrence by default (first), the chunked SSD when asked', async (t: TestContext) => {
    if (typeof simple === 'string') return t.skip(simple);
    assert.deepEqual(simple.prefill.ssd, ['recurrent', 'chunked']);
    const want = cpu.ssd(ssdArgs(cpu, 'chunked', state(cpu))).dataSync();
    const dflt = simple.ssdKernels;
    simple.ssdKernels = 'fused';
    const chk = await dispatches(simple, () => simple.ssd(ssdArgs(simple, 'chunked', state(simple))));
    simple.ssdKernels = dflt;
    assert.equal(chk.n, 4, 'the fused SSD: C·B, chunk states, state passing, output');
    assert.ok(maxAbsDiff(chk.y, want) <= 5e-4, `${maxAbsDiff(chk.y, want)}`);
  });

  it('scan "sequential" is the one-pass kernel (one dispatch), "chunked" the three-pass scan', async (t: TestContext) => {
    if (typeof tiled === 'string') return t.skip(tiled);
    const want = cpu.selectiveScan(scanArgs(cpu, 'sequential')).dataSync();
    const seq = await dispatches(tiled, () => tiled.selectiveScan(scanArgs(tiled, 'sequential')));
    const chk = await dispatches(tiled, () => tiled.selectiveScan(scanArgs(tiled, 'chunked')));
    assert.equal(seq.n, 2, 'a zero state and the scan'); // no state given: one fill
    assert.equal(chk.n, 3);
    assert.ok(maxAbsDiff(seq.y, want) <= 2e-4 && maxAbsDiff(chk.y, want) <= 2e-4);
  });

  it('ssd "quadratic" throws an UnsupportedAlgorithmError naming the backends that run it', async (t: TestContext) => {
    if (typeof tiled === 'string') return t.skip(tiled);
    assert.throws(() => tiled.ssd(ssdArgs(tiled, 'quadratic')), (e: unknown) => e instanceof UnsupportedAlgorithmError && /quadratic/.test(e.message) && /cpu and wasm/.test(e.message));
  });
});

describe('other backend options', () => {
  it('wasm: more threads than the platform can run (a browser page that is not cross-origin isolated: 1) are refused', () => {
    const max = platform.maxThreads;
    platform.maxThreads = () => 1;
    try {
      assert.throws(() => new WasmBackend({ threads: 2 }), (e: unknown) => e instanceof LoadOptionError && /"threads" 2/.test(e.message) && /cross-origin isolated/.test(e.message));
      assert.match(new WasmBackend({ threads: 1 }).name, /^wasm\(1 thread,/);
    } finally {
      platform.maxThreads = max;
    }
  });

  it('wasm: a stepPrefetch that is not a number of bytes >= 0, or a decode flag that is not a boolean, is refused by name', () => {
    for (const bad of [-1, Number.NaN, Infinity]) {
      assert.throws(() => new WasmBackend({ threads: 1, stepPrefetch: bad }), (e: unknown) => e instanceof LoadOptionError && /option "stepPrefetch" must be a number of bytes >= 0, got/.test(e.message));
    }
    for (const name of ['fuseProducts', 'stepOut', 'touchState', 'stepIn', 'm2TwoBarriers', 'm2EarlyBC'] as const) {
      assert.throws(() => new WasmBackend({ threads: 1, [name]: 'yes' as unknown as boolean }), (e: unknown) => e instanceof LoadOptionError && e.message.includes(`option "${name}" must be true or false, got "yes"`));
    }
    const be = new WasmBackend({ threads: 1, stepPrefetch: 4096, stepIn: false, fuseProducts: false, m2TwoBarriers: false });
    assert.deepEqual([be.stepPrefetch, be.stepIn, be.fuseProducts, be.m2TwoBarriers], [4096, false, false, false]);
  });

  it('browser createBackend("webgpu", { weights: "bf16" }) stores bf16 weights (the option reached the backend)', async (t: TestContext) => {
    if (typeof tiled === 'string') return t.skip(tiled);
    useSoftwareVulkanIfNoDriverChosen();
    const { create } = (await import('webgpu' as string)) as { create(flags: string[]): GPU };
    const g = globalThis as { navigator?: { gpu?: GPU } };
    const had = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
    Object.defineProperty(globalThis, 'navigator', { value: { ...(g.navigator ?? {}), gpu: create([]) }, configurable: true, writable: true });
    try {
      const b = (await createBackend('webgpu', { weights: 'bf16' })) as WebGpuBackend;
      assert.equal(b.weights, 'bf16');
      b.destroy();
      const f = (await createBackend('webgpu')) as WebGpuBackend;
      assert.equal(f.weights, 'f32');
      f.destroy();
    } finally {
      if (had) Object.defineProperty(globalThis, 'navigator', had);
      else delete g.navigator;
    }
  });
});
