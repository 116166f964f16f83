/**
 * WGSL of the WebGPU runtime: what a kernel is (`KernelSpec`), the code generated around it for one binding of
 * its roles to buffers (`generateWgsl`), parameter words, and the copy kernel the runtime itself uses.
 *
 * WebGPU forbids binding one buffer twice when either binding is writable, so a kernel's tensor roles (x, w,
 * y, …) are mapped onto the distinct buffers they live in; the WGSL is generated per mapping (`$x[o_x + i]`
 * becomes `b0[o_x + i]`) and cached by the runtime. Per-dispatch parameters (role offsets, sizes, flags) go to
 * 256-byte slots of one uniform buffer bound with a dynamic offset.
 */
import { f32ToBf16 } from '../../tensor/dtype.js';

/** bytes of parameters per dispatch (one uniform slot) */
export const PARAM_SLOT = 256;
export const PARAM_WORDS = PARAM_SLOT / 4;

/** A kernel: its WGSL (a function of a variant key) and its tensor roles, in the order dispatches pass them. */
export interface KernelSpec {
  name: string;
  roles: readonly string[];
  /** roles the kernel writes */
  writes: readonly string[];
  /**
   * WGSL after the generated prelude: uses `$role[...]` for the role's array, `o_role` for its element
   * offset (set by `init_offsets()`, to be called first), `pu(PK + i)` / `pf(PK + i)` for its i-th
   * parameter, and `lin(wg, nw)` for a linear workgroup index over a 2-D grid.
   * Two traps met while writing the training kernels: a local named like a generated buffer (`b0`, `b1`, …)
   * silently shadows it; and SwiftShader does not zero a `var` array declared without an initializer inside a
   * loop on each pass (the spec says it must) — zero accumulators explicitly.
   */
  wgsl: (variant: string) => string;
  /**
   * WGSL element types of roles that are not `f32` (e.g. `vec4<f32>` for vectorized weight loads, `vec4<u32>`
   * for packed bf16 weights), by variant. A typed role must be the only role bound to its buffer (weight
   * matrices live in the matrix pool for that reason), or share it with roles of the same type only (read-only); its
   * offset is still in 4-byte words.
   */
  types?: (variant: string) => Readonly<Record<string, string>>;
}

const f32scratch = new Float32Array(1);
const u32scratch = new Uint32Array(f32scratch.buffer);
/** the bits of a float32, as a u32 parameter word */
export function f2u(x: number): number {
  f32scratch[0] = x;
  return u32scratch[0];
}

/** float32 → bf16 (dtype.ts's rounding), two to a u32: weight 2i in the low half (little-endian u16 pairs) */
export function packBf16(data: Float32Array): Uint32Array {
  const u16 = new Uint16Array(data.length + (data.length & 1));
  for (let i = 0; i < data.length; i++) u16[i] = f32ToBf16(data[i]);
  return new Uint32Array(u16.buffer);
}

/** the prelude + bindings + role substitution for one binding map */
export function generateWgsl(spec: KernelSpec, variant: string, map: number[], modes: string): string {
  const lines: string[] = [];
  const body = spec.wgsl(variant);
  const types = spec.types?.(variant) ?? {};
  if (/subgroup/.test(body)) lines.push('enable subgroups;');
  if (/subgroup_matrix/.test(body)) lines.push('enable chromium_experimental_subgroup_matrix;');
  for (let j = 0; j < modes.length; j++) {
    const roles = spec.roles.filter((_r, i) => map[i] === j);
    const typed = roles.filter((r) => types[r]);
    // roles of one type may share a read-only buffer (a matrix chunk holding two weights a kernel reads as vectors)
    if (typed.length > 0 && (typed.length < roles.length || typed.some((r) => types[r] !== types[typed[0]]) || modes[j] === 'w')) {
      throw new Error(`webgpu kernel ${spec.name}(${variant}): role ${typed[0]} (${types[typed[0]]}) shares its buffer with ${roles.filter((r) => r !== typed[0]).join(', ') || 'a write'}; typed roles need a buffer of their own`);
    }
    const elem = typed.length > 0 ? types[typed[0]] : 'f32';
    lines.push(`@group(0) @binding(${j}) var<storage, ${modes[j] === 'w' ? 'read_write' : 'read'}> b${j}: array<${elem}>;`);
  }
  lines.push(PRELUDE);
  lines.push(`const PK: u32 = ${spec.roles.length}u;`);
  for (const r of spec.roles) lines.push(`var<private> o_${r}: u32;`);
  lines.push(`fn init_offsets() {`);
  spec.roles.forEach((r, i) => lines.push(`  o_${r} = pu(${i}u);`));
  lines.push(`}`);
  const code = body.replace(/\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, name: string) => {
    const i = spec.roles.indexOf(name);
    if (i < 0) throw new Error(`webgpu kernel ${spec.name}: unknown role ${m}`);
    return `b${map[i]}`;
  });
  lines.push(code);
  return lines.join('\n');
}

const PRELUDE = /* wgsl */ `
struct Params { v: array<vec4<u32>, ${PARAM_WORDS / 4}> }
@group(1) @binding(0) var<uniform> P: Params;
fn pu(i: u32) -> u32 { return P.v[i / 4u][i % 4u]; }
fn pf(i: u32) -> f32 { return bitcast<f32>(pu(i)); }
fn lin(wg: vec3<u32>, nw: vec3<u32>) -> u32 { return wg.x + wg.y * nw.x; }
fn silu(x: f32) -> f32 { return x / (1.0 + exp(-x)); }
fn softplus(x: f32) -> f32 {
  if (x > 20.0) { return x; }
  if (x < -15.0) { return exp(x); }
  return log(1.0 + exp(x));
}
`;

/** dst[i] = src[i], i < n (also used to gather inputs when a dispatch needs too many buffers) */
export const COPY_SPEC: KernelSpec = {
  name: 'copy',
  roles: ['x', 'y'],
  writes: ['y'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  init_offsets();
  let i = lin(wg, nw) * 256u + li;
  if (i < pu(PK)) { $y[o_y + i] = $x[o_x + i]; }
}`,
};
