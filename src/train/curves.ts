/**
 * Loss and accuracy curves of a run, drawn as `curves.svg` next to the checkpoint: training loss (and a
 * smoothed copy), evaluation metrics, training accuracy when the task has one.
 */
import * as path from 'node:path';
import { lineChartSvg, type Panel, type Series, writeLineChart } from './plot.js';
import type { History } from './trainer.js';

/** exponential moving average (bias-corrected), for a readable loss curve */
export function smooth(y: readonly number[], beta = 0.9): number[] {
  const out: number[] = [];
  let m = 0;
  let w = 0;
  for (const v of y) {
    if (!Number.isFinite(v)) {
      out.push(NaN);
      continue;
    }
    m = beta * m + (1 - beta) * v;
    w = beta * w + (1 - beta);
    out.push(m / w);
  }
  return out;
}

export function curvesPanels(h: History): Panel[] {
  const loss: Series[] = [{ name: 'train loss', x: h.step, y: h.loss, color: '#9ecae1' }];
  if (h.loss.length > 20) loss.push({ name: 'train loss (smoothed)', x: h.step, y: smooth(h.loss), color: '#1f77b4' });
  const acc: Series[] = [];
  for (const [k, v] of Object.entries(h.eval)) {
    const s: Series = { name: k.replace(/_/g, ' '), x: h.eval_step.slice(0, v.length), y: v };
    if (/acc/.test(k)) acc.push(s);
    else loss.push({ ...s, dashed: true });
  }
  if (h.accuracy.some((a) => Number.isFinite(a))) acc.unshift({ name: 'train accuracy', x: h.step, y: smooth(h.accuracy), color: '#2ca02c' });
  const panels: Panel[] = [{ title: 'loss', yLabel: 'loss', series: loss }];
  if (acc.length > 0) panels.push({ title: 'accuracy', yLabel: 'accuracy', series: acc, yRange: [0, 1] });
  return panels;
}

/** write `<dir>/curves.svg`; returns its path */
export function writeCurves(dir: string, h: History, title: string): string {
  const file = path.join(dir, 'curves.svg');
  writeLineChart(file, { title, xLabel: 'step', panels: curvesPanels(h) });
  return file;
}

export function curvesSvg(h: History, title: string): string {
  return lineChartSvg({ title, xLabel: 'step', panels: curvesPanels(h) });
}
