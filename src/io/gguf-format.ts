/**
 * The GGUF file format (llama.cpp's single-file checkpoints), with no I/O of its own (browser-safe):
 * `GgufFile` parses the header — magic, version, metadata key/values, tensor infos — from a `ByteSource`
 * and reads tensors on demand (dequantized to float32 by gguf-quants.ts); `encodeGguf` writes one.
 *
 * Layout (little-endian): "GGUF", u32 version (2 or 3), u64 tensor count, u64 metadata count, the
 * metadata (string key, u32 value type, value), the tensor infos (string name, u32 n_dims, u64 ne[n_dims]
 * fastest-varying first, u32 ggml type, u64 offset into the data section), padding to `general.alignment`
 * (default 32), the data section. A shape here is ggml's `ne` reversed (row-major, like safetensors).
 *
 * Every error is a `GgufError` naming the file and the field, tensor or byte offset involved.
 */
import { MambaTsError } from '../errors.js';
import type { ByteSource } from './safetensors-format.js';
import { GGML_TYPES, dequantize, ggmlTypeName, type GgmlTypeInfo } from './gguf-quants.js';

export class GgufError extends MambaTsError {}

/** GGUF metadata value types */
export const GGUF_VALUE = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12,
} as const;
const VALUE_NAMES = Object.fromEntries(Object.entries(GGUF_VALUE).map(([k, v]) => [v, k.toLowerCase()])) as Record<number, string>;
const SCALAR_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

export type GgufScalar = number | bigint | boolean | string;
/** A metadata value as stored: its type (arrays: of which element type) and its value. */
export interface GgufValue {
  type: number;
  /** element type of an array */
  itemType?: number;
  value: GgufScalar | GgufScalar[];
}

export interface GgufTensorInfo {
  name: string;
  /** row-major shape (ggml's ne reversed) */
  shape: number[];
  /** ggml type id (GGML_TYPES) */
  type: number;
  /** absolute byte offset in the file */
  offset: number;
  byteLength: number;
}

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** Sanity limits: a header that claims more than these is rejected before allocating for it. */
const MAX_KV = 1 << 20;
const MAX_TENSORS = 1 << 20;
const MAX_STRING = 64 << 20;
const MAX_ARRAY = 1 << 28;
const MAX_DIMS = 4;

/** A cursor over a ByteSource that reads the header in chunks, with bounds checks that name what was read. */
class Reader {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private bufStart = 0;
  private readonly dec = new TextDecoder('utf-8', { fatal: true });

  constructor(private readonly src: ByteSource, private readonly label: string) {}

  private ensure(n: number, what: string): DataView {
    if (this.pos + n > this.src.length) {
      throw new GgufError(`${this.label}: truncated: ${what} needs ${n} bytes at offset ${this.pos}, but the file has ${this.src.length} bytes`);
    }
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.byteLength) {
      const len = Math.min(Math.max(n, 1 << 20), this.src.length - this.pos);
      this.buf = this.src.read(this.pos, len);
      this.bufStart = this.pos;
    }
    const off = this.pos - this.bufStart;
    this.pos += n;
    return new DataView(this.buf.buffer, this.buf.byteOffset + off, n);
  }
  u32(what: string): number {
    return this.ensure(4, what).getUint32(0, true);
  }
  /** a u64 count or size: must fit a safe integer and be at most `max` */
  u64(what: string, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.ensure(8, what).getBigUint64(0, true);
    if (v > BigInt(max)) throw new GgufError(`${this.label}: ${what} is ${v}, expected at most ${max}`);
    return Number(v);
  }
  str(what: string): string {
    const n = this.u64(`length of ${what}`, MAX_STRING);
    const dv = this.ensure(n, what);
    try {
      return this.dec.decode(new Uint8Array(dv.buffer, dv.byteOffset, n));
    } catch {
      throw new GgufError(`${this.label}: ${what} is not valid UTF-8 (at offset ${this.pos - n})`);
    }
  }
  scalar(type: number, what: string): GgufScalar {
    if (type === GGUF_VALUE.STRING) return this.str(what);
    const size = SCALAR_BYTES[type];
    if (size === undefined) throw new GgufError(`${this.label}: ${what}: unknown value type ${type} (expected 0..12)`);
    const dv = this.ensure(size, what);
    switch (type) {
      case GGUF_VALUE.UINT8: return dv.getUint8(0);
      case GGUF_VALUE.INT8: return dv.getInt8(0);
      case GGUF_VALUE.UINT16: return dv.getUint16(0, true);
      case GGUF_VALUE.INT16: return dv.getInt16(0, true);
      case GGUF_VALUE.UINT32: return dv.getUint32(0, true);
      case GGUF_VALUE.INT32: return dv.getInt32(0, true);
      case GGUF_VALUE.FLOAT32: return dv.getFloat32(0, true);
      case GGUF_VALUE.BOOL: {
        const b = dv.getUint8(0);
        if (b > 1) throw new GgufError(`${this.label}: ${what}: bool byte is ${b}, expected 0 or 1`);
        return b === 1;
      }
      case GGUF_VALUE.UINT64: return narrow(dv.getBigUint64(0, true));
      case GGUF_VALUE.INT64: return narrow(dv.getBigInt64(0, true));
      default: return dv.getFloat64(0, true);
    }
  }
}

