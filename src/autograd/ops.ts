/**
 * Differentiable elementary ops on `Var`s: each computes its value and records a backward rule.
 * The fused sequence-model ops (causal conv1d, selective scan, SSD, attention, S4D kernel, FFT
 * convolution) live in `fused.ts`. Shapes are checked here; messages name the op and the shapes.
 */
import { ShapeError } from '../errors.js';
import { gemmNT, linearBackward } from './gemm.js';
import { accumulate, accumulateColumns, accumulateOwned, type Arr, result, type Shape, sizeOf, Var, zerosLike } from './var.js';

function fail(op: string, msg: string): never {
  throw new ShapeError(`${op}: ${msg}`);
}
const s = (sh: Shape): string => `[${sh.join(', ')}]`;
const last = (sh: Shape): number => sh[sh.length - 1];

/** same data, new shape (gradient passes through) */
export function reshape(x: Var, shape: Shape): Var {
  if (sizeOf(shape) !== x.size) fail('reshape', `cannot view ${s(x.shape)} as ${s(shape)}`);
  return result('reshape', x.data, shape, [x], (g) => accumulate(x, g));
}

/**
 * a + b, where b has a's shape or a's trailing shape (broadcast over the leading dims, e.g. a bias).
 */
export function add(a: Var, b: Var): Var {
  const n = a.size;
  const m = b.size;
  const trailing = b.shape.length <= a.shape.length && b.shape.every((d, i) => d === a.shape[a.shape.length - b.shape.length + i]);
  if (!trailing) fail('add', `shapes ${s(a.shape)} and ${s(b.shape)} do not match (b must equal a's shape or its trailing dims)`);
  const out = zerosLike(a.data, n);
  const ad = a.data;
  const bd = b.data;
  for (let i = 0; i < n; i += m) for (let j = 0; j < m; j++) out[i + j] = ad[i + j] + bd[j];
  return result('add', out, a.shape, [a, b], (g) => {
    accumulate(a, g);
    if (!b.requiresGrad) return;
    if (m === n) return accumulate(b, g);
    const gb = zerosLike(b.data, m);
    for (let i = 0; i < n; i += m) for (let j = 0; j < m; j++) gb[j] += g[i + j];
    accumulateOwned(b, gb);
  });
}

/** elementwise a · b (same shapes) */
export function mul(a: Var, b: Var): Var {
  if (a.size !== b.size || a.shape.length !== b.shape.length) fail('mul', `shapes ${s(a.shape)} and ${s(b.shape)} differ`);
  const n = a.size;
  const out = zerosLike(a.data, n);
  for (let i = 0; i < n; i++) out[i] = a.data[i] * b.data[i];
  return result('mul', out, a.shape, [a, b], (g) => {
    if (a.requiresGrad) {
      const ga = zerosLike(a.data, n);
      for (let i = 0; i < n; i++) ga[i] = g[i] * b.data[i];
      accumulateOwned(a, ga);
    }
    if (b.requiresGrad) {
      const gb = zerosLike(b.data, n);
      for (let i = 0; i < n; i++) gb[i] = g[i] * a.data[i];
      accumulateOwned(b, gb);
    }
  });
}

/** x · c */
export function scale(x: Var, c: number): Var {
  const n = x.size;
  const out = zerosLike(x.data, n);
  for (let i = 0; i < n; i++) out[i] = x.data[i] * c;
  return result('scale', out, x.shape, [x], (g) => {
    const gx = zerosLike(x.data, n);
    for (let i = 0; i < n; i++) gx[i] = g[i] * c;
    accumulateOwned(x, gx);
  });
}

/** Elementwise map with derivative given as a function of (x, y). */
function unary(name: string, x: Var, f: (v: number) => number, df: (v: number, y: number) => number): Var {
  const n = x.size;
  const out = zerosLike(x.data, n);
  const xd = x.data;
  for (let i = 0; i < n; i++) out[i] = f(xd[i]);
  return result(name, out, x.shape, [x], (g) => {
    const gx = zerosLike(xd, n);
    for (let i = 0; i < n; i++) gx[i] = g[i] * df(xd[i], out[i]);
    accumulateOwned(x, gx);
  });
}

const sigm = (v: number): number => 1 / (1 + Math.exp(-v));
/** softplus as PyTorch (linear above 20) */
export const softplusValue = (v: number): number => (v > 20 ? v : Math.log1p(Math.exp(v)));

