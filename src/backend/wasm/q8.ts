/**
 * The wasm q8 weight format (assembly/linear_q8.ts documents it): int8 values in blocks of 32 along a row, one f32
 * scale per block; w = q · scale.
 */

export const Q8_BLOCK = 32;

/**
 * Quantizes `data` (a multiple of 32 values, rows of whole blocks) into qs and scales: per block, scale = max|w| / 127
 * (as f32) and q = round(w / scale); a block of zeros gets scale 0 and q = 0.
 */
export function packQ8(data: Float32Array, qs: Int8Array, scales: Float32Array): void {
  for (let b = 0; b < data.length / Q8_BLOCK; b++) {
    let amax = 0;
    for (let i = 0; i < Q8_BLOCK; i++) amax = Math.max(amax, Math.abs(data[b * Q8_BLOCK + i]));
    const s = Math.fround(amax / 127);
    scales[b] = s;
    const inv = s === 0 ? 0 : 1 / s;
    for (let i = 0; i < Q8_BLOCK; i++) qs[b * Q8_BLOCK + i] = Math.round(data[b * Q8_BLOCK + i] * inv);
  }
}

/** the f32 values a q8 matrix stands for (q · scale, rounded to f32 as the kernels' unpacking does) */
export function unpackQ8(qs: Int8Array, scales: Float32Array): Float32Array {
  const out = new Float32Array(qs.length);
  for (let i = 0; i < qs.length; i++) out[i] = qs[i] * scales[(i / Q8_BLOCK) | 0];
  return out;
}
