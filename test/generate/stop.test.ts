/** Stop strings over streamed text: never emitted, everything before them emitted, any split of the text. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StopTextFilter } from '../../src/generate/stop.js';

/** the text a consumer should see: cut before the earliest stop string */
function expected(text: string, stops: string[]): string {
  let cut = text.length;
  for (const s of stops) {
    const k = text.indexOf(s);
    if (k >= 0) cut = Math.min(cut, k);
  }
  return text.slice(0, cut);
}

function run(pieces: string[], stops: string[]): { out: string[]; stopped: boolean; output: string } {
  const f = new StopTextFilter(stops);
  const out: string[] = [];
  for (const p of pieces) {
    out.push(f.push(p));
    if (f.stopped) break;
  }
  out.push(f.flush());
  return { out, stopped: f.stopped, output: f.output };
}

describe('StopTextFilter', () => {
  it('holds back a possible stop string and releases it when it does not complete', () => {
    const r = run(['ab', 'c', 'x', 'yz'], ['cd']);
    const seen = (n: number) => r.out.slice(0, n).join('');
    assert.ok(!seen(2).endsWith('c'), 'the c that could start "cd" is held back');
    assert.ok(seen(3).startsWith('abc'), 'released once "cx" rules "cd" out');
    assert.equal(r.out.join(''), 'abcxyz');
    assert.equal(r.stopped, false);
  });
  it('cuts before the earliest stop string, with stops of different lengths', () => {
    const r = run(['hello wo', 'rld, and', ' more'], ['and more', 'world']);
    assert.equal(r.out.join(''), 'hello ');
    assert.equal(r.output, 'hello ');
    assert.equal(r.stopped, true);
  });
  it('a short stop string found while a long one is being held back', () => {
    const r = run(['', 'dd', 'yy', 'yy'], ['yy', 'never-there']);
    assert.equal(r.out.join(''), 'dd');
  });
  it('random splits: output = text up to the first stop, no stop string ever emitted', () => {
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    const alphabet = 'ab \n😀';
    for (let trial = 0; trial < 500; trial++) {
      const chars = Array.from({ length: 1 + rnd(30) }, () => [...alphabet][rnd(5)]);
      const text = chars.join('');
      const stops = [['ab'], ['\n\n', 'bb'], ['😀a'], ['zzz']][rnd(4)];
      const pieces: string[] = [];
      for (let i = 0; i < chars.length; ) {
        const n = 1 + rnd(4);
        pieces.push(chars.slice(i, i + n).join(''));
        i += n;
      }
      const r = run(pieces, stops);
      const want = expected(text, stops);
      assert.equal(r.out.join(''), want, `pieces ${JSON.stringify(pieces)} stops ${JSON.stringify(stops)}`);
      for (const o of r.out) for (const s of stops) assert.ok(!o.includes(s));
      for (const o of r.out.slice(0, -1)) {
        if (o.length) assert.ok(!/[\ud800-\udbff]$/.test(o), 'no split surrogate pair');
      }
    }
  });
});
