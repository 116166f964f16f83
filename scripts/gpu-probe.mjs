#!/usr/bin/env node
// What a WebGPU adapter offers and what its round trips cost, measured (issue 11). Plain JS, no build needed:
//   node scripts/gpu-probe.mjs            (on a lent machine: bash scripts/gpu-machine.sh node scripts/gpu-probe.mjs)
// Prints one JSON object: adapter info, features, subgroup-matrix configs, whether a subgroup-matrix shader compiles,
// the latency of an empty submit + onSubmittedWorkDone, of mapAsync after GPU work of known length (timestamps),
// and the cost of a dispatch inside one compute pass / one pass per dispatch.
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);

const out = {};
const gpu = create(['enable-dawn-features=allow_unsafe_apis']);
globalThis.__dawnInstance = gpu; // the Dawn instance must outlive the device (see matvec-probe.mjs)
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
if (!adapter) { console.log(JSON.stringify({ error: 'no adapter' })); process.exit(1); }
const info = adapter.info;
out.adapter = { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description,
  subgroupMinSize: info.subgroupMinSize, subgroupMaxSize: info.subgroupMaxSize, isFallbackAdapter: info.isFallbackAdapter };
out.features = [...adapter.features].sort();
out.subgroupMatrixConfigs = info.subgroupMatrixConfigs ? [...info.subgroupMatrixConfigs].map((c) => ({ ...c, componentType: c.componentType, resultComponentType: c.resultComponentType, M: c.M, N: c.N, K: c.K })) : null;
const want = ['timestamp-query', 'subgroups', 'chromium-experimental-subgroup-matrix', 'shader-f16'].filter((f) => adapter.features.has(f));
const requiredLimits = {};
for (const k of ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup']) requiredLimits[k] = adapter.limits[k];
const device = await adapter.requestDevice({ requiredFeatures: want, requiredLimits });
out.deviceFeatures = [...device.features].sort();
let errs = [];
device.addEventListener?.('uncapturederror', (e) => errs.push(String(e.error?.message ?? e)));

async function compiles(code) {
  device.pushErrorScope('validation');
  const m = device.createShaderModule({ code });
  const ci = await m.getCompilationInfo();
  let p = null;
  try { p = device.createComputePipeline({ layout: 'auto', compute: { module: m, entryPoint: 'main' } }); } catch (e) { /* below */ }
  const err = await device.popErrorScope();
  return { ok: !err && !!p, messages: ci.messages.map((x) => x.message).slice(0, 3), error: err ? err.message.slice(0, 400) : null };
}
if (device.features.has('chromium-experimental-subgroup-matrix')) {
  for (const [ty, m, n, k] of [['f32', 8, 8, 8], ['f16', 8, 8, 8], ['i8', 8, 8, 32], ['u8', 8, 8, 32]]) {
    const rt = ty === 'i8' ? 'i32' : ty === 'u8' ? 'u32' : ty;
    const st = ty === 'i8' ? 'i32' : ty === 'u8' ? 'u32' : ty;
    const code = `${ty === 'f16' ? 'enable f16;\n' : ''}enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read> a: array<${st}>;
@group(0) @binding(1) var<storage, read_write> c: array<${rt}>;
@compute @workgroup_size(32) fn main() {
  let l = subgroupMatrixLoad<subgroup_matrix_left<${ty}, ${k}, ${m}>>(&a, 0u, false, ${k}u);
  let r = subgroupMatrixLoad<subgroup_matrix_right<${ty}, ${n}, ${k}>>(&a, 0u, false, ${n}u);
  var acc = subgroup_matrix_result<${rt}, ${n}, ${m}>();
  acc = subgroupMatrixMultiplyAccumulate(l, r, acc);
  subgroupMatrixStore(&c, 0u, acc, false, ${n}u);
}`;
    out[`smatrix_${ty}_${m}x${n}x${k}`] = await compiles(code);
  }
}

const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
const now = () => performance.now();

// empty submit + onSubmittedWorkDone
{
  const t = [];
  for (let i = 0; i < 200; i++) { const t0 = now(); device.queue.submit([]); await device.queue.onSubmittedWorkDone(); t.push(now() - t0); }
  out.emptySubmitDone_ms = { median: median(t.slice(20)), min: Math.min(...t) };
}

// a busy kernel of tunable length, timestamps around it, then map a 4-byte result
const busy = device.createShaderModule({ code: `
@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@group(0) @binding(1) var<uniform> n: vec4<u32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  var x = f32(g.x);
  for (var i = 0u; i < n.x; i++) { x = x * 1.0000001 + 0.5; }
  if (x == 12345.0) { o[g.x] = x; } else if (g.x == 0u) { o[0] = 1.0; }
}` });
const busyP = device.createComputePipeline({ layout: 'auto', compute: { module: busy, entryPoint: 'main' } });
const obuf = device.createBuffer({ size: 4 * 64 * 1024, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
const ubuf = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
const bg = device.createBindGroup({ layout: busyP.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: obuf } }, { binding: 1, resource: { buffer: ubuf } }] });
const hasTs = device.features.has('timestamp-query');
const qs = hasTs ? device.createQuerySet({ type: 'timestamp', count: 2 }) : null;
const qbuf = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
const qread = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
const rd = device.createBuffer({ size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
async function runBusy(iters, how) {
  device.queue.writeBuffer(ubuf, 0, new Uint32Array([iters, 0, 0, 0]));
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass(hasTs ? { timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : undefined);
  pass.setPipeline(busyP); pass.setBindGroup(0, bg); pass.dispatchWorkgroups(1024); pass.end();
  enc.copyBufferToBuffer(obuf, 0, rd, 0, 4);
  if (hasTs) { enc.resolveQuerySet(qs, 0, 2, qbuf, 0); enc.copyBufferToBuffer(qbuf, 0, qread, 0, 16); }
  const t0 = now();
  device.queue.submit([enc.finish()]);
  if (how === 'map') await rd.mapAsync(GPUMapMode.READ);
  else if (how === 'done') await device.queue.onSubmittedWorkDone();
  else if (how === 'done+map') { await device.queue.onSubmittedWorkDone(); await rd.mapAsync(GPUMapMode.READ); }
  const wall = now() - t0;
  if (rd.mapState === 'mapped') rd.unmap();
  let gpuMs = NaN;
  if (hasTs) { await qread.mapAsync(GPUMapMode.READ); const q = new BigUint64Array(qread.getMappedRange().slice(0)); qread.unmap(); gpuMs = Number(q[1] - q[0]) / 1e6; }
  return { wall, gpuMs };
}
out.mapAfterWork = [];
for (const iters of (process.env.PROBE_QUICK ? [0, 1000] : [0, 1000, 10000, 50000, 200000, 1000000])) {
  for (const how of ['map', 'done', 'done+map']) {
    const r = [];
    for (let i = 0; i < 12; i++) r.push(await runBusy(iters, how));
    const rr = r.slice(2);
    const wall = median(rr.map((x) => x.wall)), g = median(rr.map((x) => x.gpuMs));
    out.mapAfterWork.push({ iters, how, wall_ms: +wall.toFixed(3), gpu_ms: +g.toFixed(3), overhead_ms: +(wall - g).toFixed(3) });
  }
}

// dispatch cost: N tiny dispatches in one pass (with a storage dependency between them) vs one pass each
const tiny = device.createShaderModule({ code: `
@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) { o[g.x] = o[g.x] + 1.0; }` });
const tinyP = device.createComputePipeline({ layout: 'auto', compute: { module: tiny, entryPoint: 'main' } });
const tbg = device.createBindGroup({ layout: tinyP.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: obuf } }] });
async function dispatches(n, onePass, wgs) {
  const enc = device.createCommandEncoder();
  const passOpts = (i, last) => hasTs && (i === 0 || last) ? { timestampWrites: { querySet: qs, ...(i === 0 ? { beginningOfPassWriteIndex: 0 } : {}), ...(last ? { endOfPassWriteIndex: 1 } : {}) } } : undefined;
  if (onePass) { const p = enc.beginComputePass(passOpts(0, true)); p.setPipeline(tinyP); p.setBindGroup(0, tbg); for (let i = 0; i < n; i++) p.dispatchWorkgroups(wgs); p.end(); }
  else for (let i = 0; i < n; i++) { const p = enc.beginComputePass(passOpts(i, i === n - 1)); p.setPipeline(tinyP); p.setBindGroup(0, tbg); p.dispatchWorkgroups(wgs); p.end(); }
  if (hasTs) { enc.resolveQuerySet(qs, 0, 2, qbuf, 0); enc.copyBufferToBuffer(qbuf, 0, qread, 0, 16); }
  const t0 = now();
  device.queue.submit([enc.finish()]);
  await device.queue.onSubmittedWorkDone();
  const wall = now() - t0;
  let gpuMs = NaN;
  if (hasTs) { await qread.mapAsync(GPUMapMode.READ); const q = new BigUint64Array(qread.getMappedRange().slice(0)); qread.unmap(); gpuMs = Number(q[1] - q[0]) / 1e6; }
  return { wall, gpuMs };
}
out.dispatchCost = [];
for (const wgs of [1, 256]) for (const n of (process.env.PROBE_QUICK ? [1, 10] : [1, 100, 1000])) for (const onePass of [true, false]) {
  const r = []; for (let i = 0; i < 8; i++) r.push(await dispatches(n, onePass, wgs));
  const rr = r.slice(2);
  const g = median(rr.map((x) => x.gpuMs)), w = median(rr.map((x) => x.wall));
  out.dispatchCost.push({ n, workgroups: wgs, onePass, gpu_ms: +g.toFixed(3), wall_ms: +w.toFixed(3), gpu_us_per_dispatch: +(g * 1000 / n).toFixed(2) });
}
out.errors = errs;
console.log(JSON.stringify(out, null, 1));
process.exit(0);
