/**
 * The pure parts of the CPU long-context bench (bench/wasm-context.bench.ts, issue 18): llama-bench's command line
 * and JSON output, the bytes of state llama.cpp holds per sequence, and the markdown table that sets our decode
 * speed at each context next to llama.cpp's (points are `SweepPoint`s, as the WebGPU context sweep's, so that the
 * plot is `sweepChart`'s; llama.cpp's have `engine: 'llama.cpp'`).
 */
import type { StateLayout, SweepPoint } from './context-sweep.js';
import { contextLabel } from './context-sweep.js';
import { fmt1, markdownTable, MiB } from './report.js';

export const LLAMA_CPP = 'llama.cpp';

/** a point measured here, with what the CPU bench adds to the sweep's fields */
export interface CpuPoint extends SweepPoint {
  /**
   * wall ms of decode attention over all attention layers at the context the timed steps reached, the op run on its own
   * after them (bench/kv-fill.ts attentionProbe; decode runs it inside each layer's one call), when the model has any
   */
  attention_ms_per_step?: number;
  /** bytes of KV cache the attention layers read per step ÷ attention time */
  kv_gb_s?: number;
  /** peak RSS of the process that measured the point */
  peak_rss_mib?: number;
  /** llama.cpp: its K / V cache types and flash-attention setting, and its process's wall time (its own prefill of the context included) */
  type_k?: string;
  type_v?: string;
  flash_attn?: string;
  wall_s?: number;
}

/** `llama-bench` arguments for decode of `gen` tokens after a context of `depth` tokens (its own prefill, not timed) */
export function llamaBenchArgs(file: string, depth: number, gen: number, threads: number, extra: readonly string[] = []): string[] {
  return ['-m', file, '-p', '0', '-n', String(gen), '-d', String(depth), '-t', String(threads), '-r', '1', '-o', 'json', ...extra];
}

export interface LlamaBenchRow {
  tok_s: number;
  n_depth: number;
  n_gen: number;
  type_k: string;
  type_v: string;
  flash_attn: string;
  build_commit: string;
}

/** the decode row of `llama-bench -o json` output for `depth`/`gen`; a clear error when it is not there */
export function parseLlamaBench(json: string, depth: number, gen: number, what = 'llama-bench'): LlamaBenchRow {
  let rows: unknown;
  try {
    rows = JSON.parse(json);
  } catch (e) {
    throw new Error(`${what}: its output is not JSON (${(e as Error).message}): ${json.slice(0, 200)}`);
  }
  if (!Array.isArray(rows)) throw new Error(`${what}: expected a JSON array of result rows, got ${typeof rows}`);
  const r = (rows as Array<Record<string, unknown>>).find((x) => x.n_prompt === 0 && x.n_gen === gen && x.n_depth === depth);
  if (!r) throw new Error(`${what}: no row with n_prompt 0, n_gen ${gen}, n_depth ${depth} in its output (a build without -d/--n-depth?)`);
  const ts = Number(r.avg_ts);
  if (!(ts > 0)) throw new Error(`${what}: avg_ts ${String(r.avg_ts)} is not a positive number`);
  const fa = r.flash_attn;
  return {
    tok_s: ts, n_depth: depth, n_gen: gen,
    type_k: String(r.type_k ?? 'f16'), type_v: String(r.type_v ?? 'f16'),
    flash_attn: fa === 1 || fa === true ? 'on' : fa === 0 || fa === false ? 'off' : 'auto',
    build_commit: String(r.build_commit ?? 'unknown'),
  };
}

/** bytes per element of a llama.cpp cache type (block formats: their bytes per block ÷ 32) */
export function cacheTypeBytes(type: string): number {
  const b: Record<string, number> = { f32: 4, f16: 2, bf16: 2, q8_0: 34 / 32, q5_1: 24 / 32, q5_0: 22 / 32, q4_1: 20 / 32, q4_0: 18 / 32, iq4_nl: 18 / 32 };
  const v = b[type];
  if (v === undefined) throw new Error(`llama.cpp cache type "${type}": unknown (expected one of ${Object.keys(b).join(', ')})`);
  return v;
}

/**
 * Bytes of state llama.cpp holds per sequence at `context` positions for a model of this layout: the same
 * constant-size SSM state (f32), and K and V of each position in its cache types (our layout counts them in f32).
 */
export function llamaStateBytes(lay: StateLayout, context: number, typeK: string, typeV: string): number {
  const perPositionElements = lay.perPositionBytes / 4;
  return lay.constBytes + context * (perPositionElements / 2) * (cacheTypeBytes(typeK) + cacheTypeBytes(typeV));
}

const speed = (p: SweepPoint | undefined): string => (!p ? '—' : p.status === 'ok' ? fmt1(p.tok_s!) : p.status === 'oom' ? 'out of memory' : 'failed');
const mib = (b: number): string => (b < 10 * MiB ? (b / MiB).toFixed(2) : fmt1(b / MiB));

/**
 * One row per model and context: our tok/s, ms per step, attention's share (and the KV stream's GB/s), state per
 * sequence; llama.cpp's tok/s and state; ours ÷ llama.cpp. A model llama.cpp has no point for is compared with
 * the model `reference` maps it to (e.g. hybrid-130m against llama.cpp's llama-130m), named in the column.
 */
export function contextTable(points: readonly CpuPoint[], reference: Record<string, string> = {}): string {
  const ours = points.filter((p) => p.engine === undefined);
  const theirs = (model: string, C: number) => points.find((p) => p.engine === LLAMA_CPP && p.model === model && p.context === C);
  const rows = ours.map((p) => {
    let other = theirs(p.model, p.context);
    let vs = '';
    if (!other && reference[p.model]) {
      other = theirs(reference[p.model], p.context);
      if (other) vs = ` (its ${reference[p.model]})`;
    }
    const ratio = p.status === 'ok' && other?.status === 'ok' ? `**${(p.tok_s! / other.tok_s!).toFixed(2)}×**${vs}` : '—';
    const attn = p.attention_ms_per_step !== undefined && p.status === 'ok'
      ? `${p.attention_ms_per_step.toFixed(1)} (${((100 * p.attention_ms_per_step) / p.ms_per_step!).toFixed(0)}%${p.kv_gb_s !== undefined ? `, ${p.kv_gb_s.toFixed(1)} GB/s` : ''})`
      : '—';
    return [
      p.model, contextLabel(p.context), speed(p), p.status === 'ok' ? p.ms_per_step!.toFixed(1) : '—', attn, mib(p.state_bytes_per_seq),
      other ? `${speed(other)}${vs}` : '—', other ? `${mib(other.state_bytes_per_seq)}${other.type_k ? ` (K ${other.type_k}, V ${other.type_v})` : ''}${vs}` : '—', ratio,
    ];
  });
  return markdownTable({
    head: ['model', 'context', 'ours tok/s', 'ms/step', 'attention ms/step (share, KV stream)', 'ours state MiB/seq', `${LLAMA_CPP} tok/s`, `${LLAMA_CPP} state MiB/seq`, `ours ÷ ${LLAMA_CPP}`],
    align: ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    rows,
  });
}
