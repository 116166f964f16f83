/**
 * Tests for src/io/safetensors.ts: encode/decode round trips, atomic writes, the Hugging Face
 * fixtures, and one test per malformed-input case (each asserting a SafetensorsError whose message
 * names the file label and the offending tensor/field).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  MAX_HEADER_BYTES,
  SafetensorsError,
  SafetensorsFile,
  encodeSafetensors,
  writeSafetensorsAtomic,
} from '../../src/io/safetensors.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/tensor/dtype.js';

// dist/test/io -> repo root
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const FIX = path.join(ROOT, 'test/fixtures/hf');

// ---------------------------------------------------------------------------------------------
// helpers

/** Build a file from raw header text (or a JSON value) and a data section. */
function build(header: unknown, data: Uint8Array | number = 0, declaredLen?: bigint): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const h = new TextEncoder().encode(text);
  return buildRaw(h, data, declaredLen);
}

function buildRaw(h: Uint8Array, data: Uint8Array | number = 0, declaredLen?: bigint): Uint8Array {
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.byteLength + d.byteLength);
  new DataView(out.buffer).setBigUint64(0, declaredLen ?? BigInt(h.byteLength), true);
  out.set(h, 8);
  out.set(d, 8 + h.byteLength);
  return out;
}

/** A valid two-tensor header over a 24-byte data section ("a": F32[2] @0..8, "b": F32[4] @8..24). */
function goodHeader(): Record<string, any> {
  return {
    __metadata__: { format: 'pt' },
    a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] },
  };
}

/** Parse a file made from `goodHeader()` after applying `edit` to it; expect a SafetensorsError matching all regexes. */
function expectBad(edit: (h: Record<string, any>) => void, ...patterns: RegExp[]): void {
  const h = goodHeader();
  edit(h);
  expectBadBytes(build(h, 24), ...patterns);
}

function expectBadBytes(bytes: Uint8Array, ...patterns: RegExp[]): void {
  const label = 'bad.safetensors';
  assert.throws(
    () => SafetensorsFile.fromBytes(bytes, label),
    (e: unknown) => {
      assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
      assert.match(e.message, /bad\.safetensors/);
      for (const p of patterns) assert.match(e.message, p);
      return true;
    },
  );
}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ts-st-'));
}

// ---------------------------------------------------------------------------------------------

