/**
 * Recurrent inference state: what a sequence carries from one token to the next. For Mamba it is
 * constant-size — per layer a conv window [b, D, K] and an SSM state [b, D, N] — whatever the length of
 * the text already read.
 *
 * Attention layers of hybrid models add a KV cache: tensors [b, T, kv_heads, head_dim] whose dim 1 is
 * time (named in `timeTensors`); row r holds `seqLen[r]` valid positions, the rest is capacity.
 *
 * A state can be exported to bytes (a safetensors file, so other tools can read it) and restored later:
 * a user resumes a conversation without re-reading the prompt. Restoring checks that the state was made
 * by a model of the same architecture and shape (its `fingerprint`).
 *
 * KV caches are stored in f32 or, with the model's `kvCache` option, bf16/f16 (half the bytes) or q8 (int8 blocks of
 * 32 with an f32 scale): every copy, growth, row write, compaction and export keeps that format; an import takes the
 * format of the model's fresh states. (q8 is exported as its f32 values, and a compaction or import quantizes those
 * values again: the same q and scale to within a rounding of the scale.)
 */
import { concatRows, padTime, takeRows } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { keep } from '../tensor/scope.js';
import type { Backend } from '../backend/backend.js';
import { encodeSafetensors, SafetensorsFile, type WritableTensor } from '../io/safetensors-format.js';
import { BackendMismatchError } from '../errors.js';
import { ModelError } from './errors.js';
import { DTYPE_BYTES, type KvCacheDType } from '../tensor/dtype.js';

export const STATE_FORMAT = 'mamba-ts-state/1';

export class ModelState {
  constructor(
    /** identifies the model architecture + dimensions the state belongs to */
    readonly fingerprint: string,
    /** per layer: named state tensors, batch first */
    readonly layers: Array<Record<string, Tensor>>,
    readonly batch: number,
    /** tokens consumed so far, per sequence */
    readonly seqLen: number[],
    /** names of per-layer tensors whose dim 1 is time (KV caches); the others are constant-size */
    readonly timeTensors: ReadonlySet<string> = new Set(),
  ) {
    // long-lived: the state owns its tensors (freed by `dispose()` or the collector), no scope does
    for (const l of layers) for (const t of Object.values(l)) keep(t);
  }

  /** Sequences `rows` of this state, as a new state (copies). */
  select(rows: readonly number[]): ModelState {
    return new ModelState(
      this.fingerprint,
      this.layers.map((l) => mapRecord(l, (t) => takeRows(t, rows))),
      rows.length,
      rows.map((r) => this.seqLen[r]),
      this.timeTensors,
    );
  }

  /** Stack states of the same model along the batch (copies). */
  static concat(states: readonly ModelState[]): ModelState {
    if (states.length === 0) throw new ModelError('ModelState.concat: no states given');
    const fp = states[0].fingerprint;
    for (const s of states) if (s.fingerprint !== fp) throw new ModelError(`ModelState.concat: states come from different models (${fp} vs ${s.fingerprint})`);
    const time = states[0].timeTensors;
    const layers = states[0].layers.map((l, i) =>
      mapRecord(l, (_t, k) => {
        const parts = states.map((s) => s.layers[i][k]);
        if (!time.has(k)) return concatRows(parts);
        const T = Math.max(...parts.map((p) => p.shape[1]));
        return concatRows(parts.map((p) => padTime(p, T)));
      }),
    );
    return new ModelState(fp, layers, states.reduce((a, s) => a + s.batch, 0), states.flatMap((s) => s.seqLen), time);
  }

