/**
 * Front-end ops: validate shapes (errors name the op and the shapes) and that all tensor inputs share one
 * backend, then dispatch to the backend of the first input. Model files call these, never a backend directly.
 */
import type { AttentionArgs, AttentionDecodeArgs, AttentionPrefillArgs, SublayerResidual, Backend, CausalConv1dArgs, DiffAttrs, DiffOp, Differentiated, Elementwise, SelectiveScanArgs, SsdArgs } from '../backend/backend.js';
import { needsGrad } from '../autograd/tape.js';
import { BackendMismatchError, OpError, ShapeError } from '../errors.js';
import { Tensor, shapeStr, type GradNode, type Shape } from './tensor.js';
import { KV_CACHE_FORMATS } from './dtype.js';

export { ShapeError } from '../errors.js';

/**
 * Every tensor among `args` (optional ones, states, the tensors of an array) must be on the backend of
 * `args[lead]`, the one the op dispatches to: one reference comparison per argument.
 */
function sameBackend(op: string, lead: string, args: object): void {
  const a = args as Readonly<Record<string, unknown>>;
  const be = (a[lead] as Tensor).backend;
  for (const name in a) {
    const v = a[name];
    if (v instanceof Tensor) {
      if (v.backend !== be) throw backendMismatch(op, name, v.backend, lead, be);
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) if (v[i] instanceof Tensor && (v[i] as Tensor).backend !== be) throw backendMismatch(op, `${name}[${i}]`, (v[i] as Tensor).backend, lead, be);
    }
  }
}
function backendMismatch(op: string, name: string, got: Backend, lead: string, want: Backend): BackendMismatchError {
  const where = got.name === want.name ? `another ${got.name} backend instance than ${lead}` : `backend ${got.name}, ${lead} on ${want.name}`;
  return new BackendMismatchError(`${op}: ${name} is on ${where}; all tensors of an op must be on one backend`);
}

function check(cond: boolean, op: string, msg: () => string): void {
  if (!cond) throw new ShapeError(`${op}: ${msg()}`);
}
function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
function expectShape(op: string, name: string, t: Tensor | null, want: Shape): void {
  if (t) check(sameShape(t.shape, want), op, () => `${name} has shape ${shapeStr(t.shape)}, expected ${shapeStr(want)}`);
}

/**
 * Run `op` through the backend's differentiable implementation. Recorded on the tape (outputs carry a GradNode)
 * when some input requires a gradient and the tape records; otherwise it is a plain forward — how the ops that
 * exist only for training (the loss, MoE routing weights, the S4D convolution) run at all.
 */
function differentiable(op: DiffOp, inputs: (Tensor | null)[], attrs: DiffAttrs = {}): Differentiated {
  const be = inputs.find((t): t is Tensor => t !== null)!.backend;
  sameBackend(op, 'input0', Object.fromEntries(inputs.map((t, i) => [`input${i}`, t])));
  if (!be.differentiable) throw new OpError(`${op}: the ${be.name} backend has no differentiable ops yet (training runs on cpu and wasm)`);
  const r = be.differentiable(op, inputs, attrs);
  if (needsGrad(...inputs)) {
    const node: GradNode = { op, inputs, outputs: r.outputs.length, backward: r.backward, results: r.outputs, ...(r.release ? { release: r.release } : {}) };
    r.outputs.forEach((t, index) => {
      t.requiresGrad = true;
      t.gradFn = { node, index };
    });
  }
  return r;
}
const diff1 = (op: DiffOp, inputs: (Tensor | null)[], attrs: DiffAttrs = {}): Tensor => differentiable(op, inputs, attrs).outputs[0];

/** Reshape without copying (same storage). */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  check(n === x.size, 'reshape', () => `cannot view ${shapeStr(x.shape)} as ${shapeStr(shape)}`);
  if (needsGrad(x)) return diff1('reshape', [x], { shape: [...shape] });
  return new Tensor(x.backend, x.storage, [...shape], x.dtype, x);
}

/** Token ids → embeddings. `ids` must already be validated against the vocabulary. */
export function embedding(table: Tensor, ids: Int32Array, outShape: Shape): Tensor {
  check(table.shape.length === 2, 'embedding', () => `table must be [vocab, hidden], got ${shapeStr(table.shape)}`);
  const V = table.shape[0];
  for (const id of ids) check(Number.isInteger(id) && id >= 0 && id < V, 'embedding', () => `token id ${id} is outside [0, ${V})`);
  if (needsGrad(table)) return diff1('embedding', [table], { ids, shape: [...outShape] });
  return reshape(table.backend.embedding(table, ids), outShape);
}

