/**
 * Dependency-free SVG line charts for training curves: one or more panels stacked vertically,
 * each with its own series, a left y axis and optionally a right one (e.g. loss on the left,
 * accuracy on the right), ticks at "nice" values (1, 2, 5 × 10^k), axis labels, a legend and a
 * title.
 *
 * Non-finite points (NaN, ±Infinity) are skipped and break the line; a series with a single finite
 * point is drawn as a dot; a panel with no finite point says "no data". Series longer than
 * `maxPoints` are reduced by keeping the minimum and maximum of each bucket (spikes stay visible).
 * Either axis may be logarithmic (`xScale`, a panel's `yScale`: ticks at 1/2/5 × 10^k, values ≤ 0 skipped),
 * and a panel may carry marks: labelled crosses at an x (e.g. "out of memory" where a point could not run).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MambaTsError } from '../errors.js';

export class PlotError extends MambaTsError {}

export interface Series {
  name: string;
  /** x values (default 1 … n) */
  x?: ArrayLike<number>;
  y: ArrayLike<number>;
  /** which y axis (default 'left') */
  axis?: 'left' | 'right';
  /** CSS color (default: from the palette) */
  color?: string;
  dashed?: boolean;
  /** a dot at every point, not only where a point stands alone */
  markers?: boolean;
}

/** A labelled cross at `x` (at `y` on the left axis, or along the bottom of the plot when y is absent). */
export interface Mark {
  x: number;
  y?: number;
  label: string;
  color?: string;
}

export interface Panel {
  title?: string;
  yLabel?: string;
  /** label of the right axis (shown when a series uses it) */
  y2Label?: string;
  series: Series[];
  /** fixed ranges instead of the data's */
  yRange?: readonly [number, number];
  y2Range?: readonly [number, number];
  /** scale of the left axis (default linear) */
  yScale?: Scale;
  marks?: Mark[];
}

export type Scale = 'linear' | 'log';

export interface ChartOptions {
  title?: string;
  xLabel?: string;
  panels: Panel[];
  /** total width (default 800) */
  width?: number;
  /** height of each panel's plot area plus its margins (default 320) */
  panelHeight?: number;
  /** per series, after reduction (default 2000) */
  maxPoints?: number;
  /** default linear */
  xScale?: Scale;
  /** x ticks at these values with these labels instead of computed ones */
  xTicks?: { at: number; label: string }[];
}

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] as string);
}

/** Tick values covering [lo, hi] at a 1/2/5 × 10^k step, about `count` of them. */
export function niceTicks(lo: number, hi: number, count = 5): { ticks: number[]; step: number; lo: number; hi: number } {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new PlotError(`niceTicks: range [${lo}, ${hi}] is not finite`);
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) {
    const d = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= d;
    hi += d;
  }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / mag;
  const step = (f >= Math.SQRT1_2 * 10 ? 10 : f >= Math.sqrt(10) ? 5 : f >= Math.SQRT2 ? 2 : 1) * mag; // nearest 1/2/5 step (geometrically)
  const a = Math.floor(lo / step + 1e-9) * step;
  const b = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let i = 0; ; i++) {
    const v = a + i * step;
    if (v > b + step * 1e-6) break;
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return { ticks, step, lo: a, hi: b };
}

/** A tick label with as many decimals as the step needs; k/M suffixes and exponents for extremes. */
export function formatTick(v: number, step: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e7 || a < 1e-4)) return v.toExponential(Math.max(0, Math.min(3, -Math.floor(Math.log10(step)) + Math.floor(Math.log10(a)))));
  if (a >= 1e3 && step >= 1000) {
    const [d, s] = a >= 1e6 ? [1e6, 'M'] : [1e3, 'k'];
    const dec = Math.max(0, -Math.floor(Math.log10(step / d) + 1e-9));
    return `${(v / d).toFixed(dec)}${s}`;
  }
  const dec = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toFixed(Math.min(dec, 8));
}

