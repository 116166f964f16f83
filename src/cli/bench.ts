/**
 * `mamba-ts bench` (like llama-bench): a model of a standard size with random weights made in process,
 * prefill and decode speed, peak memory, and the machine's measured memory bandwidth with the decode
 * speed it implies (batch-1 decode reads every weight once per token: ceiling = bandwidth ÷ weight bytes).
 */
import { argmax } from '../generate/sampling.js';
import { resolveBackendAsync } from '../api/load.js';
import type { WebGpuBackend } from '../backend/webgpu/index.js';
import { PRESETS, RandomTensorSource } from '../models/random.js';
import { buildModel } from '../models/registry.js';
import { DTYPE_BYTES, type WeightDType } from '../tensor/dtype.js';
import { WasmRuntime } from '../backend/wasm/runtime.js';
import { SSD_MAX_CHUNK } from '../backend/wasm/index.js';
import { checkDtype, commandUsage, flag, KV_CACHE_OPTION, parseChoice, parseCommand, parseKvCache, parseNumber, str, UsageError, type CommandSpec } from './args.js';
import { startProgress, type CliIO } from './io.js';
import { OpProfile, cpuMsNow } from './op-profile.js';
import type { CausalLM } from '../models/causal-lm.js';
import type { ModelState } from '../models/state.js';
import { countsSince, formatCounts, type GpuCallCounts } from '../backend/webgpu/trace.js';

const ARCHS = ['mamba', 'mamba2', 'hybrid', 'llama'] as const;
const SIZES = ['130m', '370m', '790m', '1.4b', '2.8b'] as const;
const DTYPES = ['f32', 'f16', 'bf16', 'q8', 'q4'] as const;
const BACKENDS = ['cpu', 'wasm', 'webgpu'] as const;
const SSD_CHOICES = ['chunked', 'recurrent', 'quadratic'] as const;

export const BENCH_SPEC: CommandSpec = {
  name: 'bench',
  summary: 'Measure prefill/decode speed and memory of a standard-size model with random weights.',
  synopsis: '[--arch mamba|mamba2|hybrid|llama] [--size 130m] [--backend cpu|wasm|webgpu] [--dtype f32|f16|bf16|q8|q4] [options]',
  description: [
    'Weights are random (made in process; no download). Prefill: one call over a prompt of N tokens on a',
    'fresh state. Decode: N single-token steps after that prompt (greedy; on wasm the LM head and the argmax run',
    'as one op, as in generation: no logits copied out). Both are the median of --reps',
    'runs after one warm-up. The bandwidth probe streams a buffer of the weights\' size through the same',
    'threads (webgpu: a buffer copy on the GPU, read + write); batch-1 decode cannot beat bandwidth ÷ weight bytes.',
    'webgpu: the warm-up is a whole run (the prompt\'s and the recorded step\'s pipelines compiled before the timed',
    'runs), each run\'s decode starts on a fresh state (its first step recorded, as in generate()), and',
    'MAMBA_TS_WEBGPU_TRACE=1 prints the WebGPU calls of each run (submits, read-backs, buffers, bind groups...).',
  ].join('\n'),
  options: {
    arch: { type: 'string', value: 'ARCH', help: `architecture: ${ARCHS.join(', ')} (default mamba)` },
    size: { type: 'string', value: 'SIZE', help: `model size: ${SIZES.join(', ')} (default 130m; mamba2: the 370m/780m/1.3b/2.7b shapes; hybrid and llama: 130m)` },
    backend: { type: 'string', value: 'NAME', help: 'cpu (TypeScript reference), wasm (SIMD + threads; default) or webgpu' },
    dtype: { type: 'string', value: 'TYPE', help: `weight storage: ${DTYPES.join(', ')} on wasm, f32, bf16 or q8 on webgpu (default f32)` },
    'kv-cache': KV_CACHE_OPTION,
    threads: { type: 'string', short: 't', value: 'N', help: 'wasm threads including the main one (default: all cores)' },
    prompt: { type: 'string', short: 'p', value: 'N', help: 'prefill length (default 512)' },
    gen: { type: 'string', short: 'n', value: 'N', help: 'decode steps (default 128)' },
    reps: { type: 'string', value: 'N', help: 'timed repetitions (default 3)' },
    json: { type: 'boolean', help: 'print a JSON object as the last line (prefill_tok_s, decode_tok_s, peak_rss_mb, …)' },
    logits: { type: 'boolean', help: 'decode reads each step\'s logits and takes the argmax in JavaScript (wasm\'s path before the fused LM-head argmax; on webgpu instead of the greedy chain on the device)' },
    profile: { type: 'boolean', help: 'after the timed runs, one more prefill + decode with every backend op timed: where the time goes' },
    ssd: { type: 'string', value: 'ALGO', help: `Mamba-2 prefill SSD: ${SSD_CHOICES.join(', ')} (default: the backend's)` },
    chunk: { type: 'string', value: 'N', help: 'chunk length of --ssd chunked (default: the model config\'s chunk_size)' },
  },
  examples: [
    'mamba-ts bench --arch mamba --size 130m --dtype q8 --prompt 512 --gen 128 --threads 2',
    'mamba-ts bench --arch mamba2 --backend cpu --prompt 64 --gen 16 --reps 1 --json',
  ],
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** GB/s of streaming `bytes` of memory through all threads (best of 5) */
export function measureBandwidth(threads: number | undefined, bytes: number): number {
  const rt = WasmRuntime.get(threads);
  const n = Math.floor(bytes / 4);
  const src = rt.heap.alloc(n * 4);
  const chunk = Math.ceil(n / rt.threads);
  const out = rt.heap.alloc(4 * (rt.threads + 1));
  try {
    const v = rt.f32(src, n);
    for (let i = 0; i < n; i += 1024) v[i] = 1; // touch every page
    let best = Infinity;
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      rt.run('stream_sum', [src, out, chunk], n, chunk);
      best = Math.min(best, performance.now() - t0);
    }
    return (n * 4) / (best / 1000) / 1e9;
  } finally {
    rt.heap.release(src);
    rt.heap.release(out);
  }
}

