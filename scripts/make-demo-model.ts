/**
 * Writes examples/demo-model: a small random-init Mamba-1 (HF layout) whose vocabulary matches the
 * byte-level BPE tokenizer in test/fixtures/tokenizer-bpe, so `npm run demo` shows the whole pipeline
 * (tokenize → prefill → streamed decode → detokenize) on a fresh clone, offline. Its weights are random:
 * the text it writes is noise. Real checkpoints (e.g. state-spaces/mamba-130m-hf) load the same way.
 *
 *   node dist/scripts/make-demo-model.js [outDir]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSafetensorsAtomic } from '../src/io/safetensors.js';
import { initMambaWeights, mambaConfigJson } from '../src/models/init.js';
import type { MambaConfig } from '../src/models/mamba.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = path.resolve(process.argv[2] ?? path.join(root, 'examples', 'demo-model'));
const config: MambaConfig = {
  source: 'hf', vocabSize: 2048, hiddenSize: 128, innerSize: 256, stateSize: 16, numLayers: 4,
  convKernel: 4, dtRank: 8, useBias: false, useConvBias: true, normEps: 1e-5, tieEmbeddings: true, eosTokenIds: [0],
};
fs.mkdirSync(out, { recursive: true });
writeSafetensorsAtomic(path.join(out, 'model.safetensors'), initMambaWeights(config, { seed: 2024, initializerRange: 0.02 }), { format: 'pt' });
fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify(mambaConfigJson(config), null, 2) + '\n');
fs.copyFileSync(path.join(root, 'test', 'fixtures', 'tokenizer-bpe', 'tokenizer.json'), path.join(out, 'tokenizer.json'));
console.log(`wrote a random-init demo model (${config.numLayers} layers, hidden ${config.hiddenSize}, vocab ${config.vocabSize}) to ${out}`);