export const silu = (x: Var): Var => unary('silu', x, (v) => v * sigm(v), (v) => {
  const sg = sigm(v);
  return sg * (1 + v * (1 - sg));
});
export const sigmoid = (x: Var): Var => unary('sigmoid', x, sigm, (_v, y) => y * (1 - y));
export const softplus = (x: Var): Var => unary('softplus', x, softplusValue, (v) => (v > 20 ? 1 : sigm(v)));
export const exp = (x: Var): Var => unary('exp', x, Math.exp, (_v, y) => y);
/** −exp(x): Mamba's A = −exp(A_log) */
export const negExp = (x: Var): Var => unary('neg_exp', x, (v) => -Math.exp(v), (_v, y) => y);
export const relu = (x: Var): Var => unary('relu', x, (v) => (v > 0 ? v : 0), (v) => (v > 0 ? 1 : 0));
export const gelu = (x: Var): Var =>
  unary(
    'gelu',
    x,
    (v) => 0.5 * v * (1 + Math.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))),
    (v) => {
      const u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
      const t = Math.tanh(u);
      return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * 0.7978845608028654 * (1 + 3 * 0.044715 * v * v);
    },
  );

/**
 * x [..., K] · wᵀ (w [N, K]) + bias [N] → [..., N]: the Linear layer. Backward: dx = g·w, dw = gᵀ·x,
 * db = Σ g.
 */
export function linear(x: Var, w: Var, bias: Var | null = null): Var {
  if (w.shape.length !== 2) fail('linear', `weight must be [out, in], got ${s(w.shape)}`);
  const [N, K] = w.shape;
  if (last(x.shape) !== K) fail('linear', `input ${s(x.shape)} has last dim ${last(x.shape)}, weight ${s(w.shape)} expects ${K}`);
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== N)) fail('linear', `bias ${s(bias.shape)} must be [${N}]`);
  const M = x.size / K;
  const xd = x.data;
  const wd = w.data;
  const f32 = xd instanceof Float32Array && wd instanceof Float32Array && (!bias || bias.data instanceof Float32Array);
  const fast = f32 ? gemmNT(xd as Float32Array, wd as Float32Array, bias ? (bias.data as Float32Array) : null, M, K, N) : null;
  const out = fast ?? zerosLike(xd, M * N);
  if (!fast)
  for (let m = 0; m < M; m++) {
    const xo = m * K;
    for (let n = 0; n < N; n++) {
      const wo = n * K;
      let acc = bias ? bias.data[n] : 0;
      for (let k = 0; k < K; k++) acc += xd[xo + k] * wd[wo + k];
      out[m * N + n] = acc;
    }
  }
  const shape = [...x.shape.slice(0, -1), N];
  return result('linear', out, shape, bias ? [x, w, bias] : [x, w], (g) => {
    if (f32 && g instanceof Float32Array) {
      const r = linearBackward(g, xd as Float32Array, wd as Float32Array, M, K, N, x.requiresGrad, w.requiresGrad);
      if (r) {
        if (r.gx) accumulateOwned(x, r.gx);
        if (r.gw) accumulateOwned(w, r.gw);
        if (bias && bias.requiresGrad) biasGrad(bias, g, M, N);
        return;
      }
    }
    if (x.requiresGrad) {
      const gx = zerosLike(xd, M * K);
      for (let m = 0; m < M; m++) {
        const xo = m * K;
        for (let n = 0; n < N; n++) {
          const gv = g[m * N + n];
          if (gv === 0) continue;
          const wo = n * K;
          for (let k = 0; k < K; k++) gx[xo + k] += gv * wd[wo + k];
        }
      }
      accumulateOwned(x, gx);
    }
    if (w.requiresGrad) {
      const gw = zerosLike(wd, N * K);
      for (let m = 0; m < M; m++) {
        const xo = m * K;
        for (let n = 0; n < N; n++) {
          const gv = g[m * N + n];
          if (gv === 0) continue;
          const wo = n * K;
          for (let k = 0; k < K; k++) gw[wo + k] += gv * xd[xo + k];
        }
      }
      accumulateOwned(w, gw);
    }
    if (bias && bias.requiresGrad) biasGrad(bias, g, M, N);
  });
}

function biasGrad(bias: Var, g: Arr, M: number, N: number): void {
  const gb = zerosLike(bias.data, N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) gb[n] += g[m * N + n];
  accumulateOwned(bias, gb);
}

/** rows of table [V, H] picked by ids → [...outShape] (last dim H) */
export function embedding(table: Var, ids: Int32Array, outShape: Shape): Var {
  if (table.shape.length !== 2) fail('embedding', `table must be [vocab, hidden], got ${s(table.shape)}`);
  const [V, H] = table.shape;
  if (sizeOf(outShape) !== ids.length * H || last(outShape) !== H) fail('embedding', `output shape ${s(outShape)} does not hold ${ids.length} rows of ${H}`);
  const out = zerosLike(table.data, ids.length * H);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!(id >= 0 && id < V)) fail('embedding', `token id ${id} at position ${i} is out of range [0, ${V})`);
    out.set(table.data.subarray(id * H, id * H + H), i * H);
  }
  return result('embedding', out, outShape, [table], (g) => {
    const gt = zerosLike(table.data, V * H);
    for (let i = 0; i < ids.length; i++) {
      const o = ids[i] * H;
      for (let h = 0; h < H; h++) gt[o + h] += g[i * H + h];
    }
    accumulateOwned(table, gt);
  });
}

