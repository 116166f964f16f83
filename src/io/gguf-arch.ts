/**
 * Tensor names and layouts of llama.cpp's GGUF architectures against Hugging Face's, in both directions:
 * one table of rules per architecture says which HF tensor becomes which GGUF tensor and how llama.cpp's
 * converter (convert_hf_to_gguf.py) transforms it on the way; `ggufTensors` undoes the transforms (import)
 * and `hfToGgufTensors` applies them (export), so the two cannot drift apart.
 *
 * The converter's transforms:
 *   conv     conv1d.weight [C, 1, K] squeezed to [C, K]
 *   negexp   A_log stored as A = −exp(A_log) (Mamba-2 family: also [n] → [n, 1], "negexpCol")
 *   col      D (Mamba-2 family) [n] → [n, 1]
 *   group    the Mamba-2 gated norm's weight [I] → [n_groups, I / n_groups]
 *   perm     q/k projections (and biases) permuted per head for ggml's interleaved RoPE (LlamaModel.permute:
 *            rows (s, j) of each head → (j, s), s ∈ {0, 1}, j < head_dim / 2)
 *   stack    Jamba's per-expert matrices stacked into one [E, out, in] tensor
 *   split    Granite's fused gate|up matrices ([…, 2F, H]) split into gate and up
 * and the output head dropped when tied to the embeddings.
 */
import { GgufError, type GgufFile } from './gguf-format.js';

type Xform = 'conv' | 'negexp' | 'negexpCol' | 'col' | 'group' | 'permQ' | 'permK';

/** `gguf` ↔ `hf` (names with {i} for the layer, {e} for the expert) */
interface Rule {
  gguf: string;
  hf: string;
  x?: Xform;
  /** stack: `hf` has {e}; split: `gguf2` holds the second half */
  kind?: 'stack' | 'split';
  gguf2?: string;
}

/** Shapes and counts the transforms need. */
export interface MapContext {
  nGroups: number;
  /** attention heads (q), and key/value heads of layer i (k) */
  nHead: number;
  nKvHead: (layer: number) => number;
}

const r = (gguf: string, hf: string, x?: Xform): Rule => ({ gguf, hf, x });
const wb = (gguf: string, hf: string, x?: Xform): Rule[] => [r(`${gguf}.weight`, `${hf}.weight`, x), r(`${gguf}.bias`, `${hf}.bias`, x)];

function mamba1(p: string): Rule[] {
  return [
    ...wb('blk.{i}.ssm_in', `${p}.in_proj`), r('blk.{i}.ssm_conv1d.weight', `${p}.conv1d.weight`, 'conv'), r('blk.{i}.ssm_conv1d.bias', `${p}.conv1d.bias`),
    r('blk.{i}.ssm_x.weight', `${p}.x_proj.weight`), ...wb('blk.{i}.ssm_dt', `${p}.dt_proj`),
    r('blk.{i}.ssm_a', `${p}.A_log`, 'negexp'), r('blk.{i}.ssm_d', `${p}.D`), ...wb('blk.{i}.ssm_out', `${p}.out_proj`),
  ];
}

function mamba2(p: string): Rule[] {
  return [
    ...wb('blk.{i}.ssm_in', `${p}.in_proj`), r('blk.{i}.ssm_conv1d.weight', `${p}.conv1d.weight`, 'conv'), r('blk.{i}.ssm_conv1d.bias', `${p}.conv1d.bias`),
    r('blk.{i}.ssm_dt.bias', `${p}.dt_bias`), r('blk.{i}.ssm_a', `${p}.A_log`, 'negexpCol'), r('blk.{i}.ssm_d', `${p}.D`, 'col'),
    r('blk.{i}.ssm_norm.weight', `${p}.norm.weight`, 'group'), ...wb('blk.{i}.ssm_out', `${p}.out_proj`),
  ];
}

function attention(p: string, permute: boolean): Rule[] {
  return [
    ...wb('blk.{i}.attn_q', `${p}.q_proj`, permute ? 'permQ' : undefined), ...wb('blk.{i}.attn_k', `${p}.k_proj`, permute ? 'permK' : undefined),
    ...wb('blk.{i}.attn_v', `${p}.v_proj`), ...wb('blk.{i}.attn_output', `${p}.o_proj`),
  ];
}

