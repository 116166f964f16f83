/**
 * The float32 selective scan of `fused-scan.ts` on the WebAssembly SIMD kernels (`scan_train_fwd` /
 * `scan_train_bwd`, src/backend/wasm/assembly/scan_train.ts): same semantics (Δ = softplus(δ + bias), D skip, z gate;
 * states checkpointed every `chunkSize` steps, the backward recomputing each chunk and running the adjoint
 * recurrence), state and sums in f32 instead of float64. Between forward and backward the checkpoints and the
 * pre-gate output live on the JS heap; each kernel call copies its inputs into wasm memory and its results out.
 */
import type { WasmRuntime } from '../backend/wasm/runtime.js';
import { needsGrad, present } from './fused-common.js';
import type { ScanInputs } from './fused-scan.js';
import { accumulateOwned, type Arr, result, type Var } from './var.js';
import { withFrame } from './wasm-train.js';

const f32 = (v: Var | null): Float32Array | null => (v ? (v.data as Float32Array) : null);

export function selectiveScanWasm(rt: WasmRuntime, a: ScanInputs, T: number): Var {
  const { u, delta, A, B, C, D, z, deltaBias, deltaSoftplus } = a;
  const [bsz, L, Dm] = u.shape;
  const N = A.shape[1];
  const parents = present(u, delta, A, B, C, D, z, deltaBias);
  const saving = needsGrad(parents);
  const nChunks = Math.max(1, Math.ceil(L / T));
  const G = Math.ceil(Dm / 4);
  const total = bsz * L * Dm;
  const ckptFloats = bsz * nChunks * G * N * 4;
  const sp = deltaSoftplus ? 1 : 0;
  const k = rt.kernels;

  let out!: Float32Array;
  let yPre: Float32Array | null = null;
  let ckpt: Float32Array | null = null;
  withFrame(rt, (f) => {
    const uo = f.put(u.data), dlo = f.put(delta.data), Ao = f.put(A.data), Bo = f.put(B.data), Co = f.put(C.data);
    const Do = f.put(f32(D)), zo = f.put(f32(z)), bo = f.put(f32(deltaBias));
    const oo = f.alloc(total);
    const yo = saving && z ? f.alloc(total) : 0;
    const co = saving ? f.alloc(ckptFloats) : 0;
    const so = f.allocBytes(k.scan_train_fwd_scratch(Dm, N) as unknown as number);
    k.scan_train_fwd(uo, dlo, Ao, Bo, Co, Do, zo, bo, oo, yo, co, so, bsz, L, Dm, N, sp, T);
    out = f.take(oo, total);
    if (yo) yPre = f.take(yo, total);
    if (co) ckpt = f.take(co, ckptFloats);
  });

  return result('selective_scan', out, [bsz, L, Dm], parents, (g: Arr) => {
    if (!ckpt) return; // unreachable: result only records the edge when saving
    const grads = withFrame(rt, (f) => {
      const uo = f.put(u.data), dlo = f.put(delta.data), Ao = f.put(A.data), Bo = f.put(B.data), Co = f.put(C.data);
      const Do = f.put(f32(D)), zo = f.put(f32(z)), bo = f.put(f32(deltaBias));
      const yo = f.put(yPre), cko = f.put(ckpt), go = f.put(g);
      const guo = f.alloc(total), gdo = f.alloc(total), gzo = z ? f.alloc(total) : 0;
      const gAo = f.alloc(Dm * N), gBo = f.alloc(bsz * L * N), gCo = f.alloc(bsz * L * N);
      const gDo = D ? f.alloc(Dm) : 0, gbo = deltaBias ? f.alloc(Dm) : 0;
      const so = f.allocBytes(k.scan_train_bwd_scratch(Dm, N, L, T) as unknown as number);
      k.scan_train_bwd(uo, dlo, Ao, Bo, Co, Do, zo, bo, yo, cko, go, guo, gdo, gzo, gAo, gBo, gCo, gDo, gbo, so, bsz, L, Dm, N, sp, T);
      return {
        gu: f.take(guo, total), gdelta: f.take(gdo, total), gz: gzo ? f.take(gzo, total) : null,
        gA: f.take(gAo, Dm * N), gB: f.take(gBo, bsz * L * N), gC: f.take(gCo, bsz * L * N),
        gD: gDo ? f.take(gDo, Dm) : null, gBias: gbo ? f.take(gbo, Dm) : null,
      };
    });
    accumulateOwned(u, grads.gu);
    accumulateOwned(delta, grads.gdelta);
    accumulateOwned(A, grads.gA);
    accumulateOwned(B, grads.gB);
    accumulateOwned(C, grads.gC);
    if (D && grads.gD) accumulateOwned(D, grads.gD);
    if (z && grads.gz) accumulateOwned(z, grads.gz);
    if (deltaBias && grads.gBias) accumulateOwned(deltaBias, grads.gBias);
  });
}
