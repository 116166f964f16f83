/**
 * The Δ heatmap: one row per Mamba layer, one column per token (prompt, then generated). Colour is log Δ:
 * dark blue = small Δ (the state is kept: the model remembers), bright yellow = large Δ (the state is
 * overwritten by this token: it forgets). Scaled over the whole map, or per layer.
 */
export class DeltaHeatmap {
  private readonly rows = new Map<number, number[]>();
  private labels: string[] = [];
  private promptLength = 0;
  private perLayer = false;
  private pending = false;
  private readonly ctx: CanvasRenderingContext2D;
  private layout = { x0: 0, y0: 0, cw: 0, ch: 0, cols: 0, layers: [] as number[] };

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly tooltip: HTMLElement,
    private readonly legend: HTMLCanvasElement,
  ) {
    const ctx = canvas.getContext('2d');
    if (!ctx) throw new Error('no 2D canvas');
    this.ctx = ctx;
    canvas.addEventListener('mousemove', (e) => this.hover(e));
    canvas.addEventListener('mouseleave', () => (this.tooltip.hidden = true));
    this.drawLegend();
  }

  reset(promptLabels: string[]): void {
    this.rows.clear();
    this.labels = [...promptLabels];
    this.promptLength = promptLabels.length;
    this.schedule();
  }

  addToken(label: string): void {
    this.labels.push(label);
    this.schedule();
  }

  addDelta(layer: number, values: Float32Array): void {
    let row = this.rows.get(layer);
    if (!row) this.rows.set(layer, (row = []));
    for (const v of values) row.push(v);
    this.schedule();
  }

  setPerLayer(on: boolean): void {
    this.perLayer = on;
    this.schedule();
  }

  /** mean Δ per layer and token, as drawn (for tests and the console) */
  values(): Record<number, number[]> {
    return Object.fromEntries([...this.rows].map(([layer, row]) => [layer, [...row]]));
  }

  /** layers and columns shown (for tests and the caption) */
  get shape(): { layers: number; columns: number } {
    let columns = 0;
    for (const r of this.rows.values()) columns = Math.max(columns, r.length);
    return { layers: this.rows.size, columns };
  }

  private schedule(): void {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  private range(values: number[]): [number, number] {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) {
      const l = Math.log10(Math.max(v, 1e-12));
      if (l < lo) lo = l;
      if (l > hi) hi = l;
    }
    return hi - lo < 1e-6 ? [lo - 0.5, hi + 0.5] : [lo, hi];
  }

  private draw(): void {
    const layers = [...this.rows.keys()].sort((a, b) => a - b);
    const cols = Math.max(this.labels.length, this.shape.columns);
    const dpr = window.devicePixelRatio || 1;
    const avail = (this.canvas.parentElement?.clientWidth ?? 800) - 8;
    const x0 = 56, y0 = 8;
    const cw = cols > 0 ? Math.max(3, Math.min(28, Math.floor((avail - x0) / cols))) : 10;
    const ch = Math.max(6, Math.min(22, Math.floor(360 / Math.max(1, layers.length))));
    const showLabels = cw >= 9;
    const labelH = showLabels ? 64 : 16;
    const width = Math.max(avail, x0 + cols * cw + 8);
    const height = y0 + layers.length * ch + labelH;
    this.canvas.width = width * dpr;
    this.canvas.height = height * dpr;
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    const g = this.ctx;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, width, height);
    this.layout = { x0, y0, cw, ch, cols, layers };
    if (layers.length === 0) {
      g.fillStyle = '#888';
      g.font = '13px system-ui, sans-serif';
      g.fillText('No Δ yet: generate with a Mamba model (attention-only models have none).', x0, y0 + 16);
      return;
    }
    const global = this.range(layers.flatMap((l) => this.rows.get(l)!));
    layers.forEach((layer, r) => {
      const row = this.rows.get(layer)!;
      const [lo, hi] = this.perLayer ? this.range(row) : global;
      for (let c = 0; c < row.length; c++) {
        const t = (Math.log10(Math.max(row[c], 1e-12)) - lo) / (hi - lo);
        g.fillStyle = colour(t);
        g.fillRect(x0 + c * cw, y0 + r * ch, Math.max(1, cw - (cw > 6 ? 1 : 0)), ch - (ch > 8 ? 1 : 0));
      }
      g.fillStyle = '#555';
      g.font = `${Math.min(12, ch)}px system-ui, sans-serif`;
      g.textAlign = 'right';
      g.textBaseline = 'middle';
      g.fillText(`L${layer}`, x0 - 6, y0 + r * ch + ch / 2);
    });
    // prompt | generated divider
    if (this.promptLength > 0 && this.promptLength < cols) {
      const x = x0 + this.promptLength * cw - 0.5;
      g.strokeStyle = '#e33';
      g.lineWidth = 1.5;
      g.beginPath();
      g.moveTo(x, y0 - 4);
      g.lineTo(x, y0 + layers.length * ch + 4);
      g.stroke();
    }
    if (showLabels) {
      g.fillStyle = '#444';
      g.font = '11px ui-monospace, monospace';
      g.textAlign = 'right';
      g.textBaseline = 'middle';
      const yb = y0 + layers.length * ch + 4;
      for (let c = 0; c < this.labels.length; c++) {
        g.save();
        g.translate(x0 + c * cw + cw / 2, yb);
        g.rotate(-Math.PI / 2.5);
        g.fillStyle = c < this.promptLength ? '#777' : '#124';
        g.fillText(shortLabel(this.labels[c]), 0, 0);
        g.restore();
      }
    }
  }

  private hover(e: MouseEvent): void {
    const { x0, y0, cw, ch, layers } = this.layout;
    const rect = this.canvas.getBoundingClientRect();
    const x = e.clientX - rect.left, y = e.clientY - rect.top;
    const c = Math.floor((x - x0) / cw), r = Math.floor((y - y0) / ch);
    const layer = layers[r];
    const row = layer === undefined ? undefined : this.rows.get(layer);
    if (!row || c < 0 || c >= row.length) {
      this.tooltip.hidden = true;
      return;
    }
    const where = c < this.promptLength ? 'prompt' : 'generated';
    this.tooltip.textContent = `layer ${layer} · token ${c} (${where}) ${JSON.stringify(this.labels[c] ?? '')} · mean Δ = ${row[c].toPrecision(3)}`;
    this.tooltip.style.left = `${e.clientX + 12}px`;
    this.tooltip.style.top = `${e.clientY + 12}px`;
    this.tooltip.hidden = false;
  }

  private drawLegend(): void {
    const g = this.legend.getContext('2d');
    if (!g) return;
    const w = this.legend.width, h = this.legend.height;
    for (let x = 0; x < w; x++) {
      g.fillStyle = colour(x / (w - 1));
      g.fillRect(x, 0, 1, h);
    }
  }
}

function shortLabel(s: string): string {
  const v = s.replace(/\n/g, '⏎').replace(/ /g, '·');
  return v.length > 8 ? `${v.slice(0, 7)}…` : v;
}

/** viridis-like ramp, t in [0, 1] */
const STOPS: Array<[number, number, number]> = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
];
function colour(t: number): string {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  const a = STOPS[i], b = STOPS[i + 1];
  return `rgb(${Math.round(a[0] + (b[0] - a[0]) * f)},${Math.round(a[1] + (b[1] - a[1]) * f)},${Math.round(a[2] + (b[2] - a[2]) * f)})`;
}