function gatedMlp(p: string): Rule[] {
  return [...wb('blk.{i}.ffn_gate', `${p}.gate_proj`), ...wb('blk.{i}.ffn_up', `${p}.up_proj`), ...wb('blk.{i}.ffn_down', `${p}.down_proj`)];
}

const head = (embed: string, norm: string): Rule[] => [r('token_embd.weight', embed), r('output_norm.weight', norm), r('output.weight', 'lm_head.weight')];

/** HF family (our model_type) → GGUF rules. Bamba and Granite 4.0-H are both llama.cpp's `granitehybrid`. */
export const TENSOR_RULES: Record<string, Rule[]> = {
  mamba: [...head('backbone.embeddings.weight', 'backbone.norm_f.weight'), r('blk.{i}.attn_norm.weight', 'backbone.layers.{i}.norm.weight'), ...mamba1('backbone.layers.{i}.mixer')],
  mamba2: [...head('backbone.embeddings.weight', 'backbone.norm_f.weight'), r('blk.{i}.attn_norm.weight', 'backbone.layers.{i}.norm.weight'), ...mamba2('backbone.layers.{i}.mixer')],
  jamba: [
    ...head('model.embed_tokens.weight', 'model.final_layernorm.weight'),
    r('blk.{i}.attn_norm.weight', 'model.layers.{i}.input_layernorm.weight'), r('blk.{i}.ffn_norm.weight', 'model.layers.{i}.pre_ff_layernorm.weight'),
    ...mamba1('model.layers.{i}.mamba'),
    r('blk.{i}.ssm_dt_norm.weight', 'model.layers.{i}.mamba.dt_layernorm.weight'),
    r('blk.{i}.ssm_b_norm.weight', 'model.layers.{i}.mamba.b_layernorm.weight'),
    r('blk.{i}.ssm_c_norm.weight', 'model.layers.{i}.mamba.c_layernorm.weight'),
    ...attention('model.layers.{i}.self_attn', false),
    ...gatedMlp('model.layers.{i}.feed_forward'),
    r('blk.{i}.ffn_gate_inp.weight', 'model.layers.{i}.feed_forward.router.weight'),
    ...(['gate', 'up', 'down'] as const).map((w): Rule => ({ gguf: `blk.{i}.ffn_${w}_exps.weight`, hf: `model.layers.{i}.feed_forward.experts.{e}.${w}_proj.weight`, kind: 'stack' })),
  ],
  bamba: [
    ...head('model.embed_tokens.weight', 'model.final_layernorm.weight'),
    r('blk.{i}.attn_norm.weight', 'model.layers.{i}.input_layernorm.weight'), r('blk.{i}.ffn_norm.weight', 'model.layers.{i}.pre_ff_layernorm.weight'),
    ...mamba2('model.layers.{i}.mamba'), ...attention('model.layers.{i}.self_attn', true), ...gatedMlp('model.layers.{i}.feed_forward'),
  ],
  granitemoehybrid: [
    ...head('model.embed_tokens.weight', 'model.norm.weight'),
    r('blk.{i}.attn_norm.weight', 'model.layers.{i}.input_layernorm.weight'), r('blk.{i}.ffn_norm.weight', 'model.layers.{i}.post_attention_layernorm.weight'),
    ...mamba2('model.layers.{i}.mamba'), ...attention('model.layers.{i}.self_attn', true),
    r('blk.{i}.ffn_gate_inp.weight', 'model.layers.{i}.block_sparse_moe.router.layer.weight'),
    { gguf: 'blk.{i}.ffn_gate_exps.weight', gguf2: 'blk.{i}.ffn_up_exps.weight', hf: 'model.layers.{i}.block_sparse_moe.input_linear.weight', kind: 'split' },
    r('blk.{i}.ffn_down_exps.weight', 'model.layers.{i}.block_sparse_moe.output_linear.weight'),
    // the shared MLP: *_shexp beside experts, the plain FFN names without (see `graniteSharedRules`)
    { gguf: 'blk.{i}.ffn_gate_shexp.weight', gguf2: 'blk.{i}.ffn_up_shexp.weight', hf: 'model.layers.{i}.shared_mlp.input_linear.weight', kind: 'split' },
    r('blk.{i}.ffn_down_shexp.weight', 'model.layers.{i}.shared_mlp.output_linear.weight'),
  ],
  nemotron_h: [
    ...head('backbone.embeddings.weight', 'backbone.norm_f.weight'), r('blk.{i}.attn_norm.weight', 'backbone.layers.{i}.norm.weight'),
    ...mamba2('backbone.layers.{i}.mixer'), ...attention('backbone.layers.{i}.mixer', true),
    ...wb('blk.{i}.ffn_up', 'backbone.layers.{i}.mixer.up_proj'), ...wb('blk.{i}.ffn_down', 'backbone.layers.{i}.mixer.down_proj'),
  ],
  llama: [
    ...head('model.embed_tokens.weight', 'model.norm.weight'),
    r('blk.{i}.attn_norm.weight', 'model.layers.{i}.input_layernorm.weight'), r('blk.{i}.ffn_norm.weight', 'model.layers.{i}.post_attention_layernorm.weight'),
    ...attention('model.layers.{i}.self_attn', true), ...gatedMlp('model.layers.{i}.mlp'),
  ],
};
TENSOR_RULES.falcon_mamba = TENSOR_RULES.mamba;

