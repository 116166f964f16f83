/**
 * config.json as HF transformers writes it (`save_pretrained`: Python's `json.dumps(indent=2, sort_keys=True)`,
 * ASCII only, a newline at the end), with float fields written as floats. JavaScript has one number type, so
 * `JSON.stringify` writes 0.0 as `0` and 1.0 as `1`; transformers 5 validates typed fields and refuses an int
 * where its config class declares a float (Mamba-2's `time_step_limit: [0, ...]`). `stringifyConfigJson` knows
 * which fields are floats (`FLOAT_FIELDS`, from HF's config classes of the architectures mamba-ts runs) and
 * writes them with a decimal point, as Python's `repr(float)` does (`0.0`, `1e-05`, `10000.0`). Non-finite
 * numbers become `{"__float__": "Infinity"}` as transformers 5 writes them (mamba-ts reads both that and bare
 * `Infinity`). No I/O: browser-safe.
 */
import type { RawConfig } from './config.js';

/**
 * Fields HF's config classes type as float (or a list of floats), by name. No name is a float in one class and
 * an integer in another, so one set serves every model_type:
 * - all: `initializer_range`, the norm epsilons, dropouts;
 * - mamba / falcon_mamba: `time_step_min/max/floor/scale`, `mixer_rms_eps`;
 * - mamba2, bamba, granitemoehybrid, nemotron_h: `time_step_limit` (pair), `time_step_min/max/floor`;
 * - jamba, granitemoehybrid, nemotron_h: router coefficients, `routed_scaling_factor`;
 * - granitemoehybrid: the µP multipliers (`embedding_multiplier`, `attention_multiplier`, `residual_multiplier`,
 *   `logits_scaling`);
 * - attention layers (llama, bamba, granite, jamba): `rope_theta`, `partial_rotary_factor`, `z_loss_coefficient`.
 */
export const FLOAT_FIELDS: ReadonlySet<string> = new Set([
  'initializer_range',
  'layer_norm_epsilon',
  'layer_norm_eps',
  'rms_norm_eps',
  'norm_eps',
  'mixer_rms_eps',
  'attention_dropout',
  'hidden_dropout',
  'resid_pdrop',
  'embd_pdrop',
  'attn_pdrop',
  'mlp_dropout',
  'time_step_min',
  'time_step_max',
  'time_step_floor',
  'time_step_scale',
  'time_step_limit',
  'mamba_dt_min',
  'mamba_dt_max',
  'mamba_dt_init_floor',
  'mamba_dt_limit',
  'router_aux_loss_coef',
  'router_z_loss_coef',
  'routed_scaling_factor',
  'z_loss_coefficient',
  'embedding_multiplier',
  'attention_multiplier',
  'residual_multiplier',
  'logits_scaling',
  'rope_theta',
  'partial_rotary_factor',
]);

/** Float fields inside `rope_parameters` / `rope_scaling` (HF's RoPE parameter dicts). */
export const ROPE_FLOAT_FIELDS: ReadonlySet<string> = new Set([
  'rope_theta',
  'partial_rotary_factor',
  'factor',
  'attention_factor',
  'beta_fast',
  'beta_slow',
  'low_freq_factor',
  'high_freq_factor',
  'mscale',
  'mscale_all_dim',
  'short_factor',
  'long_factor',
]);

/** A number as Python's `repr(float)` writes it: shortest round-trip digits, `1e-05`, `0.0001`, `10000.0`, `1e+16`. */
export function pythonFloat(x: number): string {
  if (!Number.isFinite(x)) throw new RangeError(`pythonFloat: ${x} is not finite`);
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  // toExponential() without digits gives the shortest digits that round-trip, as Python's repr does
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(x.toExponential());
  if (!m) throw new RangeError(`pythonFloat: cannot format ${x}`);
  const [, sign, first, rest = '', expText] = m;
  const exp = Number(expText);
  const digits = first + rest;
  if (exp < -4 || exp >= 16) {
    const e = Math.abs(exp);
    return `${sign}${first}${rest ? `.${rest}` : ''}e${exp < 0 ? '-' : '+'}${e < 10 ? `0${e}` : e}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
  const frac = digits.slice(exp + 1);
  return `${sign}${intPart}.${frac || '0'}`;
}

/** A JSON string as Python's json.dumps writes it (ensure_ascii: everything outside space..~ escaped). */
function pythonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ch = s[i];
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (c < 0x20 || c > 0x7e) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out + '"';
}

type FloatRule = 'float' | 'none';

function writeNumber(x: number, rule: FloatRule, where: string): string {
  if (!Number.isFinite(x)) return ''; // handled by the caller (written as {"__float__": ...})
  if (rule === 'float') return pythonFloat(x);
  if (Number.isInteger(x)) {
    if (!Number.isSafeInteger(x)) throw new RangeError(`stringifyConfigJson: ${where} is ${x}, an integer beyond 2^53 that JSON numbers do not keep exactly`);
    return String(x);
  }
  return pythonFloat(x);
}

function write(v: unknown, rule: FloatRule, keyRules: (key: string) => FloatRule, indent: string, where: string): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'string') return pythonString(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) {
      const tag = Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
      return write({ __float__: tag }, 'none', () => 'none', indent, where);
    }
    return writeNumber(v, rule, where);
  }
  const inner = `${indent}  `;
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    // a float field's list holds floats (time_step_limit, long_factor)
    const items = v.map((x, i) => inner + write(x, rule, keyRules, inner, `${where}[${i}]`));
    return `[\n${items.join(',\n')}\n${indent}]`;
  }
  if (typeof v === 'object') {
    const obj = v as Record<string, unknown>;
    const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
    if (keys.length === 0) return '{}';
    const items = keys.map((k) => {
      const childRules = k.startsWith('rope_') && obj[k] !== null && typeof obj[k] === 'object' && !Array.isArray(obj[k])
        ? (key: string): FloatRule => (ROPE_FLOAT_FIELDS.has(key) ? 'float' : 'none')
        : keyRules;
      return `${inner}${pythonString(k)}: ${write(obj[k], keyRules(k), childRules, inner, `${where}.${k}`)}`;
    });
    return `{\n${items.join(',\n')}\n${indent}}`;
  }
  throw new TypeError(`stringifyConfigJson: ${where} is a ${typeof v}, which JSON cannot hold`);
}

/**
 * `config` as HF's `save_pretrained` writes config.json: keys sorted, two-space indent, ASCII, floats with a
 * decimal point (`FLOAT_FIELDS`; any non-integer number anywhere), non-finite as `{"__float__": "Infinity"}`.
 * Re-serializing a config.json that transformers wrote gives the same bytes.
 */
export function stringifyConfigJson(config: RawConfig): string {
  const top = (key: string): FloatRule => (FLOAT_FIELDS.has(key) ? 'float' : 'none');
  return write(config, 'none', top, '', 'config') + '\n';
}
