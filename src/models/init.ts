/**
 * Fresh weights, initialised as Hugging Face initialises each architecture, from a seeded generator so a run can
 * be repeated (one place for every init rule; reference §1.7, §3.6, §4.1):
 *
 * Mamba-1 (`initMambaWeights`, HF `MambaPreTrainedModel._init_weights` / the official `Mamba.__init__`):
 *   embedding ~ N(0, initializer_range);  Linear weights ~ U(±1/√fan_in) (PyTorch default, kaiming a=√5);
 *   A_log = log(1..N) per channel (S4D-Real);  D = 1;  conv ~ U(±1/√K), bias 0;
 *   dt_proj.weight ~ U(±R^-½);  dt_proj.bias = softplus⁻¹(dt), dt log-uniform in [dt_min, dt_max], floored.
 *
 * Every other architecture (`InitTensorSource`, by tensor name, for whatever shapes the model asks):
 *   embeddings and Linear weights ~ N(0, initializer_range) (Mamba-2: 0.1; Llama, Bamba: 0.02), biases 0,
 *   RMSNorm weights 1;  Mamba-2 mixers (also the hybrids'): A_log = log(1..nh), D = 1,
 *   dt_bias = softplus⁻¹(dt) with dt log-uniform in [time_step_min, time_step_max] floored at time_step_floor,
 *   conv1d and out_proj ~ U(±1/√fan_in) (kaiming a=√5), as HF `Mamba2PreTrainedModel._init_weights` and the
 *   official `Mamba2.__init__` do. (HF's older Bamba init sets dt_bias = 1 and N(0, 0.02) convs; we give its
 *   Mamba-2 layers Mamba-2's init so that a hybrid differs from Mamba-2 only by its attention layers.)
 *
 * Returns / serves checkpoint tensors under the HF names, ready for `writeSafetensorsAtomic`.
 */
import { Rng } from '../generate/rng.js';
import type { TensorEntry, WritableTensor } from '../io/safetensors.js';
import type { TensorSource } from '../io/tensor-source.js';
import type { RawConfig } from './config.js';
import { ModelError } from './errors.js';
import type { MambaConfig } from './mamba.js';

export interface InitOptions {
  seed?: number;
  initializerRange?: number;
  dtMin?: number;
  dtMax?: number;
  dtFloor?: number;
}

/** the random draws of every init rule, from one generator */
class Draws {
  constructor(private readonly rng: Rng) {}
  uniform(n: number, bound: number): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (this.rng.next() * 2 - 1) * bound;
    return a;
  }
  normal(n: number, std: number): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = std * Math.sqrt(-2 * Math.log(1 - this.rng.next())) * Math.cos(2 * Math.PI * this.rng.next());
    return a;
  }
  /** softplus⁻¹(dt) of n time steps dt log-uniform in [dtMin, dtMax], floored */
  dtBias(n: number, dtMin: number, dtMax: number, floor: number): Float32Array {
    const a = new Float32Array(n);
    for (let d = 0; d < n; d++) {
      const dt = Math.max(floor, Math.exp(this.rng.next() * (Math.log(dtMax) - Math.log(dtMin)) + Math.log(dtMin)));
      a[d] = dt + Math.log(-Math.expm1(-dt)); // softplus⁻¹(dt)
    }
    return a;
  }
}

