/** Half-precision decoding: decodeHalf (little-endian bytes, any offset) and decodeHalfBits (u16 bits) share one loop. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { bf16ToF32, decodeHalf, decodeHalfBits, f16ToF32 } from '../../src/tensor/dtype.js';

it('decodeHalf = decodeHalfBits = the scalar conversions, at even and odd byte offsets (f16 and bf16)', () => {
  // zeros, a subnormal, ±1, the largest finite, ±inf, NaN and some arbitrary bit patterns
  const bits = Uint16Array.from([0x0000, 0x8000, 0x0001, 0x3c00, 0xbc00, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x3f80, 0xc2f7, 0x1234, 0xabcd]);
  for (const dtype of ['f16', 'bf16'] as const) {
    const scalar = Float32Array.from(bits, dtype === 'f16' ? f16ToF32 : bf16ToF32);
    assert.deepEqual(decodeHalfBits(bits, dtype), scalar, `${dtype}: decodeHalfBits`);
    for (const offset of [0, 1, 2, 3]) {
      const bytes = new Uint8Array(offset + bits.length * 2 + 1).fill(0xee); // a stray byte after the range
      const dv = new DataView(bytes.buffer);
      bits.forEach((b, i) => dv.setUint16(offset + i * 2, b, true));
      const got = decodeHalf(bytes.subarray(offset), dtype, bits.length);
      assert.deepEqual(got, scalar, `${dtype} at byte offset ${offset}`);
      assert.equal(got.length, bits.length);
    }
  }
  assert.throws(() => decodeHalf(new Uint8Array(5), 'f16', 3), /decodeHalf: 3 f16 values need 6 bytes, got 5/);
});
