/// <reference types="@webgpu/types" />
/**
 * decodeKernels 'mega' (issue 11): the WebGPU side of `Backend.decodeStack` — a batch-1 decode step of a Mamba-2 (or Mamba-1) stack
 * as one persistent-kernel dispatch with grid barriers (kernels/mega.ts MEGA2 / MEGA1), between the embedding gather before it
 * and the LM head after it (the decoder's own ops) — or, for a greedy step with the '-h' setting (`MegaOptions.head`;
 * `MegaHead`: the LM head and the embedding in the layers' format, vec4-aligned, the bindings within the adapter's
 * limit), with the gather and the LM head's argmax inside: the whole step one dispatch, its output the token id
 * (`lastHeadDecline` says why such a step ran the rows).
 *
 * A plan per model (its weight tensors by identity): the layer weights copied once into two arenas of their own — the
 * matrices (in_proj, out_proj of every layer, f32 or bf16) and the small constants (norms, conv, biases, A, D) — so that
 * one dispatch binds a whole stack (the pools scatter a model over many buffers, more than a stage may bind; the arena
 * is a second copy of the layer weights: +360 MB for mamba2-130m in f32). Matrices past one binding
 * (maxStorageBufferBindingSize: mamba2-2.8b bf16's 5.1 GB) go on into further arenas, up to MEGA_MAX_ARENAS, each its own
 * binding (so the step binds up to 3 more buffers: declined where that passes maxStorageBuffersPerShaderStage). Per state (its conv/SSM tensors by identity)
 * a layer table of offsets. The copies and a co-residency probe (the same pipeline running only grid barriers, with as many
 * workgroups) are submitted outside the recorded stream; until the probe has come back (`ready()`) the step declines
 * (null: the multi-dispatch kernels run). A probe that timed out, or a step whose barrier timed out (its flag read back
 * after a later replay), turns 'mega' off for this backend with a warning (`status`); recorded steps are made stale
 * (`onChange`) so that they are recorded again with the kernels now in use. Steps run between a timeout and its
 * detection are wrong: a timeout is not expected once the probe passed (same grid, nothing else resident), and is the
 * price of a kernel that can never hang.
 *
 * Declines (null) for: batch > 1, gradients (the decoder does not ask), stacks that are not all Mamba-2 or all Mamba-1
 * layers, Mamba-1 with Δ/B/C norms, q8 or mixed in_proj/out_proj formats, widths the kernel does not stage (dState > 256,
 * more than 64 gated-norm groups, x̂ over the workgroup memory), bindings over the adapter's limit, layer weights over
 * MEGA_MAX_ARENAS bindings or a matrix over one.
 */
import type { DecodeStackArgs, Mamba1LayerArgs, Mamba2LayerArgs } from '../backend.js';
import type { Tensor } from '../../tensor/tensor.js';
import { BUFFER_USAGE, Store, f2u, type GpuRuntime, type KernelSpec } from './runtime.js';
import { MEGA1, MEGA2, MEGA_MAX_ARENAS, MEGA_MAX_GROUPS, MEGA_MAX_STATE, MEGA_TS, MT } from './kernels/mega.js';

const F32_MAX = 3.4028234663852886e38;

type M2 = Omit<Mamba2LayerArgs, 'h' | 'next' | 'onDelta'>;
type M1 = Omit<Mamba1LayerArgs, 'h' | 'next' | 'onDelta'>;

/** one model's arenas and dimensions */
interface Plan {
  key: unknown[];
  /** the options it was made with ('groups/rows') */
  opts: string;
  state: 'probing' | 'ready' | 'failed';
  /** the matrix arenas (one binding each, at most MEGA_MAX_ARENAS) */
  wm: Store[];
  wc: Store;
  fmt: 'f' | 'b';
  variant: string;
  /**
   * MEGA2 (Mamba-2) or MEGA1 (Mamba-1) and its parameters but the last five (params 14–18: the probe's rounds, a greedy
   * step's head rows, embedding scale and embedding rows, the slices)
   */
  spec: KernelSpec;
  params: number[];
  /** the slices the phases split the work into (param 18; MEGA1 has them in param 4 too) */
  slices: number;
  /** L, H; grid-barrier slots a step (the flag's index); scratch words before the table; a layer's conv and SSM state sizes */
  L: number;
  H: number;
  nb: number;
  scWords: number;
  stateSizes: [number, number];
  /** Mamba-2's Δ limits and gated-norm eps per layer (0 for Mamba-1) */
  lims: [number, number, number][];
  flags: number;
  fnorm: number;
  /** each layer's residual scale */
  scales: number[];
  /** per layer: offsets in the arenas (wm in vec4s, wc in words) */
  layers: Partial<Record<keyof typeof MT, number>>[];
  /** per state (by its first conv tensor): its scratch (with the layer table) and the buffer its tensors were moved to */
  tables: WeakMap<Tensor, { key: unknown[]; sc: Store; st: Store }>;
  /** the scratch buffers of its states (their error flags are read by `check`; weakly: a state's goes with it) */
  scratch: GPUBuffer[];
  probe: Promise<void> | null;
  /** a flag read in flight */
  checking: boolean;
}

