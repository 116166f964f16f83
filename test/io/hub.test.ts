/**
 * The Hugging Face hub cache and downloads: a cache laid out as Python's huggingface_hub lays it out (blobs,
 * relative symlinks, refs/<branch>, snapshots/<commit>) resolves `org/name`, `org/name@branch` and
 * `org/name@<commit>`; a local folder wins; downloads from a local server speaking the hub's file API fill the
 * same layout (resuming an interrupted one with Range, checking sha256, sending HF_TOKEN); offline without the
 * model is an error naming what was looked for. No network.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel } from '../../src/index.js';
import {
  downloadModel, hubCacheDir, hubToken, HubError, lookupCached, parseHubRef, repoFolderName, resolveModelPath, resolveModelPathSync,
} from '../../src/io/hub.js';
import { hubFolder, loadGgufFrom, loadModelFrom, type CacheLike } from '../../src/browser.js';
import { encodeModelGguf, readExportInput } from '../../src/io/gguf.js';
import { runCli } from '../cli/cli-helpers.js';
import { hfFixture } from '../helpers.js';
import { gitSha1, sha256, startFakeHub, type FakeHub } from './hub-server.js';

const IDS = [[1, 7, 42, 3, 99, 255, 8]];
const SHA_MAIN = 'a'.repeat(39) + '1';
const SHA_DEV = 'b'.repeat(39) + '2';
const SHA_SHARDED = 'c'.repeat(39) + '3';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-hub-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function folderFiles(dir: string): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const f of fs.readdirSync(dir)) if (!f.startsWith('reference')) out[f] = new Uint8Array(fs.readFileSync(path.join(dir, f)));
  return out;
}

/** a cache folder as huggingface_hub writes it: blobs by etag, snapshot entries linking ../../blobs/<etag>, refs */
function writeCache(cacheDir: string, repo: string, commit: string, files: Record<string, Uint8Array>, refs: string[]): void {
  const storage = path.join(cacheDir, repoFolderName(repo));
  fs.mkdirSync(path.join(storage, 'blobs'), { recursive: true });
  fs.mkdirSync(path.join(storage, 'snapshots', commit), { recursive: true });
  for (const [name, bytes] of Object.entries(files)) {
    const etag = name.endsWith('.safetensors') ? sha256(bytes) : gitSha1(bytes);
    fs.writeFileSync(path.join(storage, 'blobs', etag), bytes);
    fs.symlinkSync(path.join('..', '..', 'blobs', etag), path.join(storage, 'snapshots', commit, name));
  }
  for (const r of refs) {
    fs.mkdirSync(path.dirname(path.join(storage, 'refs', r)), { recursive: true });
    fs.writeFileSync(path.join(storage, 'refs', r), commit); // huggingface_hub writes the hash without a newline
  }
}

/** a browser Cache API stand-in over a Map (what hubFolder keeps between visits) */
function memoryCache(): { store: Map<string, Uint8Array>; cache: CacheLike } {
  const store = new Map<string, Uint8Array>();
  const cache: CacheLike = {
    async match(url) {
      const b = store.get(url);
      return b ? (new Response(b) as unknown as Awaited<ReturnType<CacheLike['match']>>) : undefined;
    },
    async put(url, res) {
      store.set(url, new Uint8Array(await (res as Response).arrayBuffer()));
    },
  };
  return { store, cache };
}

async function logits(spec: string, opts: Parameters<typeof loadModel>[1] = {}): Promise<Float32Array> {
  const m = await loadModel(spec, { tokenizer: false, ...opts });
  return Float32Array.from((await m.forward(IDS)).logits.data);
}

/** run `fn` with environment variables set (restored after) */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T> | T): Promise<T> {
  const old: Record<string, string | undefined> = {};
  for (const k of Object.keys(vars)) {
    old[k] = process.env[k];
    if (vars[k] === undefined) delete process.env[k];
    else process.env[k] = vars[k];
  }
  try {
    return await fn();
  } finally {
    for (const k of Object.keys(old)) {
      if (old[k] === undefined) delete process.env[k];
      else process.env[k] = old[k];
    }
  }
}

