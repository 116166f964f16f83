/**
 * Differentiable fused sequence-model ops, each one graph node with a hand-written backward (no tape inside):
 * causal depthwise conv1d, gated RMSNorm, causal GQA attention and rotary embedding here; the selective scan in
 * `fused-scan.ts`, SSD in `fused-ssd.ts`, the S4D kernel and FFT convolution in `fused-s4.ts` (re-exported).
 *
 * Values match the inference kernels in src/backend/cpu (the reference semantics); like the elementary ops in
 * `ops.ts`, outputs and gradients have the precision of the inputs (Float32Array training, Float64Array gradient
 * checks) while reductions accumulate in float64.
 */
import { expectRank, expectShape, fail, fromF64, needsGrad, present, shp, sigm } from './fused-common.js';
import { silu as siluOp } from './ops.js';
import { accumulateOwned, type Arr, result, type Var, zerosLike } from './var.js';
import { allF32, trainRuntime, WASM_TRAIN_MAX_BYTES, withFrame } from './wasm-train.js';
import type { WasmRuntime } from '../backend/wasm/runtime.js';

export { selectiveScan, type ScanInputs } from './fused-scan.js';
export { ssd, type SsdInputs } from './fused-ssd.js';
export { fftConv, s4dKernel } from './fused-s4.js';

/**
 * depthwise causal conv over time: x [b, L, C], w [C, K], bias [C] | null → [b, L, C];
 * y[t,c] = bias[c] + Σ_k w[c,k]·x[t−K+1+k, c] (zero history), then silu(y) when `silu` is set.
 * Float32 runs on the WebAssembly SIMD kernels (`conv_train_fwd` / `conv_train_bwd`, silu fused: one graph node);
 * float64 (gradient checks) on `causalConv1dJs`, followed by ops.silu.
 */
export function causalConv1d(x: Var, w: Var, bias: Var | null, silu = false): Var {
  checkConv(x, w, bias);
  const fits = 4 * 5 * x.size <= WASM_TRAIN_MAX_BYTES; // the backward's x, yPre, g, gx (+ scratch)
  const rt = fits && allF32(x.data, w.data, bias ? bias.data : null) ? trainRuntime() : null;
  if (rt) return causalConv1dWasm(rt, x, w, bias, silu);
  const y = causalConv1dJs(x, w, bias);
  return silu ? siluOp(y) : y;
}

function checkConv(x: Var, w: Var, bias: Var | null): void {
  const op = 'causal_conv1d';
  expectRank(op, 'x', x, 3, '[b, L, C]');
  const C = x.shape[2];
  expectRank(op, 'w', w, 2, `[${C}, K]`);
  if (w.shape[0] !== C) fail(op, `w ${shp(w.shape)} must be [${C}, K] for x ${shp(x.shape)}`);
  expectShape(op, 'bias', bias, [C]);
}

function causalConv1dWasm(rt: WasmRuntime, x: Var, w: Var, bias: Var | null, silu: boolean): Var {
  const [bsz, L, C] = x.shape;
  const K = w.shape[1];
  const k = rt.kernels;
  const n = bsz * L * C;
  const s = silu ? 1 : 0;
  const saving = needsGrad(present(x, w, bias));
  let y!: Float32Array;
  let yPre: Float32Array | null = null;
  withFrame(rt, (f) => {
    const xo = f.put(x.data), wo = f.put(w.data), bo = f.put(bias ? bias.data : null);
    const yo = f.alloc(n);
    const po = silu && saving ? f.alloc(n) : 0;
    const so = f.allocBytes(k.conv_train_scratch(C, K) as unknown as number);
    k.conv_train_fwd(xo, wo, bo, yo, po, so, bsz, L, C, K, s);
    y = f.take(yo, n);
    if (po) yPre = f.take(po, n);
  });
  return result('causal_conv1d', y, [bsz, L, C], present(x, w, bias), (g: Arr) => {
    const r = withFrame(rt, (f) => {
      const xo = f.put(x.data), wo = f.put(w.data), po = f.put(yPre), go = f.put(g);
      const gxo = x.requiresGrad ? f.alloc(n) : 0;
      const gwo = w.requiresGrad ? f.alloc(C * K) : 0;
      const gbo = bias && bias.requiresGrad ? f.alloc(C) : 0;
      const so = f.allocBytes(k.conv_train_scratch(C, K) as unknown as number);
      k.conv_train_bwd(xo, wo, po, go, gxo, gwo, gbo, so, bsz, L, C, K, s);
      return { gx: gxo ? f.take(gxo, n) : null, gw: gwo ? f.take(gwo, C * K) : null, gb: gbo ? f.take(gbo, C) : null };
    });
    if (r.gx) accumulateOwned(x, r.gx);
    if (r.gw) accumulateOwned(w, r.gw);
    if (bias && r.gb) accumulateOwned(bias, r.gb);
  });
}

