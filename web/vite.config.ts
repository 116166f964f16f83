/**
 * Vite config of the playground (`npm run build:web` → web/dist). The page imports the library from
 * ../src (TypeScript sources); two plugins make that a browser build:
 * - the wasm runtime's host module `platform.ts` (Node: fs, worker_threads) becomes `platform.browser.ts`
 *   (fetch, Web Workers), as package.json's "browser" field says for the compiled library;
 * - any Node built-in reached from the page fails the build, so the bundle provably has none.
 * The dev server and `vite preview` send COOP/COEP headers: the page is cross-origin isolated, so the wasm
 * backend can run on worker threads (SharedArrayBuffer).
 */
import { builtinModules } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, defineConfig, type Plugin } from 'vite';

const webDir = path.dirname(fileURLToPath(import.meta.url));
const wasmDir = path.resolve(webDir, '../src/backend/wasm');

function browserPlatform(): Plugin {
  return {
    name: 'mamba-ts:browser-platform',
    enforce: 'pre',
    resolveId(source, importer) {
      if (source === './platform.js' && importer && path.dirname(importer) === wasmDir) return path.join(wasmDir, 'platform.browser.ts');
      return null;
    },
  };
}

function noNodeBuiltins(): Plugin {
  const builtins = new Set(builtinModules);
  return {
    name: 'mamba-ts:no-node-builtins',
    enforce: 'pre',
    resolveId(source, importer) {
      const bare = source.startsWith('node:') ? source.slice(5) : source;
      if (source.startsWith('node:') || builtins.has(bare.split('/')[0])) {
        this.error(`${importer ?? '?'} imports the Node module "${source}"; the browser bundle must not contain Node modules`);
      }
      return null;
    },
  };
}

// The library's default kernels URL (next to dist/ of an installed package) does not exist in the sources;
// the playground passes its own (a `?url` asset), so that warning is noise here.
const logger = createLogger('warn');
const warnOnce = logger.warnOnce.bind(logger);
logger.warnOnce = (msg, options) => {
  if (!(msg.includes('wasm/kernels.wasm') && msg.includes("doesn't exist at build time"))) warnOnce(msg, options);
};

const isolation = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

export default defineConfig({
  root: webDir,
  base: './',
  logLevel: 'warn',
  customLogger: logger,
  plugins: [browserPlatform(), noNodeBuiltins()],
  // keepNames: errors' `name` is their class's (MambaTsError), shown by the worker; minifying must not rename classes
  worker: { format: 'es', plugins: () => [browserPlatform(), noNodeBuiltins()], rolldownOptions: { output: { keepNames: true } } },
  build: { outDir: path.join(webDir, 'dist'), emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 2000, rolldownOptions: { output: { keepNames: true } } },
  server: { headers: isolation, fs: { allow: [path.resolve(webDir, '..')] } },
  preview: { headers: isolation },
});
