/**
 * A GGUF writer for the tests, written from the format's specification independently of src/io/gguf-format.ts
 * (so a mistake shared by our reader and writer cannot hide), and a converter for three architectures written
 * from llama.cpp's convert_hf_to_gguf.py (Mamba, Mamba-2, Llama: names, −exp(A_log), squeezed conv weights,
 * (n, 1) A/D, grouped norm weights, q/k permutation, tied output dropped). Knobs make malformed files.
 */
import { f32ToF16 } from '../../src/tensor/dtype.js';

export type SpecValue =
  | ['u32', number] | ['i32', number] | ['f32', number] | ['bool', boolean] | ['str', string]
  | ['i32[]', number[]] | ['str[]', string[]] | ['u64', bigint];

export interface SpecTensor {
  name: string;
  /** row-major shape (written reversed, as ggml's ne) */
  shape: number[];
  type: number;
  data: Uint8Array;
}

export interface SpecOptions {
  magic?: string;
  version?: number;
  alignment?: number;
  /** override the counts written in the header */
  tensorCount?: bigint;
  kvCount?: bigint;
  /** override a tensor's offset (relative to the data section) */
  offsets?: Record<string, bigint>;
}

const TYPE_ID: Record<string, number> = { u32: 4, i32: 5, f32: 6, bool: 7, str: 8, u64: 10 };

export function specGguf(kvs: Array<[string, SpecValue]>, tensors: SpecTensor[], o: SpecOptions = {}): Uint8Array {
  const parts: number[] = [];
  const u8 = (...b: number[]) => parts.push(...b);
  const u32 = (v: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v, true); u8(...b); };
  const u64 = (v: bigint | number) => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(v), true); u8(...b); };
  const str = (s: string) => { const b = new TextEncoder().encode(s); u64(b.length); u8(...b); };
  const scalar = (t: string, v: unknown) => {
    const b = new Uint8Array(8), dv = new DataView(b.buffer);
    if (t === 'str') return str(v as string);
    if (t === 'u32') { dv.setUint32(0, v as number, true); return u8(...b.subarray(0, 4)); }
    if (t === 'i32') { dv.setInt32(0, v as number, true); return u8(...b.subarray(0, 4)); }
    if (t === 'f32') { dv.setFloat32(0, v as number, true); return u8(...b.subarray(0, 4)); }
    if (t === 'bool') return u8(v ? 1 : 0);
    return u64(v as bigint);
  };
  u8(...new TextEncoder().encode(o.magic ?? 'GGUF'));
  u32(o.version ?? 3);
  u64(o.tensorCount ?? BigInt(tensors.length));
  const all = o.alignment ? [...kvs, ['general.alignment', ['u32', o.alignment]] as [string, SpecValue]] : kvs;
  u64(o.kvCount ?? BigInt(all.length));
  for (const [key, [t, v]] of all) {
    str(key);
    if (t.endsWith('[]')) {
      const base = t.slice(0, -2);
      u32(9);
      u32(TYPE_ID[base]);
      u64((v as unknown[]).length);
      for (const x of v as unknown[]) scalar(base, x);
    } else {
      u32(TYPE_ID[t]);
      scalar(t, v);
    }
  }
  const align = o.alignment ?? 32;
  let off = 0n;
  const offsets: bigint[] = [];
  for (const t of tensors) {
    str(t.name);
    u32(t.shape.length);
    for (const d of [...t.shape].reverse()) u64(d);
    u32(t.type);
    const at = o.offsets?.[t.name] ?? off;
    offsets.push(at);
    u64(at);
    off += BigInt(Math.ceil(t.data.byteLength / align) * align);
  }
  while (parts.length % align !== 0) parts.push(0);
  const header = Uint8Array.from(parts);
  const out = new Uint8Array(header.length + Number(off));
  out.set(header);
  tensors.forEach((t, i) => {
    if (offsets[i] + BigInt(t.data.byteLength) <= off) out.set(t.data, header.length + Number(offsets[i]));
  });
  return out;
}

export function f32Bytes(x: Float32Array): Uint8Array {
  const b = new Uint8Array(x.length * 4), dv = new DataView(b.buffer);
  x.forEach((v, i) => dv.setFloat32(i * 4, v, true));
  return b;
}

export function f16Bytes(x: Float32Array): Uint8Array {
  const b = new Uint8Array(x.length * 2), dv = new DataView(b.buffer);
  x.forEach((v, i) => dv.setUint16(i * 2, f32ToF16(v), true));
  return b;
}

export interface HfCheckpoint {
  names(): string[];
  shape(name: string): number[];
  get(name: string): Float32Array;
}

/**
 * convert_hf_to_gguf.py for Mamba (MambaModel), Mamba-2 (Mamba2Model) and Llama (LlamaModel), for checkpoints in
 * HF naming. Matrices are written as `matrixType` (0 F32, 1 F16); 1-D tensors, norms, A, D and conv weights F32.
 */