/** 64-bit integers as numbers where exact, else bigint */
function narrow(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
}

export class GgufFile {
  readonly version: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly tensors: ReadonlyMap<string, GgufTensorInfo>;
  readonly alignment: number;
  /** absolute offset of the data section */
  readonly dataOffset: number;

  private constructor(private readonly source: ByteSource, readonly path: string) {
    const r = new Reader(source, path);
    if (source.length < 4) throw new GgufError(`${path}: not a GGUF file: ${source.length} bytes, expected at least the 24-byte header`);
    const magic = r.u32('magic');
    if (magic !== GGUF_MAGIC) {
      const shown = Array.from(source.read(0, 4), (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('');
      throw new GgufError(`${path}: not a GGUF file: magic is "${shown}", expected "GGUF"`);
    }
    this.version = r.u32('version');
    if (this.version !== 2 && this.version !== 3) throw new GgufError(`${path}: GGUF version ${this.version} is not supported (expected 2 or 3)`);
    const nTensors = r.u64('tensor count', MAX_TENSORS);
    const nKv = r.u64('metadata count', MAX_KV);

    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < nKv; i++) {
      const key = r.str(`metadata key ${i}`);
      const type = r.u32(`type of metadata "${key}"`);
      if (type === GGUF_VALUE.ARRAY) {
        const itemType = r.u32(`element type of metadata "${key}"`);
        if (itemType === GGUF_VALUE.ARRAY) throw new GgufError(`${path}: metadata "${key}": nested arrays are not supported`);
        const n = r.u64(`length of metadata "${key}"`, MAX_ARRAY);
        const size = SCALAR_BYTES[itemType] ?? (itemType === GGUF_VALUE.STRING ? 8 : undefined);
        if (size === undefined) throw new GgufError(`${path}: metadata "${key}": unknown element type ${itemType} (expected 0..12)`);
        if (r.pos + n * size > source.length) {
          throw new GgufError(`${path}: truncated: metadata "${key}" claims ${n} elements (at least ${n * size} bytes) at offset ${r.pos}, but the file has ${source.length} bytes`);
        }
        const arr: GgufScalar[] = new Array(n);
        for (let j = 0; j < n; j++) arr[j] = r.scalar(itemType, `metadata "${key}"[${j}]`);
        metadata.set(key, { type, itemType, value: arr });
      } else {
        metadata.set(key, { type, value: r.scalar(type, `metadata "${key}"`) });
      }
    }
    this.metadata = metadata;

    const align = metadata.get('general.alignment');
    this.alignment = GGUF_DEFAULT_ALIGNMENT;
    if (align !== undefined) {
      const a = align.value;
      if (typeof a !== 'number' || !Number.isInteger(a) || a <= 0 || (a & (a - 1)) !== 0) {
        throw new GgufError(`${path}: metadata "general.alignment" is ${JSON.stringify(String(a))}, expected a power of two`);
      }
      this.alignment = a;
    }

    const infos: Array<Omit<GgufTensorInfo, 'offset'> & { rel: number }> = [];
    for (let i = 0; i < nTensors; i++) {
      const name = r.str(`name of tensor ${i}`);
      const nDims = r.u32(`n_dims of tensor "${name}"`);
      if (nDims < 1 || nDims > MAX_DIMS) throw new GgufError(`${path}: tensor "${name}": n_dims is ${nDims}, expected 1..${MAX_DIMS}`);
      const ne: number[] = [];
      for (let d = 0; d < nDims; d++) ne.push(r.u64(`dimension ${d} of tensor "${name}"`, 2 ** 40));
      const type = r.u32(`type of tensor "${name}"`);
      const info = GGML_TYPES[type];
      if (!info) throw new GgufError(`${path}: tensor "${name}" has ggml type ${type} (${ggmlTypeName(type)}), which is not supported (supported: ${supportedTypeNames()})`);
      const rel = r.u64(`offset of tensor "${name}"`);
      const count = ne.reduce((a, b) => a * b, 1);
      if (!Number.isSafeInteger(count) || ne.some((d) => d === 0)) throw new GgufError(`${path}: tensor "${name}" has dimensions [${ne.join(', ')}], expected positive sizes`);
      if (ne[0] % info.blockSize !== 0) {
        throw new GgufError(`${path}: tensor "${name}" (${info.name}) has a row of ${ne[0]} values, not a multiple of the ${info.name} block size ${info.blockSize}`);
      }
      if (rel % this.alignment !== 0) throw new GgufError(`${path}: tensor "${name}" is at data offset ${rel}, not a multiple of the alignment ${this.alignment}`);
      if (infos.some((t) => t.name === name)) throw new GgufError(`${path}: tensor "${name}" is listed twice`);
      infos.push({ name, shape: [...ne].reverse(), type, rel, byteLength: (count / info.blockSize) * info.blockBytes });
    }
    this.dataOffset = Math.ceil(r.pos / this.alignment) * this.alignment;
    const tensors = new Map<string, GgufTensorInfo>();
    for (const t of infos) {
      const offset = this.dataOffset + t.rel;
      if (offset + t.byteLength > source.length) {
        throw new GgufError(`${path}: tensor "${t.name}" spans bytes ${offset}..${offset + t.byteLength}, beyond the end of the file (${source.length} bytes): truncated or a bad offset`);
      }
      tensors.set(t.name, { name: t.name, shape: t.shape, type: t.type, offset, byteLength: t.byteLength });
    }
    const sorted = [...tensors.values()].sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < sorted.length; i++) {
      const p = sorted[i - 1];
      if (sorted[i].offset < p.offset + p.byteLength) throw new GgufError(`${path}: tensors "${p.name}" and "${sorted[i].name}" overlap in the data section`);
    }
    this.tensors = tensors;
  }