/** The TypeScript implementation (float64 sums; any input precision), without activation: the wasm kernels' oracle. */
export function causalConv1dJs(x: Var, w: Var, bias: Var | null): Var {
  const op = 'causal_conv1d';
  checkConv(x, w, bias);
  const [bsz, L, C] = x.shape;
  const K = w.shape[1];
  const xd = x.data;
  const wd = w.data;
  const bd = bias ? bias.data : null;
  const wT = new Float64Array(K * C); // [K, C]: contiguous over channels in the inner loop
  for (let c = 0; c < C; c++) for (let k = 0; k < K; k++) wT[k * C + c] = wd[c * K + k];
  const y = zerosLike(xd, x.size);
  const acc = new Float64Array(C);
  for (let b = 0; b < bsz; b++) {
    for (let t = 0; t < L; t++) {
      if (bd) for (let c = 0; c < C; c++) acc[c] = bd[c];
      else acc.fill(0);
      for (let k = Math.max(0, K - 1 - t); k < K; k++) {
        const xo = (b * L + t - K + 1 + k) * C;
        const wo = k * C;
        for (let c = 0; c < C; c++) acc[c] += wT[wo + c] * xd[xo + c];
      }
      y.set(acc, (b * L + t) * C);
    }
  }
  return result(op, y, [bsz, L, C], present(x, w, bias), (g: Arr) => {
    if (x.requiresGrad) {
      // gx[s, c] = Σ_k g[s + K − 1 − k, c] · w[c, k]
      const gx = zerosLike(xd, x.size);
      for (let b = 0; b < bsz; b++) {
        for (let s = 0; s < L; s++) {
          acc.fill(0);
          for (let k = Math.max(0, s + K - L); k < K; k++) {
            const go = (b * L + s + K - 1 - k) * C;
            const wo = k * C;
            for (let c = 0; c < C; c++) acc[c] += wT[wo + c] * g[go + c];
          }
          gx.set(acc, (b * L + s) * C);
        }
      }
      accumulateOwned(x, gx);
    }
    if (w.requiresGrad) {
      const gwT = new Float64Array(K * C);
      for (let b = 0; b < bsz; b++) {
        for (let t = 0; t < L; t++) {
          const go = (b * L + t) * C;
          for (let k = Math.max(0, K - 1 - t); k < K; k++) {
            const xo = (b * L + t - K + 1 + k) * C;
            const wo = k * C;
            for (let c = 0; c < C; c++) gwT[wo + c] += g[go + c] * xd[xo + c];
          }
        }
      }
      const gw = zerosLike(wd, C * K);
      for (let c = 0; c < C; c++) for (let k = 0; k < K; k++) gw[c * K + k] = gwT[k * C + c];
      accumulateOwned(w, gw);
    }
    if (bias && bias.requiresGrad) {
      const gb = new Float64Array(C);
      for (let i = 0; i < g.length; i += C) for (let c = 0; c < C; c++) gb[c] += g[i + c];
      accumulateOwned(bias, fromF64(bias.data, gb));
    }
  });
}

/**
 * gated RMSNorm (norm_before_gate = false): w · rmsnorm(x · silu(z)) per group of groupSize channels,
 * x,z [..., H], w [H]
 */