/** RMSNorm over the last dim: w · x / sqrt(mean(x²) + eps) (w null: no weight) */
export function rmsNorm(x: Var, w: Var | null, eps: number): Var {
  const H = last(x.shape);
  if (w && w.size !== H) fail('rms_norm', `weight ${s(w.shape)} must have ${H} values for input ${s(x.shape)}`);
  const M = x.size / H;
  const xd = x.data;
  const out = zerosLike(xd, x.size);
  const rstd = new Float64Array(M);
  // the weight (ones when absent), float64
  const wv = new Float64Array(H).fill(1);
  if (w) wv.set(w.data);
  for (let m = 0; m < M; m++) {
    const o = m * H;
    let ss = 0;
    for (let h = 0; h < H; h++) ss += xd[o + h] * xd[o + h];
    const r = 1 / Math.sqrt(ss / H + eps);
    rstd[m] = r;
    for (let h = 0; h < H; h++) out[o + h] = xd[o + h] * r * wv[h];
  }
  return result('rms_norm', out, x.shape, w ? [x, w] : [x], (g) => {
    const gx = x.requiresGrad ? zerosLike(xd, x.size) : null;
    const gw = w && w.requiresGrad ? new Float64Array(H) : null;
    for (let m = 0; m < M; m++) {
      const r = rstd[m];
      const o = m * H;
      // y_h = w_h x_h r;  dL/dx_j = r (w_j g_j) − r³/H · x_j · Σ_h w_h g_h x_h
      let dot = 0;
      for (let h = 0; h < H; h++) dot += wv[h] * g[o + h] * xd[o + h];
      const c = (r * r * r * dot) / H;
      if (gx) for (let h = 0; h < H; h++) gx[o + h] = r * wv[h] * g[o + h] - c * xd[o + h];
      if (gw) for (let h = 0; h < H; h++) gw[h] += g[o + h] * xd[o + h] * r;
    }
    if (gx) accumulateOwned(x, gx);
    if (gw && w) {
      const gw1 = zerosLike(w.data, H);
      gw1.set(gw);
      accumulateOwned(w, gw1);
    }
  });
}

/** split the last dim into contiguous pieces */
export function split(x: Var, sizes: readonly number[]): Var[] {
  const H = last(x.shape);
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== H) fail('split', `sizes [${sizes.join(', ')}] sum to ${total}, the last dim of ${s(x.shape)} is ${H}`);
  const M = x.size / H;
  const outs: Var[] = [];
  let off = 0;
  for (const w of sizes) {
    const o0 = off;
    const out = zerosLike(x.data, M * w);
    for (let m = 0; m < M; m++) out.set(x.data.subarray(m * H + o0, m * H + o0 + w), m * w);
    outs.push(
      result('split', out, [...x.shape.slice(0, -1), w], [x], (g) => accumulateColumns(x, g, o0, w, H)),
    );
    off += w;
  }
  return outs;
}

/** concatenate along the last dim (same leading dims) */
export function concatLast(xs: readonly Var[]): Var {
  if (xs.length === 0) fail('concat', 'nothing to concatenate');
  const lead = xs[0].shape.slice(0, -1);
  for (const x of xs) if (x.shape.length !== lead.length + 1 || !lead.every((d, i) => d === x.shape[i])) fail('concat', `leading dims differ: ${xs.map((v) => s(v.shape)).join(' vs ')}`);
  const widths = xs.map((x) => last(x.shape));
  const H = widths.reduce((a, b) => a + b, 0);
  const M = sizeOf(lead);
  const out = zerosLike(xs[0].data, M * H);
  let off = 0;
  xs.forEach((x, i) => {
    const w = widths[i];
    for (let m = 0; m < M; m++) out.set(x.data.subarray(m * w, m * w + w), m * H + off);
    off += w;
  });
  return result('concat', out, [...lead, H], xs, (g) => {
    let o = 0;
    xs.forEach((x, i) => {
      const w = widths[i];
      if (x.requiresGrad) {
        const gx = zerosLike(x.data, x.size);
        for (let m = 0; m < M; m++) for (let j = 0; j < w; j++) gx[m * w + j] = g[m * H + o + j];
        accumulateOwned(x, gx);
      }
      o += w;
    });
  });
}

