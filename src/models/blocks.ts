/** Loading the transformer-side sublayers shared by the decoder architectures (Llama, Bamba, …). */
import { Attention, type AttentionOptions } from '../nn/attention.js';
import { GatedMLP } from '../nn/mlp.js';
import { ConfigFields } from './config.js';
import { ModelError } from './errors.js';
import type { WeightLoader } from './loader.js';

/** `prefix` + {q,k,v,o}_proj.weight (+ .bias); q/k/v/o shapes from the head counts */
export function loadAttention(w: WeightLoader, prefix: string, H: number, opts: AttentionOptions, bias: { qkv: boolean; o: boolean }): Attention {
  const { nHeads: hq, nKvHeads: hkv, headDim: hd } = opts;
  return new Attention({
    q: w.matrix(`${prefix}q_proj.weight`, [hq * hd, H]),
    k: w.matrix(`${prefix}k_proj.weight`, [hkv * hd, H]),
    v: w.matrix(`${prefix}v_proj.weight`, [hkv * hd, H]),
    o: w.matrix(`${prefix}o_proj.weight`, [H, hq * hd]),
    qBias: w.maybe(bias.qkv, `${prefix}q_proj.bias`, [hq * hd]),
    kBias: w.maybe(bias.qkv, `${prefix}k_proj.bias`, [hkv * hd]),
    vBias: w.maybe(bias.qkv, `${prefix}v_proj.bias`, [hkv * hd]),
    oBias: w.maybe(bias.o, `${prefix}o_proj.bias`, [H]),
  }, opts, w.backend);
}

/** `prefix` + {gate,up,down}_proj.weight (+ .bias) */
export function loadGatedMLP(w: WeightLoader, prefix: string, H: number, I: number, bias: boolean): GatedMLP {
  return new GatedMLP({
    gate: w.matrix(`${prefix}gate_proj.weight`, [I, H]),
    up: w.matrix(`${prefix}up_proj.weight`, [I, H]),
    down: w.matrix(`${prefix}down_proj.weight`, [H, I]),
    gateBias: w.maybe(bias, `${prefix}gate_proj.bias`, [I]),
    upBias: w.maybe(bias, `${prefix}up_proj.bias`, [I]),
    downBias: w.maybe(bias, `${prefix}down_proj.bias`, [H]),
  });
}

/** Head counts of a GQA attention config, checked. */
export function parseHeads(f: ConfigFields, H: number, keys = { heads: 'num_attention_heads', kv: 'num_key_value_heads', headDim: 'head_dim' }) {
  const nHeads = f.int(keys.heads);
  const nKvHeads = f.int(keys.kv, nHeads);
  if (nHeads % nKvHeads !== 0) throw new ModelError(`${f.file}: ${keys.heads} ${nHeads} is not a multiple of ${keys.kv} ${nKvHeads}`);
  if (!f.has(keys.headDim) && H % nHeads !== 0) throw new ModelError(`${f.file}: hidden_size ${H} is not a multiple of ${keys.heads} ${nHeads} (and no ${keys.headDim} is given)`);
  return { nHeads, nKvHeads, headDim: f.int(keys.headDim, H / nHeads) };
}

/**
 * RoPE settings: `rope_parameters` (transformers 5) or `rope_theta` / `partial_rotary_factor` / `rope_scaling`
 * (older configs). Only the default (unscaled) rotary embedding is implemented.
 */
export function parseRope(f: ConfigFields, headDim: number, defaults: { theta: number; partial: number }): { rotaryDim: number; theta: number } {
  const p = f.sub('rope_parameters');
  const scaling = f.sub('rope_scaling');
  const type = p.str('rope_type', scaling.str('rope_type', scaling.str('type', 'default')));
  if (type !== 'default') throw new ModelError(`${f.file}: rope_type "${type}" is not supported (only "default")`);
  const theta = p.num('rope_theta', f.num('rope_theta', defaults.theta, (x) => x > 0, 'a positive number'), (x) => x > 0, 'a positive number');
  const partial = p.num('partial_rotary_factor', f.num('partial_rotary_factor', defaults.partial, (x) => x > 0 && x <= 1, 'a number in (0, 1]'), (x) => x > 0 && x <= 1, 'a number in (0, 1]');
  const rotaryDim = Math.floor(headDim * partial);
  if (rotaryDim % 2 !== 0 || rotaryDim === 0) throw new ModelError(`${f.file}: partial_rotary_factor ${partial} × head_dim ${headDim} = ${rotaryDim} rotary channels; expected an even positive number`);
  return { rotaryDim, theta };
}