export function rmsNormGated(x: Var, z: Var, w: Var, eps: number, groupSize: number): Var {
  const op = 'rms_norm_gated';
  if (x.shape.length < 1) fail(op, `x must have a channel dim, got ${shp(x.shape)}`);
  const H = x.shape[x.shape.length - 1];
  expectShape(op, 'z', z, x.shape);
  expectShape(op, 'w', w, [H]);
  const gs = groupSize;
  if (!(Number.isInteger(gs) && gs >= 1 && H % gs === 0)) fail(op, `groupSize ${gs} must divide the channel dim ${H} of x ${shp(x.shape)}`);
  const xd = x.data;
  const zd = z.data;
  const wd = w.data;
  const M = x.size / H;
  const nG = H / gs;
  const y = zerosLike(xd, x.size);
  const rstd = new Float64Array(M * nG);
  for (let m = 0; m < M; m++) {
    for (let gi = 0; gi < nG; gi++) {
      const o = m * H + gi * gs;
      let ss = 0;
      for (let k = 0; k < gs; k++) {
        const zv = zd[o + k];
        const v = (xd[o + k] * zv) / (1 + Math.exp(-zv));
        ss += v * v;
      }
      const r = 1 / Math.sqrt(ss / gs + eps);
      rstd[m * nG + gi] = r;
      for (let k = 0; k < gs; k++) {
        const zv = zd[o + k];
        y[o + k] = (wd[gi * gs + k] * xd[o + k] * zv * r) / (1 + Math.exp(-zv));
      }
    }
  }
  return result(op, y, x.shape, [x, z, w], (g: Arr) => {
    const gx = zerosLike(xd, x.size);
    const gz = zerosLike(zd, z.size);
    const gw = new Float64Array(H);
    const v = new Float64Array(gs);
    const sg = new Float64Array(gs);
    for (let m = 0; m < M; m++) {
      for (let gi = 0; gi < nG; gi++) {
        const o = m * H + gi * gs;
        const wo = gi * gs;
        const r = rstd[m * nG + gi];
        // y_k = w_k v_k r;  gv_j = r w_j g_j − r³/gs · v_j Σ_k w_k g_k v_k
        let dot = 0;
        for (let k = 0; k < gs; k++) {
          const zv = zd[o + k];
          const s = sigm(zv);
          sg[k] = s;
          v[k] = xd[o + k] * zv * s;
          dot += wd[wo + k] * g[o + k] * v[k];
          gw[wo + k] += g[o + k] * v[k] * r;
        }
        const c = (r * r * r * dot) / gs;
        for (let k = 0; k < gs; k++) {
          const gv = r * wd[wo + k] * g[o + k] - c * v[k];
          const zv = zd[o + k];
          const s = sg[k];
          gx[o + k] = gv * zv * s;
          gz[o + k] = gv * xd[o + k] * s * (1 + zv * (1 - s));
        }
      }
    }
    accumulateOwned(x, gx);
    accumulateOwned(z, gz);
    accumulateOwned(w, fromF64(wd, gw));
  });
}

/**
 * causal GQA attention without cache: q [b,L,Hq,hd], k/v [b,L,Hkv,hd] → [b,L,Hq,hd], softmax(q·kᵀ·scale) masked
 * causally (query head h reads kv head ⌊h/(Hq/Hkv)⌋). Keeps only the per-row log-sum-exp; the backward recomputes
 * the probabilities (flash-attention style), so memory is O(b·L·Hq), not O(L²).
 */
export function attention(q: Var, k: Var, v: Var, scale: number): Var {
  const op = 'attention';
  expectRank(op, 'q', q, 4, '[b, L, Hq, hd]');
  const [bsz, L, Hq, hd] = q.shape;
  expectRank(op, 'k', k, 4, '[b, L, Hkv, hd]');
  const Hkv = k.shape[2];
  expectShape(op, 'k', k, [bsz, L, Hkv, hd]);
  expectShape(op, 'v', v, [bsz, L, Hkv, hd]);
  if (Hkv < 1 || Hq % Hkv !== 0) fail(op, `q heads ${Hq} (q ${shp(q.shape)}) must be a multiple of kv heads ${Hkv} (k ${shp(k.shape)})`);
  const group = Hq / Hkv;
  const qd = q.data;
  const kd = k.data;
  const vd = v.data;
  const rowQ = Hq * hd;
  const rowKV = Hkv * hd;
  const out = zerosLike(qd, q.size);
  const saving = needsGrad([q, k, v]);
  const lse = saving ? new Float64Array(bsz * L * Hq) : null;
  const scores = new Float64Array(L);
  const acc = new Float64Array(hd);
  const qt = new Float64Array(hd);
  const kf = Float64Array.from(kd); // float64 copies: the inner loops read them L/2 times each
  const vf = Float64Array.from(vd);
  for (let r = 0; r < bsz; r++) {
    for (let t = 0; t < L; t++) {
      for (let h = 0; h < Hq; h++) {
        const kvo = Math.floor(h / group) * hd;
        const qo = (r * L + t) * rowQ + h * hd;
        for (let i = 0; i < hd; i++) qt[i] = qd[qo + i];
        let max = -Infinity;
        for (let s = 0; s <= t; s++) {
          const ko = (r * L + s) * rowKV + kvo;
          let d = 0;
          for (let i = 0; i < hd; i++) d += qt[i] * kf[ko + i];
          d *= scale;
          scores[s] = d;
          if (d > max) max = d;
        }
        let sum = 0;
        for (let s = 0; s <= t; s++) {
          const e = Math.exp(scores[s] - max);
          scores[s] = e;
          sum += e;
        }
        acc.fill(0);
        for (let s = 0; s <= t; s++) {
          const wgt = scores[s] / sum;
          const vo = (r * L + s) * rowKV + kvo;
          for (let i = 0; i < hd; i++) acc[i] += wgt * vf[vo + i];
        }
        for (let i = 0; i < hd; i++) out[qo + i] = acc[i];
        if (lse) lse[(r * L + t) * Hq + h] = max + Math.log(sum);
      }
    }
  }
  return result(op, out, [bsz, L, Hq, hd], [q, k, v], (g: Arr) => {
    if (!lse) return;
    const gq = zerosLike(qd, q.size);
    const gk = new Float64Array(k.size);
    const gv = new Float64Array(v.size);
    const kf = Float64Array.from(kd); // float64 copies: the inner loops read them L/2 times each
    const vf = Float64Array.from(vd);
    const dq = new Float64Array(hd);
    const qt = new Float64Array(hd);
    const gt = new Float64Array(hd);
    for (let r = 0; r < bsz; r++) {
      for (let t = 0; t < L; t++) {
        for (let h = 0; h < Hq; h++) {
          const kvo = Math.floor(h / group) * hd;
          const qo = (r * L + t) * rowQ + h * hd;
          const m = lse[(r * L + t) * Hq + h];
          // Δ = Σ_s p_s (dO · v_s) = dO · o
          let delta = 0;
          for (let i = 0; i < hd; i++) {
            qt[i] = qd[qo + i];
            gt[i] = g[qo + i];
            delta += gt[i] * out[qo + i];
          }
          dq.fill(0);
          for (let s = 0; s <= t; s++) {
            const ko = (r * L + s) * rowKV + kvo;
            let d = 0;
            let dp = 0;
            for (let i = 0; i < hd; i++) {
              d += qt[i] * kf[ko + i];
              dp += gt[i] * vf[ko + i];
            }
            const p = Math.exp(d * scale - m);
            const ds = p * (dp - delta) * scale;
            for (let i = 0; i < hd; i++) {
              dq[i] += ds * kf[ko + i];
              gk[ko + i] += ds * qt[i];
              gv[ko + i] += p * gt[i];
            }
          }
          for (let i = 0; i < hd; i++) gq[qo + i] = dq[i];
        }
      }
    }
    accumulateOwned(q, gq);
    accumulateOwned(k, fromF64(kd, gk));
    accumulateOwned(v, fromF64(vd, gv));
  });
}

