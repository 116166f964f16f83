/**
 * The package as users install it: `npm ci` / `npm install` in a clone (and `npm install <git url>`) build it
 * through the `prepare` script, so `npx mamba-ts` works without a separate build; the bin exists after a build;
 * and the published file list (`npm pack --dry-run`) holds every file the CLI loads at run time — every module
 * it imports, kernels.wasm, worker scripts — while every package it imports is a (runtime) dependency.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { builtinModules } from 'node:module';
import * as path from 'node:path';
import { ROOT } from '../helpers.js';

interface PackageJson {
  bin: Record<string, string>;
  files: string[];
  scripts: Record<string, string>;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as PackageJson;

/** `npm pack --dry-run --json`: the files a tarball (and so a registry or `npm install -g` of it) holds */
function packedFiles(): Set<string> {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `npm pack --dry-run failed: ${r.error?.message ?? r.stderr}`);
  const out = JSON.parse(r.stdout) as Array<{ files: Array<{ path: string }> }>;
  return new Set(out[0].files.map((f) => f.path));
}

/**
 * Every file the module graph from `entry` reaches at run time (static and literal dynamic imports, `new URL('…',
 * import.meta.url)` files such as kernels.wasm and worker scripts), as paths relative to ROOT, and the bare package
 * names it imports.
 */
function runtimeGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [path.resolve(ROOT, entry)];
  // tsc writes one import/export statement per line; dynamic imports and URLs with literal specifiers anywhere
  const specifiers = [
    /^\s*(?:import|export)\b[^;'"]*?\bfrom\s*(['"])([^'"\n]+)\1/gm,
    /^\s*import\s*(['"])([^'"\n]+)\1/gm,
    /\bimport\(\s*(['"])([^'"\n]+)\1\s*\)/g,
    /\bnew URL\(\s*(['"])([^'"\n]+)\1\s*,\s*import\.meta\.url\s*\)/g,
  ];
  while (queue.length > 0) {
    const file = queue.pop()!;
    const rel = path.relative(ROOT, file).split(path.sep).join('/');
    if (files.has(rel)) continue;
    files.add(rel);
    if (!file.endsWith('.js')) continue;
    const text = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|^\s*\/\/.*$/gm, '');
    for (const m of specifiers.flatMap((re) => [...text.matchAll(re)])) {
      const spec = m[2];
      if (spec.startsWith('.')) {
        const target = path.resolve(path.dirname(file), spec);
        // a folder (e.g. the package's own src/, looked for with a fallback) is not a file to ship
        if (fs.existsSync(target) && fs.statSync(target).isDirectory()) continue;
        queue.push(target);
      } else if (!spec.startsWith('node:') && !builtinModules.includes(spec)) {
        packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
      }
    }
  }
  return { files, packages };
}

describe('the package as installed', () => {
  it('npm ci / npm install build it: a prepare script runs the build', () => {
    assert.ok(pkg.scripts.prepare, 'package.json has a "prepare" script');
    assert.match(pkg.scripts.prepare, /\bnpm run build\b/);
  });

  const [name, target] = Object.entries(pkg.bin)[0];
  it(`the bin (${name} → ${target}) exists after the build and is a node script`, () => {
    assert.equal(name, 'mamba-ts');
    const file = path.join(ROOT, target);
    assert.ok(fs.existsSync(file), `${target} exists`);
    assert.match(fs.readFileSync(file, 'utf8'), /^#!\/usr\/bin\/env node\n/);
    // `npx mamba-ts` in the clone runs this file itself (no install links it, so nothing else marks it executable)
    if (process.platform !== 'win32') assert.ok(fs.statSync(file).mode & 0o111, `${target} is executable`);
  });

  it('npm pack holds every file the CLI loads at run time; the packages it imports are dependencies', () => {
    const { files, packages } = runtimeGraph(target);
    assert.ok(files.has('dist/wasm/kernels.wasm'), 'the walk finds kernels.wasm (new URL(…, import.meta.url))');
    assert.ok(files.has('dist/src/backend/wasm/worker.js'), 'the walk finds the wasm worker script');
    assert.ok(files.has('dist/src/train/train-worker.js'), 'the walk finds the training worker script');
    assert.ok(files.size > 50, `the walk follows imports (${files.size} files)`);
    for (const f of files) assert.ok(fs.existsSync(path.join(ROOT, f)), `${f} exists after the build`);

    const packed = packedFiles();
    const missing = [...files].filter((f) => !packed.has(f));
    assert.deepEqual(missing, [], `files the CLI loads but npm pack leaves out (package.json "files": ${JSON.stringify(pkg.files)})`);
    assert.ok(packed.has('package.json') && packed.has('README.md'));

    const deps = { ...pkg.dependencies, ...pkg.optionalDependencies, ...pkg.peerDependencies };
    const undeclared = [...packages].filter((p) => !(p in deps));
    assert.deepEqual(undeclared, [], 'packages the CLI imports that are not runtime dependencies');
  });
});
