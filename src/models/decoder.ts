/**
 * The shape every model here shares: embedding → blocks of pre-norm residual sublayers → final norm →
 * LM head. A block is a list of sublayers x ← x + s · f(norm(x)) where f is a Mamba-1/Mamba-2 mixer,
 * attention, an MLP or a mixture of experts (`src/nn`). Architectures (`mamba.ts`, `mamba2.ts`, hybrids)
 * only parse their config, fetch their weights and list their blocks.
 */
import type { Backend, DecodeStackArgs, StepGraph } from '../backend/backend.js';
import { needsGrad } from '../autograd/tape.js';
import type { Mixer } from '../nn/mixer.js';
import * as ops from '../tensor/ops.js';
import { keep, Scope } from '../tensor/scope.js';
import { Tensor, type HostTensor } from '../tensor/tensor.js';
import { ModelError } from './errors.js';
import type { ParamEntry } from './loader.js';
import type { CausalLM, DeltaEvent, DeltaObserver, DeviceSampling, ForwardOptions, ForwardOutput, StepOptions } from './causal-lm.js';
import { ModelState } from './state.js';
import { philoxRows } from '../generate/rng.js';
import type { KvCacheDType } from '../tensor/dtype.js';
import { checkKvCache } from '../api/load-options.js';

export interface Sublayer {
  /** pre-norm weight (RMSNorm); null = no norm */
  norm: Tensor | null;
  mixer: Mixer;
  /** multiplier on the sublayer output before the residual add (Granite's residual_multiplier) */
  residualScale?: number;
}

export interface DecoderSpec {
  /** the checkpoint tensors the model holds, by checkpoint name (what training updates and saves) */
  params: ReadonlyMap<string, ParamEntry>;
  modelType: string;
  /** architecture + dimensions, to tell which model a saved state belongs to */
  fingerprint: string;
  backend: Backend;
  vocabSize: number;
  eosTokenIds: number[];
  embed: Tensor; // [V, H]
  embedScale?: number;
  blocks: Sublayer[][];
  normEps: number;
  finalNorm: Tensor;
  lmHead: Tensor; // [V, H]
  /** logits are divided by this (Granite's logits_scaling) */
  logitsDivisor?: number;
  /**
   * HF's `output_hidden_states` convention of the class mirrored: 'layer-outputs' (Mamba, Mamba-2: outputs
   * of layers 1…n, then the final-normed output) or 'embeddings-first' (decoder models: the embedding,
   * outputs of layers 1…n−1, then the final-normed output).
   */
  hiddenStates: 'layer-outputs' | 'embeddings-first';
  /** config summary for `describe()` */
  summary: Record<string, unknown>;
}

export class DecoderLM implements CausalLM {
  /** see `CausalLM.onDelta` */
  onDelta: DeltaObserver | null = null;

  constructor(readonly spec: DecoderSpec) {}

  get modelType(): string {
    return this.spec.modelType;
  }
  get vocabSize(): number {
    return this.spec.vocabSize;
  }
  get numLayers(): number {
    return this.spec.blocks.length;
  }
  get backend(): Backend {
    return this.spec.backend;
  }
  get eosTokenIds(): number[] {
    return this.spec.eosTokenIds;
  }
  get fingerprint(): string {
    return this.spec.fingerprint;
  }

  /** see `CausalLM.kvCache` */
  kvCache: KvCacheDType = 'f32';

  createState(batch: number, opts?: { kvCache?: KvCacheDType }): ModelState {
    if (!Number.isInteger(batch) || batch < 1) throw new ModelError(`createState: batch must be a positive integer, got ${batch}`);
    const kvCache = opts?.kvCache ?? this.kvCache;
    checkKvCache(kvCache, 'createState');
    const time = new Set<string>();
    const layers = this.spec.blocks.map((subs) => {
      const rec: Record<string, Tensor> = {};
      for (const s of subs) {
        Object.assign(rec, s.mixer.initState(batch, kvCache === 'f32' ? undefined : { kvCache }));
        for (const t of s.mixer.timeTensors) time.add(t);
      }
      return rec;
    });
    return new ModelState(this.fingerprint, layers, batch, new Array(batch).fill(0), time);
  }

