/**
 * Checkpoint folders: round trip of every piece, atomic replacement under injected failures and a
 * simulated crash between the two renames, and named errors for missing or malformed files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SafetensorsFile, encodeSafetensors } from '../../src/io/safetensors.js';
import { CheckpointError, loadCheckpoint, saveCheckpoint, type CheckpointContents } from '../../src/train/checkpoint.js';
import { AdamW } from '../../src/train/optim.js';
import type { Param } from '../../src/train/param.js';
import { Rng } from '../../src/generate/rng.js';
import { rngState } from '../../src/train/random.js';

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-ckpt-'));
}

function params(scale: number): Param[] {
  return [
    { name: 'backbone.embeddings.weight', data: Float32Array.from([1, 2, 3, 4, 5, 6], (v) => v * scale), grad: null, shape: [3, 2] },
    { name: 'backbone.layers.0.mixer.A_log', data: Float32Array.from([0.5, -0.5], (v) => v * scale), grad: null, shape: [2] },
  ];
}

function contents(step: number, scale = 1): CheckpointContents {
  const trained = params(scale); // the optimizer moves its own copies; `weights` keep the given values
  const opt = new AdamW(trained, { lr: 1e-3 });
  for (const p of trained) p.grad = Float32Array.from(p.data, (v) => v * 0.1);
  opt.step();
  return {
    weights: params(scale),
    config: { model_type: 'mamba', hidden_size: 2, vocab_size: 3 },
    optimizer: opt.exportState(),
    trainerState: { step, epoch: 0, lr: 1e-3, rng: rngState(new Rng(step)), history: { loss: [2.5, 2.25, NaN], acc: [Infinity, -Infinity, 0.5] }, args: { task: 'copy', seed: 1 } },
  };
}

/** folder entries other than the checkpoint itself (temp or .old leftovers) */
function leftovers(parent: string, base: string): string[] {
  return fs.readdirSync(parent).filter((n) => n !== base);
}

test('round trip: weights, config, optimizer, trainer state (NaN/Infinity), tokenizer and extra files', () => {
  const root = tmpdir();
  const dir = path.join(root, 'ckpt');
  const tok = path.join(root, 'tok.json');
  fs.writeFileSync(tok, '{"model": {}}');
  const c = contents(7);
  saveCheckpoint(dir, { ...c, tokenizer: tok, extraFiles: { 'README.md': new TextEncoder().encode('# hi\n') } });
  assert.deepEqual(fs.readdirSync(dir).sort(), ['README.md', 'config.json', 'model.safetensors', 'optimizer.safetensors', 'tokenizer.json', 'trainer_state.json']);
  assert.deepEqual(leftovers(root, 'ckpt'), ['tok.json']);
  // HF transformers refuses safetensors without format metadata
  assert.equal(SafetensorsFile.open(path.join(dir, 'model.safetensors')).metadata['format'], 'pt');

  const ck = loadCheckpoint(dir);
  assert.equal(ck.recovered, false);
  assert.deepEqual(Object.keys(ck.weights).sort(), ['backbone.embeddings.weight', 'backbone.layers.0.mixer.A_log']);
  assert.deepEqual(ck.weights['backbone.embeddings.weight'].shape, [3, 2]);
  assert.deepEqual([...ck.weights['backbone.embeddings.weight'].data], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(ck.config, c.config);
  assert.equal(ck.trainerState.step, 7);
  assert.deepEqual(ck.trainerState.rng, rngState(new Rng(7)));
  const hist = ck.trainerState.history as { loss: number[]; acc: number[] };
  assert.deepEqual(hist.loss.slice(0, 2), [2.5, 2.25]);
  assert.ok(Number.isNaN(hist.loss[2]));
  assert.deepEqual(hist.acc, [Infinity, -Infinity, 0.5]);
  assert.deepEqual(ck.trainerState.args, { task: 'copy', seed: 1 });
  assert.equal(ck.tokenizerPath, path.join(dir, 'tokenizer.json'));
  assert.equal(fs.readFileSync(ck.tokenizerPath!, 'utf8'), '{"model": {}}');

  // the optimizer state restores into a fresh optimizer
  const o = ck.optimizer!;
  assert.equal(o.kind, 'adamw');
  assert.equal(o.step, 1);
  assert.equal(o.hyper['lr'], 1e-3);
  const fresh = new AdamW(params(1));
  fresh.importState(o);
  assert.deepEqual(fresh.exportState().tensors, c.optimizer!.tensors);
  fs.rmSync(root, { recursive: true });
});

test('weights given as a Record of WritableTensor (stateDict) and no optimizer', () => {
  const root = tmpdir();
  const dir = path.join(root, 'ck');
  saveCheckpoint(dir, {
    weights: { 'lm_head.weight': { dtype: 'F32', shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) } },
    config: {},
    trainerState: { step: 0 },
  });
  const ck = loadCheckpoint(dir);
  assert.equal(ck.optimizer, null);
  assert.equal(ck.tokenizerPath, null);
  assert.deepEqual([...ck.weights['lm_head.weight'].data], [1, 2, 3, 4]);
  fs.rmSync(root, { recursive: true });
});

