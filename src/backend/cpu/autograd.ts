/**
 * The CPU backends' differentiable ops (`Backend.differentiable` of cpu and wasm): each op runs the host-array
 * implementation of `src/autograd` (forward that keeps what the backward needs; hand-written backward; for float32
 * the matrix products, the selective scan and the causal conv1d on wasm SIMD kernels, on the runtime the backend hands
 * in: `CpuBackend.trainRuntime`, see src/autograd/wasm-train.ts)
 * on the tensors' storage, and its backward hands the input gradients back as tensors. No copies on the host side:
 * a CPU tensor's storage is the Float32Array the autograd reads (the wasm kernels copy into their memory and out).
 *
 * One table, one entry per recordable op (`DiffOp`): adding an op to the tape means adding it here (and to the
 * WebGPU backend when it trains there).
 */
import * as ag from '../../autograd/ops.js';
import * as fused from '../../autograd/fused.js';
import { routeWeights, scatterRows } from '../../autograd/moe.js';
import { backward as varBackward, Var } from '../../autograd/var.js';
import { withTrainRuntime } from '../../autograd/wasm-train.js';
import type { WasmRuntime } from '../wasm/runtime.js';
import type { Backend, DiffAttrs, DiffOp, Differentiated } from '../backend.js';
import { Tensor } from '../../tensor/tensor.js';
import { OpError } from '../../errors.js';

type Impl = (v: Array<Var | null>, a: DiffAttrs) => Var | Var[] | { out: Var[]; info: Record<string, number> };

const need = (v: Var | null, name: string): Var => {
  if (!v) throw new OpError(`differentiable op: input ${name} is missing`);
  return v;
};

const IMPLS: Record<DiffOp, Impl> = {
  reshape: ([x], a) => ag.reshape(need(x, 'x'), a.shape!),
  embedding: ([t], a) => ag.embedding(need(t, 'table'), a.ids!, a.shape!),
  linear: ([x, w, b]) => ag.linear(need(x, 'x'), need(w, 'w'), b),
  rms_norm: ([x, w], a) => ag.rmsNorm(need(x, 'x'), w, a.eps!),
  rms_norm_gated: ([x, z, w], a) => fused.rmsNormGated(need(x, 'x'), need(z, 'z'), need(w, 'w'), a.eps!, a.groupSize!),
  add: ([x, y]) => ag.add(need(x, 'a'), need(y, 'b')),
  scale: ([x], a) => ag.scale(need(x, 'x'), a.scalar!),
  activation: ([x], a) => activation(need(x, 'x'), a.kind!),
  silu_mul: ([x, y]) => ag.mul(ag.silu(need(x, 'a')), need(y, 'b')),
  mul: ([x, y]) => ag.mul(need(x, 'a'), need(y, 'b')),
  split: ([x], a) => ag.split(need(x, 'x'), a.sizes!),
  causal_conv1d: ([x, w, b], a) => fused.causalConv1d(need(x, 'x'), need(w, 'weight'), b, a.kind === 'silu'),
  selective_scan: ([u, delta, A, B, C, D, z, bias], a) =>
    fused.selectiveScan({
      u: need(u, 'u'), delta: need(delta, 'delta'), A: need(A, 'A'), B: need(B, 'B'), C: need(C, 'C'), D, z, deltaBias: bias,
      deltaSoftplus: a.softplus!, chunkSize: a.chunkSize!,
    }),
  ssd: ([x, dt, A, B, C, D, bias], a) =>
    fused.ssd({ x: need(x, 'x'), dt: need(dt, 'dt'), A: need(A, 'A'), B: need(B, 'B'), C: need(C, 'C'), D, dtBias: bias, dtLimit: a.dtLimit!, chunkSize: a.chunkSize! }),
  rope: ([x], a) => fused.rope(need(x, 'x'), a.positions!, a.rotaryDim!, a.theta!),
  attention: ([q, k, v], a) => fused.attention(need(q, 'q'), need(k, 'k'), need(v, 'v'), a.scalar!),
  take_rows: ([x], a) => ag.takeRows(need(x, 'x'), Array.from(a.rows!)),
  mean_time: ([x]) => ag.meanTime(need(x, 'x')),
  s4d_kernel: ([logDt, logAReal, AImag, C], a) => fused.s4dKernel(need(logDt, 'logDt'), need(logAReal, 'logAReal'), need(AImag, 'AImag'), need(C, 'C'), a.length!),
  fft_conv: ([u, K, D]) => fused.fftConv(need(u, 'u'), need(K, 'K'), D),
  cross_entropy: ([logits], a) => {
    const r = ag.softmaxCrossEntropy(need(logits, 'logits'), a.targets!, a.ignoreIndex ?? -100);
    return { out: [r.loss], info: { count: r.count, correct: r.correct } };
  },
  route_weights: ([logits], a) => routeWeights(need(logits, 'logits'), a.experts!, a.topK!, a.routing!),
  scatter_rows: ([src, w], a) => scatterRows(need(src, 'src'), need(w, 'weights'), a.rows!, a.count!),
};

/** the elementwise functions of `Backend.activation` (and −exp for A = −exp(A_log)) */
function activation(x: Var, kind: string): Var {
  switch (kind) {
    case 'silu':
      return ag.silu(x);
    case 'relu':
      return ag.relu(x);
    case 'relu2': {
      const r = ag.relu(x);
      return ag.mul(r, r);
    }
    case 'gelu_tanh':
      return ag.gelu(x);
    case 'neg_exp':
      return ag.negExp(x);
    case 'sigmoid':
      return ag.sigmoid(x);
    default:
      throw new OpError(`activation "${kind}" has no differentiable CPU implementation`);
  }
}

/**
 * Run `op` differentiably on `backend` (a CPU-storage backend): inputs wrapped as autograd values over their
 * storage, the autograd forward, outputs wrapped as tensors, and a backward that feeds output gradients into the
 * autograd graph of this one op and returns what reached the inputs.
 */
export function cpuDifferentiable(backend: Backend, op: DiffOp, inputs: readonly (Tensor | null)[], attrs: DiffAttrs, rt: WasmRuntime | null = null): Differentiated {
  const vars = inputs.map((t) => (t ? new Var(backend.readSync(t), t.shape, t.requiresGrad) : null));
  const r = withTrainRuntime(rt, () => IMPLS[op](vars, attrs));
  const outs = r instanceof Var ? [r] : Array.isArray(r) ? r : r.out;
  const info = r instanceof Var || Array.isArray(r) ? undefined : r.info;
  const outputs = outs.map((v) => new Tensor(backend, v.data as Float32Array, [...v.shape]));
  return {
    outputs,
    ...(info ? { info } : {}),
    backward(grads) {
      withTrainRuntime(rt, () =>
        grads.forEach((g, i) => {
          if (g && outs[i].requiresGrad) varBackward(outs[i], backend.readSync(g));
        }),
      );
      return vars.map((v, i) => {
        if (!v || !v.grad) return null;
        const g = new Tensor(backend, v.grad as Float32Array, inputs[i]!.shape);
        v.grad = null;
        return g;
      });
    },
  };
}
