/**
 * The CPU backend: storage is a Float32Array, kernels are plain TypeScript (`kernels.ts`,
 * `selective_scan.ts`). Synchronous underneath; `read` still returns a Promise so callers are written
 * for async backends from the start.
 */
import type { Backend, CausalConv1dArgs, SelectiveScanArgs } from '../backend.js';
import { Tensor, shapeSize, type Shape } from '../../tensor/tensor.js';
import { causalConv1d, linear, rmsNorm } from './kernels.js';
import { scanChunked, scanSequential } from './selective_scan.js';

function buf(t: Tensor): Float32Array {
  return t.storage as Float32Array;
}
function opt(t: Tensor | null): Float32Array | null {
  return t ? buf(t) : null;
}

export class CpuBackend implements Backend {
  readonly name = 'cpu';

  fromHost(data: Float32Array, shape: Shape): Tensor {
    if (data.length !== shapeSize(shape)) throw new Error(`cpu.fromHost: ${data.length} values for shape [${shape.join(', ')}]`);
    return new Tensor(this, data, [...shape]);
  }
  zeros(shape: Shape): Tensor {
    return new Tensor(this, new Float32Array(shapeSize(shape)), [...shape]);
  }
  read(t: Tensor): Promise<Float32Array> {
    return Promise.resolve(buf(t).slice());
  }
  readSync(t: Tensor): Float32Array {
    return buf(t);
  }
  dispose(_t: Tensor): void {
    // garbage-collected
  }

  embedding(table: Tensor, ids: Int32Array): Tensor {
    const H = table.shape[1];
    const src = buf(table);
    const out = new Float32Array(ids.length * H);
    for (let i = 0; i < ids.length; i++) out.set(src.subarray(ids[i] * H, ids[i] * H + H), i * H);
    return new Tensor(this, out, [ids.length, H]);
  }
  linear(x: Tensor, w: Tensor, bias: Tensor | null): Tensor {
    const [M, K] = x.shape;
    const N = w.shape[0];
    return new Tensor(this, linear(buf(x), buf(w), opt(bias), M, K, N), [M, N]);
  }
  rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor {
    const [M, H] = x.shape;
    return new Tensor(this, rmsNorm(buf(x), buf(w), eps, M, H), [M, H]);
  }
  add(a: Tensor, b: Tensor): Tensor {
    const x = buf(a), y = buf(b);
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i] + y[i];
    return new Tensor(this, out, a.shape);
  }
  split(x: Tensor, sizes: readonly number[]): Tensor[] {
    const W = x.shape[x.shape.length - 1];
    const M = x.size / W;
    const src = buf(x);
    let off = 0;
    return sizes.map((s) => {
      const out = new Float32Array(M * s);
      for (let i = 0; i < M; i++) out.set(src.subarray(i * W + off, i * W + off + s), i * s);
      off += s;
      return new Tensor(this, out, [...x.shape.slice(0, -1), s]);
    });
  }
  causalConv1d(a: CausalConv1dArgs): Tensor {
    const [batch, L, C] = a.x.shape;
    const K = a.weight.shape[1];
    const y = causalConv1d(buf(a.x), buf(a.weight), opt(a.bias), opt(a.state), a.activation === 'silu', batch, L, C, K);
    return new Tensor(this, y, [batch, L, C]);
  }
  selectiveScan(a: SelectiveScanArgs): Tensor {
    const [batch, L, D] = a.u.shape;
    const arrays = {
      batch, seqLen: L, dim: D, dState: a.A.shape[1],
      u: buf(a.u), delta: buf(a.delta), A: buf(a.A), B: buf(a.B), C: buf(a.C),
      D: opt(a.D), z: opt(a.z), deltaBias: opt(a.deltaBias), deltaSoftplus: a.deltaSoftplus, state: opt(a.state),
    };
    const y = a.algorithm === 'chunked' && L > a.chunkSize ? scanChunked(arrays, a.chunkSize) : scanSequential(arrays);
    return new Tensor(this, y, [batch, L, D]);
  }
  concatRows(ts: readonly Tensor[]): Tensor {
    const rows = ts.reduce((s, t) => s + t.shape[0], 0);
    const out = new Float32Array(ts.reduce((s, t) => s + t.size, 0));
    let off = 0;
    for (const t of ts) {
      out.set(buf(t), off);
      off += t.size;
    }
    return new Tensor(this, out, [rows, ...ts[0].shape.slice(1)]);
  }
  takeRows(t: Tensor, rows: readonly number[]): Tensor {
    const rowSize = t.size / t.shape[0];
    const src = buf(t);
    const out = new Float32Array(rows.length * rowSize);
    rows.forEach((r, i) => out.set(src.subarray(r * rowSize, (r + 1) * rowSize), i * rowSize));
    return new Tensor(this, out, [rows.length, ...t.shape.slice(1)]);
  }
}

export const cpu = new CpuBackend();