  /**
   * embedding → blocks → final norm; every layer's output too when `collect`. Memory: the tensors come into
   * `sc` (the caller's scope, which ends when the caller is done with them); each layer runs in a scope of its
   * own, which frees the layer's intermediates as soon as the layer is recorded, and the residual stream of the
   * layer before is freed once the next one has been recorded (unless collected). The scopes are entered
   * explicitly around the synchronous parts (see scope.ts), so two forwards that interleave at their awaits
   * never free each other's tensors, with or without AsyncLocalStorage. State tensors a layer creates (a grown
   * KV cache) are taken out of the scopes (`keep`): the state owns them. A one-token step goes through `stackStep`
   * first (unless `stackTried`: the caller tried it already).
   */
  private async run(ids: number[][], state: ModelState | null, collect: boolean, onDelta: DeltaObserver | null | undefined, sc: Scope, stackTried = false): Promise<{ last: Tensor; hidden: Tensor[] }> {
    if (!collect && !onDelta && state && !stackTried) {
      // a one-token step of a Mamba stack: the whole step in one backend call where it has one
      const last = this.stackStep(ids, state, null, sc);
      if (last instanceof Tensor) return { last, hidden: [] };
    }
    const s = this.spec;
    const b = ids.length;
    const L = ids[0].length;
    const H = s.embed.shape[1];
    let x = sc.run(() => ops.scale(ops.embedding(s.embed, Int32Array.from(ids.flat()), [b, L, H]), s.embedScale ?? 1)); // (b, L, H)
    const hidden: Tensor[] = collect && s.hiddenStates === 'embeddings-first' ? [x] : [];
    const pastLen = state ? state.seqLen.slice() : new Array(b).fill(0);
    const deltas: Promise<DeltaEvent>[] = []; // Δ reads in flight, reported in layer order at the end
    for (let i = 0; i < s.blocks.length; i++) {
      const layer = i;
      const report = onDelta
        ? (kind: DeltaEvent['kind'], d: Promise<HostTensor>) => {
            const e = d.then((delta) => ({ layer, kind, delta }));
            e.catch(() => {}); // a failed read is reported by the Promise.all below, not as unhandled meanwhile
            deltas.push(e);
          }
        : undefined;
      const ls = new Scope(sc);
      const prev = x;
      let y = x;
      try {
        for (const sub of s.blocks[i]) {
          const ctx = { pastLen, state: state ? state.layers[i] : null, onDelta: report };
          const mixer = sub.mixer;
          if (mixer.forwardResidual) {
            // the sublayer with its norm and residual in one backend call where it has one (wasm prefill)
            const r = { norm: sub.norm, eps: s.normEps, scale: sub.residualScale ?? 1 };
            const whole = await ls.run(() => mixer.forwardResidual!(y, r, ctx));
            if (whole) {
              y = whole;
              continue;
            }
          }
          const out = await ls.run(() => {
            const h = sub.norm ? ops.rmsNorm(y, sub.norm, s.normEps) : y;
            return mixer.forward(h, ctx);
          });
          y = ls.run(() => ops.add(y, ops.scale(out, sub.residualScale ?? 1)));
        }
      } finally {
        if (state) for (const t of Object.values(state.layers[i])) keep(t);
        ls.end(y);
      }
      x = y;
      if (collect && (s.hiddenStates === 'layer-outputs' || i < s.blocks.length - 1)) hidden.push(x);
      if (prev !== x && !hidden.includes(prev)) prev.dispose(); // the layer before's output: read by this layer only
    }
    const last = sc.run(() => ops.rmsNorm(x, s.finalNorm, s.normEps));
    if (collect) hidden.push(last);
    if (onDelta) for (const e of await Promise.all(deltas)) onDelta(e);
    if (state) for (let r = 0; r < b; r++) state.seqLen[r] += L;
    return { last, hidden };
  }

