/** SVG charts: structure, series, axes, NaN/empty input, ticks, escaping. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PlotError, formatTick, lineChartSvg, niceTicks, writeLineChart } from '../../src/train/plot.js';
import { curvesSvg } from '../../src/train/curves.js';
import type { History } from '../../src/train/trainer.js';

/** A minimal well-formedness check: every tag opened is closed, in order. */
function assertBalanced(svg: string): void {
  const stack: string[] = [];
  const re = /<(\/?)([a-zA-Z][\w:-]*)[^>]*?(\/?)>/g;
  for (const m of svg.replace(/<\?xml[^>]*\?>/, '').matchAll(re)) {
    const [, close, name, self] = m;
    if (self) continue;
    if (close) assert.equal(stack.pop(), name, `closing </${name}>`);
    else stack.push(name);
  }
  assert.deepEqual(stack, [], 'all tags closed');
}

function pathPoints(svg: string, series: string): number {
  const g = new RegExp(`<g data-series="${series}">\\s*<path d="([^"]*)"`).exec(svg);
  if (!g) return 0;
  return (g[1].match(/[ML]/g) ?? []).length;
}

test('two panels, two axes: train/val loss and accuracy, with title, labels, ticks and legend', () => {
  const steps = Array.from({ length: 100 }, (_, i) => i + 1);
  const loss = steps.map((s) => 3 * Math.exp(-s / 30) + 0.1);
  const evalSteps = [20, 40, 60, 80, 100];
  const svg = lineChartSvg({
    title: 'selective copying <L=256>',
    xLabel: 'step',
    panels: [
      {
        title: 'loss',
        yLabel: 'cross-entropy',
        y2Label: 'accuracy',
        series: [
          { name: 'train loss', x: steps, y: loss },
          { name: 'val loss', x: evalSteps, y: evalSteps.map((s) => loss[s - 1] + 0.05), dashed: true },
          { name: 'val acc', x: evalSteps, y: [0.1, 0.4, 0.8, 0.95, 0.99], axis: 'right' },
        ],
      },
      { title: 'learning rate', series: [{ name: 'lr', x: steps, y: steps.map((s) => 1e-3 * Math.min(1, s / 10)) }] },
    ],
  });
  assert.ok(svg.startsWith('<?xml'));
  assert.match(svg, /<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="800" height="\d+" viewBox/);
  assertBalanced(svg);
  assert.ok(svg.includes('selective copying &lt;L=256&gt;'), 'title escaped');
  for (const name of ['train loss', 'val loss', 'val acc', 'lr']) assert.ok(svg.includes(`data-series="${name}"`), name);
  assert.equal(pathPoints(svg, 'train loss'), 100);
  assert.equal(pathPoints(svg, 'val acc'), 5);
  assert.ok(svg.includes('stroke-dasharray'), 'dashed series');
  assert.match(svg, /class="y-label"[^>]*>cross-entropy</);
  assert.match(svg, /class="y2-label"[^>]*>accuracy</);
  assert.match(svg, /class="x-label"[^>]*>step</);
  // x ticks 0 … 100, right-axis ticks in [0, 1]
  assert.ok(svg.includes('>100</text>'));
  assert.ok(svg.includes('>0.2</text>') || svg.includes('>0.20</text>'));
  assert.equal((svg.match(/class="legend"/g) ?? []).length, 2);
  assert.ok(!/NaN|Infinity|undefined/.test(svg), 'no NaN coordinates');
});

test('NaN and Infinity break lines; a single point is a dot; empty input says "no data"', () => {
  const svg = lineChartSvg({
    panels: [
      {
        series: [
          { name: 'gappy', y: [1, 2, NaN, 3, 4, Infinity, 5] },
          { name: 'single', y: [NaN, 2.5, NaN] },
        ],
      },
      { series: [{ name: 'empty', y: [] }, { name: 'all nan', y: [NaN, NaN] }] },
      { series: [] },
    ],
  });
  assertBalanced(svg);
  assert.ok(!/NaN|Infinity|undefined/.test(svg));
  const d = /<g data-series="gappy">\s*<path d="([^"]*)"/.exec(svg)![1];
  assert.equal((d.match(/M/g) ?? []).length, 2, 'two runs: [1,2] [3,4] and a dot for 5');
  assert.equal((d.match(/L/g) ?? []).length, 2);
  assert.match(svg, /<g data-series="gappy">[^]*?<circle/);
  assert.match(svg, /<g data-series="single">\s*<circle/);
  assert.equal((svg.match(/class="no-data"/g) ?? []).length, 2);
  // constant data still gets a non-degenerate axis
  assertBalanced(lineChartSvg({ panels: [{ series: [{ name: 'flat', y: [2, 2, 2] }] }] }));
  assert.throws(() => lineChartSvg({ panels: [] }), PlotError);
  assert.throws(() => lineChartSvg({ panels: [{ series: [{ name: 'bad', x: [1, 2], y: [1] }] }] }), /series "bad": x has 2 values, y has 1/);
});

