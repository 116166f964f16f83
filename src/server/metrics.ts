/** The server's counters, gauges and latency histograms, rendered as Prometheus text (`GET /metrics`). */

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

class Histogram {
  readonly counts = new Array<number>(LATENCY_BUCKETS.length).fill(0);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < LATENCY_BUCKETS.length; i++) if (seconds <= LATENCY_BUCKETS[i]) this.counts[i]++;
  }

  render(name: string, help: string): string[] {
    const out = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
    LATENCY_BUCKETS.forEach((b, i) => out.push(`${name}_bucket{le="${b}"} ${this.counts[i]}`));
    out.push(`${name}_bucket{le="+Inf"} ${this.count}`, `${name}_sum ${this.sum}`, `${name}_count ${this.count}`);
    return out;
  }
}

export interface Gauges {
  queue: number;
  prefilling: number;
  decoding: number;
  cacheEntries: number;
  cacheBytes: number;
  cacheDiskBytes: number;
  cacheHits: number;
  cacheMisses: number;
  decodeSteps: number;
  decodeRows: number;
}

export class Metrics {
  /** by "endpoint status" */
  private readonly requests = new Map<string, number>();
  promptTokens = 0;
  cachedTokens = 0;
  generatedTokens = 0;
  readonly ttft = new Histogram();
  readonly interToken = new Histogram();
  readonly duration = new Histogram();

  request(endpoint: string, status: number): void {
    const k = `${endpoint} ${status}`;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
  }

  render(g: Gauges): string {
    const P = 'mamba_ts';
    const lines: string[] = [`# HELP ${P}_requests_total HTTP requests by endpoint and status`, `# TYPE ${P}_requests_total counter`];
    for (const [k, n] of [...this.requests].sort()) {
      const [endpoint, status] = k.split(' ');
      lines.push(`${P}_requests_total{endpoint="${endpoint}",status="${status}"} ${n}`);
    }
    const scalars: Array<[string, 'counter' | 'gauge', string, number]> = [
      ['prompt_tokens_total', 'counter', 'prompt tokens of finished requests', this.promptTokens],
      ['cached_prompt_tokens_total', 'counter', 'prompt tokens restored from the prefix cache', this.cachedTokens],
      ['generated_tokens_total', 'counter', 'tokens generated', this.generatedTokens],
      ['cache_hits_total', 'counter', 'prefix-cache lookups that restored a snapshot', g.cacheHits],
      ['cache_misses_total', 'counter', 'prefix-cache lookups that found nothing', g.cacheMisses],
      ['cache_entries', 'gauge', 'snapshots in the prefix cache (memory and disk)', g.cacheEntries],
      ['cache_bytes', 'gauge', 'bytes of snapshots held in memory', g.cacheBytes],
      ['cache_disk_bytes', 'gauge', 'bytes of snapshot files on disk', g.cacheDiskBytes],
      ['queue_length', 'gauge', 'requests waiting for a place in the batch', g.queue],
      ['prefilling_requests', 'gauge', 'requests reading their prompt', g.prefilling],
      ['decoding_requests', 'gauge', 'requests generating (rows of the decode batch)', g.decoding],
      ['decode_steps_total', 'counter', 'batched decode steps run', g.decodeSteps],
      ['decode_rows_total', 'counter', 'rows summed over decode steps (÷ steps = mean batch)', g.decodeRows],
    ];
    for (const [name, type, help, v] of scalars) lines.push(`# HELP ${P}_${name} ${help}`, `# TYPE ${P}_${name} ${type}`, `${P}_${name} ${v}`);
    lines.push('# HELP process_resident_memory_bytes resident set size of the server process', '# TYPE process_resident_memory_bytes gauge');
    lines.push(`process_resident_memory_bytes ${process.memoryUsage.rss()}`);
    lines.push(...this.ttft.render(`${P}_time_to_first_token_seconds`, 'from request to first generated token'));
    lines.push(...this.interToken.render(`${P}_inter_token_seconds`, 'between consecutive streamed tokens of a request'));
    lines.push(...this.duration.render(`${P}_request_duration_seconds`, 'whole generation requests'));
    return lines.join('\n') + '\n';
  }
}
