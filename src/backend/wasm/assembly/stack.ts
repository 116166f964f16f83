// The whole decode step of a stack of Mamba layers as one team call (WasmBackendOptions.decodeStack): for each layer
// the pre-norm (every thread the whole RMSNorm of the residual x into a buffer of its own: a few µs, no barrier), the
// layer's one-call kernel (mamba1_layer or mamba2_layer_2b, step_out.ts) on it, the residual add (each thread adds the
// rows of out_proj it computed itself: no barrier), then one barrier so that x is whole before the next layer's norm;
// after the last layer the final norm, and either the normed rows for the caller (thread 0) or the LM head (rows
// split as `linear` splits them) and the argmax of each row (each thread over its rows, thread 0 the best of them
// after a barrier). One hand-off per token
// instead of one per layer plus the LM head's, and no JavaScript between the layers (the norm and add ops, the op
// scratch, the copies in and out of each layer call).
//
// Every value comes from the kernels the op sequence runs, with the same inputs: rms_norm is the `rmsNorm` op's
// kernel, the layer kernels are the same calls `mamba1Layer` / `mamba2Layer` make, the add is one f32 addition (the
// `add` op's: f32 + f32 rounded once), the LM head is teamProduct (the same bits as `linear` for any split) and
// argmax_rows the `linearArgmax` op's. So the logits, the tokens and the states are the same bits.
//
// Llama's and the hybrids' sublayers too (an attention half: attn_layer.ts attn_decode_layer; a gated MLP: step_out.ts
// gated_mlp; Nemotron-H's relu² MLP: step_out.ts plain_mlp), each called here with the arguments `attentionDecode` / `gatedMlp` build: a llama block is two entries
// (attention, MLP), each with its pre-norm, residual add and barrier. The residual add is norm.ts residual_add (the
// decoder's `add(x, scale(y, s))`: s is Granite's residual multiplier, else 1), each thread over the rows of the
// sublayer's last product it computed itself (teamProduct's split of its N = H rows).
//
// The sublayers: `tab`, nLayers entries of STACK_STRIDE f64 each (the JS side writes them; see WasmBackend.decodeStack):
//   [kind (1: mamba1_layer, 2: mamba2_layer_2b, 3: attn_decode_layer, 4: gated_mlp, 5: plain_mlp), the pre-norm's weight (0: none),
//    the last product's y [batch, H], then the kernel's arguments after its input, without t and T, in its order;
//    the last slot (STACK_STRIDE − 1): the residual scale]
// x [batch, H]: the residual stream, updated in place. hbuf: per thread hStride bytes (≥ 4·batch·H) for the normed x.
// counter: an i32, zero. head: 0 (then thread 0 writes the final-normed rows to `last`) or the LM head's product
// descriptor (step_out.ts's, y = the logits [batch, V]); then `ids` receives each row's argmax (i32). parts: 0, or
// 1 for benchmarks (productsOnly, below).

import { gated_mlp, mamba1_layer, mamba2_layer_2b, plain_mlp, teamProduct } from './step_out';
import { attn_decode_layer } from './attn_layer';
import { residual_add, rms_norm } from './norm';
import { argmax_rows } from './argmax';
import { sliceHi, sliceLo, teamBarrier } from './team';

/** f64 per layer entry of the table */
const STACK_STRIDE: i32 = 32;

/** STACK_STRIDE, for the JS side */
export function decode_stack_stride(): i32 {
  return STACK_STRIDE;
}

// @ts-ignore: decorator
@inline function f(e: usize, i: i32): f64 {
  return load<f64>(e + (<usize>i << 3));
}
// @ts-ignore: decorator
@inline function u(e: usize, i: i32): usize {
  return <usize><u32>f(e, i);
}
// @ts-ignore: decorator
@inline function n(e: usize, i: i32): i32 {
  return <i32>f(e, i);
}

/** the kernel of entry `e` on the normed input h (arguments from index 3: see above) */
function stackLayer(e: usize, h: usize, t: i32, T: i32): void {
  const kind = n(e, 0);
  if (kind == 1) {
    mamba1_layer(h, u(e, 3), n(e, 4),
      u(e, 5), u(e, 6), u(e, 7), u(e, 8), u(e, 9), u(e, 10), u(e, 11), u(e, 12), u(e, 13), u(e, 14), u(e, 15), u(e, 16),
      u(e, 17), u(e, 18), n(e, 19), u(e, 20), u(e, 21), u(e, 22), <f32>f(e, 23),
      n(e, 24), n(e, 25), n(e, 26), n(e, 27), n(e, 28), u(e, 29), t, T);
  } else if (kind == 3) {
    attn_decode_layer(h, n(e, 3), n(e, 4), u(e, 5), u(e, 6), u(e, 7), u(e, 8), u(e, 9), n(e, 10),
      n(e, 11), n(e, 12), n(e, 13), u(e, 14), u(e, 15), n(e, 16), n(e, 17), u(e, 18),
      <f32>f(e, 19), n(e, 20), u(e, 21), n(e, 22), n(e, 23), n(e, 24), u(e, 25), u(e, 26), t, T);
  } else if (kind == 4) {
    gated_mlp(h, n(e, 3), n(e, 4), n(e, 5), u(e, 6), u(e, 7), u(e, 8), u(e, 9), t, T);
  } else if (kind == 5) {
    plain_mlp(h, n(e, 3), n(e, 4), n(e, 5), u(e, 6), u(e, 7), n(e, 8), u(e, 9), t, T);
  } else {
    mamba2_layer_2b(h, u(e, 3), n(e, 4), u(e, 5), f(e, 6), f(e, 7),
      u(e, 8), u(e, 9), u(e, 10), u(e, 11), u(e, 12), u(e, 13), u(e, 14), u(e, 15),
      u(e, 16), <f32>f(e, 17), n(e, 18), u(e, 19), u(e, 20), u(e, 21), u(e, 22),
      n(e, 23), n(e, 24), n(e, 25), n(e, 26), n(e, 27), n(e, 28), u(e, 29), n(e, 30), t, T);
  }
}

