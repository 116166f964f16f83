/**
 * The safetensors format, with no I/O of its own (so it runs in browsers too): header parsing and
 * validation, tensor access over any byte source, and encoding. `safetensors.ts` adds file reading and
 * atomic writing on Node and re-exports all of this.
 *
 * Layout of a `.safetensors` file:
 *
 *     [u64 little-endian N][N bytes of UTF-8 JSON header (may be space-padded)][data section]
 *
 * The header maps tensor names to `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to
 * the start of the data section, i.e. absolute offset = 8 + N + begin), plus an optional
 * `"__metadata__"` string→string map.
 *
 * Reading: the header is read and validated up front; each tensor's bytes are read from the source when
 * asked for (`SafetensorsFile.open(path)` in safetensors.ts reads a file this way, one copy per tensor,
 * no file-size limit; `fromSource` takes any range reader, `fromBytes` bytes already in memory). Validation covers
 * (sizes, types, dtypes, offsets inside the data section, byte counts matching shapes, no overlaps;
 * gaps between tensors are allowed). Every problem is reported as a `SafetensorsError` whose message
 * names the file, the tensor/field and what was expected vs found. After opening, accessors never
 * fail on malformed data, only on a wrong dtype or a missing name.
 *
 * `float32()` of an F32 tensor and `int32()` of an I32 tensor are zero-copy views into the file bytes
 * when the data is 4-byte aligned (always the case for files written by Hugging Face `safetensors`
 * and by `encodeSafetensors` when no 2-byte tensor precedes them); otherwise a copy. Views alias the
 * file buffer: treat them as read-only. A little-endian host is assumed for views; on a big-endian
 * host values are decoded through a DataView instead.
 *
 * Writing: `encodeSafetensors` lays tensors out contiguously in insertion order (as Hugging Face's
 * reader requires: no gaps), with the header padded by spaces to a multiple of 8 bytes.
 */
import { decodeHalf, f32ToBf16, f32ToF16 } from '../tensor/dtype.js';
import { MambaTsError } from '../errors.js';

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element of each supported dtype. */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export interface TensorEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** absolute offset of the tensor's first byte in the file */
  byteOffset: number;
  byteLength: number;
  /** path (or label) of the file holding the tensor */
  file: string;
}

/** Every validation / lookup error raised by this module and by `weights.ts`. */
export class SafetensorsError extends MambaTsError {}

