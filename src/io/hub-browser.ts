/**
 * A model from the Hugging Face hub in a browser: `hubFolder('org/name[@rev]')` is a `ModelFolder` whose files
 * are fetched from the hub (which serves them with CORS headers) and kept in the browser's Cache API, so a second
 * visit loads without the network. Files are cached under their commit-pinned URL
 * (`{endpoint}/{repo}/resolve/{commit}/{file}`, immutable); the revision → commit answer is cached too and used
 * when the hub cannot be reached. No Node module: browser-safe (also runs in Node ≥ 20 with a `cache` given).
 */
import { ModelError } from '../models/errors.js';
import { memorySource, readBody, type FetchResponse, type ModelFolder, type ReadProgress } from './model-folder.js';
import {
  DEFAULT_ENDPOINT, filesToFetch, hubRefName, parseHubRef, parseRevisionInfo, resolveUrl, revisionInfoUrl, type HubRef, type RevisionInfo,
} from './hub-names.js';

/** The part of the Cache API used here (`caches.open(name)`); tests pass their own. */
export interface CacheLike {
  match(url: string): Promise<FetchResponse | undefined>;
  put(url: string, res: unknown): Promise<void>;
}

export interface HubFolderOptions {
  /** the hub (default https://huggingface.co) */
  endpoint?: string;
  /** access token for private or gated repositories (sent as `Authorization: Bearer`) */
  token?: string;
  /** the Cache API cache to keep files in (default `caches.open('mamba-ts-hub')`); false = no caching */
  cache?: CacheLike | false;
  /** bytes of each file as it arrives */
  onProgress?: (p: ReadProgress) => void;
}

export const HUB_CACHE_NAME = 'mamba-ts-hub';

interface Host {
  fetch(url: string, init?: { headers?: Record<string, string> }): Promise<FetchResponse>;
  caches?: { open(name: string): Promise<CacheLike> };
  Response?: new (body: Uint8Array | string, init?: { status?: number; headers?: Record<string, string> }) => unknown;
}
const host = globalThis as unknown as Host;

/**
 * A hub model as a ModelFolder (for `loadModelFrom`). Online: asks the hub which commit the revision is at; offline:
 * uses the commit cached at the last visit. A GGUF file is not read through a folder: name it
 * (`org/name/file.gguf`) and read `folder.bytes(file)`.
 */
export async function hubFolder(name: string, opts: HubFolderOptions = {}): Promise<ModelFolder> {
  const ref = parseHubRef(name);
  if (!ref) throw new ModelError(`"${name}" is not a hub name: expected org/name or org/name@revision`);
  const endpoint = (opts.endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  const headers: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  const cache = opts.cache === false ? null : (opts.cache ?? (await openCache()));
  const label = hubRefName(ref);
  const info = await revisionInfo(ref, endpoint, headers, cache, label);
  const files = new Set(filesToFetch(ref, info, label));
  const url = (file: string) => resolveUrl(endpoint, ref.repo, info.sha, file);

  async function bytesOf(file: string, onProgress?: (p: ReadProgress) => void): Promise<Uint8Array | null> {
    if (!files.has(file)) return null;
    const u = url(file);
    const hit = cache ? await cache.match(u) : undefined;
    if (hit) {
      const b = await readBody(hit, file, onProgress);
      return b;
    }
    let res: FetchResponse;
    try {
      res = await host.fetch(u, { headers });
    } catch (e) {
      throw new ModelError(`${label}: cannot fetch ${file} from ${u} (${(e as Error).message}), and it is not in the browser's cache`);
    }
    if (!res.ok) throw new ModelError(`${label}: cannot fetch ${u}: HTTP ${res.status} ${res.statusText}`);
    const b = await readBody(res, file, onProgress ?? opts.onProgress);
    if (cache && host.Response) {
      try {
        await cache.put(u, new host.Response(b, { status: 200, headers: { 'content-type': 'application/octet-stream', 'content-length': String(b.byteLength) } }));
      } catch {
        // a full quota only costs the offline visit
      }
    }
    return b;
  }

  return {
    location: `${endpoint}/${ref.repo}@${info.sha.slice(0, 10)}`,
    label: (file) => `${label}/${file}`,
    async text(file) {
      const b = await bytesOf(file);
      return b === null ? null : new TextDecoder().decode(b);
    },
    async bytes(file, onProgress) {
      const b = await bytesOf(file, onProgress ?? opts.onProgress);
      return b === null ? null : memorySource(b);
    },
  };
}

async function openCache(): Promise<CacheLike | null> {
  try {
    return host.caches ? await host.caches.open(HUB_CACHE_NAME) : null;
  } catch {
    return null; // e.g. an insecure context: no caching
  }
}

/** revision → commit and files: from the hub (cached for later), or the cached answer when the hub is unreachable */
async function revisionInfo(ref: HubRef, endpoint: string, headers: Record<string, string>, cache: CacheLike | null, label: string): Promise<RevisionInfo> {
  const u = revisionInfoUrl(endpoint, ref.repo, ref.revision);
  let res: FetchResponse | null = null;
  let why = '';
  try {
    res = await host.fetch(u, { headers });
  } catch (e) {
    why = (e as Error).message;
  }
  if (res && res.ok) {
    const text = await res.text();
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new ModelError(`${label}: ${u}: the answer is not JSON (${(e as Error).message})`);
    }
    const info = parseRevisionInfo(v, u);
    if (cache && host.Response) {
      try {
        await cache.put(u, new host.Response(JSON.stringify({ sha: info.sha, siblings: info.files.map((rfilename) => ({ rfilename })) }), { headers: { 'content-type': 'application/json' } }));
      } catch {
        // no offline visit then
      }
    }
    return info;
  }
  if (res && (res.status === 401 || res.status === 403 || res.status === 404)) {
    throw new ModelError(`${label}: ${u}: HTTP ${res.status}: ${res.status === 404 ? 'no such repository or revision' : 'the repository is private or gated: give a token'}`);
  }
  const hit = cache ? await cache.match(u) : undefined;
  if (hit) return parseRevisionInfo(JSON.parse(await hit.text()), `${u} (cached)`);
  throw new ModelError(`${label}: cannot reach ${u} (${why || `HTTP ${res?.status}`}) and the model is not in this browser's cache`);
}