/** Granite without experts: its shared MLP is written under the plain FFN names */
function rulesFor(family: string, denseGranite: boolean): Rule[] {
  const rules = TENSOR_RULES[family];
  if (!rules) throw new GgufError(`no GGUF tensor mapping for model type "${family}" (supported: ${Object.keys(TENSOR_RULES).join(', ')})`);
  if (family !== 'granitemoehybrid' || !denseGranite) return rules;
  return rules.map((x) =>
    x.gguf === 'blk.{i}.ffn_gate_shexp.weight' ? { ...x, gguf: 'blk.{i}.ffn_gate.weight', gguf2: 'blk.{i}.ffn_up.weight' }
      : x.gguf === 'blk.{i}.ffn_down_shexp.weight' ? { ...x, gguf: 'blk.{i}.ffn_down.weight' } : x,
  );
}

const fill = (pattern: string, i: number, e = 0) => pattern.replace('{i}', String(i)).replace('{e}', String(e));
const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** rows of each head (s, j) ↔ (j, s): `toGguf` applies llama.cpp's permutation, else undoes it */
function permuteHeads(data: Float32Array, shape: number[], nHead: number, toGguf: boolean, what: string): Float32Array {
  const rows = shape[0];
  const cols = shape.length > 1 ? count(shape.slice(1)) : 1;
  if (rows % (2 * nHead) !== 0) throw new GgufError(`${what}: ${rows} rows cannot be split into ${nHead} heads of even size`);
  const hd = rows / nHead, half = hd / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < nHead; h++) {
    for (let s = 0; s < 2; s++) {
      for (let j = 0; j < half; j++) {
        const hfRow = h * hd + s * half + j, ggRow = h * hd + 2 * j + s;
        const [from, to] = toGguf ? [hfRow, ggRow] : [ggRow, hfRow];
        out.set(data.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

/** An HF tensor as the GGUF file yields it: its shape and how to compute it. */
export interface HfTensor {
  shape: number[];
  /** the GGUF tensor(s) it comes from, for messages */
  from: string;
  get(): Float32Array;
  /** A itself for an A_log (stored as −exp(A_log)): the model uses it as is */
  negExp?: () => Float32Array;
  /** the GGUF tensor it is, untransformed (its name) */
  direct?: string;
}

/**
 * The HF tensors of a GGUF file whose architecture maps to `family`; `read` dequantizes a GGUF tensor.
 * Every GGUF tensor must be understood: one that no rule takes is an error naming it.
 */
export function ggufTensors(g: GgufFile, family: string, nLayers: number, ctx: MapContext, read: (name: string) => Float32Array): Map<string, HfTensor> {
  const dense = family === 'granitemoehybrid' && !hasAny(g, 'ffn_gate_shexp.weight') && !hasAny(g, 'ffn_gate_exps.weight');
  const out = new Map<string, HfTensor>();
  const used = new Set<string>();
  for (const rule of rulesFor(family, dense)) {
    const layers = rule.gguf.includes('{i}') ? nLayers : 1;
    for (let i = 0; i < layers; i++) {
      const gname = fill(rule.gguf, i);
      const t = g.tensors.get(gname);
      if (!t) continue;
      used.add(gname);
      if (rule.kind === 'stack') {
        const [E, ...rest] = t.shape;
        const size = count(rest);
        for (let e = 0; e < E; e++) out.set(fill(rule.hf, i, e), { shape: rest, from: gname, get: () => read(gname).slice(e * size, (e + 1) * size) });
        continue;
      }
      if (rule.kind === 'split') {
        const g2 = fill(rule.gguf2!, i);
        const t2 = g.tensors.get(g2);
        if (!t2 || t2.shape.join() !== t.shape.join()) throw new GgufError(`${g.path}: tensor "${gname}" needs "${g2}" of the same shape [${t.shape.join(', ')}]${t2 ? `, found [${t2.shape.join(', ')}]` : ', which is missing'}`);
        used.add(g2);
        const lead = t.shape.slice(0, -2), [f, h] = t.shape.slice(-2);
        out.set(fill(rule.hf, i), {
          shape: [...lead, 2 * f, h], from: `${gname} + ${g2}`,
          get: () => {
            const a = read(gname), b = read(g2), res = new Float32Array(a.length * 2), n = f * h;
            for (let o = 0; o < count(lead); o++) {
              res.set(a.subarray(o * n, (o + 1) * n), 2 * o * n);
              res.set(b.subarray(o * n, (o + 1) * n), (2 * o + 1) * n);
            }
            return res;
          },
        });
        continue;
      }
      const hfName = fill(rule.hf, i);
      const shape = t.shape;
      const get = () => read(gname);
      const want = (ok: boolean, expect: string) => {
        if (!ok) throw new GgufError(`${g.path}: tensor "${gname}" has shape [${shape.join(', ')}], expected ${expect}`);
      };
      switch (rule.x) {
        case 'conv':
          want(shape.length === 2, '[channels, kernel]');
          out.set(hfName, { shape: [shape[0], 1, shape[1]], from: gname, get });
          break;
        case 'col':
        case 'negexpCol':
          want(shape.length === 2 && shape[1] === 1 || shape.length === 1, '[heads, 1]');
          out.set(hfName, { shape: [shape[0]], from: gname, get: rule.x === 'col' ? get : () => negLog(get()), ...(rule.x === 'negexpCol' ? { negExp: get } : {}) });
          break;
        case 'negexp':
          out.set(hfName, { shape, from: gname, get: () => negLog(get()), negExp: get });
          break;
        case 'group':
          out.set(hfName, { shape: [count(shape)], from: gname, get });
          break;
        case 'permQ':
        case 'permK': {
          const n = rule.x === 'permQ' ? ctx.nHead : ctx.nKvHead(i);
          out.set(hfName, { shape, from: gname, get: () => permuteHeads(get(), shape, n, false, `${g.path}: tensor "${gname}"`) });
          break;
        }
        default:
          out.set(hfName, { shape, from: gname, get, direct: gname });
      }
    }
  }
  const unknown = [...g.tensors.keys()].filter((n) => !used.has(n));
  if (unknown.length > 0) {
    throw new GgufError(`${g.path}: tensor "${unknown[0]}"${unknown.length > 1 ? ` (and ${unknown.length - 1} more)` : ''} is not part of a ${g.str('general.architecture')} model as mamba-ts reads it`);
  }
  return out;
}

function hasAny(g: GgufFile, suffix: string): boolean {
  for (const n of g.tensors.keys()) if (n.endsWith(suffix)) return true;
  return false;
}

/** A_log = log(−A), computed in float64 */
function negLog(a: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = Math.log(-a[i]);
  return out;
}

/** A GGUF tensor to write: float data in its GGUF shape, and whether llama.cpp keeps it in F32. */
export interface GgufTensorData {
  name: string;
  shape: number[];
  data: Float32Array;
  /** 1-D tensors, norms, biases, ssm_a/ssm_d, conv weights and routers stay F32 (the converter's rule) */
  keepF32: boolean;
}

/** What `hfToGgufTensors` reads: HF tensors by name. */
export interface HfSource {
  names(): string[];
  has(name: string): boolean;
  shape(name: string): number[];
  float32(name: string): Float32Array;
  /** A itself where the source stores it (an imported GGUF): written as is, not recomputed from A_log */
  negExp?(name: string): Float32Array | undefined;
}

/**
 * The GGUF tensors of an HF checkpoint (`family` is its model_type), as the converter writes them. Every HF
 * tensor must be taken by a rule (else an error names it); a tied output head is not written.
 */
export function hfToGgufTensors(src: HfSource, family: string, nLayers: number, ctx: MapContext, opts: { tied: boolean; denseGranite?: boolean }): GgufTensorData[] {
  const out: GgufTensorData[] = [];
  const used = new Set<string>();
  const push = (name: string, shape: number[], data: Float32Array) => {
    const f32 = shape.length <= 1 || name.endsWith('_norm.weight') || !name.endsWith('.weight') || /\.(ssm_conv1d|ffn_gate_inp)\.weight$/.test(name);
    out.push({ name, shape, data, keepF32: f32 });
  };
  for (const rule of rulesFor(family, opts.denseGranite ?? false)) {
    const layers = rule.gguf.includes('{i}') ? nLayers : 1;
    for (let i = 0; i < layers; i++) {
      const gname = fill(rule.gguf, i);
      if (rule.kind === 'stack') {
        const parts: string[] = [];
        while (src.has(fill(rule.hf, i, parts.length))) parts.push(fill(rule.hf, i, parts.length));
        if (parts.length === 0) continue;
        const shape = src.shape(parts[0]);
        const data = new Float32Array(parts.length * count(shape));
        parts.forEach((p, e) => {
          used.add(p);
          data.set(src.float32(p), e * count(shape));
        });
        push(gname, [parts.length, ...shape], data);
        continue;
      }
      const hfName = fill(rule.hf, i);
      if (!src.has(hfName)) continue;
      used.add(hfName);
      if (hfName === 'lm_head.weight' && opts.tied) continue;
      const shape = src.shape(hfName);
      const data = src.float32(hfName);
      if (rule.kind === 'split') {
        const lead = shape.slice(0, -2), [f2, h] = shape.slice(-2), f = f2 / 2, n = f * h;
        const a = new Float32Array(count(lead) * n), b = new Float32Array(count(lead) * n);
        for (let o = 0; o < count(lead); o++) {
          a.set(data.subarray(2 * o * n, (2 * o + 1) * n), o * n);
          b.set(data.subarray((2 * o + 1) * n, (2 * o + 2) * n), o * n);
        }
        push(gname, [...lead, f, h], a);
        push(fill(rule.gguf2!, i), [...lead, f, h], b);
        continue;
      }
      switch (rule.x) {
        case 'conv':
          push(gname, [shape[0], shape[shape.length - 1]], data);
          break;
        case 'col':
          push(gname, [shape[0], 1], data);
          break;
        case 'negexp':
        case 'negexpCol':
          push(gname, rule.x === 'negexp' ? shape : [shape[0], 1], src.negExp?.(hfName) ?? Float32Array.from(data, (v) => -Math.exp(v)));
          break;
        case 'group':
          push(gname, [ctx.nGroups, shape[0] / ctx.nGroups], data);
          break;
        case 'permQ':
        case 'permK':
          push(gname, shape, permuteHeads(data, shape, rule.x === 'permQ' ? ctx.nHead : ctx.nKvHead(i), true, `tensor "${hfName}"`));
          break;
        default:
          push(gname, shape, data);
      }
    }
  }
  const left = src.names().filter((n) => !used.has(n));
  if (left.length > 0) throw new GgufError(`tensor "${left[0]}"${left.length > 1 ? ` (and ${left.length - 1} more)` : ''} has no place in a GGUF ${family} model`);
  return out;
}
