/**
 * `mamba-ts download org/name[@rev]`: fetch a model from the Hugging Face hub into the local Hugging Face cache
 * (shared with Python's huggingface_hub), with a progress bar; prints the snapshot folder. `--download` on the
 * commands that take `--model` does the same before loading (`resolveWithProgress`).
 */
import { resolveModelPath, hubCacheDir, type ResolveModelOptions } from '../io/hub.js';
import { parseHubRef } from '../io/hub-names.js';
import { ProgressBar } from '../train/progress.js';
import { commandUsage, flag, parseCommand, str, UsageError, type CommandSpec, type OptionSpec } from './args.js';
import { formatBytes, type CliIO } from './io.js';

/** `--model`, as the commands that load a model take it */
export const MODEL_OPTION: OptionSpec = {
  type: 'string',
  short: 'm',
  value: 'DIR',
  help: 'model folder (config.json + *.safetensors or a sharded index), a .gguf file, or a hub name\norg/name[@revision] from the Hugging Face cache [required]',
};

/** `--download`, next to `--model` */
export const DOWNLOAD_OPTION: OptionSpec = {
  type: 'boolean',
  help: '--model org/name: fetch what is missing from the hub into the cache first\n(HF_ENDPOINT, HF_TOKEN; see mamba-ts download --help)',
};

export const DOWNLOAD_SPEC: CommandSpec = {
  name: 'download',
  summary: 'Download a model from the Hugging Face hub into the local Hugging Face cache.',
  synopsis: 'org/name[@revision][/file.gguf] [options]',
  positionals: { min: 1, max: 1, name: 'the model to download (org/name[@revision])' },
  description: [
    'Fetches what a model needs (config.json, *.safetensors and the index, tokenizer.json, tokenizer_config.json,',
    'generation_config.json, special_tokens_map.json) into the cache Python\'s huggingface_hub uses',
    `($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub; here: ${hubCacheDir()}), and prints`,
    'the snapshot folder. Files already cached are not fetched again; an interrupted download continues where it',
    'stopped. A GGUF file is fetched only when named: org/name/model-q8_0.gguf.',
    '',
    'Afterwards --model org/name works offline in every command. Or skip this command: --download on generate and',
    'info fetches what is missing before loading. HF_ENDPOINT sets the hub (a mirror), HF_TOKEN the access token',
    '(private and gated repositories); HF_HUB_OFFLINE=1 never touches the network.',
  ].join('\n'),
  options: {
    'cache-dir': { type: 'string', value: 'DIR', help: 'the hub cache folder (default: as huggingface_hub finds it)' },
    quiet: { type: 'boolean', short: 'q', help: 'no progress bar' },
  },
  examples: [
    'mamba-ts download state-spaces/mamba-130m-hf',
    'mamba-ts download state-spaces/mamba-130m-hf@main --cache-dir ./hf-cache',
    'mamba-ts generate --model state-spaces/mamba-130m-hf --prompt "The state space model"',
  ],
};

/**
 * A `--model` value as a local path: an existing folder as is, a hub name from the cache, or (with `download`)
 * fetched into it with a progress bar on stderr.
 */
export async function resolveWithProgress(io: CliIO, spec: string, opts: ResolveModelOptions & { quiet?: boolean } = {}): Promise<string> {
  if (!opts.download) return resolveModelPath(spec, opts);
  let bar: ProgressBar | null = null;
  const done = new Map<string, number>();
  let base = 0;
  try {
    return await resolveModelPath(spec, {
      ...opts,
      onStart(files) {
        const missing = files.filter((f) => !f.cached);
        const total = missing.reduce((a, f) => a + f.size, 0);
        if (opts.quiet || missing.length === 0) return;
        io.stderr.write(`downloading ${missing.length} file${missing.length === 1 ? '' : 's'} of ${spec} (${formatBytes(total)})\n`);
        bar = new ProgressBar(io.stderr, { total, rateUnit: 'B/s', formatCount: formatBytes, intervalMs: 5_000 });
      },
      onProgress(p) {
        if (!bar) return;
        const before = done.get(p.file) ?? 0;
        done.set(p.file, p.loaded);
        base += p.loaded - before;
        (bar as ProgressBar).update(base, { tokens: Math.max(0, p.loaded - before), extra: { file: p.file } });
      },
    });
  } finally {
    (bar as ProgressBar | null)?.done();
  }
}

export async function downloadCommand(argv: string[], io: CliIO): Promise<number> {
  const v = parseCommand(DOWNLOAD_SPEC, argv);
  if (v === null) {
    io.stdout.write(commandUsage(DOWNLOAD_SPEC));
    return 0;
  }
  const spec = (v._ as string[])[0];
  if (!parseHubRef(spec)) {
    throw new UsageError(`download: '${spec}' is not a hub name: expected org/name, org/name@revision or org/name/file.gguf`, 'download');
  }
  const cacheDir = str(v, 'cache-dir');
  // a local folder of that name does not stop a download
  const dir = await resolveWithProgress(io, spec, {
    download: true,
    quiet: flag(v, 'quiet'),
    ...(cacheDir !== undefined ? { cacheDir } : {}),
    forceHub: true,
  });
  io.stdout.write(`${dir}\n`);
  return 0;
}
