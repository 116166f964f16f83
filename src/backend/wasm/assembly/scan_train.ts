// Training kernels of the Mamba-1 selective scan (S6), f32, 128-bit SIMD: the forward that saves per-chunk state
// checkpoints and the backward that recomputes each chunk from its checkpoint and runs the adjoint recurrence.
//
// Oracle: `selectiveScan` in src/autograd/fused-scan.ts (same math, same checkpoint interval; that one keeps the
// state in float64, these in f32). Layouts as there:
//   u, delta, z, out, yPre, g, gu, gdelta, gz: [batch, L, Dm];  B, C, gB, gC: [batch, L, N];  A, gA: [Dm, N];
//   D, bias, gD, gBias: [Dm].  Optional inputs are 0 when absent.
//
// Vectorized over channels: a 4-lane vector holds 4 consecutive channels d (the last group of an odd Dm is partial:
// its unused lanes load zeros, so they carry u = 0, g = 0 and add nothing to the channel sums). Each group's state
// h[n] (n < N) is a row of N vectors in scratch memory (L1), updated one step at a time; B_t[n], C_t[n] are
// broadcast loads. Everything that sums over n (y, the gradients of u and Δ) is then lane-wise with no horizontal
// reduction; what sums over channels (gB, gC) is accumulated lane-wise per (t, n) over the groups and reduced
// across the 4 lanes once per batch row.
//
// Memory the caller provides (byte offsets; the module allocates nothing):
//   ckpt: [batch, nChunks, G, N] vectors (G = ⌈Dm/4⌉, nChunks = ⌈L/T⌉): the state entering each chunk of T steps.
//   scratch (forward): scanTrainFwdScratch(Dm, N) bytes; (backward): scanTrainBwdScratch(Dm, N, L, T) bytes.
// Single-threaded (training is data-parallel across worker threads, each with its own module instance).

import { ldz, stc, vexp, vsilu, vsoftplus } from './simd';

// 1 / (1 + exp(−x))
// @ts-ignore: decorator
@inline function vsigmoid(x: v128): v128 {
  const one = f32x4.splat(1.0);
  return f32x4.div(one, f32x4.add(one, vexp(f32x4.neg(x))));
}

// A [Dm, N] → AT: [G, N] vectors, lane k of (g, n) = A[4g + k, n] (zeros past Dm)
function transposeA(A: usize, AT: usize, Dm: i32, N: i32): void {
  const G = (Dm + 3) >> 2;
  const Nu = <usize>N;
  for (let g = 0; g < G; g++) {
    const nc = min(4, Dm - 4 * g);
    for (let n = 0; n < N; n++) {
      let v = f32x4.splat(0.0);
      const p = A + ((<usize>(4 * g) * Nu + <usize>n) << 2);
      const s = Nu << 2;
      v = v128.load32_lane(p, v, 0);
      if (nc > 1) v = v128.load32_lane(p + s, v, 1);
      if (nc > 2) v = v128.load32_lane(p + 2 * s, v, 2);
      if (nc > 3) v = v128.load32_lane(p + 3 * s, v, 3);
      v128.store(AT + ((<usize>g * Nu + <usize>n) << 4), v);
    }
  }
}

/** bytes of scratch the forward needs */
export function scan_train_fwd_scratch(Dm: i32, N: i32): i32 {
  const G = (Dm + 3) >> 2;
  return (G * N + N) << 4;
}

/** bytes of scratch the backward needs */
export function scan_train_bwd_scratch(Dm: i32, N: i32, L: i32, T: i32): i32 {
  const G = (Dm + 3) >> 2;
  const Tc = min(T, L);
  // AT, gAT: G·N;  hs: (Tc + 1)·N;  as: Tc·N;  dh: N;  gBp, gCp: L·N  (vectors)
  return (2 * G * N + (Tc + 1) * N + Tc * N + N + 2 * L * N) << 4;
}

/**
 * Forward. out = the scan's output (gated when z is given); yPre (0: not kept) = y before the gate; ckpt (0: not
 * kept) = the state entering every chunk of T steps.
 */
