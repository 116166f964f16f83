/**
 * A trainable Mamba-2 language model for fine-tuning a checkpoint (HF `Mamba2ForCausalLM` or state-spaces
 * naming): the same equations as `src/nn/mamba2.ts`, on the autograd engine —
 *   [z | xBC | Δ'] = in_proj(h);  xBC = silu(conv1d(xBC));  [x | B | C] = xBC
 *   y = SSD(x; Δ = clamp(softplus(Δ' + dt_bias)), A = −exp(A_log), B, C, D)   (chunked; backward by reverse recurrence)
 *   out = out_proj(gated_rmsnorm(y, z))
 * Parameters keep the names and config of the checkpoint they came from, so the saved folder loads
 * back through `loadModel` exactly like the original.
 */
import * as path from 'node:path';
import * as ag from '../autograd/ops.js';
import * as fused from '../autograd/fused.js';
import { param, type Var } from '../autograd/var.js';
import { WeightSource } from '../io/weights.js';
import { readConfig } from '../models/config-file.js';
import { type Mamba2Config, parseMamba2Config } from '../models/mamba2.js';
import { TrainError } from './errors.js';
import { modelParam, type TrainableModel } from './mamba_lm.js';

export class TrainableMamba2LM implements TrainableModel {
  readonly params = new Map<string, Var>();
  private readonly prefix: string;
  private readonly embedName: string;

  constructor(
    readonly config: Mamba2Config,
    private readonly rawConfig: Record<string, unknown>,
    tensors: Record<string, { data: Float32Array; shape: readonly number[] }>,
  ) {
    this.prefix = 'backbone.embeddings.weight' in tensors || 'backbone.embedding.weight' in tensors ? 'backbone.' : '';
    this.embedName = `${this.prefix}embeddings.weight` in tensors ? `${this.prefix}embeddings.weight` : `${this.prefix}embedding.weight`;
    for (const [name, shape] of this.expected()) {
      const t = tensors[name];
      if (!t) throw new TrainError(`TrainableMamba2LM: tensor "${name}" is missing from the checkpoint`);
      if (t.shape.length !== shape.length || !t.shape.every((d, i) => d === shape[i])) {
        throw new TrainError(`TrainableMamba2LM: tensor "${name}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
      }
      this.params.set(name, param(name, Float32Array.from(t.data), shape));
    }
  }

  static fromPretrained(dir: string): TrainableMamba2LM {
    const raw = readConfig(dir);
    const config = parseMamba2Config(raw, path.join(dir, 'config.json'));
    const src = WeightSource.openDir(dir);
    const t: Record<string, { data: Float32Array; shape: readonly number[] }> = {};
    for (const name of src.names()) t[name] = { data: src.float32(name), shape: src.entry(name).shape };
    return new TrainableMamba2LM(config, raw, t);
  }

  private expected(): Array<[string, number[]]> {
    const c = this.config;
    const { hiddenSize: H, inner: I, nHeads: nh, nGroups: G, dState: N, convKernel: K, vocabSize: V } = c;
    const convDim = I + 2 * G * N;
    const out: Array<[string, number[]]> = [[this.embedName, [V, H]]];
    for (let i = 0; i < c.numLayers; i++) {
      const p = `${this.prefix}layers.${i}.`;
      const m = `${p}mixer.`;
      out.push([`${p}norm.weight`, [H]], [`${m}in_proj.weight`, [I + convDim + nh, H]], [`${m}conv1d.weight`, [convDim, 1, K]],
        [`${m}dt_bias`, [nh]], [`${m}A_log`, [nh]], [`${m}D`, [nh]], [`${m}norm.weight`, [I]], [`${m}out_proj.weight`, [H, I]]);
      if (c.useBias) out.push([`${m}in_proj.bias`, [I + convDim + nh]], [`${m}out_proj.bias`, [H]]);
      if (c.useConvBias) out.push([`${m}conv1d.bias`, [convDim]]);
    }
    out.push([`${this.prefix}norm_f.weight`, [H]]);
    if (!c.tieEmbeddings) out.push(['lm_head.weight', [V, H]]);
    return out;
  }

  private p(name: string): Var {
    return modelParam(this, name);
  }

  /** logits [b, L, V] for token ids [b·L] */
  forward(ids: Int32Array, b: number, L: number): Var {
    const c = this.config;
    const H = c.hiddenSize;
    let h = ag.embedding(this.p(this.embedName), ids, [b, L, H]);
    for (let i = 0; i < c.numLayers; i++) {
      const pre = `${this.prefix}layers.${i}.`;
      h = ag.add(h, this.mixer(`${pre}mixer.`, ag.rmsNorm(h, this.p(`${pre}norm.weight`), c.normEps), b, L));
    }
    const out = ag.rmsNorm(h, this.p(`${this.prefix}norm_f.weight`), c.normEps);
    return ag.linear(out, c.tieEmbeddings ? this.p(this.embedName) : this.p('lm_head.weight'));
  }

  private mixer(m: string, h: Var, b: number, L: number): Var {
    const c = this.config;
    const GN = c.nGroups * c.dState;
    const convDim = c.inner + 2 * GN;
    const maybe = (n: string): Var | null => this.params.get(n) ?? null;
    const [z, xBCraw, dt] = ag.split(ag.linear(h, this.p(`${m}in_proj.weight`), maybe(`${m}in_proj.bias`)), [c.inner, convDim, c.nHeads]);
    const xBC = ag.silu(fused.causalConv1d(xBCraw, ag.reshape(this.p(`${m}conv1d.weight`), [convDim, c.convKernel]), maybe(`${m}conv1d.bias`)));
    const [x, B, C] = ag.split(xBC, [c.inner, GN, GN]);
    const y = fused.ssd({
      x: ag.reshape(x, [b, L, c.nHeads, c.headDim]),
      dt,
      A: ag.negExp(this.p(`${m}A_log`)),
      B: ag.reshape(B, [b, L, c.nGroups, c.dState]),
      C: ag.reshape(C, [b, L, c.nGroups, c.dState]),
      D: this.p(`${m}D`),
      dtBias: this.p(`${m}dt_bias`),
      dtLimit: c.dtLimit,
      chunkSize: Math.min(c.chunkSize, 64),
    });
    // gated norm: full width for HF checkpoints, per group for state-spaces ones (as the inference model)
    const group = c.source === 'state-spaces' ? c.inner / c.nGroups : c.inner;
    const g = fused.rmsNormGated(ag.reshape(y, [b, L, c.inner]), z, this.p(`${m}norm.weight`), c.normEps, group);
    return ag.linear(g, this.p(`${m}out_proj.weight`), maybe(`${m}out_proj.bias`));
  }

  /** the checkpoint's config.json, with ±Infinity written as HF 5 does ({"__float__": "Infinity"}) */
  configJson(): Record<string, unknown> {
    const enc = (v: unknown): unknown => {
      if (typeof v === 'number' && !Number.isFinite(v)) return { __float__: String(v) };
      if (Array.isArray(v)) return v.map(enc);
      if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, enc(x)]));
      return v;
    };
    return enc(this.rawConfig) as Record<string, unknown>;
  }
}