/** what `build` needs of a stack's kind (MegaDecode.shape2 / shape1) */
interface Shape<M> {
  kind: 'mamba2' | 'mamba1';
  /** floats of x̂ the kernel stages (the widest input of a projection) */
  width: number;
  nb: number;
  scWords: number;
  stateSizes: [number, number];
  /** a layer's in_proj and out_proj (the matrix arena: one format) */
  mats: (m: M) => Tensor[];
  /** a layer's constants by table entry */
  consts: (m: M) => Partial<Record<keyof typeof MT, Tensor | null>>;
  params: (eps: number, flags: number, spin: number, fnorm: number) => number[];
  /** the slices (param 18) */
  slices: number;
  lims: [number, number, number][];
  /** the kernel's variant past format, width and rows ('p4': MEGA1's 4 phases) */
  variant?: string;
}

export interface MegaOptions {
  /** workgroups of the persistent kernel (all must be resident at once) */
  groups: number;
  /** in_proj/out_proj rows per pass of a workgroup (8, 16, 32) */
  rows: number;
  /** polls of a grid barrier before it gives up (sets the error flag) */
  spin: number;
  /** bytes of a matrix arena at most (below the adapter's binding limit: tests split small models over arenas) */
  arenaBytes?: number;
  /** Mamba-1 stacks: 3 grid phases a layer (MEGA1, session 33) or 4 (variant 'p4', session 32's) */
  mamba1Phases: 3 | 4;
  /**
   * out_proj's rows split evenly over the workgroups (contiguous, 5–6 a workgroup at H 768 and 132: round-robin blocks
   * of `rows` leave 36 / 84 / 108 workgroups idle at 8 / 16 / 32), in passes of this many rows (8, 16, 32); MEGA1 in 3
   * phases always splits them evenly (at `rows` a pass without this); unset, MEGA2 keeps its blocks
   */
  outRows?: number;
  /**
   * MEGA1 (3 phases) and MEGA2 with `even`: the slices their phases split the work into (default: the workgroups;
   * tests give one workgroup several)
   */
  slices?: number;
  /**
   * Mamba-2 stacks: MEGA2's variant 'e' (setting '-e', session 34) — every phase's rows split evenly over the slices
   * (in_proj 25–26 rows a workgroup at mamba2-130m and 132, the heads' rows 11–12, out_proj 5–6), the conv and the
   * window shift in in_proj's epilogue (once a channel, not once per SSD unit), the gate silu(z) applied by the row's
   * owner; unset: session 32's MEGA2 (round-robin blocks). Mamba-1's 3-phase kernel splits evenly already (ignored).
   */
  even?: boolean;
  /**
   * the projections' vec4 loads a lane issues before their products (1, 2, 4, 8; setting '-u{U}', session 34): unset,
   * 2 for f32 and 1 for bf16 (sessions 32–33). At r32 a lane's share of an in_proj row is 24 vec4s (f32) / 12 (bf16):
   * with 2 / 1 in flight, 12 memory round trips in a row; with 8, 3 / 2.
   */
  loads?: number;
  /**
   * a greedy step's embedding gather, LM head and argmax inside the kernel (setting '-h': the step one dispatch), else
   * after it as the decoder's ops (~4 dispatches). Off by default: on the H100 in session 33 the in-kernel LM head made
   * a mamba2-130m bf16 step slower (mega2 r32-o8 753–756 µs with it, against 631 µs + 71 µs of head dispatches for
   * session 32's kernel without it; f32 mega 903 tok/s = 0.87× v1 against session 32's 1.11× v1): 132 workgroups
   * stream the 50280-row head at a fraction of what the head's own 6,286-workgroup matvec reaches.
   */
  head?: boolean;
}

