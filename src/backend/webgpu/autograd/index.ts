/**
 * The WebGPU backend's differentiable ops (`Backend.differentiable`): one table merged from the op families
 * beside this file (see context.ts for the conventions). An op not in the table is refused with a typed error
 * naming it and the backend — never run on the host behind the caller's back.
 */
import type { DiffAttrs, DiffOp, Differentiated } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { OpError } from '../../../errors.js';
import { needsGrad } from '../../../autograd/tape.js';
import { Scope } from '../../../tensor/scope.js';
import type { GpuCtx, GpuImpl } from './context.js';
import { BASIC } from './basic.js';
import { LINEAR } from './linear.js';
import { ATTENTION } from './attention.js';
import { LOSS } from './loss.js';
import { MOE } from './moe.js';
import { NORM } from './norm.js';
import { S4D } from './s4d.js';
import { SCAN } from './scan.js';
import { SSD } from './ssd.js';

export type { GpuCtx, GpuImpl } from './context.js';

const TABLE: Partial<Record<DiffOp, GpuImpl>> = { ...BASIC, ...LINEAR, ...NORM, ...SCAN, ...SSD, ...ATTENTION, ...LOSS, ...MOE, ...S4D };

/** the ops WebGPU can record for training */
export const GPU_DIFF_OPS: ReadonlySet<DiffOp> = new Set(Object.keys(TABLE) as DiffOp[]);

export function gpuDifferentiable(c: GpuCtx, op: DiffOp, inputs: readonly (Tensor | null)[], attrs: DiffAttrs): Differentiated {
  const impl = TABLE[op];
  if (!impl) throw new OpError(`${op}: the ${c.be.name} backend has no differentiable ${op} yet (it trains ${[...GPU_DIFF_OPS].join(', ')}; every op trains on cpu and wasm)`);
  for (const t of inputs) {
    if (t && t.requiresGrad && (t.storage as { blocks?: unknown }).blocks) {
      throw new OpError(`${op}: a trainable tensor [${t.shape.join(', ')}] on ${c.be.name} is split into row blocks (larger than the adapter's largest binding); training needs it in one buffer`);
    }
    const fmt = t ? (t.storage as { fmt?: string }).fmt : undefined;
    if (t && t.requiresGrad && fmt !== undefined && fmt !== 'f32') {
      throw new OpError(`${op}: a trainable tensor [${t.shape.join(', ')}] on ${c.be.name} is stored as ${fmt}; load the model with weights: 'f32' to train it`);
    }
  }
  // What the forward creates besides its outputs (saved activations, chunk checkpoints) belongs to the op, not to
  // the model code's scope, which would dispose it at the end of the layer — before the backward reads it. The
  // tape's `backward(…, { free: true })` frees it (`release`) once the op's backward has run; without `free` the
  // graph stays back-propagatable (several backwards, one per output, as on the cpu) until the collector takes it.
  // What a backward creates besides the input gradients is disposed when it returns.
  const saved = new Scope();
  const r = saved.run(() => impl(c, inputs, attrs));
  if (!needsGrad(...inputs)) {
    saved.end(r.outputs); // not recorded: a plain forward, the outputs go to the caller's scope
    return r;
  }
  for (const t of r.outputs) saved.parent?.adopt(t); // the caller's scope owns the outputs meanwhile
  return {
    ...r,
    backward(grads) {
      if (!saved.isOpen) throw new OpError(`${op}: what it saved on ${c.be.name} was freed after an earlier backward({ free: true }); record the forward again`);
      const work = new Scope(null);
      const gin = work.run(() => r.backward(grads));
      work.end(gin.filter((g): g is Tensor => g !== null));
      return gin;
    },
    release() {
      r.release?.();
      saved.end(null, r.outputs);
    },
  };
}
