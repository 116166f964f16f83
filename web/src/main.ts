/** The playground page: controls, streaming output, and the Δ heatmap; the model runs in worker.ts. */
import { DeltaHeatmap } from './heatmap.js';
import { parseHubRef } from '../../src/io/hub-names.js';
import type { Capabilities, FromWorker, ModelInfo, SamplingSettings, ToWorker } from './protocol.js';

const $ = <T extends HTMLElement>(id: string) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};

const ui = {
  backend: $<HTMLSelectElement>('backend'),
  backendNote: $('backend-note'),
  pickFolder: $<HTMLInputElement>('pick-folder'),
  pickFiles: $<HTMLInputElement>('pick-files'),
  urlForm: $<HTMLFormElement>('url-form'),
  url: $<HTMLInputElement>('url'),
  progress: $<HTMLProgressElement>('progress'),
  status: $('status'),
  prompt: $<HTMLTextAreaElement>('prompt'),
  promptMode: $<HTMLSelectElement>('prompt-mode'),
  temperature: $<HTMLInputElement>('temperature'),
  topP: $<HTMLInputElement>('top-p'),
  maxTokens: $<HTMLInputElement>('max-tokens'),
  seed: $<HTMLInputElement>('seed'),
  captureDelta: $<HTMLInputElement>('capture-delta'),
  generate: $<HTMLButtonElement>('generate'),
  stop: $<HTMLButtonElement>('stop'),
  stats: $('stats'),
  output: $<HTMLPreElement>('output'),
  perLayer: $<HTMLInputElement>('per-layer'),
  heatmap: $<HTMLCanvasElement>('heatmap'),
};
const heatmap = new DeltaHeatmap(ui.heatmap, $('tooltip'), $<HTMLCanvasElement>('legend'));

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'mamba-ts model' });
const send = (m: ToWorker) => worker.postMessage(m);

let info: ModelInfo | null = null;
let caps: Capabilities | null = null;
let state: 'idle' | 'loading' | 'generating' = 'idle';
let genSpan: HTMLSpanElement | null = null;
let generated: number[] = [];
let firstTokenAt = 0;
let promptIds: number[] = [];
/** max new tokens of the generation running (the heatmap lays out prompt + these columns) */
let maxNewTokens = 0;
/** the last generation's 'done' message (for tests, benchmarks and the console) */
let lastRun: Extract<FromWorker, { type: 'done' }> | null = null;
/** messages with tokens or Δ received since the generation started (a batch counts once) */
let streamMessages = 0;

function setStatus(text: string, error = false): void {
  ui.status.textContent = text;
  ui.status.classList.toggle('error', error);
}

function setState(s: typeof state): void {
  state = s;
  ui.generate.disabled = s !== 'idle' || info === null;
  ui.stop.disabled = s !== 'generating';
  for (const el of [ui.pickFolder, ui.pickFiles, ui.backend]) el.disabled = s !== 'idle';
  (ui.urlForm.querySelector('button') as HTMLButtonElement).disabled = s !== 'idle';
}

function describeBackends(): void {
  if (!caps) return;
  const gpu = ui.backend.querySelector('option[value="webgpu"]') as HTMLOptionElement;
  gpu.disabled = caps.webgpu !== null;
  gpu.textContent = caps.webgpu === null ? 'WebGPU' : 'WebGPU (unavailable)';
  if (gpu.disabled && ui.backend.value === 'webgpu') ui.backend.value = 'wasm';
  const notes: string[] = [];
  if (caps.webgpu !== null) notes.push(`WebGPU: ${caps.webgpu}`);
  notes.push(caps.wasmThreads ? `WASM: ${caps.cores} threads` : 'WASM: 1 thread (page not cross-origin isolated)');
  ui.backendNote.textContent = notes.join(' · ');
}

function load(source: Extract<ToWorker, { type: 'load' }>['source']): void {
  info = null;
  setState('loading');
  ui.progress.hidden = false;
  ui.progress.removeAttribute('value');
  const what = source.kind === 'url' ? source.url : source.kind === 'hub' ? `${source.name} from ${source.endpoint}` : source.files.length === 1 ? source.files[0].name : `${source.files.length} files`;
  setStatus(`Loading ${what} on ${ui.backend.selectedOptions[0].textContent}…`);
  const backend = ui.backend.value as 'cpu' | 'wasm' | 'webgpu';
  send({ type: 'load', source, backend, threads: backend === 'wasm' ? wasmThreads : undefined });
}