/**
 * `linear`'s argument checks: w is [out, K] for x's last dim K (not with `anyWidth`: a fused sublayer's inner products
 * read other inputs than x, e.g. o_proj the attention's output), the bias is [out], and x, w and bias share a backend
 */
function checkLinear(x: Tensor, w: Tensor, bias: Tensor | null, anyWidth = false): void {
  const K = x.shape[x.shape.length - 1];
  if (!anyWidth) check(w.shape.length === 2 && w.shape[1] === K, 'linear', () => `input ${shapeStr(x.shape)} does not match weight ${shapeStr(w.shape)} (expected [out, ${K}])`);
  expectShape('linear', 'bias', bias, [w.shape[0]]);
  sameBackend('linear', 'x', { x, w, bias });
}

/** attention's KV caches: [b, T, nKv, hd] each, with room for `need` new positions after every row's pastLen */
function checkKvCaches(cacheK: Tensor, cacheV: Tensor, b: number, nKv: number, hd: number, pastLen: readonly number[], need: number): void {
  const op = 'attention';
  const T = cacheK.shape[1];
  expectShape(op, 'cacheK', cacheK, [b, T, nKv, hd]);
  expectShape(op, 'cacheV', cacheV, [b, T, nKv, hd]);
  for (const p of pastLen) check(p + need <= T, op, () => `cache holds ${T} positions; ${p} + ${need} needed`);
}

/** y = x Wᵀ + b over the last dim; leading dims are kept. */
export function linear(x: Tensor, w: Tensor, bias: Tensor | null = null): Tensor {
  const K = x.shape[x.shape.length - 1];
  checkLinear(x, w, bias);
  if (needsGrad(x, w, bias)) return diff1('linear', [x, w, bias]);
  const M = x.size / K;
  const y = x.backend.linear(reshape(x, [M, K]), w, bias);
  return reshape(y, [...x.shape.slice(0, -1), w.shape[0]]);
}

/**
 * `linear(x, w, bias)` for each [w, bias] of `ws`: one backend call where the backend has `linearMany` (wasm decode:
 * one hand-off to its threads instead of one per product; the same numbers as separate calls).
 */
export function linearMany(x: Tensor, ws: ReadonlyArray<readonly [Tensor, Tensor | null]>): Tensor[] {
  const K = x.shape[x.shape.length - 1];
  const one = () => ws.map(([w, bias]) => linear(x, w, bias));
  if (!x.backend.linearMany || ws.length < 2 || ws.some(([w, bias]) => needsGrad(x, w, bias))) return one();
  for (const [w, bias] of ws) checkLinear(x, w, bias);
  const ys = x.backend.linearMany(reshape(x, [x.size / K, K]), ws);
  if (!ys) return one();
  return ys.map((y, i) => reshape(y, [...x.shape.slice(0, -1), ws[i][0].shape[0]]));
}

/**
 * A gated MLP, down(silu(gate(x)) · up(x)) (SwiGLU), each of gate/up/down a [weight, bias]: one backend call where the
 * backend has `gatedMlp` (wasm decode), else `linearMany`, `siluMul` and `linear` (the same numbers).
 */
export function gatedMlp(x: Tensor, gate: readonly [Tensor, Tensor | null], up: readonly [Tensor, Tensor | null], down: readonly [Tensor, Tensor | null]): Tensor {
  const H = x.shape[x.shape.length - 1];
  const ws = [gate, up, down];
  if (x.backend.gatedMlp && !ws.some(([w, bias]) => needsGrad(x, w, bias)) && gate[0].shape[1] === H && up[0].shape[1] === H) {
    for (const [w, bias] of ws) checkLinear(x, w, bias, true);
    const y = x.backend.gatedMlp(reshape(x, [x.size / H, H]), gate, up, down);
    if (y) return reshape(y, [...x.shape.slice(0, -1), down[0].shape[0]]);
  }
  const [g, u] = linearMany(x, [gate, up]);
  return linear(siluMul(g, u), down[0], down[1]);
}