/** how `benchDecoder` picks greedy tokens: see BENCH_SPEC's --logits */
export type BenchDecodeStep = 'advanceArgmax' | 'greedyChain' | 'advance';

/**
 * The bench's greedy decode: `n` steps after the logits `l` of a prompt, through the backend's fastest greedy path —
 * the fused LM head + argmax (wasm), the greedy chain replayed on the device (webgpu: what generate() does for greedy
 * decoding there), or with `readLogits` the logits read and the argmax taken in JavaScript. The tokens picked (the
 * first from `l`, then one per step but the last: [n]) come back, so that tests can hold them against generate().
 */
export function benchDecoder(lm: CausalLM, readLogits: boolean): { step: BenchDecodeStep; decode(l: { data: Float32Array }, s: ModelState, n: number): Promise<number[]> } {
  const backend = lm.backend;
  const fusedPick = !readLogits && !!backend.linearArgmax && !!lm.advanceArgmax;
  // backends that replay recorded steps (webgpu): all `n` steps queued at once, each step's argmax feeding the next on
  // the device (what generate() does for greedy decoding there)
  const onDevice = !readLogits && !fusedPick && !!lm.chainsOnDevice && !!lm.greedyChain;
  const step: BenchDecodeStep = fusedPick ? 'advanceArgmax' : onDevice ? 'greedyChain' : 'advance';
  const decode = async (l: { data: Float32Array }, s: ModelState, n: number): Promise<number[]> => {
    const toks = [argmax(l.data)];
    // (n steps read toks[0..n−1]; the pick of the last step is not needed)
    if (onDevice) {
      const picks = await lm.greedyChain!([[toks[0]]], s, n);
      if (!picks || picks.length !== n) throw new Error(`bench: the greedy chain on the device returned ${picks ? picks.length : 'no'} steps of ${n} (${lm.backend.name})`);
      for (let i = 0; i < n - 1; i++) toks.push(picks[i][0]);
      return toks;
    }
    for (let i = 0; i < n; i++) {
      let next: number;
      if (fusedPick) {
        const p = await lm.advanceArgmax!([[toks[i]]], s);
        if (!p || p[0] < 0) throw new Error(`bench: the greedy step found no finite logit (${lm.backend.name})`);
        next = p[0];
      } else next = argmax((await lm.advance([[toks[i]]], s)).data);
      if (i < n - 1) toks.push(next);
    }
    return toks;
  };
  return { step, decode };
}

