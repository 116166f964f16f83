/**
 * The Δ heatmap's drawing, without the DOM (the page's heatmap.ts gives it the canvas; the unit test a recording fake):
 * one row per Mamba layer, one column per token (prompt, then generated). Colour is log Δ: dark blue = small Δ (the
 * state is kept: the model remembers), bright yellow = large Δ (the state is overwritten by this token: it forgets).
 * Scaled over the whole map, or per layer.
 *
 * Drawn incrementally, and pixel for pixel as a full redraw of the same data would draw it:
 * - the cells and the prompt | generated divider are pixels of one RGBA buffer (the grid, at device resolution, every
 *   cell whole device pixels of one opaque colour), put on the canvas with putImageData for the dirty rectangle only:
 *   the new columns of each row, or a whole row when its colour range changed (a new extreme of log Δ; every row when
 *   the map is scaled as a whole), and the divider again when the column under it was repainted. No antialiasing and
 *   no blending, so what a pixel holds does not depend on the order or the batches it was painted in;
 * - text (the layer names left of the grid, the token labels below it) is drawn clipped to outside the grid, once per
 *   label, in label order: a full redraw issues the same calls in the same order on a cleared canvas;
 * - the layout (cell size, canvas size) is made for the columns the run plans (prompt + max new tokens) while they fit
 *   the view at the smallest cell width, and grows by doublings past that: a layout change (also more layers, another
 *   width of the view or device pixel ratio) clears the canvas and draws everything, a few times a run at most.
 */

/** what the heatmap draws on: a CanvasRenderingContext2D has all of it */
export interface HeatmapContext {
  fillStyle: unknown;
  font: string;
  textAlign: unknown;
  textBaseline: unknown;
  setTransform(a: number, b: number, c: number, d: number, e: number, f: number): void;
  clearRect(x: number, y: number, w: number, h: number): void;
  fillText(text: string, x: number, y: number): void;
  save(): void;
  restore(): void;
  translate(x: number, y: number): void;
  rotate(angle: number): void;
  beginPath(): void;
  rect(x: number, y: number, w: number, h: number): void;
  clip(): void;
  createImageData(width: number, height: number): PixelBuffer;
  putImageData(image: PixelBuffer, dx: number, dy: number, dirtyX: number, dirtyY: number, dirtyWidth: number, dirtyHeight: number): void;
}
/** RGBA pixels, row-major (an ImageData) */
export interface PixelBuffer {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8ClampedArray;
}
/** the canvas element's size (device pixels) and CSS size */
export interface HeatmapCanvas {
  width: number;
  height: number;
  style: { width: string; height: string };
}
/** what the page around the canvas tells: the width available (CSS px) and the device pixel ratio */
export interface HeatmapEnv {
  avail: number;
  dpr: number;
}

/** the geometry of one layout, in CSS px (gx, gw, gh: the grid buffer's place and size in device px) */
export interface HeatmapLayout {
  x0: number;
  y0: number;
  cw: number;
  ch: number;
  /** the columns laid out for (≥ the columns shown) */
  capacity: number;
  cols: number;
  layers: number[];
  showLabels: boolean;
  width: number;
  height: number;
  /** the grid's bottom edge (CSS px): cells, divider; the token labels are below it */
  gridBottom: number;
  dpr: number;
  gx: number;
  gw: number;
  gh: number;
}

/** counts for tests and the bench: layouts drawn whole, incremental draws, and how many pixels were put */
export interface HeatmapStats {
  fullDraws: number;
  incrementalDraws: number;
  /** rows repainted whole because their colour range changed */
  rowRepaints: number;
  pixelsPut: number;
}

const X0 = 56, Y0 = 8;
const MIN_CW = 3, MAX_CW = 28;
const DIVIDER: [number, number, number] = [0xee, 0x33, 0x33];
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * The columns a layout is made for: the planned columns while they fit the view at the smallest cell width (`fit`),
 * doublings of that past it; and never fewer than shown. Constant while the columns shown grow within it, so a layout
 * changes only when they pass it (and a full redraw of the same data lays out the same).
 */
export function heatmapCapacity(cols: number, planned: number, fit: number): number {
  const base = Math.max(1, Math.min(planned, fit));
  if (cols <= base) return base;
  let cap = base;
  while (cap < cols) cap *= 2;
  return cols <= planned ? Math.min(cap, planned) : cap;
}

