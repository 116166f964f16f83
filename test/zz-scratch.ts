import { backward, withGrad } from '../src/autograd/tape.js';
import { TrainableLM } from '../src/train/lm.js';
import { Rng } from '../src/generate/rng.js';
import { hfFixture, loadReference } from './helpers.js';
const dir = hfFixture('granite-hybrid-tiny');
const ids = loadReference(dir).ids('input_ids');
const [b, L] = [ids.length, ids[0].length];
const inputs = Int32Array.from(ids.flat());
const targets = Int32Array.from({ length: b * L }, (_, i) => (i % L === L - 1 ? -100 : inputs[i + 1]));
const model = TrainableLM.fromPretrained(dir);
const ce = await withGrad(() => model.loss(inputs, targets, b, L));
backward(ce.loss);
const rng = new Rng(7);
for (const p of model.params.values()) {
  const v = Float32Array.from({ length: p.data.length }, () => rng.next() * 2 - 1);
  let an = 0; const g = p.grad!; for (let i = 0; i < g.length; i++) an += g[i] * v[i];
  const base = Float32Array.from(p.data);
  const at = async (e: number) => { for (let i = 0; i < base.length; i++) p.data[i] = base[i] + e * v[i]; p.markUpdated(); return (await model.loss(inputs, targets, b, L)).loss.dataSync()[0]; };
  if (!/embed|router.layer.weight|layers.0.mamba.out_proj/.test(p.name)) continue;
  const r: number[] = [];
  for (const eps of [1e-2, 3e-3, 1e-3, 3e-4]) r.push(((await at(eps)) - (await at(-eps))) / (2 * eps));
  await at(0);
  console.log(p.name, an, r);
}
console.log('done');
