/** Learning-rate schedules: values at the key steps, monotonicity, errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScheduleError, lrAt, makeSchedule } from '../../src/train/schedule.js';

const close = (a: number, b: number, msg?: string) => assert.ok(Math.abs(a - b) < 1e-12, `${msg ?? ''} ${a} vs ${b}`);

test('cosine: linear warmup, then cosine from maxLr to minLr, then minLr', () => {
  const s = makeSchedule({ kind: 'cosine', maxLr: 1, minLr: 0.1, warmupSteps: 10, totalSteps: 110 });
  close(s.at(0), 0.1, 'step 0');
  close(s.at(4), 0.5, 'step 4');
  close(s.at(9), 1, 'last warmup step');
  close(s.at(10), 1, 'start of decay');
  close(s.at(35), 0.1 + 0.45 * (1 + Math.cos(Math.PI / 4)), 'quarter');
  close(s.at(60), 0.55, 'half way');
  close(s.at(110), 0.1, 'end');
  close(s.at(10_000), 0.1, 'after the end');
  assert.ok(s.at(109) > 0.1 && s.at(109) < 0.1 + 1e-3);
  for (let t = 10; t < 120; t++) assert.ok(s.at(t + 1) <= s.at(t) + 1e-15, `non-increasing at ${t}`);
  for (let t = 0; t < 9; t++) assert.ok(s.at(t + 1) > s.at(t), `increasing warmup at ${t}`);
});

test('linear decay and constant', () => {
  const l = makeSchedule({ kind: 'linear', maxLr: 1, minLr: 0.1, warmupSteps: 10, totalSteps: 110 });
  close(l.at(35), 1 - 0.9 * 0.25);
  close(l.at(60), 0.55);
  close(l.at(110), 0.1);
  const c = makeSchedule({ kind: 'constant', maxLr: 3e-4, warmupSteps: 4 });
  close(c.at(0), 0.75e-4);
  close(c.at(3), 3e-4);
  close(c.at(1_000_000), 3e-4);
  const noWarm = makeSchedule({ kind: 'constant', maxLr: 1e-3 });
  close(noWarm.at(0), 1e-3);
});

test('defaults: minLr = 0.1·maxLr, no warmup; zero-length decay goes straight to minLr', () => {
  const s = makeSchedule({ maxLr: 2, totalSteps: 100 });
  assert.equal(s.kind, 'cosine');
  close(s.at(0), 2);
  close(s.at(100), 0.2);
  const w = makeSchedule({ maxLr: 1, minLr: 0, warmupSteps: 5, totalSteps: 5 });
  close(w.at(4), 1);
  close(w.at(5), 0);
  close(lrAt(w, 6), 0);
});

test('bad schedules name the field', () => {
  assert.throws(() => makeSchedule({ kind: 'cosine', maxLr: 1 }), /totalSteps is required/);
  assert.throws(() => makeSchedule({ maxLr: 1, warmupSteps: 10, totalSteps: 5 }), /totalSteps must be an integer >= warmupSteps/);
  assert.throws(() => makeSchedule({ maxLr: 1, minLr: 2, totalSteps: 5 }), /minLr/);
  assert.throws(() => makeSchedule({ maxLr: NaN, totalSteps: 5 }), /maxLr/);
  assert.throws(() => makeSchedule({ kind: 'step' as 'cosine', maxLr: 1, totalSteps: 5 }), ScheduleError);
  assert.throws(() => makeSchedule({ maxLr: 1, totalSteps: 5 }).at(-1), /step must be an integer >= 0/);
});