describe('hub names', () => {
  test('org/name, @revision, /file.gguf; paths are not hub names', () => {
    assert.deepEqual(parseHubRef('state-spaces/mamba-130m-hf'), { repo: 'state-spaces/mamba-130m-hf', revision: 'main', file: null });
    assert.deepEqual(parseHubRef('org/name@v1.0'), { repo: 'org/name', revision: 'v1.0', file: null });
    assert.deepEqual(parseHubRef(`org/name@${SHA_MAIN}/m-q8_0.gguf`), { repo: 'org/name', revision: SHA_MAIN, file: 'm-q8_0.gguf' });
    for (const p of ['./org/name', '/abs/path', 'org/name/', 'a/b/c', 'C:\\models\\x', 'name', '../org/name', 'org/..', 'org/name@']) {
      assert.equal(parseHubRef(p), null, p);
    }
  });

  test('the cache folder and token as huggingface_hub finds them', () => {
    assert.equal(hubCacheDir({ HF_HUB_CACHE: '/c', HF_HOME: '/h' }), '/c');
    assert.equal(hubCacheDir({ HUGGINGFACE_HUB_CACHE: '/legacy', HF_HOME: '/h' }), '/legacy');
    assert.equal(hubCacheDir({ HF_HOME: '/h', XDG_CACHE_HOME: '/x' }), path.join('/h', 'hub'));
    assert.equal(hubCacheDir({ XDG_CACHE_HOME: '/x' }), path.join('/x', 'huggingface', 'hub'));
    assert.equal(hubCacheDir({}), path.join(os.homedir(), '.cache', 'huggingface', 'hub'));
    const home = path.join(tmp, 'hf-home');
    fs.mkdirSync(home, { recursive: true });
    fs.writeFileSync(path.join(home, 'token'), 'hf_saved\n');
    assert.equal(hubToken({ HF_TOKEN: 'hf_env', HF_HOME: home }), 'hf_env');
    assert.equal(hubToken({ HF_HOME: home }), 'hf_saved');
    assert.equal(hubToken({ HF_HOME: path.join(tmp, 'nowhere') }), null);
  });
});

