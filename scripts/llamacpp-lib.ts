/**
 * The pieces of scripts/llamacpp-check.ts that do not run llama.cpp (tested in test/io/llamacpp-lib.test.ts):
 * a byte-level BPE tokenizer cut down to a small model's vocabulary, the token ids of a llama.cpp session file,
 * and the llama-completion command line of a greedy run.
 */
import { isObject } from '../src/tokenizer/core.js';

/**
 * A byte-level BPE tokenizer.json cut to the ids below `vocab`: the tokens, the merges whose parts and result all
 * stay, the added tokens below `vocab`. Encoding with it is BPE over the same byte alphabet with fewer merges, so
 * every text still encodes (the 256 byte tokens must be among the kept ids).
 */
export function truncateBpeTokenizer(json: unknown, vocab: number, label = 'tokenizer.json'): Record<string, unknown> {
  if (!isObject(json) || !isObject(json.model) || json.model.type !== 'BPE' || !isObject(json.model.vocab)) {
    throw new Error(`${label}: expected a byte-level BPE tokenizer.json (model.type "BPE" with a vocab)`);
  }
  const model = json.model;
  const kept: Record<string, number> = {};
  for (const [t, id] of Object.entries(model.vocab as Record<string, number>)) if (id < vocab) kept[t] = id;
  const bytes = Object.keys(kept).filter((t) => [...t].length === 1).length;
  if (bytes < 256) throw new Error(`${label}: cut to ${vocab} tokens it keeps ${bytes} single-character tokens; byte-level BPE needs all 256 bytes`);
  const merges = (Array.isArray(model.merges) ? model.merges : []).filter((m: unknown) => {
    const [a, b] = Array.isArray(m) ? (m as string[]) : String(m).split(' ');
    return a in kept && b in kept && a + b in kept;
  });
  const added = (Array.isArray(json.added_tokens) ? json.added_tokens : []).filter((a: unknown) => isObject(a) && typeof a.id === 'number' && a.id < vocab);
  return { ...json, added_tokens: added, model: { ...model, vocab: kept, merges } };
}

/** LLAMA_SESSION_MAGIC ('ggsn') of llama.cpp's include/llama.h */
const SESSION_MAGIC = 0x6767736e;

/**
 * The token ids at the head of a llama.cpp session file (`--prompt-cache FILE --prompt-cache-all` writes the
 * prompt and every generated token): u32 magic "ggsn", u32 version, u32 count, count × i32, then the state.
 */
export function sessionTokens(bytes: Uint8Array, label = 'session file'): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 12) throw new Error(`${label}: ${bytes.byteLength} bytes, too short for a llama.cpp session header`);
  const magic = view.getUint32(0, true);
  if (magic !== SESSION_MAGIC) throw new Error(`${label}: magic 0x${magic.toString(16)}, expected 0x${SESSION_MAGIC.toString(16)} ("ggsn", a llama.cpp session file)`);
  const n = view.getUint32(8, true);
  if (12 + 4 * n > bytes.byteLength) throw new Error(`${label}: says ${n} tokens but holds ${Math.floor((bytes.byteLength - 12) / 4)}`);
  return Array.from({ length: n }, (_, i) => view.getInt32(12 + 4 * i, true));
}

/** the first index where the two lists differ (the shorter one's length when one is a prefix of the other), -1 when equal */
export function firstMismatch(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/**
 * llama-completion's arguments for `n` greedy tokens after `prompt`: temperature 0 (llama.cpp keeps only the top
 * logit) and top-k 1, end-of-text ignored, no chat template, no warm-up run, `threads` threads, the KV cache in f32
 * (llama.cpp's default is f16, which would round attention's keys and values where ours does not), the prompt and
 * generated ids saved to `session` (read back with `sessionTokens`).
 */
export function completionArgs(model: string, prompt: string, n: number, threads: number, session: string): string[] {
  return [
    '-m', model, '-p', prompt, '-n', String(n), '--temp', '0', '--top-k', '1', '--ignore-eos', '-no-cnv', '--no-warmup',
    '-t', String(threads), '-c', '512', '-ctk', 'f32', '-ctv', 'f32', '-s', '1', '--verbose-prompt', '--prompt-cache', session, '--prompt-cache-all',
  ];
}
