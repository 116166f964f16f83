#!/bin/bash
# Issue 11, the wall time above the GPU time (session 33, branch s33-wall). Before: H100 session 31 — llama-130m prefill
# 2048 (webgpu.bench) 38.5 ms of wall for 24.2 ms of GPU; the CLI's llama prefill ~70 ms (reps 1182, 97, 75, 73, 69, 70,
# 68); the CLI's mamba2 decode after a prefill 334 / 737 tok/s against 985–1,048 from decode-kernels.bench. Session 33's
# host side (GpuRuntime.leanHost, the default; MAMBA_TS_WEBGPU_LEAN_HOST=0 = before): each upload written once per
# submit cycle (a llama prefill wrote 46.2 MB through writeBuffer, now 0.58 MB), the buffers of recorded steps and
# chains reused (the CLI's rep made 4–5 buffers and 2–9 bind groups per decode, now none); the CLI warms up with a whole
# run; and (opt-in, MAMBA_TS_WEBGPU_REBIND=1) a fresh state's first step rebound from the last recorded one instead of run.
# In priority order (the step limits add up to more than BUDGET: the last steps are skipped when it runs out): (1) the
# CLI's path in parts, wall against the GPU ms of a profiled prefill, lean vs before and rebind off vs on interleaved in
# one process (bench/webgpu-wall.ts); (2) session 31's CLI runs, lean, before, rebound; (3) where a fresh state's decode goes
# (bench/webgpu-first-step.ts); (4) the lean side's parity on the card; (5) the bench's path, the CLI traced, webgpu.bench.
# run: BUDGET=560 bash scripts/gpu-machine.sh bash scripts/gpu-s33c.sh  (carry .gl, .carry/node.xz, .carry/nm, .exp/dist.tar.xz)
set -u
BUDGET=${BUDGET:-560}
source scripts/gpu-steps.sh
CLI="node dist/src/cli/main.js bench --backend webgpu"
# (1) wall per prefill / decode call with its WebGPU calls; leanHost on and off alternating, the GPU ms of a profiled prefill
step 80 node dist/bench/webgpu-wall.js --presets llama-130m,mamba2-130m --paths cli --lean 1,0 --reps 5 --gen 16 --gpu-ms
step 60 node dist/bench/webgpu-wall.js --presets llama-130m,mamba2-130m --paths cli --rebind 0,1 --reps 5 --gen 16
# (2) the CLI as a user runs it (session 31's commands): lean (the default), before, and lean with the first step rebound
for V in MAMBA_TS_WEBGPU_LEAN_HOST=1 MAMBA_TS_WEBGPU_LEAN_HOST=0 MAMBA_TS_WEBGPU_REBIND=1; do
  step 50 env $V $CLI --arch llama --prompt 2048 --gen 16 --reps 7
  step 50 env $V $CLI --arch mamba2 --prompt 2048 --gen 128 --reps 3
done
# (3) a fresh state's decode in parts: prefill, first step (recorded, read back), n−1 replayed, n more (with the trace)
step 45 env MAMBA_TS_WEBGPU_TRACE=1 node dist/bench/webgpu-first-step.js --preset mamba2-130m --prompt 2048 --gen 16 --reps 7 --dispose
# (4) the lean host side on the card: same logits and tokens as before, the CLI's tokens = generate()'s
step 60 node --test dist/test/backend/webgpu-trace.test.js dist/test/backend/webgpu-submit.test.js dist/test/cli/bench.test.js
# (5) lower priority: the bench's path, the CLI traced (its WebGPU calls per rep), --gen 16, llama's first step,
# webgpu.bench's own prefill rows (session 29/31's numbers) lean then before
step 60 node dist/bench/webgpu-wall.js --presets llama-130m,mamba2-130m --paths bench --lean 1,0 --reps 5 --gen 16
step 45 env MAMBA_TS_WEBGPU_TRACE=1 $CLI --arch llama --prompt 2048 --gen 16 --reps 3
step 45 env MAMBA_TS_WEBGPU_TRACE=1 $CLI --arch mamba2 --prompt 2048 --gen 128 --reps 3
for LEAN in 1 0; do step 45 env MAMBA_TS_WEBGPU_LEAN_HOST=$LEAN $CLI --arch mamba2 --prompt 2048 --gen 16 --reps 7; done
step 45 env MAMBA_TS_WEBGPU_TRACE=1 node dist/bench/webgpu-first-step.js --preset llama-130m --prompt 2048 --gen 16 --reps 5 --dispose
for LEAN in 1 0; do step 70 env MAMBA_TS_WEBGPU_LEAN_HOST=$LEAN node dist/bench/webgpu.bench.js --presets llama-130m,mamba2-130m --weights f32 --prompt 2048 --gen 32 --reps 5; done
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|FAIL|WRONG|rc=|SKIP|===|^# (pass|fail)|not ok|median|GPU [0-9.]+ ms|WebGPU calls|^rep|prefill [0-9]+ +[0-9]|decode [0-9]+ +[0-9]" $LOG | cut -c1-400 | tail -150
