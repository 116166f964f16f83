/**
 * config.json → architecture. One entry per supported `model_type`; a state-spaces config (no
 * model_type, `d_model` + `n_layer`) is recognised by its fields and its `ssm_cfg.layer`.
 */
import type { WeightSource } from '../io/weights.js';
import type { RawConfig } from './config.js';
import { ModelError } from './errors.js';
import { GraniteHybridLM, parseGraniteHybridConfig } from './granite_hybrid.js';
import { JambaLM, parseJambaConfig } from './jamba.js';
import { MambaLM, parseMambaConfig, type MambaOptions } from './mamba.js';
import { Mamba2LM, parseMamba2Config, type Mamba2Options } from './mamba2.js';
import { BambaLM, parseBambaConfig } from './bamba.js';
import { LlamaLM, parseLlamaConfig } from './llama.js';
import { NemotronHLM, parseNemotronHConfig } from './nemotron_h.js';
import type { CausalLM } from './causal-lm.js';
import { unscoped } from '../tensor/scope.js';
import type { KvCacheDType } from '../tensor/dtype.js';
import { checkKvCache, LoadOptionError } from '../api/load-options.js';

export type ModelOptions = MambaOptions & Mamba2Options & {
  /** storage of attention KV caches in the states the model creates (default 'f32', exact; bf16/f16 half the bytes) */
  kvCache?: KvCacheDType;
};

interface Architecture {
  /** human name for messages and `info` */
  name: string;
  build(raw: RawConfig, file: string, weights: WeightSource, opts: ModelOptions): CausalLM;
}

const ARCHITECTURES: Record<string, Architecture> = {
  mamba: { name: 'Mamba-1', build: (raw, file, w, o) => new MambaLM(parseMambaConfig(raw, file), w, o) },
  falcon_mamba: { name: 'FalconMamba', build: (raw, file, w, o) => new MambaLM(parseMambaConfig(raw, file), w, o) },
  mamba2: { name: 'Mamba-2', build: (raw, file, w, o) => new Mamba2LM(parseMamba2Config(raw, file), w, o) },
  granitemoehybrid: { name: 'Granite 4.0-H', build: (raw, file, w, o) => new GraniteHybridLM(parseGraniteHybridConfig(raw, file), w, o) },
  jamba: { name: 'Jamba', build: (raw, file, w, o) => new JambaLM(parseJambaConfig(raw, file), w, o) },
  bamba: { name: 'Bamba', build: (raw, file, w, o) => new BambaLM(parseBambaConfig(raw, file), w, o) },
  llama: { name: 'Llama', build: (raw, file, w, o) => new LlamaLM(parseLlamaConfig(raw, file), w, o) },
  nemotron_h: { name: 'Nemotron-H', build: (raw, file, w, o) => new NemotronHLM(parseNemotronHConfig(raw, file), w, o) },
};

/** Known model types that are planned but not implemented yet, with the reason. */
const PLANNED: Record<string, string> = {
};

/** Which architecture a config describes: `model_type`, or state-spaces fields. */
export function resolveModelType(raw: RawConfig, file: string): string {
  const mt = raw.model_type;
  if (typeof mt === 'string') return mt;
  if (mt !== undefined) throw new ModelError(`${file}: field "model_type" must be a string, got ${JSON.stringify(mt)}`);
  if ('d_model' in raw && 'n_layer' in raw) {
    const layer = (raw.ssm_cfg as { layer?: unknown } | undefined)?.layer;
    return layer === 'Mamba2' ? 'mamba2' : 'mamba';
  }
  throw new ModelError(`${file}: no "model_type" field, and not a state-spaces config (expected "d_model" and "n_layer")`);
}

export function buildModel(raw: RawConfig, file: string, weights: WeightSource, opts: ModelOptions = {}): CausalLM {
  const type = resolveModelType(raw, file);
  const arch = ARCHITECTURES[type];
  if (!arch) {
    const why = PLANNED[type] ?? `model_type "${type}" is not supported`;
    throw new ModelError(`${file}: ${why} (supported: ${Object.keys(ARCHITECTURES).join(', ')})`);
  }
  const kv = checkKvCache(opts.kvCache, 'buildModel');
  // the weights live as long as the model: no scope (scope.ts) owns them, even when the model is built inside one
  const model = unscoped(() => arch.build(raw, file, weights, opts));
  if (kv !== 'f32') model.kvCache = kv;
  if (kv === 'q8') {
    // q8 takes only attention shapes of whole blocks (checkKvCacheShape): refused here, at load, not at the first state
    try {
      model.createState(1).dispose();
    } catch (e) {
      if (e instanceof LoadOptionError) throw new LoadOptionError(`buildModel: ${e.message.slice(Math.max(0, e.message.indexOf('option "kvCache"')))}`);
      throw e;
    }
  }
  return model;
}

export function supportedModelTypes(): string[] {
  return Object.keys(ARCHITECTURES);
}

/** model_type → architecture name, of every supported type */
export function architectureNames(): Record<string, string> {
  return Object.fromEntries(Object.entries(ARCHITECTURES).map(([t, a]) => [t, a.name]));
}
