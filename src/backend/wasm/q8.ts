/**
 * The wasm q8 formats: int8 values in blocks of 32, one f32 scale per block; w = q · scale.
 * - weight matrices (assembly/linear_q8.ts documents it): qs [N, K] and scales [N, K/32] in two arrays;
 * - KV caches (the `kvCache: 'q8'` option, assembly/attention.ts): one byte array of blocks of 32 consecutive values
 *   (along the head dim; a position's kv_heads × head_dim values are whole blocks, so with head_dim 8 or 16 a block
 *   spans heads), each [f32 scale, 32 × int8] = 36 bytes: llama.cpp's block_q8_0 with an f32 scale instead of f16 —
 *   the weights' quantizer as it is (no second rounding of the scale, so the stored values are exactly q · scale of
 *   that quantizer) and the kernels load the scale without a conversion, for 1.125 bytes per value instead of 1.0625.
 */

export const Q8_BLOCK = 32;
/** bytes of one q8 KV cache block: the f32 scale, then 32 int8 values */
export const Q8_KV_BLOCK_BYTES = 4 + Q8_BLOCK;

/**
 * Quantizes the 32 values data[off …] to qs[qOff …] and returns their scale: scale = max|w| / 127 (as f32) and
 * q = round(w / scale); a block of zeros gets scale 0 and q = 0. The one q8 quantizer (weights and KV caches).
 */
export function quantizeQ8Block(data: ArrayLike<number>, off: number, qs: Int8Array, qOff: number): number {
  let amax = 0;
  for (let i = 0; i < Q8_BLOCK; i++) amax = Math.max(amax, Math.abs(data[off + i]));
  const s = Math.fround(amax / 127);
  const inv = s === 0 ? 0 : 1 / s;
  for (let i = 0; i < Q8_BLOCK; i++) qs[qOff + i] = Math.round(data[off + i] * inv);
  return s;
}

/** Quantizes `data` (a multiple of 32 values, rows of whole blocks) into qs and scales (quantizeQ8Block per block). */
export function packQ8(data: Float32Array, qs: Int8Array, scales: Float32Array): void {
  for (let b = 0; b < data.length / Q8_BLOCK; b++) scales[b] = quantizeQ8Block(data, b * Q8_BLOCK, qs, b * Q8_BLOCK);
}

/** the f32 values a q8 matrix stands for (q · scale, rounded to f32 as the kernels' unpacking does) */
export function unpackQ8(qs: Int8Array, scales: Float32Array): Float32Array {
  const out = new Float32Array(qs.length);
  for (let i = 0; i < qs.length; i++) out[i] = qs[i] * scales[(i / Q8_BLOCK) | 0];
  return out;
}

/** bytes of a q8 KV cache of `count` values (a multiple of 32) */
export function q8KvBytes(count: number): number {
  return (count / Q8_BLOCK) * Q8_KV_BLOCK_BYTES;
}

/** the int8 and f32 views of q8 KV blocks (the array's byte offset a multiple of 4, as every allocation is) */
function kvViews(blocks: Uint8Array): { qs: Int8Array; sc: Float32Array } {
  return { qs: new Int8Array(blocks.buffer, blocks.byteOffset, blocks.length), sc: new Float32Array(blocks.buffer, blocks.byteOffset, blocks.length >> 2) };
}

/** f32 values (a multiple of 32) → q8 KV blocks at dst from value index `offset` (a multiple of 32): quantizeQ8Block per block */
export function encodeQ8KvInto(src: ArrayLike<number>, dst: Uint8Array, offset = 0): void {
  if (src.length % Q8_BLOCK || offset % Q8_BLOCK) throw new RangeError(`encodeQ8KvInto: ${src.length} values at ${offset}: q8 KV blocks hold 32 values`);
  const { qs, sc } = kvViews(dst);
  const b0 = offset / Q8_BLOCK;
  const W = Q8_KV_BLOCK_BYTES / 4;
  for (let b = 0; b < src.length / Q8_BLOCK; b++) sc[(b0 + b) * W] = quantizeQ8Block(src, b * Q8_BLOCK, qs, (b0 + b) * Q8_KV_BLOCK_BYTES + 4);
}

/** q8 KV blocks → a new Float32Array of their values (q · scale rounded to f32: what the wasm kernels compute) */
export function decodeQ8Kv(blocks: Uint8Array): Float32Array {
  const { qs, sc } = kvViews(blocks);
  const n = blocks.length / Q8_KV_BLOCK_BYTES;
  const out = new Float32Array(n * Q8_BLOCK);
  const W = Q8_KV_BLOCK_BYTES / 4;
  for (let b = 0; b < n; b++) {
    const s = sc[b * W], q0 = b * Q8_KV_BLOCK_BYTES + 4;
    for (let i = 0; i < Q8_BLOCK; i++) out[b * Q8_BLOCK + i] = qs[q0 + i] * s;
  }
  return out;
}