/** Ticks of a log axis over [lo, hi] given in log10 units: whole decades, with 2 and 5 between when few. */
export function logTicks(lo: number, hi: number): { ticks: { at: number; label: string }[]; lo: number; hi: number } {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new PlotError(`logTicks: range [${lo}, ${hi}] is not finite`);
  if (hi < lo) [lo, hi] = [hi, lo];
  let a = Math.floor(lo + 1e-9);
  let b = Math.ceil(hi - 1e-9);
  if (b <= a) b = a + 1;
  const mults = b - a <= 2 ? [1, 2, 5] : b - a <= 4 ? [1, 3] : [1];
  const ticks: { at: number; label: string }[] = [];
  for (let k = a; k <= b; k++) {
    for (const m of mults) {
      const at = k + Math.log10(m);
      if (at > b + 1e-9) continue;
      const v = m * 10 ** k;
      ticks.push({ at, label: formatTick(v, v) });
    }
  }
  [a, b] = [Math.min(a, lo), Math.max(b, hi)];
  return { ticks, lo: a, hi: b };
}

interface Axis {
  /** range in plot units (log10 of the value on a log axis) */
  lo: number;
  hi: number;
  ticks: { at: number; label: string }[];
}

/** an axis over [lo, hi] (plot units) */
function makeAxis(lo: number, hi: number, count: number, scale: Scale): Axis {
  if (scale === 'log') return logTicks(lo, hi);
  const t = niceTicks(lo, hi, count);
  return { lo: t.lo, hi: t.hi, ticks: t.ticks.map((v) => ({ at: v, label: formatTick(v, t.step) })) };
}

/** a value in plot units: log10 on a log axis (NaN for values ≤ 0, which are then skipped) */
const toPlot = (v: number, scale: Scale): number => (scale === 'log' ? (v > 0 ? Math.log10(v) : NaN) : v);

/** a series with its values in plot units */
function inPlotUnits(s: Series, xScale: Scale, yScale: Scale): Series {
  if (xScale === 'linear' && (yScale === 'linear' || s.axis === 'right')) return s;
  const n = s.y.length;
  const x = Float64Array.from({ length: n }, (_, i) => toPlot(s.x ? s.x[i] : i + 1, xScale));
  const y = s.axis === 'right' ? s.y : Float64Array.from({ length: n }, (_, i) => toPlot(s.y[i], yScale));
  if (s.x !== undefined && s.x.length !== n) throw new PlotError(`series "${s.name}": x has ${s.x.length} values, y has ${n}`);
  return { ...s, x, y };
}

interface Pt {
  x: number;
  y: number;
}

/** Finite points of a series split into runs at non-finite values, reduced to ~maxPoints. */
function segments(s: Series, maxPoints: number): Pt[][] {
  const n = s.y.length;
  if (s.x !== undefined && s.x.length !== n) throw new PlotError(`series "${s.name}": x has ${s.x.length} values, y has ${n}`);
  const xs = s.x;
  const stride = n > maxPoints ? Math.ceil(n / Math.max(1, Math.floor(maxPoints / 2))) : 1;
  const out: Pt[][] = [];
  let cur: Pt[] = [];
  const flush = () => {
    if (cur.length > 0) out.push(cur);
    cur = [];
  };
  for (let i0 = 0; i0 < n; i0 += stride) {
    // bucket [i0, i0 + stride): min and max (in x order), or the single point
    let minI = -1;
    let maxI = -1;
    let broken = false;
    for (let i = i0; i < Math.min(n, i0 + stride); i++) {
      const x = xs ? xs[i] : i + 1;
      const y = s.y[i];
      if (!Number.isFinite(x) || !Number.isFinite(y)) {
        broken = true;
        continue;
      }
      if (minI < 0 || y < s.y[minI]) minI = i;
      if (maxI < 0 || y > s.y[maxI]) maxI = i;
    }
    if (broken && stride === 1) flush();
    if (minI < 0) continue;
    const idx = minI === maxI ? [minI] : minI < maxI ? [minI, maxI] : [maxI, minI];
    for (const i of idx) cur.push({ x: xs ? xs[i] : i + 1, y: s.y[i] });
  }
  flush();
  return out;
}