  /**
   * `run`'s one-token step (no hidden states collected, Δ not observed) through the backend's `decodeStack`, where every
   * sublayer of every block is pre-normed and its mixer offers it (`Mixer.stackLayer`: Mamba-1, Mamba-2, attention,
   * the gated MLP; not the plain MLP or the mixtures of experts):
   * the final-normed rows [b, 1, H], or with `head` each row's argmax of the LM head where the backend fused that too;
   * the state advanced. null (nothing run, the state as it was) where that is not so or the backend declines.
   */
  private stackStep(ids: number[][], state: ModelState, head: Tensor | null, sc: Scope): Tensor | Int32Array | Promise<Int32Array> | null {
    const s = this.spec, be = this.backend;
    if (!be.decodeStack || ids[0].length !== 1 || needsGrad(s.embed, s.finalNorm, head)) return null;
    const pastLen = state.seqLen.slice();
    const layers: Array<DecodeStackArgs['layers'][number]> = [];
    for (let i = 0; i < s.blocks.length; i++) {
      for (const sub of s.blocks[i]) {
        if (!sub.norm) return null;
        const m = sub.mixer.stackLayer?.({ pastLen, state: state.layers[i] });
        for (const t of Object.values(state.layers[i])) keep(t); // (a KV cache grown for the step: the state owns it)
        if (!m) return null;
        layers.push({ ...m, norm: sub.norm, scale: sub.residualScale ?? 1 });
      }
    }
    const b = ids.length, H = s.embed.shape[1];
    const x = () => ops.scale(ops.embedding(s.embed, Int32Array.from(ids.flat()), [b, 1, H]), s.embedScale ?? 1);
    const embed = { table: s.embed, ids: Int32Array.from(ids.flat()), scale: s.embedScale ?? 1 };
    const r = sc.run(() => be.decodeStack!({ rows: b, pastLen, x, layers, normEps: s.normEps, finalNorm: s.finalNorm, head, embed }));
    if (r) for (let i = 0; i < b; i++) state.seqLen[i] += 1;
    return r;
  }

  /** the checkpoint tensors this model holds, by checkpoint name */
  get parameters(): ReadonlyMap<string, ParamEntry> {
    return this.spec.params;
  }

  /**
   * Logits [b, L, V] of a rectangular batch without state, as a backend tensor: what training differentiates
   * (inside `withGrad`, with trainable parameters, every op on the way is recorded).
   */
  async logitsTensor(ids: number[][]): Promise<Tensor> {
    this.checkIds(ids);
    const sc = new Scope();
    try {
      const { last } = await this.run(ids, null, false, null, sc);
      const logits = sc.run(() => ops.scale(ops.linear(last, this.spec.lmHead), 1 / (this.spec.logitsDivisor ?? 1)));
      sc.end(logits); // the logits pass to the caller's scope; what the tape recorded stays with the graph
      return logits;
    } finally {
      sc.end();
    }
  }

  /**
   * Mean next-token cross-entropy of a rectangular batch against `targets` [b·L] (row-major; `ignoreIndex` rows not
   * scored), as a backend tensor — what training differentiates. The logits are computed and scored in row blocks
   * that each fit the backend's largest tensor (`Backend.maxTensorElements`: a batch of 8 × 2048 tokens over a
   * 50k vocabulary is 3.3 GB of logits, past WebGPU's 2 GB bindings), and the blocks' losses are combined with
   * weights count_k / count, which is the mean over all scored rows.
   */
  async lossTensor(ids: number[][], targets: Int32Array, ignoreIndex = -100): Promise<ops.CrossEntropy> {
    this.checkIds(ids);
    const b = ids.length, L = ids[0].length, V = this.vocabSize;
    if (targets.length !== b * L) throw new ModelError(`loss: ${targets.length} targets for a ${b}×${L} batch`);
    const limit = this.spec.backend.maxTensorElements ?? Infinity;
    const per = Math.max(1, Math.min(b * L, Math.floor(limit / V)));
    const sc = new Scope();
    try {
      const { last } = await this.run(ids, null, false, null, sc);
      const r = sc.run(() => {
        const head = (h: Tensor): Tensor => ops.scale(ops.linear(h, this.spec.lmHead), 1 / (this.spec.logitsDivisor ?? 1));
        const H = last.shape[2];
        if (per >= b * L) return ops.softmaxCrossEntropy(ops.reshape(head(last), [b * L, V]), targets, ignoreIndex);
        const rows = ops.reshape(last, [b * L, H]);
        const count = targets.reduce((n, t) => n + (t === ignoreIndex ? 0 : 1), 0);
        let loss: Tensor | null = null, correct = 0, correctT: Tensor | null = null;
        for (let r0 = 0; r0 < b * L; r0 += per) {
          const r1 = Math.min(b * L, r0 + per);
          const t = targets.subarray(r0, r1);
          const n = t.reduce((k, v) => k + (v === ignoreIndex ? 0 : 1), 0);
          if (n === 0) continue;
          const block = ops.takeRows(rows, Array.from({ length: r1 - r0 }, (_, i) => r0 + i));
          const ce = ops.softmaxCrossEntropy(head(block), t, ignoreIndex);
          const part = ops.scale(ce.loss, n / count);
          loss = loss ? ops.add(loss, part) : part;
          if (ce.correctTensor) correctT = correctT ? this.spec.backend.add(correctT, ce.correctTensor) : ce.correctTensor;
          else correct += ce.correct;
        }
        if (!loss) return ops.softmaxCrossEntropy(head(ops.takeRows(rows, Array.from({ length: per }, (_, i) => i))), targets.subarray(0, per), ignoreIndex); // nothing scored
        return { loss, count, correct: correctT ? Number.NaN : correct, ...(correctT ? { correctTensor: correctT } : {}) };
      });
      sc.end(r);
      return r;
    } finally {
      sc.end();
    }
  }

