/**
 * The playground's Δ heatmap draws incrementally (only new columns; whole rows when their colour range changes; a
 * full layout a few times a run) and must leave exactly the canvas a full redraw of the same data leaves: the same
 * pixels from putImageData, the same text calls in the same order with the same state. A recording fake 2D context
 * stands in for the canvas (no browser needed); test/web/playground.test.ts compares real Chromium pixels.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { colourRGB, heatmapCapacity, HeatmapView, type HeatmapCanvas, type HeatmapContext, type HeatmapEnv, type PixelBuffer } from '../../web/src/heatmap-view.js';

type Matrix = [number, number, number, number, number, number];

/** a canvas whose pixels come from putImageData and whose text calls are recorded with the state they ran in */
class FakeCanvas implements HeatmapCanvas {
  style = { width: '', height: '' };
  pixels = new Uint8ClampedArray(0);
  ops: string[] = [];
  private w = 300;
  private h = 150;
  get width(): number {
    return this.w;
  }
  set width(v: number) {
    this.w = v;
    this.clear();
  }
  get height(): number {
    return this.h;
  }
  set height(v: number) {
    this.h = v;
    this.clear();
  }
  /** setting either size clears the canvas (as a real one) */
  private clear(): void {
    this.pixels = new Uint8ClampedArray(this.w * this.h * 4);
    this.ops = [];
  }
}

class FakeContext implements HeatmapContext {
  fillStyle: unknown = '#000';
  font = '10px sans-serif';
  textAlign: unknown = 'start';
  textBaseline: unknown = 'alphabetic';
  private m: Matrix = [1, 0, 0, 1, 0, 0];
  private path: string[] = [];
  private clipping: string[] = [];
  private stack: Array<{ m: Matrix; clipping: string[]; fillStyle: unknown; font: string; textAlign: unknown; textBaseline: unknown }> = [];
  puts = 0;
  constructor(private readonly canvas: FakeCanvas) {}

  setTransform(a: number, b: number, c: number, d: number, e: number, f: number): void {
    this.m = [a, b, c, d, e, f];
  }
  translate(x: number, y: number): void {
    const [a, b, c, d, e, f] = this.m;
    this.m = [a, b, c, d, e + a * x + c * y, f + b * x + d * y];
  }
  rotate(t: number): void {
    const [a, b, c, d, e, f] = this.m;
    const cos = Math.cos(t), sin = Math.sin(t);
    this.m = [a * cos + c * sin, b * cos + d * sin, -a * sin + c * cos, -b * sin + d * cos, e, f];
  }
  save(): void {
    const { m, clipping, fillStyle, font, textAlign, textBaseline } = this;
    this.stack.push({ m, clipping: [...clipping], fillStyle, font, textAlign, textBaseline });
  }
  restore(): void {
    Object.assign(this, this.stack.pop()!);
  }
  beginPath(): void {
    this.path = [];
  }
  rect(x: number, y: number, w: number, h: number): void {
    this.path.push(JSON.stringify([x, y, w, h, this.m]));
  }
  clip(): void {
    this.clipping.push(this.path.join(';'));
  }
  clearRect(x: number, y: number, w: number, h: number): void {
    this.canvas.ops.push(`clearRect ${[x, y, w, h, this.m]}`);
  }
  fillText(text: string, x: number, y: number): void {
    const { m, clipping, fillStyle, font, textAlign, textBaseline } = this;
    this.canvas.ops.push(JSON.stringify({ text, x, y, m, clipping, fillStyle, font, textAlign, textBaseline }));
  }
  createImageData(width: number, height: number): PixelBuffer {
    return { width, height, data: new Uint8ClampedArray(width * height * 4) };
  }
  putImageData(img: PixelBuffer, dx: number, dy: number, sx: number, sy: number, w: number, h: number): void {
    this.puts++;
    const cw = this.canvas.width, chh = this.canvas.height;
    for (let y = sy; y < sy + h; y++) {
      const ty = dy + y;
      if (y < 0 || y >= img.height || ty < 0 || ty >= chh) continue;
      for (let x = sx; x < sx + w; x++) {
        const tx = dx + x;
        if (x < 0 || x >= img.width || tx < 0 || tx >= cw) continue;
        for (let k = 0; k < 4; k++) this.canvas.pixels[(ty * cw + tx) * 4 + k] = img.data[(y * img.width + x) * 4 + k];
      }
    }
  }
}

