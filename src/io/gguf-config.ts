/**
 * GGUF metadata ↔ Hugging Face config.json, for the architectures llama.cpp writes as `mamba` (FalconMamba:
 * `ssm.dt_b_c_rms`), `mamba2`, `jamba`, `granitehybrid` (Granite 4.0-H and Bamba), `nemotron_h` and `llama`.
 * Import (`ggufConfig`) builds the config dict the model code parses; export (`ggufMetadata`) writes the keys
 * llama.cpp's converter writes for a config. Per-layer `head_count_kv` = 0 marks recurrent (SSM) layers; a
 * missing `output.weight` means tied embeddings. Values llama.cpp has no key for (Mamba-2 chunk size, Δ limits)
 * take HF's defaults on import.
 */
import { GgufError, gv, type GgufFile, type GgufMetadataOut } from './gguf-format.js';
import type { MapContext } from './gguf-arch.js';
import { resolveModelType } from '../models/registry.js';
import type { RawConfig } from '../models/config.js';
import { parseMambaConfig } from '../models/mamba.js';
import { parseMamba2Config } from '../models/mamba2.js';
import { parseJambaConfig } from '../models/jamba.js';
import { parseBambaConfig } from '../models/bamba.js';
import { parseGraniteHybridConfig } from '../models/granite_hybrid.js';
import { parseNemotronHConfig } from '../models/nemotron_h.js';
import { parseLlamaConfig } from '../models/llama.js';

/** The shortest decimal that is the same float32 (1e-5 rather than 9.99999974737875e-6). */
export function f32Decimal(x: number): number {
  for (let p = 1; p <= 9; p++) {
    const s = Number(x.toPrecision(p));
    if (Math.fround(s) === x) return s;
  }
  return x;
}

export interface ImportedConfig {
  /** the model_type the config describes (the tensor rules' family) */
  family: string;
  config: RawConfig;
  nLayers: number;
  ctx: MapContext;
}

/** GGUF architectures this module reads and writes */
export const GGUF_ARCHITECTURES = ['mamba', 'mamba2', 'jamba', 'granitehybrid', 'nemotron_h', 'llama'];

