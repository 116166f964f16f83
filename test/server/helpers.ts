/** Server tests: a tiny model folder with a tokenizer and a chat template, and a server over it on a free port. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, type LoadOptions } from '../../src/api/load.js';
import { serve, type MambaServer, type ServeOptions } from '../../src/server/http.js';
import { writeSmallTokenizer } from '../cli/cli-helpers.js';
import { hfFixture } from '../helpers.js';

/** ChatML, as many chat models' tokenizer_config.json have it */
export const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/**
 * A copy of a tiny fixture (`hf/<name>`) in a temporary folder with a 512-token byte-level BPE tokenizer and a
 * tokenizer_config.json holding a chat template. Removed by `cleanup`.
 */
export function chatModelDir(fixture: string, tmpRoot: string): string {
  const dir = path.join(tmpRoot, fixture);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ['config.json', 'generation_config.json', 'model.safetensors']) fs.copyFileSync(path.join(hfFixture(fixture), f), path.join(dir, f));
  writeSmallTokenizer(dir);
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|endoftext|>', chat_template: CHATML }));
  return dir;
}

export function tmpDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `mamba-ts-${label}-`));
}

/** load `dir` and serve it on 127.0.0.1, any free port */
export async function startServer(dir: string, load: LoadOptions = {}, opts: Omit<ServeOptions, 'model'> = {}): Promise<MambaServer> {
  const model = await loadModel(dir, load);
  return serve({ port: 0, ...opts, model });
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`${url}: response is not JSON (status ${res.status}): ${text.slice(0, 200)}`);
  }
  return { status: res.status, json, headers: res.headers };
}

/** a completion's generated token ids (greedy and no stop at eos unless `extra` says otherwise; undefined fields are left out) */
export async function completionIds(base: string, prompt: number[] | string, maxTokens: number | undefined, extra: Record<string, unknown> = {}): Promise<{ ids: number[]; body: Record<string, unknown> }> {
  const r = await postJson(`${base}/v1/completions`, { prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true, return_token_ids: true, ...extra });
  if (r.status !== 200) throw new Error(`completion failed: ${r.status} ${JSON.stringify(r.json)}`);
  const choice = (r.json.choices as Array<Record<string, unknown>>)[0];
  return { ids: choice.token_ids as number[], body: r.json };
}
