#!/usr/bin/env node
// Decode matrix-vector kernels at the memory roofline? Variants of y = W·x (W [N, K] row-major, f32 or bf16 packed
// two to a u32) timed on the adapter with timestamps around a pass of R dependent dispatches, checked against a
// float64 reference. Plain JS, no build (issue 11):
//   node scripts/matvec-probe.mjs [--reps 50]     (lent machine: bash scripts/gpu-machine.sh node scripts/matvec-probe.mjs)
// Variant names: {f|b}{S}r{RPS}w{WG}{u|l}: f32/bf16, rows per subgroup RPS, workgroup size WG, u = the row's loads
// unrolled with compile-time bounds (all issued before the sums), l = a runtime loop; reduction by subgroupAdd.
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);

const arg = (n, d) => { const i = process.argv.indexOf(`--${n}`); return i >= 0 ? process.argv[i + 1] : d; };
const REPS = Number(arg('reps', '50'));
const gpu = create([]);
// the Dawn instance must outlive the device (a collected GPU object takes the device down: the futex / "Owner died"
// crashes of the first H100 run); a global keeps it
globalThis.__dawnInstance = gpu;
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
const feats = ['timestamp-query', 'subgroups'].filter((f) => adapter.features.has(f));
const device = await adapter.requestDevice({ requiredFeatures: feats, requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize } });
const SG = adapter.info.subgroupMinSize || 32;
device.addEventListener?.('uncapturederror', (e) => console.error('GPU error:', e.error?.message));

function wgsl(fmt, rps, wg, unroll, K) {
  const per = fmt === 'f' ? 4 : 8; // weights per 16-byte vector
  const KV = K / per; // vectors per row
  const NL = KV / SG; // vectors per lane
  const load = fmt === 'f'
    ? (v, xi) => `acc += dot(${v}, xv[${xi}]);`
    : (v, xi) => `{ let lo = bitcast<vec4<f32>>(${v} << vec4<u32>(16u)); let hi = bitcast<vec4<f32>>(${v} & vec4<u32>(0xffff0000u)); let a = xv[2u * (${xi})]; let b = xv[2u * (${xi}) + 1u]; acc += dot(lo, vec4<f32>(a.x, a.z, b.x, b.z)) + dot(hi, vec4<f32>(a.y, a.w, b.y, b.w)); }`;
  const wty = fmt === 'f' ? 'vec4<f32>' : 'vec4<u32>';
  let body;
  if (unroll) {
    const lines = [];
    for (let r = 0; r < rps; r++) for (let i = 0; i < NL; i++) lines.push(`let w${r}_${i} = W[(row0 + ${r}u) * ${KV}u + ${i * SG}u + lane];`);
    for (let r = 0; r < rps; r++) {
      lines.push(`{ var acc = 0.0;`);
      for (let i = 0; i < NL; i++) lines.push(load(`w${r}_${i}`, `${i * SG}u + lane`));
      lines.push(`let s = subgroupAdd(acc); if (lane == 0u) { Y[row0 + ${r}u] = s; } }`);
    }
    body = lines.join('\n    ');
  } else {
    body = `for (var r = 0u; r < ${rps}u; r++) {
      var acc = 0.0;
      for (var i = lane; i < ${KV}u; i += ${SG}u) { let w = W[(row0 + r) * ${KV}u + i]; ${load('w', 'i')} }
      let s = subgroupAdd(acc); if (lane == 0u) { Y[row0 + r] = s; }
    }`;
  }
  return `enable subgroups;
diagnostic(off, subgroup_uniformity);
@group(0) @binding(0) var<storage, read> W: array<${wty}>;
@group(0) @binding(1) var<storage, read> xv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) g: vec3<u32>, @builtin(num_workgroups) ng: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
  let sgi = li / ${SG}u;
  let row0 = ((g.y * ng.x + g.x) * ${wg / SG}u + sgi) * ${rps}u;
  if (row0 >= NROWS) { return; }
    ${body}
}`;
}