/** The HF config of a GGUF file, from its metadata and tensor shapes. */
export function ggufConfig(g: GgufFile): ImportedConfig {
  const arch = g.str('general.architecture');
  if (!GGUF_ARCHITECTURES.includes(arch)) {
    throw new GgufError(`${g.path}: metadata "general.architecture" is "${arch}", which mamba-ts does not read (supported: ${GGUF_ARCHITECTURES.join(', ')})`);
  }
  const k = (key: string) => `${arch}.${key}`;
  const n = g.int(k('block_count'));
  const H = g.int(k('embedding_length'));
  const embd = g.tensors.get('token_embd.weight');
  if (!embd) throw new GgufError(`${g.path}: tensor "token_embd.weight" is missing (the token embeddings)`);
  if (embd.shape.length !== 2 || embd.shape[1] !== H) throw new GgufError(`${g.path}: tensor "token_embd.weight" has shape [${embd.shape.join(', ')}], expected [vocab, ${H}] (${k('embedding_length')} = ${H})`);
  const has = (name: string) => g.tensors.has(name);
  const layersWith = (suffix: string) => Array.from({ length: n }, (_, i) => i).filter((i) => has(`blk.${i}.${suffix}`));
  const eps = (key: string, dflt?: number) => f32Decimal(g.num(k(key), dflt));
  const common: RawConfig = {
    vocab_size: embd.shape[0],
    hidden_size: H,
    num_hidden_layers: n,
    tie_word_embeddings: !has('output.weight'),
    ...(g.has('tokenizer.ggml.bos_token_id') ? { bos_token_id: g.int('tokenizer.ggml.bos_token_id') } : {}),
    ...(g.has('tokenizer.ggml.eos_token_id') ? { eos_token_id: g.int('tokenizer.ggml.eos_token_id') } : {}),
    ...(g.has('tokenizer.ggml.padding_token_id') ? { pad_token_id: g.int('tokenizer.ggml.padding_token_id') } : {}),
  };
  const firstSsm = layersWith('ssm_in.weight')[0] ?? 0;
  const ssmBias = (t: string) => has(`blk.${firstSsm}.${t}.bias`);
  const inner = () => g.int(k('ssm.inner_size'));
  const noHeads: MapContext = { nGroups: 1, nHead: 1, nKvHead: () => 1 };

  if (arch === 'mamba') {
    const falcon = g.bool(k('ssm.dt_b_c_rms'), false);
    const config: RawConfig = {
      ...common, model_type: falcon ? 'falcon_mamba' : 'mamba', intermediate_size: inner(), expand: inner() / H,
      state_size: g.int(k('ssm.state_size')), conv_kernel: g.int(k('ssm.conv_kernel')), time_step_rank: g.int(k('ssm.time_step_rank')),
      layer_norm_epsilon: eps('attention.layer_norm_rms_epsilon', 1e-5), use_bias: ssmBias('ssm_in'), use_conv_bias: ssmBias('ssm_conv1d'),
    };
    return { family: falcon ? 'falcon_mamba' : 'mamba', config, nLayers: n, ctx: noHeads };
  }
  const mamba2Fields = (prefix: string) => {
    const nHeads = g.int(k('ssm.time_step_rank'));
    if (nHeads === 0 || inner() % nHeads !== 0) throw new GgufError(`${g.path}: metadata "${k('ssm.time_step_rank')}" (the number of Mamba-2 heads) is ${nHeads}, expected a divisor of ${k('ssm.inner_size')} ${inner()}`);
    return { nHeads, headDim: inner() / nHeads, nGroups: g.int(k('ssm.group_count'), 1), state: g.int(k('ssm.state_size')), conv: g.int(k('ssm.conv_kernel')), prefix };
  };
  if (arch === 'mamba2') {
    const m = mamba2Fields('');
    const config: RawConfig = {
      ...common, model_type: 'mamba2', expand: inner() / H, num_heads: m.nHeads, head_dim: m.headDim, n_groups: m.nGroups, state_size: m.state,
      conv_kernel: m.conv, layer_norm_epsilon: eps('attention.layer_norm_rms_epsilon', 1e-5), use_bias: ssmBias('ssm_in'), use_conv_bias: ssmBias('ssm_conv1d'),
      rms_norm: true, norm_before_gate: false,
    };
    return { family: 'mamba2', config, nLayers: n, ctx: { ...noHeads, nGroups: m.nGroups } };
  }

  // hybrids and llama: attention heads; head_count_kv per layer, 0 on recurrent layers
  const nHead = g.int(k('attention.head_count'));
  const kv = g.perLayer(k('attention.head_count_kv'), n, nHead);
  const attn = kv.map((x) => x > 0);
  const kvHeads = Math.max(0, ...kv);
  const ctxHeads = (nGroups: number): MapContext => ({ nGroups, nHead, nKvHead: (i) => kv[i] || kvHeads || nHead });
  const ropeTheta = () => f32Decimal(g.num(k('rope.freq_base'), 10000));

  if (arch === 'jamba') {
    const moe = layersWith('ffn_gate_inp.weight');
    const [attnPeriod, attnOffset] = periodOf(attn, `${g.path}: the attention layers (${k('attention.head_count_kv')} > 0)`);
    const [expertPeriod, expertOffset] = periodOf(Array.from({ length: n }, (_, i) => moe.includes(i)), `${g.path}: the mixture-of-experts layers (with ffn_gate_inp)`);
    const config: RawConfig = {
      ...common, model_type: 'jamba', intermediate_size: g.int(k('feed_forward_length')), num_attention_heads: nHead, num_key_value_heads: kvHeads || nHead,
      attn_layer_period: attnPeriod, attn_layer_offset: attnOffset, expert_layer_period: expertPeriod, expert_layer_offset: expertOffset,
      num_experts: moe.length > 0 ? g.int(k('expert_count')) : 1, num_experts_per_tok: moe.length > 0 ? g.int(k('expert_used_count')) : 1,
      mamba_d_state: g.int(k('ssm.state_size')), mamba_d_conv: g.int(k('ssm.conv_kernel')), mamba_expand: inner() / H, mamba_dt_rank: g.int(k('ssm.time_step_rank')),
      mamba_conv_bias: ssmBias('ssm_conv1d'), mamba_proj_bias: ssmBias('ssm_in'), rms_norm_eps: eps('attention.layer_norm_rms_epsilon', 1e-6),
      ...(g.has(k('context_length')) ? { max_position_embeddings: g.int(k('context_length')) } : {}),
    };
    return { family: 'jamba', config, nLayers: n, ctx: ctxHeads(1) };
  }
  if (arch === 'granitehybrid') {
    const m = mamba2Fields('mamba_');
    const useRope = g.bool(k('rope.scaling.finetuned'), true);
    const headDim = H / nHead;
    const rotDim = g.int(k('rope.dimension_count'), headDim);
    const scales = ['embedding_scale', 'residual_scale', 'attention.scale', 'logit_scale'].some((s) => g.has(k(s)));
    const experts = layersWith('ffn_gate_exps.weight').length > 0;
    const mamba: RawConfig = {
      mamba_n_heads: m.nHeads, mamba_d_head: m.headDim, mamba_n_groups: m.nGroups, mamba_d_state: m.state, mamba_d_conv: m.conv, mamba_expand: inner() / H,
      mamba_proj_bias: ssmBias('ssm_in'), mamba_conv_bias: ssmBias('ssm_conv1d'), num_attention_heads: nHead, num_key_value_heads: kvHeads || nHead,
      rms_norm_eps: eps('attention.layer_norm_rms_epsilon', 1e-6), attention_bias: layersWith('attn_q.bias').length > 0,
      ...(useRope && g.has(k('context_length')) ? { max_position_embeddings: g.int(k('context_length')) } : {}),
    };
    if (!scales && !experts && useRope && !layersWith('ffn_gate_shexp.weight').length) {
      // Bamba: no muP multipliers, dense MLP, RoPE (partial: rope.dimension_count < head_dim)
      const config: RawConfig = {
        ...common, ...mamba, model_type: 'bamba', attn_layer_indices: attn.flatMap((a, i) => (a ? [i] : [])), intermediate_size: g.int(k('feed_forward_length')),
        rope_parameters: { rope_type: 'default', rope_theta: ropeTheta(), partial_rotary_factor: rotDim / headDim },
      };
      delete config.attention_bias;
      return { family: 'bamba', config, nLayers: n, ctx: ctxHeads(m.nGroups) };
    }
    const shared = layersWith(experts ? 'ffn_gate_shexp.weight' : 'ffn_gate.weight')[0];
    const gateShape = (name: string) => g.tensor(name).shape;
    const config: RawConfig = {
      ...common, ...mamba, model_type: 'granitemoehybrid', layer_types: attn.map((a) => (a ? 'attention' : 'mamba')),
      position_embedding_type: useRope ? 'rope' : 'nope', rope_parameters: { rope_type: 'default', rope_theta: ropeTheta() },
      num_local_experts: experts ? g.int(k('expert_count')) : 0, num_experts_per_tok: experts ? g.int(k('expert_used_count')) : 0,
      intermediate_size: experts ? gateShape(`blk.${layersWith('ffn_gate_exps.weight')[0]}.ffn_gate_exps.weight`)[1] : g.int(k('feed_forward_length'), 0),
      shared_intermediate_size: shared === undefined ? 0 : gateShape(`blk.${shared}.${experts ? 'ffn_gate_shexp' : 'ffn_gate'}.weight`)[0],
      embedding_multiplier: f32Decimal(g.num(k('embedding_scale'), 1)), residual_multiplier: f32Decimal(g.num(k('residual_scale'), 1)),
      // llama.cpp: no attention.scale = 1/√head_dim
      attention_multiplier: g.has(k('attention.scale')) ? f32Decimal(g.num(k('attention.scale'))) : 1 / Math.sqrt(headDim),
      logits_scaling: f32Decimal(g.num(k('logit_scale'), 1)),
    };
    return { family: 'granitemoehybrid', config, nLayers: n, ctx: ctxHeads(m.nGroups) };
  }
  if (arch === 'nemotron_h') {
    const m = mamba2Fields('');
    const ff = g.perLayer(k('feed_forward_length'), n, 0);
    const types = attn.map((a, i) => (a ? 'attention' : ff[i] > 0 ? 'mlp' : 'mamba'));
    const config: RawConfig = {
      ...common, model_type: 'nemotron_h', layers_block_type: types, num_attention_heads: nHead, num_key_value_heads: kvHeads || nHead,
      head_dim: g.int(k('attention.key_length'), H / nHead), intermediate_size: Math.max(0, ...ff),
      mamba_num_heads: m.nHeads, mamba_head_dim: m.headDim, n_groups: m.nGroups, ssm_state_size: m.state, conv_kernel: m.conv,
      layer_norm_epsilon: f32Decimal(g.has(k('attention.layer_norm_rms_epsilon')) ? g.num(k('attention.layer_norm_rms_epsilon')) : g.num(k('attention.layer_norm_epsilon'), 1e-5)),
      use_bias: ssmBias('ssm_in'), use_conv_bias: ssmBias('ssm_conv1d'), mlp_bias: layersWith('ffn_up.bias').length > 0,
      attention_bias: layersWith('attn_q.bias').length > 0, mamba_hidden_act: 'silu', mlp_hidden_act: 'relu2',
    };
    return { family: 'nemotron_h', config, nLayers: n, ctx: ctxHeads(m.nGroups) };
  }
  // llama
  const headDim = g.int(k('attention.key_length'), H / nHead);
  const rot = g.int(k('rope.dimension_count'), headDim);
  const config: RawConfig = {
    ...common, model_type: 'llama', intermediate_size: g.int(k('feed_forward_length')), num_attention_heads: nHead, num_key_value_heads: kvHeads || nHead,
    head_dim: headDim, rms_norm_eps: eps('attention.layer_norm_rms_epsilon', 1e-6), max_position_embeddings: g.int(k('context_length'), 2048),
    rope_parameters: { rope_type: 'default', rope_theta: ropeTheta(), partial_rotary_factor: rot / headDim },
    attention_bias: layersWith('attn_q.bias').length > 0, mlp_bias: layersWith('ffn_up.bias').length > 0,
  };
  return { family: 'llama', config, nLayers: n, ctx: ctxHeads(1) };
}