/** a greedy step's LM head and embedding (`MegaDecode.step`: the step's last phases, the token id its output) */
export interface MegaHead {
  /** the LM head [V, H] (in the layers' weight format) */
  head: Tensor;
  /** the embedding table [V', H] (the same tensor when tied) and its scale */
  embed: Tensor;
  scale: number;
  /** the token id uploaded (the step's first upload: a chained step writes the next one there) */
  ids: () => Store;
  /** the output: one float, the token id */
  out: Store;
}

export class MegaDecode {
  /** why 'mega' went off last ('' if it never did; `ready()` says whether it is off with the current options) */
  status = '';
  private readonly plans: Plan[] = [];
  private readonly warned = new Set<string>();
  private readonly dropped = new FinalizationRegistry<GPUBuffer>((b) => this.destroy(b));
  private destroy(b: GPUBuffer): void {
    for (const p of this.plans) p.scratch = p.scratch.filter((s) => s !== b);
    this.rt.destroyBuffer(b);
  }

  constructor(
    private readonly rt: GpuRuntime,
    public opts: MegaOptions,
    /** recorded steps go stale (the kernels of a step change) */
    private readonly onChange: () => void,
    /** a new activation block of n floats */
    private readonly out: (n: number) => Store,
  ) {}

  /** resolves when every probe submitted so far has come back; the status ('' = ready) */
  async ready(): Promise<string> {
    await Promise.all(this.plans.map((p) => p.probe));
    return this.offNow();
  }
  /** why 'mega' is off with the current options ('' when it is not) */
  private offNow(): string {
    return this.failed.get(this.optsKey()) ?? '';
  }
  /** the options a plan is made with (the kernel and its grid) */
  private optsKey(): string {
    return `${this.opts.groups}/${this.opts.rows}/${this.opts.mamba1Phases}/${this.opts.slices ?? ''}/${this.opts.outRows ?? ''}/${this.opts.head ? 'h' : ''}/${this.opts.even ? 'e' : ''}/${this.opts.loads ?? ''}`;
  }
  /** the failures (status) by the options they happened with */
  private readonly failed = new Map<string, string>();

  /**
   * The step (see the file's comment): the final-normed rows as a store [H] (greedy false), or with `greedy` where the
   * LM head and the embedding can be bound its output, the token id (greedy true); null (the caller runs the layers).
   * `x` makes the embedded token (recorded first). A decline that will not change leaves its reason in `lastDecline`.
   */
  step(a: DecodeStackArgs, x: () => Store, greedy: MegaHead | null = null): { y: Store; greedy: boolean } | null {
    if (this.offNow()) return null;
    if (a.rows !== 1) return null;
    const ls = a.layers;
    const kind = ls[0]?.kind;
    if (ls.length === 0 || !(kind === 'mamba2' || kind === 'mamba1') || ls.some((l) => l.kind !== kind)) return this.decline('only stacks of Mamba-2 layers or of Mamba-1 layers');
    const args = ls.map((l) => l.args as M2 | M1);
    const key = [a.finalNorm, a.normEps, this.optsKey(), ...ls.flatMap((l, i) => {
      const m = args[i];
      const own = 'nHeads' in m
        ? [m.norm, m.normEps, m.normGroupSize, m.dtLimit[0], m.dtLimit[1]]
        : [m.xProj, m.dtProj, m.innerNorms];
      return [l.norm, l.scale ?? 1, m.inProj, m.inProjBias, m.outProj, m.outProjBias, m.conv, m.convBias, m.dtBias, m.A, m.D, ...own];
    })];
    // the arenas are copies: weights changed in place (an optimizer step bumps `version`) make a new plan
    key.push(key.reduce<number>((v, k) => v + ((k as Tensor | null)?.version ?? 0), 0));
    const plan = this.plans.find((p) => p.key.length === key.length && p.key.every((k, i) => k === key[i]));
    if (!plan) {
      const made = this.build(a, args, key);
      if (typeof made === 'string') return this.decline(made);
      if (!made) return null; // not yet (the weights are being written by recorded work)
      this.plans.push(made);
      if (this.plans.length > 4) this.plans.shift(); // (old models' arenas to the collector)
      return null;
    }
    if (plan.state !== 'ready') return null;
    const t = this.table(plan, args);
    if (typeof t === 'string') return this.decline(t);
    if (!t) return null; // (the states are being written by recorded work: at the next step)
    if (greedy) this.lastHeadDecline = '';
    const head = greedy ? this.headOk(plan, greedy) : null;
    if (greedy && head) {
      // (counted before the ids are uploaded — the upload buffer is one more — so that a step that falls back to the
      // rows makes no upload of its own: a recorded step's first upload is where a chain writes the next token)
      const rest = [greedy.out, plan.wm[0], plan.wc, t.sc, t.st, head.hw, head.em, ...this.more(plan)];
      const n = new Set(rest.map((s) => s.ref)).size + 1;
      if (n <= this.rt.maxStorageBuffers) {
        const roles = [greedy.ids(), ...rest];
        this.rt.record({ spec: plan.spec, variant: `${plan.variant}a`, roles, params: [...plan.params, 0, greedy.head.shape[0], f2u(greedy.scale), greedy.embed.shape[0], plan.slices], grid: [this.opts.groups, 1, 1] });
        return { y: greedy.out, greedy: true };
      }
      this.lastHeadDecline = `the greedy step binds ${n} buffers; the adapter allows ${this.rt.maxStorageBuffers}`;
    }
    const xs = x();
    const y = this.out(plan.H);
    const roles = [xs, y, plan.wm[0], plan.wc, t.sc, t.st, plan.wm[0], plan.wm[0], ...this.more(plan)];
    if (new Set(roles.map((s) => s.ref)).size > this.rt.maxStorageBuffers) {
      return this.decline(`the step binds ${new Set(roles.map((s) => s.ref)).size} buffers; the adapter allows ${this.rt.maxStorageBuffers}`);
    }
    this.rt.record({ spec: plan.spec, variant: plan.variant, roles, params: [...plan.params, 0, 0, 0, 0, plan.slices], grid: [this.opts.groups, 1, 1] });
    return { y, greedy: false };
  }

