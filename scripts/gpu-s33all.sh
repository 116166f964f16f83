#!/bin/bash
# Issue 11, session 33, call 1 on a build of main + the session's helper branches (s33-mega1: Mamba-1's mega in 3
# phases; s33-wall: leanHost; s33-attn: CPU only): the anchors, then mega for Mamba-2 (the greedy step as one dispatch,
# untimed since session 32) and Mamba-1 (3 phases vs session 32's 4, '-p4'), the mega tests, then the wall-vs-GPU lines
# of gpu-s33c.sh (1) and (2, llama). run: BUDGET=560 bash scripts/gpu-machine.sh bash scripts/gpu-s33all.sh
set -u
BUDGET=${BUDGET:-560}
source scripts/gpu-steps.sh
step ${ANCHOR_S:-150} python3 .anchors/official_kernels_bench.py .anchors
step 80 node dist/bench/decode-kernels.bench.js --presets mamba2-130m --weights f32,bf16 --gen 128 --reps 5 --decode v1,mega,mega-o8,mega-r16,mega-r16-o8
step 110 node dist/bench/decode-kernels.bench.js --presets mamba-130m --weights f32,bf16 --gen 128 --reps 5 --decode v1,mega-p4,mega,mega-r16-p4,mega-r16,mega-r16-o8
step 70 node --test dist/test/backend/webgpu-decode-mega.test.js dist/test/backend/webgpu-models.test.js
CLI="node dist/src/cli/main.js bench --backend webgpu"
step 80 node dist/bench/webgpu-wall.js --presets llama-130m,mamba2-130m --paths cli --lean 1,0 --reps 5 --gen 16 --gpu-ms
for LEAN in 1 0; do step 50 env MAMBA_TS_WEBGPU_LEAN_HOST=$LEAN $CLI --arch llama --prompt 2048 --gen 16 --reps 7; done
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "tok/s|FAIL|WRONG|max \||rc=|SKIP|===|^# (pass|fail)|not ok|profiled step|probe|MEGA|LM HEAD|limits|median|GPU [0-9.]+ ms|WebGPU calls|^rep|prefill [0-9]+ +[0-9]|decode [0-9]+ +[0-9]" $LOG | cut -c1-400 | tail -140