  async forward(ids: number[][], opts: ForwardOptions = {}): Promise<ForwardOutput> {
    this.checkIds(ids);
    if (opts.state) this.checkState(opts.state, ids.length);
    const b = ids.length;
    const L = ids[0].length;
    const keep = opts.logitsToKeep ?? L;
    if (!Number.isInteger(keep) || keep < 1) throw new ModelError(`forward: logitsToKeep must be a positive integer, got ${opts.logitsToKeep}`);
    const k = Math.min(L, keep);
    // every tensor of the call is freed when it returns (host copies are what it hands back)
    const sc = new Scope();
    try {
      const { last, hidden } = await this.run(ids, opts.state ?? null, !!opts.outputHiddenStates, opts.onDelta ?? this.onDelta, sc);
      const logits = sc.run(() => {
        const H = last.shape[2];
        const tail = k === L ? last : ops.reshape(ops.takeRows(ops.reshape(last, [b * L, H]), lastPositions(b, L, k)), [b, k, H]);
        return ops.scale(ops.linear(tail, this.spec.lmHead), 1 / (this.spec.logitsDivisor ?? 1));
      });
      const out: ForwardOutput = { logits: { shape: [b, k, this.vocabSize], data: await logits.data() } };
      if (opts.outputHiddenStates) out.hiddenStates = await Promise.all(hidden.map(async (t) => ({ shape: [...t.shape], data: await t.data() })));
      return out;
    } finally {
      sc.end();
    }
  }

  async advance(ids: number[][], state: ModelState, opts: StepOptions = {}): Promise<HostTensor> {
    if (!state) throw new ModelError('advance: a state is required (model.createState(batch))');
    const step = async () => (await this.forward(ids, { state, logitsToKeep: 1, onDelta: opts.onDelta })).logits.data;
    const data = await this.replayable('logits', ids, state, step, !!(opts.onDelta ?? this.onDelta));
    return { shape: [ids.length, this.vocabSize], data };
  }