  /** the roles wm1 … wm3: the plan's further arenas (the first where it has fewer: no binding of their own) */
  private more(plan: Plan): Store[] {
    return Array.from({ length: MEGA_MAX_ARENAS - 1 }, (_, i) => plan.wm[i + 1] ?? plan.wm[0]);
  }

  /** why the last greedy step did not take the LM head into the kernel ('' when it did; the rows were returned) */
  lastHeadDecline = '';
  /** the LM head and the embedding as the greedy variant binds them, or null (the reason in lastHeadDecline) */
  private headOk(plan: Plan, g: MegaHead): { hw: Store; em: Store } | null {
    const fmt = plan.fmt === 'b' ? 'bf16' : 'f32';
    for (const [name, t] of [['the LM head', g.head], ['the embedding', g.embed]] as const) {
      const s = t.storage as Store;
      const why = !(s instanceof Store) || s.blocks || s.lazy ? 'split into row blocks or a view'
        : s.fmt !== fmt ? `${s.fmt}, not the layers' ${fmt}`
        : t.shape.length !== 2 || t.shape[1] !== plan.H ? `of shape [${t.shape.join(', ')}], not [rows, ${plan.H}]`
        : s.off % 4 !== 0 ? 'not at a whole vec4' : '';
      if (why) {
        this.lastHeadDecline = `${name} is ${why}`;
        return null;
      }
    }
    return { hw: g.head.storage as Store, em: g.embed.storage as Store };
  }

  /** after a replay of a recorded step (or any time): read the error flags back, one read at a time per plan */
  check(): void {
    for (const p of this.plans) {
      if (p.state !== 'ready' || p.checking || p.scratch.length === 0) continue;
      p.checking = true;
      const flagAt = p.nb;
      const n = p.scratch.length;
      const staging = this.rt.createBuffer({ size: 4 * n, usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST, label: 'mega flag' });
      this.rt.submitNow(null, (enc) => p.scratch.forEach((sc, i) => enc.copyBufferToBuffer(sc, flagAt * 4, staging, 4 * i, 4)));
      staging.mapAsync(1 /* READ */).then(() => {
        const bad = new Uint32Array(staging.getMappedRange()).some((f) => f !== 0);
        staging.unmap();
        this.rt.destroyBuffer(staging);
        p.checking = false;
        if (bad) this.fail(p, `a grid barrier of the one-dispatch step timed out (${this.opts.groups} workgroups were not all resident); the steps since the last check are unreliable`);
      }, () => {
        p.checking = false;
      });
    }
  }

  private decline(why: string): null {
    if (!this.warned.has(why)) {
      this.warned.add(why);
      this.lastDecline = why;
    }
    return null;
  }
  /** the reason of the last decline for these arguments (for tests and benchmarks) */
  lastDecline = '';

  private fail(p: Plan, why: string): void {
    p.state = 'failed';
    this.status = `webgpu decodeKernels 'mega' is off: ${why}; running the multi-dispatch kernels (set megaGroups lower)`;
    this.failed.set(p.opts, this.status);
    console.warn(this.status);
    this.onChange();
  }

