#!/bin/bash
# Issue 11, session 29's last device call: (1) Dawn toggles (no bounds clamps, no workgroup-memory zeroing) on batch-1
# decode, alternating with the default device; (2) prefill 2048 submitted in pieces (submitEvery) vs one submit;
# (3) the WebGPU streaming bench (matvec rate, per-dispatch cost) and its decode candidates end to end; (4) parity with the toggles on; (5) the official
# anchor and ours at the 2.8b shapes; (6) on a card with room (H200): llama-130m at 64k x 32 with a bf16 KV cache.
# run: BUDGET=420 bash scripts/gpu-machine.sh bash scripts/gpu-s29.sh  (carry as docs/gpu-machine.md, with .anchors)
set -u
BUDGET=${BUDGET:-420}
source scripts/gpu-steps.sh
T=disable_robustness,disable_workgroup_init
DK="node dist/bench/decode-kernels.bench.js --presets mamba-130m,mamba2-130m --weights f32,bf16 --gen 128 --reps 3"
step 30 $DK --decode v1
step 30 env MAMBA_TS_WEBGPU_DAWN_TOGGLES=$T $DK --decode v1
for every in 0 48; do
  step 20 env MAMBA_TS_WEBGPU_SUBMIT_EVERY=$every node dist/src/cli/main.js bench --backend webgpu --arch mamba2 --prompt 2048 --gen 16 --reps 5
done
# the streaming bench's decode candidates end to end (unrolled loads, split-K, the subgroup loop with loads in flight)
step 60 $DK --decode v1,v1-u4,v1-k2,v1-k4,v2-r1w128l4n
step 70 node dist/bench/webgpu-stream.bench.js --budget-s 45 --json $OUT/stream.json
for every in 0 48; do
  step 20 env MAMBA_TS_WEBGPU_SUBMIT_EVERY=$every node dist/src/cli/main.js bench --backend webgpu --arch llama --prompt 2048 --gen 16 --reps 5
done
step 40 env MAMBA_TS_WEBGPU_DAWN_TOGGLES=$T node --test dist/test/backend/webgpu-toggles.test.js dist/test/backend/webgpu-submit.test.js dist/test/backend/webgpu-decode-candidates.test.js dist/test/backend/webgpu-models.test.js
step 80 bash scripts/gpu-anchor-2.8b.sh
step 40 node dist/src/cli/main.js bench --backend webgpu --arch mamba2 --size 2.8b --dtype f32 --prompt 2048 --gen 32 --reps 2
GIB=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1 | awk '{printf "%d", $1/1024 - 3}')
[ "$GIB" -gt 100 ] && step 90 node dist/bench/webgpu-context.bench.js --models mamba2-130m,llama-130m --contexts 65536 --batch 32 --kv-cache bf16 --max-seconds 4 --gpu-memory-gib $GIB --out $OUT/ctx64k
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|FAIL|max \||rc=|SKIP|===|^# (pass|fail)|not ok|dawn:|GB/s|µs/dispatch" $LOG | grep -v "profiled step" | cut -c1-200 | tail -100
