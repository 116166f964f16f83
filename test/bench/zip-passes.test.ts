/**
 * bench/options.ts `zipOrCross`: the passes of webgpu.bench's batch table over --decode-rows, --state-rows and
 * --batch-decode — lists of one length zipped (modes alternated, session 34's device script), else every combination.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { zipOrCross } from '../../bench/options.js';

describe('zipOrCross (webgpu.bench batch passes)', () => {
  it('zips lists of the same length (before / new alternated), crosses the rest, empty lists take their default', () => {
    // gpu-s34c.sh's mamba2 call: four passes, before / new / before / new
    assert.deepEqual(zipOrCross<[number | 'auto', number, string]>([[0, 'auto', 0, 'auto'], [1, 4, 1, 4], ['fused', 'fused2', 'fused', 'fused2']], [0, 1, 'fused']), [
      [0, 1, 'fused'], ['auto', 4, 'fused2'], [0, 1, 'fused'], ['auto', 4, 'fused2'],
    ]);
    // its mamba call: no --state-rows (the default), the other two zipped
    assert.deepEqual(zipOrCross<[number | 'auto', number, string]>([[0, 'auto', 0, 'auto'], [], ['fused', 'fused2', 'fused', 'fused2']], [0, 1, 'fused']).map((p) => p.join(' ')), ['0 1 fused', 'auto 1 fused2', '0 1 fused', 'auto 1 fused2']);
    // one list alone: its values in order (the state-rows sweep), the others their single value
    assert.deepEqual(zipOrCross<[number, number, string]>([[], [1, 2, 4, 8, 1], ['fused']], [0, 1, 'fused']).map((p) => p[1]), [1, 2, 4, 8, 1]);
    // lengths that differ: every combination, the first list outermost (as before session 34)
    assert.deepEqual(zipOrCross<[number, number, string]>([[0, 16], [1], ['fused', 'fused-v1', 'old']], [0, 1, 'fused']).map((p) => `${p[0]}/${p[2]}`), ['0/fused', '0/fused-v1', '0/old', '16/fused', '16/fused-v1', '16/old']);
    assert.deepEqual(zipOrCross<[number, number, string]>([[], [], []], [0, 1, 'fused']), [[0, 1, 'fused']]);
  });
});