/** Headers larger than this are rejected before anything is allocated for them. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_BYTES, s);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Short, bounded rendering of a JSON value for error messages. */
function show(v: unknown): string {
  let s: string;
  try {
    s = v === undefined ? 'undefined' : JSON.stringify(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/**
 * Where the bytes of a safetensors file come from: memory, or a file (or Blob) read on demand.
 * `read` returns `length` bytes (a view or a fresh buffer) or throws a SafetensorsError.
 */
export interface ByteSource {
  readonly length: number;
  read(offset: number, length: number): Uint8Array;
}

export class SafetensorsFile {
  /** Path (or the label given to `fromBytes`), used in every message. */
  readonly path: string;
  readonly metadata: Record<string, string>;
  private readonly source: ByteSource;
  private readonly entries: Map<string, TensorEntry>;

  protected constructor(source: ByteSource, label: string) {
    this.path = label;
    this.source = source;
    const parsed = parseHeader(source, label);
    this.metadata = parsed.metadata;
    this.entries = parsed.entries;
  }

  /** Parse in-memory bytes; `label` stands in for the file name in messages. The bytes are not copied. */
  static fromBytes(bytes: Uint8Array, label: string): SafetensorsFile {
    return new SafetensorsFile({ length: bytes.byteLength, read: (o, n) => bytes.subarray(o, o + n) }, label);
  }

  /**
   * Parse bytes read on demand from `source` (a file, a Blob read with FileReaderSync, ...); `label`
   * stands in for the file name in messages. Only the header is read now.
   */
  static fromSource(source: ByteSource, label: string): SafetensorsFile {
    return new SafetensorsFile(source, label);
  }

  /** Tensor names in file order (by data offset; header order for ties). */
  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  entry(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (!e) throw new SafetensorsError(`tensor "${name}" not found in ${this.path}`);
    return e;
  }

  /** Raw bytes of a tensor: a view of in-memory bytes, or freshly read from the file (aligned at 0). */
  bytes(name: string): Uint8Array {
    const e = this.entry(name);
    return this.source.read(e.byteOffset, e.byteLength);
  }

  /**
   * Values as float32. F32: zero-copy view when aligned (treat as read-only), else a copy.
   * F16/BF16: decoded into a new array. Other dtypes: SafetensorsError.
   */
  float32(name: string): Float32Array {
    const e = this.entry(name);
    const raw = this.bytes(name);
    const count = e.byteLength / SAFETENSORS_DTYPE_BYTES[e.dtype];
    switch (e.dtype) {
      case 'F32': {
        if (LITTLE_ENDIAN_HOST) {
          if (raw.byteOffset % 4 === 0) return new Float32Array(raw.buffer, raw.byteOffset, count);
          return new Float32Array(raw.slice().buffer, 0, count);
        }
        const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        const out = new Float32Array(count);
        for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
        return out;
      }
      case 'F16':
        return decodeHalf(raw, 'f16', count);
      case 'BF16':
        return decodeHalf(raw, 'bf16', count);
      default:
        throw new SafetensorsError(
          `${this.path}: tensor "${name}" has dtype ${e.dtype}; expected a float dtype (F32, F16 or BF16)`,
        );
    }
  }

  /**
   * Values as int32. I32: zero-copy view when aligned (treat as read-only), else a copy.
   * I64: converted into a new array (error if a value does not fit in int32). Other dtypes: error.
   */
  int32(name: string): Int32Array {
    const e = this.entry(name);
    const raw = this.bytes(name);
    const count = e.byteLength / SAFETENSORS_DTYPE_BYTES[e.dtype];
    if (e.dtype === 'I32') {
      if (LITTLE_ENDIAN_HOST) {
        if (raw.byteOffset % 4 === 0) return new Int32Array(raw.buffer, raw.byteOffset, count);
        return new Int32Array(raw.slice().buffer, 0, count);
      }
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getInt32(i * 4, true);
      return out;
    }
    if (e.dtype === 'I64') {
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const v = dv.getBigInt64(i * 8, true);
        if (v < -2147483648n || v > 2147483647n) {
          throw new SafetensorsError(
            `${this.path}: tensor "${name}" (I64) element ${i} = ${v} does not fit in int32`,
          );
        }
        out[i] = Number(v);
      }
      return out;
    }
    throw new SafetensorsError(
      `${this.path}: tensor "${name}" has dtype ${e.dtype}; expected an integer dtype (I32 or I64)`,
    );
  }
}

/** Parse and validate the header of `bytes`. Entries are returned ordered by data offset. */
function parseHeader(
  source: ByteSource,
  label: string,
): { metadata: Record<string, string>; entries: Map<string, TensorEntry> } {
  function fail(msg: string): never {
    throw new SafetensorsError(`${label}: ${msg}`);
  }

  const fileLength = source.length;
  if (fileLength < 8) {
    fail(`file too short: expected at least 8 bytes (header length), found ${fileLength}`);
  }
  const prefix = source.read(0, 8);
  const headerLen64 = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (headerLen64 > BigInt(MAX_HEADER_BYTES)) {
    fail(`header length ${headerLen64} bytes is absurd: expected at most ${MAX_HEADER_BYTES}`);
  }
  const headerLen = Number(headerLen64);
  if (8 + headerLen > fileLength) {
    fail(`header length ${headerLen} runs past end of file: expected at most ${fileLength - 8} bytes after the 8-byte prefix`);
  }

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(source.read(8, headerLen));
  } catch {
    return fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(header)) {
    return fail(`header: expected a JSON object, found ${Array.isArray(header) ? 'an array' : show(header)}`);
  }

  const metadata: Record<string, string> = {};
  const rawMeta = header['__metadata__'];
  if (rawMeta !== undefined && rawMeta !== null) {
    if (!isPlainObject(rawMeta)) fail(`__metadata__: expected an object of strings, found ${show(rawMeta)}`);
    for (const [k, v] of Object.entries(rawMeta as Record<string, unknown>)) {
      if (typeof v !== 'string') fail(`__metadata__["${k}"]: expected a string, found ${show(v)}`);
      metadata[k] = v as string;
    }
  }

  const dataStart = 8 + headerLen;
  const dataLen = fileLength - dataStart;
  const list: { e: TensorEntry; begin: number; end: number }[] = [];

  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const where = `tensor "${name}"`;
    if (!isPlainObject(raw)) fail(`${where}: expected an object {dtype, shape, data_offsets}, found ${show(raw)}`);
    const info = raw as Record<string, unknown>;

    const dtype = info['dtype'];
    if (dtype === undefined) fail(`${where}: missing field "dtype"`);
    if (typeof dtype !== 'string') fail(`${where}: dtype: expected a string, found ${show(dtype)}`);
    if (!isDType(dtype)) {
      fail(`${where}: unknown dtype ${show(dtype)}; expected one of ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')}`);
    }

    const shape = info['shape'];
    if (shape === undefined) fail(`${where}: missing field "shape"`);
    if (!Array.isArray(shape)) fail(`${where}: shape: expected an array of integers, found ${show(shape)}`);
    let count = 1;
    for (const d of shape as unknown[]) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        fail(`${where}: shape ${show(shape)}: expected non-negative integer dims, found ${show(d)}`);
      }
      count *= d as number;
      if (!Number.isSafeInteger(count)) fail(`${where}: shape ${show(shape)}: element count is too large`);
    }

    const offs = info['data_offsets'];
    if (offs === undefined) fail(`${where}: missing field "data_offsets"`);
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !offs.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)
    ) {
      fail(`${where}: data_offsets: expected two non-negative integers [begin, end], found ${show(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) fail(`${where}: data_offsets [${begin}, ${end}]: expected begin <= end`);
    if (end > dataLen) {
      fail(`${where}: data_offsets [${begin}, ${end}] outside the data section: expected end <= ${dataLen}`);
    }
    const size = SAFETENSORS_DTYPE_BYTES[dtype as SafetensorsDType];
    const expected = count * size;
    if (end - begin !== expected) {
      fail(
        `${where}: shape ${show(shape)} x ${dtype} (${size} bytes) needs ${expected} bytes, ` +
          `but data_offsets [${begin}, ${end}] hold ${end - begin} (shape/byte-count mismatch)`,
      );
    }

    list.push({
      e: {
        name,
        dtype: dtype as SafetensorsDType,
        shape: (shape as number[]).slice(),
        byteOffset: dataStart + begin,
        byteLength: end - begin,
        file: label,
      },
      begin,
      end,
    });
  }

  // Stable sort by begin: "file order", and the basis of the overlap check.
  list.sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < list.length; i++) {
    const prev = list[i - 1];
    const cur = list[i];
    if (cur.begin < prev.end) {
      fail(
        `tensor "${cur.e.name}" data_offsets [${cur.begin}, ${cur.end}] overlap tensor "${prev.e.name}" ` +
          `[${prev.begin}, ${prev.end}]: expected begin >= ${prev.end}`,
      );
    }
  }

  const entries = new Map<string, TensorEntry>();
  for (const { e } of list) entries.set(e.name, e);
  return { metadata, entries };
}
// ------------------------------------------------------------------------------------------------
// Writing

export type WritableTensor = {
  dtype: 'F32' | 'F16' | 'BF16' | 'I32';
  shape: number[];
  /** Float32Array for F32 (or F16/BF16, converted with round-to-nearest-even); Int32Array for I32;
   *  Uint16Array = raw f16/bf16 bits. */
  data: Float32Array | Int32Array | Uint16Array;
};

/** Little-endian bytes of one tensor's data, validated against its dtype and shape. */
function tensorBytes(name: string, t: WritableTensor): Uint8Array {
  const where = `encodeSafetensors: tensor "${name}"`;
  if (!isPlainObject(t)) throw new SafetensorsError(`${where}: expected {dtype, shape, data}, found ${show(t)}`);
  if (!Array.isArray(t.shape)) throw new SafetensorsError(`${where}: shape: expected an array, found ${show(t.shape)}`);
  let count = 1;
  for (const d of t.shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new SafetensorsError(`${where}: shape ${show(t.shape)}: expected non-negative integer dims, found ${show(d)}`);
    }
    count *= d;
  }
  const { dtype, data } = t;
  const ok =
    (dtype === 'F32' && data instanceof Float32Array) ||
    (dtype === 'I32' && data instanceof Int32Array) ||
    ((dtype === 'F16' || dtype === 'BF16') && (data instanceof Float32Array || data instanceof Uint16Array));
  if (!ok) {
    const found = (data as object | null)?.constructor?.name ?? String(data);
    const want =
      dtype === 'F32' ? 'Float32Array' : dtype === 'I32' ? 'Int32Array' : dtype === 'F16' || dtype === 'BF16' ? 'Float32Array or Uint16Array' : null;
    if (want === null) {
      throw new SafetensorsError(`${where}: dtype ${show(dtype)}: expected one of F32, F16, BF16, I32`);
    }
    throw new SafetensorsError(`${where}: dtype ${dtype}: expected data as ${want}, found ${found}`);
  }
  if (data.length !== count) {
    throw new SafetensorsError(
      `${where}: shape ${show(t.shape)} has ${count} elements but data has ${data.length} (shape/data length mismatch)`,
    );
  }

  if ((dtype === 'F16' || dtype === 'BF16') && data instanceof Float32Array) {
    const bits = new Uint16Array(count);
    const conv = dtype === 'F16' ? f32ToF16 : f32ToBf16;
    for (let i = 0; i < count; i++) bits[i] = conv(data[i]);
    return toLittleEndianBytes(bits);
  }
  return toLittleEndianBytes(data);
}

function toLittleEndianBytes(a: Float32Array | Int32Array | Uint16Array): Uint8Array {
  const view = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (LITTLE_ENDIAN_HOST) return view;
  const out = new Uint8Array(a.byteLength);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) {
    if (a instanceof Float32Array) dv.setFloat32(i * 4, a[i], true);
    else if (a instanceof Int32Array) dv.setInt32(i * 4, a[i], true);
    else dv.setUint16(i * 2, a[i], true);
  }
  return out;
}

/**
 * Serialize tensors (in insertion order, contiguous) with optional string metadata.
 * The header JSON is padded with spaces so the data section starts at a multiple of 8.
 */
export function encodeSafetensors(
  tensors: Record<string, WritableTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) throw new SafetensorsError(`encodeSafetensors: metadata: expected an object of strings`);
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') {
        throw new SafetensorsError(`encodeSafetensors: metadata["${k}"]: expected a string, found ${show(v)}`);
      }
    }
    header['__metadata__'] = { ...metadata };
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__' || name === '') {
      throw new SafetensorsError(`encodeSafetensors: invalid tensor name ${show(name)}`);
    }
    const b = tensorBytes(name, t);
    header[name] = { dtype: t.dtype, shape: t.shape.slice(), data_offsets: [offset, offset + b.byteLength] };
    chunks.push(b);
    offset += b.byteLength;
  }
  // Note: integer-like names ("0", "1") would be reordered by JSON object semantics; offsets stay correct.
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLen = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + headerLen + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + headerLen);
  let pos = 8 + headerLen;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.byteLength;
  }
  return out;
}
