/** `mamba-ts serve`: an OpenAI-compatible HTTP server (src/server) over one model folder. */
import { checkDtype, commandUsage, KV_CACHE_OPTION, parseChoice, parseCommand, parseKvCache, parseNumber, str, UsageError, type CommandSpec } from './args.js';
import { loadWithProgress, requireModel } from './info.js';
import type { CliIO } from './io.js';
import { serve, type ServeOptions } from '../server/http.js';

export const SERVE_SPEC: CommandSpec = {
  name: 'serve',
  summary: 'Serve a model over an OpenAI-compatible HTTP API (continuous batching, prefix-state cache).',
  synopsis: '--model DIR [--backend wasm|webgpu|cpu] [--host 127.0.0.1] [--port 8080] [options]',
  description: [
    'Endpoints: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (stream: true = server-sent',
    'events), POST /tokenize, POST /detokenize, GET /health, GET /metrics (Prometheus text). Requests that arrive',
    'while others generate join the running batch. Each conversation leaves state snapshots at the end of each',
    'message and every --checkpoint-every prompt tokens, so its next turn reads only the new tokens. Runs until',
    'interrupted (Ctrl-C).',
  ].join('\n'),
  options: {
    model: { type: 'string', short: 'm', value: 'DIR', help: 'model folder (config.json + *.safetensors, tokenizer.json, tokenizer_config.json) [required]' },
    'model-name': { type: 'string', value: 'NAME', help: "the model id clients use (default: the folder's name)" },
    backend: { type: 'string', value: 'NAME', help: 'cpu (default), wasm (WebAssembly SIMD + threads) or webgpu' },
    threads: { type: 'string', value: 'N', help: 'wasm threads including the main one (default: all cores)' },
    dtype: { type: 'string', value: 'TYPE', help: 'weight storage: f32 (default), f16, bf16, q8 or q4 (GGUF Q4_K) on wasm; f32, bf16 or q8 on webgpu' },
    'kv-cache': KV_CACHE_OPTION,
    host: { type: 'string', value: 'ADDR', help: 'address to bind (default 127.0.0.1: this machine only)' },
    port: { type: 'string', value: 'N', help: 'port (default 8080; 0 = any free port)' },
    'api-key': { type: 'string', value: 'KEY', help: 'require the header "Authorization: Bearer KEY" (default: none)' },
    'max-batch': { type: 'string', value: 'N', help: 'requests generating at once (default 16)' },
    'max-queue': { type: 'string', value: 'N', help: 'requests waiting beyond those before 429 Too Many Requests (default 256)' },
    'cache-mb': { type: 'string', value: 'N', help: 'memory for prefix-state snapshots in MiB (default 512; 0 = off)' },
    'checkpoint-every': { type: 'string', value: 'N', help: 'snapshot every N prompt tokens of a long prompt (default 512; 0 = message ends only)' },
    'cache-dir': { type: 'string', value: 'DIR', help: 'also keep snapshots as files in DIR (kept across restarts)' },
    'cache-disk-mb': { type: 'string', value: 'N', help: 'disk budget of --cache-dir in MiB (default 4096)' },
    'prefill-chunk': { type: 'string', value: 'N', help: 'prompt tokens read between two decode steps (default 256)' },
  },
  examples: [
    'mamba-ts serve --model ./mamba-130m-hf --backend wasm --port 8080',
    'mamba-ts serve -m ./mamba-130m-hf --backend wasm --dtype q8 --api-key secret --cache-dir ~/.cache/mamba-ts/prefix',
    'curl http://127.0.0.1:8080/v1/completions -H "Content-Type: application/json" -d \'{"prompt": "Hello", "max_tokens": 16}\'',
  ],
};

export async function serveCommand(argv: string[], io: CliIO): Promise<number> {
  const C = 'serve';
  const v = parseCommand(SERVE_SPEC, argv);
  if (v === null) {
    io.stdout.write(commandUsage(SERVE_SPEC));
    return 0;
  }
  const dir = requireModel(v, C);
  const int = (name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined => {
    const raw = str(v, name);
    return raw === undefined ? undefined : parseNumber(name, raw, { integer: true, min, max, expect: `an integer in [${min}, ${max === Number.MAX_SAFE_INTEGER ? '…' : max}]` }, C);
  };
  const backendRaw = str(v, 'backend');
  const backend = backendRaw === undefined ? undefined : parseChoice('backend', backendRaw, ['cpu', 'wasm', 'webgpu'] as const, C);
  const dtypeRaw = str(v, 'dtype');
  const dtype = dtypeRaw === undefined ? undefined : parseChoice('dtype', dtypeRaw, ['f32', 'f16', 'bf16', 'q8', 'q4'] as const, C);
  const threads = int('threads', 1);
  if (threads !== undefined && backend !== 'wasm') throw new UsageError('--threads needs --backend wasm', C);
  const kvCache = parseKvCache(v, backend ?? 'cpu', C);
  checkDtype(dtype, backend ?? 'cpu', C);
  const apiKey = str(v, 'api-key');
  if (apiKey !== undefined && apiKey.length === 0) throw new UsageError('--api-key: expected a non-empty key', C);
  const opts: Omit<ServeOptions, 'model'> = {
    host: str(v, 'host') ?? '127.0.0.1',
    port: int('port', 0, 65535) ?? 8080,
    apiKey,
    modelName: str(v, 'model-name'),
    maxBatch: int('max-batch', 1),
    maxQueue: int('max-queue', 0),
    cacheMb: int('cache-mb', 0),
    checkpointEvery: int('checkpoint-every', 0),
    cacheDir: str(v, 'cache-dir'),
    cacheDiskMb: int('cache-disk-mb', 1),
    prefillChunk: int('prefill-chunk', 1),
  };
  const model = await loadWithProgress(io, dir, {
    ...(backend !== undefined ? { backend } : {}),
    ...(threads !== undefined ? { threads } : {}),
    ...(dtype !== undefined ? { weights: dtype } : {}),
    ...(kvCache !== undefined ? { kvCache } : {}),
  });
  const server = await serve({ ...opts, model, log: (line) => io.stderr.write(`${new Date().toISOString()} ${line}\n`) });
  io.stderr.write(`serving ${dir} (${model.lm.modelType}, ${backend ?? 'cpu'}) at ${server.url}/v1${apiKey ? ' (API key required)' : ''}; Ctrl-C stops\n`);
  if (opts.host !== '127.0.0.1' && opts.host !== 'localhost' && opts.host !== '::1' && !apiKey) {
    io.stderr.write(`warning: listening on ${opts.host} without --api-key: anyone who can reach this port can use the model\n`);
  }
  // run until interrupted (SIGINT/SIGTERM in the bin, the io signal in process)
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    if (io.signal) {
      if (io.signal.aborted) return resolve();
      io.signal.addEventListener('abort', stop, { once: true });
    }
    if (io.handleSigint) {
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    }
  });
  io.stderr.write('shutting down\n');
  await server.close();
  return 0;
}
