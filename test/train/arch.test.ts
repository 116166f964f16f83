/**
 * `mamba-ts train --arch mamba2|llama|hybrid`: a fresh model of each architecture, initialised as HF does
 * (src/models/init.ts: A_log, D, Δ bias, norms, N(0, initializer_range) matrices), saved as an HF checkpoint of its
 * model_type that `loadModel` and `mamba-ts eval` read back; it trains on the synthetic tasks on cpu and on webgpu
 * (the same loss curve) and resumes. Bad sizes are errors naming the flags.
 */
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Backend } from '../../src/backend/backend.js';
import { cpu } from '../../src/backend/cpu/index.js';
import { loadModel } from '../../src/api/load.js';
import { freshConfig, hybridAttentionLayers } from '../../src/models/init.js';
import { buildJob, DEFAULT_ARGS, type JobArgs } from '../../src/train/jobs.js';
import { countParameters, TrainableLM } from '../../src/train/lm.js';
import { train } from '../../src/train/trainer.js';
import { rowPredictions } from '../../src/train/synthetic-jobs.js';
import { mqar } from '../../src/train/recall-tasks.js';
import { Rng } from '../../src/generate/rng.js';
import { TrainError } from '../../src/train/errors.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { run as cli } from '../../src/cli/main.js';
import { webgpuOrReason } from '../backend/webgpu-context.js';