/** the (period, offset) with `flags[i]` ⇔ i mod period = offset (Jamba's layout) */
function periodOf(flags: boolean[], what: string): [number, number] {
  const n = flags.length;
  for (let p = 1; p <= n + 1; p++) {
    for (let o = 0; o < p; o++) {
      if (flags.every((f, i) => f === (i % p === o))) return [p, o];
    }
  }
  throw new GgufError(`${what} (${flags.flatMap((f, i) => (f ? [i] : [])).join(', ')}) do not repeat with a period, as Jamba's layout needs`);
}

/** What export needs besides the tensors: the architecture's metadata and how to map tensors. */
export interface ExportPlan {
  arch: string;
  family: string;
  nLayers: number;
  ctx: MapContext;
  tied: boolean;
  denseGranite: boolean;
  /** `{arch}.*` keys, in the converter's order (general.* and tokenizer.* are added by the caller) */
  metadata: GgufMetadataOut;
  /** tokenizer.ggml.add_bos_token the converter sets for this architecture, if any */
  addBos?: boolean;
}

/** The GGUF architecture and metadata of an HF config (named `file` in messages). */
export function ggufMetadata(raw: RawConfig, file: string): ExportPlan {
  const type = resolveModelType(raw, file);
  const md: GgufMetadataOut = [];
  let arch = '';
  const u32 = (key: string, v: number) => md.push([`${arch}.${key}`, gv.u32(v)]);
  const f32 = (key: string, v: number) => md.push([`${arch}.${key}`, gv.f32(v)]);
  const ssm = (conv: number, inner: number, state: number, rank: number, groups?: number) => {
    u32('ssm.conv_kernel', conv);
    u32('ssm.inner_size', inner);
    u32('ssm.state_size', state);
    u32('ssm.time_step_rank', rank);
    if (groups !== undefined) u32('ssm.group_count', groups);
  };
  const perLayer = (key: string, v: number[]) => md.push([`${arch}.${key}`, gv.i32s(v)]);
  const one: MapContext = { nGroups: 1, nHead: 1, nKvHead: () => 1 };

  if (type === 'mamba' || type === 'falcon_mamba') {
    const c = parseMambaConfig(raw, file);
    if (c.mixer === 's4d') throw new GgufError(`${file}: a Mamba with the S4D mixer has no GGUF form (llama.cpp runs S6 only)`);
    arch = 'mamba';
    u32('context_length', 2 ** 20); u32('embedding_length', c.hiddenSize); u32('feed_forward_length', 0); u32('attention.head_count', 0); u32('block_count', c.numLayers);
    ssm(c.convKernel, c.innerSize, c.stateSize, c.dtRank);
    f32('attention.layer_norm_rms_epsilon', c.normEps);
    md.push(['mamba.ssm.dt_b_c_rms', gv.bool(type === 'falcon_mamba')]);
    return { arch, family: 'mamba', nLayers: c.numLayers, ctx: one, tied: c.tieEmbeddings, denseGranite: false, metadata: md };
  }
  if (type === 'mamba2') {
    const c = parseMamba2Config(raw, file);
    arch = 'mamba2';
    u32('context_length', 2 ** 20); u32('embedding_length', c.hiddenSize); u32('feed_forward_length', 0); u32('attention.head_count', 0); u32('block_count', c.numLayers);
    ssm(c.convKernel, c.inner, c.dState, c.nHeads, c.nGroups);
    f32('attention.layer_norm_rms_epsilon', c.normEps);
    return { arch, family: 'mamba2', nLayers: c.numLayers, ctx: { ...one, nGroups: c.nGroups }, tied: c.tieEmbeddings, denseGranite: false, metadata: md };
  }
  if (type === 'jamba') {
    const c = parseJambaConfig(raw, file);
    arch = 'jamba';
    u32('block_count', c.numLayers); u32('context_length', typeof raw.max_position_embeddings === 'number' ? raw.max_position_embeddings : 262144);
    u32('embedding_length', c.hiddenSize); u32('feed_forward_length', c.ffnSize); u32('attention.head_count', c.nHeads);
    perLayer('attention.head_count_kv', c.layerTypes.map((t) => (t === 'attention' ? c.nKvHeads : 0)));
    ssm(c.convKernel, c.mambaInner, c.stateSize, c.dtRank);
    f32('attention.layer_norm_rms_epsilon', c.normEps); u32('expert_count', c.numExperts); u32('expert_used_count', c.topK);
    return { arch, family: 'jamba', nLayers: c.numLayers, ctx: { nGroups: 1, nHead: c.nHeads, nKvHead: () => c.nKvHeads }, tied: c.tieEmbeddings, denseGranite: false, metadata: md };
  }
  if (type === 'bamba' || type === 'granitemoehybrid') {
    arch = 'granitehybrid';
    const bamba = type === 'bamba' ? parseBambaConfig(raw, file) : null;
    const granite = type === 'granitemoehybrid' ? parseGraniteHybridConfig(raw, file) : null;
    const numLayers = (bamba ?? granite)!.numLayers;
    const hidden = (bamba ?? granite)!.hiddenSize;
    const layerTypes = (bamba ?? granite)!.layerTypes;
    const m = bamba ? bamba.mamba : granite!;
    const nHeads = bamba ? bamba.attention.nHeads : granite!.attnHeads;
    const nKv = bamba ? bamba.attention.nKvHeads : granite!.kvHeads;
    const headDim = bamba ? bamba.attention.headDim : granite!.attnHeadDim;
    const useRope = bamba ? true : granite!.ropeTheta !== null;
    u32('block_count', numLayers);
    u32('context_length', useRope && typeof raw.max_position_embeddings === 'number' ? raw.max_position_embeddings : 2 ** 20);
    u32('embedding_length', hidden);
    u32('feed_forward_length', bamba ? bamba.intermediateSize : granite!.expertSize);
    u32('attention.head_count', nHeads);
    f32('rope.freq_base', bamba ? bamba.attention.rope.theta : granite!.ropeTheta ?? 10000);
    f32('attention.layer_norm_rms_epsilon', (bamba ?? granite)!.normEps);
    if (granite) {
      u32('expert_count', granite.numExperts); u32('expert_used_count', granite.topK);
    }
    u32('rope.dimension_count', bamba ? bamba.attention.rope.rotaryDim : headDim);
    if (granite) {
      f32('attention.scale', granite.attentionMultiplier); f32('embedding_scale', granite.embeddingMultiplier);
      f32('residual_scale', granite.residualMultiplier); f32('logit_scale', granite.logitsScaling);
      if (granite.numExperts > 0) u32('expert_shared_feed_forward_length', granite.sharedSize);
    }
    ssm(m.convKernel, m.inner, m.dState, m.nHeads, m.nGroups);
    perLayer('attention.head_count_kv', layerTypes.map((t) => (t === 'attention' ? nKv : 0)));
    md.push([`${arch}.rope.scaling.finetuned`, gv.bool(useRope)]);
    return {
      arch, family: type, nLayers: numLayers, ctx: { nGroups: m.nGroups, nHead: nHeads, nKvHead: () => nKv },
      tied: (bamba ?? granite)!.tieEmbeddings, denseGranite: granite !== null && granite.numExperts === 0, metadata: md,
    };
  }
  if (type === 'nemotron_h') {
    const c = parseNemotronHConfig(raw, file);
    arch = 'nemotron_h';
    const n = c.layerTypes.length;
    u32('block_count', n); u32('context_length', 2 ** 20); u32('embedding_length', c.hiddenSize);
    perLayer('feed_forward_length', c.layerTypes.map((t) => (t === 'mlp' ? c.intermediateSize : 0)));
    u32('attention.head_count', c.nHeads);
    f32('attention.layer_norm_epsilon', c.normEps); f32('attention.layer_norm_rms_epsilon', c.normEps);
    u32('attention.key_length', c.headDim); u32('attention.value_length', c.headDim);
    u32('rope.dimension_count', c.headDim || 1);
    ssm(c.mamba.convKernel, c.mamba.inner, c.mamba.dState, c.mamba.nHeads, c.mamba.nGroups);
    perLayer('attention.head_count_kv', c.layerTypes.map((t) => (t === 'attention' ? c.nKvHeads : 0)));
    md.push([`${arch}.rope.scaling.finetuned`, gv.bool(false)]);
    return { arch, family: 'nemotron_h', nLayers: n, ctx: { nGroups: c.mamba.nGroups, nHead: c.nHeads, nKvHead: () => c.nKvHeads }, tied: c.tieEmbeddings, denseGranite: false, metadata: md, addBos: true };
  }
  if (type === 'llama') {
    const c = parseLlamaConfig(raw, file);
    arch = 'llama';
    u32('block_count', c.numLayers);
    if (typeof raw.max_position_embeddings === 'number') u32('context_length', raw.max_position_embeddings);
    u32('embedding_length', c.hiddenSize); u32('feed_forward_length', c.intermediateSize); u32('attention.head_count', c.nHeads); u32('attention.head_count_kv', c.nKvHeads);
    f32('rope.freq_base', c.rope.theta); f32('attention.layer_norm_rms_epsilon', c.normEps);
    if (raw.head_dim !== undefined) {
      u32('attention.key_length', c.headDim); u32('attention.value_length', c.headDim);
    }
    u32('vocab_size', c.vocabSize); u32('rope.dimension_count', c.rope.rotaryDim);
    return { arch, family: 'llama', nLayers: c.numLayers, ctx: { nGroups: 1, nHead: c.nHeads, nKvHead: () => c.nKvHeads }, tied: c.tieEmbeddings, denseGranite: false, metadata: md };
  }
  throw new GgufError(`${file}: model_type "${type}" has no GGUF form in mamba-ts (supported: mamba, falcon_mamba, mamba2, jamba, bamba, granitemoehybrid, nemotron_h, llama)`);
}