  /**
   * Put `src` (a state of batch 1 of the same model) into row `r`, in place: the other rows are neither copied nor
   * changed (a running batch takes in a new sequence where one left). KV caches shorter than this state's are
   * padded; a longer one grows this state's first (a copy, as the caches' own doubling). Returns false, changing
   * nothing, when row `r` holds a non-finite value (it is cleared by subtracting itself, which NaN/Infinity
   * survive): then build the batch with `concat`/`select` instead.
   */
  async writeRow(r: number, src: ModelState): Promise<boolean> {
    if (src.fingerprint !== this.fingerprint) throw new ModelError(`ModelState.writeRow: states come from different models (${this.fingerprint} vs ${src.fingerprint})`);
    if (src.batch !== 1) throw new ModelError(`ModelState.writeRow: the source holds ${src.batch} sequences, expected 1`);
    if (!Number.isInteger(r) || r < 0 || r >= this.batch) throw new ModelError(`ModelState.writeRow: row ${r} outside [0, ${this.batch})`);
    const olds: Tensor[] = [];
    try {
      for (const l of this.layers) {
        for (const t of Object.values(l)) {
          const old = takeRows(t, [r]);
          olds.push(old);
          const v = await old.data();
          for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) return false;
        }
      }
      let n = 0;
      // the op adds rows of the last dim: sequence r of a [b, …, H] tensor is its rows r·R … r·R + R − 1
      const add = (dst: Tensor, src: Tensor, w: number): void => {
        const H = dst.shape[dst.shape.length - 1];
        const R = dst.size / (dst.shape[0] * H);
        dst.backend.scatterAddRows(dst, Int32Array.from({ length: R }, (_, j) => r * R + j), src, new Float32Array(R).fill(w));
      };
      for (let i = 0; i < this.layers.length; i++) {
        const l = this.layers[i];
        for (const k of Object.keys(l)) {
          let s = src.layers[i][k];
          const old = olds[n++];
          if (this.timeTensors.has(k)) {
            if (s.shape[1] > l[k].shape[1]) {
              const grown = keep(padTime(l[k], s.shape[1]));
              l[k].dispose();
              l[k] = grown;
            }
            if (s.shape[1] < l[k].shape[1]) s = padTime(s, l[k].shape[1]);
          }
          const dst = l[k];
          // dst[r] − dst[r] = 0 exactly (finite values), then + src: the row is src's bits
          const minus = this.timeTensors.has(k) ? padTime(old, dst.shape[1]) : old;
          add(dst, minus, -1);
          add(dst, s, 1);
          if (minus !== old) minus.dispose();
          if (s !== src.layers[i][k]) s.dispose();
        }
      }
      this.seqLen[r] = src.seqLen[0];
      return true;
    } finally {
      for (const o of olds) o.dispose();
    }
  }

  /**
   * A state is used by the model whose backend holds its tensors: one on another backend (a CPU state passed to
   * a WebGPU model, a state of another backend instance) is a BackendMismatchError naming the tensor.
   */
  checkBackend(backend: Backend): void {
    for (let i = 0; i < this.layers.length; i++) {
      for (const k in this.layers[i]) {
        const t = this.layers[i][k];
        if (t.backend === backend) continue;
        const where = t.backend.name === backend.name ? `another ${backend.name} backend instance than the model` : `backend ${t.backend.name}, the model on ${backend.name}`;
        throw new BackendMismatchError(`state: layers.${i}.${k} is on ${where}; make states with this model's createState() or importState()`);
      }
    }
  }

  /** Release the state's tensors now (GPU memory back to the pool); the state must not be used afterwards. */
  dispose(): void {
    const fns = this.disposers.splice(0);
    for (const f of fns) f();
    for (const l of this.layers) for (const t of Object.values(l)) t.dispose();
  }

  /**
   * Run `fn` when this state is disposed, before its tensors go (a model drops what it keeps for the state: a
   * recorded decode step reserves the state's blocks until it is given up).
   */
  onDispose(fn: () => void): void {
    this.disposers.push(fn);
  }
  private readonly disposers: Array<() => void> = [];

  /** Deep copy (a conversation can branch). */
  clone(): ModelState {
    return this.select([...Array(this.batch).keys()]);
  }

  /** Total bytes of state (f32 tensors; KV caches in their format): constant in sequence length for Mamba; KV caches grow. */
  get byteSize(): number {
    return this.layers.reduce((a, l) => a + Object.values(l).reduce((b, t) => b + t.size * DTYPE_BYTES[t.dtype], 0), 0);
  }

  /** The format of the state's KV caches ('f32' when it has none). */
  get kvCache(): KvCacheDType {
    for (const l of this.layers) for (const [k, t] of Object.entries(l)) if (this.timeTensors.has(k)) return t.dtype as KvCacheDType;
    return 'f32';
  }

  /**
   * A copy whose KV caches hold only the positions in use (max seqLen) instead of their grown capacity: what a
   * snapshot keeps (the server's prefix cache). Constant-size tensors are copied as they are.
   */
  async compact(): Promise<ModelState> {
    const used = Math.max(1, ...this.seqLen);
    const all = [...Array(this.batch).keys()];
    const layers: Array<Record<string, Tensor>> = [];
    for (const l of this.layers) {
      const out: Record<string, Tensor> = {};
      for (const [k, t] of Object.entries(l)) {
        if (this.timeTensors.has(k) && t.shape[1] > used) {
          const { data, shape } = trimTime(await t.data(), t.shape, used);
          out[k] = t.backend.fromHost(data, shape, { kvCache: t.dtype as KvCacheDType }); // (f32 too: a backend may store caches apart)
        } else out[k] = takeRows(t, all);
      }
      layers.push(out);
    }
    return new ModelState(this.fingerprint, layers, this.batch, [...this.seqLen], this.timeTensors);
  }

  /** Serialize to safetensors bytes; `metadata` adds string entries to the header (the state's own keys win). */
  async export(metadata: Record<string, string> = {}): Promise<Uint8Array> {
    const tensors: Record<string, WritableTensor> = {};
    const used = Math.max(1, ...this.seqLen);
    for (let i = 0; i < this.layers.length; i++) {
      for (const [k, t] of Object.entries(this.layers[i])) {
        // keep only the used positions of the KV cache
        const { data, shape } = this.timeTensors.has(k) ? trimTime(await t.data(), t.shape, used) : { data: await t.data(), shape: [...t.shape] };
        // a bf16/f16 KV cache as BF16/F16 (its values re-encode exactly); a q8 one as its f32 values
        tensors[`layers.${i}.${k}`] = { dtype: t.dtype === 'bf16' ? 'BF16' : t.dtype === 'f16' ? 'F16' : 'F32', shape, data };
      }
    }
    return encodeSafetensors(tensors, {
      ...metadata,
      format: STATE_FORMAT,
      fingerprint: this.fingerprint,
      batch: String(this.batch),
      seq_len: JSON.stringify(this.seqLen),
    });
  }

  /**
   * Restore a state exported by `export()`. `template` is a fresh state of the target model
   * (`model.createState(1)`): it supplies the expected fingerprint, layer layout and backend.
   */
  static import(bytes: Uint8Array, template: ModelState, backend: Backend, label = 'state'): ModelState {
    const f = SafetensorsFile.fromBytes(bytes, label);
    const md = f.metadata;
    if (md.format !== STATE_FORMAT) throw new ModelError(`${label}: not a mamba-ts state (format ${JSON.stringify(md.format)}, expected ${STATE_FORMAT})`);
    if (md.fingerprint !== template.fingerprint) {
      throw new ModelError(`${label}: state was made by a different model (${md.fingerprint}); this model is ${template.fingerprint}`);
    }
    const batch = Number(md.batch);
    let seqLen: unknown;
    try {
      seqLen = JSON.parse(md.seq_len ?? '');
    } catch {
      seqLen = undefined;
    }
    if (!Number.isInteger(batch) || batch < 1 || !Array.isArray(seqLen) || seqLen.length !== batch || !seqLen.every((n) => Number.isInteger(n) && n >= 0)) {
      throw new ModelError(`${label}: metadata batch/seq_len are invalid (batch=${md.batch}, seq_len=${md.seq_len})`);
    }
    const layers = template.layers.map((l, i) =>
      mapRecord(l, (t, k) => {
        const name = `layers.${i}.${k}`;
        if (!f.has(name)) throw new ModelError(`${label}: tensor "${name}" is missing`);
        const e = f.entry(name);
        const want = [batch, ...t.shape.slice(1)];
        const isTime = template.timeTensors.has(k);
        if (isTime) want[1] = e.shape[1]; // KV cache: any length that holds every sequence
        if (e.shape.length !== want.length || e.shape.some((d, j) => d !== want[j]) || (isTime && e.shape[1] < Math.max(...(seqLen as number[])))) {
          throw new ModelError(`${label}: tensor "${name}" has shape [${e.shape}], expected [${want}]`);
        }
        // KV caches in the format of the model's fresh states (the template's), whatever the file stores
        return backend.fromHost(f.float32(name).slice(), want, isTime ? { kvCache: t.dtype as KvCacheDType } : undefined);
      }),
    );
    return new ModelState(template.fingerprint, layers, batch, seqLen as number[], template.timeTensors);
  }
}

/** a KV cache's values [b, T, ...] cut to the first `used` positions of each row (as is when T <= used) */
function trimTime(data: Float32Array, shape: readonly number[], used: number): { data: Float32Array; shape: number[] } {
  if (shape[1] <= used) return { data, shape: [...shape] };
  const inner = data.length / (shape[0] * shape[1]);
  const out = new Float32Array(shape[0] * used * inner);
  for (let r = 0; r < shape[0]; r++) out.set(data.subarray(r * shape[1] * inner, (r * shape[1] + used) * inner), r * used * inner);
  return { data: out, shape: [shape[0], used, ...shape.slice(2)] };
}

function mapRecord(r: Record<string, Tensor>, f: (t: Tensor, k: string) => Tensor): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(r)) out[k] = f(t, k);
  return out;
}
