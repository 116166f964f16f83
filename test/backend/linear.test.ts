/** The tiled CPU matmul equals a plain triple loop for every tail case (odd M, N not a multiple of 4 or of the block). */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { linear } from '../../src/backend/cpu/kernels.js';
import { maxAbsDiff, randomArray } from '../helpers.js';

it('linear = reference matmul on odd shapes, with and without bias', () => {
  let seed = 1;
  for (const [M, K, N] of [[1, 1, 1], [1, 7, 3], [2, 5, 4], [3, 16, 9], [5, 33, 257], [8, 64, 515], [1, 768, 261]]) {
    const x = randomArray(M * K, seed++);
    const w = randomArray(N * K, seed++);
    const b = randomArray(N, seed++);
    for (const bias of [null, b]) {
      const want = new Float32Array(M * N);
      for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
        let s = bias ? bias[j] : 0;
        for (let k = 0; k < K; k++) s += x[i * K + k] * w[j * K + k];
        want[i * N + j] = s;
      }
      assert.ok(maxAbsDiff(linear(x, w, bias, M, K, N), want) < 1e-5, `M=${M} K=${K} N=${N}`);
    }
  }
});