  /** a plan: validation, the arenas (copies submitted now), the probe; a string: why not; null: not now */
  private build(a: DecodeStackArgs, args: (M2 | M1)[], key: unknown[]): Plan | string | null {
    const H = a.finalNorm.shape[0], L = args.length;
    const shape = 'nHeads' in args[0] ? this.shape2(args as M2[], H) : this.shape1(args as M1[], H);
    if (typeof shape === 'string') return shape;
    const { mats: matsOf, consts, width, kind } = shape;
    const mats = args.flatMap((m) => matsOf(m as never)).map((t) => t.storage as Store);
    if (mats.some((s) => s.blocks || s.lazy)) return 'a matrix split into row blocks';
    const fmts = new Set(mats.map((s) => s.fmt));
    if (fmts.size !== 1 || !(fmts.has('f32') || fmts.has('bf16'))) return `weights ${[...fmts].join('+')} (f32 or bf16 only, one format)`;
    const fmt = fmts.has('bf16') ? 'b' : 'f';
    const K = args.flatMap((m) => matsOf(m as never)).map((t) => t.shape[1]);
    if (K.some((k) => k % (fmt === 'b' ? 8 : 4) !== 0)) return `matrix rows of ${[...new Set(K)].join(', ')} not whole vectors`;
    const xs = Math.ceil(width / 8) * 8;
    // (+ 256 words: the greedy variant's argmax rows)
    const wgBytes = xs * 4 + 2 * 256 * 4 + MEGA_MAX_GROUPS * 4 + 8 * 4 + 2 * MEGA_MAX_STATE * 4 + 3 * 32 * 4 + 128;
    if (wgBytes > this.rt.maxWorkgroupStorage) return `x̂ of ${xs} floats exceeds the workgroup memory`;
    const G = this.opts.groups;
    if (!Number.isInteger(G) || G < 1 || G > this.rt.maxWorkgroupsPerDim) return `megaGroups ${G} is not a workgroup count`;
    // the arenas: matrices (vec4s), constants (words)
    const srcs = [...mats, ...args.flatMap((m, i) => [a.layers[i].norm, ...Object.values(consts(m as never))]).filter((t): t is Tensor => !!t).map((t) => t.storage as Store), a.finalNorm.storage as Store];
    if (srcs.some((s) => s.lazy || s.blocks)) return 'a weight that is a view';
    if (this.rt.pendingWrites(srcs)) return null; // written by recorded work: try at the next step
    // the matrices in order into arenas of at most one binding each (a layer's offsets carry their arena in bits 28–31)
    const cap = Math.floor(Math.min(this.rt.maxBinding, this.opts.arenaBytes ?? Infinity) / 16);
    const sizes = [0];
    const matOff = mats.map((s) => {
      const n = Math.ceil(s.len / 4);
      if (n > cap) return -1;
      if (sizes[sizes.length - 1] + n > cap) sizes.push(0);
      const o = sizes[sizes.length - 1];
      sizes[sizes.length - 1] += n;
      return ((sizes.length - 1) << 28 | o) >>> 0;
    });
    const total = mats.reduce((n, s) => n + Math.ceil(s.len / 4) * 16, 0);
    if (matOff.includes(-1)) return `a layer matrix exceeds one binding (${cap * 16} bytes)`;
    if (sizes.length > MEGA_MAX_ARENAS) return `the layer weights (${total} bytes) need ${sizes.length} bindings of ${cap * 16} bytes; the kernel binds ${MEGA_MAX_ARENAS}`;
    let cw = 0;
    const copies: [Store, number][] = [];
    const place = (t: Tensor | null): number => {
      if (!t) return 0;
      const o = cw;
      copies.push([t.storage as Store, o]);
      cw += Math.ceil((t.storage as Store).len / 4) * 4;
      return o;
    };
    const perLayer = mats.length / L;
    const matKeys = ['inW', 'outW'] as const;
    const layers = args.map((m, i) => {
      const e: Partial<Record<keyof typeof MT, number>> = { norm: place(a.layers[i].norm) };
      matKeys.forEach((k, j) => (e[k] = matOff[i * perLayer + j]));
      for (const [k, t] of Object.entries(consts(m as never))) e[k as keyof typeof MT] = place(t as Tensor | null);
      return e;
    });
    const fnorm = place(a.finalNorm);
    const has = (f: (m: M2 | M1) => Tensor | null) => args.every((m) => !!f(m)) ? true : args.every((m) => !f(m)) ? false : null;
    const hc = [has((m) => m.convBias), has((m) => m.D), has((m) => m.dtBias), has((m) => m.inProjBias), has((m) => m.outProjBias)];
    if (hc.includes(null)) return 'layers that differ in which biases they have';
    const flags = hc.reduce((f, h, i) => f | (h ? 1 << i : 0), 0);
    const wmRefs = sizes.map((n, i) => this.rt.newBuffer(Math.max(16, n * 16), `mega matrix arena ${i}`));
    const wcRef = this.rt.newBuffer(Math.max(16, cw * 4), 'mega constant arena');
    const wm = wmRefs.map((r, i) => new Store(r, 0, sizes[i] * 4)), wc = new Store(wcRef, 0, cw);
    // the copies (queue order: after every submitted write of the weights; none is pending, checked above)
    this.rt.submitNow(null, (enc) => {
      mats.forEach((s, i) => enc.copyBufferToBuffer(s.ref.gpu, s.off * 4, wmRefs[matOff[i] >>> 28].gpu, (matOff[i] & 0x0fffffff) * 16, s.len * 4));
      for (const [s, at] of copies) enc.copyBufferToBuffer(s.ref.gpu, s.off * 4, wcRef.gpu, at * 4, s.len * 4);
    });
    const plan: Plan = {
      key, opts: this.optsKey(), state: 'probing', wm, wc, fmt, variant: `${fmt}${xs}r${this.opts.rows}${shape.variant ?? ''}${this.opts.loads ? `u${this.opts.loads}` : ''}`,
      spec: kind === 'mamba2' ? MEGA2 : MEGA1, params: shape.params(f2u(a.normEps), flags, this.opts.spin, fnorm), slices: shape.slices, L, H, nb: shape.nb,
      scWords: shape.scWords, stateSizes: shape.stateSizes, lims: shape.lims, flags, fnorm, layers, scales: a.layers.map((l) => l.scale ?? 1),
      tables: new WeakMap(), scratch: [], probe: null, checking: false,
    };
    plan.probe = this.probe(plan).then((why) => {
      if (plan.state !== 'probing') return;
      if (why) this.fail(plan, why);
      else {
        plan.state = 'ready';
        this.onChange();
      }
    });
    return plan;
  }

