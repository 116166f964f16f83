/**
 * The WGSL pieces the Mamba-2 SSD kernels share — the forward of before (ssd.ts), the fused forward (ssd_chunk.ts)
 * and the backward (grad_ssd.ts): one chunk of Q steps per workgroup, 256 invocations, 16×16 thread grid
 * (tx = li % 16, ty = li / 16). Names in scope that the snippets assume are listed with each.
 *
 * - the chunk's Δ and its running sums a_t = Σ_{s≤t} Δ_s A (the log-decay) in workgroup arrays `dS`, `cA`: loaded
 *   from the Δ pass's outputs (`chunkSums('load')`) or computed in place from the raw dt (`chunkSums('compute')`);
 * - the masked, decayed C·Bᵀ entry (C_l·B_s) exp(a_l − a_s) [Δ_s], s ≤ l < q (`causal`, `decayed`);
 * - the multiply-accumulate over a 16-deep workgroup tile that every product here is made of (`tileFma` for
 *   array accumulators, `splatFma` for vector ones);
 * - the state accumulation of one chunk, S[p, n] = Σ_s w_s u_s[p] v_s[n] over 64×64 tiles (`chunkOuterKernel`),
 *   which is both the forward's chunk states and the backward's state gradients;
 * - the per-chunk state passing H_c = exp(a_end,c) H_{c−1} + S_c, one chunk at a time (`serialPass`).
 */

/** QQ (chunk length Q), TT (Q/16: rows per thread), QP (Q + 1: a padded row of a workgroup tile) */
export function chunkConsts(q: number): string {
  return `const QQ: u32 = ${q}u; const TT: u32 = ${q / 16}u; const QP: u32 = ${q + 1}u;`;
}

/** the workgroup arrays of `chunkSums`: a_t (cA) and Δ_t (dS) of the chunk */
export function chunkSumArrays(q: number): string {
  return `var<workgroup> cA: array<f32, ${q}>;
var<workgroup> dS: array<f32, ${q}>;`;
}

/**
 * WGSL statements filling cA[t] = a_t, dS[t] = Δ_t for t < QQ of chunk (b, c) of head h (zero past the chunk's q
 * steps). 'load': from the Δ pass's outputs `$cum`, `$dtp` ([b, L, nh]); needs b, L, t0, q, nh, h, li; no barrier
 * (the caller's comes before the arrays are read). 'compute': Δ = clamp(softplus(dt + bias), lo, hi) from `$dt`
 * (row stride sdt), `$dtb` (flags 2), `$A`, then an inclusive log₂Q-step scan of Δ·A (zero Δ past q, so the sums
 * stay flat there); needs also flags, lo, hi, sdt; all 256 invocations must reach it (barriers, one at the end).
 */
export function chunkSums(from: 'load' | 'compute'): string {
  if (from === 'load') {
    return /* wgsl */ `
  if (li < QQ) {
    var a = 0.0; var d = 0.0;
    if (li < q) {
      let k = (b * L + t0 + li) * nh + h;
      a = $cum[o_cum + k]; d = $dtp[o_dtp + k];
    }
    cA[li] = a; dS[li] = d;
  }`;
  }
  return /* wgsl */ `
  {
    var dv = 0.0;
    if (li < q) {
      var bias = 0.0;
      if ((flags & 2u) != 0u) { bias = $dtb[o_dtb + h]; }
      dv = clamp(softplus($dt[o_dt + (b * L + t0 + li) * sdt + h] + bias), lo, hi);
    }
    if (li < QQ) { dS[li] = dv; cA[li] = dv * $A[o_A + h]; }
    workgroupBarrier();
    for (var off = 1u; off < QQ; off <<= 1u) {
      var prev = 0.0;
      if (li < QQ && li >= off) { prev = cA[li - off]; }
      workgroupBarrier();
      if (li < QQ) { cA[li] += prev; }
      workgroupBarrier();
    }
  }`;
}

/** the causal mask of a chunk's quadratic block: step s feeds output l (s ≤ l < q) */
export function causal(l: string, s: string): string {
  return `${s} <= ${l} && ${l} < q`;
}

/** v · exp(a_l − a_s) [· Δ_s]: a C·Bᵀ entry (or its gradient) decayed from step s to step l (cA, dS of `chunkSums`) */
export function decayed(v: string, l: string, s: string, delta: boolean): string {
  return `${v} * exp(cA[${l}] - cA[${s}])${delta ? ` * dS[${s}]` : ''}`;
}

/**
 * acc[i][j] += a(i) · b(j) over the 16 steps k of a workgroup tile (i < I, j < J; the fma order of every product
 * here). `a`, `b` give the WGSL of the row / column operand at step k.
 */
export function tileFma(o: { k: string; I: string; J: string; a: (i: string) => string; b: (j: string) => string; acc?: string }): string {
  const acc = o.acc ?? 'acc';
  return /* wgsl */ `
    for (var ${o.k} = 0u; ${o.k} < 16u; ${o.k}++) {
      var br: array<f32, ${o.J}>;
      for (var j = 0u; j < ${o.J}; j++) { br[j] = ${o.b('j')}; }
      for (var i = 0u; i < ${o.I}; i++) {
        let av = ${o.a('i')};
        for (var j = 0u; j < ${o.J}; j++) { ${acc}[i][j] = fma(av, br[j], ${acc}[i][j]); }
      }
    }`;
}

