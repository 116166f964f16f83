/**
 * The shared op cases (cases.ts) on every backend: forward results against the CPU reference backend; gradients
 * recorded by the tape against finite differences on the CPU backend, and on every other backend that trains
 * against the CPU's gradients. A backend that cannot differentiate refuses with a typed error.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { prefillSupport, UnsupportedAlgorithmError, type Backend, type DiffOp } from '../../src/backend/backend.js';
import { cpu } from '../../src/backend/cpu/index.js';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import { backward, withGrad } from '../../src/autograd/tape.js';
import { OpError } from '../../src/errors.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/generate/rng.js';
import { webgpuOrReason } from '../backend/webgpu-context.js';
import { FORWARD, GRADIENT, type OpCase } from './cases.js';

const gpu = await webgpuOrReason();
// the other kernel set too: a software adapter picks the barrier-free 'simple' kernels, a GPU the 'tiled' ones
const gpu2 = typeof gpu === 'string' ? gpu : await webgpuOrReason({ kernels: gpu.kernels === 'tiled' ? 'simple' : 'tiled' });
after(() => {
  for (const g of [gpu, gpu2]) if (typeof g !== 'string') g.destroy();
});
const BACKENDS: Array<[string, Backend | string]> = [
  ['wasm', new WasmBackend({ threads: 2 })],
  ['webgpu', gpu],
  [`webgpu (${typeof gpu2 === 'string' ? 'other' : gpu2.kernels} kernels)`, gpu2],
];

const maxAbs = (a: Float32Array): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** the case's input values (seeded by its label, the same on every backend) */
function inputData(c: OpCase, salt = 0): Float32Array[] {
  let h = 2166136261 ^ salt;
  for (const ch of c.label) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  const rng = new Rng(h);
  return c.inputs.map((s) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const lo = s.lo ?? -1;
    const hi = s.hi ?? 1;
    return Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.next());
  });
}

function upload(be: Backend, c: OpCase, data: Float32Array[]): Tensor[] {
  return c.inputs.map((s, i) => be.fromHost(data[i].slice(), s.shape, s.matrix ? { matrix: true } : undefined));
}

async function values(ts: Tensor[]): Promise<Float32Array[]> {
  return Promise.all(ts.map((t) => t.data()));
}

describe('forward: every backend = the CPU reference', () => {
  for (const [op, cases] of Object.entries(FORWARD)) {
    for (const c of cases) {
      for (const [name, be] of BACKENDS) {
        it(`${op} (${c.label}) on ${name}`, async (t) => {
          if (typeof be === 'string') return t.skip(be);
          const data = inputData(c);
          const want = await values(c.run(upload(cpu, c, data), cpu));
          const supported = !c.algorithm || (prefillSupport(be)[c.algorithm.op] as readonly string[]).includes(c.algorithm.name);
          if (!supported) {
            assert.throws(() => c.run(upload(be, c, data), be), (e: unknown) => e instanceof UnsupportedAlgorithmError && e.message.includes(c.algorithm!.name));
            return;
          }
          const got = await values(c.run(upload(be, c, data), be));
          assert.equal(got.length, want.length);
          got.forEach((g, k) => {
            assert.equal(g.length, want[k].length, `output ${k}: size`);
            let worst = 0;
            for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i] - want[k][i]));
            assert.ok(worst <= (c.tol ?? 2e-5), `output ${k}: max |Δ| ${worst}`);
          });
        });
      }
    }
  }
});

/** Σ_k seed_k · out_k with the case's inputs moved along `dir` by eps (no tape) */
async function objective(c: OpCase, data: Float32Array[], dir: Float32Array[], eps: number, seeds: Float32Array[]): Promise<number> {
  const moved = data.map((d, i) => (c.inputs[i].noGrad ? d : d.map((v, j) => v + eps * dir[i][j])));
  const outs = await values(c.run(upload(cpu, c, moved), cpu));
  let s = 0;
  outs.forEach((o, k) => o.forEach((v, j) => (s += v * seeds[k][j])));
  return s;
}

/** the tape's gradients of Σ seed·out with respect to every differentiable input (and the recorded outputs) */
async function tapeGradients(be: Backend, c: OpCase, data: Float32Array[], seeds: Float32Array[], outputs: Float32Array[] = []): Promise<Array<Float32Array | null>> {
  const xs = upload(be, c, data);
  xs.forEach((x, i) => (x.requiresGrad = !c.inputs[i].noGrad));
  const outs = await withGrad(() => c.run(xs, be));
  outs.forEach((o, k) => {
    if (o.requiresGrad) backward(o, seeds[k]);
  });
  outputs.push(...(await values(outs)));
  return Promise.all(xs.map((x, i) => (c.inputs[i].noGrad ? null : x.grad ? x.grad.data() : Promise.resolve(new Float32Array(x.size)))));
}