  /**
   * One-token steps on a backend that records and replays them (WebGPU): the first step of a state runs the
   * model code and is recorded, the following ones replay the recorded submit with the new token ids — no
   * JavaScript per layer. KV caches are grown first to hold the step (doubling: a recorded step lasts until
   * they fill), and the replay tells the backend how far each sequence advanced since the recorded step (the
   * lengths and rotary positions it uploads follow). Not with Δ observers, and only while the step's shape stays
   * the same (batch, what is read back, first step after a prefill or not, cache capacity).
   */
  private async replayable(what: string, ids: number[][], state: ModelState, step: () => Promise<Float32Array>, observed: boolean, own: readonly Tensor[] = []): Promise<Float32Array> {
    const be = this.backend;
    if (!be.captureStep || !be.replayStep || ids[0]?.length !== 1 || observed) return step();
    this.checkIds(ids);
    this.checkState(state, ids.length);
    this.reserve(state, 1);
    const key = graphKey(what, ids.length, state);
    const rec = this.graphs.get(state);
    if (rec?.key === key && rec.graph) {
      const out = await be.replayStep(rec.graph, ids.map((r) => r[0]), shiftOf(state, rec.seqLen));
      if (out) {
        for (let r = 0; r < ids.length; r++) state.seqLen[r] += 1;
        return out;
      }
    } else if (rec?.key === key) {
      return step(); // this step cannot be replayed (recorded once, found not to fit)
    }
    const mine = [...state.layers.flatMap((l) => Object.values(l)), ...own];
    // a state without a recorded step: the step another state of this model recorded, rebound to this one's tensors
    // (backends that can: WebGPU with rebindSteps) — no model code, nothing read back. A step whose KV-cache lengths
    // and rotary positions follow the positions is rebound at the positions it was recorded at only.
    const plan = !rec && be.rebindStep ? this.plans.get(key) : undefined;
    if (plan && (state.timeTensors.size === 0 || plan.seqLen.every((p, r) => p === state.seqLen[r]))) {
      const graph = be.rebindStep!(plan.plan, mine);
      const out = graph && (await be.replayStep(graph, ids.map((r) => r[0]), shiftOf(state, plan.seqLen)));
      if (graph && out) {
        state.onDispose(() => this.dropGraph(state));
        this.graphs.set(state, { key, graph, seqLen: plan.seqLen });
        for (let r = 0; r < ids.length; r++) state.seqLen[r] += 1;
        return out;
      }
      if (graph) be.releaseStep?.(graph);
    }
    const seqLen = state.seqLen.slice();
    const { result, graph } = await be.captureStep(step, mine);
    if (rec?.graph) be.releaseStep?.(rec.graph); // replaced: its blocks need not wait for the collector
    else if (!rec) state.onDispose(() => this.dropGraph(state));
    this.graphs.set(state, { key, graph, seqLen });
    const p = graph && be.stepPlan?.(graph);
    if (p) this.plans.set(key, { plan: p, seqLen });
    return result;
  }
  /** per step key: the plan of the latest recorded step (Backend.stepPlan), for rebinding it to a fresh state */
  private readonly plans = new Map<string, { plan: object; seqLen: readonly number[] }>();

  /** the state's recorded step given up (the state is being disposed) */
  private dropGraph(state: ModelState): void {
    const rec = this.graphs.get(state);
    this.graphs.delete(state);
    if (rec?.graph) this.backend.releaseStep?.(rec.graph);
  }
  /**
   * per state: its recorded one-token step (null: recorded once and found not replayable), what it was, and the
   * sequence lengths it was recorded at
   */
  private readonly graphs = new WeakMap<ModelState, { key: string; graph: StepGraph | null; seqLen: readonly number[] }>();

  /** KV caches (time tensors) of `state` grown to hold `more` positions after the longest sequence */
  private reserve(state: ModelState, more: number): void {
    if (state.timeTensors.size === 0) return;
    const need = Math.max(...state.seqLen) + more;
    this.spec.blocks.forEach((subs, i) => {
      for (const sub of subs) sub.mixer.reserve?.(state.layers[i], need);
      for (const t of Object.values(state.layers[i])) keep(t);
    });
  }

  /** the backend replays recorded steps (KV caches included: their lengths follow the positions on replay) */
  get chainsOnDevice(): boolean {
    return !!this.backend.replayChain && !!this.backend.argmaxRows;
  }