export function heatmapLayout(env: HeatmapEnv, layers: number[], cols: number, planned: number): HeatmapLayout {
  const { avail, dpr } = env;
  const fit = Math.max(1, Math.floor((avail - X0) / MIN_CW));
  const capacity = heatmapCapacity(cols, planned, fit);
  const cw = Math.max(MIN_CW, Math.min(MAX_CW, Math.floor((avail - X0) / capacity)));
  const ch = Math.max(6, Math.min(22, Math.floor(360 / Math.max(1, layers.length))));
  const showLabels = cw >= 9;
  const labelH = showLabels ? 64 : 16;
  const width = Math.max(avail, X0 + capacity * cw + 8);
  const gridBottom = Y0 + layers.length * ch + 4;
  const height = gridBottom + labelH;
  const gx = Math.round(X0 * dpr);
  return { x0: X0, y0: Y0, cw, ch, capacity, cols, layers, showLabels, width, height, gridBottom, dpr, gx, gw: Math.round(width * dpr) - gx, gh: Math.round(gridBottom * dpr) };
}

/** what decides a layout: two draws with the same key share the canvas as it is */
function layoutKey(l: HeatmapLayout): string {
  return [l.cw, l.ch, l.capacity, l.width, l.height, l.dpr, l.showLabels, l.layers.join(',')].join('|');
}

/** viridis-like ramp, t in [0, 1] */
const STOPS: Array<[number, number, number]> = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
];
export function colourRGB(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  const a = STOPS[i], b = STOPS[i + 1];
  return [Math.round(a[0] + (b[0] - a[0]) * f), Math.round(a[1] + (b[1] - a[1]) * f), Math.round(a[2] + (b[2] - a[2]) * f)];
}
export function colour(t: number): string {
  return `rgb(${colourRGB(t).join(',')})`;
}

/** log10 Δ as coloured (Δ ≤ 1e-12 counts as 1e-12) */
export const logDelta = (v: number): number => Math.log10(Math.max(v, 1e-12));

/** a colour range [lo, hi] of log Δ from its extremes (a flat one widened by ±0.5) */
function widen(lo: number, hi: number): [number, number] {
  return hi - lo < 1e-6 ? [lo - 0.5, hi + 0.5] : [lo, hi];
}

/** a device-pixel rectangle [x0, x1) × [y0, y1) in the grid buffer */
interface Rect {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}
const union = (a: Rect | null, b: Rect): Rect =>
  a ? { x0: Math.min(a.x0, b.x0), y0: Math.min(a.y0, b.y0), x1: Math.max(a.x1, b.x1), y1: Math.max(a.y1, b.y1) } : b;

/** what is on the canvas now */
interface Drawn {
  key: string;
  layout: HeatmapLayout;
  grid: PixelBuffer;
  words: Uint32Array;
  /** columns painted per row (layer index in layout.layers) */
  cells: number[];
  /** the colour range each row was painted with */
  ranges: Array<[number, number]>;
  labels: number;
  divider: boolean;
}

export class HeatmapView {
  private readonly rows = new Map<number, number[]>();
  /** per layer: the extremes of log Δ so far */
  private readonly extremes = new Map<number, [number, number]>();
  private labels: string[] = [];
  private promptLength = 0;
  private planned = 0;
  private perLayer = false;
  private drawn: Drawn | null = null;
  readonly stats: HeatmapStats = { fullDraws: 0, incrementalDraws: 0, rowRepaints: 0, pixelsPut: 0 };

  constructor(
    private readonly canvas: HeatmapCanvas,
    private readonly ctx: HeatmapContext,
  ) {}

  /** a new run: the prompt's labels, and the columns it plans (prompt + max new tokens; default the prompt's) */
  reset(promptLabels: string[], plannedColumns = promptLabels.length): void {
    this.rows.clear();
    this.extremes.clear();
    this.labels = [...promptLabels];
    this.promptLength = promptLabels.length;
    this.planned = Math.max(plannedColumns, promptLabels.length);
    this.drawn = null;
  }

  addToken(label: string): void {
    this.labels.push(label);
  }