  /** Parse in-memory bytes (not copied). */
  static fromBytes(bytes: Uint8Array, label: string): GgufFile {
    return new GgufFile({ length: bytes.byteLength, read: (o, n) => bytes.subarray(o, o + n) }, label);
  }

  /** Parse a header read on demand from `source`; tensors are read when asked for. */
  static fromSource(source: ByteSource, label: string): GgufFile {
    return new GgufFile(source, label);
  }

  has(key: string): boolean {
    return this.metadata.has(key);
  }

  /** a metadata value; `undefined` when absent */
  get(key: string): GgufScalar | GgufScalar[] | undefined {
    return this.metadata.get(key)?.value;
  }

  /** a numeric metadata value (any integer or float type); `dflt` when absent, else an error naming the key */
  num(key: string, dflt?: number): number {
    const v = this.get(key);
    if (v === undefined) {
      if (dflt !== undefined) return dflt;
      throw new GgufError(`${this.path}: metadata "${key}" is missing (expected a number)`);
    }
    if (typeof v !== 'number') throw new GgufError(`${this.path}: metadata "${key}" is ${describe(this.metadata.get(key)!)}, expected a number`);
    return v;
  }

  /** a non-negative integer metadata value */
  int(key: string, dflt?: number): number {
    const v = this.num(key, dflt);
    if (!Number.isInteger(v) || v < 0) throw new GgufError(`${this.path}: metadata "${key}" is ${v}, expected a non-negative integer`);
    return v;
  }

  /** an integer, or an array of per-layer integers (`{arch}.attention.head_count_kv` etc.), as `n` values */
  perLayer(key: string, n: number, dflt?: number): number[] {
    const v = this.get(key);
    if (Array.isArray(v)) {
      if (v.length !== n || !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) {
        throw new GgufError(`${this.path}: metadata "${key}" is an array of ${v.length} values, expected ${n} non-negative integers (one per layer)`);
      }
      return v as number[];
    }
    return new Array(n).fill(this.int(key, dflt));
  }

