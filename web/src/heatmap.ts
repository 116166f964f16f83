/**
 * The Δ heatmap on the page: HeatmapView (heatmap-view.ts) draws it on the canvas, incrementally, at most once per
 * animation frame; this adds the tooltip and the legend.
 */
import { colour, HeatmapView, type HeatmapStats } from './heatmap-view.js';

export class DeltaHeatmap {
  private readonly view: HeatmapView;
  private pending = false;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly tooltip: HTMLElement,
    private readonly legend: HTMLCanvasElement,
  ) {
    const ctx = canvas.getContext('2d');
    if (!ctx) throw new Error('no 2D canvas');
    this.view = new HeatmapView(canvas, ctx);
    canvas.addEventListener('mousemove', (e) => this.hover(e));
    canvas.addEventListener('mouseleave', () => (this.tooltip.hidden = true));
    this.drawLegend();
  }

  /** a new run: the prompt's labels and the columns it plans (prompt + max new tokens: the layout is made for them) */
  reset(promptLabels: string[], plannedColumns?: number): void {
    this.view.reset(promptLabels, plannedColumns);
    this.schedule();
  }

  addToken(label: string): void {
    this.view.addToken(label);
    this.schedule();
  }

  addDelta(layer: number, values: Float32Array): void {
    this.view.addDelta(layer, values);
    this.schedule();
  }

  setPerLayer(on: boolean): void {
    this.view.setPerLayer(on);
    this.schedule();
  }

  /** mean Δ per layer and token, as drawn (for tests and the console) */
  values(): Record<number, number[]> {
    return this.view.values();
  }

  /** layers and columns shown (for tests and the caption) */
  get shape(): { layers: number; columns: number } {
    return this.view.shape;
  }

  /** full layouts and incremental draws so far, pixels put (for tests and the console) */
  get stats(): HeatmapStats {
    return { ...this.view.stats };
  }

  /** draw everything again now, as from scratch (tests compare its pixels with the incremental draws') */
  redrawFull(): void {
    this.view.invalidate();
    this.draw();
  }

  private schedule(): void {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  private draw(): void {
    this.view.draw({ avail: (this.canvas.parentElement?.clientWidth ?? 800) - 8, dpr: window.devicePixelRatio || 1 });
  }

  private hover(e: MouseEvent): void {
    const rect = this.canvas.getBoundingClientRect();
    const hit = this.view.at(e.clientX - rect.left, e.clientY - rect.top);
    if (!hit) {
      this.tooltip.hidden = true;
      return;
    }
    const where = hit.prompt ? 'prompt' : 'generated';
    this.tooltip.textContent = `layer ${hit.layer} · token ${hit.column} (${where}) ${JSON.stringify(hit.label)} · mean Δ = ${hit.value.toPrecision(3)}`;
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