test('atomic replace: a failure at any stage before the swap keeps the old checkpoint and leaves no debris', () => {
  const root = tmpdir();
  const dir = path.join(root, 'ck');
  saveCheckpoint(dir, contents(1, 1));
  for (const failAt of ['wrote:model.safetensors', 'wrote:config.json', 'wrote:optimizer.safetensors', 'wrote:trainer_state.json', 'before-swap', 'old-moved-aside']) {
    assert.throws(
      () =>
        saveCheckpoint(dir, contents(2, 10), {
          onStage: (s) => {
            if (s === failAt) throw new Error(`injected at ${s}`);
          },
        }),
      (e: unknown) => e instanceof CheckpointError && /injected/.test((e as Error).message),
      failAt,
    );
    const ck = loadCheckpoint(dir);
    assert.equal(ck.trainerState.step, 1, `after failing at ${failAt}`);
    assert.equal(ck.recovered, false);
    assert.deepEqual([...ck.weights['backbone.layers.0.mixer.A_log'].data], [0.5, -0.5]);
    assert.deepEqual(leftovers(root, 'ck'), [], `debris after failing at ${failAt}`);
  }
  // and a save that goes through replaces it
  saveCheckpoint(dir, contents(2, 10));
  assert.equal(loadCheckpoint(dir).trainerState.step, 2);
  assert.deepEqual([...loadCheckpoint(dir).weights['backbone.layers.0.mixer.A_log'].data], [5, -5]);
  assert.deepEqual(leftovers(root, 'ck'), []);
  fs.rmSync(root, { recursive: true });
});

test('a crash between the two renames leaves <dir>.old, which loads and is cleaned up by the next save', () => {
  const root = tmpdir();
  const dir = path.join(root, 'ck');
  saveCheckpoint(dir, contents(3));
  // the state a killed process leaves after "old-moved-aside": no <dir>, <dir>.old, a temp folder
  fs.renameSync(dir, `${dir}.old`);
  const deadTmp = path.join(root, '.ck.tmp-4194305-deadbeef'); // pid above Linux's pid_max: not running
  fs.mkdirSync(deadTmp);
  fs.writeFileSync(path.join(deadTmp, 'model.safetensors'), 'partial');
  const ck = loadCheckpoint(dir);
  assert.equal(ck.recovered, true);
  assert.equal(ck.dir, `${dir}.old`);
  assert.equal(ck.trainerState.step, 3);
  saveCheckpoint(dir, contents(4));
  assert.equal(loadCheckpoint(dir).trainerState.step, 4);
  assert.deepEqual(leftovers(root, 'ck'), [], 'the .old folder and the dead temp folder are gone');
  // a failure after the new folder is in place: the new one loads
  assert.throws(() => saveCheckpoint(dir, contents(5), { onStage: (s) => { if (s === 'new-in-place') throw new Error('late'); } }), /was written/);
  assert.equal(loadCheckpoint(dir).trainerState.step, 5);
  fs.rmSync(root, { recursive: true });
});