  addDelta(layer: number, values: ArrayLike<number>): void {
    let row = this.rows.get(layer);
    if (!row) this.rows.set(layer, (row = []));
    let ext = this.extremes.get(layer);
    if (!ext) this.extremes.set(layer, (ext = [Infinity, -Infinity]));
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      row.push(v);
      const l = logDelta(v);
      if (l < ext[0]) ext[0] = l;
      if (l > ext[1]) ext[1] = l;
    }
  }

  setPerLayer(on: boolean): void {
    this.perLayer = on;
  }

  /** mean Δ per layer and token, as drawn */
  values(): Record<number, number[]> {
    return Object.fromEntries([...this.rows].map(([layer, row]) => [layer, [...row]]));
  }

  /** layers and columns shown */
  get shape(): { layers: number; columns: number } {
    let columns = 0;
    for (const r of this.rows.values()) columns = Math.max(columns, r.length);
    return { layers: this.rows.size, columns };
  }

  /** the layout last drawn (hover uses it), null before the first draw */
  get layout(): HeatmapLayout | null {
    return this.drawn?.layout ?? null;
  }

  /** the token label and Δ under CSS point (x, y) of the canvas, if any */
  at(x: number, y: number): { layer: number; column: number; label: string; value: number; prompt: boolean } | null {
    const l = this.layout;
    if (!l) return null;
    const c = Math.floor((x - l.x0) / l.cw), r = Math.floor((y - l.y0) / l.ch);
    const layer = l.layers[r];
    const row = layer === undefined ? undefined : this.rows.get(layer);
    if (!row || c < 0 || c >= row.length) return null;
    return { layer, column: c, label: this.labels[c] ?? '', value: row[c], prompt: c < this.promptLength };
  }

  /** forget what is on the canvas: the next draw lays out and draws everything */
  invalidate(): void {
    this.drawn = null;
  }

  /** bring the canvas up to date: only what changed, or everything when the layout did */
  draw(env: HeatmapEnv): void {
    const layers = [...this.rows.keys()].sort((a, b) => a - b);
    const cols = Math.max(this.labels.length, this.shape.columns);
    const layout = heatmapLayout(env, layers, cols, this.planned);
    const key = layoutKey(layout);
    let d = this.drawn;
    if (!d || d.key !== key) {
      d = this.drawn = this.start(layout, key);
      this.stats.fullDraws++;
    } else {
      d.layout = layout; // cols may have grown
      this.stats.incrementalDraws++;
    }
    if (layers.length > 0) {
      this.paintGrid(d);
      this.drawLabels(d);
    }
  }

  /** a new layout: size the canvas (which clears it), the layer names, a fresh grid buffer */
  private start(layout: HeatmapLayout, key: string): Drawn {
    const { width, height, dpr, x0, y0, ch, layers } = layout;
    this.canvas.width = Math.round(width * dpr);
    this.canvas.height = Math.round(height * dpr);
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    const g = this.ctx;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, width, height);
    const grid = g.createImageData(Math.max(1, layout.gw), Math.max(1, layout.gh));
    const words = new Uint32Array(grid.data.buffer, grid.data.byteOffset, grid.width * grid.height);
    const d: Drawn = { key, layout, grid, words, cells: layers.map(() => 0), ranges: layers.map(() => [NaN, NaN]), labels: 0, divider: false };
    if (layers.length === 0) {
      g.fillStyle = '#888';
      g.font = '13px system-ui, sans-serif';
      g.fillText('No Δ yet: generate with a Mamba model (attention-only models have none).', x0, y0 + 16);
      return d;
    }
    g.save();
    g.beginPath();
    g.rect(0, 0, x0, layout.gridBottom);
    g.clip();
    g.fillStyle = '#555';
    g.font = `${Math.min(12, ch)}px system-ui, sans-serif`;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    layers.forEach((layer, r) => g.fillText(`L${layer}`, x0 - 6, y0 + r * ch + ch / 2));
    g.restore();
    return d;
  }

  /** the colour range of a row now */
  private range(layer: number): [number, number] {
    if (this.perLayer) {
      const e = this.extremes.get(layer)!;
      return widen(e[0], e[1]);
    }
    let lo = Infinity, hi = -Infinity;
    for (const e of this.extremes.values()) {
      if (e[0] < lo) lo = e[0];
      if (e[1] > hi) hi = e[1];
    }
    return widen(lo, hi);
  }

  /** device-pixel x range of column c's cells (or of a CSS px span starting at column c) */
  private cellX(l: HeatmapLayout, c: number): [number, number] {
    const left = l.x0 + c * l.cw, w = Math.max(1, l.cw - (l.cw > 6 ? 1 : 0));
    const a = Math.round(left * l.dpr) - l.gx;
    return [a, Math.max(a + 1, Math.round((left + w) * l.dpr) - l.gx)];
  }

  private fill(d: Drawn, r: Rect, rgb: readonly [number, number, number]): void {
    const [red, green, blue] = rgb;
    const word = LITTLE_ENDIAN ? ((255 << 24) | (blue << 16) | (green << 8) | red) >>> 0 : ((red << 24) | (green << 16) | (blue << 8) | 255) >>> 0;
    const w = d.grid.width;
    const x0 = Math.max(0, r.x0), x1 = Math.min(w, r.x1), y1 = Math.min(d.grid.height, r.y1);
    for (let y = Math.max(0, r.y0); y < y1; y++) d.words.fill(word, y * w + x0, y * w + x1);
  }

  /** paint the cells that are new or whose colour range changed, the divider over them, and put the dirty pixels */
  private paintGrid(d: Drawn): void {
    const l = d.layout;
    const { y0, ch, dpr } = l;
    const cellH = ch - (ch > 8 ? 1 : 0);
    // two dirty rectangles: the new columns, and the rows repainted whole (a new colour range)
    let fresh: Rect | null = null, whole: Rect | null = null;
    let underDivider = false;
    const P = this.promptLength;
    for (let r = 0; r < l.layers.length; r++) {
      const row = this.rows.get(l.layers[r])!;
      const [lo, hi] = this.range(l.layers[r]);
      const same = d.ranges[r][0] === lo && d.ranges[r][1] === hi;
      const from = same ? d.cells[r] : 0;
      if (!same && d.cells[r] > 0) this.stats.rowRepaints++;
      d.ranges[r] = [lo, hi];
      if (from >= row.length) continue;
      const py0 = Math.round((y0 + r * ch) * dpr), py1 = Math.max(py0 + 1, Math.round((y0 + r * ch + cellH) * dpr));
      for (let c = from; c < row.length; c++) {
        const [px0, px1] = this.cellX(l, c);
        this.fill(d, { x0: px0, x1: px1, y0: py0, y1: py1 }, colourRGB((logDelta(row[c]) - lo) / (hi - lo)));
      }
      if (from <= P - 1 && P - 1 < row.length) underDivider = true;
      const rect = { x0: this.cellX(l, from)[0], x1: this.cellX(l, row.length - 1)[1], y0: py0, y1: py1 };
      if (same) fresh = union(fresh, rect);
      else whole = union(whole, rect);
      d.cells[r] = row.length;
    }
    if (whole) this.put(d, whole);
    if (fresh) this.put(d, fresh);
    // prompt | generated: one CSS px before the first generated column, from above the first row to below the last
    if (P > 0 && P < l.cols && (!d.divider || underDivider)) {
      const left = l.x0 + P * l.cw - 1;
      const a = Math.round(left * dpr) - l.gx;
      const rect = { x0: a, x1: Math.max(a + 1, Math.round((left + 1) * dpr) - l.gx), y0: Math.round((y0 - 4) * dpr), y1: Math.round((y0 + l.layers.length * ch + 4) * dpr) };
      this.fill(d, rect, DIVIDER);
      this.put(d, rect);
      d.divider = true;
    }
  }

  private put(d: Drawn, r: Rect): void {
    const x0 = Math.max(0, r.x0), y0 = Math.max(0, r.y0);
    const w = Math.min(d.grid.width, r.x1) - x0, h = Math.min(d.grid.height, r.y1) - y0;
    if (w <= 0 || h <= 0) return;
    this.ctx.putImageData(d.grid, d.layout.gx, 0, x0, y0, w, h);
    this.stats.pixelsPut += w * h;
  }

  /** the token labels not drawn yet, below the grid (clipped there), in order */
  private drawLabels(d: Drawn): void {
    const l = d.layout;
    if (!l.showLabels || d.labels >= this.labels.length) return;
    const g = this.ctx;
    g.save();
    g.beginPath();
    g.rect(0, l.gridBottom, l.width, l.height - l.gridBottom);
    g.clip();
    g.font = '11px ui-monospace, monospace';
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    const yb = l.gridBottom + 2;
    for (let c = d.labels; c < this.labels.length; c++) {
      g.save();
      g.translate(l.x0 + c * l.cw + l.cw / 2, yb);
      g.rotate(-Math.PI / 2.5);
      g.fillStyle = c < this.promptLength ? '#777' : '#124';
      g.fillText(shortLabel(this.labels[c]), 0, 0);
      g.restore();
    }
    g.restore();
    d.labels = this.labels.length;
  }
}

function shortLabel(s: string): string {
  const v = s.replace(/\n/g, '⏎').replace(/ /g, '·');
  return v.length > 8 ? `${v.slice(0, 7)}…` : v;
}