function makeView(): { view: HeatmapView; canvas: FakeCanvas; ctx: FakeContext } {
  const canvas = new FakeCanvas();
  const ctx = new FakeContext(canvas);
  return { view: new HeatmapView(canvas, ctx), canvas, ctx };
}

/** a small deterministic generator */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

interface Run {
  layers: number;
  prompt: number;
  tokens: number;
  planned: number;
  env: HeatmapEnv;
  /** per layer, per token: mean Δ */
  delta: number[][];
  perLayerAt?: number;
}

function makeRun(seed: number, o: Omit<Run, 'delta'>): Run {
  const r = rng(seed);
  const cols = o.prompt + o.tokens;
  // log-uniform in a band, and a few new extremes later on (colour range changes)
  const delta = Array.from({ length: o.layers }, (_, l) =>
    Array.from({ length: cols }, (_, c) => (c === 9 + l ? 10 ** (2 + l) : c === cols - 3 ? 10 ** (4 + l) : c === 14 ? 1e-13 : 10 ** (-2 + 2 * r()))));
  return { ...o, delta };
}

/** the run in batches of 1–3 tokens, drawing after each (and now and then between a token and its Δ) */
function drawIncrementally(run: Run, seed: number): ReturnType<typeof makeView> {
  const v = makeView();
  const r = rng(seed);
  const { view } = v;
  view.reset(Array.from({ length: run.prompt }, (_, i) => `p${i}`), run.planned);
  view.draw(run.env); // the prompt's labels, no Δ yet
  for (let l = 0; l < run.layers; l++) view.addDelta(l, run.delta[l].slice(0, run.prompt));
  view.draw(run.env);
  let t = 0;
  while (t < run.tokens) {
    const n = Math.min(run.tokens - t, 1 + Math.floor(r() * 3));
    for (let i = t; i < t + n; i++) view.addToken(i % 5 === 0 ? `tok en\n${i}` : `t${i}`);
    if (r() < 0.3) view.draw(run.env);
    for (let l = 0; l < run.layers; l++) view.addDelta(l, run.delta[l].slice(run.prompt + t, run.prompt + t + n));
    t += n;
    if (run.perLayerAt !== undefined && t >= run.perLayerAt && t - n < run.perLayerAt) view.setPerLayer(true);
    view.draw(run.env);
  }
  return v;
}

function drawAtOnce(run: Run): ReturnType<typeof makeView> {
  const v = makeView();
  v.view.reset(Array.from({ length: run.prompt }, (_, i) => `p${i}`), run.planned);
  for (let i = 0; i < run.tokens; i++) v.view.addToken(i % 5 === 0 ? `tok en\n${i}` : `t${i}`);
  for (let l = 0; l < run.layers; l++) v.view.addDelta(l, run.delta[l]);
  if (run.perLayerAt !== undefined) v.view.setPerLayer(true);
  v.view.draw(run.env);
  return v;
}

function assertSameCanvas(a: FakeCanvas, b: FakeCanvas, what: string): void {
  assert.equal(a.width, b.width, `${what}: width`);
  assert.equal(a.height, b.height, `${what}: height`);
  assert.deepEqual(a.style, b.style, `${what}: CSS size`);
  assert.deepEqual(a.ops, b.ops, `${what}: text calls`);
  let differ = 0;
  for (let i = 0; i < a.pixels.length; i++) if (a.pixels[i] !== b.pixels[i]) differ++;
  assert.equal(differ, 0, `${what}: ${differ} of ${a.pixels.length} pixel bytes differ from the full redraw`);
}

const pixel = (c: FakeCanvas, x: number, y: number): number[] => [...c.pixels.subarray((y * c.width + x) * 4, (y * c.width + x) * 4 + 4)];