function parseIds(text: string): number[] {
  const parts = text.split(/[\s,]+/).filter((p) => p !== '');
  const ids = parts.map((p) => Number(p));
  const bad = parts.find((p, i) => !Number.isInteger(ids[i]) || ids[i] < 0);
  if (bad !== undefined) throw new Error(`"${bad}" is not a token id (give non-negative integers separated by commas or spaces)`);
  if (info && ids.some((id) => id >= info!.vocabSize)) throw new Error(`token ids must be below the vocabulary size ${info.vocabSize}`);
  return ids;
}

function num(input: HTMLInputElement, name: string, min: number, max: number): number {
  const v = Number(input.value);
  if (!Number.isFinite(v) || v < min || v > max) throw new Error(`${name} must be a number in [${min}, ${max}]`);
  return v;
}

function startGeneration(): void {
  try {
    if (!info) throw new Error('load a model first');
    const mode = ui.promptMode.value;
    if (mode === 'text' && !info.tokenizer) throw new Error('this model folder has no tokenizer.json: give token ids');
    const prompt = mode === 'ids' ? parseIds(ui.prompt.value) : ui.prompt.value;
    if (prompt.length === 0) throw new Error('the prompt is empty');
    const sampling: SamplingSettings = {
      temperature: num(ui.temperature, 'temperature', 0, 100),
      topP: num(ui.topP, 'top-p', 0.0001, 1),
      maxNewTokens: Math.round(num(ui.maxTokens, 'max tokens', 1, 100000)),
      seed: Math.round(num(ui.seed, 'seed', 0, 2 ** 32 - 1)),
    };
    ui.output.textContent = '';
    ui.output.dataset.state = 'running';
    delete ui.output.dataset.generated;
    ui.stats.textContent = 'prefill…';
    generated = [];
    firstTokenAt = 0;
    lastRun = null;
    streamMessages = 0;
    maxNewTokens = sampling.maxNewTokens;
    setState('generating');
    setStatus(`Generating on ${info.backend}…`);
    send({ type: 'generate', prompt, sampling, delta: ui.captureDelta.checked, streamMs, stepDelta });
  } catch (e) {
    setStatus((e as Error).message, true);
  }
}

worker.onmessage = (e: MessageEvent<FromWorker>) => {
  if (['batch', 'token', 'delta'].includes(e.data.type)) streamMessages++;
  handle(e.data);
};

function handle(m: FromWorker): void {
  switch (m.type) {
    case 'batch':
      for (const one of m.messages) handle(one);
      break;
    case 'capabilities':
      caps = m.caps;
      describeBackends();
      break;
    case 'progress': {
      ui.progress.hidden = false;
      if (m.total > 0) {
        ui.progress.max = m.total;
        ui.progress.value = m.loaded;
      }
      const mb = (n: number) => (n / 2 ** 20).toFixed(1);
      setStatus(`Reading ${m.file}: ${mb(m.loaded)}${m.total ? ` / ${mb(m.total)}` : ''} MiB`);
      break;
    }
    case 'loaded':
      info = m.info;
      ui.progress.hidden = true;
      if (!info.tokenizer) ui.promptMode.value = 'ids';
      setStatus(
        `Loaded ${info.modelType} from ${info.location}: ${info.layers} layers, ${(info.parameters / 1e6).toFixed(2)} M parameters, ` +
          `vocabulary ${info.vocabSize}${info.tokenizer ? '' : ' (no tokenizer: prompts are token ids)'} · ${info.backend} · ${(info.loadMs / 1000).toFixed(2)} s`,
      );
      ui.status.dataset.loaded = info.backend;
      setState('idle');
      break;
    case 'prompt': {
      promptIds = m.ids;
      heatmap.reset(m.labels, m.labels.length + maxNewTokens);
      const p = document.createElement('span');
      p.className = 'prompt';
      p.textContent = info?.tokenizer && ui.promptMode.value === 'text' ? ui.prompt.value : `[${m.ids.join(', ')}]`;
      genSpan = document.createElement('span');
      genSpan.className = 'gen';
      ui.output.replaceChildren(p, genSpan);
      break;
    }
    case 'token': {
      generated.push(m.id);
      if (generated.length === 1) firstTokenAt = performance.now();
      if (genSpan) genSpan.textContent += info?.tokenizer ? m.text : ` ${m.id}`;
      heatmap.addToken(m.label);
      const secs = (performance.now() - firstTokenAt) / 1000;
      const rate = generated.length > 1 && secs > 0 ? `${((generated.length - 1) / secs).toFixed(1)} tok/s` : '';
      ui.stats.textContent = `${generated.length} tokens ${rate}`;
      break;
    }
    case 'delta':
      heatmap.addDelta(m.layer, m.values);
      break;
    case 'done': {
      lastRun = m;
      ui.output.dataset.state = 'done';
      ui.output.dataset.generated = m.generated.join(',');
      ui.output.dataset.prompt = promptIds.join(',');
      const { layers, columns } = heatmap.shape;
      ui.heatmap.dataset.layers = String(layers);
      ui.heatmap.dataset.columns = String(columns);
      ui.stats.textContent =
        `${m.generated.length} tokens (${m.finishReason}) · prefill ${m.prefillMs.toFixed(0)} ms (${promptIds.length} tokens) · ` +
        `decode ${m.tokensPerSecond.toFixed(1)} tok/s`;
      setStatus(`Done on ${info?.backend ?? '?'}.`);
      setState('idle');
      break;
    }
    case 'error':
      setStatus(`${m.during === 'load' ? 'Could not load the model' : m.during === 'generate' ? 'Generation failed' : 'Error'}: ${m.message}`, true);
      if (m.during === 'load') {
        ui.progress.hidden = true;
        info = null;
      }
      if (m.during === 'generate') ui.output.dataset.state = 'error';
      setState('idle');
      break;
  }
}
worker.onerror = (e) => {
  setStatus(`The model worker failed: ${e.message}`, true);
  setState('idle');
};