/**
 * `linear(x, w, bias)`; where the backend has `linearTouching` (wasm, an option) it also starts reading `next` into the
 * caches meanwhile (a hint: the caller reads it next). The same numbers either way.
 */
export function linearTouching(x: Tensor, w: Tensor, bias: Tensor | null, next: Tensor): Tensor {
  const K = x.shape[x.shape.length - 1];
  if (!x.backend.linearTouching || needsGrad(x, w, bias)) return linear(x, w, bias);
  checkLinear(x, w, bias);
  const y = x.backend.linearTouching(reshape(x, [x.size / K, K]), w, bias, next);
  return y ? reshape(y, [...x.shape.slice(0, -1), w.shape[0]]) : linear(x, w, bias);
}

/** RMSNorm over the last dim; `w` null = no learnable weight (FalconMamba's B/C/Δ norms). */
export function rmsNorm(x: Tensor, w: Tensor | null, eps: number): Tensor {
  const H = x.shape[x.shape.length - 1];
  expectShape('rms_norm', 'weight', w, [H]);
  sameBackend('rms_norm', 'x', { x, weight: w });
  if (needsGrad(x, w)) return diff1('rms_norm', [x, w], { eps });
  const y = x.backend.rmsNorm(reshape(x, [x.size / H, H]), w, eps);
  return reshape(y, x.shape);
}

/** w · RMSNorm(x · silu(z)) over groups of `groupSize` channels of the last dim. */
export function rmsNormGated(x: Tensor, z: Tensor, w: Tensor, eps: number, groupSize: number): Tensor {
  const W = x.shape[x.shape.length - 1];
  check(sameShape(x.shape, z.shape), 'rms_norm_gated', () => `x ${shapeStr(x.shape)} and gate ${shapeStr(z.shape)} differ`);
  expectShape('rms_norm_gated', 'weight', w, [W]);
  check(Number.isInteger(groupSize) && groupSize > 0 && W % groupSize === 0, 'rms_norm_gated', () => `group size ${groupSize} does not divide width ${W}`);
  sameBackend('rms_norm_gated', 'x', { x, gate: z, weight: w });
  if (needsGrad(x, z, w)) return diff1('rms_norm_gated', [x, z, w], { eps, groupSize });
  const M = x.size / W;
  return reshape(x.backend.rmsNormGated(reshape(x, [M, W]), reshape(z, [M, W]), w, eps, groupSize), x.shape);
}

export function scale(x: Tensor, s: number): Tensor {
  if (s === 1) return x;
  return needsGrad(x) ? diff1('scale', [x], { scalar: s }) : x.backend.scale(x, s);
}

export function activation(x: Tensor, kind: Elementwise): Tensor {
  return needsGrad(x) ? diff1('activation', [x], { kind }) : x.backend.activation(x, kind);
}

/** −exp(x): Mamba's A = −exp(A_log) */
export function negExp(x: Tensor): Tensor {
  return activation(x, 'neg_exp');
}

/** silu(a) · b */
export function siluMul(a: Tensor, b: Tensor): Tensor {
  check(sameShape(a.shape, b.shape), 'silu_mul', () => `shapes differ: ${shapeStr(a.shape)} vs ${shapeStr(b.shape)}`);
  sameBackend('silu_mul', 'a', { a, b });
  if (needsGrad(a, b)) return diff1('silu_mul', [a, b]);
  return a.backend.siluMul(a, b);
}

export function add(a: Tensor, b: Tensor): Tensor {
  check(sameShape(a.shape, b.shape), 'add', () => `shapes differ: ${shapeStr(a.shape)} vs ${shapeStr(b.shape)}`);
  sameBackend('add', 'a', { a, b });
  if (needsGrad(a, b)) return diff1('add', [a, b]);
  return a.backend.add(a, b);
}

/**
 * A decode step's attention half (h [b, H], one new position per row) in one backend call where the backend has
 * `attentionDecode` (wasm); null otherwise (also with gradients): the caller then runs linearMany, rope, attention and
 * linear (the same numbers). The caches must already hold pastLen[r] + 1 positions.
 */