  bool(key: string, dflt: boolean): boolean {
    const v = this.get(key);
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') throw new GgufError(`${this.path}: metadata "${key}" is ${describe(this.metadata.get(key)!)}, expected a bool`);
    return v;
  }

  str(key: string, dflt?: string): string {
    const v = this.get(key);
    if (v === undefined) {
      if (dflt !== undefined) return dflt;
      throw new GgufError(`${this.path}: metadata "${key}" is missing (expected a string)`);
    }
    if (typeof v !== 'string') throw new GgufError(`${this.path}: metadata "${key}" is ${describe(this.metadata.get(key)!)}, expected a string`);
    return v;
  }

  tensor(name: string): GgufTensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new GgufError(`${this.path}: tensor "${name}" not found`);
    return t;
  }

  /** the stored bytes of a tensor */
  bytes(name: string): Uint8Array {
    const t = this.tensor(name);
    return this.source.read(t.offset, t.byteLength);
  }

  /** a tensor as float32 (dequantized), row-major in `shape` */
  float32(name: string): Float32Array {
    const t = this.tensor(name);
    return dequantize(this.bytes(name), t.type, t.shape.reduce((a, b) => a * b, 1));
  }
}

function supportedTypeNames(): string {
  return Object.values(GGML_TYPES).map((t: GgmlTypeInfo) => t.name).join(', ');
}

function describe(v: GgufValue): string {
  if (v.type === GGUF_VALUE.ARRAY) return `an array of ${(v.value as unknown[]).length} ${VALUE_NAMES[v.itemType ?? -1] ?? '?'}`;
  return `${VALUE_NAMES[v.type]} ${JSON.stringify(typeof v.value === 'bigint' ? String(v.value) : v.value)}`;
}

// ---------------------------------------------------------------------------------------------------------
// writing

/** A tensor to write: its ggml type, row-major shape and encoded bytes (gguf-quants.ts `quantize`). */
export interface GgufTensorOut {
  name: string;
  shape: number[];
  type: number;
  data: Uint8Array;
}

/** Metadata to write, in order: key → typed value. */
export type GgufMetadataOut = Array<[string, GgufValue]>;

/** helpers for typed metadata values */
export const gv = {
  u32: (v: number): GgufValue => ({ type: GGUF_VALUE.UINT32, value: v }),
  i32: (v: number): GgufValue => ({ type: GGUF_VALUE.INT32, value: v }),
  f32: (v: number): GgufValue => ({ type: GGUF_VALUE.FLOAT32, value: v }),
  bool: (v: boolean): GgufValue => ({ type: GGUF_VALUE.BOOL, value: v }),
  str: (v: string): GgufValue => ({ type: GGUF_VALUE.STRING, value: v }),
  i32s: (v: number[]): GgufValue => ({ type: GGUF_VALUE.ARRAY, itemType: GGUF_VALUE.INT32, value: v }),
  f32s: (v: number[]): GgufValue => ({ type: GGUF_VALUE.ARRAY, itemType: GGUF_VALUE.FLOAT32, value: v }),
  strs: (v: string[]): GgufValue => ({ type: GGUF_VALUE.ARRAY, itemType: GGUF_VALUE.STRING, value: v }),
};

/** Grows a byte buffer as the header is written. */
class Writer {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  len = 0;
  private readonly enc = new TextEncoder();

