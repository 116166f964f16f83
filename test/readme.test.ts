/**
 * README claims that drift from reality unless checked: the wasm speed-up is the one measured in BENCHMARKS.md
 * (numbers and where they come from), the dependency line names every runtime and optional dependency, what
 * `npm run bench` measures is said, nothing points at issues a reader cannot see, and the install, CLI and WebGPU
 * notes say what a new user needs (build on install, global install, --stop escapes, the two environment variables).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './helpers.js';
import { BENCH_SPEC } from '../src/cli/bench.js';

const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const BENCHMARKS = fs.readFileSync(path.join(ROOT, 'BENCHMARKS.md'), 'utf8');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
};

/** the text between BENCHMARKS.md's markers `<!-- bench:NAME:start -->` and `…:end -->` */
function section(name: string): string {
  const m = new RegExp(`<!-- bench:${name}:start -->([\\s\\S]*?)<!-- bench:${name}:end -->`).exec(BENCHMARKS);
  assert.ok(m, `BENCHMARKS.md has a ${name} section`);
  return m[1];
}

/** the cells of the first table row whose first cell matches `first` */
function row(text: string, first: RegExp): string[] {
  const line = text.split('\n').find((l) => l.startsWith('|') && first.test(l.split('|')[1].trim()));
  assert.ok(line, `a row ${first}`);
  return line.split('|').slice(1, -1).map((c) => c.trim());
}

const num = (cell: string): number => Number(/^[\d.]+/.exec(cell)![0]);

describe('README', () => {
  it('states the wasm speed-up measured in BENCHMARKS.md (mamba-130m, f32), naming the source', () => {
    const cpu = section('models');
    // columns: label | mamba-130m | mamba2-130m | …
    const cpuPrefill = num(row(cpu, /^L=512, default/)[1]);
    const cpuDecode = num(row(cpu, /^batch 1, after 16 tokens/)[1]);
    const wasm = section('wasm-matrix');
    const w = wasm.split('\n').find((l) => /^\| mamba-130m \| f32 \| 2 \|/.test(l));
    assert.ok(w, 'the wasm table has mamba-130m f32 on 2 threads');
    const cells = w.split('|').slice(1, -1).map((c) => c.trim());
    const [wasmPrefill, wasmDecode] = [num(cells[3]), num(cells[4])];
    const status = README.slice(README.indexOf('Status:'), README.indexOf('## ', README.indexOf('Status:')));
    for (const v of [String(Math.round(wasmPrefill)), String(cpuPrefill), String(Math.round(wasmDecode)), String(cpuDecode)]) {
      assert.ok(status.includes(v), `the status paragraph quotes ${v}`);
    }
    assert.ok(status.includes(`${Math.round(wasmPrefill / cpuPrefill)}×`), `prefill ${Math.round(wasmPrefill / cpuPrefill)}×`);
    assert.ok(status.includes(`${Math.round(wasmDecode / cpuDecode)}×`), `decode ${Math.round(wasmDecode / cpuDecode)}×`);
    assert.match(status, /BENCHMARKS\.md/);
    assert.doesNotMatch(README, /about 10×|3–4× faster/, 'no stale speed-up claims');
  });

  it('names every runtime and optional dependency where it lists them', () => {
    const line = README.slice(README.indexOf('Requirements:'), README.indexOf('\n\n', README.indexOf('Requirements:')));
    for (const d of [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})]) {
      assert.ok(line.includes(`\`${d}\``), `the Requirements paragraph names ${d}`);
    }
    assert.doesNotMatch(line, /One runtime dependency:/, 'not "one runtime dependency" alone');
  });

  it('says which backend npm run bench measures, and what mamba-ts bench defaults to', () => {
    const para = README.slice(README.indexOf('`npm run bench` measures'), README.indexOf('\n\n', README.indexOf('`npm run bench` measures')));
    assert.match(para, /TypeScript/);
    assert.match(para, /--backend wasm/);
    assert.match(para, /mamba-ts bench[^.]*wasm/);
    const synopsis = README.split('\n').find((l) => l.startsWith('mamba-ts bench '))!;
    for (const b of ['cpu', 'wasm', 'webgpu']) assert.match(synopsis, new RegExp(`--backend [a-z|]*\\b${b}\\b`), `bench synopsis lists ${b}`);
    assert.match(BENCH_SPEC.options.backend.help, /wasm[^,]*default/);
  });

  it('points at nothing a reader cannot see', () => {
    assert.doesNotMatch(README, /see the issues/i);
  });

  it('says how to install: npm ci builds, global install, and that npx needs the clone', () => {
    assert.match(README, /npm ci[^\n]*prepare/);
    assert.match(README, /npm install -g \./);
    assert.match(README, /npm pack/);
    assert.match(README, /npm install -g \.\/mamba-ts-[\d.]+\.tgz/);
  });

  it('documents --stop escapes, the --json token lists and both WebGPU environment variables', () => {
    assert.match(README, /--stop "\\n\\n"/);
    assert.match(README, /`generated`/);
    assert.match(README, /prompt \+ generated/);
    assert.match(README, /VK_ICD_FILENAMES=/);
    assert.match(README, /XDG_RUNTIME_DIR/);
    assert.match(README, /LoadOptionError/);
  });
});
