/**
 * The error classes: every one extends MambaTsError, whose `name` is the subclass's; both entries export the
 * base; the CLI prints any of them as one line (UsageError with its usage hint); autograd's shape and argument
 * errors are typed; ops, and models given a state, refuse tensors of another backend with a
 * BackendMismatchError that names the argument.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeEntry from '../src/index.js';
import * as browserEntry from '../src/browser.js';
import { BackendMismatchError, MambaTsError, OpError, ShapeError } from '../src/errors.js';
import { WasmMemoryError } from '../src/backend/wasm/runtime.js';
import { WebGpuUnavailableError } from '../src/backend/webgpu/index.js';
import { TaskError } from '../src/train/tasks.js';
import { DataError } from '../src/train/data-error.js';
import { PlotError } from '../src/train/plot.js';
import { ScheduleError } from '../src/train/schedule.js';
import { CheckpointError } from '../src/train/checkpoint.js';
import { OptimizerError } from '../src/train/optim.js';
import { RunFolderError, TrainError } from '../src/train/errors.js';
import { ModelError } from '../src/models/errors.js';
import { LoadOptionError } from '../src/api/load-options.js';
import { CliError, UsageError } from '../src/cli/args.js';
import { TokenizerError } from '../src/tokenizer/core.js';
import { SamplingError } from '../src/generate/sampling.js';
import { GenerationError } from '../src/generate/generate.js';
import { SafetensorsError } from '../src/io/safetensors-format.js';
import * as ops from '../src/tensor/ops.js';
import { report } from '../src/cli/main.js';
import * as ag from '../src/autograd/ops.js';
import * as fused from '../src/autograd/fused.js';
import { backward, constant, param } from '../src/autograd/var.js';
import { CpuBackend, cpu } from '../src/backend/cpu/index.js';
import { WasmBackend } from '../src/backend/wasm/index.js';
import { loadModel } from '../src/api/load.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { hfFixture } from './helpers.js';

/** each class with the name it must keep (public API) */
const CLASSES: Array<[new (message: string) => Error, string]> = [
  [WasmMemoryError, 'WasmMemoryError'], [WebGpuUnavailableError, 'WebGpuUnavailableError'], [TaskError, 'TaskError'],
  [DataError, 'DataError'], [PlotError, 'PlotError'], [ScheduleError, 'ScheduleError'], [CheckpointError, 'CheckpointError'],
  [OptimizerError, 'OptimizerError'], [TrainError, 'TrainError'], [ModelError, 'ModelError'], [LoadOptionError, 'LoadOptionError'],
  [UsageError, 'UsageError'], [CliError, 'CliError'], [TokenizerError, 'TokenizerError'], [SamplingError, 'SamplingError'],
  [GenerationError, 'GenerationError'], [ShapeError, 'ShapeError'], [SafetensorsError, 'SafetensorsError'],
  [OpError, 'OpError'], [BackendMismatchError, 'BackendMismatchError'],
];

function capture(): { io: Parameters<typeof report>[1]; err: () => string } {
  let err = '';
  return { io: { stdout: { write: () => true }, stderr: { write: (s: string) => ((err += s), true) } }, err: () => err };
}

describe('error classes', () => {
  it('every error class extends MambaTsError and is named after its class', () => {
    for (const [C, name] of CLASSES) {
      const e = new C('boom');
      assert.ok(e instanceof MambaTsError, `${name} extends MambaTsError`);
      assert.ok(e instanceof Error);
      assert.equal(e.name, name);
      assert.equal(String(e), `${name}: boom`);
    }
    const sub = new RunFolderError('in use', '/tmp/x');
    assert.ok(sub instanceof TrainError && sub instanceof MambaTsError);
    assert.equal(sub.name, 'RunFolderError');
    assert.ok(new ShapeError('x') instanceof OpError && new BackendMismatchError('x') instanceof OpError);
  });

  it('the Node and browser entries export the base and the op errors (the same classes ops.ts throws)', () => {
    for (const entry of [nodeEntry, browserEntry]) {
      assert.equal(entry.MambaTsError, MambaTsError);
      assert.equal(entry.OpError, OpError);
      assert.equal(entry.ShapeError, ShapeError);
      assert.equal(entry.BackendMismatchError, BackendMismatchError);
    }
    assert.equal(ops.ShapeError, ShapeError);
  });

  it('the CLI prints every typed error as one line, exit 1; UsageError keeps exit 2 and its usage hint', () => {
    for (const [C, name] of CLASSES) {
      if (C === UsageError) continue;
      const { io, err } = capture();
      assert.equal(report(new C('boom'), io), 1, name);
      assert.equal(err(), 'mamba-ts: error: boom\n', `${name}: one line, no stack`);
    }
    const usage = capture();
    assert.equal(report(new UsageError('bad option', 'generate'), usage.io), 2);
    assert.equal(usage.err(), "mamba-ts: error: bad option\nRun 'mamba-ts generate --help' for usage.\n");
    const internal = capture();
    assert.equal(report(new Error('bug'), internal.io), 1);
    assert.match(internal.err(), /^mamba-ts: internal error: bug\n.*\n\s+at /s, 'a plain Error is still internal, with its stack');
  });
});