export function initMambaWeights(c: MambaConfig, opts: InitOptions = {}): Record<string, WritableTensor> {
  const rnd = new Draws(new Rng(opts.seed ?? 0));
  const { hiddenSize: H, innerSize: D, stateSize: N, dtRank: R, convKernel: K, vocabSize: V } = c;
  const uniform = (n: number, bound: number) => rnd.uniform(n, bound);
  const normal = (n: number, std: number) => rnd.normal(n, std);
  const f32 = (shape: number[], data: Float32Array): WritableTensor => ({ dtype: 'F32', shape, data });
  const t: Record<string, WritableTensor> = {};
  t['backbone.embeddings.weight'] = f32([V, H], normal(V * H, opts.initializerRange ?? 0.1));
  const [dtMin, dtMax, floor] = [opts.dtMin ?? 0.001, opts.dtMax ?? 0.1, opts.dtFloor ?? 1e-4];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `backbone.layers.${i}.`;
    const m = `${p}mixer.`;
    t[`${p}norm.weight`] = f32([H], new Float32Array(H).fill(1));
    t[`${m}in_proj.weight`] = f32([2 * D, H], uniform(2 * D * H, 1 / Math.sqrt(H)));
    if (c.useBias) t[`${m}in_proj.bias`] = f32([2 * D], new Float32Array(2 * D));
    t[`${m}conv1d.weight`] = f32([D, 1, K], uniform(D * K, 1 / Math.sqrt(K)));
    if (c.useConvBias) t[`${m}conv1d.bias`] = f32([D], new Float32Array(D));
    t[`${m}x_proj.weight`] = f32([R + 2 * N, D], uniform((R + 2 * N) * D, 1 / Math.sqrt(D)));
    t[`${m}dt_proj.weight`] = f32([D, R], uniform(D * R, R ** -0.5));
    const dtBias = rnd.dtBias(D, dtMin, dtMax, floor);
    t[`${m}dt_proj.bias`] = f32([D], dtBias);
    const Alog = new Float32Array(D * N);
    for (let d = 0; d < D; d++) for (let n = 0; n < N; n++) Alog[d * N + n] = Math.log(n + 1);
    t[`${m}A_log`] = f32([D, N], Alog);
    t[`${m}D`] = f32([D], new Float32Array(D).fill(1));
    t[`${m}out_proj.weight`] = f32([H, D], uniform(H * D, 1 / Math.sqrt(D)));
    if (c.useBias) t[`${m}out_proj.bias`] = f32([H], new Float32Array(H));
  }
  t['backbone.norm_f.weight'] = f32([H], new Float32Array(H).fill(1));
  if (!c.tieEmbeddings) t['lm_head.weight'] = f32([V, H], normal(V * H, opts.initializerRange ?? 0.1));
  return t;
}

/** The HF config.json for a Mamba config (what `save_pretrained` would write). */
export function mambaConfigJson(c: MambaConfig): Record<string, unknown> {
  return {
    architectures: ['MambaForCausalLM'],
    model_type: 'mamba',
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.innerSize,
    state_size: c.stateSize,
    num_hidden_layers: c.numLayers,
    conv_kernel: c.convKernel,
    expand: c.innerSize / c.hiddenSize,
    time_step_rank: c.dtRank,
    use_bias: c.useBias,
    use_conv_bias: c.useConvBias,
    layer_norm_epsilon: c.normEps,
    tie_word_embeddings: c.tieEmbeddings,
    hidden_act: 'silu',
    residual_in_fp32: true,
    eos_token_id: c.eosTokenIds.length === 1 ? c.eosTokenIds[0] : c.eosTokenIds,
    bos_token_id: 0,
    pad_token_id: 0,
    ...(c.mixer === 's4d' ? { mamba_ts: { mixer: 's4d', note: 'LTI S4D layer in place of S6 (ablation); not loadable by HF transformers' } } : {}),
  };
}

// ------------------------------------------------------------------------------------------------
// Every other architecture: init rules by tensor name

/** default initializer_range of an architecture (HF config defaults) */
const INITIALIZER_RANGE: Record<string, number> = { mamba: 0.1, mamba2: 0.1, llama: 0.02, bamba: 0.02 };

/**
 * Weights made up on the spot for whatever shapes a model asks (`WeightLoader` tells each shape with `shapeFor`
 * before reading it): the shared part of the fresh-weight sources (here) and the benchmarks' random weights
 * (random.ts). Each tensor's values come from a generator seeded by the seed and the tensor's name, so they do not
 * depend on the load order or the backend.
 */
export abstract class GeneratedTensorSource implements TensorSource {
  readonly files: readonly string[] = [];
  private readonly shapes = new Map<string, number[]>();

  constructor(protected readonly seed: number, private readonly label: string, private readonly salt = 0) {}

  has(_name: string): boolean {
    return true;
  }

  /** record the shape the model expects for `name` */
  shapeFor(name: string, shape: number[]): void {
    this.shapes.set(name, shape);
  }

  entry(name: string): TensorEntry {
    const shape = this.shapes.get(name);
    if (!shape) throw new ModelError(`${this.label}: the shape of "${name}" is unknown (a loader asks for it with shapeFor first)`);
    return { name, dtype: 'F32', shape, byteOffset: 0, byteLength: shape.reduce((a, b) => a * b, 4), file: this.label };
  }

