/** HF parity of the Mamba-1 family (Mamba, FalconMamba) and Mamba-2. */
import { parityTests } from './parity-harness.js';

const mambaScans = [
  { label: 'sequential scan', opts: { scan: { algorithm: 'sequential' as const, chunkSize: 64 } } },
  { label: 'chunked scan, chunk 8', opts: { scan: { algorithm: 'chunked' as const, chunkSize: 8 } } },
];
const ssdForms = [
  { label: 'chunked SSD', opts: {} },
  { label: 'chunked SSD, chunk 7', opts: { ssd: { algorithm: 'chunked' as const, chunkSize: 7 } } },
  { label: 'quadratic (attention) form', opts: { ssd: { algorithm: 'quadratic' as const } } },
  { label: 'recurrent form', opts: { ssd: { algorithm: 'recurrent' as const } } },
];

parityTests({ model: 'mamba-tiny', variants: mambaScans });
parityTests({ model: 'mamba-tiny-sharded', ref: 'mamba-tiny' });
parityTests({ model: 'mamba-tiny-bf16', variants: mambaScans });
// in/out biases, conv 3, state 8, expand 3, dt rank 5, untied head, batch 3
parityTests({ model: 'mamba-variant', variants: mambaScans });
parityTests({ model: 'falcon-mamba-tiny', variants: mambaScans });
parityTests({ model: 'mamba2-tiny', variants: ssdForms });
// n_groups 2, 6 heads, chunk 10 (does not divide 41), biases, conv 3, time_step_limit (0.01, 0.5).
// HF's decode skips that clamp while its full forward applies it: clamp in decode too for the per-position check.
parityTests({ model: 'mamba2-groups', variants: ssdForms, stepOpts: { clampDecodeDt: true } });
