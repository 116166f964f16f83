/**
 * Option parsing: a single-valued option given twice takes the later value (so a wrapper such as
 * `npm start -- --out X` can override the script's own `--out`); repeatable options collect.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCommand, parseList, UsageError, type CommandSpec } from '../../src/cli/args.js';
import { TRAIN_SPEC } from '../../src/cli/train.js';

test('a single-valued option given twice: the later value wins (npm start -- --out X --preset P)', () => {
  // the npm start script is `train --preset text-tiny`; what follows `--` is appended after it
  const v = parseCommand(TRAIN_SPEC, ['--preset', 'text-tiny', '--out', 'runs/text-tiny', '--out', 'runs/notes', '--preset', 'text-small', '-o', 'runs/last']);
  assert.ok(v !== null);
  assert.equal(v.out, 'runs/last');
  assert.equal(v.preset, 'text-small');
  const w = parseCommand(TRAIN_SPEC, ['--steps', '1000', '--steps=50']);
  assert.equal(w?.steps, '50');
});

test('repeatable options still collect every value; mistakes are still usage errors', () => {
  const spec: CommandSpec = {
    name: 'x',
    summary: '',
    synopsis: '',
    options: { stop: { type: 'string', multiple: true, help: '' }, n: { type: 'string', help: '' }, json: { type: 'boolean', help: '' } },
    examples: [],
  };
  const v = parseCommand(spec, ['--stop', 'a', '--stop', 'b', '--n', '1', '--n', '2', '--json', '--json']);
  assert.deepEqual(v?.stop, ['a', 'b']);
  assert.equal(v?.n, '2');
  assert.equal(v?.json, true);
  assert.throws(() => parseCommand(spec, ['--bogus']), (e: unknown) => e instanceof UsageError && /unknown option '--bogus'/.test(e.message));
  assert.throws(() => parseCommand(spec, ['--n']), UsageError);
});

test('option lists (the benchmarks\' --kernels a,b): items split on commas/whitespace, checked against the choices', () => {
  assert.deepEqual(parseList('formats', 'f32, q8,bf16'), ['f32', 'q8', 'bf16']);
  assert.deepEqual(parseList('formats', 'q8', ['f32', 'q8']), ['q8']);
  assert.throws(() => parseList('formats', 'f32,q4', ['f32', 'q8']), (e: unknown) => e instanceof UsageError && /--formats: expected one of f32, q8, got 'q4'/.test(e.message));
  assert.throws(() => parseList('m', ' , '), (e: unknown) => e instanceof UsageError && /--m: expected a comma-separated list, got/.test(e.message));
});
