/**
 * Hugging Face hub names and URLs, shared by the Node cache/downloader (hub.ts) and the browser loader
 * (hub-browser.ts). No I/O: browser-safe.
 *
 *   org/name            the branch "main"
 *   org/name@rev        a branch, tag or 40-hex commit
 *   org/name/file.gguf  one file of the repository (GGUF files are fetched only when named)
 *   org/name@rev/file.gguf
 */
import { ModelError } from '../models/errors.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
export const DEFAULT_REVISION = 'main';

/** A hub reference: repository, revision, and optionally one file of it. */
export interface HubRef {
  /** "org/name" */
  repo: string;
  /** branch, tag or commit (default "main") */
  revision: string;
  /** a file inside the repository (e.g. "model-q8_0.gguf"), or null for the model folder */
  file: string | null;
}

const PART = '[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_-])?';
const HUB_NAME = new RegExp(`^(${PART})/(${PART})(?:@([A-Za-z0-9._-]+))?(?:/([A-Za-z0-9._/-]+\\.gguf))?$`);

export const COMMIT_HASH = /^[0-9a-f]{40}$/;

/**
 * `spec` as a hub reference, or null when it does not look like one (a path such as "./x", "/a/b", "a/b/c",
 * "C:\\models"). Callers check first that no local path of that name exists: a local folder always wins.
 */
export function parseHubRef(spec: string): HubRef | null {
  const m = HUB_NAME.exec(spec);
  if (!m) return null;
  const [, org, name, revision, file] = m;
  if (org.includes('..') || name.includes('..') || (file !== undefined && file.split('/').some((p) => p === '..' || p === '.' || p === ''))) return null;
  return { repo: `${org}/${name}`, revision: revision ?? DEFAULT_REVISION, file: file ?? null };
}

/** "org/name@rev" as typed (the revision left out when it is main). */
export function hubRefName(ref: HubRef): string {
  return `${ref.repo}${ref.revision === DEFAULT_REVISION ? '' : `@${ref.revision}`}${ref.file ? `/${ref.file}` : ''}`;
}

/** The files of a repository a model needs: config, weights (+ index), tokenizer, generation config. */
export const MODEL_FILES: readonly string[] = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'model.safetensors',
  'model.safetensors.index.json',
];

/** Whether a repository file (`rfilename`) may be one a model folder needs: MODEL_FILES and top-level *.safetensors (shards). */
export function isModelFile(name: string): boolean {
  return MODEL_FILES.includes(name) || (!name.includes('/') && name.endsWith('.safetensors'));
}

/** `{endpoint}/{repo}/resolve/{revision}/{file}`: the file API (redirects to the CDN for large files). */
export function resolveUrl(endpoint: string, repo: string, revision: string, file: string): string {
  return `${trimEndpoint(endpoint)}/${repo}/resolve/${encodeURIComponent(revision)}/${file.split('/').map(encodeURIComponent).join('/')}`;
}

/** `{endpoint}/api/models/{repo}/revision/{revision}`: the commit a revision points at and the files there. */
export function revisionInfoUrl(endpoint: string, repo: string, revision: string): string {
  return `${trimEndpoint(endpoint)}/api/models/${repo}/revision/${encodeURIComponent(revision)}`;
}

function trimEndpoint(endpoint: string): string {
  return endpoint.replace(/\/+$/, '');
}

/** What `/api/models/{repo}/revision/{rev}` answers that the downloaders use. */
export interface RevisionInfo {
  /** the commit */
  sha: string;
  /** file names at that commit */
  files: string[];
}

/** Validate the JSON of a revision-info answer; errors name the URL. */
export function parseRevisionInfo(v: unknown, url: string): RevisionInfo {
  const o = v as { sha?: unknown; siblings?: unknown } | null;
  if (typeof o !== 'object' || o === null) throw new ModelError(`${url}: expected a JSON object with "sha" and "siblings"`);
  if (typeof o.sha !== 'string' || !COMMIT_HASH.test(o.sha)) throw new ModelError(`${url}: field "sha" is ${JSON.stringify(o.sha)}; expected a 40-hex commit`);
  if (!Array.isArray(o.siblings)) throw new ModelError(`${url}: field "siblings" is missing; expected a list of { "rfilename": ... }`);
  const files: string[] = [];
  for (const s of o.siblings as unknown[]) {
    const name = (s as { rfilename?: unknown } | null)?.rfilename;
    if (typeof name !== 'string' || name === '') throw new ModelError(`${url}: a sibling has no "rfilename"`);
    if (name.startsWith('/') || name.split('/').some((p) => p === '..' || p === '.')) throw new ModelError(`${url}: sibling "${name}" is not a file inside the repository`);
    files.push(name);
  }
  return { sha: o.sha, files };
}

/**
 * The files to fetch for `ref` from a repository listing: the model files, or the one file named (which must
 * be there). Errors name the repository and what it holds.
 */
export function filesToFetch(ref: HubRef, info: RevisionInfo, label: string): string[] {
  if (ref.file) {
    if (!info.files.includes(ref.file)) {
      const ggufs = info.files.filter((f) => f.endsWith('.gguf'));
      throw new ModelError(`${label}: no file "${ref.file}" at ${ref.revision} (${info.sha.slice(0, 10)}); ${ggufs.length ? `GGUF files there: ${ggufs.join(', ')}` : 'it has no .gguf files'}`);
    }
    return [ref.file];
  }
  let files = info.files.filter(isModelFile);
  // model.safetensors is what the loader reads when it is there: not the shards or other weights beside it
  if (files.includes('model.safetensors')) files = files.filter((f) => !f.endsWith('.safetensors') || f === 'model.safetensors').filter((f) => f !== 'model.safetensors.index.json');
  if (!files.includes('config.json')) throw new ModelError(`${label}: the repository has no config.json at ${ref.revision} (files: ${info.files.slice(0, 20).join(', ')}${info.files.length > 20 ? ', …' : ''})`);
  if (!files.some((f) => f.endsWith('.safetensors'))) {
    const ggufs = info.files.filter((f) => f.endsWith('.gguf'));
    throw new ModelError(`${label}: the repository has no *.safetensors weights at ${ref.revision}${ggufs.length ? `; it has GGUF files: name one, e.g. ${ref.repo}/${ggufs[0]}` : ''}`);
  }
  return files;
}
