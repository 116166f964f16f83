#!/usr/bin/env node
// Compare the loss curves of two training runs (trainer_state.json history): the largest |Δloss| and relative
// difference per step, and at the end. usage: node scripts/compare-curves.mjs RUN_A RUN_B
import * as fs from 'node:fs';
import * as path from 'node:path';
const [a, b] = process.argv.slice(2).map((d) => JSON.parse(fs.readFileSync(path.join(d, 'trainer_state.json'), 'utf8')).history);
if (!a || !b) throw new Error('usage: compare-curves.mjs RUN_A RUN_B (folders with trainer_state.json)');
const n = Math.min(a.loss.length, b.loss.length);
let worst = 0, worstRel = 0, at = -1;
for (let i = 0; i < n; i++) {
  const d = Math.abs(a.loss[i] - b.loss[i]);
  if (d > worst) (worst = d), (at = a.step[i]);
  worstRel = Math.max(worstRel, d / Math.max(1e-12, Math.abs(a.loss[i])));
}
const pick = (h, i) => `${h.loss[i].toFixed(5)} (step ${h.step[i]})`;
console.log(JSON.stringify({ steps: n, first: [pick(a, 0), pick(b, 0)], last: [pick(a, n - 1), pick(b, n - 1)], max_abs_diff: worst, at_step: at, max_rel_diff: worstRel,
  grad_norm_max_rel_diff: Math.max(...a.grad_norm.slice(0, n).map((g, i) => Math.abs(g - b.grad_norm[i]) / Math.max(1e-12, Math.abs(g)))),
  seconds: [a.train_seconds, b.train_seconds] }));