const TMP_PREFIX = `mamba-ts-arch-${process.pid}-`;
function tmp(t: TestContext, name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${name}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
const io = (lines: string[]) => ({ stdout: { write: (s: string) => (lines.push(s), true) }, stderr: { write: (s: string) => (lines.push(s), true) }, handleSigint: false });

const ARCHS = ['mamba2', 'llama', 'hybrid'] as const;
const DIMS = { vocabSize: 40, hiddenSize: 32, numLayers: 2, stateSize: 8, expand: 2, headDim: 16 };

function stats(a: Float32Array): { mean: number; std: number; maxAbs: number } {
  let s = 0, q = 0, m = 0;
  for (const x of a) {
    s += x;
    q += x * x;
    m = Math.max(m, Math.abs(x));
  }
  const mean = s / a.length;
  return { mean, std: Math.sqrt(q / a.length - mean * mean), maxAbs: m };
}

test('fresh weights of every architecture follow HF\'s init: A_log = log(1..nh), D = 1, Δ bias = softplus⁻¹(dt ∈ [1e-3, 0.1]), norms 1, matrices N(0, initializer_range), conv/out_proj U(±1/√fan_in)', () => {
  for (const arch of ARCHS) {
    const m = TrainableLM.fresh(arch, { ...DIMS, heads: arch === 'mamba2' ? undefined : 2 }, { seed: 3 });
    const cfg = m.configJson();
    const std = cfg.initializer_range as number;
    assert.equal(std, arch === 'mamba2' ? 0.1 : 0.02, arch);
    const seen = { alog: 0, dt: 0, norm: 0, conv: 0, dense: 0 };
    for (const [name, p] of m.params) {
      const d = p.data as Float32Array;
      const s = stats(d);
      if (/A_log$/.test(name)) {
        assert.deepEqual(Array.from(d), Array.from(d, (_, i) => Math.fround(Math.log(i + 1))), name);
        seen.alog++;
      } else if (/\.D$/.test(name)) assert.ok(d.every((x) => x === 1), name);
      else if (/dt_bias$/.test(name)) {
        // softplus(bias) = dt, log-uniform in [0.001, 0.1]
        for (const b of d) {
          const dt = Math.log1p(Math.exp(b));
          assert.ok(dt >= 0.001 * 0.999 && dt <= 0.1 * 1.001, `${name}: dt ${dt}`);
        }
        assert.ok(s.std > 0, `${name} not constant`);
        seen.dt++;
      } else if (/norm[^.]*\.weight$/.test(name)) {
        assert.ok(d.every((x) => x === 1), name);
        seen.norm++;
      } else if (/conv1d\.weight$|mamba\.out_proj\.weight$|mixer\.out_proj\.weight$/.test(name)) {
        const fanIn = p.shape.slice(1).reduce((a, b) => a * b, 1);
        assert.ok(s.maxAbs <= 1 / Math.sqrt(fanIn) && s.maxAbs > 0.8 / Math.sqrt(fanIn), `${name}: max |w| ${s.maxAbs} vs bound ${1 / Math.sqrt(fanIn)}`);
        seen.conv++;
      } else if (/\.bias$/.test(name)) assert.ok(d.every((x) => x === 0), name);
      else if (p.shape.length === 2) {
        if (d.length >= 1000) assert.ok(Math.abs(s.std - std) < 0.12 * std && Math.abs(s.mean) < 0.15 * std, `${name}: mean ${s.mean}, std ${s.std}, expected N(0, ${std})`);
        seen.dense++;
      }
    }
    assert.ok(seen.norm > 0 && seen.dense > 0, `${arch}: ${JSON.stringify(seen)}`);
    if (arch !== 'llama') assert.ok(seen.alog > 0 && seen.dt > 0 && seen.conv > 0, `${arch}: ${JSON.stringify(seen)}`);
    else assert.equal(seen.alog, 0, arch);
  }
  // the same seed, the same weights; another seed, others
  const w = (seed: number) => TrainableLM.fresh('llama', DIMS, { seed }).params.get('model.layers.0.self_attn.q_proj.weight')!.data;
  assert.deepEqual(w(1), w(1));
  assert.notDeepEqual(w(1), w(2));
});

test('fresh configs: HF model_type, architectures and the shapes of each (llama RoPE θ, MHA; hybrid: one attention layer in N, Jamba\'s offset)', () => {
  const m2 = freshConfig('mamba2', { ...DIMS, headDim: 16 });
  assert.deepEqual([m2.model_type, m2.architectures, m2.num_heads, m2.head_dim, m2.state_size], ['mamba2', ['Mamba2ForCausalLM'], 4, 16, 8]);
  const ll = freshConfig('llama', { ...DIMS, heads: 4, ropeTheta: 500000 });
  assert.deepEqual([ll.model_type, ll.num_attention_heads, ll.num_key_value_heads, ll.head_dim, ll.rope_theta, ll.intermediate_size], ['llama', 4, 4, 8, 500000, 88]);
  const hy = freshConfig('hybrid', { ...DIMS, numLayers: 8, attnEvery: 4 });
  assert.deepEqual([hy.model_type, hy.attn_layer_indices, hy.mamba_n_heads, hy.mamba_d_head, hy.mamba_d_state], ['bamba', [2, 6], 4, 16, 8]);
  assert.deepEqual(hybridAttentionLayers(16, 8), [4, 12]);
  assert.deepEqual(hybridAttentionLayers(2, 2), [1]);
  assert.deepEqual(hybridAttentionLayers(3, 1), [0, 1, 2]);
});

test('sizes that do not fit an architecture are TrainErrors naming the flag; --arch with --from is a usage error', async () => {
  const a = (over: Partial<JobArgs>): JobArgs => ({ ...DEFAULT_ARGS, task: 'copy', vocab: 8, copyLen: 3, hidden: 32, layers: 2, ...over });
  const cases: Array<[Partial<JobArgs>, RegExp]> = [
    [{ arch: 'llama', heads: 3 }, /--heads 3 does not divide hidden size 32/],
    [{ arch: 'mamba2', headDim: 48 }, /--head-dim 48 does not divide inner width \(expand × hidden\) 64/],
    [{ arch: 'hybrid', attnEvery: 5 }, /--attn-every 5 puts no attention layer among 2 layers/],
    [{ arch: 'llama', mixer: 's4d' }, /--mixer s4d is an ablation of the Mamba block \(--arch mamba\), not of --arch llama/],
  ];
  for (const [over, re] of cases) assert.throws(() => buildJob(a(over)), (e: unknown) => e instanceof TrainError && re.test(e.message), JSON.stringify(over));
  const lines: string[] = [];
  assert.equal(await cli(['train', '--arch', 'llama', '--from', 'some/checkpoint', '--dry-run'], io(lines) as never), 2);
  assert.match(lines.join(''), /--arch builds a fresh model and --from starts from a checkpoint/);
});

for (const arch of ARCHS) {
  test(`mamba-ts train --arch ${arch} (copy task, cpu): HF checkpoint of its model_type, resumes, and mamba-ts eval reproduces the final metrics`, async (t) => {
    const out = tmp(t, arch);
    const flags = ['--task', 'copy', '--arch', arch, '--copy-len', '4', '--vocab', '8', '--hidden', '32', '--layers', '2', '--state', '8', '--head-dim', '16', '--batch', '4', '--eval-batches', '1', '--eval-every', '100', '--threads', '1', '--out', out, '--json'];
    const lines: string[] = [];
    let code = await cli(['train', ...flags, '--steps', '3'], io(lines) as never);
    assert.equal(code, 0, lines.join(''));
    const first = lines.join('');
    assert.match(first, /copying strings of 4 tokens .*; [\d,]+ parameters/, 'the run log names the model and its parameter count');
    code = await cli(['train', ...flags, '--steps', '5', '--resume'], io(lines) as never);
    assert.equal(code, 0, lines.join(''));
    const summary = JSON.parse(lines.join('').trim().split('\n').pop()!);
    assert.equal(summary.steps, 5);
    assert.ok(summary.val_string_acc >= 0 && summary.val_string_acc <= 1 && summary.val_acc >= 0, JSON.stringify(summary));
    const ck = loadCheckpoint(out);
    assert.equal(ck.config.model_type, { mamba2: 'mamba2', llama: 'llama', hybrid: 'bamba' }[arch]);
    assert.equal(ck.trainerState.step, 5);
    // an ordinary checkpoint folder: loadModel scores it as the trained model does
    const model = await loadModel(out);
    const trained = TrainableLM.fromPretrained(out);
    const ids = [0, 1, 2, 3, 4, 6, 1, 2, 3, 4];
    const logits = (await model.forward([ids])).logits.data;
    const again = await (await trained.lm.logitsTensor([ids])).data();
    assert.equal(logits.length, ids.length * 8);
    assert.deepEqual(Array.from(logits), Array.from(again));
    const ev: string[] = [];
    assert.equal(await cli(['eval', '--model', out, '--json'], io(ev) as never), 0, ev.join(''));
    const m = JSON.parse(ev.join('').trim().split('\n').pop()!);
    assert.equal(m.val_acc, summary.val_acc, 'eval = the final evaluation of the run');
    assert.equal(m.val_string_acc, summary.val_string_acc);
  });
}

test('--dry-run prints the model and its parameter count without training or writing anything', async (t) => {
  const out = path.join(tmp(t, 'dry'), 'run');
  for (const arch of ['mamba', ...ARCHS]) {
    const lines: string[] = [];
    const code = await cli(['train', '--task', 'mqar', '--arch', arch, '--vocab', '64', '--seq-len', '32', '--num-kv', '4', '--hidden', '32', '--layers', '2', '--out', out, '--dry-run', '--json'], io(lines) as never);
    assert.equal(code, 0, lines.join(''));
    const r = JSON.parse(lines.join('').trim().split('\n').pop()!);
    const job = buildJob({ ...DEFAULT_ARGS, task: 'mqar', arch: arch as JobArgs['arch'], vocab: 64, seqLen: 32, numKv: 4, hidden: 32, layers: 2 });
    assert.equal(r.parameters, countParameters(job.model), arch);
    assert.ok(r.parameters > 64 * 32, arch);
  }
  assert.ok(!fs.existsSync(out), 'nothing written');
});

// ---- webgpu: the same curve as on the CPU

const gpu = await webgpuOrReason();
after(() => {
  if (typeof gpu !== 'string') gpu.destroy();
});

for (const arch of ARCHS) {
  test(`--arch ${arch} on webgpu: MQAR trains with the CPU's loss curve (≤ 1e-3 relative over 4 steps) and resumes exactly`, async (t) => {
    if (typeof gpu === 'string') return void t.skip(gpu);
    const args: JobArgs = { ...DEFAULT_ARGS, task: 'mqar', arch, vocab: 32, seqLen: 24, numKv: 3, hidden: 32, layers: 2, state: 8, headDim: 16, batch: 2, accum: 2, steps: 4, lr: 3e-3, warmup: 1, evalEvery: 1000, saveEvery: 1000, evalBatches: 1 };
    const run = async (backend: Backend, extra: Record<string, unknown> = {}) => {
      const job = buildJob(args, undefined, { backend });
      return train(job.model, job.hooks, { steps: 4, lr: args.lr, warmup: 1, weightDecay: 0.1, accum: 2, ...job.trainOptions, args: { ...args }, logEvery: 1, ...extra });
    };
    const c = await run(cpu);
    const g = await run(gpu);
    for (let i = 0; i < c.history.loss.length; i++) {
      assert.ok(Math.abs(g.history.loss[i] - c.history.loss[i]) <= 1e-3 * Math.abs(c.history.loss[i]), `${arch} step ${i + 1}: webgpu ${g.history.loss[i]} vs cpu ${c.history.loss[i]}`);
    }
    const dir = tmp(t, `gpu-${arch}`);
    const ac = new AbortController();
    await run(gpu, { outDir: dir, signal: ac.signal, onStep: (s: { step: number }) => s.step === 2 && ac.abort() });
    const rest = await run(gpu, { outDir: dir, resume: true });
    assert.deepEqual(rest.history.loss, g.history.loss, 'resumed = uninterrupted');
  });
}

test('rowPredictions (the recall tasks\' whole-sequence accuracy): the argmax of every position in row blocks, on cpu as the loss counts it, and on webgpu (argmaxRows) the same', async (t) => {
  const args: JobArgs = { ...DEFAULT_ARGS, task: 'mqar', arch: 'llama', vocab: 32, seqLen: 24, numKv: 3, hidden: 32, layers: 1, headDim: 16, batch: 5 };
  const bt = mqar(new Rng(4), { batch: 5, seqLen: 24, numKv: 3, vocabSize: 32 });
  const c = buildJob(args).model as TrainableLM;
  const pred = await rowPredictions(c, bt.inputs, 5, 24);
  const logits = (await c.lm.forward(Array.from({ length: 5 }, (_, r) => Array.from(bt.inputs.subarray(r * 24, (r + 1) * 24))))).logits.data;
  for (let p = 0; p < 5 * 24; p++) {
    const row = Array.from(logits.subarray(p * 32, (p + 1) * 32));
    assert.equal(pred[p], row.indexOf(Math.max(...row)), `position ${p}`);
  }
  const r = await c.loss(bt.inputs, bt.targets, 5, 24);
  const right = Array.from(bt.targets).filter((y, i) => y !== -100 && pred[i] === y).length;
  assert.equal(right, r.correct, 'the same count as the cross-entropy\'s');
  if (typeof gpu === 'string') return void t.skip(gpu);
  const g = buildJob(args, undefined, { backend: gpu }).model as TrainableLM;
  assert.deepEqual(await rowPredictions(g, bt.inputs, 5, 24), pred);
});

test('no temporary folder is left behind', () => {
  assert.deepEqual(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(TMP_PREFIX)), []);
});
