#!/bin/bash
# Issue 11, session 34, the last call: main with s34-batch, s34-mega2 and s34-big merged. In priority order:
# (1) the WebGPU tests on the card with 'mega-r32-o8' the default on NVIDIA (8f50bfd) — the decode, Δ, submit, trace,
#     mega, models, bf16 matvec and weights files; (2) the helper scripts, each under its own budget: gpu-s34b.sh (mega2
#     variants vs mega-r32-o8), gpu-s34c.sh (batched decode, modes alternated), gpu-s34d.sh (2.8b: honest stream table,
#     step kernels); (3) the rebound first step (webgpu-wall --rebind 0,1).
# run: BUDGET=430 bash scripts/gpu-machine.sh bash scripts/gpu-s34final.sh
set -u
BUDGET=${BUDGET:-430}
source scripts/gpu-steps.sh
T=dist/test/backend
step 85 node --test $T/webgpu-decode.test.js $T/webgpu-delta.test.js $T/webgpu-submit.test.js $T/webgpu-trace.test.js $T/webgpu-decode-mega.test.js $T/webgpu-models.test.js $T/webgpu-matvec-bf16.test.js $T/webgpu-weights.test.js
for S in ${SUBS:-gpu-s34c.sh:80 gpu-s34d.sh:90 gpu-s34b.sh:60}; do
  F=${S%%:*}; B=${S##*:}
  [ -f scripts/$F ] && step $((B + 5)) env SKIP_DIST=1 BUDGET=$B LOG=$LOG bash scripts/$F > /dev/null
done
step 40 node dist/bench/webgpu-wall.js --presets llama-130m,mamba2-130m --paths cli --rebind 0,1 --reps 5 --gen 16
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|GPU time per decode step|batch (1|2|4|8|16|32|64) \[|FAIL|WRONG|rc=|SKIP|===|^# (pass|fail)|not ok|profiled step|median|probe" $LOG | cut -c1-300 | tail -190