test('files of the old folder are carried over, a stale optimizer state is not; a non-checkpoint folder is refused', () => {
  const root = tmpdir();
  const dir = path.join(root, 'ck');
  saveCheckpoint(dir, contents(1));
  fs.writeFileSync(path.join(dir, 'curves.svg'), '<svg/>');
  saveCheckpoint(dir, { weights: params(1), config: {}, trainerState: { step: 2 } });
  assert.equal(fs.readFileSync(path.join(dir, 'curves.svg'), 'utf8'), '<svg/>');
  assert.equal(fs.existsSync(path.join(dir, 'optimizer.safetensors')), false);
  assert.equal(loadCheckpoint(dir).optimizer, null);

  const notCk = path.join(root, 'project');
  fs.mkdirSync(notCk);
  fs.writeFileSync(path.join(notCk, 'important.txt'), 'keep me');
  assert.throws(() => saveCheckpoint(notCk, contents(1)), /refusing to replace .*project.*not a checkpoint/);
  assert.equal(fs.readFileSync(path.join(notCk, 'important.txt'), 'utf8'), 'keep me');
  assert.throws(() => saveCheckpoint(dir, { ...contents(1), extraFiles: { '../x': 'y' } }), /plain file name/);
  assert.throws(() => saveCheckpoint(dir, { ...contents(1), extraFiles: { 'a.json': path.join(root, 'missing') } }), /cannot copy a\.json from/);
  assert.throws(() => saveCheckpoint(dir, { ...contents(1), trainerState: { step: -1 } }), /trainerState\.step/);
  assert.equal(loadCheckpoint(dir).trainerState.step, 2, 'failed saves left the checkpoint alone');
  fs.rmSync(root, { recursive: true });
});

test('missing or malformed files give errors naming the file and field', () => {
  const root = tmpdir();
  const dir = path.join(root, 'ck');
  const fresh = () => {
    fs.rmSync(dir, { recursive: true, force: true });
    saveCheckpoint(dir, contents(1));
  };
  const expectErr = (re: RegExp) => assert.throws(() => loadCheckpoint(dir), (e: unknown) => e instanceof CheckpointError && re.test((e as Error).message), re.source);

  assert.throws(() => loadCheckpoint(path.join(root, 'nope')), /nope: no such checkpoint folder/);

  fresh();
  fs.rmSync(path.join(dir, 'model.safetensors'));
  expectErr(/model\.safetensors: file is missing/);

  fresh();
  const m = path.join(dir, 'model.safetensors');
  fs.truncateSync(m, fs.statSync(m).size - 3);
  expectErr(/model\.safetensors/);

  fresh();
  fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type": ');
  expectErr(/config\.json: config is not valid JSON/);

  fresh();
  fs.writeFileSync(path.join(dir, 'config.json'), '[1]');
  expectErr(/config\.json: expected a JSON object/);

  fresh();
  fs.rmSync(path.join(dir, 'trainer_state.json'));
  expectErr(/trainer_state\.json: cannot read trainer state: file is missing/);

  fresh();
  fs.writeFileSync(path.join(dir, 'trainer_state.json'), '{"epoch": 1}');
  expectErr(/trainer_state\.json: missing field "step"/);

  fresh();
  fs.writeFileSync(path.join(dir, 'trainer_state.json'), '{"step": 1.5}');
  expectErr(/trainer_state\.json: field "step": expected an integer >= 0, found 1\.5/);

  fresh();
  fs.writeFileSync(path.join(dir, 'trainer_state.json'), '{"step": 1, "rng": [1, 2]}');
  expectErr(/trainer_state\.json: field "rng"/);

  fresh();
  fs.writeFileSync(path.join(dir, 'trainer_state.json'), '{"step": 1, "lr": "high"}');
  expectErr(/trainer_state\.json: field "lr"/);

  fresh();
  fs.writeFileSync(path.join(dir, 'optimizer.safetensors'), encodeSafetensors({ x: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }, { format: 'pt' }));
  expectErr(/optimizer\.safetensors: metadata "format" is "pt", expected "mamba-ts-optimizer"/);

  fresh();
  fs.writeFileSync(path.join(dir, 'optimizer.safetensors'), encodeSafetensors({ x: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }, { format: 'mamba-ts-optimizer', kind: 'adamw', step: 'two' }));
  expectErr(/optimizer\.safetensors: metadata "step"/);

  fresh();
  fs.writeFileSync(path.join(dir, 'optimizer.safetensors'), 'garbage');
  expectErr(/optimizer\.safetensors/);
  fs.rmSync(root, { recursive: true });
});
