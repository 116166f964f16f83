/**
 * Folders that mamba-ts writes, for HF transformers to load (scripts/check-hf-load.py runs on a machine with torch and
 * transformers): every HF fixture architecture fine-tuned for a few steps (`train --from`; config.json kept as the
 * source wrote it), the same re-saved with config.json written by mamba-ts's serializer (`stringifyConfigJson`, what
 * mamba-ts writes when it has no source text), and a fresh byte-level model of every `train --arch` trained from scratch. Each folder gets
 * `mamba_ts_logits.safetensors`: input ids and the logits mamba-ts computes for them after loading the folder
 * (`loadModel`, cpu), which transformers must reproduce.
 *
 *   node dist/scripts/hf-interop.js OUT_DIR
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSafetensorsAtomic } from '../src/io/safetensors.js';
import { loadModel } from '../src/api/load.js';
import { ARCHS, buildJob, DEFAULT_ARGS, type JobArgs } from '../src/train/jobs.js';
import { train } from '../src/train/trainer.js';
import { saveCheckpoint } from '../src/train/checkpoint.js';
import { TrainableLM } from '../src/train/lm.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = path.resolve(process.argv[2] ?? 'hf-interop');
const fixtures = path.join(root, 'test', 'fixtures', 'hf');
fs.mkdirSync(out, { recursive: true });
const data = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-interop-'));
fs.writeFileSync(path.join(data, 'text.md'), 'Selective state spaces remember what matters and forget the rest. '.repeat(40));

async function run(args: Partial<JobArgs>, dir: string): Promise<void> {
  const a: JobArgs = { ...DEFAULT_ARGS, evalEvery: 1000, saveEvery: 1000, task: 'text', data, steps: 3, batch: 2, seqLen: 16, lr: 5e-3, warmup: 1, ...args };
  const job = buildJob(a);
  fs.rmSync(dir, { recursive: true, force: true });
  await train(job.model, job.hooks, { steps: a.steps, lr: a.lr, warmup: a.warmup, weightDecay: a.weightDecay, outDir: dir, args: { ...a }, ...job.trainOptions });
}

const ids = [[1, 7, 42, 3, 99, 12, 5, 64, 8, 2, 31, 17]];
async function saveLogits(dir: string): Promise<void> {
  const m = await loadModel(dir, { backend: 'cpu', tokenizer: false });
  const row = ids[0].map((t) => t % m.vocabSize);
  const { logits } = await m.forward([row]);
  writeSafetensorsAtomic(path.join(dir, 'mamba_ts_logits.safetensors'), {
    input_ids: { dtype: 'F32', shape: [1, row.length], data: Float32Array.from(row) },
    logits: { dtype: 'F32', shape: logits.shape, data: logits.data },
  });
}

const names = fs.readdirSync(fixtures).filter((n) => fs.existsSync(path.join(fixtures, n, 'config.json')));
for (const name of names) {
  const dir = path.join(out, `finetuned-${name}`);
  await run({ from: path.join(fixtures, name) }, dir);
  await saveLogits(dir);
  console.log(`wrote ${dir}`);
  const resaved = path.join(out, `resaved-${name}`);
  const lm = TrainableLM.fromPretrained(dir);
  fs.rmSync(resaved, { recursive: true, force: true });
  saveCheckpoint(resaved, { weights: [...lm.params.values()], config: lm.configJson(), trainerState: { step: 0 } });
  await saveLogits(resaved);
  console.log(`wrote ${resaved}`);
}
// the control: config.json as JSON.stringify writes it (time_step_limit [0, null]: 0.0 → 0, Infinity → null), which
// transformers must refuse (check-hf-load.py expects folders named expect-fail-* to fail)
const control = path.join(out, 'expect-fail-jsonstringify-mamba2-tiny');
fs.rmSync(control, { recursive: true, force: true });
fs.cpSync(path.join(out, 'resaved-mamba2-tiny'), control, { recursive: true });
const cfg = JSON.parse(fs.readFileSync(path.join(control, 'config.json'), 'utf8')) as Record<string, unknown>;
fs.writeFileSync(path.join(control, 'config.json'), JSON.stringify({ ...cfg, time_step_limit: [0, Infinity] }, null, 2) + '\n');
console.log(`wrote ${control}`);

// fresh models of every architecture `train --arch` builds, trained from scratch (config.json written by mamba-ts)
for (const arch of ARCHS) {
  const fresh = path.join(out, arch === 'mamba' ? 'fresh-mamba-bytes' : `fresh-${arch}-bytes`);
  await run({ arch, hidden: 32, layers: 2 }, fresh);
  await saveLogits(fresh);
  console.log(`wrote ${fresh}`);
}
fs.rmSync(data, { recursive: true, force: true });
