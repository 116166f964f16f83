/**
 * The Hugging Face hub cache on Node, laid out exactly as Python's `huggingface_hub` lays it out, so that models
 * downloaded by either are found by both:
 *
 *   $HF_HUB_CACHE (default $HF_HOME/hub, ~/.cache/huggingface/hub)
 *     models--org--name/
 *       blobs/<etag>                      file contents, named by etag (the sha256 for LFS files)
 *       blobs/<etag>.incomplete           a download in progress (continued with a Range request)
 *       refs/main                         the commit a branch or tag pointed at when last fetched
 *       snapshots/<commit>/config.json -> ../../blobs/<etag>
 *
 * `resolveCached` finds a model folder (a snapshot) for `org/name[@rev]` without the network;
 * `downloadModel` fetches what a model needs into that layout from `HF_ENDPOINT` (default huggingface.co), with
 * `HF_TOKEN`, progress, resumable downloads and sha256 checks of LFS files. `@huggingface/hub` has
 * `downloadFileToCacheDir`/`snapshotDownload`, but (2.17) they neither resume nor report progress, nor write refs/,
 * nor read HF_ENDPOINT, and large files may go through its Xet client; the file API used here is the one
 * huggingface_hub's `hf_hub_download` uses (HEAD …/resolve/<commit>/<file> for ETag + X-Repo-Commit, then GET).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { ModelError } from '../models/errors.js';
import { pidAlive } from '../train/checkpoint.js';
import type { ReadProgress } from './model-folder.js';
import {
  COMMIT_HASH, DEFAULT_ENDPOINT, filesToFetch, hubRefName, parseHubRef, parseRevisionInfo, resolveUrl, revisionInfoUrl, type HubRef,
} from './hub-names.js';

export { parseHubRef, hubRefName, type HubRef } from './hub-names.js';

/** A hub name that is not in the cache (offline), or a download that failed. */
export class HubError extends ModelError {}

/** The hub could not be reached at all (no network, wrong HF_ENDPOINT). */
export class HubUnreachableError extends HubError {}

type Env = Record<string, string | undefined>;