describe('autograd errors are typed', () => {
  const v = (shape: number[]) => param('p', new Float64Array(shape.reduce((a, b) => a * b, 1)), shape);
  it('shape mismatches in elementary and fused ops are ShapeErrors naming the op', () => {
    assert.throws(() => ag.add(v([2, 3]), v([2])), (e: Error) => e instanceof ShapeError && /^add: shapes \[2, 3\] and \[2\]/.test(e.message));
    assert.throws(() => ag.linear(v([2, 3]), v([2, 4])), (e: Error) => e instanceof ShapeError && /^linear:/.test(e.message));
    assert.throws(() => fused.causalConv1d(v([1, 4, 3]), v([2, 2]), null), (e: Error) => e instanceof ShapeError && /^causal_conv1d: w \[2, 2\]/.test(e.message));
    assert.throws(() => param('w', new Float64Array(5), [2, 3]), (e: Error) => e instanceof ShapeError && /data has 5 values/.test(e.message));
    assert.throws(() => ag.embedding(v([4, 2]), Int32Array.from([7]), [1, 2]), (e: Error) => e instanceof ShapeError && /token id 7/.test(e.message));
  });
  it('backward of a loss without parameters is an OpError, not a shape error', () => {
    assert.throws(() => backward(ag.sum(constant(new Float64Array(3), [3]))), (e: Error) => e instanceof OpError && !(e instanceof ShapeError) && /does not depend on any parameter/.test(e.message));
  });
});

describe('tensors of two backends', () => {
  const wasm = new WasmBackend({ threads: 1 });
  const on = (be: typeof cpu | WasmBackend, shape: number[]): Tensor => be.fromHost(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
  const mismatch = (op: string, arg: string, ...names: RegExp[]) => (e: Error) => {
    assert.ok(e instanceof BackendMismatchError, `expected BackendMismatchError, got ${e.name}: ${e.message}`);
    assert.ok(e.message.startsWith(`${op}: ${arg} is on `), e.message);
    for (const n of names) assert.match(e.message, n);
    return true;
  };

  it('an op given tensors of two backends throws BackendMismatchError naming the op, the argument and both backends', () => {
    assert.throws(() => ops.linear(on(cpu, [2, 3]), on(wasm, [4, 3])), mismatch('linear', 'w', /backend wasm\(1 thread/, /x on cpu/));
    assert.throws(() => ops.linear(on(wasm, [2, 3]), on(wasm, [4, 3]), on(cpu, [4])), mismatch('linear', 'bias', /backend cpu/, /x on wasm/));
    assert.throws(() => ops.add(on(cpu, [2, 3]), on(new CpuBackend(), [2, 3])), mismatch('add', 'b', /another cpu backend instance than a/));
    assert.throws(() => ops.concatRows([on(wasm, [1, 3]), on(wasm, [1, 3]), on(cpu, [1, 3])]), mismatch('concat_rows', 'ts[2]', /backend cpu/));
  });

  it('an optional state tensor of another backend is caught too (selective scan)', () => {
    const [b, L, D, N] = [1, 2, 3, 2];
    const args = {
      u: on(wasm, [b, L, D]), delta: on(wasm, [b, L, D]), A: on(wasm, [D, N]), B: on(wasm, [b, L, N]), C: on(wasm, [b, L, N]),
      D: null, z: null, deltaBias: null, deltaSoftplus: true, algorithm: 'sequential' as const, chunkSize: 1,
    };
    assert.doesNotThrow(() => ops.selectiveScan({ ...args, state: on(wasm, [b, D, N]) }));
    assert.throws(() => ops.selectiveScan({ ...args, state: on(cpu, [b, D, N]) }), mismatch('selective_scan', 'state', /backend cpu/, /u on wasm/));
  });

  it('a CPU state passed to a wasm model is a BackendMismatchError naming the state tensor (forward, advance, generate)', async () => {
    const model = await loadModel(hfFixture('mamba-tiny'), { backend: 'wasm', threads: 1 });
    const cpuModel = await loadModel(hfFixture('mamba-tiny'));
    const state = cpuModel.createState(1);
    const named = (e: Error) => {
      assert.ok(e instanceof BackendMismatchError, `expected BackendMismatchError, got ${e.name}: ${e.message}`);
      assert.match(e.message, /^state: layers\.0\.conv is on backend cpu, the model on wasm\(1 thread/);
      return true;
    };
    await assert.rejects(model.forward([[1, 2, 3]], { state }), named);
    await assert.rejects(model.lm.advance([[5]], state), named); // the one-token step (wasm's fused decode step)
    await assert.rejects(model.generate([1, 2, 3], { state, maxNewTokens: 2 }), named);
    assert.deepEqual(state.seqLen, [0], 'nothing was read into the state');
    // the model's own state works
    const own = model.createState(1);
    await model.forward([[1, 2, 3]], { state: own });
    assert.deepEqual(own.seqLen, [3]);
  });
});
