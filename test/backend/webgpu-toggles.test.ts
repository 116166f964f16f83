/**
 * Dawn device toggles (CreateWebGpuOptions.dawnToggles, MAMBA_TS_WEBGPU_DAWN_TOGGLES): how they become the `webgpu`
 * package's flags, and a device made with the measurement toggles (no bounds clamps, no workgroup-memory zeroing)
 * giving the same logits as a default one — our kernels must not rely on either.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createWebGpuBackend, dawnFlags, DEFAULT_DAWN_TOGGLES, parseDawnToggles, WebGpuUnavailableError, type WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { loadModel } from '../../src/index.js';
import { hfFixture, maxAbsDiff } from '../helpers.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { useSoftwareVulkanIfNoDriverChosen, webgpuOrReason } from './webgpu-context.js';

describe('dawn toggles: flags', () => {
  it('parses the environment list (a leading - disables) and refuses what is not a toggle name', () => {
    assert.deepEqual(parseDawnToggles('disable_robustness, disable_workgroup_init,-timestamp_quantization'), { enable: ['disable_robustness', 'disable_workgroup_init'], disable: ['timestamp_quantization'] });
    assert.deepEqual(parseDawnToggles(''), { enable: [], disable: [] });
    assert.deepEqual(parseDawnToggles(' none '), {});
    assert.throws(() => parseDawnToggles('disable robustness'), /MAMBA_TS_WEBGPU_DAWN_TOGGLES: "disable robustness" is not a Dawn toggle name/);
    assert.throws(() => parseDawnToggles('a=b'), /"a=b"/);
  });
  it('builds the package flags: allow_unsafe_apis with any toggle, profiling lifts timestamp quantization', () => {
    assert.deepEqual(dawnFlags(false, undefined, false), []);
    assert.deepEqual(dawnFlags(true, undefined, false), ['enable-dawn-features=allow_unsafe_apis']);
    assert.deepEqual(dawnFlags(false, undefined, true), ['enable-dawn-features=allow_unsafe_apis', 'disable-dawn-features=timestamp_quantization']);
    assert.deepEqual(dawnFlags(false, { enable: ['disable_robustness'] }, false), ['enable-dawn-features=allow_unsafe_apis,disable_robustness']);
    assert.deepEqual(dawnFlags(true, { enable: ['allow_unsafe_apis', 'x'], disable: ['timestamp_quantization'] }, true), ['enable-dawn-features=allow_unsafe_apis,x', 'disable-dawn-features=timestamp_quantization']);
  });
});

useSoftwareVulkanIfNoDriverChosen();
const plain = await webgpuOrReason({ dawnToggles: {} });
let fast: WebGpuBackend | string;
try {
  fast = await createWebGpuBackend(process.env.MAMBA_TS_WEBGPU_DAWN_TOGGLES ? { dawnToggles: DEFAULT_DAWN_TOGGLES } : {}); // the default device
} catch (e) {
  if (!(e instanceof WebGpuUnavailableError) || process.env.MAMBA_TS_REQUIRE_WEBGPU === '1') throw e;
  fast = e.message;
}
after(() => {
  for (const g of [plain, fast]) if (typeof g !== 'string') g.destroy();
});

describe('dawn toggles: a device without bounds clamps and workgroup zeroing', () => {
  it('is the default device: names its toggles and gives the logits and greedy tokens of a device without them', async (t) => {
    if (typeof plain === 'string') return t.skip(plain);
    if (typeof fast === 'string') return t.skip(fast);
    assert.match(fast.name, /\[dawn: disable_robustness,disable_workgroup_init\]/);
    assert.doesNotMatch(plain.name, /\[dawn:/);
    for (const name of ['mamba2-tiny', 'bamba-tiny']) {
      const a: CausalLM = (await loadModel(hfFixture(name), { backend: plain })).lm;
      const b: CausalLM = (await loadModel(hfFixture(name), { backend: fast })).lm;
      const ids = [[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9]];
      const [fa, fb] = [await a.forward(ids), await b.forward(ids)];
      assert.equal(maxAbsDiff(fa.logits.data, fb.logits.data), 0, `${name}: prefill logits`);
      const [sa, sb] = [a.createState(1), b.createState(1)];
      await a.advance(ids, sa);
      await b.advance(ids, sb);
      assert.deepEqual(await b.greedyChain!([[7]], sb, 4), await a.greedyChain!([[7]], sa, 4), `${name}: greedy tokens`);
    }
  });
});