export function attentionDecode(a: AttentionDecodeArgs): Tensor | null {
  const { h } = a;
  if (!h.backend.attentionDecode || h.shape.length !== 2) return null;
  const ws = [a.q, a.k, a.v, a.o];
  if (needsGrad(h, ...ws.flat())) return null;
  const op = 'attention';
  const [b] = h.shape;
  check(a.pastLen.length === b, op, () => `pastLen has ${a.pastLen.length} entries for batch ${b}`);
  checkKvCaches(a.cacheK, a.cacheV, b, a.nKvHeads, a.headDim, a.pastLen, 1);
  for (const [w, bias] of ws) checkLinear(h, w, bias, true);
  return h.backend.attentionDecode(a);
}

/**
 * A prefill's attention half (h [b, L, H]) in one backend call where the backend has `attentionPrefill` (wasm); null
 * otherwise (also with gradients): the caller then runs linearMany, rope, attention and linear (the same numbers).
 * Caches, where given, must already hold pastLen[r] + L positions.
 */
export function attentionPrefill(a: AttentionPrefillArgs): Tensor | null {
  const { h } = a;
  if (!h.backend.attentionPrefill || h.shape.length !== 3) return null;
  const ws = [a.q, a.k, a.v, a.o];
  if (needsGrad(h, ...ws.flat())) return null;
  const op = 'attention';
  const [b, L] = h.shape;
  check(a.pastLen.length === b, op, () => `pastLen has ${a.pastLen.length} entries for batch ${b}`);
  check((a.cacheK === null) === (a.cacheV === null), op, () => 'cacheK and cacheV must both be given or both be null');
  if (a.cacheK && a.cacheV) checkKvCaches(a.cacheK, a.cacheV, b, a.nKvHeads, a.headDim, a.pastLen, L);
  else for (const p of a.pastLen) check(p === 0, op, () => `pastLen ${p} without a cache (expected 0)`);
  for (const [w, bias] of ws) checkLinear(h, w, bias, true);
  if (a.residual && !residualOk(h, a.residual)) return null;
  return h.backend.attentionPrefill(a);
}

/** a SublayerResidual's norm fits x (and needs no gradient); an unfit one is left to the op sequence, which names the error */
function residualOk(x: Tensor, r: SublayerResidual): boolean {
  const H = x.shape[x.shape.length - 1];
  return !r.norm || (r.norm.shape.length === 1 && r.norm.shape[0] === H && r.norm.backend === x.backend && !needsGrad(r.norm));
}

/**
 * x + scale · gatedMlp(rmsNorm(x, norm, eps)) (SublayerResidual: a decoder block's MLP sublayer with its pre-norm and
 * residual) in one backend call where the backend takes it (wasm prefill); null otherwise (also with gradients): the
 * caller then runs rmsNorm, gatedMlp, scale and add (the same numbers).
 */
export function gatedMlpResidual(x: Tensor, gate: readonly [Tensor, Tensor | null], up: readonly [Tensor, Tensor | null], down: readonly [Tensor, Tensor | null], residual: SublayerResidual): Tensor | null {
  const H = x.shape[x.shape.length - 1];
  const ws = [gate, up, down];
  if (!x.backend.gatedMlp || ws.some(([w, bias]) => needsGrad(x, w, bias)) || !residualOk(x, residual)) return null;
  if (gate[0].shape[1] !== H || up[0].shape[1] !== H || down[0].shape[0] !== H) return null;
  for (const [w, bias] of ws) checkLinear(x, w, bias, true);
  const y = x.backend.gatedMlp(reshape(x, [x.size / H, H]), gate, up, down, residual);
  return y ? reshape(y, x.shape) : null;
}

/** Split the last dim into pieces of the given sizes. */
export function split(x: Tensor, sizes: readonly number[]): Tensor[] {
  const W = x.shape[x.shape.length - 1];
  check(sizes.reduce((a, b) => a + b, 0) === W, 'split', () => `sizes [${sizes.join(', ')}] do not add up to the last dim of ${shapeStr(x.shape)}`);
  if (needsGrad(x)) return differentiable('split', [x], { sizes }).outputs;
  return x.backend.split(x, sizes);
}