describe('hub cache (laid out as huggingface_hub does)', () => {
  const cacheDir = path.join(tmp, 'cache');
  before(() => {
    writeCache(cacheDir, 'org/tiny', SHA_MAIN, folderFiles(hfFixture('mamba-tiny')), ['main']);
    writeCache(cacheDir, 'org/tiny', SHA_DEV, folderFiles(hfFixture('mamba2-tiny')), ['dev', 'feature/x']);
    writeCache(cacheDir, 'org/sharded', SHA_SHARDED, folderFiles(hfFixture('mamba-tiny-sharded')), ['main']);
  });

  test('org/name, org/name@branch and org/name@commit resolve to their snapshots and load', async () => {
    const snap = (sha: string) => path.join(cacheDir, 'models--org--tiny', 'snapshots', sha);
    assert.equal(await resolveModelPath('org/tiny', { cacheDir }), snap(SHA_MAIN));
    assert.equal(await resolveModelPath('org/tiny@dev', { cacheDir }), snap(SHA_DEV));
    assert.equal(await resolveModelPath(`org/tiny@${SHA_DEV}`, { cacheDir }), snap(SHA_DEV));
    assert.equal(resolveModelPathSync('org/tiny@main', { cacheDir }), snap(SHA_MAIN));
    await withEnv({ HF_HUB_CACHE: cacheDir }, async () => {
      assert.deepEqual(await logits('org/tiny'), await logits(hfFixture('mamba-tiny')));
      assert.deepEqual(await logits('org/tiny@dev'), await logits(hfFixture('mamba2-tiny')));
      assert.deepEqual(await logits('org/sharded'), await logits(hfFixture('mamba-tiny-sharded')));
      const m = await loadModel('org/tiny', { tokenizer: false });
      assert.equal(m.dir, snap(SHA_MAIN));
    });
  });

  test('a local folder of the same name wins over the cache', async () => {
    const cwd = process.cwd();
    const here = path.join(tmp, 'cwd');
    fs.mkdirSync(path.join(here, 'org'), { recursive: true });
    fs.cpSync(hfFixture('mamba2-tiny'), path.join(here, 'org', 'tiny'), { recursive: true });
    process.chdir(here);
    try {
      assert.equal(await resolveModelPath('org/tiny', { cacheDir }), 'org/tiny');
      await withEnv({ HF_HUB_CACHE: cacheDir }, async () => assert.deepEqual(await logits('org/tiny'), await logits(hfFixture('mamba2-tiny'))));
    } finally {
      process.chdir(cwd);
    }
  });

  test('not cached: the error names the ref file or snapshot looked for and how to download', async () => {
    await assert.rejects(resolveModelPath('org/missing', { cacheDir }), (e: Error) => {
      assert.ok(e instanceof HubError);
      assert.ok(e.message.includes(path.join(cacheDir, 'models--org--missing', 'refs', 'main')), e.message);
      assert.match(e.message, /mamba-ts download org\/missing/);
      return true;
    });
    await assert.rejects(resolveModelPath('org/tiny@nobranch', { cacheDir }), /refs\/nobranch \(missing\)/);
    await assert.rejects(resolveModelPath(`org/tiny@${'d'.repeat(40)}`, { cacheDir }), new RegExp(`snapshots/${'d'.repeat(40)}/config\\.json \\(missing\\)`));
    // a ref pointing at a commit whose snapshot is gone
    fs.mkdirSync(path.join(cacheDir, 'models--org--tiny', 'refs'), { recursive: true });
    fs.writeFileSync(path.join(cacheDir, 'models--org--tiny', 'refs', 'gone'), 'e'.repeat(40));
    await assert.rejects(resolveModelPath('org/tiny@gone', { cacheDir }), /config\.json \(missing; gone → eeeeeeeeee\)/);
    fs.writeFileSync(path.join(cacheDir, 'models--org--tiny', 'refs', 'bad'), 'not a hash');
    await assert.rejects(resolveModelPath('org/tiny@bad', { cacheDir }), /refs\/bad: expected a 40-hex commit/);
    // the CLI says the same, exit 1
    const r = await withEnv({ HF_HUB_CACHE: cacheDir }, () => runCli(['info', '--model', 'org/missing']));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /org\/missing: no such local folder, and not in the Hugging Face cache \(looked for .*refs\/main \(missing\)\)/);
  });
});