describe('gradients recorded by the tape', () => {
  for (const [op, cases] of Object.entries(GRADIENT)) {
    for (const c of cases) {
      it(`${op} (${c.label}): cpu = finite differences; other training backends = cpu`, async (t) => {
        const data = inputData(c);
        const rng = new Rng(99);
        const outShapes = c.run(upload(cpu, c, data), cpu).map((o) => o.size);
        const seeds = outShapes.map((n) => Float32Array.from({ length: n }, () => rng.next() * 2 - 1));
        const dir = data.map((d) => Float32Array.from(d, () => rng.next() * 2 - 1));
        const cpuOut: Float32Array[] = [];
        const grads = await tapeGradients(cpu, c, data, seeds, cpuOut);
        // each input's gradient on its own: the directional derivative along a random direction of that input
        for (let i = 0; i < data.length; i++) {
          const g = grads[i];
          if (!g) continue;
          let analytic = 0;
          g.forEach((v, j) => (analytic += v * dir[i][j]));
          const only = dir.map((d, k) => (k === i ? d : new Float32Array(d.length)));
          const eps = 1e-3;
          const numeric = ((await objective(c, data, only, eps, seeds)) - (await objective(c, data, only, -eps, seeds))) / (2 * eps);
          assert.ok(Math.abs(numeric - analytic) <= 3e-3 * Math.abs(numeric) + 3e-4, `input ${i}: directional derivative: tape ${analytic}, finite differences ${numeric}`);
        }
        assert.ok(grads.some((g) => g?.some((v) => v !== 0)), 'some gradient is non-zero');
        for (const [name, be] of BACKENDS) {
          if (typeof be === 'string' || !be.differentiable) continue;
          if (be.differentiableOps && !be.differentiableOps.has(op as DiffOp)) {
            await assert.rejects(
              async () => tapeGradients(be, c, data, seeds),
              (e: unknown) => e instanceof OpError && e.message.includes(be.name) && e.message.includes(op),
              `${name} does not train ${op}: it must refuse, naming the op`,
            );
            continue;
          }
          const otherOut: Float32Array[] = [];
          const other = await tapeGradients(be, c, data, seeds, otherOut);
          // the recorded forward (its own kernels on some backends) = the cpu's
          // (a device backend may add outputs the cpu keeps on the host, e.g. cross_entropy's count of correct rows)
          assert.ok(otherOut.length >= cpuOut.length, `${name}: ${otherOut.length} outputs, the cpu has ${cpuOut.length}`);
          cpuOut.forEach((_, k) => {
            const o = otherOut[k];
            let worst = 0;
            for (let j = 0; j < o.length; j++) worst = Math.max(worst, Math.abs(o[j] - cpuOut[k][j]));
            assert.ok(worst <= (c.tol ?? 2e-5) * Math.max(1, maxAbs(cpuOut[k])), `${name}: recorded output ${k} differs from the cpu's by ${worst}`);
          });
          other.forEach((g, i) => {
            if (!g) return;
            const ref = grads[i]!;
            const scale = Math.max(1e-6, maxAbs(ref));
            let worst = 0;
            for (let j = 0; j < g.length; j++) worst = Math.max(worst, Math.abs(g[j] - ref[j]) / scale);
            assert.ok(worst <= 1e-4, `${name}: gradient of input ${i} differs from the cpu's by ${worst} (relative)`);
          });
        }
        void t;
      });
    }
  }

  it('webgpu records every op the tape knows', (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const missing = (Object.keys(GRADIENT) as DiffOp[]).filter((op) => gpu.differentiableOps && !gpu.differentiableOps.has(op));
    assert.deepEqual(missing, []);
  });

  it('a backend without differentiable ops refuses to record, naming itself', async (t) => {
    if (typeof gpu === 'string') return t.skip(gpu);
    const x = gpu.fromHost(Float32Array.from([1, 2, 3]), [1, 3]);
    const w = gpu.fromHost(Float32Array.from([1, 0, 0, 0, 1, 0]), [2, 3], { matrix: true });
    w.requiresGrad = true;
    if ((gpu as Backend).differentiable) return; // it trains: covered by the comparison above
    await assert.rejects(
      async () => withGrad(() => FORWARD.linear[1].run([x, w], gpu)),
      (e: unknown) => e instanceof OpError && e.message.includes(gpu.name) && /differentiable/.test(e.message),
    );
  });
});
