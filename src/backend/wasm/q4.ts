/**
 * The wasm q4 weight format (assembly/linear_q4.ts documents it): ggml Q4_K super-blocks repacked into nibbles in
 * the kernels' order (qs), unpacked 6-bit scales and mins (sm) and f32 d, dmin (dd). Repacking is lossless: the
 * weights are exactly those of the Q4_K blocks.
 */
import { GGML, quantize, scaleMinK4 } from '../../io/gguf-quants.js';
import { f16ToF32 } from '../../tensor/dtype.js';

export const Q4_SUPER = 256;
/** bytes of a Q4_K super-block */
export const Q4K_BYTES = 144;

/** byte sizes of the three arrays of a [rows, cols] q4 matrix (sm, dd: per group of 4 rows, the last one padded) */
export function q4Sizes(rows: number, cols: number): { qs: number; sm: number; dd: number } {
  const groups = Math.ceil(rows / 4);
  return { qs: (rows * cols) / 2, sm: groups * (cols / 32) * 8, dd: groups * (cols / Q4_SUPER) * 32 };
}

/** where row r's values of block b (sm: sc; + 4: m) and super-block s (dd, in f32: d; + 4: dmin) are */
const smAt = (r: number, b: number, cols: number) => ((r >> 2) * (cols / 32) + b) * 8 + (r & 3);
const ddAt = (r: number, s: number, cols: number) => ((r >> 2) * (cols / Q4_SUPER) + s) * 8 + (r & 3);

/**
 * Q4_K blocks (rows × cols / 256 super-blocks, rows in order) → the q4 arrays. `label` names the tensor when the
 * bytes are not the size the shape needs.
 */
export function repackQ4K(blocks: Uint8Array, rows: number, cols: number, qs: Uint8Array, sm: Uint8Array, dd: Float32Array, label: string): void {
  const nsb = (rows * cols) / Q4_SUPER, perRow = cols / Q4_SUPER;
  if (cols % Q4_SUPER !== 0 || blocks.length !== nsb * Q4K_BYTES) {
    throw new Error(`${label}: Q4_K data of ${blocks.length} bytes for a [${rows}, ${cols}] matrix; expected rows of whole 256-value super-blocks, ${nsb * Q4K_BYTES} bytes`);
  }
  const dv = new DataView(blocks.buffer, blocks.byteOffset, blocks.byteLength);
  for (let r = 0; r < rows; r++) {
    for (let s = 0; s < perRow; s++) {
      const o = (r * perRow + s) * Q4K_BYTES;
      const e = ddAt(r, s, cols);
      dd[e] = f16ToF32(dv.getUint16(o, true));
      dd[e + 4] = f16ToF32(dv.getUint16(o + 2, true));
      for (let j = 0; j < 8; j++) {
        const [sc, m] = scaleMinK4(blocks, o + 4, j);
        const g = smAt(r, 8 * s + j, cols);
        sm[g] = sc;
        sm[g + 4] = m;
        // Q4_K: 32 bytes per pair of blocks (2j: low nibbles, 2j + 1: high nibbles, value l at byte l)
        const src = o + 16 + 32 * (j >> 1), shift = (j & 1) * 4;
        const q = (l: number) => (blocks[src + l] >> shift) & 15;
        const dst = ((r * perRow + s) * 8 + j) * 16;
        for (let l = 0; l < 8; l++) {
          qs[dst + 2 * l] = q(2 * l) | (q(2 * l + 1) << 4);
          qs[dst + 2 * l + 1] = q(16 + 2 * l) | (q(17 + 2 * l) << 4);
        }
      }
    }
  }
}

/** f32 data → Q4_K (our quantizer, gguf-quants.ts) → the q4 arrays; cols a multiple of 256 */
export function packQ4(data: Float32Array, rows: number, cols: number, qs: Uint8Array, sm: Uint8Array, dd: Float32Array): void {
  repackQ4K(quantize(data, GGML.Q4_K), rows, cols, qs, sm, dd, 'q4 weights');
}

/** row `r` of a q4 matrix as f32 into out[at, at + cols) */
export function unpackQ4Row(qs: Uint8Array, sm: Uint8Array, dd: Float32Array, cols: number, r: number, out: Float32Array, at: number): void {
  const nb = cols / 32;
  for (let b = 0; b < nb; b++) {
    const g = smAt(r, b, cols), e = ddAt(r, b >> 3, cols), q = (r * nb + b) * 16;
    const d = Math.fround(dd[e] * sm[g]), m = Math.fround(dd[e + 4] * sm[g + 4]);
    const y = at + b * 32;
    for (let l = 0; l < 8; l++) {
      const lo = qs[q + 2 * l], hi = qs[q + 2 * l + 1];
      out[y + 2 * l] = d * (lo & 15) - m;
      out[y + 2 * l + 1] = d * (lo >> 4) - m;
      out[y + 16 + 2 * l] = d * (hi & 15) - m;
      out[y + 17 + 2 * l] = d * (hi >> 4) - m;
    }
  }
}