describe('encodeSafetensors / fromBytes round trip', () => {
  test('F32 and I32 values are identical; metadata, shapes, order and layout preserved', () => {
    const w = Float32Array.from({ length: 12 }, (_, i) => Math.sin(i) * 1e3 + i / 7);
    w[3] = -0;
    w[4] = Infinity;
    w[5] = 1e-40; // subnormal
    const ids = Int32Array.from([0, -1, 2147483647, -2147483648, 42, 7]);
    const bytes = encodeSafetensors(
      { 'w.weight': { dtype: 'F32', shape: [3, 4], data: w }, ids: { dtype: 'I32', shape: [2, 3], data: ids } },
      { format: 'pt', note: 'héllo' },
    );
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(headerLen % 8, 0, 'header padded to a multiple of 8');

    const f = SafetensorsFile.fromBytes(bytes, 'mem');
    assert.equal(f.path, 'mem');
    assert.deepEqual(f.metadata, { format: 'pt', note: 'héllo' });
    assert.deepEqual(f.names(), ['w.weight', 'ids']);
    assert.ok(f.has('ids') && !f.has('nope') && !f.has('__metadata__'));
    const e = f.entry('w.weight');
    assert.deepEqual(e, { name: 'w.weight', dtype: 'F32', shape: [3, 4], byteOffset: 8 + headerLen, byteLength: 48, file: 'mem' });
    assert.equal(f.entry('ids').byteOffset, 8 + headerLen + 48, 'laid out contiguously in insertion order');
    assert.deepEqual(f.float32('w.weight'), w);
    assert.ok(Object.is(f.float32('w.weight')[3], -0));
    assert.deepEqual(f.int32('ids'), ids);
    assert.deepEqual(f.bytes('ids'), new Uint8Array(ids.buffer));
  });

  test('no metadata -> empty metadata object; header has no __metadata__ key', () => {
    const bytes = encodeSafetensors({ x: { dtype: 'F32', shape: [1], data: new Float32Array([1]) } });
    const f = SafetensorsFile.fromBytes(bytes, 'mem');
    assert.deepEqual(f.metadata, {});
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.ok(!new TextDecoder().decode(bytes.subarray(8, 8 + n)).includes('__metadata__'));
  });

  test('F16 from float32: representable values exact, others within half-precision rounding', () => {
    const exact = [0, 1, -2, 0.5, 0.333251953125, 65504, -65504, 2 ** -24, 2 ** -14, 1000.5, 2048];
    const inexact = [0.1, Math.PI, -123.456, 1e-3, 3000.7];
    const data = Float32Array.from([...exact, ...inexact]);
    const f = SafetensorsFile.fromBytes(encodeSafetensors({ h: { dtype: 'F16', shape: [data.length], data } }), 'mem');
    assert.equal(f.entry('h').dtype, 'F16');
    assert.equal(f.entry('h').byteLength, data.length * 2);
    const got = f.float32('h');
    for (let i = 0; i < exact.length; i++) assert.equal(got[i], exact[i], `exact value ${exact[i]}`);
    for (let i = exact.length; i < data.length; i++) {
      const rel = Math.abs(got[i] - data[i]) / Math.abs(data[i]);
      assert.ok(rel <= 2 ** -11, `${data[i]} -> ${got[i]} (rel ${rel})`);
      assert.equal(got[i], f16ToF32(f32ToF16(data[i])), 'round-to-nearest-even result');
    }
  });

  test('BF16 from float32: representable values exact, others within bfloat16 rounding', () => {
    const exact = [0, 1, -2, 0.5, 3.140625, 2 ** 100, -(2 ** -100), 65536];
    const inexact = [0.1, Math.PI, -123.456, 1e-3, 3e38];
    const data = Float32Array.from([...exact, ...inexact]);
    const f = SafetensorsFile.fromBytes(encodeSafetensors({ b: { dtype: 'BF16', shape: [data.length], data } }), 'mem');
    const got = f.float32('b');
    for (let i = 0; i < exact.length; i++) assert.equal(got[i], exact[i], `exact value ${exact[i]}`);
    for (let i = exact.length; i < data.length; i++) {
      const rel = Math.abs(got[i] - data[i]) / Math.abs(data[i]);
      assert.ok(rel <= 2 ** -8, `${data[i]} -> ${got[i]} (rel ${rel})`);
      assert.equal(got[i], bf16ToF32(f32ToBf16(data[i])));
    }
  });

  test('F16/BF16 given as raw Uint16Array bits are written verbatim', () => {
    const bits = Uint16Array.from([0x0000, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0xfc00]);
    const f = SafetensorsFile.fromBytes(
      encodeSafetensors({
        h: { dtype: 'F16', shape: [7], data: bits },
        b: { dtype: 'BF16', shape: [7], data: bits },
      }),
      'mem',
    );
    assert.deepEqual(f.bytes('h'), new Uint8Array(bits.buffer));
    assert.deepEqual(f.bytes('b'), new Uint8Array(bits.buffer));
    assert.deepEqual([...f.float32('h')], [0, 1, -2, 65504, 2 ** -24, Infinity, -Infinity]);
    assert.deepEqual([...f.float32('b')], [...bits].map(bf16ToF32));
  });

  test('scalars and empty tensors', () => {
    const f = SafetensorsFile.fromBytes(
      encodeSafetensors({
        s: { dtype: 'F32', shape: [], data: new Float32Array([7.5]) },
        e: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
        i: { dtype: 'I32', shape: [0], data: new Int32Array(0) },
      }),
      'mem',
    );
    assert.deepEqual(f.entry('s').shape, []);
    assert.deepEqual([...f.float32('s')], [7.5]);
    assert.equal(f.float32('e').length, 0);
    assert.deepEqual(f.entry('e').shape, [0, 3]);
    assert.equal(f.int32('i').length, 0);
  });

  test('a misaligned F32 tensor (after an odd-length F16) is copied and still correct', () => {
    const w = Float32Array.from([1.5, -2.25, 3]);
    const f = SafetensorsFile.fromBytes(
      encodeSafetensors({
        h: { dtype: 'F16', shape: [1], data: new Float32Array([1]) },
        w: { dtype: 'F32', shape: [3], data: w },
        i: { dtype: 'I32', shape: [2], data: Int32Array.from([5, -6]) },
      }),
      'mem',
    );
    assert.notEqual(f.entry('w').byteOffset % 4, 0, 'test premise: misaligned');
    assert.deepEqual(f.float32('w'), w);
    assert.deepEqual([...f.int32('i')], [5, -6]);
  });

  test('typed-array views with a byteOffset are encoded from the right bytes', () => {
    const big = Float32Array.from([9, 9, 1, 2, 3, 9]);
    const f = SafetensorsFile.fromBytes(
      encodeSafetensors({ x: { dtype: 'F32', shape: [3], data: big.subarray(2, 5) } }),
      'mem',
    );
    assert.deepEqual([...f.float32('x')], [1, 2, 3]);
  });

  test('fromBytes on a Uint8Array that is a subarray at an odd offset works', () => {
    const enc = encodeSafetensors({ x: { dtype: 'F32', shape: [2], data: Float32Array.from([4, 5]) } });
    const host = new Uint8Array(enc.byteLength + 3);
    host.set(enc, 3);
    const f = SafetensorsFile.fromBytes(host.subarray(3), 'mem');
    assert.deepEqual([...f.float32('x')], [4, 5]);
  });

  test('header padded with trailing spaces (any length) is accepted', () => {
    const data = new Uint8Array(new Float32Array([1, 2]).buffer);
    const f = SafetensorsFile.fromBytes(build('{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}     ', data), 'mem');
    assert.deepEqual([...f.float32('x')], [1, 2]);
  });

  test('gaps between tensors are allowed; names() follow data order', () => {
    const data = new Uint8Array(40);
    new Float32Array(data.buffer).set([1, 2, 0, 0, 0, 0, 3, 4, 0, 0]);
    const f = SafetensorsFile.fromBytes(
      build({ late: { dtype: 'F32', shape: [2], data_offsets: [24, 32] }, early: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, data),
      'mem',
    );
    assert.deepEqual(f.names(), ['early', 'late']);
    assert.deepEqual([...f.float32('early')], [1, 2]);
    assert.deepEqual([...f.float32('late')], [3, 4]);
  });

  test('every supported dtype is accepted with its element size', () => {
    const sizes: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
    const header: Record<string, unknown> = {};
    let off = 0;
    for (const [dt, s] of Object.entries(sizes)) {
      header[`t_${dt}`] = { dtype: dt, shape: [3], data_offsets: [off, off + 3 * s] };
      off += 3 * s;
    }
    const f = SafetensorsFile.fromBytes(build(header, off), 'mem');
    for (const [dt, s] of Object.entries(sizes)) {
      assert.equal(f.entry(`t_${dt}`).dtype, dt);
      assert.equal(f.bytes(`t_${dt}`).byteLength, 3 * s);
    }
  });
});

describe('typed accessors', () => {
  test('I64 converts to int32; out-of-range values are an error naming the tensor', () => {
    const data = new Uint8Array(32);
    const dv = new DataView(data.buffer);
    [1n, -5n, 2147483647n, -2147483648n].forEach((v, i) => dv.setBigInt64(i * 8, v, true));
    const ok = SafetensorsFile.fromBytes(build({ ids: { dtype: 'I64', shape: [2, 2], data_offsets: [0, 32] } }, data), 'ids.st');
    assert.deepEqual([...ok.int32('ids')], [1, -5, 2147483647, -2147483648]);

    dv.setBigInt64(8, 2147483648n, true);
    const bad = SafetensorsFile.fromBytes(build({ ids: { dtype: 'I64', shape: [2, 2], data_offsets: [0, 32] } }, data), 'ids.st');
    assert.throws(() => bad.int32('ids'), (e: unknown) => e instanceof SafetensorsError && /ids\.st/.test(e.message) && /"ids"/.test(e.message) && /2147483648/.test(e.message) && /int32/.test(e.message));
  });

  test('float32() of a non-float dtype is an error naming tensor, dtype and "float"', () => {
    const f = SafetensorsFile.fromBytes(
      encodeSafetensors({ ids: { dtype: 'I32', shape: [1], data: new Int32Array(1) } }),
      'mem.st',
    );
    assert.throws(() => f.float32('ids'), (e: unknown) => e instanceof SafetensorsError && /mem\.st/.test(e.message) && /"ids"/.test(e.message) && /I32/.test(e.message) && /float/.test(e.message));
    const g = SafetensorsFile.fromBytes(build({ d: { dtype: 'F64', shape: [1], data_offsets: [0, 8] } }, 8), 'mem.st');
    assert.throws(() => g.float32('d'), (e: unknown) => e instanceof SafetensorsError && /F64/.test(e.message));
  });

  test('int32() of a float tensor is an error naming tensor and dtype', () => {
    const f = SafetensorsFile.fromBytes(encodeSafetensors({ w: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }), 'mem.st');
    assert.throws(() => f.int32('w'), (e: unknown) => e instanceof SafetensorsError && /"w"/.test(e.message) && /F32/.test(e.message) && /integer/.test(e.message));
  });

  test('entry/float32/int32/bytes of a missing tensor name the tensor and the file', () => {
    const f = SafetensorsFile.fromBytes(encodeSafetensors({ w: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }), 'mem.st');
    for (const fn of [() => f.entry('zz'), () => f.float32('zz'), () => f.int32('zz'), () => f.bytes('zz')]) {
      assert.throws(fn, (e: unknown) => e instanceof SafetensorsError && /"zz"/.test(e.message) && /mem\.st/.test(e.message));
    }
  });
});

describe('encodeSafetensors validation', () => {
  const isErr = (re: RegExp) => (e: unknown) => e instanceof SafetensorsError && re.test(e.message);

  test('shape product must equal data length', () => {
    assert.throws(
      () => encodeSafetensors({ w: { dtype: 'F32', shape: [2, 3], data: new Float32Array(5) } }),
      isErr(/"w".*6 elements.*5/),
    );
  });

  test('data array type must fit the dtype', () => {
    assert.throws(() => encodeSafetensors({ w: { dtype: 'F32', shape: [1], data: new Int32Array(1) } }), isErr(/"w".*Float32Array.*Int32Array/));
    assert.throws(() => encodeSafetensors({ w: { dtype: 'I32', shape: [1], data: new Float32Array(1) } }), isErr(/"w".*Int32Array/));
    assert.throws(() => encodeSafetensors({ w: { dtype: 'F16', shape: [1], data: new Int32Array(1) } }), isErr(/"w".*Uint16Array/));
    assert.throws(() => encodeSafetensors({ w: { dtype: 'U8' as 'F32', shape: [1], data: new Float32Array(1) } }), isErr(/"w".*dtype/));
  });

  test('invalid shape dims and reserved names are rejected', () => {
    assert.throws(() => encodeSafetensors({ w: { dtype: 'F32', shape: [-1], data: new Float32Array(0) } }), isErr(/"w".*shape/));
    assert.throws(() => encodeSafetensors({ w: { dtype: 'F32', shape: [1.5], data: new Float32Array(1) } }), isErr(/"w".*shape/));
    assert.throws(() => encodeSafetensors({ __metadata__: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }), isErr(/__metadata__/));
  });

  test('metadata values must be strings', () => {
    assert.throws(() => encodeSafetensors({}, { n: 3 as unknown as string }), isErr(/metadata\["n"\].*string/));
  });
});

describe('writeSafetensorsAtomic', () => {
  test('writes a readable file, leaves no temp files, and replaces an existing file', () => {
    const dir = tmpDir();
    try {
      const p = path.join(dir, 'model.safetensors');
      writeSafetensorsAtomic(p, { a: { dtype: 'F32', shape: [2], data: Float32Array.from([1, 2]) } }, { v: '1' });
      let f = SafetensorsFile.open(p);
      assert.equal(f.path, p);
      assert.deepEqual(f.metadata, { v: '1' });
      assert.deepEqual([...f.float32('a')], [1, 2]);
      assert.deepEqual(fs.readdirSync(dir), ['model.safetensors']);

      writeSafetensorsAtomic(p, { b: { dtype: 'I32', shape: [3], data: Int32Array.from([7, 8, 9]) } });
      f = SafetensorsFile.open(p);
      assert.deepEqual(f.names(), ['b']);
      assert.deepEqual(f.metadata, {});
      assert.deepEqual([...f.int32('b')], [7, 8, 9]);
      assert.deepEqual(fs.readdirSync(dir), ['model.safetensors']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an encoding error leaves the existing file untouched and no temp file', () => {
    const dir = tmpDir();
    try {
      const p = path.join(dir, 'w.safetensors');
      writeSafetensorsAtomic(p, { a: { dtype: 'F32', shape: [1], data: Float32Array.from([3]) } });
      const before = fs.readFileSync(p);
      assert.throws(
        () => writeSafetensorsAtomic(p, { a: { dtype: 'F32', shape: [2], data: Float32Array.from([3]) } }),
        SafetensorsError,
      );
      assert.deepEqual(fs.readFileSync(p), before);
      assert.deepEqual(fs.readdirSync(dir), ['w.safetensors']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a failed rename (target is a directory) removes the temp file and raises a SafetensorsError', () => {
    const dir = tmpDir();
    try {
      const p = path.join(dir, 'target.safetensors');
      fs.mkdirSync(p);
      fs.writeFileSync(path.join(p, 'keep'), 'x'); // non-empty dir: rename over it must fail
      assert.throws(
        () => writeSafetensorsAtomic(p, { a: { dtype: 'F32', shape: [1], data: Float32Array.from([3]) } }),
        (e: unknown) => e instanceof SafetensorsError && e.message.includes(p),
      );
      assert.deepEqual(fs.readdirSync(dir), ['target.safetensors']);
      assert.ok(fs.statSync(p).isDirectory());
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a missing parent folder is a SafetensorsError naming the path; nothing is created', () => {
    const dir = tmpDir();
    try {
      const p = path.join(dir, 'no', 'such', 'x.safetensors');
      assert.throws(
        () => writeSafetensorsAtomic(p, { a: { dtype: 'F32', shape: [1], data: Float32Array.from([3]) } }),
        (e: unknown) => e instanceof SafetensorsError && e.message.includes(p),
      );
      assert.deepEqual(fs.readdirSync(dir), []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Hugging Face fixtures', () => {
  test('mamba-tiny F32: A_log is [128, 16]; float32 wraps the bytes read from disk without a second copy', () => {
    const f = SafetensorsFile.open(path.join(FIX, 'mamba-tiny/model.safetensors'));
    assert.equal(f.metadata.format, 'pt');
    const e = f.entry('backbone.layers.0.mixer.A_log');
    assert.equal(e.dtype, 'F32');
    assert.deepEqual(e.shape, [128, 16]);
    assert.equal(e.byteLength, 128 * 16 * 4);
    const v = f.float32('backbone.layers.0.mixer.A_log');
    const raw = f.bytes('backbone.layers.0.mixer.A_log');
    assert.equal(v.length, 128 * 16);
    // Read on demand: the array owns exactly this tensor's bytes (no whole-file buffer, no extra copy).
    assert.equal(v.byteOffset, 0);
    assert.equal(v.buffer.byteLength, e.byteLength);
    // In memory (fromBytes), float32 is a view of the caller's bytes.
    const whole = new Uint8Array(fs.readFileSync(path.join(FIX, 'mamba-tiny/model.safetensors')));
    const m = SafetensorsFile.fromBytes(whole, 'mem');
    assert.equal(m.float32('backbone.layers.0.mixer.A_log').buffer, whole.buffer);
    assert.deepEqual(m.float32('backbone.layers.0.mixer.A_log'), v);
    // Values agree with an independent little-endian decode.
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let i = 0; i < v.length; i += 97) assert.equal(v[i], dv.getFloat32(i * 4, true));
    assert.ok(v.every(Number.isFinite));
    // Every tensor decodes.
    assert.ok(f.names().length > 10);
    for (const n of f.names()) assert.equal(f.float32(n).length * 4, f.entry(n).byteLength);
  });

  test('mamba-tiny-bf16: decode is exact (re-encoding gives back the raw bits)', () => {
    const f = SafetensorsFile.open(path.join(FIX, 'mamba-tiny-bf16/model.safetensors'));
    let checked = 0;
    for (const n of f.names()) {
      const e = f.entry(n);
      assert.equal(e.dtype, 'BF16');
      const vals = f.float32(n);
      const raw = f.bytes(n);
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      assert.equal(vals.length * 2, raw.byteLength);
      for (let i = 0; i < vals.length; i++) {
        if (f32ToBf16(vals[i]) !== dv.getUint16(i * 2, true)) assert.fail(`${n}[${i}] does not round-trip`);
      }
      checked += vals.length;
    }
    assert.ok(checked > 1000);
    assert.deepEqual(f.entry('backbone.layers.0.mixer.A_log').shape, [128, 16]);
  });

  test('reference.safetensors: int32 input_ids [2, 37] (bf16 fixture: [2, 29]); prompt is a prefix of generated tokens', () => {
    assert.ok(SafetensorsFile.open(path.join(FIX, 'mamba-tiny/reference.safetensors')).has('generate.prompt'));
    for (const [model, seq] of [['mamba-tiny', 37], ['mamba-tiny-bf16', 29]] as const) {
      const f = SafetensorsFile.open(path.join(FIX, model, 'reference.safetensors'));
      const e = f.entry('input_ids');
      assert.equal(e.dtype, 'I32');
      assert.deepEqual(e.shape, [2, seq]);
      const ids = f.int32('input_ids');
      assert.equal(ids.length, 2 * seq);
      assert.ok(ids.every((t) => t >= 0 && t < 512), 'token ids within the tiny vocab');
      if (f.has('generate.prompt')) {
        const prompt = f.int32('generate.prompt');
        const tokens = f.int32('generate.tokens');
        assert.deepEqual([...tokens.subarray(0, prompt.length)], [...prompt]);
      }
      assert.deepEqual(f.entry('logits').shape, [2, seq, 512]);
      assert.equal(f.float32('logits').length, 2 * seq * 512);
    }
  });

  test('open() of a missing file names the path', () => {
    const p = path.join(FIX, 'does-not-exist.safetensors');
    assert.throws(() => SafetensorsFile.open(p), (e: unknown) => e instanceof SafetensorsError && e.message.includes(p) && /not found/.test(e.message));
  });

  test('open() of a directory is a SafetensorsError', () => {
    assert.throws(() => SafetensorsFile.open(FIX), (e: unknown) => e instanceof SafetensorsError && e.message.includes(FIX));
  });
});

describe('malformed files are rejected with a SafetensorsError naming file and field', () => {
  test('sanity: the base header used below is valid', () => {
    const f = SafetensorsFile.fromBytes(build(goodHeader(), 24), 'bad.safetensors');
    assert.deepEqual(f.names(), ['a', 'b']);
  });

  test('file shorter than 8 bytes', () => {
    expectBadBytes(new Uint8Array(0), /too short/, /8 bytes/, /found 0/);
    expectBadBytes(new Uint8Array(5), /too short/, /found 5/);
  });

  test('header length past end of file', () => {
    const h = new TextEncoder().encode(JSON.stringify(goodHeader()));
    expectBadBytes(buildRaw(h, 0, BigInt(h.byteLength + 1)), /header length/, /past end of file/);
    expectBadBytes(buildRaw(new Uint8Array(0), 0, 1n), /header length 1/, /past end/);
  });

  test('absurd header size is rejected before allocating (u64 max and just over 100 MB)', () => {
    expectBadBytes(buildRaw(new Uint8Array(16), 0, 0xffffffffffffffffn), /header length 18446744073709551615/, /absurd/, /at most/);
    expectBadBytes(buildRaw(new Uint8Array(16), 0, BigInt(MAX_HEADER_BYTES + 1)), /absurd/);
  });

  test('header not valid UTF-8', () => {
    const h = new TextEncoder().encode('{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}');
    h[3] = 0xff;
    expectBadBytes(buildRaw(h), /header/, /UTF-8/);
  });

  test('header not valid JSON', () => {
    expectBadBytes(build('{"a": {"dtype": "F32",'), /header/, /not valid JSON/);
    expectBadBytes(build(''), /header/, /not valid JSON/);
  });

  test('header not a JSON object', () => {
    expectBadBytes(build('[1,2]'), /header/, /expected a JSON object/, /array/);
    expectBadBytes(build('42'), /header/, /expected a JSON object/, /42/);
    expectBadBytes(build('null'), /header/, /expected a JSON object/, /null/);
  });

  test('__metadata__ not a string->string map', () => {
    expectBad((h) => (h.__metadata__ = { format: 1 }), /__metadata__\["format"\]/, /expected a string/, /found 1/);
    expectBad((h) => (h.__metadata__ = ['pt']), /__metadata__/, /expected an object/);
    expectBad((h) => (h.__metadata__ = 'pt'), /__metadata__/, /expected an object/);
  });

  test('entry not an object', () => {
    expectBad((h) => (h.a = [1, 2]), /tensor "a"/, /expected an object/);
  });

  test('entry missing dtype', () => {
    expectBad((h) => delete h.a.dtype, /tensor "a"/, /missing field "dtype"/);
  });

  test('entry missing shape', () => {
    expectBad((h) => delete h.b.shape, /tensor "b"/, /missing field "shape"/);
  });

  test('entry missing data_offsets', () => {
    expectBad((h) => delete h.a.data_offsets, /tensor "a"/, /missing field "data_offsets"/);
  });

  test('dtype of the wrong type', () => {
    expectBad((h) => (h.a.dtype = 4), /tensor "a"/, /dtype/, /expected a string/, /found 4/);
  });

  test('shape of the wrong type', () => {
    expectBad((h) => (h.a.shape = '2'), /tensor "a"/, /shape/, /expected an array/);
    expectBad((h) => (h.a.shape = ['2']), /tensor "a"/, /shape/, /non-negative integer/, /found "2"/);
  });

  test('data_offsets of the wrong type', () => {
    expectBad((h) => (h.a.data_offsets = '0,8'), /tensor "a"/, /data_offsets/, /two non-negative integers/);
    expectBad((h) => (h.a.data_offsets = { begin: 0, end: 8 }), /tensor "a"/, /data_offsets/);
  });

  test('shape with a negative dim', () => {
    expectBad((h) => (h.a.shape = [-2]), /tensor "a"/, /shape \[-2\]/, /non-negative integer/, /found -2/);
  });

  test('shape with a non-integer dim', () => {
    expectBad((h) => (h.a.shape = [2.5]), /tensor "a"/, /shape/, /found 2\.5/);
  });

  test('shape whose element count overflows', () => {
    expectBad((h) => (h.a.shape = [2 ** 40, 2 ** 40]), /tensor "a"/, /shape/, /too large/);
  });

  test('unknown dtype', () => {
    expectBad((h) => (h.a.dtype = 'F8_E4M3'), /tensor "a"/, /unknown dtype "F8_E4M3"/, /expected one of .*BF16/);
    expectBad((h) => (h.a.dtype = 'toString'), /tensor "a"/, /unknown dtype "toString"/);
  });

  test('data_offsets not exactly two items', () => {
    expectBad((h) => (h.a.data_offsets = [0, 4, 8]), /tensor "a"/, /data_offsets/, /found \[0,4,8\]/);
    expectBad((h) => (h.a.data_offsets = [0]), /tensor "a"/, /data_offsets/);
  });

  test('data_offsets negative', () => {
    expectBad((h) => (h.a.data_offsets = [-8, 0]), /tensor "a"/, /data_offsets/, /non-negative/);
  });

  test('data_offsets non-integer', () => {
    expectBad((h) => (h.a.data_offsets = [0, 7.5]), /tensor "a"/, /data_offsets/, /integers/);
    expectBad((h) => (h.a.data_offsets = [0, 1e300]), /tensor "a"/, /data_offsets/);
  });

  test('data_offsets with begin > end', () => {
    expectBad((h) => (h.a.data_offsets = [8, 0]), /tensor "a"/, /data_offsets \[8, 0\]/, /begin <= end/);
  });

  test('data_offsets outside the data section', () => {
    expectBad((h) => (h.b.data_offsets = [8, 28]), /tensor "b"/, /outside the data section/, /end <= 24/);
    expectBad((h) => (h.b = { dtype: 'F32', shape: [1], data_offsets: [100, 104] }), /tensor "b"/, /outside the data section/);
  });

  test('byte length does not match shape x dtype size', () => {
    expectBad((h) => (h.b.shape = [5]), /tensor "b"/, /needs 20 bytes/, /hold 16/, /mismatch/);
    expectBad((h) => (h.a.dtype = 'F16'), /tensor "a"/, /F16/, /needs 4 bytes/, /hold 8/);
  });

  test('overlapping tensors', () => {
    expectBad((h) => (h.b.data_offsets = [4, 20]), /overlap/, /"a"/, /"b"/, /\[4, 20\]/);
    // fully contained, listed first in the header
    const bytes = build(
      {
        inner: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
        outer: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
      },
      16,
    );
    expectBadBytes(bytes, /overlap/, /"inner"/, /"outer"/);
  });

  test('corrupting a real encodeSafetensors output byte-wise is caught', () => {
    const enc = encodeSafetensors({ w: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
    // truncate the data section
    expectBadBytes(enc.subarray(0, enc.byteLength - 1), /tensor "w"/, /outside the data section/);
    // truncate inside the header
    expectBadBytes(enc.subarray(0, 20), /past end of file/);
  });
});