  /** the generator of one tensor's values */
  protected nameRng(name: string): Rng {
    let h = (this.seed ^ this.salt) >>> 0;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
    return new Rng(h);
  }

  abstract float32(name: string): Float32Array;
}

/**
 * Fresh weights for a config of any architecture mamba-ts builds, as a `TensorSource`: the model asks for each tensor
 * with the shape its config implies, and gets it initialised by the rules above (by name).
 */
export class InitTensorSource extends GeneratedTensorSource {
  private readonly std: number;
  private readonly dt: [min: number, max: number, floor: number];

  constructor(config: RawConfig, seed = 0) {
    super(seed, '(fresh weights)', 0x9e3779b9);
    const num = (k: string, d: number) => (typeof config[k] === 'number' ? (config[k] as number) : d);
    this.std = num('initializer_range', INITIALIZER_RANGE[String(config.model_type)] ?? 0.02);
    this.dt = [num('time_step_min', 0.001), num('time_step_max', 0.1), num('time_step_floor', 1e-4)];
  }

  float32(name: string): Float32Array {
    const shape = this.entry(name).shape;
    const n = shape.reduce((a, b) => a * b, 1);
    const rnd = new Draws(this.nameRng(name));
    const fanIn = shape.length > 1 ? shape.slice(1).reduce((a, b) => a * b, 1) : shape[0];
    if (/(^|\.)A_log$/.test(name)) {
      // Mamba-2: one A per head, log(1..nh); Mamba-1 layout [D, N]: log(1..N) per channel
      const N = shape.length > 1 ? shape[shape.length - 1] : n;
      return Float32Array.from({ length: n }, (_, i) => Math.log(1 + (i % N)));
    }
    if (/(^|\.)D$/.test(name) || /norm[^.]*\.weight$/.test(name)) return new Float32Array(n).fill(1);
    if (/(^|\.)dt_bias$|dt_proj\.bias$/.test(name)) return rnd.dtBias(n, ...this.dt);
    if (/\.bias$/.test(name)) return new Float32Array(n);
    if (/conv1d\.weight$/.test(name) || /(mixer|mamba)\.out_proj\.weight$/.test(name)) return rnd.uniform(n, 1 / Math.sqrt(fanIn));
    if (/dt_proj\.weight$/.test(name)) return rnd.uniform(n, fanIn ** -0.5);
    return rnd.normal(n, this.std);
  }
}

/** a fresh model's size, architecture-neutral (the `mamba-ts train` flags) */
export interface FreshDims {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  /** SSM state size N */
  stateSize: number;
  /** Mamba block expansion (inner width = expand × hidden) */
  expand: number;
  /** head size of attention and of Mamba-2 (default 64, or the width when smaller) */
  headDim?: number;
  /** attention heads (llama, hybrid: head_dim = hidden / heads); Mamba-2 heads (mamba2: head_dim = inner / heads) */
  heads?: number;
  /** MLP width of llama and the hybrid (default 8/3 × hidden rounded up to a multiple of 8: SwiGLU ≈ a 4× GELU MLP) */
  intermediateSize?: number;
  /** hybrid: one attention layer in N (layers i with i mod N = ⌊N/2⌋, Jamba's period/offset), the rest Mamba-2 */
  attnEvery?: number;
  ropeTheta?: number;
  convKernel?: number;
  chunkSize?: number;
}

export type FreshArch = 'mamba2' | 'llama' | 'hybrid';

/** which layers of a hybrid of `layers` layers are attention layers (one in `every`) */
export function hybridAttentionLayers(layers: number, every: number): number[] {
  const off = Math.floor(every / 2);
  return Array.from({ length: layers }, (_, i) => i).filter((i) => i % every === off);
}

/**
 * The HF config.json of a fresh model (what `save_pretrained` writes for it): Mamba2ForCausalLM, LlamaForCausalLM
 * (RoPE on every channel, MHA) or, for 'hybrid', BambaForCausalLM (Mamba-2 layers, one GQA/RoPE attention layer in
 * N, a SwiGLU MLP after every mixer). Embeddings tied. Bad sizes are `ModelError`s naming the flag-level values.
 */