  /**
   * `n` greedy one-token steps with the tokens kept on the device between steps (backends that replay
   * recorded steps, e.g. WebGPU): once the step is recorded (else the first step runs as `advanceArgmax` and
   * records it) the steps are queued at once, each step's argmax feeding the next. The ids chosen at each
   * step, [n][rows]; null when the backend cannot do it (then step with advanceArgmax). Stop tokens are not
   * looked at: the state reads all n steps.
   */
  async greedyChain(ids: number[][], state: ModelState, n: number): Promise<Int32Array[] | null> {
    const be = this.backend;
    if (!be.replayChain || !be.argmaxRows || !Number.isInteger(n) || n < 1) return null;
    const toIds = (f: Float32Array, s: number) => Int32Array.from(f.subarray(s * ids.length, (s + 1) * ids.length), (v) => Math.round(v));
    this.checkIds(ids);
    if (ids.every((r) => r.length === 1)) {
      this.checkState(state, ids.length);
      this.reserve(state, n); // the caches hold all n steps (a grown cache is recorded again, below)
    }
    const rec = this.graphs.get(state);
    if (rec?.key === graphKey('argmax', ids.length, state) && rec.graph && ids.every((r) => r.length === 1)) {
      // recorded already: all n steps on the device, the first reading `ids` from the upload
      this.checkIds(ids);
      this.checkState(state, ids.length);
      const f = await be.replayChain(rec.graph, ids.map((r) => r[0]), n, shiftOf(state, rec.seqLen));
      if (f) {
        for (let r = 0; r < ids.length; r++) state.seqLen[r] += n;
        return Array.from({ length: n }, (_, s) => toIds(f, s));
      }
    }
    const first = await this.advanceArgmax(ids, state); // runs the model code and records the step
    if (!first) return null;
    const out = [first];
    const again = this.graphs.get(state);
    if (n > 1 && again?.graph && again.key === graphKey('argmax', ids.length, state)) {
      const f = await be.replayChain(again.graph, Array.from(first), n - 1, shiftOf(state, again.seqLen));
      if (f) {
        for (let r = 0; r < ids.length; r++) state.seqLen[r] += n - 1;
        for (let s = 0; s < n - 1; s++) out.push(toIds(f, s));
        return out;
      }
    }
    for (let s = 1; s < n; s++) out.push((await this.advanceArgmax(Array.from(out[s - 1], (t) => [t]), state))!);
    return out;
  }

  async advanceArgmax(ids: number[][], state: ModelState, opts: StepOptions = {}): Promise<Int32Array | null> {
    if (!this.backend.argmaxRows) return null;
    return this.advancePick(ids, state, opts, null);
  }

  /**
   * `advance`, returning each row's token drawn on the device (`Backend.sampleRows`) with `s`'s options; the
   * state's sampling tensors (RNG counters, presence masks) are made from `s` on the first sampled step of
   * this state with these options and advance on the device after that. null when the backend cannot.
   */
  async advanceSample(ids: number[][], state: ModelState, s: DeviceSampling, opts: StepOptions = {}): Promise<Int32Array | null> {
    if (!this.backend.sampleRows) return null;
    return this.advancePick(ids, state, opts, s);
  }

  /**
   * Queue `n` steps of `advanceArgmax` (pick null) or `advanceSample` on the device, each step's pick fed to the
   * next, and return at once: the promise gives the picks [n][rows]. `ids` null continues from the picks of the
   * previous chain on this state (nothing read back in between). null when the step is not recorded for this
   * state yet (run one `advanceArgmax` / `advanceSample` step first) or the backend cannot chain.
   */
  submitChain(ids: number[][] | null, state: ModelState, n: number, pick: DeviceSampling | null = null): Promise<Int32Array[]> | null {
    const be = this.backend;
    if (!be.startChain || !Number.isInteger(n) || n < 1) return null;
    const rows = state.batch;
    if (ids) {
      if (!ids.every((r) => r.length === 1)) return null;
      this.checkIds(ids);
      this.checkState(state, ids.length);
    }
    this.reserve(state, n); // KV caches hold all n steps (a grown cache changes the key: recorded again by the caller)
    const rec = this.graphs.get(state);
    if (!rec?.graph || rec.key !== graphKey(pickKey(pick), rows, state)) return null;
    if (pick && this.sampling.get(state)?.key !== samplingKey(pick)) return null;
    const p = be.startChain(rec.graph, ids ? ids.map((r) => r[0]) : null, n, shiftOf(state, rec.seqLen));
    if (!p) return null;
    for (let r = 0; r < rows; r++) state.seqLen[r] += n;
    return p.then((f) => Array.from({ length: n }, (_, s) => Int32Array.from(f.subarray(s * rows, (s + 1) * rows), (v) => Math.round(v))));
  }