  /** a Mamba-2 stack's shape (MEGA2), or why the kernel does not take it */
  private shape2(args: M2[], H: number): Shape<M2> | string {
    const m0 = args[0], L = args.length;
    const nh = m0.nHeads, hd = m0.headDim, N = m0.dState, Gn = m0.nGroups, Kc = m0.conv.shape[1];
    const I = nh * hd, C = I + 2 * Gn * N, NZ = I + C + nh, gs = m0.normGroupSize;
    for (const m of args) {
      if (m.nHeads !== nh || m.headDim !== hd || m.dState !== N || m.nGroups !== Gn || m.conv.shape[1] !== Kc || m.normGroupSize !== gs) return 'layers of different shapes';
      if (m.inProj.shape[0] !== NZ || m.inProj.shape[1] !== H || m.outProj.shape[0] !== H || m.outProj.shape[1] !== I) return 'in_proj/out_proj shapes other than a Mamba-2 layer\'s';
      if (!(m.dtLimit[0] <= m.dtLimit[1])) return 'a Δ limit with lo > hi';
    }
    if (N > MEGA_MAX_STATE) return `dState ${N} > ${MEGA_MAX_STATE}`;
    if (I % gs !== 0 || I / gs > MEGA_MAX_GROUPS) return `gated-norm groups of ${gs} over ${I} channels (at most ${MEGA_MAX_GROUPS})`;
    if (nh % Gn !== 0) return 'heads not a multiple of the groups';
    if (I % 8 !== 0) return `d_inner ${I} not a multiple of 8`;
    // session 32's round-robin blocks, or 'e': every phase split evenly over S slices
    const even = !!this.opts.even, S = even ? this.opts.slices ?? this.opts.groups : this.opts.groups;
    if (!(Number.isInteger(S) && S >= 1)) return `mega slices ${S} is not a positive integer`;
    return {
      kind: 'mamba2', variant: `${this.opts.outRows ? `o${this.opts.outRows}` : ''}${even ? 'e' : ''}`, slices: S, width: Math.max(H, I), nb: 3 * L + 1, scWords: 3 * L + 2 + H + NZ + I + 2 * this.opts.groups, stateSizes: [C * Kc, nh * hd * N],
      mats: (m) => [m.inProj, m.outProj],
      consts: (m) => ({ convW: m.conv, convB: m.convBias, dtB: m.dtBias, A: m.A, D: m.D, gnorm: m.norm, inB: m.inProjBias, outB: m.outProjBias }),
      params: (eps, flags, spin, fnorm) => [L, H, I, nh, hd, N, Gn, Kc, NZ, gs, eps, flags, spin, fnorm],
      lims: args.map((m) => [Math.max(m.dtLimit[0], -F32_MAX), Math.min(m.dtLimit[1], F32_MAX), m.normEps]),
    };
  }