  private room(n: number): void {
    if (this.len + n <= this.buf.byteLength) return;
    const bigger = new Uint8Array(Math.max(this.buf.byteLength * 2, this.len + n));
    bigger.set(this.buf.subarray(0, this.len));
    this.buf = bigger;
    this.dv = new DataView(bigger.buffer);
  }
  u32(v: number): void {
    this.room(4);
    this.dv.setUint32(this.len, v, true);
    this.len += 4;
  }
  u64(v: number | bigint): void {
    this.room(8);
    this.dv.setBigUint64(this.len, BigInt(v), true);
    this.len += 8;
  }
  str(s: string): void {
    const b = this.enc.encode(s);
    this.u64(b.byteLength);
    this.room(b.byteLength);
    this.buf.set(b, this.len);
    this.len += b.byteLength;
  }
  scalar(type: number, v: GgufScalar, key: string): void {
    if (type === GGUF_VALUE.STRING) {
      if (typeof v !== 'string') throw new GgufError(`metadata "${key}": expected a string, got ${typeof v}`);
      this.str(v);
      return;
    }
    const size = SCALAR_BYTES[type];
    if (size === undefined) throw new GgufError(`metadata "${key}": unknown value type ${type}`);
    this.room(size);
    const at = this.len;
    const n = typeof v === 'boolean' ? Number(v) : v;
    if (typeof n === 'string') throw new GgufError(`metadata "${key}": expected a ${VALUE_NAMES[type]}, got a string`);
    switch (type) {
      case GGUF_VALUE.UINT8: case GGUF_VALUE.BOOL: this.dv.setUint8(at, Number(n)); break;
      case GGUF_VALUE.INT8: this.dv.setInt8(at, Number(n)); break;
      case GGUF_VALUE.UINT16: this.dv.setUint16(at, Number(n), true); break;
      case GGUF_VALUE.INT16: this.dv.setInt16(at, Number(n), true); break;
      case GGUF_VALUE.UINT32: this.dv.setUint32(at, Number(n), true); break;
      case GGUF_VALUE.INT32: this.dv.setInt32(at, Number(n), true); break;
      case GGUF_VALUE.FLOAT32: this.dv.setFloat32(at, Number(n), true); break;
      case GGUF_VALUE.UINT64: this.dv.setBigUint64(at, BigInt(n), true); break;
      case GGUF_VALUE.INT64: this.dv.setBigInt64(at, BigInt(n), true); break;
      default: this.dv.setFloat64(at, Number(n), true);
    }
    this.len += size;
  }
  pad(alignment: number): void {
    const n = (alignment - (this.len % alignment)) % alignment;
    this.room(n);
    this.buf.fill(0, this.len, this.len + n);
    this.len += n;
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

/**
 * A GGUF file (version 3) as a list of chunks to write one after the other: the header, then each tensor's
 * data padded to `alignment` (`general.alignment` in the metadata overrides the default 32).
 */
export function encodeGguf(metadata: GgufMetadataOut, tensors: GgufTensorOut[]): Uint8Array[] {
  const alignEntry = metadata.find(([k]) => k === 'general.alignment');
  const alignment = alignEntry ? Number(alignEntry[1].value) : GGUF_DEFAULT_ALIGNMENT;
  const w = new Writer();
  w.u32(GGUF_MAGIC);
  w.u32(3);
  w.u64(tensors.length);
  w.u64(metadata.length);
  for (const [key, v] of metadata) {
    w.str(key);
    w.u32(v.type);
    if (v.type === GGUF_VALUE.ARRAY) {
      const arr = v.value as GgufScalar[];
      w.u32(v.itemType!);
      w.u64(arr.length);
      for (const x of arr) w.scalar(v.itemType!, x, key);
    } else {
      w.scalar(v.type, v.value as GgufScalar, key);
    }
  }
  let offset = 0;
  for (const t of tensors) {
    const info = GGML_TYPES[t.type];
    if (!info) throw new GgufError(`tensor "${t.name}": ggml type ${t.type} cannot be written`);
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.byteLength !== (count / info.blockSize) * info.blockBytes) {
      throw new GgufError(`tensor "${t.name}": ${t.data.byteLength} bytes of ${info.name}, expected ${(count / info.blockSize) * info.blockBytes} for shape [${t.shape.join(', ')}]`);
    }
    w.str(t.name);
    w.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) w.u64(t.shape[d]);
    w.u32(t.type);
    w.u64(offset);
    offset += Math.ceil(t.data.byteLength / alignment) * alignment;
  }
  w.pad(alignment);
  const chunks: Uint8Array[] = [w.bytes()];
  for (const t of tensors) {
    chunks.push(t.data);
    const pad = (alignment - (t.data.byteLength % alignment)) % alignment;
    if (pad > 0) chunks.push(new Uint8Array(pad));
  }
  return chunks;
}

/** The chunks of `encodeGguf` as one buffer (for in-memory use; files are written chunk by chunk). */
export function concatChunks(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.byteLength, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}
