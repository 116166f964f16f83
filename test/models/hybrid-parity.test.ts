/** HF parity of Bamba (Mamba-2 + attention hybrid) and the Llama Transformer baseline. */
import { parityTests } from './parity-harness.js';

const ssdForms = [
  { label: 'chunked SSD', opts: {} },
  { label: 'quadratic (attention) form', opts: { ssd: { algorithm: 'quadratic' as const } } },
];

parityTests({ model: 'bamba-tiny', variants: ssdForms });
// n_groups 2, 6 mamba heads, 3 attention heads / 1 KV head, attention at layer 0, chunk 12, untied head
parityTests({ model: 'bamba-variant', variants: ssdForms });
parityTests({ model: 'llama-tiny' });
