/**
 * A local HTTP server that speaks the Hugging Face hub's file API as huggingface_hub expects it (for tests; no
 * network):
 *
 *   GET  /api/models/{org}/{name}/revision/{rev}    → { sha, siblings: [{ rfilename }] }
 *   HEAD /{org}/{name}/resolve/{rev}/{file}         → 200 with ETag (git sha1) + X-Repo-Commit for small files;
 *                                                    302 to /cdn/{sha256} with X-Linked-Etag / X-Linked-Size for
 *                                                    LFS files (*.safetensors, *.gguf)
 *   GET  the same                                   → the bytes (following the redirect), Range → 206
 *   /{old}/{name}/…                                 → 307 to the renamed repository (a relative redirect)
 *
 * Every response carries CORS headers (the browser playground fetches from it). A repository may require a
 * token; `cutNext(sha256, bytes)` makes the next GET of that blob stop after `bytes` bytes (a dropped connection).
 */
import * as http from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export interface FakeRepo {
  files: Record<string, Uint8Array>;
  /** branch or tag → commit (40 hex); "main" is required */
  refs: Record<string, string>;
  /** a token the repository requires (401 without it, 403 with another) */
  token?: string;
  /** renamed from this name (requests to it are redirected) */
  oldName?: string;
}

export interface RequestLog {
  method: string;
  path: string;
  range: string | null;
  authorization: string | null;
}

export interface FakeHub {
  url: string;
  requests: RequestLog[];
  /** the next GET of this blob sends only `bytes` bytes, then drops the connection */
  cutNext(sha256: string, bytes: number): void;
  /** the next GET of this blob sends other bytes of the same length */
  corruptNext(sha256: string): void;
  close(): Promise<void>;
}

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
/** the git blob id, which the hub sends as the ETag of a file not in LFS */
export const gitSha1 = (b: Uint8Array): string => createHash('sha1').update(`blob ${b.byteLength}\0`).update(b).digest('hex');
const isLfs = (file: string): boolean => file.endsWith('.safetensors') || file.endsWith('.gguf');

const CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-headers': 'authorization, range',
  'access-control-expose-headers': 'etag, x-repo-commit, x-linked-etag, x-linked-size, content-range, content-length, location',
};

export function startFakeHub(repos: Record<string, FakeRepo>): Promise<FakeHub> {
  const requests: RequestLog[] = [];
  const cuts = new Map<string, number>();
  const corrupt = new Set<string>();
  const blobs = new Map<string, Uint8Array>();
  for (const r of Object.values(repos)) for (const [f, b] of Object.entries(r.files)) if (isLfs(f)) blobs.set(sha256(b), b);

  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const p = decodeURIComponent(u.pathname);
    requests.push({ method: req.method ?? 'GET', path: p, range: req.headers.range ?? null, authorization: req.headers.authorization ?? null });
    const send = (status: number, headers: Record<string, string | number>, body?: Uint8Array | string): void => {
      res.writeHead(status, { ...CORS, ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method === 'OPTIONS') return send(204, {});

    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(p);
    if (cdn) {
      const blob = blobs.get(cdn[1]);
      if (!blob) return send(404, {}, 'no such blob');
      return sendBytes(req, res, blob, cdn[1]);
    }

    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(p);
    const file = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(p);
    const repoName = api?.[1] ?? file?.[1];
    if (!repoName) return send(404, {}, 'not found');
    const renamed = Object.entries(repos).find(([, r]) => r.oldName === repoName);
    if (renamed) return send(307, { location: p.replace(repoName, renamed[0]) });
    const repo = repos[repoName];
    if (!repo) return send(404, { 'x-error-code': 'RepoNotFound' }, 'Repository not found');
    if (repo.token) {
      const auth = req.headers.authorization;
      if (!auth) return send(401, {}, 'token required');
      if (auth !== `Bearer ${repo.token}`) return send(403, {}, 'no access');
    }
    const rev = (api?.[2] ?? file![2]);
    const commit = /^[0-9a-f]{40}$/.test(rev) && Object.values(repo.refs).includes(rev) ? rev : repo.refs[rev];
    if (!commit) return send(404, { 'x-error-code': 'RevisionNotFound' }, 'Invalid rev id');
    if (api) {
      const body = JSON.stringify({ id: repoName, sha: commit, siblings: Object.keys(repo.files).map((rfilename) => ({ rfilename })) });
      return send(200, { 'content-type': 'application/json' }, body);
    }
    const name = file![3];
    const bytes = repo.files[name];
    if (!bytes) return send(404, { 'x-error-code': 'EntryNotFound' }, 'Entry not found');
    if (isLfs(name)) {
      const h = sha256(bytes);
      return send(302, {
        // the CDN on another origin (localhost rather than 127.0.0.1): the token must not follow there
        location: `http://localhost:${(server.address() as AddressInfo).port}/cdn/${h}`,
        'x-repo-commit': commit,
        'x-linked-etag': `"${h}"`,
        'x-linked-size': bytes.byteLength,
        etag: `"${gitSha1(new TextEncoder().encode(`lfs pointer ${h}`))}"`,
        'content-length': 0,
      });
    }
    res.setHeader('x-repo-commit', commit);
    res.setHeader('etag', `"${gitSha1(bytes)}"`);
    return sendBytes(req, res, bytes, null);
  });

  function sendBytes(req: http.IncomingMessage, res: http.ServerResponse, bytes: Uint8Array, key: string | null): void {
    const headers: Record<string, string | number> = { ...CORS, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) {
      start = Number(range[1]);
      if (start >= bytes.byteLength) {
        res.writeHead(416, { ...headers, 'content-range': `bytes */${bytes.byteLength}` }).end();
        return;
      }
    }
    let body = bytes.subarray(start);
    if (req.method === 'GET' && key && corrupt.delete(key)) body = body.map((x) => x ^ 0xff);
    const status = range ? 206 : 200;
    if (range) headers['content-range'] = `bytes ${start}-${bytes.byteLength - 1}/${bytes.byteLength}`;
    headers['content-length'] = body.byteLength;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') return void res.end();
    const cut = key !== null ? cuts.get(key) : undefined;
    if (cut !== undefined) {
      cuts.delete(key!);
      res.write(body.subarray(0, cut), () => setTimeout(() => res.destroy(), 20));
      return;
    }
    res.end(body);
  }

  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      resolve({
        url,
        requests,
        cutNext: (h, n) => void cuts.set(h, n),
        corruptNext: (h) => void corrupt.add(h),
        close: () => new Promise<void>((r) => {
          server.closeAllConnections?.();
          server.close(() => r());
        }),
      });
    });
  });
}
