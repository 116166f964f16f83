/** Progress line formatting and the TTY / non-TTY behaviour of ProgressBar. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProgressBar, formatDuration, formatLoss, formatProgress, formatRate } from '../../src/train/progress.js';

test('formatProgress: bar, step/total, percent, loss, extras, rate, elapsed < ETA', () => {
  const line = formatProgress({ step: 450, total: 1000, loss: 2.345678, rate: 12345, elapsedMs: 65_000, etaMs: 79_500, extra: { lr: '3.0e-4' } });
  assert.equal(line, '[█████████░░░░░░░░░░░]  450/1000  45% | loss 2.3457 | lr 3.0e-4 | 12.3k tok/s | 1m05s < 1m19s');
  assert.equal(
    formatProgress({ step: 0, total: 10, elapsedMs: 0, etaMs: null }, { barWidth: 10, ascii: true }),
    '[..........]  0/10   0% | 0.0s < --',
  );
  assert.equal(formatProgress({ step: 10, total: 10, loss: NaN, rate: 3.14159, rateUnit: 'img/s', elapsedMs: 7_200_000 }, { barWidth: 0 }), '10/10 100% | loss nan | 3.14 img/s | 2h00m < 0.0s');
  // downloads count bytes
  const kib = (n: number) => `${n / 1024} KiB`;
  assert.equal(formatProgress({ step: 512, total: 2048, elapsedMs: 1000, etaMs: 3000 }, { barWidth: 4, ascii: true, formatCount: kib }), '[#...] 0.5 KiB/2 KiB  25% | 1.0s < 3.0s');
  // step beyond total is clamped
  assert.match(formatProgress({ step: 12, total: 10, elapsedMs: 1 }, { barWidth: 4, ascii: true }), /^\[####\] 10\/10 100%/);
});

test('number formats', () => {
  assert.equal(formatDuration(950), '0.9s');
  assert.equal(formatDuration(42_000), '42s');
  assert.equal(formatDuration(3_725_000), '1h02m');
  assert.equal(formatDuration(2 * 86_400_000 + 3_600_000), '2d01h');
  assert.equal(formatDuration(NaN), '--');
  assert.equal(formatRate(950), '950');
  assert.equal(formatRate(12_345), '12.3k');
  assert.equal(formatRate(4.2e6), '4.20M');
  assert.equal(formatRate(55.44), '55.4');
  assert.equal(formatLoss(1e-5), '1.000e-5');
  assert.equal(formatLoss(Infinity), 'inf');
});

function sink(isTTY: boolean, columns?: number) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, columns, write: (s: string) => chunks.push(s) } };
}

test('ProgressBar on a TTY: redraws in place, throttled, cut to the terminal width; log() keeps the bar', () => {
  let now = 0;
  const { chunks, stream } = sink(true, 60);
  const bar = new ProgressBar(stream, { total: 100, now: () => now, redrawMs: 100 });
  now = 50;
  bar.update(1, { loss: 3, tokens: 1000 });
  now = 60;
  bar.update(2, { loss: 2.9, tokens: 1000 }); // throttled
  now = 200;
  bar.update(3, { loss: 2.8, tokens: 1000 });
  assert.equal(chunks.length, 2);
  for (const c of chunks) {
    assert.ok(c.startsWith('\r\x1b[K'));
    assert.ok(c.length - 4 <= 59, 'cut to the width');
    assert.ok(!c.includes('\n'));
  }
  // throughput counts every step's tokens: 3000 tokens in 0.2 s
  assert.ok(bar.line(3).includes('15.0k tok/s'), bar.line(3));
  bar.log('eval: acc 0.5');
  assert.match(chunks[2], /^\r\x1b\[Keval: acc 0\.5\n\r?.*\[/);
  now = 201;
  bar.update(100, { loss: 1 }); // the last step always draws
  assert.equal(chunks.length, 4);
  bar.done();
  bar.done();
  assert.equal(chunks[chunks.length - 1], '\n');
  assert.equal(chunks.length, 5);
});

test('ProgressBar without a TTY: plain lines, first, every intervalMs and the last; ETA from this run only', () => {
  let now = 0;
  const { chunks, stream } = sink(false);
  const bar = new ProgressBar(stream, { total: 200, startStep: 100, intervalMs: 1000, now: () => now });
  for (let s = 101; s <= 200; s++) {
    now += 100; // 0.1 s per step
    bar.update(s, { loss: 1 });
  }
  // step 101 (first), then every 10 steps (1 s), and 200 (last)
  assert.equal(chunks.length, 11);
  for (const c of chunks) {
    assert.ok(c.endsWith('\n') && !c.includes('\r'));
  }
  assert.match(chunks[0], /101\/200/);
  // at step 101: one step in 0.1 s, 99 to go → ETA 9.9 s
  assert.match(chunks[0], /0\.1s < 9\.9s$/m);
  assert.match(chunks[chunks.length - 1], /200\/200 100%/);
  bar.done();
  assert.equal(chunks.length, 11, 'done() adds nothing off a TTY');
});