function extent(values: number[], fixed?: readonly [number, number]): [number, number] | null {
  if (fixed) return [fixed[0], fixed[1]];
  if (values.length === 0) return null;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

const fmt = (v: number): string => (Math.round(v * 100) / 100).toString();

/** The chart as an SVG document. */
export function lineChartSvg(opts: ChartOptions): string {
  if (!opts || !Array.isArray(opts.panels) || opts.panels.length === 0) throw new PlotError('lineChartSvg: expected at least one panel');
  const W = opts.width ?? 800;
  const PH = opts.panelHeight ?? 320;
  const maxPoints = opts.maxPoints ?? 2000;
  const titleH = opts.title ? 34 : 10;
  const xLabelH = opts.xLabel ? 22 : 0;
  const H = titleH + PH * opts.panels.length + xLabelH;
  const ml = 70;
  const mr = 70;
  const out: string[] = [];
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  if (opts.title) out.push(`<text class="title" x="${W / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(opts.title)}</text>`);

  // one x range for all panels
  const xScale = opts.xScale ?? 'linear';
  const panelsData = opts.panels.map((p) => p.series.map((s0) => {
    const s = inPlotUnits(s0, xScale, p.yScale ?? 'linear');
    return { s, segs: segments(s, maxPoints) };
  }));
  const allX: number[] = [];
  for (const pd of panelsData) for (const { segs } of pd) for (const seg of segs) for (const pt of seg) allX.push(pt.x);
  for (const p of opts.panels) for (const m of p.marks ?? []) if (Number.isFinite(toPlot(m.x, xScale))) allX.push(toPlot(m.x, xScale));
  for (const t of opts.xTicks ?? []) if (Number.isFinite(toPlot(t.at, xScale))) allX.push(toPlot(t.at, xScale));
  const xe = extent(allX) ?? [0, 1];
  const xt: Axis = opts.xTicks
    ? (() => {
        const ticks = opts.xTicks.map((t) => ({ at: toPlot(t.at, xScale), label: t.label })).filter((t) => Number.isFinite(t.at));
        const pad = xe[1] > xe[0] ? (xe[1] - xe[0]) * 0.04 : 1;
        return { lo: xe[0] - pad, hi: xe[1] + pad, ticks };
      })()
    : makeAxis(xe[0], xe[1], Math.max(2, Math.floor((W - ml - mr) / 90)), xScale);
  // series without a colour take the palette's next one not claimed by a series that has one
  const claimed = new Set(opts.panels.flatMap((p) => p.series.map((s) => s.color?.toLowerCase()).filter((c): c is string => c !== undefined)));
  const free = PALETTE.filter((c) => !claimed.has(c.toLowerCase()));
  const palette = free.length > 0 ? free : PALETTE;
  let colorIdx = 0;

  opts.panels.forEach((panel, pi) => {
    const top = titleH + pi * PH + (panel.title ? 26 : 12);
    const bottom = titleH + (pi + 1) * PH - 34;
    const left = ml;
    const right = W - mr;
    const pd = panelsData[pi];
    if (panel.title) out.push(`<text class="panel-title" x="${(left + right) / 2}" y="${top - 8}" text-anchor="middle" font-size="13" font-weight="bold">${escapeXml(panel.title)}</text>`);

    const yScale = panel.yScale ?? 'linear';
    const ys = { left: [] as number[], right: [] as number[] };
    for (const { s, segs } of pd) for (const seg of segs) for (const pt of seg) ys[s.axis ?? 'left'].push(pt.y);
    for (const m of panel.marks ?? []) if (m.y !== undefined && Number.isFinite(toPlot(m.y, yScale))) ys.left.push(toPlot(m.y, yScale));
    const hasRight = pd.some(({ s }) => s.axis === 'right');
    const yr = panel.yRange ? ([toPlot(panel.yRange[0], yScale), toPlot(panel.yRange[1], yScale)] as const) : undefined;
    const le = extent(ys.left, yr) ?? [0, 1];
    const yt = makeAxis(le[0], le[1], Math.max(2, Math.floor((bottom - top) / 50)), yScale);
    const re = extent(ys.right, panel.y2Range) ?? [0, 1];
    const yt2 = makeAxis(re[0], re[1], Math.max(2, Math.floor((bottom - top) / 50)), 'linear');
    const sx = (x: number) => left + ((x - xt.lo) / (xt.hi - xt.lo)) * (right - left);
    const syL = (y: number) => bottom - ((y - yt.lo) / (yt.hi - yt.lo)) * (bottom - top);
    const syR = (y: number) => bottom - ((y - yt2.lo) / (yt2.hi - yt2.lo)) * (bottom - top);

    // grid, ticks and axes
    out.push(`<g class="axes" stroke="#000000" stroke-width="1">`);
    for (const { at } of yt.ticks) out.push(`<line x1="${left}" y1="${fmt(syL(at))}" x2="${right}" y2="${fmt(syL(at))}" stroke="#e5e5e5"/>`);
    for (const { at } of xt.ticks) out.push(`<line x1="${fmt(sx(at))}" y1="${top}" x2="${fmt(sx(at))}" y2="${bottom}" stroke="#e5e5e5"/>`);
    out.push(`<rect x="${left}" y="${top}" width="${right - left}" height="${bottom - top}" fill="none"/>`);
    out.push(`</g>`);
    out.push(`<g class="ticks" fill="#000000">`);
    for (const t of yt.ticks) out.push(`<text x="${left - 6}" y="${fmt(syL(t.at) + 4)}" text-anchor="end">${escapeXml(t.label)}</text>`);
    if (hasRight) for (const t of yt2.ticks) out.push(`<text x="${right + 6}" y="${fmt(syR(t.at) + 4)}" text-anchor="start">${escapeXml(t.label)}</text>`);
    for (const t of xt.ticks) out.push(`<text x="${fmt(sx(t.at))}" y="${bottom + 16}" text-anchor="middle">${escapeXml(t.label)}</text>`);
    out.push(`</g>`);
    const midY = (top + bottom) / 2;
    if (panel.yLabel) out.push(`<text class="y-label" x="16" y="${midY}" text-anchor="middle" transform="rotate(-90 16 ${midY})">${escapeXml(panel.yLabel)}</text>`);
    if (hasRight && panel.y2Label) {
      out.push(`<text class="y2-label" x="${W - 14}" y="${midY}" text-anchor="middle" transform="rotate(90 ${W - 14} ${midY})">${escapeXml(panel.y2Label)}</text>`);
    }

    // series
    const legend: { name: string; color: string; dashed: boolean }[] = [];
    let any = false;
    const screen: [number, number][] = []; // plotted points, for placing the legend
    out.push(`<clipPath id="plot-area-${pi}"><rect x="${left}" y="${top}" width="${right - left}" height="${bottom - top}"/></clipPath>`);
    out.push(`<g class="series" fill="none" stroke-width="1.6" stroke-linejoin="round" clip-path="url(#plot-area-${pi})">`);
    for (const { s, segs } of pd) {
      const color = s.color ?? palette[colorIdx++ % palette.length];
      legend.push({ name: s.name, color, dashed: !!s.dashed });
      const sy = s.axis === 'right' ? syR : syL;
      const dash = s.dashed ? ` stroke-dasharray="6 4"` : '';
      const d: string[] = [];
      const dots: string[] = [];
      for (const seg of segs) {
        any = true;
        for (let i = 0; i < seg.length; i++) {
          const x1 = sx(seg[i].x);
          const y1 = sy(seg[i].y);
          screen.push([x1, y1]);
          if (i + 1 < seg.length) {
            // a few points along the segment, so sparse series count too
            const x2 = sx(seg[i + 1].x);
            const y2 = sy(seg[i + 1].y);
            for (let k = 1; k < 8; k++) screen.push([x1 + ((x2 - x1) * k) / 8, y1 + ((y2 - y1) * k) / 8]);
          }
        }
        if (s.markers && seg.length > 1) for (const p of seg) dots.push(`<circle cx="${fmt(sx(p.x))}" cy="${fmt(sy(p.y))}" r="3" fill="${color}" stroke="none"/>`);
        if (seg.length === 1) dots.push(`<circle cx="${fmt(sx(seg[0].x))}" cy="${fmt(sy(seg[0].y))}" r="2.5" fill="${color}" stroke="none"/>`);
        else d.push(seg.map((p, i) => `${i === 0 ? 'M' : 'L'}${fmt(sx(p.x))} ${fmt(sy(p.y))}`).join(''));
      }
      out.push(`<g data-series="${escapeXml(s.name)}">`);
      if (d.length > 0) out.push(`<path d="${d.join('')}" stroke="${color}"${dash}/>`);
      out.push(...dots);
      out.push(`</g>`);
    }
    out.push(`</g>`);
    // marks: a cross at x (at y, or stacked along the bottom), its label beside it
    const marks = (panel.marks ?? []).filter((m) => Number.isFinite(toPlot(m.x, xScale)));
    if (marks.length > 0) {
      out.push(`<g class="marks" font-size="11">`);
      marks.forEach((m, i) => {
        const x = sx(toPlot(m.x, xScale));
        const yv = m.y !== undefined ? toPlot(m.y, yScale) : NaN;
        const y = Number.isFinite(yv) ? syL(yv) : bottom - 10 - 14 * i;
        const c = m.color ?? '#d62728';
        const anchor = x > (left + right) / 2 ? 'end' : 'start';
        const tx = anchor === 'end' ? x - 8 : x + 8;
        screen.push([x, y]);
        out.push(`<path d="M${fmt(x - 5)} ${fmt(y - 5)}L${fmt(x + 5)} ${fmt(y + 5)}M${fmt(x - 5)} ${fmt(y + 5)}L${fmt(x + 5)} ${fmt(y - 5)}" stroke="${c}" stroke-width="2" fill="none"/>`);
        out.push(`<text class="mark" x="${fmt(tx)}" y="${fmt(y + 4)}" text-anchor="${anchor}" fill="${c}">${escapeXml(m.label)}</text>`);
      });
      out.push(`</g>`);
    }
    if (!any) out.push(`<text class="no-data" x="${(left + right) / 2}" y="${midY}" text-anchor="middle" fill="#888888">no data</text>`);

    // legend inside the plot, at the corner (or top/bottom middle) hiding the fewest plotted points; top right on ties
    if (legend.length > 0) {
      const lw = Math.min(right - left - 10, 30 + 7 * Math.max(...legend.map((l) => l.name.length)));
      const lh = legend.length * 16 + 6;
      const corners: [number, number][] = [
        [right - lw - 6, top + 6],
        [left + 6, top + 6],
        [right - lw - 6, bottom - lh - 6],
        [left + 6, bottom - lh - 6],
        [(left + right - lw) / 2, top + 6],
        [(left + right - lw) / 2, bottom - lh - 6],
      ];
      let best = 0;
      let bestCount = Infinity;
      corners.forEach(([cx, cy], ci) => {
        let c = 0;
        for (const [px, py] of screen) if (px >= cx - 4 && px <= cx + lw + 4 && py >= cy - 4 && py <= cy + lh + 4) c++;
        if (c < bestCount) {
          bestCount = c;
          best = ci;
        }
      });
      const [lx, ly] = corners[best];
      out.push(`<g class="legend">`);
      out.push(`<rect x="${lx}" y="${ly}" width="${lw}" height="${lh}" fill="#ffffff" fill-opacity="0.85" stroke="#cccccc"/>`);
      legend.forEach((l, i) => {
        const yy = ly + 14 + i * 16;
        out.push(`<line x1="${lx + 6}" y1="${yy - 4}" x2="${lx + 24}" y2="${yy - 4}" stroke="${l.color}" stroke-width="2"${l.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
        out.push(`<text x="${lx + 28}" y="${yy}">${escapeXml(l.name)}</text>`);
      });
      out.push(`</g>`);
    }
  });
  if (opts.xLabel) out.push(`<text class="x-label" x="${(ml + W - mr) / 2}" y="${H - 8}" text-anchor="middle">${escapeXml(opts.xLabel)}</text>`);
  out.push(`</svg>`);
  return out.join('\n') + '\n';
}

/** Write `lineChartSvg(opts)` to `file` (via a temporary file and a rename). */
export function writeLineChart(file: string, opts: ChartOptions): void {
  const svg = lineChartSvg(opts);
  const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, svg);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new PlotError(`cannot write chart ${file}: ${(e as Error).message}`);
  }
}
