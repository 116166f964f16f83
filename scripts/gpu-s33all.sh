#!/bin/bash
# Issue 11, session 33, call 1 on main with the session's helper branches (s33-mega1: Mamba-1's mega in 3 phases;
# s33-bf16: MATVEC_BW, the bf16 matvec 'v1-b'; s33-wall: leanHost; s33-attn: CPU only): the anchors, then mega for
# Mamba-2 (the greedy step as one dispatch, untimed since session 32; -o8) and Mamba-1 (3 phases vs session 32's 4,
# '-p4'), the mega tests, then the bf16 stream table and 2.8b decode with v1-b (gpu-s33d.sh's first two steps).
# then the batched decode at 2–16 rows (s33-rows, decodeRows 0 vs 16) and the wall time (s33-wall) if the budget lasts. Call 2 (warm): gpu-s33c.sh, gpu-s33d.sh, gpu-s33e.sh.
# run: BUDGET=560 bash scripts/gpu-machine.sh bash scripts/gpu-s33all.sh
set -u
BUDGET=${BUDGET:-560}
source scripts/gpu-steps.sh
step ${ANCHOR_S:-150} python3 .anchors/official_kernels_bench.py .anchors
step 60 node dist/bench/decode-kernels.bench.js --presets mamba2-130m --weights f32,bf16 --gen 128 --reps 5 --decode v1,mega,mega-r16,mega-r16-o8
step 70 node dist/bench/decode-kernels.bench.js --presets mamba-130m --weights f32,bf16 --gen 128 --reps 5 --decode v1,mega-p4,mega,mega-r16,mega-r16-o8
step 70 node --test dist/test/backend/webgpu-decode-mega.test.js dist/test/backend/webgpu-models.test.js dist/test/backend/webgpu-matvec-bf16.test.js dist/test/backend/webgpu-matvec-rows.test.js
step 60 node dist/bench/decode-kernels.bench.js --presets mamba2-2.8b --weights bf16 --gen 32 --reps 3 --decode v1,v1-b,v1-b-r2u4
step 60 node dist/bench/webgpu.bench.js --presets mamba2-130m --weights f32 --prompt 128 --batch-prompt 64 --gen 32 --reps 3 --batch 1,2,4,8,16,64 --decode-rows 0,16 --no-profile
step 80 node dist/bench/webgpu-wall.js --presets llama-130m,mamba2-130m --paths cli --lean 1,0 --reps 5 --gen 16 --gpu-ms
echo "=== done at $(( $(date +%s) - T0 ))s" | tee -a $LOG
grep -E "median|GPU [0-9.]+ ms|WebGPU calls|^rep|tok/s|FAIL|WRONG|max \||rc=|SKIP|===|^# (pass|fail)|not ok|profiled step|probe|MEGA|LM HEAD|limits|matvec_bw|matvec_v|NOT RUN" $LOG | cut -c1-400 | tail -160
