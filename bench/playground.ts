/**
 * The browser playground (web/) as the tests and benchmarks drive it: built with Vite, served with model folders
 * from a local HTTP server (with COOP/COEP headers, so the page is cross-origin isolated and the wasm backend runs
 * on worker threads; without them under /nocoi/), opened in headless Chromium (Debian's /usr/bin/chromium, or
 * MAMBA_TS_CHROMIUM) through playwright-core.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WEB_DIST = path.join(ROOT, 'web', 'dist');
export const CHROMIUM = process.env.MAMBA_TS_CHROMIUM ?? '/usr/bin/chromium';

/** why Chromium cannot run here, or null */
export function missingBrowser(): string | null {
  if (!fs.existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (apt-get install chromium, or set MAMBA_TS_CHROMIUM)`;
  return null;
}

/** web/ → web/dist */
export async function buildPlayground(): Promise<void> {
  const vite = await import('vite');
  await vite.build({ configFile: path.join(ROOT, 'web', 'vite.config.ts'), logLevel: 'error' });
}

/** headless Chromium (software rendering; WebGPU allowed where the build has an adapter) */
export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--enable-unsafe-webgpu'] });
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
};

export interface StaticServer {
  server: http.Server;
  /** http://127.0.0.1:PORT */
  base: string;
  close(): Promise<void>;
}

/**
 * Static files: /models/NAME/… from `models[NAME]` (a folder), everything else from web/dist. Under /nocoi/ the
 * same files without the cross-origin isolation headers. Files are streamed (model weights may be ~0.5 GB).
 */
export function servePlayground(models: Record<string, string>): Promise<StaticServer> {
  const server = http.createServer((req, res) => {
    let url = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const isolated = !url.startsWith('/nocoi/');
    if (!isolated) url = url.slice('/nocoi'.length);
    let file: string | null = null;
    const m = /^\/models\/([^/]+)\/(.+)$/.exec(url);
    if (m && models[m[1]]) file = path.join(models[m[1]], m[2]);
    else if (!url.startsWith('/models/')) file = path.join(WEB_DIST, url.endsWith('/') ? `${url}index.html` : url);
    const root = m ? models[m[1]] : WEB_DIST;
    const headers: Record<string, string> = isolated
      ? { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' }
      : {};
    if (!file || path.relative(root ?? WEB_DIST, file).startsWith('..') || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, headers).end('not found');
      return;
    }
    const size = fs.statSync(file).size;
    res.writeHead(200, { ...headers, 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'Content-Length': size });
    if (req.method === 'HEAD') res.end();
    else fs.createReadStream(file).on('error', (e) => res.destroy(e)).pipe(res);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        server,
        base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () => new Promise((r) => server.close(() => r())),
      }),
    ),
  );
}

/** what the callbacks run in the page use (this file is compiled without the DOM library) */
interface StatusGlobals {
  document: { getElementById(id: string): { dataset: Record<string, string | undefined>; classList: { contains(c: string): boolean } } | null };
}

/**
 * Wait until the playground has loaded the model it was given (#status has data-loaded) or failed to (#status.error);
 * `backend` = the backend's name as the page reports it, or null when loading failed (`status` says why).
 */
export async function waitForModel(page: Page, timeout: number): Promise<{ backend: string | null; status: string }> {
  await page.waitForFunction(
    () => {
      const s = (globalThis as unknown as StatusGlobals).document.getElementById('status');
      return s?.dataset.loaded !== undefined || s?.classList.contains('error');
    },
    null,
    { timeout },
  );
  const status = (await page.textContent('#status')) ?? '';
  if (await page.$('#status.error')) return { backend: null, status };
  return { backend: (await page.getAttribute('#status', 'data-loaded')) ?? '', status };
}
