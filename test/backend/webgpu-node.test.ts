/**
 * The `webgpu` package (Dawn) in Node without a desktop session: Mesa's Vulkan device-select layer asks Wayland
 * for the display's GPU, and libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set in the environment."
 * (twice per instance) when the variable is unset or not an absolute path. createWebGpuBackend points it at the
 * temporary folder first, and leaves a valid one alone. Each case runs in a child process (the environment is
 * the process's), with or without an adapter.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ENTRY = pathToFileURL(path.resolve(HERE, '../../src/backend/webgpu/index.js')).href;
const CLI = path.resolve(HERE, '../../src/cli/main.js');
const TINY = path.resolve(HERE, '../../../test/fixtures/hf/mamba-tiny');

function webgpuPackage(): string | null {
  try {
    createRequire(import.meta.url).resolve('webgpu');
    return null;
  } catch (e) {
    return `the optional "webgpu" package is not installed (${(e as Error).message.split('\n')[0]})`;
  }
}
const skip = webgpuPackage() ?? false;

/** run createWebGpuBackend in a child with XDG_RUNTIME_DIR set to `xdg` (undefined = unset) */
function child(xdg: string | undefined): { env: string | null; outcome: string; stderr: string } {
  const script = `
    const { createWebGpuBackend } = await import(${JSON.stringify(ENTRY)});
    let outcome = 'adapter';
    try { await createWebGpuBackend(); } catch (e) { outcome = e.name; }
    process.stdout.write(JSON.stringify({ env: process.env.XDG_RUNTIME_DIR ?? null, outcome }));
    process.exit(0);`;
  const env = { ...process.env };
  delete env.XDG_RUNTIME_DIR;
  if (xdg !== undefined) env.XDG_RUNTIME_DIR = xdg;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  return { ...(JSON.parse(r.stdout) as { env: string | null; outcome: string }), stderr: r.stderr };
}

describe('webgpu in Node: XDG_RUNTIME_DIR', { skip }, () => {
  it('unset: set to the temporary folder before Dawn starts; no Wayland complaint', () => {
    const r = child(undefined);
    assert.ok(['adapter', 'WebGpuUnavailableError'].includes(r.outcome), r.outcome);
    assert.equal(r.env, os.tmpdir());
    assert.doesNotMatch(r.stderr, /XDG_RUNTIME_DIR/);
  });

  it('empty or relative (what libwayland calls invalid): replaced too', () => {
    assert.equal(child('').env, os.tmpdir());
    assert.equal(child('run/user').env, os.tmpdir());
  });

  it('a valid (absolute) one is left alone', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-xdg-'));
    try {
      assert.equal(child(dir).env, dir);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the CLI without an adapter: no Wayland complaint, and one line of ours: the hint, saying whose the lines above are', { skip: process.platform === 'linux' ? false : 'Vulkan drivers are how Dawn finds a GPU on Linux only' }, () => {
    // no Vulkan driver at all: an empty driver list
    const env: NodeJS.ProcessEnv = { ...process.env, VK_ICD_FILENAMES: path.join(os.tmpdir(), 'mamba-ts-no-such-icd.json') };
    delete env.XDG_RUNTIME_DIR;
    delete env.VK_DRIVER_FILES;
    const r = spawnSync(process.execPath, [CLI, 'generate', '-m', TINY, '--ids', '1,2', '-n', '1', '--backend', 'webgpu'], { env, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /XDG_RUNTIME_DIR is invalid/);
    const ours = r.stderr.split('\n').filter((l) => l.startsWith('mamba-ts:'));
    assert.equal(ours.length, 1, r.stderr);
    assert.match(ours[0], /^mamba-ts: error: webgpu: no adapter found/);
    assert.match(ours[0], /VK_ICD_FILENAMES=/);
    assert.match(ours[0], /libvulkan1/);
    assert.match(ours[0], /Dawn/, 'says that the Warning lines above (if any) are Dawn\'s');
  });
});
