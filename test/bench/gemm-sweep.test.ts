/**
 * bench/gemm-sweep.bench.ts runs on this machine's adapter (SwiftShader here) at a tiny size: the baselines, a
 * forced '_g' configuration with split-K (SwiftShader's subgroups of 4 hold the 4 threads of a row), a refused one
 * ('_g' with 16 threads a row), and phase 1 cut by --max-configs; its JSON ranks checked results and holds a
 * tuned table that `checkTuned` accepts, keyed by the exact shape (M ≤ 128).
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkTuned } from '../../src/backend/webgpu/kernels/gemm_blocked.js';
import { useSoftwareVulkanIfNoDriverChosen, webgpuOrReason } from '../backend/webgpu-context.js';

useSoftwareVulkanIfNoDriverChosen();
const probe = await webgpuOrReason({ kernels: 'tiled' });
const sgFixed = typeof probe === 'string' ? 0 : probe.rt.subgroupFixed;
if (typeof probe !== 'string') probe.destroy();

describe('gemm-sweep bench', () => {
  it('runs at --sizes tiny: baselines, a forced _g config with split-K, a refused one; ranked JSON and a tuned table', (t: TestContext) => {
    if (typeof probe === 'string') return t.skip(probe);
    const dir = mkdtempSync(join(tmpdir(), 'gemm-sweep-'));
    try {
      const bench = fileURLToPath(new URL('../../bench/gemm-sweep.bench.js', import.meta.url));
      const json = join(dir, 'sweep.json');
      const out = execFileSync(process.execPath, [bench, '--sizes', 'tiny', '--m', '37', '--budget-s', '60', '--max-configs', '5', '--trial-ms', '1', '--trials', '1', '--phases', '1', '--configs', '64x16k16t8x4_g_v@2,128x128k8t8x8_g', '--json', json], { encoding: 'utf8', timeout: 120_000, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
      const j = JSON.parse(readFileSync(json, 'utf8'));
      assert.equal(j.shapes.length, 2, out);
      assert.equal(j.configs_run, 5);
      assert.match(j.stopped, /--max-configs 5/);
      for (const s of j.shapes) {
        const ok = s.results.filter((r: { status: string }) => r.status === 'ok');
        assert.ok(ok.some((r: { config: string }) => r.config === 'tiled') && ok.some((r: { config: string }) => r.config === 'blocked'), `${s.shape}: ${JSON.stringify(s.results)}`);
        assert.ok(ok.length >= 4, `${s.shape}: ${ok.length} ranked`);
        for (let i = 1; i < ok.length; i++) assert.ok(ok[i].us >= ok[i - 1].us, 'ranked by time');
        for (const r of ok) assert.ok(r.max_rel_err <= 1e-4 && r.tflops > 0 && (!j.timestamps || r.gpu_us > 0), JSON.stringify(r));
        // x lives in the activation pool (as in a model): '_v' says which loads ran
        assert.ok(['vec4', 'scalar'].includes(s.results.find((r: { config: string }) => r.config === '64x16k16t8x4_g_v@2')?.xv ?? 'scalar'));
        const g = s.results.find((r: { config: string }) => r.config === '64x16k16t8x4_g_v@2');
        if (sgFixed > 0 && sgFixed % 4 === 0) assert.equal(g?.status, 'ok', JSON.stringify(g));
        assert.equal(s.key, `37x${s.K}x${s.N}`);
      }
      assert.ok(j.refused.some((r: { config: string; reason: string }) => r.config === '128x128k8t8x8_g' && /fixed subgroup size/.test(r.reason)), JSON.stringify(j.refused));
      const tuned = checkTuned(j.tuned, 'the sweep JSON');
      assert.deepEqual(Object.keys(tuned).sort(), ['37x40x132', '37x72x40']);
      assert.match(out, /tuned table/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