export function scan_train_fwd(
  u: usize, delta: usize, A: usize, B: usize, C: usize, D: usize, z: usize, bias: usize,
  out: usize, yPre: usize, ckpt: usize, scratch: usize,
  batch: i32, L: i32, Dm: i32, N: i32, sp: i32, T: i32,
): void {
  const G = (Dm + 3) >> 2;
  const Nu = <usize>N;
  const AT = scratch;
  const h = scratch + ((<usize>G * Nu) << 4);
  transposeA(A, AT, Dm, N);
  const nChunks = max(1, (L + T - 1) / T);
  const rowStride = <usize>Dm << 2;
  const bcStride = Nu << 2;
  const zero = f32x4.splat(0.0);
  for (let b = 0; b < batch; b++) {
    for (let gi = 0; gi < G; gi++) {
      const nc = min(4, Dm - 4 * gi);
      const dOff = <usize>(4 * gi) << 2;
      const bv = bias ? ldz(bias + dOff, nc) : zero;
      const Dv = D ? ldz(D + dOff, nc) : zero;
      const ag = AT + ((<usize>gi * Nu) << 4);
      for (let n = 0; n < N; n++) v128.store(h + (<usize>n << 4), zero);
      let row = ((<usize>b * <usize>L * <usize>Dm) << 2) + dOff;
      let bc = (<usize>b * <usize>L * Nu) << 2;
      for (let t = 0; t < L; t++) {
        if (ckpt && t % T == 0) {
          memory.copy(ckpt + (((<usize>(b * nChunks + t / T) * <usize>G + <usize>gi) * Nu) << 4), h, Nu << 4);
        }
        let dt = f32x4.add(ldz(delta + row, nc), bv);
        if (sp) dt = vsoftplus(dt);
        const uv = ldz(u + row, nc);
        const du = f32x4.mul(dt, uv);
        const bp = B + bc;
        const cp = C + bc;
        let acc = zero;
        for (let n = 0; n < N; n++) {
          const o = <usize>n << 4;
          const e = vexp(f32x4.mul(dt, v128.load(ag + o)));
          const hv = f32x4.add(f32x4.mul(e, v128.load(h + o)), f32x4.mul(du, v128.load32_splat(bp + (<usize>n << 2))));
          v128.store(h + o, hv);
          acc = f32x4.add(acc, f32x4.mul(hv, v128.load32_splat(cp + (<usize>n << 2))));
        }
        if (D) acc = f32x4.add(acc, f32x4.mul(Dv, uv));
        if (z) {
          if (yPre) stc(yPre + row, acc, nc);
          acc = f32x4.mul(acc, vsilu(ldz(z + row, nc)));
        }
        stc(out + row, acc, nc);
        row += rowStride;
        bc += bcStride;
      }
    }
  }
}

/**
 * Backward: from the output gradient g, the gradients of every input (gz only when z is given; gD, gBias are
 * written whenever their pointers are non-zero). yPre is needed when z is given.
 */