  /**
   * Read the given tokens, one step per entry of `steps` ([steps][rows] ids), nothing read back: after the first
   * step (recorded when needed) the recorded step is replayed with each step's ids (WebGPU), else `advance`.
   */
  async feedSteps(steps: number[][], state: ModelState): Promise<void> {
    if (steps.length === 0) return;
    const col = (s: number) => steps[s].map((t) => [t]);
    if (!this.backend.argmaxRows) {
      for (let s = 0; s < steps.length; s++) await this.advance(col(s), state);
      return;
    }
    await this.advanceArgmax(col(0), state);
    const rest = steps.slice(1);
    if (rest.length === 0) return;
    this.reserve(state, rest.length);
    const rec = this.graphs.get(state);
    if (rec?.graph && rec.key === graphKey('argmax', state.batch, state) && this.backend.replayFeed) {
      rest.forEach((r, s) => this.checkIds(col(s + 1)));
      if (this.backend.replayFeed(rec.graph, rest, shiftOf(state, rec.seqLen))) {
        for (let r = 0; r < state.batch; r++) state.seqLen[r] += rest.length;
        return;
      }
    }
    for (let s = 1; s < steps.length; s++) await this.advanceArgmax(col(s), state);
  }

  /** the one-token step that ends in the argmax (pick null) or a draw on the device */
  private async advancePick(ids: number[][], state: ModelState, opts: StepOptions, pick: DeviceSampling | null): Promise<Int32Array> {
    const be = this.backend;
    if (!state) throw new ModelError('advance: a state is required (model.createState(batch))');
    this.checkIds(ids);
    this.checkState(state, ids.length);
    const b = ids.length;
    const L = ids[0].length;
    const dev = pick ? this.samplingTensors(state, pick) : null;
    const step = async () => {
      const sc = new Scope();
      try {
        const d = this.spec.logitsDivisor ?? 1;
        const argmaxHead = !pick && d > 0 && !!be.linearArgmax;
        const onDelta = opts.onDelta ?? this.onDelta;
        // a one-token step of a Mamba stack in one backend call, the LM head's argmax too where it can (see run)
        // (the head whenever the argmax is wanted: a backend may fuse it into the stack without linearArgmax — WebGPU 'mega')
        const stacked = onDelta ? null : this.stackStep(ids, state, !pick && d > 0 ? this.spec.lmHead : null, sc);
        if (stacked instanceof Int32Array) return Float32Array.from(stacked);
        if (stacked instanceof Promise) return Float32Array.from(await stacked);
        const last = stacked ?? (await this.run(ids, state, false, onDelta, sc, !onDelta)).last;
        const H = last.shape[2];
        const tail = sc.run(() => (L === 1 ? ops.reshape(last, [b, H]) : ops.takeRows(ops.reshape(last, [b * L, H]), lastPositions(b, L, 1))));
        // greedy: the LM head and the argmax in one op where the backend has it (wasm: no logits copied out)
        const fused = argmaxHead ? sc.run(() => be.linearArgmax!(tail, this.spec.lmHead)) : null;
        if (fused) return Float32Array.from(fused);
        const logits = sc.run(() => {
          // a positive divisor does not move the argmax: no scaling dispatch (sampling needs the true logits)
          const l = ops.linear(tail, this.spec.lmHead);
          return d === 1 || (!pick && d > 0) ? l : ops.scale(l, 1 / d);
        });
        const picked = pick ? be.sampleRows!(logits, { ...pick, rng: dev!.rng, presence: dev!.pres }) : be.argmaxRows!(logits);
        return Float32Array.from(await sc.run(() => picked));
      } finally {
        sc.end();
      }
    };
    const own = dev ? [dev.rng, ...(dev.pres ? [dev.pres] : [])] : [];
    return Int32Array.from(await this.replayable(pickKey(pick), ids, state, step, !!(opts.onDelta ?? this.onDelta), own), (v) => Math.round(v));
  }