/**
 * `parts` 1 (benchmarks only: the numbers are not the model's): a Mamba layer's in_proj, a barrier, its out_proj (of in_proj's
 * first columns), no step — the weight streaming and the barriers of a layer without its scan/SSD step (attention and
 * MLP sublayers run whole)
 */
function productsOnly(e: usize, h: usize, batch: i32, H: i32, t: i32, T: i32): void {
  const kind = n(e, 0);
  const descIn = u(e, 3), desc = u(e, 29);
  teamProduct(descIn, h, batch, H, t, T);
  teamBarrier(kind == 1 ? u(e, 17) : u(e, 22), 1, T);
  const K = kind == 1 ? n(e, 25) : n(e, 24) * n(e, 25); // (out_proj's columns: Dm, or nh · hd)
  teamProduct(desc, <usize>load<u32>(descIn, 16), batch, K, t, T);
}

/**
 * `parts` 2 (benchmarks only: the numbers are not the model's): an attention sublayer's q/k/v products, a barrier, its
 * o_proj (of the last call's attention output), no RoPE, cache append or attention — what the attention half costs
 * beside its weight streaming and barriers (issue 18, session 34: llama on 2 threads); other sublayers run whole
 */
function attnProductsOnly(e: usize, h: usize, batch: i32, H: i32, t: i32, T: i32): void {
  teamProduct(u(e, 5), h, batch, H, t, T);
  teamProduct(u(e, 6), h, batch, H, t, T);
  teamProduct(u(e, 7), h, batch, H, t, T);
  teamBarrier(u(e, 26), 1, T);
  teamProduct(u(e, 8), u(e, 25), batch, n(e, 11) * n(e, 13), t, T);
}

export function decode_stack(
  tab: usize, nLayers: i32, x: usize, batch: i32, H: i32, eps: f32, hbuf: usize, hStride: usize,
  finalNorm: usize, last: usize, head: usize, ids: usize, counter: usize, parts: i32, t: i32, T: i32,
): void {
  const h = hbuf + <usize>t * hStride;
  // this thread's rows of out_proj (teamProduct's split of its N = H rows)
  const r0 = sliceLo(t, T, H, 4), r1 = sliceHi(t, T, H, 4);
  for (let l = 0; l < nLayers; l++) {
    const e = tab + ((<usize>l * <usize>STACK_STRIDE) << 3);
    rms_norm(x, u(e, 1), h, H, eps, 0, batch);
    if (parts == 1 && n(e, 0) <= 2) productsOnly(e, h, batch, H, t, T);
    else if (parts == 2 && n(e, 0) == 3) attnProductsOnly(e, h, batch, H, t, T);
    else stackLayer(e, h, t, T);
    const y = u(e, 2), s = f(e, STACK_STRIDE - 1);
    for (let b = 0; b < batch; b++) {
      const xr = x + ((<usize>b * H) << 2);
      residual_add(xr, y + ((<usize>b * H) << 2), s, xr, r0, r1);
    }
    teamBarrier(counter, l + 1, T);
  }
  if (!head) {
    if (t == 0) rms_norm(x, finalNorm, last, H, eps, 0, batch);
    return;
  }
  rms_norm(x, finalNorm, h, H, eps, 0, batch);
  teamProduct(head, h, batch, H, t, T);
  // each thread the argmax of the logits it computed (its rows of the head: teamProduct's split), then thread 0 the
  // best of the threads' after a barrier: the largest value, the first thread's on ties (its rows come first), none
  // where no thread has one — the first index of the row's largest value, as argmax_rows over the whole row gives
  const logits = <usize>load<u32>(head, 16), V = load<i32>(head, 20);
  const v0 = sliceLo(t, T, V, 4), v1 = sliceHi(t, T, V, 4);
  const mine = hbuf + <usize>t * hStride; // (h is not read again: the thread's (index, value) per row there)
  for (let b = 0; b < batch; b++) {
    const slot = mine + (<usize>b << 3);
    if (v0 < v1) argmax_rows(logits + ((<usize>b * V + v0) << 2), v1 - v0, slot, 0, 1);
    else store<i32>(slot, -1);
    const i = load<i32>(slot);
    store<f32>(slot, i >= 0 ? load<f32>(logits + ((<usize>b * V + v0 + i) << 2)) : <f32>0, 4);
    if (i >= 0) store<i32>(slot, v0 + i);
  }
  teamBarrier(counter, nLayers + 1, T);
  if (t != 0) return;
  for (let b = 0; b < batch; b++) {
    let best = -1, bestV: f32 = 0;
    for (let s = 0; s < T; s++) {
      const slot = hbuf + <usize>s * hStride + (<usize>b << 3);
      const i = load<i32>(slot), v = load<f32>(slot, 4);
      if (i >= 0 && (best < 0 || v > bestV)) {
        best = i;
        bestV = v;
      }
    }
    store<i32>(ids + (<usize>b << 2), best);
  }
}