export function scan_train_bwd(
  u: usize, delta: usize, A: usize, B: usize, C: usize, D: usize, z: usize, bias: usize,
  yPre: usize, ckpt: usize, g: usize,
  gu: usize, gdelta: usize, gz: usize, gA: usize, gB: usize, gC: usize, gD: usize, gBias: usize, scratch: usize,
  batch: i32, L: i32, Dm: i32, N: i32, sp: i32, T: i32,
): void {
  const G = (Dm + 3) >> 2;
  const Nu = <usize>N;
  const Tc = min(T, L);
  const nChunks = max(1, (L + T - 1) / T);
  const rowVec = Nu << 4; // bytes of one row of N vectors
  const AT = scratch;
  const gAT = AT + <usize>G * rowVec;
  const hs = gAT + <usize>G * rowVec;
  const as = hs + <usize>(Tc + 1) * rowVec;
  const dh = as + <usize>Tc * rowVec;
  const gBp = dh + rowVec;
  const gCp = gBp + <usize>L * rowVec;
  transposeA(A, AT, Dm, N);
  memory.fill(gAT, 0, <usize>G * rowVec);
  if (gD) memory.fill(gD, 0, <usize>Dm << 2);
  if (gBias) memory.fill(gBias, 0, <usize>Dm << 2);
  const rowStride = <usize>Dm << 2;
  const bcStride = Nu << 2;
  const zero = f32x4.splat(0.0);
  const one = f32x4.splat(1.0);
  for (let b = 0; b < batch; b++) {
    memory.fill(gBp, 0, <usize>L * rowVec * 2); // gBp and gCp
    for (let gi = 0; gi < G; gi++) {
      const nc = min(4, Dm - 4 * gi);
      const dOff = <usize>(4 * gi) << 2;
      const bv = bias ? ldz(bias + dOff, nc) : zero;
      const Dv = D ? ldz(D + dOff, nc) : zero;
      const ag = AT + <usize>gi * rowVec;
      const gag = gAT + <usize>gi * rowVec;
      let gDacc = zero;
      let gBacc = zero;
      memory.fill(dh, 0, rowVec);
      for (let c = nChunks - 1; c >= 0; c--) {
        const t0 = c * T;
        const t1 = min(L, t0 + T);
        // recompute the chunk's states from its checkpoint: hs[j] = h_{t0+j−1}, as[j] = exp(Δ_{t0+j} A)
        memory.copy(hs, ckpt + (<usize>((b * nChunks + c) * G + gi) * rowVec), rowVec);
        let row = ((<usize>(b * L + t0) * <usize>Dm) << 2) + dOff;
        let bc = (<usize>(b * L + t0) * Nu) << 2;
        for (let t = t0; t < t1; t++) {
          const j = <usize>(t - t0);
          let dt = f32x4.add(ldz(delta + row, nc), bv);
          if (sp) dt = vsoftplus(dt);
          const du = f32x4.mul(dt, ldz(u + row, nc));
          const hp = hs + j * rowVec;
          const ap = as + j * rowVec;
          const bp = B + bc;
          for (let n = 0; n < N; n++) {
            const o = <usize>n << 4;
            const e = vexp(f32x4.mul(dt, v128.load(ag + o)));
            v128.store(ap + o, e);
            v128.store(hp + rowVec + o, f32x4.add(f32x4.mul(e, v128.load(hp + o)), f32x4.mul(du, v128.load32_splat(bp + (<usize>n << 2)))));
          }
          row += rowStride;
          bc += bcStride;
        }
        // adjoint recurrence, backwards through the chunk
        for (let t = t1 - 1; t >= t0; t--) {
          const j = <usize>(t - t0);
          row = ((<usize>(b * L + t) * <usize>Dm) << 2) + dOff;
          bc = (<usize>(b * L + t) * Nu) << 2;
          const gv = ldz(g + row, nc);
          const uv = ldz(u + row, nc);
          let gy = gv;
          if (z) {
            const zv = ldz(z + row, nc);
            const s = vsigmoid(zv);
            gy = f32x4.mul(f32x4.mul(gv, zv), s);
            // gz = g · yPre · s · (1 + z (1 − s))
            const gzv = f32x4.mul(f32x4.mul(f32x4.mul(gv, ldz(yPre + row, nc)), s), f32x4.add(one, f32x4.mul(zv, f32x4.sub(one, s))));
            stc(gz + row, gzv, nc);
          }
          const x = f32x4.add(ldz(delta + row, nc), bv);
          const dt = sp ? vsoftplus(x) : x;
          const du = f32x4.mul(dt, uv);
          const hp = hs + j * rowVec; // h_{t−1}; h_t at hp + rowVec
          const ap = as + j * rowVec;
          const bp = B + bc;
          const cp = C + bc;
          const gbp = gBp + <usize>t * rowVec;
          const gcp = gCp + <usize>t * rowVec;
          let sB = zero;
          let sA = zero;
          for (let n = 0; n < N; n++) {
            const o = <usize>n << 4;
            const Bn = v128.load32_splat(bp + (<usize>n << 2));
            const Cn = v128.load32_splat(cp + (<usize>n << 2));
            const dhv = f32x4.add(v128.load(dh + o), f32x4.mul(gy, Cn));
            v128.store(gcp + o, f32x4.add(v128.load(gcp + o), f32x4.mul(gy, v128.load(hp + rowVec + o))));
            v128.store(gbp + o, f32x4.add(v128.load(gbp + o), f32x4.mul(dhv, du)));
            sB = f32x4.add(sB, f32x4.mul(dhv, Bn));
            const av = v128.load(ap + o);
            const tmp = f32x4.mul(f32x4.mul(dhv, av), v128.load(hp + o));
            v128.store(gag + o, f32x4.add(v128.load(gag + o), f32x4.mul(dt, tmp)));
            sA = f32x4.add(sA, f32x4.mul(v128.load(ag + o), tmp));
            v128.store(dh + o, f32x4.mul(av, dhv));
          }
          let guv = f32x4.mul(dt, sB);
          if (D) {
            guv = f32x4.add(guv, f32x4.mul(Dv, gy));
            gDacc = f32x4.add(gDacc, f32x4.mul(gy, uv));
          }
          stc(gu + row, guv, nc);
          let gdt = f32x4.add(sA, f32x4.mul(uv, sB));
          if (sp) gdt = f32x4.mul(gdt, vsigmoid(x));
          stc(gdelta + row, gdt, nc);
          gBacc = f32x4.add(gBacc, gdt);
        }
      }
      if (gD) stc(gD + dOff, f32x4.add(ldz(gD + dOff, nc), gDacc), nc);
      if (gBias) stc(gBias + dOff, f32x4.add(ldz(gBias + dOff, nc), gBacc), nc);
    }
    // gB, gC of this batch row: the 4 lanes of each (t, n) summed
    reduceLanes(gBp, gB + ((<usize>b * <usize>L * Nu) << 2), L * N);
    reduceLanes(gCp, gC + ((<usize>b * <usize>L * Nu) << 2), L * N);
  }
  // gA: AT layout back to [Dm, N]
  for (let gi = 0; gi < G; gi++) {
    const nc = min(4, Dm - 4 * gi);
    for (let n = 0; n < N; n++) {
      const v = v128.load(gAT + <usize>gi * rowVec + (<usize>n << 4));
      const p = gA + ((<usize>(4 * gi) * Nu + <usize>n) << 2);
      const s = Nu << 2;
      v128.store32_lane(p, v, 0);
      if (nc > 1) v128.store32_lane(p + s, v, 1);
      if (nc > 2) v128.store32_lane(p + 2 * s, v, 2);
      if (nc > 3) v128.store32_lane(p + 3 * s, v, 3);
    }
  }
}

// dst[i] = Σ of the 4 lanes of src vector i, i < n
function reduceLanes(src: usize, dst: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const p = src + (<usize>i << 4);
    const a0 = v128.load(p), a1 = v128.load(p + 16), a2 = v128.load(p + 32), a3 = v128.load(p + 48);
    const s01 = f32x4.add(v128.shuffle<f32>(a0, a1, 0, 4, 1, 5), v128.shuffle<f32>(a0, a1, 2, 6, 3, 7));
    const s23 = f32x4.add(v128.shuffle<f32>(a2, a3, 0, 4, 1, 5), v128.shuffle<f32>(a2, a3, 2, 6, 3, 7));
    v128.store(dst + (<usize>i << 2), f32x4.add(v128.shuffle<f32>(s01, s23, 0, 1, 4, 5), v128.shuffle<f32>(s01, s23, 2, 3, 6, 7)));
  }
  for (; i < n; i++) {
    const v = v128.load(src + (<usize>i << 4));
    store<f32>(dst + (<usize>i << 2), (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 2)) + (f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 3)));
  }
}