/**
 * The vector form: acc[c] += splat(a.c) · b (splat 'a') or a · splat(b.c) (splat 'b') for the 4 components c of a
 * vec4 operand, over the 16 steps k of a tile; `T` is the vector type of the splat.
 */
export function splatFma(o: { k: string; a: string; b: string; splat: 'a' | 'b'; T: string; acc?: string }): string {
  const acc = o.acc ?? 'acc';
  const term = (c: string) => (o.splat === 'a' ? `${o.T}(av.${c}), bv` : `av, ${o.T}(bv.${c})`);
  return /* wgsl */ `
    for (var ${o.k} = 0u; ${o.k} < 16u; ${o.k}++) {
      let av = ${o.a}; let bv = ${o.b};
${['x', 'y', 'z', 'w'].map((c, i) => `      ${acc}[${i}] = fma(${term(c)}, ${acc}[${i}]);`).join('\n')}
    }`;
}

/**
 * WGSL statements: the workgroup's item of a chunk-state kernel, one per (b, c, h, 64 rows p, 64 columns n) — b, c, h,
 * its group g, p0, n0, the chunk's first step t0 and length q (QQ its most); returns past the last. Needs Bn, L, nh,
 * hd, G, N, nC.
 */
export const STATE_TILE = /* wgsl */ `
  let nNT = (N + 63u) / 64u; let nPT = (hd + 63u) / 64u;
  let item = lin(wg, nw);
  if (item >= Bn * nC * nh * nPT * nNT) { return; }
  let nt = item % nNT; let pt = (item / nNT) % nPT; let bch = item / (nNT * nPT);
  let h = bch % nh; let bc = bch / nh; let c = bc % nC; let b = bc / nC;
  let g = h / (nh / G);
  let p0 = pt * 64u; let n0 = nt * 64u;
  let t0 = c * QQ; let q = min(QQ, L - t0);`;

/**
 * A kernel body for S[p, n] = Σ_{s<q} w_s u_s[p] v_s[n] over one chunk: one workgroup per (b, c, h, 64 rows p,
 * 64 columns n), 16 steps a tile, u [b, L, nh, hd], v [b, L, G, N] packed, out [b, nC, nh, hd, N].
 * `weight(k)` is the WGSL of w_s for the step at row k of the [b, L, nh] arrays; `pre` runs before the tiles (after
 * b, c, h, t0, q are known). params: Bn, L, nh, hd, G, N, nC (Q is the variant).
 */
export function chunkOuterKernel(q: string, o: { u: string; v: string; out: string; weight: (k: string) => string; pre?: string }): string {
  return /* wgsl */ `
${chunkConsts(Number(q))}
var<workgroup> Us: array<f32, 1040>;
var<workgroup> Vs: array<f32, 1040>;
var<workgroup> ws: array<f32, 16>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let Bn = pu(PK); let L = pu(PK + 1u); let nh = pu(PK + 2u); let hd = pu(PK + 3u); let G = pu(PK + 4u); let N = pu(PK + 5u); let nC = pu(PK + 6u);
  ${STATE_TILE}${o.pre ?? ''}
  let tx = li % 16u; let ty = li / 16u;
  var acc: array<array<f32, 4>, 4>;
  for (var s0 = 0u; s0 < q; s0 += 16u) {
    if (li < 16u) {
      var w = 0.0;
      if (s0 + li < q) {
        let k = (b * L + t0 + s0 + li) * nh + h;
        w = ${o.weight('k')};
      }
      ws[li] = w;
    }
    workgroupBarrier();
    for (var k = 0u; k < 4u; k++) {
      let e = li + 256u * k;
      let ss = e / 64u; let pp = e % 64u;
      let s = s0 + ss;
      var uv = 0.0; var vv = 0.0;
      if (s < q) {
        let row = b * L + t0 + s;
        if (p0 + pp < hd) { uv = ws[ss] * $${o.u}[o_${o.u} + (row * nh + h) * hd + p0 + pp]; }
        if (n0 + pp < N) { vv = $${o.v}[o_${o.v} + (row * G + g) * N + n0 + pp]; }
      }
      Us[ss * 65u + pp] = uv; Vs[ss * 65u + pp] = vv;
    }
    workgroupBarrier();
    ${tileFma({ k: 'ss', I: '4u', J: '4u', a: (i) => `Us[ss * 65u + ty + 16u * ${i}]`, b: (j) => `Vs[ss * 65u + tx + 16u * ${j}]` })}
    workgroupBarrier();
  }
  let base = o_${o.out} + bch * hd * N;
  for (var i = 0u; i < 4u; i++) {
    let p = p0 + ty + 16u * i;
    if (p >= hd) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + tx + 16u * j;
      if (n < N) { $${o.out}[base + p * N + n] = acc[i][j]; }
    }
  }
}`;
}

/**
 * WGSL statements: the state passing of one thread's state element e of (b, h), chunk after chunk, in place in `$S`
 * ([b, nC, nh, HN]: S_c becomes the state entering chunk c), from `carry` (declared by the caller, holding the
 * state entering the first chunk). `decay(k)` is the WGSL of a_end of chunk c, k = (b·nC + c)·nh + h.
 */
export function serialPass(decay: (k: string) => string): string {
  return /* wgsl */ `
  for (var c = 0u; c < nC; c++) {
    let k = (b * nC + c) * nh + h;
    let idx = o_S + k * HN + e;
    let s = $S[idx];
    $S[idx] = carry;
    carry = exp(${decay('k')}) * carry + s;
  }`;
}
