/// <reference types="@webgpu/types" />
/**
 * Pipelines and bind groups of the WebGPU runtime, cached: a dispatch's roles are mapped onto the distinct
 * buffers they live in, the WGSL is generated for that mapping (`wgsl.ts`) and compiled once, and bind groups
 * are kept by buffer identity, so they repeat from one token to the next (creating one costs ~10 µs through
 * Dawn). Group 1 of every pipeline is the parameter slot (a uniform buffer bound with a dynamic offset).
 */
import type { BufRef, Store } from './memory.js';
import { PARAM_SLOT, generateWgsl, type KernelSpec } from './wgsl.js';

const STAGE_COMPUTE = 4;

export class PipelineCache {
  /** pipelines compiled so far */
  compiles = 0;
  /** the layout of the parameter bind group (group 1) */
  readonly paramLayout: GPUBindGroupLayout;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly layouts = new Map<string, { bgl: GPUBindGroupLayout; pl: GPUPipelineLayout }>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();

  constructor(private readonly device: GPUDevice) {
    this.paramLayout = device.createBindGroupLayout({
      entries: [{ binding: 0, visibility: STAGE_COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: PARAM_SLOT } }],
    });
  }

  /** the parameter bind group over one slot of `buf` (the dynamic offset picks the slot) */
  paramBindGroup(buf: BufRef): GPUBindGroup {
    const hit = this.paramGroups.get(buf);
    if (hit && hit.gpu === buf.gpu) return hit.bg; // (a graph's parameter buffer kept for reuse: GpuRuntime.leanHost)
    const bg = this.device.createBindGroup({ layout: this.paramLayout, entries: [{ binding: 0, resource: { buffer: buf.gpu, offset: 0, size: PARAM_SLOT } }] });
    this.paramGroups.set(buf, { gpu: buf.gpu, bg });
    return bg;
  }
  private readonly paramGroups = new WeakMap<BufRef, { gpu: GPUBuffer; bg: GPUBindGroup }>();

  private layoutFor(modes: string): { bgl: GPUBindGroupLayout; pl: GPUPipelineLayout } {
    let l = this.layouts.get(modes);
    if (!l) {
      const bgl = this.device.createBindGroupLayout({
        entries: [...modes].map((m, j) => ({ binding: j, visibility: STAGE_COMPUTE, buffer: { type: m === 'w' ? 'storage' : 'read-only-storage' } as GPUBufferBindingLayout })),
      });
      const pl = this.device.createPipelineLayout({ bindGroupLayouts: [bgl, this.paramLayout] });
      l = { bgl, pl };
      this.layouts.set(modes, l);
    }
    return l;
  }

  private pipeline(spec: KernelSpec, variant: string, map: number[], modes: string): GPUComputePipeline {
    const key = `${spec.name}|${variant}|${map.join(',')}|${modes}`;
    let p = this.pipelines.get(key);
    if (!p) {
      const code = generateWgsl(spec, variant, map, modes);
      this.compiles++;
      const module = this.device.createShaderModule({ code, label: `${spec.name}(${variant})` });
      p = this.device.createComputePipeline({ layout: this.layoutFor(modes).pl, compute: { module, entryPoint: 'main' }, label: `${spec.name}(${variant})` });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /**
   * the pipeline and bind group of a dispatch: its roles mapped onto the distinct buffers they live in, a buffer
   * bound once per element type of its roles (`KernelSpec.types`: e.g. the blocked GEMM's x as f32 and as
   * vec4<f32>) — which WebGPU allows only for buffers that no role of the dispatch writes
   */
  encodeInfo(spec: KernelSpec, variant: string, roles: readonly Store[]): { pipe: GPUComputePipeline; bg: GPUBindGroup } {
    const types = spec.types?.(variant) ?? {};
    const bufs: BufRef[] = [];
    const keys: string[] = [];
    const map = roles.map((s, i) => {
      const key = `${s.ref.id}|${types[spec.roles[i]] ?? 'f32'}`;
      let j = keys.indexOf(key);
      if (j < 0) {
        j = keys.push(key) - 1;
        bufs.push(s.ref);
      }
      return j;
    });
    const modes = bufs.map((_, j) => (roles.some((_s, i) => map[i] === j && spec.writes.includes(spec.roles[i])) ? 'w' : 'r')).join('');
    bufs.forEach((b, j) => {
      if (modes[j] === 'w' && bufs.indexOf(b) !== bufs.lastIndexOf(b)) {
        const typed = spec.roles.filter((_r, i) => roles[i].ref === b && types[spec.roles[i]]);
        throw new Error(`webgpu kernel ${spec.name}(${variant}): role ${typed[0]} (${types[typed[0]]}) shares its buffer with a role written by the dispatch; typed roles need a buffer of their own or of roles of their type`);
      }
    });
    return { pipe: this.pipeline(spec, variant, map, modes), bg: this.bindGroup(modes, bufs) };
  }

  private bindGroup(modes: string, bufs: BufRef[]): GPUBindGroup {
    const key = `${modes}|${bufs.map((b) => b.id).join(',')}`;
    let g = this.bindGroups.get(key);
    if (!g) {
      g = this.device.createBindGroup({ layout: this.layoutFor(modes).bgl, entries: bufs.map((b, j) => ({ binding: j, resource: { buffer: b.gpu } })) });
      this.bindGroups.set(key, g);
    }
    return g;
  }

}