  /** a Mamba-1 stack's shape (MEGA1), or why the kernel does not take it */
  private shape1(args: M1[], H: number): Shape<M1> | string {
    const m0 = args[0], L = args.length;
    const [D, N] = m0.A.shape, R = m0.dtProj.shape[1], Kc = m0.conv.shape[1], J = R + 2 * N;
    for (const m of args) {
      if (m.innerNorms) return 'Δ/B/C norms inside the layer (FalconMamba, Jamba)';
      if (m.A.shape[0] !== D || m.A.shape[1] !== N || m.dtProj.shape[1] !== R || m.conv.shape[1] !== Kc) return 'layers of different shapes';
      if (m.inProj.shape[0] !== 2 * D || m.inProj.shape[1] !== H || m.xProj.shape[0] !== J || m.xProj.shape[1] !== D || m.dtProj.shape[0] !== D || m.outProj.shape[0] !== H || m.outProj.shape[1] !== D) return 'projection shapes other than a Mamba-1 layer\'s';
    }
    if (D % 8 !== 0) return `d_inner ${D} not a multiple of 8`;
    // 3 phases a layer (S slices, their x_proj parts in the scratch) or session 32's 4 ('p4')
    const p4 = this.opts.mamba1Phases === 4, G = this.opts.groups, S = p4 ? 0 : this.opts.slices ?? G;
    if (!p4 && !(Number.isInteger(S) && S >= 1)) return `mega slices ${S} is not a positive integer`;
    return {
      kind: 'mamba1', slices: S, width: Math.max(H, D, J), nb: (p4 ? 4 : 3) * L + 1, scWords: (p4 ? 4 : 3) * L + 2 + H + 2 * D + J + D + 2 * G + S * J, stateSizes: [D * Kc, D * N],
      variant: p4 ? 'p4' : this.opts.outRows ? `o${this.opts.outRows}` : '',
      mats: (m) => [m.inProj, m.outProj],
      consts: (m) => ({ xpW: m.xProj, dtW: m.dtProj, convW: m.conv, convB: m.convBias, dtB: m.dtBias, A: m.A, D: m.D, inB: m.inProjBias, outB: m.outProjBias }),
      params: (eps, flags, spin, fnorm) => [L, H, D, R, S, N, 0, Kc, 2 * D, 0, eps, flags, spin, fnorm],
      lims: args.map(() => [0, 0, 0]),
    };
  }

  /**
   * The co-residency probe: the plan's own pipeline (its registers and workgroup memory decide how many workgroups fit)
   * running 8 grid barriers and nothing else, with the plan's workgroups: '' when it passed, else why not
   */
  private async probe(plan: Plan): Promise<string> {
    const rounds = 8, G = this.opts.groups;
    const ref = this.rt.newBuffer(256, 'mega probe');
    const staging = this.rt.createBuffer({ size: 4, usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST, label: 'mega probe flag' });
    const sc = new Store(ref, 0, rounds + 1);
    const dummy = this.rt.dummy;
    const params = [...plan.params, rounds];
    this.rt.submitNow(
      // (the greedy variant: its LM head phases' workgroup memory and registers are the larger)
      { spec: plan.spec, variant: `${plan.variant}a`, roles: [dummy, dummy, plan.wm[0], plan.wc, sc, dummy, plan.wm[0], plan.wm[0], ...this.more(plan)], params: [...params, 1, 0, 1, plan.slices], grid: [G, 1, 1] },
      (enc) => enc.clearBuffer(ref.gpu),
      (enc) => enc.copyBufferToBuffer(ref.gpu, rounds * 4, staging, 0, 4),
    );
    await staging.mapAsync(1 /* READ */);
    const bad = new Uint32Array(staging.getMappedRange())[0];
    staging.unmap();
    this.rt.destroyBuffer(staging);
    this.rt.destroyBuffer(ref.gpu);
    return bad ? `the co-residency probe of ${G} workgroups timed out (a grid barrier needs them all resident at once)` : '';
  }