const results = [];
// Dawn objects are kept referenced until exit: a pipeline or bind group collected while the queue still runs crashed Dawn
// ("The futex facility returned an unexpected error code") on SwiftShader and on the H100
const keep = [];
const qs = device.createQuerySet({ type: 'timestamp', count: 2 });
const qbuf = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
const qread = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
const SHAPES = arg('shapes', '3072x768,768x1536,1536x768,50280x768,10240x2560,2560x5120').split(',').map((s) => s.split('x').map(Number));
const FORMATS = arg('formats', 'f,b').split(',');
const T0 = Date.now();
for (const [N, K] of SHAPES) {
  // test data built on whole typed arrays (per-element typed-array allocations took minutes at 26M weights on the H100 host)
  const w = new Float32Array(N * K); for (let i = 0; i < w.length; i++) w[i] = Math.sin(i * 0.37) * 0.05;
  const x = new Float32Array(K); for (let i = 0; i < K; i++) x[i] = Math.cos(i * 0.11);
  const wu = new Uint32Array(w.buffer);
  const wb = new Uint32Array(N * K / 2); const wq = new Float32Array(N * K); const wqu = new Uint32Array(wq.buffer);
  for (let i = 0; i < N * K; i += 2) { // bf16 round to nearest even, two to a u32 (low half = even k)
    const u0 = wu[i], u1 = wu[i + 1];
    const lo = ((u0 + 0x7fff + ((u0 >>> 16) & 1)) >>> 16) & 0xffff, hi = ((u1 + 0x7fff + ((u1 >>> 16) & 1)) >>> 16) & 0xffff;
    wb[i >> 1] = (lo | (hi << 16)) >>> 0; wqu[i] = lo << 16; wqu[i + 1] = hi << 16;
  }
  const ref = (m) => { const y = new Float64Array(N); for (let n = 0; n < N; n++) { let s = 0; for (let k = 0; k < K; k++) s += m[n * K + k] * x[k]; y[n] = s; } return y; };
  const refF = ref(w), refB = ref(wq);
  const mk = (data, usage) => { const b = device.createBuffer({ size: data.byteLength, usage: usage | GPUBufferUsage.COPY_DST }); device.queue.writeBuffer(b, 0, data); return b; };
  const Wf = mk(w, GPUBufferUsage.STORAGE), Wb = mk(wb, GPUBufferUsage.STORAGE), X = mk(x, GPUBufferUsage.STORAGE);
  const Y = device.createBuffer({ size: N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const Yr = device.createBuffer({ size: N * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  for (const fmt of FORMATS) for (const rps of [1, 2, 4]) for (const wg of [64, 128, 256]) for (const unroll of [true, false]) {
    const per = fmt === 'f' ? 4 : 8;
    if ((K / per) % SG) continue;
    const name = `${fmt}${SG}r${rps}w${wg}${unroll ? 'u' : 'l'}`;
    const code = wgsl(fmt, rps, wg, unroll, K).replace('NROWS', `${N}u`);
    device.pushErrorScope('validation');
    const mod = device.createShaderModule({ code });
    const p = device.createComputePipeline({ layout: 'auto', compute: { module: mod, entryPoint: 'main' } });
    const bg = device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: fmt === 'f' ? Wf : Wb } }, { binding: 1, resource: { buffer: X } }, { binding: 2, resource: { buffer: Y } }] });
    const err = await device.popErrorScope();
    keep.push(mod, p, bg);
    if (err) { results.push({ N, K, name, error: err.message.slice(0, 300) }); continue; }
    const groups = Math.ceil(N / (rps * (wg / SG)));
    const gx = Math.min(groups, 65535), gy = Math.ceil(groups / gx);
    const times = [];
    for (let t = 0; t < 5; t++) {
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass({ timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } });
      pass.setPipeline(p); pass.setBindGroup(0, bg);
      for (let r = 0; r < REPS; r++) pass.dispatchWorkgroups(gx, gy);
      pass.end();
      enc.resolveQuerySet(qs, 0, 2, qbuf, 0); enc.copyBufferToBuffer(qbuf, 0, qread, 0, 16);
      if (t === 4) enc.copyBufferToBuffer(Y, 0, Yr, 0, N * 4);
      device.queue.submit([enc.finish()]);
      await qread.mapAsync(GPUMapMode.READ); const q = new BigUint64Array(qread.getMappedRange().slice(0)); qread.unmap();
      times.push(Number(q[1] - q[0]) / 1e3 / REPS);
    }
    await Yr.mapAsync(GPUMapMode.READ); const y = new Float32Array(Yr.getMappedRange().slice(0)); Yr.unmap();
    const rf = fmt === 'f' ? refF : refB; let e = 0, mx = 0;
    for (let n = 0; n < N; n++) { e = Math.max(e, Math.abs(y[n] - rf[n])); mx = Math.max(mx, Math.abs(rf[n])); }
    const us = times.slice(1).sort((a, b) => a - b)[1];
    const bytes = N * K * (fmt === 'f' ? 4 : 2);
    const r = { N, K, name, us: +us.toFixed(2), GBps: Math.round(bytes / us / 1e3), maxErr: +e.toExponential(2), refMax: +mx.toFixed(3) };
    results.push(r);
    console.error(`${((Date.now() - T0) / 1e3).toFixed(1)} s`, JSON.stringify(r)); // progress: a run cut short still says what it measured
  }
  for (const b of [Wf, Wb, X, Y, Yr]) b.destroy();
}
const best = {};
for (const r of results) { if (r.us === undefined) continue; const k = `${r.N}x${r.K}${r.name[0]}`; if (!best[k] || best[k].us > r.us) best[k] = r; }
console.log(JSON.stringify({ adapter: adapter.info.device || adapter.info.description, subgroup: SG, reps: REPS, best, results }, null, 1));
process.exit(0);