describe('hub downloads (a local server speaking the hub file API)', () => {
  let hub: FakeHub;
  const tiny = folderFiles(hfFixture('mamba-tiny'));
  const gguf = new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);
  before(async () => {
    hub = await startFakeHub({
      'org/tiny': { files: { ...tiny, 'README.md': new TextEncoder().encode('# tiny'), 'tiny-q8_0.gguf': gguf, 'adapter_model.safetensors': gguf, 'onnx/model.safetensors': gguf }, refs: { main: SHA_MAIN, v1: SHA_MAIN }, oldName: 'old-org/tiny' },
      'org/sharded': { files: folderFiles(hfFixture('mamba-tiny-sharded')), refs: { main: SHA_SHARDED } },
      'org/private': { files: tiny, refs: { main: SHA_DEV }, token: 'hf_secret' },
    });
  });
  after(() => hub.close());

  test('fills the cache as huggingface_hub does: blobs by etag, relative links, refs/main; the model loads offline after', async () => {
    const cacheDir = path.join(tmp, 'dl1');
    const progress: number[] = [];
    const r = await downloadModel(parseHubRef('org/tiny')!, { cacheDir, endpoint: hub.url, token: null, onProgress: (p) => p.file === 'model.safetensors' && progress.push(p.loaded) });
    const storage = path.join(cacheDir, 'models--org--tiny');
    assert.equal(r.path, path.join(storage, 'snapshots', SHA_MAIN));
    assert.deepEqual([...r.fetched].sort(), ['config.json', 'generation_config.json', 'model.safetensors']);
    assert.equal(fs.readFileSync(path.join(storage, 'refs', 'main'), 'utf8'), SHA_MAIN);
    for (const [name, bytes] of Object.entries(tiny)) {
      const etag = name.endsWith('.safetensors') ? sha256(bytes) : gitSha1(bytes);
      const link = path.join(r.path, name);
      assert.ok(fs.lstatSync(link).isSymbolicLink(), `${name} is a link`);
      assert.equal(fs.readlinkSync(link), path.join('..', '..', 'blobs', etag));
      assert.deepEqual(new Uint8Array(fs.readFileSync(link)), bytes);
    }
    assert.ok(!fs.existsSync(path.join(r.path, 'README.md')) && !fs.existsSync(path.join(r.path, 'tiny-q8_0.gguf')), 'only the model files');
    assert.equal(progress.at(-1), tiny['model.safetensors'].byteLength);
    assert.deepEqual(fs.readdirSync(path.join(storage, 'blobs')).filter((f) => f.endsWith('.incomplete')), []);
    await withEnv({ HF_HUB_CACHE: cacheDir }, async () => assert.deepEqual(await logits('org/tiny'), await logits(hfFixture('mamba-tiny'))));

    // again: nothing is fetched (only the revision is asked for)
    const before = hub.requests.length;
    const again = await downloadModel(parseHubRef('org/tiny')!, { cacheDir, endpoint: hub.url, token: null });
    assert.deepEqual(again.fetched, []);
    assert.deepEqual(hub.requests.slice(before).map((q) => q.path), [`/api/models/org/tiny/revision/main`]);
    // another branch at the same commit: a new ref, no bytes
    const v1 = await downloadModel(parseHubRef('org/tiny@v1')!, { cacheDir, endpoint: hub.url, token: null });
    assert.deepEqual(v1.fetched, []);
    assert.equal(fs.readFileSync(path.join(storage, 'refs', 'v1'), 'utf8'), SHA_MAIN);
  });

  test('a GGUF file only when named; a sharded model gets its index and shards; a renamed repository is followed', async () => {
    const cacheDir = path.join(tmp, 'dl2');
    const g = await downloadModel(parseHubRef('org/tiny/tiny-q8_0.gguf')!, { cacheDir, endpoint: hub.url, token: null });
    assert.deepEqual(g.fetched, ['tiny-q8_0.gguf']);
    assert.equal(g.path, path.join(cacheDir, 'models--org--tiny', 'snapshots', SHA_MAIN, 'tiny-q8_0.gguf'));
    assert.deepEqual(new Uint8Array(fs.readFileSync(g.path)), gguf);
    assert.equal(lookupCached(parseHubRef('org/tiny/tiny-q8_0.gguf')!, { cacheDir }).path, g.path);
    await assert.rejects(downloadModel(parseHubRef('org/tiny/other.gguf')!, { cacheDir, endpoint: hub.url, token: null }), /no file "other\.gguf" .*GGUF files there: tiny-q8_0\.gguf/);

    const s = await downloadModel(parseHubRef('org/sharded')!, { cacheDir, endpoint: hub.url, token: null });
    assert.deepEqual([...s.fetched].sort(), ['config.json', 'generation_config.json', 'model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', 'model.safetensors.index.json']);
    await withEnv({ HF_HUB_CACHE: cacheDir }, async () => assert.deepEqual(await logits('org/sharded'), await logits(hfFixture('mamba-tiny-sharded'))));

    // a renamed repository: the hub answers the old name with relative redirects, which are followed
    const before = hub.requests.length;
    const o = await downloadModel(parseHubRef('old-org/tiny')!, { cacheDir, endpoint: hub.url, token: null });
    assert.equal(o.commit, SHA_MAIN);
    const heads = hub.requests.slice(before).filter((q) => q.method === 'HEAD').map((q) => q.path);
    assert.deepEqual(heads.slice(0, 2), [`/old-org/tiny/resolve/${SHA_MAIN}/config.json`, `/org/tiny/resolve/${SHA_MAIN}/config.json`]);
  });

  test('an interrupted download continues from its .incomplete file with a Range request', async () => {
    const cacheDir = path.join(tmp, 'dl3');
    const blob = tiny['model.safetensors'];
    const h = sha256(blob);
    const cutAt = 200_000;
    hub.cutNext(h, cutAt);
    await assert.rejects(downloadModel(parseHubRef('org/tiny')!, { cacheDir, endpoint: hub.url, token: null }), (e: Error) => {
      assert.ok(e instanceof HubError, String(e));
      assert.match(e.message, /model\.safetensors.*run again/);
      return true;
    });
    const incomplete = path.join(cacheDir, 'models--org--tiny', 'blobs', `${h}.incomplete`);
    const partial = fs.statSync(incomplete).size;
    assert.ok(partial > 0 && partial <= cutAt, `partial file of ${partial} bytes`);
    assert.ok(!fs.existsSync(path.join(cacheDir, 'models--org--tiny', 'blobs', h)));

    const before = hub.requests.length;
    const loaded: number[] = [];
    const r = await downloadModel(parseHubRef('org/tiny')!, { cacheDir, endpoint: hub.url, token: null, onProgress: (p) => p.file === 'model.safetensors' && loaded.push(p.loaded) });
    const gets = hub.requests.slice(before).filter((q) => q.method === 'GET' && q.path === `/cdn/${h}`);
    assert.deepEqual(gets.map((q) => q.range), [`bytes=${partial}-`], 'one GET, for the rest');
    assert.equal(loaded[0], partial, 'progress starts at the bytes already there');
    assert.deepEqual(new Uint8Array(fs.readFileSync(path.join(r.path, 'model.safetensors'))), blob);
    assert.ok(!fs.existsSync(incomplete));
  });

  test('one download of a blob at a time: a live lock refuses, a dead one is taken over', async () => {
    const cacheDir = path.join(tmp, 'dl-lock');
    const h = sha256(tiny['model.safetensors']);
    const blobs = path.join(cacheDir, 'models--org--tiny', 'blobs');
    fs.mkdirSync(blobs, { recursive: true });
    const lock = path.join(blobs, `${h}.incomplete.lock`);
    fs.writeFileSync(lock, String(process.ppid)); // a live process that is not this one
    await assert.rejects(downloadModel(parseHubRef('org/tiny')!, { cacheDir, endpoint: hub.url, token: null }), new RegExp(`another download of this file is running \\(process ${process.ppid}`));
    fs.writeFileSync(lock, '999999999'); // no such process
    const r = await downloadModel(parseHubRef('org/tiny')!, { cacheDir, endpoint: hub.url, token: null });
    assert.ok(r.fetched.includes('model.safetensors'));
    assert.ok(!fs.existsSync(lock), 'the lock is released');
  });

  test('bytes that do not match the sha256 are refused and removed', async () => {
    const cacheDir = path.join(tmp, 'dl4');
    const h = sha256(tiny['model.safetensors']);
    hub.corruptNext(h);
    await assert.rejects(downloadModel(parseHubRef('org/tiny')!, { cacheDir, endpoint: hub.url, token: null }), /sha256 [0-9a-f]{64} does not match the hub's/);
    assert.ok(!fs.existsSync(path.join(cacheDir, 'models--org--tiny', 'blobs', `${h}.incomplete`)));
    assert.ok(!fs.existsSync(path.join(cacheDir, 'models--org--tiny', 'blobs', h)));
  });

  test('HF_TOKEN is sent as a bearer token; a gated repository without one says to set it; HF_ENDPOINT picks the hub', async () => {
    const cacheDir = path.join(tmp, 'dl5');
    await withEnv({ HF_ENDPOINT: hub.url, HF_TOKEN: undefined, HF_HOME: path.join(tmp, 'no-home') }, async () => {
      await assert.rejects(downloadModel(parseHubRef('org/private')!, { cacheDir }), /HTTP 401: the repository is private or gated: set HF_TOKEN/);
    });
    await withEnv({ HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_wrong' }, async () => {
      await assert.rejects(downloadModel(parseHubRef('org/private')!, { cacheDir }), /HTTP 403: the token \(HF_TOKEN\) has no access/);
    });
    const before = hub.requests.length;
    await withEnv({ HF_ENDPOINT: hub.url, HF_TOKEN: 'hf_secret' }, async () => {
      const r = await downloadModel(parseHubRef('org/private')!, { cacheDir });
      assert.equal(r.commit, SHA_DEV);
    });
    const seen = hub.requests.slice(before);
    assert.ok(seen.length >= 4);
    for (const q of seen) assert.equal(q.authorization, q.path.startsWith('/cdn/') ? null : 'Bearer hf_secret', `${q.method} ${q.path}`);
    assert.ok(seen.some((q) => q.path.startsWith('/cdn/')), 'the weights came from the CDN, without the token');
  });

  test('loadModel({ download: true }) and the CLI (download, --download) fetch into the cache; offline the cache serves', async () => {
    const cacheDir = path.join(tmp, 'dl6');
    await withEnv({ HF_ENDPOINT: hub.url, HF_HUB_CACHE: cacheDir, HF_TOKEN: undefined, HF_HOME: path.join(tmp, 'no-home') }, async () => {
      await assert.rejects(loadModel('org/tiny'), /not in the Hugging Face cache/);
      assert.deepEqual(await logits('org/tiny', { download: true }), await logits(hfFixture('mamba-tiny')));
      fs.rmSync(cacheDir, { recursive: true });

      const d = await runCli(['download', 'org/sharded'], { stderrTTY: true });
      assert.equal(d.code, 0, d.stderr);
      assert.match(d.stderr, /\[█{20}\] 518\.2 KiB\/518\.2 KiB 100% \| file [\w.-]+ \| [\d.]+[kMG]? B\/s/, 'a progress bar in bytes on a terminal');
      assert.equal(d.stdout, `${path.join(cacheDir, 'models--org--sharded', 'snapshots', SHA_SHARDED)}\n`);
      assert.match(d.stderr, /downloading 6 files of org\/sharded/);
      const i = await runCli(['info', '--model', 'org/tiny', '--download', '--json']);
      assert.equal(i.code, 0, i.stderr);
      assert.equal(JSON.parse(i.stdout).folder, path.join(cacheDir, 'models--org--tiny', 'snapshots', SHA_MAIN));
      const g = await runCli(['generate', '--model', 'org/tiny', '--ids', '1,7,42', '-n', '4']);
      assert.equal(g.code, 0, g.stderr);
      assert.equal((await runCli(['download', './org/x'])).code, 2);
      assert.match((await runCli(['download', '--help'])).stdout, /Usage: mamba-ts download org\/name\[@revision\]/);
    });
    // the hub unreachable: --download falls back to what is cached; a model not cached is an error naming the hub
    await withEnv({ HF_ENDPOINT: 'http://127.0.0.1:9', HF_HUB_CACHE: cacheDir }, async () => {
      assert.equal(await resolveModelPath('org/tiny', { download: true }), path.join(cacheDir, 'models--org--tiny', 'snapshots', SHA_MAIN));
      await assert.rejects(resolveModelPath('org/other', { download: true }), /org\/other: cannot reach http:\/\/127\.0\.0\.1:9\/api\/models\/org\/other\/revision\/main/);
    });
    // HF_HUB_OFFLINE: never the network
    await withEnv({ HF_ENDPOINT: hub.url, HF_HUB_CACHE: cacheDir, HF_HUB_OFFLINE: '1' }, async () => {
      const before = hub.requests.length;
      await assert.rejects(resolveModelPath('org/private', { download: true }), /HF_HUB_OFFLINE is set/);
      assert.equal(hub.requests.length, before);
    });
  });

  test('browser: hubFolder fetches into a cache and loads from it with the hub gone', async () => {
    const { store, cache } = memoryCache();
    const seen: string[] = [];
    const own = await startFakeHub({ 'org/tiny': { files: tiny, refs: { main: SHA_MAIN } } });
    const m1 = await loadModelFrom(await hubFolder('org/tiny', { endpoint: own.url, cache, onProgress: (p) => seen.push(p.file) }));
    await own.close();
    assert.ok(seen.includes('model.safetensors'));
    assert.equal(store.size, 4, [...store.keys()].join(', ')); // revision info, config, generation config, weights
    const want = await logits(hfFixture('mamba-tiny'));
    assert.deepEqual(Float32Array.from((await m1.forward(IDS)).logits.data), want);
    const offline = await loadModelFrom(await hubFolder('org/tiny', { endpoint: own.url, cache }));
    assert.deepEqual(Float32Array.from((await offline.forward(IDS)).logits.data), want);
    await assert.rejects(hubFolder('org/other', { endpoint: own.url, cache }), /cannot reach .* not in this browser's cache/);
  });

  test('browser: loadGgufFrom(org/name/file.gguf) fetches the one file into the cache and loads it offline after', async () => {
    const { cache } = memoryCache();
    const parts = encodeModelGguf(readExportInput(hfFixture('mamba-tiny')), 'f32');
    const bytes = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    parts.reduce((o, p) => (bytes.set(p, o), o + p.byteLength), 0);
    const own = await startFakeHub({ 'org/tiny-GGUF': { files: { ...tiny, 'tiny-f32.gguf': bytes }, refs: { main: SHA_MAIN } } });
    const seen: string[] = [];
    const m1 = await loadGgufFrom('org/tiny-GGUF/tiny-f32.gguf', { tokenizer: false, hub: { endpoint: own.url, cache }, onProgress: (p) => seen.push(p.file) });
    const fetched = own.requests.filter((q) => q.method === 'GET' && q.path.includes('/resolve/')).map((q) => q.path.split('/').pop());
    await own.close();
    assert.deepEqual(fetched, ['tiny-f32.gguf']); // only the named file, not the folder's safetensors
    assert.ok(seen.includes('tiny-f32.gguf'));
    const want = await logits(hfFixture('mamba-tiny'));
    const got = Float32Array.from((await m1.forward(IDS)).logits.data);
    let d = 0;
    for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(got[i] - want[i]));
    assert.ok(d <= 1e-5, `GGUF from the hub vs the safetensors folder: max |Δlogit| ${d}`);
    const offline = await loadGgufFrom('org/tiny-GGUF/tiny-f32.gguf', { tokenizer: false, hub: { endpoint: own.url, cache } });
    assert.deepEqual(Float32Array.from((await offline.forward(IDS)).logits.data), got);
    await assert.rejects(loadGgufFrom('org/tiny-GGUF', { hub: { endpoint: own.url, cache } }), /names no \.gguf file/);
    await assert.rejects(loadGgufFrom('org/tiny-GGUF/tiny-f32.gguf', { hub: 'x' as never }), /hub/);
  });
});