export function causalConv1d(args: CausalConv1dArgs): Tensor {
  const { x, weight } = args;
  check(x.shape.length === 3, 'causal_conv1d', () => `x must be [batch, len, channels], got ${shapeStr(x.shape)}`);
  const [b, , C] = x.shape;
  check(weight.shape.length === 2 && weight.shape[0] === C, 'causal_conv1d', () => `weight ${shapeStr(weight.shape)} must be [${C}, K]`);
  expectShape('causal_conv1d', 'bias', args.bias, [C]);
  expectShape('causal_conv1d', 'state', args.state, [b, C, weight.shape[1]]);
  sameBackend('causal_conv1d', 'x', args);
  if (needsGrad(x, weight, args.bias)) {
    check(!args.state, 'causal_conv1d', () => 'training runs without a recurrent state (state must be null)');
    return diff1('causal_conv1d', [x, weight, args.bias], { kind: args.activation });
  }
  return x.backend.causalConv1d(args);
}

export function selectiveScan(args: SelectiveScanArgs): Tensor {
  const op = 'selective_scan';
  check(args.u.shape.length === 3, op, () => `u must be [batch, len, channels], got ${shapeStr(args.u.shape)}`);
  const [b, L, D] = args.u.shape;
  check(args.A.shape.length === 2 && args.A.shape[0] === D, op, () => `A ${shapeStr(args.A.shape)} must be [${D}, N]`);
  const N = args.A.shape[1];
  expectShape(op, 'delta', args.delta, [b, L, D]);
  expectShape(op, 'B', args.B, [b, L, N]);
  expectShape(op, 'C', args.C, [b, L, N]);
  expectShape(op, 'D', args.D, [D]);
  expectShape(op, 'z', args.z, [b, L, D]);
  expectShape(op, 'deltaBias', args.deltaBias, [D]);
  expectShape(op, 'state', args.state, [b, D, N]);
  check(args.chunkSize >= 1, op, () => `chunkSize must be >= 1, got ${args.chunkSize}`);
  sameBackend(op, 'u', args);
  const a = args;
  if (needsGrad(a.u, a.delta, a.A, a.B, a.C, a.D, a.z, a.deltaBias)) {
    check(!a.state, op, () => 'training runs without a recurrent state (state must be null)');
    return diff1(op, [a.u, a.delta, a.A, a.B, a.C, a.D, a.z, a.deltaBias], { softplus: a.deltaSoftplus, chunkSize: a.chunkSize });
  }
  return args.u.backend.selectiveScan(args);
}

export function ssd(args: SsdArgs): Tensor {
  const op = 'ssd';
  check(args.x.shape.length === 4, op, () => `x must be [batch, len, heads, head_dim], got ${shapeStr(args.x.shape)}`);
  const [b, L, nh] = args.x.shape;
  check(args.B.shape.length === 4 && args.B.shape[0] === b && args.B.shape[1] === L, op, () => `B ${shapeStr(args.B.shape)} must be [${b}, ${L}, groups, N]`);
  const [, , G, N] = args.B.shape;
  check(nh % G === 0, op, () => `${nh} heads cannot be split into ${G} groups`);
  expectShape(op, 'C', args.C, args.B.shape);
  expectShape(op, 'dt', args.dt, [b, L, nh]);
  expectShape(op, 'A', args.A, [nh]);
  expectShape(op, 'D', args.D, [nh]);
  expectShape(op, 'dtBias', args.dtBias, [nh]);
  expectShape(op, 'state', args.state, [b, nh, args.x.shape[3], N]);
  check(args.chunkSize >= 1, op, () => `chunkSize must be >= 1, got ${args.chunkSize}`);
  sameBackend(op, 'x', args);
  const a = args;
  if (needsGrad(a.x, a.dt, a.A, a.B, a.C, a.D, a.dtBias)) {
    check(!a.state, op, () => 'training runs without a recurrent state (state must be null)');
    return diff1(op, [a.x, a.dt, a.A, a.B, a.C, a.D, a.dtBias], { dtLimit: a.dtLimit, chunkSize: a.chunkSize });
  }
  return args.x.backend.ssd(args);
}

export function rope(x: Tensor, positions: Int32Array, rotaryDim: number, theta: number): Tensor {
  check(x.shape.length === 4, 'rope', () => `x must be [batch, len, heads, head_dim], got ${shapeStr(x.shape)}`);
  check(positions.length === x.shape[0] * x.shape[1], 'rope', () => `${positions.length} positions for ${x.shape[0]}×${x.shape[1]} tokens`);
  check(rotaryDim % 2 === 0 && rotaryDim > 0 && rotaryDim <= x.shape[3], 'rope', () => `rotary dim ${rotaryDim} must be even and ≤ head_dim ${x.shape[3]}`);
  if (needsGrad(x)) return diff1('rope', [x], { positions, rotaryDim, theta });
  return x.backend.rope(x, positions, rotaryDim, theta);
}