export function specConvert(arch: 'mamba' | 'mamba2' | 'llama', cfg: Record<string, number>, ck: HfCheckpoint, matrixType: 0 | 1): { kvs: Array<[string, SpecValue]>; tensors: SpecTensor[] } {
  const a = arch;
  const kvs: Array<[string, SpecValue]> = [['general.architecture', ['str', a]], ['general.name', ['str', 'spec']]];
  const kv = (k: string, v: SpecValue) => kvs.push([`${a}.${k}`, v]);
  if (a === 'mamba' || a === 'mamba2') {
    kv('context_length', ['u32', 2 ** 20]); kv('embedding_length', ['u32', cfg.hidden]); kv('feed_forward_length', ['u32', 0]);
    kv('attention.head_count', ['u32', 0]); kv('block_count', ['u32', cfg.layers]); kv('ssm.conv_kernel', ['u32', cfg.conv]);
    kv('ssm.inner_size', ['u32', cfg.inner]); kv('ssm.state_size', ['u32', cfg.state]); kv('ssm.time_step_rank', ['u32', cfg.rank]);
    if (a === 'mamba2') kv('ssm.group_count', ['u32', cfg.groups]);
    kv('attention.layer_norm_rms_epsilon', ['f32', cfg.eps]);
    if (a === 'mamba') kv('ssm.dt_b_c_rms', ['bool', false]);
  } else {
    kv('block_count', ['u32', cfg.layers]); kv('context_length', ['u32', cfg.ctx]); kv('embedding_length', ['u32', cfg.hidden]);
    kv('feed_forward_length', ['u32', cfg.ff]); kv('attention.head_count', ['u32', cfg.heads]); kv('attention.head_count_kv', ['u32', cfg.kvHeads]);
    kv('rope.freq_base', ['f32', cfg.theta]); kv('attention.layer_norm_rms_epsilon', ['f32', cfg.eps]);
    kv('attention.key_length', ['u32', cfg.headDim]); kv('attention.value_length', ['u32', cfg.headDim]);
    kv('vocab_size', ['u32', cfg.vocab]); kv('rope.dimension_count', ['u32', cfg.headDim]);
  }
  kvs.push(['general.file_type', ['u32', matrixType]], ['general.quantization_version', ['u32', 2]]);

  const tensors: SpecTensor[] = [];
  const add = (name: string, shape: number[], data: Float32Array) => {
    const f32 = shape.length <= 1 || name.endsWith('_norm.weight') || !name.endsWith('.weight') || name.includes('ssm_conv1d');
    tensors.push({ name, shape, type: f32 ? 0 : matrixType, data: f32 || matrixType === 0 ? f32Bytes(data) : f16Bytes(data) });
  };
  /** LlamaModel.permute: reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2) */
  const permute = (w: Float32Array, shape: number[], nHead: number) => {
    const [rows, cols] = shape, hd = rows / nHead, out = new Float32Array(w.length);
    for (let h = 0; h < nHead; h++) for (let i = 0; i < hd / 2; i++) for (let s = 0; s < 2; s++) {
      out.set(w.subarray((h * hd + s * (hd / 2) + i) * cols, (h * hd + s * (hd / 2) + i + 1) * cols), (h * hd + i * 2 + s) * cols);
    }
    return out;
  };
  for (const name of ck.names()) {
    const shape = ck.shape(name), data = ck.get(name);
    const m = /^(?:backbone|model)\.layers\.(\d+)\.(.*)$/.exec(name);
    if (!m) {
      const top: Record<string, string> = {
        'backbone.embeddings.weight': 'token_embd.weight', 'model.embed_tokens.weight': 'token_embd.weight',
        'backbone.norm_f.weight': 'output_norm.weight', 'model.norm.weight': 'output_norm.weight', 'lm_head.weight': 'output.weight',
      };
      add(top[name], shape, data);
      continue;
    }
    const [, i, rest] = m;
    const b = `blk.${i}`;
    const map: Record<string, () => void> = {
      'norm.weight': () => add(`${b}.attn_norm.weight`, shape, data),
      'input_layernorm.weight': () => add(`${b}.attn_norm.weight`, shape, data),
      'post_attention_layernorm.weight': () => add(`${b}.ffn_norm.weight`, shape, data),
      'mixer.in_proj.weight': () => add(`${b}.ssm_in.weight`, shape, data),
      'mixer.conv1d.weight': () => add(`${b}.ssm_conv1d.weight`, [shape[0], shape[2]], data),
      'mixer.conv1d.bias': () => add(`${b}.ssm_conv1d.bias`, shape, data),
      'mixer.x_proj.weight': () => add(`${b}.ssm_x.weight`, shape, data),
      'mixer.dt_proj.weight': () => add(`${b}.ssm_dt.weight`, shape, data),
      'mixer.dt_proj.bias': () => add(`${b}.ssm_dt.bias`, shape, data),
      'mixer.dt_bias': () => add(`${b}.ssm_dt.bias`, shape, data),
      'mixer.A_log': () => add(`${b}.ssm_a`, a === 'mamba2' ? [shape[0], 1] : shape, Float32Array.from(data, (v) => -Math.exp(v))),
      'mixer.D': () => add(`${b}.ssm_d`, a === 'mamba2' ? [shape[0], 1] : shape, data),
      'mixer.norm.weight': () => add(`${b}.ssm_norm.weight`, [cfg.groups, shape[0] / (cfg.groups)], data),
      'mixer.out_proj.weight': () => add(`${b}.ssm_out.weight`, shape, data),
      'self_attn.q_proj.weight': () => add(`${b}.attn_q.weight`, shape, permute(data, shape, cfg.heads)),
      'self_attn.k_proj.weight': () => add(`${b}.attn_k.weight`, shape, permute(data, shape, cfg.kvHeads)),
      'self_attn.v_proj.weight': () => add(`${b}.attn_v.weight`, shape, data),
      'self_attn.o_proj.weight': () => add(`${b}.attn_output.weight`, shape, data),
      'mlp.gate_proj.weight': () => add(`${b}.ffn_gate.weight`, shape, data),
      'mlp.up_proj.weight': () => add(`${b}.ffn_up.weight`, shape, data),
      'mlp.down_proj.weight': () => add(`${b}.ffn_down.weight`, shape, data),
    };
    const f = map[rest];
    if (!f) throw new Error(`specConvert: no rule for ${name}`);
    f();
  }
  return { kvs, tensors };
}