  /** per state: the device tensors its sampled steps draw with (made once per state and options) */
  private readonly sampling = new WeakMap<ModelState, { key: string; rng: Tensor; pres: Tensor | null }>();
  private samplingTensors(state: ModelState, s: DeviceSampling): { rng: Tensor; pres: Tensor | null } {
    const key = samplingKey(s);
    const have = this.sampling.get(state);
    if (have?.key === key) return have;
    const rows = state.batch, V = this.vocabSize;
    if (s.seeds.length !== rows || s.counters.length !== rows) throw new ModelError(`advanceSample: ${s.seeds.length} seeds and ${s.counters.length} counters for ${rows} sequences`);
    const rng = philoxRows(s.seeds, s.counters);
    let pres: Tensor | null = null;
    if (s.repetitionPenalty !== 1) {
      const m = new Float32Array(rows * V);
      (s.history ?? []).forEach((h, r) => h.forEach((t) => {
        if (!Number.isInteger(t) || t < 0 || t >= V) throw new ModelError(`advanceSample: history of row ${r} holds ${t}, not a token id in [0, ${V})`);
        m[r * V + t] = 1;
      }));
      pres = keep(this.backend.fromHost(m, [rows, V]));
    }
    if (have) {
      have.rng.dispose();
      have.pres?.dispose();
    }
    const entry = { key, rng: keep(this.backend.fromHost(rng, [rows, 8])), pres };
    this.sampling.set(state, entry);
    return entry;
  }

  describe(): Record<string, unknown> {
    const s = this.spec;
    const params = s.blocks.reduce((a, subs) => a + subs.reduce((b, x) => b + x.mixer.parameterCount + (x.norm?.size ?? 0), 0), 0);
    const st = this.createState(1);
    st.dispose();
    return {
      ...s.summary,
      parameters: s.embed.size + params + s.finalNorm.size + (s.lmHead === s.embed ? 0 : s.lmHead.size),
      state_bytes_per_sequence: st.byteSize,
      ...(st.timeTensors.size > 0 ? { state_note: 'attention layers add a KV cache that grows with the sequence' } : {}),
      backend: this.backend.name,
    };
  }

  private checkIds(ids: number[][]): void {
    if (!Array.isArray(ids) || ids.length === 0) throw new ModelError('input: ids must be a non-empty array of token-id rows');
    const L = Array.isArray(ids[0]) ? ids[0].length : -1;
    ids.forEach((row, r) => {
      if (!Array.isArray(row)) throw new ModelError(`input: ids[${r}] is not an array of token ids`);
      if (row.length === 0) throw new ModelError(`input: ids[${r}] is empty; every sequence needs at least one token`);
      if (row.length !== L) throw new ModelError(`input: rows have different lengths (ids[0] has ${L}, ids[${r}] has ${row.length}); use generate() for prompts of different lengths`);
      row.forEach((id, t) => {
        if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
          throw new ModelError(`input: token id ids[${r}][${t}] = ${id} is out of range; expected an integer in [0, ${this.vocabSize})`);
        }
      });
    });
  }

  private checkState(state: ModelState, batch: number): void {
    if (state.fingerprint !== this.fingerprint) throw new ModelError(`state belongs to another model (${state.fingerprint}); this model is ${this.fingerprint}`);
    if (state.batch !== batch) throw new ModelError(`state holds ${state.batch} sequences but ${batch} rows of ids were given`);
    state.checkBackend(this.backend);
  }
}

/**
 * what a recorded step depends on besides the state: what it reads back, the batch, whether it follows a prefill,
 * the capacity of the KV caches (tensors that grow are new tensors: the step is recorded again)
 */
function graphKey(what: string, rows: number, state: ModelState): string {
  const caps = state.layers.flatMap((l) => Object.entries(l).filter(([k]) => state.timeTensors.has(k)).map(([, t]) => t.shape[1]));
  return `${what}|${rows}|${state.seqLen.every((p) => p > 0)}|${caps.join(',')}`;
}

/** how many positions each sequence advanced since a step recorded at `seqLen` */
function shiftOf(state: ModelState, seqLen: readonly number[]): number[] {
  return state.seqLen.map((p, r) => p - seqLen[r]);
}

function pickKey(pick: DeviceSampling | null): string {
  return pick ? `sample:${samplingKey(pick)}` : 'argmax';
}
function samplingKey(s: DeviceSampling): string {
  return [s.temperature, s.topK, s.topP, s.minP, s.repetitionPenalty].join(',');
}

function lastPositions(b: number, L: number, keep: number): number[] {
  const rows: number[] = [];
  for (let r = 0; r < b; r++) for (let t = L - keep; t < L; t++) rows.push(r * L + t);
  return rows;
}
