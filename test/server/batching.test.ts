/**
 * Continuous batching: requests sent at once (they join the running batch at different steps, with prompts of
 * different lengths) each return exactly what they return alone — no state mixing — on cpu and wasm, for a
 * Mamba and a hybrid (attention KV caches of different lengths in one batch).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type { LoadOptions } from '../../src/api/load.js';
import { chatModelDir, completionIds, startServer, tmpDir } from './helpers.js';
import { maxAbsDiff } from '../helpers.js';

const PROMPTS = [[5, 9, 13], [100, 7, 8, 9, 10, 11, 12, 250, 3, 4, 77, 1, 2, 3, 4, 5, 6, 7, 8, 9], [42], [300, 301, 302, 303, 304, 305, 306], [11, 22, 33, 44, 55]];
const LENGTHS = [12, 5, 9, 14, 7];

const CASES: Array<{ fixture: string; load: LoadOptions; label: string }> = [
  { fixture: 'mamba-tiny', load: { backend: 'cpu' }, label: 'mamba, cpu' },
  { fixture: 'mamba-tiny', load: { backend: 'wasm', threads: 1 }, label: 'mamba, wasm' },
  { fixture: 'mamba2-tiny', load: { backend: 'wasm', threads: 1 }, label: 'mamba2, wasm' },
  { fixture: 'bamba-tiny', load: { backend: 'cpu' }, label: 'bamba hybrid, cpu' },
];

let tmp: string;
before(() => {
  tmp = tmpDir('serve-batch');
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

for (const c of CASES) {
  describe(`continuous batching (${c.label})`, () => {
    it('concurrent greedy requests each return what they return alone', async () => {
      // no prefix cache: each request reads its whole prompt, alone or not; a small prefill chunk so that
      // prompts are read in pieces between other requests' decode steps
      const server = await startServer(chatModelDir(c.fixture, tmp), c.load, { cacheMb: 0, prefillChunk: 4, maxBatch: 8 });
      try {
        // log-probabilities too: a row that read another's token shows there even when the argmax survives
        const lp = (body: Record<string, unknown>): number[] => (body.choices as Array<{ logprobs: { token_logprobs: number[] } }>)[0].logprobs.token_logprobs;
        const alone: Array<{ ids: number[]; body: Record<string, unknown> }> = [];
        for (let i = 0; i < PROMPTS.length; i++) alone.push(await completionIds(server.url, PROMPTS[i], LENGTHS[i], { logprobs: 0 }));
        const together = await Promise.all(PROMPTS.map((p, i) => completionIds(server.url, p, LENGTHS[i], { logprobs: 0 })));
        together.forEach((t, i) => {
          assert.equal(t.ids.length, LENGTHS[i]);
          assert.deepEqual(t.ids, alone[i].ids, `request ${i}`);
          assert.ok(maxAbsDiff(lp(t.body), lp(alone[i].body)) < 1e-4, `request ${i}: ${lp(t.body)} vs ${lp(alone[i].body)}`);
        });
        // the requests did share decode steps (a mean batch above 1)
        assert.ok(server.scheduler.stepRows > server.scheduler.steps, `rows ${server.scheduler.stepRows} over ${server.scheduler.steps} steps`);
        // a request that arrives after another has left takes its row in place, while the others keep running
        const reused = server.scheduler.rowsReused;
        const longs = [1, 3].map((i) => completionIds(server.url, PROMPTS[i], 40, { logprobs: 0 }));
        const short = await completionIds(server.url, PROMPTS[0], 2, { logprobs: 0 });
        const late = await completionIds(server.url, PROMPTS[4], LENGTHS[4], { logprobs: 0 });
        assert.ok(server.scheduler.rowsReused > reused, 'the late request took a free row');
        assert.deepEqual(short.ids, alone[0].ids.slice(0, 2));
        assert.deepEqual(late.ids, alone[4].ids);
        assert.ok(maxAbsDiff(lp(late.body), lp(alone[4].body)) < 1e-4);
        for (const [k, i] of [1, 3].entries()) {
          const got = await longs[k];
          const want = await completionIds(server.url, PROMPTS[i], 40, { logprobs: 0 });
          assert.deepEqual(got.ids, want.ids, `long request ${i}`);
          assert.ok(maxAbsDiff(lp(got.body), lp(want.body)) < 1e-4);
        }
      } finally {
        await server.close();
      }
    });
  });
}