export function attention(args: AttentionArgs): Tensor {
  const op = 'attention';
  const { q, k, v } = args;
  check(q.shape.length === 4, op, () => `q must be [batch, len, heads, head_dim], got ${shapeStr(q.shape)}`);
  const [b, L, Hq, hd] = q.shape;
  check(k.shape.length === 4 && k.shape[0] === b && k.shape[1] === L && k.shape[3] === hd && Hq % k.shape[2] === 0, op,
    () => `k ${shapeStr(k.shape)} does not fit q ${shapeStr(q.shape)} (query heads must be a multiple of KV heads)`);
  expectShape(op, 'v', v, k.shape);
  check(args.pastLen.length === b, op, () => `pastLen has ${args.pastLen.length} entries for batch ${b}`);
  if (args.cacheK || args.cacheV) {
    check(!!args.cacheK && !!args.cacheV, op, () => 'cacheK and cacheV must be given together');
    const T = args.cacheK!.shape[1];
    expectShape(op, 'cacheK', args.cacheK, [b, T, k.shape[2], hd]);
    expectShape(op, 'cacheV', args.cacheV, [b, T, k.shape[2], hd]);
    check(args.cacheK!.dtype === args.cacheV!.dtype && (KV_CACHE_FORMATS as readonly string[]).includes(args.cacheK!.dtype), op,
      () => `cacheK (${args.cacheK!.dtype}) and cacheV (${args.cacheV!.dtype}) must be KV caches of one format: f32, bf16 or f16`);
    for (const p of args.pastLen) check(p + L <= T, op, () => `cache holds ${T} positions; ${p} + ${L} needed`);
  }
  sameBackend(op, 'q', args);
  if (needsGrad(q, k, v)) {
    check(!args.cacheK && args.pastLen.every((p) => p === 0), op, () => 'training runs without a KV cache');
    return diff1(op, [q, k, v], { scalar: args.scale });
  }
  return q.backend.attention(args);
}

/** dst[rows[i]] += weights[i] · src[i] (in place). */
export function scatterAddRows(dst: Tensor, rows: Int32Array, src: Tensor, weights: Float32Array): void {
  const H = dst.shape[dst.shape.length - 1];
  check(src.shape[src.shape.length - 1] === H && src.size / H === rows.length && weights.length === rows.length, 'scatter_add_rows',
    () => `src ${shapeStr(src.shape)}, ${rows.length} rows and ${weights.length} weights do not match dst ${shapeStr(dst.shape)}`);
  const M = dst.size / H;
  for (const r of rows) check(r >= 0 && r < M, 'scatter_add_rows', () => `row ${r} outside [0, ${M})`);
  sameBackend('scatter_add_rows', 'dst', { dst, src });
  dst.backend.scatterAddRows(dst, rows, src, weights);
}

export function padTime(t: Tensor, newT: number): Tensor {
  check(t.shape.length >= 2 && newT >= t.shape[1], 'pad_time', () => `cannot pad ${shapeStr(t.shape)} to ${newT} positions`);
  return newT === t.shape[1] ? t : t.backend.padTime(t, newT);
}

export function concatRows(ts: readonly Tensor[]): Tensor {
  check(ts.length > 0, 'concat_rows', () => 'no tensors');
  const tail = ts[0].shape.slice(1);
  for (const t of ts) check(sameShape(t.shape.slice(1), tail), 'concat_rows', () => `shapes differ: ${shapeStr(ts[0].shape)} vs ${shapeStr(t.shape)}`);
  for (const t of ts) check(t.dtype === ts[0].dtype, 'concat_rows', () => `dtypes differ: ${ts[0].dtype} vs ${t.dtype} (KV caches of different kvCache formats)`);
  sameBackend('concat_rows', 'ts[0]', { 'ts[0]': ts[0], ts });
  return ts[0].backend.concatRows(ts);
}

export function takeRows(t: Tensor, rows: readonly number[]): Tensor {
  for (const r of rows) check(Number.isInteger(r) && r >= 0 && r < t.shape[0], 'take_rows', () => `row ${r} outside [0, ${t.shape[0]})`);
  if (needsGrad(t)) return diff1('take_rows', [t], { rows: Int32Array.from(rows) });
  return t.backend.takeRows(t, rows);
}