/** The hub cache folder: HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub (HF_HOME: $XDG_CACHE_HOME/huggingface, ~/.cache/huggingface). */
export function hubCacheDir(env: Env = process.env): string {
  const given = env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE;
  if (given) return expandHome(given);
  const home = env.HF_HOME ? expandHome(env.HF_HOME) : path.join(env.XDG_CACHE_HOME ? expandHome(env.XDG_CACHE_HOME) : path.join(os.homedir(), '.cache'), 'huggingface');
  return path.join(home, 'hub');
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

/** The token: HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else the file `huggingface-cli login` writes ($HF_TOKEN_PATH, $HF_HOME/token). */
export function hubToken(env: Env = process.env): string | null {
  const t = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN;
  if (t) return t.trim();
  const file = env.HF_TOKEN_PATH ? expandHome(env.HF_TOKEN_PATH) : path.join(path.dirname(hubCacheDir({ ...env, HF_HUB_CACHE: undefined, HUGGINGFACE_HUB_CACHE: undefined })), 'token');
  try {
    const s = fs.readFileSync(file, 'utf8').trim();
    return s || null;
  } catch {
    return null;
  }
}

/** models--org--name */
export function repoFolderName(repo: string): string {
  return `models--${repo.split('/').join('--')}`;
}

export interface CacheOptions {
  /** the cache folder (default `hubCacheDir()`) */
  cacheDir?: string;
}

/** Where `ref` would be in the cache, and what was found: the snapshot folder (or file), or why not. */
export interface CacheLookup {
  /** the snapshot folder, or the file for a file reference; null when not cached */
  path: string | null;
  commit: string | null;
  /** what was looked for, for messages ("…/refs/main (missing)") */
  lookedFor: string;
}

/** Find `ref` in the cache without the network. */
export function lookupCached(ref: HubRef, opts: CacheOptions = {}): CacheLookup {
  const storage = path.join(opts.cacheDir ?? hubCacheDir(), repoFolderName(ref.repo));
  let commit: string | null = null;
  let lookedFor: string;
  if (COMMIT_HASH.test(ref.revision)) {
    commit = ref.revision;
    lookedFor = path.join(storage, 'snapshots', commit);
  } else {
    const refFile = path.join(storage, 'refs', ref.revision);
    lookedFor = refFile;
    try {
      const c = fs.readFileSync(refFile, 'utf8').trim();
      if (!COMMIT_HASH.test(c)) throw new HubError(`${refFile}: expected a 40-hex commit, found ${JSON.stringify(c.slice(0, 60))}`);
      commit = c;
    } catch (e) {
      if (e instanceof HubError) throw e;
      return { path: null, commit: null, lookedFor: `${refFile} (missing)` };
    }
  }
  const snapshot = path.join(storage, 'snapshots', commit);
  const want = ref.file ? path.join(snapshot, ref.file) : path.join(snapshot, 'config.json');
  if (!fs.existsSync(want)) return { path: null, commit, lookedFor: `${want} (${lookedFor === snapshot ? 'missing' : `missing; ${path.basename(lookedFor)} → ${commit.slice(0, 10)}`})` };
  return { path: ref.file ? want : snapshot, commit, lookedFor };
}

/** `lookupCached`, or a HubError naming what was looked for and how to get it. */
export function resolveCached(ref: HubRef, opts: CacheOptions = {}): string {
  const found = lookupCached(ref, opts);
  if (found.path) return found.path;
  const name = hubRefName(ref);
  throw new HubError(
    `${name}: no such local folder, and not in the Hugging Face cache (looked for ${found.lookedFor}). ` +
      `Download it with \`mamba-ts download ${name}\` (or --download; loadModel: { download: true })` +
      `${process.env.HF_HUB_OFFLINE ? '; HF_HUB_OFFLINE is set, so nothing is fetched' : ''}`,
  );
}

export interface DownloadOptions extends CacheOptions {
  /** the hub (default HF_ENDPOINT, else https://huggingface.co) */
  endpoint?: string;
  /** access token (default HF_TOKEN / the saved login); sent as `Authorization: Bearer` to the hub */
  token?: string | null;
  /** bytes of each file as they arrive; `total` of a file is its size */
  onProgress?: (p: ReadProgress) => void;
  /** called once the sizes are known, before any byte is fetched */
  onStart?: (files: Array<{ file: string; size: number; cached: boolean }>) => void;
  signal?: AbortSignal;
  /** fetch (tests) */
  fetch?: typeof fetch;
}

export interface DownloadResult {
  /** the snapshot folder (or the file for a file reference) */
  path: string;
  commit: string;
  /** files fetched now (the others were in the cache) */
  fetched: string[];
  files: string[];
}

/**
 * Fetch what `ref` needs into the cache (files already there are not fetched again) and return the snapshot.
 * Online only: HF_HUB_OFFLINE=1 makes it a cache lookup.
 */
export async function downloadModel(ref: HubRef, opts: DownloadOptions = {}): Promise<DownloadResult> {
  if (process.env.HF_HUB_OFFLINE && process.env.HF_HUB_OFFLINE !== '0') {
    const p = resolveCached(ref, opts);
    return { path: p, commit: lookupCached(ref, opts).commit!, fetched: [], files: [] };
  }
  const endpoint = opts.endpoint ?? (process.env.HF_ENDPOINT || DEFAULT_ENDPOINT);
  const token = opts.token === undefined ? hubToken() : opts.token;
  const doFetch = opts.fetch ?? fetch;
  const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const name = hubRefName(ref);
  const storage = path.join(opts.cacheDir ?? hubCacheDir(), repoFolderName(ref.repo));

  const infoUrl = revisionInfoUrl(endpoint, ref.repo, ref.revision);
  const infoRes = await request(doFetch, infoUrl, { headers: auth, signal: opts.signal }, name);
  if (!infoRes.ok) throw new HubError(`${name}: ${infoUrl}: ${statusMessage(infoRes, token)}`);
  let infoJson: unknown;
  try {
    infoJson = await infoRes.json();
  } catch (e) {
    throw new HubError(`${name}: ${infoUrl}: the answer is not JSON (${(e as Error).message})`);
  }
  const info = parseRevisionInfo(infoJson, infoUrl);
  const commit = info.sha;
  const files = filesToFetch(ref, info, name);
  const snapshot = path.join(storage, 'snapshots', commit);

  // the size and etag of every file first (HEAD), so progress knows the total
  const plan: Array<{ file: string; etag: string; size: number; cached: boolean; url: string }> = [];
  for (const file of files) {
    const pointer = path.join(snapshot, file);
    if (fs.existsSync(pointer)) {
      plan.push({ file, etag: '', size: fs.statSync(pointer).size, cached: true, url: '' });
      continue;
    }
    const url = resolveUrl(endpoint, ref.repo, commit, file);
    const meta = await fileMetadata(doFetch, url, auth, opts.signal, name, token);
    if (meta.commit && meta.commit !== commit) throw new HubError(`${name}: ${url} answered for commit ${meta.commit}, expected ${commit}`);
    const cached = fs.existsSync(path.join(storage, 'blobs', meta.etag));
    plan.push({ file, etag: meta.etag, size: meta.size, cached, url });
  }
  opts.onStart?.(plan.map(({ file, size, cached }) => ({ file, size, cached })));

  const fetched: string[] = [];
  for (const p of plan) {
    const pointer = path.join(snapshot, p.file);
    if (p.etag === '') continue; // already in the snapshot
    const blob = path.join(storage, 'blobs', p.etag);
    if (!p.cached) {
      const release = lockBlob(blob, `${name}: ${p.file}`);
      try {
        // another process may have finished it while this one waited for the HEADs
        if (!fs.existsSync(blob)) {
          await fetchBlob(doFetch, p.url, blob, p.file, p.size, p.etag, auth, opts, `${name}: ${p.file}`);
          fetched.push(p.file);
        }
      } finally {
        release();
      }
    }
    linkPointer(blob, pointer);
  }
  if (ref.revision !== commit) writeAtomic(path.join(storage, 'refs', ref.revision), commit);
  return { path: ref.file ? path.join(snapshot, ref.file) : snapshot, commit, fetched, files };
}

async function request(doFetch: typeof fetch, url: string, init: RequestInit, name: string): Promise<Response> {
  try {
    return await doFetch(url, init);
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    const cause = (e as { cause?: { message?: string; code?: string } }).cause;
    throw new HubUnreachableError(`${name}: cannot reach ${url} (${cause?.code ?? cause?.message ?? (e as Error).message}); offline? Models already downloaded load without --download`);
  }
}

function statusMessage(res: Response, token: string | null): string {
  if (res.status === 401 || res.status === 403) {
    return `HTTP ${res.status}: ${token ? 'the token (HF_TOKEN) has no access to this repository' : 'the repository is private or gated: set HF_TOKEN to a token with access'}`;
  }
  if (res.status === 404) return 'HTTP 404: no such repository or revision';
  return `HTTP ${res.status} ${res.statusText}`;
}

/** ETag ("W/" and quotes dropped) */
function normalizeEtag(e: string | null): string | null {
  if (!e) return null;
  return e.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

/**
 * HEAD the file: an LFS file answers with a redirect to the CDN whose headers carry X-Linked-Etag (its sha256)
 * and X-Linked-Size; a relative redirect (a renamed repository) is followed, an absolute one is not.
 */
async function fileMetadata(
  doFetch: typeof fetch, url: string, auth: Record<string, string>, signal: AbortSignal | undefined, name: string, token: string | null,
): Promise<{ etag: string; size: number; commit: string | null }> {
  let current = url;
  for (let hops = 0; hops < 5; hops++) {
    const res = await request(doFetch, current, { method: 'HEAD', headers: { ...auth, 'accept-encoding': 'identity' }, redirect: 'manual', signal }, name);
    const h = res.headers;
    const location = h.get('location');
    if (res.status >= 300 && res.status < 400 && location && location.startsWith('/')) {
      current = new URL(location, current).toString();
      continue;
    }
    if (!(res.ok || (res.status >= 300 && res.status < 400))) throw new HubError(`${name}: HEAD ${current}: ${statusMessage(res, token)}`);
    const etag = normalizeEtag(h.get('x-linked-etag') ?? h.get('etag'));
    if (!etag || !/^[A-Za-z0-9._-]+$/.test(etag)) throw new HubError(`${name}: HEAD ${current}: no usable ETag header (got ${JSON.stringify(etag)}); is HF_ENDPOINT a Hugging Face hub?`);
    const size = Number(h.get('x-linked-size') ?? h.get('content-length'));
    if (!Number.isSafeInteger(size) || size < 0) throw new HubError(`${name}: HEAD ${current}: no file size (X-Linked-Size / Content-Length)`);
    return { etag, size, commit: h.get('x-repo-commit') };
  }
  throw new HubError(`${name}: HEAD ${url}: too many redirects`);
}

/**
 * GET `url` into `blob`: bytes go to `blob.incomplete`, continued from where an earlier attempt stopped (Range);
 * the size and, for an LFS file (64-hex etag), the sha256 are checked before the rename to `blob`.
 */
async function fetchBlob(
  doFetch: typeof fetch, url: string, blob: string, file: string, size: number, etag: string, auth: Record<string, string>, opts: DownloadOptions, label: string,
): Promise<void> {
  fs.mkdirSync(path.dirname(blob), { recursive: true });
  const incomplete = `${blob}.incomplete`;
  let have = 0;
  try {
    have = fs.statSync(incomplete).size;
  } catch {
    have = 0;
  }
  if (have > size) {
    fs.rmSync(incomplete, { force: true });
    have = 0;
  }
  const headers: Record<string, string> = { ...auth, 'accept-encoding': 'identity' };
  if (have > 0) headers.range = `bytes=${have}-`;
  const res = await getFollowing(doFetch, url, headers, opts.signal, label);
  if (res.status === 416 && have === size) {
    // the partial file is whole already
  } else if (res.status === 206 && have > 0) {
    const m = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
    if (!m || Number(m[1]) !== have) throw new HubError(`${label}: GET ${url}: asked for bytes ${have}- and got Content-Range ${JSON.stringify(res.headers.get('content-range'))}`);
  } else if (res.status === 200) {
    have = 0; // the server sent the whole file: start over
  } else {
    throw new HubError(`${label}: GET ${url}: ${statusMessage(res, headers.authorization ? 'set' : null)}`);
  }

  const sha = /^[0-9a-f]{64}$/.test(etag) ? createHash('sha256') : null;
  if (sha && have > 0) {
    // the bytes already there count toward the hash
    const fd = fs.openSync(incomplete, 'r');
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (let off = 0; off < have; ) {
        const n = fs.readSync(fd, buf, 0, Math.min(buf.length, have - off), off);
        if (n <= 0) break;
        sha.update(buf.subarray(0, n));
        off += n;
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  let loaded = have;
  opts.onProgress?.({ file, loaded, total: size });
  if (res.status !== 416 && res.body) {
    const fd = fs.openSync(incomplete, have > 0 ? 'a' : 'w');
    try {
      const reader = res.body.getReader();
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (e) {
          if ((e as Error).name === 'AbortError') throw e;
          const cause = (e as { cause?: { code?: string; message?: string } }).cause;
          throw new HubError(`${label}: GET ${url}: the connection dropped at ${loaded} of ${size} bytes (${cause?.code ?? cause?.message ?? (e as Error).message}); run again to continue the download`);
        }
        const { done, value } = chunk;
        if (done) break;
        if (loaded + value.byteLength > size) throw new HubError(`${label}: GET ${url}: more than the ${size} bytes announced`);
        writeAll(fd, value);
        sha?.update(value);
        loaded += value.byteLength;
        opts.onProgress?.({ file, loaded, total: size });
      }
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
  if (loaded !== size) throw new HubError(`${label}: GET ${url}: the download stopped at ${loaded} of ${size} bytes (run again to continue it)`);
  if (sha) {
    const digest = sha.digest('hex');
    if (digest !== etag) {
      fs.rmSync(incomplete, { force: true });
      throw new HubError(`${label}: GET ${url}: sha256 ${digest} does not match the hub's ${etag}; the partial file was removed, run again`);
    }
  }
  fs.renameSync(incomplete, blob);
}

/**
 * One download of a blob at a time: `<blob>.incomplete.lock` holds the downloading process's id (created with O_EXCL;
 * a lock whose process is gone is taken over). Returns the release function.
 */
function lockBlob(blob: string, label: string): () => void {
  const lock = `${blob}.incomplete.lock`;
  fs.mkdirSync(path.dirname(blob), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      return () => fs.rmSync(lock, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(fs.readFileSync(lock, 'utf8').trim());
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
        throw new HubError(`${label}: another download of this file is running (process ${pid}, lock ${lock}); wait for it, or remove the lock if that process is not a download`);
      }
      fs.rmSync(lock, { force: true }); // left by a process that died
    }
  }
  throw new HubError(`${label}: cannot take the download lock ${lock}`);
}

/** GET following redirects by hand: the token goes to the hub only, never to another origin (the CDN's signed URLs) */
async function getFollowing(doFetch: typeof fetch, url: string, headers: Record<string, string>, signal: AbortSignal | undefined, label: string): Promise<Response> {
  let current = url;
  let h = headers;
  for (let hops = 0; hops < 10; hops++) {
    const res = await request(doFetch, current, { headers: h, signal, redirect: 'manual' }, label);
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || !location) return res;
    const next = new URL(location, current);
    if (next.origin !== new URL(current).origin) {
      const { authorization: _drop, ...rest } = h;
      h = rest;
    }
    current = next.toString();
  }
  throw new HubError(`${label}: GET ${url}: too many redirects`);
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.byteLength; ) off += fs.writeSync(fd, bytes, off, bytes.byteLength - off);
}

/** snapshots/<commit>/<file> → ../../blobs/<etag> (relative, as huggingface_hub links; a copy where links are not allowed) */
function linkPointer(blob: string, pointer: string): void {
  fs.mkdirSync(path.dirname(pointer), { recursive: true });
  const rel = path.relative(path.dirname(pointer), blob);
  const tmp = `${pointer}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    fs.symlinkSync(rel, tmp);
  } catch {
    fs.copyFileSync(blob, tmp);
  }
  fs.renameSync(tmp, pointer);
}

function writeAtomic(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

export interface ResolveModelOptions extends DownloadOptions {
  /** fetch what is missing (or newer on the branch) from the hub; default false: the cache only */
  download?: boolean;
  /** a hub name even where a local path of that name exists (`mamba-ts download`) */
  forceHub?: boolean;
}

/**
 * A `--model` / `loadModel` argument as a local path: an existing path as given (it always wins), else a hub name
 * `org/name[@rev][/file.gguf]` from the cache (or, with `download`, fetched into it). Anything else is returned
 * unchanged, for the loader to report.
 */
export async function resolveModelPath(spec: string, opts: ResolveModelOptions = {}): Promise<string> {
  if (!opts.forceHub && fs.existsSync(spec)) return spec;
  const ref = parseHubRef(spec);
  if (!ref) return spec;
  if (!opts.download) return resolveCached(ref, opts);
  try {
    return (await downloadModel(ref, opts)).path;
  } catch (e) {
    // offline with the model cached: use the cache, as huggingface_hub does
    const cached = e instanceof HubUnreachableError ? lookupCached(ref, opts).path : null;
    if (cached) return cached;
    throw e;
  }
}

/** `resolveModelPath` without downloads (synchronous: for `train --from`). */
export function resolveModelPathSync(spec: string, opts: CacheOptions = {}): string {
  if (fs.existsSync(spec)) return spec;
  const ref = parseHubRef(spec);
  return ref ? resolveCached(ref, opts) : spec;
}
