#!/bin/bash
# Issue 11, one device call: do Dawn's bounds clamps and workgroup-memory zeroing cost our kernels time? Batch-1 decode
# (f32/bf16/q8) and prefill with the default device and with MAMBA_TS_WEBGPU_DAWN_TOGGLES=disable_robustness,disable_workgroup_init,
# alternating; parity tests with the toggles on; then the official anchor and ours at the 2.8b shapes.
# run: BUDGET=300 bash scripts/gpu-machine.sh bash scripts/gpu-toggles.sh  (carry as docs/gpu-machine.md; .anchors for the anchor)
set -u
BUDGET=${BUDGET:-300}
source scripts/gpu-steps.sh
T=disable_robustness,disable_workgroup_init
DK="node dist/bench/decode-kernels.bench.js --presets mamba-130m,mamba2-130m --weights f32,bf16,q8 --decode v1 --gen 128 --reps 3"
for round in 1 2; do
  step 40 $DK
  step 40 env MAMBA_TS_WEBGPU_DAWN_TOGGLES=$T $DK
done
step 40 node --test dist/test/backend/webgpu-toggles.test.js
step 60 env MAMBA_TS_WEBGPU_DAWN_TOGGLES=$T node --test dist/test/backend/webgpu-models.test.js dist/test/backend/webgpu-kv-cache.test.js dist/test/backend/webgpu-q8.test.js
step 40 node dist/bench/webgpu.bench.js --presets mamba2-130m --weights f32 --prompt 2048 --gen 8 --reps 3 --batch 1
step 40 env MAMBA_TS_WEBGPU_DAWN_TOGGLES=$T node dist/bench/webgpu.bench.js --presets mamba2-130m --weights f32 --prompt 2048 --gen 8 --reps 3 --batch 1
step 90 bash scripts/gpu-anchor-2.8b.sh
step 45 node dist/src/cli/main.js bench --backend webgpu --arch mamba2 --size 2.8b --dtype f32 --prompt 2048 --gen 32 --reps 2
step 45 env MAMBA_TS_WEBGPU_DAWN_TOGGLES=$T node dist/src/cli/main.js bench --backend webgpu --arch mamba2 --size 2.8b --dtype f32 --prompt 2048 --gen 32 --reps 2
# on a card with room for it (an H200): llama-130m's 64k x 32 point with a bf16 KV cache (32 x 2.25 GiB)
GIB=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1 | awk '{printf "%d", $1/1024 - 3}')
[ "$GIB" -gt 100 ] && step 90 node dist/bench/webgpu-context.bench.js --models mamba2-130m,llama-130m --contexts 65536 --batch 32 --kv-cache bf16 --max-seconds 4 --gpu-memory-gib $GIB --out $OUT/ctx64k
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|FAIL|max \||rc=|SKIP|===|^# (pass|fail)|not ok|dawn:" $LOG | grep -v "profiled step" | cut -c1-200 | tail -80