// ---- ops that training needs (run through the backend's differentiable implementation) -----------------------

/** elementwise a · b (same shapes) */
export function mul(a: Tensor, b: Tensor): Tensor {
  check(sameShape(a.shape, b.shape), 'mul', () => `shapes differ: ${shapeStr(a.shape)} vs ${shapeStr(b.shape)}`);
  return diff1('mul', [a, b]);
}

/** mean over time of x [b, L, H] → [b, H] (sequence pooling) */
export function meanTime(x: Tensor): Tensor {
  check(x.shape.length === 3, 'mean_time', () => `x must be [batch, len, channels], got ${shapeStr(x.shape)}`);
  return diff1('mean_time', [x]);
}

export interface CrossEntropy {
  /** mean negative log-likelihood over the scored rows, a scalar tensor */
  loss: Tensor;
  /** rows scored (targets other than `ignoreIndex`) */
  count: number;
  /** scored rows whose argmax is the target (NaN where the backend keeps it on the device: see `correctTensor`) */
  correct: number;
  /**
   * On a device backend (WebGPU): the count of correct rows as a scalar tensor — the op's second output — so that a
   * training step reads nothing back until it logs. Absent where `correct` is known on the host.
   */
  correctTensor?: Tensor;
}

/** softmax cross-entropy of logits [..., V] against one target per row (`ignoreIndex` rows are not scored) */
export function softmaxCrossEntropy(logits: Tensor, targets: Int32Array, ignoreIndex = -100): CrossEntropy {
  const V = logits.shape[logits.shape.length - 1];
  check(targets.length * V === logits.size, 'cross_entropy', () => `${targets.length} targets for logits ${shapeStr(logits.shape)}`);
  const r = differentiable('cross_entropy', [logits], { targets, ignoreIndex });
  const count = r.info?.count ?? targets.reduce((n, t) => n + (t === ignoreIndex ? 0 : 1), 0);
  if (r.info?.correct !== undefined) return { loss: r.outputs[0], count, correct: r.info.correct };
  return { loss: r.outputs[0], count, correct: Number.NaN, correctTensor: r.outputs[1] };
}

/**
 * Mixture-of-experts routing weights [M, k] for the experts chosen per row (`experts`, M·k ids) from router
 * logits [M, E]: 'softmax-topk' = softmax over all experts, then picked; 'topk-softmax' = softmax over the picked.
 */
export function routeWeights(logits: Tensor, experts: Int32Array, topK: number, routing: 'softmax-topk' | 'topk-softmax'): Tensor {
  const E = logits.shape[logits.shape.length - 1];
  check(experts.length * E === logits.size * topK, 'route_weights', () => `${experts.length} expert ids for logits ${shapeStr(logits.shape)} and top-${topK}`);
  for (const e of experts) check(e >= 0 && e < E, 'route_weights', () => `expert ${e} outside [0, ${E})`);
  return diff1('route_weights', [logits], { experts, topK, routing });
}

/** out [count, H] with out[rows[i]] = Σ weights[i] · src[i] (out of place): MoE's combine of expert outputs */
export function scatterRows(src: Tensor, weights: Tensor, rows: Int32Array, count: number): Tensor {
  check(src.shape.length === 2 && src.shape[0] === rows.length && weights.size === rows.length, 'scatter_rows',
    () => `src ${shapeStr(src.shape)} and weights ${shapeStr(weights.shape)} do not match ${rows.length} rows`);
  for (const r of rows) check(r >= 0 && r < count, 'scatter_rows', () => `row ${r} outside [0, ${count})`);
  return diff1('scatter_rows', [src, weights], { rows, count });
}

/** S4D convolution kernel [H, L] from diagonal complex parameters (see `src/autograd/fused-s4.ts`) */
export function s4dKernel(logDt: Tensor, logAReal: Tensor, AImag: Tensor, C: Tensor, length: number): Tensor {
  return diff1('s4d_kernel', [logDt, logAReal, AImag, C], { length });
}

/** causal long convolution by FFT: u [b, L, H], K [H, Lk] (+ D skip) → [b, L, H] */
export function fftConv(u: Tensor, K: Tensor, D: Tensor | null): Tensor {
  return diff1('fft_conv', [u, K, D]);
}