export async function runBench(argv: string[], io: CliIO): Promise<number> {
  const C = 'bench';
  const v = parseCommand(BENCH_SPEC, argv);
  if (!v) {
    io.stdout.write(commandUsage(BENCH_SPEC));
    return 0;
  }
  const arch = parseChoice('arch', str(v, 'arch') ?? 'mamba', ARCHS, C);
  const size = parseChoice('size', str(v, 'size') ?? '130m', SIZES, C);
  const backendName = parseChoice('backend', str(v, 'backend') ?? 'wasm', BACKENDS, C);
  const dtype = parseChoice('dtype', str(v, 'dtype') ?? 'f32', DTYPES, C) as WeightDType;
  const int = (name: string, dflt: number, min: number) => {
    const raw = str(v, name);
    return raw === undefined ? dflt : parseNumber(name, raw, { integer: true, min, expect: `an integer >= ${min}` }, C);
  };
  const threads = str(v, 'threads') === undefined ? undefined : int('threads', 1, 1);
  const promptLen = int('prompt', 512, 1);
  const gen = int('gen', 128, 1);
  const reps = int('reps', 3, 1);
  const json = flag(v, 'json');
  const profile = flag(v, 'profile');
  const readLogits = flag(v, 'logits');
  const ssdRaw = str(v, 'ssd');
  const ssd = {
    ...(ssdRaw !== undefined ? { algorithm: parseChoice('ssd', ssdRaw, SSD_CHOICES, C) } : {}),
    ...(str(v, 'chunk') !== undefined ? { chunkSize: int('chunk', 1, 1) } : {}),
  };
  if (threads !== undefined && backendName !== 'wasm') throw new UsageError('--threads needs --backend wasm', C);
  const kvCache = parseKvCache(v, backendName, C) ?? 'f32';
  if (Object.keys(ssd).length && arch !== 'mamba2' && arch !== 'hybrid') throw new UsageError('--ssd and --chunk need --arch mamba2 or hybrid (the models with an SSD)', C);
  checkDtype(dtype, backendName, C);

  const preset = `${arch === 'hybrid' ? 'hybrid' : arch}-${size}`;
  if (!PRESETS[preset]) throw new UsageError(`--size ${size} is not available for --arch ${arch} (hybrid and llama: 130m)`, C);
  const progress = startProgress(io.stderr, `building ${preset} (${dtype})`);
  const backend = await resolveBackendAsync({ backend: backendName, threads, weights: dtype });
  const t0 = performance.now();
  const lm = buildModel(PRESETS[preset], preset, new RandomTensorSource(1), { backend, kvCache, ...(Object.keys(ssd).length ? { ssd } : {}) });
  const buildMs = performance.now() - t0;
  progress.done();
  const info = lm.describe();
  const params = Number(info.parameters);
  // the bytes of weights as stored (wasm: counted at upload; some small matrices stay f32 in every format)
  const stored = (backend as { weightBytes?: number }).weightBytes;
  const weightBytes = stored || params * DTYPE_BYTES[dtype];
  const V = lm.vocabSize;
  const ids = Array.from({ length: promptLen }, (_, i) => (i * 7919 + 13) % V);
  // `gen` greedy steps after the logits `l` of the prompt: the fused LM head + argmax where the backend has it
  const { step: decodeStep, decode } = benchDecoder(lm, readLogits);
  const fusedPick = decodeStep === 'advanceArgmax', onDevice = decodeStep === 'greedyChain';
  // MAMBA_TS_WEBGPU_TRACE=1: the WebGPU calls of each timed prefill and decode (src/backend/webgpu/trace.ts)
  const trace = backendName === 'webgpu' ? (backend as WebGpuBackend).rt.trace : null;
  const traced: { prefill: GpuCallCounts; decode: GpuCallCounts }[] = [];

  // warm-up. webgpu: the whole prompt and all `gen` steps — the pipelines of a prompt's shapes (the GEMMs' tiles at
  // its rows, the flash attention) and of the recorded step are compiled here, not in the first timed rep (an
  // H100, session 31: llama-130m's first 2048-token prefill 1,182 ms after the 8-token warm-up, the next 68–97); a
  // user's second request does not compile them either. Other backends compile nothing: 8 tokens and 2 steps.
  {
    const s = lm.createState(1);
    const full = backendName === 'webgpu';
    const l = await lm.advance([full ? ids : ids.slice(0, Math.min(8, promptLen))], s);
    await decode(l, s, full ? gen : 2);
    s.dispose(); // (each run's state given back at once — its caches, a recorded GPU step — not left to the collector)
  }
  const prefillMs: number[] = [];
  const decodeMs: number[] = [];
  const decodeCpuMs: number[] = []; // CPU time of the process (all threads) per decode run
  const prefillCpuMs: number[] = []; // and per prefill
  for (let r = 0; r < reps; r++) {
    const p = startProgress(io.stderr, `rep ${r + 1}/${reps}: prefill ${promptLen}`);
    const s = lm.createState(1);
    const k0 = trace ? { ...trace } : null;
    let t = performance.now();
    const pc0 = process.cpuUsage();
    const l = await lm.advance([ids], s);
    prefillMs.push(performance.now() - t);
    const pcu = process.cpuUsage(pc0);
    prefillCpuMs.push((pcu.user + pcu.system) / 1000);
    p.done();
    const k1 = trace ? { ...trace } : null;
    const d = startProgress(io.stderr, `rep ${r + 1}/${reps}: decode ${gen}`);
    t = performance.now();
    const c0 = process.cpuUsage();
    await decode(l, s, gen);
    decodeMs.push(performance.now() - t);
    const cu = process.cpuUsage(c0);
    decodeCpuMs.push((cu.user + cu.system) / 1000);
    d.done();
    if (trace && k0 && k1) {
      traced.push({ prefill: countsSince(k0, k1), decode: countsSince(k1, trace) });
      io.stderr.write(`rep ${r + 1} WebGPU calls: prefill ${promptLen} (${prefillMs[r].toFixed(1)} ms): ${formatCounts(traced[r].prefill)}\n` +
        `rep ${r + 1} WebGPU calls: decode ${gen} (${decodeMs[r].toFixed(1)} ms): ${formatCounts(traced[r].decode)}\n`);
    }
    s.dispose();
  }
  const peakRss = process.resourceUsage().maxRSS / 1024; // before the bandwidth probe's buffer
  // --profile: one more run with every backend call timed (not part of the numbers above)
  let profileRows: { prefill: ReturnType<OpProfile['rows']>; decode: ReturnType<OpProfile['rows']> } | undefined;
  if (profile) {
    const prof = new OpProfile(lm.backend);
    const s = lm.createState(1);
    prof.reset(); // (the state's allocation is not part of the prefill)
    let t = performance.now(), c = cpuMsNow() ?? NaN;
    const l = await lm.advance([ids], s);
    const pre = prof.rows(performance.now() - t, (cpuMsNow() ?? NaN) - c);
    prof.reset();
    t = performance.now();
    c = cpuMsNow() ?? NaN;
    await decode(l, s, gen);
    profileRows = { prefill: pre, decode: prof.rows(performance.now() - t, (cpuMsNow() ?? NaN) - c) };
    s.dispose();
  }
  // a recurrent model's state (Mamba, Mamba-2: no KV cache) is read and written once per decode token, as its weights
  // are read: the ceiling counted with it as well (attention's KV caches grow with the context: not counted)
  const st = lm.createState(1);
  const recurrentStateBytes = st.timeTensors.size ? 0 : st.byteSize;
  st.dispose();
  const bandwidth = backendName === 'webgpu'
    ? await (backend as WebGpuBackend).measureBandwidth(Math.min(weightBytes, 1 << 30))
    : measureBandwidth(backendName === 'cpu' ? 1 : threads, Math.min(weightBytes, 1 << 30));
  const rt = backendName === 'wasm' ? WasmRuntime.get(threads) : null;
  const result = {
    arch, size, preset, backend: lm.backend.name, dtype, kv_cache: kvCache, threads: rt ? rt.threads : 1,
    ...(info.prefill_ssd !== undefined ? { prefill_ssd: String(info.prefill_ssd) } : {}),
    parameters: params, weight_mb: weightBytes / 2 ** 20,
    build_ms: buildMs,
    prompt: promptLen, gen, reps,
    decode_step: decodeStep,
    /** CPU time of all threads per decode token (median of the runs): spinning workers count, a descheduled thread does not */
    decode_cpu_ms_per_token: median(decodeCpuMs) / gen,
    /** the same for the prefill, per prompt token */
    prefill_cpu_ms_per_token: median(prefillCpuMs) / promptLen,
    prefill_tok_s: promptLen / (median(prefillMs) / 1000),
    decode_tok_s: gen / (median(decodeMs) / 1000),
    prefill_ms: prefillMs, decode_ms: decodeMs,
    ...(trace ? { webgpu_calls: traced } : {}),
    peak_rss_mb: peakRss,
    bandwidth_gb_s: bandwidth,
    decode_ceiling_tok_s: (bandwidth * 1e9) / weightBytes,
    /** a recurrent model's state per sequence (MiB), read and written each decode token; 0 where the model has KV caches */
    state_mb: recurrentStateBytes / 2 ** 20,
    /** bandwidth ÷ (weight bytes + the state read and written: 2 × state bytes) */
    decode_ceiling_state_tok_s: (bandwidth * 1e9) / (weightBytes + 2 * recurrentStateBytes),
  };
  // (the wasm backend cuts longer chunks to SSD_MAX_CHUNK)
  const ssdChunk = Math.min(Number(info.chunk_size ?? info.mamba_chunk_size), backendName === 'wasm' ? SSD_MAX_CHUNK : Infinity);
  const f1 = (x: number) => x.toFixed(1);
  const rows: Array<[string, string]> = [
    ['model', `${preset} (${(params / 1e6).toFixed(1)} M parameters, ${dtype}, ${f1(result.weight_mb)} MiB of weights)`],
    ['backend', result.backend],
    ['KV cache', kvCache],
    ...(result.prefill_ssd ? [['prefill SSD', `${result.prefill_ssd}${result.prefill_ssd === 'chunked' && Number.isFinite(ssdChunk) ? `, chunks of ${ssdChunk}` : ''}`] as [string, string]] : []),
    [`prefill ${promptLen}`, `${f1(result.prefill_tok_s)} tok/s (median of ${reps}: ${prefillMs.map((m) => m.toFixed(0)).join(', ')} ms)`],
    [`decode ${gen}`, `${f1(result.decode_tok_s)} tok/s (median of ${reps}: ${decodeMs.map((m) => m.toFixed(0)).join(', ')} ms; ${fusedPick ? 'LM head + argmax in one op' : onDevice ? 'greedy on the device: recorded step replayed, tokens never read back until the end' : 'logits read, argmax in JS'})`],
    ['prefill CPU time', `${result.prefill_cpu_ms_per_token.toFixed(2)} ms per token (all threads, median of the runs)`],
    ['decode CPU time', `${result.decode_cpu_ms_per_token.toFixed(2)} ms per token (all threads, median of the runs)`],
    ['peak RSS', `${f1(result.peak_rss_mb)} MiB`],
    ['memory bandwidth', `${f1(bandwidth)} GB/s (${backendName === 'webgpu' ? 'GPU buffer copy' : `${result.threads} thread${result.threads > 1 ? 's' : ''}`})`],
    ['decode ceiling', `${f1(result.decode_ceiling_tok_s)} tok/s (bandwidth ÷ weight bytes); achieved ${f1((100 * result.decode_tok_s) / result.decode_ceiling_tok_s)}%`],
    ...(recurrentStateBytes ? [['decode ceiling with the state', `${f1(result.decode_ceiling_state_tok_s)} tok/s (bandwidth ÷ (weight bytes + 2 × ${f1(result.state_mb)} MiB of state read and written)); achieved ${f1((100 * result.decode_tok_s) / result.decode_ceiling_state_tok_s)}%`]] as Array<[string, string]> : []),
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  if (!json) {
    io.stdout.write(rows.map(([k, x]) => `${k.padEnd(w)}  ${x}`).join('\n') + '\n');
    if (profileRows) {
      for (const [phase, n, list] of [[`prefill ${promptLen}`, promptLen, profileRows.prefill], [`decode ${gen}`, gen, profileRows.decode]] as const) {
        io.stdout.write(`\nprofile, ${phase} (ms per token, share of the wall time; CPU ms per token, all threads)\n`);
        const ow = Math.max(...list.map((r) => r.op.length));
        for (const r of list) {
          const cpu = Number.isFinite(r.cpuMs) ? `  CPU ${(r.cpuMs / n).toFixed(3).padStart(8)} ms` : '';
          io.stdout.write(`  ${r.op.padEnd(ow)}  ${(r.ms / n).toFixed(3).padStart(8)} ms  ${(100 * r.share).toFixed(1).padStart(5)}%${cpu}${r.calls ? `  (${r.calls} calls)` : ''}\n`);
        }
      }
    }
  } else io.stdout.write(JSON.stringify(profileRows ? { ...result, profile: profileRows } : result) + '\n');
  return 0;
}