ui.pickFolder.addEventListener('change', () => ui.pickFolder.files?.length && load({ kind: 'files', files: [...ui.pickFolder.files] }));
ui.pickFiles.addEventListener('change', () => ui.pickFiles.files?.length && load({ kind: 'files', files: [...ui.pickFiles.files] }));
// files dropped on the page: a GGUF file, or the files of a model folder
document.addEventListener('dragover', (e) => {
  if (e.dataTransfer?.types.includes('Files')) e.preventDefault();
});
document.addEventListener('drop', (e) => {
  const files = [...(e.dataTransfer?.files ?? [])];
  if (files.length === 0) return;
  e.preventDefault();
  if (state === 'idle') load({ kind: 'files', files });
});
ui.urlForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const url = ui.url.value.trim();
  if (!url) return setStatus('Enter the URL of a model folder or a .gguf file, or a Hugging Face hub name (org/name).', true);
  // org/name[@revision]: the hub (a folder URL starts with a scheme, "/" or "./", or ends with "/")
  if (parseHubRef(url)) return load({ kind: 'hub', name: url, endpoint: hubEndpoint });
  let resolved: string;
  try {
    resolved = new URL(url, location.href).href; // relative to the page (the worker's own URL is elsewhere)
  } catch {
    return setStatus(`Not a URL: ${url}`, true);
  }
  load({ kind: 'url', url: resolved });
});
ui.generate.addEventListener('click', startGeneration);
ui.stop.addEventListener('click', () => send({ type: 'stop' }));
ui.prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !ui.generate.disabled) startGeneration();
});
ui.perLayer.addEventListener('change', () => heatmap.setPerLayer(ui.perLayer.checked));
heatmap.setPerLayer(ui.perLayer.checked);

// for tests and the console: the heatmap's numbers, its draw counts and a full redraw (to compare pixels with the
// incremental draws'), the last generation's result and timings, how many messages brought its tokens and Δ
(window as unknown as { mambaPlayground: unknown }).mambaPlayground = {
  deltaValues: () => heatmap.values(),
  heatmapStats: () => heatmap.stats,
  redrawHeatmap: () => heatmap.redrawFull(),
  lastRun: () => lastRun,
  streamMessages: () => streamMessages,
};

// ?model=URL&backend=wasm&prompt=… prefill the controls (shareable links); ?hub=URL sets the hub (a mirror);
// ?threads=N: the wasm backend's threads (default: every core the browser reports); ?stream=MS: tokens and Δ come
// from the worker in batches at most this often (default 50; 0 = every token and layer as it comes); ?stepdelta=0: Δ
// through the op sequence, not the fused decode step (as before issue 18's fix; the browser-decode bench compares)
const q = new URLSearchParams(location.search);
const hubEndpoint = q.get('hub') ?? 'https://huggingface.co';
const wasmThreads = q.get('threads') !== null && Number.isInteger(Number(q.get('threads'))) && Number(q.get('threads')) >= 1 ? Number(q.get('threads')) : undefined;
const streamMs = q.get('stream') !== null && Number(q.get('stream')) >= 0 ? Number(q.get('stream')) : undefined;
const stepDelta = q.get('stepdelta') === '0' ? false : undefined;
if (q.get('threads') !== null && wasmThreads === undefined) setStatus(`?threads=${q.get('threads')}: expected a positive integer; using every core`, true);
if (q.get('model')) ui.url.value = q.get('model')!;
if (q.get('backend')) ui.backend.value = q.get('backend')!;
if (q.get('prompt')) ui.prompt.value = q.get('prompt')!;
setState('idle');