  /**
   * The scratch of these states with their layer table, and the one buffer the states' tensors live in (made once per
   * state): the conv windows and SSM states of all layers are moved into a buffer of their own (copied now, the
   * tensors' storage swapped, their pool blocks released), so that the kernel binds one state buffer whatever the pool
   * did. null while recorded work writes them (the next step tries again).
   */
  private table(plan: Plan, args: (M2 | M1)[]): { sc: Store; st: Store } | string | null {
    const first = args[0].convState;
    const tensors = args.flatMap((m) => [m.convState, m.ssmState]);
    const have = plan.tables.get(first);
    if (have && have.key.every((k, i) => k === tensors[i] && (k as Tensor).storage instanceof Store && ((k as Tensor).storage as Store).ref === have.st.ref)) return have;
    for (const m of args) {
      if (m.convState.size !== plan.stateSizes[0] || m.ssmState.size !== plan.stateSizes[1]) return 'states of another shape (batch 1 only)';
    }
    const stores = tensors.map((t) => t.storage as Store);
    if (stores.some((s) => s.blocks || s.lazy || s.fmt !== 'f32')) return 'a state split into blocks';
    const home = stores[0].base ?? stores[0];
    let st: Store;
    if (this.moved.has(home) && stores.every((s) => s.ref === home.ref)) {
      st = home;
    } else {
      if (this.rt.pendingWrites(stores)) return null;
      let words = 0;
      const at = stores.map((s) => {
        const o = words;
        words += Math.ceil(s.len / 64) * 64;
        return o;
      });
      const ref = this.rt.newBuffer(words * 4, 'mega states');
      st = new Store(ref, 0, words);
      this.moved.set(st, { left: tensors.length, bufs: [ref.gpu], token: {} });
      this.rt.submitNow(null, (enc) => stores.forEach((s, i) => enc.copyBufferToBuffer(s.ref.gpu, s.off * 4, ref.gpu, at[i] * 4, s.len * 4)));
      tensors.forEach((t, i) => {
        const old = t.storage as Store;
        t.storage = st.view(at[i], old.len);
        this.rt.release(old);
      });
      this.dropped.register(first, ref.gpu, this.moved.get(st)!.token);
    }
    const tab = new Uint32Array(plan.L * MEGA_TS);
    const f = new Float32Array(tab.buffer);
    args.forEach((m, l) => {
      const t = l * MEGA_TS;
      for (const [k, v] of Object.entries(plan.layers[l])) tab[t + MT[k as keyof typeof MT]] = v ?? 0;
      tab[t + MT.convOff] = (m.convState.storage as Store).off - st.off;
      tab[t + MT.ssmOff] = (m.ssmState.storage as Store).off - st.off;
      f[t + MT.scale] = plan.scales[l];
      [f[t + MT.lo], f[t + MT.hi], f[t + MT.geps]] = plan.lims[l];
    });
    // the state's scratch: counter slots and flag (zero: a new buffer), the activations, then the table
    const tb = plan.scWords;
    const words = tb + tab.length;
    const ref = this.rt.newBuffer(Math.ceil(words / 64) * 64 * 4, 'mega scratch');
    this.rt.device.queue.writeBuffer(ref.gpu, tb * 4, tab.buffer, 0, tab.byteLength);
    const sc = new Store(ref, 0, words);
    this.rt.persistent.add(sc);
    this.rt.persistent.add(st);
    plan.scratch.push(ref.gpu);
    if (plan.scratch.length > 64) plan.scratch.shift(); // (checked: the latest states')
    // destroyed when the state's tensors are disposed (`disposed`) or collected (its recorded steps go with them)
    this.dropped.register(first, ref.gpu, this.moved.get(st)!.token);
    this.moved.get(st)!.bufs.push(ref.gpu);
    const made = { key: tensors, sc, st };
    plan.tables.set(first, made);
    return made;
  }
  /** the state buffers made by `table`: how many of the state's tensors are not disposed yet, the buffers that go with them */
  private readonly moved = new WeakMap<Store, { left: number; bufs: GPUBuffer[]; token: object }>();

  /**
   * A tensor on `s` was disposed (WebGpuBackend.dispose): when it was the last of a state moved by `table`, the state's
   * buffer and its scratch buffers are destroyed now rather than when the collector finds them (a server's states come
   * and go faster than GC runs; the decoder gives up the state's recorded steps at the same time)
   */
  disposed(s: Store): void {
    const base = s.base ?? s;
    const m = this.moved.get(base);
    if (!m || --m.left > 0) return;
    this.moved.delete(base);
    this.dropped.unregister(m.token);
    for (const b of m.bufs) this.destroy(b);
  }
}