export function freshConfig(arch: FreshArch, d: FreshDims): RawConfig {
  const H = d.hiddenSize;
  const inner = d.expand * H;
  const fail = (msg: string): never => {
    throw new ModelError(`${arch}: ${msg}`);
  };
  const divides = (what: string, whole: number, part: number, wholeName: string) => {
    if (!Number.isInteger(part) || part < 1 || whole % part !== 0) fail(`${what} ${part} does not divide ${wholeName} ${whole}`);
  };
  const common = {
    vocab_size: d.vocabSize, hidden_size: H, num_hidden_layers: d.numLayers, tie_word_embeddings: true, hidden_act: 'silu',
    bos_token_id: 0, eos_token_id: 0, torch_dtype: 'float32',
  };
  const dt = { time_step_min: 0.001, time_step_max: 0.1, time_step_floor: 1e-4 };
  // attention heads: --heads, else hidden / --head-dim (64 or the width)
  const attnHeads = (): { n: number; dim: number } => {
    if (d.heads !== undefined) {
      divides('--heads', H, d.heads, 'hidden size');
      return { n: d.heads, dim: H / d.heads };
    }
    const dim = d.headDim ?? Math.min(64, H);
    divides('--head-dim', H, dim, 'hidden size');
    return { n: H / dim, dim };
  };
  const mlp = d.intermediateSize ?? Math.ceil((8 * H) / 3 / 8) * 8;
  switch (arch) {
    case 'mamba2': {
      let P = d.headDim ?? Math.min(64, inner);
      if (d.heads !== undefined) {
        divides('--heads', inner, d.heads, 'inner width (expand × hidden)');
        P = inner / d.heads;
      }
      divides('--head-dim', inner, P, 'inner width (expand × hidden)');
      return {
        architectures: ['Mamba2ForCausalLM'], model_type: 'mamba2', ...common,
        state_size: d.stateSize, expand: d.expand, num_heads: inner / P, head_dim: P, n_groups: 1,
        conv_kernel: d.convKernel ?? 4, chunk_size: d.chunkSize ?? 256, use_bias: false, use_conv_bias: true,
        layer_norm_epsilon: 1e-5, initializer_range: 0.1, residual_in_fp32: true, rescale_prenorm_residual: false, ...dt,
      };
    }
    case 'llama': {
      const a = attnHeads();
      return {
        architectures: ['LlamaForCausalLM'], model_type: 'llama', ...common,
        intermediate_size: mlp, num_attention_heads: a.n, num_key_value_heads: a.n, head_dim: a.dim,
        rope_theta: d.ropeTheta ?? 10000, max_position_embeddings: 1 << 20, rms_norm_eps: 1e-5, initializer_range: 0.02,
        attention_bias: false, mlp_bias: false,
      };
    }
    case 'hybrid': {
      const a = attnHeads();
      const every = d.attnEvery ?? 2;
      if (!Number.isInteger(every) || every < 1) fail(`--attn-every must be an integer >= 1, got ${every}`);
      const attn = hybridAttentionLayers(d.numLayers, every);
      if (attn.length === 0) fail(`--attn-every ${every} puts no attention layer among ${d.numLayers} layers (layer i is attention when i mod ${every} = ${Math.floor(every / 2)})`);
      const P = d.headDim ?? Math.min(64, inner);
      divides('--head-dim', inner, P, 'inner width (expand × hidden)');
      if (d.ropeTheta !== undefined && d.ropeTheta !== 10000) fail('Bamba hard-codes rope_theta 10000 (HF); --rope-theta applies to llama');
      return {
        architectures: ['BambaForCausalLM'], model_type: 'bamba', ...common,
        intermediate_size: mlp, attn_layer_indices: attn, num_attention_heads: a.n, num_key_value_heads: a.n,
        mamba_n_heads: inner / P, mamba_d_head: P, mamba_n_groups: 1, mamba_d_state: d.stateSize, mamba_d_conv: d.convKernel ?? 4,
        mamba_expand: d.expand, mamba_chunk_size: d.chunkSize ?? 256, mamba_conv_bias: true, mamba_proj_bias: false,
        rms_norm_eps: 1e-5, initializer_range: 0.02, rope_theta: 10000, max_position_embeddings: 1 << 20, ...dt,
      };
    }
    default:
      return fail(`unknown architecture (expected mamba2, llama or hybrid)`);
  }
}