/**
 * rotary embedding (rotate-half convention) on the first rotaryDim channels of each head of x [b,L,H,hd];
 * positions [b·L]. In float32 the angles are rounded as the inference kernel (HF's float32 outer product) so
 * training and inference see the same rotation.
 */
export function rope(x: Var, positions: Int32Array, rotaryDim: number, theta: number): Var {
  const op = 'rope';
  expectRank(op, 'x', x, 4, '[b, L, H, hd]');
  const [bsz, L, H, hd] = x.shape;
  const rows = bsz * L;
  if (positions.length !== rows) fail(op, `${positions.length} positions for x ${shp(x.shape)} (need b·L = ${rows})`);
  const rd = rotaryDim;
  if (!(Number.isInteger(rd) && rd >= 0 && rd % 2 === 0 && rd <= hd)) fail(op, `rotaryDim ${rd} must be even and ≤ head dim ${hd} (x ${shp(x.shape)})`);
  const half = rd / 2;
  const f32 = x.data instanceof Float32Array;
  const round = f32 ? Math.fround : (v: number): number => v;
  const cos = new Float64Array(rows * half);
  const sin = new Float64Array(rows * half);
  const invFreq = new Float64Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = round(1 / Math.pow(theta, (2 * i) / rd));
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < half; i++) {
      const f = round(positions[r] * invFreq[i]);
      cos[r * half + i] = round(Math.cos(f));
      sin[r * half + i] = round(Math.sin(f));
    }
  }
  const xd = x.data;
  const y = zerosLike(xd, x.size);
  y.set(xd);
  for (let r = 0; r < rows; r++) {
    const co = r * half;
    for (let h = 0; h < H; h++) {
      const o = (r * H + h) * hd;
      for (let i = 0; i < half; i++) {
        const a = xd[o + i];
        const b = xd[o + i + half];
        const c = cos[co + i];
        const s = sin[co + i];
        y[o + i] = a * c - b * s;
        y[o + i + half] = b * c + a * s;
      }
    }
  }
  return result(op, y, x.shape, [x], (g: Arr) => {
    const gx = zerosLike(xd, x.size);
    gx.set(g);
    for (let r = 0; r < rows; r++) {
      const co = r * half;
      for (let h = 0; h < H; h++) {
        const o = (r * H + h) * hd;
        for (let i = 0; i < half; i++) {
          const ga = g[o + i];
          const gb = g[o + i + half];
          const c = cos[co + i];
          const s = sin[co + i];
          gx[o + i] = ga * c + gb * s;
          gx[o + i + half] = gb * c - ga * s;
        }
      }
    }
    accumulateOwned(x, gx);
  });
}