describe('Δ heatmap: incremental draws = one full redraw of the same data', () => {
  const cases: Array<[string, Omit<Run, 'delta'>]> = [
    ['24 layers, scaled as a whole, dpr 1, the page default (planned columns fit)', { layers: 24, prompt: 16, tokens: 64, planned: 16 + 64, env: { avail: 792, dpr: 1 } }],
    ['6 layers, per-layer scale from token 20, dpr 1.5, wide cells with labels', { layers: 6, prompt: 5, tokens: 30, planned: 5 + 30, env: { avail: 1200, dpr: 1.5 }, perLayerAt: 20 }],
    ['3 layers, more columns than planned and than fit (the layout grows by doublings), dpr 1.25', { layers: 3, prompt: 4, tokens: 90, planned: 12, env: { avail: 200, dpr: 1.25 } }],
  ];
  cases.forEach(([name, o], i) => {
    it(name, () => {
      const run = makeRun(100 + i, o);
      const inc = drawIncrementally(run, 7 + i);
      const full = drawAtOnce(run);
      assertSameCanvas(inc.canvas, full.canvas, name);
      assert.equal(full.view.stats.fullDraws, 1);
      const s = inc.view.stats;
      assert.ok(s.incrementalDraws > s.fullDraws, `${s.incrementalDraws} incremental draws, ${s.fullDraws} full`);
      assert.ok(s.rowRepaints > 0, 'a new extreme repainted rows (the test exercises it)');
      const layout = inc.view.layout!;
      if (i === 0) {
        // the page default: laid out once with Δ (and once for the prompt's labels before), the rest incremental; and
        // far fewer pixels put than redrawing the grid at each draw
        assert.equal(s.fullDraws, 2);
        const draws = s.fullDraws + s.incrementalDraws;
        assert.ok(s.pixelsPut < (draws * layout.gw * layout.gh) / 4, `${s.pixelsPut} pixels put in ${draws} draws of a ${layout.gw}×${layout.gh} grid`);
        // what a cell holds: its colour on the whole map's scale of log Δ
        const all = run.delta.flat().map((v) => Math.log10(Math.max(v, 1e-12)));
        const lo = Math.min(...all), hi = Math.max(...all);
        const [r, c] = [3, 20];
        const want = colourRGB((Math.log10(run.delta[r][c]) - lo) / (hi - lo));
        const x = layout.x0 + c * layout.cw + 1, y = layout.y0 + r * layout.ch + 1;
        assert.deepEqual(pixel(inc.canvas, x, y), [...want, 255]);
        // the divider: red, one px left of the first generated column
        assert.deepEqual(pixel(inc.canvas, layout.x0 + o.prompt * layout.cw - 1, layout.y0 + 1), [0xee, 0x33, 0x33, 255]);
        assert.equal(layout.capacity, 80);
      }
      if (i === 2) assert.ok(s.fullDraws >= 3 && layout.capacity >= 94 && layout.cw === 3, `grew: ${s.fullDraws} layouts, capacity ${layout.capacity}`);
    });
  });

  it('the layout capacity: the planned columns while they fit, doublings past that, constant within each step', () => {
    assert.equal(heatmapCapacity(10, 80, 248), 80);
    assert.equal(heatmapCapacity(80, 80, 248), 80);
    assert.equal(heatmapCapacity(300, 4096, 248), 496);
    assert.equal(heatmapCapacity(500, 4096, 248), 992);
    assert.equal(heatmapCapacity(3000, 3500, 248), 3500); // the last step stops at the plan
    assert.equal(heatmapCapacity(13, 12, 100), 24); // past the plan: doublings of it
    for (let cols = 1, prev = heatmapCapacity(1, 12, 48); cols < 400; cols++) {
      const cap = heatmapCapacity(cols, 12, 48);
      assert.ok(cap >= cols);
      if (cols <= prev) assert.equal(cap, prev, `columns ${cols} within ${prev}`);
      prev = cap;
    }
  });
});