test('long series are reduced but keep their extremes', () => {
  const n = 100_000;
  const y = Array.from({ length: n }, (_, i) => Math.sin(i / 1000));
  y[54321] = 50; // a spike
  const svg = lineChartSvg({ panels: [{ series: [{ name: 'long', y }] }], maxPoints: 1000 });
  const pts = pathPoints(svg, 'long');
  assert.ok(pts <= 1002 && pts > 500, `${pts} points`);
  assert.ok(svg.length < 100_000, `${svg.length} bytes`);
  assert.ok(svg.includes('>50</text>') || svg.includes('>60</text>'), 'the spike sets the y range');
});

test('the legend goes where it hides no data', () => {
  // a diagonal from bottom left to top right: the top-left corner is free
  const svg = lineChartSvg({ width: 800, panels: [{ series: [{ name: 'diag', y: Array.from({ length: 50 }, (_, i) => i) }] }] });
  const rect = /<g class="legend">\s*<rect x="([\d.]+)" y="([\d.]+)"/.exec(svg)!;
  assert.equal(Number(rect[1]), 76, 'left edge of the plot + 6');
  const top = /<g class="legend">\s*<rect x="[\d.]+" y="([\d.]+)"/.exec(svg)!;
  assert.ok(Number(top[1]) < 60, 'at the top');
});

test('nice ticks and tick labels', () => {
  const unit = niceTicks(0, 1, 5).ticks;
  assert.equal(unit.length, 6);
  unit.forEach((v, i) => assert.ok(Math.abs(v - i * 0.2) < 1e-12));
  const t = niceTicks(0.13, 2.9, 5);
  assert.equal(t.step, 0.5);
  assert.equal(t.lo, 0);
  assert.equal(t.hi, 3);
  assert.deepEqual(niceTicks(3, 3).ticks.length > 1, true);
  assert.equal(formatTick(0.6000000000000001, 0.2), '0.6');
  assert.equal(formatTick(20000, 5000), '20k');
  assert.equal(formatTick(1500, 500), '1500');
  assert.equal(formatTick(2.5e-5, 5e-6), '2.5e-5');
  assert.equal(formatTick(0, 0.1), '0.0');
});

test('writeLineChart writes the file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-plot-'));
  const f = path.join(dir, 'curves.svg');
  writeLineChart(f, { panels: [{ series: [{ name: 'a', y: [1, 2, 3] }] }] });
  assert.ok(fs.readFileSync(f, 'utf8').includes('data-series="a"'));
  assert.deepEqual(fs.readdirSync(dir), ['curves.svg']);
  assert.throws(() => writeLineChart(path.join(dir, 'no', 'x.svg'), { panels: [{ series: [] }] }), /cannot write chart/);
  fs.rmSync(dir, { recursive: true });
});

test('curves.svg: every series has its own colour (val acc is not drawn in train accuracy\'s green)', () => {
  const steps = Array.from({ length: 40 }, (_, i) => i + 1);
  const h: History = {
    step: steps,
    loss: steps.map((s) => 3 / s),
    lr: steps.map(() => 1e-3),
    grad_norm: steps.map(() => 1),
    accuracy: steps.map((s) => s / 40),
    eval_step: [20, 40],
    eval: { val_loss: [0.5, 0.3], val_bits_per_byte: [0.7, 0.4], val_acc: [0.5, 0.8] },
    train_seconds: 1,
    tokens: 100,
  };
  const svg = curvesSvg(h, 'run');
  const colours = new Map<string, string>();
  for (const m of svg.matchAll(/<g data-series="([^"]+)">\s*<path d="[^"]*" stroke="([^"]+)"/g)) colours.set(m[1], m[2]);
  assert.deepEqual([...colours.keys()].sort(), ['train accuracy', 'train loss', 'train loss (smoothed)', 'val acc', 'val bits per byte', 'val loss']);
  assert.notEqual(colours.get('val acc'), colours.get('train accuracy'), `val acc ${colours.get('val acc')} vs train accuracy ${colours.get('train accuracy')}`);
  assert.equal(new Set(colours.values()).size, colours.size, `one colour per series: ${JSON.stringify([...colours])}`);
});