/** pick rows of the first dim: x [M, ...] → [rows.length, ...] */
export function takeRows(x: Var, rows: readonly number[]): Var {
  const M = x.shape[0];
  const R = x.size / M;
  const out = zerosLike(x.data, rows.length * R);
  rows.forEach((r, i) => {
    if (!(Number.isInteger(r) && r >= 0 && r < M)) fail('take_rows', `row ${r} out of range [0, ${M})`);
    out.set(x.data.subarray(r * R, r * R + R), i * R);
  });
  return result('take_rows', out, [rows.length, ...x.shape.slice(1)], [x], (g) => {
    const gx = zerosLike(x.data, x.size);
    rows.forEach((r, i) => {
      for (let j = 0; j < R; j++) gx[r * R + j] += g[i * R + j];
    });
    accumulateOwned(x, gx);
  });
}

/** mean over dim 1 of x [b, L, H] → [b, H] (sequence pooling) */
export function meanTime(x: Var): Var {
  if (x.shape.length !== 3) fail('mean_time', `expected [b, L, H], got ${s(x.shape)}`);
  const [b, L, H] = x.shape;
  const out = zerosLike(x.data, b * H);
  for (let r = 0; r < b; r++) for (let t = 0; t < L; t++) for (let h = 0; h < H; h++) out[r * H + h] += x.data[(r * L + t) * H + h] / L;
  return result('mean_time', out, [b, H], [x], (g) => {
    const gx = zerosLike(x.data, x.size);
    for (let r = 0; r < b; r++) for (let t = 0; t < L; t++) for (let h = 0; h < H; h++) gx[(r * L + t) * H + h] = g[r * H + h] / L;
    accumulateOwned(x, gx);
  });
}

/** Σ of all elements → scalar */
export function sum(x: Var): Var {
  let acc = 0;
  for (let i = 0; i < x.size; i++) acc += x.data[i];
  const out = zerosLike(x.data, 1);
  out[0] = acc;
  return result('sum', out, [], [x], (g) => {
    const gx = zerosLike(x.data, x.size);
    gx.fill(g[0]);
    accumulateOwned(x, gx);
  });
}

export interface CrossEntropyResult {
  /** mean negative log-likelihood over scored positions (scalar Var) */
  loss: Var;
  /** number of scored positions */
  count: number;
  /** scored positions whose argmax equals the target */
  correct: number;
}

/**
 * Softmax cross-entropy of logits [..., V] against integer targets (one per row; `ignoreIndex` rows are
 * not scored), averaged over scored rows — fused, so the backward is softmax − onehot without storing
 * the probabilities twice.
 */
export function softmaxCrossEntropy(logits: Var, targets: Int32Array, ignoreIndex = -100): CrossEntropyResult {
  const V = last(logits.shape);
  const M = logits.size / V;
  if (targets.length !== M) fail('cross_entropy', `${targets.length} targets for ${M} rows of logits ${s(logits.shape)}`);
  const ld = logits.data;
  const probs = zerosLike(ld, logits.size);
  let total = 0;
  let count = 0;
  let correct = 0;
  for (let m = 0; m < M; m++) {
    const t = targets[m];
    if (t === ignoreIndex) continue;
    if (!(Number.isInteger(t) && t >= 0 && t < V)) fail('cross_entropy', `target ${t} at row ${m} is out of range [0, ${V}) (use ${ignoreIndex} to skip a row)`);
    const o = m * V;
    let mx = -Infinity;
    let arg = 0;
    for (let v = 0; v < V; v++)
      if (ld[o + v] > mx) {
        mx = ld[o + v];
        arg = v;
      }
    let z = 0;
    for (let v = 0; v < V; v++) {
      const e = Math.exp(ld[o + v] - mx);
      probs[o + v] = e;
      z += e;
    }
    for (let v = 0; v < V; v++) probs[o + v] /= z;
    total += -(ld[o + t] - mx - Math.log(z));
    count++;
    if (arg === t) correct++;
  }
  const out = zerosLike(ld, 1);
  out[0] = count > 0 ? total / count : 0;
  const loss = result('cross_entropy', out, [], [logits], (g) => {
    if (count === 0) return;
    const c = g[0] / count;
    const gl = zerosLike(ld, logits.size);
    for (let m = 0; m < M; m++) {
      const t = targets[m];
      if (t === ignoreIndex) continue;
      const o = m * V;
      for (let v = 0; v < V; v++) gl[o + v] = c * probs[o + v];
      gl[o + t] -= c;
    }
    accumulateOwned(logits, gl);
  });
  return { loss, count, correct };
}

/** Var with the given data as a constant of the same precision as `like` */
export function constantLike(like: Arr, values: ArrayLike<number>, shape: Shape): Var {
  const d = zerosLike(like, values.length);
  for (let i = 0; i < values.length; i++) d[i] = values[i];
  return new Var(d, shape, false);
}
