/**
 * q8 weight matrices on the GPU (`weights: 'q8'`): the wasm backend's format (wasm/q8.ts, `packQ8`: blocks of 32
 * int8 values along a row and one f32 scale each, w = q · scale, scale = max|w| / 127, round to nearest) laid out
 * for 16-byte loads. Blocks are numbered over the whole matrix (g = row · K/32 + block of the row; rows are whole
 * blocks) and go in superblocks of 4: one vec4 of the 4 scales, then the 4 blocks' values as 8 vec4<u32> (a block
 * is two vec4s: 16 int8 values each, 4 to a u32, value 4i + b in byte b of word i). A superblock is 9 vec4s =
 * 144 bytes for 128 weights (1.125 bytes a weight); the last one is padded with zero blocks.
 *
 * The kernels read a "unit" of 16 weights (vec4<u32>) and its scale (`Q8_FNS`), or one weight (`q8Scalar`); the
 * unpacking is exact (f32(q) · scale, as wasm's), so both backends multiply by the same numbers.
 */
import { Q8_BLOCK, packQ8, unpackQ8 } from '../../wasm/q8.js';

/** u32 words of a superblock (4 scales + 4 × 8 words of values) */
export const Q8_SUPER_WORDS = 36;

/** u32 words of a q8 matrix of n weights (n a multiple of 32) */
export function q8Words(n: number): number {
  return Math.ceil(n / Q8_BLOCK / 4) * Q8_SUPER_WORDS;
}

/** float32 weights (rows of whole 32-blocks) → the superblock layout, quantized by the wasm backend's `packQ8` */
export function packQ8Gpu(data: Float32Array): Uint32Array {
  if (data.length % Q8_BLOCK !== 0) throw new Error(`packQ8Gpu: ${data.length} values are not whole blocks of ${Q8_BLOCK}`);
  const nb = data.length / Q8_BLOCK;
  const qs = new Int8Array(data.length), scales = new Float32Array(nb);
  packQ8(data, qs, scales);
  const out = new Uint32Array(q8Words(data.length));
  const f = new Float32Array(out.buffer);
  const bytes = new Uint8Array(out.buffer);
  const qb = new Uint8Array(qs.buffer);
  for (let g = 0; g < nb; g++) {
    const sb = (g >> 2) * Q8_SUPER_WORDS;
    f[sb + (g & 3)] = scales[g];
    bytes.set(qb.subarray(g * Q8_BLOCK, (g + 1) * Q8_BLOCK), (sb + 4 + (g & 3) * 8) * 4);
  }
  return out;
}

/** the float32 values of n weights in the superblock layout (q · scale: what the kernels multiply by) */
export function unpackQ8Gpu(words: Uint32Array, n: number): Float32Array {
  const nb = n / Q8_BLOCK;
  const qs = new Int8Array(n), scales = new Float32Array(nb);
  const f = new Float32Array(words.buffer, words.byteOffset, words.length);
  const bytes = new Int8Array(words.buffer, words.byteOffset, words.length * 4);
  for (let g = 0; g < nb; g++) {
    const sb = (g >> 2) * Q8_SUPER_WORDS;
    scales[g] = f[sb + (g & 3)];
    qs.set(bytes.subarray((sb + 4 + (g & 3) * 8) * 4, (sb + 4 + (g & 3) * 8) * 4 + Q8_BLOCK), g * Q8_BLOCK);
  }
  return unpackQ8(qs, scales);
}

/**
 * WGSL of the vector readers, for a weight role bound as array<vec4<u32>> at word offset o_role (a multiple of 4):
 * `q8x4(p)`, the 4 int8 of a word as f32; `q8at(g, h)`, half h (0, 1) of block g: 16 values; `q8sc(g)`, its scale.
 */
export function q8Fns(role = 'w'): string {
  return /* wgsl */ `
fn q8x4(p: u32) -> vec4<f32> { return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(p) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u)); }
fn q8at(g: u32, h: u32) -> vec4<u32> { return $${role}[o_${role} / 4u + (g >> 2u) * ${Q8_SUPER_WORDS / 4}u + 1u + (g & 3u) * 2u + h]; }
fn q8sc(g: u32) -> f32 { return bitcast<f32>($${role}[o_${role} / 4u + (g >> 2u) * ${Q8_SUPER_WORDS / 4}u][g & 3u]); }`;
}

/** WGSL `wv(i)`: weight i of a q8 matrix bound as array<u32> (the scalar kernels' reader; see linear.ts `weightReader`) */
export function q8Scalar(role = 'w'): string {
  return /* wgsl */ `fn wv(i: u32) -> f32 {
  let g = i >> 5u; let sb = o_${role} + (g >> 2u) * ${Q8_SUPER_WORDS}u;
  let u = $${role}[sb + 4u + (g & 3u) * 8u + ((i & 31u) >> 2u)];
  return f32(bitcast<i32>(u << (24u - 8u * (i & 3u))) >> 24u) * bitcast<f32>($${role}[sb + (g & 3u)]);
}`;
}
